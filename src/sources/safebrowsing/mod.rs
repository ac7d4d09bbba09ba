//! Google Safe Browsing Lookup API: are our domains (and configured URLs) on Google's lists?
//!
//! Each domain of `[organisation] domains` is checked as `http://D/` and `https://D/`, plus every
//! URL in `urls`. Two protocols, chosen with `api`:
//! - `v4` (default): `POST /v4/threatMatches:find?key=K`, at most 500 `threatEntries` per call;
//!   the reply is `{"matches": [...]}`, or `{}` when nothing matched;
//! - `v5`: `GET /v5/urls:search?urls=U&urls=V&key=K`, at most 50 URLs per call; the reply is
//!   `{"threats": [...], "cacheDuration": "300s"}`. A threat may name an expression of the
//!   requested URL (a host suffix or path prefix), so results are mapped back by expression.
//!
//! `cacheDuration` is honoured through source state: a URL with a cached verdict is not queried
//! again until the verdict expires, and its cached matches are reported again meanwhile. v4
//! caches positive verdicts (the only ones with a duration); v5 caches every queried URL, as its
//! reference requires. The key travels in the query string: every message is scrubbed of it.
//!
//! The "Safe Browsing Alerts for Network Administrators" e-mails are read by [`alerts`].

pub mod alerts;
pub(crate) mod config;

pub use config::{DEFAULT_BASE_URL, SafeBrowsingConfig};

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use reqwest::Method;
use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderValue};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{FetchContext, FetchError, FetchOutput, Source, SourceKind, SourceTable};
use crate::config::{Config, CronSchedule};
use crate::finding::{Classification, Finding, Severity, SourceId, normalize_domain};
use crate::http::{self, Fetched, HttpError};
use crate::secret::Secret;

/// State key of the verdict cache.
pub const CACHE_STATE: &str = "safebrowsing/cache";
/// Most `threatEntries` per v4 `threatMatches:find`.
pub const V4_MAX_BATCH: usize = 500;
/// Most `urls` per v5 `urls:search`.
pub const V5_MAX_BATCH: usize = 50;
/// Threat types asked for in v4.
const V4_THREAT_TYPES: [&str; 4] = [
    "MALWARE",
    "SOCIAL_ENGINEERING",
    "UNWANTED_SOFTWARE",
    "POTENTIALLY_HARMFUL_APPLICATION",
];

/// Which Lookup API to speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Api {
    V4,
    V5,
}

impl Api {
    fn as_str(self) -> &'static str {
        match self {
            Api::V4 => "v4",
            Api::V5 => "v5",
        }
    }
}

impl SourceKind for SafeBrowsingConfig {
    /// Builds the source; the key is required and `api` must be `v4` or `v5`.
    fn build(&self, cfg: &Config) -> Result<Arc<dyn Source>, FetchError> {
        let key = super::required_secret(
            &self.api_key,
            &self.api_key_env,
            "sources.safebrowsing.api_key",
            "sources.safebrowsing needs `api_key` or `api_key_env` (a Google Cloud API key \
             with the Safe Browsing API enabled)",
        )?;
        let api = match self.api.trim().to_ascii_lowercase().as_str() {
            "v4" => Api::V4,
            "v5" => Api::V5,
            other => {
                return Err(FetchError::Config(format!(
                    "sources.safebrowsing.api is `{other}`; write \"v4\" or \"v5\""
                )));
            }
        };
        let max = match api {
            Api::V4 => V4_MAX_BATCH,
            Api::V5 => V5_MAX_BATCH,
        };
        let batch = self.batch_size.unwrap_or(max);
        if batch == 0 || batch > max {
            return Err(FetchError::Config(format!(
                "sources.safebrowsing.batch_size must be between 1 and {max} for {}",
                api.as_str()
            )));
        }
        let mut targets = Vec::new();
        for d in &cfg.organisation.domains {
            targets.push(format!("http://{}/", d.0));
            targets.push(format!("https://{}/", d.0));
        }
        for u in &self.urls {
            let p = reqwest::Url::parse(u.trim()).map_err(|e| {
                FetchError::Config(format!(
                    "sources.safebrowsing.urls: `{u}` is not a URL ({e})"
                ))
            })?;
            if !matches!(p.scheme(), "http" | "https") {
                return Err(FetchError::Config(format!(
                    "sources.safebrowsing.urls: `{u}` is not an http(s) URL"
                )));
            }
            targets.push(u.trim().to_string());
        }
        let mut seen = BTreeSet::new();
        targets.retain(|t| seen.insert(t.clone()));
        if targets.is_empty() && !self.reported_urls {
            return Err(FetchError::Config(
                "sources.safebrowsing has nothing to check: `organisation.domains` and \
                 `sources.safebrowsing.urls` are both empty"
                    .into(),
            ));
        }
        Ok(Arc::new(SafeBrowsingSource {
            base_url: self
                .base_url
                .clone()
                .unwrap_or_else(|| DEFAULT_BASE_URL.to_string()),
            key,
            api,
            batch,
            targets,
            reported: self
                .reported_urls
                .then(|| self.max_reported_urls.unwrap_or(2000)),
            schedule: self.run_schedule(),
            resolve_after: self.resolve_window(),
        }))
    }
}

/// The Safe Browsing lookup source.
pub struct SafeBrowsingSource {
    base_url: String,
    key: Secret,
    api: Api,
    batch: usize,
    targets: Vec<String>,
    /// Check URLs other sources reported, at most this many per run.
    reported: Option<usize>,
    schedule: CronSchedule,
    resolve_after: chrono::Duration,
}

impl std::fmt::Debug for SafeBrowsingSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SafeBrowsingSource")
            .field("base_url", &self.base_url)
            .field("api", &self.api)
            .field("targets", &self.targets.len())
            .finish()
    }
}

/// One match, as kept in the verdict cache and turned into a finding.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ThreatMatch {
    /// The URL (or v5 expression) Google listed.
    pub url: String,
    pub threat_type: String,
    #[serde(default)]
    pub platform_type: Option<String>,
    #[serde(default)]
    pub threat_entry_type: Option<String>,
    /// `threatEntryMetadata` entries (v4).
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
    #[serde(default)]
    pub cache_duration: Option<String>,
}

/// A cached verdict for one checked URL.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CacheEntry {
    pub expires: DateTime<Utc>,
    pub matches: Vec<ThreatMatch>,
}

/// The host of a URL: a domain or an IP address. Tolerates what `url` rejects, such as IPv6
/// literals written without brackets (`http://fdf1:cb9d::2:2222/path`, seen in alert mails).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Host {
    Domain(String),
    Ip(IpAddr),
}

/// Extracts the host of an http(s) URL.
pub fn url_host(u: &str) -> Option<Host> {
    let u = u.trim();
    if let Ok(p) = reqwest::Url::parse(u) {
        let h = p.host_str()?;
        let bare = h.trim_start_matches('[').trim_end_matches(']');
        if let Ok(ip) = bare.parse::<IpAddr>() {
            return Some(Host::Ip(ip));
        }
        let d = normalize_domain(bare);
        return (!d.is_empty()).then_some(Host::Domain(d));
    }
    // Fallback: authority between `://` and the first `/`, `?` or `#`.
    let rest = u.split_once("://").map(|(_, r)| r).unwrap_or(u);
    let auth = rest.split(['/', '?', '#']).next()?;
    let auth = auth.rsplit_once('@').map(|(_, h)| h).unwrap_or(auth);
    let auth = auth.trim_start_matches('[');
    let bare = auth.split(']').next().unwrap_or(auth);
    if let Ok(ip) = bare.parse::<IpAddr>() {
        return Some(Host::Ip(ip));
    }
    // `addr:port` with an unbracketed IPv6 address: drop the last group as a port.
    if let Some((h, port)) = bare.rsplit_once(':')
        && port.bytes().all(|b| b.is_ascii_digit())
        && !port.is_empty()
    {
        if let Ok(ip) = h.parse::<IpAddr>() {
            return Some(Host::Ip(ip));
        }
        if !h.contains(':') && h.contains('.') {
            return Some(Host::Domain(normalize_domain(h)));
        }
    }
    if !bare.contains(':') && bare.contains('.') {
        return Some(Host::Domain(normalize_domain(bare)));
    }
    None
}

/// Classification and severity of a Safe Browsing threat type (v4/v5 `ThreatType`).
pub fn classify(threat_type: &str) -> (Classification, Severity) {
    let id = format!(
        "safebrowsing-{}",
        threat_type.to_ascii_lowercase().replace('_', "-")
    );
    match threat_type {
        "MALWARE" => (
            Classification::new("malicious-code", "malware-distribution", &id),
            Severity::High,
        ),
        "SOCIAL_ENGINEERING" => (
            Classification::new("fraud", "phishing", &id),
            Severity::High,
        ),
        "UNWANTED_SOFTWARE" | "POTENTIALLY_HARMFUL_APPLICATION" => (
            Classification::new("malicious-code", "malware-distribution", &id),
            Severity::Medium,
        ),
        _ => (
            Classification::new("other", "undetermined", &id),
            Severity::Medium,
        ),
    }
}

/// The verdict cache kept in the store (an unreadable one is ignored, with a warning).
async fn load_cache(ctx: &FetchContext) -> BTreeMap<String, CacheEntry> {
    ctx.state
        .get_json(CACHE_STATE)
        .await
        .unwrap_or_else(|e| {
            tracing::warn!("safebrowsing verdict cache unreadable, ignoring it: {e}");
            None
        })
        .unwrap_or_default()
}

/// This run's matches by the URL checked; each URL's positive verdict is cached until the
/// shortest `cacheDuration` of its matches (without one, it is not cached).
fn cache_verdicts(
    fresh: Vec<(String, ThreatMatch)>,
    cache: &mut BTreeMap<String, CacheEntry>,
    now: DateTime<Utc>,
) -> BTreeMap<String, Vec<ThreatMatch>> {
    let mut by_url: BTreeMap<String, Vec<ThreatMatch>> = BTreeMap::new();
    for (checked, m) in fresh {
        by_url.entry(checked).or_default().push(m);
    }
    for (checked, ms) in &by_url {
        let d = ms
            .iter()
            .filter_map(|m| m.cache_duration.as_deref().and_then(parse_duration))
            .min();
        match d {
            Some(d) => {
                cache.insert(
                    checked.clone(),
                    CacheEntry {
                        expires: now + d,
                        matches: ms.clone(),
                    },
                );
            }
            None => {
                cache.remove(checked);
            }
        }
    }
    by_url
}

/// Parses a protobuf `Duration` string (`"300s"`, `"300.000s"`).
pub fn parse_duration(s: &str) -> Option<chrono::Duration> {
    let secs: f64 = s.trim().strip_suffix('s')?.parse().ok()?;
    if !secs.is_finite() || secs < 0.0 {
        return None;
    }
    Some(chrono::Duration::milliseconds((secs * 1000.0) as i64))
}

/// The finding of one match.
pub fn match_finding(m: &ThreatMatch, api: &str, checked: &str) -> Finding {
    let (class, sev) = classify(&m.threat_type);
    let mut f = Finding::new(SourceId::SafeBrowsing.name(), "lookup", class, sev);
    f.url = Some(m.url.clone());
    match url_host(&m.url) {
        Some(Host::Domain(d)) => f.domain = Some(d),
        Some(Host::Ip(ip)) => f.ip = Some(ip),
        None => {}
    }
    if let Some(p) = &m.platform_type {
        f.identity.push(p.clone());
        f.set_extra("platform_type", p.as_str());
    }
    f.set_extra("threat_type", m.threat_type.as_str());
    if let Some(t) = &m.threat_entry_type {
        f.set_extra("threat_entry_type", t.as_str());
    }
    if !m.metadata.is_empty() {
        f.set_extra(
            "threat_metadata",
            serde_json::to_value(&m.metadata).unwrap_or_default(),
        );
    }
    if let Some(c) = &m.cache_duration {
        f.set_extra("cache_duration", c.as_str());
    }
    f.set_extra("api", api);
    if checked != m.url {
        f.set_extra("checked_url", checked);
    }
    f.raw = Some(format!("safebrowsing {api} lookup of {checked}"));
    f
}

// ---- wire formats ----

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct V4Response {
    #[serde(default)]
    matches: Vec<V4Match>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct V4Match {
    threat_type: String,
    #[serde(default)]
    platform_type: Option<String>,
    #[serde(default)]
    threat_entry_type: Option<String>,
    threat: V4Entry,
    #[serde(default)]
    threat_entry_metadata: Option<V4Metadata>,
    #[serde(default)]
    cache_duration: Option<String>,
}

#[derive(Debug, Deserialize)]
struct V4Entry {
    #[serde(default)]
    url: Option<String>,
}

#[derive(Debug, Deserialize)]
struct V4Metadata {
    #[serde(default)]
    entries: Vec<V4MetaEntry>,
}

#[derive(Debug, Deserialize)]
struct V4MetaEntry {
    #[serde(default)]
    key: String,
    #[serde(default)]
    value: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct V5Response {
    #[serde(default)]
    threats: Vec<V5Threat>,
    #[serde(default)]
    cache_duration: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct V5Threat {
    url: String,
    #[serde(default)]
    threat_types: Vec<String>,
}

/// Metadata keys/values are plain in lookup replies but base64 per the reference; decode when
/// the text is valid base64 of printable ASCII.
fn maybe_b64(s: &str) -> String {
    use base64::Engine;
    if s.len() >= 4
        && s.len().is_multiple_of(4)
        && let Ok(b) = base64::engine::general_purpose::STANDARD.decode(s)
        && !b.is_empty()
        && b.iter().all(|c| c.is_ascii_graphic() || *c == b' ')
        && !s.chars().all(|c| c.is_ascii_lowercase() || c == '_')
    {
        return String::from_utf8_lossy(&b).into_owned();
    }
    s.to_string()
}

/// Rejects `{"error": ...}` bodies and bodies that are not JSON objects.
fn check_body(body: &[u8], secrets: &[&Secret]) -> Result<serde_json::Value, FetchError> {
    let v: serde_json::Value = serde_json::from_slice(body)
        .map_err(|e| FetchError::Format(format!("the Safe Browsing reply is not JSON ({e})")))?;
    if !v.is_object() {
        return Err(FetchError::Format(
            "the Safe Browsing reply is not a JSON object".into(),
        ));
    }
    if let Some(err) = v.get("error") {
        // Scrubbed before it is clipped: a key cut by the clip would not be found.
        let text: String = http::scrub(&err.to_string(), secrets)
            .chars()
            .take(300)
            .collect();
        return Err(FetchError::Format(format!(
            "Safe Browsing answered with an error: {text}"
        )));
    }
    Ok(v)
}

/// Whether a v5 threat expression (host suffix / path prefix) covers `checked`.
fn expression_covers(expr: &str, checked: &str) -> bool {
    if expr == checked {
        return true;
    }
    let (Ok(e), Ok(c)) = (reqwest::Url::parse(expr), reqwest::Url::parse(checked)) else {
        return false;
    };
    let (Some(eh), Some(ch)) = (e.host_str(), c.host_str()) else {
        return false;
    };
    let host_ok = ch == eh || ch.ends_with(&format!(".{eh}"));
    host_ok && c.path().starts_with(e.path())
}

impl SafeBrowsingSource {
    fn url(&self, path: &str, params: &[(&str, &str)]) -> Result<String, FetchError> {
        let mut u = reqwest::Url::parse(&http::join(&self.base_url, path)).map_err(|e| {
            FetchError::Config(format!(
                "sources.safebrowsing.base_url `{}` is not a URL ({e})",
                self.base_url
            ))
        })?;
        {
            let mut q = u.query_pairs_mut();
            for (k, v) in params {
                q.append_pair(k, v);
            }
            q.append_pair("key", self.key.expose());
        }
        Ok(u.to_string())
    }

    async fn call(
        &self,
        ctx: &FetchContext,
        method: Method,
        url: &str,
        body: Option<Vec<u8>>,
    ) -> Result<serde_json::Value, FetchError> {
        // `Secret::scrub` removes the raw key and its URL-encoded forms.
        let secrets = [&self.key];
        let mut headers = HeaderMap::new();
        if body.is_some() {
            headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        }
        let r = ctx.http.send(method, url, headers, body, &secrets).await;
        match r {
            Ok(Fetched::Body { body, .. }) => {
                if http::looks_like_html(&body) {
                    return Err(FetchError::Http(HttpError::Html {
                        url: http::scrub(url, &secrets),
                    }));
                }
                check_body(&body, &secrets)
            }
            Ok(Fetched::NotModified) => Err(FetchError::Format(
                "Safe Browsing answered 304 Not Modified to a lookup".into(),
            )),
            Err(HttpError::Status {
                status: s @ (401 | 403),
                detail,
                ..
            }) => Err(FetchError::Auth(format!(
                "Google rejected the Safe Browsing request ({s}){detail}: check \
                 sources.safebrowsing.api_key and that the Safe Browsing API is enabled for \
                 the key's project"
            ))),
            Err(HttpError::Status {
                status: 400,
                detail,
                ..
            }) => Err(FetchError::Format(format!(
                "Safe Browsing rejected the request as invalid (400){detail}"
            ))),
            Err(e) => Err(FetchError::Http(e)),
        }
    }

    /// v4: matches per checked URL, and per URL how long to cache.
    async fn lookup_v4(
        &self,
        ctx: &FetchContext,
        urls: &[String],
    ) -> Result<Vec<(String, ThreatMatch)>, FetchError> {
        let body = json!({
            "client": {"clientId": "outwatch", "clientVersion": env!("CARGO_PKG_VERSION")},
            "threatInfo": {
                "threatTypes": V4_THREAT_TYPES,
                "platformTypes": ["ANY_PLATFORM"],
                "threatEntryTypes": ["URL"],
                "threatEntries": urls.iter().map(|u| json!({"url": u})).collect::<Vec<_>>(),
            }
        });
        let url = self.url("v4/threatMatches:find", &[])?;
        let v = self
            .call(
                ctx,
                Method::POST,
                &url,
                Some(serde_json::to_vec(&body).expect("json")),
            )
            .await?;
        let resp: V4Response = serde_json::from_value(v).map_err(|e| {
            FetchError::Format(format!("unexpected threatMatches:find reply ({e})"))
        })?;
        let mut out = Vec::new();
        for m in resp.matches {
            let Some(u) = m.threat.url else { continue };
            let checked = urls
                .iter()
                .find(|c| **c == u)
                .cloned()
                .unwrap_or_else(|| u.clone());
            let metadata = m
                .threat_entry_metadata
                .map(|md| {
                    md.entries
                        .into_iter()
                        .map(|e| (maybe_b64(&e.key), maybe_b64(&e.value)))
                        .collect()
                })
                .unwrap_or_default();
            out.push((
                checked,
                ThreatMatch {
                    url: u,
                    threat_type: m.threat_type,
                    platform_type: m.platform_type,
                    threat_entry_type: m.threat_entry_type,
                    metadata,
                    cache_duration: m.cache_duration,
                },
            ));
        }
        Ok(out)
    }

    /// v5: matches per checked URL, and the reply's cache duration.
    async fn lookup_v5(
        &self,
        ctx: &FetchContext,
        urls: &[String],
    ) -> Result<(Vec<(String, ThreatMatch)>, Option<String>), FetchError> {
        let params: Vec<(&str, &str)> = urls.iter().map(|u| ("urls", u.as_str())).collect();
        let url = self.url("v5/urls:search", &params)?;
        let v = self.call(ctx, Method::GET, &url, None).await?;
        let resp: V5Response = serde_json::from_value(v)
            .map_err(|e| FetchError::Format(format!("unexpected urls:search reply ({e})")))?;
        let mut out = Vec::new();
        for t in resp.threats {
            let covered: Vec<&String> = urls
                .iter()
                .filter(|c| expression_covers(&t.url, c))
                .collect();
            for tt in &t.threat_types {
                let m = ThreatMatch {
                    url: t.url.clone(),
                    threat_type: tt.clone(),
                    platform_type: None,
                    threat_entry_type: None,
                    metadata: BTreeMap::new(),
                    cache_duration: resp.cache_duration.clone(),
                };
                if covered.is_empty() {
                    out.push((t.url.clone(), m));
                } else {
                    for c in &covered {
                        out.push(((*c).clone(), m.clone()));
                    }
                }
            }
        }
        Ok((out, resp.cache_duration))
    }
}

impl SafeBrowsingSource {
    /// The URLs of a run: our home pages and configured URLs, then the URLs other sources
    /// reported on our domains and addresses; and, for a reported URL whose host is no name
    /// of ours, our address it was reported on (its finding is about that address).
    async fn targets(
        &self,
        ctx: &FetchContext,
    ) -> Result<(Vec<String>, BTreeMap<String, std::net::IpAddr>), FetchError> {
        let mut targets = self.targets.clone();
        let mut hosted_at = BTreeMap::new();
        if let Some(max) = self.reported {
            let mut seen: BTreeSet<String> = targets.iter().cloned().collect();
            let reported = ctx
                .state
                .reported_urls(SourceId::SafeBrowsing.name(), ctx.scope.clone(), max)
                .await?;
            for r in reported {
                if let Some(ip) = r.ip {
                    hosted_at.insert(r.url.clone(), ip);
                }
                if seen.insert(r.url.clone()) {
                    targets.push(r.url);
                }
            }
        }
        Ok((targets, hosted_at))
    }
}

#[async_trait]
impl Source for SafeBrowsingSource {
    fn name(&self) -> &str {
        SourceId::SafeBrowsing.name()
    }
    fn secrets(&self) -> Vec<&Secret> {
        vec![&self.key]
    }
    fn schedule(&self) -> CronSchedule {
        self.schedule.clone()
    }
    fn resolve_after(&self) -> chrono::Duration {
        self.resolve_after
    }

    async fn fetch(&self, ctx: &FetchContext) -> Result<FetchOutput, FetchError> {
        let now = ctx.now;
        let mut cache = load_cache(ctx).await;
        let (targets, hosted_at) = self.targets(ctx).await?;
        if targets.is_empty() {
            return Ok(FetchOutput {
                complete: true,
                ..Default::default()
            });
        }
        cache.retain(|u, e| e.expires > now && targets.contains(u));
        let to_query: Vec<String> = targets
            .iter()
            .filter(|t| !cache.contains_key(*t))
            .cloned()
            .collect();
        let mut fresh: Vec<(String, ThreatMatch)> = Vec::new();
        let mut failed = Vec::new();
        // Each batch is a unit: one that fails is named and the others go on; a refused key
        // fails them all, so it ends the fetch.
        for (i, chunk) in to_query.chunks(self.batch).enumerate() {
            let unit = || {
                format!(
                    "batch {} ({} URL(s) from {})",
                    i + 1,
                    chunk.len(),
                    chunk.first().map(String::as_str).unwrap_or("-")
                )
            };
            match self.api {
                Api::V4 => match self.lookup_v4(ctx, chunk).await {
                    Ok(m) => fresh.extend(m),
                    Err(e @ FetchError::Auth(_)) => return Err(e),
                    Err(e) => failed.push((unit(), e)),
                },
                Api::V5 => {
                    let (m, dur) = match self.lookup_v5(ctx, chunk).await {
                        Ok(r) => r,
                        Err(e @ FetchError::Auth(_)) => return Err(e),
                        Err(e) => {
                            failed.push((unit(), e));
                            continue;
                        }
                    };
                    // v5: every queried URL is cached for the reply's duration.
                    if let Some(d) = dur.as_deref().and_then(parse_duration) {
                        for u in chunk {
                            cache.insert(
                                u.clone(),
                                CacheEntry {
                                    expires: now + d,
                                    matches: Vec::new(),
                                },
                            );
                        }
                    }
                    fresh.extend(m);
                }
            }
        }
        let by_url = cache_verdicts(fresh, &mut cache, now);
        let mut out = FetchOutput {
            complete: true,
            fetched: targets.len(),
            ..Default::default()
        };
        for (unit, e) in &failed {
            out.fail_unit(unit.clone(), e);
        }
        let api = self.api.as_str();
        let mut emit = |checked: &str, m: &ThreatMatch, cached: bool| {
            let mut f = match_finding(m, api, checked);
            if f.ip.is_none()
                && let Some(ip) = hosted_at.get(checked)
            {
                f.ip = Some(*ip);
            }
            if cached {
                f.set_extra("from_cache", true);
            }
            crate::scope::mark_scope(&mut f, &ctx.scope);
            out.findings.push(f);
        };
        for (checked, ms) in &by_url {
            for m in ms {
                emit(checked, m, false);
            }
        }
        for (checked, e) in &cache {
            if to_query.contains(checked) {
                continue;
            }
            for m in &e.matches {
                emit(checked, m, true);
            }
        }
        let bytes = serde_json::to_vec(&cache)
            .map_err(|e| FetchError::data("cannot encode the verdict cache", e))?;
        out.state.push((CACHE_STATE.to_string(), Some(bytes)));
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts() {
        assert_eq!(
            url_host("http://Nacions.com/wordpress/"),
            Some(Host::Domain("nacions.com".into()))
        );
        assert_eq!(
            url_host("http://10.0.2.26:2222/CMD_FILE_MANAGER/x"),
            Some(Host::Ip("10.0.2.26".parse().unwrap()))
        );
        assert_eq!(
            url_host("http://fdf1:cb9d:f59e:19b0:f3:22:0:2:2222/CMD_FILE_MANAGER/x"),
            Some(Host::Ip("fdf1:cb9d:f59e:19b0:f3:22:0:2".parse().unwrap()))
        );
        assert_eq!(
            url_host("http://[2001:db8::1]:8080/x"),
            Some(Host::Ip("2001:db8::1".parse().unwrap()))
        );
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("300s"), Some(chrono::Duration::seconds(300)));
        assert_eq!(
            parse_duration("300.000s"),
            Some(chrono::Duration::seconds(300))
        );
        assert_eq!(parse_duration("300"), None);
    }

    #[test]
    fn expressions() {
        assert!(expression_covers(
            "https://example.org/",
            "https://www.example.org/login"
        ));
        assert!(!expression_covers(
            "https://example.org/a/",
            "https://example.org/b"
        ));
    }

    #[test]
    fn metadata_b64() {
        assert_eq!(
            maybe_b64("bWFsd2FyZV90aHJlYXRfdHlwZQ=="),
            "malware_threat_type"
        );
        assert_eq!(maybe_b64("malware_threat_type"), "malware_threat_type");
        assert_eq!(maybe_b64("landing"), "landing");
    }
}
