//! `outwatch status [--json]`: feed health of every source, the store, and the daemon when one
//! runs. Works while `outwatch run` holds the store (through its socket).
use crate::outln;
use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::Arc;

use serde_json::{Value, json};

use crate::app::App;
use crate::commands::lookup::rfc3339;
use crate::daemon::RemoteStore;
use crate::error::CliError;
use crate::health::{self, HealthState};
use crate::output::{print_json, table};
use crate::store::Store;
use crate::text::clip;

pub fn run(app: &App, json_out: bool) -> Result<ExitCode, CliError> {
    let (store, daemon): (Arc<dyn Store>, Option<Value>) = match RemoteStore::connect(&app.data_dir)
    {
        Some(r) => {
            let hello = r.hello().clone();
            (Arc::new(r), Some(hello))
        }
        None => {
            app.require_store()?;
            (app.open_store()?, None)
        }
    };
    let now = app.clock.now();
    // While the daemon runs, a source's set-up (its key present or not) is judged as the
    // daemon sees it: the caller's environment may lack keys that the daemon has.
    let seen: Option<health::DaemonSources> = daemon
        .as_ref()
        .and_then(|h| h.get("sources"))
        .and_then(|s| serde_json::from_value(s.clone()).ok());
    let sources =
        health::assess_as_seen_by(app.config.as_ref(), store.as_ref(), now, seen.as_ref())?;
    let findings = store.count()?;
    if json_out {
        print_json(&json!({
            "sources": sources,
            "store": {
                "path": app.data_dir.display().to_string(),
                "findings": findings,
            },
            "daemon": match &daemon {
                Some(h) => json!({
                    "running": true,
                    "pid": h.get("pid"),
                    "started": h.get("started"),
                    "jobs": h.get("jobs"),
                }),
                None => json!({ "running": false }),
            },
            "checked_at": rfc3339(now),
        }))?;
        return Ok(verdict(&sources));
    }
    if sources.is_empty() {
        outln!(
            "no source is enabled and none has run yet: add [sources.NAME] tables to the config"
        );
    } else {
        let when = |t: Option<chrono::DateTime<chrono::Utc>>| {
            t.map(|t| t.format("%Y-%m-%d %H:%M").to_string())
                .unwrap_or_else(|| "-".into())
        };
        let mut t = table(&["source", "state", "last success", "last run", "rows"]);
        for s in &sources {
            let state = match s.state {
                HealthState::Ok => "ok".to_string(),
                other => other.as_str().to_uppercase(),
            };
            t.add_row(vec![
                s.name.clone(),
                state,
                when(s.last_success),
                when(s.last_run),
                s.last_rows
                    .map(|n| n.to_string())
                    .unwrap_or_else(|| "-".into()),
            ]);
        }
        outln!("{t}");
        // Problems in full, one source at a time (an error cut short hides its cause): on a
        // terminal wrapped at word boundaries (an address or URL stays whole), in a pipe one
        // line each.
        let width = std::io::stdout()
            .is_terminal()
            .then(textwrap::termwidth)
            .filter(|w| *w >= 40);
        for s in sources.iter().filter(|s| s.state != HealthState::Ok) {
            outln!("{} ({}):", s.name, s.state.as_str());
            for w in &s.warnings {
                let text = clip(w, 4000);
                match width {
                    Some(width) => {
                        let opts = textwrap::Options::new(width)
                            .initial_indent("  - ")
                            .subsequent_indent("    ")
                            .break_words(false);
                        for line in textwrap::wrap(&text, opts) {
                            outln!("{line}");
                        }
                    }
                    None => outln!("  - {text}"),
                }
            }
        }
        // Notes of the last run: worth knowing, no failure.
        for s in sources.iter().filter(|s| !s.notes.is_empty()) {
            outln!("{} (note):", s.name);
            for n in &s.notes {
                outln!("  - {}", clip(n, 4000));
            }
        }
    }
    outln!("store: {findings} findings in {}", app.data_dir.display());
    match &daemon {
        Some(h) => {
            let pid = h.get("pid").cloned().unwrap_or(Value::Null);
            outln!("daemon: running (pid {pid}), serving reads on its socket");
            if let Some(jobs) = h.get("jobs").and_then(|j| j.as_object()) {
                for (name, j) in jobs {
                    let next = j.get("next_run").and_then(|v| v.as_str()).unwrap_or("-");
                    let running = if j.get("running").and_then(|v| v.as_bool()) == Some(true) {
                        " (running now)"
                    } else {
                        ""
                    };
                    outln!("  {name}: next {next}{running}");
                }
            }
        }
        None => outln!("daemon: not running"),
    }
    Ok(verdict(&sources))
}

/// Exit 0 only when every source (and the scope) is healthy: scripts and monitoring read it.
fn verdict(sources: &[health::SourceHealth]) -> ExitCode {
    if sources.iter().all(|s| s.state == HealthState::Ok) {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(crate::error::EXIT_FAILURE)
    }
}
