//! Command-line interface: one subcommand per workload, plus `compare`.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::compare::compare;
use crate::payload::parse_size;
use crate::report::write_json;
use crate::store::{Protocol, Target};
use crate::workload::{run, LoadConfig, Workload};
use crate::BenchError;

/// The well-known development account key (also the S3 secret of `devstoreaccount1`).
pub const DEV_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

/// Load generator for S3 (SigV4) and Azure Blob (SharedKey or SAS) endpoints.
#[derive(Parser, Debug)]
#[command(name = "cairn-bench", version, about)]
pub struct Cli {
    /// What to run.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Write new objects.
    Put(RunArgs),
    /// Read a prepared set of objects, verifying every byte.
    Get(RunArgs),
    /// Reads and overwrites of a prepared set (`--read-pct` reads).
    Mixed(RunArgs),
    /// List a prefix of `--objects` objects (default 1000); one op walks every page.
    List(RunArgs),
    /// Delete `--count` (or `--objects`, default 1000) prepared objects.
    Delete(RunArgs),
    /// `--writers` writers each upload one `--size` object in parallel parts, then as many
    /// readers restore them with parallel range reads.
    Checkpoint(RunArgs),
    /// One writer uploads a `--size` object, then `--readers` readers read it.
    Model(RunArgs),
    /// Run one workload against two endpoints in alternating rounds and print b/a ratios.
    Compare(CompareArgs),
}

/// Credentials and bucket, shared by both sides of a comparison.
#[derive(Args, Debug, Clone)]
pub struct AuthArgs {
    /// S3 access key / Blob account name.
    #[arg(long, default_value = "devstoreaccount1")]
    pub account: String,
    /// S3 secret key / Blob account key (base64).
    #[arg(long, default_value = DEV_KEY, hide_default_value = true)]
    pub key: String,
    /// Bucket (S3) or container (Blob); created if missing.
    #[arg(long, default_value = "cairn-bench")]
    pub bucket: String,
    /// SigV4 region.
    #[arg(long, default_value = "us-east-1")]
    pub region: String,
    /// Blob SAS token appended to every URL instead of SharedKey signing.
    #[arg(long)]
    pub sas: Option<String>,
    /// S3 virtual-hosted-style: connect to the endpoint but send `Host: <bucket>.<domain>`
    /// and path `/<key>`; DOMAIN defaults to the endpoint's host (e.g. localhost).
    #[arg(long, value_name = "DOMAIN", num_args = 0..=1, require_equals = true, default_missing_value = "")]
    pub s3_virtual_host: Option<String>,
}

impl AuthArgs {
    /// The target at `endpoint` speaking `protocol`.
    pub fn target(&self, endpoint: &str, protocol: Protocol) -> Target {
        Target {
            endpoint: endpoint.to_string(),
            protocol,
            account: self.account.clone(),
            key: self.key.clone(),
            bucket: self.bucket.clone(),
            region: self.region.clone(),
            sas: self.sas.clone().filter(|_| protocol == Protocol::Blob),
            s3_virtual_host: self
                .s3_virtual_host
                .clone()
                .filter(|_| protocol == Protocol::S3),
        }
    }
}

/// Load shape and output options.
#[derive(Args, Debug, Clone)]
pub struct LoadArgs {
    /// Object size (4096, 4KiB, 64MiB, 1GiB).
    #[arg(long, short = 's', default_value = "4KiB", value_parser = parse_size)]
    pub size: u64,
    /// Concurrent operations.
    #[arg(long, short = 'c', default_value_t = 8)]
    pub concurrency: usize,
    /// Seconds to run the measured phase (default 10 when no --count).
    #[arg(long, short = 'd')]
    pub duration: Option<f64>,
    /// Operations in the measured phase.
    #[arg(long, short = 'n')]
    pub count: Option<u64>,
    /// Prepared objects for get/mixed/list/delete.
    #[arg(long)]
    pub objects: Option<u64>,
    /// Part (S3) / block (Blob) size for checkpoint and model, also their range-read size.
    #[arg(long, default_value = "8MiB", value_parser = parse_size)]
    pub part_size: u64,
    /// Parallel parts per writer/reader in checkpoint and model.
    #[arg(long, default_value_t = 4)]
    pub part_concurrency: usize,
    /// Percentage of reads in `mixed`.
    #[arg(long, default_value_t = 70)]
    pub read_pct: u32,
    /// Entries per listing page in `list` (S3 max-keys, Blob maxresults).
    #[arg(long, default_value_t = 1000)]
    pub page_size: usize,
    /// Checkpoint writers (= readers); default: --concurrency.
    #[arg(long)]
    pub writers: Option<usize>,
    /// Model readers; default: --concurrency.
    #[arg(long)]
    pub readers: Option<usize>,
    /// Write the results as JSON to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// No live progress line.
    #[arg(long)]
    pub no_progress: bool,
    /// Keep the objects instead of deleting them at the end.
    #[arg(long)]
    pub keep: bool,
}

impl LoadArgs {
    /// The load configuration.
    pub fn config(&self) -> Result<LoadConfig, BenchError> {
        let duration = match self.duration {
            Some(d) if !(d.is_finite() && d > 0.0) => {
                return Err(BenchError::Config("--duration must be positive".into()))
            }
            d => d.map(Duration::from_secs_f64),
        };
        Ok(LoadConfig {
            size: self.size,
            concurrency: self.concurrency.max(1),
            duration,
            count: self.count,
            objects: self.objects,
            part_size: self.part_size,
            part_concurrency: self.part_concurrency.max(1),
            read_pct: self.read_pct,
            page_size: self.page_size,
            writers: self.writers,
            readers: self.readers,
            progress: !self.no_progress,
            keep: self.keep,
        })
    }
}

/// Arguments of a single-endpoint run.
#[derive(Args, Debug)]
pub struct RunArgs {
    /// Endpoint URL (http only).
    #[arg(long, short = 'e', default_value = "http://127.0.0.1:9000")]
    pub endpoint: String,
    /// Protocol spoken at the endpoint.
    #[arg(long, short = 'p', value_enum, default_value_t = Protocol::S3)]
    pub protocol: Protocol,
    /// Credentials and bucket.
    #[command(flatten)]
    pub auth: AuthArgs,
    /// Load shape.
    #[command(flatten)]
    pub load: LoadArgs,
}

/// Arguments of `compare`.
#[derive(Args, Debug)]
pub struct CompareArgs {
    /// The workload to compare.
    #[arg(value_enum)]
    pub workload: Workload,
    /// Endpoint a (the baseline).
    #[arg(long = "a")]
    pub a: String,
    /// Endpoint b.
    #[arg(long = "b")]
    pub b: String,
    /// Protocol of endpoint a.
    #[arg(long, value_enum, default_value_t = Protocol::S3)]
    pub a_protocol: Protocol,
    /// Protocol of endpoint b.
    #[arg(long, value_enum, default_value_t = Protocol::S3)]
    pub b_protocol: Protocol,
    /// Rounds per side (alternating which side goes first).
    #[arg(long, default_value_t = 3)]
    pub rounds: usize,
    /// Credentials and bucket.
    #[command(flatten)]
    pub auth: AuthArgs,
    /// Load shape.
    #[command(flatten)]
    pub load: LoadArgs,
}

impl Command {
    fn single(&self) -> Option<(Workload, &RunArgs)> {
        Some(match self {
            Command::Put(a) => (Workload::Put, a),
            Command::Get(a) => (Workload::Get, a),
            Command::Mixed(a) => (Workload::Mixed, a),
            Command::List(a) => (Workload::List, a),
            Command::Delete(a) => (Workload::Delete, a),
            Command::Checkpoint(a) => (Workload::Checkpoint, a),
            Command::Model(a) => (Workload::Model, a),
            Command::Compare(_) => return None,
        })
    }
}

/// Runs the command, prints the table, writes the JSON; returns the number of failed
/// operations.
pub async fn execute(cli: Cli) -> Result<u64, BenchError> {
    if let Some((workload, args)) = cli.command.single() {
        let cfg = args.load.config()?;
        let target = args.auth.target(&args.endpoint, args.protocol);
        let report = run(workload, &target, &cfg).await?;
        print!("{}", report.table());
        if let Some(p) = &args.load.json {
            write_json(p, &report)?;
        }
        return Ok(report.errors());
    }
    let Command::Compare(args) = cli.command else {
        return Err(BenchError::Config("unknown command".into()));
    };
    let cfg = args.load.config()?;
    let a = args.auth.target(&args.a, args.a_protocol);
    let b = args.auth.target(&args.b, args.b_protocol);
    let cmp = compare(args.workload, &a, &b, &cfg, args.rounds).await?;
    print!("{}", cmp.table(&a, &b));
    if let Some(p) = &args.load.json {
        write_json(p, &cmp)?;
    }
    Ok(cmp.errors())
}
