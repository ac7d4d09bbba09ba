//! Imports of files (`outwatch import <source>`) through the apply path: each import is one
//! unit whose findings and run-log entry `import/<source>` are written together, `partial`
//! when some files could not be read, `error` when none could.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use indicatif::ProgressBar;

use super::apply::{Apply, FilesRead, RunKind};
use crate::clock::Clock;
use crate::finding::SourceId;
use crate::sources::shadowserver::import::ImportOptions;
use crate::sources::shadowserver::importer::{ImportSummary, Inputs, Read, read_inputs};
use crate::sources::{FetchOutput, ReadError, RowError};
use crate::store::{FetchRun, Reading, Store, StoreError, bridge};

/// Applies the findings of an import held in memory (`import hibp`, `import safebrowsing`,
/// `import cymru`) as one unit with its run-log entry ([`Apply::only_unit`]). Returns the run
/// and its first [`super::MAX_REPORTED_ERRORS`] rejected rows.
pub async fn apply_import(
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    source: &str,
    unit: FetchOutput,
    files: FilesRead,
) -> Result<(FetchRun, Vec<RowError>), StoreError> {
    let kind = RunKind::Import(source.to_string());
    bridge::run(move || {
        let apply = Apply::new(store, kind, clock.now());
        apply.only_unit(unit, &files.ending(), &|| clock.now())
    })
    .await
}

/// What a Shadowserver import did: the summary, its run-log entry, and how many files (or
/// reports inside them, or links) could not be read.
#[derive(Debug)]
pub struct Imported {
    pub summary: ImportSummary,
    pub run: FetchRun,
    pub unreadable: usize,
}

/// `outwatch import shadowserver`: the inputs streamed into `store` as one unit (run
/// `import/shadowserver`, observed at `now`, finished at `finished()`), in bounded memory
/// (large imports out of address order are sorted through temporary files by the store).
/// Used by the command and the benchmark; synchronous (call it on the store's bridge).
pub fn shadowserver_files(
    store: Arc<dyn Store>,
    opts: &ImportOptions<'_>,
    inputs: &Inputs<'_>,
    now: DateTime<Utc>,
    finished: &dyn Fn() -> DateTime<Utc>,
    bar: &ProgressBar,
) -> Result<Imported, StoreError> {
    let apply = Apply::new(store, RunKind::Import(SourceId::Shadowserver.into()), now);
    let read = |sink: &mut dyn crate::sources::RowSink| read_inputs(sink, opts, inputs, bar);
    let ending = |r: &Read| {
        FilesRead {
            read: r.read,
            failed: r.failed.clone(),
        }
        .ending()
    };
    // The reader keeps what it can read of each file and counts the rest: it stops only when
    // the store does, so the store may write as it reads.
    let (run, _, read) = apply
        .only_streamed(Reading::AsItComes, read, ending, finished)?
        .map_err(|e| StoreError::Unread(ReadError::Unreadable(e.0)))?;
    let mut summary = read.summary;
    summary.imported = run.new;
    summary.duplicates = run.accepted - run.new;
    debug_assert_eq!(
        summary.rows,
        summary.imported + summary.duplicates + summary.rejected
    );
    Ok(Imported {
        summary,
        unreadable: read.failed.len(),
        run,
    })
}
