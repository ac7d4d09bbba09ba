//! Have I Been Pwned API v3: breached addresses on our domains.
//!
//! One run:
//! 1. `GET /subscription/status` (keyed) tells the key's requests per minute (`Rpm`); keyed
//!    requests are then spaced `60 / Rpm` seconds apart on the injected clock;
//! 2. `GET /breaches` (no key) refreshes the breach metadata cached in source state (at most daily,
//!    or when a domain search names a breach the cache does not know);
//! 3. `GET /breacheddomain/{domain}` (keyed) for each `[organisation] domains` entry. The body maps
//!    each alias (local part) to the breach names it appears in; a 404 means "no breached
//!    addresses" (not an error). Addresses of `[organisation] emails` on other domains are
//!    looked up with `GET /breachedaccount/{account}` (404 = not pwned).
//!
//! Every (alias@domain, breach) pair is one finding: `email` = the address, `domain` = our domain,
//! identity = the breach name (so a new breach for an address, or a new address in a breach, is
//! new). `429` is waited out as `retry-after` says (the rule of every request:
//! `crate::http::RetryPolicy`).
//!
//! Severity: a sensitive breach, or one whose data classes include passwords, is `high`; a
//! breach that is only a spam list is `low`; any other breach is `medium`.
//!
//! The notification e-mails HIBP sends to domain owners are read by [`notification`].

pub(crate) mod config;
pub mod notification;

pub use config::{DEFAULT_BASE_URL, HibpConfig};

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use reqwest::Method;
use reqwest::header::{ACCEPT, HeaderMap, HeaderName, HeaderValue};
use serde::{Deserialize, Serialize};

use super::{FetchContext, FetchError, FetchOutput, RowError, Source, SourceKind, SourceTable};
use crate::config::{Config, CronSchedule};
use crate::finding::{Classification, Finding, Severity, SourceId};
use crate::http::{self, Fetched, HttpError};
use crate::secret::Secret;

/// State key of the cached breach metadata.
pub const BREACHES_STATE: &str = "hibp/breaches";
/// How long the cached breach list is trusted before `/breaches` is read again.
const BREACH_CACHE_TTL_HOURS: i64 = 24;
/// Requests per minute assumed when `/subscription/status` cannot tell (the smallest plan).
const DEFAULT_RPM: u32 = 10;

/// Which domains a run searches.
#[derive(Debug, Clone)]
enum Domains {
    /// `[sources.hibp] domains`: exactly these.
    Listed(Vec<String>),
    /// The account's verified domains (`/subscribeddomains`), limited to these organisation
    /// domains when there are any.
    Verified(Vec<String>),
}

impl SourceKind for HibpConfig {
    /// Builds the source; the key and at least one domain are required.
    fn build(&self, cfg: &Config) -> Result<Arc<dyn Source>, FetchError> {
        let key = super::required_secret(
            &self.api_key,
            &self.api_key_env,
            "sources.hibp.api_key",
            "sources.hibp needs `api_key` or `api_key_env` (a paid HIBP API key)",
        )?;
        let org: Vec<String> = cfg
            .organisation
            .domains
            .iter()
            .map(|d| d.0.trim().trim_end_matches('.').to_ascii_lowercase())
            .collect();
        let listed: Option<Vec<String>> = self.domains.as_ref().map(|l| {
            l.iter()
                .map(|d| d.trim().trim_end_matches('.').to_ascii_lowercase())
                .filter(|d| !d.is_empty())
                .collect()
        });
        // Addresses are covered by the domains that may be searched.
        let domains: Vec<String> = listed.clone().unwrap_or_else(|| org.clone());
        // Single addresses outside the searched domains are looked up one by one.
        let mut accounts: Vec<String> = Vec::new();
        for e in &cfg.organisation.emails {
            let e = e.trim().to_ascii_lowercase();
            let covered = e
                .rsplit_once('@')
                .is_some_and(|(_, d)| domains.iter().any(|x| x == d));
            if !e.is_empty() && !covered && !accounts.contains(&e) {
                accounts.push(e);
            }
        }
        if listed.as_ref().is_some_and(|l| l.is_empty()) && accounts.is_empty() {
            return Err(FetchError::Config(
                "sources.hibp.domains is empty and `organisation.emails` names no address".into(),
            ));
        }
        let domains = match listed {
            Some(l) => Domains::Listed(l),
            None => Domains::Verified(org),
        };
        Ok(Arc::new(HibpSource {
            base_url: self
                .base_url
                .clone()
                .unwrap_or_else(|| DEFAULT_BASE_URL.to_string()),
            key,
            domains,
            accounts,
            schedule: self.run_schedule(),
            resolve_after: self.resolve_window(),
        }))
    }
}

/// The HIBP domain-search source.
pub struct HibpSource {
    base_url: String,
    key: Secret,
    domains: Domains,
    /// `organisation.emails` not on a searched domain (`/breachedaccount/{account}`).
    accounts: Vec<String>,
    schedule: CronSchedule,
    resolve_after: chrono::Duration,
}

impl std::fmt::Debug for HibpSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HibpSource")
            .field("base_url", &self.base_url)
            .field("domains", &self.domains)
            .finish()
    }
}

/// One breach as `/breaches` and `/breach/{name}` describe it. Every field but `Name` is
/// optional: HIBP adds attributes without versioning the API.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Breach {
    pub name: String,
    #[serde(default)]
    pub title: Option<String>,
    #[serde(default)]
    pub domain: Option<String>,
    #[serde(default)]
    pub breach_date: Option<String>,
    #[serde(default)]
    pub added_date: Option<String>,
    #[serde(default)]
    pub modified_date: Option<String>,
    #[serde(default)]
    pub pwn_count: Option<u64>,
    #[serde(default)]
    pub data_classes: Vec<String>,
    #[serde(default)]
    pub is_verified: Option<bool>,
    #[serde(default)]
    pub is_fabricated: Option<bool>,
    #[serde(default)]
    pub is_sensitive: Option<bool>,
    #[serde(default)]
    pub is_retired: Option<bool>,
    #[serde(default)]
    pub is_spam_list: Option<bool>,
    #[serde(default)]
    pub is_malware: Option<bool>,
    #[serde(default)]
    pub is_stealer_log: Option<bool>,
}

/// The cached breach list.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct BreachCache {
    pub fetched_at: Option<DateTime<Utc>>,
    pub breaches: BTreeMap<String, Breach>,
}

/// `/subscription/status` (only what we use).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct SubscriptionStatus {
    #[serde(default)]
    rpm: Option<u32>,
    #[serde(default)]
    subscription_name: Option<String>,
}

/// The classification every HIBP finding carries.
pub fn classification() -> Classification {
    Classification::new("information-content-security", "data-leak", "hibp-breach")
}

/// Severity of a breach from its flags and data classes (see the module docs).
pub fn severity(data_classes: &[String], sensitive: bool, spam_list: bool) -> Severity {
    let passwords = data_classes.iter().any(|c| {
        let c = c.trim().to_ascii_lowercase();
        c == "passwords" || c.ends_with(" passwords") || c == "password"
    });
    if sensitive || passwords {
        Severity::High
    } else if spam_list {
        Severity::Low
    } else {
        Severity::Medium
    }
}

/// Parses HIBP's `AddedDate`/`ModifiedDate` (`2013-12-04T00:00:00Z`, `2013-12-04T00:00Z`, or a
/// naive `2025-03-07T12:30:38`) as UTC.
pub fn parse_hibp_time(s: &str) -> Option<DateTime<Utc>> {
    let s = s.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc));
    }
    let naive = s.trim_end_matches('Z');
    for f in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%dT%H:%M"] {
        if let Ok(t) = NaiveDateTime::parse_from_str(naive, f) {
            return Some(t.and_utc());
        }
    }
    NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc())
}

/// Builds the finding of one (alias@domain, breach) pair.
pub fn pair_finding(domain: &str, alias: &str, breach: &str, meta: Option<&Breach>) -> Finding {
    account_finding("breacheddomain", domain, alias, breach, meta)
}

fn account_finding(
    feed: &str,
    domain: &str,
    alias: &str,
    breach: &str,
    meta: Option<&Breach>,
) -> Finding {
    let email = format!("{}@{}", alias.trim().to_ascii_lowercase(), domain);
    let (classes, sensitive, spam) = meta
        .map(|m| {
            (
                m.data_classes.clone(),
                m.is_sensitive.unwrap_or(false),
                m.is_spam_list.unwrap_or(false),
            )
        })
        .unwrap_or_default();
    let mut f = Finding::new(
        SourceId::Hibp.name(),
        feed,
        classification(),
        severity(&classes, sensitive, spam),
    );
    f.email = Some(email.clone());
    f.domain = Some(domain.to_string());
    f.identity = vec![breach.to_string()];
    f.set_extra("email", email.as_str());
    f.set_extra("breach", breach);
    if let Some(m) = meta {
        set_breach_extra(&mut f, m);
        f.time_source = m.added_date.as_deref().and_then(parse_hibp_time);
    }
    f.raw = Some(if feed == "breacheddomain" {
        format!("breacheddomain/{domain} alias {alias}")
    } else {
        format!("{feed}/{email}")
    });
    f
}

/// Copies a breach's metadata into `extra`.
pub fn set_breach_extra(f: &mut Finding, m: &Breach) {
    if let Some(t) = &m.title {
        f.set_extra("title", t.as_str());
    }
    if let Some(d) = m.domain.as_deref().filter(|d| !d.is_empty()) {
        f.set_extra("breach_domain", d);
    }
    if let Some(d) = &m.breach_date {
        f.set_extra("breach_date", d.as_str());
    }
    if let Some(d) = &m.added_date {
        f.set_extra("added_date", d.as_str());
    }
    if let Some(d) = &m.modified_date {
        f.set_extra("modified_date", d.as_str());
    }
    if let Some(n) = m.pwn_count {
        f.set_extra("pwn_count", n);
    }
    f.set_extra("data_classes", m.data_classes.clone());
    for (k, v) in [
        ("is_verified", m.is_verified),
        ("is_fabricated", m.is_fabricated),
        ("is_sensitive", m.is_sensitive),
        ("is_spam_list", m.is_spam_list),
        ("is_malware", m.is_malware),
        ("is_stealer_log", m.is_stealer_log),
        ("is_retired", m.is_retired),
    ] {
        if let Some(v) = v {
            f.set_extra(k, v);
        }
    }
}

/// Why a HIBP reply cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum ReplyError {
    /// HIBP answered with an error object (whole: the caller scrubs it of the key before it
    /// is clipped).
    #[error("HIBP answered with an error object: {0}")]
    Refused(serde_json::Value),
    /// The reply is not what `expected` says.
    #[error("the {what} is not {expected}")]
    Shape {
        what: &'static str,
        expected: &'static str,
        #[source]
        cause: serde_json::Error,
    },
}

/// Parses a `/breacheddomain/{domain}` body: alias → breach names.
pub fn parse_domain_search(body: &[u8]) -> Result<BTreeMap<String, Vec<String>>, ReplyError> {
    refusal(body)?;
    serde_json::from_slice::<BTreeMap<String, Vec<String>>>(body).map_err(|cause| {
        ReplyError::Shape {
            what: "domain search reply",
            expected: "a JSON object of alias → breach names",
            cause,
        }
    })
}

/// An `{"error": ...}` object in place of the reply.
fn refusal(body: &[u8]) -> Result<(), ReplyError> {
    match serde_json::from_slice::<serde_json::Value>(body) {
        Ok(v) if v.get("error").is_some() => Err(ReplyError::Refused(v)),
        _ => Ok(()),
    }
}

/// Parses a `/breachedaccount/{account}` body: `[{"Name":"Adobe"}, ...]` (truncated or full).
pub fn parse_account(body: &[u8]) -> Result<Vec<String>, ReplyError> {
    #[derive(Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct Named {
        name: String,
    }
    refusal(body)?;
    serde_json::from_slice::<Vec<Named>>(body)
        .map(|v| v.into_iter().map(|n| n.name).collect())
        .map_err(|cause| ReplyError::Shape {
            what: "account reply",
            expected: "a JSON array of breaches",
            cause,
        })
}

/// Spaces keyed requests to the key's requests-per-minute on the injected clock.
struct Pacer {
    interval: Duration,
    last: Option<DateTime<Utc>>,
}

impl Pacer {
    async fn wait(&mut self, clock: &dyn crate::clock::Clock) {
        if let Some(last) = self.last {
            let since = (clock.now() - last).to_std().unwrap_or(Duration::ZERO);
            if since < self.interval {
                clock.sleep(self.interval - since).await;
            }
        }
        self.last = Some(clock.now());
    }
}

impl HibpSource {
    /// A reply that could not be read, as an error: scrubbed of the key, then clipped.
    /// A reply that cannot be read, as text scrubbed of the key and then clipped (an error
    /// object may echo the key).
    fn reply_error(&self, e: &ReplyError) -> FetchError {
        let text = crate::text::chain(e);
        FetchError::Format(crate::text::clip(&http::scrub(&text, &self.secrets()), 300))
    }

    fn headers(&self, keyed: bool) -> Result<HeaderMap, FetchError> {
        let mut h = HeaderMap::new();
        h.insert(ACCEPT, HeaderValue::from_static("application/json"));
        if keyed {
            let mut v = HeaderValue::from_str(self.key.expose()).map_err(|_| {
                FetchError::Config(
                    "sources.hibp.api_key contains characters not allowed in an HTTP header".into(),
                )
            })?;
            v.set_sensitive(true);
            h.insert(HeaderName::from_static("hibp-api-key"), v);
        }
        Ok(h)
    }

    async fn get(
        &self,
        ctx: &FetchContext,
        path: &str,
        keyed: bool,
    ) -> Result<Option<bytes::Bytes>, HttpError> {
        let url = http::join(&self.base_url, path);
        let headers = self.headers(keyed).map_err(|e| HttpError::Transport {
            url: url.clone(),
            message: e.to_string(),
        })?;
        match ctx
            .http
            .send(Method::GET, &url, headers, None, &[&self.key])
            .await
        {
            Ok(Fetched::Body { body, .. }) => {
                if http::looks_like_html(&body) {
                    return Err(HttpError::Html { url });
                }
                Ok(Some(body))
            }
            Ok(Fetched::NotModified) => Ok(None),
            Err(HttpError::Status { status: 404, .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Reads `Rpm` from `/subscription/status`. Auth failures end the run; anything else falls
    /// back to the smallest plan's rate.
    async fn rpm(&self, ctx: &FetchContext) -> Result<u32, FetchError> {
        match self.get(ctx, "subscription/status", true).await {
            Ok(Some(body)) => match serde_json::from_slice::<SubscriptionStatus>(&body) {
                Ok(s) => {
                    tracing::debug!(plan = ?s.subscription_name, rpm = ?s.rpm, "HIBP subscription");
                    Ok(s.rpm.filter(|r| *r > 0).unwrap_or(DEFAULT_RPM))
                }
                Err(e) => {
                    tracing::warn!(
                        "HIBP subscription status unreadable ({e}); assuming {DEFAULT_RPM} requests/minute"
                    );
                    Ok(DEFAULT_RPM)
                }
            },
            Ok(None) => Ok(DEFAULT_RPM),
            Err(e) => match map_error(e, "subscription status") {
                err @ FetchError::Auth(_) => Err(err),
                other => {
                    let other = http::scrub(&crate::text::chain(&other), &self.secrets());
                    tracing::warn!(
                        "{}; assuming {DEFAULT_RPM} requests/minute",
                        crate::text::Clean(&other)
                    );
                    Ok(DEFAULT_RPM)
                }
            },
        }
    }

    /// The domains this run searches when the config lists none: those verified on the
    /// account (`GET /subscribeddomains`), limited to the organisation's domains when it names
    /// any. An organisation domain that is not verified is named once in the run's notices
    /// (shown by `status`; searching it would only be refused). When the list cannot be read (other than a
    /// refused key), the organisation's domains are searched as they are.
    async fn verified_domains(
        &self,
        ctx: &FetchContext,
        org: &[String],
        out: &mut FetchOutput,
    ) -> Result<Vec<String>, FetchError> {
        let read = match self.get(ctx, "subscribeddomains", true).await {
            Ok(Some(body)) => parse_subscribed(&body).map_err(|e| FetchError::Data(e.into())),
            Ok(None) => Err(FetchError::Format(
                "/subscribeddomains was not found".into(),
            )),
            Err(e) if e.status() == Some(401) => {
                return Err(map_error(e, "list of verified domains"));
            }
            Err(e) => Err(map_error(e, "list of verified domains")),
        };
        let verified = match read {
            Ok(v) => v,
            Err(e) if !org.is_empty() => {
                let e = http::scrub(&crate::text::chain(&e), &self.secrets());
                tracing::warn!(
                    "HIBP verified domains unreadable ({}); searching [organisation] domains",
                    crate::text::Clean(&e)
                );
                return Ok(org.to_vec());
            }
            Err(e) => return Err(e),
        };
        if org.is_empty() {
            return Ok(verified);
        }
        let mut searched = Vec::new();
        for d in org {
            if verified.iter().any(|v| v == d) {
                searched.push(d.clone());
            } else {
                out.notices.push(format!(
                    "{d} is not verified on this HIBP account, so it is not searched: verify it \
                     in the HIBP domain search dashboard (verified: {})",
                    if verified.is_empty() {
                        "none".to_string()
                    } else {
                        verified.join(", ")
                    }
                ));
            }
        }
        Ok(searched)
    }

    /// The breach list, from state when fresh and complete enough, else from `/breaches`.
    async fn breaches(
        &self,
        ctx: &FetchContext,
        needed: &BTreeSet<String>,
    ) -> Result<(BreachCache, bool), FetchError> {
        let cached: Option<BreachCache> = ctx.state.get_json(BREACHES_STATE).await?;
        if let Some(c) = &cached {
            let fresh = c
                .fetched_at
                .is_some_and(|t| ctx.now - t < chrono::Duration::hours(BREACH_CACHE_TTL_HOURS));
            let knows_all = needed.iter().all(|n| c.breaches.contains_key(n));
            if fresh && knows_all {
                return Ok((c.clone(), false));
            }
        }
        let body = self
            .get(ctx, "breaches", false)
            .await
            .map_err(|e| map_error(e, "breach list"))?
            .ok_or_else(|| {
                FetchError::Format("the breach list (/breaches) was not found".into())
            })?;
        let list: Vec<Breach> = serde_json::from_slice(&body).map_err(|e| {
            FetchError::Format(format!(
                "the breach list (/breaches) is not a JSON array of breaches ({e})"
            ))
        })?;
        let breaches = list.into_iter().map(|b| (b.name.clone(), b)).collect();
        Ok((
            BreachCache {
                fetched_at: Some(ctx.now),
                breaches,
            },
            true,
        ))
    }
}

/// Turns an HTTP error into a message that says what to do.
fn map_error(e: HttpError, what: &str) -> FetchError {
    match e {
        HttpError::Status { status: 401, .. } => FetchError::Auth(format!(
            "HIBP rejected the API key (401) on the {what}: check sources.hibp.api_key / api_key_env"
        )),
        HttpError::Status { status: 403, .. } => FetchError::Auth(format!(
            "HIBP refused the {what} (403 Forbidden): the request was blocked (user agent refused, \
             or the key is not allowed to search this domain; verify the domain in the HIBP dashboard)"
        )),
        HttpError::Status {
            status: 429,
            retry_after,
            url,
            ..
        } => FetchError::Http(HttpError::Status {
            url,
            status: 429,
            detail: format!(
                ": still rate limited after waiting{}",
                retry_after
                    .map(|s| format!(" (retry-after {s}s)"))
                    .unwrap_or_default()
            ),
            retry_after,
        }),
        other => FetchError::Http(other),
    }
}

#[async_trait]
impl Source for HibpSource {
    fn name(&self) -> &str {
        SourceId::Hibp.name()
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
        let clock = ctx.http.clock.clone();
        let rpm = self.rpm(ctx).await?;
        let mut pacer = Pacer {
            interval: Duration::from_millis(60_000 / u64::from(rpm.max(1))),
            last: Some(clock.now()),
        };
        let mut out = FetchOutput {
            complete: true,
            ..Default::default()
        };
        // Domain searches first (keyed, paced), then the metadata they need. Each domain and
        // each account is a unit: one refused (a domain not verified on the account) is named
        // and the others go on; a rejected key fails them all, so it ends the fetch.
        let mut results: Vec<(String, BTreeMap<String, Vec<String>>)> = Vec::new();
        let domains = match &self.domains {
            Domains::Listed(l) => l.clone(),
            Domains::Verified(org) => {
                pacer.wait(clock.as_ref()).await;
                self.verified_domains(ctx, org, &mut out).await?
            }
        };
        for domain in &domains {
            pacer.wait(clock.as_ref()).await;
            let path = format!("breacheddomain/{}", encode_segment(domain));
            let searched = match self.get(ctx, &path, true).await {
                Err(e) if e.status() == Some(401) => {
                    return Err(map_error(e, &format!("domain search for {domain}")));
                }
                Err(e) => Err(map_error(e, &format!("domain search for {domain}"))),
                Ok(None) => Ok(BTreeMap::new()),
                Ok(Some(b)) => parse_domain_search(&b).map_err(|e| self.reply_error(&e)),
            };
            match searched {
                Ok(map) => results.push((domain.clone(), map)),
                Err(e) => out.fail_unit(format!("domain {domain}"), &e),
            }
        }
        for account in &self.accounts {
            let Some((alias, domain)) = account.rsplit_once('@') else {
                continue;
            };
            pacer.wait(clock.as_ref()).await;
            let path = format!("breachedaccount/{}", encode_segment(account));
            let searched = match self.get(ctx, &path, true).await {
                Err(e) if e.status() == Some(401) => {
                    return Err(map_error(e, &format!("account search for {account}")));
                }
                Err(e) => Err(map_error(e, &format!("account search for {account}"))),
                Ok(None) => Ok(Vec::new()),
                Ok(Some(b)) => parse_account(&b).map_err(|e| self.reply_error(&e)),
            };
            match searched {
                Ok(names) => {
                    let mut map = BTreeMap::new();
                    map.insert(alias.to_string(), names);
                    results.push((format!("@{domain}"), map));
                }
                Err(e) => out.fail_unit(format!("account {account}"), &e),
            }
        }
        let needed: BTreeSet<String> = results
            .iter()
            .flat_map(|(_, m)| m.values().flatten().cloned())
            .collect();
        // Without fresh metadata the findings still count, with what the cache knows.
        let (cache, refreshed) = match self.breaches(ctx, &needed).await {
            Ok(c) => c,
            Err(e) => {
                out.fail_unit("breach metadata", &e);
                let cached: Option<BreachCache> = ctx.state.get_json(BREACHES_STATE).await?;
                (cached.unwrap_or_default(), false)
            }
        };
        for (domain, map) in &results {
            for (alias, names) in map {
                let alias_ok = !alias.trim().is_empty()
                    && !alias.contains('@')
                    && !alias.chars().any(|c| c.is_whitespace() || c.is_control());
                for name in names {
                    out.fetched += 1;
                    if !alias_ok || name.trim().is_empty() {
                        out.rejected.push(RowError {
                            location: format!("breacheddomain/{domain} alias {alias:?}"),
                            message: "not a usable alias / breach name".into(),
                        });
                        continue;
                    }
                    // Single accounts are marked `@domain` in `results`.
                    let mut f = match domain.strip_prefix('@') {
                        Some(d) => account_finding(
                            "breachedaccount",
                            d,
                            alias,
                            name,
                            cache.breaches.get(name),
                        ),
                        None => pair_finding(domain, alias, name, cache.breaches.get(name)),
                    };
                    crate::scope::mark_scope(&mut f, &ctx.scope);
                    out.findings.push(f);
                }
            }
        }
        if refreshed {
            let bytes = serde_json::to_vec(&cache)
                .map_err(|e| FetchError::data("cannot encode the breach cache", e))?;
            out.state.push((BREACHES_STATE.to_string(), Some(bytes)));
        }
        Ok(out)
    }
}

/// `GET /subscribeddomains`: `[{"DomainName": "example.org", "PwnCount": 6, ...}]` → the
/// domain names, lower case.
pub fn parse_subscribed(body: &[u8]) -> Result<Vec<String>, ReplyError> {
    #[derive(Deserialize)]
    struct Subscribed {
        #[serde(rename = "DomainName")]
        domain_name: Option<String>,
    }
    let list: Vec<Subscribed> =
        serde_json::from_slice(body).map_err(|cause| ReplyError::Shape {
            what: "verified domains (/subscribeddomains)",
            expected: "a JSON array of domains",
            cause,
        })?;
    let mut out: Vec<String> = list
        .into_iter()
        .filter_map(|d| d.domain_name)
        .map(|d| d.trim().trim_end_matches('.').to_ascii_lowercase())
        .filter(|d| !d.is_empty())
        .collect();
    out.dedup();
    Ok(out)
}

/// Percent-encodes a path segment (domains are plain, but be safe).
fn encode_segment(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn severity_rules() {
        let pw = vec!["Email addresses".to_string(), "Passwords".to_string()];
        let hints = vec!["Password hints".to_string()];
        assert_eq!(severity(&pw, false, false), Severity::High);
        assert_eq!(severity(&hints, false, false), Severity::Medium);
        assert_eq!(severity(&hints, true, false), Severity::High);
        assert_eq!(severity(&hints, false, true), Severity::Low);
    }

    #[test]
    fn hibp_times() {
        for s in [
            "2013-12-04T00:00:00Z",
            "2013-12-04T00:00Z",
            "2013-12-04T00:00:00",
        ] {
            assert_eq!(
                parse_hibp_time(s).unwrap().to_rfc3339(),
                "2013-12-04T00:00:00+00:00",
                "{s}"
            );
        }
    }

    #[test]
    fn domain_search_shapes() {
        let m = parse_domain_search(br#"{"a":["X","Y"],"b":[]}"#).unwrap();
        assert_eq!(m["a"], vec!["X", "Y"]);
        assert!(parse_domain_search(b"[1,2]").is_err());
        assert!(parse_domain_search(br#"{"error":"nope"}"#).is_err());
    }
}
