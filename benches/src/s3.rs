//! S3 requests (path-style, SigV4 header auth with `UNSIGNED-PAYLOAD`).

use std::time::SystemTime;

use bytes::Bytes;
use http_body_util::Full;

use crate::http::{canonical_query, split_endpoint, uri_encode, HttpClient, Request, Response};
use crate::sigv4::{amz_date, SigV4, UNSIGNED_PAYLOAD};
use crate::BenchError;

/// An S3 bucket on one endpoint.
#[derive(Clone)]
pub struct S3 {
    http: HttpClient,
    base: String,
    host: String,
    bucket: String,
    signer: SigV4,
}

impl S3 {
    /// A client for `bucket` at `endpoint` (`http://host:port`).
    pub fn new(
        http: HttpClient,
        endpoint: &str,
        bucket: &str,
        signer: SigV4,
    ) -> Result<S3, BenchError> {
        let (base, host) = split_endpoint(endpoint)?;
        Ok(S3 {
            http,
            base,
            host,
            bucket: bucket.to_string(),
            signer,
        })
    }

    fn request(
        &self,
        method: &str,
        key: Option<&str>,
        query: &[(&str, &str)],
        extra: &[(&str, String)],
        body: Bytes,
    ) -> Result<Request, BenchError> {
        let mut path = format!("/{}", uri_encode(&self.bucket, false));
        if let Some(k) = key {
            path.push('/');
            path.push_str(&uri_encode(k, true));
        }
        let q = canonical_query(query);
        let date = amz_date(SystemTime::now());
        let auth = self.signer.authorization(
            method,
            &path,
            &q,
            &[
                ("host", &self.host),
                ("x-amz-content-sha256", UNSIGNED_PAYLOAD),
                ("x-amz-date", &date),
            ],
            UNSIGNED_PAYLOAD,
            &date,
        );
        let uri = if q.is_empty() {
            format!("{}{path}", self.base)
        } else {
            format!("{}{path}?{q}", self.base)
        };
        let mut b = http::Request::builder()
            .method(method)
            .uri(uri)
            .header("host", &self.host)
            .header("x-amz-date", date)
            .header("x-amz-content-sha256", UNSIGNED_PAYLOAD)
            .header("authorization", auth);
        if method == "PUT" || method == "POST" {
            b = b.header("content-length", body.len().to_string());
        }
        for (k, v) in extra {
            b = b.header(*k, v);
        }
        Ok(b.body(Full::new(body))?)
    }

    async fn send(
        &self,
        op: &'static str,
        method: &str,
        key: Option<&str>,
        query: &[(&str, &str)],
        extra: &[(&str, String)],
        body: Bytes,
    ) -> Result<Response, BenchError> {
        let req = self.request(method, key, query, extra, body)?;
        self.http.send(req).await?.ok(op)
    }

    /// Creates the bucket; an existing bucket is fine.
    pub async fn create_bucket(&self) -> Result<(), BenchError> {
        let resp = self
            .http
            .send(self.request("PUT", None, &[], &[], Bytes::new())?)
            .await?;
        if resp.status == 409 {
            return Ok(());
        }
        resp.ok("create_bucket").map(|_| ())
    }

    /// PutObject.
    pub async fn put(&self, key: &str, body: Bytes) -> Result<(), BenchError> {
        self.send("put", "PUT", Some(key), &[], &[], body)
            .await
            .map(|_| ())
    }

    /// GetObject, optionally of the inclusive byte range `range`.
    pub async fn get(&self, key: &str, range: Option<(u64, u64)>) -> Result<Bytes, BenchError> {
        let extra: Vec<(&str, String)> = range
            .map(|(a, b)| vec![("range", format!("bytes={a}-{b}"))])
            .unwrap_or_default();
        Ok(self
            .send("get", "GET", Some(key), &[], &extra, Bytes::new())
            .await?
            .body)
    }

    /// One ListObjectsV2 page under `prefix`; returns the number of keys on it.
    pub async fn list(&self, prefix: &str) -> Result<usize, BenchError> {
        let q = [("list-type", "2"), ("prefix", prefix), ("max-keys", "1000")];
        let resp = self
            .send("list", "GET", None, &q, &[], Bytes::new())
            .await?;
        Ok(count(&resp.body, b"<Key>"))
    }

    /// DeleteObject.
    pub async fn delete(&self, key: &str) -> Result<(), BenchError> {
        self.send("delete", "DELETE", Some(key), &[], &[], Bytes::new())
            .await
            .map(|_| ())
    }

    /// CreateMultipartUpload; returns the upload id.
    pub async fn create_multipart(&self, key: &str) -> Result<String, BenchError> {
        let resp = self
            .send(
                "create_multipart",
                "POST",
                Some(key),
                &[("uploads", "")],
                &[],
                Bytes::new(),
            )
            .await?;
        xml_text(&resp.body, "UploadId")
            .ok_or_else(|| BenchError::Protocol("CreateMultipartUpload without UploadId".into()))
    }

    /// UploadPart; returns the part's ETag.
    pub async fn upload_part(
        &self,
        key: &str,
        upload_id: &str,
        part: usize,
        body: Bytes,
    ) -> Result<String, BenchError> {
        let n = part.to_string();
        let q = [("partNumber", n.as_str()), ("uploadId", upload_id)];
        let resp = self
            .send("upload_part", "PUT", Some(key), &q, &[], body)
            .await?;
        let etag = resp.header("etag");
        if etag.is_empty() {
            return Err(BenchError::Protocol("UploadPart without ETag".into()));
        }
        Ok(etag.to_string())
    }

    /// CompleteMultipartUpload with `etags` as parts 1..=n.
    pub async fn complete_multipart(
        &self,
        key: &str,
        upload_id: &str,
        etags: &[String],
    ) -> Result<(), BenchError> {
        let mut xml = String::from("<CompleteMultipartUpload>");
        for (i, e) in etags.iter().enumerate() {
            xml.push_str(&format!(
                "<Part><PartNumber>{}</PartNumber><ETag>{e}</ETag></Part>",
                i + 1
            ));
        }
        xml.push_str("</CompleteMultipartUpload>");
        let resp = self
            .send(
                "complete_multipart",
                "POST",
                Some(key),
                &[("uploadId", upload_id)],
                &[],
                Bytes::from(xml),
            )
            .await?;
        // S3 may report a failed completion inside a 200 response.
        if count(&resp.body, b"<Error>") > 0 {
            return Err(BenchError::Protocol(
                String::from_utf8_lossy(&resp.body).into_owned(),
            ));
        }
        Ok(())
    }
}

/// Occurrences of `needle` in `hay`.
pub fn count(hay: &[u8], needle: &[u8]) -> usize {
    if needle.is_empty() {
        return 0;
    }
    hay.windows(needle.len()).filter(|w| *w == needle).count()
}

/// The text of the first `<tag>…</tag>` in `body`.
pub fn xml_text(body: &[u8], tag: &str) -> Option<String> {
    let s = std::str::from_utf8(body).ok()?;
    let open = format!("<{tag}>");
    let start = s.find(&open)? + open.len();
    let end = s[start..].find(&format!("</{tag}>"))? + start;
    Some(s[start..end].to_string())
}
