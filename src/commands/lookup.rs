//! `outwatch lookup`: everything known about an IP, a prefix, a domain, a mail address or an ASN.

use crate::outln;
use std::net::IpAddr;
use std::process::ExitCode;

use chrono::{DateTime, NaiveDate, Utc};
use ipnet::IpNet;
use serde_json::{Value, json};

use crate::app::App;
use crate::cli::LookupArgs;
use crate::commands::indicator_sets;
use crate::config::{Asn, DomainName};
use crate::error::CliError;
use crate::finding::Finding;
use crate::output::{print_json, table};
use crate::scope::{self, ScopeMatcher};
use crate::store::{Query, QueryOptions};
use crate::text::{clip, clip_middle, sanitize};
use comfy_table::Cell;

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
    // Dotted numbers (`999.1.1.1`, `1.2.3`) are a mistyped address, not a domain: no top-level
    // domain is all digits.
    if t.trim_end_matches('.')
        .rsplit('.')
        .next()
        .is_some_and(|tld| tld.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err(format!(
            "`{t}` is not an IP address (four numbers 0-255, like 192.0.2.7) nor a domain"
        ));
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

use crate::output::rfc3339;

/// Findings for people: most severe first, then newest first.
pub fn sort_for_people(findings: &mut [Finding]) {
    findings.sort_by(|a, b| {
        a.severity
            .cmp(&b.severity)
            .then(b.last_seen.cmp(&a.last_seen))
    });
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
    let mut findings = store.query(&q, &opts)?;
    let snap = scope::load(app.config.as_ref(), store.as_ref())?;
    // An ASN: also the findings inside the prefixes it announces (cached snapshot).
    let mut asn_prefixes = 0;
    if let Query::Asn(asn) = q {
        let mut seen: std::collections::HashSet<String> =
            findings.iter().map(|f| f.fingerprint.clone()).collect();
        for p in snap
            .asns
            .iter()
            .filter(|x| x.asn == asn)
            .flat_map(|x| &x.prefixes)
        {
            asn_prefixes += 1;
            for f in store.query(&Query::Net(*p), &opts)? {
                if seen.insert(f.fingerprint.clone()) {
                    findings.push(f);
                }
            }
        }
        if let Some(limit) = a.limit {
            sort_for_people(&mut findings);
            findings.truncate(limit);
        }
    }
    let in_scope = query_in_scope(&q, &ScopeMatcher::new(&snap));
    let listed = indicator_sets::listed_by(store.as_ref(), &q)?;
    if a.json {
        print_json(&json!({
            "query": a.query.trim(),
            "in_scope": in_scope,
            "findings": findings.iter().map(finding_json).collect::<Vec<_>>(),
            "listed_by": indicator_sets::listed_json(&listed),
        }))?;
        return Ok(ExitCode::SUCCESS);
    }
    let scope_note = if in_scope {
        "in your scope"
    } else {
        "not in your scope"
    };
    let asn_note = match (&q, asn_prefixes) {
        (Query::Asn(_), 0) => ", no announced prefixes cached (`outwatch scope --refresh`)".into(),
        (Query::Asn(_), n) => format!(", with its {n} prefix(es)"),
        _ => String::new(),
    };
    if findings.is_empty() {
        outln!(
            "{}: {} ({scope_note}{asn_note}){}",
            sanitize(a.query.trim()),
            if listed.is_empty() {
                "nothing known"
            } else {
                "no findings"
            },
            if a.all {
                ""
            } else {
                "; --all includes resolved findings"
            }
        );
        indicator_sets::print_listed(&listed)?;
        return Ok(ExitCode::SUCCESS);
    }
    sort_for_people(&mut findings);
    outln!(
        "{}: {} finding(s), {scope_note}{asn_note}; most severe first, then newest",
        sanitize(a.query.trim()),
        findings.len()
    );
    let colour = crate::style::stdout_colour();
    // Four columns fit 80: the indicator and the time are never broken (long indicators are
    // shortened in the middle), "what" wraps at spaces.
    let mut t = table(&["severity", "indicator", "what (source)", "last seen"]);
    crate::output::style_table(&mut t, colour);
    for f in &findings {
        let d = sanitize(&f.distinguishing()).into_owned();
        let source = if f.source == f.feed || f.source == "shadowserver" {
            f.source.clone()
        } else {
            format!("{} {}", f.source, f.feed)
        };
        let kind = f.classification.kind.as_str();
        let kind = if kind == "blacklist" {
            "blocklist"
        } else {
            kind
        };
        let what = if d.is_empty() {
            format!("{kind} ({source})")
        } else {
            format!("{kind}: {d} ({source})")
        };
        let mut seen = f.last_seen.format("%Y-%m-%d\n%H:%M").to_string();
        if f.times_seen > 1 {
            seen.push_str(&format!(" {}×", f.times_seen));
        }
        seen.push_str(&format!("\n{}", f.status));
        t.add_row(vec![
            crate::style::severity_cell(f.severity, colour),
            Cell::new(clip_middle(&f.indicator(), 28)),
            Cell::new(clip(&what, 120)),
            Cell::new(seen),
        ]);
    }
    crate::output::keep_whole(&mut t, &[0, 1, 3]);
    outln!("{t}");
    indicator_sets::print_listed(&listed)?;
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
            "999.1.1.1",
            "1.2.3",
            "192.0.2.7.",
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
