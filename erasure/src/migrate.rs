//! The migration worker: drains sealed SLC segments into stripes.
//!
//! Order (crash safety): read the segment's records → reduce each committed
//! extent into chunks → write stripes and fsync them → commit chunk, stripe
//! and extent records in one metadata batch → only then delete the SLC
//! segment. A crash before the commit leaves the old state (the shard files
//! are orphans, removed at start-up); after it, the new state (the segment
//! is migrated again as a no-op and freed).

use std::collections::HashMap;
use std::ops::Bound;
use std::sync::atomic::Ordering;
use std::time::Duration;

use cairn_metadata::WriteBatch;

use crate::error::{LayoutError, Result};
use crate::records::{self, ChunkRecord, ExtentLoc, ExtentRecord};
use crate::reduce::ReducedChunk;
use crate::sink::StripeSink;
use crate::store::DataStore;

/// Most SLC bytes migrated in one metadata batch.
const GROUP_BYTES: u64 = 64 << 20;
/// Most chunk records the start-up warm-up of the reducer reads.
const WARM_MAX_SCANNED: usize = 1 << 20;

impl DataStore {
    /// One migration pass. With `upto = Some(seq)`, every committed extent in
    /// segments up to `seq` is moved (flush; later segments are left alone so
    /// that a flush under continuous load terminates); otherwise only while
    /// the buffer is above its high-water mark or holds data older than
    /// `migrate_after`.
    pub(crate) async fn migrate(&self, upto: Option<u64>) -> Result<()> {
        let all = upto.is_some();
        let limit = upto.unwrap_or(u64::MAX);
        loop {
            if self.is_shut_down() && !all {
                return Ok(());
            }
            let mut segs = self.slc.segments();
            segs.retain(|seq, _| *seq <= limit);
            let above = self.slc.above_high_water();
            let aged = |s: &crate::slc::SegMeta| s.created.elapsed() >= self.cfg.migrate_after;
            let sealed_due = segs
                .values()
                .any(|s| s.sealed && s.pins == 0 && (all || above || aged(s)));
            if !sealed_due && !all {
                // Seal the active segment when it is old enough or is all that holds the pressure.
                let active = segs.values().find(|s| !s.sealed);
                if let Some(a) = active {
                    if a.bytes > crate::slc::SEG_HEADER as u64
                        && (aged(a) || (above && !segs.values().any(|s| s.sealed)))
                    {
                        self.slc.seal_active().await?;
                        continue;
                    }
                }
                return Ok(());
            }
            let mut group = Vec::new();
            let mut bytes = 0;
            let mut waiting = Vec::new();
            for (seq, s) in &segs {
                if !s.sealed {
                    continue;
                }
                if !(all || above || aged(s)) {
                    continue;
                }
                if s.pins > 0 {
                    waiting.push(*seq);
                    continue;
                }
                if !group.is_empty() && bytes + s.bytes > GROUP_BYTES {
                    break;
                }
                bytes += s.bytes;
                group.push(*seq);
            }
            if group.is_empty() {
                if all {
                    // Only pinned segments are left: give their writers time to commit.
                    let mut progressed = false;
                    for seq in waiting {
                        progressed |= self.slc.wait_unpinned(seq, Duration::from_secs(10)).await;
                    }
                    if progressed {
                        continue;
                    }
                    tracing::warn!("flush: segments still pinned by uncommitted appends were left in the buffer");
                }
                return Ok(());
            }
            {
                let _g = self.maint.lock().await;
                // Another pass (flush or the worker) may have migrated some meanwhile.
                let current = self.slc.segments();
                group.retain(|seq| {
                    current
                        .get(seq)
                        .map(|m| m.sealed && m.pins == 0)
                        .unwrap_or(false)
                });
                if !group.is_empty() {
                    self.migrate_group(&group).await?;
                }
            }
            if !all && !self.slc.above_high_water() {
                // Keep looping only for aged segments.
                let more = self
                    .slc
                    .segments()
                    .values()
                    .any(|s| s.sealed && s.pins == 0 && aged(s));
                if !more {
                    return Ok(());
                }
            }
        }
    }

    async fn migrate_group(&self, seqs: &[u64]) -> Result<()> {
        self.warmed.get_or_init(|| self.warm_reducer()).await;
        let mut sink = StripeSink::new(self);
        match self.migrate_into(seqs, &mut sink).await {
            Ok(()) => {
                self.reducer.on_committed();
                Ok(())
            }
            Err(e) => {
                self.reducer.on_aborted();
                sink.abort();
                Err(e)
            }
        }
    }

    /// Offers the reducer the newest stored chunks that are not deltas, up
    /// to the logical bytes it asks for, oldest first, so that its
    /// in-memory similarity index survives a restart. Chunk ids only grow,
    /// so the newest chunks are found by scanning id windows back from the
    /// next id, each twice the last, until enough bytes turned up or
    /// [`WARM_MAX_SCANNED`] records were read (a store of mostly deltas
    /// does not scan its whole index). Runs under the maintenance lock (no
    /// GC frees a chunk meanwhile); best effort: a chunk that does not read
    /// or decode is skipped.
    async fn warm_reducer(&self) {
        let want = self.reducer.warm_bytes();
        if want == 0 {
            return;
        }
        // Newest first while scanning; offered oldest first.
        let mut picked: Vec<(u64, ChunkRecord)> = Vec::new();
        let (mut bytes, mut scanned) = (0usize, 0usize);
        let mut hi = self.next_chunk.load(Ordering::SeqCst);
        let mut window = (want / (32 << 10)).max(64) as u64;
        'windows: while hi > 0 && bytes < want && scanned < WARM_MAX_SCANNED {
            let lo = hi.saturating_sub(window);
            let (lo_key, hi_key) = (records::chunk_key(lo), records::chunk_key(hi));
            let mut found = Vec::new();
            for item in self
                .db
                .range(Bound::Included(&lo_key), Bound::Excluded(&hi_key))
            {
                let Ok((k, v)) = item else {
                    break 'windows;
                };
                scanned += 1;
                let Some(id) = records::id_from_key(records::CHUNK_PREFIX, &k) else {
                    continue;
                };
                match ChunkRecord::decode(&v) {
                    Ok(rec) if rec.base.is_none() => found.push((id, rec)),
                    _ => {}
                }
            }
            for (id, rec) in found.into_iter().rev() {
                if bytes >= want {
                    break;
                }
                bytes += rec.logical_len as usize;
                picked.push((id, rec));
            }
            (hi, window) = (lo, window.saturating_mul(2));
        }
        picked.reverse();
        let (mut offered, started) = (0usize, std::time::Instant::now());
        for (id, rec) in picked {
            let Ok((stored, logical)) = self.read_base(id, &rec).await else {
                continue;
            };
            self.reducer.warm(id, rec.encoding, &stored, logical);
            offered += 1;
        }
        if offered > 0 {
            tracing::info!(
                chunks = offered,
                ms = started.elapsed().as_millis() as u64,
                "reducer warmed from stored chunks"
            );
        }
    }

    /// Adds one reference to `chunk` (from this batch's records, else the store's).
    fn add_chunk_ref(&self, chunks: &mut HashMap<u64, ChunkRecord>, chunk: u64) -> Result<()> {
        let mut c = match chunks.remove(&chunk) {
            Some(c) => c,
            None => self.chunk_record(chunk)?.ok_or_else(|| {
                LayoutError::NotFound(format!("reducer referenced chunk {chunk}"))
            })?,
        };
        c.refcount = c.refcount.saturating_add(1);
        chunks.insert(chunk, c);
        Ok(())
    }

    async fn migrate_into(&self, seqs: &[u64], sink: &mut StripeSink<'_>) -> Result<()> {
        let mut batch = WriteBatch::new();
        let mut chunks: HashMap<u64, ChunkRecord> = HashMap::new();
        let (mut extents, mut logical, mut orphans, mut freed) = (0u64, 0u64, 0u64, 0u64);
        // Reduction accounting: logical bytes left after dedup, after similarity, stored.
        let (mut after_dedup, mut after_sim, mut stored_bytes) = (0u64, 0u64, 0u64);
        for &seq in seqs {
            let recs = self.slc.scan(seq).await?;
            for r in recs {
                let Some(v) = self.db.get(&records::ext_key(r.id))? else {
                    orphans += 1;
                    continue;
                };
                let ext = ExtentRecord::decode(&v)?;
                if ext.loc != (ExtentLoc::Slc { seq, off: r.off }) {
                    continue;
                }
                if self.db.get(&records::gc_key(r.id))?.is_some() {
                    batch.delete(records::ext_key(r.id));
                    batch.delete(records::gc_key(r.id));
                    freed += 1;
                    continue;
                }
                if r.data.len() as u64 != ext.len || crc32c::crc32c(&r.data) != ext.crc {
                    return Err(LayoutError::Corruption(format!(
                        "SLC record of extent {} does not match its extent record",
                        r.id
                    )));
                }
                let reduced = self.reducer.reduce(&r.data, sink.max_chunk())?;
                let mut list: Vec<(u64, u32)> = Vec::with_capacity(reduced.len());
                let mut total = 0u64;
                for c in reduced {
                    // A reference to an existing chunk (dedup) or to the base of a new delta.
                    let (id, logical_len) = match c {
                        ReducedChunk::New {
                            logical_len,
                            encoding,
                            stored,
                            base,
                        } => {
                            if let Some(b) = base {
                                self.add_chunk_ref(&mut chunks, b)?;
                                after_sim += stored.len() as u64;
                            } else {
                                after_sim += logical_len as u64;
                            }
                            after_dedup += logical_len as u64;
                            stored_bytes += stored.len() as u64;
                            let id = self.next_chunk.fetch_add(1, Ordering::SeqCst);
                            let at = sink.add(id, &stored).await?;
                            self.reducer.on_stored(&mut batch, id, &stored);
                            chunks.insert(
                                id,
                                ChunkRecord {
                                    refcount: 1,
                                    encoding,
                                    logical_len,
                                    stored_len: stored.len() as u32,
                                    crc: crc32c::crc32c(&stored),
                                    stripe: at.stripe,
                                    shard: at.shard,
                                    device: at.device,
                                    row: at.row,
                                    offset: at.offset,
                                    block_bytes: at.block_bytes,
                                    base,
                                },
                            );
                            list.push((id, logical_len));
                            total += logical_len as u64;
                            continue;
                        }
                        ReducedChunk::Existing { chunk, logical_len } => (chunk, logical_len),
                        ReducedChunk::Repeat { index, logical_len } => {
                            let (id, len) = *list.get(index).ok_or_else(|| {
                                LayoutError::Corruption(format!(
                                    "reducer repeated chunk {index} of {}",
                                    list.len()
                                ))
                            })?;
                            if len != logical_len {
                                return Err(LayoutError::Corruption(
                                    "reducer repeated a chunk with another length".into(),
                                ));
                            }
                            (id, logical_len)
                        }
                    };
                    self.add_chunk_ref(&mut chunks, id)?;
                    list.push((id, logical_len));
                    total += logical_len as u64;
                }
                if total != ext.len {
                    return Err(LayoutError::Corruption(format!(
                        "reducer returned {total} logical bytes for an extent of {}",
                        ext.len
                    )));
                }
                extents += 1;
                logical += ext.len;
                let new = ExtentRecord {
                    len: ext.len,
                    crc: ext.crc,
                    loc: ExtentLoc::Chunks(list),
                };
                batch.put(records::ext_key(r.id), new.encode());
            }
        }
        sink.seal().await?;
        sink.sync_all().await?;
        let stripes = std::mem::take(&mut sink.written);
        let mut live = 0;
        for (id, rec) in &stripes {
            batch.put(records::stripe_key(*id), rec.encode());
            live += rec.live_bytes;
        }
        for (id, c) in &chunks {
            batch.put(records::chunk_key(*id), c.encode());
        }
        batch.put(
            records::CTR_CHUNK,
            records::encode_u64(self.next_chunk.load(Ordering::SeqCst)),
        );
        batch.put(
            records::CTR_STRIPE,
            records::encode_u64(self.next_stripe.load(Ordering::SeqCst)),
        );
        if let Err(e) = self.db.write(batch) {
            sink.written = stripes;
            return Err(e.into());
        }
        // Committed: the stripes are now referenced, the SLC copies are not.
        self.counters.live_bytes.fetch_add(live, Ordering::Relaxed);
        self.stripe_count
            .fetch_add(stripes.len() as u64, Ordering::Relaxed);
        self.counters
            .migrated_extents
            .fetch_add(extents, Ordering::Relaxed);
        self.counters
            .migrated_bytes
            .fetch_add(logical, Ordering::Relaxed);
        self.counters
            .orphans_dropped
            .fetch_add(orphans, Ordering::Relaxed);
        let c = &self.counters;
        c.reduce_after_dedup
            .fetch_add(after_dedup, Ordering::Relaxed);
        c.reduce_after_similarity
            .fetch_add(after_sim, Ordering::Relaxed);
        c.reduce_stored.fetch_add(stored_bytes, Ordering::Relaxed);
        self.counters
            .extents_freed
            .fetch_add(freed, Ordering::Relaxed);
        for &seq in seqs {
            self.slc.free(seq)?;
        }
        tracing::debug!(
            segments = seqs.len(),
            extents,
            logical,
            stripes = stripes.len(),
            "migrated"
        );
        Ok(())
    }
}
