//! QLC stripe I/O: writing shard files, reading chunks (fast path and
//! degraded), loading and reconstructing whole stripes.

use std::fs;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};

use crate::device::{self, DeviceState};
use crate::error::{LayoutError, Result};
use crate::records::{self, ChunkRecord, StripeRecord};
use crate::shard::{self, BlockId, BLOCK_HEADER};
use crate::store::DataStore;

/// Reconstructed rows kept for degraded reads of neighbouring chunks.
const ROW_CACHE_ROWS: usize = 4;

/// Per row, per shard: the verified payload, or `None` when missing/bad.
pub(crate) type StripeRows = Vec<Vec<Option<Vec<u8>>>>;

impl DataStore {
    pub(crate) fn shard_path(&self, dev: u16, stripe: u64) -> PathBuf {
        self.qlc[dev as usize]
            .slot
            .path
            .join(shard::shard_file_name(stripe))
    }

    pub(crate) fn device_online(&self, dev: u16) -> bool {
        self.qlc
            .get(dev as usize)
            .map(|q| *q.state.lock() == DeviceState::Online)
            .unwrap_or(false)
    }

    /// Marks a device missing when its identity file is gone (e.g. the directory was removed).
    pub(crate) fn check_device(&self, dev: u16) {
        let Some(q) = self.qlc.get(dev as usize) else {
            return;
        };
        if matches!(device::read_identity(&q.slot.path), Ok(None)) {
            let mut st = q.state.lock();
            if *st == DeviceState::Online {
                tracing::warn!(device = %q.slot.id, "device identity vanished; marking it missing");
                *st = DeviceState::Missing;
            }
        }
    }

    /// Picks the devices of a new stripe: `k + m` distinct devices, online
    /// ones first, rotating the start so that data and parity spread evenly.
    /// With some devices missing, their shards are placed on them anyway and
    /// left unwritten (the stripe is born degraded and `rebuild` fills them
    /// in), as long as at least `k + 1` shards can be written; otherwise
    /// migration waits.
    pub(crate) fn place_stripe(&self, stripe: u64, k: usize, width: usize) -> Result<Vec<u16>> {
        let n = self.qlc.len();
        let start = (stripe % n as u64) as usize;
        let order: Vec<u16> = (0..n).map(|i| ((start + i) % n) as u16).collect();
        let mut devs: Vec<u16> = order
            .iter()
            .copied()
            .filter(|&d| self.device_online(d))
            .take(width)
            .collect();
        let online = devs.len();
        if online < (k + 1).min(width) {
            return Err(LayoutError::Device {
                device: "qlc".into(),
                reason: format!(
                    "only {online} QLC devices online; a stripe needs at least {} writable shards",
                    k + 1
                ),
            });
        }
        for d in order {
            if devs.len() == width {
                break;
            }
            if !devs.contains(&d) {
                devs.push(d);
            }
        }
        Ok(devs)
    }

    /// Starts writing the shard files of a stripe: one append per device, all
    /// devices in parallel, submitted before this returns. The returned
    /// future completes once every shard is written and fdatasynced; it does
    /// not borrow the store, so the caller can pack the next stripe meanwhile.
    /// The new directory entries become durable with
    /// [`DataStore::sync_qlc_dirs`], run once before committing the stripes.
    pub(crate) fn submit_stripe(
        &self,
        stripe: u64,
        devices: &[u16],
        files: Vec<Bytes>,
    ) -> Result<impl std::future::Future<Output = Result<()>> + Send + 'static> {
        let mut pending = Vec::with_capacity(files.len());
        for (dev, data) in devices.iter().zip(files) {
            if !self.device_online(*dev) {
                // Placed on a missing device: left for rebuild.
                continue;
            }
            let path = self.shard_path(*dev, stripe);
            let f = fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(true)
                .open(&path)
                .map_err(|e| LayoutError::io(path.display().to_string(), e))?;
            let f = self.qlc[*dev as usize].io.file(f);
            let len = data.len() as u64;
            let w = f.write_all_at(0, data);
            self.counters.qlc_write(len);
            self.qlc[*dev as usize]
                .written
                .fetch_add(len, Ordering::Relaxed);
            pending.push((path, f, w));
        }
        self.counters
            .stripes_written
            .fetch_add(1, Ordering::Relaxed);
        Ok(async move {
            let mut syncs = Vec::with_capacity(pending.len());
            for (path, f, w) in pending {
                w.await
                    .map_err(|e| LayoutError::io(path.display().to_string(), e))?;
                syncs.push((path, f.sync_data()));
            }
            for (path, s) in syncs {
                s.await
                    .map_err(|e| LayoutError::io(path.display().to_string(), e))?;
            }
            Ok(())
        })
    }

    /// fsyncs the directories of the given devices (new shard files durable).
    pub(crate) fn sync_qlc_dirs(&self, devs: impl IntoIterator<Item = u16>) -> Result<()> {
        let set: std::collections::BTreeSet<u16> = devs.into_iter().collect();
        for dev in set {
            if !self.device_online(dev) {
                continue;
            }
            let dir = &self.qlc[dev as usize].slot.path;
            device::sync_dir(dir).map_err(|e| LayoutError::io(dir.display().to_string(), e))?;
        }
        Ok(())
    }

    /// Replaces a shard file atomically (tmp file, fsync, rename, dir fsync).
    /// Used by repair and rebuild; shard files are never modified in place.
    pub(crate) async fn replace_shard_file(
        &self,
        dev: u16,
        stripe: u64,
        data: Bytes,
    ) -> Result<()> {
        let q = &self.qlc[dev as usize];
        let path = self.shard_path(dev, stripe);
        let tmp = path.with_extension("shd.tmp");
        let ctx = |e| LayoutError::io(tmp.display().to_string(), e);
        let f = fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)
            .map_err(ctx)?;
        let f = q.io.file(f);
        let len = data.len() as u64;
        f.write_all_at(0, data).await.map_err(ctx)?;
        self.counters.qlc_write(len);
        q.written.fetch_add(len, Ordering::Relaxed);
        f.sync_data().await.map_err(ctx)?;
        fs::rename(&tmp, &path).map_err(ctx)?;
        device::sync_dir(&q.slot.path).map_err(ctx)?;
        Ok(())
    }

    pub(crate) fn chunk_record(&self, id: u64) -> Result<Option<ChunkRecord>> {
        match self.db.get(&records::chunk_key(id))? {
            Some(v) => Ok(Some(ChunkRecord::decode(&v)?)),
            None => Ok(None),
        }
    }

    pub(crate) fn stripe_record(&self, id: u64) -> Result<Option<StripeRecord>> {
        match self.db.get(&records::stripe_key(id))? {
            Some(v) => Ok(Some(StripeRecord::decode(&v)?)),
            None => Ok(None),
        }
    }

    /// Reads the logical bytes `[start, end)` of an extent made of `chunks`.
    /// All chunk reads are submitted before the first is awaited, so they run
    /// in parallel across devices.
    pub(crate) async fn read_chunks(
        &self,
        chunks: &[(u64, u32)],
        start: u64,
        end: u64,
    ) -> Result<Bytes> {
        let mut wanted = Vec::new();
        let mut pos = 0u64;
        for &(id, len) in chunks {
            let c_end = pos + len as u64;
            if c_end > start && pos < end {
                let from = start.saturating_sub(pos) as usize;
                let to = (end.min(c_end) - pos) as usize;
                wanted.push((id, from, to));
            }
            pos = c_end;
            if pos >= end {
                break;
            }
        }
        let mut inflight = Vec::with_capacity(wanted.len());
        for (id, from, to) in wanted {
            let rec = self
                .chunk_record(id)?
                .ok_or_else(|| LayoutError::NotFound(format!("chunk {id}")))?;
            let fut = self.submit_chunk_read(&rec);
            inflight.push((id, rec, fut, from, to));
        }
        let mut out = BytesMut::with_capacity((end - start) as usize);
        for (id, rec, fut, from, to) in inflight {
            let stored = match fut {
                Some(f) => match f.await {
                    Ok(b)
                        if b.len() == rec.stored_len as usize && crc32c::crc32c(&b) == rec.crc =>
                    {
                        Some(b)
                    }
                    _ => None,
                },
                None => None,
            };
            let stored = match stored {
                Some(b) => b,
                None => self.read_chunk_slow(id, rec.clone()).await?,
            };
            let logical = self.decode_chunk(&rec, stored).await?;
            if logical.len() != rec.logical_len as usize || to > logical.len() {
                return Err(LayoutError::Corruption(format!(
                    "chunk {id} decoded to {} bytes, expected {}",
                    logical.len(),
                    rec.logical_len
                )));
            }
            out.extend_from_slice(&logical[from..to]);
        }
        Ok(out.freeze())
    }

    /// The logical bytes of a chunk given its verified stored bytes; a delta
    /// reads its base (from the reducer's cache when it holds it).
    pub(crate) async fn decode_chunk(&self, rec: &ChunkRecord, stored: Bytes) -> Result<Bytes> {
        let Some(base_id) = rec.base else {
            return self.reducer.decode(rec.encoding, stored, rec.logical_len);
        };
        let base = match self.reducer.cached_logical(base_id) {
            Some(b) => b,
            None => {
                let brec = self
                    .chunk_record(base_id)?
                    .ok_or_else(|| LayoutError::NotFound(format!("base chunk {base_id}")))?;
                self.read_base(base_id, &brec).await?.1
            }
        };
        self.reducer
            .decode_with_base(rec.encoding, stored, rec.logical_len, &base)
    }

    /// The verified stored bytes and the logical bytes of chunk `id`, which
    /// must not be a delta (a delta's base, or a chunk the reducer is warmed with).
    pub(crate) async fn read_base(&self, id: u64, rec: &ChunkRecord) -> Result<(Bytes, Bytes)> {
        if rec.base.is_some() {
            return Err(LayoutError::Corruption(format!(
                "base chunk {id} is itself a delta"
            )));
        }
        let stored = self.read_stored(id, rec).await?;
        let logical = self
            .reducer
            .decode(rec.encoding, stored.clone(), rec.logical_len)?;
        if logical.len() != rec.logical_len as usize {
            return Err(LayoutError::Corruption(format!(
                "base chunk {id} decoded to {} bytes, expected {}",
                logical.len(),
                rec.logical_len
            )));
        }
        Ok((stored, logical))
    }

    /// Submits the fast-path read of a chunk's stored bytes (one range on one device).
    pub(crate) fn submit_chunk_read(
        &self,
        rec: &ChunkRecord,
    ) -> Option<impl std::future::Future<Output = std::io::Result<Bytes>> + 'static> {
        if !self.device_online(rec.device) {
            return None;
        }
        let path = self.shard_path(rec.device, rec.stripe);
        let f = match fs::File::open(&path) {
            Ok(f) => f,
            Err(_) => {
                self.check_device(rec.device);
                return None;
            }
        };
        let f = self.qlc[rec.device as usize].io.file(f);
        let off = rec.row as u64 * rec.block_bytes as u64 + BLOCK_HEADER as u64 + rec.offset as u64;
        let len = rec.stored_len as usize;
        Some(async move { f.read_exact_at(off, len).await })
    }

    /// The stored bytes of a chunk when the fast path failed: re-reads the
    /// chunk record (reclaim may have moved it), otherwise reconstructs the
    /// block from the other shards and queues a repair.
    pub(crate) async fn read_chunk_slow(&self, id: u64, rec: ChunkRecord) -> Result<Bytes> {
        let current = self
            .chunk_record(id)?
            .ok_or_else(|| LayoutError::NotFound(format!("chunk {id}")))?;
        if current != rec {
            if let Some(f) = self.submit_chunk_read(&current) {
                if let Ok(b) = f.await {
                    if b.len() == current.stored_len as usize && crc32c::crc32c(&b) == current.crc {
                        return Ok(b);
                    }
                }
            }
        }
        let rec = current;
        let stripe = self
            .stripe_record(rec.stripe)?
            .ok_or_else(|| LayoutError::NotFound(format!("stripe {}", rec.stripe)))?;
        self.counters.degraded_reads.fetch_add(1, Ordering::Relaxed);
        let row = self
            .reconstructed_row(rec.stripe, &stripe, rec.row, rec.shard)
            .await?;
        let payload = row
            .get(rec.shard as usize)
            .and_then(|p| p.as_ref())
            .ok_or_else(|| LayoutError::Corruption("reconstruction lost a shard".into()))?;
        let start = rec.offset as usize;
        let end = start + rec.stored_len as usize;
        if end > payload.len() {
            return Err(LayoutError::Corruption(format!(
                "chunk {id} lies outside its block"
            )));
        }
        let b = Bytes::copy_from_slice(&payload[start..end]);
        if crc32c::crc32c(&b) != rec.crc {
            return Err(LayoutError::Corruption(format!(
                "chunk {id} does not verify even after reconstruction"
            )));
        }
        tracing::warn!(
            chunk = id,
            stripe = rec.stripe,
            shard = rec.shard,
            "degraded read; repair queued"
        );
        self.queue_repair(rec.stripe, rec.shard);
        Ok(b)
    }

    pub(crate) fn queue_repair(&self, stripe: u64, shard: u8) {
        self.repair_queue.lock().insert((stripe, shard));
        self.repair_notify.notify_one();
    }

    /// Submits the read of one block; the future yields its verified payload,
    /// or `None` if missing, unreadable or bad.
    fn submit_block_read(
        &self,
        stripe: u64,
        rec: &StripeRecord,
        shard: u8,
        row: u32,
    ) -> Option<impl std::future::Future<Output = Option<Vec<u8>>> + 'static> {
        let dev = rec.devices[shard as usize];
        if !self.device_online(dev) {
            return None;
        }
        let path = self.shard_path(dev, stripe);
        let f = match fs::File::open(&path) {
            Ok(f) => f,
            Err(_) => {
                self.check_device(dev);
                return None;
            }
        };
        let f = self.qlc[dev as usize].io.file(f);
        let bb = rec.block_bytes as usize;
        let want = BlockId {
            stripe,
            shard,
            k: rec.k,
            m: rec.m,
            row,
            block_bytes: rec.block_bytes,
        };
        let read = f.read_at(row as u64 * bb as u64, bb);
        Some(async move {
            let b = read.await.ok()?;
            shard::verify_block(&b, want).ok()?;
            Some(b[BLOCK_HEADER..].to_vec())
        })
    }

    /// Loads one row of a stripe from every shard except `skip` (all reads in
    /// flight at once), verifies the blocks and reconstructs the missing ones.
    /// Returns all k+m payloads.
    pub(crate) async fn load_row(
        &self,
        stripe: u64,
        rec: &StripeRecord,
        row: u32,
        skip: Option<u8>,
    ) -> Result<Vec<Option<Vec<u8>>>> {
        let width = rec.width();
        let reads: Vec<_> = (0..width as u8)
            .map(|s| {
                if Some(s) == skip {
                    None
                } else {
                    self.submit_block_read(stripe, rec, s, row)
                }
            })
            .collect();
        let mut shards: Vec<Option<Vec<u8>>> = Vec::with_capacity(width);
        for r in reads {
            shards.push(match r {
                Some(f) => f.await,
                None => None,
            });
        }
        let codec = self.codecs.get(rec.k as usize, rec.m as usize)?;
        codec.reconstruct(&mut shards, stripe)?;
        Ok(shards)
    }

    /// A reconstructed row, from the small cache of recent degraded reads or
    /// loaded now. Stripes are immutable, so cached rows never go stale.
    async fn reconstructed_row(
        &self,
        stripe: u64,
        rec: &StripeRecord,
        row: u32,
        skip: u8,
    ) -> Result<Arc<Vec<Option<Vec<u8>>>>> {
        {
            let cache = self.row_cache.lock();
            if let Some((_, r)) = cache.iter().find(|(k, _)| *k == (stripe, row)) {
                return Ok(r.clone());
            }
        }
        let r = Arc::new(self.load_row(stripe, rec, row, Some(skip)).await?);
        let mut cache = self.row_cache.lock();
        if cache.len() >= ROW_CACHE_ROWS {
            cache.pop_front();
        }
        cache.push_back(((stripe, row), r.clone()));
        Ok(r)
    }

    /// Reads every block of every shard of a stripe. Returns the per-row
    /// payloads (None where missing or bad) and, per shard, whether its device
    /// is online.
    pub(crate) async fn load_stripe(
        &self,
        stripe: u64,
        rec: &StripeRecord,
    ) -> (StripeRows, Vec<bool>) {
        let width = rec.width();
        let bb = rec.block_bytes as usize;
        let rows = rec.rows as usize;
        let mut out: StripeRows = (0..rows).map(|_| vec![None; width]).collect();
        let mut online = vec![false; width];
        let mut reads = Vec::with_capacity(width);
        #[allow(clippy::needless_range_loop)]
        for s in 0..width {
            let dev = rec.devices[s];
            online[s] = self.device_online(dev);
            if !online[s] {
                reads.push(None);
                continue;
            }
            let path = self.shard_path(dev, stripe);
            match fs::File::open(&path) {
                Ok(f) => {
                    let f = self.qlc[dev as usize].io.file(f);
                    reads.push(Some(f.read_at(0, rows * bb)));
                }
                Err(_) => {
                    self.check_device(dev);
                    online[s] = self.device_online(dev);
                    reads.push(None);
                }
            }
        }
        for (s, r) in reads.into_iter().enumerate() {
            let Some(r) = r else { continue };
            let Ok(data) = r.await else { continue };
            for (row, slot) in out.iter_mut().enumerate() {
                let a = row * bb;
                if data.len() < a + bb {
                    break;
                }
                let want = BlockId {
                    stripe,
                    shard: s as u8,
                    k: rec.k,
                    m: rec.m,
                    row: row as u32,
                    block_bytes: rec.block_bytes,
                };
                if shard::verify_block(&data[a..a + bb], want).is_ok() {
                    slot[s] = Some(data[a + BLOCK_HEADER..a + bb].to_vec());
                }
            }
        }
        (out, online)
    }

    /// Lays out a whole shard file from its per-row payloads.
    pub(crate) fn shard_file(
        &self,
        stripe: u64,
        rec: &StripeRecord,
        shard: u8,
        rows: &StripeRows,
    ) -> Result<Bytes> {
        let mut buf = BytesMut::with_capacity(rec.rows as usize * rec.block_bytes as usize);
        for (row, r) in rows.iter().enumerate() {
            let payload = r[shard as usize].as_ref().ok_or_else(|| {
                LayoutError::Corruption("shard payload missing after reconstruction".into())
            })?;
            let id = BlockId {
                stripe,
                shard,
                k: rec.k,
                m: rec.m,
                row: row as u32,
                block_bytes: rec.block_bytes,
            };
            shard::encode_block(&mut buf, id, payload);
        }
        Ok(buf.freeze())
    }

    /// Deletes a stripe's shard files from every online device.
    pub(crate) fn delete_stripe_files(&self, stripe: u64, rec: &StripeRecord) {
        for &dev in &rec.devices {
            if !self.device_online(dev) {
                continue;
            }
            let p = self.shard_path(dev, stripe);
            match fs::remove_file(&p) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    tracing::warn!(path = %p.display(), error = %e, "could not delete reclaimed shard file; start-up cleanup will retry")
                }
            }
            let _ = device::sync_dir(&self.qlc[dev as usize].slot.path);
        }
    }
}
