//! Deferred release of extents, so a read that started before an overwrite or delete of the
//! same object can finish with the old bytes.
//!
//! A write that replaces or deletes data does not hand the old extents to the layout's
//! garbage collector directly: it puts `r/<extent id>` keys in its metadata batch (crash-safe:
//! the keys are durable with the new version). A background pass turns them into layout
//! releases once no read that could still reach them is in flight:
//!
//! 1. Readers pin the current epoch *before* they read an object record, and hold the pin
//!    until their stream has read its last byte.
//! 2. A pass scans the `r/` keys (all visible, so their writes are complete), then bumps the
//!    epoch. A reader pinned after that bump read its record after the scan, so it sees the
//!    new versions and cannot use those extents. Readers pinned at or before the bump might.
//! 3. The scanned set is released once every reader pinned at or before that bump is gone.
//!
//! After a restart there are no readers, so everything left in `r/` is released at once.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use parking_lot::Mutex;

/// Key of a deferred release.
pub fn key(id: u64) -> Vec<u8> {
    let mut k = b"r/".to_vec();
    k.extend_from_slice(&id.to_be_bytes());
    k
}

/// Prefix of every deferred release.
pub const PREFIX: &[u8] = b"r/";

/// The extent id of a deferred-release key, if it is one.
pub fn id_of(key: &[u8]) -> Option<u64> {
    let raw: [u8; 8] = key.strip_prefix(PREFIX)?.try_into().ok()?;
    Some(u64::from_be_bytes(raw))
}

#[derive(Default)]
struct State {
    epoch: u64,
    /// Pin epoch → number of readers holding it.
    readers: BTreeMap<u64, usize>,
    /// Scanned sets waiting for their readers: (epoch bumped after the scan, extent ids).
    waiting: Vec<(u64, Vec<u64>)>,
}

/// Tracks readers and which deferred releases are safe to hand to the layout.
#[derive(Default)]
pub struct Retirer {
    state: Mutex<State>,
}

/// Held by a read from before it looks up an object record until its stream ends.
pub struct ReadPin {
    retirer: Arc<Retirer>,
    epoch: u64,
}

impl Drop for ReadPin {
    fn drop(&mut self) {
        let mut st = self.retirer.state.lock();
        if let Some(n) = st.readers.get_mut(&self.epoch) {
            *n -= 1;
            if *n == 0 {
                st.readers.remove(&self.epoch);
            }
        }
    }
}

impl Retirer {
    /// Pins the current epoch for a read.
    pub fn pin(self: &Arc<Self>) -> ReadPin {
        let mut st = self.state.lock();
        let epoch = st.epoch;
        *st.readers.entry(epoch).or_default() += 1;
        ReadPin {
            retirer: self.clone(),
            epoch,
        }
    }

    /// Takes the ids a pass just scanned (keys visible in the store) and returns the ids that
    /// may be released now: sets scanned earlier (or now) whose readers have all finished.
    /// Ids already waiting are not counted twice.
    pub fn settle(&self, scanned: Vec<u64>) -> Vec<u64> {
        let mut st = self.state.lock();
        let waiting: BTreeSet<u64> = st
            .waiting
            .iter()
            .flat_map(|(_, ids)| ids.iter().copied())
            .collect();
        let fresh: Vec<u64> = scanned
            .into_iter()
            .filter(|id| !waiting.contains(id))
            .collect();
        let bumped = st.epoch;
        st.epoch += 1;
        if !fresh.is_empty() {
            st.waiting.push((bumped, fresh));
        }
        let oldest_reader = st.readers.keys().next().copied();
        let mut ready = Vec::new();
        st.waiting.retain_mut(|(epoch, ids)| {
            let safe = oldest_reader.is_none_or(|r| r > *epoch);
            if safe {
                ready.append(ids);
            }
            !safe
        });
        ready
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip() {
        assert_eq!(id_of(&key(42)), Some(42));
        assert_eq!(id_of(b"r/short"), None);
        assert_eq!(id_of(b"o/xxxxxxxx"), None);
    }

    #[test]
    fn releases_wait_for_readers_that_may_hold_them() {
        let r = Arc::new(Retirer::default());
        // No readers: released at once.
        assert_eq!(r.settle(vec![1]), vec![1]);
        // A reader pinned before the scan holds the scanned set back.
        let early = r.pin();
        assert!(r.settle(vec![2]).is_empty());
        // A reader pinned after the scan does not.
        let late = r.pin();
        assert!(
            r.settle(vec![2]).is_empty(),
            "still waiting on the early reader"
        );
        drop(early);
        assert_eq!(r.settle(vec![2]), vec![2]);
        // Later sets wait only for readers pinned before their own scan.
        assert!(
            r.settle(vec![3]).is_empty(),
            "late reader predates this scan"
        );
        drop(late);
        assert_eq!(r.settle(vec![]), vec![3]);
    }
}
