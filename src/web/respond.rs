//! One answer in the format asked for: a path ending `.json` or `.csv`, else the `Accept`
//! header (`application/json`, `text/csv`), else HTML rendered from the page's template with
//! the page's JSON as its context (so the JSON of a page is exactly what its template shows).

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::access::Caller;
pub(super) use super::fail::Fail;
use super::server::Web;
use crate::finding::Finding;
use crate::finding::csv::{CSV_HEADER, csv_row};

/// What the client asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Format {
    Html,
    Json,
    Csv,
}

impl Format {
    /// By the path's suffix, else `Accept`.
    pub(super) fn of(path: &str, headers: &HeaderMap) -> Format {
        if path.starts_with("/api/") || path.ends_with(".json") {
            return Format::Json;
        }
        if path.ends_with(".csv") {
            return Format::Csv;
        }
        let accept = headers
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if accept.starts_with("application/json") {
            Format::Json
        } else if accept.starts_with("text/csv") {
            Format::Csv
        } else {
            Format::Html
        }
    }
}

/// A failure as an answer.
pub(super) fn fail(web: &Web, wants: Format, f: Fail) -> Response {
    let status = f.status();
    let message = f.message();
    match wants {
        Format::Json => (status, axum::Json(json!({ "error": message }))).into_response(),
        Format::Csv => (
            status,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            message,
        )
            .into_response(),
        Format::Html => {
            let ctx = json!({ "title": status.canonical_reason().unwrap_or("error"),
                "status": status.as_u16(), "message": message });
            match render(web, "error.html", &ctx) {
                Ok(body) => (status, html_headers(), body).into_response(),
                Err(_) => (status, message).into_response(),
            }
        }
    }
}

/// A request without a (known) token: 401; a browser gets the login page.
pub(super) fn refused(web: &Web, wants: Format, why: &str) -> Response {
    match wants {
        Format::Html => {
            let ctx = json!({ "title": "Log in", "message": why, "csrf": "" });
            let body = render(web, "login.html", &ctx).unwrap_or_else(|_| why.to_string());
            (StatusCode::UNAUTHORIZED, html_headers(), body).into_response()
        }
        _ => (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer")],
            axum::Json(json!({ "error": why })),
        )
            .into_response(),
    }
}

/// Headers of every HTML page: no external resource may load, the page is not framed.
pub(super) fn html_headers() -> [(header::HeaderName, HeaderValue); 5] {
    [
        (
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/html; charset=utf-8"),
        ),
        (
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(
                "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; \
                 form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
            ),
        ),
        (header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")),
        (
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ),
        (
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ),
    ]
}

/// Renders a template with `ctx` (the page's JSON).
pub(super) fn render(web: &Web, template: &str, ctx: &Value) -> Result<String, Fail> {
    let t = web
        .env()
        .get_template(template)
        .map_err(|e| Fail::Internal(format!("template {template}: {e}")))?;
    t.render(minijinja::value::Serde(ctx))
        .map_err(|e| Fail::Internal(format!("template {template}: {e:#}")))
}

/// A page: its JSON as JSON, else rendered with `template` (the caller's name and CSRF
/// token added for the layout).
pub(super) fn page(
    web: &Web,
    caller: &Caller,
    wants: Format,
    template: &str,
    data: Value,
) -> Response {
    match wants {
        Format::Json | Format::Csv => axum::Json(data).into_response(),
        Format::Html => {
            let mut ctx = data;
            if let Some(o) = ctx.as_object_mut() {
                o.insert(
                    "caller".into(),
                    json!({ "name": caller.name, "role": caller.role.as_str(),
                        "scoped": caller.scope.is_some(), "may_triage": caller.may_triage() }),
                );
                o.insert("csrf".into(), json!(caller.csrf));
            }
            match render(web, template, &ctx) {
                Ok(body) => (html_headers(), body).into_response(),
                Err(f) => fail(web, wants, f),
            }
        }
    }
}

/// Findings as CSV (the columns of `outwatch list --format csv`).
pub(super) fn csv(findings: &[Finding], name: &str) -> Response {
    let mut w = csv::Writer::from_writer(Vec::new());
    let _ = w.write_record(CSV_HEADER);
    for f in findings {
        let _ = w.write_record(csv_row(f));
    }
    let body = w.into_inner().unwrap_or_default();
    (
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}.csv\""),
            ),
        ],
        body,
    )
        .into_response()
}
