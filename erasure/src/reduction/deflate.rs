//! Deflate streams (RFC 1951) as token sequences and back, bit for bit.
//!
//! Compressed members of zip files (wheels, jars, `.npz`) hide their
//! content from dedup and delta: two builds of one shared library differ in
//! a few places, but their deflated bytes differ everywhere after the first
//! change (other Huffman tables, other bit alignment). The LZ77 tokens under
//! the entropy coding (literals, (length, distance) matches) stay the same
//! wherever the content does, so a chunk of a deflate stream is stored as
//! its tokens, delta-compressed against the tokens of a similar chunk.
//!
//! Nothing is re-compressed: [`Parser`] reads the tokens and block headers
//! out of the bits, and [`encode`] writes them back with the block's own
//! Huffman codes (block headers are kept verbatim), which is exact for any
//! valid stream, whichever compressor made it; the caller checks the
//! round trip before it stores a chunk this way.
//!
//! Token serialization (a sequence of records, see FORMAT.md): each record is
//! `varint literal count, the literals, u8 code, u16 LE distance`; distance
//! ≥ 1 is a match of length `code + 3`, distance 0 a control: `code` 0 ends
//! the block, 1 is a block header (`varint bit count`, the bits packed LSB
//! first), 2 ends the tokens.

use std::sync::Arc;

use super::features::{ItemHash, SUPER_FEATURES};

/// A stream that is not valid deflate (or tokens that do not describe one).
#[derive(Debug, PartialEq, Eq)]
pub struct Invalid;

type Res<T> = std::result::Result<T, Invalid>;

const LEN_BASE: [u16; 29] = [
    3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59, 67, 83, 99, 115, 131,
    163, 195, 227, 258,
];
const LEN_EXTRA: [u8; 29] = [
    0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0,
];
const DIST_BASE: [u16; 30] = [
    1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193, 257, 385, 513, 769, 1025, 1537,
    2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577,
];
const DIST_EXTRA: [u8; 30] = [
    0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13,
    13,
];
/// Order of the code-length code lengths in a dynamic block header.
const CL_ORDER: [usize; 19] = [
    16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15,
];

/// Control codes of the token serialization (records with distance 0).
const CTL_END_OF_BLOCK: u8 = 0;
const CTL_HEADER: u8 = 1;
const CTL_STOP: u8 = 2;
const CTL_GAP: u8 = 3;

/// Reads `n` ≤ 32 bits at bit `pos` of `data` (LSB first), zeros past the end.
pub(super) fn peek(data: &[u8], pos: u64, n: u32) -> u32 {
    let byte = (pos >> 3) as usize;
    let mut v = 0u64;
    if byte + 8 <= data.len() {
        v = u64::from_le_bytes(data[byte..byte + 8].try_into().expect("8 bytes"));
    } else {
        for (i, b) in data.get(byte..).unwrap_or(&[]).iter().enumerate() {
            v |= (*b as u64) << (8 * i);
        }
    }
    ((v >> (pos & 7)) & ((1u64 << n) - 1)) as u32
}

fn reverse(code: u32, len: u32) -> u32 {
    code.reverse_bits() >> (32 - len)
}

/// Code lengths a [`Huffman`] lookup table resolves at once; longer codes
/// (rare symbols) are decoded bit by bit. The tables then stay in L1.
const FAST_BITS: u32 = 10;
/// Entries of every [`Huffman`] decoding table.
const TABLE: usize = 1 << FAST_BITS;

/// A canonical Huffman code: a lookup table for decoding, codes for encoding.
struct Huffman {
    /// [`Entry`] of the codes of at most `bits` bits, indexed by the next
    /// `bits` bits; 0 for longer codes and unused ones. Always
    /// [`TABLE`] long (the entries past `1 << bits` unused), so that a
    /// lookup needs no bounds check.
    table: Box<[u32; TABLE]>,
    bits: u32,
    /// Per symbol: the base value and extra bits its entries carry.
    extra: &'static [(u16, u8)],
    /// Codes per length and the symbols in canonical order (for long codes).
    count: [u16; 16],
    symbols: Vec<u16>,
    /// The canonical decoder's first code and symbol index of the codes
    /// longer than `bits` (where [`Huffman::lookup_long`] starts).
    long_first: i32,
    long_index: i32,
    /// Per symbol: (code, bit-reversed for LSB-first writing; length, 0 = none).
    codes: Vec<(u16, u8)>,
    /// Whether the code leaves no bit pattern undecodable (zlib's always do).
    complete: bool,
}

/// A decoding table entry, packed so that one load gives all a symbol's
/// decoding needs (the parse waits on these loads): bits 0-3 the code's
/// length, 4-7 how many extra bits follow it, 8-16 the symbol, 17-31 the
/// base its extra bits are added to (match lengths and distances).
type Entry = u32;

/// The entry of `sym` with a code of `len` bits.
#[inline(always)]
fn entry(extra: &[(u16, u8)], sym: usize, len: u32) -> Entry {
    let (base, x) = extra.get(sym).copied().unwrap_or((0, 0));
    (base as u32) << 17 | (sym as u32) << 8 | (x as u32) << 4 | len
}

/// Base and extra bits of the literal/length symbols (literals and the
/// end of block have none; 286 and 287 are invalid).
static LIT_BASE_EXTRA: [(u16, u8); 288] = {
    let mut t = [(0u16, 0u8); 288];
    let mut i = 0;
    while i < 29 {
        t[257 + i] = (LEN_BASE[i], LEN_EXTRA[i]);
        i += 1;
    }
    t
};

/// Base and extra bits of the distance symbols (30 and 31 are invalid).
static DIST_BASE_EXTRA: [(u16, u8); 30] = {
    let mut t = [(0u16, 0u8); 30];
    let mut i = 0;
    while i < 30 {
        t[i] = (DIST_BASE[i], DIST_EXTRA[i]);
        i += 1;
    }
    t
};

impl Huffman {
    /// The code of symbols with code lengths `lengths`, whose entries carry
    /// the bases and extra bits of `extra` (empty: none).
    fn new(lengths: &[u8], extra: &'static [(u16, u8)]) -> Res<Huffman> {
        let mut count = [0u16; 16];
        for &l in lengths {
            count[l as usize] += 1;
        }
        count[0] = 0;
        let mut left = 1i32;
        for c in &count[1..] {
            left = left * 2 - *c as i32;
            if left < 0 {
                return Err(Invalid);
            }
        }
        let max = (1..16).rev().find(|&l| count[l] > 0).unwrap_or(1) as u32;
        let bits = max.min(FAST_BITS);
        let mut next = [0u32; 16];
        let mut code = 0u32;
        for l in 1..16 {
            code = (code + count[l - 1] as u32) << 1;
            next[l] = code;
        }
        let mut table = Box::new([0u32; TABLE]);
        let mut codes = vec![(0u16, 0u8); lengths.len()];
        // Symbols in canonical order (by length, then value), for long codes.
        let mut offset = [0usize; 16];
        for l in 1..15 {
            offset[l + 1] = offset[l] + count[l] as usize;
        }
        let mut symbols = vec![0u16; offset[15] + count[15] as usize];
        for (sym, &l) in lengths.iter().enumerate() {
            if l > 0 {
                symbols[offset[l as usize]] = sym as u16;
                offset[l as usize] += 1;
            }
        }
        for (sym, &l) in lengths.iter().enumerate() {
            if l > 0 {
                codes[sym] = (reverse(next[l as usize], l as u32) as u16, l);
                next[l as usize] += 1;
            }
        }
        // Length by length, the table so far doubled: an entry for a code
        // of `l` bits (bit-reversed) repeats every 2^l entries, and a
        // longer code's slot is free in the copy (the code is prefix-free).
        let mut done = 0;
        for l in 1..=bits as usize {
            table.copy_within(..1 << (l - 1), 1 << (l - 1));
            for &sym in &symbols[done..done + count[l] as usize] {
                let rev = codes[sym as usize].0 as usize;
                table[rev] = entry(extra, sym as usize, l as u32);
            }
            done += count[l] as usize;
        }
        let (mut long_first, mut long_index) = (0i32, 0i32);
        for &c in &count[1..=bits as usize] {
            long_index += c as i32;
            long_first = (long_first + c as i32) << 1;
        }
        Ok(Huffman {
            table,
            bits,
            extra,
            count,
            symbols,
            long_first,
            long_index,
            codes,
            complete: left == 0,
        })
    }

    /// The symbol and code length at the start of `v` (the next bits, LSB first).
    #[inline(always)]
    fn lookup(&self, v: u64) -> Option<(usize, u32)> {
        let e = self.lookup_entry(v)?;
        Some((((e >> 8) & 0x1ff) as usize, e & 15))
    }

    /// The [`Entry`] of the code at the start of `v`.
    #[inline(always)]
    fn lookup_entry(&self, v: u64) -> Option<Entry> {
        let e = self.table[(v & ((1 << self.bits) - 1) & (TABLE as u64 - 1)) as usize];
        if e != 0 {
            return Some(e);
        }
        let (sym, len) = self.lookup_long(v)?;
        Some(entry(self.extra, sym, len))
    }

    /// Canonical decoding one bit at a time, for codes the table does not
    /// hold (longer than `bits`: it starts after the table's bits).
    #[cold]
    fn lookup_long(&self, v: u64) -> Option<(usize, u32)> {
        let mut code = (reverse(v as u32 & ((1 << self.bits) - 1), self.bits) << 1) as i32;
        let (mut first, mut index) = (self.long_first, self.long_index);
        for len in self.bits + 1..16 {
            code |= ((v >> (len - 1)) & 1) as i32;
            let count = self.count[len as usize] as i32;
            if code - count < first {
                let sym = *self.symbols.get((index + code - first) as usize)?;
                return Some((sym as usize, len));
            }
            index += count;
            first = (first + count) << 1;
            code <<= 1;
        }
        None
    }

    /// Decodes one symbol at `*pos`, advancing it.
    fn decode(&self, r: &mut Reader, pos: &mut u64) -> Res<usize> {
        let v = r.peek(*pos, 15) as u64;
        let (sym, len) = self.lookup(v).ok_or(Invalid)?;
        *pos += len as u64;
        Ok(sym)
    }

    /// Writes the code of `sym` (tests write streams by hand with it).
    #[cfg(test)]
    fn put(&self, w: &mut BitWriter, sym: usize) -> Res<()> {
        match self.codes.get(sym) {
            Some(&(code, len)) if len > 0 => {
                w.put(code as u32, len as u32);
                Ok(())
            }
            _ => Err(Invalid),
        }
    }
}

/// The literal/length and distance codes of one Huffman block.
struct Tables {
    lit: Huffman,
    dist: Huffman,
}

impl Tables {
    fn fixed() -> Res<Tables> {
        let mut lit = [8u8; 288];
        lit[144..256].fill(9);
        lit[256..280].fill(7);
        Ok(Tables {
            lit: Huffman::new(&lit, &LIT_BASE_EXTRA)?,
            dist: Huffman::new(&[5u8; 30], &DIST_BASE_EXTRA)?,
        })
    }
}

/// A bit reader that notes whether it looked past the end of its data.
pub(super) struct Reader<'a> {
    pub(super) data: &'a [u8],
    pub(super) overrun: bool,
}

impl Reader<'_> {
    fn peek(&mut self, pos: u64, n: u32) -> u32 {
        if pos + n as u64 > self.data.len() as u64 * 8 {
            self.overrun = true;
        }
        peek(self.data, pos, n)
    }

    fn take(&mut self, pos: &mut u64, n: u32) -> u32 {
        let v = self.peek(*pos, n);
        *pos += n as u64;
        v
    }
}

/// Where in a stream a parser or encoder stands.
#[derive(Clone)]
pub enum Block {
    /// Between blocks: a block header comes next.
    Boundary,
    /// Inside a fixed or dynamic Huffman block with this header.
    Huffman(Arc<Header>),
    /// Inside a stored block.
    Stored {
        /// Bytes of the block still to come.
        left: u32,
        /// Whether it is the final block.
        last: bool,
    },
    /// Past the end of the final block.
    Done,
}

/// A Huffman block's header: its bits as they stand in the stream, and the
/// codes they define.
pub struct Header {
    bits: Vec<u8>,
    nbits: u32,
    tables: Tables,
}

impl Header {
    /// Whether both codes leave no bit pattern undecodable (zlib's always do).
    pub(super) fn complete(&self) -> bool {
        self.tables.lit.complete && self.tables.dist.complete
    }

    fn last(&self) -> bool {
        self.bits.first().is_some_and(|b| b & 1 == 1)
    }
}

/// Parses the header bits of a block at `pos` (BFINAL, BTYPE and what
/// follows); returns the block it opens and the position after the header.
pub(super) fn parse_header(r: &mut Reader, start: u64) -> Res<(Block, u64)> {
    let mut pos = start;
    let last = r.take(&mut pos, 1) == 1;
    let tables = match r.take(&mut pos, 2) {
        0 => {
            pos = (pos + 7) & !7;
            let len = r.take(&mut pos, 16);
            let nlen = r.take(&mut pos, 16);
            if len != !nlen & 0xffff {
                return Err(Invalid);
            }
            return Ok((Block::Stored { left: len, last }, pos));
        }
        1 => Tables::fixed()?,
        2 => dynamic_tables(r, &mut pos)?,
        _ => return Err(Invalid),
    };
    let nbits = (pos - start) as u32;
    let mut w = BitWriter::default();
    w.copy_bits(r.data, start, nbits as u64);
    Ok((
        Block::Huffman(Arc::new(Header {
            bits: w.finish(),
            nbits,
            tables,
        })),
        pos,
    ))
}

fn dynamic_tables(r: &mut Reader, pos: &mut u64) -> Res<Tables> {
    let hlit = r.take(pos, 5) as usize + 257;
    let hdist = r.take(pos, 5) as usize + 1;
    let hclen = r.take(pos, 4) as usize + 4;
    if hlit > 286 || hdist > 30 {
        return Err(Invalid);
    }
    let mut cl = [0u8; 19];
    for &i in &CL_ORDER[..hclen] {
        cl[i] = r.take(pos, 3) as u8;
    }
    let clh = Huffman::new(&cl, &[])?;
    let mut lengths = [0u8; 286 + 30];
    let n = hlit + hdist;
    let mut i = 0;
    while i < n {
        let sym = clh.decode(r, pos)?;
        let (value, repeat) = match sym {
            0..=15 => (sym as u8, 1),
            16 => {
                let prev = *lengths[..i].last().ok_or(Invalid)?;
                (prev, 3 + r.take(pos, 2) as usize)
            }
            17 => (0, 3 + r.take(pos, 3) as usize),
            _ => (0, 11 + r.take(pos, 7) as usize),
        };
        if i + repeat > n {
            return Err(Invalid);
        }
        lengths[i..i + repeat].fill(value);
        i += repeat;
    }
    if lengths[256] == 0 {
        return Err(Invalid);
    }
    Ok(Tables {
        lit: Huffman::new(&lengths[..hlit], &LIT_BASE_EXTRA)?,
        dist: Huffman::new(&lengths[hlit..n], &DIST_BASE_EXTRA)?,
    })
}

/// Builds the block a stored header (its bits packed from bit 0) opens.
fn block_of_header(bits: &[u8], nbits: u32) -> Res<Block> {
    if nbits < 3 || bits.len() as u64 * 8 < nbits as u64 {
        return Err(Invalid);
    }
    let last = bits[0] & 1 == 1;
    match (bits[0] >> 1) & 3 {
        0 => {
            // Stored: LEN is in the header's last 32 bits.
            if nbits < 35 {
                return Err(Invalid);
            }
            let len = peek(bits, nbits as u64 - 32, 16);
            Ok(Block::Stored { left: len, last })
        }
        _ => {
            let mut r = Reader {
                data: bits,
                overrun: false,
            };
            // A code near the end peeks past the header: only its length counts.
            let (block, end) = parse_header(&mut r, 0)?;
            if end != nbits as u64 {
                return Err(Invalid);
            }
            Ok(block)
        }
    }
}

/// Appends tokens in the serialization described in the module docs.
pub struct Tokens {
    /// The serialization so far; the literals of the open run go straight
    /// to its end, after a one-byte count that the next record fills in
    /// (widening it where the run reaches 128 literals).
    buf: Vec<u8>,
    /// Where the open run's count byte is.
    run: usize,
}

impl Default for Tokens {
    fn default() -> Tokens {
        Tokens {
            buf: vec![0],
            run: 0,
        }
    }
}

/// Appends `v` as a LEB128 varint.
pub fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push(v as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Reads a LEB128 varint at `*at`.
pub fn get_varint(src: &[u8], at: &mut usize) -> Res<u64> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let b = *src.get(*at).ok_or(Invalid)?;
        *at += 1;
        v |= ((b & 0x7f) as u64) << shift;
        if b < 0x80 {
            return Ok(v);
        }
    }
    Err(Invalid)
}

impl Tokens {
    #[inline(always)]
    pub(super) fn record(&mut self, code: u8, dist: u16) {
        let n = self.buf.len() - self.run - 1;
        match self.buf.get_mut(self.run) {
            Some(count) if n < 0x80 => *count = n as u8,
            _ => self.widen_count(n),
        }
        // The record and the next run's count byte in one append.
        let [d0, d1] = dist.to_le_bytes();
        self.run = self.buf.len() + 3;
        self.buf.extend_from_slice(&[code, d0, d1, 0]);
    }

    /// Writes a run of `n` ≥ 128 literals' count, which takes more than
    /// the one byte kept for it.
    #[cold]
    fn widen_count(&mut self, n: usize) {
        let mut count = Vec::with_capacity(3);
        put_varint(&mut count, n as u64);
        self.buf.splice(self.run..self.run + 1, count);
    }

    /// Starts the next run of literals (its count byte).
    fn open_run(&mut self) {
        self.run = self.buf.len();
        self.buf.push(0);
    }

    /// Appends the bit count and the bits `from..to` of `data` (right after
    /// a record: the run it opened is opened again after them).
    fn bits(&mut self, data: &[u8], from: u64, to: u64) {
        self.buf.truncate(self.run);
        put_varint(&mut self.buf, to - from);
        let mut w = BitWriter {
            out: std::mem::take(&mut self.buf),
            ..BitWriter::default()
        };
        w.copy_bits(data, from, to - from);
        self.buf = w.finish();
        self.open_run();
    }

    /// Ends the tokens and returns their serialization.
    pub fn finish(mut self) -> Vec<u8> {
        self.record(CTL_STOP, 0);
        self.buf.truncate(self.run);
        self.buf
    }
}

/// Reads tokens out of a deflate stream, item by item (a literal, a match,
/// the end of a block, a block header), from where the last call stopped.
pub struct Parser {
    block: Block,
}

/// Why [`Parser::parse`] stopped.
#[derive(Debug, PartialEq, Eq)]
pub enum Stop {
    /// The next item does not end before the limit.
    Limit,
    /// The final block has ended.
    End,
    /// The next item is not valid deflate.
    Invalid,
    /// The sink asked to stop after the last item.
    Cut,
}

impl Parser {
    /// A parser in `block` (a new stream starts at [`Block::Boundary`]).
    pub fn new(block: Block) -> Parser {
        Parser { block }
    }

    /// The block the next item belongs to.
    pub fn block(&self) -> &Block {
        &self.block
    }

    /// Parses items of `data` from bit `pos` while each ends at or before bit
    /// `limit`, appending them to `out` when given; returns the position after
    /// the last item parsed and why it stopped. An item that does not fit is
    /// left for the next call, as is one that is not valid deflate.
    pub fn parse(
        &mut self,
        data: &[u8],
        pos: u64,
        limit: u64,
        out: Option<&mut Tokens>,
    ) -> (u64, Stop) {
        match out {
            Some(t) => self.parse_into(data, pos, limit, t),
            None => self.parse_into(data, pos, limit, &mut Discard),
        }
    }

    /// [`Parser::parse`] into any sink, which may also stop it after an item
    /// ([`Stop::Cut`]).
    pub(super) fn parse_into<S: Sink>(
        &mut self,
        data: &[u8],
        mut pos: u64,
        limit: u64,
        out: &mut S,
    ) -> (u64, Stop) {
        let mut r = Reader {
            data,
            overrun: false,
        };
        loop {
            if let Block::Huffman(h) = &self.block {
                let h = h.clone();
                let (p, cut) = huffman_run(&h, data, pos, limit, out);
                pos = p;
                if cut {
                    return (pos, Stop::Cut);
                }
            }
            let mut p = pos;
            r.overrun = false;
            let item = self.item(&mut r, &mut p);
            match item {
                Err(_) if r.overrun => return (pos, Stop::Limit),
                Err(Invalid) => return (pos, Stop::Invalid),
                Ok(_) if p > limit => return (pos, Stop::Limit),
                Ok(None) => return (pos, Stop::End),
                Ok(Some((it, next))) => {
                    if let Some(b) = next {
                        self.block = b;
                    }
                    let cut = match it {
                        Item::Literal(b) => out.literal(b, p),
                        Item::Match(len, dist) => out.matched(len, dist, p),
                        Item::EndOfBlock => out.end_of_block(),
                        Item::Header => out.header(data, pos, p, &self.block),
                        Item::LastLiteral(b) => {
                            let cut = out.literal(b, p);
                            out.end_of_block() || cut
                        }
                        Item::EmptyStored => {
                            out.header(data, pos, p, &self.block);
                            out.end_of_block()
                        }
                    };
                    pos = p;
                    if cut {
                        return (pos, Stop::Cut);
                    }
                }
            }
        }
    }

    /// Steps over the one item at `pos`; its end, or `None` past the end of
    /// the stream or where it is not valid deflate.
    pub(super) fn skip_one(&mut self, data: &[u8], pos: u64) -> Option<u64> {
        let mut r = Reader {
            data,
            overrun: false,
        };
        let mut p = pos;
        let (_, next) = self.item(&mut r, &mut p).ok()??;
        if r.overrun && p > data.len() as u64 * 8 {
            return None;
        }
        if let Some(b) = next {
            self.block = b;
        }
        Some(p)
    }

    /// Decodes the item at `*pos` and the block after it where that changes;
    /// `None` past the end of the stream.
    fn item(&self, r: &mut Reader, pos: &mut u64) -> Res<Option<(Item, Option<Block>)>> {
        match &self.block {
            Block::Done => Ok(None),
            Block::Boundary => {
                let (b, end) = parse_header(r, *pos)?;
                *pos = end;
                Ok(Some(match b {
                    Block::Stored { left: 0, last } => {
                        let after = if last { Block::Done } else { Block::Boundary };
                        (Item::EmptyStored, Some(after))
                    }
                    b => (Item::Header, Some(b)),
                }))
            }
            &Block::Stored { left, last } => {
                let after = if last { Block::Done } else { Block::Boundary };
                if left == 0 {
                    // Only a malformed start says so: a stored block's end
                    // goes with its header or its last byte (no item is empty).
                    return Ok(Some((Item::EndOfBlock, Some(after))));
                }
                let b = r.take(pos, 8) as u8;
                if left == 1 {
                    return Ok(Some((Item::LastLiteral(b), Some(after))));
                }
                let next = Block::Stored {
                    left: left - 1,
                    last,
                };
                Ok(Some((Item::Literal(b), Some(next))))
            }
            Block::Huffman(h) => {
                let t = &h.tables;
                let sym = t.lit.decode(r, pos)?;
                match sym {
                    0..=255 => Ok(Some((Item::Literal(sym as u8), None))),
                    256 => {
                        let next = if h.last() {
                            Block::Done
                        } else {
                            Block::Boundary
                        };
                        Ok(Some((Item::EndOfBlock, Some(next))))
                    }
                    257..=285 => {
                        let i = sym - 257;
                        let len = LEN_BASE[i] + r.take(pos, LEN_EXTRA[i] as u32) as u16;
                        if len > 257 && sym == 284 {
                            // 258 has code 285; 284 with extra bits 31 is invalid.
                            return Err(Invalid);
                        }
                        let d = t.dist.decode(r, pos)?;
                        if d >= 30 {
                            return Err(Invalid);
                        }
                        let dist = DIST_BASE[d] + r.take(pos, DIST_EXTRA[d] as u32) as u16;
                        Ok(Some((Item::Match(len, dist), None)))
                    }
                    _ => Err(Invalid),
                }
            }
        }
    }
}

/// The deflate items that lie wholly inside one chunk, and how to rebuild
/// the chunk's bytes around them.
pub struct ChunkTokens {
    /// Where the items start (what a parse of the chunk alone needs to find
    /// them again).
    pub start: TokenStart,
    /// The items' serialization, with the bits between two streams as gaps.
    pub tokens: Vec<u8>,
    /// The items' super-features ([`ItemHash`]); `None` when none was sampled.
    pub sfs: Option<[u64; SUPER_FEATURES]>,
    /// The Huffman block headers among the items, as parsed (so that the
    /// check of a stored form need not build their codes again).
    pub headers: Vec<Arc<Header>>,
}

/// Where the deflate items of a chunk start.
#[derive(Clone)]
pub struct TokenStart {
    /// The block the first item belongs to.
    pub block: Block,
    /// Bits of the chunk before the first item (kept verbatim).
    pub prefix_bits: u64,
    /// Bit of the chunk after its last item (the bits from here on are kept verbatim).
    pub end_bits: u64,
    /// Bits of the chunk where later streams start (ascending).
    pub streams: Vec<u64>,
}

impl TokenStart {
    /// Appends this start's serialization (see FORMAT.md).
    pub fn put(&self, out: &mut Vec<u8>) {
        put_block(out, &self.block);
        put_varint(out, self.prefix_bits);
        put_varint(out, self.end_bits);
        put_varint(out, self.streams.len() as u64);
        for s in &self.streams {
            put_varint(out, *s);
        }
    }

    /// Reads what [`TokenStart::put`] wrote at `*at`.
    pub fn get(src: &[u8], at: &mut usize) -> Res<TokenStart> {
        let block = get_block(src, at)?;
        let prefix_bits = get_varint(src, at)?;
        let end_bits = get_varint(src, at)?;
        if end_bits < prefix_bits {
            return Err(Invalid);
        }
        let n = get_varint(src, at)?;
        if n > src.len() as u64 {
            return Err(Invalid);
        }
        let mut streams = Vec::with_capacity(n as usize);
        let mut last = prefix_bits;
        for _ in 0..n {
            let s = get_varint(src, at)?;
            if s < last || s > end_bits {
                return Err(Invalid);
            }
            streams.push(s);
            last = s;
        }
        Ok(TokenStart {
            block,
            prefix_bits,
            end_bits,
            streams,
        })
    }
}

/// The tokens of `chunk` from `start` (each stream parsed up to the next
/// one's start, the last up to `start.end_bits`), exactly as the reducer
/// had them when the chunk was cut: items are never empty, so the items
/// that end by a bit are the same however the parse came there.
pub fn chunk_tokens(chunk: &[u8], start: &TokenStart) -> Vec<u8> {
    let mut t = Tokens::default();
    chunk_items(chunk, start, &mut t);
    t.finish()
}

/// [`chunk_tokens`] with the items' super-features, as the reducer sampled
/// them when the chunk was cut.
pub fn chunk_tokens_and_features(chunk: &[u8], start: &TokenStart) -> ChunkTokens {
    let mut f = Featured::default();
    chunk_items(chunk, start, &mut f);
    f.finish(start.clone())
}

/// Parses the items of `chunk` from `start` into `out`, with gaps between streams.
fn chunk_items(chunk: &[u8], start: &TokenStart, out: &mut impl Gaps) {
    let end = start.end_bits.min(chunk.len() as u64 * 8);
    let mut parser = Parser::new(start.block.clone());
    let mut pos = start.prefix_bits.min(end);
    for i in 0..=start.streams.len() {
        let limit = start.streams.get(i).copied().unwrap_or(end).min(end);
        let (p, _) = parser.parse_into(chunk, pos, limit.max(pos), out);
        let Some(&next) = start.streams.get(i) else {
            break;
        };
        let next = next.clamp(p, end);
        out.gap(chunk, p, next);
        parser = Parser::new(Block::Boundary);
        pos = next;
    }
}

/// A sink that also keeps the bits between two streams.
pub(super) trait Gaps: Sink {
    /// Appends the bits `from..to` of `data` verbatim (between two streams).
    fn gap(&mut self, data: &[u8], from: u64, to: u64);
}

impl Gaps for Tokens {
    fn gap(&mut self, data: &[u8], from: u64, to: u64) {
        self.record(CTL_GAP, 0);
        self.bits(data, from, to);
    }
}

/// A sink that keeps tokens and samples their super-features ([`ItemHash`]).
#[derive(Default)]
pub(super) struct Featured {
    tokens: Tokens,
    hash: ItemHash,
    headers: Vec<Arc<Header>>,
}

impl Featured {
    /// The items' hash so far ([`ItemHash::h`]).
    #[inline(always)]
    pub(super) fn hash(&self) -> u64 {
        self.hash.h
    }

    /// The tokens and features so far, as the items of a chunk from `start`.
    pub(super) fn finish(mut self, start: TokenStart) -> ChunkTokens {
        ChunkTokens {
            start,
            sfs: self.hash.finish(),
            tokens: self.tokens.finish(),
            headers: self.headers,
        }
    }
}

impl Sink for Featured {
    #[inline(always)]
    fn literal(&mut self, b: u8, end: u64) -> bool {
        self.hash.literal(b);
        self.tokens.literal(b, end)
    }

    #[inline(always)]
    fn matched(&mut self, len: u16, dist: u16, end: u64) -> bool {
        self.hash.matched(len, dist);
        self.tokens.matched(len, dist, end)
    }

    fn end_of_block(&mut self) -> bool {
        self.tokens.end_of_block()
    }

    fn header(&mut self, data: &[u8], from: u64, to: u64, block: &Block) -> bool {
        if let Block::Huffman(h) = block {
            self.headers.push(h.clone());
        }
        self.tokens.header(data, from, to, block)
    }
}

impl Gaps for Featured {
    fn gap(&mut self, data: &[u8], from: u64, to: u64) {
        self.tokens.gap(data, from, to);
    }
}

/// Parses the literals and matches of a Huffman block from `pos` for as
/// long as each ends by `limit` and the 8 bytes after the bits at hand lie
/// inside `data`; returns where it stopped, leaving the end of the block,
/// an invalid code and the last bytes of `data` to [`Parser::item`], which
/// reads the same items the same way.
///
/// The bits come through a 64-bit buffer refilled before each item, and the
/// next literal/length code is looked up as soon as an item is consumed,
/// before that refill: the lookup waits only for the last item's length,
/// not for a load of the stream (the two chains overlap).
fn huffman_run<S: Sink>(h: &Header, data: &[u8], pos: u64, limit: u64, out: &mut S) -> (u64, bool) {
    let (lit, dist) = (&h.tables.lit, &h.tables.dist);
    let lmask = (1u64 << lit.bits) - 1;
    let load = |at: usize| {
        data.get(at..at + 8)
            .map(|w| u64::from_le_bytes(w.try_into().expect("8 bytes")))
    };
    // `left` bits from the item's start are in `buf`; the bits above them
    // are zero or the stream's next ones; `next` is the byte after them.
    let first = (pos >> 3) as usize;
    let Some(w) = load(first) else {
        return (pos, false);
    };
    let mut buf = w >> (pos & 7);
    let mut left = 56 - (pos & 7) as u32;
    let mut next = first + 7;
    // The next code's table entry; 0 where it must be looked up again (a
    // long code, or fewer bits at hand than the table reads).
    let peek_entry = |buf: u64, left: u32| {
        if left >= lit.bits {
            lit.table[(buf & lmask & (TABLE as u64 - 1)) as usize]
        } else {
            0
        }
    };
    let mut e = peek_entry(buf, left);
    // Every 8-byte load from `next` up to `last` lies inside `data`.
    let last = data.len().saturating_sub(8);
    while next <= last {
        let w = u64::from_le_bytes(data[next..next + 8].try_into().expect("8 bytes"));
        buf |= w << left;
        next += ((63 - left) >> 3) as usize;
        left |= 56;
        let at = next as u64 * 8 - left as u64;
        if e == 0 {
            match lit.lookup_entry(buf) {
                Some(x) => e = x,
                None => break,
            }
        }
        let sym = (e >> 8) & 0x1ff;
        let n = e & 15;
        if sym < 256 {
            let end = at + n as u64;
            if end > limit {
                break;
            }
            buf >>= n;
            left -= n;
            e = peek_entry(buf, left);
            if out.literal(sym as u8, end) {
                return (end, true);
            }
            continue;
        }
        if sym == 256 || sym > 285 {
            break;
        }
        let le = (e >> 4) & 15;
        let len = (e >> 17) as u16 + ((buf >> n) & ((1 << le) - 1)) as u16;
        if len > 257 && sym == 284 {
            break;
        }
        let mut used = n + le;
        let Some(de) = dist.lookup_entry(buf >> used) else {
            break;
        };
        if (de >> 8) & 0x1ff >= 30 {
            break;
        }
        used += de & 15;
        let dx = (de >> 4) & 15;
        let distance = (de >> 17) as u16 + ((buf >> used) & ((1 << dx) - 1)) as u16;
        used += dx;
        let end = at + used as u64;
        if end > limit {
            break;
        }
        // At most 48 bits: 15 + 5 for the length, 15 + 13 for the distance.
        buf >>= used;
        left -= used;
        e = peek_entry(buf, left);
        if out.matched(len, distance, end) {
            return (end, true);
        }
    }
    (next as u64 * 8 - left as u64, false)
}

/// Where parsed items go; each method says whether to stop after the item
/// (which ends at bit `end`).
/// By default it keeps nothing and never stops.
pub(super) trait Sink {
    #[inline(always)]
    fn literal(&mut self, _b: u8, _end: u64) -> bool {
        false
    }
    #[inline(always)]
    fn matched(&mut self, _len: u16, _dist: u16, _end: u64) -> bool {
        false
    }
    fn end_of_block(&mut self) -> bool {
        false
    }
    fn header(&mut self, _data: &[u8], _from: u64, _to: u64, _block: &Block) -> bool {
        false
    }
}

impl Sink for Tokens {
    #[inline(always)]
    fn literal(&mut self, b: u8, _: u64) -> bool {
        self.buf.push(b);
        false
    }

    #[inline(always)]
    fn matched(&mut self, len: u16, dist: u16, _: u64) -> bool {
        self.record((len - 3) as u8, dist);
        false
    }

    fn end_of_block(&mut self) -> bool {
        self.record(CTL_END_OF_BLOCK, 0);
        false
    }

    fn header(&mut self, data: &[u8], from: u64, to: u64, _: &Block) -> bool {
        self.record(CTL_HEADER, 0);
        self.bits(data, from, to);
        false
    }
}

/// A sink that keeps nothing (passing over items).
struct Discard;

impl Sink for Discard {}

enum Item {
    Literal(u8),
    /// The last byte of a stored block, and the block's end.
    LastLiteral(u8),
    Match(u16, u16),
    EndOfBlock,
    Header,
    /// The header of an empty stored block, and the block's end.
    EmptyStored,
}

/// Writes bits LSB first.
#[derive(Default)]
pub struct BitWriter {
    out: Vec<u8>,
    acc: Acc,
}

impl BitWriter {
    /// A writer with room for `bytes` bytes.
    pub fn with_capacity(bytes: usize) -> BitWriter {
        BitWriter {
            out: Vec::with_capacity(bytes),
            ..BitWriter::default()
        }
    }

    /// Appends the low `n` ≤ 32 bits of `v`.
    pub fn put(&mut self, v: u32, n: u32) {
        self.with_writer(|w| w.put(v, n));
    }

    /// Appends `n` bits of `src` from bit `from`.
    pub fn copy_bits(&mut self, src: &[u8], from: u64, n: u64) {
        self.with_writer(|w| w.copy_bits(src, from, n));
    }

    /// Runs `f` on a [`Writer`] over this writer's bits.
    #[inline(always)]
    fn with_writer<T>(&mut self, f: impl FnOnce(&mut Writer) -> T) -> T {
        let mut w = Writer {
            acc: std::mem::take(&mut self.acc),
            out: &mut self.out,
        };
        let r = f(&mut w);
        self.acc = w.acc;
        r
    }

    /// Bits written so far.
    pub fn bits(&self) -> u64 {
        self.out.len() as u64 * 8 + self.acc.n as u64
    }

    /// The bytes, the last one padded with zero bits.
    pub fn finish(mut self) -> Vec<u8> {
        let bytes = self.acc.n.div_ceil(8) as usize;
        self.out
            .extend_from_slice(&self.acc.v.to_le_bytes()[..bytes]);
        self.out
    }
}

/// Where an encoder's bits go: a byte vector ([`Writer`]), or a comparison
/// with the bits they should be ([`Compare`]).
trait BitOut {
    /// Appends the low `n` ≤ 32 bits of `v`.
    fn put(&mut self, v: u32, n: u32);

    /// Appends a symbol's code from `codes` (see [`Huffman`]).
    #[inline(always)]
    fn code(&mut self, codes: &[(u16, u8)], sym: usize) -> Res<()> {
        let (code, len) = code_of(codes, sym)?;
        self.put(code, len);
        Ok(())
    }

    /// Appends the codes of the literals `lits` from `codes` (a literal
    /// without a code is an error, after the run).
    #[inline(always)]
    fn literals(&mut self, codes: &[(u16, u8)], lits: &[u8]) -> Res<()> {
        let codes: &[(u16, u8); 256] = codes
            .get(..256)
            .and_then(|c| c.try_into().ok())
            .ok_or(Invalid)?;
        let mut missing = false;
        for &b in lits {
            let (code, len) = codes[b as usize];
            missing |= len == 0;
            self.put(code as u32, len as u32);
        }
        if missing {
            return Err(Invalid);
        }
        Ok(())
    }

    /// Appends `n` bits of `src` from bit `from`.
    fn copy_bits(&mut self, src: &[u8], from: u64, n: u64) {
        let mut done = 0;
        while done < n {
            let k = (n - done).min(32) as u32;
            self.put(peek(src, from + done, k), k);
            done += k as u64;
        }
    }
}

/// The bits a [`BitWriter`] holds short of a 32-bit word (fewer than 32),
/// apart from its bytes, so that the encoder can keep them in registers.
#[derive(Default)]
struct Acc {
    v: u64,
    n: u32,
}

/// A [`BitOut`] into a byte vector through an accumulator (kept in
/// registers while it is a local: only the vector is behind a pointer).
struct Writer<'a> {
    acc: Acc,
    out: &'a mut Vec<u8>,
}

impl BitOut for Writer<'_> {
    #[inline(always)]
    fn put(&mut self, v: u32, n: u32) {
        let acc = &mut self.acc;
        acc.v |= (v as u64 & ((1u64 << n) - 1)) << acc.n;
        acc.n += n;
        if acc.n >= 32 {
            self.out.extend_from_slice(&(acc.v as u32).to_le_bytes());
            acc.v >>= 32;
            acc.n -= 32;
        }
    }
}

/// A [`BitOut`] that compares each put with the bits of `expected` at
/// `pos`, noting any difference in `diff`: one load per item and no
/// branch on the bits (a writer's word flushes are unpredictable).
struct Compare<'a> {
    expected: &'a [u8],
    pos: u64,
    diff: u64,
}

impl BitOut for Compare<'_> {
    #[inline(always)]
    fn put(&mut self, v: u32, n: u32) {
        let byte = (self.pos >> 3) as usize;
        let got = match self.expected.get(byte..byte + 8) {
            Some(w) => u64::from_le_bytes(w.try_into().expect("8 bytes")) >> (self.pos & 7),
            None => peek(self.expected, self.pos, n) as u64,
        };
        self.diff |= (got ^ v as u64) & ((1u64 << n) - 1);
        self.pos += n as u64;
    }
}

/// The code of `sym` in `codes` (see [`Huffman`]) and its length.
#[inline(always)]
fn code_of(codes: &[(u16, u8)], sym: usize) -> Res<(u32, u32)> {
    match codes.get(sym) {
        Some(&(code, len)) if len > 0 => Ok((code as u32, len as u32)),
        _ => Err(Invalid),
    }
}

/// Length code index (0..29) of every match length 3..=258 minus 3.
const LEN_INDEX: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < 29 {
        let mut l = LEN_BASE[i] as usize;
        let end = if i == 28 {
            259
        } else {
            LEN_BASE[i + 1] as usize
        };
        while l < end && l < 258 {
            t[l - 3] = i as u8;
            l += 1;
        }
        i += 1;
    }
    // 258 has a code of its own (285), not 284 with extra bits 31.
    t[255] = 28;
    t
};

/// The length code (symbol, extra bits, their count) of match length `code + 3`.
fn length_symbol(code: u8) -> (usize, u32, u32) {
    let i = LEN_INDEX[code as usize] as usize;
    let len = code as u16 + 3;
    (257 + i, (len - LEN_BASE[i]) as u32, LEN_EXTRA[i] as u32)
}

/// The distance code (symbol, extra bits, their count) of `dist` 1..=32768.
fn dist_symbol(dist: u16) -> Res<(usize, u32, u32)> {
    let d = dist.checked_sub(1).ok_or(Invalid)? as u32;
    let i = if d < 4 {
        d as usize
    } else {
        let top = 31 - d.leading_zeros();
        (2 * top + ((d >> (top - 1)) & 1)) as usize
    };
    if i >= 30 {
        return Err(Invalid);
    }
    Ok((i, (dist - DIST_BASE[i]) as u32, DIST_EXTRA[i] as u32))
}

/// Writes the items of `tokens` (a serialization made by [`Parser::parse`])
/// to `w`, starting in `block`; returns the block the stream is in after them.
pub fn encode(block: Block, tokens: &[u8], w: &mut BitWriter) -> Res<Block> {
    // The accumulator as locals of its own (kept in registers: only the
    // byte vector is reached through a pointer).
    w.with_writer(|w| encode_with(block, tokens, &[], w))
}

/// Whether the items of `tokens`, written from `block`, are exactly the
/// bits `from..to` of `expected` (what [`encode`] would write there,
/// without writing it anywhere). `headers` are the Huffman headers the
/// parse found among the items ([`ChunkTokens::headers`]; may be empty):
/// a header whose bits are those in the tokens is used as it is, whose
/// codes are what [`encode`] would build from the same bits.
pub fn encodes_to(
    block: Block,
    tokens: &[u8],
    headers: &[Arc<Header>],
    expected: &[u8],
    from: u64,
    to: u64,
) -> bool {
    let mut cmp = Compare {
        expected,
        pos: from,
        diff: 0,
    };
    encode_with(block, tokens, headers, &mut cmp).is_ok()
        && cmp.diff == 0
        && cmp.pos == to
        && to <= expected.len() as u64 * 8
}

#[inline(always)]
fn encode_with(
    mut block: Block,
    tokens: &[u8],
    headers: &[Arc<Header>],
    w: &mut impl BitOut,
) -> Res<Block> {
    let mut at = 0usize;
    let mut parsed = headers;
    loop {
        let n = get_varint(tokens, &mut at)? as usize;
        let lits = tokens
            .get(at..at.checked_add(n).ok_or(Invalid)?)
            .ok_or(Invalid)?;
        at += n;
        match &mut block {
            Block::Huffman(h) => w.literals(&h.tables.lit.codes, lits)?,
            Block::Stored { left, .. } => {
                if (*left as usize) < lits.len() {
                    return Err(Invalid);
                }
                *left -= lits.len() as u32;
                for &b in lits {
                    w.put(b as u32, 8);
                }
            }
            _ if lits.is_empty() => {}
            _ => return Err(Invalid),
        }
        let [code, d0, d1] = tokens
            .get(at..at + 3)
            .ok_or(Invalid)?
            .try_into()
            .map_err(|_| Invalid)?;
        at += 3;
        let dist = u16::from_le_bytes([d0, d1]);
        if dist > 0 {
            let Block::Huffman(h) = &block else {
                return Err(Invalid);
            };
            // Each code with its extra bits in one append (at most 15 + 5
            // and 15 + 13 bits).
            let (ls, le, ln) = length_symbol(code);
            let (c, l) = code_of(&h.tables.lit.codes, ls)?;
            w.put(c | le << l, l + ln);
            let (ds, de, dn) = dist_symbol(dist)?;
            let (c, l) = code_of(&h.tables.dist.codes, ds)?;
            w.put(c | de << l, l + dn);
            continue;
        }
        match code {
            CTL_END_OF_BLOCK => {
                block = match &block {
                    Block::Huffman(h) => {
                        w.code(&h.tables.lit.codes, 256)?;
                        if h.last() {
                            Block::Done
                        } else {
                            Block::Boundary
                        }
                    }
                    &Block::Stored { left: 0, last } => {
                        if last {
                            Block::Done
                        } else {
                            Block::Boundary
                        }
                    }
                    _ => return Err(Invalid),
                }
            }
            CTL_HEADER => {
                if !matches!(block, Block::Boundary) {
                    return Err(Invalid);
                }
                let nbits = get_varint(tokens, &mut at)?;
                let nbytes = nbits.div_ceil(8) as usize;
                let bits = tokens
                    .get(at..at.checked_add(nbytes).ok_or(Invalid)?)
                    .ok_or(Invalid)?;
                at += nbytes;
                let nbits = u32::try_from(nbits).map_err(|_| Invalid)?;
                // Stored headers hold alignment padding: keep them verbatim too.
                block = match parsed.split_first() {
                    Some((h, rest)) if h.nbits == nbits && h.bits == bits => {
                        parsed = rest;
                        Block::Huffman(h.clone())
                    }
                    _ => block_of_header(bits, nbits)?,
                };
                w.copy_bits(bits, 0, nbits as u64);
            }
            CTL_GAP => {
                let nbits = get_varint(tokens, &mut at)?;
                let nbytes = usize::try_from(nbits.div_ceil(8)).map_err(|_| Invalid)?;
                let bits = tokens
                    .get(at..at.checked_add(nbytes).ok_or(Invalid)?)
                    .ok_or(Invalid)?;
                at += nbytes;
                w.copy_bits(bits, 0, nbits);
                block = Block::Boundary;
            }
            CTL_STOP => return Ok(block),
            _ => return Err(Invalid),
        }
    }
}

/// Serializes where a stream stands (for a chunk's start).
pub fn put_block(out: &mut Vec<u8>, block: &Block) {
    match block {
        Block::Boundary => out.push(0),
        Block::Huffman(h) => {
            out.push(1);
            put_varint(out, h.nbits as u64);
            out.extend_from_slice(&h.bits);
        }
        &Block::Stored { left, last } => {
            out.push(2);
            out.push(last as u8);
            out.extend_from_slice(&(left as u16).to_le_bytes());
        }
        Block::Done => out.push(3),
    }
}

/// Reads what [`put_block`] wrote at `*at`.
pub fn get_block(src: &[u8], at: &mut usize) -> Res<Block> {
    let tag = *src.get(*at).ok_or(Invalid)?;
    *at += 1;
    match tag {
        0 => Ok(Block::Boundary),
        1 => {
            let nbits = get_varint(src, at)?;
            let n = nbits.div_ceil(8) as usize;
            let bits = src
                .get(*at..at.checked_add(n).ok_or(Invalid)?)
                .ok_or(Invalid)?;
            *at += n;
            let nbits = u32::try_from(nbits).map_err(|_| Invalid)?;
            match block_of_header(bits, nbits)? {
                b @ Block::Huffman(_) => Ok(b),
                _ => Err(Invalid),
            }
        }
        2 => {
            let b = src.get(*at..*at + 3).ok_or(Invalid)?;
            *at += 3;
            Ok(Block::Stored {
                left: u16::from_le_bytes([b[1], b[2]]) as u32,
                last: b[0] == 1,
            })
        }
        3 => Ok(Block::Done),
        _ => Err(Invalid),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Lines of made-up source code (deflate finds matches and builds dynamic tables).
    pub(crate) fn source_text(lines: usize, seed: u64) -> Vec<u8> {
        let words = [
            "let", "mut", "value", "index", "return", "match", "self", "buffer", "offset", "=",
            "+", "(", ")", ";", "{", "}", "stream", "block", "fn", "pub",
        ];
        let mut out = Vec::new();
        for (i, x) in crate::reduction::chunker::tests::xorshift(seed)
            .take(lines)
            .enumerate()
        {
            out.extend_from_slice(format!("{:4} ", i % 97).as_bytes());
            for k in 0..(3 + x % 9) {
                out.extend_from_slice(words[((x >> (k * 5)) % 20) as usize].as_bytes());
                out.push(b' ');
            }
            out.extend_from_slice(format!("{:x}\n", x % 4099).as_bytes());
        }
        out
    }

    /// A zip-like file: each member a local header (method 8, or 0 for
    /// `stored`), its name and its data, then a fake central directory.
    pub(crate) fn zip(members: &[(&str, &[u8], bool)]) -> Vec<u8> {
        let mut out = Vec::new();
        for (name, data, deflated) in members {
            let body = if *deflated {
                miniz_oxide::deflate::compress_to_vec(data, 6)
            } else {
                data.to_vec()
            };
            out.extend_from_slice(b"PK\x03\x04");
            out.extend_from_slice(&20u16.to_le_bytes());
            out.extend_from_slice(&0u16.to_le_bytes());
            out.extend_from_slice(&(if *deflated { 8u16 } else { 0 }).to_le_bytes());
            out.extend_from_slice(&[0; 8]);
            out.extend_from_slice(&(body.len() as u32).to_le_bytes());
            out.extend_from_slice(&(data.len() as u32).to_le_bytes());
            out.extend_from_slice(&(name.len() as u16).to_le_bytes());
            out.extend_from_slice(&0u16.to_le_bytes());
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(&body);
        }
        out.extend_from_slice(b"PK\x01\x02 central directory");
        out
    }

    fn parse_all(stream: &[u8]) -> (u64, Vec<u8>) {
        let mut t = Tokens::default();
        let (end, stop) = Parser::new(Block::Boundary).parse(stream, 0, u64::MAX, Some(&mut t));
        assert_eq!(stop, Stop::End);
        (end, t.finish())
    }

    fn assert_rebuilds(stream: &[u8]) {
        let (end, tokens) = parse_all(stream);
        assert_eq!(end.div_ceil(8), stream.len() as u64);
        let mut w = BitWriter::default();
        assert!(matches!(
            encode(Block::Boundary, &tokens, &mut w),
            Ok(Block::Done)
        ));
        assert_eq!(w.bits(), end);
        assert_eq!(w.finish(), stream);
        // The check without writing agrees, and catches any changed bit.
        assert!(encodes_to(Block::Boundary, &tokens, &[], stream, 0, end));
        assert!(!encodes_to(
            Block::Boundary,
            &tokens,
            &[],
            stream,
            0,
            end - 1
        ));
        for bit in [0, end / 2, end - 1] {
            let mut changed = stream.to_vec();
            changed[(bit / 8) as usize] ^= 1 << (bit % 8);
            assert!(!encodes_to(Block::Boundary, &tokens, &[], &changed, 0, end));
        }
        // So with the headers the parse kept (used instead of rebuilt), and
        // with headers that are not those in the tokens (rebuilt).
        let mut f = Featured::default();
        Parser::new(Block::Boundary).parse_into(stream, 0, u64::MAX, &mut f);
        let parsed = f.finish(TokenStart {
            block: Block::Boundary,
            prefix_bits: 0,
            end_bits: end,
            streams: Vec::new(),
        });
        assert_eq!(parsed.tokens, tokens);
        let check = |hs: &[Arc<Header>], bits: &[u8]| {
            encodes_to(Block::Boundary, &tokens, hs, bits, 0, end)
        };
        assert!(check(&parsed.headers, stream));
        let mut changed = stream.to_vec();
        changed[(end / 16) as usize] ^= 4;
        assert!(!check(&parsed.headers, &changed));
        assert!(check(parsed.headers.get(1..).unwrap_or_default(), stream));
    }

    #[test]
    fn tokens_rebuild_streams_bit_for_bit() {
        let random: Vec<u8> = crate::reduction::chunker::tests::xorshift(3)
            .take(40_000)
            .map(|x| x as u8)
            .collect();
        let inputs = [
            source_text(3000, 1),
            random,
            vec![7u8; 100_000],
            b"a".to_vec(),
            Vec::new(),
        ];
        for input in &inputs {
            // Level 0 writes stored blocks, 1 fast matches, 9 lazy ones.
            for level in [0, 1, 6, 9] {
                let stream = miniz_oxide::deflate::compress_to_vec(input, level);
                assert_rebuilds(&stream);
                assert_eq!(
                    miniz_oxide::inflate::decompress_to_vec(&stream).unwrap(),
                    *input
                );
            }
        }
        // A fixed-Huffman block by hand: literals, a match, the end.
        let fixed = Tables::fixed().unwrap();
        let mut w = BitWriter::default();
        w.put(0b011, 3);
        for b in b"abcabcabc" {
            fixed.lit.put(&mut w, *b as usize).unwrap();
        }
        let (ls, le, ln) = length_symbol(6 - 3);
        fixed.lit.put(&mut w, ls).unwrap();
        w.put(le, ln);
        let (ds, de, dn) = dist_symbol(3).unwrap();
        fixed.dist.put(&mut w, ds).unwrap();
        w.put(de, dn);
        fixed.lit.put(&mut w, 256).unwrap();
        let stream = w.finish();
        assert_eq!(
            miniz_oxide::inflate::decompress_to_vec(&stream).unwrap(),
            b"abcabcabcabcabc"
        );
        assert_rebuilds(&stream);
    }

    /// Length 258 written as code 284 with extra bits 31 (which zlib
    /// refuses) would come back as code 285: it is not taken for deflate.
    #[test]
    fn a_length_that_would_not_write_back_the_same_is_invalid() {
        let fixed = Tables::fixed().unwrap();
        let mut w = BitWriter::default();
        w.put(0b011, 3);
        fixed.lit.put(&mut w, b'a' as usize).unwrap();
        fixed.lit.put(&mut w, 284).unwrap();
        w.put(31, 5);
        fixed.dist.put(&mut w, 0).unwrap();
        fixed.lit.put(&mut w, 256).unwrap();
        let stream = w.finish();
        let mut t = Tokens::default();
        let (end, stop) = Parser::new(Block::Boundary).parse(&stream, 0, u64::MAX, Some(&mut t));
        assert_eq!(stop, Stop::Invalid);
        assert_eq!(end, 3 + 8, "stops after the literal");
    }

    #[test]
    fn match_length_and_distance_codes_cover_their_ranges() {
        for len in 3..=258u16 {
            let (sym, extra, n) = length_symbol((len - 3) as u8);
            let i = sym - 257;
            assert_eq!(LEN_BASE[i] + extra as u16, len);
            assert!(extra < (1 << n) || n == 0 && extra == 0);
        }
        assert_eq!(length_symbol(255).0, 285);
        for dist in 1..=32768u32 {
            let (i, extra, n) = dist_symbol(dist as u16).unwrap();
            assert_eq!(DIST_BASE[i] as u32 + extra, dist);
            assert!(n == 0 && extra == 0 || extra < (1 << n));
        }
        assert!(dist_symbol(0).is_err());
    }

    #[test]
    fn malformed_tokens_are_an_error() {
        let (_, tokens) = parse_all(&miniz_oxide::deflate::compress_to_vec(
            &source_text(200, 2),
            6,
        ));
        for cut in [0, 1, 5, tokens.len() / 2, tokens.len() - 1] {
            let mut w = BitWriter::default();
            // Cut short: never a panic; an error or a different stream.
            let _ = encode(Block::Boundary, &tokens[..cut], &mut w);
        }
        // A match before any block header.
        let mut w = BitWriter::default();
        assert!(encode(Block::Boundary, &[0, 0, 1, 0], &mut w).is_err());
    }
}
