//! Counters and status reports (plain structs, no serde).

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use parking_lot::Mutex;

/// Upper bounds (inclusive) of the QLC write-size histogram buckets; the last bucket is open.
pub const WRITE_SIZE_BUCKETS: [u64; 11] = [
    64 << 10,
    128 << 10,
    256 << 10,
    512 << 10,
    1 << 20,
    2 << 20,
    4 << 20,
    8 << 20,
    16 << 20,
    32 << 20,
    64 << 20,
];

/// Live counters, updated lock-free.
#[derive(Default)]
pub struct Counters {
    pub(crate) slc_appends: AtomicU64,
    pub(crate) qlc_writes: AtomicU64,
    pub(crate) qlc_write_bytes: AtomicU64,
    pub(crate) qlc_unaligned_writes: AtomicU64,
    pub(crate) qlc_small_writes: AtomicU64,
    pub(crate) hist: [AtomicU64; WRITE_SIZE_BUCKETS.len() + 1],
    pub(crate) live_bytes: AtomicU64,
    pub(crate) dead_bytes: AtomicU64,
    pub(crate) degraded_reads: AtomicU64,
    pub(crate) repairs: AtomicU64,
    pub(crate) migrated_extents: AtomicU64,
    pub(crate) migrated_bytes: AtomicU64,
    pub(crate) orphans_dropped: AtomicU64,
    pub(crate) stripes_written: AtomicU64,
    pub(crate) stripes_reclaimed: AtomicU64,
    pub(crate) extents_freed: AtomicU64,
    pub(crate) reduce_after_dedup: AtomicU64,
    pub(crate) reduce_after_similarity: AtomicU64,
    pub(crate) reduce_stored: AtomicU64,
}

impl Counters {
    /// Records one QLC write of `len` bytes.
    pub(crate) fn qlc_write(&self, len: u64) {
        self.qlc_writes.fetch_add(1, Ordering::Relaxed);
        self.qlc_write_bytes.fetch_add(len, Ordering::Relaxed);
        if !len.is_multiple_of(64 << 10) {
            self.qlc_unaligned_writes.fetch_add(1, Ordering::Relaxed);
        }
        if len < (1 << 20) {
            self.qlc_small_writes.fetch_add(1, Ordering::Relaxed);
        }
        let b = WRITE_SIZE_BUCKETS
            .iter()
            .position(|&ub| len <= ub)
            .unwrap_or(WRITE_SIZE_BUCKETS.len());
        self.hist[b].fetch_add(1, Ordering::Relaxed);
    }
}

/// A snapshot of the layout's counters for `/metrics`.
#[derive(Clone, Debug, Default)]
pub struct LayoutCounters {
    /// Bytes appended to the SLC buffer (record framing included).
    pub slc_appended_bytes: u64,
    /// Appends acknowledged.
    pub slc_appends: u64,
    /// Group commits (one write + fdatasync per mirror each) that acknowledged them.
    pub slc_group_commits: u64,
    /// Bytes written to each QLC device: `(device id, bytes)`.
    pub qlc_bytes_written: Vec<(String, u64)>,
    /// QLC data writes issued.
    pub qlc_writes: u64,
    /// Bytes of those writes.
    pub qlc_write_bytes: u64,
    /// QLC writes that were not a multiple of 64 KiB (expected 0).
    pub qlc_unaligned_writes: u64,
    /// QLC writes smaller than 1 MiB (expected 0).
    pub qlc_small_writes: u64,
    /// Write-size histogram: `(upper bound in bytes, count)`; `u64::MAX` is the open bucket.
    pub qlc_write_size_histogram: Vec<(u64, u64)>,
    /// Stored bytes of chunks still referenced.
    pub live_bytes: u64,
    /// Stored bytes of freed chunks still occupying stripes.
    pub dead_bytes: u64,
    /// Reads that had to reconstruct from parity.
    pub degraded_reads: u64,
    /// Shard files repaired (degraded-read repairs, scrub repairs).
    pub repairs: u64,
    /// Extents moved from SLC into stripes.
    pub migrated_extents: u64,
    /// Logical bytes moved from SLC into stripes.
    pub migrated_bytes: u64,
    /// SLC records dropped because no extent record ever referenced them.
    pub orphans_dropped: u64,
    /// Stripes written (migration and reclaim).
    pub stripes_written: u64,
    /// Stripes deleted by reclaim.
    pub stripes_reclaimed: u64,
    /// Extents freed by the GC worker.
    pub extents_freed: u64,
    /// Reduction, cumulative over migrations: logical bytes in is
    /// `migrated_bytes`; this is what is left of them after exact dedup.
    pub reduced_after_dedup_bytes: u64,
    /// What is left after similarity (a delta counts its encoded size).
    pub reduced_after_similarity_bytes: u64,
    /// What is left after compression: the stored bytes of the new chunks.
    pub reduced_after_compression_bytes: u64,
    /// Physical bytes on QLC for the live chunks, parity included
    /// (`live_bytes * (k + m) / k`, for the configured geometry).
    pub physical_live_bytes: u64,
}

impl Counters {
    pub(crate) fn snapshot(&self) -> LayoutCounters {
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let mut hist = Vec::with_capacity(self.hist.len());
        for (i, h) in self.hist.iter().enumerate() {
            let ub = WRITE_SIZE_BUCKETS.get(i).copied().unwrap_or(u64::MAX);
            hist.push((ub, g(h)));
        }
        LayoutCounters {
            slc_appended_bytes: 0,
            slc_appends: g(&self.slc_appends),
            slc_group_commits: 0,
            qlc_bytes_written: Vec::new(),
            qlc_writes: g(&self.qlc_writes),
            qlc_write_bytes: g(&self.qlc_write_bytes),
            qlc_unaligned_writes: g(&self.qlc_unaligned_writes),
            qlc_small_writes: g(&self.qlc_small_writes),
            qlc_write_size_histogram: hist,
            live_bytes: g(&self.live_bytes),
            dead_bytes: g(&self.dead_bytes),
            degraded_reads: g(&self.degraded_reads),
            repairs: g(&self.repairs),
            migrated_extents: g(&self.migrated_extents),
            migrated_bytes: g(&self.migrated_bytes),
            orphans_dropped: g(&self.orphans_dropped),
            stripes_written: g(&self.stripes_written),
            stripes_reclaimed: g(&self.stripes_reclaimed),
            extents_freed: g(&self.extents_freed),
            reduced_after_dedup_bytes: g(&self.reduce_after_dedup),
            reduced_after_similarity_bytes: g(&self.reduce_after_similarity),
            reduced_after_compression_bytes: g(&self.reduce_stored),
            physical_live_bytes: 0,
        }
    }
}

/// One device in [`LayoutStatus`].
#[derive(Clone, Debug)]
pub struct DeviceStatus {
    /// Device id (`slc0`, `qlc3`).
    pub id: String,
    /// `slc` or `qlc`.
    pub role: &'static str,
    /// Directory.
    pub path: PathBuf,
    /// `online`, `missing` or `rebuilding`.
    pub state: &'static str,
    /// Bytes of layout files currently on the device.
    pub bytes: u64,
    /// Bytes written to it since start.
    pub bytes_written: u64,
}

/// Progress of a running (or the last) rebuild.
#[derive(Clone, Debug)]
pub struct RebuildProgress {
    /// Device being rebuilt.
    pub device: String,
    /// Shard bytes rebuilt so far.
    pub bytes_done: u64,
    /// Shard bytes to rebuild.
    pub bytes_total: u64,
    /// Average rate so far, bytes per second.
    pub rate_bytes_per_sec: f64,
    /// Whether it has finished.
    pub finished: bool,
}

pub(crate) struct RebuildTracker {
    pub(crate) device: String,
    pub(crate) started: Instant,
    pub(crate) done: AtomicU64,
    pub(crate) total: AtomicU64,
    pub(crate) finished: std::sync::atomic::AtomicBool,
}

impl RebuildTracker {
    pub(crate) fn progress(&self) -> RebuildProgress {
        let done = self.done.load(Ordering::Relaxed);
        let secs = self.started.elapsed().as_secs_f64().max(1e-6);
        RebuildProgress {
            device: self.device.clone(),
            bytes_done: done,
            bytes_total: self.total.load(Ordering::Relaxed),
            rate_bytes_per_sec: done as f64 / secs,
            finished: self.finished.load(Ordering::Relaxed),
        }
    }
}

/// Rebuild progress slot shared by the store and status.
pub(crate) type RebuildSlot = Mutex<Option<std::sync::Arc<RebuildTracker>>>;

/// What [`crate::DataStore::status`] reports.
#[derive(Clone, Debug)]
pub struct LayoutStatus {
    /// `io_uring` or `threaded`.
    pub io_backend: String,
    /// Every configured device.
    pub devices: Vec<DeviceStatus>,
    /// Bytes held in the SLC buffer.
    pub slc_used_bytes: u64,
    /// SLC capacity from the configuration.
    pub slc_capacity_bytes: u64,
    /// `slc_used_bytes / slc_capacity_bytes`.
    pub slc_fill: f64,
    /// SLC segments not yet migrated (including the active one).
    pub slc_segments: usize,
    /// Age in seconds of the oldest segment not yet migrated (migration lag).
    pub migration_lag_secs: f64,
    /// Rebuild progress, if a rebuild ran since start.
    pub rebuild: Option<RebuildProgress>,
    /// Shards waiting for repair.
    pub repair_queue: usize,
    /// Stripes known to the layout.
    pub stripes: u64,
}

/// Result of [`crate::DataStore::scrub`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ScrubReport {
    /// Stripes checked.
    pub stripes: u64,
    /// Blocks read and verified.
    pub blocks_checked: u64,
    /// Blocks whose checksum or identity failed, or that were missing on an online device.
    pub bad_blocks: u64,
    /// Bad blocks rewritten from parity.
    pub repaired_blocks: u64,
    /// Blocks not checked because their device is missing.
    pub missing_blocks: u64,
    /// Block rows that could not be reconstructed (more than m bad).
    pub unrecoverable_rows: u64,
}

/// Result of [`crate::DataStore::rebuild`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RebuildReport {
    /// Device rebuilt.
    pub device: String,
    /// Shard files written.
    pub shards: u64,
    /// Bytes written.
    pub bytes: u64,
    /// Blocks read back and verified after the rebuild.
    pub verified_blocks: u64,
    /// Stripes that could not be rebuilt (too few survivors).
    pub failed_stripes: u64,
}
