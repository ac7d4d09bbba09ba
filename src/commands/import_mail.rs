//! Shared by the mail importers (`import hibp`, `import safebrowsing`): expand folders, stamp
//! scope, ingest atomically, log the run as `import/<source>` and print a summary.
//! Works without a config file (scope then comes from the store's cached snapshot, if any).

use crate::workln;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use serde_json::json;

use crate::app::App;
use crate::error::CliError;
use crate::finding::Finding;
use crate::output::print_json;
use crate::pipeline::MAX_REPORTED_ERRORS;
use crate::scope::{self, ScopeMatcher};
use crate::sources::RowError;
use crate::store::{FetchRun, IngestOptions, RunOutcome};

/// Largest mail file read (alert mails are small; this only guards against mistakes).
pub const MAX_MAIL_BYTES: u64 = 32 * 1024 * 1024;

/// What the importer parsed from all files.
#[derive(Debug, Default)]
pub struct Imported {
    pub findings: Vec<Finding>,
    /// Bad records (the file still counts) and bad files (`whole file` in the message).
    pub rejected: Vec<RowError>,
    /// Malformed values of records that kept their finding (kept in its `extra`).
    pub warnings: Vec<RowError>,
    /// Records read.
    pub records: usize,
    /// Files read.
    pub files: usize,
    /// Files that could not be used at all.
    pub failed_files: usize,
}

/// The files named on the command line; a folder stands for its (non-hidden) files, sorted.
pub fn expand(paths: &[PathBuf]) -> Result<Vec<PathBuf>, CliError> {
    let mut out = Vec::new();
    for p in paths {
        if p.is_dir() {
            let mut files: Vec<PathBuf> = std::fs::read_dir(p)
                .map_err(|e| CliError::failure(format!("cannot read folder {}: {e}", p.display())))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|f| {
                    f.is_file()
                        && !f
                            .file_name()
                            .and_then(|n| n.to_str())
                            .is_some_and(|n| n.starts_with('.'))
                })
                .collect();
            files.sort();
            out.extend(files);
        } else if p.exists() {
            out.push(p.clone());
        } else {
            return Err(CliError::usage(format!("no such file: {}", p.display())));
        }
    }
    Ok(out)
}

/// Reads a file, refusing huge ones.
pub fn read_file(p: &Path) -> Result<Vec<u8>, String> {
    let meta = std::fs::metadata(p).map_err(|e| e.to_string())?;
    if meta.len() > MAX_MAIL_BYTES {
        return Err(format!(
            "{} bytes is larger than the {} MiB a mail may have",
            meta.len(),
            MAX_MAIL_BYTES / (1024 * 1024)
        ));
    }
    std::fs::read(p).map_err(|e| e.to_string())
}

/// What one file gave an importer.
#[derive(Debug, Default)]
pub struct FileRead {
    pub records: usize,
    pub findings: Vec<Finding>,
    pub rejected: Vec<RowError>,
    pub warnings: Vec<RowError>,
}

/// Reads every file (size-capped) through `parse`, which gets the bytes and the file's shown
/// name. A file that cannot be read, or that `parse` refuses whole, is a failed file, named in
/// `rejected` as `whole file: ...`; the others go on.
pub fn read_files(
    files: &[PathBuf],
    mut parse: impl FnMut(&[u8], &str) -> Result<FileRead, String>,
) -> Imported {
    let mut imp = Imported::default();
    for path in files {
        imp.files += 1;
        let shown = path.display().to_string();
        match read_file(path).and_then(|raw| parse(&raw, &shown)) {
            Ok(r) => {
                imp.records += r.records;
                imp.findings.extend(r.findings);
                imp.rejected.extend(r.rejected);
                imp.warnings.extend(r.warnings);
            }
            Err(e) => {
                imp.failed_files += 1;
                imp.rejected.push(RowError {
                    location: shown,
                    message: format!("whole file: {e}"),
                });
            }
        }
    }
    imp
}

/// Stamps scope, ingests in one batch, records the run and prints the summary.
pub fn store_and_report(
    app: &App,
    source: &str,
    mut imp: Imported,
    json_out: bool,
) -> Result<ExitCode, CliError> {
    let store = app.open_store()?;
    let snap = scope::load(app.config.as_ref(), store.as_ref())?;
    let matcher = Arc::new(ScopeMatcher::new(&snap));
    for f in &mut imp.findings {
        scope::mark_scope(f, &matcher);
    }
    let now = app.clock.now();
    let accepted = imp.findings.len();
    let in_scope = imp.findings.iter().filter(|f| f.in_scope).count();
    let max_time_source = imp.findings.iter().filter_map(|f| f.time_source).max();
    let stats = store.ingest(
        std::mem::take(&mut imp.findings),
        Vec::new(),
        &IngestOptions { now },
    )?;
    let run = FetchRun {
        source: format!("import/{source}"),
        started: now,
        finished: app.clock.now(),
        outcome: match (imp.failed_files, imp.records) {
            (0, _) => RunOutcome::Ok,
            (_, 0) => RunOutcome::Error,
            _ => RunOutcome::Partial,
        },
        fetched: imp.records,
        accepted,
        rejected: imp.rejected.len(),
        warnings: imp.warnings.len(),
        in_scope,
        new: stats.new,
        updated: stats.updated,
        resolved: 0,
        error: (imp.failed_files > 0)
            .then(|| format!("{} file(s) could not be read", imp.failed_files)),
        failed_units: Vec::new(),
        max_time_source,
        notices: Vec::new(),
    };
    store.record_run(&run)?;
    store.flush()?;
    if json_out {
        print_json(&json!({
            "source": source,
            "files": imp.files,
            "failed_files": imp.failed_files,
            "records": imp.records,
            "findings": accepted,
            "in_scope": in_scope,
            "new": stats.new,
            "updated": stats.updated,
            "rejected": imp.rejected.len(),
            "errors": imp.rejected.iter().take(MAX_REPORTED_ERRORS).collect::<Vec<_>>(),
            "warnings": imp.warnings.len(),
            "warning_details": imp.warnings.iter().take(MAX_REPORTED_ERRORS).collect::<Vec<_>>(),
        }))?;
    } else {
        workln!(
            "{source}: {} file(s), {} record(s): {accepted} finding(s), {in_scope} in scope, {} new, {} updated, {} rejected",
            imp.files,
            imp.records,
            stats.new,
            stats.updated,
            imp.rejected.len()
        );
        for e in imp.rejected.iter().take(MAX_REPORTED_ERRORS) {
            eprintln!(
                "rejected {}: {}",
                crate::text::Clean(&e.location),
                crate::text::Clean(&e.message)
            );
        }
        for w in imp.warnings.iter().take(MAX_REPORTED_ERRORS) {
            eprintln!(
                "warning {}: {}",
                crate::text::Clean(&w.location),
                crate::text::Clean(&w.message)
            );
        }
    }
    if imp.failed_files > 0 {
        Ok(ExitCode::from(crate::error::EXIT_FAILURE))
    } else {
        Ok(ExitCode::SUCCESS)
    }
}
