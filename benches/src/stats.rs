//! Per-operation counters and latency samples, and their summary.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::BenchError;

#[derive(Default)]
struct OpAcc {
    lat_us: Vec<u64>,
    bytes: u64,
    errors: u64,
    first_error: Option<String>,
}

/// Collects results of one phase. Live counters feed the progress line.
#[derive(Default)]
pub struct Recorder {
    ops: Mutex<BTreeMap<&'static str, OpAcc>>,
    live_ops: AtomicU64,
    live_bytes: AtomicU64,
    live_errors: AtomicU64,
}

/// What one operation kind did during a phase.
#[derive(Clone, Debug, Serialize)]
pub struct OpSummary {
    /// Operation name (`put`, `get`, `range_get`, ...).
    pub op: String,
    /// Successful operations.
    pub ops: u64,
    /// Failed operations (including integrity mismatches).
    pub errors: u64,
    /// Payload bytes moved by successful operations.
    pub bytes: u64,
    /// Successful operations per second of phase wall time.
    pub ops_per_s: f64,
    /// Payload megabytes (10^6 bytes) per second of phase wall time.
    pub mb_per_s: f64,
    /// Median latency, milliseconds.
    pub p50_ms: f64,
    /// 90th percentile latency, milliseconds.
    pub p90_ms: f64,
    /// 99th percentile latency, milliseconds.
    pub p99_ms: f64,
    /// Largest latency, milliseconds.
    pub max_ms: f64,
    /// The first error seen, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_error: Option<String>,
}

impl Recorder {
    /// Records a success of `op` started at `start` that moved `bytes` payload bytes.
    pub fn ok(&self, op: &'static str, start: Instant, bytes: u64) {
        let us = start.elapsed().as_micros() as u64;
        self.live_ops.fetch_add(1, Ordering::Relaxed);
        self.live_bytes.fetch_add(bytes, Ordering::Relaxed);
        let mut m = self.ops.lock().unwrap_or_else(|p| p.into_inner());
        let acc = m.entry(op).or_default();
        acc.lat_us.push(us);
        acc.bytes += bytes;
    }

    /// Records a failure of `op`.
    pub fn err(&self, op: &'static str, e: &BenchError) {
        self.live_errors.fetch_add(1, Ordering::Relaxed);
        let mut m = self.ops.lock().unwrap_or_else(|p| p.into_inner());
        let acc = m.entry(op).or_default();
        acc.errors += 1;
        if acc.first_error.is_none() {
            acc.first_error = Some(e.to_string());
        }
    }

    /// Records `res` as a success moving `bytes` or as a failure.
    pub fn result<T>(
        &self,
        op: &'static str,
        start: Instant,
        bytes: u64,
        res: &Result<T, BenchError>,
    ) {
        match res {
            Ok(_) => self.ok(op, start, bytes),
            Err(e) => self.err(op, e),
        }
    }

    /// (operations, bytes, errors) so far.
    pub fn live(&self) -> (u64, u64, u64) {
        (
            self.live_ops.load(Ordering::Relaxed),
            self.live_bytes.load(Ordering::Relaxed),
            self.live_errors.load(Ordering::Relaxed),
        )
    }

    /// Per-operation summaries over a phase that took `elapsed`.
    pub fn summarize(&self, elapsed: Duration) -> Vec<OpSummary> {
        let secs = elapsed.as_secs_f64().max(1e-9);
        let mut m = self.ops.lock().unwrap_or_else(|p| p.into_inner());
        m.iter_mut()
            .map(|(op, acc)| {
                acc.lat_us.sort_unstable();
                let ops = acc.lat_us.len() as u64;
                OpSummary {
                    op: op.to_string(),
                    ops,
                    errors: acc.errors,
                    bytes: acc.bytes,
                    ops_per_s: ops as f64 / secs,
                    mb_per_s: acc.bytes as f64 / 1e6 / secs,
                    p50_ms: percentile(&acc.lat_us, 0.50),
                    p90_ms: percentile(&acc.lat_us, 0.90),
                    p99_ms: percentile(&acc.lat_us, 0.99),
                    max_ms: acc.lat_us.last().copied().unwrap_or(0) as f64 / 1000.0,
                    first_error: acc.first_error.clone(),
                }
            })
            .collect()
    }
}

/// The `p` quantile (nearest rank) of sorted microsecond samples, in milliseconds.
pub fn percentile(sorted_us: &[u64], p: f64) -> f64 {
    if sorted_us.is_empty() {
        return 0.0;
    }
    let rank = (p * sorted_us.len() as f64).ceil() as usize;
    let i = rank.clamp(1, sorted_us.len()) - 1;
    sorted_us[i] as f64 / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<u64> = (1..=100).map(|i| i * 1000).collect();
        assert_eq!(percentile(&v, 0.5), 50.0);
        assert_eq!(percentile(&v, 0.99), 99.0);
        assert_eq!(percentile(&v, 1.0), 100.0);
        assert_eq!(percentile(&[], 0.5), 0.0);
    }
}
