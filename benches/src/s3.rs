//! S3 requests (path-style or virtual-hosted-style, SigV4 header auth with
//! `UNSIGNED-PAYLOAD`).

use std::time::SystemTime;

use bytes::Bytes;
use http_body_util::Full;

use crate::http::{canonical_query, split_endpoint, uri_encode, HttpClient, Request, Response};
use crate::sigv4::{amz_date, SigV4, UNSIGNED_PAYLOAD};
use crate::store::ListPage;
use crate::BenchError;

/// An S3 bucket on one endpoint.
#[derive(Clone)]
pub struct S3 {
    http: HttpClient,
    base: String,
    host: String,
    bucket: String,
    /// The bucket travels in `host` (`<bucket>.<domain>`), not in the path.
    virtual_host: bool,
    signer: SigV4,
}

impl S3 {
    /// A client for `bucket` at `endpoint` (`http://host:port`).
    ///
    /// With `virtual_host` = `Some(domain)` requests are virtual-hosted-style: they still
    /// connect to `endpoint`, but carry `Host: <bucket>.<domain>[:port]` (the endpoint's
    /// port) and the path `/<key>`; an empty `domain` means the endpoint's own host name.
    pub fn new(
        http: HttpClient,
        endpoint: &str,
        bucket: &str,
        virtual_host: Option<&str>,
        signer: SigV4,
    ) -> Result<S3, BenchError> {
        let (base, mut host) = split_endpoint(endpoint)?;
        if let Some(domain) = virtual_host {
            host = virtual_host_header(endpoint, bucket, domain)?;
        }
        Ok(S3 {
            http,
            base,
            host,
            bucket: bucket.to_string(),
            virtual_host: virtual_host.is_some(),
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
        let mut path = if self.virtual_host {
            String::new()
        } else {
            format!("/{}", uri_encode(&self.bucket, false))
        };
        if let Some(k) = key {
            path.push('/');
            path.push_str(&uri_encode(k, true));
        }
        if path.is_empty() {
            path.push('/');
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

    /// One ListObjectsV2 page of at most `max_keys` keys under `prefix`, continuing after
    /// `token` (a previous page's `NextContinuationToken`) when given.
    pub async fn list_page(
        &self,
        prefix: &str,
        token: Option<&str>,
        max_keys: usize,
    ) -> Result<ListPage, BenchError> {
        let max = max_keys.to_string();
        let mut q = vec![("list-type", "2"), ("prefix", prefix), ("max-keys", &max)];
        if let Some(t) = token {
            q.push(("continuation-token", t));
        }
        let resp = self
            .send("list_page", "GET", None, &q, &[], Bytes::new())
            .await?;
        parse_list_v2(&resp.body)
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
        xml_text(&resp.body, "UploadId")?
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

/// The text of the first `<tag>…</tag>` in `body`, entities decoded; `None` when the
/// element is absent or self-closing (`<tag/>`), an error when the text is not valid
/// UTF-8 or holds an unknown entity.
pub fn xml_text(body: &[u8], tag: &str) -> Result<Option<String>, BenchError> {
    let open = format!("<{tag}>");
    let close = format!("</{tag}>");
    let Some(start) = find(body, open.as_bytes()).map(|i| i + open.len()) else {
        return Ok(None);
    };
    let Some(len) = body
        .get(start..)
        .and_then(|rest| find(rest, close.as_bytes()))
    else {
        return Err(BenchError::Protocol(format!("<{tag}> is not closed")));
    };
    let raw = std::str::from_utf8(&body[start..start + len])
        .map_err(|e| BenchError::Protocol(format!("<{tag}> is not UTF-8: {e}")))?;
    xml_unescape(raw).map(Some)
}

/// The position of the first `needle` in `hay`.
fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() {
        return Some(0);
    }
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Decodes the five predefined XML entities and numeric character references
/// (`&#38;`, `&#x26;`).
pub fn xml_unescape(s: &str) -> Result<String, BenchError> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        let after = &rest[amp + 1..];
        let semi = after
            .find(';')
            .ok_or_else(|| BenchError::Protocol(format!("unterminated XML entity in {s:?}")))?;
        let name = &after[..semi];
        let c = match name {
            "amp" => '&',
            "lt" => '<',
            "gt" => '>',
            "quot" => '"',
            "apos" => '\'',
            _ => {
                let code = if let Some(hex) = name.strip_prefix("#x").or(name.strip_prefix("#X")) {
                    u32::from_str_radix(hex, 16).ok()
                } else if let Some(dec) = name.strip_prefix('#') {
                    dec.parse::<u32>().ok()
                } else {
                    None
                };
                code.and_then(char::from_u32).ok_or_else(|| {
                    BenchError::Protocol(format!("unknown XML entity &{name}; in {s:?}"))
                })?
            }
        };
        out.push(c);
        rest = &after[semi + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// The keys and continuation of a ListObjectsV2 response body.
pub fn parse_list_v2(body: &[u8]) -> Result<ListPage, BenchError> {
    let entries = count(body, b"<Key>");
    let truncated = match xml_text(body, "IsTruncated")?.as_deref().map(str::trim) {
        Some("true") => true,
        Some("false") | None => false,
        Some(other) => {
            return Err(BenchError::Protocol(format!(
                "ListObjectsV2: IsTruncated is {other:?}"
            )))
        }
    };
    let next = if truncated {
        match xml_text(body, "NextContinuationToken")? {
            Some(t) if !t.is_empty() => Some(t),
            _ => {
                return Err(BenchError::Protocol(
                    "ListObjectsV2: truncated page without NextContinuationToken".into(),
                ))
            }
        }
    } else {
        None
    };
    Ok(ListPage { entries, next })
}

/// `<bucket>.<domain>[:port]` for virtual-hosted-style requests to `endpoint`; an empty
/// `domain` means the endpoint's host name (which then must not be an IP address).
pub fn virtual_host_header(
    endpoint: &str,
    bucket: &str,
    domain: &str,
) -> Result<String, BenchError> {
    let (base, _) = split_endpoint(endpoint)?;
    let uri: http::Uri = base
        .parse()
        .map_err(|e| BenchError::Config(format!("endpoint {endpoint}: {e}")))?;
    let host = uri.host().unwrap_or_default();
    let domain = if domain.is_empty() { host } else { domain };
    if domain.is_empty() || domain.starts_with('[') || domain.parse::<std::net::IpAddr>().is_ok() {
        return Err(BenchError::Config(format!(
            "virtual-hosted-style S3 needs a domain name, not {domain:?}: use an endpoint \
             such as http://localhost:PORT or --s3-virtual-host=DOMAIN"
        )));
    }
    Ok(match uri.port_u16() {
        Some(p) => format!("{bucket}.{domain}:{p}"),
        None => format!("{bucket}.{domain}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signer() -> SigV4 {
        SigV4 {
            access_key: "ak".into(),
            secret_key: "sk".into(),
            region: "us-east-1".into(),
            service: "s3".into(),
        }
    }

    #[test]
    fn unescapes_entities() {
        assert_eq!(
            xml_unescape("a&amp;b&lt;&gt;&quot;&apos;&#38;&#x2F;z").expect("valid"),
            "a&b<>\"'&/z"
        );
        assert!(xml_unescape("a&bogus;").is_err());
        assert!(xml_unescape("a&amp").is_err());
    }

    #[test]
    fn parses_list_pages() {
        let body = b"<ListBucketResult><IsTruncated>true</IsTruncated>\
            <Contents><Key>a</Key></Contents><Contents><Key>b&amp;c</Key></Contents>\
            <NextContinuationToken>t+1&amp;x=/y</NextContinuationToken></ListBucketResult>";
        let p = parse_list_v2(body).expect("page");
        assert_eq!(p.entries, 2);
        assert_eq!(p.next.as_deref(), Some("t+1&x=/y"));
        let last = b"<ListBucketResult><IsTruncated>false</IsTruncated>\
            <Contents><Key>z</Key></Contents></ListBucketResult>";
        let p = parse_list_v2(last).expect("page");
        assert_eq!((p.entries, p.next), (1, None));
        let broken = b"<ListBucketResult><IsTruncated>true</IsTruncated></ListBucketResult>";
        assert!(parse_list_v2(broken).is_err());
    }

    #[test]
    fn continuation_token_is_encoded_in_the_signed_query() {
        let s = S3::new(HttpClient::new(1), "http://h:1", "b", None, signer()).expect("s3");
        let req = s
            .request(
                "GET",
                None,
                &[("list-type", "2"), ("continuation-token", "t+1&x=/y")],
                &[],
                Bytes::new(),
            )
            .expect("request");
        assert_eq!(
            req.uri().to_string(),
            "http://h:1/b?continuation-token=t%2B1%26x%3D%2Fy&list-type=2"
        );
    }

    #[test]
    fn virtual_host_moves_the_bucket_into_host() {
        let s = S3::new(
            HttpClient::new(1),
            "http://localhost:9000",
            "bkt",
            Some(""),
            signer(),
        )
        .expect("s3");
        let req = s
            .request("GET", Some("a b/c"), &[], &[], Bytes::new())
            .expect("request");
        assert_eq!(req.uri().to_string(), "http://localhost:9000/a%20b/c");
        assert_eq!(req.headers()["host"], "bkt.localhost:9000");
        let root = s
            .request("PUT", None, &[], &[], Bytes::new())
            .expect("request");
        assert_eq!(root.uri().to_string(), "http://localhost:9000/");

        let d = S3::new(
            HttpClient::new(1),
            "http://127.0.0.1:9000",
            "bkt",
            Some("s3.example.com"),
            signer(),
        )
        .expect("s3");
        let req = d
            .request("GET", Some("k"), &[], &[], Bytes::new())
            .expect("request");
        assert_eq!(req.uri().to_string(), "http://127.0.0.1:9000/k");
        assert_eq!(req.headers()["host"], "bkt.s3.example.com:9000");

        assert!(S3::new(
            HttpClient::new(1),
            "http://127.0.0.1:9000",
            "bkt",
            Some(""),
            signer()
        )
        .is_err());
    }
}
