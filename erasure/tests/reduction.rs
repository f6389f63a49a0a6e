//! Data reduction through the real `DataStore`: round trips of random and
//! structured data, dedup across extents, deltas against bases, deletes in
//! both orders giving the space back, and restarts that keep the
//! fingerprint index and refill the similarity index.

mod common;

use std::sync::atomic::Ordering;
use std::sync::Arc;

use bytes::Bytes;
use cairn_erasure::{DataStore, ExtentId, ReductionConfig, SimilarityReducer};
use common::*;
use rand::{Rng, RngCore};

fn log_lines(r: &mut impl RngCore, len: usize) -> Bytes {
    let levels = ["INFO", "WARN", "DEBUG", "ERROR"];
    let mut s = String::with_capacity(len + 200);
    let mut t = 1_700_000_000u64;
    while s.len() < len {
        t += r.random_range(0..3);
        s.push_str(&format!(
            "{t} host-{:02} svc[{}]: {} request id={:016x} took {}ms status={}\n",
            r.random_range(0..16),
            r.random_range(1000..1100),
            levels[r.random_range(0..4)],
            r.next_u64(),
            r.random_range(0..500),
            [200, 200, 200, 404, 500][r.random_range(0..5)]
        ));
    }
    s.truncate(len);
    Bytes::from(s)
}

fn floats(r: &mut impl RngCore, n: usize) -> Vec<f32> {
    (0..n)
        .map(|_| (r.random_range(-1.0f32..1.0) * r.random_range(0.0f32..1.0)) * 0.05)
        .collect()
}

fn f32_bytes(v: &[f32]) -> Bytes {
    Bytes::from(v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>())
}

/// A dense training update: every weight moves a little.
fn dense_update(w: &mut [f32], g: &mut impl Rng) {
    for x in w.iter_mut() {
        *x -= *x * 1e-3 * g.random_range(-1.0f32..1.0);
    }
}

/// A tensor of `n` floats (as bytes) and its weights after a dense update.
fn tensor_and_update(seed: u64, n: usize) -> (Bytes, Vec<f32>) {
    let mut g = rng(seed);
    let mut w = floats(&mut g, n);
    let v0 = f32_bytes(&w);
    dense_update(&mut w, &mut g);
    (v0, w)
}

async fn store_with(
    dir: &std::path::Path,
) -> (
    Arc<DataStore>,
    Arc<cairn_metadata::Db>,
    Arc<SimilarityReducer>,
) {
    let cfg = test_config(dir);
    let db = open_db(dir);
    let r = Arc::new(SimilarityReducer::open(ReductionConfig::default(), &db).unwrap());
    let store = DataStore::open_with_reducer(cfg, db.clone(), Some(r.clone()))
        .await
        .unwrap();
    (store, db, r)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_and_structured_data_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let (store, db, r) = store_with(dir.path()).await;
    let mut g = rng(1);
    let mut all: Vec<(ExtentId, Bytes)> = Vec::new();
    let datasets = vec![
        random_bytes(&mut g, 700 << 10),
        log_lines(&mut g, 900 << 10),
        f32_bytes(&floats(&mut g, 200_000)),
        Bytes::from(vec![0u8; 300 << 10]),
        Bytes::from(vec![7u8; 1]),
        Bytes::new(),
        random_bytes(&mut g, 5000),
    ];
    for d in datasets {
        all.push((put(&store, &db, d.clone()).await, d));
    }
    store.flush().await.unwrap();
    verify_whole(&store, &all).await;
    verify_all(&store, &all, 3).await;
    let c = store.counters();
    let logical: u64 = all.iter().map(|(_, d)| d.len() as u64).sum();
    assert_eq!(c.migrated_bytes, logical);
    assert!(c.reduced_after_dedup_bytes <= logical);
    assert!(c.reduced_after_compression_bytes < logical * 3 / 4, "{c:?}");
    assert!(c.physical_live_bytes >= c.live_bytes * 3 / 2);
    assert!(
        r.stats.plane_chunks.load(Ordering::Relaxed) > 0,
        "floats used byte planes"
    );
    store.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identical_chunks_are_stored_once_across_extents() {
    let dir = tempfile::tempdir().unwrap();
    let (store, db, r) = store_with(dir.path()).await;
    let mut g = rng(2);
    let shared = random_bytes(&mut g, 1 << 20);
    let mut mixed = random_bytes(&mut g, 200 << 10).to_vec();
    mixed.extend_from_slice(&shared);
    let mixed = Bytes::from(mixed);
    // Two "accounts" writing the same object, a third embedding it, and one
    // extent that repeats the same content twice.
    let mut doubled = shared.to_vec();
    doubled.extend_from_slice(&shared);
    let doubled = Bytes::from(doubled);
    let a = put(&store, &db, shared.clone()).await;
    store.flush().await.unwrap();
    let b = put(&store, &db, shared.clone()).await;
    let c = put(&store, &db, mixed.clone()).await;
    let d = put(&store, &db, doubled.clone()).await;
    store.flush().await.unwrap();
    let all = vec![(a, shared.clone()), (b, shared), (c, mixed), (d, doubled)];
    verify_whole(&store, &all).await;
    verify_all(&store, &all, 4).await;
    let live = store.counters().live_bytes;
    // ~1 MiB shared + 200 KiB unique + the chunks around the seam.
    assert!(live < (1 << 20) + (200 << 10) + (300 << 10), "live {live}");
    assert!(r.stats.dedup_hits.load(Ordering::Relaxed) > 40);
    for (id, _) in &all {
        release(&store, &db, *id);
    }
    let s = store.clone();
    assert!(wait_until(20, move || s.counters().live_bytes == 0).await);
    assert_eq!(r.indexed_chunks(), 0, "freed chunks left the index");
    store.shutdown().await;
}

/// A base and a version of it with scattered edits in every chunk.
fn base_and_edit(seed: u64) -> (Bytes, Bytes) {
    let mut g = rng(seed);
    let base = log_lines(&mut g, 1 << 20);
    let mut v = base.to_vec();
    let mut i = 100;
    while i < v.len() {
        v[i] = b'#';
        i += g.random_range(3000..9000);
    }
    (base, Bytes::from(v))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn similar_chunks_are_stored_as_deltas() {
    let dir = tempfile::tempdir().unwrap();
    let (store, db, r) = store_with(dir.path()).await;
    let (base, edited) = base_and_edit(3);
    let a = put(&store, &db, base.clone()).await;
    store.flush().await.unwrap();
    let stored_base = store.counters().live_bytes;
    let b = put(&store, &db, edited.clone()).await;
    store.flush().await.unwrap();
    let deltas = r.stats.delta_hits.load(Ordering::Relaxed);
    assert!(deltas >= 10, "delta hits {deltas}");
    let c = store.counters();
    let stored_edit = c.live_bytes - stored_base;
    assert!(
        stored_edit * 4 < stored_base,
        "edited version stored {stored_edit} vs base {stored_base}"
    );
    assert!(c.reduced_after_similarity_bytes < c.reduced_after_dedup_bytes);
    let all = vec![(a, base), (b, edited)];
    verify_whole(&store, &all).await;
    verify_all(&store, &all, 5).await;
    store.shutdown().await;
}

async fn deletes_give_space_back(base_first: bool) {
    let dir = tempfile::tempdir().unwrap();
    let (store, db, _r) = store_with(dir.path()).await;
    let (base, edited) = base_and_edit(4);
    let a = put(&store, &db, base.clone()).await;
    store.flush().await.unwrap();
    let b = put(&store, &db, edited.clone()).await;
    store.flush().await.unwrap();
    let full = store.counters().live_bytes;
    let (first, second, keep) = if base_first {
        (a, b, edited)
    } else {
        (b, a, base)
    };
    release(&store, &db, first);
    let s = store.clone();
    assert!(wait_until(20, move || s.counters().extents_freed == 1).await);
    let after_one = store.counters().live_bytes;
    if base_first {
        // The bases stay while the deltas reference them.
        assert_eq!(after_one, full, "bases retained");
    } else {
        assert!(after_one < full, "the deltas were freed");
    }
    // Reopen (empty base cache): reads decode deltas from bases on disk.
    store.shutdown().await;
    drop(store);
    let cfg = test_config(dir.path());
    let r2 = Arc::new(SimilarityReducer::open(ReductionConfig::default(), &db).unwrap());
    let store = DataStore::open_with_reducer(cfg, db.clone(), Some(r2.clone()))
        .await
        .unwrap();
    let left = vec![(second, keep)];
    verify_whole(&store, &left).await;
    verify_all(&store, &left, 6).await;
    release(&store, &db, second);
    let s = store.clone();
    assert!(wait_until(20, move || s.counters().live_bytes == 0).await);
    assert_eq!(r2.indexed_chunks(), 0);
    assert_eq!(
        db.scan_prefix(b"layout/chunk/").count(),
        0,
        "every chunk record is gone"
    );
    // Reclaim deletes the emptied stripes.
    let s = store.clone();
    assert!(wait_until(20, move || s.counters().dead_bytes == 0).await);
    store.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_the_base_first_keeps_it_until_its_deltas_go() {
    deletes_give_space_back(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_the_deltas_first_then_the_base() {
    deletes_give_space_back(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_keeps_data_and_the_fingerprint_index() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = test_config(dir.path());
    assert!(cfg.reduction.is_some(), "reduction is the default");
    let db = open_db(dir.path());
    let store = open_store(&cfg, &db).await;
    let mut g = rng(9);
    let data = log_lines(&mut g, 2 << 20);
    let rand_data = random_bytes(&mut g, 1 << 20);
    let a = put(&store, &db, data.clone()).await;
    let b = put(&store, &db, rand_data.clone()).await;
    store.flush().await.unwrap();
    // Acknowledged but not yet migrated when the process goes away.
    let c = put(&store, &db, rand_data.clone()).await;
    let live = store.counters().live_bytes;
    store.shutdown().await;
    drop(store);
    let store = open_store(&cfg, &db).await;
    let all = vec![(a, data.clone()), (b, rand_data.clone()), (c, rand_data)];
    verify_whole(&store, &all).await;
    store.flush().await.unwrap();
    let d = put(&store, &db, data.clone()).await;
    store.flush().await.unwrap();
    let mut all = all;
    all.push((d, data));
    verify_whole(&store, &all).await;
    verify_all(&store, &all, 10).await;
    assert_eq!(
        store.counters().live_bytes,
        live,
        "after restart, re-written data deduplicated against the persisted index"
    );
    store.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checkpoint_versions_are_stored_as_plane_deltas() {
    let dir = tempfile::tempdir().unwrap();
    let (store, db, r) = store_with(dir.path()).await;
    let (v0, w) = tensor_and_update(12, 400_000);
    let mut v1 = vec![0u8; 3];
    v1.extend_from_slice(&f32_bytes(&w));
    let v1 = Bytes::from(v1);
    let a = put(&store, &db, v0.clone()).await;
    store.flush().await.unwrap();
    let first = store.counters().live_bytes;
    let b = put(&store, &db, v1.clone()).await;
    store.flush().await.unwrap();
    assert!(r.stats.delta_hits.load(Ordering::Relaxed) > 0);
    let second = store.counters().live_bytes - first;
    // Element-aligned difference deltas: the unchanged high bytes cost next to nothing.
    assert!(second < first * 3 / 4, "second {second} vs first {first}");
    let all = vec![(a, v0), (b, v1)];
    verify_whole(&store, &all).await;
    verify_all(&store, &all, 13).await;
    // After a restart no base is cached: the deltas decode from bases read back from QLC.
    store.shutdown().await;
    drop(store);
    let r = Arc::new(SimilarityReducer::open(ReductionConfig::default(), &db).unwrap());
    let store = DataStore::open_with_reducer(test_config(dir.path()), db.clone(), Some(r))
        .await
        .unwrap();
    verify_whole(&store, &all).await;
    verify_all(&store, &all, 14).await;
    release(&store, &db, a);
    release(&store, &db, b);
    let s = store.clone();
    assert!(wait_until(20, move || s.counters().live_bytes == 0).await);
    store.shutdown().await;
}

/// The super-feature index lives in memory; the first migration after a
/// restart refills it from the newest stored bases, so versions written
/// after the restart still find their bases — here behind a run of newer
/// deltas longer than the first id window the warm-up scans (a 4 MiB cache
/// makes that window 128 chunks).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn similarity_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = ReductionConfig {
        base_cache_bytes: 4 << 20,
        ..ReductionConfig::default()
    };
    let open = |db: &Arc<cairn_metadata::Db>| {
        let r = Arc::new(SimilarityReducer::open(cfg.clone(), db).unwrap());
        let store =
            DataStore::open_with_reducer(test_config(dir.path()), db.clone(), Some(r.clone()));
        async move { (store.await.unwrap(), r) }
    };
    let db = open_db(dir.path());
    let (store, _) = open(&db).await;
    let (v0, mut w) = tensor_and_update(31, 300_000);
    let (text, edited) = base_and_edit(32);
    let mut all = vec![
        (put(&store, &db, v0.clone()).await, v0),
        (put(&store, &db, text.clone()).await, text),
    ];
    store.flush().await.unwrap();
    let first = store.counters().live_bytes;
    // Later versions of the tensor: ~150 delta chunks with newer ids.
    let mut g = rng(34);
    for _ in 0..4 {
        dense_update(&mut w, &mut g);
        let v = f32_bytes(&w);
        all.push((put(&store, &db, v.clone()).await, v));
    }
    store.flush().await.unwrap();
    let before = store.counters().live_bytes;
    store.shutdown().await;
    drop(store);
    let (store, r) = open(&db).await;
    dense_update(&mut w, &mut g);
    let v5 = f32_bytes(&w);
    all.push((put(&store, &db, v5.clone()).await, v5));
    all.push((put(&store, &db, edited.clone()).await, edited));
    store.flush().await.unwrap();
    let deltas = r.stats.delta_hits.load(Ordering::Relaxed);
    let chunks = r.stats.chunks.load(Ordering::Relaxed);
    assert!(
        deltas * 10 >= chunks * 8,
        "{deltas} deltas of {chunks} chunks"
    );
    let after = store.counters().live_bytes - before;
    assert!(
        after < first * 2 / 3,
        "after the restart {after} vs first {first}"
    );
    verify_whole(&store, &all).await;
    verify_all(&store, &all, 33).await;
    store.shutdown().await;
}

const CHILD_ENV: &str = "CAIRN_REDUCTION_CRASH_DIR";

fn crash_cfg(root: &std::path::Path) -> cairn_erasure::LayoutConfig {
    let mut cfg = test_config(root);
    cfg.slc_segment_bytes = 1 << 20;
    cfg.slc_high_water = 0.02;
    cfg.migrate_after = std::time::Duration::from_millis(100);
    cfg.reclaim_live_fraction = 0.7;
    cfg.worker_tick = std::time::Duration::from_millis(20);
    cfg
}

/// A zip holding `data` as one deflated member.
fn zip_of(data: &[u8]) -> Bytes {
    let body = miniz_oxide::deflate::compress_to_vec(data, 6);
    let mut z = b"PK\x03\x04\x14\x00\x00\x00\x08\x00".to_vec();
    z.extend_from_slice(&[0; 8]);
    z.extend_from_slice(&(body.len() as u32).to_le_bytes());
    z.extend_from_slice(&(data.len() as u32).to_le_bytes());
    z.extend_from_slice(&7u16.to_le_bytes());
    z.extend_from_slice(&0u16.to_le_bytes());
    z.extend_from_slice(b"lib.txt");
    z.extend_from_slice(&body);
    z.extend_from_slice(b"PK\x01\x02");
    Bytes::from(z)
}

/// Extent contents for the crash test: exact copies of a few templates
/// (dedup), templates with seeded edits (byte deltas), dense updates of a
/// few float tensors (difference deltas, found through delta locality), and
/// zips of an edited template (deflate token deltas).
fn crash_data(seed: u64) -> Bytes {
    if seed % 7 == 6 {
        let mut v = log_lines(&mut rng(300), 1 << 20).to_vec();
        let mut i = (seed as usize * 7919) % 20_000;
        while i < v.len() {
            v[i] = b'#';
            i += 40_000;
        }
        return zip_of(&v);
    }
    if seed % 5 == 4 {
        let mut w = floats(&mut rng(200 + seed % 2), 80_000);
        let mut g = rng(seed);
        dense_update(&mut w, &mut g);
        return f32_bytes(&w);
    }
    let t = seed % 4;
    let base = log_lines(&mut rng(100 + t), 300 << 10);
    if seed.is_multiple_of(3) {
        return base;
    }
    let mut v = base.to_vec();
    let mut g = rng(seed);
    let mut i = g.random_range(0..5000);
    while i < v.len() {
        v[i] = b'%';
        i += g.random_range(2000..9000);
    }
    Bytes::from(v)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reduction_crash_child_entry() {
    // Only does something when started by `sigkill_during_reducing_migration_loses_nothing`.
    let Ok(dir) = std::env::var(CHILD_ENV) else {
        return;
    };
    let root = std::path::PathBuf::from(dir);
    let run: u64 = std::env::var("CAIRN_REDUCTION_CRASH_RUN")
        .unwrap()
        .parse()
        .unwrap();
    let cfg = crash_cfg(&root);
    let db = open_db(&root);
    let store = open_store(&cfg, &db).await;
    let mut log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(root.join("acks.log"))
        .unwrap();
    let mut g = rng(run);
    let mut acked = Vec::new();
    for i in 0u64.. {
        let seed = (run << 32) | i;
        let id = put(&store, &db, crash_data(seed)).await;
        std::io::Write::write_all(&mut log, format!("ACK {} {seed}\n", id.0).as_bytes()).unwrap();
        acked.push(id);
        if acked.len() > 3 && g.random_bool(0.4) {
            let victim = acked.swap_remove(g.random_range(0..acked.len()));
            std::io::Write::write_all(&mut log, format!("REL {}\n", victim.0).as_bytes()).unwrap();
            release(&store, &db, victim);
        }
        if i % 4 == 3 {
            store.flush().await.unwrap();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_reducing_migration_loses_nothing() {
    let long = std::env::var("CAIRN_LONG").is_ok_and(|v| v == "1");
    let kills = if long { 30 } else { 4 };
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    let exe = std::env::current_exe().unwrap();
    let mut r = rng(77);
    let mut verified = 0;
    for run in 1..=kills {
        let mut c = std::process::Command::new(&exe)
            .args([
                "--exact",
                "reduction_crash_child_entry",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_ENV, &root)
            .env("CAIRN_REDUCTION_CRASH_RUN", run.to_string())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(r.random_range(500..1500))).await;
        assert!(c.try_wait().unwrap().is_none(), "child {run} exited early");
        c.kill().unwrap(); // SIGKILL
        c.wait().unwrap();
        let log = std::fs::read_to_string(root.join("acks.log")).unwrap_or_default();
        let mut acked = std::collections::BTreeMap::new();
        for line in log.lines() {
            let f: Vec<&str> = line.split(' ').collect();
            match f.as_slice() {
                ["ACK", id, seed] => {
                    if let (Ok(id), Ok(seed)) = (id.parse::<u64>(), seed.parse::<u64>()) {
                        acked.insert(id, seed);
                    }
                }
                ["REL", id] => {
                    if let Ok(id) = id.parse::<u64>() {
                        acked.remove(&id);
                    }
                }
                _ => {}
            }
        }
        let cfg = crash_cfg(&root);
        let db = open_db(&root);
        let store = open_store(&cfg, &db).await;
        for (id, seed) in &acked {
            let want = crash_data(*seed);
            let got = store
                .read(ExtentId(*id), 0, want.len() as u64)
                .await
                .unwrap_or_else(|e| panic!("run {run}: extent {id} unreadable: {e}"));
            assert!(got == want, "run {run}: extent {id} corrupted");
        }
        verified = acked.len();
        // Migrate what the child left in the buffer, then check again.
        store.flush().await.unwrap();
        for (id, seed) in acked.iter().take(20) {
            let want = crash_data(*seed);
            let got = store
                .read(ExtentId(*id), 0, want.len() as u64)
                .await
                .unwrap();
            assert!(got == want, "run {run}: extent {id} corrupted after flush");
        }
        store.shutdown().await;
        drop(store);
        drop(db);
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(verified > 0);
}
