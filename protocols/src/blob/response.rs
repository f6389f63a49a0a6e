//! Building Blob responses: the headers every response carries (`x-ms-request-id`,
//! `x-ms-version`, `Date`, `Server`), error responses with `x-ms-error-code` (also on HEAD,
//! without a body), and the formats Azure uses for dates and MD5s.

use std::time::SystemTime;

use base64::Engine as _;
use bytes::Bytes;
use futures::{Stream, StreamExt};
use http::header::{HeaderName, HeaderValue, CONTENT_LENGTH, CONTENT_TYPE};
use http::{Response, StatusCode};
use http_body_util::{BodyExt, Full, StreamBody};

use super::error::BlobError;

/// The body type of every Blob response.
pub type Body = http_body_util::combinators::UnsyncBoxBody<Bytes, std::io::Error>;

/// A response under construction.
pub struct Reply {
    status: StatusCode,
    headers: Vec<(HeaderName, HeaderValue)>,
    body: Body,
}

fn empty() -> Body {
    Full::new(Bytes::new())
        .map_err(|never| match never {})
        .boxed_unsync()
}

impl Reply {
    /// An empty response with `status`.
    pub fn new(status: StatusCode) -> Reply {
        Reply {
            status,
            headers: Vec::new(),
            body: empty(),
        }
    }

    /// Adds a header; values that are not valid header text are dropped (never a panic).
    pub fn header(mut self, name: &'static str, value: impl AsRef<str>) -> Reply {
        if let Ok(v) = HeaderValue::from_str(value.as_ref()) {
            self.headers.push((HeaderName::from_static(name), v));
        }
        self
    }

    /// Adds a header with a runtime name (`x-ms-meta-*`).
    pub fn header_dyn(mut self, name: &str, value: &str) -> Reply {
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            self.headers.push((n, v));
        }
        self
    }

    /// Adds a header when `value` is `Some`.
    pub fn header_opt(self, name: &'static str, value: Option<impl AsRef<str>>) -> Reply {
        match value {
            Some(v) => self.header(name, v),
            None => self,
        }
    }

    /// An XML body.
    pub fn xml(mut self, xml: String) -> Reply {
        let len = xml.len();
        self.body = Full::new(Bytes::from(xml))
            .map_err(|never| match never {})
            .boxed_unsync();
        self.header("content-type", "application/xml")
            .header("content-length", len.to_string())
    }

    /// A streamed body of `len` bytes.
    pub fn stream<S>(mut self, len: u64, stream: S) -> Reply
    where
        S: Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static,
    {
        self.body = StreamBody::new(stream.map(|r| r.map(hyper::body::Frame::data))).boxed_unsync();
        self.header("content-length", len.to_string())
    }

    /// A buffered body.
    pub fn bytes(mut self, data: Bytes) -> Reply {
        let len = data.len();
        self.body = Full::new(data)
            .map_err(|never| match never {})
            .boxed_unsync();
        self.header("content-length", len.to_string())
    }

    /// Drops the body (HEAD), keeping Content-Length.
    pub fn without_body(mut self) -> Reply {
        self.body = empty();
        self
    }

    /// The finished response with the headers every response carries.
    pub fn finish(self, common: &CommonHeaders) -> Response<Body> {
        let mut resp = Response::new(self.body);
        *resp.status_mut() = self.status;
        let h = resp.headers_mut();
        for (n, v) in self.headers {
            h.append(n, v);
        }
        common.apply(h);
        if !h.contains_key(CONTENT_LENGTH) && self.status != StatusCode::NOT_MODIFIED {
            h.insert(CONTENT_LENGTH, HeaderValue::from_static("0"));
        }
        resp
    }
}

/// Headers that go on every response of one request.
pub struct CommonHeaders {
    /// `x-ms-request-id`.
    pub request_id: String,
    /// `x-ms-version` served.
    pub version: String,
    /// `x-ms-client-request-id` echoed.
    pub client_request_id: Option<HeaderValue>,
}

impl CommonHeaders {
    fn apply(&self, h: &mut http::HeaderMap) {
        if let Ok(v) = HeaderValue::from_str(&self.request_id) {
            h.insert("x-ms-request-id", v);
        }
        if let Ok(v) = HeaderValue::from_str(&self.version) {
            h.insert("x-ms-version", v);
        }
        if let Some(v) = &self.client_request_id {
            h.insert("x-ms-client-request-id", v.clone());
        }
        if let Ok(v) = HeaderValue::from_str(&http_date(SystemTime::now())) {
            h.insert("date", v);
        }
        h.insert("server", HeaderValue::from_static("Cairn-Blob"));
    }
}

/// The response for a failed request: status, `x-ms-error-code`, and the XML body unless
/// the request was a HEAD.
pub fn error_response(err: &BlobError, head: bool, common: &CommonHeaders) -> Response<Body> {
    let reply = Reply::new(err.status).header("x-ms-error-code", err.code);
    let reply = if head {
        reply
    } else {
        reply.xml(err.to_xml(&common.request_id))
    };
    let mut resp = reply.finish(common);
    if head {
        resp.headers_mut().remove(CONTENT_TYPE);
    }
    resp
}

/// RFC 1123 date, as in `Last-Modified` and listing properties.
pub fn http_date(t: SystemTime) -> String {
    httpdate::fmt_http_date(t)
}

/// Base64 of an MD5, as in `Content-MD5`.
pub fn md5_b64(md5: &[u8; 16]) -> String {
    base64::engine::general_purpose::STANDARD.encode(md5)
}
