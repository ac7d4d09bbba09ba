//! The daemon's side of the local socket: binds `<data_dir>/outwatch.sock` inside the store
//! folder (mode 0700, so only the owner can reach it; the socket itself is 0600, and a stale file
//! from a crashed daemon is replaced) and answers read requests from the store it owns.
//! See [`super::protocol`] for the wire format.
//!
//! No client can hold the socket shut ([`Limits`]):
//! - at most [`MAX_CONNECTIONS`] sessions; each is its own task, so a stalled one never delays
//!   another;
//! - a session must send its first request within [`FIRST_REQUEST`] and each later one within
//!   [`IDLE`], and a session without a request in flight ends once it is [`SESSION`] old
//!   (a client that sends `hello` every few seconds keeps no slot for ever);
//! - when every slot is taken, the session idle the longest (one waiting for its next request)
//!   is closed to let a new connection in: a lookup is served ahead of idle sessions; only when
//!   every session has a request in flight does a new one wait for a slot;
//! - a reply the client does not read is abandoned after [`WRITE_STALL`] without progress.
//!
//! A client's kept connection may thus be closed between requests; `RemoteStore` (`remote.rs`)
//! then asks again on a new one (every request is a read).

use std::collections::HashMap;
use std::io;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader, BufWriter};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{Notify, mpsc, watch};
use tokio::time::Instant;

use super::protocol::{
    MAX_REQUEST_BYTES, Op, PROTOCOL_REVISION, PROTOCOL_VERSION, Reply, Request, SOCKET_NAME,
};
use super::reply::{Lines, Out, error_reply};
use crate::store::{QueryOptions, Store, StoreError};

/// Sessions served at the same time (see the module comment for what happens past it).
pub const MAX_CONNECTIONS: usize = 256;
/// A new connection that has not sent a whole request line by then is closed.
pub const FIRST_REQUEST: Duration = Duration::from_secs(2);
/// A connection that sends no further whole request line for this long is closed.
pub const IDLE: Duration = Duration::from_secs(10);
/// A session this old is closed when it has no request in flight (a request is never cut).
pub const SESSION: Duration = Duration::from_secs(60);
/// A reply that makes no progress for this long (the client does not read) is abandoned.
pub const WRITE_STALL: Duration = Duration::from_secs(5);
/// A write whose client sends none of the data it waits for (the next finding of an import)
/// for this long is abandoned (nothing of a whole-or-nothing unit is stored). Generous: the
/// client reads its files, or mails' links, as it sends.
pub const DATA_STALL: Duration = Duration::from_secs(600);

/// What a process serves on its socket: the daemon takes writes too; a command that holds
/// the store for a while (`fetch`, `run --once`, an import) answers reads only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Read,
    ReadWrite,
}

/// The socket's limits: [`Limits::default`] in the daemon; tests set short ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_connections: usize,
    pub first_request: Duration,
    pub idle: Duration,
    pub session: Duration,
    pub write_stall: Duration,
    /// How long a write waits for its client's next data line ([`DATA_STALL`]).
    pub data_stall: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: MAX_CONNECTIONS,
            first_request: FIRST_REQUEST,
            idle: IDLE,
            session: SESSION,
            write_stall: WRITE_STALL,
            data_stall: DATA_STALL,
        }
    }
}

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

/// Serves connections with the default [`Limits`] until `stop` turns true.
pub async fn serve(
    listener: UnixListener,
    store: Arc<dyn Store>,
    info: InfoFn,
    stop: watch::Receiver<bool>,
    access: Access,
) {
    serve_with(listener, store, info, stop, Limits::default(), access).await
}

/// Serves connections within `limits` until `stop` turns true.
pub async fn serve_with(
    listener: UnixListener,
    store: Arc<dyn Store>,
    info: InfoFn,
    mut stop: watch::Receiver<bool>,
    limits: Limits,
    access: Access,
) {
    let sessions = Arc::new(Sessions::new(limits.max_connections.max(1)));
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = stop.changed() => return,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(e) => {
                tracing::warn!(error = %e, "accepting a socket connection failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let slot = tokio::select! {
            s = sessions.clone().admit() => s,
            _ = stop.changed() => return,
        };
        let (store, info) = (store.clone(), info.clone());
        tokio::spawn(async move {
            if let Err(e) = handle(stream, store, info, limits, access, &slot).await {
                tracing::debug!(error = %e, "socket client went away");
            }
            drop(slot);
        });
    }
}

/// The sessions that hold a slot: when or whether each waits for its next request.
struct Sessions {
    max: usize,
    open: Mutex<Open>,
    /// A slot was given back.
    freed: Notify,
}

#[derive(Default)]
struct Open {
    next_id: u64,
    by_id: HashMap<u64, Session>,
}

struct Session {
    /// Since when it waits for its next request; `None` while a request is in flight, and
    /// from admission until its task has looked whether the client has already sent one (a
    /// burst of connections would otherwise close each new session to admit the next, before
    /// it read the request waiting in its socket, and reset the client).
    idle_since: Option<Instant>,
    /// Told when the session is closed to make room.
    close: Arc<Notify>,
}

impl Sessions {
    fn new(max: usize) -> Self {
        Sessions {
            max,
            open: Mutex::new(Open::default()),
            freed: Notify::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Open> {
        self.open.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A slot for a new connection: a free one, else the one of the session idle the longest
    /// (which is told to close), else the first one given back.
    async fn admit(self: Arc<Self>) -> Slot {
        loop {
            let freed = self.freed.notified();
            tokio::pin!(freed);
            freed.as_mut().enable();
            {
                let mut open = self.lock();
                if open.by_id.len() >= self.max {
                    let oldest = open
                        .by_id
                        .iter()
                        .filter_map(|(id, s)| s.idle_since.map(|t| (t, *id)))
                        .min();
                    if let Some((_, id)) = oldest
                        && let Some(s) = open.by_id.remove(&id)
                    {
                        tracing::debug!("all socket slots taken: closing the longest idle session");
                        s.close.notify_one();
                    }
                }
                if open.by_id.len() < self.max {
                    let id = open.next_id;
                    open.next_id += 1;
                    let close = Arc::new(Notify::new());
                    open.by_id.insert(
                        id,
                        Session {
                            idle_since: None,
                            close: close.clone(),
                        },
                    );
                    return Slot {
                        id,
                        sessions: self.clone(),
                        close,
                    };
                }
            }
            freed.await;
        }
    }
}

/// A session's hold on a slot; given back when dropped.
struct Slot {
    id: u64,
    sessions: Arc<Sessions>,
    close: Arc<Notify>,
}

impl Slot {
    /// The session waits for its next request (from now), or (`false`) has one in flight. A
    /// session turning idle may be closed for a connection waiting to be admitted: it is told.
    fn set_idle(&self, idle: bool) {
        if let Some(s) = self.sessions.lock().by_id.get_mut(&self.id) {
            s.idle_since = idle.then(Instant::now);
        }
        if idle {
            self.sessions.freed.notify_one();
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.sessions.lock().by_id.remove(&self.id);
        self.sessions.freed.notify_one();
    }
}

/// One session: requests read and answered in turn until the client leaves, a deadline passes
/// (first request, idle, session age) or the slot is taken back for a new connection.
async fn handle(
    stream: UnixStream,
    store: Arc<dyn Store>,
    info: InfoFn,
    limits: Limits,
    access: Access,
    slot: &Slot,
) -> io::Result<()> {
    let opened = Instant::now();
    let (r, w) = stream.into_split();
    let mut r = BufReader::new(r);
    let mut out = Out {
        w: BufWriter::new(w),
        stall: limits.write_stall,
    };
    let mut deadline = limits.first_request;
    loop {
        // A request already sent (the first one of a connection admitted from a backlog, or the
        // next one of a client that does not wait) is in flight: only a session that waits
        // for its client may be closed to make room.
        slot.set_idle(r.buffer().is_empty() && !has_input(r.get_ref().as_ref()));
        // No request in flight: the session may end here, at the latest when it is too old.
        let age_left = (opened + limits.session).saturating_duration_since(Instant::now());
        let mut line = Vec::new();
        let mut limited = (&mut r).take(MAX_REQUEST_BYTES as u64 + 1);
        let read = tokio::select! {
            read = tokio::time::timeout(
                deadline.min(age_left),
                limited.read_until(b'\n', &mut line),
            ) => read,
            _ = slot.close.notified() => return Ok(()), // closed to make room
        };
        deadline = limits.idle;
        let n = match read {
            Err(_) => return Ok(()), // idle, or the session's time is up
            Ok(n) => n?,
        };
        if n == 0 {
            return Ok(());
        }
        slot.set_idle(false);
        match parse_request(&line) {
            // A write ends the session: its data lines and the reply are the whole exchange.
            Ok(req) if req.op.writes() => {
                if access == Access::Read {
                    return out
                        .error(format!(
                            "this process (pid {}) holds the store only for a while and answers \
                             reads only; writes wait until it lets go",
                            std::process::id()
                        ))
                        .await;
                }
                super::writes::answer_write(req.op, &mut r, &store, &mut out, limits.data_stall)
                    .await?;
                return out.flush().await;
            }
            Ok(req) => {
                answer(req.op, &store, &info, &mut out).await?;
                out.flush().await?;
            }
            Err(Bad::Fatal(message)) => return out.error(message).await,
            Err(Bad::Recoverable(message)) => out.error(message).await?,
        }
    }
}

/// Whether the client has sent bytes the session has not read yet (asked of the socket itself:
/// a new connection's readiness reaches tokio only on the driver's next turn).
fn has_input(stream: &UnixStream) -> bool {
    use std::os::fd::AsRawFd;
    let mut byte = [0u8; 1];
    // SAFETY: `recv` writes at most one byte into `byte`, a valid buffer of that length; the
    // descriptor is borrowed from `stream`, open for the call. MSG_PEEK leaves the byte queued
    // and MSG_DONTWAIT never blocks.
    let n = unsafe {
        libc::recv(
            stream.as_raw_fd(),
            byte.as_mut_ptr().cast(),
            1,
            libc::MSG_PEEK | libc::MSG_DONTWAIT,
        )
    };
    n > 0
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

/// Why a request line is refused: `Fatal` ends the session (the stream may be mid-line).
enum Bad {
    Fatal(String),
    Recoverable(String),
}

fn parse_request(line: &[u8]) -> Result<Request, Bad> {
    if line.len() > MAX_REQUEST_BYTES {
        return Err(Bad::Fatal(format!(
            "request larger than {MAX_REQUEST_BYTES} bytes"
        )));
    }
    if line.last() != Some(&b'\n') {
        return Err(Bad::Fatal("request not terminated by a newline".into()));
    }
    let req: Request = serde_json::from_slice(line).map_err(|e| {
        // Say which version we speak even when the request is unreadable.
        Bad::Recoverable(format!(
            "bad request ({e}); this daemon speaks protocol v{PROTOCOL_VERSION}"
        ))
    })?;
    if req.v != PROTOCOL_VERSION {
        return Err(Bad::Recoverable(format!(
            "protocol v{} is not supported: this daemon speaks v{PROTOCOL_VERSION} \
             (use the outwatch binary that runs the daemon)",
            req.v
        )));
    }
    Ok(req)
}

fn b64(v: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(v)
}

fn to_value<T: serde::Serialize>(v: T) -> Result<Value, StoreError> {
    serde_json::to_value(v).map_err(|e| StoreError::Remote(e.into()))
}

/// Answers one request: single values directly, lists streamed from a blocking task (sled is
/// blocking) through a bounded channel of chunks of reply lines ([`Lines`]).
async fn answer(op: Op, store: &Arc<dyn Store>, info: &InfoFn, out: &mut Out) -> io::Result<()> {
    if let Op::Hello = op {
        let mut v = info();
        if let Value::Object(m) = &mut v {
            m.insert("version".into(), json!(PROTOCOL_VERSION));
            m.insert("revision".into(), json!(PROTOCOL_REVISION));
        }
        return out.reply(&Reply::Done(v)).await;
    }
    let streams_findings = matches!(
        op,
        Op::Query { .. }
            | Op::QueryEach { .. }
            | Op::Top { .. }
            | Op::Select { .. }
            | Op::ForEach
            | Op::SeenBetween { .. }
    );
    let (tx, mut rx) = mpsc::channel::<Vec<u8>>(16);
    let store = store.clone();
    let job = crate::store::bridge::spawn(move || {
        let mut lines = Lines::new(tx);
        let last = match run_op(op, store.as_ref(), &mut lines) {
            Ok(v) => Reply::Done(v),
            Err(e) => error_reply(&e),
        };
        lines.finish(&last);
    });
    let mut result = Ok(());
    while let Some(chunk) = rx.recv().await {
        if let Err(e) = out.chunk(&chunk).await {
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

/// Runs a request on the store (on a blocking thread), streaming list items to `tx`; returns
/// the final value (`null` after a list).
fn run_op(op: Op, store: &dyn Store, tx: &mut Lines) -> Result<Value, StoreError> {
    match op {
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
                tx.item(&f)?;
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
                tx.item(&f)?;
                Ok(ControlFlow::Continue(()))
            })?;
            Ok(Value::Null)
        }
        Op::Top {
            query,
            since,
            include_resolved,
            limit,
        } => {
            let opts = QueryOptions {
                since,
                include_resolved,
                limit: None,
            };
            let limit = limit.min(super::protocol::MAX_TOP);
            let (top, total) = store.most_severe(&query.into(), &opts, limit, &mut || {})?;
            for f in top {
                tx.item(&f)?;
            }
            Ok(json!({ "total": total }))
        }
        Op::Select { filter } => {
            store.select(&filter, &mut |f| {
                tx.item(&f)?;
                Ok(ControlFlow::Continue(()))
            })?;
            Ok(Value::Null)
        }
        Op::ForEach => {
            store.for_each(&mut |f| tx.item(&f))?;
            Ok(Value::Null)
        }
        Op::SeenBetween { from, to } => {
            for f in seen_between(store, from, to)? {
                tx.item(&f)?;
            }
            Ok(Value::Null)
        }
        Op::Runs { source, limit } => {
            for r in store.runs(source.as_deref(), limit)? {
                tx.item(&r)?;
            }
            Ok(Value::Null)
        }
        Op::StateScan { prefix } => {
            for (k, v) in store.state_scan(&prefix)? {
                tx.item(&(k, b64(&v)))?;
            }
            Ok(Value::Null)
        }
        _ => Err(StoreError::Refused(
            "a write is served only as a write (a bug)".into(),
        )),
    }
}

/// Returns the heap freed by an answer to the system. glibc keeps freed memory in its arenas
/// (one per thread that allocated: the blocking pool's threads each have their own), so without
/// this a daemon that streamed a large answer stays at its peak. `malloc_trim` releases the free
/// pages of every arena: cheap when little is free, but it walks the whole heap and holds each
/// arena's lock, so it runs on the blocking pool (never on a runtime thread, where it stalled
/// every session of a large heap) and once at a time (sessions ending together share one run).
fn give_back_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        use std::sync::atomic::{AtomicBool, Ordering};
        static TRIMMING: AtomicBool = AtomicBool::new(false);
        if TRIMMING.swap(true, Ordering::AcqRel) {
            return;
        }
        tokio::task::spawn_blocking(|| {
            // SAFETY: malloc_trim only walks and releases glibc's own free lists; it takes no
            // pointer.
            unsafe {
                libc::malloc_trim(0);
            }
            TRIMMING.store(false, Ordering::Release);
        });
    }
}
