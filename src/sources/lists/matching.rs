//! Turns list entries into findings about OUR scope: IP indicators against our prefixes, URL and
//! domain indicators by host (under our domains, or a literal IP inside our prefixes), DROP
//! networks by overlap, ASN-DROP entries by our ASNs.
//!
//! The hot path (an entry that is not ours) allocates nothing of its own: fields are borrowed
//! from the record, addresses parsed from `&str`, and the scope answered by binary search; its
//! address or network goes into the list's indicator set (a compact entry pushed on one vector,
//! a threat text allocated once per distinct text). Only entries in scope become [`Finding`]s.

use std::borrow::Cow;
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
pub(crate) struct Hit {
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
pub(crate) fn entry(
    def: &FeedDef,
    cols: &Cols,
    rec: &dyn Record,
    scope: &ScopeMatcher,
    kept: &mut SetBuilder,
) -> Result<Option<Hit>, Rejection> {
    let fields = Fields { def, rec };
    let Some(id) = Identity::read(def, cols, &fields)? else {
        return Ok(None);
    };
    keep_indicator(
        kept,
        id.ip,
        id.network,
        id.url_port,
        &fields.get(&cols.port),
        || (fields.get(&cols.malware), fields.get(&cols.kind)),
    );

    // Scope test, allocation-free.
    let by_ip = id.ip.is_some_and(|(a, _)| scope.contains_ip(a));
    let by_net = id.network.is_some_and(|n| scope.overlaps_net(n));
    let by_domain = id
        .domain
        .as_deref()
        .is_some_and(|d| scope.match_domain(d).is_some());
    let by_asn = id.asn.is_some_and(|a| scope.contains_asn(a));
    if !(by_ip || by_net || by_domain || by_asn) {
        return Ok(None);
    }
    let matched_asn = by_asn && !(by_ip || by_net || by_domain);
    Ok(Some(hit(def, cols, &fields, id, matched_asn)))
}

/// An entry's fields, trimmed, with the list's null markers read as absent.
struct Fields<'a> {
    def: &'a FeedDef,
    rec: &'a dyn Record,
}

impl<'a> Fields<'a> {
    fn get(&self, c: &Option<Col>) -> Option<Cow<'a, str>> {
        let v = self.rec.get(c.as_ref()?)?;
        if self.def.is_null(v.trim()) {
            return None;
        }
        Some(match v {
            Cow::Borrowed(b) => Cow::Borrowed(b.trim()),
            Cow::Owned(o) => Cow::Owned(o.trim().to_string()),
        })
    }
}

/// What an entry is about: its address (with the port `ip:port` names), network, URL, domain
/// or ASN, read from their columns or the indicator column.
struct Identity<'a> {
    ip: Option<(IpAddr, Option<u16>)>,
    network: Option<IpNet>,
    url: Option<Cow<'a, str>>,
    /// The port the URL names.
    url_port: Option<u16>,
    domain: Option<Cow<'a, str>>,
    asn: Option<u32>,
    /// Malformed address or ASN beside a URL or domain identity (kept in `extra`).
    soft: Vec<(&'static str, String)>,
    /// The row has fewer fields than the list's columns need.
    short: bool,
}

impl<'a> Identity<'a> {
    /// `Ok(None)`: an indicator the list marks as one to skip.
    fn read(def: &FeedDef, cols: &Cols, fields: &Fields<'a>) -> Result<Option<Self>, Rejection> {
        let mut id = Identity {
            ip: None,
            network: None,
            url: None,
            url_port: None,
            domain: None,
            asn: None,
            soft: Vec::new(),
            short: fields.rec.width() < cols.min_fields,
        };
        let mut any = false;
        // Lists that name a URL (or domain) beside its hosting address and ASN (URLhaus'
        // per-ASN feed): the URL is the entry's identity, so a malformed address or ASN next
        // to it is kept in `extra` with a warning instead of costing the entry.
        let secondary = (cols.ip.is_some() || cols.asn.is_some())
            && (fields
                .get(&cols.url)
                .is_some_and(|u| url_host(&u).is_some())
                || fields.get(&cols.domain).is_some_and(|d| plausible_host(&d)));
        if let Some(v) = fields.get(&cols.ip) {
            any = true;
            match parse_ip_port(&v) {
                Some(a) => id.ip = Some(a),
                None if secondary => id.soft.push(("ip", v.into_owned())),
                None => return Err(Rejection::malformed(&v, "an IP address")),
            }
        }
        if let Some(v) = fields.get(&cols.network) {
            any = true;
            id.set(IndicatorKind::Network, v)?;
        }
        if let Some(v) = fields.get(&cols.url) {
            any = true;
            id.set(IndicatorKind::Url, v)?;
        }
        if let Some(v) = fields.get(&cols.domain) {
            any = true;
            id.set(IndicatorKind::Domain, v)?;
        }
        if let Some(v) = fields.get(&cols.asn) {
            any = true;
            match parse_asn(&v) {
                Some(a) => id.asn = Some(a),
                None if secondary => id.soft.push(("asn", v.into_owned())),
                None => return Err(Rejection::malformed(&v, "an AS number")),
            }
        }
        if let Some(v) = fields.get(&cols.indicator) {
            any = true;
            let kind = match fields.get(&cols.indicator_type) {
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
            if kind == IndicatorKind::Skip {
                return Ok(None);
            }
            id.set(kind, v)?;
        }
        if !any {
            if id.short {
                return Err(Rejection::Short {
                    width: fields.rec.width(),
                    min: cols.min_fields,
                });
            }
            return Err(Rejection::NoIndicator);
        }
        // The URL's host stands for the URL: a literal IP is an IP, a name is a domain.
        let host = match &id.url {
            Some(Cow::Borrowed(u)) => url_host(u).map(|(h, p)| (Cow::Borrowed(h), p)),
            Some(Cow::Owned(u)) => url_host(u).map(|(h, p)| (Cow::Owned(h.to_string()), p)),
            None => None,
        };
        if let Some((host, port)) = host {
            id.url_port = port;
            id.take_url_host(host);
        }
        Ok(Some(id))
    }

    /// Takes `v` as the entry's indicator of `kind`, or rejects the entry.
    fn set(&mut self, kind: IndicatorKind, v: Cow<'a, str>) -> Result<(), Rejection> {
        match kind {
            IndicatorKind::Ip => {
                self.ip = Some(
                    parse_ip_port(&v).ok_or_else(|| Rejection::malformed(&v, "an IP address"))?,
                )
            }
            IndicatorKind::Network => {
                self.network = Some(
                    parse_net(&v).ok_or_else(|| Rejection::malformed(&v, "a network (CIDR)"))?,
                )
            }
            IndicatorKind::Url => {
                if url_host(&v).is_none() {
                    return Err(Rejection::malformed(&v, "a URL with a host"));
                }
                self.url = Some(v);
            }
            IndicatorKind::Domain => {
                if !plausible_host(&v) {
                    return Err(Rejection::malformed(&v, "a domain name"));
                }
                self.domain = Some(v);
            }
            IndicatorKind::Asn => {
                self.asn =
                    Some(parse_asn(&v).ok_or_else(|| Rejection::malformed(&v, "an AS number"))?)
            }
            IndicatorKind::Skip | IndicatorKind::Auto => {}
        }
        Ok(())
    }

    /// The URL's host: a literal IP stands for the address, a name for the domain (unless the
    /// entry names them itself).
    fn take_url_host(&mut self, host: Cow<'a, str>) {
        match host.parse::<IpAddr>() {
            Ok(a) if self.ip.is_none() => self.ip = Some((a, None)),
            Ok(_) => {}
            Err(_) if self.domain.is_none() => self.domain = Some(host),
            Err(_) => {}
        }
    }
}

/// The hit of an entry in scope: classification, port, time and every other value of the
/// row (malformed ones kept in `extra`, described in the warnings).
fn hit(
    def: &FeedDef,
    cols: &Cols,
    fields: &Fields<'_>,
    id: Identity<'_>,
    matched_asn: bool,
) -> Hit {
    let kind_value = fields.get(&cols.kind);
    let kind = match &kind_value {
        Some(k) => def
            .classification
            .types
            .get(k.as_ref())
            .cloned()
            .unwrap_or_else(|| def.classification.kind.clone()),
        None => def.classification.kind.clone(),
    };
    let identifier = fields
        .get(&cols.malware)
        .map(|m| m.to_lowercase())
        .unwrap_or_else(|| def.classification.identifier.clone());
    let mut warnings = Vec::new();
    if id.short {
        warnings.push(format!(
            "has {} fields, expected at least {} (the missing ones are empty)",
            fields.rec.width(),
            cols.min_fields
        ));
    }
    let mut extra = Vec::with_capacity(cols.extra.len() + 1);
    for (field, v) in id.soft {
        let what = if field == "ip" {
            "address"
        } else {
            "AS number"
        };
        warnings.push(format!(
            "bad {what} `{}` (kept in extra)",
            crate::text::clip(&v, 40)
        ));
        extra.push((field.to_string(), v));
    }
    let port_value = match fields.get(&cols.port) {
        Some(p) => p.parse::<u16>().ok().or_else(|| {
            kept_as_written(&mut warnings, &mut extra, "port", &p);
            None
        }),
        None => None,
    };
    let port = id.ip.and_then(|(_, p)| p).or(port_value).or(id.url_port);
    for (name, col) in &cols.extra {
        if let Some(v) = fields.get(&Some(col.clone())) {
            extra.push((name.clone(), v.into_owned()));
        }
    }
    if let Some(m) = fields.get(&cols.malware) {
        extra.push(("malware".to_string(), m.into_owned()));
    }
    // How the list wrote the indicator (ThreatFox `ip:port`): kept, as every value of a row.
    if let Some(t) = fields.get(&cols.indicator_type) {
        extra.push(("indicator_type".to_string(), t.into_owned()));
    }
    if let Some(k) = kind_value
        && !extra.iter().any(|(n, _)| n == "threat_type")
    {
        extra.push(("threat_type".to_string(), k.into_owned()));
    }
    let time = match fields.get(&cols.time) {
        Some(t) => parse_time(&t).or_else(|| {
            kept_as_written(&mut warnings, &mut extra, "time", &t);
            None
        }),
        None => None,
    };
    Hit {
        ip: id.ip.map(|(a, _)| a),
        port,
        network: id.network.map(|n| n.trunc()),
        url: id.url.map(|u| u.into_owned()),
        domain: id.domain.map(|d| normalize_domain(&d)),
        asn: id.asn,
        kind,
        identifier,
        time,
        extra,
        matched_asn,
        warnings,
    }
}

/// A malformed value of an entry in scope, kept as written under its role and described.
fn kept_as_written(
    warnings: &mut Vec<String>,
    extra: &mut Vec<(String, String)>,
    field: &str,
    v: &str,
) {
    warnings.push(format!(
        "bad {field} `{}` (kept in extra)",
        crate::text::clip(v, 40)
    ));
    extra.push((field.to_string(), v.to_string()));
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
pub(crate) fn parse_ip_port(s: &str) -> Option<(IpAddr, Option<u16>)> {
    if let Ok(a) = s.parse::<IpAddr>() {
        return Some((a, None));
    }
    s.parse::<SocketAddr>()
        .ok()
        .map(|sa| (sa.ip(), Some(sa.port())))
}

/// A CIDR, or a bare address as a host network.
pub(crate) fn parse_net(s: &str) -> Option<IpNet> {
    if let Ok(n) = s.parse::<IpNet>() {
        return Some(n);
    }
    s.parse::<IpAddr>().ok().map(IpNet::from)
}

/// `64496` or `AS64496`.
pub(crate) fn parse_asn(s: &str) -> Option<u32> {
    let t = s.trim();
    let d = t
        .strip_prefix("AS")
        .or_else(|| t.strip_prefix("as"))
        .unwrap_or(t);
    d.parse::<u32>().ok().filter(|n| *n > 0)
}

/// The host (without brackets) and explicit port of a URL, without allocating. A URL without
/// a scheme is read as `http://` (lists often drop it).
pub(crate) fn url_host(u: &str) -> Option<(&str, Option<u16>)> {
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
pub(crate) fn detect(s: &str) -> Option<IndicatorKind> {
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
