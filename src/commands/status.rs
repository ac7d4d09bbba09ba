//! `outwatch status [--json]`: feed health of every source, the store, and the daemon when one
//! runs. Works while `outwatch run` holds the store (through its socket).
use crate::outln;
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
        None => (app.open_store()?, None),
    };
    let now = app.clock.now();
    let sources = health::assess_sources(app.config.as_ref(), store.as_ref(), now)?;
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
        return Ok(ExitCode::SUCCESS);
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
        let mut t = table(&[
            "source",
            "state",
            "last success",
            "last run",
            "rows",
            "last error",
        ]);
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
                clip(s.last_error.as_deref().unwrap_or("-"), 60),
            ]);
        }
        outln!("{t}");
        for s in sources.iter().filter(|s| s.state != HealthState::Ok) {
            for w in &s.warnings {
                outln!("  {}: {}", s.name, clip(w, 200));
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
    Ok(ExitCode::SUCCESS)
}
