//! The admin API (JSON) and Prometheus `/metrics`, on hyper. Requests from off loopback must
//! carry `Authorization: Bearer <admin token>`.

use std::convert::Infallible;
use std::fmt::Write as _;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use cairn_protocols::store::StoreError;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::json;
use tokio::net::TcpListener;

use crate::engine::{BucketUsage, CapacityReport, Engine, EngineError};
use crate::metrics::Metrics;

/// How long one capacity scan answers `/admin/capacity` and `/metrics`.
pub const CAPACITY_TTL: Duration = Duration::from_secs(5);

/// What the admin API serves.
pub struct Admin {
    /// The engine.
    pub engine: Arc<Engine>,
    /// Operation metrics.
    pub metrics: Arc<Metrics>,
    /// Bearer token for requests from off loopback.
    pub token: Option<String>,
    /// The last capacity scan (see [`Admin::capacity_report`]).
    pub capacity_cache: CapacityCache,
}

/// The last per-bucket capacity scan and when it was taken. The scan reads every object,
/// part and staged-block record and every chunk record they reach (O(objects + chunks)), so
/// `/admin/capacity` and `/metrics` reuse one for [`CAPACITY_TTL`]; concurrent requests wait
/// for the scan in progress instead of starting their own, and a flush drops it.
#[derive(Default)]
pub struct CapacityCache(tokio::sync::Mutex<Option<(Instant, Arc<CapacityReport>)>>);

type Resp = Response<Full<Bytes>>;

fn reply(status: StatusCode, ctype: &str, body: String) -> Resp {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    if let Ok(v) = ctype.parse() {
        r.headers_mut().insert(hyper::header::CONTENT_TYPE, v);
    }
    r
}

fn json_reply(status: StatusCode, v: serde_json::Value) -> Resp {
    reply(status, "application/json", format!("{v:#}\n"))
}

fn error(status: StatusCode, msg: impl std::fmt::Display) -> Resp {
    json_reply(status, json!({ "error": msg.to_string() }))
}

impl Admin {
    fn authorized(&self, peer: SocketAddr, req: &Request<Incoming>) -> bool {
        if peer.ip().is_loopback() {
            return true;
        }
        let Some(tok) = self.token.as_deref().filter(|t| !t.is_empty()) else {
            return false;
        };
        req.headers()
            .get(hyper::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .is_some_and(|t| t.trim() == tok)
    }

    async fn handle(&self, peer: SocketAddr, req: Request<Incoming>) -> Resp {
        if !self.authorized(peer, &req) {
            return error(StatusCode::UNAUTHORIZED, "bearer token required");
        }
        let path = req.uri().path().to_owned();
        let query = req.uri().query().unwrap_or("").to_owned();
        match (req.method().clone(), path.as_str()) {
            (Method::GET, "/health") => json_reply(StatusCode::OK, json!({ "status": "ok" })),
            (Method::GET, "/metrics") => reply(
                StatusCode::OK,
                "text/plain; version=0.0.4",
                self.metrics_text().await,
            ),
            (Method::GET, "/admin/status") => json_reply(StatusCode::OK, self.status()),
            (Method::GET, "/admin/capacity") => match self.capacity().await {
                Ok(v) => json_reply(StatusCode::OK, v),
                Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e),
            },
            (Method::POST, "/admin/flush") => {
                let t = Instant::now();
                match self.engine.data().flush().await {
                    Ok(()) => {
                        // Migration changed the figures: the next capacity request scans again.
                        *self.capacity_cache.0.lock().await = None;
                        let db = self.engine.db().clone();
                        match tokio::task::spawn_blocking(move || db.flush()).await {
                            Ok(Ok(())) => json_reply(
                                StatusCode::OK,
                                json!({ "flushed": true, "seconds": t.elapsed().as_secs_f64() }),
                            ),
                            Ok(Err(e)) => error(StatusCode::INTERNAL_SERVER_ERROR, e),
                            Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e),
                        }
                    }
                    Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e),
                }
            }
            (Method::POST, "/admin/scrub") => match self.engine.data().scrub().await {
                Ok(r) => json_reply(
                    StatusCode::OK,
                    json!({
                        "stripes": r.stripes, "blocks_checked": r.blocks_checked, "bad_blocks": r.bad_blocks,
                        "repaired_blocks": r.repaired_blocks, "missing_blocks": r.missing_blocks,
                        "unrecoverable_rows": r.unrecoverable_rows,
                    }),
                ),
                Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e),
            },
            (Method::POST, "/admin/rebuild") => {
                let device = query
                    .split('&')
                    .filter_map(|kv| kv.split_once('='))
                    .find(|(k, _)| *k == "device")
                    .map(|(_, v)| v.to_owned());
                let Some(device) = device.filter(|d| !d.is_empty()) else {
                    return error(StatusCode::BAD_REQUEST, "missing ?device=ID");
                };
                match self.engine.data().rebuild(&device).await {
                    Ok(r) => json_reply(
                        StatusCode::OK,
                        json!({
                            "device": r.device, "shards": r.shards, "bytes": r.bytes,
                            "verified_blocks": r.verified_blocks, "failed_stripes": r.failed_stripes,
                        }),
                    ),
                    Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e),
                }
            }
            (
                _,
                "/health" | "/metrics" | "/admin/status" | "/admin/capacity" | "/admin/flush"
                | "/admin/scrub" | "/admin/rebuild",
            ) => error(StatusCode::METHOD_NOT_ALLOWED, "method not allowed"),
            _ => error(StatusCode::NOT_FOUND, "no such endpoint"),
        }
    }

    fn status(&self) -> serde_json::Value {
        let s = self.engine.data().status();
        let devices: Vec<_> = s
            .devices
            .iter()
            .map(|d| {
                json!({
                    "id": d.id, "role": d.role, "path": d.path.display().to_string(), "state": d.state,
                    "bytes": d.bytes, "bytes_written": d.bytes_written,
                })
            })
            .collect();
        json!({
            "io_backend": s.io_backend,
            "devices": devices,
            "slc_used_bytes": s.slc_used_bytes,
            "slc_capacity_bytes": s.slc_capacity_bytes,
            "slc_fill": s.slc_fill,
            "slc_segments": s.slc_segments,
            "migration_lag_secs": s.migration_lag_secs,
            "repair_queue": s.repair_queue,
            "stripes": s.stripes,
            "rebuild": s.rebuild.map(|r| json!({
                "device": r.device, "bytes_done": r.bytes_done, "bytes_total": r.bytes_total,
                "rate_bytes_per_sec": r.rate_bytes_per_sec, "finished": r.finished,
            })),
        })
    }

    /// The per-bucket capacity report, from the cache when it is younger than
    /// [`CAPACITY_TTL`], else from a new scan (run on a blocking thread).
    pub async fn capacity_report(&self) -> Result<Arc<CapacityReport>, StoreError> {
        let mut slot = self.capacity_cache.0.lock().await;
        if let Some((at, r)) = slot.as_ref() {
            if at.elapsed() < CAPACITY_TTL {
                return Ok(r.clone());
            }
        }
        let engine = self.engine.clone();
        let report = tokio::task::spawn_blocking(move || engine.capacity())
            .await
            .map_err(|e| StoreError::from(EngineError::Task(format!("capacity scan: {e}"))))??;
        let report = Arc::new(report);
        *slot = Some((Instant::now(), report.clone()));
        Ok(report)
    }

    async fn capacity(&self) -> Result<serde_json::Value, StoreError> {
        let r = self.capacity_report().await?;
        let buckets: serde_json::Map<String, serde_json::Value> = r
            .buckets
            .iter()
            .map(|(k, u)| (k.clone(), usage_json(u)))
            .collect();
        let p = &r.pending_release;
        let c = self.engine.data().counters();
        let s = self.engine.data().status();
        let qlc_bytes: u64 = s
            .devices
            .iter()
            .filter(|d| d.role == "qlc")
            .map(|d| d.bytes)
            .sum();
        Ok(json!({
            "total": usage_json(&r.total),
            "buckets": buckets,
            "pending_release": {
                "logical_bytes": whole(p.logical),
                "slc_bytes": whole(p.slc),
                "after_dedup_bytes": whole(p.after_dedup),
                "after_similarity_bytes": whole(p.after_similarity),
                "after_compression_bytes": whole(p.after_compression),
                "physical_bytes_with_parity": whole(p.physical_with_parity),
            },
            "missing_extents": r.missing_extents,
            "layout": {
                "slc_used_bytes": s.slc_used_bytes,
                "qlc_physical_bytes": qlc_bytes,
                "live_stored_bytes": c.live_bytes,
                "dead_stored_bytes": c.dead_bytes,
                "migrated_logical_bytes": c.migrated_bytes,
                "after_dedup_bytes": c.reduced_after_dedup_bytes,
                "after_similarity_bytes": c.reduced_after_similarity_bytes,
                "after_compression_bytes": c.reduced_after_compression_bytes,
                "physical_live_bytes_with_parity": c.physical_live_bytes,
                "metadata_table_bytes": self.engine.db().stats().table_bytes,
            },
        }))
    }

    async fn metrics_text(&self) -> String {
        let mut out = String::new();
        self.metrics.render(&mut out);
        let s = self.engine.data().status();
        let c = self.engine.data().counters();
        let mut g = |name: &str, help: &str, kind: &str, v: f64| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {v}"
            );
        };
        g(
            "cairn_slc_used_bytes",
            "Bytes held in the SLC buffer.",
            "gauge",
            s.slc_used_bytes as f64,
        );
        g(
            "cairn_slc_capacity_bytes",
            "SLC buffer capacity.",
            "gauge",
            s.slc_capacity_bytes as f64,
        );
        g(
            "cairn_slc_fill_ratio",
            "SLC fill (used / capacity).",
            "gauge",
            s.slc_fill,
        );
        g(
            "cairn_migration_lag_seconds",
            "Age of the oldest SLC segment not yet migrated.",
            "gauge",
            s.migration_lag_secs,
        );
        g(
            "cairn_stripes",
            "Stripes known to the layout.",
            "gauge",
            s.stripes as f64,
        );
        g(
            "cairn_repair_queue",
            "Shards waiting for repair.",
            "gauge",
            s.repair_queue as f64,
        );
        g(
            "cairn_slc_appended_bytes_total",
            "Bytes appended to the SLC buffer.",
            "counter",
            c.slc_appended_bytes as f64,
        );
        g(
            "cairn_migrated_bytes_total",
            "Logical bytes migrated from SLC to stripes.",
            "counter",
            c.migrated_bytes as f64,
        );
        g(
            "cairn_reduced_after_dedup_bytes_total",
            "Of the migrated logical bytes, what is left after exact dedup.",
            "counter",
            c.reduced_after_dedup_bytes as f64,
        );
        g(
            "cairn_reduced_after_similarity_bytes_total",
            "What is left after similarity (deltas at their encoded size).",
            "counter",
            c.reduced_after_similarity_bytes as f64,
        );
        g(
            "cairn_reduced_after_compression_bytes_total",
            "What is left after compression: stored bytes of new chunks.",
            "counter",
            c.reduced_after_compression_bytes as f64,
        );
        g(
            "cairn_physical_live_bytes",
            "Physical bytes on QLC of the live chunks, parity included.",
            "gauge",
            c.physical_live_bytes as f64,
        );
        g(
            "cairn_live_stored_bytes",
            "Stored bytes of live chunks.",
            "gauge",
            c.live_bytes as f64,
        );
        g(
            "cairn_dead_stored_bytes",
            "Stored bytes of freed chunks still in stripes.",
            "gauge",
            c.dead_bytes as f64,
        );
        g(
            "cairn_degraded_reads_total",
            "Reads reconstructed from parity.",
            "counter",
            c.degraded_reads as f64,
        );
        g(
            "cairn_repairs_total",
            "Shard repairs.",
            "counter",
            c.repairs as f64,
        );
        let capacity = self.capacity_report().await;
        if let Ok(r) = &capacity {
            g(
                "cairn_logical_bytes",
                "Logical bytes of all current objects.",
                "gauge",
                r.total.logical_bytes as f64,
            );
        }
        let qlc: u64 = s
            .devices
            .iter()
            .filter(|d| d.role == "qlc")
            .map(|d| d.bytes)
            .sum();
        g(
            "cairn_qlc_physical_bytes",
            "Bytes of layout files on QLC devices (parity included).",
            "gauge",
            qlc as f64,
        );
        match &capacity {
            Ok(r) => bucket_gauges(&mut out, r),
            Err(e) => tracing::warn!(error = %e, "capacity scan for /metrics failed"),
        }
        out.push_str("# HELP cairn_device_online Device state (1 online, 0 otherwise).\n# TYPE cairn_device_online gauge\n");
        for d in &s.devices {
            let _ = writeln!(
                out,
                "cairn_device_online{{device=\"{}\",role=\"{}\",state=\"{}\"}} {}",
                d.id,
                d.role,
                d.state,
                u8::from(d.state == "online")
            );
        }
        out
    }
}

/// One bucket's (or the total's) figures as `/admin/capacity` reports them, in whole bytes.
fn usage_json(u: &BucketUsage) -> serde_json::Value {
    json!({
        "logical_bytes": u.logical_bytes,
        "objects": u.objects,
        "staged_bytes": u.staged_bytes,
        "inline_bytes": u.inline_bytes,
        "slc_bytes": whole(u.slc_bytes()),
        "after_dedup_bytes": whole(u.after_dedup_bytes()),
        "after_similarity_bytes": whole(u.after_similarity_bytes()),
        "after_compression_bytes": whole(u.after_compression_bytes()),
        "physical_bytes_with_parity": whole(u.physical_bytes_with_parity()),
        "reduction_ratio": u.reduction_ratio(),
    })
}

/// A byte figure in whole bytes.
fn whole(v: f64) -> u64 {
    v.max(0.0).round() as u64
}

/// Escapes a Prometheus label value.
fn label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Per-bucket gauges, one family per figure, labelled `bucket="account/bucket"`.
fn bucket_gauges(out: &mut String, r: &CapacityReport) {
    type Figure = fn(&BucketUsage) -> f64;
    let families: [(&str, &str, Figure); 10] = [
        (
            "cairn_bucket_logical_bytes",
            "Logical bytes of the bucket's current objects.",
            |u| u.logical_bytes as f64,
        ),
        (
            "cairn_bucket_objects",
            "Current objects in the bucket.",
            |u| u.objects as f64,
        ),
        (
            "cairn_bucket_staged_bytes",
            "Logical bytes of uploads in progress (parts, uncommitted blocks).",
            |u| u.staged_bytes as f64,
        ),
        (
            "cairn_bucket_inline_bytes",
            "Bytes kept inline in metadata records.",
            |u| u.inline_bytes as f64,
        ),
        (
            "cairn_bucket_slc_bytes",
            "Bytes still in the SLC buffer, not reduced yet.",
            BucketUsage::slc_bytes,
        ),
        (
            "cairn_bucket_after_dedup_bytes",
            "The bucket's share of bytes left after exact dedup.",
            BucketUsage::after_dedup_bytes,
        ),
        (
            "cairn_bucket_after_similarity_bytes",
            "The bucket's share of bytes left after similarity (deltas).",
            BucketUsage::after_similarity_bytes,
        ),
        (
            "cairn_bucket_after_compression_bytes",
            "The bucket's share of stored bytes after compression.",
            BucketUsage::after_compression_bytes,
        ),
        (
            "cairn_bucket_physical_bytes",
            "The bucket's share of bytes on QLC, parity included.",
            BucketUsage::physical_bytes_with_parity,
        ),
        (
            "cairn_bucket_reduction_ratio",
            "Logical (with staged) bytes / bytes after compression.",
            BucketUsage::reduction_ratio,
        ),
    ];
    for (name, help, f) in families {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge");
        for (bucket, u) in &r.buckets {
            // Byte figures in whole bytes; the ratio as it is.
            let v = if name.ends_with("_ratio") {
                f(u)
            } else {
                f(u).round()
            };
            let _ = writeln!(out, "{name}{{bucket=\"{}\"}} {v}", label(bucket));
        }
    }
}

/// Serves the admin API on `listener` until `shutdown` resolves.
pub async fn serve(admin: Arc<Admin>, listener: TcpListener, shutdown: impl Future<Output = ()>) {
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            acc = listener.accept() => {
                let Ok((sock, peer)) = acc else { continue };
                let admin = admin.clone();
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(move |req| {
                        let admin = admin.clone();
                        async move { Ok::<_, Infallible>(admin.handle(peer, req).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(sock), svc)
                        .await;
                });
            }
            () = &mut shutdown => break,
        }
    }
}
