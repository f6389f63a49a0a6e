//! Crash test: a child process appends, commits, releases and flushes while
//! migration and reclaim run in the background; the parent SIGKILLs it at a
//! random instant, reopens everything and checks that every acknowledged
//! extent is readable and intact. ~10 kills by default, 60 with CAIRN_LONG=1.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use cairn_erasure::LayoutConfig;
use cairn_metadata::WriteBatch;
use common::*;
use rand::Rng;

const CHILD_ENV: &str = "CAIRN_CRASH_CHILD_DIR";

fn crash_config(root: &Path) -> LayoutConfig {
    let mut cfg = test_config(root);
    cfg.slc_segment_bytes = 512 << 10;
    cfg.slc_capacity_bytes = 64 << 20;
    cfg.slc_high_water = 0.02;
    cfg.migrate_after = Duration::from_millis(100);
    cfg.reclaim_live_fraction = 0.7;
    cfg.worker_tick = Duration::from_millis(20);
    cfg
}

fn data_for(seed: u64, len: usize) -> bytes::Bytes {
    random_bytes(&mut rng(seed), len)
}

/// The child's workload; runs until killed.
async fn child(root: PathBuf, run: u64) {
    let cfg = crash_config(&root);
    let db = open_db(&root);
    let store = open_store(&cfg, &db).await;
    let log = Arc::new(parking_lot::Mutex::new(
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(root.join("acks.log"))
            .unwrap(),
    ));
    let write_line = |log: &parking_lot::Mutex<std::fs::File>, line: String| {
        // One write(2) per line: the kernel has it even if we are killed right after.
        log.lock().write_all(line.as_bytes()).unwrap();
    };
    let mut tasks = Vec::new();
    for t in 0..4u64 {
        let store = store.clone();
        let db = db.clone();
        let log = log.clone();
        tasks.push(tokio::spawn(async move {
            let mut r = rng(run * 1000 + t);
            let mut acked: Vec<u64> = Vec::new();
            for i in 0u64.. {
                let seed = (run << 40) | (t << 32) | i;
                let len = r.random_range(0..160 << 10);
                let ext = store.append(data_for(seed, len)).await.unwrap();
                let mut b = WriteBatch::new();
                let id = store.stage_commit(&mut b, &ext);
                b.put(format!("test/ack/{}", id.0), seed.to_be_bytes());
                db.write(b).unwrap();
                drop(ext);
                write_line(&log, format!("ACK {} {} {}\n", id.0, seed, len));
                acked.push(id.0);
                if acked.len() > 4 && r.random_bool(0.4) {
                    let victim = acked.swap_remove(r.random_range(0..acked.len()));
                    write_line(&log, format!("REL {victim}\n"));
                    let mut b = WriteBatch::new();
                    store.stage_release(&mut b, cairn_erasure::ExtentId(victim));
                    db.write(b).unwrap();
                }
            }
        }));
    }
    let s = store.clone();
    tasks.push(tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_millis(150)).await;
            s.flush().await.unwrap();
            let c = s.counters();
            write_line(
                &log,
                format!(
                    "STAT {} {} {}\n",
                    c.migrated_extents, c.stripes_reclaimed, c.extents_freed
                ),
            );
        }
    }));
    for t in tasks {
        t.await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_child_entry() {
    // Only does something when started by `sigkill_during_appends_migration_and_reclaim`.
    if let Ok(dir) = std::env::var(CHILD_ENV) {
        let run: u64 = std::env::var("CAIRN_CRASH_RUN").unwrap().parse().unwrap();
        child(PathBuf::from(dir), run).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_appends_migration_and_reclaim() {
    let long = std::env::var("CAIRN_LONG")
        .map(|v| v == "1")
        .unwrap_or(false);
    let kills = if long { 60 } else { 10 };
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    let exe = std::env::current_exe().unwrap();
    let mut r = rng(4242);
    let (mut migrated, mut reclaimed, mut freed) = (0u64, 0u64, 0u64);
    let mut verified_total = 0;
    for run in 1..=kills {
        let stderr = std::fs::File::create(root.join(format!("child-{run}.err"))).unwrap();
        let mut c = Command::new(&exe)
            .args([
                "--exact",
                "crash_child_entry",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_ENV, &root)
            .env("CAIRN_CRASH_RUN", run.to_string())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .unwrap();
        let ms = r.random_range(400..1600);
        tokio::time::sleep(Duration::from_millis(ms)).await;
        let alive = c.try_wait().unwrap().is_none();
        c.kill().unwrap(); // SIGKILL
        c.wait().unwrap();
        assert!(
            alive,
            "child {run} exited on its own: {}",
            std::fs::read_to_string(root.join(format!("child-{run}.err"))).unwrap_or_default()
        );

        // Recover and verify every acknowledged, unreleased extent.
        let log = std::fs::read_to_string(root.join("acks.log")).unwrap_or_default();
        let mut acked = std::collections::BTreeMap::new();
        let mut released = std::collections::HashSet::new();
        for line in log.lines() {
            let f: Vec<&str> = line.split(' ').collect();
            match f.as_slice() {
                ["ACK", id, seed, len] => {
                    acked.insert(
                        id.parse::<u64>().unwrap(),
                        (seed.parse::<u64>().unwrap(), len.parse::<usize>().unwrap()),
                    );
                }
                ["REL", id] => {
                    released.insert(id.parse::<u64>().unwrap());
                }
                ["STAT", m, rc, fr] => {
                    migrated = migrated.max(m.parse().unwrap());
                    reclaimed = reclaimed.max(rc.parse().unwrap());
                    freed = freed.max(fr.parse().unwrap());
                }
                _ => {} // a line torn by the kill
            }
        }
        let cfg = crash_config(&root);
        let db = open_db(&root);
        let store = open_store(&cfg, &db).await;
        let mut n = 0;
        for (id, (seed, len)) in &acked {
            if released.contains(id) {
                continue;
            }
            let got = store
                .read(cairn_erasure::ExtentId(*id), 0, *len as u64)
                .await
                .unwrap_or_else(|e| panic!("run {run}: acknowledged extent {id} unreadable: {e}"));
            assert!(
                got == data_for(*seed, *len),
                "run {run}: extent {id} corrupted"
            );
            n += 1;
        }
        verified_total = n;
        store.shutdown().await;
        drop(store);
        drop(db);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!(
        "crash test: {kills} kills, {verified_total} live acknowledged extents verified; child counters max: migrated {migrated}, reclaimed stripes {reclaimed}, freed {freed}"
    );
    assert!(verified_total > 0);
    assert!(migrated > 0, "migration ran during the crash runs");
    assert!(freed > 0, "GC ran during the crash runs");
}
