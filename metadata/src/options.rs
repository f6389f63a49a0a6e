//! Tuning knobs.

/// Options for [`crate::Db::open`].
#[derive(Clone, Debug)]
pub struct Options {
    /// When true (the default) every write is fsynced (fdatasync) before `write` returns.
    /// When false writes are acknowledged once they are in the OS page cache (bulk loads).
    pub sync: bool,
    /// Size at which the active memtable is frozen and flushed to an SSTable.
    pub memtable_bytes: usize,
    /// Frozen memtables allowed to wait for flush before writers stall.
    pub max_immutable_memtables: usize,
    /// Target size of an SSTable data block before compression of keys.
    pub block_bytes: usize,
    /// Keys between restart points inside a data block.
    pub block_restart_interval: usize,
    /// Bloom filter bits per key (0 disables filters).
    pub bloom_bits_per_key: usize,
    /// Capacity of the shared data-block cache.
    pub block_cache_bytes: usize,
    /// Number of L0 tables that triggers an L0 -> L1 compaction.
    pub l0_compaction_trigger: usize,
    /// Size budget of level 1; each deeper level is `level_size_multiplier` times larger.
    pub l1_bytes: u64,
    /// Growth factor between consecutive levels.
    pub level_size_multiplier: u64,
    /// Target size of one compaction output table.
    pub target_file_bytes: u64,
    /// Manifest size that triggers writing a fresh manifest snapshot.
    pub max_manifest_bytes: u64,
    /// Run flushes and compactions on a background thread (true) or only when
    /// `flush`/`compact` are called (false; writers still flush when memtables pile up).
    pub background_compaction: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            sync: true,
            memtable_bytes: 64 << 20,
            max_immutable_memtables: 2,
            block_bytes: 4096,
            block_restart_interval: 16,
            bloom_bits_per_key: 10,
            block_cache_bytes: 256 << 20,
            l0_compaction_trigger: 4,
            l1_bytes: 256 << 20,
            level_size_multiplier: 10,
            target_file_bytes: 32 << 20,
            max_manifest_bytes: 4 << 20,
            background_compaction: true,
        }
    }
}
