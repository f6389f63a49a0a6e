//! Versions (the set of live tables per level) and version edits.

use std::sync::Arc;

use bytes::Bytes;

use crate::coding::{
    cmp_ikey, get_len_prefixed, get_varint, put_len_prefixed, put_varint, user_key,
};
use crate::error::Error;
use crate::iter::InternalIterator;
use crate::table::{Table, TableIter};

/// Number of levels (L0 .. L6).
pub(crate) const NUM_LEVELS: usize = 7;

/// A live table and its key range (internal keys).
pub(crate) struct FileMeta {
    pub(crate) number: u64,
    pub(crate) size: u64,
    pub(crate) smallest: Vec<u8>,
    pub(crate) largest: Vec<u8>,
    pub(crate) table: Arc<Table>,
}

impl FileMeta {
    /// True if the table's user-key range intersects `[lo, hi]`.
    pub(crate) fn overlaps(&self, lo: &[u8], hi: &[u8]) -> bool {
        user_key(&self.largest) >= lo && user_key(&self.smallest) <= hi
    }
}

/// An immutable set of live tables. L0 is ordered newest first (tables may overlap);
/// deeper levels are sorted by key and do not overlap.
#[derive(Clone, Default)]
pub(crate) struct Version {
    pub(crate) levels: [Vec<Arc<FileMeta>>; NUM_LEVELS],
}

impl Version {
    pub(crate) fn level_bytes(&self, level: usize) -> u64 {
        self.levels[level].iter().map(|f| f.size).sum()
    }

    pub(crate) fn all_files(&self) -> impl Iterator<Item = (usize, &Arc<FileMeta>)> {
        self.levels
            .iter()
            .enumerate()
            .flat_map(|(l, fs)| fs.iter().map(move |f| (l, f)))
    }

    /// The newest version of `user` visible at `seq` among the tables.
    /// `h` is `bloom::hash(user)`, `target` is `seek_ikey(user, seq)`.
    pub(crate) fn get(
        &self,
        user: &[u8],
        h: u64,
        target: &[u8],
    ) -> Result<Option<(u8, Bytes)>, Error> {
        for f in &self.levels[0] {
            if f.overlaps(user, user) {
                if let Some(r) = f.table.get(user, h, target)? {
                    return Ok(Some(r));
                }
            }
        }
        for files in &self.levels[1..] {
            if files.is_empty() {
                continue;
            }
            let i = files.partition_point(|f| cmp_ikey(&f.largest, target).is_lt());
            if let Some(f) = files.get(i) {
                if user_key(&f.smallest) <= user {
                    if let Some(r) = f.table.get(user, h, target)? {
                        return Ok(Some(r));
                    }
                }
            }
        }
        Ok(None)
    }

    /// Iterators over every table, newest data first.
    pub(crate) fn iters(&self, out: &mut Vec<Box<dyn InternalIterator>>) {
        for f in &self.levels[0] {
            out.push(Box::new(TableIter::new(f.table.clone())));
        }
        for files in &self.levels[1..] {
            if !files.is_empty() {
                out.push(Box::new(LevelIter::new(files.clone())));
            }
        }
    }

    /// Applies an edit, producing the next version. `opened` holds the tables added.
    pub(crate) fn apply(&self, edit: &VersionEdit, opened: &[Arc<FileMeta>]) -> Version {
        let mut v = self.clone();
        for (level, number) in &edit.deleted {
            v.levels[*level].retain(|f| f.number != *number);
        }
        for f in opened {
            if let Some(level) = edit
                .added
                .iter()
                .find(|a| a.number == f.number)
                .map(|a| a.level)
            {
                v.levels[level].push(f.clone());
            }
        }
        v.levels[0].sort_by_key(|f| std::cmp::Reverse(f.number));
        for files in &mut v.levels[1..] {
            files.sort_by(|a, b| cmp_ikey(&a.smallest, &b.smallest));
        }
        v
    }
}

/// Concatenating iterator over one sorted, non-overlapping level.
pub(crate) struct LevelIter {
    files: Vec<Arc<FileMeta>>,
    idx: usize,
    cur: Option<TableIter>,
    err: Option<Error>,
}

impl LevelIter {
    pub(crate) fn new(files: Vec<Arc<FileMeta>>) -> LevelIter {
        LevelIter {
            files,
            idx: 0,
            cur: None,
            err: None,
        }
    }

    fn open(&mut self, idx: usize) {
        self.idx = idx;
        self.cur = self.files.get(idx).map(|f| TableIter::new(f.table.clone()));
    }

    fn skip_empty(&mut self) {
        loop {
            let Some(c) = &mut self.cur else { return };
            if let Some(e) = c.take_error() {
                self.err = Some(e);
                self.cur = None;
                return;
            }
            if c.valid() {
                return;
            }
            self.open(self.idx + 1);
            if let Some(c) = &mut self.cur {
                c.seek_to_first();
            }
        }
    }
}

impl InternalIterator for LevelIter {
    fn seek(&mut self, target: &[u8]) {
        let i = self
            .files
            .partition_point(|f| cmp_ikey(&f.largest, target).is_lt());
        self.open(i);
        if let Some(c) = &mut self.cur {
            c.seek(target);
        }
        self.skip_empty();
    }
    fn seek_to_first(&mut self) {
        self.open(0);
        if let Some(c) = &mut self.cur {
            c.seek_to_first();
        }
        self.skip_empty();
    }
    fn valid(&self) -> bool {
        self.cur.as_ref().is_some_and(|c| c.valid())
    }
    fn key(&self) -> &[u8] {
        self.cur.as_ref().map_or(&[], |c| c.key())
    }
    fn value(&self) -> Bytes {
        self.cur.as_ref().map(|c| c.value()).unwrap_or_default()
    }
    fn next(&mut self) {
        if let Some(c) = &mut self.cur {
            c.next();
        }
        self.skip_empty();
    }
    fn take_error(&mut self) -> Option<Error> {
        self.err.take()
    }
}

/// A table added by an edit.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct AddedFile {
    pub(crate) level: usize,
    pub(crate) number: u64,
    pub(crate) size: u64,
    pub(crate) smallest: Vec<u8>,
    pub(crate) largest: Vec<u8>,
}

/// One manifest record: a change to the set of live files and counters.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct VersionEdit {
    pub(crate) log_number: Option<u64>,
    pub(crate) next_file: Option<u64>,
    pub(crate) last_seq: Option<u64>,
    pub(crate) added: Vec<AddedFile>,
    pub(crate) deleted: Vec<(usize, u64)>,
}

const TAG_LOG: u64 = 1;
const TAG_NEXT_FILE: u64 = 2;
const TAG_LAST_SEQ: u64 = 3;
const TAG_ADD: u64 = 4;
const TAG_DELETE: u64 = 5;

impl VersionEdit {
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut b = Vec::new();
        for (tag, v) in [
            (TAG_LOG, self.log_number),
            (TAG_NEXT_FILE, self.next_file),
            (TAG_LAST_SEQ, self.last_seq),
        ] {
            if let Some(v) = v {
                put_varint(&mut b, tag);
                put_varint(&mut b, v);
            }
        }
        for a in &self.added {
            put_varint(&mut b, TAG_ADD);
            put_varint(&mut b, a.level as u64);
            put_varint(&mut b, a.number);
            put_varint(&mut b, a.size);
            put_len_prefixed(&mut b, &a.smallest);
            put_len_prefixed(&mut b, &a.largest);
        }
        for (level, number) in &self.deleted {
            put_varint(&mut b, TAG_DELETE);
            put_varint(&mut b, *level as u64);
            put_varint(&mut b, *number);
        }
        b
    }

    /// `None` if the payload is not a well-formed edit.
    pub(crate) fn decode(b: &[u8]) -> Option<VersionEdit> {
        let mut e = VersionEdit::default();
        let mut p = 0;
        let level = |p: &mut usize| -> Option<usize> {
            let l = usize::try_from(get_varint(b, p)?).ok()?;
            (l < NUM_LEVELS).then_some(l)
        };
        while p < b.len() {
            match get_varint(b, &mut p)? {
                TAG_LOG => e.log_number = Some(get_varint(b, &mut p)?),
                TAG_NEXT_FILE => e.next_file = Some(get_varint(b, &mut p)?),
                TAG_LAST_SEQ => e.last_seq = Some(get_varint(b, &mut p)?),
                TAG_ADD => {
                    let level = level(&mut p)?;
                    let number = get_varint(b, &mut p)?;
                    let size = get_varint(b, &mut p)?;
                    let smallest = get_len_prefixed(b, &mut p)?.to_vec();
                    let largest = get_len_prefixed(b, &mut p)?.to_vec();
                    if smallest.len() < 8 || largest.len() < 8 {
                        return None;
                    }
                    e.added.push(AddedFile {
                        level,
                        number,
                        size,
                        smallest,
                        largest,
                    });
                }
                TAG_DELETE => {
                    let level = level(&mut p)?;
                    e.deleted.push((level, get_varint(b, &mut p)?));
                }
                _ => return None,
            }
        }
        Some(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edit_roundtrip() {
        let e = VersionEdit {
            log_number: Some(4),
            next_file: Some(9),
            last_seq: Some(1234),
            added: vec![AddedFile {
                level: 2,
                number: 7,
                size: 4096,
                smallest: vec![1; 12],
                largest: vec![2; 9],
            }],
            deleted: vec![(0, 3), (1, 5)],
        };
        assert_eq!(VersionEdit::decode(&e.encode()), Some(e.clone()));
        let enc = e.encode();
        assert!(VersionEdit::decode(&enc[..enc.len() - 1]).is_none());
    }
}
