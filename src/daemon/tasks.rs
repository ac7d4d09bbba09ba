//! The scheduler's three kinds of work: fetching a source, delivering the digest and refreshing
//! the ASN scope. Each wraps the library call the CLI commands use too.

use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::scheduler::{Task, TaskError};
use crate::clock::Clock;
use crate::config::Config;
use crate::digest::{self, DigestOutcome};
use crate::http::HttpClient;
use crate::pipeline::{Runner, SourceReport};
use crate::scope::{self, ScopeMatcher};
use crate::sources::Source;
use crate::store::Store;

/// The scope every run uses; swapped when the daily refresh brings new prefixes.
pub type SharedScope = Arc<RwLock<Arc<ScopeMatcher>>>;

/// Things every task shares.
#[derive(Clone)]
pub struct Shared {
    pub cfg: Arc<Config>,
    pub store: Arc<dyn Store>,
    pub http: HttpClient,
    pub clock: Arc<dyn Clock>,
    pub scope: SharedScope,
    pub data_dir: PathBuf,
}

impl Shared {
    /// A pipeline runner with the current scope.
    pub fn runner(&self) -> Runner {
        let scope = self
            .scope
            .read()
            .map(|s| s.clone())
            .unwrap_or_else(|p| p.into_inner().clone());
        let mut r = Runner::new(
            self.store.clone(),
            self.http.clone(),
            scope,
            self.clock.clone(),
        );
        r.max_resolve_share = self.cfg.store.max_resolve_share();
        r.temp_dir = self.data_dir.clone();
        r
    }
}

/// One line about a source run.
pub fn source_summary(r: &SourceReport) -> String {
    if let Some(why) = &r.skipped {
        return why.clone();
    }
    if r.not_modified {
        return "not modified".into();
    }
    format!(
        "fetched {}, in scope {}, new {}, updated {}, resolved {}, rejected {}",
        r.fetched, r.in_scope, r.new, r.updated, r.resolved, r.rejected
    )
}

/// One line about a digest delivery.
pub fn digest_summary(o: &DigestOutcome) -> String {
    let how = match (&o.eml_path, o.sent) {
        (_, true) => format!("sent to {}", o.recipients.join(", ")),
        (Some(p), false) => format!("written to {}", p.display()),
        (None, false) => "nothing to send".into(),
    };
    format!(
        "{how} (new {}, open {}, resolved {})",
        o.new, o.open, o.resolved
    )
}

/// Fetches one source.
pub struct SourceTask {
    pub shared: Shared,
    pub source: Arc<dyn Source>,
}

/// Takes the turn at `name` among the nodes sharing the store ([`Store::try_turn`]); `None`
/// when another node holds it.
async fn take_turn(s: &Shared, name: String) -> Result<Option<crate::store::Turn>, TaskError> {
    crate::store::blocking(&s.store, move |st| st.try_turn(&name))
        .await
        .map_err(TaskError::Turn)
}

use crate::pipeline::ANOTHER_NODE;

/// What a run skipped because another node already did its slot says.
pub const SLOT_DONE: &str = "skipped: another node sharing the store did this slot already";

/// The state key of the last schedule slot the work `name` was done for, by any node.
pub fn slot_done_key(name: &str) -> String {
    format!("turns/{name}/done")
}

/// Runs `work` once per schedule slot among the nodes sharing the store: under the turn at
/// `name` (another node holding it: skipped), and, for a scheduled run, only when no node
/// recorded `slot` (or a later one) done; a success records it. So a node whose schedule
/// fires after another finished the same slot (clocks a little apart, a slow start) does not
/// fetch the source or send the digest or the notifications again.
async fn once_per_slot<F>(
    s: &Shared,
    name: &str,
    slot: Option<DateTime<Utc>>,
    work: F,
) -> Result<String, TaskError>
where
    F: std::future::Future<Output = Result<String, TaskError>>,
{
    let Some(_turn) = take_turn(s, name.into()).await? else {
        return Ok(ANOTHER_NODE.into());
    };
    let Some(slot) = slot else {
        return work.await;
    };
    let key = slot_done_key(name);
    let k = key.clone();
    let done: Option<DateTime<Utc>> =
        crate::store::blocking(&s.store, move |st| crate::store::state_get_json(st, &k)).await?;
    if done.is_some_and(|d| d >= slot) {
        tracing::info!(job = name, %slot, "{SLOT_DONE}");
        return Ok(SLOT_DONE.into());
    }
    let summary = work.await?;
    // Done is done: a retry here would send the digest again. Unrecorded, the slot may be
    // done once more by another node firing later.
    if let Err(e) = crate::store::blocking(&s.store, move |st| {
        crate::store::state_put_json(st, &key, &slot)
    })
    .await
    {
        tracing::warn!(job = name, error = %e, "done, but the slot could not be recorded as done");
    }
    Ok(summary)
}

#[async_trait]
impl Task for SourceTask {
    /// Once per slot among the nodes sharing the store: a unit is fetched by one of them.
    async fn run(&self, slot: Option<DateTime<Utc>>) -> Result<String, TaskError> {
        let work = async {
            let r = self.shared.runner().run_source(self.source.as_ref()).await;
            match (&r.error, r.ok) {
                (None, true) => Ok(source_summary(&r)),
                (e, _) => Err(TaskError::Run(e.clone().unwrap_or_else(|| "failed".into()))),
            }
        };
        let name = format!("source/{}", self.source.name());
        once_per_slot(&self.shared, &name, slot, work).await
    }
}

/// Delivers the digest.
pub struct DigestTask {
    pub shared: Shared,
}

#[async_trait]
impl Task for DigestTask {
    async fn run(&self, slot: Option<DateTime<Utc>>) -> Result<String, TaskError> {
        let s = &self.shared;
        let work = async {
            digest::deliver(&s.cfg, s.store.clone(), &s.data_dir, s.clock.now())
                .await
                .map(|o| digest_summary(&o))
                .map_err(TaskError::from)
        };
        once_per_slot(s, "digest", slot, work).await
    }
}

/// Sends the contacts' notifications (`notify --send`). The contacts file is read again when
/// it changed. A failed mail or the cap is no failure of the job (a retry would send past
/// the cap): the run-log entry `notify` says so and `status` shows it.
pub struct NotifyTask {
    pub shared: Shared,
    pub contacts: tokio::sync::Mutex<Option<crate::notify::contacts::Contacts>>,
}

#[async_trait]
impl Task for NotifyTask {
    async fn run(&self, slot: Option<DateTime<Utc>>) -> Result<String, TaskError> {
        let s = &self.shared;
        once_per_slot(s, crate::notify::RUN_NAME, slot, self.send()).await
    }
}

impl NotifyTask {
    /// One run of `notify --send`, in a turn the caller holds.
    pub(crate) async fn send(&self) -> Result<String, TaskError> {
        let s = &self.shared;
        use crate::notify::{self, Mode, contacts::Contacts};
        let contacts = {
            let mut held = self.contacts.lock().await;
            match held.as_mut() {
                Some(c) => {
                    c.reload_if_changed(&s.cfg).map_err(TaskError::Contacts)?;
                }
                None => *held = Some(Contacts::load(&s.cfg).map_err(TaskError::Contacts)?),
            }
            held.clone().unwrap_or_default()
        };
        let o = notify::run(
            &s.cfg,
            &contacts,
            s.store.clone(),
            &s.http,
            s.clock.as_ref(),
            s.clock.now(),
            &Mode::Send,
        )
        .await?;
        let mut line = format!(
            "{} mail(s) sent, {} failed, {} finding(s) marked",
            o.sent, o.failed, o.marked
        );
        if let Some(c) = &o.capped {
            line.push_str("; ");
            line.push_str(c);
        }
        if let Some(a) = &o.abuse_c {
            line.push_str(&format!(
                "; RIPE abuse-c: {} looked up, {} failed",
                a.looked_up,
                a.failed.len()
            ));
            if let Some(f) = a.failed.first() {
                line.push_str(&format!(" ({f})"));
            }
        }
        Ok(line)
    }
}

/// Refreshes the ASN prefixes that are due and swaps the scope the sources use.
pub struct ScopeTask {
    pub shared: Shared,
}

/// Refreshes what is due and installs the result; errors name the ASNs whose refresh failed
/// (their cached prefixes stay in use).
pub async fn refresh_scope(s: &Shared, force: bool) -> Result<String, TaskError> {
    let (snap, reports) = scope::refresh(&s.cfg, &s.store, &s.http, s.clock.now(), force).await?;
    if let Ok(mut m) = s.scope.write() {
        *m = Arc::new(ScopeMatcher::new(&snap));
    }
    let failed: Vec<String> = reports
        .iter()
        .filter_map(|r| r.error.as_ref().map(|e| format!("AS{}: {e}", r.asn)))
        .collect();
    if failed.is_empty() {
        let refreshed = reports.iter().filter(|r| r.refreshed).count();
        Ok(format!(
            "{refreshed} ASN(s) refreshed, {} prefixes in scope",
            snap.all_prefixes().len()
        ))
    } else {
        Err(TaskError::Scope(failed))
    }
}

#[async_trait]
impl Task for ScopeTask {
    async fn run(&self, _slot: Option<DateTime<Utc>>) -> Result<String, TaskError> {
        refresh_scope(&self.shared, false).await
    }
}

/// Reads the new or changed files of `[flows] paths` (see [`crate::flows::watch`]).
pub struct FlowsTask {
    pub shared: Shared,
}

#[async_trait]
impl Task for FlowsTask {
    async fn run(&self, _slot: Option<DateTime<Utc>>) -> Result<String, TaskError> {
        let s = self.shared.clone();
        let scope = s
            .scope
            .read()
            .map(|m| m.clone())
            .unwrap_or_else(|p| p.into_inner().clone());
        crate::store::bridge::spawn(move || {
            let clock = s.clock.clone();
            crate::flows::watch::run_once(&s.cfg, &s.store, &scope, || clock.now())
                .map_err(TaskError::from)
        })
        .await
        .map_err(TaskError::FlowsStopped)?
    }
}
