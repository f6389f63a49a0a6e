//! Conversions between s3s DTOs and the protocol-neutral store types.

use std::collections::BTreeMap;
use std::time::SystemTime;

use base64::Engine as _;
use bytes::Bytes;
use futures::StreamExt;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use s3s::dto::{ETag, Metadata, StreamingBlob, Timestamp};
use s3s::{s3_error, S3Error, S3ErrorCode, S3Request};

use crate::checksum::{valid_checksum_value, BodyCheck, ChecksumAlgo};
use crate::store::{ByteStream, ObjectInfo, ObjectProps, StoreError};

/// Maps a store error to the S3 error a client would get from S3.
pub fn s3_err(e: StoreError) -> S3Error {
    use S3ErrorCode as C;
    let (code, msg): (C, String) = match e {
        StoreError::NoSuchAccount(a) => (C::InvalidAccessKeyId, format!("no such account {a}")),
        StoreError::NoSuchBucket(_) => (
            C::NoSuchBucket,
            "The specified bucket does not exist".into(),
        ),
        StoreError::BucketAlreadyExists(_) => (
            C::BucketAlreadyOwnedByYou,
            "Your previous request to create the named bucket succeeded and you already own it."
                .into(),
        ),
        StoreError::BucketNotEmpty(_) => (
            C::BucketNotEmpty,
            "The bucket you tried to delete is not empty".into(),
        ),
        StoreError::NoSuchKey(_) => (C::NoSuchKey, "The specified key does not exist.".into()),
        StoreError::NoSuchUpload(_) => (
            C::NoSuchUpload,
            "The specified multipart upload does not exist.".into(),
        ),
        StoreError::InvalidPart(m) => (C::InvalidPart, m),
        StoreError::PreconditionFailed => (
            C::PreconditionFailed,
            "At least one of the pre-conditions you specified did not hold".into(),
        ),
        StoreError::BadDigest(m) => (C::BadDigest, m),
        StoreError::InvalidDigest(m) => (C::InvalidDigest, m),
        StoreError::IncompleteBody(m) => (C::IncompleteBody, m),
        StoreError::InvalidArgument(m) => (C::InvalidArgument, m),
        StoreError::InvalidRange => (
            C::InvalidRange,
            "The requested range is not satisfiable".into(),
        ),
        StoreError::EntityTooLarge => (
            C::EntityTooLarge,
            "Your proposed upload exceeds the maximum allowed size".into(),
        ),
        StoreError::Metadata(m) | StoreError::Data(m) => {
            tracing::error!(error = %m, "internal error");
            (
                C::InternalError,
                "We encountered an internal error. Please try again.".into(),
            )
        }
        StoreError::Unavailable(m) => (C::ServiceUnavailable, m),
    };
    S3Error::with_message(code, msg)
}

/// The account a signed request acts for (the access key).
pub fn account<T>(req: &S3Request<T>) -> Result<String, S3Error> {
    match &req.credentials {
        Some(c) => Ok(c.access_key.clone()),
        None => Err(s3_error!(AccessDenied, "Anonymous access is not allowed")),
    }
}

/// `SystemTime` → s3s timestamp.
pub fn ts(t: SystemTime) -> Timestamp {
    Timestamp::from(t)
}

/// s3s timestamp → `SystemTime`.
pub fn systime(t: &Timestamp) -> SystemTime {
    let odt: time::OffsetDateTime = t.clone().into();
    SystemTime::from(odt)
}

/// Seconds since the epoch (HTTP dates have second resolution).
pub fn secs(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The quoted-strong S3 ETag of an object.
pub fn etag(info: &ObjectInfo) -> ETag {
    ETag::Strong(info.etag.clone())
}

/// Props from the content headers and metadata of a write request.
#[allow(clippy::too_many_arguments)]
pub fn props(
    content_type: Option<String>,
    content_encoding: Option<String>,
    content_language: Option<String>,
    content_disposition: Option<String>,
    cache_control: Option<String>,
    expires: Option<&Timestamp>,
    metadata: Option<Metadata>,
) -> ObjectProps {
    let expires = expires.and_then(|t| {
        let mut buf = Vec::new();
        t.format(s3s::dto::TimestampFormat::HttpDate, &mut buf)
            .ok()?;
        String::from_utf8(buf).ok()
    });
    // `aws-chunked` describes the transfer, not the object: S3 does not store it.
    let content_encoding = content_encoding.and_then(|e| {
        let kept: Vec<&str> = e
            .split(',')
            .map(str::trim)
            .filter(|x| !x.is_empty() && !x.eq_ignore_ascii_case("aws-chunked"))
            .collect();
        (!kept.is_empty()).then(|| kept.join(", "))
    });
    ObjectProps {
        content_type,
        content_encoding,
        content_language,
        content_disposition,
        cache_control,
        expires,
        user_metadata: metadata
            .map(|m| {
                m.into_iter()
                    .map(|(k, v)| (k.to_ascii_lowercase(), v))
                    .collect()
            })
            .unwrap_or_default(),
    }
}

/// User metadata for a response, `None` when empty.
pub fn metadata(p: &ObjectProps) -> Option<Metadata> {
    if p.user_metadata.is_empty() {
        None
    } else {
        Some(
            p.user_metadata
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        )
    }
}

/// The stored `Expires` as a timestamp.
pub fn expires(p: &ObjectProps) -> Option<Timestamp> {
    p.expires
        .as_deref()
        .and_then(|s| Timestamp::parse(s3s::dto::TimestampFormat::HttpDate, s).ok())
}

/// The checksum value stored for `algo`, if any.
pub fn checksum_of(list: &[(ChecksumAlgo, String)], algo: ChecksumAlgo) -> Option<String> {
    list.iter()
        .find(|(a, _)| *a == algo)
        .map(|(_, v)| v.clone())
}

/// Expected checksums announced as headers, each validated for shape.
pub struct ChecksumHeaders {
    /// x-amz-checksum-crc32
    pub crc32: Option<String>,
    /// x-amz-checksum-crc32c
    pub crc32c: Option<String>,
    /// x-amz-checksum-crc64nvme
    pub crc64nvme: Option<String>,
    /// x-amz-checksum-sha1
    pub sha1: Option<String>,
    /// x-amz-checksum-sha256
    pub sha256: Option<String>,
}

/// Builds the body check of a PUT / UploadPart: Content-MD5, checksum headers, the SDK's
/// algorithm, announced trailers and the content length.
pub fn body_check<T>(
    req: &S3Request<T>,
    content_md5: Option<&str>,
    sums: ChecksumHeaders,
    algorithm: Option<&str>,
    content_length: Option<i64>,
) -> Result<BodyCheck, S3Error> {
    let mut check = BodyCheck::default();
    if let Some(m) = content_md5 {
        let raw = base64::engine::general_purpose::STANDARD
            .decode(m.trim())
            .map_err(|_| s3_error!(InvalidDigest, "The Content-MD5 you specified is not valid."))?;
        let arr: [u8; 16] = raw
            .try_into()
            .map_err(|_| s3_error!(InvalidDigest, "The Content-MD5 you specified is not valid."))?;
        check.content_md5 = Some(arr);
    }
    let pairs = [
        (ChecksumAlgo::Crc32, sums.crc32),
        (ChecksumAlgo::Crc32c, sums.crc32c),
        (ChecksumAlgo::Crc64Nvme, sums.crc64nvme),
        (ChecksumAlgo::Sha1, sums.sha1),
        (ChecksumAlgo::Sha256, sums.sha256),
    ];
    for (algo, v) in pairs {
        if let Some(v) = v {
            if !valid_checksum_value(algo, &v) {
                return Err(S3Error::with_message(
                    S3ErrorCode::BadDigest,
                    format!(
                        "Value for x-amz-checksum-{} header is invalid.",
                        algo.name().to_ascii_lowercase()
                    ),
                ));
            }
            check.expected.push((algo, v));
        }
    }
    if let Some(a) = algorithm {
        let algo = ChecksumAlgo::parse(a).ok_or_else(|| {
            s3_error!(
                InvalidRequest,
                "Checksum algorithm provided is unsupported."
            )
        })?;
        check.algorithms.push(algo);
    }
    // Trailing checksums: `x-amz-trailer: x-amz-checksum-crc32` announces the algorithm.
    let mut trailer_algos = Vec::new();
    for v in req.headers.get_all("x-amz-trailer") {
        let Ok(s) = v.to_str() else { continue };
        for name in s.split(',') {
            let name = name.trim().to_ascii_lowercase();
            if let Some(a) = name
                .strip_prefix("x-amz-checksum-")
                .and_then(ChecksumAlgo::parse)
            {
                trailer_algos.push(a);
            }
        }
    }
    if !trailer_algos.is_empty() {
        check.algorithms.extend(trailer_algos.iter().copied());
        let handle = req.trailing_headers.clone();
        check.trailers = Some(Box::new(move || {
            let mut out = Vec::new();
            let Some(h) = handle.and_then(|h| h.take()) else {
                return Ok(out);
            };
            for algo in trailer_algos {
                let name = format!("x-amz-checksum-{}", algo.name().to_ascii_lowercase());
                if let Some(v) = h.get(name.as_str()) {
                    let v = v
                        .to_str()
                        .map_err(|_| StoreError::InvalidDigest(format!("{name} is not text")))?;
                    out.push((algo, v.trim().to_owned()));
                }
            }
            Ok(out)
        }));
    }
    // With aws-chunked the Content-Length is the encoded size; s3s strips the framing and the
    // decoded length comes from x-amz-decoded-content-length.
    let decoded = req
        .headers
        .get("x-amz-decoded-content-length")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    check.expected_len = decoded.or_else(|| content_length.and_then(|n| u64::try_from(n).ok()));
    Ok(check)
}

/// Adapts an s3s request body to the store's stream type.
pub fn body_stream(blob: StreamingBlob) -> ByteStream {
    Box::pin(blob.map(|r| r.map_err(|e| StoreError::IncompleteBody(e.to_string()))))
}

/// A store stream as an s3s response body.
pub fn blob(stream: ByteStream) -> StreamingBlob {
    StreamingBlob::wrap(stream)
}

/// An empty body.
pub fn empty_body() -> ByteStream {
    Box::pin(futures::stream::empty::<Result<Bytes, StoreError>>())
}

const URL_ENCODE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~')
    .remove(b'/');

/// S3's `encoding-type=url` encoding of a key or prefix.
pub fn url_encode(s: &str) -> String {
    utf8_percent_encode(s, URL_ENCODE).to_string()
}

/// Parses the `x-amz-tagging` header (`k1=v1&k2=v2`, form-encoded).
pub fn parse_tagging_header(s: &str) -> Result<Vec<(String, String)>, S3Error> {
    let mut out = Vec::new();
    for pair in s.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let dec = |x: &str| {
            percent_encoding::percent_decode_str(&x.replace('+', " "))
                .decode_utf8()
                .map(|c| c.into_owned())
                .map_err(|_| s3_error!(InvalidArgument, "The header 'x-amz-tagging' shall be encoded as UTF-8 then URLEncoded URL query parameters without tag name duplicates."))
        };
        out.push((dec(k)?, dec(v)?));
    }
    validate_tags(&out)?;
    Ok(out)
}

/// S3's tag limits: at most 10 tags, unique keys, key ≤ 128 and value ≤ 256 characters.
pub fn validate_tags(tags: &[(String, String)]) -> Result<(), S3Error> {
    if tags.len() > 10 {
        return Err(s3_error!(
            InvalidTag,
            "Object tags cannot be greater than 10"
        ));
    }
    let mut seen = BTreeMap::new();
    for (k, v) in tags {
        if k.is_empty() || k.chars().count() > 128 || v.chars().count() > 256 {
            return Err(s3_error!(
                InvalidTag,
                "The TagKey or TagValue you have provided is invalid"
            ));
        }
        if seen.insert(k.clone(), ()).is_some() {
            return Err(s3_error!(
                InvalidTag,
                "Cannot provide multiple Tags with the same key"
            ));
        }
    }
    Ok(())
}

/// The zero-padded part id of an S3 part number (sorts like the number).
pub fn part_id(n: i32) -> String {
    format!("{n:05}")
}
