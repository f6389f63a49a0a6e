//! The read path: stream the bytes of a byte range of a list of segments, verified (inline
//! data against its crc32c, extents by the data layout), with a few extent reads in flight.

use std::collections::VecDeque;
use std::sync::Arc;

use bytes::Bytes;
use cairn_erasure::{DataStore, ExtentId, LayoutError};
use cairn_protocols::store::{ByteStream, StoreError};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::record::{Segment, SegmentData};
use super::retire::ReadPin;
use super::stream::ChannelStream;

/// Largest single read handed to the data layout.
const READ_PIECE: u64 = 2 << 20;
/// Reads in flight ahead of the client.
const READS_IN_FLIGHT: usize = 4;

enum Piece {
    Ready(Bytes),
    Reading(JoinHandle<Result<Bytes, LayoutError>>),
}

/// Streams bytes `first..=last` of the object made of `segments` (`first > last` = empty).
/// `pin` is held until every byte has been read from storage, so the extents cannot be
/// collected under the stream even if the object is overwritten meanwhile.
pub fn read_range(
    ds: Arc<DataStore>,
    segments: Vec<Segment>,
    first: u64,
    last: u64,
    pin: ReadPin,
) -> ByteStream {
    let (tx, rx) = mpsc::channel(READS_IN_FLIGHT);
    if first <= last {
        tokio::spawn(async move {
            if let Err(e) = produce(ds, segments, first, last, &tx).await {
                let _ = tx.send(Err(e)).await;
            }
            drop(pin);
        });
    }
    Box::pin(ChannelStream::new(rx))
}

async fn produce(
    ds: Arc<DataStore>,
    segments: Vec<Segment>,
    first: u64,
    last: u64,
    tx: &mpsc::Sender<Result<Bytes, StoreError>>,
) -> Result<(), StoreError> {
    let end = last + 1;
    let mut queue: VecDeque<Piece> = VecDeque::new();
    let mut seg_start = 0u64;
    for seg in segments {
        let seg_end = seg_start + seg.len;
        if seg_end <= first || seg_start >= end {
            seg_start = seg_end;
            continue;
        }
        let a = first.max(seg_start) - seg_start;
        let b = end.min(seg_end) - seg_start;
        match seg.data {
            SegmentData::Inline { bytes, crc } => {
                if crc32c::crc32c(&bytes) != crc || bytes.len() as u64 != seg.len {
                    return Err(StoreError::Data("inline data failed its checksum".into()));
                }
                queue.push_back(Piece::Ready(
                    Bytes::from(bytes).slice(a as usize..b as usize),
                ));
            }
            SegmentData::Extent { id } => {
                let mut off = a;
                while off < b {
                    let len = READ_PIECE.min(b - off);
                    let ds = ds.clone();
                    queue.push_back(Piece::Reading(tokio::spawn(async move {
                        ds.read(ExtentId(id), off, len).await
                    })));
                    off += len;
                    while queue.len() > READS_IN_FLIGHT {
                        send_front(&mut queue, tx).await?;
                    }
                }
            }
        }
        seg_start = seg_end;
    }
    while !queue.is_empty() {
        send_front(&mut queue, tx).await?;
    }
    Ok(())
}

async fn send_front(
    queue: &mut VecDeque<Piece>,
    tx: &mpsc::Sender<Result<Bytes, StoreError>>,
) -> Result<(), StoreError> {
    let Some(p) = queue.pop_front() else {
        return Ok(());
    };
    let bytes = match p {
        Piece::Ready(b) => b,
        Piece::Reading(h) => match h.await {
            Ok(Ok(b)) => b,
            Ok(Err(e)) => return Err(StoreError::Data(e.to_string())),
            Err(e) => return Err(StoreError::Data(format!("read task failed: {e}"))),
        },
    };
    if tx.send(Ok(bytes)).await.is_err() {
        // The client went away: stop reading.
        return Err(StoreError::Unavailable("reader dropped".into()));
    }
    Ok(())
}
