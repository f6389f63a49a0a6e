//! Reads that overlap an overwrite or delete of the same object finish with the bytes they
//! started on (tests/clients/overwrite_read.py, over S3 and Blob), while the layout's collector
//! runs underneath.

use cairn_tests::{client_script, run_client, Node};

#[test]
fn reads_survive_overwrite_and_delete() {
    let node = Node::start();
    let out = run_client(
        &node,
        "python3",
        &[&client_script("overwrite_read.py")],
        &[],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("overwrite_read: s3 ok"), "{stdout}");
    assert!(stdout.contains("overwrite_read: blob ok"), "{stdout}");
}
