//! Bulk ingest in home order, whatever the order of the rows.
//!
//! Real reports list hosts by time, not by address, so consecutive rows land in different
//! buckets, and ingesting them chunk by chunk would rewrite a bucket once per chunk touching
//! it. [`SortedIngest`] collects prepared findings in runs of bounded size. While every run
//! arrives in home order (a report sorted by address), runs are ingested as they fill. From the
//! first run that does not, each run is sorted by home and spilled to an anonymous temporary
//! file, and [`SortedIngest::finish`] merges the runs, so each bucket is written once.
//!
//! Each ingest call stays atomic and bounded: about [`CHUNK`] findings, never splitting a home
//! (a home's findings all go in one call, unless the home alone outgrows a run). Rows with one
//! fingerprint keep their order, across runs too, so the last one wins: the store ends as one
//! ingest call of all rows leaves it.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Seek, Write};
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};

use super::SledStore;
use super::prepared::PreparedBatch;
use super::record::FP_LEN;
use super::write::Mode;
use crate::finding::{Finding, FindingView};
use crate::store::{FetchRun, IngestStats, Result, StateChange, StoreError};

/// Findings per ingest call (each call is atomic and bounded in memory).
pub(super) const CHUNK: usize = 10_000;
/// Prepared bytes held in memory before a run ends (about 100,000 rows of a scan report).
pub(super) const RUN_BYTES: usize = 32 << 20;

/// Collects findings of one bulk import and ingests them in home order.
pub(super) struct SortedIngest<'s> {
    store: &'s SledStore,
    now: DateTime<Utc>,
    mode: Mode,
    run: PreparedBatch,
    spilled: Vec<File>,
    spill_dir: PathBuf,
    run_bytes: usize,
    chunk: usize,
    stats: IngestStats,
    /// Store nothing before [`SortedIngest::finish`]: every run is spilled.
    deferred: bool,
}

impl<'s> SortedIngest<'s> {
    /// Findings written by `mode` (observed at `now` when it merges), spilled (when they must
    /// be) into `spill_dir`.
    pub(super) fn new(
        store: &'s SledStore,
        now: DateTime<Utc>,
        mode: Mode,
        spill_dir: &Path,
    ) -> Self {
        Self::with_limits(store, now, mode, spill_dir, (RUN_BYTES, CHUNK))
    }

    /// [`SortedIngest::new`] with other run and chunk sizes (tests use tiny ones).
    pub(super) fn with_limits(
        store: &'s SledStore,
        now: DateTime<Utc>,
        mode: Mode,
        spill_dir: &Path,
        (run_bytes, chunk): (usize, usize),
    ) -> Self {
        // Room for a whole run, so it never reallocates; it is emptied and reused.
        let run = PreparedBatch::with_capacity(now, run_bytes.min(RUN_BYTES) + (1 << 20));
        SortedIngest {
            store,
            now,
            mode,
            run: match mode {
                Mode::Merge(_) => run,
                Mode::Replace => run.keeping_given(),
            },
            spilled: Vec::new(),
            spill_dir: spill_dir.to_path_buf(),
            run_bytes,
            chunk: chunk.max(1),
            stats: IngestStats::default(),
            deferred: false,
        }
    }

    /// Writes nothing to the store until [`SortedIngest::finish`]: every full run is spilled,
    /// so an import whose input turns out bad (a cut report) can be dropped having stored
    /// nothing. Same memory bound, somewhat slower for input in home order.
    pub(super) fn deferred(mut self) -> Self {
        self.deferred = true;
        self
    }

    /// Adds a sealed finding.
    pub(super) fn push_view(&mut self, v: &FindingView<'_>) -> Result<()> {
        self.run.push_view(v)?;
        self.after_push()
    }

    /// Adds an owned finding (sealed here when it is not).
    pub(super) fn push(&mut self, f: &Finding) -> Result<()> {
        self.run.push(f)?;
        self.after_push()
    }

    fn after_push(&mut self) -> Result<()> {
        if self.run.bytes() >= self.run_bytes {
            self.end_run()?;
        }
        Ok(())
    }

    /// Runs spilled to disk so far.
    #[cfg(test)]
    pub(super) fn spilled_runs(&self) -> usize {
        self.spilled.len()
    }

    /// Ingests what is left, then writes `state` and the run-log entry `run` makes from the
    /// statistics in a batch of their own (so they land only once every finding did), and
    /// returns the statistics of the whole import.
    pub(super) fn finish_with(
        self,
        state: Vec<StateChange>,
        run: Option<crate::store::RunEntry<'_>>,
    ) -> Result<IngestStats> {
        let store = self.store;
        let stats = self.finish()?;
        let run: Option<FetchRun> = run.map(|make| make(&stats));
        if !state.is_empty() || run.is_some() {
            let _g = store.lock();
            store.finish_batch(
                sled::Batch::default(),
                Default::default(),
                state,
                run.as_ref(),
            )?;
        }
        Ok(stats)
    }

    /// Ingests what is left and returns the statistics of the whole import.
    pub(super) fn finish(mut self) -> Result<IngestStats> {
        if self.spilled.is_empty() {
            if !self.run.is_sorted_by_home() {
                self.run.sort_by_home();
            }
            let all = 0..self.run.len();
            let s = ingest_in_place(self.store, self.mode, self.chunk, &self.run, all)?;
            self.stats.add(s);
        } else {
            if !self.run.is_empty() {
                let file = spill(&self.spill_dir, &mut self.run)?;
                self.spilled.push(file);
            }
            // The run buffer is not needed while merging.
            self.run = PreparedBatch::with_capacity(self.now, 0);
            let files = std::mem::take(&mut self.spilled);
            self.ingest_merged(files.into_iter().map(Source::new).collect())?;
        }
        Ok(self.stats)
    }

    fn end_run(&mut self) -> Result<()> {
        // Once a run was spilled every later one must be too, or a later row could be applied
        // before an earlier one.
        if !self.deferred && self.spilled.is_empty() && self.run.is_sorted_by_home() {
            // The last home may go on in the next rows: it stays for the next run, so that one
            // ingest call holds all of it (as when merging). A run of one home goes as it is.
            let keep = match self.run.last_home_start() {
                0 => self.run.len(),
                n => n,
            };
            let s = ingest_in_place(self.store, self.mode, self.chunk, &self.run, 0..keep)?;
            self.stats.add(s);
            self.run.keep_from(keep);
        } else {
            let file = spill(&self.spill_dir, &mut self.run)?;
            self.spilled.push(file);
            self.run.clear();
        }
        Ok(())
    }

    /// Merges spilled runs, each in home order, into ingest calls of whole homes.
    fn ingest_merged(&mut self, mut sources: Vec<Source>) -> Result<()> {
        let mut heap = BinaryHeap::with_capacity(sources.len());
        for (i, s) in sources.iter_mut().enumerate() {
            if s.advance()? {
                heap.push(Reverse((s.home().to_vec(), i)));
            }
        }
        let mut out = PreparedBatch::new(self.now);
        if let Mode::Replace = self.mode {
            out = out.keeping_given();
        }
        // Ties go to the earlier run, so rows of one home keep their order.
        while let Some(Reverse((mut home, i))) = heap.pop() {
            if out.len() >= self.chunk && out.last_home() != Some(&home[..]) {
                self.stats
                    .add(self.store.ingest_prepared(&out, 0..out.len(), self.mode)?);
                out.clear();
            }
            let s = &mut sources[i];
            out.push_encoded(s.fp, s.home(), s.rec(), s.posts());
            if s.advance()? {
                home.clear();
                home.extend_from_slice(s.home());
                heap.push(Reverse((home, i)));
            }
        }
        if !out.is_empty() {
            self.stats
                .add(self.store.ingest_prepared(&out, 0..out.len(), self.mode)?);
        }
        Ok(())
    }
}

/// Writes a run, sorted by home, to an anonymous temporary file in `dir`, rewound.
fn spill(dir: &Path, run: &mut PreparedBatch) -> Result<File> {
    run.sort_by_home();
    let io = |cause: std::io::Error| {
        StoreError::TempFile {
            dir: dir.display().to_string(),
            cause,
        }
        .or_disk_full(dir)
    };
    let file = tempfile::tempfile_in(dir).map_err(io)?;
    let mut w = BufWriter::with_capacity(1 << 20, file);
    for it in &run.items {
        let (home, rec, posts) = (run.slice(it.home), run.slice(it.rec), run.slice(it.posts));
        let home_len = u16::try_from(home.len()).map_err(|_| {
            StoreError::Refused(format!("a home key of {} bytes is too long", home.len()))
        })?;
        w.write_all(&it.fp).map_err(io)?;
        w.write_all(&home_len.to_le_bytes()).map_err(io)?;
        w.write_all(&(rec.len() as u32).to_le_bytes()).map_err(io)?;
        w.write_all(&(posts.len() as u32).to_le_bytes())
            .map_err(io)?;
        w.write_all(home).map_err(io)?;
        w.write_all(rec).map_err(io)?;
        w.write_all(posts).map_err(io)?;
    }
    let mut file = w.into_inner().map_err(|e| io(e.into_error()))?;
    file.rewind().map_err(io)?;
    Ok(file)
}

/// Ingests the `items` of a batch in home order, in place: calls of about `chunk` findings,
/// cut between homes.
fn ingest_in_place(
    store: &SledStore,
    mode: Mode,
    chunk: usize,
    batch: &PreparedBatch,
    items: std::ops::Range<usize>,
) -> Result<IngestStats> {
    let mut stats = IngestStats::default();
    let mut start = items.start;
    while start < items.end {
        let mut end = (start + chunk).min(items.end);
        while end < items.end
            && batch.slice(batch.items[end].home) == batch.slice(batch.items[end - 1].home)
        {
            end += 1;
        }
        stats.add(store.ingest_prepared(batch, start..end, mode)?);
        start = end;
    }
    Ok(stats)
}

/// A spilled run being merged: the current entry.
struct Source {
    r: BufReader<File>,
    fp: [u8; FP_LEN],
    /// Home, record and postings of the current entry, back to back.
    cur: Vec<u8>,
    home: usize,
    rec: usize,
}

impl Source {
    fn new(f: File) -> Self {
        Source {
            r: BufReader::with_capacity(256 << 10, f),
            fp: [0; FP_LEN],
            cur: Vec::new(),
            home: 0,
            rec: 0,
        }
    }

    /// Reads the next entry; false at the end of the run.
    fn advance(&mut self) -> Result<bool> {
        let io = |cause: std::io::Error| StoreError::TempFile {
            dir: "the import's temporary file".into(),
            cause,
        };
        let mut head = [0u8; FP_LEN + 10];
        match self.r.read_exact(&mut head) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(false),
            Err(e) => return Err(io(e)),
        }
        self.fp.copy_from_slice(&head[..FP_LEN]);
        let n32 = |a: usize| u32::from_le_bytes(head[a..a + 4].try_into().expect("4 bytes"));
        self.home = u16::from_le_bytes([head[FP_LEN], head[FP_LEN + 1]]) as usize;
        self.rec = n32(FP_LEN + 2) as usize;
        let posts = n32(FP_LEN + 6) as usize;
        self.cur.resize(self.home + self.rec + posts, 0);
        self.r.read_exact(&mut self.cur).map_err(io)?;
        Ok(true)
    }

    fn home(&self) -> &[u8] {
        &self.cur[..self.home]
    }

    fn rec(&self) -> &[u8] {
        &self.cur[self.home..self.home + self.rec]
    }

    fn posts(&self) -> &[u8] {
        &self.cur[self.home + self.rec..]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::finding::{Classification, Finding, Severity};
    use crate::store::{IngestOptions, Query, QueryOptions, Store};

    /// Findings over a few /24s and domain groups, some repeated with other extra values.
    fn findings(n: usize) -> Vec<Finding> {
        let mut v = Vec::new();
        for i in 0..n {
            let mut f = Finding::new(
                "shadowserver",
                "scan_dns",
                Classification::new("", "vulnerable-system", "open-dns"),
                Severity::Medium,
            );
            // A deterministic scramble: rows are not in address order.
            let x = (i * 7919) % n;
            if x.is_multiple_of(5) {
                f.domain = Some(format!("h{}.zone{}.example.org", x % 11, x % 3));
            } else {
                f.ip = Some(format!("192.0.{}.{}", x % 7, x % 13).parse().unwrap());
                f.domain = x.is_multiple_of(2).then(|| format!("h{x}.dyn.example.net"));
            }
            f.set_extra("row", i as u64);
            f.seal();
            v.push(f);
        }
        v
    }

    fn contents(s: &SledStore) -> Vec<Finding> {
        let mut all = Vec::new();
        s.for_each(&mut |f| {
            all.push(f);
            Ok(())
        })
        .unwrap();
        all.sort_by(|a, b| a.fingerprint.cmp(&b.fingerprint));
        all
    }

    fn now() -> DateTime<Utc> {
        DateTime::from_timestamp(1_790_000_000, 0).unwrap()
    }

    /// The same findings ingested in one call (the reference) and through `SortedIngest` with
    /// the given limits: same store contents, same statistics.
    fn check(fs: &[Finding], run_bytes: usize, chunk: usize) -> usize {
        let d1 = tempfile::tempdir().unwrap();
        let reference = SledStore::open(d1.path()).unwrap();
        let want = reference
            .ingest(fs.to_vec(), Vec::new(), &IngestOptions { now: now() })
            .unwrap();
        let d2 = tempfile::tempdir().unwrap();
        let s = SledStore::open(d2.path()).unwrap();
        let mut si =
            SortedIngest::with_limits(&s, now(), Mode::Merge(now()), d2.path(), (run_bytes, chunk));
        for f in fs {
            si.push_view(&f.view()).unwrap();
        }
        let spilled = si.spilled_runs();
        let got = si.finish().unwrap();
        assert_eq!(got, want);
        assert_eq!(contents(&s), contents(&reference));
        // Lookups through postings still work.
        let q = Query::Domain("dyn.example.net".into());
        let opts = QueryOptions::default();
        assert_eq!(
            s.query(&q, &opts).unwrap().len(),
            reference.query(&q, &opts).unwrap().len()
        );
        spilled
    }

    #[test]
    fn merged_runs_store_what_one_ingest_stores() {
        let fs = findings(600);
        // Tiny runs and chunks: many spills, many ingest calls; the last row of a repeated
        // finding must win even when its twin sits in an earlier run.
        let spilled = check(&fs, 4 << 10, 7);
        assert!(spilled > 5, "{spilled}");
        // One run in memory.
        assert_eq!(check(&fs, usize::MAX, 10_000), 0);
        assert_eq!(check(&fs, usize::MAX, 3), 0);
    }

    #[test]
    fn a_deferred_ingest_stores_nothing_before_it_finishes() {
        let mut fs = findings(600);
        fs.retain(|f| f.ip.is_some());
        fs.sort_by_key(|f| f.ip);
        let d = tempfile::tempdir().unwrap();
        let s = SledStore::open(d.path()).unwrap();
        let mut si =
            SortedIngest::with_limits(&s, now(), Mode::Merge(now()), d.path(), (4 << 10, 7))
                .deferred();
        for f in &fs {
            si.push_view(&f.view()).unwrap();
        }
        assert!(si.spilled_runs() > 1);
        assert_eq!(s.count().unwrap(), 0);
        drop(si);
        assert_eq!(s.count().unwrap(), 0);
        let mut si =
            SortedIngest::with_limits(&s, now(), Mode::Merge(now()), d.path(), (4 << 10, 7))
                .deferred();
        for f in &fs {
            si.push_view(&f.view()).unwrap();
        }
        let st = si
            .finish_with(vec![("k".into(), Some(b"v".to_vec()))], None)
            .unwrap();
        assert_eq!(st.new + st.duplicates, fs.len());
        assert_eq!(s.count().unwrap(), st.new);
        assert_eq!(s.state_get("k").unwrap().as_deref(), Some(&b"v"[..]));
    }

    #[test]
    fn runs_in_address_order_are_not_spilled() {
        let mut fs = findings(600);
        fs.retain(|f| f.ip.is_some());
        fs.sort_by_key(|f| f.ip);
        // Runs of a few homes each (a home larger than a run would be split across calls).
        assert_eq!(check(&fs, 48 << 10, 7), 0);
        // One run out of order: it and every later run are spilled.
        let mut mixed = fs.clone();
        let tail = mixed.split_off(300);
        mixed.extend(tail.into_iter().rev());
        assert!(check(&mixed, 48 << 10, 7) > 0);
    }
}
