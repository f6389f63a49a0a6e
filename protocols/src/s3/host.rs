//! Virtual-hosted-style addressing: `<bucket>.<domain>[:port]` names the bucket; an IP
//! address, a bare configured domain or any other host is path-style.

use std::borrow::Cow;

use s3s::host::{S3Host, VirtualHost};
use s3s::S3Result;

/// Parses `Host` against a list of base domains (e.g. `localhost`, `s3.example.com`).
#[derive(Debug, Clone)]
pub struct DomainHost {
    domains: Vec<String>,
}

impl DomainHost {
    /// Base domains, lower-cased, without ports.
    pub fn new(domains: Vec<String>) -> DomainHost {
        DomainHost {
            domains: domains
                .into_iter()
                .map(|d| d.to_ascii_lowercase())
                .collect(),
        }
    }
}

/// The host without a trailing `:port`.
fn strip_port(host: &str) -> &str {
    match host.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(']') && p.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => host,
    }
}

impl S3Host for DomainHost {
    fn parse_host_header<'a>(&'a self, host: &'a str) -> S3Result<VirtualHost<'a>> {
        let h = strip_port(host).to_ascii_lowercase();
        for d in &self.domains {
            if let Some(bucket) = h.strip_suffix(d.as_str()).and_then(|b| b.strip_suffix('.')) {
                if !bucket.is_empty() {
                    return Ok(
                        VirtualHost::new(d.as_str()).with_bucket(Cow::Owned(bucket.to_owned()))
                    );
                }
            }
        }
        Ok(VirtualHost::new(Cow::Owned(h)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_virtual_and_path_style() {
        let h = DomainHost::new(vec!["localhost".into()]);
        assert_eq!(
            h.parse_host_header("b1.localhost:9000").unwrap().bucket(),
            Some("b1")
        );
        assert_eq!(
            h.parse_host_header("localhost:9000").unwrap().bucket(),
            None
        );
        assert_eq!(h.parse_host_header("example.org").unwrap().bucket(), None);
    }
}
