//! The accept loop every head serves on: HTTP/1.1 and HTTP/2 (hyper-util's auto builder),
//! `TCP_NODELAY`, and a graceful shutdown that lets open requests finish for up to 10 s.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use hyper::body::{Body, Incoming};
use hyper::service::Service;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder as ConnBuilder;
use tokio::net::TcpListener;

/// How long open connections may take to finish after shutdown starts.
const DRAIN: Duration = Duration::from_secs(10);

/// Accepts connections on `listener` and serves each with the service `make(peer)` returns,
/// until `shutdown` resolves; then waits (at most 10 s) for open connections. `head` names
/// the head in log lines. Accept errors are logged and retried, never fatal.
pub async fn serve<F, S, B>(
    listener: TcpListener,
    make: F,
    shutdown: impl Future<Output = ()>,
    head: &'static str,
) where
    F: Fn(SocketAddr) -> S,
    S: Service<http::Request<Incoming>, Response = http::Response<B>> + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            acc = listener.accept() => {
                let (sock, peer) = match acc {
                    Ok(x) => x,
                    Err(e) => {
                        tracing::warn!(head, error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = sock.set_nodelay(true);
                let conn = ConnBuilder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(sock), make(peer))
                    .into_owned();
                let conn = graceful.watch(conn);
                tokio::spawn(async move {
                    if let Err(e) = conn.await {
                        tracing::debug!(head, %peer, error = %e, "connection ended with error");
                    }
                });
            }
            () = &mut shutdown => break,
        }
    }
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(DRAIN) => {
            tracing::warn!(head, "connections still open after 10 s; closing");
        }
    }
}
