//! Starts the real `cairn` binary and drives tiny workloads through the library over S3 and
//! Blob, so the load generator cannot silently rot.

use std::process::{Command, Stdio};

use serde_json::Value;

use cairn_bench::cli::DEV_KEY;
use cairn_bench::store::{Protocol, Target};
use cairn_bench::workload::{run, LoadConfig, Workload};
use cairn_tests::Node;

/// A load-generator target on `node` over `protocol`.
fn target(node: &Node, protocol: Protocol) -> Target {
    let port = match protocol {
        Protocol::S3 => node.s3_port,
        Protocol::Blob => node.blob_port,
    };
    Target {
        endpoint: format!("http://127.0.0.1:{port}"),
        protocol,
        account: "devstoreaccount1".into(),
        key: DEV_KEY.into(),
        bucket: "smoke".into(),
        region: "us-east-1".into(),
        sas: None,
        s3_virtual_host: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn put_get_checkpoint_over_s3_and_blob() {
    let node = Node::start();
    for protocol in [Protocol::S3, Protocol::Blob] {
        let target = target(&node, protocol);
        let cfg = LoadConfig {
            size: 4096,
            concurrency: 4,
            count: Some(20),
            objects: Some(5),
            progress: false,
            ..LoadConfig::default()
        };
        let put = run(Workload::Put, &target, &cfg).await.expect("put");
        assert_eq!(put.errors(), 0, "{protocol} put:\n{}", put.table());
        assert_eq!(put.op("put", "put").expect("put op").ops, 20);

        let get = run(Workload::Get, &target, &cfg).await.expect("get");
        assert_eq!(get.errors(), 0, "{protocol} get:\n{}", get.table());
        let g = get.op("get", "get").expect("get op");
        assert_eq!(g.ops, 20, "every read verified");
        assert_eq!(g.bytes, 20 * 4096);

        let list = run(Workload::List, &target, &cfg).await.expect("list");
        assert_eq!(list.errors(), 0, "{protocol} list:\n{}", list.table());

        let ckpt_cfg = LoadConfig {
            // S3 parts other than the last must be at least 5 MiB.
            size: (10 << 20) + 777,
            part_size: 5 << 20,
            part_concurrency: 2,
            writers: Some(2),
            ..cfg.clone()
        };
        let ck = run(Workload::Checkpoint, &target, &ckpt_cfg)
            .await
            .expect("checkpoint");
        assert_eq!(ck.errors(), 0, "{protocol} checkpoint:\n{}", ck.table());
        assert_eq!(
            ck.op("checkpoint-read", "checkpoint_restore")
                .expect("restore op")
                .ops,
            2
        );
        assert_eq!(
            ck.op("checkpoint-read", "range_get").expect("ranges").ops,
            2 * 3
        );
    }
}

/// Runs the `cairn-bench` binary with `args` plus `--json`; returns its exit code, its
/// stdout and the JSON report (when it wrote one).
fn bench(args: &[&str]) -> (Option<i32>, String, Option<Value>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let json = dir.path().join("report.json");
    let out = Command::new(env!("CARGO_BIN_EXE_cairn-bench"))
        .args(args)
        .arg("--no-progress")
        .arg("--json")
        .arg(&json)
        .stdin(Stdio::null())
        .output()
        .expect("run cairn-bench");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let report = std::fs::read(&json)
        .ok()
        .map(|b| serde_json::from_slice(&b).expect("JSON report"));
    (out.status.code(), format!("{stdout}{stderr}"), report)
}

/// The `phase`/`op` summary of a JSON report.
fn op<'a>(report: &'a Value, phase: &str, op: &str) -> &'a Value {
    report["phases"]
        .as_array()
        .and_then(|ps| ps.iter().find(|p| p["name"] == phase))
        .and_then(|p| p["ops"].as_array())
        .and_then(|os| os.iter().find(|o| o["op"] == op))
        .unwrap_or_else(|| panic!("no {phase}/{op} in {report:#}"))
}

/// The total of `errors` over every phase and op of a JSON report.
fn errors(report: &Value) -> u64 {
    report["phases"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|p| p["ops"].as_array().into_iter().flatten())
        .map(|o| o["errors"].as_u64().expect("errors"))
        .sum()
}

#[test]
fn list_walks_every_page_over_s3_and_blob() {
    let node = Node::start();
    for (protocol, port) in [("s3", node.s3_port), ("blob", node.blob_port)] {
        let endpoint = format!("http://127.0.0.1:{port}");
        // 2500 objects, 1000 per page: every list op is 3 page requests.
        let (code, out, report) = bench(&[
            "list",
            "-e",
            &endpoint,
            "-p",
            protocol,
            "--bucket",
            "pages",
            "-s",
            "16",
            "--objects",
            "2500",
            "--page-size",
            "1000",
            "-c",
            "4",
            "-n",
            "4",
        ]);
        let report = report.unwrap_or_else(|| panic!("{protocol}: no report:\n{out}"));
        assert_eq!(code, Some(0), "{protocol}:\n{out}");
        assert_eq!(errors(&report), 0, "{protocol}:\n{out}");
        assert_eq!(op(&report, "list", "list")["ops"], 4, "{protocol}:\n{out}");
        assert_eq!(
            op(&report, "list", "list_page")["ops"],
            4 * 3,
            "{protocol}:\n{out}"
        );
        assert_eq!(report["config"]["page_size"], 1000);
    }
}

#[test]
fn s3_virtual_hosted_put_get() {
    let node = Node::start();
    // The node takes `<bucket>.localhost[:port]` as virtual-hosted (its default s3_domains).
    let endpoint = format!("http://localhost:{}", node.s3_port);
    for workload in ["put", "get"] {
        let (code, out, report) = bench(&[
            workload,
            "-e",
            &endpoint,
            "-p",
            "s3",
            "--s3-virtual-host",
            "--bucket",
            "vhost",
            "--objects",
            "5",
            "-c",
            "4",
            "-n",
            "20",
        ]);
        let report = report.unwrap_or_else(|| panic!("{workload}: no report:\n{out}"));
        assert_eq!(code, Some(0), "{workload}:\n{out}");
        assert_eq!(errors(&report), 0, "{workload}:\n{out}");
        assert_eq!(
            op(&report, workload, workload)["ops"],
            20,
            "{workload}:\n{out}"
        );
        assert_eq!(report["target"]["s3_virtual_host"], "");
    }
    // The bucket really travels in Host only: with a domain the node does not serve, the
    // same requests are path-style requests without a bucket and fail.
    let ip = format!("http://127.0.0.1:{}", node.s3_port);
    let (code, out, _) = bench(&[
        "put",
        "-e",
        &ip,
        "--s3-virtual-host=elsewhere.test",
        "--bucket",
        "vhost",
        "-n",
        "2",
    ]);
    assert_ne!(code, Some(0), "unknown domain must fail:\n{out}");
    // An explicit domain on an IP endpoint that the node does serve works.
    let (code, out, _) = bench(&[
        "put",
        "-e",
        &ip,
        "--s3-virtual-host=localhost",
        "--bucket",
        "vhost",
        "-n",
        "4",
    ]);
    assert_eq!(code, Some(0), "{out}");
}
