//! Building the digest: one pass over the store sorts every finding of our scope into *new*,
//! *still open* or *resolved* for each audience (the main recipients and every route), grouped by
//! severity and category. Counts are exact; only a few findings per group are listed, so a store
//! of 100k findings still makes a readable mail and the pass keeps memory small.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde::Serialize;

use super::remediation::{Details, Remediation};
use crate::config::DigestRoute;
use crate::finding::{Finding, Severity, Status};
use crate::health::{HealthState, SourceHealth};
use crate::store::{Result, Store};
use crate::triage::{Suppressions, is_acked};

/// Most findings listed per (section, severity, category) group. Counts stay exact.
pub const LIST_NEW: usize = 20;
/// Most still-open findings listed per group (the oldest).
pub const LIST_OPEN: usize = 5;
/// Most resolved findings listed per group (the most recently resolved).
pub const LIST_RESOLVED: usize = 5;
/// Most findings listed in one whole digest, handed out new → open → resolved and most severe
/// first, so the HTML part stays well below the ~100 KB at which some webmail clients clip.
pub const LIST_TOTAL: usize = 100;
/// Longest text shown for one attacker-controlled value (URL, extra field).
const MAX_VALUE: usize = 160;
/// Most extra fields shown per finding.
const MAX_DETAILS: usize = 4;
/// Most identifier-specific hints shown per category.
const MAX_SPECIFICS: usize = 5;

/// The three parts of a digest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Section {
    New,
    Open,
    Resolved,
}

impl Section {
    const ALL: [Section; 3] = [Section::New, Section::Open, Section::Resolved];

    fn title(self) -> &'static str {
        match self {
            Section::New => "New since the last digest",
            Section::Open => "Still open",
            Section::Resolved => "Resolved since the last digest",
        }
    }

    fn cap(self) -> usize {
        match self {
            Section::New => LIST_NEW,
            Section::Open => LIST_OPEN,
            Section::Resolved => LIST_RESOLVED,
        }
    }
}

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

/// Replaces control characters (newlines included) by spaces and shortens to `max` characters.
pub fn clean(s: &str, max: usize) -> String {
    let mut out = String::with_capacity(s.len().min(max + 3));
    for (n, c) in s.chars().enumerate() {
        if n == max {
            out.push('…');
            break;
        }
        out.push(if c.is_control() { ' ' } else { c });
    }
    out
}

/// Formats a time for people, in the digest's time zone.
pub fn fmt_time(t: DateTime<Utc>, tz: Option<Tz>) -> String {
    match tz {
        Some(tz) => t.with_timezone(&tz).format("%Y-%m-%d %H:%M %Z").to_string(),
        None => t.format("%Y-%m-%d %H:%M UTC").to_string(),
    }
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
    count: usize,
    /// Candidates for listing, `(sort key, view)`; compacted to the cap now and then.
    items: Vec<((i64, String), FindingView)>,
    /// Identifiers seen, for identifier-specific advice.
    identifiers: BTreeMap<String, ()>,
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
    pub indicator: String,
    pub is_url: bool,
    /// What tells it apart (breach, malware, port, report type).
    pub what: String,
    pub source: String,
}

/// Sorts the findings of one audience into groups while the store is scanned.
pub struct Collector {
    window: Window,
    tz: Option<Tz>,
    spec: Details,
    /// Day starts (UTC instants of local midnights), oldest first, and the end of the last day.
    day_starts: Vec<DateTime<Utc>>,
    trend: Vec<TrendDay>,
    /// (severity, section, first_seen, indicator) → item; the best [`ACT_FIRST`] are kept.
    act: Vec<((Severity, Section, i64, String), ActItem)>,
    act_total: usize,
    buckets: BTreeMap<(Section, Severity, String), Bucket>,
    counts: [usize; 3],
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
            day_starts,
            trend,
            act: Vec::new(),
            act_total: 0,
            buckets: BTreeMap::new(),
            counts: [0; 3],
            new_fingerprints: Vec::new(),
            traffic: Default::default(),
        }
    }

    /// Takes one finding (already matched to the audience) into account.
    pub fn add(&mut self, f: &Finding) {
        if f.in_scope {
            self.count_trend(f);
        }
        let Some(section) = classify(f, &self.window) else {
            return;
        };
        if f.severity <= Severity::High && section != Section::Resolved && !is_acked(f) {
            self.act_total += 1;
            let key = (f.severity, section, f.first_seen.timestamp(), f.indicator());
            if self.act.len() < ACT_FIRST || self.act.iter().any(|(k, _)| key < *k) {
                self.act.push((
                    key,
                    ActItem {
                        severity: f.severity,
                        section,
                        kind: clean(category(&f.classification.kind), 80),
                        indicator: clean(&f.indicator(), MAX_VALUE),
                        is_url: f.email.is_none() && f.url.is_some(),
                        what: clean(&f.distinguishing(), MAX_VALUE),
                        source: clean(&f.source, 60),
                    },
                ));
                self.act.sort_by(|a, b| a.0.cmp(&b.0));
                self.act.truncate(ACT_FIRST);
            }
        }
        self.counts[section as usize] += 1;
        if section == Section::New && f.status == Status::New {
            self.new_fingerprints.push(f.fingerprint.clone());
        }
        if f.source == crate::flows::analyse::SOURCE && section != Section::Resolved {
            let last = fmt_time(f.time_source.unwrap_or(f.last_seen), self.tz);
            self.traffic.add(f, section, last);
            return;
        }
        let kind = category(&f.classification.kind).to_string();
        let b = self.buckets.entry((section, f.severity, kind)).or_default();
        if b.count == 0 {
            b.taxonomy = f.classification.taxonomy.clone();
        }
        b.count += 1;
        if b.identifiers.len() < 64 {
            b.identifiers
                .insert(f.classification.identifier.clone(), ());
        }
        // New: oldest first; open: oldest first; resolved: most recently resolved first.
        let key = match section {
            Section::New | Section::Open => (f.first_seen.timestamp(), f.indicator()),
            Section::Resolved => (-resolved_at(f).map_or(0, |t| t.timestamp()), f.indicator()),
        };
        let cap = section.cap();
        // Cheap pre-check: once compacted, a key after the current worst cannot make the list.
        if b.items.len() >= cap
            && let Some(worst) = b.items.iter().map(|(k, _)| k).max()
            && key >= *worst
        {
            return;
        }
        b.items.push((key, view(f, self.tz, &self.spec)));
        if b.items.len() >= cap * 2 {
            b.items.sort_by(|a, b| a.0.cmp(&b.0));
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

    /// The critical and high findings to act on first (new before open, oldest first), and
    /// how many there are in all.
    pub fn act_first(&self) -> (Vec<ActItem>, usize) {
        (
            self.act.iter().map(|(_, a)| a.clone()).collect(),
            self.act_total,
        )
    }

    /// The section "Your own traffic" (flow findings, new and open).
    pub fn traffic(&mut self) -> super::traffic::TrafficView {
        std::mem::take(&mut self.traffic).view()
    }

    /// Exact counts: (new, open, resolved).
    pub fn counts(&self) -> (usize, usize, usize) {
        (self.counts[0], self.counts[1], self.counts[2])
    }

    /// The sections as the templates see them.
    pub fn sections(self, rem: &Remediation) -> Vec<SectionView> {
        let mut out: Vec<SectionView> = Section::ALL
            .iter()
            .map(|s| SectionView {
                key: *s,
                title: s.title(),
                count: self.counts[*s as usize],
                severities: Vec::new(),
            })
            .collect();
        let mut budget = LIST_TOTAL;
        for ((section, severity, kind), mut b) in self.buckets {
            b.items.sort_by(|a, b| a.0.cmp(&b.0));
            b.items.truncate(section.cap().min(budget));
            budget -= b.items.len();
            let text = rem.lookup(&kind, &b.taxonomy);
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
            let listed = b.items.len();
            let cat = CategoryView {
                kind: clean(&kind, 80),
                taxonomy: clean(&b.taxonomy, 80),
                count: b.count,
                listed,
                more: b.count - listed,
                meaning: text.meaning.clone(),
                action: text.action.clone(),
                specifics,
                findings: b.items.into_iter().map(|(_, v)| v).collect(),
            };
            let sec = &mut out[section as usize];
            match sec.severities.last_mut() {
                Some(s) if s.severity == severity => {
                    s.count += cat.count;
                    s.categories.push(cat);
                }
                _ => sec.severities.push(SeverityView {
                    severity,
                    count: cat.count,
                    categories: vec![cat],
                }),
            }
        }
        // Largest categories first within a severity.
        for s in &mut out {
            for sev in &mut s.severities {
                sev.categories.sort_by_key(|c| std::cmp::Reverse(c.count));
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
            last_error: s.last_error.as_deref().map(|e| clean(e, 300)),
            last_rows: s.last_rows,
            notes: s.notes.iter().map(|n| clean(n, 300)).collect(),
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
                    let w = clean(w, 300);
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
        .map(|(_, w)| Collector::with_details(*w, tz, spec.clone()))
        .collect();
    store.for_each(&mut |f| {
        if supp.suppressed(&f) {
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
mod tests {
    use super::*;
    use crate::finding::Classification;

    fn f(kind: &str, ip: &str, first: i64) -> Finding {
        let mut f = Finding::new(
            "s",
            "feed",
            Classification::new("", kind, "id"),
            Severity::High,
        );
        f.ip = Some(ip.parse().unwrap());
        f.first_seen = DateTime::from_timestamp(first, 0).unwrap();
        f.last_seen = f.first_seen;
        f.seal();
        f
    }

    #[test]
    fn classify_windows() {
        let w = Window {
            since: DateTime::from_timestamp(100, 0),
            now: DateTime::from_timestamp(200, 0).unwrap(),
        };
        assert_eq!(classify(&f("x", "192.0.2.1", 150), &w), Some(Section::New));
        let mut old = f("x", "192.0.2.1", 50);
        old.status = Status::Open;
        assert_eq!(classify(&old, &w), Some(Section::Open));
        // Never announced (still `new`): new, however old.
        assert_eq!(classify(&f("x", "192.0.2.1", 50), &w), Some(Section::New));
        assert_eq!(classify(&f("x", "192.0.2.1", 250), &w), None);
        let mut r = f("x", "192.0.2.1", 50);
        r.status = Status::Resolved;
        r.push_history(DateTime::from_timestamp(120, 0).unwrap(), "resolved");
        assert_eq!(classify(&r, &w), Some(Section::Resolved));
        r.history[0].at = DateTime::from_timestamp(90, 0).unwrap();
        assert_eq!(classify(&r, &w), None);
        let mut back = old.clone();
        back.push_history(DateTime::from_timestamp(160, 0).unwrap(), "reopened");
        assert_eq!(classify(&back, &w), Some(Section::New));
        let mut out = f("x", "192.0.2.1", 150);
        out.in_scope = false;
        assert_eq!(classify(&out, &w), None);
    }

    #[test]
    fn caps_lists_but_counts_exactly() {
        let w = Window {
            since: DateTime::from_timestamp(0, 0),
            now: DateTime::from_timestamp(1_000_000, 0).unwrap(),
        };
        let mut c = Collector::new(w, None);
        for i in 0..1000u32 {
            let ip = format!("10.0.{}.{}", i / 256, i % 256);
            c.add(&f("scanner", &ip, 1000 - i64::from(i)));
        }
        assert_eq!(c.counts(), (1000, 0, 0));
        let s = c.sections(&Remediation::builtin().unwrap());
        let cat = &s[0].severities[0].categories[0];
        assert_eq!(cat.count, 1000);
        assert_eq!(cat.listed, LIST_NEW);
        assert_eq!(cat.more, 1000 - LIST_NEW);
        // Oldest first: the last added has the smallest first_seen.
        assert_eq!(cat.findings[0].indicator, "10.0.3.231");
    }

    #[test]
    fn routes_match_prefix_and_domain() {
        let r = DigestRoute {
            name: "dmz".into(),
            prefixes: vec!["192.0.2.0/25".parse().unwrap()],
            domains: vec!["dmz.example.org".parse().unwrap()],
            recipients: vec!["dmz@example.org".into()],
        };
        assert!(route_matches(&r, &f("x", "192.0.2.5", 0)));
        assert!(!route_matches(&r, &f("x", "192.0.2.200", 0)));
        let mut d = f("x", "198.51.100.1", 0);
        d.url = Some("http://WWW.dmz.example.org:8080/x".into());
        assert!(route_matches(&r, &d));
        d.url = Some("http://notdmz.example.org/".into());
        assert!(!route_matches(&r, &d));
        d.email = Some("bob@dmz.example.org".into());
        assert!(route_matches(&r, &d));
    }

    #[test]
    fn clean_strips_controls_and_shortens() {
        assert_eq!(clean("a\nb\tc", 10), "a b c");
        assert_eq!(clean("äöüß", 2), "äö…");
    }

    #[test]
    fn values_in_words_and_internal_fields_hidden() {
        use serde_json::json;
        assert_eq!(
            in_words(&json!(["Passwords", "Email addresses", "Usernames"])),
            "Passwords, Email addresses and Usernames"
        );
        assert_eq!(in_words(&json!(["a"])), "a");
        assert_eq!(
            in_words(&json!([1, 2, 3, 4, 5, 6, 7, 8])),
            "1, 2, 3, 4, 5 and 3 more"
        );
        assert_eq!(in_words(&json!(true)), "yes");
        assert_eq!(in_words(&json!(64496)), "64496");
        assert_eq!(thousands(1234567), "1,234,567");
        let rem = Remediation::builtin().unwrap();
        let mut x = f("data-leak", "192.0.2.1", 0);
        x.source = "hibp".into();
        x.extra
            .insert("data_classes".into(), json!(["Passwords", "Names"]));
        x.extra.insert("from_cache".into(), json!(true));
        x.extra.insert("added_date".into(), json!("2020-01-01"));
        x.extra.insert("breach_date".into(), json!("2019-01-01"));
        x.extra.insert("breach".into(), json!("Adobe"));
        x.extra.insert("title".into(), json!("Adobe"));
        let d = details(&x, rem.details());
        let keys: Vec<&str> = d.iter().map(|d| d.key.as_str()).collect();
        assert!(keys.iter().any(|k| k.contains("data")), "{keys:?}");
        assert!(!keys.iter().any(|k| k.contains("cache")), "{keys:?}");
        // The name repeats the title: shown once.
        assert_eq!(d.iter().filter(|d| d.value == "Adobe").count(), 1, "{d:?}");
        let classes = d.iter().find(|d| d.key.contains("data")).unwrap();
        assert_eq!(classes.value, "Passwords and Names");
        // Any source: internal fields never.
        let mut y = f("scanner", "192.0.2.2", 0);
        y.extra.insert("from_cache".into(), json!(true));
        y.extra.insert("cache_duration".into(), json!("300.000s"));
        y.extra
            .insert("cidrs".into(), json!(["192.0.2.130/31", "192.0.2.132/30"]));
        let d = details(&y, rem.details());
        assert_eq!(d.len(), 1, "{d:?}");
        assert_eq!(d[0].value, "192.0.2.130/31 and 192.0.2.132/30");
        assert_eq!(category("blacklist"), "blocklist");
    }

    #[test]
    fn trend_and_act_first() {
        let now = DateTime::from_timestamp(1_700_000_000, 0).unwrap(); // 2023-11-14 22:13 UTC
        let w = Window { since: None, now };
        let mut c = Collector::new(w, None);
        let day = 86_400;
        let mut a = f("c2-server", "192.0.2.1", 1_700_000_000 - 3 * day);
        a.severity = Severity::Critical;
        c.add(&a);
        let mut r = f("scanner", "192.0.2.2", 1_700_000_000 - 5 * day);
        r.severity = Severity::Low;
        r.status = Status::Resolved;
        r.push_history(
            DateTime::from_timestamp(1_700_000_000 - day, 0).unwrap(),
            "resolved",
        );
        c.add(&r);
        let t = c.trend();
        assert_eq!(t.len(), TREND_DAYS);
        assert_eq!(t[13].date, "11-14");
        assert_eq!(t[13].open, 1);
        assert_eq!(t[12].resolved, 1);
        assert_eq!(t[12].open, 1);
        assert_eq!(t[11].open, 2);
        assert_eq!(t[10].new, 1);
        assert_eq!(t[8].new, 1);
        assert_eq!(t[7].open, 0);
        let (items, total) = c.act_first();
        assert_eq!(total, 1);
        assert_eq!(items[0].indicator, "192.0.2.1");
        assert_eq!(items[0].severity, Severity::Critical);
    }
}
