//! `[sources.cymru]`: the table, its defaults, and the source's registration.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::config::{Config, CronSchedule, HumanDuration};
use crate::secret::Secret;
use crate::sources::registry::{ConfiguredUrl, SourceKind};
use crate::sources::{FetchError, Source};

/// `[sources.cymru]`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CymruConfig {
    #[serde(default = "crate::sources::default_true")]
    pub enabled: bool,
    /// The daily file's URL; `{date}` is replaced by the day (`YYYYMMDD`).
    pub url: Option<String>,
    /// The CAP account's user name (HTTP basic auth).
    pub username: Option<String>,
    /// Its password, inline, or from the environment variable named by `password_env`.
    pub password: Option<Secret>,
    pub password_env: Option<String>,
    /// When the daemon runs it (default daily at 06:50 UTC).
    pub schedule: Option<CronSchedule>,
    /// How long a finding stays open once no file repeats it (default 3 days).
    pub resolve_after: Option<HumanDuration>,
    /// Allow `http://` to a host that is not loopback (the password then travels in clear text).
    #[serde(default)]
    pub allow_plain_http: bool,
}

impl SourceKind for CymruConfig {
    const NAME: &'static str = "cymru";
    const DEFAULT_SCHEDULE: &'static str = "0 50 6 * * *";
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
        self.url.iter().map(|u| ("url", u.as_str(), true)).collect()
    }
    fn allow_plain_http(&self) -> bool {
        self.allow_plain_http
    }
    fn inline_secrets(&self) -> Vec<&'static str> {
        self.password.iter().map(|_| "password").collect()
    }
    fn build(&self, cfg: &Config) -> Result<Arc<dyn Source>, FetchError> {
        super::build(self, cfg)
    }
}
