//! Team Cymru CSIRT Assistance Program (CAP): daily files listing what Team Cymru saw of our
//! addresses (infected hosts, controllers, scanners, open resolvers, proxies, phishing, spam...).
//!
//! A file is pipe-separated, one event per line, `#` comments. Two generations exist:
//! - the older one, `# Format: report|ip|asn|timestamp|comments|asn_name`, whose comments are
//!   space-separated (`srcport 1337 mwtype Conficker destaddr 172.16.0.22`);
//! - the current one, `#category|address|asn|timestamp|optional_information|asninfo`, whose
//!   information field is `key: value;` pairs (`family: nivdort;dest_addr: 172.16.0.22;`) and
//!   whose asninfo ends with the country (`Example AS Name, AT`).
//!
//! Both are read by one parser: the fields are the same six; the information field is read as
//! `key: value` pairs when it has them, else as the older `key value` tokens, and a few
//! categories carry a bare value (phishing: the URL; bruteforce: the protocol; proxy: the proxy
//! type and port). Every category is mapped to the RSIT classification; one not known is kept
//! as type `other` with the category as identifier, and named in a warning, never dropped.
//! A row is rejected only when its address is missing or malformed; any other malformed value
//! (an ASN, a time, a host name, a destination address) is kept as written in `extra`.
//!
//! Fetching: `[sources.cymru] url` (HTTP basic auth with `username` and `password`), where
//! `{date}` stands for a day as `YYYYMMDD`: yesterday's and the day before's files are fetched,
//! each a unit. Without `{date}` the URL is one file.

pub(crate) mod config;

pub use config::CymruConfig;

use std::net::IpAddr;
use std::sync::Arc;

use async_trait::async_trait;
use base64::Engine;
use chrono::{DateTime, NaiveDateTime, Utc};
use reqwest::header::{AUTHORIZATION, HeaderMap, HeaderValue};

use super::{FetchContext, FetchError, FetchOutput, RowError, Source, SourceKind, SourceTable};
use crate::config::{Config, CronSchedule};
use crate::finding::{Classification, Finding, Severity, SourceId};
use crate::http::{self, Fetched};
use crate::secret::Secret;

impl SourceKind for CymruConfig {
    /// Builds the source: `url`, `username` and a password are required.
    fn build(&self, _cfg: &Config) -> Result<Arc<dyn Source>, FetchError> {
        let url = self.url.clone().ok_or_else(|| {
            FetchError::Config(
                "sources.cymru needs `url` (the CAP file's address, `{date}` for the day)".into(),
            )
        })?;
        let username = self
            .username
            .clone()
            .filter(|u| !u.trim().is_empty())
            .ok_or_else(|| FetchError::Config("sources.cymru needs `username`".into()))?;
        let password = super::required_secret(
            &self.password,
            &self.password_env,
            "sources.cymru.password",
            "sources.cymru needs `password` or `password_env`",
        )?;
        let probe = url.replace("{date}", "20260101");
        crate::config::check_url(&probe, !self.allow_plain_http)
            .map_err(|e| FetchError::config(format!("sources.cymru.url `{url}`"), e))?;
        // What goes on the wire is base64("user:password"); scrub that too, whatever echoes it.
        let basic = base64::engine::general_purpose::STANDARD
            .encode(format!("{username}:{}", password.expose()));
        Ok(Arc::new(CymruSource {
            url,
            secrets: vec![password, Secret::new(basic)],
            schedule: self.run_schedule(),
            resolve_after: self.resolve_window(),
        }))
    }
}

/// The CAP source.
pub struct CymruSource {
    url: String,
    /// The password, then the basic-auth token.
    secrets: Vec<Secret>,
    schedule: CronSchedule,
    resolve_after: chrono::Duration,
}

impl std::fmt::Debug for CymruSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CymruSource")
            .field("url", &self.url)
            .finish()
    }
}

impl CymruSource {
    /// The URLs of one run: yesterday's and the day before's file, or the one URL.
    fn urls(&self, now: DateTime<Utc>) -> Vec<String> {
        if !self.url.contains("{date}") {
            return vec![self.url.clone()];
        }
        (1..=2)
            .rev()
            .map(|d| {
                let day = (now - chrono::Duration::days(d))
                    .format("%Y%m%d")
                    .to_string();
                self.url.replace("{date}", &day)
            })
            .collect()
    }

    async fn fetch_one(&self, ctx: &FetchContext, url: &str) -> Result<FetchOutput, FetchError> {
        let mut headers = HeaderMap::new();
        let mut v = HeaderValue::from_str(&format!("Basic {}", self.secrets[1].expose()))
            .map_err(|_| FetchError::Config("sources.cymru: unusable credentials".into()))?;
        v.set_sensitive(true);
        headers.insert(AUTHORIZATION, v);
        let secrets: Vec<&Secret> = self.secrets.iter().collect();
        let fetched = ctx
            .http
            .get(url, headers, None, &secrets)
            .await
            .map_err(|e| match e.status() {
                Some(s @ (401 | 403)) => FetchError::Auth(format!(
                    "{url}: HTTP {s}: Team Cymru refused the CAP account: check \
                     sources.cymru.username and password"
                )),
                _ => FetchError::Http(e),
            })?;
        let Fetched::Body { body, .. } = fetched else {
            return Err(FetchError::Format(format!(
                "{url}: answered 304 Not Modified to an unconditional request"
            )));
        };
        if body.iter().all(u8::is_ascii_whitespace) {
            return Err(FetchError::Http(http::HttpError::Empty {
                url: url.to_string(),
            }));
        }
        if http::looks_like_html(&body) {
            return Err(FetchError::Http(http::HttpError::Html {
                url: url.to_string(),
            }));
        }
        super::check_complete_lines(&body, false).map_err(|e| FetchError::unusable(url, e))?;
        let p = parse(&body, url);
        for c in &p.unknown_categories {
            tracing::warn!(source = SourceId::Cymru.name(), category = %crate::text::Clean(c), "unknown CAP category kept as `other`");
        }
        Ok(FetchOutput {
            findings: p.findings,
            fetched: p.rows,
            rejected: p.rejected,
            warnings: p.warnings,
            ..Default::default()
        })
    }
}

#[async_trait]
impl Source for CymruSource {
    fn name(&self) -> &str {
        SourceId::Cymru.name()
    }
    fn schedule(&self) -> CronSchedule {
        self.schedule.clone()
    }
    fn resolve_after(&self) -> chrono::Duration {
        self.resolve_after
    }
    fn secrets(&self) -> Vec<&Secret> {
        self.secrets.iter().collect()
    }

    async fn fetch(&self, ctx: &FetchContext) -> Result<FetchOutput, FetchError> {
        let urls = self.urls(ctx.now);
        let mut out = FetchOutput {
            complete: true,
            ..Default::default()
        };
        let single = urls.len() == 1;
        for url in urls {
            match self.fetch_one(ctx, &url).await {
                // Each day is stored at once (findings and counts): a later day's failure
                // cannot lose it.
                Ok(unit) => ctx.commit(unit).await?,
                Err(e) if single => return Err(e),
                Err(e) => out.fail_unit(url, &e),
            }
        }
        Ok(out)
    }
}

/// What one CAP file gave.
#[derive(Debug, Default)]
pub struct Parsed {
    pub findings: Vec<Finding>,
    /// Data lines read.
    pub rows: usize,
    pub rejected: Vec<RowError>,
    pub warnings: Vec<RowError>,
    /// Categories this parser does not know (kept as `other`), each once.
    pub unknown_categories: Vec<String>,
}

/// How a category is classified: type, identifier, severity.
fn category(c: &str) -> Option<(&'static str, &'static str, Severity)> {
    Some(match c {
        "bot" | "bots" => ("infected-system", "bot", Severity::High),
        "conficker" => ("infected-system", "conficker", Severity::High),
        "controller" => ("c2-server", "controller", Severity::High),
        "bruteforce" => ("brute-force", "bruteforce", Severity::Medium),
        "scanner" | "scanners" => ("scanner", "scanner", Severity::Medium),
        "darknet" => ("scanner", "darknet", Severity::Medium),
        "honeypot" => ("scanner", "honeypot", Severity::Medium),
        "phishing" => ("phishing", "phishing", Severity::High),
        "proxy" => ("vulnerable-system", "open-proxy", Severity::Medium),
        "openresolver" | "openresolvers" => {
            ("vulnerable-system", "dns-open-resolver", Severity::Medium)
        }
        "spam" => ("spam", "spam", Severity::Medium),
        "malwareurl" => ("malware-distribution", "malwareurl", Severity::High),
        "defacement" => ("system-compromise", "defacement", Severity::High),
        _ => return None,
    })
}

/// The older format's comment keywords (`srcport 1337 mwtype Conficker destaddr 172.16.0.22`).
const OLD_KEYS: &[&str] = &["srcport", "mwtype", "destaddr", "dstaddr"];

/// Parses one CAP file (either generation). `location` names it in `raw` and messages.
pub fn parse(body: &[u8], location: &str) -> Parsed {
    let text = String::from_utf8_lossy(body);
    let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
    let mut p = Parsed::default();
    for (i, line) in text.lines().enumerate() {
        let n = i + 1;
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        p.rows += 1;
        let loc = format!("{location} line {n}");
        match row(line, &loc, &mut p) {
            Ok(f) => p.findings.push(f),
            Err(message) => p.rejected.push(RowError {
                location: loc,
                message: message.to_string(),
            }),
        }
    }
    p
}

/// The six fields of a CAP line (the information field may hold a `|`).
struct Fields<'l> {
    category: &'l str,
    address: &'l str,
    asn: &'l str,
    time: &'l str,
    info: &'l str,
    asinfo: &'l str,
}

/// Splits a line into its fields; `None` when it has no address field. A line with fewer than
/// six fields is read with the missing ones empty (a warning).
fn split_fields<'l>(line: &'l str, warn: &mut impl FnMut(String)) -> Option<Fields<'l>> {
    let parts: Vec<&str> = line.split('|').collect();
    if parts.len() < 2 {
        return None;
    }
    // A `|` inside the information field: the first four and the last field are fixed.
    let (info, asinfo) = match parts.len() {
        0..=5 => {
            warn(format!(
                "has {} fields, expected 6 (the missing ones are empty)",
                parts.len()
            ));
            (parts.get(4).copied().unwrap_or(""), "")
        }
        6 => (parts[4], parts[5]),
        n => (
            &line[field_start(line, 4)..line.len() - parts[n - 1].len() - 1],
            parts[n - 1],
        ),
    };
    let field = |i: usize| parts.get(i).map_or("", |s| s.trim());
    Some(Fields {
        category: field(0),
        address: field(1),
        asn: field(2),
        time: field(3),
        info: info.trim(),
        asinfo: asinfo.trim(),
    })
}

/// What the information field of a line says, beyond what the category says.
#[derive(Default)]
struct Info {
    extra: Vec<(String, String)>,
    port: Option<u16>,
    protocol: Option<String>,
    domain: Option<String>,
    url: Option<String>,
    malware: Option<String>,
    /// The attacked protocol of a brute-force line (`ssh;`): the identifier.
    identifier: Option<String>,
}

/// Why a CAP line is rejected: its finding has no identity.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
enum Rejected {
    #[error("not a CAP line (`category|address|asn|timestamp|information|asninfo`)")]
    NotCap,
    #[error("`{0}` is not an IP address")]
    NotIp(String),
}

fn row(line: &str, loc: &str, p: &mut Parsed) -> Result<Finding, Rejected> {
    let mut warnings = Vec::new();
    let mut warn = |m: String| warnings.push(m);
    let fields = split_fields(line, &mut warn).ok_or(Rejected::NotCap)?;
    let ip: IpAddr = fields
        .address
        .parse()
        .map_err(|_| Rejected::NotIp(crate::text::clip(fields.address, 80)))?;
    let cat = fields.category.to_ascii_lowercase();
    let (kind, identifier, severity) = match category(&cat) {
        Some((k, i, s)) => (k, i.to_string(), s),
        None => {
            if !p.unknown_categories.contains(&cat) {
                p.unknown_categories.push(cat.clone());
            }
            warn(format!(
                "unknown category `{}` (kept as `other`)",
                crate::text::clip(fields.category, 40)
            ));
            ("other", cat.clone(), Severity::Medium)
        }
    };
    let info = read_information(&cat, fields.info, &mut warn);
    let identifier = match (&info.malware, &info.identifier) {
        (Some(m), _) => m.to_lowercase(),
        (None, Some(i)) => i.clone(),
        (None, None) => identifier,
    };
    let mut f = Finding::new(
        SourceId::Cymru.name(),
        &cat,
        Classification::new("", kind, &identifier),
        severity,
    );
    f.ip = Some(ip);
    f.port = info.port;
    f.protocol = info.protocol;
    f.domain = info.domain;
    f.url = info.url;
    set_asn(&mut f, fields.asn, &mut warn);
    set_time(&mut f, fields.time, &mut warn);
    set_asinfo(&mut f, fields.asinfo);
    f.set_extra("category", fields.category.to_string());
    if let Some(m) = info.malware {
        f.set_extra("malware", m);
    }
    for (k, v) in info.extra {
        f.set_extra(&k, v);
    }
    if !fields.info.is_empty() {
        f.set_extra("information", fields.info.to_string());
    }
    f.identity = identity(&f, fields.time);
    f.raw = Some(loc.to_string());
    p.warnings
        .extend(warnings.into_iter().map(|message| RowError {
            location: loc.to_string(),
            message,
        }));
    Ok(f)
}

/// What makes a CAP line its own event beyond its category (`feed`), address (`ip`), the
/// classification, the proxy port and the host name: the time it was seen, the destination
/// address and port, and an IP protocol that is not tcp, udp or icmp (those are `protocol`).
/// Each as `name=value`; an empty one adds nothing.
fn identity(f: &Finding, time_text: &str) -> Vec<String> {
    let time = match f.time_source {
        Some(t) => t.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
        None => time_text.to_string(),
    };
    let text = |k: &str| f.extra.get(k).and_then(|v| v.as_str()).unwrap_or("");
    [
        ("time", time.as_str()),
        ("dst_ip", text("dst_ip")),
        ("dst_port", text("dst_port")),
        ("ip_protocol", text("ip_protocol")),
    ]
    .into_iter()
    .filter(|(_, v)| !v.is_empty())
    .map(|(k, v)| format!("{k}={v}"))
    .collect()
}

/// Reads the information field: `key: value;` pairs, the older `key value` tokens, or the bare
/// value some categories carry (phishing: the URL; bruteforce: the protocol; proxy: its type
/// and port).
fn read_information(cat: &str, info: &str, warn: &mut impl FnMut(String)) -> Info {
    let mut out = Info::default();
    let pairs = if info.contains(':') && !matches!(cat, "phishing" | "malwareurl") {
        info_pairs(info)
    } else {
        Vec::new()
    };
    if matches!(cat, "phishing" | "malwareurl" | "defacement") {
        let u = info.trim_end_matches(';').trim();
        if !u.is_empty() {
            out.url = Some(u.split_whitespace().next().unwrap_or(u).to_string());
        }
    } else if cat == "bruteforce" && !info.is_empty() && pairs.is_empty() {
        // `ssh;` / `ssh`: the attacked protocol.
        let proto = info.trim_end_matches(';').trim().to_ascii_lowercase();
        out.extra.push(("application".into(), proto.clone()));
        out.identifier = Some(proto);
    } else if !pairs.is_empty() || info.contains(';') {
        let list = if pairs.is_empty() {
            info_pairs(info)
        } else {
            pairs
        };
        for (k, v) in list {
            match (k.as_str(), v) {
                ("", bare) => bare_value(cat, bare, &mut out.extra, &mut out.port),
                (_, v) => apply(&key_name(&k), v, &mut out, warn),
            }
        }
    } else if info.split_whitespace().any(|t| OLD_KEYS.contains(&t)) {
        for (k, v) in old_tokens(info) {
            let k = match k.as_str() {
                "mwtype" => "family",
                "destaddr" | "dstaddr" => "dest_addr",
                "srcport" => "src_port",
                other => other,
            };
            apply(k, &v, &mut out, warn);
        }
    } else if !info.is_empty() {
        bare_value(cat, info, &mut out.extra, &mut out.port);
    }
    out
}

/// The ASN field: a number (`AS` allowed); `0` names no network and is kept as written; else
/// kept as written with a warning.
fn set_asn(f: &mut Finding, asn: &str, warn: &mut impl FnMut(String)) {
    match asn {
        "" => {}
        "0" => f.set_extra("asn", "0"),
        a => match a.trim_start_matches("AS").parse::<u32>() {
            Ok(n) if n > 0 => f.asn = Some(n),
            _ => {
                warn(format!(
                    "bad ASN `{}` (kept in extra)",
                    crate::text::clip(a, 40)
                ));
                f.set_extra("asn", a.to_string());
            }
        },
    }
}

/// The time field (UTC, `GMT`/`UTC` suffix allowed); a malformed one is kept as written.
fn set_time(f: &mut Finding, time: &str, warn: &mut impl FnMut(String)) {
    if time.is_empty() {
        return;
    }
    let bare = time.trim_end_matches("GMT").trim_end_matches("UTC").trim();
    match NaiveDateTime::parse_from_str(bare, "%Y-%m-%d %H:%M:%S") {
        Ok(t) => f.time_source = Some(t.and_utc()),
        Err(_) => {
            warn(format!(
                "bad time `{}` (kept in extra)",
                crate::text::clip(time, 40)
            ));
            f.set_extra("time", time.to_string());
        }
    }
}

/// The AS information: the current format ends the AS name with `, CC`.
fn set_asinfo(f: &mut Finding, asinfo: &str) {
    if asinfo.is_empty() {
        return;
    }
    match asinfo.rsplit_once(", ") {
        Some((name, cc)) if cc.len() == 2 && cc.bytes().all(|b| b.is_ascii_uppercase()) => {
            f.set_extra("as_name", name.to_string());
            f.set_extra("cc", cc.to_string());
        }
        _ => f.set_extra("as_name", asinfo.to_string()),
    }
}

/// Byte offset where field `n` (from 0) of a `|` line starts.
fn field_start(line: &str, n: usize) -> usize {
    line.match_indices('|')
        .nth(n - 1)
        .map_or(line.len(), |(i, _)| i + 1)
}

/// `key: value;` pairs; a piece without a colon has an empty key (a bare value).
fn info_pairs(info: &str) -> Vec<(String, &str)> {
    info.split(';')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|piece| match piece.split_once(':') {
            // `http://...` and bare `socks4-61039` are values, not keys.
            Some((k, v)) if !k.contains(char::is_whitespace) && !v.starts_with("//") => {
                (k.trim().to_ascii_lowercase(), v.trim())
            }
            _ => (String::new(), piece),
        })
        .collect()
}

/// The older `key value` tokens; words after a value that are not a key form `comment`.
fn old_tokens(info: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    let mut key: Option<&str> = None;
    let mut val: Vec<&str> = Vec::new();
    let mut comment: Vec<&str> = Vec::new();
    let flush = |key: Option<&str>, val: &mut Vec<&str>, out: &mut Vec<(String, String)>| {
        if let Some(k) = key
            && !val.is_empty()
        {
            out.push((k.to_string(), val.join(" ")));
        }
        val.clear();
    };
    for t in info.split_whitespace() {
        if OLD_KEYS.contains(&t) {
            flush(key, &mut val, &mut out);
            key = Some(t);
        } else if matches!(key, Some("destaddr" | "dstaddr" | "srcport")) && val.len() == 1 {
            // `destaddr 172.16.0.22 Some Botnet`: one value, the rest is a comment.
            comment.push(t);
        } else if key.is_some() {
            val.push(t);
        } else {
            comment.push(t);
        }
    }
    flush(key, &mut val, &mut out);
    if !comment.is_empty() {
        out.push(("comment".into(), comment.join(" ")));
    }
    out
}

/// A key as an `extra` name: lower case, letters, digits and `_`.
fn key_name(k: &str) -> String {
    k.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect()
}

/// A value without a key: the proxy type and port (`socks4-61039`, `HTTP CONNECT (8080)`),
/// else kept as `comment`.
fn bare_value(cat: &str, v: &str, extra: &mut Vec<(String, String)>, port: &mut Option<u16>) {
    if cat == "proxy" {
        proxy_type(v, extra, port);
        return;
    }
    extra.push(("comment".into(), v.to_string()));
}

/// `http-34320`, `socks4-61039`, `httpconnect-51915`, `HTTP CONNECT (8080)`, `socks4`.
fn proxy_type(v: &str, extra: &mut Vec<(String, String)>, port: &mut Option<u16>) {
    let v = v.trim();
    let (kind, p) = if let Some((k, p)) = v.rsplit_once('-') {
        (k, p.parse::<u16>().ok())
    } else if let Some((k, rest)) = v.split_once('(') {
        (
            k.trim(),
            rest.trim_end_matches(')').trim().parse::<u16>().ok(),
        )
    } else {
        (v, None)
    };
    extra.push(("proxy_type".into(), kind.to_ascii_lowercase()));
    if p.is_some() {
        *port = p;
    } else if kind.len() != v.len() {
        extra.push(("proxy".into(), v.to_string()));
    }
}

/// One `key: value` of the information field.
fn apply(k: &str, v: &str, out: &mut Info, warn: &mut impl FnMut(String)) {
    let extra = &mut out.extra;
    match k {
        "family" => out.malware = Some(v.to_string()),
        "dest_addr" | "destaddr" | "dstaddr" => {
            if v.parse::<IpAddr>().is_err() {
                warn(format!(
                    "bad destination address `{}` (kept in extra)",
                    crate::text::clip(v, 60)
                ));
            }
            extra.push(("dst_ip".into(), v.to_string()));
        }
        "dest_port"
        | "destination_port_numbers"
        | "ports_scanned"
        | "honeypot_port"
        | "darknet_port" => extra.push(("dst_port".into(), v.to_string())),
        // The client port of an event is ephemeral: kept, not part of the identity.
        "port" | "srcport" | "src_port" => extra.push(("src_port".into(), v.to_string())),
        "protocol" => match v {
            "6" => out.protocol = Some("tcp".into()),
            "17" => out.protocol = Some("udp".into()),
            "1" => out.protocol = Some("icmp".into()),
            other => extra.push(("ip_protocol".into(), other.to_string())),
        },
        "hostname" => {
            let ok = !v.is_empty()
                && v.len() <= 253
                && v.contains('.')
                && v.parse::<IpAddr>().is_err()
                && v.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-' || b == b'_');
            if ok {
                out.domain = Some(v.to_ascii_lowercase());
            } else if v.parse::<IpAddr>().is_err() {
                warn(format!(
                    "bad host name `{}` (kept in extra)",
                    crate::text::clip(v, 60)
                ));
            }
            extra.push(("hostname".into(), v.to_string()));
        }
        "proxy_type" => proxy_type(v, extra, &mut out.port),
        other => extra.push((other.to_string(), v.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_generations() {
        let old = b"# Format: report|ip|asn|timestamp|comments|asn_name\n\
bots|192.0.2.7|64496|2017-10-31 10:00:05|srcport 1337 mwtype Conficker destaddr 172.16.0.22 Some Botnet|Example AS Name\n\
proxy|192.0.2.8|64496|2017-10-31 10:00:03|HTTP CONNECT (8080)|Example AS Name\n";
        let p = parse(old, "f");
        assert_eq!((p.rows, p.findings.len(), p.rejected.len()), (2, 2, 0));
        let f = &p.findings[0];
        assert_eq!(f.classification.kind, "infected-system");
        assert_eq!(f.classification.identifier, "conficker");
        assert_eq!(f.extra["dst_ip"], "172.16.0.22");
        assert_eq!(f.extra["src_port"], "1337");
        assert_eq!(f.extra["comment"], "Some Botnet");
        assert_eq!(p.findings[1].port, Some(8080));
        let new = b"#category|address|asn|timestamp|optional_information|asninfo\n\
bot|192.0.2.7|64496|2019-03-25 03:44:22|family: nivdort;dest_addr: 172.16.0.22; dest_port: 80;protocol: 6;|Example AS Name, AT\n\
weird|192.0.2.9|0|2019-03-25 03:44:22||Example AS Name, AT\n\
bot|not-an-ip|64496|2019-03-25 03:44:22||X, AT\n";
        let p = parse(new, "f");
        assert_eq!((p.rows, p.findings.len(), p.rejected.len()), (3, 2, 1));
        let f = &p.findings[0];
        assert_eq!(f.classification.identifier, "nivdort");
        assert_eq!(f.protocol.as_deref(), Some("tcp"));
        assert_eq!(f.extra["dst_port"], "80");
        assert_eq!(f.extra["cc"], "AT");
        assert_eq!(f.extra["as_name"], "Example AS Name");
        assert_eq!(p.findings[1].classification.kind, "other");
        assert_eq!(p.findings[1].classification.taxonomy, "other");
        assert_eq!(p.unknown_categories, vec!["weird".to_string()]);
        assert!(p.warnings.iter().any(|w| w.message.contains("weird")));
    }
}
