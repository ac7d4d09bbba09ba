//! The one apply path. Every unit of work reaches the store through an [`Apply`]: a fetched
//! unit ([`super::Runner::run_source`]), a streamed Shadowserver report, an imported file of any
//! source (`outwatch import ...`), a flows run and a restore. It writes the unit's findings and
//! state as one unit ([`Store::ingest_unit`]), adds up the counts, scrubs and logs rejected
//! rows, and makes the run-log entry ([`FetchRun`]): this module is the only place one is
//! made. A run of one unit (an import, a flows run, a restore) writes its entry with the
//! unit; a fetch of several units writes it when the run ends.
//!
//! Its methods are synchronous (they call the store): async code calls them through
//! [`crate::store::bridge`].
//!
//! **Names in the run log:** a fetch is logged under the source's name (`shadowserver`,
//! `feodotracker`, ...), an import as `import/<source>` (`import/shadowserver`, `import/hibp`,
//! `import/safebrowsing`, `import/cymru`), a flows run (the command and the watch job) as
//! `flows`, a restore as `restore`.
//!
//! **Outcomes** ([`outcome`]): `error` when the run failed as a whole (the source could not be
//! fetched, storing failed) or when units failed and nothing was read; `partial` when some
//! units (reports, domains, URLs, days, files) failed while others were read, or when a
//! suspicious drop was held back; `not_modified` when the source said nothing changed (HTTP
//! 304, no new lines for the flows watch); else `ok`. An import or flows run with unreadable
//! files is `partial` (or `error` when no file could be read).

use std::cell::RefCell;
use std::sync::{Arc, Mutex, MutexGuard};

use chrono::{DateTime, Utc};

use super::MAX_REPORTED_ERRORS;
use crate::finding::{Finding, FindingView};
use crate::secret::{Scrubber, Secret};
use crate::sources::{FetchOutput, RowError, RowSink, Unreadable};
use crate::store::{
    FetchRun, FindingWriter, Findings, IngestStats, ReadError, ReadFindings, Reading, RunEntry,
    RunOutcome, StateChange, Store, StoreError, Unit, UnitError, Write,
};
use crate::text::Clean;

/// What a run is; it names the run in the run log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunKind {
    /// A run of a source: a fetch of a configured source, or a flows run (`flows`, the
    /// command's or the watch job's): `<source>`.
    Source(String),
    /// `outwatch import <source>`: `import/<source>`.
    Import(String),
    /// `outwatch restore`: `restore`.
    Restore,
}

impl RunKind {
    /// The name of the run in the run log.
    pub fn name(&self) -> String {
        match self {
            RunKind::Source(s) => s.clone(),
            RunKind::Import(s) => format!("import/{s}"),
            RunKind::Restore => "restore".into(),
        }
    }
}

/// How a run ended, besides what its units counted.
#[derive(Debug, Clone, Default)]
pub struct Ending {
    /// The run failed as a whole (never a secret): the fetch's error, or storing failed.
    pub error: Option<String>,
    /// Units (reports, domains, URLs, days, files) that failed while others went on.
    pub failed: Vec<UnitError>,
    /// The run's error text when units failed (else they are named: [`summarise`]).
    pub message: Option<String>,
    /// Units read whole besides what the rows count tells (files of a flows run that held no
    /// line): a failed unit beside them makes the run partial, not an error.
    pub read_units: usize,
    /// The source said nothing changed.
    pub not_modified: bool,
    /// Findings the run resolved.
    pub resolved: usize,
    /// A suspicious drop that was held back (the run is partial).
    pub held: Option<String>,
    /// What the owner should know that is no failure.
    pub notices: Vec<String>,
}

/// The outcome of a run that read `fetched` rows and ended as `e` (the rule in the module's
/// documentation).
pub(crate) fn outcome(e: &Ending, fetched: usize) -> RunOutcome {
    if e.error.is_some() {
        RunOutcome::Error
    } else if !e.failed.is_empty() {
        if fetched > 0 || e.read_units > 0 {
            RunOutcome::Partial
        } else {
            RunOutcome::Error
        }
    } else if e.held.is_some() {
        RunOutcome::Partial
    } else if e.not_modified {
        RunOutcome::NotModified
    } else {
        RunOutcome::Ok
    }
}

/// What the units of one run added up to.
#[derive(Debug, Default)]
struct Tally {
    fetched: usize,
    warnings: usize,
    rejected: usize,
    rejected_rows: Vec<RowError>,
    accepted: usize,
    in_scope: usize,
    new: usize,
    updated: usize,
    max_time_source: Option<DateTime<Utc>>,
}

impl Tally {
    fn stored(&mut self, s: &IngestStats) {
        self.new += s.new;
        self.updated += s.updated;
    }
}

/// One run of work against the store (see the module's documentation).
pub struct Apply {
    name: String,
    store: std::sync::Arc<dyn Store>,
    write: Write,
    /// The source's secrets: whatever a unit says leaves here scrubbed of them by value, and
    /// its findings are masked of them before they are stored.
    scrubber: Arc<Scrubber>,
    started: DateTime<Utc>,
    /// When its findings were observed (`first_seen`/`last_seen`).
    now: DateTime<Utc>,
    tally: Mutex<Tally>,
}

impl Apply {
    /// A run of `kind` started (and observing) at `started`.
    pub fn new(store: std::sync::Arc<dyn Store>, kind: RunKind, started: DateTime<Utc>) -> Self {
        Apply {
            name: kind.name(),
            write: match kind {
                RunKind::Restore => Write::Restore,
                _ => Write::Observe,
            },
            store,
            scrubber: Arc::new(Scrubber::new(&[])),
            started,
            now: started,
            tally: Mutex::new(Tally::default()),
        }
    }

    /// The credentials the run's source sends: removed from everything it logs or keeps, and
    /// masked in every finding it stores.
    pub fn with_secrets(mut self, secrets: &[&Secret]) -> Self {
        self.scrubber = Arc::new(Scrubber::new(secrets));
        self
    }

    /// Findings observed at `now` rather than when the run started.
    pub fn observed_at(mut self, now: DateTime<Utc>) -> Self {
        self.now = now;
        self
    }

    /// The run's name in the run log.
    pub fn name(&self) -> &str {
        &self.name
    }

    fn tally(&self) -> MutexGuard<'_, Tally> {
        self.tally.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Rows read so far.
    pub fn fetched(&self) -> usize {
        self.tally().fetched
    }

    /// Counts rows rejected and values kept malformed that a unit's lists do not hold (a
    /// reader that keeps only the first problems, as the flows readers do).
    pub fn count_problems(&self, rejected: usize, warnings: usize) {
        let mut t = self.tally();
        t.rejected += rejected;
        t.warnings += warnings;
    }

    /// `text` without the run's secrets.
    pub fn scrub(&self, text: &str) -> String {
        self.scrubber.scrub(text)
    }

    /// Stores one unit held in memory (findings and state as one unit) and counts it.
    pub fn unit(&self, unit: FetchOutput) -> Result<IngestStats, StoreError> {
        let (findings, state) = self.count_unit(unit);
        if findings.is_empty() && state.is_empty() {
            return Ok(IngestStats::default());
        }
        let stats = self.ingest(Findings::Owned(findings), state, None)?;
        self.tally().stored(&stats);
        Ok(stats)
    }

    /// Stores one unit read as a stream by `read` into the core sink: nothing of it when the
    /// reader fails (`Ok(Err)`: a failed unit), else its findings and `state` as one unit.
    /// `Err` when the store failed.
    pub fn streamed(
        &self,
        read: impl FnOnce(&mut dyn RowSink) -> Result<usize, ReadError>,
        state: Vec<StateChange>,
    ) -> Result<Result<IngestStats, Unreadable>, StoreError> {
        let counts = RefCell::new(Counts::default());
        let findings = Findings::Streamed(
            reader(read, &counts, &self.scrubber),
            Reading::WholeOrNothing,
        );
        let done = self.ingest(findings, state, None);
        match unread(done)? {
            Ok(stats) => {
                self.add(counts.into_inner(), &stats);
                Ok(Ok(stats))
            }
            Err(e) => Ok(Err(e)),
        }
    }

    /// Ends the run: makes its entry, records it and flushes the store. Returns the entry and
    /// the first rejected rows.
    pub fn finish(
        &self,
        ending: &Ending,
        finished: DateTime<Utc>,
    ) -> Result<(FetchRun, Vec<RowError>), StoreError> {
        let run = self.entry(ending, finished);
        self.store.record_run(&run)?;
        self.store.flush()?;
        Ok((run, self.take_rejected()))
    }

    /// A run of one unit held in memory: the unit and the run's entry written together, then
    /// a flush. Returns the entry and the first rejected rows.
    pub fn only_unit(
        &self,
        unit: FetchOutput,
        ending: &Ending,
        finished: &dyn Fn() -> DateTime<Utc>,
    ) -> Result<(FetchRun, Vec<RowError>), StoreError> {
        let (findings, state) = self.count_unit(unit);
        let made = RefCell::new(None);
        let run: RunEntry<'_> = Box::new(|stats| {
            self.tally().stored(stats);
            let run = self.entry(ending, finished());
            *made.borrow_mut() = Some(run.clone());
            run
        });
        self.ingest(Findings::Owned(findings), state, Some(run))?;
        let run = made.into_inner().ok_or_else(no_entry)?;
        self.store.flush()?;
        Ok((run, self.take_rejected()))
    }

    /// A run of one streamed unit (an import of files, a restore): the unit and the run's entry
    /// written together, then a flush. The reader returns its rows and something of its own
    /// (`T`: the files it could not read...), from which `ending` says how the run ended. The
    /// reader's own failure (possible when `reading` says so) leaves nothing and logs nothing
    /// (`Ok(Err)`).
    #[allow(clippy::type_complexity)]
    pub fn only_streamed<T>(
        &self,
        reading: Reading,
        read: impl FnOnce(&mut dyn RowSink) -> Result<(usize, T), ReadError>,
        ending: impl FnOnce(&T) -> Ending,
        finished: &dyn Fn() -> DateTime<Utc>,
    ) -> Result<Result<(FetchRun, Vec<RowError>, T), Unreadable>, StoreError> {
        let counts = RefCell::new(Counts::default());
        let own = RefCell::new(None);
        let read = |sink: &mut dyn RowSink| {
            let (rows, t) = read(sink)?;
            *own.borrow_mut() = Some(t);
            Ok(rows)
        };
        let made = RefCell::new(None);
        let run: RunEntry<'_> = Box::new(|stats| {
            self.add(counts.take(), stats);
            let e = own.borrow().as_ref().map(ending).unwrap_or_default();
            let run = self.entry(&e, finished());
            *made.borrow_mut() = Some(run.clone());
            run
        });
        let done = self.ingest(
            Findings::Streamed(reader(read, &counts, &self.scrubber), reading),
            Vec::new(),
            Some(run),
        );
        if let Err(e) = unread(done)? {
            return Ok(Err(e));
        }
        let (run, own) = made
            .into_inner()
            .zip(own.into_inner())
            .ok_or_else(no_entry)?;
        self.store.flush()?;
        Ok(Ok((run, self.take_rejected(), own)))
    }

    /// Adds what a streamed unit's reader counted and what storing it did.
    fn add(&self, c: Counts, stats: &IngestStats) {
        let mut t = self.tally();
        t.fetched += c.rows;
        self.record_rejected(&mut t, c.rejected, c.rejected_count);
        t.warnings += c.warnings;
        t.accepted += c.accepted;
        t.in_scope += c.in_scope;
        t.max_time_source = t.max_time_source.max(c.max_time_source);
        t.stored(stats);
    }

    /// Counts an in-memory unit (rows, rejected rows scrubbed and logged, warnings, accepted
    /// findings) and hands back its findings and state.
    fn count_unit(&self, mut unit: FetchOutput) -> (Vec<Finding>, Vec<StateChange>) {
        let mut t = self.tally();
        t.fetched += unit.fetched;
        let n = unit.rejected.len();
        self.record_rejected(&mut t, std::mem::take(&mut unit.rejected), n);
        t.warnings += unit.warnings.len();
        for w in unit.warnings.iter().take(MAX_REPORTED_ERRORS) {
            tracing::info!(
                source = %self.name,
                at = %Clean(&self.scrub(&w.location)),
                "kept with a malformed value: {}",
                Clean(&self.scrub(&w.message))
            );
        }
        t.accepted += unit.findings.len();
        t.in_scope += unit.findings.iter().filter(|f| f.in_scope).count();
        t.max_time_source = t
            .max_time_source
            .max(unit.findings.iter().filter_map(|f| f.time_source).max());
        drop(t);
        self.scrubber.mask_findings(&mut unit.findings);
        (unit.findings, unit.state)
    }

    /// Counts `count` rejected rows and keeps (scrubbed, logged) the first of `rows` until the
    /// run holds [`MAX_REPORTED_ERRORS`].
    fn record_rejected(&self, t: &mut Tally, rows: Vec<RowError>, count: usize) {
        t.rejected += count;
        for mut e in rows {
            if t.rejected_rows.len() >= MAX_REPORTED_ERRORS {
                break;
            }
            e.location = self.scrub(&e.location);
            e.message = self.scrub(&e.message);
            tracing::warn!(
                source = %self.name,
                at = %Clean(&e.location),
                "rejected: {}",
                Clean(&e.message)
            );
            t.rejected_rows.push(e);
        }
    }

    fn ingest(
        &self,
        findings: Findings<'_>,
        state: Vec<StateChange>,
        run: Option<crate::store::RunEntry<'_>>,
    ) -> Result<IngestStats, StoreError> {
        self.store.ingest_unit(Unit {
            now: self.now,
            write: self.write,
            findings,
            state,
            run,
        })
    }

    fn take_rejected(&self) -> Vec<RowError> {
        std::mem::take(&mut self.tally().rejected_rows)
    }

    /// The run's entry as it stands (not recorded): the one place a [`FetchRun`] is filled in.
    pub fn entry(&self, ending: &Ending, finished: DateTime<Utc>) -> FetchRun {
        let t = self.tally();
        let mut run = FetchRun::begun(&self.name, self.started);
        run.finished = finished;
        run.outcome = outcome(ending, t.fetched);
        run.fetched = t.fetched;
        run.accepted = t.accepted;
        run.rejected = t.rejected;
        run.warnings = t.warnings;
        run.in_scope = t.in_scope;
        run.new = t.new;
        run.updated = t.updated;
        run.resolved = ending.resolved;
        run.error = ending
            .error
            .clone()
            .or_else(|| {
                (!ending.failed.is_empty())
                    .then(|| ending.message.clone())
                    .map(|m| m.unwrap_or_else(|| summarise(&ending.failed)))
            })
            .or_else(|| ending.held.clone());
        run.failed_units = ending.failed.clone();
        run.max_time_source = t.max_time_source;
        run.notices = ending.notices.clone();
        run
    }
}

impl FetchRun {
    /// A run named `source` started at `started`: `ok` so far, nothing counted, finished at
    /// once. The one construction of a run-log entry: [`Apply::entry`] fills it in for a unit
    /// of work, the notify run (`notify::run_entry`) and the daemon's entry for an import whose
    /// client went away start from it too; tests make run logs with it.
    pub fn begun(source: &str, started: DateTime<Utc>) -> Self {
        FetchRun {
            source: source.to_string(),
            started,
            finished: started,
            outcome: RunOutcome::Ok,
            fetched: 0,
            accepted: 0,
            rejected: 0,
            warnings: 0,
            in_scope: 0,
            new: 0,
            updated: 0,
            resolved: 0,
            error: None,
            failed_units: Vec::new(),
            max_time_source: None,
            notices: Vec::new(),
        }
    }
}

/// A backend stored a unit without reading it or making its run entry (a broken backend: the
/// contract says it does both).
fn no_entry() -> StoreError {
    StoreError::Refused("the store stored a unit without its run entry".into())
}

/// A store result with the unit's reader's own failure taken out: `Ok(Err)`.
fn unread<T>(r: Result<T, StoreError>) -> Result<Result<T, Unreadable>, StoreError> {
    match r {
        Ok(v) => Ok(Ok(v)),
        Err(StoreError::Unread(ReadError::Unreadable(why))) => Ok(Err(Unreadable(why))),
        Err(StoreError::Unread(ReadError::Store(e))) => Err(*e),
        Err(e) => Err(e),
    }
}

/// What a streamed unit's reader handed over, counted on the way to the store.
#[derive(Debug, Default)]
struct Counts {
    rows: usize,
    accepted: usize,
    in_scope: usize,
    max_time_source: Option<DateTime<Utc>>,
    /// The first [`MAX_REPORTED_ERRORS`] rejected rows; `rejected_count` counts all.
    rejected: Vec<RowError>,
    rejected_count: usize,
    warnings: usize,
}

/// The core sink in front of the store's writer: counts, masks the source's secrets in a
/// finding that holds one, then hands findings on.
struct Counting<'w> {
    writer: &'w mut dyn FindingWriter,
    scrubber: &'w Scrubber,
    c: Counts,
}

impl Counting<'_> {
    fn count(&mut self, in_scope: bool, time_source: Option<DateTime<Utc>>) {
        self.c.accepted += 1;
        self.c.in_scope += usize::from(in_scope);
        self.c.max_time_source = self.c.max_time_source.max(time_source);
    }
}

impl RowSink for Counting<'_> {
    fn finding(&mut self, f: &FindingView<'_>) -> Result<(), StoreError> {
        self.count(f.in_scope, f.time_source);
        match self.scrubber.masked(f) {
            Some(m) => self.writer.view(&m.view()),
            None => self.writer.view(f),
        }
    }

    fn owned(&mut self, f: &Finding) -> Result<(), StoreError> {
        self.count(f.in_scope, f.time_source);
        if self.scrubber.view_holds(&f.view()) {
            let mut m = f.clone();
            self.scrubber.mask_finding(&mut m);
            return self.writer.finding(&m);
        }
        self.writer.finding(f)
    }

    fn rejected(&mut self, e: RowError) {
        self.c.rejected_count += 1;
        if self.c.rejected.len() < MAX_REPORTED_ERRORS {
            self.c.rejected.push(e);
        }
    }

    fn warning(&mut self, _w: RowError) {
        self.c.warnings += 1;
    }
}

/// The store's reader of a streamed unit: `read` through a [`Counting`] sink, whose counts
/// land in `counts` when the reader succeeded.
fn reader<'a>(
    read: impl FnOnce(&mut dyn RowSink) -> Result<usize, ReadError> + 'a,
    counts: &'a RefCell<Counts>,
    scrubber: &'a Scrubber,
) -> ReadFindings<'a> {
    Box::new(move |writer: &mut dyn FindingWriter| {
        let mut sink = Counting {
            writer,
            scrubber,
            c: Counts::default(),
        };
        let rows = read(&mut sink)?;
        sink.c.rows = rows;
        *counts.borrow_mut() = sink.c;
        Ok(())
    })
}

/// What a run made of its files (an import, a flows run): those it read and those it could
/// not (each named, with why).
#[derive(Debug, Clone, Default)]
pub struct FilesRead {
    pub read: usize,
    pub failed: Vec<UnitError>,
}

impl FilesRead {
    /// How a run of these files ended: `partial` when some could not be read, `error` when
    /// none could, its error text naming the first five.
    pub fn ending(&self) -> Ending {
        let names: Vec<&str> = self
            .failed
            .iter()
            .map(|u| u.unit.as_str())
            .take(5)
            .collect();
        Ending {
            failed: self.failed.clone(),
            read_units: self.read,
            message: (!self.failed.is_empty()).then(|| {
                format!(
                    "{} file(s) could not be read: {}",
                    self.failed.len(),
                    names.join(", ")
                )
            }),
            ..Default::default()
        }
    }
}

/// One line naming the failed units.
pub(crate) fn summarise(failed: &[UnitError]) -> String {
    let mut s = format!("{} unit(s) failed: ", failed.len());
    for (i, u) in failed.iter().enumerate() {
        if i > 0 {
            s.push_str("; ");
        }
        s.push_str(&u.unit);
        s.push_str(": ");
        s.push_str(&u.error);
    }
    s
}
