//! The workloads: put, get, mixed, list, delete (and dispatch to the scenarios).

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::Serialize;

use crate::payload::Payload;
use crate::report::Report;
use crate::runner::{phase, run_pool, Limits, PhaseReport};
use crate::scenario;
use crate::store::{Store, Target};
use crate::BenchError;

/// What to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Workload {
    /// Write new objects.
    Put,
    /// Read a prepared set of objects (verified).
    Get,
    /// Reads and overwrites of a prepared set (`--read-pct` reads).
    Mixed,
    /// List a prefix holding `--objects` objects (every page, `--page-size` per page).
    List,
    /// Delete prepared objects.
    Delete,
    /// N writers upload one large object each in parallel parts, N readers restore them
    /// with parallel range reads.
    Checkpoint,
    /// One writer, then many readers of the same object.
    Model,
}

impl std::fmt::Display for Workload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = match self {
            Workload::Put => "put",
            Workload::Get => "get",
            Workload::Mixed => "mixed",
            Workload::List => "list",
            Workload::Delete => "delete",
            Workload::Checkpoint => "checkpoint",
            Workload::Model => "model",
        };
        f.write_str(s)
    }
}

/// Load shape, shared by all workloads.
#[derive(Clone, Debug, Serialize)]
pub struct LoadConfig {
    /// Object size in bytes.
    pub size: u64,
    /// Concurrent operations.
    pub concurrency: usize,
    /// Time limit of the measured phase (seconds in JSON).
    #[serde(serialize_with = "secs")]
    pub duration: Option<Duration>,
    /// Operation limit of the measured phase.
    pub count: Option<u64>,
    /// Prepared objects for get/mixed/list/delete (default depends on the workload).
    pub objects: Option<u64>,
    /// Part/block size for multipart uploads and range reads.
    pub part_size: u64,
    /// Parallel parts per writer/reader in checkpoint and model.
    pub part_concurrency: usize,
    /// Percentage of reads in `mixed`.
    pub read_pct: u32,
    /// Entries per listing page in `list` (S3 `max-keys`, Blob `maxresults`).
    pub page_size: usize,
    /// Checkpoint writers/readers (default: concurrency).
    pub writers: Option<usize>,
    /// Model readers (default: concurrency).
    pub readers: Option<usize>,
    /// Show the progress line.
    #[serde(skip)]
    pub progress: bool,
    /// Leave the objects in place afterwards.
    pub keep: bool,
}

/// Serializes a duration as fractional seconds.
fn secs<S: serde::Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => s.serialize_some(&d.as_secs_f64()),
        None => s.serialize_none(),
    }
}

impl Default for LoadConfig {
    fn default() -> LoadConfig {
        LoadConfig {
            size: 4096,
            concurrency: 8,
            duration: None,
            count: None,
            objects: None,
            part_size: 8 << 20,
            part_concurrency: 4,
            read_pct: 70,
            page_size: 1000,
            writers: None,
            readers: None,
            progress: true,
            keep: false,
        }
    }
}

impl LoadConfig {
    /// The phase limits; 10 seconds when neither a count nor a duration was given.
    pub fn limits(&self) -> Limits {
        let duration = match (self.duration, self.count) {
            (None, None) => Some(Duration::from_secs(10)),
            (d, _) => d,
        };
        Limits {
            duration,
            count: self.count,
        }
    }

    /// Prepared objects for get/mixed: enough to spread load, at most ~256 MiB in all.
    fn read_set(&self) -> u64 {
        self.objects
            .unwrap_or_else(|| ((256u64 << 20) / self.size.max(1)).clamp(1, 100))
            .max(1)
    }
}

/// Everything a workload needs.
#[derive(Clone)]
pub struct Ctx {
    /// The connected bucket/container.
    pub store: Store,
    /// The bytes objects are cut from.
    pub payload: Arc<Payload>,
    /// Key prefix unique to this run.
    pub prefix: String,
    /// The load shape.
    pub cfg: LoadConfig,
}

impl Ctx {
    /// The key of object `i`.
    pub fn key(&self, i: u64) -> String {
        format!("{}obj-{i:08}", self.prefix)
    }
}

/// Runs `workload` against `target` and returns its report.
pub async fn run(
    workload: Workload,
    target: &Target,
    cfg: &LoadConfig,
) -> Result<Report, BenchError> {
    if cfg.size == 0 && workload != Workload::List {
        return Err(BenchError::Config("--size must be at least 1 byte".into()));
    }
    if cfg.page_size == 0 {
        return Err(BenchError::Config("--page-size must be at least 1".into()));
    }
    if cfg.part_size == 0 {
        return Err(BenchError::Config(
            "--part-size must be at least 1 byte".into(),
        ));
    }
    let fan = cfg
        .concurrency
        .max(cfg.writers.unwrap_or(0))
        .max(cfg.readers.unwrap_or(0));
    let store = Store::connect(target, fan * cfg.part_concurrency.max(1))?;
    store.ensure_bucket().await?;
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let ctx = Ctx {
        store,
        payload: Arc::new(Payload::new(cfg.size as usize)),
        prefix: format!("cairn-bench/{}-{nanos}/", std::process::id()),
        cfg: cfg.clone(),
    };
    let phases = match workload {
        Workload::Put => put(&ctx).await,
        Workload::Get => get(&ctx).await?,
        Workload::Mixed => mixed(&ctx).await?,
        Workload::List => list(&ctx).await?,
        Workload::Delete => delete(&ctx).await?,
        Workload::Checkpoint => scenario::checkpoint(&ctx).await?,
        Workload::Model => scenario::model(&ctx).await?,
    };
    Ok(Report::new(workload, target, cfg, phases))
}

/// Writes objects 0..n (not measured); fails on the first error.
pub async fn prepare(ctx: &Ctx, n: u64) -> Result<(), BenchError> {
    let limits = Limits {
        duration: None,
        count: Some(n),
    };
    let (rep, _) = put_phase(ctx, "prepare", limits).await;
    if let Some(e) = rep.ops.iter().find_map(|o| o.first_error.clone()) {
        return Err(BenchError::Protocol(format!(
            "preparing objects failed: {e}"
        )));
    }
    Ok(())
}

/// A phase named `name` that puts objects 0, 1, … within `limits`;
/// returns its report and how many objects it wrote.
async fn put_phase(ctx: &Ctx, name: &'static str, limits: Limits) -> (PhaseReport, u64) {
    phase(name, ctx.cfg.progress, |rec| {
        let c = ctx.clone();
        run_pool(ctx.cfg.concurrency, limits, move |seq| {
            let (c, rec) = (c.clone(), rec.clone());
            async move {
                let body = c.payload.object(seq);
                let n = body.len() as u64;
                let t = Instant::now();
                let r = c.store.put(&c.key(seq), body).await;
                rec.result("put", t, n, &r);
            }
        })
    })
    .await
}

/// Deletes objects 0..n, ignoring errors (unless `--keep`).
pub async fn cleanup(ctx: &Ctx, n: u64) {
    if ctx.cfg.keep || n == 0 {
        return;
    }
    let c = ctx.clone();
    let limits = Limits {
        duration: None,
        count: Some(n),
    };
    run_pool(ctx.cfg.concurrency, limits, move |seq| {
        let c = c.clone();
        async move {
            let _ = c.store.delete(&c.key(seq)).await;
        }
    })
    .await;
}

async fn put(ctx: &Ctx) -> Vec<PhaseReport> {
    let (rep, written) = put_phase(ctx, "put", ctx.cfg.limits()).await;
    cleanup(ctx, written).await;
    vec![rep]
}

/// One verified GET of object `i`, recorded as `op`.
async fn get_one(c: &Ctx, rec: &crate::stats::Recorder, op: &'static str, i: u64) {
    let t = Instant::now();
    let r = match c.store.get(&c.key(i), None).await {
        Ok(b) => c.payload.verify(i, None, &b).map(|_| b.len() as u64),
        Err(e) => Err(e),
    };
    match r {
        Ok(n) => rec.ok(op, t, n),
        Err(e) => rec.err(op, &e),
    }
}

async fn get(ctx: &Ctx) -> Result<Vec<PhaseReport>, BenchError> {
    let n = ctx.cfg.read_set();
    prepare(ctx, n).await?;
    let (rep, _) = phase("get", ctx.cfg.progress, |rec| {
        let c = ctx.clone();
        run_pool(ctx.cfg.concurrency, ctx.cfg.limits(), move |seq| {
            let (c, rec) = (c.clone(), rec.clone());
            async move { get_one(&c, &rec, "get", seq % n).await }
        })
    })
    .await;
    cleanup(ctx, n).await;
    Ok(vec![rep])
}

async fn mixed(ctx: &Ctx) -> Result<Vec<PhaseReport>, BenchError> {
    let n = ctx.cfg.read_set();
    prepare(ctx, n).await?;
    let read_pct = ctx.cfg.read_pct.min(100);
    let (rep, _) = phase("mixed", ctx.cfg.progress, |rec| {
        let c = ctx.clone();
        run_pool(ctx.cfg.concurrency, ctx.cfg.limits(), move |_| {
            let (c, rec) = (c.clone(), rec.clone());
            // Overwrites rewrite the same content, so every read still verifies.
            let i = rand::random_range(0..n);
            let read = rand::random_range(0..100u32) < read_pct;
            async move {
                if read {
                    get_one(&c, &rec, "get", i).await;
                } else {
                    let body = c.payload.object(i);
                    let len = body.len() as u64;
                    let t = Instant::now();
                    let r = c.store.put(&c.key(i), body).await;
                    rec.result("put", t, len, &r);
                }
            }
        })
    })
    .await;
    cleanup(ctx, n).await;
    Ok(vec![rep])
}

/// One list operation: walks every page under the run's prefix, recording each request
/// as `list_page`; returns the number of entries seen. Gives up after `max_pages` pages or
/// when a page hands back the token it was asked with, so a broken server cannot loop it.
async fn list_walk(
    c: &Ctx,
    rec: &crate::stats::Recorder,
    max_pages: u64,
) -> Result<u64, BenchError> {
    let mut next: Option<String> = None;
    let mut total = 0u64;
    for _ in 0..max_pages {
        let t = Instant::now();
        let page = c
            .store
            .list_page(&c.prefix, next.as_deref(), c.cfg.page_size)
            .await;
        rec.result("list_page", t, 0, &page);
        let page = page?;
        total += page.entries as u64;
        match page.next {
            None => return Ok(total),
            Some(n) if next.as_deref() == Some(n.as_str()) => {
                return Err(BenchError::Protocol(format!(
                    "listing repeated its continuation {n:?}"
                )))
            }
            Some(n) => next = Some(n),
        }
    }
    Err(BenchError::Protocol(format!(
        "listing did not end within {max_pages} pages"
    )))
}

async fn list(ctx: &Ctx) -> Result<Vec<PhaseReport>, BenchError> {
    let n = ctx.cfg.objects.unwrap_or(1000).max(1);
    prepare(ctx, n).await?;
    // A server returning at least one entry per page ends within n + 1 pages.
    let max_pages = n + 2;
    let (rep, _) = phase("list", ctx.cfg.progress, |rec| {
        let c = ctx.clone();
        run_pool(ctx.cfg.concurrency, ctx.cfg.limits(), move |_| {
            let (c, rec) = (c.clone(), rec.clone());
            async move {
                let t = Instant::now();
                let r = match list_walk(&c, &rec, max_pages).await {
                    Ok(got) if got == n => Ok(()),
                    Ok(got) => Err(BenchError::Mismatch(format!(
                        "listed {got} entries, expected {n}"
                    ))),
                    Err(e) => Err(e),
                };
                rec.result("list", t, 0, &r);
            }
        })
    })
    .await;
    cleanup(ctx, n).await;
    Ok(vec![rep])
}

async fn delete(ctx: &Ctx) -> Result<Vec<PhaseReport>, BenchError> {
    let n = ctx.cfg.count.or(ctx.cfg.objects).unwrap_or(1000).max(1);
    prepare(ctx, n).await?;
    let limits = Limits {
        duration: ctx.cfg.duration,
        count: Some(n),
    };
    let (rep, deleted) = phase("delete", ctx.cfg.progress, |rec| {
        let c = ctx.clone();
        run_pool(ctx.cfg.concurrency, limits, move |seq| {
            let (c, rec) = (c.clone(), rec.clone());
            async move {
                let t = Instant::now();
                let r = c.store.delete(&c.key(seq)).await;
                rec.result("delete", t, 0, &r);
            }
        })
    })
    .await;
    // A time limit may have left some behind.
    if deleted < n && !ctx.cfg.keep {
        let c = ctx.clone();
        let lim = Limits {
            duration: None,
            count: Some(n - deleted),
        };
        run_pool(ctx.cfg.concurrency, lim, move |seq| {
            let c = c.clone();
            async move {
                let _ = c.store.delete(&c.key(deleted + seq)).await;
            }
        })
        .await;
    }
    Ok(vec![rep])
}
