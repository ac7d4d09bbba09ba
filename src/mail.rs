//! Reading provider notification e-mails (`.eml`, RFC 5322 + MIME) for the `import` commands.
//!
//! Only what the importers need: sender, subject, date and the decoded text and HTML bodies
//! (quoted-printable and base64 undone, charsets converted). Parsing never panics; a file that
//! is not a mail at all is an error naming the file.

use chrono::{DateTime, Utc};
use mail_parser::MessageParser;

/// The parts of a notification mail the importers read.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Mail {
    /// `From` address, lower-case (`noreply@haveibeenpwned.com`).
    pub from: Option<String>,
    pub subject: Option<String>,
    /// The `Date` header.
    pub date: Option<DateTime<Utc>>,
    /// Every text/plain body, decoded.
    pub text: Vec<String>,
    /// Every text/html body, decoded.
    pub html: Vec<String>,
}

impl Mail {
    /// All text bodies followed by all HTML bodies, for searching a marker in any of them.
    pub fn bodies(&self) -> impl Iterator<Item = &str> {
        self.text.iter().chain(self.html.iter()).map(String::as_str)
    }
}

/// Parses a raw message. `None` when the bytes are not a mail (no header block, no body).
pub fn parse(raw: &[u8]) -> Option<Mail> {
    let msg = MessageParser::default().parse(raw)?;
    let from = msg
        .from()
        .and_then(|a| a.first())
        .and_then(|a| a.address())
        .map(|s| s.trim().to_ascii_lowercase());
    let subject = msg.subject().map(|s| s.trim().to_string());
    let date = msg
        .date()
        .and_then(|d| DateTime::<Utc>::from_timestamp(d.to_timestamp(), 0));
    let mut text = Vec::new();
    let mut i = 0;
    while let Some(t) = msg.body_text(i) {
        text.push(t.into_owned());
        i += 1;
    }
    let mut html = Vec::new();
    // `body_html` renders text parts as HTML; keep only real HTML parts.
    for part in msg.html_bodies() {
        if let mail_parser::PartType::Html(h) = &part.body {
            html.push(h.to_string());
        }
    }
    if from.is_none() && subject.is_none() && text.is_empty() && html.is_empty() {
        return None;
    }
    Some(Mail {
        from,
        subject,
        date,
        text,
        html,
    })
}

/// Removes tags from an HTML fragment, decodes its entities (mail-parser's decoder, which
/// knows the whole HTML entity table) and collapses white space.
pub fn html_to_text(html: &str) -> String {
    let text = mail_parser::decoders::html::html_to_text(html);
    // Non-breaking spaces are spaces for matching the text.
    text.replace('\u{a0}', " ")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_multipart_mail() {
        let raw = b"From: \"X\" <NoReply@Example.org>\r\nSubject: Hello\r\nDate: Tue, 29 Aug 2017 22:07:27 +0000\r\nMIME-Version: 1.0\r\nContent-Type: multipart/alternative; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain; charset=us-ascii\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\nline one =\r\ncontinued\r\n--b\r\nContent-Type: text/html\r\nContent-Transfer-Encoding: base64\r\n\r\nPGI+aGk8L2I+\r\n--b--\r\n";
        let m = parse(raw).unwrap();
        assert_eq!(m.from.as_deref(), Some("noreply@example.org"));
        assert_eq!(m.subject.as_deref(), Some("Hello"));
        assert_eq!(m.date.unwrap().to_rfc3339(), "2017-08-29T22:07:27+00:00");
        assert!(m.text[0].contains("line one continued"), "{:?}", m.text);
        assert_eq!(m.html, vec!["<b>hi</b>".to_string()]);
    }

    #[test]
    fn html_text_and_entities() {
        assert_eq!(
            html_to_text("<b>Accounts&nbsp;found:</b>\n <td>1 &amp; 2 &#x41;&#66;</td>"),
            "Accounts found: 1 & 2 AB"
        );
        assert_eq!(html_to_text("a & b &bogus; c"), "a & b &bogus; c");
    }
}
