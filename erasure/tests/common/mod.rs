#![allow(dead_code)]
//! Shared helpers for the layout's integration tests.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use cairn_erasure::{DataStore, ExtentId, LayoutConfig};
use cairn_metadata::{Db, Options, WriteBatch};
use rand::{Rng, RngCore, SeedableRng};

/// A small test configuration rooted at `root` (devices) with background
/// aging effectively off, so tests drive migration with `flush`.
pub fn test_config(root: &Path) -> LayoutConfig {
    let mut cfg = LayoutConfig::single_node(&root.join("dev"));
    cfg.slc_segment_bytes = 4 << 20;
    cfg.slc_capacity_bytes = 256 << 20;
    cfg.slc_high_water = 0.9;
    cfg.migrate_after = Duration::from_secs(3600);
    cfg.max_stripe_rows = 2;
    cfg.chunk_bytes = 64 << 10;
    cfg.worker_tick = Duration::from_millis(100);
    cfg
}

pub fn open_db(root: &Path) -> Arc<Db> {
    Arc::new(Db::open(root.join("meta"), Options::default()).expect("open db"))
}

pub async fn open_store(cfg: &LayoutConfig, db: &Arc<Db>) -> Arc<DataStore> {
    DataStore::open(cfg.clone(), db.clone())
        .await
        .expect("open store")
}

/// Appends and commits `data` the way the node does; returns the id.
pub async fn put(store: &DataStore, db: &Db, data: Bytes) -> ExtentId {
    let ext = store.append(data).await.expect("append");
    let mut b = WriteBatch::new();
    let id = store.stage_commit(&mut b, &ext);
    db.write(b).expect("commit");
    drop(ext);
    id
}

/// Commits a release of `id`.
pub fn release(store: &DataStore, db: &Db, id: ExtentId) {
    let mut b = WriteBatch::new();
    store.stage_release(&mut b, id);
    db.write(b).expect("release");
}

pub fn random_bytes(rng: &mut impl RngCore, len: usize) -> Bytes {
    let mut v = vec![0u8; len];
    rng.fill_bytes(&mut v);
    Bytes::from(v)
}

pub fn rng(seed: u64) -> rand::rngs::StdRng {
    rand::rngs::StdRng::seed_from_u64(seed)
}

/// Writes `n` extents of random sizes up to `max` bytes; returns ids with their data.
pub async fn write_random(
    store: &DataStore,
    db: &Db,
    seed: u64,
    n: usize,
    max: usize,
) -> Vec<(ExtentId, Bytes)> {
    let mut r = rng(seed);
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let len = if r.random_bool(0.2) {
            r.random_range(0..4096)
        } else {
            r.random_range(0..=max)
        };
        let data = random_bytes(&mut r, len);
        let id = put(store, db, data.clone()).await;
        out.push((id, data));
    }
    out
}

/// Reads every extent back whole and in a few random ranges.
pub async fn verify_all(store: &DataStore, data: &[(ExtentId, Bytes)], seed: u64) {
    let mut r = rng(seed);
    for (id, want) in data {
        let got = store
            .read(*id, 0, want.len() as u64)
            .await
            .unwrap_or_else(|e| panic!("read {id:?}: {e}"));
        assert!(got == *want, "extent {id:?} differs");
        for _ in 0..2 {
            if want.is_empty() {
                break;
            }
            let a = r.random_range(0..want.len());
            let b = r.random_range(a..=want.len());
            let got = store
                .read(*id, a as u64, (b - a) as u64)
                .await
                .unwrap_or_else(|e| panic!("range read {id:?}: {e}"));
            assert!(got == want.slice(a..b), "range {a}..{b} of {id:?} differs");
        }
    }
}

/// Waits until `f` holds, up to `secs` seconds.
pub async fn wait_until(secs: u64, mut f: impl FnMut() -> bool) -> bool {
    let deadline = std::time::Instant::now() + Duration::from_secs(secs);
    while std::time::Instant::now() < deadline {
        if f() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    f()
}

/// Reads every extent back whole.
pub async fn verify_whole(store: &DataStore, data: &[(ExtentId, Bytes)]) {
    for (id, want) in data {
        let got = store
            .read(*id, 0, want.len() as u64)
            .await
            .unwrap_or_else(|e| panic!("read {id:?}: {e}"));
        assert!(got == *want, "extent {id:?} differs");
    }
}
