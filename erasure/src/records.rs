//! The metadata records the layout keeps in the shared metadata store. All
//! keys start with `layout/`; values start with a format version byte.
//! See FORMAT.md for the byte layouts.

use crate::error::{LayoutError, Result};

/// Version byte of every record value below.
pub const RECORD_VERSION: u8 = 1;

/// `layout/ext/<id>`: where an extent's bytes are.
pub fn ext_key(id: u64) -> Vec<u8> {
    key(b"layout/ext/", id)
}
/// `layout/gc/<id>`: the extent is dead; the GC worker frees it.
pub fn gc_key(id: u64) -> Vec<u8> {
    key(b"layout/gc/", id)
}
/// `layout/chunk/<id>`: a stored chunk.
pub fn chunk_key(id: u64) -> Vec<u8> {
    key(b"layout/chunk/", id)
}
/// `layout/stripe/<id>`: a stripe's geometry, placement and chunks.
pub fn stripe_key(id: u64) -> Vec<u8> {
    key(b"layout/stripe/", id)
}
/// `layout/dev/<device id>`: uuid of the device formatted in that slot.
pub fn dev_key(id: &str) -> Vec<u8> {
    let mut k = b"layout/dev/".to_vec();
    k.extend_from_slice(id.as_bytes());
    k
}
/// Prefix of all extent records.
pub const EXT_PREFIX: &[u8] = b"layout/ext/";
/// Prefix of all GC markers.
pub const GC_PREFIX: &[u8] = b"layout/gc/";
/// Prefix of all stripe records.
pub const STRIPE_PREFIX: &[u8] = b"layout/stripe/";
/// Prefix of all chunk records.
pub const CHUNK_PREFIX: &[u8] = b"layout/chunk/";
/// Next SLC segment sequence number (u64 BE).
pub const CTR_SLC_SEG: &[u8] = b"layout/ctr/slcseg";
/// Next chunk id (u64 BE).
pub const CTR_CHUNK: &[u8] = b"layout/ctr/chunk";
/// Next stripe id (u64 BE).
pub const CTR_STRIPE: &[u8] = b"layout/ctr/stripe";

fn key(prefix: &[u8], id: u64) -> Vec<u8> {
    let mut k = prefix.to_vec();
    k.extend_from_slice(&id.to_be_bytes());
    k
}

/// Parses the id suffix of a `prefix<u64 BE>` key.
pub fn id_from_key(prefix: &[u8], k: &[u8]) -> Option<u64> {
    let rest = k.strip_prefix(prefix)?;
    Some(u64::from_be_bytes(rest.try_into().ok()?))
}

/// Encodes a counter value.
pub fn encode_u64(v: u64) -> Vec<u8> {
    v.to_be_bytes().to_vec()
}
/// Decodes a counter value.
pub fn decode_u64(v: &[u8]) -> Result<u64> {
    Ok(u64::from_be_bytes(v.try_into().map_err(|_| {
        LayoutError::Corruption("counter record is not 8 bytes".into())
    })?))
}

/// Where an extent's bytes live.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ExtentLoc {
    /// Still in the SLC buffer: record at `off` in segment `seq`.
    Slc {
        /// Segment sequence number.
        seq: u64,
        /// Offset of the record header in the segment file.
        off: u64,
    },
    /// Migrated: the ordered chunks that make up the extent, with each chunk's logical length.
    Chunks(Vec<(u64, u32)>),
}

/// `layout/ext/<id>` value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExtentRecord {
    /// Logical length of the extent.
    pub len: u64,
    /// crc32c of the extent's logical bytes.
    pub crc: u32,
    /// Where the bytes are.
    pub loc: ExtentLoc,
}

/// `layout/chunk/<id>` value. Chunks are refcounted so that a later reducer
/// can share one chunk among many extents.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChunkRecord {
    /// Number of extent references.
    pub refcount: u32,
    /// Encoding tag (see [`crate::reduce::ENCODING_RAW`]).
    pub encoding: u8,
    /// Length after decoding.
    pub logical_len: u32,
    /// Length as stored in the shard.
    pub stored_len: u32,
    /// crc32c of the stored bytes.
    pub crc: u32,
    /// Stripe holding the chunk.
    pub stripe: u64,
    /// Data shard index within the stripe.
    pub shard: u8,
    /// QLC device index holding that shard.
    pub device: u16,
    /// Block row within the shard file.
    pub row: u32,
    /// Offset within the block payload.
    pub offset: u32,
    /// Block size of the stripe.
    pub block_bytes: u32,
    /// The base chunk this chunk's encoding needs (a delta); this chunk holds
    /// one reference on it. Encoded as an optional trailing u64.
    pub base: Option<u64>,
}

/// `layout/stripe/<id>` value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StripeRecord {
    /// Data shards.
    pub k: u8,
    /// Parity shards.
    pub m: u8,
    /// Block rows per shard file.
    pub rows: u32,
    /// Block size.
    pub block_bytes: u32,
    /// QLC device index of each shard (k data then m parity).
    pub devices: Vec<u16>,
    /// Chunks written into this stripe (some may since have been freed).
    pub chunks: Vec<u64>,
    /// Stored bytes of all chunks written.
    pub data_bytes: u64,
    /// Stored bytes of chunks still referenced.
    pub live_bytes: u64,
}

struct W(Vec<u8>);
impl W {
    fn new() -> W {
        W(vec![RECORD_VERSION])
    }
    fn u8(&mut self, v: u8) -> &mut Self {
        self.0.push(v);
        self
    }
    fn u16(&mut self, v: u16) -> &mut Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    fn u32(&mut self, v: u32) -> &mut Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    fn u64(&mut self, v: u64) -> &mut Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
}

struct R<'a> {
    b: &'a [u8],
    what: &'static str,
}
impl<'a> R<'a> {
    fn new(b: &'a [u8], what: &'static str) -> Result<R<'a>> {
        match b.first() {
            Some(&RECORD_VERSION) => Ok(R { b: &b[1..], what }),
            Some(v) => Err(LayoutError::Corruption(format!(
                "{what} record has unknown version {v}"
            ))),
            None => Err(LayoutError::Corruption(format!("{what} record is empty"))),
        }
    }
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        if self.b.len() < n {
            return Err(LayoutError::Corruption(format!(
                "{} record is truncated",
                self.what
            )));
        }
        let (a, rest) = self.b.split_at(n);
        self.b = rest;
        Ok(a)
    }
    fn u8(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<u16> {
        Ok(u16::from_le_bytes(
            self.take(2)?.try_into().unwrap_or([0; 2]),
        ))
    }
    fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_le_bytes(
            self.take(4)?.try_into().unwrap_or([0; 4]),
        ))
    }
    fn u64(&mut self) -> Result<u64> {
        Ok(u64::from_le_bytes(
            self.take(8)?.try_into().unwrap_or([0; 8]),
        ))
    }
    fn done(&self) -> Result<()> {
        if self.b.is_empty() {
            Ok(())
        } else {
            Err(LayoutError::Corruption(format!(
                "{} record has trailing bytes",
                self.what
            )))
        }
    }
}

impl ExtentRecord {
    /// Serializes the record.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = W::new();
        match &self.loc {
            ExtentLoc::Slc { seq, off } => {
                w.u8(0).u64(self.len).u32(self.crc).u64(*seq).u64(*off);
            }
            ExtentLoc::Chunks(chunks) => {
                w.u8(1).u64(self.len).u32(self.crc).u32(chunks.len() as u32);
                for (id, len) in chunks {
                    w.u64(*id).u32(*len);
                }
            }
        }
        w.0
    }
    /// Parses a record, rejecting unknown versions and malformed bytes.
    pub fn decode(b: &[u8]) -> Result<ExtentRecord> {
        let mut r = R::new(b, "extent")?;
        let kind = r.u8()?;
        let len = r.u64()?;
        let crc = r.u32()?;
        let loc = match kind {
            0 => ExtentLoc::Slc {
                seq: r.u64()?,
                off: r.u64()?,
            },
            1 => {
                let n = r.u32()? as usize;
                let mut v = Vec::with_capacity(n.min(1 << 16));
                for _ in 0..n {
                    v.push((r.u64()?, r.u32()?));
                }
                ExtentLoc::Chunks(v)
            }
            k => {
                return Err(LayoutError::Corruption(format!(
                    "extent record has unknown kind {k}"
                )))
            }
        };
        r.done()?;
        Ok(ExtentRecord { len, crc, loc })
    }
}

impl ChunkRecord {
    /// Serializes the record.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = W::new();
        w.u32(self.refcount)
            .u8(self.encoding)
            .u32(self.logical_len)
            .u32(self.stored_len)
            .u32(self.crc)
            .u64(self.stripe)
            .u8(self.shard)
            .u16(self.device)
            .u32(self.row)
            .u32(self.offset)
            .u32(self.block_bytes);
        if let Some(b) = self.base {
            w.u64(b);
        }
        w.0
    }
    /// Parses a record.
    pub fn decode(b: &[u8]) -> Result<ChunkRecord> {
        let mut r = R::new(b, "chunk")?;
        let mut c = ChunkRecord {
            refcount: r.u32()?,
            encoding: r.u8()?,
            logical_len: r.u32()?,
            stored_len: r.u32()?,
            crc: r.u32()?,
            stripe: r.u64()?,
            shard: r.u8()?,
            device: r.u16()?,
            row: r.u32()?,
            offset: r.u32()?,
            block_bytes: r.u32()?,
            base: None,
        };
        if !r.b.is_empty() {
            c.base = Some(r.u64()?);
        }
        r.done()?;
        Ok(c)
    }
}

impl StripeRecord {
    /// Serializes the record.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = W::new();
        w.u8(self.k)
            .u8(self.m)
            .u32(self.rows)
            .u32(self.block_bytes)
            .u64(self.data_bytes)
            .u64(self.live_bytes);
        for d in &self.devices {
            w.u16(*d);
        }
        w.u32(self.chunks.len() as u32);
        for c in &self.chunks {
            w.u64(*c);
        }
        w.0
    }
    /// Parses a record.
    pub fn decode(b: &[u8]) -> Result<StripeRecord> {
        let mut r = R::new(b, "stripe")?;
        let k = r.u8()?;
        let m = r.u8()?;
        let rows = r.u32()?;
        let block_bytes = r.u32()?;
        let data_bytes = r.u64()?;
        let live_bytes = r.u64()?;
        let mut devices = Vec::with_capacity(k as usize + m as usize);
        for _ in 0..(k as usize + m as usize) {
            devices.push(r.u16()?);
        }
        let n = r.u32()? as usize;
        let mut chunks = Vec::with_capacity(n.min(1 << 16));
        for _ in 0..n {
            chunks.push(r.u64()?);
        }
        r.done()?;
        Ok(StripeRecord {
            k,
            m,
            rows,
            block_bytes,
            devices,
            chunks,
            data_bytes,
            live_bytes,
        })
    }
    /// Total shards.
    pub fn width(&self) -> usize {
        self.k as usize + self.m as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip() {
        let e = ExtentRecord {
            len: 10,
            crc: 7,
            loc: ExtentLoc::Chunks(vec![(1, 4), (2, 6)]),
        };
        assert_eq!(ExtentRecord::decode(&e.encode()).unwrap(), e);
        let e2 = ExtentRecord {
            len: 3,
            crc: 1,
            loc: ExtentLoc::Slc { seq: 5, off: 99 },
        };
        assert_eq!(ExtentRecord::decode(&e2.encode()).unwrap(), e2);
        let c = ChunkRecord {
            refcount: 1,
            encoding: 0,
            logical_len: 5,
            stored_len: 5,
            crc: 9,
            stripe: 3,
            shard: 2,
            device: 4,
            row: 1,
            offset: 100,
            block_bytes: 1 << 20,
            base: None,
        };
        assert_eq!(ChunkRecord::decode(&c.encode()).unwrap(), c);
        let d = ChunkRecord {
            base: Some(42),
            ..c.clone()
        };
        assert_eq!(ChunkRecord::decode(&d.encode()).unwrap(), d);

        let s = StripeRecord {
            k: 4,
            m: 2,
            rows: 2,
            block_bytes: 1 << 20,
            devices: vec![0, 1, 2, 3, 4, 5],
            chunks: vec![1, 2, 3],
            data_bytes: 100,
            live_bytes: 50,
        };
        assert_eq!(StripeRecord::decode(&s.encode()).unwrap(), s);
        let mut bad = s.encode();
        bad[0] = 9;
        assert!(StripeRecord::decode(&bad).is_err());
        assert!(StripeRecord::decode(&s.encode()[..10]).is_err());
    }
}
