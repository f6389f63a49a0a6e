//! Cairn's metadata engine vs fjall 3.x on the same workloads, in one run.
//!
//! (a) 1M puts (40-byte keys, 200-byte values) in durable batches of 1000;
//! (b) 10k individually durable single puts from 8 concurrent writers;
//! (c) 1M random point gets; (d) prefix scans returning 1000 keys each;
//! (e) on-disk bytes after a full compaction.
//!
//! Run: `cargo bench -p cairn-bench --bench metadata`. `BENCH_SCALE=0.1` shrinks every
//! workload (counts are multiplied by the scale); `BENCH_ORDER=fjall-first` runs fjall
//! first; `BENCH_ONLY=cairn|fjall` runs one engine (for profiling).

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::seq::SliceRandom;
use rand::{Rng, RngCore, SeedableRng};

const KEY_LEN: usize = 40;
const VALUE_LEN: usize = 200;
const PREFIXES: usize = 1000;
const WRITERS: usize = 8;

struct Scale {
    puts: usize,
    sync_puts: usize,
    gets: usize,
    scans: usize,
}

fn scale() -> Scale {
    let s: f64 = std::env::var("BENCH_SCALE")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1.0);
    let n = |x: f64| ((x * s) as usize).max(1);
    Scale {
        puts: n(1_000_000.0).max(PREFIXES),
        sync_puts: n(10_000.0).max(WRITERS),
        gets: n(1_000_000.0),
        scans: n(2_000.0),
    }
}

/// Key `i` of the bulk load: `p{prefix:04}/` + zero-padded index, exactly 40 bytes. Keys
/// are spread evenly over `PREFIXES` prefixes.
fn key(i: usize, per_prefix: usize) -> Vec<u8> {
    let k = format!("p{:04}/{:034}", i / per_prefix, i % per_prefix);
    debug_assert_eq!(k.len(), KEY_LEN);
    k.into_bytes()
}

fn prefix(p: usize) -> Vec<u8> {
    format!("p{p:04}/").into_bytes()
}

fn value(rng: &mut impl RngCore) -> Vec<u8> {
    let mut v = vec![0u8; VALUE_LEN];
    rng.fill_bytes(&mut v);
    v
}

/// Bytes actually allocated on disk (sparse/preallocated space counted as allocated).
fn dir_bytes(p: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let mut total = 0;
    if let Ok(rd) = std::fs::read_dir(p) {
        for e in rd.flatten() {
            let m = match e.metadata() {
                Ok(m) => m,
                Err(_) => continue,
            };
            if m.is_dir() {
                total += dir_bytes(&e.path());
            } else {
                total += m.blocks() * 512;
            }
        }
    }
    total
}

/// The operations each engine provides to the workloads.
trait Engine: Send + Sync {
    fn name(&self) -> &'static str;
    fn put_batch(&self, items: &[(Vec<u8>, Vec<u8>)]);
    fn put_durable(&self, k: &[u8], v: &[u8]);
    fn get(&self, k: &[u8]) -> Option<usize>;
    fn scan_prefix(&self, p: &[u8]) -> usize;
    fn compact(&self);
    /// Bytes of the engine's sorted tables alone (no logs/journals).
    fn table_bytes(&self) -> u64;
}

struct Cairn(cairn_metadata::Db);

impl Engine for Cairn {
    fn name(&self) -> &'static str {
        "cairn"
    }
    fn put_batch(&self, items: &[(Vec<u8>, Vec<u8>)]) {
        let mut b = cairn_metadata::WriteBatch::new();
        for (k, v) in items {
            b.put(k, v);
        }
        self.0.write(b).unwrap();
    }
    fn put_durable(&self, k: &[u8], v: &[u8]) {
        self.0.put(k, v).unwrap();
    }
    fn get(&self, k: &[u8]) -> Option<usize> {
        self.0.get(k).unwrap().map(|v| v.len())
    }
    fn scan_prefix(&self, p: &[u8]) -> usize {
        let mut n = 0;
        for r in self.0.scan_prefix(p) {
            let (k, v) = r.unwrap();
            n += usize::from(!k.is_empty() && !v.is_empty());
        }
        n
    }
    fn compact(&self) {
        self.0.compact().unwrap();
    }
    fn table_bytes(&self) -> u64 {
        self.0.stats().table_bytes
    }
}

struct Fjall {
    db: fjall::Database,
    ks: fjall::Keyspace,
}

impl Engine for Fjall {
    fn name(&self) -> &'static str {
        "fjall"
    }
    fn put_batch(&self, items: &[(Vec<u8>, Vec<u8>)]) {
        let mut b = self
            .db
            .batch()
            .durability(Some(fjall::PersistMode::SyncData));
        for (k, v) in items {
            b.insert(&self.ks, k.as_slice(), v.as_slice());
        }
        b.commit().unwrap();
    }
    fn put_durable(&self, k: &[u8], v: &[u8]) {
        let mut b = self
            .db
            .batch()
            .durability(Some(fjall::PersistMode::SyncData));
        b.insert(&self.ks, k, v);
        b.commit().unwrap();
    }
    fn get(&self, k: &[u8]) -> Option<usize> {
        self.ks.get(k).unwrap().map(|v| v.len())
    }
    fn scan_prefix(&self, p: &[u8]) -> usize {
        let mut n = 0;
        for g in self.ks.prefix(p) {
            let (k, v) = g.into_inner().unwrap();
            n += usize::from(!k.is_empty() && !v.is_empty());
        }
        n
    }
    fn compact(&self) {
        self.ks.major_compact().unwrap();
    }
    fn table_bytes(&self) -> u64 {
        self.ks.disk_space()
    }
}

#[derive(Default, Clone, Copy)]
struct Results {
    bulk: Duration,
    sync: Duration,
    gets: Duration,
    scans: Duration,
    disk: u64,
    tables: u64,
}

fn run(engine: Arc<dyn Engine>, dir: &Path, s: &Scale) -> Results {
    let mut r = Results::default();
    let per_prefix = s.puts.div_ceil(PREFIXES);
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);

    // (a) bulk load in batches of 1000, random key order.
    let mut order: Vec<usize> = (0..s.puts).collect();
    order.shuffle(&mut rng);
    let t = Instant::now();
    for chunk in order.chunks(1000) {
        let items: Vec<(Vec<u8>, Vec<u8>)> = chunk
            .iter()
            .map(|&i| (key(i, per_prefix), value(&mut rng)))
            .collect();
        engine.put_batch(&items);
    }
    r.bulk = t.elapsed();

    // (b) individually durable puts from concurrent writers.
    let per_writer = s.sync_puts / WRITERS;
    let t = Instant::now();
    let hs: Vec<_> = (0..WRITERS)
        .map(|w| {
            let e = engine.clone();
            std::thread::spawn(move || {
                let mut rng = rand::rngs::StdRng::seed_from_u64(100 + w as u64);
                for i in 0..per_writer {
                    let k = format!("sync/{w:02}/{i:032}");
                    e.put_durable(k.as_bytes(), &value(&mut rng));
                }
            })
        })
        .collect();
    for h in hs {
        h.join().unwrap();
    }
    r.sync = t.elapsed();

    // (c) random point gets over the loaded keys.
    let t = Instant::now();
    let mut found = 0usize;
    for _ in 0..s.gets {
        let i = rng.random_range(0..s.puts);
        found += usize::from(engine.get(&key(i, per_prefix)) == Some(VALUE_LEN));
    }
    r.gets = t.elapsed();
    assert_eq!(
        found,
        s.gets,
        "{}: every loaded key must be found",
        engine.name()
    );

    // (d) prefix scans, each returning one prefix's keys.
    let t = Instant::now();
    for _ in 0..s.scans {
        let p = rng.random_range(0..PREFIXES);
        let n = engine.scan_prefix(&prefix(p));
        let expect = s.puts.saturating_sub(p * per_prefix).min(per_prefix);
        assert_eq!(n, expect, "{}: prefix scan size", engine.name());
    }
    r.scans = t.elapsed();

    // (e) space after a full compaction.
    engine.compact();
    r.disk = dir_bytes(dir);
    r.tables = engine.table_bytes();
    r
}

fn main() {
    let s = scale();
    println!(
        "workloads: {} bulk puts, {} durable puts ({WRITERS} writers), {} gets, {} prefix scans",
        s.puts, s.sync_puts, s.gets, s.scans
    );
    let cache = 64 << 20;

    // BENCH_ONLY=cairn|fjall runs one engine (for profiling); ratios need both.
    // BENCH_ORDER=fjall-first runs fjall before cairn (to check for order effects).
    let only = std::env::var("BENCH_ONLY").unwrap_or_default();
    let fjall_first = std::env::var("BENCH_ORDER").is_ok_and(|v| v == "fjall-first");
    let cdir = tempfile::tempdir().unwrap();
    let fdir = tempfile::tempdir().unwrap();
    let run_cairn = || {
        if !(only.is_empty() || only == "cairn") {
            return Results::default();
        }
        let cairn = Arc::new(Cairn(
            cairn_metadata::Db::open(
                cdir.path(),
                cairn_metadata::Options {
                    block_cache_bytes: cache,
                    ..Default::default()
                },
            )
            .unwrap(),
        ));
        run(cairn, cdir.path(), &s)
    };
    let run_fjall = || {
        if !(only.is_empty() || only == "fjall") {
            return Results::default();
        }
        let db = fjall::Database::builder(fdir.path())
            .cache_size(cache as u64)
            .open()
            .unwrap();
        let ks = db
            .keyspace("bench", fjall::KeyspaceCreateOptions::default)
            .unwrap();
        run(Arc::new(Fjall { db, ks }), fdir.path(), &s)
    };
    let (c, f) = if fjall_first {
        let f = run_fjall();
        (run_cairn(), f)
    } else {
        let c = run_cairn();
        (c, run_fjall())
    };

    let ops = |n: usize, d: Duration| n as f64 / d.as_secs_f64();
    println!(
        "{:<34} {:>14} {:>14} {:>12}",
        "workload", "cairn", "fjall", "cairn/fjall"
    );
    let row = |name: &str, a: f64, b: f64, unit: &str, higher_better: bool| {
        let ratio = if higher_better { a / b } else { b / a };
        println!("{name:<34} {a:>10.0} {unit:<3} {b:>10.0} {unit:<3} {ratio:>11.2}x");
    };
    row(
        "(a) bulk puts, batches of 1000",
        ops(s.puts, c.bulk),
        ops(s.puts, f.bulk),
        "op/s",
        true,
    );
    row(
        "(b) durable puts, 8 writers",
        ops(s.sync_puts, c.sync),
        ops(s.sync_puts, f.sync),
        "op/s",
        true,
    );
    row(
        "(c) random point gets",
        ops(s.gets, c.gets),
        ops(s.gets, f.gets),
        "op/s",
        true,
    );
    row(
        "(d) prefix scans (1000 keys each)",
        ops(s.scans, c.scans),
        ops(s.scans, f.scans),
        "op/s",
        true,
    );
    row(
        "(e) on-disk bytes after compaction",
        c.disk as f64,
        f.disk as f64,
        "B",
        false,
    );
    row(
        "(e') table bytes only (no WAL)",
        c.tables as f64,
        f.tables as f64,
        "B",
        false,
    );
    println!(
        "(ratios > 1.0 mean cairn is better; for (e) the ratio is fjall bytes / cairn bytes; \
         (e) counts allocated blocks of the whole directory, (e') the engines' own table sizes)"
    );
}
