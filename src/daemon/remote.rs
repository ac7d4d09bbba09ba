//! [`RemoteStore`]: the [`Store`] a command gets while another outwatch process holds the store.
//! Reads are forwarded over that process's socket. Writes go to the daemon (`outwatch run`,
//! protocol revision 4: its `hello` says `writes`) as write requests, one per store method
//! ([`super::protocol`]): the command runs its own code here, reading its own files and
//! printing its own output, and only the store's work crosses. A process that answers reads
//! only (a `fetch` holding the store for a while, an older daemon) refuses them with
//! [`StoreError::Locked`] (exit code 4); `App::open_store` waits for such a process instead.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::ops::ControlFlow;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use base64::Engine as _;
use chrono::{DateTime, Utc};
use serde_json::Value;

use super::protocol::{
    MAX_REPLY_BYTES, MAX_REQUEST_BYTES, Op, PROTOCOL_VERSION, Reply, Request, WireReading,
};
use super::socket::socket_path;
use crate::finding::Finding;
use crate::store::{
    FetchRun, Filter, Findings, Flow, IngestStats, Query, QueryOptions, QueryTotals, Reading,
    Result, Store, StoreError, Unit,
};

/// How long a client waits for one reply line.
const READ_TIMEOUT: Duration = Duration::from_secs(120);
/// How long a write waits for its answer (the daemon stores a large import after its end)
/// and for the daemon to take its next line (it spills and merges while it reads).
const WRITE_TIMEOUT: Duration = Duration::from_secs(3600);
/// How often buffered data lines of a write go out at the latest.
const FLUSH_EVERY: Duration = Duration::from_secs(1);
/// How many fingerprints one `modify` request carries.
const MODIFY_BATCH: usize = 100_000;

struct Conn {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
}

/// A store served by the running daemon.
pub struct RemoteStore {
    socket: PathBuf,
    data_dir: PathBuf,
    conn: Mutex<Option<Conn>>,
    hello: Value,
    /// The daemon's protocol revision (its `hello`).
    revision: u32,
}

impl std::fmt::Debug for RemoteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteStore")
            .field("socket", &self.socket)
            .finish()
    }
}

fn engine(e: impl Into<crate::store::Cause>) -> StoreError {
    StoreError::Remote(e.into())
}

fn open_conn(socket: &Path) -> io::Result<Conn> {
    let s = UnixStream::connect(socket)?;
    s.set_read_timeout(Some(READ_TIMEOUT))?;
    s.set_write_timeout(Some(Duration::from_secs(10)))?;
    Ok(Conn {
        reader: BufReader::new(s.try_clone()?),
        writer: s,
    })
}

fn b64d(v: &Value) -> Result<Vec<u8>> {
    let s = v
        .as_str()
        .ok_or_else(|| engine("expected a base64 string"))?;
    base64::engine::general_purpose::STANDARD
        .decode(s)
        .map_err(engine)
}

fn from_value<T: serde::de::DeserializeOwned>(v: Value) -> Result<T> {
    serde_json::from_value(v).map_err(engine)
}

/// A streamed item decoded into its type.
fn from_raw<T: serde::de::DeserializeOwned>(v: &serde_json::value::RawValue) -> Result<T> {
    serde_json::from_str(v.get()).map_err(engine)
}

impl RemoteStore {
    /// Connects to the process serving `data_dir`, or `None` when none answers (no socket file,
    /// a stale one, something that does not speak the protocol, or a command that has let go of
    /// the store).
    pub fn connect(data_dir: &Path) -> Option<RemoteStore> {
        let socket = socket_path(data_dir);
        let conn = open_conn(&socket).ok()?;
        let mut r = RemoteStore {
            socket,
            data_dir: data_dir.to_path_buf(),
            conn: Mutex::new(Some(conn)),
            hello: Value::Null,
            revision: 0,
        };
        match r.call(&Op::Hello, &mut |_| Ok(ControlFlow::Continue(()))) {
            // A `hello` without a version: the process has let go of the store.
            Ok(h) if r.hello_of(&h).version == 0 => None,
            Ok(h) => {
                r.revision = r.hello_of(&h).revision;
                r.hello = h;
                Some(r)
            }
            Err(e) => {
                tracing::warn!(socket = %r.socket.display(), error = %e, "a socket exists but no daemon answers on it");
                None
            }
        }
    }

    /// What the daemon said about itself (pid, start, jobs, how it set the sources up).
    pub fn hello(&self) -> super::protocol::Hello {
        self.hello_of(&self.hello)
    }

    fn hello_of(&self, v: &Value) -> super::protocol::Hello {
        serde_json::from_value(v.clone()).unwrap_or_default()
    }

    fn locked(&self) -> StoreError {
        StoreError::Locked {
            path: self.data_dir.display().to_string(),
        }
    }

    /// Sends one request and reads its replies, handing streamed items to `on_item`. When
    /// `on_item` stops, the rest of the answer is not read: the connection is dropped (the
    /// daemon sees the client gone and stops) and `Null` returned.
    fn call(
        &self,
        op: &Op,
        on_item: &mut dyn FnMut(&serde_json::value::RawValue) -> Flow,
    ) -> Result<Value> {
        let mut guard = self.conn.lock().map_err(|_| engine("poisoned"))?;
        let reused = guard.is_some();
        if !reused {
            *guard = Some(open_conn(&self.socket).map_err(engine)?);
        }
        let mut answered = false;
        let conn = guard.as_mut().expect("connected");
        let mut stopped = false;
        let dir = &self.data_dir;
        let mut result = Self::exchange(conn, op, on_item, &mut answered, &mut stopped, dir);
        if result.is_err() && reused && !answered {
            // The daemon closes connections left idle: a kept one may be gone before it
            // answered anything. Every request is a read, so asking again is safe.
            *guard = Some(open_conn(&self.socket).map_err(engine)?);
            let conn = guard.as_mut().expect("connected");
            result = Self::exchange(conn, op, on_item, &mut answered, &mut stopped, dir);
        }
        if result.is_err() || stopped {
            // The stream may be mid-answer: never reuse it.
            *guard = None;
        }
        result
    }

    fn exchange(
        conn: &mut Conn,
        op: &Op,
        on_item: &mut dyn FnMut(&serde_json::value::RawValue) -> Flow,
        answered: &mut bool,
        stopped: &mut bool,
        data_dir: &Path,
    ) -> Result<Value> {
        let req = Request {
            v: PROTOCOL_VERSION,
            op: op.clone(),
        };
        let mut line = serde_json::to_vec(&req).map_err(engine)?;
        line.push(b'\n');
        conn.writer.write_all(&line).map_err(engine)?;
        conn.writer.flush().map_err(engine)?;
        let mut buf = Vec::new();
        loop {
            buf.clear();
            let n = (&mut conn.reader)
                .take(MAX_REPLY_BYTES as u64 + 1)
                .read_until(b'\n', &mut buf)
                .map_err(engine)?;
            if n == 0 {
                return Err(engine("the daemon closed the connection"));
            }
            *answered = true;
            if buf.len() > MAX_REPLY_BYTES {
                return Err(engine(format!(
                    "a reply larger than {MAX_REPLY_BYTES} bytes"
                )));
            }
            match serde_json::from_slice::<Reply>(&buf).map_err(engine)? {
                Reply::Item(v) => {
                    if on_item(&v)?.is_break() {
                        *stopped = true;
                        return Ok(Value::Null);
                    }
                }
                Reply::Done(v) => return Ok(v),
                Reply::Error { message, kind } => {
                    return Err(served_error(message, kind, data_dir));
                }
            }
        }
    }

    fn list<T: serde::de::DeserializeOwned>(&self, op: &Op) -> Result<Vec<T>> {
        let mut out = Vec::new();
        self.call(op, &mut |v| {
            out.push(from_raw(v)?);
            Ok(ControlFlow::Continue(()))
        })?;
        Ok(out)
    }
}

/// A failed request's error as the store error it was in the daemon, so that the command tells
/// it as it would without the daemon (a failed reader, a full disk).
fn served_error(message: String, kind: Option<String>, data_dir: &Path) -> StoreError {
    match kind.as_deref() {
        Some("unread") => StoreError::Unread(crate::store::ReadError::Unreadable(message)),
        Some("disk_full") => StoreError::DiskFull {
            path: data_dir.display().to_string(),
            free: crate::diskspace::free_bytes(data_dir),
        },
        Some("refused") => StoreError::Refused(message.trim_start_matches("refused: ").into()),
        _ => engine(format!("the daemon answered: {message}")),
    }
}

/// The client's end of a write request: data lines out, replies in.
struct WriteConn {
    data_dir: PathBuf,
    /// When buffered data lines last went out.
    flushed: std::time::Instant,
    out: std::io::BufWriter<UnixStream>,
    reader: BufReader<UnixStream>,
}

impl WriteConn {
    /// One data line: `{"<tag>":<value as JSON>}`, written from a borrowed value.
    fn data<T: serde::Serialize + ?Sized>(&mut self, tag: &str, v: &T) -> Result<()> {
        // A slow reader (a large file, mail links downloaded) still shows progress: what is
        // buffered goes out at least once a second, within the daemon's data-stall limit.
        if self.flushed.elapsed() >= FLUSH_EVERY {
            self.out.flush().map_err(engine)?;
            self.flushed = std::time::Instant::now();
        }
        let w = &mut self.out;
        let mut line = Vec::with_capacity(256);
        line.extend_from_slice(b"{\"");
        line.extend_from_slice(tag.as_bytes());
        line.extend_from_slice(b"\":");
        serde_json::to_writer(&mut line, v).map_err(engine)?;
        line.extend_from_slice(b"}\n");
        w.write_all(&line).map_err(engine)
    }

    fn end(&mut self) -> Result<()> {
        self.out.write_all(b"\"end\"\n").map_err(engine)?;
        self.out.flush().map_err(engine)
    }

    /// Reads replies to the end, answering items (`{"stats":..}`, `{"finding":..}`) by
    /// `on_item`, which may write a data line.
    fn answer(
        &mut self,
        on_item: &mut dyn FnMut(&mut WriteConn, Value) -> Result<()>,
    ) -> Result<Value> {
        let mut buf = Vec::new();
        loop {
            buf.clear();
            let n = (&mut self.reader)
                .take(MAX_REPLY_BYTES as u64 + 1)
                .read_until(b'\n', &mut buf)
                .map_err(engine)?;
            if n == 0 {
                return Err(engine("the daemon closed the connection before answering"));
            }
            match serde_json::from_slice::<Reply>(&buf).map_err(engine)? {
                Reply::Item(v) => {
                    let v: Value = serde_json::from_str(v.get()).map_err(engine)?;
                    on_item(self, v)?;
                    self.out.flush().map_err(engine)?;
                }
                Reply::Done(v) => return Ok(v),
                Reply::Error { message, kind } => {
                    return Err(served_error(message, kind, &self.data_dir));
                }
            }
        }
    }
}

/// A streamed unit's findings, sent as they are read.
struct Sender<'a>(&'a mut WriteConn);

impl crate::store::FindingWriter for Sender<'_> {
    fn view(&mut self, f: &crate::finding::FindingView<'_>) -> Result<()> {
        self.0.data("finding", &f.to_finding())
    }

    fn finding(&mut self, f: &Finding) -> Result<()> {
        self.0.data("finding", f)
    }
}

fn b64e(v: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(v)
}

impl RemoteStore {
    /// Whether this process takes writes (the daemon, revision 4).
    pub fn takes_writes(&self) -> bool {
        self.revision >= super::protocol::WRITES_REVISION && self.hello().writes
    }

    /// Starts a write request on a connection of its own (a write ends its session).
    fn write_request(&self, op: Op) -> Result<WriteConn> {
        if !self.takes_writes() {
            return Err(self.locked());
        }
        let s = UnixStream::connect(&self.socket).map_err(engine)?;
        s.set_read_timeout(Some(WRITE_TIMEOUT)).map_err(engine)?;
        s.set_write_timeout(Some(WRITE_TIMEOUT)).map_err(engine)?;
        let mut c = WriteConn {
            data_dir: self.data_dir.clone(),
            flushed: std::time::Instant::now(),
            reader: BufReader::new(s.try_clone().map_err(engine)?),
            out: std::io::BufWriter::with_capacity(64 << 10, s),
        };
        let mut line = serde_json::to_vec(&Request {
            v: PROTOCOL_VERSION,
            op,
        })
        .map_err(engine)?;
        line.push(b'\n');
        // At once: the daemon closes a connection whose first request does not come soon.
        c.out.write_all(&line).map_err(engine)?;
        c.out.flush().map_err(engine)?;
        Ok(c)
    }

    /// A write request without data lines and without items: its `done` value.
    fn write_simple(&self, op: Op) -> Result<Value> {
        let mut c = self.write_request(op)?;
        c.out.flush().map_err(engine)?;
        c.answer(&mut |_, _| Err(engine("an unexpected item")))
    }
}

impl RemoteStore {
    /// Findings whose `last_seen` lies in `[from, to)`, in time order (the socket's
    /// `seen_between`).
    pub fn seen_between(&self, from: DateTime<Utc>, to: DateTime<Utc>) -> Result<Vec<Finding>> {
        self.list(&Op::SeenBetween { from, to })
    }
}

impl Store for RemoteStore {
    /// Sent to the daemon (revision 4): state, then the findings as they are read (a streamed
    /// unit in bounded memory), then the run-log entry made here from the daemon's counts.
    fn ingest_unit(&self, unit: Unit<'_>) -> Result<IngestStats> {
        let Unit {
            now,
            write,
            findings,
            state,
            mut run,
        } = unit;
        let reading = match &findings {
            Findings::Owned(_) => None,
            Findings::Streamed(_, Reading::WholeOrNothing) => Some(WireReading::WholeOrNothing),
            Findings::Streamed(_, Reading::AsItComes) => Some(WireReading::AsItComes),
        };
        let mut c = self.write_request(Op::Ingest {
            now,
            restore: write == crate::store::Write::Restore,
            reading,
            run: run.is_some(),
        })?;
        for (k, v) in &state {
            c.data("state", &(k, v.as_deref().map(b64e)))?;
        }
        match findings {
            Findings::Owned(v) => {
                for f in &v {
                    c.data("finding", f)?;
                }
                c.end()?;
            }
            Findings::Streamed(read, _) => match read(&mut Sender(&mut c)) {
                Ok(()) => c.end()?,
                Err(crate::store::ReadError::Unreadable(m)) => {
                    c.data("abort", &m)?;
                    c.out.flush().map_err(engine)?;
                }
                Err(crate::store::ReadError::Store(e)) => return Err(*e),
            },
        }
        let done = c.answer(&mut |c, item| {
            let stats = item
                .get("stats")
                .cloned()
                .ok_or_else(|| engine("an unexpected item in an ingest"))?;
            let stats: IngestStats = from_value(stats)?;
            let entry = run
                .take()
                .ok_or_else(|| engine("asked twice for the run-log entry"))?;
            c.data("run", &entry(&stats))
        })?;
        from_value(done)
    }

    /// Sent to the daemon (revision 4), which hands each stored finding back for `change`.
    fn modify(
        &self,
        fingerprints: &[String],
        change: &mut dyn FnMut(&mut Finding) -> bool,
    ) -> Result<usize> {
        let mut written = 0;
        for batch in fingerprints.chunks(MODIFY_BATCH) {
            let mut c = self.write_request(Op::Modify)?;
            for fp in batch {
                c.data("fingerprint", fp)?;
            }
            c.end()?;
            let done = c.answer(&mut |c, item| {
                let f = item
                    .get("finding")
                    .cloned()
                    .ok_or_else(|| engine("an unexpected item in a modify"))?;
                let mut f: Finding = from_value(f)?;
                if change(&mut f) {
                    c.data("changed", &f)
                } else {
                    c.out.write_all(b"\"unchanged\"\n").map_err(engine)
                }
            })?;
            written += from_value::<usize>(done)?;
        }
        Ok(written)
    }

    fn resolve_stale(
        &self,
        source: &str,
        feed: Option<&str>,
        cutoff: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<usize> {
        from_value(self.write_simple(Op::ResolveStale {
            source: source.to_string(),
            feed: feed.map(str::to_string),
            cutoff,
            now,
        })?)
    }

    fn open_and_stale(&self, source: &str, cutoff: DateTime<Utc>) -> Result<(usize, usize)> {
        from_value(self.write_simple(Op::OpenAndStale {
            source: source.to_string(),
            cutoff,
        })?)
    }

    fn get(&self, fingerprint: &str) -> Result<Option<Finding>> {
        from_value(self.call(
            &Op::Get {
                fingerprint: fingerprint.to_string(),
            },
            &mut |_| Ok(ControlFlow::Continue(())),
        )?)
    }

    /// Sorted and cut by the daemon (`query`, which every daemon of protocol v1 serves).
    fn query(&self, q: &Query, opts: &QueryOptions) -> Result<Vec<Finding>> {
        self.list(&Op::query(q, opts))
    }

    /// Streamed from the daemon (`query_each`, revision 1); an older daemon is told apart by its
    /// `hello` and refused with a message saying what to do.
    fn query_each(
        &self,
        q: &Query,
        opts: &QueryOptions,
        f: &mut dyn FnMut(Finding) -> Flow,
    ) -> Result<QueryTotals> {
        if self.revision < 1 {
            return Err(engine(format!(
                "the running daemon (pid {}) is older than this outwatch and cannot stream a \
                 lookup: restart it with this binary (stop it, then `outwatch run`)",
                self.hello().pid
            )));
        }
        let mut totals = QueryTotals::default();
        self.call(&Op::query_each(q, opts), &mut |v| {
            totals.handed += 1;
            let flow = f(from_raw(v)?)?;
            totals.stopped = flow.is_break();
            Ok(flow)
        })?;
        Ok(totals)
    }

    /// Computed by the daemon (`top`, revision 2): only the rows shown cross the socket. An
    /// older daemon streams the whole result to a heap here.
    fn most_severe(
        &self,
        q: &Query,
        opts: &QueryOptions,
        limit: usize,
        found: &mut dyn FnMut(),
    ) -> Result<(Vec<Finding>, usize)> {
        if self.revision < 2 {
            return crate::store::most_severe_by_walk(self, q, opts, limit, found);
        }
        let op = Op::Top {
            query: q.into(),
            since: opts.since,
            include_resolved: opts.include_resolved,
            limit,
        };
        let mut out = Vec::new();
        let done = self.call(&op, &mut |v| {
            if out.is_empty() {
                found();
            }
            out.push(from_raw(v)?);
            Ok(ControlFlow::Continue(()))
        })?;
        let total = done
            .get("total")
            .and_then(Value::as_u64)
            .ok_or_else(|| engine("`top` answered without a total"))?;
        Ok((out, total as usize))
    }

    /// Run by the daemon (`select`, revision 3): only the findings the filter lets through
    /// cross the socket. An older daemon, or a filter too large for one request line (an ASN
    /// announcing thousands of prefixes), walks here over the streamed reads.
    fn select(&self, filter: &Filter, f: &mut dyn FnMut(Finding) -> Flow) -> Result<QueryTotals> {
        let op = Op::Select {
            filter: Box::new(filter.clone()),
        };
        let fits = serde_json::to_vec(&op).is_ok_and(|b| b.len() < MAX_REQUEST_BYTES - 64);
        if self.revision < 3 || !fits {
            return crate::store::select_by_walk(self, filter, f);
        }
        let mut totals = QueryTotals::default();
        self.call(&op, &mut |v| {
            totals.handed += 1;
            let flow = f(from_raw(v)?)?;
            totals.stopped = flow.is_break();
            Ok(flow)
        })?;
        Ok(totals)
    }

    fn for_each(&self, f: &mut dyn FnMut(Finding) -> Result<()>) -> Result<()> {
        self.call(&Op::ForEach, &mut |v| {
            f(from_raw(v)?)?;
            Ok(ControlFlow::Continue(()))
        })?;
        Ok(())
    }

    fn record_run(&self, run: &FetchRun) -> Result<()> {
        let mut c = self.write_request(Op::RecordRun)?;
        c.data("run", run)?;
        c.end()?;
        c.answer(&mut |_, _| Err(engine("an unexpected item")))?;
        Ok(())
    }

    fn runs(&self, source: Option<&str>, limit: usize) -> Result<Vec<FetchRun>> {
        self.list(&Op::Runs {
            source: source.map(str::to_string),
            limit,
        })
    }

    fn state_get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        let v = self.call(
            &Op::StateGet {
                key: key.to_string(),
            },
            &mut |_| Ok(ControlFlow::Continue(())),
        )?;
        if v.is_null() {
            Ok(None)
        } else {
            b64d(&v).map(Some)
        }
    }

    fn state_put(&self, key: &str, value: Option<&[u8]>) -> Result<()> {
        let mut c = self.write_request(Op::StatePut)?;
        c.data("state", &(key, value.map(b64e)))?;
        c.end()?;
        c.answer(&mut |_, _| Err(engine("an unexpected item")))?;
        Ok(())
    }

    fn state_scan(&self, prefix: &str) -> Result<Vec<(String, Vec<u8>)>> {
        let mut out = Vec::new();
        self.call(
            &Op::StateScan {
                prefix: prefix.to_string(),
            },
            &mut |v| {
                let (k, b): (String, Value) = from_raw(v)?;
                out.push((k, b64d(&b)?));
                Ok(ControlFlow::Continue(()))
            },
        )?;
        Ok(out)
    }

    fn count(&self) -> Result<usize> {
        from_value(self.call(&Op::Count, &mut |_| Ok(ControlFlow::Continue(())))?)
    }

    /// The daemon flushes its store when it takes writes; else nothing was written here.
    fn flush(&self) -> Result<()> {
        if self.takes_writes() {
            self.write_simple(Op::Flush)?;
        }
        Ok(())
    }
}
