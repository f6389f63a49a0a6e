//! Write batches and their on-log encoding.

use crate::coding::{get_len_prefixed, get_u32, get_u64, put_len_prefixed, KIND_DELETE, KIND_PUT};
use crate::error::Error;

/// Longest key accepted by [`crate::Db::write`].
pub const MAX_KEY_BYTES: usize = 16 << 10;
/// Largest value accepted by [`crate::Db::write`].
pub const MAX_VALUE_BYTES: usize = 8 << 20;
/// Largest encoded batch accepted by [`crate::Db::write`].
pub const MAX_BATCH_BYTES: usize = 512 << 20;

/// An ordered list of puts and deletes applied atomically: after a crash either every
/// operation of the batch is present or none is. Later operations on the same key win.
#[derive(Default, Clone, Debug)]
pub struct WriteBatch {
    pub(crate) ops: Vec<u8>,
    pub(crate) count: u32,
    pub(crate) too_large: Option<String>,
}

impl WriteBatch {
    /// An empty batch.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets `key` to `value`.
    pub fn put(&mut self, key: impl AsRef<[u8]>, value: impl AsRef<[u8]>) {
        let (k, v) = (key.as_ref(), value.as_ref());
        self.check(k, Some(v));
        self.ops.push(KIND_PUT);
        put_len_prefixed(&mut self.ops, k);
        put_len_prefixed(&mut self.ops, v);
        self.count += 1;
    }

    /// Removes `key` (a no-op if it is absent).
    pub fn delete(&mut self, key: impl AsRef<[u8]>) {
        let k = key.as_ref();
        self.check(k, None);
        self.ops.push(KIND_DELETE);
        put_len_prefixed(&mut self.ops, k);
        self.count += 1;
    }

    /// Number of operations in the batch.
    pub fn len(&self) -> usize {
        self.count as usize
    }

    /// True when the batch holds no operation.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Removes every operation.
    pub fn clear(&mut self) {
        self.ops.clear();
        self.count = 0;
        self.too_large = None;
    }

    fn check(&mut self, k: &[u8], v: Option<&[u8]>) {
        if self.too_large.is_some() {
            return;
        }
        if k.len() > MAX_KEY_BYTES {
            self.too_large = Some(format!("key of {} bytes exceeds {MAX_KEY_BYTES}", k.len()));
        } else if let Some(v) = v.filter(|v| v.len() > MAX_VALUE_BYTES) {
            self.too_large = Some(format!(
                "value of {} bytes exceeds {MAX_VALUE_BYTES}",
                v.len()
            ));
        } else if self.ops.len() + k.len() + v.map_or(0, <[u8]>::len) > MAX_BATCH_BYTES {
            self.too_large = Some(format!("batch exceeds {MAX_BATCH_BYTES} bytes"));
        }
    }

    pub(crate) fn validate(&self) -> Result<(), Error> {
        match &self.too_large {
            Some(m) => Err(Error::InvalidArgument(m.clone())),
            None => Ok(()),
        }
    }
}

/// One decoded operation: (kind, key, value).
pub(crate) type Op<'a> = (u8, &'a [u8], &'a [u8]);

/// Encodes a WAL record payload: `seq u64 LE | count u32 LE | ops`.
pub(crate) fn encode_record(buf: &mut Vec<u8>, seq: u64, batch: &WriteBatch) {
    buf.extend_from_slice(&seq.to_le_bytes());
    buf.extend_from_slice(&batch.count.to_le_bytes());
    buf.extend_from_slice(&batch.ops);
}

/// Decodes a WAL record payload into its first sequence number and operations.
/// `None` if the payload is malformed in any way.
pub(crate) fn decode_record(payload: &[u8]) -> Option<(u64, Vec<Op<'_>>)> {
    let seq = get_u64(payload, 0)?;
    let count = get_u32(payload, 8)? as usize;
    Some((seq, parse_ops(payload.get(12..)?, count)?))
}

/// Parses exactly `count` operations that fill `ops` completely.
pub(crate) fn parse_ops(ops: &[u8], count: usize) -> Option<Vec<Op<'_>>> {
    let mut pos = 0;
    let mut out = Vec::with_capacity(count.min(1 << 16));
    for _ in 0..count {
        let kind = *ops.get(pos)?;
        pos += 1;
        let key = get_len_prefixed(ops, &mut pos)?;
        let val: &[u8] = match kind {
            KIND_PUT => get_len_prefixed(ops, &mut pos)?,
            KIND_DELETE => &[],
            _ => return None,
        };
        out.push((kind, key, val));
    }
    (pos == ops.len()).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip() {
        let mut b = WriteBatch::new();
        b.put(b"k1", b"v1");
        b.delete(b"k2");
        b.put(b"", vec![7u8; 1000]);
        assert_eq!(b.len(), 3);
        let mut rec = Vec::new();
        encode_record(&mut rec, 42, &b);
        let (seq, ops) = decode_record(&rec).unwrap();
        assert_eq!(seq, 42);
        assert_eq!(ops.len(), 3);
        assert_eq!(ops[0], (KIND_PUT, &b"k1"[..], &b"v1"[..]));
        assert_eq!(ops[1], (KIND_DELETE, &b"k2"[..], &b""[..]));
        assert_eq!(ops[2].2.len(), 1000);
        assert!(decode_record(&rec[..rec.len() - 1]).is_none());
    }

    #[test]
    fn oversized_rejected() {
        let mut b = WriteBatch::new();
        b.put(vec![0u8; MAX_KEY_BYTES + 1], b"v");
        assert!(matches!(b.validate(), Err(Error::InvalidArgument(_))));
        let mut b = WriteBatch::new();
        b.put(b"k", vec![0u8; MAX_VALUE_BYTES + 1]);
        assert!(b.validate().is_err());
        let mut b = WriteBatch::new();
        b.put(vec![0u8; 4096], vec![0u8; 1 << 20]);
        assert!(b.validate().is_ok());
    }
}
