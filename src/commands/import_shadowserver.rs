//! `outwatch import shadowserver FILE...`. Placeholder until its issue lands.
use std::process::ExitCode;

use crate::app::App;
use crate::cli::ImportArgs;
use crate::error::CliError;

pub async fn run(_app: &App, _a: &ImportArgs) -> Result<ExitCode, CliError> {
    Err(CliError::failure(
        "importing shadowserver files is not built yet",
    ))
}
