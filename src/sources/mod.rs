//! Sources: each file here speaks one provider's protocol and format and turns its data into
//! [`Finding`]s. Invariants:
//! - a source knows nothing about the store: it reads its remembered state through
//!   [`FetchContext::state`] and returns new state in [`FetchOutput::state`]; the pipeline writes
//!   findings and state in one atomic batch;
//! - a malformed record is counted in [`FetchOutput::rejected`], never a panic or an abort; a
//!   record is rejected only when the identity of its finding (the address, network, domain or
//!   mail address it is about) is missing or malformed; any other malformed value is kept in
//!   `extra` and counted in [`FetchOutput::warnings`];
//! - a fetch works in units (a report, a domain, a list URL, a day): a unit that succeeds is
//!   handed to [`FetchContext::commit`] (stored at once, findings and state in one batch); a
//!   unit that fails is named in [`FetchOutput::failed`] and the others go on;
//! - a fetch that fails as a whole returns an error, and changes nothing it had not committed;
//! - no secret reaches a log line, an error or a stored field.

pub mod cymru;
pub mod hibp;
pub mod lists;
pub(crate) mod registration;
pub(crate) mod registry;
pub mod safebrowsing;
pub mod shadowserver;
pub mod snds;

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::ops::ControlFlow;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::config::CronSchedule;
use crate::finding::{Finding, FindingView};
use crate::http::{HttpClient, HttpError};
use crate::scope::ScopeMatcher;
use crate::secret::Secret;
pub use crate::store::{ReadError, UnitError};
use crate::store::{Store, StoreError, bridge};
pub use registration::{Registration, SourceKind, SourceTable, table};
pub use registry::{Registry, enabled_sources};

/// Why a fetch (or a source's set-up) failed. Messages never contain secrets. An underlying
/// error is kept as the `#[source]`, not flattened into the text: show a `FetchError` with
/// [`crate::text::chain`] (`context: cause`), never with its `Display` alone.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// A configuration that cannot be used, said in words (no underlying error).
    #[error("configuration: {0}")]
    Config(String),
    /// A configuration that cannot be used, for `cause`; `what` says where (a key, a URL),
    /// without the cause's text, and is empty when the cause says it all.
    #[error("configuration{}", with_colon(.what))]
    BadConfig {
        what: String,
        #[source]
        cause: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("authentication failed: {0}")]
    Auth(String),
    #[error(transparent)]
    Http(#[from] HttpError),
    /// Data that cannot be used, said in words (no underlying error).
    #[error("unexpected data: {0}")]
    Format(String),
    /// Data that cannot be used (or state that cannot be written), for `cause`; `what` says
    /// which, without the cause's text, and is empty when the cause says it all.
    #[error("unexpected data{}", with_colon(.what))]
    BadData {
        what: String,
        #[source]
        cause: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A body that cannot be used as a whole, where the unit is named beside it.
    #[error("unexpected data")]
    Data(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// A unit's body that cannot be used as a whole (cut off, a changed layout, the
    /// provider's refusal); `unit` names it (a key-free URL, a page, a report).
    #[error("{unit}")]
    Unusable {
        unit: String,
        #[source]
        cause: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
}

/// A record that could not be turned into a finding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RowError {
    /// `file:line`, `report-type:line`, URL and line... never a secret.
    pub location: String,
    pub message: String,
}

/// Where a source's reader hands what it reads, row by row: good rows as sealed finding views
/// (borrowed from the record being read: nothing is allocated for a row the sink only
/// encodes), malformed rows, and malformed values of rows that were kept. Every source's
/// streamed reading goes through this one sink type: the pipeline backs it with the store's
/// writer (its apply path, `pipeline/apply.rs`), tests and small units with a [`VecSink`].
pub trait RowSink {
    /// A good row, as a sealed view. An error means the store could not take it: the reader
    /// stops and passes it on.
    fn finding(&mut self, f: &FindingView<'_>) -> Result<(), StoreError>;
    /// An owned finding, kept whole (a restore hands findings with their life cycle and
    /// earlier observations, which a view does not carry).
    fn owned(&mut self, f: &Finding) -> Result<(), StoreError> {
        self.finding(&f.view())
    }
    /// A malformed row (never stops the reader).
    fn rejected(&mut self, e: RowError);
    /// A malformed value of a row that was kept (the row went to [`RowSink::finding`] first;
    /// the value is in its `extra`). Ignored unless the sink counts them.
    fn warning(&mut self, _w: RowError) {}
}

/// A sink that keeps everything in memory (tests; small units).
#[derive(Debug, Default)]
pub struct VecSink {
    pub findings: Vec<Finding>,
    pub rejected: Vec<RowError>,
    pub warnings: Vec<RowError>,
}

impl RowSink for VecSink {
    fn finding(&mut self, f: &FindingView<'_>) -> Result<(), StoreError> {
        self.findings.push(f.to_finding());
        Ok(())
    }
    fn owned(&mut self, f: &Finding) -> Result<(), StoreError> {
        self.findings.push(f.clone());
        Ok(())
    }
    fn rejected(&mut self, e: RowError) {
        self.rejected.push(e);
    }
    fn warning(&mut self, w: RowError) {
        self.warnings.push(w);
    }
}

/// Read-only view of the state a source remembers between runs (ETags, ingested report ids),
/// read through the store's async bridge ([`crate::store::bridge`]).
#[derive(Clone)]
pub struct StateView {
    store: Arc<dyn Store>,
}

impl StateView {
    pub fn new(store: Arc<dyn Store>) -> Self {
        StateView { store }
    }

    pub async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, FetchError> {
        let key = key.to_string();
        Ok(bridge::blocking(&self.store, move |s| s.state_get(&key)).await?)
    }

    /// The state keys starting with `prefix` (e.g. a list's kept indicator sets).
    pub async fn keys(&self, prefix: &str) -> Result<Vec<String>, FetchError> {
        let prefix = prefix.to_string();
        let scan = bridge::blocking(&self.store, move |s| s.state_scan(&prefix)).await?;
        Ok(scan.into_iter().map(|(k, _)| k).collect())
    }

    pub async fn get_json<T: serde::de::DeserializeOwned + Send + 'static>(
        &self,
        key: &str,
    ) -> Result<Option<T>, FetchError> {
        let key = key.to_string();
        Ok(bridge::blocking(&self.store, move |s| crate::store::state_get_json(s, &key)).await?)
    }

    /// Every http(s) URL that an open finding of another source reports on our domains or our
    /// addresses, sorted, each once, at most `max`. Read-only: what Safe Browsing checks
    /// beyond the home pages. The store query [`Store::reported_urls`] hands every URL of an
    /// open finding of another source; [`reported_url_is_ours`] says which count, and whether
    /// one comes with an address of ours.
    pub async fn reported_urls(
        &self,
        except_source: &str,
        scope: Arc<ScopeMatcher>,
        max: usize,
    ) -> Result<Vec<ReportedUrl>, FetchError> {
        let except = except_source.to_string();
        let urls = bridge::blocking(&self.store, move |store| {
            let mut out: BTreeMap<String, Option<IpAddr>> = BTreeMap::new();
            store.reported_urls(&except, &mut |r| {
                let u = r.url.trim();
                let Some(on) = reported_url_is_ours(u, r.finding, &scope) else {
                    return Ok(ControlFlow::Continue(()));
                };
                let ip = match on {
                    Ours::Host => None,
                    Ours::ServedBy(ip) => Some(ip),
                };
                if let Some(known) = out.get_mut(u) {
                    // One address per URL, the same whatever the order of the store.
                    *known = match (*known, ip) {
                        (Some(a), Some(b)) => Some(a.min(b)),
                        (k, _) => k,
                    };
                } else if out.len() < max
                    // Bounded: the first `max` in sorted order are kept, whatever the store holds.
                    || out.last_key_value().is_some_and(|(l, _)| u < l.as_str())
                {
                    out.insert(u.to_string(), ip);
                    if out.len() > max {
                        out.pop_last();
                    }
                }
                Ok(ControlFlow::Continue(()))
            })?;
            Ok(out)
        })
        .await?;
        Ok(urls
            .into_iter()
            .map(|(url, ip)| ReportedUrl { url, ip })
            .collect())
    }
}

/// A URL another source reported on one of our domains or addresses ([`StateView::reported_urls`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportedUrl {
    pub url: String,
    /// Our address the URL was reported on, when its host is no name or address of ours.
    pub ip: Option<IpAddr>,
}

/// How a reported URL is ours ([`reported_url_is_ours`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ours {
    /// Its host is one of our domains or addresses.
    Host,
    /// It is the finding's `url`, the finding's `ip` is this address of ours, and the finding
    /// says that address serves the URL ([`serves_its_url`]): a customer's shop hosted in our
    /// network under a name of its own. Safe Browsing's finding carries the address.
    ServedBy(IpAddr),
}

/// Whether URL `u` (trimmed), reported by finding `f`, is one Safe Browsing should check for
/// us, and how it is ours: an http(s) URL whose host is one of our addresses or lies under one
/// of our domains (the finding's `url`, and `extra` fields named like `*url*`, e.g.
/// Shadowserver's `http_url`), or the finding's own `url` served by our address.
pub fn reported_url_is_ours(u: &str, f: &Finding, scope: &ScopeMatcher) -> Option<Ours> {
    let lower = u.get(..8).unwrap_or(u).to_ascii_lowercase();
    if !(lower.starts_with("http://") || lower.starts_with("https://")) {
        return None;
    }
    let host_ours = match lists::matching::url_host(u) {
        Some((host, _)) => match host.parse::<IpAddr>() {
            Ok(a) => scope.contains_ip(a),
            Err(_) => scope.match_domain(host).is_some(),
        },
        None => false,
    };
    if host_ours {
        return Some(Ours::Host);
    }
    if f.url.as_deref().map(str::trim) != Some(u) || !serves_its_url(&f.classification.kind) {
        return None;
    }
    f.ip.filter(|ip| scope.contains_ip(*ip)).map(Ours::ServedBy)
}

/// Whether a finding of this classification type says that its address serves its URL (the
/// site is hosted there), rather than that the address asked for it (an infected host calling
/// a sinkholed C2 URL, a scanner probing a path).
pub fn serves_its_url(kind: &str) -> bool {
    matches!(
        kind,
        "phishing"
            | "malware-distribution"
            | "system-compromise"
            | "application-compromise"
            | "c2-server"
            | "unauthorised-information-modification"
    )
}

/// Why a streamed unit could not be read to its end (a cut download, a damaged report): the
/// unit failed and nothing of it was stored; the run goes on.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct Unreadable(pub String);

/// Reads the rows of a [`StreamedUnit`] into a sink; returns the rows read, or why it stopped:
/// [`ReadError::Unreadable`] when the unit could not be read to its end, [`ReadError::Store`]
/// when the sink failed.
pub type RowReader = Box<dyn FnOnce(&mut dyn RowSink) -> Result<usize, ReadError> + Send>;

/// A unit too large to hold as findings (a Shadowserver report of a million rows): its rows
/// are read by `read` (on a blocking thread) straight into the store, in bounded memory.
/// Nothing is stored unless `read` succeeds; then its findings and `state` are stored as one
/// unit (see [`crate::store::Store::ingest_unit`]), so a unit cut short is not remembered and
/// is fetched again (a repeated row counts once: same source time).
pub struct StreamedUnit {
    pub read: RowReader,
    pub state: Vec<(String, Option<Vec<u8>>)>,
}

/// Where finished units go: the pipeline stores each at once, as one atomic unit.
#[async_trait]
pub trait UnitSink: Send + Sync {
    /// Stores the findings and state of one unit; fails only when the store does.
    async fn store_unit(&self, unit: FetchOutput) -> Result<(), FetchError>;

    /// Stores a [`StreamedUnit`]. The outer error is the store's; the inner one says the unit
    /// could not be read (nothing of it was stored).
    async fn store_streamed(
        &self,
        unit: StreamedUnit,
    ) -> Result<Result<(), Unreadable>, FetchError>;

    /// A folder for temporary files of a fetch (downloads spilled to disk).
    fn spill_dir(&self) -> std::path::PathBuf;
}

/// Everything a source may use while fetching.
#[derive(Clone)]
pub struct FetchContext {
    pub http: HttpClient,
    pub scope: Arc<ScopeMatcher>,
    pub state: StateView,
    /// The observation time of this run.
    pub now: DateTime<Utc>,
    /// Where [`FetchContext::commit`] hands units.
    pub units: Arc<dyn UnitSink>,
}

impl FetchContext {
    /// Stores one finished unit now (its findings, counts and state in one atomic batch), so
    /// that a later unit's failure cannot lose it. `not_modified`, `complete` and `failed` of
    /// `unit` are ignored: they belong to the output the fetch returns.
    pub async fn commit(&self, unit: FetchOutput) -> Result<(), FetchError> {
        self.units.store_unit(unit).await
    }

    /// Stores a unit read as a stream (see [`StreamedUnit`]): `Ok(Err(reason))` when it could
    /// not be read (a failed unit, nothing stored), `Err` when the store failed.
    pub async fn commit_streamed(
        &self,
        unit: StreamedUnit,
    ) -> Result<Result<(), Unreadable>, FetchError> {
        self.units.store_streamed(unit).await
    }
}

/// What one fetch produced.
#[derive(Debug, Default)]
pub struct FetchOutput {
    pub findings: Vec<Finding>,
    /// Records read from the source (rows, list entries, API objects).
    pub fetched: usize,
    pub rejected: Vec<RowError>,
    /// Malformed values that did not cost their record its finding (a secondary address, a
    /// port, a time): the value is kept in the finding's `extra`.
    pub warnings: Vec<RowError>,
    /// State to write together with the findings (`None` deletes).
    pub state: Vec<(String, Option<Vec<u8>>)>,
    /// The source said nothing changed (HTTP 304): nothing to ingest, nothing to resolve.
    pub not_modified: bool,
    /// The source re-read its complete data, so findings it no longer reports may resolve
    /// (never when a unit failed).
    pub complete: bool,
    /// Units that failed while the others went on; each is retried on the next run.
    pub failed: Vec<UnitError>,
    /// Things the owner should know that are no failure (a domain the account may not
    /// search): kept in the run log and shown by `status`, without changing the source's health.
    pub notices: Vec<String>,
}

impl FetchOutput {
    /// Notes a failed unit (its name and the error, which never holds a secret).
    /// (The pipeline logs it, scrubbed of the source's secrets.)
    pub fn fail_unit(&mut self, unit: impl Into<String>, error: &FetchError) {
        self.failed.push(UnitError {
            unit: unit.into(),
            error: crate::text::chain(error),
        });
    }
}

/// A source of findings.
#[async_trait]
pub trait Source: Send + Sync {
    /// The configured name (`shadowserver`, `feodotracker`, ...).
    fn name(&self) -> &str;
    /// When the daemon runs it.
    fn schedule(&self) -> CronSchedule;
    /// How long a finding stays open after its source stops reporting it.
    fn resolve_after(&self) -> chrono::Duration;
    /// Fetches and normalises, unit by unit (see [`FetchContext::commit`]). Must not write
    /// anywhere else.
    async fn fetch(&self, ctx: &FetchContext) -> Result<FetchOutput, FetchError>;
    /// Every credential the source sends. The pipeline removes their values from whatever a
    /// fetch says (its error, rejected rows) before it is logged, stored or shown, whatever the
    /// provider echoed back.
    fn secrets(&self) -> Vec<&Secret> {
        Vec::new()
    }
}

/// A source by name, or why it could not be built.
pub type BuiltSource = (String, Result<Arc<dyn Source>, FetchError>);

/// Parses a default schedule literal.
pub fn schedule(expr: &str) -> CronSchedule {
    expr.parse().expect("built-in schedule is valid")
}

/// The configured `resolve_after`, else the source's default.
pub fn window_or(
    configured: Option<crate::config::HumanDuration>,
    default: chrono::Duration,
) -> chrono::Duration {
    configured.map_or(default, |d| d.chrono())
}

pub(crate) fn default_true() -> bool {
    true
}

/// What tells whether a line-based body ends whole, gathered chunk by chunk.
#[derive(Default)]
struct Ending {
    quotes: usize,
    len: u64,
    last: u8,
    nonblank: bool,
    /// Whether the line being read has a character other than white space.
    line_nonblank: bool,
    /// Lines ended (outside quotes, for CSV) that were not blank: the records, header included.
    lines: u64,
}

impl Ending {
    fn feed(&mut self, b: &[u8], csv: bool) {
        let Some(&last) = b.last() else { return };
        for &c in b {
            match c {
                b'"' => {
                    self.quotes += 1;
                    self.line_nonblank = true;
                }
                b'\n' if !csv || self.quotes.is_multiple_of(2) => {
                    self.lines += u64::from(self.line_nonblank);
                    self.line_nonblank = false;
                }
                c if !c.is_ascii_whitespace() => self.line_nonblank = true,
                _ => {}
            }
        }
        self.nonblank |= self.lines > 0 || self.line_nonblank;
        self.last = last;
        self.len += b.len() as u64;
    }

    fn verdict(&self, csv: bool) -> Result<(), Incomplete> {
        if !self.nonblank {
            return Ok(());
        }
        if self.last != b'\n' {
            return Err(Incomplete::NoLineEnd(self.len));
        }
        if csv && self.quotes % 2 == 1 {
            return Err(Incomplete::InsideQuote(self.len));
        }
        Ok(())
    }
}

/// Why a line-based body is taken as cut off in transit (or cannot be checked).
#[derive(Debug, thiserror::Error)]
pub enum Incomplete {
    #[error("the body is cut off: its last line has no line end ({0} bytes read)")]
    NoLineEnd(u64),
    #[error("the body is cut off: it ends inside a quoted field ({0} bytes read)")]
    InsideQuote(u64),
    #[error("cannot read the downloaded body back")]
    ReadBack(#[source] std::io::Error),
}

/// `: what`, or nothing when `what` is empty (the cause, chained by [`crate::text::chain`],
/// then follows as `: cause`).
fn with_colon(what: &str) -> String {
    if what.is_empty() {
        String::new()
    } else {
        format!(": {what}")
    }
}

impl FetchError {
    /// A configuration that cannot be used: `what` (where, without the cause's text), for
    /// `cause`. Shown through [`crate::text::chain`] as `configuration: what: cause`.
    pub fn config(
        what: impl Into<String>,
        cause: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        FetchError::BadConfig {
            what: what.into(),
            cause: cause.into(),
        }
    }

    /// Data that cannot be used: `what` (which, without the cause's text), for `cause`.
    /// Shown through [`crate::text::chain`] as `unexpected data: what: cause`.
    pub fn data(
        what: impl Into<String>,
        cause: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        FetchError::BadData {
            what: what.into(),
            cause: cause.into(),
        }
    }

    /// Unit `unit` cannot be used as a whole, for `cause`.
    pub fn unusable(
        unit: impl Into<String>,
        cause: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        FetchError::Unusable {
            unit: unit.into(),
            cause: cause.into(),
        }
    }
}

/// A credential a source cannot run without, given inline or by environment variable
/// ([`crate::secret::resolve`]; `name` is its config key); `missing` says what to set when
/// neither is.
pub(crate) fn required_secret(
    inline: &Option<crate::secret::Secret>,
    env: &Option<String>,
    name: &str,
    missing: &str,
) -> Result<crate::secret::Secret, FetchError> {
    crate::secret::resolve(inline, env, name)
        .map_err(|e| FetchError::config("", e))?
        .ok_or_else(|| FetchError::Config(missing.into()))
}

/// [`check_complete_lines`] of a body spilled to a file (read in chunks, then rewound).
/// Returns the body's records: its lines that are not blank, header included (for CSV, line
/// ends inside quotes do not count).
pub fn check_complete_file(file: &mut std::fs::File, csv: bool) -> Result<u64, Incomplete> {
    use std::io::{Read, Seek};
    let io = Incomplete::ReadBack;
    file.rewind().map_err(io)?;
    let mut end = Ending::default();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf).map_err(io)?;
        if n == 0 {
            break;
        }
        end.feed(&buf[..n], csv);
    }
    file.rewind().map_err(io)?;
    end.verdict(csv)?;
    Ok(end.lines)
}

/// Refuses a line-based body that may have been cut off in transit: a non-empty body whose last
/// line has no line end, or (for CSV) that ends inside a quoted field (an odd number of `"`).
/// A server that closes the connection mid-body without a `Content-Length` leaves exactly that,
/// and a half list must fail rather than look complete.
pub fn check_complete_lines(body: &[u8], csv: bool) -> Result<(), Incomplete> {
    let mut end = Ending::default();
    end.feed(body, csv);
    end.verdict(csv)
}

/// How big a unit's last good download was (its entries or rows), kept in the source's state:
/// a download that came without a stated length ([`crate::http::Fetched::Body::framed`]) and
/// without a trailer that counts its entries ends whole at any line end, so its size is the
/// one sign left that it was cut off (see [`judge_size`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct LastGood {
    /// Entries of the last download that was accepted.
    pub entries: u64,
    /// Entries of a smaller download refused once: the next one of exactly that size is
    /// taken as real (a list that really halved is accepted one run late, not never).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refused: Option<u64>,
}

/// A download refused by [`judge_size`]: why, and the state to keep instead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shrunk {
    pub message: String,
    pub keep: LastGood,
}

/// Accepts a download of `entries` entries, or refuses it as probably cut off. Only an
/// `unchecked` download is judged (no stated length, no trailer count, no self-delimiting
/// document); it is refused when it has under half the entries of the `last` good one, unless
/// the one before was refused with exactly as many. Returns the state to keep.
pub fn judge_size(
    last: Option<LastGood>,
    entries: u64,
    unchecked: bool,
) -> Result<LastGood, Shrunk> {
    let accepted = LastGood {
        entries,
        refused: None,
    };
    let Some(last) = last else {
        return Ok(accepted);
    };
    if !unchecked || entries.saturating_mul(2) >= last.entries || last.refused == Some(entries) {
        return Ok(accepted);
    }
    Err(Shrunk {
        message: format!(
            "the download has {entries} entries, under half of the {} of the last good one, and \
             its end was announced by nothing (no length, no trailer): it may be cut off, so it \
             is refused this time and the previous data stays (the same size next time is \
             taken as real)",
            last.entries
        ),
        keep: LastGood {
            entries: last.entries,
            refused: Some(entries),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::FetchError;
    use std::error::Error as _;

    /// A kept cause reads as the flattened text did (`context: cause`) and stays reachable.
    #[test]
    fn a_kept_cause_reads_as_context_then_cause() {
        type UrlParse = <reqwest::Url as std::str::FromStr>::Err;
        let parse = reqwest::Url::parse("no url").unwrap_err();
        let e = FetchError::config("sources.x.url `no url` is not a URL", parse);
        assert_eq!(
            crate::text::chain(&e),
            format!("configuration: sources.x.url `no url` is not a URL: {parse}")
        );
        assert_eq!(
            e.to_string(),
            "configuration: sources.x.url `no url` is not a URL"
        );
        assert!(e.source().unwrap().downcast_ref::<UrlParse>().is_some());
        let json = serde_json::from_slice::<serde_json::Value>(b"{").unwrap_err();
        let text = json.to_string();
        let e = FetchError::data("", json);
        assert_eq!(crate::text::chain(&e), format!("unexpected data: {text}"));
        assert_eq!(e.to_string(), "unexpected data");
    }
}
