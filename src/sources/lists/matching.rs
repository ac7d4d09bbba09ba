//! Turns list entries into findings about OUR scope: IP indicators against our prefixes, URL and
//! domain indicators by host (under our domains, or a literal IP inside our prefixes), DROP
//! networks by overlap, ASN-DROP entries by our ASNs.
//!
//! The hot path (an entry that is not ours) allocates nothing of its own: fields are borrowed
//! from the record, addresses parsed from `&str`, and the scope answered by binary search; its
//! address or network goes into the list's indicator set (a compact entry pushed on one vector,
//! a threat text allocated once per distinct text). Only entries in scope become [`Finding`]s.

use std::net::{IpAddr, SocketAddr};

use chrono::{DateTime, Utc};
use ipnet::IpNet;

use super::definition::{FeedDef, IndicatorKind};
use super::parse::{self, BodyError, Col, Cols, Pos, Record, Rejection};
use super::time::parse_time;
use crate::finding::{Classification, Finding, normalize_domain};
use crate::indicators::SetBuilder;
use crate::scope::{Origin, ScopeMatcher};
use crate::sources::RowError;

/// The outcome of reading one list body.
#[derive(Debug, Default)]
pub struct Processed {
    /// Findings about our scope (every one `in_scope`).
    pub findings: Vec<Finding>,
    /// Entries read.
    pub fetched: usize,
    pub rejected: Vec<RowError>,
    /// Malformed values of entries in scope that kept their finding (a port, a time): kept in
    /// the finding's `extra`.
    pub warnings: Vec<RowError>,
    /// Deprecation notices the list carries.
    pub notices: Vec<String>,
    /// Every entry that names an address or network, ours or not: the list's indicator set.
    pub indicators: SetBuilder,
    /// The body said where it ends and that end was found (see `parse::BodyInfo::counted`).
    pub counted: bool,
}

/// Parses `body` and keeps the entries inside `scope`. `source` is the configured feed name,
/// `location` the (key-free) URL used in `raw` pointers and rejection messages. `Err` means
/// the body as a whole is unusable (cut off, unreadable, changed layout).
pub fn process_body(
    def: &FeedDef,
    source: &str,
    body: &[u8],
    location: &str,
    scope: &ScopeMatcher,
) -> Result<Processed, BodyError> {
    let mut findings = Vec::new();
    let mut warnings = Vec::new();
    let mut indicators = SetBuilder::default();
    let mut on_row = |cols: &Cols, rec: &dyn Record, pos: Pos| -> Result<(), Rejection> {
        if let Some(mut hit) = entry(def, cols, rec, scope, &mut indicators)? {
            for message in hit.warnings.drain(..) {
                warnings.push(RowError {
                    location: format!("{location} {pos}"),
                    message,
                });
            }
            findings.push(hit.finish(def, source, location, pos, scope));
        }
        Ok(())
    };
    let info = parse::read_body(def, body, &mut on_row)?;
    let counted = info.counted;
    // A list whose entries carry no time of their own takes the list's (Spamhaus' metadata
    // `timestamp`). The time is not part of a finding's identity.
    if let Some(t) = info.time {
        for f in findings.iter_mut().filter(|f| f.time_source.is_none()) {
            f.time_source = Some(t);
        }
    }
    let rejected = info
        .rejected
        .into_iter()
        .map(|(pos, message)| RowError {
            location: format!("{location} {pos}"),
            message,
        })
        .collect();
    Ok(Processed {
        findings,
        fetched: info.entries,
        rejected,
        warnings,
        notices: info.notices,
        indicators,
        counted,
    })
}

/// An entry inside our scope, before it becomes a [`Finding`].
#[derive(Debug)]
pub struct Hit {
    ip: Option<IpAddr>,
    port: Option<u16>,
    network: Option<IpNet>,
    url: Option<String>,
    domain: Option<String>,
    asn: Option<u32>,
    kind: String,
    identifier: String,
    time: Option<DateTime<Utc>>,
    extra: Vec<(String, String)>,
    matched_asn: bool,
    /// Malformed values kept in `extra` (see [`entry`]).
    warnings: Vec<String>,
}

impl Hit {
    fn finish(
        &mut self,
        def: &FeedDef,
        source: &str,
        location: &str,
        pos: Pos,
        scope: &ScopeMatcher,
    ) -> Finding {
        let c = &def.classification;
        let severity = def
            .severity_by_type
            .get(&self.kind)
            .copied()
            .unwrap_or(def.severity);
        let taxonomy = if self.kind == c.kind {
            c.taxonomy.as_str()
        } else {
            ""
        };
        let mut f = Finding::new(
            source,
            def.feed_name(),
            Classification::new(taxonomy, &self.kind, &self.identifier),
            severity,
        );
        f.ip = self.ip;
        f.port = self.port;
        f.network = self.network;
        f.url = self.url.take();
        f.domain = self.domain.take();
        f.asn = self.asn;
        f.time_source = self.time;
        if !def.provider.is_empty() {
            f.set_extra("provider", def.provider.clone());
        }
        for (k, v) in self.extra.drain(..) {
            f.set_extra(&k, v);
        }
        f.raw = Some(format!("{location} {pos}"));
        crate::scope::mark_scope(&mut f, scope);
        // The prefix of ours holding the listed network, else one of ours inside it (a DROP
        // /16 that holds our /24).
        if let Some(n) = f.network
            && !f.extra.contains_key("matched_prefix")
            && let Some((p, origin)) = scope
                .match_ip(n.network())
                .or_else(|| scope.prefix_within(n))
        {
            f.set_extra("matched_prefix", p.to_string());
            if let Origin::Asn(a) = origin {
                f.set_extra("matched_asn", a);
            }
        }
        if self.matched_asn
            && let Some(a) = self.asn
        {
            f.in_scope = true;
            f.set_extra("matched_asn", a);
        }
        f.seal();
        f
    }
}

/// Reads one entry. `Ok(None)`: fine but not ours (or not matchable); `Err`: its identity (the
/// IP, network, URL, domain, ASN or indicator) is missing or malformed. Any other malformed
/// value of an entry in scope (a port, a time) is kept as written in `extra` under the field's
/// role (`port`, `time`) and described in the hit's warnings; entries that are not ours are
/// not checked beyond their identity. Every entry with a good identity goes into `kept` (its
/// address or network, with port and threat), ours or not.
pub fn entry(
    def: &FeedDef,
    cols: &Cols,
    rec: &dyn Record,
    scope: &ScopeMatcher,
    kept: &mut SetBuilder,
) -> Result<Option<Hit>, Rejection> {
    let get = |c: &Option<Col>| -> Option<std::borrow::Cow<'_, str>> {
        let v = rec.get(c.as_ref()?)?;
        let t = v.trim();
        if def.is_null(t) {
            return None;
        }
        Some(match v {
            std::borrow::Cow::Borrowed(b) => std::borrow::Cow::Borrowed(b.trim()),
            std::borrow::Cow::Owned(o) => std::borrow::Cow::Owned(o.trim().to_string()),
        })
    };
    let mut ip: Option<(IpAddr, Option<u16>)> = None;
    let mut network: Option<IpNet> = None;
    let mut url: Option<std::borrow::Cow<'_, str>> = None;
    let mut domain: Option<std::borrow::Cow<'_, str>> = None;
    let mut asn: Option<u32> = None;
    let mut any = false;

    // Lists that name a URL (or domain) beside its hosting address and ASN (URLhaus' per-ASN
    // feed): the URL is the entry's identity, so a malformed address or ASN next to it is kept
    // in `extra` with a warning instead of costing the entry.
    let secondary = (cols.ip.is_some() || cols.asn.is_some())
        && (get(&cols.url).is_some_and(|u| url_host(&u).is_some())
            || get(&cols.domain).is_some_and(|d| plausible_host(&d)));
    let mut soft: Vec<(&'static str, String)> = Vec::new();
    if let Some(v) = get(&cols.ip) {
        any = true;
        match parse_ip_port(&v) {
            Some(a) => ip = Some(a),
            None if secondary => soft.push(("ip", v.into_owned())),
            None => {
                return Err(Rejection::malformed(&v, "an IP address"));
            }
        }
    }
    if let Some(v) = get(&cols.network) {
        any = true;
        network = Some(parse_net(&v).ok_or_else(|| Rejection::malformed(&v, "a network (CIDR)"))?);
    }
    if let Some(v) = get(&cols.url) {
        any = true;
        if url_host(&v).is_none() {
            return Err(Rejection::malformed(&v, "a URL with a host"));
        }
        url = Some(v);
    }
    if let Some(v) = get(&cols.domain) {
        any = true;
        if !plausible_host(&v) {
            return Err(Rejection::malformed(&v, "a domain name"));
        }
        domain = Some(v);
    }
    if let Some(v) = get(&cols.asn) {
        any = true;
        match parse_asn(&v) {
            Some(a) => asn = Some(a),
            None if secondary => soft.push(("asn", v.into_owned())),
            None => {
                return Err(Rejection::malformed(&v, "an AS number"));
            }
        }
    }
    if let Some(v) = get(&cols.indicator) {
        any = true;
        let kind = match get(&cols.indicator_type) {
            Some(t) => def
                .fields
                .indicator_types
                .get(t.as_ref())
                .copied()
                .unwrap_or(IndicatorKind::Auto),
            None => IndicatorKind::Auto,
        };
        let kind = if kind == IndicatorKind::Auto {
            detect(&v).ok_or_else(|| Rejection::Unrecognised(crate::text::clip(&v, 120)))?
        } else {
            kind
        };
        match kind {
            IndicatorKind::Skip => return Ok(None),
            IndicatorKind::Ip => {
                ip = Some(
                    parse_ip_port(&v).ok_or_else(|| Rejection::malformed(&v, "an IP address"))?,
                )
            }
            IndicatorKind::Network => {
                network = Some(
                    parse_net(&v).ok_or_else(|| Rejection::malformed(&v, "a network (CIDR)"))?,
                )
            }
            IndicatorKind::Url => {
                if url_host(&v).is_none() {
                    return Err(Rejection::malformed(&v, "a URL with a host"));
                }
                url = Some(v);
            }
            IndicatorKind::Domain => {
                if !plausible_host(&v) {
                    return Err(Rejection::malformed(&v, "a domain name"));
                }
                domain = Some(v);
            }
            IndicatorKind::Asn => {
                asn = Some(parse_asn(&v).ok_or_else(|| Rejection::malformed(&v, "an AS number"))?)
            }
            IndicatorKind::Auto => unreachable!("detect() resolves auto"),
        }
    }
    let short = rec.width() < cols.min_fields;
    if !any {
        if short {
            return Err(Rejection::Short {
                width: rec.width(),
                min: cols.min_fields,
            });
        }
        return Err(Rejection::NoIndicator);
    }

    // The URL's host stands for the URL: a literal IP is an IP, a name is a domain.
    let mut url_port = None;
    if let Some(u) = url.as_deref()
        && let Some((host, port)) = url_host(u)
    {
        url_port = port;
        match host.parse::<IpAddr>() {
            Ok(a) if ip.is_none() => ip = Some((a, None)),
            Ok(_) => {}
            Err(_) if domain.is_none() => domain = Some(std::borrow::Cow::Borrowed(host)),
            Err(_) => {}
        }
    }

    keep_indicator(kept, ip, network, url_port, &get(&cols.port), || {
        (get(&cols.malware), get(&cols.kind))
    });

    // Scope test, allocation-free.
    let by_ip = ip.is_some_and(|(a, _)| scope.contains_ip(a));
    let by_net = network.is_some_and(|n| scope.overlaps_net(n));
    let by_domain = domain
        .as_deref()
        .is_some_and(|d| scope.match_domain(d).is_some());
    let by_asn = asn.is_some_and(|a| scope.contains_asn(a));
    if !(by_ip || by_net || by_domain || by_asn) {
        return Ok(None);
    }

    // Ours: build the hit.
    let kind_value = get(&cols.kind);
    let kind = match &kind_value {
        Some(k) => def
            .classification
            .types
            .get(k.as_ref())
            .cloned()
            .unwrap_or_else(|| def.classification.kind.clone()),
        None => def.classification.kind.clone(),
    };
    let identifier = get(&cols.malware)
        .map(|m| m.to_lowercase())
        .unwrap_or_else(|| def.classification.identifier.clone());
    let mut warnings = Vec::new();
    if short {
        warnings.push(format!(
            "has {} fields, expected at least {} (the missing ones are empty)",
            rec.width(),
            cols.min_fields
        ));
    }
    let mut extra = Vec::with_capacity(cols.extra.len() + 1);
    for (field, v) in soft {
        warnings.push(format!(
            "bad {} `{}` (kept in extra)",
            if field == "ip" {
                "address"
            } else {
                "AS number"
            },
            crate::text::clip(&v, 40)
        ));
        extra.push((field.to_string(), v));
    }
    let port_field = get(&cols.port);
    let port_value = match &port_field {
        Some(p) => match p.parse::<u16>() {
            Ok(n) => Some(n),
            Err(_) => {
                warnings.push(format!(
                    "bad port `{}` (kept in extra)",
                    crate::text::clip(p, 40)
                ));
                extra.push(("port".to_string(), p.to_string()));
                None
            }
        },
        None => None,
    };
    let port = ip.and_then(|(_, p)| p).or(port_value).or(url_port);
    for (name, col) in &cols.extra {
        if let Some(v) = get(&Some(col.clone())) {
            extra.push((name.clone(), v.into_owned()));
        }
    }
    if let Some(m) = get(&cols.malware) {
        extra.push(("malware".to_string(), m.into_owned()));
    }
    // How the list wrote the indicator (ThreatFox `ip:port`): kept, as every value of a row.
    if let Some(t) = get(&cols.indicator_type) {
        extra.push(("indicator_type".to_string(), t.into_owned()));
    }
    if let Some(k) = kind_value
        && !extra.iter().any(|(n, _)| n == "threat_type")
    {
        extra.push(("threat_type".to_string(), k.into_owned()));
    }
    let time = match get(&cols.time) {
        Some(t) => {
            let parsed = parse_time(&t);
            if parsed.is_none() {
                warnings.push(format!(
                    "bad time `{}` (kept in extra)",
                    crate::text::clip(&t, 40)
                ));
                extra.push(("time".to_string(), t.into_owned()));
            }
            parsed
        }
        None => None,
    };
    let domain = domain.map(|d| normalize_domain(&d));
    Ok(Some(Hit {
        ip: ip.map(|(a, _)| a),
        port,
        network: network.map(|n| n.trunc()),
        url: url.map(|u| u.into_owned()),
        domain,
        asn,
        kind,
        identifier,
        time,
        extra,
        matched_asn: by_asn && !(by_ip || by_net || by_domain),
        warnings,
    }))
}

/// Adds an entry's address or network to the list's indicator set, with the port the list
/// names (in `ip:port`, its port column, or the URL) and what it says the entry is; an entry
/// without either (a host name, an ASN) is only counted. A malformed port of an entry that is
/// not ours is not checked: the address is kept without it (matching any port).
fn keep_indicator<'a>(
    kept: &mut SetBuilder,
    ip: Option<(IpAddr, Option<u16>)>,
    network: Option<IpNet>,
    url_port: Option<u16>,
    port_field: &Option<std::borrow::Cow<'_, str>>,
    what: impl FnOnce() -> (
        Option<std::borrow::Cow<'a, str>>,
        Option<std::borrow::Cow<'a, str>>,
    ),
) {
    if ip.is_none() && network.is_none() {
        kept.not_an_address();
        return;
    }
    let (malware, kind) = what();
    let port_col = port_field.as_deref().and_then(|p| p.parse::<u16>().ok());
    if let Some((a, p)) = ip {
        kept.push(
            IpNet::from(a),
            p.or(port_col).or(url_port),
            malware.as_deref(),
            kind.as_deref(),
        );
    }
    if let Some(n) = network {
        kept.push(n, None, malware.as_deref(), kind.as_deref());
    }
}

/// `192.0.2.7`, `192.0.2.7:443`, `2001:db8::1`, `[2001:db8::1]:443`.
pub fn parse_ip_port(s: &str) -> Option<(IpAddr, Option<u16>)> {
    if let Ok(a) = s.parse::<IpAddr>() {
        return Some((a, None));
    }
    s.parse::<SocketAddr>()
        .ok()
        .map(|sa| (sa.ip(), Some(sa.port())))
}

/// A CIDR, or a bare address as a host network.
pub fn parse_net(s: &str) -> Option<IpNet> {
    if let Ok(n) = s.parse::<IpNet>() {
        return Some(n);
    }
    s.parse::<IpAddr>().ok().map(IpNet::from)
}

/// `64496` or `AS64496`.
pub fn parse_asn(s: &str) -> Option<u32> {
    let t = s.trim();
    let d = t
        .strip_prefix("AS")
        .or_else(|| t.strip_prefix("as"))
        .unwrap_or(t);
    d.parse::<u32>().ok().filter(|n| *n > 0)
}

/// The host (without brackets) and explicit port of a URL, without allocating. A URL without
/// a scheme is read as `http://` (lists often drop it).
pub fn url_host(u: &str) -> Option<(&str, Option<u16>)> {
    let rest = match u.find("://") {
        Some(i) => &u[i + 3..],
        None => u,
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let auth = &rest[..end];
    let auth = match auth.rfind('@') {
        Some(i) => &auth[i + 1..],
        None => auth,
    };
    let (host, port) = if let Some(v6) = auth.strip_prefix('[') {
        let close = v6.find(']')?;
        let port = v6[close + 1..]
            .strip_prefix(':')
            .and_then(|p| p.parse().ok());
        (&v6[..close], port)
    } else {
        match auth.rsplit_once(':') {
            Some((h, p)) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => {
                (h, p.parse().ok())
            }
            Some((h, "")) => (h, None),
            _ => (auth, None),
        }
    };
    if host.is_empty() || host.contains(char::is_whitespace) {
        return None;
    }
    Some((host, port))
}

fn plausible_host(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && !s.contains(|c: char| c.is_whitespace() || c == '/' || c == '@')
}

/// The kind of a free-form indicator.
pub fn detect(s: &str) -> Option<IndicatorKind> {
    if parse_ip_port(s).is_some() {
        return Some(IndicatorKind::Ip);
    }
    if s.contains('/') && s.parse::<IpNet>().is_ok() {
        return Some(IndicatorKind::Network);
    }
    if s.contains("://") {
        return url_host(s).map(|_| IndicatorKind::Url);
    }
    if parse_asn(s).is_some() && (s.starts_with("AS") || s.starts_with("as")) {
        return Some(IndicatorKind::Asn);
    }
    if s.contains('.') && plausible_host(s) {
        return Some(IndicatorKind::Domain);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_of_urls() {
        assert_eq!(
            url_host("http://182.126.120.150:58801/i"),
            Some(("182.126.120.150", Some(58801)))
        );
        assert_eq!(
            url_host("https://user@Shop.Example.org/x?y=1"),
            Some(("Shop.Example.org", None))
        );
        assert_eq!(
            url_host("http://[2001:db8::7]:8080/a"),
            Some(("2001:db8::7", Some(8080)))
        );
        assert_eq!(url_host("example.org/path"), Some(("example.org", None)));
        assert_eq!(url_host("http:///nohost"), None);
    }

    #[test]
    fn indicators_are_detected() {
        assert_eq!(detect("8.134.12.90:7777"), Some(IndicatorKind::Ip));
        assert_eq!(detect("[2001:db8::1]:443"), Some(IndicatorKind::Ip));
        assert_eq!(detect("2001:db8::1"), Some(IndicatorKind::Ip));
        assert_eq!(detect("10.0.0.0/8"), Some(IndicatorKind::Network));
        assert_eq!(detect("http://a.example/x"), Some(IndicatorKind::Url));
        assert_eq!(
            detect("mbond38982.workers.dev"),
            Some(IndicatorKind::Domain)
        );
        assert_eq!(detect("AS64496"), Some(IndicatorKind::Asn));
        assert_eq!(detect("d41d8cd98f00b204e9800998ecf8427e"), None);
    }

    #[test]
    fn times() {
        let want = "2024-04-04T07:03:03+00:00";
        for s in [
            "2024-04-04 07:03:03",
            "2024-04-04 07:03:03 UTC",
            "2024-04-04 07:03:03 (UTC)",
            "2024-04-04T07:03:03Z",
        ] {
            assert_eq!(parse_time(s).unwrap().to_rfc3339(), want, "{s}");
        }
        assert_eq!(
            parse_time("2024-04-04").unwrap().to_rfc3339(),
            "2024-04-04T00:00:00+00:00"
        );
        assert_eq!(
            parse_time("1790072042").unwrap().to_rfc3339(),
            "2026-09-22T10:14:02+00:00"
        );
        assert!(parse_time("yesterday").is_none());
    }
}
