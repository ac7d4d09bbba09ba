//! Which hosts are ours, which zone and team a host is in, and the zones' exceptions.

use std::net::IpAddr;

use ipnet::IpNet;

use crate::flows::config::{FlowsConfig, MismatchAllow, PeerAllow};
use crate::scope::{ScopeMatcher, ScopeSnapshot};

/// A zone, compiled.
#[derive(Debug, Clone)]
pub(crate) struct Zone {
    pub name: String,
    pub prefixes: Vec<IpNet>,
    pub outbound: bool,
    pub allow: Vec<PeerAllow>,
}

/// A team, compiled.
#[derive(Debug, Clone)]
pub(crate) struct Team {
    pub name: String,
    pub prefixes: Vec<IpNet>,
}

/// What is ours: the configured scope plus `[flows] internal`, zones and teams.
#[derive(Debug, Clone)]
pub(crate) struct Ours {
    scope: ScopeMatcher,
    local: ScopeMatcher,
    pub zones: Vec<Zone>,
    pub teams: Vec<Team>,
    /// Only zones with `outbound = false` (the ones a connection is checked against).
    closed: Vec<usize>,
}

/// Most specific prefix among `prefixes` holding `ip`, as its length.
fn best(prefixes: &[IpNet], ip: IpAddr) -> Option<u8> {
    prefixes
        .iter()
        .filter(|p| p.contains(&ip))
        .map(|p| p.prefix_len())
        .max()
}

impl Ours {
    /// Compiles `cfg` (already validated; a bad allow entry is skipped).
    pub(crate) fn new(scope: ScopeMatcher, cfg: &FlowsConfig) -> Ours {
        let mut prefixes = cfg.internal.clone();
        let zones: Vec<Zone> = cfg
            .zones
            .iter()
            .map(|z| Zone {
                name: z.name.clone(),
                prefixes: z.prefixes.iter().map(|p| p.trunc()).collect(),
                outbound: z.outbound,
                allow: z.allow.iter().filter_map(|a| a.parse().ok()).collect(),
            })
            .collect();
        let teams: Vec<Team> = cfg
            .teams
            .iter()
            .map(|t| Team {
                name: t.name.clone(),
                prefixes: t.prefixes.iter().map(|p| p.trunc()).collect(),
            })
            .collect();
        prefixes.extend(zones.iter().flat_map(|z| z.prefixes.iter().copied()));
        prefixes.extend(teams.iter().flat_map(|t| t.prefixes.iter().copied()));
        let local = ScopeMatcher::new(&ScopeSnapshot {
            prefixes,
            ..ScopeSnapshot::default()
        });
        let closed = (0..zones.len()).filter(|&i| !zones[i].outbound).collect();
        Ours {
            scope,
            local,
            zones,
            teams,
            closed,
        }
    }

    /// Whether `ip` is ours.
    #[inline]
    pub(crate) fn contains(&self, ip: IpAddr) -> bool {
        self.local.contains_ip(ip) || self.scope.contains_ip(ip)
    }

    /// The zone with `outbound = false` holding `ip` (the most specific), if any.
    pub(crate) fn closed_zone(&self, ip: IpAddr) -> Option<&Zone> {
        if self.closed.is_empty() {
            return None;
        }
        // The most specific zone of any kind decides: a host in an open /32 inside a closed
        // /24 may talk out.
        let z = self
            .zones
            .iter()
            .filter_map(|z| best(&z.prefixes, ip).map(|l| (l, z)))
            .max_by_key(|(l, _)| *l)?
            .1;
        (!z.outbound).then_some(z)
    }

    /// The team of `ip` (the most specific), as its index.
    pub(crate) fn team_of(&self, ip: IpAddr) -> Option<usize> {
        self.teams
            .iter()
            .enumerate()
            .filter_map(|(i, t)| best(&t.prefixes, ip).map(|l| (l, i)))
            .max_by_key(|(l, _)| *l)
            .map(|(_, i)| i)
    }
}

/// Whether a service/port pair between `a` and `b` is on the allow-list.
pub(crate) fn mismatch_allowed(
    allow: &[MismatchAllow],
    a: IpAddr,
    b: IpAddr,
    service: &str,
    port: u16,
) -> bool {
    allow
        .iter()
        .any(|m| service.split(',').any(|s| m.allows(a, b, s.trim(), port)))
}
