//! `outwatch fetch`: run sources once now.

use crate::workln;
use std::process::ExitCode;

use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;

use crate::app::App;
use crate::cli::FetchArgs;
use crate::error::CliError;
use crate::output::{print_json, table};
use crate::pipeline::SourceReport;
use crate::sources;
use crate::store::RunOutcome;

/// Runs the chosen sources (all enabled ones when `names` is empty) one after another, after
/// refreshing the ASN scope when it is due.
pub(crate) async fn fetch_sources(
    app: &App,
    names: &[String],
    progress: bool,
    turn_wait: std::time::Duration,
) -> Result<Vec<SourceReport>, CliError> {
    let cfg = app.require_config()?;
    let all = sources::enabled_sources(cfg);
    for n in names {
        if !all.iter().any(|(name, _)| name == n) {
            let known: Vec<&str> = all.iter().map(|(n, _)| n.as_str()).collect();
            return Err(CliError::usage(format!(
                "no enabled source named `{n}` (enabled: {})",
                if known.is_empty() {
                    "none".to_string()
                } else {
                    known.join(", ")
                }
            )));
        }
    }
    let chosen: Vec<_> = all
        .into_iter()
        .filter(|(n, _)| names.is_empty() || names.contains(n))
        .collect();
    let store = app.open_store()?;
    let bar = if progress {
        let b = ProgressBar::new(chosen.len() as u64);
        b.set_style(
            ProgressStyle::with_template("{spinner} [{pos}/{len}] {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        b.set_message("fetching");
        b
    } else {
        ProgressBar::hidden()
    };
    let (reports, scope_warning) =
        crate::daemon::fetch_now(&app.daemon_env()?, cfg, store, chosen, turn_wait, &|r| {
            bar.set_message(format!("{} done", r.name));
            bar.inc(1);
        })
        .await?;
    bar.finish_and_clear();
    if let Some(w) = scope_warning {
        eprintln!(
            "warning: scope: {}",
            crate::text::Clean(&crate::text::chain(&w))
        );
    }
    Ok(reports)
}

/// Prints the per-source summary table (`fetch` and `run --once`), then each failure on stderr
/// as one line. The table fits the terminal (or `$COLUMNS`): the source and its result are never
/// broken, the summary wraps at spaces; no message (with its URLs) is squeezed into a cell.
pub(crate) fn print_table(reports: &[SourceReport]) {
    if reports.is_empty() {
        workln!("no source is enabled: add [sources.NAME] tables to the config");
        return;
    }
    let mut t = table(&["source", "result", "summary"]);
    for r in reports {
        let result = match r.outcome {
            _ if r.skipped.is_some() => "skipped",
            RunOutcome::Error => "FAILED",
            RunOutcome::Partial => "PARTIAL",
            RunOutcome::NotModified => "not modified",
            RunOutcome::Ok => "ok",
        };
        let summary = match r.outcome {
            RunOutcome::Error => "nothing stored (the error follows)".to_string(),
            _ => crate::daemon::tasks::source_summary(r),
        };
        t.add_row(vec![r.name.clone(), result.to_string(), summary]);
    }
    crate::output::keep_whole(&mut t, &[0, 1]);
    crate::output::style_table(&mut t, false);
    workln!("{t}");
    for r in reports {
        if let Some(why) = &r.skipped {
            eprintln!("{}: {}", r.name, crate::text::Clean(why));
        }
        match (&r.errors[..], &r.error) {
            ([], Some(e)) => eprintln!("{}: {}", r.name, crate::text::Clean(e)),
            ([one], _) if one.unit == r.name => {
                eprintln!("{}: {}", r.name, crate::text::Clean(&one.error))
            }
            (units, _) => {
                for u in units {
                    eprintln!(
                        "{}: {} failed (the rest was kept): {}",
                        r.name,
                        crate::text::Clean(&u.unit),
                        crate::text::Clean(&u.error)
                    );
                }
            }
        }
        if r.rejected > 0 {
            eprintln!(
                "{}: {} malformed entries skipped, e.g.:",
                r.name, r.rejected
            );
            for e in r.rejected_rows.iter().take(3) {
                eprintln!(
                    "  {}: {}",
                    crate::text::Clean(&e.location),
                    crate::text::Clean(&e.message)
                );
            }
        }
    }
}

pub(crate) async fn run(app: &App, a: &FetchArgs) -> Result<ExitCode, CliError> {
    let reports = fetch_sources(app, &a.sources, !a.json, a.wait).await?;
    if a.json {
        print_json(&json!({ "sources": reports }))?;
    } else {
        print_table(&reports);
    }
    let failed: Vec<&str> = reports
        .iter()
        .filter(|r| !r.ok)
        .map(|r| r.name.as_str())
        .collect();
    let skipped: Vec<&str> = reports
        .iter()
        .filter(|r| r.skipped.is_some())
        .map(|r| r.name.as_str())
        .collect();
    if !failed.is_empty() {
        if a.json {
            eprintln!("failed: {}", failed.join(", "));
        }
        Ok(ExitCode::from(crate::error::EXIT_FAILURE))
    } else if !skipped.is_empty() {
        if a.json {
            eprintln!(
                "skipped (another node sharing the store is running it): {}",
                skipped.join(", ")
            );
        }
        Ok(ExitCode::from(crate::error::EXIT_SKIPPED))
    } else {
        Ok(ExitCode::SUCCESS)
    }
}
