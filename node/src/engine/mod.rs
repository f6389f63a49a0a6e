//! The object engine: accounts, buckets, objects, staged uploads on the metadata [`Db`] and
//! the data layout [`DataStore`]. Implements [`ObjectStore`] for the protocol heads.
//!
//! Write order (so a SIGKILL at any instant leaves the old or the new state): body →
//! extents durable in the SLC buffer → ONE metadata batch (object record + `stage_commit`
//! of the new extents + `stage_release` of the replaced version's extents) → ack. Extents
//! appended but never committed are dropped by the layout as orphans.

pub mod blob;
mod capacity;
mod ingest;
pub mod keys;
mod list;
mod locks;
mod readpath;
pub mod record;
mod retire;
mod stream;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cairn_erasure::{DataStore, ExtentId, LayoutError, NewExtent, MAX_EXTENT_BYTES};
use cairn_metadata::{Db, WriteBatch};
use cairn_protocols::checksum::{multipart_etag, BodyCheck, ChecksumAlgo};
use cairn_protocols::store::*;

use crate::metrics::{Metrics, Op};
pub use capacity::{BucketUsage, CapacityReport};
use ingest::{ingest, IngestLimits, Ingested};
use locks::Locks;
use record::*;
use retire::{ReadPin, Retirer};

/// Internal failures of the engine.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The metadata store failed.
    #[error("metadata: {0}")]
    Db(#[from] cairn_metadata::Error),
    /// The data layout failed.
    #[error("layout: {0}")]
    Layout(#[from] LayoutError),
    /// A record could not be decoded.
    #[error("corrupt record: {0}")]
    Corrupt(String),
    /// A blocking task died.
    #[error("task: {0}")]
    Task(String),
}

impl From<EngineError> for StoreError {
    fn from(e: EngineError) -> Self {
        match e {
            EngineError::Layout(l) => StoreError::Data(l.to_string()),
            other => StoreError::Metadata(other.to_string()),
        }
    }
}

/// Engine settings.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Account name → secret key.
    pub accounts: BTreeMap<String, String>,
    /// Region reported to clients.
    pub region: String,
    /// Bodies up to this size are inlined in the metadata record.
    pub inline_max: usize,
    /// Extent size for large bodies.
    pub extent_bytes: usize,
    /// Uploads in progress older than this are aborted.
    pub upload_expiry: Duration,
}

/// Largest object body (single write or one part).
const MAX_BODY: u64 = 5 << 30;

/// The object engine.
pub struct Engine {
    db: Arc<Db>,
    ds: Arc<DataStore>,
    cfg: EngineConfig,
    obj_locks: Locks,
    upload_locks: Locks,
    metrics: Arc<Metrics>,
    retirer: Arc<Retirer>,
}

/// Objects must not contain NUL (the key separator) and must be 1..=1024 bytes.
fn check_key(key: &str) -> StoreResult<()> {
    if key.is_empty() || key.len() > 1024 || key.contains('\0') {
        return Err(StoreError::InvalidArgument(
            "object keys must be 1 to 1024 bytes without NUL".into(),
        ));
    }
    Ok(())
}

fn check_write_cond(cond: &WriteCondition, old: Option<&ObjectRec>) -> StoreResult<()> {
    if cond.if_none_match_any && old.is_some() {
        return Err(StoreError::PreconditionFailed);
    }
    if let Some(m) = &cond.if_match {
        match old {
            None => return Err(StoreError::NoSuchKey("If-Match on a missing object".into())),
            Some(o) if m != "*" && m.trim_matches('"') != o.etag => {
                return Err(StoreError::PreconditionFailed)
            }
            _ => {}
        }
    }
    Ok(())
}

impl Engine {
    /// An engine over an open metadata store and data layout.
    pub fn new(
        db: Arc<Db>,
        ds: Arc<DataStore>,
        cfg: EngineConfig,
        metrics: Arc<Metrics>,
    ) -> Engine {
        let mut cfg = cfg;
        cfg.extent_bytes = cfg.extent_bytes.clamp(64 << 10, MAX_EXTENT_BYTES);
        Engine {
            db,
            ds,
            cfg,
            obj_locks: Locks::new(1024),
            upload_locks: Locks::new(256),
            metrics,
            retirer: Arc::new(Retirer::default()),
        }
    }

    /// The metadata store.
    pub fn db(&self) -> &Arc<Db> {
        &self.db
    }

    /// The data layout.
    pub fn data(&self) -> &Arc<DataStore> {
        &self.ds
    }

    fn limits(&self) -> IngestLimits {
        IngestLimits {
            inline_max: self.cfg.inline_max,
            extent_bytes: self.cfg.extent_bytes,
            max_body: MAX_BODY,
        }
    }

    fn check_account(&self, account: &str) -> StoreResult<()> {
        if self.cfg.accounts.contains_key(account) {
            Ok(())
        } else {
            Err(StoreError::NoSuchAccount(account.to_owned()))
        }
    }

    fn get<T: for<'de> serde::Deserialize<'de>>(
        &self,
        key: &[u8],
    ) -> Result<Option<T>, EngineError> {
        match self.db.get(key)? {
            Some(v) => Ok(Some(decode(&v)?)),
            None => Ok(None),
        }
    }

    /// Writes a batch durably (off the async threads: the WAL fsyncs).
    async fn write(&self, batch: WriteBatch) -> Result<(), EngineError> {
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || db.write(batch))
            .await
            .map_err(|e| EngineError::Task(e.to_string()))??;
        Ok(())
    }

    fn bucket_rec(&self, account: &str, bucket: &str) -> StoreResult<BucketRec> {
        self.check_account(account)?;
        self.get::<BucketRec>(&keys::bucket(account, bucket))?
            .ok_or_else(|| StoreError::NoSuchBucket(bucket.to_owned()))
    }

    fn object_rec(&self, account: &str, bucket: &str, key: &str) -> StoreResult<ObjectRec> {
        self.bucket_rec(account, bucket)?;
        self.get::<ObjectRec>(&keys::object(account, bucket, key))?
            .ok_or_else(|| StoreError::NoSuchKey(key.to_owned()))
    }

    fn stage_new(&self, batch: &mut WriteBatch, pending: &[NewExtent]) {
        for ext in pending {
            self.ds.stage_commit(batch, ext);
        }
    }

    /// Marks extents for release in `batch`. They reach the layout's collector only once no
    /// read that started earlier can still need them (see [`retire`]).
    fn release(&self, batch: &mut WriteBatch, ids: impl Iterator<Item = u64>) {
        for id in ids {
            batch.put(retire::key(id), b"");
        }
    }

    /// Hands deferred releases to the layout once no earlier read can need them; returns how
    /// many it released. Run periodically (and at start-up, when there are no readers).
    pub async fn retire_pass(&self) -> StoreResult<usize> {
        const MAX_PER_PASS: usize = 50_000;
        let mut scanned = Vec::new();
        for item in self.db.scan_prefix(retire::PREFIX).take(MAX_PER_PASS) {
            let (k, _) = item.map_err(EngineError::Db)?;
            if let Some(id) = retire::id_of(&k) {
                scanned.push(id);
            }
        }
        let ready = self.retirer.settle(scanned);
        if ready.is_empty() {
            return Ok(0);
        }
        let mut batch = WriteBatch::new();
        for id in &ready {
            self.ds.stage_release(&mut batch, ExtentId(*id));
            batch.delete(retire::key(*id));
        }
        self.write(batch).await?;
        Ok(ready.len())
    }

    /// Pins the current state for a read: extents released after this cannot be collected
    /// while the pin lives. Take it before reading the object record.
    fn pin(&self) -> ReadPin {
        self.retirer.pin()
    }

    /// Commits `rec` under `key` if `cond` holds, replacing (and releasing) the old version.
    async fn commit_object(
        &self,
        account: &str,
        bucket: &str,
        key: &str,
        rec: ObjectRec,
        pending: Vec<NewExtent>,
        cond: &WriteCondition,
    ) -> StoreResult<ObjectInfo> {
        let okey = keys::object(account, bucket, key);
        let _g = self.obj_locks.lock(&okey).await;
        self.bucket_rec(account, bucket)?;
        let old = self.get::<ObjectRec>(&okey)?;
        check_write_cond(cond, old.as_ref())?;
        let mut batch = WriteBatch::new();
        self.stage_new(&mut batch, &pending);
        if let Some(o) = &old {
            self.release(&mut batch, o.extents());
        }
        batch.put(&okey, encode(&rec)?);
        self.write(batch).await?;
        drop(pending);
        Ok(rec.info(key))
    }

    /// Resolves `range` against `rec` and streams those bytes (all of them without a range).
    fn read_object(
        &self,
        rec: &ObjectRec,
        range: Option<RangeSpec>,
        pin: ReadPin,
    ) -> StoreResult<(Option<(u64, u64)>, ByteStream)> {
        let resolved = match range {
            Some(spec) => Some(spec.resolve(rec.size).ok_or(StoreError::InvalidRange)?),
            None => None,
        };
        let (a, b) = match resolved {
            Some(x) => x,
            None if rec.size == 0 => (1, 0),
            None => (0, rec.size - 1),
        };
        let body = readpath::read_range(self.ds.clone(), rec.segments.clone(), a, b, pin);
        Ok((resolved, body))
    }

    /// Reads an object's bytes (a range) into a stream for copying.
    fn copy_stream(&self, src: &ObjectRec, range: Option<(u64, u64)>, pin: ReadPin) -> ByteStream {
        let (a, b) = match range {
            Some(r) => r,
            None if src.size == 0 => (1, 0),
            None => (0, src.size - 1),
        };
        readpath::read_range(self.ds.clone(), src.segments.clone(), a, b, pin)
    }

    /// Aborts uploads older than the configured expiry; returns how many.
    pub async fn expire_uploads(&self) -> StoreResult<usize> {
        let cutoff = now_ns().saturating_sub(self.cfg.upload_expiry.as_nanos() as u64);
        let mut expired = Vec::new();
        for item in self.db.scan_prefix(keys::UPLOAD_ALL) {
            let (k, v) = item.map_err(EngineError::Db)?;
            let rec: UploadRec = decode(&v)?;
            if rec.created_ns < cutoff {
                let parts = keys::split(&k);
                if let [a, b, key, id] = parts.as_slice() {
                    expired.push((
                        String::from_utf8_lossy(a).into_owned(),
                        String::from_utf8_lossy(b).into_owned(),
                        String::from_utf8_lossy(key).into_owned(),
                        String::from_utf8_lossy(id).into_owned(),
                    ));
                }
            }
        }
        let n = expired.len();
        for (a, b, k, id) in expired {
            match self.abort_inner(&a, &b, &k, &id).await {
                Ok(()) | Err(StoreError::NoSuchUpload(_)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(n)
    }

    async fn abort_inner(
        &self,
        account: &str,
        bucket: &str,
        key: &str,
        upload_id: &str,
    ) -> StoreResult<()> {
        let ukey = keys::upload(account, bucket, key, upload_id);
        let _g = self.upload_locks.lock(upload_id.as_bytes()).await;
        if self.db.get(&ukey).map_err(EngineError::Db)?.is_none() {
            return Err(StoreError::NoSuchUpload(upload_id.to_owned()));
        }
        let mut batch = WriteBatch::new();
        for item in self
            .db
            .scan_prefix(&keys::part_prefix(account, bucket, upload_id))
        {
            let (k, v) = item.map_err(EngineError::Db)?;
            let p: PartRec = decode(&v)?;
            self.release(&mut batch, extent_ids(&p.segments));
            batch.delete(&k);
        }
        batch.delete(&ukey);
        self.write(batch).await?;
        Ok(())
    }

    fn upload_rec(
        &self,
        account: &str,
        bucket: &str,
        key: &str,
        upload_id: &str,
    ) -> StoreResult<UploadRec> {
        self.bucket_rec(account, bucket)?;
        self.get::<UploadRec>(&keys::upload(account, bucket, key, upload_id))?
            .ok_or_else(|| StoreError::NoSuchUpload(upload_id.to_owned()))
    }

    async fn stage_ingested(
        &self,
        account: &str,
        bucket: &str,
        key: &str,
        upload_id: &str,
        part_id: &str,
        ing: Ingested,
    ) -> StoreResult<PartInfo> {
        let _g = self.upload_locks.lock(upload_id.as_bytes()).await;
        self.upload_rec(account, bucket, key, upload_id)?;
        let pkey = keys::part(account, bucket, upload_id, part_id);
        let old = self.get::<PartRec>(&pkey)?;
        let rec = PartRec {
            size: ing.digests.len,
            md5: ing.digests.md5,
            mtime_ns: now_ns(),
            checksums: sums_to_rec(&ing.digests.checksums),
            segments: ing.segments,
        };
        let mut batch = WriteBatch::new();
        self.stage_new(&mut batch, &ing.pending);
        if let Some(o) = &old {
            self.release(&mut batch, extent_ids(&o.segments));
        }
        batch.put(&pkey, encode(&rec)?);
        self.write(batch).await?;
        drop(ing.pending);
        Ok(rec.info(part_id))
    }

    fn observe<T>(&self, op: Op, start: Instant, r: &StoreResult<T>, bytes: u64) {
        self.metrics.observe(op, start, r.is_ok(), bytes);
    }
}

#[async_trait::async_trait]
impl ObjectStore for Engine {
    fn account_key(&self, account: &str) -> Option<String> {
        self.cfg.accounts.get(account).cloned()
    }

    fn region(&self) -> String {
        self.cfg.region.clone()
    }

    async fn create_bucket(&self, account: &str, bucket: &str) -> StoreResult<BucketInfo> {
        let t = Instant::now();
        let r = async {
            self.check_account(account)?;
            let bkey = keys::bucket(account, bucket);
            let _g = self.obj_locks.lock(&bkey).await;
            if self.db.get(&bkey).map_err(EngineError::Db)?.is_some() {
                return Err(StoreError::BucketAlreadyExists(bucket.to_owned()));
            }
            let rec = BucketRec {
                created_ns: now_ns(),
            };
            let mut batch = WriteBatch::new();
            batch.put(&bkey, encode(&rec)?);
            self.write(batch).await?;
            Ok(BucketInfo {
                name: bucket.to_owned(),
                created: time_of(rec.created_ns),
            })
        }
        .await;
        self.observe(Op::CreateBucket, t, &r, 0);
        r
    }

    async fn delete_bucket(&self, account: &str, bucket: &str) -> StoreResult<()> {
        let t = Instant::now();
        let r = async {
            let bkey = keys::bucket(account, bucket);
            let _g = self.obj_locks.lock(&bkey).await;
            self.bucket_rec(account, bucket)?;
            if self
                .db
                .scan_prefix(&keys::object_prefix(account, bucket))
                .next()
                .is_some()
            {
                return Err(StoreError::BucketNotEmpty(bucket.to_owned()));
            }
            let uploads: Vec<(String, String)> = self
                .list_uploads(account, bucket, "")
                .await?
                .into_iter()
                .map(|u| (u.key, u.upload_id))
                .collect();
            for (k, id) in uploads {
                match self.abort_inner(account, bucket, &k, &id).await {
                    Ok(()) | Err(StoreError::NoSuchUpload(_)) => {}
                    Err(e) => return Err(e),
                }
            }
            let mut batch = WriteBatch::new();
            batch.delete(&bkey);
            self.write(batch).await?;
            Ok(())
        }
        .await;
        self.observe(Op::DeleteBucket, t, &r, 0);
        r
    }

    async fn head_bucket(&self, account: &str, bucket: &str) -> StoreResult<BucketInfo> {
        let t = Instant::now();
        let r = self.bucket_rec(account, bucket).map(|b| BucketInfo {
            name: bucket.to_owned(),
            created: time_of(b.created_ns),
        });
        self.observe(Op::HeadBucket, t, &r, 0);
        r
    }

    async fn list_buckets(&self, account: &str) -> StoreResult<Vec<BucketInfo>> {
        let t = Instant::now();
        let r = (|| {
            self.check_account(account)?;
            let prefix = keys::bucket_prefix(account);
            let mut out = Vec::new();
            for item in self.db.scan_prefix(&prefix) {
                let (k, v) = item.map_err(EngineError::Db)?;
                let rec: BucketRec = decode(&v)?;
                out.push(BucketInfo {
                    name: String::from_utf8_lossy(&k[prefix.len()..]).into_owned(),
                    created: time_of(rec.created_ns),
                });
            }
            Ok(out)
        })();
        self.observe(Op::ListBuckets, t, &r, 0);
        r
    }

    async fn put_object(
        &self,
        account: &str,
        bucket: &str,
        key: &str,
        props: ObjectProps,
        tags: Vec<(String, String)>,
        body: ByteStream,
        check: BodyCheck,
        cond: WriteCondition,
    ) -> StoreResult<ObjectInfo> {
        let t = Instant::now();
        let r = async {
            check_key(key)?;
            self.bucket_rec(account, bucket)?;
            if cond.if_none_match_any
                && self
                    .db
                    .get(&keys::object(account, bucket, key))
                    .map_err(EngineError::Db)?
                    .is_some()
            {
                return Err(StoreError::PreconditionFailed);
            }
            let ing = ingest(&self.ds, body, check, self.limits()).await?;
            let (rec, pending) = ing.into_record(props.into(), tags);
            self.commit_object(account, bucket, key, rec, pending, &cond)
                .await
        }
        .await;
        let n = r.as_ref().map(|i| i.size).unwrap_or(0);
        self.observe(Op::PutObject, t, &r, n);
        r
    }

    async fn head_object(&self, account: &str, bucket: &str, key: &str) -> StoreResult<ObjectInfo> {
        let t = Instant::now();
        let r = self.object_rec(account, bucket, key).map(|o| o.info(key));
        self.observe(Op::HeadObject, t, &r, 0);
        r
    }

    async fn get_object(
        &self,
        account: &str,
        bucket: &str,
        key: &str,
        range: Option<RangeSpec>,
    ) -> StoreResult<GetResult> {
        let t = Instant::now();
        let r = (|| {
            let pin = self.pin();
            let rec = self.object_rec(account, bucket, key)?;
            let (resolved, body) = self.read_object(&rec, range, pin)?;
            Ok(GetResult {
                info: rec.info(key),
                range: resolved,
                body,
            })
        })();
        let n = r
            .as_ref()
            .map(|g| g.range.map_or(g.info.size, |(a, b)| b - a + 1))
            .unwrap_or(0);
        self.observe(Op::GetObject, t, &r, n);
        r
    }

    async fn delete_object(&self, account: &str, bucket: &str, key: &str) -> StoreResult<bool> {
        let t = Instant::now();
        let r = async {
            self.bucket_rec(account, bucket)?;
            let okey = keys::object(account, bucket, key);
            let _g = self.obj_locks.lock(&okey).await;
            let Some(old) = self.get::<ObjectRec>(&okey)? else {
                return Ok(false);
            };
            let mut batch = WriteBatch::new();
            self.release(&mut batch, old.extents());
            batch.delete(&okey);
            self.write(batch).await?;
            Ok(true)
        }
        .await;
        self.observe(Op::DeleteObject, t, &r, 0);
        r
    }

    async fn copy_object(
        &self,
        account: &str,
        src: CopySource,
        bucket: &str,
        key: &str,
        props: Option<ObjectProps>,
        tags: Option<Vec<(String, String)>>,
        cond: WriteCondition,
    ) -> StoreResult<ObjectInfo> {
        let t = Instant::now();
        let r = async {
            check_key(key)?;
            self.bucket_rec(account, bucket)?;
            let pin = self.pin();
            let s = self.object_rec(account, &src.bucket, &src.key)?;
            let algos: Vec<ChecksumAlgo> = sums_from_rec(&s.checksums)
                .into_iter()
                .map(|(a, _)| a)
                .collect();
            let check = BodyCheck {
                algorithms: if s.parts_count <= 1 {
                    algos
                } else {
                    Vec::new()
                },
                ..Default::default()
            };
            let body = self.copy_stream(&s, src.range, pin);
            let ing = ingest(&self.ds, body, check, self.limits()).await?;
            let (rec, pending) = ing.into_record(
                props.map(PropsRec::from).unwrap_or_else(|| s.props.clone()),
                tags.unwrap_or_else(|| s.tags.clone()),
            );
            self.commit_object(account, bucket, key, rec, pending, &cond)
                .await
        }
        .await;
        let n = r.as_ref().map(|i| i.size).unwrap_or(0);
        self.observe(Op::CopyObject, t, &r, n);
        r
    }

    async fn set_tags(
        &self,
        account: &str,
        bucket: &str,
        key: &str,
        tags: Vec<(String, String)>,
    ) -> StoreResult<()> {
        let t = Instant::now();
        let r = async {
            self.bucket_rec(account, bucket)?;
            let okey = keys::object(account, bucket, key);
            let _g = self.obj_locks.lock(&okey).await;
            let mut rec = self
                .get::<ObjectRec>(&okey)?
                .ok_or_else(|| StoreError::NoSuchKey(key.to_owned()))?;
            rec.tags = tags;
            let mut batch = WriteBatch::new();
            batch.put(&okey, encode(&rec)?);
            self.write(batch).await?;
            Ok(())
        }
        .await;
        self.observe(Op::SetTags, t, &r, 0);
        r
    }

    async fn list_objects(
        &self,
        account: &str,
        bucket: &str,
        query: ListQuery,
    ) -> StoreResult<ListPage> {
        let t = Instant::now();
        let r = (|| {
            self.bucket_rec(account, bucket)?;
            let snap = self.db.snapshot();
            Ok(list::list(
                &snap,
                &keys::object_prefix(account, bucket),
                &query,
            )?)
        })();
        self.observe(Op::ListObjects, t, &r, 0);
        r
    }

    async fn create_upload(
        &self,
        account: &str,
        bucket: &str,
        key: &str,
        props: ObjectProps,
        tags: Vec<(String, String)>,
    ) -> StoreResult<String> {
        let t = Instant::now();
        let r = async {
            check_key(key)?;
            self.bucket_rec(account, bucket)?;
            let id = hex::encode(rand::random::<[u8; 16]>());
            let rec = UploadRec {
                created_ns: now_ns(),
                props: props.into(),
                tags,
            };
            let mut batch = WriteBatch::new();
            batch.put(keys::upload(account, bucket, key, &id), encode(&rec)?);
            self.write(batch).await?;
            Ok(id)
        }
        .await;
        self.observe(Op::CreateUpload, t, &r, 0);
        r
    }

    async fn stage_part(
        &self,
        account: &str,
        bucket: &str,
        key: &str,
        upload_id: &str,
        part_id: &str,
        body: ByteStream,
        check: BodyCheck,
    ) -> StoreResult<PartInfo> {
        let t = Instant::now();
        let r = async {
            self.upload_rec(account, bucket, key, upload_id)?;
            let ing = ingest(&self.ds, body, check, self.limits()).await?;
            self.stage_ingested(account, bucket, key, upload_id, part_id, ing)
                .await
        }
        .await;
        let n = r.as_ref().map(|p| p.size).unwrap_or(0);
        self.observe(Op::StagePart, t, &r, n);
        r
    }

    async fn stage_part_copy(
        &self,
        account: &str,
        src: CopySource,
        bucket: &str,
        key: &str,
        upload_id: &str,
        part_id: &str,
    ) -> StoreResult<PartInfo> {
        let t = Instant::now();
        let r = async {
            self.upload_rec(account, bucket, key, upload_id)?;
            let pin = self.pin();
            let s = self.object_rec(account, &src.bucket, &src.key)?;
            let body = self.copy_stream(&s, src.range, pin);
            let ing = ingest(&self.ds, body, BodyCheck::default(), self.limits()).await?;
            self.stage_ingested(account, bucket, key, upload_id, part_id, ing)
                .await
        }
        .await;
        let n = r.as_ref().map(|p| p.size).unwrap_or(0);
        self.observe(Op::StagePart, t, &r, n);
        r
    }

    async fn list_parts(
        &self,
        account: &str,
        bucket: &str,
        key: &str,
        upload_id: &str,
    ) -> StoreResult<Vec<PartInfo>> {
        let t = Instant::now();
        let r = (|| {
            self.upload_rec(account, bucket, key, upload_id)?;
            let prefix = keys::part_prefix(account, bucket, upload_id);
            let mut out = Vec::new();
            for item in self.db.snapshot().scan_prefix(&prefix) {
                let (k, v) = item.map_err(EngineError::Db)?;
                let rec: PartRec = decode(&v)?;
                out.push(rec.info(&String::from_utf8_lossy(&k[prefix.len()..])));
            }
            Ok(out)
        })();
        self.observe(Op::ListParts, t, &r, 0);
        r
    }

    async fn list_uploads(
        &self,
        account: &str,
        bucket: &str,
        prefix: &str,
    ) -> StoreResult<Vec<UploadInfo>> {
        let t = Instant::now();
        let r = (|| {
            self.bucket_rec(account, bucket)?;
            let base = keys::upload_prefix(account, bucket);
            let mut scan = base.clone();
            scan.extend_from_slice(prefix.as_bytes());
            let mut out = Vec::new();
            for item in self.db.snapshot().scan_prefix(&scan) {
                let (k, v) = item.map_err(EngineError::Db)?;
                let rest = &k[base.len()..];
                let Some(pos) = rest.iter().rposition(|b| *b == 0) else {
                    continue;
                };
                let rec: UploadRec = decode(&v)?;
                out.push(rec.info(
                    &String::from_utf8_lossy(&rest[..pos]),
                    &String::from_utf8_lossy(&rest[pos + 1..]),
                ));
            }
            Ok(out)
        })();
        self.observe(Op::ListUploads, t, &r, 0);
        r
    }

    async fn commit_upload(
        &self,
        account: &str,
        bucket: &str,
        key: &str,
        upload_id: &str,
        part_ids: Vec<String>,
        cond: WriteCondition,
    ) -> StoreResult<ObjectInfo> {
        let t = Instant::now();
        let r = async {
            let okey = keys::object(account, bucket, key);
            let _og = self.obj_locks.lock(&okey).await;
            let _ug = self.upload_locks.lock(upload_id.as_bytes()).await;
            let up = match self.upload_rec(account, bucket, key, upload_id) {
                Ok(u) => u,
                Err(StoreError::NoSuchUpload(u)) => {
                    // Completing an upload again answers with the object it produced.
                    return match self.get::<ObjectRec>(&okey)? {
                        Some(o) if o.upload_id.as_deref() == Some(upload_id) => Ok(o.info(key)),
                        _ => Err(StoreError::NoSuchUpload(u)),
                    };
                }
                Err(e) => return Err(e),
            };
            let prefix = keys::part_prefix(account, bucket, upload_id);
            let mut staged: BTreeMap<String, (Vec<u8>, PartRec)> = BTreeMap::new();
            for item in self.db.scan_prefix(&prefix) {
                let (k, v) = item.map_err(EngineError::Db)?;
                let id = String::from_utf8_lossy(&k[prefix.len()..]).into_owned();
                staged.insert(id, (k.to_vec(), decode(&v)?));
            }
            let mut segments = Vec::new();
            let mut md5s = Vec::with_capacity(part_ids.len());
            let mut size = 0;
            let mut batch = WriteBatch::new();
            for id in &part_ids {
                let Some((_, p)) = staged.remove(id) else {
                    return Err(StoreError::InvalidPart(format!(
                        "part {id} was not uploaded"
                    )));
                };
                size += p.size;
                md5s.push(p.md5);
                segments.extend(p.segments);
            }
            // Parts not named in the commit are discarded.
            for (_, p) in staged.values() {
                self.release(&mut batch, extent_ids(&p.segments));
            }
            let old = self.get::<ObjectRec>(&okey)?;
            check_write_cond(&cond, old.as_ref())?;
            if let Some(o) = &old {
                self.release(&mut batch, o.extents());
            }
            for item in self.db.scan_prefix(&prefix) {
                let (k, _) = item.map_err(EngineError::Db)?;
                batch.delete(&k);
            }
            batch.delete(keys::upload(account, bucket, key, upload_id));
            let rec = ObjectRec {
                size,
                mtime_ns: now_ns(),
                md5: None,
                etag: multipart_etag(&md5s),
                parts_count: part_ids.len() as u32,
                props: up.props,
                checksums: Vec::new(),
                tags: up.tags,
                segments,
                upload_id: Some(upload_id.to_owned()),
            };
            batch.put(&okey, encode(&rec)?);
            self.write(batch).await?;
            Ok(rec.info(key))
        }
        .await;
        self.observe(Op::CommitUpload, t, &r, 0);
        r
    }

    async fn abort_upload(
        &self,
        account: &str,
        bucket: &str,
        key: &str,
        upload_id: &str,
    ) -> StoreResult<()> {
        let t = Instant::now();
        let r = async {
            self.bucket_rec(account, bucket)?;
            self.abort_inner(account, bucket, key, upload_id).await
        }
        .await;
        self.observe(Op::AbortUpload, t, &r, 0);
        r
    }
}
