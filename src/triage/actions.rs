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

impl FromStr for Target {
    type Err = String;

    /// Hex of [`MIN_PREFIX`] to 32 characters is a fingerprint (no address, domain or ASN
    /// looks like that); anything else a lookup query.
    fn from_str(s: &str) -> Result<Target, String> {
        let t = s.trim();
        if (MIN_PREFIX..=32).contains(&t.len()) && t.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Ok(Target::Fingerprint(t.to_ascii_lowercase()));
        }
        t.parse::<Query>().map(Target::Query).map_err(|e| {
            format!(
                "{e}; or give a finding's fingerprint (at least {MIN_PREFIX} of its hex \
                 characters, as `lookup --json` prints it)"
            )
        })
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

/// The findings a target names: one by fingerprint (whatever its status), or every open
/// finding a query matches (an ASN: every finding whose `asn` is that one).
pub fn find(store: &dyn Store, target: &Target) -> Result<Vec<Finding>, TargetError> {
    match target {
        Target::Fingerprint(start) => by_fingerprint(store, start),
        Target::Query(q) => by_query(store, q),
    }
}

fn by_fingerprint(store: &dyn Store, start: &str) -> Result<Vec<Finding>, TargetError> {
    if start.len() == 32 {
        return match store.get(start)? {
            Some(f) => Ok(vec![f]),
            None => Err(TargetError::NotFound(start.into())),
        };
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
        1 => Ok(found),
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

fn by_query(store: &dyn Store, q: &Query) -> Result<Vec<Finding>, TargetError> {
    let mut out: Vec<Finding> = Vec::new();
    let mut too_many = false;
    let mut take = |f: Finding, out: &mut Vec<Finding>| {
        if out.len() >= MAX_TARGETS {
            too_many = true;
            return ControlFlow::Break(());
        }
        out.push(f);
        ControlFlow::Continue(())
    };
    match q {
        // Every finding that carries the ASN, not only those about the AS itself.
        Query::Asn(a) => {
            let mut stop = false;
            store.for_each(&mut |f| {
                if !stop
                    && f.asn == Some(*a)
                    && f.status != Status::Resolved
                    && take(f, &mut out).is_break()
                {
                    stop = true;
                }
                Ok(())
            })?;
        }
        q => {
            let opts = QueryOptions::default();
            store.query_each(q, &opts, &mut |f| Ok(take(f, &mut out)))?;
        }
    }
    if too_many {
        return Err(TargetError::TooMany { max: MAX_TARGETS });
    }
    Ok(out)
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
