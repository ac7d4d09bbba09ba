//! `outwatch import <source> FILE...`: dispatch to the provider's importer.
use std::process::ExitCode;

use crate::app::App;
use crate::cli::{ImportArgs, ImportSource};
use crate::error::CliError;

pub(crate) async fn run(app: &App, a: &ImportArgs) -> Result<ExitCode, CliError> {
    match a.source {
        ImportSource::Shadowserver => super::import_shadowserver::run(app, a).await,
        ImportSource::Hibp => super::import_hibp::run(app, a).await,
        ImportSource::Safebrowsing => super::import_safebrowsing::run(app, a).await,
        ImportSource::Cymru => super::import_cymru::run(app, a).await,
    }
}
