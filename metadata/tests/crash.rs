//! Crash test: a child process (this test binary, re-invoked on the ignored `crash_child`
//! test) runs a concurrent write workload and reports every acknowledged batch; the parent
//! SIGKILLs it at random moments, reopens the database and checks that every acknowledged
//! batch is present in full and that no batch is present in part.
//!
//! Each writer thread `t` writes batches `n = 0, 1, 2, ...`; batch `n` puts
//! `t{t}/b{n:06}/marker` and `items(t, n)` keys, and deletes everything batch `n - 5`
//! wrote. So after batches `0..p` of thread `t` are applied, exactly batches
//! `p-5 .. p` are present. With one batch in flight per thread, `p` is the acknowledged
//! count or one more. Every third round the child runs with `sync: false` (a SIGKILL
//! keeps the page cache, so acknowledged batches must survive that too).

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::ops::Bound;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cairn_metadata::{Db, Options, WriteBatch};
use rand::{Rng, RngCore, SeedableRng};

const THREADS: usize = 4;
const KEEP: u64 = 5;

fn opts(sync: bool) -> Options {
    Options {
        sync,
        memtable_bytes: 32 << 10,
        block_bytes: 1024,
        l0_compaction_trigger: 2,
        l1_bytes: 64 << 10,
        level_size_multiplier: 4,
        target_file_bytes: 32 << 10,
        ..Options::default()
    }
}

/// Deterministic contents of batch `n` of thread `t`.
fn items(t: usize, n: u64) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut rng = rand::rngs::StdRng::seed_from_u64((t as u64) << 40 | n);
    let count = rng.random_range(1..12);
    let mut out = vec![(
        format!("t{t}/b{n:06}/marker").into_bytes(),
        format!("{count}").into_bytes(),
    )];
    for j in 0..count {
        let len = if rng.random_bool(0.05) {
            rng.random_range(4000..20000)
        } else {
            rng.random_range(0..200)
        };
        let mut v = vec![0u8; len];
        rng.fill_bytes(&mut v);
        out.push((format!("t{t}/b{n:06}/item{j:02}").into_bytes(), v));
    }
    out
}

fn batch(t: usize, n: u64) -> WriteBatch {
    let mut b = WriteBatch::new();
    for (k, v) in items(t, n) {
        b.put(k, v);
    }
    if n >= KEEP {
        for (k, _) in items(t, n - KEEP) {
            b.delete(k);
        }
    }
    b
}

fn expected(t: usize, applied: u64) -> BTreeMap<Vec<u8>, Vec<u8>> {
    (applied.saturating_sub(KEEP)..applied)
        .flat_map(|n| items(t, n))
        .collect()
}

fn child_main(dir: &str, starts: &[u64], sync: bool) {
    let db = Arc::new(Db::open(dir, opts(sync)).expect("child open"));
    let mut hs = Vec::new();
    for (t, &start) in starts.iter().enumerate() {
        let db = db.clone();
        hs.push(std::thread::spawn(move || {
            let mut n = start;
            loop {
                db.write(batch(t, n)).expect("child write");
                println!("ACK {t} {n}");
                n += 1;
            }
        }));
    }
    for h in hs {
        let _ = h.join();
    }
}

/// The child entry point; does nothing unless started by `crash_recovery`.
#[test]
#[ignore]
fn crash_child() {
    let (Ok(dir), Ok(starts)) = (
        std::env::var("CAIRN_CRASH_DIR"),
        std::env::var("CAIRN_CRASH_STARTS"),
    ) else {
        return;
    };
    let starts: Vec<u64> = starts.split(',').map(|s| s.parse().unwrap()).collect();
    let sync = std::env::var("CAIRN_CRASH_SYNC").map_or(true, |v| v != "0");
    child_main(&dir, &starts, sync);
}

#[test]
fn crash_recovery() {
    let long = std::env::var("CAIRN_LONG").is_ok_and(|v| v == "1");
    let kills = if long { 120 } else { 15 };
    let dir = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let mut rng = rand::rng();
    let mut applied = [0u64; THREADS];
    let mut total_acks = 0u64;
    for round in 0..kills {
        let starts: Vec<String> = applied.iter().map(u64::to_string).collect();
        let mut child = Command::new(&exe)
            .args([
                "--exact",
                "crash_child",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("CAIRN_CRASH_DIR", dir.path())
            .env("CAIRN_CRASH_STARTS", starts.join(","))
            // Every third round runs without fsync: a SIGKILL keeps the page cache, so
            // acknowledged batches must survive in that mode too.
            .env("CAIRN_CRASH_SYNC", if round % 3 == 2 { "0" } else { "1" })
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let acked = Arc::new(Mutex::new(applied.map(|a| a as i64 - 1)));
        let out = child.stdout.take().unwrap();
        let reader = {
            let acked = acked.clone();
            std::thread::spawn(move || {
                let mut n = 0u64;
                for line in BufReader::new(out).lines() {
                    let Ok(line) = line else { break };
                    // libtest may print "test crash_child ... " in front of the first line.
                    if let Some(rest) = line.find("ACK ").map(|i| &line[i + 4..]) {
                        let (t, b) = rest.split_once(' ').unwrap();
                        let (t, b): (usize, i64) = (t.parse().unwrap(), b.parse().unwrap());
                        let mut a = acked.lock().unwrap();
                        assert_eq!(b, a[t] + 1, "acks arrive in order per thread");
                        a[t] = b;
                        n += 1;
                    }
                }
                n
            })
        };
        // Sometimes kill during startup/recovery, usually mid-workload.
        let wait = if rng.random_bool(0.2) {
            rng.random_range(1..40)
        } else {
            rng.random_range(40..400)
        };
        std::thread::sleep(Duration::from_millis(wait));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        total_acks += reader.join().unwrap();
        let acked = *acked.lock().unwrap();

        let db = Db::open(dir.path(), opts(true))
            .unwrap_or_else(|e| panic!("round {round}: reopen failed: {e}"));
        for t in 0..THREADS {
            let got: BTreeMap<Vec<u8>, Vec<u8>> = db
                .range(
                    Bound::Included(format!("t{t}/").as_bytes()),
                    Bound::Excluded(format!("t{t}0").as_bytes()),
                )
                .map(|r| {
                    let (k, v) = r.unwrap();
                    (k.to_vec(), v.to_vec())
                })
                .collect();
            let acked_count = (acked[t] + 1) as u64;
            let p = [acked_count, acked_count + 1]
                .into_iter()
                .find(|&p| got == expected(t, p))
                .unwrap_or_else(|| {
                    panic!(
                        "round {round} thread {t}: state matches neither {acked_count} nor {} applied batches ({} keys present)",
                        acked_count + 1,
                        got.len()
                    )
                });
            applied[t] = p;
        }
        db.close().unwrap();
    }
    eprintln!("crash test: {kills} kills, {total_acks} acknowledged batches, final {applied:?}");
    assert!(total_acks > 0, "the child never acknowledged a write");
}
