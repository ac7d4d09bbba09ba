//! Microsoft SNDS (issue #5). Placeholder: the config table is final.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::{FetchError, Source};
use crate::config::{Config, CronSchedule, HumanDuration};
use crate::secret::Secret;

/// `[sources.snds]`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SndsConfig {
    #[serde(default = "crate::sources::default_true")]
    pub enabled: bool,
    pub schedule: Option<CronSchedule>,
    /// Base (default `https://sendersupport.olc.protection.outlook.com/snds`).
    pub base_url: Option<String>,
    pub key: Option<Secret>,
    pub key_env: Option<String>,
    pub resolve_after: Option<HumanDuration>,
}

pub fn build(_c: &SndsConfig, _cfg: &Config) -> Result<Arc<dyn Source>, FetchError> {
    Err(FetchError::Config(
        "the snds source is not built yet".into(),
    ))
}
