//! `outwatch status [--json | --prometheus]`: feed health of every source, the store, and the
//! daemon when one runs; `--prometheus` prints the metrics ([`crate::metrics`]) instead.
//! Works while `outwatch run` holds the store (through its socket).
use crate::outln;
use std::process::ExitCode;
use std::sync::Arc;

use serde_json::{Value, json};

use crate::app::App;
use crate::cli::StatusArgs;
use crate::commands::indicator_sets;
use crate::daemon::RemoteStore;
use crate::daemon::protocol::Hello;
use crate::error::CliError;
use crate::health::{self, HealthState};
use crate::metrics;
use crate::output::rfc3339;
use crate::output::{print_json, table};
use crate::store::Store;
use crate::text::clip;

pub(crate) fn run(app: &App, a: &StatusArgs) -> Result<ExitCode, CliError> {
    let json_out = a.json;
    let (store, daemon, holder) = connect(app)?;
    let now = app.clock.now();
    // While the daemon runs, a source's set-up (its key present or not) is judged as the
    // daemon sees it: the caller's environment may lack keys that the daemon has.
    let seen = daemon.as_ref().map(|h| &h.sources);
    if a.prometheus {
        return prometheus(app, store.as_ref(), now, seen);
    }
    let sources = health::assess_as_seen_by(app.config.as_ref(), store.as_ref(), now, seen)?;
    let findings = store.count()?;
    let sets = indicator_sets::feed_sets(store.as_ref())?;
    let next = next_runs(app, daemon.as_ref(), now);
    let digest = app.config.as_ref().and_then(|c| c.digest.as_ref()).map(|d| {
        json!({
            "schedule": d.schedule.source,
            "timezone": d.timezone.map(|t| t.name().to_string()).unwrap_or_else(|| "UTC".into()),
            "next_run": next.get("digest").cloned().flatten().map(rfc3339),
        })
    });
    if json_out {
        let sources_json: Vec<Value> = sources
            .iter()
            .map(|s| {
                let mut v = serde_json::to_value(s).unwrap_or(Value::Null);
                if let Some(o) = v.as_object_mut() {
                    o.insert(
                        "next_run".into(),
                        json!(next.get(&s.name).cloned().flatten().map(rfc3339)),
                    );
                }
                v
            })
            .collect();
        print_json(&json!({
            "sources": sources_json,
            "digest": digest,
            "indicator_sets": indicator_sets::sets_json(&sets, now),
            "store": {
                "backend": app.backend().as_str(),
                "path": app.data_dir.display().to_string(),
                "location": app.store_place(),
                "findings": findings,
                "held_by": holder.as_ref().map(|h| json!({ "command": h.holder, "pid": h.pid })),
            },
            "daemon": match &daemon {
                Some(h) => json!({
                    "running": true,
                    "pid": h.pid,
                    "started": h.started,
                    "jobs": h.jobs,
                }),
                None => json!({ "running": false }),
            },
            "checked_at": rfc3339(now),
        }))?;
        return Ok(verdict(&sources));
    }
    print_sources(&sources, &next)?;
    indicator_sets::print_sets(&sets, now)?;
    outln!(
        "store: {findings} findings in {} ({})",
        app.store_place(),
        app.backend().as_str()
    );
    if let Some(h) = &holder {
        outln!(
            "  held by `outwatch {}` (pid {}) while it works, answering reads",
            clip(&h.holder, 50),
            h.pid
        );
    }
    match &daemon {
        Some(h) => {
            outln!(
                "daemon: running (pid {}), serving reads on its socket",
                h.pid
            );
            for (name, j) in &h.jobs {
                let next = j.next_run.map(rfc3339).unwrap_or_else(|| "-".into());
                let running = if j.running { " (running now)" } else { "" };
                outln!("  {name}: next {next}{running}");
            }
        }
        None => outln!("daemon: not running"),
    }
    if let Some(d) = &digest {
        outln!(
            "digest: {} ({}), next {}",
            d["schedule"].as_str().unwrap_or("-"),
            d["timezone"].as_str().unwrap_or("UTC"),
            d["next_run"].as_str().unwrap_or("-")
        );
    }
    Ok(verdict(&sources))
}

/// The sources' table, then each unhealthy source's warnings in full and the notes of the
/// last runs.
fn print_sources(
    sources: &[health::SourceHealth],
    next: &std::collections::HashMap<String, Option<chrono::DateTime<chrono::Utc>>>,
) -> Result<(), CliError> {
    if sources.is_empty() {
        outln!(
            "no source is enabled and none has run yet: add [sources.NAME] tables to the config"
        );
    } else {
        let when = |t: Option<chrono::DateTime<chrono::Utc>>| {
            t.map(|t| t.format("%m-%d %H:%M").to_string())
                .unwrap_or_else(|| "-".into())
        };
        let colour = crate::style::stdout_colour();
        // Times as month-day hour:minute (UTC), so the table fits 80 columns unbroken.
        let mut t = table(&[
            "source",
            "state",
            "last success (UTC)",
            "rows",
            "next run (UTC)",
        ]);
        crate::output::style_table(&mut t, colour);
        for s in sources {
            let state = match s.state {
                HealthState::Ok => "ok".to_string(),
                other => other.as_str().to_uppercase(),
            };
            t.add_row(vec![
                comfy_table::Cell::new(&s.name),
                crate::style::health_cell(&state, colour),
                comfy_table::Cell::new(when(s.last_success)),
                comfy_table::Cell::new(
                    s.last_rows
                        .map(|n| n.to_string())
                        .unwrap_or_else(|| "-".into()),
                ),
                comfy_table::Cell::new(when(next.get(&s.name).cloned().flatten())),
            ]);
        }
        crate::output::keep_whole(&mut t, &[1, 2, 4]);
        outln!("{t}");
        // Problems in full, one source at a time (an error cut short hides its cause): on a
        // terminal wrapped at word boundaries (an address or URL stays whole), in a pipe one
        // line each.
        for s in sources.iter().filter(|s| s.state != HealthState::Ok) {
            outln!(
                "{} ({}):",
                s.name,
                crate::style::health_word(s.state.as_str(), s.state.as_str(), colour)
            );
            for w in &s.warnings {
                for line in crate::output::wrapped(&clip(w, 4000), "  - ", "    ") {
                    outln!("{line}");
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
    Ok(())
}

/// The store to report on, the daemon's `hello` when it runs, a holding command's otherwise.
type Connected = (Arc<dyn Store>, Option<Hello>, Option<Hello>);

/// The store to report on, with the daemon (when one runs) or the command holding the store.
fn connect(app: &App) -> Result<Connected, CliError> {
    // A command holding the store for a while answers reads too (`holder`); only the daemon's
    // jobs and set-up are shown as the daemon's.
    Ok(match RemoteStore::connect(&app.data_dir) {
        Some(r) => {
            let hello = r.hello();
            if hello.is_daemon() {
                (Arc::new(r), Some(hello), None)
            } else {
                (Arc::new(r), None, Some(hello))
            }
        }
        None => (app.open_read()?, None, None),
    })
}

/// `--prometheus`: the metrics text (docs/metrics.md), with the exit code of `status`.
fn prometheus(
    app: &App,
    store: &dyn Store,
    now: chrono::DateTime<chrono::Utc>,
    seen: Option<&crate::health::DaemonSources>,
) -> Result<ExitCode, CliError> {
    let mut snap = metrics::gather(&metrics::Inputs {
        store,
        config: app.config.as_ref(),
        now,
        daemon: seen,
    })
    .map_err(|e| match e {
        metrics::MetricsError::Store(e) => CliError::from(e),
    })?;
    if app.backend() == crate::config::Backend::Sled {
        // Read through the daemon's socket, the store cannot tell its size: its folder can.
        snap.size_on_disk_or(|| crate::diskspace::folder_bytes(&app.data_dir.join("db")));
    }
    crate::output::write_all(snap.render().as_bytes())?;
    Ok(verdict(&snap.sources))
}

/// Exit 0 only when every source (and the scope) is healthy: scripts and monitoring read it.
fn verdict(sources: &[health::SourceHealth]) -> ExitCode {
    if sources.iter().all(|s| s.state == HealthState::Ok) {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(crate::error::EXIT_FAILURE)
    }
}

/// When each job runs next: the running daemon's own plan (its `hello`), else the next slot of
/// each schedule (what a daemon started now would aim at, before any catch-up run).
fn next_runs(
    app: &App,
    daemon: Option<&Hello>,
    now: chrono::DateTime<chrono::Utc>,
) -> std::collections::HashMap<String, Option<chrono::DateTime<chrono::Utc>>> {
    let mut out = std::collections::HashMap::new();
    if let Some(h) = daemon {
        for (name, j) in &h.jobs {
            out.insert(name.clone(), j.next_run);
        }
        return out;
    }
    let Some(cfg) = app.config.as_ref() else {
        return out;
    };
    for (name, built) in crate::sources::enabled_sources(cfg) {
        if let Ok(src) = built {
            let sched = crate::daemon::source_schedule(cfg, &name, src.as_ref());
            out.insert(
                name,
                crate::daemon::schedule::next_fire(&sched, chrono_tz::Tz::UTC, now, None),
            );
        }
    }
    if let Some(d) = &cfg.digest {
        out.insert(
            "digest".into(),
            crate::daemon::schedule::next_fire(
                &d.schedule,
                d.timezone.unwrap_or(chrono_tz::Tz::UTC),
                now,
                None,
            ),
        );
    }
    out
}
