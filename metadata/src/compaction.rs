//! Flushing memtables and leveled compaction.

use std::sync::Arc;

use crate::coding::{split_ikey, user_key, KIND_DELETE};
use crate::db::Inner;
use crate::error::Error;
use crate::fsutil::sync_dir;
use crate::iter::{InternalIterator, MergeIter};
use crate::manifest::table_name;
use crate::memtable::{MemIter, MemTable};
use crate::table::{Table, TableBuilder, TableIter};
use crate::version::{AddedFile, FileMeta, Version, VersionEdit, NUM_LEVELS};

/// Work chosen by the picker: merge `inputs` into `out_level`.
pub(crate) struct Compaction {
    pub(crate) inputs: Vec<(usize, Arc<FileMeta>)>,
    pub(crate) out_level: usize,
    /// A full compaction: never a trivial move, always drops tombstones.
    pub(crate) full: bool,
}

fn key_range(files: &[(usize, Arc<FileMeta>)]) -> (Vec<u8>, Vec<u8>) {
    let lo = files
        .iter()
        .map(|(_, f)| user_key(&f.smallest))
        .min()
        .unwrap_or_default()
        .to_vec();
    let hi = files
        .iter()
        .map(|(_, f)| user_key(&f.largest))
        .max()
        .unwrap_or_default()
        .to_vec();
    (lo, hi)
}

/// Size budget of `level` (>= 1).
pub(crate) fn level_target(inner: &Inner, level: usize) -> u64 {
    let mut t = inner.opts.l1_bytes.max(1);
    for _ in 1..level {
        t = t.saturating_mul(inner.opts.level_size_multiplier.max(2));
    }
    t
}

/// Picks the most urgent compaction, if any level is over budget.
pub(crate) fn pick(inner: &Inner, v: &Version, pointers: &mut [Vec<u8>]) -> Option<Compaction> {
    if v.levels[0].len() >= inner.opts.l0_compaction_trigger.max(1) {
        let mut inputs: Vec<(usize, Arc<FileMeta>)> =
            v.levels[0].iter().map(|f| (0, f.clone())).collect();
        let (lo, hi) = key_range(&inputs);
        inputs.extend(
            v.levels[1]
                .iter()
                .filter(|f| f.overlaps(&lo, &hi))
                .map(|f| (1, f.clone())),
        );
        return Some(Compaction {
            inputs,
            out_level: 1,
            full: false,
        });
    }
    for level in 1..NUM_LEVELS - 1 {
        if v.level_bytes(level) <= level_target(inner, level) {
            continue;
        }
        let files = &v.levels[level];
        let ptr = pointers.get(level).cloned().unwrap_or_default();
        let f = files
            .iter()
            .find(|f| ptr.is_empty() || f.smallest > ptr)
            .or_else(|| files.first())?
            .clone();
        if let Some(p) = pointers.get_mut(level) {
            *p = f.largest.clone();
        }
        let mut inputs = vec![(level, f.clone())];
        let lo = user_key(&f.smallest).to_vec();
        let hi = user_key(&f.largest).to_vec();
        inputs.extend(
            v.levels[level + 1]
                .iter()
                .filter(|g| g.overlaps(&lo, &hi))
                .map(|g| (level + 1, g.clone())),
        );
        return Some(Compaction {
            inputs,
            out_level: level + 1,
            full: false,
        });
    }
    None
}

/// Writes the entries of `it` into new tables of about `target` bytes each, keeping only
/// the newest version of each user key and dropping tombstones if `drop_tombstones`.
pub(crate) fn write_tables(
    inner: &Inner,
    it: &mut dyn InternalIterator,
    level: usize,
    drop_tombstones: bool,
    target: u64,
) -> Result<(Vec<AddedFile>, Vec<Arc<FileMeta>>), Error> {
    let mut added = Vec::new();
    let mut opened = Vec::new();
    let mut builder: Option<(u64, TableBuilder)> = None;
    let mut last_user: Option<Vec<u8>> = None;
    let result = (|| -> Result<(), Error> {
        it.seek_to_first();
        while it.valid() {
            let key = it.key();
            let (u, _, kind) = split_ikey(key)
                .ok_or_else(|| Error::corruption(&inner.dir, "short internal key"))?;
            if last_user.as_deref() == Some(u) {
                it.next();
                continue;
            }
            last_user = Some(u.to_vec());
            if kind == KIND_DELETE && drop_tombstones {
                it.next();
                continue;
            }
            if builder.is_none() {
                let n = inner.versions.lock().new_file_number();
                let b = TableBuilder::create(&inner.dir.join(table_name(n)), inner.build_opts())?;
                builder = Some((n, b));
            }
            if let Some((_, b)) = &mut builder {
                b.add(key, &it.value())?;
                if b.approx_size() >= target {
                    if let Some((n, b)) = builder.take() {
                        finish_table(inner, n, b, level, &mut added, &mut opened)?;
                    }
                }
            }
            it.next();
        }
        if let Some(e) = it.take_error() {
            return Err(e);
        }
        if let Some((n, b)) = builder.take() {
            finish_table(inner, n, b, level, &mut added, &mut opened)?;
        }
        sync_dir(&inner.dir)?;
        Ok(())
    })();
    if let Err(e) = result {
        if let Some((_, b)) = builder {
            let p = b.path().to_path_buf();
            drop(b);
            let _ = std::fs::remove_file(p);
        }
        for f in &opened {
            f.table.mark_obsolete();
        }
        return Err(e);
    }
    Ok((added, opened))
}

fn finish_table(
    inner: &Inner,
    number: u64,
    b: TableBuilder,
    level: usize,
    added: &mut Vec<AddedFile>,
    opened: &mut Vec<Arc<FileMeta>>,
) -> Result<(), Error> {
    if b.entries() == 0 {
        let p = b.path().to_path_buf();
        drop(b);
        std::fs::remove_file(p)?;
        return Ok(());
    }
    let path = b.path().to_path_buf();
    let info = b.finish()?;
    let table = Arc::new(Table::open(&path, number, inner.cache.clone())?);
    added.push(AddedFile {
        level,
        number,
        size: info.size,
        smallest: info.smallest.clone(),
        largest: info.largest.clone(),
    });
    opened.push(Arc::new(FileMeta {
        number,
        size: info.size,
        smallest: info.smallest,
        largest: info.largest,
        table,
    }));
    Ok(())
}

/// Writes a memtable as one L0 table (newest version per key, tombstones kept).
pub(crate) fn flush_memtable(
    inner: &Inner,
    mem: &Arc<MemTable>,
) -> Result<(Vec<AddedFile>, Vec<Arc<FileMeta>>), Error> {
    if mem.is_empty() {
        return Ok((Vec::new(), Vec::new()));
    }
    let mut it = MemIter::new(mem.clone());
    write_tables(inner, &mut it, 0, false, u64::MAX)
}

/// Runs one compaction and installs its result.
pub(crate) fn run(inner: &Inner, c: Compaction) -> Result<(), Error> {
    let v = inner.versions.lock().current.clone();
    let mut edit = VersionEdit::default();
    // A single input with nothing to merge against moves down without rewriting.
    if !c.full && c.inputs.len() == 1 && c.inputs[0].0 + 1 == c.out_level {
        let (level, f) = &c.inputs[0];
        edit.deleted.push((*level, f.number));
        edit.added.push(AddedFile {
            level: c.out_level,
            number: f.number,
            size: f.size,
            smallest: f.smallest.clone(),
            largest: f.largest.clone(),
        });
        let moved = Arc::new(FileMeta {
            number: f.number,
            size: f.size,
            smallest: f.smallest.clone(),
            largest: f.largest.clone(),
            table: f.table.clone(),
        });
        let next = inner.versions.lock().log_and_apply(edit, &[moved])?;
        inner.install_version(next);
        return Ok(());
    }
    let (lo, hi) = key_range(&c.inputs);
    let deeper_overlap = v.levels[c.out_level + 1..]
        .iter()
        .flatten()
        .any(|f| f.overlaps(&lo, &hi));
    let mut children: Vec<Box<dyn InternalIterator>> = Vec::new();
    let mut sorted = c.inputs.clone();
    // Newest first: L0 by descending number, then shallower levels before deeper ones.
    sorted.sort_by(|a, b| a.0.cmp(&b.0).then(b.1.number.cmp(&a.1.number)));
    for (_, f) in &sorted {
        children.push(Box::new(TableIter::new(f.table.clone())));
    }
    let mut merged = MergeIter::new(children);
    let (added, opened) = write_tables(
        inner,
        &mut merged,
        c.out_level,
        !deeper_overlap,
        inner.opts.target_file_bytes.max(1),
    )?;
    edit.deleted = c.inputs.iter().map(|(l, f)| (*l, f.number)).collect();
    edit.added = added;
    let next = inner.versions.lock().log_and_apply(edit, &opened);
    match next {
        Ok(v) => {
            inner.install_version(v);
            Ok(())
        }
        Err(e) => {
            for f in &opened {
                f.table.mark_obsolete();
            }
            Err(e)
        }
    }
}

/// Everything merged into the last level.
pub(crate) fn full(v: &Version) -> Option<Compaction> {
    let inputs: Vec<(usize, Arc<FileMeta>)> = v.all_files().map(|(l, f)| (l, f.clone())).collect();
    if inputs.is_empty() {
        return None;
    }
    Some(Compaction {
        inputs,
        out_level: NUM_LEVELS - 1,
        full: true,
    })
}
