//! Shadowserver Reports API (issue #3). Placeholder: the config table is final, the fetcher lands
//! with its issue.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::{FetchError, Source};
use crate::config::{Config, CronSchedule, HumanDuration};
use crate::secret::Secret;

/// `[sources.shadowserver]`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ShadowserverConfig {
    #[serde(default = "crate::sources::default_true")]
    pub enabled: bool,
    pub schedule: Option<CronSchedule>,
    /// Reports API base; methods are appended (`{base_url}reports/list`).
    pub base_url: Option<String>,
    /// Download base; the report id is appended.
    pub download_url: Option<String>,
    pub api_key: Option<Secret>,
    pub api_key_env: Option<String>,
    pub secret: Option<Secret>,
    pub secret_env: Option<String>,
    /// Only these report types (all when empty).
    #[serde(default)]
    pub types: Vec<String>,
    pub resolve_after: Option<HumanDuration>,
}

pub fn build(_c: &ShadowserverConfig, _cfg: &Config) -> Result<Arc<dyn Source>, FetchError> {
    Err(FetchError::Config(
        "the shadowserver source is not built yet".into(),
    ))
}
