//! Typed errors of the data layout.

use std::io;

/// Every failure the layout reports. A read never returns wrong bytes: it
/// returns the verified bytes or one of these.
#[derive(thiserror::Error, Debug)]
pub enum LayoutError {
    /// An operating-system I/O error on a device file.
    #[error("I/O error on {context}: {source}")]
    Io {
        /// What was being done (path or operation).
        context: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// Stored bytes or records failed verification (checksum, magic, version).
    #[error("corruption: {0}")]
    Corruption(String),
    /// Too many shards are missing or damaged to reconstruct the data.
    #[error(
        "unrecoverable: stripe {stripe} has only {available} good shards of the {needed} needed"
    )]
    Unrecoverable {
        /// The stripe that could not be decoded.
        stripe: u64,
        /// Shards that were readable and verified.
        available: usize,
        /// Shards needed (k).
        needed: usize,
    },
    /// An append larger than [`crate::MAX_EXTENT_BYTES`].
    #[error("extent of {len} bytes exceeds the maximum of {max}")]
    TooLarge {
        /// Requested length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The extent (or another named object) does not exist.
    #[error("not found: {0}")]
    NotFound(String),
    /// A read range outside the extent.
    #[error("range {offset}+{len} is outside an extent of {extent_len} bytes")]
    Range {
        /// Requested offset.
        offset: u64,
        /// Requested length.
        len: u64,
        /// The extent's length.
        extent_len: u64,
    },
    /// A device is absent, foreign or in the wrong state for the operation.
    #[error("device {device}: {reason}")]
    Device {
        /// Device id (e.g. `qlc3`).
        device: String,
        /// Why.
        reason: String,
    },
    /// Invalid configuration.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// The store is shutting down or its workers are gone.
    #[error("the data store is shut down")]
    Shutdown,
    /// An error from the metadata engine.
    #[error("metadata: {0}")]
    Metadata(#[from] cairn_metadata::Error),
}

impl LayoutError {
    /// Wraps an I/O error with context.
    pub fn io(context: impl Into<String>, source: io::Error) -> Self {
        LayoutError::Io {
            context: context.into(),
            source,
        }
    }
}

/// Result alias for the layout.
pub type Result<T, E = LayoutError> = std::result::Result<T, E>;
