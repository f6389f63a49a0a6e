//! Versioned binary records stored under the keys of [`super::keys`]: a one-byte format
//! version, then postcard. Inline data carries its own crc32c, checked on every read.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use cairn_protocols::checksum::ChecksumAlgo;
use cairn_protocols::store::{ObjectInfo, ObjectProps, PartInfo, UploadInfo};
use serde::{Deserialize, Serialize};

use super::EngineError;

const FORMAT_V1: u8 = 1;

/// Where one piece of an object's bytes lives.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub enum SegmentData {
    /// Bytes kept in the metadata record itself, with their crc32c.
    Inline {
        /// The bytes.
        bytes: Vec<u8>,
        /// crc32c of `bytes`.
        crc: u32,
    },
    /// An extent of the data layout.
    Extent {
        /// The extent id.
        id: u64,
    },
}

/// A contiguous run of an object's bytes; segments follow each other in logical order.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Segment {
    /// Length in bytes.
    pub len: u64,
    /// Where the bytes are.
    pub data: SegmentData,
}

/// Content headers and user metadata, as stored.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct PropsRec {
    pub content_type: Option<String>,
    pub content_encoding: Option<String>,
    pub content_language: Option<String>,
    pub content_disposition: Option<String>,
    pub cache_control: Option<String>,
    pub expires: Option<String>,
    pub user_metadata: BTreeMap<String, String>,
}

impl From<ObjectProps> for PropsRec {
    fn from(p: ObjectProps) -> Self {
        PropsRec {
            content_type: p.content_type,
            content_encoding: p.content_encoding,
            content_language: p.content_language,
            content_disposition: p.content_disposition,
            cache_control: p.cache_control,
            expires: p.expires,
            user_metadata: p.user_metadata,
        }
    }
}

impl From<PropsRec> for ObjectProps {
    fn from(p: PropsRec) -> Self {
        ObjectProps {
            content_type: p.content_type,
            content_encoding: p.content_encoding,
            content_language: p.content_language,
            content_disposition: p.content_disposition,
            cache_control: p.cache_control,
            expires: p.expires,
            user_metadata: p.user_metadata,
        }
    }
}

/// `b/` value.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BucketRec {
    pub created_ns: u64,
}

/// `o/` value: the current version of an object.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ObjectRec {
    pub size: u64,
    pub mtime_ns: u64,
    pub md5: Option<[u8; 16]>,
    pub etag: String,
    pub parts_count: u32,
    pub props: PropsRec,
    pub checksums: Vec<(u8, String)>,
    pub tags: Vec<(String, String)>,
    pub segments: Vec<Segment>,
    /// The upload this version was committed from (repeated completes are idempotent).
    pub upload_id: Option<String>,
}

/// `u/` value: an upload in progress.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UploadRec {
    pub created_ns: u64,
    pub props: PropsRec,
    pub tags: Vec<(String, String)>,
}

/// `p/` value: a staged part.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PartRec {
    pub size: u64,
    pub md5: [u8; 16],
    pub mtime_ns: u64,
    pub checksums: Vec<(u8, String)>,
    pub segments: Vec<Segment>,
}

/// Encodes a record with its format byte.
pub fn encode<T: Serialize>(rec: &T) -> Result<Vec<u8>, EngineError> {
    let mut out = vec![FORMAT_V1];
    let body =
        postcard::to_stdvec(rec).map_err(|e| EngineError::Corrupt(format!("encode: {e}")))?;
    out.extend_from_slice(&body);
    Ok(out)
}

/// Decodes a record written by [`encode`].
pub fn decode<T: for<'de> Deserialize<'de>>(raw: &[u8]) -> Result<T, EngineError> {
    match raw.split_first() {
        Some((&FORMAT_V1, body)) => {
            postcard::from_bytes(body).map_err(|e| EngineError::Corrupt(format!("decode: {e}")))
        }
        Some((v, _)) => Err(EngineError::Corrupt(format!("unknown record format {v}"))),
        None => Err(EngineError::Corrupt("empty record".into())),
    }
}

/// Nanoseconds since the epoch.
pub fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// Nanoseconds since the epoch → `SystemTime`.
pub fn time_of(ns: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_nanos(ns)
}

/// Checksums to their stored form.
pub fn sums_to_rec(s: &[(ChecksumAlgo, String)]) -> Vec<(u8, String)> {
    s.iter().map(|(a, v)| (a.code(), v.clone())).collect()
}

/// Stored checksums back (unknown codes are skipped).
pub fn sums_from_rec(s: &[(u8, String)]) -> Vec<(ChecksumAlgo, String)> {
    s.iter()
        .filter_map(|(c, v)| ChecksumAlgo::from_code(*c).map(|a| (a, v.clone())))
        .collect()
}

impl ObjectRec {
    /// The protocol-neutral view of this object.
    pub fn info(&self, key: &str) -> ObjectInfo {
        ObjectInfo {
            key: key.to_owned(),
            size: self.size,
            last_modified: time_of(self.mtime_ns),
            md5: self.md5,
            etag: self.etag.clone(),
            parts_count: self.parts_count,
            props: self.props.clone().into(),
            checksums: sums_from_rec(&self.checksums),
            tags: self.tags.clone(),
        }
    }

    /// Extent ids this version owns.
    pub fn extents(&self) -> impl Iterator<Item = u64> + '_ {
        extent_ids(&self.segments)
    }
}

impl PartRec {
    /// The protocol-neutral view of this part.
    pub fn info(&self, part_id: &str) -> PartInfo {
        PartInfo {
            part_id: part_id.to_owned(),
            size: self.size,
            md5: self.md5,
            last_modified: time_of(self.mtime_ns),
            checksums: sums_from_rec(&self.checksums),
        }
    }
}

impl UploadRec {
    /// The protocol-neutral view of this upload.
    pub fn info(&self, key: &str, upload_id: &str) -> UploadInfo {
        UploadInfo {
            key: key.to_owned(),
            upload_id: upload_id.to_owned(),
            initiated: time_of(self.created_ns),
            props: self.props.clone().into(),
        }
    }
}

/// Extent ids referenced by `segs`.
pub fn extent_ids(segs: &[Segment]) -> impl Iterator<Item = u64> + '_ {
    segs.iter().filter_map(|s| match s.data {
        SegmentData::Extent { id } => Some(id),
        SegmentData::Inline { .. } => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_record_round_trips() {
        let rec = ObjectRec {
            size: 3,
            mtime_ns: 42,
            md5: Some([7; 16]),
            etag: "abc".into(),
            parts_count: 1,
            props: PropsRec::default(),
            checksums: vec![(2, "x".into())],
            tags: vec![("k".into(), "v".into())],
            segments: vec![Segment {
                len: 3,
                data: SegmentData::Inline {
                    bytes: b"abc".to_vec(),
                    crc: crc32c::crc32c(b"abc"),
                },
            }],
            upload_id: None,
        };
        let raw = encode(&rec).unwrap();
        let back: ObjectRec = decode(&raw).unwrap();
        assert_eq!(back.segments, rec.segments);
        assert_eq!(back.etag, "abc");
        assert!(decode::<ObjectRec>(&[9, 1, 2]).is_err());
    }
}
