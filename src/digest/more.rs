//! The `outwatch list …` command behind every "… and N more" line of the digest: the group's
//! filter written out as flags, shell-quoted, so a reader can paste it and see the rest.
//!
//! The flags are those of `outwatch list` (the worklist): `--status`, `--severity`,
//! `--min-severity`, `--source`, `--class TAX[/TYPE]`, `--team`, `--since`/`--until` (the
//! observation time), `--stored-since` (when outwatch first stored it), `--no-contact` and
//! `--sort rank`.

use chrono::{DateTime, SecondsFormat, Utc};

use crate::finding::Severity;

/// The filter of one digest group, as `outwatch list` takes it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct ListFilter {
    /// `new`, `open` or `resolved`; `None`: what `list` shows by default (not resolved).
    pub status: Option<&'static str>,
    pub severity: Option<Severity>,
    pub min_severity: Option<Severity>,
    pub source: Option<String>,
    /// `taxonomy` or `taxonomy/type`.
    pub class: Option<String>,
    /// A `[[digest.routes]]` name.
    pub team: Option<String>,
    /// Observed after / up to.
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
    /// First stored after.
    pub stored_since: Option<DateTime<Utc>>,
    /// Only findings no contact owns (`outwatch notify`).
    pub no_contact: bool,
}

/// `outwatch list` with the flags of `f`, in rank order, each value shell-quoted.
pub(crate) fn more_command(f: &ListFilter) -> String {
    let mut out = String::from("outwatch list");
    let mut flag = |name: &str, value: &str| {
        out.push_str(" --");
        out.push_str(name);
        out.push(' ');
        out.push_str(&shell_quote(value));
    };
    if let Some(s) = f.status {
        flag("status", s);
    }
    if let Some(s) = f.severity {
        flag("severity", s.as_str());
    }
    if let Some(s) = f.min_severity {
        flag("min-severity", s.as_str());
    }
    if let Some(s) = &f.source {
        flag("source", s);
    }
    if let Some(c) = &f.class {
        flag("class", c);
    }
    if let Some(t) = &f.team {
        flag("team", t);
    }
    let time = |t: &DateTime<Utc>| t.to_rfc3339_opts(SecondsFormat::Secs, true);
    if let Some(t) = &f.since {
        flag("since", &time(t));
    }
    if let Some(t) = &f.until {
        flag("until", &time(t));
    }
    if let Some(t) = &f.stored_since {
        flag("stored-since", &time(t));
    }
    if f.no_contact {
        out.push_str(" --no-contact");
    }
    out.push_str(" --sort rank");
    out
}

/// A word the shell reads back as `s`: bare when it holds only safe characters, else in single
/// quotes (a quote inside written `'\''`). Control characters become `?`.
pub(crate) fn shell_quote(s: &str) -> String {
    let safe = |c: char| c.is_ascii_alphanumeric() || "_-./:@%+=,".contains(c);
    if !s.is_empty() && s.chars().all(safe) {
        return s.to_string();
    }
    let mut out = String::from("'");
    for c in s.chars() {
        match c {
            '\'' => out.push_str("'\\''"),
            c if c.is_control() => out.push('?'),
            c => out.push(c),
        }
    }
    out.push('\'');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_are_quoted_and_complete() {
        let f = ListFilter {
            status: Some("open"),
            severity: Some(Severity::High),
            class: Some("vulnerable/vulnerable-system".into()),
            team: Some("DMZ team's".into()),
            until: DateTime::from_timestamp(1_700_000_000, 0),
            ..Default::default()
        };
        assert_eq!(
            more_command(&f),
            "outwatch list --status open --severity high --class vulnerable/vulnerable-system \
             --team 'DMZ team'\\''s' --until 2023-11-14T22:13:20Z --sort rank"
        );
        assert_eq!(
            more_command(&ListFilter::default()),
            "outwatch list --sort rank"
        );
        assert_eq!(shell_quote("a;rm -rf /"), "'a;rm -rf /'");
        assert_eq!(shell_quote("x\ny"), "'x?y'");
        assert_eq!(shell_quote(""), "''");
    }
}
