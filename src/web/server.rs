//! The server: its state ([`Web`]), the routes, the layers, and the checks made before it
//! listens.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use minijinja::Environment;
use serde_json::Value;
use tokio::net::TcpListener;

use super::access::{Caller, Gate, Refusal, is_loopback};
use super::fail::Fail;
use crate::clock::Clock;
use crate::config::{Config, CronSchedule};
use crate::store::{Store, StoreError, bridge};

/// How long the overview's counts (a walk over the store) are kept.
pub(crate) const OVERVIEW_TTL: Duration = Duration::from_secs(60);

/// Why the web server cannot start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum WebError {
    /// A listener off loopback without any token would show the store to anyone.
    #[error(
        "[web] listen = {addr} is not a loopback address and no [[web.tokens]] is configured: \
         anyone who reaches it could read the store. Add a token (docs/web.md: \
         `printf %s \"$TOKEN\" | sha256sum`) or listen on 127.0.0.1"
    )]
    NoToken { addr: SocketAddr },
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("web templates: {0}")]
    Templates(crate::digest::render::TemplateError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("web server: {0}")]
    Serve(#[source] std::io::Error),
}

/// Refuses a listen address off loopback when no token is configured.
pub fn check_listen(cfg: &Config, addr: &SocketAddr) -> Result<(), WebError> {
    if !is_loopback(addr) && cfg.web.tokens.is_empty() {
        return Err(WebError::NoToken { addr: *addr });
    }
    Ok(())
}

/// Binds the listener (after [`check_listen`]).
pub async fn bind(cfg: &Config, addr: SocketAddr) -> Result<TcpListener, WebError> {
    check_listen(cfg, &addr)?;
    TcpListener::bind(addr)
        .await
        .map_err(|source| WebError::Bind { addr, source })
}

/// The built-in templates (`templates/web/`), each replaced by a same-named file in
/// `[web] templates`.
pub(crate) const TEMPLATES: &[(&str, &str)] = &[
    ("base.html", include_str!("../../templates/web/base.html")),
    (
        "macros.html",
        include_str!("../../templates/web/macros.html"),
    ),
    (
        "overview.html",
        include_str!("../../templates/web/overview.html"),
    ),
    (
        "worklist.html",
        include_str!("../../templates/web/worklist.html"),
    ),
    (
        "lookup.html",
        include_str!("../../templates/web/lookup.html"),
    ),
    (
        "finding.html",
        include_str!("../../templates/web/finding.html"),
    ),
    ("feeds.html", include_str!("../../templates/web/feeds.html")),
    ("flows.html", include_str!("../../templates/web/flows.html")),
    ("login.html", include_str!("../../templates/web/login.html")),
    ("error.html", include_str!("../../templates/web/error.html")),
];

/// The server's state: the store, the config, the clock, templates and the gate.
#[derive(Clone)]
pub struct Web {
    inner: Arc<Inner>,
}

struct Inner {
    store: Arc<dyn Store>,
    cfg: Arc<Config>,
    clock: Arc<dyn Clock>,
    env: Environment<'static>,
    gate: Gate,
    /// Each enabled source's schedule (its table's, else its default).
    schedules: BTreeMap<String, CronSchedule>,
    /// The overview's counts per scope (token name, `""` unscoped), with when they were made.
    overview: Mutex<BTreeMap<String, (std::time::Instant, Value)>>,
}

impl Web {
    /// The state of a server listening on `listen` over `store`.
    pub async fn new(
        cfg: Arc<Config>,
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        listen: SocketAddr,
    ) -> Result<Web, WebError> {
        let snap = {
            let cfg = cfg.clone();
            bridge::blocking(&store, move |s| crate::scope::load(Some(&cfg), s)).await?
        };
        let dir = cfg.web.templates.as_ref().map(|d| cfg.base_dir.join(d));
        let mut env = crate::digest::render::environment(TEMPLATES, dir.as_deref())
            .map_err(WebError::Templates)?;
        // `path`: a value as a URL path (a prefix keeps its `/`); `qs`: as a query value.
        env.add_filter("path", |s: String| super::view::path_escape(&s));
        // `when`: an RFC 3339 time for people, `2026-12-07 14:13` (UTC).
        env.add_filter("when", |s: String| match (s.get(..10), s.get(11..16)) {
            (Some(d), Some(t)) if s.as_bytes().get(10) == Some(&b'T') => format!("{d} {t}"),
            _ => s,
        });
        env.add_filter("qs", |s: String| {
            form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>()
        });
        let mut schedules = BTreeMap::new();
        for (name, built) in crate::sources::enabled_sources(&cfg) {
            let s = crate::health::configured_schedule(&cfg, &name)
                .or_else(|| built.ok().map(|b| b.schedule()));
            if let Some(s) = s {
                schedules.insert(name, s);
            }
        }
        if !cfg.flows.paths.is_empty() {
            schedules.insert(
                crate::finding::SourceId::Flows.to_string(),
                cfg.flows.schedule.clone(),
            );
        }
        let gate = Gate::new(&cfg, &snap, &listen);
        Ok(Web {
            inner: Arc::new(Inner {
                store,
                cfg,
                clock,
                env,
                gate,
                schedules,
                overview: Mutex::new(BTreeMap::new()),
            }),
        })
    }

    pub fn cfg(&self) -> &Config {
        &self.inner.cfg
    }

    pub fn cfg_arc(&self) -> Arc<Config> {
        self.inner.cfg.clone()
    }

    pub fn now(&self) -> chrono::DateTime<chrono::Utc> {
        self.inner.clock.now()
    }

    pub fn env(&self) -> &Environment<'static> {
        &self.inner.env
    }

    pub fn schedules(&self) -> &BTreeMap<String, CronSchedule> {
        &self.inner.schedules
    }

    pub fn store(&self) -> Arc<dyn Store> {
        self.inner.store.clone()
    }

    /// Runs `work` on the store off the async threads.
    pub async fn blocking<T, F>(&self, work: F) -> Result<T, Fail>
    where
        T: Send + 'static,
        F: FnOnce(&dyn Store) -> Result<T, Fail> + Send + 'static,
    {
        let store = self.inner.store.clone();
        match tokio::task::spawn_blocking(move || work(store.as_ref())).await {
            Ok(r) => r,
            Err(e) => Err(Fail::Internal(format!("a page's work failed: {e}"))),
        }
    }

    /// Who presents `token` ([`Gate::caller`]).
    pub fn caller(
        &self,
        token: Option<&str>,
        by_header: bool,
        local_name: bool,
    ) -> Result<Caller, Refusal> {
        self.inner.gate.caller(token, by_header, local_name)
    }

    /// Whether `token` is one of the configured tokens.
    pub fn knows(&self, token: &str) -> bool {
        self.inner.gate.caller(Some(token), false, false).is_ok()
    }

    /// The overview's value for `key` when it is younger than [`OVERVIEW_TTL`].
    pub fn cached_overview(&self, key: &str) -> Option<Value> {
        let m = self.inner.overview.lock().ok()?;
        m.get(key)
            .filter(|(at, _)| at.elapsed() < OVERVIEW_TTL)
            .map(|(_, v)| v.clone())
    }

    pub fn keep_overview(&self, key: &str, v: &Value) {
        if let Ok(mut m) = self.inner.overview.lock() {
            m.insert(key.to_string(), (std::time::Instant::now(), v.clone()));
        }
    }
}
