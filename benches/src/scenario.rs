//! The checkpoint and model-distribution scenarios: large objects written in parallel
//! parts/blocks and read back with parallel range reads.

use std::sync::Arc;
use std::time::Instant;

use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::runner::{phase, run_pool, Limits, PhaseReport};
use crate::stats::Recorder;
use crate::workload::Ctx;
use crate::BenchError;

/// Inclusive byte ranges of `part_size` covering `size` bytes.
pub fn ranges(size: u64, part_size: u64) -> Vec<(u64, u64)> {
    let ps = part_size.max(1);
    (0..size.div_ceil(ps).max(1))
        .map(|i| (i * ps, ((i + 1) * ps).min(size).saturating_sub(1)))
        .collect()
}

/// Uploads object `index` as `key` in parts of `--part-size`, `--part-concurrency` at a time;
/// each part is recorded as `part_put`.
pub async fn upload_parts(
    ctx: &Ctx,
    rec: &Arc<Recorder>,
    key: &str,
    index: u64,
) -> Result<(), BenchError> {
    let obj = ctx.payload.object(index);
    let upload = Arc::new(ctx.store.begin_upload(key).await?);
    let sem = Arc::new(Semaphore::new(ctx.cfg.part_concurrency.max(1)));
    let parts = ranges(obj.len() as u64, ctx.cfg.part_size);
    let mut set = JoinSet::new();
    for (i, (a, b)) in parts.iter().copied().enumerate() {
        let permit = sem
            .clone()
            .acquire_owned()
            .await
            .map_err(|e| BenchError::Protocol(format!("semaphore: {e}")))?;
        let body = obj.slice(a as usize..b as usize + 1);
        let (store, rec, upload, key) = (
            ctx.store.clone(),
            rec.clone(),
            upload.clone(),
            key.to_string(),
        );
        set.spawn(async move {
            let _permit = permit;
            let n = body.len() as u64;
            let t = Instant::now();
            let r = store.upload_part(&key, &upload, i, body).await;
            rec.result("part_put", t, n, &r);
            (i, r)
        });
    }
    let mut tags = vec![String::new(); parts.len()];
    let mut first_err = None;
    while let Some(joined) = set.join_next().await {
        match joined {
            Ok((i, Ok(tag))) => tags[i] = tag,
            Ok((_, Err(e))) => {
                first_err.get_or_insert(e);
            }
            Err(e) => {
                first_err.get_or_insert(BenchError::Protocol(format!("part task: {e}")));
            }
        }
    }
    if let Some(e) = first_err {
        return Err(e);
    }
    ctx.store.complete_upload(key, &upload, &tags).await
}

/// Reads object `index` at `key` with parallel range reads of `--part-size`, verifying each;
/// each range is recorded as `range_get`.
pub async fn read_ranges(
    ctx: &Ctx,
    rec: &Arc<Recorder>,
    key: &str,
    index: u64,
) -> Result<(), BenchError> {
    let sem = Arc::new(Semaphore::new(ctx.cfg.part_concurrency.max(1)));
    let mut set = JoinSet::new();
    for (a, b) in ranges(ctx.cfg.size, ctx.cfg.part_size) {
        let permit = sem
            .clone()
            .acquire_owned()
            .await
            .map_err(|e| BenchError::Protocol(format!("semaphore: {e}")))?;
        let (c, rec, key) = (ctx.clone(), rec.clone(), key.to_string());
        set.spawn(async move {
            let _permit = permit;
            let t = Instant::now();
            let r = match c.store.get(&key, Some((a, b))).await {
                Ok(got) => c.payload.verify(index, Some((a, b)), &got),
                Err(e) => Err(e),
            };
            rec.result("range_get", t, b - a + 1, &r);
            r
        });
    }
    let mut first_err = None;
    while let Some(joined) = set.join_next().await {
        match joined {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                first_err.get_or_insert(e);
            }
            Err(e) => {
                first_err.get_or_insert(BenchError::Protocol(format!("range task: {e}")));
            }
        }
    }
    first_err.map_or(Ok(()), Err)
}

/// N writers each upload one object in parallel parts, then N readers restore them.
pub async fn checkpoint(ctx: &Ctx) -> Result<Vec<PhaseReport>, BenchError> {
    let n = ctx.cfg.writers.unwrap_or(ctx.cfg.concurrency).max(1);
    let all = Limits {
        duration: None,
        count: Some(n as u64),
    };
    let size = ctx.cfg.size;
    let (write, _) = phase("checkpoint-write", ctx.cfg.progress, |rec| {
        let c = ctx.clone();
        run_pool(n, all, move |w| {
            let (c, rec) = (c.clone(), rec.clone());
            async move {
                let t = Instant::now();
                let r = upload_parts(&c, &rec, &c.key(w), w).await;
                rec.result("checkpoint_write", t, size, &r);
            }
        })
    })
    .await;
    let (read, _) = phase("checkpoint-read", ctx.cfg.progress, |rec| {
        let c = ctx.clone();
        run_pool(n, all, move |w| {
            let (c, rec) = (c.clone(), rec.clone());
            async move {
                let t = Instant::now();
                let r = read_ranges(&c, &rec, &c.key(w), w).await;
                rec.result("checkpoint_restore", t, size, &r);
            }
        })
    })
    .await;
    crate::workload::cleanup(ctx, n as u64).await;
    Ok(vec![write, read])
}

/// One writer uploads an object, then `--readers` readers each read all of it (in parallel
/// ranges when it is larger than a part); `--count` sets the total number of reads.
pub async fn model(ctx: &Ctx) -> Result<Vec<PhaseReport>, BenchError> {
    let readers = ctx.cfg.readers.unwrap_or(ctx.cfg.concurrency).max(1);
    let size = ctx.cfg.size;
    let multipart = size > ctx.cfg.part_size;
    let (write, res) = phase("model-write", ctx.cfg.progress, |rec| async move {
        let t = Instant::now();
        let r = if multipart {
            upload_parts(ctx, &rec, &ctx.key(0), 0).await
        } else {
            ctx.store.put(&ctx.key(0), ctx.payload.object(0)).await
        };
        rec.result("model_write", t, size, &r);
        r
    })
    .await;
    if let Err(e) = res {
        crate::workload::cleanup(ctx, 1).await;
        return Err(BenchError::Protocol(format!("model upload failed: {e}")));
    }
    let limits = Limits {
        duration: ctx.cfg.duration,
        count: Some(ctx.cfg.count.unwrap_or(readers as u64)),
    };
    let (read, _) = phase("model-read", ctx.cfg.progress, |rec| {
        let c = ctx.clone();
        run_pool(readers, limits, move |_| {
            let (c, rec) = (c.clone(), rec.clone());
            async move {
                let t = Instant::now();
                let r = if multipart {
                    read_ranges(&c, &rec, &c.key(0), 0).await
                } else {
                    match c.store.get(&c.key(0), None).await {
                        Ok(b) => c.payload.verify(0, None, &b),
                        Err(e) => Err(e),
                    }
                };
                rec.result("model_read", t, size, &r);
            }
        })
    })
    .await;
    crate::workload::cleanup(ctx, 1).await;
    Ok(vec![write, read])
}

#[cfg(test)]
mod tests {
    use super::ranges;

    #[test]
    fn ranges_cover_the_object() {
        assert_eq!(ranges(10, 4), vec![(0, 3), (4, 7), (8, 9)]);
        assert_eq!(ranges(8, 4), vec![(0, 3), (4, 7)]);
        assert_eq!(ranges(3, 8), vec![(0, 2)]);
    }
}
