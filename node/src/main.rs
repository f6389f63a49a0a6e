//! `cairn`: the Cairn storage node. `cairn serve` runs a node; `cairn admin <cmd>` talks to
//! a running node's admin API.

mod admin;
mod admin_cli;
mod config;
mod engine;
mod metrics;
mod server;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "cairn",
    version,
    about = "Cairn storage node: one namespace served over S3 (and Azure Blob), metadata in its own LSM, \
             writes landed in a mirrored SLC buffer, then erasure-coded (4+2) onto QLC devices.",
    long_about = "Cairn storage node.\n\n\
        `cairn serve` with no arguments starts a single node: data in ./cairn-data, S3 on 127.0.0.1:9000, \
        admin/metrics on 127.0.0.1:9180, and the dev account `devstoreaccount1` with Azurite's well-known key \
        (S3 access key = account name, secret = the key).\n\n\
        Configuration sources, later ones win: built-in defaults < TOML file (--config) < CAIRN_* env vars < flags.\n\n\
        `cairn admin <status|capacity|flush|scrub|rebuild --device ID|health|metrics>` calls a running node's admin API."
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Run a node (foreground; SIGINT/SIGTERM shut it down cleanly).
    #[command(long_about = "Run a node in the foreground.\n\n\
        TOML file keys (all optional): data_dir, s3_addr, blob_addr, admin_addr, peer_addr, region, \
        s3_domains (list; virtual-hosted base domains, default [\"localhost\"]), admin_token, \
        dev_account (bool, default true), inline_max_bytes (default 16384), extent_bytes (default 4 MiB), \
        upload_expiry_days (default 7), and [[accounts]] tables with name and key (extra accounts).\n\n\
        The node refuses to listen on a non-loopback S3/Blob address while an account uses the well-known \
        dev key, and refuses a non-loopback admin address without an admin token.\n\n\
        Data layout under the data dir: meta/ (metadata LSM), slc0/ slc1/ (mirrored write buffer), \
        qlc0..qlc5/ (capacity devices, EC 4+2). After a crash (even SIGKILL) the next start recovers \
        every acknowledged write.")]
    Serve(ServeArgs),
    /// Call a running node's admin API.
    Admin(AdminArgs),
}

#[derive(clap::Args, Debug)]
struct ServeArgs {
    /// TOML configuration file.
    #[arg(long, env = "CAIRN_CONFIG")]
    config: Option<PathBuf>,
    /// Data directory [default: ./cairn-data].
    #[arg(long, env = "CAIRN_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// S3 listen address [default: 127.0.0.1:9000].
    #[arg(long, env = "CAIRN_S3_ADDR")]
    s3_addr: Option<SocketAddr>,
    /// Azure Blob listen address [default: 127.0.0.1:10000].
    #[arg(long, env = "CAIRN_BLOB_ADDR")]
    blob_addr: Option<SocketAddr>,
    /// Admin API + Prometheus /metrics listen address [default: 127.0.0.1:9180].
    #[arg(long, env = "CAIRN_ADMIN_ADDR")]
    admin_addr: Option<SocketAddr>,
    /// Peer gRPC listen address [default: 127.0.0.1:9100]. Accepted but not served yet (single node only).
    #[arg(long, env = "CAIRN_PEER_ADDR")]
    peer_addr: Option<SocketAddr>,
    /// Region reported to S3 clients [default: us-east-1]. Signatures are verified against whatever region the client signs with.
    #[arg(long, env = "CAIRN_REGION")]
    region: Option<String>,
    /// Bearer token for the admin API (required when it listens off loopback).
    #[arg(long, env = "CAIRN_ADMIN_TOKEN", hide_env_values = true)]
    admin_token: Option<String>,
}

#[derive(clap::Args, Debug)]
struct AdminArgs {
    /// Admin API address of the node.
    #[arg(long, env = "CAIRN_ADMIN_ADDR", default_value = "127.0.0.1:9180")]
    addr: SocketAddr,
    /// Bearer token (needed when the node is not on loopback).
    #[arg(long, env = "CAIRN_ADMIN_TOKEN", hide_env_values = true)]
    token: Option<String>,
    #[command(subcommand)]
    cmd: AdminCmd,
}

#[derive(Subcommand, Debug)]
enum AdminCmd {
    /// Devices, roles, states, SLC fill, migration lag, rebuild progress.
    Status,
    /// Per bucket and in total: logical bytes, objects, bytes left after dedup, similarity and
    /// compression, bytes on QLC with parity; and the layout's node-wide counters.
    Capacity,
    /// Drain the SLC buffer into stripes now; returns when done.
    Flush,
    /// Verify every stripe block, repairing from parity.
    Scrub,
    /// Rebuild a device's shards from the others.
    Rebuild {
        /// Device id (e.g. qlc3).
        #[arg(long)]
        device: String,
    },
    /// Liveness.
    Health,
    /// Prometheus metrics text.
    Metrics,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cairn: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match cli.cmd {
        Cmd::Serve(a) => {
            let overrides = config::Overrides {
                data_dir: a.data_dir,
                s3_addr: a.s3_addr,
                blob_addr: a.blob_addr,
                admin_addr: a.admin_addr,
                peer_addr: a.peer_addr,
                region: a.region,
                admin_token: a.admin_token,
            };
            let cfg = match config::Config::load(a.config.as_deref(), overrides) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("cairn: configuration error: {e}");
                    return ExitCode::from(2);
                }
            };
            match rt.block_on(server::run(cfg)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("cairn: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Cmd::Admin(a) => {
            let (method, path) = match &a.cmd {
                AdminCmd::Status => ("GET", "/admin/status".to_owned()),
                AdminCmd::Capacity => ("GET", "/admin/capacity".to_owned()),
                AdminCmd::Flush => ("POST", "/admin/flush".to_owned()),
                AdminCmd::Scrub => ("POST", "/admin/scrub".to_owned()),
                AdminCmd::Rebuild { device } => ("POST", format!("/admin/rebuild?device={device}")),
                AdminCmd::Health => ("GET", "/health".to_owned()),
                AdminCmd::Metrics => ("GET", "/metrics".to_owned()),
            };
            match rt.block_on(admin_cli::request(
                a.addr,
                method,
                &path,
                a.token.as_deref(),
            )) {
                Ok((status, body)) => {
                    print!("{body}");
                    if status < 400 {
                        ExitCode::SUCCESS
                    } else {
                        eprintln!("cairn: admin API answered {status}");
                        ExitCode::FAILURE
                    }
                }
                Err(e) => {
                    eprintln!("cairn: {e}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}
