//! `[sources.cymru]`: the table, its defaults, and the source's registration.

use serde::{Deserialize, Serialize};

use crate::config::{CronSchedule, HumanDuration};
use crate::secret::Secret;
use crate::sources::registration::source_kind;

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

source_kind!(
    CymruConfig,
    id: Cymru,
    schedule: "0 50 6 * * *",
    resolve_after: chrono::Duration::days(3),
    urls: [url: true],
    secrets: [password],
);
