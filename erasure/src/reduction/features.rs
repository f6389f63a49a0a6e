//! Per-chunk features: the similarity super-features (Odess-style sampling
//! over a Gear rolling hash) and the "looks like an array of floats" test.

/// Features per super-feature.
pub const FEATURES_PER_SF: usize = 4;
/// Super-features per chunk.
pub const SUPER_FEATURES: usize = 3;
const FEATURES: usize = FEATURES_PER_SF * SUPER_FEATURES;
/// A position is sampled when the bits of the Gear hash under this mask are zero (1 in 64).
pub const SAMPLE_MASK: u64 = 0x3f << 40;

/// The Gear table (splitmix64 of the byte value, fixed forever: super-features are not persisted,
/// but changing the table would only cost similarity hits until bases are recycled).
static GEAR: [u64; 256] = gear_table();

const fn splitmix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

const fn gear_table() -> [u64; 256] {
    let mut t = [0u64; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = splitmix(0xC41A_0000 + i as u64);
        i += 1;
    }
    t
}

/// The linear transforms (a, b) of the Odess features, one per feature.
static TRANSFORMS: [(u64, u64); FEATURES] = transforms();

const fn transforms() -> [(u64, u64); FEATURES] {
    let mut t = [(0u64, 0u64); FEATURES];
    let mut i = 0;
    while i < FEATURES {
        t[i] = (
            splitmix(0x0DE5_5000 + i as u64) | 1,
            splitmix(0xFEA7_0000 + i as u64),
        );
        i += 1;
    }
    t
}

/// The super-features of a chunk: each is a hash of [`FEATURES_PER_SF`]
/// features; a feature is the maximum of one linear transform of the Gear
/// hash over the sampled positions. Two chunks sharing one super-feature are
/// very likely to share most of their content. `None` when no position was
/// sampled (tiny or constant chunks).
pub fn super_features(data: &[u8]) -> Option<[u64; SUPER_FEATURES]> {
    let mut h = 0u64;
    let mut s = Sampler::default();
    for &b in data {
        h = gear(h, b);
        s.offer(h);
    }
    s.finish(FEATURES_PER_SF)
}

/// Salt of the super-features of float chunks (a separate key space).
const FLOAT_SF_SALT: u64 = 0xF10A_7F10_A7F1_0A7F;

/// The super-features of a chunk holding floats of `width` bytes starting at
/// `phase`: computed over the plane of the bytes holding sign and exponent,
/// which a dense training update leaves nearly unchanged while it changes
/// every low mantissa byte; one feature per super-feature, since
/// content-defined boundaries of two versions rarely line up. The chunker
/// samples every float chunk with it from the chunk's bytes alone, so the
/// warm-up after a restart indexes a stored chunk exactly as it was cut.
pub fn float_super_features(
    data: &[u8],
    width: usize,
    phase: usize,
) -> Option<[u64; SUPER_FEATURES]> {
    let mut h = 0u64;
    let mut s = Sampler::default();
    for &b in data
        .get(phase + width - 1..)
        .unwrap_or(&[])
        .iter()
        .step_by(width)
    {
        h = gear(h, b);
        s.offer(h);
    }
    s.finish_float()
}

/// Features per super-feature of a chunk's deflate tokens: one, as for
/// floats (the tokens of two versions' chunks rarely line up).
pub const TOKEN_FEATURES_PER_SF: usize = 1;

/// An item end is sampled when these bits of the hash are zero (1 in 16:
/// items are fewer than bytes; on the wheels 1 in 32 found 1% fewer bases).
const ITEM_SAMPLE_MASK: u64 = 0xf << 40;

/// A Gear hash over a chunk's deflate items (a literal's byte; a match's
/// length code and distance bytes; not block headers, which shift between
/// two builds of a file) from the chunk's first item, and the
/// super-features it samples at item ends, in the pass of the parse that
/// finds the items: a parse of the chunk by itself samples the same.
#[derive(Clone, Debug, Default)]
pub struct ItemHash {
    /// The hash after the last item.
    pub h: u64,
    sampler: Sampler,
}

impl ItemHash {
    /// Feeds a literal.
    #[inline(always)]
    pub fn literal(&mut self, b: u8) {
        self.h = gear(self.h, b);
        self.offer();
    }

    /// Feeds a match of length `len` (3..=258) at distance `dist`.
    #[inline(always)]
    pub fn matched(&mut self, len: u16, dist: u16) {
        let [d0, d1] = dist.to_le_bytes();
        self.h = gear(gear(gear(self.h, (len - 3) as u8), d0), d1);
        self.offer();
    }

    #[inline(always)]
    fn offer(&mut self) {
        if self.h & ITEM_SAMPLE_MASK == 0 {
            self.sampler.sample_first(self.h);
        }
    }

    /// The super-features of the items fed (see [`Sampler::finish`]).
    pub fn finish(&mut self) -> Option<[u64; SUPER_FEATURES]> {
        self.sampler.finish(TOKEN_FEATURES_PER_SF)
    }
}

/// Order-0 entropy of `bytes` in bits per byte (0 for none).
pub fn byte_entropy(bytes: impl Iterator<Item = u8>) -> f64 {
    let mut hist = [0u32; 256];
    let mut n = 0u32;
    for b in bytes {
        hist[b as usize] += 1;
        n += 1;
    }
    let n = n as f64;
    hist.iter()
        .filter(|&&c| c > 0)
        .map(|&c| {
            let p = c as f64 / n;
            -p * p.log2()
        })
        .sum()
}

/// One step of the Gear rolling hash (the chunker and the feature sampler share it).
#[inline(always)]
pub fn gear(h: u64, byte: u8) -> u64 {
    (h << 1).wrapping_add(GEAR[byte as usize])
}

/// Accumulates the Odess features of one chunk from the Gear hash values of
/// its positions, so that the chunker can sample features in the same pass
/// that finds the cut points.
#[derive(Clone, Debug, Default)]
pub struct Sampler {
    max: [u64; FEATURES],
    sampled: bool,
}

impl Sampler {
    /// Feeds the Gear hash at one position; only positions whose hash has
    /// the sampling bits clear (1 in 64) contribute.
    #[inline(always)]
    pub fn offer(&mut self, h: u64) {
        if h & SAMPLE_MASK == 0 {
            self.sample(h);
        }
    }

    #[inline(never)]
    fn sample(&mut self, h: u64) {
        self.sampled = true;
        for (m, (a, c)) in self.max.iter_mut().zip(TRANSFORMS.iter()) {
            let v = h.wrapping_mul(*a).wrapping_add(*c);
            if v > *m {
                *m = v;
            }
        }
    }

    /// [`Sampler::sample`] of the first feature of each super-feature only
    /// (all that [`Sampler::finish`] of one feature each reads); out of
    /// line like it, off the parse's hot loop.
    #[inline(never)]
    fn sample_first(&mut self, h: u64) {
        self.sampled = true;
        for i in 0..SUPER_FEATURES {
            let (a, c) = TRANSFORMS[i * FEATURES_PER_SF];
            let m = &mut self.max[i * FEATURES_PER_SF];
            *m = (*m).max(h.wrapping_mul(a).wrapping_add(c));
        }
    }

    /// The super-features from `per_sf` features each (at most
    /// [`FEATURES_PER_SF`]); `None` when no position was sampled. Resets the sampler.
    pub fn finish(&mut self, per_sf: usize) -> Option<[u64; SUPER_FEATURES]> {
        let per_sf = per_sf.clamp(1, FEATURES_PER_SF);
        let max = std::mem::take(&mut self.max);
        if !std::mem::take(&mut self.sampled) {
            return None;
        }
        let mut sf = [0u64; SUPER_FEATURES];
        for (i, s) in sf.iter_mut().enumerate() {
            let mut x = 0x5F5F_0000 + i as u64;
            for f in &max[i * FEATURES_PER_SF..i * FEATURES_PER_SF + per_sf] {
                x = splitmix(x ^ f);
            }
            *s = x;
        }
        Some(sf)
    }

    /// [`Sampler::finish`] for a float chunk: one feature per super-feature
    /// (content-defined boundaries of two versions of a tensor rarely line
    /// up exactly), in a key space of its own.
    pub fn finish_float(&mut self) -> Option<[u64; SUPER_FEATURES]> {
        self.finish(1).map(|s| s.map(|x| x ^ FLOAT_SF_SALT))
    }
}

/// The float layout a chunk looks like it holds: `(width, phase)` where
/// width is 4 (f32) or 2 (f16/bf16) and the first whole element starts at
/// byte `phase` of the chunk (content-defined chunks start anywhere), or
/// `None`. The test samples the chunk and compares how many distinct values
/// each byte lane takes: in an array of floats the lane holding sign and
/// exponent takes few values, the low mantissa lanes many.
pub fn float_layout(data: &[u8]) -> Option<(usize, usize)> {
    const SAMPLE: usize = 4096;
    if data.len() < 1024 {
        return None;
    }
    let step = (data.len() / SAMPLE).max(1) * 4;
    let mut seen = [[false; 256]; 4];
    let mut n = 0usize;
    let mut i = 0usize;
    while i + 4 <= data.len() && n < SAMPLE {
        for (lane, s) in seen.iter_mut().enumerate() {
            s[data[i + lane] as usize] = true;
        }
        n += 1;
        i += step;
    }
    let d: Vec<usize> = seen
        .iter()
        .map(|s| s.iter().filter(|&&x| x).count())
        .collect();
    let limit = (n / 8).clamp(8, 96);
    let busy = (n / 4).min(128);
    let low = (0..4).min_by_key(|&l| d[l]).unwrap_or(0);
    if d[low] > limit {
        return None;
    }
    // 16-bit floats: lanes `low` and `low + 2` hold sign and exponent.
    if d[(low + 2) % 4] <= limit && d[(low + 1) % 4] >= busy && d[(low + 3) % 4] >= busy {
        return Some((2, (low + 1) % 2));
    }
    // f32 little-endian: the last byte of each element holds sign and high exponent bits.
    if d[(low + 1) % 4] >= busy && d[(low + 2) % 4] >= busy {
        return Some((4, (low + 1) % 4));
    }
    None
}

/// Groups byte `j` of every `width`-byte element starting at byte `phase`
/// into plane `j`; the `phase` bytes before and the tail that is not a whole
/// element are copied as is (before and after the planes).
pub fn to_planes(data: &[u8], width: usize, phase: usize, out: &mut Vec<u8>) {
    out.clear();
    let phase = phase.min(data.len());
    let body = &data[phase..];
    let n = body.len() / width;
    out.resize(data.len(), 0);
    out[..phase].copy_from_slice(&data[..phase]);
    let (planes, tail) = out[phase..].split_at_mut(n * width);
    match width {
        4 => {
            let (p0, rest) = planes.split_at_mut(n);
            let (p1, rest) = rest.split_at_mut(n);
            let (p2, p3) = rest.split_at_mut(n);
            let lanes = p0.iter_mut().zip(p1).zip(p2.iter_mut().zip(p3));
            for (((a, b), (c, d)), e) in lanes.zip(body.chunks_exact(4)) {
                (*a, *b, *c, *d) = (e[0], e[1], e[2], e[3]);
            }
        }
        2 => {
            let (p0, p1) = planes.split_at_mut(n);
            for ((a, b), e) in p0.iter_mut().zip(p1).zip(body.chunks_exact(2)) {
                (*a, *b) = (e[0], e[1]);
            }
        }
        _ => {
            for lane in 0..width {
                for (d, e) in planes[lane * n..(lane + 1) * n]
                    .iter_mut()
                    .zip(body.chunks_exact(width))
                {
                    *d = e[lane];
                }
            }
        }
    }
    tail.copy_from_slice(&body[n * width..]);
}

/// Inverse of [`to_planes`].
pub fn from_planes(planes: &[u8], width: usize, phase: usize) -> Vec<u8> {
    let mut out = vec![0u8; planes.len()];
    let phase = phase.min(planes.len());
    out[..phase].copy_from_slice(&planes[..phase]);
    let src_all = &planes[phase..];
    let dst_all = &mut out[phase..];
    let n = src_all.len() / width;
    for lane in 0..width {
        let src = &src_all[lane * n..(lane + 1) * n];
        for (d, &b) in dst_all.chunks_exact_mut(width).zip(src) {
            d[lane] = b;
        }
    }
    dst_all[n * width..].copy_from_slice(&src_all[n * width..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn planes_round_trip() {
        for len in [0usize, 1, 7, 8, 1001] {
            let d: Vec<u8> = (0..len).map(|i| (i * 37 % 251) as u8).collect();
            for w in [2, 4] {
                for phase in 0..w {
                    let mut p = Vec::new();
                    to_planes(&d, w, phase, &mut p);
                    assert_eq!(from_planes(&p, w, phase), d);
                }
            }
        }
    }

    #[test]
    fn floats_are_detected_and_text_is_not() {
        let f: Vec<u8> = (0..20000)
            .flat_map(|i| (((i as f32) * 0.618).sin() * 0.05).to_le_bytes())
            .collect();
        assert_eq!(float_layout(&f), Some((4, 0)));
        assert_eq!(float_layout(&f[1..]), Some((4, 3)));
        assert_eq!(float_layout(&f[3..]), Some((4, 1)));
        let text = "the quick brown fox jumps over the lazy dog 0123456789 ".repeat(400);
        assert_eq!(float_layout(text.as_bytes()), None);
    }

    #[test]
    fn similar_chunks_share_a_super_feature() {
        let mut a: Vec<u8> = (0..32768u32)
            .map(|i| (splitmix(i as u64) >> 7) as u8)
            .collect();
        let sa = super_features(&a).unwrap();
        for i in (0..a.len()).step_by(4000) {
            a[i] ^= 0x55;
        }
        let sb = super_features(&a).unwrap();
        assert!(sa.iter().zip(sb.iter()).any(|(x, y)| x == y));
    }
}
