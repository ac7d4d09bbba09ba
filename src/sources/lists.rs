//! Declarative list feeds from `feeds/*.toml` (issue #4). Placeholder: the config table is final.

use serde::{Deserialize, Serialize};

#[allow(unused_imports)]
use super::{FetchError, Source};
use crate::config::{Config, CronSchedule, HumanDuration};
use crate::secret::Secret;

/// Names of the list feeds shipped with outwatch.
pub const BUILTIN: &[&str] = &[
    "feodotracker",
    "urlhaus",
    "threatfox",
    "sslbl",
    "spamhaus_drop",
    "spamhaus_asndrop",
];

/// `[sources.<list feed>]`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ListSourceConfig {
    #[serde(default = "crate::sources::default_true")]
    pub enabled: bool,
    pub schedule: Option<CronSchedule>,
    /// Replaces scheme, host and port of the feed's URLs, keeping their paths.
    pub base_url: Option<String>,
    /// Replaces the feed's URL whole.
    pub url: Option<String>,
    pub auth_key: Option<Secret>,
    pub auth_key_env: Option<String>,
    pub resolve_after: Option<HumanDuration>,
}

/// Every list feed name this config can use (built-in and from `[feeds] dir`).
pub fn known_feed_names(_cfg: &Config) -> Vec<String> {
    BUILTIN.iter().map(|s| s.to_string()).collect()
}

/// The enabled list feeds.
pub fn build_enabled(_cfg: &Config) -> Vec<super::BuiltSource> {
    Vec::new()
}
