//! [`RemoteStore`]: the [`Store`] a read command gets while `outwatch run` holds the store. Reads
//! are forwarded over the daemon's socket; writes are refused with [`StoreError::Locked`] (the
//! daemon is the only writer), which the CLI turns into exit code 4.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::ops::ControlFlow;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use base64::Engine as _;
use chrono::{DateTime, Utc};
use serde_json::Value;

use super::protocol::{MAX_REPLY_BYTES, MAX_REQUEST_BYTES, Op, PROTOCOL_VERSION, Reply, Request};
use super::socket::socket_path;
use crate::finding::Finding;
use crate::store::{
    FetchRun, Filter, Flow, IngestStats, Query, QueryOptions, QueryTotals, Result, Store,
    StoreError, Unit,
};

/// How long a client waits for one reply line.
const READ_TIMEOUT: Duration = Duration::from_secs(120);

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
    /// Connects to the daemon serving `data_dir`, or `None` when none answers (no socket file,
    /// a stale one, or something that does not speak the protocol).
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
        let mut result = Self::exchange(conn, op, on_item, &mut answered, &mut stopped);
        if result.is_err() && reused && !answered {
            // The daemon closes connections left idle: a kept one may be gone before it
            // answered anything. Every request is a read, so asking again is safe.
            *guard = Some(open_conn(&self.socket).map_err(engine)?);
            let conn = guard.as_mut().expect("connected");
            result = Self::exchange(conn, op, on_item, &mut answered, &mut stopped);
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
                Reply::Error { message } => {
                    return Err(engine(format!("the daemon answered: {message}")));
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

impl RemoteStore {
    /// Findings whose `last_seen` lies in `[from, to)`, in time order (the socket's
    /// `seen_between`).
    pub fn seen_between(&self, from: DateTime<Utc>, to: DateTime<Utc>) -> Result<Vec<Finding>> {
        self.list(&Op::SeenBetween { from, to })
    }
}

impl Store for RemoteStore {
    fn ingest_unit(&self, _unit: Unit<'_>) -> Result<IngestStats> {
        Err(self.locked())
    }

    fn modify(
        &self,
        _fingerprints: &[String],
        _change: &mut dyn FnMut(&mut Finding) -> bool,
    ) -> Result<usize> {
        Err(self.locked())
    }

    fn resolve_stale(
        &self,
        _source: &str,
        _feed: Option<&str>,
        _cutoff: DateTime<Utc>,
        _now: DateTime<Utc>,
    ) -> Result<usize> {
        Err(self.locked())
    }

    fn open_and_stale(&self, _source: &str, _cutoff: DateTime<Utc>) -> Result<(usize, usize)> {
        Err(self.locked())
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

    fn record_run(&self, _run: &FetchRun) -> Result<()> {
        Err(self.locked())
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

    fn state_put(&self, _key: &str, _value: Option<&[u8]>) -> Result<()> {
        Err(self.locked())
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

    /// Nothing to flush here: the daemon flushes after every run.
    fn flush(&self) -> Result<()> {
        Ok(())
    }
}
