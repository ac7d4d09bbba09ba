//! `outwatch check-config`: validate and print the resolved settings, secrets redacted.

use crate::outln;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::ExitCode;

use serde_json::json;

use crate::app::App;
use crate::config::Config;
use crate::error::CliError;
use crate::output::print_json;
use crate::sources;

pub(crate) fn run(app: &App, json: bool) -> Result<ExitCode, CliError> {
    let cfg = app.require_config()?;
    // Building the sources resolves credentials from env vars: a missing variable is an error.
    let mut problems = Vec::new();
    let mut enabled = Vec::new();
    for (name, s) in sources::enabled_sources(cfg) {
        match s {
            Ok(_) => enabled.push(name),
            Err(e) => problems.push(format!("sources.{name}: {}", crate::text::chain(&e))),
        }
    }
    // The store: a PostgreSQL target must resolve (URL, its variable, the password file);
    // whether the server answers is `outwatch status`'s to tell.
    let store = match app.pg_target() {
        Ok(None) => format!("sled in {}", app.data_dir.display()),
        Ok(Some(t)) => match crate::store::postgres::check(&t) {
            Ok(place) => format!("postgres at {place}"),
            Err(e) => {
                problems.push(format!("store: {e}"));
                "postgres (unusable, see below)".to_string()
            }
        },
        Err(e) => {
            problems.push(format!("store: {e}"));
            "postgres (unusable, see below)".to_string()
        }
    };
    let mut warnings = cfg.warnings.clone();
    warnings.extend(file_warnings(cfg, &app.config_path));
    // The contacts file of `notify`: unreadable is a problem, a skipped row a warning.
    if cfg
        .notify
        .as_ref()
        .is_some_and(|n| n.contacts_file.is_some())
    {
        match crate::notify::contacts::Contacts::load(cfg) {
            Ok(c) => warnings.extend(c.problems.iter().map(|p| format!("contacts file {p}"))),
            Err(e) => problems.push(format!("notify.contacts_file: {e}")),
        }
    }
    let how = if app.config_explicit {
        "named by --config or $OUTWATCH_CONFIG".to_string()
    } else {
        format!("the first found of {}", app.looked_for())
    };
    if json {
        print_json(&json!({
            "config": app.config_path.display().to_string(),
            "config_found_as": how,
            "data_dir": app.data_dir.display().to_string(),
            "store": store,
            "valid": problems.is_empty(),
            "warnings": warnings,
            "enabled_sources": enabled,
            "problems": problems,
            "settings": cfg,
        }))?;
    } else {
        outln!("config:   {} ({how})", app.config_path.display());
        // The store in the line of the folder (sled keeps it there; PostgreSQL only the
        // daemon's socket).
        match app.pg_target() {
            Ok(Some(_)) => outln!("store:    {store}, data dir {}", app.data_dir.display()),
            _ => outln!("data dir: {} (sled store)", app.data_dir.display()),
        }
        let sources = if enabled.is_empty() {
            "(none enabled)".to_string()
        } else {
            enabled.join(", ")
        };
        for l in crate::output::wrapped(&sources, "sources:  ", "          ") {
            outln!("{l}");
        }
        let text = toml::to_string_pretty(cfg).map_err(CliError::failure)?;
        outln!("\n# resolved settings (secrets redacted)\n{text}");
        for w in &warnings {
            eprintln!("warning: {w}");
        }
        for p in &problems {
            eprintln!("problem: {p}");
        }
    }
    if problems.is_empty() {
        Ok(ExitCode::SUCCESS)
    } else {
        Err(CliError::config(format!(
            "{} problem(s) in {}: {}",
            problems.len(),
            app.config_path.display(),
            problems.join("; ")
        )))
    }
}

/// Config keys that hold a secret written inline in the file.
fn inline_secrets(cfg: &Config) -> Vec<String> {
    let mut out = sources::registry::inline_secrets(cfg);
    if let Some(c) = &cfg.smtp
        && c.password.is_some()
    {
        out.push("smtp.password".into());
    }
    out
}

/// Files every local user could read or change: a config file with inline secrets that others
/// can read, a `[feeds] dir` that others can write. (Group access is taken as deliberate, e.g.
/// a `root:outwatch 0640` config.)
fn file_warnings(cfg: &Config, config_path: &Path) -> Vec<String> {
    let mode = |p: &Path| std::fs::metadata(p).ok().map(|m| m.mode() & 0o7777);
    let mut out = Vec::new();
    let secrets = inline_secrets(cfg);
    if !secrets.is_empty()
        && let Some(m) = mode(config_path)
        && m & 0o004 != 0
    {
        out.push(format!(
            "{} holds secrets inline ({}) and every user can read it (mode {m:04o}): \
             `chmod 600` it, or name environment variables (`*_env` keys) instead",
            config_path.display(),
            secrets.join(", ")
        ));
    }
    if let Some(dir) = &cfg.feeds.dir {
        let dir = cfg.resolve_path(dir);
        if let Some(m) = mode(&dir)
            && m & 0o002 != 0
        {
            out.push(format!(
                "[feeds] dir {} can be written by every user (mode {m:04o}), who could add or \
                 change feed definitions: `chmod go-w` it",
                dir.display()
            ));
        }
    }
    out
}
