//! Who is asking (each request's [`Caller`]), the routes, the tower-http layers
//! (compression, timeouts, request body limits), and serving until told to stop.

use std::time::Duration;

use axum::Router;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::serve::ListenerExt;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tower_http::compression::CompressionLayer;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::timeout::TimeoutLayer;

use super::access::{COOKIE, Caller, Refusal};
use super::respond::{self, Fail};
use super::server::{Web, WebError};
use super::{api, metrics, pages, triage};

/// Largest request body taken (a triage form, a login).
pub(super) const BODY_LIMIT: usize = 64 * 1024;
/// Longest a request may take before it is answered 408 (a streamed answer is exempt once it
/// started).
pub(super) const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

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

/// Whether the request names this host by a loopback name (`127.0.0.1`, `[::1]`,
/// `localhost`, with any port): a page of another site whose name points here (DNS
/// rebinding) names its own, and gets no `local` access.
fn loopback_host(headers: &HeaderMap) -> bool {
    let Some(host) = headers.get(header::HOST).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let name = match host.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => host.split(':').next().unwrap_or(""),
    };
    crate::net::is_loopback(name)
}

impl FromRequestParts<Web> for Caller {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, web: &Web) -> Result<Caller, Response> {
        let (token, by_header) = token_of(&parts.headers);
        let local_name = loopback_host(&parts.headers);
        web.caller(token.as_deref(), by_header, local_name)
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
        .route("/metrics", get(metrics::metrics))
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
    tokio::spawn(pages::keep_overview_fresh(web.clone(), stop.clone()));
    let app = router(web);
    // No Nagle: a streamed answer is several small writes, and with Nagle each one after the
    // first waits for the client's delayed ACK (40 ms on Linux).
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
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
