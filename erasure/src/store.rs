//! [`DataStore`]: the public face of the layout. It owns the devices, the SLC
//! buffer and the background workers (migration, GC + reclaim, repair).

use std::collections::{BTreeSet, HashSet};
use std::fs;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};

use bytes::Bytes;
use cairn_metadata::{Db, WriteBatch};
use parking_lot::Mutex;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use crate::codec::Codecs;
use crate::config::LayoutConfig;
use crate::device::{self, DeviceSlot, DeviceState, Identity, Role};
use crate::error::{LayoutError, Result};
use crate::io::{choose_backend, DeviceIo, IoBackend};
use crate::records::{self, ExtentLoc, ExtentRecord, StripeRecord};
use crate::reduce::{FixedChunker, Reducer};
use crate::reduction::SimilarityReducer;
use crate::slc::{Pin, Slc, SlcParams};
use crate::stats::{Counters, DeviceStatus, LayoutCounters, LayoutStatus, RebuildSlot};

/// Largest extent one [`DataStore::append`] accepts.
pub const MAX_EXTENT_BYTES: usize = 8 << 20;

/// A stable extent identifier. Object metadata refers to extents by id; only
/// the layout knows where an extent's bytes are now.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ExtentId(pub u64);

impl ExtentId {
    /// 8-byte big-endian encoding (sorts like the number).
    pub fn to_bytes(self) -> [u8; 8] {
        self.0.to_be_bytes()
    }
    /// Parses [`ExtentId::to_bytes`]; `None` if `b` is not 8 bytes.
    pub fn from_bytes(b: &[u8]) -> Option<ExtentId> {
        Some(ExtentId(u64::from_be_bytes(b.try_into().ok()?)))
    }
}

/// An extent durable in the SLC buffer but not yet committed. Pass it to
/// [`DataStore::stage_commit`], write the batch, then drop it. While it lives
/// its SLC segment is neither migrated nor freed.
pub struct NewExtent {
    id: u64,
    seq: u64,
    off: u64,
    len: u64,
    crc: u32,
    _pin: Pin,
}

impl NewExtent {
    /// The id the extent will have once committed.
    pub fn id(&self) -> ExtentId {
        ExtentId(self.id)
    }
    /// Its length in bytes.
    pub fn len(&self) -> u64 {
        self.len
    }
    /// Whether it is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    /// crc32c of its bytes.
    pub fn crc32c(&self) -> u32 {
        self.crc
    }
}

/// A reconstructed stripe row, keyed by (stripe, row).
pub(crate) type CachedRow = ((u64, u32), Arc<Vec<Option<Vec<u8>>>>);

/// A QLC device slot at run time.
pub(crate) struct Qlc {
    pub(crate) slot: DeviceSlot,
    pub(crate) io: DeviceIo,
    pub(crate) state: Mutex<DeviceState>,
    pub(crate) written: AtomicU64,
}

/// The data layout: SLC write buffer, erasure-coded QLC stripes and the
/// workers that move, repair and reclaim data. `Send + Sync`; share it as `Arc`.
pub struct DataStore {
    pub(crate) cfg: LayoutConfig,
    pub(crate) db: Arc<Db>,
    pub(crate) backend: IoBackend,
    pub(crate) slc: Slc,
    pub(crate) slc_slots: Vec<DeviceSlot>,
    pub(crate) qlc: Vec<Qlc>,
    pub(crate) codecs: Codecs,
    pub(crate) reducer: Arc<dyn Reducer>,
    /// Serializes migration, GC/reclaim, repair, scrub and rebuild.
    pub(crate) maint: tokio::sync::Mutex<()>,
    /// Set once the reducer has been offered the newest stored chunks
    /// (before the first migration after open).
    pub(crate) warmed: tokio::sync::OnceCell<()>,
    pub(crate) next_chunk: AtomicU64,
    pub(crate) next_stripe: AtomicU64,
    pub(crate) stripe_count: AtomicU64,
    pub(crate) repair_queue: Mutex<BTreeSet<(u64, u8)>>,
    pub(crate) repair_notify: Notify,
    pub(crate) pressure: Arc<Notify>,
    pub(crate) counters: Counters,
    pub(crate) row_cache: Mutex<std::collections::VecDeque<CachedRow>>,
    pub(crate) rebuild: RebuildSlot,
    shutdown: AtomicBool,
    shutdown_notify: Notify,
    workers: Mutex<Vec<JoinHandle<()>>>,
}

impl DataStore {
    /// Opens the layout: formats empty devices, checks identities against the
    /// metadata store, recovers the SLC buffer, removes shard files of stripes
    /// that were never committed, and starts the background workers.
    pub async fn open(cfg: LayoutConfig, db: Arc<Db>) -> Result<Arc<DataStore>> {
        Self::open_with_reducer(cfg, db, None).await
    }

    /// Like [`DataStore::open`] with a custom [`Reducer`] (the default is
    /// [`SimilarityReducer`] when `cfg.reduction` is set, else fixed-size raw chunks).
    pub async fn open_with_reducer(
        cfg: LayoutConfig,
        db: Arc<Db>,
        reducer: Option<Arc<dyn Reducer>>,
    ) -> Result<Arc<DataStore>> {
        cfg.validate()?;
        let backend = choose_backend(cfg.force_threaded_io);
        let slc_slots: Vec<DeviceSlot> = cfg
            .slc_dirs
            .iter()
            .enumerate()
            .map(|(i, p)| DeviceSlot {
                id: format!("slc{i}"),
                role: Role::Slc,
                path: p.clone(),
            })
            .collect();
        let qlc_slots: Vec<DeviceSlot> = cfg
            .qlc_dirs
            .iter()
            .enumerate()
            .map(|(i, p)| DeviceSlot {
                id: format!("qlc{i}"),
                role: Role::Qlc,
                path: p.clone(),
            })
            .collect();
        let mut slc_io = Vec::new();
        let slc_states: Vec<DeviceState> = slc_slots
            .iter()
            .map(|s| attach_device(&db, s))
            .collect::<Result<_>>()?;
        let online = slc_states
            .iter()
            .filter(|s| **s == DeviceState::Online)
            .count();
        for (s, state) in slc_slots.iter().zip(&slc_states) {
            if *state == DeviceState::Online {
                continue;
            }
            if online == 0 || device::read_identity(&s.path)?.is_some() {
                return Err(LayoutError::Device {
                    device: s.id.clone(),
                    reason: format!(
                        "SLC mirror {} is missing or foreign and no healthy mirror can restore it",
                        s.path.display()
                    ),
                });
            }
            // One mirror lost: format its (empty or new) directory as the replacement;
            // SLC recovery below copies every segment over from the surviving mirror.
            let ident = Identity::new(&s.id, s.role);
            device::format_device(&s.path, &ident)?;
            let mut b = WriteBatch::new();
            b.put(records::dev_key(&s.id), ident.uuid.as_bytes());
            db.write(b)?;
            tracing::warn!(device = %s.id, path = %s.path.display(), "SLC mirror replaced; restoring its segments from the other mirror");
        }
        for s in &slc_slots {
            slc_io.push(
                DeviceIo::start(&s.id, backend, cfg.threads_per_device)
                    .map_err(|e| LayoutError::io(format!("starting I/O for {}", s.id), e))?,
            );
        }
        let mut qlc = Vec::new();
        for s in qlc_slots {
            let state = attach_device(&db, &s)?;
            if state != DeviceState::Online {
                tracing::warn!(device = %s.id, path = %s.path.display(), "QLC device missing; reads of its shards are degraded until it is rebuilt");
            }
            let io = DeviceIo::start(&s.id, backend, cfg.threads_per_device)
                .map_err(|e| LayoutError::io(format!("starting I/O for {}", s.id), e))?;
            qlc.push(Qlc {
                slot: s,
                io,
                state: Mutex::new(state),
                written: AtomicU64::new(0),
            });
        }
        let backend = slc_io[0].backend();
        let pressure = Arc::new(Notify::new());
        let [io0, io1]: [DeviceIo; 2] = slc_io
            .try_into()
            .map_err(|_| LayoutError::Config("exactly two SLC mirrors".into()))?;
        let slc = Slc::open(
            SlcParams {
                dirs: [cfg.slc_dirs[0].clone(), cfg.slc_dirs[1].clone()],
                io: [io0, io1],
                segment_bytes: cfg.slc_segment_bytes,
                capacity: cfg.slc_capacity_bytes,
                high_water: (cfg.slc_capacity_bytes as f64 * cfg.slc_high_water) as u64,
                pressure: pressure.clone(),
            },
            db.clone(),
        )?;
        let next_chunk = match db.get(records::CTR_CHUNK)? {
            Some(v) => records::decode_u64(&v)?,
            None => 1,
        };
        let next_stripe = match db.get(records::CTR_STRIPE)? {
            Some(v) => records::decode_u64(&v)?,
            None => 1,
        };
        let counters = Counters::default();
        let mut stripes: HashSet<(u64, u16)> = HashSet::new();
        let mut stripe_count = 0u64;
        for item in db.scan_prefix(records::STRIPE_PREFIX) {
            let (k, v) = item?;
            let Some(id) = records::id_from_key(records::STRIPE_PREFIX, &k) else {
                continue;
            };
            let rec = StripeRecord::decode(&v)?;
            counters
                .live_bytes
                .fetch_add(rec.live_bytes, Ordering::Relaxed);
            counters.dead_bytes.fetch_add(
                rec.data_bytes.saturating_sub(rec.live_bytes),
                Ordering::Relaxed,
            );
            for d in &rec.devices {
                stripes.insert((id, *d));
            }
            stripe_count += 1;
        }
        for (i, q) in qlc.iter().enumerate() {
            if *q.state.lock() == DeviceState::Online {
                remove_orphan_shards(q, i as u16, &stripes)?;
            }
        }
        let reducer: Arc<dyn Reducer> = match (reducer, &cfg.reduction) {
            (Some(r), _) => r,
            (None, Some(rc)) => Arc::new(SimilarityReducer::open(rc.clone(), &db)?),
            (None, None) => {
                // Round the chunk size down so that a whole number of chunks fills a block payload.
                let payload = cfg.shard_block_bytes as usize - crate::shard::BLOCK_HEADER;
                let per_block = payload.div_ceil(cfg.chunk_bytes as usize);
                Arc::new(FixedChunker {
                    chunk_bytes: payload / per_block,
                })
            }
        };
        let store = Arc::new(DataStore {
            cfg,
            db,
            backend,
            slc,
            slc_slots,
            qlc,
            codecs: Codecs::default(),
            reducer,
            maint: tokio::sync::Mutex::new(()),
            warmed: tokio::sync::OnceCell::new(),
            next_chunk: AtomicU64::new(next_chunk),
            next_stripe: AtomicU64::new(next_stripe),
            stripe_count: AtomicU64::new(stripe_count),
            repair_queue: Mutex::new(BTreeSet::new()),
            repair_notify: Notify::new(),
            pressure,
            counters,
            row_cache: Mutex::new(std::collections::VecDeque::new()),
            rebuild: Mutex::new(None),
            shutdown: AtomicBool::new(false),
            shutdown_notify: Notify::new(),
            workers: Mutex::new(Vec::new()),
        });
        tracing::info!(backend = %store.backend, "data layout open");
        store.start_workers();
        Ok(store)
    }

    /// The I/O backend in use.
    pub fn io_backend(&self) -> IoBackend {
        self.backend
    }

    /// Appends `data` to the SLC buffer. Returns when the record is durable on
    /// both SLC mirrors; concurrent appends share the fsyncs (group commit).
    pub async fn append(&self, data: Bytes) -> Result<NewExtent> {
        if data.len() > MAX_EXTENT_BYTES {
            return Err(LayoutError::TooLarge {
                len: data.len(),
                max: MAX_EXTENT_BYTES,
            });
        }
        if self.is_shut_down() {
            return Err(LayoutError::Shutdown);
        }
        let a = self.slc.append(data).await?;
        self.counters.slc_appends.fetch_add(1, Ordering::Relaxed);
        Ok(NewExtent {
            id: a.id,
            seq: a.seq,
            off: a.off,
            len: a.len,
            crc: a.crc,
            _pin: a.pin,
        })
    }

    /// Adds the extent record of `ext` to the caller's batch. Once the caller
    /// has written the batch, the extent is committed: it is readable by id,
    /// migration will move it, and it lives until released.
    pub fn stage_commit(&self, batch: &mut WriteBatch, ext: &NewExtent) -> ExtentId {
        let rec = ExtentRecord {
            len: ext.len,
            crc: ext.crc,
            loc: ExtentLoc::Slc {
                seq: ext.seq,
                off: ext.off,
            },
        };
        batch.put(records::ext_key(ext.id), rec.encode());
        ExtentId(ext.id)
    }

    /// Adds a GC marker for `id` to the caller's batch. Once written, the GC
    /// worker frees the extent (its chunk references and, eventually, its space).
    /// The extent must not be read after its release is committed.
    pub fn stage_release(&self, batch: &mut WriteBatch, id: ExtentId) {
        batch.put(records::gc_key(id.0), b"");
    }

    /// Reads `len` bytes at `offset` of extent `id`. Returns verified bytes or
    /// an error, never wrong bytes; reconstructs from parity when shards are
    /// missing or damaged.
    pub async fn read(&self, id: ExtentId, offset: u64, len: u64) -> Result<Bytes> {
        let mut last_err = None;
        let mut prev: Option<ExtentRecord> = None;
        for _attempt in 0..4 {
            let rec = self.extent_record(id.0)?;
            if let (Some(p), Some(e)) = (&prev, last_err.take()) {
                // The location did not change since the failure: the failure is real.
                if *p == rec {
                    return Err(e);
                }
            }
            let end =
                offset
                    .checked_add(len)
                    .filter(|&e| e <= rec.len)
                    .ok_or(LayoutError::Range {
                        offset,
                        len,
                        extent_len: rec.len,
                    })?;
            if len == 0 {
                return Ok(Bytes::new());
            }
            let res = match &rec.loc {
                ExtentLoc::Slc { seq, off } => {
                    self.slc.read(*seq, *off, id.0, rec.len, offset..end).await
                }
                ExtentLoc::Chunks(chunks) => self.read_chunks(chunks, offset, end).await,
            };
            match res {
                Ok(b) => return Ok(b),
                Err(e) => {
                    last_err = Some(e);
                    prev = Some(rec);
                }
            }
        }
        Err(last_err.unwrap_or_else(|| LayoutError::NotFound(format!("extent {}", id.0))))
    }

    pub(crate) fn extent_record(&self, id: u64) -> Result<ExtentRecord> {
        match self.db.get(&records::ext_key(id))? {
            Some(v) => ExtentRecord::decode(&v),
            None => Err(LayoutError::NotFound(format!("extent {id}"))),
        }
    }

    /// Drains the whole SLC buffer into stripes now: seals the active segment,
    /// waits for pinned segments to be committed, migrates everything. Returns
    /// when the buffer is empty of committed data.
    pub async fn flush(&self) -> Result<()> {
        self.slc.seal_active().await?;
        let upto = self.slc.segments().keys().next_back().copied().unwrap_or(0);
        self.migrate(Some(upto)).await?;
        Ok(())
    }

    /// A status snapshot: devices, SLC fill, migration lag, rebuild progress.
    pub fn status(&self) -> LayoutStatus {
        let mut devices = Vec::new();
        for s in &self.slc_slots {
            devices.push(DeviceStatus {
                id: s.id.clone(),
                role: s.role.as_str(),
                path: s.path.clone(),
                state: DeviceState::Online.as_str(),
                bytes: dir_bytes(&s.path),
                bytes_written: self.slc.appended_bytes(),
            });
        }
        for q in &self.qlc {
            devices.push(DeviceStatus {
                id: q.slot.id.clone(),
                role: q.slot.role.as_str(),
                path: q.slot.path.clone(),
                state: q.state.lock().as_str(),
                bytes: dir_bytes(&q.slot.path),
                bytes_written: q.written.load(Ordering::Relaxed),
            });
        }
        let segs = self.slc.segments();
        let lag = segs
            .values()
            .map(|s| s.created.elapsed().as_secs_f64())
            .fold(0.0, f64::max);
        let used = self.slc.used_bytes();
        LayoutStatus {
            io_backend: self.backend.to_string(),
            devices,
            slc_used_bytes: used,
            slc_capacity_bytes: self.cfg.slc_capacity_bytes,
            slc_fill: used as f64 / self.cfg.slc_capacity_bytes as f64,
            slc_segments: segs.len(),
            migration_lag_secs: lag,
            rebuild: self.rebuild.lock().as_ref().map(|t| t.progress()),
            repair_queue: self.repair_queue.lock().len(),
            stripes: self.stripe_count.load(Ordering::Relaxed),
        }
    }

    /// Counters for `/metrics`.
    pub fn counters(&self) -> LayoutCounters {
        let mut c = self.counters.snapshot();
        c.slc_appended_bytes = self.slc.appended_bytes();
        c.slc_group_commits = self.slc.group_commits();
        c.qlc_bytes_written = self
            .qlc
            .iter()
            .map(|q| (q.slot.id.clone(), q.written.load(Ordering::Relaxed)))
            .collect();
        let (k, m) = (self.cfg.data_shards as u128, self.cfg.parity_shards as u128);
        c.physical_live_bytes = (c.live_bytes as u128 * (k + m) / k.max(1)) as u64;
        c
    }

    /// Stops the background workers (waiting for the current step of each to
    /// finish). Acknowledged data is already durable; nothing else needs closing.
    pub async fn shutdown(&self) {
        self.shutdown.store(true, Ordering::SeqCst);
        self.shutdown_notify.notify_waiters();
        self.repair_notify.notify_waiters();
        self.pressure.notify_waiters();
        let handles: Vec<_> = std::mem::take(&mut *self.workers.lock());
        for h in handles {
            let _ = h.await;
        }
    }

    pub(crate) fn is_shut_down(&self) -> bool {
        self.shutdown.load(Ordering::SeqCst)
    }

    fn start_workers(self: &Arc<Self>) {
        let mut w = self.workers.lock();
        w.push(spawn_worker(self, "migration", |s| {
            Box::pin(async move {
                let notified = s.pressure.clone();
                let n = notified.notified();
                let _ = tokio::time::timeout(s.cfg.worker_tick, n).await;
                if let Err(e) = s.migrate(None).await {
                    tracing::warn!(error = %e, "migration step failed");
                }
            })
        }));
        w.push(spawn_worker(self, "gc", |s| {
            Box::pin(async move {
                tokio::time::sleep(s.cfg.worker_tick).await;
                if let Err(e) = s.gc_and_reclaim().await {
                    tracing::warn!(error = %e, "gc/reclaim step failed");
                }
            })
        }));
        w.push(spawn_worker(self, "repair", |s| {
            Box::pin(async move {
                let n = s.repair_notify.notified();
                let _ = tokio::time::timeout(s.cfg.worker_tick, n).await;
                if let Err(e) = s.repair_queued().await {
                    tracing::warn!(error = %e, "repair step failed");
                }
            })
        }));
    }
}

type StepFuture = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;

/// Runs `step` repeatedly until shutdown, holding only a weak reference
/// between steps so that dropping the last `Arc<DataStore>` ends the worker.
fn spawn_worker(
    store: &Arc<DataStore>,
    name: &'static str,
    step: fn(Arc<DataStore>) -> StepFuture,
) -> JoinHandle<()> {
    let weak: Weak<DataStore> = Arc::downgrade(store);
    tokio::spawn(async move {
        tracing::debug!(worker = name, "started");
        loop {
            let Some(s) = weak.upgrade() else { return };
            if s.is_shut_down() {
                return;
            }
            let stop = s.shutdown_notify.notified();
            tokio::select! {
                _ = step(s.clone()) => {}
                _ = stop => {}
            }
        }
    })
}

/// Checks a device slot against its identity file and the metadata store,
/// formatting it when neither knows it. Returns its state.
fn attach_device(db: &Db, slot: &DeviceSlot) -> Result<DeviceState> {
    let known = db.get(&records::dev_key(&slot.id))?;
    let ident = device::read_identity(&slot.path)?;
    match (known, ident) {
        (None, None) => {
            let id = Identity::new(&slot.id, slot.role);
            device::format_device(&slot.path, &id)?;
            let mut b = WriteBatch::new();
            b.put(records::dev_key(&slot.id), id.uuid.as_bytes());
            db.write(b)?;
            tracing::info!(device = %slot.id, path = %slot.path.display(), uuid = %id.uuid, "formatted device");
            Ok(DeviceState::Online)
        }
        (None, Some(id)) => {
            if id.role != slot.role {
                return Err(LayoutError::Device {
                    device: slot.id.clone(),
                    reason: format!(
                        "formatted as {}, configured as {}",
                        id.role.as_str(),
                        slot.role.as_str()
                    ),
                });
            }
            let mut b = WriteBatch::new();
            b.put(records::dev_key(&slot.id), id.uuid.as_bytes());
            db.write(b)?;
            Ok(DeviceState::Online)
        }
        (Some(_), None) => Ok(DeviceState::Missing),
        (Some(uuid), Some(id)) => {
            if uuid.as_ref() == id.uuid.as_bytes() && id.role == slot.role {
                Ok(DeviceState::Online)
            } else {
                tracing::warn!(device = %slot.id, "device directory holds another device's identity");
                Ok(DeviceState::Missing)
            }
        }
    }
}

/// Deletes shard files on a device that no committed stripe places there
/// (stripes written before a crash but never committed, or already reclaimed),
/// and leftover temporary files.
fn remove_orphan_shards(q: &Qlc, dev: u16, stripes: &HashSet<(u64, u16)>) -> Result<()> {
    let dir = &q.slot.path;
    let ctx = |e| LayoutError::io(dir.display().to_string(), e);
    let mut removed = 0;
    for ent in fs::read_dir(dir).map_err(ctx)? {
        let ent = ent.map_err(ctx)?;
        let name = ent.file_name();
        let Some(name) = name.to_str() else { continue };
        let orphan = if name.ends_with(".tmp") {
            true
        } else if let Some(stripe) = crate::shard::parse_shard_file_name(name) {
            !stripes.contains(&(stripe, dev))
        } else {
            false
        };
        if orphan {
            fs::remove_file(ent.path()).map_err(ctx)?;
            removed += 1;
        }
    }
    if removed > 0 {
        device::sync_dir(dir).map_err(ctx)?;
        tracing::info!(device = %q.slot.id, removed, "removed uncommitted shard files");
    }
    Ok(())
}

fn dir_bytes(dir: &std::path::Path) -> u64 {
    fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter_map(|e| e.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}
