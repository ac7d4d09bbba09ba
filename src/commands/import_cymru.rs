//! `outwatch import cymru FILE...`: Team Cymru CAP daily files (either format generation),
//! e.g. downloaded by hand or delivered by mail. Works without a config file.
use std::process::ExitCode;

use super::import_mail::{self, FileRead};
use crate::app::App;
use crate::cli::ImportArgs;
use crate::error::CliError;
use crate::sources::cymru;

pub(crate) async fn run(app: &App, a: &ImportArgs) -> Result<ExitCode, CliError> {
    let files = import_mail::expand(&a.files)?;
    let imp = import_mail::read_files(&files, |raw, shown| {
        let p = cymru::parse(raw, shown);
        for c in &p.unknown_categories {
            tracing::warn!(file = %crate::text::Clean(shown), category = %crate::text::Clean(c), "unknown CAP category kept as `other`");
        }
        Ok(FileRead {
            records: p.rows,
            findings: p.findings,
            rejected: p.rejected,
            warnings: p.warnings,
        })
    });
    import_mail::store_and_report(app, crate::finding::SourceId::Cymru, imp, a.json, a.wait).await
}
