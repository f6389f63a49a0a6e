//! Node configuration: defaults, then the TOML file (`--config`), then env vars (`CAIRN_*`),
//! then flags — each later source overriding the earlier ones.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The dev account every Azure / S3 emulator client knows.
pub const DEV_ACCOUNT: &str = "devstoreaccount1";
/// Azurite's well-known key for [`DEV_ACCOUNT`] (public: never use it off loopback).
pub const DEV_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

/// Errors loading or validating the configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The config file could not be read.
    #[error("reading {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The config file is not valid TOML for this schema.
    #[error("parsing {path}: {source}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// Why.
        source: Box<toml::de::Error>,
    },
    /// The configuration is inconsistent or unsafe.
    #[error("{0}")]
    Invalid(String),
}

/// An account: S3 access key = `name`, secret = `key`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct AccountConfig {
    /// Account name (also the S3 access key id).
    pub name: String,
    /// Secret key (the Azure account key; the S3 secret access key).
    pub key: String,
}

/// The contents of the TOML file; every field optional.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// Data directory.
    pub data_dir: Option<PathBuf>,
    /// S3 listen address.
    pub s3_addr: Option<SocketAddr>,
    /// Blob listen address.
    pub blob_addr: Option<SocketAddr>,
    /// Admin listen address.
    pub admin_addr: Option<SocketAddr>,
    /// Peer listen address.
    pub peer_addr: Option<SocketAddr>,
    /// Region reported to S3 clients.
    pub region: Option<String>,
    /// Base domains for virtual-hosted-style S3 requests.
    pub s3_domains: Option<Vec<String>>,
    /// Bearer token for the admin API.
    pub admin_token: Option<String>,
    /// Whether the dev account exists (default true).
    pub dev_account: Option<bool>,
    /// Bodies up to this many bytes are inlined in metadata.
    pub inline_max_bytes: Option<usize>,
    /// Extent size for large bodies.
    pub extent_bytes: Option<usize>,
    /// Days before an unfinished upload is aborted.
    pub upload_expiry_days: Option<u64>,
    /// Extra accounts.
    #[serde(default)]
    pub accounts: Vec<AccountConfig>,
}

/// Values from flags / env (clap merges those two; flags win).
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// `--data-dir` / `CAIRN_DATA_DIR`.
    pub data_dir: Option<PathBuf>,
    /// `--s3-addr` / `CAIRN_S3_ADDR`.
    pub s3_addr: Option<SocketAddr>,
    /// `--blob-addr` / `CAIRN_BLOB_ADDR`.
    pub blob_addr: Option<SocketAddr>,
    /// `--admin-addr` / `CAIRN_ADMIN_ADDR`.
    pub admin_addr: Option<SocketAddr>,
    /// `--peer-addr` / `CAIRN_PEER_ADDR`.
    pub peer_addr: Option<SocketAddr>,
    /// `--region` / `CAIRN_REGION`.
    pub region: Option<String>,
    /// `--admin-token` / `CAIRN_ADMIN_TOKEN`.
    pub admin_token: Option<String>,
}

/// The effective configuration.
#[derive(Debug, Clone, Serialize)]
pub struct Config {
    /// Data directory (metadata in `meta/`, devices in `slc0`, `slc1`, `qlc0..5`).
    pub data_dir: PathBuf,
    /// S3 listen address.
    pub s3_addr: SocketAddr,
    /// Blob listen address (reserved for the Blob head).
    pub blob_addr: SocketAddr,
    /// Admin + metrics listen address.
    pub admin_addr: SocketAddr,
    /// Peer gRPC address (reserved; not served yet).
    pub peer_addr: SocketAddr,
    /// Region reported to S3 clients.
    pub region: String,
    /// Virtual-hosted-style base domains.
    pub s3_domains: Vec<String>,
    /// Admin bearer token (required for requests from off loopback).
    #[serde(skip_serializing)]
    pub admin_token: Option<String>,
    /// Accounts, dev account first when enabled.
    #[serde(skip_serializing)]
    pub accounts: Vec<AccountConfig>,
    /// Inline threshold.
    pub inline_max_bytes: usize,
    /// Extent size.
    pub extent_bytes: usize,
    /// Upload expiry.
    #[serde(skip_serializing)]
    pub upload_expiry: Duration,
    /// Upload expiry in days (as configured).
    pub upload_expiry_days: u64,
}

fn addr(s: &str) -> SocketAddr {
    // The literals below are valid socket addresses.
    s.parse()
        .unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 0)))
}

impl Config {
    /// Reads the optional file and applies the overrides.
    pub fn load(file: Option<&Path>, o: Overrides) -> Result<Config, ConfigError> {
        let f = match file {
            Some(p) => {
                let text = std::fs::read_to_string(p).map_err(|source| ConfigError::Read {
                    path: p.to_owned(),
                    source,
                })?;
                toml::from_str::<FileConfig>(&text).map_err(|source| ConfigError::Parse {
                    path: p.to_owned(),
                    source: Box::new(source),
                })?
            }
            None => FileConfig::default(),
        };
        let mut accounts = Vec::new();
        if f.dev_account.unwrap_or(true) {
            accounts.push(AccountConfig {
                name: DEV_ACCOUNT.into(),
                key: DEV_KEY.into(),
            });
        }
        accounts.extend(f.accounts.iter().cloned());
        let cfg = Config {
            data_dir: o
                .data_dir
                .or(f.data_dir)
                .unwrap_or_else(|| PathBuf::from("./cairn-data")),
            s3_addr: o
                .s3_addr
                .or(f.s3_addr)
                .unwrap_or_else(|| addr("127.0.0.1:9000")),
            blob_addr: o
                .blob_addr
                .or(f.blob_addr)
                .unwrap_or_else(|| addr("127.0.0.1:10000")),
            admin_addr: o
                .admin_addr
                .or(f.admin_addr)
                .unwrap_or_else(|| addr("127.0.0.1:9180")),
            peer_addr: o
                .peer_addr
                .or(f.peer_addr)
                .unwrap_or_else(|| addr("127.0.0.1:9100")),
            region: o.region.or(f.region).unwrap_or_else(|| "us-east-1".into()),
            s3_domains: f.s3_domains.unwrap_or_else(|| vec!["localhost".into()]),
            admin_token: o.admin_token.or(f.admin_token),
            accounts,
            inline_max_bytes: f.inline_max_bytes.unwrap_or(16 << 10),
            extent_bytes: f.extent_bytes.unwrap_or(4 << 20),
            upload_expiry: Duration::from_secs(f.upload_expiry_days.unwrap_or(7) * 86_400),
            upload_expiry_days: f.upload_expiry_days.unwrap_or(7),
        };
        cfg.validate()?;
        Ok(cfg)
    }

    /// Safety checks: no well-known key off loopback, admin token off loopback, sane names.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let dev_key_in_use = self.accounts.iter().any(|a| a.key == DEV_KEY);
        for (what, a) in [("s3", self.s3_addr), ("blob", self.blob_addr)] {
            if dev_key_in_use && !a.ip().is_loopback() {
                return Err(ConfigError::Invalid(format!(
                    "refusing to listen for {what} on non-loopback {a} while an account uses the well-known dev key; \
                     set `dev_account = false` and configure accounts with their own keys"
                )));
            }
        }
        if !self.admin_addr.ip().is_loopback()
            && self.admin_token.as_deref().unwrap_or("").is_empty()
        {
            return Err(ConfigError::Invalid(format!(
                "admin API on non-loopback {} needs an admin token (--admin-token or CAIRN_ADMIN_TOKEN)",
                self.admin_addr
            )));
        }
        let mut seen = BTreeMap::new();
        for a in &self.accounts {
            let ok = !a.name.is_empty()
                && a.name.len() <= 64
                && a.name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
            if !ok || a.key.is_empty() {
                return Err(ConfigError::Invalid(format!(
                    "invalid account {:?}",
                    a.name
                )));
            }
            if seen.insert(a.name.clone(), ()).is_some() {
                return Err(ConfigError::Invalid(format!(
                    "duplicate account {:?}",
                    a.name
                )));
            }
        }
        if self.accounts.is_empty() {
            return Err(ConfigError::Invalid("no accounts configured".into()));
        }
        let region_ok = !self.region.is_empty()
            && self
                .region
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if !region_ok {
            return Err(ConfigError::Invalid(format!(
                "invalid region {:?}",
                self.region
            )));
        }
        Ok(())
    }

    /// The effective configuration as TOML, for the start-up banner (secrets omitted).
    pub fn to_toml(&self) -> String {
        toml::to_string(self).unwrap_or_else(|e| format!("# (could not render: {e})"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults() {
        let c = Config::load(None, Overrides::default()).unwrap();
        assert_eq!(c.s3_addr, addr("127.0.0.1:9000"));
        assert_eq!(c.admin_addr, addr("127.0.0.1:9180"));
        assert_eq!(c.data_dir, PathBuf::from("./cairn-data"));
        assert_eq!(c.accounts[0].name, DEV_ACCOUNT);
        assert_eq!(c.region, "us-east-1");
    }

    #[test]
    fn file_then_flags_override() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.toml");
        std::fs::write(
            &p,
            "s3_addr = \"127.0.0.1:9001\"\nregion = \"eu-west-3\"\n[[accounts]]\nname = \"alt\"\nkey = \"secret\"\n",
        )
        .unwrap();
        let c = Config::load(
            Some(&p),
            Overrides {
                region: Some("ap-south-1".into()),
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(c.s3_addr, addr("127.0.0.1:9001"));
        assert_eq!(c.region, "ap-south-1");
        assert_eq!(c.accounts.len(), 2);
    }

    #[test]
    fn refuses_dev_key_off_loopback() {
        let r = Config::load(
            None,
            Overrides {
                s3_addr: Some(addr("0.0.0.0:9000")),
                ..Default::default()
            },
        );
        assert!(matches!(r, Err(ConfigError::Invalid(_))));
    }
}
