//! SharedKey (and SharedKey Lite) request authentication: rebuilds the string-to-sign the
//! client signed and compares signatures.
//!
//! Clients disagree on two details, so every accepted spelling is tried:
//! - the order of `x-ms-*` headers: plain byte order (the REST spec, .NET, Go, azcopy) or the
//!   collation table the Python SDK sorts with (it differs for `-` and `_`);
//! - for path-style URLs (`/account/container/blob`), whether the account name is repeated
//!   in the canonicalized resource (`/account/account/container/blob`, what SDKs sign against
//!   an emulator endpoint) or not.

use std::cmp::Ordering;

use http::HeaderMap;

use super::error::BlobError;
use super::sign;

/// What a SharedKey check needs from the request.
pub struct SignedRequest<'a> {
    /// HTTP method, upper case.
    pub method: &'a str,
    /// The path exactly as it arrived on the wire (still percent-encoded).
    pub raw_path: &'a str,
    /// The decoded query parameters in arrival order.
    pub query: &'a [(String, String)],
    /// The request headers.
    pub headers: &'a HeaderMap,
    /// True when the account was named in the path rather than in the host.
    pub path_style: bool,
}

/// A parsed `Authorization: SharedKey account:signature` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SharedKeyHeader {
    /// True for `SharedKeyLite`.
    pub lite: bool,
    /// The account the client claims.
    pub account: String,
    /// The base64 signature.
    pub signature: String,
}

/// Parses the Authorization header, or reports AuthenticationFailed for an unknown scheme.
pub fn parse_authorization(value: &str) -> Result<SharedKeyHeader, BlobError> {
    let (scheme, rest) = value
        .trim()
        .split_once(' ')
        .ok_or_else(|| BlobError::authentication_failed("Authorization header is malformed."))?;
    let lite = match scheme {
        "SharedKey" => false,
        "SharedKeyLite" => true,
        other => {
            return Err(BlobError::authentication_failed(format!(
                "Authorization scheme {other} is not supported."
            )))
        }
    };
    let (account, signature) = rest
        .trim()
        .split_once(':')
        .ok_or_else(|| BlobError::authentication_failed("Authorization header is malformed."))?;
    if account.is_empty() || signature.is_empty() {
        return Err(BlobError::authentication_failed(
            "Authorization header is malformed.",
        ));
    }
    Ok(SharedKeyHeader {
        lite,
        account: account.to_string(),
        signature: signature.to_string(),
    })
}

/// Checks a SharedKey / SharedKeyLite signature for `account` against its decoded `key`.
pub fn verify_shared_key(
    req: &SignedRequest<'_>,
    auth: &SharedKeyHeader,
    account: &str,
    key: &[u8],
) -> Result<(), BlobError> {
    for order in [HeaderOrder::Bytes, HeaderOrder::PythonSdk] {
        let headers = canonicalized_headers(req.headers, order);
        for resource in resource_paths(req, account) {
            let sts = if auth.lite {
                lite_string_to_sign(req, &headers, &resource)
            } else {
                string_to_sign(req, &headers, &resource)
            };
            if sign::verify(key, &sts, &auth.signature) {
                return Ok(());
            }
        }
    }
    let expected = string_to_sign(
        req,
        &canonicalized_headers(req.headers, HeaderOrder::Bytes),
        &resource_paths(req, account)[0],
    );
    Err(BlobError::authentication_failed(format!(
        "The MAC signature found in the HTTP request '{}' is not the same as any computed signature. Server used following string to sign: '{}'.",
        auth.signature, expected
    )))
}

/// Builds the full SharedKey string-to-sign for `resource_path` (`/account/...`), for clients
/// and tests that sign requests the way the server checks them.
pub fn string_to_sign_for(req: &SignedRequest<'_>, resource_path: &str) -> String {
    string_to_sign(
        req,
        &canonicalized_headers(req.headers, HeaderOrder::Bytes),
        resource_path,
    )
}

fn header<'h>(headers: &'h HeaderMap, name: &str) -> &'h str {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

fn string_to_sign(req: &SignedRequest<'_>, canon_headers: &str, resource_path: &str) -> String {
    let h = req.headers;
    let content_length = match header(h, "content-length") {
        "0" => "",
        other => other,
    };
    let mut s = String::with_capacity(256);
    s.push_str(req.method);
    s.push('\n');
    for v in [
        header(h, "content-encoding"),
        header(h, "content-language"),
        content_length,
        header(h, "content-md5"),
        header(h, "content-type"),
        header(h, "date"),
        header(h, "if-modified-since"),
        header(h, "if-match"),
        header(h, "if-none-match"),
        header(h, "if-unmodified-since"),
        header(h, "range"),
    ] {
        s.push_str(v);
        s.push('\n');
    }
    s.push_str(canon_headers);
    s.push_str(resource_path);
    s.push_str(&canonicalized_query(req.query));
    s
}

fn lite_string_to_sign(
    req: &SignedRequest<'_>,
    canon_headers: &str,
    resource_path: &str,
) -> String {
    let h = req.headers;
    let mut s = String::with_capacity(128);
    s.push_str(req.method);
    s.push('\n');
    for v in [
        header(h, "content-md5"),
        header(h, "content-type"),
        header(h, "date"),
    ] {
        s.push_str(v);
        s.push('\n');
    }
    s.push_str(canon_headers);
    s.push_str(resource_path);
    if let Some((_, comp)) = req
        .query
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("comp"))
    {
        s.push_str("?comp=");
        s.push_str(comp);
    }
    s
}

/// The canonicalized resource paths a client may have signed, most likely first.
fn resource_paths(req: &SignedRequest<'_>, account: &str) -> Vec<String> {
    let path = if req.raw_path.is_empty() {
        "/"
    } else {
        req.raw_path
    };
    let mut out = vec![format!("/{account}{path}")];
    if req.path_style {
        // Path-style: the path starts with /account; some clients sign it without the repeat.
        let prefix = format!("/{account}");
        if let Some(rest) = path.strip_prefix(&prefix) {
            let rest = if rest.is_empty() { "/" } else { rest };
            out.push(format!("/{account}{rest}"));
        }
    }
    out
}

fn canonicalized_query(query: &[(String, String)]) -> String {
    let mut params: Vec<(String, &str)> = query
        .iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), v.as_str()))
        .collect();
    params.sort();
    let mut out = String::new();
    let mut i = 0;
    while i < params.len() {
        let name = &params[i].0;
        let mut values = vec![params[i].1];
        let mut j = i + 1;
        while j < params.len() && params[j].0 == *name {
            values.push(params[j].1);
            j += 1;
        }
        out.push('\n');
        out.push_str(name);
        out.push(':');
        out.push_str(&values.join(","));
        i = j;
    }
    out
}

#[derive(Clone, Copy)]
enum HeaderOrder {
    Bytes,
    PythonSdk,
}

fn canonicalized_headers(headers: &HeaderMap, order: HeaderOrder) -> String {
    let mut ms: Vec<(String, String)> = Vec::new();
    for name in headers.keys() {
        let n = name.as_str();
        if !n.starts_with("x-ms-") {
            continue;
        }
        let values: Vec<&str> = headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .map(str::trim)
            .collect();
        ms.push((n.to_string(), values.join(",")));
    }
    match order {
        HeaderOrder::Bytes => ms.sort_by(|a, b| a.0.cmp(&b.0)),
        HeaderOrder::PythonSdk => ms.sort_by(|a, b| python_sdk_collation(&a.0, &b.0)),
    }
    let mut out = String::new();
    for (n, v) in ms {
        out.push_str(&n);
        out.push(':');
        out.push_str(&v);
        out.push('\n');
    }
    out
}

/// First-level weights of the collation the Python SDK sorts `x-ms-*` header names with
/// (indexed by byte; 0 = ignored at this level). Only ASCII is defined there.
fn level0_weight(c: u8) -> u16 {
    match c {
        33 => 0x71c,
        35 => 0x71f,
        36 => 0x721,
        37 => 0x723,
        38 => 0x725,
        42 => 0x72d,
        43 => 0x803,
        46 => 0x733,
        48 => 0xd03,
        49 => 0xd1a,
        50 => 0xd1c,
        51 => 0xd1e,
        52 => 0xd20,
        53 => 0xd22,
        54 => 0xd24,
        55 => 0xd26,
        56 => 0xd28,
        57 => 0xd2a,
        65 => 0xe02,
        66 => 0xe09,
        67 => 0xe0a,
        68 => 0xe1a,
        69 => 0xe21,
        70 => 0xe23,
        71 => 0xe25,
        72 => 0xe2c,
        73 => 0xe32,
        74 => 0xe35,
        75 => 0xe36,
        76 => 0xe48,
        77 => 0xe51,
        78 => 0xe70,
        79 => 0xe7c,
        80 => 0xe7e,
        81 => 0xe89,
        82 => 0xe8a,
        83 => 0xe91,
        84 => 0xe99,
        85 => 0xe9f,
        86 => 0xea2,
        87 => 0xea4,
        88 => 0xea6,
        89 => 0xea7,
        90 => 0xea9,
        94 => 0x743,
        95 => 0x744,
        96 => 0x748,
        97 => 0xe02,
        98 => 0xe09,
        99 => 0xe0a,
        100 => 0xe1a,
        101 => 0xe21,
        102 => 0xe23,
        103 => 0xe25,
        104 => 0xe2c,
        105 => 0xe32,
        106 => 0xe35,
        107 => 0xe36,
        108 => 0xe48,
        109 => 0xe51,
        110 => 0xe70,
        111 => 0xe7c,
        112 => 0xe7e,
        113 => 0xe89,
        114 => 0xe8a,
        115 => 0xe91,
        116 => 0xe99,
        117 => 0xe9f,
        118 => 0xea2,
        119 => 0xea4,
        120 => 0xea6,
        121 => 0xea7,
        122 => 0xea9,
        124 => 0x74c,
        126 => 0x750,
        _ => 0,
    }
}

/// Second-level weights: only `'` and `-`, which the first level ignores.
fn level1_weight(c: u8) -> u16 {
    match c {
        39 => 0x8012,
        45 => 0x8212,
        _ => 0,
    }
}

/// The Python SDK's header-name comparison (a two-level table collation), ported exactly so
/// that a signature it made verifies here.
fn python_sdk_collation(lhs: &str, rhs: &str) -> Ordering {
    const END: u16 = 0x1;
    let (l, r) = (lhs.as_bytes(), rhs.as_bytes());
    let levels: [fn(u8) -> u16; 2] = [level0_weight, level1_weight];
    let (mut level, mut i, mut j) = (0usize, 0usize, 0usize);
    while level < levels.len() {
        if level == levels.len() - 1 && i != j {
            return if i > j {
                Ordering::Less
            } else {
                Ordering::Greater
            };
        }
        let w1 = l.get(i).map_or(END, |&c| levels[level](c));
        let w2 = r.get(j).map_or(END, |&c| levels[level](c));
        if w1 == END && w2 == END {
            i = 0;
            j = 0;
            level += 1;
        } else if w1 == w2 {
            i += 1;
            j += 1;
        } else if w1 == 0 {
            i += 1;
        } else if w2 == 0 {
            j += 1;
        } else {
            return w1.cmp(&w2);
        }
    }
    Ordering::Equal
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    #[test]
    fn matches_the_documented_example() {
        // The example string-to-sign from the Azure REST documentation.
        let h = headers(&[
            ("x-ms-date", "Fri, 26 Jun 2015 23:39:12 GMT"),
            ("x-ms-version", "2015-02-21"),
        ]);
        let q = vec![
            ("restype".to_string(), "container".to_string()),
            ("comp".to_string(), "metadata".to_string()),
            ("timeout".to_string(), "20".to_string()),
        ];
        let req = SignedRequest {
            method: "GET",
            raw_path: "/mycontainer",
            query: &q,
            headers: &h,
            path_style: false,
        };
        assert_eq!(
            string_to_sign_for(&req, "/myaccount/mycontainer"),
            "GET\n\n\n\n\n\n\n\n\n\n\n\nx-ms-date:Fri, 26 Jun 2015 23:39:12 GMT\nx-ms-version:2015-02-21\n/myaccount/mycontainer\ncomp:metadata\nrestype:container\ntimeout:20"
        );
    }

    #[test]
    fn verifies_signatures_and_rejects_tampering() {
        let key = b"0123456789abcdef";
        let h = headers(&[
            ("x-ms-date", "Fri, 26 Jun 2015 23:39:12 GMT"),
            ("x-ms-version", "2025-01-05"),
            ("content-length", "5"),
        ]);
        let q = vec![("comp".to_string(), "block".to_string())];
        let req = SignedRequest {
            method: "PUT",
            raw_path: "/acct/c/b%2Fx",
            query: &q,
            headers: &h,
            path_style: true,
        };
        // Signed the SDK way: account repeated.
        let sts = string_to_sign_for(&req, "/acct/acct/c/b%2Fx");
        let auth = SharedKeyHeader {
            lite: false,
            account: "acct".into(),
            signature: sign::sign(key, &sts),
        };
        verify_shared_key(&req, &auth, "acct", key).unwrap();
        // Signed without the repeat (Azurite accepts this too).
        let sts = string_to_sign_for(&req, "/acct/c/b%2Fx");
        let auth2 = SharedKeyHeader {
            signature: sign::sign(key, &sts),
            ..auth.clone()
        };
        verify_shared_key(&req, &auth2, "acct", key).unwrap();
        // Wrong key, wrong method.
        let err = verify_shared_key(&req, &auth, "acct", b"other key").unwrap_err();
        assert_eq!(err.code, "AuthenticationFailed");
        assert_eq!(err.status, http::StatusCode::FORBIDDEN);
        let req_get = SignedRequest {
            method: "GET",
            ..req
        };
        assert!(verify_shared_key(&req_get, &auth, "acct", key).is_err());
    }

    #[test]
    fn python_collation_differs_from_byte_order_where_the_sdk_does() {
        // '-' is ignored at the first level and '_' weighs less than letters.
        let mut names = [
            "x-ms-meta-ab",
            "x-ms-meta-a-c",
            "x-ms-meta-a_b",
            "x-ms-date",
        ];
        names.sort_by(|a, b| python_sdk_collation(a, b));
        assert_eq!(names[0], "x-ms-date");
        // Checked against the SDK's own `compare` (azure-storage-blob 12.31).
        assert_eq!(
            names[1..],
            ["x-ms-meta-a_b", "x-ms-meta-ab", "x-ms-meta-a-c"]
        );
        let mut more = vec![
            "x-ms-meta-a-b",
            "x-ms-meta-b",
            "x-ms-meta-ab",
            "x-ms-meta-a_b",
            "x-ms-meta-a'b",
            "x-ms-meta-a1",
        ];
        more.sort_by(|a, b| python_sdk_collation(a, b));
        assert_eq!(
            more,
            [
                "x-ms-meta-a_b",
                "x-ms-meta-a1",
                "x-ms-meta-ab",
                "x-ms-meta-a'b",
                "x-ms-meta-a-b",
                "x-ms-meta-b"
            ]
        );
    }

    #[test]
    fn parses_authorization_headers() {
        let a = parse_authorization("SharedKey acct:c2ln").unwrap();
        assert_eq!(a.account, "acct");
        assert!(!a.lite);
        assert!(parse_authorization("SharedKeyLite acct:c2ln").unwrap().lite);
        for bad in [
            "",
            "Bearer x",
            "SharedKey",
            "SharedKey acct",
            "SharedKey :sig",
            "SharedKey acct:",
        ] {
            assert!(parse_authorization(bad).is_err(), "{bad}");
        }
    }
}
