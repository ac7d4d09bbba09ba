//! Runs sources and applies what they return to the store, through the one apply path
//! ([`apply`]). A fetch works in units: each unit a source commits is stored at once (findings
//! and source state as one unit), a failed unit is named and the others go on. Then, only when
//! every unit arrived and the source read its complete data, what it stopped reporting is
//! resolved (a suspiciously large drop is refused once); then the run log and a flush. A fetch
//! that fails as a whole writes only its run-log entry and what it had committed before. Store
//! work runs on the store's bridge ([`crate::store::bridge`]), never on the async threads.

pub(crate) mod apply;
pub mod import;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::clock::Clock;
use crate::http::HttpClient;
use crate::scope::ScopeMatcher;
use crate::sources::{
    FetchContext, FetchError, FetchOutput, RowError, Source, StateView, StreamedUnit, UnitError,
    UnitSink, Unreadable,
};
use crate::store::{FetchRun, RunOutcome, Store, StoreError, bridge};
use crate::text::Clean;
pub use apply::{Apply, Ending, FilesRead, RunKind};
pub use import::apply_import;

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
    /// Why the source did not run here: another process sharing the store held its turn
    /// ([`Store::try_turn`]) and runs it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub skipped: Option<String>,
}

/// What a run skipped because another node holds its turn says.
pub const ANOTHER_NODE: &str = "skipped: another node sharing the store is running it";

/// How often a hand run waiting for a turn asks again.
const TURN_POLL: Duration = Duration::from_millis(250);

/// Takes the turn at `name` ([`Store::try_turn`]), asking again every [`TURN_POLL`] for up to
/// `wait` while another process holds it; `None` when it still does then. For the hand runs
/// (`fetch`, `run --once`, `import`): the daemon's jobs never wait (another node is doing the
/// slot).
pub async fn take_turn(
    store: &Arc<dyn Store>,
    name: &str,
    wait: Duration,
) -> Result<Option<crate::store::Turn>, StoreError> {
    let until = tokio::time::Instant::now() + wait;
    loop {
        let n = name.to_string();
        if let Some(t) = bridge::blocking(store, move |s| s.try_turn(&n)).await? {
            return Ok(Some(t));
        }
        let now = tokio::time::Instant::now();
        if now >= until {
            return Ok(None);
        }
        tokio::time::sleep((until - now).min(TURN_POLL)).await;
    }
}

/// [`ANOTHER_NODE`], with how long the run waited for the turn when it did.
pub fn skipped_because(waited: Duration) -> String {
    if waited.is_zero() {
        ANOTHER_NODE.to_string()
    } else {
        format!(
            "{ANOTHER_NODE} (waited {})",
            humantime::format_duration(waited)
        )
    }
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
            skipped: None,
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
    /// Where a fetch spills downloads (the data folder: the store is there, and /tmp may be
    /// memory).
    pub temp_dir: PathBuf,
    /// How long [`Runner::run_source_in_turn`] waits for a turn another process holds before
    /// it skips the source (`fetch --wait`); none by default.
    pub turn_wait: Duration,
}

/// The pipeline's [`UnitSink`]: each unit a source commits goes through the run's [`Apply`],
/// on the store's bridge.
struct UnitStore {
    apply: Arc<Apply>,
    temp_dir: PathBuf,
}

#[async_trait]
impl UnitSink for UnitStore {
    async fn store_unit(&self, unit: FetchOutput) -> Result<(), FetchError> {
        let apply = self.apply.clone();
        bridge::run(move || apply.unit(unit)).await?;
        Ok(())
    }

    /// Streams the unit's rows into the store (nothing of it stored unless it is read whole;
    /// then its findings and state as one unit).
    async fn store_streamed(
        &self,
        unit: StreamedUnit,
    ) -> Result<Result<(), Unreadable>, FetchError> {
        let apply = self.apply.clone();
        let done = bridge::run(move || apply.streamed(unit.read, unit.state)).await?;
        Ok(done.map(|_| ()))
    }

    fn spill_dir(&self) -> PathBuf {
        self.temp_dir.clone()
    }
}

/// State key remembering a held-back drop of a source (see [`Runner::resolve`]).
fn drop_key(source: &str) -> String {
    format!("pipeline/held-drop/{source}")
}

impl Runner {
    /// A runner with the default resolve guard, spilling downloads into the system's
    /// temporary folder (see [`Runner::temp_dir`]).
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
            temp_dir: std::env::temp_dir(),
            turn_wait: Duration::ZERO,
        }
    }

    /// [`Runner::run_source`] while holding the source's turn (`source/<name>`) among the
    /// processes sharing the store; a source whose turn another holds (still, after
    /// [`Runner::turn_wait`]) is skipped (reported `ok`, with [`SourceReport::skipped`]), so
    /// nodes on one database never fetch a unit at the same time.
    pub async fn run_source_in_turn(&self, src: &dyn Source) -> SourceReport {
        let name = format!("source/{}", src.name());
        match take_turn(&self.store, &name, self.turn_wait).await {
            Ok(Some(_turn)) => self.run_source(src).await,
            Ok(None) => {
                let why = skipped_because(self.turn_wait);
                tracing::info!(source = src.name(), "{why}");
                SourceReport {
                    name: src.name().to_string(),
                    ok: true,
                    outcome: RunOutcome::NotModified,
                    skipped: Some(why),
                    ..Default::default()
                }
            }
            Err(e) => SourceReport::failed(src.name(), format!("cannot take its turn: {e}")),
        }
    }

    /// Fetches one source unit by unit and applies the result. Never panics on bad data; what
    /// arrived is kept when other units fail, and every failure is named in the run log.
    pub async fn run_source(&self, src: &dyn Source) -> SourceReport {
        let started = self.clock.now();
        let apply = Arc::new(
            Apply::new(
                self.store.clone(),
                RunKind::Source(src.name().to_string()),
                started,
            )
            .with_secrets(&src.secrets()),
        );
        let ctx = FetchContext {
            http: self.http.clone(),
            scope: self.scope.clone(),
            state: StateView::new(self.store.clone()),
            now: started,
            units: Arc::new(UnitStore {
                apply: apply.clone(),
                temp_dir: self.temp_dir.clone(),
            }),
        };
        tracing::info!(source = src.name(), "fetching");
        let result = src.fetch(&ctx).await;
        drop(ctx);
        let ending = match result {
            Err(e) => {
                let msg = apply.scrub(&crate::text::chain(&e));
                tracing::warn!(source = src.name(), error = %Clean(&msg), "fetch failed");
                Ending {
                    failed: vec![UnitError {
                        unit: src.name().to_string(),
                        error: msg.clone(),
                    }],
                    error: Some(msg),
                    ..Default::default()
                }
            }
            Ok(out) => self.store_output(src, &apply, out, started).await,
        };
        let finished = self.clock.now();
        let (run, rejected_rows) = {
            let (a, e) = (apply.clone(), ending.clone());
            match bridge::run(move || a.finish(&e, finished)).await {
                Ok(done) => done,
                Err(e) => {
                    tracing::error!(source = src.name(), error = %e, "cannot record the run");
                    (apply.entry(&ending, finished), Vec::new())
                }
            }
        };
        let mut report = SourceReport::from_run(&run, rejected_rows);
        report.suspicious_drop = ending.held;
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

    /// Stores the output a fetch returned (its last unit: remaining findings and state), then,
    /// after a complete run with no failed unit, resolves what the source stopped reporting.
    /// Returns how the run ended.
    async fn store_output(
        &self,
        src: &dyn Source,
        apply: &Arc<Apply>,
        mut out: FetchOutput,
        started: DateTime<Utc>,
    ) -> Ending {
        let mut ending = Ending {
            notices: std::mem::take(&mut out.notices)
                .iter()
                .map(|n| apply.scrub(n))
                .collect(),
            failed: std::mem::take(&mut out.failed),
            not_modified: out.not_modified,
            ..Default::default()
        };
        for n in &ending.notices {
            tracing::warn!(source = src.name(), "{}", Clean(n));
        }
        for u in &mut ending.failed {
            u.unit = apply.scrub(&u.unit);
            u.error = apply.scrub(&u.error);
            tracing::warn!(
                source = src.name(),
                unit = %Clean(&u.unit),
                error = %Clean(&u.error),
                "a unit failed; the others were kept"
            );
        }
        let complete = out.complete;
        let unit_apply = apply.clone();
        if let Err(e) = bridge::run(move || unit_apply.unit(out)).await {
            let msg = format!("storing the results failed: {e}");
            tracing::error!(source = src.name(), error = %msg);
            ending.error = Some(msg);
            return ending;
        }
        if !ending.failed.is_empty() || ending.not_modified || !complete {
            return ending;
        }
        match self.resolve(src, started).await {
            Ok(Resolved::Done(n)) => ending.resolved = n,
            Ok(Resolved::Held(msg)) => {
                tracing::warn!(source = src.name(), "{msg}");
                ending.held = Some(msg);
            }
            Err(e) => {
                let msg = format!("resolving failed: {e}");
                tracing::error!(source = src.name(), error = %msg);
                ending.error = Some(msg);
            }
        }
        ending
    }

    /// Resolves what `src` stopped reporting, unless the drop is suspiciously large: more than
    /// [`Runner::max_resolve_share`] of its open findings (and more than a handful). Such a drop
    /// is held back once and resolved when the next complete run sees it again, so a cut-off
    /// download cannot resolve findings, while a real clean-up waits one run.
    async fn resolve(&self, src: &dyn Source, now: DateTime<Utc>) -> Result<Resolved, StoreError> {
        let name = src.name().to_string();
        let cutoff = now - src.resolve_after();
        let share = self.max_resolve_share;
        bridge::blocking(&self.store, move |store| {
            let (open, stale) = store.open_and_stale(&name, cutoff)?;
            let key = drop_key(&name);
            let held_before = store.state_get(&key)?.is_some();
            let suspicious = stale > SMALL_DROP && (stale as f64) > share * open as f64;
            if suspicious && !held_before {
                store.state_put(&key, Some(stale.to_string().as_bytes()))?;
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
                Ok(src) => self.run_source_in_turn(src.as_ref()).await,
                Err(e) => SourceReport::failed(
                    &name,
                    format!("cannot be set up: {}", crate::text::chain(&e)),
                ),
            };
            done(&r);
            r
        });
        futures_util::future::join_all(runs).await
    }
}

/// What [`Runner::resolve`] did.
enum Resolved {
    Done(usize),
    Held(String),
}

/// Scope stamping lives with the scope; re-exported for callers of the pipeline.
pub use crate::scope::{ScopeMark, mark_scope};
