//! `[sources.shadowserver]`: the table, its defaults, and the source's registration.

use serde::{Deserialize, Serialize};

use crate::config::{CronSchedule, HumanDuration};
use crate::secret::{self, Secret};
use crate::sources::FetchError;
use crate::sources::registration::source_kind;

use super::api::ApiClient;
use super::schema;

/// Default Reports API base.
pub const DEFAULT_BASE_URL: &str = "https://transform.shadowserver.org/api2/";
/// Default download base.
pub const DEFAULT_DOWNLOAD_URL: &str = "https://dl.shadowserver.org/";

/// `[sources.shadowserver]`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ShadowserverConfig {
    #[serde(default = "crate::sources::default_true")]
    pub enabled: bool,
    /// When the daemon fetches [default: "0 20 */6 * * *", every six hours].
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
    /// Only the reports of these mailing lists (the listing's `report` field; all when empty).
    #[serde(default)]
    pub reports: Vec<String>,
    /// A finding not re-reported for this long becomes resolved [default: 7 days].
    pub resolve_after: Option<HumanDuration>,
    /// Where `outwatch shadowserver update-schema` downloads the schema from.
    pub schema_url: Option<String>,
    /// Allow `http://` URLs to a host that is not loopback (the key then travels in clear text).
    #[serde(default)]
    pub allow_plain_http: bool,
}

impl ShadowserverConfig {
    /// The API base URL in use.
    pub fn base_url(&self) -> &str {
        self.base_url.as_deref().unwrap_or(DEFAULT_BASE_URL)
    }
    /// The download base URL in use.
    pub fn download_url(&self) -> &str {
        self.download_url.as_deref().unwrap_or(DEFAULT_DOWNLOAD_URL)
    }
    /// The schema URL in use.
    pub fn schema_url(&self) -> &str {
        self.schema_url
            .as_deref()
            .unwrap_or(schema::DEFAULT_SCHEMA_URL)
    }

    /// Resolves key and secret (inline or from the environment).
    pub fn credentials(&self) -> Result<(Secret, Secret), FetchError> {
        let key = secret::resolve(
            &self.api_key,
            &self.api_key_env,
            "sources.shadowserver.api_key",
        )
        .map_err(|e| FetchError::config("", e))?;
        let sec = secret::resolve(
            &self.secret,
            &self.secret_env,
            "sources.shadowserver.secret",
        )
        .map_err(|e| FetchError::config("", e))?;
        match (key, sec) {
            (Some(k), Some(s)) => Ok((k, s)),
            _ => Err(FetchError::Config(
                "sources.shadowserver needs `api_key` (or `api_key_env`) and `secret` (or \
                 `secret_env`); request them at https://www.shadowserver.org/contact/"
                    .into(),
            )),
        }
    }

    /// A signed API client.
    pub fn client(&self, http: crate::http::HttpClient) -> Result<ApiClient, FetchError> {
        let (api_key, secret) = self.credentials()?;
        for (name, u) in [
            ("base_url", self.base_url()),
            ("download_url", self.download_url()),
        ] {
            reqwest::Url::parse(u).map_err(|e| {
                FetchError::config(format!("sources.shadowserver.{name} `{u}` is not a URL"), e)
            })?;
        }
        Ok(ApiClient {
            http,
            base_url: self.base_url().to_string(),
            download_url: self.download_url().to_string(),
            api_key,
            secret,
        })
    }
}

source_kind!(
    ShadowserverConfig,
    id: Shadowserver,
    schedule: "0 20 */6 * * *",
    resolve_after: chrono::Duration::days(7),
    urls: [base_url: true, download_url: true, schema_url: false],
    secrets: [api_key, secret],
);
