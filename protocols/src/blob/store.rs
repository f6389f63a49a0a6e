//! What the Blob head needs from storage beyond the shared [`ObjectStore`]: container
//! properties and access level, the Blob ETag (which changes on every content *or* property
//! write), block lists, leases and service properties. The node implements [`BlobStore`];
//! conditions and leases are evaluated by the store atomically with each write, using the pure
//! helpers in [`super::cond`] and [`super::lease`].

use std::collections::BTreeMap;
use std::time::SystemTime;

use bytes::Bytes;

use super::cond::Conditions;
use super::error::BlobError;
use super::lease::{Lease, LeaseAction, LeaseOutcome};
use super::xml::BlockSource;
use crate::checksum::BodyCheck;
use crate::store::{
    ByteStream, CopySource, ListQuery, ObjectInfo, ObjectProps, ObjectStore, RangeSpec, StoreError,
};

/// A container's public access level (`x-ms-blob-public-access`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum PublicAccess {
    /// Private: every request must be authorized.
    #[default]
    Off,
    /// Anonymous clients may read blobs, not list them.
    Blob,
    /// Anonymous clients may read and list blobs.
    Container,
}

impl PublicAccess {
    /// Parses the header value (`blob`, `container`; absent = off).
    pub fn parse(value: Option<&str>) -> Result<PublicAccess, BlobError> {
        match value {
            None | Some("") => Ok(PublicAccess::Off),
            Some(v) if v.eq_ignore_ascii_case("blob") => Ok(PublicAccess::Blob),
            Some(v) if v.eq_ignore_ascii_case("container") => Ok(PublicAccess::Container),
            Some(_) => Err(BlobError::invalid_header(
                "x-ms-blob-public-access",
                "must be blob or container",
            )),
        }
    }

    /// The header value, `None` when private.
    pub fn as_header(self) -> Option<&'static str> {
        match self {
            PublicAccess::Off => None,
            PublicAccess::Blob => Some("blob"),
            PublicAccess::Container => Some("container"),
        }
    }
}

/// A container as the Blob head shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerInfo {
    /// Container (= bucket) name.
    pub name: String,
    /// Last write to the container's own properties or metadata.
    pub last_modified: SystemTime,
    /// Opaque ETag, changing whenever metadata, access level or lease changes.
    pub etag: String,
    /// Container metadata.
    pub metadata: BTreeMap<String, String>,
    /// Anonymous access level.
    pub public_access: PublicAccess,
    /// The container lease.
    pub lease: Lease,
}

/// A blob as the Blob head shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobInfo {
    /// The shared object view (size, content headers, user metadata, MD5 when known, tags).
    pub object: ObjectInfo,
    /// Opaque Blob ETag: changes on every content or property write, stable otherwise.
    pub etag: String,
    /// When the blob was first created under this name.
    pub created: SystemTime,
    /// The blob lease.
    pub lease: Lease,
}

/// A block of a block list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockInfo {
    /// The block id exactly as the client sent it (base64).
    pub id: String,
    /// Size in bytes.
    pub size: u64,
}

/// A blob's committed and uncommitted blocks.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BlockLists {
    /// Committed blocks in blob order (empty for a blob written in one piece).
    pub committed: Vec<BlockInfo>,
    /// Staged blocks not yet committed, in staging order.
    pub uncommitted: Vec<BlockInfo>,
    /// The committed blob, if one exists.
    pub blob: Option<BlobInfo>,
}

/// Everything a write of a blob is conditional on.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BlobWrite {
    /// `x-ms-lease-id`.
    pub lease_id: Option<String>,
    /// `If-*` headers.
    pub conditions: Conditions,
}

/// A change to a blob that keeps its content.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BlobUpdate {
    /// New content headers (Set Blob Properties replaces all of them).
    pub props: Option<ObjectProps>,
    /// New stored Content-MD5 (with `props`; `None` inside clears it).
    pub md5: Option<Option<[u8; 16]>>,
    /// New metadata (Set Blob Metadata).
    pub metadata: Option<BTreeMap<String, String>>,
    /// New tags.
    pub tags: Option<Vec<(String, String)>>,
    /// A lease request.
    pub lease: Option<LeaseAction>,
}

/// A change to a container.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContainerUpdate {
    /// New metadata.
    pub metadata: Option<BTreeMap<String, String>>,
    /// New access level.
    pub public_access: Option<PublicAccess>,
    /// A lease request.
    pub lease: Option<LeaseAction>,
}

/// The bytes of a read, with the version they belong to.
pub struct BlobRead {
    /// The blob version read.
    pub info: BlobInfo,
    /// The inclusive range served, `None` for the whole blob.
    pub range: Option<(u64, u64)>,
    /// The bytes.
    pub body: ByteStream,
}

/// One page of List Blobs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BlobListPage {
    /// Committed blobs, ascending by name.
    pub blobs: Vec<BlobInfo>,
    /// Names that have only uncommitted blocks (with `include=uncommittedblobs`).
    pub uncommitted: Vec<String>,
    /// Virtual directories (with a delimiter).
    pub prefixes: Vec<String>,
    /// Where the next page starts, if there is one.
    pub next_marker: Option<String>,
}

/// Storage the Blob head runs on, implemented by the node next to [`ObjectStore`].
#[allow(clippy::too_many_arguments)]
#[async_trait::async_trait]
pub trait BlobStore: ObjectStore {
    /// Creates a container with metadata and access level.
    async fn create_container(
        &self,
        account: &str,
        container: &str,
        metadata: BTreeMap<String, String>,
        access: PublicAccess,
    ) -> Result<ContainerInfo, BlobError>;
    /// The container's properties.
    async fn container(&self, account: &str, container: &str) -> Result<ContainerInfo, BlobError>;
    /// Containers whose name starts with `prefix`, after `marker`, at most `max`.
    async fn list_containers(
        &self,
        account: &str,
        prefix: &str,
        marker: Option<&str>,
        max: usize,
    ) -> Result<(Vec<ContainerInfo>, Option<String>), BlobError>;
    /// Applies `update` if the lease and conditions hold; returns the new state and the
    /// lease outcome for a lease request.
    async fn update_container(
        &self,
        account: &str,
        container: &str,
        update: ContainerUpdate,
        write: &BlobWrite,
    ) -> Result<(ContainerInfo, Option<LeaseOutcome>), BlobError>;
    /// Deletes a container and everything in it, if the lease and conditions hold.
    async fn delete_container(
        &self,
        account: &str,
        container: &str,
        write: &BlobWrite,
    ) -> Result<(), BlobError>;

    /// The committed blob's properties.
    async fn blob(&self, account: &str, container: &str, blob: &str)
        -> Result<BlobInfo, BlobError>;
    /// Reads `range` of the version that satisfies `read` (lease and conditions are checked
    /// against the same version the bytes come from).
    async fn read_blob(
        &self,
        account: &str,
        container: &str,
        blob: &str,
        range: Option<RangeSpec>,
        read: &BlobWrite,
    ) -> Result<BlobRead, BlobError>;
    /// Writes a whole blob (Put Blob). `stored_md5` is the Content-MD5 to keep when the client
    /// set `x-ms-blob-content-md5`; otherwise the computed MD5 of the body is kept.
    #[allow(clippy::too_many_arguments)]
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
    ) -> Result<BlobInfo, BlobError>;
    /// Copies `src` (any account) to a blob, keeping its content headers; `metadata` `None`
    /// keeps the source's.
    async fn copy_blob(
        &self,
        src_account: &str,
        src: CopySource,
        account: &str,
        container: &str,
        blob: &str,
        metadata: Option<BTreeMap<String, String>>,
        write: &BlobWrite,
    ) -> Result<BlobInfo, BlobError>;
    /// Changes properties, metadata, tags or the lease of a blob.
    async fn update_blob(
        &self,
        account: &str,
        container: &str,
        blob: &str,
        update: BlobUpdate,
        write: &BlobWrite,
    ) -> Result<(BlobInfo, Option<LeaseOutcome>), BlobError>;
    /// Deletes a blob (and its uncommitted blocks).
    async fn delete_blob(
        &self,
        account: &str,
        container: &str,
        blob: &str,
        write: &BlobWrite,
    ) -> Result<(), BlobError>;

    /// Stages a block (replacing a staged block with the same id). Every block id of one blob
    /// must decode to the same length (else 400 InvalidBlobOrBlock), and at most 100,000
    /// blocks may be staged (else 409 BlockCountExceedsLimit).
    async fn put_block(
        &self,
        account: &str,
        container: &str,
        blob: &str,
        block_id: &str,
        body: ByteStream,
        check: BodyCheck,
        lease_id: Option<&str>,
    ) -> Result<(), BlobError>;
    /// Stages a block copied from `src` (any account).
    #[allow(clippy::too_many_arguments)]
    async fn put_block_from(
        &self,
        src_account: &str,
        src: CopySource,
        account: &str,
        container: &str,
        blob: &str,
        block_id: &str,
        lease_id: Option<&str>,
    ) -> Result<(), BlobError>;
    /// Commits a block list: each id is resolved in order from the staged or committed blocks
    /// as its [`BlockSource`] says (InvalidBlockList if one is missing); staged blocks not
    /// listed are discarded.
    #[allow(clippy::too_many_arguments)]
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
    ) -> Result<BlobInfo, BlobError>;
    /// The committed and uncommitted blocks of a blob.
    async fn block_lists(
        &self,
        account: &str,
        container: &str,
        blob: &str,
    ) -> Result<BlockLists, BlobError>;
    /// Lists blobs from one consistent snapshot.
    async fn list_blobs(
        &self,
        account: &str,
        container: &str,
        query: ListQuery,
        include_uncommitted: bool,
    ) -> Result<BlobListPage, BlobError>;

    /// The stored service properties document, if one was set.
    async fn service_properties(&self, account: &str) -> Result<Option<Bytes>, BlobError>;
    /// Stores the service properties document.
    async fn set_service_properties(&self, account: &str, xml: Bytes) -> Result<(), BlobError>;
}

impl From<StoreError> for BlobError {
    fn from(e: StoreError) -> Self {
        use http::StatusCode as S;
        match e {
            StoreError::NoSuchAccount(_) => {
                BlobError::new(S::FORBIDDEN, "AuthenticationFailed", "Unknown account.")
            }
            StoreError::NoSuchBucket(_) => BlobError::container_not_found(),
            StoreError::BucketAlreadyExists(_) => BlobError::container_already_exists(),
            StoreError::BucketNotEmpty(_) => BlobError::new(
                S::CONFLICT,
                "ContainerBeingDeleted",
                "The container is not empty.",
            ),
            StoreError::NoSuchKey(_) => BlobError::blob_not_found(),
            StoreError::NoSuchUpload(_) | StoreError::InvalidPart(_) => {
                BlobError::invalid_block_list()
            }
            StoreError::PreconditionFailed => BlobError::condition_not_met(),
            StoreError::BadDigest(m) if m.contains("CRC64") => BlobError::crc64_mismatch(),
            StoreError::BadDigest(_) => BlobError::md5_mismatch(),
            StoreError::InvalidDigest(m) => BlobError::invalid_header("Content-MD5", &m),
            StoreError::IncompleteBody(m) => {
                BlobError::invalid_input(format!("The request body is incomplete: {m}"))
            }
            StoreError::InvalidArgument(m) => BlobError::invalid_input(m),
            StoreError::InvalidRange => BlobError::invalid_range(),
            StoreError::EntityTooLarge => BlobError::body_too_large(5000 << 20),
            StoreError::Metadata(m) | StoreError::Data(m) => {
                tracing::error!(error = %m, "storage failure on the blob head");
                BlobError::internal("Storage failure.")
            }
            StoreError::Unavailable(m) => BlobError::server_busy(m),
        }
    }
}
