//! The one error type of the load generator.

/// Everything that can go wrong while generating load or writing the report.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// The endpoint could not be reached or the connection broke.
    #[error("http: {0}")]
    Http(#[from] hyper_util::client::legacy::Error),
    /// Reading a response body failed.
    #[error("body: {0}")]
    Body(#[from] hyper::Error),
    /// A request could not be built (bad URL, header).
    #[error("request: {0}")]
    Request(#[from] http::Error),
    /// The server answered with an unexpected status.
    #[error("{op}: status {status}: {body}")]
    Status {
        /// The operation.
        op: &'static str,
        /// The HTTP status.
        status: u16,
        /// The start of the response body.
        body: String,
    },
    /// What was read back is not what was written.
    #[error("integrity: {0}")]
    Mismatch(String),
    /// A response lacked something the protocol promises (an upload id, an ETag).
    #[error("protocol: {0}")]
    Protocol(String),
    /// Bad command-line or configuration value.
    #[error("config: {0}")]
    Config(String),
    /// Writing the JSON report failed.
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    /// Serializing the JSON report failed.
    #[error("json: {0}")]
    Json(#[from] serde_json::Error),
}
