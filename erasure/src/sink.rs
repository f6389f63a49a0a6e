//! Packs chunks into stripes and writes each stripe as soon as it is full.
//! Used by migration and reclaim; the caller commits the returned stripe
//! records (and its chunk records) in one metadata batch afterwards.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering;

use crate::error::Result;
use crate::records::StripeRecord;
use crate::shard::StripePacker;
use crate::store::DataStore;

/// Where a chunk landed.
pub(crate) struct Landed {
    pub(crate) stripe: u64,
    pub(crate) shard: u8,
    pub(crate) device: u16,
    pub(crate) row: u32,
    pub(crate) offset: u32,
    pub(crate) block_bytes: u32,
}

struct Open {
    id: u64,
    devices: Vec<u16>,
    packer: StripePacker,
    chunks: Vec<u64>,
}

/// A stripe builder bound to a store.
pub(crate) struct StripeSink<'a> {
    store: &'a DataStore,
    open: Option<Open>,
    /// Stripes written or being written (not yet committed).
    pub(crate) written: Vec<(u64, StripeRecord)>,
    inflight: VecDeque<Pin<Box<dyn Future<Output = Result<()>> + Send>>>,
}

/// Stripe writes in flight while the next stripe is packed.
const MAX_INFLIGHT_STRIPES: usize = 2;

impl<'a> StripeSink<'a> {
    pub(crate) fn new(store: &'a DataStore) -> StripeSink<'a> {
        StripeSink {
            store,
            open: None,
            written: Vec::new(),
            inflight: VecDeque::new(),
        }
    }

    /// The largest stored chunk a stripe block holds.
    pub(crate) fn max_chunk(&self) -> usize {
        self.store.cfg.shard_block_bytes as usize - crate::shard::BLOCK_HEADER
    }

    fn open_stripe(&mut self) -> Result<&mut Open> {
        if self.open.is_none() {
            let cfg = &self.store.cfg;
            let id = self.store.next_stripe.fetch_add(1, Ordering::SeqCst);
            let devices = self.store.place_stripe(
                id,
                cfg.data_shards,
                cfg.data_shards + cfg.parity_shards,
            )?;
            self.open = Some(Open {
                id,
                devices,
                packer: StripePacker::new(
                    cfg.data_shards,
                    cfg.max_stripe_rows as usize,
                    cfg.shard_block_bytes as usize,
                ),
                chunks: Vec::new(),
            });
        }
        match self.open.as_mut() {
            Some(o) => Ok(o),
            None => Err(crate::error::LayoutError::Corruption(
                "stripe sink lost its stripe".into(),
            )),
        }
    }

    /// Places a chunk's stored bytes, sealing and writing the current stripe when full.
    pub(crate) async fn add(&mut self, chunk: u64, stored: &[u8]) -> Result<Landed> {
        for _ in 0..2 {
            let block_bytes = self.store.cfg.shard_block_bytes;
            let o = self.open_stripe()?;
            if let Some(p) = o.packer.place(stored) {
                o.chunks.push(chunk);
                return Ok(Landed {
                    stripe: o.id,
                    shard: p.shard,
                    device: o.devices[p.shard as usize],
                    row: p.row,
                    offset: p.offset,
                    block_bytes,
                });
            }
            self.seal().await?;
        }
        Err(crate::error::LayoutError::Corruption(format!(
            "chunk of {} bytes does not fit an empty stripe",
            stored.len()
        )))
    }

    /// Writes the open stripe (if any) durably.
    pub(crate) async fn seal(&mut self) -> Result<()> {
        let Some(o) = self.open.take() else {
            return Ok(());
        };
        if o.packer.is_empty() {
            return Ok(());
        }
        let cfg = &self.store.cfg;
        let codec = self.store.codecs.get(cfg.data_shards, cfg.parity_shards)?;
        let stored = o.packer.stored_bytes();
        let rows = o.packer.rows() as u32;
        let files = o.packer.finish(&codec, o.id)?;
        let rec = StripeRecord {
            k: cfg.data_shards as u8,
            m: cfg.parity_shards as u8,
            rows,
            block_bytes: cfg.shard_block_bytes,
            devices: o.devices.clone(),
            chunks: o.chunks,
            data_bytes: stored,
            live_bytes: stored,
        };
        // Record it before writing so that a failed write is cleaned up too.
        self.written.push((o.id, rec));
        let w = self.store.submit_stripe(o.id, &o.devices, files)?;
        self.inflight.push_back(Box::pin(w));
        while self.inflight.len() > MAX_INFLIGHT_STRIPES {
            if let Some(w) = self.inflight.pop_front() {
                w.await?;
            }
        }
        Ok(())
    }

    /// Waits for every stripe write and makes the new directory entries
    /// durable: afterwards every stripe written so far may be committed.
    pub(crate) async fn sync_all(&mut self) -> Result<()> {
        while let Some(w) = self.inflight.pop_front() {
            w.await?;
        }
        self.store.sync_qlc_dirs(
            self.written
                .iter()
                .flat_map(|(_, r)| r.devices.iter().copied()),
        )
    }

    /// Deletes the files of every stripe written by this sink (never committed).
    pub(crate) fn abort(&mut self) {
        self.inflight.clear();
        for (id, rec) in self.written.drain(..) {
            self.store.delete_stripe_files(id, &rec);
        }
    }
}
