//! The daemon's side of write requests (protocol revision 4, [`super::protocol`]): a write
//! command run beside the daemon sends the store's writes here, and they are done on the
//! daemon's store as the command would have done them on its own.
//!
//! A write request is followed by the client's data lines ([`Data`]) up to `end`. The session
//! reads them and hands them on through a bounded channel to a blocking task that runs the
//! store method, so an import of a million rows crosses in bounded memory, paced by the store.
//! The task waits at most the socket's `data_stall` limit for each line it needs (the client reads its
//! files as it sends); a session with a write in flight is never closed for its age or to make
//! room, so a long import is not cut while it progresses. The session ends after the reply.

use std::cell::RefCell;
use std::io;
use std::sync::Arc;

use base64::Engine as _;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::net::unix::OwnedReadHalf;
use tokio::sync::mpsc;

use super::protocol::{Data, MAX_DATA_BYTES, Op, Reply, WireReading};
use super::reply::{Lines, Out, error_reply};
use crate::finding::Finding;
use crate::store::{
    FetchRun, Findings, ReadError, Reading, RunOutcome, StateChange, Store, StoreError, Unit, Write,
};

/// The most findings an `ingest` of findings held in memory may send (a streamed unit has no
/// bound: it is read as it comes).
const MAX_OWNED: usize = 2_000_000;
/// Data lines handed to the store task at a time, at most.
const BATCH: usize = 256;

/// Serves one write request: reads the client's data lines and passes them to the store task,
/// writes what the task answers. Returns when the task is done and the client's data is read.
pub(super) async fn answer_write(
    op: Op,
    r: &mut BufReader<OwnedReadHalf>,
    store: &Arc<dyn Store>,
    out: &mut Out,
    stall: std::time::Duration,
) -> io::Result<()> {
    let takes_data = op.takes_data();
    let (in_tx, in_rx) = mpsc::channel::<Vec<Data>>(8);
    let (tx, mut rx) = mpsc::channel::<Vec<u8>>(16);
    let store = store.clone();
    let handle = tokio::runtime::Handle::current();
    let job = crate::store::bridge::spawn(move || {
        let mut lines = Lines::new(tx);
        let input = RefCell::new(Input {
            rx: in_rx,
            pending: std::collections::VecDeque::new(),
            stall,
            handle,
        });
        let last = match run_write(op, store.as_ref(), &input, &mut lines) {
            Ok(v) => Reply::Done(v),
            Err(e) => error_reply(&e),
        };
        lines.finish(&last);
    });
    let mut in_tx = Some(in_tx);
    let mut got_end = !takes_data;
    let mut job_done = false;
    let mut client_gone = false;
    let mut buf = Vec::new();
    let mut batch: Vec<Data> = Vec::with_capacity(BATCH);
    while !(job_done && (got_end || client_gone)) {
        // While the client sends its data, and while it is drained after the job ended early,
        // a line must come within the stall limit; after its `end` it waits for the answer
        // (however long the store takes), sending at most the run-log entry asked for.
        let bounded = !got_end || job_done;
        tokio::select! {
            chunk = rx.recv(), if !job_done => match chunk {
                Some(c) => out.chunk(&c).await?,
                None => {
                    job_done = true;
                    in_tx = None;
                }
            },
            read = read_line(r, &mut buf, bounded.then_some(stall)), if !client_gone => {
                let line = match read {
                    Ok(Some(line)) => line,
                    Ok(None) | Err(_) => {
                        // Gone, silent or not speaking the protocol: the task sees its input
                        // end (a whole-or-nothing unit is not stored).
                        client_gone = true;
                        in_tx = None;
                        continue;
                    }
                };
                let data: Data = match serde_json::from_slice(&line) {
                    Ok(d) => d,
                    Err(e) => {
                        tracing::debug!(error = %e, "a write's data line is unreadable");
                        client_gone = true;
                        in_tx = None;
                        continue;
                    }
                };
                let last = !matches!(data, Data::Finding(_) | Data::State(..) | Data::Fingerprint(_));
                if matches!(data, Data::End | Data::Abort(_)) {
                    got_end = true;
                }
                batch.push(data);
                // Lines go to the task in batches (one channel send and wake-up for many),
                // at once when the task may wait for this one or nothing more has arrived.
                if last || batch.len() >= BATCH || r.buffer().is_empty() {
                    let full = std::mem::replace(&mut batch, Vec::with_capacity(BATCH));
                    if let Some(t) = &in_tx
                        && t.send(full).await.is_err()
                    {
                        in_tx = None; // the task ended early: the rest is drained
                    }
                }
            }
        }
    }
    let _ = job.await;
    Ok(())
}

/// Reads one line into `buf` (kept across calls: a read cut by `select!` goes on where it
/// stopped) and returns it; `None` at the end of the stream. Longer than [`MAX_DATA_BYTES`],
/// or nothing within `stall` when given, is an error.
async fn read_line(
    r: &mut BufReader<OwnedReadHalf>,
    buf: &mut Vec<u8>,
    stall: Option<std::time::Duration>,
) -> io::Result<Option<Vec<u8>>> {
    let read = async {
        let left = (MAX_DATA_BYTES + 1).saturating_sub(buf.len()) as u64;
        (&mut *r).take(left).read_until(b'\n', buf).await
    };
    let n = match stall {
        Some(d) => tokio::time::timeout(d, read)
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "the client sends nothing"))??,
        None => read.await?,
    };
    if buf.len() > MAX_DATA_BYTES {
        return Err(io::Error::other("a data line too long"));
    }
    if n == 0 && !buf.ends_with(b"\n") {
        return Ok(None);
    }
    Ok(Some(std::mem::take(buf)))
}

/// The data lines as the store task reads them.
struct Input {
    rx: mpsc::Receiver<Vec<Data>>,
    /// Lines received and not yet taken.
    pending: std::collections::VecDeque<Data>,
    stall: std::time::Duration,
    handle: tokio::runtime::Handle,
}

impl Input {
    /// The next data line, waiting at most the stall limit.
    fn next(&mut self) -> Result<Data, InputError> {
        if let Some(d) = self.pending.pop_front() {
            return Ok(d);
        }
        let stall = self.stall;
        match self
            .handle
            .block_on(tokio::time::timeout(stall, self.rx.recv()))
        {
            Ok(Some(batch)) => {
                self.pending.extend(batch);
                self.pending.pop_front().ok_or(InputError::EmptyBatch)
            }
            Ok(None) => Err(InputError::Gone),
            Err(_) => Err(InputError::Stalled(stall.as_secs())),
        }
    }
}

/// Why the writing command's data stopped coming.
#[derive(Debug, thiserror::Error)]
enum InputError {
    #[error("an empty batch of data lines")]
    EmptyBatch,
    #[error("the writing command went away before its data ended")]
    Gone,
    #[error("the writing command sent nothing for {0} s")]
    Stalled(u64),
}

impl From<InputError> for StoreError {
    fn from(e: InputError) -> Self {
        StoreError::Remote(e.into())
    }
}

fn remote(m: impl Into<String>) -> StoreError {
    StoreError::Remote(m.into().into())
}

fn to_value<T: serde::Serialize>(v: T) -> Result<Value, StoreError> {
    serde_json::to_value(v).map_err(|e| StoreError::Remote(e.into()))
}

fn state_change(key: String, value: Option<String>) -> Result<StateChange, StoreError> {
    let value = match value {
        Some(b) => Some(
            base64::engine::general_purpose::STANDARD
                .decode(b)
                .map_err(|e| remote(format!("a state value that is not base64: {e}")))?,
        ),
        None => None,
    };
    Ok((key, value))
}

/// Waits for `end` (a request's data must be complete before it is done).
fn expect_end(input: &RefCell<Input>) -> Result<(), StoreError> {
    match input.borrow_mut().next()? {
        Data::End => Ok(()),
        Data::Abort(m) => Err(StoreError::Unread(ReadError::Unreadable(m))),
        _ => Err(remote("a data line where `end` was expected")),
    }
}

/// Runs one write request on the store (on a blocking thread).
fn run_write(
    op: Op,
    store: &dyn Store,
    input: &RefCell<Input>,
    lines: &mut Lines,
) -> Result<Value, StoreError> {
    match op {
        Op::Ingest {
            now,
            restore,
            reading,
            run,
        } => ingest(store, input, lines, now, restore, reading, run),
        Op::Modify => {
            let mut fps = Vec::new();
            loop {
                match input.borrow_mut().next()? {
                    Data::Fingerprint(fp) if fps.len() < MAX_OWNED => fps.push(fp),
                    Data::Fingerprint(_) => {
                        return Err(remote(format!(
                            "more than {MAX_OWNED} findings in one modify"
                        )));
                    }
                    Data::End => break,
                    Data::Abort(m) => return Err(StoreError::Unread(ReadError::Unreadable(m))),
                    _ => return Err(remote("a data line other than a fingerprint in a modify")),
                }
            }
            // The change is the client's: each stored finding goes to it, and its answer is
            // written (or not) within the store's atomic change of that finding.
            let mut failed = None;
            let n = store.modify(&fps, &mut |cur: &mut Finding| {
                if failed.is_some() {
                    return false;
                }
                let asked = lines
                    .item(&json!({ "finding": &*cur }))
                    .and_then(|()| lines.send())
                    .map_err(|e| e.to_string());
                match asked.and_then(|()| input.borrow_mut().next().map_err(|e| e.to_string())) {
                    Ok(Data::Changed(f)) => {
                        *cur = *f;
                        true
                    }
                    Ok(Data::Unchanged) => false,
                    Ok(_) => {
                        failed = Some("an answer other than changed or unchanged".to_string());
                        false
                    }
                    Err(e) => {
                        failed = Some(e);
                        false
                    }
                }
            })?;
            match failed {
                Some(e) => Err(remote(format!("{e} (written before: {n})"))),
                None => to_value(n),
            }
        }
        Op::ResolveStale {
            source,
            feed,
            cutoff,
            now,
        } => to_value(store.resolve_stale(&source, feed.as_deref(), cutoff, now)?),
        Op::OpenAndStale { source, cutoff } => to_value(store.open_and_stale(&source, cutoff)?),
        Op::RecordRun => {
            let run = match input.borrow_mut().next()? {
                Data::Run(r) => r,
                _ => return Err(remote("a record_run without its run")),
            };
            expect_end(input)?;
            store.record_run(&run)?;
            Ok(Value::Null)
        }
        Op::StatePut => {
            let (key, value) = match input.borrow_mut().next()? {
                Data::State(k, v) => state_change(k, v)?,
                _ => return Err(remote("a state_put without its state")),
            };
            expect_end(input)?;
            store.state_put(&key, value.as_deref())?;
            Ok(Value::Null)
        }
        Op::Flush => {
            store.flush()?;
            Ok(Value::Null)
        }
        _ => Err(remote("a read served as a write (a bug)")),
    }
}

/// `ingest`: state lines, then findings held or streamed into the store's writer, then the
/// run-log entry asked of the client once the counts are known.
#[allow(clippy::too_many_arguments)]
fn ingest(
    store: &dyn Store,
    input: &RefCell<Input>,
    lines: &mut Lines,
    now: chrono::DateTime<chrono::Utc>,
    restore: bool,
    reading: Option<WireReading>,
    run: bool,
) -> Result<Value, StoreError> {
    let mut state = Vec::new();
    let first = loop {
        match input.borrow_mut().next()? {
            Data::State(k, v) => state.push(state_change(k, v)?),
            other => break other,
        }
    };
    let findings = match reading {
        None => {
            let mut held = Vec::new();
            let mut next = first;
            loop {
                match next {
                    Data::Finding(f) if held.len() < MAX_OWNED => held.push(*f),
                    Data::Finding(_) => {
                        return Err(remote(format!(
                            "more than {MAX_OWNED} findings held in one unit"
                        )));
                    }
                    Data::End => break,
                    Data::Abort(m) => return Err(StoreError::Unread(ReadError::Unreadable(m))),
                    _ => return Err(remote("an unexpected data line in an ingest")),
                }
                next = input.borrow_mut().next()?;
            }
            Findings::Owned(held)
        }
        Some(how) => {
            let reading = match how {
                WireReading::WholeOrNothing => Reading::WholeOrNothing,
                WireReading::AsItComes => Reading::AsItComes,
            };
            let read = move |w: &mut dyn crate::store::FindingWriter| -> Result<(), ReadError> {
                let mut next = first;
                loop {
                    match next {
                        Data::Finding(f) => w.finding(&f)?,
                        Data::End => return Ok(()),
                        Data::Abort(m) => return Err(ReadError::Unreadable(m)),
                        _ => {
                            return Err(ReadError::Unreadable(
                                "an unexpected data line in an ingest".into(),
                            ));
                        }
                    }
                    next = input
                        .borrow_mut()
                        .next()
                        .map_err(|e| ReadError::Unreadable(e.to_string()))?;
                }
            };
            Findings::Streamed(Box::new(read), reading)
        }
    };
    let entry = run.then(|| {
        let lines = &mut *lines;
        Box::new(move |stats: &crate::store::IngestStats| {
            let asked = lines
                .item(&json!({ "stats": stats }))
                .and_then(|()| lines.send());
            match asked
                .map_err(|e| e.to_string())
                .and_then(|()| input.borrow_mut().next().map_err(|e| e.to_string()))
            {
                Ok(Data::Run(r)) => *r,
                Ok(_) => unanswered(now, "the writing command sent no run-log entry"),
                Err(e) => unanswered(now, &e),
            }
        }) as crate::store::RunEntry<'_>
    });
    let stats = store.ingest_unit(Unit {
        now,
        write: if restore {
            Write::Restore
        } else {
            Write::Observe
        },
        findings,
        state,
        run: entry,
    })?;
    to_value(stats)
}

/// The run-log entry written when the client did not give one (it went away once its
/// findings were in): the unit is stored, and the log says what happened.
fn unanswered(now: chrono::DateTime<chrono::Utc>, why: &str) -> FetchRun {
    let mut run = FetchRun::begun("import", now);
    run.outcome = RunOutcome::Partial;
    run.error = Some(why.to_string());
    run
}
