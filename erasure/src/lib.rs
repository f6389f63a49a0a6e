//! Cairn's data layout.
//!
//! Writes land as *extents* in a mirrored SLC log ([`slc`]) and are
//! acknowledged once durable on both mirrors. A background migration worker
//! ([`migrate`]) cuts committed extents into chunks through a [`Reducer`]
//! and packs them into Reed-Solomon stripes ([`shard`], [`codec`]) on QLC
//! devices. Reads go to wherever an extent is now, reconstructing from
//! parity when devices are missing or blocks fail their checksums
//! ([`qlc`]). Scrub, rebuild and repair live in [`maintain`]; GC and space
//! reclaim in [`gc`]. See DESIGN.md and FORMAT.md.

#![deny(missing_docs)]

pub mod codec;
pub mod config;
pub mod device;
pub mod error;
pub mod footprint;
#[doc(hidden)]
pub mod fuzzing;
pub mod gc;
pub mod io;
pub mod maintain;
pub mod migrate;
pub mod qlc;
pub mod records;
pub mod reduce;
pub mod reduction;
pub mod shard;
mod sink;
pub mod slc;
pub mod stats;
pub mod store;

pub use config::LayoutConfig;
pub use error::LayoutError;
pub use footprint::{Footprint, FootprintReader};
pub use io::IoBackend;
pub use reduce::{FixedChunker, ReducedChunk, Reducer, ENCODING_RAW};
pub use reduction::{ReductionConfig, SimilarityReducer};
pub use stats::{
    DeviceStatus, LayoutCounters, LayoutStatus, RebuildProgress, RebuildReport, ScrubReport,
};
pub use store::{DataStore, ExtentId, NewExtent, MAX_EXTENT_BYTES};
