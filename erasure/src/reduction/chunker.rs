//! Content-defined chunking fused with similarity sampling: one pass of a
//! Gear rolling hash over the bytes finds the cut points (FastCDC's
//! normalized chunking: a stricter mask before the average size, a looser
//! one after) and feeds the same hash values to the super-feature sampler.
//!
//! Arrays of floats get their own cut rule. A dense training update changes
//! the low mantissa bytes of every element, so cut points hashed over all
//! bytes land somewhere else in every checkpoint and no chunk of version
//! N+1 lines up with one of version N. Regions that look like floats are
//! cut into chunks of a fixed number of whole elements, counted from the
//! region start, and their features are sampled over the sign/exponent
//! byte of each element (which such an update leaves nearly unchanged): the
//! chunks of two versions then cover the same elements, which is what the
//! XOR delta of [`super::encode`] needs.
//!
//! Containers get anchored cuts. A zip archive (wheels, jars, `.npz` and
//! PyTorch checkpoints) is a run of members, each behind a local header;
//! between two versions most members are identical and a few differ. With
//! cut points from content alone, the chunk that holds a member boundary
//! also holds bytes of the neighbour, so every changed member spoils a
//! chunk on each side of it (on five numpy wheels ~10 MB of unchanged
//! members were stored again). A plausible local header at or after the
//! minimum size ends the chunk there, so chunks start where members start.

use super::features::{float_layout, float_super_features, gear, Sampler, SUPER_FEATURES};

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

/// Cuts `data` into chunks within `sizes`. With `format_aware`, regions that
/// look like arrays of floats are cut on their sign/exponent bytes at
/// element boundaries and other bytes also at zip member starts; without it
/// the cuts are plain FastCDC. With `features`, each chunk carries its
/// super-features. The lengths always sum to `data.len()` and never exceed
/// `sizes.max`.
pub fn chunk(data: &[u8], sizes: Sizes, format_aware: bool, features: bool) -> Vec<Cut> {
    let mut out = Vec::with_capacity(data.len() / sizes.avg.max(1) + 2);
    if !format_aware {
        byte_cuts(data, &[], sizes, features, &mut out);
        return out;
    }
    for (start, end, layout) in regions(data) {
        let part = &data[start..end];
        match layout {
            Some((w, p)) => float_cuts(part, w, p, sizes, features, &mut out),
            None => byte_cuts(part, &member_starts(part), sizes, features, &mut out),
        }
    }
    out
}

/// The signature of a zip local file header.
const ZIP_LOCAL_HEADER: &[u8; 4] = b"PK\x03\x04";
/// Bytes of a zip local file header before the member's name.
const ZIP_HEADER_BYTES: usize = 30;

/// Offsets of the plausible zip local file headers in `data`, ascending: the
/// signature, then a "version needed" and a compression method in the
/// defined ranges and a name of 1 to 4096 bytes. A false match only costs
/// an extra cut.
fn member_starts(data: &[u8]) -> Vec<usize> {
    memchr::memmem::find_iter(data, ZIP_LOCAL_HEADER)
        .filter(|&at| zip_header_at(data, at))
        .collect()
}

/// Whether a plausible zip local file header starts at `at` of `data` (see
/// `member_starts`).
pub(crate) fn zip_header_at(data: &[u8], at: usize) -> bool {
    let le16 = |b: &[u8], at: usize| u16::from_le_bytes([b[at], b[at + 1]]);
    let Some(h) = data.get(at..at + ZIP_HEADER_BYTES) else {
        return false;
    };
    h.starts_with(ZIP_LOCAL_HEADER)
        && le16(h, 4) <= 63
        && le16(h, 8) <= 99
        && (1..=4096).contains(&le16(h, 26))
}

/// Windows a float run must span to be cut as floats: a lone window that
/// looks like floats (filesystem metadata, say) stays with the bytes around
/// it, because every region boundary also restarts the content-defined cuts.
const MIN_FLOAT_WINDOWS: usize = 4;

/// `(start, end, float layout)` of a region.
type Region = (usize, usize, Option<(usize, usize)>);

/// Maximal runs of windows that classify alike: `(start, end, layout)`,
/// with the phase relative to `start`.
fn regions(data: &[u8]) -> Vec<Region> {
    let mut runs: Vec<Region> = Vec::new();
    let mut at = 0;
    while at < data.len() {
        let end = (at + WINDOW).min(data.len());
        // Windows start at multiples of WINDOW (a multiple of every width),
        // so a phase within the window is also the phase within the region.
        let layout = float_layout(&data[at..end]);
        match runs.last_mut() {
            Some(last) if last.2 == layout => last.1 = end,
            _ => runs.push((at, end, layout)),
        }
        at = end;
    }
    let mut out: Vec<Region> = Vec::with_capacity(runs.len());
    for (start, end, mut layout) in runs {
        if layout.is_some() && end - start < MIN_FLOAT_WINDOWS * WINDOW {
            layout = None;
        }
        match out.last_mut() {
            Some(last) if last.2 == layout => last.1 = end,
            _ => out.push((start, end, layout)),
        }
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
    (top_mask(bits + 1), top_mask(bits.saturating_sub(1)))
}

/// FastCDC over every byte, sampling features on the way; a chunk also ends
/// before the first of `anchors` (ascending offsets) at or past its minimum size.
fn byte_cuts(data: &[u8], anchors: &[usize], sizes: Sizes, features: bool, out: &mut Vec<Cut>) {
    if features {
        byte_cuts_with::<true>(data, anchors, sizes, out)
    } else {
        byte_cuts_with::<false>(data, anchors, sizes, out)
    }
}

/// Bytes of hash warm-up before the minimum size (the Gear hash depends on
/// the last 64 bytes only).
const WARMUP: usize = 64;

fn byte_cuts_with<const F: bool>(
    data: &[u8],
    mut anchors: &[usize],
    sizes: Sizes,
    out: &mut Vec<Cut>,
) {
    let (mask_s, mask_l) = masks(sizes.avg);
    let mut sampler = Sampler::default();
    let mut start = 0;
    while start < data.len() {
        let remain = data.len() - start;
        let min_end = start + sizes.min.min(remain);
        // An anchor ends the chunk (the chunk stays at least the minimum).
        while anchors.first().is_some_and(|&a| a < min_end) {
            anchors = &anchors[1..];
        }
        let max_end = match anchors.first() {
            Some(&a) if a > start => (start + sizes.max.min(remain)).min(a),
            _ => start + sizes.max.min(remain),
        };
        let norm_end = (start + sizes.avg.clamp(sizes.min, sizes.max).min(remain)).min(max_end);
        // No cut falls before the minimum, so only the last 64 bytes before
        // it are hashed (the Gear hash depends on no more); features are
        // sampled from there on, over the chunk's last three quarters or more.
        let from = min_end.saturating_sub(WARMUP).max(start);
        let mut h = roll::<F>(&data[from..min_end], 0, &mut sampler);
        let end = match scan::<F>(&data[min_end..norm_end], &mut h, &mut sampler, mask_s) {
            Some(j) => min_end + j,
            None => match scan::<F>(&data[norm_end..max_end], &mut h, &mut sampler, mask_l) {
                Some(j) => norm_end + j,
                None => max_end,
            },
        };
        out.push(Cut {
            len: end - start,
            layout: None,
            sfs: if F { sampler.finish(4) } else { None },
        });
        start = end;
    }
}

/// Rolls the Gear hash `h` over `bytes` (offering each value to the
/// sampler when `F`) and returns it.
#[inline(always)]
fn roll<const F: bool>(bytes: &[u8], mut h: u64, sampler: &mut Sampler) -> u64 {
    for &b in bytes {
        h = gear(h, b);
        if F {
            sampler.offer(h);
        }
    }
    h
}

/// Rolls the Gear hash `h` over `bytes` until a value has all of `mask`
/// clear; returns the length up to and including that byte.
#[inline(always)]
fn scan<const F: bool>(
    bytes: &[u8],
    h: &mut u64,
    sampler: &mut Sampler,
    mask: u64,
) -> Option<usize> {
    let mut x = *h;
    for (j, &b) in bytes.iter().enumerate() {
        x = gear(x, b);
        if F {
            sampler.offer(x);
        }
        if x & mask == 0 {
            *h = x;
            return Some(j + 1);
        }
    }
    *h = x;
    None
}

/// Cuts a float region into chunks of a fixed number of elements counted
/// from the region's first element (the last chunk takes the remainder),
/// sampling features over the byte of each element that holds sign and
/// exponent (the last one, little-endian).
///
/// Fixed, not content-defined: even hashing only exponents, the cut points
/// of a dense update drift (small weights cross powers of two), and on the
/// checkpoint corpus only ~40% of the chunks of version N+1 covered the
/// same elements as a chunk of version N; fixed cuts anchored at the region
/// start (itself anchored to the extent) cover the same elements whenever
/// the tensor sits at the same offset, which is how successive checkpoints
/// of one model are laid out.
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
    let per = (sizes.avg.clamp(sizes.min, sizes.max) / width).max(1);
    let mut e0 = 0;
    loop {
        let mut e1 = (e0 + per).min(elems);
        // A short remainder joins the last chunk while that stays within the maximum.
        if elems - e1 < per / 4 && (elems - e0) * width + width <= sizes.max {
            e1 = elems;
        }
        // The first chunk also takes the bytes before the first element,
        // the last one the tail that is not a whole element.
        let from = if e0 == 0 { 0 } else { phase + e0 * width };
        let to = if e1 >= elems {
            data.len()
        } else {
            phase + e1 * width
        };
        let chunk_phase = if e0 == 0 { phase } else { 0 };
        // Sampled from the chunk's bytes alone, so that a stored chunk can
        // be indexed again the same way (`Reducer::warm`).
        let sfs = if features {
            float_super_features(&data[from..to], width, chunk_phase)
        } else {
            None
        };
        out.push(Cut {
            len: to - from,
            layout: Some((width, chunk_phase)),
            sfs,
        });
        if e1 >= elems {
            break;
        }
        e0 = e1;
    }
}

/// The super-features of one byte chunk as [`chunk`] samples them, from the
/// chunk's bytes alone (cut again with `sizes`, the chunk stays whole: its
/// end was the first cut point past the minimum, or an anchor, or the
/// maximum, or the end of its region); `None` when it would be cut apart.
pub fn byte_features(data: &[u8], sizes: Sizes) -> Option<[u64; SUPER_FEATURES]> {
    let sizes = Sizes {
        max: sizes.max.max(data.len()),
        ..sizes
    };
    match chunk(data, sizes, false, true).as_slice() {
        [only] => only.sfs,
        _ => None,
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    const SIZES: Sizes = Sizes {
        min: 2048,
        avg: 8192,
        max: 32768,
    };

    /// A xorshift64 sequence from `seed | 1` (test data for the reduction modules).
    pub(crate) fn xorshift(seed: u64) -> impl Iterator<Item = u64> {
        let mut x = seed | 1;
        std::iter::repeat_with(move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        })
    }

    fn noise(n: usize, seed: u64) -> Vec<u8> {
        xorshift(seed).take(n).map(|x| (x >> 24) as u8).collect()
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
    fn features_recomputed_from_a_chunk_alone_match_the_cut() {
        let (zip, _) = archive(&payloads(5));
        let mut data = noise(200_000, 4);
        data.extend_from_slice(&floats(150_000, 8, 0.0));
        data.extend_from_slice(&zip);
        let cuts = chunk(&data, SIZES, true, true);
        assert!(cuts.iter().any(|c| c.layout.is_some()));
        for float in [false, true] {
            let sampled = cuts
                .iter()
                .filter(|c| c.layout.is_some() == float && c.sfs.is_some())
                .count();
            assert!(sampled >= 5, "{sampled} sampled chunks (float {float})");
        }
        let mut at = 0;
        for c in &cuts {
            let bytes = &data[at..at + c.len];
            at += c.len;
            let again = match c.layout {
                Some((w, p)) => float_super_features(bytes, w, p),
                None => byte_features(bytes, SIZES),
            };
            assert_eq!(again, c.sfs, "chunk at {} (+{})", at - c.len, c.len);
        }
    }

    #[test]
    fn byte_cuts_resynchronize_after_an_insert() {
        let a = noise(400_000, 9);
        let mut b = a.clone();
        b.splice(1000..1000, [1u8, 2, 3, 4, 5]);
        let ea = cut_ends(&a, false);
        let eb: Vec<usize> = cut_ends(&b, false).iter().map(|e| e - 5).collect();
        let shared = ea.iter().filter(|e| eb.contains(e)).count();
        assert!(shared * 10 >= ea.len() * 8, "{shared} of {}", ea.len());
    }

    /// A zip-like archive: members of the given payloads, each behind a
    /// local header; returns the bytes and the member start offsets.
    fn archive(payloads: &[Vec<u8>]) -> (Vec<u8>, Vec<usize>) {
        let (mut out, mut starts) = (Vec::new(), Vec::new());
        for (i, p) in payloads.iter().enumerate() {
            starts.push(out.len());
            let name = format!("pkg/module_{i}.py");
            let mut h = [0u8; ZIP_HEADER_BYTES];
            h[..4].copy_from_slice(ZIP_LOCAL_HEADER);
            h[4] = 20; // version needed
            h[8] = 8; // deflate
            h[18..22].copy_from_slice(&(p.len() as u32).to_le_bytes());
            h[26..28].copy_from_slice(&(name.len() as u16).to_le_bytes());
            out.extend_from_slice(&h);
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(p);
        }
        (out, starts)
    }

    fn payloads(seed: u64) -> Vec<Vec<u8>> {
        xorshift(seed)
            .take(40)
            .enumerate()
            .map(|(i, x)| noise(500 + (x % 40_000) as usize, seed + i as u64))
            .collect()
    }

    /// Where the chunks of `d` end (plain FastCDC or format-aware cuts).
    fn cut_ends(d: &[u8], aware: bool) -> Vec<usize> {
        chunk(d, SIZES, aware, false)
            .iter()
            .scan(0, |at, c| {
                *at += c.len;
                Some(*at)
            })
            .collect()
    }

    /// Bytes of `new`'s chunks whose contents are not among `old`'s chunks.
    fn new_bytes(old: &[u8], new: &[u8], aware: bool) -> usize {
        let pieces = |d: &[u8]| {
            let ends = cut_ends(d, aware);
            let starts = std::iter::once(0).chain(ends.iter().copied());
            starts
                .zip(ends.iter().copied())
                .map(|(a, b)| d[a..b].to_vec())
                .collect::<Vec<_>>()
        };
        let seen: std::collections::HashSet<Vec<u8>> = pieces(old).into_iter().collect();
        pieces(new)
            .iter()
            .filter(|p| !seen.contains(*p))
            .map(|p| p.len())
            .sum()
    }

    #[test]
    fn chunks_end_at_zip_member_starts_past_the_minimum() {
        let (data, starts) = archive(&payloads(21));
        assert_eq!(member_starts(&data), starts);
        let mut at = 0;
        for c in chunk(&data, SIZES, true, true) {
            let crossed = starts
                .iter()
                .find(|&&s| s >= at + SIZES.min && s < at + c.len);
            assert!(
                crossed.is_none(),
                "chunk at {at} (+{}) spans {crossed:?}",
                c.len
            );
            assert!(c.len >= SIZES.min || at + c.len == data.len());
            at += c.len;
        }
        // Plain FastCDC ignores them.
        let plain_ends = cut_ends(&data, false);
        let aligned = starts.iter().filter(|s| plain_ends.contains(s)).count();
        assert!(aligned * 4 < starts.len(), "{aligned} of {}", starts.len());
    }

    #[test]
    fn a_changed_member_spoils_no_chunk_of_its_neighbours() {
        let p = payloads(33);
        let (old, _) = archive(&p);
        let (mut aware, mut plain, mut changed) = (0, 0, 0);
        for i in 0..p.len() {
            // A new build of member i: other bytes, another length.
            let mut q = p.clone();
            q[i] = noise(p[i].len() + 3_000, 999 + i as u64);
            let (new, _) = archive(&q);
            let a = new_bytes(&old, &new, true);
            // Its own bytes, plus less than a minimum before it; after it a
            // chunk that started inside it may run on into short members
            // before the cuts meet again (members below the minimum never
            // end a chunk).
            assert!(
                a >= q[i].len() && a < q[i].len() + SIZES.min + 2 * SIZES.max,
                "member {i}: {a} for {}",
                q[i].len()
            );
            aware += a;
            plain += new_bytes(&old, &new, false);
            changed += q[i].len();
        }
        // Content-defined cuts alone spoil about an average chunk on each side.
        assert!(
            plain > aware + p.len() * SIZES.avg,
            "plain {plain}, aware {aware}, changed {changed}"
        );
    }

    #[test]
    fn float_chunks_line_up_across_a_dense_update() {
        // Two versions of one tensor: every element differs in its low bytes.
        let a = floats(200_000, 7, 0.0);
        let b = floats(200_000, 7, 1e-4);
        assert_ne!(a, b);
        let ca = chunk(&a, SIZES, true, true);
        let cb = chunk(&b, SIZES, true, true);
        assert!(ca.iter().all(|c| c.layout.is_some()));
        let la: Vec<usize> = ca.iter().map(|c| c.len).collect();
        let lb: Vec<usize> = cb.iter().map(|c| c.len).collect();
        assert_eq!(la, lb);
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
