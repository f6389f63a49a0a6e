//! Varints, fixed-width integers and the internal key encoding.
//!
//! An internal key is `user_key ++ be64(seq << 8 | kind)`. Internal keys sort by user key
//! ascending, then by trailer descending (newest version first).

use std::cmp::Ordering;

/// Entry kind: a tombstone.
pub(crate) const KIND_DELETE: u8 = 0;
/// Entry kind: a value.
pub(crate) const KIND_PUT: u8 = 1;
/// Largest sequence number representable in a trailer.
pub(crate) const MAX_SEQ: u64 = (1 << 56) - 1;

pub(crate) fn put_varint(buf: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        buf.push((v as u8) | 0x80);
        v >>= 7;
    }
    buf.push(v as u8);
}

/// Decodes a varint at `*pos`, advancing it; `None` on truncation or overflow.
#[inline]
pub(crate) fn get_varint(buf: &[u8], pos: &mut usize) -> Option<u64> {
    let b = *buf.get(*pos)?;
    if b < 0x80 {
        *pos += 1;
        return Some(u64::from(b));
    }
    get_varint_slow(buf, pos)
}

fn get_varint_slow(buf: &[u8], pos: &mut usize) -> Option<u64> {
    let mut v: u64 = 0;
    let mut shift = 0u32;
    loop {
        let b = *buf.get(*pos)?;
        *pos += 1;
        if shift > 63 {
            return None;
        }
        v |= u64::from(b & 0x7f) << shift;
        if b < 0x80 {
            return Some(v);
        }
        shift += 7;
    }
}

pub(crate) fn get_u32(buf: &[u8], pos: usize) -> Option<u32> {
    let b = buf.get(pos..pos + 4)?;
    Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}

pub(crate) fn get_u64(buf: &[u8], pos: usize) -> Option<u64> {
    let b = buf.get(pos..pos + 8)?;
    let mut a = [0u8; 8];
    a.copy_from_slice(b);
    Some(u64::from_le_bytes(a))
}

/// Reads a varint length followed by that many bytes.
pub(crate) fn get_len_prefixed<'a>(buf: &'a [u8], pos: &mut usize) -> Option<&'a [u8]> {
    let len = usize::try_from(get_varint(buf, pos)?).ok()?;
    let end = pos.checked_add(len)?;
    let s = buf.get(*pos..end)?;
    *pos = end;
    Some(s)
}

pub(crate) fn put_len_prefixed(buf: &mut Vec<u8>, s: &[u8]) {
    put_varint(buf, s.len() as u64);
    buf.extend_from_slice(s);
}

/// Appends the internal key for `(user, seq, kind)` to `buf`.
pub(crate) fn append_ikey(buf: &mut Vec<u8>, user: &[u8], seq: u64, kind: u8) {
    buf.extend_from_slice(user);
    buf.extend_from_slice(&((seq << 8) | u64::from(kind)).to_be_bytes());
}

pub(crate) fn make_ikey(user: &[u8], seq: u64, kind: u8) -> Vec<u8> {
    let mut v = Vec::with_capacity(user.len() + 8);
    append_ikey(&mut v, user, seq, kind);
    v
}

/// The key to seek to for the newest version of `user` visible at `seq`.
pub(crate) fn seek_ikey(user: &[u8], seq: u64) -> Vec<u8> {
    make_ikey(user, seq, KIND_PUT)
}

/// Splits an internal key; a key shorter than 8 bytes is reported as `None`.
pub(crate) fn split_ikey(ik: &[u8]) -> Option<(&[u8], u64, u8)> {
    if ik.len() < 8 {
        return None;
    }
    let (u, t) = ik.split_at(ik.len() - 8);
    let mut a = [0u8; 8];
    a.copy_from_slice(t);
    let tr = u64::from_be_bytes(a);
    Some((u, tr >> 8, (tr & 0xff) as u8))
}

/// User-key part of an internal key (the whole slice if it is malformed).
pub(crate) fn user_key(ik: &[u8]) -> &[u8] {
    if ik.len() < 8 {
        ik
    } else {
        &ik[..ik.len() - 8]
    }
}

fn trailer(ik: &[u8]) -> u64 {
    if ik.len() < 8 {
        return 0;
    }
    let mut a = [0u8; 8];
    a.copy_from_slice(&ik[ik.len() - 8..]);
    u64::from_be_bytes(a)
}

/// Internal-key order: user key ascending, then trailer (sequence) descending.
pub(crate) fn cmp_ikey(a: &[u8], b: &[u8]) -> Ordering {
    user_key(a)
        .cmp(user_key(b))
        .then_with(|| trailer(b).cmp(&trailer(a)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varint_roundtrip() {
        for v in [0u64, 1, 127, 128, 300, u32::MAX as u64, u64::MAX] {
            let mut b = Vec::new();
            put_varint(&mut b, v);
            let mut p = 0;
            assert_eq!(get_varint(&b, &mut p), Some(v));
            assert_eq!(p, b.len());
        }
        let mut p = 0;
        assert_eq!(get_varint(&[0x80, 0x80], &mut p), None);
    }

    #[test]
    fn ikey_order() {
        let a = make_ikey(b"a", 5, KIND_PUT);
        let a_old = make_ikey(b"a", 3, KIND_PUT);
        let ab = make_ikey(b"ab", 9, KIND_PUT);
        assert_eq!(cmp_ikey(&a, &a_old), Ordering::Less);
        assert_eq!(cmp_ikey(&a_old, &ab), Ordering::Less);
        assert_eq!(split_ikey(&a), Some((&b"a"[..], 5, KIND_PUT)));
        assert_eq!(cmp_ikey(&seek_ikey(b"a", 4), &a_old), Ordering::Less);
        assert_eq!(cmp_ikey(&seek_ikey(b"a", 4), &a), Ordering::Greater);
    }
}
