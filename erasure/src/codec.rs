//! Reed-Solomon k+m over GF(2^8) (the `reed-solomon-erasure` crate).

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;
use reed_solomon_erasure::galois_8::ReedSolomon;

use crate::error::{LayoutError, Result};

/// An encoder/decoder for one geometry.
pub struct Codec {
    rs: ReedSolomon,
    k: usize,
    m: usize,
}

impl Codec {
    /// A codec for `k` data and `m` parity shards.
    pub fn new(k: usize, m: usize) -> Result<Codec> {
        let rs = ReedSolomon::new(k, m)
            .map_err(|e| LayoutError::Config(format!("Reed-Solomon {k}+{m}: {e:?}")))?;
        Ok(Codec { rs, k, m })
    }

    /// Data shards.
    pub fn k(&self) -> usize {
        self.k
    }

    /// Parity shards.
    pub fn m(&self) -> usize {
        self.m
    }

    /// Computes the `m` parity shards of `data` (k equal-length slices).
    pub fn encode(&self, data: &[&[u8]]) -> Result<Vec<Vec<u8>>> {
        let len = data.first().map(|d| d.len()).unwrap_or(0);
        let mut parity = vec![vec![0u8; len]; self.m];
        self.rs
            .encode_sep(data, &mut parity)
            .map_err(|e| LayoutError::Corruption(format!("RS encode: {e:?}")))?;
        Ok(parity)
    }

    /// Fills in every `None` shard from at least `k` present ones (all of equal length).
    pub fn reconstruct(&self, shards: &mut [Option<Vec<u8>>], stripe: u64) -> Result<()> {
        let available = shards.iter().filter(|s| s.is_some()).count();
        if available < self.k {
            return Err(LayoutError::Unrecoverable {
                stripe,
                available,
                needed: self.k,
            });
        }
        self.rs
            .reconstruct(shards)
            .map_err(|e| LayoutError::Corruption(format!("RS reconstruct: {e:?}")))
    }
}

/// Codecs by geometry, built once.
#[derive(Default)]
pub struct Codecs {
    map: Mutex<HashMap<(usize, usize), Arc<Codec>>>,
}

impl Codecs {
    /// The codec for `k+m`.
    pub fn get(&self, k: usize, m: usize) -> Result<Arc<Codec>> {
        let mut map = self.map.lock();
        if let Some(c) = map.get(&(k, m)) {
            return Ok(c.clone());
        }
        let c = Arc::new(Codec::new(k, m)?);
        map.insert((k, m), c.clone());
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encode_and_reconstruct_any_m_losses() {
        let c = Codec::new(4, 2).unwrap();
        let data: Vec<Vec<u8>> = (0..4u8).map(|i| vec![i.wrapping_mul(37); 1000]).collect();
        let refs: Vec<&[u8]> = data.iter().map(|d| d.as_slice()).collect();
        let parity = c.encode(&refs).unwrap();
        let all: Vec<Vec<u8>> = data.iter().chain(parity.iter()).cloned().collect();
        for a in 0..6 {
            for b in a + 1..6 {
                let mut s: Vec<Option<Vec<u8>>> = all.iter().cloned().map(Some).collect();
                s[a] = None;
                s[b] = None;
                c.reconstruct(&mut s, 0).unwrap();
                let got: Vec<Vec<u8>> = s.into_iter().map(|x| x.unwrap()).collect();
                assert_eq!(got, all);
            }
        }
        let mut s: Vec<Option<Vec<u8>>> = all.iter().cloned().map(Some).collect();
        s[0] = None;
        s[1] = None;
        s[2] = None;
        assert!(matches!(
            c.reconstruct(&mut s, 7),
            Err(LayoutError::Unrecoverable { stripe: 7, .. })
        ));
    }
}
