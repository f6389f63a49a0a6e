//! Shard blocks, stripes and layout records.
//!
//! - Any bytes decode as a shard block or fail without panicking; a block that decodes
//!   re-encodes (same identity, same payload) to the same bytes and verifies against its own
//!   identity but not against another row's.
//! - Any bytes split into blocks of the size the first header names (a shard file) decode
//!   block by block without panicking.
//! - `layout/ext`, `layout/chunk` and `layout/stripe` records and counters: any bytes decode
//!   or fail cleanly, and a decoded record re-encodes to exactly the input bytes.
//! - Stripes packed from fuzzed chunk sizes (k+m, block size): every block of every shard
//!   file verifies with its identity; after losing up to m shards (or a flipped byte, which
//!   verification turns into a loss) every row reconstructs and every chunk reads back;
//!   losing more than m is reported, not guessed.
//!
//! Input: first byte mod 4 picks the mode: 0 block, 1 shard file, 2 records, 3 stripe.
#![no_main]
use bytes::BytesMut;
use cairn_erasure::codec::Codec;
use cairn_erasure::records::{decode_u64, encode_u64, ChunkRecord, ExtentRecord, StripeRecord};
use cairn_erasure::shard::{
    decode_block, encode_block, verify_block, BlockId, StripePacker, BLOCK_HEADER,
};
use libfuzzer_sys::arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;

fn block(b: &[u8]) {
    if let Ok(id) = decode_block(b) {
        let mut again = BytesMut::new();
        encode_block(&mut again, id, &b[BLOCK_HEADER..]);
        assert_eq!(&again[..], b, "a decoded block re-encodes differently");
        assert!(verify_block(b, id).is_ok());
        let mut other = id;
        other.row = other.row.wrapping_add(1);
        assert!(
            verify_block(b, other).is_err(),
            "a block verified as another row"
        );
    }
}

fn shard_file(b: &[u8]) {
    let Some(h) = b.get(28..32) else {
        return;
    };
    let bb = u32::from_le_bytes([h[0], h[1], h[2], h[3]]) as usize;
    if bb < BLOCK_HEADER {
        return;
    }
    for row in b.chunks(bb).take(64) {
        block(row);
    }
}

fn records(b: &[u8]) {
    if let Ok(r) = ExtentRecord::decode(b) {
        assert_eq!(r.encode(), b, "extent record re-encodes differently");
    }
    if let Ok(r) = ChunkRecord::decode(b) {
        assert_eq!(r.encode(), b, "chunk record re-encodes differently");
    }
    if let Ok(r) = StripeRecord::decode(b) {
        assert_eq!(r.encode(), b, "stripe record re-encodes differently");
        assert_eq!(r.devices.len(), r.width());
    }
    if let Ok(v) = decode_u64(b) {
        assert_eq!(encode_u64(v), b);
    }
}

fn stripe(u: &mut Unstructured) -> Result<()> {
    let k = u.int_in_range(1..=6)?;
    let m = u.int_in_range(1..=3)?;
    let rows = u.int_in_range(1..=3)?;
    let bb = BLOCK_HEADER + u.int_in_range(1..=200)?;
    let stripe_id = u.arbitrary::<u64>()?;
    let codec = Codec::new(k, m).expect("codec");
    let mut p = StripePacker::new(k, rows, bb);
    let mut placed = Vec::new();
    for i in 0..u.int_in_range(0..=24)? {
        let n = u.int_in_range(1..=bb - BLOCK_HEADER + 8)?;
        let chunk: Vec<u8> = (0..n)
            .map(|j| (i as u8).wrapping_mul(31) ^ j as u8)
            .collect();
        match p.place(&chunk) {
            Some(at) => {
                assert!(
                    at.offset as usize + n <= bb - BLOCK_HEADER,
                    "chunk straddles a block"
                );
                placed.push((at, chunk));
            }
            None => assert!(n > p.max_chunk() || !placed.is_empty()),
        }
    }
    let files = p.finish(&codec, stripe_id).expect("finish");
    assert_eq!(files.len(), k + m);
    let nrows = files[0].len() / bb;
    let mut lost = vec![false; k + m];
    for _ in 0..u.int_in_range(0..=m + 1)? {
        lost[u.choose_index(k + m)?] = true;
    }
    let mut files: Vec<Vec<u8>> = files.iter().map(|f| f.to_vec()).collect();
    let flip = if u.ratio(1, 3)? {
        let s = u.choose_index(k + m)?;
        let at = u.choose_index(files[s].len())?;
        files[s][at] ^= u.int_in_range(1..=255)?;
        Some((s, at / bb))
    } else {
        None
    };
    let mut rebuilt: Vec<Vec<u8>> = vec![Vec::new(); k + m];
    for row in 0..nrows {
        let mut shards: Vec<Option<Vec<u8>>> = Vec::new();
        for (s, f) in files.iter().enumerate() {
            assert_eq!(f.len(), nrows * bb);
            let b = &f[row * bb..(row + 1) * bb];
            let want = BlockId {
                stripe: stripe_id,
                shard: s as u8,
                k: k as u8,
                m: m as u8,
                row: row as u32,
                block_bytes: bb as u32,
            };
            let ok = verify_block(b, want).is_ok();
            assert_eq!(
                ok,
                flip != Some((s, row)),
                "shard {s} row {row}: verify gave {ok}"
            );
            shards.push((ok && !lost[s]).then(|| b[BLOCK_HEADER..].to_vec()));
        }
        let missing = shards.iter().filter(|s| s.is_none()).count();
        match codec.reconstruct(&mut shards, stripe_id) {
            Ok(()) => assert!(missing <= m),
            Err(_) => {
                assert!(
                    missing > m,
                    "reconstruct failed with {missing} of {m} missing"
                );
                return Ok(());
            }
        }
        for (s, sh) in shards.into_iter().enumerate() {
            rebuilt[s].extend_from_slice(&sh.expect("reconstructed"));
        }
    }
    let payload = bb - BLOCK_HEADER;
    for (at, chunk) in &placed {
        let off = at.row as usize * payload + at.offset as usize;
        assert_eq!(
            &rebuilt[at.shard as usize][off..off + chunk.len()],
            &chunk[..]
        );
    }
    Ok(())
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    match mode % 4 {
        0 => block(rest),
        1 => shard_file(rest),
        2 => records(rest),
        _ => {
            let _ = stripe(&mut Unstructured::new(rest));
        }
    }
});
