//! `outwatch lookup`: everything known about an IP, a prefix, a domain, a mail address or an ASN.

use crate::outln;
use std::collections::HashSet;
use std::ops::ControlFlow;
use std::process::ExitCode;

use chrono::{DateTime, NaiveDate, Utc};
use ipnet::IpNet;

use crate::app::App;
use crate::cli::LookupArgs;
use crate::commands::indicator_sets;
use crate::error::CliError;
use crate::finding::Finding;
use crate::output::{Stream, stdout_error, table, thousands};
use crate::scope::{self, ScopeMatcher};
use crate::store::top::{Top, most_severe_first};
use crate::store::{Flow, Query, QueryOptions, Store};
use crate::text::{clip, clip_middle, sanitize};
use comfy_table::Cell;

/// Parses `--since`: a date (midnight UTC) or an RFC 3339 time.
pub fn parse_since(s: &str) -> Result<DateTime<Utc>, String> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&Utc));
    }
    NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .map(|d| d.and_hms_opt(0, 0, 0).expect("midnight").and_utc())
        .map_err(|_| format!("`{s}` is not a date (write YYYY-MM-DD or an RFC 3339 time)"))
}

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

/// The first `limit` findings of `queries`, most severe first then newest, and how many there
/// are. One query is asked of the store as such ([`Store::most_severe`]: the daemon computes
/// it and sends only those); several (an ASN's prefixes) are walked into a heap here, so that a
/// network found under two of them counts once. `found` is called at the first finding.
fn most_severe(
    store: &dyn Store,
    queries: &[Query],
    opts: &QueryOptions,
    limit: usize,
    found: &mut dyn FnMut(),
) -> Result<(Vec<Finding>, usize), CliError> {
    if let [q] = queries {
        return Ok(store.most_severe(q, opts, limit, found)?);
    }
    let mut top = Top::new(Some(limit), most_severe_first);
    each_finding(store, queries, opts, &mut |f| {
        if top.seen() == 0 {
            found();
        }
        top.push(f);
        Ok(ControlFlow::Continue(()))
    })?;
    let total = top.seen();
    Ok((top.into_sorted_vec(), total))
}

/// The store queries a lookup runs: the query itself and, for an ASN, the prefixes it announces
/// (from the cached snapshot), merged so that no address is covered twice.
fn plan(q: &Query, snap: &scope::ScopeSnapshot) -> (Vec<Query>, usize) {
    let mut queries = vec![q.clone()];
    let mut announced = 0;
    if let Query::Asn(asn) = q {
        let prefixes: Vec<IpNet> = snap
            .asns
            .iter()
            .filter(|x| x.asn == *asn)
            .flat_map(|x| x.prefixes.iter().copied())
            .collect();
        announced = prefixes.len();
        queries.extend(IpNet::aggregate(&prefixes).into_iter().map(Query::Net));
    }
    (queries, announced)
}

/// Streams the findings of `queries` to `f`, each once. The queries cover no address twice
/// ([`plan`]), so only a network finding can come twice (a network overlapping two announced
/// prefixes): those fingerprints are remembered, nothing else. Returns whether `f` stopped.
fn each_finding(
    store: &dyn Store,
    queries: &[Query],
    opts: &QueryOptions,
    f: &mut dyn FnMut(Finding) -> Flow,
) -> Result<bool, CliError> {
    let mut networks: HashSet<String> = HashSet::new();
    let several = queries.len() > 1;
    for q in queries {
        let totals = store.query_each(q, opts, &mut |x| {
            if several && x.network.is_some() && !networks.insert(x.fingerprint.clone()) {
                return Ok(ControlFlow::Continue(()));
            }
            f(x)
        })?;
        if totals.stopped {
            return Ok(true);
        }
    }
    Ok(false)
}

pub fn run(app: &App, a: &LookupArgs) -> Result<ExitCode, CliError> {
    let q: Query = a.query.parse().map_err(CliError::usage)?;
    let since = a
        .since
        .as_deref()
        .map(parse_since)
        .transpose()
        .map_err(CliError::usage)?;
    let store = app.open_read()?;
    let opts = QueryOptions {
        since,
        include_resolved: a.all,
        limit: None,
    };
    let snap = scope::load(app.config.as_ref(), store.as_ref())?;
    let (queries, announced) = plan(&q, &snap);
    let in_scope = query_in_scope(&q, &ScopeMatcher::new(&snap));
    let listed = indicator_sets::listed_by(store.as_ref(), &q)?;
    let query_text = a.query.trim();
    if a.json || a.jsonl {
        let listed = indicator_sets::listed_json(&listed);
        return machine(
            store.as_ref(),
            &queries,
            &opts,
            a,
            query_text,
            in_scope,
            &listed,
        );
    }
    // For people: the first `--limit` by severity then time, from a bounded heap, and the total.
    let scope_note = scope_note(app, &q, in_scope);
    let asn_note = match (&q, announced) {
        (Query::Asn(_), 0) => ", no announced prefixes cached (`outwatch scope --refresh`)".into(),
        (Query::Asn(_), n) => format!(", with its {n} prefix(es)"),
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
    let (findings, total) = most_severe(store.as_ref(), &queries, &opts, limit, &mut || {
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
        outln!("{}", table_of(&findings));
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
    indicator_sets::print_listed(&listed)?;
    Ok(ExitCode::SUCCESS)
}

/// `--json` (one object whose `findings` array is written as findings come, with the lists
/// that name the address in `listed_by`) and `--jsonl` (one finding per line). Without
/// `--limit`, every finding in store order, none held; with it, the first N most severe then
/// newest ([`most_severe`]), or, above [`MAX_SORTED`], the first N in store order as they are
/// found, none held (`"sorted": false`, and a note for `--jsonl`). `total` counts them all.
fn machine(
    store: &dyn Store,
    queries: &[Query],
    opts: &QueryOptions,
    a: &LookupArgs,
    query_text: &str,
    in_scope: bool,
    listed_by: &serde_json::Value,
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
            (true, 0) => out.finding(f, ""),
            (true, _) => out.text(",\n").and_then(|()| out.finding(f, "")),
            (false, _) => out.finding(f, "\n"),
        };
        written += 1;
        r
    };
    let total = match a.limit {
        Some(n) if sorted => {
            let (top, total) = most_severe(store, queries, opts, n, &mut || {})?;
            for f in top {
                write(&mut out, &f).map_err(stdout_error)?;
            }
            total
        }
        limit => {
            // Every finding, or the first `limit` in store order; the rest only counted.
            let (mut seen, mut failed) = (0usize, None);
            each_finding(store, queries, opts, &mut |f| {
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

/// The table of findings for people. Four columns fit 80: the indicator and the time are never
/// broken (long indicators are shortened in the middle), "what" wraps at spaces.
fn table_of(findings: &[Finding]) -> comfy_table::Table {
    let colour = crate::style::stdout_colour();
    let mut t = table(&["severity", "indicator", "what (source)", "last seen"]);
    crate::output::style_table(&mut t, colour);
    for f in findings {
        let d = sanitize(&f.distinguishing()).into_owned();
        let source = if f.source == f.feed || f.source == "shadowserver" {
            f.source.clone()
        } else {
            format!("{} {}", f.source, f.feed)
        };
        let kind = f.classification.kind.as_str();
        let kind = if kind == "blacklist" {
            "blocklist"
        } else {
            kind
        };
        let what = if d.is_empty() {
            format!("{kind} ({source})")
        } else {
            format!("{kind}: {d} ({source})")
        };
        let mut seen = f.last_seen.format("%Y-%m-%d\n%H:%M").to_string();
        if f.times_seen > 1 {
            seen.push_str(&format!(" {}×", f.times_seen));
        }
        seen.push_str(&format!("\n{}", f.status));
        t.add_row(vec![
            crate::style::severity_cell(f.severity, colour),
            Cell::new(clip_middle(&f.indicator(), 28)),
            Cell::new(clip(&what, 120)),
            Cell::new(seen),
        ]);
    }
    crate::output::keep_whole(&mut t, &[0, 1, 3]);
    t
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::rfc3339;

    #[test]
    fn since_forms() {
        assert_eq!(
            rfc3339(parse_since("2026-11-01").unwrap()),
            "2026-11-01T00:00:00Z"
        );
        assert!(parse_since("yesterday").is_err());
    }

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
        let (queries, announced) = plan(&Query::Asn(64496), &snap);
        assert_eq!((queries.len(), announced), (3, 3));
        let mut got = Vec::new();
        let stopped = each_finding(&s, &queries, &QueryOptions::default(), &mut |f| {
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
