//! `outwatch shadowserver ...` (issue #3).
use std::process::ExitCode;

use crate::app::App;
use crate::cli::ShadowserverArgs;
use crate::error::CliError;

pub async fn run(_app: &App, _a: &ShadowserverArgs) -> Result<ExitCode, CliError> {
    Err(CliError::failure(
        "`outwatch shadowserver` is not built yet",
    ))
}
