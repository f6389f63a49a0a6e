//! Shared access signatures (service SAS for a container or blob, and account SAS): parsing,
//! signature check for every signed-version layout clients send, time window, IP range,
//! protocol, and the per-operation permission and resource checks.

use std::net::IpAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::error::BlobError;
use super::sign;

/// The level of the resource an operation acts on (the account SAS `srt` letters).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResourceLevel {
    /// The account/service (`s`): list containers, service properties, account info.
    Service,
    /// A container (`c`): create/delete/properties/metadata/list blobs.
    Container,
    /// A blob (`o`).
    Object,
}

/// What a request asks to do, for the permission check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Access {
    /// Resource level the operation acts on.
    pub level: ResourceLevel,
    /// The operation is allowed if the SAS grants any one of these permission letters.
    pub any_of: &'static [u8],
}

impl Access {
    /// Reading a blob or its properties, metadata, block list (`r`).
    pub const READ_BLOB: Access = Access::object(b"r");
    /// Creating or replacing blob content (`w`, or `c` for create).
    pub const WRITE_BLOB: Access = Access::object(b"wc");
    /// Changing properties, metadata or leases of an existing blob (`w`).
    pub const UPDATE_BLOB: Access = Access::object(b"w");
    /// Deleting a blob (`d`).
    pub const DELETE_BLOB: Access = Access::object(b"d");
    /// Reading or writing blob tags (`t`).
    pub const TAGS: Access = Access::object(b"t");
    /// Listing blobs in a container (`l`).
    pub const LIST_BLOBS: Access = Access::container(b"l");
    /// Reading container properties, metadata or ACL (`r`).
    pub const READ_CONTAINER: Access = Access::container(b"r");
    /// Creating a container (`c` or `w`).
    pub const CREATE_CONTAINER: Access = Access::container(b"cw");
    /// Changing container metadata or leases (`w`).
    pub const WRITE_CONTAINER: Access = Access::container(b"w");
    /// Deleting a container (`d`).
    pub const DELETE_CONTAINER: Access = Access::container(b"d");
    /// Listing containers (`l`).
    pub const LIST_CONTAINERS: Access = Access::service(b"l");
    /// Reading service properties or account information (`r`).
    pub const READ_SERVICE: Access = Access::service(b"r");
    /// Setting service properties (`w`).
    pub const WRITE_SERVICE: Access = Access::service(b"w");

    const fn object(any_of: &'static [u8]) -> Access {
        Access {
            level: ResourceLevel::Object,
            any_of,
        }
    }
    const fn container(any_of: &'static [u8]) -> Access {
        Access {
            level: ResourceLevel::Container,
            any_of,
        }
    }
    const fn service(any_of: &'static [u8]) -> Access {
        Access {
            level: ResourceLevel::Service,
            any_of,
        }
    }
}

/// The resource a request targets, as the SAS checks see it (names decoded).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Target<'a> {
    /// The account in the URL.
    pub account: &'a str,
    /// The container, if the request names one.
    pub container: Option<&'a str>,
    /// The blob, if the request names one.
    pub blob: Option<&'a str>,
}

/// What a valid SAS grants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SasGrant {
    /// An account SAS.
    Account {
        /// Permission letters (`sp`).
        permissions: String,
        /// Resource-type letters (`srt`).
        resource_types: String,
    },
    /// A service SAS on one container (`sr=c`).
    Container {
        /// Permission letters.
        permissions: String,
        /// The container it is for.
        container: String,
    },
    /// A service SAS on one blob (`sr=b`, `bs`, `bv`).
    Blob {
        /// Permission letters.
        permissions: String,
        /// The container.
        container: String,
        /// The blob.
        blob: String,
    },
}

/// Response header overrides a service SAS may carry (`rscc`, `rscd`, `rsce`, `rscl`, `rsct`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResponseOverrides {
    /// `Cache-Control`.
    pub cache_control: Option<String>,
    /// `Content-Disposition`.
    pub content_disposition: Option<String>,
    /// `Content-Encoding`.
    pub content_encoding: Option<String>,
    /// `Content-Language`.
    pub content_language: Option<String>,
    /// `Content-Type`.
    pub content_type: Option<String>,
}

/// True when the query string carries a SAS (a `sig` parameter).
pub fn is_sas(query: &[(String, String)]) -> bool {
    query.iter().any(|(k, _)| k == "sig")
}

fn param<'q>(query: &'q [(String, String)], name: &str) -> Option<&'q str> {
    query
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// Verifies the SAS in `query` for `target`, signed with the account's decoded `key`.
/// `now` is the server clock; `client_ip` the peer address; `https` whether the request came
/// over TLS. Returns what it grants; the caller then checks each operation with [`authorize`].
pub fn verify(
    query: &[(String, String)],
    target: &Target<'_>,
    key: &[u8],
    now: SystemTime,
    client_ip: Option<IpAddr>,
    https: bool,
) -> Result<(SasGrant, ResponseOverrides), BlobError> {
    let get = |n: &str| param(query, n).unwrap_or("");
    let sig = get("sig");
    let sv = get("sv");
    if sv.is_empty() {
        return Err(BlobError::authentication_failed(
            "sv is mandatory. Cannot be empty",
        ));
    }
    if sv < "2015-04-05" {
        return Err(BlobError::authentication_failed(format!(
            "Signed version {sv} is not supported."
        )));
    }
    let sp = get("sp");
    if sp.is_empty() {
        return Err(BlobError::authentication_failed(
            "sp is mandatory. Cannot be empty",
        ));
    }
    let se = get("se");
    let expiry = parse_sas_time(se).ok_or_else(|| {
        BlobError::authentication_failed("se is mandatory and must be an ISO 8601 UTC time")
    })?;
    let start =
        match get("st") {
            "" => None,
            st => Some(parse_sas_time(st).ok_or_else(|| {
                BlobError::authentication_failed("st must be an ISO 8601 UTC time")
            })?),
        };
    if !get("si").is_empty() {
        return Err(BlobError::authentication_failed(
            "Stored access policies (si) are not supported by this server.",
        ));
    }

    let account_sas = param(query, "ss").is_some() || param(query, "srt").is_some();
    let (string_to_sign, grant) = if account_sas {
        let ss = get("ss");
        let srt = get("srt");
        if !ss.contains('b') {
            return Err(BlobError::new(
                http::StatusCode::FORBIDDEN,
                "AuthorizationServiceMismatch",
                "This request is not authorized to perform this operation using this service.",
            ));
        }
        let mut sts = String::new();
        for v in [
            target.account,
            sp,
            ss,
            srt,
            get("st"),
            se,
            get("sip"),
            get("spr"),
            sv,
        ] {
            sts.push_str(v);
            sts.push('\n');
        }
        if sv >= "2020-12-06" {
            sts.push_str(get("ses"));
            sts.push('\n');
        }
        (
            sts,
            SasGrant::Account {
                permissions: sp.to_string(),
                resource_types: srt.to_string(),
            },
        )
    } else {
        let sr = get("sr");
        let container = target.container.unwrap_or("");
        let (canonical, grant) = match sr {
            "c" => (
                format!("/blob/{}/{}", target.account, container),
                SasGrant::Container {
                    permissions: sp.to_string(),
                    container: container.to_string(),
                },
            ),
            "b" | "bs" | "bv" => {
                let blob = target.blob.unwrap_or("");
                (
                    format!("/blob/{}/{}/{}", target.account, container, blob),
                    SasGrant::Blob {
                        permissions: sp.to_string(),
                        container: container.to_string(),
                        blob: blob.to_string(),
                    },
                )
            }
            other => {
                return Err(BlobError::authentication_failed(format!(
                    "Signed resource '{other}' is not supported."
                )))
            }
        };
        let mut fields: Vec<&str> = vec![
            sp,
            get("st"),
            se,
            &canonical,
            get("si"),
            get("sip"),
            get("spr"),
            sv,
        ];
        if sv >= "2018-11-09" {
            fields.push(sr);
            fields.push(get("snapshot"));
        }
        if sv >= "2020-12-06" {
            fields.push(get("ses"));
        }
        for r in ["rscc", "rscd", "rsce", "rscl", "rsct"] {
            fields.push(get(r));
        }
        (fields.join("\n"), grant)
    };

    if !sign::verify(key, &string_to_sign, sig) {
        return Err(BlobError::authentication_failed(format!(
            "Signature did not match. String to sign used was {string_to_sign}"
        )));
    }
    if let Some(start) = start {
        if now < start {
            return Err(BlobError::authentication_failed(
                "Signed start time is in the future.",
            ));
        }
    }
    if now > expiry {
        return Err(BlobError::authentication_failed(
            "Signed expiry time has passed.",
        ));
    }
    if let Some(range) = param(query, "sip").filter(|s| !s.is_empty()) {
        let allowed = client_ip.is_some_and(|ip| ip_in_range(ip, range));
        if !allowed {
            return Err(BlobError::new(
                http::StatusCode::FORBIDDEN,
                "AuthorizationSourceIPMismatch",
                "This request is not authorized to perform this operation using this source IP.",
            ));
        }
    }
    if let Some(spr) = param(query, "spr").filter(|s| !s.is_empty()) {
        let ok = spr
            .split(',')
            .any(|p| p == "http" || (p == "https" && https));
        if !ok {
            return Err(BlobError::new(
                http::StatusCode::FORBIDDEN,
                "AuthorizationProtocolMismatch",
                "This request is not authorized to perform this operation using this protocol.",
            ));
        }
    }
    let overrides = ResponseOverrides {
        cache_control: param(query, "rscc").map(str::to_string),
        content_disposition: param(query, "rscd").map(str::to_string),
        content_encoding: param(query, "rsce").map(str::to_string),
        content_language: param(query, "rscl").map(str::to_string),
        content_type: param(query, "rsct").map(str::to_string),
    };
    Ok((grant, overrides))
}

/// Checks that `grant` allows `access` on `target`.
pub fn authorize(grant: &SasGrant, access: Access, target: &Target<'_>) -> Result<(), BlobError> {
    let has = |perms: &str| access.any_of.iter().any(|p| perms.as_bytes().contains(p));
    match grant {
        SasGrant::Account {
            permissions,
            resource_types,
        } => {
            let letter = match access.level {
                ResourceLevel::Service => b's',
                ResourceLevel::Container => b'c',
                ResourceLevel::Object => b'o',
            };
            if !resource_types.as_bytes().contains(&letter) {
                return Err(BlobError::resource_type_mismatch());
            }
            if !has(permissions) {
                return Err(BlobError::permission_mismatch());
            }
        }
        SasGrant::Container {
            permissions,
            container,
        } => {
            // A container SAS covers its blobs and listing, never the service or creating /
            // deleting the container itself.
            let allowed_level = match access.level {
                ResourceLevel::Object => true,
                ResourceLevel::Container => {
                    access == Access::LIST_BLOBS || access == Access::READ_CONTAINER
                }
                ResourceLevel::Service => false,
            };
            if !allowed_level || target.container != Some(container.as_str()) {
                return Err(BlobError::authorization_failure());
            }
            if !has(permissions) {
                return Err(BlobError::permission_mismatch());
            }
        }
        SasGrant::Blob {
            permissions,
            container,
            blob,
        } => {
            if access.level != ResourceLevel::Object
                || target.container != Some(container.as_str())
                || target.blob != Some(blob.as_str())
            {
                return Err(BlobError::authorization_failure());
            }
            if !has(permissions) {
                return Err(BlobError::permission_mismatch());
            }
        }
    }
    Ok(())
}

fn ip_in_range(ip: IpAddr, range: &str) -> bool {
    let (lo, hi) = match range.split_once('-') {
        Some((a, b)) => (a.trim(), b.trim()),
        None => (range.trim(), range.trim()),
    };
    match (lo.parse::<IpAddr>(), hi.parse::<IpAddr>()) {
        (Ok(lo), Ok(hi)) => {
            let ip = match (ip, lo) {
                (IpAddr::V6(v6), IpAddr::V4(_)) => match v6.to_ipv4_mapped() {
                    Some(v4) => IpAddr::V4(v4),
                    None => return false,
                },
                _ => ip,
            };
            lo <= ip && ip <= hi
        }
        _ => false,
    }
}

/// Parses the ISO 8601 UTC times SAS tokens carry: `YYYY-MM-DD`, `YYYY-MM-DDThh:mmZ`,
/// `YYYY-MM-DDThh:mm:ssZ` and `YYYY-MM-DDThh:mm:ss.fffffffZ`.
pub fn parse_sas_time(s: &str) -> Option<SystemTime> {
    let b = s.as_bytes();
    let num = |range: std::ops::Range<usize>| -> Option<u32> {
        let part = b.get(range)?;
        if part.is_empty() || !part.iter().all(u8::is_ascii_digit) {
            return None;
        }
        std::str::from_utf8(part).ok()?.parse().ok()
    };
    if b.len() < 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let (year, month, day) = (num(0..4)? as i32, num(5..7)?, num(8..10)?);
    let (mut hour, mut minute, mut second) = (0, 0, 0);
    if b.len() > 10 {
        if b[10] != b'T' || b.len() < 16 || b[13] != b':' {
            return None;
        }
        hour = num(11..13)?;
        minute = num(14..16)?;
        let mut rest = &b[16..];
        if rest.first() == Some(&b':') {
            second = num(17..19)?;
            rest = &b[19..];
            if rest.first() == Some(&b'.') {
                let digits = rest[1..].iter().take_while(|c| c.is_ascii_digit()).count();
                if digits == 0 {
                    return None;
                }
                rest = &rest[1 + digits..];
            }
        }
        if rest != b"Z" {
            return None;
        }
    }
    if !(1..=12).contains(&month) || day == 0 || day > 31 || hour > 23 || minute > 59 || second > 60
    {
        return None;
    }
    let days = days_from_civil(year, month, day)?;
    let secs = days * 86_400 + i64::from(hour) * 3600 + i64::from(minute) * 60 + i64::from(second);
    u64::try_from(secs)
        .ok()
        .map(|s| UNIX_EPOCH + Duration::from_secs(s))
}

/// Days since 1970-01-01 of a proleptic Gregorian date, validating the day of the month.
fn days_from_civil(year: i32, month: u32, day: u32) -> Option<i64> {
    let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    let month_days = [
        31,
        if leap { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    if day > month_days[(month - 1) as usize] {
        return None;
    }
    let y = i64::from(year) - i64::from(month <= 2);
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    Some(era * 146_097 + doe - 719_468)
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &[u8] = b"sas test key 0123456789";

    fn q(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn target<'a>(c: Option<&'a str>, b: Option<&'a str>) -> Target<'a> {
        Target {
            account: "acct",
            container: c,
            blob: b,
        }
    }

    fn signed_container_sas(sp: &str, se: &str) -> Vec<(String, String)> {
        // The layout of sv=2020-12-06 and later.
        let sts = [
            sp,
            "",
            se,
            "/blob/acct/cont",
            "",
            "",
            "",
            "2025-01-05",
            "c",
            "",
            "",
            "",
            "",
            "",
            "",
            "",
        ]
        .join("\n");
        let sig = sign::sign(KEY, &sts);
        q(&[
            ("sv", "2025-01-05"),
            ("sr", "c"),
            ("sp", sp),
            ("se", se),
            ("sig", &sig),
        ])
    }

    #[test]
    fn parses_sas_times() {
        let t = parse_sas_time("2026-11-22T05:06:07Z").unwrap();
        assert_eq!(
            t.duration_since(UNIX_EPOCH).unwrap().as_secs(),
            1_795_323_967
        );
        assert_eq!(parse_sas_time("2026-11-22T05:06:07.1234567Z"), Some(t));
        assert!(parse_sas_time("2026-11-22").is_some());
        assert!(parse_sas_time("2026-11-22T05:06Z").is_some());
        for bad in [
            "",
            "2026-13-01",
            "2026-02-30",
            "2026-11-22T25:00:00Z",
            "2026-11-22T05:06:07",
            "yesterday",
            "2026-11-22T05:06:07.Z",
        ] {
            assert!(parse_sas_time(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn container_sas_grants_its_permissions_only() {
        let query = signed_container_sas("rl", "2099-01-01T00:00:00Z");
        let t = target(Some("cont"), Some("a/b.txt"));
        let (grant, _) = verify(&query, &t, KEY, SystemTime::now(), None, false).unwrap();
        authorize(&grant, Access::READ_BLOB, &t).unwrap();
        authorize(&grant, Access::LIST_BLOBS, &target(Some("cont"), None)).unwrap();
        assert_eq!(
            authorize(&grant, Access::WRITE_BLOB, &t).unwrap_err().code,
            "AuthorizationPermissionMismatch"
        );
        assert_eq!(
            authorize(&grant, Access::READ_BLOB, &target(Some("other"), Some("x")))
                .unwrap_err()
                .code,
            "AuthorizationFailure"
        );
        assert!(authorize(
            &grant,
            Access::DELETE_CONTAINER,
            &target(Some("cont"), None)
        )
        .is_err());
    }

    #[test]
    fn rejects_expired_tampered_and_future_sas() {
        let t = target(Some("cont"), None);
        let expired = signed_container_sas("r", "2001-01-01T00:00:00Z");
        assert_eq!(
            verify(&expired, &t, KEY, SystemTime::now(), None, false)
                .unwrap_err()
                .code,
            "AuthenticationFailed"
        );
        let mut tampered = signed_container_sas("r", "2099-01-01T00:00:00Z");
        for (k, v) in tampered.iter_mut() {
            if k == "sp" {
                *v = "rwdl".into();
            }
        }
        assert_eq!(
            verify(&tampered, &t, KEY, SystemTime::now(), None, false)
                .unwrap_err()
                .code,
            "AuthenticationFailed"
        );
        let good = signed_container_sas("r", "2099-01-01T00:00:00Z");
        assert!(verify(&good, &t, b"wrong key", SystemTime::now(), None, false).is_err());
        // The signature names the container: it does not verify for another one.
        assert!(verify(
            &good,
            &target(Some("other"), None),
            KEY,
            SystemTime::now(),
            None,
            false
        )
        .is_err());
    }

    #[test]
    fn account_sas_checks_services_resource_types_and_ip() {
        let fields = [
            "acct",
            "rwl",
            "b",
            "co",
            "",
            "2099-01-01T00:00:00Z",
            "127.0.0.1",
            "",
            "2025-01-05",
            "",
            "",
        ];
        let sig = sign::sign(KEY, &fields.join("\n"));
        let query = q(&[
            ("sv", "2025-01-05"),
            ("ss", "b"),
            ("srt", "co"),
            ("sp", "rwl"),
            ("se", "2099-01-01T00:00:00Z"),
            ("sip", "127.0.0.1"),
            ("sig", &sig),
        ]);
        let t = target(Some("cont"), Some("blob"));
        let local: IpAddr = "127.0.0.1".parse().unwrap();
        let (grant, _) = verify(&query, &t, KEY, SystemTime::now(), Some(local), false).unwrap();
        authorize(&grant, Access::WRITE_BLOB, &t).unwrap();
        authorize(&grant, Access::LIST_BLOBS, &target(Some("cont"), None)).unwrap();
        assert_eq!(
            authorize(&grant, Access::LIST_CONTAINERS, &target(None, None))
                .unwrap_err()
                .code,
            "AuthorizationResourceTypeMismatch"
        );
        assert_eq!(
            authorize(&grant, Access::DELETE_BLOB, &t).unwrap_err().code,
            "AuthorizationPermissionMismatch"
        );
        let other: IpAddr = "10.1.2.3".parse().unwrap();
        assert_eq!(
            verify(&query, &t, KEY, SystemTime::now(), Some(other), false)
                .unwrap_err()
                .code,
            "AuthorizationSourceIPMismatch"
        );
    }

    #[test]
    fn ip_ranges() {
        let ip: IpAddr = "10.0.0.5".parse().unwrap();
        assert!(ip_in_range(ip, "10.0.0.1-10.0.0.9"));
        assert!(!ip_in_range(ip, "10.0.0.6-10.0.0.9"));
        assert!(ip_in_range(ip, "10.0.0.5"));
        assert!(!ip_in_range(ip, "garbage"));
        let mapped: IpAddr = "::ffff:10.0.0.5".parse().unwrap();
        assert!(ip_in_range(mapped, "10.0.0.5"));
    }
}
