//! `outwatch import safebrowsing FILE.eml|DIR...`: "Safe Browsing Alerts for Network
//! Administrators" mails (XML `notification_message`). Each `url_info` is one finding.
//! A bare `.xml` file holding the `notification_message` is read too. Works without a config.
use std::process::ExitCode;

use super::import_mail::{self, FileRead};
use crate::app::App;
use crate::cli::ImportArgs;
use crate::error::CliError;
use crate::sources::safebrowsing::alerts;

pub(crate) async fn run(app: &App, a: &ImportArgs) -> Result<ExitCode, CliError> {
    let files = import_mail::expand(&a.files)?;
    let imp = import_mail::read_files(&files, |raw, shown| {
        let p = parse_file(raw, shown)?;
        Ok(FileRead {
            records: p.records,
            findings: p.findings,
            rejected: p.rejected,
            warnings: p.warnings,
        })
    });
    import_mail::store_and_report(
        app,
        crate::finding::SourceId::SafeBrowsing,
        imp,
        a.json,
        a.wait,
    )
    .await
}

/// A mail (XML in any text body) or a bare XML document.
fn parse_file(raw: &[u8], shown: &str) -> Result<alerts::Parsed, String> {
    let mail = crate::mail::parse(raw);
    if let Some(m) = &mail
        && let Some(xml) = m.bodies().find_map(alerts::extract_xml)
    {
        return alerts::parse_xml(xml, shown, m.date).map_err(|e| crate::text::chain(&e));
    }
    let text = String::from_utf8_lossy(raw);
    match alerts::extract_xml(&text) {
        Some(xml) => alerts::parse_xml(xml, shown, mail.and_then(|m| m.date))
            .map_err(|e| crate::text::chain(&e)),
        None => Err(
            "no <notification_message> found: is this a Safe Browsing alert, and is the AS set \
             to send XML notifications?"
                .into(),
        ),
    }
}
