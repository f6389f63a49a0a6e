//! The Rust S3 client (`object_store`'s AmazonS3) against the real binary: put/get/list/
//! delete, multipart + parallel ranged reads verified by hash, conditional create, checksums,
//! presigned URLs, bad signature, unknown bucket.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use cairn_tests::{run_client, Node, ACCESS_KEY, SECRET_KEY};
use futures::TryStreamExt;
use object_store::aws::{AmazonS3, AmazonS3Builder, S3ConditionalPut};
use object_store::path::Path;
use object_store::signer::Signer;
use object_store::{ObjectStore, PutMode, PutOptions, PutPayload, WriteMultipart};
use sha2::{Digest, Sha256};

fn store(node: &Node, bucket: &str, secret: &str) -> AmazonS3 {
    AmazonS3Builder::new()
        .with_endpoint(&node.endpoint)
        .with_allow_http(true)
        .with_bucket_name(bucket)
        .with_access_key_id(ACCESS_KEY)
        .with_secret_access_key(secret)
        .with_region("eu-central-1")
        .with_virtual_hosted_style_request(false)
        .with_conditional_put(S3ConditionalPut::ETagMatch)
        .with_checksum_algorithm(object_store::aws::Checksum::SHA256)
        .with_retry(object_store::RetryConfig {
            max_retries: 0,
            ..Default::default()
        })
        .build()
        .expect("build client")
}

fn create_bucket(node: &Node, bucket: &str) {
    let code = format!(
        "import boto3,os; boto3.client('s3', endpoint_url=os.environ['CAIRN_ENDPOINT'], region_name='us-east-1').create_bucket(Bucket='{bucket}')"
    );
    run_client(node, "python3", &["-c", &code], &[]);
}

fn pseudo_random(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn object_store_client_round_trips() {
    let node = Node::start();
    create_bucket(&node, "rust-e2e");
    let s = Arc::new(store(&node, "rust-e2e", SECRET_KEY));

    // put / get / head / overwrite / delete
    let small = Bytes::from_static(b"hello from object_store");
    s.put(&Path::from("a/one"), small.clone().into())
        .await
        .unwrap();
    assert_eq!(
        s.get(&Path::from("a/one"))
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap(),
        small
    );
    let meta = s.head(&Path::from("a/one")).await.unwrap();
    assert_eq!(meta.size as usize, small.len());
    let mid = Bytes::from(pseudo_random(3 << 20, 7));
    s.put(&Path::from("a/one"), mid.clone().into())
        .await
        .unwrap();
    assert_eq!(
        s.get(&Path::from("a/one"))
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap(),
        mid
    );
    assert_eq!(
        s.get_range(&Path::from("a/one"), 1000..2000).await.unwrap(),
        mid.slice(1000..2000)
    );

    // listing, flat and with a delimiter
    for k in ["a/two", "a/sub/three", "b/four"] {
        s.put(&Path::from(k), Bytes::from(k.as_bytes().to_vec()).into())
            .await
            .unwrap();
    }
    let mut all: Vec<String> = s
        .list(None)
        .map_ok(|m| m.location.to_string())
        .try_collect()
        .await
        .unwrap();
    all.sort();
    assert_eq!(all, ["a/one", "a/sub/three", "a/two", "b/four"]);
    let l = s.list_with_delimiter(Some(&Path::from("a"))).await.unwrap();
    let objs: Vec<String> = l.objects.iter().map(|m| m.location.to_string()).collect();
    let dirs: Vec<String> = l.common_prefixes.iter().map(|p| p.to_string()).collect();
    assert_eq!(objs, ["a/one", "a/two"]);
    assert_eq!(dirs, ["a/sub"]);

    // conditional create: If-None-Match: *
    let r = s
        .put_opts(
            &Path::from("a/two"),
            PutPayload::from_static(b"x"),
            PutOptions {
                mode: PutMode::Create,
                ..Default::default()
            },
        )
        .await;
    assert!(
        matches!(r, Err(object_store::Error::AlreadyExists { .. })),
        "{r:?}"
    );
    s.put_opts(
        &Path::from("a/new"),
        PutPayload::from_static(b"x"),
        PutOptions {
            mode: PutMode::Create,
            ..Default::default()
        },
    )
    .await
    .unwrap();

    // multipart upload, then parallel ranged reads verified by hash
    let total: usize = if cairn_tests::long() {
        1 << 30
    } else {
        96 << 20
    };
    let part = 8 << 20;
    let mut want = Sha256::new();
    let upload = s.put_multipart(&Path::from("big")).await.unwrap();
    let mut w = WriteMultipart::new_with_chunk_size(upload, part);
    let mut off = 0;
    let mut seed = 1;
    while off < total {
        let n = (4 << 20).min(total - off);
        let chunk = pseudo_random(n, seed);
        seed += 1;
        want.update(&chunk);
        w.wait_for_capacity(4).await.unwrap();
        w.write(&chunk);
        off += n;
    }
    w.finish().await.unwrap();
    let want = want.finalize();
    let meta = s.head(&Path::from("big")).await.unwrap();
    assert_eq!(meta.size as usize, total);
    assert!(
        meta.e_tag.as_deref().unwrap_or("").contains('-'),
        "multipart ETag: {:?}",
        meta.e_tag
    );
    let chunk = 16 << 20;
    let mut tasks = Vec::new();
    for start in (0..total).step_by(chunk) {
        let s = s.clone();
        let end = (start + chunk).min(total);
        tasks.push(tokio::spawn(async move {
            s.get_range(&Path::from("big"), start as u64..end as u64)
                .await
        }));
    }
    let mut got = Sha256::new();
    for t in tasks {
        got.update(t.await.unwrap().unwrap());
    }
    assert_eq!(got.finalize(), want, "ranged download hash mismatch");

    // presigned URLs (SigV4 query auth) round trip
    let client = reqwest::Client::new();
    let put = s
        .signed_url(
            reqwest::Method::PUT,
            &Path::from("presigned"),
            Duration::from_secs(300),
        )
        .await
        .unwrap();
    let resp = client
        .put(put.clone())
        .body("via presigned url")
        .send()
        .await
        .unwrap();
    assert!(
        resp.status().is_success(),
        "presigned PUT: {}",
        resp.status()
    );
    let get = s
        .signed_url(
            reqwest::Method::GET,
            &Path::from("presigned"),
            Duration::from_secs(300),
        )
        .await
        .unwrap();
    let body = client.get(get).send().await.unwrap().bytes().await.unwrap();
    assert_eq!(&body[..], b"via presigned url");

    // delete
    s.delete(&Path::from("a/one")).await.unwrap();
    assert!(matches!(
        s.get(&Path::from("a/one")).await,
        Err(object_store::Error::NotFound { .. })
    ));

    // a wrong secret is rejected with 403 SignatureDoesNotMatch
    let bad = store(&node, "rust-e2e", "wrong-secret");
    let e = bad.get(&Path::from("a/two")).await.unwrap_err().to_string();
    assert!(
        e.contains("SignatureDoesNotMatch") || e.contains("403"),
        "{e}"
    );

    // an unknown bucket is 404 NoSuchBucket
    let missing = store(&node, "rust-e2e-missing", SECRET_KEY);
    let e = missing
        .put(&Path::from("k"), PutPayload::from_static(b"x"))
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("NoSuchBucket"), "{e}");
}
