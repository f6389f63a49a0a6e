//! Starts the real `cairn` binary and drives tiny workloads through the library over S3 and
//! Blob, so the load generator cannot silently rot.

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use cairn_bench::cli::DEV_KEY;
use cairn_bench::store::{Protocol, Target};
use cairn_bench::workload::{run, LoadConfig, Workload};

/// target/<profile>/cairn next to this test binary, built if missing.
fn cairn_bin() -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target dir")
        .to_path_buf();
    let bin = profile_dir.join("cairn");
    if !bin.exists() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .expect("root");
        let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
        cmd.args(["build", "-p", "cairn-node", "--bin", "cairn"])
            .current_dir(root);
        if profile_dir.file_name().is_some_and(|n| n == "release") {
            cmd.arg("--release");
        }
        assert!(cmd.status().expect("cargo build").success());
    }
    bin
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

struct Node {
    child: Child,
    s3: u16,
    blob: u16,
    _dir: tempfile::TempDir,
}

impl Node {
    fn start() -> Node {
        let dir = tempfile::tempdir().expect("tempdir");
        let (s3, blob) = (free_port(), free_port());
        let child = Command::new(cairn_bin())
            .arg("serve")
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .args(["--s3-addr", &format!("127.0.0.1:{s3}")])
            .args(["--blob-addr", &format!("127.0.0.1:{blob}")])
            .args(["--admin-addr", &format!("127.0.0.1:{}", free_port())])
            .args(["--peer-addr", &format!("127.0.0.1:{}", free_port())])
            .env("CAIRN_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .expect("spawn cairn");
        let mut node = Node {
            child,
            s3,
            blob,
            _dir: dir,
        };
        let t = Instant::now();
        while !(TcpStream::connect(("127.0.0.1", s3)).is_ok()
            && TcpStream::connect(("127.0.0.1", blob)).is_ok())
        {
            if let Ok(Some(st)) = node.child.try_wait() {
                panic!("cairn exited early: {st}");
            }
            assert!(t.elapsed() < Duration::from_secs(60), "cairn did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        node
    }

    fn target(&self, protocol: Protocol) -> Target {
        let port = match protocol {
            Protocol::S3 => self.s3,
            Protocol::Blob => self.blob,
        };
        Target {
            endpoint: format!("http://127.0.0.1:{port}"),
            protocol,
            account: "devstoreaccount1".into(),
            key: DEV_KEY.into(),
            bucket: "smoke".into(),
            region: "us-east-1".into(),
            sas: None,
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn put_get_checkpoint_over_s3_and_blob() {
    let node = Node::start();
    for protocol in [Protocol::S3, Protocol::Blob] {
        let target = node.target(protocol);
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
