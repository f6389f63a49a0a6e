//! `cairn-bench`: a load generator that speaks S3 (SigV4) and Azure Blob (SharedKey or SAS)
//! to any endpoint, with put/get/mixed/list/delete workloads, a checkpoint scenario, a model
//! distribution scenario and an A/B `compare` mode. The binary (`src/main.rs`) is a thin
//! shell over this library so the integration test drives the same code.

pub mod blob;
pub mod cli;
pub mod compare;
pub mod error;
pub mod http;
pub mod payload;
pub mod progress;
pub mod report;
pub mod runner;
pub mod s3;
pub mod scenario;
pub mod sigv4;
pub mod stats;
pub mod store;
pub mod workload;

pub use error::BenchError;
