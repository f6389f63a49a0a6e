//! Azure Blob requests (path-style `/<account>/<container>/<blob>`), signed with SharedKey
//! through the server's own canonicalization, or authorized by a SAS token.

use base64::Engine as _;
use bytes::Bytes;
use cairn_protocols::blob::auth::{string_to_sign_for, SignedRequest};
use cairn_protocols::blob::sign::sign;
use http::{HeaderMap, HeaderName, HeaderValue};
use http_body_util::Full;

use crate::http::{split_endpoint, uri_encode, HttpClient, Request, Response};
use crate::s3::{count, xml_text};
use crate::store::ListPage;
use crate::BenchError;

/// The `x-ms-version` the client sends.
pub const VERSION: &str = "2021-08-06";

/// How requests are authorized.
#[derive(Clone)]
pub enum BlobAuth {
    /// SharedKey with the account's decoded key.
    SharedKey(Vec<u8>),
    /// A SAS token appended to every URL (without the leading `?`).
    Sas(String),
}

/// A container on one Blob endpoint.
#[derive(Clone)]
pub struct Blob {
    http: HttpClient,
    base: String,
    host: String,
    account: String,
    container: String,
    auth: BlobAuth,
}

impl Blob {
    /// A client for `container` of `account` at `endpoint` (`http://host:port`).
    /// `key_b64` is the account key as Azure prints it; `sas`, when given, is used instead.
    pub fn new(
        http: HttpClient,
        endpoint: &str,
        account: &str,
        container: &str,
        key_b64: &str,
        sas: Option<&str>,
    ) -> Result<Blob, BenchError> {
        let (base, host) = split_endpoint(endpoint)?;
        let auth = match sas {
            Some(t) => BlobAuth::Sas(t.trim_start_matches('?').to_string()),
            None => BlobAuth::SharedKey(
                base64::engine::general_purpose::STANDARD
                    .decode(key_b64.trim())
                    .map_err(|e| BenchError::Config(format!("account key is not base64: {e}")))?,
            ),
        };
        Ok(Blob {
            http,
            base,
            host,
            account: account.to_string(),
            container: container.to_string(),
            auth,
        })
    }

    fn request(
        &self,
        method: &str,
        blob: Option<&str>,
        query: &[(&str, &str)],
        extra: &[(&'static str, String)],
        body: Bytes,
    ) -> Result<Request, BenchError> {
        let mut path = format!(
            "/{}/{}",
            uri_encode(&self.account, false),
            uri_encode(&self.container, false)
        );
        if let Some(b) = blob {
            path.push('/');
            path.push_str(&uri_encode(b, true));
        }
        let mut wire_query: Vec<String> = query
            .iter()
            .map(|(k, v)| format!("{}={}", uri_encode(k, false), uri_encode(v, false)))
            .collect();
        let mut headers = HeaderMap::new();
        let hv = |s: &str| {
            HeaderValue::from_str(s).map_err(|e| BenchError::Config(format!("header value: {e}")))
        };
        headers.insert(
            "x-ms-date",
            hv(&httpdate::fmt_http_date(std::time::SystemTime::now()))?,
        );
        headers.insert("x-ms-version", HeaderValue::from_static(VERSION));
        if method == "PUT" || method == "POST" {
            headers.insert("content-length", hv(&body.len().to_string())?);
        }
        for (k, v) in extra {
            headers.insert(HeaderName::from_static(k), hv(v)?);
        }
        match &self.auth {
            BlobAuth::SharedKey(key) => {
                let decoded: Vec<(String, String)> = query
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect();
                let req = SignedRequest {
                    method,
                    raw_path: &path,
                    query: &decoded,
                    headers: &headers,
                    path_style: true,
                };
                let sts = string_to_sign_for(&req, &format!("/{}{path}", self.account));
                let sig = sign(key, &sts);
                headers.insert(
                    "authorization",
                    hv(&format!("SharedKey {}:{sig}", self.account))?,
                );
            }
            BlobAuth::Sas(token) => wire_query.push(token.clone()),
        }
        headers.insert("host", hv(&self.host)?);
        let uri = if wire_query.is_empty() {
            format!("{}{path}", self.base)
        } else {
            format!("{}{path}?{}", self.base, wire_query.join("&"))
        };
        let mut req = http::Request::builder().method(method).uri(uri);
        if let Some(h) = req.headers_mut() {
            *h = headers;
        }
        Ok(req.body(Full::new(body))?)
    }

    async fn send(
        &self,
        op: &'static str,
        method: &str,
        blob: Option<&str>,
        query: &[(&str, &str)],
        extra: &[(&'static str, String)],
        body: Bytes,
    ) -> Result<Response, BenchError> {
        let req = self.request(method, blob, query, extra, body)?;
        self.http.send(req).await?.ok(op)
    }

    /// Creates the container; an existing container is fine.
    pub async fn create_container(&self) -> Result<(), BenchError> {
        let req = self.request("PUT", None, &[("restype", "container")], &[], Bytes::new())?;
        let resp = self.http.send(req).await?;
        if resp.status == 409 {
            return Ok(());
        }
        resp.ok("create_container").map(|_| ())
    }

    /// Put Blob (block blob, single shot).
    pub async fn put(&self, name: &str, body: Bytes) -> Result<(), BenchError> {
        let extra = [("x-ms-blob-type", "BlockBlob".to_string())];
        self.send("put", "PUT", Some(name), &[], &extra, body)
            .await
            .map(|_| ())
    }

    /// Get Blob, optionally of the inclusive byte range `range`.
    pub async fn get(&self, name: &str, range: Option<(u64, u64)>) -> Result<Bytes, BenchError> {
        let extra: Vec<(&'static str, String)> = range
            .map(|(a, b)| vec![("x-ms-range", format!("bytes={a}-{b}"))])
            .unwrap_or_default();
        Ok(self
            .send("get", "GET", Some(name), &[], &extra, Bytes::new())
            .await?
            .body)
    }

    /// One List Blobs page of at most `max_results` blobs under `prefix`, continuing at
    /// `marker` (a previous page's `NextMarker`) when given.
    pub async fn list_page(
        &self,
        prefix: &str,
        marker: Option<&str>,
        max_results: usize,
    ) -> Result<ListPage, BenchError> {
        let max = max_results.to_string();
        let mut q = vec![
            ("restype", "container"),
            ("comp", "list"),
            ("prefix", prefix),
            ("maxresults", max.as_str()),
        ];
        if let Some(m) = marker {
            q.push(("marker", m));
        }
        let resp = self
            .send("list_page", "GET", None, &q, &[], Bytes::new())
            .await?;
        parse_list_blobs(&resp.body)
    }

    /// Delete Blob.
    pub async fn delete(&self, name: &str) -> Result<(), BenchError> {
        self.send("delete", "DELETE", Some(name), &[], &[], Bytes::new())
            .await
            .map(|_| ())
    }

    /// The block id of block `n` (fixed length, as Azure requires).
    pub fn block_id(n: usize) -> String {
        base64::engine::general_purpose::STANDARD.encode(format!("block-{n:08}"))
    }

    /// Put Block; returns its block id.
    pub async fn put_block(&self, name: &str, n: usize, body: Bytes) -> Result<String, BenchError> {
        let id = Blob::block_id(n);
        let q = [("comp", "block"), ("blockid", id.as_str())];
        self.send("put_block", "PUT", Some(name), &q, &[], body)
            .await?;
        Ok(id)
    }

    /// Put Block List committing `ids` in order.
    pub async fn put_block_list(&self, name: &str, ids: &[String]) -> Result<(), BenchError> {
        let mut xml = String::from("<?xml version=\"1.0\" encoding=\"utf-8\"?><BlockList>");
        for id in ids {
            xml.push_str(&format!("<Latest>{id}</Latest>"));
        }
        xml.push_str("</BlockList>");
        self.send(
            "put_block_list",
            "PUT",
            Some(name),
            &[("comp", "blocklist")],
            &[],
            Bytes::from(xml),
        )
        .await
        .map(|_| ())
    }
}

/// The blobs and continuation of a List Blobs response body: the next page starts at a
/// non-empty `<NextMarker>`; an empty or self-closing one ends the listing.
pub fn parse_list_blobs(body: &[u8]) -> Result<ListPage, BenchError> {
    Ok(ListPage {
        entries: count(body, b"<Blob>"),
        next: xml_text(body, "NextMarker")?.filter(|m| !m.is_empty()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_list_pages() {
        let body = b"<EnumerationResults><Blobs><Blob><Name>a</Name></Blob>\
            <Blob><Name>b</Name></Blob></Blobs><NextMarker>p/b&amp;c</NextMarker>\
            </EnumerationResults>";
        let p = parse_list_blobs(body).expect("page");
        assert_eq!((p.entries, p.next.as_deref()), (2, Some("p/b&c")));
        for last in [
            &b"<EnumerationResults><Blobs><Blob></Blob></Blobs><NextMarker /></EnumerationResults>"[..],
            b"<EnumerationResults><Blobs><Blob></Blob></Blobs><NextMarker></NextMarker></EnumerationResults>",
            b"<EnumerationResults><Blobs><Blob></Blob></Blobs></EnumerationResults>",
        ] {
            let p = parse_list_blobs(last).expect("page");
            assert_eq!((p.entries, p.next), (1, None));
        }
    }

    #[test]
    fn marker_is_encoded_and_signed_decoded() {
        let key = base64::engine::general_purpose::STANDARD.encode(b"secret");
        let b =
            Blob::new(HttpClient::new(1), "http://h:1", "acct", "ctr", &key, None).expect("client");
        let req = b
            .request(
                "GET",
                None,
                &[("comp", "list"), ("marker", "p/b&c")],
                &[],
                Bytes::new(),
            )
            .expect("request");
        assert_eq!(
            req.uri().to_string(),
            "http://h:1/acct/ctr?comp=list&marker=p%2Fb%26c"
        );
    }

    #[test]
    fn sas_is_appended_instead_of_signing() {
        let b = Blob::new(
            HttpClient::new(1),
            "http://127.0.0.1:1",
            "acct",
            "ctr",
            "",
            Some("?sv=2021-08-06&sig=abc%2B"),
        )
        .expect("client");
        let req = b
            .request(
                "GET",
                Some("a b/c"),
                &[("comp", "block")],
                &[],
                Bytes::new(),
            )
            .expect("request");
        assert_eq!(
            req.uri().to_string(),
            "http://127.0.0.1:1/acct/ctr/a%20b/c?comp=block&sv=2021-08-06&sig=abc%2B"
        );
        assert!(req.headers().get("authorization").is_none());
    }

    #[test]
    fn shared_key_signs_with_the_account() {
        let key = base64::engine::general_purpose::STANDARD.encode(b"secret");
        let b =
            Blob::new(HttpClient::new(1), "http://h:1", "acct", "ctr", &key, None).expect("client");
        let req = b
            .request("PUT", Some("x"), &[], &[], Bytes::from_static(b"data"))
            .expect("request");
        let auth = req.headers()["authorization"].to_str().expect("ascii");
        assert!(auth.starts_with("SharedKey acct:"), "{auth}");
        assert_eq!(req.headers()["content-length"], "4");
    }
}
