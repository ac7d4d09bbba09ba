//! `[sources.hibp]`: the table, its defaults, and the source's registration.

use serde::{Deserialize, Serialize};

use crate::config::{CronSchedule, HumanDuration};
use crate::secret::Secret;
use crate::sources::registration::source_kind;

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

source_kind!(
    HibpConfig,
    id: Hibp,
    schedule: "0 15 6 * * *",
    resolve_after: chrono::Duration::days(2),
    urls: [base_url: true],
    secrets: [api_key],
);
