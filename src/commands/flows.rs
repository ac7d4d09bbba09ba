//! `outwatch flows FILE...`: read connection logs, analyse them against the C2 lists and the
//! meta-indicators, store the findings (source `flows`) and print a summary or JSON.
//! Works without a config file (then `[flows]` defaults apply).

use std::process::ExitCode;
use std::sync::Arc;

use serde_json::json;

use crate::app::App;
use crate::cli::FlowsArgs;
use crate::error::CliError;
use crate::flows::analyse::Summary;
use crate::flows::run::{self, Analysed};
use crate::output::print_json;
use crate::scope::{self, ScopeMatcher};
use crate::text::{Clean, clip, clip_middle};
use crate::{outln, workln};

pub fn run(app: &App, a: &FlowsArgs) -> Result<ExitCode, CliError> {
    let files = expand(&a.files);
    let flows = app
        .config
        .as_ref()
        .map(|c| c.flows.clone())
        .unwrap_or_default();
    let store = app.open_store()?;
    let snap = scope::load(app.config.as_ref(), store.as_ref())?;
    let matcher = Arc::new(ScopeMatcher::new(&snap));
    let index = run::indicators(app.config.as_ref(), store.as_ref())?;
    let started = app.clock.now();
    let many = files.len() > 1;
    let mut analysed = run::analyse_files(&flows, &matcher, &index, &files, &mut |p| {
        if many {
            eprintln!("reading {}", Clean(&p.display().to_string()));
        }
    });
    let (stats, _) = run::store_run(
        &store,
        &matcher,
        &mut analysed,
        Vec::new(),
        started,
        app.clock.now(),
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
            "findings": s.findings,
            "new": stats.new,
            "updated": stats.updated,
            "by_feed": s.by_feed,
            "top_talkers": s.top_talkers,
            "overflow": s.overflow,
            "errors": analysed.errors(),
        }))?;
    } else {
        print_human(&analysed, s, stats.new, stats.updated)?;
    }
    if analysed.failed_files() > 0 {
        Ok(ExitCode::from(crate::error::EXIT_FAILURE))
    } else {
        Ok(ExitCode::SUCCESS)
    }
}

/// The files named; a folder stands for its (non-hidden) files, sorted. A path that does not
/// exist stays, to be named as unreadable while the others are read.
fn expand(paths: &[std::path::PathBuf]) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for p in paths {
        match std::fs::read_dir(p) {
            Ok(rd) if p.is_dir() => {
                let mut files: Vec<_> = rd
                    .filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|f| {
                        f.is_file()
                            && !f
                                .file_name()
                                .is_some_and(|n| n.to_string_lossy().starts_with('.'))
                    })
                    .collect();
                files.sort();
                out.extend(files);
            }
            _ => out.push(p.clone()),
        }
    }
    out
}

fn print_human(a: &Analysed, s: &Summary, new: usize, updated: usize) -> Result<(), CliError> {
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
    if !s.by_feed.is_empty() {
        outln!();
        outln!("Findings by kind:");
        for (k, n) in &s.by_feed {
            outln!("  {k:<22} {n:>8}");
        }
    }
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
    if !busiest.is_empty() {
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
    }
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
