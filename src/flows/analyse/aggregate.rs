//! Per-day aggregates of the findings-to-be, bounded: one [`Agg`] per (day, kind, host,
//! detail), where the detail is the peer (c2-contact, unexpected-outbound, long-connection) or
//! the service and port (port-mismatch).
//!
//! Exact: every count of a kept aggregate. Bounded: a (day, kind, host) keeps at most
//! [`MAX_DETAILS_PER_HOST`] details; connections to further peers are counted in its group
//! (`more_connections`, exact) with an estimate of how many distinct peers they went to
//! (`more_peers`, linear counting over 1024 bits: within a few percent up to ~2000, then a
//! floor). At most [`MAX_AGGREGATES`] aggregates are kept in all; connections that would
//! have opened another are counted in [`Aggregates::dropped`].

use std::collections::HashMap;
use std::hash::{BuildHasher, Hash};
use std::net::IpAddr;
use std::sync::Arc;

use super::rules::Kind;

/// Most details (peers, service/port pairs) kept per host, kind and day.
pub const MAX_DETAILS_PER_HOST: u32 = 32;
/// Most aggregates kept in all. Each becomes a finding (about 2 KB with its `extra`), so this
/// bounds the findings of one run to about 100 MB; more than this many in one run is more
/// than anyone reads.
pub const MAX_AGGREGATES: usize = 50_000;
/// Most listings named per c2-contact aggregate.
pub const MAX_LISTINGS: usize = 8;

/// What a finding is about besides its host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Detail {
    Peer(IpAddr),
    /// Interned service id and the responder port.
    Service(u16, u16),
}

/// The identity of an aggregate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Key {
    /// Days since the Unix epoch (UTC) of the connection's start.
    pub day: i32,
    pub kind: Kind,
    pub host: IpAddr,
    pub detail: Detail,
}

/// A C2 list entry that matched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    pub feed: Arc<str>,
    pub threat: Option<Arc<str>>,
    pub port: Option<u16>,
}

/// The counts of one aggregate.
#[derive(Debug, Clone, Default)]
pub struct Agg {
    /// A peer (the first seen, for port-mismatch; the detail's for the others).
    pub peer: Option<IpAddr>,
    pub peer_port: Option<u16>,
    /// Our host's port (of the first connection).
    pub host_port: Option<u16>,
    /// The service as Zeek wrote it (interned id).
    pub service: Option<u16>,
    /// Whether our host started the first connection.
    pub outbound: bool,
    pub packets: u64,
    pub bytes: u64,
    /// Longest connection, microseconds.
    pub duration_us: u64,
    pub connections: u64,
    pub first_us: i64,
    pub last_us: i64,
    /// Distinct peers seen beyond the first (port-mismatch), capped count.
    pub other_peers: u32,
    pub listed: Vec<Listed>,
}

/// Overflow of one (day, kind, host).
#[derive(Debug, Clone, Default)]
pub struct Group {
    pub details: u32,
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
    pub fn more_peers(&self) -> u64 {
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
pub struct Obs {
    pub peer: IpAddr,
    pub peer_port: Option<u16>,
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
pub struct Aggregates {
    pub aggs: HashMap<Key, Agg>,
    pub groups: HashMap<(i32, Kind, IpAddr), Group>,
    /// Connections that would have opened an aggregate past [`MAX_AGGREGATES`].
    pub dropped: u64,
}

impl Aggregates {
    /// Counts `obs` under `key`; returns the aggregate when it was kept (to add listings).
    pub fn record(&mut self, key: Key, obs: &Obs) -> Option<&mut Agg> {
        let full = self.aggs.len() >= MAX_AGGREGATES;
        let gk = (key.day, key.kind, key.host);
        if !self.aggs.contains_key(&key) {
            if full {
                self.dropped += 1;
                return None;
            }
            let g = self.groups.entry(gk).or_default();
            if g.details >= MAX_DETAILS_PER_HOST {
                let hasher = self.aggs.hasher();
                g.note_more(hasher, &key.detail);
                return None;
            }
            g.details += 1;
            self.aggs.insert(
                key,
                Agg {
                    peer: Some(obs.peer),
                    peer_port: obs.peer_port,
                    host_port: obs.host_port,
                    service: obs.service,
                    outbound: obs.outbound,
                    first_us: obs.ts_us,
                    last_us: obs.ts_us,
                    ..Agg::default()
                },
            );
        }
        let a = self.aggs.get_mut(&key)?;
        if a.peer != Some(obs.peer) && a.other_peers < u32::MAX {
            // Only port-mismatch aggregates see several peers; an upper bound of distinct
            // peers (a peer seen twice counts twice after the first).
            a.other_peers += 1;
        }
        a.packets = a.packets.saturating_add(obs.packets);
        a.bytes = a.bytes.saturating_add(obs.bytes);
        a.duration_us = a.duration_us.max(obs.duration_us);
        a.connections += 1;
        a.first_us = a.first_us.min(obs.ts_us);
        a.last_us = a.last_us.max(obs.ts_us);
        Some(a)
    }
}

impl Agg {
    /// Adds a listing unless it is known or the list is full.
    pub fn add_listed(&mut self, l: Listed) {
        if self.listed.len() < MAX_LISTINGS && !self.listed.contains(&l) {
            self.listed.push(l);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
            a.record(
                key,
                &Obs {
                    peer,
                    peer_port: Some(443),
                    host_port: None,
                    service: None,
                    outbound: true,
                    packets: 1,
                    bytes: 1,
                    duration_us: 1,
                    ts_us: 0,
                },
            );
        }
        assert_eq!(a.aggs.len(), 3 * MAX_DETAILS_PER_HOST as usize);
        let g = &a.groups[&(0, Kind::LongConnection, host)];
        assert_eq!(g.more_connections, 333_334 - MAX_DETAILS_PER_HOST as u64);
        assert!(g.more_peers() >= 1024);
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
}
