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

use crate::bloom;
use crate::coding::{cmp_ikey, make_ikey, split_ikey};
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
    /// Lock-free bloom filter over the user keys inserted, so point gets for keys that
    /// live in SSTables skip the skiplist search.
    bloom: Box<[AtomicU64]>,
    bloom_mask: u64,
    bytes: AtomicUsize,
    max_seq: AtomicU64,
    log_number: u64,
}

const MEM_BLOOM_PROBES: u32 = 4;

impl MemTable {
    /// A memtable expected to grow to about `expected_bytes`.
    pub(crate) fn new(log_number: u64, expected_bytes: usize) -> MemTable {
        let bits = (expected_bytes / 16)
            .clamp(1 << 12, 1 << 27)
            .next_power_of_two();
        MemTable {
            map: SkipMap::new(),
            bloom: (0..bits / 64).map(|_| AtomicU64::new(0)).collect(),
            bloom_mask: bits as u64 - 1,
            bytes: AtomicUsize::new(0),
            max_seq: AtomicU64::new(0),
            log_number,
        }
    }

    fn bloom_bits(&self, h: u64) -> impl Iterator<Item = u64> + '_ {
        let delta = h.rotate_right(33) | 1;
        (0..u64::from(MEM_BLOOM_PROBES))
            .map(move |i| h.wrapping_add(i.wrapping_mul(delta)) & self.bloom_mask)
    }

    fn may_contain(&self, h: u64) -> bool {
        self.bloom_bits(h).all(|b| {
            self.bloom[(b / 64) as usize].load(AtomicOrdering::Acquire) & (1 << (b % 64)) != 0
        })
    }

    pub(crate) fn log_number(&self) -> u64 {
        self.log_number
    }

    /// Inserts one version. Callers publish visibility (the sequence) afterwards.
    pub(crate) fn add(&self, user: &[u8], seq: u64, kind: u8, value: &[u8]) {
        for b in self.bloom_bits(bloom::hash(user)) {
            self.bloom[(b / 64) as usize].fetch_or(1 << (b % 64), AtomicOrdering::Release);
        }
        let k = IKey(Bytes::from(make_ikey(user, seq, kind)));
        let add = k.0.len() + value.len() + 48;
        self.map.insert(k, Bytes::copy_from_slice(value));
        self.bytes.fetch_add(add, AtomicOrdering::Relaxed);
        self.max_seq.fetch_max(seq, AtomicOrdering::Relaxed);
    }

    /// The newest version of `user` visible at the sequence encoded in `target`
    /// (`seek_ikey(user, seq)`); `h` is `bloom::hash(user)`. Returns `(kind, value)`.
    pub(crate) fn get(&self, user: &[u8], h: u64, target: &IKey) -> Option<(u8, Bytes)> {
        if !self.may_contain(h) {
            return None;
        }
        let e = self.map.lower_bound(Bound::Included(target))?;
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

/// Cursor over a memtable that owns its `Arc`. It copies (reference-counted) entries out
/// of the skiplist a run at a time, so a scan costs one skiplist search per run.
pub(crate) struct MemIter {
    mem: Arc<MemTable>,
    buf: std::collections::VecDeque<(IKey, Bytes)>,
    run: usize,
    exhausted: bool,
}

const MIN_RUN: usize = 8;
const MAX_RUN: usize = 256;

impl MemIter {
    pub(crate) fn new(mem: Arc<MemTable>) -> MemIter {
        MemIter {
            mem,
            buf: std::collections::VecDeque::new(),
            run: MIN_RUN,
            exhausted: true,
        }
    }

    fn fill(&mut self, from: Bound<&IKey>) {
        let before = self.buf.len();
        let range = self.mem.map.range((from, Bound::Unbounded));
        for e in range.take(self.run) {
            self.buf.push_back((e.key().clone(), e.value().clone()));
        }
        self.exhausted = self.buf.len() - before < self.run;
        self.run = (self.run * 2).min(MAX_RUN);
    }

    fn reset(&mut self, from: Bound<&IKey>) {
        self.buf.clear();
        self.run = MIN_RUN;
        self.fill(from);
    }
}

impl InternalIterator for MemIter {
    fn seek(&mut self, target: &[u8]) {
        let t = IKey(Bytes::copy_from_slice(target));
        self.reset(Bound::Included(&t));
    }
    fn seek_to_first(&mut self) {
        self.reset(Bound::Unbounded);
    }
    fn valid(&self) -> bool {
        !self.buf.is_empty()
    }
    fn key(&self) -> &[u8] {
        self.buf.front().map_or(&[], |c| &c.0 .0[..])
    }
    fn value(&self) -> Bytes {
        self.buf.front().map(|c| c.1.clone()).unwrap_or_default()
    }
    fn next(&mut self) {
        if let Some((k, v)) = self.buf.pop_front() {
            if self.buf.is_empty() && !self.exhausted {
                self.fill(Bound::Excluded(&k));
            }
            drop(v);
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
        let m = Arc::new(MemTable::new(1, 1 << 20));
        let get = |u: &[u8], seq: u64| {
            m.get(
                u,
                crate::bloom::hash(u),
                &IKey(Bytes::from(crate::coding::seek_ikey(u, seq))),
            )
        };
        m.add(b"a", 1, KIND_PUT, b"a1");
        m.add(b"a", 3, KIND_PUT, b"a3");
        m.add(b"b", 2, KIND_DELETE, b"");
        assert_eq!(get(b"a", 2).unwrap().1, Bytes::from_static(b"a1"));
        assert_eq!(get(b"a", 9).unwrap().1, Bytes::from_static(b"a3"));
        assert!(get(b"a", 0).is_none());
        assert_eq!(get(b"b", 5).unwrap().0, KIND_DELETE);
        assert!(get(b"c", 5).is_none());
        for i in 0..1000u32 {
            m.add(&i.to_be_bytes(), 10 + u64::from(i), KIND_PUT, b"x");
        }
        let mut it = MemIter::new(m.clone());
        it.seek(&crate::coding::seek_ikey(&500u32.to_be_bytes(), 100_000));
        let mut n = 0;
        while it.valid() {
            n += 1;
            it.next();
        }
        assert_eq!(n, 500 + 3);
        let mut it = MemIter::new(m);
        it.seek_to_first();
        let mut n = 0;
        while it.valid() {
            n += 1;
            it.next();
        }
        assert_eq!(n, 1003);
    }
}
