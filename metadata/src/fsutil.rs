//! Small durable-filesystem helpers.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;

/// Fsyncs a directory so that creates, renames and unlinks inside it are durable.
pub(crate) fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Replaces `path` atomically with `bytes`: write a temp file, fsync it, rename it over
/// `path`, fsync the directory. A crash leaves either the old or the new content.
pub(crate) fn write_file_atomic(dir: &Path, name: &str, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = dir.join(format!("{name}.tmp"));
    {
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, dir.join(name))?;
    sync_dir(dir)
}
