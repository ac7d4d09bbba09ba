//! The Shadowserver Reports API client.
//!
//! Every call is a `POST {base_url}<method>` whose JSON body carries `apikey`; the `HMAC2` header
//! is the lowercase hex HMAC-SHA256 of the exact body bytes, keyed with the API secret. The body
//! is serialised once and those same bytes are signed and sent. Any non-200 reply, and a 200
//! reply that is a JSON object with an `error` key, is an error. Reports are downloaded with a
//! plain `GET {download_url}<id>`; the id works like a password, so it is scrubbed from every
//! message like the key and the secret.

use hmac::{Hmac, KeyInit, Mac};
use reqwest::Method;
use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};
use serde::Deserialize;
use serde_json::{Map, Value};
use sha2::Sha256;

use crate::http::{Fetched, HttpClient, looks_like_html};
use crate::secret::Secret;
use crate::sources::FetchError;

/// The header carrying the signature.
pub const HMAC_HEADER: &str = "HMAC2";

/// Hex HMAC-SHA256 of `body` keyed with `secret`.
pub fn sign(secret: &str, body: &[u8]) -> String {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret.as_bytes())
        .expect("HMAC accepts keys of any length");
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

/// How many entries one `reports/list` request asks for (its `limit`). Shadowserver's wiki
/// gives 10,000 as the most one query returns.
pub const LIST_LIMIT: usize = 10_000;

/// What `reports/list` answered.
#[derive(Debug, Default)]
pub struct Listing {
    /// The reports, each once.
    pub entries: Vec<ReportEntry>,
    /// A single day's listing filled [`LIST_LIMIT`]: there may be more reports than listed.
    pub cut: bool,
}

/// The days of a `YYYY-MM-DD:YYYY-MM-DD` range (at most 31), or `None` for a single day or
/// anything else.
fn days_of(range: &str) -> Option<Vec<String>> {
    let (a, b) = range.split_once(':')?;
    let parse = |d: &str| chrono::NaiveDate::parse_from_str(d.trim(), "%Y-%m-%d").ok();
    let (mut d, end) = (parse(a)?, parse(b)?);
    let mut out = Vec::new();
    while d <= end && out.len() < 31 {
        out.push(d.to_string());
        d = d.succ_opt()?;
    }
    (out.len() > 1).then_some(out)
}

/// One entry of `reports/list`.
#[derive(Debug, Clone, Deserialize)]
pub struct ReportEntry {
    /// Download token: secret, never logged.
    pub id: String,
    /// Report type (schema key), e.g. `scan_dns`.
    #[serde(rename = "type", default)]
    pub report_type: Option<String>,
    /// Canonical file name, e.g. `2024-01-04-scan_dns-org-asn.csv`.
    #[serde(default)]
    pub file: Option<String>,
    /// Report date `YYYY-MM-DD`.
    #[serde(default)]
    pub timestamp: Option<String>,
    /// The list (subscription) name.
    #[serde(default)]
    pub report: Option<String>,
}

impl std::fmt::Display for ReportEntry {
    /// The id-free name of a report (its file name, else type and date).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.file {
            Some(file) => f.write_str(file),
            None => write!(
                f,
                "{}-{}",
                self.timestamp.as_deref().unwrap_or("?"),
                self.report_type.as_deref().unwrap_or("unknown")
            ),
        }
    }
}

/// A signed client for one key.
#[derive(Clone)]
pub struct ApiClient {
    pub http: HttpClient,
    pub base_url: String,
    pub download_url: String,
    pub api_key: Secret,
    pub secret: Secret,
}

impl std::fmt::Debug for ApiClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiClient")
            .field("base_url", &self.base_url)
            .field("download_url", &self.download_url)
            .finish_non_exhaustive()
    }
}

impl ApiClient {
    /// `{base_url}{method}`, one slash between.
    fn url(&self, method: &str) -> String {
        if self.base_url.ends_with('/') {
            format!("{}{method}", self.base_url)
        } else {
            format!("{}/{method}", self.base_url)
        }
    }

    /// A reply quoted in a message: scrubbed of the key and secret, then clipped.
    fn excerpt(&self, v: &Value) -> String {
        crate::text::clip(
            &crate::http::scrub(&v.to_string(), &[&self.api_key, &self.secret]),
            80,
        )
    }

    /// Calls an API method with `params` (plus `apikey`) and returns the JSON reply.
    pub async fn call(
        &self,
        method: &str,
        mut params: Map<String, Value>,
    ) -> Result<Value, FetchError> {
        params.insert(
            "apikey".into(),
            Value::String(self.api_key.expose().to_string()),
        );
        let body =
            serde_json::to_vec(&Value::Object(params)).map_err(|e| FetchError::data("", e))?;
        let sig = sign(self.secret.expose(), &body);
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        headers.insert(
            HeaderName::from_static("hmac2"),
            HeaderValue::from_str(&sig).expect("hex is a valid header value"),
        );
        let url = self.url(method);
        let secrets = [&self.api_key, &self.secret];
        let reply = self
            .http
            .send(Method::POST, &url, headers, Some(body), &secrets)
            .await
            .map_err(|e| match e.status() {
                Some(401 | 403) => FetchError::Auth(format!(
                    "the Reports API refused the key or signature ({e}); check \
                     sources.shadowserver.api_key and secret"
                )),
                _ => FetchError::Http(e),
            })?;
        let Fetched::Body { body, .. } = reply else {
            return Err(FetchError::Format(format!(
                "{method}: unexpected 304 reply"
            )));
        };
        if body.iter().all(u8::is_ascii_whitespace) {
            return Err(FetchError::Format(format!("{method}: the reply is empty")));
        }
        if looks_like_html(&body) {
            return Err(FetchError::Format(format!(
                "{method}: the reply is an HTML page, not JSON (wrong base_url?)"
            )));
        }
        let v: Value = serde_json::from_slice(&body)
            .map_err(|e| FetchError::data(format!("{method}: the reply is not JSON"), e))?;
        if let Some(err) = v.as_object().and_then(|o| o.get("error")) {
            let text = err
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(|| err.to_string());
            // Scrubbed before it is clipped: a key cut by the clip would not be found.
            let text: String = text.chars().filter(|c| !c.is_control()).collect();
            let text: String = crate::http::scrub(&text, &secrets)
                .chars()
                .take(300)
                .collect();
            let lower = text.to_ascii_lowercase();
            return Err(
                if lower.contains("auth") || lower.contains("key") || lower.contains("hmac") {
                    FetchError::Auth(format!("{method}: the Reports API says: {text}"))
                } else {
                    FetchError::Format(format!("{method}: the Reports API says: {text}"))
                },
            );
        }
        Ok(v)
    }

    /// `reports/list` for a date (`YYYY-MM-DD` or `YYYY-MM-DD:YYYY-MM-DD`), optionally only some
    /// report types (see [`ApiClient::list_filtered`]).
    pub async fn list(&self, date: &str, types: &[String]) -> Result<Listing, FetchError> {
        self.list_filtered(date, types, &[]).await
    }

    /// `reports/list` as Shadowserver's own clients send it: `date`, `limit`
    /// ([`LIST_LIMIT`]), `reports` (the mailing lists `reports/subscribed` names) when given,
    /// and one report `type` per request: several types are one request each (the API takes
    /// one `type`), merged. A listing that fills the limit is asked again day by day; one day
    /// that still fills it is marked [`Listing::cut`].
    pub async fn list_filtered(
        &self,
        date: &str,
        types: &[String],
        reports: &[String],
    ) -> Result<Listing, FetchError> {
        let mut out = Listing::default();
        let mut seen = std::collections::HashSet::new();
        let one_type: Vec<Option<&str>> = if types.is_empty() {
            vec![None]
        } else {
            types.iter().map(|t| Some(t.as_str())).collect()
        };
        for t in one_type {
            let mut got = self.list_once(date, t, reports).await?;
            if got.len() >= LIST_LIMIT
                && let Some(days) = days_of(date)
            {
                got.clear();
                for day in days {
                    let part = self.list_once(&day, t, reports).await?;
                    out.cut |= part.len() >= LIST_LIMIT;
                    got.extend(part);
                }
            } else {
                out.cut |= got.len() >= LIST_LIMIT;
            }
            for e in got {
                if seen.insert(e.id.clone()) {
                    out.entries.push(e);
                }
            }
        }
        Ok(out)
    }

    /// One `reports/list` request (see [`ApiClient::list_filtered`]).
    async fn list_once(
        &self,
        date: &str,
        report_type: Option<&str>,
        reports: &[String],
    ) -> Result<Vec<ReportEntry>, FetchError> {
        let mut p = Map::new();
        p.insert("date".into(), Value::String(date.to_string()));
        p.insert("limit".into(), Value::from(LIST_LIMIT));
        if !reports.is_empty() {
            p.insert(
                "reports".into(),
                Value::Array(reports.iter().cloned().map(Value::String).collect()),
            );
        }
        if let Some(t) = report_type {
            p.insert("type".into(), Value::String(t.to_string()));
        }
        let v = self.call("reports/list", p).await?;
        match v {
            Value::Array(items) => {
                let mut out = Vec::with_capacity(items.len());
                for (i, item) in items.into_iter().enumerate() {
                    let e: ReportEntry = serde_json::from_value(item).map_err(|e| {
                        FetchError::data(format!("reports/list entry {}", i + 1), e)
                    })?;
                    out.push(e);
                }
                Ok(out)
            }
            Value::Object(o) if o.is_empty() => Ok(Vec::new()),
            other => Err(FetchError::Format(format!(
                "reports/list: expected a list, got {}",
                self.excerpt(&other)
            ))),
        }
    }

    /// Downloads one report's CSV. Empty and HTML bodies are errors; the id never shows.
    pub async fn download(&self, entry: &ReportEntry) -> Result<bytes::Bytes, FetchError> {
        let id = Secret::new(entry.id.clone());
        let url = if self.download_url.ends_with('/') {
            format!("{}{}", self.download_url, entry.id)
        } else {
            format!("{}/{}", self.download_url, entry.id)
        };
        let secrets = [&id, &self.api_key, &self.secret];
        let reply = self
            .http
            .get(&url, HeaderMap::new(), None, &secrets)
            .await
            .map_err(|e| FetchError::data(format!("downloading report {entry} failed"), e))?;
        let Fetched::Body { body, .. } = reply else {
            return Err(FetchError::Format(format!(
                "downloading report {entry}: unexpected 304 reply"
            )));
        };
        if body.iter().all(u8::is_ascii_whitespace) {
            return Err(FetchError::Format(format!(
                "downloading report {entry}: the body is empty"
            )));
        }
        if looks_like_html(&body) {
            return Err(FetchError::Format(format!(
                "downloading report {entry}: got an HTML page instead of CSV (expired link?)"
            )));
        }
        Ok(body)
    }

    /// [`ApiClient::download`] into `file` (in the data folder) instead of memory, with no
    /// size cap: a report may be larger than memory. The same checks (empty, HTML page); the
    /// file is rewound. Returns what was written, and whether its end was announced.
    pub async fn download_to_file(
        &self,
        entry: &ReportEntry,
        file: &mut std::fs::File,
    ) -> Result<crate::http::Downloaded, FetchError> {
        use std::io::{Read, Seek};
        let id = Secret::new(entry.id.clone());
        let url = if self.download_url.ends_with('/') {
            format!("{}{}", self.download_url, entry.id)
        } else {
            format!("{}/{}", self.download_url, entry.id)
        };
        let secrets = [&id, &self.api_key, &self.secret];
        let got = self
            .http
            .get_to_file(&url, &secrets, file)
            .await
            .map_err(|e| FetchError::data(format!("downloading report {entry} failed"), e))?;
        let Some(got) = got else {
            return Err(FetchError::Format(format!(
                "downloading report {entry}: unexpected 304 reply"
            )));
        };
        let n = got.bytes;
        let io = |e: std::io::Error| {
            FetchError::data(format!("downloading report {entry}: temporary file"), e)
        };
        file.rewind().map_err(io)?;
        let mut head = vec![0u8; 4096.min(n as usize)];
        file.read_exact(&mut head).map_err(io)?;
        file.rewind().map_err(io)?;
        if n as usize <= head.len() && head.iter().all(u8::is_ascii_whitespace) {
            return Err(FetchError::Format(format!(
                "downloading report {entry}: the body is empty"
            )));
        }
        if looks_like_html(&head) {
            return Err(FetchError::Format(format!(
                "downloading report {entry}: got an HTML page instead of CSV (expired link?)"
            )));
        }
        Ok(got)
    }

    /// `test/ping`: the server time when key and signature are accepted.
    pub async fn ping(&self) -> Result<String, FetchError> {
        let v = self.call("test/ping", Map::new()).await?;
        match v.get("pong") {
            Some(p) => Ok(p
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(|| p.to_string())),
            None => Err(FetchError::Format(format!(
                "test/ping: no `pong` in the reply: {}",
                self.excerpt(&v)
            ))),
        }
    }

    /// `key/info`: the key's status, access and quota (the key itself is dropped).
    pub async fn key_info(&self) -> Result<Map<String, Value>, FetchError> {
        let v = self.call("key/info", Map::new()).await?;
        let obj = match v {
            Value::Array(mut a) if !a.is_empty() => a.swap_remove(0),
            o @ Value::Object(_) => o,
            other => {
                return Err(FetchError::Format(format!(
                    "key/info: unexpected reply {}",
                    self.excerpt(&other)
                )));
            }
        };
        let Value::Object(mut m) = obj else {
            return Err(FetchError::Format("key/info: unexpected reply".into()));
        };
        m.remove("apikey");
        m.remove("secret");
        Ok(m)
    }
}

/// Downloads a report a mail links to (`https://dl.shadowserver.org/<id>?<file>`) from
/// `download_url` (`{download_url}<id>`; a test server or mirror answers there). The id works
/// like a password: it is never shown (messages name the file).
pub async fn download_link(
    http: &HttpClient,
    download_url: &str,
    link: &super::import::ReportLink,
) -> Result<bytes::Bytes, LinkError> {
    let id = Secret::new(link.id.clone());
    let url = crate::http::join(download_url, &link.id);
    let file = crate::text::clip(&link.file, 120);
    let failed = |why: LinkFailure| LinkError {
        file: file.clone(),
        why,
    };
    let reply = http
        .get(&url, HeaderMap::new(), None, &[&id])
        .await
        // The link's id works like a password: scrubbed from the transport's message.
        .map_err(|e| failed(LinkFailure::Failed(id.scrub(&e.to_string()))))?;
    let Fetched::Body { body, .. } = reply else {
        return Err(failed(LinkFailure::NotModified));
    };
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(failed(LinkFailure::Empty));
    }
    if looks_like_html(&body) {
        return Err(failed(LinkFailure::Html));
    }
    Ok(body)
}

/// A linked report that could not be downloaded: its file name (never the link's id) and why.
#[derive(Debug, thiserror::Error)]
#[error("downloading the linked report {file}{why}")]
pub struct LinkError {
    pub file: String,
    pub why: LinkFailure,
}

/// Why a linked report could not be downloaded.
#[derive(Debug, thiserror::Error)]
pub enum LinkFailure {
    /// The request failed (the message is scrubbed of the link's id).
    #[error(" failed: {0}")]
    Failed(String),
    #[error(": unexpected 304 reply")]
    NotModified,
    #[error(": the body is empty")]
    Empty,
    #[error(": got an HTML page instead of CSV (expired link?)")]
    Html,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_matches_python_hmac() {
        // python3 -c "import hmac,hashlib;print(hmac.new(b'secret',b'{\"apikey\":\"k\"}',hashlib.sha256).hexdigest())"
        assert_eq!(
            sign("secret", br#"{"apikey":"k"}"#),
            "df5ba661932b1fecca2bf3b419232d80aebe139a2d1c1a806b71d21f35d3546c"
        );
    }
}
