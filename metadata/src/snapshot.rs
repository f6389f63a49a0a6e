//! Point-in-time views and the user-facing iterator.

use std::ops::Bound;
use std::sync::Arc;

use bytes::Bytes;

use crate::bloom;
use crate::coding::{seek_ikey, split_ikey, KIND_PUT};
use crate::error::Error;
use crate::iter::{InternalIterator, MergeIter};
use crate::memtable::{IKey, MemIter, MemTable};
use crate::version::Version;

/// What a reader needs: the memtables and the table set, all immutable or append-only.
pub(crate) struct ReadState {
    pub(crate) mem: Arc<MemTable>,
    /// Frozen memtables waiting for flush, newest first.
    pub(crate) imm: Vec<Arc<MemTable>>,
    pub(crate) version: Arc<Version>,
}

/// A consistent point-in-time view of the database. Cheap to clone; owns everything it
/// reads (memtables and tables stay alive while it exists), so it outlives nothing and
/// never blocks writers, flushes or compactions.
#[derive(Clone)]
pub struct Snapshot {
    seq: u64,
    state: Arc<ReadState>,
}

impl Snapshot {
    pub(crate) fn new(seq: u64, state: Arc<ReadState>) -> Snapshot {
        Snapshot { seq, state }
    }

    /// The value of `key` as of this snapshot (`None` if absent or deleted).
    pub fn get(&self, key: &[u8]) -> Result<Option<Bytes>, Error> {
        let h = bloom::hash(key);
        let target = IKey(Bytes::from(seek_ikey(key, self.seq)));
        let mut found = self.state.mem.get(key, h, &target);
        for m in &self.state.imm {
            if found.is_some() {
                break;
            }
            found = m.get(key, h, &target);
        }
        if found.is_none() {
            found = self.state.version.get(key, h, &target.0)?;
        }
        Ok(found.and_then(|(kind, v)| (kind == KIND_PUT).then_some(v)))
    }

    /// Ascending iteration over keys within the bounds, as of this snapshot.
    pub fn range(&self, lower: Bound<&[u8]>, upper: Bound<&[u8]>) -> DbIter {
        let mut children: Vec<Box<dyn InternalIterator>> = Vec::new();
        children.push(Box::new(MemIter::new(self.state.mem.clone())));
        for m in &self.state.imm {
            children.push(Box::new(MemIter::new(m.clone())));
        }
        self.state.version.iters(&mut children);
        DbIter {
            it: MergeIter::new(children),
            seq: self.seq,
            lower: lower.map(<[u8]>::to_vec),
            upper: upper.map(<[u8]>::to_vec),
            started: false,
            done: false,
            skip: None,
            _snap: self.clone(),
        }
    }

    /// Ascending iteration over every key starting with `prefix`, as of this snapshot.
    pub fn scan_prefix(&self, prefix: &[u8]) -> DbIter {
        match prefix_successor(prefix) {
            Some(end) => self.range(Bound::Included(prefix), Bound::Excluded(&end)),
            None => self.range(Bound::Included(prefix), Bound::Unbounded),
        }
    }

    /// The sequence number this snapshot reads at.
    pub fn sequence(&self) -> u64 {
        self.seq
    }
}

/// The smallest key greater than every key with this prefix (`None` if unbounded).
pub(crate) fn prefix_successor(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

/// Iterator over `(key, value)` pairs of one snapshot, ascending by key. Owns its data
/// (`Send + 'static`). After an error it yields that error once and then ends.
pub struct DbIter {
    it: MergeIter,
    seq: u64,
    lower: Bound<Vec<u8>>,
    upper: Bound<Vec<u8>>,
    started: bool,
    done: bool,
    skip: Option<Vec<u8>>,
    _snap: Snapshot,
}

impl DbIter {
    /// Repositions so that the next item is the first key >= `key` within the range.
    pub fn seek(&mut self, key: &[u8]) {
        let (target, exclude) = match &self.lower {
            Bound::Included(b) if key < b.as_slice() => (b.clone(), false),
            Bound::Excluded(b) if key <= b.as_slice() => (b.clone(), true),
            _ => (key.to_vec(), false),
        };
        self.position(&target, exclude);
    }

    fn position(&mut self, key: &[u8], exclude: bool) {
        self.it.seek(&seek_ikey(key, self.seq));
        self.skip = exclude.then(|| key.to_vec());
        self.started = true;
        self.done = false;
    }

    fn start(&mut self) {
        match self.lower.clone() {
            Bound::Included(b) => self.position(&b, false),
            Bound::Excluded(b) => self.position(&b, true),
            Bound::Unbounded => {
                self.it.seek_to_first();
                self.skip = None;
                self.started = true;
            }
        }
    }

    fn above_upper(&self, u: &[u8]) -> bool {
        match &self.upper {
            Bound::Included(b) => u > b.as_slice(),
            Bound::Excluded(b) => u >= b.as_slice(),
            Bound::Unbounded => false,
        }
    }
}

impl Iterator for DbIter {
    type Item = Result<(Bytes, Bytes), Error>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        if !self.started {
            self.start();
        }
        loop {
            if !self.it.valid() {
                self.done = true;
                return self.it.take_error().map(Err);
            }
            let Some((u, seq, kind)) = split_ikey(self.it.key()) else {
                self.done = true;
                return Some(Err(Error::Corruption {
                    file: Default::default(),
                    detail: "short internal key".into(),
                }));
            };
            if seq > self.seq || self.skip.as_deref() == Some(u) {
                self.it.next();
                continue;
            }
            if self.above_upper(u) {
                self.done = true;
                return None;
            }
            match &mut self.skip {
                Some(s) => {
                    s.clear();
                    s.extend_from_slice(u);
                }
                None => self.skip = Some(u.to_vec()),
            }
            if kind != KIND_PUT {
                self.it.next();
                continue;
            }
            let item = (Bytes::copy_from_slice(u), self.it.value());
            self.it.next();
            return Some(Ok(item));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn successor() {
        assert_eq!(prefix_successor(b"ab"), Some(b"ac".to_vec()));
        assert_eq!(prefix_successor(b"a\xff"), Some(b"b".to_vec()));
        assert_eq!(prefix_successor(b"\xff\xff"), None);
        assert_eq!(prefix_successor(b""), None);
    }
}
