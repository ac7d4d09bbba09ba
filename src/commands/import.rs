//! `outwatch import <source> FILE...`: per-provider importers (issues #3 and #5).
use std::process::ExitCode;

use crate::app::App;
use crate::cli::{ImportArgs, ImportSource};
use crate::error::CliError;

pub async fn run(_app: &App, a: &ImportArgs) -> Result<ExitCode, CliError> {
    match a.source {
        ImportSource::Shadowserver | ImportSource::Hibp | ImportSource::Safebrowsing => Err(
            CliError::failure(format!("importing {:?} files is not built yet", a.source)),
        ),
    }
}
