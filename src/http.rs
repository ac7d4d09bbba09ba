//! The one HTTP client every source uses: timeouts, a User-Agent, gzip, a body-size cap,
//! conditional GET, rejection of HTML error pages, and errors with secrets scrubbed.
//!
//! Sources build URLs and read bodies through here; none of them creates its own client.
//!
//! Redirects: a request that carries a credential (any `secrets` passed to [`HttpClient::send`])
//! follows a redirect only within its origin (scheme, host, port); a redirect elsewhere is an
//! error naming both URLs. No request follows a redirect from https to http, and no request
//! sends `Referer`, so a key in a query string never travels to another server.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use reqwest::header::{HeaderMap, HeaderValue};
use reqwest::{Method, StatusCode};
use serde::{Deserialize, Serialize};

use crate::clock::Clock;
use crate::config::HttpConfig;
use crate::secret::Secret;

/// Errors of one HTTP exchange; messages never contain a secret.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("{url}: {message}")]
    Transport { url: String, message: String },
    #[error("{url}: HTTP {status}{detail}")]
    Status {
        url: String,
        status: u16,
        detail: String,
        /// `Retry-After` in seconds, when the server sent one.
        retry_after: Option<u64>,
    },
    #[error("{url}: the response is larger than the {limit_mib} MiB limit ([http] max_body_mib)")]
    TooLarge { url: String, limit_mib: u64 },
    #[error("{url}: expected data but got an HTML page (an error or login page?)")]
    Html { url: String },
    #[error("{url}: the response body is empty")]
    Empty { url: String },
    #[error("{url}: redirected to {to}, not followed: {reason}")]
    Redirect {
        url: String,
        to: String,
        reason: &'static str,
    },
}

/// Why a redirect was not followed (see the module comment).
const CROSS_ORIGIN: &str = "a request carrying a key never follows a redirect to another origin";
const DOWNGRADE: &str = "a redirect from https to http is never followed";
/// How many redirects a request follows at most.
const MAX_REDIRECTS: usize = 10;
/// How much of an error body an [`HttpError::Status`] quotes (after scrubbing).
const EXCERPT_CHARS: usize = 200;

impl HttpError {
    /// The HTTP status, when the server answered with an error status.
    pub fn status(&self) -> Option<u16> {
        match self {
            HttpError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// The one retry rule of every request ([`HttpClient::send`], [`HttpClient::get`],
/// [`HttpClient::get_to_file`]): a `429 Too Many Requests` or `503 Service Unavailable` is
/// asked again after the wait its `Retry-After` gives (seconds or an HTTP date; without one,
/// 2, 4, 8 ... seconds), on the injected clock, at most `max_retries` times. A wait longer
/// than `max_wait`, or one that would bring the waits of one request past `max_total`, is not
/// waited for: the error is returned, saying how long the server asked to wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    pub max_retries: u32,
    /// A `Retry-After` longer than this is not waited for: the error is returned.
    pub max_wait: Duration,
    /// The waits of one request together stay within this.
    pub max_total: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_retries: 3,
            max_wait: Duration::from_secs(120),
            max_total: Duration::from_secs(300),
        }
    }
}

impl RetryPolicy {
    /// How long to wait before asking again after `error`, the answer to attempt `attempt`
    /// (0-based) of a request that already waited `waited`; `None` when it is not asked again.
    /// A wait refused for its length is noted in the error's detail.
    pub fn wait_before_retry(
        &self,
        error: &mut HttpError,
        attempt: u32,
        waited: Duration,
    ) -> Option<Duration> {
        let HttpError::Status {
            status: 429 | 503,
            retry_after,
            detail,
            ..
        } = error
        else {
            return None;
        };
        if attempt >= self.max_retries {
            return None;
        }
        let wait = Duration::from_secs(retry_after.unwrap_or(2u64 << attempt.min(16)));
        if wait > self.max_wait || waited + wait > self.max_total {
            detail.push_str(&format!(
                " (the server asks to wait {}: more than outwatch waits within one run)",
                humantime::format_duration(wait)
            ));
            return None;
        }
        Some(wait)
    }
}

/// ETag / Last-Modified remembered between fetches of one URL.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Validators {
    pub etag: Option<String>,
    pub last_modified: Option<String>,
}

/// A successful response, with its validators and content type.
type Answer = (reqwest::Response, Validators, Option<String>);

/// A fetched body, or "not modified".
#[derive(Debug)]
pub enum Fetched {
    Body {
        body: Bytes,
        validators: Validators,
        content_type: Option<String>,
        /// Whether the server announced where the body ends (see [`is_framed`]), so that a body
        /// cut short would have been an error. When `false` the connection's close ended it,
        /// and a cut at a line end looks whole: the caller must judge the body itself.
        framed: bool,
    },
    NotModified,
}

/// A body [`HttpClient::get_to_file`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Downloaded {
    /// Bytes written.
    pub bytes: u64,
    pub content_type: Option<String>,
    /// See [`Fetched::Body::framed`].
    pub framed: bool,
}

/// Whether a response announces its body's end: a `Content-Length` (a shorter body is then an
/// error), chunked transfer coding (the last chunk is required) or HTTP/2 (the stream's end is
/// a frame). reqwest drops `Content-Length` when it decompresses gzip, so a compressed body
/// counts as unannounced: judged by its content, which is the careful side.
pub fn is_framed(resp: &reqwest::Response) -> bool {
    let chunked = resp
        .headers()
        .get_all(reqwest::header::TRANSFER_ENCODING)
        .iter()
        .any(|v| {
            v.to_str()
                .is_ok_and(|t| t.to_ascii_lowercase().contains("chunked"))
        });
    resp.version() >= reqwest::Version::HTTP_2 || resp.content_length().is_some() || chunked
}

/// The shared client.
#[derive(Clone)]
pub struct HttpClient {
    /// For requests without a credential: follows redirects, but never from https to http.
    inner: reqwest::Client,
    /// For requests with a credential: follows redirects only within the origin.
    keyed: reqwest::Client,
    max_body: u64,
    timeout: Duration,
    connect_timeout: Duration,
    download_timeout: Duration,
    /// How rate limits are waited out (see [`RetryPolicy`]).
    retry: RetryPolicy,
    /// The clock used to wait for `Retry-After`.
    pub clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for HttpClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpClient")
            .field("max_body", &self.max_body)
            .finish()
    }
}

impl HttpClient {
    /// Builds the client from the `[http]` settings: `timeout` bounds the whole exchange
    /// (connect, answer and body) and `connect_timeout` the TCP and TLS connect; no other
    /// deadline is shorter.
    pub fn new(cfg: &HttpConfig, clock: Arc<dyn Clock>) -> Result<Self, HttpError> {
        let build = |policy: reqwest::redirect::Policy| {
            reqwest::Client::builder()
                .user_agent(cfg.user_agent.clone())
                .timeout(cfg.timeout.0)
                .connect_timeout(cfg.connect_timeout.0)
                .redirect(policy)
                .referer(false)
                .gzip(true)
                .build()
                .map_err(|e| HttpError::Transport {
                    url: String::new(),
                    message: e.to_string(),
                })
        };
        Ok(HttpClient {
            inner: build(redirect_policy(false))?,
            keyed: build(redirect_policy(true))?,
            max_body: cfg.max_body_mib.saturating_mul(1024 * 1024),
            timeout: cfg.timeout.0,
            connect_timeout: cfg.connect_timeout.0,
            download_timeout: cfg.download_timeout.0,
            retry: RetryPolicy::default(),
            clock,
        })
    }

    /// The same client with another retry rule (tests, and callers that must not wait).
    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// The retry rule in use.
    pub fn retry(&self) -> RetryPolicy {
        self.retry
    }

    /// The body-size cap in bytes.
    pub fn max_body(&self) -> u64 {
        self.max_body
    }

    /// Sends a request and reads the whole body (capped). Error statuses become
    /// [`HttpError::Status`]; `secrets` are scrubbed from every message. A 304 is returned as
    /// [`Fetched::NotModified`].
    pub async fn send(
        &self,
        method: Method,
        url: &str,
        headers: HeaderMap,
        body: Option<Vec<u8>>,
        secrets: &[&Secret],
    ) -> Result<Fetched, HttpError> {
        let (resp, validators, content_type) = match self
            .respond(method, url, headers, body, secrets, None)
            .await?
        {
            Some(r) => r,
            None => return Ok(Fetched::NotModified),
        };
        let shown = scrub(url, secrets);
        let framed = is_framed(&resp);
        if let Some(len) = resp.content_length()
            && len > self.max_body
        {
            return Err(HttpError::TooLarge {
                url: shown,
                limit_mib: self.max_body / (1024 * 1024),
            });
        }
        let body = read_capped(resp, self.max_body)
            .await
            .map_err(|e| match e {
                ReadError::TooLarge => HttpError::TooLarge {
                    url: shown.clone(),
                    limit_mib: self.max_body / (1024 * 1024),
                },
                ReadError::Transport(e) => HttpError::Transport {
                    url: shown.clone(),
                    message: scrub(&self.describe(&e), secrets),
                },
            })?;
        Ok(Fetched::Body {
            body,
            validators,
            content_type,
            framed,
        })
    }

    /// A GET whose body is streamed into `file` instead of memory, with no size cap (for
    /// reports that may be larger than memory; the caller spills to its data folder). Returns
    /// what was written; `None` for a 304. Errors as [`HttpClient::send`].
    /// The whole download may take `[http] download_timeout`, but the body must keep moving:
    /// a wait of `[http] timeout` for the next bytes fails it.
    pub async fn get_to_file(
        &self,
        url: &str,
        secrets: &[&Secret],
        file: &mut std::fs::File,
    ) -> Result<Option<Downloaded>, HttpError> {
        use tokio::io::AsyncWriteExt;
        let Some((resp, _, content_type)) = self
            .respond(
                Method::GET,
                url,
                HeaderMap::new(),
                None,
                secrets,
                Some(self.download_timeout),
            )
            .await?
        else {
            return Ok(None);
        };
        let shown = scrub(url, secrets);
        let write_failed = |e: std::io::Error| HttpError::Transport {
            url: shown.clone(),
            message: format!("cannot write the body to a temporary file: {e}"),
        };
        // Written through tokio's file (its writes run on the blocking pool), on a second
        // handle of the same open file: `file` ends where the body ends.
        let mut out = tokio::fs::File::from_std(file.try_clone().map_err(write_failed)?);
        let framed = is_framed(&resp);
        let mut stream = resp.bytes_stream();
        let mut n = 0u64;
        loop {
            let next = match tokio::time::timeout(self.timeout, stream.next()).await {
                Ok(next) => next,
                Err(_) => {
                    return Err(HttpError::Transport {
                        url: shown,
                        message: format!(
                            "the body stopped: no data for {} after {n} bytes \
                             (the [http] timeout)",
                            humantime::format_duration(self.timeout)
                        ),
                    });
                }
            };
            let Some(chunk) = next else { break };
            let chunk = chunk.map_err(|e| HttpError::Transport {
                url: shown.clone(),
                message: scrub(&self.describe_within(&e, true), secrets),
            })?;
            out.write_all(&chunk).await.map_err(write_failed)?;
            n += chunk.len() as u64;
        }
        out.flush().await.map_err(write_failed)?;
        Ok(Some(Downloaded {
            bytes: n,
            content_type,
            framed,
        }))
    }

    /// Sends a request and checks its reply: a successful response with its validators and
    /// content type, `None` for a 304, or the error (status, redirect, transport). A rate limit
    /// is waited out and the request sent again, as [`RetryPolicy`] says.
    async fn respond(
        &self,
        method: Method,
        url: &str,
        headers: HeaderMap,
        body: Option<Vec<u8>>,
        secrets: &[&Secret],
        whole: Option<Duration>,
    ) -> Result<Option<Answer>, HttpError> {
        let (mut attempt, mut waited) = (0, Duration::ZERO);
        loop {
            let sent = self.respond_once(
                method.clone(),
                url,
                headers.clone(),
                body.clone(),
                secrets,
                whole,
            );
            let mut e = match sent.await {
                Err(e) => e,
                ok => return ok,
            };
            let Some(wait) = self.retry.wait_before_retry(&mut e, attempt, waited) else {
                return Err(e);
            };
            tracing::info!(
                url = %scrub(url, secrets),
                status = e.status().unwrap_or(0),
                wait_s = wait.as_secs(),
                "rate limited; waiting as asked"
            );
            self.clock.sleep(wait).await;
            attempt += 1;
            waited += wait;
        }
    }

    /// One exchange of [`HttpClient::respond`].
    async fn respond_once(
        &self,
        method: Method,
        url: &str,
        headers: HeaderMap,
        body: Option<Vec<u8>>,
        secrets: &[&Secret],
        whole: Option<Duration>,
    ) -> Result<Option<Answer>, HttpError> {
        let shown = scrub(url, secrets);
        let client = if secrets.is_empty() {
            &self.inner
        } else {
            &self.keyed
        };
        let mut req = client.request(method, url).headers(headers);
        if let Some(b) = body {
            req = req.body(b);
        }
        if let Some(t) = whole {
            req = req.timeout(t);
        }
        // A longer deadline is for the body only: the answer itself comes within `timeout`.
        let resp = match tokio::time::timeout(self.timeout, req.send()).await {
            Ok(sent) => sent.map_err(|e| HttpError::Transport {
                url: shown.clone(),
                message: scrub(&self.describe(&e), secrets),
            })?,
            Err(_) => {
                return Err(HttpError::Transport {
                    url: shown,
                    message: format!(
                        "timed out: no answer within {} ([http] timeout)",
                        humantime::format_duration(self.timeout)
                    ),
                });
            }
        };
        let status = resp.status();
        if status == StatusCode::NOT_MODIFIED {
            return Ok(None);
        }
        if status.is_redirection()
            && let Some(to) = resp
                .headers()
                .get(reqwest::header::LOCATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|l| resp.url().join(l).ok())
        {
            // Where the policy stopped: a downgrade, or another origin for a keyed request.
            if !may_follow(resp.url(), &to, !secrets.is_empty()) {
                let reason = if resp.url().scheme() == "https" && to.scheme() != "https" {
                    DOWNGRADE
                } else {
                    CROSS_ORIGIN
                };
                return Err(HttpError::Redirect {
                    url: shown,
                    to: scrub(to.as_str(), secrets),
                    reason,
                });
            }
        }
        let h = resp.headers().clone();
        let header = |n: &str| h.get(n).and_then(|v| v.to_str().ok()).map(str::to_string);
        let validators = Validators {
            etag: header("etag"),
            last_modified: header("last-modified"),
        };
        let content_type = header("content-type");
        if !status.is_success() {
            let retry_after =
                header("retry-after").and_then(|v| retry_after_secs(&v, self.clock.now()));
            let detail = error_detail(resp, secrets).await;
            return Err(HttpError::Status {
                url: shown,
                status: status.as_u16(),
                detail,
                retry_after,
            });
        }
        Ok(Some((resp, validators, content_type)))
    }

    /// GET with optional conditional-request validators.
    pub async fn get(
        &self,
        url: &str,
        mut headers: HeaderMap,
        validators: Option<&Validators>,
        secrets: &[&Secret],
    ) -> Result<Fetched, HttpError> {
        if let Some(v) = validators {
            if let Some(e) = v
                .etag
                .as_deref()
                .and_then(|e| HeaderValue::from_str(e).ok())
            {
                headers.insert(reqwest::header::IF_NONE_MATCH, e);
            }
            if let Some(l) = v
                .last_modified
                .as_deref()
                .and_then(|e| HeaderValue::from_str(e).ok())
            {
                headers.insert(reqwest::header::IF_MODIFIED_SINCE, l);
            }
        }
        self.send(Method::GET, url, headers, None, secrets).await
    }
}

impl HttpClient {
    /// A reqwest error without its URL (which may hold a key), naming the deadline that ran out.
    fn describe(&self, e: &reqwest::Error) -> String {
        self.describe_within(e, false)
    }

    /// [`HttpClient::describe`] of a request bound by `download_timeout` when `download`.
    fn describe_within(&self, e: &reqwest::Error, download: bool) -> String {
        if e.is_timeout() {
            let (what, limit, key) = if e.is_connect() {
                ("no connection", self.connect_timeout, "connect_timeout")
            } else if download {
                (
                    "no complete download",
                    self.download_timeout,
                    "download_timeout",
                )
            } else {
                ("no complete answer", self.timeout, "timeout")
            };
            return format!(
                "timed out: {what} within {} ([http] {key})",
                humantime::format_duration(limit)
            );
        }
        without_url(e)
    }
}

/// `: <excerpt>` of an error reply's body: a short excerpt helps, but the body is
/// attacker-controlled, so it is capped, its control characters dropped, scrubbed whole and only
/// then clipped (a key cut by the clip would not be found); nothing for an HTML page.
async fn error_detail(resp: reqwest::Response, secrets: &[&Secret]) -> String {
    let body = read_capped(resp, 4096).await.unwrap_or_default();
    let text: String = String::from_utf8_lossy(&body)
        .chars()
        .filter(|c| !c.is_control())
        .collect();
    let excerpt: String = scrub(text.trim(), secrets)
        .chars()
        .take(EXCERPT_CHARS)
        .collect();
    if excerpt.trim().is_empty() || looks_like_html(&body) {
        String::new()
    } else {
        format!(": {}", excerpt.trim())
    }
}

/// The redirect rule of the module comment: `keyed` clients stay within the origin; no client
/// goes from https to http. A stopped redirect comes back as the 3xx response itself, which
/// [`HttpClient::send`] turns into [`HttpError::Redirect`].
fn redirect_policy(keyed: bool) -> reqwest::redirect::Policy {
    reqwest::redirect::Policy::custom(move |attempt| {
        let follow = attempt.previous().last().is_some_and(|from| {
            attempt.previous().len() <= MAX_REDIRECTS && may_follow(from, attempt.url(), keyed)
        });
        if follow {
            attempt.follow()
        } else {
            attempt.stop()
        }
    })
}

/// Whether a redirect from `from` to `to` may be followed: never from https to http, and for a
/// request carrying a key only within the origin.
fn may_follow(from: &reqwest::Url, to: &reqwest::Url, keyed: bool) -> bool {
    let downgrade = from.scheme() == "https" && to.scheme() != "https";
    !downgrade && (!keyed || same_origin(from, to))
}

/// Same scheme, host and port (the default port of the scheme when none is written).
fn same_origin(a: &reqwest::Url, b: &reqwest::Url) -> bool {
    a.scheme() == b.scheme()
        && a.host_str() == b.host_str()
        && a.port_or_known_default() == b.port_or_known_default()
}

enum ReadError {
    TooLarge,
    Transport(reqwest::Error),
}

async fn read_capped(resp: reqwest::Response, cap: u64) -> Result<Bytes, ReadError> {
    let mut stream = resp.bytes_stream();
    let mut buf = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(ReadError::Transport)?;
        if buf.len() as u64 + chunk.len() as u64 > cap {
            return Err(ReadError::TooLarge);
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(Bytes::from(buf))
}

/// reqwest errors print their URL, which may hold a key; print the cause chain without it.
fn without_url(e: &reqwest::Error) -> String {
    let mut msg = if e.is_timeout() {
        "timed out".to_string()
    } else if e.is_connect() {
        "connection failed".to_string()
    } else if e.is_decode() || e.is_body() {
        "reading the response failed".to_string()
    } else {
        "request failed".to_string()
    };
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        src = s.source();
    }
    msg
}

/// Replaces each secret in `text` by the redaction marker ([`crate::secret::scrub`]).
pub fn scrub(text: &str, secrets: &[&Secret]) -> String {
    crate::secret::scrub(text, secrets)
}

/// A `Retry-After` value in seconds from `now`: delay-seconds, or an HTTP date (RFC 9110
/// allows both; a date in the past means "now").
pub fn retry_after_secs(v: &str, now: chrono::DateTime<chrono::Utc>) -> Option<u64> {
    let v = v.trim();
    if let Ok(s) = v.parse::<u64>() {
        return Some(s);
    }
    let at = chrono::DateTime::parse_from_rfc2822(v).ok()?;
    Some((at.with_timezone(&chrono::Utc) - now).num_seconds().max(0) as u64)
}

/// Whether a body starts like an HTML document (after white space and a BOM).
pub fn looks_like_html(body: &[u8]) -> bool {
    let start: Vec<u8> = body
        .iter()
        .skip_while(|b| b.is_ascii_whitespace() || **b == 0xEF || **b == 0xBB || **b == 0xBF)
        .take(64)
        .map(|b| b.to_ascii_lowercase())
        .collect();
    start.starts_with(b"<!doctype html")
        || start.starts_with(b"<html")
        || start.starts_with(b"<head")
        || start.starts_with(b"<body")
}

/// A URL that does not parse: which one (`URL`, `base_url`), as written, and why.
#[derive(Debug, thiserror::Error)]
#[error("bad {what} `{value}`: {cause}")]
pub struct BadUrl {
    pub what: &'static str,
    pub value: String,
    #[source]
    pub cause: <reqwest::Url as std::str::FromStr>::Err,
}

/// Replaces scheme, host and port of `url` by those of `base` and keeps the path and query
/// (the `base_url` override of list feeds: tests and mirrors serve the real paths).
pub fn rebase(url: &str, base: &str) -> Result<String, BadUrl> {
    let bad = |what: &'static str, value: &str, cause| BadUrl {
        what,
        value: value.to_string(),
        cause,
    };
    let u = reqwest::Url::parse(url).map_err(|e| bad("URL", url, e))?;
    let b = reqwest::Url::parse(base).map_err(|e| bad("base_url", base, e))?;
    let mut out = b.clone();
    let prefix = b.path().trim_end_matches('/');
    out.set_path(&format!("{prefix}{}", u.path()));
    out.set_query(u.query());
    Ok(out.to_string())
}

/// Joins a base URL and a relative path with exactly one slash between them.
pub fn join(base: &str, path: &str) -> String {
    format!(
        "{}/{}",
        base.trim_end_matches('/'),
        path.trim_start_matches('/')
    )
}

#[cfg(test)]
mod tests {

    #[test]
    fn retry_after_takes_seconds_and_http_dates() {
        let now = chrono::DateTime::parse_from_rfc3339("2026-11-23T06:00:00Z")
            .unwrap()
            .with_timezone(&chrono::Utc);
        assert_eq!(retry_after_secs("120", now), Some(120));
        assert_eq!(
            retry_after_secs("Mon, 23 Nov 2026 06:01:30 GMT", now),
            Some(90)
        );
        assert_eq!(
            retry_after_secs("Sun, 22 Nov 2026 06:00:00 GMT", now),
            Some(0)
        );
        assert_eq!(retry_after_secs("soon", now), None);
    }
    use super::*;

    #[test]
    fn rebase_keeps_path() {
        assert_eq!(
            rebase(
                "https://feodotracker.abuse.ch/downloads/ipblocklist.csv",
                "http://127.0.0.1:8080"
            )
            .unwrap(),
            "http://127.0.0.1:8080/downloads/ipblocklist.csv"
        );
        assert_eq!(
            rebase("https://x.org/a/?q=1", "http://m:1/mirror/").unwrap(),
            "http://m:1/mirror/a/?q=1"
        );
    }

    #[test]
    fn redirect_rule() {
        let u = |s: &str| reqwest::Url::parse(s).unwrap();
        let a = u("https://api.example/v3/x?key=k");
        // Within the origin: always.
        assert!(may_follow(&a, &u("https://api.example:443/v3/y"), true));
        // Another host, port or scheme: not with a key.
        for other in [
            "https://evil.example/v3/x",
            "https://api.example:8443/v3/x",
            "http://api.example/v3/x",
        ] {
            assert!(!may_follow(&a, &u(other), true), "{other}");
        }
        // Without a key another host is fine, a downgrade never.
        assert!(may_follow(&a, &u("https://mirror.example/x"), false));
        assert!(!may_follow(&a, &u("http://api.example/v3/x"), false));
        assert!(!may_follow(&a, &u("http://mirror.example/x"), false));
        assert!(may_follow(
            &u("http://a.example/"),
            &u("https://b.example/"),
            false
        ));
    }

    #[test]
    fn html_detection() {
        assert!(looks_like_html(b"\n  <!DOCTYPE html><html>"));
        assert!(looks_like_html(b"<html><body>expired</body></html>"));
        assert!(!looks_like_html(b"\"first_seen_utc\",\"dst_ip\""));
    }

    #[test]
    fn join_slashes() {
        assert_eq!(
            join("http://h/api2/", "/reports/list"),
            "http://h/api2/reports/list"
        );
        assert_eq!(
            join("http://h/api2", "reports/list"),
            "http://h/api2/reports/list"
        );
    }
}
