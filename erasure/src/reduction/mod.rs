//! Data reduction behind the [`Reducer`] seam: content-defined chunking
//! (FastCDC), exact dedup on BLAKE3 fingerprints, similarity (delta against a
//! base chunk found through super-features), and zstd compression with a
//! byte-plane transform for arrays of floats. Runs only in the migration
//! worker, never before an acknowledgement.
//!
//! Indexes:
//! * fingerprint → chunk: persisted as `layout/rd/chunk/<id>` records written
//!   in the same metadata batch as the chunk record ([`Reducer::on_stored`])
//!   and deleted in the batch that deletes it ([`Reducer::on_freed`]), so it
//!   is always consistent with the chunk records; loaded at open.
//! * super-feature → base chunk: in memory, covering the chunks held in the
//!   base cache (the logical bytes a delta is encoded against); rebuilt as
//!   new chunks are stored.

pub mod chunker;
pub mod deflate;
pub mod encode;
pub mod features;
pub mod streams;

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use cairn_metadata::{Db, WriteBatch};
use parking_lot::Mutex;

use crate::error::{LayoutError, Result};
use crate::records;
use crate::reduce::{ReducedChunk, Reducer, ENCODING_RAW};
use chunker::{Cut, Sizes};
use deflate::{ChunkTokens, TokenStart};
use encode::{
    ElementDelta, ENCODING_DELTA, ENCODING_DELTA_PLANES, ENCODING_SPLIT_PLANES,
    ENCODING_STREAM_RAW, ENCODING_SUB_PLANES, ENCODING_TOKENS_DELTA, ENCODING_XOR_PLANES,
    ENCODING_ZSTD, ENCODING_ZSTD_PLANES, ZSTD_DICT_MAGIC,
};
use features::SUPER_FEATURES;
use streams::{CutSizes, StreamWalk};

/// Prefix of the fingerprint records: `layout/rd/chunk/<id u64 BE>` →
/// `[version 1][blake3 of the logical bytes, 32 bytes]`.
pub const RD_CHUNK_PREFIX: &[u8] = b"layout/rd/chunk/";
const RD_VERSION: u8 = 1;
/// Bytes of a float chunk compressed plainly to decide whether plain zstd may beat the planes.
const PLAIN_SAMPLE: usize = 8 << 10;

/// Tuning of the [`SimilarityReducer`].
#[derive(Clone, Debug)]
pub struct ReductionConfig {
    /// FastCDC minimum chunk size.
    pub min_chunk: u32,
    /// FastCDC average chunk size.
    pub avg_chunk: u32,
    /// FastCDC maximum chunk size (also capped by the worker's `max_stored`).
    pub max_chunk: u32,
    /// zstd level for compression and deltas.
    pub zstd_level: i32,
    /// Logical bytes of recent chunks kept in memory as delta bases (0 disables similarity).
    pub base_cache_bytes: usize,
    /// Format-aware reduction: float arrays cut by element and stored as
    /// byte planes, cuts anchored at zip members, and (with similarity on)
    /// deflate streams cut and delta-compressed by their tokens. Off, the
    /// reducer is plain FastCDC + dedup + zstd (the bench's reference).
    pub float_planes: bool,
}

impl Default for ReductionConfig {
    fn default() -> Self {
        ReductionConfig {
            min_chunk: 8 << 10,
            avg_chunk: 32 << 10,
            max_chunk: 128 << 10,
            zstd_level: 1,
            base_cache_bytes: 256 << 20,
            float_planes: true,
        }
    }
}

/// Per-stage counters of the reducer (cumulative, in the reducer's view).
#[derive(Default, Debug)]
pub struct ReductionStats {
    /// Chunks produced by the chunker.
    pub chunks: AtomicU64,
    /// Chunks answered by dedup.
    pub dedup_hits: AtomicU64,
    /// Chunks stored as deltas.
    pub delta_hits: AtomicU64,
    /// Chunks stored with the float byte-plane transform.
    pub plane_chunks: AtomicU64,
    /// Chunks stored raw (compression did not shrink them).
    pub raw_chunks: AtomicU64,
    /// Bytes of deflate data the token cutter parsed.
    pub deflate_parsed_bytes: AtomicU64,
    /// Bytes of deflate data cut as before without parsing (pieces known
    /// to follow a piece just cut).
    pub deflate_known_bytes: AtomicU64,
}

/// What `reduce` learned about a new chunk, handed to `on_stored`.
struct Pending {
    ptr: usize,
    len: usize,
    fp: [u8; 32],
    /// The chunk as a future base, when it may serve as one.
    base: Option<Base>,
    /// The chunk just before it (in its extent, or the last of the extent
    /// reduced before) is also a new future base.
    follows_base: bool,
}

/// A chunk held in memory as a delta base.
#[derive(Clone)]
struct Base {
    bytes: Bytes,
    sfs: [u64; SUPER_FEATURES],
    /// Float layout of the base (the XOR delta needs it).
    layout: Option<(usize, usize)>,
    /// For a base inside a deflate stream: where its tokens start and the
    /// tokens, exactly as [`deflate::chunk_tokens`] parses them from its
    /// bytes when a delta against it is decoded.
    deflate: Option<(TokenStart, Bytes)>,
    /// For a base of small deflate members: the super-features of its
    /// bytes too (members that did not change are the same bytes again).
    byte_sfs: Option<[u64; SUPER_FEATURES]>,
}

impl Base {
    /// Bytes the base holds in memory.
    fn size(&self) -> usize {
        self.bytes.len() + self.deflate.as_ref().map_or(0, |(_, t)| t.len())
    }
}

#[derive(Default)]
struct State {
    fp: HashMap<[u8; 32], u64>,
    by_chunk: HashMap<u64, [u8; 32]>,
    sf: HashMap<u64, u64>,
    cache: HashMap<u64, Base>,
    cache_order: VecDeque<u64>,
    cache_bytes: usize,
    /// Base → the base stored right after it, in migration order (delta
    /// locality: the chunk after one that matched a base likely matches
    /// the base after it, even where its own super-features miss).
    next_base: HashMap<u64, u64>,
    /// The last base `on_stored` indexed, while the next may follow it.
    last_base: Option<u64>,
    /// Where `reduce` left off, for the next extent (in migration order, the
    /// next extent of one object usually follows): the base after the last
    /// chunk's base, and whether the last chunk was a new base.
    carry: (Option<u64>, bool),
    /// Extents to go in which large zip members were seen lately (see
    /// `cut_extent`).
    zip_recently: u32,
    /// Piece lengths of large members cut before, by the [`MemberKey`] of
    /// the member.
    span_cuts: HashMap<MemberKey, Vec<u32>>,
    span_cut_order: VecDeque<MemberKey>,
    /// Pieces of deflate data cut by tokens, by fingerprint → the length
    /// and fingerprint of the piece that came next.
    follows: HashMap<[u8; 32], (u32, [u8; 32])>,
    follow_order: VecDeque<[u8; 32]>,
    queue: VecDeque<Pending>,
    /// Chunks stored by the migration in progress (not yet committed).
    uncommitted: Vec<u64>,
}

impl State {
    fn forget(&mut self, chunk: u64) {
        if let Some(fp) = self.by_chunk.remove(&chunk) {
            if self.fp.get(&fp) == Some(&chunk) {
                self.fp.remove(&fp);
            }
        }
        self.uncache(chunk);
    }

    fn uncache(&mut self, chunk: u64) {
        self.next_base.remove(&chunk);
        if let Some(b) = self.cache.remove(&chunk) {
            self.cache_bytes -= b.size();
            for s in b.sfs.iter().chain(b.byte_sfs.iter().flatten()) {
                if self.sf.get(s) == Some(&chunk) {
                    self.sf.remove(s);
                }
            }
        }
    }

    /// Indexes a newly stored chunk: links it from the last base when it
    /// `follows` that one (delta locality), caches it when it is a base, and
    /// makes it the last base when it was cached.
    fn index_stored(&mut self, chunk: u64, base: Option<Base>, follows: bool, budget: usize) {
        if let Some(prev) = self
            .last_base
            .take()
            .filter(|p| follows && self.cache.contains_key(p))
        {
            self.next_base.insert(prev, chunk);
        }
        if let Some(base) = base {
            self.cache_base(chunk, base, budget);
            if self.cache.contains_key(&chunk) {
                self.last_base = Some(chunk);
            }
        }
    }

    fn cache_base(&mut self, chunk: u64, base: Base, budget: usize) {
        if base.size() > budget {
            return;
        }
        self.cache_bytes += base.size();
        for s in base.sfs.iter().chain(base.byte_sfs.iter().flatten()) {
            self.sf.insert(*s, chunk);
        }
        self.cache.insert(chunk, base);
        self.cache_order.push_back(chunk);
        while self.cache_bytes > budget {
            let Some(old) = self.cache_order.pop_front() else {
                break;
            };
            self.uncache(old);
        }
    }
}

/// The full reduction pipeline as a [`Reducer`].
pub struct SimilarityReducer {
    cfg: ReductionConfig,
    state: Mutex<State>,
    /// Per-stage counters.
    pub stats: ReductionStats,
    /// Back-off of byte (non-float) delta attempts, see [`Backoff`].
    text_deltas: Mutex<Backoff>,
}

/// Exponential back-off of delta attempts that keep losing. Text that
/// shares only boilerplate (log templates, say) matches super-features
/// everywhere while a delta against the match never beats plain zstd, and
/// each attempt is a second compression; after a loss the next `skip`
/// matches go untried (doubling up to 32), and a win resets it.
#[derive(Default)]
struct Backoff {
    skip: u32,
    left: u32,
}

impl Backoff {
    /// Whether to try this match.
    fn attempt(&mut self) -> bool {
        if self.left > 0 {
            self.left -= 1;
            return false;
        }
        true
    }

    fn record(&mut self, won: bool) {
        self.skip = if won { 0 } else { (self.skip * 2 + 1).min(32) };
        self.left = self.skip;
    }
}

/// A chunk as the pipeline encoded it, before the index decides dedup.
struct Encoded {
    encoding: u8,
    stored: Bytes,
    base: Option<u64>,
}

impl SimilarityReducer {
    /// A reducer with an empty index (for tests and benchmarks).
    pub fn new(cfg: ReductionConfig) -> SimilarityReducer {
        SimilarityReducer {
            cfg,
            state: Mutex::new(State::default()),
            text_deltas: Mutex::new(Backoff::default()),
            stats: ReductionStats::default(),
        }
    }

    /// A reducer whose fingerprint index is loaded from `db` (the records
    /// committed with the chunk records).
    pub fn open(cfg: ReductionConfig, db: &Db) -> Result<SimilarityReducer> {
        let r = SimilarityReducer::new(cfg);
        {
            let mut st = r.state.lock();
            for item in db.scan_prefix(RD_CHUNK_PREFIX) {
                let (k, v) = item?;
                let Some(id) = records::id_from_key(RD_CHUNK_PREFIX, &k) else {
                    continue;
                };
                if v.len() != 33 || v[0] != RD_VERSION {
                    return Err(LayoutError::Corruption(format!(
                        "fingerprint record of chunk {id} is malformed"
                    )));
                }
                let mut fp = [0u8; 32];
                fp.copy_from_slice(&v[1..]);
                st.fp.insert(fp, id);
                st.by_chunk.insert(id, fp);
            }
        }
        Ok(r)
    }

    /// Number of fingerprints in the index.
    pub fn indexed_chunks(&self) -> usize {
        self.state.lock().fp.len()
    }

    /// The chunk boundaries the chunker picks for `data` (lengths, in order).
    pub fn cut(&self, data: &[u8], max_stored: usize) -> Vec<usize> {
        self.chunks(data, max_stored, false)
            .into_iter()
            .map(|c| c.len)
            .collect()
    }

    fn chunks(&self, data: &[u8], max_stored: usize, features: bool) -> Vec<Cut> {
        chunker::chunk(
            data,
            self.sizes(max_stored),
            self.cfg.float_planes,
            features,
        )
    }

    /// The chunker's size bounds for chunks stored in at most `max_stored` bytes.
    fn sizes(&self, max_stored: usize) -> Sizes {
        let max = (self.cfg.max_chunk as usize).min(max_stored).max(64);
        // `max` can be under 256 (a tiny block payload): never clamp with min > max.
        let avg = (self.cfg.avg_chunk as usize).max(256).min(max);
        let min = (self.cfg.min_chunk as usize).max(64).min(avg);
        Sizes { min, avg, max }
    }

    /// Compresses one chunk (no dedup, no similarity): the smallest of zstd,
    /// the float byte-plane transform (where the chunk looks like floats) and raw.
    pub fn compress_chunk(&self, logical: &Bytes, max_stored: usize) -> Result<(u8, Bytes)> {
        let layout = if self.cfg.float_planes {
            features::float_layout(logical)
        } else {
            None
        };
        self.compress_with(logical, layout, max_stored)
    }

    fn compress_with(
        &self,
        logical: &Bytes,
        layout: Option<(usize, usize)>,
        max_stored: usize,
    ) -> Result<(u8, Bytes)> {
        let limit = logical.len().min(max_stored);
        let mut best: Option<Vec<u8>> = None;
        let mut best_enc = ENCODING_RAW;
        let mut out = Vec::new();
        let mut try_plain = true;
        if let Some((w, phase)) = layout {
            if encode::split_planes_into(&mut out, logical, (w, phase), self.cfg.zstd_level, limit)?
            {
                // Plain zstd gets a full try only where a sample says it may
                // win; dense floats (planes at 50-90%) skip even the sample:
                // byte-oriented LZ does not get there on them.
                let r = out.len() as f64 / logical.len() as f64;
                let dense = (0.5..=0.9).contains(&r);
                let sample = &logical[..logical.len().min(PLAIN_SAMPLE)];
                let mut probe = Vec::new();
                encode::header(&mut probe, sample);
                let plain_ok = !dense
                    && encode::compress_into(
                        &mut probe,
                        sample,
                        &[],
                        self.cfg.zstd_level,
                        usize::MAX,
                    )?;
                try_plain = plain_ok
                    && (probe.len() as f64 / sample.len() as f64)
                        < (out.len() as f64 / logical.len() as f64);
                best_enc = ENCODING_SPLIT_PLANES;
                best = Some(std::mem::take(&mut out));
            }
        }
        if try_plain {
            let lim = best.as_ref().map_or(limit, |b| b.len());
            encode::header(&mut out, logical);
            if encode::compress_into(&mut out, logical, &[], self.cfg.zstd_level, lim)? {
                best_enc = ENCODING_ZSTD;
                best = Some(out);
            }
        }
        match best {
            Some(b) => Ok((best_enc, Bytes::from(b))),
            None => Ok((ENCODING_RAW, logical.clone())),
        }
    }

    /// Encodes one new chunk; `next` is the base after the one the previous
    /// chunk was encoded against (see `State::next_base`).
    fn encode_chunk(
        &self,
        logical: &Bytes,
        cut: &Cut,
        max_stored: usize,
        next: Option<u64>,
    ) -> Result<Encoded> {
        let layout = cut.layout.filter(|_| self.cfg.float_planes);
        // Similarity: a cached base of the same kind sharing a
        // super-feature, else the base after the previous chunk's if of
        // the same kind (a dense update changes enough exponents, momentum
        // especially, that features miss; a changed file's blocks after
        // the last one that matched).
        let base = match &cut.sfs {
            Some(sfs) if self.cfg.base_cache_bytes > 0 => {
                let st = self.state.lock();
                sfs.iter()
                    .find_map(|s| st.sf.get(s).copied())
                    .and_then(|id| st.cache.get(&id).map(|b| (id, b.clone())))
                    .filter(|(_, b)| b.deflate.is_none())
                    .or_else(|| {
                        let id = next?;
                        st.cache
                            .get(&id)
                            .filter(|b| b.layout.is_some() == layout.is_some())
                            .filter(|b| b.deflate.is_none())
                            .map(|b| (id, b.clone()))
                    })
            }
            _ => None,
        };
        let level = self.cfg.zstd_level;
        // The delta first: where it is clearly small, plain compression is
        // not worth running (it rarely gets below 80% of a float chunk
        // or an eighth of anything else).
        let mut delta: Option<(u8, Vec<u8>, u64)> = None;
        let floats = layout.is_some() && b_is_float(&base);
        let base = base.filter(|_| floats || self.text_deltas.lock().attempt());
        let tried = base.is_some();
        if let Some((id, b)) = base {
            let limit = logical.len().min(max_stored);
            let mut out = Vec::new();
            let (encoding, ok) = match (layout, b.layout) {
                // Floats against floats: element-wise difference (chunks of a
                // float region line up with the same elements of the last version).
                (Some(l), Some(bl)) => {
                    let delta = ElementDelta::Difference;
                    let base = (&b.bytes[..], bl);
                    (
                        delta.encoding(),
                        encode::element_delta_into(
                            &mut out, delta, logical, l, base, level, limit,
                        )?,
                    )
                }
                _ => (
                    ENCODING_DELTA,
                    encode::delta_into(&mut out, logical, &b.bytes, level, limit)?,
                ),
            };
            if ok {
                let clear = if layout.is_some() { 0.8 } else { 0.125 };
                if (out.len() as f64) <= logical.len() as f64 * clear {
                    if !floats {
                        self.text_deltas.lock().record(true);
                    }
                    return Ok(Encoded {
                        encoding,
                        stored: Bytes::from(out),
                        base: Some(id),
                    });
                }
                delta = Some((encoding, out, id));
            }
        }
        let (enc, stored) = self.compress_with(logical, layout, max_stored)?;
        let won = matches!(&delta, Some((_, out, _)) if out.len() < stored.len());
        if tried && !floats {
            self.text_deltas.lock().record(won);
        }
        match delta {
            Some((encoding, out, id)) if won => Ok(Encoded {
                encoding,
                stored: Bytes::from(out),
                base: Some(id),
            }),
            _ => Ok(Encoded {
                encoding: enc,
                stored,
                base: None,
            }),
        }
    }
}

impl SimilarityReducer {
    /// A byte delta of `logical` (a chunk of small deflate members) against
    /// a cached base sharing a super-feature of its bytes (a base of small
    /// members, or one stored without its tokens), else the base after the
    /// previous chunk's; `None` where there is none or the delta does not
    /// save half of the chunk.
    fn byte_delta(
        &self,
        logical: &Bytes,
        sfs: &[u64; SUPER_FEATURES],
        max_stored: usize,
        next: Option<u64>,
    ) -> Result<Option<Encoded>> {
        let base = {
            let st = self.state.lock();
            let byte_base = |id: u64| {
                st.cache
                    .get(&id)
                    .filter(|b| b.layout.is_none())
                    .map(|b| (id, b.bytes.clone()))
            };
            sfs.iter()
                .find_map(|s| byte_base(*st.sf.get(s)?))
                .or_else(|| byte_base(next?))
        };
        let Some((id, base)) = base else {
            return Ok(None);
        };
        let mut out = Vec::new();
        let limit = logical.len().min(max_stored) / 2;
        if !encode::delta_into(&mut out, logical, &base, self.cfg.zstd_level, limit)? {
            return Ok(None);
        }
        Ok(Some(Encoded {
            encoding: ENCODING_DELTA,
            stored: Bytes::from(out),
            base: Some(id),
        }))
    }

    /// Encodes a new chunk of a deflate stream as a delta of its tokens
    /// against a cached base of the same kind (sharing a super-feature of
    /// the tokens, else the base after the previous chunk's); `None` where
    /// there is none or the delta does not save a tenth of the chunk.
    fn encode_tokens(
        &self,
        logical: &Bytes,
        ct: &ChunkTokens,
        sfs: &[u64; SUPER_FEATURES],
        max_stored: usize,
        next: Option<u64>,
    ) -> Result<Option<Encoded>> {
        let candidates = {
            let st = self.state.lock();
            let token_base = |id: u64| {
                st.cache
                    .get(&id)
                    .and_then(|b| Some((id, b.deflate.clone()?)))
            };
            let by_feature = sfs.iter().find_map(|s| token_base(*st.sf.get(s)?));
            // A base by place with under half the chunk's tokens nearly
            // never gave a delta (3 times in 31 tries on the wheels).
            let by_place = next
                .filter(|n| by_feature.as_ref().is_none_or(|f| f.0 != *n))
                .and_then(token_base)
                .filter(|(_, (_, t))| t.len() * 2 >= ct.tokens.len());
            [by_feature, by_place]
        };
        for (id, (start, base_tokens)) in candidates.into_iter().flatten() {
            if let Some(e) = self.token_delta(logical, ct, id, &start, &base_tokens, max_stored)? {
                return Ok(Some(e));
            }
        }
        Ok(None)
    }

    /// [`Self::encode_tokens`] against one base.
    fn token_delta(
        &self,
        logical: &Bytes,
        ct: &ChunkTokens,
        id: u64,
        start: &TokenStart,
        base_tokens: &[u8],
        max_stored: usize,
    ) -> Result<Option<Encoded>> {
        if base_tokens.starts_with(&ZSTD_DICT_MAGIC) {
            // zstd would read such tokens as a formatted dictionary.
            return Ok(None);
        }
        let limit = logical.len().min(max_stored) / 10 * 9;
        let mut out = Vec::new();
        let level = TOKEN_DELTA_LEVEL;
        if !encode::tokens_delta_into(&mut out, logical, ct, start, base_tokens, level, limit)? {
            return Ok(None);
        }
        // The stored form is only as good as the rebuild: check it.
        let (from, to) = (ct.start.prefix_bits, ct.start.end_bits);
        let block = ct.start.block.clone();
        if !deflate::encodes_to(block, &ct.tokens, &ct.headers, logical, from, to) {
            return Ok(None);
        }
        Ok(Some(Encoded {
            encoding: ENCODING_TOKENS_DELTA,
            stored: Bytes::from(out),
            base: Some(id),
        }))
    }
}

/// zstd level of token deltas: level 1 barely finds the base's tokens
/// (measured: a member with an edit every 20 KB stored its changed chunks
/// in 43 KB at level 1, 4.6 KB at level 3); on the numpy wheels level 2
/// stores 0.1% more than level 3 in 25-30% less time, level 1 7% more.
const TOKEN_DELTA_LEVEL: i32 = 2;

/// Members whose cuts the reducer remembers (by the BLAKE3 of the whole
/// member), so that a member seen before is cut without parsing it again.
const SPAN_CUTS_KEPT: usize = 1 << 16;

/// Bytes from an extent's start searched for a deflate block to go on
/// from (zlib's blocks hold 16 Ki symbols, some 20-40 KiB).
const RESYNC_WINDOW: usize = 64 << 10;

/// Extents after one with a large zip member in which an extent without
/// any member header is still searched for deflate data to go on from.
const ZIP_RECENT_EXTENTS: u32 = 64;

/// Compressed size from which a zip member is cut by its deflate tokens
/// ([`SpanCutter`]); smaller ones go with the bytes around them (many small
/// members would otherwise make many small chunks).
const SPAN_MIN: usize = 128 << 10;

/// A chunk to store: where it is cut, its deflate tokens where a large
/// zip member's cutter found them, and which run of deflate pieces it
/// belongs to (if any).
type Piece = (Cut, Option<ChunkTokens>, Option<usize>);

/// What [`SimilarityReducer::cut_extent`] found: the chunks, the members
/// cut by tokens, and the fingerprints the cut memo already took (by the
/// chunk's offset and length), which need not be taken again.
struct ExtentCuts {
    pieces: Vec<Piece>,
    /// Where the streams of the members not cut by tokens start.
    stream_starts: Vec<u64>,
    fps: HashMap<(usize, usize), [u8; 32]>,
}

impl SimilarityReducer {
    /// Cuts an extent: large zip members by their deflate tokens, and so
    /// a stretch of deflate data that the extent starts in (the rest of a
    /// member begun in an earlier extent, found by [`deflate::resync`]);
    /// everything else with the chunker. Every cut depends on the extent's
    /// bytes alone (dedup), whatever order extents come in.
    fn cut_extent(&self, extent: &[u8], max_stored: usize, format_aware: bool) -> ExtentCuts {
        let mut out: Vec<Piece> = Vec::new();
        let mut at = 0;
        let mut stream_starts = Vec::new();
        let mut fps = HashMap::new();
        let push_cuts = |out: &mut Vec<Piece>, from: usize, to: usize| {
            let cuts = self.chunks(&extent[from..to], max_stored, format_aware);
            out.extend(cuts.into_iter().map(|c| (c, None, None)));
        };
        if format_aware {
            let sz = self.sizes(max_stored);
            let sizes = CutSizes {
                min: sz.min,
                avg: sz.avg,
                max: sz.max,
            };
            let piece = |run: usize, p: streams::Piece| {
                let cut = Cut {
                    len: p.len,
                    layout: None,
                    sfs: None,
                };
                (cut, p.tokens, Some(run))
            };
            // An extent without a member header is searched for deflate
            // data only shortly after large members went by (random bytes
            // look compressed too, and searching them costs ~5 ms).
            let recent = {
                let mut st = self.state.lock();
                st.zip_recently = st.zip_recently.saturating_sub(1);
                st.zip_recently > 0
            };
            // Deflate data seen before whose chunks are still stored is cut
            // as then, without parsing it.
            let mut memo = Remembered {
                reducer: self,
                extent,
                fps: HashMap::new(),
            };
            let cuts =
                streams::cut_deflate(extent, sizes, RESYNC_WINDOW, SPAN_MIN, recent, &mut memo);
            if cuts.members > 0 {
                self.state.lock().zip_recently = ZIP_RECENT_EXTENTS;
            }
            for (i, run) in cuts.runs.into_iter().enumerate() {
                push_cuts(&mut out, at, run.start);
                if let Some(key) = run.fresh {
                    self.remember_cuts(key, run.pieces.iter().map(|p| p.len as u32).collect());
                }
                at = run.start + run.pieces.iter().map(|p| p.len).sum::<usize>();
                out.extend(run.pieces.into_iter().map(|p| piece(i, p)));
            }
            stream_starts = cuts.stream_starts;
            fps = memo.fps;
        }
        push_cuts(&mut out, at, extent.len());
        ExtentCuts {
            pieces: out,
            stream_starts,
            fps,
        }
    }

    /// The remembered cuts of the member `key` (its bytes `member`), when
    /// every chunk they make is stored, with each chunk's fingerprint.
    fn known_cuts(&self, key: &MemberKey, member: &[u8]) -> Option<Vec<(usize, [u8; 32])>> {
        let st = self.state.lock();
        let lens = st.span_cuts.get(key)?;
        let mut off = 0;
        let mut out = Vec::with_capacity(lens.len());
        for &len in lens {
            let len = len as usize;
            let fp = *blake3::hash(member.get(off..off + len)?).as_bytes();
            st.fp.get(&fp)?;
            out.push((len, fp));
            off += len;
        }
        (off == member.len()).then_some(out)
    }

    /// Notes that the piece `next` (of `len` bytes) came right after the
    /// piece `prev` in a stretch cut by tokens.
    fn remember_follow(&self, prev: [u8; 32], len: usize, next: [u8; 32]) {
        let mut st = self.state.lock();
        if st.follows.insert(prev, (len as u32, next)).is_none() {
            st.follow_order.push_back(prev);
        }
        while st.follow_order.len() > FOLLOWS_KEPT {
            if let Some(old) = st.follow_order.pop_front() {
                st.follows.remove(&old);
            }
        }
    }

    fn remember_cuts(&self, key: MemberKey, lens: Vec<u32>) {
        let mut st = self.state.lock();
        if st.span_cuts.insert(key, lens).is_none() {
            st.span_cut_order.push_back(key);
        }
        while st.span_cut_order.len() > SPAN_CUTS_KEPT {
            if let Some(old) = st.span_cut_order.pop_front() {
                st.span_cuts.remove(&old);
            }
        }
    }
}

/// What a large member's remembered cuts are found by: the XXH3-128 of
/// its bytes. Not a fingerprint: cuts are only where chunks end (each
/// chunk is still fingerprinted with BLAKE3 and must still be stored), so
/// a collision, forged or not, costs dedup and never bytes; a hash ~10
/// times faster than BLAKE3 over the whole member serves.
type MemberKey = u128;

/// Pieces cut by tokens whose successor the reducer remembers (about
/// 4 GiB of deflate data at 32 KiB a piece, ~100 bytes each in memory).
const FOLLOWS_KEPT: usize = 1 << 17;

/// The reducer's memory of deflate data it cut before (see
/// [`streams::CutMemo`]), asked about `extent`; it keeps the fingerprints
/// it takes of the extent's pieces (by offset and length).
struct Remembered<'a> {
    reducer: &'a SimilarityReducer,
    extent: &'a [u8],
    fps: HashMap<(usize, usize), [u8; 32]>,
}

impl Remembered<'_> {
    /// Notes the fingerprint of `piece`, a slice of the extent.
    fn keep(&mut self, piece: &[u8], fp: [u8; 32]) {
        let off = (piece.as_ptr() as usize).checked_sub(self.extent.as_ptr() as usize);
        if let Some(off) = off.filter(|o| o + piece.len() <= self.extent.len()) {
            self.fps.insert((off, piece.len()), fp);
        }
    }
}

impl streams::CutMemo for Remembered<'_> {
    type Key = MemberKey;

    fn member(&mut self, bytes: &[u8]) -> Result<Vec<usize>, MemberKey> {
        let key = xxhash_rust::xxh3::xxh3_128(bytes);
        let known = self.reducer.known_cuts(&key, bytes).ok_or(key)?;
        let mut off = 0;
        for &(len, fp) in &known {
            self.keep(&bytes[off..off + len], fp);
            off += len;
        }
        Ok(known.into_iter().map(|(len, _)| len).collect())
    }

    /// Known pieces are taken only while still stored (the dedup they
    /// promise is what saves parsing them).
    fn following(&mut self, piece: &[u8], rest: &[u8]) -> Vec<usize> {
        let stats = &self.reducer.stats;
        stats
            .deflate_parsed_bytes
            .fetch_add(piece.len() as u64, Ordering::Relaxed);
        let mut out = Vec::new();
        let mut cur = *blake3::hash(piece).as_bytes();
        self.keep(piece, cur);
        let mut off = 0;
        loop {
            let next = {
                let st = self.reducer.state.lock();
                st.follows
                    .get(&cur)
                    .filter(|(_, fp)| st.fp.contains_key(fp))
                    .copied()
            };
            let Some((len, fp)) = next else {
                break;
            };
            let Some(bytes) = rest.get(off..off + len as usize) else {
                break;
            };
            if *blake3::hash(bytes).as_bytes() != fp {
                break;
            }
            self.keep(bytes, fp);
            out.push(len as usize);
            off += len as usize;
            cur = fp;
        }
        stats
            .deflate_known_bytes
            .fetch_add(off as u64, Ordering::Relaxed);
        out
    }
}

/// Whether a found base holds floats (its delta is an XOR, never backed off).
fn b_is_float(base: &Option<(u64, Base)>) -> bool {
    base.as_ref().is_some_and(|(_, b)| b.layout.is_some())
}

impl Reducer for SimilarityReducer {
    fn reduce(&self, extent: &Bytes, max_stored: usize) -> Result<Vec<ReducedChunk>> {
        let want_features = self.cfg.base_cache_bytes > 0;
        let format_aware = want_features && self.cfg.float_planes;
        let ExtentCuts {
            pieces: cuts,
            stream_starts,
            fps,
        } = self.cut_extent(extent, max_stored, format_aware);
        let mut out = Vec::with_capacity(cuts.len());
        let mut local: HashMap<[u8; 32], usize> = HashMap::new();
        let mut pend: Vec<Pending> = Vec::new();
        let mut off = 0usize;
        // The base after the previous chunk's base, and whether the previous
        // chunk was itself a new base (carried over from the last extent).
        let (mut next, mut prev_was_base) = self.state.lock().carry;
        let mut walk = format_aware.then(|| StreamWalk::from_starts(extent, stream_starts));
        // The last chunk's run of deflate pieces and fingerprint.
        let mut prev_piece: Option<(usize, [u8; 32])> = None;
        for (cut, piece_tokens, run) in cuts {
            let len = cut.len;
            let start = off;
            let logical = extent.slice(off..off + len);
            off += len;
            self.stats.chunks.fetch_add(1, Ordering::Relaxed);
            let fp: [u8; 32] = match fps.get(&(start, len)) {
                Some(fp) => *fp,
                None => *blake3::hash(&logical).as_bytes(),
            };
            if let (Some(r), Some((pr, pfp))) = (run, prev_piece) {
                if r == pr {
                    self.remember_follow(pfp, len, fp);
                }
            }
            prev_piece = run.map(|r| (r, fp));
            let hit = {
                let st = self.state.lock();
                st.fp.get(&fp).map(|&c| (c, st.next_base.get(&c).copied()))
            };
            if let Some((chunk, after)) = hit {
                // The chunk after a known one likely resembles the chunk
                // after it (an edit after an unchanged stretch).
                (next, prev_was_base) = (after, false);
                self.stats.dedup_hits.fetch_add(1, Ordering::Relaxed);
                out.push(ReducedChunk::Existing {
                    chunk,
                    logical_len: len as u32,
                });
                continue;
            }
            if let Some(&index) = local.get(&fp) {
                (next, prev_was_base) = (None, false);
                self.stats.dedup_hits.fetch_add(1, Ordering::Relaxed);
                out.push(ReducedChunk::Repeat {
                    index,
                    logical_len: len as u32,
                });
                continue;
            }
            // Small deflate members that did not change are the same bytes
            // as before (only their headers' times differ): a byte delta
            // (one that saves half of the chunk) spares walking the chunk
            // for its tokens, whose delta is hardly smaller (measured on the
            // wheels: within 10% for every size of byte delta).
            // (A small member's stream is shorter than SPAN_MIN.)
            let cut_by_tokens = piece_tokens.is_some();
            let walked = !cut_by_tokens
                && walk
                    .as_ref()
                    .is_some_and(|w| w.near(start, start + len, SPAN_MIN));
            let by_bytes = match &cut.sfs {
                Some(sfs) if walked => self.byte_delta(&logical, sfs, max_stored, next)?,
                _ => None,
            };
            // Inside a deflate stream: similarity on the tokens.
            let tokens = piece_tokens
                .or_else(|| {
                    walk.as_mut()
                        .filter(|_| by_bytes.is_none())?
                        .chunk(start, start + len)
                })
                .and_then(|ct| {
                    let sfs = ct.sfs?;
                    Some((ct, sfs))
                });
            // The delta of a chunk inside deflate data: bytes or tokens.
            let by_stream = match (by_bytes, &tokens) {
                (Some(e), _) => Some(e),
                (None, Some((ct, sfs))) => {
                    self.encode_tokens(&logical, ct, sfs, max_stored, next)?
                }
                (None, None) => None,
            };
            let mut e = match by_stream {
                Some(e) => e,
                // A piece of a large member is deflated bytes all through:
                // where they look it, zstd does not shrink them (and there is
                // no byte base to delta against).
                None if cut_by_tokens && streams::looks_compressed(&logical) => Encoded {
                    encoding: ENCODING_RAW,
                    stored: logical.clone(),
                    base: None,
                },
                None => self.encode_chunk(&logical, &cut, max_stored, next)?,
            };
            if let (ENCODING_RAW, Some((ct, _))) = (e.encoding, &tokens) {
                // Raw, but saying where its tokens start (a base after a restart).
                let stored = encode::stream_raw(&logical, &ct.start);
                if stored.len() <= max_stored {
                    (e.encoding, e.stored) = (ENCODING_STREAM_RAW, Bytes::from(stored));
                }
            }
            // The base after this chunk's, if it has one (going on along
            // the previous version's chunks after a chunk of tokens that
            // found no delta paid 8 times in 72 tries on the wheels).
            next = e
                .base
                .and_then(|b| self.state.lock().next_base.get(&b).copied());
            match e.encoding {
                ENCODING_DELTA
                | ENCODING_TOKENS_DELTA
                | ENCODING_DELTA_PLANES
                | ENCODING_XOR_PLANES
                | ENCODING_SUB_PLANES => self.stats.delta_hits.fetch_add(1, Ordering::Relaxed),
                ENCODING_ZSTD_PLANES | ENCODING_SPLIT_PLANES => {
                    self.stats.plane_chunks.fetch_add(1, Ordering::Relaxed)
                }
                ENCODING_RAW | ENCODING_STREAM_RAW => {
                    self.stats.raw_chunks.fetch_add(1, Ordering::Relaxed)
                }
                _ => 0,
            };
            // Chains stay one level deep: a delta is never a base.
            let as_base = match (e.base, tokens, cut.sfs) {
                _ if logical.starts_with(&ZSTD_DICT_MAGIC) => None,
                // A copy: a slice would keep the whole extent buffer alive
                // in the cache; a chunk stored raw with its token start ends
                // with its bytes in a buffer of its own, which is shared.
                (None, Some((ct, sfs)), byte_sfs) => Some(Base {
                    bytes: match e.encoding {
                        ENCODING_STREAM_RAW => e.stored.slice(e.stored.len() - len..),
                        _ => Bytes::copy_from_slice(&logical),
                    },
                    sfs,
                    layout: None,
                    deflate: Some((ct.start, Bytes::from(ct.tokens))),
                    byte_sfs: byte_sfs.filter(|_| walked),
                }),
                (None, None, Some(sfs)) => Some(Base {
                    bytes: Bytes::copy_from_slice(&logical),
                    sfs,
                    layout: cut.layout,
                    deflate: None,
                    byte_sfs: None,
                }),
                _ => None,
            };
            local.insert(fp, out.len());
            let is_base = as_base.is_some();
            pend.push(Pending {
                ptr: e.stored.as_ptr() as usize,
                len: e.stored.len(),
                fp,
                base: as_base,
                follows_base: prev_was_base && is_base,
            });
            prev_was_base = is_base;
            out.push(ReducedChunk::New {
                logical_len: len as u32,
                encoding: e.encoding,
                stored: e.stored,
                base: e.base,
            });
        }
        let mut st = self.state.lock();
        st.queue.clear();
        st.queue.extend(pend);
        st.carry = (next, prev_was_base);
        Ok(out)
    }

    fn decode(&self, encoding: u8, stored: Bytes, logical_len: u32) -> Result<Bytes> {
        if encoding == ENCODING_RAW {
            if stored.len() != logical_len as usize {
                return Err(LayoutError::Corruption(format!(
                    "raw chunk of {} bytes, expected {logical_len}",
                    stored.len()
                )));
            }
            return Ok(stored);
        }
        Ok(Bytes::from(encode::decode(
            encoding,
            &stored,
            logical_len,
            None,
        )?))
    }

    fn decode_with_base(
        &self,
        encoding: u8,
        stored: Bytes,
        logical_len: u32,
        base: &Bytes,
    ) -> Result<Bytes> {
        Ok(Bytes::from(encode::decode(
            encoding,
            &stored,
            logical_len,
            Some(base),
        )?))
    }

    fn cached_logical(&self, chunk: u64) -> Option<Bytes> {
        self.state.lock().cache.get(&chunk).map(|b| b.bytes.clone())
    }

    fn on_stored(&self, batch: &mut WriteBatch, chunk: u64, stored: &Bytes) {
        let mut st = self.state.lock();
        let Some(p) = st.queue.pop_front() else {
            return;
        };
        if p.ptr != stored.as_ptr() as usize || p.len != stored.len() {
            // Not the chunk `reduce` described: index nothing rather than something wrong.
            st.queue.clear();
            return;
        }
        let mut v = Vec::with_capacity(33);
        v.push(RD_VERSION);
        v.extend_from_slice(&p.fp);
        batch.put(rd_key(chunk), v);
        st.fp.insert(p.fp, chunk);
        st.by_chunk.insert(chunk, p.fp);
        st.uncommitted.push(chunk);
        st.index_stored(chunk, p.base, p.follows_base, self.cfg.base_cache_bytes);
    }

    fn warm_bytes(&self) -> usize {
        self.cfg.base_cache_bytes
    }

    /// Puts a stored chunk back into the base cache and the super-feature
    /// index with the features it was indexed under when it was cut (float
    /// chunks by the layout their planes record; a float chunk that plain
    /// zstd won is indexed as bytes), linking it to the previous one offered
    /// for delta locality.
    fn warm(&self, chunk: u64, encoding: u8, stored: &Bytes, logical: Bytes) {
        if self.cfg.base_cache_bytes == 0 || logical.starts_with(&ZSTD_DICT_MAGIC) {
            return;
        }
        let layout = encode::planes_layout(encoding, stored).filter(|_| self.cfg.float_planes);
        let deflate = encode::stream_start(encoding, stored)
            .filter(|_| self.cfg.float_planes)
            .map(|start| deflate::chunk_tokens_and_features(&logical, &start));
        let sfs = match (layout, &deflate) {
            (Some((w, p)), _) => features::float_super_features(&logical, w, p),
            (None, Some(ct)) => ct.sfs,
            (None, None) => chunker::byte_features(&logical, self.sizes(usize::MAX)),
        };
        let deflate = deflate.map(|ct| (ct.start, Bytes::from(ct.tokens)));
        let Some(sfs) = sfs else {
            return;
        };
        let mut st = self.state.lock();
        if st.cache.contains_key(&chunk) {
            return;
        }
        // A stream chunk may hold small members: its bytes' features too.
        let byte_sfs = deflate
            .as_ref()
            .and_then(|_| chunker::byte_features(&logical, self.sizes(usize::MAX)));
        let base = Base {
            bytes: logical,
            sfs,
            layout,
            deflate,
            byte_sfs,
        };
        st.index_stored(chunk, Some(base), true, self.cfg.base_cache_bytes);
    }

    fn on_freed(&self, batch: &mut WriteBatch, chunk: u64) {
        batch.delete(rd_key(chunk));
        self.state.lock().forget(chunk);
    }

    fn on_committed(&self) {
        let mut st = self.state.lock();
        st.uncommitted.clear();
        st.queue.clear();
    }

    fn on_aborted(&self) {
        let mut st = self.state.lock();
        let ids = std::mem::take(&mut st.uncommitted);
        for id in ids {
            st.forget(id);
        }
        st.queue.clear();
        (st.last_base, st.carry) = (None, (None, false));
    }
}

/// `layout/rd/chunk/<id>`.
pub fn rd_key(chunk: u64) -> Vec<u8> {
    let mut k = RD_CHUNK_PREFIX.to_vec();
    k.extend_from_slice(&chunk.to_be_bytes());
    k
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Found by the `chunker` fuzz target: a `max_stored` under 256 made
    /// the size clamps panic (min > max).
    #[test]
    fn tiny_max_stored_cuts_small_chunks() {
        let r = SimilarityReducer::new(ReductionConfig::default());
        let data = Bytes::from(
            (0..5000u32)
                .map(|i| (i * 7 % 251) as u8)
                .collect::<Vec<_>>(),
        );
        for max_stored in [1, 64, 96, 255, 300] {
            let lens = r.cut(&data, max_stored);
            assert_eq!(lens.iter().sum::<usize>(), data.len());
            assert!(
                lens.iter().all(|&l| l <= max_stored.max(64)),
                "{max_stored}"
            );
            let chunks = r.reduce(&data, max_stored).unwrap();
            let mut back = Vec::new();
            for c in &chunks {
                match c {
                    ReducedChunk::New {
                        encoding,
                        stored,
                        logical_len,
                        base: None,
                    } => back.extend_from_slice(
                        &r.decode(*encoding, stored.clone(), *logical_len).unwrap(),
                    ),
                    ReducedChunk::Repeat { index, .. } => {
                        let ReducedChunk::New {
                            encoding,
                            stored,
                            logical_len,
                            ..
                        } = &chunks[*index]
                        else {
                            panic!("repeat of a non-new chunk")
                        };
                        back.extend_from_slice(
                            &r.decode(*encoding, stored.clone(), *logical_len).unwrap(),
                        )
                    }
                    other => panic!("unexpected {other:?}"),
                }
            }
            assert_eq!(back, data.to_vec());
        }
    }

    /// Pseudo-random f32 weights of magnitude under 1.
    fn weights(n: usize, seed: u64) -> Vec<f32> {
        chunker::tests::xorshift(seed)
            .take(n)
            .map(|x| {
                let r = (x.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 32) as u32;
                // Random sign and mantissa, exponents of 2^-7 ..= 2^-1.
                f32::from_bits((r & 0x807f_ffff) | ((120 + (r >> 23) % 7) << 23))
            })
            .collect()
    }

    fn to_bytes(v: &[f32]) -> Bytes {
        Bytes::from(v.iter().flat_map(|f| f.to_le_bytes()).collect::<Vec<u8>>())
    }

    /// Stores every new chunk of `data` (as the migration worker would) and
    /// returns how many were deltas.
    fn reduce_and_store(r: &SimilarityReducer, data: &Bytes, next_id: &mut u64) -> usize {
        let mut batch = WriteBatch::new();
        let mut deltas = 0;
        for c in r.reduce(data, 1 << 20).unwrap() {
            if let ReducedChunk::New { stored, base, .. } = c {
                deltas += base.is_some() as usize;
                r.on_stored(&mut batch, *next_id, &stored);
                *next_id += 1;
            }
        }
        r.on_committed();
        deltas
    }

    /// Found on the checkpoint corpus: momentum changes enough exponents
    /// between saves that its super-features miss, though a delta against
    /// the same elements of the last version still wins. The base after the
    /// previous chunk's base is tried then, also across the boundary between
    /// two extents reduced one after the other.
    #[test]
    fn float_chunks_whose_features_miss_follow_the_previous_base() {
        let r = SimilarityReducer::new(ReductionConfig::default());
        let a = weights(1 << 20, 7);
        // Every element changes in its low byte; after the first 8192 (a
        // chunk) every 16th also changes its exponent, which breaks every
        // feature window.
        let b: Vec<f32> = a
            .iter()
            .enumerate()
            .map(|(i, &w)| {
                // A dense update: the low mantissa byte of every element.
                let bits = w.to_bits() ^ ((i as u32).wrapping_mul(37) & 0xff);
                // An exponent bit that lies in the sign/exponent byte.
                let bits = if i >= 8192 && i % 16 == 0 {
                    bits ^ 0x0100_0000
                } else {
                    bits
                };
                f32::from_bits(bits)
            })
            .collect();
        // Each version as two extents, migrated in order.
        let half = a.len() / 2;
        let mut id = 1;
        for part in [&a[..half], &a[half..]] {
            assert_eq!(reduce_and_store(&r, &to_bytes(part), &mut id), 0);
        }
        let mut chunks = 0;
        let mut deltas = Vec::new();
        for part in [&b[..half], &b[half..]] {
            let part = to_bytes(part);
            chunks += r.cut(&part, 1 << 20).len();
            deltas.push(reduce_and_store(&r, &part, &mut id));
        }
        let all: usize = deltas.iter().sum();
        assert!(
            all * 10 >= chunks * 9,
            "{deltas:?} deltas of {chunks} chunks"
        );
    }

    /// Stores every chunk `reduce` returns for `data` under new ids into
    /// `store` (id → encoding, stored bytes, base, logical bytes) and returns
    /// the bytes decoded back from the store, and the encodings of the new chunks.
    fn store_and_read_back(
        r: &SimilarityReducer,
        data: &Bytes,
        next_id: &mut u64,
        store: &mut HashMap<u64, (u8, Bytes, Bytes)>,
    ) -> (Vec<u8>, Vec<(u8, usize)>) {
        let mut batch = WriteBatch::new();
        let (mut back, mut new, mut ids) = (Vec::new(), Vec::new(), Vec::new());
        let mut off = 0;
        for c in r.reduce(data, 1 << 20).unwrap() {
            let (id, len) = match c {
                ReducedChunk::New {
                    encoding,
                    stored,
                    base,
                    logical_len,
                } => {
                    let decoded = match base {
                        Some(b) => r
                            .decode_with_base(encoding, stored.clone(), logical_len, &store[&b].2)
                            .unwrap(),
                        None => r.decode(encoding, stored.clone(), logical_len).unwrap(),
                    };
                    assert_eq!(decoded, data.slice(off..off + logical_len as usize));
                    r.on_stored(&mut batch, *next_id, &stored);
                    new.push((encoding, stored.len()));
                    store.insert(*next_id, (encoding, stored, decoded));
                    *next_id += 1;
                    (*next_id - 1, logical_len)
                }
                ReducedChunk::Existing { chunk, logical_len } => (chunk, logical_len),
                ReducedChunk::Repeat { index, logical_len } => (ids[index], logical_len),
            };
            ids.push(id);
            back.extend_from_slice(&store[&id].2);
            off += len as usize;
        }
        r.on_committed();
        (back, new)
    }

    /// A rebuilt library in a zip: its deflated bytes differ everywhere
    /// after the first change, its deflate tokens only where it changed.
    /// The changed member's chunks are stored as token deltas, decode to the
    /// same bytes, and cost a fraction of the deflated member; after a
    /// restart the warm-up makes the stored stream chunks bases again.
    #[test]
    fn changed_zip_members_delta_by_their_deflate_tokens() {
        let text = deflate::tests::source_text(40_000, 5);
        let mut edited = text.clone();
        for i in (1000..edited.len()).step_by(20_000) {
            edited[i] = b'#';
        }
        let member = miniz_oxide::deflate::compress_to_vec(&edited, 6).len();
        let v1 = Bytes::from(deflate::tests::zip(&[
            ("lib.py", &text, true),
            ("same.txt", b"unchanged", true),
        ]));
        let v2 = Bytes::from(deflate::tests::zip(&[
            ("lib.py", &edited, true),
            ("same.txt", b"unchanged", true),
        ]));
        let (mut id, mut store) = (1, HashMap::new());
        let r = SimilarityReducer::new(ReductionConfig::default());
        let (back, first) = store_and_read_back(&r, &v1, &mut id, &mut store);
        assert_eq!(back, v1.to_vec());
        assert!(first.iter().all(|(e, _)| *e != ENCODING_TOKENS_DELTA));
        assert!(first.iter().any(|(e, _)| *e == ENCODING_STREAM_RAW));
        let check = |r: &SimilarityReducer, id: &mut u64, store: &mut HashMap<_, _>| {
            let (back, new) = store_and_read_back(r, &v2, id, store);
            assert_eq!(back, v2.to_vec());
            let deltas = new
                .iter()
                .filter(|(e, _)| *e == ENCODING_TOKENS_DELTA)
                .count();
            let bytes: usize = new.iter().map(|(_, n)| n).sum();
            assert!(
                deltas * 10 >= new.len() * 7,
                "{deltas} of {} new chunks were token deltas",
                new.len()
            );
            // Deflated bytes do not compress: without the tokens the member
            // would be stored at its size.
            assert!(
                bytes * 10 < member * 7,
                "{bytes} stored for a {member}-byte member"
            );
        };
        check(&r, &mut id, &mut store);
        // A restart: a new reducer warmed from the first version's chunks.
        let r = SimilarityReducer::new(ReductionConfig::default());
        for chunk in 1..1 + first.len() as u64 {
            let (encoding, stored, logical) = &store[&chunk];
            r.warm(chunk, *encoding, stored, logical.clone());
        }
        check(&r, &mut id, &mut store);
    }

    /// Small members zipped again at another time (their headers' times
    /// differ, their deflated bytes do not, but for one that changed): the
    /// chunks holding them are byte deltas, taken without walking them for
    /// tokens, and read back exact; so after a restart's warm-up.
    #[test]
    fn small_members_zipped_again_are_byte_deltas() {
        let texts: Vec<(String, Vec<u8>)> = (0..80)
            .map(|i| (format!("pkg/mod{i}.py"), deflate::tests::source_text(40, i)))
            .collect();
        let zipped = |stamp: u8, edited: usize| {
            let mut edit = texts[edited].1.clone();
            edit[100] = b'#';
            let list: Vec<(&str, &[u8], bool)> = texts
                .iter()
                .enumerate()
                .map(|(i, (n, t))| {
                    (
                        n.as_str(),
                        if i == edited { &edit[..] } else { &t[..] },
                        true,
                    )
                })
                .collect();
            let mut z = deflate::tests::zip(&list);
            let heads: Vec<usize> = memchr::memmem::find_iter(&z, b"PK\x03\x04").collect();
            for at in heads {
                z[at + 10] = stamp;
            }
            Bytes::from(z)
        };
        let v1 = zipped(1, 0);
        let (mut id, mut store) = (1, HashMap::new());
        let r = SimilarityReducer::new(ReductionConfig::default());
        let (_, first) = store_and_read_back(&r, &v1, &mut id, &mut store);
        // Returns the bytes stored for the new version.
        let check = |r: &SimilarityReducer, stamp: u8, id: &mut u64, store: &mut HashMap<_, _>| {
            let v2 = zipped(stamp, 40);
            let (back, new) = store_and_read_back(r, &v2, id, store);
            assert_eq!(back, v2.to_vec());
            let byte_deltas = new.iter().filter(|(e, _)| *e == ENCODING_DELTA).count();
            assert!(byte_deltas * 2 > new.len(), "{new:?}");
            (new.iter().map(|(_, n)| n).sum::<usize>(), v2.len())
        };
        // The two chunks whose members changed are token deltas.
        let (bytes, len) = check(&r, 2, &mut id, &mut store);
        assert!(bytes * 10 < len, "{bytes} stored of {len}");
        let r = SimilarityReducer::new(ReductionConfig::default());
        for chunk in 1..1 + first.len() as u64 {
            let (encoding, stored, logical) = &store[&chunk];
            r.warm(chunk, *encoding, stored, logical.clone());
        }
        // (Chunks of small members that zstd shrank were stored without
        // their tokens' start: after a restart, only bytes delta against them.)
        check(&r, 3, &mut id, &mut store);
    }

    /// A large member seen before is cut as before (every chunk dedups);
    /// once its chunks are gone it is parsed and cut again, and its chunks
    /// are stream chunks that can serve as bases again.
    #[test]
    fn a_member_seen_again_dedups_and_one_whose_chunks_went_is_cut_again() {
        let text = deflate::tests::source_text(20_000, 8);
        let zip = Bytes::from(deflate::tests::zip(&[("lib.py", &text, true)]));
        let (mut id, mut store) = (1, HashMap::new());
        let r = SimilarityReducer::new(ReductionConfig::default());
        let (_, first) = store_and_read_back(&r, &zip, &mut id, &mut store);
        assert!(first.iter().any(|(e, _)| *e == ENCODING_STREAM_RAW));
        let (back, again) = store_and_read_back(&r, &zip, &mut id, &mut store);
        assert_eq!(back, zip.to_vec());
        assert!(again.is_empty(), "{again:?}");
        let mut batch = WriteBatch::new();
        for chunk in 1..id {
            r.on_freed(&mut batch, chunk);
        }
        let (back, third) = store_and_read_back(&r, &zip, &mut id, &mut store);
        assert_eq!(back, zip.to_vec());
        assert_eq!(
            third
                .iter()
                .filter(|(e, _)| *e == ENCODING_STREAM_RAW)
                .count(),
            first
                .iter()
                .filter(|(e, _)| *e == ENCODING_STREAM_RAW)
                .count()
        );
    }

    /// The same zip cut into extents at other places (another object, other
    /// part sizes): the large member's chunks after each extent start are
    /// found again (its cuts depend on an extent's bytes, not on the extent
    /// before), so nearly all of it dedups.
    #[test]
    fn a_member_split_across_extents_elsewhere_still_dedups() {
        let text = deflate::tests::source_text(120_000, 3);
        let zip = Bytes::from(deflate::tests::zip(&[("lib.py", &text, true)]));
        let r = SimilarityReducer::new(ReductionConfig::default());
        let (mut id, mut store) = (1, HashMap::new());
        let new_bytes = |splits: &[usize], id: &mut u64, store: &mut HashMap<_, _>| {
            let mut bounds = vec![0];
            bounds.extend_from_slice(splits);
            bounds.push(zip.len());
            let mut stored = 0;
            for w in bounds.windows(2) {
                let ext = zip.slice(w[0]..w[1]);
                let (back, new) = store_and_read_back(&r, &ext, id, store);
                assert_eq!(back, ext.to_vec());
                stored += new.iter().map(|(_, n)| n).sum::<usize>();
            }
            stored
        };
        let first = new_bytes(&[zip.len() / 3, zip.len() * 2 / 3], &mut id, &mut store);
        assert!(first * 9 / 10 > zip.len() * 8 / 10, "{first}");
        let (parsed, known) = (&r.stats.deflate_parsed_bytes, &r.stats.deflate_known_bytes);
        let parsed_first = parsed.swap(0, Ordering::Relaxed) as usize;
        assert!(parsed_first > zip.len() * 8 / 10, "{parsed_first}");
        assert_eq!(known.swap(0, Ordering::Relaxed), 0);
        let again = new_bytes(
            &[zip.len() / 4, zip.len() / 2 + 12_345],
            &mut id,
            &mut store,
        );
        assert!(
            again * 5 < zip.len(),
            "{again} stored again of {}",
            zip.len()
        );
        // Past the first pieces after each extent boundary (these extents'
        // and the last time's), the pieces were known to follow them and
        // not parsed again.
        let (parsed, known) = (
            parsed.load(Ordering::Relaxed) as usize,
            known.load(Ordering::Relaxed) as usize,
        );
        assert!(
            parsed * 3 < zip.len() && known * 2 > zip.len(),
            "{parsed} parsed and {known} known of {}",
            zip.len()
        );
    }
}
