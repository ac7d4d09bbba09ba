//! Suppression rules: findings a team chose not to hear about until a date (a known
//! honeypot, an accepted risk, a scanner of our own). A suppressed finding is stored and
//! updated as any other; the digest and notifications leave it out, `lookup` shows it marked.
//!
//! Rules come from two places, read together by [`Suppressions::load`]: `[[suppress]]` tables
//! of the config (ids `config-1`, `config-2`… in file order; changed by editing the file) and
//! rules added with `outwatch suppress add`, kept in the store's state under
//! [`STATE_PREFIX`] (`triage/suppress/<id>`, JSON; ids 1, 2… never reused, the next one under
//! [`NEXT_ID`]). A rule ends at its `until`: expired rules match nothing but are kept (and
//! listed, marked) until removed.

use std::net::IpAddr;

use chrono::{DateTime, Duration, Utc};
use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::config::Config;
use crate::config::suppress::SuppressConfig;
use crate::finding::Finding;
use crate::store::{self, Store, StoreError};

/// State-key prefix of the rules added with `outwatch suppress add`.
pub const STATE_PREFIX: &str = "triage/suppress/";
/// State key of the next rule id.
pub const NEXT_ID: &str = "triage/next-suppress-id";

/// How long before its end a rule is "expiring" (the digest lists those).
pub fn expiring_window() -> Duration {
    Duration::days(7)
}

/// Where a rule is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Origin {
    /// `outwatch suppress add` (the store).
    Store,
    /// A `[[suppress]]` table of the config.
    Config,
}

/// One suppression rule: what it matches (one of `cidr`, `asn`, `domain`, narrowed by the
/// optional `source`, `feed`, `identifier`, `port`), until when, why and who.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rule {
    /// `7` (the store) or `config-2` (the second `[[suppress]]` table).
    pub id: String,
    pub origin: Origin,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cidr: Option<IpNet>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub asn: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub feed: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identifier: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// The rule matches nothing from this instant on.
    pub until: DateTime<Utc>,
    pub reason: String,
    pub by: String,
    /// When it was added (rules of the store).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<DateTime<Utc>>,
}

impl Rule {
    /// A rule of the config's `n`th (from 0) `[[suppress]]` table.
    pub fn from_config(n: usize, c: &SuppressConfig) -> Rule {
        Rule {
            id: format!("config-{}", n + 1),
            origin: Origin::Config,
            cidr: c.cidr.map(|n| n.trunc()),
            asn: c.asn.map(|a| a.0),
            domain: c.domain.as_ref().map(|d| d.0.clone()),
            source: c.source.clone(),
            feed: c.feed.clone(),
            identifier: c.identifier.clone(),
            port: c.port,
            until: c.until.0,
            reason: c.reason.clone(),
            by: c.by.clone().unwrap_or_else(|| "config".into()),
            created: None,
        }
    }

    /// Whether the rule is in force at `now`.
    pub fn active(&self, now: DateTime<Utc>) -> bool {
        now < self.until
    }

    /// What the rule matches, in words: `192.0.2.0/24, source shadowserver, port 3389`.
    pub fn describe(&self) -> String {
        let mut parts: Vec<String> = Vec::new();
        if let Some(c) = self.cidr {
            parts.push(c.to_string());
        }
        if let Some(a) = self.asn {
            parts.push(format!("AS{a}"));
        }
        if let Some(d) = &self.domain {
            parts.push(d.clone());
        }
        for (k, v) in [
            ("source", &self.source),
            ("feed", &self.feed),
            ("identifier", &self.identifier),
        ] {
            if let Some(v) = v {
                parts.push(format!("{k} {v}"));
            }
        }
        if let Some(p) = self.port {
            parts.push(format!("port {p}"));
        }
        parts.join(", ")
    }

    /// Whether the rule's fields match a finding (whatever its `until`).
    pub fn covers(&self, f: &Finding) -> bool {
        let about = match (&self.cidr, self.asn, &self.domain) {
            (Some(c), _, _) => {
                f.ip.is_some_and(|ip| c.contains(&ip))
                    || f.network
                        .is_some_and(|n| c.contains(&n) || n.contains(&c.network()))
            }
            (None, Some(a), _) => f.asn == Some(a),
            (None, None, Some(d)) => hosts(f).any(|h| under(&h, d)),
            (None, None, None) => false,
        };
        about
            && self.source.as_ref().is_none_or(|s| *s == f.source)
            && self.feed.as_ref().is_none_or(|s| *s == f.feed)
            && self
                .identifier
                .as_ref()
                .is_none_or(|s| *s == f.classification.identifier)
            && self.port.is_none_or(|p| f.port == Some(p))
    }
}

/// The host names a finding is about: its domain, its mail address's domain, its URL's host.
fn hosts(f: &Finding) -> impl Iterator<Item = String> + '_ {
    let mail = f
        .email
        .as_deref()
        .and_then(|e| e.rsplit_once('@'))
        .map(|(_, d)| d.to_string());
    let url = f.url.as_deref().and_then(url_host);
    f.domain
        .iter()
        .cloned()
        .chain(mail)
        .chain(url)
        .map(|h| crate::finding::normalize_domain(&h))
}

/// Whether host `h` is `d` or one of its subdomains.
fn under(h: &str, d: &str) -> bool {
    h == d || h.strip_suffix(d).is_some_and(|p| p.ends_with('.'))
}

/// The host of a URL (`scheme://[user@]host[:port]/...`); not an address literal.
fn url_host(u: &str) -> Option<String> {
    let rest = u.split_once("://").map_or(u, |(_, r)| r);
    let authority = rest.split(['/', '?', '#']).next()?;
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    if host.starts_with('[') {
        return None;
    }
    let host = host.split(':').next()?;
    (!host.is_empty() && host.parse::<IpAddr>().is_err()).then(|| host.to_ascii_lowercase())
}

/// Every rule (the config's, then the store's), as of `now`.
#[derive(Debug, Clone, Default)]
pub struct Suppressions {
    rules: Vec<Rule>,
    now: DateTime<Utc>,
}

impl Suppressions {
    /// The rules of `config` (when given) and of the store, as of `now` (the injected clock's).
    pub fn load(
        store: &dyn Store,
        config: Option<&Config>,
        now: DateTime<Utc>,
    ) -> Result<Suppressions, StoreError> {
        let mut rules: Vec<Rule> = config
            .map(|c| {
                c.suppress
                    .iter()
                    .enumerate()
                    .map(|(i, r)| Rule::from_config(i, r))
                    .collect()
            })
            .unwrap_or_default();
        rules.extend(stored(store)?);
        Ok(Suppressions { rules, now })
    }

    /// Rules as given (tests, and views that have them already).
    pub fn new(rules: Vec<Rule>, now: DateTime<Utc>) -> Suppressions {
        Suppressions { rules, now }
    }

    /// The first rule in force that covers `f`, if any.
    pub fn matches(&self, f: &Finding) -> Option<&Rule> {
        self.rules
            .iter()
            .find(|r| r.active(self.now) && r.covers(f))
    }

    /// Whether a rule in force covers `f`.
    pub fn suppressed(&self, f: &Finding) -> bool {
        self.matches(f).is_some()
    }

    /// Every rule, expired ones included.
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// Rules in force that end within `within` of now, soonest first.
    pub fn expiring(&self, within: Duration) -> Vec<&Rule> {
        let mut v: Vec<&Rule> = self
            .rules
            .iter()
            .filter(|r| r.active(self.now) && r.until <= self.now + within)
            .collect();
        v.sort_by_key(|r| r.until);
        v
    }

    pub fn now(&self) -> DateTime<Utc> {
        self.now
    }
}

/// How many findings that are not resolved a rule covers now (a walk of its prefix or domain;
/// of the whole store for an ASN).
pub fn count_covered(store: &dyn Store, rule: &Rule) -> Result<usize, StoreError> {
    use crate::finding::Status;
    use std::ops::ControlFlow;
    let mut n = 0usize;
    let query = match (&rule.cidr, &rule.domain) {
        (Some(c), _) => Some(crate::store::Query::Net(*c)),
        (None, Some(d)) => Some(crate::store::Query::Domain(d.clone())),
        _ => None,
    };
    match query {
        Some(q) => {
            store.query_each(&q, &crate::store::QueryOptions::default(), &mut |f| {
                if rule.covers(&f) {
                    n += 1;
                }
                Ok(ControlFlow::Continue(()))
            })?;
        }
        None => store.for_each(&mut |f| {
            if f.status != Status::Resolved && rule.covers(&f) {
                n += 1;
            }
            Ok(())
        })?,
    }
    Ok(n)
}

/// A rule about to end, as the digest shows it (texts cleaned of control characters and
/// shortened; HTML escaping is the template engine's).
#[derive(Debug, Clone, Serialize)]
pub struct Expiring {
    pub id: String,
    /// What it matches, in words.
    pub matches: String,
    /// When it ends, `2027-01-31 00:00 UTC`.
    pub until: String,
    pub reason: String,
    pub by: String,
}

/// The rules in force that end within [`expiring_window`], soonest first, for the digest.
pub fn expiring_view(s: &Suppressions) -> Vec<Expiring> {
    let clean = |t: &str, n: usize| crate::text::clip(t, n);
    s.expiring(expiring_window())
        .into_iter()
        .map(|r| Expiring {
            id: clean(&r.id, 40),
            matches: clean(&r.describe(), 200),
            until: r.until.format("%Y-%m-%d %H:%M UTC").to_string(),
            reason: clean(&r.reason, 200),
            by: clean(&r.by, 60),
        })
        .collect()
}

fn key_of(id: u64) -> String {
    format!("{STATE_PREFIX}{id:010}")
}

/// The rules kept in the store, oldest first.
pub fn stored(store: &dyn Store) -> Result<Vec<Rule>, StoreError> {
    store
        .state_scan(STATE_PREFIX)?
        .into_iter()
        .map(|(k, v)| {
            serde_json::from_slice(&v).map_err(|e| StoreError::corrupt(format!("state `{k}`"), e))
        })
        .collect()
}

/// Adds a rule to the store under the next id (the `id`, `origin` and `created` given are
/// replaced); returns it as stored.
pub fn add(store: &dyn Store, mut rule: Rule, now: DateTime<Utc>) -> Result<Rule, StoreError> {
    let next: u64 = store::state_get_json(store, NEXT_ID)?.unwrap_or(1);
    rule.id = next.to_string();
    rule.origin = Origin::Store;
    rule.created = Some(now);
    store.state_put(
        &key_of(next),
        Some(&store::json_state(&key_of(next), &rule)?),
    )?;
    store::state_put_json(store, NEXT_ID, &(next + 1))?;
    Ok(rule)
}

/// Removes the store's rule `id`; returns it, or `None` when there is none.
pub fn remove(store: &dyn Store, id: &str) -> Result<Option<Rule>, StoreError> {
    let Ok(n) = id.trim().parse::<u64>() else {
        return Ok(None);
    };
    let key = key_of(n);
    let Some(v) = store.state_get(&key)? else {
        return Ok(None);
    };
    let rule: Rule =
        serde_json::from_slice(&v).map_err(|e| StoreError::corrupt(format!("state `{key}`"), e))?;
    store.state_put(&key, None)?;
    Ok(Some(rule))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::finding::{Classification, Severity};

    fn at(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_790_000_000 + s, 0).unwrap()
    }

    fn rule(until: i64) -> Rule {
        Rule {
            id: "1".into(),
            origin: Origin::Store,
            cidr: None,
            asn: None,
            domain: None,
            source: None,
            feed: None,
            identifier: None,
            port: None,
            until: at(until),
            reason: "r".into(),
            by: "me".into(),
            created: None,
        }
    }

    fn finding(ip: &str) -> Finding {
        let mut f = Finding::new(
            "shadowserver",
            "scan_rdp",
            Classification::new("", "vulnerable-system", "open-rdp"),
            Severity::High,
        );
        f.ip = Some(ip.parse().unwrap());
        f.port = Some(3389);
        f.asn = Some(64496);
        f.seal();
        f
    }

    #[test]
    fn a_rule_matches_what_it_names_until_it_ends() {
        let mut r = rule(100);
        r.cidr = Some("192.0.2.0/24".parse().unwrap());
        let s = Suppressions::new(vec![r.clone()], at(0));
        assert!(s.suppressed(&finding("192.0.2.7")));
        assert!(!s.suppressed(&finding("198.51.100.7")));
        assert!(!Suppressions::new(vec![r.clone()], at(100)).suppressed(&finding("192.0.2.7")));
        // Narrowed: another port or source is not covered.
        r.port = Some(22);
        assert!(!r.covers(&finding("192.0.2.7")));
        r.port = Some(3389);
        r.source = Some("cymru".into());
        assert!(!r.covers(&finding("192.0.2.7")));
        // A network finding overlapping the prefix.
        let mut n = finding("192.0.2.7");
        n.ip = None;
        n.network = Some("192.0.0.0/16".parse().unwrap());
        let mut r = rule(100);
        r.cidr = Some("192.0.2.0/24".parse().unwrap());
        assert!(r.covers(&n));
        let mut r = rule(100);
        r.asn = Some(64496);
        assert!(r.covers(&finding("198.51.100.7")));
    }

    #[test]
    fn a_domain_rule_covers_hosts_urls_and_mail_below_it() {
        let mut r = rule(100);
        r.domain = Some("example.org".into());
        let mut f = finding("192.0.2.1");
        f.url = Some("http://www.Example.org:8080/x".into());
        assert!(r.covers(&f));
        f.url = Some("http://notexample.org/".into());
        assert!(!r.covers(&f));
        f.email = Some("alice@mail.example.org".into());
        assert!(r.covers(&f));
    }

    #[test]
    fn expiring_rules_soonest_first() {
        let s = Suppressions::new(vec![rule(5 * 86400), rule(86400), rule(30 * 86400)], at(0));
        let e = s.expiring(expiring_window());
        assert_eq!(e.len(), 2);
        assert_eq!(e[0].until, at(86400));
    }
}
