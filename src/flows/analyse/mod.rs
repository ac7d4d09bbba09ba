//! Connections → findings (source `flows`) and a summary, in bounded memory.
//!
//! [`Analyser::add`] takes one [`Conn`] at a time and keeps only aggregates: per (day, kind,
//! our host, peer or service) the counts of the finding-to-be ([`aggregate`]), and per service
//! two heavy-hitter tables of talkers ([`talkers`]). [`Analyser::finish`] turns them into one
//! finding per (host, kind, peer or service) per day, the day being part of the identity.
//!
//! Memory is bounded whatever the input: at most [`aggregate::MAX_AGGREGATES`] aggregates,
//! [`aggregate::MAX_DETAILS_PER_HOST`] per host, kind and day, [`MAX_SERVICES`] service
//! names, and per service 2 × [`talkers::TALKER_CAPACITY`] talkers (under 200 MB in all,
//! the findings built at the end included). What is exact and what is approximate is said in those modules.
//!
//! Which hosts are ours: the configured scope, `[flows] internal` (private ranges by default),
//! and every zone and team prefix. A connection between two addresses that are not ours is
//! counted (`not_ours`) and otherwise ignored.

pub mod aggregate;
pub mod rules;
pub mod talkers;
pub mod zones;

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::json;

use super::config::{FlowsConfig, MismatchAllow};
use super::{Conn, Proto};
use crate::finding::Finding;
use crate::indicators::{IndicatorIndex, Listing};
use crate::scope::ScopeMatcher;
use aggregate::{Aggregates, Detail, Key, Listed, Obs};
use rules::{Kind, Rules};
use talkers::{Metric, TalkerTable};
use zones::Ours;

/// The source name of flow findings.
pub const SOURCE: &str = crate::health::FLOWS_ENTRY;
/// Most distinct service names kept (the rest are counted under `other`).
pub const MAX_SERVICES: usize = 128;
/// Talkers listed per service and metric in the summary.
pub const SUMMARY_TALKERS: usize = 10;
/// Entries of the C2 lookup cache (cleared when full).
const C2_CACHE: usize = 1 << 16;

/// The settings the analyser works with, from `[flows]`.
#[derive(Debug, Clone)]
pub struct Settings {
    pub flows: FlowsConfig,
}

impl Settings {
    pub fn new(flows: &FlowsConfig) -> Self {
        Settings {
            flows: flows.clone(),
        }
    }
}

/// One talker in the summary.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct TalkerRow {
    pub ip: IpAddr,
    pub packets: u64,
    pub bytes: u64,
    pub connections: u64,
}

/// A service's heaviest talkers, ranked twice.
#[derive(Debug, Clone, Serialize, Default, PartialEq, Eq)]
pub struct TopTalkers {
    pub by_packets: Vec<TalkerRow>,
    pub by_bytes: Vec<TalkerRow>,
}

/// What was folded away to stay within the memory bounds.
#[derive(Debug, Clone, Serialize, Default, PartialEq, Eq)]
pub struct Overflow {
    /// Connections whose finding would have needed an aggregate past the global cap.
    pub aggregates_dropped: u64,
    /// Connections to further peers of a host already at its per-day cap.
    pub peers_folded: u64,
    /// Connections whose service name was counted as `other` (too many names).
    pub services_folded: u64,
    /// Talkers cut from the heavy-hitter tables (counted per cut).
    pub talkers_evicted: u64,
}

/// The summary of one analysis.
#[derive(Debug, Clone, Serialize, Default, PartialEq)]
pub struct Summary {
    /// Connections analysed.
    pub connections: u64,
    /// Connections where neither side is ours.
    pub not_ours: u64,
    pub findings: usize,
    /// Findings per kind.
    pub by_feed: BTreeMap<String, usize>,
    pub top_talkers: BTreeMap<String, TopTalkers>,
    pub overflow: Overflow,
}

/// What [`Analyser::finish`] returns.
#[derive(Debug, Clone)]
pub struct FlowReport {
    pub findings: Vec<Finding>,
    pub summary: Summary,
}

/// Service names interned to small ids.
#[derive(Debug, Default)]
struct Services {
    named: HashMap<Box<str>, u16>,
    transport: HashMap<(u8, u16), u16>,
    names: Vec<String>,
    other: Option<u16>,
    folded: u64,
}

impl Services {
    fn new_id(&mut self, name: String) -> Option<u16> {
        if self.names.len() >= MAX_SERVICES {
            return None;
        }
        self.names.push(name);
        Some((self.names.len() - 1) as u16)
    }

    fn other(&mut self) -> u16 {
        self.folded += 1;
        if let Some(o) = self.other {
            return o;
        }
        self.names.push("other".into());
        let id = (self.names.len() - 1) as u16;
        self.other = Some(id);
        id
    }

    fn named(&mut self, s: &str) -> u16 {
        if let Some(&id) = self.named.get(s) {
            return id;
        }
        match self.new_id(s.to_string()) {
            Some(id) => {
                self.named.insert(s.into(), id);
                id
            }
            None => self.other(),
        }
    }

    /// The label of a connection without a service: `tcp/443` for a well-known responder
    /// port, else the transport alone.
    fn transport(&mut self, proto: Proto, port: Option<u16>) -> u16 {
        let (code, name) = match proto {
            Proto::Tcp => (6, "tcp"),
            Proto::Udp => (17, "udp"),
            Proto::Icmp => (1, "icmp"),
            Proto::Other(n) => (n, "ip"),
            Proto::Unknown => (0, "unknown"),
        };
        let port = match (proto, port) {
            (Proto::Tcp | Proto::Udp, Some(p)) if p < 1024 => p,
            _ => 0,
        };
        let key = (code, port);
        if let Some(&id) = self.transport.get(&key) {
            return id;
        }
        let label = match (port, proto) {
            (0, Proto::Other(n)) => format!("ip/{n}"),
            (0, _) => name.to_string(),
            (p, _) => format!("{name}/{p}"),
        };
        match self.new_id(label) {
            Some(id) => {
                self.transport.insert(key, id);
                id
            }
            None => self.other(),
        }
    }
}

/// Turns connections into flow findings; see the module documentation.
pub struct Analyser<'a> {
    ours: Ours,
    index: &'a IndicatorIndex,
    rules: &'static Rules,
    long_us: u64,
    k: f64,
    allow: Vec<MismatchAllow>,
    aggs: Aggregates,
    services: Services,
    /// Per service id: its talkers.
    talkers: Vec<TalkerTable>,
    c2_cache: HashMap<(IpAddr, Option<u16>), bool>,
    listings: Vec<Listing>,
    connections: u64,
    not_ours: u64,
}

fn day_of(ts_us: i64) -> i32 {
    ts_us.div_euclid(86_400_000_000) as i32
}

fn time(us: i64) -> Option<DateTime<Utc>> {
    DateTime::<Utc>::from_timestamp_micros(us)
}

fn rfc3339(us: i64) -> String {
    time(us)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_default()
}

impl<'a> Analyser<'a> {
    /// An analyser of `settings`, with `scope` (what the config names as ours) and the C2
    /// lists of `index`.
    pub fn new(settings: &Settings, scope: &ScopeMatcher, index: &'a IndicatorIndex) -> Self {
        let f = &settings.flows;
        Analyser {
            ours: Ours::new(scope.clone(), f),
            index,
            rules: Rules::builtin(),
            long_us: u64::try_from(f.long_connection.0.as_micros()).unwrap_or(u64::MAX),
            k: f.top_talker_k,
            allow: f
                .port_mismatch_allow
                .iter()
                .filter_map(|a| a.parse().ok())
                .collect(),
            aggs: Aggregates::default(),
            services: Services::default(),
            talkers: Vec::new(),
            c2_cache: HashMap::new(),
            listings: Vec::new(),
            connections: 0,
            not_ours: 0,
        }
    }

    /// Counts one connection.
    pub fn add(&mut self, c: &Conn<'_>) {
        self.connections += 1;
        let o = self.ours.contains(c.orig);
        let r = self.ours.contains(c.resp);
        if !o && !r {
            self.not_ours += 1;
            return;
        }
        let day = day_of(c.ts_us);
        let packets = c
            .orig_pkts
            .unwrap_or(0)
            .saturating_add(c.resp_pkts.unwrap_or(0));
        let bytes = c
            .orig_bytes
            .unwrap_or(0)
            .saturating_add(c.resp_bytes.unwrap_or(0));
        // Our host and its peer: the originator when it is ours.
        let (host, host_port, peer, peer_port) = if o {
            (c.orig, c.orig_port, c.resp, c.resp_port)
        } else {
            (c.resp, c.resp_port, c.orig, c.orig_port)
        };
        let service = match c.service {
            Some(s) if !s.is_empty() => self.services.named(s),
            _ => self.services.transport(c.proto, c.resp_port),
        };
        let obs = Obs {
            peer,
            peer_port,
            host_port,
            service: Some(service),
            outbound: o,
            packets,
            bytes,
            duration_us: c.duration_us.unwrap_or(0),
            ts_us: c.ts_us,
        };
        if o != r && !self.index.is_empty() {
            self.c2(day, host, &obs);
        }
        if o && !r
            && let Some(z) = self.ours.closed_zone(c.orig)
            && !z.allow.iter().any(|a| a.allows(c.resp, c.resp_port))
        {
            let key = Key {
                day,
                kind: Kind::UnexpectedOutbound,
                host,
                detail: Detail::Peer(peer),
            };
            self.aggs.record(key, &obs);
        }
        if c.duration_us.is_some_and(|d| d >= self.long_us) {
            let key = Key {
                day,
                kind: Kind::LongConnection,
                host,
                detail: Detail::Peer(peer),
            };
            self.aggs.record(key, &obs);
        }
        if let (Some(svc), Some(port)) = (c.service, c.resp_port)
            && !svc.is_empty()
            && self.rules.fits(svc, port) == Some(false)
            && !zones::mismatch_allowed(&self.allow, c.orig, c.resp, svc, port)
        {
            let key = Key {
                day,
                kind: Kind::PortMismatch,
                host,
                detail: Detail::Service(service, port),
            };
            self.aggs.record(key, &obs);
        }
        let i = usize::from(service);
        while self.talkers.len() <= i {
            self.talkers.push(TalkerTable::new());
        }
        self.talkers[i].add(host, packets, bytes, c.ts_us);
    }

    fn c2(&mut self, day: i32, host: IpAddr, obs: &Obs) {
        let ck = (obs.peer, obs.peer_port);
        if self.c2_cache.get(&ck) == Some(&false) {
            return;
        }
        self.listings.clear();
        self.index
            .matches(obs.peer, obs.peer_port, &mut self.listings);
        if self.c2_cache.len() >= C2_CACHE {
            self.c2_cache.clear();
        }
        self.c2_cache.insert(ck, !self.listings.is_empty());
        if self.listings.is_empty() {
            return;
        }
        let key = Key {
            day,
            kind: Kind::C2Contact,
            host,
            detail: Detail::Peer(obs.peer),
        };
        if let Some(a) = self.aggs.record(key, obs) {
            for l in &self.listings {
                a.add_listed(Listed {
                    feed: l.feed.clone(),
                    threat: l.threat.clone(),
                    port: l.port,
                });
            }
        }
    }

    fn service_name(&self, id: Option<u16>) -> Option<&str> {
        id.and_then(|i| self.services.names.get(usize::from(i)))
            .map(String::as_str)
    }

    /// The findings and the summary.
    pub fn finish(self) -> FlowReport {
        let mut findings = Vec::new();
        let mut keys: Vec<(&Key, &aggregate::Agg)> = self.aggs.aggs.iter().collect();
        keys.sort_unstable_by(|a, b| a.0.cmp(b.0));
        let mut peers_folded = 0;
        for g in self.aggs.groups.values() {
            peers_folded += g.more_connections;
        }
        for (key, a) in keys {
            let mut f = self.base_finding(key.kind, key.host, key.day, a.last_us);
            match key.detail {
                Detail::Peer(p) => f.identity.push(format!("peer {p}")),
                Detail::Service(s, port) => {
                    f.identity.push(format!(
                        "service {}",
                        self.service_name(Some(s)).unwrap_or("-")
                    ));
                    f.identity.push(format!("port {port}"));
                }
            }
            let svc = self.service_name(a.service);
            f.set_extra("peer", a.peer.map(|p| p.to_string()));
            f.set_extra("peer_port", a.peer_port);
            f.set_extra("host_port", a.host_port);
            f.set_extra("service", svc);
            f.set_extra("direction", if a.outbound { "outbound" } else { "inbound" });
            f.set_extra("packets", a.packets);
            f.set_extra("bytes", a.bytes);
            f.set_extra("duration", a.duration_us as f64 / 1e6);
            f.set_extra("connections", a.connections);
            f.set_extra("first", rfc3339(a.first_us));
            f.set_extra("last", rfc3339(a.last_us));
            if key.kind == Kind::PortMismatch {
                f.set_extra("other_peers", a.other_peers);
                if let Detail::Service(_, port) = key.detail {
                    f.set_extra("port", port);
                }
            }
            if key.kind == Kind::UnexpectedOutbound
                && let Some(z) = self.ours.closed_zone(key.host)
            {
                f.set_extra("zone", z.name.clone());
            }
            if !a.listed.is_empty() {
                let mut feeds: Vec<&str> = a.listed.iter().map(|l| &*l.feed).collect();
                feeds.sort_unstable();
                feeds.dedup();
                let mut threats: Vec<&str> = a
                    .listed
                    .iter()
                    .filter_map(|l| l.threat.as_deref())
                    .collect();
                threats.sort_unstable();
                threats.dedup();
                f.set_extra("feeds", feeds.join(", "));
                if !threats.is_empty() {
                    f.set_extra("threat", threats.join(", "));
                }
                let listed: Vec<serde_json::Value> = a
                    .listed
                    .iter()
                    .map(|l| json!({"feed": &*l.feed, "threat": l.threat.as_deref(), "port": l.port}))
                    .collect();
                f.set_extra("listed", listed);
            }
            if let Some(g) = self.aggs.groups.get(&(key.day, key.kind, key.host))
                && g.more_connections > 0
            {
                f.set_extra("more_peers", g.more_peers());
                f.set_extra("more_connections", g.more_connections);
            }
            findings.push(f);
        }
        let mut top_talkers = BTreeMap::new();
        let mut evicted = 0;
        for (i, table) in self.talkers.iter().enumerate() {
            let name = self.services.names[i].clone();
            evicted += table.evicted;
            let row = |(ip, t): &(IpAddr, talkers::Talker)| TalkerRow {
                ip: *ip,
                packets: t.packets,
                bytes: t.bytes,
                connections: t.connections,
            };
            let rp = table.ranked(Metric::Packets);
            let rb = table.ranked(Metric::Bytes);
            for (m, ranked) in [(Metric::Packets, &rp), (Metric::Bytes, &rb)] {
                self.talker_findings(&name, m, ranked, &mut findings);
            }
            top_talkers.insert(
                name,
                TopTalkers {
                    by_packets: rp.iter().take(SUMMARY_TALKERS).map(row).collect(),
                    by_bytes: rb.iter().take(SUMMARY_TALKERS).map(row).collect(),
                },
            );
        }
        for f in &mut findings {
            f.seal();
        }
        let mut by_feed = BTreeMap::new();
        for f in &findings {
            *by_feed.entry(f.feed.clone()).or_insert(0) += 1;
        }
        FlowReport {
            summary: Summary {
                connections: self.connections,
                not_ours: self.not_ours,
                findings: findings.len(),
                by_feed,
                top_talkers,
                overflow: Overflow {
                    aggregates_dropped: self.aggs.dropped,
                    peers_folded,
                    services_folded: self.services.folded,
                    talkers_evicted: evicted,
                },
            },
            findings,
        }
    }

    fn base_finding(&self, kind: Kind, host: IpAddr, day: i32, last_us: i64) -> Finding {
        let rule = self.rules.kind(kind);
        let mut f = Finding::new(SOURCE, kind.as_str(), rule.classification(), rule.severity);
        f.ip = Some(host);
        f.time_source = time(last_us);
        let date = chrono::NaiveDate::from_num_days_from_ce_opt(day.saturating_add(719_163))
            .map(|d| d.to_string())
            .unwrap_or_else(|| day.to_string());
        f.identity.push(format!("day {date}"));
        f
    }

    /// Top-talker findings of one table: each host above the bar of its peers (its team, or
    /// everyone when it has none).
    fn talker_findings(
        &self,
        service: &str,
        m: Metric,
        ranked: &[(IpAddr, talkers::Talker)],
        out: &mut Vec<Finding>,
    ) {
        let teams: Vec<Option<usize>> = ranked
            .iter()
            .map(|(ip, _)| self.ours.team_of(*ip))
            .collect();
        let mut bars: HashMap<Option<usize>, (Option<f64>, f64, usize)> = HashMap::new();
        for (i, (ip, t)) in ranked.iter().enumerate() {
            let team = teams[i];
            let (bar, median, n) = *bars.entry(team).or_insert_with(|| {
                let pop: Vec<u64> = ranked
                    .iter()
                    .zip(&teams)
                    .filter(|(_, tm)| team.is_none() || **tm == team)
                    .map(|((_, t), _)| t.get(m))
                    .collect();
                let mut s = pop.clone();
                s.sort_unstable();
                let med = s.get(s.len() / 2).copied().unwrap_or(0) as f64;
                (talkers::outlier_bar(&pop, self.k), med, pop.len())
            });
            let Some(bar) = bar else { continue };
            let v = t.get(m);
            if (v as f64) <= bar || v < talkers::minimum(m) {
                continue;
            }
            let mut f = self.base_finding(Kind::TopTalker, *ip, day_of(t.last_us), t.last_us);
            f.identity.push(format!("service {service}"));
            f.identity.push(format!("by {}", m.as_str()));
            f.set_extra("service", service);
            f.set_extra("metric", m.as_str());
            f.set_extra("packets", t.packets);
            f.set_extra("bytes", t.bytes);
            f.set_extra("connections", t.connections);
            f.set_extra("first", rfc3339(t.first_us));
            f.set_extra("last", rfc3339(t.last_us));
            f.set_extra("peers_median", median);
            f.set_extra("bar", bar.round());
            f.set_extra("peers", n);
            f.set_extra(
                "compared_with",
                match team {
                    Some(i) => format!("team {}", self.ours.teams[i].name),
                    None => "everyone".to_string(),
                },
            );
            if t.error(m) > 0 {
                f.set_extra("overestimate_at_most", t.error(m));
            }
            out.push(f);
        }
    }
}
