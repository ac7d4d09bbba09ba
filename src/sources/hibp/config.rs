//! `[sources.hibp]`: the table, its defaults, and the source's registration.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::config::{Config, CronSchedule, HumanDuration};
use crate::secret::Secret;
use crate::sources::registry::{ConfiguredUrl, SourceKind};
use crate::sources::{FetchError, Source};

/// Default API base.
pub const DEFAULT_BASE_URL: &str = "https://haveibeenpwned.com/api/v3";

/// `[sources.hibp]`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct HibpConfig {
    #[serde(default = "crate::sources::default_true")]
    pub enabled: bool,
    /// When the daemon runs it (default daily at 06:15).
    pub schedule: Option<CronSchedule>,
    /// API base (default `https://haveibeenpwned.com/api/v3`).
    pub base_url: Option<String>,
    /// The `hibp-api-key` (or name it with `api_key_env`).
    pub api_key: Option<Secret>,
    pub api_key_env: Option<String>,
    /// How long a pair stays open once the domain search stops listing it (default 2 days).
    pub resolve_after: Option<HumanDuration>,
    /// Allow `http://` URLs to a host that is not loopback (the key then travels in clear text).
    #[serde(default)]
    pub allow_plain_http: bool,
    /// The domains to search. Default: the domains verified on the account
    /// (`GET /subscribeddomains`), intersected with `[organisation] domains` when those are set.
    pub domains: Option<Vec<String>>,
}

impl SourceKind for HibpConfig {
    const NAME: &'static str = "hibp";
    const DEFAULT_SCHEDULE: &'static str = "0 15 6 * * *";
    fn default_resolve_after() -> chrono::Duration {
        chrono::Duration::days(2)
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
