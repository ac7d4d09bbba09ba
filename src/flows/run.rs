//! One flows run, shared by `outwatch flows FILE...` and the daemon's watch job: read the
//! files into one [`Analyser`], then store the findings in one atomic ingest with a run-log
//! entry for source `flows` (so `status` knows whether logs keep arriving).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::analyse::group::Body;
use super::analyse::rules::Kind;
use super::analyse::{Analyser, FlowReport, Settings};
use super::config::FlowsConfig;
use super::read::{self, ReadStats};
use crate::finding::SourceId;
use crate::indicators::IndicatorIndex;
use crate::pipeline::{Apply, Ending, FilesRead, RunKind};
use crate::scope::{self, ScopeMatcher};
use crate::sources::{FetchOutput, RowError};
use crate::store::{FetchRun, IngestStats, Store, StoreError, UnitError};

/// Most row errors carried into a summary (counts stay exact).
pub(crate) const MAX_ERRORS: usize = 100;

/// What one file gave.
#[derive(Debug, Clone, Serialize)]
pub struct FileOutcome {
    pub path: String,
    /// `None` when the file could not be read at all.
    #[serde(flatten)]
    pub stats: Option<ReadStats>,
    /// Why the file could not be read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The files of a run and the analysis of all of them.
#[derive(Debug, Clone)]
pub(crate) struct Analysed {
    pub files: Vec<FileOutcome>,
    pub report: FlowReport,
    /// What the owner should know that is no failure (no C2 list loaded; a rotated log whose
    /// old file was not found): the run log's notices, shown by `status`.
    pub notices: Vec<String>,
}

impl Analysed {
    /// Files that could not be read.
    pub(crate) fn failed_files(&self) -> usize {
        self.files.iter().filter(|f| f.error.is_some()).count()
    }
    /// Lines read, over all files.
    pub(crate) fn lines(&self) -> u64 {
        self.files
            .iter()
            .filter_map(|f| f.stats.as_ref())
            .map(|s| s.lines)
            .sum()
    }
    /// Connections read, over all files.
    pub(crate) fn connections(&self) -> u64 {
        self.files
            .iter()
            .filter_map(|f| f.stats.as_ref())
            .map(|s| s.connections)
            .sum()
    }
    /// Lines rejected, over all files.
    pub(crate) fn rejected(&self) -> u64 {
        self.files
            .iter()
            .filter_map(|f| f.stats.as_ref())
            .map(|s| s.rejected)
            .sum()
    }
    /// Values kept although malformed, over all files.
    pub(crate) fn warnings(&self) -> u64 {
        self.files
            .iter()
            .filter_map(|f| f.stats.as_ref())
            .map(|s| s.warnings)
            .sum()
    }
    /// The first [`MAX_ERRORS`] row errors (rejected lines and warnings), over all files.
    pub(crate) fn row_errors(&self) -> Vec<RowError> {
        self.files
            .iter()
            .filter_map(|f| f.stats.as_ref())
            .flat_map(|s| s.errors.iter().cloned())
            .take(MAX_ERRORS)
            .collect()
    }
    /// [`Analysed::row_errors`], then one per unreadable file.
    pub(crate) fn errors(&self) -> Vec<RowError> {
        let mut out = self.row_errors();
        out.extend(self.files.iter().filter_map(|f| {
            f.error.as_ref().map(|e| RowError {
                location: f.path.clone(),
                message: format!("whole file: {e}"),
            })
        }));
        out
    }
}

/// A part of a log file to read: the whole file, or (for a log the watch job read before) what
/// follows the part it read, behind the log's own header lines.
#[derive(Debug, Clone)]
pub(crate) struct Piece {
    pub path: PathBuf,
    /// `None`: the whole file, gzip or plain.
    pub tail: Option<Tail>,
}

/// The unread end of a log: its header (the `#` lines of Zeek TSV, the column line of nfdump
/// CSV; empty for JSON lines) and where the unread lines begin and end: a byte offset of a
/// plain file, or of the decompressed stream of a gzip one.
#[derive(Debug, Clone)]
pub(crate) struct Tail {
    pub header: Vec<u8>,
    pub from: u64,
    /// The end of the last whole line of a log still written; `None`: the file's end.
    pub to: Option<u64>,
}

/// Reads `files` in order into one analysis; a file that cannot be read is named and the
/// others go on. `progress` hears of each file before it is read.
pub(crate) fn analyse_files(
    flows: &FlowsConfig,
    scope: &ScopeMatcher,
    index: &IndicatorIndex,
    files: &[PathBuf],
    progress: &mut dyn FnMut(&Path),
) -> Analysed {
    let pieces: Vec<Piece> = files
        .iter()
        .map(|p| Piece {
            path: p.clone(),
            tail: None,
        })
        .collect();
    analyse_pieces(flows, scope, index, &pieces, progress)
}

/// [`analyse_files`] of whole files and file tails.
pub(crate) fn analyse_pieces(
    flows: &FlowsConfig,
    scope: &ScopeMatcher,
    index: &IndicatorIndex,
    pieces: &[Piece],
    progress: &mut dyn FnMut(&Path),
) -> Analysed {
    let settings = Settings::new(flows);
    let mut a = Analyser::new(&settings, scope, index);
    let mut out = Vec::with_capacity(pieces.len());
    for piece in pieces {
        let p = &piece.path;
        progress(p);
        let path = p.display().to_string();
        let read = match &piece.tail {
            None => read::read_path(p, &mut |c| a.add(c)),
            Some(t) => read::read_path_from(p, &t.header, t.from, t.to, &mut |c| a.add(c)),
        };
        match read {
            Ok(stats) => out.push(FileOutcome {
                path,
                stats: Some(stats),
                error: None,
            }),
            Err(e) => out.push(FileOutcome {
                path,
                stats: None,
                error: Some(e.to_string()),
            }),
        }
    }
    let mut notices = Vec::new();
    if index.feeds().next().is_none() {
        notices.push(no_lists_notice());
    }
    Analysed {
        files: out,
        report: a.finish(),
        notices,
    }
}

/// The notice of a run that had no C2 list to check peers against: `status` shows the flows
/// entry as degraded while its last run says so ([`crate::health::FLOWS_NO_LISTS`]).
pub(crate) fn no_lists_notice() -> String {
    format!(
        "{}: no C2 list is kept or enabled, so no peer was checked for C2 contact; fetch a \
         list feed (feodotracker, threatfox, ...) first",
        crate::health::FLOWS_NO_LISTS
    )
}

/// Adds what is stored of each finding to the new reading of it, so a day's finding sums
/// every file the watch job read, each read once: counts add up, first and last widen, the
/// longest connection stays, and the peers (services) of both are merged and bounded again
/// ([`Body::merge`]; a top talker's newer measure of a service replaces the older). A stored
/// finding of another shape (the one-per-peer findings of earlier versions have other
/// fingerprints anyway) is left alone.
pub(crate) fn add_stored_counts(
    store: &dyn Store,
    findings: &mut [crate::finding::Finding],
) -> Result<(), StoreError> {
    use std::collections::HashMap;
    use std::ops::ControlFlow;
    // Only the findings this run adds to (not every day's findings of its hosts).
    let wanted: HashMap<String, usize> = findings
        .iter()
        .enumerate()
        .map(|(i, f)| (f.compute_fingerprint(), i))
        .collect();
    let hosts: std::collections::BTreeSet<std::net::IpAddr> =
        findings.iter().filter_map(|f| f.ip).collect();
    let mut stored: Vec<(usize, Body)> = Vec::new();
    let opts = crate::store::QueryOptions {
        since: None,
        include_resolved: true,
        limit: None,
    };
    for h in hosts {
        store.query_each(&crate::store::Query::Ip(h), &opts, &mut |f| {
            if f.is_from(SourceId::Flows)
                && let Some(&i) = wanted.get(&f.fingerprint)
                && let Some(b) = Body::of(&f)
            {
                stored.push((i, b));
            }
            Ok(ControlFlow::Continue(()))
        })?;
    }
    for (i, old) in &stored {
        let f = &mut findings[*i];
        let (Some(kind), Some(mut body)) = (Kind::from_feed(&f.feed), Body::of(f)) else {
            continue;
        };
        body.merge(old, kind);
        body.write_to(f);
    }
    Ok(())
}

/// Stores the findings of `run` with `state` and its run-log entry `flows`, as one unit of
/// the apply path ([`crate::pipeline::apply`]: `partial` when a file could not be read,
/// `error` when none could). Flow findings are about hosts that are ours by `[flows]` (private
/// ranges included), so they are stored as in scope; the scope's `matched_prefix` is stamped
/// where the configured scope holds the host.
///
/// Then, after a run that read lines and lost no file (nothing resolves on doubt), flow
/// findings no run added to for `resolve_after` are resolved, as a source's are when it no
/// longer reports them (a day's finding stops growing when its day's logs are read); the run's
/// entry counts them. (No suspicious-drop guard: flow findings end every day by design.)
pub(crate) fn store_run(
    store: &Arc<dyn Store>,
    scope: &ScopeMatcher,
    run: &mut Analysed,
    state: Vec<(String, Option<Vec<u8>>)>,
    started: DateTime<Utc>,
    now: DateTime<Utc>,
    resolve_after: chrono::Duration,
) -> Result<(IngestStats, FetchRun), StoreError> {
    let mut findings = std::mem::take(&mut run.report.findings);
    for f in &mut findings {
        scope::mark_scope(f, scope);
        f.in_scope = true;
    }
    let failed: Vec<UnitError> = run
        .files
        .iter()
        .filter_map(|f| {
            f.error.as_ref().map(|e| UnitError {
                unit: f.path.clone(),
                error: e.clone(),
            })
        })
        .take(MAX_ERRORS)
        .collect();
    let files = FilesRead {
        read: run.files.len() - run.failed_files(),
        failed,
    };
    let apply = Apply::new(
        store.clone(),
        RunKind::Source(SourceId::Flows.into()),
        started,
    )
    .observed_at(now);
    apply.count_problems(
        usize::try_from(run.rejected()).unwrap_or(usize::MAX),
        usize::try_from(run.warnings()).unwrap_or(usize::MAX),
    );
    let unit = FetchOutput {
        findings,
        fetched: usize::try_from(run.connections()).unwrap_or(usize::MAX),
        state,
        ..Default::default()
    };
    let ending = Ending {
        notices: run.notices.clone(),
        ..files.ending()
    };
    let (mut fr, _) = apply.only_unit(unit, &ending, &|| now)?;
    if fr.error.is_none() && run.failed_files() == 0 && run.lines() > 0 {
        let cutoff = now.checked_sub_signed(resolve_after).unwrap_or(now);
        fr.resolved = store.resolve_stale(SourceId::Flows.name(), None, cutoff, now)?;
        if fr.resolved > 0 {
            store.record_run(&fr)?;
        }
    }
    let stats = IngestStats {
        new: fr.new,
        updated: fr.updated,
        ..Default::default()
    };
    Ok((stats, fr))
}

/// The indicator sets a flows run checks peers against: those of the list feeds `cfg`
/// enables (a feed switched off no longer names C2s), or every kept set without a config.
pub(crate) fn indicators(
    cfg: Option<&crate::config::Config>,
    store: &dyn Store,
) -> Result<crate::indicators::IndicatorIndex, crate::store::StoreError> {
    match cfg {
        Some(cfg) => {
            crate::indicators::load_only(store, &crate::sources::lists::enabled_names(cfg))
        }
        None => crate::indicators::load(store),
    }
}
