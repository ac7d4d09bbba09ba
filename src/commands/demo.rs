//! `outwatch demo` (issue #6).
use std::process::ExitCode;

use crate::app::App;
use crate::cli::DemoArgs;
use crate::error::CliError;

pub async fn run(_app: &App, _a: &DemoArgs) -> Result<ExitCode, CliError> {
    Err(CliError::failure("`outwatch demo` is not built yet"))
}
