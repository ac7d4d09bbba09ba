//! The report schema: every Shadowserver report type → name, columns, classification and default
//! severity, from data files only (no code per type).
//!
//! - `feeds/shadowserver/reports.json` is Shadowserver's official `reports.json` (170 types),
//!   bundled; `outwatch shadowserver update-schema` stores a newer copy in the store, which then
//!   wins ([`SCHEMA_STATE_KEY`]).
//! - `feeds/shadowserver/classification.tsv` adds the RSIT identifier and application per type
//!   (and taxonomy/type for the types the schema leaves unclassified).
//! - `feeds/shadowserver/default-severity.json` is the default severity per type.
//!
//! A type the bundled tables do not know (Shadowserver added one) still gets a classification:
//! its schema entry, else its IPv4 twin (`scan6_x` → `scan_x`), else a rule by name prefix.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use serde::Deserialize;

use crate::finding::{Classification, Severity};

/// The bundled official schema.
pub const BUNDLED_SCHEMA: &str = include_str!("../../../feeds/shadowserver/reports.json");
const CLASSIFICATION_TSV: &str = include_str!("../../../feeds/shadowserver/classification.tsv");
const DEFAULT_SEVERITY_JSON: &str =
    include_str!("../../../feeds/shadowserver/default-severity.json");

/// Where `update-schema` keeps the downloaded schema (in the store's state).
pub const SCHEMA_STATE_KEY: &str = "shadowserver/schema";

/// Public URL of the schema.
pub const DEFAULT_SCHEMA_URL: &str = "https://interchange.shadowserver.org/schema/reports.json";

/// Old report names (e-mail era) and their current successors.
const LEGACY_NAMES: &[(&str, &str)] = &[
    ("botnet_drone", "event4_sinkhole"),
    ("sinkhole_http_drone", "event4_sinkhole_http"),
    ("sinkhole6_http", "event6_sinkhole_http"),
    ("microsoft_sinkhole", "event4_microsoft_sinkhole"),
    ("drone_brute_force", "event4_honeypot_brute_force"),
    ("hp_http_scan", "event4_honeypot_http_scan"),
    ("hp_ics_scan", "event4_honeypot_ics_scan"),
    ("darknet", "event4_honeypot_darknet"),
    ("ddos_amplification", "event4_honeypot_ddos_amp"),
    ("caida_ip_spoofer", "event4_ip_spoofer"),
    ("cisco_smart_install", "scan_cisco_smart_install"),
    ("netis_router", "scan_netis_router"),
    ("cwsandbox_url", "sandbox_url"),
    ("scan_ldap", "scan_ldap_udp"),
    ("blacklist", "blocklist"),
    ("dns_openresolver", "scan_dns"),
];

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
}

fn tables() -> &'static Tables {
    static T: OnceLock<Tables> = OnceLock::new();
    T.get_or_init(|| {
        let mut rows = HashMap::new();
        let mut when_tag: HashMap<String, Vec<(String, Classification)>> = HashMap::new();
        for line in CLASSIFICATION_TSV.lines() {
            if line.starts_with('#') || line.trim().is_empty() {
                continue;
            }
            let p: Vec<&str> = line.split('\t').collect();
            if p[0] == "when_tag" && p.len() == 6 {
                when_tag
                    .entry(p[1].to_string())
                    .or_default()
                    .push((p[2].to_string(), Classification::new(p[3], p[4], p[5])));
            } else if p.len() == 5 {
                rows.insert(
                    p[0].to_string(),
                    TableRow {
                        taxonomy: p[1].to_string(),
                        kind: p[2].to_string(),
                        identifier: (p[3] != "$infection").then(|| p[3].to_string()),
                        application: (p[4] != "-").then(|| p[4].to_string()),
                    },
                );
            }
        }
        let sev: HashMap<String, String> =
            serde_json::from_str(DEFAULT_SEVERITY_JSON).expect("bundled severity table is JSON");
        let severity = sev
            .into_iter()
            .filter_map(|(k, v)| v.parse().ok().map(|s| (k, s)))
            .collect();
        Tables {
            rows,
            when_tag,
            severity,
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

/// Parses and validates a `reports.json` document.
pub fn parse_schema(bytes: &[u8]) -> Result<HashMap<String, SchemaEntry>, String> {
    if crate::http::looks_like_html(bytes) {
        return Err("the schema is an HTML page, not JSON".into());
    }
    let v: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| format!("the schema is not JSON: {e}"))?;
    if let Some(err) = v.get("error") {
        return Err(format!("the schema server answered with an error: {err}"));
    }
    let entries: HashMap<String, SchemaEntry> = serde_json::from_value(v)
        .map_err(|e| format!("the schema does not have the reports.json shape: {e}"))?;
    if entries.len() < 50 {
        return Err(format!(
            "the schema lists only {} report types (expected 150 or more)",
            entries.len()
        ));
    }
    for (k, e) in &entries {
        if k.is_empty() || !k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            return Err(format!("the schema has a bad report type name `{k}`"));
        }
        if !e.fields.iter().any(|f| f == "timestamp") {
            return Err(format!("report type `{k}` has no `timestamp` field"));
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

    /// Whether the type is known (schema or bundled tables).
    pub fn knows(&self, report_type: &str) -> bool {
        self.entries.contains_key(report_type) || tables().rows.contains_key(report_type)
    }

    /// The current name of a report type (legacy names mapped to their successors).
    pub fn canonical<'a>(&self, report_type: &'a str) -> &'a str {
        if self.knows(report_type) {
            return report_type;
        }
        LEGACY_NAMES
            .iter()
            .find(|(old, _)| *old == report_type)
            .map(|(_, new)| *new)
            .unwrap_or(report_type)
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
        TypeInfo {
            taxonomy,
            kind,
            identifier,
            application: row.and_then(|r| r.application.clone()),
            severity,
            when_tag: t.when_tag.get(report_type).cloned().unwrap_or_default(),
        }
    }

    /// The report type named by a file: `2024-01-04-blocklist-company-ip.csv`,
    /// `scan_ssh.csv`, `2015-01-01-dns_openresolver-sample-asn.csv.zip`. The longest known
    /// type at the start of the part after the date wins; legacy names are mapped.
    pub fn type_from_file_name(&self, name: &str) -> Option<String> {
        let base = name.rsplit(['/', '\\']).next().unwrap_or(name);
        let mut stem = base.to_ascii_lowercase();
        for ext in [".eml", ".zip", ".gz", ".csv"] {
            if let Some(s) = stem.strip_suffix(ext) {
                stem = s.to_string();
            }
        }
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
        let legacy = LEGACY_NAMES.iter().map(|(o, _)| o.to_string());
        let all: Vec<String> = self.names_by_len.iter().cloned().chain(legacy).collect();
        let found = all
            .iter()
            .find(|n| exact(rest, n))
            .or_else(|| all.iter().find(|n| boundary(rest, n)))?;
        Some(self.canonical(found).to_string())
    }
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
    fn bad_schemas_are_refused() {
        assert!(parse_schema(b"<html><body>502</body></html>").is_err());
        assert!(parse_schema(br#"{"error":"nope"}"#).is_err());
        assert!(parse_schema(br#"{"scan_x":{"name":"x","fields":["timestamp"]}}"#).is_err());
        assert!(parse_schema(b"[1,2]").is_err());
    }
}
