//! The SLC write buffer: append-only segment files mirrored on two SLC
//! devices. Appends are group-committed: one committer task gathers every
//! append that is waiting, writes the records to both copies, fdatasyncs
//! both, and only then answers all of them.
//!
//! Segment file `seg-<seq:016x>.slc`: a 32-byte header then records.
//! Record: 24-byte header (magic, len, extent id, crc32c over len+id+data)
//! followed by `len` data bytes. See FORMAT.md.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use cairn_metadata::{Db, WriteBatch};
use parking_lot::Mutex;
use tokio::sync::{mpsc, oneshot, Notify};

use crate::device::sync_dir;
use crate::error::{LayoutError, Result};
use crate::io::{DeviceIo, IoFile};
use crate::records;

/// Size of the segment file header.
pub const SEG_HEADER: usize = 32;
/// Size of a record header.
pub const REC_HEADER: usize = 32;
const SEG_MAGIC: &[u8; 8] = b"CAIRNSLC";
const SEG_VERSION: u32 = 1;
const REC_MAGIC: u32 = u32::from_le_bytes(*b"SREC");
/// Records per segment are limited by the extent id layout (`seq << 24 | index`).
const MAX_RECORDS_PER_SEGMENT: u64 = 1 << 24;
/// Most bytes one group commit writes.
const MAX_GROUP_BYTES: usize = 32 << 20;

/// Extent id of record `idx` in segment `seq`.
pub fn extent_id(seq: u64, idx: u64) -> u64 {
    (seq << 24) | idx
}

/// File name of segment `seq`.
pub fn segment_name(seq: u64) -> String {
    format!("seg-{seq:016x}.slc")
}

fn parse_segment_name(name: &str) -> Option<u64> {
    let hex = name.strip_prefix("seg-")?.strip_suffix(".slc")?;
    u64::from_str_radix(hex, 16).ok()
}

pub(crate) fn segment_header(seq: u64) -> [u8; SEG_HEADER] {
    let mut h = [0u8; SEG_HEADER];
    h[0..8].copy_from_slice(SEG_MAGIC);
    h[8..12].copy_from_slice(&SEG_VERSION.to_le_bytes());
    h[16..24].copy_from_slice(&seq.to_le_bytes());
    let crc = crc32c::crc32c(&h[0..24]);
    h[24..28].copy_from_slice(&crc.to_le_bytes());
    h
}

pub(crate) fn check_segment_header(b: &[u8], seq: u64) -> bool {
    b.len() >= SEG_HEADER && b[..SEG_HEADER] == segment_header(seq)
}

/// Data is checksummed in pieces of this size too, so that a range read
/// verifies only the pieces it touches.
pub const REC_PIECE: usize = 64 << 10;

fn pieces(len: usize) -> usize {
    len.div_ceil(REC_PIECE)
}

/// Bytes a record of `len` data bytes occupies in a segment.
pub fn record_size(len: usize) -> usize {
    REC_HEADER + 4 * pieces(len) + len
}

fn le32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// Appends one framed record to `buf`; returns the data crc.
pub(crate) fn encode_record(buf: &mut BytesMut, id: u64, data: &[u8]) -> u32 {
    let mut table = Vec::with_capacity(4 * pieces(data.len()));
    for p in data.chunks(REC_PIECE) {
        table.extend_from_slice(&crc32c::crc32c(p).to_le_bytes());
    }
    let data_crc = crc32c::crc32c(data);
    let mut h = [0u8; REC_HEADER];
    h[0..4].copy_from_slice(&REC_MAGIC.to_le_bytes());
    h[4..8].copy_from_slice(&(data.len() as u32).to_le_bytes());
    h[8..16].copy_from_slice(&id.to_le_bytes());
    h[16..20].copy_from_slice(&data_crc.to_le_bytes());
    h[20..24].copy_from_slice(&crc32c::crc32c(&table).to_le_bytes());
    let hc = crc32c::crc32c(&h[0..28]);
    h[28..32].copy_from_slice(&hc.to_le_bytes());
    buf.extend_from_slice(&h);
    buf.extend_from_slice(&table);
    buf.extend_from_slice(data);
    data_crc
}

/// A verified record header and piece table.
struct RecHead {
    id: u64,
    len: usize,
    data_crc: u32,
    table: Vec<u32>,
}

/// Parses and verifies the header and piece table at the start of `b`.
fn parse_head(b: &[u8]) -> Option<RecHead> {
    if b.len() < REC_HEADER || le32(b, 0)? != REC_MAGIC || crc32c::crc32c(&b[0..28]) != le32(b, 28)?
    {
        return None;
    }
    let len = le32(b, 4)? as usize;
    let id = u64::from_le_bytes(b[8..16].try_into().ok()?);
    let n = pieces(len);
    let table_bytes = b.get(REC_HEADER..REC_HEADER + 4 * n)?;
    if crc32c::crc32c(table_bytes) != le32(b, 20)? {
        return None;
    }
    let table = (0..n)
        .map(|i| le32(table_bytes, 4 * i))
        .collect::<Option<Vec<u32>>>()?;
    Some(RecHead {
        id,
        len,
        data_crc: le32(b, 16)?,
        table,
    })
}

/// Parses the record at the start of `b`: `(id, data range)` if it is
/// complete and every checksum (header, table, pieces, whole data) holds.
pub(crate) fn parse_record(b: &[u8]) -> Option<(u64, std::ops::Range<usize>)> {
    let h = parse_head(b)?;
    let start = REC_HEADER + 4 * h.table.len();
    let data = b.get(start..start + h.len)?;
    if crc32c::crc32c(data) != h.data_crc {
        return None;
    }
    for (p, want) in data.chunks(REC_PIECE).zip(&h.table) {
        if crc32c::crc32c(p) != *want {
            return None;
        }
    }
    Some((h.id, start..start + h.len))
}

/// A record found by scanning a segment.
pub struct ScannedRecord {
    /// Extent id.
    pub id: u64,
    /// Offset of the record header.
    pub off: u64,
    /// The verified data.
    pub data: Bytes,
}

/// In-memory state of one segment.
#[derive(Clone, Debug)]
pub struct SegMeta {
    /// Bytes in the segment file (header included).
    pub bytes: u64,
    /// No more appends go to it.
    pub sealed: bool,
    /// Live [`NewExtent`](crate::NewExtent)s pointing into it.
    pub pins: usize,
    /// When it was created (or found at start-up).
    pub created: Instant,
}

struct State {
    segments: BTreeMap<u64, SegMeta>,
    used: u64,
    next_seq: u64,
}

/// Result of a durable append.
pub struct Appended {
    /// Extent id.
    pub id: u64,
    /// Segment.
    pub seq: u64,
    /// Offset of the record header.
    pub off: u64,
    /// Data length.
    pub len: u64,
    /// crc32c of the data.
    pub crc: u32,
    /// Keeps the segment from being migrated or freed.
    pub pin: Pin,
}

/// Pins a segment while an appended extent is not yet committed (or abandoned).
pub struct Pin {
    shared: Arc<Shared>,
    seq: u64,
}

impl Drop for Pin {
    fn drop(&mut self) {
        let mut st = self.shared.state.lock();
        if let Some(s) = st.segments.get_mut(&self.seq) {
            s.pins = s.pins.saturating_sub(1);
        }
        drop(st);
        self.shared.unpinned.notify_waiters();
    }
}

enum Msg {
    Append {
        data: Bytes,
        reply: oneshot::Sender<Result<Appended>>,
    },
    Seal(oneshot::Sender<()>),
}

struct Shared {
    dirs: [PathBuf; 2],
    io: [DeviceIo; 2],
    db: Arc<Db>,
    state: Mutex<State>,
    /// Signalled when a segment is freed.
    space: Notify,
    /// Signalled when a pin is dropped.
    unpinned: Notify,
    /// Signalled when SLC use passes the high-water mark.
    pressure: Arc<Notify>,
    segment_bytes: u64,
    capacity: u64,
    high_water: u64,
    appended_bytes: AtomicU64,
    group_commits: AtomicU64,
}

/// The mirrored SLC write buffer.
pub struct Slc {
    shared: Arc<Shared>,
    tx: mpsc::UnboundedSender<Msg>,
}

/// Parameters of the SLC buffer.
pub struct SlcParams {
    /// The two mirror directories.
    pub dirs: [PathBuf; 2],
    /// Their I/O lanes.
    pub io: [DeviceIo; 2],
    /// Seal segments at this size.
    pub segment_bytes: u64,
    /// Appends wait above this use.
    pub capacity: u64,
    /// Migration pressure above this use.
    pub high_water: u64,
    /// Notified when use passes `high_water` or an append waits for space.
    pub pressure: Arc<Notify>,
}

impl Slc {
    /// Recovers the segments found on the two mirrors (truncating torn tails,
    /// restoring a missing copy from the other) and starts the committer.
    /// Recovered segments are sealed; new appends go to a new segment.
    pub fn open(p: SlcParams, db: Arc<Db>) -> Result<Slc> {
        let mut next_seq = match db.get(records::CTR_SLC_SEG)? {
            Some(v) => records::decode_u64(&v)?,
            None => 1,
        };
        let mut segments = BTreeMap::new();
        let mut used = 0;
        for (seq, bytes) in recover_segments(&p.dirs)? {
            next_seq = next_seq.max(seq + 1);
            used += bytes;
            segments.insert(
                seq,
                SegMeta {
                    bytes,
                    sealed: true,
                    pins: 0,
                    created: Instant::now(),
                },
            );
        }
        let shared = Arc::new(Shared {
            dirs: p.dirs,
            io: p.io,
            db,
            state: Mutex::new(State {
                segments,
                used,
                next_seq,
            }),
            space: Notify::new(),
            unpinned: Notify::new(),
            pressure: p.pressure,
            segment_bytes: p.segment_bytes,
            capacity: p.capacity,
            high_water: p.high_water,
            appended_bytes: AtomicU64::new(0),
            group_commits: AtomicU64::new(0),
        });
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(committer(shared.clone(), rx));
        Ok(Slc { shared, tx })
    }

    /// Appends `data` as one record; returns once it is durable on both mirrors.
    pub async fn append(&self, data: Bytes) -> Result<Appended> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Msg::Append { data, reply })
            .map_err(|_| LayoutError::Shutdown)?;
        rx.await.map_err(|_| LayoutError::Shutdown)?
    }

    /// Seals the active segment (if any) so that it can be migrated.
    pub async fn seal_active(&self) -> Result<()> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Msg::Seal(reply))
            .map_err(|_| LayoutError::Shutdown)?;
        rx.await.map_err(|_| LayoutError::Shutdown)
    }

    /// A snapshot of all segments.
    pub fn segments(&self) -> BTreeMap<u64, SegMeta> {
        self.shared.state.lock().segments.clone()
    }

    /// Bytes currently held in the buffer.
    pub fn used_bytes(&self) -> u64 {
        self.shared.state.lock().used
    }

    /// Total bytes appended since start.
    pub fn appended_bytes(&self) -> u64 {
        self.shared.appended_bytes.load(Ordering::Relaxed)
    }

    /// Group commits (write + fdatasync on both mirrors) since start.
    pub fn group_commits(&self) -> u64 {
        self.shared.group_commits.load(Ordering::Relaxed)
    }

    /// Whether SLC use is above the high-water mark.
    pub fn above_high_water(&self) -> bool {
        self.used_bytes() > self.shared.high_water
    }

    /// Waits until no pins remain on `seq` (or `timeout` passes); true if unpinned.
    pub async fn wait_unpinned(&self, seq: u64, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            let notified = self.shared.unpinned.notified();
            let pins = self
                .shared
                .state
                .lock()
                .segments
                .get(&seq)
                .map(|s| s.pins)
                .unwrap_or(0);
            if pins == 0 {
                return true;
            }
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            let _ = tokio::time::timeout(deadline - now, notified).await;
        }
    }

    /// Reads and verifies bytes `range` of the data of record `id` (of `len`
    /// bytes) at `off` in segment `seq`, falling back to the second mirror
    /// when the first fails. Only the 64 KiB pieces the range touches are read
    /// and verified.
    pub async fn read(
        &self,
        seq: u64,
        off: u64,
        id: u64,
        len: u64,
        range: std::ops::Range<u64>,
    ) -> Result<Bytes> {
        let mut last = None;
        for copy in 0..2 {
            match self.read_copy(copy, seq, off, id, len, range.clone()).await {
                Ok(b) => return Ok(b),
                Err(e) => {
                    tracing::debug!(copy, seq, off, error = %e, "SLC copy read failed");
                    last = Some(e);
                }
            }
        }
        Err(last.unwrap_or_else(|| LayoutError::NotFound(format!("SLC record {id}"))))
    }

    async fn read_copy(
        &self,
        copy: usize,
        seq: u64,
        off: u64,
        id: u64,
        len: u64,
        range: std::ops::Range<u64>,
    ) -> Result<Bytes> {
        let path = self.shared.dirs[copy].join(segment_name(seq));
        let bad = || {
            LayoutError::Corruption(format!(
                "SLC record {id} at {}:{off} does not verify",
                path.display()
            ))
        };
        let ctx = |e| LayoutError::io(path.display().to_string(), e);
        let f = fs::File::open(&path).map_err(ctx)?;
        let f = self.shared.io[copy].file(f);
        let len = len as usize;
        let head_len = REC_HEADER + 4 * pieces(len);
        if len <= 4 * REC_PIECE {
            // Small record: one read, full verification.
            let b = f.read_exact_at(off, record_size(len)).await.map_err(ctx)?;
            return match parse_record(&b) {
                Some((rid, r)) if rid == id && r.len() == len => {
                    Ok(b.slice(r.start + range.start as usize..r.start + range.end as usize))
                }
                _ => Err(bad()),
            };
        }
        let head = f.read_exact_at(off, head_len).await.map_err(ctx)?;
        let h = parse_head(&head).ok_or_else(bad)?;
        if h.id != id || h.len != len {
            return Err(bad());
        }
        if range.is_empty() {
            return Ok(Bytes::new());
        }
        let p0 = range.start as usize / REC_PIECE;
        let p1 = (range.end as usize).div_ceil(REC_PIECE);
        let a = p0 * REC_PIECE;
        let b = (p1 * REC_PIECE).min(len);
        let data = f
            .read_exact_at(off + (head_len + a) as u64, b - a)
            .await
            .map_err(ctx)?;
        for (i, p) in data.chunks(REC_PIECE).enumerate() {
            if crc32c::crc32c(p) != h.table[p0 + i] {
                return Err(bad());
            }
        }
        Ok(data.slice(range.start as usize - a..range.end as usize - a))
    }

    /// Reads every verified record of a sealed segment, taking each record
    /// from whichever mirror verifies.
    pub async fn scan(&self, seq: u64) -> Result<Vec<ScannedRecord>> {
        let mut copies: [Option<Bytes>; 2] = [None, None];
        let mut loaded = [false, false];
        let mut errs = Vec::new();
        let mut out = Vec::new();
        let mut off = SEG_HEADER;
        loop {
            let mut found = None;
            for c in 0..2 {
                if c == 1 {
                    // Consult the second mirror only where the first is unreadable or
                    // holds bytes that do not verify (not at its clean end).
                    let first_ended = copies[0].as_ref().map(|b| off >= b.len()).unwrap_or(false);
                    if first_ended {
                        break;
                    }
                }
                if !loaded[c] {
                    // The second mirror is read only when the first fails to verify.
                    loaded[c] = true;
                    let path = self.shared.dirs[c].join(segment_name(seq));
                    match read_whole(&self.shared.io[c], &path).await {
                        Ok(b) if check_segment_header(&b, seq) => copies[c] = Some(b),
                        Ok(_) => errs.push(format!("{}: bad segment header", path.display())),
                        Err(e) => errs.push(e.to_string()),
                    }
                }
                if let Some(b) = &copies[c] {
                    if off < b.len() {
                        if let Some((id, r)) = parse_record(&b[off..]) {
                            found = Some((id, b.slice(off + r.start..off + r.end)));
                            break;
                        }
                    }
                }
            }
            match found {
                Some((id, data)) => {
                    let n = record_size(data.len());
                    out.push(ScannedRecord {
                        id,
                        off: off as u64,
                        data,
                    });
                    off += n;
                }
                None => break,
            }
        }
        if copies.iter().all(|c| c.is_none()) {
            return Err(LayoutError::Corruption(format!(
                "SLC segment {seq} unreadable on both mirrors: {}",
                errs.join("; ")
            )));
        }
        Ok(out)
    }

    /// Deletes both copies of a migrated segment and returns its space.
    pub fn free(&self, seq: u64) -> Result<()> {
        for d in &self.shared.dirs {
            let p = d.join(segment_name(seq));
            match fs::remove_file(&p) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(LayoutError::io(p.display().to_string(), e)),
            }
            sync_dir(d).map_err(|e| LayoutError::io(d.display().to_string(), e))?;
        }
        let mut st = self.shared.state.lock();
        if let Some(s) = st.segments.remove(&seq) {
            st.used = st.used.saturating_sub(s.bytes);
        }
        drop(st);
        self.shared.space.notify_waiters();
        Ok(())
    }
}

async fn read_whole(io: &DeviceIo, path: &Path) -> Result<Bytes> {
    let ctx = |e| LayoutError::io(path.display().to_string(), e);
    let f = fs::File::open(path).map_err(ctx)?;
    let f = io.file(f);
    let len = f.len().map_err(ctx)?;
    f.read_at(0, len as usize).await.map_err(ctx)
}

/// Recovers every segment on the mirrors: the durable end of a segment is
/// the longest prefix in which every record verifies on at least one copy;
/// both copies are truncated to it (a copy missing entirely is restored from
/// the other). Returns `(seq, bytes)` of the segments kept.
pub(crate) fn recover_segments(dirs: &[PathBuf; 2]) -> Result<Vec<(u64, u64)>> {
    let mut seqs = std::collections::BTreeSet::new();
    for d in dirs {
        let rd = fs::read_dir(d).map_err(|e| LayoutError::io(d.display().to_string(), e))?;
        for ent in rd {
            let ent = ent.map_err(|e| LayoutError::io(d.display().to_string(), e))?;
            if let Some(seq) = ent.file_name().to_str().and_then(parse_segment_name) {
                seqs.insert(seq);
            }
        }
    }
    let mut kept = Vec::new();
    for seq in seqs {
        let name = segment_name(seq);
        let copies: Vec<Option<Vec<u8>>> = dirs
            .iter()
            .map(|d| fs::read(d.join(&name)).ok())
            .map(|b| b.filter(|b| check_segment_header(b, seq)))
            .collect();
        let mut off = SEG_HEADER;
        let mut records = 0u64;
        // The durable prefix with each record taken from a copy on which it verifies: what
        // a copy that is missing or too short is restored from (a copy long enough may
        // still hold a damaged record that only the other copy has intact).
        let mut merged = segment_header(seq).to_vec();
        loop {
            let found = copies.iter().flatten().find_map(|b| {
                let (_, r) = b.get(off..).and_then(parse_record)?;
                Some(&b[off..off + r.end])
            });
            match found {
                Some(rec) => {
                    merged.extend_from_slice(rec);
                    off += rec.len();
                    records += 1;
                }
                None => break,
            }
        }
        if records == 0 {
            // Never held an acknowledged record (a crash while creating it or before its first commit).
            for d in dirs {
                let _ = fs::remove_file(d.join(&name));
                let _ = sync_dir(d);
            }
            continue;
        }
        for (d, c) in dirs.iter().zip(&copies) {
            let p = d.join(&name);
            let ctx = |e| LayoutError::io(p.display().to_string(), e);
            let needs_restore = match c {
                None => true,
                Some(b) => b.len() < off,
            };
            if needs_restore {
                // The copy is missing or shorter than the durable end: restore it from the
                // verified records of both mirrors.
                tracing::warn!(path = %p.display(), "restoring SLC segment copy from its mirror");
                let tmp = d.join(format!("{name}.tmp"));
                fs::write(&tmp, &merged).map_err(ctx)?;
                fs::File::open(&tmp)
                    .and_then(|f| f.sync_all())
                    .map_err(ctx)?;
                fs::rename(&tmp, &p).map_err(ctx)?;
                sync_dir(d).map_err(ctx)?;
            } else {
                let f = fs::OpenOptions::new().write(true).open(&p).map_err(ctx)?;
                if f.metadata().map_err(ctx)?.len() != off as u64 {
                    f.set_len(off as u64).map_err(ctx)?;
                    f.sync_all().map_err(ctx)?;
                }
            }
        }
        kept.push((seq, off as u64));
    }
    Ok(kept)
}

struct Active {
    seq: u64,
    files: [IoFile; 2],
    off: u64,
    next_idx: u64,
}

async fn committer(shared: Arc<Shared>, mut rx: mpsc::UnboundedReceiver<Msg>) {
    let mut active: Option<Active> = None;
    let mut pending: Option<Msg> = None;
    loop {
        let first = match pending.take() {
            Some(m) => m,
            None => match rx.recv().await {
                Some(m) => m,
                None => break,
            },
        };
        let mut group = Vec::new();
        let mut group_bytes = 0usize;
        let mut seal = None;
        match first {
            Msg::Seal(r) => seal = Some(r),
            Msg::Append { data, reply } => {
                group_bytes += record_size(data.len());
                group.push((data, reply));
                while group_bytes < MAX_GROUP_BYTES {
                    match rx.try_recv() {
                        Ok(Msg::Append { data, reply }) => {
                            group_bytes += record_size(data.len());
                            group.push((data, reply));
                        }
                        Ok(Msg::Seal(r)) => {
                            seal = Some(r);
                            break;
                        }
                        Err(_) => break,
                    }
                }
            }
        }
        if !group.is_empty() {
            commit_group(&shared, &mut active, group, group_bytes).await;
        }
        if let Some(r) = seal {
            seal_segment(&shared, &mut active);
            let _ = r.send(());
        }
    }
    seal_segment(&shared, &mut active);
}

fn seal_segment(shared: &Shared, active: &mut Option<Active>) {
    if let Some(a) = active.take() {
        let mut st = shared.state.lock();
        if let Some(s) = st.segments.get_mut(&a.seq) {
            s.sealed = true;
        }
    }
}

async fn wait_for_space(shared: &Shared, need: u64) {
    loop {
        let notified = shared.space.notified();
        let used = shared.state.lock().used;
        if used == 0 || used + need <= shared.capacity {
            return;
        }
        shared.pressure.notify_one();
        let _ = tokio::time::timeout(Duration::from_millis(200), notified).await;
    }
}

async fn commit_group(
    shared: &Arc<Shared>,
    active: &mut Option<Active>,
    group: Vec<(Bytes, oneshot::Sender<Result<Appended>>)>,
    group_bytes: usize,
) {
    wait_for_space(shared, group_bytes as u64).await;
    let roll = match active {
        Some(a) => {
            (a.off > SEG_HEADER as u64 && a.off + group_bytes as u64 > shared.segment_bytes)
                || a.next_idx + group.len() as u64 > MAX_RECORDS_PER_SEGMENT
        }
        None => true,
    };
    if roll {
        seal_segment(shared, active);
        match create_segment(shared).await {
            Ok(a) => *active = Some(a),
            Err(e) => {
                let msg = e.to_string();
                for (_, reply) in group {
                    let _ = reply.send(Err(LayoutError::io(
                        "creating SLC segment",
                        std::io::Error::other(msg.clone()),
                    )));
                }
                return;
            }
        }
    }
    let Some(a) = active.as_mut() else { return };
    let mut buf = BytesMut::with_capacity(group_bytes);
    let mut placed = Vec::with_capacity(group.len());
    let mut off = a.off;
    for (data, _) in &group {
        let id = extent_id(a.seq, a.next_idx);
        a.next_idx += 1;
        let crc = encode_record(&mut buf, id, data);
        placed.push((id, off, data.len() as u64, crc));
        off += record_size(data.len()) as u64;
    }
    let buf = buf.freeze();
    let w0 = a.files[0].write_all_at(a.off, buf.clone());
    let w1 = a.files[1].write_all_at(a.off, buf);
    let (r0, r1) = tokio::join!(w0, w1);
    let res = match (r0, r1) {
        (Ok(()), Ok(())) => {
            let (s0, s1) = tokio::join!(a.files[0].sync_data(), a.files[1].sync_data());
            s0.and(s1)
        }
        (Err(e), _) | (_, Err(e)) => Err(e),
    };
    if let Err(e) = res {
        // The tail of this segment is now in an unknown state: seal it (recovery and
        // scans stop at the first record that does not verify) and fail the group.
        tracing::error!(seq = a.seq, error = %e, "SLC group commit failed");
        let msg = e.to_string();
        seal_segment(shared, active);
        for (_, reply) in group {
            let _ = reply.send(Err(LayoutError::io(
                "SLC group commit",
                std::io::Error::other(msg.clone()),
            )));
        }
        return;
    }
    let written = off - a.off;
    a.off = off;
    let seq = a.seq;
    let above = {
        let mut st = shared.state.lock();
        st.used += written;
        if let Some(s) = st.segments.get_mut(&seq) {
            s.bytes = off;
            s.pins += group.len();
        }
        st.used > shared.high_water
    };
    shared.appended_bytes.fetch_add(written, Ordering::Relaxed);
    shared.group_commits.fetch_add(1, Ordering::Relaxed);
    if above {
        shared.pressure.notify_one();
    }
    for ((id, off, len, crc), (_, reply)) in placed.into_iter().zip(group) {
        let pin = Pin {
            shared: shared.clone(),
            seq,
        };
        // If the caller went away, dropping the result drops the pin again.
        let _ = reply.send(Ok(Appended {
            id,
            seq,
            off,
            len,
            crc,
            pin,
        }));
    }
}

async fn create_segment(shared: &Arc<Shared>) -> Result<Active> {
    let seq = {
        let mut st = shared.state.lock();
        let s = st.next_seq;
        st.next_seq += 1;
        s
    };
    // Persist the counter first so that a sequence number (and the extent ids
    // derived from it) is never handed out twice, even after the segment is freed.
    let mut b = WriteBatch::new();
    b.put(records::CTR_SLC_SEG, records::encode_u64(seq + 1));
    shared.db.write(b)?;
    let header = segment_header(seq);
    let mut files = Vec::with_capacity(2);
    for (d, io) in shared.dirs.iter().zip(&shared.io) {
        let p = d.join(segment_name(seq));
        let ctx = |e| LayoutError::io(p.display().to_string(), e);
        let f = fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&p)
            .map_err(ctx)?;
        let f = io.file(f);
        f.write_all_at(0, Bytes::copy_from_slice(&header))
            .await
            .map_err(ctx)?;
        f.sync_data().await.map_err(ctx)?;
        sync_dir(d).map_err(ctx)?;
        files.push(f);
    }
    let mut st = shared.state.lock();
    st.used += SEG_HEADER as u64;
    st.segments.insert(
        seq,
        SegMeta {
            bytes: SEG_HEADER as u64,
            sealed: false,
            pins: 0,
            created: Instant::now(),
        },
    );
    drop(st);
    let [f0, f1]: [IoFile; 2] = files
        .try_into()
        .map_err(|_| LayoutError::Corruption("mirror count".into()))?;
    Ok(Active {
        seq,
        files: [f0, f1],
        off: SEG_HEADER as u64,
        next_idx: 0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Found by the slc_record fuzz target: a copy cut short (crash) must be restored from
    /// the records that verify, not from the other copy's bytes wholesale; here the longer
    /// copy has a damaged first record that only the short copy holds intact.
    #[test]
    fn short_copy_is_restored_from_verified_records() {
        let root = tempfile::tempdir().unwrap();
        let dirs = [root.path().join("a"), root.path().join("b")];
        let mut seg = BytesMut::from(&segment_header(5)[..]);
        encode_record(&mut seg, extent_id(5, 0), b"first");
        let first_end = seg.len();
        encode_record(&mut seg, extent_id(5, 1), b"second");
        let mut long = seg.to_vec();
        long[SEG_HEADER + REC_HEADER + 6] ^= 1;
        fs::create_dir_all(&dirs[0]).unwrap();
        fs::create_dir_all(&dirs[1]).unwrap();
        fs::write(dirs[0].join(segment_name(5)), &long).unwrap();
        fs::write(dirs[1].join(segment_name(5)), &seg[..first_end + 3]).unwrap();
        assert_eq!(
            recover_segments(&dirs).unwrap(),
            vec![(5, seg.len() as u64)]
        );
        let restored = fs::read(dirs[1].join(segment_name(5))).unwrap();
        assert_eq!(restored, &seg[..]);
    }
}
