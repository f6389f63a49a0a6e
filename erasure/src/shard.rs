//! Shard blocks and stripe packing.
//!
//! A stripe is k data + m parity shards; shard `i` is one file
//! `s-<stripe:016x>.shd` on one QLC device, written once in a single append
//! of `rows * block_bytes` bytes and never rewritten in place. Each block is
//! a 64-byte header (stripe id, shard index, row, crc32c of the payload, crc
//! of the header) and a payload, so scrub verifies blocks without metadata.
//! Chunks are packed into the payloads of data blocks and never straddle a
//! block, so reading one chunk reads one byte range of one device.

use bytes::{Bytes, BytesMut};

use crate::codec::Codec;
use crate::error::Result;

/// Bytes of the block header.
pub const BLOCK_HEADER: usize = 64;
const BLOCK_MAGIC: &[u8; 8] = b"CAIRNSHB";
/// Shard block format version.
pub const BLOCK_VERSION: u16 = 1;

/// File name of a stripe's shard on a device.
pub fn shard_file_name(stripe: u64) -> String {
    format!("s-{stripe:016x}.shd")
}

/// Parses a shard file name back into the stripe id.
pub fn parse_shard_file_name(name: &str) -> Option<u64> {
    let hex = name.strip_prefix("s-")?.strip_suffix(".shd")?;
    u64::from_str_radix(hex, 16).ok()
}

/// Identity of a block, stored in its header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlockId {
    /// Stripe id.
    pub stripe: u64,
    /// Shard index (0..k data, k..k+m parity).
    pub shard: u8,
    /// Data shards of the stripe.
    pub k: u8,
    /// Parity shards of the stripe.
    pub m: u8,
    /// Row within the shard file.
    pub row: u32,
    /// Block size.
    pub block_bytes: u32,
}

/// Writes header + payload of one block into `out`.
pub fn encode_block(out: &mut BytesMut, id: BlockId, payload: &[u8]) {
    debug_assert_eq!(payload.len() + BLOCK_HEADER, id.block_bytes as usize);
    let mut h = [0u8; BLOCK_HEADER];
    h[0..8].copy_from_slice(BLOCK_MAGIC);
    h[8..10].copy_from_slice(&BLOCK_VERSION.to_le_bytes());
    h[10] = id.shard;
    h[11] = id.k;
    h[12] = id.m;
    h[16..24].copy_from_slice(&id.stripe.to_le_bytes());
    h[24..28].copy_from_slice(&id.row.to_le_bytes());
    h[28..32].copy_from_slice(&id.block_bytes.to_le_bytes());
    h[32..36].copy_from_slice(&crc32c::crc32c(payload).to_le_bytes());
    let hc = crc32c::crc32c(&h[0..60]);
    h[60..64].copy_from_slice(&hc.to_le_bytes());
    out.extend_from_slice(&h);
    out.extend_from_slice(payload);
}

/// Parses and verifies a block without metadata: returns its identity if the
/// header and payload checksums hold.
pub fn decode_block(b: &[u8]) -> std::result::Result<BlockId, String> {
    if b.len() < BLOCK_HEADER {
        return Err("block shorter than its header".into());
    }
    let h = &b[..BLOCK_HEADER];
    if &h[0..8] != BLOCK_MAGIC {
        return Err("bad block magic".into());
    }
    let hc = u32::from_le_bytes([h[60], h[61], h[62], h[63]]);
    if crc32c::crc32c(&h[0..60]) != hc {
        return Err("block header checksum mismatch".into());
    }
    let version = u16::from_le_bytes([h[8], h[9]]);
    if version != BLOCK_VERSION {
        return Err(format!("unknown block version {version}"));
    }
    let u32_at = |i: usize| u32::from_le_bytes([h[i], h[i + 1], h[i + 2], h[i + 3]]);
    let mut s = [0u8; 8];
    s.copy_from_slice(&h[16..24]);
    let id = BlockId {
        stripe: u64::from_le_bytes(s),
        shard: h[10],
        k: h[11],
        m: h[12],
        row: u32_at(24),
        block_bytes: u32_at(28),
    };
    if b.len() != id.block_bytes as usize {
        return Err(format!(
            "block is {} bytes, header says {}",
            b.len(),
            id.block_bytes
        ));
    }
    if crc32c::crc32c(&b[BLOCK_HEADER..]) != u32_at(32) {
        return Err("block payload checksum mismatch".into());
    }
    Ok(id)
}

/// Verifies a block and checks that it is the expected one.
pub fn verify_block(b: &[u8], want: BlockId) -> std::result::Result<(), String> {
    let got = decode_block(b)?;
    if got != want {
        return Err(format!("block identity {got:?}, expected {want:?}"));
    }
    Ok(())
}

/// Where a chunk was placed in a stripe.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Placement {
    /// Data shard index.
    pub shard: u8,
    /// Block row.
    pub row: u32,
    /// Offset within the block payload.
    pub offset: u32,
}

/// Packs chunks into the data blocks of one stripe (first fit, row-major).
pub struct StripePacker {
    k: usize,
    max_rows: usize,
    payload: usize,
    /// `cells[row * k + shard]`: payload bytes of that block (allocated on first use).
    cells: Vec<Option<Vec<u8>>>,
    used: Vec<usize>,
    stored: u64,
}

impl StripePacker {
    /// An empty stripe of `k` data shards and up to `max_rows` rows of `block_bytes`.
    pub fn new(k: usize, max_rows: usize, block_bytes: usize) -> StripePacker {
        StripePacker {
            k,
            max_rows,
            payload: block_bytes - BLOCK_HEADER,
            cells: (0..k * max_rows).map(|_| None).collect(),
            used: vec![0; k * max_rows],
            stored: 0,
        }
    }

    /// The largest chunk a block can hold.
    pub fn max_chunk(&self) -> usize {
        self.payload
    }

    /// Whether nothing was placed yet.
    pub fn is_empty(&self) -> bool {
        self.stored == 0
    }

    /// Stored bytes placed so far.
    pub fn stored_bytes(&self) -> u64 {
        self.stored
    }

    /// Places `bytes` in the first block with room; `None` when the stripe is full.
    pub fn place(&mut self, bytes: &[u8]) -> Option<Placement> {
        if bytes.len() > self.payload {
            return None;
        }
        let cell = (0..self.cells.len()).find(|&c| self.used[c] + bytes.len() <= self.payload)?;
        let payload = self.payload;
        let buf = self.cells[cell].get_or_insert_with(|| vec![0u8; payload]);
        let off = self.used[cell];
        buf[off..off + bytes.len()].copy_from_slice(bytes);
        self.used[cell] += bytes.len();
        self.stored += bytes.len() as u64;
        Some(Placement {
            shard: (cell % self.k) as u8,
            row: (cell / self.k) as u32,
            offset: off as u32,
        })
    }

    /// Rows actually used.
    pub fn rows(&self) -> usize {
        (0..self.max_rows)
            .rev()
            .find(|r| (0..self.k).any(|s| self.used[r * self.k + s] > 0))
            .map(|r| r + 1)
            .unwrap_or(1)
    }

    /// Computes parity and lays out the k+m shard files (each `rows * block_bytes`).
    pub fn finish(self, codec: &Codec, stripe: u64) -> Result<Vec<Bytes>> {
        let rows = self.rows();
        let k = self.k;
        let m = codec.m();
        let block_bytes = (self.payload + BLOCK_HEADER) as u32;
        let zero = vec![0u8; self.payload];
        let mut files: Vec<BytesMut> = (0..k + m)
            .map(|_| BytesMut::with_capacity(rows * block_bytes as usize))
            .collect();
        for row in 0..rows {
            let data: Vec<&[u8]> = (0..k)
                .map(|s| {
                    self.cells[row * k + s]
                        .as_deref()
                        .unwrap_or(zero.as_slice())
                })
                .collect();
            let parity = codec.encode(&data)?;
            for (i, payload) in data
                .iter()
                .copied()
                .chain(parity.iter().map(|p| p.as_slice()))
                .enumerate()
            {
                let id = BlockId {
                    stripe,
                    shard: i as u8,
                    k: k as u8,
                    m: m as u8,
                    row: row as u32,
                    block_bytes,
                };
                encode_block(&mut files[i], id, payload);
            }
        }
        Ok(files.into_iter().map(|f| f.freeze()).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pack_finish_verify() {
        let codec = Codec::new(4, 2).unwrap();
        let mut p = StripePacker::new(4, 2, 1 << 20);
        let a = vec![1u8; 700 << 10];
        let b = vec![2u8; 500 << 10];
        let pa = p.place(&a).unwrap();
        let pb = p.place(&b).unwrap();
        assert_eq!((pa.shard, pa.row, pa.offset), (0, 0, 0));
        assert_eq!((pb.shard, pb.row), (1, 0));
        let c = vec![3u8; 100 << 10];
        let pc = p.place(&c).unwrap();
        assert_eq!((pc.shard, pc.offset), (0, 700 << 10));
        let files = p.finish(&codec, 9).unwrap();
        assert_eq!(files.len(), 6);
        for (i, f) in files.iter().enumerate() {
            assert_eq!(f.len(), 1 << 20);
            let id = decode_block(f).unwrap();
            assert_eq!((id.stripe, id.shard as usize, id.row), (9, i, 0));
        }
        let mut bad = files[5].to_vec();
        bad[1000] ^= 1;
        assert!(decode_block(&bad).is_err());
        let off = BLOCK_HEADER + pc.offset as usize;
        assert_eq!(&files[0][off..off + c.len()], &c[..]);
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(24))]
        #[test]
        fn packed_chunks_read_back_and_survive_m_losses(
            sizes in proptest::collection::vec(1usize..300_000, 1..40),
            lost in proptest::collection::btree_set(0usize..6, 0..=2),
        ) {
            let codec = Codec::new(4, 2).unwrap();
            let mut p = StripePacker::new(4, 2, 1 << 20);
            let mut placed = Vec::new();
            for (i, n) in sizes.iter().enumerate() {
                let chunk = vec![(i as u8).wrapping_mul(31).wrapping_add(7); *n];
                match p.place(&chunk) {
                    Some(at) => placed.push((at, chunk)),
                    None => break,
                }
            }
            let files = p.finish(&codec, 1).unwrap();
            let bb = 1usize << 20;
            let rows = files[0].len() / bb;
            // Drop up to m shards and rebuild every row from the rest.
            let mut rebuilt: Vec<Vec<u8>> = vec![Vec::new(); 6];
            for row in 0..rows {
                let mut shards: Vec<Option<Vec<u8>>> = (0..6)
                    .map(|s| {
                        let b = &files[s][row * bb..(row + 1) * bb];
                        proptest::prop_assert!(decode_block(b).is_ok());
                        Ok(if lost.contains(&s) { None } else { Some(b[BLOCK_HEADER..].to_vec()) })
                    })
                    .collect::<std::result::Result<_, proptest::test_runner::TestCaseError>>()?;
                codec.reconstruct(&mut shards, 1).unwrap();
                for (s, sh) in shards.into_iter().enumerate() {
                    rebuilt[s].extend_from_slice(&sh.unwrap());
                }
            }
            let payload = bb - BLOCK_HEADER;
            for (at, chunk) in &placed {
                let off = at.row as usize * payload + at.offset as usize;
                proptest::prop_assert!(at.offset as usize + chunk.len() <= payload, "chunk straddles a block");
                proptest::prop_assert_eq!(&rebuilt[at.shard as usize][off..off + chunk.len()], &chunk[..]);
            }
        }
    }
}
