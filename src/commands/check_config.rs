//! `outwatch check-config`: validate and print the resolved settings, secrets redacted.

use crate::outln;
use std::process::ExitCode;

use serde_json::json;

use crate::app::App;
use crate::error::CliError;
use crate::output::print_json;
use crate::sources;

pub fn run(app: &App, json: bool) -> Result<ExitCode, CliError> {
    let cfg = app.require_config()?;
    // Building the sources resolves credentials from env vars: a missing variable is an error.
    let mut problems = Vec::new();
    let mut enabled = Vec::new();
    for (name, s) in sources::enabled_sources(cfg) {
        match s {
            Ok(_) => enabled.push(name),
            Err(e) => problems.push(format!("sources.{name}: {e}")),
        }
    }
    if json {
        print_json(&json!({
            "config": app.config_path.display().to_string(),
            "data_dir": app.data_dir.display().to_string(),
            "valid": problems.is_empty(),
            "enabled_sources": enabled,
            "problems": problems,
            "settings": cfg,
        }))?;
    } else {
        outln!("config:   {}", app.config_path.display());
        outln!("data dir: {}", app.data_dir.display());
        outln!(
            "sources:  {}",
            if enabled.is_empty() {
                "(none enabled)".to_string()
            } else {
                enabled.join(", ")
            }
        );
        let text = toml::to_string_pretty(cfg).map_err(CliError::failure)?;
        outln!("\n# resolved settings (secrets redacted)\n{text}");
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
