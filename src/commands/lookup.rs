//! `outwatch lookup`: everything known about an IP, a prefix, a domain, a mail address or an ASN.

use crate::outln;
use std::ops::ControlFlow;
use std::process::ExitCode;

use ipnet::IpNet;

use crate::app::App;
use crate::cli::LookupArgs;
use crate::commands::findings_table::{STORED_NOTE, findings_table};
use crate::commands::indicator_sets;
use crate::error::CliError;
use crate::finding::Finding;
use crate::output::{Stream, stdout_error, thousands};
use crate::scope::{self, ScopeMatcher};
use crate::store::filter::Statuses;
use crate::store::top::{Top, most_severe_first};
use crate::store::{Filter, Flow, Pasted, Query, QueryOptions, Store};
use crate::text::{clip_middle, sanitize};
use crate::triage::Suppressions;

/// Whether the query itself is inside our scope.
pub fn query_in_scope(q: &Query, m: &ScopeMatcher) -> bool {
    match q {
        Query::Ip(ip) => m.contains_ip(*ip),
        Query::Net(n) => m.overlaps_net(*n),
        Query::Domain(d) => m.match_domain(d).is_some(),
        Query::Email(e) => m.contains_email(e),
        Query::Asn(a) => m.contains_asn(*a),
    }
}

/// Findings shown in the table unless `--limit` says otherwise.
pub const DEFAULT_LIMIT: usize = 50;
/// The most findings a lookup sorts (and so holds) in memory, in the CLI or the daemon: the
/// table shows at most this many, and `--json`/`--jsonl` with a larger `--limit` write the
/// first N in store order as they are found, unsorted.
pub const MAX_SORTED: usize = crate::daemon::protocol::MAX_TOP;

/// The table's `--limit` (default [`DEFAULT_LIMIT`]), cut to [`MAX_SORTED`]; the limit asked
/// when it was cut.
fn table_limit(asked: Option<usize>) -> (usize, Option<usize>) {
    let n = asked.unwrap_or(DEFAULT_LIMIT);
    if n > MAX_SORTED {
        (MAX_SORTED, Some(n))
    } else {
        (n, None)
    }
}

/// Where the query stands: in our scope, or (an address) inside the network's own logs'
/// ranges (`[flows]` internal ranges, zones, teams: ours too), or not ours.
fn scope_note(app: &App, q: &Query, in_scope: bool) -> &'static str {
    let flows_host = match (q, app.config.as_ref()) {
        (Query::Ip(ip), Some(cfg)) if !in_scope => {
            crate::flows::analyse::zones::Ours::new(ScopeMatcher::default(), &cfg.flows)
                .contains(*ip)
        }
        _ => false,
    };
    if in_scope {
        "in your scope"
    } else if flows_host {
        "inside your [flows] networks"
    } else {
        "not in your scope"
    }
}

/// Says that the table's `--limit` was cut to [`MAX_SORTED`].
fn note_capped(asked: usize) {
    eprintln!(
        "note: --limit {} is more than a table sorts in memory ({}): the {} most severe are \
         shown; --jsonl --limit {} writes them as they are found",
        thousands(asked),
        thousands(MAX_SORTED),
        thousands(MAX_SORTED),
        thousands(asked)
    );
}

/// What a lookup walks and keeps: the store queries, or a filter over the whole store instead
/// (an ASN: the findings whose `asn` it is, or inside the prefixes it announces; a URL: the
/// findings with that URL, or about its host), and what narrows what they find (a pasted
/// port; the observation and stored times).
pub struct Plan {
    queries: Vec<Query>,
    /// An ASN's or a URL's walk ([`Store::select`]).
    walk: Option<Filter>,
    /// A URL's host: the findings about it ([`Filter::matches`]).
    host: Option<Filter>,
    /// The times asked (`--since`, `--until`, `--stored-until`), every status let through.
    times: Filter,
    pasted: Pasted,
    /// How many prefixes the ASN announces (the cached snapshot).
    announced: usize,
}

impl Plan {
    /// The plan of a pasted query: for an ASN, the prefixes it announces (from the cached
    /// snapshot), merged; `base` holds the times and statuses asked.
    pub fn new(pasted: Pasted, snap: &scope::ScopeSnapshot, base: &Filter) -> Plan {
        let mut times = base.clone();
        times.status = Statuses::ALL;
        let mut plan = Plan {
            queries: vec![pasted.query.clone()],
            walk: None,
            host: None,
            times,
            pasted,
            announced: 0,
        };
        if let Query::Asn(asn) = plan.pasted.query {
            let prefixes: Vec<IpNet> = snap
                .asns
                .iter()
                .filter(|x| x.asn == asn)
                .flat_map(|x| x.prefixes.iter().copied())
                .collect();
            plan.announced = prefixes.len();
            let mut f = base.clone();
            f.asn = vec![asn];
            f.asn_prefixes = IpNet::aggregate(&prefixes);
            plan.walk = Some(f);
            plan.queries.clear();
        } else if plan.pasted.url.is_some() {
            let mut host = plan.times.clone();
            match &plan.pasted.query {
                Query::Ip(ip) => host.prefix = vec![IpNet::from(*ip)],
                Query::Domain(d) => host.domain = vec![d.clone()],
                _ => {}
            }
            plan.host = Some(host);
            plan.walk = Some(base.clone());
            plan.queries.clear();
        }
        plan
    }

    /// Whether a finding the walk found is kept.
    fn keeps(&self, f: &Finding) -> bool {
        let about = match (&self.pasted.url, &self.host) {
            (Some(url), Some(host)) => {
                f.url.as_deref().is_some_and(|u| same_url(u, url)) || host.matches(f)
            }
            _ => true,
        };
        about && self.pasted.keeps(f) && self.times.matches(f)
    }

    /// Whether the store's own query is the whole answer (nothing to narrow).
    fn plain(&self) -> bool {
        self.pasted.port.is_none()
            && self.times.since.is_none()
            && self.times.until.is_none()
            && self.times.stored_until.is_none()
    }
}

/// Whether two URLs are the same as people paste them: scheme and host in any case, a
/// trailing `/` or none.
fn same_url(a: &str, b: &str) -> bool {
    let split = |u: &str| -> (String, String) {
        let u = u.trim();
        let (scheme, rest) = u.split_once("://").unwrap_or(("", u));
        let (host, path) = rest.split_at(rest.find(['/', '?', '#']).unwrap_or(rest.len()));
        let path = path.strip_suffix('/').unwrap_or(path);
        (
            format!(
                "{}://{}",
                scheme.to_ascii_lowercase(),
                host.to_ascii_lowercase()
            ),
            path.to_string(),
        )
    };
    split(a) == split(b)
}

/// The first `limit` findings of the plan, most severe first then newest, and how many there
/// are. One plain query is asked of the store as such ([`Store::most_severe`]: the daemon
/// computes it and sends only those); anything else is walked into a heap here. `found` is
/// called at the first finding.
fn most_severe(
    store: &dyn Store,
    plan: &Plan,
    opts: &QueryOptions,
    limit: usize,
    found: &mut dyn FnMut(),
) -> Result<(Vec<Finding>, usize), CliError> {
    if let ([q], None, true) = (plan.queries.as_slice(), &plan.walk, plan.plain()) {
        return Ok(store.most_severe(q, opts, limit, found)?);
    }
    let mut top = Top::new(Some(limit), most_severe_first);
    each_finding(store, plan, opts, &mut |f| {
        if top.seen() == 0 {
            found();
        }
        top.push(f);
        Ok(ControlFlow::Continue(()))
    })?;
    let total = top.seen();
    Ok((top.into_sorted_vec(), total))
}

/// Streams the findings of the plan to `f`, each once: an ASN's by one walk over the store; a
/// query's as the store finds them. Returns whether `f` stopped.
fn each_finding(
    store: &dyn Store,
    plan: &Plan,
    opts: &QueryOptions,
    f: &mut dyn FnMut(Finding) -> Flow,
) -> Result<bool, CliError> {
    let mut hand = |x: Finding| {
        if plan.keeps(&x) {
            f(x)
        } else {
            Ok(ControlFlow::Continue(()))
        }
    };
    if let Some(filter) = &plan.walk {
        return Ok(store.select(filter, &mut hand)?.stopped);
    }
    for q in &plan.queries {
        if store.query_each(q, opts, &mut hand)?.stopped {
            return Ok(true);
        }
    }
    Ok(false)
}

/// The times and statuses a lookup asks for, as a worklist filter.
fn base_filter(a: &LookupArgs) -> Result<Filter, crate::store::filter::FilterError> {
    let mut pairs: Vec<(&str, &str)> = Vec::new();
    if a.all {
        pairs.push(("status", "all"));
    }
    for (flag, v) in [
        ("since", &a.since),
        ("until", &a.until),
        ("stored-since", &a.stored_since),
        ("stored-until", &a.stored_until),
    ] {
        if let Some(v) = v {
            pairs.push((flag, v.as_str()));
        }
    }
    Filter::parse(pairs)
}

pub fn run(app: &App, a: &LookupArgs) -> Result<ExitCode, CliError> {
    let pasted: Pasted = a.query.parse().map_err(CliError::usage)?;
    let q = pasted.query.clone();
    let base = base_filter(a).map_err(CliError::usage)?;
    let store = app.open_read()?;
    let opts = QueryOptions {
        since: base.stored_since,
        include_resolved: a.all,
        limit: None,
    };
    let snap = scope::load(app.config.as_ref(), store.as_ref())?;
    let plan = Plan::new(pasted, &snap, &base);
    let announced = plan.announced;
    let in_scope = query_in_scope(&q, &ScopeMatcher::new(&snap));
    let listed = indicator_sets::listed_by(store.as_ref(), &q)?;
    let supp = Suppressions::load(store.as_ref(), app.config.as_ref(), app.clock.now())?;
    let query_text = a.query.trim();
    if a.json || a.jsonl {
        let listed = indicator_sets::listed_json(&listed);
        return machine(
            store.as_ref(),
            &plan,
            &opts,
            a,
            query_text,
            in_scope,
            &listed,
            &supp,
        );
    }
    // For people: the first `--limit` by severity then time, from a bounded heap, and the total.
    let scope_note = scope_note(app, &q, in_scope);
    let asn_note = match (&q, announced) {
        (Query::Asn(_), 0) => ", no announced prefixes cached (`outwatch scope --refresh`)".into(),
        (Query::Asn(_), n) => format!(", and its {n} prefix(es)"),
        _ => String::new(),
    };
    // The first line goes out with the first finding (a walk over 200,000 findings takes a
    // while; the table needs all of them, its heading does not); the count comes last.
    let heading = format!(
        "{} ({scope_note}{asn_note}): most severe first, then newest",
        sanitize(query_text)
    );
    let (limit, capped) = table_limit(a.limit);
    let mut closed = None;
    let (findings, total) = most_severe(store.as_ref(), &plan, &opts, limit, &mut || {
        if let Err(e) = crate::output::line(format_args!("{heading}")) {
            closed = Some(e);
        }
    })?;
    if let Some(e) = closed {
        return Err(e);
    }
    if total == 0 {
        outln!(
            "{}: {} ({scope_note}{asn_note}){}",
            sanitize(query_text),
            if listed.is_empty() {
                "nothing known"
            } else {
                "no findings"
            },
            if a.all {
                ""
            } else {
                "; --all includes resolved findings"
            }
        );
        indicator_sets::print_listed(&listed)?;
        return Ok(ExitCode::SUCCESS);
    }
    if !findings.is_empty() {
        let (table, stored) = findings_table(&findings, &supp, &Default::default());
        outln!("{table}");
        if stored {
            outln!("{STORED_NOTE}");
        }
        print_notified(store.as_ref(), &findings, notify_configured(app))?;
    }
    if total > findings.len() {
        outln!(
            "{} finding(s); … and {} more not shown; use --limit N or --json",
            thousands(total),
            thousands(total - findings.len())
        );
    } else {
        outln!("{} finding(s)", thousands(total));
    }
    if let Some(asked) = capped {
        note_capped(asked);
    }
    super::triage::print_triage(&findings, &supp)?;
    indicator_sets::print_listed(&listed)?;
    Ok(ExitCode::SUCCESS)
}

/// `--json` (one object whose `findings` array is written as findings come, with the lists
/// that name the address in `listed_by`) and `--jsonl` (one finding per line). Without
/// `--limit`, every finding in store order, none held; with it, the first N most severe then
/// newest ([`most_severe`]), or, above [`MAX_SORTED`], the first N in store order as they are
/// found, none held (`"sorted": false`, and a note for `--jsonl`). `total` counts them all.
/// A finding a rule suppresses carries `suppressed` (the rule).
#[allow(clippy::too_many_arguments)]
fn machine(
    store: &dyn Store,
    plan: &Plan,
    opts: &QueryOptions,
    a: &LookupArgs,
    query_text: &str,
    in_scope: bool,
    listed_by: &serde_json::Value,
    supp: &Suppressions,
) -> Result<ExitCode, CliError> {
    let sorted = a.limit.is_some_and(|n| n <= MAX_SORTED);
    let mut out = Stream::stdout();
    if a.json {
        let head = serde_json::json!({"query": query_text, "in_scope": in_scope,
            "listed_by": listed_by, "sorted": sorted})
        .to_string();
        out.text(&head[..head.len() - 1])
            .and_then(|()| out.text(",\"findings\":[\n"))
            .map_err(stdout_error)?;
    } else if let Some(n) = a.limit.filter(|_| !sorted) {
        eprintln!(
            "note: --limit {} is more than outwatch sorts in memory ({}): the first {} \
             findings as they are found, not sorted",
            thousands(n),
            thousands(MAX_SORTED),
            thousands(n)
        );
    }
    let mut written = 0usize;
    // Notifications of the findings written (issue #23), when contacts are configured.
    let look = a.json && notify_has_run(store);
    let mut notified = serde_json::Map::new();
    let mut write = |out: &mut Stream<_>, f: &Finding| -> std::io::Result<()> {
        if look
            && notified.len() < MAX_SORTED
            && let Ok(Some(r)) = crate::notify::record::sent_of(store, &f.fingerprint)
        {
            notified.insert(f.fingerprint.clone(), serde_json::json!(r.sent));
        }
        // The JSON array: a comma ends a finding's line when the next one comes.
        let r = match (a.json, written) {
            (true, 0) => Ok(()),
            (true, _) => out.text(",\n"),
            (false, _) => Ok(()),
        }
        .and_then(|()| {
            let end = if a.json { "" } else { "\n" };
            match super::triage::finding_json(f, supp) {
                Some(j) => out.text(&j).and_then(|()| out.text(end)),
                None => out.finding(f, end),
            }
        });
        written += 1;
        r
    };
    let total = match a.limit {
        Some(n) if sorted => {
            let (top, total) = most_severe(store, plan, opts, n, &mut || {})?;
            for f in top {
                write(&mut out, &f).map_err(stdout_error)?;
            }
            total
        }
        limit => {
            // Every finding, or the first `limit` in store order; the rest only counted.
            let (mut seen, mut failed) = (0usize, None);
            each_finding(store, plan, opts, &mut |f| {
                seen += 1;
                if limit.is_none_or(|n| seen <= n)
                    && let Err(e) = write(&mut out, &f)
                {
                    failed = Some(e);
                    return Ok(ControlFlow::Break(()));
                }
                Ok(ControlFlow::Continue(()))
            })?;
            if let Some(e) = failed {
                return Err(stdout_error(e));
            }
            seen
        }
    };
    if a.json {
        let nl = if written == 0 { "" } else { "\n" };
        let notified = serde_json::Value::Object(notified).to_string();
        out.text(&format!(
            "{nl}],\"total\":{total},\"notified\":{notified}}}\n"
        ))
        .map_err(stdout_error)?;
    }
    out.finish().map_err(stdout_error)?;
    Ok(ExitCode::SUCCESS)
}

/// Whether notifications can exist: the config names contacts (`[[contacts]]` or
/// `[notify] contacts_file`), or the store holds a notification record.
fn notify_configured(app: &App) -> bool {
    app.config.as_ref().is_some_and(|c| {
        !c.contacts.is_empty() || c.notify.as_ref().is_some_and(|n| n.contacts_file.is_some())
    })
}

/// Whether the store holds any notification run (its run-log entry `notify`).
fn notify_has_run(store: &dyn Store) -> bool {
    store
        .runs(Some(crate::notify::RUN_NAME), 1)
        .is_ok_and(|r| !r.is_empty())
}

/// Below the table: which contact got each shown finding, when, under which ticket.
fn print_notified(
    store: &dyn Store,
    findings: &[Finding],
    configured: bool,
) -> Result<(), CliError> {
    if !configured && !notify_has_run(store) {
        return Ok(());
    }
    for f in findings {
        let Some(r) = crate::notify::record::sent_of(store, &f.fingerprint)? else {
            continue;
        };
        for s in r.sent.iter().rev().take(3) {
            outln!(
                "notified: {} to {} on {} (ticket {})",
                clip_middle(&f.indicator(), 40),
                sanitize(&s.contact),
                s.at.format("%Y-%m-%d %H:%M UTC"),
                sanitize(&s.ticket)
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::DateTime;

    #[test]
    fn an_asn_lookup_hands_each_finding_once_over_overlapping_prefixes() {
        use crate::finding::{Classification, Severity};
        use crate::store::{IngestOptions, SledStore};
        let dir = tempfile::tempdir().unwrap();
        let s = SledStore::open(dir.path()).unwrap();
        let make = |ip: Option<&str>, net: Option<&str>, asn: Option<u32>| {
            let mut f = Finding::new(
                "spamhaus_drop",
                "drop",
                Classification::new("", "blacklist", "x"),
                Severity::High,
            );
            f.ip = ip.map(|x| x.parse().unwrap());
            f.network = net.map(|x| x.parse().unwrap());
            f.asn = asn;
            f.seal();
            f
        };
        let batch = vec![
            make(Some("10.0.1.5"), None, None),
            make(Some("10.2.0.9"), None, None),
            make(None, Some("10.0.0.0/8"), None),
            make(None, Some("10.0.2.0/24"), None),
            make(None, None, Some(64496)),
            make(Some("192.0.2.1"), None, None),
        ];
        let now = DateTime::from_timestamp(1_790_000_000, 0).unwrap();
        s.ingest(batch.clone(), vec![], &IngestOptions { now })
            .unwrap();
        let snap = scope::ScopeSnapshot {
            asns: vec![scope::AsnPrefixes {
                asn: 64496,
                // Nested (10.0.1.0/24 in 10.0.0.0/16) and apart (10.2.0.0/16): 10.0.0.0/8
                // overlaps two of the merged ones.
                prefixes: ["10.0.0.0/16", "10.0.1.0/24", "10.2.0.0/16"]
                    .map(|p| p.parse().unwrap())
                    .to_vec(),
                ..Default::default()
            }],
            ..Default::default()
        };
        let plan = Plan::new(
            "AS64496".parse().unwrap(),
            &snap,
            &Filter::parse([("status", "all")]).unwrap(),
        );
        assert_eq!(plan.announced, 3);
        let mut got = Vec::new();
        let stopped = each_finding(&s, &plan, &QueryOptions::default(), &mut |f| {
            got.push(f.fingerprint);
            Ok(ControlFlow::Continue(()))
        })
        .unwrap();
        assert!(!stopped);
        got.sort();
        let mut want: Vec<String> = batch[..5].iter().map(|f| f.fingerprint.clone()).collect();
        want.sort();
        assert_eq!(got, want);
    }
}
