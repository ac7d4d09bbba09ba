//! One flows run, shared by `outwatch flows FILE...` and the daemon's watch job: read the
//! files into one [`Analyser`], then store the findings in one atomic ingest with a run-log
//! entry for source `flows` (so `status` knows whether logs keep arriving).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::analyse::{Analyser, FlowReport, SOURCE, Settings};
use super::config::FlowsConfig;
use super::read::{self, ReadStats};
use crate::indicators::IndicatorIndex;
use crate::pipeline::{Apply, FilesRead, RunKind};
use crate::scope::{self, ScopeMatcher};
use crate::sources::{FetchOutput, RowError};
use crate::store::{FetchRun, IngestStats, Store, StoreError, UnitError};

/// Most row errors carried into a summary (counts stay exact).
pub const MAX_ERRORS: usize = 100;

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
pub struct Analysed {
    pub files: Vec<FileOutcome>,
    pub report: FlowReport,
}

impl Analysed {
    /// Files that could not be read.
    pub fn failed_files(&self) -> usize {
        self.files.iter().filter(|f| f.error.is_some()).count()
    }
    /// Lines read, over all files.
    pub fn lines(&self) -> u64 {
        self.files
            .iter()
            .filter_map(|f| f.stats.as_ref())
            .map(|s| s.lines)
            .sum()
    }
    /// Connections read, over all files.
    pub fn connections(&self) -> u64 {
        self.files
            .iter()
            .filter_map(|f| f.stats.as_ref())
            .map(|s| s.connections)
            .sum()
    }
    /// Lines rejected, over all files.
    pub fn rejected(&self) -> u64 {
        self.files
            .iter()
            .filter_map(|f| f.stats.as_ref())
            .map(|s| s.rejected)
            .sum()
    }
    /// Values kept although malformed, over all files.
    pub fn warnings(&self) -> u64 {
        self.files
            .iter()
            .filter_map(|f| f.stats.as_ref())
            .map(|s| s.warnings)
            .sum()
    }
    /// The first [`MAX_ERRORS`] row errors (rejected lines and warnings), over all files.
    pub fn row_errors(&self) -> Vec<RowError> {
        self.files
            .iter()
            .filter_map(|f| f.stats.as_ref())
            .flat_map(|s| s.errors.iter().cloned())
            .take(MAX_ERRORS)
            .collect()
    }
    /// [`Analysed::row_errors`], then one per unreadable file.
    pub fn errors(&self) -> Vec<RowError> {
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

/// A part of a log file to read: the whole file, or (for a growing plain log the watch job
/// read before) the bytes `from..to` behind the file's own header lines.
#[derive(Debug, Clone)]
pub struct Piece {
    pub path: PathBuf,
    /// `None`: the whole file, gzip or plain.
    pub tail: Option<Tail>,
}

/// The unread end of a plain log: its header (the `#` lines of Zeek TSV, the column line of
/// nfdump CSV; empty for JSON lines) and the byte range of whole lines not read yet.
#[derive(Debug, Clone)]
pub struct Tail {
    pub header: Vec<u8>,
    pub from: u64,
    pub to: u64,
}

/// Reads `files` in order into one analysis; a file that cannot be read is named and the
/// others go on. `progress` hears of each file before it is read.
pub fn analyse_files(
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
pub fn analyse_pieces(
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
            Some(t) => read_tail(p, t, &mut |c| a.add(c)),
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
    Analysed {
        files: out,
        report: a.finish(),
    }
}

/// Reads the header and then the bytes `from..to` of a plain log.
fn read_tail(
    path: &Path,
    t: &Tail,
    sink: &mut dyn FnMut(&super::Conn<'_>),
) -> Result<ReadStats, read::ReadError> {
    use std::io::{Read, Seek, SeekFrom};
    let name = path.display().to_string();
    let open = |source: std::io::Error| read::ReadError::Open {
        name: name.clone(),
        source,
    };
    let mut f = std::fs::File::open(path).map_err(open)?;
    f.seek(SeekFrom::Start(t.from)).map_err(open)?;
    let body = f.take(t.to.saturating_sub(t.from));
    read::read_log(std::io::Cursor::new(&t.header[..]).chain(body), &name, sink)
}

/// Adds what is stored of each aggregate finding (its connections, packets and bytes, its
/// first and last time, its longest connection) to the new observation of it, so a day's
/// finding sums every file the watch job read, each read once. Top talkers stay as measured
/// (their figures are relative to their peers in one run).
pub fn add_stored_counts(
    store: &dyn Store,
    findings: &mut [crate::finding::Finding],
) -> Result<(), StoreError> {
    use std::collections::HashMap;
    use std::ops::ControlFlow;
    // Only the findings this run adds to (not every day's findings of its hosts).
    let wanted: HashMap<String, usize> = findings
        .iter()
        .enumerate()
        .filter(|(_, f)| f.feed != "top-talker")
        .map(|(i, f)| (f.compute_fingerprint(), i))
        .collect();
    let hosts: std::collections::BTreeSet<std::net::IpAddr> =
        findings.iter().filter_map(|f| f.ip).collect();
    let mut stored: Vec<(usize, crate::finding::Finding)> = Vec::new();
    let opts = crate::store::QueryOptions {
        since: None,
        include_resolved: true,
        limit: None,
    };
    for h in hosts {
        store.query_each(&crate::store::Query::Ip(h), &opts, &mut |f| {
            if f.source == SOURCE
                && let Some(&i) = wanted.get(&f.fingerprint)
            {
                stored.push((i, f));
            }
            Ok(ControlFlow::Continue(()))
        })?;
    }
    for (i, old) in &stored {
        let f = &mut findings[*i];
        // The sum is the day's latest observation: as late as anything it holds.
        f.time_source = f.time_source.max(old.time_source);
        let num = |g: &crate::finding::Finding, k: &str| g.extra.get(k).and_then(|v| v.as_u64());
        for k in ["connections", "packets", "bytes", "more_connections"] {
            if let (Some(a), Some(b)) = (num(f, k), num(old, k)) {
                f.set_extra(k, a.saturating_add(b));
            }
        }
        let dur = |g: &crate::finding::Finding| g.extra.get("duration").and_then(|v| v.as_f64());
        if let (Some(a), Some(b)) = (dur(f), dur(old))
            && b > a
        {
            f.set_extra("duration", b);
        }
        let time = |g: &crate::finding::Finding, k: &str| {
            g.extra.get(k).and_then(|v| v.as_str()).map(str::to_string)
        };
        // RFC 3339 UTC strings of one shape order as their times.
        if let (Some(a), Some(b)) = (time(f, "first"), time(old, "first"))
            && b < a
        {
            f.set_extra("first", b);
        }
        if let (Some(a), Some(b)) = (time(f, "last"), time(old, "last"))
            && b > a
        {
            f.set_extra("last", b);
        }
    }
    Ok(())
}

/// Stores the findings of `run` with `state` and its run-log entry `flows`, as one unit of
/// the apply path ([`crate::pipeline::apply`]: `partial` when a file could not be read,
/// `error` when none could). Flow findings are about hosts that are ours by `[flows]` (private
/// ranges included), so they are stored as in scope; the scope's `matched_prefix` is stamped
/// where the configured scope holds the host.
pub fn store_run(
    store: &Arc<dyn Store>,
    scope: &ScopeMatcher,
    run: &mut Analysed,
    state: Vec<(String, Option<Vec<u8>>)>,
    started: DateTime<Utc>,
    now: DateTime<Utc>,
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
    let apply = Apply::new(store.clone(), RunKind::Source(SOURCE.into()), started).observed_at(now);
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
    let (fr, _) = apply.only_unit(unit, &files.ending(), &|| now)?;
    let stats = IngestStats {
        new: fr.new,
        updated: fr.updated,
        ..Default::default()
    };
    Ok((stats, fr))
}

/// The indicator sets a flows run checks peers against: those of the list feeds `cfg`
/// enables (a feed switched off no longer names C2s), or every kept set without a config.
pub fn indicators(
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
