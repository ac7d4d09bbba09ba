//! Google Safe Browsing (issue #5). Placeholder: the config table is final.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::{FetchError, Source};
use crate::config::{Config, CronSchedule, HumanDuration};
use crate::secret::Secret;

/// `[sources.safebrowsing]`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SafeBrowsingConfig {
    #[serde(default = "crate::sources::default_true")]
    pub enabled: bool,
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
    pub resolve_after: Option<HumanDuration>,
}

fn default_api() -> String {
    "v4".into()
}

pub fn build(_c: &SafeBrowsingConfig, _cfg: &Config) -> Result<Arc<dyn Source>, FetchError> {
    Err(FetchError::Config(
        "the safebrowsing source is not built yet".into(),
    ))
}
