//! Content-defined chunking fused with similarity sampling: one pass of a
//! Gear rolling hash over the bytes finds the cut points (FastCDC's
//! normalized chunking: a stricter mask before the average size, a looser
//! one after) and feeds the same hash values to the super-feature sampler.
//!
//! Arrays of floats get their own cut rule. A dense training update changes
//! the low mantissa bytes of every element, so cut points hashed over all
//! bytes land somewhere else in every checkpoint and no chunk of version
//! N+1 lines up with one of version N. In regions that look like floats the
//! hash runs over the byte that holds sign and exponent only (which such an
//! update leaves nearly unchanged), and cuts fall on element boundaries:
//! the chunks of two versions then cover the same elements, which is what
//! the XOR delta of [`super::encode`] needs.

use super::features::{float_layout, gear, Sampler, SUPER_FEATURES};

/// Bytes per window of the float-region classification (aligned to the
/// start of the data, so two versions of one file classify alike).
const WINDOW: usize = 64 << 10;

/// Chunk size bounds in bytes.
#[derive(Clone, Copy, Debug)]
pub struct Sizes {
    /// No cut before this many bytes (unless the data ends).
    pub min: usize,
    /// The normalization point: the stricter mask applies before it.
    pub avg: usize,
    /// A cut is forced here.
    pub max: usize,
}

/// One chunk as the chunker cut it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cut {
    /// Length in bytes.
    pub len: usize,
    /// `(width, phase)` when the chunk lies in a float region: elements of
    /// `width` bytes whose first whole one starts at byte `phase` of the chunk.
    pub layout: Option<(usize, usize)>,
    /// Super-features sampled while cutting (when asked for and any position was sampled).
    pub sfs: Option<[u64; SUPER_FEATURES]>,
}

/// Cuts `data` into chunks within `sizes`. With `float_aware`, regions that
/// look like arrays of floats are cut on their sign/exponent bytes at
/// element boundaries; with `features`, each chunk carries its super-features.
/// The lengths always sum to `data.len()` and never exceed `sizes.max`.
pub fn chunk(data: &[u8], sizes: Sizes, float_aware: bool, features: bool) -> Vec<Cut> {
    let mut out = Vec::with_capacity(data.len() / sizes.avg.max(1) + 2);
    if !float_aware {
        byte_cuts(data, sizes, features, &mut out);
        return out;
    }
    for (start, end, layout) in regions(data) {
        let part = &data[start..end];
        match layout {
            Some((w, p)) => float_cuts(part, w, p, sizes, features, &mut out),
            None => byte_cuts(part, sizes, features, &mut out),
        }
    }
    out
}

/// Maximal runs of windows that classify alike: `(start, end, layout)`,
/// with the phase relative to `start`.
fn regions(data: &[u8]) -> Vec<(usize, usize, Option<(usize, usize)>)> {
    let mut out: Vec<(usize, usize, Option<(usize, usize)>)> = Vec::new();
    let mut at = 0;
    while at < data.len() {
        let end = (at + WINDOW).min(data.len());
        // Windows start at multiples of WINDOW (a multiple of every width),
        // so a phase within the window is also the phase within the region.
        let layout = float_layout(&data[at..end]);
        match out.last_mut() {
            Some(last) if last.2 == layout => last.1 = end,
            _ => out.push((at, end, layout)),
        }
        at = end;
    }
    out
}

/// A mask of the `bits` highest bits (the Gear hash's high bits depend on
/// the most bytes, its low bits on the last few only).
fn top_mask(bits: u32) -> u64 {
    let bits = bits.clamp(1, 63);
    !0u64 << (64 - bits)
}

/// The stricter and the looser mask for an average of `avg` positions.
fn masks(avg: usize) -> (u64, u64) {
    let bits = usize::BITS - 1 - avg.max(2).leading_zeros();
    (top_mask(bits + 2), top_mask(bits.saturating_sub(2)))
}

/// FastCDC over every byte, sampling features on the way.
fn byte_cuts(data: &[u8], sizes: Sizes, features: bool, out: &mut Vec<Cut>) {
    let (mask_s, mask_l) = masks(sizes.avg);
    let mut sampler = Sampler::default();
    let mut start = 0;
    while start < data.len() {
        let remain = data.len() - start;
        let max_end = start + sizes.max.min(remain);
        let min_end = start + sizes.min.min(remain);
        let norm_end = start + sizes.avg.clamp(sizes.min, sizes.max).min(remain);
        let mut h = 0u64;
        // Features cover the whole chunk, so the bytes before the minimum are hashed too.
        for &b in &data[start..min_end] {
            h = gear(h, b);
            if features {
                sampler.offer(h);
            }
        }
        let mut i = min_end;
        let mut cut = false;
        while i < norm_end {
            h = gear(h, data[i]);
            if features {
                sampler.offer(h);
            }
            i += 1;
            if h & mask_s == 0 {
                cut = true;
                break;
            }
        }
        if !cut {
            while i < max_end {
                h = gear(h, data[i]);
                if features {
                    sampler.offer(h);
                }
                i += 1;
                if h & mask_l == 0 {
                    break;
                }
            }
        }
        let end = i;
        out.push(Cut {
            len: end - start,
            layout: None,
            sfs: if features { sampler.finish(4) } else { None },
        });
        start = end;
    }
}

/// Cuts a float region at element boundaries, hashing only the byte of each
/// element that holds sign and exponent (the last one, little-endian).
fn float_cuts(
    data: &[u8],
    width: usize,
    phase: usize,
    sizes: Sizes,
    features: bool,
    out: &mut Vec<Cut>,
) {
    if data.is_empty() {
        return;
    }
    let phase = phase.min(data.len());
    let elems = (data.len() - phase) / width;
    let (min_e, avg_e, max_e) = (
        (sizes.min / width).max(1),
        (sizes.avg / width).max(1),
        (sizes.max / width).max(1),
    );
    let (mask_s, mask_l) = masks(avg_e);
    let top = |e: usize| data[phase + e * width + width - 1];
    let mut sampler = Sampler::default();
    let mut e0 = 0;
    let mut first = true;
    while e0 < elems || first {
        let remain = elems - e0;
        let max_end = e0 + max_e.min(remain);
        let min_end = e0 + min_e.min(remain);
        let norm_end = e0 + avg_e.clamp(min_e, max_e).min(remain);
        let mut h = 0u64;
        let mut e = e0;
        while e < min_end {
            h = gear(h, top(e));
            if features {
                sampler.offer(h);
            }
            e += 1;
        }
        let mut cut = false;
        while e < norm_end {
            h = gear(h, top(e));
            if features {
                sampler.offer(h);
            }
            e += 1;
            if h & mask_s == 0 {
                cut = true;
                break;
            }
        }
        if !cut {
            while e < max_end {
                h = gear(h, top(e));
                if features {
                    sampler.offer(h);
                }
                e += 1;
                if h & mask_l == 0 {
                    break;
                }
            }
        }
        // Byte range: the first chunk takes the bytes before the first
        // element, the last one the tail that is not a whole element.
        let from = if first { 0 } else { phase + e0 * width };
        let to = if e >= elems {
            data.len()
        } else {
            phase + e * width
        };
        out.push(Cut {
            len: to - from,
            layout: Some((width, if first { phase } else { 0 })),
            sfs: if features {
                sampler.finish_float()
            } else {
                None
            },
        });
        first = false;
        e0 = e;
        if e >= elems {
            break;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SIZES: Sizes = Sizes {
        min: 2048,
        avg: 8192,
        max: 32768,
    };

    fn noise(n: usize, seed: u64) -> Vec<u8> {
        let mut x = seed | 1;
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 24) as u8
            })
            .collect()
    }

    fn floats(n: usize, seed: u64, nudge: f32) -> Vec<u8> {
        noise(n * 4, seed)
            .chunks_exact(4)
            .enumerate()
            .flat_map(|(i, b)| {
                let u = u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as f32 / u32::MAX as f32;
                let v = (u - 0.5) * 0.1 * (1.0 + nudge * ((i % 7) as f32 - 3.0));
                v.to_le_bytes()
            })
            .collect()
    }

    #[test]
    fn cuts_cover_the_data_within_bounds() {
        for data in [
            noise(300_000, 3),
            floats(70_000, 5, 0.0),
            Vec::new(),
            noise(100, 1),
        ] {
            for float_aware in [false, true] {
                let cuts = chunk(&data, SIZES, float_aware, true);
                assert_eq!(cuts.iter().map(|c| c.len).sum::<usize>(), data.len());
                assert!(cuts.iter().all(|c| c.len <= SIZES.max && c.len > 0));
                // Deterministic.
                assert_eq!(cuts, chunk(&data, SIZES, float_aware, true));
            }
        }
    }

    #[test]
    fn byte_cuts_resynchronize_after_an_insert() {
        let a = noise(400_000, 9);
        let mut b = a.clone();
        b.splice(1000..1000, [1u8, 2, 3, 4, 5]);
        let ends = |d: &[u8]| {
            let mut at = 0;
            chunk(d, SIZES, false, false)
                .iter()
                .map(|c| {
                    at += c.len;
                    at
                })
                .collect::<Vec<_>>()
        };
        let ea = ends(&a);
        let eb: Vec<usize> = ends(&b).iter().map(|e| e - 5).collect();
        let shared = ea.iter().filter(|e| eb.contains(e)).count();
        assert!(shared * 10 >= ea.len() * 8, "{shared} of {}", ea.len());
    }

    #[test]
    fn float_cuts_line_up_across_a_dense_update() {
        // Two versions of one tensor: every element differs in its low bytes.
        let a = floats(200_000, 7, 0.0);
        let b = floats(200_000, 7, 1e-4);
        assert_ne!(a, b);
        let ca = chunk(&a, SIZES, true, true);
        let cb = chunk(&b, SIZES, true, true);
        assert!(ca.iter().all(|c| c.layout.is_some()));
        let la: Vec<usize> = ca.iter().map(|c| c.len).collect();
        let lb: Vec<usize> = cb.iter().map(|c| c.len).collect();
        let same = la.iter().zip(&lb).filter(|(x, y)| x == y).count();
        assert!(same * 10 >= la.len() * 9, "{same} of {}", la.len());
        // Whole-byte CDC does not line up on the same data.
        let pa: Vec<usize> = chunk(&a, SIZES, false, false)
            .iter()
            .map(|c| c.len)
            .collect();
        let pb: Vec<usize> = chunk(&b, SIZES, false, false)
            .iter()
            .map(|c| c.len)
            .collect();
        let plain_same = pa.iter().zip(&pb).filter(|(x, y)| x == y).count();
        assert!(plain_same * 2 < pa.len(), "{plain_same} of {}", pa.len());
        // And the aligned chunks share a super-feature.
        let hits = ca
            .iter()
            .zip(&cb)
            .filter(|(x, y)| match (x.sfs, y.sfs) {
                (Some(p), Some(q)) => p.iter().any(|s| q.contains(s)),
                _ => false,
            })
            .count();
        assert!(hits * 10 >= ca.len() * 8, "{hits} of {}", ca.len());
    }
}
