//! `outwatch lookup`: everything known about an IP, a prefix, a domain, a mail address or an ASN.

use crate::outln;
use std::net::IpAddr;
use std::process::ExitCode;

use chrono::{DateTime, NaiveDate, Utc};
use ipnet::IpNet;
use serde_json::{Value, json};

use crate::app::App;
use crate::cli::LookupArgs;
use crate::config::{Asn, DomainName};
use crate::error::CliError;
use crate::finding::Finding;
use crate::output::{print_json, table};
use crate::scope::{self, ScopeMatcher};
use crate::store::{Query, QueryOptions};
use crate::text::clip;

/// Parses what the user typed into a query; `Err` says what is wrong.
pub fn parse_query(s: &str) -> Result<Query, String> {
    let t = s.trim();
    if t.is_empty() {
        return Err("the query is empty".into());
    }
    if let Ok(ip) = t.parse::<IpAddr>() {
        return Ok(Query::Ip(ip));
    }
    if t.contains('/') {
        return t
            .parse::<IpNet>()
            .map(|n| Query::Net(n.trunc()))
            .map_err(|_| format!("`{t}` is not a valid prefix (write it like 192.0.2.0/24)"));
    }
    if (t.starts_with("AS") || t.starts_with("as")) && t[2..].bytes().all(|b| b.is_ascii_digit()) {
        return t.parse::<Asn>().map(|a| Query::Asn(a.0));
    }
    if let Some((local, domain)) = t.rsplit_once('@') {
        if local.is_empty() {
            return Err(format!("`{t}` is not a mail address"));
        }
        domain
            .parse::<DomainName>()
            .map_err(|_| format!("`{t}` is not a mail address"))?;
        return Ok(Query::Email(t.to_ascii_lowercase()));
    }
    t.parse::<DomainName>()
        .map(|d| Query::Domain(d.0))
        .map_err(|_| {
            format!(
                "`{t}` is not an IP, prefix, domain, mail address or ASN \
                 (e.g. 192.0.2.7, 192.0.2.0/24, example.org, alice@example.org, AS64496)"
            )
        })
}

/// Parses `--since`: a date (midnight UTC) or an RFC 3339 time.
pub fn parse_since(s: &str) -> Result<DateTime<Utc>, String> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&Utc));
    }
    NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .map(|d| d.and_hms_opt(0, 0, 0).expect("midnight").and_utc())
        .map_err(|_| format!("`{s}` is not a date (write YYYY-MM-DD or an RFC 3339 time)"))
}

/// Whether the query itself is inside our scope.
pub fn query_in_scope(q: &Query, m: &ScopeMatcher) -> bool {
    match q {
        Query::Ip(ip) => m.contains_ip(*ip),
        Query::Net(n) => m.overlaps_net(*n),
        Query::Domain(d) => m.match_domain(d).is_some(),
        Query::Email(e) => m.contains_email(e),
        Query::Asn(a) => m.contains_asn(*a),
    }
}

/// The JSON form of a finding in `lookup --json` (the documented contract).
pub fn finding_json(f: &Finding) -> Value {
    json!({
        "fingerprint": f.fingerprint,
        "source": f.source,
        "feed": f.feed,
        "classification": {
            "taxonomy": f.classification.taxonomy,
            "type": f.classification.kind,
            "identifier": f.classification.identifier,
        },
        "ip": f.ip.map(|i| i.to_string()),
        "network": f.network.map(|n| n.to_string()),
        "port": f.port,
        "protocol": f.protocol,
        "asn": f.asn,
        "domain": f.domain,
        "url": f.url,
        "email": f.email,
        "severity": f.severity,
        "status": f.status,
        "in_scope": f.in_scope,
        "time_source": f.time_source.map(rfc3339),
        "first_seen": rfc3339(f.first_seen),
        "last_seen": rfc3339(f.last_seen),
        "times_seen": f.times_seen,
        "extra": f.extra,
        "raw": f.raw,
    })
}

/// RFC 3339, UTC, seconds precision, `Z` suffix.
pub fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

pub fn run(app: &App, a: &LookupArgs) -> Result<ExitCode, CliError> {
    let q = parse_query(&a.query).map_err(CliError::usage)?;
    let since = a
        .since
        .as_deref()
        .map(parse_since)
        .transpose()
        .map_err(CliError::usage)?;
    let store = app.open_read()?;
    let opts = QueryOptions {
        since,
        include_resolved: a.all,
        limit: a.limit,
    };
    let findings = store.query(&q, &opts)?;
    let snap = scope::load(app.config.as_ref(), store.as_ref())?;
    let in_scope = query_in_scope(&q, &ScopeMatcher::new(&snap));
    if a.json {
        print_json(&json!({
            "query": a.query.trim(),
            "in_scope": in_scope,
            "findings": findings.iter().map(finding_json).collect::<Vec<_>>(),
        }))?;
        return Ok(ExitCode::SUCCESS);
    }
    let scope_note = if in_scope {
        "in your scope"
    } else {
        "not in your scope"
    };
    if findings.is_empty() {
        outln!(
            "{}: nothing known ({scope_note}){}",
            a.query.trim(),
            if a.all {
                ""
            } else {
                "; --all includes resolved findings"
            }
        );
        return Ok(ExitCode::SUCCESS);
    }
    outln!(
        "{}: {} finding(s), {scope_note}, newest first",
        a.query.trim(),
        findings.len()
    );
    let mut t = table(&[
        "last seen",
        "status",
        "severity",
        "source / feed",
        "what",
        "indicator",
        "seen",
    ]);
    for f in &findings {
        t.add_row(vec![
            f.last_seen.format("%Y-%m-%d %H:%M").to_string(),
            f.status.to_string(),
            f.severity.to_string(),
            clip(&format!("{} / {}", f.source, f.feed), 40),
            clip(
                &format!(
                    "{} ({})",
                    f.classification.kind, f.classification.identifier
                ),
                40,
            ),
            clip(&f.indicator(), 60),
            f.times_seen.to_string(),
        ]);
    }
    outln!("{t}");
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

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
        ] {
            assert!(parse_query(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn since_forms() {
        assert_eq!(
            rfc3339(parse_since("2026-11-01").unwrap()),
            "2026-11-01T00:00:00Z"
        );
        assert!(parse_since("yesterday").is_err());
    }
}
