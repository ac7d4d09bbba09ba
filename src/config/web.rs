//! `[web]` and `[[web.tokens]]`: where the web view listens (`src/web/`), its templates, and
//! who may use it. A token is kept as the SHA-256 of its text (hex), never the text; each has
//! a role (`read`, `triage`) and optionally a scope that cuts every answer.

use std::net::SocketAddr;
use std::path::PathBuf;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use super::{Asn, DomainName};

/// `[web]`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct WebConfig {
    /// Address and port the daemon (and `outwatch serve`) listens on, e.g. `127.0.0.1:8080`.
    /// Any address but a loopback one needs at least one `[[web.tokens]]`.
    #[serde(default)]
    pub listen: Option<SocketAddr>,
    /// Folder of templates that replace the built-in ones of the same name (`templates/web/`).
    #[serde(default)]
    pub templates: Option<PathBuf>,
    /// Who may use it from elsewhere than this host.
    #[serde(default)]
    pub tokens: Vec<TokenConfig>,
}

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Read pages and the API.
    Read,
    /// Read, and acknowledge, annotate, resolve and suppress.
    Triage,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Read => "read",
            Role::Triage => "triage",
        }
    }
}

/// `[[web.tokens]]`: one bearer token.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TokenConfig {
    /// Who uses it: written as the author of its triage (`by`).
    pub name: String,
    /// SHA-256 of the token's text, 64 hex digits (`printf %s "$TOKEN" | sha256sum`).
    pub sha256: String,
    pub role: Role,
    /// Scope: when any of these is given, the token sees only findings about these prefixes,
    /// ASNs (their findings and their announced prefixes), domains (with subdomains) and
    /// teams (`[[flows.teams]]`, `[[flows.zones]]`, `[[digest.routes]]` of that name).
    #[serde(default)]
    pub prefixes: Vec<IpNet>,
    #[serde(default)]
    pub asns: Vec<Asn>,
    #[serde(default)]
    pub domains: Vec<DomainName>,
    #[serde(default)]
    pub teams: Vec<String>,
}

impl TokenConfig {
    /// Whether the token is cut to a scope.
    pub fn scoped(&self) -> bool {
        !(self.prefixes.is_empty()
            && self.asns.is_empty()
            && self.domains.is_empty()
            && self.teams.is_empty())
    }
}

impl WebConfig {
    /// Checks what serde cannot: each hash is 64 hex digits, names are unique and not empty,
    /// and a team a token names exists.
    pub fn validate(&self, teams: &[&str]) -> Result<(), WebConfigError> {
        let mut seen = std::collections::BTreeSet::new();
        for t in &self.tokens {
            let name = t.name.trim();
            if name.is_empty() || name.chars().any(char::is_control) {
                return Err(WebConfigError::BadName);
            }
            if !seen.insert(name.to_string()) {
                return Err(WebConfigError::TwoNamed(name.to_string()));
            }
            if t.sha256.len() != 64 || !t.sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(WebConfigError::NotAHash(name.to_string()));
            }
            for team in &t.teams {
                if !teams.contains(&team.as_str()) {
                    return Err(WebConfigError::NoSuchTeam {
                        name: name.to_string(),
                        team: crate::text::clip(team, 60),
                    });
                }
            }
        }
        Ok(())
    }
}

/// What `[[web.tokens]]` gets wrong.
#[derive(Debug, thiserror::Error)]
pub enum WebConfigError {
    #[error("`web.tokens.name` must be a name (not empty, no control characters)")]
    BadName,
    #[error("`web.tokens`: two tokens are named `{0}`")]
    TwoNamed(String),
    #[error(
        "`web.tokens` `{0}`: `sha256` must be the SHA-256 of the token as 64 hex digits \
         (printf %s \"$TOKEN\" | sha256sum), not the token itself"
    )]
    NotAHash(String),
    #[error(
        "`web.tokens` `{name}`: no [[flows.teams]], [[flows.zones]] or [[digest.routes]] is \
         named `{team}`"
    )]
    NoSuchTeam { name: String, team: String },
}
