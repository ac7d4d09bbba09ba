//! The pages: each builds its JSON on the blocking pool (the store is synchronous) and hands
//! it to [`respond::page`], which renders its template or sends the JSON. Every list is cut
//! to the caller's scope and bounded.

use std::collections::BTreeMap;
use std::ops::ControlFlow;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, Uri};
use axum::response::{IntoResponse, Response};
use chrono::Duration;
use serde_json::{Value, json};

use super::access::Caller;
use super::respond::{self, Fail, Format, fail, page};
use super::server::Web;
use super::view::{self, row, time};
use crate::finding::rank::compare;
use crate::finding::{Finding, Severity, Status};
use crate::store::filter::Sort;
use crate::store::top::Top;
use crate::store::{Filter, Query, QueryOptions, Store};
use crate::triage::Suppressions;

/// Findings on a page of the worklist unless `per` says otherwise.
pub(super) const PER_PAGE: usize = 50;
/// Most findings on one page.
pub(super) const MAX_PER: usize = 500;
/// Most findings a list sorts in memory (the pages reach this far; `/api/v1/findings`
/// streams them all).
pub(super) const MAX_WINDOW: usize = 10_000;
/// Most findings an object page shows.
pub(super) const OBJECT_LIMIT: usize = 500;

/// A worklist query that cannot be read: the page, its size, or the filter.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(super) enum WorklistQueryError {
    #[error("page: not a number")]
    Page,
    #[error("per: not a number")]
    Per,
    #[error(transparent)]
    Filter(#[from] crate::store::filter::FilterError),
}

/// A worklist query: the filter's pairs (empty values left out, but the switches
/// `suppressed` and `all`), and the page and its size.
pub(super) fn worklist_query(q: &str) -> Result<(Filter, usize, usize), WorklistQueryError> {
    let mut pairs = Vec::new();
    let (mut page, mut per) = (1usize, PER_PAGE);
    for (k, v) in form_urlencoded::parse(q.as_bytes()) {
        match k.as_ref() {
            "page" => page = v.trim().parse().map_err(|_| WorklistQueryError::Page)?,
            "per" => per = v.trim().parse().map_err(|_| WorklistQueryError::Per)?,
            "suppressed" | "all" => pairs.push((k.into_owned(), String::new())),
            // The form's select for the two switches.
            "show" if v == "suppressed" || v == "all" => {
                pairs.push((v.into_owned(), String::new()))
            }
            "show" => {}
            _ if v.trim().is_empty() => {}
            _ => pairs.push((k.into_owned(), v.into_owned())),
        }
    }
    let filter = Filter::parse(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())))?;
    Ok((filter, page.max(1), per.clamp(1, MAX_PER)))
}

/// The filter with its ASNs' and teams' prefixes filled in.
fn resolved(web: &Web, store: &dyn Store, mut filter: Filter) -> Result<Filter, Fail> {
    crate::scope::resolve_filter(Some(web.cfg()), store, &mut filter).map_err(|e| match e {
        crate::scope::ResolveError::Store(s) => Fail::Store(s),
        e => Fail::BadRequest(e.to_string()),
    })?;
    Ok(filter)
}

/// The first `limit` findings of `filter` the caller sees, by its order, and how many match.
pub(super) fn top_of(
    web: &Web,
    store: &dyn Store,
    caller: &Caller,
    filter: Filter,
    limit: usize,
) -> Result<(Vec<Finding>, usize, Suppressions), Fail> {
    let filter = resolved(web, store, filter)?;
    let supp = Suppressions::load(store, Some(web.cfg()), web.now())?;
    let mut top = Top::new(Some(limit), filter.sort.order());
    store.select(&filter, &mut |f| {
        if caller.sees(&f) && filter.suppressed.shows(supp.suppressed(&f)) {
            top.push(f);
        }
        Ok(ControlFlow::Continue(()))
    })?;
    let total = top.seen();
    Ok((top.into_sorted_vec(), total, supp))
}

/// `GET /worklist[.json|.csv]`: the `outwatch list` filters as a form, sortable and paged.
pub(super) async fn worklist(
    State(web): State<Web>,
    caller: Caller,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let wants = Format::of(uri.path(), &headers);
    let (filter, page_no, per) = match worklist_query(uri.query().unwrap_or("")) {
        Ok(x) => x,
        Err(e) => return fail(&web, wants, Fail::BadRequest(e.to_string())),
    };
    let window = if wants == Format::Csv {
        MAX_WINDOW
    } else {
        (page_no * per).min(MAX_WINDOW)
    };
    let (w, c, f) = (web.clone(), caller.clone(), filter.clone());
    let got = web.blocking(move |s| top_of(&w, s, &c, f, window)).await;
    let (findings, total, supp) = match got {
        Ok(x) => x,
        Err(e) => return fail(&web, wants, e),
    };
    if wants == Format::Csv {
        return respond::csv(&findings, "worklist");
    }
    let start = ((page_no - 1) * per).min(findings.len());
    let rows: Vec<Value> = findings[start..].iter().map(|f| row(f, &supp)).collect();
    let data = worklist_json(&filter, page_no, per, total, rows);
    page(&web, &caller, wants, "worklist.html", data)
}

/// The worklist's JSON: the filter (as pairs, query string and command), sort links, the
/// page, its rows.
fn worklist_json(
    filter: &Filter,
    page_no: usize,
    per: usize,
    total: usize,
    rows: Vec<Value>,
) -> Value {
    let query = filter.to_query_string();
    let values: BTreeMap<&str, String> = filter.pairs().into_iter().collect();
    let sorts: Vec<Value> = Sort::ALL
        .iter()
        .map(|s| {
            let mut f = filter.clone();
            f.sort = *s;
            json!({ "name": s.as_str(), "query": f.to_query_string(), "current": *s == filter.sort })
        })
        .collect();
    let reachable = total.min(MAX_WINDOW);
    let pages = reachable.div_ceil(per).max(1);
    let link = |p: usize| {
        let sep = if query.is_empty() { "" } else { "&" };
        format!("{query}{sep}page={p}&per={per}")
    };
    json!({
        "title": "Worklist",
        "query": query,
        "command": filter.to_command(),
        "values": values,
        "show": match filter.suppressed {
            crate::store::filter::Suppressed::Hide => "",
            crate::store::filter::Suppressed::Only => "suppressed",
            crate::store::filter::Suppressed::Include => "all",
        },
        "sort": filter.sort.as_str(),
        "sorts": sorts,
        "severities": Severity::ALL.iter().map(|s| s.as_str()).collect::<Vec<_>>(),
        "total": total,
        "page": page_no,
        "per": per,
        "pages": pages,
        "prev": (page_no > 1).then(|| link(page_no - 1)),
        "next": (page_no < pages).then(|| link(page_no + 1)),
        "capped": total > MAX_WINDOW,
        "findings": rows,
    })
}

/// `GET /lookup?q=...`: the search box's target, sent on to the object's page.
pub(super) async fn lookup_form(uri: Uri) -> Response {
    let q = form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
        .find(|(k, _)| k == "q")
        .map(|(_, v)| v.trim().to_string())
        .unwrap_or_default();
    let to = format!("/lookup/{}", view::path_escape(&q));
    axum::response::Redirect::to(&to).into_response()
}

/// `GET /lookup/QUERY[.json|.csv]`: one object (address, prefix, ASN, domain, mail address):
/// every finding about it the caller sees (resolved too), each whole.
pub(super) async fn lookup(
    State(web): State<Web>,
    caller: Caller,
    Path(query): Path<String>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let wants = Format::of(uri.path(), &headers);
    let text = query
        .strip_suffix(".json")
        .or_else(|| query.strip_suffix(".csv"))
        .unwrap_or(&query)
        .trim()
        .to_string();
    let q: Query = match text.parse() {
        Ok(q) => q,
        Err(e) => return fail(&web, wants, Fail::BadRequest(format!("{e}"))),
    };
    let (w, c, qq) = (web.clone(), caller.clone(), q.clone());
    let got = web.blocking(move |s| object(&w, s, &c, &qq)).await;
    let (findings, total, details) = match got {
        Ok(x) => x,
        Err(e) => return fail(&web, wants, e),
    };
    if wants == Format::Csv {
        return respond::csv(&findings, "lookup");
    }
    let open = findings
        .iter()
        .filter(|f| f.status != Status::Resolved)
        .count();
    let data = json!({
        "title": format!("{} {}", view::kind_of(&q), text),
        "kind": view::kind_of(&q),
        "query": text,
        "total": total,
        "shown": findings.len(),
        "open": open,
        "findings": details,
    });
    page(&web, &caller, wants, "lookup.html", data)
}

type Object = (Vec<Finding>, usize, Vec<Value>);

fn object(web: &Web, store: &dyn Store, caller: &Caller, q: &Query) -> Result<Object, Fail> {
    let opts = QueryOptions {
        include_resolved: true,
        ..Default::default()
    };
    let mut top = Top::new(Some(OBJECT_LIMIT), compare);
    let mut take = |f: Finding| {
        if caller.sees(&f) {
            top.push(f);
        }
        Ok(ControlFlow::Continue(()))
    };
    if let Query::Asn(asn) = q {
        // As `outwatch lookup AS…`: the findings that carry it and those inside the prefixes
        // it announces (the cached scope snapshot).
        let filter = Filter {
            asn: vec![*asn],
            status: crate::store::filter::Statuses::ALL,
            suppressed: crate::store::filter::Suppressed::Include,
            ..Default::default()
        };
        store.select(&resolved(web, store, filter)?, &mut take)?;
    } else {
        store.query_each(q, &opts, &mut take)?;
    }
    let total = top.seen();
    let findings = top.into_sorted_vec();
    let supp = Suppressions::load(store, Some(web.cfg()), web.now())?;
    let listed = match view::address_of(q) {
        Some(ip) if caller.scope.as_ref().is_none_or(|s| s.allows_ip(ip)) => {
            crate::indicators::listed_by(store, ip)?
        }
        _ => Vec::new(),
    };
    let mut details = Vec::with_capacity(findings.len());
    for f in &findings {
        let sent = crate::notify::record::sent_of(store, &f.fingerprint)?;
        details.push(view::detail(f, &supp, sent.as_ref(), &listed));
    }
    Ok((findings, total, details))
}

/// `GET /finding/FINGERPRINT[.json]`: one finding whole, with its triage forms.
pub(super) async fn finding(
    State(web): State<Web>,
    caller: Caller,
    Path(fp): Path<String>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let wants = Format::of(uri.path(), &headers);
    let fp = fp.strip_suffix(".json").unwrap_or(&fp).to_ascii_lowercase();
    if fp.len() != 32 || !fp.bytes().all(|b| b.is_ascii_hexdigit()) {
        return fail(
            &web,
            wants,
            Fail::BadRequest("a fingerprint is 32 hex digits".into()),
        );
    }
    let (w, c) = (web.clone(), caller.clone());
    let got = web
        .blocking(move |s| {
            let f = s
                .get(&fp)?
                .filter(|f| c.sees(f))
                .ok_or_else(|| Fail::NotFound("no such finding".into()))?;
            let supp = Suppressions::load(s, Some(w.cfg()), w.now())?;
            let sent = crate::notify::record::sent_of(s, &f.fingerprint)?;
            let listed = match f.ip {
                Some(ip) => crate::indicators::listed_by(s, ip)?,
                None => Vec::new(),
            };
            Ok(view::detail(&f, &supp, sent.as_ref(), &listed))
        })
        .await;
    match got {
        Ok(d) => {
            let data = json!({ "title": format!("Finding {}", d["short"].as_str().unwrap_or("")),
                "finding": d });
            page(&web, &caller, wants, "finding.html", data)
        }
        Err(e) => fail(&web, wants, e),
    }
}

/// `GET /` and `/overview.json`: open findings by severity × source, new since yesterday,
/// feed health, a 30-day trend. The counts are a walk over the store, kept for a minute.
pub(super) async fn overview(
    State(web): State<Web>,
    caller: Caller,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let wants = Format::of(uri.path(), &headers);
    let key = if caller.scope.is_some() {
        caller.name.clone()
    } else {
        String::new()
    };
    let counts = match web.cached_overview(&key) {
        Some(v) => v,
        None => {
            let (w, c) = (web.clone(), caller.clone());
            match web.blocking(move |s| counts(&w, s, &c)).await {
                Ok(v) => {
                    web.keep_overview(&key, &v);
                    v
                }
                Err(e) => return fail(&web, wants, e),
            }
        }
    };
    let w = web.clone();
    let health = match web
        .blocking(move |s| Ok(crate::health::assess(w.cfg(), s, w.now())?))
        .await
    {
        Ok(h) => h,
        Err(e) => return fail(&web, wants, e),
    };
    let mut data = counts;
    if let Some(o) = data.as_object_mut() {
        o.insert("title".into(), json!("Overview"));
        o.insert("health".into(), health_json(&web, &health));
    }
    page(&web, &caller, wants, "overview.html", data)
}

/// How often the unscoped overview's counts are made again in the background, so that a
/// request finds them ready (under [`crate::web::server::OVERVIEW_TTL`]).
pub(super) const OVERVIEW_REFRESH: std::time::Duration = std::time::Duration::from_secs(50);

/// Keeps the unscoped overview's counts fresh until `stop` turns true: a page never waits for
/// the walk over the store (scoped tokens' counts are made on their first request).
pub(super) async fn keep_overview_fresh(web: Web, mut stop: tokio::sync::watch::Receiver<bool>) {
    let everyone = Caller {
        name: String::new(),
        role: crate::config::web::Role::Read,
        scope: None,
        csrf: String::new(),
        by_header: false,
    };
    loop {
        let (w, c) = (web.clone(), everyone.clone());
        match web.blocking(move |s| counts(&w, s, &c)).await {
            Ok(v) => web.keep_overview("", &v),
            Err(e) => tracing::warn!(error = ?e, "web: the overview's counts failed"),
        }
        tokio::select! {
            _ = tokio::time::sleep(OVERVIEW_REFRESH) => {}
            r = stop.changed() => if r.is_err() { return; },
        }
        if *stop.borrow() {
            return;
        }
    }
}

/// Days the overview's trend covers.
pub(super) const TREND_DAYS: i64 = 30;

fn counts(web: &Web, store: &dyn Store, caller: &Caller) -> Result<Value, Fail> {
    let now = web.now();
    let day0 = (now - Duration::days(TREND_DAYS - 1)).date_naive();
    let yesterday = now - Duration::days(1);
    let mut by: BTreeMap<String, [usize; 5]> = BTreeMap::new();
    let mut new_since = 0usize;
    let mut open = 0usize;
    let mut trend = vec![0usize; TREND_DAYS as usize];
    store.for_each(&mut |f| {
        if !caller.sees(&f) {
            return Ok(());
        }
        let d = (f.first_seen.date_naive() - day0).num_days();
        if (0..TREND_DAYS).contains(&d) {
            trend[d as usize] += 1;
        }
        if f.status != Status::Resolved {
            open += 1;
            let i = Severity::ALL
                .iter()
                .position(|s| *s == f.severity)
                .unwrap_or(4);
            by.entry(f.source.clone()).or_default()[i] += 1;
            if f.first_seen >= yesterday {
                new_since += 1;
            }
        }
        Ok(())
    })?;
    let rows: Vec<Value> = by
        .iter()
        .map(|(src, n)| {
            json!({ "source": src, "counts": n, "total": n.iter().sum::<usize>(),
                "link": Filter { source: vec![src.clone()], ..Default::default() }.to_query_string() })
        })
        .collect();
    let mut totals = [0usize; 5];
    for n in by.values() {
        for (t, x) in totals.iter_mut().zip(n) {
            *t += x;
        }
    }
    let since = Filter {
        stored_since: Some(yesterday),
        ..Default::default()
    };
    Ok(json!({
        "open": open,
        "severities": Severity::ALL.iter().map(|s| s.as_str()).collect::<Vec<_>>(),
        "by_source": rows,
        "totals": totals,
        "new_since_yesterday": new_since,
        "new_link": since.to_query_string(),
        "trend": trend_json(&trend, day0),
        "counted_at": time(now),
    }))
}

/// The trend as bars of an inline SVG (600 × 120 user units).
fn trend_json(days: &[usize], day0: chrono::NaiveDate) -> Value {
    let max = days.iter().copied().max().unwrap_or(0).max(1);
    let w = 600.0 / days.len().max(1) as f64;
    let bars: Vec<Value> = days
        .iter()
        .enumerate()
        .map(|(i, n)| {
            let h = (*n as f64 / max as f64 * 100.0).round();
            json!({ "x": (i as f64 * w + 1.0).round(), "w": (w - 2.0).max(1.0).round(),
                "y": 110.0 - h, "h": h, "n": n,
                "day": (day0 + Duration::days(i as i64)).to_string() })
        })
        .collect();
    json!({ "max": max, "bars": bars, "first": day0.to_string(),
        "last": (day0 + Duration::days(days.len() as i64 - 1)).to_string() })
}

/// Feed health for a page: the judgement of `outwatch status`, with the next run.
fn health_json(web: &Web, health: &[crate::health::SourceHealth]) -> Value {
    let now = web.now();
    Value::Array(
        health
            .iter()
            .map(|h| {
                let next = web
                    .schedules()
                    .get(&h.name)
                    .and_then(|s| s.next_after(&now));
                json!({
                    "name": h.name,
                    "state": h.state.as_str(),
                    "last_success": h.last_success.map(time),
                    "last_run": h.last_run.map(time),
                    "last_error": h.last_error,
                    "last_rows": h.last_rows,
                    "warnings": h.warnings,
                    "notes": h.notes,
                    "next_run": next.map(time),
                })
            })
            .collect(),
    )
}

/// `GET /feeds[.json]`: per source its health, last success, error and next run; the kept
/// indicator sets.
pub(super) async fn feeds(
    State(web): State<Web>,
    caller: Caller,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let wants = Format::of(uri.path(), &headers);
    let w = web.clone();
    let got = web
        .blocking(move |s| {
            let h = crate::health::assess(w.cfg(), s, w.now())?;
            let sets = crate::indicators::kept_sets(s)?;
            Ok((h, sets))
        })
        .await;
    let (health, sets) = match got {
        Ok(x) => x,
        Err(e) => return fail(&web, wants, e),
    };
    let sets: Vec<Value> = sets
        .iter()
        .map(|s| {
            json!({ "feed": s.feed, "unit": s.unit, "fetched": time(s.fetched),
            "entries": s.entries, "cut": s.cut })
        })
        .collect();
    let data = json!({ "title": "Feeds", "feeds": health_json(&web, &health),
        "indicator_sets": sets, "now": time(web.now()) });
    page(&web, &caller, wants, "feeds.html", data)
}

/// Most host-and-kind groups the flows page lists.
pub(super) const FLOW_GROUPS: usize = 1_000;

/// `GET /flows[.json|.csv]`: the open flow findings per host and kind.
pub(super) async fn flows(
    State(web): State<Web>,
    caller: Caller,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let wants = Format::of(uri.path(), &headers);
    let filter = Filter {
        source: vec![crate::finding::SourceId::Flows.to_string()],
        sort: Sort::Time,
        ..Default::default()
    };
    let (w, c) = (web.clone(), caller.clone());
    let got = web
        .blocking(move |s| top_of(&w, s, &c, filter, MAX_WINDOW))
        .await;
    let (findings, total, _) = match got {
        Ok(x) => x,
        Err(e) => return fail(&web, wants, e),
    };
    if wants == Format::Csv {
        return respond::csv(&findings, "flows");
    }
    let mut groups: BTreeMap<(String, String), (usize, String, String, Severity)> = BTreeMap::new();
    for f in &findings {
        let host = f.ip.map(|i| i.to_string()).unwrap_or_else(|| f.indicator());
        let key = (host, f.feed.clone());
        if !groups.contains_key(&key) && groups.len() >= FLOW_GROUPS {
            continue;
        }
        let g = groups
            .entry(key)
            .or_insert((0, String::new(), f.fingerprint.clone(), f.severity));
        g.0 += 1;
        let seen = time(crate::finding::rank::observed(f));
        if seen > g.1 {
            g.1 = seen;
            g.2 = f.fingerprint.clone();
        }
        g.3 = g.3.min(f.severity);
    }
    let rows: Vec<Value> = groups
        .into_iter()
        .map(|((host, kind), (n, last, fp, sev))| {
            json!({ "host": host, "kind": kind, "findings": n, "last": last,
                "latest": fp, "severity": sev.as_str() })
        })
        .collect();
    let data = json!({ "title": "Flows", "total": total, "groups": rows,
        "now": time(web.now()) });
    page(&web, &caller, wants, "flows.html", data)
}

/// `GET /login`: the form that sets the token cookie.
pub(super) async fn login_form(State(web): State<Web>) -> Response {
    let ctx = json!({ "title": "Log in", "message": "", "csrf": "" });
    match respond::render(&web, "login.html", &ctx) {
        Ok(body) => (respond::html_headers(), body).into_response(),
        Err(e) => fail(&web, Format::Html, e),
    }
}
