//! Turns an HTTP request into what the Blob operations work with: the account, container and
//! blob it names (path-style `/<account>/<container>/<blob>` or host-style
//! `<account>.blob.<domain>/<container>/<blob>`), the decoded query, and typed header access.

use http::HeaderMap;
use percent_encoding::percent_decode_str;

use super::error::BlobError;

/// The resource path of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourcePath {
    /// The account.
    pub account: String,
    /// The container, if named.
    pub container: Option<String>,
    /// The blob, if named (percent-decoded; `%2F` becomes `/`).
    pub blob: Option<String>,
    /// True when the account came from the path.
    pub path_style: bool,
}

/// Splits a request into its account, container and blob. `is_account` tells whether a
/// host's first label names a known account (host-style addressing).
pub fn resource_path(
    host: Option<&str>,
    raw_path: &str,
    is_account: impl Fn(&str) -> bool,
) -> Result<ResourcePath, BlobError> {
    let host_account = host.and_then(|h| {
        let h = h.rsplit_once(':').map_or(h, |(name, port)| {
            if port.bytes().all(|b| b.is_ascii_digit()) {
                name
            } else {
                h
            }
        });
        let (first, rest) = h.split_once('.')?;
        (rest.starts_with("blob.") && is_account(first)).then(|| first.to_string())
    });
    let path = raw_path.strip_prefix('/').unwrap_or(raw_path);
    let (account, rest, path_style) = match host_account {
        Some(a) => (a, path, false),
        None => {
            let (acct, rest) = path.split_once('/').unwrap_or((path, ""));
            if acct.is_empty() {
                return Err(BlobError::invalid_query(
                    "account",
                    "",
                    "the URL names no account",
                ));
            }
            (decode(acct)?, rest, true)
        }
    };
    let (container, blob) = match rest.split_once('/') {
        Some((c, b)) => (c, Some(b)),
        None => (rest, None),
    };
    let container = if container.is_empty() {
        None
    } else {
        Some(decode(container)?)
    };
    let blob = match blob {
        Some(b) if !b.is_empty() => Some(decode(b)?),
        _ => None,
    };
    if container.is_none() && blob.is_some() {
        return Err(BlobError::invalid_resource_name(
            "A blob needs a container.",
        ));
    }
    Ok(ResourcePath {
        account,
        container,
        blob,
        path_style,
    })
}

fn decode(s: &str) -> Result<String, BlobError> {
    percent_decode_str(s)
        .decode_utf8()
        .map(|c| c.into_owned())
        .map_err(|_| BlobError::invalid_resource_name("The URL path is not valid UTF-8."))
}

/// Parses a raw query string into decoded `(name, value)` pairs, in order. `+` is kept as a
/// plus sign (Azure does not read it as a space).
pub fn parse_query(raw: Option<&str>) -> Result<Vec<(String, String)>, BlobError> {
    let Some(raw) = raw else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for part in raw.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = part.split_once('=').unwrap_or((part, ""));
        let k = percent_decode_str(k)
            .decode_utf8()
            .map_err(|_| BlobError::invalid_query(k, v, "not valid UTF-8"))?;
        let v = percent_decode_str(v)
            .decode_utf8()
            .map_err(|_| BlobError::invalid_query(&k, v, "not valid UTF-8"))?;
        out.push((k.into_owned(), v.into_owned()));
    }
    Ok(out)
}

/// Typed access to the decoded query.
pub struct Query<'a>(pub &'a [(String, String)]);

impl Query<'_> {
    /// The first value of `name` (names compare case-insensitively).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// A non-negative integer parameter, or InvalidQueryParameterValue.
    pub fn uint(&self, name: &str) -> Result<Option<u64>, BlobError> {
        match self.get(name) {
            None => Ok(None),
            Some(v) => v
                .parse()
                .map(Some)
                .map_err(|_| BlobError::invalid_query(name, v, "must be a non-negative integer")),
        }
    }
}

/// A header's value as text (`None` when absent or not visible ASCII).
pub fn header<'h>(h: &'h HeaderMap, name: &str) -> Option<&'h str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

/// True when `v` looks like an `x-ms-version` (`YYYY-MM-DD`).
pub fn is_date_shaped(v: &str) -> bool {
    let b = v.as_bytes();
    b.len() == 10
        && b[4] == b'-'
        && b[7] == b'-'
        && b.iter()
            .enumerate()
            .all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit())
}

/// Parses `bytes=first-last` / `bytes=first-` / `bytes=-suffix` (`x-ms-range` or `Range`).
pub fn parse_range(value: &str) -> Result<crate::store::RangeSpec, BlobError> {
    let bad = || BlobError::invalid_header("Range", "expected bytes=start-end");
    let spec = value.trim().strip_prefix("bytes=").ok_or_else(bad)?;
    let (a, b) = spec.split_once('-').ok_or_else(bad)?;
    let num = |s: &str| s.trim().parse::<u64>().map_err(|_| bad());
    if a.trim().is_empty() {
        return Ok(crate::store::RangeSpec::Suffix(num(b)?));
    }
    let first = num(a)?;
    let last = if b.trim().is_empty() {
        None
    } else {
        Some(num(b)?)
    };
    if let Some(l) = last {
        if l < first {
            return Err(bad());
        }
    }
    Ok(crate::store::RangeSpec::From { first, last })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::RangeSpec;

    #[test]
    fn path_style_and_host_style() {
        let p = resource_path(
            Some("127.0.0.1:10000"),
            "/acct/cont/dir%2Fa%20b.txt",
            |_| true,
        )
        .unwrap();
        assert_eq!(p.account, "acct");
        assert_eq!(p.container.as_deref(), Some("cont"));
        assert_eq!(p.blob.as_deref(), Some("dir/a b.txt"));
        assert!(p.path_style);
        let p = resource_path(Some("acct.blob.localhost:10000"), "/cont/x/y", |a| {
            a == "acct"
        })
        .unwrap();
        assert_eq!(p.account, "acct");
        assert_eq!(p.blob.as_deref(), Some("x/y"));
        assert!(!p.path_style);
        // Unknown account in the host: path-style.
        let p = resource_path(Some("other.blob.localhost"), "/acct/cont", |a| a == "acct").unwrap();
        assert_eq!(p.account, "acct");
        assert_eq!(p.container.as_deref(), Some("cont"));
        assert!(p.blob.is_none());
        let p = resource_path(None, "/acct", |_| false).unwrap();
        assert!(p.container.is_none());
        assert!(resource_path(None, "/", |_| false).is_err());
    }

    #[test]
    fn query_decoding_keeps_plus() {
        let q = parse_query(Some("comp=block&blockid=YQ%3D%3D&sig=a+b%2Bc")).unwrap();
        assert_eq!(q[1], ("blockid".into(), "YQ==".into()));
        assert_eq!(q[2], ("sig".into(), "a+b+c".into()));
    }

    #[test]
    fn ranges() {
        assert_eq!(
            parse_range("bytes=0-9").unwrap(),
            RangeSpec::From {
                first: 0,
                last: Some(9)
            }
        );
        assert_eq!(
            parse_range("bytes=5-").unwrap(),
            RangeSpec::From {
                first: 5,
                last: None
            }
        );
        assert_eq!(parse_range("bytes=-5").unwrap(), RangeSpec::Suffix(5));
        for bad in ["0-9", "bytes=9-0", "bytes=a-b", "bytes="] {
            assert!(parse_range(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn version_shape() {
        assert!(is_date_shaped("2099-12-31"));
        assert!(!is_date_shaped("2099-1-31"));
        assert!(!is_date_shaped("latest"));
    }
}
