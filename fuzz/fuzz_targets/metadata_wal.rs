//! Metadata WAL: any file is read by the record-log reader (torn tail vs. corruption) and
//! its batches decoded without panicking; every decoded batch re-encodes to one that decodes
//! the same; and reopening a database whose WAL is that file (`Db::open` replays it) either
//! fails or serves exactly what applying the decoded batches in order gives.
//!
//! Input: first byte even = the file as is; odd = records built from the rest (real framing
//! and batch encoding, then optionally truncated, bit-flipped or extended).
#![no_main]
use std::collections::BTreeMap;

use cairn_metadata::fuzzing::{
    decode_wal, decode_wal_record, encode_wal_record, replay_wal, wal_file, Op, WalContents,
};
use libfuzzer_sys::arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;

/// Largest sequence number the engine's internal keys can hold.
const MAX_SEQ: u64 = (1 << 56) - 1;

fn small_bytes(u: &mut Unstructured) -> Result<Vec<u8>> {
    let n = u.int_in_range(0..=12)?;
    Ok(u.bytes(n)?.to_vec())
}

fn structured(u: &mut Unstructured) -> Result<Vec<u8>> {
    let n = u.int_in_range(0..=6)?;
    let mut payloads = Vec::new();
    let mut seq = 1u64;
    for _ in 0..n {
        if u.ratio(1, 8)? {
            payloads.push(small_bytes(u)?);
            continue;
        }
        let nops = u.int_in_range(0..=5)?;
        let mut ops = Vec::new();
        for _ in 0..nops {
            let k = vec![b'a' + u.int_in_range(0..=5)?];
            if u.ratio(1, 4)? {
                ops.push(Op::Delete(k));
            } else {
                ops.push(Op::Put(k, small_bytes(u)?));
            }
        }
        let s = match u.int_in_range(0..=9)? {
            0 => u.arbitrary::<u64>()?,
            1 => MAX_SEQ - u.int_in_range(0..=3)?,
            2 => seq.saturating_sub(u.int_in_range(0..=2)?),
            _ => seq,
        };
        seq = s.wrapping_add(ops.len() as u64);
        payloads.push(encode_wal_record(s, &ops));
    }
    let refs: Vec<&[u8]> = payloads.iter().map(Vec::as_slice).collect();
    let mut file = wal_file(&refs);
    match u.int_in_range(0..=5)? {
        0 if !file.is_empty() => {
            let at = u.choose_index(file.len())?;
            file.truncate(at);
        }
        1 if !file.is_empty() => {
            let at = u.choose_index(file.len())?;
            file[at] ^= u.int_in_range(1..=255)?;
        }
        2 => file.extend_from_slice(u.bytes(u.len().min(64))?),
        _ => {}
    }
    Ok(file)
}

/// What recovery must serve after replaying `c` into a new database, or `None` where it
/// must refuse (sequence numbers going backwards or past the largest representable one).
fn model(c: &WalContents) -> Option<BTreeMap<Vec<u8>, Vec<u8>>> {
    let mut m = BTreeMap::new();
    let mut last = 0u64;
    for r in &c.records {
        if r.seq == 0 {
            // At or below the (empty) tables' last sequence: already applied.
            continue;
        }
        if r.seq <= last {
            return None;
        }
        let end = r.seq.checked_add(r.ops.len() as u64)? - 1;
        if end > MAX_SEQ {
            return None;
        }
        for op in &r.ops {
            match op {
                Op::Put(k, v) => {
                    m.insert(k.clone(), v.clone());
                }
                Op::Delete(k) => {
                    m.remove(k);
                }
            }
        }
        last = end;
    }
    Some(m)
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let file = if mode & 1 == 0 {
        rest.to_vec()
    } else {
        match structured(&mut Unstructured::new(rest)) {
            Ok(f) => f,
            Err(_) => return,
        }
    };
    let decoded = decode_wal(&file);
    if let Ok(c) = &decoded {
        for r in &c.records {
            let again = decode_wal_record(&encode_wal_record(r.seq, &r.ops));
            assert_eq!(again.as_ref(), Some(r), "WAL record re-encoding differs");
        }
    }
    let replayed = replay_wal(&file);
    match (&decoded, &replayed) {
        (Err(_), Ok(_)) => panic!("Db::open replayed a WAL the log reader rejects"),
        (Ok(c), r) => match model(c) {
            Some(want) => {
                let got = r.as_ref().unwrap_or_else(|e| panic!("replay failed: {e}"));
                let want: Vec<(Vec<u8>, Vec<u8>)> = want.into_iter().collect();
                assert_eq!(
                    got, &want,
                    "replayed contents differ from the decoded batches"
                );
            }
            None => assert!(
                r.is_err(),
                "replay accepted invalid sequence numbers: {c:?}"
            ),
        },
        (Err(_), Err(_)) => {}
    }
});
