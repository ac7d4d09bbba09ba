//! Connections → findings (source `flows`) and a summary, in bounded memory.
//!
//! [`Analyser::add`] takes one [`Conn`] at a time and keeps only aggregates: per (day, kind,
//! our host) the totals of the finding-to-be and per peer or service inside it their counts
//! ([`aggregate`]), and per service two heavy-hitter tables of talkers ([`talkers`]).
//! [`Analyser::finish`] turns them into one finding per (host, kind, UTC day), the day being
//! its identity, with the busiest peers (or services) listed inside ([`group`]).
//!
//! Memory is bounded whatever the input: at most [`aggregate::MAX_AGGREGATES`] aggregates,
//! [`aggregate::MAX_DETAILS_PER_HOST`] per host, kind and day, [`MAX_SERVICES`] service
//! names, and per service 2 × [`talkers::TALKER_CAPACITY`] talkers (under 200 MB in all,
//! the findings built at the end included). What is exact and what is approximate is said in those modules.
//!
//! Which hosts are ours: the configured scope, `[flows] internal` (private ranges by default),
//! and every zone and team prefix. A connection between two addresses that are not ours is
//! counted (`not_ours`) and otherwise ignored.

pub(crate) mod aggregate;
pub mod group;
pub mod rules;
pub(crate) mod talkers;
pub(crate) mod zones;

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;

use serde::Serialize;

use super::config::{FlowsConfig, MismatchAllow};
use super::{Conn, Proto};
use crate::finding::{Finding, SourceId};
use crate::indicators::{IndicatorIndex, Listing};
use crate::scope::ScopeMatcher;
use aggregate::{Aggregates, Detail, Key, Listed, Obs};
use group::Body;
use rules::{Kind, Rules};
use talkers::{Metric, TalkerTable};
use zones::Ours;

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
            resp_port: c.resp_port,
            host_port,
            service: Some(service),
            outbound: o,
            packets,
            bytes,
            duration_us: c.duration_us.unwrap_or(0),
            ts_us: c.ts_us,
        };
        if o != r && !self.index.is_empty() {
            self.c2(day, host, peer_port, &obs);
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

    fn c2(&mut self, day: i32, host: IpAddr, peer_port: Option<u16>, obs: &Obs) {
        let ck = (obs.peer, peer_port);
        if self.c2_cache.get(&ck) == Some(&false) {
            return;
        }
        self.listings.clear();
        self.index.matches(obs.peer, peer_port, &mut self.listings);
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
        let mut findings = self.group_findings();
        let (top_talkers, evicted) = self.talker_findings_all(&mut findings);
        for f in &mut findings {
            f.seal();
        }
        let mut by_feed = BTreeMap::new();
        for f in &findings {
            *by_feed.entry(f.feed.clone()).or_insert(0) += 1;
        }
        let peers_folded = self.aggs.groups.values().map(|g| g.more_connections).sum();
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

    /// One finding per (day, kind, host) of the aggregates, its details listed inside.
    fn group_findings(&self) -> Vec<Finding> {
        let mut keys: Vec<(&Key, &aggregate::Agg)> = self.aggs.aggs.iter().collect();
        keys.sort_unstable_by(|a, b| a.0.cmp(b.0));
        let mut findings = Vec::new();
        for details in keys.chunk_by(|a, b| a.0.group() == b.0.group()) {
            let gk = details[0].0.group();
            let Some(g) = self.aggs.groups.get(&gk) else {
                continue;
            };
            let (day, kind, host) = gk;
            let t = &g.totals;
            let mut body = Body::new(group::Counts::new(
                t.connections,
                t.packets,
                t.bytes,
                t.duration_us,
                t.first_us,
                t.last_us,
            ));
            for (key, a) in details {
                self.add_entry(&mut body, key, a);
            }
            if kind == Kind::UnexpectedOutbound
                && let Some(z) = self.ours.closed_zone(host)
            {
                body.zone = Some(z.name.clone());
            }
            body.finish(kind, g.more_peers(), g.more_connections);
            let mut f = self.base_finding(kind, host, day);
            body.write_to(&mut f);
            findings.push(f);
        }
        findings
    }

    /// The entry of one aggregate, into its finding's body.
    fn add_entry(&self, body: &mut Body, key: &Key, a: &aggregate::Agg) {
        let c = &a.counts;
        let counts = group::Counts::new(
            c.connections,
            c.packets,
            c.bytes,
            c.duration_us,
            c.first_us,
            c.last_us,
        );
        match key.detail {
            Detail::Peer(peer) => body.peers.push(group::PeerEntry {
                peer,
                ports: a.ports.clone(),
                more_ports: u64::from(a.more_ports),
                host_port: a.host_port,
                service: self.service_name(a.service).map(str::to_string),
                direction: a.direction().to_string(),
                counts,
                listed: a
                    .listed
                    .iter()
                    .map(|l| group::Listing {
                        feed: l.feed.to_string(),
                        threat: l.threat.as_deref().map(str::to_string),
                        port: l.port,
                    })
                    .collect(),
            }),
            Detail::Service(s, port) => body.services.push(group::ServiceEntry {
                service: self.service_name(Some(s)).unwrap_or("-").to_string(),
                port,
                peers: a.peers.clone(),
                more_peers: u64::from(a.more_peers),
                counts,
            }),
        }
    }

    /// The top-talker findings of every service table (one per host and day, its services
    /// listed inside) into `findings`; returns the summary's top talkers and how many talkers
    /// the tables cut.
    fn talker_findings_all(
        &self,
        findings: &mut Vec<Finding>,
    ) -> (BTreeMap<String, TopTalkers>, u64) {
        let mut top_talkers = BTreeMap::new();
        let mut evicted = 0;
        let mut by_host: BTreeMap<(i32, IpAddr), Vec<group::TalkerEntry>> = BTreeMap::new();
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
                self.talker_entries(&name, m, ranked, &mut by_host);
            }
            top_talkers.insert(
                name,
                TopTalkers {
                    by_packets: rp.iter().take(SUMMARY_TALKERS).map(row).collect(),
                    by_bytes: rb.iter().take(SUMMARY_TALKERS).map(row).collect(),
                },
            );
        }
        for ((day, host), talkers) in by_host {
            let first = talkers.iter().map(|t| t.first).min().unwrap_or_default();
            let last = talkers.iter().map(|t| t.last).max().unwrap_or_default();
            let mut body = Body::new(group::Counts {
                connections: 0,
                packets: 0,
                bytes: 0,
                duration: 0.0,
                first,
                last,
            });
            body.talkers = talkers;
            body.finish(Kind::TopTalker, 0, 0);
            let mut f = self.base_finding(Kind::TopTalker, host, day);
            body.write_to(&mut f);
            findings.push(f);
        }
        (top_talkers, evicted)
    }

    /// A finding of `kind` about `host` on `day`: its identity is the day (one finding per
    /// host, kind and day); its severity is the kind's (so the worst of its peers', which all
    /// have it).
    fn base_finding(&self, kind: Kind, host: IpAddr, day: i32) -> Finding {
        let rule = self.rules.kind(kind);
        let mut f = Finding::new(
            SourceId::Flows.name(),
            kind.as_str(),
            rule.classification(),
            rule.severity,
        );
        f.ip = Some(host);
        let date = chrono::NaiveDate::from_num_days_from_ce_opt(day.saturating_add(719_163))
            .map(|d| d.to_string())
            .unwrap_or_else(|| day.to_string());
        f.identity.push(format!("day {date}"));
        f
    }

    /// The top-talker entries of one table, by host and day: each host above the bar of its
    /// peers (its team, or everyone when it has none).
    fn talker_entries(
        &self,
        service: &str,
        m: Metric,
        ranked: &[(IpAddr, talkers::Talker)],
        out: &mut BTreeMap<(i32, IpAddr), Vec<group::TalkerEntry>>,
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
            let entry = group::TalkerEntry {
                service: service.to_string(),
                metric: m.as_str().to_string(),
                connections: t.connections,
                packets: t.packets,
                bytes: t.bytes,
                first: group::whole_seconds(t.first_us),
                last: group::whole_seconds(t.last_us),
                peers_median: median,
                bar: bar.round(),
                population: n as u64,
                compared_with: match team {
                    Some(i) => format!("team {}", self.ours.teams[i].name),
                    None => "everyone".to_string(),
                },
                overestimate_at_most: (t.error(m) > 0).then(|| t.error(m)),
            };
            out.entry((day_of(t.last_us), *ip)).or_default().push(entry);
        }
    }
}
