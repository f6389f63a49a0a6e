//! A body stream fed by a producer task through a bounded channel (so reads run ahead of the
//! client by a few pieces, and dropping the stream stops the producer).

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use cairn_protocols::store::StoreError;
use futures::Stream;
use tokio::sync::mpsc;

/// Receives body pieces from a producer.
pub struct ChannelStream {
    rx: mpsc::Receiver<Result<Bytes, StoreError>>,
}

impl ChannelStream {
    /// Wraps a receiver.
    pub fn new(rx: mpsc::Receiver<Result<Bytes, StoreError>>) -> ChannelStream {
        ChannelStream { rx }
    }
}

impl Stream for ChannelStream {
    type Item = Result<Bytes, StoreError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.rx.poll_recv(cx)
    }
}
