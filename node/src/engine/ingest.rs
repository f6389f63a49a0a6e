//! The write path's first half: stream a body in, hash it, cut it into extents appended to
//! the SLC buffer (a few appends in flight), or keep it inline when it is small. Nothing is
//! visible until the caller commits the returned segments in one metadata batch.

use std::collections::VecDeque;
use std::sync::Arc;

use bytes::BytesMut;
use cairn_erasure::{DataStore, LayoutError, NewExtent};
use cairn_protocols::checksum::{BodyCheck, BodyDigests, BodyHasher};
use cairn_protocols::store::{ByteStream, StoreError};
use futures::StreamExt;
use tokio::task::JoinHandle;

use super::record::{now_ns, sums_to_rec, ObjectRec, PropsRec, Segment, SegmentData};

/// Appends running concurrently for one body.
const APPENDS_IN_FLIGHT: usize = 4;

/// A body that has been stored but not committed.
pub struct Ingested {
    /// Length, MD5 and verified checksums.
    pub digests: BodyDigests,
    /// The object's (or part's) segments in logical order.
    pub segments: Vec<Segment>,
    /// Extents to `stage_commit` in the committing batch; drop them after the write.
    pub pending: Vec<NewExtent>,
}

impl Ingested {
    /// The record of an object written in one piece from this body (MD5 known, S3 ETag =
    /// hex MD5), and the extents to stage with it.
    pub fn into_record(
        self,
        props: PropsRec,
        tags: Vec<(String, String)>,
    ) -> (ObjectRec, Vec<NewExtent>) {
        let rec = ObjectRec {
            size: self.digests.len,
            mtime_ns: now_ns(),
            md5: Some(self.digests.md5),
            etag: hex::encode(self.digests.md5),
            parts_count: 1,
            props,
            checksums: sums_to_rec(&self.digests.checksums),
            tags,
            segments: self.segments,
            upload_id: None,
        };
        (rec, self.pending)
    }
}

/// Sizes that shape ingest.
#[derive(Debug, Clone, Copy)]
pub struct IngestLimits {
    /// Bodies up to this many bytes are kept inline in the metadata record.
    pub inline_max: usize,
    /// Extent size (at most `MAX_EXTENT_BYTES`).
    pub extent_bytes: usize,
    /// Largest body accepted.
    pub max_body: u64,
}

fn layout_err(e: LayoutError) -> StoreError {
    StoreError::Data(e.to_string())
}

async fn finish_one(
    h: JoinHandle<Result<NewExtent, LayoutError>>,
) -> Result<NewExtent, StoreError> {
    match h.await {
        Ok(r) => r.map_err(layout_err),
        Err(e) => Err(StoreError::Data(format!("append task failed: {e}"))),
    }
}

fn push_extent(segments: &mut Vec<Segment>, pending: &mut Vec<NewExtent>, ext: NewExtent) {
    segments.push(Segment {
        len: ext.len(),
        data: SegmentData::Extent { id: ext.id().0 },
    });
    pending.push(ext);
}

/// Streams `body` into the data store and verifies it against `check`.
pub async fn ingest(
    ds: &Arc<DataStore>,
    mut body: ByteStream,
    check: BodyCheck,
    limits: IngestLimits,
) -> Result<Ingested, StoreError> {
    let mut hasher = BodyHasher::new(&check);
    let mut buf = BytesMut::with_capacity(limits.extent_bytes.min(1 << 20));
    let mut inflight: VecDeque<JoinHandle<Result<NewExtent, LayoutError>>> = VecDeque::new();
    let mut segments = Vec::new();
    let mut pending = Vec::new();
    while let Some(chunk) = body.next().await {
        let chunk = chunk?;
        hasher.update(&chunk);
        if hasher.len() > limits.max_body {
            return Err(StoreError::EntityTooLarge);
        }
        let mut rest = &chunk[..];
        while !rest.is_empty() {
            let take = (limits.extent_bytes - buf.len()).min(rest.len());
            buf.extend_from_slice(&rest[..take]);
            rest = &rest[take..];
            if buf.len() == limits.extent_bytes {
                let data = buf.split().freeze();
                buf.reserve(limits.extent_bytes.min(1 << 20));
                let ds = ds.clone();
                inflight.push_back(tokio::spawn(async move { ds.append(data).await }));
                while inflight.len() >= APPENDS_IN_FLIGHT {
                    if let Some(h) = inflight.pop_front() {
                        let ext = finish_one(h).await?;
                        push_extent(&mut segments, &mut pending, ext);
                    }
                }
            }
        }
    }
    let tail = buf.split().freeze();
    let inline = inflight.is_empty() && segments.is_empty() && tail.len() <= limits.inline_max;
    if !tail.is_empty() && !inline {
        let ds = ds.clone();
        let data = tail.clone();
        inflight.push_back(tokio::spawn(async move { ds.append(data).await }));
    }
    while let Some(h) = inflight.pop_front() {
        let ext = finish_one(h).await?;
        push_extent(&mut segments, &mut pending, ext);
    }
    if inline && !tail.is_empty() {
        segments.push(Segment {
            len: tail.len() as u64,
            data: SegmentData::Inline {
                crc: crc32c::crc32c(&tail),
                bytes: tail.to_vec(),
            },
        });
    }
    let digests = hasher.finish(check)?;
    Ok(Ingested {
        digests,
        segments,
        pending,
    })
}
