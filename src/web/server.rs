//! The server: its state ([`Web`]), the routes, the layers, and the checks made before it
//! listens.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use minijinja::Environment;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tower_http::compression::CompressionLayer;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::timeout::TimeoutLayer;

use super::access::{COOKIE, Caller, Gate, Refusal, is_loopback};
use super::respond::{self, Fail};
use super::{api, pages, triage};
use crate::clock::Clock;
use crate::config::{Config, CronSchedule};
use crate::store::{Store, StoreError, bridge};

/// Largest request body taken (a triage form, a login).
pub const BODY_LIMIT: usize = 64 * 1024;
/// Longest a request may take before it is answered 408 (a streamed answer is exempt once it
/// started).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// How long the overview's counts (a walk over the store) are kept.
pub const OVERVIEW_TTL: Duration = Duration::from_secs(60);

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
    Templates(String),
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
pub const TEMPLATES: &[(&str, &str)] = &[
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
        env.add_filter("path", |s: String| super::pages::path_escape(&s));
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
                crate::flows::analyse::SOURCE.to_string(),
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

    /// Whether `token` is one of the configured tokens.
    pub fn knows(&self, token: &str) -> bool {
        self.inner.gate.caller(Some(token), false).is_ok()
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

/// The token a request carries: `Authorization: Bearer`, else the cookie.
fn token_of(headers: &HeaderMap) -> (Option<String>, bool) {
    if let Some(v) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    {
        let t = v
            .strip_prefix("Bearer ")
            .or_else(|| v.strip_prefix("bearer "))
            .unwrap_or("");
        return (Some(t.trim().to_string()), true);
    }
    let cookie = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .map(|(_, v)| v.to_string());
    (cookie, false)
}

impl FromRequestParts<Web> for Caller {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, web: &Web) -> Result<Caller, Response> {
        let (token, by_header) = token_of(&parts.headers);
        web.inner
            .gate
            .caller(token.as_deref(), by_header)
            .map_err(|r| {
                let wants = respond::Format::of(parts.uri.path(), &parts.headers);
                let why = match r {
                    Refusal::NoToken => {
                        "a token is needed: log in, or send Authorization: Bearer TOKEN"
                    }
                    Refusal::BadToken => "this token is not known here",
                };
                respond::refused(web, wants, why)
            })
    }
}

/// Every route.
pub fn router(web: Web) -> Router {
    Router::new()
        .route("/", get(pages::overview))
        .route("/overview.json", get(pages::overview))
        .route("/worklist", get(pages::worklist))
        .route("/worklist.json", get(pages::worklist))
        .route("/worklist.csv", get(pages::worklist))
        .route("/lookup", get(pages::lookup_form))
        .route("/lookup/{*query}", get(pages::lookup))
        .route("/finding/{fp}", get(pages::finding))
        .route("/finding/{fp}/{action}", post(triage::act))
        .route("/suppress", post(triage::suppress))
        .route("/feeds", get(pages::feeds))
        .route("/feeds.json", get(pages::feeds))
        .route("/flows", get(pages::flows))
        .route("/flows.json", get(pages::flows))
        .route("/flows.csv", get(pages::flows))
        .route("/login", get(pages::login_form).post(triage::login))
        .route("/logout", post(triage::logout))
        .merge(api::routes())
        .fallback(not_found)
        .layer(RequestBodyLimitLayer::new(BODY_LIMIT))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            REQUEST_TIMEOUT,
        ))
        .layer(CompressionLayer::new())
        .with_state(web)
}

async fn not_found(
    axum::extract::State(web): axum::extract::State<Web>,
    uri: axum::http::Uri,
    headers: HeaderMap,
) -> Response {
    let wants = respond::Format::of(uri.path(), &headers);
    respond::fail(&web, wants, Fail::NotFound("no such page".into())).into_response()
}

/// Serves `web` on `listener` until `stop` turns true.
pub async fn serve(
    listener: TcpListener,
    web: Web,
    mut stop: watch::Receiver<bool>,
) -> Result<(), WebError> {
    let app = router(web);
    axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            while !*stop.borrow() {
                if stop.changed().await.is_err() {
                    break;
                }
            }
        })
        .await
        .map_err(WebError::Serve)
}
