//! The `cairn` binary's command line: help text, configuration precedence and safety checks,
//! the admin CLI against a running node, and clean shutdown on SIGTERM.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_cairn"))
}

#[test]
fn help_explains_every_flag() {
    let out = bin().args(["serve", "--help"]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--data-dir",
        "--s3-addr",
        "--blob-addr",
        "--admin-addr",
        "--peer-addr",
        "--config",
        "CAIRN_S3_ADDR",
        "not served yet",
    ] {
        assert!(text.contains(flag), "serve --help lacks {flag}:\n{text}");
    }
    let out = bin().arg("--help").output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("serve") && text.contains("admin"), "{text}");
    let out = bin().args(["admin", "--help"]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    for cmd in [
        "status", "capacity", "flush", "scrub", "rebuild", "health", "metrics",
    ] {
        assert!(text.contains(cmd), "admin --help lacks {cmd}:\n{text}");
    }
}

#[test]
fn refuses_the_well_known_key_off_loopback() {
    let dir = tempfile::tempdir().unwrap();
    let out = bin()
        .args(["serve", "--s3-addr", "0.0.0.0:0", "--data-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("well-known"), "{err}");
    let out = bin()
        .args(["serve", "--admin-addr", "0.0.0.0:0", "--data-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(2),
        "admin off loopback without a token must be refused"
    );
}

struct Running {
    child: Child,
    admin: String,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn admin(r: &Running, args: &[&str]) -> (bool, String) {
    let out = bin()
        .args(["admin", "--addr", &r.admin])
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn config_file_env_and_flags_then_admin_cli_then_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("cairn.toml");
    std::fs::write(
        &cfg,
        "s3_addr = \"127.0.0.1:1\"\nadmin_addr = \"127.0.0.1:0\"\nregion = \"file-region\"\n\
         [[accounts]]\nname = \"alt\"\nkey = \"alt-secret\"\n",
    )
    .unwrap();
    let log = dir.path().join("stdout.log");
    let mut child = bin()
        .args(["serve", "--config"])
        .arg(&cfg)
        .args(["--s3-addr", "127.0.0.1:0"]) // flag beats the file
        .args(["--blob-addr", "127.0.0.1:0"])
        .args(["--peer-addr", "127.0.0.1:0"])
        .env("CAIRN_DATA_DIR", dir.path().join("data")) // env beats the default
        .env("CAIRN_REGION", "env-region") // env beats the file
        .env("CAIRN_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let addrs = cairn_tests::await_banner(
        &mut child,
        Some(std::fs::File::create(&log).unwrap()),
        Duration::from_secs(60),
    )
    .expect("banner with the bound addresses");
    assert_ne!(addrs.s3.port(), 1, "the --s3-addr flag must beat the file");
    let mut r = Running {
        child,
        admin: addrs.admin.to_string(),
    };
    let t = Instant::now();
    loop {
        if admin(&r, &["health"]).0 {
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "node did not come up"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let (ok, status) = admin(&r, &["status"]);
    assert!(
        ok && status.contains("\"devices\"")
            && status.contains("qlc5")
            && status.contains("slc_fill"),
        "{status}"
    );
    let (ok, cap) = admin(&r, &["capacity"]);
    assert!(ok && cap.contains("logical_bytes"), "{cap}");
    let (ok, m) = admin(&r, &["metrics"]);
    assert!(
        ok && m.contains("cairn_op_duration_seconds_bucket") && m.contains("cairn_slc_fill_ratio"),
        "{m}"
    );
    let (ok, f) = admin(&r, &["flush"]);
    assert!(ok && f.contains("flushed"), "{f}");
    let (ok, s) = admin(&r, &["scrub"]);
    assert!(ok && s.contains("blocks_checked"), "{s}");
    let (ok, _) = admin(&r, &["rebuild", "--device", "no-such-device"]);
    assert!(!ok, "rebuilding an unknown device must fail");

    // SIGTERM: clean exit, banner showed the effective configuration.
    let st = Command::new("kill")
        .arg("-TERM")
        .arg(r.child.id().to_string())
        .status()
        .unwrap();
    assert!(st.success());
    let t = Instant::now();
    let status = loop {
        if let Some(s) = r.child.try_wait().unwrap() {
            break s;
        }
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "no exit after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status:?}");
    // The stdout reader thread copies the last lines to the log after the exit.
    let t = Instant::now();
    let out = loop {
        let out = std::fs::read_to_string(&log).unwrap_or_default();
        if out.contains("cairn: stopped") || t.elapsed() > Duration::from_secs(10) {
            break out;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(out.contains(&format!("http://{}", addrs.s3)), "{out}");
    assert!(out.contains("s3_addr = \"127.0.0.1:0\""), "{out}");
    assert!(out.contains("region = \"env-region\""), "{out}");
    assert!(out.contains("AWS_ACCESS_KEY_ID=devstoreaccount1"), "{out}");
    assert!(out.contains("account    alt"), "{out}");
    assert!(out.contains("cairn: stopped"), "{out}");
}
