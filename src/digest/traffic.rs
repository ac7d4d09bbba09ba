//! The digest section "Your own traffic": the new and still open findings of `outwatch
//! flows` (source `flows`), one line per host and kind — a host's days merged, their peers
//! merged by address ([`Body::merge`]) — in the order of the rank of findings
//! ([`crate::finding::rank`]): the most severe first, then the latest day, then the host's
//! address in numeric order.

use std::cmp::Reverse;
use std::collections::{BTreeSet, HashMap};
use std::net::IpAddr;

use serde::Serialize;

use super::section::{Section, clean};
use crate::finding::{Finding, Severity};
use crate::flows::analyse::group::Body;
use crate::flows::analyse::rules::Kind;

/// Most lines listed (the counts stay exact).
pub(crate) const MAX_LISTED: usize = 20;
/// Most (host, kind) lines gathered while the store is scanned; past that a line of a new
/// host replaces the least severe, oldest one, which is then only counted.
pub(crate) const MAX_LINES: usize = 5_000;
/// Peers (services) kept per line while days are merged: the line names three.
const KEPT_ENTRIES: usize = 5;

/// One kind of flow finding.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct TrafficKind {
    pub kind: String,
    pub severity: Severity,
    /// Hosts with findings of this kind.
    pub count: usize,
}

/// One listed host and kind.
#[derive(Debug, Clone, Serialize)]
pub struct TrafficItem {
    pub severity: Severity,
    pub kind: String,
    /// Our host.
    pub host: String,
    /// The days, the peers or services and the counts, in words.
    pub what: String,
    pub last: String,
    /// `new` when any of its findings is new, else `open`.
    pub section: Section,
}

/// The section as the templates see it.
#[derive(Debug, Clone, Serialize, Default)]
pub struct TrafficView {
    /// Lines (host and kind).
    pub count: usize,
    /// Flow findings (one per host, kind and day).
    pub findings: usize,
    pub kinds: Vec<TrafficKind>,
    pub items: Vec<TrafficItem>,
    /// Lines not listed.
    pub more: usize,
    /// The `outwatch list` command that shows every flow finding.
    pub more_command: String,
}

/// A host and kind, its days merged.
#[derive(Debug)]
struct Line {
    severity: Severity,
    kind: String,
    host: String,
    days: BTreeSet<String>,
    body: Option<Body>,
    /// What the first finding of another shape says (an earlier version's per-peer finding).
    other: Option<String>,
    /// The newest observation, epoch seconds, and as the digest writes it.
    newest: i64,
    last: String,
    section: Section,
}

impl Line {
    /// Severity, then the latest observation's day, then the host in numeric order, then kind.
    fn rank(&self) -> (Severity, Reverse<i64>, (Option<IpAddr>, &str), &str) {
        (
            self.severity,
            Reverse(self.newest.div_euclid(86_400)),
            (self.host.parse().ok(), &self.host),
            &self.kind,
        )
    }

    fn what(&self) -> String {
        let days = match (self.days.first(), self.days.last()) {
            (Some(a), Some(b)) if a == b => format!("on {a}"),
            (Some(a), Some(b)) => format!("on {} days ({a} to {b})", self.days.len()),
            _ => String::new(),
        };
        let detail = match (&self.body, &self.other) {
            (Some(b), _) => b.summary.clone(),
            (None, Some(o)) => o.clone(),
            (None, None) => String::new(),
        };
        [days, detail]
            .into_iter()
            .filter(|s| !s.is_empty())
            .collect::<Vec<_>>()
            .join(": ")
    }
}

/// Gathers the section while the store is scanned.
#[derive(Debug, Default)]
pub(crate) struct TrafficCollector {
    findings: usize,
    /// (host, kind) → its line.
    lines: HashMap<(String, String), Line>,
    /// Lines given up to stay within [`MAX_LINES`], per kind (counted, not listed).
    dropped: HashMap<String, (Severity, usize)>,
}

/// `day 2026-11-30` of a flow finding's identity.
fn day_of(f: &Finding) -> Option<String> {
    f.identity
        .iter()
        .find_map(|i| i.strip_prefix("day "))
        .map(str::to_string)
}

impl TrafficCollector {
    /// Takes a flow finding of the new or open section.
    pub(crate) fn add(&mut self, f: &Finding, section: Section, last: String) {
        self.findings += 1;
        let host = f.ip.map(|i| i.to_string()).unwrap_or_default();
        let key = (host, f.feed.clone());
        let newest = f.time_source.unwrap_or(f.last_seen).timestamp();
        if !self.lines.contains_key(&key) && !self.make_room(f.severity, newest) {
            let d = self
                .dropped
                .entry(f.feed.clone())
                .or_insert((f.severity, 0));
            d.1 += 1;
            return;
        }
        let line = self.lines.entry(key.clone()).or_insert_with(|| Line {
            severity: f.severity,
            kind: clean(&f.feed, 40),
            host: clean(&key.0, 45),
            days: BTreeSet::new(),
            body: None,
            other: None,
            newest,
            last: last.clone(),
            section,
        });
        line.severity = line.severity.min(f.severity);
        if section == Section::New {
            line.section = Section::New;
        }
        if newest >= line.newest {
            line.newest = newest;
            line.last = last;
        }
        if let Some(d) = day_of(f)
            && line.days.len() < 400
        {
            line.days.insert(clean(&d, 12));
        }
        match (Body::of(f), Kind::from_feed(&f.feed)) {
            (Some(mut b), Some(kind)) => {
                if let Some(old) = &line.body {
                    b.merge(old, kind);
                }
                b.peers.truncate(KEPT_ENTRIES);
                b.services.truncate(KEPT_ENTRIES);
                b.talkers.truncate(KEPT_ENTRIES);
                line.body = Some(b);
            }
            _ => {
                if line.other.is_none() {
                    line.other = Some(f.distinguishing());
                }
            }
        }
    }

    /// Whether a new line of `severity` and `newest` may be kept: there is room, or the
    /// least important line (less severe, or as severe and older) gives way.
    fn make_room(&mut self, severity: Severity, newest: i64) -> bool {
        if self.lines.len() < MAX_LINES {
            return true;
        }
        let Some((k, _)) = self
            .lines
            .iter()
            .max_by(|a, b| a.1.rank().cmp(&b.1.rank()))
            .filter(|(_, l)| (l.severity, Reverse(l.newest)) > (severity, Reverse(newest)))
            .map(|(k, l)| (k.clone(), l.severity))
        else {
            return false;
        };
        if let Some(l) = self.lines.remove(&k) {
            let d = self.dropped.entry(l.kind).or_insert((l.severity, 0));
            d.1 += 1;
        }
        true
    }

    /// The section, listing at most `limit` lines; `more_command` shows them all.
    pub(crate) fn view(&self, limit: usize, more_command: String) -> TrafficView {
        let mut kinds: HashMap<String, TrafficKind> = HashMap::new();
        let count_kind = |kinds: &mut HashMap<String, TrafficKind>, kind: &str, sev, n| {
            let k = kinds.entry(kind.to_string()).or_insert(TrafficKind {
                kind: clean(kind, 40),
                severity: sev,
                count: 0,
            });
            k.severity = k.severity.min(sev);
            k.count += n;
        };
        for l in self.lines.values() {
            count_kind(&mut kinds, &l.kind, l.severity, 1);
        }
        let mut dropped = 0;
        for (kind, (sev, n)) in &self.dropped {
            count_kind(&mut kinds, kind, *sev, *n);
            dropped += n;
        }
        let mut lines: Vec<&Line> = self.lines.values().collect();
        lines.sort_by(|a, b| a.rank().cmp(&b.rank()));
        let count = lines.len() + dropped;
        lines.truncate(MAX_LISTED.min(limit));
        let items: Vec<TrafficItem> = lines
            .iter()
            .map(|l| TrafficItem {
                severity: l.severity,
                kind: l.kind.clone(),
                host: l.host.clone(),
                what: clean(&l.what(), 300),
                last: l.last.clone(),
                section: l.section,
            })
            .collect();
        let mut kinds: Vec<TrafficKind> = kinds.into_values().collect();
        kinds.sort_by(|a, b| a.severity.cmp(&b.severity).then(a.kind.cmp(&b.kind)));
        TrafficView {
            count,
            findings: self.findings,
            more: count - items.len(),
            more_command,
            kinds,
            items,
        }
    }
}
