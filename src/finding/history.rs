//! A finding's history: life-cycle events (`new`, `reopened`, `resolved`, `reported`) and
//! triage by people (`ack`, `unack`, `note`, and `resolved` by hand), each with its time.
//!
//! **Written shape.** JSON (export, `lookup --json`, the socket) keeps the shape of earlier
//! versions, `{"at": …, "event": "new"}`, and adds `by` and `text` to triage events:
//! `{"at": …, "event": "ack", "by": "alice", "text": "our honeypot"}`. An event name this
//! version does not know is kept as it is ([`Event::Other`]). In a store record an event is one
//! string ([`Event::wire`]): a life-cycle event its name, as before; a triage event a JSON
//! object (`{"event":"ack","by":…,"text":…}`), which no name starts with, so records written
//! before triage existed decode unchanged.
//!
//! **The cap.** At most [`HISTORY_CAP`] entries are kept ([`push`]). Life-cycle events repeat
//! (a `reported` a day, a `resolved`/`reopened` pair per flapping), triage does not, so when
//! the history is full the oldest life-cycle event goes first, as long as more than
//! [`LIFECYCLE_KEPT`] remain; then the oldest note; the ack in force (the newest `ack` or
//! `unack`) is never dropped while anything else can be.

use std::borrow::Cow;
use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Most history entries kept per finding (see the module's cap rule).
pub const HISTORY_CAP: usize = 32;
/// Life-cycle events kept at least when the history is full, before triage entries go.
pub(crate) const LIFECYCLE_KEPT: usize = 8;

/// Who did a triage action, and why (or the note's text).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Triage {
    pub by: String,
    pub text: String,
}

/// One event of a finding's history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Stored for the first time.
    New,
    /// Seen again after it was resolved.
    Reopened,
    /// Resolved: by the store when its source stopped reporting it (`None`), or by a person.
    Resolved(Option<Triage>),
    /// Announced in a digest.
    Reported,
    /// Acknowledged by a person: still open, out of "act on these first".
    Ack(Triage),
    /// An acknowledgement taken back.
    Unack(Triage),
    /// A person's note.
    Note(Triage),
    /// An event this version does not know (written by a newer one), kept as it is.
    Other(String),
}

impl Event {
    /// The event's name: `new`, `reopened`, `resolved`, `reported`, `ack`, `unack`, `note`.
    pub fn as_str(&self) -> &str {
        match self {
            Event::New => "new",
            Event::Reopened => "reopened",
            Event::Resolved(_) => "resolved",
            Event::Reported => "reported",
            Event::Ack(_) => "ack",
            Event::Unack(_) => "unack",
            Event::Note(_) => "note",
            Event::Other(s) => s,
        }
    }

    /// Who and why, for an event a person caused.
    pub fn triage(&self) -> Option<&Triage> {
        match self {
            Event::Resolved(t) => t.as_ref(),
            Event::Ack(t) | Event::Unack(t) | Event::Note(t) => Some(t),
            _ => None,
        }
    }

    /// Whether the store's life cycle wrote it (not a person).
    pub fn is_lifecycle(&self) -> bool {
        self.triage().is_none()
    }

    /// The event from its name and, for triage, who and why. A triage name without `by` (or
    /// an unknown name) is kept as [`Event::Other`].
    pub fn from_parts(name: &str, by: Option<String>, text: Option<String>) -> Event {
        let t = by.map(|by| Triage {
            by,
            text: text.unwrap_or_default(),
        });
        match (name, t) {
            ("new", _) => Event::New,
            ("reopened", _) => Event::Reopened,
            ("reported", _) => Event::Reported,
            ("resolved", t) => Event::Resolved(t),
            ("ack", Some(t)) => Event::Ack(t),
            ("unack", Some(t)) => Event::Unack(t),
            ("note", Some(t)) => Event::Note(t),
            (other, _) => Event::Other(other.to_string()),
        }
    }

    /// The event as one string, as a store record keeps it (see the module).
    pub fn wire(&self) -> Cow<'_, str> {
        match self.triage() {
            None => Cow::Borrowed(self.as_str()),
            Some(t) => Cow::Owned(
                serde_json::json!({"event": self.as_str(), "by": t.by, "text": t.text}).to_string(),
            ),
        }
    }

    /// The event of a string written by [`Event::wire`] (or by earlier versions).
    pub fn from_wire(s: &str) -> Event {
        if s.starts_with('{')
            && let Ok(r) = serde_json::from_str::<Wire>(s)
        {
            return Event::from_parts(&r.event, r.by, r.text);
        }
        Event::from_parts(s, None, None)
    }
}

#[derive(Deserialize)]
struct Wire {
    event: String,
    by: Option<String>,
    text: Option<String>,
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<&str> for Event {
    /// A life-cycle event by name (a triage name without its author is [`Event::Other`]).
    fn from(s: &str) -> Event {
        Event::from_parts(s, None, None)
    }
}

/// An event compares equal to its name (`h.event == "resolved"`, by hand or not).
impl PartialEq<&str> for Event {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

/// One history entry: when and what.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(into = "EntryJson", from = "EntryJson")]
pub struct HistoryEntry {
    pub at: DateTime<Utc>,
    pub event: Event,
}

/// [`HistoryEntry`] as JSON: the shape of earlier versions plus `by` and `text`.
#[derive(Serialize, Deserialize)]
struct EntryJson {
    at: DateTime<Utc>,
    event: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    text: Option<String>,
}

impl From<HistoryEntry> for EntryJson {
    fn from(h: HistoryEntry) -> Self {
        let t = h.event.triage().cloned();
        EntryJson {
            at: h.at,
            event: h.event.as_str().to_string(),
            by: t.as_ref().map(|t| t.by.clone()),
            text: t.map(|t| t.text),
        }
    }
}

impl From<EntryJson> for HistoryEntry {
    fn from(j: EntryJson) -> Self {
        HistoryEntry {
            at: j.at,
            event: Event::from_parts(&j.event, j.by, j.text),
        }
    }
}

/// Appends an entry and applies the cap rule (see the module).
pub(crate) fn push(history: &mut Vec<HistoryEntry>, entry: HistoryEntry) {
    history.push(entry);
    while history.len() > HISTORY_CAP {
        let at = drop_at(history);
        history.remove(at);
    }
}

/// Which entry goes when the history is over the cap.
fn drop_at(h: &[HistoryEntry]) -> usize {
    let lifecycle = h.iter().filter(|e| e.event.is_lifecycle()).count();
    if lifecycle > LIFECYCLE_KEPT
        && let Some(i) = h.iter().position(|e| e.event.is_lifecycle())
    {
        return i;
    }
    if let Some(i) = h.iter().position(|e| matches!(e.event, Event::Note(_))) {
        return i;
    }
    let in_force = h
        .iter()
        .rposition(|e| matches!(e.event, Event::Ack(_) | Event::Unack(_)));
    (0..h.len()).find(|i| Some(*i) != in_force).unwrap_or(0)
}

/// The acknowledgement in force: the newest `ack`, unless an `unack`, a `resolved` or a
/// `reopened` came after it. (A new observation of an open finding leaves it.)
pub(crate) fn ack_in_force(h: &[HistoryEntry]) -> Option<&HistoryEntry> {
    h.iter()
        .rev()
        .find(|e| {
            matches!(
                e.event,
                Event::Ack(_) | Event::Unack(_) | Event::Resolved(_) | Event::Reopened
            )
        })
        .filter(|e| matches!(e.event, Event::Ack(_)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_790_000_000 + s, 0).unwrap()
    }

    fn t(by: &str, text: &str) -> Triage {
        Triage {
            by: by.into(),
            text: text.into(),
        }
    }

    #[test]
    fn json_keeps_the_earlier_shape_and_adds_who_and_why() {
        let old = r#"{"at":"2026-12-01T10:00:00Z","event":"resolved"}"#;
        let h: HistoryEntry = serde_json::from_str(old).unwrap();
        assert_eq!(h.event, Event::Resolved(None));
        assert_eq!(serde_json::to_string(&h).unwrap(), old);
        let ack = HistoryEntry {
            at: at(0),
            event: Event::Ack(t("alice", "our honeypot")),
        };
        let j = serde_json::to_value(&ack).unwrap();
        assert_eq!(j["event"], "ack");
        assert_eq!(j["by"], "alice");
        assert_eq!(j["text"], "our honeypot");
        assert_eq!(serde_json::from_value::<HistoryEntry>(j).unwrap(), ack);
        let future: HistoryEntry =
            serde_json::from_str(r#"{"at":"2026-12-01T10:00:00Z","event":"escalated"}"#).unwrap();
        assert_eq!(future.event, Event::Other("escalated".into()));
    }

    #[test]
    fn the_wire_string_of_old_events_is_their_name() {
        for e in ["new", "reopened", "resolved", "reported"] {
            assert_eq!(Event::from(e).wire(), e);
            assert_eq!(Event::from_wire(e).as_str(), e);
        }
        let n = Event::Note(t("bob", "ticket {42}, \"quoted\""));
        assert_eq!(Event::from_wire(&n.wire()), n);
        let r = Event::Resolved(Some(t("bob", "patched")));
        assert_eq!(Event::from_wire(&r.wire()), r);
        assert_eq!(r, "resolved");
    }

    #[test]
    fn the_cap_drops_life_cycle_events_before_triage() {
        let mut h = Vec::new();
        push(
            &mut h,
            HistoryEntry {
                at: at(0),
                event: Event::New,
            },
        );
        push(
            &mut h,
            HistoryEntry {
                at: at(1),
                event: Event::Ack(t("a", "why")),
            },
        );
        push(
            &mut h,
            HistoryEntry {
                at: at(2),
                event: Event::Note(t("a", "n")),
            },
        );
        for i in 0..100 {
            push(
                &mut h,
                HistoryEntry {
                    at: at(10 + i),
                    event: Event::Reported,
                },
            );
        }
        assert_eq!(h.len(), HISTORY_CAP);
        assert!(matches!(h[0].event, Event::Ack(_)), "{:?}", h[0]);
        assert!(matches!(h[1].event, Event::Note(_)));
        assert!(ack_in_force(&h).is_some());
        // Notes go before the ack in force, and life-cycle events keep their minimum.
        for i in 0..100 {
            push(
                &mut h,
                HistoryEntry {
                    at: at(200 + i),
                    event: Event::Note(t("a", "more")),
                },
            );
        }
        assert_eq!(h.len(), HISTORY_CAP);
        assert!(ack_in_force(&h).is_some());
        assert_eq!(
            h.iter().filter(|e| e.event.is_lifecycle()).count(),
            LIFECYCLE_KEPT
        );
    }

    #[test]
    fn an_ack_holds_until_unacked_resolved_or_reopened() {
        let e = |s, event| HistoryEntry { at: at(s), event };
        let mut h = vec![e(0, Event::New), e(1, Event::Ack(t("a", "x")))];
        assert!(ack_in_force(&h).is_some());
        h.push(e(2, Event::Reported));
        assert!(ack_in_force(&h).is_some(), "a digest does not clear it");
        h.push(e(3, Event::Resolved(None)));
        assert!(ack_in_force(&h).is_none());
        h.push(e(4, Event::Ack(t("a", "y"))));
        h.push(e(5, Event::Reopened));
        assert!(ack_in_force(&h).is_none());
        h.push(e(6, Event::Ack(t("a", "z"))));
        h.push(e(7, Event::Unack(t("b", "not ours after all"))));
        assert!(ack_in_force(&h).is_none());
    }
}
