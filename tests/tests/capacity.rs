//! Per-bucket capacity accounting end to end: the same 8 MiB random object in two buckets of
//! two accounts shares its chunks (each bucket carries half), a compressible text object in a
//! third bucket shows compression, the buckets add up to the node's total and to what the
//! layout holds live, and deleting one copy hands the whole object to the other bucket.
//! Checks `/admin/capacity`, the per-bucket `/metrics` series and `cairn admin capacity`.

use std::time::{Duration, Instant};

use bytes::Bytes;
use cairn_tests::{cairn_bin, http_request, run_client, Node, ACCESS_KEY, SECRET_KEY};
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::path::Path;
use object_store::ObjectStore;
use serde_json::Value;

const ALT: &str = "alt";
const ALT_KEY: &str = "alt-secret-key-for-the-capacity-test";
const OBJ: usize = 8 << 20;

fn store(node: &Node, bucket: &str, access: &str, secret: &str) -> AmazonS3 {
    AmazonS3Builder::new()
        .with_endpoint(&node.endpoint)
        .with_allow_http(true)
        .with_bucket_name(bucket)
        .with_access_key_id(access)
        .with_secret_access_key(secret)
        .with_region("us-east-1")
        .build()
        .expect("client")
}

fn create_bucket(node: &Node, bucket: &str, access: &str, secret: &str) {
    let code = format!(
        "import boto3,os; boto3.client('s3', endpoint_url=os.environ['CAIRN_ENDPOINT'], region_name='us-east-1').create_bucket(Bucket='{bucket}')"
    );
    run_client(
        node,
        "python3",
        &["-c", &code],
        &[
            ("AWS_ACCESS_KEY_ID", access),
            ("AWS_SECRET_ACCESS_KEY", secret),
        ],
    );
}

/// Pseudo-random bytes (xorshift; incompressible, no repeats).
fn random(len: usize, seed: u64) -> Bytes {
    Bytes::from(cairn_tests::xorshift_bytes(seed, len))
}

/// Log-like text: compresses well, no two lines alike.
fn text(len: usize) -> Bytes {
    let mut s = String::with_capacity(len + 128);
    let mut x: u64 = 0x9e3779b97f4a7c15;
    let mut i = 0u64;
    while s.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        i += 1;
        s.push_str(&format!(
            "2026-11-22T06:{:02}:{:02}Z host-{:02} GET /bucket/obj-{i} status={} bytes={} id={:016x}\n",
            (i / 60) % 60,
            i % 60,
            x % 16,
            [200, 200, 404, 500][(x >> 8) as usize % 4],
            (x >> 16) % 100_000,
            x
        ));
    }
    s.truncate(len);
    Bytes::from(s)
}

fn admin_json(node: &Node, method: &str, path: &str) -> Value {
    let (code, body) = http_request(node.admin, method, path).expect("admin request");
    assert_eq!(code, 200, "{method} {path}: {body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path} is not JSON ({e}): {body}"))
}

fn num(v: &Value, bucket: &str, field: &str) -> f64 {
    let b = if bucket == "total" {
        &v["total"]
    } else {
        &v["buckets"][bucket]
    };
    b[field]
        .as_f64()
        .unwrap_or_else(|| panic!("{bucket}.{field} missing in {v:#}"))
}

fn within(a: f64, b: f64, rel: f64) -> bool {
    (a - b).abs() <= rel * b.abs() + 1.0
}

/// Polls `/admin/capacity` (it is cached for a few seconds) until `ok` holds or 60 s pass.
fn capacity_until(node: &Node, what: &str, ok: impl Fn(&Value) -> bool) -> Value {
    let t = Instant::now();
    loop {
        let v = admin_json(node, "GET", "/admin/capacity");
        if ok(&v) {
            return v;
        }
        if t.elapsed() > Duration::from_secs(60) {
            panic!("capacity never showed {what}:\n{v:#}");
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn buckets_share_chunks_and_deletes_give_the_space_back() {
    let cfg_dir = tempfile::tempdir().expect("tempdir");
    let cfg = cfg_dir.path().join("cairn.toml");
    std::fs::write(
        &cfg,
        format!("[[accounts]]\nname = \"{ALT}\"\nkey = \"{ALT_KEY}\"\n"),
    )
    .expect("write config");
    let node = Node::start_with(&["--config", cfg.to_str().expect("utf-8 path")]);
    create_bucket(&node, "cap-a", ACCESS_KEY, SECRET_KEY);
    create_bucket(&node, "cap-b", ALT, ALT_KEY);
    create_bucket(&node, "cap-text", ACCESS_KEY, SECRET_KEY);
    let (a, b, t) = (
        format!("{ACCESS_KEY}/cap-a"),
        format!("{ALT}/cap-b"),
        format!("{ACCESS_KEY}/cap-text"),
    );

    let obj = random(OBJ, 0x5eed);
    let txt = text(3 << 20);
    let one = OBJ as f64;
    let sa = store(&node, "cap-a", ACCESS_KEY, SECRET_KEY);
    sa.put(&Path::from("same"), obj.clone().into())
        .await
        .expect("put a");
    // Migrate the first copy before the second arrives, so the second finds its chunks in the
    // fingerprint index whatever the reducer does within one migration batch.
    admin_json(&node, "POST", "/admin/flush");
    store(&node, "cap-b", ALT, ALT_KEY)
        .put(&Path::from("same"), obj.clone().into())
        .await
        .expect("put b");
    store(&node, "cap-text", ACCESS_KEY, SECRET_KEY)
        .put(&Path::from("log.txt"), txt.clone().into())
        .await
        .expect("put text");
    let flushed = admin_json(&node, "POST", "/admin/flush");
    assert_eq!(flushed["flushed"], true, "{flushed}");

    let v = capacity_until(&node, "everything migrated", |v| {
        num(v, "total", "slc_bytes") == 0.0 && num(v, "total", "objects") == 3.0
    });
    println!("capacity after writes:\n{v:#}");
    for bk in [&a, &b] {
        assert_eq!(num(&v, bk, "logical_bytes"), one);
        assert_eq!(num(&v, bk, "objects"), 1.0);
        let d = num(&v, bk, "after_dedup_bytes");
        assert!(
            within(d, one / 2.0, 0.01),
            "{bk} after dedup {d}, want half of {one}"
        );
        let r = num(&v, bk, "reduction_ratio");
        assert!(r > 1.9 && r < 2.1, "{bk} reduction ratio {r}");
    }
    let tl = txt.len() as f64;
    assert_eq!(num(&v, &t, "logical_bytes"), tl);
    let tc = num(&v, &t, "after_compression_bytes");
    assert!(tc < tl * 0.6, "text after compression {tc} of {tl}");
    let dedup_sum: f64 = [&a, &b, &t]
        .iter()
        .map(|bk| num(&v, bk, "after_dedup_bytes"))
        .sum();
    assert!(
        within(dedup_sum, one + tl, 0.01),
        "after dedup {dedup_sum}, want one copy + the text = {}",
        one + tl
    );
    // The buckets add up to the total, and the total to what the layout holds live.
    for field in [
        "logical_bytes",
        "after_dedup_bytes",
        "after_compression_bytes",
        "physical_bytes_with_parity",
    ] {
        let s: f64 = [&a, &b, &t].iter().map(|bk| num(&v, bk, field)).sum();
        let total = num(&v, "total", field);
        assert!(
            (s - total).abs() <= 3.0,
            "{field}: buckets {s} vs total {total}"
        );
    }
    let physical = num(&v, "total", "physical_bytes_with_parity");
    let live_physical = v["layout"]["physical_live_bytes_with_parity"]
        .as_f64()
        .expect("layout physical");
    assert!(
        (physical - live_physical).abs() <= 4.0,
        "buckets carry {physical} physical bytes, the layout holds {live_physical}"
    );
    assert!(within(
        physical,
        num(&v, "total", "after_compression_bytes") * 1.5,
        0.001
    ));

    let (code, metrics) = http_request(node.admin, "GET", "/metrics").expect("metrics");
    assert_eq!(code, 200);
    for series in [
        format!("cairn_bucket_logical_bytes{{bucket=\"{b}\"}} {OBJ}"),
        format!("cairn_bucket_objects{{bucket=\"{a}\"}} 1"),
        format!("cairn_bucket_after_dedup_bytes{{bucket=\"{t}\"}} "),
        format!("cairn_bucket_after_similarity_bytes{{bucket=\"{t}\"}} "),
        format!("cairn_bucket_after_compression_bytes{{bucket=\"{t}\"}} "),
        format!("cairn_bucket_physical_bytes{{bucket=\"{a}\"}} "),
        format!("cairn_bucket_slc_bytes{{bucket=\"{b}\"}} 0"),
        format!("cairn_bucket_reduction_ratio{{bucket=\"{t}\"}} "),
    ] {
        assert!(
            metrics.contains(&series),
            "/metrics lacks {series}:\n{metrics}"
        );
    }

    let cli = std::process::Command::new(cairn_bin())
        .args(["admin", "--addr", &node.admin.to_string(), "capacity"])
        .output()
        .expect("run cairn admin capacity");
    let out = String::from_utf8_lossy(&cli.stdout);
    assert!(cli.status.success(), "cairn admin capacity failed: {out}");
    assert!(
        out.contains("after_dedup_bytes") && out.contains(&b),
        "{out}"
    );

    // Delete bucket A's copy: after the deferred release and GC, bucket B carries it all.
    sa.delete(&Path::from("same")).await.expect("delete");
    admin_json(&node, "POST", "/admin/flush");
    let v = capacity_until(&node, "the released copy collected", |v| {
        num(v, &a, "objects") == 0.0
            && v["pending_release"]["physical_bytes_with_parity"].as_f64() == Some(0.0)
            && within(num(v, &b, "after_dedup_bytes"), one, 0.01)
    });
    println!("capacity after the delete:\n{v:#}");
    for field in [
        "logical_bytes",
        "after_dedup_bytes",
        "after_compression_bytes",
        "physical_bytes_with_parity",
    ] {
        assert_eq!(num(&v, &a, field), 0.0, "{a}.{field}");
    }
    let bd = num(&v, &b, "after_dedup_bytes");
    assert!(within(bd, one, 0.01), "{b} after dedup {bd}, want {one}");
    let bp = num(&v, &b, "physical_bytes_with_parity");
    assert!(within(bp, one * 1.5, 0.01), "{b} physical {bp}");
    let physical = num(&v, "total", "physical_bytes_with_parity");
    let live_physical = v["layout"]["physical_live_bytes_with_parity"]
        .as_f64()
        .expect("layout physical");
    assert!(
        (physical - live_physical).abs() <= 4.0,
        "after the delete: buckets {physical}, layout {live_physical}"
    );
}
