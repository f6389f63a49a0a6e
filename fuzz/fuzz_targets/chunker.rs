//! The reduction chunker and pipeline (`SimilarityReducer`), through its public entry points.
//!
//! - `cut`: chunk lengths are non-zero, sum to the input length, are each at most
//!   `max_stored` (64 and up), and the same input always cuts the same way.
//! - `reduce` on a fresh reducer: chunk logical lengths sum to the input length, every new
//!   chunk's stored bytes fit `max_stored`, every new chunk without a base decodes
//!   (`Reducer::decode`) to exactly its slice of the input, and a repeat names an earlier new
//!   chunk with the same bytes.
//! - After those chunks are stored (`on_stored` + `on_committed`), reducing a second input
//!   (the first with a few bytes changed, or a fresh one) yields chunks that decode to their
//!   slices too: deltas with `decode_with_base` against their base's bytes, references to
//!   stored chunks by those chunks' bytes.
//!
//! Input: two bytes pick `max_stored`, one byte the edit of the second input, the rest is data.
#![no_main]
use std::collections::HashMap;

use bytes::Bytes;
use cairn_erasure::{ReducedChunk, Reducer, ReductionConfig, SimilarityReducer};
use cairn_metadata::WriteBatch;
use libfuzzer_sys::fuzz_target;

/// Reduces `data` and checks every chunk against its slice; stores the new chunks (ids from
/// `next_id`) in `stored` and tells the reducer about them.
fn reduce_and_check(
    r: &SimilarityReducer,
    data: &Bytes,
    max_stored: usize,
    stored: &mut HashMap<u64, Bytes>,
    next_id: &mut u64,
) {
    let chunks = r.reduce(data, max_stored).expect("reduce");
    let mut off = 0usize;
    let mut news: Vec<Option<Bytes>> = Vec::with_capacity(chunks.len());
    let mut batch = WriteBatch::new();
    for c in &chunks {
        let (len, logical) = match c {
            ReducedChunk::New {
                logical_len,
                encoding,
                stored: bytes,
                base,
            } => {
                assert!(
                    bytes.len() <= max_stored,
                    "stored chunk of {} bytes exceeds max_stored {max_stored}",
                    bytes.len()
                );
                let got = match base {
                    None => r.decode(*encoding, bytes.clone(), *logical_len),
                    Some(b) => {
                        let base = stored.get(b).expect("delta against an unknown chunk");
                        r.decode_with_base(*encoding, bytes.clone(), *logical_len, base)
                    }
                }
                .unwrap_or_else(|e| panic!("decoding a new chunk (encoding {encoding}): {e}"));
                let id = *next_id;
                *next_id += 1;
                r.on_stored(&mut batch, id, bytes);
                stored.insert(id, got.clone());
                news.push(Some(got.clone()));
                (*logical_len as usize, got)
            }
            ReducedChunk::Repeat { index, logical_len } => {
                let earlier = news
                    .get(*index)
                    .and_then(Clone::clone)
                    .expect("repeat of a chunk that is not an earlier new chunk");
                news.push(None);
                (*logical_len as usize, earlier)
            }
            ReducedChunk::Existing { chunk, logical_len } => {
                let bytes = stored
                    .get(chunk)
                    .expect("reference to an unknown chunk")
                    .clone();
                news.push(None);
                (*logical_len as usize, bytes)
            }
        };
        assert_eq!(logical.len(), len, "chunk decodes to a different length");
        assert_eq!(
            &logical[..],
            &data[off..off + len],
            "chunk at {off} decodes differently"
        );
        off += len;
    }
    assert_eq!(off, data.len(), "chunks do not cover the input");
    r.on_committed();
}

fuzz_target!(|input: &[u8]| {
    if input.len() < 3 {
        return;
    }
    // From 64 up (chunks are at least 64 bytes); below 256 used to panic in
    // SimilarityReducer::chunks (found by this target; regression test
    // `tiny_max_stored_cuts_small_chunks`).
    let max_stored = 64 + (u16::from_le_bytes([input[0], input[1]]) as usize) * 16;
    let edit = input[2];
    let data = &input[3..];

    let r = SimilarityReducer::new(ReductionConfig::default());
    let cuts = r.cut(data, max_stored);
    assert_eq!(
        cuts.iter().sum::<usize>(),
        data.len(),
        "cuts do not cover the input"
    );
    assert!(
        cuts.iter().all(|&c| c > 0 && c <= max_stored),
        "cut sizes {cuts:?}"
    );
    assert_eq!(
        r.cut(data, max_stored),
        cuts,
        "cutting is not deterministic"
    );

    let mut stored = HashMap::new();
    let mut next_id = 1;
    let first = Bytes::copy_from_slice(data);
    reduce_and_check(&r, &first, max_stored, &mut stored, &mut next_id);
    // A second extent: the first with bytes changed every `edit` bytes (similar, so deltas
    // and references), or, for edit 0, the first reversed.
    let mut second = data.to_vec();
    if edit == 0 {
        second.reverse();
    } else {
        for b in second.iter_mut().step_by(edit as usize * 7 + 1) {
            *b = b.wrapping_add(edit);
        }
    }
    reduce_and_check(
        &r,
        &Bytes::from(second),
        max_stored,
        &mut stored,
        &mut next_id,
    );
});
