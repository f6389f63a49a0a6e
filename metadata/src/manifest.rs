//! The manifest: the only source of truth for which tables are live.
//!
//! `CURRENT` names the live manifest (`MANIFEST-NNNNNN <crc32c hex>\n`, replaced by
//! write-temp + fsync + rename + fsync-dir). A manifest is a record log whose first record
//! is a full snapshot edit and whose later records are deltas.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::cache::BlockCache;
use crate::error::Error;
use crate::fsutil::{sync_dir, write_file_atomic};
use crate::recordlog::{frame, read_log, LogWriter};
use crate::table::Table;
use crate::version::{AddedFile, FileMeta, Version, VersionEdit};

pub(crate) const MANIFEST_MAGIC: &[u8; 4] = b"CMAN";
pub(crate) const MANIFEST_VERSION: u8 = 1;
pub(crate) const CURRENT: &str = "CURRENT";

pub(crate) fn manifest_name(n: u64) -> String {
    format!("MANIFEST-{n:06}")
}
pub(crate) fn table_name(n: u64) -> String {
    format!("{n:06}.sst")
}
pub(crate) fn log_name(n: u64) -> String {
    format!("{n:06}.log")
}

/// Files the engine recognises in its directory.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub(crate) enum FileKind {
    Log(u64),
    Table(u64),
    Manifest(u64),
    Temp,
}

pub(crate) fn parse_name(name: &str) -> Option<FileKind> {
    if let Some(n) = name.strip_prefix("MANIFEST-") {
        return n.parse().ok().map(FileKind::Manifest);
    }
    if name.ends_with(".tmp") {
        return Some(FileKind::Temp);
    }
    if let Some(n) = name.strip_suffix(".sst") {
        return n.parse().ok().map(FileKind::Table);
    }
    if let Some(n) = name.strip_suffix(".log") {
        return n.parse().ok().map(FileKind::Log);
    }
    None
}

/// The live version plus the counters persisted with it, and the open manifest.
pub(crate) struct VersionSet {
    dir: PathBuf,
    cache: Arc<BlockCache>,
    pub(crate) current: Arc<Version>,
    log: Option<LogWriter>,
    manifest_number: u64,
    pub(crate) next_file: u64,
    pub(crate) log_number: u64,
    pub(crate) last_seq: u64,
    max_manifest_bytes: u64,
    pub(crate) compact_pointer: Vec<Vec<u8>>,
}

pub(crate) fn read_current(dir: &Path) -> Result<Option<String>, Error> {
    let path = dir.join(CURRENT);
    let text = match std::fs::read(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let bad = || Error::corruption(&path, "malformed CURRENT");
    let s = std::str::from_utf8(&text).map_err(|_| bad())?;
    let s = s.strip_suffix('\n').ok_or_else(bad)?;
    let (name, crc) = s.split_once(' ').ok_or_else(bad)?;
    let crc = u32::from_str_radix(crc, 16).map_err(|_| bad())?;
    if crc32c::crc32c(name.as_bytes()) != crc
        || !matches!(parse_name(name), Some(FileKind::Manifest(_)))
    {
        return Err(Error::corruption(&path, "CURRENT checksum mismatch"));
    }
    Ok(Some(name.to_string()))
}

impl VersionSet {
    /// An empty set for a new database (nothing on disk until `write_snapshot`).
    pub(crate) fn empty(dir: &Path, cache: Arc<BlockCache>, max_manifest_bytes: u64) -> VersionSet {
        VersionSet {
            dir: dir.to_path_buf(),
            cache,
            current: Arc::new(Version::default()),
            log: None,
            manifest_number: 0,
            next_file: 1,
            log_number: 0,
            last_seq: 0,
            max_manifest_bytes,
            compact_pointer: vec![Vec::new(); crate::version::NUM_LEVELS],
        }
    }

    /// Loads the state named by CURRENT; `Ok(None)` if there is no CURRENT.
    /// Every referenced table is opened and its footer, index and filter verified.
    pub(crate) fn recover(
        dir: &Path,
        cache: Arc<BlockCache>,
        max_manifest_bytes: u64,
    ) -> Result<Option<VersionSet>, Error> {
        let Some(name) = read_current(dir)? else {
            return Ok(None);
        };
        let path = dir.join(&name);
        let Some(FileKind::Manifest(manifest_number)) = parse_name(&name) else {
            return Err(Error::corruption(dir.join(CURRENT), "bad manifest name"));
        };
        if !path.exists() {
            return Err(Error::corruption(
                &path,
                "manifest named by CURRENT is missing",
            ));
        }
        let valid = |p: &[u8]| VersionEdit::decode(p).is_some();
        let contents = read_log(&path, MANIFEST_MAGIC, MANIFEST_VERSION, &valid)?;
        if contents.records.is_empty() {
            return Err(Error::corruption(&path, "manifest has no snapshot record"));
        }
        let mut vs = VersionSet::empty(dir, cache, max_manifest_bytes);
        vs.manifest_number = manifest_number;
        let mut files: BTreeMap<u64, AddedFile> = BTreeMap::new();
        for i in 0..contents.records.len() {
            let e = VersionEdit::decode(contents.payload(i))
                .ok_or_else(|| Error::corruption(&path, "undecodable edit"))?;
            if let Some(v) = e.log_number {
                vs.log_number = v;
            }
            if let Some(v) = e.next_file {
                vs.next_file = v;
            }
            if let Some(v) = e.last_seq {
                vs.last_seq = v;
            }
            for (level, number) in &e.deleted {
                match files.remove(number) {
                    Some(f) if f.level == *level => {}
                    _ => {
                        return Err(Error::corruption(
                            &path,
                            format!("edit deletes unknown table {number} at L{level}"),
                        ))
                    }
                }
            }
            for a in e.added {
                files.insert(a.number, a);
            }
        }
        let mut v = Version::default();
        for a in files.values() {
            let tpath = dir.join(table_name(a.number));
            if !tpath.exists() {
                return Err(Error::corruption(&tpath, "live table is missing"));
            }
            let table = Arc::new(Table::open(&tpath, a.number, vs.cache.clone())?);
            v.levels[a.level].push(Arc::new(FileMeta {
                number: a.number,
                size: a.size,
                smallest: a.smallest.clone(),
                largest: a.largest.clone(),
                table,
            }));
        }
        let v = v.apply(&VersionEdit::default(), &[]);
        vs.current = Arc::new(v);
        Ok(Some(vs))
    }

    pub(crate) fn new_file_number(&mut self) -> u64 {
        let n = self.next_file;
        self.next_file += 1;
        n
    }

    fn snapshot_edit(&self) -> VersionEdit {
        VersionEdit {
            log_number: Some(self.log_number),
            next_file: Some(self.next_file),
            last_seq: Some(self.last_seq),
            added: self
                .current
                .all_files()
                .map(|(level, f)| AddedFile {
                    level,
                    number: f.number,
                    size: f.size,
                    smallest: f.smallest.clone(),
                    largest: f.largest.clone(),
                })
                .collect(),
            deleted: Vec::new(),
        }
    }

    /// Writes a fresh manifest holding the whole current state, points CURRENT at it and
    /// deletes the previous manifest.
    pub(crate) fn write_snapshot(&mut self) -> Result<(), Error> {
        let number = self.new_file_number();
        let path = self.dir.join(manifest_name(number));
        let mut w = LogWriter::create(&path, MANIFEST_MAGIC, MANIFEST_VERSION)?;
        let mut buf = Vec::new();
        frame(&mut buf, &self.snapshot_edit().encode());
        w.append_framed(&buf)?;
        w.sync()?;
        sync_dir(&self.dir)?;
        let name = manifest_name(number);
        let current = format!("{name} {:08x}\n", crc32c::crc32c(name.as_bytes()));
        write_file_atomic(&self.dir, CURRENT, current.as_bytes())?;
        let old = self.manifest_number;
        self.log = Some(w);
        self.manifest_number = number;
        if old != 0 {
            match std::fs::remove_file(self.dir.join(manifest_name(old))) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    pub(crate) fn manifest_number(&self) -> u64 {
        self.manifest_number
    }

    /// Durably records `edit` (tables in `opened` must already be fsynced), then installs
    /// the resulting version. Tables the edit deletes are marked obsolete only after the
    /// edit is durable; their files disappear when the last reader lets go.
    pub(crate) fn log_and_apply(
        &mut self,
        mut edit: VersionEdit,
        opened: &[Arc<FileMeta>],
    ) -> Result<Arc<Version>, Error> {
        if let Some(l) = edit.log_number {
            self.log_number = l;
        }
        if let Some(s) = edit.last_seq {
            self.last_seq = self.last_seq.max(s);
            edit.last_seq = Some(self.last_seq);
        }
        edit.next_file = Some(self.next_file);
        let next = Arc::new(self.current.apply(&edit, opened));
        let dead: Vec<Arc<FileMeta>> = self
            .current
            .all_files()
            .filter(|(l, f)| {
                edit.deleted.contains(&(*l, f.number))
                    && !edit.added.iter().any(|a| a.number == f.number)
            })
            .map(|(_, f)| f.clone())
            .collect();
        let log = self
            .log
            .as_mut()
            .ok_or_else(|| Error::Background("manifest is not open".into()))?;
        let mut buf = Vec::new();
        frame(&mut buf, &edit.encode());
        log.append_framed(&buf)?;
        log.sync()?;
        self.current = next;
        for f in dead {
            f.table.mark_obsolete();
        }
        if self.log.as_ref().map_or(0, LogWriter::size) > self.max_manifest_bytes {
            self.write_snapshot()?;
        }
        Ok(self.current.clone())
    }
}
