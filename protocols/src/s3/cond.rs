//! Read preconditions (RFC 9110 §13 as S3 applies them): If-Match / If-Unmodified-Since fail
//! with 412, If-None-Match / If-Modified-Since with 304. Times compare at second resolution.

use s3s::dto::{ETagCondition, Timestamp};
use s3s::{s3_error, S3Result};

use super::convert::{secs, systime};
use crate::store::ObjectInfo;

/// The conditional headers of a GET/HEAD (or the x-amz-copy-source-if-* of a copy).
pub struct ReadConditions<'a> {
    /// If-Match.
    pub if_match: Option<&'a ETagCondition>,
    /// If-None-Match.
    pub if_none_match: Option<&'a ETagCondition>,
    /// If-Modified-Since.
    pub if_modified_since: Option<&'a Timestamp>,
    /// If-Unmodified-Since.
    pub if_unmodified_since: Option<&'a Timestamp>,
}

fn etag_matches(c: &ETagCondition, info: &ObjectInfo) -> bool {
    match c {
        ETagCondition::Any => true,
        ETagCondition::ETag(e) => e.value().trim_matches('"') == info.etag,
    }
}

/// A 304 that still names the version (ETag, Last-Modified), as S3 does.
fn not_modified(info: &ObjectInfo) -> s3s::S3Error {
    let mut e = s3_error!(NotModified);
    let mut h = http::HeaderMap::new();
    if let Ok(v) = http::HeaderValue::from_str(&format!("\"{}\"", info.etag)) {
        h.insert(http::header::ETAG, v);
    }
    let lm = httpdate_of(info.last_modified);
    if let Ok(v) = http::HeaderValue::from_str(&lm) {
        h.insert(http::header::LAST_MODIFIED, v);
    }
    e.set_headers(h);
    e
}

fn httpdate_of(t: std::time::SystemTime) -> String {
    let mut buf = Vec::new();
    let ts = s3s::dto::Timestamp::from(t);
    if ts
        .format(s3s::dto::TimestampFormat::HttpDate, &mut buf)
        .is_ok()
    {
        String::from_utf8(buf).unwrap_or_default()
    } else {
        String::new()
    }
}

/// `Ok` if the read may proceed; `PreconditionFailed` (412) or `NotModified` (304) otherwise.
pub fn check_read_conditions(info: &ObjectInfo, c: &ReadConditions<'_>) -> S3Result<()> {
    let modified = secs(info.last_modified);
    if let Some(m) = c.if_match {
        if !etag_matches(m, info) {
            return Err(s3_error!(
                PreconditionFailed,
                "At least one of the pre-conditions you specified did not hold"
            ));
        }
    } else if let Some(t) = c.if_unmodified_since {
        if modified > secs(systime(t)) {
            return Err(s3_error!(
                PreconditionFailed,
                "At least one of the pre-conditions you specified did not hold"
            ));
        }
    }
    if let Some(n) = c.if_none_match {
        if etag_matches(n, info) {
            return Err(not_modified(info));
        }
    } else if let Some(t) = c.if_modified_since {
        if modified <= secs(systime(t)) {
            return Err(not_modified(info));
        }
    }
    Ok(())
}
