//! The configuration file (`outwatch.toml`) → typed settings.
//!
//! Every table denies unknown keys, and values are parsed into their real types while the TOML
//! is read, so an error names the key and its line. Secrets are [`Secret`]s: `check-config`
//! prints them redacted.
//!
//! [`Config::parse`] reads a document in two steps: this module's own tables, then the
//! `[sources.*]` tables through a [`SourceTables`] reader it is given. Each source's table is a
//! struct in that source's folder (`src/sources/<name>/config.rs`), and the reader is the
//! source registry (`sources::registry::Registry`): this module knows no source, since the
//! sources depend on it.

pub mod flows;
pub(crate) mod notify;
mod report;
pub(crate) mod suppress;
pub(crate) mod web;

pub use report::toml_error;

use std::any::Any;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use ipnet::IpNet;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::secret::Secret;

/// Name of the config file looked for in the working directory.
pub const DEFAULT_CONFIG: &str = "outwatch.toml";
/// Store folder when neither the config nor `--data-dir` names one.
pub const DEFAULT_DATA_DIR: &str = "outwatch-data";

/// A configuration problem, with the file and (where known) the line.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {reason}")]
    Read { path: String, reason: String },
    #[error("invalid config file {path}: {message}")]
    Invalid { path: String, message: String },
    /// A `[sources.*]` table its [`SourceTables`] reader refused.
    #[error("invalid config file {path}: {error}")]
    Source {
        path: String,
        #[source]
        error: Box<dyn std::error::Error + Send + Sync>,
    },
}

/// Reads the `[sources.*]` tables of a config document into [`Config::sources`] and checks
/// them (errors name the line). Implemented by the source registry
/// (`sources::registry::Registry`), which knows every source; [`Config::parse`] calls it once
/// the config's own tables are read.
pub trait SourceTables {
    fn read(
        &self,
        text: &str,
        cfg: &mut Config,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>>;
}

/// Reads no source table (a document without `[sources.*]`, or a test of the own tables).
pub struct NoSources;

impl SourceTables for NoSources {
    fn read(
        &self,
        _: &str,
        _: &mut Config,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        Ok(())
    }
}

/// A check the config fails ([`Config::parse_own_tables`]): what, and where (`line L: `,
/// empty when the line was not found).
#[derive(Debug, thiserror::Error)]
#[error("{at}{problem}")]
pub struct Invalid {
    pub at: String,
    pub problem: Problem,
}

/// What a config check found wrong (the key and the value are named).
#[derive(Debug, thiserror::Error)]
pub enum Problem {
    #[error(transparent)]
    Store(#[from] StoreConfigError),
    #[error("`scope.ripestat_url` = `{url}`: {error}")]
    RipestatUrl { url: String, error: UrlError },
    #[error(transparent)]
    Flows(#[from] flows::FlowsConfigError),
    #[error(
        "`digest.from` = `{0}` must be a mail address (a display name is allowed: \
         \"outwatch <outwatch@example.org>\")"
    )]
    DigestFrom(String),
    /// `.0`: the route's name in backquotes, or `#n`.
    #[error(
        "`digest.routes.recipients` of route {0} is empty: its digest would go to nobody; name \
         at least one address, e.g. recipients = [\"dmz@example.org\"]"
    )]
    RouteToNobody(String),
    #[error(
        "`digest.recipients` is empty and there is no `[[digest.routes]]`: the digest would go \
         to nobody; name at least one address, e.g. recipients = [\"noc@example.org\"]"
    )]
    DigestToNobody,
    #[error(transparent)]
    Suppress(#[from] suppress::RuleError),
    #[error(transparent)]
    Notify(#[from] notify::NotifyConfigError),
    #[error("`{key}`: `{value}` is not a mail address ({why}); write it like noc@example.org")]
    Address {
        key: &'static str,
        value: String,
        why: MailAddressError,
    },
    #[error("`smtp.tls = \"none\"` is allowed only for a loopback host (testing), not `{0}`")]
    PlainSmtp(String),
    #[error(transparent)]
    Web(#[from] web::WebConfigError),
}

/// The whole configuration file.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Who we are and what is ours.
    #[serde(default)]
    pub organisation: Organisation,
    /// How ASNs are resolved to prefixes.
    #[serde(default)]
    pub scope: ScopeConfig,
    /// Where the store lives.
    #[serde(default)]
    pub store: StoreConfig,
    /// HTTP client behaviour shared by all sources.
    #[serde(default)]
    pub http: HttpConfig,
    /// Extra declarative feed files.
    #[serde(default)]
    pub feeds: FeedsConfig,
    /// One table per source.
    #[serde(default)]
    pub sources: SourcesConfig,
    /// The daily digest.
    #[serde(default)]
    pub digest: Option<DigestConfig>,
    /// The mail server the digest is sent through.
    #[serde(default)]
    pub smtp: Option<SmtpConfig>,
    /// The network's own connection logs (`outwatch flows`, and watched by `run`).
    #[serde(default)]
    pub flows: flows::FlowsConfig,
    /// `[[suppress]]`: suppression rules kept in the config (`src/triage/suppress.rs`).
    #[serde(default)]
    pub suppress: Vec<suppress::SuppressConfig>,
    /// `[notify]` and `[[contacts]]`: telling the owners of our addresses (`config/notify.rs`).
    #[serde(default)]
    pub notify: Option<notify::NotifyConfig>,
    #[serde(default)]
    pub contacts: Vec<notify::ContactConfig>,
    /// `[web]` and `[[web.tokens]]`: the web view and its API (`config/web.rs`, `src/web/`).
    #[serde(default)]
    pub web: web::WebConfig,
    /// Folder of the config file (relative paths are taken from there). Not read from the file.
    #[serde(skip)]
    pub base_dir: PathBuf,
    /// Things that were accepted but are probably not what was meant (a prefix with host bits),
    /// each with its line; `check-config` prints them, other commands log them once.
    #[serde(skip)]
    pub warnings: Vec<String>,
}

/// `[organisation]`: who we are and what is ours.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Organisation {
    #[serde(default)]
    pub name: String,
    /// Autonomous systems; their announced prefixes are ours.
    #[serde(default)]
    pub asns: Vec<Asn>,
    /// Extra prefixes (IPv4 and IPv6) that are ours whatever BGP says.
    #[serde(default)]
    pub prefixes: Vec<IpNet>,
    /// Domains; each covers its subdomains.
    #[serde(default)]
    pub domains: Vec<DomainName>,
    /// Individual mail addresses to watch (besides whole domains).
    #[serde(default)]
    pub emails: Vec<String>,
}

/// `[scope]`: ASN resolution.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ScopeConfig {
    /// RIPEstat Data API base URL.
    #[serde(default = "default_ripestat")]
    pub ripestat_url: String,
    /// How often the ASN prefixes are refreshed.
    #[serde(default = "default_day")]
    pub refresh: HumanDuration,
}

fn default_ripestat() -> String {
    "https://stat.ripe.net".into()
}

fn default_day() -> HumanDuration {
    HumanDuration(Duration::from_secs(86_400))
}

impl Default for ScopeConfig {
    fn default() -> Self {
        ScopeConfig {
            ripestat_url: default_ripestat(),
            refresh: default_day(),
        }
    }
}

/// `[store]`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct StoreConfig {
    /// Store folder; relative to the config file's folder.
    pub path: Option<PathBuf>,
    /// The share of a source's open findings one run may resolve; a larger drop looks like a
    /// cut-off download and is held back until the next run confirms it [default: 0.5].
    pub max_resolve_share: Option<f64>,
    /// Where findings live: `sled` (the embedded default, in `path`) or `postgres` (a shared
    /// database, `url`).
    #[serde(default)]
    pub backend: Backend,
    /// The PostgreSQL connection URL (`postgres://user@host:port/db`); a password in it is
    /// used, never shown (it is a [`Secret`]).
    pub url: Option<Secret>,
    /// Instead of `url`: the environment variable that holds it (with its password).
    pub url_env: Option<String>,
    /// A `.pgpass`-style file (`host:port:database:user:password` lines, owner-only) with the
    /// password for `url`; without one, `$PGPASSFILE` or `~/.pgpass` when present.
    pub password_file: Option<PathBuf>,
    /// The PostgreSQL schema outwatch's tables live in (created when missing) [default: the
    /// server's `search_path`, usually `public`].
    pub schema: Option<String>,
}

/// `[store] backend`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// sled, embedded in the store folder: one machine, nothing to install.
    #[default]
    Sled,
    /// PostgreSQL: the shared store of several nodes.
    Postgres,
}

impl Backend {
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Sled => "sled",
            Backend::Postgres => "postgres",
        }
    }
}

/// A run resolves at most this share of a source's open findings unless the previous run saw
/// the same drop (`[store] max_resolve_share`).
pub const DEFAULT_MAX_RESOLVE_SHARE: f64 = 0.5;

/// What is wrong with the `[store]` table.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreConfigError {
    #[error(
        "`store.{0}` is a PostgreSQL setting, but the store is sled (the default): add backend \
         = \"postgres\", or remove `{0}`"
    )]
    PostgresKeyOnSled(&'static str),
    #[error(
        "`store.backend = \"postgres\"` needs `url = \"postgres://user@host/database\"` (or \
         `url_env`, the environment variable holding it)"
    )]
    NoUrl,
    #[error("`store.url` and `store.url_env` are both set: keep one")]
    TwoUrls,
    /// `.0`: the name as written, clipped for the message.
    #[error("`store.schema` = `{0}` is no schema name (1 to 63 characters)")]
    Schema(String),
    #[error("`store.url_env` names an environment variable, e.g. \"OUTWATCH_PG_URL\"")]
    UrlEnv,
}

impl StoreConfig {
    /// The PostgreSQL keys go with `backend = "postgres"`, which needs a URL.
    fn validate(&self) -> Result<(), StoreConfigError> {
        match self.backend {
            Backend::Sled => {
                let pg_keys = [
                    ("url", self.url.is_some()),
                    ("url_env", self.url_env.is_some()),
                    ("password_file", self.password_file.is_some()),
                    ("schema", self.schema.is_some()),
                ];
                if let Some((k, _)) = pg_keys.iter().find(|(_, set)| *set) {
                    return Err(StoreConfigError::PostgresKeyOnSled(k));
                }
            }
            Backend::Postgres => match (&self.url, &self.url_env) {
                (None, None) => return Err(StoreConfigError::NoUrl),
                (Some(_), Some(_)) => return Err(StoreConfigError::TwoUrls),
                _ => {}
            },
        }
        if let Some(s) = &self.schema
            && (s.is_empty() || s.len() > 63 || s.chars().any(char::is_control))
        {
            return Err(StoreConfigError::Schema(crate::text::clip(s, 80)));
        }
        if let Some(v) = &self.url_env
            && (v.is_empty() || v.contains('='))
        {
            return Err(StoreConfigError::UrlEnv);
        }
        Ok(())
    }

    /// `max_resolve_share`, or its default.
    pub fn max_resolve_share(&self) -> f64 {
        self.max_resolve_share.unwrap_or(DEFAULT_MAX_RESOLVE_SHARE)
    }
}

/// `[http]`: limits every fetch obeys.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    /// Whole-request deadline.
    #[serde(default = "default_timeout")]
    pub timeout: HumanDuration,
    /// Connect deadline.
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout: HumanDuration,
    /// Whole-request deadline of a download streamed to disk (a Shadowserver report of a
    /// million rows); its body must still keep moving: no `timeout` may pass without a byte.
    #[serde(default = "default_download_timeout")]
    pub download_timeout: HumanDuration,
    /// Largest response body accepted, in MiB.
    #[serde(default = "default_max_body")]
    pub max_body_mib: u64,
    /// User-Agent header (HIBP requires one).
    #[serde(default = "default_user_agent")]
    pub user_agent: String,
}

fn default_timeout() -> HumanDuration {
    HumanDuration(Duration::from_secs(120))
}
fn default_connect_timeout() -> HumanDuration {
    HumanDuration(Duration::from_secs(15))
}
fn default_download_timeout() -> HumanDuration {
    HumanDuration(Duration::from_secs(3600))
}
fn default_max_body() -> u64 {
    512
}
fn default_user_agent() -> String {
    format!("outwatch/{}", env!("CARGO_PKG_VERSION"))
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            timeout: default_timeout(),
            connect_timeout: default_connect_timeout(),
            download_timeout: default_download_timeout(),
            max_body_mib: default_max_body(),
            user_agent: default_user_agent(),
        }
    }
}

/// `[feeds]`: where to find declarative feed files besides the built-in ones.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct FeedsConfig {
    /// A folder of extra `*.toml` feed definitions (relative to the config file).
    pub dir: Option<PathBuf>,
}

/// `[sources.*]`: one table per source, each parsed by its own source after the rest of the
/// file (see `src/sources/registry.rs`), and kept here by name as that source's own struct.
#[derive(Debug, Clone, Default)]
pub struct SourcesConfig {
    tables: Vec<(String, Arc<dyn SourceTable>)>,
}

/// A source's parsed `[sources.<name>]` table: any debuggable, serialisable struct (secrets as
/// [`Secret`], so that `check-config` prints them redacted).
pub trait SourceTable: Any + fmt::Debug + Send + Sync {
    /// For [`SourcesConfig::get`].
    fn as_any(&self) -> &dyn Any;
    /// The settings as `check-config` prints them.
    fn settings(&self) -> serde_json::Value;
}

impl<T: Any + fmt::Debug + Send + Sync + Serialize> SourceTable for T {
    fn as_any(&self) -> &dyn Any {
        self
    }
    fn settings(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or(serde_json::Value::Null)
    }
}

impl SourcesConfig {
    /// The table `[sources.<name>]` as its source's struct `T`, if it was given.
    pub fn get<T: SourceTable>(&self, name: &str) -> Option<&T> {
        self.tables
            .iter()
            .find(|(n, _)| n == name)
            .and_then(|(_, t)| t.as_ref().as_any().downcast_ref())
    }

    /// Every table of type `T` (the list feeds' tables), in the order they were set.
    pub fn all<T: SourceTable>(&self) -> impl Iterator<Item = (&str, &T)> {
        self.tables
            .iter()
            .filter_map(|(n, t)| Some((n.as_str(), t.as_ref().as_any().downcast_ref()?)))
    }

    /// Sets (or replaces) the table of `name`.
    pub fn set<T: SourceTable>(&mut self, name: &str, table: T) {
        self.tables.retain(|(n, _)| n != name);
        self.tables.push((name.to_string(), Arc::new(table)));
    }

    /// The names of the tables given, in the order they were set.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.tables.iter().map(|(n, _)| n.as_str())
    }
}

/// Here the `[sources.*]` tables are only required to be tables; their sources read them.
impl<'de> Deserialize<'de> for SourcesConfig {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        std::collections::BTreeMap::<String, serde::de::IgnoredAny>::deserialize(d)?;
        Ok(SourcesConfig::default())
    }
}

impl Serialize for SourcesConfig {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(Some(self.tables.len()))?;
        for (name, t) in &self.tables {
            m.serialize_entry(name, &NullAsNone(&t.settings()))?;
        }
        m.end()
    }
}

/// Serialises a JSON value with its nulls as `None`, so that TOML leaves unset keys out (as
/// it does for a struct's `Option` fields) and JSON still writes `null`.
struct NullAsNone<'a>(&'a serde_json::Value);

impl Serialize for NullAsNone<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::{SerializeMap, SerializeSeq};
        use serde_json::Value;
        match self.0 {
            Value::Null => s.serialize_none(),
            Value::Array(a) => {
                let mut q = s.serialize_seq(Some(a.len()))?;
                for v in a {
                    q.serialize_element(&NullAsNone(v))?;
                }
                q.end()
            }
            Value::Object(o) => {
                let mut m = s.serialize_map(Some(o.len()))?;
                for (k, v) in o {
                    m.serialize_entry(k, &NullAsNone(v))?;
                }
                m.end()
            }
            other => other.serialize(s),
        }
    }
}

/// `[digest]`: the daily mail.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DigestConfig {
    /// When to send (cron, seconds first).
    #[serde(default = "default_digest_schedule")]
    pub schedule: CronSchedule,
    /// Time zone of the schedule (IANA name); UTC when absent.
    pub timezone: Option<chrono_tz::Tz>,
    pub from: String,
    #[serde(default)]
    pub recipients: Vec<String>,
    /// Subject line prefix.
    #[serde(default = "default_subject")]
    pub subject: String,
    /// Folder of templates overriding the built-in ones (relative to the config file).
    pub templates: Option<PathBuf>,
    /// Also mail when nothing changed.
    #[serde(default = "default_true")]
    pub send_empty: bool,
    /// Extra recipients for findings in given prefixes or domains.
    #[serde(default)]
    pub routes: Vec<DigestRoute>,
}

fn default_digest_schedule() -> CronSchedule {
    CronSchedule::from_str("0 0 7 * * *").expect("valid default")
}
fn default_subject() -> String {
    "outwatch digest".into()
}
fn default_true() -> bool {
    true
}

/// `[[digest.routes]]`: who else hears about findings in these prefixes or domains.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DigestRoute {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub prefixes: Vec<IpNet>,
    #[serde(default)]
    pub domains: Vec<DomainName>,
    pub recipients: Vec<String>,
}

/// `[smtp]`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SmtpConfig {
    pub host: String,
    #[serde(default = "default_smtp_port")]
    pub port: u16,
    #[serde(default)]
    pub tls: SmtpTls,
    pub username: Option<String>,
    pub password: Option<Secret>,
    pub password_env: Option<String>,
    #[serde(default = "default_smtp_timeout")]
    pub timeout: HumanDuration,
}

fn default_smtp_port() -> u16 {
    587
}
fn default_smtp_timeout() -> HumanDuration {
    HumanDuration(Duration::from_secs(60))
}

/// How the SMTP connection is secured.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SmtpTls {
    /// STARTTLS required (port 587).
    #[default]
    Starttls,
    /// Implicit TLS (port 465).
    Tls,
    /// Plain text; only for loopback test servers.
    None,
}

/// An ASN, written `64496` or `"AS64496"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Asn(pub u32);

/// Text that is no AS number; `.0` as written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not an AS number (write 64496 or \"AS64496\")")]
pub struct BadAsn(pub String);

impl FromStr for Asn {
    type Err = BadAsn;
    fn from_str(s: &str) -> Result<Self, BadAsn> {
        let t = s.trim();
        let digits = t
            .strip_prefix("AS")
            .or_else(|| t.strip_prefix("as"))
            .unwrap_or(t);
        match digits.parse::<u32>() {
            Ok(n) if n > 0 => Ok(Asn(n)),
            _ => Err(BadAsn(s.to_string())),
        }
    }
}

impl<'de> Deserialize<'de> for Asn {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            N(i64),
            S(String),
        }
        match Raw::deserialize(d)? {
            Raw::N(n) if n > 0 && n <= u32::MAX as i64 => Ok(Asn(n as u32)),
            Raw::N(n) => Err(serde::de::Error::custom(format!(
                "{n} is not an AS number (1 to 4294967295)"
            ))),
            Raw::S(s) => s.parse().map_err(serde::de::Error::custom),
        }
    }
}

impl Serialize for Asn {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u32(self.0)
    }
}

/// A domain name, validated and lower-cased.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct DomainName(pub String);

/// Text that is no domain name; `.0` as written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a domain name (write it like example.org)")]
pub struct BadDomain(pub String);

impl FromStr for DomainName {
    type Err = BadDomain;
    fn from_str(s: &str) -> Result<Self, BadDomain> {
        match crate::finding::domain_name(s) {
            Some(d) => Ok(DomainName(d)),
            None => Err(BadDomain(s.to_string())),
        }
    }
}

impl<'de> Deserialize<'de> for DomainName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

/// A cron schedule, with crontab(5)'s meaning in every form.
///
/// Five fields (`min hour day month weekday`, as in crontab) get `0` seconds; six or seven
/// fields put seconds first (and a year last). In **every** form the weekday field means what
/// it means in crontab(5): `0` and `7` are Sunday, `1` Monday … `6` Saturday, names
/// (`sun`…`sat`, any case) too, with ranges (`1-5`, `mon-fri`, `fri-sun`), lists and steps
/// (`*/2`, `1-5/2`). The `cron` crate numbers weekdays 1 = Sunday, so the field is translated
/// into day names before the crate sees it: `0 7 * * 1-5` fires Monday to Friday.
#[derive(Clone)]
pub struct CronSchedule {
    pub schedule: cron::Schedule,
    pub source: String,
}

impl fmt::Debug for CronSchedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.source)
    }
}

impl CronSchedule {
    /// The next fire time strictly after `t`.
    pub fn next_after(&self, t: &DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.schedule.after(t).next()
    }

    /// The typical gap between two runs (the gap after `t`), for feed-health checks.
    pub fn interval(&self, t: &DateTime<Utc>) -> Option<chrono::Duration> {
        let mut it = self.schedule.after(t);
        let a = it.next()?;
        let b = it.next()?;
        Some(b - a)
    }
}

const WEEKDAY_NAMES: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];

/// A crontab weekday field that cannot be read; the parts as written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WeekdayError {
    #[error("weekday `{0}` is out of range (0-7, 0 and 7 are Sunday)")]
    OutOfRange(String),
    #[error("`{0}` is not a weekday (0-7 with 0 and 7 Sunday, or sun, mon, ..., sat)")]
    NotAWeekday(String),
    #[error("`{step}` in `{part}` is not a step (1 or more)")]
    BadStep { step: String, part: String },
    #[error("weekday range `{0}` runs backwards (write e.g. `fri-sun` or `5-7`)")]
    Backwards(String),
}

/// A schedule that is no crontab expression ([`crate_expression`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CronFieldsError {
    #[error("{0} field(s) where five, or six with seconds first, are expected")]
    Fields(usize),
    #[error(transparent)]
    Weekday(#[from] WeekdayError),
}

/// How a schedule is written, told after any error in one.
const CRON_HINT: &str = "write `min hour day month weekday` as in crontab (weekdays 0-7, 0 and \
                         7 Sunday, or names), or six fields with seconds first; e.g. \
                         \"0 7 * * *\" for 07:00 daily, \"0 7 * * 1-5\" for 07:00 Monday to \
                         Friday";

/// A `schedule` that cannot be used; `text` as written.
#[derive(Debug, thiserror::Error)]
pub enum ScheduleError {
    #[error("`{text}` is not a cron expression ({error}); {CRON_HINT}")]
    Fields {
        text: String,
        error: CronFieldsError,
    },
    #[error("`{text}` is not a cron expression ({error}); {CRON_HINT}")]
    Cron {
        text: String,
        error: cron::error::Error,
    },
    #[error("cron expression `{0}` never fires")]
    NeverFires(String),
}

/// One crontab weekday (`0`..`7` or a name) → 0 (Sunday) .. 7 (Sunday again, kept for ranges).
fn crontab_weekday(s: &str) -> Result<u8, WeekdayError> {
    let t = s.trim();
    if let Ok(n) = t.parse::<u8>() {
        return if n <= 7 {
            Ok(n)
        } else {
            Err(WeekdayError::OutOfRange(t.to_string()))
        };
    }
    let lower = t.to_ascii_lowercase();
    let full = [
        "sunday",
        "monday",
        "tuesday",
        "wednesday",
        "thursday",
        "friday",
        "saturday",
    ];
    full.iter()
        .position(|f| lower.len() >= 3 && f.starts_with(&lower))
        .map(|i| i as u8)
        .ok_or_else(|| WeekdayError::NotAWeekday(t.to_string()))
}

/// Translates a crontab(5) weekday field into the `cron` crate's terms (a list of day names),
/// e.g. `1-5` → `MON,TUE,WED,THU,FRI`, `0` / `7` / `sun` → `SUN`. `*` and `?` stay.
pub fn translate_weekday_field(field: &str) -> Result<String, WeekdayError> {
    let f = field.trim();
    if f == "*" || f == "?" {
        return Ok(f.to_string());
    }
    let mut days = [false; 7];
    for part in f.split(',') {
        let (range, step) =
            match part.split_once('/') {
                Some((r, st)) => {
                    let st: u8 = st.parse().ok().filter(|&n| n > 0).ok_or_else(|| {
                        WeekdayError::BadStep {
                            step: st.to_string(),
                            part: part.to_string(),
                        }
                    })?;
                    (r, st)
                }
                None => (part, 1),
            };
        let (lo, hi) = if range == "*" || range == "?" {
            (0, 6)
        } else if let Some((a, b)) = range.split_once('-') {
            let a = crontab_weekday(a)?;
            let mut b = crontab_weekday(b)?;
            // `fri-sun`: Sunday as the end of a range is day 7.
            if b == 0 {
                b = 7;
            }
            if b < a {
                return Err(WeekdayError::Backwards(range.to_string()));
            }
            (a, b)
        } else {
            let a = crontab_weekday(range)?;
            // `5/2` in crontab means "from 5 to the end, every 2nd".
            if part.contains('/') { (a, 6) } else { (a, a) }
        };
        let mut d = lo;
        while d <= hi {
            days[(d % 7) as usize] = true;
            d += step;
        }
    }
    Ok(WEEKDAY_NAMES
        .iter()
        .zip(days)
        .filter(|(_, on)| *on)
        .map(|(n, _)| *n)
        .collect::<Vec<_>>()
        .join(","))
}

/// A schedule in crontab's terms → the `cron` crate's expression (seconds first, weekday
/// field translated). Shorthands (`@daily`) pass through.
pub fn crate_expression(s: &str) -> Result<String, CronFieldsError> {
    let t = s.trim();
    if t.starts_with('@') {
        return Ok(t.to_string());
    }
    let mut fields: Vec<String> = t.split_whitespace().map(str::to_string).collect();
    match fields.len() {
        5 => fields.insert(0, "0".into()),
        6 | 7 => {}
        n => return Err(CronFieldsError::Fields(n)),
    }
    fields[5] = translate_weekday_field(&fields[5])?;
    Ok(fields.join(" "))
}

impl FromStr for CronSchedule {
    type Err = ScheduleError;
    fn from_str(s: &str) -> Result<Self, ScheduleError> {
        let expr = crate_expression(s).map_err(|error| ScheduleError::Fields {
            text: s.to_string(),
            error,
        })?;
        let schedule = cron::Schedule::from_str(&expr).map_err(|error| ScheduleError::Cron {
            text: s.to_string(),
            error,
        })?;
        if schedule.after(&Utc::now()).next().is_none() {
            return Err(ScheduleError::NeverFires(s.to_string()));
        }
        Ok(CronSchedule {
            schedule,
            source: s.trim().to_string(),
        })
    }
}

impl<'de> Deserialize<'de> for CronSchedule {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

impl Serialize for CronSchedule {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.source)
    }
}

/// A duration written as `"30s"`, `"15m"`, `"3d"`, `"2weeks"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HumanDuration(pub Duration);

impl HumanDuration {
    pub fn chrono(&self) -> chrono::Duration {
        chrono::Duration::from_std(self.0).unwrap_or(chrono::Duration::MAX)
    }
}

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        humantime::parse_duration(&s)
            .map(HumanDuration)
            .map_err(|e| {
                serde::de::Error::custom(format!(
                    "`{s}` is not a duration ({e}); write e.g. \"90s\", \"15m\", \"3d\""
                ))
            })
    }
}

impl Serialize for HumanDuration {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&humantime::format_duration(self.0).to_string())
    }
}

impl Config {
    /// The names a worklist's `--team` takes: the `[[flows.teams]]`, `[[flows.zones]]` and
    /// `[[digest.routes]]`.
    pub fn team_names(&self) -> Vec<&str> {
        self.teams().into_iter().map(|(n, _)| n).collect()
    }

    /// Every `[[flows.teams]]`, `[[flows.zones]]` and `[[digest.routes]]` with its prefixes.
    pub fn teams(&self) -> Vec<(&str, &[IpNet])> {
        let f = &self.flows;
        let teams = f.teams.iter().map(|t| (t.name.as_str(), &t.prefixes[..]));
        let zones = f.zones.iter().map(|z| (z.name.as_str(), &z.prefixes[..]));
        let routes = self
            .digest
            .iter()
            .flat_map(|d| d.routes.iter())
            .map(|r| (r.name.as_str(), &r.prefixes[..]));
        teams.chain(zones).chain(routes).collect()
    }

    /// Parses a config document: its own tables, then the `[sources.*]` tables through
    /// `sources` (see the module documentation). `path` is used in messages and to resolve
    /// relative paths.
    pub fn parse(
        text: &str,
        path: &Path,
        sources: &dyn SourceTables,
    ) -> Result<Config, ConfigError> {
        let mut cfg = Config::parse_own_tables(text, path)?;
        sources
            .read(text, &mut cfg)
            .map_err(|error| ConfigError::Source {
                path: path.display().to_string(),
                error,
            })?;
        Ok(cfg)
    }

    /// Reads and parses the config file at `path` (see [`Config::parse`]). A file must name
    /// something as ours (see [`Config::require_something_ours`]).
    pub fn load(path: &Path, sources: &dyn SourceTables) -> Result<Config, ConfigError> {
        let text = Config::read_text(path)?;
        let cfg = Config::parse(&text, path, sources)?;
        cfg.require_something_ours(&text, path)?;
        Ok(cfg)
    }

    /// Parses the document's own tables (everything but what is inside `[sources.*]`) and
    /// checks them.
    fn parse_own_tables(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let invalid = |message: String| ConfigError::Invalid {
            path: path.display().to_string(),
            message,
        };
        let base_dir = path
            .parent()
            .map(|p| {
                if p.as_os_str().is_empty() {
                    PathBuf::from(".")
                } else {
                    p.to_path_buf()
                }
            })
            .unwrap_or_else(|| PathBuf::from("."));
        let mut cfg: Config = toml::from_str(text).map_err(|e| invalid(toml_error(text, &e)))?;
        cfg.base_dir = base_dir;
        cfg.validate(text).map_err(|e| invalid(e.to_string()))?;
        cfg.normalise_prefixes(text);
        Ok(cfg)
    }

    /// Reads the config file at `path` (see [`Config::load`]).
    pub fn read_text(path: &Path) -> Result<String, ConfigError> {
        std::fs::read_to_string(path).map_err(|e| ConfigError::Read {
            path: path.display().to_string(),
            reason: e.to_string(),
        })
    }

    /// A file must name something as ours: an `[organisation]` with no ASN, prefix, domain or
    /// mail address is an error (outwatch would watch nothing and say nothing).
    pub fn require_something_ours(&self, text: &str, path: &Path) -> Result<(), ConfigError> {
        let o = &self.organisation;
        if o.asns.is_empty() && o.prefixes.is_empty() && o.domains.is_empty() && o.emails.is_empty()
        {
            return Err(ConfigError::Invalid {
                path: path.display().to_string(),
                message: format!(
                    "{}`[organisation]` names nothing as ours: give at least one of `asns`, \
                     `prefixes`, `domains` or `emails` (see config.example.toml)",
                    line_hint(text, "[organisation]")
                ),
            });
        }
        Ok(())
    }

    /// A prefix written with host bits (`203.0.113.5/24`) is taken as its network
    /// (`203.0.113.0/24`), with a warning naming the line and the corrected prefix.
    fn normalise_prefixes(&mut self, text: &str) {
        let mut warnings = Vec::new();
        let mut fix = |table: &str, list: &mut Vec<IpNet>| {
            for p in list.iter_mut() {
                let t = p.trunc();
                if t != *p {
                    warnings.push(format!(
                        "{}`{table}.prefixes`: `{p}` has host bits set; taken as `{t}` \
                         (write that to silence this warning)",
                        line_hint(text, &format!("\"{p}\""))
                    ));
                    *p = t;
                }
            }
        };
        fix("organisation", &mut self.organisation.prefixes);
        if let Some(d) = &mut self.digest {
            for r in &mut d.routes {
                fix("digest.routes", &mut r.prefixes);
            }
        }
        self.warnings.extend(warnings);
    }

    /// Checks what serde cannot: mail addresses, URLs, SMTP security. (The sources check
    /// their own tables.)
    fn validate(&self, text: &str) -> Result<(), Invalid> {
        let at = |hint: String| move |problem: Problem| Invalid { at: hint, problem };
        self.store
            .validate()
            .map_err(|e| at(line_hint(text, "[store]"))(e.into()))?;
        let ripestat = self.scope.ripestat_url.as_str();
        if let Err(error) = check_url(ripestat, false) {
            return Err(at(table_line_hint(text, "scope", "ripestat_url"))(
                Problem::RipestatUrl {
                    url: ripestat.to_string(),
                    error,
                },
            ));
        }
        self.flows
            .validate()
            .map_err(|e| at(line_hint(text, "[flows"))(e.into()))?;
        if let Some(d) = &self.digest
            && mail_address(&d.from).is_err()
        {
            return Err(at(line_hint(text, "from"))(Problem::DigestFrom(
                d.from.clone(),
            )));
        }
        self.check_digest_audience(text)?;
        for (i, r) in self.suppress.iter().enumerate() {
            r.check()
                .map_err(|e| at(nth_table_hint(text, "[[suppress]]", i))(e.into()))?;
        }
        notify::validate(self, text)?;
        self.web
            .validate(&self.team_names())
            .map_err(|e| at(line_hint(text, "[[web.tokens]]"))(e.into()))?;
        self.check_addresses(text)?;
        if let Some(s) = &self.smtp
            && s.tls == SmtpTls::None
            && !crate::net::is_loopback(&s.host)
        {
            return Err(at(line_hint(text, "tls"))(Problem::PlainSmtp(
                s.host.clone(),
            )));
        }
        Ok(())
    }

    /// Every mail address of `[organisation]` and `[digest]` is one.
    fn check_addresses(&self, text: &str) -> Result<(), Invalid> {
        let mut addresses: Vec<(&'static str, &str)> = Vec::new();
        for e in &self.organisation.emails {
            addresses.push(("organisation.emails", e));
        }
        if let Some(d) = &self.digest {
            for r in &d.recipients {
                addresses.push(("digest.recipients", r));
            }
            for route in &d.routes {
                for r in &route.recipients {
                    addresses.push(("digest.routes.recipients", r));
                }
            }
        }
        for (key, value) in addresses {
            if let Err(why) = mail_address(value) {
                return Err(Invalid {
                    at: line_hint(text, &format!("\"{value}\"")),
                    problem: Problem::Address {
                        key,
                        value: value.to_string(),
                        why,
                    },
                });
            }
        }
        Ok(())
    }

    /// A `[digest]` goes to someone: `recipients` or a route names an address, and every
    /// `[[digest.routes]]` names one (`recipients = []` would build a digest nobody gets).
    fn check_digest_audience(&self, text: &str) -> Result<(), Invalid> {
        let Some(d) = &self.digest else {
            return Ok(());
        };
        if let Some(i) = d.routes.iter().position(|r| r.recipients.is_empty()) {
            let at = text
                .lines()
                .enumerate()
                .filter(|(_, l)| l.trim_start().starts_with("[[digest.routes]]"))
                .nth(i)
                .map(|(n, _)| format!("line {}: ", n + 1))
                .unwrap_or_default();
            let route = if d.routes[i].name.is_empty() {
                format!("#{}", i + 1)
            } else {
                format!("`{}`", d.routes[i].name)
            };
            return Err(Invalid {
                at,
                problem: Problem::RouteToNobody(route),
            });
        }
        if d.recipients.is_empty() && d.routes.is_empty() {
            return Err(Invalid {
                at: table_line_hint(text, "digest", "recipients"),
                problem: Problem::DigestToNobody,
            });
        }
        Ok(())
    }

    /// The store folder: `--data-dir` wins, then `[store] path`, then `./outwatch-data`.
    pub fn data_dir(&self, override_dir: Option<&Path>) -> PathBuf {
        if let Some(d) = override_dir {
            return d.to_path_buf();
        }
        match &self.store.path {
            Some(p) => self.resolve_path(p),
            None => PathBuf::from(DEFAULT_DATA_DIR),
        }
    }

    /// Resolves a path given in the config relative to the config file (`.` parts dropped).
    pub fn resolve_path(&self, p: &Path) -> PathBuf {
        if p.is_absolute() {
            return p.to_path_buf();
        }
        let out: PathBuf = self
            .base_dir
            .join(p)
            .components()
            .filter(|c| !matches!(c, std::path::Component::CurDir))
            .collect();
        if out.as_os_str().is_empty() {
            PathBuf::from(".")
        } else {
            out
        }
    }
}

/// Checks a mail address as written in the config: `local@domain` (the domain a real domain
/// name), optionally as `Display Name <local@domain>`. Returns the bare address.
pub fn mail_address(s: &str) -> Result<&str, MailAddressError> {
    let t = s.trim();
    let addr = match (t.rfind('<'), t.ends_with('>')) {
        (Some(i), true) => &t[i + 1..t.len() - 1],
        _ => t,
    };
    let (local, domain) = addr.rsplit_once('@').ok_or(MailAddressError::NoAt)?;
    if local.is_empty()
        || local
            .chars()
            .any(|c| c.is_whitespace() || c == '<' || c == '>')
    {
        return Err(MailAddressError::LocalPart);
    }
    domain
        .parse::<DomainName>()
        .map_err(|_| MailAddressError::Domain(domain.to_string()))?;
    Ok(addr)
}

/// Why text is no mail address ([`mail_address`]); said after the address.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MailAddressError {
    #[error("no `@`")]
    NoAt,
    #[error("the part before `@` is empty or holds spaces")]
    LocalPart,
    #[error("`{0}` is not a domain name")]
    Domain(String),
}

/// The closest of `names` to `name` (a typo's likely meaning), if any is close.
pub fn closest<'a>(name: &str, names: impl IntoIterator<Item = &'a str>) -> Vec<&'a str> {
    let mut scored: Vec<(usize, &str)> = names
        .into_iter()
        .map(|n| (edit_distance(name, n), n))
        .filter(|(d, n)| *d <= (n.len().max(name.len()) / 3).max(1) || n.contains(name))
        .collect();
    scored.sort();
    scored.into_iter().take(3).map(|(_, n)| n).collect()
}

/// Levenshtein distance with adjacent transpositions counted as one edit.
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            d[i][j] = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                d[i][j] = d[i][j].min(d[i - 2][j - 2] + 1);
            }
        }
    }
    d[a.len()][b.len()]
}

/// Checks one configured URL: `http` or `https`, and with `keyed`, `https` or a loopback host.
/// The error says why, without the URL.
pub fn check_url(url: &str, keyed: bool) -> Result<(), UrlError> {
    let u = reqwest::Url::parse(url).map_err(UrlError::NotAUrl)?;
    match u.scheme() {
        "https" => Ok(()),
        "http" if !keyed => Ok(()),
        "http" if u.host_str().is_some_and(crate::net::is_loopback) => Ok(()),
        "http" => Err(UrlError::KeyOverHttp),
        other => Err(UrlError::Scheme(other.to_string())),
    }
}

/// A configured URL that cannot be used ([`check_url`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    #[error("not a URL ({0})")]
    NotAUrl(<reqwest::Url as FromStr>::Err),
    #[error(
        "a key is sent there, so it must be https:// (plain http is allowed only to a loopback \
         host, or with `allow_plain_http = true` in the source's table)"
    )]
    KeyOverHttp,
    #[error("the scheme `{0}` is not supported (use https://)")]
    Scheme(String),
}

/// `line N: ` for `key` inside the table `[table]` (or a dotted `table.key` line), else the
/// table's header line, or nothing.
pub fn table_line_hint(text: &str, table: &str, key: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let is_key = |l: &str, k: &str| {
        l.trim_start()
            .strip_prefix(k)
            .is_some_and(|r| r.trim_start().starts_with('='))
    };
    let header = format!("[{table}]");
    if let Some(h) = lines.iter().position(|l| l.trim() == header) {
        let end = lines[h + 1..]
            .iter()
            .position(|l| l.trim_start().starts_with('['))
            .map_or(lines.len(), |i| h + 1 + i);
        let at = (h + 1..end).find(|&i| is_key(lines[i], key)).unwrap_or(h);
        return format!("line {}: ", at + 1);
    }
    let dotted = format!("{table}.{key}");
    lines
        .iter()
        .position(|l| is_key(l, &dotted))
        .map(|i| format!("line {}: ", i + 1))
        .unwrap_or_default()
}

/// `line N: ` for the header of the `n`th (from 0) array table `header` (`[[suppress]]`), or
/// nothing.
pub fn nth_table_hint(text: &str, header: &str, n: usize) -> String {
    text.lines()
        .enumerate()
        .filter(|(_, l)| l.trim_start().starts_with(header))
        .nth(n)
        .map(|(i, _)| format!("line {}: ", i + 1))
        .unwrap_or_default()
}

/// `line N: ` for the first line of `text` that contains `needle`, or nothing.
pub fn line_hint(text: &str, needle: &str) -> String {
    text.lines()
        .position(|l| l.contains(needle))
        .map(|i| format!("line {}: ", i + 1))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests;
