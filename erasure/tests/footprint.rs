//! Per-extent space accounting (`DataStore::extent_footprint`, `FootprintReader`) through
//! the real `DataStore` with the default `SimilarityReducer`: shared chunks are split over
//! their references so that the sum over all extents equals what the layout stores, a
//! release hands the whole chunk to the remaining reference, compression and deltas show in
//! their stages, and SLC-resident extents count as not yet reduced.

mod common;

use std::sync::Arc;

use bytes::Bytes;
use cairn_erasure::{
    DataStore, ExtentId, Footprint, LayoutError, ReductionConfig, SimilarityReducer,
};
use common::*;
use rand::{Rng, RngCore};

async fn store_with(dir: &std::path::Path) -> (Arc<DataStore>, Arc<cairn_metadata::Db>) {
    let cfg = test_config(dir);
    let db = open_db(dir);
    let r = Arc::new(SimilarityReducer::open(ReductionConfig::default(), &db).unwrap());
    let store = DataStore::open_with_reducer(cfg, db.clone(), Some(r))
        .await
        .unwrap();
    (store, db)
}

fn text(r: &mut impl RngCore, len: usize) -> Bytes {
    let mut s = String::with_capacity(len + 200);
    let mut t = 1_700_000_000u64;
    while s.len() < len {
        t += r.random_range(0..3);
        s.push_str(&format!(
            "{t} host-{:02} GET /bucket/key-{} took {}ms status={}\n",
            r.random_range(0..16),
            r.random_range(0..1000),
            r.random_range(0..500),
            [200, 200, 404][r.random_range(0..3)]
        ));
    }
    s.truncate(len);
    Bytes::from(s)
}

/// |a - b| within a relative `tol` of b (and an absolute 1e-6 byte).
fn close(a: f64, b: f64, tol: f64) -> bool {
    (a - b).abs() <= tol * b.abs() + 1e-6
}

fn sum(fs: &[Footprint]) -> Footprint {
    fs.iter().fold(Footprint::default(), |acc, f| acc + *f)
}

/// The footprints of all `ids` add up to what the layout holds live.
fn assert_sums_to_live(store: &DataStore, ids: &[ExtentId]) -> Vec<Footprint> {
    let fs = store.footprint_reader().extents(ids).unwrap();
    let total = sum(&fs);
    let c = store.counters();
    assert!(
        close(total.after_compression, c.live_bytes as f64, 1e-9),
        "stored {} vs live {}",
        total.after_compression,
        c.live_bytes
    );
    // physical_live_bytes is rounded down to whole bytes.
    assert!(
        (total.physical_with_parity - c.physical_live_bytes as f64).abs() < 2.0,
        "physical {} vs {}",
        total.physical_with_parity,
        c.physical_live_bytes
    );
    fs
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identical_extents_split_the_chunks_and_a_release_hands_them_over() {
    let dir = tempfile::tempdir().unwrap();
    let (store, db) = store_with(dir.path()).await;
    let data = random_bytes(&mut rng(11), 1 << 20);
    let len = data.len() as f64;
    let a = put(&store, &db, data.clone()).await;
    store.flush().await.unwrap();
    let one = store.extent_footprint(a).unwrap();
    assert_eq!(one.logical, len);
    assert_eq!(one.slc, 0.0);
    assert_eq!(one.after_dedup, len, "random data: every chunk distinct");
    assert_eq!(one.after_similarity, len);
    assert!(one.after_compression >= len, "random data does not shrink");
    assert!(close(
        one.physical_with_parity,
        one.after_compression * 1.5,
        1e-9
    ));

    let b = put(&store, &db, data.clone()).await;
    store.flush().await.unwrap();
    let fs = assert_sums_to_live(&store, &[a, b]);
    for f in &fs {
        assert_eq!(f.logical, len);
        assert!(close(f.after_dedup, len / 2.0, 1e-9), "{f:?}");
        assert!(close(
            f.after_compression,
            one.after_compression / 2.0,
            1e-9
        ));
        assert!(close(
            f.physical_with_parity,
            one.physical_with_parity / 2.0,
            1e-9
        ));
    }
    let total = sum(&fs);
    assert!(close(total.after_dedup, len, 1e-9), "one copy: {total:?}");
    assert!(close(total.after_compression, one.after_compression, 1e-9));

    release(&store, &db, b);
    let s = store.clone();
    assert!(wait_until(20, move || s.counters().extents_freed == 1).await);
    let fs = assert_sums_to_live(&store, &[a]);
    assert!(close(fs[0].after_dedup, len, 1e-9), "{:?}", fs[0]);
    assert!(close(fs[0].after_compression, one.after_compression, 1e-9));
    assert!(matches!(
        store.extent_footprint(b),
        Err(LayoutError::NotFound(_))
    ));
    store.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compression_and_deltas_show_in_their_stages() {
    let dir = tempfile::tempdir().unwrap();
    let (store, db) = store_with(dir.path()).await;
    let mut g = rng(12);
    let base = text(&mut g, 1 << 20);
    let len = base.len() as f64;
    let a = put(&store, &db, base.clone()).await;
    store.flush().await.unwrap();
    let f = assert_sums_to_live(&store, &[a])[0];
    assert_eq!(f.after_dedup, len);
    assert_eq!(f.after_similarity, len);
    assert!(
        f.after_compression < len / 2.0,
        "text compresses: {f:?} of {len}"
    );

    // A version with scattered edits: stored as deltas against the first one's chunks.
    let mut v = base.to_vec();
    let mut i = 100;
    while i < v.len() {
        v[i] = b'#';
        i += g.random_range(3000..9000);
    }
    let b = put(&store, &db, Bytes::from(v)).await;
    store.flush().await.unwrap();
    let fs = assert_sums_to_live(&store, &[a, b]);
    // The delta extent carries its deltas plus part of their bases; the base extent gives
    // some of its chunks' cost away, and the two add up to what is stored.
    assert!(fs[1].after_similarity < fs[1].after_dedup, "{:?}", fs[1]);
    assert!(fs[0].after_compression < f.after_compression, "{:?}", fs[0]);
    let total = sum(&fs);
    assert!(total.after_similarity < total.after_dedup);
    assert!(total.after_dedup <= 2.0 * len);
    store.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn extents_in_the_slc_buffer_count_as_not_reduced() {
    let dir = tempfile::tempdir().unwrap();
    let (store, db) = store_with(dir.path()).await;
    let data = text(&mut rng(13), 300 << 10);
    let len = data.len() as f64;
    let a = put(&store, &db, data).await;
    let f = store.extent_footprint(a).unwrap();
    assert_eq!(
        f,
        Footprint {
            logical: len,
            slc: len,
            after_dedup: len,
            after_similarity: len,
            after_compression: len,
            physical_with_parity: 0.0,
        }
    );
    store.flush().await.unwrap();
    let f = store.extent_footprint(a).unwrap();
    assert_eq!(f.slc, 0.0);
    assert!(f.after_compression < len);
    assert!(f.physical_with_parity > 0.0);
    assert!(matches!(
        store.extent_footprint(ExtentId(u64::MAX)),
        Err(LayoutError::NotFound(_))
    ));
    store.shutdown().await;
}
