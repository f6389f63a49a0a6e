//! The stored encodings of reduced chunks (see FORMAT.md, "Chunk encodings").
//! Every encoding other than raw starts with the crc32c of the chunk's
//! logical bytes, checked after decoding, so a decoder bug or a wrong base
//! is an error and never wrong bytes.

use std::cell::RefCell;

use zstd::zstd_safe::{CCtx, DCtx};

use super::deflate::{self, put_varint, BitWriter, Block, ChunkTokens, TokenStart};
use super::features::{from_planes, to_planes};
use crate::error::{LayoutError, Result};

/// zstd frame of the logical bytes.
pub const ENCODING_ZSTD: u8 = 1;
/// zstd frame of the byte planes of an array of 16- or 32-bit floats (read
/// only: superseded by [`ENCODING_SPLIT_PLANES`]).
pub const ENCODING_ZSTD_PLANES: u8 = 2;
/// zstd frame of the logical bytes compressed with the base chunk's logical
/// bytes as a raw-content dictionary (the chunk record names the base).
pub const ENCODING_DELTA: u8 = 3;

/// zstd frame of the byte planes of a float chunk compressed with the byte
/// planes of the base chunk's logical bytes as a raw-content dictionary
/// (read only: superseded by [`ENCODING_XOR_PLANES`]).
pub const ENCODING_DELTA_PLANES: u8 = 4;

/// The byte planes of an array of 16- or 32-bit floats, each plane its own
/// zstd frame (or raw where zstd does not shrink it): the planes differ
/// wildly in entropy (sign/exponent vs low mantissa), and one frame would
/// code them all with one set of literal tables.
pub const ENCODING_SPLIT_PLANES: u8 = 5;

/// A float chunk XORed element by element with its base (same element
/// width, both from their own phase), stored as [`ENCODING_SPLIT_PLANES`]
/// stores planes (read only: superseded by [`ENCODING_SUB_PLANES`]).
pub const ENCODING_XOR_PLANES: u8 = 6;

/// A float chunk minus its base, element by element as little-endian
/// integers of the element width (wrapping), zigzag-folded so that small
/// differences of either sign have zero high bytes, stored as
/// [`ENCODING_SPLIT_PLANES`] stores planes. A dense training update moves
/// each weight by a small step: the difference of the bit patterns is a
/// small integer, where an XOR also flips the high bits of every element
/// whose low mantissa carries across a byte (measured on the checkpoint
/// corpus: weights 1.72× → 1.80×, momentum 1.24× → 1.32×).
pub const ENCODING_SUB_PLANES: u8 = 7;

/// A chunk of a deflate stream stored as its deflate tokens (see
/// [`super::deflate`]), zstd-compressed with the tokens of the base chunk
/// as a raw-content dictionary; the bits before the chunk's first whole
/// token and after its last are kept verbatim, and where the chunk's and
/// the base's tokens start in their streams is recorded with it.
pub const ENCODING_TOKENS_DELTA: u8 = 8;

/// A chunk of a deflate stream stored as its bytes, with where its tokens
/// start, so that it can serve as a base for [`ENCODING_TOKENS_DELTA`]
/// again after a restart (raw would not say where its tokens start).
pub const ENCODING_STREAM_RAW: u8 = 9;

/// Largest logical length a chunk can have (chunks are at most one block
/// payload); a record claiming more is corrupt, and decoding must not
/// reserve memory for it.
pub const MAX_LOGICAL: usize = 16 << 20;

/// Flag in a plane segment's length word: the segment is stored raw.
const SEGMENT_RAW: u32 = 1 << 31;

/// The zstd frame magic of a formatted dictionary: a base starting with it
/// would be parsed as one, so such chunks are never used as bases.
pub const ZSTD_DICT_MAGIC: [u8; 4] = 0xEC30_A437u32.to_le_bytes();

thread_local! {
    static CCTX: RefCell<CCtx<'static>> = RefCell::new(CCtx::create());
    static DCTX: RefCell<DCtx<'static>> = RefCell::new(DCtx::create());
    static FRAME: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

fn zerr(what: &str, code: usize) -> LayoutError {
    LayoutError::Corruption(format!("{what}: {}", zstd::zstd_safe::get_error_name(code)))
}

/// Compresses `src` (with `dict` as raw content when non-empty) into `out`
/// after a header; returns `false` when the result would not be smaller than
/// `limit` bytes (the caller then keeps another encoding).
pub fn compress_into(
    out: &mut Vec<u8>,
    src: &[u8],
    dict: &[u8],
    level: i32,
    limit: usize,
) -> Result<bool> {
    let head = out.len();
    let bound = zstd::zstd_safe::compress_bound(src.len());
    CCTX.with(|c| {
        FRAME.with(|f| {
            let (mut c, mut frame) = (c.borrow_mut(), f.borrow_mut());
            // One frame buffer per thread: a fresh one per call costs page faults.
            frame.clear();
            frame.reserve(bound);
            let r = if dict.is_empty() {
                c.compress(&mut *frame, src, level)
            } else {
                c.compress_using_dict(&mut *frame, src, dict, level)
            };
            r.map_err(|e| zerr("zstd compression failed", e))?;
            if head + frame.len() >= limit {
                return Ok(false);
            }
            out.extend_from_slice(&frame);
            Ok(true)
        })
    })
}

fn decompress(src: &[u8], dict: &[u8], logical_len: usize) -> Result<Vec<u8>> {
    let mut out: Vec<u8> = Vec::with_capacity(logical_len);
    DCTX.with(|d| {
        let mut d = d.borrow_mut();
        let r = if dict.is_empty() {
            d.decompress(&mut out, src)
        } else {
            d.decompress_using_dict(&mut out, src, dict)
        };
        r.map_err(|e| zerr("zstd frame does not decode", e))
    })?;
    Ok(out)
}

/// Writes `logical` as [`ENCODING_DELTA`] against `base` into `out`
/// (replacing what it held); `false` where it would not be smaller than
/// `limit` bytes.
pub fn delta_into(
    out: &mut Vec<u8>,
    logical: &[u8],
    base: &[u8],
    level: i32,
    limit: usize,
) -> Result<bool> {
    header(out, logical);
    compress_into(out, logical, base, level, limit)
}

/// Writes the common header (crc32c of the logical bytes).
pub fn header(out: &mut Vec<u8>, logical: &[u8]) {
    out.clear();
    out.extend_from_slice(&crc32c::crc32c(logical).to_le_bytes());
}

/// Decodes a chunk stored with `encoding`; `base` is the logical bytes of the
/// base chunk for [`ENCODING_DELTA`].
pub fn decode(
    encoding: u8,
    stored: &[u8],
    logical_len: u32,
    base: Option<&[u8]>,
) -> Result<Vec<u8>> {
    let len = logical_len as usize;
    if len > MAX_LOGICAL {
        return Err(LayoutError::Corruption(format!(
            "chunk claims {len} logical bytes, more than any chunk holds"
        )));
    }
    if stored.len() < 4 {
        return Err(LayoutError::Corruption(format!(
            "encoded chunk of {} bytes has no header",
            stored.len()
        )));
    }
    let crc = u32::from_le_bytes([stored[0], stored[1], stored[2], stored[3]]);
    let body = &stored[4..];
    let out = match encoding {
        ENCODING_ZSTD => decompress(body, &[], len)?,
        ENCODING_ZSTD_PLANES => {
            let (&layout, frame) = body.split_first().ok_or_else(|| {
                LayoutError::Corruption("plane-encoded chunk has no width".into())
            })?;
            let (width, phase) = (layout & 0x0f, layout >> 4);
            if (width != 2 && width != 4) || phase >= width {
                return Err(LayoutError::Corruption(format!(
                    "plane-encoded chunk has width {width}"
                )));
            }
            let planes = decompress(frame, &[], len)?;
            if planes.len() != len {
                return Err(LayoutError::Corruption(format!(
                    "plane-encoded chunk decoded to {} bytes, expected {len}",
                    planes.len()
                )));
            }
            from_planes(&planes, width as usize, phase as usize)
        }
        ENCODING_DELTA => decompress(body, need_base(base)?, len)?,
        ENCODING_DELTA_PLANES => {
            let base = need_base(base)?;
            let ((w, p), (bw, bp), frame) = two_layouts(body)?;
            let mut dict = Vec::new();
            to_planes(base, bw, bp, &mut dict);
            let planes = decompress(frame, &dict, len)?;
            if planes.len() != len {
                return Err(LayoutError::Corruption(format!(
                    "plane delta chunk decoded to {} bytes, expected {len}",
                    planes.len()
                )));
            }
            from_planes(&planes, w, p)
        }
        ENCODING_SPLIT_PLANES => {
            let (&layout, segs) = body.split_first().ok_or_else(|| {
                LayoutError::Corruption("plane-encoded chunk has no layout".into())
            })?;
            let (w, p) = parse_layout(layout)?;
            from_planes(&segments_decode(segs, &plane_lens(len, w, p))?, w, p)
        }
        ENCODING_XOR_PLANES | ENCODING_SUB_PLANES => {
            let delta = if encoding == ENCODING_XOR_PLANES {
                ElementDelta::Xor
            } else {
                ElementDelta::Difference
            };
            let base = need_base(base)?;
            let ((w, p), (bw, bp), segs) = two_layouts(body)?;
            if bw != w {
                return Err(LayoutError::Corruption(format!(
                    "element delta of width {w} against a base of width {bw}"
                )));
            }
            let mut out = from_planes(&segments_decode(segs, &plane_lens(len, w, p))?, w, p);
            delta.undo(&mut out, (w, p), base, bp);
            out
        }
        ENCODING_TOKENS_DELTA => tokens_delta_decode(body, len, need_base(base)?)?,
        ENCODING_STREAM_RAW => {
            let (_, bytes) = stream_raw_parts(body)?;
            bytes.to_vec()
        }
        e => {
            return Err(LayoutError::Corruption(format!(
                "chunk encoding {e} is not known to this reducer"
            )))
        }
    };
    if out.len() != len || crc32c::crc32c(&out) != crc {
        return Err(LayoutError::Corruption(format!(
            "chunk (encoding {encoding}) decoded to bytes that fail their checksum"
        )));
    }
    Ok(out)
}

/// `(width, phase)` of a float chunk.
type Layout = (usize, usize);

/// The float layout a chunk stored as byte planes (encodings 2 and 5) was
/// encoded with; `None` for other encodings or a malformed layout byte.
pub fn planes_layout(encoding: u8, stored: &[u8]) -> Option<Layout> {
    match encoding {
        ENCODING_ZSTD_PLANES | ENCODING_SPLIT_PLANES => parse_layout(*stored.get(4)?).ok(),
        _ => None,
    }
}

/// The base a delta encoding needs, or a corruption error.
fn need_base(base: Option<&[u8]>) -> Result<&[u8]> {
    base.ok_or_else(|| LayoutError::Corruption("delta chunk decoded without its base".into()))
}

/// The chunk's and the base's layout bytes at the start of a plane delta, and the rest.
fn two_layouts(body: &[u8]) -> Result<(Layout, Layout, &[u8])> {
    match body {
        [l, bl, rest @ ..] => Ok((parse_layout(*l)?, parse_layout(*bl)?, rest)),
        _ => Err(LayoutError::Corruption(
            "plane delta chunk has no layout".into(),
        )),
    }
}

fn parse_layout(b: u8) -> Result<(usize, usize)> {
    let (w, p) = ((b & 0x0f) as usize, (b >> 4) as usize);
    if (w != 2 && w != 4) || p >= w {
        return Err(LayoutError::Corruption(format!(
            "plane-encoded chunk has layout {b:#x}"
        )));
    }
    Ok((w, p))
}

/// Segment lengths of the planes of `len` bytes of `width`-byte elements
/// from `phase`: the bytes before the first element, one plane per byte of
/// an element, the tail that is not a whole element.
fn plane_lens(len: usize, width: usize, phase: usize) -> Vec<usize> {
    let phase = phase.min(len);
    let n = (len - phase) / width;
    let mut v = Vec::with_capacity(width + 2);
    v.push(phase);
    v.extend(std::iter::repeat_n(n, width));
    v.push(len - phase - n * width);
    v
}

/// How a float chunk is turned into a delta against its base, element by element.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ElementDelta {
    /// XOR of the bytes ([`ENCODING_XOR_PLANES`], read only).
    Xor,
    /// Zigzag-folded wrapping difference of the elements as little-endian
    /// integers ([`ENCODING_SUB_PLANES`]).
    Difference,
}

impl ElementDelta {
    /// The encoding tag of chunks stored with this delta.
    pub fn encoding(self) -> u8 {
        match self {
            ElementDelta::Xor => ENCODING_XOR_PLANES,
            ElementDelta::Difference => ENCODING_SUB_PLANES,
        }
    }

    /// Turns the elements of `buf` (layout `(width, phase)`) into their delta
    /// against those of `base` (from `base_phase`) with the same index.
    fn apply(self, buf: &mut [u8], layout: (usize, usize), base: &[u8], base_phase: usize) {
        self.map(buf, layout, base, base_phase, false)
    }

    /// Undoes [`ElementDelta::apply`].
    fn undo(self, buf: &mut [u8], layout: (usize, usize), base: &[u8], base_phase: usize) {
        self.map(buf, layout, base, base_phase, true)
    }

    /// XOR: every byte from the phases on that both hold (its own inverse).
    /// Difference: every whole element both hold; other bytes stay.
    fn map(
        self,
        buf: &mut [u8],
        (width, phase): (usize, usize),
        base: &[u8],
        base_phase: usize,
        undo: bool,
    ) {
        let a = buf.get_mut(phase..).unwrap_or_default();
        let b = base.get(base_phase..).unwrap_or_default();
        let n = a.len().min(b.len());
        match (self, width) {
            (ElementDelta::Xor, _) => {
                for (x, y) in a[..n].iter_mut().zip(&b[..n]) {
                    *x ^= *y;
                }
            }
            (ElementDelta::Difference, 2 | 4) => {
                let bits = 8 * width as u32;
                for (x, y) in a.chunks_exact_mut(width).zip(b.chunks_exact(width)) {
                    let (v, w) = (le_uint(x), le_uint(y));
                    let r = if undo {
                        zigzag_undo(v, w, bits)
                    } else {
                        zigzag_diff(v, w, bits)
                    };
                    x.copy_from_slice(&r.to_le_bytes()[..width]);
                }
            }
            (ElementDelta::Difference, _) => {}
        }
    }
}

/// The wrapping difference `v - w` of two `bits`-bit integers (16 or 32),
/// zigzag-folded: small differences of either sign get zero high bytes.
#[inline(always)]
fn zigzag_diff(v: u32, w: u32, bits: u32) -> u32 {
    let mask = u32::MAX >> (32 - bits);
    let d = v.wrapping_sub(w) & mask;
    ((d << 1) ^ 0u32.wrapping_sub(d >> (bits - 1))) & mask
}

/// Inverse of [`zigzag_diff`]: the `v` whose folded difference against `w` is `z`.
#[inline(always)]
fn zigzag_undo(z: u32, w: u32, bits: u32) -> u32 {
    let mask = u32::MAX >> (32 - bits);
    w.wrapping_add((z >> 1) ^ (z & 1).wrapping_neg()) & mask
}

/// A little-endian unsigned integer of up to 4 bytes.
fn le_uint(b: &[u8]) -> u32 {
    b.iter().rev().fold(0, |acc, &x| acc << 8 | x as u32)
}

/// Writes `src` cut into segments of `lens` bytes, each a u32 length word
/// then a zstd frame, or the raw bytes (flag [`SEGMENT_RAW`]) where zstd
/// does not shrink it; `false` when the output would reach `limit`.
fn segments_into(
    out: &mut Vec<u8>,
    src: &[u8],
    lens: &[usize],
    level: i32,
    limit: usize,
) -> Result<bool> {
    let mut at = 0;
    for &len in lens {
        let seg = &src[at..at + len];
        at += len;
        let word = out.len();
        out.extend_from_slice(&[0; 4]);
        let framed = !seg.is_empty()
            && !looks_random(seg)
            && compress_into(out, seg, &[], level, word + 4 + len)?;
        let v = if framed {
            (out.len() - word - 4) as u32
        } else {
            out.extend_from_slice(seg);
            len as u32 | SEGMENT_RAW
        };
        out[word..word + 4].copy_from_slice(&v.to_le_bytes());
        if out.len() >= limit {
            return Ok(false);
        }
    }
    Ok(true)
}

/// True when the byte histogram of `seg` says zstd cannot gain more than
/// ~2% (order-0 entropy above 7.85 bits per byte; the low mantissa planes of
/// floats): such segments are stored raw without trying.
fn looks_random(seg: &[u8]) -> bool {
    if seg.len() < 4096 {
        return false;
    }
    // Every 4th byte: 2048 samples of a random 8 KiB plane still estimate ~7.9 bits.
    super::features::byte_entropy(seg.iter().step_by(4).copied()) > 7.85
}

/// Inverse of [`segments_into`] for segments of the expected `lens`.
fn segments_decode(mut body: &[u8], lens: &[usize]) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(lens.iter().sum());
    for &len in lens {
        if body.len() < 4 {
            return Err(LayoutError::Corruption(
                "plane segment has no length".into(),
            ));
        }
        let v = u32::from_le_bytes([body[0], body[1], body[2], body[3]]);
        let n = (v & !SEGMENT_RAW) as usize;
        let seg = body
            .get(4..4 + n)
            .ok_or_else(|| LayoutError::Corruption("plane segment runs past the chunk".into()))?;
        body = &body[4 + n..];
        if v & SEGMENT_RAW != 0 {
            if n != len {
                return Err(LayoutError::Corruption(format!(
                    "raw plane segment of {n} bytes, expected {len}"
                )));
            }
            out.extend_from_slice(seg);
        } else {
            let d = decompress(seg, &[], len)?;
            if d.len() != len {
                return Err(LayoutError::Corruption(format!(
                    "plane segment decoded to {} bytes, expected {len}",
                    d.len()
                )));
            }
            out.extend_from_slice(&d);
        }
    }
    if !body.is_empty() {
        return Err(LayoutError::Corruption(
            "bytes after the last plane segment".into(),
        ));
    }
    Ok(out)
}

/// Encodes `logical` (floats of `layout`) as split byte planes; `false`
/// when it would not be smaller than `limit`.
pub fn split_planes_into(
    out: &mut Vec<u8>,
    logical: &[u8],
    layout: (usize, usize),
    level: i32,
    limit: usize,
) -> Result<bool> {
    let (w, p) = layout;
    let mut planes = Vec::new();
    to_planes(logical, w, p, &mut planes);
    header(out, logical);
    out.push(w as u8 | ((p as u8) << 4));
    segments_into(out, &planes, &plane_lens(logical.len(), w, p), level, limit)
}

/// Encodes `logical` (floats of `layout`) as its `delta` against `base`
/// (its logical bytes and float layout, same width) in split byte planes,
/// for the encoding `delta.encoding()`; `false` when the widths differ or it
/// would not be smaller than `limit`.
pub fn element_delta_into(
    out: &mut Vec<u8>,
    delta: ElementDelta,
    logical: &[u8],
    layout: (usize, usize),
    (base, base_layout): (&[u8], (usize, usize)),
    level: i32,
    limit: usize,
) -> Result<bool> {
    let ((w, p), (bw, bp)) = (layout, base_layout);
    if w != bw {
        return Ok(false);
    }
    let mut planes = Vec::new();
    if delta == ElementDelta::Difference && (w == 2 || w == 4) {
        difference_planes(logical, layout, base, bp, &mut planes);
    } else {
        let mut x = logical.to_vec();
        delta.apply(&mut x, layout, base, bp);
        to_planes(&x, w, p, &mut planes);
    }
    header(out, logical);
    out.push(w as u8 | ((p as u8) << 4));
    out.push(bw as u8 | ((bp as u8) << 4));
    segments_into(out, &planes, &plane_lens(logical.len(), w, p), level, limit)
}

/// [`ElementDelta::Difference`] of `logical` (elements of `width` 2 or 4
/// from `phase`) against `base` (from `base_phase`), split into byte planes
/// in one pass: the same bytes as `apply` followed by [`to_planes`] (the
/// checkpoint pipeline's hottest loop).
fn difference_planes(
    logical: &[u8],
    (width, phase): Layout,
    base: &[u8],
    base_phase: usize,
    out: &mut Vec<u8>,
) {
    let phase = phase.min(logical.len());
    let body = &logical[phase..];
    let n = body.len() / width;
    let b = base.get(base_phase..).unwrap_or_default();
    out.clear();
    out.resize(logical.len(), 0);
    out[..phase].copy_from_slice(&logical[..phase]);
    let (planes, tail) = out[phase..].split_at_mut(n * width);
    tail.copy_from_slice(&body[n * width..]);
    if width == 4 {
        difference_into_planes::<4>(body, b, planes, n);
    } else {
        difference_into_planes::<2>(body, b, planes, n);
    }
}

/// Writes the `W`-byte elements of `body` into `W` planes of `n` bytes;
/// an element paired with one of `base` (same index) as [`zigzag_diff`]
/// against it, the rest as they are.
fn difference_into_planes<const W: usize>(body: &[u8], base: &[u8], planes: &mut [u8], n: usize) {
    let bits = 8 * W as u32;
    let mut ys = base.chunks_exact(W);
    for (i, x) in body.chunks_exact(W).enumerate() {
        let v = match ys.next() {
            Some(y) => zigzag_diff(le_uint(x), le_uint(y), bits),
            None => le_uint(x),
        };
        for k in 0..W {
            planes[k * n + i] = (v >> (8 * k)) as u8;
        }
    }
}

fn tokens_corrupt(what: &str) -> LayoutError {
    LayoutError::Corruption(format!("token delta chunk {what}"))
}

fn get_varint(src: &[u8], at: &mut usize) -> Result<u64> {
    deflate::get_varint(src, at).map_err(|_| tokens_corrupt("is cut short"))
}

/// Encodes `logical` as [`ENCODING_TOKENS_DELTA`] against a base whose
/// tokens `base_tokens` start at `base_start`; `false` when it would not be
/// under `limit` bytes. The caller has checked that `ct` rebuilds `logical`
/// (see [`rebuild`]).
pub fn tokens_delta_into(
    out: &mut Vec<u8>,
    logical: &[u8],
    ct: &ChunkTokens,
    base_start: &TokenStart,
    base_tokens: &[u8],
    level: i32,
    limit: usize,
) -> Result<bool> {
    header(out, logical);
    deflate::put_block(out, &ct.start.block);
    put_varint(out, ct.start.prefix_bits);
    out.extend_from_slice(&logical[..ct.start.prefix_bits.div_ceil(8) as usize]);
    put_varint(out, ct.start.end_bits);
    out.extend_from_slice(&logical[(ct.start.end_bits / 8) as usize..]);
    base_start.put(out);
    put_varint(out, ct.tokens.len() as u64);
    if out.len() >= limit {
        return Ok(false);
    }
    compress_into(out, &ct.tokens, base_tokens, level, limit)
}

/// Rebuilds a chunk of `len` bytes from its verbatim prefix bits, its
/// tokens from `start` and its verbatim tail bits (from `end_bits` on);
/// `None` where they do not describe exactly `len` bytes.
pub fn rebuild(
    len: usize,
    start: &Block,
    prefix: (&[u8], u64),
    tokens: &[u8],
    tail: (&[u8], u64),
) -> Option<Vec<u8>> {
    let (prefix, prefix_bits) = prefix;
    let (tail, end_bits) = tail;
    let total = len as u64 * 8;
    if prefix_bits > end_bits
        || end_bits > total
        || (prefix.len() as u64) * 8 < prefix_bits
        || (tail.len() as u64) * 8 < total - (end_bits / 8) * 8
    {
        return None;
    }
    let mut w = BitWriter::with_capacity(len + 8);
    w.copy_bits(prefix, 0, prefix_bits);
    deflate::encode(start.clone(), tokens, &mut w).ok()?;
    if w.bits() != end_bits {
        return None;
    }
    w.copy_bits(tail, end_bits % 8, total - end_bits);
    Some(w.finish())
}

fn tokens_delta_decode(body: &[u8], len: usize, base: &[u8]) -> Result<Vec<u8>> {
    let mut at = 0usize;
    let bad_block = |_| tokens_corrupt("has a malformed block state");
    let start = deflate::get_block(body, &mut at).map_err(bad_block)?;
    let prefix_bits = get_varint(body, &mut at)?;
    let n = prefix_bits.div_ceil(8);
    if n > len as u64 {
        return Err(tokens_corrupt("has a prefix longer than the chunk"));
    }
    let prefix = body
        .get(at..at + n as usize)
        .ok_or_else(|| tokens_corrupt("is cut short"))?;
    at += n as usize;
    let end_bits = get_varint(body, &mut at)?;
    if end_bits > len as u64 * 8 || end_bits < prefix_bits {
        return Err(tokens_corrupt("has its tokens outside the chunk"));
    }
    let tail_len = len - (end_bits / 8) as usize;
    let tail = body
        .get(at..at + tail_len)
        .ok_or_else(|| tokens_corrupt("is cut short"))?;
    at += tail_len;
    let base_start = TokenStart::get(body, &mut at).map_err(bad_block)?;
    if base_start.prefix_bits > base.len() as u64 * 8 {
        return Err(tokens_corrupt("starts past the end of its base"));
    }
    let tokens_len = get_varint(body, &mut at)?;
    // Every token takes at least one bit of the stream and at most a few
    // bytes of the serialization.
    if tokens_len > len as u64 * 16 + 64 {
        return Err(tokens_corrupt("claims more tokens than the chunk holds"));
    }
    let base_tokens = deflate::chunk_tokens(base, &base_start);
    let tokens = decompress(&body[at..], &base_tokens, tokens_len as usize)?;
    if tokens.len() as u64 != tokens_len {
        return Err(tokens_corrupt("decoded to the wrong number of token bytes"));
    }
    rebuild(
        len,
        &start,
        (prefix, prefix_bits),
        &tokens,
        (tail, end_bits),
    )
    .ok_or_else(|| tokens_corrupt("does not rebuild its bytes"))
}

/// Encodes `logical` as [`ENCODING_STREAM_RAW`] with its tokens' `start`.
pub fn stream_raw(logical: &[u8], start: &TokenStart) -> Vec<u8> {
    let mut out = Vec::with_capacity(logical.len() + 64);
    header(&mut out, logical);
    start.put(&mut out);
    out.extend_from_slice(logical);
    out
}

/// The token start and the bytes of an [`ENCODING_STREAM_RAW`] body.
fn stream_raw_parts(body: &[u8]) -> Result<(TokenStart, &[u8])> {
    let mut at = 0;
    let start = TokenStart::get(body, &mut at)
        .map_err(|_| LayoutError::Corruption("stream chunk has a malformed token start".into()))?;
    Ok((start, &body[at..]))
}

/// Where the tokens of a chunk stored as [`ENCODING_STREAM_RAW`] start.
pub fn stream_start(encoding: u8, stored: &[u8]) -> Option<TokenStart> {
    if encoding != ENCODING_STREAM_RAW {
        return None;
    }
    stream_raw_parts(stored.get(4..)?).ok().map(|(s, _)| s)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Pseudo-random weights around ±0.05, all scaled by `scale`.
    fn floats(n: usize, scale: f32) -> Vec<u8> {
        (0..n as u64)
            .flat_map(|i| {
                let r = i.wrapping_mul(0x9E37_79B9_7F4A_7C15).rotate_left(29) >> 40;
                (((r as f32) / (1u64 << 24) as f32 - 0.5) * 0.1 * scale).to_le_bytes()
            })
            .collect()
    }

    #[test]
    fn absurd_logical_lengths_are_corruption() {
        let mut out = Vec::new();
        header(&mut out, b"x");
        assert!(compress_into(&mut out, b"x", &[], 1, usize::MAX).unwrap());
        assert!(decode(ENCODING_ZSTD, &out, u32::MAX, None).is_err());
        assert_eq!(decode(ENCODING_ZSTD, &out, 1, None).unwrap(), b"x");
    }

    #[test]
    fn split_planes_round_trip() {
        for (len, layout) in [
            (40_000usize, (4, 0)),
            (40_001, (4, 3)),
            (9_999, (2, 1)),
            (3, (4, 2)),
        ] {
            let d = &floats(len / 4 + 1, 1.0)[..len];
            let mut out = Vec::new();
            assert!(split_planes_into(&mut out, d, layout, 1, usize::MAX).unwrap());
            assert_eq!(
                decode(ENCODING_SPLIT_PLANES, &out, len as u32, None).unwrap(),
                d
            );
        }
    }

    /// The element delta `d` of `chunk` against `base`, encoded.
    fn delta(d: ElementDelta, chunk: &[u8], layout: Layout, base: &[u8], bl: Layout) -> Vec<u8> {
        let mut out = Vec::new();
        assert!(element_delta_into(&mut out, d, chunk, layout, (base, bl), 1, usize::MAX).unwrap());
        out
    }

    #[test]
    fn element_deltas_round_trip_and_shrink_a_dense_update() {
        let a = floats(10_000, 1.0);
        let b = floats(10_000, 1.0001);
        let c = floats(10_000, 2.0);
        let mut plain = Vec::new();
        assert!(split_planes_into(&mut plain, &b, (4, 0), 1, usize::MAX).unwrap());
        let mut sizes = Vec::new();
        for d in [ElementDelta::Xor, ElementDelta::Difference] {
            let out = delta(d, &b, (4, 0), &a, (4, 0));
            let len = b.len() as u32;
            assert_eq!(decode(d.encoding(), &out, len, Some(&a)).unwrap(), b);
            assert!(
                out.len() * 3 < plain.len() * 2,
                "{d:?}: {} vs {}",
                out.len(),
                plain.len()
            );
            // A wrong base is a checksum error, never wrong bytes.
            assert!(decode(d.encoding(), &out, len, Some(&c)).is_err());
            sizes.push(out.len());
            // Phases, half floats, bases of another length, a partial last element.
            let short = &a[..a.len() - 402];
            for (chunk, layout, base, base_layout) in [
                (&b[1..], (4, 3), short, (4, 0)),
                (&b[..b.len() - 1], (2, 0), &a[2..], (2, 1)),
                (&b[3..4001], (2, 1), short, (2, 0)),
            ] {
                let out = delta(d, chunk, layout, base, base_layout);
                let len = chunk.len() as u32;
                assert_eq!(decode(d.encoding(), &out, len, Some(base)).unwrap(), chunk);
            }
        }
        // The difference beats the XOR on a dense update.
        assert!(sizes[1] < sizes[0], "{sizes:?}");
    }

    /// The fused difference + plane split writes the same bytes as the
    /// element transform followed by the plane split.
    #[test]
    fn fused_difference_planes_match_the_two_step_transform() {
        let a = floats(3_000, 1.0);
        let b = floats(3_000, 1.0001);
        for width in [2, 4] {
            for phase in 0..=width {
                for base_phase in 0..=width {
                    for (chunk, base) in [
                        (&b[..], &a[..]),
                        (&b[..b.len() - 3], &a[..a.len() - 1000]),
                        (&b[..1001], &a[..]),
                        (&b[..3], &a[..]),
                        (&b[..], &a[..0]),
                    ] {
                        let mut two_step = chunk.to_vec();
                        ElementDelta::Difference.apply(
                            &mut two_step,
                            (width, phase),
                            base,
                            base_phase,
                        );
                        let mut want = Vec::new();
                        to_planes(&two_step, width, phase, &mut want);
                        let mut got = Vec::new();
                        difference_planes(chunk, (width, phase), base, base_phase, &mut got);
                        assert_eq!(got, want, "width {width} phase {phase}/{base_phase}");
                    }
                }
            }
        }
    }

    /// The stored bytes of the difference delta (FORMAT.md, tag 7):
    /// zigzag(x - y) at the element width, little-endian.
    #[test]
    fn difference_delta_bytes_are_the_zigzag_of_the_wrapping_difference() {
        let cases: [(usize, u32, u32, u32); 6] = [
            (4, 7, 5, 4),                  // +2 -> 4
            (4, 5, 7, 3),                  // -2 -> 3
            (4, 0, u32::MAX, 2),           // +1 (wrapping) -> 2
            (4, 0x8000_0000, 0, u32::MAX), // i32::MIN -> all ones
            (2, 3, 0xFFFF, 8),             // +4 (wrapping at 16 bits) -> 8
            (2, 0xFFFF, 3, 7),             // -4 -> 7
        ];
        for (width, x, y, z) in cases {
            let mut buf = x.to_le_bytes()[..width].to_vec();
            let base = y.to_le_bytes()[..width].to_vec();
            ElementDelta::Difference.apply(&mut buf, (width, 0), &base, 0);
            assert_eq!(buf, &z.to_le_bytes()[..width], "{width} {x:#x} {y:#x}");
            ElementDelta::Difference.undo(&mut buf, (width, 0), &base, 0);
            assert_eq!(buf, &x.to_le_bytes()[..width]);
        }
    }
}
