//! Body digests: MD5 (always) plus the S3 checksum algorithms, computed in one pass while the
//! body streams in, and compared with what the client announced (headers or trailers).

use base64::Engine as _;
use s3s::crypto::{Checksum as _, Crc32, Crc32c, Crc64Nvme, Md5, Sha1, Sha256};

use crate::store::StoreError;

/// A checksum algorithm a client may ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ChecksumAlgo {
    /// CRC-32 (ISO-HDLC), 4 bytes.
    Crc32,
    /// CRC-32C (Castagnoli), 4 bytes.
    Crc32c,
    /// CRC-64/NVME, 8 bytes.
    Crc64Nvme,
    /// SHA-1, 20 bytes.
    Sha1,
    /// SHA-256, 32 bytes.
    Sha256,
}

impl ChecksumAlgo {
    /// Every algorithm, in a fixed order.
    pub const ALL: [ChecksumAlgo; 5] = [
        ChecksumAlgo::Crc32,
        ChecksumAlgo::Crc32c,
        ChecksumAlgo::Crc64Nvme,
        ChecksumAlgo::Sha1,
        ChecksumAlgo::Sha256,
    ];

    /// The S3 name (`CRC32`, `CRC32C`, `CRC64NVME`, `SHA1`, `SHA256`).
    pub fn name(self) -> &'static str {
        match self {
            ChecksumAlgo::Crc32 => "CRC32",
            ChecksumAlgo::Crc32c => "CRC32C",
            ChecksumAlgo::Crc64Nvme => "CRC64NVME",
            ChecksumAlgo::Sha1 => "SHA1",
            ChecksumAlgo::Sha256 => "SHA256",
        }
    }

    /// Parses an S3 algorithm name (case-insensitive).
    pub fn parse(s: &str) -> Option<ChecksumAlgo> {
        ChecksumAlgo::ALL
            .into_iter()
            .find(|a| a.name().eq_ignore_ascii_case(s))
    }

    /// The digest length in bytes.
    pub fn digest_len(self) -> usize {
        match self {
            ChecksumAlgo::Crc32 | ChecksumAlgo::Crc32c => 4,
            ChecksumAlgo::Crc64Nvme => 8,
            ChecksumAlgo::Sha1 => 20,
            ChecksumAlgo::Sha256 => 32,
        }
    }

    /// A stable one-byte code for on-disk records.
    pub fn code(self) -> u8 {
        match self {
            ChecksumAlgo::Crc32 => 1,
            ChecksumAlgo::Crc32c => 2,
            ChecksumAlgo::Crc64Nvme => 3,
            ChecksumAlgo::Sha1 => 4,
            ChecksumAlgo::Sha256 => 5,
        }
    }

    /// Inverse of [`ChecksumAlgo::code`].
    pub fn from_code(c: u8) -> Option<ChecksumAlgo> {
        ChecksumAlgo::ALL.into_iter().find(|a| a.code() == c)
    }
}

/// Reads expected checksums that arrive after the body (aws-chunked trailers).
pub type TrailerReader =
    Box<dyn FnOnce() -> Result<Vec<(ChecksumAlgo, String)>, StoreError> + Send + Sync>;

/// What to compute over a body and what it must match.
#[derive(Default)]
pub struct BodyCheck {
    /// `Content-MD5` the client sent, if any.
    pub content_md5: Option<[u8; 16]>,
    /// Algorithms to compute (and store) even without an expected value.
    pub algorithms: Vec<ChecksumAlgo>,
    /// Expected base64 digests sent as headers.
    pub expected: Vec<(ChecksumAlgo, String)>,
    /// Expected digests sent as trailers, read once the body has ended.
    pub trailers: Option<TrailerReader>,
    /// The exact body length announced by the client, if any.
    pub expected_len: Option<u64>,
}

impl std::fmt::Debug for BodyCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BodyCheck")
            .field("content_md5", &self.content_md5)
            .field("algorithms", &self.algorithms)
            .field("expected", &self.expected)
            .field("trailers", &self.trailers.is_some())
            .field("expected_len", &self.expected_len)
            .finish()
    }
}

/// The digests of a body that passed its [`BodyCheck`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BodyDigests {
    /// Body length.
    pub len: u64,
    /// MD5 of the body.
    pub md5: [u8; 16],
    /// Base64 checksums for every requested/expected algorithm, sorted by algorithm.
    pub checksums: Vec<(ChecksumAlgo, String)>,
}

/// Computes MD5 and the selected checksums in one pass.
pub struct BodyHasher {
    len: u64,
    md5: Md5,
    crc32: Option<Crc32>,
    crc32c: Option<Crc32c>,
    crc64: Option<Crc64Nvme>,
    sha1: Option<Sha1>,
    sha256: Option<Sha256>,
}

impl BodyHasher {
    /// A hasher for the algorithms `check` asks for or expects; the trailer may name one more,
    /// which trailing-checksum clients also announce up front (`x-amz-sdk-checksum-algorithm`
    /// or `x-amz-trailer`), so the head lists it in `algorithms`.
    pub fn new(check: &BodyCheck) -> BodyHasher {
        let want = |a: ChecksumAlgo| {
            check.algorithms.contains(&a) || check.expected.iter().any(|(x, _)| *x == a)
        };
        BodyHasher {
            len: 0,
            md5: Md5::new(),
            crc32: want(ChecksumAlgo::Crc32).then(Crc32::new),
            crc32c: want(ChecksumAlgo::Crc32c).then(Crc32c::new),
            crc64: want(ChecksumAlgo::Crc64Nvme).then(Crc64Nvme::new),
            sha1: want(ChecksumAlgo::Sha1).then(Sha1::new),
            sha256: want(ChecksumAlgo::Sha256).then(Sha256::new),
        }
    }

    /// Feeds body bytes.
    pub fn update(&mut self, data: &[u8]) {
        self.len += data.len() as u64;
        self.md5.update(data);
        if let Some(h) = &mut self.crc32 {
            h.update(data);
        }
        if let Some(h) = &mut self.crc32c {
            h.update(data);
        }
        if let Some(h) = &mut self.crc64 {
            h.update(data);
        }
        if let Some(h) = &mut self.sha1 {
            h.update(data);
        }
        if let Some(h) = &mut self.sha256 {
            h.update(data);
        }
    }

    /// Bytes seen so far.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// True if no bytes were seen.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Finishes the digests and verifies them against `check` (length, Content-MD5, header and
    /// trailer checksums). Any mismatch is an error: the caller must not commit the body.
    pub fn finish(self, check: BodyCheck) -> Result<BodyDigests, StoreError> {
        if let Some(n) = check.expected_len {
            if n != self.len {
                return Err(StoreError::IncompleteBody(format!(
                    "expected {n} bytes, got {}",
                    self.len
                )));
            }
        }
        let b64 = |d: &[u8]| base64::engine::general_purpose::STANDARD.encode(d);
        let md5: [u8; 16] = self.md5.finalize();
        let mut checksums = Vec::new();
        if let Some(h) = self.crc32 {
            checksums.push((ChecksumAlgo::Crc32, b64(h.finalize().as_ref())));
        }
        if let Some(h) = self.crc32c {
            checksums.push((ChecksumAlgo::Crc32c, b64(h.finalize().as_ref())));
        }
        if let Some(h) = self.crc64 {
            checksums.push((ChecksumAlgo::Crc64Nvme, b64(h.finalize().as_ref())));
        }
        if let Some(h) = self.sha1 {
            checksums.push((ChecksumAlgo::Sha1, b64(h.finalize().as_ref())));
        }
        if let Some(h) = self.sha256 {
            checksums.push((ChecksumAlgo::Sha256, b64(h.finalize().as_ref())));
        }
        if let Some(want) = check.content_md5 {
            if want != md5 {
                return Err(StoreError::BadDigest(
                    "The Content-MD5 you specified did not match what we received.".into(),
                ));
            }
        }
        let mut expected = check.expected;
        if let Some(read) = check.trailers {
            expected.extend(read()?);
        }
        for (algo, want) in &expected {
            match checksums.iter().find(|(a, _)| a == algo) {
                Some((_, got)) if got == want => {}
                Some(_) => {
                    return Err(StoreError::BadDigest(format!(
                        "The {} you specified did not match the calculated checksum.",
                        algo.name()
                    )))
                }
                None => {
                    return Err(StoreError::InvalidDigest(format!(
                        "checksum {} arrived in a trailer that was not announced",
                        algo.name()
                    )))
                }
            }
        }
        Ok(BodyDigests {
            len: self.len,
            md5,
            checksums,
        })
    }
}

/// The S3 multipart ETag: hex MD5 of the concatenated binary part MD5s, then `-<parts>`.
pub fn multipart_etag(md5s: &[[u8; 16]]) -> String {
    let mut h = Md5::new();
    for m in md5s {
        h.update(m);
    }
    format!("{}-{}", hex::encode(h.finalize()), md5s.len())
}

/// Validates the shape of a base64 checksum value for `algo`.
pub fn valid_checksum_value(algo: ChecksumAlgo, value: &str) -> bool {
    base64::engine::general_purpose::STANDARD
        .decode(value)
        .map(|d| d.len() == algo.digest_len())
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn md5_and_crc32c_verify() {
        let check = BodyCheck {
            algorithms: vec![ChecksumAlgo::Crc32c],
            ..Default::default()
        };
        let mut h = BodyHasher::new(&check);
        h.update(b"hello ");
        h.update(b"world");
        let d = h.finish(check).unwrap();
        assert_eq!(hex::encode(d.md5), "5eb63bbbe01eeed093cb22bb8f5acdc3");
        assert_eq!(
            d.checksums,
            vec![(ChecksumAlgo::Crc32c, "yZRlqg==".to_string())]
        );
    }

    #[test]
    fn mismatch_is_rejected() {
        let check = BodyCheck {
            expected: vec![(ChecksumAlgo::Crc32, "AAAAAA==".into())],
            ..Default::default()
        };
        let mut h = BodyHasher::new(&check);
        h.update(b"data");
        assert!(matches!(h.finish(check), Err(StoreError::BadDigest(_))));
    }

    #[test]
    fn short_body_is_rejected() {
        let check = BodyCheck {
            expected_len: Some(10),
            ..Default::default()
        };
        let mut h = BodyHasher::new(&check);
        h.update(b"data");
        assert!(matches!(
            h.finish(check),
            Err(StoreError::IncompleteBody(_))
        ));
    }
}
