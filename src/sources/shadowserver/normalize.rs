//! One Shadowserver CSV row → one [`Finding`], by header name, never by position.
//!
//! The header is analysed once per file ([`Normalizer::new`]); each row then costs one pass
//! over its fields. Rules (the same for all report types):
//! - the *subject* is `ip` (single-host reports) or one side of an event report: `src_*` by
//!   default, `dst_*` for `*_ddos_target` reports, `http_referer_*` where present. When the
//!   default side lies outside our scope but another side lies inside, that side is the subject;
//! - `ip` holding a CIDR (blocklist) becomes `network`;
//! - only an empty cell is empty: `0`, `-` and `unknown` are values and are kept (an ASN of `0`,
//!   which names no network, stays in `extra.asn`);
//! - `severity` column when valid, else the type's default; `timestamp` → `time_source` (UTC);
//! - `tag` is split on `,` and `;` into `extra.tags`, CVE ids go to `extra.cves`;
//! - `url` is the `url` column when it is an absolute http(s) URL, else it is assembled from a
//!   host column (`http_host`) and a path (`url` or `http_url`, a request line's method and
//!   version dropped), with the scheme of `application` / `url_scheme` and the server's port
//!   ([`url`]);
//! - the columns `identity.tsv` names for the type become the finding's identity parts
//!   (`column=value`), so rows that differ in them are different findings;
//! - every other non-empty column lands in `extra` under its header name (subject-side columns
//!   lose their prefix: `src_geo` → `geo`).

mod url;

use std::borrow::Cow;
use std::net::IpAddr;

use chrono::{DateTime, NaiveDate, Utc};
use ipnet::IpNet;

use super::schema::{Schema, TypeInfo};
use crate::finding::{Classification, ExtraVal, ExtraView, Finding, FindingView, Severity, Status};
use crate::scope::ScopeMark;
use crate::scope::ScopeMatcher;

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

/// A column that goes to `extra` (unless empty), decided once per header and subject side.
#[derive(Debug, Clone)]
struct ExtraColumn {
    col: usize,
    key: String,
    /// The key is that of the previous column of the plan (the later column wins).
    repeats_key: bool,
    /// Left out when the row's finding took this column's value as that field.
    unless: Option<Filled>,
}

/// A finding field that a column's value became (the column then stays out of `extra`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Filled {
    /// `domain`, from the subject's `hostname`.
    Hostname,
    /// `domain`, from the type's domain column (`TypeInfo::domain_column`).
    DomainColumn,
    /// `url`, the `url` column as written.
    Url,
    /// `email`.
    Email,
}

/// The columns a row's finding is built from, found once per header.
#[derive(Debug, Clone, Default)]
struct Columns {
    timestamp: Option<usize>,
    severity: Option<usize>,
    protocol: Option<usize>,
    tag: Option<usize>,
    infection: Option<usize>,
    url: Option<usize>,
    email: Option<usize>,
    application: Option<usize>,
    /// The subject's host name when the report has no `hostname` (`TypeInfo::domain_column`).
    domain: Option<usize>,
    domain_fallback: Vec<usize>,
    /// The columns of the finding's identity parts and their names, sorted by name.
    identity: Vec<(usize, String)>,
    /// Where an assembled URL's parts are, when the report has a host column.
    url_parts: Option<url::UrlColumns>,
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
    cols: Columns,
}

/// Buffers reused from row to row of one report, so that a row allocates nothing for its
/// identity parts and assembled URL once they have grown.
#[derive(Debug, Default)]
pub struct RowScratch {
    /// The row's warnings (malformed values kept in `extra`): appended to, drained by the
    /// caller.
    pub warnings: Vec<String>,
    /// Identity parts (`column=value`); a row uses the first few.
    identity: Vec<String>,
    /// An assembled URL.
    url: String,
}

/// Whether a value means "nothing": only an empty (or blank) cell does.
#[inline]
pub fn is_null(v: &str) -> bool {
    trim(v).is_empty()
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

/// One row's view of its cells: the record, and whether it is all ASCII (one check per row).
#[derive(Clone, Copy)]
struct Row<'r> {
    rec: &'r csv::ByteRecord,
    ascii: bool,
}

impl<'r> Row<'r> {
    /// A non-empty field, trimmed.
    #[inline]
    fn value(self, i: Option<usize>) -> Option<Cow<'r, str>> {
        let v = text(self.rec, i?, self.ascii);
        if v.is_empty() { None } else { Some(v) }
    }
}

/// The subject's fields of a row (`ip`, `network`, service `port`, `asn`, `domain`) and the
/// malformed or non-indicator values to keep in `extra` instead.
#[derive(Default)]
struct SubjectFields<'r> {
    ip: Option<IpAddr>,
    network: Option<IpNet>,
    port: Option<u16>,
    asn: Option<u32>,
    domain: Option<Cow<'r, str>>,
    /// Where `domain` came from.
    domain_from: Option<Filled>,
    /// A service port that is not a port, kept as written.
    kept_port: Option<Cow<'r, str>>,
    /// An ASN that is not one, or `0` (which names no network), kept as written.
    kept_asn: Option<Cow<'r, str>>,
}

/// A row's classification and severity.
struct Classified<'r, 'n> {
    classification: Cow<'n, Classification>,
    severity: Severity,
    /// A severity cell that names no severity, kept as written.
    bad_severity: Option<Cow<'r, str>>,
}

/// Why a row is rejected: the identity of its finding is missing or malformed, or its values
/// cannot be told apart. Values are clipped for display.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RowRejected {
    #[error("the row has {got} fields, the header has {header}")]
    TooWide { got: usize, header: usize },
    #[error("the row names no address, network, host name, URL or e-mail")]
    NoIndicator,
    #[error("`{column}` is not an IP address or network: `{value}`")]
    BadAddress { column: String, value: String },
    #[error("bad timestamp `{0}`")]
    BadTime(String),
    #[error("the row has no timestamp")]
    NoTime,
}

/// A first line that is not a Shadowserver report header.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the first line is not a Shadowserver report header (no `timestamp` column): {0}")]
pub struct NotAReport(pub String);

impl<'a> Normalizer<'a> {
    /// Analyses the header. Fails when the header is not a Shadowserver report header.
    pub fn new(
        schema: &Schema,
        report_type: &str,
        header: &[String],
        scope: &'a ScopeMatcher,
    ) -> Result<Self, NotAReport> {
        let names: Vec<String> = header
            .iter()
            .map(|h| h.trim().trim_start_matches('\u{feff}').to_ascii_lowercase())
            .collect();
        let find = |n: &str| names.iter().position(|h| h == n);
        if find("timestamp").is_none() {
            return Err(NotAReport(crate::text::clip(&names.join(","), 120)));
        }
        let canonical = schema.canonical(report_type).to_string();
        let info = schema.info(&canonical);
        let (sides, side_of) = find_sides(&names, report_type.ends_with("_ddos_target"));
        let cols = Columns {
            timestamp: find("timestamp"),
            severity: find("severity"),
            protocol: find("protocol"),
            tag: find("tag"),
            infection: find("infection"),
            url: find("url"),
            email: find("email"),
            application: find("application"),
            domain: info.domain_column.as_deref().and_then(find),
            domain_fallback: DOMAIN_FALLBACK.iter().filter_map(|n| find(n)).collect(),
            identity: info
                .identity
                .iter()
                .filter_map(|n| find(n).map(|i| (i, n.clone())))
                .collect(),
            url_parts: url::UrlColumns::find(&find),
        };
        let extra_plans = (0..=sides.len())
            .map(|plan| extra_plan(&names, &sides, &side_of, &cols, plan.checked_sub(1)))
            .collect();
        let fixed_classification = (info.when_tag.is_empty() && info.identifier.is_some())
            .then(|| info.classify(&canonical, None, &[]));
        Ok(Normalizer {
            info,
            fixed_classification,
            report_type: canonical,
            scope,
            names,
            sides,
            extra_plans,
            cols,
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
    pub fn row(&self, rec: &csv::ByteRecord, raw: &str) -> Result<Finding, RowRejected> {
        self.row_view(rec, raw, &mut RowScratch::default(), |v| v.to_finding())
    }

    /// [`Normalizer::row`] with the row's warnings (malformed values kept in `extra`).
    pub fn row_warned(
        &self,
        rec: &csv::ByteRecord,
        raw: &str,
    ) -> Result<(Finding, Vec<String>), RowRejected> {
        let mut scratch = RowScratch::default();
        let f = self.row_view(rec, raw, &mut scratch, |v| v.to_finding())?;
        Ok((f, scratch.warnings))
    }

    /// Normalises one record and hands the finding to `emit` as a sealed view borrowing from
    /// `rec` and `scratch` (no owned copy of its fields). `Err` is the reason the row is
    /// rejected.
    ///
    /// A row is rejected only when the identity of its finding is missing or malformed: the
    /// subject's address (or, without one, its host name, URL or e-mail), and the `timestamp`
    /// every report row carries; or when it has more fields than the header (its values
    /// cannot be told apart). Any other malformed value (another side's address, a port, an
    /// ASN, a severity, a host name a URL cannot be made of) is kept as written in `extra` and
    /// described in `scratch.warnings` (appended to; nothing is allocated for a row without
    /// warnings).
    pub fn row_view<T>(
        &self,
        rec: &csv::ByteRecord,
        raw: &str,
        scratch: &mut RowScratch,
        emit: impl FnOnce(&FindingView<'_>) -> T,
    ) -> Result<T, RowRejected> {
        // Short rows happen in real reports (a trailing column left out): the missing fields
        // are empty, as Python's DictReader treats them. More fields than the header is broken.
        if rec.len() > self.names.len() {
            return Err(RowRejected::TooWide {
                got: rec.len(),
                header: self.names.len(),
            });
        }
        // Real reports are nearly always ASCII: one check per row.
        let row = Row {
            rec,
            ascii: rec.as_slice().is_ascii(),
        };
        let RowScratch {
            warnings,
            identity,
            url: url_buf,
        } = scratch;
        let chosen = self.choose_subject(row, warnings)?;
        let time_source = self.time_source(row)?;
        let tag_text = row.value(self.cols.tag);
        let tags: Vec<&str> = tag_text.as_deref().map(split_tags).unwrap_or_default();
        let c = self.classify(row, &tags, warnings);
        let subject_idx = chosen.as_ref().map(|(i, _)| *i);
        let mut s = self.subject_fields(row, chosen, warnings);
        let (url, url_from_col) = match url::row_url(row, &self.cols, url_buf, warnings) {
            Some((u, from_col)) => (Some(u), from_col),
            None => (None, false),
        };
        let email = row
            .value(self.cols.email)
            .filter(|e| e.contains('@'))
            .map(lower);
        self.require_indicator(row, &mut s, url.is_some() || email.is_some())?;
        let identity_len = self.identity_parts(row, identity);
        let protocol = row.value(self.cols.protocol).map(lower);
        let filled = [
            s.domain_from,
            url_from_col.then_some(Filled::Url),
            email.as_ref().map(|_| Filled::Email),
        ];
        let mut extra: Vec<(&str, ExtraVal<'_>)> = self.extra(row, subject_idx, &filled);
        for (key, v) in [
            ("port", s.kept_port.take()),
            ("asn", s.kept_asn.take()),
            ("severity", c.bad_severity),
        ] {
            if let Some(v) = v {
                set_sorted(&mut extra, key, ExtraVal::Text(v));
            }
        }
        let cves = cves(&tags);
        self.tags_and_application(row, &mut extra, &tags, &cves, tag_text.as_deref());
        let mut view = FindingView {
            source: crate::finding::SourceId::Shadowserver.name(),
            feed: &self.report_type,
            classification: &c.classification,
            ip: s.ip,
            network: s.network,
            port: s.port,
            protocol: protocol.as_deref(),
            asn: s.asn,
            domain: s.domain.as_deref(),
            url: url.as_deref(),
            email: email.as_deref(),
            severity: c.severity,
            time_source: Some(time_source),
            first_seen: DateTime::<Utc>::UNIX_EPOCH,
            last_seen: DateTime::<Utc>::UNIX_EPOCH,
            times_seen: 0,
            status: Status::New,
            in_scope: true,
            extra: ExtraView::Pairs(&[]),
            raw: Some(raw),
            identity: &identity[..identity_len],
            history: &[],
        };
        view.in_scope = self.mark_scope(&view, &mut extra);
        view.extra = ExtraView::Pairs(&extra);
        Ok(emit(&view))
    }

    /// A row without an address or network is about the host name of a fallback column
    /// (`request`, `website`, ...) when it has one; a row that names nothing at all (no URL
    /// or e-mail either, `has_other`) has no identity and is rejected.
    fn require_indicator<'r>(
        &self,
        row: Row<'r>,
        s: &mut SubjectFields<'r>,
        has_other: bool,
    ) -> Result<(), RowRejected> {
        if s.ip.is_none() && s.network.is_none() && s.domain.is_none() {
            s.domain = self
                .cols
                .domain_fallback
                .iter()
                .find_map(|&i| row.value(Some(i)).and_then(host_name));
        }
        if s.ip.is_none() && s.network.is_none() && s.domain.is_none() && !has_other {
            return Err(RowRejected::NoIndicator);
        }
        Ok(())
    }

    /// `extra.tags` and `extra.cves` (or the `tag` cell as written when it holds separators
    /// only), and the type's application when the row names none.
    fn tags_and_application<'e>(
        &'e self,
        row: Row<'_>,
        extra: &mut Vec<(&'e str, ExtraVal<'e>)>,
        tags: &'e [&'e str],
        cves: &'e [String],
        tag_text: Option<&'e str>,
    ) {
        if !tags.is_empty() {
            set_sorted(extra, "tags", ExtraVal::Strs(tags));
            if !cves.is_empty() {
                set_sorted(extra, "cves", ExtraVal::Strings(cves));
            }
        } else if let Some(t) = tag_text {
            // Separators only (`,`): no tag, but a value all the same.
            set_sorted(extra, "tag", ExtraVal::Text(Cow::Borrowed(t)));
        }
        if row.value(self.cols.application).is_none()
            && let Some(app) = &self.info.application
        {
            set_sorted(extra, "application", ExtraVal::Text(Cow::Borrowed(app)));
        }
    }

    /// Whether the finding is in our scope; what matched goes to `extra` (`matched_prefix`,
    /// `matched_asn`, `matched_domain`).
    fn mark_scope<'e>(
        &self,
        view: &FindingView<'e>,
        extra: &mut Vec<(&'e str, ExtraVal<'e>)>,
    ) -> bool
    where
        'a: 'e,
    {
        let mark = ScopeMark::of(view, self.scope);
        if let Some(p) = mark.prefix {
            set_sorted(extra, "matched_prefix", ExtraVal::Net(p));
        }
        if let Some(a) = mark.asn {
            set_sorted(extra, "matched_asn", ExtraVal::U64(a.into()));
        }
        if let Some(d) = mark.domain {
            set_sorted(extra, "matched_domain", ExtraVal::Text(Cow::Borrowed(d)));
        }
        mark.in_scope
    }

    /// The subject side: the first in scope, else the first with an address. A malformed
    /// address is the identity (the row is rejected) only when it would be the subject: it
    /// comes first and no side is in scope. Otherwise it stays in `extra` with a warning.
    fn choose_subject(
        &self,
        row: Row<'_>,
        warnings: &mut Vec<String>,
    ) -> Result<Option<(usize, Subject)>, RowRejected> {
        let mut chosen: Option<(usize, Subject)> = None;
        let mut first: Option<(usize, Subject)> = None;
        let mut first_bad: Option<usize> = None;
        let mut bad_sides = 0u32;
        for (si, side) in self.sides.iter().enumerate() {
            let Some(v) = row.value(Some(side.ip)) else {
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
            RowRejected::BadAddress {
                column: self.names[col].clone(),
                value: crate::text::clip(&original(row.rec, col), 60),
            }
        };
        if chosen.is_none()
            && let Some(si) = first_bad
        {
            return Err(bad_ip(si));
        }
        for si in (0..self.sides.len()).filter(|si| bad_sides & (1 << si) != 0) {
            warnings.push(format!("{} (kept in extra)", bad_ip(si)));
        }
        Ok(chosen.or(first))
    }

    /// The row's `timestamp` (part of every row's identity).
    fn time_source(&self, row: Row<'_>) -> Result<DateTime<Utc>, RowRejected> {
        match (row.value(self.cols.timestamp), self.cols.timestamp) {
            (Some(v), Some(i)) => parse_time(&v)
                .ok_or_else(|| RowRejected::BadTime(crate::text::clip(&original(row.rec, i), 40))),
            _ => Err(RowRejected::NoTime),
        }
    }

    /// Classification and severity of a row with these tags.
    fn classify<'r>(
        &self,
        row: Row<'r>,
        tags: &[&str],
        warnings: &mut Vec<String>,
    ) -> Classified<'r, '_> {
        let classification = match &self.fixed_classification {
            Some(c) => Cow::Borrowed(c),
            None => {
                let infection = row.value(self.cols.infection);
                Cow::Owned(
                    self.info
                        .classify(&self.report_type, infection.as_deref(), tags),
                )
            }
        };
        let severity_text = row.value(self.cols.severity);
        let parsed = severity_text.as_deref().and_then(parse_severity);
        let bad_severity = severity_text.filter(|_| parsed.is_none());
        if let Some(s) = &bad_severity {
            warnings.push(format!(
                "bad severity `{}` (kept in extra; the type's default applies)",
                crate::text::clip(s, 20)
            ));
        }
        Classified {
            classification,
            severity: parsed.unwrap_or(self.info.severity),
            bad_severity,
        }
    }

    /// The subject's address or network, service port, ASN and host name.
    fn subject_fields<'r>(
        &self,
        row: Row<'r>,
        chosen: Option<(usize, Subject)>,
        warnings: &mut Vec<String>,
    ) -> SubjectFields<'r> {
        let mut s = SubjectFields::default();
        if let Some((si, subject)) = chosen {
            let side = &self.sides[si];
            match subject {
                Subject::Ip(a) => s.ip = Some(a),
                Subject::Net(n) => s.network = Some(n),
            }
            if let (Some(p), Some(i)) = (row.value(side.port), side.port) {
                match p.parse::<u16>() {
                    Ok(p) if side.port_is_service => s.port = Some(p),
                    Ok(_) => {}
                    Err(_) => {
                        warnings.push(format!(
                            "bad port `{}` (kept in extra)",
                            crate::text::clip(&original(row.rec, i), 20)
                        ));
                        // A client port is in `extra` already; a service port is not.
                        if side.port_is_service {
                            s.kept_port = Some(p);
                        }
                    }
                }
            }
            if let Some(a) = row.value(side.asn) {
                let digits = a.strip_prefix("AS").unwrap_or(&a);
                match digits.parse::<u32>() {
                    // AS 0 names no network (RFC 7607): not an ASN, but kept as written.
                    Ok(0) => s.kept_asn = Some(a),
                    Ok(n) => s.asn = Some(n),
                    Err(_) => {
                        warnings.push(format!(
                            "bad asn `{}` (kept in extra)",
                            crate::text::clip(&a, 20)
                        ));
                        s.kept_asn = Some(a);
                    }
                }
            }
            (s.domain, s.domain_from) = domain_of(row.value(side.hostname), Filled::Hostname);
        }
        if s.domain.is_none() {
            (s.domain, s.domain_from) =
                domain_of(row.value(self.cols.domain), Filled::DomainColumn);
        }
        s
    }

    /// Writes the row's identity parts (`column=value` of each non-empty identity column, in
    /// column-name order) into `parts`, reusing its strings; returns how many there are.
    fn identity_parts(&self, row: Row<'_>, parts: &mut Vec<String>) -> usize {
        let mut n = 0;
        for (col, name) in &self.cols.identity {
            let Some(v) = row.value(Some(*col)) else {
                continue;
            };
            if parts.len() == n {
                parts.push(String::new());
            }
            let p = &mut parts[n];
            p.clear();
            p.push_str(name);
            p.push('=');
            p.push_str(&v);
            n += 1;
        }
        n
    }

    /// The row's `extra` columns, from the plan of its subject side, sorted by key.
    fn extra<'r>(
        &'r self,
        row: Row<'r>,
        subject: Option<usize>,
        filled: &[Option<Filled>],
    ) -> Vec<(&'r str, ExtraVal<'r>)> {
        let plan = &self.extra_plans[subject.map_or(0, |c| c + 1)];
        let mut extra: Vec<(&str, ExtraVal<'_>)> = Vec::with_capacity(plan.len() + 6);
        for c in plan {
            if c.unless.is_some() && filled.contains(&c.unless) {
                continue;
            }
            let Some(v) = row.value(Some(c.col)) else {
                continue;
            };
            let v = ExtraVal::Text(v);
            match extra.last_mut() {
                Some((k, last)) if c.repeats_key && *k == c.key => *last = v,
                _ => extra.push((&c.key, v)),
            }
        }
        extra
    }
}

/// The sides of a header (`ip`, then the event prefixes: `dst_` first for `*_ddos_target`),
/// and for each column the side it belongs to.
fn find_sides(names: &[String], ddos_target: bool) -> (Vec<Side>, Vec<Option<usize>>) {
    let find = |n: &str| names.iter().position(|h| h == n);
    let mut prefixes: Vec<&str> = Vec::new();
    if find("ip").is_some() {
        prefixes.push("");
    }
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
    (sides, side_of)
}

/// The `extra` columns when `chosen` is the subject side (`None`: a row without one), sorted
/// by key; of two columns with one key the later one wins.
fn extra_plan(
    names: &[String],
    sides: &[Side],
    side_of: &[Option<usize>],
    cols: &Columns,
    chosen: Option<usize>,
) -> Vec<ExtraColumn> {
    let mut plan = Vec::new();
    for (i, name) in names.iter().enumerate() {
        if [cols.timestamp, cols.severity, cols.protocol, cols.tag].contains(&Some(i)) {
            continue;
        }
        let mut key = name.as_str();
        let mut unless = None;
        if let Some(s) = side_of[i]
            && chosen == Some(s)
        {
            let side: &Side = &sides[s];
            if i == side.ip || Some(i) == side.asn || (Some(i) == side.port && side.port_is_service)
            {
                continue;
            }
            if Some(i) == side.hostname {
                unless = Some(Filled::Hostname);
            }
            if let Some((_, n)) = side.members.iter().find(|(m, _)| *m == i) {
                key = n;
            }
        }
        if Some(i) == cols.domain {
            unless = Some(Filled::DomainColumn);
        } else if Some(i) == cols.url {
            unless = Some(Filled::Url);
        } else if Some(i) == cols.email {
            unless = Some(Filled::Email);
        }
        plan.push(ExtraColumn {
            col: i,
            key: key.to_string(),
            repeats_key: false,
            unless,
        });
    }
    // Stable: of two columns with one key, the later one stays later and wins.
    plan.sort_by(|a, b| a.key.cmp(&b.key));
    for j in 1..plan.len() {
        plan[j].repeats_key = plan[j].key == plan[j - 1].key;
    }
    plan
}

/// The host name a cell holds, and whether the cell is that name as written (case and a
/// trailing dot aside), so that it can stay out of `extra` without losing anything.
fn domain_of(cell: Option<Cow<'_, str>>, from: Filled) -> (Option<Cow<'_, str>>, Option<Filled>) {
    let Some(cell) = cell else {
        return (None, None);
    };
    let as_written = |d: &str| cell.trim_end_matches('.').eq_ignore_ascii_case(d);
    match host_name(cell.clone()) {
        Some(d) => {
            let filled = as_written(&d).then_some(from);
            (Some(d), filled)
        }
        None => (None, None),
    }
}

/// The CVE ids among the tags, upper-cased, sorted, each once.
fn cves(tags: &[&str]) -> Vec<String> {
    let mut cves: Vec<String> = tags
        .iter()
        .filter(|t| is_cve(t))
        .map(|t| t.to_ascii_uppercase())
        .collect();
    cves.sort();
    cves.dedup();
    cves
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
mod tests;
