//! Shared by the mail importers (`import hibp`, `import safebrowsing`): expand folders, stamp
//! scope, ingest atomically, log the run as `import/<source>` and print a summary.
//! Works without a config file (scope then comes from the store's cached snapshot, if any).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use serde_json::json;

use crate::app::App;
use crate::error::CliError;
use crate::finding::{Finding, SourceId};
use crate::output::print_json;
use crate::pipeline::{FilesRead, MAX_REPORTED_ERRORS, apply_import};
use crate::scope::{self, ScopeMatcher};
use crate::sources::{FetchOutput, RowError};

/// Largest mail file read (alert mails are small; this only guards against mistakes).
pub(crate) const MAX_MAIL_BYTES: u64 = 32 * 1024 * 1024;

/// What the importer parsed from all files.
#[derive(Debug, Default)]
pub(crate) struct Imported {
    pub findings: Vec<Finding>,
    /// Bad records (the file still counts) and bad files (`whole file` in the message).
    pub rejected: Vec<RowError>,
    /// Malformed values of records that kept their finding (kept in its `extra`).
    pub warnings: Vec<RowError>,
    /// Records read.
    pub records: usize,
    /// Files read.
    pub files: usize,
    /// Files that could not be used at all, with why.
    pub failed_files: Vec<crate::sources::UnitError>,
}

/// The files named on the command line; a folder stands for its (non-hidden) files, sorted.
pub(crate) fn expand(paths: &[PathBuf]) -> Result<Vec<PathBuf>, CliError> {
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
pub(crate) fn read_file(p: &Path) -> Result<Vec<u8>, String> {
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
pub(crate) struct FileRead {
    pub records: usize,
    pub findings: Vec<Finding>,
    pub rejected: Vec<RowError>,
    pub warnings: Vec<RowError>,
}

/// Reads every file (size-capped) through `parse`, which gets the bytes and the file's shown
/// name. A file that cannot be read, or that `parse` refuses whole, is a failed file, named in
/// `rejected` as `whole file: ...`; the others go on.
pub(crate) fn read_files(
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
                imp.failed_files.push(crate::sources::UnitError {
                    unit: shown.clone(),
                    error: e.clone(),
                });
                imp.rejected.push(RowError {
                    location: shown,
                    message: format!("whole file: {e}"),
                });
            }
        }
    }
    imp
}

/// Stamps scope, applies the batch through the pipeline's apply path
/// ([`crate::pipeline::apply_import`]: one atomic batch, the run logged as `import/<source>`)
/// and prints the summary.
pub(crate) async fn store_and_report(
    app: &App,
    source: SourceId,
    mut imp: Imported,
    json_out: bool,
    wait: std::time::Duration,
) -> Result<ExitCode, CliError> {
    let store = app.open_store()?;
    let _turn = super::source_turn::source_turn(&store, source.name(), wait).await?;
    let cfg = app.config.clone();
    let snap =
        crate::store::bridge::blocking(&store, move |s| scope::load(cfg.as_ref(), s)).await?;
    let matcher = Arc::new(ScopeMatcher::new(&snap));
    for f in &mut imp.findings {
        scope::mark_scope(f, &matcher);
    }
    let warning_details: Vec<RowError> = imp
        .warnings
        .iter()
        .take(MAX_REPORTED_ERRORS)
        .cloned()
        .collect();
    let unit = FetchOutput {
        findings: std::mem::take(&mut imp.findings),
        fetched: imp.records,
        rejected: std::mem::take(&mut imp.rejected),
        warnings: std::mem::take(&mut imp.warnings),
        ..Default::default()
    };
    let files = FilesRead {
        read: imp.files - imp.failed_files.len(),
        failed: imp.failed_files.clone(),
    };
    let (run, rejected_rows) =
        apply_import(store, app.clock.clone(), source.name(), unit, files).await?;
    let (accepted, in_scope) = (run.accepted, run.in_scope);
    if json_out {
        print_json(&json!({
            "source": source.name(),
            "files": imp.files,
            "failed_files": imp.failed_files.len(),
            "records": imp.records,
            "findings": accepted,
            "in_scope": in_scope,
            "new": run.new,
            "updated": run.updated,
            "rejected": run.rejected,
            "errors": rejected_rows,
            "warnings": run.warnings,
            "warning_details": warning_details,
        }))?;
    } else {
        crate::output::work_wrapped(
            &format!(
                "{} file(s), {} record(s): {accepted} finding(s), {in_scope} in scope, {} new, \
                 {} updated, {} rejected",
                imp.files, imp.records, run.new, run.updated, run.rejected
            ),
            &format!("{source}: "),
            "  ",
        );
        for e in &rejected_rows {
            eprintln!(
                "rejected {}: {}",
                crate::text::Clean(&e.location),
                crate::text::Clean(&e.message)
            );
        }
        for w in &warning_details {
            eprintln!(
                "warning {}: {}",
                crate::text::Clean(&w.location),
                crate::text::Clean(&w.message)
            );
        }
    }
    if !imp.failed_files.is_empty() {
        Ok(ExitCode::from(crate::error::EXIT_FAILURE))
    } else {
        Ok(ExitCode::SUCCESS)
    }
}
