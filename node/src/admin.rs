//! The admin API (JSON) and Prometheus `/metrics`, on hyper. Requests from off loopback must
//! carry `Authorization: Bearer <admin token>`.

use std::convert::Infallible;
use std::fmt::Write as _;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::json;
use tokio::net::TcpListener;

use crate::engine::Engine;
use crate::metrics::Metrics;

/// What the admin API serves.
pub struct Admin {
    /// The engine.
    pub engine: Arc<Engine>,
    /// Operation metrics.
    pub metrics: Arc<Metrics>,
    /// Bearer token for requests from off loopback.
    pub token: Option<String>,
}

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
                self.metrics_text(),
            ),
            (Method::GET, "/admin/status") => json_reply(StatusCode::OK, self.status()),
            (Method::GET, "/admin/capacity") => match self.capacity() {
                Ok(v) => json_reply(StatusCode::OK, v),
                Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e),
            },
            (Method::POST, "/admin/flush") => {
                let t = std::time::Instant::now();
                match self.engine.data().flush().await {
                    Ok(()) => {
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

    fn capacity(&self) -> Result<serde_json::Value, cairn_protocols::store::StoreError> {
        let per = self.engine.capacity()?;
        let total: u64 = per.values().map(|(b, _)| *b).sum();
        let objects: u64 = per.values().map(|(_, n)| *n).sum();
        let buckets: serde_json::Map<String, serde_json::Value> = per
            .into_iter()
            .map(|(k, (b, n))| (k, json!({ "logical_bytes": b, "objects": n })))
            .collect();
        let c = self.engine.data().counters();
        let s = self.engine.data().status();
        let qlc_bytes: u64 = s
            .devices
            .iter()
            .filter(|d| d.role == "qlc")
            .map(|d| d.bytes)
            .sum();
        Ok(json!({
            "total": { "logical_bytes": total, "objects": objects },
            "buckets": buckets,
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

    fn metrics_text(&self) -> String {
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
        if let Ok(per) = self.engine.capacity() {
            let total: u64 = per.values().map(|(b, _)| *b).sum();
            g(
                "cairn_logical_bytes",
                "Logical bytes of all current objects.",
                "gauge",
                total as f64,
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
