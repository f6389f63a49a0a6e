//! Entry points for the fuzz targets in `fuzz/` (not part of the layout's API): the SLC
//! record codec and segment recovery, which are private to [`crate::slc`]. Shard blocks and
//! layout records are fuzzed through their public functions in [`crate::shard`] and
//! [`crate::records`].

use std::ops::Range;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::BytesMut;

use crate::error::{LayoutError, Result};
use crate::slc;

/// The 32-byte header of SLC segment `seq`.
pub fn segment_header(seq: u64) -> Vec<u8> {
    slc::segment_header(seq).to_vec()
}

/// True if `b` starts with the header of segment `seq`.
pub fn check_segment_header(b: &[u8], seq: u64) -> bool {
    slc::check_segment_header(b, seq)
}

/// One SLC record (header, piece checksum table, data) for extent `id`.
pub fn encode_record(id: u64, data: &[u8]) -> Vec<u8> {
    let mut b = BytesMut::new();
    slc::encode_record(&mut b, id, data);
    b.to_vec()
}

/// Parses the SLC record at the start of `b`: `(extent id, data range)` if it is complete
/// and every checksum holds.
pub fn parse_record(b: &[u8]) -> Option<(u64, Range<usize>)> {
    slc::parse_record(b)
}

/// What start-up recovery left of one segment's two mirror copies.
#[derive(Debug)]
pub struct Recovered {
    /// The durable length recovery kept, `None` if it dropped the segment.
    pub kept: Option<u64>,
    /// The two copies as they are on disk afterwards (`None`: no file).
    pub copies: [Option<Vec<u8>>; 2],
}

/// Runs SLC start-up recovery on segment `seq` with the given mirror copies (`None`: the
/// file is missing on that mirror) in two fresh directories under
/// [`std::env::temp_dir`], and returns what it kept and the files afterwards.
pub fn recover_mirrors(seq: u64, copies: [Option<&[u8]>; 2]) -> Result<Recovered> {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let root = std::env::temp_dir().join(format!("cairn-fuzz-slc-{}-{n}", std::process::id()));
    let io = |e| LayoutError::io(root.display().to_string(), e);
    let _ = std::fs::remove_dir_all(&root);
    let dirs: [PathBuf; 2] = [root.join("a"), root.join("b")];
    let name = slc::segment_name(seq);
    let run = || -> Result<Recovered> {
        for (d, c) in dirs.iter().zip(copies) {
            std::fs::create_dir_all(d).map_err(io)?;
            if let Some(c) = c {
                std::fs::write(d.join(&name), c).map_err(io)?;
            }
        }
        let kept = slc::recover_segments(&dirs)?;
        let kept = kept.iter().find(|(s, _)| *s == seq).map(|(_, len)| *len);
        let read = |d: &PathBuf| std::fs::read(d.join(&name)).ok();
        Ok(Recovered {
            kept,
            copies: [read(&dirs[0]), read(&dirs[1])],
        })
    };
    let out = run();
    let _ = std::fs::remove_dir_all(&root);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recovery_hook_keeps_intact_records() {
        let mut seg = segment_header(7);
        seg.extend_from_slice(&encode_record(1, b"hello"));
        let (id, r) = parse_record(&seg[slc::SEG_HEADER..]).unwrap();
        assert_eq!((id, r.len()), (1, 5));
        let rec = recover_mirrors(7, [Some(&seg), None]).unwrap();
        assert_eq!(rec.kept, Some(seg.len() as u64));
        assert_eq!(rec.copies[1].as_deref(), Some(&seg[..]));
    }

    /// Writes an SLC record, a shard file and layout records made by the real encoders into
    /// `$CAIRN_FUZZ_SEEDS/<target>/` (the fuzz corpus seeds).
    #[test]
    #[ignore = "writes fuzz seeds; run by hand"]
    fn write_fuzz_seeds() {
        use crate::codec::Codec;
        use crate::records::{ChunkRecord, ExtentLoc, ExtentRecord, StripeRecord};
        use crate::shard::StripePacker;
        let Some(out) = std::env::var_os("CAIRN_FUZZ_SEEDS") else {
            return;
        };
        let out = PathBuf::from(out);
        let put = |target: &str, name: &str, mode: u8, bytes: &[u8]| {
            let d = out.join(target);
            std::fs::create_dir_all(&d).unwrap();
            let mut v = vec![mode];
            v.extend_from_slice(bytes);
            std::fs::write(d.join(name), v).unwrap();
        };
        put(
            "slc_record",
            "seed-record",
            0,
            &encode_record(slc::extent_id(3, 1), b"extent bytes"),
        );
        let codec = Codec::new(2, 1).unwrap();
        let mut p = StripePacker::new(2, 2, 256);
        for i in 0..5u8 {
            p.place(&[i; 90]).unwrap();
        }
        let files = p.finish(&codec, 42).unwrap();
        put("shard_block", "seed-block", 0, &files[0][..256]);
        put("shard_block", "seed-shard-file", 1, &files[2]);
        let ext = ExtentRecord {
            len: 300,
            crc: 0xdead_beef,
            loc: ExtentLoc::Chunks(vec![(1, 100), (2, 200)]),
        };
        put("shard_block", "seed-extent", 2, &ext.encode());
        let chunk = ChunkRecord {
            refcount: 2,
            encoding: 1,
            logical_len: 100,
            stored_len: 60,
            crc: 7,
            stripe: 42,
            shard: 1,
            device: 3,
            row: 0,
            offset: 90,
            block_bytes: 256,
            base: Some(9),
        };
        put("shard_block", "seed-chunk", 2, &chunk.encode());
        let stripe = StripeRecord {
            k: 2,
            m: 1,
            rows: 2,
            block_bytes: 256,
            devices: vec![0, 1, 2],
            chunks: vec![1, 2, 3],
            data_bytes: 450,
            live_bytes: 300,
        };
        put("shard_block", "seed-stripe", 2, &stripe.encode());
    }
}
