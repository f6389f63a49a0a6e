//! SharedKey: any Authorization value and any x-ms-* headers parse and verify (or fail)
//! without panicking, with both header orderings and path styles tried.
#![no_main]
use cairn_protocols::blob::auth::{parse_authorization, verify_shared_key, SignedRequest};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut lines = text.lines();
    let auth = lines.next().unwrap_or("");
    let mut headers = http::HeaderMap::new();
    for line in lines.by_ref().take(16) {
        if let Some((k, v)) = line.split_once(':') {
            if let (Ok(n), Ok(v)) = (
                http::HeaderName::from_bytes(k.trim().as_bytes()),
                http::HeaderValue::from_str(v.trim()),
            ) {
                headers.append(n, v);
            }
        }
    }
    let query = vec![("comp".to_string(), "block".to_string())];
    let req = SignedRequest {
        method: "PUT",
        raw_path: "/acct/cont/blob",
        query: &query,
        headers: &headers,
        path_style: true,
    };
    if let Ok(parsed) = parse_authorization(auth) {
        let _ = verify_shared_key(&req, &parsed, "acct", b"fuzz key");
    }
});
