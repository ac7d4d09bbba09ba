//! [`Filter`]: which findings a worklist shows (`outwatch list`), in domain terms. One parser
//! for every way it is written: the command line's flags, a URL query string (the web view),
//! and back: [`Filter::to_command`] writes the exact `outwatch list …` command (shell-quoted;
//! the digest prints it under its "N more" lines) and [`Filter::to_query_string`] the query.
//! [`Filter::matches`] tells whether a finding is in; [`super::Store::select`] streams those
//! of a store.
//!
//! Within one flag the values are alternatives (`--severity high,critical`: either); different
//! flags must all hold. Times: `--since`/`--until` are about when the provider saw the finding
//! ([`crate::finding::rank::observed`]), `--stored-since`/`--stored-until` about when outwatch
//! last stored it (`last_seen`); since is inclusive, until exclusive (`--until 2026-12-01` ends
//! with November).

use std::cmp::Ordering;
use std::fmt;
use std::net::IpAddr;

use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};
use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::finding::rank;
use crate::finding::{Finding, Severity, Status, UnknownSeverity, domain_name};

/// A filter that cannot be read ([`Filter::parse`]): the flag and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FilterError {
    /// A value of the flag `flag` (without `--`) that cannot be read.
    #[error("--{flag}: {problem}")]
    Value {
        flag: String,
        #[source]
        problem: BadValue,
    },
    #[error("--{0} is given twice")]
    Twice(String),
    #[error("--{0} needs a name")]
    NoName(String),
    #[error("--suppressed and --all exclude each other")]
    SuppressedAndAll,
    #[error("--notified and --not-notified exclude each other")]
    NotifiedAndNot,
    #[error("unknown filter `{0}`")]
    Unknown(String),
}

/// A value of a filter flag that cannot be read; `.0` as written (trimmed).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BadValue {
    #[error("`{0}` is not a date (write YYYY-MM-DD or an RFC 3339 time)")]
    Time(String),
    #[error("`{0}` is not an AS number (write AS64496)")]
    Asn(String),
    #[error("`{0}` is not a prefix (write it like 192.0.2.0/24)")]
    Prefix(String),
    #[error(
        "`{0}` is no classification (write TAXONOMY[/TYPE[/IDENTIFIER]], e.g. \
         malicious-code/c2-server, `*` for any part)"
    )]
    Class(String),
    #[error("unknown status `{0}` (expected new, open, resolved or all)")]
    Status(String),
    #[error(transparent)]
    Severity(#[from] UnknownSeverity),
    #[error("`{0}` is not a domain")]
    Domain(String),
    #[error("unknown order `{0}` (expected rank, severity, time or address)")]
    Sort(String),
}

/// Which life-cycle states a filter lets through: new and open unless told.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Statuses {
    pub new: bool,
    pub open: bool,
    pub resolved: bool,
}

impl Default for Statuses {
    fn default() -> Self {
        Statuses {
            new: true,
            open: true,
            resolved: false,
        }
    }
}

impl Statuses {
    /// No state (a filter that lets nothing through).
    pub const NONE: Statuses = Statuses {
        new: false,
        open: false,
        resolved: false,
    };
    /// Every state (`--status all`).
    pub const ALL: Statuses = Statuses {
        new: true,
        open: true,
        resolved: true,
    };

    /// Whether a finding of this status is in.
    pub fn allows(&self, s: Status) -> bool {
        match s {
            Status::New => self.new,
            Status::Open => self.open,
            Status::Resolved => self.resolved,
        }
    }

    /// As written after `--status`: `all`, or the states by comma.
    fn word(&self) -> String {
        if *self == Statuses::ALL {
            return "all".into();
        }
        [
            (self.new, "new"),
            (self.open, "open"),
            (self.resolved, "resolved"),
        ]
        .iter()
        .filter(|(on, _)| *on)
        .map(|(_, w)| *w)
        .collect::<Vec<_>>()
        .join(",")
    }
}

/// A classification pattern, `TAX[/TYPE[/ID]]` (`*` for any part): lower-case, each part
/// given must equal the finding's.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ClassPattern {
    pub taxonomy: Option<String>,
    pub kind: Option<String>,
    pub identifier: Option<String>,
}

impl ClassPattern {
    fn matches(&self, f: &Finding) -> bool {
        let c = &f.classification;
        let eq = |want: &Option<String>, have: &str| {
            want.as_deref().is_none_or(|w| w.eq_ignore_ascii_case(have))
        };
        eq(&self.taxonomy, &c.taxonomy)
            && eq(&self.kind, &c.kind)
            && eq(&self.identifier, &c.identifier)
    }
}

impl fmt::Display for ClassPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let part = |p: &Option<String>| p.clone().unwrap_or_else(|| "*".into());
        let mut s = part(&self.taxonomy);
        if self.kind.is_some() || self.identifier.is_some() {
            s = format!("{s}/{}", part(&self.kind));
        }
        if self.identifier.is_some() {
            s = format!("{s}/{}", part(&self.identifier));
        }
        f.write_str(&s)
    }
}

/// Which findings a suppression rule covers the worklist shows (`outwatch suppress`): the
/// store cannot tell (rules are read with the config at run time), so the command applies it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Suppressed {
    /// Leave them out (the default).
    #[default]
    Hide,
    /// Only them (`--suppressed`).
    Only,
    /// Them too (`--all`).
    Include,
}

impl Suppressed {
    /// Whether a finding that is (or is not) suppressed is shown.
    pub fn shows(self, suppressed: bool) -> bool {
        match self {
            Suppressed::Hide => !suppressed,
            Suppressed::Only => suppressed,
            Suppressed::Include => true,
        }
    }
}

/// The order of a worklist.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Sort {
    /// The one rank ([`rank::compare`]): severity, threat kind, open first, latest observation.
    #[default]
    Rank,
    /// Most severe first, then the latest observation, then by address.
    Severity,
    /// The latest observation first.
    Time,
    /// By address, numerically ([`rank::address_order`]).
    Address,
}

impl Sort {
    pub const ALL: [Sort; 4] = [Sort::Rank, Sort::Severity, Sort::Time, Sort::Address];

    pub fn as_str(self) -> &'static str {
        match self {
            Sort::Rank => "rank",
            Sort::Severity => "severity",
            Sort::Time => "time",
            Sort::Address => "address",
        }
    }

    /// The order of findings it stands for (`Less`: shown first; total: ties end by
    /// fingerprint).
    pub fn order(self) -> fn(&Finding, &Finding) -> Ordering {
        match self {
            Sort::Rank => rank::compare,
            Sort::Severity => by_severity,
            Sort::Time => by_time,
            Sort::Address => by_address,
        }
    }
}

fn by_severity(a: &Finding, b: &Finding) -> Ordering {
    a.severity
        .cmp(&b.severity)
        .then_with(|| rank::observed(b).cmp(&rank::observed(a)))
        .then_with(|| rank::address_order(a, b))
        .then_with(|| a.fingerprint.cmp(&b.fingerprint))
}

fn by_time(a: &Finding, b: &Finding) -> Ordering {
    rank::observed(b)
        .cmp(&rank::observed(a))
        .then_with(|| a.severity.cmp(&b.severity))
        .then_with(|| rank::address_order(a, b))
        .then_with(|| a.fingerprint.cmp(&b.fingerprint))
}

fn by_address(a: &Finding, b: &Finding) -> Ordering {
    rank::address_order(a, b)
        .then_with(|| a.severity.cmp(&b.severity))
        .then_with(|| a.fingerprint.cmp(&b.fingerprint))
}

/// Which findings a worklist shows, and in which order. Parsed from flags
/// ([`Filter::parse`]) or a query string; written back by [`Filter::to_command`] and
/// [`Filter::to_query_string`]. `asn_prefixes` and `team_prefixes` are filled in by whoever
/// runs it (the scope snapshot, the `[flows]` teams and zones) and never written.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Filter {
    pub status: Statuses,
    /// Any of these severities (none: any).
    pub severity: Vec<Severity>,
    /// At least this severe.
    pub min_severity: Option<Severity>,
    pub source: Vec<String>,
    pub feed: Vec<String>,
    pub class: Vec<ClassPattern>,
    /// Findings whose `asn` is one of these, or whose address lies in `asn_prefixes`.
    pub asn: Vec<u32>,
    /// Findings whose address lies in `team_prefixes` (the `[flows]` teams and zones of these
    /// names).
    pub team: Vec<String>,
    /// Findings about an address in, or a network overlapping, one of these.
    pub prefix: Vec<IpNet>,
    /// Findings about one of these domains or a subdomain (host name, mail address, URL host).
    pub domain: Vec<String>,
    /// Observed (the provider's time, else the stored time) at or after.
    pub since: Option<DateTime<Utc>>,
    /// Observed before.
    pub until: Option<DateTime<Utc>>,
    /// Last stored at or after.
    pub stored_since: Option<DateTime<Utc>>,
    /// Last stored before.
    pub stored_until: Option<DateTime<Utc>>,
    pub sort: Sort,
    /// Findings covered by a suppression rule: left out, only them, or them too.
    #[serde(default)]
    pub suppressed: Suppressed,
    /// Only findings `outwatch notify` sent to a contact (`Some(true)`, `--notified`), or
    /// only those it did not (`Some(false)`, `--not-notified`). Applied by the command (the
    /// sendings are state), like `suppressed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notified: Option<bool>,
    /// Only findings no contact owns (`--no-contact`; the contacts are config, applied by the
    /// command).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub no_contact: bool,
    /// The prefixes announced by `asn` (run time; not written back).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub asn_prefixes: Vec<IpNet>,
    /// The prefixes of the teams and zones named by `team` (run time; not written back).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub team_prefixes: Vec<IpNet>,
}

/// The flags a filter is written with, in the order [`Filter::to_command`] writes them.
pub(crate) const FLAGS: [&str; 20] = [
    "status",
    "severity",
    "min-severity",
    "source",
    "feed",
    "class",
    "asn",
    "team",
    "prefix",
    "domain",
    "since",
    "until",
    "stored-since",
    "stored-until",
    "sort",
    "suppressed",
    "all",
    "notified",
    "not-notified",
    "no-contact",
];

/// A date (midnight UTC) or an RFC 3339 time, as `--since` and its kin take.
pub(crate) fn parse_time(s: &str) -> Result<DateTime<Utc>, BadValue> {
    let s = s.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&Utc));
    }
    NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .map(|d| d.and_hms_opt(0, 0, 0).expect("midnight").and_utc())
        .map_err(|_| BadValue::Time(s.to_string()))
}

/// A time as [`parse_time`] reads it back: a date when it is midnight, else RFC 3339.
fn time_word(t: DateTime<Utc>) -> String {
    if t.time() == chrono::NaiveTime::MIN {
        t.format("%Y-%m-%d").to_string()
    } else {
        t.to_rfc3339_opts(SecondsFormat::AutoSi, true)
    }
}

/// `AS64496` or `64496`.
pub(crate) fn parse_asn(s: &str) -> Result<u32, BadValue> {
    let t = s.trim();
    let digits = t
        .strip_prefix("AS")
        .or_else(|| t.strip_prefix("as"))
        .or_else(|| t.strip_prefix("As"))
        .unwrap_or(t);
    match digits.parse::<u32>() {
        Ok(n) if n > 0 && digits.bytes().all(|b| b.is_ascii_digit()) => Ok(n),
        _ => Err(BadValue::Asn(t.to_string())),
    }
}

/// A prefix (host bits dropped) or a single address.
fn parse_prefix(s: &str) -> Result<IpNet, BadValue> {
    let t = s.trim();
    if let Ok(ip) = t.parse::<IpAddr>() {
        return Ok(IpNet::from(ip));
    }
    t.parse::<IpNet>()
        .map(|n| n.trunc())
        .map_err(|_| BadValue::Prefix(t.to_string()))
}

fn parse_class(s: &str) -> Result<ClassPattern, BadValue> {
    let t = s.trim().to_ascii_lowercase();
    let mut parts = t.splitn(3, '/');
    let mut part = || match parts.next().map(str::trim) {
        None | Some("*") => Ok(None),
        Some("") => Err(BadValue::Class(t.clone())),
        Some(p) => Ok(Some(p.to_string())),
    };
    Ok(ClassPattern {
        taxonomy: part()?,
        kind: part()?,
        identifier: part()?,
    })
}

fn parse_statuses(s: &str, into: &mut Statuses) -> Result<(), BadValue> {
    for w in s.split(',') {
        match w.trim().to_ascii_lowercase().as_str() {
            "new" => into.new = true,
            "open" => into.open = true,
            "resolved" => into.resolved = true,
            "all" => *into = Statuses::ALL,
            other => return Err(BadValue::Status(other.to_string())),
        }
    }
    Ok(())
}

fn push_sorted<T: Ord>(v: &mut Vec<T>, x: T) {
    if let Err(i) = v.binary_search(&x) {
        v.insert(i, x);
    }
}

/// A name given to `--source`, `--feed` or `--team`: not empty, no white space at its ends.
fn name(flag: &str, s: &str) -> Result<String, FilterError> {
    let t = s.trim();
    if t.is_empty() {
        return Err(FilterError::NoName(flag.to_string()));
    }
    Ok(t.to_string())
}

/// The host of a URL (`http://Host:8080/path` → `host`, `[2001:db8::1]` → `2001:db8::1`),
/// lower-case, when it has one.
pub(crate) fn url_host(url: &str) -> Option<String> {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split(['/', '?', '#']).next()?;
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = if let Some(v6) = host_port.strip_prefix('[') {
        v6.split(']').next()?
    } else {
        host_port.split(':').next()?
    };
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    (!host.is_empty()).then_some(host)
}

/// Whether `name` is `domain` or one of its subdomains.
fn under(name: &str, domain: &str) -> bool {
    name.len() >= domain.len()
        && name[name.len() - domain.len()..].eq_ignore_ascii_case(domain)
        && (name.len() == domain.len() || name.as_bytes()[name.len() - domain.len() - 1] == b'.')
}

/// Whether the finding's address or network lies in (overlaps) one of `nets`.
fn within(f: &Finding, nets: &[IpNet]) -> bool {
    if let Some(ip) = f.ip {
        return nets.iter().any(|n| n.contains(&ip));
    }
    if let Some(m) = f.network {
        return nets.iter().any(|n| n.contains(&m) || m.contains(n));
    }
    false
}

impl Filter {
    /// A filter from `(flag, value)` pairs as given on the command line (`("severity",
    /// "high,critical")`, flag names without `--`); repeated flags add alternatives. `Err` says
    /// what is wrong, naming the flag.
    pub fn parse<'a>(
        pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<Filter, FilterError> {
        let mut f = Filter::default();
        let mut status: Option<Statuses> = None;
        for (flag, value) in pairs {
            let at = |problem: BadValue| FilterError::Value {
                flag: flag.to_string(),
                problem,
            };
            let once = |t: &Option<DateTime<Utc>>| {
                if t.is_some() {
                    Err(FilterError::Twice(flag.to_string()))
                } else {
                    Ok(())
                }
            };
            match flag {
                "status" => {
                    parse_statuses(value, status.get_or_insert(Statuses::NONE)).map_err(at)?
                }
                "severity" => {
                    for w in value.split(',') {
                        push_sorted(
                            &mut f.severity,
                            w.parse::<Severity>().map_err(|e| at(e.into()))?,
                        );
                    }
                }
                "min-severity" => {
                    if f.min_severity.is_some() {
                        return Err(FilterError::Twice(flag.to_string()));
                    }
                    f.min_severity = Some(value.parse::<Severity>().map_err(|e| at(e.into()))?);
                }
                "source" => push_sorted(&mut f.source, name(flag, value)?),
                "feed" => push_sorted(&mut f.feed, name(flag, value)?),
                "team" => push_sorted(&mut f.team, name(flag, value)?),
                "class" => push_sorted(&mut f.class, parse_class(value).map_err(at)?),
                "asn" => {
                    for w in value.split(',') {
                        push_sorted(&mut f.asn, parse_asn(w).map_err(at)?);
                    }
                }
                "prefix" => {
                    for w in value.split(',') {
                        push_sorted(&mut f.prefix, parse_prefix(w).map_err(at)?);
                    }
                }
                "domain" => {
                    let d = domain_name(value)
                        .ok_or_else(|| at(BadValue::Domain(value.trim().to_string())))?;
                    push_sorted(&mut f.domain, d);
                }
                "since" => {
                    once(&f.since)?;
                    f.since = Some(parse_time(value).map_err(at)?);
                }
                "until" => {
                    once(&f.until)?;
                    f.until = Some(parse_time(value).map_err(at)?);
                }
                "stored-since" => {
                    once(&f.stored_since)?;
                    f.stored_since = Some(parse_time(value).map_err(at)?);
                }
                "stored-until" => {
                    once(&f.stored_until)?;
                    f.stored_until = Some(parse_time(value).map_err(at)?);
                }
                "sort" => {
                    f.sort = Sort::ALL
                        .into_iter()
                        .find(|s| s.as_str().eq_ignore_ascii_case(value.trim()))
                        .ok_or_else(|| at(BadValue::Sort(value.trim().to_string())))?;
                }
                // Switches: a value (from a query string) is not read.
                "suppressed" | "all" => {
                    let mode = if flag == "all" {
                        Suppressed::Include
                    } else {
                        Suppressed::Only
                    };
                    if f.suppressed != Suppressed::Hide && f.suppressed != mode {
                        return Err(FilterError::SuppressedAndAll);
                    }
                    f.suppressed = mode;
                }
                "notified" | "not-notified" => {
                    let want = flag == "notified";
                    if f.notified.is_some_and(|w| w != want) {
                        return Err(FilterError::NotifiedAndNot);
                    }
                    f.notified = Some(want);
                }
                "no-contact" => f.no_contact = true,
                other => return Err(FilterError::Unknown(other.to_string())),
            }
        }
        if let Some(s) = status {
            f.status = s;
        }
        Ok(f)
    }

    /// The filter with its lists sorted and without repeats, as [`Filter::parse`] makes them:
    /// a filter built field by field (the digest's) compares equal to its command read back.
    pub fn normalized(mut self) -> Filter {
        fn tidy<T: Ord>(v: &mut Vec<T>) {
            v.sort();
            v.dedup();
        }
        tidy(&mut self.severity);
        tidy(&mut self.source);
        tidy(&mut self.feed);
        tidy(&mut self.class);
        tidy(&mut self.asn);
        tidy(&mut self.team);
        for p in &mut self.prefix {
            *p = p.trunc();
        }
        tidy(&mut self.prefix);
        tidy(&mut self.domain);
        self
    }

    /// The filter's flags as `(flag, value)` pairs, in [`FLAGS`] order, defaults left out,
    /// lists sorted: what [`Filter::parse`] reads back to this filter ([`Filter::normalized`]).
    pub fn pairs(&self) -> Vec<(&'static str, String)> {
        let normal = self.clone().normalized();
        let this = &normal;
        let mut out: Vec<(&'static str, String)> = Vec::new();
        let join = |v: Vec<String>| v.join(",");
        if this.status != Statuses::default() {
            out.push(("status", this.status.word()));
        }
        if !this.severity.is_empty() {
            out.push((
                "severity",
                join(this.severity.iter().map(|s| s.to_string()).collect()),
            ));
        }
        if let Some(s) = this.min_severity {
            out.push(("min-severity", s.to_string()));
        }
        // Free text (names, patterns) one flag each: a comma in them stays theirs.
        out.extend(this.source.iter().map(|s| ("source", s.clone())));
        out.extend(this.feed.iter().map(|s| ("feed", s.clone())));
        out.extend(this.class.iter().map(|c| ("class", c.to_string())));
        if !this.asn.is_empty() {
            out.push((
                "asn",
                join(this.asn.iter().map(|a| format!("AS{a}")).collect()),
            ));
        }
        out.extend(this.team.iter().map(|s| ("team", s.clone())));
        if !this.prefix.is_empty() {
            out.push((
                "prefix",
                join(this.prefix.iter().map(|p| p.to_string()).collect()),
            ));
        }
        out.extend(this.domain.iter().map(|s| ("domain", s.clone())));
        for (flag, t) in [
            ("since", this.since),
            ("until", this.until),
            ("stored-since", this.stored_since),
            ("stored-until", this.stored_until),
        ] {
            if let Some(t) = t {
                out.push((flag, time_word(t)));
            }
        }
        if this.sort != Sort::default() {
            out.push(("sort", this.sort.as_str().into()));
        }
        match this.suppressed {
            Suppressed::Hide => {}
            Suppressed::Only => out.push(("suppressed", String::new())),
            Suppressed::Include => out.push(("all", String::new())),
        }
        match this.notified {
            Some(true) => out.push(("notified", String::new())),
            Some(false) => out.push(("not-notified", String::new())),
            None => {}
        }
        if this.no_contact {
            out.push(("no-contact", String::new()));
        }
        out
    }

    /// The exact command that shows this worklist: `outwatch list` and the filter's flags,
    /// each value shell-quoted when it needs it (`--class 'fraud/phishing/o'\''reilly'`).
    pub fn to_command(&self) -> String {
        let mut s = String::from("outwatch list");
        for (flag, value) in self.pairs() {
            s.push_str(" --");
            s.push_str(flag);
            if value.is_empty() {
                continue; // a switch
            }
            // A value that looks like an option is attached (`--feed=-x`).
            s.push(if value.starts_with('-') { '=' } else { ' ' });
            s.push_str(&shell_quote(&value));
        }
        s
    }

    /// The filter as a URL query string (`status=all&severity=high%2Ccritical`; empty for the
    /// default filter), read back by [`Filter::from_query_string`].
    pub fn to_query_string(&self) -> String {
        let mut q = form_urlencoded::Serializer::new(String::new());
        for (flag, value) in self.pairs() {
            q.append_pair(flag, &value);
        }
        q.finish()
    }

    /// A filter from a URL query string (with or without its leading `?`).
    pub fn from_query_string(q: &str) -> Result<Filter, FilterError> {
        let pairs: Vec<(String, String)> =
            form_urlencoded::parse(q.strip_prefix('?').unwrap_or(q).as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect();
        Filter::parse(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())))
    }

    /// Whether resolved findings can be in (a store walk may skip them otherwise).
    pub fn includes_resolved(&self) -> bool {
        self.status.resolved
    }

    /// Whether `f` is in the worklist.
    pub fn matches(&self, f: &Finding) -> bool {
        let any = |v: &[String], have: &str| v.is_empty() || v.iter().any(|x| x == have);
        let observed = rank::observed(f);
        self.status.allows(f.status)
            && (self.severity.is_empty() || self.severity.contains(&f.severity))
            && self.min_severity.is_none_or(|m| f.severity <= m)
            && any(&self.source, &f.source)
            && any(&self.feed, &f.feed)
            && (self.class.is_empty() || self.class.iter().any(|c| c.matches(f)))
            && (self.asn.is_empty()
                || f.asn.is_some_and(|a| self.asn.contains(&a))
                || within(f, &self.asn_prefixes))
            && (self.team.is_empty() || within(f, &self.team_prefixes))
            && (self.prefix.is_empty() || within(f, &self.prefix))
            && (self.domain.is_empty() || self.about_domain(f))
            && self.since.is_none_or(|t| observed >= t)
            && self.until.is_none_or(|t| observed < t)
            && self.stored_since.is_none_or(|t| f.last_seen >= t)
            && self.stored_until.is_none_or(|t| f.last_seen < t)
    }

    /// Whether the finding's host name, mail domain or URL host is under one of `domain`.
    fn about_domain(&self, f: &Finding) -> bool {
        let mail = f
            .email
            .as_deref()
            .and_then(|e| e.rsplit_once('@'))
            .map(|x| x.1);
        let host = f.url.as_deref().and_then(url_host);
        [f.domain.as_deref(), mail, host.as_deref()]
            .into_iter()
            .flatten()
            .any(|n| self.domain.iter().any(|d| under(n, d)))
    }
}

/// `s` as one shell word: as it is when it is plain (letters, digits, `-_.,:/@%+=`), else in
/// single quotes (a `'` inside written `'\''`).
pub(crate) fn shell_quote(s: &str) -> String {
    let plain = !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.,:/@%+=".contains(&b));
    if plain {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

#[cfg(test)]
mod tests;
