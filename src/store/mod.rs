//! The normalised store: findings, their indexes, the fetch-run log and small source state.
//!
//! Only [`sled_store`] knows sled; everything else talks to the [`Store`] trait, so another engine
//! can follow. Invariants:
//! - one [`Store::ingest`] call is atomic: all of its findings and state updates land, or none;
//! - re-ingesting the same finding moves `last_seen`/`times_seen`, never duplicates it;
//! - the store never reaches the network and knows nothing about sources.

mod keys;
mod legacy;
mod prepared;
mod query;
mod record;
pub mod sled_store;
mod sorted_ingest;
pub mod top;

use std::ops::ControlFlow;
use std::path::Path;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::finding::Finding;

pub use prepared::PreparedBatch;
pub use query::{Flow, Query, QueryOptions, QueryTotals};
pub use sled_store::SledStore;
pub use sorted_ingest::{CHUNK, RUN_BYTES, SortedIngest};

/// Days of fetch-run log kept (health looks at the latest runs; a year covers any schedule).
pub const RUN_LOG_DAYS: i64 = 400;

/// Errors of the store layer.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(
        "the store at {path} is in use by another outwatch process (the daemon?). \
         Stop it, or let it answer: read commands use its socket when it runs"
    )]
    Locked { path: String },
    #[error(
        "cannot open the store at {path}: {reason}. If it is damaged, move the folder aside, \
         start afresh and `outwatch restore` your last `outwatch export --jsonl` file"
    )]
    Open { path: String, reason: String },
    /// A write found the disk full (`src/diskspace.rs`): the store is fine.
    #[error("{}", crate::diskspace::full_message(std::path::Path::new(path), *free))]
    DiskFull { path: String, free: Option<u64> },
    #[error("store error: {0}")]
    Engine(String),
    #[error("corrupt record in the store ({what}): {reason}")]
    Corrupt { what: String, reason: String },
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

impl StoreError {
    /// This error as [`StoreError::DiskFull`] of the disk holding `path` when what failed was a
    /// write to a full disk (an open, a write, a temporary file); else itself.
    pub fn or_disk_full(self, path: &std::path::Path) -> StoreError {
        let full = match &self {
            StoreError::Engine(m) => crate::diskspace::says_full(m),
            StoreError::Open { reason, .. } => crate::diskspace::says_full(reason),
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

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Options of one ingest.
#[derive(Debug, Clone)]
pub struct IngestOptions {
    /// Observation time: becomes `first_seen`/`last_seen`.
    pub now: DateTime<Utc>,
}

/// What one ingest did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IngestStats {
    /// Findings never seen before.
    pub new: usize,
    /// Findings seen before (still open, or reopened).
    pub updated: usize,
    /// Findings that were resolved and came back.
    pub reopened: usize,
    /// Findings repeated within the same batch (merged into one).
    pub duplicates: usize,
}

impl IngestStats {
    pub fn add(&mut self, o: IngestStats) {
        self.new += o.new;
        self.updated += o.updated;
        self.reopened += o.reopened;
        self.duplicates += o.duplicates;
    }
}

/// How a fetch or import run ended. Stored as these snake_case strings in the run log.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunOutcome {
    /// Every unit was read and stored.
    #[default]
    Ok,
    /// The source said nothing changed (HTTP 304).
    NotModified,
    /// Some units were stored, others failed (see [`FetchRun::failed_units`]), or a
    /// suspicious drop was refused: what arrived is kept, nothing was resolved.
    Partial,
    /// Nothing of the run could be used.
    Error,
}

impl RunOutcome {
    /// The stored name (`ok`, `not_modified`, `partial`, `error`).
    pub fn as_str(self) -> &'static str {
        match self {
            RunOutcome::Ok => "ok",
            RunOutcome::NotModified => "not_modified",
            RunOutcome::Partial => "partial",
            RunOutcome::Error => "error",
        }
    }

    /// Whether the run delivered what it was asked for (ok or not modified).
    pub fn is_success(self) -> bool {
        matches!(self, RunOutcome::Ok | RunOutcome::NotModified)
    }
}

/// A unit of a fetch (a report, a domain, a list URL, a day) that failed; the others were kept.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnitError {
    /// What failed, never a secret: a report's file name, a domain, a URL with keys redacted.
    pub unit: String,
    pub error: String,
}

/// The log entry of one fetch or import run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FetchRun {
    pub source: String,
    pub started: DateTime<Utc>,
    pub finished: DateTime<Utc>,
    pub outcome: RunOutcome,
    /// Rows or records read from the source.
    pub fetched: usize,
    /// Rows accepted as findings (in or out of scope).
    pub accepted: usize,
    /// Rows rejected as malformed.
    pub rejected: usize,
    /// Rows kept although one of their other values was malformed.
    #[serde(default)]
    pub warnings: usize,
    pub in_scope: usize,
    pub new: usize,
    pub updated: usize,
    pub resolved: usize,
    /// Error text (never contains secrets): the whole failure, or a summary of the failed units.
    pub error: Option<String>,
    /// The units that failed while others were stored (outcome `partial`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failed_units: Vec<UnitError>,
    /// Latest `time_source` seen in the data (for feed-health "clock ahead" checks).
    #[serde(default)]
    pub max_time_source: Option<DateTime<Utc>>,
    /// What the source said the owner should know that is no failure (shown by `status`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notices: Vec<String>,
}

impl FetchRun {
    /// A run of `source` started at `started`: `ok` so far, nothing counted, finished at once.
    pub fn begun(source: &str, started: DateTime<Utc>) -> Self {
        FetchRun {
            source: source.to_string(),
            started,
            finished: started,
            outcome: RunOutcome::Ok,
            fetched: 0,
            accepted: 0,
            rejected: 0,
            warnings: 0,
            in_scope: 0,
            new: 0,
            updated: 0,
            resolved: 0,
            error: None,
            failed_units: Vec::new(),
            max_time_source: None,
            notices: Vec::new(),
        }
    }
}

/// The store engine interface. Implementations must be safe to share between threads.
pub trait Store: Send + Sync {
    /// Applies a batch atomically: every finding is merged into its stored twin (or inserted) and
    /// every `(key, value)` state pair is written (a `None` value deletes the key).
    fn ingest(
        &self,
        findings: Vec<Finding>,
        state: Vec<(String, Option<Vec<u8>>)>,
        opts: &IngestOptions,
    ) -> Result<IngestStats>;

    /// [`Store::ingest`] of the findings `items` of a batch prepared while they were parsed
    /// (bulk imports): the same merge, atomicity and statistics, without re-encoding findings
    /// that are new.
    fn ingest_prepared(
        &self,
        batch: &PreparedBatch,
        items: std::ops::Range<usize>,
        state: Vec<(String, Option<Vec<u8>>)>,
    ) -> Result<IngestStats> {
        let now = batch.now;
        self.ingest(batch.findings(items)?, state, &IngestOptions { now })
    }

    /// Resolves findings of `source` (and `feed`, when given) not seen since `cutoff`.
    /// Returns how many were resolved.
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

    /// One finding by fingerprint. The store is organised by indicator, not fingerprint, so this
    /// may scan it: use [`Store::query`] on hot paths and [`Store::modify`] for many findings.
    fn get(&self, fingerprint: &str) -> Result<Option<Finding>>;

    /// Applies `change` to the stored findings with these fingerprints and writes back those for
    /// which it returns true; returns how many it wrote. Unknown fingerprints are skipped.
    fn modify(
        &self,
        fingerprints: &[String],
        change: &mut dyn FnMut(&mut Finding) -> bool,
    ) -> Result<usize> {
        let mut changed = Vec::new();
        for fp in fingerprints {
            if let Some(mut f) = self.get(fp)?
                && change(&mut f)
            {
                changed.push(f);
            }
        }
        let n = changed.len();
        if n > 0 {
            self.update(changed)?;
        }
        Ok(n)
    }

    /// Findings matching a query, newest `last_seen` first (then most severe, then by
    /// fingerprint), at most `opts.limit`. A collector over [`Store::query_each`]: with a limit
    /// it holds only that many findings, without one it holds them all (prefer
    /// `query_each` where a result may be large).
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

    /// Streams the findings matching a query to `f`, one at a time, in store order (not
    /// sorted), each finding once, with memory bounded by a bucket or a page of postings rather
    /// than by the result; `opts.limit` is not applied (`f` stops the walk by returning
    /// `ControlFlow::Break`).
    fn query_each(
        &self,
        q: &Query,
        opts: &QueryOptions,
        f: &mut dyn FnMut(Finding) -> Flow,
    ) -> Result<QueryTotals>;

    /// Every finding, in store order (stable for a given store; for export, digest and health).
    fn for_each(&self, f: &mut dyn FnMut(Finding) -> Result<()>) -> Result<()>;

    /// Findings whose `last_seen` lies in `[from, to)`, in time order (a scan of record
    /// headers: meant for the daily digest, not for hot paths).
    fn seen_between(&self, from: DateTime<Utc>, to: DateTime<Utc>) -> Result<Vec<Finding>>;

    /// Writes findings back exactly as given (life cycle included), replacing stored twins.
    fn restore(&self, findings: Vec<Finding>) -> Result<usize>;

    /// Updates stored findings in place (e.g. marks them reported); fingerprints must exist.
    fn update(&self, findings: Vec<Finding>) -> Result<()>;

    /// Appends a run to the fetch log, dropping entries more than [`RUN_LOG_DAYS`] older.
    fn record_run(&self, run: &FetchRun) -> Result<()>;

    /// The most recent runs (newest first), of one source or of all.
    fn runs(&self, source: Option<&str>, limit: usize) -> Result<Vec<FetchRun>>;

    /// Reads a state value (ETags, ingested report ids, scope cache, digest state...).
    fn state_get(&self, key: &str) -> Result<Option<Vec<u8>>>;

    /// Writes (or with `None` deletes) a state value.
    fn state_put(&self, key: &str, value: Option<&[u8]>) -> Result<()>;

    /// State keys starting with `prefix`, with their values.
    fn state_scan(&self, prefix: &str) -> Result<Vec<(String, Vec<u8>)>>;

    /// Number of stored findings.
    fn count(&self) -> Result<usize>;

    /// Makes everything written so far durable.
    fn flush(&self) -> Result<()>;

    /// The store's folder, for temporary files of bulk imports (`None`: not a local store).
    fn folder(&self) -> Option<&Path> {
        None
    }
}

/// Stamps the life cycle of a finding stored for the first time, observed at `now`.
fn stamp_new(f: &mut Finding, now: DateTime<Utc>) {
    f.first_seen = now;
    f.last_seen = now;
    f.times_seen = 1;
    f.status = crate::finding::Status::New;
    f.history.clear();
    f.push_history(now, "new");
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
            .map_err(|e| StoreError::Corrupt {
                what: format!("state `{key}`"),
                reason: e.to_string(),
            }),
    }
}

/// Writes a JSON state value.
pub fn state_put_json<T: Serialize>(store: &dyn Store, key: &str, value: &T) -> Result<()> {
    let b = serde_json::to_vec(value).map_err(|e| StoreError::Engine(e.to_string()))?;
    store.state_put(key, Some(&b))
}
