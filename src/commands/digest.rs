//! `outwatch digest` (issue #6).
use std::process::ExitCode;

use crate::app::App;
use crate::cli::DigestArgs;
use crate::error::CliError;

pub async fn run(_app: &App, _a: &DigestArgs) -> Result<ExitCode, CliError> {
    Err(CliError::failure("`outwatch digest` is not built yet"))
}
