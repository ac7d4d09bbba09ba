//! `outwatch run` (issue #6).
use std::process::ExitCode;

use crate::app::App;
use crate::cli::RunArgs;
use crate::error::CliError;

pub async fn run(_app: &App, _a: &RunArgs) -> Result<ExitCode, CliError> {
    Err(CliError::failure("`outwatch run` is not built yet"))
}
