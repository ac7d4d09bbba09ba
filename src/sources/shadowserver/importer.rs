//! The reading half of `outwatch import shadowserver`: report files (and reports downloaded
//! from a mail's links) read row by row into the sources' core sink, in bounded memory, and
//! counted ([`read_inputs`]). The pipeline stores them as one unit with the run-log entry
//! `import/shadowserver` (`pipeline/import.rs`, used by the command and the benchmark).

use std::collections::BTreeMap;
use std::path::PathBuf;

use indicatif::ProgressBar;
use serde::Serialize;

use super::import::{CsvOutcome, ImportOptions, import_bytes, import_file};
use crate::finding::{Finding, FindingView};
use crate::sources::{ReadError, RowError, RowSink, UnitError};
use crate::store::StoreError;

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

/// What an import reads: files, reports downloaded from mail links, and the links that could
/// not be downloaded (unreadable reports of the import).
#[derive(Debug, Default)]
pub struct Inputs<'a> {
    pub files: &'a [PathBuf],
    pub downloaded: &'a [Downloaded],
    pub failed_links: &'a [RowError],
}

/// A report downloaded from a mail's link: where it is shown (`mail.eml!file.csv`), its file
/// name (which names the report type) and its bytes.
pub type Downloaded = (String, String, bytes::Bytes);

/// The core sink between the reader and the apply path: shows progress and keeps the first
/// [`MAX_ERRORS`] rejected rows and warnings for the summary.
struct Progress<'a> {
    inner: &'a mut dyn RowSink,
    /// Rows so far (good and rejected), shown by `bar`.
    rows: u64,
    bar: &'a ProgressBar,
    rejected: Vec<RowError>,
    warnings: Vec<RowError>,
}

impl RowSink for Progress<'_> {
    fn finding(&mut self, f: &FindingView<'_>) -> Result<(), StoreError> {
        self.count_row();
        self.inner.finding(f)
    }
    fn owned(&mut self, f: &Finding) -> Result<(), StoreError> {
        self.count_row();
        self.inner.owned(f)
    }
    fn rejected(&mut self, e: RowError) {
        self.count_row();
        if self.rejected.len() < MAX_ERRORS {
            self.rejected.push(e.clone());
        }
        self.inner.rejected(e);
    }
    fn warning(&mut self, w: RowError) {
        if self.warnings.len() < MAX_ERRORS {
            self.warnings.push(w.clone());
        }
        self.inner.warning(w);
    }
}

impl Progress<'_> {
    fn count_row(&mut self) {
        self.rows += 1;
        if self.rows.is_multiple_of(PROGRESS_EVERY) {
            self.bar.set_position(self.rows);
        }
    }
}

/// Rows between two updates of the progress line.
const PROGRESS_EVERY: u64 = 8192;

/// What the reader made of the files, besides the rows.
#[derive(Debug, Default)]
pub struct Read {
    /// The summary, but for what storing tells (`imported`, `duplicates`).
    pub summary: ImportSummary,
    /// Files, reports inside them and links that could not be read, with why.
    pub failed: Vec<UnitError>,
    /// Reports read to their end.
    pub read: usize,
}

/// Reads every input into `sink`; the rows read and what else the reader saw.
pub fn read_inputs(
    sink: &mut dyn RowSink,
    opts: &ImportOptions<'_>,
    inputs: &Inputs<'_>,
    bar: &ProgressBar,
) -> Result<(usize, Read), ReadError> {
    let mut p = Progress {
        inner: sink,
        rows: 0,
        bar,
        rejected: Vec::new(),
        warnings: Vec::new(),
    };
    let mut r = Read::default();
    let mut outcomes = Vec::new();
    for (shown, name, bytes) in inputs.downloaded {
        outcomes.extend(import_bytes(bytes, shown, name, opts, &mut p)?);
    }
    for path in inputs.files {
        r.summary.files += 1;
        bar.set_message(format!("reading {}", path.display()));
        outcomes.extend(import_file(path, opts, &mut p)?);
    }
    bar.set_position(p.rows);
    bar.set_message("writing to the store");
    let mut file_errors: Vec<RowError> = inputs.failed_links.to_vec();
    tally_outcomes(outcomes, &mut r, &mut file_errors);
    r.failed.extend(inputs.failed_links.iter().map(unit_error));
    r.summary.warning_details = std::mem::take(&mut p.warnings);
    file_errors.append(&mut p.rejected);
    file_errors.truncate(MAX_ERRORS);
    r.summary.errors = file_errors;
    Ok((r.summary.rows, r))
}

/// Adds up what each report gave: rows by type, and the reports that could not be read.
fn tally_outcomes(outcomes: Vec<CsvOutcome>, r: &mut Read, file_errors: &mut Vec<RowError>) {
    for o in outcomes {
        if o.rows > 0 || o.error.is_none() {
            *r.summary.by_type.entry(o.report_type.clone()).or_default() += o.rows;
        }
        r.summary.rows += o.rows;
        r.summary.rejected += o.rejected;
        r.summary.warnings += o.warnings;
        match o.error {
            Some(e) => {
                let e = RowError {
                    location: o.location,
                    message: e,
                };
                r.failed.push(unit_error(&e));
                file_errors.push(e);
            }
            None => r.read += 1,
        }
    }
}

fn unit_error(e: &RowError) -> UnitError {
    UnitError {
        unit: e.location.clone(),
        error: e.message.clone(),
    }
}
