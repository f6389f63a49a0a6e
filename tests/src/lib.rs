//! Harness for the end-to-end tests: finds (or builds) the real `cairn` binary, starts it on
//! loopback port 0 (reading the bound ports from its banner) with a fresh data directory,
//! waits until it serves, and stops it with SIGTERM or SIGKILL. Also runs the external client
//! scripts under `tests/clients/`.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The dev account (S3 access key).
pub const ACCESS_KEY: &str = "devstoreaccount1";
/// The dev account's well-known key (S3 secret).
pub const SECRET_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

/// True when the long variants are requested (`CAIRN_LONG=1`).
pub fn long() -> bool {
    std::env::var("CAIRN_LONG").is_ok_and(|v| v == "1")
}

/// The workspace root.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

/// Path of the `cairn` binary next to this test executable (target/<profile>/cairn); builds it
/// with cargo if it is missing (when only this package's tests were built).
pub fn cairn_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let exe = std::env::current_exe().expect("current exe");
        // target/<profile>/deps/<test> → target/<profile>
        let profile_dir = exe
            .parent()
            .and_then(Path::parent)
            .expect("target dir")
            .to_path_buf();
        let bin = profile_dir.join("cairn");
        if !bin.exists() {
            let release = profile_dir.file_name().is_some_and(|n| n == "release");
            let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
            cmd.args(["build", "-p", "cairn-node", "--bin", "cairn"])
                .current_dir(workspace_root());
            if release {
                cmd.arg("--release");
            }
            let st = cmd.status().expect("run cargo build");
            assert!(st.success(), "cargo build of cairn failed");
        }
        assert!(bin.exists(), "cairn binary not found at {}", bin.display());
        bin
    })
    .clone()
}

/// `len` pseudo-random bytes from a xorshift64 generator seeded with `seed | 1`:
/// incompressible, no repeats, the same for the same seed.
pub fn xorshift_bytes(seed: u64, len: usize) -> Vec<u8> {
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

/// The addresses a node bound, read from its start-up banner (`S3`, `Blob` and `admin`
/// lines). Nodes in tests are started on port 0, so no port is ever picked and then lost to a
/// racing process; the banner is the one place that names the ports the kernel gave.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BoundAddrs {
    /// S3 listener.
    pub s3: SocketAddr,
    /// Blob listener.
    pub blob: SocketAddr,
    /// Admin listener.
    pub admin: SocketAddr,
}

/// Parses the banner lines `S3 http://ADDR`, `Blob http://ADDR/...`, `admin http://ADDR`;
/// `None` until all three have been printed.
pub fn parse_banner(text: &str) -> Option<BoundAddrs> {
    let addr_after = |label: &str| {
        text.lines().find_map(|line| {
            let rest = line.trim_start().strip_prefix(label)?;
            let url = rest.trim_start().strip_prefix("http://")?;
            let end = url.find(['/', ' ']).unwrap_or(url.len());
            url[..end].parse::<SocketAddr>().ok()
        })
    };
    Some(BoundAddrs {
        s3: addr_after("S3 ")?,
        blob: addr_after("Blob ")?,
        admin: addr_after("admin ")?,
    })
}

/// Reads `child`'s stdout on a thread, appending every line to `log` (when given) and
/// returning the bound addresses as soon as the banner has named them all; `None` if the
/// process ended (or closed stdout) first or `timeout` passed. Output after the banner keeps
/// flowing to `log` until the process exits.
pub fn await_banner(
    child: &mut Child,
    log: Option<std::fs::File>,
    timeout: Duration,
) -> Option<BoundAddrs> {
    use std::io::BufRead;
    let stdout = child.stdout.take()?;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut log = log;
        let mut seen = String::new();
        let mut sent = false;
        for line in std::io::BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if let Some(f) = log.as_mut() {
                let _ = writeln!(f, "{line}");
            }
            if !sent {
                seen.push_str(&line);
                seen.push('\n');
                if let Some(addrs) = parse_banner(&seen) {
                    sent = tx.send(addrs).is_ok();
                }
            }
        }
    });
    rx.recv_timeout(timeout).ok()
}

/// A running node.
pub struct Node {
    child: Option<Child>,
    /// `http://127.0.0.1:<port>`.
    pub endpoint: String,
    /// S3 port.
    pub s3_port: u16,
    /// Blob port.
    pub blob_port: u16,
    /// Admin address.
    pub admin: SocketAddr,
    /// Data directory.
    pub data_dir: PathBuf,
    /// Extra args it was started with.
    extra: Vec<String>,
    log: PathBuf,
    _tmp: Option<tempfile::TempDir>,
}

impl Node {
    /// Starts a node with a fresh temporary data directory.
    pub fn start() -> Node {
        Node::start_with(&[])
    }

    /// Starts a node with a fresh temporary data directory and extra `serve` arguments.
    pub fn start_with(extra: &[&str]) -> Node {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("data");
        let mut n = Node::start_in(&dir, extra);
        n._tmp = Some(tmp);
        n
    }

    /// Starts a node on `data_dir` (kept after the node stops).
    pub fn start_in(data_dir: &Path, extra: &[&str]) -> Node {
        let extra: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        let mut n = Node {
            child: None,
            endpoint: String::new(),
            s3_port: 0,
            blob_port: 0,
            admin: "127.0.0.1:0".parse().expect("addr"),
            data_dir: data_dir.to_path_buf(),
            extra,
            log: data_dir.with_extension("log"),
            _tmp: None,
        };
        n.spawn();
        n
    }

    fn spawn(&mut self) {
        for _attempt in 0..3 {
            let log = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&self.log)
                .expect("log file");
            let log2 = log.try_clone().expect("log clone");
            let mut child = Command::new(cairn_bin())
                .arg("serve")
                .arg("--data-dir")
                .arg(&self.data_dir)
                .args(["--s3-addr", "127.0.0.1:0"])
                .args(["--admin-addr", "127.0.0.1:0"])
                .args(["--blob-addr", "127.0.0.1:0"])
                .args(["--peer-addr", "127.0.0.1:0"])
                .args(&self.extra)
                .env(
                    "CAIRN_LOG",
                    std::env::var("CAIRN_LOG").unwrap_or_else(|_| "warn".into()),
                )
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(log2)
                .spawn()
                .expect("spawn cairn");
            let addrs = await_banner(&mut child, Some(log), Duration::from_secs(60));
            self.child = Some(child);
            if let Some(addrs) = addrs {
                self.s3_port = addrs.s3.port();
                self.blob_port = addrs.blob.port();
                self.endpoint = format!("http://127.0.0.1:{}", self.s3_port);
                self.admin = addrs.admin;
                if self.wait_ready(Duration::from_secs(60)) {
                    return;
                }
            }
            // Slow or failed start: stop it and try again.
            self.kill9();
        }
        panic!("cairn did not start; log:\n{}", self.log_text());
    }

    fn wait_ready(&mut self, timeout: Duration) -> bool {
        let t = Instant::now();
        while t.elapsed() < timeout {
            if let Some(c) = self.child.as_mut() {
                if let Ok(Some(_)) = c.try_wait() {
                    return false;
                }
            }
            if let Ok((200, _)) = http_request(self.admin, "GET", "/health") {
                if TcpStream::connect(("127.0.0.1", self.s3_port)).is_ok()
                    && TcpStream::connect(("127.0.0.1", self.blob_port)).is_ok()
                {
                    return true;
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }

    /// The node's log so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGKILL, then wait for the process to be gone.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM, then wait (up to 30 s) for a clean exit; returns the exit status.
    pub fn terminate(&mut self) -> ExitStatus {
        let mut c = self.child.take().expect("node running");
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(c.id().to_string())
            .status();
        let t = Instant::now();
        loop {
            if let Ok(Some(st)) = c.try_wait() {
                return st;
            }
            if t.elapsed() > Duration::from_secs(30) {
                let _ = c.kill();
                panic!("cairn did not stop within 30 s of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Starts the node again on the same data directory (new ports).
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "stop the node first");
        self.spawn();
    }

    /// Environment for AWS clients pointed at this node.
    pub fn aws_env(&self) -> Vec<(String, String)> {
        vec![
            ("AWS_ACCESS_KEY_ID".into(), ACCESS_KEY.into()),
            ("AWS_SECRET_ACCESS_KEY".into(), SECRET_KEY.into()),
            ("AWS_DEFAULT_REGION".into(), "us-east-1".into()),
            ("AWS_EC2_METADATA_DISABLED".into(), "true".into()),
            ("AWS_CONFIG_FILE".into(), "/dev/null".into()),
            ("AWS_SHARED_CREDENTIALS_FILE".into(), "/dev/null".into()),
            ("CAIRN_ENDPOINT".into(), self.endpoint.clone()),
            ("CAIRN_S3_PORT".into(), self.s3_port.to_string()),
            (
                "CAIRN_BLOB_ENDPOINT".into(),
                format!("http://127.0.0.1:{}/{ACCESS_KEY}", self.blob_port),
            ),
            ("CAIRN_ADMIN".into(), self.admin.to_string()),
        ]
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// A minimal HTTP/1.1 request (for the admin API); returns status and body.
pub fn http_request(addr: SocketAddr, method: &str, path: &str) -> std::io::Result<(u16, String)> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    s.set_read_timeout(Some(Duration::from_secs(600)))?;
    write!(s, "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n")?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    Ok((code, body.to_owned()))
}

/// Runs a client script/command with the node's AWS environment; panics with its output on failure.
pub fn run_client(node: &Node, program: &str, args: &[&str], extra_env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(program);
    cmd.args(args).current_dir(workspace_root());
    for (k, v) in node.aws_env() {
        cmd.env(k, v);
    }
    for (k, v) in extra_env {
        cmd.env(k, v);
    }
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e} (run scripts/e2e-deps.sh)"));
    if !out.status.success() {
        panic!(
            "{program} {args:?} failed ({}):\n--- stdout\n{}\n--- stderr\n{}\n--- node log\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            node.log_text()
        );
    }
    out
}

/// Path of a client script under `tests/clients/`.
pub fn client_script(name: &str) -> String {
    workspace_root()
        .join("tests/clients")
        .join(name)
        .display()
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn banner_names_the_bound_addresses() {
        let banner = "cairn 0.1.0 — single node\n  data dir   /d (opened in 1ms)\n\
            \x20 S3         http://127.0.0.1:40001  region us-east-1  (path-style)\n\
            \x20 Blob       http://127.0.0.1:40002/<account>  (path-style)\n\
            \x20 peer       127.0.0.1:0 (reserved)\n";
        assert_eq!(parse_banner(banner), None, "no admin line yet");
        let full = format!("{banner}  admin      http://127.0.0.1:40003  (/health)\n");
        let addrs = parse_banner(&full).expect("all three lines");
        assert_eq!(addrs.s3.port(), 40001);
        assert_eq!(addrs.blob.port(), 40002);
        assert_eq!(addrs.admin.port(), 40003);
    }
}
