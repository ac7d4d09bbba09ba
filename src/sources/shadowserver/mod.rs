//! Shadowserver: the Reports API fetcher and the schema-driven normaliser of all report types.
//!
//! - [`api`]: signed Reports API calls (`reports/list`, `test/ping`, `key/info`) and downloads;
//! - [`schema`]: report type → classification and default severity, from data files only;
//! - [`normalize`]: one CSV row → one finding, by header name;
//! - [`import`]: report files (`.csv`, `.csv.gz`, `.zip`, `.eml`), streamed.
//!
//! A fetch lists the reports of "two days ago .. today" and downloads those it has not ingested
//! yet. Each report is a unit: normalised, then stored at once together with the remembered
//! report names (by file name, in the source state), so a report is never lost and never
//! counted twice. A report that fails (a 404, a cut-off body, an unknown type) is named in the
//! run and tried again next run; the other reports go on.

pub mod api;
pub(crate) mod config;
pub mod import;
pub mod importer;
pub mod normalize;
pub mod schema;

pub use config::{DEFAULT_BASE_URL, DEFAULT_DOWNLOAD_URL, ShadowserverConfig};

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use super::{
    FetchContext, FetchError, FetchOutput, LastGood, ReadError, RowReader, RowSink, Source,
    SourceKind, SourceTable, StreamedUnit,
};
use crate::config::{Config, CronSchedule};
use crate::finding::SourceId;
use crate::secret::Secret;
use api::{ApiClient, ReportEntry};
use import::RawNaming;
use schema::{SCHEMA_STATE_KEY, Schema};

/// State key of the ingested-report list.
pub const INGESTED_STATE_KEY: &str = "shadowserver/ingested";
/// State key of the last good size of each report type and list (see
/// [`super::judge_size`]).
pub const SIZES_STATE_KEY: &str = "shadowserver/sizes";
/// Ingested-report names are remembered this many days (the listing covers three).
const REMEMBER_DAYS: i64 = 14;

/// The Reports API source.
pub struct ShadowserverSource {
    cfg: ShadowserverConfig,
    api_key: Secret,
    secret: Secret,
}

impl SourceKind for ShadowserverConfig {
    /// Builds the source; fails when the credentials are missing.
    fn build(&self, _cfg: &Config) -> Result<Arc<dyn Source>, FetchError> {
        let (api_key, secret) = self.credentials()?;
        for t in &self.types {
            if !Schema::bundled().knows(t) {
                tracing::warn!(report_type = %t, "sources.shadowserver.types names a type the bundled schema does not know");
            }
        }
        Ok(Arc::new(ShadowserverSource {
            cfg: self.clone(),
            api_key,
            secret,
        }))
    }
}

/// Report names already ingested, with their report date.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Ingested {
    reports: BTreeMap<String, NaiveDate>,
}

/// The id-free key a report is remembered by.
fn remember_key(e: &ReportEntry) -> String {
    match &e.file {
        Some(f) => f.clone(),
        None => {
            use sha2::{Digest, Sha256};
            format!(
                "id-sha256:{}",
                hex::encode(&Sha256::digest(e.id.as_bytes())[..12])
            )
        }
    }
}

#[async_trait]
impl Source for ShadowserverSource {
    fn name(&self) -> &str {
        SourceId::Shadowserver.name()
    }

    fn secrets(&self) -> Vec<&Secret> {
        vec![&self.api_key, &self.secret]
    }

    fn schedule(&self) -> CronSchedule {
        self.cfg.run_schedule()
    }

    fn resolve_after(&self) -> chrono::Duration {
        self.cfg.resolve_window()
    }

    async fn fetch(&self, ctx: &FetchContext) -> Result<FetchOutput, FetchError> {
        let client = ApiClient {
            http: ctx.http.clone(),
            base_url: self.cfg.base_url().to_string(),
            download_url: self.cfg.download_url().to_string(),
            api_key: self.api_key.clone(),
            secret: self.secret.clone(),
        };
        let today = ctx.now.date_naive();
        let from = today - chrono::Duration::days(2);
        let listing = client
            .list_filtered(
                &format!("{from}:{today}"),
                &self.cfg.types,
                &self.cfg.reports,
            )
            .await?;
        let entries = listing.entries;
        let schema = Schema::from_override(ctx.state.get(SCHEMA_STATE_KEY).await?.as_deref());
        let mut seen: Ingested = ctx
            .state
            .get_json(INGESTED_STATE_KEY)
            .await?
            .unwrap_or_default();
        let mut sizes: BTreeMap<String, LastGood> = ctx
            .state
            .get_json(SIZES_STATE_KEY)
            .await?
            .unwrap_or_default();
        // A name is forgotten once it is old *and* no longer listed: a report that a listing
        // (or a mirror) keeps naming past the memory is never downloaded twice.
        let cutoff = today - chrono::Duration::days(REMEMBER_DAYS);
        let listed: std::collections::HashSet<String> = entries.iter().map(remember_key).collect();
        seen.reports
            .retain(|k, d| *d >= cutoff || listed.contains(k));
        let mut out = FetchOutput {
            complete: !listing.cut,
            ..Default::default()
        };
        if listing.cut {
            out.notices.push(format!(
                "reports/list gave {} reports for one day, its limit: there may be more; \
                 nothing is resolved in this run (narrow sources.shadowserver.types or reports)",
                api::LIST_LIMIT
            ));
        }
        let (mut downloaded, mut skipped) = (0usize, 0usize);
        for entry in entries {
            let key = remember_key(&entry);
            if seen.reports.contains_key(&key) {
                skipped += 1;
                continue;
            }
            let report_type = match self.wanted_type(&entry, &schema) {
                Ok(Some(t)) => t,
                Ok(None) => continue,
                Err(e) => {
                    out.fail_unit(format!("report {entry}"), &e);
                    continue;
                }
            };
            if let Some(w) = import::unknown_type_warning(&schema, schema.canonical(&report_type)) {
                // Read all the same (every column kept); the run counts it as a warning.
                tracing::warn!(source = SourceId::Shadowserver.name(), report = %entry, "{}", crate::text::Clean(&w));
            }
            let (read, plain) = match self
                .fetch_report(ctx, &client, &entry, &report_type, &schema)
                .await
            {
                Ok(got) => got,
                Err(e) => {
                    out.fail_unit(format!("report {entry}"), &e);
                    continue;
                }
            };
            let new_sizes = match judge_report(&mut sizes, &report_type, &entry, plain) {
                Ok(new) => new,
                Err(e) => {
                    out.fail_unit(format!("report {entry}"), &e);
                    continue;
                }
            };
            let date = entry
                .timestamp
                .as_deref()
                .and_then(|d| NaiveDate::parse_from_str(d.get(..10).unwrap_or(d), "%Y-%m-%d").ok())
                .unwrap_or(today);
            let mut remembered = seen.clone();
            remembered.reports.insert(key, date);
            let state = serde_json::to_vec(&remembered).map_err(|e| FetchError::data("", e))?;
            let unit = StreamedUnit {
                read,
                state: vec![
                    (INGESTED_STATE_KEY.to_string(), Some(state)),
                    (SIZES_STATE_KEY.to_string(), Some(to_json(&new_sizes)?)),
                ],
            };
            match ctx.commit_streamed(unit).await? {
                Ok(()) => {
                    downloaded += 1;
                    seen = remembered;
                    sizes = new_sizes;
                }
                Err(e) => out.fail_unit(format!("report {entry}"), &FetchError::Format(e.0)),
            }
        }
        tracing::info!(
            source = SourceId::Shadowserver.name(),
            downloaded,
            skipped,
            failed = out.failed.len(),
            "reports fetched"
        );
        // Names older than the memory go even when nothing new arrived.
        let state = serde_json::to_vec(&seen).map_err(|e| FetchError::data("", e))?;
        out.state
            .push((INGESTED_STATE_KEY.to_string(), Some(state)));
        // Sizes refused this run are kept too (see `judge_size`).
        out.state
            .push((SIZES_STATE_KEY.to_string(), Some(to_json(&sizes)?)));
        Ok(out)
    }
}

/// A plain report that came without a stated length is judged by its size against the last
/// good report of its type and list (a gzip body checks itself): the sizes to keep when it is
/// stored, or the error (and `sizes` then keeps the refusal).
fn judge_report(
    sizes: &mut BTreeMap<String, LastGood>,
    report_type: &str,
    entry: &ReportEntry,
    plain: Option<(u64, bool)>,
) -> Result<BTreeMap<String, LastGood>, FetchError> {
    let key = size_key(report_type, entry);
    let mut new_sizes = sizes.clone();
    if let Some((rows, framed)) = plain {
        match super::judge_size(sizes.get(&key).copied(), rows, !framed) {
            Ok(keep) => {
                new_sizes.insert(key, keep);
            }
            Err(shrunk) => {
                sizes.insert(key, shrunk.keep);
                return Err(FetchError::Format(shrunk.message));
            }
        }
    }
    Ok(new_sizes)
}

/// The key of a report's last good size: its type and its mailing list.
fn size_key(report_type: &str, entry: &ReportEntry) -> String {
    format!("{report_type}/{}", entry.report.as_deref().unwrap_or(""))
}

fn to_json<T: Serialize>(v: &T) -> Result<Vec<u8>, FetchError> {
    serde_json::to_vec(v).map_err(|e| FetchError::data("", e))
}

impl ShadowserverSource {
    /// The type of a listed report, `None` when the configured `types` or `reports` leave it
    /// out, an error when the listing names none.
    fn wanted_type(
        &self,
        entry: &ReportEntry,
        schema: &Schema,
    ) -> Result<Option<String>, FetchError> {
        let report_type = entry
            .report_type
            .clone()
            .filter(|t| !t.trim().is_empty())
            .or_else(|| {
                let file = entry.file.as_deref()?;
                schema
                    .type_from_file_name(file)
                    .or_else(|| schema::unknown_type_from_file_name(file))
            });
        let Some(report_type) = report_type else {
            return Err(FetchError::Format(
                "reports/list names no type for it".into(),
            ));
        };
        if !self.cfg.types.is_empty() && !self.cfg.types.contains(&report_type) {
            return Ok(None);
        }
        // Checked again here: the listing's `report` is the mailing list a report went to.
        if !self.cfg.reports.is_empty()
            && !entry
                .report
                .as_deref()
                .is_some_and(|r| self.cfg.reports.iter().any(|x| x == r))
        {
            return Ok(None);
        }
        Ok(Some(report_type))
    }

    /// Downloads one report (the unit of a fetch) into an anonymous temporary file in the data
    /// folder and returns the reader that streams its rows into the store (see
    /// [`StreamedUnit`]). A plain body cut off mid-line is refused here, before anything of it
    /// is stored; a cut gzip stream, or a report the reader gave up on, fails while it is read
    /// (the streamed ingest stores nothing then). For a plain body also its rows (header not
    /// counted) and whether the server announced its end.
    async fn fetch_report(
        &self,
        ctx: &FetchContext,
        client: &ApiClient,
        entry: &ReportEntry,
        report_type: &str,
        schema: &Schema,
    ) -> Result<(RowReader, Option<(u64, bool)>), FetchError> {
        let dir = ctx.units.spill_dir();
        let mut file = tempfile::tempfile_in(&dir).map_err(|e| {
            FetchError::Format(format!(
                "cannot create a temporary file in {}: {e}",
                dir.display()
            ))
        })?;
        let got = client.download_to_file(entry, &mut file).await?;
        // Reading the file back is blocking work: off the async threads.
        let (file, plain) = tokio::task::spawn_blocking(move || {
            let mut file = file;
            use std::io::{Read, Seek};
            let mut magic = [0u8; 2];
            let n = file.read(&mut magic).map_err(|e| FetchError::data("", e))?;
            if n < 2 {
                magic = [0, 0];
            }
            file.rewind().map_err(|e| FetchError::data("", e))?;
            let gz = magic == [0x1f, 0x8b];
            let plain = if gz {
                None
            } else {
                let lines = super::check_complete_file(&mut file, true)
                    .map_err(|e| FetchError::unusable("the downloaded report", e))?;
                Some((lines.saturating_sub(1), got.framed))
            };
            Ok::<_, FetchError>((file, plain))
        })
        .await
        .map_err(|e| FetchError::data("reading the report back failed", e))??;
        let gz = plain.is_none();
        let naming = RawNaming {
            prefix: format!("report {entry}"),
            separator: " line ",
        };
        let scope = ctx.scope.clone();
        let schema = schema.clone();
        let rt = report_type.to_string();
        let read: RowReader = Box::new(move |sink: &mut dyn RowSink| {
            let body = std::io::BufReader::with_capacity(256 << 10, file);
            // A cut gzip stream fails its own length and CRC check while it is read.
            let outcome = if gz {
                let gz = flate2::read::MultiGzDecoder::new(body);
                import::read_csv(gz, &naming, &rt, &schema, &scope, sink)
            } else {
                import::read_csv(body, &naming, &rt, &schema, &scope, sink)
            }?;
            match outcome.error {
                Some(err) => Err(ReadError::Unreadable(err)),
                None => Ok(outcome.rows),
            }
        });
        Ok((read, plain))
    }
}
