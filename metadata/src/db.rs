//! The database handle: open/recovery, group-committed writes, reads, background work.

use std::collections::{HashMap, VecDeque};
use std::fs::File;
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use arc_swap::ArcSwap;
use bytes::Bytes;
use parking_lot::{Condvar, Mutex};

use crate::batch::{decode_record, encode_record, parse_ops, WriteBatch};
use crate::cache::BlockCache;
use crate::coding::MAX_SEQ;
use crate::compaction;
use crate::error::Error;
use crate::fsutil::sync_dir;
use crate::manifest::{log_name, parse_name, FileKind, VersionSet, CURRENT};
use crate::memtable::MemTable;
use crate::recordlog::{frame, read_log, LogWriter};
use crate::snapshot::{DbIter, ReadState, Snapshot};
use crate::table::BuildOptions;
use crate::version::{Version, VersionEdit};
use crate::Options;

pub(crate) const WAL_MAGIC: &[u8; 4] = b"CWAL";
pub(crate) const WAL_VERSION: u8 = 1;

struct WalState {
    writer: LogWriter,
    last_seq: u64,
    poisoned: bool,
    buf: Vec<u8>,
}

#[derive(Default)]
struct Queue {
    pending: VecDeque<(u64, WriteBatch)>,
    leader: bool,
    next_id: u64,
    done: HashMap<u64, Result<(), Error>>,
}

#[derive(Default)]
struct BgState {
    pending: bool,
    shutdown: bool,
}

/// Shared engine state.
pub(crate) struct Inner {
    pub(crate) dir: PathBuf,
    pub(crate) opts: Options,
    pub(crate) cache: Arc<BlockCache>,
    pub(crate) versions: Mutex<VersionSet>,
    state: ArcSwap<ReadState>,
    state_lock: Mutex<()>,
    visible_seq: AtomicU64,
    wal: Mutex<WalState>,
    queue: Mutex<Queue>,
    queue_cv: Condvar,
    work: Mutex<()>,
    bg: Mutex<BgState>,
    bg_cv: Condvar,
    stall_cv: Condvar,
    bg_error: Mutex<Option<String>>,
    closed: AtomicBool,
    stats: Counters,
    _lock: File,
}

#[derive(Default)]
struct Counters {
    batches: AtomicU64,
    wal_writes: AtomicU64,
    wal_syncs: AtomicU64,
    flushes: AtomicU64,
    compactions: AtomicU64,
}

/// Activity counters since open.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Write batches committed.
    pub batches: u64,
    /// WAL write calls (one per commit group).
    pub wal_writes: u64,
    /// WAL fdatasync calls made for commits (one per group when `Options::sync`).
    pub wal_syncs: u64,
    /// Memtables flushed to L0.
    pub flushes: u64,
    /// Compactions run (including trivial moves and full compactions).
    pub compactions: u64,
    /// Live SSTables per level, L0 first.
    pub tables_per_level: [usize; crate::version::NUM_LEVELS],
    /// Bytes of live SSTables.
    pub table_bytes: u64,
}

/// A log-structured key-value store. `Send + Sync`; share it as `Arc<Db>`.
pub struct Db {
    inner: Arc<Inner>,
    bg_thread: Mutex<Option<JoinHandle<()>>>,
}

impl Inner {
    pub(crate) fn build_opts(&self) -> BuildOptions {
        BuildOptions {
            block_bytes: self.opts.block_bytes.max(64),
            restart_interval: self.opts.block_restart_interval.max(1),
            bloom_bits_per_key: self.opts.bloom_bits_per_key,
        }
    }

    /// Publishes a new table set to readers.
    pub(crate) fn install_version(&self, v: Arc<Version>) {
        let _g = self.state_lock.lock();
        let cur = self.state.load_full();
        self.state.store(Arc::new(ReadState {
            mem: cur.mem.clone(),
            imm: cur.imm.clone(),
            version: v,
        }));
    }

    fn check_bg(&self) -> Result<(), Error> {
        match &*self.bg_error.lock() {
            Some(e) => Err(Error::Background(e.clone())),
            None => Ok(()),
        }
    }

    fn signal_bg(&self) {
        let mut g = self.bg.lock();
        g.pending = true;
        self.bg_cv.notify_all();
    }

    /// A (sequence, read state) pair that agree: the state was current both before and
    /// after the sequence was read. Then every write <= seq is in the state (writes are
    /// inserted before they are published, and a memtable is frozen only after its last
    /// write was published), and no table in it holds a version newer than seq that
    /// replaced an older one the snapshot needs (flushes and compactions installed before
    /// the state only saw writes published before it).
    fn snapshot(&self) -> Snapshot {
        loop {
            let state = self.state.load_full();
            let seq = self.visible_seq.load(Ordering::Acquire);
            if Arc::ptr_eq(&state, &self.state.load()) {
                return Snapshot::new(seq, state);
            }
        }
    }

    fn write(&self, batch: WriteBatch) -> Result<(), Error> {
        batch.validate()?;
        if self.closed.load(Ordering::Acquire) {
            return Err(Error::Closed);
        }
        if batch.is_empty() {
            return Ok(());
        }
        let mut q = self.queue.lock();
        let id = q.next_id;
        q.next_id += 1;
        q.pending.push_back((id, batch));
        loop {
            if let Some(r) = q.done.remove(&id) {
                return r;
            }
            if !q.leader {
                q.leader = true;
                let group: Vec<(u64, WriteBatch)> = q.pending.drain(..).collect();
                let res = parking_lot::MutexGuard::unlocked(&mut q, || self.commit_group(&group));
                q.leader = false;
                for (gid, _) in &group {
                    let r = match &res {
                        Ok(()) => Ok(()),
                        Err(e) => Err(e.duplicate()),
                    };
                    q.done.insert(*gid, r);
                }
                self.queue_cv.notify_all();
                continue;
            }
            self.queue_cv.wait(&mut q);
        }
    }

    /// Leader work: one WAL write + one sync for the whole group, then memtable inserts.
    fn commit_group(&self, group: &[(u64, WriteBatch)]) -> Result<(), Error> {
        self.check_bg()?;
        let mut wal = self.wal.lock();
        if wal.poisoned {
            return Err(Error::Background("an earlier WAL write failed".into()));
        }
        let first = wal.last_seq + 1;
        let total: u64 = group.iter().map(|(_, b)| u64::from(b.count)).sum();
        if first + total > MAX_SEQ {
            return Err(Error::InvalidArgument("sequence numbers exhausted".into()));
        }
        let mut seq = first;
        let parsed = group
            .iter()
            .map(|(_, b)| parse_ops(&b.ops, b.count as usize))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| Error::InvalidArgument("malformed write batch".into()))?;
        let mut buf = std::mem::take(&mut wal.buf);
        buf.clear();
        let mut rec = Vec::new();
        for (_, b) in group {
            rec.clear();
            encode_record(&mut rec, seq, b);
            frame(&mut buf, &rec);
            seq += u64::from(b.count);
        }
        let io = wal.writer.append_framed(&buf).and_then(|()| {
            if self.opts.sync {
                wal.writer.sync()
            } else {
                Ok(())
            }
        });
        if buf.capacity() <= 4 << 20 {
            wal.buf = buf;
        }
        if let Err(e) = io {
            wal.poisoned = true;
            return Err(e);
        }
        self.stats.wal_writes.fetch_add(1, Ordering::Relaxed);
        if self.opts.sync {
            self.stats.wal_syncs.fetch_add(1, Ordering::Relaxed);
        }
        self.stats
            .batches
            .fetch_add(group.len() as u64, Ordering::Relaxed);
        let mem = self.state.load().mem.clone();
        let mut s = first;
        for ops in parsed {
            for (kind, k, v) in ops {
                mem.add(k, s, kind, v);
                s += 1;
            }
        }
        wal.last_seq = seq - 1;
        self.visible_seq.store(seq - 1, Ordering::Release);
        if mem.approx_bytes() >= self.opts.memtable_bytes {
            // The group is durable and visible: a failure to start the next memtable
            // stops later writes but does not un-acknowledge these.
            if let Err(e) = self.rotate(&mut wal) {
                tracing::error!("cairn-metadata: memtable rotation failed: {e}");
                self.bg_error.lock().get_or_insert(e.to_string());
            }
        }
        Ok(())
    }

    /// Freezes the active memtable and starts a new WAL (caller holds the WAL lock).
    fn rotate(&self, wal: &mut WalState) -> Result<(), Error> {
        loop {
            self.check_bg()?;
            if self.state.load().imm.len() < self.opts.max_immutable_memtables.max(1) {
                break;
            }
            if self.opts.background_compaction {
                let mut g = self.bg.lock();
                g.pending = true;
                self.bg_cv.notify_all();
                if self.state.load().imm.len() >= self.opts.max_immutable_memtables.max(1) {
                    self.stall_cv
                        .wait_for(&mut g, std::time::Duration::from_millis(100));
                }
            } else {
                self.flush_immutables()?;
                self.compact_as_needed()?;
            }
        }
        let number = self.versions.lock().new_file_number();
        let writer = LogWriter::create(&self.dir.join(log_name(number)), WAL_MAGIC, WAL_VERSION)?;
        sync_dir(&self.dir)?;
        wal.writer.sync()?;
        wal.writer = writer;
        {
            let _g = self.state_lock.lock();
            let cur = self.state.load_full();
            let mut imm = Vec::with_capacity(cur.imm.len() + 1);
            imm.push(cur.mem.clone());
            imm.extend(cur.imm.iter().cloned());
            self.state.store(Arc::new(ReadState {
                mem: Arc::new(MemTable::new(number, self.opts.memtable_bytes)),
                imm,
                version: cur.version.clone(),
            }));
        }
        if self.opts.background_compaction {
            self.signal_bg();
        }
        Ok(())
    }

    /// Writes every frozen memtable to L0, oldest first, and retires their WALs.
    pub(crate) fn flush_immutables(&self) -> Result<(), Error> {
        let _w = self.work.lock();
        loop {
            let st = self.state.load_full();
            let Some(mem) = st.imm.last().cloned() else {
                return Ok(());
            };
            let next_log = if st.imm.len() >= 2 {
                st.imm[st.imm.len() - 2].log_number()
            } else {
                st.mem.log_number()
            };
            let (added, opened) = compaction::flush_memtable(self, &mem)?;
            let edit = VersionEdit {
                log_number: Some(next_log),
                last_seq: Some(mem.max_seq()),
                added,
                ..VersionEdit::default()
            };
            let v = self.versions.lock().log_and_apply(edit, &opened)?;
            self.stats.flushes.fetch_add(1, Ordering::Relaxed);
            {
                let _g = self.state_lock.lock();
                let cur = self.state.load_full();
                let imm: Vec<Arc<MemTable>> = cur
                    .imm
                    .iter()
                    .filter(|m| !Arc::ptr_eq(m, &mem))
                    .cloned()
                    .collect();
                self.state.store(Arc::new(ReadState {
                    mem: cur.mem.clone(),
                    imm,
                    version: v,
                }));
            }
            {
                let _g = self.bg.lock();
                self.stall_cv.notify_all();
            }
            remove_logs_below(&self.dir, next_log)?;
        }
    }

    /// Runs compactions until no level is over budget.
    fn compact_as_needed(&self) -> Result<(), Error> {
        loop {
            if self.closed.load(Ordering::Acquire) {
                return Ok(());
            }
            if !self.state.load().imm.is_empty() {
                self.flush_immutables()?;
            }
            let _w = self.work.lock();
            let picked = {
                let mut vs = self.versions.lock();
                let v = vs.current.clone();
                compaction::pick(self, &v, &mut vs.compact_pointer)
            };
            match picked {
                Some(c) => {
                    compaction::run(self, c)?;
                    self.stats.compactions.fetch_add(1, Ordering::Relaxed);
                }
                None => return Ok(()),
            }
        }
    }

    fn background_loop(self: Arc<Self>) {
        loop {
            {
                let mut g = self.bg.lock();
                while !g.pending && !g.shutdown {
                    self.bg_cv.wait(&mut g);
                }
                if g.shutdown {
                    return;
                }
                g.pending = false;
            }
            let r = self
                .flush_immutables()
                .and_then(|()| self.compact_as_needed());
            if let Err(e) = r {
                tracing::error!("cairn-metadata background work failed: {e}");
                *self.bg_error.lock() = Some(e.to_string());
                let _g = self.bg.lock();
                self.stall_cv.notify_all();
                return;
            }
        }
    }
}

fn remove_logs_below(dir: &Path, keep_from: u64) -> Result<(), Error> {
    for e in std::fs::read_dir(dir)? {
        let e = e?;
        if let Some(FileKind::Log(n)) = e.file_name().to_str().and_then(parse_name) {
            if n < keep_from {
                std::fs::remove_file(e.path())?;
            }
        }
    }
    Ok(())
}

/// Lists the engine's files in `dir`.
fn list_files(dir: &Path) -> Result<Vec<(FileKind, PathBuf)>, Error> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir)? {
        let e = e?;
        if let Some(k) = e.file_name().to_str().and_then(parse_name) {
            out.push((k, e.path()));
        }
    }
    Ok(out)
}

fn replay_valid(p: &[u8]) -> bool {
    decode_record(p).is_some()
}

impl Db {
    /// Opens (creating if missing) the database in `dir` and recovers it: the manifest
    /// names the live tables, and every intact WAL record after the last flush is
    /// replayed (a torn final record is dropped; damage before an intact record is
    /// reported as corruption).
    pub fn open(dir: impl AsRef<Path>, opts: Options) -> Result<Db, Error> {
        let dir = dir.as_ref().to_path_buf();
        std::fs::create_dir_all(&dir)?;
        let lock_path = dir.join("LOCK");
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => return Err(Error::Locked(lock_path)),
            Err(std::fs::TryLockError::Error(e)) => return Err(e.into()),
        }
        let cache = Arc::new(BlockCache::new(opts.block_cache_bytes));
        let files = list_files(&dir)?;
        let mut vs = match VersionSet::recover(&dir, cache.clone(), opts.max_manifest_bytes)? {
            Some(vs) => vs,
            None => {
                // A new database, unless data is here without a CURRENT. (A first open
                // that crashed before writing CURRENT leaves an empty WAL and perhaps a
                // manifest naming no tables; those are garbage.)
                for (k, p) in &files {
                    let stray = match k {
                        FileKind::Table(_) => true,
                        FileKind::Manifest(_) => false,
                        FileKind::Log(_) => {
                            let c = read_log(p, WAL_MAGIC, WAL_VERSION, &replay_valid)?;
                            !c.records.is_empty()
                        }
                        FileKind::Temp => false,
                    };
                    if stray {
                        return Err(Error::corruption(
                            dir.join(CURRENT),
                            format!("CURRENT is missing but {} exists", p.display()),
                        ));
                    }
                }
                VersionSet::empty(&dir, cache.clone(), opts.max_manifest_bytes)
            }
        };
        let max_seen = files
            .iter()
            .filter_map(|(k, _)| match k {
                FileKind::Log(n) | FileKind::Table(n) | FileKind::Manifest(n) => Some(*n),
                FileKind::Temp => None,
            })
            .max()
            .unwrap_or(0);
        vs.next_file = vs.next_file.max(max_seen + 1);

        // Replay WALs at or after the manifest's log number.
        let mut logs: Vec<(u64, PathBuf)> = files
            .iter()
            .filter_map(|(k, p)| match k {
                FileKind::Log(n) if *n >= vs.log_number => Some((*n, p.clone())),
                _ => None,
            })
            .collect();
        logs.sort();
        if vs.manifest_number() != 0 && !logs.iter().any(|(n, _)| *n == vs.log_number) {
            return Err(Error::corruption(
                dir.join(log_name(vs.log_number)),
                "write-ahead log named by the manifest is missing",
            ));
        }
        let mem = Arc::new(MemTable::new(0, opts.memtable_bytes));
        let mut last_seq = vs.last_seq;

        let mut contents = Vec::with_capacity(logs.len());
        for (_, path) in &logs {
            contents.push((path, read_log(path, WAL_MAGIC, WAL_VERSION, &replay_valid)?));
        }
        // Only the newest log holding records may end in a torn write. (Later logs can
        // exist but be empty: an open that crashed after creating its new WAL.)
        let newest_with_records = contents.iter().rposition(|(_, c)| !c.records.is_empty());
        for (i, (path, c)) in contents.iter().enumerate() {
            if let Some(at) = c.torn_at {
                if newest_with_records.is_some_and(|n| i < n) {
                    return Err(Error::corruption(
                        path,
                        format!("damaged record at offset {at} in a sealed log"),
                    ));
                }
                tracing::warn!("dropping torn WAL tail at {}:{at}", path.display());
            }
        }
        for (path, c) in &contents {
            for r in 0..c.records.len() {
                let Some((seq, ops)) = decode_record(c.payload(r)) else {
                    return Err(Error::corruption(path, "undecodable WAL record"));
                };
                // The batch's sequence numbers must fit an internal key's trailer.
                if seq
                    .checked_add(ops.len() as u64)
                    .is_none_or(|end| end > MAX_SEQ + 1)
                {
                    return Err(Error::corruption(
                        path,
                        format!("WAL sequence number {seq} out of range"),
                    ));
                }
                if seq <= last_seq && seq <= vs.last_seq {
                    // Already in the tables (a flush completed but its WAL outlived it).
                    continue;
                }
                if seq <= last_seq {
                    return Err(Error::corruption(path, "WAL sequence numbers go backwards"));
                }
                for (j, (kind, k, v)) in ops.iter().enumerate() {
                    mem.add(k, seq + j as u64, *kind, v);
                }
                last_seq = seq + ops.len() as u64 - 1;
            }
        }
        // The new WAL exists before any manifest names it.
        let wal_number = vs.new_file_number();
        let writer = LogWriter::create(&dir.join(log_name(wal_number)), WAL_MAGIC, WAL_VERSION)?;
        sync_dir(&dir)?;
        let inner = Arc::new(Inner {
            dir: dir.clone(),
            opts: opts.clone(),
            cache,
            versions: Mutex::new(vs),
            state: ArcSwap::from_pointee(ReadState {
                mem: Arc::new(MemTable::new(0, opts.memtable_bytes)),
                imm: Vec::new(),
                version: Arc::new(Version::default()),
            }),
            state_lock: Mutex::new(()),
            visible_seq: AtomicU64::new(last_seq),
            wal: Mutex::new(WalState {
                writer,
                last_seq,
                poisoned: false,
                buf: Vec::new(),
            }),
            queue: Mutex::new(Queue::default()),
            queue_cv: Condvar::new(),
            work: Mutex::new(()),
            bg: Mutex::new(BgState::default()),
            bg_cv: Condvar::new(),
            stall_cv: Condvar::new(),
            bg_error: Mutex::new(None),
            closed: AtomicBool::new(false),
            stats: Counters::default(),
            _lock: lock,
        });
        // Persist the replayed data as an L0 table, start a fresh WAL and manifest.
        let (added, opened) = compaction::flush_memtable(&inner, &mem)?;
        {
            let mut vs = inner.versions.lock();
            let edit = VersionEdit {
                added,
                ..VersionEdit::default()
            };
            vs.current = Arc::new(vs.current.apply(&edit, &opened));
            vs.log_number = wal_number;
            vs.last_seq = last_seq;
            vs.write_snapshot()?;
            let live: Vec<u64> = vs.current.all_files().map(|(_, f)| f.number).collect();
            let manifest = vs.manifest_number();
            for (k, p) in list_files(&dir)? {
                let dead = match k {
                    FileKind::Log(n) => n < wal_number,
                    FileKind::Table(n) => !live.contains(&n),
                    FileKind::Manifest(n) => n != manifest,
                    FileKind::Temp => true,
                };
                if dead {
                    std::fs::remove_file(&p)?;
                }
            }
            sync_dir(&dir)?;
            inner.state.store(Arc::new(ReadState {
                mem: Arc::new(MemTable::new(wal_number, opts.memtable_bytes)),
                imm: Vec::new(),
                version: vs.current.clone(),
            }));
        }
        let bg_thread = if opts.background_compaction {
            let i = inner.clone();
            let h = std::thread::Builder::new()
                .name("cairn-metadata-bg".into())
                .spawn(move || i.background_loop())?;
            inner.signal_bg();
            Some(h)
        } else {
            None
        };
        Ok(Db {
            inner,
            bg_thread: Mutex::new(bg_thread),
        })
    }

    /// Applies `batch` atomically. With `Options::sync` the batch is on stable storage
    /// when this returns; concurrent writers share one WAL write and one fsync.
    pub fn write(&self, batch: WriteBatch) -> Result<(), Error> {
        self.inner.write(batch)
    }

    /// Shorthand for a one-put batch.
    pub fn put(&self, key: impl AsRef<[u8]>, value: impl AsRef<[u8]>) -> Result<(), Error> {
        let mut b = WriteBatch::new();
        b.put(key, value);
        self.write(b)
    }

    /// Shorthand for a one-delete batch.
    pub fn delete(&self, key: impl AsRef<[u8]>) -> Result<(), Error> {
        let mut b = WriteBatch::new();
        b.delete(key);
        self.write(b)
    }

    /// The current value of `key` (`None` if absent or deleted).
    pub fn get(&self, key: &[u8]) -> Result<Option<Bytes>, Error> {
        self.inner.snapshot().get(key)
    }

    /// A consistent point-in-time view; it sees every write acknowledged before this call.
    pub fn snapshot(&self) -> Snapshot {
        self.inner.snapshot()
    }

    /// Ascending iteration over a key range from a fresh snapshot.
    pub fn range(&self, lower: Bound<&[u8]>, upper: Bound<&[u8]>) -> DbIter {
        self.snapshot().range(lower, upper)
    }

    /// Ascending iteration over keys with `prefix` from a fresh snapshot.
    pub fn scan_prefix(&self, prefix: &[u8]) -> DbIter {
        self.snapshot().scan_prefix(prefix)
    }

    /// Writes the memtable(s) to SSTables and records them in the manifest; returns when
    /// they are durable (the WAL they replace is then deleted).
    pub fn flush(&self) -> Result<(), Error> {
        self.inner.check_bg()?;
        {
            let mut wal = self.inner.wal.lock();
            if !self.inner.state.load().mem.is_empty() {
                self.inner.rotate(&mut wal)?;
            }
        }
        self.inner.flush_immutables()
    }

    /// Flushes, then merges every table into one sorted run in the last level, dropping
    /// overwritten versions and tombstones. Returns when the result is durable.
    pub fn compact(&self) -> Result<(), Error> {
        self.flush()?;
        let _w = self.inner.work.lock();
        let v = self.inner.versions.lock().current.clone();
        if let Some(c) = compaction::full(&v) {
            compaction::run(&self.inner, c)?;
            self.inner.stats.compactions.fetch_add(1, Ordering::Relaxed);
        }
        Ok(())
    }

    /// Activity counters and the current table layout.
    pub fn stats(&self) -> Stats {
        let v = self.inner.versions.lock().current.clone();
        let c = &self.inner.stats;
        let mut tables_per_level = [0; crate::version::NUM_LEVELS];
        for (l, files) in v.levels.iter().enumerate() {
            tables_per_level[l] = files.len();
        }
        Stats {
            batches: c.batches.load(Ordering::Relaxed),
            wal_writes: c.wal_writes.load(Ordering::Relaxed),
            wal_syncs: c.wal_syncs.load(Ordering::Relaxed),
            flushes: c.flushes.load(Ordering::Relaxed),
            compactions: c.compactions.load(Ordering::Relaxed),
            tables_per_level,
            table_bytes: v.all_files().map(|(_, f)| f.size).sum(),
        }
    }

    /// The database directory.
    pub fn path(&self) -> &Path {
        &self.inner.dir
    }

    fn shutdown(&self) -> Result<(), Error> {
        if self.inner.closed.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        {
            let mut g = self.inner.bg.lock();
            g.shutdown = true;
            self.inner.bg_cv.notify_all();
        }
        if let Some(h) = self.bg_thread.lock().take() {
            let _ = h.join();
        }
        let wal = self.inner.wal.lock();
        if !wal.poisoned {
            wal.writer.sync()?;
        }
        Ok(())
    }

    /// Stops background work and syncs the WAL. Dropping the handle does the same.
    pub fn close(self) -> Result<(), Error> {
        self.shutdown()
    }
}

impl Drop for Db {
    fn drop(&mut self) {
        if let Err(e) = self.shutdown() {
            tracing::warn!("closing cairn-metadata: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fuzzing::{encode_wal_record, replay_wal, wal_file, Op};

    /// A checksum-valid WAL record whose sequence numbers pass the largest one an internal
    /// key holds is corruption, not a sequence counter that later writes overflow (found by
    /// the metadata_wal fuzz target).
    #[test]
    fn wal_sequence_out_of_range_is_corruption() {
        let put = [
            Op::Put(b"k".to_vec(), b"v".to_vec()),
            Op::Put(b"k".to_vec(), b"w".to_vec()),
        ];
        for (seq, ops) in [
            (MAX_SEQ + 2, &[][..]),
            (MAX_SEQ, &put[..]),
            (u64::MAX, &put[..1]),
        ] {
            let wal = wal_file(&[&encode_wal_record(seq, ops)]);
            assert!(
                matches!(replay_wal(&wal), Err(Error::Corruption { .. })),
                "seq {seq}"
            );
        }
        let ok = wal_file(&[&encode_wal_record(MAX_SEQ - 1, &put[..])]);
        assert_eq!(
            replay_wal(&ok).unwrap(),
            vec![(b"k".to_vec(), b"w".to_vec())]
        );
    }
}
