//! Deflate tokens of zip members (`cairn_erasure::reduction::{deflate, streams}`), on any bytes.
//!
//! Each extent is handled as the reducer does: deflate data before the first member header
//! (the rest of a member begun in an earlier extent) found again with `resync` and cut by
//! `SpanCutter`, large members cut by `SpanCutter`, and the rest walked chunk by chunk with
//! `StreamWalk`; the input is split into two extents, so that the second may start inside a
//! member. For every chunk that comes with tokens:
//! - its verbatim prefix, its tokens and its verbatim tail rebuild exactly its bytes, and
//! - the chunk alone parses to the same tokens (what a delta against it decodes with);
//!
//! and the cutter's pieces are non-empty, within the maximum and cover what they cut.
//!
//! Input: one byte picks the chunk size, one the split point, the rest is data.
#![no_main]
use cairn_erasure::reduction::deflate::{chunk_tokens, ChunkTokens};
use cairn_erasure::reduction::encode::rebuild;
use cairn_erasure::reduction::streams::{
    cut_stretch, first_member, spans, CutSizes, Piece, Span, SpanCutter, StreamWalk,
};
use libfuzzer_sys::fuzz_target;

fn check(chunk: &[u8], ct: &ChunkTokens) {
    let end = ct.start.end_bits;
    assert!(ct.start.prefix_bits <= end && end <= chunk.len() as u64 * 8);
    let tail = &chunk[(end / 8) as usize..];
    let rebuilt = rebuild(
        chunk.len(),
        &ct.start.block,
        (chunk, ct.start.prefix_bits),
        &ct.tokens,
        (tail, end),
    );
    assert_eq!(
        rebuilt.as_deref(),
        Some(chunk),
        "tokens do not rebuild the chunk"
    );
    assert_eq!(
        chunk_tokens(chunk, &ct.start),
        ct.tokens,
        "the chunk alone parses to other tokens"
    );
}

/// Checks the pieces cut from `off` on; returns where they end.
fn check_pieces(ext: &[u8], pieces: &[Piece], mut off: usize, sizes: CutSizes) -> usize {
    for p in pieces {
        assert!(p.len > 0 && p.len <= sizes.max, "piece of {} bytes", p.len);
        if let Some(ct) = &p.tokens {
            check(&ext[off..off + p.len], ct);
        }
        off += p.len;
    }
    off
}

fuzz_target!(|input: &[u8]| {
    if input.len() < 2 {
        return;
    }
    let chunk = 16 + input[0] as usize * 8;
    let data = &input[2..];
    let at = (data.len() * input[1] as usize / 255).min(data.len());
    let sizes = CutSizes {
        min: chunk / 4 + 1,
        avg: chunk,
        max: chunk * 4,
    };
    for ext in [&data[..at], &data[at..]] {
        let mut off = 0;
        let mut cut_spans = Vec::new();
        let head = first_member(ext).unwrap_or(ext.len());
        if let Some(pieces) = cut_stretch(ext, head, 1 << 13, sizes) {
            off = check_pieces(ext, &pieces, 0, sizes);
            assert_eq!(off, head, "pieces do not cover the stretch");
            cut_spans.push(Span {
                header: 0,
                data: 0,
                end: off,
            });
        }
        for span in spans(ext, 64) {
            if span.header < off {
                continue;
            }
            let pieces = SpanCutter::new(&span).cut(ext, span.header, sizes);
            off = check_pieces(ext, &pieces, span.header, sizes);
            assert_eq!(
                off,
                span.end.min(ext.len()),
                "pieces do not cover the member"
            );
            cut_spans.push(span);
        }
        let mut walk = StreamWalk::new(ext, &cut_spans);
        let mut off = 0;
        while off < ext.len() {
            let end = (off + chunk).min(ext.len());
            if let Some(ct) = walk.chunk(off, end) {
                check(&ext[off..end], &ct);
            }
            off = end;
        }
    }
});
