//! The engine's typed error.

use std::path::PathBuf;

/// Every failure the engine reports.
#[derive(thiserror::Error, Debug)]
pub enum Error {
    /// An operating-system I/O error.
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// Persisted bytes failed a checksum or structural check; nothing from them was served.
    #[error("corruption in {file}: {detail}")]
    Corruption {
        /// The damaged file.
        file: PathBuf,
        /// What was wrong.
        detail: String,
    },
    /// The caller passed something the engine refuses (e.g. an oversized key or value).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// The database was closed, or an earlier fatal error stopped it from accepting writes.
    #[error("database is closed")]
    Closed,
    /// Another process (or handle) holds the database directory lock.
    #[error("database directory is locked by another user: {0}")]
    Locked(PathBuf),
    /// A background flush or compaction failed; the engine stops accepting writes.
    #[error("background work failed: {0}")]
    Background(String),
}

impl Error {
    pub(crate) fn corruption(file: impl Into<PathBuf>, detail: impl Into<String>) -> Error {
        Error::Corruption {
            file: file.into(),
            detail: detail.into(),
        }
    }

    /// A copy of this error for reporting one failure to several waiters.
    pub(crate) fn duplicate(&self) -> Error {
        match self {
            Error::Io(e) => Error::Io(std::io::Error::new(e.kind(), e.to_string())),
            Error::Corruption { file, detail } => Error::Corruption {
                file: file.clone(),
                detail: detail.clone(),
            },
            Error::InvalidArgument(s) => Error::InvalidArgument(s.clone()),
            Error::Closed => Error::Closed,
            Error::Locked(p) => Error::Locked(p.clone()),
            Error::Background(s) => Error::Background(s.clone()),
        }
    }
}
