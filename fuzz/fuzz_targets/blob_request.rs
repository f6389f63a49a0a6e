//! Request addressing: hosts, raw paths, queries and ranges never panic.
#![no_main]
use cairn_protocols::blob::request::{parse_query, parse_range, resource_path};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (host, rest) = text.split_once('\n').unwrap_or(("127.0.0.1:10000", text));
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    let _ = resource_path(Some(host), path, |a| a == "acct");
    let _ = parse_query(Some(query));
    if let Ok(r) = parse_range(text) {
        let _ = r.resolve(1 << 20);
    }
});
