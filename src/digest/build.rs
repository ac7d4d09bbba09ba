//! Building the digest: one pass over the store sorts every finding of our scope into *new*,
//! *still open* or *resolved* for each audience (the main recipients and every route), grouped by
//! severity and category. Counts are exact; only a few findings per group are listed, so a store
//! of 100k findings still makes a readable mail and the pass keeps memory small.
//!
//! Every list is in the one rank of findings ([`crate::finding::rank::compare`]); whatever is
//! not listed is a count with the `outwatch list` command that shows it ([`super::more`]).
//! Findings enter the digest in one place, [`admit`].

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde::Serialize;

use super::more::{ListFilter, more_command};
use super::remediation::{Details, Remediation};
pub use super::section::{LIST_NEW, LIST_OPEN, LIST_RESOLVED, LIST_TOTAL, Section, clean};
use crate::config::DigestRoute;
use crate::finding::rank::{self, Threat};
use crate::finding::{Finding, Severity, SourceId, Status};
use crate::health::{HealthState, SourceHealth};
use crate::store::{Result, Store};
use crate::triage::{Suppressions, is_acked};

/// Whether a finding of an audience takes part in the digest at all: the one place where
/// findings are admitted (a filter that drops findings, such as suppression, goes here).
pub fn admit(f: &Finding) -> bool {
    f.in_scope
}

/// Whether an admitted finding may be named in "act on these first": critical or high, not
/// resolved, not acknowledged (`outwatch ack`).
pub fn act_on(f: &Finding, section: Section) -> bool {
    f.severity <= Severity::High && section != Section::Resolved && !is_acked(f)
}
/// Longest text shown for one attacker-controlled value (URL, extra field).
const MAX_VALUE: usize = 160;
/// Most extra fields shown per finding.
const MAX_DETAILS: usize = 4;
/// Most identifier-specific hints shown per category.
const MAX_SPECIFICS: usize = 5;

/// Which findings an audience hears about.
#[derive(Debug, Clone)]
pub enum Audience {
    /// Everything in scope (the main recipients).
    All,
    /// Findings inside a route's prefixes or domains.
    Route(DigestRoute),
}

impl Audience {
    /// Whether a finding concerns this audience.
    pub fn matches(&self, f: &Finding) -> bool {
        match self {
            Audience::All => true,
            Audience::Route(r) => route_matches(r, f),
        }
    }
}

fn route_matches(r: &DigestRoute, f: &Finding) -> bool {
    if let Some(ip) = f.ip
        && r.prefixes.iter().any(|p| p.contains(&ip))
    {
        return true;
    }
    if let Some(n) = f.network
        && r.prefixes
            .iter()
            .any(|p| p.contains(&n) || n.contains(&p.network()))
    {
        return true;
    }
    let hosts = [
        f.domain.clone(),
        f.email
            .as_deref()
            .and_then(|e| e.rsplit_once('@'))
            .map(|(_, d)| d.to_string()),
        f.url.as_deref().and_then(url_host),
    ];
    hosts.iter().flatten().any(|h| {
        let h = crate::finding::normalize_domain(h);
        r.domains
            .iter()
            .any(|d| h == d.0 || h.strip_suffix(&d.0).is_some_and(|p| p.ends_with('.')))
    })
}

/// The host of a URL (`scheme://[user@]host[:port]/...`), lower-cased.
fn url_host(u: &str) -> Option<String> {
    let rest = u.split_once("://").map_or(u, |(_, r)| r);
    let authority = rest.split(['/', '?', '#']).next()?;
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = if host.starts_with('[') {
        host.split(']').next()?.trim_start_matches('[')
    } else {
        host.split(':').next()?
    };
    (!host.is_empty()).then(|| host.to_ascii_lowercase())
}

/// The time window of one audience: since its last delivered digest (`None`: never) until now.
#[derive(Debug, Clone, Copy)]
pub struct Window {
    pub since: Option<DateTime<Utc>>,
    pub now: DateTime<Utc>,
}

/// When a finding was last resolved (its newest `resolved` history entry).
pub fn resolved_at(f: &Finding) -> Option<DateTime<Utc>> {
    f.history
        .iter()
        .rev()
        .find(|h| h.event == "resolved")
        .map(|h| h.at)
        .or((f.status == Status::Resolved).then_some(f.last_seen))
}

/// The section a finding belongs to in a window, or `None` when it is not part of the digest
/// (out of scope, newer than `now`, or resolved before the window). A finding that came back
/// after being resolved counts as new again.
pub fn classify(f: &Finding, w: &Window) -> Option<Section> {
    if !f.in_scope || f.first_seen > w.now {
        return None;
    }
    if f.status == Status::Resolved {
        let at = resolved_at(f)?;
        let after = w.since.is_none_or(|s| at > s);
        return (after && at <= w.now).then_some(Section::Resolved);
    }
    // First seen, or back after being resolved, since the last digest: news. So is a finding
    // never announced yet (status `new`), e.g. one written while the previous digest scanned.
    let reopened = w.since.is_some_and(|s| {
        f.history
            .iter()
            .any(|h| h.event == "reopened" && h.at > s && h.at <= w.now)
    });
    if reopened || f.status == Status::New || w.since.is_none_or(|s| f.first_seen > s) {
        Some(Section::New)
    } else {
        Some(Section::Open)
    }
}

/// One finding as the templates see it. Every text is cleaned of control characters and
/// shortened; HTML escaping is the template engine's job.
#[derive(Debug, Clone, Serialize)]
pub struct FindingView {
    /// The most specific thing it is about (e-mail, URL, ip:port, network, domain).
    pub indicator: String,
    /// `ip`, `ip:port` or the network, when the finding has one.
    pub address: Option<String>,
    pub ip: Option<String>,
    pub network: Option<String>,
    pub port: Option<u16>,
    pub protocol: Option<String>,
    pub asn: Option<u32>,
    pub domain: Option<String>,
    pub email: Option<String>,
    pub url: Option<String>,
    pub source: String,
    pub feed: String,
    pub identifier: String,
    pub first_seen: String,
    pub last_seen: String,
    /// When it was last observed: the provider's time (`time_source`), else when it was stored.
    pub observed: String,
    /// Whether `observed` is the provider's time (else outwatch's time of storing it).
    pub observed_by_source: bool,
    /// The ports and peer that tell the device apart behind NAT ([`contact`]).
    pub contact: Option<String>,
    pub times_seen: u64,
    pub resolved_at: Option<String>,
    /// A few source-specific fields.
    pub details: Vec<Detail>,
    /// Whether the indicator is a URL (may be broken at any place when long); addresses,
    /// networks, domains and mail addresses are kept whole.
    pub is_url: bool,
}

/// One source-specific field.
#[derive(Debug, Clone, Serialize)]
pub struct Detail {
    pub key: String,
    pub value: String,
}

/// Formats a time for people, in the digest's time zone; every time in a digest has this one
/// format, to the second (what a NAT or DHCP log needs).
pub fn fmt_time(t: DateTime<Utc>, tz: Option<Tz>) -> String {
    match tz {
        Some(tz) => t
            .with_timezone(&tz)
            .format("%Y-%m-%d %H:%M:%S %Z")
            .to_string(),
        None => t.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
    }
}

/// The ports and the peer of an observed connection, as far as the finding has them in
/// `extra`: "source port 50100 → 203.0.113.80:80" when the address is the connecting side,
/// "from 198.51.100.7:50123" when it was connected to. With the observation time they find the
/// device behind NAT, DHCP or CGNAT.
pub fn contact(f: &Finding) -> Option<String> {
    let text = |k: &str| -> Option<String> {
        let v = match f.extra.get(k)? {
            serde_json::Value::String(s) => s.trim().to_string(),
            serde_json::Value::Number(n) => n.to_string(),
            _ => return None,
        };
        (!v.is_empty()).then(|| clean(&v, 60))
    };
    let peer = |ip: String, port: Option<String>| match port {
        Some(p) if ip.contains(':') => format!("[{ip}]:{p}"),
        Some(p) => format!("{ip}:{p}"),
        None => ip,
    };
    if let Some(dst) = text("dst_ip") {
        // Our address connected out: its port is the source port (`src_port`, or `port` where
        // the subject side lost its prefix and the finding has no port of its own).
        let ours = text("src_port").or_else(|| f.port.is_none().then(|| text("port")).flatten());
        let to = peer(dst, text("dst_port"));
        return Some(match ours {
            Some(p) => format!("source port {p} → {to}"),
            None => format!("to {to}"),
        });
    }
    if let Some(src) = text("src_ip") {
        return Some(format!("from {}", peer(src, text("src_port"))));
    }
    text("src_port").map(|p| format!("source port {p}"))
}

fn view(f: &Finding, tz: Option<Tz>, spec: &Details) -> FindingView {
    let c = |s: &Option<String>| s.as_deref().map(|s| clean(s, MAX_VALUE));
    FindingView {
        indicator: clean(&f.indicator(), MAX_VALUE),
        address: match (f.ip, f.port) {
            (Some(ip), Some(p)) if ip.is_ipv6() => Some(format!("[{ip}]:{p}")),
            (Some(ip), Some(p)) => Some(format!("{ip}:{p}")),
            (Some(ip), None) => Some(ip.to_string()),
            (None, _) => f.network.map(|n| n.to_string()),
        },
        ip: f.ip.map(|i| i.to_string()),
        network: f.network.map(|n| n.to_string()),
        port: f.port,
        protocol: c(&f.protocol),
        asn: f.asn,
        domain: c(&f.domain),
        email: c(&f.email),
        url: c(&f.url),
        is_url: f.email.is_none() && f.url.is_some(),
        source: clean(&f.source, 60),
        feed: clean(&f.feed, 80),
        identifier: clean(&f.classification.identifier, 80),
        first_seen: fmt_time(f.first_seen, tz),
        last_seen: fmt_time(f.last_seen, tz),
        observed: fmt_time(rank::observed(f), tz),
        observed_by_source: f.time_source.is_some(),
        contact: contact(f),
        times_seen: f.times_seen,
        resolved_at: (f.status == Status::Resolved)
            .then(|| resolved_at(f))
            .flatten()
            .map(|t| fmt_time(t, tz)),
        details: details(f, spec),
    }
}

/// The fields of a finding worth showing: those `[details]` names for its feed or source, in
/// that order (else any, up to [`MAX_DETAILS`]), never an internal one, lists as words.
pub fn details(f: &Finding, spec: &Details) -> Vec<Detail> {
    let present = |k: &str| {
        f.extra.get(k).filter(|v| {
            !v.is_null() && v.as_str() != Some("") && v.as_array().is_none_or(|a| !a.is_empty())
        })
    };
    let chosen: Vec<&str> = spec
        .fields_for(&f.source, &f.feed)
        .unwrap_or_default()
        .iter()
        .map(String::as_str)
        .filter(|k| present(k).is_some())
        .collect();
    // Nothing of the chosen fields present (a report type with other columns): the first few.
    let keys: Vec<&str> = match chosen.is_empty() {
        false => chosen,
        true => f
            .extra
            .keys()
            .map(String::as_str)
            .filter(|k| !spec.hidden(k) && present(k).is_some())
            .take(MAX_DETAILS)
            .collect(),
    };
    // A value that only repeats an earlier one (a breach's name after its title) is left out.
    let norm = |s: &str| {
        s.chars()
            .filter(|c| c.is_alphanumeric())
            .flat_map(char::to_lowercase)
            .collect::<String>()
    };
    let mut shown: Vec<String> = Vec::new();
    keys.into_iter()
        .filter(|k| !spec.hidden(k))
        .filter(|k| {
            let n = present(k).map(|v| norm(&in_words(v))).unwrap_or_default();
            let new = n.is_empty() || !shown.contains(&n);
            shown.push(n);
            new
        })
        .filter_map(|k| {
            let v = present(k)?;
            let words = match v {
                // Counts read better with separators; other numbers (an ASN, a port) do not.
                serde_json::Value::Number(n) if k.contains("count") || k.contains("hits") => {
                    n.as_u64().map_or_else(|| n.to_string(), thousands)
                }
                // Tags arrive as one comma-separated string.
                serde_json::Value::String(t) if k.starts_with("tag") && !t.contains(' ') => t
                    .split(',')
                    .filter(|x| !x.is_empty())
                    .collect::<Vec<_>>()
                    .join(", "),
                other => in_words(other),
            };
            Some(Detail {
                key: clean(&spec.label(k), 40),
                value: clean(&words, MAX_VALUE),
            })
        })
        .collect()
}

/// A JSON value as a person would write it: lists as "a, b and c" (long ones "… and 7 more"),
/// `true` as "yes", objects as "key: value" pairs.
pub fn in_words(v: &serde_json::Value) -> String {
    use serde_json::Value;
    match v {
        Value::Null => String::new(),
        Value::Bool(true) => "yes".into(),
        Value::Bool(false) => "no".into(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.clone(),
        Value::Array(a) => {
            const SHOWN: usize = 6;
            let items: Vec<String> = a.iter().map(in_words).filter(|s| !s.is_empty()).collect();
            let n = items.len();
            if n > SHOWN {
                format!(
                    "{} and {} more",
                    items[..SHOWN - 1].join(", "),
                    n - (SHOWN - 1)
                )
            } else if n >= 2 {
                format!("{} and {}", items[..n - 1].join(", "), items[n - 1])
            } else {
                items.concat()
            }
        }
        Value::Object(o) => o
            .iter()
            .map(|(k, v)| format!("{}: {}", k.replace('_', " "), in_words(v)))
            .collect::<Vec<_>>()
            .join("; "),
    }
}

fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// One classification type per meaning: RSIT renamed `blacklist` to `blocklist`, and sources
/// use either; the digest shows one category.
pub fn category(kind: &str) -> &str {
    match kind {
        "" => "unknown",
        "blacklist" => "blocklist",
        k => k,
    }
}

/// Findings of one (section, severity, category) group while scanning.
#[derive(Default)]
struct Bucket {
    taxonomy: String,
    /// The classification types merged into the category (`blacklist` and `blocklist`).
    kinds: Vec<String>,
    count: usize,
    /// Candidates for listing, each with its finding (for the rank); compacted to the cap now
    /// and then, best first.
    items: Vec<(Finding, FindingView)>,
    /// Identifiers seen, for identifier-specific advice.
    identifiers: BTreeMap<String, ()>,
}

/// A finding kept only to be ranked: its history and earlier observations dropped.
fn rank_copy(f: &Finding) -> Finding {
    Finding {
        history: Vec::new(),
        observations: Vec::new(),
        raw: None,
        extra: BTreeMap::new(),
        ..f.clone()
    }
}

/// Days in the trend.
pub const TREND_DAYS: usize = 14;
/// Most findings named in "act on these first".
pub const ACT_FIRST: usize = 8;

/// One day of the trend: findings first seen that day, open at its end, resolved that day.
#[derive(Debug, Clone, Default, Serialize)]
pub struct TrendDay {
    /// `11-18`.
    pub date: String,
    /// `Tue`.
    pub weekday: String,
    pub new: usize,
    pub open: usize,
    pub resolved: usize,
    /// Bar lengths in percent of the largest day's open count (0 when it has none; at least 1
    /// for a count above zero, so a bar shows).
    pub new_pct: usize,
    pub open_pct: usize,
    pub resolved_pct: usize,
}

/// A critical or high finding named at the top of the digest.
#[derive(Debug, Clone, Serialize)]
pub struct ActItem {
    pub severity: Severity,
    /// `new` or `open`.
    pub section: Section,
    pub kind: String,
    /// `compromise`, `abuse`, `exposure` or `other` ([`rank::Threat`]).
    pub threat: &'static str,
    pub indicator: String,
    pub is_url: bool,
    /// The address, when the indicator is something else (a URL on it, a host name).
    pub address: Option<String>,
    /// What tells it apart (breach, malware, port, report type).
    pub what: String,
    pub source: String,
    /// When it was observed (see [`FindingView::observed`]).
    pub observed: String,
    pub observed_by_source: bool,
    /// Ports and peer ([`contact`]).
    pub contact: Option<String>,
}

/// How much of the collected lists a rendering shows (the HTML byte budget lowers these).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Findings listed in the sections in all.
    pub findings: usize,
    /// Items of "act on these first".
    pub act: usize,
    /// Lines of "Your own traffic".
    pub traffic: usize,
}

impl Limits {
    /// The full lists.
    pub const FULL: Limits = Limits {
        findings: LIST_TOTAL,
        act: ACT_FIRST,
        traffic: super::traffic::MAX_LISTED,
    };

    /// Smaller lists, for when a rendering was over the byte budget; `None` when nothing is
    /// listed any more.
    pub fn smaller(self) -> Option<Limits> {
        (self != Limits::default()).then(|| Limits {
            findings: if self.findings > 10 {
                self.findings / 2
            } else {
                0
            },
            act: self
                .act
                .min(5)
                .saturating_sub(usize::from(self.findings <= 10) * 2),
            traffic: if self.traffic > 5 {
                self.traffic / 2
            } else {
                0
            },
        })
    }
}

impl Default for Limits {
    /// Nothing listed, only counts.
    fn default() -> Self {
        Limits {
            findings: 0,
            act: 0,
            traffic: 0,
        }
    }
}

/// "… and N more": how many, and the command that shows them.
#[derive(Debug, Clone, Serialize)]
pub struct More {
    pub count: usize,
    pub command: String,
}

/// Sorts the findings of one audience into groups while the store is scanned.
pub struct Collector {
    window: Window,
    tz: Option<Tz>,
    spec: Details,
    /// The route's name (`--team` of the "more" commands); `None` for the main digest.
    team: Option<String>,
    /// Day starts (UTC instants of local midnights), oldest first, and the end of the last day.
    day_starts: Vec<DateTime<Utc>>,
    trend: Vec<TrendDay>,
    /// The best [`ACT_FIRST`] critical and high findings, in rank order.
    act: Vec<(Finding, ActItem)>,
    act_total: usize,
    /// Flow findings' (host, kind) already counted in `act_total`: one per day is one item.
    act_flows: std::collections::HashSet<(Option<std::net::IpAddr>, String)>,
    buckets: BTreeMap<(Section, Severity, String), Bucket>,
    counts: [usize; 3],
    /// Still open findings not observed again since the last digest: only counted.
    unchanged: usize,
    /// Fingerprints of listed-as-new findings whose status is still `new` (to mark reported).
    pub new_fingerprints: Vec<String>,
    /// Flow findings (source `flows`): listed in "Your own traffic", not in the sections.
    traffic: super::traffic::TrafficCollector,
}

impl Collector {
    pub fn new(window: Window, tz: Option<Tz>) -> Self {
        Self::with_details(window, tz, Details::default())
    }

    /// A collector that shows the fields `spec` chooses.
    pub fn with_details(window: Window, tz: Option<Tz>, spec: Details) -> Self {
        let (day_starts, trend) = trend_days(window.now, tz);
        Collector {
            window,
            tz,
            spec,
            team: None,
            day_starts,
            trend,
            act: Vec::new(),
            act_total: 0,
            act_flows: Default::default(),
            buckets: BTreeMap::new(),
            counts: [0; 3],
            unchanged: 0,
            new_fingerprints: Vec::new(),
            traffic: Default::default(),
        }
    }

    /// The collector of a route: its "more" commands name the route (`--team`).
    pub fn for_team(mut self, team: Option<String>) -> Self {
        self.team = team;
        self
    }

    /// Whether a still open finding was not observed again since the last digest.
    fn unchanged(&self, f: &Finding) -> bool {
        self.window.since.is_some_and(|s| rank::observed(f) <= s)
    }

    /// Takes one finding (already matched to the audience and admitted) into account.
    pub fn add(&mut self, f: &Finding) {
        if f.in_scope {
            self.count_trend(f);
        }
        let Some(section) = classify(f, &self.window) else {
            return;
        };
        if act_on(f, section) {
            // A flow finding (one per host, kind and day) is one item per host and kind: the
            // best of its days.
            let is_flow = f.is_from(SourceId::Flows);
            let same =
                |k: &Finding| is_flow && k.source == f.source && k.ip == f.ip && k.feed == f.feed;
            if !is_flow
                || self.act_flows.len() >= 100_000
                || self.act_flows.insert((f.ip, f.feed.clone()))
            {
                self.act_total += 1;
            }
            let twin = self.act.iter().position(|(k, _)| same(k));
            let better = |(k, _): &(Finding, ActItem)| rank::compare(f, k).is_lt();
            let wanted = match twin {
                Some(i) => better(&self.act[i]),
                None => self.act.len() < ACT_FIRST || self.act.iter().any(better),
            };
            if wanted {
                if let Some(i) = twin {
                    self.act.remove(i);
                }
                self.act.push((
                    rank_copy(f),
                    ActItem {
                        severity: f.severity,
                        section,
                        kind: clean(category(&f.classification.kind), 80),
                        threat: rank::threat(&f.classification).as_str(),
                        indicator: clean(&f.indicator(), MAX_VALUE),
                        is_url: f.email.is_none() && f.url.is_some(),
                        address: f
                            .ip
                            .map(|i| i.to_string())
                            .filter(|a| *a != f.indicator() && !f.indicator().starts_with(a)),
                        what: clean(&f.distinguishing(), MAX_VALUE),
                        source: clean(&f.source, 60),
                        observed: fmt_time(rank::observed(f), self.tz),
                        observed_by_source: f.time_source.is_some(),
                        contact: contact(f),
                    },
                ));
                self.act.sort_by(|a, b| rank::compare(&a.0, &b.0));
                self.act.truncate(ACT_FIRST);
            }
        }
        self.counts[section as usize] += 1;
        if section == Section::New && f.status == Status::New {
            self.new_fingerprints.push(f.fingerprint.clone());
        }
        if f.is_from(SourceId::Flows) && section != Section::Resolved {
            let last = fmt_time(rank::observed(f), self.tz);
            self.traffic.add(f, section, last);
            return;
        }
        if section == Section::Open && self.unchanged(f) {
            self.unchanged += 1;
            return;
        }
        let kind = category(&f.classification.kind).to_string();
        let b = self.buckets.entry((section, f.severity, kind)).or_default();
        if b.count == 0 {
            b.taxonomy = f.classification.taxonomy.clone();
        }
        if !b.kinds.contains(&f.classification.kind) && b.kinds.len() < 4 {
            b.kinds.push(f.classification.kind.clone());
        }
        b.count += 1;
        if b.identifiers.len() < 64 {
            b.identifiers
                .insert(f.classification.identifier.clone(), ());
        }
        let cap = section.cap();
        // Cheap pre-check: once the list is full, a finding ranked after its worst cannot
        // make it.
        if b.items.len() >= cap
            && let Some((worst, _)) = b.items.iter().max_by(|a, b| rank::compare(&a.0, &b.0))
            && rank::compare(f, worst).is_ge()
        {
            return;
        }
        b.items.push((rank_copy(f), view(f, self.tz, &self.spec)));
        if b.items.len() >= cap * 2 {
            b.items.sort_by(|a, b| rank::compare(&a.0, &b.0));
            b.items.truncate(cap);
        }
    }

    /// Counts a finding into the days of the trend.
    fn count_trend(&mut self, f: &Finding) {
        let resolved = if f.status == Status::Resolved {
            resolved_at(f)
        } else {
            None
        };
        let n = self.trend.len();
        for i in 0..n {
            let start = self.day_starts[i];
            let end = self.day_starts[i + 1];
            let d = &mut self.trend[i];
            if f.first_seen >= start && f.first_seen < end {
                d.new += 1;
            }
            if let Some(r) = resolved
                && r >= start
                && r < end
            {
                d.resolved += 1;
            }
            if f.first_seen < end && resolved.is_none_or(|r| r >= end) {
                d.open += 1;
            }
        }
    }

    /// The trend, oldest day first, with bar lengths.
    pub fn trend(&self) -> Vec<TrendDay> {
        let max = self
            .trend
            .iter()
            .map(|d| d.open.max(d.new).max(d.resolved))
            .max()
            .unwrap_or(0);
        let pct = |n: usize| {
            if max == 0 || n == 0 {
                0
            } else {
                (n * 100 / max).max(1)
            }
        };
        self.trend
            .iter()
            .map(|d| TrendDay {
                new_pct: pct(d.new),
                open_pct: pct(d.open),
                resolved_pct: pct(d.resolved),
                ..d.clone()
            })
            .collect()
    }

    /// The filter every "more" command of this audience starts from.
    fn filter(&self) -> ListFilter {
        ListFilter {
            team: self.team.clone(),
            ..ListFilter::default()
        }
    }

    /// The critical and high findings to act on first, in rank order (at most `limit`), how
    /// many there are in all, and the command that lists them all.
    pub fn act_first(&self, limit: usize) -> (Vec<ActItem>, usize, String) {
        let cmd = more_command(&ListFilter {
            min_severity: Some(Severity::High),
            ..self.filter()
        });
        (
            self.act
                .iter()
                .take(limit)
                .map(|(_, a)| a.clone())
                .collect(),
            self.act_total,
            cmd,
        )
    }

    /// The section "Your own traffic" (flow findings, new and open), at most `limit` lines.
    pub fn traffic(&self, limit: usize) -> super::traffic::TrafficView {
        let cmd = more_command(&ListFilter {
            source: Some(SourceId::Flows.to_string()),
            ..self.filter()
        });
        self.traffic.view(limit, cmd)
    }

    /// Exact counts: (new, open, resolved).
    pub fn counts(&self) -> (usize, usize, usize) {
        (self.counts[0], self.counts[1], self.counts[2])
    }

    /// The sections as the templates see them, listing at most `limit` findings in all (handed
    /// out new → open → resolved, in rank order of the categories).
    pub fn sections(&self, rem: &Remediation, limit: usize) -> Vec<SectionView> {
        let since = self.window.since;
        let mut out: Vec<SectionView> = Section::ALL
            .iter()
            .map(|s| SectionView {
                key: *s,
                title: s.title(),
                count: self.counts[*s as usize],
                unchanged: None,
                severities: Vec::new(),
            })
            .collect();
        if self.unchanged > 0 {
            out[Section::Open as usize].unchanged = Some(More {
                count: self.unchanged,
                command: more_command(&ListFilter {
                    status: Some("open"),
                    until: since,
                    ..self.filter()
                }),
            });
        }
        // Categories in rank order: section, severity, threat kind, then the larger first.
        let mut groups: Vec<(&(Section, Severity, String), &Bucket)> =
            self.buckets.iter().collect();
        let threat_of = |b: &Bucket, kind: &str| {
            rank::threat(&crate::finding::Classification {
                taxonomy: b.taxonomy.clone(),
                kind: kind.to_string(),
                identifier: String::new(),
            })
        };
        groups.sort_by_cached_key(|((sec, sev, kind), b)| {
            let t: Threat = threat_of(b, kind);
            (*sec, *sev, t, std::cmp::Reverse(b.count), kind.clone())
        });
        let mut budget = limit;
        for ((section, severity, kind), b) in groups {
            let mut items: Vec<&(Finding, FindingView)> = b.items.iter().collect();
            items.sort_by(|x, y| rank::compare(&x.0, &y.0));
            items.truncate(section.cap().min(budget));
            budget -= items.len();
            let text = rem.lookup(kind, &b.taxonomy);
            let specifics = b
                .identifiers
                .keys()
                .filter_map(|id| {
                    rem.identifier(id).map(|t| Specific {
                        identifier: clean(id, 80),
                        action: t.to_string(),
                    })
                })
                .take(MAX_SPECIFICS)
                .collect();
            let listed = items.len();
            let class = match b.kinds.as_slice() {
                [one] if !b.taxonomy.is_empty() && !one.is_empty() => {
                    format!("{}/{one}", b.taxonomy)
                }
                _ => b.taxonomy.clone(),
            };
            let filter = ListFilter {
                severity: Some(*severity),
                class: (!class.is_empty()).then_some(class),
                team: self.team.clone(),
                ..section.filter(since)
            };
            let more = b.count - listed;
            let cat = CategoryView {
                kind: clean(kind, 80),
                taxonomy: clean(&b.taxonomy, 80),
                count: b.count,
                listed,
                more,
                more_command: more_command(&filter),
                meaning: text.meaning.clone(),
                action: text.action.clone(),
                specifics,
                findings: items.into_iter().map(|(_, v)| v.clone()).collect(),
            };
            let sec = &mut out[*section as usize];
            match sec.severities.last_mut() {
                Some(s) if s.severity == *severity => {
                    s.count += cat.count;
                    s.categories.push(cat);
                }
                _ => sec.severities.push(SeverityView {
                    severity: *severity,
                    count: cat.count,
                    categories: vec![cat],
                }),
            }
        }
        out
    }
}

/// One part of the digest (new, open or resolved).
#[derive(Debug, Clone, Serialize)]
pub struct SectionView {
    pub key: Section,
    pub title: &'static str,
    pub count: usize,
    /// Still open: the findings not observed again since the last digest, only counted, with
    /// the command that lists them.
    pub unchanged: Option<More>,
    pub severities: Vec<SeverityView>,
}

/// The findings of one severity within a section.
#[derive(Debug, Clone, Serialize)]
pub struct SeverityView {
    pub severity: Severity,
    pub count: usize,
    pub categories: Vec<CategoryView>,
}

/// The findings of one classification type within a severity.
#[derive(Debug, Clone, Serialize)]
pub struct CategoryView {
    /// Classification type (`vulnerable-system`, `c2-server`, ...).
    pub kind: String,
    pub taxonomy: String,
    /// Exact number of findings.
    pub count: usize,
    /// How many are listed.
    pub listed: usize,
    /// How many are not listed.
    pub more: usize,
    /// The `outwatch list` command that shows the whole group.
    pub more_command: String,
    /// What it means, in one line.
    pub meaning: String,
    /// What to do about it.
    pub action: String,
    /// Advice for particular identifiers (e.g. `open-dns`) seen in this group.
    pub specifics: Vec<Specific>,
    pub findings: Vec<FindingView>,
}

/// Advice for one identifier.
#[derive(Debug, Clone, Serialize)]
pub struct Specific {
    pub identifier: String,
    pub action: String,
}

/// Feed health as the templates see it (problems first).
#[derive(Debug, Clone, Serialize)]
pub struct HealthView {
    pub name: String,
    pub state: HealthState,
    pub ok: bool,
    pub last_success: Option<String>,
    pub last_run: Option<String>,
    pub last_error: Option<String>,
    pub last_rows: Option<usize>,
    pub warnings: Vec<String>,
    /// Whether a warning already quotes `last_error` (show it once).
    pub error_in_warnings: bool,
    /// What the last run noted that is no failure (e.g. a domain HIBP will not search).
    pub notes: Vec<String>,
}

/// `s` with every RFC 3339 UTC time in it (`2026-11-30T07:00:00Z`, as feed health words its
/// warnings) in the digest's one format ([`fmt_time`]).
pub fn retime(s: &str, tz: Option<Tz>) -> String {
    const LEN: usize = "2026-11-30T07:00:00Z".len();
    let b = s.as_bytes();
    let mut out = String::with_capacity(s.len() + 8);
    let mut i = 0;
    let mut copied = 0;
    while i + LEN <= b.len() {
        let at = &b[i..i + LEN];
        let shape = at.iter().enumerate().all(|(k, c)| match k {
            4 | 7 => *c == b'-',
            10 => *c == b'T',
            13 | 16 => *c == b':',
            19 => *c == b'Z',
            _ => c.is_ascii_digit(),
        });
        if shape && let Ok(t) = DateTime::parse_from_rfc3339(&s[i..i + LEN]) {
            out.push_str(&s[copied..i]);
            out.push_str(&fmt_time(t.with_timezone(&Utc), tz));
            i += LEN;
            copied = i;
        } else {
            i += 1;
        }
    }
    out.push_str(&s[copied..]);
    out
}

/// Orders sources with problems first and formats them.
pub fn health_views(mut h: Vec<SourceHealth>, tz: Option<Tz>) -> Vec<HealthView> {
    h.sort_by_key(|s| (s.state == HealthState::Ok, s.name.clone()));
    h.into_iter()
        .map(|s| HealthView {
            ok: s.state == HealthState::Ok,
            name: clean(&s.name, 60),
            state: s.state,
            last_success: s.last_success.map(|t| fmt_time(t, tz)),
            last_run: s.last_run.map(|t| fmt_time(t, tz)),
            last_error: s.last_error.as_deref().map(|e| retime(&clean(e, 300), tz)),
            last_rows: s.last_rows,
            notes: s.notes.iter().map(|n| retime(&clean(n, 300), tz)).collect(),
            // Each problem once: the template shows `last_success` and the error itself, so
            // warnings that only repeat them are left out, and `error_in_warnings` says the
            // error is part of a warning already.
            error_in_warnings: s.last_error.as_deref().is_some_and(|e| {
                // The error's start (after a "N unit(s) failed: " summary) in a warning: the
                // warning says it, often with more (since when, which unit).
                let e = e.trim();
                let e = match e.split_once(" unit(s) failed: ") {
                    Some((n, rest)) if n.bytes().all(|b| b.is_ascii_digit()) => rest,
                    _ => e,
                };
                let head: String = clean(e, 30).trim_end_matches('…').to_string();
                !head.is_empty() && s.warnings.iter().any(|w| clean(w, 600).contains(&head))
            }),
            warnings: {
                let mut seen: Vec<String> = Vec::new();
                for w in &s.warnings {
                    let w = retime(&clean(w, 300), tz);
                    let repeats = w.starts_with("last success ")
                        || w == "has never succeeded"
                        || w.is_empty();
                    if !repeats && !seen.contains(&w) {
                        seen.push(w);
                    }
                }
                seen
            },
        })
        .collect()
}

/// The last [`TREND_DAYS`] days up to and including `now`'s day (in `tz`): their starts plus
/// the end of the last, and empty counts with dates.
fn trend_days(now: DateTime<Utc>, tz: Option<Tz>) -> (Vec<DateTime<Utc>>, Vec<TrendDay>) {
    use chrono::{Datelike, TimeZone};
    let tz = tz.unwrap_or(Tz::UTC);
    let today = now.with_timezone(&tz).date_naive();
    let start_of = |d: chrono::NaiveDate| {
        let midnight = d.and_hms_opt(0, 0, 0).expect("midnight");
        tz.from_local_datetime(&midnight)
            .earliest()
            .map(|t| t.with_timezone(&Utc))
            // A day that starts in a DST gap: an hour later is safe.
            .unwrap_or_else(|| midnight.and_utc() + chrono::Duration::hours(1))
    };
    let mut starts = Vec::with_capacity(TREND_DAYS + 1);
    let mut days = Vec::with_capacity(TREND_DAYS);
    for back in (0..TREND_DAYS as i64).rev() {
        let d = today - chrono::Duration::days(back);
        starts.push(start_of(d));
        days.push(TrendDay {
            date: format!("{:02}-{:02}", d.month(), d.day()),
            weekday: d.weekday().to_string(),
            ..TrendDay::default()
        });
    }
    starts.push(start_of(today + chrono::Duration::days(1)));
    (starts, days)
}

/// Scans the store once and fills one collector per audience; a finding a suppression rule
/// covers is left out.
pub fn collect(
    store: &dyn Store,
    audiences: &[(Audience, Window)],
    tz: Option<Tz>,
    spec: &Details,
    supp: &Suppressions,
) -> Result<Vec<Collector>> {
    let mut cols: Vec<Collector> = audiences
        .iter()
        .map(|(aud, w)| {
            let team = match aud {
                Audience::All => None,
                Audience::Route(r) => Some(r.name.trim().to_string()).filter(|n| !n.is_empty()),
            };
            Collector::with_details(*w, tz, spec.clone()).for_team(team)
        })
        .collect();
    store.for_each(&mut |f| {
        if !admit(&f) || supp.suppressed(&f) {
            return Ok(());
        }
        for ((aud, _), col) in audiences.iter().zip(cols.iter_mut()) {
            if aud.matches(&f) {
                col.add(&f);
            }
        }
        Ok(())
    })?;
    Ok(cols)
}

#[cfg(test)]
mod tests;
