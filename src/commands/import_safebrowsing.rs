//! `outwatch import safebrowsing FILE.eml|DIR...`: "Safe Browsing Alerts for Network
//! Administrators" mails (XML `notification_message`). Each `url_info` is one finding.
//! A bare `.xml` file holding the `notification_message` is read too. Works without a config.
use std::process::ExitCode;

use super::import_mail::{self, Imported};
use crate::app::App;
use crate::cli::ImportArgs;
use crate::error::CliError;
use crate::sources::RowError;
use crate::sources::safebrowsing::alerts;

pub async fn run(app: &App, a: &ImportArgs) -> Result<ExitCode, CliError> {
    let files = import_mail::expand(&a.files)?;
    let mut imp = Imported::default();
    for path in &files {
        imp.files += 1;
        let shown = path.display().to_string();
        let parsed = import_mail::read_file(path).and_then(|raw| parse_file(&raw, &shown));
        match parsed {
            Ok(p) => {
                imp.records += p.records;
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
    import_mail::store_and_report(app, "safebrowsing", imp, a.json)
}

/// A mail (XML in any text body) or a bare XML document.
fn parse_file(raw: &[u8], shown: &str) -> Result<alerts::Parsed, String> {
    let mail = crate::mail::parse(raw);
    if let Some(m) = &mail
        && let Some(xml) = m.bodies().find_map(alerts::extract_xml)
    {
        return alerts::parse_xml(xml, shown, m.date);
    }
    let text = String::from_utf8_lossy(raw);
    match alerts::extract_xml(&text) {
        Some(xml) => alerts::parse_xml(xml, shown, mail.and_then(|m| m.date)),
        None => Err(
            "no <notification_message> found: is this a Safe Browsing alert, and is the AS set \
             to send XML notifications?"
                .into(),
        ),
    }
}
