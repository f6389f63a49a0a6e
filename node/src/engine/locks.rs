//! Striped async locks: serialize read-modify-write of one metadata key (object, upload)
//! so that two writers never both release the same old extents or lose each other's.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};

use tokio::sync::{Mutex, MutexGuard};

/// A fixed table of mutexes; a key always maps to the same one.
pub struct Locks {
    slots: Vec<Mutex<()>>,
}

impl Locks {
    /// `n` stripes.
    pub fn new(n: usize) -> Locks {
        Locks {
            slots: (0..n.max(1)).map(|_| Mutex::new(())).collect(),
        }
    }

    /// Waits for and holds the stripe of `key`.
    pub async fn lock(&self, key: &[u8]) -> MutexGuard<'_, ()> {
        let mut h = DefaultHasher::new();
        key.hash(&mut h);
        let i = (h.finish() % self.slots.len() as u64) as usize;
        self.slots[i].lock().await
    }
}
