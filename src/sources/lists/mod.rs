//! Declarative list feeds (abuse.ch, Spamhaus, ...): one TOML file per feed under `feeds/`,
//! built into the binary, plus any files in the user's `[feeds] dir`. Every feed downloads a
//! public list, keeps the entries inside our scope, and reports them as findings whose `source`
//! is the feed name.
//!
//! - [`definition`]: the feed-file schema;
//! - [`parse`]: bodies (CSV, lines, JSON, JSON lines) → records, malformed rows counted;
//! - [`matching`]: records → in-scope findings;
//! - this file: the registry of feeds, the `[sources.NAME]` table and the fetch (conditional
//!   GET, keys, HTML / error-body / empty-body checks).

pub(crate) mod config;
pub(crate) mod definition;
pub(crate) mod matching;
pub mod parse;
pub(crate) mod time;

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use serde::{Deserialize, Serialize};

use super::{FetchContext, FetchError, FetchOutput, LastGood, Source};
use crate::config::{Config, CronSchedule, HumanDuration};
use crate::http::{self, Fetched, HttpError, Validators};
use crate::indicators;
use crate::secret::{self, Secret};
pub use definition::{FeedDef, FeedFileError};
pub use matching::{Processed, process_body};

/// Names of the list feeds shipped with outwatch.
pub const BUILTIN: &[&str] = &[
    "feodotracker",
    "urlhaus",
    "threatfox",
    "sslbl",
    "spamhaus_drop",
    "spamhaus_asndrop",
    "urlhaus_asn",
];

/// The shipped feed files, embedded so the binary works from any folder.
const BUILTIN_FILES: &[(&str, &str)] = &[
    (
        "feodotracker",
        include_str!("../../../feeds/feodotracker.toml"),
    ),
    ("urlhaus", include_str!("../../../feeds/urlhaus.toml")),
    ("threatfox", include_str!("../../../feeds/threatfox.toml")),
    ("sslbl", include_str!("../../../feeds/sslbl.toml")),
    (
        "spamhaus_drop",
        include_str!("../../../feeds/spamhaus_drop.toml"),
    ),
    (
        "spamhaus_asndrop",
        include_str!("../../../feeds/spamhaus_asndrop.toml"),
    ),
    (
        "urlhaus_asn",
        include_str!("../../../feeds/urlhaus_asn.toml"),
    ),
];

/// `[sources.<list feed>]`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ListSourceConfig {
    /// Public feeds are on without a table; `enabled = false` switches one off.
    #[serde(default = "crate::sources::default_true")]
    pub enabled: bool,
    /// Overrides the feed file's schedule.
    pub schedule: Option<CronSchedule>,
    /// Replaces scheme, host and port of the feed's URLs, keeping their paths.
    pub base_url: Option<String>,
    /// Replaces the feed's URL whole.
    pub url: Option<String>,
    /// The feed's key (abuse.ch Auth-Key), inline.
    pub auth_key: Option<Secret>,
    /// ... or from this environment variable.
    pub auth_key_env: Option<String>,
    /// Overrides how long a finding stays open after its entry left the list.
    pub resolve_after: Option<HumanDuration>,
    /// Allow `http://` URLs to a host that is not loopback (the key then travels in clear text).
    #[serde(default)]
    pub allow_plain_http: bool,
}

/// The built-in feed definitions (parsed from the embedded files).
pub fn builtin_defs() -> Vec<FeedDef> {
    BUILTIN_FILES
        .iter()
        .map(|(name, text)| {
            FeedDef::parse(text, &format!("feeds/{name}.toml"))
                .unwrap_or_else(|e| panic!("built-in feed file is valid: {e}"))
        })
        .collect()
}

/// A feed file's stem and its definition, or the error naming the file.
pub type LoadedFile = (String, Result<FeedDef, FeedFileError>);

/// Reads every `*.toml` in `dir` (sorted by file name). Each entry is the file's stem and its
/// parsed definition or the error naming the file.
pub fn load_dir(dir: &Path) -> Result<Vec<LoadedFile>, FeedFileError> {
    let rd = std::fs::read_dir(dir).map_err(|source| FeedFileError::Dir {
        dir: dir.to_path_buf(),
        source,
    })?;
    let mut paths: Vec<_> = rd
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml") && p.is_file())
        .collect();
    paths.sort();
    Ok(paths
        .into_iter()
        .map(|p| {
            let stem = p
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            let def = std::fs::read_to_string(&p)
                .map_err(|source| FeedFileError::Read {
                    path: p.clone(),
                    source,
                })
                .and_then(|t| FeedDef::parse(&t, &p.display().to_string()));
            (stem, def)
        })
        .collect())
}

/// Every feed this config can use: built-in ones, replaced or extended by `[feeds] dir` files
/// (a user file with a built-in name overrides it). Broken user files come back as errors
/// under their file stem.
pub fn all_defs(cfg: &Config) -> Vec<(String, Result<Arc<FeedDef>, FeedFileError>)> {
    let mut m: BTreeMap<String, Result<Arc<FeedDef>, FeedFileError>> = builtin_defs()
        .into_iter()
        .map(|d| (d.name.clone(), Ok(Arc::new(d))))
        .collect();
    if let Some(dir) = &cfg.feeds.dir {
        let dir = cfg.resolve_path(dir);
        match load_dir(&dir) {
            Ok(files) => {
                for (stem, def) in files {
                    match def {
                        Ok(d) => {
                            m.insert(d.name.clone(), Ok(Arc::new(d)));
                        }
                        Err(e) => {
                            m.insert(stem, Err(e));
                        }
                    }
                }
            }
            Err(e) => {
                m.insert("feeds".into(), Err(e));
            }
        }
    }
    // Built-ins first, in their documented order, then user feeds by name.
    let mut out: Vec<_> = Vec::new();
    for b in BUILTIN {
        if let Some(v) = m.remove(*b) {
            out.push((b.to_string(), v));
        }
    }
    out.extend(m);
    out
}

/// Every list feed name this config can use (built-in and from `[feeds] dir`).
pub fn known_feed_names(cfg: &Config) -> Vec<String> {
    all_defs(cfg).into_iter().map(|(n, _)| n).collect()
}

/// Checks the user's feed files (called by config validation): the first broken file's error.
pub fn validate(cfg: &Config) -> Result<(), FeedFileError> {
    for (_, d) in all_defs(cfg) {
        d?;
    }
    Ok(())
}

/// The enabled list feeds: built-in public feeds are on unless `enabled = false`.
pub fn build_enabled(cfg: &Config) -> Vec<super::BuiltSource> {
    let mut out: Vec<super::BuiltSource> = Vec::new();
    for (name, def) in all_defs(cfg) {
        let table = cfg.sources.get::<ListSourceConfig>(&name);
        let def = match def {
            Ok(d) => d,
            Err(e) => {
                out.push((name, Err(FetchError::config("", e))));
                continue;
            }
        };
        let enabled = match table {
            Some(t) => t.enabled,
            None => def.enabled_by_default,
        };
        if !enabled {
            continue;
        }
        let asns: Vec<u32> = cfg.organisation.asns.iter().map(|a| a.0).collect();
        // A per-ASN feed on by default has nothing to ask without ASNs; one switched on by its
        // table says so (ListSource::with_asns).
        if table.is_none() && asns.is_empty() && def.per_asn() {
            continue;
        }
        let built =
            ListSource::with_asns(def, table, &asns).map(|s| Arc::new(s) as Arc<dyn Source>);
        out.push((name, built));
    }
    out
}

/// The names of the list feeds this config enables (whose indicator sets `flows` should use).
pub fn enabled_names(cfg: &Config) -> Vec<String> {
    build_enabled(cfg).into_iter().map(|(n, _)| n).collect()
}

/// One list feed, ready to fetch.
pub struct ListSource {
    def: Arc<FeedDef>,
    /// URLs to fetch; the key, when in a path, is already filled in (never shown: see `shown`).
    urls: Vec<String>,
    key: Option<Secret>,
    schedule: CronSchedule,
    resolve_after: HumanDuration,
}

impl std::fmt::Debug for ListSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ListSource")
            .field("name", &self.def.name)
            .field("urls", &self.shown_urls())
            .field("key", &self.key)
            .finish()
    }
}

impl ListSource {
    /// Builds a feed from its definition and its optional `[sources.NAME]` table.
    pub fn new(def: Arc<FeedDef>, table: Option<&ListSourceConfig>) -> Result<Self, FetchError> {
        Self::with_asns(def, table, &[])
    }

    /// Builds a feed whose URLs may name `{asn}`: each such URL becomes one URL (one unit) per
    /// ASN in `asns` (the number without "AS"). A per-ASN feed without ASNs is a config error.
    pub fn with_asns(
        def: Arc<FeedDef>,
        table: Option<&ListSourceConfig>,
        asns: &[u32],
    ) -> Result<Self, FetchError> {
        let name = def.name.clone();
        let key = match table {
            Some(t) => secret::resolve(
                &t.auth_key,
                &t.auth_key_env,
                &format!("sources.{name}.auth_key"),
            )
            .map_err(|e| FetchError::config("", e))?,
            None => None,
        };
        let key = match key {
            Some(k) => Some(k),
            // The feed's own variable (`ABUSECH_AUTH_KEY`), checked like the table's key.
            None => match def.auth.env.as_deref() {
                Some(var) => match std::env::var(var) {
                    Ok(v) if !v.trim().is_empty() => {
                        let k = Secret::new(v.trim());
                        secret::check_len(&format!("sources.{name}.auth_key"), &k, Some(var))
                            .map_err(|e| FetchError::config("", e))?;
                        Some(k)
                    }
                    _ => None,
                },
                None => None,
            },
        };
        let templates = if key.is_some() && !def.keyed_url.is_empty() {
            &def.keyed_url
        } else {
            &def.url
        };
        let fill = |u: &str| match &key {
            Some(k) => u.replace("{auth_key}", k.expose()),
            None => u.to_string(),
        };
        // `{asn}`: one URL per configured ASN, in the order of the config (before any
        // rebasing, which would percent-encode the braces).
        let per_asn = |list: &[String]| -> Result<Vec<String>, FetchError> {
            if list.iter().any(|u| u.contains("{asn}")) && asns.is_empty() {
                return Err(FetchError::Config(format!(
                    "sources.{name}: the feed asks one URL per ASN (`{{asn}}`) but \
                     [organisation] asns is empty"
                )));
            }
            Ok(expand_asns(list, asns))
        };
        let mut urls: Vec<String> = per_asn(templates)?.iter().map(|u| fill(u)).collect();
        if let Some(t) = table {
            if let Some(u) = &t.url {
                reqwest::Url::parse(&u.replace("{asn}", "64496")).map_err(|e| {
                    FetchError::config(format!("sources.{name}.url `{u}` is not a URL"), e)
                })?;
                urls = per_asn(std::slice::from_ref(u))?
                    .iter()
                    .map(|u| fill(u))
                    .collect();
            } else if let Some(b) = &t.base_url {
                urls = urls
                    .iter()
                    .map(|u| http::rebase(u, b))
                    .collect::<Result<_, _>>()
                    .map_err(|e| {
                        let e = e.to_string();
                        let e = key.as_ref().map(|k| k.scrub(&e)).unwrap_or(e);
                        FetchError::Config(format!("sources.{name}.base_url: {e}"))
                    })?;
            }
        }
        // The final URLs (a feed file's own, or the table's): http(s) only, and https or
        // loopback when they carry the key.
        let keyed = key.is_some() && !table.is_some_and(|t| t.allow_plain_http);
        for u in &urls {
            crate::config::check_url(u, keyed).map_err(|e| {
                let shown = key.as_ref().map_or_else(|| u.clone(), |k| k.scrub(u));
                FetchError::config(format!("sources.{name}: feed URL `{shown}`"), e)
            })?;
        }
        Ok(ListSource {
            schedule: table
                .and_then(|t| t.schedule.clone())
                .unwrap_or_else(|| def.schedule.clone()),
            resolve_after: table
                .and_then(|t| t.resolve_after)
                .unwrap_or(def.resolve_after),
            def,
            urls,
            key,
        })
    }

    /// The feed definition.
    pub fn def(&self) -> &FeedDef {
        &self.def
    }

    /// The URLs as they may be shown (key redacted).
    pub fn shown_urls(&self) -> Vec<String> {
        self.urls.iter().map(|u| self.scrub(u)).collect()
    }

    fn scrub(&self, text: &str) -> String {
        match &self.key {
            Some(k) => k.scrub(text),
            None => text.to_string(),
        }
    }

    fn state_key(&self) -> String {
        format!("lists/{}/validators", self.def.name)
    }

    /// The state key of the last good size of each of the feed's URLs (see
    /// [`super::judge_size`]).
    fn sizes_key(&self) -> String {
        format!("lists/{}/sizes", self.def.name)
    }

    fn key_hint(&self) -> String {
        let n = &self.def.name;
        let mut s = format!("set sources.{n}.auth_key or sources.{n}.auth_key_env");
        if let Some(v) = &self.def.auth.env {
            s.push_str(&format!(" (or ${v})"));
        }
        if let Some(h) = &self.def.auth.help {
            s.push_str(&format!("; {h}"));
        }
        s
    }

    fn key_name(&self) -> &str {
        self.def.auth.key_name.as_deref().unwrap_or("access key")
    }

    /// Maps a 401/403 to an error that says which setting to fix.
    fn auth_error(&self, e: HttpError) -> FetchError {
        match e.status() {
            Some(s @ (401 | 403)) => {
                let url = match &e {
                    HttpError::Status { url, .. } => url.clone(),
                    _ => String::new(),
                };
                let msg = if self.key.is_none() {
                    format!(
                        "{url}: HTTP {s}: {} needs an {}: {}",
                        self.def.name,
                        self.key_name(),
                        self.key_hint()
                    )
                } else {
                    format!(
                        "{url}: HTTP {s}: the {} of {} was refused: check sources.{}.auth_key",
                        self.key_name(),
                        self.def.name,
                        self.def.name
                    )
                };
                FetchError::Auth(self.scrub(&msg))
            }
            _ => FetchError::Http(e),
        }
    }

    async fn get(
        &self,
        ctx: &FetchContext,
        url: &str,
        validators: Option<&Validators>,
    ) -> Result<Fetched, FetchError> {
        let mut headers = HeaderMap::new();
        if let (Some(k), Some(h)) = (&self.key, &self.def.auth.header) {
            let name = HeaderName::from_bytes(h.as_bytes())
                .map_err(|_| FetchError::Config(format!("feed {}: bad auth header", h)))?;
            let mut v = HeaderValue::from_str(k.expose()).map_err(|_| {
                FetchError::Config(format!(
                    "sources.{}.auth_key contains characters a header cannot carry",
                    self.def.name
                ))
            })?;
            v.set_sensitive(true);
            headers.insert(name, v);
        }
        let secrets: Vec<&Secret> = self.key.iter().collect();
        ctx.http
            .get(url, headers, validators, &secrets)
            .await
            .map_err(|e| self.auth_error(e))
    }
}

/// Each URL naming `{asn}` once per ASN (the number without "AS"); other URLs as they are.
fn expand_asns(urls: &[String], asns: &[u32]) -> Vec<String> {
    let mut out = Vec::new();
    for u in urls {
        if u.contains("{asn}") {
            out.extend(asns.iter().map(|a| u.replace("{asn}", &a.to_string())));
        } else {
            out.push(u.clone());
        }
    }
    out
}

/// The unpacked body: a `.zip` export gives its first file, a gzip file its content.
fn unpack(body: &[u8], cap: u64, shown: &str) -> Result<Vec<u8>, FetchError> {
    let too_large = || {
        FetchError::Http(HttpError::TooLarge {
            url: shown.to_string(),
            limit_mib: cap / (1024 * 1024),
        })
    };
    if body.starts_with(b"PK\x03\x04") {
        let mut z = zip::ZipArchive::new(std::io::Cursor::new(body))
            .map_err(|e| FetchError::data(format!("{shown}: broken zip archive"), e))?;
        if z.is_empty() {
            return Err(FetchError::Format(format!("{shown}: empty zip archive")));
        }
        let f = z
            .by_index(0)
            .map_err(|e| FetchError::data(format!("{shown}: broken zip archive"), e))?;
        let mut out = Vec::new();
        f.take(cap + 1)
            .read_to_end(&mut out)
            .map_err(|e| FetchError::data(format!("{shown}: broken zip archive"), e))?;
        if out.len() as u64 > cap {
            return Err(too_large());
        }
        return Ok(out);
    }
    if body.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(body)
            .take(cap + 1)
            .read_to_end(&mut out)
            .map_err(|e| FetchError::data(format!("{shown}: broken gzip file"), e))?;
        if out.len() as u64 > cap {
            return Err(too_large());
        }
        return Ok(out);
    }
    Ok(body.to_vec())
}

/// Whether a line-based body visibly ends whole without a final line end: its last line is the
/// feed's trailer (`# END 28 entries`, which Feodo Tracker sends without a newline; its count
/// is checked by the parser), or, in JSON lines, a complete JSON object. JSON documents end
/// whole when they parse.
fn ends_whole(def: &FeedDef, body: &[u8]) -> bool {
    let last = body
        .rsplit(|b| *b == b'\n')
        .map(<[u8]>::trim_ascii)
        .find(|l| !l.is_empty())
        .unwrap_or_default();
    let trailer = match &def.format {
        definition::FormatDef::Json(_) => return true,
        definition::FormatDef::Jsonl(_) => {
            return serde_json::from_slice::<serde_json::Value>(last).is_ok();
        }
        // A required trailer is checked by the parser, with a more precise message.
        definition::FormatDef::Csv(c) if c.trailer_required => return true,
        definition::FormatDef::Lines(l) if l.trailer_required => return true,
        definition::FormatDef::Csv(c) => c.trailer.as_deref(),
        definition::FormatDef::Lines(l) => l.trailer.as_deref(),
    };
    trailer.is_some_and(|t| {
        let pre = t.split_once("{n}").map_or(t, |(p, _)| p);
        !pre.is_empty() && last.starts_with(pre.as_bytes())
    })
}

/// Refuses bodies that are not a list: empty, HTML pages, JSON error objects, bodies cut off
/// mid-line.
fn check_body(def: &FeedDef, body: &[u8], shown: &str) -> Result<(), FetchError> {
    if body.iter().all(|b| b.is_ascii_whitespace()) {
        return Err(FetchError::Http(HttpError::Empty {
            url: shown.to_string(),
        }));
    }
    if http::looks_like_html(body) {
        return Err(FetchError::Http(HttpError::Html {
            url: shown.to_string(),
        }));
    }
    let first = body.iter().find(|b| !b.is_ascii_whitespace());
    let json_feed = matches!(
        def.format,
        definition::FormatDef::Json(_) | definition::FormatDef::Jsonl(_)
    );
    if first == Some(&b'{')
        && !json_feed
        && body.len() < 64 * 1024
        && let Ok(v) = serde_json::from_slice::<serde_json::Value>(body)
        && let Some(e) = parse::json_error(&v)
    {
        return Err(FetchError::Format(format!(
            "{shown}: the provider answered with an error: {e}"
        )));
    }
    if !ends_whole(def, body) {
        super::check_complete_lines(body, matches!(def.format, definition::FormatDef::Csv(_)))
            .map_err(|cause| FetchError::unusable(shown, cause))?;
    }
    Ok(())
}

#[async_trait]
impl Source for ListSource {
    fn name(&self) -> &str {
        &self.def.name
    }

    fn secrets(&self) -> Vec<&Secret> {
        self.key.iter().collect()
    }

    fn schedule(&self) -> CronSchedule {
        self.schedule.clone()
    }

    fn resolve_after(&self) -> chrono::Duration {
        self.resolve_after.chrono()
    }

    async fn fetch(&self, ctx: &FetchContext) -> Result<FetchOutput, FetchError> {
        if self.def.auth.needs_key && self.key.is_none() {
            return Err(FetchError::Auth(format!(
                "{} needs an {}: {}",
                self.def.name,
                self.key_name(),
                self.key_hint()
            )));
        }
        let state_key = self.state_key();
        let remembered: BTreeMap<String, Validators> =
            ctx.state.get_json(&state_key).await?.unwrap_or_default();
        // Each URL is a unit. With one URL its failure is the fetch's; with several, a part
        // that fails is named and the others are kept (and nothing resolves).
        let single = self.urls.len() == 1;
        // Conditional GET of every URL; a list is unchanged only when all its parts are.
        let mut bodies = Vec::with_capacity(self.urls.len());
        let mut out = FetchOutput {
            complete: true,
            ..Default::default()
        };
        for url in &self.urls {
            let shown = self.scrub(url);
            match self.get(ctx, url, remembered.get(&shown)).await {
                Ok(r) => bodies.push((url, shown, r)),
                Err(e) if single => return Err(e),
                Err(e) => out.fail_unit(shown, &e),
            }
        }
        if out.failed.is_empty()
            && bodies
                .iter()
                .all(|(_, _, r)| matches!(r, Fetched::NotModified))
        {
            return Ok(FetchOutput {
                not_modified: true,
                ..Default::default()
            });
        }
        // Validators of parts that failed stay as they were, so they are fetched whole again.
        let mut validators = remembered;
        let sizes_key = self.sizes_key();
        let mut sizes: BTreeMap<String, LastGood> =
            ctx.state.get_json(&sizes_key).await?.unwrap_or_default();
        for (url, shown, r) in bodies {
            let size_before = sizes.get(&shown).copied();
            match self.read_part(ctx, url, &shown, r, &mut sizes).await {
                Ok((part, v, kept)) => {
                    validators.remove(&shown);
                    if let Some(k) = kept {
                        self.keep_set(k, &mut out);
                    }
                    if v.etag.is_some() || v.last_modified.is_some() {
                        validators.insert(shown, v);
                    }
                    out.fetched += part.fetched;
                    out.rejected.extend(part.rejected);
                    out.warnings.extend(part.warnings);
                    out.findings.extend(part.findings);
                }
                // A refused size is remembered, so the unit fails with its state kept.
                Err(e) if single && sizes.get(&shown).copied() == size_before => return Err(e),
                Err(e) => {
                    validators.remove(&shown);
                    out.fail_unit(shown, &e);
                }
            }
        }
        sizes.retain(|u, _| self.shown_urls().contains(u));
        out.state.push((
            sizes_key,
            (!sizes.is_empty())
                .then(|| serde_json::to_vec(&sizes))
                .transpose()
                .map_err(|e| FetchError::data("", e))?,
        ));
        validators.retain(|u, _| self.shown_urls().contains(u));
        // Sets of URLs this feed no longer fetches (a changed `url`, an ASN gone) go.
        let sets = indicators::state_key(&self.def.name, "");
        let current: Vec<String> = self
            .shown_urls()
            .iter()
            .map(|u| indicators::state_key(&self.def.name, u))
            .collect();
        for k in ctx.state.keys(&sets).await? {
            if !current.contains(&k) {
                out.state.push((k, None));
            }
        }
        let state = if validators.is_empty() {
            None
        } else {
            Some(serde_json::to_vec(&validators).map_err(|e| FetchError::data("", e))?)
        };
        out.state.push((state_key, state));
        Ok(out)
    }
}

impl ListSource {
    /// Puts the indicator set of a part that was read whole into the unit's state (replacing
    /// the one kept before in the same batch); a cut at the cap becomes a notice.
    fn keep_set(&self, k: indicators::KeptSet, out: &mut FetchOutput) {
        let i = &k.info;
        if i.cut > 0 {
            out.notices.push(format!(
                "{}: the indicator set of {} keeps the first {} of {} addresses and networks \
                 (at most {} per list); {} left out",
                self.def.name,
                i.unit,
                i.entries,
                i.entries + i.cut,
                indicators::MAX_ENTRIES,
                i.cut
            ));
        }
        tracing::debug!(
            source = %self.def.name,
            entries = i.entries,
            bytes = i.bytes,
            "indicator set kept"
        );
        out.state.push((
            indicators::state_key(&self.def.name, &i.unit),
            Some(k.bytes),
        ));
    }

    /// Reads one part (URL) of the list: its body checked (not HTML, not an error object, not
    /// empty, not cut off) and parsed into in-scope findings, with its new validators and its
    /// indicator set (for lists whose entries can name addresses). A body whose end nothing
    /// announced (no length, no trailer count) and that has under half the entries of the
    /// last good one is refused ([`super::judge_size`]); `sizes` gets the size to keep.
    async fn read_part(
        &self,
        ctx: &FetchContext,
        url: &str,
        shown: &str,
        r: Fetched,
        sizes: &mut BTreeMap<String, LastGood>,
    ) -> Result<(Processed, Validators, Option<indicators::KeptSet>), FetchError> {
        // Part of a multi-URL list unchanged while another changed: read it again whole,
        // so the list is complete and nothing resolves by mistake.
        let r = match r {
            Fetched::NotModified => self.get(ctx, url, None).await?,
            b => b,
        };
        let Fetched::Body {
            body,
            validators: v,
            framed,
            ..
        } = r
        else {
            return Err(FetchError::Format(format!(
                "{shown}: answered 304 Not Modified to an unconditional request"
            )));
        };
        let data = unpack(&body, ctx.http.max_body(), shown)?;
        check_body(&self.def, &data, shown)?;
        let def = self.def.clone();
        let scope = ctx.scope.clone();
        let name = self.def.name.clone();
        let loc = shown.to_string();
        let now = ctx.now;
        // The set is kept as state, outside the pipeline's masking of findings.
        let scrubber = secret::Scrubber::new(&self.secrets());
        let (processed, kept) = tokio::task::spawn_blocking(move || {
            let mut p = process_body(&def, &name, &data, &loc, &scope)?;
            let mut set = std::mem::take(&mut p.indicators);
            set.map_threats(|t| scrubber.mask(t));
            let kept = def.lists_addresses().then(|| set.finish(&name, &loc, now));
            Ok::<_, parse::BodyError>((p, kept))
        })
        .await
        .map_err(|e| FetchError::data("parser task failed", e))?
        .map_err(|cause| FetchError::unusable(shown, cause))?;
        let last = sizes.get(shown).copied();
        let unchecked = !framed && !processed.counted;
        match super::judge_size(last, processed.fetched as u64, unchecked) {
            Ok(keep) => {
                sizes.insert(shown.to_string(), keep);
            }
            Err(shrunk) => {
                sizes.insert(shown.to_string(), shrunk.keep);
                return Err(FetchError::Format(format!("{shown}: {}", shrunk.message)));
            }
        }
        for n in &processed.notices {
            let n = self.scrub(n);
            tracing::warn!(source = %self.def.name, notice = %crate::text::Clean(&n), "the list says it is retired");
        }
        Ok((processed, v, kept))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_files_parse_and_match_names() {
        let defs = builtin_defs();
        let names: Vec<&str> = defs.iter().map(|d| d.name.as_str()).collect();
        assert_eq!(names, BUILTIN);
    }

    #[test]
    fn a_set_cut_at_the_cap_is_kept_and_named_in_a_notice() {
        let def = Arc::new(
            builtin_defs()
                .into_iter()
                .find(|d| d.name == "feodotracker")
                .unwrap(),
        );
        let s = ListSource::new(def, None).unwrap();
        let mut b = indicators::SetBuilder::with_cap(2);
        for a in ["192.0.2.1", "192.0.2.2", "192.0.2.3"] {
            b.push(
                a.parse::<std::net::IpAddr>().unwrap().into(),
                None,
                None,
                None,
            );
        }
        let k = b.finish(
            "feodotracker",
            "https://x.example/l.csv",
            chrono::Utc::now(),
        );
        let mut out = FetchOutput::default();
        s.keep_set(k, &mut out);
        assert_eq!(out.state.len(), 1);
        assert_eq!(
            out.state[0].0,
            "indicators/feodotracker/https://x.example/l.csv"
        );
        assert_eq!(out.notices.len(), 1);
        assert!(
            out.notices[0].contains("keeps the first 2 of 3")
                && out.notices[0].contains("1 left out"),
            "{}",
            out.notices[0]
        );
    }

    #[test]
    fn base_url_keeps_paths_and_key_fills_keyed_url() {
        let def = Arc::new(
            builtin_defs()
                .into_iter()
                .find(|d| d.name == "urlhaus")
                .unwrap(),
        );
        let t: ListSourceConfig = toml::from_str(
            "base_url = \"http://127.0.0.1:9\"\nauth_key = \"sekrit-key-0123456789\"\n",
        )
        .unwrap();
        let s = ListSource::new(def.clone(), Some(&t)).unwrap();
        assert_eq!(
            s.shown_urls(),
            vec!["http://127.0.0.1:9/v2/files/exports/***redacted***/recent.csv".to_string()]
        );
        assert!(!format!("{s:?}").contains("sekrit"));
        let s = ListSource::new(def, None).unwrap();
        assert_eq!(
            s.shown_urls(),
            vec!["https://urlhaus.abuse.ch/downloads/csv_recent/".to_string()]
        );
    }
}
