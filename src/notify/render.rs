//! Rendering a notification: `notify_subject.txt`, `notify.txt` and `notify.html` with
//! minijinja (the `.html` one auto-escaped: feed content is untrusted), as the digest does; the
//! text table of the body; and the CSV attachment (csv crate, cells that a spreadsheet would
//! take as a formula neutralised).
//!
//! A contact's `template` and `language` choose the files: `<template>.<language>.txt` when the
//! template folder (`[notify] templates`) has it, else `<template>.txt` there, else the built-in
//! file of that name (built in: `notify`).

use std::path::{Path, PathBuf};

use minijinja::Environment;
use minijinja::value::Serde;
use serde::Serialize;

use super::plan::Row;
use crate::digest::render::TemplateError;
use crate::text::{clip_middle, sanitize};

/// The built-in templates.
pub(crate) const BUILTIN: [(&str, &str); 3] = [
    (
        "notify_subject.txt",
        include_str!("../../templates/notify_subject.txt"),
    ),
    ("notify.txt", include_str!("../../templates/notify.txt")),
    ("notify.html", include_str!("../../templates/notify.html")),
];

/// Largest HTML part; a mail over it lists fewer rows in the body (the CSV has them all).
pub(crate) const MAX_HTML_BYTES: usize = 100 * 1024;

/// One row as templates see it: the row's fields plus `what` (address, network, domain...).
#[derive(Debug, Clone, Serialize)]
pub(crate) struct RowView<'a> {
    #[serde(flatten)]
    pub row: &'a Row,
    pub what: String,
}

/// Everything a notification template can use (documented in docs/notify.md).
#[derive(Debug, Clone, Serialize)]
pub(crate) struct NotifyView<'a> {
    /// `[organisation] name`.
    pub organisation: String,
    /// The contact's name.
    pub contact: String,
    pub ticket: String,
    pub language: String,
    pub generated: String,
    /// The findings shown in the body (most severe first).
    pub rows: Vec<RowView<'a>>,
    /// Findings in this mail (all are in the CSV).
    pub count: usize,
    /// Findings in the CSV but not in the body's table.
    pub not_shown: usize,
    /// Findings due beyond this mail (they come in the next one).
    pub more: usize,
    /// The body's table as fixed-width text, sanitised (for `notify.txt`).
    pub text_table: String,
    /// Name of the CSV attachment.
    pub attachment: String,
    /// Where replies go.
    pub reply_to: Option<String>,
}

/// A rendered notification.
#[derive(Debug, Clone)]
pub struct Rendered {
    pub subject: String,
    pub text: String,
    pub html: String,
}

/// A template that cannot be rendered: its file name, and minijinja's error written out in
/// full (with its line), as the digest's `TemplateError::Render`.
#[derive(Debug, thiserror::Error)]
#[error("template {name}: {error:#}")]
pub struct RenderError {
    pub name: String,
    pub error: minijinja::Error,
}

/// The CSV attachment cannot be written (the cause is kept, and is the message).
#[derive(Debug, thiserror::Error)]
pub enum AttachmentError {
    #[error("{0}")]
    Csv(#[from] csv::Error),
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Utf8(#[from] std::string::FromUtf8Error),
}

/// The template environment.
pub(crate) struct Renderer {
    env: Environment<'static>,
    dir: Option<PathBuf>,
}

impl Renderer {
    /// Loads the built-in templates, replaced by same-named files in `dir`; other files of
    /// `dir` (other templates and languages) are loaded when asked for.
    pub(crate) fn new(dir: Option<&Path>) -> Result<Self, TemplateError> {
        let env = crate::digest::render::environment(&BUILTIN, dir)?;
        Ok(Renderer {
            env,
            dir: dir.map(Path::to_path_buf),
        })
    }

    /// The file name used for `kind` (`.txt`, `.html`, `_subject.txt`) of a template and
    /// language: the language's own file when there is one.
    fn pick(&self, template: &str, language: &str, kind: &str) -> String {
        let localised = format!("{template}.{language}{kind}");
        if self
            .dir
            .as_ref()
            .is_some_and(|d| d.join(&localised).is_file())
        {
            localised
        } else {
            format!("{template}{kind}")
        }
    }

    /// Renders the subject (one line, the ticket in it), the text part and the HTML part.
    pub(crate) fn render(
        &self,
        template: &str,
        language: &str,
        view: &NotifyView<'_>,
    ) -> Result<Rendered, RenderError> {
        let r = |kind: &str| -> Result<String, RenderError> {
            let name = self.pick(template, language, kind);
            self.env
                .get_template(&name)
                .and_then(|t| t.render(Serde(view)))
                .map_err(|error| RenderError { name, error })
        };
        let subject = r("_subject.txt")?;
        let mut subject = subject.split_whitespace().collect::<Vec<_>>().join(" ");
        if !subject.contains(&view.ticket) {
            subject = format!("[{}] {subject}", view.ticket);
        }
        Ok(Rendered {
            subject,
            text: r(".txt")?,
            html: r(".html")?,
        })
    }
}

/// The findings as a fixed-width table for the text part (fits 80 columns; feed text
/// sanitised, long addresses shortened in the middle).
pub(crate) fn text_table(rows: &[RowView<'_>]) -> String {
    let mut out = format!(
        "{:<9} {:<22} {:<32} {}\n",
        "SEVERITY", "TYPE", "WHAT", "LAST SEEN"
    );
    for r in rows {
        out.push_str(&format!(
            "{:<9} {:<22} {:<32} {}\n",
            r.row.severity.as_str(),
            clip_middle(&r.row.kind, 22),
            clip_middle(&r.what, 32),
            r.row.last_seen.format("%Y-%m-%d")
        ));
    }
    out
}

/// A cell a spreadsheet would run as a formula (`= + - @`, or a tab / carriage return first)
/// gets a leading `'`.
pub(crate) fn neutralise(cell: &str) -> String {
    match cell.chars().next() {
        Some('=' | '+' | '-' | '@' | '\t' | '\r') => format!("'{cell}"),
        _ => cell.to_string(),
    }
}

/// The columns of the CSV attachment.
pub(crate) const CSV_COLUMNS: [&str; 20] = [
    "ticket",
    "severity",
    "status",
    "reason",
    "classification_taxonomy",
    "classification_type",
    "classification_identifier",
    "source",
    "feed",
    "ip",
    "port",
    "protocol",
    "network",
    "asn",
    "domain",
    "url",
    "email",
    "first_seen",
    "last_seen",
    "fingerprint",
];

/// The rows as CSV (header line first), every cell neutralised.
pub(crate) fn csv(ticket: &str, rows: &[Row]) -> Result<String, AttachmentError> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(CSV_COLUMNS)?;
    let opt = |v: &Option<String>| v.clone().unwrap_or_default();
    for r in rows {
        let cells = [
            ticket.to_string(),
            r.severity.to_string(),
            r.status.to_string(),
            format!("{:?}", r.reason).to_ascii_lowercase(),
            r.taxonomy.clone(),
            r.kind.clone(),
            r.identifier.clone(),
            r.source.clone(),
            r.feed.clone(),
            opt(&r.ip),
            r.port.map(|p| p.to_string()).unwrap_or_default(),
            opt(&r.protocol),
            opt(&r.network),
            r.asn.map(|a| a.to_string()).unwrap_or_default(),
            opt(&r.domain),
            opt(&r.url),
            opt(&r.email),
            r.first_seen.to_rfc3339(),
            r.last_seen.to_rfc3339(),
            r.fingerprint.clone(),
        ];
        w.write_record(cells.iter().map(|c| neutralise(&sanitize(c))))?;
    }
    let bytes = w.into_inner().map_err(|e| e.into_error())?;
    Ok(String::from_utf8(bytes)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::finding::{Severity, Status};
    use crate::notify::plan::Reason;
    use chrono::Utc;

    fn row(i: usize, url: &str) -> Row {
        Row {
            fingerprint: format!("{i:064x}"),
            severity: Severity::High,
            status: Status::New,
            reason: Reason::New,
            source: "urlhaus".into(),
            feed: "urls".into(),
            taxonomy: "malicious-code".into(),
            kind: "malware-distribution".into(),
            identifier: "<b>x</b>".into(),
            ip: None,
            port: None,
            protocol: None,
            network: None,
            asn: None,
            domain: None,
            url: Some(url.into()),
            email: None,
            first_seen: Utc::now(),
            last_seen: Utc::now(),
            times_seen: 1,
            matched: "domain example.org".into(),
        }
    }

    fn view<'a>(rows: &'a [Row], shown: usize) -> NotifyView<'a> {
        let rv: Vec<RowView<'_>> = rows[..shown]
            .iter()
            .map(|r| RowView {
                what: r.what(),
                row: r,
            })
            .collect();
        NotifyView {
            organisation: "Org".into(),
            contact: "<i>Customer</i>".into(),
            ticket: "OW-20260301-0000ABCD".into(),
            language: "en".into(),
            generated: "now".into(),
            text_table: text_table(&rv),
            rows: rv,
            count: rows.len(),
            not_shown: rows.len() - shown,
            more: 0,
            attachment: "OW-20260301-0000ABCD.csv".into(),
            reply_to: None,
        }
    }

    #[test]
    fn feed_text_is_escaped_and_the_ticket_is_in_the_subject() {
        let rows = vec![row(1, "http://example.org/<script>alert(1)</script>")];
        let r = Renderer::new(None)
            .unwrap()
            .render("notify", "en", &view(&rows, 1))
            .unwrap();
        assert!(
            r.subject
                .starts_with("[OW-20260301-0000ABCD] 1 security finding "),
            "{}",
            r.subject
        );
        assert!(!r.html.contains("<script>") && r.html.contains("&lt;script&gt;"));
        assert!(!r.html.contains("<b>x</b>") && !r.html.contains("<i>Customer"));
        assert!(r.text.contains("malware-distribution"));
        assert!(!r.html.contains("{\""), "no raw JSON");
        assert!(
            r.text.lines().all(|l| l.chars().count() <= 80),
            "{}",
            r.text
        );
    }

    #[test]
    fn a_hundred_rows_stay_under_100_kb() {
        let long = format!("http://example.org/{}", "a".repeat(290));
        let rows: Vec<Row> = (0..100).map(|i| row(i, &long)).collect();
        let r = Renderer::new(None)
            .unwrap()
            .render("notify", "en", &view(&rows, 100))
            .unwrap();
        assert!(r.html.len() < MAX_HTML_BYTES, "{}", r.html.len());
    }

    #[test]
    fn a_language_file_in_the_folder_is_preferred() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("notify.de.txt"), "Hallo {{ contact }}").unwrap();
        let rows = vec![row(1, "http://example.org/")];
        let r = Renderer::new(Some(dir.path())).unwrap();
        assert_eq!(
            r.render("notify", "de", &view(&rows, 1)).unwrap().text,
            "Hallo <i>Customer</i>"
        );
        assert!(
            r.render("notify", "en", &view(&rows, 1))
                .unwrap()
                .text
                .starts_with("Hello")
        );
        assert!(r.render("other", "en", &view(&rows, 1)).is_err());
    }

    #[test]
    fn csv_cells_that_look_like_formulas_are_neutralised() {
        let rows = vec![
            row(1, "=cmd|' /C calc'!A0"),
            row(2, "@SUM(1)"),
            row(3, "-1+1"),
            row(4, "+1"),
        ];
        let out = csv("T", &rows).unwrap();
        let mut rdr = csv::Reader::from_reader(out.as_bytes());
        let urls: Vec<String> = rdr.records().map(|r| r.unwrap()[15].to_string()).collect();
        assert_eq!(urls, ["'=cmd|' /C calc'!A0", "'@SUM(1)", "'-1+1", "'+1"]);
    }
}
