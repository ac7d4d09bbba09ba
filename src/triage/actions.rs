//! Triage actions on findings: acknowledge (and take back), resolve by hand, annotate. Each
//! is a history entry with who, when and why ([`crate::finding::Event`]), written with
//! [`Store::modify`] (atomic per finding), so every backend keeps it.
//!
//! A target is a finding's fingerprint (or a unique start of it, 6 characters or more), or a
//! lookup query (an address, a prefix, a domain, a mail address, `AS64496`): a query acts on
//! every finding it matches that is not resolved, at most [`MAX_TARGETS`].

use std::ops::ControlFlow;
use std::str::FromStr;

use chrono::{DateTime, Utc};

use crate::finding::{Event, Finding, Status, Triage};
use crate::store::{Query, QueryOptions, Store, StoreError};

/// Most findings one command acts on (a query larger than that is refused: narrow it).
pub const MAX_TARGETS: usize = 100_000;
/// Shortest fingerprint start taken.
pub const MIN_PREFIX: usize = 6;
/// Fingerprints listed when a start is ambiguous.
const SHOWN_AMBIGUOUS: usize = 5;

/// What a triage command acts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A fingerprint or its start (lower-case hex).
    Fingerprint(String),
    /// The open findings a lookup query matches.
    Query(Query),
}

/// Text that is neither a fingerprint nor a lookup query: the query's own words, and how to
/// give a fingerprint instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{0}; or give a finding's fingerprint (at least {MIN_PREFIX} of its hex characters, as \
     `lookup --json` prints it)"
)]
pub struct BadTarget(pub crate::store::BadQuery);

impl FromStr for Target {
    type Err = BadTarget;

    /// Hex of [`MIN_PREFIX`] to 32 characters is a fingerprint (no address, domain or ASN
    /// looks like that); anything else a lookup query.
    fn from_str(s: &str) -> Result<Target, BadTarget> {
        let t = s.trim();
        if (MIN_PREFIX..=32).contains(&t.len()) && t.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Ok(Target::Fingerprint(t.to_ascii_lowercase()));
        }
        t.parse::<Query>().map(Target::Query).map_err(BadTarget)
    }
}

/// A triage action.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Ack,
    Unack,
    Resolve,
    Note,
}

impl Action {
    /// The past tense for messages: `acknowledged`.
    pub fn done(self) -> &'static str {
        match self {
            Action::Ack => "acknowledged",
            Action::Unack => "no longer acknowledged",
            Action::Resolve => "resolved",
            Action::Note => "noted",
        }
    }

    /// What a dry run says: `would acknowledge`.
    pub fn would(self) -> &'static str {
        match self {
            Action::Ack => "would acknowledge",
            Action::Unack => "would take back the acknowledgement of",
            Action::Resolve => "would resolve",
            Action::Note => "would add the note to",
        }
    }

    /// Why the action does not apply to `f`, if it does not.
    pub fn refusal(self, f: &Finding) -> Option<&'static str> {
        match self {
            Action::Ack | Action::Resolve if f.status == Status::Resolved => Some("is resolved"),
            Action::Unack if f.acked().is_none() => Some("is not acknowledged"),
            _ => None,
        }
    }

    /// The history event of this action.
    fn event(self, t: Triage) -> Event {
        match self {
            Action::Ack => Event::Ack(t),
            Action::Unack => Event::Unack(t),
            Action::Resolve => Event::Resolved(Some(t)),
            Action::Note => Event::Note(t),
        }
    }

    /// Applies the action to `f` at `now` (false when it does not apply).
    pub fn apply(self, f: &mut Finding, t: &Triage, now: DateTime<Utc>) -> bool {
        if self.refusal(f).is_some() {
            return false;
        }
        if self == Action::Resolve {
            f.status = Status::Resolved;
        }
        f.push_history(now, self.event(t.clone()));
        true
    }
}

/// Why the targets could not be found.
#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    #[error(transparent)]
    Store(#[from] StoreError),
    /// No finding has this fingerprint (start).
    #[error("no finding's fingerprint starts with `{0}` (`outwatch lookup … --json` prints them)")]
    NotFound(String),
    /// More than one finding's fingerprint starts so.
    #[error("`{start}` is the start of {count} findings' fingerprints ({shown}…): give more of it")]
    Ambiguous {
        start: String,
        count: usize,
        shown: String,
    },
    /// The query matches more than [`MAX_TARGETS`].
    #[error(
        "the query matches more than {max} open findings; narrow it (a smaller prefix, a host)"
    )]
    TooMany { max: usize },
}

/// What a target selects for an action, in memory bounded by the fingerprints: those the
/// action applies to (fingerprint and indicator each), the first [`SHOWN`] of them whole, and
/// those it does not apply to (counted, the first [`SHOWN`] with why).
#[derive(Debug, Default)]
pub struct Selection {
    /// Fingerprint and indicator of each finding the action applies to.
    pub apply: Vec<(String, String)>,
    /// The first of them, to show.
    pub shown: Vec<Finding>,
    /// How many matched but do not take the action.
    pub skipped: usize,
    /// The first of those, with why.
    pub skipped_shown: Vec<(Finding, &'static str)>,
}

/// Findings shown whole in a [`Selection`].
pub const SHOWN: usize = 20;

impl Selection {
    /// How many the target matched.
    pub fn matched(&self) -> usize {
        self.apply.len() + self.skipped
    }

    /// The fingerprints the action applies to.
    pub fn fingerprints(&self) -> Vec<String> {
        self.apply.iter().map(|(fp, _)| fp.clone()).collect()
    }

    fn take(&mut self, action: Action, f: Finding) {
        match action.refusal(&f) {
            None => {
                self.apply.push((f.fingerprint.clone(), f.indicator()));
                if self.shown.len() < SHOWN {
                    self.shown.push(f);
                }
            }
            Some(why) => {
                self.skipped += 1;
                if self.skipped_shown.len() < SHOWN {
                    self.skipped_shown.push((f, why));
                }
            }
        }
    }
}

/// What `target` selects for `action`: one finding by fingerprint (whatever its status), or
/// every finding a query matches that is not resolved (an ASN: every finding whose `asn` is
/// that one), at most [`MAX_TARGETS`].
pub fn select(
    store: &dyn Store,
    target: &Target,
    action: Action,
) -> Result<Selection, TargetError> {
    let mut sel = Selection::default();
    match target {
        Target::Fingerprint(start) => {
            let f = by_fingerprint(store, start)?;
            sel.take(action, f);
        }
        Target::Query(q) => {
            let mut too_many = false;
            each_open(store, q, &mut |f| {
                if sel.matched() >= MAX_TARGETS {
                    too_many = true;
                    return ControlFlow::Break(());
                }
                sel.take(action, f);
                ControlFlow::Continue(())
            })?;
            if too_many {
                return Err(TargetError::TooMany { max: MAX_TARGETS });
            }
        }
    }
    Ok(sel)
}

fn by_fingerprint(store: &dyn Store, start: &str) -> Result<Finding, TargetError> {
    if start.len() == 32 {
        return store
            .get(start)?
            .ok_or_else(|| TargetError::NotFound(start.into()));
    }
    let mut found: Vec<Finding> = Vec::new();
    let mut count = 0usize;
    store.for_each(&mut |f| {
        if f.fingerprint.starts_with(start) {
            count += 1;
            if found.len() < SHOWN_AMBIGUOUS {
                found.push(f);
            }
        }
        Ok(())
    })?;
    match count {
        0 => Err(TargetError::NotFound(start.into())),
        1 => Ok(found.remove(0)),
        n => Err(TargetError::Ambiguous {
            start: start.into(),
            count: n,
            shown: found
                .iter()
                .map(|f| f.fingerprint.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        }),
    }
}

/// Streams the findings a query matches that are not resolved, until `f` stops.
fn each_open(
    store: &dyn Store,
    q: &Query,
    f: &mut dyn FnMut(Finding) -> ControlFlow<()>,
) -> Result<(), StoreError> {
    match q {
        // Every finding that carries the ASN, not only those about the AS itself.
        Query::Asn(a) => {
            let mut stop = false;
            store.for_each(&mut |x| {
                if !stop && x.asn == Some(*a) && x.status != Status::Resolved && f(x).is_break() {
                    stop = true;
                }
                Ok(())
            })
        }
        q => store
            .query_each(q, &QueryOptions::default(), &mut |x| Ok(f(x)))
            .map(|_| ()),
    }
}

/// Applies `action` by `t` at `now` to the findings with these fingerprints, each atomically
/// and checked again as stored; returns how many changed.
pub fn apply(
    store: &dyn Store,
    fingerprints: &[String],
    action: Action,
    t: &Triage,
    now: DateTime<Utc>,
) -> Result<usize, StoreError> {
    store.modify(fingerprints, &mut |f| action.apply(f, t, now))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets() {
        assert_eq!(
            "A1B2C3d4".parse::<Target>().unwrap(),
            Target::Fingerprint("a1b2c3d4".into())
        );
        assert!(matches!(
            "192.0.2.0/24".parse::<Target>().unwrap(),
            Target::Query(Query::Net(_))
        ));
        assert!(matches!(
            "AS64496".parse::<Target>().unwrap(),
            Target::Query(Query::Asn(64496))
        ));
        // Too short for a fingerprint, and no query either.
        assert!("abc".parse::<Target>().is_err());
    }
}
