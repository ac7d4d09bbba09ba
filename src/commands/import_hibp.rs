//! `outwatch import hibp FILE.eml...`: Have I Been Pwned domain-notification e-mails.
//! Each mail gives one finding about the monitored domain and the breach (the mail does not
//! list the addresses; `fetch` with an API key does). Works without a config file.
use std::process::ExitCode;

use super::import_mail::{self, Imported};
use crate::app::App;
use crate::cli::ImportArgs;
use crate::error::CliError;
use crate::sources::RowError;
use crate::sources::hibp::notification;

pub async fn run(app: &App, a: &ImportArgs) -> Result<ExitCode, CliError> {
    let files = import_mail::expand(&a.files)?;
    let mut imp = Imported::default();
    for path in &files {
        imp.files += 1;
        let shown = path.display().to_string();
        let parsed = import_mail::read_file(path).and_then(|raw| {
            let mail = crate::mail::parse(&raw).ok_or("not an e-mail message")?;
            let n = notification::parse(&mail)?;
            Ok((n, mail.date))
        });
        match parsed {
            Ok((n, date)) => {
                imp.records += 1;
                let mut f = notification::finding(&n);
                f.time_source = date;
                f.raw = Some(shown);
                imp.findings.push(f);
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
    import_mail::store_and_report(app, "hibp", imp, a.json)
}
