//! Per-day aggregates of the findings-to-be, bounded: one [`Group`] per (day, kind, host) —
//! the finding — and inside it one [`Agg`] per detail, where the detail is the peer
//! (c2-contact, unexpected-outbound, long-connection) or the service and port
//! (port-mismatch).
//!
//! Exact: every count of a kept aggregate, and a group's totals (every connection of the
//! group, kept detail or not). Bounded: a group keeps at most [`MAX_DETAILS_PER_HOST`]
//! details; connections to further peers are counted in the group (`more_connections`,
//! exact) with an estimate of how many distinct peers they went to (`more_peers`, linear
//! counting over 1024 bits: within a few percent up to ~2000, then a floor). At most
//! [`MAX_AGGREGATES`] details are kept in all: past that, a connection of a known group is
//! counted as one of its further peers, and one that would have opened another group is
//! counted in [`Aggregates::dropped`].

use std::collections::HashMap;
use std::hash::{BuildHasher, Hash};
use std::net::IpAddr;
use std::sync::Arc;

use super::rules::Kind;

/// Most details (peers, service/port pairs) kept per host, kind and day (the finding lists
/// the busiest of them, `MAX_LISTED` of `group.rs`).
pub(crate) const MAX_DETAILS_PER_HOST: u32 = 32;
/// Most details kept in all. A group becomes one finding (about 2 KB, plus about 0.5 KB per
/// listed detail), so this bounds the findings of one run to about 100 MB; more than this
/// many in one run is more than anyone reads.
pub(crate) const MAX_AGGREGATES: usize = 50_000;
/// Most listings named per c2-contact aggregate.
pub(crate) const MAX_LISTINGS: usize = 8;
/// Most distinct responder ports kept per detail (further ones are counted).
pub(crate) const MAX_PORTS: usize = 8;
/// Most distinct peers named per service/port pair (further ones are counted).
pub(crate) const MAX_PEERS: usize = 8;

/// What a detail is about besides its host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum Detail {
    Peer(IpAddr),
    /// Interned service id and the responder port.
    Service(u16, u16),
}

/// The identity of a group: the finding.
pub(crate) type GroupKey = (i32, Kind, IpAddr);

/// The identity of an aggregate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct Key {
    /// Days since the Unix epoch (UTC) of the connection's start.
    pub day: i32,
    pub kind: Kind,
    pub host: IpAddr,
    pub detail: Detail,
}

impl Key {
    /// The group (finding) of this detail.
    pub(crate) fn group(&self) -> GroupKey {
        (self.day, self.kind, self.host)
    }
}

/// A C2 list entry that matched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Listed {
    pub feed: Arc<str>,
    pub threat: Option<Arc<str>>,
    pub port: Option<u16>,
}

/// The counts every aggregate and group keeps.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Counts {
    pub packets: u64,
    pub bytes: u64,
    /// Longest connection, microseconds.
    pub duration_us: u64,
    pub connections: u64,
    pub first_us: i64,
    pub last_us: i64,
}

impl Counts {
    fn add(&mut self, obs: &Obs) {
        if self.connections == 0 {
            self.first_us = obs.ts_us;
            self.last_us = obs.ts_us;
        }
        self.packets = self.packets.saturating_add(obs.packets);
        self.bytes = self.bytes.saturating_add(obs.bytes);
        self.duration_us = self.duration_us.max(obs.duration_us);
        self.connections += 1;
        self.first_us = self.first_us.min(obs.ts_us);
        self.last_us = self.last_us.max(obs.ts_us);
    }
}

/// The counts of one aggregate.
#[derive(Debug, Clone, Default)]
pub(crate) struct Agg {
    /// The peers, in the order seen: the detail's (one), or for a service/port pair at most
    /// [`MAX_PEERS`].
    pub peers: Vec<IpAddr>,
    /// Connections to further peers (a service/port pair's, past [`MAX_PEERS`]).
    pub more_peers: u32,
    /// The responder ports seen (the service's side), in the order seen, at most
    /// [`MAX_PORTS`].
    pub ports: Vec<u16>,
    /// Connections on further responder ports.
    pub more_ports: u32,
    /// Our host's port of the first connection.
    pub host_port: Option<u16>,
    /// The service as Zeek wrote it (interned id), of the first connection.
    pub service: Option<u16>,
    /// Whether our host started a connection, and whether the peer did.
    pub outbound: bool,
    pub inbound: bool,
    pub counts: Counts,
    pub listed: Vec<Listed>,
}

/// One (day, kind, host): the finding-to-be. Its totals count every connection of the group;
/// those of details past the caps only here.
#[derive(Debug, Clone, Default)]
pub(crate) struct Group {
    pub details: u32,
    pub totals: Counts,
    pub more_connections: u64,
    bits: Option<Box<[u64; 16]>>,
}

impl Group {
    fn note_more<H: BuildHasher>(&mut self, hasher: &H, peer: &Detail) {
        self.more_connections += 1;
        let h = hasher.hash_one(peer);
        let bits = self.bits.get_or_insert_with(|| Box::new([0; 16]));
        let b = (h % 1024) as usize;
        bits[b / 64] |= 1 << (b % 64);
    }

    /// Estimated distinct peers beyond the kept ones (linear counting).
    pub(crate) fn more_peers(&self) -> u64 {
        let Some(bits) = &self.bits else { return 0 };
        let set: u32 = bits.iter().map(|w| w.count_ones()).sum();
        let zeros = 1024 - set;
        if zeros == 0 {
            // Saturated: at least this many.
            return 1024 * 7;
        }
        let est = -1024.0 * (zeros as f64 / 1024.0).ln();
        (est.round() as u64).max(1)
    }
}

/// One connection's counts, as recorded.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Obs {
    pub peer: IpAddr,
    /// The responder's port.
    pub resp_port: Option<u16>,
    pub host_port: Option<u16>,
    pub service: Option<u16>,
    pub outbound: bool,
    pub packets: u64,
    pub bytes: u64,
    pub duration_us: u64,
    pub ts_us: i64,
}

/// The bounded aggregates.
#[derive(Debug, Default)]
pub(crate) struct Aggregates {
    pub aggs: HashMap<Key, Agg>,
    pub groups: HashMap<GroupKey, Group>,
    /// Connections that would have opened a group past [`MAX_AGGREGATES`].
    pub dropped: u64,
}

impl Aggregates {
    /// Counts `obs` under `key`; returns the aggregate when it was kept (to add listings).
    pub(crate) fn record(&mut self, key: Key, obs: &Obs) -> Option<&mut Agg> {
        let full = self.aggs.len() >= MAX_AGGREGATES;
        let gk = key.group();
        if !self.aggs.contains_key(&key) {
            if full && !self.groups.contains_key(&gk) {
                self.dropped += 1;
                return None;
            }
            let g = self.groups.entry(gk).or_default();
            g.totals.add(obs);
            if full || g.details >= MAX_DETAILS_PER_HOST {
                let hasher = self.aggs.hasher();
                g.note_more(hasher, &key.detail);
                return None;
            }
            g.details += 1;
            self.aggs.insert(
                key,
                Agg {
                    host_port: obs.host_port,
                    service: obs.service,
                    ..Agg::default()
                },
            );
        } else if let Some(g) = self.groups.get_mut(&gk) {
            g.totals.add(obs);
        }
        let a = self.aggs.get_mut(&key)?;
        if !a.peers.contains(&obs.peer) {
            // Only a service/port pair sees several peers.
            if a.peers.len() < MAX_PEERS {
                a.peers.push(obs.peer);
            } else {
                a.more_peers = a.more_peers.saturating_add(1);
            }
        }
        if let Some(p) = obs.resp_port
            && !a.ports.contains(&p)
        {
            if a.ports.len() < MAX_PORTS {
                a.ports.push(p);
            } else {
                a.more_ports = a.more_ports.saturating_add(1);
            }
        }
        a.outbound |= obs.outbound;
        a.inbound |= !obs.outbound;
        a.counts.add(obs);
        Some(a)
    }
}

impl Agg {
    /// Adds a listing unless it is known or the list is full.
    pub(crate) fn add_listed(&mut self, l: Listed) {
        if self.listed.len() < MAX_LISTINGS && !self.listed.contains(&l) {
            self.listed.push(l);
        }
    }

    /// `outbound`, `inbound` or `both`: who started the connections.
    pub(crate) fn direction(&self) -> &'static str {
        match (self.outbound, self.inbound) {
            (true, true) => "both",
            (false, true) => "inbound",
            _ => "outbound",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obs(peer: IpAddr, ts_us: i64) -> Obs {
        Obs {
            peer,
            resp_port: Some(443),
            host_port: None,
            service: None,
            outbound: true,
            packets: 1,
            bytes: 1,
            duration_us: 1,
            ts_us,
        }
    }

    #[test]
    fn a_million_peers_stay_within_the_caps() {
        let mut a = Aggregates::default();
        let host: IpAddr = "10.0.0.1".parse().unwrap();
        for i in 0..1_000_000u32 {
            let peer = IpAddr::from(std::net::Ipv4Addr::from(0x0b00_0000 + i));
            let key = Key {
                day: (i % 3) as i32,
                kind: Kind::LongConnection,
                host,
                detail: Detail::Peer(peer),
            };
            a.record(key, &obs(peer, i as i64));
        }
        assert_eq!(a.aggs.len(), 3 * MAX_DETAILS_PER_HOST as usize);
        let g = &a.groups[&(0, Kind::LongConnection, host)];
        assert_eq!(g.more_connections, 333_334 - MAX_DETAILS_PER_HOST as u64);
        // The group's totals count every connection, kept or not.
        assert_eq!(g.totals.connections, 333_334);
        assert_eq!(g.totals.first_us, 0);
        assert_eq!(g.totals.last_us, 999_999);
        assert!(g.more_peers() >= 1024);
    }

    #[test]
    fn past_the_global_cap_a_known_group_counts_further_peers() {
        let mut a = Aggregates::default();
        for h in 0..(MAX_AGGREGATES / MAX_DETAILS_PER_HOST as usize) as u32 {
            let host = IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + h));
            for p in 0..MAX_DETAILS_PER_HOST {
                let peer = IpAddr::from(std::net::Ipv4Addr::from(0x0b00_0000 + p));
                let key = Key {
                    day: 0,
                    kind: Kind::C2Contact,
                    host,
                    detail: Detail::Peer(peer),
                };
                a.record(key, &obs(peer, 0));
            }
        }
        assert!(a.aggs.len() >= MAX_AGGREGATES - MAX_DETAILS_PER_HOST as usize);
        // Fill up to the cap, then one more peer of a known group and one of a new group.
        let known: IpAddr = "10.0.0.0".parse().unwrap();
        let mut i = 0u32;
        while a.aggs.len() < MAX_AGGREGATES {
            let host = IpAddr::from(std::net::Ipv4Addr::from(0x0c00_0000 + i));
            i += 1;
            let key = Key {
                day: 1,
                kind: Kind::C2Contact,
                host,
                detail: Detail::Peer(host),
            };
            a.record(key, &obs(host, 0));
        }
        let mut g0 = a.groups[&(0, Kind::C2Contact, known)].clone();
        g0.more_connections = 0;
        let peer: IpAddr = "203.0.113.9".parse().unwrap();
        let k = |host| Key {
            day: 0,
            kind: Kind::LongConnection,
            host,
            detail: Detail::Peer(peer),
        };
        assert!(
            a.record(k("10.200.0.1".parse().unwrap()), &obs(peer, 0))
                .is_none()
        );
        assert_eq!(a.dropped, 1);
        let k2 = Key {
            day: 0,
            kind: Kind::C2Contact,
            host: known,
            detail: Detail::Peer(peer),
        };
        assert!(a.record(k2, &obs(peer, 0)).is_none());
        let g = &a.groups[&(0, Kind::C2Contact, known)];
        assert_eq!(g.more_connections, 1);
        assert_eq!(g.totals.connections, g0.totals.connections + 1);
    }

    #[test]
    fn linear_counting_is_close_for_few_peers() {
        let mut g = Group::default();
        let h = std::collections::hash_map::RandomState::new();
        for i in 0..300u32 {
            let d = Detail::Peer(IpAddr::from(std::net::Ipv4Addr::from(i)));
            g.note_more(&h, &d);
            g.note_more(&h, &d);
        }
        let est = g.more_peers();
        assert!((270..=330).contains(&est), "{est}");
        assert_eq!(g.more_connections, 600);
    }

    #[test]
    fn a_detail_keeps_its_ports_and_directions_bounded() {
        let mut a = Aggregates::default();
        let host: IpAddr = "10.0.0.1".parse().unwrap();
        let peer: IpAddr = "203.0.113.1".parse().unwrap();
        let key = Key {
            day: 0,
            kind: Kind::C2Contact,
            host,
            detail: Detail::Peer(peer),
        };
        for p in 0..20u16 {
            let mut o = obs(peer, 0);
            o.resp_port = Some(8000 + p % 10);
            o.outbound = p != 3;
            a.record(key, &o);
        }
        let agg = &a.aggs[&key];
        assert_eq!(agg.ports.len(), MAX_PORTS);
        assert_eq!(agg.more_ports, 2 * (10 - MAX_PORTS as u32));
        assert_eq!(agg.direction(), "both");
        assert_eq!(agg.counts.connections, 20);
    }
}
