//! `outwatch status` (issue #6).
use std::process::ExitCode;

use crate::app::App;
use crate::error::CliError;

pub fn run(_app: &App, _json: bool) -> Result<ExitCode, CliError> {
    Err(CliError::failure("`outwatch status` is not built yet"))
}
