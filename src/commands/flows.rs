//! `outwatch flows FILE...`: read connection logs, analyse them against the C2 lists and the
//! meta-indicators, store the findings (source `flows`) and print a summary or JSON.
//! Works without a config file (then `[flows]` defaults apply).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use serde_json::json;

use crate::app::App;
use crate::cli::FlowsArgs;
use crate::error::CliError;
use crate::finding::Finding;
use crate::flows::analyse::Summary;
use crate::flows::analyse::group::Body;
use crate::flows::analyse::rules::Kind;
use crate::flows::run::{self, Analysed};
use crate::output::print_json;
use crate::scope::{self, ScopeMatcher};
use crate::text::{Clean, clip, clip_middle};
use crate::{outln, workln};

/// Hosts named per kind in the text output.
const HOSTS_SHOWN: usize = 3;

pub(crate) fn run(app: &App, a: &FlowsArgs) -> Result<ExitCode, CliError> {
    let files = expand(&a.files)?;
    let flows = app
        .config
        .as_ref()
        .map(|c| c.flows.clone())
        .unwrap_or_default();
    let store = app.open_store()?;
    let snap = scope::load(app.config.as_ref(), store.as_ref())?;
    let matcher = Arc::new(ScopeMatcher::new(&snap));
    let index = run::indicators(app.config.as_ref(), store.as_ref())?;
    let lists: Vec<String> = index.feeds().map(str::to_string).collect();
    let started = app.clock.now();
    let many = files.len() > 1;
    let mut analysed = run::analyse_files(&flows, &matcher, &index, &files, &mut |p| {
        if many {
            eprintln!("reading {}", Clean(&p.display().to_string()));
        }
    });
    let hosts = by_kind(&analysed.report.findings);
    let items: Vec<serde_json::Value> = if a.json {
        analysed.report.findings.iter().map(item).collect()
    } else {
        Vec::new()
    };
    let (stats, _) = run::store_run(
        &store,
        &matcher,
        &mut analysed,
        Vec::new(),
        started,
        app.clock.now(),
        flows.resolve_after.chrono(),
    )?;
    store.flush()?;
    let s = &analysed.report.summary;
    if a.json {
        print_json(&json!({
            "files": analysed.files,
            "lines": analysed.lines(),
            "connections": analysed.connections(),
            "rejected": analysed.rejected(),
            "warnings": analysed.warnings(),
            "not_ours": s.not_ours,
            "checked_against": lists,
            "notices": analysed.notices,
            "findings": s.findings,
            "new": stats.new,
            "updated": stats.updated,
            "by_feed": s.by_feed,
            "items": items,
            "top_talkers": s.top_talkers,
            "overflow": s.overflow,
            "errors": analysed.errors(),
        }))?;
    } else {
        print_human(&analysed, s, &lists, &hosts, (stats.new, stats.updated))?;
    }
    if analysed.failed_files() > 0 {
        Ok(ExitCode::from(crate::error::EXIT_FAILURE))
    } else {
        Ok(ExitCode::SUCCESS)
    }
}

/// The files named; a folder stands for its (non-hidden) regular files, sorted. A path that
/// does not exist stays, to be named as unreadable while the others are read. Anything else
/// that is not a log file (a FIFO, a device, a folder without a file) is refused before
/// anything is read: exit 2.
fn expand(paths: &[PathBuf]) -> Result<Vec<PathBuf>, CliError> {
    let mut out = Vec::new();
    for p in paths {
        if p == Path::new("-") {
            out.push(p.clone());
            continue;
        }
        let Ok(meta) = std::fs::metadata(p) else {
            out.push(p.clone());
            continue;
        };
        let shown = || Clean(&p.display().to_string()).to_string();
        if meta.is_file() {
            out.push(p.clone());
        } else if meta.is_dir() {
            let files = folder_files(p).map_err(|e| {
                CliError::failure(format!("cannot read the folder {}: {e}", shown()))
            })?;
            if files.is_empty() {
                return Err(CliError::usage(format!(
                    "{}: no log file in this folder (outwatch flows reads the files of a \
                     folder, not its sub-folders)",
                    shown()
                )));
            }
            out.extend(files);
        } else {
            return Err(CliError::usage(format!(
                "{}: not a log file but {}: outwatch flows reads regular files, plain or gzip, \
                 and folders of them",
                shown(),
                crate::flows::read::file_kind(&meta.file_type())
            )));
        }
    }
    Ok(out)
}

/// The regular, non-hidden files of a folder, sorted.
fn folder_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|f| {
            f.is_file()
                && !f
                    .file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with('.'))
        })
        .collect();
    files.sort();
    Ok(files)
}

/// One finding as `--json` lists it: what it is about, then its body (docs/flows.md).
fn item(f: &Finding) -> serde_json::Value {
    let mut m = serde_json::Map::new();
    m.insert("fingerprint".into(), json!(f.fingerprint));
    m.insert("host".into(), json!(f.ip));
    m.insert("kind".into(), json!(f.feed));
    m.insert("severity".into(), json!(f.severity));
    let day = f.identity.iter().find_map(|i| i.strip_prefix("day "));
    m.insert("day".into(), json!(day));
    m.extend(f.extra.iter().map(|(k, v)| (k.clone(), v.clone())));
    serde_json::Value::Object(m)
}

/// A host of one kind, its days merged: what the text output names.
struct HostLine {
    host: String,
    days: usize,
    body: Body,
}

/// Per kind (most severe first): how many findings, and the busiest hosts with their days
/// merged, at most [`HOSTS_SHOWN`] plus how many more.
fn by_kind(findings: &[Finding]) -> Vec<(Kind, usize, Vec<HostLine>, usize)> {
    let mut per: BTreeMap<Kind, (usize, BTreeMap<String, HostLine>)> = BTreeMap::new();
    for f in findings {
        let (Some(kind), Some(body)) = (Kind::from_feed(&f.feed), Body::of(f)) else {
            continue;
        };
        let host = f.ip.map(|i| i.to_string()).unwrap_or_default();
        let (n, hosts) = per.entry(kind).or_default();
        *n += 1;
        match hosts.get_mut(&host) {
            Some(h) => {
                let mut merged = body;
                merged.merge(&h.body, kind);
                h.body = merged;
                h.days += 1;
            }
            None => {
                hosts.insert(
                    host.clone(),
                    HostLine {
                        host,
                        days: 1,
                        body,
                    },
                );
            }
        }
    }
    let rules = crate::flows::analyse::rules::Rules::builtin();
    let mut per: Vec<_> = per.into_iter().collect();
    per.sort_by_key(|(k, _)| (rules.kind(*k).severity, *k));
    per.into_iter()
        .map(|(kind, (n, hosts))| {
            let mut hosts: Vec<HostLine> = hosts.into_values().collect();
            hosts.sort_by(|a, b| {
                (b.body.counts.connections, b.body.counts.bytes)
                    .cmp(&(a.body.counts.connections, a.body.counts.bytes))
                    .then_with(|| a.host.cmp(&b.host))
            });
            let more = hosts.len().saturating_sub(HOSTS_SHOWN);
            hosts.truncate(HOSTS_SHOWN);
            (kind, n, hosts, more)
        })
        .collect()
}

fn print_human(
    a: &Analysed,
    s: &Summary,
    lists: &[String],
    kinds: &[(Kind, usize, Vec<HostLine>, usize)],
    (new, updated): (usize, usize),
) -> Result<(), CliError> {
    workln!(
        "flows: {} file(s), {} connection(s), {} rejected, {} between others",
        a.files.len(),
        a.connections(),
        a.rejected(),
        s.not_ours
    );
    workln!(
        "flows: {} finding(s), {new} new, {updated} updated",
        s.findings
    );
    if lists.is_empty() {
        eprintln!(
            "warning: {}: no C2 list is kept or enabled, so no peer was\n  \
             checked for C2 contact; fetch a list feed (feodotracker, threatfox, ...)\n  \
             first",
            crate::health::FLOWS_NO_LISTS
        );
    } else {
        workln!(
            "flows: peers checked against {} C2 list(s): {}",
            lists.len(),
            clip(&lists.join(", "), 120)
        );
    }
    print_problems(a);
    print_kinds(kinds)?;
    print_talkers(s)?;
    let o = &s.overflow;
    if o.aggregates_dropped + o.peers_folded + o.services_folded > 0 {
        outln!();
        outln!("Folded to bound memory (counted, not lost):");
        outln!(
            "  {} connection(s) past the finding cap, {} to further peers of a host,",
            o.aggregates_dropped,
            o.peers_folded
        );
        outln!("  {} of further service names", o.services_folded);
    }
    if s.findings > 0 {
        outln!();
        outln!("See them with `outwatch lookup IP`; the digest lists them under");
        outln!("\"Your own traffic\".");
    }
    Ok(())
}

/// Files that could not be read, cut short, and the first rejected lines (stderr).
fn print_problems(a: &Analysed) {
    for f in &a.files {
        if let Some(e) = &f.error {
            eprintln!("cannot read {}: {}", Clean(&f.path), Clean(e));
        } else if let Some(st) = &f.stats
            && st.truncated
        {
            eprintln!(
                "{}: the file ends early (no #close or a cut line); read what is there",
                Clean(&f.path)
            );
        }
    }
    // Unreadable files were named above.
    for e in a.row_errors().iter().take(10) {
        eprintln!("rejected {}: {}", Clean(&e.location), Clean(&e.message));
    }
}

/// Per kind, its findings and the busiest hosts with their peers, each line within 80
/// columns.
fn print_kinds(kinds: &[(Kind, usize, Vec<HostLine>, usize)]) -> Result<(), CliError> {
    if kinds.is_empty() {
        return Ok(());
    }
    outln!();
    outln!("Findings by kind (one per host and day), the busiest hosts:");
    let rules = crate::flows::analyse::rules::Rules::builtin();
    for (kind, n, hosts, more) in kinds {
        let sev = rules.kind(*kind).severity;
        outln!(
            "  {} ({}): {n} finding(s)",
            kind.as_str(),
            sev.as_str().to_ascii_lowercase()
        );
        for h in hosts {
            let mut head = format!(
                "    {:<15} {} day{}",
                clip_middle(&h.host, 39),
                h.days,
                if h.days == 1 { "" } else { "s" }
            );
            let facts = h.body.facts_text(*kind);
            if !facts.is_empty() {
                head.push_str(", ");
                head.push_str(&facts);
            }
            head = clip(&head, 60);
            let room = 80usize.saturating_sub(head.chars().count() + 2).max(16);
            outln!("{head}: {}", clip(&h.body.items_text(*kind, 3), room));
        }
        if *more > 0 {
            outln!("    and {more} more host(s)");
        }
    }
    Ok(())
}

/// The busiest services' top talkers.
fn print_talkers(s: &Summary) -> Result<(), CliError> {
    let busiest: Vec<_> = {
        let mut v: Vec<_> = s
            .top_talkers
            .iter()
            .map(|(svc, t)| {
                let total: u64 = t.by_packets.iter().map(|r| r.packets).sum();
                (svc, t, total)
            })
            .collect();
        v.sort_by(|a, b| b.2.cmp(&a.2).then(a.0.cmp(b.0)));
        v.into_iter().take(5).collect()
    };
    if busiest.is_empty() {
        return Ok(());
    }
    outln!();
    outln!("Top talkers (the five busiest services; --json has all):");
    for (svc, t, _) in busiest {
        outln!("  {}", clip(svc, 30));
        for (label, rows) in [("packets", &t.by_packets), ("bytes", &t.by_bytes)] {
            let mut list: Vec<String> = rows
                .iter()
                .take(3)
                .map(|r| {
                    let v = if label == "packets" {
                        r.packets
                    } else {
                        r.bytes
                    };
                    format!(
                        "{} {}",
                        clip_middle(&r.ip.to_string(), 39),
                        crate::output::thousands(v)
                    )
                })
                .collect();
            // 80 columns: fewer talkers on the line when addresses are long.
            while list.len() > 1 && 16 + list.join(", ").chars().count() > 80 {
                list.pop();
            }
            outln!("    by {label:<8} {}", list.join(", "));
        }
    }
    Ok(())
}
