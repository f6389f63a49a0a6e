//! `cairn serve`: open the stores, bind the listeners, print the banner, serve until a
//! signal, then shut down in order (stop accepting, drain requests, stop workers, flush).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use cairn_erasure::{DataStore, LayoutConfig, LayoutError};
use cairn_metadata::{Db, Options};
use cairn_protocols::blob::{serve as serve_blob, BlobHead};
use cairn_protocols::s3::{build_service, serve as serve_s3, S3Settings};
use cairn_protocols::store::ObjectStore;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::admin::{self, Admin};
use crate::config::{Config, DEV_ACCOUNT, DEV_KEY};
use crate::engine::{Engine, EngineConfig};
use crate::metrics::Metrics;

/// Failures that stop the node.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The data directory could not be created.
    #[error("creating {0}: {1}")]
    DataDir(String, std::io::Error),
    /// The metadata store could not be opened.
    #[error("opening metadata: {0}")]
    Metadata(#[from] cairn_metadata::Error),
    /// The data layout could not be opened.
    #[error("opening the data layout: {0}")]
    Layout(#[from] LayoutError),
    /// A listener could not be bound.
    #[error("binding {0}: {1}")]
    Bind(String, std::io::Error),
    /// A blocking task died.
    #[error("startup task failed: {0}")]
    Task(String),
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

async fn bind(what: &str, addr: std::net::SocketAddr) -> Result<TcpListener, ServeError> {
    TcpListener::bind(addr)
        .await
        .map_err(|e| ServeError::Bind(format!("{what} {addr}"), e))
}

/// Runs a node with `cfg` until SIGINT/SIGTERM.
pub async fn run(cfg: Config) -> Result<(), ServeError> {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("CAIRN_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .try_init();

    std::fs::create_dir_all(&cfg.data_dir)
        .map_err(|e| ServeError::DataDir(cfg.data_dir.display().to_string(), e))?;
    let started = std::time::Instant::now();
    let meta_dir = cfg.data_dir.join("meta");
    let db = tokio::task::spawn_blocking(move || Db::open(meta_dir, Options::default()))
        .await
        .map_err(|e| ServeError::Task(e.to_string()))??;
    let db = Arc::new(db);
    let ds = DataStore::open(LayoutConfig::single_node(&cfg.data_dir), db.clone()).await?;
    let recovered = started.elapsed();

    let metrics = Arc::new(Metrics::default());
    let accounts: BTreeMap<String, String> = cfg
        .accounts
        .iter()
        .map(|a| (a.name.clone(), a.key.clone()))
        .collect();
    let engine = Arc::new(Engine::new(
        db.clone(),
        ds.clone(),
        EngineConfig {
            accounts,
            region: cfg.region.clone(),
            inline_max: cfg.inline_max_bytes,
            extent_bytes: cfg.extent_bytes,
            upload_expiry: cfg.upload_expiry,
        },
        metrics.clone(),
    ));

    let s3_listener = bind("S3", cfg.s3_addr).await?;
    let blob_listener = bind("Blob", cfg.blob_addr).await?;
    let admin_listener = bind("admin", cfg.admin_addr).await?;
    let s3_addr = s3_listener.local_addr().unwrap_or(cfg.s3_addr);
    let blob_addr = blob_listener.local_addr().unwrap_or(cfg.blob_addr);
    let admin_addr = admin_listener.local_addr().unwrap_or(cfg.admin_addr);

    print_banner(&cfg, s3_addr, blob_addr, admin_addr, recovered);

    let (stop_tx, stop_rx) = watch::channel(false);
    let stopped = |mut rx: watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|v| *v).await;
    };

    let store: Arc<dyn ObjectStore> = engine.clone();
    let service = build_service(
        store,
        &S3Settings {
            domains: cfg.s3_domains.clone(),
        },
    );
    let s3_task = tokio::spawn(serve_s3(s3_listener, service, stopped(stop_rx.clone())));
    let blob_task = tokio::spawn(serve_blob(
        blob_listener,
        BlobHead::new(engine.clone()),
        stopped(stop_rx.clone()),
    ));
    let admin = Arc::new(Admin {
        engine: engine.clone(),
        metrics: metrics.clone(),
        token: cfg.admin_token.clone(),
        capacity_cache: Default::default(),
    });
    let admin_task = tokio::spawn(admin::serve(
        admin,
        admin_listener,
        stopped(stop_rx.clone()),
    ));

    // Background: abort uploads left unfinished past their expiry.
    let expiry_engine = engine.clone();
    let mut expiry_stop = stop_rx.clone();
    let expiry_task = tokio::spawn(async move {
        loop {
            match expiry_engine.expire_uploads().await {
                Ok(0) => {}
                Ok(n) => tracing::info!(aborted = n, "expired unfinished uploads"),
                Err(e) => tracing::warn!(error = %e, "upload expiry failed"),
            }
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(3600)) => {}
                _ = expiry_stop.wait_for(|v| *v) => break,
            }
        }
    });

    // Background: hand extents released by overwrites and deletes to the layout's collector
    // once no read that started before them is still streaming (and, right after start-up,
    // everything a previous run left deferred).
    let retire_engine = engine.clone();
    let mut retire_stop = stop_rx.clone();
    let retire_task = tokio::spawn(async move {
        loop {
            if let Err(e) = retire_engine.retire_pass().await {
                tracing::warn!(error = %e, "deferred extent release failed");
            }
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                _ = retire_stop.wait_for(|v| *v) => break,
            }
        }
    });

    println!("cairn: ready");
    wait_for_signal().await;
    println!("cairn: shutting down");
    let _ = stop_tx.send(true);
    let _ = s3_task.await;
    let _ = blob_task.await;
    let _ = admin_task.await;
    let _ = expiry_task.await;
    let _ = retire_task.await;
    // Requests are drained: nothing can still be reading, so release what is deferred.
    if let Err(e) = engine.retire_pass().await {
        tracing::warn!(error = %e, "deferred extent release at shutdown failed");
    }
    ds.shutdown().await;
    let flush_db = db.clone();
    match tokio::task::spawn_blocking(move || flush_db.flush()).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "metadata flush at shutdown failed (the WAL still holds every write)")
        }
        Err(e) => tracing::warn!(error = %e, "metadata flush task failed"),
    }
    println!("cairn: stopped");
    Ok(())
}

fn print_banner(
    cfg: &Config,
    s3: std::net::SocketAddr,
    blob: std::net::SocketAddr,
    admin: std::net::SocketAddr,
    recovered: Duration,
) {
    println!("cairn {} — single node", env!("CARGO_PKG_VERSION"));
    println!(
        "  data dir   {} (opened in {:.2?})",
        cfg.data_dir.display(),
        recovered
    );
    println!(
        "  S3         http://{s3}  region {}  (path-style; virtual-hosted as <bucket>.{})",
        cfg.region,
        cfg.s3_domains
            .first()
            .map(String::as_str)
            .unwrap_or("localhost")
    );
    println!(
        "  Blob       http://{blob}/<account>  (path-style; host-style as <account>.blob.<domain>)"
    );
    println!(
        "  peer       {} (reserved; not served yet — single node)",
        cfg.peer_addr
    );
    println!("  admin      http://{admin}  (/health /metrics /admin/status /admin/capacity; POST /admin/flush /admin/scrub /admin/rebuild?device=ID)");
    for a in &cfg.accounts {
        if a.name == DEV_ACCOUNT && a.key == DEV_KEY {
            println!("  account    {} (dev account, well-known key)", a.name);
            println!("             AWS_ACCESS_KEY_ID={}", a.name);
            println!("             AWS_SECRET_ACCESS_KEY={}", a.key);
        } else {
            println!("  account    {} (key from config)", a.name);
        }
    }
    println!("  effective config:");
    for line in cfg.to_toml().lines() {
        println!("    {line}");
    }
}
