//! `[sources.snds]`: the table, its defaults, and the source's registration.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::config::{Config, CronSchedule, HumanDuration};
use crate::secret::Secret;
use crate::sources::registry::{ConfiguredUrl, SourceKind};
use crate::sources::{FetchError, Source};

/// Default base; `data.aspx` and `ipStatus.aspx` are appended.
pub const DEFAULT_BASE_URL: &str = "https://sendersupport.olc.protection.outlook.com/snds";

/// `[sources.snds]`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SndsConfig {
    #[serde(default = "crate::sources::default_true")]
    pub enabled: bool,
    /// When the daemon runs it (default daily at 05:45).
    pub schedule: Option<CronSchedule>,
    /// Base (default `https://sendersupport.olc.protection.outlook.com/snds`).
    pub base_url: Option<String>,
    /// The automated-access key (or name it with `key_env`).
    pub key: Option<Secret>,
    pub key_env: Option<String>,
    /// How long a finding stays open once SNDS stops reporting it (default 3 days).
    pub resolve_after: Option<HumanDuration>,
    /// Allow `http://` URLs to a host that is not loopback (the key then travels in clear text).
    #[serde(default)]
    pub allow_plain_http: bool,
}

impl SourceKind for SndsConfig {
    const NAME: &'static str = "snds";
    const DEFAULT_SCHEDULE: &'static str = "0 45 5 * * *";
    fn default_resolve_after() -> chrono::Duration {
        chrono::Duration::days(3)
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
        self.key.iter().map(|_| "key").collect()
    }
    fn build(&self, cfg: &Config) -> Result<Arc<dyn Source>, FetchError> {
        super::build(self, cfg)
    }
}
