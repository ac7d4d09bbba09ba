//! `outwatch run` (the scheduler daemon) and `outwatch run --once` (one round, for system cron).
use std::process::ExitCode;

use crate::app::App;
use crate::cli::RunArgs;
use crate::daemon::{self, tasks};
use crate::error::{CliError, EXIT_FAILURE, EXIT_SKIPPED};

pub(crate) async fn run(app: &App, a: &RunArgs) -> Result<ExitCode, CliError> {
    let cfg = app.require_config()?;
    let store = app.open_own_store(a.once)?;
    let env = app.daemon_env()?;
    if !a.once {
        return Ok(match daemon::run(&env, cfg, store).await? {
            daemon::Stopped::Finished => ExitCode::SUCCESS,
            daemon::Stopped::Forced => ExitCode::from(EXIT_FAILURE),
        });
    }
    let report = daemon::run_once(&env, cfg, store, a.wait).await?;
    if let Some(w) = &report.scope_warning {
        eprintln!(
            "warning: scope: {}",
            crate::text::Clean(&crate::text::chain(w))
        );
    }
    // The same table and failure lines as `fetch`; the lines after it wrap at spaces only, to
    // the terminal or `$COLUMNS`, so a URL or an address is never cut.
    crate::commands::fetch::print_table(&report.sources);
    let say = |text: &str, first: &str| crate::output::work_wrapped(text, first, "    ");
    match &report.flows {
        None => {}
        Some(Ok(line)) => say(line, "flows: "),
        Some(Err(e)) => say(
            &crate::text::sanitize(&crate::text::chain(e)),
            "flows: FAILED: ",
        ),
    }
    match &report.notify {
        None => {}
        Some(Ok(line)) => say(line, "notify: "),
        Some(Err(e)) => say(
            &crate::text::sanitize(&crate::text::chain(e)),
            "notify: FAILED: ",
        ),
    }
    match &report.digest {
        None if report.digest_skipped => say(
            "skipped: another node sharing the store is sending it",
            "digest: ",
        ),
        None => say("not configured (no [digest] table)", "digest: "),
        Some(Ok(o)) => say(&tasks::digest_summary(o), "digest: "),
        Some(Err(e)) => say(
            &crate::text::sanitize(&crate::text::chain(e)),
            "digest: FAILED: ",
        ),
    }
    let (failed, skipped) = (report.failed(), report.skipped());
    if !failed.is_empty() {
        eprintln!("error: failed: {}", failed.join(", "));
        Ok(ExitCode::from(EXIT_FAILURE))
    } else if !skipped.is_empty() {
        eprintln!(
            "skipped (another node sharing the store is running it): {}",
            skipped.join(", ")
        );
        Ok(ExitCode::from(EXIT_SKIPPED))
    } else {
        Ok(ExitCode::SUCCESS)
    }
}
