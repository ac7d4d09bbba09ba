//! The feed-file schema: one TOML file per list feed (`feeds/*.toml`, and `[feeds] dir`).
//!
//! A feed file says where a list lives, how its body is laid out, which column holds which
//! indicator, and how entries are classified. Adding a list is a new file, never code. Column
//! names are matched case-insensitively against the header; numbers count from 1 like `cut -f`.

use std::collections::BTreeMap;
use std::str::FromStr;

use serde::{Deserialize, Deserializer};

use crate::config::{CronSchedule, HumanDuration};
use crate::finding::{Severity, SourceId};

/// One declarative list feed.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeedDef {
    /// Source name (`[sources.NAME]`, `fetch --source NAME`, `source` of its findings).
    pub name: String,
    /// Who publishes it (`abuse.ch`, `Spamhaus`).
    #[serde(default)]
    pub provider: String,
    /// Human title.
    #[serde(default)]
    pub title: String,
    /// Where the list is documented.
    #[serde(default)]
    pub documentation: String,
    /// The `feed` of its findings (list name within the source); defaults to `name`.
    #[serde(default)]
    pub feed: Option<String>,
    /// The list's URL(s). Several URLs form one list (Spamhaus DROP v4 + v6). A URL naming
    /// `{asn}` stands for one URL per ASN of `[organisation] asns` (URLhaus `/feeds/asn/{asn}/`),
    /// each a unit of its own.
    #[serde(deserialize_with = "one_or_many")]
    pub url: Vec<String>,
    /// URLs used instead when a key is configured; `{auth_key}` is replaced by the key.
    #[serde(default, deserialize_with = "one_or_many")]
    pub keyed_url: Vec<String>,
    /// Whether `[sources.NAME]` is needed to switch it on (public feeds: on by default).
    #[serde(default = "yes")]
    pub enabled_by_default: bool,
    /// Default schedule (cron, seconds first).
    pub schedule: CronSchedule,
    /// How long an entry's finding stays open after the entry left the list.
    pub resolve_after: HumanDuration,
    #[serde(default)]
    pub auth: AuthDef,
    /// Body layout.
    pub format: FormatDef,
    /// Which field holds what.
    #[serde(default)]
    pub fields: FieldsDef,
    /// Source-specific fields copied into `extra` (extra name → column).
    #[serde(default)]
    pub extra: BTreeMap<String, ColumnRef>,
    pub classification: ClassificationDef,
    /// Default severity of a finding.
    pub severity: Severity,
    /// Severity per classification type, overriding `severity`.
    #[serde(default)]
    pub severity_by_type: BTreeMap<String, Severity>,
    /// Values that mean "no value": an empty cell and the renderings of a null some lists
    /// write (ThreatFox's `None`). `0`, `-` and `unknown` are values, kept as written.
    #[serde(default = "default_nulls")]
    pub nulls: Vec<String>,
    /// Text in a comment line that means the list was retired (logged as a warning).
    #[serde(default)]
    pub deprecation_notice: Option<String>,
}

fn yes() -> bool {
    true
}

fn default_nulls() -> Vec<String> {
    ["", "None", "none", "null"]
        .iter()
        .map(|s| s.to_string())
        .collect()
}

/// Key handling.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthDef {
    /// The feed refuses to answer without a key.
    #[serde(default)]
    pub needs_key: bool,
    /// Header that carries the key (`Auth-Key` for abuse.ch).
    pub header: Option<String>,
    /// Environment variable read when `[sources.NAME]` gives no key.
    pub env: Option<String>,
    /// What the key is called in messages (`abuse.ch Auth-Key`).
    #[serde(default)]
    pub key_name: Option<String>,
    /// Where to get one.
    #[serde(default)]
    pub help: Option<String>,
}

/// How the body is laid out.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub enum FormatDef {
    /// Comma (or other) separated values.
    Csv(CsvDef),
    /// One indicator (or a few separated fields) per line.
    Lines(LinesDef),
    /// A JSON document: an array of objects, an object of id → [objects], or `records` inside.
    Json(JsonDef),
    /// JSON lines: one object per line.
    Jsonl(JsonlDef),
}

/// Where a CSV list keeps its column names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HeaderMode {
    /// The first non-comment row (Feodo CSV).
    Row,
    /// The last comment line before the data (`# id,dateadded,url,...`).
    Comment,
    /// No header: refer to columns by number.
    None,
}

/// `format.type = "csv"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CsvDef {
    /// Field separator: one character, or `", "` for ThreatFox's quoted-comma-space dialect.
    #[serde(default = "comma")]
    pub separator: String,
    /// Lines starting with this character are comments.
    #[serde(default = "hash")]
    pub comment: String,
    pub header: HeaderMode,
    /// A comment line at the end giving the entry count (`# END {n} entries`).
    #[serde(default)]
    pub trailer: Option<String>,
    /// Whether a missing trailer means the body was cut off.
    #[serde(default)]
    pub trailer_required: bool,
}

/// `format.type = "lines"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinesDef {
    /// Comment prefix (`#`, `;`).
    #[serde(default = "hash")]
    pub comment: String,
    /// Splits a line into numbered columns (white space when absent); text after a comment
    /// prefix inside a line is kept as a column (`1.4.0.0/17 ; SBL256893`).
    #[serde(default)]
    pub separator: Option<String>,
    #[serde(default)]
    pub trailer: Option<String>,
    #[serde(default)]
    pub trailer_required: bool,
}

/// `format.type = "json"`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JsonDef {
    /// Key of the record array inside a wrapper object (`data` in abuse.ch API replies).
    #[serde(default)]
    pub records: Option<String>,
}

/// `format.type = "jsonl"`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JsonlDef {
    /// A line that is not an entry but metadata, e.g. Spamhaus' `{"type":"metadata",...}`.
    #[serde(default)]
    pub metadata: Option<MetadataDef>,
}

/// Recognises a metadata line and reads the entry count from it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetadataDef {
    pub field: String,
    pub value: String,
    /// Field holding the number of entries (an integrity check).
    #[serde(default)]
    pub count: Option<String>,
    /// Whether a missing metadata line means the body was cut off.
    #[serde(default)]
    pub required: bool,
    /// Field holding the list's time (Unix seconds or a date): the `time_source` of entries
    /// that carry none of their own.
    #[serde(default)]
    pub time: Option<String>,
}

fn comma() -> String {
    ",".into()
}
fn hash() -> String {
    "#".into()
}

/// A column by header name, or by number (from 1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ColumnRef {
    Name(String),
    Number(usize),
}

impl<'de> Deserialize<'de> for ColumnRef {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            N(i64),
            S(String),
        }
        match Raw::deserialize(d)? {
            Raw::N(n) if n >= 1 => Ok(ColumnRef::Number(n as usize)),
            Raw::N(n) => Err(serde::de::Error::custom(format!(
                "column {n}: columns are numbered from 1"
            ))),
            Raw::S(s) if s.trim().is_empty() => {
                Err(serde::de::Error::custom("a column name must not be empty"))
            }
            Raw::S(s) => Ok(ColumnRef::Name(s)),
        }
    }
}

impl std::fmt::Display for ColumnRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ColumnRef::Name(n) => write!(f, "`{n}`"),
            ColumnRef::Number(n) => write!(f, "column {n}"),
        }
    }
}

/// What an indicator is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IndicatorKind {
    /// An IP address, optionally `ip:port` / `[v6]:port`.
    Ip,
    /// A CIDR network.
    Network,
    Url,
    Domain,
    /// `64496` or `AS64496`.
    Asn,
    /// Decide from the value: IP, ip:port, CIDR, URL, else domain.
    Auto,
    /// Not matchable against a scope (hashes): counted, not kept.
    Skip,
}

/// `[fields]`: which column holds what. At least one indicator column is required.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FieldsDef {
    pub ip: Option<ColumnRef>,
    pub network: Option<ColumnRef>,
    pub url: Option<ColumnRef>,
    pub domain: Option<ColumnRef>,
    pub asn: Option<ColumnRef>,
    /// An indicator whose kind comes from `indicator_type` (or is detected).
    pub indicator: Option<ColumnRef>,
    /// The column naming the indicator's kind (ThreatFox `ioc_type`).
    pub indicator_type: Option<ColumnRef>,
    /// `indicator_type` value → kind; values not listed are detected (`auto`).
    #[serde(default)]
    pub indicator_types: BTreeMap<String, IndicatorKind>,
    pub port: Option<ColumnRef>,
    /// The time the provider saw the entry (`time_source`).
    pub time: Option<ColumnRef>,
    /// Malware family: becomes the classification identifier (lower-cased).
    pub malware: Option<ColumnRef>,
    /// The column whose value picks the classification type via `classification.types`.
    #[serde(rename = "type")]
    pub kind: Option<ColumnRef>,
}

/// `[classification]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClassificationDef {
    /// RSIT taxonomy; derived from the type when empty.
    #[serde(default)]
    pub taxonomy: String,
    #[serde(rename = "type")]
    pub kind: String,
    /// Identifier when the row names no malware.
    pub identifier: String,
    /// `fields.type` value → classification type (ThreatFox `botnet_cc` → `c2-server`).
    #[serde(default)]
    pub types: BTreeMap<String, String>,
}

fn one_or_many<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        One(String),
        Many(Vec<String>),
    }
    Ok(match Raw::deserialize(d)? {
        Raw::One(s) => vec![s],
        Raw::Many(v) => v,
    })
}

/// A feed file, or the folder of feed files, that cannot be used; `origin` names the file.
#[derive(Debug, thiserror::Error)]
pub enum FeedFileError {
    #[error("feed file {origin}: {source}")]
    Toml {
        origin: String,
        #[source]
        source: toml::de::Error,
    },
    #[error("feed file {origin}: {problem}")]
    Invalid {
        origin: String,
        #[source]
        problem: DefProblem,
    },
    #[error("feed file {}: {source}", path.display())]
    Read {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// `[feeds] dir` cannot be listed.
    #[error("[feeds] dir = {}: cannot read it: {source}", dir.display())]
    Dir {
        dir: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// What a feed definition that parses gets wrong (the key is named).
#[derive(Debug, thiserror::Error)]
pub enum DefProblem {
    #[error("`name = \"{0}\"`: use lower-case letters, digits, `_` and `-`")]
    Name(String),
    /// The name of a built-in source ([`SourceId`]: the API sources and `flows`).
    #[error("`name = \"{0}\"` is the name of a built-in source")]
    Reserved(String),
    #[error("`url` must name at least one URL")]
    NoUrl,
    #[error("bad URL `{url}`: {source}")]
    Url {
        url: String,
        #[source]
        source: <reqwest::Url as FromStr>::Err,
    },
    #[error("`keyed_url` must list as many URLs as `url`")]
    KeyedUrls,
    #[error("[fields] names no indicator column (ip, network, url, domain, asn or indicator)")]
    NoIndicator,
    #[error("[fields] `indicator_type` needs `indicator`")]
    TypeWithoutIndicator,
    #[error("format.separator `{0}`: use one character, or \", \"")]
    Separator(String),
    #[error("format.comment must be one character for CSV")]
    CsvComment,
    #[error("format.header = \"none\": refer to columns by number")]
    NamedWithoutHeader,
    #[error("format.comment must not be empty")]
    EmptyComment,
    #[error("format.type = \"lines\": refer to columns by number")]
    NamedInLines,
    #[error("JSON feeds refer to fields by name, not number")]
    NumberedInJson,
}

impl FeedDef {
    /// Parses and checks a feed file; `origin` names it in messages.
    pub fn parse(text: &str, origin: &str) -> Result<FeedDef, FeedFileError> {
        let def: FeedDef = toml::from_str(text).map_err(|source| FeedFileError::Toml {
            origin: origin.to_string(),
            source,
        })?;
        def.check().map_err(|problem| FeedFileError::Invalid {
            origin: origin.to_string(),
            problem,
        })?;
        Ok(def)
    }

    fn check(&self) -> Result<(), DefProblem> {
        let n = &self.name;
        if n.is_empty()
            || !n
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
        {
            return Err(DefProblem::Name(n.clone()));
        }
        if SourceId::of(n).is_some() {
            return Err(DefProblem::Reserved(n.clone()));
        }
        if self.url.is_empty() {
            return Err(DefProblem::NoUrl);
        }
        for u in self.url.iter().chain(&self.keyed_url) {
            let probe = u.replace("{auth_key}", "KEY").replace("{asn}", "64496");
            reqwest::Url::parse(&probe).map_err(|source| DefProblem::Url {
                url: u.clone(),
                source,
            })?;
        }
        if !self.keyed_url.is_empty() && self.keyed_url.len() != self.url.len() {
            return Err(DefProblem::KeyedUrls);
        }
        let f = &self.fields;
        if f.ip.is_none()
            && f.network.is_none()
            && f.url.is_none()
            && f.domain.is_none()
            && f.asn.is_none()
            && f.indicator.is_none()
        {
            return Err(DefProblem::NoIndicator);
        }
        if f.indicator_type.is_some() && f.indicator.is_none() {
            return Err(DefProblem::TypeWithoutIndicator);
        }
        let named = self.columns().any(|c| matches!(c, ColumnRef::Name(_)));
        let numbered = self.columns().any(|c| matches!(c, ColumnRef::Number(_)));
        match &self.format {
            FormatDef::Csv(c) => {
                if c.separator != ", " && c.separator.len() != 1 {
                    return Err(DefProblem::Separator(c.separator.clone()));
                }
                if c.comment.len() != 1 {
                    return Err(DefProblem::CsvComment);
                }
                if c.header == HeaderMode::None && named {
                    return Err(DefProblem::NamedWithoutHeader);
                }
            }
            FormatDef::Lines(l) => {
                if l.comment.is_empty() {
                    return Err(DefProblem::EmptyComment);
                }
                if named {
                    return Err(DefProblem::NamedInLines);
                }
            }
            FormatDef::Json(_) | FormatDef::Jsonl(_) => {
                if numbered {
                    return Err(DefProblem::NumberedInJson);
                }
            }
        }
        Ok(())
    }

    /// Every column the file refers to.
    pub fn columns(&self) -> impl Iterator<Item = &ColumnRef> {
        let f = &self.fields;
        [
            &f.ip,
            &f.network,
            &f.url,
            &f.domain,
            &f.asn,
            &f.indicator,
            &f.indicator_type,
            &f.port,
            &f.time,
            &f.malware,
            &f.kind,
        ]
        .into_iter()
        .flatten()
        .chain(self.extra.values())
    }

    /// Whether the list is fetched once per ASN (a URL names `{asn}`).
    pub fn per_asn(&self) -> bool {
        self.url
            .iter()
            .chain(&self.keyed_url)
            .any(|u| u.contains("{asn}"))
    }

    /// Whether entries of this list can name an address or a network (an `ip`, `network`, `url`
    /// or free-form `indicator` column): only such lists keep an indicator set.
    pub fn lists_addresses(&self) -> bool {
        let f = &self.fields;
        f.ip.is_some() || f.network.is_some() || f.url.is_some() || f.indicator.is_some()
    }

    /// The `feed` of this list's findings.
    pub fn feed_name(&self) -> &str {
        self.feed.as_deref().unwrap_or(&self.name)
    }

    /// Whether `v` is one of the "no value" markers.
    pub fn is_null(&self, v: &str) -> bool {
        self.nulls.iter().any(|n| n == v)
    }
}

impl FromStr for FeedDef {
    type Err = FeedFileError;
    fn from_str(s: &str) -> Result<Self, FeedFileError> {
        FeedDef::parse(s, "(inline)")
    }
}
