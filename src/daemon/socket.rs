//! The daemon's side of the local socket: binds `<data_dir>/outwatch.sock` inside the store
//! folder (mode 0700, so only the owner can reach it; the socket itself is 0600, and a stale file
//! from a crashed daemon is replaced) and answers read requests from the store it owns.
//! See [`super::protocol`] for the wire format.
//!
//! No client can hold the socket shut: connections are bounded, a connection must send its
//! first request within [`FIRST_REQUEST`] and later ones within [`IDLE`], and a reply the client
//! does not read is abandoned after [`WRITE_STALL`] without progress. Each connection is its own
//! task, so a stalled one never delays another.

use std::io;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader, BufWriter};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{Semaphore, mpsc, watch};

use super::protocol::{
    MAX_REQUEST_BYTES, Op, PROTOCOL_REVISION, PROTOCOL_VERSION, Reply, Request, SOCKET_NAME,
};
use crate::store::{QueryOptions, Store, StoreError};

/// Connections served at the same time; more wait in the kernel's backlog until one closes
/// (which the deadlines below make quick).
pub const MAX_CONNECTIONS: usize = 256;
/// A new connection that has not sent a whole request line by then is closed.
pub const FIRST_REQUEST: Duration = Duration::from_secs(2);
/// A connection that sends no further whole request line for this long is closed.
pub const IDLE: Duration = Duration::from_secs(10);
/// A reply that makes no progress for this long (the client does not read) is abandoned.
pub const WRITE_STALL: Duration = Duration::from_secs(5);

/// Where the socket of the store in `data_dir` lives.
pub fn socket_path(data_dir: &Path) -> PathBuf {
    data_dir.join(SOCKET_NAME)
}

/// Binds the socket, owner-only. Call after the store is open: holding sled's lock proves no
/// other daemon serves this data dir, so an existing socket file is stale and is replaced.
pub fn bind(data_dir: &Path) -> io::Result<(UnixListener, PathBuf)> {
    use std::os::unix::fs::PermissionsExt;
    let path = socket_path(data_dir);
    // sockaddr_un holds 108 bytes including the final NUL.
    if path.as_os_str().len() > 107 {
        return Err(io::Error::other(format!(
            "the path is {} bytes long, more than a Unix socket allows (107): \
             use a shorter data dir ([store] path or --data-dir)",
            path.as_os_str().len()
        )));
    }
    match std::fs::remove_file(&path) {
        Ok(()) => tracing::info!(path = %path.display(), "removed a stale socket file"),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    // The store folder is owner-only, so nobody else can reach the socket from its first
    // moment whatever the umask; chmod makes the socket itself owner-only too.
    crate::files::private_dir(data_dir)?;
    let listener = UnixListener::bind(&path)?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
    Ok((listener, path))
}

/// Facts the `hello` request answers with (pid, jobs...), produced on demand.
pub type InfoFn = Arc<dyn Fn() -> Value + Send + Sync>;

/// Serves connections until `stop` turns true.
pub async fn serve(
    listener: UnixListener,
    store: Arc<dyn Store>,
    info: InfoFn,
    mut stop: watch::Receiver<bool>,
) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let permit = tokio::select! {
            p = slots.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => return },
            _ = stop.changed() => return,
        };
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = stop.changed() => return,
        };
        match accepted {
            Ok((stream, _)) => {
                let store = store.clone();
                let info = info.clone();
                tokio::spawn(async move {
                    if let Err(e) = handle(stream, store, info).await {
                        tracing::debug!(error = %e, "socket client went away");
                    }
                    drop(permit);
                });
            }
            Err(e) => {
                tracing::warn!(error = %e, "accepting a socket connection failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// Writes one reply line; a write that makes no progress for [`WRITE_STALL`] fails.
async fn write_reply<W: AsyncWriteExt + Unpin>(w: &mut W, r: &Reply) -> io::Result<()> {
    let mut line = serde_json::to_vec(r).map_err(io::Error::other)?;
    line.push(b'\n');
    stall_guard(w.write_all(&line)).await
}

/// Flushes; fails when the client does not read for [`WRITE_STALL`].
async fn flush<W: AsyncWriteExt + Unpin>(w: &mut W) -> io::Result<()> {
    stall_guard(w.flush()).await
}

async fn stall_guard(f: impl std::future::Future<Output = io::Result<()>>) -> io::Result<()> {
    match tokio::time::timeout(WRITE_STALL, f).await {
        Ok(r) => r,
        Err(_) => Err(io::Error::new(
            io::ErrorKind::TimedOut,
            "the client does not read its reply; abandoned",
        )),
    }
}

async fn handle(stream: UnixStream, store: Arc<dyn Store>, info: InfoFn) -> io::Result<()> {
    let (r, w) = stream.into_split();
    let mut r = BufReader::new(r);
    let mut w = BufWriter::new(w);
    let mut deadline = FIRST_REQUEST;
    loop {
        let mut line = Vec::new();
        let read = tokio::time::timeout(
            deadline,
            (&mut r)
                .take(MAX_REQUEST_BYTES as u64 + 1)
                .read_until(b'\n', &mut line),
        )
        .await;
        deadline = IDLE;
        let n = match read {
            Err(_) => return Ok(()), // idle
            Ok(n) => n?,
        };
        if n == 0 {
            return Ok(());
        }
        if line.len() > MAX_REQUEST_BYTES || line.last() != Some(&b'\n') {
            let message = if line.len() > MAX_REQUEST_BYTES {
                format!("request larger than {MAX_REQUEST_BYTES} bytes")
            } else {
                "request not terminated by a newline".to_string()
            };
            write_reply(&mut w, &Reply::Error { message }).await?;
            flush(&mut w).await?;
            return Ok(());
        }
        let req: Request = match serde_json::from_slice(&line) {
            Ok(r) => r,
            Err(e) => {
                // Say which version we speak even when the request is unreadable.
                let message =
                    format!("bad request ({e}); this daemon speaks protocol v{PROTOCOL_VERSION}");
                write_reply(&mut w, &Reply::Error { message }).await?;
                flush(&mut w).await?;
                continue;
            }
        };
        if req.v != PROTOCOL_VERSION {
            let message = format!(
                "protocol v{} is not supported: this daemon speaks v{PROTOCOL_VERSION} \
                 (use the outwatch binary that runs the daemon)",
                req.v
            );
            write_reply(&mut w, &Reply::Error { message }).await?;
            flush(&mut w).await?;
            continue;
        }
        answer(req.op, &store, &info, &mut w).await?;
        flush(&mut w).await?;
    }
}

/// Findings whose `last_seen` lies in `[from, to)`, in time order (protocol v1's
/// `seen_between`; a scan).
fn seen_between(
    store: &dyn Store,
    from: chrono::DateTime<chrono::Utc>,
    to: chrono::DateTime<chrono::Utc>,
) -> Result<Vec<crate::finding::Finding>, StoreError> {
    let mut out = Vec::new();
    store.for_each(&mut |f| {
        if f.last_seen >= from && f.last_seen < to {
            out.push(f);
        }
        Ok(())
    })?;
    out.sort_by(|a, b| {
        a.last_seen
            .cmp(&b.last_seen)
            .then_with(|| a.fingerprint.cmp(&b.fingerprint))
    });
    Ok(out)
}

fn b64(v: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(v)
}

/// `v` written as JSON once, for a streamed item.
fn raw<T: serde::Serialize>(v: &T) -> Result<Box<serde_json::value::RawValue>, StoreError> {
    serde_json::value::to_raw_value(v).map_err(|e| StoreError::Remote(e.into()))
}

fn to_value<T: serde::Serialize>(v: T) -> Result<Value, StoreError> {
    serde_json::to_value(v).map_err(|e| StoreError::Remote(e.into()))
}

/// Answers one request: single values directly, lists streamed item by item from a blocking
/// task (sled is blocking) through a bounded channel.
async fn answer<W: AsyncWriteExt + Unpin>(
    op: Op,
    store: &Arc<dyn Store>,
    info: &InfoFn,
    w: &mut W,
) -> io::Result<()> {
    if let Op::Hello = op {
        let mut v = info();
        if let Value::Object(m) = &mut v {
            m.insert("version".into(), json!(PROTOCOL_VERSION));
            m.insert("revision".into(), json!(PROTOCOL_REVISION));
        }
        return write_reply(w, &Reply::Done(v)).await;
    }
    let streams_findings = matches!(
        op,
        Op::Query { .. } | Op::QueryEach { .. } | Op::ForEach | Op::SeenBetween { .. }
    );
    let (tx, mut rx) = mpsc::channel::<Result<Reply, StoreError>>(256);
    let store = store.clone();
    let job = crate::store::bridge::spawn(move || {
        let item = |tx: &mpsc::Sender<Result<Reply, StoreError>>,
                    v: Box<serde_json::value::RawValue>| {
            tx.blocking_send(Ok(Reply::Item(v)))
                .map_err(|_| StoreError::Remote("client went away".into()))
        };
        let done: Result<Value, StoreError> = (|| match op {
            Op::Hello => Ok(Value::Null),
            Op::Get { fingerprint } => to_value(store.get(&fingerprint)?),
            Op::Count => to_value(store.count()?),
            Op::StateGet { key } => Ok(match store.state_get(&key)? {
                Some(b) => Value::String(b64(&b)),
                None => Value::Null,
            }),
            Op::Query {
                query,
                since,
                include_resolved,
                limit,
            } => {
                let opts = QueryOptions {
                    since,
                    include_resolved,
                    limit,
                };
                for f in store.query(&query.into(), &opts)? {
                    item(&tx, raw(&f)?)?;
                }
                Ok(Value::Null)
            }
            Op::QueryEach {
                query,
                since,
                include_resolved,
            } => {
                let opts = QueryOptions {
                    since,
                    include_resolved,
                    limit: None,
                };
                store.query_each(&query.into(), &opts, &mut |f| {
                    item(&tx, raw(&f)?)?;
                    Ok(ControlFlow::Continue(()))
                })?;
                Ok(Value::Null)
            }
            Op::ForEach => {
                store.for_each(&mut |f| item(&tx, raw(&f)?))?;
                Ok(Value::Null)
            }
            Op::SeenBetween { from, to } => {
                for f in seen_between(store.as_ref(), from, to)? {
                    item(&tx, raw(&f)?)?;
                }
                Ok(Value::Null)
            }
            Op::Runs { source, limit } => {
                for r in store.runs(source.as_deref(), limit)? {
                    item(&tx, raw(&r)?)?;
                }
                Ok(Value::Null)
            }
            Op::StateScan { prefix } => {
                for (k, v) in store.state_scan(&prefix)? {
                    item(&tx, raw(&(k, b64(&v)))?)?;
                }
                Ok(Value::Null)
            }
        })();
        let last = match done {
            Ok(v) => Reply::Done(v),
            Err(e) => Reply::Error {
                message: e.to_string(),
            },
        };
        let _ = tx.blocking_send(Ok(last));
    });
    let mut result = Ok(());
    while let Some(msg) = rx.recv().await {
        let reply = match msg {
            Ok(r) => r,
            Err(e) => Reply::Error {
                message: e.to_string(),
            },
        };
        if let Err(e) = write_reply(w, &reply).await {
            result = Err(e);
            break;
        }
    }
    drop(rx); // a producer still sending sees the client gone and stops
    let _ = job.await;
    if streams_findings {
        give_back_memory();
    }
    result
}

/// Returns the heap freed by an answer to the system. glibc keeps freed memory in its arenas
/// (one per thread that allocated: the blocking pool's threads each have their own), so without
/// this a daemon that streamed a large answer stays at its peak. `malloc_trim` releases the free
/// pages of every arena; it takes well under a millisecond when little is free.
fn give_back_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks and releases glibc's own free lists; it takes no pointer.
    unsafe {
        libc::malloc_trim(0);
    }
}
