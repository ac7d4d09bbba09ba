//! The normalised event model: one [`Finding`] struct for every source.
//!
//! Field names follow the CSIRT vocabulary of IntelMQ's harmonisation (`source.ip`,
//! `classification.taxonomy`, ...), flattened to what a network owner asks about. A parser fills
//! the *observation* part (what the source said); the store owns the *life cycle* part
//! (`first_seen`, `last_seen`, `times_seen`, `status`, `history`).

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use ipnet::IpNet;
use serde::{Deserialize, Serialize};

pub(crate) mod contact;
pub(crate) mod csv;
pub(crate) mod history;
pub(crate) mod rank;
pub(crate) mod source;
pub(crate) mod view;

pub use history::{Event, HISTORY_CAP, HistoryEntry, Triage};
pub use source::SourceId;
pub use view::{ExtraVal, ExtraView, FindingView};

/// How bad a finding is. Ordered from most to least severe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Critical,
    High,
    Medium,
    Low,
    Info,
}

impl Severity {
    /// All severities, most severe first.
    pub const ALL: [Severity; 5] = [
        Severity::Critical,
        Severity::High,
        Severity::Medium,
        Severity::Low,
        Severity::Info,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Critical => "critical",
            Severity::High => "high",
            Severity::Medium => "medium",
            Severity::Low => "low",
            Severity::Info => "info",
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A severity name outwatch does not know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown severity `{0}` (expected critical, high, medium, low or info)")]
pub struct UnknownSeverity(pub String);

impl FromStr for Severity {
    type Err = UnknownSeverity;
    /// Accepts the five names in any case, plus the common aliases `crit`, `med`, `informational`.
    fn from_str(s: &str) -> Result<Self, UnknownSeverity> {
        match s.trim().to_ascii_lowercase().as_str() {
            "critical" | "crit" => Ok(Severity::Critical),
            "high" => Ok(Severity::High),
            "medium" | "med" => Ok(Severity::Medium),
            "low" => Ok(Severity::Low),
            "info" | "informational" => Ok(Severity::Info),
            other => Err(UnknownSeverity(crate::text::clip(other, 40))),
        }
    }
}

/// Where a finding is in its life cycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Reported once and not yet seen again or included in a digest.
    New,
    /// Re-reported, or already announced in a digest, and not resolved.
    Open,
    /// Not re-reported by its source within the source's window.
    Resolved,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::New => "new",
            Status::Open => "open",
            Status::Resolved => "resolved",
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// RSIT-style classification: taxonomy / type / identifier.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub struct Classification {
    pub taxonomy: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub identifier: String,
}

impl Classification {
    /// Builds a classification; the taxonomy is derived from the type when `taxonomy` is empty.
    pub fn new(taxonomy: &str, kind: &str, identifier: &str) -> Self {
        let taxonomy = if taxonomy.is_empty() {
            taxonomy_for_type(kind)
        } else {
            taxonomy
        };
        Classification {
            taxonomy: taxonomy.to_string(),
            kind: kind.to_string(),
            identifier: identifier.to_string(),
        }
    }
}

/// The RSIT taxonomy a classification type belongs to (IntelMQ's taxonomy expert table).
/// Unknown types map to `other`.
pub fn taxonomy_for_type(kind: &str) -> &'static str {
    match kind {
        "spam" | "harmful-speech" | "violence" => "abusive-content",
        "ddos" | "dos" | "outage" | "sabotage" | "misconfiguration" => "availability",
        "copyright" | "masquerade" | "phishing" | "unauthorized-use-of-resources" => "fraud",
        "unauthorised-information-access"
        | "unauthorised-information-modification"
        | "data-loss"
        | "data-leak" => "information-content-security",
        "scanner" | "sniffing" | "social-engineering" => "information-gathering",
        "brute-force" | "exploit" | "ids-alert" => "intrusion-attempts",
        "application-compromise"
        | "burglary"
        | "privileged-account-compromise"
        | "system-compromise"
        | "unprivileged-account-compromise" => "intrusions",
        "c2-server" | "infected-system" | "malware-configuration" | "malware-distribution" => {
            "malicious-code"
        }
        "ddos-amplifier"
        | "information-disclosure"
        | "potentially-unwanted-accessible"
        | "vulnerable-system"
        | "weak-crypto" => "vulnerable",
        "test" => "test",
        _ => "other",
    }
}

/// An earlier observation of a finding: the same finding (same fingerprint) reported again
/// with another source time, e.g. a scanner that saw an address twice in one report with two
/// banners. The finding itself holds the latest observation; each earlier one keeps its time
/// and the values that differ from the finding's current ones (see
/// the store's `lifecycle` module).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Observation {
    /// When the source saw it (`None`: the source gives no time).
    pub time_source: Option<DateTime<Utc>>,
    /// The values of this observation that differ from the finding's current ones, by name:
    /// `severity`, `in_scope`, `raw`, and `extra.<key>` (`null`: the key was absent then).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub differs: BTreeMap<String, serde_json::Value>,
}

/// Most earlier observations kept per finding; the oldest are dropped and counted in
/// [`Finding::observations_dropped`].
pub const OBSERVATION_CAP: usize = 16;

/// A normalised finding: what a source said about one of our IPs, networks, domains or addresses.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    /// Stable identity (hex); see [`Finding::compute_fingerprint`]. Filled by [`Finding::seal`].
    #[serde(default)]
    pub fingerprint: String,
    /// Source name as configured (`shadowserver`, `hibp`, `feodotracker`, ...); which built-in
    /// source it is: [`Finding::source_id`], [`Finding::is_from`].
    pub source: String,
    /// Feed within the source (Shadowserver report type, list name, ...).
    pub feed: String,
    pub classification: Classification,
    /// The observed address (`source.ip` in IntelMQ terms).
    pub ip: Option<IpAddr>,
    /// A network the finding is about (blocklist CIDR, DROP entry, SNDS blocked range).
    #[serde(default)]
    pub network: Option<IpNet>,
    pub port: Option<u16>,
    pub protocol: Option<String>,
    pub asn: Option<u32>,
    /// Lower-case host name without trailing dot.
    pub domain: Option<String>,
    pub url: Option<String>,
    #[serde(default)]
    pub email: Option<String>,
    pub severity: Severity,
    /// When the source says it saw this (`time.source`).
    pub time_source: Option<DateTime<Utc>>,
    /// Life cycle: first time we received it.
    pub first_seen: DateTime<Utc>,
    /// Life cycle: last time we received it.
    pub last_seen: DateTime<Utc>,
    /// Life cycle: how many distinct observations arrived (another source time each; for a
    /// source that gives no time, each run that reported it).
    pub times_seen: u64,
    pub status: Status,
    /// Whether the indicator lies inside our configured scope when it was ingested.
    #[serde(default = "default_true")]
    pub in_scope: bool,
    /// Source-specific fields (tags, CVEs, breach name, counts...).
    #[serde(default)]
    pub extra: BTreeMap<String, serde_json::Value>,
    /// Pointer to the raw record: `file:line`, report id and line, or URL and line.
    #[serde(default)]
    pub raw: Option<String>,
    /// Extra identity parts beyond the standard ones: what else tells two observations of one
    /// indicator apart (a HIBP breach name; a Shadowserver row's `dst_ip=…`, `family=…`; a CAP
    /// line's `time=…`). Each source documents its own in its `docs/` page.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub identity: Vec<String>,
    /// Life-cycle transitions, newest last, capped at [`HISTORY_CAP`].
    #[serde(default)]
    pub history: Vec<HistoryEntry>,
    /// Earlier observations (another source time), oldest first, at most
    /// [`OBSERVATION_CAP`]; the finding's own fields are the latest one.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub observations: Vec<Observation>,
    /// Earlier observations dropped from `observations` (the oldest go first).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub observations_dropped: u64,
}

fn default_true() -> bool {
    true
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl Finding {
    /// What tells this finding apart from others about the same indicator: the breach, the
    /// malware, the port, the report type (as the feed wrote it: sanitise before a terminal).
    pub fn distinguishing(&self) -> String {
        let f = self;
        let text = |k: &str| {
            f.extra
                .get(k)
                .and_then(|v| v.as_str())
                .filter(|s| !s.trim().is_empty())
                .map(str::to_string)
        };
        let mut parts: Vec<String> = Vec::new();
        if let Some(b) = text("title").or_else(|| text("breach")) {
            parts.push(format!("breach {b}"));
        }
        if let Some(m) = text("malware_printable").or_else(|| text("malware")) {
            parts.push(format!("malware {m}"));
        } else if let Some(t) = text("threat").or_else(|| text("threat_type")) {
            parts.push(t);
        }
        if let Some(p) = f.port {
            match &f.protocol {
                Some(proto) if !proto.is_empty() => parts.push(format!("port {p}/{proto}")),
                _ => parts.push(format!("port {p}")),
            }
        }
        let source = f.source_id();
        if source == Some(SourceId::Shadowserver) {
            parts.push(format!("report {}", f.feed));
        }
        if matches!(
            source,
            Some(SourceId::Flows | SourceId::Shadowserver | SourceId::Cymru)
        ) {
            // Its identity parts say it: the day (flows); the destination, family, query or
            // sample (`dst_ip=…`, `family=…`); the time of a CAP line.
            parts.extend(f.identity.iter().cloned());
        }
        if source == Some(SourceId::Flows) {
            // Its summary names the peers (or services and ports).
            parts.extend(text("summary"));
        }
        parts.join(", ")
    }

    /// The built-in source it comes from; `None` for a list feed.
    pub fn source_id(&self) -> Option<SourceId> {
        SourceId::of(&self.source)
    }

    /// Whether it comes from the built-in source `s`.
    pub fn is_from(&self, s: SourceId) -> bool {
        s.is(&self.source)
    }

    /// A new observation with every optional field empty. `first_seen`/`last_seen` are set to the
    /// Unix epoch until the store stamps them with the run's observation time.
    pub fn new(
        source: &str,
        feed: &str,
        classification: Classification,
        severity: Severity,
    ) -> Self {
        Finding {
            fingerprint: String::new(),
            source: source.to_string(),
            feed: feed.to_string(),
            classification,
            ip: None,
            network: None,
            port: None,
            protocol: None,
            asn: None,
            domain: None,
            url: None,
            email: None,
            severity,
            time_source: None,
            first_seen: DateTime::<Utc>::UNIX_EPOCH,
            last_seen: DateTime::<Utc>::UNIX_EPOCH,
            times_seen: 0,
            status: Status::New,
            in_scope: true,
            extra: BTreeMap::new(),
            raw: None,
            identity: Vec::new(),
            history: Vec::new(),
            observations: Vec::new(),
            observations_dropped: 0,
        }
    }

    /// The identity of a finding: source, feed, type, identifier and every indicator field, plus
    /// [`Finding::identity`], as hex ([`FindingView::fingerprint`] has the rule). Times,
    /// counts, severity and extra fields are *not* part of it, so re-ingesting the same report
    /// is idempotent.
    pub fn compute_fingerprint(&self) -> String {
        hex::encode(self.view().fingerprint())
    }

    /// The finding borrowed field by field (what the store encodes).
    pub fn view(&self) -> FindingView<'_> {
        FindingView {
            source: &self.source,
            feed: &self.feed,
            classification: &self.classification,
            ip: self.ip,
            network: self.network,
            port: self.port,
            protocol: self.protocol.as_deref(),
            asn: self.asn,
            domain: self.domain.as_deref(),
            url: self.url.as_deref(),
            email: self.email.as_deref(),
            severity: self.severity,
            time_source: self.time_source,
            first_seen: self.first_seen,
            last_seen: self.last_seen,
            times_seen: self.times_seen,
            status: self.status,
            in_scope: self.in_scope,
            extra: ExtraView::Map(&self.extra),
            raw: self.raw.as_deref(),
            identity: &self.identity,
            history: &self.history,
        }
    }

    /// Normalises indicator fields (lower-case domain and e-mail, no trailing dot) and fills the
    /// fingerprint. The pipeline calls this before storing; parsers may call it early.
    pub fn seal(&mut self) {
        if let Some(d) = self.domain.as_mut() {
            *d = normalize_domain(d);
        }
        if let Some(e) = self.email.as_mut() {
            *e = e.trim().to_ascii_lowercase();
        }
        if let Some(n) = self.network {
            self.network = Some(n.trunc());
        }
        self.fingerprint = self.compute_fingerprint();
    }

    /// The most specific thing this finding is about, for display.
    pub fn indicator(&self) -> String {
        if let Some(e) = &self.email {
            return e.clone();
        }
        if let Some(u) = &self.url {
            return u.clone();
        }
        if let Some(ip) = self.ip {
            return match self.port {
                Some(p) if ip.is_ipv6() => format!("[{ip}]:{p}"),
                Some(p) => format!("{ip}:{p}"),
                None => ip.to_string(),
            };
        }
        if let Some(n) = self.network {
            return n.to_string();
        }
        if let Some(d) = &self.domain {
            return d.clone();
        }
        if let Some(a) = self.asn {
            return format!("AS{a}");
        }
        String::from("-")
    }

    /// Appends a history entry, keeping at most [`HISTORY_CAP`] (life-cycle events are
    /// dropped before triage: [`history`]).
    pub fn push_history(&mut self, at: DateTime<Utc>, event: impl Into<Event>) {
        history::push(
            &mut self.history,
            HistoryEntry {
                at,
                event: event.into(),
            },
        );
    }

    /// The acknowledgement in force, when the finding is not resolved: an `ack` not taken
    /// back, resolved or reopened since ([`history::ack_in_force`]).
    pub fn acked(&self) -> Option<&HistoryEntry> {
        if self.status == Status::Resolved {
            return None;
        }
        history::ack_in_force(&self.history)
    }

    /// Sets an extra field from anything serialisable to JSON.
    pub fn set_extra(&mut self, key: &str, value: impl Into<serde_json::Value>) {
        self.extra.insert(key.to_string(), value.into());
    }
}

/// Lower-cases a host name and strips surrounding white space and a trailing dot.
pub fn normalize_domain(d: &str) -> String {
    let t = d.trim().trim_end_matches('.');
    t.to_ascii_lowercase()
}

/// `s` as a domain name (normalized: lower-case, no trailing dot), if it is one: at least two
/// labels, each 1 to 63 letters, digits, `-` or `_`, at most 253 characters in all. The one
/// rule of the config's domains and of lookup queries.
pub fn domain_name(s: &str) -> Option<String> {
    let d = normalize_domain(s);
    let ok = !d.is_empty()
        && d.len() <= 253
        && d.contains('.')
        && d.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        });
    ok.then_some(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domain_name_rules() {
        assert_eq!(domain_name("example.org").as_deref(), Some("example.org"));
        assert_eq!(
            domain_name(" EXAMPLE.org. ").as_deref(),
            Some("example.org")
        );
        assert_eq!(domain_name("a_b.example").as_deref(), Some("a_b.example"));
        assert_eq!(domain_name("a.b.c.d.e").as_deref(), Some("a.b.c.d.e"));
        let label63 = format!("{}.org", "a".repeat(63));
        assert_eq!(domain_name(&label63), Some(label63.clone()));
        let long = format!("{}.org", "a".repeat(64));
        let label = "a".repeat(63);
        let total254 = format!("{label}.{label}.{label}.{}", "a".repeat(62));
        assert_eq!(total254.len(), 254);
        for bad in [
            "x",
            "",
            ".",
            "a..b",
            "ex ample.org",
            "é.org",
            "a/b.org",
            &long,
            &total254,
        ] {
            assert_eq!(domain_name(bad), None, "{bad:?}");
        }
    }

    fn sample() -> Finding {
        let mut f = Finding::new(
            "shadowserver",
            "scan_dns",
            Classification::new("", "vulnerable-system", "open-dns"),
            Severity::Medium,
        );
        f.ip = Some("192.0.2.7".parse().unwrap());
        f.port = Some(53);
        f
    }

    #[test]
    fn fingerprint_ignores_lifecycle_and_extra() {
        let a = sample();
        let mut b = sample();
        b.times_seen = 9;
        b.set_extra("tag", "x");
        b.severity = Severity::High;
        assert_eq!(a.compute_fingerprint(), b.compute_fingerprint());
    }

    #[test]
    fn fingerprint_depends_on_indicators() {
        let a = sample();
        let mut b = sample();
        b.port = Some(54);
        assert_ne!(a.compute_fingerprint(), b.compute_fingerprint());
        let mut c = sample();
        c.identity.push("Adobe".into());
        assert_ne!(a.compute_fingerprint(), c.compute_fingerprint());
    }

    #[test]
    fn fingerprint_is_unambiguous_across_fields() {
        // "ab"+"c" must differ from "a"+"bc" (length-prefixed parts).
        let mut a = sample();
        a.source = "ab".into();
        a.feed = "c".into();
        let mut b = sample();
        b.source = "a".into();
        b.feed = "bc".into();
        assert_ne!(a.compute_fingerprint(), b.compute_fingerprint());
    }

    /// Fingerprints are stored identities: these values must never change.
    #[test]
    fn fingerprint_is_pinned() {
        assert_eq!(
            sample().compute_fingerprint(),
            "f21d334b850248e0b950ee57efec73bd"
        );

        let mut b = Finding::new(
            "hibp",
            "breach",
            Classification::new("", "data-leak", "Adobe"),
            Severity::High,
        );
        b.ip = Some("2001:db8::1:0:0:7".parse().unwrap());
        b.network = Some("2001:db8:ffff::/48".parse().unwrap());
        b.port = Some(65535);
        b.protocol = Some("tcp".into());
        b.asn = Some(4_294_967_295);
        b.domain = Some("mail.example.org".into());
        b.url = Some("https://mail.example.org/login?x=1".into());
        b.email = Some("jane@example.org".into());
        b.identity = vec!["Adobe".into(), "".into(), "é ü".into()];
        assert_eq!(b.compute_fingerprint(), "53400567e11fa0d0ed9bb4d7d8fab3fd");

        let mut c = Finding::new(
            "spamhaus",
            "drop",
            Classification::new("", "spam", "drop"),
            Severity::Low,
        );
        c.network = Some("198.51.100.0/24".parse().unwrap());
        c.port = Some(0);
        c.asn = Some(0);
        assert_eq!(c.compute_fingerprint(), "b01a579304050173685f276919a352cf");

        let mut d = sample();
        d.ip = Some("::ffff:10.0.0.1".parse().unwrap());
        d.port = Some(8);
        d.asn = Some(64496);
        assert_eq!(d.compute_fingerprint(), "b4e7d1dae438acee8b6c9180135fd0f9");
    }

    #[test]
    fn taxonomy_is_derived() {
        assert_eq!(
            Classification::new("", "c2-server", "x").taxonomy,
            "malicious-code"
        );
        assert_eq!(Classification::new("", "weird", "x").taxonomy, "other");
        assert_eq!(
            Classification::new("vulnerable", "weird", "x").taxonomy,
            "vulnerable"
        );
    }

    #[test]
    fn history_is_capped() {
        let mut f = sample();
        for _ in 0..100 {
            f.push_history(Utc::now(), "reported");
        }
        assert_eq!(f.history.len(), HISTORY_CAP);
    }

    #[test]
    fn severity_parses_and_orders() {
        assert_eq!("HIGH".parse::<Severity>().unwrap(), Severity::High);
        assert!(Severity::Critical < Severity::Info);
        assert!("bogus".parse::<Severity>().is_err());
    }
}
