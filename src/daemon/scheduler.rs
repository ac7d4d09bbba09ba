//! The job loop: each job (a source, the digest, the scope refresh) waits for its next slot,
//! runs, and on failure retries with bounded exponential backoff, never past its next slot.
//! Each job is one task, so it never runs twice at once; jobs run concurrently and a failing
//! one never stops the others. Time comes from an injected [`Clock`], so tests run a week of
//! schedule without waiting.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde::Serialize;
use tokio::sync::watch;

use super::schedule::{Backoff, jitter, next_fire, prev_fire, sleep_step};
use crate::clock::Clock;
use crate::config::CronSchedule;

/// One unit of scheduled work.
#[async_trait]
pub trait Task: Send + Sync {
    /// Runs once for the schedule's `slot` (its fire time without jitter; `None` for a run
    /// outside the schedule: a catch-up at start-up, `run --once`); `Ok` carries a one-line
    /// summary, `Err` the reason (no secrets).
    async fn run(&self, slot: Option<DateTime<Utc>>) -> Result<String, TaskError>;
}

/// Why a job of the scheduler failed: logged with its causes ([`crate::text::chain`], through
/// the sanitiser: it may quote feed content), counted on the board, printed by `run --once`.
#[derive(Debug, thiserror::Error)]
pub enum TaskError {
    /// The run failed: its run-log error (never a secret).
    #[error("{0}")]
    Run(String),
    #[error("cannot take the turn")]
    Turn(#[source] crate::store::StoreError),
    #[error(transparent)]
    Digest(#[from] crate::digest::DigestError),
    #[error(transparent)]
    Notify(#[from] crate::notify::NotifyError),
    /// The contacts file could not be read.
    #[error(transparent)]
    Contacts(#[from] crate::notify::contacts::ContactsFileError),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    /// ASNs whose refresh failed (`AS<n>: why`); their cached prefixes stay in use.
    #[error("refresh failed (cached prefixes kept): {}", .0.join("; "))]
    Scope(Vec<String>),
    #[error(transparent)]
    Flows(#[from] crate::flows::watch::WatchError),
    #[error("the flows job stopped")]
    FlowsStopped(#[source] tokio::task::JoinError),
    /// The run's own task ended in a panic (a bug): a failed run, the schedule goes on.
    #[error("the run panicked")]
    Panicked(#[source] tokio::task::JoinError),
}

/// What a job does (served as `source`, `digest`, `scope`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JobKind {
    /// Fetches one source.
    #[default]
    Source,
    /// Delivers the digest.
    Digest,
    /// Refreshes the ASN scope.
    Scope,
    /// Sends the contacts' notifications (`[notify] schedule`).
    Notify,
}

impl JobKind {
    /// The served name.
    pub fn as_str(self) -> &'static str {
        match self {
            JobKind::Source => "source",
            JobKind::Digest => "digest",
            JobKind::Scope => "scope",
            JobKind::Notify => "notify",
        }
    }
}

impl std::fmt::Display for JobKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A task with its schedule.
pub struct Job {
    pub name: String,
    pub kind: JobKind,
    pub schedule: CronSchedule,
    /// Time zone the schedule is read in.
    pub tz: Tz,
    /// Largest random delay added to each slot (spreads load on providers).
    pub max_jitter: Duration,
    /// Run once right away (after the jitter) before following the schedule: the job missed
    /// its last slot while no daemon ran, or never ran at all.
    pub catch_up: bool,
    pub task: Arc<dyn Task>,
}

/// Largest jitter before a catch-up run at start-up (a new daemon should show data soon).
pub const CATCH_UP_JITTER: Duration = Duration::from_secs(30);

/// What the scheduler knows about a job right now (served by `hello` on the socket).
#[derive(Debug, Clone, Default, Serialize, serde::Deserialize)]
#[serde(default)]
pub struct JobStatus {
    pub kind: JobKind,
    pub schedule: String,
    pub next_run: Option<DateTime<Utc>>,
    pub running: bool,
    pub last_run: Option<DateTime<Utc>>,
    pub last_ok: Option<bool>,
    /// Failures in a row.
    pub failures: u32,
}

/// Shared view of all jobs.
pub type Board = Arc<Mutex<BTreeMap<String, JobStatus>>>;

/// How the loop behaves; production values in [`Settings::default`].
#[derive(Clone)]
pub struct Settings {
    pub backoff: Backoff,
    /// Longest single sleep: the wall clock is looked at again at least this often.
    pub step: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            backoff: Backoff::default(),
            step: Duration::from_secs(60),
        }
    }
}

fn update(board: &Board, name: &str, f: impl FnOnce(&mut JobStatus)) {
    if let Ok(mut b) = board.lock() {
        f(b.entry(name.to_string()).or_default());
    }
}

/// Sleeps until `target` in steps (re-reading the clock after each), or until shutdown.
/// Returns `false` when shutdown was asked for.
async fn wait_until(
    clock: &dyn Clock,
    target: DateTime<Utc>,
    step: Duration,
    shutdown: &mut watch::Receiver<bool>,
) -> bool {
    loop {
        if *shutdown.borrow() {
            return false;
        }
        let Some(d) = sleep_step(clock.now(), target, step) else {
            return true;
        };
        tokio::select! {
            _ = clock.sleep(d) => {}
            r = shutdown.changed() => if r.is_err() { return false; },
        }
    }
}

/// Runs `job` on its schedule until shutdown. A run in flight is finished, never cut off.
/// `unit` draws a uniform number in `[0, 1)` for the jitter.
pub async fn run_job(
    job: Job,
    clock: Arc<dyn Clock>,
    settings: Settings,
    board: Board,
    mut shutdown: watch::Receiver<bool>,
    mut unit: impl FnMut() -> f64 + Send,
) {
    let name = job.name.clone();
    update(&board, &name, |s| {
        s.kind = job.kind;
        s.schedule = job.schedule.source.clone();
    });
    let mut last_slot: Option<DateTime<Utc>> = None;
    let mut catch_up = job.catch_up;
    loop {
        // Recomputed after every wake: slots missed while asleep or busy are skipped.
        let now = clock.now();
        let u = unit();
        let jit = chrono::Duration::from_std(jitter(job.max_jitter, u)).unwrap_or_default();
        // `run_slot`: the slot the run stands for (a catch-up: the one it missed).
        let (slot, run_slot, target) = if std::mem::take(&mut catch_up) {
            tracing::info!(job = %name, "missed its last slot (or never ran): running it at start-up");
            let short = jitter(job.max_jitter.min(CATCH_UP_JITTER), u);
            (
                None,
                prev_fire(&job.schedule, job.tz, now),
                now + chrono::Duration::from_std(short).unwrap_or_default(),
            )
        } else {
            let Some(slot) = next_fire(&job.schedule, job.tz, now, last_slot) else {
                tracing::warn!(job = %name, schedule = %job.schedule.source, "the schedule never fires again");
                return;
            };
            (Some(slot), Some(slot), slot + jit)
        };
        update(&board, &name, |s| s.next_run = Some(target));
        tracing::debug!(job = %name, next = %target, "waiting");
        if !wait_until(clock.as_ref(), target, settings.step, &mut shutdown).await {
            return;
        }
        if slot.is_some() {
            last_slot = slot;
        }
        let mut retry = 0u32;
        loop {
            update(&board, &name, |s| s.running = true);
            tracing::info!(job = %name, kind = %job.kind, attempt = retry + 1, "run starts");
            // Its own task, so that a panic (a bug in a parser) becomes a failed run and the
            // schedule goes on.
            let task = job.task.clone();
            let result = match tokio::spawn(async move { task.run(run_slot).await }).await {
                Ok(r) => r,
                Err(e) => Err(TaskError::Panicked(e)),
            };
            let finished = clock.now();
            update(&board, &name, |s| {
                s.running = false;
                s.last_run = Some(finished);
                s.last_ok = Some(result.is_ok());
                s.failures = if result.is_ok() { 0 } else { s.failures + 1 };
            });
            let err = match result {
                Ok(summary) => {
                    tracing::info!(job = %name, kind = %job.kind, %summary, "run succeeded");
                    break;
                }
                // The error may quote feed content: logged through the sanitiser.
                Err(e) => crate::text::sanitize(&crate::text::chain(&e)).into_owned(),
            };
            if *shutdown.borrow() {
                tracing::warn!(job = %name, error = %err, "run failed; shutting down, no retry");
                break;
            }
            let Some(delay) = settings.backoff.delay(retry) else {
                tracing::error!(job = %name, error = %err, retries = retry, "run failed; retries used up, waiting for the next slot");
                break;
            };
            let retry_at = finished + chrono::Duration::from_std(delay).unwrap_or_default();
            if let Some(next) = next_fire(&job.schedule, job.tz, finished, last_slot)
                && retry_at >= next
            {
                tracing::warn!(job = %name, error = %err, "run failed; the next slot comes before a retry would");
                break;
            }
            tracing::warn!(job = %name, error = %err, retry_in = %humantime::format_duration(delay), "run failed; will retry");
            update(&board, &name, |s| s.next_run = Some(retry_at));
            if !wait_until(clock.as_ref(), retry_at, settings.step, &mut shutdown).await {
                return;
            }
            retry += 1;
        }
        if *shutdown.borrow() {
            return;
        }
    }
}
