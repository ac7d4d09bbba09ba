//! `outwatch import hibp FILE.eml...`: Have I Been Pwned domain-notification e-mails.
//! Each mail gives one finding about the monitored domain and the breach (the mail does not
//! list the addresses; `fetch` with an API key does). Works without a config file.
use std::process::ExitCode;

use super::import_mail::{self, FileRead};
use crate::app::App;
use crate::cli::ImportArgs;
use crate::error::CliError;
use crate::sources::hibp::notification;

pub(crate) async fn run(app: &App, a: &ImportArgs) -> Result<ExitCode, CliError> {
    let files = import_mail::expand(&a.files)?;
    let imp = import_mail::read_files(&files, |raw, shown| {
        let mail = crate::mail::parse(raw).ok_or("not an e-mail message")?;
        let n = notification::parse(&mail).map_err(|e| e.to_string())?;
        let mut f = notification::finding(&n);
        f.time_source = mail.date;
        f.raw = Some(shown.to_string());
        Ok(FileRead {
            records: 1,
            findings: vec![f],
            ..Default::default()
        })
    });
    import_mail::store_and_report(app, crate::finding::SourceId::Hibp, imp, a.json, a.wait).await
}
