//! A sharded CLOCK cache of decoded data blocks, keyed by (table number, block offset).

use std::collections::{HashMap, VecDeque};

use parking_lot::Mutex;

use crate::block::Block;

const SHARDS: usize = 32;

struct Shard {
    map: HashMap<(u64, u64), (Block, bool)>,
    order: VecDeque<(u64, u64)>,
    bytes: usize,
}

/// Shared block cache; lookups lock one shard briefly.
pub(crate) struct BlockCache {
    shards: Vec<Mutex<Shard>>,
    cap_per_shard: usize,
}

impl BlockCache {
    pub(crate) fn new(capacity: usize) -> BlockCache {
        BlockCache {
            shards: (0..SHARDS)
                .map(|_| {
                    Mutex::new(Shard {
                        map: HashMap::new(),
                        order: VecDeque::new(),
                        bytes: 0,
                    })
                })
                .collect(),
            cap_per_shard: capacity / SHARDS,
        }
    }

    fn shard(&self, key: (u64, u64)) -> &Mutex<Shard> {
        let h = key
            .0
            .wrapping_mul(0x9E37_79B9_7F4A_7C15)
            .wrapping_add(key.1.wrapping_mul(0xC2B2_AE3D_27D4_EB4F));
        &self.shards[(h >> 40) as usize % SHARDS]
    }

    pub(crate) fn get(&self, key: (u64, u64)) -> Option<Block> {
        let mut s = self.shard(key).lock();
        let e = s.map.get_mut(&key)?;
        e.1 = true;
        Some(e.0.clone())
    }

    pub(crate) fn insert(&self, key: (u64, u64), block: Block) {
        if self.cap_per_shard == 0 {
            return;
        }
        let mut s = self.shard(key).lock();
        if s.map.contains_key(&key) {
            return;
        }
        let size = block.size();
        while s.bytes + size > self.cap_per_shard {
            let Some(victim) = s.order.pop_front() else {
                break;
            };
            let referenced = match s.map.get_mut(&victim) {
                Some(e) if e.1 => {
                    e.1 = false;
                    true
                }
                _ => false,
            };
            if referenced {
                s.order.push_back(victim);
            } else if let Some((b, _)) = s.map.remove(&victim) {
                s.bytes -= b.size();
            }
        }
        s.bytes += size;
        s.map.insert(key, (block, false));
        s.order.push_back(key);
    }
}
