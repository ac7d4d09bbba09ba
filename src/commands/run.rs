//! `outwatch run` (the scheduler daemon) and `outwatch run --once` (one round, for system cron).
use crate::workln;
use std::process::ExitCode;

use crate::app::App;
use crate::cli::RunArgs;
use crate::daemon::{self, tasks};
use crate::error::{CliError, EXIT_FAILURE};
use crate::output::table;
use crate::store::RunOutcome;

pub async fn run(app: &App, a: &RunArgs) -> Result<ExitCode, CliError> {
    let cfg = app.require_config()?;
    let store = app.open_store_waiting(daemon::LOCK_WAIT).await?;
    let env = app.daemon_env()?;
    if !a.once {
        return Ok(match daemon::run(&env, cfg, store).await? {
            daemon::Stopped::Finished => ExitCode::SUCCESS,
            daemon::Stopped::Forced => ExitCode::from(EXIT_FAILURE),
        });
    }
    let report = daemon::run_once(&env, cfg, store).await?;
    if let Some(w) = &report.scope_warning {
        eprintln!("warning: scope: {}", crate::text::Clean(w));
    }
    if report.sources.is_empty() {
        workln!("no source is enabled: add [sources.NAME] tables to the config");
    } else {
        let mut t = table(&["source", "result", "summary"]);
        for r in &report.sources {
            let (result, summary) = match (&r.error, r.outcome) {
                (Some(e), RunOutcome::Partial) => (
                    "PARTIAL",
                    format!("{}; {}", tasks::source_summary(r), crate::text::sanitize(e)),
                ),
                (Some(e), _) => ("FAILED", crate::text::sanitize(e).into_owned()),
                (None, _) => ("ok", tasks::source_summary(r)),
            };
            t.add_row(vec![r.name.clone(), result.to_string(), summary]);
        }
        workln!("{t}");
    }
    match &report.flows {
        None => {}
        Some(Ok(line)) => workln!("flows: {line}"),
        Some(Err(e)) => workln!("flows: FAILED: {}", crate::text::Clean(e)),
    }
    match &report.digest {
        None => workln!("digest: not configured (no [digest] table)"),
        Some(Ok(o)) => workln!("digest: {}", tasks::digest_summary(o)),
        Some(Err(e)) => workln!("digest: FAILED: {}", crate::text::Clean(&e.to_string())),
    }
    let failed = report.failed();
    if failed.is_empty() {
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!("error: failed: {}", failed.join(", "));
        Ok(ExitCode::from(EXIT_FAILURE))
    }
}
