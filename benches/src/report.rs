//! The final report: a table on stdout and a JSON file.

use std::io::Write;
use std::path::Path;

use serde::Serialize;

use crate::payload::fmt_size;
use crate::runner::PhaseReport;
use crate::stats::OpSummary;
use crate::store::Target;
use crate::workload::{LoadConfig, Workload};
use crate::BenchError;

/// Everything one run measured.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// Always `cairn-bench`.
    pub tool: &'static str,
    /// The workload.
    pub workload: Workload,
    /// Where it ran (secrets omitted).
    pub target: Target,
    /// The load shape.
    pub config: LoadConfig,
    /// The measured phases.
    pub phases: Vec<PhaseReport>,
}

impl Report {
    /// Assembles a report.
    pub fn new(
        workload: Workload,
        target: &Target,
        cfg: &LoadConfig,
        phases: Vec<PhaseReport>,
    ) -> Report {
        Report {
            tool: "cairn-bench",
            workload,
            target: target.clone(),
            config: cfg.clone(),
            phases,
        }
    }

    /// Failed operations over all phases.
    pub fn errors(&self) -> u64 {
        self.phases
            .iter()
            .flat_map(|p| p.ops.iter())
            .map(|o| o.errors)
            .sum()
    }

    /// The summary of `op` in phase `phase`.
    pub fn op(&self, phase: &str, op: &str) -> Option<&OpSummary> {
        self.phases
            .iter()
            .find(|p| p.name == phase)?
            .ops
            .iter()
            .find(|o| o.op == op)
    }

    /// The table as text.
    pub fn table(&self) -> String {
        let c = &self.config;
        let fan = match self.workload {
            Workload::Checkpoint => format!(
                "writers/readers {}, parts in flight {}, part {}",
                c.writers.unwrap_or(c.concurrency),
                c.part_concurrency,
                fmt_size(c.part_size)
            ),
            Workload::Model => format!(
                "readers {}, parts in flight {}, part {}",
                c.readers.unwrap_or(c.concurrency),
                c.part_concurrency,
                fmt_size(c.part_size)
            ),
            Workload::List => format!("concurrency {}, page size {}", c.concurrency, c.page_size),
            _ => format!("concurrency {}", c.concurrency),
        };
        let style = if self.target.s3_virtual_host.is_some() {
            " (virtual-hosted)"
        } else {
            ""
        };
        let mut s = format!(
            "cairn-bench {} over {}{style} at {}: size {}, {fan}\n",
            self.workload,
            self.target.protocol,
            self.target.endpoint,
            fmt_size(c.size),
        );
        s.push_str(&format!(
            "{:<17} {:<18} {:>8} {:>6} {:>10} {:>9} {:>9} {:>9} {:>9} {:>9}\n",
            "phase", "op", "ops", "errors", "ops/s", "MB/s", "p50 ms", "p90 ms", "p99 ms", "max ms"
        ));
        for p in &self.phases {
            for o in &p.ops {
                s.push_str(&format!(
                    "{:<17} {:<18} {:>8} {:>6} {:>10.1} {:>9.1} {:>9.2} {:>9.2} {:>9.2} {:>9.2}\n",
                    p.name,
                    o.op,
                    o.ops,
                    o.errors,
                    o.ops_per_s,
                    o.mb_per_s,
                    o.p50_ms,
                    o.p90_ms,
                    o.p99_ms,
                    o.max_ms
                ));
            }
            s.push_str(&format!("{:<17} (wall {:.2} s)\n", p.name, p.elapsed_s));
        }
        for p in &self.phases {
            for o in &p.ops {
                if let Some(e) = &o.first_error {
                    s.push_str(&format!("first error in {}/{}: {e}\n", p.name, o.op));
                }
            }
        }
        s
    }
}

/// Writes `value` as pretty JSON to `path`.
pub fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<(), BenchError> {
    let mut f = std::fs::File::create(path)?;
    serde_json::to_writer_pretty(&mut f, value)?;
    f.write_all(b"\n")?;
    Ok(())
}
