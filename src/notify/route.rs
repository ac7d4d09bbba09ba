//! Routing a finding to its contact: the most specific match wins — the longest prefix holding
//! its address (or network), then its domain (equal or a subdomain, on label boundaries, the
//! longest first), then its ASN. Prefixes sit in a prefix trie per family, as in
//! [`crate::scope::ScopeMatcher`]; domains and ASNs in hash maps. On a tie (two contacts own the
//! same prefix, domain or ASN) the one listed first wins: `[[contacts]]` before the file. Last,
//! for a finding none of them owns, the RIPE abuse contact looked up for its address
//! ([`Router::add_abuse_c`], `[notify] ripe_abuse_c`).

use std::collections::HashMap;
use std::net::IpAddr;

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use prefix_trie::PrefixMap;
use serde::Serialize;

use super::contacts::Contact;
use crate::finding::Finding;

/// Why a finding went to its contact.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase", tag = "by", content = "value")]
pub enum Matched {
    Prefix(IpNet),
    Domain(String),
    Asn(u32),
    /// The RIPE database's abuse contact of this address.
    AbuseC(IpAddr),
}

impl std::fmt::Display for Matched {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Matched::Prefix(p) => write!(f, "prefix {p}"),
            Matched::Domain(d) => write!(f, "domain {d}"),
            Matched::Asn(a) => write!(f, "AS{a}"),
            Matched::AbuseC(ip) => write!(f, "RIPE abuse-c of {ip}"),
        }
    }
}

/// The routing table of a list of contacts (indexes into that list).
#[derive(Debug, Default)]
pub struct Router {
    v4: PrefixMap<Ipv4Net, u32>,
    v6: PrefixMap<Ipv6Net, u32>,
    domains: HashMap<String, u32>,
    asns: HashMap<u32, u32>,
    /// Addresses whose RIPE abuse contact is known: consulted last.
    abuse_c: HashMap<IpAddr, u32>,
}

impl Router {
    /// Builds the table; the first contact to claim a prefix, domain or ASN keeps it.
    pub fn new(contacts: &[Contact]) -> Router {
        let mut r = Router::default();
        for (i, c) in contacts.iter().enumerate() {
            let i = i as u32;
            for p in &c.prefixes {
                match p.trunc() {
                    IpNet::V4(n) => {
                        if r.v4.get(&n).is_none() {
                            r.v4.insert(n, i);
                        }
                    }
                    IpNet::V6(n) => {
                        if r.v6.get(&n).is_none() {
                            r.v6.insert(n, i);
                        }
                    }
                }
            }
            for d in &c.domains {
                r.domains.entry(d.clone()).or_insert(i);
            }
            for a in &c.asns {
                r.asns.entry(*a).or_insert(i);
            }
        }
        r
    }

    /// The table of `contacts`, with their RIPE abuse contacts' addresses.
    pub fn for_contacts(contacts: &super::contacts::Contacts) -> Router {
        let mut r = Router::new(&contacts.list);
        for (ip, i) in &contacts.abuse_c {
            r.add_abuse_c(*ip, *i);
        }
        r
    }

    /// Routes `ip` to contact `i` when no prefix, domain or ASN names a contact.
    pub fn add_abuse_c(&mut self, ip: IpAddr, i: usize) {
        self.abuse_c.insert(ip, i as u32);
    }

    /// The contact (index) owning an address, with the longest prefix holding it.
    pub fn by_ip(&self, ip: IpAddr) -> Option<(usize, IpNet)> {
        match ip {
            IpAddr::V4(a) => self
                .v4
                .get_lpm(&Ipv4Net::from(a))
                .map(|(n, i)| (*i as usize, IpNet::V4(n))),
            IpAddr::V6(a) => self
                .v6
                .get_lpm(&Ipv6Net::from(a))
                .map(|(n, i)| (*i as usize, IpNet::V6(n))),
        }
    }

    /// The contact owning a whole network (the longest prefix holding all of it).
    pub fn by_net(&self, net: IpNet) -> Option<(usize, IpNet)> {
        match net.trunc() {
            IpNet::V4(n) => self
                .v4
                .get_lpm(&n)
                .map(|(n, i)| (*i as usize, IpNet::V4(n))),
            IpNet::V6(n) => self
                .v6
                .get_lpm(&n)
                .map(|(n, i)| (*i as usize, IpNet::V6(n))),
        }
    }

    /// The contact owning a host name: the host itself or its closest parent domain.
    pub fn by_domain(&self, host: &str) -> Option<(usize, &str)> {
        if self.domains.is_empty() {
            return None;
        }
        let h = host.trim().trim_end_matches('.').to_ascii_lowercase();
        let mut rest = h.as_str();
        loop {
            if let Some((d, i)) = self.domains.get_key_value(rest) {
                return Some((*i as usize, d.as_str()));
            }
            rest = &rest[rest.find('.')? + 1..];
        }
    }

    /// The contact owning an ASN.
    pub fn by_asn(&self, asn: u32) -> Option<usize> {
        self.asns.get(&asn).map(|i| *i as usize)
    }

    /// The contact a finding goes to, and why; `None`: no contact owns it.
    pub fn route(&self, f: &Finding) -> Option<(usize, Matched)> {
        let by_prefix = match (f.ip, f.network) {
            (Some(ip), _) => self.by_ip(ip),
            (None, Some(net)) => self.by_net(net),
            (None, None) => None,
        };
        if let Some((i, p)) = by_prefix {
            return Some((i, Matched::Prefix(p)));
        }
        for host in hosts(f) {
            if let Some((i, d)) = self.by_domain(host) {
                return Some((i, Matched::Domain(d.to_string())));
            }
        }
        if let Some(found) = f
            .asn
            .and_then(|a| self.by_asn(a).map(|i| (i, Matched::Asn(a))))
        {
            return Some(found);
        }
        let ip = f.ip?;
        self.abuse_c
            .get(&ip)
            .map(|i| (*i as usize, Matched::AbuseC(ip)))
    }

    /// Whether a contact of the config or the file (not a RIPE abuse contact) owns `f`.
    pub fn owned(&self, f: &Finding) -> bool {
        self.route(f)
            .is_some_and(|(_, m)| !matches!(m, Matched::AbuseC(_)))
    }
}

/// The host names a finding is about: its domain, its mail address's domain, its URL's host.
fn hosts(f: &Finding) -> impl Iterator<Item = &str> {
    let email = f
        .email
        .as_deref()
        .and_then(|e| e.rsplit_once('@'))
        .map(|(_, d)| d);
    let url = f.url.as_deref().and_then(url_host);
    f.domain.as_deref().into_iter().chain(email).chain(url)
}

/// The host of `scheme://[user@]host[:port]/...`, without parsing the rest.
fn url_host(u: &str) -> Option<&str> {
    let rest = u.split_once("://").map_or(u, |(_, r)| r);
    let auth = rest.split(['/', '?', '#']).next()?;
    let host = auth.rsplit_once('@').map_or(auth, |(_, h)| h);
    let host = host.split(':').next()?;
    (!host.is_empty()).then_some(host)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::finding::{Classification, Severity};
    use crate::notify::contacts::{Defined, Policy};

    fn contact(name: &str, prefixes: &[&str], domains: &[&str], asns: &[u32]) -> Contact {
        Contact {
            name: name.into(),
            emails: vec![format!("{name}@example.org")],
            prefixes: prefixes.iter().map(|p| p.parse().unwrap()).collect(),
            asns: asns.to_vec(),
            domains: domains.iter().map(|d| d.to_string()).collect(),
            policy: Policy::resolve(&Default::default(), &Default::default()),
            defined: Defined::Config(1),
        }
    }

    fn finding() -> Finding {
        Finding::new(
            "s",
            "f",
            Classification::new("", "c2-server", ""),
            Severity::High,
        )
    }

    #[test]
    fn most_specific_match_wins() {
        let cs = vec![
            contact(
                "isp",
                &["192.0.2.0/24", "2001:db8::/32"],
                &["example.net"],
                &[64500],
            ),
            contact("customer", &["192.0.2.128/25"], &["shop.example.net"], &[]),
            contact("dup", &["192.0.2.128/25"], &["shop.example.net"], &[64500]),
        ];
        let r = Router::new(&cs);
        let mut f = finding();
        f.ip = Some("192.0.2.200".parse().unwrap());
        f.domain = Some("www.shop.example.net".into());
        f.asn = Some(64500);
        assert_eq!(
            r.route(&f),
            Some((1, Matched::Prefix("192.0.2.128/25".parse().unwrap())))
        );
        f.ip = Some("192.0.2.7".parse().unwrap());
        assert_eq!(r.route(&f).unwrap().0, 0);
        f.ip = Some("203.0.113.1".parse().unwrap());
        assert_eq!(
            r.route(&f),
            Some((1, Matched::Domain("shop.example.net".into())))
        );
        // Label boundary: `badshop.example.net` is not under `shop.example.net`.
        f.domain = Some("badshop.example.net".into());
        assert_eq!(
            r.route(&f).unwrap(),
            (0, Matched::Domain("example.net".into()))
        );
        f.domain = Some("other.example".into());
        assert_eq!(r.route(&f), Some((0, Matched::Asn(64500))));
        f.asn = Some(1);
        assert_eq!(r.route(&f), None);
        f.ip = Some("2001:db8::1".parse().unwrap());
        assert_eq!(r.route(&f).unwrap().0, 0);
        let mut n = finding();
        n.network = Some("192.0.2.128/26".parse().unwrap());
        assert_eq!(r.route(&n).unwrap().0, 1);
        let mut m = finding();
        m.email = Some("bob@SHOP.example.net".into());
        assert_eq!(r.route(&m).unwrap().0, 1);
        let mut u = finding();
        u.url = Some("http://user@a.shop.example.net:8080/x?y".into());
        assert_eq!(r.route(&u).unwrap().0, 1);
    }
}
