//! Entry points for the fuzz targets in `fuzz/` (not part of the heads' API): the request
//! bodies and headers the heads parse themselves rather than through `s3s` or `hyper`.

use http::HeaderMap;

use crate::blob::error::BlobError;
use crate::blob::ops;
use crate::checksum::BodyCheck;
use crate::s3::{convert, head};

/// Parses a Set Blob Tags body into `(key, value)` pairs in document order.
pub fn parse_blob_tags(doc: &[u8]) -> Result<Vec<(String, String)>, BlobError> {
    ops::parse_tags(doc)
}

/// Azure's tag rules (count, lengths, characters), as Set Blob Tags applies them.
pub fn validate_blob_tags(tags: &[(String, String)]) -> Result<(), BlobError> {
    ops::validate_tags(tags)
}

/// The check Set Blob Service Properties applies to its body before storing it.
pub fn check_service_properties(doc: &[u8]) -> Result<(), BlobError> {
    ops::validate_root(doc, "StorageServiceProperties")
}

/// The check Set Container ACL applies to its body (signed identifiers).
pub fn check_container_acl(doc: &[u8]) -> Result<(), BlobError> {
    ops::check_acl_body(doc)
}

/// The S3 `x-amz-tagging` header parser (with S3's tag limits); `Ok` means the header is
/// accepted.
pub fn parse_s3_tagging_header(value: &str) -> Result<Vec<(String, String)>, String> {
    convert::parse_tagging_header(value).map_err(|e| format!("{:?}", e.code()))
}

/// S3's tag limits as `PutObjectTagging` applies them.
pub fn validate_s3_tags(tags: &[(String, String)]) -> bool {
    convert::validate_tags(tags).is_ok()
}

/// `x-amz-copy-source-range` against a source of `size` bytes: `(first, last)` inclusive.
pub fn parse_copy_source_range(value: &str, size: u64) -> Result<(u64, u64), String> {
    head::parse_copy_range(value, size).map_err(|e| format!("{:?}", e.code()))
}

/// Encodes a key as an S3 listing continuation token.
pub fn encode_continuation_token(key: &str) -> String {
    head::encode_token(key)
}

/// Decodes an S3 listing continuation token back into a key.
pub fn decode_continuation_token(token: &str) -> Result<String, String> {
    head::decode_token(token).map_err(|e| format!("{:?}", e.code()))
}

/// S3 `encoding-type=url` encoding of a key.
pub fn url_encode(key: &str) -> String {
    convert::url_encode(key)
}

/// The body check an S3 PUT / UploadPart builds from `Content-MD5`, the
/// `x-amz-checksum-*` headers (crc32, crc32c, crc64nvme, sha1, sha256 in that order), the
/// SDK's checksum algorithm, `x-amz-trailer` / `x-amz-decoded-content-length` (in
/// `headers`) and the content length.
pub fn s3_body_check(
    headers: HeaderMap,
    content_md5: Option<&str>,
    sums: [Option<String>; 5],
    algorithm: Option<&str>,
    content_length: Option<i64>,
) -> Result<BodyCheck, String> {
    let req = s3s::S3Request {
        input: (),
        method: http::Method::PUT,
        uri: http::Uri::from_static("/bucket/key"),
        headers,
        extensions: http::Extensions::new(),
        credentials: None,
        region: None,
        service: None,
        trailing_headers: None,
    };
    let [crc32, crc32c, crc64nvme, sha1, sha256] = sums;
    let sums = convert::ChecksumHeaders {
        crc32,
        crc32c,
        crc64nvme,
        sha1,
        sha256,
    };
    convert::body_check(&req, content_md5, sums, algorithm, content_length)
        .map_err(|e| format!("{:?}", e.code()))
}

/// The bucket a `Host` header names (virtual-hosted style) under `domains`, or `None` for
/// path style.
pub fn s3_host_bucket(domains: &[&str], host: &str) -> Option<String> {
    use s3s::host::S3Host as _;
    let h = crate::s3::DomainHost::new(domains.iter().map(|d| d.to_string()).collect());
    h.parse_host_header(host)
        .ok()
        .and_then(|v| v.bucket().map(str::to_owned))
}
