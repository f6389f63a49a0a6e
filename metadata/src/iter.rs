//! Internal iterators over internal keys and the merging iterator.

use std::cmp::Ordering;

use bytes::Bytes;

use crate::coding::cmp_ikey;
use crate::error::Error;

/// A positioned cursor over internal keys in [`cmp_ikey`] order.
pub(crate) trait InternalIterator: Send {
    /// Positions at the first entry >= `target` (an internal key).
    fn seek(&mut self, target: &[u8]);
    /// Positions at the first entry.
    fn seek_to_first(&mut self);
    /// True while positioned at an entry.
    fn valid(&self) -> bool;
    /// The current internal key (only meaningful when `valid`).
    fn key(&self) -> &[u8];
    /// The current value (only meaningful when `valid`).
    fn value(&self) -> Bytes;
    /// Advances to the next entry.
    fn next(&mut self);
    /// An error met while iterating (the iterator is then invalid).
    fn take_error(&mut self) -> Option<Error>;
}

/// Merges children into one ordered stream. On equal keys the earlier child wins
/// (children are given newest first).
pub(crate) struct MergeIter {
    children: Vec<Box<dyn InternalIterator>>,
    cur: Option<usize>,
    err: Option<Error>,
}

impl MergeIter {
    pub(crate) fn new(children: Vec<Box<dyn InternalIterator>>) -> MergeIter {
        MergeIter {
            children,
            cur: None,
            err: None,
        }
    }

    fn pick(&mut self) {
        let mut best: Option<usize> = None;
        for i in 0..self.children.len() {
            if let Some(e) = self.children[i].take_error() {
                self.err.get_or_insert(e);
            }
            if !self.children[i].valid() {
                continue;
            }
            best = match best {
                None => Some(i),
                Some(b) => {
                    if cmp_ikey(self.children[i].key(), self.children[b].key()) == Ordering::Less {
                        Some(i)
                    } else {
                        Some(b)
                    }
                }
            };
        }
        self.cur = if self.err.is_some() { None } else { best };
    }
}

impl InternalIterator for MergeIter {
    fn seek(&mut self, target: &[u8]) {
        for c in &mut self.children {
            c.seek(target);
        }
        self.pick();
    }
    fn seek_to_first(&mut self) {
        for c in &mut self.children {
            c.seek_to_first();
        }
        self.pick();
    }
    fn valid(&self) -> bool {
        self.cur.is_some()
    }
    fn key(&self) -> &[u8] {
        match self.cur {
            Some(i) => self.children[i].key(),
            None => &[],
        }
    }
    fn value(&self) -> Bytes {
        match self.cur {
            Some(i) => self.children[i].value(),
            None => Bytes::new(),
        }
    }
    fn next(&mut self) {
        if let Some(i) = self.cur {
            self.children[i].next();
            self.pick();
        }
    }
    fn take_error(&mut self) -> Option<Error> {
        self.err.take()
    }
}
