//! Stripes: migration round trips, degraded reads, scrub, rebuild, reclaim.

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use cairn_erasure::{DataStore, LayoutConfig, LayoutError};
use cairn_metadata::Db;
use common::*;
use rand::Rng;

fn shard_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().map(|e| e == "shd").unwrap_or(false))
        .collect();
    v.sort();
    v
}

async fn setup(
    seed: u64,
    n: usize,
    max: usize,
) -> (
    tempfile::TempDir,
    LayoutConfig,
    Arc<Db>,
    Arc<DataStore>,
    Vec<(cairn_erasure::ExtentId, bytes::Bytes)>,
) {
    let dir = tempfile::tempdir().unwrap();
    let cfg = test_config(dir.path());
    let db = open_db(dir.path());
    let store = open_store(&cfg, &db).await;
    let data = write_random(&store, &db, seed, n, max).await;
    store.flush().await.unwrap();
    (dir, cfg, db, store, data)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_sizes_round_trip_through_buffer_migration_and_stripes() {
    let (_dir, cfg, db, store, data) = setup(41, 60, 3 << 20).await;
    let st = store.status();
    assert_eq!(st.slc_segments, 0, "flush drained the buffer");
    assert!(st.stripes > 0);
    let c = store.counters();
    assert_eq!(c.migrated_extents, data.len() as u64);
    assert!(c.qlc_writes > 0);
    assert_eq!(c.qlc_small_writes, 0, "every QLC write is at least 1 MiB");
    assert_eq!(
        c.qlc_unaligned_writes, 0,
        "every QLC write is a multiple of 64 KiB"
    );
    assert_eq!(
        c.live_bytes,
        data.iter().map(|(_, d)| d.len() as u64).sum::<u64>()
    );
    verify_all(&store, &data, 42).await;
    // More writes after a migration, read from the buffer and the stripes alike.
    let more = write_random(&store, &db, 43, 10, 1 << 20).await;
    verify_all(&store, &more, 44).await;
    store.shutdown().await;
    drop(store);
    // Leftovers of a crash between writing a stripe and committing it: removed at start-up.
    let real = shard_files(&cfg.qlc_dirs[0]);
    let orphan = cfg.qlc_dirs[0].join("s-00000000deadbeef.shd");
    std::fs::write(&orphan, vec![0u8; 1 << 20]).unwrap();
    let tmp = cfg.qlc_dirs[0].join("s-0000000000000001.shd.tmp");
    std::fs::write(&tmp, b"half a repair").unwrap();
    let store = open_store(&cfg, &db).await;
    assert!(
        !orphan.exists() && !tmp.exists(),
        "uncommitted shard files removed"
    );
    assert_eq!(
        shard_files(&cfg.qlc_dirs[0]),
        real,
        "committed shard files kept"
    );
    verify_all(&store, &data, 45).await;
    verify_all(&store, &more, 46).await;
    store.flush().await.unwrap();
    verify_all(&store, &more, 47).await;
    assert_eq!(store.counters().degraded_reads, 0);
    store.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn any_m_missing_devices_still_read_everything() {
    let (dir, cfg, db, store, data) = setup(51, 30, 2 << 20).await;
    store.shutdown().await;
    drop(store);
    let n = cfg.qlc_dirs.len();
    let parked = dir.path().join("parked");
    std::fs::create_dir_all(&parked).unwrap();
    for a in 0..n {
        for b in a + 1..n {
            for &i in &[a, b] {
                std::fs::rename(&cfg.qlc_dirs[i], parked.join(i.to_string())).unwrap();
            }
            let store = open_store(&cfg, &db).await;
            let missing = store
                .status()
                .devices
                .iter()
                .filter(|d| d.state == "missing")
                .count();
            assert_eq!(missing, 2);
            verify_whole(&store, &data).await;
            assert!(store.counters().degraded_reads > 0);
            store.shutdown().await;
            drop(store);
            for &i in &[a, b] {
                std::fs::rename(parked.join(i.to_string()), &cfg.qlc_dirs[i]).unwrap();
            }
        }
    }
    // Devices removed while the store runs are detected on the next read.
    let store = open_store(&cfg, &db).await;
    std::fs::remove_dir_all(&cfg.qlc_dirs[1]).unwrap();
    std::fs::remove_dir_all(&cfg.qlc_dirs[4]).unwrap();
    verify_all(&store, &data, 53).await;
    let st = store.status();
    assert_eq!(
        st.devices.iter().filter(|d| d.state == "missing").count(),
        2
    );
    store.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn m_plus_one_missing_gives_a_clear_error_never_wrong_bytes() {
    let (_dir, cfg, db, store, data) = setup(61, 30, 2 << 20).await;
    store.shutdown().await;
    drop(store);
    for i in [0, 2, 5] {
        std::fs::remove_dir_all(&cfg.qlc_dirs[i]).unwrap();
    }
    let store = open_store(&cfg, &db).await;
    let mut errors = 0;
    for (id, want) in &data {
        match store.read(*id, 0, want.len() as u64).await {
            Ok(got) => assert!(got == *want, "wrong bytes served for {id:?}"),
            Err(LayoutError::Unrecoverable {
                available, needed, ..
            }) => {
                assert!(available < needed);
                errors += 1;
            }
            Err(e) => panic!("unexpected error kind: {e}"),
        }
    }
    assert!(errors > 0, "reads that needed the missing devices failed");
    store.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scrub_detects_and_repairs_random_byte_flips() {
    let (_dir, cfg, _db, store, data) = setup(71, 40, 2 << 20).await;
    let clean = store.scrub().await.unwrap();
    assert_eq!(clean.bad_blocks, 0);
    assert!(clean.blocks_checked > 0);
    // Flip bytes in the shard files of at most m devices per stripe: pick two devices.
    let mut r = rng(72);
    let mut flips = 0;
    for &dev in &[1usize, 3] {
        for f in shard_files(&cfg.qlc_dirs[dev]) {
            let mut b = std::fs::read(&f).unwrap();
            for _ in 0..3 {
                let i = r.random_range(0..b.len());
                b[i] ^= 1 << r.random_range(0..8);
                flips += 1;
            }
            std::fs::write(&f, &b).unwrap();
        }
    }
    assert!(flips > 0);
    // Reads stay correct (degraded where a flip hit a chunk).
    verify_all(&store, &data, 73).await;
    let rep = store.scrub().await.unwrap();
    assert!(rep.bad_blocks > 0, "scrub found the flips: {rep:?}");
    assert_eq!(rep.repaired_blocks, rep.bad_blocks);
    assert_eq!(rep.unrecoverable_rows, 0);
    let again = store.scrub().await.unwrap();
    assert_eq!(again.bad_blocks, 0, "repairs hold: {again:?}");
    assert!(store.counters().repairs > 0);
    verify_all(&store, &data, 74).await;
    store.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rebuild_restores_full_redundancy() {
    let (_dir, cfg, db, store, data) = setup(81, 30, 2 << 20).await;
    store.shutdown().await;
    drop(store);
    // Replace qlc2 with an empty directory.
    std::fs::remove_dir_all(&cfg.qlc_dirs[2]).unwrap();
    std::fs::create_dir_all(&cfg.qlc_dirs[2]).unwrap();
    let store = open_store(&cfg, &db).await;
    assert_eq!(
        store
            .status()
            .devices
            .iter()
            .find(|d| d.id == "qlc2")
            .unwrap()
            .state,
        "missing"
    );
    // Writes go on while the device is missing: their stripes are born degraded.
    let more = write_random(&store, &db, 83, 10, 1 << 20).await;
    store.flush().await.unwrap();
    verify_whole(&store, &more).await;
    let mut data = data;
    data.extend(more);
    let rep = store.rebuild("qlc2").await.unwrap();
    assert!(rep.shards > 0 && rep.bytes > 0);
    assert_eq!(rep.failed_stripes, 0);
    assert!(rep.verified_blocks > 0);
    let st = store.status();
    assert_eq!(
        st.devices.iter().find(|d| d.id == "qlc2").unwrap().state,
        "online"
    );
    let prog = st.rebuild.unwrap();
    assert!(prog.finished && prog.bytes_done == prog.bytes_total && prog.bytes_total > 0);
    assert_eq!(shard_files(&cfg.qlc_dirs[2]).len() as u64, rep.shards);
    let scrub = store.scrub().await.unwrap();
    assert_eq!(scrub.bad_blocks, 0);
    assert_eq!(scrub.missing_blocks, 0);
    store.shutdown().await;
    drop(store);
    // Full redundancy again: any two other devices can now be lost.
    for i in [0, 4] {
        std::fs::remove_dir_all(&cfg.qlc_dirs[i]).unwrap();
    }
    let store = open_store(&cfg, &db).await;
    verify_all(&store, &data, 82).await;
    assert!(matches!(
        store.rebuild("qlc9").await,
        Err(LayoutError::NotFound(_))
    ));
    store.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn released_extents_are_freed_and_sparse_stripes_reclaimed() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = test_config(dir.path());
    cfg.reclaim_live_fraction = 0.5;
    let db = open_db(dir.path());
    let store = open_store(&cfg, &db).await;
    let data = write_random(&store, &db, 91, 60, 1 << 20).await;
    store.flush().await.unwrap();
    let before: Vec<PathBuf> = cfg.qlc_dirs.iter().flat_map(|d| shard_files(d)).collect();
    let stripes_before = store.status().stripes;
    // Release 4 of every 5 extents in one batch (so every stripe drops to ~20% live at once).
    let mut keep = Vec::new();
    let mut batch = cairn_metadata::WriteBatch::new();
    for (i, (id, d)) in data.iter().enumerate() {
        if i % 5 == 0 {
            keep.push((*id, d.clone()));
        } else {
            store.stage_release(&mut batch, *id);
        }
    }
    db.write(batch).unwrap();
    let s = store.clone();
    assert!(
        wait_until(60, move || s.counters().stripes_reclaimed >= stripes_before).await,
        "reclaim ran: {:?}",
        store.counters()
    );
    let c = store.counters();
    assert_eq!(c.extents_freed, (data.len() - keep.len()) as u64);
    assert_eq!(
        c.live_bytes,
        keep.iter().map(|(_, d)| d.len() as u64).sum::<u64>()
    );
    assert_eq!(c.dead_bytes, 0, "all dead space was reclaimed");
    for f in &before {
        assert!(!f.exists(), "old shard file {} deleted", f.display());
    }
    verify_all(&store, &keep, 92).await;
    for (i, (id, _)) in data.iter().enumerate() {
        if i % 5 != 0 {
            assert!(matches!(
                store.read(*id, 0, 0).await,
                Err(LayoutError::NotFound(_))
            ));
        }
    }
    // Released before migration: never migrated at all.
    let young = write_random(&store, &db, 93, 5, 100 << 10).await;
    for (id, _) in &young {
        release(&store, &db, *id);
    }
    store.flush().await.unwrap();
    let s = store.clone();
    let want = (data.len() - keep.len() + 5) as u64;
    assert!(wait_until(30, move || s.counters().extents_freed == want).await);
    store.shutdown().await;
    drop(store);
    let store = open_store(&cfg, &db).await;
    verify_all(&store, &keep, 94).await;
    store.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_during_migration_and_reclaim_stay_correct() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = test_config(dir.path());
    cfg.migrate_after = std::time::Duration::from_millis(200);
    cfg.reclaim_live_fraction = 0.9;
    let db = open_db(dir.path());
    let store = open_store(&cfg, &db).await;
    let mut live = Vec::new();
    let mut r = rng(101);
    for round in 0..6u64 {
        let batch = write_random(&store, &db, 200 + round, 15, 512 << 10).await;
        for (i, (id, d)) in batch.into_iter().enumerate() {
            if i % 3 == 0 {
                release(&store, &db, id);
            } else {
                live.push((id, d));
            }
        }
        for _ in 0..20 {
            let (id, d) = &live[r.random_range(0..live.len())];
            let got = store.read(*id, 0, d.len() as u64).await.unwrap();
            assert!(got == *d);
        }
    }
    let s = store.clone();
    assert!(
        wait_until(30, move || s.status().slc_segments == 0
            || s.counters().migrated_extents > 0)
        .await
    );
    verify_all(&store, &live, 102).await;
    store.shutdown().await;
}
