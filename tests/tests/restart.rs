//! Crash safety end to end: write objects (inline, single-extent, multi-extent) from several
//! writers, SIGKILL the node while writes are in flight, restart it on the same data directory,
//! and check that every acknowledged object reads back byte-identical and that unacknowledged
//! ones are either absent or complete. Also: SIGTERM shuts down cleanly and keeps everything.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use cairn_tests::{run_client, Node, ACCESS_KEY, SECRET_KEY};
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::path::Path;
use object_store::ObjectStore;

/// Objects whose PUT was acknowledged, with their exact bytes.
#[derive(Default)]
struct Acked(std::sync::Mutex<BTreeMap<String, Bytes>>);

fn store(node: &Node) -> AmazonS3 {
    AmazonS3Builder::new()
        .with_endpoint(&node.endpoint)
        .with_allow_http(true)
        .with_bucket_name("crash")
        .with_access_key_id(ACCESS_KEY)
        .with_secret_access_key(SECRET_KEY)
        .with_region("us-east-1")
        .with_retry(object_store::RetryConfig {
            max_retries: 0,
            ..Default::default()
        })
        .build()
        .expect("client")
}

fn body(key: &str, len: usize) -> Bytes {
    let seed = key.bytes().fold(0xcbf29ce484222325, |h, b| {
        (h ^ b as u64).wrapping_mul(0x100000001b3)
    });
    Bytes::from(cairn_tests::xorshift_bytes(seed, len))
}

fn size_for(i: usize) -> usize {
    match i % 4 {
        0 => 100 + i,       // inline in metadata
        1 => 200_000 + i,   // one extent
        2 => (9 << 20) + i, // several extents
        _ => 0,             // empty
    }
}

async fn verify(node: &Node, acked: &BTreeMap<String, Bytes>, attempted: usize) {
    let s = store(node);
    for (k, want) in acked {
        let got = s
            .get(&Path::from(k.as_str()))
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "acknowledged {k} lost after restart: {e}\n{}",
                    node.log_text()
                )
            })
            .bytes()
            .await
            .unwrap_or_else(|e| panic!("reading {k}: {e}"));
        assert!(got == *want, "acknowledged {k} differs after restart");
    }
    // Unacknowledged writes are all-or-nothing.
    for i in 0..attempted {
        let k = format!("w{}/obj{i}", i % 4);
        if acked.contains_key(&k) {
            continue;
        }
        if let Ok(r) = s.get(&Path::from(k.as_str())).await {
            let got = r.bytes().await.unwrap();
            assert!(got == body(&k, size_for(i)), "unacknowledged {k} is torn");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigkill_keeps_every_acknowledged_object() {
    let rounds = if cairn_tests::long() { 20 } else { 2 };
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let mut node = Node::start_in(&dir, &[]);
    let code = "import boto3,os; boto3.client('s3', endpoint_url=os.environ['CAIRN_ENDPOINT'], region_name='us-east-1').create_bucket(Bucket='crash')";
    run_client(&node, "python3", &["-c", code], &[]);
    let acked = Arc::new(Acked::default());
    let mut next = 0usize;
    for round in 0..rounds {
        let s = Arc::new(store(&node));
        let mut tasks = Vec::new();
        let per_writer = 12;
        for w in 0..4 {
            let s = s.clone();
            let acked = acked.clone();
            let base = next + w * per_writer;
            tasks.push(tokio::spawn(async move {
                for j in 0..per_writer {
                    let i = base + j;
                    let k = format!("w{}/obj{i}", i % 4);
                    let b = body(&k, size_for(i));
                    if s.put(&Path::from(k.as_str()), b.clone().into())
                        .await
                        .is_ok()
                    {
                        acked.0.lock().unwrap().insert(k, b);
                    } else {
                        return;
                    }
                }
            }));
        }
        next += 4 * per_writer;
        // Let some writes finish, then kill in the middle of the rest.
        let wait = Duration::from_millis(if round % 2 == 0 { 1500 } else { 700 });
        tokio::time::sleep(wait).await;
        node.kill9();
        for t in tasks {
            let _ = t.await;
        }
        let n = acked.0.lock().unwrap().len();
        assert!(
            n > 0 || round > 0,
            "nothing was acknowledged before the kill"
        );
        let t = std::time::Instant::now();
        node.restart();
        eprintln!(
            "round {round}: {n} acknowledged objects; restart took {:?}",
            t.elapsed()
        );
        let snapshot = acked.0.lock().unwrap().clone();
        verify(&node, &snapshot, next).await;
    }

    // A clean SIGTERM: exit status 0, and everything is still there afterwards.
    let st = node.terminate();
    assert!(st.success(), "SIGTERM exit: {st:?}\n{}", node.log_text());
    assert!(node.log_text().contains("cairn: stopped"));
    node.restart();
    let snapshot = acked.0.lock().unwrap().clone();
    verify(&node, &snapshot, next).await;
}
