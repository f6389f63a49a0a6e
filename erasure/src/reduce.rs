//! The reduction seam: the migration worker hands each extent's bytes to a
//! [`Reducer`] and stores the chunks it returns. The default cuts fixed-size
//! chunks and stores them raw; a later reducer (FastCDC, dedup, similarity,
//! zstd) plugs in behind the same trait and may answer with references to
//! existing chunks, which the worker refcounts.

use bytes::Bytes;
use cairn_metadata::WriteBatch;

use crate::error::{LayoutError, Result};

/// Encoding tag: the stored bytes are the logical bytes.
pub const ENCODING_RAW: u8 = 0;

/// One chunk of a reduced extent, in extent order.
#[derive(Clone, Debug)]
pub enum ReducedChunk {
    /// New stored bytes (at most the `max_stored` the worker passed in).
    New {
        /// Length after decoding.
        logical_len: u32,
        /// Encoding tag understood by [`Reducer::decode`].
        encoding: u8,
        /// The bytes to store.
        stored: Bytes,
    },
    /// A reference to a chunk already stored (dedup); the worker adds one reference.
    Existing {
        /// The chunk id.
        chunk: u64,
        /// Its logical length.
        logical_len: u32,
    },
}

/// Turns extent bytes into chunks and chunk bytes back into logical bytes.
pub trait Reducer: Send + Sync + 'static {
    /// Splits `extent` into chunks whose stored size is at most `max_stored`.
    fn reduce(&self, extent: &Bytes, max_stored: usize) -> Result<Vec<ReducedChunk>>;
    /// Decodes the stored bytes of a chunk written with `encoding`.
    fn decode(&self, encoding: u8, stored: Bytes, logical_len: u32) -> Result<Bytes>;
    /// Called by the migration worker once it has given a `New` chunk the id
    /// `chunk`. `batch` is the batch that will commit the chunk record: a
    /// reducer that keeps an index (fingerprints, similarity features) adds
    /// its entries there so that they commit atomically with the chunk.
    fn on_stored(&self, _batch: &mut WriteBatch, _chunk: u64, _stored: &Bytes) {}
    /// Called by GC when a chunk's last reference goes, with the batch that
    /// deletes its record.
    fn on_freed(&self, _batch: &mut WriteBatch, _chunk: u64) {}
}

/// The default reducer: fixed-size chunks, raw encoding, no sharing.
pub struct FixedChunker {
    /// Chunk size in bytes.
    pub chunk_bytes: usize,
}

impl Reducer for FixedChunker {
    fn reduce(&self, extent: &Bytes, max_stored: usize) -> Result<Vec<ReducedChunk>> {
        let size = self.chunk_bytes.min(max_stored).max(1);
        let mut out = Vec::with_capacity(extent.len() / size + 1);
        let mut off = 0;
        while off < extent.len() {
            let end = (off + size).min(extent.len());
            out.push(ReducedChunk::New {
                logical_len: (end - off) as u32,
                encoding: ENCODING_RAW,
                stored: extent.slice(off..end),
            });
            off = end;
        }
        Ok(out)
    }

    fn decode(&self, encoding: u8, stored: Bytes, logical_len: u32) -> Result<Bytes> {
        if encoding != ENCODING_RAW {
            return Err(LayoutError::Corruption(format!(
                "chunk encoding {encoding} is not known to this reducer"
            )));
        }
        if stored.len() != logical_len as usize {
            return Err(LayoutError::Corruption(format!(
                "raw chunk of {} bytes, expected {logical_len}",
                stored.len()
            )));
        }
        Ok(stored)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_chunks_cover_extent() {
        let r = FixedChunker { chunk_bytes: 10 };
        let data = Bytes::from((0..35u8).collect::<Vec<_>>());
        let chunks = r.reduce(&data, 1000).unwrap();
        let mut joined = Vec::new();
        for c in &chunks {
            match c {
                ReducedChunk::New {
                    stored,
                    logical_len,
                    encoding,
                } => {
                    assert_eq!(*logical_len as usize, stored.len());
                    joined.extend_from_slice(
                        &r.decode(*encoding, stored.clone(), *logical_len).unwrap(),
                    );
                }
                ReducedChunk::Existing { .. } => panic!("fixed chunker never dedups"),
            }
        }
        assert_eq!(chunks.len(), 4);
        assert_eq!(joined, data.to_vec());
        assert!(r.reduce(&Bytes::new(), 10).unwrap().is_empty());
    }
}
