//! SLC log records and segment recovery: any bytes parse as a record or not without
//! panicking, and a record that parses re-encodes to the same bytes. Two mirror copies of a
//! segment built from real records, then truncated, bit-flipped, replaced or removed, go
//! through start-up recovery, which must keep exactly the longest prefix in which every
//! record verifies on at least one copy, leave both copies that long, and leave every kept
//! record verifying (with its original bytes) on at least one copy.
//!
//! Input: first byte even = raw record bytes; odd = a segment built from the rest.
#![no_main]
use cairn_erasure::fuzzing::{
    check_segment_header, encode_record, parse_record, recover_mirrors, segment_header,
};
use cairn_erasure::slc::{REC_PIECE, SEG_HEADER};
use libfuzzer_sys::arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;

/// Records found by scanning `copies` from the header on, taking each record from the first
/// copy on which it verifies: `(offset, id, data)`.
fn scan(copies: &[Option<Vec<u8>>; 2], seq: u64) -> Vec<(usize, u64, Vec<u8>)> {
    let good: Vec<&Vec<u8>> = copies
        .iter()
        .flatten()
        .filter(|c| check_segment_header(c, seq))
        .collect();
    let mut out = Vec::new();
    let mut off = SEG_HEADER;
    loop {
        let found = good.iter().find_map(|c| {
            let (id, r) = parse_record(c.get(off..)?)?;
            Some((id, c[off + r.start..off + r.end].to_vec(), r.end))
        });
        match found {
            Some((id, data, end)) => {
                out.push((off, id, data));
                off += end;
            }
            None => return out,
        }
    }
}

fn damage(u: &mut Unstructured, c: &mut Option<Vec<u8>>) -> Result<()> {
    match u.int_in_range(0..=7)? {
        0 => *c = None,
        1 => {
            if let Some(b) = c {
                let at = u.int_in_range(0..=b.len())?;
                b.truncate(at);
            }
        }
        2 | 3 => {
            if let Some(b) = c.as_mut().filter(|b| !b.is_empty()) {
                let at = u.choose_index(b.len())?;
                b[at] ^= u.int_in_range(1..=255)?;
            }
        }
        4 => {
            if let Some(b) = c {
                let n = u.int_in_range(0..=48)?;
                b.extend_from_slice(u.bytes(n)?);
            }
        }
        _ => {}
    }
    Ok(())
}

fn segment(u: &mut Unstructured) -> Result<()> {
    let seq = u.int_in_range(0..=3)?;
    let mut seg = segment_header(seq);
    let mut originals = Vec::new();
    for i in 0..u.int_in_range(0..=5)? {
        let len = match u.int_in_range(0..=15)? {
            0 => REC_PIECE + u.int_in_range(0..=100)?,
            _ => u.int_in_range(0..=64)?,
        };
        let fill = u.arbitrary::<u8>()?;
        let data: Vec<u8> = (0..len).map(|j| fill.wrapping_add(j as u8)).collect();
        let id = (seq << 24) | i as u64;
        originals.push((seg.len(), id, data.clone()));
        seg.extend_from_slice(&encode_record(id, &data));
    }
    let mut copies = [Some(seg.clone()), Some(seg)];
    damage(u, &mut copies[0])?;
    damage(u, &mut copies[1])?;
    let want = scan(&copies, seq);
    for (w, o) in want.iter().zip(&originals) {
        assert_eq!(
            w, o,
            "a damaged copy yielded a record that was never written"
        );
    }
    let refs = [copies[0].as_deref(), copies[1].as_deref()];
    let rec = recover_mirrors(seq, refs).unwrap_or_else(|e| panic!("recovery failed: {e}"));
    let Some(&(last_off, _, ref last)) = want.last() else {
        assert_eq!(
            rec.kept, None,
            "recovery kept a segment with no intact record"
        );
        assert!(
            rec.copies.iter().all(Option::is_none),
            "dropped segment left files"
        );
        return Ok(());
    };
    let end = last_off + encode_record(0, last).len();
    assert_eq!(rec.kept, Some(end as u64), "recovery kept the wrong length");
    for c in &rec.copies {
        let c = c
            .as_ref()
            .expect("recovery left a mirror without the segment");
        assert_eq!(c.len(), end, "a mirror copy was not cut to the durable end");
    }
    let after = scan(&rec.copies, seq);
    assert_eq!(
        after,
        want,
        "records that verified before recovery no longer do (before: copies of {:?} bytes, \
         headers {:?})",
        copies.each_ref().map(|c| c.as_ref().map(Vec::len)),
        copies
            .each_ref()
            .map(|c| c.as_ref().map(|c| check_segment_header(c, seq))),
    );
    Ok(())
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    if mode & 1 == 0 {
        if let Some((id, r)) = parse_record(rest) {
            assert!(r.start <= r.end && r.end <= rest.len());
            assert_eq!(
                encode_record(id, &rest[r.clone()]),
                &rest[..r.end],
                "a parsed record re-encodes differently"
            );
        }
    } else {
        let _ = segment(&mut Unstructured::new(rest));
    }
});
