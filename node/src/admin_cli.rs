//! `cairn admin <cmd>`: a small HTTP/1.1 client for the admin API.

use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Errors of the admin client.
#[derive(Debug, thiserror::Error)]
pub enum AdminCliError {
    /// Could not reach the node.
    #[error("cannot reach the admin API at {addr}: {source}")]
    Connect {
        /// Where.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The connection failed mid-request.
    #[error("admin request failed: {0}")]
    Io(#[from] std::io::Error),
    /// The reply was not HTTP.
    #[error("malformed reply from the admin API")]
    Malformed,
}

/// Sends one request; returns the status code and the body.
pub async fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
) -> Result<(u16, String), AdminCliError> {
    let mut s = TcpStream::connect(addr)
        .await
        .map_err(|source| AdminCliError::Connect { addr, source })?;
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: 0\r\n"
    );
    if let Some(t) = token.filter(|t| !t.is_empty()) {
        req.push_str(&format!("Authorization: Bearer {t}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).await?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).await?;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or(AdminCliError::Malformed)?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse::<u16>().ok())
        .ok_or(AdminCliError::Malformed)?;
    Ok((status, body.to_owned()))
}
