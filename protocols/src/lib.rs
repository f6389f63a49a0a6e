//! Cairn's protocol heads and the protocol-neutral object-store trait they call.
//!
//! - [`store`]: the [`store::ObjectStore`] trait the node implements.
//! - [`checksum`]: body digests and their verification, shared by every head.
//! - [`s3`]: the S3 head on `s3s`.
//! - [`blob`]: the Azure Blob head on hyper.
//! - [`listen`]: the accept loop both heads serve on.

pub mod blob;
pub mod checksum;
#[doc(hidden)]
pub mod fuzzing;
pub mod listen;
pub mod s3;
pub mod store;
