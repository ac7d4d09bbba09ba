//! The shape of a flow finding: one per (our host, kind, UTC day), with its peers — or, for a
//! port mismatch, its service/port pairs, and for a top talker its services — listed inside,
//! the [`MAX_LISTED`] busiest (by connections, then bytes) with counts of the rest.
//!
//! [`Body`] is the finding's `extra`, typed: the analyser builds it from its aggregates, the
//! watch job merges a stored day's body with what a new run read of the same day
//! ([`Body::merge`]), and the digest reads it back ([`Body::of`]). Everything an analyst
//! needs to find the device is kept per peer: the first and last time of the day, the ports,
//! the connections, packets and bytes, the longest connection.

use std::collections::BTreeSet;
use std::net::IpAddr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::aggregate::{MAX_PEERS, MAX_PORTS};
use super::rules::Kind;
use crate::finding::Finding;

/// Most peers (service/port pairs, talker rows) listed in one finding.
pub const MAX_LISTED: usize = 20;
/// Most listings kept per peer.
const MAX_LISTINGS: usize = 8;

/// The counts of one listed peer or service, and of a whole finding.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Counts {
    pub connections: u64,
    pub packets: u64,
    /// Payload bytes, both ways.
    pub bytes: u64,
    /// The longest connection, seconds.
    pub duration: f64,
    /// The first and last connection's start that day (UTC, whole seconds).
    pub first: DateTime<Utc>,
    pub last: DateTime<Utc>,
}

impl Counts {
    /// Counts of `connections` connections from `first_us` to `last_us`.
    pub fn new(
        connections: u64,
        packets: u64,
        bytes: u64,
        duration_us: u64,
        first_us: i64,
        last_us: i64,
    ) -> Counts {
        Counts {
            connections,
            packets,
            bytes,
            duration: duration_us as f64 / 1e6,
            first: whole_seconds(first_us),
            last: whole_seconds(last_us),
        }
    }

    fn add(&mut self, o: &Counts) {
        self.connections = self.connections.saturating_add(o.connections);
        self.packets = self.packets.saturating_add(o.packets);
        self.bytes = self.bytes.saturating_add(o.bytes);
        self.duration = self.duration.max(o.duration);
        self.first = self.first.min(o.first);
        self.last = self.last.max(o.last);
    }
}

/// A time of microseconds since the epoch, cut to whole seconds (the epoch when out of range).
pub fn whole_seconds(us: i64) -> DateTime<Utc> {
    DateTime::<Utc>::from_timestamp(us.div_euclid(1_000_000), 0).unwrap_or_default()
}

/// A C2 list entry that named a peer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Listing {
    pub feed: String,
    pub threat: Option<String>,
    /// The port the entry names (`None`: any).
    pub port: Option<u16>,
}

/// One peer of a c2-contact, unexpected-outbound or long-connection finding.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PeerEntry {
    pub peer: IpAddr,
    /// The responder ports (the service's side), at most [`MAX_PORTS`].
    pub ports: Vec<u16>,
    /// Connections on further responder ports.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub more_ports: u64,
    /// Our host's port of the first connection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_port: Option<u16>,
    /// Zeek's service (or the transport label) of the first connection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    /// Who started the connections: `outbound` (our host), `inbound` or `both`.
    pub direction: String,
    #[serde(flatten)]
    pub counts: Counts,
    /// The C2 list entries that name the peer (c2-contact).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub listed: Vec<Listing>,
}

/// One service/port pair of a port-mismatch finding.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServiceEntry {
    /// As Zeek wrote it (`ssl`, `gssapi,smb,krb`).
    pub service: String,
    /// The responder port it was seen on.
    pub port: u16,
    /// The peers it was seen with, the first first, at most [`MAX_PEERS`].
    pub peers: Vec<IpAddr>,
    /// Connections with further peers.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub more_peers: u64,
    #[serde(flatten)]
    pub counts: Counts,
}

/// One service and metric of a top-talker finding, as measured by the run that found it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TalkerEntry {
    pub service: String,
    /// `packets` or `bytes`.
    pub metric: String,
    pub connections: u64,
    pub packets: u64,
    pub bytes: u64,
    pub first: DateTime<Utc>,
    pub last: DateTime<Utc>,
    /// The median of the hosts it was compared with.
    pub peers_median: f64,
    /// The bar it stood above (median + k·scale).
    pub bar: f64,
    /// How many hosts it was compared with (itself included).
    pub population: u64,
    /// `team NAME` or `everyone`.
    pub compared_with: String,
    /// Past the exact talker table: how far its counts may be overestimated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub overestimate_at_most: Option<u64>,
}

/// A flow finding's `extra`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Body {
    /// Every connection of the finding, listed or not.
    #[serde(flatten)]
    pub counts: Counts,
    /// Distinct peers (service/port pairs, talker rows) in all: an estimate once a host has
    /// more than the analyser keeps, and after merging runs or days that did not list all
    /// theirs, the least there surely were.
    pub distinct: u64,
    /// Of them, how many are not listed.
    pub more: u64,
    /// The connections of those not listed.
    pub more_connections: u64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub peers: Vec<PeerEntry>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub services: Vec<ServiceEntry>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub talkers: Vec<TalkerEntry>,
    /// c2-contact: the lists that named a peer, and their threats (comma-separated).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub feeds: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threat: Option<String>,
    /// unexpected-outbound: the host's zone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zone: Option<String>,
    /// The listed peers or services in words (what `lookup` shows).
    pub summary: String,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// What an entry is sorted and merged by.
trait Entry: Clone {
    type Key: Ord + Clone;
    fn key(&self) -> Self::Key;
    fn weight(&self) -> (u64, u64);
    fn merge(&mut self, other: &Self);
}

impl Entry for PeerEntry {
    type Key = IpAddr;
    fn key(&self) -> IpAddr {
        self.peer
    }
    fn weight(&self) -> (u64, u64) {
        (self.counts.connections, self.counts.bytes)
    }
    fn merge(&mut self, o: &Self) {
        if o.counts.first < self.counts.first {
            self.host_port = o.host_port.or(self.host_port);
            self.service = o.service.clone().or(self.service.take());
        }
        self.counts.add(&o.counts);
        for p in &o.ports {
            if !self.ports.contains(p) {
                if self.ports.len() < MAX_PORTS {
                    self.ports.push(*p);
                } else {
                    self.more_ports = self.more_ports.saturating_add(1);
                }
            }
        }
        self.more_ports = self.more_ports.saturating_add(o.more_ports);
        if self.direction != o.direction {
            self.direction = "both".into();
        }
        for l in &o.listed {
            if self.listed.len() < MAX_LISTINGS && !self.listed.contains(l) {
                self.listed.push(l.clone());
            }
        }
    }
}

impl Entry for ServiceEntry {
    type Key = (String, u16);
    fn key(&self) -> (String, u16) {
        (self.service.clone(), self.port)
    }
    fn weight(&self) -> (u64, u64) {
        (self.counts.connections, self.counts.bytes)
    }
    fn merge(&mut self, o: &Self) {
        self.counts.add(&o.counts);
        for p in &o.peers {
            if !self.peers.contains(p) {
                if self.peers.len() < MAX_PEERS {
                    self.peers.push(*p);
                } else {
                    self.more_peers = self.more_peers.saturating_add(1);
                }
            }
        }
        self.more_peers = self.more_peers.saturating_add(o.more_peers);
    }
}

impl Entry for TalkerEntry {
    type Key = (String, String);
    fn key(&self) -> (String, String) {
        (self.service.clone(), self.metric.clone())
    }
    fn weight(&self) -> (u64, u64) {
        (self.connections, self.bytes)
    }
    /// A talker is as measured by the run that found it: the newer measure wins.
    fn merge(&mut self, o: &Self) {
        if o.last >= self.last {
            *self = o.clone();
        }
    }
}

/// Sorts `entries` busiest first (connections, then bytes, then key), keeps the first
/// [`MAX_LISTED`] and returns how many were cut and their connections.
fn bound<E: Entry>(entries: &mut Vec<E>) -> (u64, u64) {
    entries.sort_by(|a, b| {
        b.weight()
            .cmp(&a.weight())
            .then_with(|| a.key().cmp(&b.key()))
    });
    if entries.len() <= MAX_LISTED {
        return (0, 0);
    }
    let cut = entries.split_off(MAX_LISTED);
    (cut.len() as u64, cut.iter().map(|e| e.weight().0).sum())
}

/// `old`'s entries merged into `new` by key.
fn merge_entries<E: Entry>(new: &mut Vec<E>, old: &[E]) {
    for o in old {
        let k = o.key();
        match new.iter_mut().find(|e| e.key() == k) {
            Some(e) => {
                // Merge so that the older entry's first time leads.
                let mut merged = o.clone();
                merged.merge(e);
                *e = merged;
            }
            None => new.push(o.clone()),
        }
    }
}

impl Body {
    /// A body of `counts`, with nothing listed yet.
    pub fn new(counts: Counts) -> Body {
        Body {
            counts,
            distinct: 0,
            more: 0,
            more_connections: 0,
            peers: Vec::new(),
            services: Vec::new(),
            talkers: Vec::new(),
            feeds: None,
            threat: None,
            zone: None,
            summary: String::new(),
        }
    }

    /// Lists the busiest entries: `distinct` is how many there are in all (those given and
    /// `folded` more that the analyser could not keep, with `folded_connections`).
    pub fn finish(&mut self, kind: Kind, folded: u64, folded_connections: u64) {
        let given = (self.peers.len() + self.services.len() + self.talkers.len()) as u64;
        let (_, cut_conns) = self.bound_all();
        self.distinct = given + folded;
        self.more_connections = cut_conns + folded_connections;
        self.settle(kind);
    }

    fn bound_all(&mut self) -> (u64, u64) {
        let a = bound(&mut self.peers);
        let b = bound(&mut self.services);
        let c = bound(&mut self.talkers);
        (a.0 + b.0 + c.0, a.1 + b.1 + c.1)
    }

    fn listed(&self) -> u64 {
        (self.peers.len() + self.services.len() + self.talkers.len()) as u64
    }

    /// The derived fields: `more`, the lists' feeds and threats, the talkers' totals, the
    /// summary.
    fn settle(&mut self, kind: Kind) {
        self.more = self.distinct.saturating_sub(self.listed());
        if !self.peers.is_empty() && kind == Kind::C2Contact {
            let mut feeds = BTreeSet::new();
            let mut threats = BTreeSet::new();
            for l in self.peers.iter().flat_map(|p| &p.listed) {
                feeds.insert(l.feed.as_str());
                if let Some(t) = &l.threat {
                    threats.insert(t.as_str());
                }
            }
            let join = |s: BTreeSet<&str>| (!s.is_empty()).then(|| Vec::from_iter(s).join(", "));
            // Keep what an earlier body named when nothing listed names it now.
            self.feeds = join(feeds).or(self.feeds.take());
            self.threat = join(threats).or(self.threat.take());
        }
        if kind == Kind::TopTalker {
            self.talker_totals();
        }
        self.summary = self.describe(kind);
    }

    /// A top talker's totals: each service's counts once (both metrics measure the same
    /// connections).
    fn talker_totals(&mut self) {
        let mut seen = BTreeSet::new();
        let mut c: Option<Counts> = None;
        for t in &self.talkers {
            if !seen.insert(t.service.as_str()) {
                continue;
            }
            let tc = Counts {
                connections: t.connections,
                packets: t.packets,
                bytes: t.bytes,
                duration: 0.0,
                first: t.first,
                last: t.last,
            };
            match &mut c {
                Some(c) => c.add(&tc),
                None => c = Some(tc),
            }
        }
        if let Some(c) = c {
            self.counts = c;
        }
    }

    /// Adds a stored body of the same finding (an earlier run's reading of the same day):
    /// counts add up, first and last widen, the longest connection stays, peers are merged
    /// by address (services by name and port; a talker's newer measure wins), and the list is
    /// bounded again. `distinct` becomes what is sure when either side had peers it did not
    /// list (they may be the same ones): the most of either side and of the merged list.
    pub fn merge(&mut self, old: &Body, kind: Kind) {
        if kind != Kind::TopTalker {
            self.counts.add(&old.counts);
        }
        merge_entries(&mut self.peers, &old.peers);
        merge_entries(&mut self.services, &old.services);
        merge_entries(&mut self.talkers, &old.talkers);
        let union = self.listed();
        let (_, cut_conns) = self.bound_all();
        // Peers folded on either side may be the same ones: count what is sure.
        self.distinct = self.distinct.max(old.distinct).max(union);
        self.more_connections = self
            .more_connections
            .saturating_add(old.more_connections)
            .saturating_add(cut_conns);
        if self.zone.is_none() {
            self.zone = old.zone.clone();
        }
        if self.feeds.is_none() {
            self.feeds = old.feeds.clone();
        }
        if self.threat.is_none() {
            self.threat = old.threat.clone();
        }
        self.settle(kind);
    }

    /// The body of a stored flow finding; `None` for another shape (an old one-per-peer
    /// finding, or not a flow finding).
    pub fn of(f: &Finding) -> Option<Body> {
        let map: serde_json::Map<String, serde_json::Value> = f
            .extra
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        serde_json::from_value(serde_json::Value::Object(map)).ok()
    }

    /// Writes the body into `f.extra` (replacing what it had) and its last time as
    /// `time_source`.
    pub fn write_to(&self, f: &mut Finding) {
        f.extra.clear();
        if let Ok(serde_json::Value::Object(m)) = serde_json::to_value(self) {
            f.extra.extend(m);
        }
        f.time_source = Some(self.counts.last);
    }

    /// The listed peers or services in words, for people (raw: clean before display):
    /// [`Body::items_text`], then [`Body::facts_text`].
    pub fn describe(&self, kind: Kind) -> String {
        let facts = self.facts_text(kind);
        let items = self.items_text(kind, 3);
        if facts.is_empty() {
            items
        } else {
            format!("{items}, {facts}")
        }
    }

    /// The first `shown` peers (services) and how many more: `203.0.113.50:443,
    /// 198.51.100.7:449 and 12 more peers`.
    pub fn items_text(&self, kind: Kind, shown: usize) -> String {
        let (items, noun): (Vec<String>, (&str, &str)) = match kind {
            Kind::PortMismatch => (
                self.services
                    .iter()
                    .map(|s| format!("{} on port {}", s.service, s.port))
                    .collect(),
                ("service/port", "services/ports"),
            ),
            Kind::TopTalker => (
                self.talkers.iter().map(talker_label).collect(),
                ("service", "services"),
            ),
            _ => (
                self.peers.iter().map(peer_label).collect(),
                ("peer", "peers"),
            ),
        };
        let shown = items.len().min(shown);
        let mut s = items[..shown].join(", ");
        let rest = self.distinct.saturating_sub(shown as u64);
        if rest > 0 {
            s.push_str(&format!(
                " and {rest} more {}",
                if rest == 1 { noun.0 } else { noun.1 }
            ));
        }
        s
    }

    /// The counts and what the kind adds: `57 connections (listed by threatfox: QakBot)`,
    /// `3 connections, longest 2h`; empty for a top talker.
    pub fn facts_text(&self, kind: Kind) -> String {
        if kind == Kind::TopTalker {
            return String::new();
        }
        let c = self.counts.connections;
        let mut s = format!("{c} connection{}", if c == 1 { "" } else { "s" });
        match kind {
            Kind::C2Contact => {
                let listed: Vec<&str> = [self.feeds.as_deref(), self.threat.as_deref()]
                    .into_iter()
                    .flatten()
                    .collect();
                if !listed.is_empty() {
                    s.push_str(&format!(" (listed by {})", listed.join(": ")));
                }
            }
            Kind::LongConnection => {
                let d = std::time::Duration::from_secs(self.counts.duration.max(0.0) as u64);
                s.push_str(&format!(", longest {}", humantime::format_duration(d)));
            }
            Kind::UnexpectedOutbound => {
                if let Some(z) = &self.zone {
                    s.push_str(&format!(" (zone {z})"));
                }
            }
            _ => {}
        }
        s
    }
}

/// `dns by packets: 12,000 (median 40 of 12 hosts)`.
pub fn talker_label(t: &TalkerEntry) -> String {
    let v = if t.metric == "bytes" {
        t.bytes
    } else {
        t.packets
    };
    format!(
        "{} by {}: {} (median {} of {} hosts)",
        t.service,
        t.metric,
        crate::text::thousands(v),
        crate::text::thousands(t.peers_median.max(0.0) as u64),
        t.population
    )
}

/// `203.0.113.50:443`, `[2001:db8::1]:443/8443`, or the address alone without a port.
pub fn peer_label(p: &PeerEntry) -> String {
    let ports: Vec<String> = p.ports.iter().map(u16::to_string).collect();
    match (ports.is_empty(), p.peer) {
        (true, peer) => peer.to_string(),
        (false, IpAddr::V6(a)) => format!("[{a}]:{}", ports.join("/")),
        (false, IpAddr::V4(a)) => format!("{a}:{}", ports.join("/")),
    }
}

#[cfg(test)]
mod tests;
