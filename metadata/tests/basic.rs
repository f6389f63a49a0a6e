//! API-level behaviour: reads, writes, iteration, snapshots, reopen, flush, compaction.

use std::ops::Bound;
use std::sync::Arc;

use cairn_metadata::{Bytes, Db, Error, Options, WriteBatch, MAX_KEY_BYTES, MAX_VALUE_BYTES};

fn small_opts() -> Options {
    Options {
        memtable_bytes: 16 << 10,
        block_bytes: 512,
        l1_bytes: 64 << 10,
        target_file_bytes: 32 << 10,
        l0_compaction_trigger: 2,
        ..Options::default()
    }
}

fn collect(it: cairn_metadata::DbIter) -> Vec<(Vec<u8>, Vec<u8>)> {
    it.map(|r| {
        let (k, v) = r.unwrap();
        (k.to_vec(), v.to_vec())
    })
    .collect()
}

#[test]
fn put_get_delete_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let db = Db::open(dir.path(), Options::default()).unwrap();
        db.put(b"a", b"1").unwrap();
        db.put(b"b", b"2").unwrap();
        db.delete(b"a").unwrap();
        assert_eq!(db.get(b"a").unwrap(), None);
        assert_eq!(db.get(b"b").unwrap(), Some(Bytes::from_static(b"2")));
        db.close().unwrap();
    }
    let db = Db::open(dir.path(), Options::default()).unwrap();
    assert_eq!(db.get(b"a").unwrap(), None);
    assert_eq!(db.get(b"b").unwrap().as_deref(), Some(&b"2"[..]));
}

#[test]
fn batch_last_op_wins_and_limits() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path(), Options::default()).unwrap();
    let mut b = WriteBatch::new();
    b.put(b"k", b"v1");
    b.put(b"k", b"v2");
    b.put(b"gone", b"x");
    b.delete(b"gone");
    assert_eq!(b.len(), 4);
    db.write(b).unwrap();
    assert_eq!(db.get(b"k").unwrap().as_deref(), Some(&b"v2"[..]));
    assert_eq!(db.get(b"gone").unwrap(), None);

    let mut big = WriteBatch::new();
    big.put(vec![b'x'; 4096], vec![7u8; 1 << 20]);
    db.write(big).unwrap();
    assert_eq!(db.get(&[b'x'; 4096]).unwrap().unwrap().len(), 1 << 20);

    let mut bad = WriteBatch::new();
    bad.put(b"ok", b"1");
    bad.put(vec![0u8; MAX_KEY_BYTES + 1], b"v");
    assert!(matches!(db.write(bad), Err(Error::InvalidArgument(_))));
    assert_eq!(
        db.get(b"ok").unwrap(),
        None,
        "a rejected batch applies nothing"
    );
    let mut bad = WriteBatch::new();
    bad.put(b"k", vec![0u8; MAX_VALUE_BYTES + 1]);
    assert!(matches!(db.write(bad), Err(Error::InvalidArgument(_))));
    db.write(WriteBatch::new()).unwrap();
}

#[test]
fn ranges_prefixes_seek_snapshots_across_flush_and_compaction() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path(), small_opts()).unwrap();
    for i in 0..2000u32 {
        let mut b = WriteBatch::new();
        b.put(format!("layout/{i:05}"), format!("v{i}"));
        b.put(format!("other/{i:05}"), format!("o{i}"));
        db.write(b).unwrap();
    }
    let snap = db.snapshot();
    for i in (0..2000u32).step_by(2) {
        db.delete(format!("layout/{i:05}")).unwrap();
    }
    db.put(b"layout/new", b"n").unwrap();
    // The old snapshot still sees everything.
    assert_eq!(collect(snap.scan_prefix(b"layout/")).len(), 2000);
    db.flush().unwrap();
    assert_eq!(collect(snap.scan_prefix(b"layout/")).len(), 2000);
    db.compact().unwrap();
    assert_eq!(collect(snap.scan_prefix(b"layout/")).len(), 2000);
    assert_eq!(
        snap.get(b"layout/00000").unwrap().as_deref(),
        Some(&b"v0"[..])
    );
    assert_eq!(db.get(b"layout/00000").unwrap(), None);

    let now = collect(db.scan_prefix(b"layout/"));
    assert_eq!(now.len(), 1001);
    assert_eq!(now[0].0, b"layout/00001");
    assert_eq!(now[1000].0, b"layout/new");
    let r = collect(db.range(
        Bound::Included(&b"layout/00100"[..]),
        Bound::Excluded(&b"layout/00110"[..]),
    ));
    let keys: Vec<String> = r
        .iter()
        .map(|(k, _)| String::from_utf8(k.clone()).unwrap())
        .collect();
    assert_eq!(
        keys,
        [
            "layout/00101",
            "layout/00103",
            "layout/00105",
            "layout/00107",
            "layout/00109"
        ]
    );
    let r = collect(db.range(
        Bound::Excluded(&b"layout/00101"[..]),
        Bound::Included(&b"layout/00103"[..]),
    ));
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].0, b"layout/00103");

    let mut it = db.scan_prefix(b"other/");
    it.seek(b"other/01500");
    assert_eq!(it.next().unwrap().unwrap().0.as_ref(), b"other/01500");
    it.seek(b"a");
    assert_eq!(it.next().unwrap().unwrap().0.as_ref(), b"other/00000");
    it.seek(b"zzz");
    assert!(it.next().is_none());
    drop(snap);
    db.close().unwrap();

    let db = Db::open(dir.path(), small_opts()).unwrap();
    assert_eq!(collect(db.scan_prefix(b"layout/")).len(), 1001);
    assert_eq!(collect(db.scan_prefix(b"other/")).len(), 2000);
    assert_eq!(
        collect(db.range(Bound::Unbounded, Bound::Unbounded)).len(),
        3001
    );
}

#[test]
fn concurrent_writers_and_readers() {
    let dir = tempfile::tempdir().unwrap();
    let db = Arc::new(Db::open(dir.path(), small_opts()).unwrap());
    let mut hs = Vec::new();
    for t in 0..8u32 {
        let db = db.clone();
        hs.push(std::thread::spawn(move || {
            for i in 0..200u32 {
                let mut b = WriteBatch::new();
                b.put(format!("t{t}/{i:04}/a"), i.to_le_bytes());
                b.put(format!("t{t}/{i:04}/b"), i.to_le_bytes());
                db.write(b).unwrap();
            }
        }));
    }
    for _ in 0..2 {
        let db = db.clone();
        hs.push(std::thread::spawn(move || {
            for _ in 0..50 {
                // Batches are atomic: every snapshot sees both halves or neither.
                let snap = db.snapshot();
                for t in 0..8u32 {
                    let items: Vec<_> = snap
                        .scan_prefix(format!("t{t}/").as_bytes())
                        .map(|r| r.unwrap())
                        .collect();
                    assert_eq!(items.len() % 2, 0);
                }
            }
        }));
    }
    for h in hs {
        h.join().unwrap();
    }
    assert_eq!(
        db.range(Bound::Unbounded, Bound::Unbounded).count(),
        8 * 200 * 2
    );
}

#[test]
fn lock_excludes_second_open() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path(), Options::default()).unwrap();
    assert!(matches!(
        Db::open(dir.path(), Options::default()),
        Err(Error::Locked(_))
    ));
    drop(db);
    Db::open(dir.path(), Options::default()).unwrap();
}

#[test]
fn flush_deletes_old_wal_and_compaction_reclaims_space() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path(), small_opts()).unwrap();
    for round in 0..5u32 {
        for i in 0..500u32 {
            db.put(format!("k{i:04}"), vec![round as u8; 100]).unwrap();
        }
    }
    db.compact().unwrap();
    let bytes = db.stats().table_bytes;
    assert!(
        bytes < 500 * 140,
        "compaction should drop overwritten versions: {bytes}"
    );
    let logs = std::fs::read_dir(dir.path())
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "log")
        })
        .count();
    assert_eq!(logs, 1);
    for i in 0..500u32 {
        assert_eq!(
            db.get(format!("k{i:04}").as_bytes()).unwrap().unwrap()[0],
            4
        );
    }
    for i in 0..500u32 {
        db.delete(format!("k{i:04}")).unwrap();
    }
    db.compact().unwrap();
    assert_eq!(db.stats().table_bytes, 0);
}

#[test]
fn first_open_crash_leftovers_are_not_corruption() {
    let dir = tempfile::tempdir().unwrap();
    Db::open(dir.path(), Options::default())
        .unwrap()
        .close()
        .unwrap();
    // As if the first open died after writing its manifest but before CURRENT.
    std::fs::remove_file(dir.path().join("CURRENT")).unwrap();
    let db = Db::open(dir.path(), Options::default()).unwrap();
    db.put(b"k", b"v").unwrap();
    drop(db);
    let db = Db::open(dir.path(), Options::default()).unwrap();
    assert_eq!(db.get(b"k").unwrap().as_deref(), Some(&b"v"[..]));
}

#[test]
fn group_commit_shares_fsyncs() {
    let dir = tempfile::tempdir().unwrap();
    let db = Arc::new(Db::open(dir.path(), Options::default()).unwrap());
    let hs: Vec<_> = (0..8u32)
        .map(|t| {
            let db = db.clone();
            std::thread::spawn(move || {
                for i in 0..100u32 {
                    db.put(format!("{t}/{i}"), b"v").unwrap();
                }
            })
        })
        .collect();
    for h in hs {
        h.join().unwrap();
    }
    let s = db.stats();
    assert_eq!(s.batches, 800);
    assert_eq!(s.wal_syncs, s.wal_writes);
    assert!(
        s.wal_syncs < 800,
        "8 concurrent durable writers should share fsyncs: {s:?}"
    );
    eprintln!("group commit: 800 batches, {} fsyncs", s.wal_syncs);
}

#[test]
fn handles_are_thread_safe_and_owned() {
    fn send_sync_static<T: Send + Sync + 'static>() {}
    fn send_static<T: Send + 'static>() {}
    send_sync_static::<Db>();
    send_sync_static::<cairn_metadata::Snapshot>();
    send_static::<cairn_metadata::DbIter>();
    send_sync_static::<Error>();

    // An iterator keeps working after the handle that made it is gone.
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path(), Options::default()).unwrap();
    db.put(b"a", b"1").unwrap();
    db.flush().unwrap();
    db.put(b"b", b"2").unwrap();
    let it = db.scan_prefix(b"");
    drop(db);
    let items = std::thread::spawn(move || it.map(|r| r.unwrap().0).collect::<Vec<_>>())
        .join()
        .unwrap();
    assert_eq!(
        items,
        vec![Bytes::from_static(b"a"), Bytes::from_static(b"b")]
    );
}
