//! The S3 request headers Cairn parses itself (s3s parses the rest).
//!
//! - `x-amz-tagging`: any value parses or fails without panicking; accepted tags obey S3's
//!   limits and, form-encoded again, parse to the same tags; any tags at all, encoded, parse
//!   back exactly (or are refused by the limits).
//! - `x-amz-copy-source-range`: an accepted range lies inside the source and prints back to
//!   itself.
//! - Listing continuation tokens: every key encodes to a token that decodes to the key; any
//!   token decodes or fails cleanly.
//! - Checksum headers (`Content-MD5`, `x-amz-checksum-*`, `x-amz-sdk-checksum-algorithm`,
//!   `x-amz-trailer`, `x-amz-decoded-content-length`): any values build a body check or fail;
//!   hashing a body against an accepted check never panics; the digests computed for a body,
//!   sent back as headers, verify that body, and a body one byte different fails them.
//! - `Host`: a virtual-hosted bucket is a non-empty label in front of a configured domain.
//!
//! Input: first byte mod 6 picks the header.
#![no_main]
use base64::Engine as _;
use cairn_protocols::checksum::{BodyCheck, BodyHasher, ChecksumAlgo};
use cairn_protocols::fuzzing::{
    decode_continuation_token, encode_continuation_token, parse_copy_source_range,
    parse_s3_tagging_header, s3_body_check, s3_host_bucket, url_encode, validate_s3_tags,
};
use libfuzzer_sys::arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;

fn encode_tags(tags: &[(String, String)]) -> String {
    tags.iter()
        .map(|(k, v)| format!("{}={}", url_encode(k), url_encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

fn tagging(s: &str) {
    if let Ok(tags) = parse_s3_tagging_header(s) {
        assert!(validate_s3_tags(&tags));
        assert_eq!(parse_s3_tagging_header(&encode_tags(&tags)), Ok(tags));
    }
}

fn tagging_from_strings(u: &mut Unstructured) -> Result<()> {
    let mut tags: Vec<(String, String)> = Vec::new();
    for _ in 0..u.int_in_range(0..=11)? {
        tags.push((u.arbitrary()?, u.arbitrary()?));
    }
    let got = parse_s3_tagging_header(&encode_tags(&tags));
    if validate_s3_tags(&tags) {
        assert_eq!(got, Ok(tags), "tags changed through encode + parse");
    } else {
        assert!(got.is_err(), "tags beyond S3's limits were accepted");
    }
    Ok(())
}

fn copy_range(u: &mut Unstructured) -> Result<()> {
    let size = u.arbitrary::<u64>()?;
    let s: String = u.arbitrary()?;
    if let Ok((a, b)) = parse_copy_source_range(&s, size) {
        assert!(a <= b && b < size, "range {a}-{b} of {size} bytes accepted");
        assert_eq!(
            parse_copy_source_range(&format!("bytes={a}-{b}"), size),
            Ok((a, b))
        );
    }
    Ok(())
}

fn token(s: &str) {
    assert_eq!(
        decode_continuation_token(&encode_continuation_token(s)).as_deref(),
        Ok(s)
    );
    if let Ok(k) = decode_continuation_token(s) {
        assert_eq!(
            decode_continuation_token(&encode_continuation_token(&k)),
            Ok(k)
        );
    }
}

fn hash(check: &BodyCheck, body: &[u8], split: usize) -> BodyHasher {
    let mut h = BodyHasher::new(check);
    let (a, b) = body.split_at(split.min(body.len()));
    h.update(a);
    h.update(b);
    h
}

fn checksums(u: &mut Unstructured) -> Result<()> {
    let mut headers = http::HeaderMap::new();
    for _ in 0..u.int_in_range(0..=3)? {
        let name = *u.choose(&["x-amz-trailer", "x-amz-decoded-content-length"])?;
        let v: String = u.arbitrary()?;
        if let Ok(v) = http::HeaderValue::from_str(&v) {
            headers.append(name, v);
        }
    }
    let opt = |u: &mut Unstructured| -> Result<Option<String>> {
        Ok(if u.ratio(1, 3)? {
            Some(u.arbitrary()?)
        } else {
            None
        })
    };
    let md5 = opt(u)?;
    let sums = [opt(u)?, opt(u)?, opt(u)?, opt(u)?, opt(u)?];
    let algorithm = opt(u)?;
    let len = if u.arbitrary()? {
        Some(u.arbitrary::<i64>()?)
    } else {
        None
    };
    let split = u.arbitrary::<usize>()?;
    let body = u.bytes(u.len().min(256))?.to_vec();
    if let Ok(check) = s3_body_check(headers, md5.as_deref(), sums, algorithm.as_deref(), len) {
        let h = hash(&check, &body, split);
        let _ = h.finish(check);
    }
    // Self-consistency: the digests of the body, announced as headers, verify it.
    let all = BodyCheck {
        algorithms: ChecksumAlgo::ALL.to_vec(),
        ..BodyCheck::default()
    };
    let d = hash(&all, &body, split)
        .finish(all)
        .expect("no expectations to fail");
    let get = |a: ChecksumAlgo| {
        d.checksums
            .iter()
            .find(|(x, _)| *x == a)
            .map(|(_, v)| v.clone())
    };
    let headers_for = || {
        let mut h = http::HeaderMap::new();
        h.insert("x-amz-decoded-content-length", body.len().into());
        h
    };
    let md5_b64 = base64::engine::general_purpose::STANDARD.encode(d.md5);
    let sums = || ChecksumAlgo::ALL.map(get);
    let check = s3_body_check(headers_for(), Some(&md5_b64), sums(), None, None)
        .expect("computed digests are well-formed headers");
    let ok = hash(&check, &body, split).finish(check);
    assert!(ok.is_ok(), "a body failed its own digests: {ok:?}");
    let mut other = body.clone();
    if let Some(b) = other.first_mut() {
        *b ^= 1;
        let check = s3_body_check(headers_for(), None, sums(), None, None).expect("same headers");
        assert!(
            hash(&check, &other, split).finish(check).is_err(),
            "a changed body verified"
        );
    }
    Ok(())
}

fn host(s: &str) {
    let domains = ["localhost", "s3.example.com"];
    if let Some(bucket) = s3_host_bucket(&domains, s) {
        assert!(!bucket.is_empty());
        let lower = s.to_ascii_lowercase();
        assert!(
            domains
                .iter()
                .any(|d| lower.starts_with(&format!("{bucket}.{d}"))),
            "bucket {bucket:?} from host {s:?}"
        );
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let text = std::str::from_utf8(rest).ok();
    let mut u = Unstructured::new(rest);
    let _ = match mode % 6 {
        0 => {
            text.map(tagging);
            Ok(())
        }
        1 => tagging_from_strings(&mut u),
        2 => copy_range(&mut u),
        3 => {
            text.map(token);
            Ok(())
        }
        4 => checksums(&mut u),
        _ => {
            text.map(host);
            Ok(())
        }
    };
});
