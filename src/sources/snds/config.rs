//! `[sources.snds]`: the table, its defaults, and the source's registration.

use serde::{Deserialize, Serialize};

use crate::config::{CronSchedule, HumanDuration};
use crate::secret::Secret;
use crate::sources::registration::source_kind;

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

source_kind!(
    SndsConfig,
    id: Snds,
    schedule: "0 45 5 * * *",
    resolve_after: chrono::Duration::days(3),
    urls: [base_url: true],
    secrets: [key],
);
