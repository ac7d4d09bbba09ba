//! Runs sources and applies what they return to the store. A fetch works in units: each unit a
//! source commits is stored at once (findings and source state in one atomic batch), a failed
//! unit is named and the others go on. Then, only when every unit arrived and the source read
//! its complete data, what it stopped reporting is resolved (a suspiciously large drop is
//! refused once); then the run log and a flush. A fetch that fails as a whole writes only its
//! run-log entry and what it had committed before.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::clock::Clock;
use crate::http::HttpClient;
use crate::scope::ScopeMatcher;
use crate::secret::Scrubber;
use crate::sources::{
    FetchContext, FetchError, FetchOutput, RowError, Source, StateView, StreamedUnit, UnitError,
    UnitSink,
};
use crate::store::{FetchRun, IngestOptions, RunOutcome, Store, StoreError};
use crate::text::Clean;

/// At most this many rejected-row messages are kept per run (the count stays exact).
pub const MAX_REPORTED_ERRORS: usize = 50;

pub use crate::config::DEFAULT_MAX_RESOLVE_SHARE;
/// Drops of at most this many findings are never held back (a source with three findings that
/// all go away is no cut-off list).
const SMALL_DROP: usize = 3;

/// What one source run did; printed by `fetch --json` and kept for feed health.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SourceReport {
    pub name: String,
    /// Every unit arrived and was stored.
    pub ok: bool,
    /// `ok`, `not_modified`, `partial` or `error`.
    pub outcome: RunOutcome,
    pub fetched: usize,
    pub in_scope: usize,
    pub new: usize,
    pub updated: usize,
    pub resolved: usize,
    pub rejected: usize,
    /// Rows kept whose other values were malformed (kept verbatim in `extra`).
    pub warnings: usize,
    pub not_modified: bool,
    /// Why the run failed or was partial, in one line.
    pub error: Option<String>,
    /// The units that failed (a report, a domain, a URL, a day); the others were stored.
    pub errors: Vec<UnitError>,
    /// A drop that was not resolved because it looked like a cut-off download.
    pub suspicious_drop: Option<String>,
    /// The first rejected rows (file/line and reason).
    pub rejected_rows: Vec<RowError>,
}

impl SourceReport {
    /// A report for a source that could not even be set up.
    pub fn failed(name: &str, error: String) -> Self {
        SourceReport {
            name: name.to_string(),
            ok: false,
            outcome: RunOutcome::Error,
            errors: vec![UnitError {
                unit: name.to_string(),
                error: error.clone(),
            }],
            error: Some(error),
            ..Default::default()
        }
    }

    fn from_run(run: &FetchRun, rejected_rows: Vec<RowError>) -> Self {
        SourceReport {
            name: run.source.clone(),
            ok: run.outcome.is_success(),
            outcome: run.outcome,
            fetched: run.fetched,
            in_scope: run.in_scope,
            new: run.new,
            updated: run.updated,
            resolved: run.resolved,
            rejected: run.rejected,
            warnings: run.warnings,
            not_modified: run.outcome == RunOutcome::NotModified,
            error: run.error.clone(),
            errors: run.failed_units.clone(),
            suspicious_drop: None,
            rejected_rows,
        }
    }
}

/// Shared things a run needs.
#[derive(Clone)]
pub struct Runner {
    pub store: Arc<dyn Store>,
    pub http: HttpClient,
    pub scope: Arc<ScopeMatcher>,
    pub clock: Arc<dyn Clock>,
    /// The share of a source's open findings one run may resolve (see
    /// [`DEFAULT_MAX_RESOLVE_SHARE`]).
    pub max_resolve_share: f64,
}

/// What the units of one run added up to.
#[derive(Default)]
struct Tally {
    fetched: usize,
    warnings: usize,
    rejected: usize,
    rejected_rows: Vec<RowError>,
    accepted: usize,
    in_scope: usize,
    new: usize,
    updated: usize,
    max_time_source: Option<DateTime<Utc>>,
}

/// The pipeline's [`UnitSink`]: stores each unit at once and adds up its counts.
struct UnitStore {
    source: String,
    /// The source's secrets: whatever a fetch says leaves here scrubbed of them by value, and
    /// its findings are masked of them before they are stored.
    scrubber: Arc<Scrubber>,
    store: Arc<dyn Store>,
    now: DateTime<Utc>,
    tally: Mutex<Tally>,
}

impl UnitStore {
    fn scrub(&self, text: &str) -> String {
        self.scrubber.scrub(text)
    }

    /// Counts `count` rejected rows and keeps (scrubbed, logged) the first of `rows` until the
    /// run holds [`MAX_REPORTED_ERRORS`].
    fn record_rejected(&self, t: &mut Tally, rows: Vec<RowError>, count: usize) {
        t.rejected += count;
        for mut e in rows {
            if t.rejected_rows.len() >= MAX_REPORTED_ERRORS {
                break;
            }
            e.location = self.scrub(&e.location);
            e.message = self.scrub(&e.message);
            tracing::warn!(
                source = %self.source,
                at = %Clean(&e.location),
                "rejected: {}",
                Clean(&e.message)
            );
            t.rejected_rows.push(e);
        }
    }
}

#[async_trait]
impl UnitSink for UnitStore {
    async fn store_unit(&self, mut unit: FetchOutput) -> Result<(), FetchError> {
        {
            let mut t = self.tally.lock().unwrap_or_else(|p| p.into_inner());
            t.fetched += unit.fetched;
            let n = unit.rejected.len();
            self.record_rejected(&mut t, std::mem::take(&mut unit.rejected), n);
            t.warnings += unit.warnings.len();
            for w in unit.warnings.iter().take(MAX_REPORTED_ERRORS) {
                tracing::info!(
                    source = %self.source,
                    at = %Clean(&self.scrub(&w.location)),
                    "kept with a malformed value: {}",
                    Clean(&self.scrub(&w.message))
                );
            }
            t.accepted += unit.findings.len();
            t.in_scope += unit.findings.iter().filter(|f| f.in_scope).count();
            t.max_time_source = t
                .max_time_source
                .max(unit.findings.iter().filter_map(|f| f.time_source).max());
        }
        if unit.findings.is_empty() && unit.state.is_empty() {
            return Ok(());
        }
        self.scrubber.mask_findings(&mut unit.findings);
        let store = self.store.clone();
        let now = self.now;
        let (findings, state) = (unit.findings, unit.state);
        let stats = blocking(move || store.ingest(findings, state, &IngestOptions { now })).await?;
        let mut t = self.tally.lock().unwrap_or_else(|p| p.into_inner());
        t.new += stats.new;
        t.updated += stats.updated;
        Ok(())
    }

    /// Streams the unit's rows through `SortedIngest` (prepared, spilled in sorted runs to the
    /// store's folder, merged), deferred so that a unit that cannot be read stores nothing;
    /// its state goes last.
    async fn store_streamed(&self, unit: StreamedUnit) -> Result<Result<(), String>, FetchError> {
        let store = self.store.clone();
        let now = self.now;
        let dir = self.spill_dir();
        let scrubber = self.scrubber.clone();
        let done = blocking(move || {
            let mut sink = StreamSink {
                scrubber,
                ingest: crate::store::SortedIngest::new(store.as_ref(), now, &dir).deferred(),
                accepted: 0,
                in_scope: 0,
                max_time_source: None,
                rejected: Vec::new(),
                rejected_count: 0,
                warnings: 0,
                failed: None,
            };
            let read = (unit.read)(&mut sink);
            if let Some(e) = sink.failed {
                return Err(e);
            }
            let rows = match read {
                Ok(rows) => rows,
                Err(e) => return Ok(Err(e)),
            };
            let stats = sink.ingest.finish_with_state(unit.state)?;
            Ok(Ok((
                rows,
                stats,
                sink.accepted,
                sink.in_scope,
                sink.max_time_source,
                sink.rejected,
                sink.rejected_count,
                sink.warnings,
            )))
        })
        .await?;
        let (rows, stats, accepted, in_scope, max_ts, rejected, rejected_count, warnings) =
            match done {
                Ok(d) => d,
                Err(e) => return Ok(Err(e)),
            };
        let mut t = self.tally.lock().unwrap_or_else(|p| p.into_inner());
        t.fetched += rows;
        self.record_rejected(&mut t, rejected, rejected_count);
        t.warnings += warnings;
        t.accepted += accepted;
        t.in_scope += in_scope;
        t.max_time_source = t.max_time_source.max(max_ts);
        t.new += stats.new;
        t.updated += stats.updated;
        Ok(Ok(()))
    }

    fn spill_dir(&self) -> std::path::PathBuf {
        self.store
            .folder()
            .map_or_else(std::env::temp_dir, std::path::Path::to_path_buf)
    }
}

/// The row sink of a streamed unit: findings into a deferred `SortedIngest`, counts aside.
struct StreamSink<'s> {
    /// Masks the source's secrets in findings before they are stored.
    scrubber: Arc<Scrubber>,
    ingest: crate::store::SortedIngest<'s>,
    accepted: usize,
    in_scope: usize,
    max_time_source: Option<DateTime<Utc>>,
    /// The first [`MAX_REPORTED_ERRORS`] rejected rows; `rejected_count` counts all.
    rejected: Vec<RowError>,
    rejected_count: usize,
    /// Rows kept with a malformed value (see [`FetchOutput::warnings`]).
    warnings: usize,
    /// The store failed (spilling): the whole fetch fails.
    failed: Option<StoreError>,
}

impl crate::sources::shadowserver::import::RowSink for StreamSink<'_> {
    fn finding(&mut self, f: &crate::finding::FindingView<'_>) -> Result<(), String> {
        self.accepted += 1;
        self.in_scope += usize::from(f.in_scope);
        self.max_time_source = self.max_time_source.max(f.time_source);
        let masked = self.scrubber.masked(f);
        let f = masked.as_ref().map_or(*f, |m| m.view());
        self.ingest.push_view(&f).map_err(|e| {
            let msg = e.to_string();
            self.failed = Some(e);
            msg
        })
    }

    fn rejected(&mut self, e: RowError) {
        self.rejected_count += 1;
        if self.rejected.len() < MAX_REPORTED_ERRORS {
            self.rejected.push(e);
        }
    }

    fn warning(&mut self, _w: RowError) {
        self.warnings += 1;
    }
}

/// State key remembering a held-back drop of a source (see [`Runner::resolve`]).
fn drop_key(source: &str) -> String {
    format!("pipeline/held-drop/{source}")
}

impl Runner {
    /// A runner with the default resolve guard.
    pub fn new(
        store: Arc<dyn Store>,
        http: HttpClient,
        scope: Arc<ScopeMatcher>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Runner {
            store,
            http,
            scope,
            clock,
            max_resolve_share: DEFAULT_MAX_RESOLVE_SHARE,
        }
    }

    /// Fetches one source unit by unit and applies the result. Never panics on bad data; what
    /// arrived is kept when other units fail, and every failure is named in the run log.
    pub async fn run_source(&self, src: &dyn Source) -> SourceReport {
        let started = self.clock.now();
        let sink = Arc::new(UnitStore {
            source: src.name().to_string(),
            scrubber: Arc::new(Scrubber::new(&src.secrets())),
            store: self.store.clone(),
            now: started,
            tally: Mutex::new(Tally::default()),
        });
        let ctx = FetchContext {
            http: self.http.clone(),
            scope: self.scope.clone(),
            state: StateView::new(self.store.clone()),
            now: started,
            units: sink.clone(),
        };
        tracing::info!(source = src.name(), "fetching");
        let result = src.fetch(&ctx).await;
        drop(ctx);
        let mut run = FetchRun::begun(src.name(), started);
        let mut suspicious = None;
        match result {
            Err(e) => {
                let msg = sink.scrub(&e.to_string());
                tracing::warn!(source = src.name(), error = %crate::text::Clean(&msg), "fetch failed");
                run.outcome = RunOutcome::Error;
                run.failed_units.push(UnitError {
                    unit: src.name().to_string(),
                    error: msg.clone(),
                });
                run.error = Some(msg);
            }
            Ok(mut out) => {
                run.notices = std::mem::take(&mut out.notices)
                    .iter()
                    .map(|n| sink.scrub(n))
                    .collect();
                for n in &run.notices {
                    tracing::warn!(source = src.name(), "{}", Clean(n));
                }
                let mut failed = std::mem::take(&mut out.failed);
                for u in &mut failed {
                    u.unit = sink.scrub(&u.unit);
                    u.error = sink.scrub(&u.error);
                    tracing::warn!(
                        source = src.name(),
                        unit = %Clean(&u.unit),
                        error = %Clean(&u.error),
                        "a unit failed; the others were kept"
                    );
                }
                let (not_modified, complete) = (out.not_modified, out.complete);
                match sink.store_unit(out).await {
                    Err(e) => {
                        let msg = format!("storing the results failed: {e}");
                        tracing::error!(source = src.name(), error = %msg);
                        run.outcome = RunOutcome::Error;
                        run.error = Some(msg);
                    }
                    Ok(()) if !failed.is_empty() => {
                        // Partial when some unit delivered data; nothing at all is a failure.
                        let read = sink.tally.lock().map(|t| t.fetched).unwrap_or(0);
                        run.outcome = if read > 0 {
                            RunOutcome::Partial
                        } else {
                            RunOutcome::Error
                        };
                        run.error = Some(summarise(&failed));
                        run.failed_units = failed;
                    }
                    Ok(()) if not_modified => run.outcome = RunOutcome::NotModified,
                    Ok(()) if complete => match self.resolve(src, started).await {
                        Ok(Resolved::Done(n)) => run.resolved = n,
                        Ok(Resolved::Held(msg)) => {
                            tracing::warn!(source = src.name(), "{msg}");
                            run.outcome = RunOutcome::Partial;
                            run.error = Some(msg.clone());
                            suspicious = Some(msg);
                        }
                        Err(e) => {
                            let msg = format!("resolving failed: {e}");
                            tracing::error!(source = src.name(), error = %msg);
                            run.outcome = RunOutcome::Error;
                            run.error = Some(msg);
                        }
                    },
                    Ok(()) => {}
                }
            }
        }
        let sink = Arc::try_unwrap(sink).ok();
        let tally = sink
            .map(|s| s.tally.into_inner().unwrap_or_else(|p| p.into_inner()))
            .unwrap_or_default();
        run.fetched = tally.fetched;
        run.rejected = tally.rejected;
        run.warnings = tally.warnings;
        run.accepted = tally.accepted;
        run.in_scope = tally.in_scope;
        run.new = tally.new;
        run.updated = tally.updated;
        run.max_time_source = tally.max_time_source;
        run.finished = self.clock.now();
        if let Err(e) = self.store.record_run(&run) {
            tracing::error!(source = src.name(), error = %e, "cannot record the run");
        }
        if let Err(e) = self.store.flush() {
            tracing::error!(error = %e, "flush failed");
        }
        let mut report = SourceReport::from_run(&run, tally.rejected_rows);
        report.suspicious_drop = suspicious;
        tracing::info!(
            source = src.name(),
            outcome = run.outcome.as_str(),
            fetched = report.fetched,
            new = report.new,
            updated = report.updated,
            resolved = report.resolved,
            rejected = report.rejected,
            failed_units = report.errors.len(),
            "fetch finished"
        );
        report
    }

    /// Resolves what `src` stopped reporting, unless the drop is suspiciously large: more than
    /// [`Runner::max_resolve_share`] of its open findings (and more than a handful). Such a drop
    /// is held back once and resolved when the next complete run sees it again, so a cut-off
    /// download cannot resolve findings, while a real clean-up waits one run.
    async fn resolve(&self, src: &dyn Source, now: DateTime<Utc>) -> Result<Resolved, StoreError> {
        let store = self.store.clone();
        let name = src.name().to_string();
        let cutoff = now - src.resolve_after();
        let share = self.max_resolve_share;
        blocking(move || {
            let (open, stale) = store.open_and_stale(&name, cutoff)?;
            let key = drop_key(&name);
            let held_before = store.state_get(&key)?.is_some();
            let suspicious = stale > SMALL_DROP && (stale as f64) > share * open as f64;
            if suspicious && !held_before {
                store.ingest(
                    Vec::new(),
                    vec![(key, Some(stale.to_string().into_bytes()))],
                    &IngestOptions { now },
                )?;
                return Ok(Resolved::Held(format!(
                    "suspicious drop: {stale} of {open} open findings are no longer reported; \
                     not resolved in this run (more than {:.0} % at once looks like a cut-off \
                     download). If the next run sees the same, they resolve then",
                    share * 100.0
                )));
            }
            if held_before {
                store.state_put(&key, None)?;
            }
            Ok(Resolved::Done(
                store.resolve_stale(&name, None, cutoff, now)?,
            ))
        })
        .await
    }
}

impl Runner {
    /// Runs every built source once, concurrently (a source that could not be set up is a
    /// failed report), calling `done` as each finishes; reports come back in the given order.
    /// The one path `fetch` and `run --once` share.
    pub async fn run_all(
        &self,
        sources: Vec<crate::sources::BuiltSource>,
        done: &(dyn Fn(&SourceReport) + Sync),
    ) -> Vec<SourceReport> {
        let runs = sources.into_iter().map(|(name, built)| async move {
            let r = match built {
                Ok(src) => self.run_source(src.as_ref()).await,
                Err(e) => SourceReport::failed(&name, format!("cannot be set up: {e}")),
            };
            done(&r);
            r
        });
        futures_util::future::join_all(runs).await
    }
}

/// Applies the batch of an import (files read by `outwatch import <source>`) through the path a
/// fetch's units take (the pipeline's [`UnitSink`]): findings in one atomic batch, counts added
/// up, rejected rows scrubbed and logged. Then the run is logged as `import/<source>` (an error
/// when no file could be read, partial when some could not) and the store flushed. Returns the
/// run and its first [`MAX_REPORTED_ERRORS`] rejected rows.
pub async fn apply_import(
    store: Arc<dyn Store>,
    clock: &dyn Clock,
    source: &str,
    unit: FetchOutput,
    failed_files: usize,
) -> Result<(FetchRun, Vec<RowError>), StoreError> {
    let name = format!("import/{source}");
    let started = clock.now();
    let sink = UnitStore {
        source: name.clone(),
        scrubber: Arc::new(Scrubber::new(&[])),
        store: store.clone(),
        now: started,
        tally: Mutex::new(Tally::default()),
    };
    sink.store_unit(unit).await.map_err(|e| match e {
        FetchError::Store(e) => e,
        other => StoreError::Engine(other.to_string()),
    })?;
    let t = sink.tally.into_inner().unwrap_or_else(|p| p.into_inner());
    let mut run = FetchRun::begun(&name, started);
    run.outcome = match (failed_files, t.fetched) {
        (0, _) => RunOutcome::Ok,
        (_, 0) => RunOutcome::Error,
        _ => RunOutcome::Partial,
    };
    run.error = (failed_files > 0).then(|| format!("{failed_files} file(s) could not be read"));
    run.fetched = t.fetched;
    run.accepted = t.accepted;
    run.rejected = t.rejected;
    run.warnings = t.warnings;
    run.in_scope = t.in_scope;
    run.new = t.new;
    run.updated = t.updated;
    run.max_time_source = t.max_time_source;
    run.finished = clock.now();
    store.record_run(&run)?;
    store.flush()?;
    Ok((run, t.rejected_rows))
}

/// What [`Runner::resolve`] did.
enum Resolved {
    Done(usize),
    Held(String),
}

/// One line naming the failed units.
fn summarise(failed: &[UnitError]) -> String {
    let mut s = format!("{} unit(s) failed: ", failed.len());
    for (i, u) in failed.iter().enumerate() {
        if i > 0 {
            s.push_str("; ");
        }
        s.push_str(&u.unit);
        s.push_str(": ");
        s.push_str(&u.error);
    }
    s
}

/// Runs blocking store work off the async threads.
pub async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| StoreError::Engine(format!("store task failed: {e}")))?
}

/// Scope stamping lives with the scope; re-exported for callers of the pipeline.
pub use crate::scope::{ScopeMark, mark_scope};
