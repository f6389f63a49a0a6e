//! SLC buffer: append, group commit, reads before migration, errors, fallback I/O.

mod common;

use std::sync::Arc;

use bytes::Bytes;
use cairn_erasure::{DataStore, ExtentId, IoBackend, LayoutError, MAX_EXTENT_BYTES};
use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slc_round_trip_ranges_and_errors() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = test_config(dir.path());
    let db = open_db(dir.path());
    let store = open_store(&cfg, &db).await;
    let data = write_random(&store, &db, 1, 30, 1 << 20).await;
    verify_all(&store, &data, 2).await;
    assert_eq!(store.counters().slc_appends, 30);
    assert!(store.status().slc_used_bytes > 0);

    let too_big = Bytes::from(vec![0u8; MAX_EXTENT_BYTES + 1]);
    assert!(matches!(
        store.append(too_big).await,
        Err(LayoutError::TooLarge { .. })
    ));
    assert!(matches!(
        store.read(ExtentId(999_999), 0, 1).await,
        Err(LayoutError::NotFound(_))
    ));
    let (id, d) = &data[0];
    assert!(matches!(
        store.read(*id, d.len() as u64, 1).await,
        Err(LayoutError::Range { .. })
    ));
    // An append that was never committed is not readable.
    let ext = store.append(Bytes::from_static(b"orphan")).await.unwrap();
    let orphan = ext.id();
    drop(ext);
    assert!(matches!(
        store.read(orphan, 0, 1).await,
        Err(LayoutError::NotFound(_))
    ));

    // Restart: the buffer is recovered and still serves every committed extent.
    store.shutdown().await;
    drop(store);
    let store = open_store(&cfg, &db).await;
    verify_all(&store, &data, 3).await;
    store.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_appends_share_group_commits() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = test_config(dir.path());
    let db = open_db(dir.path());
    let store = open_store(&cfg, &db).await;
    let mut tasks = Vec::new();
    for t in 0..16u64 {
        let store = store.clone();
        let db = db.clone();
        tasks.push(tokio::spawn(async move {
            let mut r = rng(100 + t);
            let mut out = Vec::new();
            for _ in 0..20 {
                let len = rand::Rng::random_range(&mut r, 1..64 << 10);
                let d = random_bytes(&mut r, len);
                out.push((put(&store, &db, d.clone()).await, d));
            }
            out
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    let ids: std::collections::HashSet<_> = all.iter().map(|(i, _)| *i).collect();
    assert_eq!(ids.len(), all.len(), "extent ids are unique");
    verify_all(&store, &all, 5).await;
    store.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn torn_slc_tail_is_truncated_and_mirror_copy_restored() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = test_config(dir.path());
    let db = open_db(dir.path());
    let store = open_store(&cfg, &db).await;
    let data = write_random(&store, &db, 9, 10, 100 << 10).await;
    store.shutdown().await;
    drop(store);
    // Simulate a crash mid-append: garbage after the last record on one mirror,
    // and the whole segment lost on the other.
    let seg = std::fs::read_dir(&cfg.slc_dirs[0])
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().map(|e| e == "slc").unwrap_or(false))
        .unwrap();
    let mut bytes = std::fs::read(&seg).unwrap();
    let len = bytes.len();
    bytes.extend_from_slice(&[0xAB; 1000]);
    std::fs::write(&seg, &bytes).unwrap();
    let other = cfg.slc_dirs[1].join(seg.file_name().unwrap());
    std::fs::remove_file(&other).unwrap();
    let store = open_store(&cfg, &db).await;
    assert_eq!(std::fs::metadata(&seg).unwrap().len(), len as u64);
    assert_eq!(std::fs::metadata(&other).unwrap().len(), len as u64);
    verify_all(&store, &data, 10).await;
    // Corrupt one mirror's copy in place: reads fall back to the other mirror.
    let mut b = std::fs::read(&seg).unwrap();
    for x in b.iter_mut().skip(64) {
        *x ^= 0x5A;
    }
    std::fs::write(&seg, &b).unwrap();
    verify_all(&store, &data, 11).await;
    store.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forced_threaded_fallback_round_trips_through_stripes() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = test_config(dir.path());
    cfg.force_threaded_io = true;
    let db = open_db(dir.path());
    let store: Arc<DataStore> = open_store(&cfg, &db).await;
    assert_eq!(store.io_backend(), IoBackend::Threaded);
    assert_eq!(store.status().io_backend, "threaded");
    let data = write_random(&store, &db, 21, 20, 512 << 10).await;
    store.flush().await.unwrap();
    verify_all(&store, &data, 22).await;
    store.shutdown().await;
    drop(store);
    // The same files read back through the other backend (same on-disk format).
    cfg.force_threaded_io = false;
    let store = open_store(&cfg, &db).await;
    verify_all(&store, &data, 23).await;
    store.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn io_uring_backend_is_detected() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = test_config(dir.path());
    let db = open_db(dir.path());
    let store = open_store(&cfg, &db).await;
    let expected = if std::env::var("CAIRN_IO")
        .map(|v| v == "threaded")
        .unwrap_or(false)
    {
        IoBackend::Threaded
    } else if cairn_erasure::io::probe_uring().is_ok() {
        IoBackend::Uring
    } else {
        IoBackend::Threaded
    };
    assert_eq!(store.io_backend(), expected);
    let data = write_random(&store, &db, 31, 5, 64 << 10).await;
    verify_all(&store, &data, 32).await;
    store.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_slc_mirror_is_restored_from_the_other() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = test_config(dir.path());
    let db = open_db(dir.path());
    let store = open_store(&cfg, &db).await;
    let data = write_random(&store, &db, 41, 20, 300 << 10).await;
    store.shutdown().await;
    drop(store);
    std::fs::remove_dir_all(&cfg.slc_dirs[1]).unwrap();
    let store = open_store(&cfg, &db).await;
    assert!(store.status().devices.iter().all(|d| d.state == "online"));
    verify_all(&store, &data, 42).await;
    let more = write_random(&store, &db, 43, 5, 100 << 10).await;
    store.shutdown().await;
    drop(store);
    // The restored mirror alone now holds everything.
    std::fs::remove_dir_all(&cfg.slc_dirs[0]).unwrap();
    let store = open_store(&cfg, &db).await;
    verify_all(&store, &data, 44).await;
    verify_all(&store, &more, 45).await;
    store.shutdown().await;
    drop(store);
    // Both mirrors gone: a clear error, not an empty buffer.
    std::fs::remove_dir_all(&cfg.slc_dirs[0]).unwrap();
    std::fs::remove_dir_all(&cfg.slc_dirs[1]).unwrap();
    assert!(matches!(
        DataStore::open(cfg.clone(), db.clone()).await,
        Err(LayoutError::Device { .. })
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slc_range_reads_verify_the_pieces_they_touch() {
    use cairn_erasure::slc::{REC_HEADER, REC_PIECE, SEG_HEADER};
    let dir = tempfile::tempdir().unwrap();
    let cfg = test_config(dir.path());
    let db = open_db(dir.path());
    let store = open_store(&cfg, &db).await;
    let data = random_bytes(&mut rng(77), 1 << 20);
    let id = put(&store, &db, data.clone()).await;
    let seg = |i: usize| {
        std::fs::read_dir(&cfg.slc_dirs[i])
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| p.extension().map(|e| e == "slc").unwrap_or(false))
            .unwrap()
    };
    // The only record starts right after the segment header.
    let data_at = SEG_HEADER + REC_HEADER + 4 * (data.len() / REC_PIECE);
    let bad = 3 * REC_PIECE + 100;
    let flip = |i: usize| {
        let p = seg(i);
        let mut b = std::fs::read(&p).unwrap();
        b[data_at + bad] ^= 0x40;
        std::fs::write(&p, &b).unwrap();
    };
    let piece3 = (3 * REC_PIECE) as u64..(4 * REC_PIECE) as u64;
    flip(0);
    // Mirror 0's piece 3 is bad: that range comes from mirror 1, the rest from either.
    let got = store
        .read(id, piece3.start, REC_PIECE as u64)
        .await
        .unwrap();
    assert!(got == data.slice(3 * REC_PIECE..4 * REC_PIECE));
    flip(1);
    // Both mirrors bad in piece 3: an error for ranges touching it, never wrong bytes.
    let err = store.read(id, piece3.start + 50, 100).await;
    assert!(matches!(err, Err(LayoutError::Corruption(_))), "{err:?}");
    assert!(store.read(id, 0, data.len() as u64).await.is_err());
    let ok = store.read(id, 0, (3 * REC_PIECE) as u64).await.unwrap();
    assert!(ok == data.slice(0..3 * REC_PIECE));
    let ok = store
        .read(id, 4 * REC_PIECE as u64, REC_PIECE as u64)
        .await
        .unwrap();
    assert!(ok == data.slice(4 * REC_PIECE..5 * REC_PIECE));
    store.shutdown().await;
}
