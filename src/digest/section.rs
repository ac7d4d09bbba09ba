//! The three sections of a digest (new, still open, resolved), how many findings each lists,
//! and the one cleaning of attacker-controlled text for the digest's lines. A leaf of the
//! digest: `build` and `traffic` both use it.

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::more::ListFilter;

/// Most findings listed per (section, severity, category) group. Counts stay exact.
pub const LIST_NEW: usize = 20;
/// Most still-open findings listed per group (the oldest).
pub const LIST_OPEN: usize = 5;
/// Most resolved findings listed per group (the most recently resolved).
pub const LIST_RESOLVED: usize = 5;
/// Most findings listed in one whole digest, handed out new → open → resolved and most severe
/// first; the HTML part's byte budget may list fewer (see [`super::prepare`]).
pub const LIST_TOTAL: usize = 100;

/// The three parts of a digest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Section {
    New,
    Open,
    Resolved,
}

impl Section {
    pub(super) const ALL: [Section; 3] = [Section::New, Section::Open, Section::Resolved];

    pub(super) fn title(self) -> &'static str {
        match self {
            Section::New => "New since the last digest",
            Section::Open => "Still open",
            Section::Resolved => "Resolved since the last digest",
        }
    }

    /// The `outwatch list` filter of the section in a window: new means first stored since
    /// the last digest (or, in the first digest, anything not resolved: a finding seen twice
    /// before its first digest is `open` already); still open ones were observed again since
    /// (the others are counted apart, [`SectionView::unchanged`]).
    pub(super) fn filter(self, since: Option<DateTime<Utc>>) -> ListFilter {
        match self {
            Section::New => ListFilter {
                stored_since: since,
                ..ListFilter::default()
            },
            Section::Open => ListFilter {
                status: Some("open"),
                since,
                ..ListFilter::default()
            },
            Section::Resolved => ListFilter {
                status: Some("resolved"),
                ..ListFilter::default()
            },
        }
    }

    pub(super) fn cap(self) -> usize {
        match self {
            Section::New => LIST_NEW,
            Section::Open => LIST_OPEN,
            Section::Resolved => LIST_RESOLVED,
        }
    }
}

/// Replaces control characters (newlines included) by spaces and shortens to `max` characters.
pub fn clean(s: &str, max: usize) -> String {
    let mut out = String::with_capacity(s.len().min(max + 3));
    for (n, c) in s.chars().enumerate() {
        if n == max {
            out.push('…');
            break;
        }
        out.push(if c.is_control() { ' ' } else { c });
    }
    out
}
