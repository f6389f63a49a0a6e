//! A pooled HTTP/1.1 client (hyper-util's legacy `Client`) that reads whole responses.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use crate::BenchError;

/// A request as the client sends it.
pub type Request = http::Request<Full<Bytes>>;

/// A fully read response.
#[derive(Debug)]
pub struct Response {
    /// HTTP status code.
    pub status: u16,
    /// Response headers.
    pub headers: http::HeaderMap,
    /// The whole body.
    pub body: Bytes,
}

impl Response {
    /// A header as a string ("" when absent or not ASCII).
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    /// `Ok(self)` on 2xx, otherwise a [`BenchError::Status`] naming `op`.
    pub fn ok(self, op: &'static str) -> Result<Response, BenchError> {
        if (200..300).contains(&self.status) {
            return Ok(self);
        }
        let n = self.body.len().min(300);
        Err(BenchError::Status {
            op,
            status: self.status,
            body: String::from_utf8_lossy(&self.body[..n]).into_owned(),
        })
    }
}

/// Cheap to clone; clones share the connection pool.
#[derive(Clone)]
pub struct HttpClient {
    inner: Client<HttpConnector, Full<Bytes>>,
}

impl HttpClient {
    /// A client keeping up to `pool` idle connections per host.
    pub fn new(pool: usize) -> HttpClient {
        let mut conn = HttpConnector::new();
        conn.set_nodelay(true);
        let inner = Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(pool.max(1))
            .build(conn);
        HttpClient { inner }
    }

    /// Sends `req` and reads the whole response body.
    pub async fn send(&self, req: Request) -> Result<Response, BenchError> {
        let resp = self.inner.request(req).await?;
        let (parts, body) = resp.into_parts();
        let body = body.collect().await?.to_bytes();
        Ok(Response {
            status: parts.status.as_u16(),
            headers: parts.headers,
            body,
        })
    }
}

/// Splits `http://host:port[/]` into (`http://host:port`, `host:port`).
pub fn split_endpoint(url: &str) -> Result<(String, String), BenchError> {
    let base = url.trim_end_matches('/').to_string();
    let uri: http::Uri = base
        .parse()
        .map_err(|e| BenchError::Config(format!("endpoint {url}: {e}")))?;
    if uri.scheme_str() != Some("http") {
        return Err(BenchError::Config(format!(
            "endpoint {url}: only http:// is supported"
        )));
    }
    let host = uri
        .authority()
        .map(|a| a.as_str().to_string())
        .ok_or_else(|| BenchError::Config(format!("endpoint {url}: no host")))?;
    Ok((base, host))
}

/// Percent-encodes `s` the way SigV4 wants it (RFC 3986 unreserved kept; `/` kept when
/// `keep_slash`).
pub fn uri_encode(s: &str, keep_slash: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            b'/' if keep_slash => out.push('/'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// `k=v&k=v` with both sides encoded, sorted by key then value (SigV4's canonical query,
/// also a fine wire query).
pub fn canonical_query(query: &[(&str, &str)]) -> String {
    let mut pairs: Vec<(String, String)> = query
        .iter()
        .map(|(k, v)| (uri_encode(k, false), uri_encode(v, false)))
        .collect();
    pairs.sort();
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}
