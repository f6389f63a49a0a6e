//! Deflate tokens of zip members (`cairn_erasure::reduction::deflate`), on any bytes.
//!
//! Each extent is walked twice, as the reducer does: chunk by chunk with `StreamWalk` (small
//! members) and member by member with `SpanCutter` (large ones, cut by their tokens), and
//! the input is split into two extents so that both also go on across the boundary. For
//! every chunk that comes with tokens:
//! - its verbatim prefix, its tokens and its verbatim tail rebuild exactly its bytes, and
//! - the chunk alone parses to the same tokens (what a delta against it decodes with).
//!
//! Input: one byte picks the chunk size, one the split point, the rest is data.
#![no_main]
use cairn_erasure::reduction::deflate::{
    chunk_tokens, spans, ChunkTokens, CutSizes, Span, SpanCutter, StreamWalk,
};
use cairn_erasure::reduction::encode::rebuild;
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
    let (mut walk_carry, mut span_carry) = (None, None);
    for ext in [&data[..at], &data[at..]] {
        let mut off = 0;
        let mut cut_spans = Vec::new();
        if let Some((c, end)) = span_carry.take().and_then(|c| SpanCutter::resume(ext, c)) {
            let (pieces, left) = c.cut(ext, 0, sizes);
            for p in &pieces {
                assert!(
                    p.len > 0 && p.len <= sizes.max,
                    "piece of {} bytes, sizes {sizes:?}, resumed",
                    p.len
                );
                if let Some(ct) = &p.tokens {
                    check(&ext[off..off + p.len], ct);
                }
                off += p.len;
            }
            assert_eq!(off, end.min(ext.len()), "pieces do not cover the member");
            span_carry = left;
            // As the reducer does: the walk leaves the resumed member alone.
            cut_spans.push(Span {
                header: 0,
                data: 0,
                end,
            });
        }
        for span in spans(ext, 64) {
            if span.header < off {
                continue;
            }
            let (pieces, left) = SpanCutter::new(&span).cut(ext, span.header, sizes);
            off = span.header;
            for p in &pieces {
                assert!(
                    p.len > 0 && p.len <= sizes.max,
                    "piece of {} bytes, sizes {sizes:?}, span {span:?}",
                    p.len
                );
                if let Some(ct) = &p.tokens {
                    check(&ext[off..off + p.len], ct);
                }
                off += p.len;
            }
            assert_eq!(
                off,
                span.end.min(ext.len()),
                "pieces do not cover the member"
            );
            span_carry = left;
            cut_spans.push(span);
        }
        let mut walk = StreamWalk::new(ext, walk_carry.take(), &cut_spans);
        let mut off = 0;
        while off < ext.len() {
            let end = (off + chunk).min(ext.len());
            if let Some(ct) = walk.chunk(off, end) {
                check(&ext[off..end], &ct);
            }
            off = end;
        }
        walk_carry = walk.finish();
    }
});
