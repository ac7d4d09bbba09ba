//! The data behind the flow findings, from `feeds/flows-services.toml` (built in): per kind its
//! classification and severity, and the usual responder ports per Zeek service name.

use std::collections::HashMap;
use std::sync::OnceLock;

use serde::Deserialize;

use crate::finding::{Classification, Severity};

/// The built-in rules file.
pub const BUILTIN: &str = include_str!("../../../feeds/flows-services.toml");

/// The five kinds of flow finding (the finding's `feed`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    C2Contact,
    UnexpectedOutbound,
    LongConnection,
    PortMismatch,
    TopTalker,
}

impl Kind {
    /// Every kind, in the order summaries list them.
    pub const ALL: [Kind; 5] = [
        Kind::C2Contact,
        Kind::UnexpectedOutbound,
        Kind::LongConnection,
        Kind::PortMismatch,
        Kind::TopTalker,
    ];

    /// The kind of a feed name (`c2-contact`, ...).
    pub fn from_feed(feed: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.as_str() == feed)
    }

    /// The feed name (`c2-contact`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::C2Contact => "c2-contact",
            Kind::UnexpectedOutbound => "unexpected-outbound",
            Kind::LongConnection => "long-connection",
            Kind::PortMismatch => "port-mismatch",
            Kind::TopTalker => "top-talker",
        }
    }
}

/// What the rules file says about one kind.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KindRule {
    pub severity: Severity,
    pub taxonomy: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub identifier: String,
    /// One line for people.
    pub meaning: String,
}

impl KindRule {
    pub fn classification(&self) -> Classification {
        Classification::new(&self.taxonomy, &self.kind, &self.identifier)
    }
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum PortSpec {
    One(u16),
    Range(String),
}

/// `from-to`, inclusive, in either order.
fn parse_range(r: &str) -> Option<(u16, u16)> {
    let (a, b) = r.split_once('-')?;
    let a: u16 = a.trim().parse().ok()?;
    let b: u16 = b.trim().parse().ok()?;
    Some((a.min(b), a.max(b)))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RulesFile {
    kinds: HashMap<String, KindRule>,
    ports: HashMap<String, Vec<PortSpec>>,
}

/// Why a rules document is refused.
#[derive(Debug, thiserror::Error)]
pub enum RulesError {
    #[error("not a valid rules file: {0}")]
    Toml(#[from] toml::de::Error),
    #[error("no [kinds.{0}]")]
    MissingKind(&'static str),
    #[error("ports.{service}: `{spec}` is not a port range (from-to)")]
    BadRange { service: String, spec: String },
}

/// The parsed rules.
#[derive(Debug)]
pub struct Rules {
    kinds: HashMap<Kind, KindRule>,
    /// Service name → sorted inclusive port ranges.
    ports: HashMap<String, Vec<(u16, u16)>>,
}

impl Rules {
    /// Parses a rules document (the built-in one is checked by a test).
    pub fn parse(text: &str) -> Result<Rules, RulesError> {
        let f: RulesFile = toml::from_str(text)?;
        let mut kinds = HashMap::new();
        for k in Kind::ALL {
            let r = f
                .kinds
                .get(k.as_str())
                .ok_or(RulesError::MissingKind(k.as_str()))?;
            kinds.insert(k, r.clone());
        }
        let mut ports = HashMap::new();
        for (svc, specs) in f.ports {
            let mut ranges = Vec::with_capacity(specs.len());
            for s in specs {
                ranges.push(match s {
                    PortSpec::One(p) => (p, p),
                    PortSpec::Range(r) => parse_range(&r).ok_or_else(|| RulesError::BadRange {
                        service: svc.clone(),
                        spec: r.clone(),
                    })?,
                });
            }
            ranges.sort_unstable();
            ports.insert(svc.to_ascii_lowercase(), ranges);
        }
        Ok(Rules { kinds, ports })
    }

    /// The built-in rules.
    pub fn builtin() -> &'static Rules {
        static R: OnceLock<Rules> = OnceLock::new();
        R.get_or_init(|| Rules::parse(BUILTIN).expect("feeds/flows-services.toml is valid"))
    }

    pub fn kind(&self, k: Kind) -> &KindRule {
        &self.kinds[&k]
    }

    /// Whether `service` (Zeek's comma-separated list) fits `port`: `Some(true)` when any
    /// known name lists the port, `Some(false)` when names are known and none lists it, `None`
    /// when no name is known (then nothing is judged).
    pub fn fits(&self, service: &str, port: u16) -> Option<bool> {
        let mut known = false;
        for name in service.split(',') {
            let name = name.trim();
            let ranges = match self.ports.get(name) {
                Some(r) => r,
                None if name.bytes().any(|b| b.is_ascii_uppercase()) => {
                    match self.ports.get(&name.to_ascii_lowercase()) {
                        Some(r) => r,
                        None => continue,
                    }
                }
                None => continue,
            };
            known = true;
            if ranges.iter().any(|&(a, b)| a <= port && port <= b) {
                return Some(true);
            }
        }
        known.then_some(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_rules_parse_and_judge() {
        let r = Rules::builtin();
        assert_eq!(r.fits("ssl", 443), Some(true));
        assert_eq!(r.fits("ssl", 449), Some(false));
        assert_eq!(r.fits("http", 53), Some(false));
        assert_eq!(r.fits("gssapi,smb,krb", 445), Some(true));
        assert_eq!(r.fits("gssapi,smb,krb", 4444), Some(false));
        assert_eq!(r.fits("SSL", 443), Some(true));
        assert_eq!(r.fits("somethingnew", 1), None);
        assert_eq!(r.fits("vnc", 5905), Some(true));
        assert_eq!(r.kind(Kind::C2Contact).severity, Severity::Critical);
    }

    /// Every service Zeek's `service` field commonly names is in the table, and fits the
    /// port Zeek registers its analyzer on (`scripts/base/protocols/*/main.zeek`), so a
    /// common service is judged, and not a mismatch on its own port.
    #[test]
    fn zeeks_common_services_are_known_on_their_ports() {
        let r = Rules::builtin();
        for (svc, port) in [
            ("dns", 53),
            ("http", 80),
            ("ssl", 443),
            ("ssh", 22),
            ("smtp", 25),
            ("ftp", 21),
            ("ftp-data", 20),
            ("ftp-data", 40_000),
            ("irc", 6667),
            ("ntp", 123),
            ("dhcp", 67),
            ("snmp", 161),
            ("syslog", 514),
            ("ldap_tcp", 389),
            ("ldap_tcp", 3268),
            ("ldap_udp", 389),
            ("krb", 88),
            ("krb_tcp", 88),
            ("smb", 445),
            ("dce_rpc", 135),
            ("dce_rpc", 49_670),
            ("ntlm", 445),
            ("rdp", 3389),
            ("rdpeudp", 3389),
            ("rfb", 5900),
            ("mysql", 3306),
            ("postgresql", 5432),
            ("redis", 6379),
            ("radius", 1812),
            ("sip", 5060),
            ("socks", 1080),
            ("modbus", 502),
            ("dnp3_tcp", 20000),
            ("dnp3_udp", 20000),
            ("mqtt", 1883),
            ("quic", 443),
            ("imap", 143),
            ("pop3", 110),
            ("xmpp", 5222),
            ("gssapi", 445),
            ("gssapi,ldap_tcp", 389),
            ("gssapi,smb,krb,ntlm", 445),
            ("dtls", 443),
            ("openvpn", 1194),
            ("finger", 79),
            ("telnet", 23),
        ] {
            assert_eq!(r.fits(svc, port), Some(true), "{svc} on {port}");
        }
        assert_eq!(r.fits("ldap_tcp", 4444), Some(false));
        assert_eq!(r.fits("krb_tcp", 443), Some(false));
    }

    #[test]
    fn a_bad_rules_file_says_what_is_wrong() {
        let e = Rules::parse("[kinds]\n[ports]\n").unwrap_err();
        assert!(e.to_string().contains("no [kinds.c2-contact]"), "{e}");
        let good_kinds: String = BUILTIN.split("\n[ports]\n").next().unwrap().to_string() + "\n";
        let e = Rules::parse(&format!("{good_kinds}[ports]\nx = [\"1-y\"]\n")).unwrap_err();
        assert!(e.to_string().contains("ports.x: `1-y`"), "{e}");
    }
}
