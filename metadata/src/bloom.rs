//! Bloom filters over user keys (xxh3 hashing, double hashing for the probes).
//!
//! Layout: `bit array | k u8` (k = number of probes).

/// Hash used for filter building and probing.
pub(crate) fn hash(key: &[u8]) -> u64 {
    xxhash_rust::xxh3::xxh3_64(key)
}

/// Builds a filter for the given key hashes.
pub(crate) fn build(hashes: &[u64], bits_per_key: usize) -> Vec<u8> {
    let nbits = (hashes.len() * bits_per_key).max(64).div_ceil(8) * 8;
    let k = ((bits_per_key * 69) / 100).clamp(1, 30);
    let mut out = vec![0u8; nbits / 8 + 1];
    for &h in hashes {
        let delta = h.rotate_right(33) | 1;
        let mut x = h;
        for _ in 0..k {
            let bit = (x % nbits as u64) as usize;
            out[bit / 8] |= 1 << (bit % 8);
            x = x.wrapping_add(delta);
        }
    }
    out[nbits / 8] = k as u8;
    out
}

/// False only if the key with hash `h` is certainly absent. Malformed filters say "maybe".
pub(crate) fn may_contain(filter: &[u8], h: u64) -> bool {
    if filter.len() < 2 {
        return true;
    }
    let nbits = (filter.len() - 1) * 8;
    let k = filter[filter.len() - 1] as usize;
    if k == 0 || k > 30 {
        return true;
    }
    let delta = h.rotate_right(33) | 1;
    let mut x = h;
    for _ in 0..k {
        let bit = (x % nbits as u64) as usize;
        if filter[bit / 8] & (1 << (bit % 8)) == 0 {
            return false;
        }
        x = x.wrapping_add(delta);
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_false_negatives_few_false_positives() {
        let keys: Vec<u64> = (0..10_000u32).map(|i| hash(&i.to_le_bytes())).collect();
        let f = build(&keys, 10);
        assert!(keys.iter().all(|&h| may_contain(&f, h)));
        let fp = (10_000..110_000u32)
            .filter(|i| may_contain(&f, hash(&i.to_le_bytes())))
            .count();
        assert!(fp < 3000, "false positive rate too high: {fp}/100000");
    }
}
