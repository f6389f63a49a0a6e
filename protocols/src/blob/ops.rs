//! Request dispatch for the Blob head: authenticate, route by method / `restype` / `comp`,
//! authorize, run the operation against the [`BlobStore`], and render the reply.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::SystemTime;

use base64::Engine as _;
use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;

use super::auth::{self, SignedRequest};
use super::cond::{CondFailure, Conditions};
use super::error::BlobError;
use super::lease::{LeaseAction, LeaseState};
use super::names;
use super::request::{self, header, parse_query, Query, ResourcePath};
use super::response::{error_response, http_date, md5_b64, Body, CommonHeaders, Reply};
use super::sas::{self, Access, ResponseOverrides, SasGrant, Target};
use super::store::{
    BlobInfo, BlobStore, BlobUpdate, BlobWrite, BlockLists, ContainerInfo, ContainerUpdate,
    PublicAccess,
};
use super::xml::{self, XmlWriter};
use super::DEFAULT_VERSION;
use crate::checksum::{BodyCheck, ChecksumAlgo};
use crate::store::{ByteStream, CopySource, ListQuery, ObjectProps, RangeSpec, StoreError};

/// Largest Put Blob body.
pub const MAX_PUT_BLOB: u64 = 5000 << 20;
/// Largest Put Block body.
pub const MAX_BLOCK: u64 = 4000 << 20;
/// Largest block id, decoded.
pub const MAX_BLOCK_ID: usize = 64;
/// Largest range `x-ms-range-get-content-md5` may cover.
pub const MAX_RANGE_MD5: u64 = 4 << 20;

/// How the request was authenticated.
enum Authz {
    /// SharedKey with the account key: everything in the account.
    Key,
    /// A SAS: what it grants, and its response header overrides.
    Sas(SasGrant, ResponseOverrides),
    /// No credentials: only public-container reads.
    Anonymous,
}

/// Everything an operation needs about its request.
struct Ctx<'a> {
    store: &'a Arc<dyn BlobStore>,
    method: Method,
    headers: &'a HeaderMap,
    query: Vec<(String, String)>,
    path: ResourcePath,
    authz: Authz,
    peer: SocketAddr,
    host: String,
}

pub(super) async fn handle(
    store: &Arc<dyn BlobStore>,
    req: Request<Incoming>,
    peer: SocketAddr,
) -> Response<Body> {
    let (parts, body) = req.into_parts();
    let is_head = parts.method == Method::HEAD;
    let requested = header(&parts.headers, "x-ms-version");
    let common = CommonHeaders {
        request_id: new_request_id(),
        version: requested
            .filter(|v| request::is_date_shaped(v))
            .unwrap_or(DEFAULT_VERSION)
            .to_string(),
        client_request_id: parts.headers.get("x-ms-client-request-id").cloned(),
    };
    if let Some(v) = requested {
        if !request::is_date_shaped(v) {
            let err = BlobError::invalid_header("x-ms-version", "must be a date like 2025-01-05");
            return error_response(&err, is_head, &common);
        }
    }
    let result = async {
        let ctx = Ctx::new(store, &parts, peer)?;
        ctx.route(body).await
    }
    .await;
    match result {
        Ok(reply) => {
            let reply = if is_head { reply.without_body() } else { reply };
            reply.finish(&common)
        }
        Err(err) => {
            if err.status.is_server_error() {
                tracing::warn!(method = %parts.method, uri = %parts.uri, error = %err, "blob request failed");
            } else {
                tracing::debug!(method = %parts.method, uri = %parts.uri, error = %err, "blob request rejected");
            }
            error_response(&err, is_head, &common)
        }
    }
}

fn new_request_id() -> String {
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

fn account_key(store: &Arc<dyn BlobStore>, account: &str) -> Option<Vec<u8>> {
    let key = store.account_key(account)?;
    Some(
        base64::engine::general_purpose::STANDARD
            .decode(key.as_bytes())
            .unwrap_or_else(|_| key.into_bytes()),
    )
}

fn etag_header(etag: &str) -> String {
    format!("\"{etag}\"")
}

impl<'a> Ctx<'a> {
    fn new(
        store: &'a Arc<dyn BlobStore>,
        parts: &'a http::request::Parts,
        peer: SocketAddr,
    ) -> Result<Ctx<'a>, BlobError> {
        let host = header(&parts.headers, "host")
            .map(str::to_string)
            .or_else(|| parts.uri.authority().map(|a| a.to_string()))
            .unwrap_or_default();
        let raw_path = parts.uri.path();
        let path =
            request::resource_path(Some(&host), raw_path, |a| store.account_key(a).is_some())?;
        let query = parse_query(parts.uri.query())?;
        let authz = authenticate(store, parts, &path, &query, peer)?;
        Ok(Ctx {
            store,
            method: parts.method.clone(),
            headers: &parts.headers,
            query,
            path,
            authz,
            peer,
            host,
        })
    }

    fn q(&self) -> Query<'_> {
        Query(&self.query)
    }

    fn h(&self, name: &str) -> Option<&str> {
        header(self.headers, name)
    }

    fn account(&self) -> &str {
        &self.path.account
    }

    fn container(&self) -> Result<&str, BlobError> {
        self.path
            .container
            .as_deref()
            .ok_or_else(|| BlobError::invalid_resource_name("The request names no container."))
    }

    fn blob(&self) -> Result<&str, BlobError> {
        self.path
            .blob
            .as_deref()
            .ok_or_else(|| BlobError::invalid_resource_name("The request names no blob."))
    }

    fn target(&self) -> Target<'_> {
        Target {
            account: &self.path.account,
            container: self.path.container.as_deref(),
            blob: self.path.blob.as_deref(),
        }
    }

    fn lease_id(&self) -> Option<String> {
        self.h("x-ms-lease-id").map(str::to_string)
    }

    fn write(&self) -> BlobWrite {
        BlobWrite {
            lease_id: self.lease_id(),
            conditions: Conditions::from_headers(self.headers),
        }
    }

    /// Checks that the caller may perform `access`. Anonymous callers may only read from
    /// public containers.
    async fn authorize(&self, access: Access) -> Result<(), BlobError> {
        match &self.authz {
            Authz::Key => Ok(()),
            Authz::Sas(grant, _) => sas::authorize(grant, access, &self.target()),
            Authz::Anonymous => {
                let readable = access == Access::READ_BLOB
                    || access == Access::LIST_BLOBS
                    || access == Access::READ_CONTAINER;
                let Some(container) = self.path.container.as_deref().filter(|_| readable) else {
                    return Err(no_credentials());
                };
                let info = self
                    .store
                    .container(self.account(), container)
                    .await
                    .map_err(|_| BlobError::resource_not_found())?;
                let allowed = match info.public_access {
                    PublicAccess::Off => false,
                    PublicAccess::Blob => access == Access::READ_BLOB,
                    PublicAccess::Container => true,
                };
                if allowed {
                    Ok(())
                } else {
                    Err(BlobError::resource_not_found())
                }
            }
        }
    }

    async fn route(&self, body: Incoming) -> Result<Reply, BlobError> {
        let comp = self.q().get("comp").map(str::to_ascii_lowercase);
        let restype = self.q().get("restype").map(str::to_ascii_lowercase);
        let m = &self.method;
        if restype.as_deref() == Some("account") && comp.as_deref() == Some("properties") {
            return self.account_info().await;
        }
        match (&self.path.container, &self.path.blob) {
            (None, _) => match (m, restype.as_deref(), comp.as_deref()) {
                (&Method::GET, None, Some("list")) => self.list_containers().await,
                (&Method::GET, Some("service"), Some("properties")) => self.get_service_properties().await,
                (&Method::PUT, Some("service"), Some("properties")) => self.set_service_properties(body).await,
                (_, _, Some(other)) => Err(BlobError::unsupported_operation(&format!("comp={other}"))),
                _ => Err(BlobError::unsupported_verb(m.as_str())),
            },
            (Some(_), None) => match (m, restype.as_deref(), comp.as_deref()) {
                (&Method::PUT, Some("container"), None) => self.create_container().await,
                (&Method::GET | &Method::HEAD, Some("container"), None) => self.container_properties(false).await,
                (&Method::GET | &Method::HEAD, Some("container"), Some("metadata")) => {
                    self.container_properties(true).await
                }
                (&Method::DELETE, Some("container"), None) => self.delete_container().await,
                (&Method::PUT, Some("container"), Some("metadata")) => self.set_container_metadata().await,
                (&Method::GET | &Method::HEAD, Some("container"), Some("acl")) => self.get_container_acl().await,
                (&Method::PUT, Some("container"), Some("acl")) => self.set_container_acl(body).await,
                (&Method::PUT, Some("container"), Some("lease")) => self.lease_container().await,
                (&Method::GET, Some("container"), Some("list")) => self.list_blobs().await,
                (_, Some("container"), Some(other)) => {
                    Err(BlobError::unsupported_operation(&format!("comp={other}")))
                }
                (_, Some("container"), None) => Err(BlobError::unsupported_verb(m.as_str())),
                _ => Err(BlobError::invalid_query(
                    "restype",
                    restype.as_deref().unwrap_or(""),
                    "container operations need restype=container",
                )),
            },
            (Some(_), Some(_)) => match (m, comp.as_deref()) {
                (&Method::PUT, None) => {
                    if self.h("x-ms-copy-source").is_some() {
                        if self.h("x-ms-blob-type").is_some() {
                            self.put_blob_from_url().await
                        } else {
                            self.copy_blob().await
                        }
                    } else {
                        self.put_blob(body).await
                    }
                }
                (&Method::GET, None) => self.get_blob(false).await,
                (&Method::HEAD, None) => self.get_blob(true).await,
                (&Method::DELETE, None) => self.delete_blob().await,
                (&Method::PUT, Some("properties")) => self.set_blob_properties().await,
                (&Method::GET | &Method::HEAD, Some("metadata")) => self.get_blob_metadata().await,
                (&Method::PUT, Some("metadata")) => self.set_blob_metadata().await,
                (&Method::PUT, Some("block")) => {
                    if self.h("x-ms-copy-source").is_some() {
                        self.put_block_from_url().await
                    } else {
                        self.put_block(body).await
                    }
                }
                (&Method::PUT, Some("blocklist")) => self.put_block_list(body).await,
                (&Method::GET | &Method::HEAD, Some("blocklist")) => self.get_block_list().await,
                (&Method::PUT, Some("lease")) => self.lease_blob().await,
                (&Method::GET, Some("tags")) => self.get_tags().await,
                (&Method::PUT, Some("tags")) => self.set_tags(body).await,
                (&Method::PUT, Some("copy")) => Err(BlobError::new(
                    StatusCode::CONFLICT,
                    "NoPendingCopyOperation",
                    "There is currently no pending copy operation.",
                )),
                (_, Some(other @ ("appendblock" | "appendblockfromurl" | "seal" | "page" | "pagelist" | "incrementalcopy"))) => {
                    Err(BlobError::new(
                        StatusCode::CONFLICT,
                        "InvalidBlobType",
                        format!("The blob type is invalid for this operation: comp={other}. This server stores block blobs only."),
                    ))
                }
                (_, Some(other)) => Err(BlobError::unsupported_operation(&format!("comp={other}"))),
                _ => Err(BlobError::unsupported_verb(m.as_str())),
            },
        }
    }

    // ---- service -------------------------------------------------------------------------

    async fn account_info(&self) -> Result<Reply, BlobError> {
        if let Authz::Anonymous = self.authz {
            return Err(no_credentials());
        }
        Ok(Reply::new(StatusCode::OK)
            .header("x-ms-sku-name", "Standard_LRS")
            .header("x-ms-account-kind", "StorageV2")
            .header("x-ms-is-hns-enabled", "false"))
    }

    fn service_endpoint(&self) -> String {
        if self.path.path_style {
            format!("http://{}/{}/", self.host, self.account())
        } else {
            format!("http://{}/", self.host)
        }
    }

    async fn list_containers(&self) -> Result<Reply, BlobError> {
        self.authorize(Access::LIST_CONTAINERS).await?;
        let q = self.q();
        let prefix = q.get("prefix").unwrap_or("");
        let marker = q.get("marker").filter(|m| !m.is_empty());
        let max = max_results(&q)?;
        let include_metadata = includes(&q, "metadata");
        let (containers, next) = self
            .store
            .list_containers(self.account(), prefix, marker, max)
            .await?;
        let endpoint = self.service_endpoint();
        let mut w = XmlWriter::new();
        w.open_with("EnumerationResults", &[("ServiceEndpoint", &endpoint)]);
        if !prefix.is_empty() {
            w.elem("Prefix", prefix);
        }
        if let Some(m) = marker {
            w.elem("Marker", m);
        }
        if let Some(m) = q.get("maxresults") {
            w.elem("MaxResults", m);
        }
        w.open("Containers");
        let now = SystemTime::now();
        for c in &containers {
            w.open("Container").elem("Name", &c.name).open("Properties");
            w.elem("Last-Modified", &http_date(c.last_modified))
                .elem("Etag", &etag_header(&c.etag))
                .elem("LeaseStatus", c.lease.state(now).status())
                .elem("LeaseState", c.lease.state(now).as_str());
            if let Some(d) = c.lease.duration_name(now) {
                w.elem("LeaseDuration", d);
            }
            if let Some(p) = c.public_access.as_header() {
                w.elem("PublicAccess", p);
            }
            w.elem("HasImmutabilityPolicy", "false")
                .elem("HasLegalHold", "false")
                .close("Properties");
            if include_metadata {
                w.open("Metadata");
                for (k, v) in names::metadata_for_blob(&c.metadata) {
                    w.elem(&k, &v);
                }
                w.close("Metadata");
            }
            w.close("Container");
        }
        w.close("Containers");
        w.elem_opt("NextMarker", next.as_deref());
        w.close("EnumerationResults");
        Ok(Reply::new(StatusCode::OK).xml(w.finish()))
    }

    async fn get_service_properties(&self) -> Result<Reply, BlobError> {
        self.authorize(Access::READ_SERVICE).await?;
        let doc = match self.store.service_properties(self.account()).await? {
            Some(doc) => String::from_utf8_lossy(&doc).into_owned(),
            None => DEFAULT_SERVICE_PROPERTIES.to_string(),
        };
        Ok(Reply::new(StatusCode::OK).xml(doc))
    }

    async fn set_service_properties(&self, body: Incoming) -> Result<Reply, BlobError> {
        self.authorize(Access::WRITE_SERVICE).await?;
        let doc = read_small_body(body, 1 << 20).await?;
        validate_root(&doc, "StorageServiceProperties")?;
        self.store
            .set_service_properties(self.account(), doc)
            .await?;
        Ok(Reply::new(StatusCode::ACCEPTED))
    }

    // ---- containers ----------------------------------------------------------------------

    async fn create_container(&self) -> Result<Reply, BlobError> {
        self.authorize(Access::CREATE_CONTAINER).await?;
        let name = self.container()?;
        names::validate_container_name(name)?;
        let metadata = names::metadata_from_blob(meta_headers(self.headers))?;
        let access = PublicAccess::parse(self.h("x-ms-blob-public-access"))?;
        let info = self
            .store
            .create_container(self.account(), name, metadata, access)
            .await?;
        Ok(Reply::new(StatusCode::CREATED)
            .header("etag", etag_header(&info.etag))
            .header("last-modified", http_date(info.last_modified)))
    }

    async fn container_info(&self) -> Result<ContainerInfo, BlobError> {
        self.store
            .container(self.account(), self.container()?)
            .await
    }

    async fn container_properties(&self, metadata_only: bool) -> Result<Reply, BlobError> {
        self.authorize(Access::READ_CONTAINER).await?;
        let info = self.container_info().await?;
        let now = SystemTime::now();
        info.lease
            .check_read(self.lease_id().as_deref(), now, false)?;
        let mut reply = Reply::new(StatusCode::OK)
            .header("etag", etag_header(&info.etag))
            .header("last-modified", http_date(info.last_modified));
        for (k, v) in names::metadata_for_blob(&info.metadata) {
            reply = reply.header_dyn(&format!("x-ms-meta-{k}"), &v);
        }
        if !metadata_only {
            reply = lease_headers(reply, &info.lease, now)
                .header_opt("x-ms-blob-public-access", info.public_access.as_header())
                .header("x-ms-has-immutability-policy", "false")
                .header("x-ms-has-legal-hold", "false");
        }
        Ok(reply)
    }

    async fn delete_container(&self) -> Result<Reply, BlobError> {
        self.authorize(Access::DELETE_CONTAINER).await?;
        self.store
            .delete_container(self.account(), self.container()?, &self.write())
            .await?;
        Ok(Reply::new(StatusCode::ACCEPTED))
    }

    async fn set_container_metadata(&self) -> Result<Reply, BlobError> {
        self.authorize(Access::WRITE_CONTAINER).await?;
        let metadata = names::metadata_from_blob(meta_headers(self.headers))?;
        let update = ContainerUpdate {
            metadata: Some(metadata),
            ..Default::default()
        };
        self.apply_container_update(update).await
    }

    /// Applies a metadata or access-level change under the request's lease and conditions
    /// and answers with the container's new ETag and Last-Modified.
    async fn apply_container_update(&self, update: ContainerUpdate) -> Result<Reply, BlobError> {
        let (info, _) = self
            .store
            .update_container(self.account(), self.container()?, update, &self.write())
            .await?;
        Ok(Reply::new(StatusCode::OK)
            .header("etag", etag_header(&info.etag))
            .header("last-modified", http_date(info.last_modified)))
    }

    async fn get_container_acl(&self) -> Result<Reply, BlobError> {
        self.authorize(Access::READ_CONTAINER).await?;
        let info = self.container_info().await?;
        let mut w = XmlWriter::new();
        w.open("SignedIdentifiers").close("SignedIdentifiers");
        Ok(Reply::new(StatusCode::OK)
            .header("etag", etag_header(&info.etag))
            .header("last-modified", http_date(info.last_modified))
            .header_opt("x-ms-blob-public-access", info.public_access.as_header())
            .xml(w.finish()))
    }

    async fn set_container_acl(&self, body: Incoming) -> Result<Reply, BlobError> {
        self.authorize(Access::WRITE_CONTAINER).await?;
        let doc = read_small_body(body, 1 << 20).await?;
        check_acl_body(&doc)?;
        let update = ContainerUpdate {
            public_access: Some(PublicAccess::parse(self.h("x-ms-blob-public-access"))?),
            ..Default::default()
        };
        self.apply_container_update(update).await
    }

    async fn lease_container(&self) -> Result<Reply, BlobError> {
        self.authorize(Access::WRITE_CONTAINER).await?;
        let (action, status, write) = self.lease_request()?;
        let update = ContainerUpdate {
            lease: Some(action),
            ..Default::default()
        };
        let (info, outcome) = self
            .store
            .update_container(self.account(), self.container()?, update, &write)
            .await?;
        Ok(lease_reply(status, &info.etag, info.last_modified, outcome))
    }

    /// The lease action of a Lease Blob / Lease Container request, its success status, and
    /// the conditions it runs under (a lease request carries its id in the action itself).
    fn lease_request(&self) -> Result<(LeaseAction, StatusCode, BlobWrite), BlobError> {
        let action = lease_action(self.headers)?;
        let status = lease_status(&action);
        let write = BlobWrite {
            lease_id: None,
            conditions: Conditions::from_headers(self.headers),
        };
        Ok((action, status, write))
    }

    async fn list_blobs(&self) -> Result<Reply, BlobError> {
        self.authorize(Access::LIST_BLOBS).await?;
        let q = self.q();
        let prefix = q.get("prefix").unwrap_or("").to_string();
        let delimiter = q
            .get("delimiter")
            .filter(|d| !d.is_empty())
            .map(str::to_string);
        let marker = q
            .get("marker")
            .filter(|m| !m.is_empty())
            .map(str::to_string);
        let max = max_results(&q)?;
        let include_metadata = includes(&q, "metadata");
        let include_uncommitted = includes(&q, "uncommittedblobs");
        let include_tags = includes(&q, "tags");
        let query = ListQuery {
            prefix: prefix.clone(),
            delimiter: delimiter.clone(),
            start_after: marker.clone(),
            max_keys: max,
        };
        let page = self
            .store
            .list_blobs(
                self.account(),
                self.container()?,
                query,
                include_uncommitted,
            )
            .await?;
        let endpoint = self.service_endpoint();
        let container = self.container()?;
        let mut w = XmlWriter::new();
        w.open_with(
            "EnumerationResults",
            &[("ServiceEndpoint", &endpoint), ("ContainerName", container)],
        );
        if !prefix.is_empty() {
            w.elem("Prefix", &prefix);
        }
        if let Some(m) = &marker {
            w.elem("Marker", m);
        }
        if let Some(m) = q.get("maxresults") {
            w.elem("MaxResults", m);
        }
        if let Some(d) = &delimiter {
            w.elem("Delimiter", d);
        }
        w.open("Blobs");
        // Blobs and prefixes interleave in name order, as Azure lists them.
        let mut entries: Vec<(&str, ListEntry<'_>)> = page
            .blobs
            .iter()
            .map(|b| (b.object.key.as_str(), ListEntry::Blob(b)))
            .chain(
                page.uncommitted
                    .iter()
                    .map(|n| (n.as_str(), ListEntry::Uncommitted)),
            )
            .chain(
                page.prefixes
                    .iter()
                    .map(|p| (p.as_str(), ListEntry::Prefix)),
            )
            .collect();
        entries.sort_by(|a, b| a.0.cmp(b.0));
        let now = SystemTime::now();
        for (name, entry) in entries {
            match entry {
                ListEntry::Prefix => {
                    w.open("BlobPrefix").elem("Name", name).close("BlobPrefix");
                }
                ListEntry::Uncommitted => {
                    w.open("Blob").elem("Name", name).open("Properties");
                    w.elem("Content-Length", "0")
                        .elem("BlobType", "BlockBlob")
                        .elem("LeaseStatus", "unlocked")
                        .elem("LeaseState", "available")
                        .close("Properties")
                        .close("Blob");
                }
                ListEntry::Blob(b) => {
                    w.open("Blob").elem("Name", name);
                    write_blob_properties(&mut w, b, now);
                    if include_metadata {
                        w.open("Metadata");
                        for (k, v) in names::metadata_for_blob(&b.object.props.user_metadata) {
                            w.elem(&k, &v);
                        }
                        w.close("Metadata");
                    }
                    if include_tags && !b.object.tags.is_empty() {
                        w.open("Tags").open("TagSet");
                        for (k, v) in &b.object.tags {
                            w.open("Tag").elem("Key", k).elem("Value", v).close("Tag");
                        }
                        w.close("TagSet").close("Tags");
                    }
                    w.close("Blob");
                }
            }
        }
        w.close("Blobs");
        w.elem_opt("NextMarker", page.next_marker.as_deref());
        w.close("EnumerationResults");
        Ok(Reply::new(StatusCode::OK).xml(w.finish()))
    }

    // ---- blobs: reads ---------------------------------------------------------------------

    async fn get_blob(&self, head: bool) -> Result<Reply, BlobError> {
        self.authorize(Access::READ_BLOB).await?;
        let range = match self.h("x-ms-range").or_else(|| self.h("range")) {
            Some(r) => Some(request::parse_range(r)?),
            None => None,
        };
        let want_range_md5 = self
            .h("x-ms-range-get-content-md5")
            .is_some_and(|v| v.eq_ignore_ascii_case("true"));
        if want_range_md5 {
            let within = match range {
                Some(RangeSpec::From {
                    first,
                    last: Some(last),
                }) => last - first < MAX_RANGE_MD5,
                Some(RangeSpec::Suffix(n)) => n <= MAX_RANGE_MD5,
                _ => false,
            };
            if !within {
                return Err(BlobError::new(
                    StatusCode::BAD_REQUEST,
                    "OutOfRangeInput",
                    "x-ms-range-get-content-md5 needs a range of at most 4 MiB.",
                ));
            }
        }
        let read = BlobWrite {
            lease_id: self.lease_id(),
            conditions: Conditions::default(),
        };
        let conditions = Conditions::from_headers(self.headers);
        let (container, blob) = (self.container()?, self.blob()?);
        if head {
            let info = self.store.blob(self.account(), container, blob).await?;
            info.lease
                .check_read(read.lease_id.as_deref(), SystemTime::now(), true)?;
            if let Some(r) = self.check_read_conditions(&conditions, &info) {
                return Ok(r);
            }
            let reply = self
                .blob_headers(Reply::new(StatusCode::OK), &info, true)
                .header("content-length", info.object.size.to_string());
            return Ok(reply);
        }
        let got = self
            .store
            .read_blob(self.account(), container, blob, range, &read)
            .await?;
        if let Some(r) = self.check_read_conditions(&conditions, &got.info) {
            return Ok(r);
        }
        let size = got.info.object.size;
        let body = got.body.map_err(|e| std::io::Error::other(e.to_string()));
        match got.range {
            None => {
                let reply = self.blob_headers(Reply::new(StatusCode::OK), &got.info, true);
                Ok(reply.stream(size, body))
            }
            Some((first, last)) => {
                let len = last - first + 1;
                let reply = self
                    .blob_headers(Reply::new(StatusCode::PARTIAL_CONTENT), &got.info, false)
                    .header("content-range", format!("bytes {first}-{last}/{size}"))
                    .header_opt(
                        "x-ms-blob-content-md5",
                        got.info.object.md5.as_ref().map(md5_b64),
                    );
                if want_range_md5 {
                    let data: Vec<Bytes> = body
                        .try_collect()
                        .await
                        .map_err(|e| BlobError::internal(e.to_string()))?;
                    let data = Bytes::from(data.concat());
                    let digest = md5_digest(&data);
                    return Ok(reply.header("content-md5", md5_b64(&digest)).bytes(data));
                }
                Ok(reply.stream(len, body))
            }
        }
    }

    /// `Some(reply)` when a read condition turns the answer into a 304 (or error via Err in
    /// the caller); 412s come back as replies built from the error.
    fn check_read_conditions(&self, c: &Conditions, info: &BlobInfo) -> Option<Reply> {
        match c.check_read(&info.etag, info.object.last_modified) {
            Ok(()) => None,
            Err(CondFailure::NotModified) => Some(
                Reply::new(StatusCode::NOT_MODIFIED)
                    .header("etag", etag_header(&info.etag))
                    .header("last-modified", http_date(info.object.last_modified)),
            ),
            Err(CondFailure::Error(e)) => Some(
                Reply::new(e.status)
                    .header("x-ms-error-code", e.code)
                    .header("content-length", "0"),
            ),
        }
    }

    /// The headers Get Blob and Get Blob Properties share. `whole_md5` adds `Content-MD5`
    /// (the stored whole-blob MD5, only when known).
    fn blob_headers(&self, mut reply: Reply, info: &BlobInfo, whole_md5: bool) -> Reply {
        let o = &info.object;
        let p = &o.props;
        let overrides = match &self.authz {
            Authz::Sas(_, ov) => ov.clone(),
            _ => ResponseOverrides::default(),
        };
        let pick = |ov: &Option<String>, v: &Option<String>| ov.clone().or_else(|| v.clone());
        let now = SystemTime::now();
        reply = reply
            .header("x-ms-blob-type", "BlockBlob")
            .header("etag", etag_header(&info.etag))
            .header("last-modified", http_date(o.last_modified))
            .header("x-ms-creation-time", http_date(info.created))
            .header("accept-ranges", "bytes")
            .header(
                "content-type",
                pick(&overrides.content_type, &p.content_type)
                    .unwrap_or_else(|| "application/octet-stream".into()),
            )
            .header_opt(
                "content-encoding",
                pick(&overrides.content_encoding, &p.content_encoding),
            )
            .header_opt(
                "content-language",
                pick(&overrides.content_language, &p.content_language),
            )
            .header_opt(
                "content-disposition",
                pick(&overrides.content_disposition, &p.content_disposition),
            )
            .header_opt(
                "cache-control",
                pick(&overrides.cache_control, &p.cache_control),
            )
            .header("x-ms-server-encrypted", "false")
            .header("x-ms-access-tier", "Hot")
            .header("x-ms-access-tier-inferred", "true");
        if whole_md5 {
            reply = reply.header_opt("content-md5", o.md5.as_ref().map(md5_b64));
        }
        if !o.tags.is_empty() {
            reply = reply.header("x-ms-tag-count", o.tags.len().to_string());
        }
        reply = lease_headers(reply, &info.lease, now);
        for (k, v) in names::metadata_for_blob(&p.user_metadata) {
            reply = reply.header_dyn(&format!("x-ms-meta-{k}"), &v);
        }
        reply
    }

    async fn get_blob_metadata(&self) -> Result<Reply, BlobError> {
        self.authorize(Access::READ_BLOB).await?;
        let info = self
            .store
            .blob(self.account(), self.container()?, self.blob()?)
            .await?;
        info.lease
            .check_read(self.lease_id().as_deref(), SystemTime::now(), true)?;
        let mut reply = Reply::new(StatusCode::OK)
            .header("etag", etag_header(&info.etag))
            .header("last-modified", http_date(info.object.last_modified));
        for (k, v) in names::metadata_for_blob(&info.object.props.user_metadata) {
            reply = reply.header_dyn(&format!("x-ms-meta-{k}"), &v);
        }
        Ok(reply)
    }

    async fn get_block_list(&self) -> Result<Reply, BlobError> {
        self.authorize(Access::READ_BLOB).await?;
        let kind = self
            .q()
            .get("blocklisttype")
            .unwrap_or("committed")
            .to_ascii_lowercase();
        let (committed, uncommitted) = match kind.as_str() {
            "committed" => (true, false),
            "uncommitted" => (false, true),
            "all" => (true, true),
            other => {
                return Err(BlobError::invalid_query(
                    "blocklisttype",
                    other,
                    "must be committed, uncommitted or all",
                ))
            }
        };
        let lists: BlockLists = self
            .store
            .block_lists(self.account(), self.container()?, self.blob()?)
            .await?;
        if lists.blob.is_none() && lists.uncommitted.is_empty() {
            return Err(BlobError::blob_not_found());
        }
        let mut w = XmlWriter::new();
        w.open("BlockList");
        let section = |w: &mut XmlWriter, name: &str, blocks: &[super::store::BlockInfo]| {
            w.open(name);
            for b in blocks {
                w.open("Block")
                    .elem("Name", &b.id)
                    .elem("Size", &b.size.to_string())
                    .close("Block");
            }
            w.close(name);
        };
        if committed {
            section(&mut w, "CommittedBlocks", &lists.committed);
        }
        if uncommitted {
            section(&mut w, "UncommittedBlocks", &lists.uncommitted);
        }
        w.close("BlockList");
        let mut reply = Reply::new(StatusCode::OK);
        if let Some(info) = &lists.blob {
            reply = reply
                .header("etag", etag_header(&info.etag))
                .header("last-modified", http_date(info.object.last_modified))
                .header("x-ms-blob-content-length", info.object.size.to_string());
        }
        Ok(reply.xml(w.finish()))
    }

    async fn get_tags(&self) -> Result<Reply, BlobError> {
        self.authorize(Access::TAGS).await?;
        let info = self
            .store
            .blob(self.account(), self.container()?, self.blob()?)
            .await?;
        let mut w = XmlWriter::new();
        w.open("Tags").open("TagSet");
        for (k, v) in &info.object.tags {
            w.open("Tag").elem("Key", k).elem("Value", v).close("Tag");
        }
        w.close("TagSet").close("Tags");
        Ok(Reply::new(StatusCode::OK).xml(w.finish()))
    }

    // ---- blobs: writes --------------------------------------------------------------------

    fn content_length(&self, limit: u64) -> Result<u64, BlobError> {
        let len = match self.h("content-length") {
            Some(v) => v
                .trim()
                .parse::<u64>()
                .map_err(|_| BlobError::invalid_header("Content-Length", "must be a number"))?,
            None => {
                return Err(BlobError::new(
                    StatusCode::LENGTH_REQUIRED,
                    "MissingContentLengthHeader",
                    "Content-Length HTTP header is missing.",
                ))
            }
        };
        if len > limit {
            return Err(BlobError::body_too_large(limit));
        }
        Ok(len)
    }

    fn body_check(&self, len: u64) -> Result<BodyCheck, BlobError> {
        let mut check = BodyCheck {
            content_md5: parse_md5(self.h("content-md5"), "Content-MD5")?,
            expected_len: Some(len),
            ..Default::default()
        };
        if let Some(crc) = self.h("x-ms-content-crc64") {
            check
                .expected
                .push((ChecksumAlgo::Crc64Nvme, crc64_as_s3(crc)?));
        }
        Ok(check)
    }

    /// Content headers for a new blob: `x-ms-blob-*` first, plain headers as a fallback when
    /// `plain_fallback` (Put Blob takes both).
    fn new_blob_props(&self, plain_fallback: bool) -> Result<ObjectProps, BlobError> {
        let get = |ms: &str, plain: &str| {
            self.h(ms)
                .or_else(|| if plain_fallback { self.h(plain) } else { None })
                .map(str::to_string)
        };
        Ok(ObjectProps {
            content_type: get("x-ms-blob-content-type", "content-type")
                .or_else(|| Some("application/octet-stream".into())),
            content_encoding: get("x-ms-blob-content-encoding", "content-encoding"),
            content_language: get("x-ms-blob-content-language", "content-language"),
            content_disposition: get("x-ms-blob-content-disposition", "content-disposition"),
            cache_control: get("x-ms-blob-cache-control", "cache-control"),
            expires: None,
            user_metadata: names::metadata_from_blob(meta_headers(self.headers))?,
        })
    }

    fn tags_header(&self) -> Result<Vec<(String, String)>, BlobError> {
        match self.h("x-ms-tags") {
            None => Ok(Vec::new()),
            Some(raw) => {
                let pairs = parse_query(Some(raw))?;
                validate_tags(&pairs)?;
                Ok(pairs)
            }
        }
    }

    async fn put_blob(&self, body: Incoming) -> Result<Reply, BlobError> {
        self.authorize(Access::WRITE_BLOB).await?;
        let blob = self.blob()?;
        names::validate_blob_name(blob)?;
        match self.h("x-ms-blob-type") {
            None => return Err(BlobError::missing_header("x-ms-blob-type")),
            Some(t) if t.eq_ignore_ascii_case("BlockBlob") => {}
            Some(_) => {
                return Err(BlobError::invalid_header(
                    "x-ms-blob-type",
                    "only BlockBlob is supported by this server (no append or page blobs)",
                ))
            }
        }
        let len = self.content_length(MAX_PUT_BLOB)?;
        let check = self.body_check(len)?;
        let props = self.new_blob_props(true)?;
        let stored_md5 = parse_md5(self.h("x-ms-blob-content-md5"), "x-ms-blob-content-md5")?;
        let tags = self.tags_header()?;
        let info = self
            .store
            .put_blob(
                self.account(),
                self.container()?,
                blob,
                props,
                tags,
                stored_md5,
                body_stream(body),
                check,
                &self.write(),
            )
            .await?;
        Ok(Reply::new(StatusCode::CREATED)
            .header("etag", etag_header(&info.etag))
            .header("last-modified", http_date(info.object.last_modified))
            .header_opt("content-md5", info.object.md5.as_ref().map(md5_b64))
            .header_opt("x-ms-content-crc64", self.h("x-ms-content-crc64"))
            .header("x-ms-request-server-encrypted", "false"))
    }

    async fn put_block(&self, body: Incoming) -> Result<Reply, BlobError> {
        self.authorize(Access::WRITE_BLOB).await?;
        let blob = self.blob()?;
        names::validate_blob_name(blob)?;
        let block_id = self.block_id()?;
        let len = self.content_length(MAX_BLOCK)?;
        let check = self.body_check(len)?;
        let md5 = check.content_md5;
        self.store
            .put_block(
                self.account(),
                self.container()?,
                blob,
                &block_id,
                body_stream(body),
                check,
                self.lease_id().as_deref(),
            )
            .await?;
        Ok(Reply::new(StatusCode::CREATED)
            .header_opt("content-md5", md5.as_ref().map(md5_b64))
            .header_opt("x-ms-content-crc64", self.h("x-ms-content-crc64"))
            .header("x-ms-request-server-encrypted", "false"))
    }

    fn block_id(&self) -> Result<String, BlobError> {
        let id = self
            .q()
            .get("blockid")
            .ok_or_else(|| BlobError::invalid_query("blockid", "", "Put Block needs a blockid"))?
            .to_string();
        validate_block_id(&id)?;
        Ok(id)
    }

    async fn put_block_list(&self, body: Incoming) -> Result<Reply, BlobError> {
        self.authorize(Access::WRITE_BLOB).await?;
        let blob = self.blob()?;
        names::validate_blob_name(blob)?;
        let doc = read_small_body(body, 8 << 20).await?;
        if let Some(md5) = parse_md5(self.h("content-md5"), "Content-MD5")? {
            if md5_digest(&doc) != md5 {
                return Err(BlobError::md5_mismatch());
            }
        }
        let blocks = xml::parse_block_list(&doc)?;
        for (_, id) in &blocks {
            validate_block_id(id).map_err(|_| BlobError::invalid_block_list())?;
        }
        let props = self.new_blob_props(false)?;
        let stored_md5 = parse_md5(self.h("x-ms-blob-content-md5"), "x-ms-blob-content-md5")?;
        let tags = self.tags_header()?;
        let info = self
            .store
            .commit_blocks(
                self.account(),
                self.container()?,
                blob,
                blocks,
                props,
                tags,
                stored_md5,
                &self.write(),
            )
            .await?;
        Ok(Reply::new(StatusCode::CREATED)
            .header("etag", etag_header(&info.etag))
            .header("last-modified", http_date(info.object.last_modified))
            .header("x-ms-request-server-encrypted", "false"))
    }

    async fn delete_blob(&self) -> Result<Reply, BlobError> {
        self.authorize(Access::DELETE_BLOB).await?;
        self.store
            .delete_blob(
                self.account(),
                self.container()?,
                self.blob()?,
                &self.write(),
            )
            .await?;
        Ok(Reply::new(StatusCode::ACCEPTED).header("x-ms-delete-type-permanent", "true"))
    }

    async fn set_blob_properties(&self) -> Result<Reply, BlobError> {
        self.authorize(Access::UPDATE_BLOB).await?;
        if self.h("x-ms-blob-content-length").is_some()
            || self.h("x-ms-sequence-number-action").is_some()
        {
            return Err(BlobError::new(
                StatusCode::CONFLICT,
                "InvalidBlobType",
                "Page blob properties do not apply to block blobs.",
            ));
        }
        let info = self
            .store
            .blob(self.account(), self.container()?, self.blob()?)
            .await?;
        let h = |n: &str| self.h(n).map(str::to_string);
        let props = ObjectProps {
            content_type: h("x-ms-blob-content-type"),
            content_encoding: h("x-ms-blob-content-encoding"),
            content_language: h("x-ms-blob-content-language"),
            content_disposition: h("x-ms-blob-content-disposition"),
            cache_control: h("x-ms-blob-cache-control"),
            expires: None,
            user_metadata: info.object.props.user_metadata.clone(),
        };
        let md5 = parse_md5(self.h("x-ms-blob-content-md5"), "x-ms-blob-content-md5")?;
        let update = BlobUpdate {
            props: Some(props),
            md5: Some(md5),
            ..Default::default()
        };
        self.apply_update(update, StatusCode::OK).await
    }

    async fn set_blob_metadata(&self) -> Result<Reply, BlobError> {
        self.authorize(Access::UPDATE_BLOB).await?;
        let update = BlobUpdate {
            metadata: Some(names::metadata_from_blob(meta_headers(self.headers))?),
            ..Default::default()
        };
        self.apply_update(update, StatusCode::OK).await
    }

    async fn set_tags(&self, body: Incoming) -> Result<Reply, BlobError> {
        self.authorize(Access::TAGS).await?;
        let doc = read_small_body(body, 64 << 10).await?;
        let tags = parse_tags(&doc)?;
        validate_tags(&tags)?;
        let update = BlobUpdate {
            tags: Some(tags),
            ..Default::default()
        };
        self.apply_update(update, StatusCode::NO_CONTENT).await
    }

    async fn lease_blob(&self) -> Result<Reply, BlobError> {
        self.authorize(Access::UPDATE_BLOB).await?;
        let (action, status, write) = self.lease_request()?;
        let update = BlobUpdate {
            lease: Some(action),
            ..Default::default()
        };
        let (info, outcome) = self
            .store
            .update_blob(
                self.account(),
                self.container()?,
                self.blob()?,
                update,
                &write,
            )
            .await?;
        Ok(lease_reply(
            status,
            &info.etag,
            info.object.last_modified,
            outcome,
        ))
    }

    async fn apply_update(
        &self,
        update: BlobUpdate,
        status: StatusCode,
    ) -> Result<Reply, BlobError> {
        let (info, _) = self
            .store
            .update_blob(
                self.account(),
                self.container()?,
                self.blob()?,
                update,
                &self.write(),
            )
            .await?;
        Ok(Reply::new(status)
            .header("etag", etag_header(&info.etag))
            .header("last-modified", http_date(info.object.last_modified)))
    }

    // ---- copies ---------------------------------------------------------------------------

    /// Resolves `x-ms-copy-source` to a blob on this node and checks the caller may read it:
    /// a SAS on the source URL, the same account under SharedKey, or a public container.
    async fn copy_source(
        &self,
        range: Option<(u64, u64)>,
    ) -> Result<(String, CopySource), BlobError> {
        let url = self.h("x-ms-copy-source").unwrap_or("");
        let cannot = |why: &str| {
            BlobError::new(
                StatusCode::FORBIDDEN,
                "CannotVerifyCopySource",
                format!("Could not verify the copy source: {why}"),
            )
        };
        let uri: http::Uri = url
            .parse()
            .map_err(|_| BlobError::invalid_header("x-ms-copy-source", "not a URL"))?;
        let host = uri.authority().map(|a| a.as_str().to_string());
        let src = request::resource_path(host.as_deref(), uri.path(), |a| {
            self.store.account_key(a).is_some()
        })?;
        let (Some(container), Some(blob)) = (src.container.clone(), src.blob.clone()) else {
            return Err(BlobError::invalid_header(
                "x-ms-copy-source",
                "must name a blob",
            ));
        };
        let Some(key) = account_key(self.store, &src.account) else {
            return Err(cannot("the source is not on this node"));
        };
        let query = parse_query(uri.query())?;
        let target = Target {
            account: &src.account,
            container: Some(&container),
            blob: Some(&blob),
        };
        if sas::is_sas(&query) {
            let (grant, _) = sas::verify(
                &query,
                &target,
                &key,
                SystemTime::now(),
                Some(self.peer.ip()),
                false,
            )
            .map_err(|e| cannot(&e.message))?;
            sas::authorize(&grant, Access::READ_BLOB, &target).map_err(|e| cannot(&e.message))?;
        } else if !(matches!(self.authz, Authz::Key) && src.account == self.path.account) {
            let public = self
                .store
                .container(&src.account, &container)
                .await
                .map(|c| c.public_access != PublicAccess::Off)
                .unwrap_or(false);
            if !public {
                return Err(cannot(
                    "no SAS on the source and the source container is private",
                ));
            }
        }
        Ok((
            src.account.clone(),
            CopySource {
                bucket: container,
                key: blob,
                range,
            },
        ))
    }

    async fn copy_blob(&self) -> Result<Reply, BlobError> {
        self.authorize(Access::WRITE_BLOB).await?;
        let blob = self.blob()?;
        names::validate_blob_name(blob)?;
        let (src_account, src) = self.copy_source(None).await?;
        let metadata = meta_headers(self.headers);
        let metadata = if metadata.is_empty() {
            None
        } else {
            Some(names::metadata_from_blob(metadata)?)
        };
        let info = self
            .store
            .copy_blob(
                &src_account,
                src,
                self.account(),
                self.container()?,
                blob,
                metadata,
                &self.write(),
            )
            .await
            .map_err(source_not_found)?;
        Ok(Reply::new(StatusCode::ACCEPTED)
            .header("etag", etag_header(&info.etag))
            .header("last-modified", http_date(info.object.last_modified))
            .header("x-ms-copy-id", new_request_id())
            .header("x-ms-copy-status", "success"))
    }

    async fn put_blob_from_url(&self) -> Result<Reply, BlobError> {
        self.authorize(Access::WRITE_BLOB).await?;
        let blob = self.blob()?;
        names::validate_blob_name(blob)?;
        if !self
            .h("x-ms-blob-type")
            .is_some_and(|t| t.eq_ignore_ascii_case("BlockBlob"))
        {
            return Err(BlobError::invalid_header(
                "x-ms-blob-type",
                "must be BlockBlob",
            ));
        }
        let (src_account, src) = self.copy_source(None).await?;
        let copy_props = self
            .h("x-ms-copy-source-blob-properties")
            .is_none_or(|v| !v.eq_ignore_ascii_case("false"));
        let metadata = names::metadata_from_blob(meta_headers(self.headers))?;
        let mut info = self
            .store
            .copy_blob(
                &src_account,
                src,
                self.account(),
                self.container()?,
                blob,
                Some(metadata),
                &self.write(),
            )
            .await
            .map_err(source_not_found)?;
        if !copy_props || self.h("x-ms-blob-content-type").is_some() {
            // Properties named on the request replace the source's.
            let mut props = self.new_blob_props(false)?;
            props.user_metadata = info.object.props.user_metadata.clone();
            let update = BlobUpdate {
                props: Some(props),
                ..Default::default()
            };
            let write = BlobWrite {
                lease_id: self.lease_id(),
                conditions: Conditions::default(),
            };
            info = self
                .store
                .update_blob(self.account(), self.container()?, blob, update, &write)
                .await?
                .0;
        }
        Ok(Reply::new(StatusCode::CREATED)
            .header("etag", etag_header(&info.etag))
            .header("last-modified", http_date(info.object.last_modified))
            .header_opt("content-md5", info.object.md5.as_ref().map(md5_b64))
            .header("x-ms-request-server-encrypted", "false"))
    }

    async fn put_block_from_url(&self) -> Result<Reply, BlobError> {
        self.authorize(Access::WRITE_BLOB).await?;
        let blob = self.blob()?;
        names::validate_blob_name(blob)?;
        let block_id = self.block_id()?;
        let range = match self.h("x-ms-source-range") {
            None => None,
            Some(r) => match request::parse_range(r)? {
                RangeSpec::From {
                    first,
                    last: Some(last),
                } => {
                    if last - first + 1 > MAX_BLOCK {
                        return Err(BlobError::body_too_large(MAX_BLOCK));
                    }
                    Some((first, last))
                }
                _ => {
                    return Err(BlobError::invalid_header(
                        "x-ms-source-range",
                        "must be bytes=start-end",
                    ))
                }
            },
        };
        let (src_account, src) = self.copy_source(range).await?;
        self.store
            .put_block_from(
                &src_account,
                src,
                self.account(),
                self.container()?,
                blob,
                &block_id,
                self.lease_id().as_deref(),
            )
            .await
            .map_err(source_not_found)?;
        Ok(Reply::new(StatusCode::CREATED).header("x-ms-request-server-encrypted", "false"))
    }
}

enum ListEntry<'a> {
    Blob(&'a BlobInfo),
    Uncommitted,
    Prefix,
}

fn write_blob_properties(w: &mut XmlWriter, b: &BlobInfo, now: SystemTime) {
    let o = &b.object;
    let p = &o.props;
    w.open("Properties")
        .elem("Creation-Time", &http_date(b.created))
        .elem("Last-Modified", &http_date(o.last_modified))
        .elem("Etag", &etag_header(&b.etag))
        .elem("Content-Length", &o.size.to_string())
        .elem(
            "Content-Type",
            p.content_type
                .as_deref()
                .unwrap_or("application/octet-stream"),
        )
        .elem_opt("Content-Encoding", p.content_encoding.as_deref())
        .elem_opt("Content-Language", p.content_language.as_deref())
        .elem_opt("Content-CRC64", None)
        .elem_opt("Content-MD5", o.md5.as_ref().map(md5_b64).as_deref())
        .elem_opt("Cache-Control", p.cache_control.as_deref())
        .elem_opt("Content-Disposition", p.content_disposition.as_deref())
        .elem("BlobType", "BlockBlob")
        .elem("AccessTier", "Hot")
        .elem("AccessTierInferred", "true")
        .elem("LeaseStatus", b.lease.state(now).status())
        .elem("LeaseState", b.lease.state(now).as_str());
    if let Some(d) = b.lease.duration_name(now) {
        w.elem("LeaseDuration", d);
    }
    w.elem("ServerEncrypted", "false");
    if !o.tags.is_empty() {
        w.elem("TagCount", &o.tags.len().to_string());
    }
    w.close("Properties");
}

/// The answer to a lease request: the resource's ETag and Last-Modified, plus the lease id
/// (acquire / renew / change) or the seconds left (break).
fn lease_reply(
    status: StatusCode,
    etag: &str,
    last_modified: SystemTime,
    outcome: Option<super::lease::LeaseOutcome>,
) -> Reply {
    let (id, time_secs) = outcome.map_or((None, None), |o| (o.id, o.time_secs));
    Reply::new(status)
        .header("etag", etag_header(etag))
        .header("last-modified", http_date(last_modified))
        .header_opt("x-ms-lease-id", id)
        .header_opt("x-ms-lease-time", time_secs.map(|t| t.to_string()))
}

fn lease_headers(reply: Reply, lease: &super::lease::Lease, now: SystemTime) -> Reply {
    let state: LeaseState = lease.state(now);
    reply
        .header("x-ms-lease-state", state.as_str())
        .header("x-ms-lease-status", state.status())
        .header_opt("x-ms-lease-duration", lease.duration_name(now))
}

fn no_credentials() -> BlobError {
    BlobError::new(
        StatusCode::UNAUTHORIZED,
        "NoAuthenticationInformation",
        "Server failed to authenticate the request. Please refer to the information in the www-authenticate header.",
    )
}

/// A store's NotFound for the copy source becomes CannotVerifyCopySource, as Azure reports it.
fn source_not_found(e: BlobError) -> BlobError {
    if e.code == "BlobNotFound" {
        BlobError::new(
            StatusCode::NOT_FOUND,
            "CannotVerifyCopySource",
            "The specified copy source blob does not exist.",
        )
    } else {
        e
    }
}

fn authenticate(
    store: &Arc<dyn BlobStore>,
    parts: &http::request::Parts,
    path: &ResourcePath,
    query: &[(String, String)],
    peer: SocketAddr,
) -> Result<Authz, BlobError> {
    if let Some(value) = header(&parts.headers, "authorization") {
        let auth = auth::parse_authorization(value)?;
        if auth.account != path.account {
            return Err(BlobError::authentication_failed(format!(
                "The account in the Authorization header ({}) is not the account in the URL ({}).",
                auth.account, path.account
            )));
        }
        let key = account_key(store, &path.account)
            .ok_or_else(|| BlobError::authentication_failed("Unknown account."))?;
        let req = SignedRequest {
            method: parts.method.as_str(),
            raw_path: parts.uri.path(),
            query,
            headers: &parts.headers,
            path_style: path.path_style,
        };
        auth::verify_shared_key(&req, &auth, &path.account, &key)?;
        return Ok(Authz::Key);
    }
    if sas::is_sas(query) {
        let key = account_key(store, &path.account)
            .ok_or_else(|| BlobError::authentication_failed("Unknown account."))?;
        let target = Target {
            account: &path.account,
            container: path.container.as_deref(),
            blob: path.blob.as_deref(),
        };
        let (grant, overrides) = sas::verify(
            query,
            &target,
            &key,
            SystemTime::now(),
            Some(peer.ip()),
            false,
        )?;
        return Ok(Authz::Sas(grant, overrides));
    }
    Ok(Authz::Anonymous)
}

fn max_results(q: &Query<'_>) -> Result<usize, BlobError> {
    match q.uint("maxresults")? {
        None => Ok(5000),
        Some(0) => Err(BlobError::invalid_query(
            "maxresults",
            "0",
            "must be at least 1",
        )),
        Some(n) => Ok(n.min(5000) as usize),
    }
}

fn includes(q: &Query<'_>, what: &str) -> bool {
    q.get("include")
        .is_some_and(|v| v.split(',').any(|i| i.trim().eq_ignore_ascii_case(what)))
}

/// `x-ms-meta-*` headers as `(name, value)`, names without the prefix.
fn meta_headers(h: &HeaderMap) -> Vec<(String, String)> {
    h.iter()
        .filter_map(|(n, v)| {
            let name = n.as_str().strip_prefix("x-ms-meta-")?;
            Some((name.to_string(), v.to_str().ok()?.to_string()))
        })
        .collect()
}

fn parse_md5(value: Option<&str>, name: &str) -> Result<Option<[u8; 16]>, BlobError> {
    let Some(v) = value else {
        return Ok(None);
    };
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(v.trim())
        .ok()
        .and_then(|b| <[u8; 16]>::try_from(b).ok())
        .ok_or_else(|| {
            BlobError::new(
                StatusCode::BAD_REQUEST,
                "InvalidMd5",
                format!("The MD5 value specified in {name} is invalid. MD5 must be 128 bits and Base64-encoded."),
            )
        })?;
    Ok(Some(bytes))
}

/// Azure sends CRC-64/NVME as base64 of the little-endian value; the shared checksum code
/// uses S3's big-endian encoding.
fn crc64_as_s3(value: &str) -> Result<String, BlobError> {
    let mut bytes: [u8; 8] = base64::engine::general_purpose::STANDARD
        .decode(value.trim())
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| {
            BlobError::invalid_header("x-ms-content-crc64", "must be 8 bytes, base64")
        })?;
    bytes.reverse();
    Ok(base64::engine::general_purpose::STANDARD.encode(bytes))
}

fn md5_digest(data: &[u8]) -> [u8; 16] {
    use md5::Digest as _;
    md5::Md5::digest(data).into()
}

fn validate_block_id(id: &str) -> Result<(), BlobError> {
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(id)
        .map_err(|_| BlobError::invalid_block_id("It is not valid base64."))?;
    if decoded.is_empty() || decoded.len() > MAX_BLOCK_ID {
        return Err(BlobError::invalid_block_id("It must decode to 1-64 bytes."));
    }
    Ok(())
}

pub(crate) fn validate_tags(tags: &[(String, String)]) -> Result<(), BlobError> {
    let ok_char = |c: char| c.is_ascii_alphanumeric() || " +-./:=_".contains(c);
    if tags.len() > 10 {
        return Err(BlobError::new(
            StatusCode::BAD_REQUEST,
            "InvalidTag",
            "A blob may have at most 10 tags.",
        ));
    }
    for (k, v) in tags {
        if k.is_empty()
            || k.len() > 128
            || v.len() > 256
            || !k.chars().all(ok_char)
            || !v.chars().all(ok_char)
        {
            return Err(BlobError::new(
                StatusCode::BAD_REQUEST,
                "InvalidTag",
                format!("The tag '{k}' is invalid."),
            ));
        }
    }
    Ok(())
}

pub(crate) fn parse_tags(doc: &[u8]) -> Result<Vec<(String, String)>, BlobError> {
    use quick_xml::events::Event;
    let text = std::str::from_utf8(doc).map_err(|_| BlobError::invalid_xml("body is not UTF-8"))?;
    // Not trimmed: tag keys and values keep their spaces. Text inside <Key> / <Value> may
    // arrive in several pieces (text, entity and character references, CDATA).
    let mut reader = quick_xml::Reader::from_str(text);
    let mut stack: Vec<Vec<u8>> = Vec::new();
    let mut tags = Vec::new();
    let (mut key, mut value) = (None::<String>, None::<String>);
    let bad = |e: &dyn std::fmt::Display| BlobError::invalid_xml(e.to_string());
    loop {
        let piece = match reader.read_event().map_err(|e| bad(&e))? {
            Event::Start(e) => {
                match e.name().as_ref() {
                    b"Key" => key = Some(String::new()),
                    b"Value" => value = Some(String::new()),
                    _ => {}
                }
                stack.push(e.name().as_ref().to_vec());
                continue;
            }
            Event::End(_) => {
                let closed_tag = stack.pop().as_deref() == Some(b"Tag".as_slice());
                if closed_tag {
                    let (Some(k), Some(v)) = (key.take(), value.take()) else {
                        return Err(BlobError::invalid_xml("a Tag needs a Key and a Value"));
                    };
                    tags.push((k, v));
                }
                continue;
            }
            Event::Empty(e) => {
                match e.name().as_ref() {
                    b"Key" => key = Some(String::new()),
                    b"Value" => value = Some(String::new()),
                    _ => {}
                }
                continue;
            }
            Event::Text(t) => {
                let s = t.decode().map_err(|e| bad(&e))?;
                quick_xml::escape::unescape(&s)
                    .map_err(|e| bad(&e))?
                    .into_owned()
            }
            Event::GeneralRef(r) => super::xml::resolve_ref(&r)?,
            Event::CData(c) => String::from_utf8_lossy(&c).into_owned(),
            Event::Eof => break,
            _ => continue,
        };
        match stack.last().map(Vec::as_slice) {
            Some(b"Key") => key.get_or_insert_default().push_str(&piece),
            Some(b"Value") => value.get_or_insert_default().push_str(&piece),
            _ if piece.trim().is_empty() => {}
            _ => return Err(BlobError::invalid_xml("unexpected text")),
        }
    }
    if !stack.is_empty() {
        return Err(BlobError::invalid_xml("unclosed element"));
    }
    Ok(tags)
}

/// Checks a Set Container ACL body: empty (whitespace), or a `<SignedIdentifiers>` document
/// without stored access policies (which this server does not support).
pub(crate) fn check_acl_body(doc: &[u8]) -> Result<(), BlobError> {
    use quick_xml::events::Event;
    if doc.iter().all(u8::is_ascii_whitespace) {
        return Ok(());
    }
    validate_root(doc, "SignedIdentifiers")?;
    let text = std::str::from_utf8(doc).map_err(|_| BlobError::invalid_xml("body is not UTF-8"))?;
    let mut reader = quick_xml::Reader::from_str(text);
    loop {
        match reader
            .read_event()
            .map_err(|e| BlobError::invalid_xml(e.to_string()))?
        {
            // Any spelling: `<SignedIdentifier Id="…">`, `<SignedIdentifier >`, empty, prefixed.
            Event::Start(e) | Event::Empty(e) if e.local_name().as_ref() == b"SignedIdentifier" => {
                return Err(BlobError::new(
                    StatusCode::BAD_REQUEST,
                    "InvalidXmlNodeValue",
                    "Stored access policies are not supported by this server; send an empty SignedIdentifiers list.",
                ));
            }
            Event::Eof => return Ok(()),
            _ => {}
        }
    }
}

/// Checks that `doc` is well-formed XML whose root element is `root`.
pub(crate) fn validate_root(doc: &[u8], root: &str) -> Result<(), BlobError> {
    use quick_xml::events::Event;
    let text = std::str::from_utf8(doc).map_err(|_| BlobError::invalid_xml("body is not UTF-8"))?;
    let mut reader = quick_xml::Reader::from_str(text);
    let mut depth = 0i64;
    let mut saw_root = false;
    loop {
        let event = reader
            .read_event()
            .map_err(|e| BlobError::invalid_xml(e.to_string()))?;
        let (is_root_name, opens) = match &event {
            Event::Start(e) => (e.name().as_ref() == root.as_bytes(), true),
            Event::Empty(e) => (e.name().as_ref() == root.as_bytes(), false),
            Event::End(_) => {
                depth -= 1;
                continue;
            }
            Event::Eof => break,
            _ => continue,
        };
        if depth == 0 {
            if saw_root || !is_root_name {
                return Err(BlobError::invalid_xml(format!(
                    "expected one <{root}> element"
                )));
            }
            saw_root = true;
        }
        if opens {
            depth += 1;
        }
    }
    if !saw_root || depth != 0 {
        return Err(BlobError::invalid_xml(format!(
            "expected one <{root}> element"
        )));
    }
    Ok(())
}

fn lease_action(h: &HeaderMap) -> Result<LeaseAction, BlobError> {
    let get = |n: &str| header(h, n).map(str::to_string);
    let need = |n: &str| get(n).ok_or_else(|| BlobError::missing_header(n));
    let action = need("x-ms-lease-action")?.to_ascii_lowercase();
    let int = |n: &str| -> Result<Option<i64>, BlobError> {
        get(n)
            .map(|v| {
                v.trim()
                    .parse::<i64>()
                    .map_err(|_| BlobError::invalid_header(n, "must be a number"))
            })
            .transpose()
    };
    Ok(match action.as_str() {
        "acquire" => LeaseAction::Acquire {
            duration_secs: int("x-ms-lease-duration")?
                .ok_or_else(|| BlobError::missing_header("x-ms-lease-duration"))?,
            proposed_id: get("x-ms-proposed-lease-id"),
        },
        "renew" => LeaseAction::Renew {
            id: need("x-ms-lease-id")?,
        },
        "change" => LeaseAction::Change {
            id: need("x-ms-lease-id")?,
            proposed_id: need("x-ms-proposed-lease-id")?,
        },
        "release" => LeaseAction::Release {
            id: need("x-ms-lease-id")?,
        },
        "break" => LeaseAction::Break {
            period_secs: int("x-ms-lease-break-period")?,
        },
        _ => {
            return Err(BlobError::invalid_header(
                "x-ms-lease-action",
                "must be acquire, renew, change, release or break",
            ))
        }
    })
}

fn lease_status(action: &LeaseAction) -> StatusCode {
    match action {
        LeaseAction::Acquire { .. } => StatusCode::CREATED,
        LeaseAction::Break { .. } => StatusCode::ACCEPTED,
        _ => StatusCode::OK,
    }
}

/// The request body as the store's byte stream.
fn body_stream(body: Incoming) -> ByteStream {
    let stream = http_body_util::BodyStream::new(body).filter_map(|frame| async move {
        match frame {
            Ok(f) => f.into_data().ok().map(Ok),
            Err(e) => Some(Err(StoreError::IncompleteBody(e.to_string()))),
        }
    });
    Box::pin(sync_wrapper::SyncStream::new(stream))
}

/// Reads a small request body (XML documents) up to `limit` bytes.
async fn read_small_body(body: Incoming, limit: usize) -> Result<Bytes, BlobError> {
    let limited = http_body_util::Limited::new(body, limit);
    match limited.collect().await {
        Ok(c) => Ok(c.to_bytes()),
        Err(e) => {
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some()
            {
                Err(BlobError::body_too_large(limit as u64))
            } else {
                Err(BlobError::invalid_input(format!(
                    "could not read the request body: {e}"
                )))
            }
        }
    }
}

/// The document Get Blob Service Properties returns until one is set.
const DEFAULT_SERVICE_PROPERTIES: &str = "<?xml version=\"1.0\" encoding=\"utf-8\"?><StorageServiceProperties><Logging><Version>1.0</Version><Read>false</Read><Write>false</Write><Delete>false</Delete><RetentionPolicy><Enabled>false</Enabled></RetentionPolicy></Logging><HourMetrics><Version>1.0</Version><Enabled>false</Enabled><RetentionPolicy><Enabled>false</Enabled></RetentionPolicy></HourMetrics><MinuteMetrics><Version>1.0</Version><Enabled>false</Enabled><RetentionPolicy><Enabled>false</Enabled></RetentionPolicy></MinuteMetrics><Cors /><DeleteRetentionPolicy><Enabled>false</Enabled></DeleteRetentionPolicy><StaticWebsite><Enabled>false</Enabled></StaticWebsite></StorageServiceProperties>";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc64_is_reencoded_big_endian() {
        let le = base64::engine::general_purpose::STANDARD.encode([1u8, 2, 3, 4, 5, 6, 7, 8]);
        let be = crc64_as_s3(&le).unwrap();
        assert_eq!(
            base64::engine::general_purpose::STANDARD
                .decode(be)
                .unwrap(),
            vec![8, 7, 6, 5, 4, 3, 2, 1]
        );
        assert!(crc64_as_s3("AAAA").is_err());
    }

    #[test]
    fn block_ids() {
        validate_block_id("YmxvY2stMDAwMDE=").unwrap();
        assert!(validate_block_id("not base64!").is_err());
        assert!(validate_block_id("").is_err());
        let long = base64::engine::general_purpose::STANDARD.encode([0u8; 65]);
        assert_eq!(validate_block_id(&long).unwrap_err().code, "InvalidBlockId");
    }

    #[test]
    fn tags_documents() {
        let doc = b"<?xml version=\"1.0\"?><Tags><TagSet><Tag><Key>k1</Key><Value>v1</Value></Tag><Tag><Key>k2</Key><Value/></Tag></TagSet></Tags>";
        assert_eq!(
            parse_tags(doc).unwrap(),
            vec![("k1".into(), "v1".into()), ("k2".into(), String::new())]
        );
        assert!(parse_tags(b"<Tags><TagSet><Tag><Key>k</Key></Tag></TagSet></Tags>").is_err());
        // Found by the blob_xml_bodies fuzz target: what Get Blob Tags writes (empty values
        // as <Value></Value>, escaped characters, spaces) must parse back unchanged.
        let doc = b"<Tags>\n <TagSet>\n  <Tag><Key> a b </Key><Value></Value></Tag>\n  <Tag><Key>x&amp;y&#65;</Key><Value>1 &lt; 2</Value></Tag>\n </TagSet>\n</Tags>";
        assert_eq!(
            parse_tags(doc).unwrap(),
            vec![
                (" a b ".into(), String::new()),
                ("x&yA".into(), "1 < 2".into())
            ]
        );
        assert!(validate_tags(&[("bad key!".into(), "v".into())]).is_err());
    }

    #[test]
    fn xml_roots() {
        validate_root(b"<SignedIdentifiers />", "SignedIdentifiers").unwrap();
        validate_root(
            b"<?xml version=\"1.0\"?><StorageServiceProperties><Cors/></StorageServiceProperties>",
            "StorageServiceProperties",
        )
        .unwrap();
        assert!(validate_root(b"<Other/>", "SignedIdentifiers").is_err());
        assert!(validate_root(b"<SignedIdentifiers>", "SignedIdentifiers").is_err());
    }

    #[test]
    fn acl_bodies_with_stored_policies_are_refused() {
        check_acl_body(b"  \n").unwrap();
        check_acl_body(b"<?xml version=\"1.0\"?><SignedIdentifiers />").unwrap();
        check_acl_body(b"<SignedIdentifiers>\n</SignedIdentifiers>").unwrap();
        // Only the exact `<SignedIdentifier>` spelling used to be refused; these were accepted
        // and their policies silently dropped (found with the blob_xml_bodies fuzz target).
        for body in [
            &b"<SignedIdentifiers><SignedIdentifier><Id>a</Id></SignedIdentifier></SignedIdentifiers>"[..],
            b"<SignedIdentifiers><SignedIdentifier ><Id>a</Id></SignedIdentifier ></SignedIdentifiers>",
            b"<SignedIdentifiers><SignedIdentifier Id=\"a\"/></SignedIdentifiers>",
            b"<SignedIdentifiers><x:SignedIdentifier xmlns:x=\"u\"/></SignedIdentifiers>",
        ] {
            let err = check_acl_body(body).unwrap_err();
            assert_eq!(err.code, "InvalidXmlNodeValue", "{}", String::from_utf8_lossy(body));
        }
    }
}
