//! The in-memory write buffer: a lock-free skiplist of internal keys.
//!
//! Every version of every key is kept (keyed by sequence number), so readers holding an
//! older snapshot keep seeing their version while writers insert newer ones; readers
//! never take a lock.

use std::cmp::Ordering;
use std::ops::Bound;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering as AtomicOrdering};
use std::sync::Arc;

use bytes::Bytes;
use crossbeam_skiplist::SkipMap;

use crate::coding::{cmp_ikey, make_ikey, seek_ikey, split_ikey};
use crate::error::Error;
use crate::iter::InternalIterator;

/// An encoded internal key ordered by [`cmp_ikey`].
#[derive(Clone, Debug)]
pub(crate) struct IKey(pub(crate) Bytes);

impl PartialEq for IKey {
    fn eq(&self, o: &Self) -> bool {
        self.cmp(o) == Ordering::Equal
    }
}
impl Eq for IKey {}
impl PartialOrd for IKey {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for IKey {
    fn cmp(&self, o: &Self) -> Ordering {
        cmp_ikey(&self.0, &o.0)
    }
}

/// A memtable; `log_number` names the WAL file holding its records.
pub(crate) struct MemTable {
    map: SkipMap<IKey, Bytes>,
    bytes: AtomicUsize,
    max_seq: AtomicU64,
    log_number: u64,
}

impl MemTable {
    pub(crate) fn new(log_number: u64) -> MemTable {
        MemTable {
            map: SkipMap::new(),
            bytes: AtomicUsize::new(0),
            max_seq: AtomicU64::new(0),
            log_number,
        }
    }

    pub(crate) fn log_number(&self) -> u64 {
        self.log_number
    }

    /// Inserts one version. Callers publish visibility (the sequence) afterwards.
    pub(crate) fn add(&self, user: &[u8], seq: u64, kind: u8, value: &[u8]) {
        let k = IKey(Bytes::from(make_ikey(user, seq, kind)));
        let add = k.0.len() + value.len() + 48;
        self.map.insert(k, Bytes::copy_from_slice(value));
        self.bytes.fetch_add(add, AtomicOrdering::Relaxed);
        self.max_seq.fetch_max(seq, AtomicOrdering::Relaxed);
    }

    /// The newest version of `user` with sequence <= `seq`: `(kind, value)`.
    pub(crate) fn get(&self, user: &[u8], seq: u64) -> Option<(u8, Bytes)> {
        let target = IKey(Bytes::from(seek_ikey(user, seq)));
        let e = self.map.lower_bound(Bound::Included(&target))?;
        let (u, _, kind) = split_ikey(&e.key().0)?;
        (u == user).then(|| (kind, e.value().clone()))
    }

    pub(crate) fn approx_bytes(&self) -> usize {
        self.bytes.load(AtomicOrdering::Relaxed)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    pub(crate) fn max_seq(&self) -> u64 {
        self.max_seq.load(AtomicOrdering::Relaxed)
    }
}

/// Cursor over a memtable that owns its `Arc` (re-seeks from the current key on `next`).
pub(crate) struct MemIter {
    mem: Arc<MemTable>,
    cur: Option<(IKey, Bytes)>,
}

impl MemIter {
    pub(crate) fn new(mem: Arc<MemTable>) -> MemIter {
        MemIter { mem, cur: None }
    }

    fn set(&mut self, bound: Bound<&IKey>) {
        self.cur = self
            .mem
            .map
            .lower_bound(bound)
            .map(|e| (e.key().clone(), e.value().clone()));
    }
}

impl InternalIterator for MemIter {
    fn seek(&mut self, target: &[u8]) {
        let t = IKey(Bytes::copy_from_slice(target));
        self.set(Bound::Included(&t));
    }
    fn seek_to_first(&mut self) {
        self.set(Bound::Unbounded);
    }
    fn valid(&self) -> bool {
        self.cur.is_some()
    }
    fn key(&self) -> &[u8] {
        self.cur.as_ref().map_or(&[], |c| &c.0 .0[..])
    }
    fn value(&self) -> Bytes {
        self.cur.as_ref().map(|c| c.1.clone()).unwrap_or_default()
    }
    fn next(&mut self) {
        if let Some((k, _)) = self.cur.take() {
            self.set(Bound::Excluded(&k));
        }
    }
    fn take_error(&mut self) -> Option<Error> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::coding::{KIND_DELETE, KIND_PUT};

    #[test]
    fn versions_and_iteration() {
        let m = Arc::new(MemTable::new(1));
        m.add(b"a", 1, KIND_PUT, b"a1");
        m.add(b"a", 3, KIND_PUT, b"a3");
        m.add(b"b", 2, KIND_DELETE, b"");
        assert_eq!(m.get(b"a", 2).unwrap().1, Bytes::from_static(b"a1"));
        assert_eq!(m.get(b"a", 9).unwrap().1, Bytes::from_static(b"a3"));
        assert!(m.get(b"a", 0).is_none());
        assert_eq!(m.get(b"b", 5).unwrap().0, KIND_DELETE);
        assert!(m.get(b"c", 5).is_none());
        let mut it = MemIter::new(m);
        it.seek_to_first();
        let mut n = 0;
        while it.valid() {
            n += 1;
            it.next();
        }
        assert_eq!(n, 3);
    }
}
