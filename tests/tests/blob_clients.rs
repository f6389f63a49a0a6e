//! The Blob head with real Azure clients against the real binary: the Azure SDK for Python
//! (tests/clients/azure_sdk_suite.py, including cross-protocol checks with boto3), rclone's
//! azureblob backend (rclone_azure.sh) and azcopy (azcopy.sh). Each test starts its own node.
//! Install the clients with `scripts/e2e-deps.sh`.

use cairn_tests::{client_script, long, run_client, Node};

#[test]
fn azure_sdk_suite() {
    let node = Node::start();
    let out = run_client(
        &node,
        "python3",
        &[&client_script("azure_sdk_suite.py")],
        &[],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    for t in [
        "containers",
        "blobs",
        "block_lists",
        "leases",
        "sas_and_auth",
        "copies",
        "cross_protocol",
    ] {
        assert!(
            stdout.contains(&format!("azure: {t} ok")),
            "Azure SDK test {t} did not report ok:\n{stdout}"
        );
    }
}

#[test]
fn rclone_azureblob_suite() {
    let node = Node::start();
    let out = run_client(&node, "bash", &[&client_script("rclone_azure.sh")], &[]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("rclone_azure: ok"));
}

#[test]
fn azcopy_suite() {
    let node = Node::start();
    // The 1 GiB file in 8 MiB blocks runs with CAIRN_LONG=1; the default keeps every path
    // (multi-block upload, MD5 check on download) with a smaller file.
    let big_mb = if long() { "1024" } else { "48" };
    let out = run_client(
        &node,
        "bash",
        &[&client_script("azcopy.sh")],
        &[("CAIRN_AZCOPY_BIG_MB", big_mb)],
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("azcopy: ok"));
}
