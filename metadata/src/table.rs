//! SSTables: immutable sorted files of internal keys.
//!
//! Layout: `data block + crc32c`* | `filter block + crc32c` | `index block + crc32c` |
//! footer (48 bytes). See FORMAT.md.

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use bytes::Bytes;

use crate::block::{Block, BlockBuilder, BlockIter};
use crate::bloom;
use crate::cache::BlockCache;
use crate::coding::{get_u32, get_u64, get_varint, put_varint, split_ikey, user_key};
use crate::error::Error;
use crate::iter::InternalIterator;

/// Magic number at the end of every SSTable ("CAIRNSST" little-endian).
pub(crate) const TABLE_MAGIC: u64 = u64::from_le_bytes(*b"CAIRNSST");
/// Current SSTable format version.
pub(crate) const TABLE_VERSION: u8 = 1;
/// Footer length in bytes.
pub(crate) const FOOTER_LEN: usize = 48;

/// Location of a block inside a table (length excludes the 4-byte crc).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Handle {
    pub(crate) offset: u64,
    pub(crate) len: u64,
}

/// Settings for building a table.
#[derive(Clone, Copy)]
pub(crate) struct BuildOptions {
    pub(crate) block_bytes: usize,
    pub(crate) restart_interval: usize,
    pub(crate) bloom_bits_per_key: usize,
}

/// What a finished table contains.
#[derive(Clone, Debug)]
pub(crate) struct TableInfo {
    pub(crate) size: u64,
    pub(crate) smallest: Vec<u8>,
    pub(crate) largest: Vec<u8>,
}

/// Writes a table; entries must be added in internal-key order.
pub(crate) struct TableBuilder {
    out: BufWriter<File>,
    path: PathBuf,
    offset: u64,
    opts: BuildOptions,
    data: BlockBuilder,
    index: BlockBuilder,
    hashes: Vec<u64>,
    last_user: Vec<u8>,
    smallest: Option<Vec<u8>>,
    largest: Vec<u8>,
    entries: u64,
}

impl TableBuilder {
    pub(crate) fn create(path: &Path, opts: BuildOptions) -> Result<TableBuilder, Error> {
        let f = OpenOptions::new().write(true).create_new(true).open(path)?;
        Ok(TableBuilder {
            out: BufWriter::with_capacity(1 << 20, f),
            path: path.to_path_buf(),
            offset: 0,
            opts,
            data: BlockBuilder::new(opts.restart_interval),
            index: BlockBuilder::new(1),
            hashes: Vec::new(),
            last_user: Vec::new(),
            smallest: None,
            largest: Vec::new(),
            entries: 0,
        })
    }

    pub(crate) fn add(&mut self, ikey: &[u8], value: &[u8]) -> Result<(), Error> {
        let u = user_key(ikey);
        if self.entries == 0 || u != self.last_user.as_slice() {
            self.hashes.push(bloom::hash(u));
            self.last_user.clear();
            self.last_user.extend_from_slice(u);
        }
        if self.smallest.is_none() {
            self.smallest = Some(ikey.to_vec());
        }
        self.largest.clear();
        self.largest.extend_from_slice(ikey);
        self.data.add(ikey, value);
        self.entries += 1;
        if self.data.estimated_size() >= self.opts.block_bytes {
            self.flush_block()?;
        }
        Ok(())
    }

    /// Bytes written so far (a lower bound of the final size).
    pub(crate) fn approx_size(&self) -> u64 {
        self.offset + self.data.estimated_size() as u64
    }

    pub(crate) fn entries(&self) -> u64 {
        self.entries
    }

    fn write_block(&mut self, contents: &[u8]) -> Result<Handle, Error> {
        let h = Handle {
            offset: self.offset,
            len: contents.len() as u64,
        };
        self.out.write_all(contents)?;
        self.out
            .write_all(&crc32c::crc32c(contents).to_le_bytes())?;
        self.offset += contents.len() as u64 + 4;
        Ok(h)
    }

    fn flush_block(&mut self) -> Result<(), Error> {
        if self.data.is_empty() {
            return Ok(());
        }
        let last = self.data.last_key().to_vec();
        let contents = self.data.finish();
        let h = self.write_block(&contents)?;
        let mut hv = Vec::with_capacity(10);
        put_varint(&mut hv, h.offset);
        put_varint(&mut hv, h.len);
        self.index.add(&last, &hv);
        Ok(())
    }

    /// Writes filter, index and footer, fsyncs, and returns the table's summary.
    pub(crate) fn finish(mut self) -> Result<TableInfo, Error> {
        self.flush_block()?;
        let filter = bloom::build(&self.hashes, self.opts.bloom_bits_per_key.max(1));
        let fh = self.write_block(&filter)?;
        let index = self.index.finish();
        let ih = self.write_block(&index)?;
        let mut footer = Vec::with_capacity(FOOTER_LEN);
        footer.extend_from_slice(&fh.offset.to_le_bytes());
        footer.extend_from_slice(&(fh.len as u32).to_le_bytes());
        footer.extend_from_slice(&ih.offset.to_le_bytes());
        footer.extend_from_slice(&(ih.len as u32).to_le_bytes());
        footer.extend_from_slice(&self.entries.to_le_bytes());
        footer.extend_from_slice(&[TABLE_VERSION, 0, 0, 0]);
        footer.extend_from_slice(&TABLE_MAGIC.to_le_bytes());
        let crc = crc32c::crc32c(&footer);
        footer.extend_from_slice(&crc.to_le_bytes());
        self.out.write_all(&footer)?;
        self.offset += footer.len() as u64;
        let f = self
            .out
            .into_inner()
            .map_err(|e| Error::Io(e.into_error()))?;
        f.sync_all()?;
        Ok(TableInfo {
            size: self.offset,
            smallest: self.smallest.unwrap_or_default(),
            largest: self.largest,
        })
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }
}

/// An open, verified table. Deletes its file on drop once marked obsolete.
pub(crate) struct Table {
    number: u64,
    file: File,
    path: PathBuf,
    index: Block,
    filter: Bytes,
    cache: Arc<BlockCache>,
    obsolete: AtomicBool,
}

impl Table {
    /// Opens a table and verifies its footer, index and filter blocks.
    pub(crate) fn open(path: &Path, number: u64, cache: Arc<BlockCache>) -> Result<Table, Error> {
        let file = File::open(path)?;
        let size = file.metadata()?.len();
        let bad = |d: &str| Error::corruption(path, d.to_string());
        if size < FOOTER_LEN as u64 {
            return Err(bad("file shorter than the footer"));
        }
        let mut footer = [0u8; FOOTER_LEN];
        file.read_exact_at(&mut footer, size - FOOTER_LEN as u64)?;
        let crc = get_u32(&footer, 44).unwrap_or(0);
        if crc32c::crc32c(&footer[..44]) != crc {
            return Err(bad("footer checksum mismatch"));
        }
        if get_u64(&footer, 36) != Some(TABLE_MAGIC) {
            return Err(bad("bad table magic"));
        }
        if footer[32] != TABLE_VERSION {
            return Err(bad(&format!("unsupported table version {}", footer[32])));
        }
        let fh = Handle {
            offset: get_u64(&footer, 0).unwrap_or(0),
            len: u64::from(get_u32(&footer, 8).unwrap_or(0)),
        };
        let ih = Handle {
            offset: get_u64(&footer, 12).unwrap_or(0),
            len: u64::from(get_u32(&footer, 20).unwrap_or(0)),
        };
        let limit = size - FOOTER_LEN as u64;
        for h in [fh, ih] {
            if h.offset.checked_add(h.len + 4).is_none_or(|e| e > limit) {
                return Err(bad("block handle out of range"));
            }
        }
        let filter = read_raw(&file, path, fh)?;
        let index =
            Block::parse(read_raw(&file, path, ih)?).ok_or_else(|| bad("bad index block"))?;
        Ok(Table {
            number,
            file,
            path: path.to_path_buf(),
            index,
            filter,
            cache,
            obsolete: AtomicBool::new(false),
        })
    }

    /// Deletes the file when the last reference goes away.
    pub(crate) fn mark_obsolete(&self) {
        self.obsolete.store(true, Ordering::Release);
    }

    fn corruption(&self, d: &str) -> Error {
        Error::corruption(&self.path, d.to_string())
    }

    fn decode_handle(&self, v: &[u8]) -> Result<Handle, Error> {
        let mut p = 0;
        match (get_varint(v, &mut p), get_varint(v, &mut p)) {
            (Some(offset), Some(len)) => Ok(Handle { offset, len }),
            _ => Err(self.corruption("bad block handle in index")),
        }
    }

    fn read_block(&self, h: Handle) -> Result<Block, Error> {
        let key = (self.number, h.offset);
        if let Some(b) = self.cache.get(key) {
            return Ok(b);
        }
        let raw = read_raw(&self.file, &self.path, h)?;
        let b = Block::parse(raw).ok_or_else(|| self.corruption("bad data block"))?;
        self.cache.insert(key, b.clone());
        Ok(b)
    }

    /// The newest version of `user` with sequence <= `seq`: `(kind, value)`;
    /// `h` is `bloom::hash(user)` and `target` is `seek_ikey(user, seq)`.
    pub(crate) fn get(
        &self,
        user: &[u8],
        h: u64,
        target: &[u8],
    ) -> Result<Option<(u8, Bytes)>, Error> {
        if !bloom::may_contain(&self.filter, h) {
            return Ok(None);
        }
        let mut ii = self.index.iter();
        ii.seek(target);
        if ii.corrupt() {
            return Err(self.corruption("bad index entry"));
        }
        if !ii.valid() {
            return Ok(None);
        }
        let h = self.decode_handle(ii.value_slice())?;
        let block = self.read_block(h)?;
        let mut bi = block.iter();
        bi.seek(target);
        if bi.corrupt() {
            return Err(self.corruption("bad data block entry"));
        }
        if !bi.valid() {
            return Ok(None);
        }
        match split_ikey(bi.key()) {
            Some((u, _, kind)) if u == user => Ok(Some((kind, bi.value()))),
            Some(_) => Ok(None),
            None => Err(self.corruption("short internal key")),
        }
    }
}

impl Drop for Table {
    fn drop(&mut self) {
        if self.obsolete.load(Ordering::Acquire) {
            if let Err(e) = std::fs::remove_file(&self.path) {
                tracing::warn!("removing obsolete table {}: {e}", self.path.display());
            }
        }
    }
}

/// Reads a block and verifies its crc32c.
fn read_raw(file: &File, path: &Path, h: Handle) -> Result<Bytes, Error> {
    let len = usize::try_from(h.len).map_err(|_| Error::corruption(path, "block too large"))?;
    let mut buf = vec![0u8; len + 4];
    file.read_exact_at(&mut buf, h.offset).map_err(|e| {
        if e.kind() == std::io::ErrorKind::UnexpectedEof {
            Error::corruption(path, "block extends past end of file")
        } else {
            Error::Io(e)
        }
    })?;
    let crc = get_u32(&buf, len).unwrap_or(0);
    buf.truncate(len);
    if crc32c::crc32c(&buf) != crc {
        return Err(Error::corruption(
            path,
            format!("block checksum mismatch at offset {}", h.offset),
        ));
    }
    Ok(Bytes::from(buf))
}

/// Iterator over one table.
pub(crate) struct TableIter {
    table: Arc<Table>,
    index: BlockIter,
    data: Option<BlockIter>,
    err: Option<Error>,
}

impl TableIter {
    pub(crate) fn new(table: Arc<Table>) -> TableIter {
        let index = table.index.iter();
        TableIter {
            table,
            index,
            data: None,
            err: None,
        }
    }

    fn load_block(&mut self) {
        self.data = None;
        if self.index.corrupt() {
            self.err = Some(self.table.corruption("bad index entry"));
            return;
        }
        if !self.index.valid() {
            return;
        }
        match self
            .table
            .decode_handle(self.index.value_slice())
            .and_then(|h| self.table.read_block(h))
        {
            Ok(b) => self.data = Some(b.iter()),
            Err(e) => self.err = Some(e),
        }
    }

    /// Moves forward over exhausted blocks.
    fn skip_forward(&mut self) {
        loop {
            match &self.data {
                Some(d) if d.corrupt() => {
                    self.err = Some(self.table.corruption("bad data block entry"));
                    self.data = None;
                    return;
                }
                Some(d) if d.valid() => return,
                Some(_) => {
                    self.index.next();
                    self.load_block();
                    if let Some(d) = &mut self.data {
                        d.seek_to_first();
                    }
                }
                None => return,
            }
        }
    }
}

impl InternalIterator for TableIter {
    fn seek(&mut self, target: &[u8]) {
        if self.err.is_some() {
            return;
        }
        self.index.seek(target);
        self.load_block();
        if let Some(d) = &mut self.data {
            d.seek(target);
        }
        self.skip_forward();
    }
    fn seek_to_first(&mut self) {
        if self.err.is_some() {
            return;
        }
        self.index.seek_to_first();
        self.load_block();
        if let Some(d) = &mut self.data {
            d.seek_to_first();
        }
        self.skip_forward();
    }
    fn valid(&self) -> bool {
        self.err.is_none() && self.data.as_ref().is_some_and(BlockIter::valid)
    }
    fn key(&self) -> &[u8] {
        self.data.as_ref().map_or(&[], BlockIter::key)
    }
    fn value(&self) -> Bytes {
        self.data.as_ref().map(BlockIter::value).unwrap_or_default()
    }
    fn next(&mut self) {
        if let Some(d) = &mut self.data {
            d.next();
        }
        self.skip_forward();
    }
    fn take_error(&mut self) -> Option<Error> {
        let e = self.err.take();
        if e.is_some() {
            self.data = None;
        }
        e
    }
}
