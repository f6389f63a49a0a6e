//! Deflate tokens of zip members (`cairn_erasure::reduction::{deflate, streams}`), on any bytes.
//!
//! Each extent is handled as the reducer does: `cut_deflate` (deflate data before the first
//! member header found again with `resync`, large members cut by their tokens), and the rest
//! walked chunk by chunk with `StreamWalk`; the input is split into two extents, so that the second may start inside a
//! member. For every chunk that comes with tokens:
//! - its verbatim prefix, its tokens and its verbatim tail rebuild exactly its bytes, and
//! - the chunk alone parses to the same tokens (what a delta against it decodes with) and
//!   samples the same super-features (what the warm-up after a restart indexes it by), and
//! - the check the reducer makes before storing a token delta (`encodes_to`) accepts them;
//!
//! and the cutter's pieces are non-empty, within the maximum and cover what they cut. Each
//! extent is cut a second time remembering which piece followed which the first time (as the
//! reducer remembers by fingerprint), so that known pieces are taken as they are and the
//! cutter resyncs after them: the same checks hold.
//!
//! Input: one byte picks the chunk size, one the split point, the rest is data.
#![no_main]
use cairn_erasure::reduction::deflate::{
    chunk_tokens, chunk_tokens_and_features, encodes_to, ChunkTokens,
};
use cairn_erasure::reduction::encode::rebuild;
use cairn_erasure::reduction::streams::{
    cut_deflate, first_member, CutMemo, CutSizes, DeflateCuts, Forgetful, Piece, StreamWalk,
};
use libfuzzer_sys::fuzz_target;
use std::collections::HashMap;

/// Which piece followed which, by the pieces' bytes.
#[derive(Default)]
struct Followers(HashMap<Vec<u8>, Vec<u8>>);

impl CutMemo for Followers {
    type Key = ();

    fn member(&mut self, _: &[u8]) -> Result<Vec<usize>, ()> {
        Err(())
    }

    fn following(&mut self, piece: &[u8], rest: &[u8]) -> Vec<usize> {
        let mut out = Vec::new();
        let (mut cur, mut off) = (piece, 0);
        while let Some(next) = self.0.get(cur) {
            if !rest[off..].starts_with(next) {
                break;
            }
            out.push(next.len());
            cur = &rest[off..off + next.len()];
            off += next.len();
        }
        out
    }
}

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
    let alone = chunk_tokens_and_features(chunk, &ct.start);
    assert_eq!(alone.sfs, ct.sfs, "the chunk alone samples other features");
    assert!(
        encodes_to(
            ct.start.block.clone(),
            &ct.tokens,
            &ct.headers,
            chunk,
            ct.start.prefix_bits,
            end
        ),
        "the check rejects tokens that rebuild the chunk"
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

/// Checks every run's pieces and that they cover their stretch.
fn check_runs<K>(ext: &[u8], cuts: &DeflateCuts<K>, sizes: CutSizes) {
    let head = first_member(ext).unwrap_or(ext.len());
    for (run, span) in cuts.runs.iter().zip(&cuts.spans) {
        let off = check_pieces(ext, &run.pieces, run.start, sizes);
        let end = if span.data == 0 {
            head
        } else {
            span.end.min(ext.len())
        };
        assert_eq!(off, end, "pieces do not cover their stretch");
    }
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
        let cuts = cut_deflate(ext, sizes, 1 << 13, 64, true, &mut Forgetful);
        check_runs(ext, &cuts, sizes);
        let mut followers = Followers::default();
        for run in &cuts.runs {
            let mut off = run.start;
            for w in run.pieces.windows(2) {
                let (a, b) = (
                    off..off + w[0].len,
                    off + w[0].len..off + w[0].len + w[1].len,
                );
                followers.0.insert(ext[a].to_vec(), ext[b].to_vec());
                off += w[0].len;
            }
        }
        let again = cut_deflate(ext, sizes, 1 << 13, 64, true, &mut followers);
        check_runs(ext, &again, sizes);
        let mut walk = StreamWalk::new(ext, &cuts.spans);
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
