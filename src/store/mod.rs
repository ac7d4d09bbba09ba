//! The normalised store: findings with their life cycle, the run log and small remembered
//! state, behind the [`Store`] trait. The trait speaks the domain (units of work, queries,
//! the life cycle); how a backend lays things out is its own business. [`sled_store`] is the
//! embedded default; another backend meets the same contract (below), which the store
//! contract tests (`tests/it/store_contract/`) check for every backend.
//!
//! What every backend guarantees:
//! - **A unit is all or nothing.** [`Store::ingest_unit`] writes a unit's findings, its state
//!   changes and (when given) its run-log entry together: when the unit's reader fails or the
//!   store fails, none of it is visible afterwards. (sled writes a streamed unit that is larger
//!   than one batch in several batches, its state and run entry last, after its reader
//!   succeeded; a crash in between can leave some of its findings, never its state, and
//!   ingesting the unit again converges to the same store. PostgreSQL uses one transaction.)
//! - **Idempotent per observation.** A finding is stored once per fingerprint; ingesting the same
//!   observation again moves `last_seen` and nothing else; the life cycle follows
//!   [`lifecycle`], which backends call rather than re-implement.
//! - **Streams are bounded.** [`Store::query_each`], [`Store::for_each`] and
//!   [`Store::reported_urls`] hand findings one at a time, memory bounded by the backend's page,
//!   not by the result; a callback may stop the walk.
//! - **Synchronous, called off the async threads** (see [`bridge`]), shared between threads.
//! - The store never reaches the network and knows nothing about sources.
//!
//! State keys are namespaced by their owner (`lists/<feed>/validators`, `hibp/...`,
//! `pipeline/held-drop/<source>`, `digest/state`, `scope/...`); kept indicator sets live under
//! [`INDICATOR_SETS`] and are read through [`Store::indicator_sets`].

pub(crate) mod bridge;
pub(crate) mod copy;
pub(crate) mod filter;
pub mod lifecycle;
pub mod postgres;
mod query;
mod run;
pub mod sled_store;
pub(crate) mod top;

use std::ops::ControlFlow;
use std::path::Path;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::finding::{Finding, FindingView};

pub use bridge::blocking;
pub use filter::Filter;
pub use query::{BadQuery, Flow, Pasted, Query, QueryOptions, QueryTotals};
pub use run::{FetchRun, IngestStats, RUN_LOG_DAYS, RunOutcome, UnitError};
pub use sled_store::SledStore;

/// A boxed cause kept under a store error.
pub type Cause = Box<dyn std::error::Error + Send + Sync>;

/// Errors of the store layer. Causes are kept (`source()`), and their text is part of the
/// message, since the command line prints the message alone.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(
        "the store at {path} is in use by another outwatch process (the daemon?). \
         Stop it, or let it answer: read commands use its socket when it runs"
    )]
    Locked { path: String },
    #[error(
        "cannot open the store at {path}: {cause}. If it is damaged, move the folder aside, \
         start afresh and `outwatch restore` your last `outwatch export --jsonl` file"
    )]
    Open {
        path: String,
        #[source]
        cause: Cause,
    },
    /// A database server could not be used as the store (unreachable, refused the login, no
    /// outwatch tables there, a newer schema): `target` names it without its password.
    #[error("cannot use the store at {target}: {cause}")]
    Database {
        target: String,
        #[source]
        cause: Cause,
    },
    /// A write found the disk full (`src/diskspace.rs`): the store is fine.
    #[error("{}", crate::diskspace::full_message(std::path::Path::new(path), *free))]
    DiskFull { path: String, free: Option<u64> },
    /// The backend failed (an I/O error of sled, a lost database connection).
    #[error("the store failed: {0}")]
    Backend(#[source] Cause),
    #[error("corrupt record in the store ({what}): {cause}")]
    Corrupt {
        what: String,
        #[source]
        cause: Cause,
    },
    /// A temporary file of a bulk write could not be used.
    #[error("cannot use a temporary file in {dir} for the import: {cause}")]
    TempFile {
        dir: String,
        #[source]
        cause: std::io::Error,
    },
    /// The unit's reader stopped: nothing of the unit was stored.
    #[error("{0}")]
    Unread(#[source] ReadError),
    /// A write the store refuses (an update of a finding it does not hold).
    #[error("refused: {0}")]
    Refused(String),
    /// The blocking task that ran the store's work panicked or was cancelled.
    #[error("the store task stopped: {0}")]
    Task(#[source] tokio::task::JoinError),
    /// The daemon's socket, which serves a read-only store to other processes, failed.
    #[error("the daemon's socket: {0}")]
    Remote(#[source] Cause),
}

impl StoreError {
    /// A backend failure with its cause.
    pub fn backend(e: impl Into<Cause>) -> Self {
        StoreError::Backend(e.into())
    }

    /// Damaged data at `what`, with why.
    pub fn corrupt(what: impl Into<String>, cause: impl Into<Cause>) -> Self {
        StoreError::Corrupt {
            what: what.into(),
            cause: cause.into(),
        }
    }

    /// This error as [`StoreError::DiskFull`] of the disk holding `path` when what failed was a
    /// write to a full disk (an open, a write, a temporary file); else itself.
    pub fn or_disk_full(self, path: &Path) -> StoreError {
        let full = match &self {
            StoreError::Backend(cause) | StoreError::Open { cause, .. } => {
                says_full(cause.as_ref())
            }
            StoreError::TempFile { cause, .. } => says_full(cause),
            _ => false,
        };
        if !full {
            return self;
        }
        StoreError::DiskFull {
            path: path.display().to_string(),
            free: crate::diskspace::free_bytes(path),
        }
    }
}

/// Whether an error or one of its causes is a full disk: an `io::Error` by its OS error, else
/// by its text (sled gives its I/O errors as its own type, and its flusher's as text).
fn says_full(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut at = Some(e);
    while let Some(e) = at {
        let io_full = e
            .downcast_ref::<std::io::Error>()
            .is_some_and(crate::diskspace::is_full);
        if io_full || crate::diskspace::says_full(&e.to_string()) {
            return true;
        }
        at = e.source();
    }
    false
}

/// Why a unit's reader stopped before its end. Nothing of the unit is stored.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The store could not take the findings: the whole run fails.
    #[error("storing the findings failed: {0}")]
    Store(#[source] Box<StoreError>),
    /// The unit could not be read to its end (a cut download, a damaged report): a failed
    /// unit; the run goes on.
    #[error("{0}")]
    Unreadable(String),
}

impl From<StoreError> for ReadError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unread(r) => r,
            e => ReadError::Store(Box::new(e)),
        }
    }
}

/// [`Store::most_severe`] by walking the query ([`Store::query_each`]) into a bounded heap.
pub fn most_severe_by_walk<S: Store + ?Sized>(
    store: &S,
    q: &Query,
    opts: &QueryOptions,
    limit: usize,
    found: &mut dyn FnMut(),
) -> Result<(Vec<Finding>, usize)> {
    let mut top = top::Top::new(Some(limit), top::most_severe_first);
    store.query_each(q, opts, &mut |f| {
        if top.seen() == 0 {
            found();
        }
        top.push(f);
        Ok(ControlFlow::Continue(()))
    })?;
    let total = top.seen();
    Ok((top.into_sorted_vec(), total))
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// [`Store::select`] by the store's streaming reads (see there).
pub fn select_by_walk<S: Store + ?Sized>(
    store: &S,
    filter: &Filter,
    f: &mut dyn FnMut(Finding) -> Flow,
) -> Result<QueryTotals> {
    let opts = QueryOptions {
        since: filter.stored_since,
        include_resolved: filter.includes_resolved(),
        limit: None,
    };
    let mut totals = QueryTotals::default();
    let mut hand = |x: Finding, totals: &mut QueryTotals| -> Flow {
        if !filter.matches(&x) {
            return Ok(ControlFlow::Continue(()));
        }
        totals.handed += 1;
        let flow = f(x)?;
        totals.stopped = flow.is_break();
        Ok(flow)
    };
    let queries: Vec<Query> = if !filter.prefix.is_empty() {
        ipnet::IpNet::aggregate(&filter.prefix)
            .into_iter()
            .map(Query::Net)
            .collect()
    } else if let [d] = filter.domain.as_slice() {
        vec![Query::Domain(d.clone())]
    } else {
        Vec::new()
    };
    if queries.is_empty() {
        // The whole store; `for_each` stops only on an error, so a stop is one, told apart.
        let mut stop = false;
        let walked = store.for_each(&mut |x| {
            if hand(x, &mut totals)?.is_break() {
                stop = true;
                return Err(StoreError::Refused("the walk stopped".into()));
            }
            Ok(())
        });
        return match walked {
            Err(_) if stop => Ok(totals),
            other => other.map(|()| totals),
        };
    }
    // Merged prefixes cover no address twice: only a network overlapping two can come twice.
    let several = queries.len() > 1;
    let mut networks = std::collections::HashSet::new();
    for q in &queries {
        store.query_each(q, &opts, &mut |x| {
            if several && x.network.is_some() && !networks.insert(x.fingerprint.clone()) {
                return Ok(ControlFlow::Continue(()));
            }
            hand(x, &mut totals)
        })?;
        if totals.stopped {
            break;
        }
    }
    Ok(totals)
}

/// A change of remembered state: the key and its new value (`None` deletes it).
pub type StateChange = (String, Option<Vec<u8>>);

/// The state-key prefix of kept indicator sets (`indicators/<feed>/<unit>`, written by the list
/// sources with their findings, read by the indicators module).
pub const INDICATOR_SETS: &str = "indicators/";

/// How a unit's findings are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Write {
    /// New observations: each is merged into its stored twin by the life-cycle rule
    /// ([`lifecycle::merge`]; repeats within the unit by [`lifecycle::repeat`]) or stored as new
    /// ([`lifecycle::stamp_new`]), observed at [`Unit::now`].
    Observe,
    /// Findings exactly as given, life cycle included, replacing stored twins (a restore).
    Restore,
}

/// Where a streamed unit's reader hands its findings: the backend's bulk writer.
pub trait FindingWriter {
    /// A sealed finding borrowed field by field (the bulk path: the Shadowserver reader builds
    /// views straight from CSV records). Its life cycle is ignored under [`Write::Observe`].
    fn view(&mut self, f: &FindingView<'_>) -> Result<()>;

    /// An owned finding (kept as given under [`Write::Restore`], earlier observations
    /// included).
    fn finding(&mut self, f: &Finding) -> Result<()>;
}

/// Reads a streamed unit's findings into the backend's writer, once; an error stops the unit.
pub type ReadFindings<'a> = Box<dyn FnOnce(&mut dyn FindingWriter) -> Result<(), ReadError> + 'a>;

/// The findings of a unit.
pub enum Findings<'a> {
    /// Held in memory (a fetched list, a mail import, a flows run).
    Owned(Vec<Finding>),
    /// Too many to hold (a Shadowserver report of a million rows, an import of files, a
    /// restore): read when the store is ready for them, in bounded memory.
    Streamed(ReadFindings<'a>, Reading),
}

/// How a streamed unit's reader may end, which tells the backend when it may write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reading {
    /// The reader may give up part-way by itself (a download cut off, a damaged restore file):
    /// nothing of the unit may be stored unless it returns `Ok`.
    WholeOrNothing,
    /// The reader stops only when the store's writer fails (an import of files keeps what it
    /// can read of each file and counts the rest): the backend may write what it is handed as
    /// it comes. (Such a reader that fails by itself anyway may leave what it handed.)
    AsItComes,
}

/// Makes the run-log entry of a unit from what its ingest did.
pub type RunEntry<'a> = Box<dyn FnOnce(&IngestStats) -> FetchRun + 'a>;

/// One unit of work: findings, state changes and, for a run that is one unit, its run-log
/// entry, written together.
pub struct Unit<'a> {
    /// When the unit was received: `first_seen`/`last_seen` of what it observes.
    pub now: DateTime<Utc>,
    pub write: Write,
    pub findings: Findings<'a>,
    pub state: Vec<StateChange>,
    /// The run-log entry written with the unit, made once its findings are in.
    pub run: Option<RunEntry<'a>>,
}

/// Options of [`Store::ingest`].
#[derive(Debug, Clone)]
pub struct IngestOptions {
    /// Observation time: becomes `first_seen`/`last_seen`.
    pub now: DateTime<Utc>,
}

/// The URLs an open finding reports (its `url`, and `extra` fields named like `*url*`), handed to
/// [`Store::reported_urls`]'s callback with the finding.
#[derive(Debug, Clone, Copy)]
pub struct ReportedUrl<'a> {
    pub url: &'a str,
    pub finding: &'a Finding,
}

/// The store interface, in domain terms. Implementations are shared between threads and are
/// called off the async threads ([`bridge`]).
pub trait Store: Send + Sync {
    // --- units of work -------------------------------------------------------------------

    /// Writes one unit atomically (see the module's contract): its findings by `unit.write`,
    /// its state changes, and its run-log entry (made by `unit.run` from the statistics)
    /// when it has one. A streamed unit's reader is called once; when it fails, nothing of the
    /// unit is stored and the error is [`StoreError::Unread`] (a store failure while reading
    /// comes back as itself), as [`Reading`] says. Returns what the ingest did.
    fn ingest_unit(&self, unit: Unit<'_>) -> Result<IngestStats>;

    /// [`Store::ingest_unit`] of findings held in memory, observed at `opts.now`, with state
    /// and no run entry (tests; the program goes through the pipeline's apply path).
    fn ingest(
        &self,
        findings: Vec<Finding>,
        state: Vec<StateChange>,
        opts: &IngestOptions,
    ) -> Result<IngestStats> {
        self.ingest_unit(Unit {
            now: opts.now,
            write: Write::Observe,
            findings: Findings::Owned(findings),
            state,
            run: None,
        })
    }

    /// Writes findings exactly as given (life cycle included), replacing stored twins; returns
    /// how many were given. [`Store::ingest_unit`] with [`Write::Restore`].
    fn restore(&self, findings: Vec<Finding>) -> Result<usize> {
        let n = findings.len();
        self.ingest_unit(Unit {
            now: Utc::now(),
            write: Write::Restore,
            findings: Findings::Owned(findings),
            state: Vec::new(),
            run: None,
        })?;
        Ok(n)
    }

    // --- the life cycle ------------------------------------------------------------------

    /// Resolves the findings of `source` (and `feed`, when given) that are not resolved and were
    /// last seen before `cutoff`: status `resolved`, history `resolved` at `now`. Returns how
    /// many.
    fn resolve_stale(
        &self,
        source: &str,
        feed: Option<&str>,
        cutoff: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<usize>;

    /// Of the findings of `source` that are not resolved: how many there are, and how many of
    /// those were last seen before `cutoff` (what [`Store::resolve_stale`] would resolve).
    fn open_and_stale(&self, source: &str, cutoff: DateTime<Utc>) -> Result<(usize, usize)>;

    /// Applies `change` to the stored findings with these fingerprints and writes back those
    /// for which it returns true (marking them reported, triage); returns how many it wrote.
    /// Unknown fingerprints are skipped. Each finding's change is atomic; the call as a whole
    /// need not be.
    fn modify(
        &self,
        fingerprints: &[String],
        change: &mut dyn FnMut(&mut Finding) -> bool,
    ) -> Result<usize>;

    // --- reading -------------------------------------------------------------------------

    /// One finding by fingerprint (may be slow: meant for single findings, not hot paths).
    fn get(&self, fingerprint: &str) -> Result<Option<Finding>>;

    /// Streams the findings matching a query to `f`, one at a time, in store order (not
    /// sorted), each finding once, memory bounded by the backend's page rather than the result;
    /// `opts.since` and `opts.include_resolved` filter, `opts.limit` is not applied (`f` stops
    /// the walk by returning `ControlFlow::Break`).
    fn query_each(
        &self,
        q: &Query,
        opts: &QueryOptions,
        f: &mut dyn FnMut(Finding) -> Flow,
    ) -> Result<QueryTotals>;

    /// Findings matching a query, newest `last_seen` first (then most severe, then by
    /// fingerprint), at most `opts.limit`: a collector over [`Store::query_each`] holding at
    /// most `limit` findings (all of them without one: prefer `query_each`).
    fn query(&self, q: &Query, opts: &QueryOptions) -> Result<Vec<Finding>> {
        let mut top = top::Top::new(opts.limit, top::newest_first);
        self.query_each(q, opts, &mut |f| {
            top.push(f);
            Ok(ControlFlow::Continue(()))
        })?;
        Ok(top.into_sorted_vec())
    }

    /// The first `limit` findings matching a query, most severe first then newest
    /// ([`top::most_severe_first`]), and how many matched in all: what `lookup` shows people,
    /// in memory for `limit` findings. A store served elsewhere (the daemon's socket) computes
    /// it there and sends only those.
    /// `found` is called once, when the first finding turns up (a lookup prints its heading
    /// then; a store served elsewhere calls it when the answer arrives).
    fn most_severe(
        &self,
        q: &Query,
        opts: &QueryOptions,
        limit: usize,
        found: &mut dyn FnMut(),
    ) -> Result<(Vec<Finding>, usize)> {
        most_severe_by_walk(self, q, opts, limit, found)
    }

    /// Every finding, streamed in store order (stable for a given store; export, digest,
    /// health).
    fn for_each(&self, f: &mut dyn FnMut(Finding) -> Result<()>) -> Result<()>;

    // --- worklists (`outwatch list`) ------------------------------------------------------

    /// Streams the findings a worklist [`Filter`] lets through, in store order, each once,
    /// memory bounded as [`Store::query_each`]; `f` may stop the walk. By default built on the
    /// streaming reads: a filter on prefixes walks those (merged, so no address comes twice),
    /// one on a single domain walks that domain, any other the whole store; the stored time
    /// and the resolved state are handed to the walk, every condition is checked here. A
    /// backend that can select better (an index, SQL) may override it.
    fn select(&self, filter: &Filter, f: &mut dyn FnMut(Finding) -> Flow) -> Result<QueryTotals> {
        select_by_walk(self, filter, f)
    }

    /// Streams every URL that a finding not resolved and not of `except_source` reports (its
    /// `url`, and each `extra` string field whose name contains `url`), with the finding; the
    /// callback filters and may stop. What Safe Browsing checks beyond the home pages.
    fn reported_urls(
        &self,
        except_source: &str,
        f: &mut dyn FnMut(ReportedUrl<'_>) -> Flow,
    ) -> Result<()> {
        let mut stopped = false;
        self.for_each(&mut |finding| {
            if stopped
                || finding.source == except_source
                || finding.status == crate::finding::Status::Resolved
            {
                return Ok(());
            }
            let urls = finding.url.iter().map(String::as_str).chain(
                finding
                    .extra
                    .iter()
                    .filter(|(k, _)| k.contains("url"))
                    .filter_map(|(_, v)| v.as_str()),
            );
            for url in urls {
                if f(ReportedUrl {
                    url,
                    finding: &finding,
                })?
                .is_break()
                {
                    stopped = true;
                    break;
                }
            }
            Ok(())
        })
    }

    /// Number of stored findings.
    fn count(&self) -> Result<usize>;

    /// Bytes the store takes on disk, when the backend can tell (`None`: unknown, e.g. a store
    /// read through the daemon's socket). Cheap: file sizes or the database's own figures,
    /// never a walk over the findings.
    fn size_on_disk(&self) -> Result<Option<u64>> {
        Ok(None)
    }

    // --- the run log ---------------------------------------------------------------------

    /// Appends a run to the log (keyed by start time and source name; the same key again
    /// replaces it), dropping entries more than [`RUN_LOG_DAYS`] older than it.
    fn record_run(&self, run: &FetchRun) -> Result<()>;

    /// The most recent runs, newest first, of one source name or of all, at most `limit`.
    fn runs(&self, source: Option<&str>, limit: usize) -> Result<Vec<FetchRun>>;

    // --- remembered state ----------------------------------------------------------------

    /// Reads a state value (ETags, ingested report names, the scope cache, digest state...).
    fn state_get(&self, key: &str) -> Result<Option<Vec<u8>>>;

    /// Writes (or with `None` deletes) a state value on its own. State that belongs with
    /// findings goes in their unit.
    fn state_put(&self, key: &str, value: Option<&[u8]>) -> Result<()>;

    /// State keys starting with `prefix`, with their values, in key order.
    fn state_scan(&self, prefix: &str) -> Result<Vec<(String, Vec<u8>)>>;

    /// The state entries under `prefix`, in key order, handed to `each` one at a time (a
    /// backend that can streams them: kept indicator sets are some MB each).
    fn state_each(
        &self,
        prefix: &str,
        each: &mut dyn FnMut(&str, &[u8]) -> Result<()>,
    ) -> Result<()> {
        for (k, v) in self.state_scan(prefix)? {
            each(&k, &v)?;
        }
        Ok(())
    }

    /// Every kept indicator set (state under [`INDICATOR_SETS`]), as its key and encoded value,
    /// in key order, one at a time.
    fn indicator_sets(&self, each: &mut dyn FnMut(&str, &[u8]) -> Result<()>) -> Result<()> {
        self.state_each(INDICATOR_SETS, each)
    }

    /// Makes everything written so far durable.
    fn flush(&self) -> Result<()>;

    // --- several processes on one store --------------------------------------------------

    /// Takes the turn at the work named `name` (`source/<name>`, `digest`) among the
    /// processes that share this store, held until the [`Turn`] is dropped; `None` when
    /// another holds it (the caller skips the work: another node does it). A store only one
    /// process writes (sled, which locks its folder) gives every turn.
    fn try_turn(&self, name: &str) -> Result<Option<Turn>> {
        let _ = name;
        Ok(Some(Turn::alone()))
    }
}

/// A turn at some work among the processes sharing a store ([`Store::try_turn`]), given back
/// when dropped (and by the server when its process dies).
pub struct Turn(#[allow(dead_code)] Option<Box<dyn Send>>);

impl Turn {
    /// A turn nobody else could want (a store of one process).
    pub fn alone() -> Turn {
        Turn(None)
    }

    /// A turn held by `guard` until it is dropped.
    pub fn held(guard: Box<dyn Send>) -> Turn {
        Turn(Some(guard))
    }
}

impl std::fmt::Debug for Turn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Turn")
    }
}

/// Opens the default store engine at `path`, creating it when missing.
pub fn open(path: &Path) -> Result<SledStore> {
    SledStore::open(path)
}

/// Reads a JSON state value.
pub fn state_get_json<T: serde::de::DeserializeOwned>(
    store: &dyn Store,
    key: &str,
) -> Result<Option<T>> {
    match store.state_get(key)? {
        None => Ok(None),
        Some(b) => serde_json::from_slice(&b)
            .map(Some)
            .map_err(|e| StoreError::corrupt(format!("state `{key}`"), e)),
    }
}

/// A value encoded as JSON for the state.
pub fn json_state<T: Serialize>(key: &str, value: &T) -> Result<Vec<u8>> {
    serde_json::to_vec(value).map_err(|e| StoreError::corrupt(format!("state `{key}`"), e))
}

/// Writes a JSON state value.
pub fn state_put_json<T: Serialize>(store: &dyn Store, key: &str, value: &T) -> Result<()> {
    store.state_put(key, Some(&json_state(key, value)?))
}
