//! The Blob head's storage on the engine ([`BlobStore`]): the same objects the S3 head sees,
//! plus what only Azure has — container metadata / access level / lease, the Blob ETag,
//! blob creation time and lease, committed block lists, staged (uncommitted) blocks, and
//! service properties. Blob-only state lives in side records next to the shared ones:
//!
//! | key | value |
//! |---|---|
//! | `C/<account>\0<container>` | [`ContainerSide`]: metadata, public access, lease, ETag |
//! | `B/<account>\0<container>\0<blob>` | [`BlobSide`]: created, lease, committed block list |
//! | `K/<account>\0<container>\0<blob>\0<block id>` | [`BlockRec`]: a staged block |
//! | `S/<account>` | the service properties document |
//!
//! The Blob ETag is derived from the object record's write time (`0x` + hex nanoseconds):
//! every content write (S3 or Blob) and every Blob property write stores a new time, and
//! nothing else does, so the ETag changes exactly when Azure's would. A [`BlobSide`]'s block
//! list belongs to the object version with the same write time; an S3 overwrite leaves it
//! stale, and stale side state is ignored.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ops::Bound;
use std::time::{Instant, SystemTime};

use base64::Engine as _;
use bytes::Bytes;
use cairn_metadata::WriteBatch;
use cairn_protocols::blob::error::BlobError;
use cairn_protocols::blob::lease::{Lease, LeaseOutcome};
use cairn_protocols::blob::store::{
    BlobInfo, BlobListPage, BlobRead, BlobStore, BlobUpdate, BlobWrite, BlockInfo, BlockLists,
    ContainerInfo, ContainerUpdate, PublicAccess,
};
use cairn_protocols::blob::xml::{BlockSource, MAX_COMMITTED_BLOCKS};
use cairn_protocols::checksum::BodyCheck;
use cairn_protocols::store::{
    ByteStream, CopySource, ListQuery, ObjectProps, ObjectStore, RangeSpec, StoreError,
};
use serde::{Deserialize, Serialize};

use super::ingest::{ingest, Ingested};
use super::record::*;
use super::{keys, list, Engine, EngineError};
use crate::metrics::Op;

/// Most staged blocks one blob may have.
const MAX_UNCOMMITTED_BLOCKS: usize = 100_000;
/// Keys deleted per batch when a container is deleted with its blobs.
const DELETE_BATCH: usize = 512;

/// A lease as stored.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct LeaseRec {
    id: Option<String>,
    until_ns: Option<u64>,
    broken: bool,
    duration_secs: i64,
}

impl From<&Lease> for LeaseRec {
    fn from(l: &Lease) -> Self {
        LeaseRec {
            id: l.id.clone(),
            until_ns: l.until.map(ns_of),
            broken: l.broken,
            duration_secs: l.duration_secs,
        }
    }
}

impl From<&LeaseRec> for Lease {
    fn from(l: &LeaseRec) -> Self {
        Lease {
            id: l.id.clone(),
            until: l.until_ns.map(time_of),
            broken: l.broken,
            duration_secs: l.duration_secs,
        }
    }
}

/// `C/` value.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ContainerSide {
    metadata: BTreeMap<String, String>,
    /// 0 off, 1 blob, 2 container.
    public_access: u8,
    lease: LeaseRec,
    /// Last write to the container's properties (0: never, use the creation time).
    mtime_ns: u64,
}

/// `B/` value.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct BlobSide {
    /// Write time of the object version this state belongs to.
    obj_mtime_ns: u64,
    /// When a blob was first created under this name.
    created_ns: u64,
    lease: LeaseRec,
    /// Committed block ids and sizes, in blob order (empty for single-shot writes).
    committed: Vec<(String, u64)>,
}

/// `K/` value: a staged block.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BlockRec {
    size: u64,
    /// Staging order, for Get Block List.
    staged_ns: u64,
    segments: Vec<Segment>,
}

/// Prefix of every staged block (`K/`).
pub(super) const BLOCK_ALL: &[u8] = b"K/";

impl BlockRec {
    /// The block's size and where its bytes are (for capacity accounting).
    pub(super) fn pieces(&self) -> (u64, &[Segment]) {
        (self.size, &self.segments)
    }
}

fn ns_of(t: SystemTime) -> u64 {
    t.duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

fn access_code(a: PublicAccess) -> u8 {
    match a {
        PublicAccess::Off => 0,
        PublicAccess::Blob => 1,
        PublicAccess::Container => 2,
    }
}

fn access_of(c: u8) -> PublicAccess {
    match c {
        1 => PublicAccess::Blob,
        2 => PublicAccess::Container,
        _ => PublicAccess::Off,
    }
}

/// The Blob ETag of an object version written at `mtime_ns`.
pub fn blob_etag(mtime_ns: u64) -> String {
    format!("0x{mtime_ns:X}")
}

fn container_key(account: &str, container: &str) -> Vec<u8> {
    join(b"C/", &[account, container])
}

fn side_key(account: &str, container: &str, blob: &str) -> Vec<u8> {
    join(b"B/", &[account, container, blob])
}

fn block_key(account: &str, container: &str, blob: &str, id: &str) -> Vec<u8> {
    join(b"K/", &[account, container, blob, id])
}

fn block_prefix(account: &str, container: &str, blob: &str) -> Vec<u8> {
    let mut k = join(b"K/", &[account, container, blob]);
    k.push(0);
    k
}

fn container_blocks_prefix(account: &str, container: &str) -> Vec<u8> {
    let mut k = join(b"K/", &[account, container]);
    k.push(0);
    k
}

fn service_key(account: &str) -> Vec<u8> {
    join(b"S/", &[account])
}

fn join(tag: &[u8], parts: &[&str]) -> Vec<u8> {
    let mut k = tag.to_vec();
    for (i, p) in parts.iter().enumerate() {
        if i > 0 {
            k.push(0);
        }
        k.extend_from_slice(p.as_bytes());
    }
    k
}

fn blob_name_ok(blob: &str) -> Result<(), BlobError> {
    if blob.contains('\0') {
        return Err(BlobError::invalid_resource_name(
            "Blob names must not contain NUL.",
        ));
    }
    Ok(())
}

fn decoded_len(block_id: &str) -> usize {
    base64::engine::general_purpose::STANDARD
        .decode(block_id)
        .map(|b| b.len())
        .unwrap_or(0)
}

/// The segments of each block of an object committed from `blocks`, in order. The object's
/// segments were built by concatenating block segments, so block boundaries fall on segment
/// boundaries; anything else is a corrupt record.
fn split_by_blocks(
    segments: &[Segment],
    blocks: &[(String, u64)],
) -> Result<Vec<Vec<Segment>>, EngineError> {
    let mut out = Vec::with_capacity(blocks.len());
    let mut segs = segments.iter();
    for (id, size) in blocks {
        let mut need = *size;
        let mut mine = Vec::new();
        while need > 0 {
            let s = segs
                .next()
                .ok_or_else(|| EngineError::Corrupt(format!("block {id} runs past the object")))?;
            if s.len > need {
                return Err(EngineError::Corrupt(format!("block {id} splits a segment")));
            }
            need -= s.len;
            mine.push(s.clone());
        }
        out.push(mine);
    }
    Ok(out)
}

impl Engine {
    fn container_side(&self, account: &str, container: &str) -> Result<ContainerSide, EngineError> {
        Ok(self
            .get::<ContainerSide>(&container_key(account, container))?
            .unwrap_or_default())
    }

    fn container_info(&self, account: &str, container: &str) -> Result<ContainerInfo, BlobError> {
        let bucket = self.bucket_rec(account, container)?;
        let side = self
            .container_side(account, container)
            .map_err(StoreError::from)?;
        let mtime = if side.mtime_ns == 0 {
            bucket.created_ns
        } else {
            side.mtime_ns
        };
        Ok(ContainerInfo {
            name: container.to_owned(),
            last_modified: time_of(mtime),
            etag: blob_etag(mtime),
            metadata: side.metadata,
            public_access: access_of(side.public_access),
            lease: Lease::from(&side.lease),
        })
    }

    /// The fresh side state of `obj` (a stale or missing one yields defaults).
    fn blob_side(
        &self,
        account: &str,
        container: &str,
        blob: &str,
        obj: &ObjectRec,
    ) -> Result<BlobSide, EngineError> {
        let side = self.get::<BlobSide>(&side_key(account, container, blob))?;
        Ok(match side {
            Some(s) if s.obj_mtime_ns == obj.mtime_ns => s,
            Some(s) => BlobSide {
                obj_mtime_ns: obj.mtime_ns,
                created_ns: s.created_ns.min(obj.mtime_ns),
                lease: s.lease,
                committed: Vec::new(),
            },
            None => BlobSide {
                obj_mtime_ns: obj.mtime_ns,
                created_ns: obj.mtime_ns,
                ..Default::default()
            },
        })
    }

    fn blob_info_of(&self, blob: &str, obj: &ObjectRec, side: &BlobSide) -> BlobInfo {
        BlobInfo {
            object: obj.info(blob),
            etag: blob_etag(obj.mtime_ns),
            created: time_of(side.created_ns),
            lease: Lease::from(&side.lease),
        }
    }

    /// The current object and its side state, or `None` if there is no committed blob.
    fn current_blob(
        &self,
        account: &str,
        container: &str,
        blob: &str,
    ) -> Result<Option<(ObjectRec, BlobSide)>, BlobError> {
        self.bucket_rec(account, container)?;
        let Some(obj) = self
            .get::<ObjectRec>(&keys::object(account, container, blob))
            .map_err(StoreError::from)?
        else {
            return Ok(None);
        };
        let side = self
            .blob_side(account, container, blob, &obj)
            .map_err(StoreError::from)?;
        Ok(Some((obj, side)))
    }

    fn check_blob_write(
        &self,
        current: Option<&(ObjectRec, BlobSide)>,
        write: &BlobWrite,
    ) -> Result<(), BlobError> {
        let now = SystemTime::now();
        match current {
            Some((obj, side)) => {
                Lease::from(&side.lease).check_write(write.lease_id.as_deref(), now, true)?;
                let etag = blob_etag(obj.mtime_ns);
                write
                    .conditions
                    .check_write(Some((&etag, time_of(obj.mtime_ns))))
            }
            None => {
                if write.lease_id.is_some() {
                    return Err(BlobError::new(
                        http::StatusCode::PRECONDITION_FAILED,
                        "LeaseNotPresentWithBlobOperation",
                        "There is currently no lease on the blob.",
                    ));
                }
                write.conditions.check_write(None)
            }
        }
    }

    fn staged_blocks(
        &self,
        account: &str,
        container: &str,
        blob: &str,
    ) -> Result<Vec<(Vec<u8>, String, BlockRec)>, EngineError> {
        let prefix = block_prefix(account, container, blob);
        let mut out = Vec::new();
        for item in self.db.scan_prefix(&prefix) {
            let (k, v) = item?;
            let id = String::from_utf8_lossy(&k[prefix.len()..]).into_owned();
            out.push((k.to_vec(), id, decode::<BlockRec>(&v)?));
        }
        Ok(out)
    }

    /// Commits a new version of a blob: the object record, its side state, staged-block
    /// cleanup and extent bookkeeping in one batch. Extents of the old version and of
    /// discarded staged blocks are released unless the new version still uses them.
    #[allow(clippy::too_many_arguments)]
    async fn commit_blob(
        &self,
        account: &str,
        container: &str,
        blob: &str,
        old: Option<&(ObjectRec, BlobSide)>,
        rec: ObjectRec,
        committed: Vec<(String, u64)>,
        pending: Vec<cairn_erasure::NewExtent>,
        discard_staged: bool,
    ) -> Result<BlobInfo, BlobError> {
        let mut batch = WriteBatch::new();
        self.stage_new(&mut batch, &pending);
        let keep: BTreeSet<u64> = rec.extents().collect();
        let mut release: BTreeSet<u64> = BTreeSet::new();
        if let Some((o, _)) = old {
            release.extend(o.extents());
        }
        if discard_staged {
            for (k, _, b) in self
                .staged_blocks(account, container, blob)
                .map_err(StoreError::from)?
            {
                release.extend(extent_ids(&b.segments));
                batch.delete(&k);
            }
        }
        self.release(&mut batch, release.difference(&keep).copied());
        let side = BlobSide {
            obj_mtime_ns: rec.mtime_ns,
            created_ns: old.map_or(rec.mtime_ns, |(_, s)| s.created_ns),
            lease: old.map(|(_, s)| s.lease.clone()).unwrap_or_default(),
            committed,
        };
        batch.put(
            keys::object(account, container, blob),
            encode(&rec).map_err(StoreError::from)?,
        );
        batch.put(
            side_key(account, container, blob),
            encode(&side).map_err(StoreError::from)?,
        );
        self.write(batch).await.map_err(StoreError::from)?;
        drop(pending);
        Ok(self.blob_info_of(blob, &rec, &side))
    }

    /// Replaces the blob with `rec` (a single-piece write: no block list) once the lease and
    /// conditions hold under the blob's lock.
    #[allow(clippy::too_many_arguments)]
    async fn replace_blob(
        &self,
        account: &str,
        container: &str,
        blob: &str,
        rec: ObjectRec,
        pending: Vec<cairn_erasure::NewExtent>,
        write: &BlobWrite,
        discard_staged: bool,
    ) -> Result<BlobInfo, BlobError> {
        let okey = keys::object(account, container, blob);
        let _g = self.obj_locks.lock(&okey).await;
        let current = self.current_blob(account, container, blob)?;
        self.check_blob_write(current.as_ref(), write)?;
        self.commit_blob(
            account,
            container,
            blob,
            current.as_ref(),
            rec,
            Vec::new(),
            pending,
            discard_staged,
        )
        .await
    }

    async fn stage_block(
        &self,
        account: &str,
        container: &str,
        blob: &str,
        block_id: &str,
        ing: Ingested,
        lease_id: Option<&str>,
    ) -> Result<(), BlobError> {
        let okey = keys::object(account, container, blob);
        let _g = self.obj_locks.lock(&okey).await;
        let current = self.current_blob(account, container, blob)?;
        if let Some((_, side)) = &current {
            Lease::from(&side.lease).check_write(lease_id, SystemTime::now(), true)?;
        }
        // Every block id of a blob has the same decoded length.
        let prefix = block_prefix(account, container, blob);
        let mut staged_count = 0usize;
        let mut replaces = None;
        for item in self.db.scan_prefix(&prefix) {
            let (k, v) = item.map_err(|e| StoreError::from(EngineError::Db(e)))?;
            let id = String::from_utf8_lossy(&k[prefix.len()..]).into_owned();
            if staged_count == 0 && decoded_len(&id) != decoded_len(block_id) {
                return Err(invalid_blob_or_block());
            }
            if id == block_id {
                replaces = Some(decode::<BlockRec>(&v).map_err(StoreError::from)?);
            }
            staged_count += 1;
        }
        if let Some((_, side)) = &current {
            if let Some((id, _)) = side.committed.first() {
                if decoded_len(id) != decoded_len(block_id) {
                    return Err(invalid_blob_or_block());
                }
            }
        }
        if replaces.is_none() && staged_count >= MAX_UNCOMMITTED_BLOCKS {
            return Err(BlobError::new(
                http::StatusCode::CONFLICT,
                "BlockCountExceedsLimit",
                "The uncommitted block count cannot exceed the maximum limit of 100,000 blocks.",
            ));
        }
        let rec = BlockRec {
            size: ing.digests.len,
            staged_ns: now_ns(),
            segments: ing.segments,
        };
        let mut batch = WriteBatch::new();
        self.stage_new(&mut batch, &ing.pending);
        if let Some(old) = &replaces {
            self.release(&mut batch, extent_ids(&old.segments));
        }
        batch.put(
            block_key(account, container, blob, block_id),
            encode(&rec).map_err(StoreError::from)?,
        );
        self.write(batch).await.map_err(StoreError::from)?;
        drop(ing.pending);
        Ok(())
    }

    fn source_rec(&self, src_account: &str, src: &CopySource) -> Result<ObjectRec, BlobError> {
        Ok(self.object_rec(src_account, &src.bucket, &src.key)?)
    }

    fn observe_blob<T>(&self, op: Op, start: Instant, r: &Result<T, BlobError>, bytes: u64) {
        self.metrics.observe(op, start, r.is_ok(), bytes);
    }
}

fn invalid_blob_or_block() -> BlobError {
    BlobError::new(
        http::StatusCode::BAD_REQUEST,
        "InvalidBlobOrBlock",
        "The specified blob or block content is invalid: all block ids of a blob must have the same length.",
    )
}

#[async_trait::async_trait]
impl BlobStore for Engine {
    async fn create_container(
        &self,
        account: &str,
        container: &str,
        metadata: BTreeMap<String, String>,
        access: PublicAccess,
    ) -> Result<ContainerInfo, BlobError> {
        let t = Instant::now();
        let r = async {
            self.check_account(account)?;
            let bkey = keys::bucket(account, container);
            let _g = self.obj_locks.lock(&bkey).await;
            if self
                .db
                .get(&bkey)
                .map_err(|e| StoreError::from(EngineError::Db(e)))?
                .is_some()
            {
                return Err(BlobError::container_already_exists());
            }
            let created_ns = now_ns();
            let side = ContainerSide {
                metadata,
                public_access: access_code(access),
                lease: LeaseRec::default(),
                mtime_ns: created_ns,
            };
            let mut batch = WriteBatch::new();
            batch.put(
                &bkey,
                encode(&BucketRec { created_ns }).map_err(StoreError::from)?,
            );
            batch.put(
                container_key(account, container),
                encode(&side).map_err(StoreError::from)?,
            );
            self.write(batch).await.map_err(StoreError::from)?;
            self.container_info(account, container)
        }
        .await;
        self.observe_blob(Op::CreateBucket, t, &r, 0);
        r
    }

    async fn container(&self, account: &str, container: &str) -> Result<ContainerInfo, BlobError> {
        let t = Instant::now();
        let r = self.container_info(account, container);
        self.observe_blob(Op::HeadBucket, t, &r, 0);
        r
    }

    async fn list_containers(
        &self,
        account: &str,
        prefix: &str,
        marker: Option<&str>,
        max: usize,
    ) -> Result<(Vec<ContainerInfo>, Option<String>), BlobError> {
        let t = Instant::now();
        let r = (|| {
            self.check_account(account)?;
            let base = keys::bucket_prefix(account);
            let mut scan = base.clone();
            scan.extend_from_slice(prefix.as_bytes());
            let mut names = Vec::new();
            let mut next = None;
            for item in self.db.snapshot().scan_prefix(&scan) {
                let (k, _) = item.map_err(|e| StoreError::from(EngineError::Db(e)))?;
                let name = String::from_utf8_lossy(&k[base.len()..]).into_owned();
                if marker.is_some_and(|m| name.as_str() <= m) {
                    continue;
                }
                if names.len() == max {
                    next = names.last().cloned();
                    break;
                }
                names.push(name);
            }
            let mut out = Vec::with_capacity(names.len());
            for n in names {
                match self.container_info(account, &n) {
                    Ok(c) => out.push(c),
                    Err(e) if e.code == "ContainerNotFound" => {}
                    Err(e) => return Err(e),
                }
            }
            Ok((out, next))
        })();
        self.observe_blob(Op::ListBuckets, t, &r, 0);
        r
    }

    async fn update_container(
        &self,
        account: &str,
        container: &str,
        update: ContainerUpdate,
        write: &BlobWrite,
    ) -> Result<(ContainerInfo, Option<LeaseOutcome>), BlobError> {
        let bkey = keys::bucket(account, container);
        let _g = self.obj_locks.lock(&bkey).await;
        let info = self.container_info(account, container)?;
        let now = SystemTime::now();
        write
            .conditions
            .check_write(Some((&info.etag, info.last_modified)))?;
        let mut side = self
            .container_side(account, container)
            .map_err(StoreError::from)?;
        let mut outcome = None;
        if let Some(action) = &update.lease {
            let (lease, out) = info.lease.apply(action, now, new_lease_id)?;
            side.lease = LeaseRec::from(&lease);
            outcome = Some(out);
        } else {
            info.lease
                .check_write(write.lease_id.as_deref(), now, false)?;
        }
        let touches_props = update.metadata.is_some() || update.public_access.is_some();
        if let Some(m) = update.metadata {
            side.metadata = m;
        }
        if let Some(a) = update.public_access {
            side.public_access = access_code(a);
        }
        if touches_props || side.mtime_ns == 0 {
            side.mtime_ns = if touches_props {
                now_ns()
            } else {
                ns_of(info.last_modified)
            };
        }
        let mut batch = WriteBatch::new();
        batch.put(
            container_key(account, container),
            encode(&side).map_err(StoreError::from)?,
        );
        self.write(batch).await.map_err(StoreError::from)?;
        Ok((self.container_info(account, container)?, outcome))
    }

    async fn delete_container(
        &self,
        account: &str,
        container: &str,
        write: &BlobWrite,
    ) -> Result<(), BlobError> {
        let t = Instant::now();
        let r = async {
            let bkey = keys::bucket(account, container);
            let _g = self.obj_locks.lock(&bkey).await;
            let info = self.container_info(account, container)?;
            let now = SystemTime::now();
            info.lease
                .check_write(write.lease_id.as_deref(), now, false)?;
            write
                .conditions
                .check_write(Some((&info.etag, info.last_modified)))?;
            // Azure deletes a container with everything in it. Objects go first, in batches,
            // then staged state, then the container record itself: a crash part-way leaves a
            // smaller container, never a record pointing at released data.
            let dbe = |e| StoreError::from(EngineError::Db(e));
            loop {
                let mut batch = WriteBatch::new();
                let mut n = 0;
                for item in self
                    .db
                    .scan_prefix(&keys::object_prefix(account, container))
                    .take(DELETE_BATCH)
                {
                    let (k, v) = item.map_err(dbe)?;
                    let rec: ObjectRec = decode(&v).map_err(StoreError::from)?;
                    let ids: BTreeSet<u64> = rec.extents().collect();
                    self.release(&mut batch, ids.into_iter());
                    batch.delete(&k);
                    n += 1;
                }
                if n == 0 {
                    break;
                }
                self.write(batch).await.map_err(StoreError::from)?;
            }
            let uploads: Vec<(String, String)> = self
                .list_uploads(account, container, "")
                .await?
                .into_iter()
                .map(|u| (u.key, u.upload_id))
                .collect();
            for (k, id) in uploads {
                match self.abort_inner(account, container, &k, &id).await {
                    Ok(()) | Err(StoreError::NoSuchUpload(_)) => {}
                    Err(e) => return Err(e.into()),
                }
            }
            let mut batch = WriteBatch::new();
            for item in self
                .db
                .scan_prefix(&container_blocks_prefix(account, container))
            {
                let (k, v) = item.map_err(dbe)?;
                let b: BlockRec = decode(&v).map_err(StoreError::from)?;
                self.release(&mut batch, extent_ids(&b.segments));
                batch.delete(&k);
            }
            let mut side_prefix = join(b"B/", &[account, container]);
            side_prefix.push(0);
            for item in self.db.scan_prefix(&side_prefix) {
                let (k, _) = item.map_err(dbe)?;
                batch.delete(&k);
            }
            batch.delete(container_key(account, container));
            batch.delete(&bkey);
            self.write(batch).await.map_err(StoreError::from)?;
            Ok(())
        }
        .await;
        self.observe_blob(Op::DeleteBucket, t, &r, 0);
        r
    }

    async fn blob(
        &self,
        account: &str,
        container: &str,
        blob: &str,
    ) -> Result<BlobInfo, BlobError> {
        let t = Instant::now();
        let r = self
            .current_blob(account, container, blob)
            .and_then(|c| c.ok_or_else(BlobError::blob_not_found))
            .map(|(o, s)| self.blob_info_of(blob, &o, &s));
        self.observe_blob(Op::HeadObject, t, &r, 0);
        r
    }

    async fn read_blob(
        &self,
        account: &str,
        container: &str,
        blob: &str,
        range: Option<RangeSpec>,
        read: &BlobWrite,
    ) -> Result<BlobRead, BlobError> {
        let t = Instant::now();
        let r = (|| {
            let pin = self.pin();
            let (obj, side) = self
                .current_blob(account, container, blob)?
                .ok_or_else(BlobError::blob_not_found)?;
            let info = self.blob_info_of(blob, &obj, &side);
            info.lease
                .check_read(read.lease_id.as_deref(), SystemTime::now(), true)?;
            let (resolved, body) = self.read_object(&obj, range, pin)?;
            Ok(BlobRead {
                info,
                range: resolved,
                body,
            })
        })();
        let n = r
            .as_ref()
            .map(|g| g.range.map_or(g.info.object.size, |(a, b)| b - a + 1))
            .unwrap_or(0);
        self.observe_blob(Op::GetObject, t, &r, n);
        r
    }

    async fn put_blob(
        &self,
        account: &str,
        container: &str,
        blob: &str,
        props: ObjectProps,
        tags: Vec<(String, String)>,
        stored_md5: Option<[u8; 16]>,
        body: ByteStream,
        check: BodyCheck,
        write: &BlobWrite,
    ) -> Result<BlobInfo, BlobError> {
        let t = Instant::now();
        let r = async {
            blob_name_ok(blob)?;
            // Cheap checks before the body is read; repeated under the lock at commit.
            let current = self.current_blob(account, container, blob)?;
            self.check_blob_write(current.as_ref(), write)?;
            let ing = ingest(&self.ds, body, check, self.limits()).await?;
            let (mut rec, pending) = ing.into_record(props.into(), tags);
            if stored_md5.is_some() {
                rec.md5 = stored_md5;
            }
            self.replace_blob(account, container, blob, rec, pending, write, true)
                .await
        }
        .await;
        let n = r.as_ref().map(|i| i.object.size).unwrap_or(0);
        self.observe_blob(Op::PutObject, t, &r, n);
        r
    }

    async fn copy_blob(
        &self,
        src_account: &str,
        src: CopySource,
        account: &str,
        container: &str,
        blob: &str,
        metadata: Option<BTreeMap<String, String>>,
        write: &BlobWrite,
    ) -> Result<BlobInfo, BlobError> {
        let t = Instant::now();
        let r = async {
            blob_name_ok(blob)?;
            self.bucket_rec(account, container)?;
            let pin = self.pin();
            let s = self.source_rec(src_account, &src)?;
            let body = self.copy_stream(&s, src.range, pin);
            let ing = ingest(&self.ds, body, BodyCheck::default(), self.limits()).await?;
            let mut props = s.props.clone();
            if let Some(m) = metadata {
                props.user_metadata = m;
            }
            let (mut rec, pending) = ing.into_record(props, s.tags.clone());
            // The source's Content-MD5 is copied only when the copy is the whole blob.
            if src.range.is_none() && s.md5.is_some() {
                rec.md5 = s.md5;
            }
            self.replace_blob(account, container, blob, rec, pending, write, false)
                .await
        }
        .await;
        let n = r.as_ref().map(|i| i.object.size).unwrap_or(0);
        self.observe_blob(Op::CopyObject, t, &r, n);
        r
    }

    async fn update_blob(
        &self,
        account: &str,
        container: &str,
        blob: &str,
        update: BlobUpdate,
        write: &BlobWrite,
    ) -> Result<(BlobInfo, Option<LeaseOutcome>), BlobError> {
        let okey = keys::object(account, container, blob);
        let _g = self.obj_locks.lock(&okey).await;
        let (mut obj, mut side) = self
            .current_blob(account, container, blob)?
            .ok_or_else(BlobError::blob_not_found)?;
        let now = SystemTime::now();
        let etag = blob_etag(obj.mtime_ns);
        write
            .conditions
            .check_write(Some((&etag, time_of(obj.mtime_ns))))?;
        let lease = Lease::from(&side.lease);
        let mut outcome = None;
        if let Some(action) = &update.lease {
            let (l, out) = lease.apply(action, now, new_lease_id)?;
            side.lease = LeaseRec::from(&l);
            outcome = Some(out);
        } else {
            lease.check_write(write.lease_id.as_deref(), now, true)?;
        }
        // Property and metadata writes make a new version time (new ETag, Last-Modified);
        // lease and tag changes do not, as in Azure.
        let new_version = update.props.is_some() || update.metadata.is_some();
        if let Some(p) = update.props {
            obj.props = p.into();
        }
        if let Some(md5) = update.md5 {
            obj.md5 = md5;
        }
        if let Some(m) = update.metadata {
            obj.props.user_metadata = m;
        }
        if let Some(tags) = update.tags {
            obj.tags = tags;
        }
        if new_version {
            obj.mtime_ns = now_ns();
        }
        side.obj_mtime_ns = obj.mtime_ns;
        let mut batch = WriteBatch::new();
        batch.put(&okey, encode(&obj).map_err(StoreError::from)?);
        batch.put(
            side_key(account, container, blob),
            encode(&side).map_err(StoreError::from)?,
        );
        self.write(batch).await.map_err(StoreError::from)?;
        Ok((self.blob_info_of(blob, &obj, &side), outcome))
    }

    async fn delete_blob(
        &self,
        account: &str,
        container: &str,
        blob: &str,
        write: &BlobWrite,
    ) -> Result<(), BlobError> {
        let t = Instant::now();
        let r = async {
            let okey = keys::object(account, container, blob);
            let _g = self.obj_locks.lock(&okey).await;
            let current = self
                .current_blob(account, container, blob)?
                .ok_or_else(BlobError::blob_not_found)?;
            self.check_blob_write(Some(&current), write)?;
            let mut batch = WriteBatch::new();
            let mut release: BTreeSet<u64> = current.0.extents().collect();
            for (k, _, b) in self
                .staged_blocks(account, container, blob)
                .map_err(StoreError::from)?
            {
                release.extend(extent_ids(&b.segments));
                batch.delete(&k);
            }
            self.release(&mut batch, release.into_iter());
            batch.delete(&okey);
            batch.delete(side_key(account, container, blob));
            self.write(batch).await.map_err(StoreError::from)?;
            Ok(())
        }
        .await;
        self.observe_blob(Op::DeleteObject, t, &r, 0);
        r
    }

    async fn put_block(
        &self,
        account: &str,
        container: &str,
        blob: &str,
        block_id: &str,
        body: ByteStream,
        check: BodyCheck,
        lease_id: Option<&str>,
    ) -> Result<(), BlobError> {
        let t = Instant::now();
        let mut size = 0;
        let r = async {
            blob_name_ok(blob)?;
            self.bucket_rec(account, container)?;
            let ing = ingest(&self.ds, body, check, self.limits()).await?;
            size = ing.digests.len;
            self.stage_block(account, container, blob, block_id, ing, lease_id)
                .await
        }
        .await;
        self.observe_blob(Op::StagePart, t, &r, size);
        r
    }

    async fn put_block_from(
        &self,
        src_account: &str,
        src: CopySource,
        account: &str,
        container: &str,
        blob: &str,
        block_id: &str,
        lease_id: Option<&str>,
    ) -> Result<(), BlobError> {
        let t = Instant::now();
        let mut size = 0;
        let r = async {
            blob_name_ok(blob)?;
            self.bucket_rec(account, container)?;
            let pin = self.pin();
            let s = self.source_rec(src_account, &src)?;
            if let Some((first, last)) = src.range {
                if first >= s.size || last >= s.size {
                    return Err(BlobError::invalid_range());
                }
            }
            let body = self.copy_stream(&s, src.range, pin);
            let ing = ingest(&self.ds, body, BodyCheck::default(), self.limits()).await?;
            size = ing.digests.len;
            self.stage_block(account, container, blob, block_id, ing, lease_id)
                .await
        }
        .await;
        self.observe_blob(Op::StagePart, t, &r, size);
        r
    }

    async fn commit_blocks(
        &self,
        account: &str,
        container: &str,
        blob: &str,
        blocks: Vec<(BlockSource, String)>,
        props: ObjectProps,
        tags: Vec<(String, String)>,
        stored_md5: Option<[u8; 16]>,
        write: &BlobWrite,
    ) -> Result<BlobInfo, BlobError> {
        let t = Instant::now();
        let r = async {
            blob_name_ok(blob)?;
            if blocks.len() > MAX_COMMITTED_BLOCKS {
                return Err(BlobError::invalid_block_list());
            }
            let okey = keys::object(account, container, blob);
            let _g = self.obj_locks.lock(&okey).await;
            let current = self.current_blob(account, container, blob)?;
            self.check_blob_write(current.as_ref(), write)?;
            let staged: BTreeMap<String, BlockRec> = self
                .staged_blocks(account, container, blob)
                .map_err(StoreError::from)?
                .into_iter()
                .map(|(_, id, b)| (id, b))
                .collect();
            let committed: BTreeMap<String, (u64, Vec<Segment>)> = match &current {
                Some((obj, side)) if !side.committed.is_empty() => {
                    let pieces = split_by_blocks(&obj.segments, &side.committed)
                        .map_err(StoreError::from)?;
                    side.committed
                        .iter()
                        .zip(pieces)
                        .map(|((id, size), segs)| (id.clone(), (*size, segs)))
                        .collect()
                }
                _ => BTreeMap::new(),
            };
            let mut segments = Vec::new();
            let mut list = Vec::with_capacity(blocks.len());
            let mut size = 0u64;
            for (source, id) in &blocks {
                let from_staged = || staged.get(id).map(|b| (b.size, b.segments.clone()));
                let from_committed = || committed.get(id).cloned();
                let found = match source {
                    BlockSource::Uncommitted => from_staged(),
                    BlockSource::Committed => from_committed(),
                    BlockSource::Latest => from_staged().or_else(from_committed),
                };
                let Some((bsize, segs)) = found else {
                    return Err(BlobError::invalid_block_list());
                };
                size += bsize;
                segments.extend(segs);
                list.push((id.clone(), bsize));
            }
            let rec = ObjectRec {
                size,
                mtime_ns: now_ns(),
                md5: stored_md5,
                etag: format!("{}-{}", hex::encode(md5_of_ids(&list)), list.len()),
                parts_count: list.len().max(1) as u32,
                props: props.into(),
                checksums: Vec::new(),
                tags,
                segments,
                upload_id: None,
            };
            self.commit_blob(
                account,
                container,
                blob,
                current.as_ref(),
                rec,
                list,
                Vec::new(),
                true,
            )
            .await
        }
        .await;
        let n = r.as_ref().map(|i| i.object.size).unwrap_or(0);
        self.observe_blob(Op::CommitUpload, t, &r, n);
        r
    }

    async fn block_lists(
        &self,
        account: &str,
        container: &str,
        blob: &str,
    ) -> Result<BlockLists, BlobError> {
        let current = self.current_blob(account, container, blob)?;
        let mut staged = self
            .staged_blocks(account, container, blob)
            .map_err(StoreError::from)?;
        staged.sort_by_key(|(_, _, b)| b.staged_ns);
        Ok(BlockLists {
            committed: current
                .as_ref()
                .map(|(_, s)| {
                    s.committed
                        .iter()
                        .map(|(id, size)| BlockInfo {
                            id: id.clone(),
                            size: *size,
                        })
                        .collect()
                })
                .unwrap_or_default(),
            uncommitted: staged
                .into_iter()
                .map(|(_, id, b)| BlockInfo { id, size: b.size })
                .collect(),
            blob: current.map(|(o, s)| self.blob_info_of(blob, &o, &s)),
        })
    }

    async fn list_blobs(
        &self,
        account: &str,
        container: &str,
        query: ListQuery,
        include_uncommitted: bool,
    ) -> Result<BlobListPage, BlobError> {
        let t = Instant::now();
        let r = (|| {
            self.bucket_rec(account, container)?;
            let snap = self.db.snapshot();
            let page = list::list(&snap, &keys::object_prefix(account, container), &query)
                .map_err(StoreError::from)?;
            // The side records of the page's blobs, read in one range scan (they sort like
            // the object keys) rather than one lookup per blob — unless a delimiter rolled
            // "directories" up, whose side records would lie inside that range too.
            let mut sides: HashMap<String, BlobSide> = HashMap::new();
            let contiguous = page.common_prefixes.is_empty();
            if let (true, Some(first), Some(last)) =
                (contiguous, page.objects.first(), page.objects.last())
            {
                let lo = side_key(account, container, &first.key);
                let hi = side_key(account, container, &last.key);
                let prefix_len = side_key(account, container, "").len();
                for item in snap.range(
                    Bound::Included(lo.as_slice()),
                    Bound::Included(hi.as_slice()),
                ) {
                    let (k, v) = item.map_err(|e| StoreError::from(EngineError::Db(e)))?;
                    let name = String::from_utf8_lossy(&k[prefix_len..]).into_owned();
                    sides.insert(name, decode::<BlobSide>(&v).map_err(StoreError::from)?);
                }
            }
            let mut blobs = Vec::with_capacity(page.objects.len());
            for info in page.objects {
                let mtime = ns_of(info.last_modified);
                let side = match sides.remove(&info.key) {
                    Some(s) => Some(s),
                    None if contiguous => None,
                    None => snap
                        .get(&side_key(account, container, &info.key))
                        .map_err(|e| StoreError::from(EngineError::Db(e)))?
                        .map(|v| decode::<BlobSide>(&v))
                        .transpose()
                        .map_err(StoreError::from)?,
                };
                let (created, lease) = match side {
                    Some(s) => (s.created_ns.min(mtime), Lease::from(&s.lease)),
                    None => (mtime, Lease::default()),
                };
                blobs.push(BlobInfo {
                    etag: blob_etag(mtime),
                    created: time_of(created),
                    lease,
                    object: info,
                });
            }
            let mut uncommitted = Vec::new();
            if include_uncommitted {
                let base = container_blocks_prefix(account, container);
                let mut scan = base.clone();
                scan.extend_from_slice(query.prefix.as_bytes());
                let upper = if page.is_truncated {
                    page.next_marker.clone()
                } else {
                    None
                };
                for item in snap.scan_prefix(&scan) {
                    let (k, _) = item.map_err(|e| StoreError::from(EngineError::Db(e)))?;
                    let rest = &k[base.len()..];
                    let Some(pos) = rest.iter().position(|b| *b == 0) else {
                        continue;
                    };
                    let name = String::from_utf8_lossy(&rest[..pos]).into_owned();
                    let after_marker = query
                        .start_after
                        .as_deref()
                        .is_none_or(|m| name.as_str() > m);
                    let within_page = upper.as_deref().is_none_or(|u| name.as_str() <= u);
                    let has_object = snap
                        .get(&keys::object(account, container, &name))
                        .map_err(|e| StoreError::from(EngineError::Db(e)))?
                        .is_some();
                    if after_marker
                        && within_page
                        && !has_object
                        && uncommitted.last() != Some(&name)
                    {
                        uncommitted.push(name);
                    }
                }
            }
            Ok(BlobListPage {
                blobs,
                uncommitted,
                prefixes: page.common_prefixes,
                next_marker: if page.is_truncated {
                    page.next_marker
                } else {
                    None
                },
            })
        })();
        self.observe_blob(Op::ListObjects, t, &r, 0);
        r
    }

    async fn service_properties(&self, account: &str) -> Result<Option<Bytes>, BlobError> {
        self.check_account(account)?;
        Ok(self
            .db
            .get(&service_key(account))
            .map_err(|e| StoreError::from(EngineError::Db(e)))?)
    }

    async fn set_service_properties(&self, account: &str, xml: Bytes) -> Result<(), BlobError> {
        self.check_account(account)?;
        let mut batch = WriteBatch::new();
        batch.put(service_key(account), &xml);
        self.write(batch).await.map_err(StoreError::from)?;
        Ok(())
    }
}

fn new_lease_id() -> String {
    let v: u128 = rand::random();
    let h = format!("{v:032x}");
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// An S3-style ETag for an object committed from a block list: MD5 over the block ids and
/// sizes (block MD5s are not kept), suffixed with the block count like a multipart ETag.
fn md5_of_ids(list: &[(String, u64)]) -> [u8; 16] {
    use md5::Digest as _;
    let mut h = md5::Md5::new();
    for (id, size) in list {
        h.update(id.as_bytes());
        h.update(size.to_le_bytes());
    }
    h.finalize().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(len: u64, id: u64) -> Segment {
        Segment {
            len,
            data: SegmentData::Extent { id },
        }
    }

    #[test]
    fn splits_segments_at_block_boundaries() {
        let segs = vec![seg(4, 1), seg(4, 2), seg(2, 3)];
        let blocks = vec![("a".to_string(), 8), ("b".to_string(), 2)];
        let parts = split_by_blocks(&segs, &blocks).unwrap();
        assert_eq!(parts[0].len(), 2);
        assert_eq!(parts[1], vec![seg(2, 3)]);
        assert!(split_by_blocks(&segs, &[("a".into(), 5)]).is_err());
        assert!(split_by_blocks(&segs, &[("a".into(), 11)]).is_err());
    }

    #[test]
    fn etags_follow_version_time() {
        assert_ne!(blob_etag(1), blob_etag(2));
        assert_eq!(blob_etag(255), "0xFF");
    }

    #[test]
    fn lease_records_round_trip() {
        let l = Lease {
            id: Some("x".into()),
            until: Some(time_of(5_000_000_000)),
            broken: true,
            duration_secs: 30,
        };
        assert_eq!(Lease::from(&LeaseRec::from(&l)), l);
    }
}
