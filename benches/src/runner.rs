//! Runs N concurrent workers over a sequence of operation numbers until a count or a
//! deadline is reached, and wraps that into a measured phase.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::progress::Progress;
use crate::stats::{OpSummary, Recorder};

/// When a phase stops: after `count` operations, after `duration`, whichever comes first.
#[derive(Clone, Copy, Debug, Default)]
pub struct Limits {
    /// Wall-clock limit.
    pub duration: Option<Duration>,
    /// Operation count limit.
    pub count: Option<u64>,
}

/// One measured phase of a workload.
#[derive(Clone, Debug, Serialize)]
pub struct PhaseReport {
    /// Phase name.
    pub name: String,
    /// Wall time of the phase, seconds.
    pub elapsed_s: f64,
    /// Per-operation results.
    pub ops: Vec<OpSummary>,
}

/// Runs `f(seq)` for seq = 0, 1, 2, ... on `concurrency` workers until `limits` says stop.
/// Returns how many operations were started.
pub async fn run_pool<F, Fut>(concurrency: usize, limits: Limits, f: F) -> u64
where
    F: Fn(u64) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let next = Arc::new(AtomicU64::new(0));
    let f = Arc::new(f);
    let deadline = limits.duration.map(|d| Instant::now() + d);
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..concurrency.max(1) {
        let next = next.clone();
        let f = f.clone();
        set.spawn(async move {
            loop {
                if deadline.is_some_and(|d| Instant::now() >= d) {
                    break;
                }
                let seq = next.fetch_add(1, Ordering::Relaxed);
                if limits.count.is_some_and(|c| seq >= c) {
                    break;
                }
                f(seq).await;
            }
        });
    }
    while set.join_next().await.is_some() {}
    let started = next.load(Ordering::Relaxed);
    limits.count.map_or(started, |c| started.min(c))
}

/// Runs `body` as a phase named `name` with a fresh recorder and a progress line, and
/// summarizes what it recorded over the phase's wall time.
pub async fn phase<F, Fut, T>(name: &str, progress: bool, body: F) -> (PhaseReport, T)
where
    F: FnOnce(Arc<Recorder>) -> Fut,
    Fut: Future<Output = T>,
{
    let rec = Arc::new(Recorder::default());
    let bar = Progress::start(name.to_string(), rec.clone(), progress);
    let t0 = Instant::now();
    let out = body(rec.clone()).await;
    let elapsed = t0.elapsed();
    bar.finish().await;
    (
        PhaseReport {
            name: name.to_string(),
            elapsed_s: elapsed.as_secs_f64(),
            ops: rec.summarize(elapsed),
        },
        out,
    )
}
