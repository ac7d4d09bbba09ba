//! `GET /metrics`: the Prometheus text of [`crate::metrics`] (docs/metrics.md), for a scraper.
//! The counts cover the whole store, so a token with a scope is refused (it would learn what
//! lies outside it); on a listener off loopback the scraper sends its token as
//! `Authorization: Bearer` (`authorization` in Prometheus' scrape config).

use axum::extract::State;
use axum::http::{HeaderMap, Uri, header};
use axum::response::{IntoResponse, Response};

use super::access::Caller;
use super::fail::Fail;
use super::respond::{Format, fail};
use super::server::Web;
use crate::metrics::MetricsError;

pub(super) async fn metrics(
    State(web): State<Web>,
    caller: Caller,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let wants = Format::of(uri.path(), &headers);
    if caller.scope.is_some() {
        let why = "the metrics count the whole store: use a token without a scope";
        return fail(&web, wants, Fail::Forbidden(why.into()));
    }
    let w = web.clone();
    let text = web
        .blocking(move |s| {
            crate::metrics::render(s, Some(w.cfg()), w.now()).map_err(|e| match e {
                MetricsError::Store(e) => Fail::Store(e),
            })
        })
        .await;
    match text {
        Ok(t) => ([(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)], t).into_response(),
        Err(e) => fail(&web, wants, e),
    }
}
