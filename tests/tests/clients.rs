//! External clients against the real binary: boto3 (tests/clients/boto3_suite.py), the aws
//! CLI (aws_cli.sh) and rclone's s3 backend (rclone.sh). Each test starts its own node.
//! Install the clients with `scripts/e2e-deps.sh`.

use cairn_tests::{client_script, long, run_client, Node};

fn mp_bytes() -> String {
    if long() {
        (1u64 << 30).to_string()
    } else {
        (64u64 << 20).to_string()
    }
}

#[test]
fn boto3_suite() {
    let node = Node::start();
    let keys = if long() { "10000" } else { "2000" };
    let mp = mp_bytes();
    let out = run_client(
        &node,
        "python3",
        &[&client_script("boto3_suite.py")],
        &[("CAIRN_MP_BYTES", &mp), ("CAIRN_LIST_KEYS", keys)],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    for t in [
        "buckets",
        "objects",
        "copy_and_tags",
        "conditionals",
        "checksums",
        "signature_and_regions",
        "presigned",
        "virtual_hosted",
        "listing",
        "multipart",
    ] {
        assert!(
            stdout.contains(&format!("boto3: {t} ok")),
            "boto3 test {t} did not report ok:\n{stdout}"
        );
    }
}

#[test]
fn aws_cli_suite() {
    let node = Node::start();
    let mp = if long() {
        mp_bytes()
    } else {
        (24u64 << 20).to_string()
    };
    let out = run_client(
        &node,
        "bash",
        &[&client_script("aws_cli.sh")],
        &[("CAIRN_MP_BYTES", &mp)],
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("aws_cli: ok"));
}

#[test]
fn rclone_suite() {
    let node = Node::start();
    let out = run_client(&node, "bash", &[&client_script("rclone.sh")], &[]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("rclone: ok"));
}
