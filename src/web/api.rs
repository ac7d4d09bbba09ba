//! `/api/v1/...`: the pages' data as JSON (the same handlers, which answer JSON under
//! `/api/`), findings streamed as JSON lines (each the finding's one serialised shape, as
//! `outwatch export` writes it), the `updated_since` cursor, triage by JSON, and the OpenAPI
//! document (`/api/v1/openapi.json`).
//!
//! Incremental polling: `GET /api/v1/findings?updated_since=T` streams the findings stored or
//! triaged at or after `T`; the answer's `X-Outwatch-Cursor` header is the time to ask from
//! next (the time the request was taken), so nothing between two polls is lost.

use std::convert::Infallible;
use std::ops::ControlFlow;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::access::Caller;
use super::pages::{self, worklist_query};
use super::respond::{Fail, Format, fail};
use super::server::Web;
use super::triage::{action_of, apply};
use crate::finding::Finding;
use crate::store::filter::parse_time;
use crate::store::{Query, QueryOptions};
use crate::triage::Suppressions;

/// Lines buffered between the store's walk and the socket.
const STREAM_BUFFER: usize = 256;

pub(super) fn routes() -> Router<Web> {
    Router::new()
        .route("/api/v1/openapi.json", get(openapi))
        .route("/api/v1/overview", get(pages::overview))
        .route("/api/v1/worklist", get(pages::worklist))
        .route("/api/v1/feeds", get(pages::feeds))
        .route("/api/v1/flows", get(pages::flows))
        .route("/api/v1/findings", get(findings))
        .route("/api/v1/findings/{fp}", get(pages::finding))
        .route("/api/v1/findings/{fp}/{action}", post(act))
        .route("/api/v1/lookup/{*query}", get(lookup))
}

/// When a finding last changed: stored again, or a history entry (triage, life cycle).
pub(super) fn updated(f: &Finding) -> DateTime<Utc> {
    f.history
        .iter()
        .map(|h| h.at)
        .max()
        .map_or(f.last_seen, |h| h.max(f.last_seen))
}

/// Streams the lines `walk` sends as `application/x-ndjson`.
fn stream<F>(web: &Web, cursor: DateTime<Utc>, walk: F) -> Response
where
    F: FnOnce(&dyn crate::store::Store, &mpsc::Sender<Bytes>) -> Result<(), Fail> + Send + 'static,
{
    let (tx, rx) = mpsc::channel::<Bytes>(STREAM_BUFFER);
    let store = web.store();
    tokio::task::spawn_blocking(move || {
        if let Err(e) = walk(store.as_ref(), &tx) {
            // The status is sent already: the stream ends with an error line.
            let line = json!({ "error": format!("{e:?}") }).to_string() + "\n";
            let _ = tx.blocking_send(Bytes::from(line));
        }
    });
    let mut rx = rx;
    let body = Body::from_stream(futures_util::stream::poll_fn(move |cx| {
        rx.poll_recv(cx).map(|b| b.map(Ok::<_, Infallible>))
    }));
    let mut r = body.into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-ndjson"),
    );
    if let Ok(v) = HeaderValue::from_str(&super::view::time(cursor)) {
        h.insert("x-outwatch-cursor", v);
    }
    r
}

/// A finding as one JSON line; `false` when the client went away.
fn send(tx: &mpsc::Sender<Bytes>, f: &Finding) -> bool {
    let mut line = serde_json::to_vec(f).unwrap_or_default();
    line.push(b'\n');
    tx.blocking_send(Bytes::from(line)).is_ok()
}

/// `GET /api/v1/findings?FILTER&updated_since=T`: every finding of the worklist filter the
/// caller sees (store order, unsorted), as JSON lines.
async fn findings(State(web): State<Web>, caller: Caller, uri: Uri) -> Response {
    let mut since = None;
    let mut rest = form_urlencoded::Serializer::new(String::new());
    for (k, v) in form_urlencoded::parse(uri.query().unwrap_or("").as_bytes()) {
        if k == "updated_since" {
            match parse_time(&v) {
                Ok(t) => since = Some(t),
                Err(e) => {
                    return fail(
                        &web,
                        Format::Json,
                        Fail::BadRequest(format!("updated_since: {e}")),
                    );
                }
            }
        } else {
            rest.append_pair(&k, &v);
        }
    }
    let (filter, _, _) = match worklist_query(&rest.finish()) {
        Ok(x) => x,
        Err(e) => return fail(&web, Format::Json, Fail::BadRequest(e.to_string())),
    };
    let cursor = web.now();
    let w = web.clone();
    stream(&web, cursor, move |store, tx| {
        let mut filter = filter;
        crate::scope::resolve_filter(Some(w.cfg()), store, &mut filter).map_err(|e| match e {
            crate::scope::ResolveError::Store(s) => Fail::Store(s),
            e => Fail::BadRequest(e.to_string()),
        })?;
        let supp = Suppressions::load(store, Some(w.cfg()), w.now())?;
        store.select(&filter, &mut |f| {
            let fresh = since.is_none_or(|t| updated(&f) >= t);
            if fresh
                && caller.sees(&f)
                && filter.suppressed.shows(supp.suppressed(&f))
                && !send(tx, &f)
            {
                return Ok(ControlFlow::Break(()));
            }
            Ok(ControlFlow::Continue(()))
        })?;
        Ok(())
    })
}

/// `GET /api/v1/lookup/QUERY`: every finding about an object the caller sees, as JSON lines.
async fn lookup(State(web): State<Web>, caller: Caller, Path(query): Path<String>) -> Response {
    let q: Query = match query.trim().parse() {
        Ok(q) => q,
        Err(e) => return fail(&web, Format::Json, Fail::BadRequest(format!("{e}"))),
    };
    let cursor = web.now();
    stream(&web, cursor, move |store, tx| {
        let opts = QueryOptions {
            include_resolved: true,
            ..Default::default()
        };
        store.query_each(&q, &opts, &mut |f| {
            if caller.sees(&f) && !send(tx, &f) {
                return Ok(ControlFlow::Break(()));
            }
            Ok(ControlFlow::Continue(()))
        })?;
        Ok(())
    })
}

/// The body of a triage request.
#[derive(Debug, Default, Deserialize)]
pub(super) struct TriageBody {
    #[serde(default)]
    pub text: String,
}

/// `POST /api/v1/findings/FP/ACTION` with `{"text": "..."}` (`application/json`, which a
/// browser does not send across sites without asking: no CSRF token needed).
async fn act(
    State(web): State<Web>,
    caller: Caller,
    Path((fp, name)): Path<(String, String)>,
    _headers: HeaderMap,
    axum::Json(body): axum::Json<TriageBody>,
) -> Response {
    let Some(action) = action_of(&name) else {
        return fail(&web, Format::Json, Fail::NotFound("no such action".into()));
    };
    if !caller.may_triage() {
        return fail(
            &web,
            Format::Json,
            Fail::Forbidden(format!("`{}` has the read role", caller.name)),
        );
    }
    match apply(&web, &caller, &fp, action, &body.text).await {
        Ok(n) => axum::Json(json!({ "action": name, "fingerprint": fp, "changed": n,
            "by": caller.name }))
        .into_response(),
        Err(e) => fail(&web, Format::Json, e),
    }
}

/// `GET /api/v1/openapi.json`.
async fn openapi() -> Response {
    axum::Json(openapi_document()).into_response()
}

/// The OpenAPI 3.1 document of `/api/v1`: paths, the worklist filter's parameters (from
/// [`crate::store::filter::FLAGS`]), and the finding's shape.
pub(super) fn openapi_document() -> Value {
    let filter_params: Vec<Value> = crate::store::filter::FLAGS
        .iter()
        .map(|f| {
            json!({ "name": f, "in": "query", "required": false,
            "schema": { "type": "string" },
            "description": format!("as `outwatch list --{f}`") })
        })
        .collect();
    let mut findings_params = filter_params.clone();
    findings_params.push(
        json!({ "name": "updated_since", "in": "query", "required": false,
        "schema": { "type": "string", "format": "date-time" },
        "description": "only findings stored or triaged at or after this time; use the \
            previous answer's X-Outwatch-Cursor header" }),
    );
    let mut worklist_params = filter_params;
    for p in ["page", "per"] {
        worklist_params.push(json!({ "name": p, "in": "query", "required": false,
            "schema": { "type": "integer", "minimum": 1 } }));
    }
    let jsonl = json!({ "description": "one finding per line",
        "headers": { "X-Outwatch-Cursor": { "schema": { "type": "string", "format": "date-time" } } },
        "content": { "application/x-ndjson": { "schema": { "$ref": "#/components/schemas/Finding" } } } });
    let obj = |d: &str| json!({ "description": d, "content": { "application/json": { "schema": { "type": "object" } } } });
    let fp = json!({ "name": "fp", "in": "path", "required": true, "schema": { "type": "string", "pattern": "^[0-9a-f]{32}$" } });
    json!({
        "openapi": "3.1.0",
        "info": { "title": "outwatch", "version": env!("CARGO_PKG_VERSION"),
            "description": "Findings about our network: the web view's data. Authorization: Bearer TOKEN (docs/web.md)." },
        "components": {
            "securitySchemes": { "bearer": { "type": "http", "scheme": "bearer" } },
            "schemas": { "Finding": finding_schema() }
        },
        "security": [ { "bearer": [] } ],
        "paths": {
            "/api/v1/findings": { "get": { "summary": "findings of a worklist filter, streamed",
                "parameters": findings_params, "responses": { "200": jsonl.clone() } } },
            "/api/v1/findings/{fp}": { "get": { "summary": "one finding with history, notifications, lists",
                "parameters": [fp.clone()], "responses": { "200": obj("the finding's detail"), "404": obj("no such finding") } } },
            "/api/v1/findings/{fp}/{action}": { "post": { "summary": "ack, unack, note or resolve (role triage)",
                "parameters": [fp, { "name": "action", "in": "path", "required": true,
                    "schema": { "type": "string", "enum": ["ack", "unack", "note", "resolve"] } }],
                "requestBody": { "content": { "application/json": { "schema": { "type": "object",
                    "properties": { "text": { "type": "string" } } } } } },
                "responses": { "200": obj("how many changed"), "403": obj("role read") } } },
            "/api/v1/lookup/{query}": { "get": { "summary": "every finding about an address, prefix, ASN, domain or mail address, streamed",
                "parameters": [{ "name": "query", "in": "path", "required": true, "schema": { "type": "string" } }],
                "responses": { "200": jsonl } } },
            "/api/v1/worklist": { "get": { "summary": "one sorted page of the worklist",
                "parameters": worklist_params, "responses": { "200": obj("the page") } } },
            "/api/v1/overview": { "get": { "summary": "open findings by severity and source, trend, feed health",
                "responses": { "200": obj("the overview") } } },
            "/api/v1/feeds": { "get": { "summary": "feed health per source", "responses": { "200": obj("feeds") } } },
            "/api/v1/flows": { "get": { "summary": "flow findings per host and kind", "responses": { "200": obj("flows") } } }
        }
    })
}

/// The finding's JSON shape, field by field as [`Finding`] serialises.
fn finding_schema() -> Value {
    let s = |t: &str| json!({ "type": t });
    let opt = |t: &str| json!({ "type": [t, "null"] });
    json!({
        "type": "object",
        "required": ["fingerprint", "source", "feed", "classification", "severity", "first_seen",
            "last_seen", "times_seen", "status"],
        "properties": {
            "fingerprint": s("string"), "source": s("string"), "feed": s("string"),
            "classification": { "type": "object", "properties": {
                "taxonomy": s("string"), "type": s("string"), "identifier": s("string") } },
            "ip": opt("string"), "network": opt("string"), "port": opt("integer"),
            "protocol": opt("string"), "asn": opt("integer"), "domain": opt("string"),
            "url": opt("string"), "email": opt("string"),
            "severity": { "type": "string", "enum": ["critical", "high", "medium", "low", "info"] },
            "time_source": opt("string"), "first_seen": s("string"), "last_seen": s("string"),
            "times_seen": s("integer"),
            "status": { "type": "string", "enum": ["new", "open", "resolved"] },
            "in_scope": s("boolean"), "extra": s("object"), "raw": opt("string"),
            "identity": { "type": "array", "items": s("string") },
            "history": { "type": "array", "items": { "type": "object", "properties": {
                "at": s("string"), "event": s("string"), "by": s("string"), "text": s("string") } } },
            "observations": { "type": "array", "items": s("object") },
            "observations_dropped": s("integer")
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::finding::{Classification, Severity};

    /// The document's finding schema names every field a finding serialises with, so it
    /// cannot fall behind the type.
    #[test]
    fn the_finding_schema_has_every_field() {
        let mut f = Finding::new(
            "s",
            "f",
            Classification::new("", "spam", "x"),
            Severity::Low,
        );
        f.identity = vec!["x".into()];
        f.observations_dropped = 1;
        f.observations = vec![crate::finding::Observation {
            time_source: None,
            differs: Default::default(),
        }];
        f.seal();
        let v = serde_json::to_value(&f).unwrap();
        let schema = finding_schema();
        for key in v.as_object().unwrap().keys() {
            assert!(
                schema["properties"][key].is_object(),
                "{key} is not in the schema"
            );
        }
        for key in schema["required"].as_array().unwrap() {
            assert!(v.get(key.as_str().unwrap()).is_some(), "{key}");
        }
    }

    #[test]
    fn updated_is_the_latest_of_storing_and_history() {
        let mut f = Finding::new(
            "s",
            "f",
            Classification::new("", "spam", "x"),
            Severity::Low,
        );
        let t0 = chrono::DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        f.last_seen = t0;
        assert_eq!(updated(&f), t0);
        f.push_history(t0 + chrono::Duration::hours(1), "new");
        assert_eq!(updated(&f), t0 + chrono::Duration::hours(1));
    }
}
