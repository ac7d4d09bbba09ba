//! Have I Been Pwned (issue #5). Placeholder: the config table is final.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::{FetchError, Source};
use crate::config::{Config, CronSchedule, HumanDuration};
use crate::secret::Secret;

/// `[sources.hibp]`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct HibpConfig {
    #[serde(default = "crate::sources::default_true")]
    pub enabled: bool,
    pub schedule: Option<CronSchedule>,
    /// API base (default `https://haveibeenpwned.com/api/v3`).
    pub base_url: Option<String>,
    pub api_key: Option<Secret>,
    pub api_key_env: Option<String>,
    pub resolve_after: Option<HumanDuration>,
}

pub fn build(_c: &HibpConfig, _cfg: &Config) -> Result<Arc<dyn Source>, FetchError> {
    Err(FetchError::Config(
        "the hibp source is not built yet".into(),
    ))
}
