//! Scope: the addresses, networks, domains and mail addresses that are "ours".
//!
//! A [`ScopeSnapshot`] is the data (ASN prefixes from RIPEstat, configured prefixes, domains);
//! a [`ScopeMatcher`] answers "is this ours?" fast. IP membership is a binary search over merged,
//! sorted ranges (no scan, no allocation); attribution (which prefix, which ASN) is a
//! longest-prefix match in a prefix trie. The snapshot is cached in the store, so lookups work
//! without a config file and a failed RIPEstat refresh keeps yesterday's prefixes.

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use prefix_trie::PrefixMap;
use serde::{Deserialize, Serialize};

use crate::config::Config;
use crate::finding::normalize_domain;
use crate::http::HttpClient;
use crate::ripestat;
use crate::store::{self, Store};

/// State key of the cached snapshot.
pub const SNAPSHOT_KEY: &str = "scope/snapshot";

/// The announced prefixes of one ASN, as last fetched.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AsnPrefixes {
    pub asn: u32,
    pub prefixes: Vec<IpNet>,
    /// Last successful refresh.
    pub refreshed_at: Option<DateTime<Utc>>,
    /// Last refresh error, when the last attempt failed (old prefixes are kept).
    pub last_error: Option<String>,
    /// Time of the last attempt.
    #[serde(default)]
    pub attempted_at: Option<DateTime<Utc>>,
}

/// Everything that is ours, as data.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ScopeSnapshot {
    pub asns: Vec<AsnPrefixes>,
    /// Configured extra prefixes.
    pub prefixes: Vec<IpNet>,
    pub domains: Vec<String>,
    pub emails: Vec<String>,
}

impl ScopeSnapshot {
    /// What makes this scope miss things, one line each: an ASN with no prefixes (never
    /// resolved, or announcing none), so that no list can match anything of it.
    pub fn problems(&self) -> Vec<String> {
        self.asns
            .iter()
            .filter(|a| a.prefixes.is_empty())
            .map(|a| match (&a.refreshed_at, &a.last_error) {
                (_, Some(e)) => format!("AS{} has no prefixes: {e}", a.asn),
                (None, None) => format!(
                    "AS{} has not been resolved to its prefixes yet: run `outwatch scope \
                     --refresh` (the daemon does it on start)",
                    a.asn
                ),
                (Some(_), None) => format!(
                    "AS{} has no announced prefixes: no list can match anything of it",
                    a.asn
                ),
            })
            .collect()
    }
}

/// Why an address is ours.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase", tag = "kind", content = "asn")]
pub enum Origin {
    /// Announced by this ASN.
    Asn(u32),
    /// Listed in `organisation.prefixes`.
    Configured,
}

/// Fast membership tests against a snapshot.
#[derive(Debug, Clone, Default)]
pub struct ScopeMatcher {
    v4: Vec<(u32, u32)>,
    v6: Vec<(u128, u128)>,
    trie4: PrefixMap<Ipv4Net, Origin>,
    trie6: PrefixMap<Ipv6Net, Origin>,
    domains: HashSet<String>,
    emails: HashSet<String>,
    asns: HashSet<u32>,
}

fn merge_ranges<T: Copy + Ord + num_like::One>(mut v: Vec<(T, T)>) -> Vec<(T, T)> {
    v.sort_unstable();
    let mut out: Vec<(T, T)> = Vec::with_capacity(v.len());
    for (s, e) in v {
        if let Some(last) = out.last_mut() {
            // Adjacent or overlapping: extend.
            if s <= last.1 || T::succ(last.1) == Some(s) {
                if e > last.1 {
                    last.1 = e;
                }
                continue;
            }
        }
        out.push((s, e));
    }
    out
}

mod num_like {
    pub(super) trait One: Sized {
        fn succ(self) -> Option<Self>;
    }
    impl One for u32 {
        fn succ(self) -> Option<Self> {
            self.checked_add(1)
        }
    }
    impl One for u128 {
        fn succ(self) -> Option<Self> {
            self.checked_add(1)
        }
    }
}

#[inline]
fn in_ranges<T: Copy + Ord>(ranges: &[(T, T)], x: T) -> bool {
    // Index of the first range starting after x; the candidate is the one before it.
    let i = ranges.partition_point(|r| r.0 <= x);
    i > 0 && ranges[i - 1].1 >= x
}

impl ScopeMatcher {
    /// Builds a matcher from a snapshot.
    pub fn new(s: &ScopeSnapshot) -> Self {
        let mut m = ScopeMatcher::default();
        let mut v4 = Vec::new();
        let mut v6 = Vec::new();
        let mut add = |net: IpNet, origin: Origin, m: &mut ScopeMatcher| match net.trunc() {
            IpNet::V4(n) => {
                v4.push((u32::from(n.network()), u32::from(n.broadcast())));
                m.trie4.insert(n, origin);
            }
            IpNet::V6(n) => {
                v6.push((u128::from(n.network()), u128::from(n.broadcast())));
                m.trie6.insert(n, origin);
            }
        };
        for a in &s.asns {
            m.asns.insert(a.asn);
            for p in &a.prefixes {
                add(*p, Origin::Asn(a.asn), &mut m);
            }
        }
        for p in &s.prefixes {
            add(*p, Origin::Configured, &mut m);
        }
        m.v4 = merge_ranges(v4);
        m.v6 = merge_ranges(v6);
        m.domains = s.domains.iter().map(|d| normalize_domain(d)).collect();
        m.emails = s
            .emails
            .iter()
            .map(|e| e.trim().to_ascii_lowercase())
            .collect();
        m
    }

    /// Whether nothing at all is in scope (no config, no cache).
    pub fn is_empty(&self) -> bool {
        self.v4.is_empty()
            && self.v6.is_empty()
            && self.domains.is_empty()
            && self.emails.is_empty()
            && self.asns.is_empty()
    }

    /// Whether `ip` lies in one of our prefixes. Allocation-free binary search.
    #[inline]
    pub fn contains_ip(&self, ip: IpAddr) -> bool {
        match ip {
            IpAddr::V4(a) => self.contains_v4(a),
            IpAddr::V6(a) => match a.to_ipv4_mapped() {
                Some(v4) => self.contains_v4(v4),
                None => in_ranges(&self.v6, u128::from(a)),
            },
        }
    }

    /// IPv4 fast path.
    #[inline]
    pub fn contains_v4(&self, a: Ipv4Addr) -> bool {
        in_ranges(&self.v4, u32::from(a))
    }

    /// IPv6 fast path.
    #[inline]
    pub fn contains_v6(&self, a: Ipv6Addr) -> bool {
        in_ranges(&self.v6, u128::from(a))
    }

    /// The most specific prefix of ours holding `ip`, and why it is ours.
    pub fn match_ip(&self, ip: IpAddr) -> Option<(IpNet, Origin)> {
        match ip {
            IpAddr::V4(a) => self
                .trie4
                .get_lpm(&Ipv4Net::from(a))
                .map(|(n, o)| (IpNet::V4(n), *o)),
            IpAddr::V6(a) => self
                .trie6
                .get_lpm(&Ipv6Net::from(a))
                .map(|(n, o)| (IpNet::V6(n), *o)),
        }
    }

    /// The first of our prefixes that lies inside `net` (a listed network larger than ours),
    /// and why it is ours.
    pub fn prefix_within(&self, net: IpNet) -> Option<(IpNet, Origin)> {
        match net.trunc() {
            IpNet::V4(n) => self
                .trie4
                .children(&n)
                .next()
                .map(|(p, o)| (IpNet::V4(p), *o)),
            IpNet::V6(n) => self
                .trie6
                .children(&n)
                .next()
                .map(|(p, o)| (IpNet::V6(p), *o)),
        }
    }

    /// Whether `net` overlaps our address space (it holds, or lies in, one of our prefixes).
    pub fn overlaps_net(&self, net: IpNet) -> bool {
        let net = net.trunc();
        match net {
            IpNet::V4(n) => {
                let (s, e) = (u32::from(n.network()), u32::from(n.broadcast()));
                let i = self.v4.partition_point(|r| r.0 <= e);
                i > 0 && self.v4[i - 1].1 >= s
            }
            IpNet::V6(n) => {
                let (s, e) = (u128::from(n.network()), u128::from(n.broadcast()));
                let i = self.v6.partition_point(|r| r.0 <= e);
                i > 0 && self.v6[i - 1].1 >= s
            }
        }
    }

    /// The domain of ours that `host` equals or lies under, matched on label boundaries.
    pub fn match_domain(&self, host: &str) -> Option<&str> {
        if self.domains.is_empty() {
            return None;
        }
        let h = host.trim().trim_end_matches('.');
        let lower;
        let h = if h.bytes().any(|b| b.is_ascii_uppercase()) {
            lower = h.to_ascii_lowercase();
            lower.as_str()
        } else {
            h
        };
        let mut rest = h;
        loop {
            if let Some(d) = self.domains.get(rest) {
                return Some(d.as_str());
            }
            match rest.find('.') {
                Some(i) => rest = &rest[i + 1..],
                None => return None,
            }
        }
    }

    /// Whether a mail address is ours (listed, or on one of our domains).
    pub fn contains_email(&self, email: &str) -> bool {
        let e = email.trim().to_ascii_lowercase();
        if self.emails.contains(&e) {
            return true;
        }
        e.rsplit_once('@')
            .is_some_and(|(_, d)| self.match_domain(d).is_some())
    }

    /// Whether an ASN is one of ours.
    pub fn contains_asn(&self, asn: u32) -> bool {
        self.asns.contains(&asn)
    }

    /// Number of merged IPv4 and IPv6 ranges (for diagnostics and benchmarks).
    pub fn range_counts(&self) -> (usize, usize) {
        (self.v4.len(), self.v6.len())
    }
}

impl ScopeSnapshot {
    /// Every prefix with its origin, sorted and without duplicates.
    pub fn all_prefixes(&self) -> Vec<IpNet> {
        let mut v: Vec<IpNet> = self
            .asns
            .iter()
            .flat_map(|a| a.prefixes.iter().copied())
            .chain(self.prefixes.iter().copied())
            .collect();
        v.sort();
        v.dedup();
        v
    }
}

/// Builds the snapshot from the config and the ASN prefixes cached in the store, without any
/// network access. With no config, the last snapshot saved in the store is used.
pub fn load(cfg: Option<&Config>, store: &dyn Store) -> Result<ScopeSnapshot, store::StoreError> {
    let Some(cfg) = cfg else {
        return Ok(store::state_get_json(store, SNAPSHOT_KEY)?.unwrap_or_default());
    };
    let mut asns = Vec::new();
    for a in &cfg.organisation.asns {
        let cached: Option<AsnPrefixes> = store::state_get_json(store, &asn_key(a.0))?;
        asns.push(cached.unwrap_or(AsnPrefixes {
            asn: a.0,
            ..Default::default()
        }));
    }
    Ok(ScopeSnapshot {
        asns,
        prefixes: cfg.organisation.prefixes.clone(),
        domains: cfg
            .organisation
            .domains
            .iter()
            .map(|d| d.0.clone())
            .collect(),
        emails: cfg
            .organisation
            .emails
            .iter()
            .map(|e| e.trim().to_ascii_lowercase())
            .collect(),
    })
}

fn asn_key(asn: u32) -> String {
    format!("scope/asn/{asn}")
}

/// Outcome of a refresh, per ASN.
#[derive(Debug, Clone, Serialize)]
pub struct RefreshReport {
    pub asn: u32,
    pub refreshed: bool,
    pub prefixes: usize,
    pub error: Option<String>,
}

/// Refreshes the announced prefixes of every configured ASN that is due (older than
/// `[scope] refresh`, or all with `force`), keeping the cached prefixes when RIPEstat fails or
/// suddenly returns none. Saves the snapshot in the store and returns it.
pub async fn refresh(
    cfg: &Config,
    store: &Arc<dyn Store>,
    http: &HttpClient,
    now: DateTime<Utc>,
    force: bool,
) -> Result<(ScopeSnapshot, Vec<RefreshReport>), store::StoreError> {
    let keys: Vec<String> = cfg.organisation.asns.iter().map(|a| asn_key(a.0)).collect();
    let cached: Vec<Option<AsnPrefixes>> = store::bridge::blocking(store, move |s| {
        keys.iter().map(|k| store::state_get_json(s, k)).collect()
    })
    .await?;
    let mut reports = Vec::new();
    let mut refreshed = Vec::new();
    for (a, cached) in cfg.organisation.asns.iter().zip(cached) {
        let key = asn_key(a.0);
        let mut entry: AsnPrefixes = cached.unwrap_or(AsnPrefixes {
            asn: a.0,
            ..Default::default()
        });
        let due = force
            || entry
                .refreshed_at
                .is_none_or(|t| now - t >= cfg.scope.refresh.chrono());
        if !due {
            continue;
        }
        entry.attempted_at = Some(now);
        let r = ripestat::announced_prefixes(http, &cfg.scope.ripestat_url, a.0).await;
        let report = match r {
            Ok(p) if p.is_empty() && !entry.prefixes.is_empty() => {
                let msg = format!(
                    "RIPEstat lists no announced prefix for AS{}; keeping the {} cached ones",
                    a.0,
                    entry.prefixes.len()
                );
                tracing::warn!("{msg}");
                entry.last_error = Some(msg.clone());
                RefreshReport {
                    asn: a.0,
                    refreshed: false,
                    prefixes: entry.prefixes.len(),
                    error: Some(msg),
                }
            }
            Ok(p) if p.is_empty() => {
                let msg = format!(
                    "RIPEstat lists no announced prefix for AS{}: no list can match anything \
                     of it (is the ASN right? add its prefixes to `organisation.prefixes` if \
                     it is not announced)",
                    a.0
                );
                tracing::warn!("{msg}");
                entry.prefixes = p;
                entry.refreshed_at = Some(now);
                entry.last_error = Some(msg.clone());
                RefreshReport {
                    asn: a.0,
                    refreshed: true,
                    prefixes: 0,
                    error: Some(msg),
                }
            }
            Ok(p) => {
                entry.prefixes = p;
                entry.refreshed_at = Some(now);
                entry.last_error = None;
                RefreshReport {
                    asn: a.0,
                    refreshed: true,
                    prefixes: entry.prefixes.len(),
                    error: None,
                }
            }
            Err(e) => {
                let msg = format!(
                    "refreshing AS{} from RIPEstat failed ({e}); keeping the {} cached prefixes",
                    a.0,
                    entry.prefixes.len()
                );
                tracing::warn!("{}", crate::text::Clean(&msg));
                entry.last_error = Some(e.to_string());
                RefreshReport {
                    asn: a.0,
                    refreshed: false,
                    prefixes: entry.prefixes.len(),
                    error: Some(msg),
                }
            }
        };
        refreshed.push((key, entry));
        reports.push(report);
    }
    let cfg = cfg.clone();
    let snap = store::bridge::blocking(store, move |s| {
        for (key, entry) in &refreshed {
            store::state_put_json(s, key, entry)?;
        }
        let snap = load(Some(&cfg), s)?;
        store::state_put_json(s, SNAPSHOT_KEY, &snap)?;
        Ok(snap)
    })
    .await?;
    Ok((snap, reports))
}

/// Stamps scope on findings that carry an IP, network, domain or e-mail: `in_scope` plus
/// `extra.matched_prefix` / `extra.matched_asn` / `extra.matched_domain` where found.
pub fn mark_scope(f: &mut crate::finding::Finding, scope: &ScopeMatcher) {
    let m = ScopeMark::of(&f.view(), scope);
    if let Some(p) = m.prefix {
        f.set_extra("matched_prefix", p.to_string());
    }
    if let Some(a) = m.asn {
        f.set_extra("matched_asn", a);
    }
    if let Some(d) = m.domain {
        f.set_extra("matched_domain", d.to_string());
    }
    f.in_scope = m.in_scope;
}

/// What [`mark_scope`] stamps, for parsers that build a [`crate::finding::FindingView`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScopeMark<'s> {
    pub in_scope: bool,
    /// `extra.matched_prefix`: our prefix holding the finding's IP.
    pub prefix: Option<ipnet::IpNet>,
    /// `extra.matched_asn`: our ASN that announces that prefix.
    pub asn: Option<u32>,
    /// `extra.matched_domain`: our domain the finding's domain lies under.
    pub domain: Option<&'s str>,
}

impl<'s> ScopeMark<'s> {
    /// Matches the indicators of `f` against `scope`: IP, else network, else domain, else
    /// e-mail, else (for findings about an AS only) the ASN.
    pub fn of(f: &crate::finding::FindingView<'_>, scope: &'s ScopeMatcher) -> Self {
        let mut m = ScopeMark {
            in_scope: false,
            prefix: None,
            asn: None,
            domain: None,
        };
        if let Some(ip) = f.ip
            && let Some((net, origin)) = scope.match_ip(ip)
        {
            m.in_scope = true;
            m.prefix = Some(net);
            if let Origin::Asn(a) = origin {
                m.asn = Some(a);
            }
        }
        if !m.in_scope
            && let Some(n) = f.network
        {
            m.in_scope = scope.overlaps_net(n);
        }
        if !m.in_scope
            && let Some(d) = f.domain
            && let Some(hit) = scope.match_domain(d)
        {
            m.in_scope = true;
            m.domain = Some(hit);
        }
        if !m.in_scope
            && let Some(e) = f.email
        {
            m.in_scope = scope.contains_email(e);
        }
        if !m.in_scope
            && let Some(a) = f.asn
        {
            m.in_scope = f.ip.is_none() && f.network.is_none() && scope.contains_asn(a);
        }
        m
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snap() -> ScopeSnapshot {
        ScopeSnapshot {
            asns: vec![AsnPrefixes {
                asn: 64496,
                prefixes: vec![
                    "192.0.2.0/24".parse().unwrap(),
                    "2001:db8::/32".parse().unwrap(),
                ],
                ..Default::default()
            }],
            prefixes: vec![
                "198.51.100.0/25".parse().unwrap(),
                "198.51.100.128/25".parse().unwrap(),
                "192.0.2.128/26".parse().unwrap(),
            ],
            domains: vec!["example.org".into()],
            emails: vec!["ceo@partner.example".into()],
        }
    }

    #[test]
    fn ip_membership_and_attribution() {
        let m = ScopeMatcher::new(&snap());
        assert_eq!(m.range_counts(), (2, 1), "adjacent and nested ranges merge");
        for ip in [
            "192.0.2.0",
            "192.0.2.255",
            "198.51.100.200",
            "2001:db8::1",
            "::ffff:192.0.2.9",
        ] {
            assert!(m.contains_ip(ip.parse().unwrap()), "{ip}");
        }
        for ip in [
            "192.0.1.255",
            "198.51.101.0",
            "2001:db9::1",
            "0.0.0.0",
            "255.255.255.255",
        ] {
            assert!(!m.contains_ip(ip.parse().unwrap()), "{ip}");
        }
        let (net, origin) = m.match_ip("192.0.2.130".parse().unwrap()).unwrap();
        assert_eq!(net.to_string(), "192.0.2.128/26");
        assert_eq!(origin, Origin::Configured);
        let (net, origin) = m.match_ip("192.0.2.1".parse().unwrap()).unwrap();
        assert_eq!(net.to_string(), "192.0.2.0/24");
        assert_eq!(origin, Origin::Asn(64496));
    }

    #[test]
    fn network_overlap() {
        let m = ScopeMatcher::new(&snap());
        assert!(m.overlaps_net("192.0.0.0/16".parse().unwrap()));
        assert!(m.overlaps_net("192.0.2.64/28".parse().unwrap()));
        assert!(!m.overlaps_net("10.0.0.0/8".parse().unwrap()));
    }

    #[test]
    fn domains_on_label_boundary() {
        let m = ScopeMatcher::new(&snap());
        assert_eq!(m.match_domain("example.org"), Some("example.org"));
        assert_eq!(m.match_domain("WWW.Shop.Example.org."), Some("example.org"));
        assert_eq!(m.match_domain("badexample.org"), None);
        assert_eq!(m.match_domain("example.org.evil.com"), None);
        assert!(m.contains_email("Alice@mail.example.org"));
        assert!(m.contains_email("ceo@partner.example"));
        assert!(!m.contains_email("bob@partner.example"));
    }

    #[test]
    fn range_merge_handles_extremes() {
        let v = merge_ranges(vec![(0u32, 10), (11, 20), (u32::MAX - 1, u32::MAX), (5, 6)]);
        assert_eq!(v, vec![(0, 20), (u32::MAX - 1, u32::MAX)]);
        assert!(in_ranges(&v, u32::MAX));
        assert!(!in_ranges(&v, 21));
    }
}

/// Why a worklist filter's names could not be filled in.
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    #[error(transparent)]
    Store(#[from] store::StoreError),
    /// `--team` names no team, zone or route.
    #[error(
        "--team: no [[flows.teams]], [[flows.zones]] or [[digest.routes]] is named `{name}` ({known})"
    )]
    UnknownTeam { name: String, known: String },
}

/// Fills in what a worklist filter's names stand for: the prefixes its ASNs announce (the
/// cached scope snapshot) and those of its teams, zones and routes (`Config::teams`). The one
/// place `outwatch list` and the web view do it.
pub fn resolve_filter(
    cfg: Option<&Config>,
    store: &dyn Store,
    filter: &mut crate::store::Filter,
) -> Result<(), ResolveError> {
    if !filter.asn.is_empty() {
        let snap = load(cfg, store)?;
        let nets: Vec<IpNet> = snap
            .asns
            .iter()
            .filter(|x| filter.asn.contains(&x.asn))
            .flat_map(|x| x.prefixes.iter().copied())
            .collect();
        filter.asn_prefixes = IpNet::aggregate(&nets);
    }
    if !filter.team.is_empty() {
        let groups = cfg.map(|c| c.teams()).unwrap_or_default();
        let mut nets = Vec::new();
        for name in &filter.team {
            if !groups.iter().any(|(n, _)| n == name) {
                let known: Vec<&str> = groups.iter().map(|(n, _)| *n).collect();
                return Err(ResolveError::UnknownTeam {
                    name: crate::text::sanitize(name).into_owned(),
                    known: if known.is_empty() {
                        "the config names none".to_string()
                    } else {
                        format!("known: {}", known.join(", "))
                    },
                });
            }
            nets.extend(
                groups
                    .iter()
                    .filter(|(n, _)| n == name)
                    .flat_map(|(_, p)| p.iter().copied()),
            );
        }
        filter.team_prefixes = IpNet::aggregate(&nets);
    }
    Ok(())
}
