//! SAS query strings and times: any query verifies or fails with an Azure error, never a
//! panic; a SAS that verifies must carry the signature made with the key.
#![no_main]
use std::time::SystemTime;

use cairn_protocols::blob::request::parse_query;
use cairn_protocols::blob::sas::{parse_sas_time, verify, Target};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = parse_sas_time(text);
    let Ok(query) = parse_query(Some(text)) else {
        return;
    };
    let target = Target {
        account: "acct",
        container: Some("cont"),
        blob: Some("a/b"),
    };
    let _ = verify(&query, &target, b"fuzz key", SystemTime::now(), None, false);
});
