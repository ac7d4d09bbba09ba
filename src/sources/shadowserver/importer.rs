//! The core of `outwatch import shadowserver`: report files (and reports downloaded from a
//! mail's links) read row by row into the store in bounded memory, and counted. The command
//! (`src/commands/import_shadowserver.rs`) and the benchmark (`benches/shadowserver_import.rs`)
//! both call [`import_files`]. Unlike a fetch, which hands its units to the pipeline, an import
//! writes the store itself, through the store's bulk path ([`SortedIngest`]).

use std::collections::BTreeMap;

use indicatif::ProgressBar;
use serde::Serialize;

use super::import::{ImportOptions, RowSink, import_bytes, import_file};
use crate::finding::FindingView;
use crate::sources::RowError;
use crate::store::{SortedIngest, Store};

/// Error entries listed at most.
pub const MAX_ERRORS: usize = 100;

/// The `--json` summary.
#[derive(Debug, Default, Serialize)]
pub struct ImportSummary {
    pub files: usize,
    pub rows: usize,
    pub imported: usize,
    pub duplicates: usize,
    pub rejected: usize,
    pub warnings: usize,
    pub by_type: BTreeMap<String, usize>,
    pub errors: Vec<RowError>,
    pub warning_details: Vec<RowError>,
}

/// Prepares findings and ingests them in home order ([`SortedIngest`]).
struct StoreSink<'a> {
    ingest: SortedIngest<'a>,
    /// Rows so far (good and rejected), shown by `bar`.
    rows: u64,
    bar: &'a ProgressBar,
    in_scope: usize,
    rejected: Vec<RowError>,
    rejected_total: usize,
    warnings: Vec<RowError>,
    warnings_total: usize,
}

impl RowSink for StoreSink<'_> {
    fn finding(&mut self, f: &FindingView<'_>) -> Result<(), String> {
        if f.in_scope {
            self.in_scope += 1;
        }
        self.count_row();
        // Encoded now, while the row is still in the CPU cache.
        self.ingest
            .push_view(f)
            .map_err(|e| format!("storing the findings failed: {e}"))
    }
    fn rejected(&mut self, e: RowError) {
        self.count_row();
        self.rejected_total += 1;
        if self.rejected.len() < MAX_ERRORS {
            self.rejected.push(e);
        }
    }
    fn warning(&mut self, w: RowError) {
        self.warnings_total += 1;
        if self.warnings.len() < MAX_ERRORS {
            self.warnings.push(w);
        }
    }
}

impl StoreSink<'_> {
    fn count_row(&mut self) {
        self.rows += 1;
        if self.rows.is_multiple_of(PROGRESS_EVERY) {
            self.bar.set_position(self.rows);
        }
    }
}

/// Rows between two updates of the progress line.
const PROGRESS_EVERY: u64 = 8192;

/// Imports files into `store`; used by the command and the benchmark. Large imports whose
/// rows are not in address order spill sorted runs into `spill_dir` (the data folder: the store
/// is there, and /tmp may be memory). Returns the summary, the number of findings in scope and
/// the number of unreadable files (or reports inside).
pub fn import_files(
    store: &dyn Store,
    spill_dir: &std::path::Path,
    opts: &ImportOptions<'_>,
    files: &[std::path::PathBuf],
    now: chrono::DateTime<chrono::Utc>,
    bar: &ProgressBar,
) -> Result<(ImportSummary, usize, usize), String> {
    import_files_with(store, spill_dir, opts, files, &[], now, bar)
}

/// A report downloaded from a mail's link: where it is shown (`mail.eml!file.csv`), its file
/// name (which names the report type) and its bytes.
pub type Downloaded = (String, String, bytes::Bytes);

/// [`import_files`], plus reports already downloaded from mail links.
pub fn import_files_with(
    store: &dyn Store,
    spill_dir: &std::path::Path,
    opts: &ImportOptions<'_>,
    files: &[std::path::PathBuf],
    downloaded: &[Downloaded],
    now: chrono::DateTime<chrono::Utc>,
    bar: &ProgressBar,
) -> Result<(ImportSummary, usize, usize), String> {
    let mut sink = StoreSink {
        ingest: SortedIngest::new(store, now, spill_dir),
        rows: 0,
        bar,
        in_scope: 0,
        rejected: Vec::new(),
        rejected_total: 0,
        warnings: Vec::new(),
        warnings_total: 0,
    };
    let mut summary = ImportSummary::default();
    let mut file_errors = Vec::new();
    let mut unreadable = 0usize;
    let mut outcomes = Vec::new();
    for (shown, name, bytes) in downloaded {
        outcomes.extend(import_bytes(bytes, shown, name, opts, &mut sink)?);
    }
    for path in files {
        summary.files += 1;
        bar.set_message(format!("reading {}", path.display()));
        outcomes.extend(import_file(path, opts, &mut sink)?);
    }
    for o in outcomes {
        if o.rows > 0 || o.error.is_none() {
            *summary.by_type.entry(o.report_type.clone()).or_default() += o.rows;
        }
        summary.rows += o.rows;
        if let Some(e) = o.error {
            unreadable += 1;
            file_errors.push(RowError {
                location: o.location,
                message: e,
            });
        }
    }
    bar.set_position(sink.rows);
    bar.set_message("writing to the store");
    let stats = sink
        .ingest
        .finish()
        .map_err(|e| format!("storing the findings failed: {e}"))?;
    summary.rejected = sink.rejected_total;
    summary.warnings = sink.warnings_total;
    summary.warning_details = sink.warnings;
    summary.imported = stats.new;
    summary.duplicates = stats.updated + stats.duplicates;
    let mut errors = file_errors;
    errors.extend(sink.rejected);
    errors.truncate(MAX_ERRORS);
    summary.errors = errors;
    debug_assert_eq!(
        summary.rows,
        summary.imported + summary.duplicates + summary.rejected
    );
    Ok((summary, sink.in_scope, unreadable))
}
