//! Configuration of the data layout.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::error::{LayoutError, Result};

/// Configuration of a [`crate::DataStore`]. Geometry (`data_shards`,
/// `parity_shards`, `shard_block_bytes`) is recorded per stripe, so changing it
/// affects only stripes written afterwards.
#[derive(Clone, Debug)]
pub struct LayoutConfig {
    /// The two SLC mirror directories (write buffer).
    pub slc_dirs: Vec<PathBuf>,
    /// The QLC capacity directories; at least `data_shards + parity_shards`.
    pub qlc_dirs: Vec<PathBuf>,
    /// k: data shards per stripe.
    pub data_shards: usize,
    /// m: parity shards per stripe.
    pub parity_shards: usize,
    /// An SLC segment is sealed once it holds this many bytes.
    pub slc_segment_bytes: u64,
    /// Migration starts when SLC use passes this fraction of `slc_capacity_bytes`.
    pub slc_high_water: f64,
    /// Appends wait for migration when SLC use reaches this many bytes.
    pub slc_capacity_bytes: u64,
    /// Data older than this is migrated even below the high-water mark.
    pub migrate_after: Duration,
    /// Stripes whose live fraction falls below this are rewritten by reclaim.
    pub reclaim_live_fraction: f64,
    /// Use plain threaded I/O even where io_uring works (env `CAIRN_IO=threaded` does the same).
    pub force_threaded_io: bool,
    /// Size of one shard block on QLC (header included); a multiple of 64 KiB, at least 1 MiB.
    pub shard_block_bytes: u32,
    /// Most block rows in one stripe (each shard file holds `rows * shard_block_bytes`).
    pub max_stripe_rows: u32,
    /// Chunk size of the default fixed-size reducer.
    pub chunk_bytes: u32,
    /// How often background workers wake up when idle.
    pub worker_tick: Duration,
    /// Threads per device in the threaded I/O backend.
    pub threads_per_device: usize,
    /// Data reduction in the migration worker (FastCDC, dedup, similarity,
    /// zstd); `None` stores fixed-size raw chunks of `chunk_bytes`. Used by
    /// [`crate::DataStore::open`] when no reducer is passed explicitly.
    pub reduction: Option<crate::reduction::ReductionConfig>,
}

impl LayoutConfig {
    /// The default single-node layout: `root/slc0`, `root/slc1`, `root/qlc0..qlc5`, EC 4+2.
    pub fn single_node(root: &Path) -> Self {
        LayoutConfig {
            slc_dirs: vec![root.join("slc0"), root.join("slc1")],
            qlc_dirs: (0..6).map(|i| root.join(format!("qlc{i}"))).collect(),
            data_shards: 4,
            parity_shards: 2,
            slc_segment_bytes: 32 << 20,
            slc_high_water: 0.5,
            slc_capacity_bytes: 1 << 30,
            migrate_after: Duration::from_secs(30),
            reclaim_live_fraction: 0.5,
            force_threaded_io: false,
            shard_block_bytes: 1 << 20,
            max_stripe_rows: 8,
            chunk_bytes: 128 << 10,
            worker_tick: Duration::from_millis(500),
            threads_per_device: 2,
            reduction: Some(crate::reduction::ReductionConfig::default()),
        }
    }

    /// Checks the invariants the layout relies on.
    pub fn validate(&self) -> Result<()> {
        let bad = |s: &str| Err(LayoutError::Config(s.to_string()));
        if self.slc_dirs.len() != 2 {
            return bad("exactly two slc_dirs are required (mirror)");
        }
        if self.data_shards == 0 || self.parity_shards == 0 {
            return bad("data_shards and parity_shards must be at least 1");
        }
        if self.data_shards + self.parity_shards > 255 {
            return bad("at most 255 shards per stripe");
        }
        if self.qlc_dirs.len() < self.data_shards + self.parity_shards {
            return bad("need at least data_shards + parity_shards qlc_dirs");
        }
        if self.qlc_dirs.len() > u16::MAX as usize {
            return bad("too many qlc_dirs");
        }
        if self.shard_block_bytes < (1 << 20) || !self.shard_block_bytes.is_multiple_of(64 << 10) {
            return bad("shard_block_bytes must be a multiple of 64 KiB and at least 1 MiB");
        }
        if self.max_stripe_rows == 0 {
            return bad("max_stripe_rows must be at least 1");
        }
        let payload = self.shard_block_bytes as usize - crate::shard::BLOCK_HEADER;
        if self.chunk_bytes == 0 || self.chunk_bytes as usize > payload {
            return bad("chunk_bytes must be between 1 and the shard block payload");
        }
        if self.slc_segment_bytes < 4096 {
            return bad("slc_segment_bytes must be at least 4 KiB");
        }
        if self.slc_capacity_bytes < 2 * self.slc_segment_bytes {
            return bad("slc_capacity_bytes must hold at least two segments");
        }
        if !(0.0..=1.0).contains(&self.slc_high_water)
            || !(0.0..=1.0).contains(&self.reclaim_live_fraction)
        {
            return bad("slc_high_water and reclaim_live_fraction are fractions in 0..=1");
        }
        if let Some(r) = &self.reduction {
            if r.min_chunk == 0 || r.min_chunk > r.avg_chunk || r.avg_chunk > r.max_chunk {
                return bad("reduction chunk sizes must satisfy 0 < min <= avg <= max");
            }
            if !(1..=19).contains(&r.zstd_level) {
                return bad("reduction zstd_level must be in 1..=19");
            }
        }
        if self.threads_per_device == 0 {
            return bad("threads_per_device must be at least 1");
        }
        Ok(())
    }
}
