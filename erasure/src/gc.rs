//! The GC and reclaim worker.
//!
//! GC: for every `layout/gc/<id>` marker the node committed, drop the
//! extent's chunk references in one batch (chunks reaching zero are deleted
//! and their bytes become dead space in their stripe).
//!
//! Reclaim: stripes whose live fraction fell below the threshold have their
//! live chunks copied into new stripes (written and fsynced first), then one
//! batch points the chunk records at the new copies and deletes the old
//! stripe records; only after that commit are the old shard files deleted.

use std::collections::HashMap;
use std::sync::atomic::Ordering;

use bytes::Bytes;
use cairn_metadata::WriteBatch;

use crate::error::Result;
use crate::records::{self, ChunkRecord, ExtentLoc, ExtentRecord, StripeRecord};
use crate::sink::StripeSink;
use crate::store::DataStore;

/// Most GC markers handled in one batch.
const GC_BATCH: usize = 4096;
/// Most live bytes one reclaim pass moves.
const RECLAIM_BYTES: u64 = 64 << 20;

impl DataStore {
    /// One GC pass followed by one reclaim pass.
    pub(crate) async fn gc_and_reclaim(&self) -> Result<()> {
        while self.gc_once().await? == GC_BATCH {}
        self.reclaim_once().await?;
        Ok(())
    }

    /// Frees up to [`GC_BATCH`] released extents; returns how many markers it handled.
    pub(crate) async fn gc_once(&self) -> Result<usize> {
        let _g = self.maint.lock().await;
        let mut ids = Vec::new();
        for item in self.db.scan_prefix(records::GC_PREFIX) {
            let (k, _) = item?;
            if let Some(id) = records::id_from_key(records::GC_PREFIX, &k) {
                ids.push(id);
            }
            if ids.len() >= GC_BATCH {
                break;
            }
        }
        if ids.is_empty() {
            return Ok(0);
        }
        let mut batch = WriteBatch::new();
        let mut chunks: HashMap<u64, Option<ChunkRecord>> = HashMap::new();
        let mut stripes: HashMap<u64, StripeRecord> = HashMap::new();
        let mut dead = 0u64;
        let mut freed = 0u64;
        for &id in &ids {
            batch.delete(records::gc_key(id));
            let Some(v) = self.db.get(&records::ext_key(id))? else {
                continue;
            };
            batch.delete(records::ext_key(id));
            freed += 1;
            let ext = ExtentRecord::decode(&v)?;
            // An extent still in the SLC buffer needs nothing more: migration skips
            // records without an extent record and frees the segment.
            let ExtentLoc::Chunks(list) = ext.loc else {
                continue;
            };
            // A freed delta drops its reference on its base (one level: a base is never a delta).
            let mut work: Vec<u64> = list.into_iter().map(|(cid, _)| cid).collect();
            while let Some(cid) = work.pop() {
                let cur = match chunks.get(&cid) {
                    Some(c) => c.clone(),
                    None => self.chunk_record(cid)?,
                };
                let Some(mut c) = cur else {
                    tracing::warn!(
                        chunk = cid,
                        extent = id,
                        "released extent names a missing chunk"
                    );
                    continue;
                };
                c.refcount = c.refcount.saturating_sub(1);
                if c.refcount == 0 {
                    let s = match stripes.remove(&c.stripe) {
                        Some(s) => Some(s),
                        None => self.stripe_record(c.stripe)?,
                    };
                    if let Some(mut s) = s {
                        s.live_bytes = s.live_bytes.saturating_sub(c.stored_len as u64);
                        stripes.insert(c.stripe, s);
                    }
                    dead += c.stored_len as u64;
                    self.reducer.on_freed(&mut batch, cid);
                    chunks.insert(cid, None);
                    if let Some(b) = c.base {
                        work.push(b);
                    }
                } else {
                    chunks.insert(cid, Some(c));
                }
            }
        }
        for (cid, c) in &chunks {
            match c {
                Some(c) => batch.put(records::chunk_key(*cid), c.encode()),
                None => batch.delete(records::chunk_key(*cid)),
            }
        }
        for (sid, s) in &stripes {
            batch.put(records::stripe_key(*sid), s.encode());
        }
        self.db.write(batch)?;
        let live = &self.counters.live_bytes;
        let _ = live.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| {
            Some(v.saturating_sub(dead))
        });
        self.counters.dead_bytes.fetch_add(dead, Ordering::Relaxed);
        self.counters
            .extents_freed
            .fetch_add(freed, Ordering::Relaxed);
        Ok(ids.len())
    }

    /// Rewrites stripes whose live fraction is below the threshold; returns how many it reclaimed.
    pub(crate) async fn reclaim_once(&self) -> Result<usize> {
        let _g = self.maint.lock().await;
        let mut victims = Vec::new();
        let mut moving = 0u64;
        for item in self.db.scan_prefix(records::STRIPE_PREFIX) {
            let (k, v) = item?;
            let Some(id) = records::id_from_key(records::STRIPE_PREFIX, &k) else {
                continue;
            };
            let rec = StripeRecord::decode(&v)?;
            if rec.data_bytes == 0
                || (rec.live_bytes as f64) >= self.cfg.reclaim_live_fraction * rec.data_bytes as f64
            {
                continue;
            }
            if !victims.is_empty() && moving + rec.live_bytes > RECLAIM_BYTES {
                break;
            }
            moving += rec.live_bytes;
            victims.push((id, rec));
        }
        if victims.is_empty() {
            return Ok(0);
        }
        let mut sink = StripeSink::new(self);
        match self.reclaim_into(&victims, &mut sink).await {
            Ok(()) => {}
            Err(e) => {
                sink.abort();
                return Err(e);
            }
        }
        for (id, rec) in &victims {
            self.delete_stripe_files(*id, rec);
        }
        self.counters
            .stripes_reclaimed
            .fetch_add(victims.len() as u64, Ordering::Relaxed);
        Ok(victims.len())
    }

    async fn reclaim_into(
        &self,
        victims: &[(u64, StripeRecord)],
        sink: &mut StripeSink<'_>,
    ) -> Result<()> {
        let mut batch = WriteBatch::new();
        let mut dead_removed = 0u64;
        let mut moved = Vec::new();
        for (sid, rec) in victims {
            for &cid in &rec.chunks {
                let Some(c) = self.chunk_record(cid)? else {
                    continue;
                };
                if c.stripe != *sid {
                    continue;
                }
                let stored = self.read_stored(cid, &c).await?;
                let at = sink.add(cid, &stored).await?;
                let mut n = c.clone();
                n.stripe = at.stripe;
                n.shard = at.shard;
                n.device = at.device;
                n.row = at.row;
                n.offset = at.offset;
                n.block_bytes = at.block_bytes;
                moved.push((cid, n));
            }
            batch.delete(records::stripe_key(*sid));
            dead_removed += rec.data_bytes.saturating_sub(rec.live_bytes);
        }
        sink.seal().await?;
        sink.sync_all().await?;
        let stripes = std::mem::take(&mut sink.written);
        for (id, rec) in &stripes {
            batch.put(records::stripe_key(*id), rec.encode());
        }
        for (cid, c) in &moved {
            batch.put(records::chunk_key(*cid), c.encode());
        }
        batch.put(
            records::CTR_STRIPE,
            records::encode_u64(self.next_stripe.load(Ordering::SeqCst)),
        );
        if let Err(e) = self.db.write(batch) {
            sink.written = stripes;
            return Err(e.into());
        }
        let _ = self
            .counters
            .dead_bytes
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| {
                Some(v.saturating_sub(dead_removed))
            });
        let _ = self
            .stripe_count
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| {
                Some((v + stripes.len() as u64).saturating_sub(victims.len() as u64))
            });
        tracing::debug!(
            victims = victims.len(),
            moved = moved.len(),
            new = stripes.len(),
            "reclaimed stripes"
        );
        Ok(())
    }

    /// The verified stored bytes of a chunk (fast path, else degraded).
    pub(crate) async fn read_stored(&self, id: u64, c: &ChunkRecord) -> Result<Bytes> {
        if let Some(f) = self.submit_chunk_read(c) {
            if let Ok(b) = f.await {
                if b.len() == c.stored_len as usize && crc32c::crc32c(&b) == c.crc {
                    return Ok(b);
                }
            }
        }
        self.read_chunk_slow(id, c.clone()).await
    }
}
