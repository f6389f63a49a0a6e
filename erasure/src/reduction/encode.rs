//! The stored encodings of reduced chunks (see FORMAT.md, "Chunk encodings").
//! Every encoding other than raw starts with the crc32c of the chunk's
//! logical bytes, checked after decoding, so a decoder bug or a wrong base
//! is an error and never wrong bytes.

use std::cell::RefCell;

use zstd::zstd_safe::{CCtx, DCtx};

use super::features::{from_planes, to_planes};
use crate::error::{LayoutError, Result};

/// zstd frame of the logical bytes.
pub const ENCODING_ZSTD: u8 = 1;
/// zstd frame of the byte planes of an array of 16- or 32-bit floats.
pub const ENCODING_ZSTD_PLANES: u8 = 2;
/// zstd frame of the logical bytes compressed with the base chunk's logical
/// bytes as a raw-content dictionary (the chunk record names the base).
pub const ENCODING_DELTA: u8 = 3;

/// zstd frame of the byte planes of a float chunk compressed with the byte
/// planes of the base chunk's logical bytes as a raw-content dictionary.
pub const ENCODING_DELTA_PLANES: u8 = 4;

/// The zstd frame magic of a formatted dictionary: a base starting with it
/// would be parsed as one, so such chunks are never used as bases.
pub const ZSTD_DICT_MAGIC: [u8; 4] = 0xEC30_A437u32.to_le_bytes();

thread_local! {
    static CCTX: RefCell<CCtx<'static>> = RefCell::new(CCtx::create());
    static DCTX: RefCell<DCtx<'static>> = RefCell::new(DCtx::create());
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
    out.reserve(bound);
    let res = CCTX.with(|c| {
        let mut c = c.borrow_mut();
        let mut frame: Vec<u8> = Vec::with_capacity(bound);
        let r = if dict.is_empty() {
            c.compress(&mut frame, src, level)
        } else {
            c.compress_using_dict(&mut frame, src, dict, level)
        };
        r.map(|_| frame)
    });
    let frame = res.map_err(|e| zerr("zstd compression failed", e))?;
    if head + frame.len() >= limit {
        return Ok(false);
    }
    out.extend_from_slice(&frame);
    Ok(true)
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
        ENCODING_DELTA => {
            let base = base.ok_or_else(|| {
                LayoutError::Corruption("delta chunk decoded without its base".into())
            })?;
            decompress(body, base, len)?
        }
        ENCODING_DELTA_PLANES => {
            let base = base.ok_or_else(|| {
                LayoutError::Corruption("delta chunk decoded without its base".into())
            })?;
            if body.len() < 2 {
                return Err(LayoutError::Corruption(
                    "plane delta chunk has no layout".into(),
                ));
            }
            let (w, p) = parse_layout(body[0])?;
            let (bw, bp) = parse_layout(body[1])?;
            let mut dict = Vec::new();
            to_planes(base, bw, bp, &mut dict);
            let planes = decompress(&body[2..], &dict, len)?;
            if planes.len() != len {
                return Err(LayoutError::Corruption(format!(
                    "plane delta chunk decoded to {} bytes, expected {len}",
                    planes.len()
                )));
            }
            from_planes(&planes, w, p)
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

fn parse_layout(b: u8) -> Result<(usize, usize)> {
    let (w, p) = ((b & 0x0f) as usize, (b >> 4) as usize);
    if (w != 2 && w != 4) || p >= w {
        return Err(LayoutError::Corruption(format!(
            "plane-encoded chunk has layout {b:#x}"
        )));
    }
    Ok((w, p))
}

/// Encodes `logical` (floats of `layout`) as a delta of its byte planes
/// against the byte planes of `base` (floats of `base_layout`); `false`
/// when it would not be smaller than `limit`.
pub fn delta_planes_into(
    out: &mut Vec<u8>,
    logical: &[u8],
    layout: (usize, usize),
    base: &[u8],
    base_layout: (usize, usize),
    level: i32,
    limit: usize,
) -> Result<bool> {
    let mut planes = Vec::new();
    to_planes(logical, layout.0, layout.1, &mut planes);
    let mut dict = Vec::new();
    to_planes(base, base_layout.0, base_layout.1, &mut dict);
    header(out, logical);
    out.push(layout.0 as u8 | ((layout.1 as u8) << 4));
    out.push(base_layout.0 as u8 | ((base_layout.1 as u8) << 4));
    compress_into(out, &planes, &dict, level, limit)
}

/// Encodes `logical` as byte planes of `width`-byte elements starting at
/// byte `phase`; `false` when it would not be smaller than `limit`.
pub fn planes_into(
    out: &mut Vec<u8>,
    logical: &[u8],
    width: usize,
    phase: usize,
    level: i32,
    limit: usize,
) -> Result<bool> {
    let mut planes = Vec::new();
    to_planes(logical, width, phase, &mut planes);
    header(out, logical);
    out.push(width as u8 | ((phase as u8) << 4));
    compress_into(out, &planes, &[], level, limit)
}
