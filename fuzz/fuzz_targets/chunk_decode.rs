//! Chunk decoding (`reduction::encode::decode`, behind `Reducer::decode`): any encoding tag,
//! stored bytes, logical length and base decode or fail with a corruption error, never a
//! panic, and a success has exactly the logical length; and whatever
//! `SimilarityReducer::compress_chunk` makes of a chunk decodes back to it, both through
//! `Reducer::decode` and `encode::decode`, within `max_stored` where the chunk fits it.
//!
//! Input: first byte even = raw decode (tag, logical length, base length, base, stored);
//! odd = round trip (two bytes of `max_stored`, one of options, the rest is the chunk).
#![no_main]
use bytes::Bytes;
use cairn_erasure::reduction::encode::decode;
use cairn_erasure::{Reducer, ReductionConfig, SimilarityReducer, ENCODING_RAW};
use libfuzzer_sys::fuzz_target;

/// Largest logical length tried (the largest chunk the layout stores is far smaller).
const MAX_LOGICAL: u32 = 4 << 20;

fn raw(input: &[u8]) {
    if input.len() < 6 {
        return;
    }
    let encoding = input[0];
    let logical_len = u32::from_le_bytes([input[1], input[2], input[3], 0]) % (MAX_LOGICAL + 1);
    let rest = &input[5..];
    let base_len = (input[4] as usize).min(rest.len());
    let (base, stored) = rest.split_at(base_len);
    let base = (input[4] != 0xff).then_some(base);
    if let Ok(out) = decode(encoding, stored, logical_len, base) {
        assert_eq!(
            out.len(),
            logical_len as usize,
            "decoded to the wrong length"
        );
    }
}

fn round_trip(input: &[u8]) {
    if input.len() < 3 {
        return;
    }
    let max_stored = 64 + (u16::from_le_bytes([input[0], input[1]]) as usize) * 32;
    let cfg = ReductionConfig {
        float_planes: input[2] & 1 == 1,
        ..ReductionConfig::default()
    };
    let chunk = Bytes::copy_from_slice(&input[3..]);
    let r = SimilarityReducer::new(cfg);
    let (encoding, stored) = r
        .compress_chunk(&chunk, max_stored)
        .expect("compress_chunk");
    if chunk.len() <= max_stored {
        assert!(
            stored.len() <= max_stored,
            "stored {} > max {max_stored}",
            stored.len()
        );
    }
    let len = chunk.len() as u32;
    let back = r
        .decode(encoding, stored.clone(), len)
        .unwrap_or_else(|e| panic!("decoding encoding {encoding}: {e}"));
    assert_eq!(
        back, chunk,
        "compress + decode changed the chunk (encoding {encoding})"
    );
    if encoding != ENCODING_RAW {
        let direct = decode(encoding, &stored, len, None).expect("encode::decode");
        assert_eq!(direct, &chunk[..]);
        // One flipped stored byte never decodes to different bytes unnoticed.
        let mut bad = stored.to_vec();
        let at = input.len() % bad.len();
        bad[at] ^= 0x20;
        if let Ok(out) = decode(encoding, &bad, len, None) {
            assert_eq!(out, &chunk[..], "a damaged chunk decoded to other bytes");
        }
    }
}

fuzz_target!(|input: &[u8]| {
    let Some((&mode, rest)) = input.split_first() else {
        return;
    };
    if mode & 1 == 0 {
        raw(rest);
    } else {
        round_trip(rest);
    }
});
