//! Who is asking, and what they may see and do.
//!
//! - A request carries a token as `Authorization: Bearer TOKEN` (scripts, the API) or in the
//!   `outwatch_token` cookie that `POST /login` sets (browsers). Tokens are configured as the
//!   SHA-256 of their text (`[[web.tokens]]`): the text is hashed and compared with each.
//! - On a loopback listener a request without a token is `local`, with the `triage` role and
//!   no scope (whoever is on this host can read the store anyway). Elsewhere it is refused.
//! - A token's scope ([`Scope`]) cuts every answer: a finding outside it is never shown,
//!   counted or acted on.
//! - A form POST (not authenticated by an `Authorization` header) carries a CSRF token: an
//!   HMAC of the caller's identity under a key made when the server starts ([`Gate::csrf`]).

use std::net::SocketAddr;
use std::sync::Arc;

use hmac::{Hmac, KeyInit, Mac};
use ipnet::IpNet;
use sha2::{Digest, Sha256};

use crate::config::Config;
use crate::config::web::{Role, TokenConfig};
use crate::finding::Finding;
use crate::scope::ScopeSnapshot;
use crate::store::filter::url_host;

/// Name of the cookie that carries a browser's token.
pub const COOKIE: &str = "outwatch_token";

/// What a token may see: findings about these networks, ASNs or domains (any of them).
#[derive(Debug, Clone, Default)]
pub struct Scope {
    pub nets: Vec<IpNet>,
    pub asns: Vec<u32>,
    pub domains: Vec<String>,
}

impl Scope {
    /// A token's scope, its ASNs' announced prefixes (`snap`) and teams' prefixes filled in.
    pub fn of(t: &TokenConfig, cfg: &Config, snap: &ScopeSnapshot) -> Scope {
        let mut nets: Vec<IpNet> = t.prefixes.iter().map(|n| n.trunc()).collect();
        let asns: Vec<u32> = t.asns.iter().map(|a| a.0).collect();
        for a in &snap.asns {
            if asns.contains(&a.asn) {
                nets.extend(a.prefixes.iter().copied());
            }
        }
        for (name, prefixes) in cfg.teams() {
            if t.teams.iter().any(|n| n == name) {
                nets.extend(prefixes.iter().copied());
            }
        }
        Scope {
            nets: IpNet::aggregate(&nets),
            asns,
            domains: t.domains.iter().map(|d| d.0.to_ascii_lowercase()).collect(),
        }
    }

    /// Whether an address lies in the scope's networks.
    pub fn allows_ip(&self, ip: std::net::IpAddr) -> bool {
        self.nets.iter().any(|n| n.contains(&ip))
    }

    /// Whether the finding is about something in the scope.
    pub fn allows(&self, f: &Finding) -> bool {
        if let Some(ip) = f.ip
            && self.nets.iter().any(|n| n.contains(&ip))
        {
            return true;
        }
        if let Some(m) = f.network
            && self.nets.iter().any(|n| n.contains(&m))
        {
            return true;
        }
        if f.asn.is_some_and(|a| self.asns.contains(&a)) {
            return true;
        }
        let mail = f
            .email
            .as_deref()
            .and_then(|e| e.rsplit_once('@'))
            .map(|x| x.1.to_string());
        let host = f.url.as_deref().and_then(url_host);
        [f.domain.clone(), mail, host]
            .into_iter()
            .flatten()
            .any(|n| self.domains.iter().any(|d| under(&n, d)))
    }
}

/// Whether `name` is `domain` or one of its subdomains.
fn under(name: &str, domain: &str) -> bool {
    let name = name.trim_end_matches('.');
    name.len() >= domain.len()
        && name[name.len() - domain.len()..].eq_ignore_ascii_case(domain)
        && (name.len() == domain.len() || name.as_bytes()[name.len() - domain.len() - 1] == b'.')
}

/// One configured token.
struct Token {
    name: String,
    hash: [u8; 32],
    role: Role,
    scope: Option<Arc<Scope>>,
}

/// Who is asking.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The token's name, or `local` on a loopback listener without a token.
    pub name: String,
    pub role: Role,
    /// `None`: sees everything.
    pub scope: Option<Arc<Scope>>,
    /// The CSRF token its forms carry.
    pub csrf: String,
    /// Authenticated by an `Authorization` header (no CSRF token needed: a browser does not
    /// send one across sites).
    pub by_header: bool,
}

impl Caller {
    /// Whether the caller may see the finding.
    pub fn sees(&self, f: &Finding) -> bool {
        self.scope.as_ref().is_none_or(|s| s.allows(f))
    }

    pub fn may_triage(&self) -> bool {
        self.role == Role::Triage
    }
}

/// Why a request is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// No token, and the listener is not on loopback.
    NoToken,
    /// A token that is none of the configured ones.
    BadToken,
}

/// The configured tokens and the server's CSRF key.
pub struct Gate {
    open_locally: bool,
    tokens: Vec<Token>,
    csrf_key: [u8; 32],
}

/// Whether a listen address is on loopback (no token needed).
pub fn is_loopback(addr: &SocketAddr) -> bool {
    addr.ip().is_loopback()
}

/// SHA-256 of a token's text as 64 hex digits: what `[[web.tokens]] sha256` holds.
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.trim().as_bytes()))
}

impl Gate {
    /// The gate of a listener at `listen` with the config's tokens.
    pub fn new(cfg: &Config, snap: &ScopeSnapshot, listen: &SocketAddr) -> Gate {
        let tokens = cfg
            .web
            .tokens
            .iter()
            .filter_map(|t| {
                let bytes = hex::decode(t.sha256.trim()).ok()?;
                let hash: [u8; 32] = bytes.try_into().ok()?;
                Some(Token {
                    name: t.name.trim().to_string(),
                    hash,
                    role: t.role,
                    scope: t.scoped().then(|| Arc::new(Scope::of(t, cfg, snap))),
                })
            })
            .collect();
        Gate {
            open_locally: is_loopback(listen),
            tokens,
            csrf_key: rand::random(),
        }
    }

    /// Who presents `token` (from a header when `by_header`); `None` for no token, which is
    /// `local` on a loopback listener when the request named the host by a loopback name
    /// (`local_name`; another name is a page of another site pointed here: DNS rebinding).
    pub fn caller(
        &self,
        token: Option<&str>,
        by_header: bool,
        local_name: bool,
    ) -> Result<Caller, Refusal> {
        let Some(text) = token.map(str::trim).filter(|t| !t.is_empty()) else {
            if !(self.open_locally && local_name) {
                return Err(Refusal::NoToken);
            }
            return Ok(Caller {
                name: "local".into(),
                role: Role::Triage,
                scope: None,
                csrf: self.csrf("local"),
                by_header: false,
            });
        };
        let hash: [u8; 32] = Sha256::digest(text.as_bytes()).into();
        // Every token is compared (no early end), each in constant time.
        let mut found = None;
        for t in &self.tokens {
            if constant_eq(&t.hash, &hash) {
                found = Some(t);
            }
        }
        let t = found.ok_or(Refusal::BadToken)?;
        Ok(Caller {
            name: t.name.clone(),
            role: t.role,
            scope: t.scope.clone(),
            csrf: self.csrf(&hex::encode(t.hash)),
            by_header,
        })
    }

    /// The CSRF token of an identity (`local`, or a token's hash).
    fn csrf(&self, identity: &str) -> String {
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&self.csrf_key)
            .expect("HMAC takes any key length");
        mac.update(identity.as_bytes());
        hex::encode(&mac.finalize().into_bytes()[..16])
    }
}

fn constant_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Whether a form's CSRF token is the caller's.
pub fn csrf_ok(caller: &Caller, given: &str) -> bool {
    caller.by_header
        || (given.len() == caller.csrf.len()
            && given
                .bytes()
                .zip(caller.csrf.bytes())
                .fold(0u8, |acc, (x, y)| acc | (x ^ y))
                == 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domains_by_label() {
        assert!(under("www.example.org", "example.org"));
        assert!(under("example.org", "example.org"));
        assert!(!under("badexample.org", "example.org"));
    }

    #[test]
    fn hash_is_sha256_hex() {
        assert_eq!(
            token_hash("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
