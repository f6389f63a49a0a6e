//! Per-operation counters and latency histograms, rendered as Prometheus text.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

/// The store operations that are measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(usize)]
pub enum Op {
    CreateBucket,
    DeleteBucket,
    HeadBucket,
    ListBuckets,
    PutObject,
    GetObject,
    HeadObject,
    DeleteObject,
    CopyObject,
    SetTags,
    ListObjects,
    CreateUpload,
    StagePart,
    ListParts,
    ListUploads,
    CommitUpload,
    AbortUpload,
}

const OPS: [(Op, &str); 17] = [
    (Op::CreateBucket, "create_bucket"),
    (Op::DeleteBucket, "delete_bucket"),
    (Op::HeadBucket, "head_bucket"),
    (Op::ListBuckets, "list_buckets"),
    (Op::PutObject, "put_object"),
    (Op::GetObject, "get_object"),
    (Op::HeadObject, "head_object"),
    (Op::DeleteObject, "delete_object"),
    (Op::CopyObject, "copy_object"),
    (Op::SetTags, "set_tags"),
    (Op::ListObjects, "list_objects"),
    (Op::CreateUpload, "create_upload"),
    (Op::StagePart, "stage_part"),
    (Op::ListParts, "list_parts"),
    (Op::ListUploads, "list_uploads"),
    (Op::CommitUpload, "commit_upload"),
    (Op::AbortUpload, "abort_upload"),
];

/// Histogram upper bounds in seconds.
const BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

#[derive(Default)]
struct OpStats {
    count: AtomicU64,
    errors: AtomicU64,
    bytes: AtomicU64,
    sum_us: AtomicU64,
    hist: [AtomicU64; BUCKETS.len() + 1],
}

/// Lock-free operation metrics.
#[derive(Default)]
pub struct Metrics {
    ops: [OpStats; OPS.len()],
}

impl Metrics {
    /// Records one finished operation that started at `start` and moved `bytes` body bytes.
    pub fn observe(&self, op: Op, start: Instant, ok: bool, bytes: u64) {
        let s = &self.ops[op as usize];
        let secs = start.elapsed().as_secs_f64();
        s.count.fetch_add(1, Ordering::Relaxed);
        if !ok {
            s.errors.fetch_add(1, Ordering::Relaxed);
        }
        s.bytes.fetch_add(bytes, Ordering::Relaxed);
        s.sum_us.fetch_add((secs * 1e6) as u64, Ordering::Relaxed);
        let i = BUCKETS
            .iter()
            .position(|b| secs <= *b)
            .unwrap_or(BUCKETS.len());
        s.hist[i].fetch_add(1, Ordering::Relaxed);
    }

    /// Number of finished operations of kind `op`.
    #[cfg(test)]
    pub fn count(&self, op: Op) -> u64 {
        self.ops[op as usize].count.load(Ordering::Relaxed)
    }

    /// Appends the Prometheus text of every operation.
    pub fn render(&self, out: &mut String) {
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        out.push_str(
            "# HELP cairn_ops_total Store operations finished.\n# TYPE cairn_ops_total counter\n",
        );
        for (op, name) in OPS {
            let _ = writeln!(
                out,
                "cairn_ops_total{{op=\"{name}\"}} {}",
                g(&self.ops[op as usize].count)
            );
        }
        out.push_str("# HELP cairn_op_errors_total Store operations that failed.\n# TYPE cairn_op_errors_total counter\n");
        for (op, name) in OPS {
            let _ = writeln!(
                out,
                "cairn_op_errors_total{{op=\"{name}\"}} {}",
                g(&self.ops[op as usize].errors)
            );
        }
        out.push_str("# HELP cairn_op_bytes_total Body bytes moved by store operations.\n# TYPE cairn_op_bytes_total counter\n");
        for (op, name) in OPS {
            let _ = writeln!(
                out,
                "cairn_op_bytes_total{{op=\"{name}\"}} {}",
                g(&self.ops[op as usize].bytes)
            );
        }
        out.push_str("# HELP cairn_op_duration_seconds Store operation latency.\n# TYPE cairn_op_duration_seconds histogram\n");
        for (op, name) in OPS {
            let s = &self.ops[op as usize];
            let mut cum = 0;
            for (i, b) in BUCKETS.iter().enumerate() {
                cum += g(&s.hist[i]);
                let _ = writeln!(
                    out,
                    "cairn_op_duration_seconds_bucket{{op=\"{name}\",le=\"{b}\"}} {cum}"
                );
            }
            cum += g(&s.hist[BUCKETS.len()]);
            let _ = writeln!(
                out,
                "cairn_op_duration_seconds_bucket{{op=\"{name}\",le=\"+Inf\"}} {cum}"
            );
            let _ = writeln!(
                out,
                "cairn_op_duration_seconds_sum{{op=\"{name}\"}} {}",
                g(&s.sum_us) as f64 / 1e6
            );
            let _ = writeln!(
                out,
                "cairn_op_duration_seconds_count{{op=\"{name}\"}} {}",
                g(&s.count)
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_histogram() {
        let m = Metrics::default();
        m.observe(Op::PutObject, Instant::now(), true, 10);
        m.observe(Op::PutObject, Instant::now(), false, 0);
        let mut s = String::new();
        m.render(&mut s);
        assert!(s.contains("cairn_ops_total{op=\"put_object\"} 2"));
        assert!(s.contains("cairn_op_errors_total{op=\"put_object\"} 1"));
        assert!(s.contains("cairn_op_bytes_total{op=\"put_object\"} 10"));
        assert!(s.contains("cairn_op_duration_seconds_bucket{op=\"put_object\",le=\"+Inf\"} 2"));
        assert_eq!(m.count(Op::PutObject), 2);
    }
}
