//! The scheduler's three kinds of work: fetching a source, delivering the digest and refreshing
//! the ASN scope. Each wraps the library call the CLI commands use too.

use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use async_trait::async_trait;

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

#[async_trait]
impl Task for SourceTask {
    async fn run(&self) -> Result<String, TaskError> {
        let r = self
            .shared
            .runner()
            .run_source_in_turn(self.source.as_ref())
            .await;
        match (&r.error, r.ok) {
            (None, true) => Ok(source_summary(&r)),
            (e, _) => Err(TaskError::Run(e.clone().unwrap_or_else(|| "failed".into()))),
        }
    }
}

/// Delivers the digest.
pub struct DigestTask {
    pub shared: Shared,
}

#[async_trait]
impl Task for DigestTask {
    async fn run(&self) -> Result<String, TaskError> {
        let s = &self.shared;
        let Some(_turn) = take_turn(s, "digest".into()).await? else {
            return Ok(ANOTHER_NODE.into());
        };
        Ok(digest_summary(
            &digest::deliver(&s.cfg, s.store.clone(), &s.data_dir, s.clock.now()).await?,
        ))
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
    async fn run(&self) -> Result<String, TaskError> {
        use crate::notify::{self, Mode, contacts::Contacts};
        let s = &self.shared;
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
    async fn run(&self) -> Result<String, TaskError> {
        refresh_scope(&self.shared, false).await
    }
}

/// Reads the new or changed files of `[flows] paths` (see [`crate::flows::watch`]).
pub struct FlowsTask {
    pub shared: Shared,
}

#[async_trait]
impl Task for FlowsTask {
    async fn run(&self) -> Result<String, TaskError> {
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
