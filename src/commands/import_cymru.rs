//! `outwatch import cymru FILE...`: Team Cymru CAP daily files (either format generation),
//! e.g. downloaded by hand or delivered by mail. Works without a config file.
use std::process::ExitCode;

use super::import_mail::{self, Imported};
use crate::app::App;
use crate::cli::ImportArgs;
use crate::error::CliError;
use crate::sources::RowError;
use crate::sources::cymru;

pub async fn run(app: &App, a: &ImportArgs) -> Result<ExitCode, CliError> {
    let files = import_mail::expand(&a.files)?;
    let mut imp = Imported::default();
    for path in &files {
        imp.files += 1;
        let shown = path.display().to_string();
        match import_mail::read_file(path) {
            Ok(raw) => {
                let p = cymru::parse(&raw, &shown);
                for c in &p.unknown_categories {
                    tracing::warn!(file = %crate::text::Clean(&shown), category = %crate::text::Clean(c), "unknown CAP category kept as `other`");
                }
                imp.records += p.rows;
                imp.findings.extend(p.findings);
                imp.rejected.extend(p.rejected);
                imp.warnings.extend(p.warnings);
            }
            Err(e) => {
                imp.failed_files += 1;
                imp.rejected.push(RowError {
                    location: shown,
                    message: format!("whole file: {e}"),
                });
            }
        }
    }
    import_mail::store_and_report(app, "cymru", imp, a.json)
}
