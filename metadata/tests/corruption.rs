//! Corruption test: flip random bits in SSTables, WALs, the manifest and CURRENT; opening
//! or reading must report corruption and never return a wrong value. Only the last WAL
//! record may vanish (a damaged final record is indistinguishable from a torn write).

use std::collections::BTreeMap;
use std::ops::Bound;
use std::path::{Path, PathBuf};

use cairn_metadata::{Db, Error, Options, WriteBatch};
use rand::{Rng, SeedableRng};

fn opts() -> Options {
    Options {
        memtable_bytes: 1 << 20,
        block_bytes: 512,
        l1_bytes: 16 << 10,
        target_file_bytes: 16 << 10,
        background_compaction: false,
        ..Options::default()
    }
}

type Map = BTreeMap<Vec<u8>, Vec<u8>>;

/// Builds a database with tables at several levels, an L0 table and a WAL with records.
/// Returns the expected contents and the keys of the final WAL record.
fn build(dir: &Path) -> (Map, Vec<Vec<u8>>) {
    let mut m = Map::new();
    let db = Db::open(dir, opts()).unwrap();
    let put = |db: &Db, prefix: &str, range: std::ops::Range<u32>, m: &mut Map| {
        let mut b = WriteBatch::new();
        let mut keys = Vec::new();
        for i in range {
            let k = format!("{prefix}/{i:05}").into_bytes();
            let v =
                format!("value-{prefix}-{i}-{}", "x".repeat((i % 7) as usize * 10)).into_bytes();
            b.put(&k, &v);
            m.insert(k.clone(), v);
            keys.push(k);
        }
        db.write(b).unwrap();
        keys
    };
    for c in 0..20 {
        put(&db, "deep", c * 100..(c + 1) * 100, &mut m);
    }
    db.compact().unwrap();
    for c in 0..5 {
        put(&db, "mid", c * 100..(c + 1) * 100, &mut m);
    }
    db.flush().unwrap();
    for c in 0..5 {
        put(&db, "wal", c * 20..(c + 1) * 20, &mut m);
    }
    let last = put(&db, "last", 0..20, &mut m);
    db.close().unwrap();
    (m, last)
}

fn copy_dir(from: &Path, to: &Path) {
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
}

fn data_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap() != "LOCK")
        .collect();
    v.sort();
    v
}

fn is_corruption(e: &Error) -> bool {
    matches!(e, Error::Corruption { .. })
}

/// Opens and reads everything; panics on any wrong or silently missing value.
fn verify(dir: &Path, expected: &Map, may_lose: &[Vec<u8>], what: &str) -> &'static str {
    let db = match Db::open(dir, opts()) {
        Ok(db) => db,
        Err(e) if is_corruption(&e) => return "open",
        Err(e) => panic!("{what}: open failed with a non-corruption error: {e}"),
    };
    let mut detected = false;
    for (k, v) in expected {
        match db.get(k) {
            Ok(Some(got)) => assert_eq!(&got[..], &v[..], "{what}: wrong value for {k:?}"),
            Ok(None) => assert!(
                may_lose.contains(k),
                "{what}: key {:?} silently lost",
                String::from_utf8_lossy(k)
            ),
            Err(e) if is_corruption(&e) => detected = true,
            Err(e) => panic!("{what}: get failed with a non-corruption error: {e}"),
        }
    }
    let mut seen = 0usize;
    for r in db.range(Bound::Unbounded, Bound::Unbounded) {
        match r {
            Ok((k, v)) => {
                assert_eq!(
                    expected.get(k.as_ref()).map(Vec::as_slice),
                    Some(&v[..]),
                    "{what}: scan returned a wrong or unknown entry"
                );
                seen += 1;
            }
            Err(e) if is_corruption(&e) => {
                detected = true;
                break;
            }
            Err(e) => panic!("{what}: scan failed with a non-corruption error: {e}"),
        }
    }
    if !detected {
        assert!(
            seen + may_lose.len() >= expected.len(),
            "{what}: scan silently skipped entries ({seen} of {})",
            expected.len()
        );
    }
    if detected {
        "read"
    } else {
        "none"
    }
}

#[test]
fn random_bit_flips_are_detected() {
    let base = tempfile::tempdir().unwrap();
    let (expected, last) = build(base.path());
    let files = data_files(base.path());
    let kinds = |ext: &str| {
        files
            .iter()
            .filter(|p| p.to_string_lossy().contains(ext))
            .count()
    };
    assert!(kinds(".sst") >= 3 && kinds(".log") == 1 && kinds("MANIFEST") == 1);
    let trials = if std::env::var("CAIRN_LONG").is_ok_and(|v| v == "1") {
        3000
    } else {
        400
    };
    let mut rng = rand::rngs::StdRng::seed_from_u64(0xC0FFEE);
    let mut outcomes: BTreeMap<(String, &str), usize> = BTreeMap::new();
    for trial in 0..trials {
        let dir = tempfile::tempdir().unwrap();
        copy_dir(base.path(), dir.path());
        // Weight the small metadata files up so they are hit often.
        let pick = match trial % 4 {
            0 => files.iter().find(|p| p.to_string_lossy().ends_with(".log")),
            1 => files
                .iter()
                .find(|p| p.to_string_lossy().contains("MANIFEST")),
            _ => None,
        }
        .cloned()
        .unwrap_or_else(|| files[rng.random_range(0..files.len())].clone());
        let name = pick.file_name().unwrap().to_string_lossy().to_string();
        let target = dir.path().join(&name);
        let mut data = std::fs::read(&target).unwrap();
        let off = rng.random_range(0..data.len());
        let bit = 1u8 << rng.random_range(0..8);
        data[off] ^= bit;
        std::fs::write(&target, &data).unwrap();
        let may_lose: &[Vec<u8>] = if name.ends_with(".log") { &last } else { &[] };
        let what = format!("trial {trial}: flipped bit {bit:#x} at {name}:{off}");
        let how = verify(dir.path(), &expected, may_lose, &what);
        let kind = name.rsplit('.').next().unwrap_or(&name).to_string();
        let kind = if kind.starts_with("MANIFEST") {
            "MANIFEST".to_string()
        } else {
            kind
        };
        *outcomes.entry((kind, how)).or_default() += 1;
    }
    eprintln!("corruption outcomes (file kind, where detected): {outcomes:?}");
}

#[test]
fn torn_wal_tail_loses_only_the_last_record() {
    let base = tempfile::tempdir().unwrap();
    let (expected, last) = build(base.path());
    let wal = data_files(base.path())
        .into_iter()
        .find(|p| p.to_string_lossy().ends_with(".log"))
        .unwrap();
    let len = std::fs::metadata(&wal).unwrap().len();
    for cut in [1u64, 5, 8, 9, 100, 300] {
        let dir = tempfile::tempdir().unwrap();
        copy_dir(base.path(), dir.path());
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(dir.path().join(wal.file_name().unwrap()))
            .unwrap();
        f.set_len(len - cut).unwrap();
        drop(f);
        let what = format!("WAL truncated by {cut}");
        assert_eq!(verify(dir.path(), &expected, &last, &what), "none");
        let db = Db::open(dir.path(), opts()).unwrap();
        assert_eq!(
            db.get(&last[0]).unwrap(),
            None,
            "{what}: torn record must not apply"
        );
        assert!(db.get(b"wal/00099").unwrap().is_some());
    }
}

#[test]
fn damage_before_an_intact_wal_record_is_corruption() {
    let base = tempfile::tempdir().unwrap();
    let (expected, _) = build(base.path());
    let wal = data_files(base.path())
        .into_iter()
        .find(|p| p.to_string_lossy().ends_with(".log"))
        .unwrap();
    let mut data = std::fs::read(&wal).unwrap();
    // Inside the first batch record (after the 13-byte header and its 8-byte frame header).
    data[13 + 8 + 30] ^= 0x10;
    let dir = tempfile::tempdir().unwrap();
    copy_dir(base.path(), dir.path());
    std::fs::write(dir.path().join(wal.file_name().unwrap()), &data).unwrap();
    assert_eq!(
        verify(dir.path(), &expected, &[], "middle WAL damage"),
        "open"
    );
}

#[test]
fn missing_files_are_corruption() {
    let base = tempfile::tempdir().unwrap();
    let (expected, _) = build(base.path());
    for victim in [".sst", ".log", "MANIFEST", "CURRENT"] {
        let dir = tempfile::tempdir().unwrap();
        copy_dir(base.path(), dir.path());
        let f = data_files(dir.path())
            .into_iter()
            .find(|p| p.to_string_lossy().contains(victim))
            .unwrap();
        std::fs::remove_file(&f).unwrap();
        assert_eq!(
            verify(dir.path(), &expected, &[], &format!("removed {victim}")),
            "open",
            "removing {victim} must be reported"
        );
    }
}

#[test]
fn torn_tail_survives_a_crash_during_the_next_open() {
    let base = tempfile::tempdir().unwrap();
    let (expected, last) = build(base.path());
    let wal = data_files(base.path())
        .into_iter()
        .find(|p| p.to_string_lossy().ends_with(".log"))
        .unwrap();
    let len = std::fs::metadata(&wal).unwrap().len();
    let f = std::fs::OpenOptions::new().write(true).open(&wal).unwrap();
    f.set_len(len - 7).unwrap();
    drop(f);
    // An open that died right after creating its new (empty) WAL.
    let name = wal.file_name().unwrap().to_string_lossy().to_string();
    let n: u64 = name.trim_end_matches(".log").parse().unwrap();
    let mut hdr = Vec::new();
    let payload = b"CWAL\x01";
    hdr.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    let crc = crc32c::crc32c_append(crc32c::crc32c(&hdr[..4]), payload);
    hdr.extend_from_slice(&crc.to_le_bytes());
    hdr.extend_from_slice(payload);
    std::fs::write(base.path().join(format!("{:06}.log", n + 1000)), &hdr).unwrap();
    assert_eq!(
        verify(
            base.path(),
            &expected,
            &last,
            "torn tail then empty newer WAL"
        ),
        "none"
    );
}
