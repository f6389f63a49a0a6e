//! Metadata SSTables: any file opens (footer, index, filter verified), iterates and answers
//! point lookups and seeks without panicking. Tables written by the engine's builder from
//! sorted entries iterate back exactly those entries and every entry is found again by
//! `Table::get`; one flipped byte anywhere in such a table is always reported (every byte is
//! under a crc32c).
//!
//! Input, by the first byte mod 4: 0 = the file as is; 1 = entries built into a table, then
//! perhaps one byte flipped; 2 / 3 = arbitrary data-block bytes (and for 3 an arbitrary
//! index block) wrapped with valid checksums and footer, so the block decoders see them.
#![no_main]
use cairn_metadata::fuzzing::{build_block, build_table, decode_table, internal_key};
use libfuzzer_sys::arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;

const MAX_SEQ: u64 = (1 << 56) - 1;

fn put_varint(buf: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        buf.push((v as u8) | 0x80);
        v >>= 7;
    }
    buf.push(v as u8);
}

/// FORMAT.md's table layout: blocks each followed by their crc32c, then the 48-byte footer.
fn wrap(data: &[u8], filter: &[u8], index: &[u8]) -> Vec<u8> {
    let mut f = Vec::new();
    let mut handles = Vec::new();
    for b in [data, filter, index] {
        handles.push((f.len() as u64, b.len() as u32));
        f.extend_from_slice(b);
        f.extend_from_slice(&crc32c::crc32c(b).to_le_bytes());
    }
    let mut footer = Vec::new();
    footer.extend_from_slice(&handles[1].0.to_le_bytes());
    footer.extend_from_slice(&handles[1].1.to_le_bytes());
    footer.extend_from_slice(&handles[2].0.to_le_bytes());
    footer.extend_from_slice(&handles[2].1.to_le_bytes());
    footer.extend_from_slice(&1u64.to_le_bytes());
    footer.extend_from_slice(&[1, 0, 0, 0]);
    footer.extend_from_slice(b"CAIRNSST");
    let crc = crc32c::crc32c(&footer);
    footer.extend_from_slice(&crc.to_le_bytes());
    f.extend_from_slice(&footer);
    f
}

fn probes(u: &mut Unstructured) -> Result<Vec<Vec<u8>>> {
    let n = u.int_in_range(0..=3)?;
    (0..n)
        .map(|_| {
            let l = u.int_in_range(0..=12)?;
            Ok(u.bytes(l)?.to_vec())
        })
        .collect()
}

fn built(u: &mut Unstructured) -> Result<()> {
    let n = u.int_in_range(0..=40)?;
    let mut entries = Vec::new();
    for _ in 0..n {
        let ulen = u.int_in_range(0..=4)?;
        let user = u.bytes(ulen)?.to_vec();
        let seq = u.int_in_range(0..=MAX_SEQ)?;
        let kind = u.int_in_range(0..=1)?;
        let vlen = u.int_in_range(0..=40)?;
        entries.push((user, seq, kind, u.bytes(vlen)?.to_vec()));
    }
    // Internal-key order: user key ascending, then sequence (and kind) descending; one entry
    // per (user key, sequence).
    entries.sort_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)).then(b.2.cmp(&a.2)));
    entries.dedup_by(|a, b| a.0 == b.0 && a.1 == b.1);
    let kv: Vec<(Vec<u8>, Vec<u8>)> = entries
        .iter()
        .map(|(user, seq, kind, v)| (internal_key(user, *seq, *kind), v.clone()))
        .collect();
    let block_bytes = u.int_in_range(1..=512)?;
    let mut file = build_table(&kv, block_bytes).expect("building a table");
    let flip = if u.ratio(1, 3)? {
        let at = u.choose_index(file.len())?;
        file[at] ^= u.int_in_range(1..=255)?;
        Some(at)
    } else {
        None
    };
    let probes = probes(u)?;
    let got = decode_table(&file, &probes);
    match flip {
        None => {
            let t = got.unwrap_or_else(|e| panic!("opening a built table: {e}"));
            assert!(
                t.iter_error.is_none(),
                "iterating a built table: {:?}",
                t.iter_error
            );
            let back: Vec<(Vec<u8>, Vec<u8>)> = t
                .entries
                .iter()
                .map(|e| (e.ikey.clone(), e.value.clone()))
                .collect();
            assert_eq!(back, kv, "a built table iterates back different entries");
            assert_eq!(t.gets.len(), entries.len());
            for (i, g) in &t.gets {
                let (_, _, kind, v) = &entries[*i];
                let g = g.as_ref().unwrap_or_else(|e| panic!("get: {e}"));
                assert_eq!(g.as_ref(), Some(&(*kind, v.clone())), "get of entry {i}");
            }
        }
        Some(at) => {
            if let Ok(t) = got {
                assert!(
                    t.iter_error.is_some(),
                    "byte {at} of a {}-byte table flipped and nothing noticed",
                    file.len()
                );
            }
        }
    }
    Ok(())
}

fn raw_blocks(u: &mut Unstructured, raw_index: bool) -> Result<()> {
    let dlen = u.int_in_range(0..=256)?;
    let data = u.bytes(dlen)?.to_vec();
    let flen = u.int_in_range(0..=16)?;
    let filter = u.bytes(flen)?.to_vec();
    let index = if raw_index {
        let ilen = u.int_in_range(0..=64)?;
        u.bytes(ilen)?.to_vec()
    } else {
        let mut handle = Vec::new();
        put_varint(&mut handle, 0);
        put_varint(&mut handle, data.len() as u64);
        let klen = u.int_in_range(0..=16)?;
        let last = u.bytes(klen)?.to_vec();
        build_block(&[(&last, &handle)], 1)
    };
    let probes = probes(u)?;
    let _ = decode_table(&wrap(&data, &filter, &index), &probes);
    Ok(())
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let mut u = Unstructured::new(rest);
    let _ = match mode % 4 {
        0 => {
            let _ = decode_table(rest, &[]);
            Ok(())
        }
        1 => built(&mut u),
        2 => raw_blocks(&mut u, false),
        _ => raw_blocks(&mut u, true),
    };
});
