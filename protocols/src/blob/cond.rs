//! Conditional headers (`If-Match`, `If-None-Match`, `If-Modified-Since`,
//! `If-Unmodified-Since`) evaluated against a blob's or container's ETag and Last-Modified
//! at one-second precision, with the outcomes Azure gives: 304 for reads whose
//! If-None-Match / If-Modified-Since fail, 412 ConditionNotMet otherwise, and 409
//! BlobAlreadyExists for a create (`If-None-Match: *`) that finds a blob.

use std::time::{SystemTime, UNIX_EPOCH};

use http::HeaderMap;

use super::error::BlobError;

/// The conditional headers of one request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Conditions {
    /// `If-Match` (ETag list or `*`).
    pub if_match: Option<String>,
    /// `If-None-Match` (ETag list or `*`).
    pub if_none_match: Option<String>,
    /// `If-Modified-Since`.
    pub if_modified_since: Option<SystemTime>,
    /// `If-Unmodified-Since`.
    pub if_unmodified_since: Option<SystemTime>,
}

/// What a failed condition means for the response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CondFailure {
    /// 304 Not Modified (reads only).
    NotModified,
    /// An error response.
    Error(BlobError),
}

impl Conditions {
    /// Reads the four headers; a date that does not parse is ignored, as HTTP says.
    pub fn from_headers(h: &HeaderMap) -> Conditions {
        let text = |n: &str| h.get(n).and_then(|v| v.to_str().ok()).map(str::to_string);
        let date = |n: &str| {
            h.get(n)
                .and_then(|v| v.to_str().ok())
                .and_then(|s| httpdate::parse_http_date(s).ok())
        };
        Conditions {
            if_match: text("if-match"),
            if_none_match: text("if-none-match"),
            if_modified_since: date("if-modified-since"),
            if_unmodified_since: date("if-unmodified-since"),
        }
    }

    /// True when no condition is set.
    pub fn is_empty(&self) -> bool {
        self == &Conditions::default()
    }

    /// Evaluates the conditions for a read of a resource that exists with `etag` and
    /// `last_modified`.
    pub fn check_read(&self, etag: &str, last_modified: SystemTime) -> Result<(), CondFailure> {
        if let Some(m) = &self.if_match {
            if !etag_matches(m, etag) {
                return Err(CondFailure::Error(BlobError::condition_not_met()));
            }
        } else if let Some(t) = self.if_unmodified_since {
            if secs(last_modified) > secs(t) {
                return Err(CondFailure::Error(BlobError::condition_not_met()));
            }
        }
        if let Some(m) = &self.if_none_match {
            if etag_matches(m, etag) {
                return Err(CondFailure::NotModified);
            }
        } else if let Some(t) = self.if_modified_since {
            if secs(last_modified) <= secs(t) {
                return Err(CondFailure::NotModified);
            }
        }
        Ok(())
    }

    /// Evaluates the conditions for a write; `current` is the existing resource's
    /// `(etag, last_modified)`, or `None` when it does not exist yet.
    pub fn check_write(&self, current: Option<(&str, SystemTime)>) -> Result<(), BlobError> {
        match current {
            None => {
                if self.if_match.is_some() {
                    // Azure: If-Match on a missing blob is 412 ConditionNotMet (or 404 for
                    // a non-create write, which the store reports before getting here).
                    return Err(BlobError::condition_not_met());
                }
                Ok(())
            }
            Some((etag, last_modified)) => {
                if let Some(m) = &self.if_match {
                    if !etag_matches(m, etag) {
                        return Err(BlobError::condition_not_met());
                    }
                }
                if let Some(m) = &self.if_none_match {
                    if m.trim() == "*" {
                        return Err(BlobError::blob_already_exists());
                    }
                    if etag_matches(m, etag) {
                        return Err(BlobError::condition_not_met());
                    }
                }
                if let Some(t) = self.if_modified_since {
                    if secs(last_modified) <= secs(t) {
                        return Err(BlobError::condition_not_met());
                    }
                }
                if let Some(t) = self.if_unmodified_since {
                    if secs(last_modified) > secs(t) {
                        return Err(BlobError::condition_not_met());
                    }
                }
                Ok(())
            }
        }
    }
}

fn secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// True when the ETag list `header` (`*`, or comma-separated, quoted or not, `W/` allowed)
/// names `etag`.
pub fn etag_matches(header: &str, etag: &str) -> bool {
    let want = etag.trim_matches('"');
    header
        .split(',')
        .map(str::trim)
        .any(|t| t == "*" || t.trim_start_matches("W/").trim_matches('"') == want)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn at(s: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(s)
    }

    #[test]
    fn read_conditions() {
        let c = Conditions {
            if_none_match: Some("\"0x1\"".into()),
            ..Default::default()
        };
        assert_eq!(
            c.check_read("\"0x1\"", at(10)),
            Err(CondFailure::NotModified)
        );
        assert!(c.check_read("\"0x2\"", at(10)).is_ok());
        let c = Conditions {
            if_match: Some("\"0x1\"".into()),
            ..Default::default()
        };
        assert!(
            matches!(c.check_read("\"0x2\"", at(10)), Err(CondFailure::Error(e)) if e.code == "ConditionNotMet")
        );
        // Second precision: a sub-second later write is not "modified since".
        let c = Conditions {
            if_modified_since: Some(at(10)),
            ..Default::default()
        };
        assert_eq!(
            c.check_read("e", at(10) + Duration::from_millis(500)),
            Err(CondFailure::NotModified)
        );
        assert!(c.check_read("e", at(11)).is_ok());
        let c = Conditions {
            if_unmodified_since: Some(at(10)),
            ..Default::default()
        };
        assert!(c.check_read("e", at(10)).is_ok());
        assert!(c.check_read("e", at(11)).is_err());
    }

    #[test]
    fn write_conditions() {
        let create_only = Conditions {
            if_none_match: Some("*".into()),
            ..Default::default()
        };
        assert!(create_only.check_write(None).is_ok());
        assert_eq!(
            create_only
                .check_write(Some(("e", at(1))))
                .unwrap_err()
                .code,
            "BlobAlreadyExists"
        );
        let must_match = Conditions {
            if_match: Some("\"e1\"".into()),
            ..Default::default()
        };
        assert!(must_match.check_write(Some(("\"e1\"", at(1)))).is_ok());
        assert_eq!(
            must_match
                .check_write(Some(("\"e2\"", at(1))))
                .unwrap_err()
                .code,
            "ConditionNotMet"
        );
        assert_eq!(
            must_match.check_write(None).unwrap_err().code,
            "ConditionNotMet"
        );
    }

    #[test]
    fn etag_lists() {
        assert!(etag_matches("\"a\", \"b\"", "\"b\""));
        assert!(etag_matches("W/\"a\"", "a"));
        assert!(etag_matches("*", "x"));
        assert!(!etag_matches("\"a\"", "\"b\""));
    }
}
