//! `[sources.safebrowsing]`: the table, its defaults, and the source's registration.

use serde::{Deserialize, Serialize};

use crate::config::{CronSchedule, HumanDuration};
use crate::secret::Secret;
use crate::sources::registration::source_kind;

/// Default API base.
pub const DEFAULT_BASE_URL: &str = "https://safebrowsing.googleapis.com";

/// `[sources.safebrowsing]`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SafeBrowsingConfig {
    #[serde(default = "crate::sources::default_true")]
    pub enabled: bool,
    /// When the daemon runs it (default hourly).
    pub schedule: Option<CronSchedule>,
    /// API base (default `https://safebrowsing.googleapis.com`).
    pub base_url: Option<String>,
    pub api_key: Option<Secret>,
    pub api_key_env: Option<String>,
    /// `v4` (threatMatches:find) or `v5` (urls:search).
    #[serde(default = "default_api")]
    pub api: String,
    /// Extra URLs to check besides our domains.
    #[serde(default)]
    pub urls: Vec<String>,
    /// URLs per request (default and maximum: 500 for v4, 50 for v5).
    pub batch_size: Option<usize>,
    /// Also check every URL on our domains or addresses that another source reported
    /// (URLhaus, ThreatFox, Shadowserver, ...) and that is still open (default true).
    #[serde(default = "crate::sources::default_true")]
    pub reported_urls: bool,
    /// At most this many reported URLs per run (default 2000): each is a lookup against the
    /// key's daily quota.
    pub max_reported_urls: Option<usize>,
    /// How long a match stays open once Google stops listing it (default 1 day).
    pub resolve_after: Option<HumanDuration>,
    /// Allow `http://` URLs to a host that is not loopback (the key then travels in clear text).
    #[serde(default)]
    pub allow_plain_http: bool,
}

fn default_api() -> String {
    "v4".into()
}

source_kind!(
    SafeBrowsingConfig,
    id: SafeBrowsing,
    schedule: "0 5 * * * *",
    resolve_after: chrono::Duration::days(1),
    urls: [base_url: true],
    secrets: [api_key],
);
