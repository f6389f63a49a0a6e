//! The Azure Blob head: Blob REST on hyper over the [`BlobStore`] the node implements.
//!
//! Parsing, authentication (SharedKey, service and account SAS, anonymous public reads),
//! conditional headers, leases and XML live here; storage lives behind [`BlobStore`].
//! Every error is Azure's error XML plus `x-ms-error-code` (the header also on HEAD).

pub mod auth;
pub mod cond;
pub mod error;
pub mod lease;
pub mod names;
pub(crate) mod ops;
pub mod request;
pub mod response;
pub mod sas;
pub mod sign;
pub mod store;
pub mod xml;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use hyper::body::Incoming;
use hyper::service::service_fn;
use tokio::net::TcpListener;

pub use error::BlobError;
pub use store::BlobStore;

/// The `x-ms-version` served when a request names none.
pub const DEFAULT_VERSION: &str = "2025-11-05";

/// The Blob head over one store.
#[derive(Clone)]
pub struct BlobHead {
    store: Arc<dyn BlobStore>,
}

impl BlobHead {
    /// A head serving `store`.
    pub fn new(store: Arc<dyn BlobStore>) -> BlobHead {
        BlobHead { store }
    }

    /// Answers one request from `peer`. Never panics on bad input: every failure becomes an
    /// Azure error response.
    pub async fn handle(
        &self,
        req: http::Request<Incoming>,
        peer: SocketAddr,
    ) -> http::Response<response::Body> {
        ops::handle(&self.store, req, peer).await
    }
}

/// Serves the Blob head on `listener` until `shutdown` resolves, then lets open requests
/// finish (for at most 10 seconds).
pub async fn serve(listener: TcpListener, head: BlobHead, shutdown: impl Future<Output = ()>) {
    let make = move |peer: SocketAddr| {
        let head = head.clone();
        service_fn(move |req| {
            let head = head.clone();
            async move { Ok::<_, std::convert::Infallible>(head.handle(req, peer).await) }
        })
    };
    crate::listen::serve(listener, make, shutdown, "blob").await;
}
