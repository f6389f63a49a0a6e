//! Entry points for the fuzz targets in `fuzz/` (not part of the engine's API).
//!
//! Each function feeds bytes through the engine's own decoders: the record-log reader, WAL
//! batch decoding and replay, SSTable open / iteration / point lookups, manifest edits and
//! `CURRENT`. The readers work on files, so the bytes are written to a fresh directory under
//! [`std::env::temp_dir`] (point `TMPDIR` at a tmpfs for speed) that is removed afterwards.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::batch::{decode_record, encode_record};
use crate::cache::BlockCache;
use crate::coding::{seek_ikey, split_ikey, MAX_SEQ};
use crate::db::{WAL_MAGIC, WAL_VERSION};
use crate::iter::InternalIterator;
use crate::manifest::{
    manifest_name, parse_name, read_current, table_name, FileKind, VersionSet, CURRENT,
};
use crate::manifest::{MANIFEST_MAGIC, MANIFEST_VERSION};
use crate::recordlog::{frame, read_log};
use crate::table::{BuildOptions, Table, TableBuilder, TableIter};
use crate::version::{AddedFile, VersionEdit};
use crate::{Db, Error, Options, WriteBatch};

/// A scratch directory removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new() -> Result<Scratch, Error> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("cairn-fuzz-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)?;
        Ok(Scratch(dir))
    }

    fn write(&self, name: &str, bytes: &[u8]) -> Result<PathBuf, Error> {
        let p = self.0.join(name);
        std::fs::write(&p, bytes)?;
        Ok(p)
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// One decoded operation of a WAL batch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    /// Sets the key to the value.
    Put(Vec<u8>, Vec<u8>),
    /// Removes the key.
    Delete(Vec<u8>),
}

/// One decoded WAL record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WalRecord {
    /// Sequence number of the first operation.
    pub seq: u64,
    /// The operations, in order.
    pub ops: Vec<Op>,
}

/// A WAL file as recovery reads it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WalContents {
    /// Every intact record, in order.
    pub records: Vec<WalRecord>,
    /// Offset of a torn tail, if the file ends in one.
    pub torn_at: Option<usize>,
}

fn ops_to_batch(ops: &[Op]) -> WriteBatch {
    let mut b = WriteBatch::new();
    for op in ops {
        match op {
            Op::Put(k, v) => b.put(k, v),
            Op::Delete(k) => b.delete(k),
        }
    }
    b
}

/// Encodes a WAL record payload (`seq | count | ops`) with the engine's encoder.
pub fn encode_wal_record(seq: u64, ops: &[Op]) -> Vec<u8> {
    let mut out = Vec::new();
    encode_record(&mut out, seq, &ops_to_batch(ops));
    out
}

/// Decodes one WAL record payload with the engine's decoder (`None` if malformed).
pub fn decode_wal_record(payload: &[u8]) -> Option<WalRecord> {
    let (seq, ops) = decode_record(payload)?;
    let ops = ops
        .into_iter()
        .map(|(kind, k, v)| match kind {
            crate::coding::KIND_PUT => Op::Put(k.to_vec(), v.to_vec()),
            _ => Op::Delete(k.to_vec()),
        })
        .collect();
    Some(WalRecord { seq, ops })
}

fn log_file(magic: &[u8; 4], version: u8, payloads: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut hdr = magic.to_vec();
    hdr.push(version);
    frame(&mut out, &hdr);
    for p in payloads {
        frame(&mut out, p);
    }
    out
}

/// A WAL file (header frame plus one crc32c frame per payload), framed by the engine.
pub fn wal_file(payloads: &[&[u8]]) -> Vec<u8> {
    log_file(WAL_MAGIC, WAL_VERSION, payloads)
}

/// A manifest file (header frame plus one frame per edit payload), framed by the engine.
pub fn manifest_file(payloads: &[&[u8]]) -> Vec<u8> {
    log_file(MANIFEST_MAGIC, MANIFEST_VERSION, payloads)
}

/// Reads `bytes` as a WAL file the way recovery does: the record-log reader (torn tail vs.
/// corruption) with batch validation, then every record decoded.
pub fn decode_wal(bytes: &[u8]) -> Result<WalContents, Error> {
    let dir = Scratch::new()?;
    let path = dir.write("000001.log", bytes)?;
    let valid = |p: &[u8]| decode_record(p).is_some();
    let c = read_log(&path, WAL_MAGIC, WAL_VERSION, &valid)?;
    let mut records = Vec::with_capacity(c.records.len());
    for i in 0..c.records.len() {
        let r = decode_wal_record(c.payload(i))
            .ok_or_else(|| Error::corruption(&path, "undecodable WAL record"))?;
        records.push(r);
    }
    Ok(WalContents {
        records,
        torn_at: c.torn_at,
    })
}

fn fuzz_options() -> Options {
    Options {
        sync: false,
        memtable_bytes: 64 << 10,
        block_bytes: 256,
        block_restart_interval: 4,
        block_cache_bytes: 1 << 20,
        background_compaction: false,
        ..Options::default()
    }
}

/// Files by name with their contents.
type NamedFiles = Vec<(String, Vec<u8>)>;

/// Key-value pairs in key order.
pub type Pairs = Vec<(Vec<u8>, Vec<u8>)>;

/// What `Table::get` answered: `(kind, value)` of the version found, if any.
pub type GetResult = Result<Option<(u8, Vec<u8>)>, Error>;

/// The files of a freshly created, empty database (CURRENT, manifest, an empty WAL), and
/// the WAL's name: made once with [`Db::open`].
fn empty_db() -> Result<&'static (NamedFiles, String), Error> {
    static EMPTY: std::sync::OnceLock<(NamedFiles, String)> = std::sync::OnceLock::new();
    if let Some(e) = EMPTY.get() {
        return Ok(e);
    }
    let dir = Scratch::new()?;
    Db::open(dir.path(), fuzz_options())?.close()?;
    let mut files = Vec::new();
    let mut wal = None;
    for e in std::fs::read_dir(dir.path())? {
        let e = e?;
        let name = e.file_name().to_string_lossy().into_owned();
        if name == "LOCK" {
            continue;
        }
        if matches!(parse_name(&name), Some(FileKind::Log(_))) {
            wal = wal.max(Some(name.clone()));
        }
        files.push((name, std::fs::read(e.path())?));
    }
    let wal = wal.ok_or_else(|| Error::corruption(dir.path(), "new database has no WAL"))?;
    Ok(EMPTY.get_or_init(|| (files, wal)))
}

/// Takes a freshly created database, replaces its (empty) write-ahead log with `wal`,
/// reopens it with [`Db::open`] (which replays the log) and returns every key-value pair it
/// then serves, in key order.
pub fn replay_wal(wal: &[u8]) -> Result<Pairs, Error> {
    let (files, wal_name) = empty_db()?;
    let dir = Scratch::new()?;
    for (name, bytes) in files {
        dir.write(name, if name == wal_name { wal } else { bytes })?;
    }
    let db = Db::open(dir.path(), fuzz_options())?;
    let mut out = Vec::new();
    for item in db.scan_prefix(b"") {
        let (k, v) = item?;
        out.push((k.to_vec(), v.to_vec()));
    }
    db.close()?;
    Ok(out)
}

/// One entry of a table: internal key split into user key, sequence and kind.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TableEntry {
    /// The internal key as stored.
    pub ikey: Vec<u8>,
    /// The value.
    pub value: Vec<u8>,
}

/// What reading a table yielded.
#[derive(Debug)]
pub struct TableContents {
    /// Entries in iteration order, up to the first error.
    pub entries: Vec<TableEntry>,
    /// The error that stopped iteration, if any.
    pub iter_error: Option<Error>,
    /// For each entry with a well-formed internal key and sequence <= [`MAX_SEQ`]:
    /// `(index, what Table::get answered for its user key at its sequence)`.
    pub gets: Vec<(usize, GetResult)>,
}

/// Builds a table with the engine's writer from `entries` (internal keys, in the order
/// given: the writer does not sort) with tiny blocks so that several are written.
pub fn build_table(entries: &[(Vec<u8>, Vec<u8>)], block_bytes: usize) -> Result<Vec<u8>, Error> {
    let dir = Scratch::new()?;
    let path = dir.path().join("000001.sst");
    let mut b = TableBuilder::create(
        &path,
        BuildOptions {
            block_bytes: block_bytes.max(1),
            restart_interval: 3,
            bloom_bits_per_key: 10,
        },
    )?;
    for (k, v) in entries {
        b.add(k, v)?;
    }
    b.finish()?;
    Ok(std::fs::read(&path)?)
}

/// The internal key for `(user, seq, kind)` (`user ++ be64(seq << 8 | kind)`).
pub fn internal_key(user: &[u8], seq: u64, kind: u8) -> Vec<u8> {
    crate::coding::make_ikey(user, seq, kind)
}

/// Opens `bytes` as an SSTable (footer, index and filter verified), iterates every entry,
/// looks each one up again with `Table::get`, and seeks to each of `probes` (internal keys).
pub fn decode_table(bytes: &[u8], probes: &[Vec<u8>]) -> Result<TableContents, Error> {
    let dir = Scratch::new()?;
    let path = dir.write("000001.sst", bytes)?;
    let table = Arc::new(Table::open(&path, 1, Arc::new(BlockCache::new(1 << 20)))?);
    let mut it = TableIter::new(table.clone());
    it.seek_to_first();
    let mut entries = Vec::new();
    while it.valid() {
        entries.push(TableEntry {
            ikey: it.key().to_vec(),
            value: it.value().to_vec(),
        });
        it.next();
    }
    let iter_error = it.take_error();
    let mut gets = Vec::new();
    for (i, e) in entries.iter().enumerate() {
        let Some((user, seq, _)) = split_ikey(&e.ikey) else {
            continue;
        };
        if seq > MAX_SEQ {
            continue;
        }
        let got = table
            .get(user, crate::bloom::hash(user), &seek_ikey(user, seq))
            .map(|o| o.map(|(k, v)| (k, v.to_vec())));
        gets.push((i, got));
    }
    for p in probes {
        let mut it = TableIter::new(table.clone());
        it.seek(p);
        let mut n = 0;
        while it.valid() && n < 4 {
            it.next();
            n += 1;
        }
        let _ = it.take_error();
    }
    Ok(TableContents {
        entries,
        iter_error,
        gets,
    })
}

/// A table added by a manifest edit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EditFile {
    /// Level (0..7).
    pub level: usize,
    /// File number.
    pub number: u64,
    /// File size in bytes.
    pub size: u64,
    /// Smallest internal key (at least 8 bytes).
    pub smallest: Vec<u8>,
    /// Largest internal key (at least 8 bytes).
    pub largest: Vec<u8>,
}

/// One manifest record.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Edit {
    /// The WAL number recovery starts from.
    pub log_number: Option<u64>,
    /// The next file number.
    pub next_file: Option<u64>,
    /// The last sequence number.
    pub last_seq: Option<u64>,
    /// Tables added.
    pub added: Vec<EditFile>,
    /// Tables removed, as `(level, number)`.
    pub deleted: Vec<(usize, u64)>,
}

impl From<VersionEdit> for Edit {
    fn from(e: VersionEdit) -> Edit {
        Edit {
            log_number: e.log_number,
            next_file: e.next_file,
            last_seq: e.last_seq,
            added: e
                .added
                .into_iter()
                .map(|a| EditFile {
                    level: a.level,
                    number: a.number,
                    size: a.size,
                    smallest: a.smallest,
                    largest: a.largest,
                })
                .collect(),
            deleted: e.deleted,
        }
    }
}

/// Encodes an edit with the engine's encoder.
pub fn encode_edit(e: &Edit) -> Vec<u8> {
    VersionEdit {
        log_number: e.log_number,
        next_file: e.next_file,
        last_seq: e.last_seq,
        added: e
            .added
            .iter()
            .map(|a| AddedFile {
                level: a.level,
                number: a.number,
                size: a.size,
                smallest: a.smallest.clone(),
                largest: a.largest.clone(),
            })
            .collect(),
        deleted: e.deleted.clone(),
    }
    .encode()
}

/// Decodes an edit payload with the engine's decoder (`None` if malformed).
pub fn decode_edit(payload: &[u8]) -> Option<Edit> {
    VersionEdit::decode(payload).map(Edit::from)
}

/// The state recovery rebuilt from a manifest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ManifestState {
    /// WAL number recovery starts from.
    pub log_number: u64,
    /// Next file number.
    pub next_file: u64,
    /// Last sequence number.
    pub last_seq: u64,
    /// Live tables as `(level, number)`, sorted.
    pub files: Vec<(usize, u64)>,
}

/// Recovers a database directory holding `manifest` as `MANIFEST-000001` (named by a valid
/// `CURRENT`) and `tables` as `<number>.sst`, with the engine's manifest recovery (which
/// also opens and verifies every live table).
pub fn recover_manifest(manifest: &[u8], tables: &[(u64, &[u8])]) -> Result<ManifestState, Error> {
    let dir = Scratch::new()?;
    let name = manifest_name(1);
    dir.write(&name, manifest)?;
    let current = format!("{name} {:08x}\n", crc32c::crc32c(name.as_bytes()));
    dir.write(CURRENT, current.as_bytes())?;
    for (n, bytes) in tables {
        dir.write(&table_name(*n), bytes)?;
    }
    let vs = VersionSet::recover(dir.path(), Arc::new(BlockCache::new(1 << 20)), u64::MAX)?
        .ok_or_else(|| Error::corruption(dir.path().join(CURRENT), "CURRENT vanished"))?;
    let mut files: Vec<(usize, u64)> = vs.current.all_files().map(|(l, f)| (l, f.number)).collect();
    files.sort_unstable();
    Ok(ManifestState {
        log_number: vs.log_number,
        next_file: vs.next_file,
        last_seq: vs.last_seq,
        files,
    })
}

/// Reads `bytes` as a `CURRENT` file: the manifest name it points at, or the error.
pub fn decode_current(bytes: &[u8]) -> Result<Option<String>, Error> {
    let dir = Scratch::new()?;
    dir.write(CURRENT, bytes)?;
    read_current(dir.path())
}

/// One SSTable block holding `entries` in the order given, built by the engine's block
/// builder (prefix compression and restart points every `restart_interval` entries).
pub fn build_block(entries: &[(&[u8], &[u8])], restart_interval: usize) -> Vec<u8> {
    let mut b = crate::block::BlockBuilder::new(restart_interval);
    for (k, v) in entries {
        b.add(k, v);
    }
    b.finish()
}

/// Number of levels a manifest edit may name.
pub const NUM_LEVELS: usize = crate::version::NUM_LEVELS;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hooks_read_what_the_engine_writes() {
        let ops = vec![
            Op::Put(b"a".to_vec(), b"1".to_vec()),
            Op::Delete(b"b".to_vec()),
        ];
        let rec = encode_wal_record(1, &ops);
        let wal = wal_file(&[&rec, &encode_wal_record(3, &ops[..1])]);
        let c = decode_wal(&wal).unwrap();
        assert_eq!(c.records.len(), 2);
        assert_eq!(c.records[0].ops, ops);
        assert_eq!(
            replay_wal(&wal).unwrap(),
            vec![(b"a".to_vec(), b"1".to_vec())]
        );

        let entries = vec![
            (internal_key(b"a", 2, 1), b"x".to_vec()),
            (internal_key(b"b", 1, 0), Vec::new()),
        ];
        let t = decode_table(&build_table(&entries, 16).unwrap(), &[]).unwrap();
        assert_eq!(t.entries.len(), 2);
        assert!(t.iter_error.is_none());

        let edit = Edit {
            log_number: Some(2),
            added: vec![EditFile {
                level: 1,
                number: 5,
                size: 10,
                smallest: internal_key(b"a", 2, 1),
                largest: internal_key(b"b", 1, 0),
            }],
            ..Edit::default()
        };
        let m = manifest_file(&[&encode_edit(&edit)]);
        let table = build_table(&entries, 4096).unwrap();
        let st = recover_manifest(&m, &[(5, &table)]).unwrap();
        assert_eq!(st.files, vec![(1, 5)]);
        assert!(recover_manifest(&m, &[]).is_err());
        assert!(decode_current(b"MANIFEST-000001 0\n").is_err());
    }

    /// Writes real WAL, SSTable, manifest and CURRENT files made by the engine into
    /// `$CAIRN_FUZZ_SEEDS/<target>/` (the fuzz corpus seeds).
    #[test]
    #[ignore = "writes fuzz seeds; run by hand"]
    fn write_fuzz_seeds() {
        let Some(out) = std::env::var_os("CAIRN_FUZZ_SEEDS") else {
            return;
        };
        let out = PathBuf::from(out);
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(dir.path(), fuzz_options()).unwrap();
        for i in 0..6u32 {
            let mut b = WriteBatch::new();
            b.put(format!("key-{i}"), format!("value-{i}"));
            if i % 2 == 1 {
                b.delete(format!("key-{}", i - 1));
            }
            db.write(b).unwrap();
        }
        db.flush().unwrap();
        db.put(b"after-flush", b"in the WAL").unwrap();
        db.close().unwrap();
        let put = |target: &str, name: &str, mode: u8, bytes: &[u8]| {
            let d = out.join(target);
            std::fs::create_dir_all(&d).unwrap();
            let mut v = vec![mode];
            v.extend_from_slice(bytes);
            std::fs::write(d.join(name), v).unwrap();
        };
        for e in std::fs::read_dir(dir.path()).unwrap() {
            let e = e.unwrap();
            let name = e.file_name().to_string_lossy().into_owned();
            let bytes = std::fs::read(e.path()).unwrap();
            match parse_name(&name) {
                Some(FileKind::Log(_)) if bytes.len() > 13 => {
                    put("metadata_wal", "seed-wal", 0, &bytes)
                }
                Some(FileKind::Table(_)) => put("metadata_sst", "seed-sst", 0, &bytes),
                Some(FileKind::Manifest(_)) => put("metadata_manifest", "seed-manifest", 0, &bytes),
                _ if name == CURRENT => put("metadata_manifest", "seed-current", 2, &bytes),
                _ => {}
            }
        }
    }
}
