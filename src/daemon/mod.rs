//! `outwatch run`: the long-running scheduler, its local socket, and `run --once`.
//!
//! - [`schedule`]: pure time arithmetic (next slot, DST de-duplication, backoff, jitter);
//! - [`scheduler`]: one loop per job on an injected clock, retries, graceful stop;
//! - [`tasks`]: what a job does (fetch a source, deliver the digest, refresh the scope);
//! - [`socket`] / [`protocol`] / [`remote`]: the daemon owns the sled store (sled allows one
//!   process), so read commands reach it through `<data_dir>/outwatch.sock` via [`RemoteStore`].
//!
//! Invariants: a job never runs twice at once; a failure never stops another job; a run in
//! flight is finished on SIGINT/SIGTERM and the store is flushed before exit.

mod lent;
pub mod protocol;
pub mod remote;
mod reply;
pub mod schedule;
pub mod scheduler;
pub mod socket;
pub mod tasks;
mod writes;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use chrono_tz::Tz;
use serde_json::Value;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::watch;
use tokio::task::JoinSet;

pub use lent::Lent;
pub use remote::RemoteStore;

use crate::clock::Clock;
use crate::config::{Config, CronSchedule};
use crate::digest::DigestOutcome;
use crate::http::HttpClient;
use crate::pipeline::SourceReport;
use crate::scope::{self, ScopeMatcher};
use crate::sources::{self, Source};
use crate::store::bridge;
pub use scheduler::TaskError;
use scheduler::{Board, Job, JobKind, Settings};
use tasks::{DigestTask, ScopeTask, Shared, SourceTask};

/// Largest jitter added to a source's slot.
pub const MAX_SOURCE_JITTER: Duration = Duration::from_secs(300);
/// When the scheduler checks whether the ASN prefixes are due (`[scope] refresh`, daily by
/// default, decides whether RIPEstat is actually asked).
pub const SCOPE_CHECK: &str = "0 17 * * * *";

/// The schedule a source runs on: `schedule` from its config table, else its default.
pub fn source_schedule(cfg: &Config, name: &str, src: &dyn Source) -> CronSchedule {
    crate::health::configured_schedule(cfg, name).unwrap_or_else(|| src.schedule())
}

/// Whether a source should run at start-up: it never ran, or a slot of its schedule passed
/// since its last run started (the daemon was down). One catch-up run, never a burst.
pub fn missed_a_slot(
    store: &dyn crate::store::Store,
    name: &str,
    schedule: &CronSchedule,
    now: chrono::DateTime<chrono::Utc>,
) -> bool {
    match store.runs(Some(name), 1) {
        Ok(runs) => match runs.first() {
            None => true,
            Some(r) => schedule.next_after(&r.started).is_some_and(|n| n <= now),
        },
        Err(e) => {
            tracing::warn!(source = %name, error = %e, "cannot read the run log");
            false
        }
    }
}

/// Every scheduled job of this config. Sources that cannot be set up are logged and left out
/// (feed health shows them as failing); they never keep the others from running.
pub fn jobs(shared: &Shared) -> Vec<Job> {
    let cfg = &shared.cfg;
    let now = shared.clock.now();
    let mut out = Vec::new();
    for (name, built) in sources::enabled_sources(cfg) {
        match built {
            Ok(src) => {
                let schedule = source_schedule(cfg, &name, src.as_ref());
                let interval = schedule
                    .interval(&now)
                    .unwrap_or(chrono::Duration::hours(1));
                let catch_up = missed_a_slot(shared.store.as_ref(), &name, &schedule, now);
                out.push(Job {
                    name,
                    kind: JobKind::Source,
                    catch_up,
                    max_jitter: schedule::max_jitter(interval, MAX_SOURCE_JITTER),
                    schedule,
                    tz: Tz::UTC,
                    task: Arc::new(SourceTask {
                        shared: shared.clone(),
                        source: src,
                    }),
                });
            }
            Err(e) => {
                tracing::error!(source = %name, error = %crate::text::chain(&e), "source cannot be set up and will not run (see `outwatch status`)");
            }
        }
    }
    if !cfg.flows.paths.is_empty() {
        let name = crate::finding::SourceId::Flows.to_string();
        let schedule = cfg.flows.schedule.clone();
        let catch_up = missed_a_slot(shared.store.as_ref(), &name, &schedule, now);
        out.push(Job {
            name,
            kind: JobKind::Source,
            catch_up,
            max_jitter: Duration::ZERO,
            schedule,
            tz: Tz::UTC,
            task: Arc::new(tasks::FlowsTask {
                shared: shared.clone(),
            }),
        });
    }
    if let Some(d) = &cfg.digest {
        out.push(Job {
            name: "digest".into(),
            kind: JobKind::Digest,
            schedule: d.schedule.clone(),
            tz: d.timezone.unwrap_or(Tz::UTC),
            max_jitter: Duration::ZERO,
            // The digest covers everything since the last one: no need to catch up.
            catch_up: false,
            task: Arc::new(DigestTask {
                shared: shared.clone(),
            }),
        });
    }
    if let Some(n) = cfg
        .notify
        .as_ref()
        .filter(|_| crate::notify::configured(cfg))
    {
        out.push(Job {
            name: crate::notify::RUN_NAME.into(),
            kind: JobKind::Notify,
            schedule: n.schedule.clone(),
            tz: Tz::UTC,
            max_jitter: Duration::ZERO,
            // Each run sends what is due since the last: no need to catch up.
            catch_up: false,
            task: Arc::new(tasks::NotifyTask {
                shared: shared.clone(),
                contacts: Default::default(),
            }),
        });
    }
    if !cfg.organisation.asns.is_empty() {
        out.push(Job {
            name: "scope".into(),
            kind: JobKind::Scope,
            schedule: sources::schedule(SCOPE_CHECK),
            tz: Tz::UTC,
            max_jitter: Duration::ZERO,
            // `run` refreshes the scope at start-up already.
            catch_up: false,
            task: Arc::new(ScopeTask {
                shared: shared.clone(),
            }),
        });
    }
    out
}

/// What the daemon works with, set up by the command that starts it (the daemon knows no
/// command-line layer).
#[derive(Clone)]
pub struct DaemonEnv {
    /// The store folder (its socket goes there).
    pub data_dir: PathBuf,
    pub clock: Arc<dyn Clock>,
    /// The HTTP client of `[http]`.
    pub http: HttpClient,
}

/// Why the daemon (or one round of it) could not run; the command maps it to an exit code.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// The store failed (exit code 4; a full disk 1).
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    /// The store could not be flushed at the end (exit code 4).
    #[error("flushing the store failed")]
    Flush(#[source] crate::store::StoreError),
    /// Exit code 1.
    #[error("cannot listen for signals")]
    Signals(#[source] std::io::Error),
    /// Exit code 1.
    #[error("cannot create the socket {}", path.display())]
    Socket {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The web view cannot start (`[web] listen`): off loopback without a token, or the
    /// address cannot be bound. Exit code 1.
    #[error(transparent)]
    Web(#[from] crate::web::WebError),
}

/// How the daemon stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stopped {
    /// On a signal, after the runs in flight finished.
    Finished,
    /// A second signal cut the runs in flight short.
    Forced,
}

async fn shared(
    env: &DaemonEnv,
    cfg: &Config,
    store: Arc<dyn crate::store::Store>,
) -> Result<Shared, DaemonError> {
    let snap = {
        let cfg = cfg.clone();
        bridge::blocking(&store, move |s| scope::load(Some(&cfg), s)).await?
    };
    Ok(Shared {
        cfg: Arc::new(cfg.clone()),
        store,
        http: env.http.clone(),
        clock: env.clock.clone(),
        scope: Arc::new(RwLock::new(Arc::new(ScopeMatcher::new(&snap)))),
        data_dir: env.data_dir.clone(),
    })
}

fn remove_socket(path: &Path) {
    if let Err(e) = std::fs::remove_file(path)
        && e.kind() != std::io::ErrorKind::NotFound
    {
        tracing::warn!(path = %path.display(), error = %e, "cannot remove the socket file");
    }
}

/// What the daemon's socket says in its `hello`: the protocol, this process, its jobs as the
/// board has them now, and how it set each source up.
fn hello_fn(
    cfg: &Config,
    env: &DaemonEnv,
    board: &Board,
    started: chrono::DateTime<chrono::Utc>,
) -> socket::InfoFn {
    let board = board.clone();
    let data_dir = env.data_dir.display().to_string();
    // How this process (its environment, its keys) sets the sources up: `status` from a
    // shell without the keys shows this, not its own view.
    let sources = crate::health::daemon_sources(cfg);
    Arc::new(move || {
        let hello = protocol::Hello {
            version: protocol::PROTOCOL_VERSION,
            revision: protocol::PROTOCOL_REVISION,
            pid: std::process::id(),
            started: Some(started),
            data_dir: data_dir.clone(),
            jobs: board.lock().map(|b| b.clone()).unwrap_or_default(),
            sources: sources.clone(),
            writes: true,
            holder: "run".into(),
        };
        serde_json::to_value(hello).unwrap_or(Value::Null)
    })
}

/// Runs the daemon on `store` (opened for writing) until SIGINT or SIGTERM.
pub async fn run(
    env: &DaemonEnv,
    cfg: &Config,
    store: Arc<dyn crate::store::Store>,
) -> Result<Stopped, DaemonError> {
    let mut term = signal(SignalKind::terminate()).map_err(DaemonError::Signals)?;
    let mut int = signal(SignalKind::interrupt()).map_err(DaemonError::Signals)?;
    if let Some(addr) = cfg.web.listen {
        crate::web::check_listen(cfg, &addr)?;
    }
    let (listener, sock) = socket::bind(&env.data_dir).map_err(|source| DaemonError::Socket {
        path: socket::socket_path(&env.data_dir),
        source,
    })?;
    let shared = shared(env, cfg, store.clone()).await?;
    // The web view, when `[web] listen` is set: refused before anything runs when it would be
    // open off loopback without a token.
    let web = match web_view(env, cfg, &store).await {
        Ok(w) => w,
        Err(e) => {
            remove_socket(&sock);
            return Err(e);
        }
    };
    let board: Board = Arc::new(Mutex::new(Default::default()));
    let started = env.clock.now();
    let info = hello_fn(cfg, env, &board, started);
    let (srv_stop, srv_rx) = watch::channel(false);
    let server = tokio::spawn(socket::serve(
        listener,
        store.clone(),
        info,
        srv_rx.clone(),
        socket::Access::ReadWrite,
    ));
    tracing::info!(socket = %sock.display(), pid = std::process::id(), "daemon started; read commands are served on the socket");
    let web_server = web.map(|(state, listener)| {
        if let Ok(a) = listener.local_addr() {
            eprintln!("outwatch serves the web view on http://{a}/");
        }
        tokio::spawn(crate::web::serve(listener, state, srv_rx.clone()))
    });

    // Whether a source missed a slot is read from the run log: off the async threads.
    let jobs = {
        let sh = shared.clone();
        bridge::run(move || Ok::<_, crate::store::StoreError>(jobs(&sh))).await?
    };
    if jobs.is_empty() {
        tracing::warn!("nothing is scheduled: no source can run and there is no [digest]");
    }
    let (stop, stop_rx) = watch::channel(false);
    let mut set = JoinSet::new();
    // The scope is refreshed first (when due) so the first source runs see today's prefixes.
    if !cfg.organisation.asns.is_empty() {
        match tasks::refresh_scope(&shared, false).await {
            Ok(s) => tracing::info!(summary = %s, "scope ready"),
            Err(e) => {
                tracing::warn!(error = %crate::text::Clean(&crate::text::chain(&e)), "scope refresh failed")
            }
        }
    }
    eprintln!("{}", start_line(env, &jobs));
    for job in jobs {
        tracing::info!(job = %job.name, kind = %job.kind, schedule = %job.schedule.source, tz = %job.tz, "scheduled");
        set.spawn(scheduler::run_job(
            job,
            env.clock.clone(),
            Settings::default(),
            board.clone(),
            stop_rx.clone(),
            rand::random::<f64>,
        ));
    }

    let which = tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    };
    tracing::info!(signal = which, "stopping: finishing the runs in flight");
    let _ = stop.send(true);
    let mut forced = false;
    tokio::select! {
        _ = async { while set.join_next().await.is_some() {} } => {}
        _ = term.recv() => forced = true,
        _ = int.recv() => forced = true,
    }
    if forced {
        tracing::warn!("second signal: stopping without waiting for the runs in flight");
        set.abort_all();
    }
    let _ = srv_stop.send(true);
    let _ = server.await;
    if let Some(w) = web_server {
        match w.await {
            Ok(Err(e)) => tracing::warn!(error = %e, "the web server stopped with an error"),
            Err(e) => tracing::warn!(error = %e, "the web server task failed"),
            Ok(Ok(())) => {}
        }
    }
    let flushed = bridge::blocking(&store, |s| s.flush()).await;
    remove_socket(&sock);
    if let Err(e) = flushed {
        return Err(DaemonError::Flush(e));
    }
    tracing::info!("daemon stopped");
    eprintln!(
        "outwatch stopped ({which}{}); store flushed",
        if forced {
            ", second signal: runs in flight were cut short"
        } else {
            ", runs in flight finished"
        }
    );
    Ok(if forced {
        Stopped::Forced
    } else {
        Stopped::Finished
    })
}

/// The web view of `[web] listen` (its state and bound listener), if set: refused before
/// anything runs when it would be open off loopback without a token.
async fn web_view(
    env: &DaemonEnv,
    cfg: &Config,
    store: &Arc<dyn crate::store::Store>,
) -> Result<Option<(crate::web::Web, tokio::net::TcpListener)>, DaemonError> {
    let Some(addr) = cfg.web.listen else {
        return Ok(None);
    };
    let state = crate::web::Web::new(
        Arc::new(cfg.clone()),
        store.clone(),
        env.clock.clone(),
        addr,
    )
    .await?;
    let listener = crate::web::bind(cfg, addr).await?;
    Ok(Some((state, listener)))
}

/// The one line the daemon prints at start, whatever the log level: what runs, where, and
/// when next.
fn start_line(env: &DaemonEnv, jobs: &[Job]) -> String {
    let now = env.clock.now();
    let next: Vec<String> = jobs
        .iter()
        .map(|j| {
            let at = if j.catch_up {
                "now (catching up)".to_string()
            } else {
                schedule::next_fire(&j.schedule, j.tz, now, None)
                    .map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string())
                    .unwrap_or_else(|| "never".into())
            };
            format!("{} {at}", j.name)
        })
        .collect();
    let sources: Vec<&str> = jobs
        .iter()
        .filter(|j| j.kind == JobKind::Source)
        .map(|j| j.name.as_str())
        .collect();
    format!(
        "outwatch {} started (pid {}): store {}, sources: {}; next: {}",
        env!("CARGO_PKG_VERSION"),
        std::process::id(),
        env.data_dir.display(),
        if sources.is_empty() {
            "none".to_string()
        } else {
            sources.join(", ")
        },
        if next.is_empty() {
            "nothing scheduled".to_string()
        } else {
            next.join(", ")
        }
    )
}

/// What `run --once` did.
#[derive(Debug, Default)]
pub struct OnceReport {
    /// One per enabled source, in config order.
    pub sources: Vec<SourceReport>,
    /// Why the scope refresh failed (cached prefixes were used); not a failure of the run.
    pub scope_warning: Option<TaskError>,
    /// `None` when no `[digest]` is configured.
    pub digest: Option<Result<DigestOutcome, crate::digest::DigestError>>,
    /// The flows job (`[flows] paths`): its log line, or what failed; `None` without paths.
    pub flows: Option<Result<String, TaskError>>,
    /// The notifications (`[notify]` with contacts): its log line, or what failed.
    pub notify: Option<Result<String, TaskError>>,
    /// The digest was not sent: another node sharing the store held its turn (sending it).
    pub digest_skipped: bool,
}

impl OnceReport {
    /// Names of what failed: sources, then `digest`.
    pub fn failed(&self) -> Vec<String> {
        let mut f: Vec<String> = self
            .sources
            .iter()
            .filter(|r| !r.ok)
            .map(|r| r.name.clone())
            .collect();
        if matches!(self.flows, Some(Err(_))) {
            f.push(crate::finding::SourceId::Flows.into());
        }
        if matches!(self.notify, Some(Err(_))) {
            f.push("notify".into());
        }
        if matches!(self.digest, Some(Err(_))) {
            f.push("digest".into());
        }
        f
    }

    /// Names of what was left to another node sharing the store, which held its turn:
    /// sources, then `notify` and `digest`.
    pub fn skipped(&self) -> Vec<String> {
        let mut s: Vec<String> = self
            .sources
            .iter()
            .filter(|r| r.skipped.is_some())
            .map(|r| r.name.clone())
            .collect();
        if matches!(&self.notify, Some(Ok(line)) if line == crate::pipeline::ANOTHER_NODE) {
            s.push("notify".into());
        }
        if self.digest_skipped {
            s.push("digest".into());
        }
        s
    }
}

/// The one path that runs sources now, for `fetch` and `run --once`: the scope refresh when
/// due (a failure keeps the cached prefixes and comes back as a warning), then `chosen` once,
/// concurrently, with `done` called as each finishes. Each source runs in its turn, waiting up to
/// `turn_wait` for one another node holds, else skipped ([`Runner::run_source_in_turn`]).
///
/// [`Runner::run_source_in_turn`]: crate::pipeline::Runner::run_source_in_turn
pub async fn fetch_now(
    env: &DaemonEnv,
    cfg: &Config,
    store: Arc<dyn crate::store::Store>,
    chosen: Vec<sources::BuiltSource>,
    turn_wait: std::time::Duration,
    done: &(dyn Fn(&SourceReport) + Sync),
) -> Result<(Vec<SourceReport>, Option<TaskError>), DaemonError> {
    let shared = shared(env, cfg, store).await?;
    let mut scope_warning = None;
    if !cfg.organisation.asns.is_empty()
        && let Err(e) = tasks::refresh_scope(&shared, false).await
    {
        // Reported once, by the caller (its `warning: scope:` line), not logged as well.
        tracing::debug!(error = %crate::text::Clean(&crate::text::chain(&e)), "scope refresh failed");
        scope_warning = Some(e);
    }
    let mut runner = shared.runner();
    runner.turn_wait = turn_wait;
    let reports = runner.run_all(chosen, done).await;
    Ok((reports, scope_warning))
}

/// `run --once`: the scope refresh when due, every enabled source once (concurrently), the
/// notifications when `[notify]` has contacts, then the digest when `[digest]` is configured, on `store` (opened for writing).
pub async fn run_once(
    env: &DaemonEnv,
    cfg: &Config,
    store: Arc<dyn crate::store::Store>,
    turn_wait: std::time::Duration,
) -> Result<OnceReport, DaemonError> {
    let mut report = OnceReport::default();
    (report.sources, report.scope_warning) = fetch_now(
        env,
        cfg,
        store.clone(),
        sources::enabled_sources(cfg),
        turn_wait,
        &|_| {},
    )
    .await?;
    // The logs after the lists (their C2s are fresh) and before the digest (which shows them).
    if !cfg.flows.paths.is_empty() {
        // The daemon's own job, on the scope the sources just refreshed.
        let task = tasks::FlowsTask {
            shared: shared(env, cfg, store.clone()).await?,
        };
        report.flows = Some(scheduler::Task::run(&task, None).await);
    }
    // The contacts' notifications after the fetches, before the digest, in their turn (waited
    // for up to `turn_wait`, as the sources' and the digest's are).
    if crate::notify::configured(cfg) {
        let task = tasks::NotifyTask {
            shared: shared(env, cfg, store.clone()).await?,
            contacts: Default::default(),
        };
        report.notify = Some(
            match crate::pipeline::take_turn(&store, crate::notify::RUN_NAME, turn_wait).await {
                Ok(Some(_turn)) => task.send().await,
                Ok(None) => Ok(crate::pipeline::ANOTHER_NODE.into()),
                Err(e) => Err(scheduler::TaskError::Turn(e)),
            },
        );
    }
    // In the digest's turn, as the daemons send it: never two at once. A hand run records no
    // schedule slot as done (it is not the schedule's turn).
    if cfg.digest.is_some() {
        match crate::pipeline::take_turn(&store, "digest", turn_wait).await {
            Ok(Some(_turn)) => {
                let now = env.clock.now();
                let r = crate::digest::deliver(cfg, store.clone(), &env.data_dir, now).await;
                report.digest = Some(r);
            }
            Ok(None) => report.digest_skipped = true,
            Err(e) => report.digest = Some(Err(e.into())),
        }
    }
    bridge::blocking(&store, |s| s.flush()).await?;
    Ok(report)
}
