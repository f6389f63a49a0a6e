//! Per-bucket capacity accounting: logical bytes, and what the bucket's data costs after
//! dedup, after similarity, after compression, and on QLC with parity.
//!
//! One pass reads one metadata snapshot: every object record (`o/`), staged multipart part
//! (`p/`) and staged Blob block (`K/`) names the extents it uses; the layout's
//! [`FootprintReader`] prices each extent from the same snapshot (a chunk shared by several
//! references is split evenly over them; see `cairn_erasure::footprint`). When several
//! pieces reference one extent, its footprint is split by the bytes of it each piece covers,
//! so no extent is counted twice and the per-bucket figures add up to the node's total.
//! Inline bodies (kept in the metadata record) count as logical bytes and, unreduced, in
//! every reduction stage; they are not on QLC. Extents waiting for release (`r/` deferred
//! releases, `layout/gc/` markers) still hold their chunks until GC: they are reported apart
//! as `pending_release`, not charged to any bucket.
//!
//! Cost: O(records + extent references + distinct chunks) point reads, no data I/O; callers
//! that serve it repeatedly should cache the result (the admin API does).

use std::collections::{BTreeMap, HashMap, HashSet};

use cairn_erasure::records::{id_from_key, GC_PREFIX};
use cairn_erasure::{ExtentId, Footprint, FootprintReader, LayoutError};
use cairn_protocols::store::StoreResult;

use super::blob::{BlockRec, BLOCK_ALL};
use super::record::{decode, ObjectRec, PartRec, Segment, SegmentData};
use super::{keys, retire, Engine, EngineError};

/// What one bucket holds and costs.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct BucketUsage {
    /// Current objects.
    pub objects: u64,
    /// Logical bytes of the current objects (the sum of their sizes).
    pub logical_bytes: u64,
    /// Logical bytes of uploads in progress: staged multipart parts and uncommitted blocks.
    pub staged_bytes: u64,
    /// Of the objects' and staged bytes, those kept inline in metadata records.
    pub inline_bytes: u64,
    /// The summed footprint of the extents the bucket's objects and staged pieces use.
    pub extents: Footprint,
}

impl BucketUsage {
    /// Logical bytes still in the SLC buffer (not reduced yet).
    pub fn slc_bytes(&self) -> f64 {
        self.extents.slc
    }
    /// Bytes left after exact dedup (inline bytes included as they are).
    pub fn after_dedup_bytes(&self) -> f64 {
        self.inline_bytes as f64 + self.extents.after_dedup
    }
    /// Bytes left after similarity (deltas at their encoded size).
    pub fn after_similarity_bytes(&self) -> f64 {
        self.inline_bytes as f64 + self.extents.after_similarity
    }
    /// Bytes left after compression: what is stored.
    pub fn after_compression_bytes(&self) -> f64 {
        self.inline_bytes as f64 + self.extents.after_compression
    }
    /// Bytes on QLC devices including parity (inline bytes live in metadata, not here).
    pub fn physical_bytes_with_parity(&self) -> f64 {
        self.extents.physical_with_parity
    }
    /// (logical + staged) / after compression; 1 when nothing is stored.
    pub fn reduction_ratio(&self) -> f64 {
        let stored = self.after_compression_bytes();
        if stored > 0.0 {
            (self.logical_bytes + self.staged_bytes) as f64 / stored
        } else {
            1.0
        }
    }

    fn add(&mut self, o: &BucketUsage) {
        self.objects += o.objects;
        self.logical_bytes += o.logical_bytes;
        self.staged_bytes += o.staged_bytes;
        self.inline_bytes += o.inline_bytes;
        self.extents += o.extents;
    }
}

/// The result of one accounting pass.
#[derive(Clone, Debug, Default)]
pub struct CapacityReport {
    /// Per bucket, keyed `account/bucket`.
    pub buckets: BTreeMap<String, BucketUsage>,
    /// The sum over all buckets.
    pub total: BucketUsage,
    /// Extents released but not yet collected (they still hold their chunks).
    pub pending_release: Footprint,
    /// Extents named by a record but missing from the layout (corruption; 0 when healthy).
    pub missing_extents: u64,
}

/// One record's reference to an extent: (bucket index, bytes of the extent it covers).
type Piece = (usize, u64);

impl Engine {
    /// Accounts every bucket from one metadata snapshot (see the module documentation for
    /// the attribution rule). Blocking: O(records + extent references + distinct chunks)
    /// metadata reads; run it off the async threads and cache it.
    pub fn capacity(&self) -> StoreResult<CapacityReport> {
        let snap = self.db.snapshot();
        let mut names: Vec<String> = Vec::new();
        let mut index: HashMap<String, usize> = HashMap::new();
        let mut usage: Vec<BucketUsage> = Vec::new();
        let mut refs: HashMap<u64, Vec<Piece>> = HashMap::new();
        // `min` components: 2 for a bucket record, more for what lives in a bucket.
        let mut bucket_of = |key: &[u8], min: usize, usage: &mut Vec<BucketUsage>| {
            let parts = keys::split(key);
            if parts.len() < min.max(2) {
                return None;
            }
            let name = format!(
                "{}/{}",
                String::from_utf8_lossy(parts[0]),
                String::from_utf8_lossy(parts[1])
            );
            Some(*index.entry(name.clone()).or_insert_with(|| {
                names.push(name);
                usage.push(BucketUsage::default());
                usage.len() - 1
            }))
        };
        let mut note = |b: usize, segs: &[Segment], usage: &mut Vec<BucketUsage>| {
            for s in segs {
                match s.data {
                    SegmentData::Inline { .. } => usage[b].inline_bytes += s.len,
                    SegmentData::Extent { id } => refs.entry(id).or_default().push((b, s.len)),
                }
            }
        };
        // Every bucket gets a row, empty ones too.
        for item in snap.scan_prefix(b"b/") {
            let (k, _) = item.map_err(EngineError::Db)?;
            bucket_of(&k, 2, &mut usage);
        }
        for item in snap.scan_prefix(b"o/") {
            let (k, v) = item.map_err(EngineError::Db)?;
            let Some(b) = bucket_of(&k, 3, &mut usage) else {
                continue;
            };
            let rec: ObjectRec = decode(&v)?;
            usage[b].objects += 1;
            usage[b].logical_bytes += rec.size;
            note(b, &rec.segments, &mut usage);
        }
        for item in snap.scan_prefix(b"p/") {
            let (k, v) = item.map_err(EngineError::Db)?;
            let Some(b) = bucket_of(&k, 3, &mut usage) else {
                continue;
            };
            let rec: PartRec = decode(&v)?;
            usage[b].staged_bytes += rec.size;
            note(b, &rec.segments, &mut usage);
        }
        for item in snap.scan_prefix(BLOCK_ALL) {
            let (k, v) = item.map_err(EngineError::Db)?;
            let Some(b) = bucket_of(&k, 3, &mut usage) else {
                continue;
            };
            let rec: BlockRec = decode(&v)?;
            let (size, segs) = rec.pieces();
            usage[b].staged_bytes += size;
            note(b, segs, &mut usage);
        }

        let mut reader = FootprintReader::at(snap.clone());
        let mut missing = 0u64;
        for (id, pieces) in &refs {
            let fp = match reader.extent(ExtentId(*id)) {
                Ok(f) => f,
                Err(LayoutError::NotFound(what)) => {
                    tracing::warn!(extent = id, %what, "capacity: a record names a missing extent");
                    missing += 1;
                    continue;
                }
                Err(e) => return Err(EngineError::Layout(e).into()),
            };
            let covered: u64 = pieces.iter().map(|(_, len)| *len).sum();
            for (b, len) in pieces {
                let f = if covered > 0 {
                    *len as f64 / covered as f64
                } else {
                    1.0 / pieces.len() as f64
                };
                usage[*b].extents += fp.scaled(f);
            }
        }

        // Released, not yet collected: deferred releases and the layout's GC markers.
        let mut pending: HashSet<u64> = HashSet::new();
        for item in snap.scan_prefix(retire::PREFIX) {
            let (k, _) = item.map_err(EngineError::Db)?;
            pending.extend(retire::id_of(&k));
        }
        for item in snap.scan_prefix(GC_PREFIX) {
            let (k, _) = item.map_err(EngineError::Db)?;
            pending.extend(id_from_key(GC_PREFIX, &k));
        }
        let mut pending_release = Footprint::default();
        for id in pending {
            if refs.contains_key(&id) {
                continue;
            }
            match reader.extent(ExtentId(id)) {
                Ok(f) => pending_release += f,
                Err(LayoutError::NotFound(_)) => {}
                Err(e) => return Err(EngineError::Layout(e).into()),
            }
        }

        let mut report = CapacityReport {
            pending_release,
            missing_extents: missing,
            ..CapacityReport::default()
        };
        for (name, u) in names.into_iter().zip(usage) {
            report.total.add(&u);
            report.buckets.insert(name, u);
        }
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::Arc;
    use std::time::Duration;

    use bytes::Bytes;
    use cairn_erasure::{DataStore, LayoutConfig};
    use cairn_metadata::{Db, Options, WriteBatch};

    use super::super::record::{encode, PropsRec};
    use super::super::{retire, EngineConfig};
    use super::*;
    use crate::metrics::Metrics;

    fn object(size: u64, segments: Vec<Segment>) -> ObjectRec {
        ObjectRec {
            size,
            mtime_ns: 1,
            md5: None,
            etag: "e".into(),
            parts_count: 1,
            props: PropsRec::default(),
            checksums: Vec::new(),
            tags: Vec::new(),
            segments,
            upload_id: None,
        }
    }

    fn ext(id: u64, len: u64) -> Segment {
        Segment {
            len,
            data: SegmentData::Extent { id },
        }
    }

    fn bytes(seed: u8, len: usize) -> Bytes {
        let mut x = u64::from(seed) | 0x9e37_79b9_0000_0000;
        Bytes::from(
            (0..len)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x as u8
                })
                .collect::<Vec<u8>>(),
        )
    }

    /// Records written by hand: one extent shared by objects in two buckets, an inline tail,
    /// a staged part, an empty bucket and a deferred release. Shares follow the rule before
    /// and after migration, and buckets + pending release add up to what the layout holds.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn shares_inline_staged_and_pending_release() {
        let dir = tempfile::tempdir().unwrap();
        let db = Arc::new(Db::open(dir.path().join("meta"), Options::default()).unwrap());
        let mut cfg = LayoutConfig::single_node(&dir.path().join("dev"));
        cfg.slc_segment_bytes = 4 << 20;
        cfg.slc_capacity_bytes = 64 << 20;
        cfg.migrate_after = Duration::from_secs(3600);
        let ds = DataStore::open(cfg, db.clone()).await.unwrap();
        let engine = Engine::new(
            db.clone(),
            ds.clone(),
            EngineConfig {
                accounts: BTreeMap::from([("acct".to_owned(), "key".to_owned())]),
                region: "us-east-1".into(),
                inline_max: 16 << 10,
                extent_bytes: 4 << 20,
                upload_expiry: Duration::from_secs(3600),
            },
            Arc::new(Metrics::default()),
        );
        let (xl, yl, zl) = (256u64 << 10, 100u64 << 10, 64u64 << 10);
        let x = ds.append(bytes(1, xl as usize)).await.unwrap();
        let y = ds.append(bytes(2, yl as usize)).await.unwrap();
        let z = ds.append(bytes(3, zl as usize)).await.unwrap();
        let mut b = WriteBatch::new();
        let (xi, yi, zi) = (
            ds.stage_commit(&mut b, &x).0,
            ds.stage_commit(&mut b, &y).0,
            ds.stage_commit(&mut b, &z).0,
        );
        for bucket in ["one", "two", "empty"] {
            b.put(keys::bucket("acct", bucket), b"\x01\x00");
        }
        let inline = Segment {
            len: 5,
            data: SegmentData::Inline {
                bytes: b"tail!".to_vec(),
                crc: crc32c::crc32c(b"tail!"),
            },
        };
        let o1 = object(xl + 5, vec![ext(xi, xl), inline]);
        b.put(keys::object("acct", "one", "k1"), encode(&o1).unwrap());
        let o2 = object(xl, vec![ext(xi, xl)]);
        b.put(keys::object("acct", "two", "k2"), encode(&o2).unwrap());
        let part = PartRec {
            size: yl,
            md5: [0; 16],
            mtime_ns: 1,
            checksums: Vec::new(),
            segments: vec![ext(yi, yl)],
        };
        b.put(
            keys::part("acct", "two", "upl", "00001"),
            encode(&part).unwrap(),
        );
        b.put(retire::key(zi), b"");
        db.write(b).unwrap();
        drop((x, y, z));

        let r = engine.capacity().unwrap();
        assert_eq!(r.buckets.len(), 3, "{r:?}");
        assert_eq!(r.buckets["acct/empty"], BucketUsage::default());
        let one = &r.buckets["acct/one"];
        let two = &r.buckets["acct/two"];
        let half = xl as f64 / 2.0;
        assert_eq!(
            (one.objects, one.logical_bytes, one.inline_bytes),
            (1, xl + 5, 5)
        );
        assert_eq!(
            (two.objects, two.logical_bytes, two.staged_bytes),
            (1, xl, yl)
        );
        assert_eq!(one.slc_bytes(), half);
        assert_eq!(one.after_dedup_bytes(), half + 5.0);
        assert_eq!(one.physical_bytes_with_parity(), 0.0);
        assert_eq!(two.slc_bytes(), half + yl as f64);
        assert_eq!(r.pending_release.slc, zl as f64);
        assert_eq!(r.total.slc_bytes(), xl as f64 + yl as f64);

        ds.flush().await.unwrap();
        let r = engine.capacity().unwrap();
        let one = &r.buckets["acct/one"];
        let two = &r.buckets["acct/two"];
        assert_eq!(one.slc_bytes(), 0.0);
        assert_eq!(one.after_dedup_bytes(), half + 5.0);
        assert!(one.physical_bytes_with_parity() > 0.0);
        // Random bytes are stored raw: physical = logical × (4+2)/4.
        assert!((one.physical_bytes_with_parity() - half * 1.5).abs() < 1e-6);
        let y_phys = two.physical_bytes_with_parity() - one.physical_bytes_with_parity();
        assert!((y_phys - yl as f64 * 1.5).abs() < 1e-6, "{y_phys}");
        // Buckets plus what waits for release are everything the layout holds live.
        let c = ds.counters();
        let held = r.total.extents.after_compression + r.pending_release.after_compression;
        assert!((held - c.live_bytes as f64).abs() < 1e-6, "{held} vs {c:?}");
        let phys = r.total.physical_bytes_with_parity() + r.pending_release.physical_with_parity;
        assert!(
            (phys - c.physical_live_bytes as f64).abs() < 2.0,
            "{phys} vs {c:?}"
        );
        assert_eq!(r.missing_extents, 0);
        ds.shutdown().await;
    }
}
