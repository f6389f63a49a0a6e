//! SigV4 credentials backed by the store's accounts: access key = account name, secret = the
//! account key. s3s verifies the signature against the region named in the request's own
//! credential scope, so clients configured with any region name work.

use std::sync::Arc;

use s3s::auth::{S3Auth, SecretKey};
use s3s::{s3_error, S3Result};

use crate::store::ObjectStore;

/// An [`S3Auth`] that looks secrets up in the [`ObjectStore`]'s accounts.
pub struct StoreAuth {
    store: Arc<dyn ObjectStore>,
}

impl StoreAuth {
    /// Wraps a store.
    pub fn new(store: Arc<dyn ObjectStore>) -> StoreAuth {
        StoreAuth { store }
    }
}

#[async_trait::async_trait]
impl S3Auth for StoreAuth {
    async fn get_secret_key(&self, access_key: &str) -> S3Result<SecretKey> {
        match self.store.account_key(access_key) {
            Some(k) => Ok(SecretKey::from(k)),
            None => Err(s3_error!(
                InvalidAccessKeyId,
                "The AWS Access Key Id you provided does not exist in our records."
            )),
        }
    }
}
