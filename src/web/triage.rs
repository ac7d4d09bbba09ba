//! The POSTs: triage of one finding (ack, unack, note, resolve) through the one apply path of
//! the CLI ([`actions::apply`], `Store::modify`), a suppression rule
//! ([`crate::triage::suppress::add`]), and logging in and out. Each needs the `triage` role
//! (logging in excepted), and a form its CSRF token; the author is the token's name. On the
//! daemon the store is the daemon's own; `outwatch serve` beside a daemon writes through it.

use axum::Form;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Uri, header};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use serde_json::json;

use super::access::{COOKIE, Caller, csrf_ok};
use super::respond::{self, Fail, Format, fail};
use super::server::Web;
use crate::config::suppress::{Until, check_text};
use crate::config::{Asn, DomainName};
use crate::finding::Triage;
use crate::triage::actions::{self, Action};
use crate::triage::suppress::{self, Origin, Rule};

/// A triage form: the CSRF token and the reason or note.
#[derive(Debug, Default, Deserialize)]
pub(super) struct TriageForm {
    #[serde(default)]
    pub csrf: String,
    #[serde(default)]
    pub text: String,
    /// Where to go afterwards: a path of this site (the worklist the form was on), else the
    /// finding's page.
    #[serde(default)]
    pub back: String,
}

/// `back` when it is a path of this site (`/…`, not `//host`), else `default`.
pub(super) fn local_path(back: &str, default: String) -> String {
    let ok = back.starts_with('/')
        && !back.starts_with("//")
        && !back.contains(['\\', '\r', '\n'])
        && back.len() <= 2000;
    if ok { back.to_string() } else { default }
}

/// The action a path names.
pub(super) fn action_of(name: &str) -> Option<Action> {
    match name {
        "ack" => Some(Action::Ack),
        "unack" => Some(Action::Unack),
        "resolve" => Some(Action::Resolve),
        "note" => Some(Action::Note),
        _ => None,
    }
}

/// Whether the caller may change things (role, and the form's CSRF token).
pub(super) fn may_write(caller: &Caller, csrf: &str) -> Result<(), Fail> {
    if !caller.may_triage() {
        return Err(Fail::Forbidden(format!(
            "`{}` has the read role: triage needs a token with role = \"triage\"",
            caller.name
        )));
    }
    if !csrf_ok(caller, csrf) {
        return Err(Fail::Forbidden(
            "the form's CSRF token is missing or stale: reload the page and try again".into(),
        ));
    }
    Ok(())
}

/// Applies `action` to the finding `fp` as the caller; how many changed (0: it did not apply).
pub(super) async fn apply(
    web: &Web,
    caller: &Caller,
    fp: &str,
    action: Action,
    text: &str,
) -> Result<usize, Fail> {
    let what = if action == Action::Note {
        "the note"
    } else {
        "the reason"
    };
    let required = matches!(action, Action::Note);
    check_text(what, text, required).map_err(|e| Fail::BadRequest(e.to_string()))?;
    let fp = fp.trim().to_ascii_lowercase();
    if fp.len() != 32 || !fp.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(Fail::BadRequest("a fingerprint is 32 hex digits".into()));
    }
    let t = Triage {
        by: caller.name.clone(),
        text: text.trim().to_string(),
    };
    let (w, c) = (web.clone(), caller.clone());
    web.blocking(move |s| {
        let f = s
            .get(&fp)?
            .filter(|f| c.sees(f))
            .ok_or_else(|| Fail::NotFound("no such finding".into()))?;
        if let Some(why) = action.refusal(&f) {
            return Err(Fail::BadRequest(format!("the finding {why}")));
        }
        let n = actions::apply(s, std::slice::from_ref(&fp), action, &t, w.now())?;
        s.flush()?;
        Ok(n)
    })
    .await
}

/// `POST /finding/FP/ACTION` (a form): the action, then back to the finding's page.
pub(super) async fn act(
    State(web): State<Web>,
    caller: Caller,
    Path((fp, name)): Path<(String, String)>,
    uri: Uri,
    headers: HeaderMap,
    Form(form): Form<TriageForm>,
) -> Response {
    let wants = Format::of(uri.path(), &headers);
    let Some(action) = action_of(&name) else {
        return fail(&web, wants, Fail::NotFound("no such action".into()));
    };
    if let Err(e) = may_write(&caller, &form.csrf) {
        return fail(&web, wants, e);
    }
    match apply(&web, &caller, &fp, action, &form.text).await {
        Ok(_) => {
            let to = local_path(&form.back, format!("/finding/{}", fp.to_ascii_lowercase()));
            Redirect::to(&to).into_response()
        }
        Err(e) => fail(&web, wants, e),
    }
}

/// A suppression form: one of `cidr`, `asn`, `domain`, optionally narrowed, until, why.
#[derive(Debug, Default, Deserialize)]
pub(super) struct SuppressForm {
    #[serde(default)]
    pub csrf: String,
    #[serde(default)]
    pub cidr: String,
    #[serde(default)]
    pub asn: String,
    #[serde(default)]
    pub domain: String,
    #[serde(default)]
    pub source: String,
    #[serde(default)]
    pub feed: String,
    #[serde(default)]
    pub until: String,
    #[serde(default)]
    pub reason: String,
}

fn opt(s: &str) -> Option<String> {
    let t = s.trim();
    (!t.is_empty()).then(|| t.to_string())
}

/// The rule a form asks for, checked as `outwatch suppress add` checks it; a scoped caller
/// may suppress only inside its scope.
pub(super) fn rule_of(
    caller: &Caller,
    form: &SuppressForm,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<Rule, Fail> {
    let bad = Fail::BadRequest;
    let cidr = opt(&form.cidr)
        .map(|c| {
            c.parse::<ipnet::IpNet>()
                .or_else(|_| c.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                .map(|n| n.trunc())
                .map_err(|_| {
                    bad(format!(
                        "cidr: `{}` is not a prefix",
                        crate::text::clip(&c, 60)
                    ))
                })
        })
        .transpose()?;
    let asn = opt(&form.asn)
        .map(|a| a.parse::<Asn>().map_err(|e| bad(format!("asn: {e}"))))
        .transpose()?;
    let domain = opt(&form.domain)
        .map(|d| {
            d.parse::<DomainName>()
                .map_err(|e| bad(format!("domain: {e}")))
        })
        .transpose()?;
    if [cidr.is_some(), asn.is_some(), domain.is_some()]
        .iter()
        .filter(|x| **x)
        .count()
        != 1
    {
        return Err(bad("give one of cidr, asn or domain".into()));
    }
    let until =
        Until::parse(form.until.trim(), Some(now)).map_err(|e| bad(format!("until: {e}")))?;
    if until.0 <= now {
        return Err(bad(
            "until is not in the future: the rule would suppress nothing".into(),
        ));
    }
    check_text("the reason", &form.reason, true).map_err(|e| bad(e.to_string()))?;
    for (k, v) in [("source", &form.source), ("feed", &form.feed)] {
        check_text(k, v, false).map_err(|e| bad(e.to_string()))?;
    }
    if let Some(scope) = &caller.scope {
        let inside = cidr.is_some_and(|c| scope.nets.iter().any(|n| n.contains(&c)))
            || asn.is_some_and(|a| scope.asns.contains(&a.0))
            || domain.as_ref().is_some_and(|d| {
                scope
                    .domains
                    .iter()
                    .any(|s| d.0 == *s || d.0.ends_with(&format!(".{s}")))
            });
        if !inside {
            return Err(Fail::Forbidden(
                "the rule reaches outside this token's scope".into(),
            ));
        }
    }
    Ok(Rule {
        id: String::new(),
        origin: Origin::Store,
        cidr,
        asn: asn.map(|a| a.0),
        domain: domain.map(|d| d.0),
        source: opt(&form.source),
        feed: opt(&form.feed),
        identifier: None,
        port: None,
        until: until.0,
        reason: form.reason.trim().to_string(),
        by: caller.name.clone(),
        created: None,
    })
}

/// `POST /suppress` (a form): adds the rule, then shows the worklist of what it suppresses.
pub(super) async fn suppress(
    State(web): State<Web>,
    caller: Caller,
    uri: Uri,
    headers: HeaderMap,
    Form(form): Form<SuppressForm>,
) -> Response {
    let wants = Format::of(uri.path(), &headers);
    if let Err(e) = may_write(&caller, &form.csrf) {
        return fail(&web, wants, e);
    }
    let rule = match rule_of(&caller, &form, web.now()) {
        Ok(r) => r,
        Err(e) => return fail(&web, wants, e),
    };
    let w = web.clone();
    let got = web
        .blocking(move |s| {
            let r = suppress::add(s, rule, w.now())?;
            s.flush()?;
            Ok(r)
        })
        .await;
    match got {
        Ok(r) if wants == Format::Json => axum::Json(json!({ "rule": r })).into_response(),
        Ok(_) => Redirect::to("/worklist?suppressed=").into_response(),
        Err(e) => fail(&web, wants, e),
    }
}

/// The login form.
#[derive(Debug, Default, Deserialize)]
pub(super) struct LoginForm {
    #[serde(default)]
    pub token: String,
}

/// `POST /login`: a known token is kept in an HttpOnly, SameSite=Strict cookie (`Secure`
/// too when a proxy says the request came over HTTPS: `X-Forwarded-Proto: https`).
pub(super) async fn login(
    State(web): State<Web>,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Response {
    let t = form.token.trim();
    let plain = !t.is_empty()
        && t.bytes()
            .all(|b| b.is_ascii_graphic() && b != b';' && b != b',');
    let known = plain && web.knows(t);
    if !known {
        return respond::refused(&web, Format::Html, "this token is not known here");
    }
    let https = headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("https"));
    let secure = if https { "; Secure" } else { "" };
    (
        [(
            header::SET_COOKIE,
            format!("{COOKIE}={t}; Path=/; HttpOnly; SameSite=Strict{secure}"),
        )],
        Redirect::to("/"),
    )
        .into_response()
}

/// `POST /logout`: the cookie is cleared.
pub(super) async fn logout() -> Response {
    (
        [(
            header::SET_COOKIE,
            format!("{COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0"),
        )],
        Redirect::to("/login"),
    )
        .into_response()
}
