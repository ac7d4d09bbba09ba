//! Which source a finding comes from: [`SourceId`], the one place the built-in sources' names
//! are written.
//!
//! A finding keeps its source as text ([`super::Finding::source`]: the stores, the JSON export
//! and the API carry that text, and a list feed's name comes from its feed file); code that
//! asks which source it is asks through [`SourceId::of`] or [`super::Finding::is_from`], never
//! by comparing the text with a literal.

use std::fmt;

/// A built-in source: the API sources of `sources/` and the flows analysis. The list feeds are
/// not here: their names come from feed files, and no feed may take one of these names
/// (`sources::lists::definition`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SourceId {
    Shadowserver,
    Hibp,
    SafeBrowsing,
    Snds,
    Cymru,
    /// The findings of `outwatch flows` and the daemon's flows job (also the name of their
    /// run-log entry and feed-health line).
    Flows,
}

impl SourceId {
    /// Every built-in source.
    pub const ALL: [SourceId; 6] = [
        SourceId::Shadowserver,
        SourceId::Hibp,
        SourceId::SafeBrowsing,
        SourceId::Snds,
        SourceId::Cymru,
        SourceId::Flows,
    ];

    /// The name: `[sources.NAME]`, `fetch --source NAME`, a finding's `source`, its run-log
    /// entry.
    pub const fn name(self) -> &'static str {
        match self {
            SourceId::Shadowserver => "shadowserver",
            SourceId::Hibp => "hibp",
            SourceId::SafeBrowsing => "safebrowsing",
            SourceId::Snds => "snds",
            SourceId::Cymru => "cymru",
            SourceId::Flows => "flows",
        }
    }

    /// The built-in source named `name`; `None` for a list feed (or a name no source has).
    pub fn of(name: &str) -> Option<SourceId> {
        SourceId::ALL.into_iter().find(|s| s.name() == name)
    }

    /// Whether `name` is this source's name.
    pub fn is(self, name: &str) -> bool {
        self.name() == name
    }
}

impl fmt::Display for SourceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl From<SourceId> for String {
    fn from(s: SourceId) -> String {
        s.name().to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_reads_back_as_its_source_and_a_feed_is_none() {
        for s in SourceId::ALL {
            assert_eq!(SourceId::of(s.name()), Some(s));
            assert_eq!(s.to_string(), s.name());
            assert!(s.is(s.name()));
        }
        let mut names: Vec<_> = SourceId::ALL.iter().map(|s| s.name()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), SourceId::ALL.len(), "two sources share a name");
        assert_eq!(SourceId::of("feodotracker"), None);
        assert_eq!(SourceId::of("Shadowserver"), None, "names are exact");
        assert!(!SourceId::Hibp.is("hibp "));
    }
}
