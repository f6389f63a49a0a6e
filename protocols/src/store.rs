//! The protocol-neutral object-store interface that every head (S3, Blob) calls and the node
//! implements. Nothing here knows about HTTP, XML or signatures.
//!
//! Namespace: account → bucket (= Blob container) → object (= blob). Objects are committed
//! atomically: a reader sees either the previous version or the new one, never a mix.

use std::collections::BTreeMap;
use std::pin::Pin;
use std::time::SystemTime;

use bytes::Bytes;
use futures::Stream;

use crate::checksum::{BodyCheck, ChecksumAlgo};

/// A stream of body bytes. `Send + Sync` so it can be handed to any HTTP stack.
pub type ByteStream = Pin<Box<dyn Stream<Item = Result<Bytes, StoreError>> + Send + Sync>>;

/// Every failure an [`ObjectStore`] reports. Heads map each variant to their protocol's error.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The account does not exist.
    #[error("no such account: {0}")]
    NoSuchAccount(String),
    /// The bucket does not exist.
    #[error("no such bucket: {0}")]
    NoSuchBucket(String),
    /// The bucket already exists and belongs to the caller.
    #[error("bucket already exists: {0}")]
    BucketAlreadyExists(String),
    /// The bucket still holds objects.
    #[error("bucket not empty: {0}")]
    BucketNotEmpty(String),
    /// The object does not exist.
    #[error("no such key: {0}")]
    NoSuchKey(String),
    /// The staged upload does not exist (never created, committed, aborted or expired).
    #[error("no such upload: {0}")]
    NoSuchUpload(String),
    /// A part named in a commit was never staged (or was staged with a different ETag).
    #[error("invalid part: {0}")]
    InvalidPart(String),
    /// A write precondition (If-None-Match: *, If-Match) did not hold.
    #[error("precondition failed")]
    PreconditionFailed,
    /// The body did not match the digest the client sent (Content-MD5 or x-amz-checksum-*).
    #[error("bad digest: {0}")]
    BadDigest(String),
    /// The client's digest header was malformed.
    #[error("invalid digest: {0}")]
    InvalidDigest(String),
    /// The body ended before the announced length, or the client stream failed.
    #[error("incomplete body: {0}")]
    IncompleteBody(String),
    /// A caller-supplied argument is invalid.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// The requested range lies outside the object.
    #[error("invalid range")]
    InvalidRange,
    /// The object is larger than the store accepts.
    #[error("entity too large")]
    EntityTooLarge,
    /// The metadata store failed.
    #[error("metadata: {0}")]
    Metadata(String),
    /// The data layout failed (I/O, checksum, too many devices lost).
    #[error("data: {0}")]
    Data(String),
    /// The node is shutting down or otherwise unavailable.
    #[error("unavailable: {0}")]
    Unavailable(String),
}

/// Result alias for store calls.
pub type StoreResult<T> = Result<T, StoreError>;

/// Properties shared by every head: HTTP content headers and user metadata.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ObjectProps {
    /// `Content-Type`.
    pub content_type: Option<String>,
    /// `Content-Encoding`.
    pub content_encoding: Option<String>,
    /// `Content-Language`.
    pub content_language: Option<String>,
    /// `Content-Disposition`.
    pub content_disposition: Option<String>,
    /// `Cache-Control`.
    pub cache_control: Option<String>,
    /// `Expires` as sent by the client (kept verbatim as an HTTP date string).
    pub expires: Option<String>,
    /// User metadata (`x-amz-meta-*` / `x-ms-meta-*`), keys lower-cased.
    pub user_metadata: BTreeMap<String, String>,
}

/// A committed object as the store reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInfo {
    /// Object key.
    pub key: String,
    /// Size in bytes.
    pub size: u64,
    /// Server write time of this version.
    pub last_modified: SystemTime,
    /// Whole-object MD5, only when it is actually known (single-part writes).
    pub md5: Option<[u8; 16]>,
    /// S3 ETag without quotes: hex MD5, or `hex(md5 of part md5s)-N` for multipart commits.
    pub etag: String,
    /// Number of parts the object was committed from (1 for a single write).
    pub parts_count: u32,
    /// Content headers and user metadata.
    pub props: ObjectProps,
    /// Whole-object checksums verified or computed at write time (base64 values).
    pub checksums: Vec<(ChecksumAlgo, String)>,
    /// Object tags, in insertion order.
    pub tags: Vec<(String, String)>,
}

/// A byte range a reader asks for, resolved against the object's size by the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeSpec {
    /// `first..=last` (last clamped to the end; `None` = to the end).
    From {
        /// First byte.
        first: u64,
        /// Last byte, inclusive.
        last: Option<u64>,
    },
    /// The last `n` bytes.
    Suffix(u64),
}

impl RangeSpec {
    /// The inclusive `(first, last)` this range selects in an object of `size` bytes, or
    /// `None` if it selects nothing (unsatisfiable).
    pub fn resolve(self, size: u64) -> Option<(u64, u64)> {
        match self {
            RangeSpec::From { first, last } => {
                if first >= size {
                    return None;
                }
                let last = last.map_or(size - 1, |l| l.min(size - 1));
                (last >= first).then_some((first, last))
            }
            RangeSpec::Suffix(n) => {
                if n == 0 || size == 0 {
                    return None;
                }
                Some((size.saturating_sub(n), size - 1))
            }
        }
    }
}

/// What a read returns: the version read, the resolved range, and its bytes.
pub struct GetResult {
    /// The version whose bytes `body` yields.
    pub info: ObjectInfo,
    /// The inclusive range served, `None` for the whole object.
    pub range: Option<(u64, u64)>,
    /// The bytes, verified on the way out; an error item ends the stream early.
    pub body: ByteStream,
}

/// A bucket as the store reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BucketInfo {
    /// Bucket name.
    pub name: String,
    /// Creation time.
    pub created: SystemTime,
}

/// Preconditions evaluated atomically with a write.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WriteCondition {
    /// Fail with [`StoreError::PreconditionFailed`] if the object exists (`If-None-Match: *`).
    pub if_none_match_any: bool,
    /// Fail unless the current object's ETag equals this (`If-Match`). `Some("*")` = must exist.
    pub if_match: Option<String>,
}

/// A listing request evaluated against one consistent snapshot.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListQuery {
    /// Only keys starting with this.
    pub prefix: String,
    /// Roll keys up to the first occurrence of this after the prefix into common prefixes.
    pub delimiter: Option<String>,
    /// Only keys (or common prefixes) strictly greater than this.
    pub start_after: Option<String>,
    /// At most this many entries (objects + common prefixes); 0 returns nothing.
    pub max_keys: usize,
}

/// One page of a listing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListPage {
    /// Objects, ascending by key.
    pub objects: Vec<ObjectInfo>,
    /// Common prefixes, ascending, each ending with the delimiter.
    pub common_prefixes: Vec<String>,
    /// True when more entries follow.
    pub is_truncated: bool,
    /// The last key or common prefix returned; resume with `start_after = next_marker`.
    pub next_marker: Option<String>,
}

/// A staged part (S3 multipart part, Blob uncommitted block).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartInfo {
    /// Opaque part id (S3: zero-padded part number; Blob: block id).
    pub part_id: String,
    /// Size in bytes.
    pub size: u64,
    /// MD5 of the part.
    pub md5: [u8; 16],
    /// When it was staged.
    pub last_modified: SystemTime,
    /// Checksums verified or computed at staging time.
    pub checksums: Vec<(ChecksumAlgo, String)>,
}

/// An upload in progress.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadInfo {
    /// Object key the upload will commit to.
    pub key: String,
    /// Upload id.
    pub upload_id: String,
    /// Creation time.
    pub initiated: SystemTime,
    /// Properties the object gets at commit.
    pub props: ObjectProps,
}

/// Where a copy reads from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopySource {
    /// Source bucket.
    pub bucket: String,
    /// Source key.
    pub key: String,
    /// Inclusive byte range, or the whole object.
    pub range: Option<(u64, u64)>,
}

/// The object store every protocol head is written against.
#[async_trait::async_trait]
pub trait ObjectStore: Send + Sync + 'static {
    /// The secret key of `account`, or `None` if there is no such account.
    fn account_key(&self, account: &str) -> Option<String>;

    /// The region name this node reports.
    fn region(&self) -> String;

    /// Creates a bucket. Fails with `BucketAlreadyExists` if it exists.
    async fn create_bucket(&self, account: &str, bucket: &str) -> StoreResult<BucketInfo>;
    /// Deletes an empty bucket (and aborts its uploads in progress).
    async fn delete_bucket(&self, account: &str, bucket: &str) -> StoreResult<()>;
    /// Returns the bucket or `NoSuchBucket`.
    async fn head_bucket(&self, account: &str, bucket: &str) -> StoreResult<BucketInfo>;
    /// Lists the account's buckets, ascending by name.
    async fn list_buckets(&self, account: &str) -> StoreResult<Vec<BucketInfo>>;

    #[allow(clippy::too_many_arguments)]
    /// Streams `body` in, verifies it against `check`, and commits it atomically under
    /// `key` if `cond` holds at commit time. Durable when it returns `Ok`.
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
    ) -> StoreResult<ObjectInfo>;
    /// Returns the current object's info.
    async fn head_object(&self, account: &str, bucket: &str, key: &str) -> StoreResult<ObjectInfo>;
    /// Returns the object's info and a stream of the requested range (or everything).
    /// The bytes are those of the version `info` describes, verified on the way out; the
    /// stream does no work until polled, so a caller may inspect `info` and drop it.
    async fn get_object(
        &self,
        account: &str,
        bucket: &str,
        key: &str,
        range: Option<RangeSpec>,
    ) -> StoreResult<GetResult>;
    /// Deletes the object; `Ok(false)` if it did not exist (the bucket must).
    async fn delete_object(&self, account: &str, bucket: &str, key: &str) -> StoreResult<bool>;
    /// Copies `src` (same account) to `key`. `props`/`tags` `None` keep the source's.
    #[allow(clippy::too_many_arguments)]
    async fn copy_object(
        &self,
        account: &str,
        src: CopySource,
        bucket: &str,
        key: &str,
        props: Option<ObjectProps>,
        tags: Option<Vec<(String, String)>>,
        cond: WriteCondition,
    ) -> StoreResult<ObjectInfo>;
    /// Replaces the object's tags.
    async fn set_tags(
        &self,
        account: &str,
        bucket: &str,
        key: &str,
        tags: Vec<(String, String)>,
    ) -> StoreResult<()>;
    /// Lists objects from one consistent snapshot.
    async fn list_objects(
        &self,
        account: &str,
        bucket: &str,
        query: ListQuery,
    ) -> StoreResult<ListPage>;

    /// Starts a staged upload for `key`; returns its id. Expires after ~7 days.
    async fn create_upload(
        &self,
        account: &str,
        bucket: &str,
        key: &str,
        props: ObjectProps,
        tags: Vec<(String, String)>,
    ) -> StoreResult<String>;
    /// Stages one part (replacing an earlier part with the same id).
    #[allow(clippy::too_many_arguments)]
    async fn stage_part(
        &self,
        account: &str,
        bucket: &str,
        key: &str,
        upload_id: &str,
        part_id: &str,
        body: ByteStream,
        check: BodyCheck,
    ) -> StoreResult<PartInfo>;
    /// Stages a part copied from an existing object.
    async fn stage_part_copy(
        &self,
        account: &str,
        src: CopySource,
        bucket: &str,
        key: &str,
        upload_id: &str,
        part_id: &str,
    ) -> StoreResult<PartInfo>;
    /// Lists the staged parts of an upload, ascending by part id.
    async fn list_parts(
        &self,
        account: &str,
        bucket: &str,
        key: &str,
        upload_id: &str,
    ) -> StoreResult<Vec<PartInfo>>;
    /// Lists uploads in progress in a bucket whose key starts with `prefix`.
    async fn list_uploads(
        &self,
        account: &str,
        bucket: &str,
        prefix: &str,
    ) -> StoreResult<Vec<UploadInfo>>;
    /// Commits the listed parts, in order, as the object; unlisted parts are discarded.
    async fn commit_upload(
        &self,
        account: &str,
        bucket: &str,
        key: &str,
        upload_id: &str,
        part_ids: Vec<String>,
        cond: WriteCondition,
    ) -> StoreResult<ObjectInfo>;
    /// Discards an upload and all its parts.
    async fn abort_upload(
        &self,
        account: &str,
        bucket: &str,
        key: &str,
        upload_id: &str,
    ) -> StoreResult<()>;
}
