//! Data-layout micro-benchmarks (plain `fn main`, run with
//! `cargo bench -p cairn-bench --bench layout`):
//!
//! 1. SLC append throughput with group commit (many concurrent appenders,
//!    both mirrors durable per ack) next to a plain sequential write +
//!    fdatasync per record of the same bytes to the same disk;
//! 2. migration throughput (SLC -> RS stripes on QLC, metadata commit);
//! 3. Reed-Solomon encode/decode GB/s per core for 4+2, 8+3, 16+4 with
//!    `reed-solomon-erasure` (what the layout uses) and `reed-solomon-simd`;
//! 4. the QLC write-size histogram recorded during migration.
//!
//! `CAIRN_BENCH_MB` scales the SLC/migration data volume (default 256).

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use cairn_erasure::{DataStore, IoBackend, LayoutConfig};
use cairn_metadata::{Db, Options, WriteBatch};
use rand::RngCore;

fn mb_per_s(bytes: u64, d: Duration) -> f64 {
    bytes as f64 / d.as_secs_f64() / 1e6
}

fn config(root: &Path, threaded: bool) -> LayoutConfig {
    let mut cfg = LayoutConfig::single_node(&root.join("dev"));
    cfg.slc_segment_bytes = 64 << 20;
    cfg.slc_capacity_bytes = 16 << 30;
    cfg.slc_high_water = 1.0;
    cfg.migrate_after = Duration::from_secs(3600);
    cfg.force_threaded_io = threaded;
    cfg
}

/// Appends `total` bytes in `rec`-byte extents from `writers` concurrent tasks,
/// committing each extent record like the node does. Returns (elapsed, appends).
async fn append_load(
    store: &Arc<DataStore>,
    db: &Arc<Db>,
    total: usize,
    rec: usize,
    writers: usize,
    commit: bool,
) -> (Duration, usize) {
    let mut payload = vec![0u8; rec];
    rand::rng().fill_bytes(&mut payload);
    let payload = Bytes::from(payload);
    let per = total / rec / writers;
    let t = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..writers {
        let store = store.clone();
        let db = db.clone();
        let payload = payload.clone();
        tasks.push(tokio::spawn(async move {
            for _ in 0..per {
                let ext = store.append(payload.clone()).await.expect("append");
                if commit {
                    let mut b = WriteBatch::new();
                    store.stage_commit(&mut b, &ext);
                    db.write(b).expect("commit");
                }
            }
        }));
    }
    for t in tasks {
        t.await.expect("task");
    }
    (t.elapsed(), per * writers)
}

/// Writes `n` records of `rec` bytes sequentially to one file, fdatasync after each.
fn plain_sync_writes(path: &Path, n: usize, rec: usize) -> Duration {
    let mut buf = vec![0u8; rec];
    rand::rng().fill_bytes(&mut buf);
    let f = OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .open(path)
        .expect("open");
    let t = Instant::now();
    let mut off = 0u64;
    for _ in 0..n {
        f.write_all_at(&buf, off).expect("write");
        f.sync_data().expect("fdatasync");
        off += rec as u64;
    }
    t.elapsed()
}

/// One sequential write of `total` bytes in 1 MiB calls, one fdatasync at the end.
fn plain_stream(path: &Path, total: usize) -> Duration {
    let mut buf = vec![0u8; 1 << 20];
    rand::rng().fill_bytes(&mut buf);
    let mut f = OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .open(path)
        .expect("open");
    let t = Instant::now();
    for _ in 0..total / buf.len() {
        f.write_all(&buf).expect("write");
    }
    f.sync_data().expect("fdatasync");
    t.elapsed()
}

async fn slc_and_migration(total: usize) {
    println!("== SLC append (group commit, 2 mirrors durable per ack) vs plain write+fdatasync ==");
    println!(
        "   data dir: {} (all runs on the same disk)",
        std::env::temp_dir().display()
    );
    for &threaded in &[false, true] {
        for &(rec, writers) in &[(4usize << 10, 64usize), (256 << 10, 32), (1 << 20, 16)] {
            let dir = tempfile::tempdir().expect("tmp");
            let db = Arc::new(Db::open(dir.path().join("meta"), Options::default()).expect("db"));
            let store = DataStore::open(config(dir.path(), threaded), db.clone())
                .await
                .expect("open");
            let backend = match store.io_backend() {
                IoBackend::Uring => "io_uring",
                IoBackend::Threaded => "threaded",
            };
            let bytes = if rec < 64 << 10 { total / 8 } else { total };
            let (d, n) = append_load(&store, &db, bytes, rec, writers, false).await;
            let moved = (n * rec) as u64;
            let groups = store.counters().slc_group_commits.max(1);
            println!(
                "   SLC append {backend:8} rec {:>5} KiB x{writers:>2} writers: {:>8.1} MB/s  {:>8.0} appends/s  ({:.1} appends per group commit)",
                rec >> 10,
                mb_per_s(moved, d),
                n as f64 / d.as_secs_f64(),
                n as f64 / groups as f64
            );
            store.shutdown().await;
            if threaded {
                continue;
            }
            // Plain baseline of the same bytes on the same disk: one record per write + fdatasync.
            let base_n = (n).min(if rec < 64 << 10 { 4000 } else { n });
            let bd = plain_sync_writes(&dir.path().join("plain.dat"), base_n, rec);
            println!(
                "   plain write+fdatasync per record   rec {:>5} KiB:            {:>8.1} MB/s  {:>8.0} writes/s",
                rec >> 10,
                mb_per_s((base_n * rec) as u64, bd),
                base_n as f64 / bd.as_secs_f64()
            );
        }
    }
    let dir = tempfile::tempdir().expect("tmp");
    let sd = plain_stream(&dir.path().join("stream.dat"), total);
    println!(
        "   plain streaming write of {} MiB + one fdatasync:            {:>8.1} MB/s  (disk ceiling; SLC writes every byte twice)",
        total >> 20,
        mb_per_s(total as u64, sd)
    );

    println!("\n== Migration: SLC -> RS 4+2 stripes on 6 QLC dirs (fixed ~128 KiB chunks, raw) ==");
    let dir = tempfile::tempdir().expect("tmp");
    let db = Arc::new(Db::open(dir.path().join("meta"), Options::default()).expect("db"));
    let store = DataStore::open(config(dir.path(), false), db.clone())
        .await
        .expect("open");
    let (d, n) = append_load(&store, &db, total, 1 << 20, 16, true).await;
    println!(
        "   append+commit {n} x 1 MiB extents: {:.1} MB/s",
        mb_per_s((n << 20) as u64, d)
    );
    let t = Instant::now();
    store.flush().await.expect("flush");
    let md = t.elapsed();
    let c = store.counters();
    println!(
        "   migration: {} extents, {:.1} MiB logical in {:.2} s = {:.1} MB/s (QLC bytes written incl. parity: {:.1} MiB)",
        c.migrated_extents,
        c.migrated_bytes as f64 / 1048576.0,
        md.as_secs_f64(),
        mb_per_s(c.migrated_bytes, md),
        c.qlc_write_bytes as f64 / 1048576.0
    );
    println!("\n== QLC write-size histogram (migration) ==");
    println!(
        "   writes: {}  bytes: {:.1} MiB  smaller than 1 MiB: {}  not a multiple of 64 KiB: {}",
        c.qlc_writes,
        c.qlc_write_bytes as f64 / 1048576.0,
        c.qlc_small_writes,
        c.qlc_unaligned_writes
    );
    for (ub, count) in &c.qlc_write_size_histogram {
        if *count == 0 {
            continue;
        }
        let label = if *ub == u64::MAX {
            "> 64 MiB".to_string()
        } else if *ub >= 1 << 20 {
            format!("<= {} MiB", ub >> 20)
        } else {
            format!("<= {} KiB", ub >> 10)
        };
        println!("   {label:>12}: {count}");
    }
    for (dev, b) in &c.qlc_bytes_written {
        println!("   {dev}: {:.1} MiB written", *b as f64 / 1048576.0);
    }
    store.shutdown().await;
}

fn time_loop(min: Duration, mut f: impl FnMut()) -> (Duration, u32) {
    let t = Instant::now();
    let mut iters = 0;
    while t.elapsed() < min || iters < 3 {
        f();
        iters += 1;
    }
    (t.elapsed(), iters)
}

fn rs_bench() {
    println!(
        "\n== Reed-Solomon GF(2^8), 1 MiB shards, single thread (GB/s of data bytes per core) =="
    );
    println!(
        "   geometry | erasure encode | erasure decode(m lost) | simd encode | simd decode(m lost)"
    );
    let shard = 1usize << 20;
    for &(k, m) in &[(4usize, 2usize), (8, 3), (16, 4)] {
        let mut rng = rand::rng();
        let data: Vec<Vec<u8>> = (0..k)
            .map(|_| {
                let mut v = vec![0u8; shard];
                rng.fill_bytes(&mut v);
                v
            })
            .collect();
        let data_bytes = (k * shard) as f64;
        let min = Duration::from_millis(700);

        // reed-solomon-erasure (used by cairn-erasure)
        let rs = reed_solomon_erasure::galois_8::ReedSolomon::new(k, m).expect("rs");
        let mut parity = vec![vec![0u8; shard]; m];
        let (d, it) = time_loop(min, || {
            rs.encode_sep(&data, &mut parity).expect("encode");
        });
        let e_enc = data_bytes * it as f64 / d.as_secs_f64() / 1e9;
        let full: Vec<Vec<u8>> = data.iter().chain(parity.iter()).cloned().collect();
        let mut s: Vec<Option<Vec<u8>>> = full.iter().cloned().map(Some).collect();
        let (d, it) = time_loop(min, || {
            for x in s.iter_mut().take(m) {
                *x = None;
            }
            rs.reconstruct_data(&mut s).expect("decode");
        });
        assert!(s
            .iter()
            .zip(&full)
            .all(|(a, b)| a.as_deref() == Some(b.as_slice())));
        let e_dec = data_bytes * it as f64 / d.as_secs_f64() / 1e9;

        // reed-solomon-simd
        let mut enc = reed_solomon_simd::ReedSolomonEncoder::new(k, m, shard).expect("simd enc");
        let mut simd_parity: Vec<Vec<u8>> = Vec::new();
        let (d, it) = time_loop(min, || {
            enc.reset(k, m, shard).expect("reset");
            for s in &data {
                enc.add_original_shard(s).expect("add");
            }
            let r = enc.encode().expect("encode");
            simd_parity = r.recovery_iter().map(|p| p.to_vec()).collect();
        });
        let s_enc = data_bytes * it as f64 / d.as_secs_f64() / 1e9;
        let mut dec = reed_solomon_simd::ReedSolomonDecoder::new(k, m, shard).expect("simd dec");
        let (d, it) = time_loop(min, || {
            dec.reset(k, m, shard).expect("reset");
            for (i, s) in data.iter().enumerate().skip(m) {
                dec.add_original_shard(i, s).expect("add");
            }
            for (i, p) in simd_parity.iter().enumerate() {
                dec.add_recovery_shard(i, p).expect("add");
            }
            let r = dec.decode().expect("decode");
            assert_eq!(r.restored_original_iter().count(), m);
        });
        let s_dec = data_bytes * it as f64 / d.as_secs_f64() / 1e9;
        println!(
            "   {:>2}+{:<2}    | {:>9.2} GB/s | {:>17.2} GB/s | {:>6.2} GB/s | {:>14.2} GB/s",
            k, m, e_enc, e_dec, s_enc, s_dec
        );
    }
}

fn main() {
    let mb: usize = std::env::var("CAIRN_BENCH_MB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(slc_and_migration(mb << 20));
    rs_bench();
}
