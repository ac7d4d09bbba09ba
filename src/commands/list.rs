//! `outwatch list`: the worklist. The flags are a [`Filter`] (`src/store/filter.rs`), run by
//! [`crate::store::Store::select`] (through the daemon's socket too, as every read); the first
//! `--limit` by `--sort` are kept in a bounded heap ([`Top`]), never the whole result.
//!
//! Table: the first `--limit` (50 unless given, at most [`MAX_SORTED`]) and the total. CSV,
//! JSON and JSON lines: with `--limit` the first N by `--sort`; without, all of them, sorted
//! when they fit in [`MAX_SORTED`], else (a second walk) in store order as they are found,
//! said on stderr and by `"sorted": false`. Nothing found is a success (exit 0).

use std::collections::HashMap;
use std::io::Write as _;
use std::ops::ControlFlow;
use std::process::ExitCode;

use crate::app::App;
use crate::cli::{ListArgs, ListFormat};
use crate::commands::findings_table::{STORED_NOTE, findings_table};
use crate::commands::lookup::MAX_SORTED;
use crate::error::CliError;
use crate::finding::Finding;
pub(crate) use crate::finding::csv::{CSV_HEADER, csv_cell};
use crate::notify::contacts::Contacts;
use crate::notify::record::{self, SentIndex, SentRecord};
use crate::notify::route::Router;
use crate::outln;
use crate::output::{Stream, rfc3339, stdout_error, thousands};
use crate::store::filter::Suppressed;
use crate::store::top::Top;
use crate::store::{Filter, Store};
use crate::text::sanitize;
use crate::triage::Suppressions;

/// Findings the table shows unless `--limit` says otherwise.
pub(crate) const DEFAULT_LIMIT: usize = 50;

/// The filter the flags give, in the one parser of filters ([`Filter::parse`]).
pub(crate) fn filter_of(a: &ListArgs) -> Result<Filter, crate::store::filter::FilterError> {
    let mut pairs: Vec<(&str, &str)> = Vec::new();
    for (flag, values) in [
        ("status", &a.status),
        ("severity", &a.severity),
        ("source", &a.source),
        ("feed", &a.feed),
        ("class", &a.class),
        ("asn", &a.asn),
        ("team", &a.team),
        ("prefix", &a.prefix),
        ("domain", &a.domain),
    ] {
        pairs.extend(values.iter().map(|v| (flag, v.as_str())));
    }
    for (flag, value) in [
        ("min-severity", &a.min_severity),
        ("since", &a.since),
        ("until", &a.until),
        ("stored-since", &a.stored_since),
        ("stored-until", &a.stored_until),
        ("sort", &a.sort),
    ] {
        if let Some(v) = value {
            pairs.push((flag, v.as_str()));
        }
    }
    if a.suppressed {
        pairs.push(("suppressed", ""));
    }
    if a.all {
        pairs.push(("all", ""));
    }
    for (on, flag) in [
        (a.notified, "notified"),
        (a.not_notified, "not-notified"),
        (a.no_contact, "no-contact"),
    ] {
        if on {
            pairs.push((flag, ""));
        }
    }
    Filter::parse(pairs)
}

/// Fills in what the filter's names stand for ([`crate::scope::resolve_filter`]).
fn resolve(app: &App, store: &dyn Store, filter: &mut Filter) -> Result<(), CliError> {
    crate::scope::resolve_filter(app.config.as_ref(), store, filter).map_err(|e| match e {
        crate::scope::ResolveError::Store(s) => CliError::from(s),
        e => CliError::usage(e.to_string()),
    })
}

pub(crate) fn run(app: &App, a: &ListArgs) -> Result<ExitCode, CliError> {
    let mut filter = filter_of(a).map_err(CliError::usage)?;
    let format = if a.json { ListFormat::Json } else { a.format };
    let store = app.open_read()?;
    resolve(app, store.as_ref(), &mut filter)?;
    let supp = Suppressions::load(store.as_ref(), app.config.as_ref(), app.clock.now())?;
    let sent = SentIndex::load(store.as_ref())?;
    let router = match filter.no_contact {
        true => Some(no_contact_router(app, store.as_ref())?),
        false => None,
    };
    let store = Shown {
        store: store.as_ref(),
        supp: &supp,
        mode: filter.suppressed,
        sent: &sent,
        notified: filter.notified,
        router: router.as_ref(),
    };
    match format {
        ListFormat::Table => table(&store, &filter, a.limit),
        _ => machine(&store, &filter, format, a.limit),
    }
}

/// The routing table of the contacts (`[[contacts]]`, the contacts file, the cached RIPE
/// abuse contacts), for `--no-contact`.
fn no_contact_router(app: &App, store: &dyn Store) -> Result<Router, CliError> {
    let cfg = app.require_config()?;
    if !crate::notify::configured(cfg) {
        return Err(CliError::usage(
            "--no-contact: the config names no contacts (`[notify]` with `[[contacts]]`, \
             `contacts_file` or `ripe_abuse_c`; docs/notify.md)",
        ));
    }
    let contacts = Contacts::load(cfg).map_err(CliError::config)?;
    Ok(crate::notify::abuse_c::cached_router(
        cfg,
        &contacts,
        store,
        app.clock.now(),
    )?)
}

/// The store's selection with what the store cannot tell applied: the suppression rules
/// (`--suppressed`, `--all`: they live in the config and in state), the notifications
/// (`--notified`, `--not-notified`: state) and the contacts (`--no-contact`: config).
struct Shown<'a> {
    store: &'a dyn Store,
    supp: &'a Suppressions,
    mode: Suppressed,
    sent: &'a SentIndex,
    notified: Option<bool>,
    router: Option<&'a Router>,
}

impl Shown<'_> {
    fn select(
        &self,
        filter: &Filter,
        each: &mut dyn FnMut(Finding) -> crate::store::Flow,
    ) -> crate::store::Result<()> {
        self.store.select(filter, &mut |f| {
            if self.mode.shows(self.supp.suppressed(&f))
                && self
                    .notified
                    .is_none_or(|want| self.sent.contains(&f.fingerprint) == want)
                && self.router.is_none_or(|r| r.route(&f).is_none())
            {
                each(f)
            } else {
                Ok(ControlFlow::Continue(()))
            }
        })?;
        Ok(())
    }

    /// The notification records of `findings` (read after the walk: a store served through
    /// the daemon answers one request at a time).
    fn records(&self, findings: &[Finding]) -> crate::store::Result<HashMap<String, SentRecord>> {
        let mut out = HashMap::new();
        for f in findings {
            if self.sent.contains(&f.fingerprint)
                && let Some(r) = record::sent_of(self.store, &f.fingerprint)?
            {
                out.insert(f.fingerprint.clone(), r);
            }
        }
        Ok(out)
    }
}

/// The line a table shows under a notified finding: its last sending.
fn notified_line(r: &SentRecord) -> Option<String> {
    let s = r.sent.last()?;
    Some(format!(
        "notified {} {} ({})",
        s.contact,
        s.at.format("%Y-%m-%d %H:%M"),
        s.ticket
    ))
}

/// The first `limit` findings by the filter's order, and how many matched.
fn top(
    store: &Shown<'_>,
    filter: &Filter,
    limit: usize,
) -> Result<(Vec<Finding>, usize), CliError> {
    let mut top = Top::new(Some(limit), filter.sort.order());
    store.select(filter, &mut |f| {
        top.push(f);
        Ok(ControlFlow::Continue(()))
    })?;
    let total = top.seen();
    Ok((top.into_sorted_vec(), total))
}

fn table(store: &Shown<'_>, filter: &Filter, limit: Option<usize>) -> Result<ExitCode, CliError> {
    let asked = limit.unwrap_or(DEFAULT_LIMIT);
    let limit = asked.min(MAX_SORTED);
    let (findings, total) = top(store, filter, limit)?;
    let command = sanitize(&filter.to_command()).into_owned();
    if total == 0 {
        outln!("{command}: no findings match");
        if !filter.status.resolved {
            outln!("(new and open ones; --status all includes resolved findings)");
        }
        return Ok(ExitCode::SUCCESS);
    }
    outln!("{command}  (by {})", filter.sort.as_str());
    if !findings.is_empty() {
        let notes: HashMap<String, String> = store
            .records(&findings)?
            .iter()
            .filter_map(|(fp, r)| Some((fp.clone(), notified_line(r)?)))
            .collect();
        let (t, stored) = findings_table(&findings, store.supp, &notes);
        outln!("{t}");
        if stored {
            outln!("{STORED_NOTE}");
        }
    }
    if total > findings.len() {
        outln!(
            "{} finding(s); … and {} more not shown; use --limit N or --format csv",
            thousands(total),
            thousands(total - findings.len())
        );
    } else {
        outln!("{} finding(s)", thousands(total));
    }
    if asked > MAX_SORTED {
        eprintln!(
            "note: --limit {} is more than a table sorts in memory ({}); --format csv or jsonl \
             writes them all",
            thousands(asked),
            thousands(MAX_SORTED)
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// The columns of `--format csv`: the finding's ([`crate::finding::csv::CSV_HEADER`]), then
/// `notified_*`, the last sending by `outwatch notify` (contact, time, ticket), empty when none.
pub(crate) const NOTIFIED_COLUMNS: [&str; 3] =
    ["notified_contact", "notified_at", "notified_ticket"];

fn csv_header() -> impl Iterator<Item = &'static str> {
    CSV_HEADER.into_iter().chain(NOTIFIED_COLUMNS)
}

/// A finding's row under the columns of `--format csv`, with its notification record.
pub(crate) fn csv_row(f: &Finding, notified: Option<&SentRecord>) -> Vec<String> {
    let last = notified.and_then(|r| r.sent.last());
    let mut row = crate::finding::csv::csv_row(f);
    row.extend(
        [
            last.map(|s| s.contact.clone()).unwrap_or_default(),
            last.map(|s| rfc3339(s.at)).unwrap_or_default(),
            last.map(|s| s.ticket.clone()).unwrap_or_default(),
        ]
        .iter()
        .map(|c| csv_cell(c)),
    );
    row
}

/// Where machine-readable rows go.
enum Out {
    Csv(Box<csv::Writer<std::io::StdoutLock<'static>>>),
    Json(Stream<std::io::StdoutLock<'static>>, usize),
    Jsonl(Stream<std::io::StdoutLock<'static>>),
}

fn csv_error(e: csv::Error) -> std::io::Error {
    match e.into_kind() {
        csv::ErrorKind::Io(e) => e,
        other => std::io::Error::other(format!("{other:?}")),
    }
}

impl Out {
    /// Starts the output: the CSV header, or the JSON object's head.
    fn start(format: ListFormat, filter: &Filter, sorted: bool) -> std::io::Result<Out> {
        Ok(match format {
            ListFormat::Csv => {
                let mut w = csv::Writer::from_writer(std::io::stdout().lock());
                w.write_record(csv_header()).map_err(csv_error)?;
                w.flush()?;
                Out::Csv(Box::new(w))
            }
            ListFormat::Json => {
                let mut s = Stream::stdout();
                let head = serde_json::json!({
                    "command": filter.to_command(),
                    "query": filter.to_query_string(),
                    "sort": filter.sort.as_str(),
                    "sorted": sorted,
                })
                .to_string();
                s.text(&head[..head.len() - 1])?;
                s.text(",\"findings\":[\n")?;
                Out::Json(s, 0)
            }
            _ => Out::Jsonl(Stream::stdout()),
        })
    }

    /// A finding, with its notification record (`notified` in JSON: each sending).
    fn row(&mut self, f: &Finding, notified: Option<&SentRecord>) -> std::io::Result<()> {
        let json = || notified.map(|r| serde_json::json!(r.sent));
        match self {
            Out::Csv(w) => w.write_record(csv_row(f, notified)).map_err(csv_error),
            Out::Json(s, n) => {
                if *n > 0 {
                    s.text(",\n")?;
                }
                *n += 1;
                s.finding_notified(f, json().as_ref(), "")
            }
            Out::Jsonl(s) => s.finding_notified(f, json().as_ref(), "\n"),
        }
    }

    fn finish(self, total: usize) -> std::io::Result<()> {
        match self {
            Out::Csv(mut w) => w.flush(),
            Out::Json(mut s, n) => {
                let nl = if n == 0 { "" } else { "\n" };
                s.text(&format!("{nl}],\"total\":{total}}}\n"))?;
                s.finish()
            }
            Out::Jsonl(s) => s.finish(),
        }
    }
}

fn machine(
    store: &Shown<'_>,
    filter: &Filter,
    format: ListFormat,
    limit: Option<usize>,
) -> Result<ExitCode, CliError> {
    // The first N by the order when they fit in memory; else as found.
    let heap = limit.unwrap_or(MAX_SORTED);
    if heap <= MAX_SORTED {
        let (findings, total) = top(store, filter, heap)?;
        if limit.is_some() || total <= MAX_SORTED {
            let records = store.records(&findings)?;
            let mut out = Out::start(format, filter, true).map_err(stdout_error)?;
            for f in &findings {
                out.row(f, records.get(&f.fingerprint))
                    .map_err(stdout_error)?;
            }
            out.finish(total).map_err(stdout_error)?;
            return Ok(ExitCode::SUCCESS);
        }
        eprintln!(
            "note: {} findings are more than outwatch sorts in memory ({}): written in store \
             order as they are found, not sorted; --limit N writes the first N by --sort",
            thousands(total),
            thousands(MAX_SORTED)
        );
    } else {
        eprintln!(
            "note: --limit {} is more than outwatch sorts in memory ({}): the first {} \
             findings as they are found, not sorted",
            thousands(heap),
            thousands(MAX_SORTED),
            thousands(heap)
        );
    }
    // Written as found: the notification records are read first (the walk cannot read state).
    let records = match store.sent.is_empty() {
        true => HashMap::new(),
        false => record::all(store.store)?,
    };
    let mut out = Out::start(format, filter, false).map_err(stdout_error)?;
    let (mut seen, mut failed) = (0usize, None);
    store.select(filter, &mut |f| {
        seen += 1;
        if limit.is_none_or(|n| seen <= n)
            && let Err(e) = out.row(&f, records.get(&f.fingerprint))
        {
            failed = Some(e);
            return Ok(ControlFlow::Break(()));
        }
        Ok(ControlFlow::Continue(()))
    })?;
    if let Some(e) = failed {
        return Err(stdout_error(e));
    }
    out.finish(seen).map_err(stdout_error)?;
    let _ = std::io::stdout().flush();
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;
    use proptest::prelude::*;

    fn args(line: &str) -> Result<ListArgs, clap::Error> {
        let words = shlex::split(line).expect("shell words");
        match crate::cli::Cli::try_parse_from(words)?.command {
            crate::cli::Command::List(a) => Ok(*a),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_command_line_reads_back_from_the_filter() {
        for line in [
            "outwatch list",
            "outwatch list --severity high --status new --format csv",
            "outwatch list --severity high,critical --severity low --min-severity medium",
            "outwatch list --status all --class 'fraud/phishing' --class '*/c2-server' \
             --asn AS64496 --asn 64497 --team dmz --prefix 192.0.2.0/24,2001:db8::/32 \
             --domain Example.org --source shadowserver --feed scan_rdp --since 2026-11-01 \
             --until 2026-11-20T11:05:10Z --stored-since 2026-12-01 --stored-until 2026-12-07 \
             --sort address --limit 5",
            "outwatch list --feed=-odd --source '=x' --class=-a/b",
        ] {
            let f = filter_of(&args(line).unwrap()).unwrap();
            let again = filter_of(&args(&f.to_command()).unwrap()).unwrap();
            assert_eq!(again, f, "{line} → {}", f.to_command());
            assert_eq!(Filter::from_query_string(&f.to_query_string()).unwrap(), f);
        }
        let f = filter_of(&args("outwatch list --severity high --status new").unwrap()).unwrap();
        assert_eq!(f.to_command(), "outwatch list --status new --severity high");
    }

    #[test]
    fn bad_flags_are_usage_errors() {
        assert!(args("outwatch list --status closed").is_err());
        assert!(args("outwatch list --json --format csv").is_err());
        for line in [
            "outwatch list --asn ASX",
            "outwatch list --prefix 192.0.2.0/33",
            "outwatch list --since yesterday",
            "outwatch list --domain localhost",
        ] {
            assert!(filter_of(&args(line).unwrap()).is_err(), "{line}");
        }
    }

    #[test]
    fn spreadsheet_cells_never_start_a_formula() {
        for (given, cell) in [
            ("=HYPERLINK(\"http://x\")", "'=HYPERLINK(\"http://x\")"),
            ("+1", "'+1"),
            ("-2+3", "'-2+3"),
            ("@SUM(A1)", "'@SUM(A1)"),
            ("192.0.2.1", "192.0.2.1"),
            ("a\u{1b}[31mred", "a\\u{1b}[31mred"),
        ] {
            assert_eq!(csv_cell(given), cell);
        }
    }

    proptest! {
        #[test]
        fn no_cell_starts_a_formula(s in ".{0,30}") {
            let c = csv_cell(&s);
            prop_assert!(!c.starts_with(['=', '+', '-', '@', '\t', '\r']));
            prop_assert!(!c.chars().any(|ch| ch.is_control()));
        }
    }
}
