//! Data reduction benchmark over real corpora built or fetched at run time:
//! (a) numpy model checkpoints, each a few SGD steps after the previous one
//! (dense weight updates); (b) successive versions of one package's wheels
//! from PyPI (`pip download --no-deps`); (c) ext4 disk images of successive
//! filesystem states (mke2fs -d, one converted with qemu-img to qcow2);
//! (d) rotated application and access logs.
//!
//! For each corpus: ratios of zstd alone, dedup + zstd, and Cairn's full
//! pipeline (all per FastCDC chunk at the same zstd level), each stage's
//! single-core throughput (the fastest of three runs), and p50/p99 of random 32 KiB reads from a
//! `DataStore` holding the data reduced vs unreduced.
//!
//! `cargo bench -p cairn-bench --bench reduction` (`CAIRN_REDUCTION_ONLY=a,b`
//! for a subset of the corpora). Corpora are cached in
//! `$CAIRN_REDUCTION_CORPORA` (default `/tmp/cairn-reduction-corpora`).

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use cairn_erasure::reduction::{chunker, streams};
use cairn_erasure::{
    DataStore, ExtentId, LayoutConfig, ReducedChunk, Reducer, ReductionConfig, SimilarityReducer,
};
use cairn_metadata::{Db, Options, WriteBatch};
use rand::{Rng, RngCore, SeedableRng};

const EXTENT: usize = 8 << 20;
const MAX_STORED: usize = (1 << 20) - 4096;
const READS: usize = 2000;
const READ_BYTES: usize = 48 << 20;

type Res<T> = std::result::Result<T, Box<dyn std::error::Error>>;
/// Builds one corpus into a directory.
type Builder = fn(&Path) -> Res<()>;

fn run(cmd: &mut Command) -> Res<()> {
    let st = cmd.status()?;
    if !st.success() {
        return Err(format!("{cmd:?} failed: {st}").into());
    }
    Ok(())
}

fn files_in(dir: &Path) -> Res<Vec<PathBuf>> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .collect();
    v.sort();
    Ok(v)
}

const CHECKPOINT_PY: &str = r#"
import numpy as np, sys, os
out = sys.argv[1]
rng = np.random.default_rng(7)
sizes = [(1024, 2048), (2048, 2048), (2048, 1024), (1024, 512)]
W = [(rng.standard_normal(s) * np.sqrt(2.0 / s[0])).astype(np.float32) for s in sizes]
B = [np.zeros(s[1], np.float32) for s in sizes]
M = [np.zeros_like(w) for w in W]
X = rng.standard_normal((256, 1024)).astype(np.float32)
T = rng.standard_normal((256, 512)).astype(np.float32)
lr, mom = 2e-3, 0.9
for ck in range(5):
    for step in range(3):
        acts = [X]
        for i, (w, b) in enumerate(zip(W, B)):
            z = acts[-1] @ w + b
            acts.append(np.maximum(z, 0) if i < len(W) - 1 else z)
        g = (acts[-1] - T) * (2.0 / T.size)
        for i in reversed(range(len(W))):
            gw = acts[i].T @ g
            gb = g.sum(0)
            if i > 0:
                g = (g @ W[i].T) * (acts[i] > 0)
            M[i] = mom * M[i] + gw
            W[i] -= (lr * M[i]).astype(np.float32)
            B[i] -= (lr * gb).astype(np.float32)
    np.savez(os.path.join(out, "ckpt_%02d.npz" % ck), **{"w%d" % i: w for i, w in enumerate(W)}, **{"b%d" % i: b for i, b in enumerate(B)}, **{"m%d" % i: m for i, m in enumerate(M)})
"#;

fn build_checkpoints(dir: &Path) -> Res<()> {
    let ok = Command::new("python3")
        .args(["-c", "import numpy"])
        .stderr(std::process::Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !ok {
        run(Command::new("python3").args(["-m", "pip", "install", "-q", "numpy"]))?;
    }
    run(Command::new("python3").args(["-c", CHECKPOINT_PY]).arg(dir))
}

fn build_packages(dir: &Path) -> Res<()> {
    for v in ["1.26.0", "1.26.1", "1.26.2", "1.26.3", "1.26.4"] {
        run(Command::new("python3")
            .args(["-m", "pip", "download", "-q", "--no-deps", "-d"])
            .arg(dir)
            .arg(format!("numpy=={v}")))?;
    }
    Ok(())
}

fn build_disk_images(dir: &Path) -> Res<()> {
    let src = dir.join("tree");
    std::fs::create_dir_all(&src)?;
    // Seed the tree with real files: the Python standard library.
    let stdlib = ["/usr/lib/python3.11", "/usr/lib/python3"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_dir())
        .ok_or("no python stdlib to seed the disk images")?;
    run(Command::new("cp")
        .arg("-r")
        .arg(&stdlib)
        .arg(src.join("lib")))?;
    let _ = std::fs::remove_dir_all(src.join("lib").join("test"));
    let mut r = rand::rngs::StdRng::seed_from_u64(11);
    let mut all = Vec::new();
    walk(&src, &mut all)?;
    for state in 0..4 {
        if state > 0 {
            // Modify ~5% of the files, delete ~2%, add a few new ones.
            for f in &all {
                if !f.exists() {
                    continue;
                }
                let x: f64 = r.random();
                if x < 0.05 {
                    let mut b = std::fs::read(f)?;
                    let at = r.random_range(0..=b.len());
                    let ins = format!("\n# state {state} edit {}\n", r.next_u64());
                    b.splice(at..at, ins.bytes());
                    std::fs::write(f, b)?;
                } else if x < 0.07 {
                    std::fs::remove_file(f)?;
                }
            }
            for i in 0..20 {
                let mut b = vec![0u8; r.random_range(1000..200_000)];
                r.fill_bytes(&mut b);
                std::fs::write(src.join(format!("new_{state}_{i}.bin")), b)?;
            }
        }
        let img = dir.join(format!("disk_{state}.raw"));
        run(Command::new("mke2fs")
            .args(["-q", "-F", "-t", "ext4", "-E", "root_owner=0:0", "-d"])
            .arg(&src)
            .arg(&img)
            .arg("96M"))?;
    }
    run(Command::new("qemu-img")
        .args(["convert", "-O", "qcow2"])
        .arg(dir.join("disk_3.raw"))
        .arg(dir.join("disk_3.qcow2")))?;
    std::fs::remove_file(dir.join("disk_3.raw"))?;
    std::fs::remove_dir_all(&src)?;
    Ok(())
}

fn walk(d: &Path, out: &mut Vec<PathBuf>) -> Res<()> {
    for e in std::fs::read_dir(d)? {
        let p = e?.path();
        if p.is_dir() {
            walk(&p, out)?;
        } else if p.is_file() {
            out.push(p);
        }
    }
    Ok(())
}

fn build_logs(dir: &Path) -> Res<()> {
    let mut r = rand::rngs::StdRng::seed_from_u64(5);
    let paths = [
        "/api/v1/objects",
        "/api/v1/buckets",
        "/healthz",
        "/metrics",
        "/login",
        "/static/app.js",
    ];
    let agents = [
        "curl/8.5.0",
        "boto3/1.34.10 md/Botocore#1.34.10",
        "Mozilla/5.0 (X11; Linux x86_64)",
        "aws-cli/2.15.0",
    ];
    let levels = ["INFO", "INFO", "INFO", "DEBUG", "WARN", "ERROR"];
    let mut t = 1_700_000_000u64;
    for day in 0..4 {
        let mut s = String::with_capacity(24 << 20);
        while s.len() < (22 << 20) {
            t += r.random_range(0..2);
            if r.random_bool(0.6) {
                s.push_str(&format!(
                    "10.{}.{}.{} - - [{}] \"{} {}?id={} HTTP/1.1\" {} {} \"-\" \"{}\"\n",
                    r.random_range(0..4),
                    r.random_range(0..255),
                    r.random_range(0..255),
                    t,
                    ["GET", "GET", "PUT", "POST", "DELETE"][r.random_range(0..5)],
                    paths[r.random_range(0..paths.len())],
                    r.random_range(0..100_000u32),
                    [200, 200, 200, 204, 404, 500][r.random_range(0..6)],
                    r.random_range(0..1_000_000u32),
                    agents[r.random_range(0..agents.len())]
                ));
            } else {
                s.push_str(&format!(
                    "{} {} cairn-node[{}]: {} shard={} stripe={} latency_us={} trace={:016x}\n",
                    t,
                    levels[r.random_range(0..levels.len())],
                    1000 + day,
                    [
                        "migrated segment",
                        "gc pass done",
                        "request served",
                        "repair queued"
                    ][r.random_range(0..4)],
                    r.random_range(0..6),
                    r.random_range(0..100_000u32),
                    r.random_range(10..90_000u32),
                    r.next_u64()
                ));
            }
        }
        std::fs::write(dir.join(format!("app.log.{day}")), s)?;
    }
    Ok(())
}

fn corpus(root: &Path, name: &str, build: Builder) -> Res<Vec<Bytes>> {
    let dir = root.join(name);
    let done = dir.join(".done");
    if !done.exists() {
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)?;
        eprintln!("building corpus {name} in {}", dir.display());
        build(&dir)?;
        std::fs::write(&done, b"")?;
    }
    let mut out = Vec::new();
    for f in files_in(&dir)? {
        if f.file_name().is_some_and(|n| n == ".done") {
            continue;
        }
        let b = Bytes::from(std::fs::read(&f)?);
        let mut off = 0;
        while off < b.len() {
            let end = (off + EXTENT).min(b.len());
            out.push(b.slice(off..end));
            off = end;
        }
    }
    Ok(out)
}

fn mbps(bytes: u64, d: Duration) -> f64 {
    bytes as f64 / 1e6 / d.as_secs_f64().max(1e-9)
}

struct Row {
    name: &'static str,
    logical: u64,
    zstd: f64,
    dedup_zstd: f64,
    full: f64,
    t_chunk: f64,
    t_fp: f64,
    t_feat: f64,
    t_tokens: f64,
    t_comp: f64,
    t_zstd: f64,
    t_full: f64,
    hits: (u64, u64, u64, u64),
    /// Stored bytes of new chunks by kind: raw, plain zstd, float planes, delta.
    by_kind: [u64; 4],
    lat: [Duration; 4],
}

/// Index into `Row::by_kind` of an encoding.
fn kind(encoding: u8) -> usize {
    use cairn_erasure::reduction::encode::*;
    match encoding {
        ENCODING_ZSTD => 1,
        ENCODING_ZSTD_PLANES | ENCODING_SPLIT_PLANES => 2,
        ENCODING_DELTA
        | ENCODING_DELTA_PLANES
        | ENCODING_XOR_PLANES
        | ENCODING_SUB_PLANES
        | ENCODING_TOKENS_DELTA => 3,
        _ => 0,
    }
}

/// Runs of each stage timed; the fastest is reported (the VMs these run on
/// share their cores, and the noise only ever slows a run down).
const RUNS: usize = 3;

/// The result of the last of [`RUNS`] runs of `f` and the MB/s of
/// `logical` bytes in the fastest.
fn best_of<T>(logical: u64, mut f: impl FnMut() -> Res<T>) -> Res<(T, f64)> {
    let mut best = Duration::MAX;
    let mut out = None;
    for _ in 0..RUNS {
        let t = Instant::now();
        let r = f()?;
        best = best.min(t.elapsed());
        out = Some(r);
    }
    Ok((out.ok_or("no run")?, mbps(logical, best)))
}

fn measure(name: &'static str, extents: &[Bytes]) -> Res<Row> {
    let logical: u64 = extents.iter().map(|e| e.len() as u64).sum();
    let plain = SimilarityReducer::new(ReductionConfig {
        float_planes: false,
        base_cache_bytes: 0,
        ..ReductionConfig::default()
    });
    // Stage: chunking.
    let (cuts, t_chunk) = best_of(logical, || {
        Ok(extents
            .iter()
            .map(|e| plain.cut(e, MAX_STORED))
            .collect::<Vec<Vec<usize>>>())
    })?;
    let chunks: Vec<Bytes> = extents
        .iter()
        .zip(&cuts)
        .flat_map(|(e, c)| {
            let mut off = 0;
            c.iter()
                .map(|&l| {
                    let s = e.slice(off..off + l);
                    off += l;
                    s
                })
                .collect::<Vec<_>>()
        })
        .collect();
    // Stage: fingerprints.
    let (fps, t_fp) = best_of(logical, || {
        Ok(chunks
            .iter()
            .map(|c| *blake3::hash(c).as_bytes())
            .collect::<Vec<[u8; 32]>>())
    })?;
    // Stage: the pipeline's chunker (float-aware cut points with the
    // super-features sampled in the same pass).
    let sizes = chunker::Sizes {
        min: 8 << 10,
        avg: 32 << 10,
        max: (128 << 10).min(MAX_STORED),
    };
    let (n, t_feat) = best_of(logical, || {
        Ok(extents
            .iter()
            .map(|e| chunker::chunk(e, sizes, true, true).len() as u64)
            .sum::<u64>())
    })?;
    std::hint::black_box(n);
    // Stage: deflate tokens of zip members (large ones cut by their
    // tokens, the chunks of the rest walked for theirs, features sampled
    // in the same parse), as in the pipeline.
    let (n, t_tokens) = best_of(logical, || {
        let mut n = 0u64;
        for e in extents {
            let spans = streams::spans(e, 128 << 10);
            for span in &spans {
                let cut_sizes = streams::CutSizes {
                    min: sizes.min,
                    avg: sizes.avg,
                    max: sizes.max,
                };
                let pieces = streams::SpanCutter::new(span, 64 << 10).cut(
                    e,
                    span.header,
                    cut_sizes,
                    &mut streams::Forgetful,
                );
                n += pieces.len() as u64;
            }
            let mut walk = streams::StreamWalk::new(e, &spans);
            for off in (0..e.len()).step_by(sizes.avg) {
                n += walk.chunk(off, (off + sizes.avg).min(e.len())).is_some() as u64;
            }
        }
        Ok(n)
    })?;
    std::hint::black_box(n);
    // zstd alone (per chunk) and dedup + zstd.
    let ((zstd_stored, dedup_stored), t_zstd) = best_of(logical, || {
        let (mut zstd_stored, mut dedup_stored) = (0u64, 0u64);
        let mut seen = HashSet::new();
        for (c, fp) in chunks.iter().zip(&fps) {
            let (_, s) = plain.compress_chunk(c, MAX_STORED)?;
            zstd_stored += s.len() as u64;
            if seen.insert(*fp) {
                dedup_stored += s.len() as u64;
            }
        }
        Ok((zstd_stored, dedup_stored))
    })?;
    // Stage: compression as the pipeline does it (zstd, float planes where they win).
    let full_cfg = ReductionConfig::default();
    let comp = SimilarityReducer::new(full_cfg.clone());
    let (cs, t_comp) = best_of(logical, || {
        let mut cs = 0u64;
        for c in &chunks {
            cs += comp.compress_chunk(c, MAX_STORED)?.1.len() as u64;
        }
        Ok(cs)
    })?;
    std::hint::black_box(cs);
    // The whole pipeline, as the migration worker drives it (a new reducer
    // each run: every run stores the corpus from scratch).
    let ((red, full_stored, by_kind), t_full) = best_of(logical, || {
        let red = SimilarityReducer::new(full_cfg.clone());
        let mut next = 1u64;
        let mut full_stored = 0u64;
        let mut by_kind = [0u64; 4];
        let mut batch = WriteBatch::new();
        for e in extents {
            for c in red.reduce(e, MAX_STORED)? {
                if let ReducedChunk::New {
                    stored, encoding, ..
                } = c
                {
                    full_stored += stored.len() as u64;
                    by_kind[kind(encoding)] += stored.len() as u64;
                    red.on_stored(&mut batch, next, &stored);
                    next += 1;
                }
            }
            red.on_committed();
        }
        Ok((red, full_stored, by_kind))
    })?;
    let st = &red.stats;
    let ld = |a: &std::sync::atomic::AtomicU64| a.load(std::sync::atomic::Ordering::Relaxed);
    let hits = (
        ld(&st.chunks),
        ld(&st.dedup_hits),
        ld(&st.delta_hits),
        ld(&st.plane_chunks),
    );
    let lat = read_latency(extents)?;
    Ok(Row {
        name,
        logical,
        zstd: logical as f64 / zstd_stored.max(1) as f64,
        dedup_zstd: logical as f64 / dedup_stored.max(1) as f64,
        full: logical as f64 / full_stored.max(1) as f64,
        t_chunk,
        t_fp,
        t_feat,
        t_tokens,
        t_comp,
        t_zstd,
        t_full,
        hits,
        by_kind,
        lat,
    })
}

/// p50/p99 of random 32 KiB reads, reduced then unreduced.
fn read_latency(extents: &[Bytes]) -> Res<[Duration; 4]> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let mut out = [Duration::ZERO; 4];
    for (i, reduce) in [true, false].into_iter().enumerate() {
        let dir = tempfile::tempdir()?;
        let (p50, p99) = rt.block_on(async {
            let mut cfg = LayoutConfig::single_node(&dir.path().join("dev"));
            cfg.migrate_after = Duration::from_secs(3600);
            cfg.slc_capacity_bytes = 512 << 20;
            if !reduce {
                cfg.reduction = None;
            }
            let db = Arc::new(Db::open(dir.path().join("meta"), Options::default())?);
            let store = DataStore::open(cfg, db.clone()).await?;
            let mut ids: Vec<(ExtentId, Bytes)> = Vec::new();
            let mut total = 0;
            // Every other extent, so that the data holds deltas and shared chunks.
            for e in extents.iter().step_by(2) {
                if total >= READ_BYTES {
                    break;
                }
                let ext = store.append(e.clone()).await?;
                let mut b = WriteBatch::new();
                let id = store.stage_commit(&mut b, &ext);
                db.write(b)?;
                ids.push((id, e.clone()));
                total += e.len();
            }
            store.flush().await?;
            let mut r = rand::rngs::StdRng::seed_from_u64(3);
            let mut lats = Vec::with_capacity(READS);
            for _ in 0..READS {
                let (id, data) = &ids[r.random_range(0..ids.len())];
                let len = (32usize << 10).min(data.len());
                let off = r.random_range(0..=data.len() - len);
                let t = Instant::now();
                let got = store.read(*id, off as u64, len as u64).await?;
                lats.push(t.elapsed());
                if got != data.slice(off..off + len) {
                    return Err::<_, Box<dyn std::error::Error>>(
                        "read returned wrong bytes".into(),
                    );
                }
            }
            store.shutdown().await;
            lats.sort();
            Ok((lats[lats.len() / 2], lats[lats.len() * 99 / 100]))
        })?;
        out[i * 2] = p50;
        out[i * 2 + 1] = p99;
    }
    Ok(out)
}

fn main() -> Res<()> {
    let root = std::env::var_os("CAIRN_REDUCTION_CORPORA")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/tmp/cairn-reduction-corpora"));
    std::fs::create_dir_all(&root)?;
    let specs: [(&'static str, Builder); 4] = [
        ("checkpoints", build_checkpoints),
        ("packages", build_packages),
        ("disk-images", build_disk_images),
        ("logs", build_logs),
    ];
    // `CAIRN_REDUCTION_ONLY=checkpoints,logs` measures a subset.
    let only = std::env::var("CAIRN_REDUCTION_ONLY").ok();
    let mut rows = Vec::new();
    for (name, build) in specs {
        if only
            .as_deref()
            .is_some_and(|o| !o.split(',').any(|x| x == name))
        {
            continue;
        }
        let ext = corpus(&root, name, build)?;
        eprintln!("measuring {name}");
        rows.push(measure(name, &ext)?);
    }
    println!("\nreduction ratios (logical / stored; zstd level 1 per FastCDC chunk, avg 32 KiB)");
    println!(
        "{:<12} {:>8} {:>7} {:>8} {:>7} {:>9} | {:>7} {:>7} {:>7} {:>7}",
        "corpus", "MB", "zstd", "dedup+z", "cairn", "vs d+z", "chunks", "dedup", "delta", "planes"
    );
    let mut geo = 0.0;
    for r in &rows {
        println!(
            "{:<12} {:>8.1} {:>7.3} {:>8.3} {:>7.3} {:>8.3}x | {:>7} {:>7} {:>7} {:>7}",
            r.name,
            r.logical as f64 / 1e6,
            r.zstd,
            r.dedup_zstd,
            r.full,
            r.full / r.dedup_zstd,
            r.hits.0,
            r.hits.1,
            r.hits.2,
            r.hits.3
        );
        geo += (r.full / r.dedup_zstd).ln();
    }
    println!(
        "geometric mean of cairn / (dedup+zstd): {:.3}x",
        (geo / rows.len() as f64).exp()
    );
    println!("\ncairn's stored MB by encoding of the new chunks");
    println!(
        "{:<12} {:>9} {:>9} {:>9} {:>9}",
        "corpus", "raw", "zstd", "planes", "delta"
    );
    for r in &rows {
        let mb = |i: usize| r.by_kind[i] as f64 / 1e6;
        println!(
            "{:<12} {:>9.1} {:>9.1} {:>9.1} {:>9.1}",
            r.name,
            mb(0),
            mb(1),
            mb(2),
            mb(3)
        );
    }
    println!("\nsingle-core throughput, MB/s of logical input");
    println!(
        "(zstd-1 = plain zstd level 1 per chunk, the reference; last column = pipeline / zstd-1)"
    );
    println!(
        "{:<12} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}",
        "corpus",
        "chunking",
        "blake3",
        "cut+feat",
        "tokens",
        "compress",
        "zstd-1",
        "pipeline",
        "pipe/z"
    );
    for r in &rows {
        println!(
            "{:<12} {:>9.0} {:>9.0} {:>9.0} {:>9.0} {:>9.0} {:>9.0} {:>9.0} {:>8.2}x",
            r.name,
            r.t_chunk,
            r.t_fp,
            r.t_feat,
            r.t_tokens,
            r.t_comp,
            r.t_zstd,
            r.t_full,
            r.t_full / r.t_zstd
        );
    }
    println!("\nrandom 32 KiB reads through DataStore ({READS} reads, first ~{} MB of every other extent)", READ_BYTES >> 20);
    println!(
        "{:<12} {:>12} {:>12} {:>12} {:>12}",
        "corpus", "reduced p50", "reduced p99", "raw p50", "raw p99"
    );
    for r in &rows {
        println!(
            "{:<12} {:>10.0}us {:>10.0}us {:>10.0}us {:>10.0}us",
            r.name,
            r.lat[0].as_secs_f64() * 1e6,
            r.lat[1].as_secs_f64() * 1e6,
            r.lat[2].as_secs_f64() * 1e6,
            r.lat[3].as_secs_f64() * 1e6
        );
    }
    Ok(())
}
