//! `[sources.safebrowsing]`: the table, its defaults, and the source's registration.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::config::{Config, CronSchedule, HumanDuration};
use crate::secret::Secret;
use crate::sources::registry::{ConfiguredUrl, SourceKind};
use crate::sources::{FetchError, Source};

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

impl SourceKind for SafeBrowsingConfig {
    const NAME: &'static str = "safebrowsing";
    const DEFAULT_SCHEDULE: &'static str = "0 5 * * * *";
    fn default_resolve_after() -> chrono::Duration {
        chrono::Duration::days(1)
    }
    fn enabled(&self) -> bool {
        self.enabled
    }
    fn schedule(&self) -> Option<&CronSchedule> {
        self.schedule.as_ref()
    }
    fn resolve_after(&self) -> Option<HumanDuration> {
        self.resolve_after
    }
    fn urls(&self) -> Vec<ConfiguredUrl<'_>> {
        self.base_url
            .iter()
            .map(|u| ("base_url", u.as_str(), true))
            .collect()
    }
    fn allow_plain_http(&self) -> bool {
        self.allow_plain_http
    }
    fn inline_secrets(&self) -> Vec<&'static str> {
        self.api_key.iter().map(|_| "api_key").collect()
    }
    fn build(&self, cfg: &Config) -> Result<Arc<dyn Source>, FetchError> {
        super::build(self, cfg)
    }
}
