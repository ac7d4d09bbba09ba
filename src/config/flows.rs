//! `[flows]`: where the connection logs are, what is ours, and the thresholds of the
//! meta-indicators. Values are parsed while the TOML is read; [`FlowsConfig::validate`] checks
//! the allow-list entries (their own small grammars) and names the key on error.

use std::net::IpAddr;
use std::str::FromStr;
use std::time::Duration;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use super::{CronSchedule, HumanDuration};

/// `[flows]`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct FlowsConfig {
    /// Log files the daemon watches (`*` and `?` in any part; relative to the config file),
    /// e.g. `/var/log/zeek/current/conn.log`, `/var/log/zeek/*/conn.*.log.gz`.
    #[serde(default)]
    pub paths: Vec<String>,
    /// When the daemon looks at `paths` (cron, seconds first); every 15 minutes by default.
    #[serde(default = "default_schedule")]
    pub schedule: CronSchedule,
    /// Prefixes that are ours besides the configured scope, zones and teams (a sensor mostly
    /// sees private addresses). Default: RFC 1918, 100.64.0.0/10, fc00::/7, link-local.
    #[serde(default = "default_internal")]
    pub internal: Vec<IpNet>,
    /// A connection at least this long is a `long-connection` finding.
    #[serde(default = "default_long")]
    pub long_connection: HumanDuration,
    /// A talker stands out above median + k·MAD of its peers.
    #[serde(default = "default_k")]
    pub top_talker_k: f64,
    /// Service/port pairs that are no mismatch here: `"ssl:8443"`, `"10.0.0.5:http:8080"`,
    /// `"10.0.0.0/8:ssh:2222"`.
    #[serde(default)]
    pub port_mismatch_allow: Vec<String>,
    /// Parts of the network with their own rules (`[[flows.zones]]`).
    #[serde(default)]
    pub zones: Vec<ZoneConfig>,
    /// Groups of hosts compared with each other for top talkers (`[[flows.teams]]`).
    #[serde(default)]
    pub teams: Vec<TeamConfig>,
    /// A flow finding (one per host, kind and day) no run has added to for this long is
    /// resolved, as other sources' findings are when no longer reported.
    #[serde(default = "default_resolve_after")]
    pub resolve_after: HumanDuration,
}

/// `[[flows.zones]]`: a part of the network, e.g. the DMZ or the domain controllers.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ZoneConfig {
    pub name: String,
    pub prefixes: Vec<IpNet>,
    /// Whether hosts of the zone may start connections to addresses outside ours.
    #[serde(default = "yes")]
    pub outbound: bool,
    /// Exceptions when `outbound = false`: `"peer"`, `"peer/prefix"`, `"peer:port"`,
    /// `"peer/prefix:port"`, `"[v6]:port"`, `"*:port"`.
    #[serde(default)]
    pub allow: Vec<String>,
}

/// `[[flows.teams]]`: hosts whose traffic is compared with each other.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TeamConfig {
    pub name: String,
    pub prefixes: Vec<IpNet>,
}

fn yes() -> bool {
    true
}
fn default_schedule() -> CronSchedule {
    CronSchedule::from_str("0 */15 * * * *").expect("valid default")
}
fn default_resolve_after() -> HumanDuration {
    HumanDuration(Duration::from_secs(3 * 86_400))
}
fn default_long() -> HumanDuration {
    HumanDuration(Duration::from_secs(3600))
}
fn default_k() -> f64 {
    10.0
}

/// The default `[flows] internal`.
pub fn default_internal() -> Vec<IpNet> {
    [
        "10.0.0.0/8",
        "172.16.0.0/12",
        "192.168.0.0/16",
        "100.64.0.0/10",
        "169.254.0.0/16",
        "fc00::/7",
        "fe80::/10",
    ]
    .iter()
    .map(|s| s.parse().expect("valid default prefix"))
    .collect()
}

impl Default for FlowsConfig {
    fn default() -> Self {
        FlowsConfig {
            paths: Vec::new(),
            schedule: default_schedule(),
            internal: default_internal(),
            long_connection: default_long(),
            top_talker_k: default_k(),
            port_mismatch_allow: Vec::new(),
            zones: Vec::new(),
            teams: Vec::new(),
            resolve_after: default_resolve_after(),
        }
    }
}

/// An exception of a zone: a peer network and, optionally, one port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerAllow {
    /// `None`: any peer (`*:port`).
    pub net: Option<IpNet>,
    pub port: Option<u16>,
}

impl PeerAllow {
    /// Whether a connection to `peer` on `port` is allowed by this entry.
    pub fn allows(&self, peer: IpAddr, port: Option<u16>) -> bool {
        self.net.is_none_or(|n| n.contains(&peer)) && self.port.is_none_or(|p| Some(p) == port)
    }
}

fn parse_net(s: &str) -> Option<IpNet> {
    let s = s.trim();
    s.parse::<IpNet>()
        .ok()
        .or_else(|| s.parse::<IpAddr>().ok().map(IpNet::from))
}

/// An allow-list entry of `[flows]` that is no entry; `.0` as written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AllowError {
    #[error("`{0}` is not a port (0-65535)")]
    Port(String),
    #[error(
        "`{0}` is not a peer: write an address or prefix with an optional port \
         (\"192.0.2.10\", \"192.0.2.0/24:443\", \"[2001:db8::1]:443\", \"*:123\")"
    )]
    Peer(String),
    #[error(
        "`{0}` is not `service:port` or `host:service:port` (e.g. \"ssl:8443\", \
         \"10.0.0.5:http:8080\")"
    )]
    Mismatch(String),
}

/// What is wrong with the `[flows]` table (the key is named).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FlowsConfigError {
    #[error("`flows.top_talker_k` = {0} must be a number above 0 (e.g. 10)")]
    TopTalkerK(f64),
    #[error("`flows.long_connection` must be longer than 0 (e.g. \"1h\")")]
    LongConnection,
    #[error("`flows.port_mismatch_allow`: {0}")]
    MismatchAllow(AllowError),
    #[error("`flows.paths`: an empty path")]
    EmptyPath,
    /// `.0`: `flows.zones` or `flows.teams`.
    #[error("`{0}.name` must not be empty")]
    EmptyName(&'static str),
    #[error("`{what}.prefixes` of `{name}` must name at least one prefix")]
    NoPrefixes { what: &'static str, name: String },
    #[error("`flows.zones.allow` of `{zone}`: {error}")]
    ZoneAllow { zone: String, error: AllowError },
}

fn parse_port(s: &str) -> Result<u16, AllowError> {
    s.trim()
        .parse::<u16>()
        .map_err(|_| AllowError::Port(s.to_string()))
}

impl FromStr for PeerAllow {
    type Err = AllowError;
    fn from_str(s: &str) -> Result<Self, AllowError> {
        let s = s.trim();
        let bad = || AllowError::Peer(s.to_string());
        if let Some(rest) = s.strip_prefix('[') {
            let (net, tail) = rest.split_once(']').ok_or_else(bad)?;
            let net = parse_net(net).ok_or_else(bad)?;
            let port = match tail {
                "" => None,
                t => Some(parse_port(t.strip_prefix(':').ok_or_else(bad)?)?),
            };
            return Ok(PeerAllow {
                net: Some(net),
                port,
            });
        }
        if let Some(net) = parse_net(s) {
            return Ok(PeerAllow {
                net: Some(net),
                port: None,
            });
        }
        let (net, port) = s.rsplit_once(':').ok_or_else(bad)?;
        let port = Some(parse_port(port)?);
        if net.trim() == "*" {
            return Ok(PeerAllow { net: None, port });
        }
        Ok(PeerAllow {
            net: Some(parse_net(net).ok_or_else(bad)?),
            port,
        })
    }
}

/// A `port_mismatch_allow` entry: `service:port`, or `host-or-prefix:service:port`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MismatchAllow {
    pub net: Option<IpNet>,
    /// Lower-case service name as Zeek writes it (one of a comma-separated list).
    pub service: String,
    pub port: u16,
}

impl MismatchAllow {
    /// Whether `service` (one name) on `port` between `a` and `b` is allowed.
    pub fn allows(&self, a: IpAddr, b: IpAddr, service: &str, port: u16) -> bool {
        self.port == port
            && self.service.eq_ignore_ascii_case(service)
            && self.net.is_none_or(|n| n.contains(&a) || n.contains(&b))
    }
}

impl FromStr for MismatchAllow {
    type Err = AllowError;
    fn from_str(s: &str) -> Result<Self, AllowError> {
        let t = s.trim();
        let bad = || AllowError::Mismatch(s.to_string());
        let mut parts = t.rsplitn(3, ':');
        let port = parse_port(parts.next().ok_or_else(bad)?)?;
        let service = parts.next().ok_or_else(bad)?.trim();
        if service.is_empty()
            || !service
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(bad());
        }
        let net = match parts.next() {
            None => None,
            Some(h) => {
                let h = h.trim().trim_start_matches('[').trim_end_matches(']');
                Some(parse_net(h).ok_or_else(bad)?)
            }
        };
        Ok(MismatchAllow {
            net,
            service: service.to_ascii_lowercase(),
            port,
        })
    }
}

impl FlowsConfig {
    /// Checks what serde cannot: the allow-list entries, `top_talker_k`, names, paths.
    /// Errors name the key.
    pub fn validate(&self) -> Result<(), FlowsConfigError> {
        if !(self.top_talker_k.is_finite() && self.top_talker_k > 0.0) {
            return Err(FlowsConfigError::TopTalkerK(self.top_talker_k));
        }
        if self.long_connection.0.is_zero() {
            return Err(FlowsConfigError::LongConnection);
        }
        for e in &self.port_mismatch_allow {
            e.parse::<MismatchAllow>()
                .map_err(FlowsConfigError::MismatchAllow)?;
        }
        for p in &self.paths {
            if p.trim().is_empty() {
                return Err(FlowsConfigError::EmptyPath);
            }
        }
        for (what, name, prefixes) in self
            .zones
            .iter()
            .map(|z| ("flows.zones", &z.name, &z.prefixes))
            .chain(
                self.teams
                    .iter()
                    .map(|t| ("flows.teams", &t.name, &t.prefixes)),
            )
        {
            if name.trim().is_empty() {
                return Err(FlowsConfigError::EmptyName(what));
            }
            if prefixes.is_empty() {
                return Err(FlowsConfigError::NoPrefixes {
                    what,
                    name: name.clone(),
                });
            }
        }
        for z in &self.zones {
            for a in &z.allow {
                a.parse::<PeerAllow>()
                    .map_err(|error| FlowsConfigError::ZoneAllow {
                        zone: z.name.clone(),
                        error,
                    })?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peer_allow_forms() {
        let p: PeerAllow = "192.0.2.0/24:443".parse().unwrap();
        assert!(p.allows("192.0.2.9".parse().unwrap(), Some(443)));
        assert!(!p.allows("192.0.2.9".parse().unwrap(), Some(80)));
        let p: PeerAllow = "[2001:db8::1]:53".parse().unwrap();
        assert!(p.allows("2001:db8::1".parse().unwrap(), Some(53)));
        let p: PeerAllow = "2001:db8::/32".parse().unwrap();
        assert!(p.allows("2001:db8::7".parse().unwrap(), None));
        let p: PeerAllow = "*:123".parse().unwrap();
        assert!(p.allows("203.0.113.1".parse().unwrap(), Some(123)));
        assert!("192.0.2.1:99999".parse::<PeerAllow>().is_err());
        assert!("nonsense".parse::<PeerAllow>().is_err());
    }

    #[test]
    fn mismatch_allow_forms() {
        let a: MismatchAllow = "ssl:8443".parse().unwrap();
        assert!(a.net.is_none() && a.service == "ssl" && a.port == 8443);
        let a: MismatchAllow = "10.0.0.5:HTTP:8080".parse().unwrap();
        assert_eq!(a.service, "http");
        assert!(a.allows(
            "10.0.0.5".parse().unwrap(),
            "192.0.2.1".parse().unwrap(),
            "http",
            8080
        ));
        let a: MismatchAllow = "2001:db8::5:ssh:2222".parse().unwrap();
        assert_eq!(
            a.net.unwrap().addr(),
            "2001:db8::5".parse::<IpAddr>().unwrap()
        );
        assert!("ssl".parse::<MismatchAllow>().is_err());
        assert!("x:ssl:443".parse::<MismatchAllow>().is_err());
        assert!("s l:443".parse::<MismatchAllow>().is_err());
    }

    #[test]
    fn k_must_be_positive() {
        let c = FlowsConfig {
            top_talker_k: 0.0,
            ..FlowsConfig::default()
        };
        assert!(
            c.validate()
                .unwrap_err()
                .to_string()
                .contains("flows.top_talker_k")
        );
    }
}
