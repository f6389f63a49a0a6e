//! Metadata manifest and CURRENT: any manifest file, any edit payload and any CURRENT are
//! decoded without panicking; a decoded edit re-encodes to one that decodes the same; a
//! manifest of well-formed edits (real framing and edit encoding) recovers to exactly the
//! state applying the edits gives, or fails where an edit deletes a table that is not live;
//! CURRENT in the engine's own format always names its manifest.
//!
//! Input, by the first byte mod 4: 0 = a manifest file as is; 1 = an edit payload;
//! 2 = a CURRENT file; 3 = edits built from the rest (then perhaps damaged).
#![no_main]
use std::collections::BTreeMap;
use std::sync::OnceLock;

use cairn_metadata::fuzzing::{
    build_table, decode_current, decode_edit, encode_edit, internal_key, manifest_file,
    recover_manifest, Edit, EditFile, ManifestState, NUM_LEVELS,
};
use libfuzzer_sys::arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;

/// Table numbers the built manifests use; each has a real (tiny) table on disk.
const NUMBERS: u64 = 6;

fn table() -> &'static [u8] {
    static T: OnceLock<Vec<u8>> = OnceLock::new();
    T.get_or_init(|| {
        build_table(&[(internal_key(b"k", 1, 1), b"v".to_vec())], 4096).expect("a table")
    })
}

fn recover(manifest: &[u8]) -> std::result::Result<ManifestState, cairn_metadata::Error> {
    let tables: Vec<(u64, &[u8])> = (1..=NUMBERS).map(|n| (n, table())).collect();
    recover_manifest(manifest, &tables)
}

/// What recovery must rebuild from `edits`: counters from the last edit that sets them,
/// tables added minus deleted; `None` where an edit deletes a table not live at that level
/// or there is no edit at all.
fn model(edits: &[Edit]) -> Option<ManifestState> {
    if edits.is_empty() {
        return None;
    }
    let mut st = ManifestState {
        log_number: 0,
        next_file: 1,
        last_seq: 0,
        files: Vec::new(),
    };
    let mut live: BTreeMap<u64, usize> = BTreeMap::new();
    for e in edits {
        st.log_number = e.log_number.unwrap_or(st.log_number);
        st.next_file = e.next_file.unwrap_or(st.next_file);
        st.last_seq = e.last_seq.unwrap_or(st.last_seq);
        for (level, number) in &e.deleted {
            if live.remove(number) != Some(*level) {
                return None;
            }
        }
        for a in &e.added {
            live.insert(a.number, a.level);
        }
    }
    st.files = live.into_iter().map(|(n, l)| (l, n)).collect();
    st.files.sort_unstable();
    Some(st)
}

fn key(u: &mut Unstructured) -> Result<Vec<u8>> {
    let n = u.int_in_range(8..=14)?;
    Ok(u.bytes(n)?.to_vec())
}

fn edit(u: &mut Unstructured) -> Result<Edit> {
    let opt = |u: &mut Unstructured| -> Result<Option<u64>> {
        Ok(if u.arbitrary()? {
            Some(u.arbitrary()?)
        } else {
            None
        })
    };
    let mut e = Edit {
        log_number: opt(u)?,
        next_file: opt(u)?,
        last_seq: opt(u)?,
        ..Edit::default()
    };
    for _ in 0..u.int_in_range(0..=3)? {
        e.added.push(EditFile {
            level: u.int_in_range(0..=NUM_LEVELS - 1)?,
            number: u.int_in_range(1..=NUMBERS)?,
            size: u.arbitrary()?,
            smallest: key(u)?,
            largest: key(u)?,
        });
    }
    for _ in 0..u.int_in_range(0..=2)? {
        e.deleted.push((
            u.int_in_range(0..=NUM_LEVELS - 1)?,
            u.int_in_range(1..=NUMBERS)?,
        ));
    }
    Ok(e)
}

fn built(u: &mut Unstructured) -> Result<()> {
    let edits: Vec<Edit> = (0..u.int_in_range(0..=5)?)
        .map(|_| edit(u))
        .collect::<Result<_>>()?;
    let payloads: Vec<Vec<u8>> = edits.iter().map(encode_edit).collect();
    for (p, e) in payloads.iter().zip(&edits) {
        assert_eq!(decode_edit(p).as_ref(), Some(e), "edit round trip");
    }
    let refs: Vec<&[u8]> = payloads.iter().map(Vec::as_slice).collect();
    let mut file = manifest_file(&refs);
    let damaged = match u.int_in_range(0..=3)? {
        0 => {
            let at = u.choose_index(file.len())?;
            file.truncate(at);
            true
        }
        1 => {
            let at = u.choose_index(file.len())?;
            file[at] ^= u.int_in_range(1..=255)?;
            true
        }
        _ => false,
    };
    let got = recover(&file);
    if !damaged {
        match model(&edits) {
            Some(want) => {
                let got = got.unwrap_or_else(|e| panic!("recovering a well-formed manifest: {e}"));
                assert_eq!(got, want, "recovered state differs from the edits");
            }
            None => assert!(
                got.is_err(),
                "recovery accepted an impossible edit sequence"
            ),
        }
    }
    Ok(())
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    match mode % 4 {
        0 => {
            let _ = recover(rest);
        }
        1 => {
            if let Some(e) = decode_edit(rest) {
                assert_eq!(
                    decode_edit(&encode_edit(&e)),
                    Some(e),
                    "edit re-encoding differs"
                );
            }
        }
        2 => {
            if let Ok(Some(name)) = decode_current(rest) {
                assert!(name.starts_with("MANIFEST-"), "CURRENT names {name:?}");
                let canonical = format!("{name} {:08x}\n", crc32c::crc32c(name.as_bytes()));
                assert_eq!(
                    decode_current(canonical.as_bytes()).ok().flatten(),
                    Some(name)
                );
            }
        }
        _ => {
            let _ = built(&mut Unstructured::new(rest));
        }
    }
});
