//! Writing a session's replies (`socket.rs` for reads, `writes.rs` for writes): reply lines
//! with a write-stall limit ([`Out`]), the chunks a blocking answer streams ([`Lines`]), and a
//! store error as its reply ([`error_reply`]).

use std::io;
use std::time::Duration;

use tokio::io::{AsyncWriteExt, BufWriter};
use tokio::net::unix::OwnedWriteHalf;
use tokio::sync::mpsc;

use super::protocol::Reply;
use crate::store::StoreError;

/// The writing half of a session, with its write-stall limit.
pub(super) struct Out {
    pub(super) w: BufWriter<OwnedWriteHalf>,
    pub(super) stall: Duration,
}

impl Out {
    /// Writes one reply line; a write that makes no progress for the stall limit fails.
    pub(super) async fn reply(&mut self, r: &Reply) -> io::Result<()> {
        let mut line = serde_json::to_vec(r).map_err(io::Error::other)?;
        line.push(b'\n');
        let stall = self.stall;
        stall_guard(stall, self.w.write_all(&line)).await
    }

    /// Flushes; fails when the client does not read for the stall limit.
    pub(super) async fn flush(&mut self) -> io::Result<()> {
        let stall = self.stall;
        stall_guard(stall, self.w.flush()).await
    }

    /// Writes a chunk of whole reply lines and flushes it (one stall limit for the chunk).
    pub(super) async fn chunk(&mut self, bytes: &[u8]) -> io::Result<()> {
        let stall = self.stall;
        stall_guard(stall, async {
            self.w.write_all(bytes).await?;
            self.w.flush().await
        })
        .await
    }

    pub(super) async fn error(&mut self, message: String) -> io::Result<()> {
        self.reply(&Reply::Error {
            message,
            kind: None,
        })
        .await?;
        self.flush().await
    }
}

async fn stall_guard(
    stall: Duration,
    f: impl std::future::Future<Output = io::Result<()>>,
) -> io::Result<()> {
    match tokio::time::timeout(stall, f).await {
        Ok(r) => r,
        Err(_) => Err(io::Error::new(
            io::ErrorKind::TimedOut,
            "the client does not read its reply; abandoned",
        )),
    }
}

/// Reply lines written by a blocking answer, sent to the session in chunks: the first line at
/// once (the first finding shows without delay), then about [`CHUNK_BYTES`] at a time, so that
/// a million findings are a few thousand channel sends and socket writes, not a million.
pub(super) struct Lines {
    tx: mpsc::Sender<Vec<u8>>,
    buf: Vec<u8>,
    sent: bool,
}

/// How many bytes of reply lines go to the session at a time.
const CHUNK_BYTES: usize = 64 << 10;

impl Lines {
    pub(super) fn new(tx: mpsc::Sender<Vec<u8>>) -> Self {
        Lines {
            tx,
            buf: Vec::with_capacity(CHUNK_BYTES + 4096),
            sent: false,
        }
    }

    /// One streamed item: `{"item": <v as JSON>}`, the [`Reply::Item`] wire form, written
    /// straight from `v`.
    pub(super) fn item<T: serde::Serialize>(&mut self, v: &T) -> Result<(), StoreError> {
        self.buf.extend_from_slice(b"{\"item\":");
        serde_json::to_writer(&mut self.buf, v).map_err(|e| StoreError::Remote(e.into()))?;
        self.buf.extend_from_slice(b"}\n");
        if !self.sent || self.buf.len() >= CHUNK_BYTES {
            self.send()?;
        }
        Ok(())
    }

    /// The last line, then everything still held.
    pub(super) fn finish(mut self, last: &Reply) {
        if serde_json::to_writer(&mut self.buf, last).is_ok() {
            self.buf.push(b'\n');
        }
        let _ = self.send();
    }

    pub(super) fn send(&mut self) -> Result<(), StoreError> {
        self.sent = true;
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK_BYTES + 4096));
        self.tx
            .blocking_send(chunk)
            .map_err(|_| StoreError::Remote("client went away".into()))
    }
}

/// The reply to a failed request, with the kind of store error a client tells apart.
pub(super) fn error_reply(e: &StoreError) -> Reply {
    let kind = match e {
        StoreError::Unread(_) => Some("unread"),
        StoreError::DiskFull { .. } => Some("disk_full"),
        StoreError::Refused(_) => Some("refused"),
        StoreError::Locked { .. } => Some("locked"),
        _ => None,
    };
    Reply::Error {
        message: e.to_string(),
        kind: kind.map(str::to_string),
    }
}
