//! The reduction seam: the migration worker hands each extent's bytes to a
//! [`Reducer`] and stores the chunks it returns. The default cuts fixed-size
//! chunks and stores them raw; [`crate::reduction::SimilarityReducer`]
//! (FastCDC, dedup, similarity, zstd) plugs in behind the same trait and may
//! answer with references to existing chunks, which the worker refcounts,
//! and with deltas against a base chunk, which hold a reference on the base.

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
        /// The base chunk a delta encoding needs to decode (never itself a
        /// delta); the new chunk holds one reference on it while it lives.
        base: Option<u64>,
    },
    /// The same bytes as the `New` chunk at position `index` of this answer
    /// (dedup inside one extent); the worker adds one reference to it.
    Repeat {
        /// Position of the earlier `New` chunk in the returned list.
        index: usize,
        /// Its logical length.
        logical_len: u32,
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
    /// Decodes a chunk that names a base chunk, given the base's logical bytes.
    fn decode_with_base(
        &self,
        encoding: u8,
        _stored: Bytes,
        _logical_len: u32,
        _base: &Bytes,
    ) -> Result<Bytes> {
        Err(LayoutError::Corruption(format!(
            "chunk encoding {encoding} with a base is not known to this reducer"
        )))
    }
    /// The logical bytes of `chunk` when the reducer holds them in memory
    /// (lets reads of deltas skip reading their base).
    fn cached_logical(&self, _chunk: u64) -> Option<Bytes> {
        None
    }
    /// Called by the migration worker once it has given a `New` chunk the id
    /// `chunk`. `batch` is the batch that will commit the chunk record: a
    /// reducer that keeps an index (fingerprints, similarity features) adds
    /// its entries there so that they commit atomically with the chunk.
    fn on_stored(&self, _batch: &mut WriteBatch, _chunk: u64, _stored: &Bytes) {}
    /// Called by GC when a chunk's last reference goes, with the batch that
    /// deletes its record.
    fn on_freed(&self, _batch: &mut WriteBatch, _chunk: u64) {}
    /// The migration batch that `on_stored` fed has committed.
    fn on_committed(&self) {}
    /// Logical bytes of the newest stored non-delta chunks the reducer wants
    /// offered through [`Reducer::warm`] when the layout opens (0: none).
    fn warm_bytes(&self) -> usize {
        0
    }
    /// Offers a stored chunk that is not a delta (its encoding, verified
    /// stored bytes and decoded logical bytes), oldest first, before the
    /// first migration after the layout opens: lets in-memory indexes
    /// (similarity) survive a restart.
    fn warm(&self, _chunk: u64, _encoding: u8, _stored: &Bytes, _logical: Bytes) {}
    /// The migration failed before its batch committed: the chunks passed to
    /// `on_stored` since the last commit do not exist.
    fn on_aborted(&self) {}
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
                base: None,
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
                    ..
                } => {
                    assert_eq!(*logical_len as usize, stored.len());
                    joined.extend_from_slice(
                        &r.decode(*encoding, stored.clone(), *logical_len).unwrap(),
                    );
                }
                ReducedChunk::Existing { .. } | ReducedChunk::Repeat { .. } => {
                    panic!("fixed chunker never dedups")
                }
            }
        }
        assert_eq!(chunks.len(), 4);
        assert_eq!(joined, data.to_vec());
        assert!(r.reduce(&Bytes::new(), 10).unwrap().is_empty());
    }
}
