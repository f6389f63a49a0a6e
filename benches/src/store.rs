//! One object-store interface over both protocols, so workloads are protocol-blind.

use bytes::Bytes;
use serde::Serialize;

use crate::blob::Blob;
use crate::http::HttpClient;
use crate::s3::S3;
use crate::sigv4::SigV4;
use crate::BenchError;

/// The wire protocol of a target.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// S3 with SigV4.
    S3,
    /// Azure Blob with SharedKey (or SAS).
    Blob,
}

impl std::fmt::Display for Protocol {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Protocol::S3 => "s3",
            Protocol::Blob => "blob",
        })
    }
}

/// Where and how to connect.
#[derive(Clone, Debug, Serialize)]
pub struct Target {
    /// `http://host:port`.
    pub endpoint: String,
    /// Protocol spoken there.
    pub protocol: Protocol,
    /// S3 access key / Blob account name.
    pub account: String,
    /// S3 secret / Blob account key (base64).
    #[serde(skip)]
    pub key: String,
    /// Bucket or container.
    pub bucket: String,
    /// SigV4 region.
    pub region: String,
    /// Blob SAS token used instead of SharedKey.
    #[serde(skip)]
    pub sas: Option<String>,
    /// S3 only: virtual-hosted-style requests (`Host: <bucket>.<domain>`, path `/<key>`)
    /// with this base domain; `Some("")` means the endpoint's host name, `None` path-style.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub s3_virtual_host: Option<String>,
}

/// One page of a listing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListPage {
    /// Objects (S3 `<Key>`s, Blob `<Blob>`s) on the page.
    pub entries: usize,
    /// Where the next page starts (S3 continuation token, Blob marker, decoded); `None`
    /// on the last page.
    pub next: Option<String>,
}

/// A connected bucket/container.
#[derive(Clone)]
pub enum Store {
    /// An S3 bucket.
    S3(S3),
    /// A Blob container.
    Blob(Blob),
}

/// An in-progress multipart upload (S3) or uncommitted block list (Blob).
pub enum Upload {
    /// S3 upload id.
    S3(String),
    /// Blob: blocks are staged on the blob name itself.
    Blob,
}

impl Store {
    /// Connects to `t` with a pool of `pool` connections.
    pub fn connect(t: &Target, pool: usize) -> Result<Store, BenchError> {
        let http = HttpClient::new(pool);
        Ok(match t.protocol {
            Protocol::S3 => Store::S3(S3::new(
                http,
                &t.endpoint,
                &t.bucket,
                t.s3_virtual_host.as_deref(),
                SigV4 {
                    access_key: t.account.clone(),
                    secret_key: t.key.clone(),
                    region: t.region.clone(),
                    service: "s3".into(),
                },
            )?),
            Protocol::Blob => Store::Blob(Blob::new(
                http,
                &t.endpoint,
                &t.account,
                &t.bucket,
                &t.key,
                t.sas.as_deref(),
            )?),
        })
    }

    /// Creates the bucket/container if missing.
    pub async fn ensure_bucket(&self) -> Result<(), BenchError> {
        match self {
            Store::S3(s) => s.create_bucket().await,
            Store::Blob(b) => b.create_container().await,
        }
    }

    /// Writes `key` in one request.
    pub async fn put(&self, key: &str, body: Bytes) -> Result<(), BenchError> {
        match self {
            Store::S3(s) => s.put(key, body).await,
            Store::Blob(b) => b.put(key, body).await,
        }
    }

    /// Reads `key`, or the inclusive byte range `range` of it.
    pub async fn get(&self, key: &str, range: Option<(u64, u64)>) -> Result<Bytes, BenchError> {
        match self {
            Store::S3(s) => s.get(key, range).await,
            Store::Blob(b) => b.get(key, range).await,
        }
    }

    /// Lists one page of at most `page_size` entries under `prefix`, continuing at `next`
    /// (the previous page's [`ListPage::next`]) when given.
    pub async fn list_page(
        &self,
        prefix: &str,
        next: Option<&str>,
        page_size: usize,
    ) -> Result<ListPage, BenchError> {
        match self {
            Store::S3(s) => s.list_page(prefix, next, page_size).await,
            Store::Blob(b) => b.list_page(prefix, next, page_size).await,
        }
    }

    /// Deletes `key`.
    pub async fn delete(&self, key: &str) -> Result<(), BenchError> {
        match self {
            Store::S3(s) => s.delete(key).await,
            Store::Blob(b) => b.delete(key).await,
        }
    }

    /// Starts a multipart upload / block list for `key`.
    pub async fn begin_upload(&self, key: &str) -> Result<Upload, BenchError> {
        match self {
            Store::S3(s) => Ok(Upload::S3(s.create_multipart(key).await?)),
            Store::Blob(_) => Ok(Upload::Blob),
        }
    }

    /// Uploads part/block `index` (0-based); returns its tag (ETag or block id).
    pub async fn upload_part(
        &self,
        key: &str,
        upload: &Upload,
        index: usize,
        body: Bytes,
    ) -> Result<String, BenchError> {
        match (self, upload) {
            (Store::S3(s), Upload::S3(id)) => s.upload_part(key, id, index + 1, body).await,
            (Store::Blob(b), _) => b.put_block(key, index, body).await,
            (Store::S3(_), Upload::Blob) => {
                Err(BenchError::Protocol("S3 part without an upload id".into()))
            }
        }
    }

    /// Commits the parts/blocks `tags` in order.
    pub async fn complete_upload(
        &self,
        key: &str,
        upload: &Upload,
        tags: &[String],
    ) -> Result<(), BenchError> {
        match (self, upload) {
            (Store::S3(s), Upload::S3(id)) => s.complete_multipart(key, id, tags).await,
            (Store::Blob(b), _) => b.put_block_list(key, tags).await,
            (Store::S3(_), Upload::Blob) => Err(BenchError::Protocol(
                "S3 completion without an upload id".into(),
            )),
        }
    }
}
