//! One Shadowserver CSV row → one [`Finding`], by header name, never by position.
//!
//! The header is analysed once per file ([`Normalizer::new`]); each row then costs one pass
//! over its fields. Rules (the same for all report types):
//! - the *subject* is `ip` (single-host reports) or one side of an event report: `src_*` by
//!   default, `dst_*` for `*_ddos_target` reports, `http_referer_*` where present. When the
//!   default side lies outside our scope but another side lies inside, that side is the subject;
//! - `ip` holding a CIDR (blocklist) becomes `network`;
//! - `0`, `unknown`, `-` and empty are null; null values are not kept;
//! - `severity` column when valid, else the type's default; `timestamp` → `time_source` (UTC);
//! - `tag` is split on `,` and `;` into `extra.tags`, CVE ids go to `extra.cves`;
//! - every other non-null column lands in `extra` under its header name (subject-side columns
//!   lose their prefix: `src_geo` → `geo`).

use std::borrow::Cow;
use std::net::IpAddr;

use chrono::{DateTime, NaiveDate, Utc};
use ipnet::IpNet;

use super::schema::{Schema, TypeInfo};
use crate::finding::{Classification, ExtraVal, ExtraView, Finding, FindingView, Severity, Status};
use crate::scope::ScopeMark;
use crate::scope::ScopeMatcher;

/// Source name of every Shadowserver finding.
pub const SOURCE: &str = "shadowserver";

/// Columns holding a host name to use when a row has no address at all.
const DOMAIN_FALLBACK: &[&str] = &["website", "request", "http_host", "host", "domain"];

/// The columns of one side (`src_`, `dst_`, ...) of a row.
#[derive(Debug, Clone)]
struct Side {
    ip: usize,
    port: Option<usize>,
    asn: Option<usize>,
    hostname: Option<usize>,
    /// Whether the port of this side identifies a service (not an ephemeral client port).
    port_is_service: bool,
    /// Every column of this side with its unprefixed name.
    members: Vec<(usize, String)>,
}

/// A column that goes to `extra` (unless null), decided once per header and subject side.
#[derive(Debug, Clone)]
struct ExtraColumn {
    col: usize,
    key: String,
    /// The key is that of the previous column of the plan (the later column wins).
    repeats_key: bool,
    /// The subject's `hostname`: left out when it became the finding's `domain`.
    unless_domain: bool,
    /// `url` / `email`: left out when it became the finding's `url` / `email`.
    unless_url: bool,
    unless_email: bool,
}

/// Per-file row normaliser.
pub struct Normalizer<'a> {
    report_type: String,
    info: TypeInfo,
    /// The classification of every row, when the type has neither tag rules nor an identifier
    /// taken from the row (`TypeInfo::classify` then ignores the row).
    fixed_classification: Option<Classification>,
    scope: &'a ScopeMatcher,
    names: Vec<String>,
    sides: Vec<Side>,
    /// The `extra` columns sorted by key (ties in column order): `[0]` for rows without a
    /// subject, `[s + 1]` when `sides[s]` is the subject.
    extra_plans: Vec<Vec<ExtraColumn>>,
    timestamp: Option<usize>,
    severity: Option<usize>,
    protocol: Option<usize>,
    tag: Option<usize>,
    infection: Option<usize>,
    url: Option<usize>,
    email: Option<usize>,
    application: Option<usize>,
    domain_fallback: Vec<usize>,
}

/// Whether a value means "nothing".
#[inline]
pub fn is_null(v: &str) -> bool {
    is_null_trimmed(trim(v))
}

/// [`is_null`] of a value already trimmed.
#[inline]
fn is_null_trimmed(t: &str) -> bool {
    t.is_empty() || t == "0" || t == "-" || t.eq_ignore_ascii_case("unknown")
}

/// `str::trim`, without decoding characters when both ends are plain ASCII (the usual case).
#[inline]
fn trim(v: &str) -> &str {
    // ASCII bytes `char::is_whitespace` holds for: space, \t, \n, \x0b, \x0c, \r.
    let plain = |b: u8| b.is_ascii() && b != b' ' && !(b'\t'..=b'\r').contains(&b);
    match v.as_bytes() {
        [first, .., last] if plain(*first) && plain(*last) => v,
        [only] if plain(*only) => v,
        _ => v.trim(),
    }
}

/// The trimmed text of field `i` (lossy when it is not UTF-8); empty when the row is short.
/// `ascii`: whether the whole record is ASCII (`rec.as_slice().is_ascii()`).
#[inline]
fn text(rec: &csv::ByteRecord, i: usize, ascii: bool) -> Cow<'_, str> {
    let Some(b) = rec.get(i) else {
        return Cow::Borrowed("");
    };
    if ascii {
        debug_assert!(b.is_ascii());
        // SAFETY: `b` is part of the record, whose bytes are all ASCII, hence valid UTF-8.
        return Cow::Borrowed(trim(unsafe { std::str::from_utf8_unchecked(b) }));
    }
    match std::str::from_utf8(b) {
        Ok(s) => Cow::Borrowed(trim(s)),
        Err(_) => Cow::Owned(trim(&String::from_utf8_lossy(b)).to_string()),
    }
}

/// The untrimmed text of field `i`, as quoted in rejected-row messages.
fn original(rec: &csv::ByteRecord, i: usize) -> Cow<'_, str> {
    rec.get(i)
        .map(String::from_utf8_lossy)
        .unwrap_or(Cow::Borrowed(""))
}

/// `s.parse::<Severity>()`, with the exact lower-case names matched without allocating.
fn parse_severity(s: &str) -> Option<Severity> {
    match s {
        "critical" => Some(Severity::Critical),
        "high" => Some(Severity::High),
        "medium" => Some(Severity::Medium),
        "low" => Some(Severity::Low),
        "info" => Some(Severity::Info),
        _ => s.parse().ok(),
    }
}

impl<'a> Normalizer<'a> {
    /// Analyses the header. Fails when the header is not a Shadowserver report header.
    pub fn new(
        schema: &Schema,
        report_type: &str,
        header: &[String],
        scope: &'a ScopeMatcher,
    ) -> Result<Self, String> {
        let names: Vec<String> = header
            .iter()
            .map(|h| h.trim().trim_start_matches('\u{feff}').to_ascii_lowercase())
            .collect();
        let find = |n: &str| names.iter().position(|h| h == n);
        if find("timestamp").is_none() {
            return Err(format!(
                "the first line is not a Shadowserver report header (no `timestamp` column): {}",
                crate::text::clip(&names.join(","), 120)
            ));
        }
        let mut prefixes: Vec<&str> = Vec::new();
        if find("ip").is_some() {
            prefixes.push("");
        }
        let ddos_target = report_type.ends_with("_ddos_target");
        let mut event: Vec<&str> = ["http_referer_", "src_", "dst_"]
            .into_iter()
            .filter(|p| find(&format!("{p}ip")).is_some())
            .collect();
        if ddos_target {
            event.sort_by_key(|p| *p != "dst_");
        }
        prefixes.extend(event);
        let mut sides = Vec::new();
        let mut side_of = vec![None; names.len()];
        for p in prefixes {
            let ip = find(&format!("{p}ip")).expect("checked above");
            let idx = sides.len();
            let mut members = Vec::new();
            for (i, n) in names.iter().enumerate() {
                let stripped = if p.is_empty() {
                    // Single-host reports: the host columns themselves.
                    matches!(n.as_str(), "ip" | "port" | "asn" | "hostname").then(|| n.clone())
                } else {
                    n.strip_prefix(p).map(str::to_string)
                };
                if let Some(s) = stripped
                    && side_of[i].is_none()
                {
                    side_of[i] = Some(idx);
                    members.push((i, s));
                }
            }
            sides.push(Side {
                ip,
                port: find(&format!("{p}port")),
                asn: find(&format!("{p}asn")),
                hostname: find(&format!("{p}hostname")),
                port_is_service: p.is_empty() || p == "dst_",
                members,
            });
        }
        let timestamp = find("timestamp");
        let severity = find("severity");
        let protocol = find("protocol");
        let tag = find("tag");
        let url = find("url");
        let email = find("email");
        let extra_plans = (0..=sides.len())
            .map(|plan| {
                let chosen = plan.checked_sub(1);
                let mut cols = Vec::new();
                for (i, name) in names.iter().enumerate() {
                    if [timestamp, severity, protocol, tag].contains(&Some(i)) {
                        continue;
                    }
                    let mut key = name.as_str();
                    let mut unless_domain = false;
                    if let Some(s) = side_of[i]
                        && chosen == Some(s)
                    {
                        let side: &Side = &sides[s];
                        if i == side.ip
                            || Some(i) == side.asn
                            || (Some(i) == side.port && side.port_is_service)
                        {
                            continue;
                        }
                        unless_domain = Some(i) == side.hostname;
                        if let Some((_, n)) = side.members.iter().find(|(m, _)| *m == i) {
                            key = n;
                        }
                    }
                    cols.push(ExtraColumn {
                        col: i,
                        key: key.to_string(),
                        repeats_key: false,
                        unless_domain,
                        unless_url: Some(i) == url,
                        unless_email: Some(i) == email,
                    });
                }
                // Stable: of two columns with one key, the later one stays later and wins.
                cols.sort_by(|a, b| a.key.cmp(&b.key));
                for j in 1..cols.len() {
                    cols[j].repeats_key = cols[j].key == cols[j - 1].key;
                }
                cols
            })
            .collect();
        let canonical = schema.canonical(report_type).to_string();
        let info = schema.info(&canonical);
        let fixed_classification = (info.when_tag.is_empty() && info.identifier.is_some())
            .then(|| info.classify(&canonical, None, &[]));
        Ok(Normalizer {
            info,
            fixed_classification,
            report_type: canonical,
            scope,
            timestamp,
            severity,
            protocol,
            tag,
            infection: find("infection"),
            url,
            email,
            application: find("application"),
            domain_fallback: DOMAIN_FALLBACK.iter().filter_map(|n| find(n)).collect(),
            names,
            sides,
            extra_plans,
        })
    }

    /// The report type findings get as `feed`.
    pub fn report_type(&self) -> &str {
        &self.report_type
    }

    /// Whether a record repeats the header (legacy files did that).
    pub fn is_header_repeat(&self, rec: &csv::ByteRecord) -> bool {
        rec.len() == self.names.len()
            && rec
                .iter()
                .zip(&self.names)
                .all(|(v, n)| v.eq_ignore_ascii_case(n.as_bytes()))
    }

    /// Normalises one record into a finding; `raw` is the pointer stored with it. `Err` is the
    /// reason the row is rejected. Warnings are dropped (see [`Normalizer::row_warned`]).
    pub fn row(&self, rec: &csv::ByteRecord, raw: &str) -> Result<Finding, String> {
        self.row_view(rec, raw, &mut Vec::new(), |v| v.to_finding())
    }

    /// [`Normalizer::row`] with the row's warnings (malformed values kept in `extra`).
    pub fn row_warned(
        &self,
        rec: &csv::ByteRecord,
        raw: &str,
    ) -> Result<(Finding, Vec<String>), String> {
        let mut warnings = Vec::new();
        let f = self.row_view(rec, raw, &mut warnings, |v| v.to_finding())?;
        Ok((f, warnings))
    }

    /// Normalises one record and hands the finding to `emit` as a sealed view borrowing from
    /// `rec` (no owned copy of its fields). `Err` is the reason the row is rejected.
    ///
    /// A row is rejected only when the identity of its finding is missing or malformed: the
    /// subject's address (or, without one, its host name, URL or e-mail), and the `timestamp`
    /// every report row carries; or when it has more fields than the header (its values
    /// cannot be told apart). Any other malformed value (another side's address, a port, an
    /// ASN, a severity) is kept as written in `extra` and described in `warnings` (appended to;
    /// nothing is allocated for a row without warnings).
    pub fn row_view<T>(
        &self,
        rec: &csv::ByteRecord,
        raw: &str,
        warnings: &mut Vec<String>,
        emit: impl FnOnce(&FindingView<'_>) -> T,
    ) -> Result<T, String> {
        // Short rows happen in real reports (a trailing column left out): the missing fields
        // are empty, as Python's DictReader treats them. More fields than the header is broken.
        if rec.len() > self.names.len() {
            return Err(format!(
                "the row has {} fields, the header has {}",
                rec.len(),
                self.names.len()
            ));
        }
        // A non-null field, trimmed. Real reports are nearly always ASCII: one check per row.
        let ascii = rec.as_slice().is_ascii();
        let value = |i: Option<usize>| -> Option<Cow<'_, str>> {
            let v = text(rec, i?, ascii);
            if is_null_trimmed(&v) { None } else { Some(v) }
        };

        // The subject side: the first in scope, else the first with an address. A malformed
        // address is the identity (the row is rejected) only when it would be the subject: it
        // comes first and no side is in scope. Otherwise it stays in `extra` with a warning.
        let mut chosen: Option<(usize, Subject)> = None;
        let mut first: Option<(usize, Subject)> = None;
        let mut first_bad: Option<usize> = None;
        let mut bad_sides = 0u32; // a bit per side (a header has at most four)
        for (si, side) in self.sides.iter().enumerate() {
            let Some(v) = value(Some(side.ip)) else {
                continue;
            };
            let Some(subject) = parse_subject(&v) else {
                bad_sides |= 1 << si;
                if first.is_none() && first_bad.is_none() {
                    first_bad = Some(si);
                }
                continue;
            };
            if chosen.is_none() && subject.in_scope(self.scope) {
                chosen = Some((si, subject));
            } else if first.is_none() && first_bad.is_none() {
                first = Some((si, subject));
            }
        }
        let bad_ip = |si: usize| {
            let col = self.sides[si].ip;
            format!(
                "`{}` is not an IP address or network: `{}`",
                self.names[col],
                crate::text::clip(&original(rec, col), 60)
            )
        };
        if chosen.is_none()
            && let Some(si) = first_bad
        {
            return Err(bad_ip(si));
        }
        let chosen = chosen.or(first);
        if bad_sides != 0 {
            for si in (0..self.sides.len()).filter(|si| bad_sides & (1 << si) != 0) {
                warnings.push(format!("{} (kept in extra)", bad_ip(si)));
            }
        }

        // Timestamp.
        let time_source = match (value(self.timestamp), self.timestamp) {
            (Some(v), Some(i)) => Some(parse_time(&v).ok_or_else(|| {
                format!(
                    "bad timestamp `{}`",
                    crate::text::clip(&original(rec, i), 40)
                )
            })?),
            _ => return Err("the row has no timestamp".into()),
        };

        // Tags, CVEs and classification.
        let tag_text = value(self.tag);
        let tags: Vec<&str> = tag_text.as_deref().map(split_tags).unwrap_or_default();
        let classified;
        let classification = match &self.fixed_classification {
            Some(c) => c,
            None => {
                classified =
                    self.info
                        .classify(&self.report_type, value(self.infection).as_deref(), &tags);
                &classified
            }
        };
        let severity_text = value(self.severity);
        let parsed_severity = severity_text.as_deref().and_then(parse_severity);
        let bad_severity = severity_text.filter(|_| parsed_severity.is_none());
        if let Some(s) = &bad_severity {
            warnings.push(format!(
                "bad severity `{}` (kept in extra; the type's default applies)",
                crate::text::clip(s, 20)
            ));
        }
        let severity = parsed_severity.unwrap_or(self.info.severity);
        let protocol = value(self.protocol).map(lower);

        let (mut ip, mut network, mut port, mut asn, mut domain) = (None, None, None, None, None);
        let (mut bad_port, mut bad_asn) = (None, None);
        let chosen_idx = chosen.as_ref().map(|(i, _)| *i);
        if let Some((si, subject)) = chosen {
            let side = &self.sides[si];
            match subject {
                Subject::Ip(a) => ip = Some(a),
                Subject::Net(n) => network = Some(n),
            }
            if let (Some(p), Some(i)) = (value(side.port), side.port) {
                match p.parse::<u16>() {
                    Ok(p) if side.port_is_service => port = Some(p),
                    Ok(_) => {}
                    Err(_) => {
                        warnings.push(format!(
                            "bad port `{}` (kept in extra)",
                            crate::text::clip(&original(rec, i), 20)
                        ));
                        // A client port is in `extra` already; a service port is not.
                        if side.port_is_service {
                            bad_port = Some(p);
                        }
                    }
                }
            }
            if let Some(a) = value(side.asn) {
                let digits = a.strip_prefix("AS").unwrap_or(&a);
                match digits.parse() {
                    Ok(n) => asn = Some(n),
                    Err(_) => {
                        warnings.push(format!(
                            "bad asn `{}` (kept in extra)",
                            crate::text::clip(&a, 20)
                        ));
                        bad_asn = Some(a);
                    }
                }
            }
            domain = value(side.hostname).and_then(host_name);
        }
        if ip.is_none() && network.is_none() && domain.is_none() {
            domain = self
                .domain_fallback
                .iter()
                .find_map(|&i| value(Some(i)).and_then(host_name));
        }
        let url = value(self.url).filter(|u| u.starts_with("http://") || u.starts_with("https://"));
        let email = value(self.email).filter(|e| e.contains('@')).map(lower);
        if ip.is_none() && network.is_none() && domain.is_none() && url.is_none() && email.is_none()
        {
            return Err("the row names no address, network, host name, URL or e-mail".into());
        }

        // Everything else goes to extra, built at once from the plan's sorted keys.
        let plan = &self.extra_plans[chosen_idx.map_or(0, |c| c + 1)];
        let mut extra: Vec<(&str, ExtraVal<'_>)> = Vec::with_capacity(plan.len() + 6);
        for c in plan {
            if (c.unless_domain && domain.is_some())
                || (c.unless_url && url.is_some())
                || (c.unless_email && email.is_some())
            {
                continue;
            }
            let Some(v) = value(Some(c.col)) else {
                continue;
            };
            let v = ExtraVal::Text(v);
            match extra.last_mut() {
                Some((k, last)) if c.repeats_key && *k == c.key => *last = v,
                _ => extra.push((&c.key, v)),
            }
        }
        for (key, bad) in [
            ("port", bad_port),
            ("asn", bad_asn),
            ("severity", bad_severity),
        ] {
            if let Some(v) = bad {
                set_sorted(&mut extra, key, ExtraVal::Text(v));
            }
        }
        let mut cves: Vec<String> = tags
            .iter()
            .filter(|t| is_cve(t))
            .map(|t| t.to_ascii_uppercase())
            .collect();
        cves.sort();
        cves.dedup();
        if !tags.is_empty() {
            set_sorted(&mut extra, "tags", ExtraVal::Strs(&tags));
            if !cves.is_empty() {
                set_sorted(&mut extra, "cves", ExtraVal::Strings(&cves));
            }
        }
        if value(self.application).is_none()
            && let Some(app) = &self.info.application
        {
            set_sorted(
                &mut extra,
                "application",
                ExtraVal::Text(Cow::Borrowed(app)),
            );
        }
        let mut view = FindingView {
            source: SOURCE,
            feed: &self.report_type,
            classification,
            ip,
            network,
            port,
            protocol: protocol.as_deref(),
            asn,
            domain: domain.as_deref(),
            url: url.as_deref(),
            email: email.as_deref(),
            severity,
            time_source,
            first_seen: DateTime::<Utc>::UNIX_EPOCH,
            last_seen: DateTime::<Utc>::UNIX_EPOCH,
            times_seen: 0,
            status: Status::New,
            in_scope: true,
            extra: ExtraView::Pairs(&[]),
            raw: Some(raw),
            identity: &[],
            history: &[],
        };
        let mark = ScopeMark::of(&view, self.scope);
        if let Some(p) = mark.prefix {
            set_sorted(&mut extra, "matched_prefix", ExtraVal::Net(p));
        }
        if let Some(a) = mark.asn {
            set_sorted(&mut extra, "matched_asn", ExtraVal::U64(a.into()));
        }
        if let Some(d) = mark.domain {
            set_sorted(
                &mut extra,
                "matched_domain",
                ExtraVal::Text(Cow::Borrowed(d)),
            );
        }
        view.in_scope = mark.in_scope;
        view.extra = ExtraView::Pairs(&extra);
        Ok(emit(&view))
    }
}

/// Lower-cases a value, borrowing it when it has no upper-case letter (the usual case).
fn lower(v: Cow<'_, str>) -> Cow<'_, str> {
    if v.bytes().any(|b| b.is_ascii_uppercase()) {
        Cow::Owned(v.to_ascii_lowercase())
    } else {
        v
    }
}

/// `BTreeMap::insert` for a vector of entries sorted by unique keys: the value replaces the
/// one of an equal key, else the entry goes where it keeps the order.
fn set_sorted<'a>(entries: &mut Vec<(&'a str, ExtraVal<'a>)>, key: &'a str, value: ExtraVal<'a>) {
    match entries.binary_search_by(|(k, _)| (*k).cmp(key)) {
        Ok(i) => entries[i].1 = value,
        Err(i) => entries.insert(i, (key, value)),
    }
}

enum Subject {
    Ip(IpAddr),
    Net(IpNet),
}

impl Subject {
    fn in_scope(&self, scope: &ScopeMatcher) -> bool {
        match self {
            Subject::Ip(ip) => scope.contains_ip(*ip),
            Subject::Net(n) => scope.overlaps_net(*n),
        }
    }
}

fn parse_subject(v: &str) -> Option<Subject> {
    if let Ok(ip) = v.parse::<IpAddr>() {
        return Some(Subject::Ip(ip));
    }
    let n: IpNet = v.parse().ok()?;
    if n.prefix_len() == n.max_prefix_len() {
        Some(Subject::Ip(n.addr()))
    } else {
        Some(Subject::Net(n.trunc()))
    }
}

/// A host name from a column value (scheme and path stripped, lower-case); `None` for IPs and
/// junk.
fn host_name(v: Cow<'_, str>) -> Option<Cow<'_, str>> {
    match v {
        Cow::Borrowed(b) => host_name_in(b).map(|h| lower(Cow::Borrowed(h))),
        Cow::Owned(o) => host_name_in(&o).map(|h| Cow::Owned(h.to_ascii_lowercase())),
    }
}

/// The host name part of `v`, as it is written.
fn host_name_in(v: &str) -> Option<&str> {
    let t = trim(v);
    let t = t
        .strip_prefix("https://")
        .or_else(|| t.strip_prefix("http://"))
        .unwrap_or(t);
    // Up to the first `/`, `?` or `#` (ASCII: a byte search is a char search).
    let t = match t.bytes().position(|b| matches!(b, b'/' | b'?' | b'#')) {
        Some(end) => &t[..end],
        None => t,
    };
    let t = t.trim_end_matches('.');
    // A DNS name has at most 253 characters; a longer value is not one (and would make a
    // needlessly long store key).
    if t.is_empty()
        || t.len() > 253
        || !t.as_bytes().contains(&b'.')
        || t.bytes()
            .any(|b| b.is_ascii_whitespace() || b == b'@' || b == b':')
        || t.parse::<IpAddr>().is_ok()
    {
        return None;
    }
    Some(t)
}

/// The non-empty tags of a `tag` value, split on `,` and `;` and trimmed.
fn split_tags(t: &str) -> Vec<&str> {
    let mut tags = Vec::new();
    let mut start = 0;
    // Byte positions: `,` and `;` are ASCII, never part of a longer character.
    for end in t
        .bytes()
        .enumerate()
        .filter(|&(_, b)| b == b',' || b == b';')
        .map(|(i, _)| i)
        .chain([t.len()])
    {
        let s = trim(&t[start..end]);
        if !s.is_empty() {
            tags.push(s);
        }
        start = end + 1;
    }
    tags
}

/// `cve-2021-26855` in any case.
pub fn is_cve(t: &str) -> bool {
    let b = t.as_bytes();
    b.len() >= 13
        && b[..4].eq_ignore_ascii_case(b"cve-")
        && b[4..8].iter().all(u8::is_ascii_digit)
        && b[8] == b'-'
        && b[9..].iter().all(u8::is_ascii_digit)
}

/// Parses Shadowserver times: `2024-01-04 08:04:37` (UTC), with optional fraction, `T`, `Z`,
/// `+00:00`/`+00` or ` UTC`; other RFC 3339 offsets are converted.
pub fn parse_time(s: &str) -> Option<DateTime<Utc>> {
    let b = s.as_bytes();
    // The fixed part is checked as ASCII first, so that byte 19 is a character boundary
    // (`2026-11-20 03:14:0é` must be a bad time, not a panic).
    if b.len() >= 19
        && b[..19].is_ascii()
        && b[4] == b'-'
        && b[7] == b'-'
        && (b[10] == b' ' || b[10] == b'T')
        && b[13] == b':'
        && b[16] == b':'
    {
        let num = |r: std::ops::Range<usize>| -> Option<u32> {
            let mut n = 0u32;
            for &c in &b[r] {
                if !c.is_ascii_digit() {
                    return None;
                }
                n = n * 10 + u32::from(c - b'0');
            }
            Some(n)
        };
        let mut rest = &s[19..];
        let mut nanos = 0u32;
        if let Some(r) = rest.strip_prefix('.') {
            let digits = r.bytes().take_while(u8::is_ascii_digit).count();
            let frac = &r[..digits];
            let mut n: u32 = 0;
            for (i, c) in frac.bytes().take(9).enumerate() {
                n += u32::from(c - b'0') * 10u32.pow(8 - i as u32);
            }
            nanos = n;
            rest = &r[digits..];
        }
        let utc = matches!(
            rest.trim(),
            "" | "Z" | "z" | "+00:00" | "+00" | "+0000" | "UTC"
        );
        if utc {
            let d = NaiveDate::from_ymd_opt(num(0..4)? as i32, num(5..7)?, num(8..10)?)?;
            let t = d.and_hms_nano_opt(num(11..13)?, num(14..16)?, num(17..19)?, nanos)?;
            return Some(t.and_utc());
        }
    }
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scope::ScopeSnapshot;

    fn rec(s: &str) -> csv::ByteRecord {
        let mut r = csv::ReaderBuilder::new()
            .has_headers(false)
            .from_reader(s.as_bytes());
        let mut b = csv::ByteRecord::new();
        r.read_byte_record(&mut b).unwrap();
        b
    }

    fn header(s: &str) -> Vec<String> {
        rec(s)
            .iter()
            .map(|f| String::from_utf8_lossy(f).into_owned())
            .collect()
    }

    #[test]
    fn times() {
        let t = |s| parse_time(s).map(|t| t.to_rfc3339());
        assert_eq!(
            t("2024-01-04 08:04:37").unwrap(),
            "2024-01-04T08:04:37+00:00"
        );
        assert_eq!(
            t("2024-01-04 08:04:37Z").unwrap(),
            "2024-01-04T08:04:37+00:00"
        );
        assert_eq!(
            t("2021-03-27T00:00:00.521730Z").unwrap(),
            "2021-03-27T00:00:00.521730+00:00"
        );
        assert_eq!(
            t("2024-01-04T10:04:37+02:00").unwrap(),
            "2024-01-04T08:04:37+00:00"
        );
        assert!(t("2024-13-04 08:04:37").is_none());
        // A character that is not ASCII across byte 19 is a bad time, not a panic.
        assert!(t("2026-11-20 03:14:0é").is_none());
        assert!(t("2026-11-20 03:14:é").is_none());
        assert!(t("2026-11-20 03:14:00é").is_none());
        assert!(t("2026-11-20 03:14:00.5é").is_none());
        assert!(t("yesterday").is_none());
    }

    #[test]
    fn trim_is_str_trim() {
        let mut cases: Vec<String> = ["", "a", " a", "a ", "\u{a0}a\u{3000}", "é", " é ", "ab"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        for b in 0u8..=0x7f {
            let c = char::from(b);
            cases.extend([
                format!("{c}"),
                format!("{c}x"),
                format!("x{c}"),
                format!("{c}x{c}"),
            ]);
        }
        for c in &cases {
            assert_eq!(trim(c), c.trim(), "{c:?}");
            assert_eq!(is_null(c), is_null_trimmed(c.trim()), "{c:?}");
        }
        for t in ["", "a", " a , b;;c ;", ",;", " \u{a0}x\u{a0};é, y"] {
            let want: Vec<&str> = t
                .split([',', ';'])
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .collect();
            assert_eq!(split_tags(t), want, "{t:?}");
        }
        for s in [
            "critical",
            "HIGH",
            " medium ",
            "Low",
            "info",
            "informational",
            "x",
            "",
        ] {
            assert_eq!(parse_severity(s), s.parse().ok(), "{s}");
        }
    }

    #[test]
    fn host_names() {
        let h = |v: &str| host_name(Cow::Borrowed(v)).map(Cow::into_owned);
        assert_eq!(
            h("https://WWW.Example.org./x?y").as_deref(),
            Some("www.example.org")
        );
        assert_eq!(h("mail.example.org").as_deref(), Some("mail.example.org"));
        assert_eq!(
            host_name(Cow::Owned("Ns.Example.org".into())).as_deref(),
            Some("ns.example.org")
        );
        for junk in [
            "192.0.2.7",
            "localhost",
            "a b.example",
            "x@example.org",
            "[::1]:80",
        ] {
            assert_eq!(h(junk), None, "{junk}");
        }
        let long = format!("{}.example.org", "a".repeat(250));
        assert_eq!(h(&long), None, "longer than a DNS name");
        let ok = format!("{}.example.org", "a".repeat(241));
        assert_eq!(h(&ok).map(|s| s.len()), Some(253));
    }

    #[test]
    fn cves() {
        assert!(is_cve("CVE-2024-38063"));
        assert!(is_cve("cve-2021-26855"));
        assert!(!is_cve("cve-21-1"));
        assert!(!is_cve("exchange"));
    }

    #[test]
    fn scan_row_by_header_name() {
        let schema = Schema::bundled();
        let scope = ScopeMatcher::new(&ScopeSnapshot {
            prefixes: vec!["192.0.2.0/24".parse().unwrap()],
            ..Default::default()
        });
        // Columns deliberately out of the usual order, plus an unknown one.
        let h = header(
            "\"port\",\"ip\",\"timestamp\",\"severity\",\"protocol\",\"hostname\",\"tag\",\"asn\",\"new_col\",\"naics\"",
        );
        let n = Normalizer::new(&schema, "scan_dns", &h, &scope).unwrap();
        let f = n
            .row(
                &rec("53,\"192.0.2.7\",\"2024-01-04 08:04:37\",\"high\",\"udp\",\"ns.Example.org.\",\"openresolver;CVE-2020-1350\",64496,\"x\",0"),
                "f.csv:2",
            )
            .unwrap();
        assert_eq!(f.ip.unwrap().to_string(), "192.0.2.7");
        assert_eq!(f.port, Some(53));
        assert_eq!(f.protocol.as_deref(), Some("udp"));
        assert_eq!(f.asn, Some(64496));
        assert_eq!(f.domain.as_deref(), Some("ns.example.org"));
        assert_eq!(f.severity, Severity::High);
        assert_eq!(f.classification.identifier, "dns-open-resolver");
        assert_eq!(f.extra["new_col"], "x");
        assert!(!f.extra.contains_key("naics"));
        assert_eq!(f.extra["cves"], serde_json::json!(["CVE-2020-1350"]));
        assert!(f.in_scope);
    }

    #[test]
    fn event_subject_follows_scope() {
        let schema = Schema::bundled();
        let h =
            header("timestamp,protocol,src_ip,src_port,src_asn,dst_ip,dst_port,dst_asn,infection");
        let row = rec("2026-11-20 10:00:00,tcp,203.0.113.5,50123,64500,192.0.2.9,8080,64496,mirai");
        // No scope: the default side (src) is the subject.
        let empty = ScopeMatcher::default();
        let n = Normalizer::new(&schema, "event4_sinkhole", &h, &empty).unwrap();
        let f = n.row(&row, "x:2").unwrap();
        assert_eq!(f.ip.unwrap().to_string(), "203.0.113.5");
        assert_eq!(f.port, None, "client ports are not identity");
        assert_eq!(f.extra["port"], "50123");
        assert_eq!(f.extra["dst_ip"], "192.0.2.9");
        assert_eq!(f.classification.identifier, "mirai");
        assert!(!f.in_scope);
        // Our network is on the dst side: that side becomes the subject.
        let scope = ScopeMatcher::new(&ScopeSnapshot {
            prefixes: vec!["192.0.2.0/24".parse().unwrap()],
            ..Default::default()
        });
        let n = Normalizer::new(&schema, "event4_sinkhole", &h, &scope).unwrap();
        let f = n.row(&row, "x:2").unwrap();
        assert_eq!(f.ip.unwrap().to_string(), "192.0.2.9");
        assert_eq!(f.port, Some(8080));
        assert_eq!(f.asn, Some(64496));
        assert_eq!(f.extra["src_ip"], "203.0.113.5");
        assert!(f.in_scope);
    }

    #[test]
    fn blocklist_cidr_and_malformed_rows() {
        let schema = Schema::bundled();
        let scope = ScopeMatcher::default();
        let h = header("timestamp,severity,ip,hostname,source,reason,asn");
        let n = Normalizer::new(&schema, "blocklist", &h, &scope).unwrap();
        let f = n
            .row(&rec("2026-11-20 08:04:37,,198.51.100.0/24,,x,y,0"), "b:2")
            .unwrap();
        assert_eq!(f.network.unwrap().to_string(), "198.51.100.0/24");
        assert_eq!(f.ip, None);
        assert_eq!(f.asn, None, "0 is null");
        assert_eq!(f.severity, Severity::Low);
        let f = n
            .row(&rec("2026-11-20 08:04:37,,198.51.100.7/32,,x,y,"), "b:3")
            .unwrap();
        assert_eq!(f.ip.unwrap().to_string(), "198.51.100.7");
        for bad in [
            "2026-11-20 08:04:37,,999.1.1.1,,x,y,1",
            "not a time,,198.51.100.7,,x,y,1",
            "2026-11-20 03:14:0\u{e9},,198.51.100.7,,x,y,1",
            ",,198.51.100.7,,x,y,1",
            "2026-11-20 08:04:37,,,,x,y,1",
            "2026-11-20 08:04:37,,198.51.100.7,,x,y,1,extra",
        ] {
            assert!(n.row(&rec(bad), "b:9").is_err(), "{bad}");
        }
        // A malformed ASN or severity is not the identity: kept in extra, with a warning.
        let (f, w) = n
            .row_warned(
                &rec("2026-11-20 08:04:37,urgent,198.51.100.7,,x,y,ASX"),
                "b:4",
            )
            .unwrap();
        assert_eq!(f.asn, None);
        assert_eq!(f.extra["asn"], "ASX");
        assert_eq!(f.extra["severity"], "urgent");
        assert_eq!(f.severity, Severity::Low, "the type's default");
        assert_eq!(w.len(), 2, "{w:?}");
        assert!(w[0].contains("urgent") && w[1].contains("ASX"), "{w:?}");
        assert!(Normalizer::new(&schema, "blocklist", &header("a,b,c"), &scope).is_err());
    }

    #[test]
    fn sinkhole_row_keeps_its_finding_when_dst_ip_is_malformed() {
        let schema = Schema::bundled();
        let scope = ScopeMatcher::new(&ScopeSnapshot {
            prefixes: vec!["192.0.2.0/24".parse().unwrap()],
            ..Default::default()
        });
        let h =
            header("timestamp,protocol,src_ip,src_port,src_asn,dst_ip,dst_port,dst_asn,infection");
        let n = Normalizer::new(&schema, "event4_sinkhole", &h, &scope).unwrap();
        // Our infected host on src; the sinkhole's address is garbage.
        let row = rec(
            "2026-11-20 03:14:00,tcp,192.0.2.77,49812,64496,148.81.111.11.12,80,64500,andromeda",
        );
        let (f, w) = n.row_warned(&row, "s:2").unwrap();
        assert_eq!(f.ip.unwrap().to_string(), "192.0.2.77");
        assert_eq!(f.asn, Some(64496));
        assert_eq!(f.extra["dst_ip"], "148.81.111.11.12");
        assert!(f.in_scope);
        assert_eq!(w.len(), 1);
        assert!(
            w[0].contains("dst_ip") && w[0].contains("148.81.111.11.12"),
            "{w:?}"
        );
        // Our host on dst, garbage on src (the default side): dst is the subject.
        let row = rec("2026-11-20 03:14:00,tcp,1.2.3.4.5,49812,64500,192.0.2.9,80,64496,mirai");
        let (f, w) = n.row_warned(&row, "s:3").unwrap();
        assert_eq!(f.ip.unwrap().to_string(), "192.0.2.9");
        assert_eq!(f.extra["src_ip"], "1.2.3.4.5");
        assert_eq!(w.len(), 1);
        // No side in scope and the default side malformed: the identity is malformed.
        let row = rec("2026-11-20 03:14:00,tcp,1.2.3.4.5,49812,64500,203.0.113.9,80,64496,mirai");
        let e = n.row(&row, "s:4").unwrap_err();
        assert!(e.contains("src_ip") && e.contains("1.2.3.4.5"), "{e}");
        // A malformed service port of the subject stays in extra.
        let h = header("timestamp,ip,port,protocol");
        let n = Normalizer::new(&schema, "scan_http", &h, &scope).unwrap();
        let (f, w) = n
            .row_warned(&rec("2026-11-20 03:14:00,192.0.2.5,99999,tcp"), "s:5")
            .unwrap();
        assert_eq!(f.port, None);
        assert_eq!(f.extra["port"], "99999");
        assert_eq!(w.len(), 1);
    }
}
