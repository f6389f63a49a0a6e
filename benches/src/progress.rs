//! A one-line `\r` progress display on stderr with the rate over the last second.

use std::collections::VecDeque;
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::stats::Recorder;

/// A running progress line; [`Progress::finish`] stops it.
pub struct Progress {
    stop: Arc<AtomicBool>,
    handle: Option<tokio::task::JoinHandle<()>>,
}

impl Progress {
    /// Starts updating a line labelled `label` from `rec` four times a second (nothing when
    /// `enabled` is false).
    pub fn start(label: String, rec: Arc<Recorder>, enabled: bool) -> Progress {
        let stop = Arc::new(AtomicBool::new(false));
        let handle = enabled.then(|| {
            let stop = stop.clone();
            tokio::spawn(async move {
                let t0 = Instant::now();
                let mut hist: VecDeque<(Instant, u64, u64)> = VecDeque::new();
                let mut tick = tokio::time::interval(Duration::from_millis(250));
                loop {
                    tick.tick().await;
                    let stopping = stop.load(Ordering::Relaxed);
                    let now = Instant::now();
                    let (ops, bytes, errors) = rec.live();
                    hist.push_back((now, ops, bytes));
                    while hist.len() > 1
                        && now.duration_since(hist[0].0) > Duration::from_millis(1050)
                    {
                        hist.pop_front();
                    }
                    let (t_old, o_old, b_old) = hist[0];
                    let dt = now.duration_since(t_old).as_secs_f64();
                    let (r_ops, r_mb) = if dt > 0.0 {
                        (
                            (ops - o_old) as f64 / dt,
                            (bytes - b_old) as f64 / 1e6 / dt,
                        )
                    } else {
                        (0.0, 0.0)
                    };
                    let mut e = std::io::stderr().lock();
                    let _ = write!(
                        e,
                        "\r{label:<18} {:>6.1}s {ops:>9} ops {r_ops:>9.0} ops/s {r_mb:>9.1} MB/s {errors:>5} err ",
                        t0.elapsed().as_secs_f64()
                    );
                    if stopping {
                        let _ = writeln!(e);
                        break;
                    }
                    let _ = e.flush();
                }
            })
        });
        Progress { stop, handle }
    }

    /// Prints the last update and ends the line.
    pub async fn finish(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.await;
        }
    }
}
