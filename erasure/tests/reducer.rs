//! The reduction seam: a reducer that shares identical chunks exercises
//! refcounted chunk records (`ReducedChunk::Existing`) end to end.

mod common;

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use cairn_erasure::{DataStore, FixedChunker, LayoutError, ReducedChunk, Reducer};
use cairn_metadata::WriteBatch;
use common::*;
use parking_lot::Mutex;

/// Test reducer: fixed chunks, and a chunk whose bytes were stored before is
/// referenced instead of stored again (in-memory index fed by the hooks).
struct Dedup {
    inner: FixedChunker,
    by_bytes: Mutex<HashMap<Bytes, u64>>,
    by_id: Mutex<HashMap<u64, Bytes>>,
}

impl Reducer for Dedup {
    fn reduce(
        &self,
        extent: &Bytes,
        max_stored: usize,
    ) -> cairn_erasure::error::Result<Vec<ReducedChunk>> {
        let chunks = self.inner.reduce(extent, max_stored)?;
        let idx = self.by_bytes.lock();
        Ok(chunks
            .into_iter()
            .map(|c| match c {
                ReducedChunk::New {
                    logical_len,
                    ref stored,
                    ..
                } => match idx.get(stored) {
                    Some(&chunk) => ReducedChunk::Existing { chunk, logical_len },
                    None => c,
                },
                other => other,
            })
            .collect())
    }
    fn decode(
        &self,
        encoding: u8,
        stored: Bytes,
        logical_len: u32,
    ) -> cairn_erasure::error::Result<Bytes> {
        self.inner.decode(encoding, stored, logical_len)
    }
    fn on_stored(&self, _batch: &mut WriteBatch, chunk: u64, stored: &Bytes) {
        self.by_bytes.lock().insert(stored.clone(), chunk);
        self.by_id.lock().insert(chunk, stored.clone());
    }
    fn on_freed(&self, _batch: &mut WriteBatch, chunk: u64) {
        if let Some(b) = self.by_id.lock().remove(&chunk) {
            self.by_bytes.lock().remove(&b);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shared_chunks_are_refcounted_and_freed_with_their_last_extent() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = test_config(dir.path());
    let db = open_db(dir.path());
    let reducer = Arc::new(Dedup {
        inner: FixedChunker {
            chunk_bytes: 64 << 10,
        },
        by_bytes: Mutex::new(HashMap::new()),
        by_id: Mutex::new(HashMap::new()),
    });
    let store = DataStore::open_with_reducer(cfg.clone(), db.clone(), Some(reducer.clone()))
        .await
        .unwrap();
    let mut r = rng(7);
    let shared = random_bytes(&mut r, 256 << 10);
    let other = random_bytes(&mut r, 100 << 10);
    let a = put(&store, &db, shared.clone()).await;
    let b = put(&store, &db, shared.clone()).await;
    let c = put(&store, &db, other.clone()).await;
    store.flush().await.unwrap();
    // A and B share all four 64 KiB chunks.
    assert_eq!(store.counters().live_bytes, (256 << 10) + (100 << 10));
    let all = vec![(a, shared.clone()), (b, shared.clone()), (c, other.clone())];
    verify_all(&store, &all, 8).await;

    release(&store, &db, a);
    let s = store.clone();
    assert!(wait_until(20, move || s.counters().extents_freed == 1).await);
    assert!(matches!(
        store.read(a, 0, 1).await,
        Err(LayoutError::NotFound(_))
    ));
    verify_all(&store, &all[1..], 9).await;
    assert_eq!(
        store.counters().live_bytes,
        (256 << 10) + (100 << 10),
        "B still holds the shared chunks"
    );

    release(&store, &db, b);
    let s = store.clone();
    assert!(wait_until(20, move || s.counters().extents_freed == 2).await);
    assert_eq!(
        store.counters().live_bytes,
        100 << 10,
        "last reference gone: shared chunks freed"
    );
    assert!(
        reducer.by_id.lock().len() <= 2,
        "freed chunks left the reducer's index"
    );
    verify_all(&store, &all[2..], 10).await;
    store.shutdown().await;
}
