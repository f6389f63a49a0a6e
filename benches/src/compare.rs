//! A/B mode: the same workload against two targets in alternating rounds, with per-metric
//! medians and b/a ratios.

use serde::Serialize;

use crate::report::Report;
use crate::store::Target;
use crate::workload::{run, LoadConfig, Workload};
use crate::BenchError;

/// One metric of one operation on both sides.
#[derive(Clone, Debug, Serialize)]
pub struct Ratio {
    /// Phase name.
    pub phase: String,
    /// Operation name.
    pub op: String,
    /// Metric name (`ops/s`, `MB/s`, `p50 ms`, `p99 ms`, `errors`).
    pub metric: &'static str,
    /// Median over rounds on side a.
    pub a: f64,
    /// Median over rounds on side b.
    pub b: f64,
    /// b / a (0 when a is 0).
    pub ratio: f64,
}

/// The result of a comparison.
#[derive(Clone, Debug, Serialize)]
pub struct Comparison {
    /// Per-metric medians and ratios.
    pub ratios: Vec<Ratio>,
    /// Every round's report on side a.
    pub a: Vec<Report>,
    /// Every round's report on side b.
    pub b: Vec<Report>,
}

/// Runs `workload` `rounds` times on each target, alternating which goes first, and compares.
pub async fn compare(
    workload: Workload,
    a: &Target,
    b: &Target,
    cfg: &LoadConfig,
    rounds: usize,
) -> Result<Comparison, BenchError> {
    let mut ra = Vec::new();
    let mut rb = Vec::new();
    for round in 0..rounds.max(1) {
        eprintln!("round {}/{}", round + 1, rounds.max(1));
        if round % 2 == 0 {
            ra.push(run(workload, a, cfg).await?);
            rb.push(run(workload, b, cfg).await?);
        } else {
            rb.push(run(workload, b, cfg).await?);
            ra.push(run(workload, a, cfg).await?);
        }
    }
    let mut ratios = Vec::new();
    for p in &ra[0].phases {
        for o in &p.ops {
            type Pick = fn(&crate::stats::OpSummary) -> f64;
            let metrics: [(&'static str, Pick); 5] = [
                ("ops/s", |s| s.ops_per_s),
                ("MB/s", |s| s.mb_per_s),
                ("p50 ms", |s| s.p50_ms),
                ("p99 ms", |s| s.p99_ms),
                ("errors", |s| s.errors as f64),
            ];
            for (metric, pick) in metrics {
                let side = |reps: &[Report]| {
                    median(
                        reps.iter()
                            .filter_map(|r| r.op(&p.name, &o.op).map(pick))
                            .collect(),
                    )
                };
                let (va, vb) = (side(&ra), side(&rb));
                ratios.push(Ratio {
                    phase: p.name.clone(),
                    op: o.op.clone(),
                    metric,
                    a: va,
                    b: vb,
                    ratio: if va == 0.0 { 0.0 } else { vb / va },
                });
            }
        }
    }
    Ok(Comparison {
        ratios,
        a: ra,
        b: rb,
    })
}

/// The median (mean of the middle two for even counts); 0 for none.
pub fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(|x, y| x.total_cmp(y));
    let m = v.len() / 2;
    if v.len() % 2 == 1 {
        v[m]
    } else {
        (v[m - 1] + v[m]) / 2.0
    }
}

impl Comparison {
    /// The ratio table as text.
    pub fn table(&self, a: &Target, b: &Target) -> String {
        let mut s = format!(
            "a = {} {}\nb = {} {}\nmedians over {} rounds\n",
            a.protocol,
            a.endpoint,
            b.protocol,
            b.endpoint,
            self.a.len()
        );
        s.push_str(&format!(
            "{:<17} {:<18} {:<8} {:>12} {:>12} {:>8}\n",
            "phase", "op", "metric", "a", "b", "b/a"
        ));
        for r in &self.ratios {
            s.push_str(&format!(
                "{:<17} {:<18} {:<8} {:>12.2} {:>12.2} {:>8.3}\n",
                r.phase, r.op, r.metric, r.a, r.b, r.ratio
            ));
        }
        s
    }

    /// Failed operations on both sides.
    pub fn errors(&self) -> u64 {
        self.a.iter().chain(self.b.iter()).map(Report::errors).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::median;

    #[test]
    fn medians() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(vec![4.0, 1.0]), 2.5);
        assert_eq!(median(vec![]), 0.0);
    }
}
