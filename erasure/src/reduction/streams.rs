//! Where the deflate streams of zip members lie in an extent, and how the
//! reducer cuts and walks them (the codec is [`super::deflate`]): large
//! members are cut where their tokens say ([`SpanCutter`]), an extent that
//! starts inside a member finds a block to go on from ([`resync`]), and
//! chunks of small members are walked for their streams' tokens
//! ([`StreamWalk`]). Every cut depends on the extent's bytes alone.

use super::chunker::zip_header_at;
use super::deflate::{
    parse_header, peek, Block, ChunkTokens, Featured, Gaps, Parser, Reader, Sink, Stop, TokenStart,
};

/// Offset of the first zip member's local header in `data` (deflated or
/// not; a plausible header as the chunker anchors its cuts at).
pub fn first_member(data: &[u8]) -> Option<usize> {
    first_member_at(data, &signatures(data))
}

/// [`first_member`] among the `signatures` of `data`.
fn first_member_at(data: &[u8], signatures: &[usize]) -> Option<usize> {
    signatures
        .iter()
        .copied()
        .find(|&at| zip_header_at(data, at))
}

/// Offsets of every zip local header signature in `data` (plausible
/// headers or not), ascending: one scan that the searches for members share.
pub fn signatures(data: &[u8]) -> Vec<usize> {
    memchr::memmem::find_iter(data, b"PK\x03\x04").collect()
}

fn members<'a>(
    data: &'a [u8],
    signatures: &'a [usize],
) -> impl Iterator<Item = (usize, Option<usize>)> + 'a {
    signatures.iter().filter_map(|&at| zip_member(data, at))
}

/// Bits where the deflate streams of the members in `data` start, ascending,
/// but for those of the members in `skip`.
fn stream_starts(data: &[u8], signatures: &[usize], skip: &[Span]) -> Vec<u64> {
    members(data, signatures)
        .filter(|(s, _)| !skip.iter().any(|sp| (sp.header..sp.end).contains(s)))
        .map(|(s, _)| s as u64 * 8)
        .collect()
}

/// Follows the deflate streams of the zip members in an extent through its
/// chunks, in order, parsing only as far as a chunk that wants its tokens
/// needs (chunks that dedup are never parsed unless a later chunk of the
/// same stream needs the parser to pass through them). A stream ends where
/// the next member's data starts at the latest.
pub struct StreamWalk<'a> {
    data: &'a [u8],
    /// Bits where streams start, ascending.
    starts: Vec<u64>,
    /// The first start not yet begun.
    next: usize,
    cur: Option<(Parser, u64)>,
}

impl<'a> StreamWalk<'a> {
    /// A walk over the streams of `data` (an extent) that start in it,
    /// but for the members in `skip` (cut by a [`SpanCutter`]).
    pub fn new(data: &'a [u8], skip: &[Span]) -> StreamWalk<'a> {
        StreamWalk::from_starts(data, stream_starts(data, &signatures(data), skip))
    }

    /// A walk over the streams of `data` that start at the bits `starts`
    /// (ascending; [`DeflateCuts::stream_starts`]).
    pub fn from_starts(data: &'a [u8], starts: Vec<u64>) -> StreamWalk<'a> {
        StreamWalk {
            data,
            starts,
            next: 0,
            cur: None,
        }
    }

    /// Whether a stream may cover part of the bytes `start..end`: one
    /// starts before `end` and at most `reach` bytes before `start`.
    pub fn near(&self, start: usize, end: usize, reach: usize) -> bool {
        let from = start.saturating_sub(reach) as u64 * 8;
        let i = self.starts.partition_point(|&s| s < from);
        self.starts.get(i).is_some_and(|&s| s < end as u64 * 8)
    }

    /// Bit of the next member start not yet begun.
    fn next_start(&mut self) -> Option<u64> {
        self.starts.get(self.next).copied()
    }

    /// Begins the next stream when it starts before `bit`.
    fn begin_before(&mut self, bit: u64) -> bool {
        match self.next_start() {
            Some(s) if s < bit => {
                self.next += 1;
                self.cur = Some((Parser::new(Block::Boundary), s));
                true
            }
            _ => false,
        }
    }

    /// Brings the parser to the first item boundary at or after bit `at` of
    /// the stream that covers it, if any.
    fn sync(&mut self, at: u64) {
        if self.next_start().is_some_and(|s| s < at) {
            // The stream in progress ends before `at` (another one starts
            // there), as does every one another starts after before `at`:
            // none of them needs parsing.
            self.cur = None;
            while self.starts.get(self.next + 1).is_some_and(|&s| s < at) {
                self.next += 1;
            }
        }
        loop {
            if self.cur.is_none() && !self.begin_before(at) {
                return;
            }
            let cut = self.next_start().unwrap_or(u64::MAX);
            let Some((parser, pos)) = &mut self.cur else {
                return;
            };
            if *pos >= at {
                return;
            }
            let (p, stop) = parser.parse(self.data, *pos, at.min(cut), None);
            *pos = p;
            if stop == Stop::Limit && at <= cut {
                if p >= at {
                    return;
                }
                // An item straddles `at`: its bits go with the chunk it starts in.
                match parser.skip_one(self.data, p) {
                    Some(end) if end <= cut => {
                        *pos = end;
                        return;
                    }
                    _ => {}
                }
            }
            self.cur = None;
        }
    }

    /// The tokens of the chunk of bytes `start..end` of the extent, when
    /// deflate streams cover at least half of it. Chunks must be asked for
    /// in order; ones not asked for are passed over.
    pub fn chunk(&mut self, start: usize, end: usize) -> Option<ChunkTokens> {
        let (cs, ce) = (start as u64 * 8, end as u64 * 8);
        self.sync(cs);
        let mut t = Featured::default();
        let mut first: Option<(u64, Block)> = None;
        let mut streams = Vec::new();
        let (mut last, mut covered) = (cs, 0u64);
        loop {
            if self.cur.is_none() && !self.begin_before(ce) {
                break;
            }
            let cut = self.next_start().unwrap_or(u64::MAX);
            let (parser, pos) = self.cur.as_mut()?;
            if *pos >= ce {
                break;
            }
            match &first {
                None => first = Some((*pos, parser.block().clone())),
                Some(_) if *pos < last => break,
                Some(_) => {
                    t.gap(self.data, last, *pos);
                    streams.push(*pos - cs);
                }
            }
            let (p, stop) = parser.parse_into(self.data, *pos, ce.min(cut), &mut t);
            covered += p - *pos;
            (*pos, last) = (p, p);
            if stop == Stop::Limit && ce <= cut {
                break;
            }
            self.cur = None;
        }
        let (first, block) = first?;
        (covered * 2 >= ce - cs).then(|| {
            t.finish(TokenStart {
                block,
                prefix_bits: first - cs,
                end_bits: last - cs,
                streams,
            })
        })
    }
}

/// A zip member large enough to be cut by its deflate tokens (see [`SpanCutter`]).
#[derive(Clone, Copy, Debug)]
pub struct Span {
    /// Offset of its local header in the extent.
    pub header: usize,
    /// Offset of its deflate data.
    pub data: usize,
    /// Offset just past its deflate data (may lie past the extent's end).
    pub end: usize,
}

/// The deflated members of at least `min` compressed bytes whose header
/// gives their size, ascending and not overlapping.
pub fn spans(data: &[u8], min: usize) -> Vec<Span> {
    spans_at(data, &signatures(data), min)
}

/// [`spans`] of the members whose headers are among `signatures`.
fn spans_at(data: &[u8], signatures: &[usize], min: usize) -> Vec<Span> {
    let mut out: Vec<Span> = Vec::new();
    for &at in signatures {
        if out.last().is_some_and(|s| at < s.end) {
            continue;
        }
        if let Some((start, Some(size))) = zip_member(data, at) {
            if size >= min {
                out.push(Span {
                    header: at,
                    data: start,
                    end: start + size,
                });
            }
        }
    }
    out
}

/// Most bits of a block [`resync`] decodes to find its end (zlib's blocks
/// hold 16 Ki symbols; a longer one is not taken).
const RESYNC_BLOCK_BITS: u64 = 256 << 13;

/// The second test of a dynamic block header at `bit`, whose fields
/// [`dynamic_header_candidates`] passed: code-length code lengths that make
/// a complete code (zlib's always do), before its tables are built.
fn complete_code_length_code(data: &[u8], bit: u64) -> bool {
    // 17 bits of fields and the first 13 lengths (56 bits) in one read.
    let v = peek56(data, bit);
    let hclen = ((v >> 13) & 15) as u32 + 4;
    let mut kraft = 0u32;
    let mut lens = v >> 17;
    for i in 0..hclen {
        if i == 13 {
            lens = peek56(data, bit + 17 + 39);
        }
        let l = (lens & 7) as u32;
        lens >>= 3;
        if l > 0 {
            kraft += 1 << (7 - l);
            // Over-subscribed already: no complete code can follow.
            if kraft > 1 << 7 {
                return false;
            }
        }
    }
    kraft == 1 << 7
}

/// The 56 bits of `data` from bit `bit` (LSB first), zeros past the end.
#[inline(always)]
fn peek56(data: &[u8], bit: u64) -> u64 {
    let byte = (bit >> 3) as usize;
    let w = match data.get(byte..byte + 8) {
        Some(w) => u64::from_le_bytes(w.try_into().expect("8 bytes")),
        None => peek(data, bit & !7, 32) as u64 | (peek(data, (bit & !7) + 32, 32) as u64) << 32,
    };
    (w >> (bit & 7)) & ((1 << 56) - 1)
}

/// Stops after the block that a parse starts in, at the next header.
struct UntilNextHeader;

impl Sink for UntilNextHeader {
    fn header(&mut self, _: &[u8], _: u64, _: u64, _: &Block) -> bool {
        true
    }
}

/// Where a parse can begin in deflate data entered at an unknown point (an
/// extent that starts inside a member: extents of one object are migrated
/// in no particular order, so the parser state at the end of the last one
/// is not at hand): the first bit from `from`, within `window` bits, where
/// a dynamic Huffman block header with complete codes begins whose block
/// decodes to its end and is followed by another valid header, or ends the
/// stream right before a zip record. A false find only costs tokens that
/// do not delta; what is stored is checked either way.
pub fn resync(data: &[u8], from: u64, window: u64) -> Option<u64> {
    let end = data.len() as u64 * 8;
    let mut r = Reader {
        data,
        overrun: false,
    };
    let stop = from.saturating_add(window).min(end);
    let mut base = from;
    while base < stop {
        let n = (stop - base).min(CANDIDATES_PER_READ);
        let mut candidates = dynamic_header_candidates(data, base) & ((1 << n) - 1);
        base += n;
        while candidates != 0 {
            let bit = base - n + candidates.trailing_zeros() as u64;
            candidates &= candidates - 1;
            if let Some(found) = resync_at(data, &mut r, bit, end) {
                return Some(found);
            }
        }
    }
    None
}

/// Bit positions [`dynamic_header_candidates`] tests in one read (a header's
/// first 13 bits each, within the 56 bits read).
const CANDIDATES_PER_READ: u64 = 56 - 13 + 1;

/// Of the [`CANDIDATES_PER_READ`] bit positions from `base`, those (bit `i`
/// for `base + i`) where a dynamic block header could start by its first 13
/// bits: BTYPE 2 and HLIT, HDIST at most 29 (all tested at once, before
/// [`complete_code_length_code`] tests each).
fn dynamic_header_candidates(data: &[u8], base: u64) -> u64 {
    let w = peek56(data, base);
    let btype2 = !(w >> 1) & (w >> 2);
    let hlit_over = (w >> 4) & (w >> 5) & (w >> 6) & (w >> 7);
    let hdist_over = (w >> 9) & (w >> 10) & (w >> 11) & (w >> 12);
    btype2 & !hlit_over & !hdist_over
}

/// Whether a block to go on from starts at `bit` (see [`resync`]).
fn resync_at(data: &[u8], r: &mut Reader, bit: u64, end: u64) -> Option<u64> {
    if !complete_code_length_code(data, bit) {
        return None;
    }
    let Ok((Block::Huffman(h), after)) = parse_header(r, bit) else {
        return None;
    };
    if !h.complete() {
        return None;
    }
    let mut parser = Parser::new(Block::Huffman(h));
    let limit = end.min(after + RESYNC_BLOCK_BITS);
    let (p, stop) = parser.parse_into(data, after, limit, &mut UntilNextHeader);
    let next = (p.div_ceil(8) as usize).min(data.len());
    let found = match stop {
        // The next block's header parsed too (complete codes if Huffman).
        Stop::Cut => match parser.block() {
            Block::Huffman(h) => h.complete(),
            _ => true,
        },
        // A final block: the member ends there, before the next record
        // of the zip (any block ends at some end-of-block code).
        Stop::End => data[next..].starts_with(b"PK"),
        _ => false,
    };
    found.then_some(bit)
}

/// A stretch of an extent cut by deflate tokens: its pieces follow one
/// another from `start`.
pub struct Run<K> {
    /// Offset in the extent.
    pub start: usize,
    /// The pieces, in order.
    pub pieces: Vec<Piece>,
    /// For a member whole in the extent that was cut afresh, the key its
    /// cuts may be remembered under (see [`cut_deflate`]).
    pub fresh: Option<K>,
}

/// What of an extent [`cut_deflate`] cut by tokens.
pub struct DeflateCuts<K> {
    /// The runs, in order and apart; the bytes between them are left to the
    /// byte chunker.
    pub runs: Vec<Run<K>>,
    /// The stretches the runs cover (for [`StreamWalk::new`] to skip).
    pub spans: Vec<Span>,
    /// How many large members the extent holds.
    pub members: usize,
    /// Bits where the other members' streams start (for
    /// [`StreamWalk::from_starts`]).
    pub stream_starts: Vec<u64>,
}

/// What a cutter knows of what it cut before, so that deflate data seen
/// again is not parsed again (cuts taken from it are only cuts: whatever
/// they say, the pieces cover the bytes, and what is stored is checked by
/// its fingerprint).
pub trait CutMemo {
    /// What a member's fresh cuts may be remembered under.
    type Key;
    /// The cuts of the member `bytes` (whole in the extent) from an earlier
    /// time, or the key to remember its fresh cuts under.
    fn member(&mut self, bytes: &[u8]) -> Result<Vec<usize>, Self::Key>;
    /// After a piece `piece` was cut from its tokens: the lengths of the
    /// pieces that followed an identical piece before, for as long as
    /// `rest` (the stream's bytes after it) starts with them again.
    fn following(&mut self, piece: &[u8], rest: &[u8]) -> Vec<usize>;
}

/// A memo that knows nothing: every member and piece is cut afresh.
pub struct Forgetful;

impl CutMemo for Forgetful {
    type Key = ();

    fn member(&mut self, _: &[u8]) -> Result<Vec<usize>, ()> {
        Err(())
    }

    fn following(&mut self, _: &[u8], _: &[u8]) -> Vec<usize> {
        Vec::new()
    }
}

/// Cuts what of `extent` is deflate data by its tokens: the stretch it
/// starts in ([`cut_stretch`], searched where a member header follows or
/// `search_headerless` says so) and every member of at least `min_member`
/// compressed bytes ([`SpanCutter`]), asking `memo` about each member that
/// lies whole in the extent (its cuts from an earlier time: the pieces then
/// carry no tokens) and after each piece cut (the known pieces after it are
/// taken as they are, and the cutter goes on at the next block).
pub fn cut_deflate<M: CutMemo>(
    extent: &[u8],
    sizes: CutSizes,
    window: usize,
    min_member: usize,
    search_headerless: bool,
    memo: &mut M,
) -> DeflateCuts<M::Key> {
    let sigs = signatures(extent);
    let found = spans_at(extent, &sigs, min_member);
    let mut out = DeflateCuts {
        runs: Vec::new(),
        spans: Vec::new(),
        members: found.len(),
        stream_starts: Vec::new(),
    };
    // Deflate data before the first member header: the rest of a member
    // that began in an earlier extent.
    let head = first_member_at(extent, &sigs).unwrap_or(extent.len());
    let mut at = 0;
    if head < extent.len() || search_headerless {
        if let Some(pieces) = cut_stretch(extent, head, window, sizes, memo) {
            at = pieces.iter().map(|p| p.len).sum();
            out.spans.push(Span {
                header: 0,
                data: 0,
                end: at,
            });
            out.runs.push(Run {
                start: 0,
                pieces,
                fresh: None,
            });
        }
    }
    for span in found {
        if span.header < at {
            continue;
        }
        out.spans.push(span);
        let whole = span.end <= extent.len();
        let (pieces, fresh) = match whole.then(|| memo.member(&extent[span.header..span.end])) {
            Some(Ok(lens)) => {
                let pieces = lens
                    .into_iter()
                    .map(|len| Piece { len, tokens: None })
                    .collect();
                (pieces, None)
            }
            remember => (
                SpanCutter::new(&span, window).cut(extent, span.header, sizes, memo),
                remember.and_then(Result::err),
            ),
        };
        at = span.header + pieces.iter().map(|p| p.len).sum::<usize>();
        out.runs.push(Run {
            start: span.header,
            pieces,
            fresh,
        });
    }
    out.stream_starts = stream_starts(extent, &sigs, &out.spans);
    out
}

/// Cuts the deflate data `data` (an extent) starts in, up to `head` (its
/// first member header), by tokens from the block [`resync`] finds within
/// `window` bytes, the bits before it going verbatim with the first piece;
/// `None` where the stretch is shorter than an average piece, does not
/// look compressed, or holds no block to go on from.
pub fn cut_stretch(
    data: &[u8],
    head: usize,
    window: usize,
    sizes: CutSizes,
    memo: &mut impl CutMemo,
) -> Option<Vec<Piece>> {
    if head < sizes.avg || !looks_compressed(data) {
        return None;
    }
    let bit = resync(data, 0, window as u64 * 8)?;
    Some(SpanCutter::at(bit, head as u64 * 8, window).cut(data, 0, sizes, memo))
}

/// Whether `data` looks like compressed bytes (a byte entropy of 7.9 bits
/// or more over its first 8 KiB): only then is [`resync`] worth trying.
pub fn looks_compressed(data: &[u8]) -> bool {
    let sample = &data[..data.len().min(8 << 10)];
    if sample.len() < 4096 {
        return false;
    }
    super::features::byte_entropy(sample.iter().copied()) >= 7.9
}

/// Sizes of the pieces a [`SpanCutter`] cuts, in bytes of the stream.
#[derive(Clone, Copy, Debug)]
pub struct CutSizes {
    /// Smallest piece (but the last of a member).
    pub min: usize,
    /// Average piece.
    pub avg: usize,
    /// Largest piece.
    pub max: usize,
}

/// One piece of a large member: its length and, when deflate items cover
/// at least half of it, its tokens.
pub struct Piece {
    /// Bytes of the extent.
    pub len: usize,
    /// The piece's tokens.
    pub tokens: Option<ChunkTokens>,
}

/// A sink that keeps tokens and features ([`Featured`]) and cuts where the
/// Gear hash of the piece's items meets a mask, once the piece has its
/// minimum size (the parse's limit keeps it within the maximum).
struct Cutting {
    featured: Featured,
    from: u64,
    min: u64,
    mask: u64,
}

impl Cutting {
    #[inline(always)]
    fn cut(&self, end: u64) -> bool {
        self.featured.hash() & self.mask == 0 && end - self.from >= self.min
    }
}

impl Sink for Cutting {
    #[inline(always)]
    fn literal(&mut self, b: u8, end: u64) -> bool {
        self.featured.literal(b, end);
        self.cut(end)
    }

    #[inline(always)]
    fn matched(&mut self, len: u16, dist: u16, end: u64) -> bool {
        self.featured.matched(len, dist, end);
        self.cut(end)
    }

    fn end_of_block(&mut self) -> bool {
        self.featured.end_of_block()
    }

    fn header(&mut self, data: &[u8], from: u64, to: u64, block: &Block) -> bool {
        self.featured.header(data, from, to, block)
    }
}

/// Cuts a large zip member where its tokens say (content-defined on the
/// LZ77 content, not on the deflated bits): two builds of a library whose
/// deflated bytes differ everywhere after the first change then cut their
/// unchanged stretches alike, so that each piece finds an earlier piece
/// with the same content to delta against, and identical members still cut
/// identically (dedup). Parses the member once; each piece comes with its
/// tokens.
pub struct SpanCutter {
    parser: Parser,
    /// Next item's first bit, in the extent.
    pos: u64,
    /// Bit where the member's data ends, in the extent.
    end: u64,
    /// Whether the stream has ended or turned out not to be deflate.
    done: bool,
    /// Bytes searched for the next block after known pieces (see [`resync`]).
    window: usize,
}

impl SpanCutter {
    /// A cutter for `span`'s data, searching `window` bytes for a block to
    /// go on from after known pieces.
    pub fn new(span: &Span, window: usize) -> SpanCutter {
        SpanCutter::at(span.data as u64 * 8, span.end as u64 * 8, window)
    }

    /// A cutter for deflate data whose block starts at bit `pos` and which
    /// ends by bit `end` (see [`resync`]).
    pub fn at(pos: u64, end: u64, window: usize) -> SpanCutter {
        SpanCutter {
            parser: Parser::new(Block::Boundary),
            pos,
            end,
            done: false,
            window,
        }
    }

    /// Cuts `data[start..]` up to the member's end or the extent's, whichever
    /// is first; after each piece it parses, the pieces `memo` knows to
    /// follow it are taken as they are and the parse goes on from the
    /// next block after them.
    pub fn cut(
        mut self,
        data: &[u8],
        mut start: usize,
        sizes: CutSizes,
        memo: &mut impl CutMemo,
    ) -> Vec<Piece> {
        let stop_byte = (self.end.div_ceil(8) as usize).min(data.len());
        let limit = self.end.min(stop_byte as u64 * 8);
        let bits = (sizes.avg.saturating_sub(sizes.min)).max(2).ilog2();
        let mut out = Vec::new();
        while start < stop_byte {
            let cs = start as u64 * 8;
            while !self.done && self.pos < cs {
                // Items after the last cut in its last byte, and the one that
                // straddles the boundary, go to neither piece's tokens.
                match self.parser.skip_one(data, self.pos) {
                    Some(e) if e <= limit => self.pos = e,
                    _ => self.done = true,
                }
            }
            if self.done || self.pos >= limit {
                // What is left: plain pieces.
                let len = (stop_byte - start).min(sizes.max);
                out.push(Piece { len, tokens: None });
                start += len;
                continue;
            }
            let first = self.pos;
            let block = self.parser.block().clone();
            let mut sink = Cutting {
                featured: Featured::default(),
                from: cs,
                min: sizes.min as u64 * 8,
                mask: !0u64 << (64 - bits),
            };
            // No piece grows past the maximum, whatever its last item.
            let cap = start + sizes.max;
            let piece_limit = limit.min(cap as u64 * 8);
            let (p, stop) = self.parser.parse_into(data, first, piece_limit, &mut sink);
            self.pos = p;
            let end = match stop {
                Stop::Cut => (p.div_ceil(8) as usize).min(stop_byte),
                Stop::Limit => cap.min(stop_byte),
                Stop::End | Stop::Invalid => {
                    self.done = true;
                    (p.div_ceil(8) as usize).clamp(start + 1, cap.min(stop_byte))
                }
            };
            let len_bits = (end - start) as u64 * 8;
            let tokens = ((p - first) * 2 >= len_bits).then(|| {
                sink.featured.finish(TokenStart {
                    block,
                    prefix_bits: first - cs,
                    end_bits: p - cs,
                    streams: Vec::new(),
                })
            });
            out.push(Piece {
                len: end - start,
                tokens,
            });
            let known = memo.following(&data[start..end], &data[end..stop_byte]);
            start = end;
            if known.is_empty() {
                continue;
            }
            for len in known {
                out.push(Piece { len, tokens: None });
                start += len;
            }
            // Past the known pieces: the parser state there is not at hand,
            // the next block is.
            self.parser = Parser::new(Block::Boundary);
            let from = start as u64 * 8;
            match (from < limit).then(|| resync(data, from, self.window as u64 * 8)) {
                Some(Some(bit)) if bit < limit => self.pos = bit,
                _ => self.done = true,
            }
        }
        out
    }
}

/// Where the deflate data of a zip member whose local header starts at
/// `at` begins (method 8, not encrypted), if the header is whole in `data`,
/// and the compressed size the header gives (`None` when the size follows
/// the data in a descriptor).
fn zip_member(data: &[u8], at: usize) -> Option<(usize, Option<usize>)> {
    let h = data.get(at..at.checked_add(30)?)?;
    if &h[..4] != b"PK\x03\x04" {
        return None;
    }
    let flags = u16::from_le_bytes([h[6], h[7]]);
    let method = u16::from_le_bytes([h[8], h[9]]);
    if method != 8 || flags & 1 != 0 {
        return None;
    }
    let name = u16::from_le_bytes([h[26], h[27]]) as usize;
    let extra = u16::from_le_bytes([h[28], h[29]]) as usize;
    let start = at + 30 + name + extra;
    let size = u32::from_le_bytes([h[18], h[19], h[20], h[21]]) as usize;
    let size = (flags & 8 == 0).then_some(size);
    (start < data.len()).then_some((start, size))
}

#[cfg(test)]
mod tests {
    use super::super::deflate::tests::{source_text, zip};
    use super::super::deflate::{chunk_tokens, chunk_tokens_and_features};
    use super::*;
    use proptest::prelude::*;

    /// The members of the walk tests: text deflated, a stored member, a
    /// tiny one, a large one of random bytes.
    fn test_zip(seed: u64) -> Vec<u8> {
        let random: Vec<u8> = crate::reduction::chunker::tests::xorshift(seed)
            .take(30_000)
            .map(|x| (x % 7) as u8)
            .collect();
        let text = source_text(6000, seed);
        zip(&[
            ("a.py", &text[..text.len() / 3], true),
            ("b.txt", b"stored member", false),
            ("c", b"x", true),
            ("d.so", &random, true),
            ("e.py", &text, true),
        ])
    }

    /// Checks one walk chunk: its tokens rebuild its bytes, and the chunk
    /// alone parses to the same tokens (what a delta against it decodes with).
    fn check_chunk(chunk: &[u8], ct: &ChunkTokens) {
        let tail = &chunk[(ct.start.end_bits / 8) as usize..];
        let rebuilt = crate::reduction::encode::rebuild(
            chunk.len(),
            &ct.start.block,
            (chunk, ct.start.prefix_bits),
            &ct.tokens,
            (tail, ct.start.end_bits),
        );
        assert_eq!(rebuilt.as_deref(), Some(chunk));
        assert_eq!(chunk_tokens(chunk, &ct.start), ct.tokens);
        let alone = chunk_tokens_and_features(chunk, &ct.start);
        assert_eq!((alone.tokens, alone.sfs), (ct.tokens.clone(), ct.sfs));
    }

    /// Does what the reducer does with an extent's deflate data (large
    /// members and a member the extent starts in by the cutter, the rest
    /// walked in `chunk`-byte pieces, `asked` saying which) and checks every
    /// piece with tokens; returns the bytes that came with tokens.
    pub(crate) fn check_extent(ext: &[u8], sizes: CutSizes, chunk: usize, asked: &[bool]) -> usize {
        let mut with = 0;
        let head = first_member(ext).unwrap_or(ext.len());
        let cuts = cut_deflate(ext, sizes, 1 << 17, 4 * sizes.avg, true, &mut Forgetful);
        for (run, span) in cuts.runs.iter().zip(&cuts.spans) {
            let mut off = run.start;
            for p in &run.pieces {
                assert!(p.len > 0 && p.len <= sizes.max, "piece of {} bytes", p.len);
                if let Some(ct) = &p.tokens {
                    check_chunk(&ext[off..off + p.len], ct);
                    with += p.len;
                }
                off += p.len;
            }
            // The stretch an extent starts in ends at its first member
            // header; a member's pieces cover it.
            let end = if span.data == 0 {
                head
            } else {
                span.end.min(ext.len())
            };
            assert_eq!(off, end, "pieces do not cover their stretch");
        }
        let mut walk = StreamWalk::new(ext, &cuts.spans);
        let mut off = 0;
        for i in 0.. {
            if off >= ext.len() {
                break;
            }
            let end = (off + chunk).min(ext.len());
            if asked[i % asked.len()] {
                if let Some(ct) = walk.chunk(off, end) {
                    check_chunk(&ext[off..end], &ct);
                    with += end - off;
                }
            }
            off = end;
        }
        with
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]
        #[test]
        fn header_candidates_are_the_positions_with_plausible_fields(
            data in proptest::collection::vec(any::<u8>(), 1..40),
            base in 0u64..320,
        ) {
            let found = dynamic_header_candidates(&data, base);
            for i in 0..CANDIDATES_PER_READ {
                // BTYPE 2, HLIT and HDIST at most 29, read one by one.
                let v = peek(&data, base + i, 13);
                let one = (v >> 1) & 3 == 2 && (v >> 3) & 31 <= 29 && (v >> 8) & 31 <= 29;
                prop_assert_eq!((found >> i) & 1 == 1, one, "bit {}", base + i);
            }
        }

        #[test]
        fn chunks_with_tokens_rebuild_and_parse_alone_alike(
            seed in 1u64..1000,
            chunk in 64usize..20_000,
            asked in proptest::collection::vec(any::<bool>(), 1..8),
            split in 0.0f64..1.0,
        ) {
            let data = test_zip(seed);
            let at = (data.len() as f64 * split) as usize;
            let sizes = CutSizes { min: 2048, avg: 8192, max: 32768 };
            for ext in [&data[..at], &data[at..]] {
                check_extent(ext, sizes, chunk, &asked);
            }
        }
    }

    /// An extent that starts inside a member (the rest of it begun in an
    /// earlier extent) is found again at its next block and cut by tokens
    /// from there; random bytes are not taken for deflate.
    #[test]
    fn an_extent_entered_inside_a_member_resyncs_at_a_block() {
        let text = source_text(60_000, 4);
        let stream = miniz_oxide::deflate::compress_to_vec(&text, 6);
        let sizes = CutSizes {
            min: 2048,
            avg: 8192,
            max: 32768,
        };
        for skip in [1, 1000, 77_777] {
            let ext = &stream[skip..];
            let bit = resync(ext, 0, 1 << 20).expect("a block to go on from");
            assert!(bit < 200_000 * 8, "{bit}");
            let with = check_extent(ext, sizes, 4096, &[true]);
            assert!(with * 10 >= ext.len() * 8, "{with} of {}", ext.len());
        }
        let random: Vec<u8> = crate::reduction::chunker::tests::xorshift(11)
            .take(64 << 10)
            .flat_map(|x| x.to_le_bytes())
            .collect();
        assert!(looks_compressed(&random));
        assert_eq!(resync(&random, 0, 1 << 20), None);
    }

    #[test]
    fn a_walk_finds_the_tokens_of_every_deflated_member() {
        let data = test_zip(9);
        let mut walk = StreamWalk::new(&data, &[]);
        let (mut with, mut off) = (0, 0);
        while off < data.len() {
            let end = (off + 4096).min(data.len());
            if let Some(ct) = walk.chunk(off, end) {
                check_chunk(&data[off..end], &ct);
                with += end - off;
            }
            off = end;
        }
        // Everything but the headers, the stored member and the directory.
        assert!(with * 10 >= data.len() * 9, "{with} of {}", data.len());
    }
}
