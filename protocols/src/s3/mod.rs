//! The S3 head: `s3s` does the HTTP, XML and SigV4 (headers, presigned URLs, aws-chunked with
//! trailers); [`S3Head`] maps each operation onto the [`ObjectStore`](crate::store::ObjectStore).
//! Operations not implemented here fall through to s3s's default, `NotImplemented`.

mod auth;
mod cond;
pub(crate) mod convert;
pub(crate) mod head;
mod host;

use std::future::Future;
use std::sync::Arc;

use s3s::service::{S3Service, S3ServiceBuilder};
use tokio::net::TcpListener;

pub use auth::StoreAuth;
pub use head::{S3Head, MIN_PART_SIZE};
pub use host::DomainHost;

use crate::store::ObjectStore;

/// Settings of the S3 head.
#[derive(Debug, Clone)]
pub struct S3Settings {
    /// Base domains for virtual-hosted-style requests (`<bucket>.<domain>`).
    pub domains: Vec<String>,
}

impl Default for S3Settings {
    fn default() -> Self {
        S3Settings {
            domains: vec!["localhost".to_owned()],
        }
    }
}

/// Builds the hyper service of the S3 head over `store`, with SigV4 auth against its accounts.
pub fn build_service(store: Arc<dyn ObjectStore>, settings: &S3Settings) -> S3Service {
    let mut b = S3ServiceBuilder::new(S3Head::new(store.clone()));
    b.set_auth(StoreAuth::new(store));
    b.set_host(DomainHost::new(settings.domains.clone()));
    b.build()
}

/// Serves `service` on `listener` until `shutdown` resolves, then waits for open connections
/// to finish their requests.
pub async fn serve(listener: TcpListener, service: S3Service, shutdown: impl Future<Output = ()>) {
    crate::listen::serve(listener, move |_peer| service.clone(), shutdown, "s3").await;
}
