//! `cairn-metadata`: Cairn's log-structured key-value engine.
//!
//! Writes go to a group-committed, crc32c-framed write-ahead log and a lock-free memtable;
//! memtables are flushed to SSTables (checksummed blocks, prefix-compressed keys, bloom
//! filters, an index block and a versioned footer); a background thread runs leveled
//! compaction; a manifest of crc32c-framed version edits is the only record of which
//! tables are live. Reads and iterators work on snapshots and never wait for writers,
//! flushes or compactions. See `FORMAT.md` and `DESIGN.md` in this crate.

#![warn(missing_docs)]

mod batch;
mod block;
mod bloom;
mod cache;
mod coding;
mod compaction;
mod db;
mod error;
mod fsutil;
#[doc(hidden)]
pub mod fuzzing;
mod iter;
mod manifest;
mod memtable;
mod options;
mod recordlog;
mod snapshot;
mod table;
mod version;

pub use batch::{WriteBatch, MAX_BATCH_BYTES, MAX_KEY_BYTES, MAX_VALUE_BYTES};
pub use bytes::Bytes;
pub use db::{Db, Stats};
pub use error::Error;
pub use options::Options;
pub use snapshot::{DbIter, Snapshot};
