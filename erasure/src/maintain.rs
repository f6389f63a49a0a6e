//! Repair, scrub and rebuild. All run under the maintenance lock, so they
//! never race migration or reclaim; shard files are replaced atomically
//! (tmp + fsync + rename), never modified in place.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use cairn_metadata::WriteBatch;

use crate::device::{self, DeviceState, Identity};
use crate::error::{LayoutError, Result};
use crate::qlc::StripeRows;
use crate::records::{self, StripeRecord};
use crate::shard::{self, BlockId};
use crate::stats::{RebuildReport, RebuildTracker, ScrubReport};
use crate::store::DataStore;

impl DataStore {
    /// Repairs every queued shard (queued by degraded reads).
    pub(crate) async fn repair_queued(&self) -> Result<()> {
        loop {
            let next = self.repair_queue.lock().pop_first();
            let Some((stripe, shard)) = next else {
                return Ok(());
            };
            let _g = self.maint.lock().await;
            if let Err(e) = self.repair_shard(stripe, shard).await {
                tracing::warn!(stripe, shard, error = %e, "repair failed");
            }
        }
    }

    /// Rewrites one shard file from the others if any of its blocks is bad.
    /// Returns the number of blocks repaired. Caller holds the maintenance lock.
    async fn repair_shard(&self, stripe: u64, shard: u8) -> Result<u64> {
        let Some(rec) = self.stripe_record(stripe)? else {
            return Ok(0);
        };
        let dev = rec.devices[shard as usize];
        if !self.device_online(dev) {
            // A missing device is restored by rebuild, not by repair.
            return Ok(0);
        }
        let (mut rows, _) = self.load_stripe(stripe, &rec).await;
        let bad = rows.iter().filter(|r| r[shard as usize].is_none()).count() as u64;
        if bad == 0 {
            return Ok(0);
        }
        self.reconstruct_rows(stripe, &rec, &mut rows)?;
        let file = self.shard_file(stripe, &rec, shard, &rows)?;
        self.replace_shard_file(dev, stripe, file).await?;
        self.counters.repairs.fetch_add(1, Ordering::Relaxed);
        tracing::info!(stripe, shard, blocks = bad, "repaired shard");
        Ok(bad)
    }

    fn reconstruct_rows(
        &self,
        stripe: u64,
        rec: &StripeRecord,
        rows: &mut StripeRows,
    ) -> Result<()> {
        let codec = self.codecs.get(rec.k as usize, rec.m as usize)?;
        for r in rows.iter_mut() {
            if r.iter().any(|s| s.is_none()) {
                codec.reconstruct(r, stripe)?;
            }
        }
        Ok(())
    }

    /// Reads every shard block of every stripe, verifies its crc32c and
    /// identity, and rewrites shards with bad blocks from parity.
    pub async fn scrub(&self) -> Result<ScrubReport> {
        let _g = self.maint.lock().await;
        let mut report = ScrubReport::default();
        let stripes = self.all_stripes()?;
        for (id, rec) in stripes {
            report.stripes += 1;
            let (mut rows, online) = self.load_stripe(id, &rec).await;
            let width = rec.width();
            let mut bad_per_shard = vec![0u64; width];
            for r in &rows {
                for s in 0..width {
                    if !online[s] {
                        report.missing_blocks += 1;
                        continue;
                    }
                    report.blocks_checked += 1;
                    if r[s].is_none() {
                        report.bad_blocks += 1;
                        bad_per_shard[s] += 1;
                    }
                }
            }
            if bad_per_shard.iter().all(|&b| b == 0) {
                continue;
            }
            let codec = self.codecs.get(rec.k as usize, rec.m as usize)?;
            let mut ok = true;
            for r in rows.iter_mut() {
                if r.iter().any(|s| s.is_none()) && codec.reconstruct(r, id).is_err() {
                    report.unrecoverable_rows += 1;
                    ok = false;
                }
            }
            if !ok {
                tracing::error!(stripe = id, "scrub found an unrecoverable stripe");
                continue;
            }
            for (s, &bad) in bad_per_shard.iter().enumerate() {
                if bad == 0 {
                    continue;
                }
                let file = self.shard_file(id, &rec, s as u8, &rows)?;
                self.replace_shard_file(rec.devices[s], id, file).await?;
                self.counters.repairs.fetch_add(1, Ordering::Relaxed);
                report.repaired_blocks += bad;
                tracing::info!(stripe = id, shard = s, blocks = bad, "scrub repaired shard");
            }
        }
        Ok(report)
    }

    pub(crate) fn all_stripes(&self) -> Result<Vec<(u64, StripeRecord)>> {
        let mut out = Vec::new();
        for item in self.db.scan_prefix(records::STRIPE_PREFIX) {
            let (k, v) = item?;
            if let Some(id) = records::id_from_key(records::STRIPE_PREFIX, &k) {
                out.push((id, StripeRecord::decode(&v)?));
            }
        }
        Ok(out)
    }

    /// Rebuilds QLC device `device` (e.g. `qlc3`) onto its directory, which
    /// must be empty (a replacement) or hold that same device: every shard it
    /// should hold is reconstructed from the survivors, written atomically,
    /// and read back and verified at the end. Progress shows in `status()`.
    pub async fn rebuild(&self, device: &str) -> Result<RebuildReport> {
        let idx = self
            .qlc
            .iter()
            .position(|q| q.slot.id == device)
            .ok_or_else(|| LayoutError::NotFound(format!("QLC device {device}")))?;
        let dev = idx as u16;
        let _g = self.maint.lock().await;
        let q = &self.qlc[idx];
        let known = self.db.get(&records::dev_key(device))?;
        match device::read_identity(&q.slot.path)? {
            None => {
                let ident = Identity::new(device, q.slot.role);
                device::format_device(&q.slot.path, &ident)?;
                let mut b = WriteBatch::new();
                b.put(records::dev_key(device), ident.uuid.as_bytes());
                self.db.write(b)?;
                tracing::info!(device, uuid = %ident.uuid, "formatted replacement device");
            }
            Some(ident) => {
                if known.as_deref() != Some(ident.uuid.as_bytes()) {
                    return Err(LayoutError::Device {
                        device: device.to_string(),
                        reason:
                            "directory holds another device's identity; give an empty directory"
                                .into(),
                    });
                }
            }
        }
        *q.state.lock() = DeviceState::Rebuilding;
        let tracker = Arc::new(RebuildTracker {
            device: device.to_string(),
            started: Instant::now(),
            done: AtomicU64::new(0),
            total: AtomicU64::new(0),
            finished: AtomicBool::new(false),
        });
        *self.rebuild.lock() = Some(tracker.clone());
        let result = self.rebuild_inner(dev, &tracker).await;
        *q.state.lock() = DeviceState::Online;
        tracker.finished.store(true, Ordering::Relaxed);
        let mut report = result?;
        report.device = device.to_string();
        tracing::info!(
            device,
            shards = report.shards,
            bytes = report.bytes,
            verified = report.verified_blocks,
            failed = report.failed_stripes,
            "rebuild finished"
        );
        Ok(report)
    }

    async fn rebuild_inner(&self, dev: u16, tracker: &RebuildTracker) -> Result<RebuildReport> {
        let mut todo = Vec::new();
        let mut total = 0u64;
        for (id, rec) in self.all_stripes()? {
            if let Some(s) = rec.devices.iter().position(|&d| d == dev) {
                total += rec.rows as u64 * rec.block_bytes as u64;
                todo.push((id, rec, s as u8));
            }
        }
        tracker.total.store(total, Ordering::Relaxed);
        let mut report = RebuildReport::default();
        let mut rebuilt = Vec::new();
        for (id, rec, s) in todo {
            let (mut rows, _) = self.load_stripe(id, &rec).await;
            if let Err(e) = self.reconstruct_rows(id, &rec, &mut rows) {
                tracing::error!(stripe = id, error = %e, "stripe cannot be rebuilt");
                report.failed_stripes += 1;
                continue;
            }
            let file = self.shard_file(id, &rec, s, &rows)?;
            let len = file.len() as u64;
            self.replace_shard_file(dev, id, file).await?;
            report.shards += 1;
            report.bytes += len;
            tracker.done.fetch_add(len, Ordering::Relaxed);
            rebuilt.push((id, rec, s));
        }
        // Verification: read every rebuilt shard back and check every block.
        for (id, rec, s) in rebuilt {
            let path = self.shard_path(dev, id);
            let data =
                std::fs::read(&path).map_err(|e| LayoutError::io(path.display().to_string(), e))?;
            let bb = rec.block_bytes as usize;
            for row in 0..rec.rows as usize {
                let want = BlockId {
                    stripe: id,
                    shard: s,
                    k: rec.k,
                    m: rec.m,
                    row: row as u32,
                    block_bytes: rec.block_bytes,
                };
                let block = data.get(row * bb..(row + 1) * bb).ok_or_else(|| {
                    LayoutError::Corruption(format!("rebuilt shard {} is short", path.display()))
                })?;
                shard::verify_block(block, want).map_err(|e| {
                    LayoutError::Corruption(format!(
                        "rebuilt shard {} fails verification: {e}",
                        path.display()
                    ))
                })?;
                report.verified_blocks += 1;
            }
        }
        Ok(report)
    }
}
