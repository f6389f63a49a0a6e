//! SSTable blocks: prefix-compressed entries with restart points.
//!
//! Entry: `shared varint | unshared varint | value_len varint | key[shared..] | value`.
//! Trailer: `restart offsets u32 LE * n | n u32 LE`. Every restart entry has `shared = 0`.

use std::cmp::Ordering;
use std::ops::Range;

use bytes::Bytes;

use crate::coding::{cmp_ikey, get_u32, get_varint, put_varint};

/// Accumulates sorted entries into one block.
pub(crate) struct BlockBuilder {
    buf: Vec<u8>,
    restarts: Vec<u32>,
    counter: usize,
    interval: usize,
    last_key: Vec<u8>,
}

impl BlockBuilder {
    pub(crate) fn new(interval: usize) -> BlockBuilder {
        BlockBuilder {
            buf: Vec::new(),
            restarts: vec![0],
            counter: 0,
            interval: interval.max(1),
            last_key: Vec::new(),
        }
    }

    /// Appends an entry; keys must arrive in ascending order.
    pub(crate) fn add(&mut self, key: &[u8], value: &[u8]) {
        let shared = if self.counter < self.interval {
            self.last_key
                .iter()
                .zip(key)
                .take_while(|(a, b)| a == b)
                .count()
        } else {
            self.restarts.push(self.buf.len() as u32);
            self.counter = 0;
            0
        };
        put_varint(&mut self.buf, shared as u64);
        put_varint(&mut self.buf, (key.len() - shared) as u64);
        put_varint(&mut self.buf, value.len() as u64);
        self.buf.extend_from_slice(&key[shared..]);
        self.buf.extend_from_slice(value);
        self.last_key.clear();
        self.last_key.extend_from_slice(key);
        self.counter += 1;
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    pub(crate) fn estimated_size(&self) -> usize {
        self.buf.len() + self.restarts.len() * 4 + 4
    }

    pub(crate) fn last_key(&self) -> &[u8] {
        &self.last_key
    }

    /// Returns the finished block bytes and resets the builder.
    pub(crate) fn finish(&mut self) -> Vec<u8> {
        let mut out = std::mem::take(&mut self.buf);
        for r in &self.restarts {
            out.extend_from_slice(&r.to_le_bytes());
        }
        out.extend_from_slice(&(self.restarts.len() as u32).to_le_bytes());
        self.restarts = vec![0];
        self.counter = 0;
        self.last_key.clear();
        out
    }
}

/// A parsed, checksum-verified block.
#[derive(Clone)]
pub(crate) struct Block {
    data: Bytes,
    restarts_off: usize,
    num_restarts: usize,
}

impl Block {
    /// Parses block bytes; `None` if the restart trailer is inconsistent.
    pub(crate) fn parse(data: Bytes) -> Option<Block> {
        let n = get_u32(&data, data.len().checked_sub(4)?)? as usize;
        let restarts_off = data.len().checked_sub(4)?.checked_sub(n.checked_mul(4)?)?;
        if n == 0 {
            return None;
        }
        for i in 0..n {
            if get_u32(&data, restarts_off + 4 * i)? as usize > restarts_off {
                return None;
            }
        }
        Some(Block {
            data,
            restarts_off,
            num_restarts: n,
        })
    }

    pub(crate) fn size(&self) -> usize {
        self.data.len()
    }

    pub(crate) fn iter(&self) -> BlockIter {
        BlockIter {
            block: self.clone(),
            next_pos: self.restarts_off,
            key: Vec::new(),
            val: 0..0,
            valid: false,
            corrupt: false,
        }
    }
}

/// Cursor over one block.
pub(crate) struct BlockIter {
    block: Block,
    next_pos: usize,
    key: Vec<u8>,
    val: Range<usize>,
    valid: bool,
    corrupt: bool,
}

impl BlockIter {
    pub(crate) fn valid(&self) -> bool {
        self.valid
    }
    pub(crate) fn corrupt(&self) -> bool {
        self.corrupt
    }
    pub(crate) fn key(&self) -> &[u8] {
        &self.key
    }
    pub(crate) fn value(&self) -> Bytes {
        self.block.data.slice(self.val.clone())
    }
    pub(crate) fn value_slice(&self) -> &[u8] {
        &self.block.data[self.val.clone()]
    }

    /// Decodes the entry at `next_pos` into `key`/`val`.
    fn decode_next(&mut self) -> bool {
        let data = &self.block.data[..self.block.restarts_off];
        let mut p = self.next_pos;
        if p >= data.len() {
            self.valid = false;
            return false;
        }
        let parsed = (|| {
            let shared = usize::try_from(get_varint(data, &mut p)?).ok()?;
            let unshared = usize::try_from(get_varint(data, &mut p)?).ok()?;
            let vlen = usize::try_from(get_varint(data, &mut p)?).ok()?;
            if shared > self.key.len() {
                return None;
            }
            let kend = p.checked_add(unshared)?;
            let vend = kend.checked_add(vlen)?;
            if vend > data.len() {
                return None;
            }
            self.key.truncate(shared);
            self.key.extend_from_slice(&data[p..kend]);
            self.val = kend..vend;
            Some(vend)
        })();
        match parsed {
            Some(end) => {
                self.next_pos = end;
                self.valid = true;
                true
            }
            None => {
                self.corrupt = true;
                self.valid = false;
                false
            }
        }
    }

    fn restart_point(&self, i: usize) -> usize {
        get_u32(&self.block.data, self.block.restarts_off + 4 * i).unwrap_or(0) as usize
    }

    /// The full key stored at restart point `i` (restart entries share no prefix), read
    /// in place without copying.
    fn restart_key(&self, i: usize) -> Option<&[u8]> {
        let data = &self.block.data[..self.block.restarts_off];
        let mut p = self.restart_point(i);
        let shared = get_varint(data, &mut p)?;
        let unshared = usize::try_from(get_varint(data, &mut p)?).ok()?;
        get_varint(data, &mut p)?;
        if shared != 0 {
            return None;
        }
        data.get(p..p.checked_add(unshared)?)
    }

    fn seek_to_restart(&mut self, i: usize) {
        self.key.clear();
        self.next_pos = self.restart_point(i);
    }

    pub(crate) fn seek_to_first(&mut self) {
        self.seek_to_restart(0);
        self.decode_next();
    }

    pub(crate) fn next(&mut self) {
        if self.valid {
            self.decode_next();
        }
    }

    /// Positions at the first entry whose key is >= `target` in internal-key order.
    pub(crate) fn seek(&mut self, target: &[u8]) {
        let (mut lo, mut hi) = (0usize, self.block.num_restarts - 1);
        while lo < hi {
            let mid = (lo + hi).div_ceil(2);
            let Some(k) = self.restart_key(mid) else {
                self.corrupt = true;
                self.valid = false;
                return;
            };
            if cmp_ikey(k, target) == Ordering::Less {
                lo = mid;
            } else {
                hi = mid - 1;
            }
        }
        self.seek_to_restart(lo);
        while self.decode_next() {
            if cmp_ikey(&self.key, target) != Ordering::Less {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::coding::{make_ikey, seek_ikey, KIND_PUT};

    #[test]
    fn build_and_seek() {
        let mut b = BlockBuilder::new(4);
        let keys: Vec<Vec<u8>> = (0..100u32)
            .map(|i| make_ikey(format!("key{i:05}").as_bytes(), 7, KIND_PUT))
            .collect();
        for k in &keys {
            b.add(k, b"value");
        }
        let blk = Block::parse(Bytes::from(b.finish())).unwrap();
        let mut it = blk.iter();
        it.seek_to_first();
        let mut n = 0;
        while it.valid() {
            assert_eq!(it.key(), &keys[n][..]);
            n += 1;
            it.next();
        }
        assert_eq!(n, 100);
        it.seek(&seek_ikey(b"key00042", 100));
        assert_eq!(it.key(), &keys[42][..]);
        it.seek(&seek_ikey(b"key000425", 100));
        assert_eq!(it.key(), &keys[43][..]);
        it.seek(&seek_ikey(b"zzz", 100));
        assert!(!it.valid());
        it.seek(&seek_ikey(b"", 100));
        assert_eq!(it.key(), &keys[0][..]);
    }
}
