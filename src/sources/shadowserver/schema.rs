//! The report schema: every Shadowserver report type → name, columns, classification and default
//! severity, from data files only (no code per type).
//!
//! - `feeds/shadowserver/reports.json` is Shadowserver's official `reports.json` (170 types),
//!   bundled; `outwatch shadowserver update-schema` stores a newer copy in the store, which then
//!   wins ([`SCHEMA_STATE_KEY`]).
//! - `feeds/shadowserver/classification.tsv` adds the RSIT identifier and application per type
//!   (and taxonomy/type for the types the schema leaves unclassified).
//! - `feeds/shadowserver/default-severity.json` is the default severity per type.
//! - `feeds/shadowserver/retired.tsv` holds the types Shadowserver published and retired
//!   (`phish_url`, ...) with their classification, and the old names of renamed types
//!   (`botnet_drone` → `event4_sinkhole`): archived reports still carry them.
//! - `feeds/shadowserver/identity.tsv` names, per type, the columns beyond the finding's
//!   indicator fields that tell two rows apart (the sinkhole's address, the malware family,
//!   the sandbox sample's hash, ...): they become [`crate::finding::Finding::identity`].
//!
//! A type the bundled tables do not know (Shadowserver added one) still gets a classification:
//! its schema entry, else its IPv4 twin (`scan6_x` → `scan_x`), else a rule by name prefix; it is
//! imported with a warning, never refused.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use serde::Deserialize;

use crate::finding::{Classification, Severity};

/// The bundled official schema.
pub const BUNDLED_SCHEMA: &str = include_str!("../../../feeds/shadowserver/reports.json");
const CLASSIFICATION_TSV: &str = include_str!("../../../feeds/shadowserver/classification.tsv");
const DEFAULT_SEVERITY_JSON: &str =
    include_str!("../../../feeds/shadowserver/default-severity.json");
const RETIRED_TSV: &str = include_str!("../../../feeds/shadowserver/retired.tsv");
const IDENTITY_TSV: &str = include_str!("../../../feeds/shadowserver/identity.tsv");

/// Where `update-schema` keeps the downloaded schema (in the store's state).
pub const SCHEMA_STATE_KEY: &str = "shadowserver/schema";

/// Public URL of the schema.
pub const DEFAULT_SCHEMA_URL: &str = "https://interchange.shadowserver.org/schema/reports.json";

/// One entry of `reports.json`.
#[derive(Debug, Clone, Deserialize)]
pub struct SchemaEntry {
    pub name: String,
    #[serde(default)]
    pub url: Option<String>,
    #[serde(rename = "classification.taxonomy", default)]
    pub taxonomy: Option<String>,
    #[serde(rename = "classification.type", default)]
    pub kind: Option<String>,
    pub fields: Vec<String>,
}

/// How a report type is classified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TypeInfo {
    pub taxonomy: String,
    pub kind: String,
    /// Fixed identifier, or `None` when it is the row's `infection` value.
    pub identifier: Option<String>,
    pub application: Option<String>,
    pub severity: Severity,
    /// `(tag, classification)`: a row with this tag is classified differently.
    pub when_tag: Vec<(String, Classification)>,
    /// Columns whose values are part of each finding's identity (`identity.tsv`), sorted.
    pub identity: Vec<String>,
    /// A column holding the subject's host name when the report has no `hostname`
    /// (`retired.tsv`: `phish_url`'s `host`).
    pub domain_column: Option<String>,
}

impl TypeInfo {
    /// The classification of a row given its `infection` value and tags.
    pub fn classify(
        &self,
        report_type: &str,
        infection: Option<&str>,
        tags: &[&str],
    ) -> Classification {
        for (tag, c) in &self.when_tag {
            if tags.iter().any(|t| t.eq_ignore_ascii_case(tag)) {
                return c.clone();
            }
        }
        let ident = match &self.identifier {
            Some(i) => i.clone(),
            None => infection
                .map(|s| s.trim().to_ascii_lowercase())
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| report_type.replace('_', "-")),
        };
        Classification::new(&self.taxonomy, &self.kind, &ident)
    }
}

#[derive(Debug, Clone)]
struct TableRow {
    taxonomy: String,
    kind: String,
    identifier: Option<String>,
    application: Option<String>,
}

struct Tables {
    rows: HashMap<String, TableRow>,
    when_tag: HashMap<String, Vec<(String, Classification)>>,
    severity: HashMap<String, Severity>,
    /// Retired types (`retired.tsv`), each with the column naming its subject's host.
    retired: HashMap<String, Option<String>>,
    /// Old names of renamed types and their current names (`retired.tsv`).
    renamed: Vec<(String, String)>,
    /// Identity columns per type (`identity.tsv`), sorted.
    identity: HashMap<String, Vec<String>>,
}

/// The data lines of a bundled table, split on tabs.
fn data_lines(tsv: &'static str) -> impl Iterator<Item = Vec<&'static str>> {
    tsv.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| l.split('\t').collect())
}

fn tables() -> &'static Tables {
    static T: OnceLock<Tables> = OnceLock::new();
    T.get_or_init(|| {
        let mut rows = HashMap::new();
        let mut when_tag: HashMap<String, Vec<(String, Classification)>> = HashMap::new();
        let row = |p: &[&str]| TableRow {
            taxonomy: p[1].to_string(),
            kind: p[2].to_string(),
            identifier: (p[3] != "$infection").then(|| p[3].to_string()),
            application: (p[4] != "-").then(|| p[4].to_string()),
        };
        for p in data_lines(CLASSIFICATION_TSV) {
            if p[0] == "when_tag" && p.len() == 6 {
                when_tag
                    .entry(p[1].to_string())
                    .or_default()
                    .push((p[2].to_string(), Classification::new(p[3], p[4], p[5])));
            } else if p.len() == 5 {
                rows.insert(p[0].to_string(), row(&p));
            }
        }
        let sev: HashMap<String, String> =
            serde_json::from_str(DEFAULT_SEVERITY_JSON).expect("bundled severity table is JSON");
        let mut severity: HashMap<String, Severity> = sev
            .into_iter()
            .filter_map(|(k, v)| v.parse().ok().map(|s| (k, s)))
            .collect();
        let (mut retired, mut renamed) = (HashMap::new(), Vec::new());
        for p in data_lines(RETIRED_TSV) {
            if p[0] == "renamed" && p.len() >= 3 {
                renamed.push((p[1].to_string(), p[2].to_string()));
            } else if p.len() >= 7 {
                rows.insert(p[0].to_string(), row(&p));
                if let Ok(s) = p[5].parse() {
                    severity.insert(p[0].to_string(), s);
                }
                retired.insert(p[0].to_string(), (p[6] != "-").then(|| p[6].to_string()));
            }
        }
        let identity = data_lines(IDENTITY_TSV)
            .filter(|p| p.len() >= 2)
            .map(|p| {
                let mut cols: Vec<String> = p[1].split_whitespace().map(str::to_string).collect();
                cols.sort();
                cols.dedup();
                (p[0].to_string(), cols)
            })
            .collect();
        Tables {
            rows,
            when_tag,
            severity,
            retired,
            renamed,
            identity,
        }
    })
}

/// The schema in use: report types with their columns and classification.
#[derive(Debug, Clone)]
pub struct Schema {
    entries: HashMap<String, SchemaEntry>,
    /// Known type names, longest first (for file-name detection).
    names_by_len: Vec<String>,
    /// Where it came from (`bundled` or `update-schema`).
    pub origin: &'static str,
}

/// Why a `reports.json` document is not used (the schema in use stays).
#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    #[error("the schema is an HTML page, not JSON")]
    Html,
    #[error("the schema is not JSON: {0}")]
    Json(#[source] serde_json::Error),
    #[error("the schema server answered with an error: {0}")]
    Refused(String),
    #[error("the schema does not have the reports.json shape: {0}")]
    Shape(#[source] serde_json::Error),
    #[error("the schema lists only {0} report types (expected 150 or more)")]
    TooFew(usize),
    #[error("the schema has a bad report type name `{0}`")]
    BadName(String),
    #[error("report type `{0}` has no `timestamp` field")]
    NoTimestamp(String),
}

/// Parses and validates a `reports.json` document.
pub fn parse_schema(bytes: &[u8]) -> Result<HashMap<String, SchemaEntry>, SchemaError> {
    if crate::http::looks_like_html(bytes) {
        return Err(SchemaError::Html);
    }
    let v: serde_json::Value = serde_json::from_slice(bytes).map_err(SchemaError::Json)?;
    if let Some(err) = v.get("error") {
        return Err(SchemaError::Refused(crate::text::clip(
            &err.to_string(),
            300,
        )));
    }
    let entries: HashMap<String, SchemaEntry> =
        serde_json::from_value(v).map_err(SchemaError::Shape)?;
    if entries.len() < 50 {
        return Err(SchemaError::TooFew(entries.len()));
    }
    for (k, e) in &entries {
        if k.is_empty() || !k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            return Err(SchemaError::BadName(crate::text::clip(k, 80)));
        }
        if !e.fields.iter().any(|f| f == "timestamp") {
            return Err(SchemaError::NoTimestamp(k.clone()));
        }
    }
    Ok(entries)
}

impl Schema {
    fn from_entries(entries: HashMap<String, SchemaEntry>, origin: &'static str) -> Self {
        let mut names: Vec<String> = entries.keys().cloned().collect();
        names.extend(tables().rows.keys().cloned());
        names.sort_by(|a, b| b.len().cmp(&a.len()).then(a.cmp(b)));
        names.dedup();
        Schema {
            entries,
            names_by_len: names,
            origin,
        }
    }

    /// The bundled schema (parsed once).
    pub fn bundled() -> Arc<Schema> {
        static S: OnceLock<Arc<Schema>> = OnceLock::new();
        S.get_or_init(|| {
            let e = parse_schema(BUNDLED_SCHEMA.as_bytes()).expect("bundled schema is valid");
            Arc::new(Schema::from_entries(e, "bundled"))
        })
        .clone()
    }

    /// The schema stored by `update-schema` when there is a valid one, else the bundled one.
    pub fn from_override(stored: Option<&[u8]>) -> Arc<Schema> {
        match stored.map(parse_schema) {
            Some(Ok(e)) => Arc::new(Schema::from_entries(e, "update-schema")),
            Some(Err(e)) => {
                tracing::warn!(error = %e, "the stored Shadowserver schema is unusable; using the bundled one");
                Schema::bundled()
            }
            None => Schema::bundled(),
        }
    }

    /// Number of report types.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Every report type name, sorted.
    pub fn types(&self) -> Vec<&str> {
        let mut v: Vec<&str> = self.entries.keys().map(String::as_str).collect();
        v.sort_unstable();
        v
    }

    /// The schema entry of a type.
    pub fn entry(&self, report_type: &str) -> Option<&SchemaEntry> {
        self.entries.get(report_type)
    }

    /// Whether the type is known (schema or bundled tables, retired types included).
    pub fn knows(&self, report_type: &str) -> bool {
        self.entries.contains_key(report_type) || tables().rows.contains_key(report_type)
    }

    /// Whether the type is a retired one (`retired.tsv`) that the schema no longer lists.
    pub fn is_retired(&self, report_type: &str) -> bool {
        !self.entries.contains_key(report_type) && tables().retired.contains_key(report_type)
    }

    /// Every type name this schema imports by name: the schema's, the retired ones and the old
    /// names of renamed ones, sorted (for hints).
    pub fn all_names(&self) -> Vec<&str> {
        let t = tables();
        let mut v: Vec<&str> = self.entries.keys().map(String::as_str).collect();
        v.extend(t.retired.keys().map(String::as_str));
        v.extend(t.renamed.iter().map(|(o, _)| o.as_str()));
        v.sort_unstable();
        v.dedup();
        v
    }

    /// The current name of a report type (legacy names mapped to their successors).
    pub fn canonical<'a>(&self, report_type: &'a str) -> &'a str {
        if self.knows(report_type) {
            return report_type;
        }
        tables()
            .renamed
            .iter()
            .find(|(old, _)| old == report_type)
            .map_or(report_type, |(_, new)| new.as_str())
    }

    /// Classification and default severity of a type; works for every name (see module docs).
    pub fn info(&self, report_type: &str) -> TypeInfo {
        let t = tables();
        let twin = ipv4_twin(report_type);
        let row = t
            .rows
            .get(report_type)
            .or_else(|| twin.as_deref().and_then(|w| t.rows.get(w)));
        let entry = self
            .entries
            .get(report_type)
            .filter(|e| e.kind.as_deref().is_some_and(|k| !k.is_empty()));
        let (taxonomy, kind) = match (entry, row) {
            (Some(e), _) => (
                e.taxonomy.clone().unwrap_or_default(),
                e.kind.clone().unwrap_or_default(),
            ),
            (None, Some(r)) => (r.taxonomy.clone(), r.kind.clone()),
            (None, None) => {
                let (a, b) = by_prefix(report_type);
                (a.to_string(), b.to_string())
            }
        };
        let identifier = match row {
            Some(r) => r.identifier.clone(),
            None if kind == "infected-system" || kind == "brute-force" => None,
            None => Some(report_type.replace('_', "-")),
        };
        let severity = t
            .severity
            .get(report_type)
            .or_else(|| twin.as_deref().and_then(|w| t.severity.get(w)))
            .copied()
            .unwrap_or_else(|| severity_by_kind(&kind));
        let identity = t
            .identity
            .get(report_type)
            .or_else(|| twin.as_deref().and_then(|w| t.identity.get(w)))
            .cloned()
            .unwrap_or_default();
        TypeInfo {
            taxonomy,
            kind,
            identifier,
            application: row.and_then(|r| r.application.clone()),
            severity,
            when_tag: t.when_tag.get(report_type).cloned().unwrap_or_default(),
            identity,
            domain_column: t.retired.get(report_type).cloned().flatten(),
        }
    }

    /// The report type named by a file: `2024-01-04-blocklist-company-ip.csv`,
    /// `scan_ssh.csv`, `2015-01-01-dns_openresolver-sample-asn.csv.zip`. The longest known
    /// type at the start of the part after the date wins; legacy names are mapped.
    pub fn type_from_file_name(&self, name: &str) -> Option<String> {
        let stem = file_stem(name);
        let rest = strip_date(&stem);
        let boundary = |s: &str, n: &str| {
            s.strip_prefix(n)
                .is_some_and(|r| r.is_empty() || r.starts_with(['-', '_', '.', ' ']))
        };
        // A name followed by `-` or the end beats one followed by `_` (scan_stun_example_com).
        let exact = |s: &str, n: &str| {
            s.strip_prefix(n)
                .is_some_and(|r| r.is_empty() || r.starts_with(['-', '.', ' ']))
        };
        let legacy = tables().renamed.iter().map(|(o, _)| o.clone());
        let all: Vec<String> = self.names_by_len.iter().cloned().chain(legacy).collect();
        let found = all
            .iter()
            .find(|n| exact(rest, n))
            .or_else(|| all.iter().find(|n| boundary(rest, n)))?;
        Some(self.canonical(found).to_string())
    }
}

/// A file name without its folder and its `.eml`, `.zip`, `.gz`, `.csv` endings, lower-cased.
fn file_stem(name: &str) -> String {
    let base = name.rsplit(['/', '\\']).next().unwrap_or(name);
    let mut stem = base.to_ascii_lowercase();
    for ext in [".eml", ".zip", ".gz", ".csv"] {
        if let Some(s) = stem.strip_suffix(ext) {
            stem = s.to_string();
        }
    }
    stem
}

/// The report type a Shadowserver file name names when no table knows it: the word after the
/// date of `YYYY-MM-DD-<type>-<list>.csv` (letters, digits and `_`, as IntelMQ reads it). Only
/// a dated name counts (`notes.csv` names no report type).
pub fn unknown_type_from_file_name(name: &str) -> Option<String> {
    let stem = file_stem(name);
    let rest = strip_date(&stem);
    if rest.len() == stem.len() {
        return None;
    }
    let t = rest.split('-').next().unwrap_or("");
    let ok = !t.is_empty()
        && t.len() <= 64
        && t.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    ok.then(|| t.to_string())
}

fn strip_date(s: &str) -> &str {
    let b = s.as_bytes();
    let is_date = b.len() > 11
        && b[..10].iter().enumerate().all(|(i, c)| {
            if i == 4 || i == 7 {
                *c == b'-'
            } else {
                c.is_ascii_digit()
            }
        })
        && b[10] == b'-';
    if is_date { &s[11..] } else { s }
}

/// `scan6_dns` → `scan_dns`, `event6_sinkhole` → `event4_sinkhole`, `device_id6` → `device_id`.
fn ipv4_twin(t: &str) -> Option<String> {
    if let Some(r) = t.strip_prefix("scan6_") {
        return Some(format!("scan_{r}"));
    }
    if let Some(r) = t.strip_prefix("event6_") {
        return Some(format!("event4_{r}"));
    }
    if let Some(r) = t.strip_prefix("population6_") {
        return Some(format!("population_{r}"));
    }
    t.strip_suffix('6').map(str::to_string)
}

/// Classification of a type nobody described yet, by its name.
fn by_prefix(t: &str) -> (&'static str, &'static str) {
    if t.contains("sinkhole") && !t.contains("dns") {
        ("malicious-code", "infected-system")
    } else if t.contains("honeypot") && t.ends_with("_scan") {
        ("information-gathering", "scanner")
    } else if t.contains("brute_force") {
        ("intrusion-attempts", "brute-force")
    } else if t.contains("ddos") {
        ("availability", "ddos")
    } else if t.starts_with("compromised") {
        ("intrusions", "system-compromise")
    } else if t.starts_with("scan") || t.starts_with("population") {
        ("vulnerable", "vulnerable-system")
    } else {
        ("other", "other")
    }
}

fn severity_by_kind(kind: &str) -> Severity {
    match kind {
        "infected-system" | "system-compromise" => Severity::Critical,
        "brute-force" | "scanner" | "ddos" => Severity::High,
        "vulnerable-system" => Severity::Medium,
        "weak-crypto" => Severity::Low,
        _ => Severity::Info,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_bundled_type_is_classified() {
        let s = Schema::bundled();
        assert_eq!(s.len(), 170);
        for t in s.types() {
            let i = s.info(t);
            assert!(!i.kind.is_empty(), "{t}");
            assert!(!i.taxonomy.is_empty(), "{t}");
            assert!(
                tables().rows.contains_key(t),
                "{t} missing from classification.tsv"
            );
            assert!(
                tables().severity.contains_key(t),
                "{t} missing from default-severity.json"
            );
            let c = i.classify(t, None, &[]);
            assert!(!c.identifier.is_empty(), "{t}");
        }
    }

    #[test]
    fn schema_classification_wins_and_table_fills_in() {
        let s = Schema::bundled();
        let b = s.info("blocklist");
        assert_eq!(
            (b.taxonomy.as_str(), b.kind.as_str()),
            ("other", "blocklist")
        );
        assert_eq!(b.severity, Severity::Low);
        let d = s.info("scan_dns");
        assert_eq!(
            d.classify("scan_dns", None, &[]).identifier,
            "dns-open-resolver"
        );
        assert_eq!(d.severity, Severity::Medium);
        let sk = s.info("event4_sinkhole");
        assert_eq!(
            sk.classify("event4_sinkhole", Some("Andromeda"), &[])
                .identifier,
            "andromeda"
        );
        let ex = s.info("scan_exchange");
        assert_eq!(
            ex.classify("scan_exchange", None, &["exchange", "webshell"])
                .kind,
            "system-compromise"
        );
        assert_eq!(
            ex.classify("scan_exchange", None, &["exchange"]).kind,
            "vulnerable-system"
        );
        // A type nobody knows yet still gets something sensible.
        let n = s.info("scan6_newthing");
        assert_eq!(n.kind, "vulnerable-system");
    }

    #[test]
    fn type_from_file_names() {
        let s = Schema::bundled();
        let t = |n: &str| s.type_from_file_name(n);
        assert_eq!(
            t("2024-01-04-blocklist-company-ip.csv").as_deref(),
            Some("blocklist")
        );
        assert_eq!(t("scan_ssh.csv").as_deref(), Some("scan_ssh"));
        assert_eq!(
            t("/x/2020-08-02-scan_smb-anarres-geo.csv.gz").as_deref(),
            Some("scan_smb")
        );
        assert_eq!(
            t("2022-08-31-scan_stun_example_com-asn.csv").as_deref(),
            Some("scan_stun")
        );
        assert_eq!(
            t("2015-01-01-dns_openresolver-sample-asn.csv.zip").as_deref(),
            Some("scan_dns")
        );
        assert_eq!(
            t("event4_honeypot_ddos_target.csv").as_deref(),
            Some("event4_honeypot_ddos_target")
        );
        assert_eq!(
            t("2023-01-01-scan_ssl_poodle-x.csv").as_deref(),
            Some("scan_ssl_poodle")
        );
        assert_eq!(t("notes.csv"), None);
    }

    #[test]
    fn retired_renamed_and_unknown_types() {
        let s = Schema::bundled();
        assert!(s.knows("phish_url") && s.is_retired("phish_url"));
        assert!(!s.is_retired("scan_dns"));
        let p = s.info("phish_url");
        let c = p.classify("phish_url", None, &[]);
        assert_eq!(
            (c.taxonomy.as_str(), c.kind.as_str(), c.identifier.as_str()),
            ("fraud", "phishing", "phish-url")
        );
        assert_eq!(p.severity, Severity::High);
        assert_eq!(p.domain_column.as_deref(), Some("host"));
        assert_eq!(s.canonical("scan_msrdpeudp"), "scan_rdpeudp");
        assert_eq!(s.canonical("botnet_drone"), "event4_sinkhole");
        assert_eq!(
            s.type_from_file_name("2022-02-01-phish_url-example-asn.csv")
                .as_deref(),
            Some("phish_url")
        );
        assert!(s.all_names().contains(&"phish_url"));
        assert!(s.all_names().contains(&"botnet_drone"));
        let u = |n: &str| unknown_type_from_file_name(n);
        assert_eq!(
            u("2026-11-20-scan_gizmo-example-asn.csv.gz").as_deref(),
            Some("scan_gizmo")
        );
        assert_eq!(u("notes.csv"), None, "a name without a date names no type");
        assert_eq!(u("2026-11-20-Scan Gizmo.csv"), None);
    }

    #[test]
    fn identity_columns_per_type() {
        let s = Schema::bundled();
        assert_eq!(
            s.info("event4_sinkhole_http").identity,
            ["dst_ip", "dst_port", "family", "infection"]
        );
        assert_eq!(
            s.info("event6_sinkhole_http").identity,
            s.info("event4_sinkhole_http").identity,
            "the IPv4 twin's columns"
        );
        assert_eq!(
            s.info("sandbox_dns").identity,
            ["md5", "md5hash", "sha1", "sha256"]
        );
        assert!(s.info("scan_dns").identity.is_empty());
    }

    #[test]
    fn bad_schemas_are_refused() {
        assert!(parse_schema(b"<html><body>502</body></html>").is_err());
        assert!(parse_schema(br#"{"error":"nope"}"#).is_err());
        assert!(parse_schema(br#"{"scan_x":{"name":"x","fields":["timestamp"]}}"#).is_err());
        assert!(parse_schema(b"[1,2]").is_err());
    }
}
