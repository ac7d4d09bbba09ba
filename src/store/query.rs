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
}
