//! Space accounting per extent: what one extent costs at each reduction stage.
//!
//! Chunks are shared (dedup, repeats within an extent, delta bases), so an extent's cost
//! is a *share*. The rule is exact, so that summing the footprints of every extent that
//! holds a reference gives each chunk's bytes exactly once:
//!
//! * every chunk's figures are split evenly over its references (its `refcount`: one per
//!   occurrence in an extent's chunk list, one per delta naming it as base);
//! * a chunk's own figures are: after dedup = `logical_len`; after similarity =
//!   `stored_len` if it is a delta (has a `base`), else `logical_len`; after compression =
//!   `stored_len`; physical = `stored_len × (k+m)/k` of its stripe;
//! * a delta holds one reference on its base, and passes that reference's share on to
//!   whoever references the delta: an extent referencing delta `D` (refcount `r_D`) with
//!   base `B` (refcount `r_B`) is charged `D/r_D + (B/r_B)/r_D`;
//! * an extent still in the SLC buffer is not reduced yet: its logical length counts in
//!   [`Footprint::slc`] and in every reduction stage, and nothing on QLC.
//!
//! Figures are `f64` bytes: shares of shared chunks are fractions, and rounding them to
//! integers per extent would make per-bucket sums drift from the node total.
//!
//! All records are read from one metadata snapshot, so a pass sees one consistent state
//! even while migration, GC and reclaim run. A [`FootprintReader`] caches each chunk's
//! per-reference share and each stripe's geometry, so one accounting pass over many
//! extents costs O(extent references + distinct chunks) record reads.

use std::collections::HashMap;
use std::ops::{Add, AddAssign, Mul};

use cairn_metadata::Snapshot;

use crate::error::{LayoutError, Result};
use crate::records::{self, ChunkRecord, ExtentLoc, ExtentRecord, StripeRecord};
use crate::store::{DataStore, ExtentId};

/// Deepest base chain followed (chains are one level deep; anything longer is corruption).
const MAX_BASE_DEPTH: usize = 4;

/// What an extent (or a set of extents) costs at each stage, in bytes. See the module
/// documentation for the attribution rule.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Footprint {
    /// Logical bytes: what clients wrote.
    pub logical: f64,
    /// Logical bytes still in the SLC buffer (not migrated, not reduced yet).
    pub slc: f64,
    /// Bytes left after exact dedup (each distinct chunk once, at its logical length).
    pub after_dedup: f64,
    /// Bytes left after similarity: deltas at their encoded size, other chunks logical.
    pub after_similarity: f64,
    /// Bytes left after compression: stored bytes of the chunks.
    pub after_compression: f64,
    /// Bytes on QLC including parity: stored bytes × (k+m)/k of each chunk's stripe.
    pub physical_with_parity: f64,
}

impl Footprint {
    /// This footprint scaled by `f` (a fraction of an extent).
    pub fn scaled(&self, f: f64) -> Footprint {
        Footprint {
            logical: self.logical * f,
            slc: self.slc * f,
            after_dedup: self.after_dedup * f,
            after_similarity: self.after_similarity * f,
            after_compression: self.after_compression * f,
            physical_with_parity: self.physical_with_parity * f,
        }
    }
}

impl AddAssign for Footprint {
    fn add_assign(&mut self, o: Footprint) {
        self.logical += o.logical;
        self.slc += o.slc;
        self.after_dedup += o.after_dedup;
        self.after_similarity += o.after_similarity;
        self.after_compression += o.after_compression;
        self.physical_with_parity += o.physical_with_parity;
    }
}

impl Add for Footprint {
    type Output = Footprint;
    fn add(mut self, o: Footprint) -> Footprint {
        self += o;
        self
    }
}

impl Mul<f64> for Footprint {
    type Output = Footprint;
    fn mul(self, f: f64) -> Footprint {
        self.scaled(f)
    }
}

/// The cost of one reference to a chunk (its reduced stages only; logical bytes come
/// from the extent's own chunk list).
#[derive(Clone, Copy, Debug, Default)]
struct Share {
    after_dedup: f64,
    after_similarity: f64,
    after_compression: f64,
    physical: f64,
}

/// Computes extent footprints from one metadata snapshot, caching chunk shares and stripe
/// geometry across calls (chunk records are shared, so one accounting pass should use one
/// reader for all its extents).
pub struct FootprintReader {
    snap: Snapshot,
    shares: HashMap<u64, Share>,
    stripes: HashMap<u64, (u8, u8)>,
}

impl DataStore {
    /// A reader over a snapshot of the store's metadata taken now.
    pub fn footprint_reader(&self) -> FootprintReader {
        FootprintReader::at(self.db.snapshot())
    }

    /// The footprint of one extent, read from a fresh snapshot. For many extents use one
    /// [`FootprintReader`] (it caches the shared chunk records).
    pub fn extent_footprint(&self, id: ExtentId) -> Result<Footprint> {
        self.footprint_reader().extent(id)
    }
}

impl FootprintReader {
    /// A reader over `snap`, which must be a snapshot of the metadata store the layout uses.
    /// Callers that read their own records (object records naming extents) from the same
    /// snapshot get figures consistent with those records.
    pub fn at(snap: Snapshot) -> FootprintReader {
        FootprintReader {
            snap,
            shares: HashMap::new(),
            stripes: HashMap::new(),
        }
    }

    /// The footprint of extent `id`: the shares of every chunk reference it holds. Errors
    /// with [`LayoutError::NotFound`] when the extent (or a chunk or stripe it names) has no
    /// record in the snapshot.
    pub fn extent(&mut self, id: ExtentId) -> Result<Footprint> {
        let rec = match self.snap.get(&records::ext_key(id.0))? {
            Some(v) => ExtentRecord::decode(&v)?,
            None => return Err(LayoutError::NotFound(format!("extent {}", id.0))),
        };
        let len = rec.len as f64;
        match rec.loc {
            ExtentLoc::Slc { .. } => Ok(Footprint {
                logical: len,
                slc: len,
                after_dedup: len,
                after_similarity: len,
                after_compression: len,
                physical_with_parity: 0.0,
            }),
            ExtentLoc::Chunks(list) => {
                let mut f = Footprint {
                    logical: len,
                    ..Footprint::default()
                };
                for (cid, _) in list {
                    let s = self.share(cid, 0)?;
                    f.after_dedup += s.after_dedup;
                    f.after_similarity += s.after_similarity;
                    f.after_compression += s.after_compression;
                    f.physical_with_parity += s.physical;
                }
                Ok(f)
            }
        }
    }

    /// The footprints of many extents, in order (one reader, so shared chunks are read once).
    pub fn extents(&mut self, ids: &[ExtentId]) -> Result<Vec<Footprint>> {
        ids.iter().map(|id| self.extent(*id)).collect()
    }

    /// What one reference to chunk `id` costs: its own figures split over its refcount,
    /// plus (for a delta) the share of its base that its one base reference carries.
    fn share(&mut self, id: u64, depth: usize) -> Result<Share> {
        if let Some(s) = self.shares.get(&id) {
            return Ok(*s);
        }
        if depth > MAX_BASE_DEPTH {
            return Err(LayoutError::Corruption(format!(
                "chunk {id}: base chain deeper than {MAX_BASE_DEPTH}"
            )));
        }
        let c = match self.snap.get(&records::chunk_key(id))? {
            Some(v) => ChunkRecord::decode(&v)?,
            None => return Err(LayoutError::NotFound(format!("chunk {id}"))),
        };
        let (k, m) = self.geometry(c.stripe)?;
        let stored = c.stored_len as f64;
        let logical = c.logical_len as f64;
        let own = Share {
            after_dedup: logical,
            after_similarity: if c.base.is_some() { stored } else { logical },
            after_compression: stored,
            physical: stored * (k as f64 + m as f64) / (k.max(1) as f64),
        };
        let with_base = match c.base {
            Some(b) => {
                let bs = self.share(b, depth + 1)?;
                Share {
                    after_dedup: own.after_dedup + bs.after_dedup,
                    after_similarity: own.after_similarity + bs.after_similarity,
                    after_compression: own.after_compression + bs.after_compression,
                    physical: own.physical + bs.physical,
                }
            }
            None => own,
        };
        let r = c.refcount.max(1) as f64;
        let s = Share {
            after_dedup: with_base.after_dedup / r,
            after_similarity: with_base.after_similarity / r,
            after_compression: with_base.after_compression / r,
            physical: with_base.physical / r,
        };
        self.shares.insert(id, s);
        Ok(s)
    }

    /// (k, m) of stripe `id`.
    fn geometry(&mut self, id: u64) -> Result<(u8, u8)> {
        if let Some(g) = self.stripes.get(&id) {
            return Ok(*g);
        }
        let s = match self.snap.get(&records::stripe_key(id))? {
            Some(v) => StripeRecord::decode(&v)?,
            None => return Err(LayoutError::NotFound(format!("stripe {id}"))),
        };
        self.stripes.insert(id, (s.k, s.m));
        Ok((s.k, s.m))
    }
}
