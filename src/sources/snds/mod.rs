//! Microsoft SNDS (Smart Network Data Services), "automated data access".
//!
//! One run reads three CSV bodies, keyed by `?key=K` in the query string (scrubbed from every
//! message):
//! - `data.aspx?key=K&date=MMDDYY` for yesterday and the day before (UTC). No header, CRLF,
//!   14 columns (13 accepted: the trailing empty comment may be missing): IP, activity start,
//!   activity end (`M/D/YYYY h:mm AM/PM`), RCPT commands, DATA commands, message recipients,
//!   filter result (GREEN/YELLOW/RED), complaint rate (`< 0.1%`, `0.4%`, `1% - < 2%`), trap
//!   message start and end, trap hits, sample HELO, sample MAIL FROM, comments.
//!   A row is a finding when the filter result is YELLOW or RED, there are trap hits, or the
//!   complaint rate is at least 0.1 %. One finding per IP: when both days list an IP, the later
//!   day is reported. RED is `high`, anything else `medium`.
//! - `ipStatus.aspx?key=K`: blocked ranges (first IP, last IP, blocked, reason). One finding per
//!   range (`high`), with `network` = the range's exact CIDR when it is one, else the smallest
//!   prefix covering it, and `first_ip`/`last_ip` in `extra`.
//!
//! SNDS answers an expired or wrong key with an HTML page and status 200: that is an error, not
//! an empty report. Activity times carry no time zone; they are taken as UTC.

pub(crate) mod config;

pub use config::{DEFAULT_BASE_URL, SndsConfig};

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, NaiveDateTime, Utc};
use ipnet::IpNet;
use reqwest::Method;
use reqwest::header::HeaderMap;
use serde::{Deserialize, Serialize};

use super::{FetchContext, FetchError, FetchOutput, RowError, Source, SourceKind, SourceTable};
use crate::config::{Config, CronSchedule};
use crate::finding::{Classification, Finding, Severity, SourceId};
use crate::http::{self, Fetched, HttpError};
use crate::secret::Secret;

impl SourceKind for SndsConfig {
    /// Builds the source; the key is required.
    fn build(&self, _cfg: &Config) -> Result<Arc<dyn Source>, FetchError> {
        let key = super::required_secret(
            &self.key,
            &self.key_env,
            "sources.snds.key",
            "sources.snds needs `key` or `key_env` (the key from the SNDS \"Automated Data \
             Access\" page)",
        )?;
        let mut secrets = vec![key.clone()];
        let encoded = encode_query_value(key.expose());
        if encoded != key.expose() {
            secrets.push(Secret::new(encoded));
        }
        Ok(Arc::new(SndsSource {
            base_url: self
                .base_url
                .clone()
                .unwrap_or_else(|| DEFAULT_BASE_URL.to_string()),
            key,
            secrets,
            schedule: self.run_schedule(),
            resolve_after: self.resolve_window(),
        }))
    }
}

fn encode_query_value(v: &str) -> String {
    reqwest::Url::parse_with_params("http://x/", [("k", v)])
        .ok()
        .and_then(|u| u.query().map(|q| q.trim_start_matches("k=").to_string()))
        .unwrap_or_else(|| v.to_string())
}

/// The SNDS source.
pub struct SndsSource {
    base_url: String,
    key: Secret,
    secrets: Vec<Secret>,
    schedule: CronSchedule,
    resolve_after: chrono::Duration,
}

impl std::fmt::Debug for SndsSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SndsSource")
            .field("base_url", &self.base_url)
            .finish()
    }
}

/// A complaint rate band in percent: `< 0.1%` is `[0, 0.1)`, `0.4%` is `[0.4, 0.4]`,
/// `1% - < 2%` is `[1, 2)`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ComplaintBand {
    pub min: f64,
    pub max: f64,
}

/// Parses SNDS's complaint-rate text; `None` when it says nothing readable.
pub fn complaint_band(s: &str) -> Option<ComplaintBand> {
    let t = s.trim();
    if t.is_empty() {
        return None;
    }
    let num = |x: &str| -> Option<f64> {
        x.trim()
            .trim_start_matches(['<', '>', '=', ' '])
            .trim_end_matches('%')
            .trim()
            .parse::<f64>()
            .ok()
            .filter(|v| v.is_finite() && *v >= 0.0)
    };
    if let Some((a, b)) = t.split_once('-') {
        let (lo, hi) = (num(a)?, num(b)?);
        return Some(ComplaintBand { min: lo, max: hi });
    }
    let v = num(t)?;
    if t.starts_with('<') {
        Some(ComplaintBand { min: 0.0, max: v })
    } else if t.starts_with('>') {
        Some(ComplaintBand {
            min: v,
            max: f64::INFINITY,
        })
    } else {
        Some(ComplaintBand { min: v, max: v })
    }
}

/// Parses an SNDS time (`M/D/YYYY h:mm AM/PM`), taken as UTC.
pub fn parse_snds_time(s: &str) -> Option<DateTime<Utc>> {
    let s = s.trim();
    if s.is_empty() {
        return None;
    }
    for f in [
        "%m/%d/%Y %I:%M %p",
        "%m/%d/%Y %H:%M",
        "%m/%d/%Y %I:%M:%S %p",
    ] {
        if let Ok(t) = NaiveDateTime::parse_from_str(s, f) {
            return Some(t.and_utc());
        }
    }
    None
}

/// One `data.aspx` row that is worth a finding, with its report day.
#[derive(Debug, Clone)]
struct DataHit {
    finding: Finding,
    end: Option<DateTime<Utc>>,
}

fn csv_reader(body: &[u8]) -> csv::Reader<&[u8]> {
    csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(body)
}

/// Physical line numbers (1-based) of byte offsets, counted incrementally (offsets only grow).
/// The csv crate's own line counter lags by one on CRLF input.
struct LineCounter<'a> {
    body: &'a [u8],
    at: usize,
    line: u64,
}

impl<'a> LineCounter<'a> {
    fn new(body: &'a [u8]) -> Self {
        LineCounter {
            body,
            at: 0,
            line: 1,
        }
    }

    /// The line of the first character at or after `byte` that is not a line break.
    fn line_at(&mut self, byte: u64) -> u64 {
        let mut to = (byte as usize).min(self.body.len());
        while to < self.body.len() && matches!(self.body[to], b'\r' | b'\n') {
            to += 1;
        }
        if to >= self.at {
            self.line += self.body[self.at..to]
                .iter()
                .filter(|b| **b == b'\n')
                .count() as u64;
            self.at = to;
        }
        self.line
    }
}

/// Why an SNDS row (or a whole page) is refused; the values are clipped for display.
#[derive(Debug, thiserror::Error)]
enum Refused {
    #[error("{got} columns, expected {want}")]
    Columns { got: usize, want: &'static str },
    #[error("`{0}` is not an IP address (a header or an error page?)")]
    NotIp(String),
    #[error("`{0}` - `{1}` is not an IP range (a header or an error page?)")]
    NotRange(String, String),
    #[error("{0} - {1} is not a range (reversed or mixed families)")]
    BadRange(IpAddr, IpAddr),
    #[error("{name} `{value}` is not a number")]
    NotNumber { name: String, value: String },
    #[error(transparent)]
    Cut(#[from] crate::sources::Incomplete),
    #[error("none of its {0} row(s) could be read")]
    Unreadable(usize),
}

fn count(field: &str, name: &str) -> Result<u64, Refused> {
    if field.is_empty() {
        return Ok(0);
    }
    field
        .replace(',', "")
        .parse::<u64>()
        .map_err(|_| Refused::NotNumber {
            name: name.to_string(),
            value: crate::text::clip(field, 80),
        })
}

/// Parses a `data.aspx` body: the findings (rows with a problem), the rejected rows, and how
/// many rows were read. `location` names the request (never the key).
pub fn parse_data(body: &[u8], location: &str) -> (Vec<Finding>, Vec<RowError>, usize) {
    let (f, rejected, _, rows) = parse_data_warned(body, location);
    (f, rejected, rows)
}

/// [`parse_data`] with the warnings: malformed values of rows that kept their finding (an
/// activity period, a count, a filter result), kept as written in `extra`.
pub fn parse_data_warned(
    body: &[u8],
    location: &str,
) -> (Vec<Finding>, Vec<RowError>, Vec<RowError>, usize) {
    let (hits, rejected, warnings, rows) = parse_data_hits(body, location);
    (
        hits.into_iter().map(|h| h.finding).collect(),
        rejected,
        warnings,
        rows,
    )
}

fn parse_data_hits(
    body: &[u8],
    location: &str,
) -> (Vec<DataHit>, Vec<RowError>, Vec<RowError>, usize) {
    let mut hits = Vec::new();
    let (rejected, warnings, rows) = csv_rows(body, location, |rec, at, warnings| {
        if let Some(h) = data_row(rec, &at, warnings)? {
            hits.push(h);
        }
        Ok(())
    });
    (hits, rejected, warnings, rows)
}

/// Runs `row` on every non-empty CSV row of `body` with its location (`{location} line N`),
/// counting rows; an unreadable row, or an `Err` from `row`, becomes a [`RowError`] there, and
/// each warning `row` pushes (for a row it kept) one of the returned warnings.
fn csv_rows(
    body: &[u8],
    location: &str,
    mut row: impl FnMut(&csv::StringRecord, String, &mut Vec<String>) -> Result<(), Refused>,
) -> (Vec<RowError>, Vec<RowError>, usize) {
    let mut row_warnings = Vec::new();
    let mut warnings = Vec::new();
    let mut rejected = Vec::new();
    let mut rows = 0;
    let mut rdr = csv_reader(body);
    let mut lines = LineCounter::new(body);
    let mut rec = csv::StringRecord::new();
    loop {
        let mut line = 0;
        match rdr.read_record(&mut rec) {
            Ok(false) => break,
            Ok(true) => {
                line = lines.line_at(rec.position().map(|p| p.byte()).unwrap_or(0));
            }
            Err(e) => {
                rows += 1;
                let line = e
                    .position()
                    .map(|p| lines.line_at(p.byte()))
                    .unwrap_or(line + 1);
                rejected.push(RowError {
                    location: format!("{location} line {line}"),
                    message: format!("unreadable CSV row ({e})"),
                });
                continue;
            }
        }
        if rec.iter().all(|f| f.is_empty()) {
            continue;
        }
        rows += 1;
        let at = format!("{location} line {line}");
        match row(&rec, at.clone(), &mut row_warnings) {
            Ok(()) => warnings.extend(row_warnings.drain(..).map(|message| RowError {
                location: at.clone(),
                message,
            })),
            Err(refused) => {
                row_warnings.clear();
                rejected.push(RowError {
                    location: at,
                    message: refused.to_string(),
                });
            }
        }
    }
    (rejected, warnings, rows)
}

/// One `data.aspx` row. Rejected (`Err`) only when it is cut short or its IP (the finding's
/// identity) is malformed; any other malformed value is kept as written in `extra` with a
/// warning, and counts for nothing (a malformed filter result is not red, a malformed trap
/// count is no hit).
fn data_row(
    rec: &csv::StringRecord,
    at: &str,
    warnings: &mut Vec<String>,
) -> Result<Option<DataHit>, Refused> {
    if rec.len() < 13 {
        return Err(Refused::Columns {
            got: rec.len(),
            want: "14 (or 13)",
        });
    }
    let g = |i: usize| rec.get(i).unwrap_or("");
    let ip: IpAddr = g(0)
        .parse()
        .map_err(|_| Refused::NotIp(crate::text::clip(g(0), 80)))?;
    // Malformed values, kept as written: (extra key, value).
    let mut kept: Vec<(&str, &str)> = Vec::new();
    let (start, end) = activity_period(rec, &mut kept, warnings);
    let mut counted = |i: usize, key: &'static str, name: &str| match count(g(i), name) {
        Ok(n) => Some(n),
        Err(e) => {
            warnings.push(format!("{e} (kept in extra)"));
            kept.push((key, g(i)));
            None
        }
    };
    let rcpt = counted(3, "rcpt_commands", "RCPT commands");
    let data = counted(4, "data_commands", "DATA commands");
    let recipients = counted(5, "message_recipients", "message recipients");
    let trap_hits = counted(10, "trap_hits", "trap hits");
    let filter = filter_result(g(6), warnings);
    let complaint = g(7);
    let band = complaint_band(complaint);
    let mut reasons = Vec::new();
    match filter.as_str() {
        "RED" => reasons.push("filter-red"),
        "YELLOW" => reasons.push("filter-yellow"),
        _ => {}
    }
    if trap_hits.is_some_and(|n| n > 0) {
        reasons.push("trap-hits");
    }
    if band.is_some_and(|b| b.min >= 0.1) {
        reasons.push("complaints");
    }
    if reasons.is_empty() {
        return Ok(None);
    }
    let severity = if filter == "RED" {
        Severity::High
    } else {
        Severity::Medium
    };
    let mut f = Finding::new(
        SourceId::Snds.name(),
        "data",
        Classification::new("abusive-content", "spam", "snds-activity"),
        severity,
    );
    f.ip = Some(ip);
    f.time_source = end.or(start);
    if let Some(d) = iso(start) {
        f.set_extra("activity_start", d);
    }
    if let Some(e) = end {
        f.set_extra("activity_end", e.format("%Y-%m-%dT%H:%M:%SZ").to_string());
        f.set_extra("report_date", e.format("%Y-%m-%d").to_string());
    }
    for (k, n) in [
        ("rcpt_commands", rcpt),
        ("data_commands", data),
        ("message_recipients", recipients),
    ] {
        if let Some(n) = n {
            f.set_extra(k, n);
        }
    }
    f.set_extra("filter_result", filter.as_str());
    f.set_extra("complaint_rate", complaint);
    if let Some(b) = band {
        f.set_extra("complaint_rate_min_pct", b.min);
    }
    if let Some(n) = trap_hits {
        f.set_extra("trap_hits", n);
    }
    for (k, v) in kept {
        f.set_extra(k, v);
    }
    set_trap_period_and_samples(&mut f, rec, warnings);
    f.set_extra("reasons", reasons);
    f.raw = Some(at.to_string());
    Ok(Some(DataHit { finding: f, end }))
}

/// A `data.aspx` row's activity period; a malformed one is kept as written (both ends) and
/// counts for nothing.
fn activity_period<'r>(
    rec: &'r csv::StringRecord,
    kept: &mut Vec<(&'static str, &'r str)>,
    warnings: &mut Vec<String>,
) -> (Option<DateTime<Utc>>, Option<DateTime<Utc>>) {
    let g = |i: usize| rec.get(i).unwrap_or("");
    let (start, end) = (parse_snds_time(g(1)), parse_snds_time(g(2)));
    if start.is_none() && !g(1).is_empty() || end.is_none() && !g(2).is_empty() {
        warnings.push(format!(
            "activity period `{}` - `{}` is not M/D/YYYY h:mm AM/PM (kept in extra)",
            crate::text::clip(g(1), 80),
            crate::text::clip(g(2), 80)
        ));
        kept.extend([("activity_start", g(1)), ("activity_end", g(2))]);
        return (None, None);
    }
    (start, end)
}

/// The filter result upper-cased (`GREEN`, `YELLOW`, `RED` or empty), else as written with a
/// warning (it then counts for nothing).
fn filter_result(cell: &str, warnings: &mut Vec<String>) -> String {
    let filter = cell.to_ascii_uppercase();
    if matches!(filter.as_str(), "GREEN" | "YELLOW" | "RED" | "") {
        return filter;
    }
    warnings.push(format!(
        "filter result `{}` is not GREEN, YELLOW or RED (kept in extra)",
        crate::text::clip(cell, 80)
    ));
    cell.to_string()
}

/// A time as ISO 8601 (`2026-11-22T07:00:00Z`).
fn iso(t: Option<DateTime<Utc>>) -> Option<String> {
    t.map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
}

/// A `data.aspx` row's trap message period (a malformed time kept as written, with a
/// warning), sample HELO, sample MAIL FROM and comments.
fn set_trap_period_and_samples(
    f: &mut Finding,
    rec: &csv::StringRecord,
    warnings: &mut Vec<String>,
) {
    let g = |i: usize| rec.get(i).unwrap_or("");
    for (key, i) in [("trap_message_start", 8), ("trap_message_end", 9)] {
        match iso(parse_snds_time(g(i))) {
            Some(d) => f.set_extra(key, d),
            None if !g(i).is_empty() => {
                warnings.push(format!(
                    "{} `{}` is not M/D/YYYY h:mm AM/PM (kept in extra)",
                    key.replace('_', " "),
                    crate::text::clip(g(i), 80)
                ));
                f.set_extra(key, g(i));
            }
            None => {}
        }
    }
    for (k, i) in [
        ("sample_helo", 11),
        ("sample_mail_from", 12),
        ("comments", 13),
    ] {
        if !g(i).is_empty() {
            f.set_extra(k, g(i));
        }
    }
}

/// The network of an address range: the exact CIDR when the range is one (`true`), else the
/// smallest prefix covering it (`false`). `None` when the ends are of different families or
/// reversed.
pub fn range_network(first: IpAddr, last: IpAddr) -> Option<(IpNet, bool)> {
    let (a, b, bits): (u128, u128, u32) = match (first, last) {
        (IpAddr::V4(a), IpAddr::V4(b)) => (u32::from(a).into(), u32::from(b).into(), 32),
        (IpAddr::V6(a), IpAddr::V6(b)) => (u128::from(a), u128::from(b), 128),
        _ => return None,
    };
    if a > b {
        return None;
    }
    let diff = a ^ b;
    let host_bits = 128 - diff.leading_zeros();
    let len = (bits - host_bits.min(bits)) as u8;
    let net = IpNet::new(first, len).ok()?.trunc();
    let exact = net.network() == first && net.broadcast() == last;
    Some((net, exact))
}

/// The exact CIDRs that together make up an address range (at most 2 × bits of them).
pub fn range_cidrs(first: IpAddr, last: IpAddr) -> Vec<IpNet> {
    // ipnet's subnet iterators cover `first..=last` with the fewest aligned blocks.
    match (first, last) {
        (IpAddr::V4(a), IpAddr::V4(b)) if a <= b => {
            ipnet::Ipv4Subnets::new(a, b, 0).map(IpNet::V4).collect()
        }
        (IpAddr::V6(a), IpAddr::V6(b)) if a <= b => {
            ipnet::Ipv6Subnets::new(a, b, 0).map(IpNet::V6).collect()
        }
        _ => Vec::new(),
    }
}

/// Parses an `ipStatus.aspx` body: one finding per blocked range.
pub fn parse_ip_status(body: &[u8], location: &str) -> (Vec<Finding>, Vec<RowError>, usize) {
    let mut findings = Vec::new();
    let (rejected, _, rows) = csv_rows(body, location, |rec, at, _| {
        let g = |i: usize| rec.get(i).unwrap_or("");
        if rec.len() < 3 {
            return Err(Refused::Columns {
                got: rec.len(),
                want: "4",
            });
        }
        let (Ok(first), Ok(last)) = (g(0).parse::<IpAddr>(), g(1).parse::<IpAddr>()) else {
            return Err(Refused::NotRange(
                crate::text::clip(g(0), 80),
                crate::text::clip(g(1), 80),
            ));
        };
        let Some((net, exact)) = range_network(first, last) else {
            return Err(Refused::BadRange(first, last));
        };
        let blocked = g(2);
        if blocked.eq_ignore_ascii_case("no") {
            return Ok(());
        }
        let reason = g(3);
        let mut f = Finding::new(
            SourceId::Snds.name(),
            "ipstatus",
            Classification::new("abusive-content", "spam", "snds-blocked"),
            Severity::High,
        );
        f.network = Some(net);
        f.identity = vec![first.to_string(), last.to_string()];
        f.set_extra("first_ip", first.to_string());
        f.set_extra("last_ip", last.to_string());
        f.set_extra("exact_cidr", exact);
        if !exact {
            let parts: Vec<String> = range_cidrs(first, last)
                .iter()
                .map(|n| n.to_string())
                .collect();
            f.set_extra("cidrs", parts);
        }
        f.set_extra("blocked", blocked);
        if !reason.is_empty() {
            f.set_extra("reason", reason);
        }
        f.raw = Some(at);
        findings.push(f);
        Ok(())
    });
    (findings, rejected, rows)
}

/// `MMDDYY`, the `date` parameter of `data.aspx`.
pub fn snds_date(t: DateTime<Utc>) -> String {
    t.format("%m%d%y").to_string()
}

impl SndsSource {
    async fn get(
        &self,
        ctx: &FetchContext,
        page: &str,
        params: &[(&str, String)],
    ) -> Result<bytes::Bytes, FetchError> {
        let mut u = reqwest::Url::parse(&http::join(&self.base_url, page)).map_err(|e| {
            FetchError::Config(format!(
                "sources.snds.base_url `{}` is not a URL ({e})",
                self.base_url
            ))
        })?;
        {
            let mut q = u.query_pairs_mut();
            q.append_pair("key", self.key.expose());
            for (k, v) in params {
                q.append_pair(k, v);
            }
        }
        let url = u.to_string();
        let secrets: Vec<&Secret> = self.secrets.iter().collect();
        let shown = http::scrub(&url, &secrets);
        let r = ctx
            .http
            .send(Method::GET, &url, HeaderMap::new(), None, &secrets)
            .await;
        match r {
            Ok(Fetched::Body { body, .. }) => {
                let trimmed = body.iter().find(|b| !b.is_ascii_whitespace());
                if http::looks_like_html(&body) || trimmed == Some(&b'<') {
                    return Err(FetchError::Auth(format!(
                        "{shown}: SNDS answered with an HTML page instead of CSV; the key is \
                         probably expired or wrong (renew it on the SNDS \"Automated Data \
                         Access\" page and update sources.snds.key)"
                    )));
                }
                Ok(body)
            }
            Ok(Fetched::NotModified) => Ok(bytes::Bytes::new()),
            Err(HttpError::Status {
                status: s @ (401 | 403),
                ..
            }) => Err(FetchError::Auth(format!(
                "{shown}: SNDS refused the key ({s}); check sources.snds.key"
            ))),
            Err(e) => Err(FetchError::Http(e)),
        }
    }
}

/// State key of [`SndsMemory`].
const MEMORY_STATE: &str = "snds/memory";

/// What the last data pages held, to tell "no traffic those days" from a broken answer. SNDS
/// answers an empty page for a day without traffic, so empty pages after pages with rows fail
/// once and are believed when the next run sees them again.
#[derive(Debug, Default, Serialize, Deserialize)]
struct SndsMemory {
    /// Rows of the data pages of the last run that read them.
    last_rows: usize,
    /// Empty pages already followed pages with rows once (the next empty ones are believed).
    empty_seen: bool,
}

/// Whether a page can be trusted: not cut off, and not all garbage.
fn usable(body: &[u8], rows: usize, rejected: usize) -> Result<(), Refused> {
    crate::sources::check_complete_lines(body, true)?;
    if rows > 0 && rejected == rows {
        return Err(Refused::Unreadable(rows));
    }
    Ok(())
}

#[async_trait]
impl Source for SndsSource {
    fn name(&self) -> &str {
        SourceId::Snds.name()
    }
    fn secrets(&self) -> Vec<&Secret> {
        std::iter::once(&self.key).chain(&self.secrets).collect()
    }
    fn schedule(&self) -> CronSchedule {
        self.schedule.clone()
    }
    fn resolve_after(&self) -> chrono::Duration {
        self.resolve_after
    }

    async fn fetch(&self, ctx: &FetchContext) -> Result<FetchOutput, FetchError> {
        let mut out = FetchOutput {
            complete: true,
            ..Default::default()
        };
        // Each page is a unit (a day of data.aspx, ipStatus.aspx): one that fails is named and
        // the others go on; a refused key fails them all, so it ends the fetch.
        let mut memory: SndsMemory = ctx.state.get_json(MEMORY_STATE).await?.unwrap_or_default();
        // Latest row per IP wins (yesterday over the day before).
        let mut per_ip: BTreeMap<IpAddr, DataHit> = BTreeMap::new();
        let mut pages = Vec::new();
        for days_back in [1, 2] {
            let date = snds_date(ctx.now - chrono::Duration::days(days_back));
            let unit = format!("data.aspx date={date}");
            let body = match self.get(ctx, "data.aspx", &[("date", date.clone())]).await {
                Ok(b) => b,
                Err(e @ FetchError::Auth(_)) => return Err(e),
                Err(e) => {
                    out.fail_unit(unit, &e);
                    continue;
                }
            };
            let (hits, rejected, warnings, rows) = parse_data_hits(&body, &unit);
            if let Err(e) = usable(&body, rows, rejected.len()) {
                out.fail_unit(unit, &FetchError::Data(e.into()));
                continue;
            }
            pages.push((unit, hits, rejected, warnings, rows));
        }
        let read: usize = pages.iter().map(|p| p.4).sum();
        if !pages.is_empty() && read == 0 && memory.last_rows > 0 && !memory.empty_seen {
            // Suddenly empty: once, it is a failure; the next run that sees it believes it.
            memory.empty_seen = true;
            let e = FetchError::Format(format!(
                "the page is empty where the last run read {} row(s); SNDS answers empty for \
                 days without traffic, so if the next run sees the same it is taken as such",
                memory.last_rows
            ));
            for (unit, ..) in pages.drain(..) {
                out.fail_unit(unit, &e);
            }
        } else if !pages.is_empty() {
            memory.last_rows = read;
            memory.empty_seen = false;
        }
        for (_, hits, rejected, warnings, rows) in pages {
            out.fetched += rows;
            out.rejected.extend(rejected);
            out.warnings.extend(warnings);
            for h in hits {
                let ip = h.finding.ip.expect("data rows carry an IP");
                match per_ip.get(&ip) {
                    Some(old) if old.end >= h.end => {}
                    _ => {
                        per_ip.insert(ip, h);
                    }
                }
            }
        }
        // An empty ipStatus is the normal answer (nothing blocked), so only a cut or unreadable
        // one fails.
        let blocked = match self.get(ctx, "ipStatus.aspx", &[]).await {
            Err(e @ FetchError::Auth(_)) => return Err(e),
            Err(e) => {
                out.fail_unit("ipStatus.aspx", &e);
                Vec::new()
            }
            Ok(body) => {
                let (blocked, rejected, rows) = parse_ip_status(&body, "ipStatus.aspx");
                match usable(&body, rows, rejected.len()) {
                    Ok(()) => {
                        out.fetched += rows;
                        out.rejected.extend(rejected);
                        blocked
                    }
                    Err(e) => {
                        out.fail_unit("ipStatus.aspx", &FetchError::Data(e.into()));
                        Vec::new()
                    }
                }
            }
        };
        let mem = serde_json::to_vec(&memory).map_err(|e| FetchError::data("", e))?;
        out.state.push((MEMORY_STATE.to_string(), Some(mem)));
        for mut f in per_ip.into_values().map(|h| h.finding).chain(blocked) {
            crate::scope::mark_scope(&mut f, &ctx.scope);
            // A covering prefix may reach beyond the range: judge scope on the range itself.
            if let Some(parts) = f.extra.get("cidrs").and_then(|v| v.as_array()) {
                let nets: Vec<IpNet> = parts
                    .iter()
                    .filter_map(|p| p.as_str()?.parse().ok())
                    .collect();
                f.in_scope = nets.iter().any(|n| ctx.scope.overlaps_net(*n));
            }
            out.findings.push(f);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn complaint_bands() {
        assert_eq!(
            complaint_band("< 0.1%"),
            Some(ComplaintBand { min: 0.0, max: 0.1 })
        );
        assert_eq!(
            complaint_band("0.4%"),
            Some(ComplaintBand { min: 0.4, max: 0.4 })
        );
        assert_eq!(
            complaint_band("1% - < 2%"),
            Some(ComplaintBand { min: 1.0, max: 2.0 })
        );
        assert_eq!(complaint_band(""), None);
        assert_eq!(complaint_band("n/a"), None);
    }

    #[test]
    fn ranges() {
        let r = |a: &str, b: &str| {
            range_network(a.parse().unwrap(), b.parse().unwrap()).map(|(n, e)| (n.to_string(), e))
        };
        assert_eq!(r("1.1.1.3", "1.1.1.3"), Some(("1.1.1.3/32".into(), true)));
        assert_eq!(r("1.1.1.0", "1.1.1.1"), Some(("1.1.1.0/31".into(), true)));
        assert_eq!(
            r("1.1.1.254", "1.1.2.1"),
            Some(("1.1.0.0/22".into(), false))
        );
        assert_eq!(
            r("1.255.255.255", "2.0.0.0"),
            Some(("0.0.0.0/6".into(), false))
        );
        assert_eq!(
            r("0.0.0.0", "255.255.255.255"),
            Some(("0.0.0.0/0".into(), true))
        );
        assert_eq!(r("1.1.1.2", "1.1.1.1"), None);
        assert_eq!(
            r("2001:db8::", "2001:db8::ff"),
            Some(("2001:db8::/120".into(), true))
        );
    }

    #[test]
    fn range_decomposition() {
        let r = |a: &str, b: &str| -> Vec<String> {
            range_cidrs(a.parse().unwrap(), b.parse().unwrap())
                .iter()
                .map(|n| n.to_string())
                .collect()
        };
        assert_eq!(
            r("192.0.2.130", "192.0.2.140"),
            [
                "192.0.2.130/31",
                "192.0.2.132/30",
                "192.0.2.136/30",
                "192.0.2.140/32"
            ]
        );
        assert_eq!(r("1.1.1.254", "1.1.2.1"), ["1.1.1.254/31", "1.1.2.0/31"]);
        assert_eq!(r("0.0.0.0", "255.255.255.255"), ["0.0.0.0/0"]);
        assert_eq!(
            r("255.255.255.255", "255.255.255.255"),
            ["255.255.255.255/32"]
        );
        assert_eq!(r("::", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"), ["::/0"]);
        assert_eq!(
            r("2001:db8::1", "2001:db8::2"),
            ["2001:db8::1/128", "2001:db8::2/128"]
        );
    }

    #[test]
    fn data_rows() {
        let body = b"192.0.2.1,11/20/2026 8:00 AM,11/21/2026 7:00 AM,10,10,10,GREEN,< 0.1%,,,0,,,\r\n\
192.0.2.2,11/20/2026 8:00 AM,11/21/2026 7:00 AM,100,90,95,RED,< 0.1%,11/20/2026 9:00 AM,11/20/2026 10:00 PM,3,mx.example.net,bounce@example.net,\"a, b\"\r\n\
192.0.2.3,11/20/2026 8:00 AM,11/21/2026 7:00 AM,100,90,95,GREEN,0.3%,,,0,,\r\n\
bogus,row\r\n";
        let (f, rej, rows) = parse_data(body, "t");
        assert_eq!(rows, 4);
        assert_eq!(f.len(), 2);
        assert_eq!(rej.len(), 1);
        assert_eq!(f[0].severity, Severity::High);
        assert_eq!(f[0].extra["comments"], "a, b");
        assert_eq!(f[0].extra["activity_end"], "2026-11-21T07:00:00Z");
        assert_eq!(f[1].extra["reasons"], serde_json::json!(["complaints"]));
    }

    #[test]
    fn date_param() {
        let t = DateTime::parse_from_rfc3339("2021-05-01T10:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(snds_date(t), "050121");
    }
}
