//! What a lookup asks for ([`Query`], parsed from what the user typed), its filters, and what a
//! streamed query reports.

use std::net::IpAddr;
use std::ops::ControlFlow;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use ipnet::IpNet;
use serde::Serialize;

use crate::finding::domain_name;

/// What a lookup asks for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", content = "value", rename_all = "lowercase")]
pub enum Query {
    /// Findings about this address, or about a network containing it.
    Ip(IpAddr),
    /// Findings about addresses inside, or networks overlapping, this network.
    Net(IpNet),
    /// Findings about this domain or any of its subdomains (and e-mail addresses on them).
    Domain(String),
    /// Findings about this e-mail address.
    Email(String),
    /// Findings about this autonomous system.
    Asn(u32),
}

/// Filters applied to a lookup.
#[derive(Debug, Clone, Default)]
pub struct QueryOptions {
    /// Only findings last seen at or after this time.
    pub since: Option<DateTime<Utc>>,
    /// Include resolved findings.
    pub include_resolved: bool,
    /// At most this many findings (newest first); `None` for all. Honoured by
    /// [`super::Store::query`]; [`super::Store::query_each`] hands every finding and leaves stopping to its
    /// callback.
    pub limit: Option<usize>,
}

/// What a streamed query ([`super::Store::query_each`]) handed over.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueryTotals {
    /// Findings handed to the callback.
    pub handed: usize,
    /// Whether the callback stopped the walk before its end.
    pub stopped: bool,
}

/// What a [`super::Store::query_each`] callback returns: go on, or stop the walk.
pub type Flow = super::Result<ControlFlow<()>>;

/// What the user typed is no query; the message says why, in words for people.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct BadQuery(pub String);

impl FromStr for Query {
    type Err = BadQuery;

    /// What the user typed: an IP, a prefix (`192.0.2.0/24`, host bits dropped), `AS64496`, a
    /// mail address or a domain; `Err` says what is wrong in words for people.
    fn from_str(s: &str) -> Result<Query, BadQuery> {
        parse(s)
    }
}

/// What a person pasted into `lookup`: the store [`Query`], and what narrows its findings: a
/// port (`192.0.2.7:623`, `[2001:db8::20]:443`, as tables print them) or a URL
/// (`https://host/path`: the findings about its host, the host a domain or an IP literal).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Pasted {
    pub query: Query,
    /// Only findings on this port.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// The URL pasted, when it was one (its host is the query).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

impl FromStr for Pasted {
    type Err = BadQuery;

    /// Everything [`Query`] reads, plus `IP:port`, `[v6]:port`, `http(s)://host/path` and
    /// `ASN64496`.
    fn from_str(s: &str) -> Result<Pasted, BadQuery> {
        let t = s.trim();
        let plain = |query| Pasted {
            query,
            port: None,
            url: None,
        };
        if let Some((scheme, _)) = t.split_once("://") {
            if scheme.is_empty()
                || !scheme
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"+.-".contains(&b))
            {
                return Err(BadQuery(format!(
                    "`{t}` is not a URL (write it like https://example.org/path)"
                )));
            }
            let host = super::filter::url_host(t)
                .ok_or_else(|| BadQuery(format!("`{t}` names no host")))?;
            let query = match host.parse::<IpAddr>() {
                Ok(ip) => Query::Ip(ip),
                Err(_) => Query::Domain(domain_name(&host).ok_or_else(|| {
                    BadQuery(format!(
                        "the host of `{t}` is not a domain or an IP address"
                    ))
                })?),
            };
            return Ok(Pasted {
                query,
                port: None,
                url: Some(t.to_string()),
            });
        }
        let port = |p: &str| {
            p.parse::<u16>()
                .map_err(|_| BadQuery(format!("`{t}`: `{p}` is not a port (0-65535)")))
        };
        if let Some(rest) = t.strip_prefix('[') {
            let (ip, after) = rest.split_once(']').ok_or_else(|| {
                BadQuery(format!("`{t}` is not an address (write [2001:db8::1]:443)"))
            })?;
            let ip: IpAddr = ip
                .parse()
                .map_err(|_| BadQuery(format!("`{t}`: `{ip}` is not an IPv6 address")))?;
            return Ok(match after.strip_prefix(':') {
                Some(p) => Pasted {
                    query: Query::Ip(ip),
                    port: Some(port(p)?),
                    url: None,
                },
                None if after.is_empty() => plain(Query::Ip(ip)),
                None => {
                    return Err(BadQuery(format!(
                        "`{t}` is not an address (write [2001:db8::1]:443)"
                    )));
                }
            });
        }
        if let Some((ip, p)) = t.rsplit_once(':')
            && let Ok(ip) = ip.parse::<std::net::Ipv4Addr>()
        {
            return Ok(Pasted {
                query: Query::Ip(IpAddr::V4(ip)),
                port: Some(port(p)?),
                url: None,
            });
        }
        if let Some(n) = t
            .strip_prefix("ASN")
            .or_else(|| t.strip_prefix("asn"))
            .or_else(|| t.strip_prefix("Asn"))
        {
            return format!("AS{}", n.trim()).parse().map(plain);
        }
        t.parse().map(plain)
    }
}

impl Pasted {
    /// Whether a finding the query found is one of those asked for (its port).
    pub fn keeps(&self, f: &crate::finding::Finding) -> bool {
        self.port.is_none_or(|p| f.port == Some(p))
    }
}

/// [`Query::from_str`]'s rules.
fn parse(s: &str) -> Result<Query, BadQuery> {
    let bad = |m: String| BadQuery(m);
    {
        let t = s.trim();
        if t.is_empty() {
            return Err(bad("the query is empty".into()));
        }
        if let Ok(ip) = t.parse::<IpAddr>() {
            return Ok(Query::Ip(ip));
        }
        if t.contains('/') {
            return t
                .parse::<IpNet>()
                .map(|n| Query::Net(n.trunc()))
                .map_err(|_| {
                    bad(format!(
                        "`{t}` is not a valid prefix (write it like 192.0.2.0/24)"
                    ))
                });
        }
        if (t.starts_with("AS") || t.starts_with("as"))
            && t[2..].bytes().all(|b| b.is_ascii_digit())
        {
            return match t[2..].parse::<u32>() {
                Ok(n) if n > 0 => Ok(Query::Asn(n)),
                _ => Err(bad(format!("`{t}` is not an AS number (write AS64496)"))),
            };
        }
        if let Some((local, domain)) = t.rsplit_once('@') {
            if local.is_empty() {
                return Err(bad(format!("`{t}` is not a mail address")));
            }
            if domain_name(domain).is_none() {
                return Err(bad(format!("`{t}` is not a mail address")));
            }
            return Ok(Query::Email(t.to_ascii_lowercase()));
        }
        // Dotted numbers (`999.1.1.1`, `1.2.3`) are a mistyped address, not a domain: no top-level
        // domain is all digits.
        if t.trim_end_matches('.')
            .rsplit('.')
            .next()
            .is_some_and(|tld| tld.bytes().all(|b| b.is_ascii_digit()))
        {
            return Err(bad(format!(
                "`{t}` is not an IP address (four numbers 0-255, like 192.0.2.7) nor a domain"
            )));
        }
        domain_name(t).map(Query::Domain).ok_or_else(|| {
            bad(format!(
                "`{t}` is not an IP, prefix, domain, mail address or ASN \
                     (e.g. 192.0.2.7, 192.0.2.0/24, example.org, alice@example.org, AS64496)"
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_query(s: &str) -> Result<Query, BadQuery> {
        s.parse()
    }

    #[test]
    fn parses_every_query_kind() {
        assert!(matches!(parse_query("192.0.2.7"), Ok(Query::Ip(_))));
        assert!(matches!(parse_query("2001:db8::1"), Ok(Query::Ip(_))));
        assert_eq!(
            parse_query("192.0.2.9/24").unwrap(),
            Query::Net("192.0.2.0/24".parse().unwrap())
        );
        assert_eq!(parse_query("AS64496").unwrap(), Query::Asn(64496));
        assert_eq!(
            parse_query("Alice@Example.org").unwrap(),
            Query::Email("alice@example.org".into())
        );
        assert_eq!(
            parse_query("WWW.example.org").unwrap(),
            Query::Domain("www.example.org".into())
        );
        for bad in [
            "",
            "300.1.2.3/8",
            "192.0.2.0/33",
            "not a thing",
            "@example.org",
            "localhost",
            "999.1.1.1",
            "1.2.3",
            "192.0.2.7.",
        ] {
            assert!(parse_query(bad).is_err(), "{bad}");
        }
        assert!(parse_query("AS0").is_err());
        assert!(parse_query("AS99999999999").is_err());
    }

    fn pasted(s: &str) -> Result<Pasted, BadQuery> {
        s.parse()
    }

    #[test]
    fn what_a_table_prints_is_found() {
        let p = pasted("198.51.100.45:623").unwrap();
        assert_eq!(p.query, Query::Ip("198.51.100.45".parse().unwrap()));
        assert_eq!(p.port, Some(623));
        let p = pasted("[2001:db8::20]:443").unwrap();
        assert_eq!(p.query, Query::Ip("2001:db8::20".parse().unwrap()));
        assert_eq!(p.port, Some(443));
        assert_eq!(pasted("[2001:db8::20]").unwrap().port, None);
        assert_eq!(pasted("2001:db8::20").unwrap().port, None);
        let p = pasted("https://WWW.Example.org:8443/login?x=1").unwrap();
        assert_eq!(p.query, Query::Domain("www.example.org".into()));
        assert_eq!(
            p.url.as_deref(),
            Some("https://WWW.Example.org:8443/login?x=1")
        );
        let p = pasted("http://192.0.2.80/download/setup.exe").unwrap();
        assert_eq!(p.query, Query::Ip("192.0.2.80".parse().unwrap()));
        assert_eq!(pasted("ASN24961").unwrap().query, Query::Asn(24961));
        assert_eq!(pasted("AS24961").unwrap().query, Query::Asn(24961));
        assert_eq!(
            pasted("example.org").unwrap().query,
            Query::Domain("example.org".into())
        );
        for bad in [
            "198.51.100.45:99999",
            "198.51.100.45:",
            "[2001:db8::20]:x",
            "[2001:db8::20",
            "[192.0.2.1]x",
            "://example.org",
            "http:///path",
            "http://localhost/",
            "ASNx",
        ] {
            assert!(pasted(bad).is_err(), "{bad}");
        }
    }

    proptest::proptest! {
        #[test]
        fn anything_pasted_is_read_or_refused(s in ".{0,60}") {
            let _ = pasted(&s);
        }

        #[test]
        fn an_address_and_port_as_printed_read_back(a in proptest::prelude::any::<std::net::IpAddr>(), port in proptest::prelude::any::<u16>()) {
            let printed = match a {
                IpAddr::V6(_) => format!("[{a}]:{port}"),
                IpAddr::V4(_) => format!("{a}:{port}"),
            };
            let p = pasted(&printed).unwrap();
            proptest::prop_assert_eq!(p.query, Query::Ip(a));
            proptest::prop_assert_eq!(p.port, Some(port));
        }
    }
}
