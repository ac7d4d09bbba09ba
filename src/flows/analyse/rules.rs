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

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RulesFile {
    kinds: HashMap<String, KindRule>,
    ports: HashMap<String, Vec<PortSpec>>,
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
    pub fn parse(text: &str) -> Result<Rules, String> {
        let f: RulesFile = toml::from_str(text).map_err(|e| e.to_string())?;
        let mut kinds = HashMap::new();
        for k in Kind::ALL {
            let r = f
                .kinds
                .get(k.as_str())
                .ok_or_else(|| format!("no [kinds.{}]", k.as_str()))?;
            kinds.insert(k, r.clone());
        }
        let mut ports = HashMap::new();
        for (svc, specs) in f.ports {
            let mut ranges = Vec::with_capacity(specs.len());
            for s in specs {
                ranges.push(match s {
                    PortSpec::One(p) => (p, p),
                    PortSpec::Range(r) => {
                        let (a, b) = r
                            .split_once('-')
                            .ok_or_else(|| format!("ports.{svc}: `{r}` is not from-to"))?;
                        let a: u16 = a
                            .trim()
                            .parse()
                            .map_err(|_| format!("ports.{svc}: `{r}`"))?;
                        let b: u16 = b
                            .trim()
                            .parse()
                            .map_err(|_| format!("ports.{svc}: `{r}`"))?;
                        (a.min(b), a.max(b))
                    }
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
}
