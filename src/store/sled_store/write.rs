//! Writing findings into buckets: grouping a call's findings by home, planning the buckets they
//! go to, rewriting each bucket once (stored twins merged by the life-cycle rule, repeats within
//! the call folded), new posting entries appended to their pages, all in one sled batch.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::ops::Bound;

use chrono::{DateTime, Utc};

use super::keys;
use super::prepared::PreparedBatch;
use super::record::{self, BucketWriter, FP_LEN};
use super::{LayoutError, REWRITE_BATCH_BYTES, SledStore, corrupt, engine};
use crate::finding::Finding;
use crate::store::{FetchRun, IngestStats, RUN_LOG_DAYS, Result, RunEntry, StateChange, lifecycle};

fn fp_of(f: &Finding) -> Result<[u8; FP_LEN]> {
    keys::fp_checked(&f.fingerprint)
}

/// The new posting entries of one batch, by domain group (posting prefix). Entries of one
/// group tend to come together (neighbouring hosts share their domain group), so the current
/// key is kept aside and the map searched only when the key changes.
#[derive(Default)]
pub(super) struct NewPostings {
    map: BTreeMap<Vec<u8>, Vec<u8>>,
    key: Vec<u8>,
    entries: Vec<u8>,
}

impl NewPostings {
    /// Appends a posting entry to the new entries of its key.
    fn add(&mut self, key: &[u8], entry: &[u8]) {
        if self.key != key {
            self.park();
            self.key.extend_from_slice(key);
        }
        self.entries.extend_from_slice(entry);
    }

    fn park(&mut self) {
        if !self.key.is_empty() {
            self.map
                .entry(std::mem::take(&mut self.key))
                .or_default()
                .append(&mut self.entries);
        }
    }

    /// Every key with its new entries, in key order.
    fn into_map(mut self) -> BTreeMap<Vec<u8>, Vec<u8>> {
        self.park();
        self.map
    }
}

/// An incoming finding: (fingerprint, the caller's index).
pub(super) type Incoming = ([u8; FP_LEN], usize);

/// Incoming findings grouped by home, homes in key order, without a vector per home: each
/// home's findings are a run of `entries`, sorted by fingerprint, one per fingerprint. Of a
/// fingerprint given more than once, the first one given stands in `entries` and the later ones
/// are listed in `repeats` under its index, in the order given, to be folded into it.
pub(super) struct ByHome<K> {
    pub(super) entries: Vec<Incoming>,
    /// Each home and the end of its run in `entries` (the run starts where the previous ends).
    pub(super) homes: Vec<(K, usize)>,
    /// Repeated fingerprints folded into their first.
    pub(super) duplicates: usize,
    /// The caller's index of a repeated fingerprint's first finding → the later ones.
    repeats: HashMap<usize, Vec<usize>>,
}

/// Groups (home, incoming) pairs by home. Bulk imports arrive in home order, so this is one
/// pass comparing each home with the one before; other input is sorted by home first.
pub(super) fn group_by_home<K: Ord>(pairs: impl Iterator<Item = (K, Incoming)>) -> ByHome<K> {
    let mut pairs: Vec<(K, Incoming)> = pairs.collect();
    // The index of each home's first pair, if the pairs are in home order.
    let starts = |pairs: &[(K, Incoming)]| {
        let mut starts = Vec::new();
        for (i, w) in pairs.windows(2).enumerate() {
            match w[0].0.cmp(&w[1].0) {
                std::cmp::Ordering::Less => starts.push(i + 1),
                std::cmp::Ordering::Equal => {}
                std::cmp::Ordering::Greater => return None,
            }
        }
        Some(starts)
    };
    let starts = match starts(&pairs) {
        Some(s) => s,
        None => {
            // Which of a home's findings wins goes by index, not by position: any sort does.
            pairs.sort_unstable_by(|a, b| a.0.cmp(&b.0));
            starts(&pairs).expect("sorted")
        }
    };
    let mut by = ByHome {
        entries: Vec::with_capacity(pairs.len()),
        homes: Vec::with_capacity(starts.len() + 1),
        duplicates: 0,
        repeats: HashMap::new(),
    };
    let mut next = starts.iter().copied().peekable();
    for (i, (k, e)) in pairs.into_iter().enumerate() {
        if i == 0 || next.next_if_eq(&i).is_some() {
            by.close_home();
            by.homes.push((k, 0));
        }
        by.entries.push(e);
    }
    by.close_home();
    by
}

impl<K> ByHome<K> {
    /// Ends the last home's run: sorted by fingerprint; of a repeated one the lowest index (the
    /// first one given) stays, the others go to `repeats`.
    fn close_home(&mut self) {
        let start = match self.homes.len() {
            0 => return,
            1 => 0,
            n => self.homes[n - 2].1,
        };
        let run = &mut self.entries[start..];
        if run.len() > 1 {
            run.sort_unstable();
            let mut w = start + 1;
            for r in start + 1..self.entries.len() {
                if self.entries[r].0 != self.entries[w - 1].0 {
                    self.entries[w] = self.entries[r];
                    w += 1;
                } else {
                    let first = self.entries[w - 1].1;
                    self.repeats
                        .entry(first)
                        .or_default()
                        .push(self.entries[r].1);
                }
            }
            self.duplicates += self.entries.len() - w;
            self.entries.truncate(w);
        }
        let end = self.entries.len();
        if let Some(h) = self.homes.last_mut() {
            h.1 = end;
        }
    }

    /// The homes, each with its findings.
    pub(super) fn iter(&self) -> impl Iterator<Item = (&K, std::ops::Range<usize>)> {
        let mut start = 0;
        self.homes.iter().map(move |(k, end)| {
            let r = start..*end;
            start = *end;
            (k, r)
        })
    }

    /// The run of `entries` of home `h`.
    fn run(&self, h: usize) -> std::ops::Range<usize> {
        let start = if h == 0 { 0 } else { self.homes[h - 1].1 };
        start..self.homes[h].1
    }

    /// The later findings with the fingerprint of the one at caller's index `first`, in the
    /// order given.
    pub(super) fn repeats_of(&self, first: usize) -> &[usize] {
        if self.repeats.is_empty() {
            return &[];
        }
        self.repeats.get(&first).map_or(&[], Vec::as_slice)
    }
}

impl<K: AsRef<[u8]>> ByHome<K> {
    /// The caller's index of the incoming finding, among `target`'s, that has the fingerprint
    /// of the stored record `h`. In a range bucket only the home of the record's address can
    /// hold it (a fingerprint and a home are both functions of the identity): a binary search
    /// over the target's homes, then over that home's fingerprints, with no sorting.
    fn find(&self, target: &Target, h: &record::Header<'_>) -> Option<usize> {
        let home = if target.range {
            let homes = &self.homes[target.homes.clone()];
            let j = homes
                .binary_search_by(|(k, _)| {
                    keys::range_home_ip(k.as_ref())
                        .unwrap_or_default()
                        .cmp(h.ip)
                })
                .ok()?;
            target.homes.start + j
        } else {
            // A fixed home is a target of its own.
            target.homes.start
        };
        let run = &self.entries[self.run(home)];
        let j = run.binary_search_by(|(fp, _)| fp.cmp(&h.fp)).ok()?;
        Some(run[j].1)
    }
}

/// A bucket to write: its key, whether it is a range bucket (addresses; split when it grows),
/// and the incoming findings it takes, one per fingerprint: in home order, each home's by
/// fingerprint (a range bucket takes the findings of consecutive homes, which stay in address
/// order so that its records need no sorting).
struct Target {
    key: Vec<u8>,
    range: bool,
    /// A run of [`ByHome::entries`].
    incoming: std::ops::Range<usize>,
    /// The homes whose entries these are, indices into [`ByHome::homes`].
    homes: std::ops::Range<usize>,
}

/// Adds the bucket `w` holds to `batch` under `key`; a range bucket grown past
/// [`keys::RANGE_BUCKET_BYTES`] is split, its first piece keeping `key` and the others keyed by
/// their first address.
fn put_bucket(
    batch: &mut sled::Batch,
    key: &[u8],
    range: bool,
    w: &BucketWriter,
    packed: &mut Vec<u8>,
) -> Result<()> {
    if !range {
        w.finish_into(packed);
        batch.insert(key, &packed[..]);
        return Ok(());
    }
    let mut first = true;
    let mut k = Vec::with_capacity(18);
    w.finish_split(keys::RANGE_BUCKET_BYTES, packed, &mut |ip, v| {
        if std::mem::take(&mut first) {
            batch.insert(key, v);
        } else {
            keys::range_key_of(ip, &mut k);
            batch.insert(&k[..], v);
        }
    })
    .map_err(|e| corrupt(key, e))
}

/// A batch of findings grouped by home bucket. Findings stay where they are in `all` (they are
/// large; moving them around costs more than sorting indices).
pub(super) struct Groups {
    all: Vec<Option<Finding>>,
    /// Home → (fingerprint, index into `all`), sorted by fingerprint, one per fingerprint.
    by_home: ByHome<Vec<u8>>,
}

/// Seals findings and groups them by home.
pub(super) fn group(findings: Vec<Finding>) -> Result<Groups> {
    let mut all = Vec::with_capacity(findings.len());
    let mut pairs = Vec::with_capacity(findings.len());
    for (i, mut f) in findings.into_iter().enumerate() {
        if f.fingerprint.is_empty() {
            f.seal();
        }
        let fp = fp_of(&f)?;
        let mut home = Vec::new();
        keys::home_into(&f.view(), &mut home);
        pairs.push((home, (fp, i)));
        all.push(Some(f));
    }
    Ok(Groups {
        all,
        by_home: group_by_home(pairs.into_iter()),
    })
}

/// Adds posting entries for a new finding homed away from (some of) its domains.
fn add_postings(f: &Finding, fp: &[u8; FP_LEN], out: &mut NewPostings) {
    let v = f.view();
    let (mut home, mut key, mut entry) = (Vec::new(), Vec::new(), Vec::new());
    keys::home_into(&v, &mut home);
    for d in keys::posting_domains(&v, &home) {
        keys::posting_key_into(d, &mut key);
        entry.clear();
        keys::push_posting(d, fp, &home, &mut entry);
        out.add(&key, &entry);
    }
}

/// The finding given at `first`, taken out of `all`, started by `start` (merged into its
/// stored twin, or stamped new), with the later ones of its fingerprint folded in: under a
/// merge by the life-cycle rule for repeats, under a restore the last one given wins. `None`
/// when it was taken already.
fn take_folded(
    all: &mut [Option<Finding>],
    by_home: &ByHome<Vec<u8>>,
    first: usize,
    mode: Mode,
    start: impl FnOnce(Finding) -> Finding,
) -> Option<Finding> {
    let mut f = start(all[first].take()?);
    for &j in by_home.repeats_of(first) {
        let Some(next) = all[j].take() else { continue };
        f = match mode {
            Mode::Merge(_) => lifecycle::repeat(f, next),
            Mode::Replace => next,
        };
    }
    Some(f)
}

/// How a write treats findings: merge observations (an ingest), or write them as given
/// (a restore; a change of stored findings, which exist).
#[derive(Clone, Copy)]
pub(super) enum Mode {
    Merge(DateTime<Utc>),
    Replace,
}

impl SledStore {
    /// For a range home: the key of the range bucket holding it (the last key at or before it
    /// under `prefix`, if any) and the key of the next range bucket (the end of that range).
    pub(super) fn range_bucket(
        &self,
        prefix: &[u8],
        home: &[u8],
    ) -> Result<(Option<sled::IVec>, Option<sled::IVec>)> {
        let below = self
            .db
            .range(prefix..=home)
            .next_back()
            .transpose()
            .map_err(engine)?
            .map(|(k, _)| k);
        let next = self
            .db
            .range::<&[u8], _>((Bound::Excluded(home), Bound::Unbounded))
            .next()
            .transpose()
            .map_err(engine)?
            .map(|(k, _)| k)
            .filter(|k| k.starts_with(prefix));
        Ok((below, next))
    }

    /// The buckets that findings grouped by home (in home order) go to: a fixed home is its
    /// own bucket; consecutive range homes share the range bucket holding them (a new one,
    /// keyed by the first of them, when none lies at or before them). Returns the targets in
    /// key order. Joining homes repeats no fingerprint: a fingerprint and a home are both
    /// functions of a finding's identity, so one fingerprint has one home.
    fn plan<K: AsRef<[u8]>>(&self, by_home: &ByHome<K>) -> Result<Vec<Target>> {
        let mut out: Vec<Target> = Vec::with_capacity(by_home.homes.len());
        // The range the last target covers: its prefix and the next bucket's key (its end).
        let mut open: Option<(Vec<u8>, Option<sled::IVec>)> = None;
        for (h, (home, incoming)) in by_home.iter().enumerate() {
            let home = home.as_ref();
            let Some(prefix) = keys::range_prefix(home) else {
                open = None;
                out.push(Target {
                    key: home.to_vec(),
                    range: false,
                    incoming,
                    homes: h..h + 1,
                });
                continue;
            };
            if let Some((p, next)) = &open
                && p == prefix
                && next.as_ref().is_none_or(|n| home < &n[..])
            {
                // Homes come in order, so their runs follow each other.
                let t = out.last_mut().expect("open target");
                t.incoming.end = incoming.end;
                t.homes.end = h + 1;
                continue;
            }
            let (below, next) = self.range_bucket(prefix, home)?;
            out.push(Target {
                key: below.map_or_else(|| home.to_vec(), |k| k.to_vec()),
                range: true,
                incoming,
                homes: h..h + 1,
            });
            open = Some((prefix.to_vec(), next));
        }
        Ok(out)
    }

    /// Rewrites one bucket into `w`: a stored record for which `find(header)` gives the
    /// caller's index of an incoming finding with its fingerprint is replaced by what
    /// `found(index, stored)` returns; the other records are copied unchanged.
    fn rewrite_bucket(
        &self,
        key: &[u8],
        find: &mut dyn FnMut(&record::Header<'_>) -> Option<usize>,
        w: &mut BucketWriter,
        found: &mut dyn FnMut(usize, Finding) -> Result<Finding>,
    ) -> Result<()> {
        let Some(plain) = self.load_bucket(key)? else {
            return Ok(());
        };
        for rec in record::records(&plain) {
            let rec = rec.map_err(|e| corrupt(key, e))?;
            let (h, _) =
                record::header(rec).ok_or_else(|| corrupt(key, record::RecordError::Header))?;
            match find(&h) {
                None => w.push_raw_at(rec, h.ip),
                Some(i) => {
                    let stored = record::decode(rec).map_err(|e| corrupt(key, e))?;
                    w.push(&found(i, stored)?, &h.fp).map_err(engine)?;
                }
            }
        }
        Ok(())
    }

    /// Writes grouped findings, state and a run-log entry (made from the statistics) in one
    /// batch.
    pub(super) fn write_groups(
        &self,
        groups: Groups,
        state: Vec<StateChange>,
        run: Option<RunEntry<'_>>,
        mode: Mode,
    ) -> Result<IngestStats> {
        let mut stats = IngestStats {
            duplicates: groups.by_home.duplicates,
            ..Default::default()
        };
        let mut batch = sled::Batch::default();
        let mut postings = NewPostings::default();
        let mut w = BucketWriter::default();
        let mut packed = Vec::new();
        let Groups { mut all, by_home } = groups;
        for t in self.plan(&by_home)? {
            w.clear();
            let incoming = &by_home.entries[t.incoming.clone()];
            // Looked up by fingerprint over the whole target (these findings may come with
            // their fingerprints, as a restore gives them), sorted only if the bucket exists.
            let mut by_fp: Option<Vec<Incoming>> = None;
            let mut find = |h: &record::Header<'_>| {
                let v = by_fp.get_or_insert_with(|| {
                    let mut v = incoming.to_vec();
                    v.sort_unstable_by_key(|e| e.0);
                    v
                });
                let j = v.binary_search_by(|(fp, _)| fp.cmp(&h.fp)).ok()?;
                Some(v[j].1)
            };
            self.rewrite_bucket(&t.key, &mut find, &mut w, &mut |i, stored| {
                take_folded(&mut all, &by_home, i, mode, |given| match mode {
                    Mode::Merge(now) => lifecycle::merge(stored, given, now, &mut stats),
                    Mode::Replace => given,
                })
                .ok_or_else(|| corrupt(&t.key, LayoutError::TwiceInBucket))
            })?;
            for &(fp, i) in incoming {
                let Some(f) = take_folded(&mut all, &by_home, i, mode, |mut f| {
                    if let Mode::Merge(now) = mode {
                        lifecycle::stamp_new(&mut f, now);
                        stats.new += 1;
                    }
                    f
                }) else {
                    continue;
                };
                add_postings(&f, &fp, &mut postings);
                w.push(&f, &fp).map_err(engine)?;
            }
            put_bucket(&mut batch, &t.key, t.range, &w, &mut packed)?;
        }
        let run = run.map(|make| make(&stats));
        self.finish_batch(batch, postings, state, run.as_ref())?;
        Ok(stats)
    }

    /// Adds the new posting entries, the state and the run-log entry to `batch`, and applies it.
    pub(super) fn finish_batch(
        &self,
        mut batch: sled::Batch,
        postings: NewPostings,
        state: Vec<StateChange>,
        run: Option<&FetchRun>,
    ) -> Result<()> {
        for (prefix, entries) in postings.into_map() {
            self.append_postings(&mut batch, &prefix, &entries)?;
        }
        for (k, v) in state {
            match v {
                Some(v) => batch.insert(keys::state(&k), v),
                None => batch.remove(keys::state(&k)),
            }
        }
        if let Some(run) = run {
            self.add_run(&mut batch, run)?;
        }
        self.written(self.db.apply_batch(batch))
    }

    /// Adds a run-log entry to `batch`, and the removal of entries older than the retention
    /// (usually none: the range is then empty).
    pub(super) fn add_run(&self, batch: &mut sled::Batch, run: &FetchRun) -> Result<()> {
        let v = serde_json::to_vec(run).map_err(engine)?;
        batch.insert(keys::run(run.started, &run.source), v);
        let cutoff = run.started - chrono::Duration::days(RUN_LOG_DAYS);
        let mut end = vec![keys::RUN];
        end.extend_from_slice(&keys::time_bytes(cutoff));
        for kv in self.db.range(vec![keys::RUN]..end) {
            batch.remove(kv.map_err(engine)?.0);
        }
        Ok(())
    }

    /// Adds posting `entries` to the pages under `prefix` (one domain group): they fill the
    /// last page up to [`keys::POSTING_PAGE_BYTES`], then start new ones. Earlier pages are
    /// never rewritten.
    fn append_postings(
        &self,
        batch: &mut sled::Batch,
        prefix: &[u8],
        entries: &[u8],
    ) -> Result<()> {
        let last = self
            .db
            .scan_prefix(prefix)
            .next_back()
            .transpose()
            .map_err(engine)?;
        let (mut no, mut page) = match last {
            Some((k, v)) => (
                keys::posting_page_no(prefix, &k)
                    .ok_or_else(|| corrupt(&k, LayoutError::PageKey))?,
                record::posting_entries(&v)
                    .map_err(|e| corrupt(&k, e))?
                    .into_owned(),
            ),
            None => (0, Vec::new()),
        };
        page.reserve(entries.len().min(keys::POSTING_PAGE_BYTES));
        for e in keys::postings(entries) {
            if !page.is_empty() && page.len() + e.raw.len() > keys::POSTING_PAGE_BYTES {
                batch.insert(
                    keys::posting_page_key(prefix, no),
                    record::pack_postings(&page),
                );
                page.clear();
                no = no
                    .checked_add(1)
                    .ok_or_else(|| corrupt(prefix, LayoutError::TooManyPages))?;
            }
            page.extend_from_slice(e.raw);
        }
        batch.insert(
            keys::posting_page_key(prefix, no),
            record::pack_postings(&page),
        );
        Ok(())
    }

    /// Rewrites every bucket holding a record that `pick` selects (by header), applying `change`
    /// to those records; `change` returns false to leave a record as it was. Applied in batches
    /// of a few MiB (each record change stands on its own). Returns how many records changed.
    pub(super) fn rewrite_where(
        &self,
        pick: &dyn Fn(&record::Header<'_>) -> bool,
        change: &mut dyn FnMut(&mut Finding) -> bool,
    ) -> Result<usize> {
        let _g = self.lock();
        let mut batch = sled::Batch::default();
        let mut size = 0;
        let mut n = 0;
        for b in self.buckets() {
            let (k, plain) = b?;
            let mut w = BucketWriter::with_capacity(plain.len() + 64);
            let mut changed = 0;
            for rec in record::records(&plain) {
                let rec = rec.map_err(|e| corrupt(&k, e))?;
                let (h, _) =
                    record::header(rec).ok_or_else(|| corrupt(&k, record::RecordError::Header))?;
                if pick(&h) {
                    let mut f = record::decode(rec).map_err(|e| corrupt(&k, e))?;
                    if change(&mut f) {
                        w.push(&f, &h.fp).map_err(engine)?;
                        changed += 1;
                        continue;
                    }
                }
                w.push_raw(rec);
            }
            if changed > 0 {
                n += changed;
                let v = w.finish();
                size += v.len();
                batch.insert(k, v);
                if size > REWRITE_BATCH_BYTES {
                    self.written(self.db.apply_batch(std::mem::take(&mut batch)))?;
                    size = 0;
                }
            }
        }
        self.written(self.db.apply_batch(batch))?;
        Ok(n)
    }

    fn collect_plain(
        key: &[u8],
        plain: &[u8],
        keep: &dyn Fn(&record::Header<'_>) -> bool,
        keep_finding: &dyn Fn(&Finding) -> bool,
        out: &mut HashMap<[u8; FP_LEN], Finding>,
    ) -> Result<()> {
        for rec in record::records(plain) {
            let rec = rec.map_err(|e| corrupt(key, e))?;
            let (h, _) =
                record::header(rec).ok_or_else(|| corrupt(key, record::RecordError::Header))?;
            if keep(&h) && !out.contains_key(&h.fp) {
                let f = record::decode(rec).map_err(|e| corrupt(key, e))?;
                if keep_finding(&f) {
                    out.insert(h.fp, f);
                }
            }
        }
        Ok(())
    }

    /// The stored findings with these fingerprints (one scan of the store).
    pub(super) fn scan_fps(&self, fps: &HashSet<[u8; FP_LEN]>) -> Result<Vec<Finding>> {
        let mut out = HashMap::new();
        for b in self.buckets() {
            let (k, plain) = b?;
            Self::collect_plain(&k, &plain, &|h| fps.contains(&h.fp), &|_| true, &mut out)?;
        }
        Ok(out.into_values().collect())
    }

    /// Writes the findings `items` of a batch prepared while they were read (the bulk path):
    /// the merge (or restore) and statistics of [`Self::write_groups`], one sled batch, new
    /// findings copied as they were encoded. Repeats within the call are decoded and folded.
    pub(super) fn ingest_prepared(
        &self,
        batch: &PreparedBatch,
        items: std::ops::Range<usize>,
        mode: Mode,
    ) -> Result<IngestStats> {
        let mut stats = IngestStats::default();
        let by_home = group_by_home(
            batch.items[items.clone()]
                .iter()
                .zip(items.clone())
                .map(|(it, i)| (batch.slice(it.home), (it.fp, i))),
        );
        stats.duplicates = by_home.duplicates;
        let _g = self.lock();
        let mut db_batch = sled::Batch::default();
        let mut postings = NewPostings::default();
        // Room for every new record and a stored bucket, so that the writer does not grow by
        // copying.
        let new_bytes: usize = batch.items[items.clone()]
            .iter()
            .map(|it| (it.rec.1 - it.rec.0) as usize + 4)
            .sum();
        let mut w = BucketWriter::with_capacity(new_bytes + 2 * keys::RANGE_BUCKET_BYTES);
        let mut packed = Vec::new();
        let first = items.start;
        let mut taken = vec![false; items.len()];
        let decode = |home: &[u8], i: usize| {
            record::decode(batch.slice(batch.items[i].rec)).map_err(|e| corrupt(home, e))
        };
        for t in self.plan(&by_home)? {
            let (home, range) = (&t.key[..], t.range);
            w.clear();
            let mut find = |h: &record::Header<'_>| by_home.find(&t, h);
            self.rewrite_bucket(home, &mut find, &mut w, &mut |i, stored| {
                if std::mem::replace(&mut taken[i - first], true) {
                    return Err(corrupt(home, LayoutError::TwiceInBucket));
                }
                let f = match mode {
                    Mode::Merge(now) => lifecycle::merge(stored, decode(home, i)?, now, &mut stats),
                    Mode::Replace => decode(home, i)?,
                };
                fold_repeats(f, by_home.repeats_of(i), mode, &mut |j| decode(home, j))
            })?;
            for &(_, i) in &by_home.entries[t.incoming.clone()] {
                if taken[i - first] {
                    continue;
                }
                stats.new += usize::from(matches!(mode, Mode::Merge(_)));
                let it = &batch.items[i];
                for (k, e) in batch.posts(it) {
                    postings.add(k, e);
                }
                let repeats = by_home.repeats_of(i);
                if !repeats.is_empty() {
                    let f =
                        fold_repeats(decode(home, i)?, repeats, mode, &mut |j| decode(home, j))?;
                    w.push(&f, &it.fp).map_err(engine)?;
                    continue;
                }
                // A range home is the finding's address (the one in its record's header).
                match keys::range_home_ip(batch.slice(it.home)) {
                    Some(ip) if range => w.push_raw_at(batch.slice(it.rec), ip),
                    _ => w.push_raw(batch.slice(it.rec)),
                }
            }
            put_bucket(&mut db_batch, home, range, &w, &mut packed)?;
        }
        self.finish_batch(db_batch, postings, Vec::new(), None)?;
        Ok(stats)
    }
}

/// `f` with the findings at `repeats` (decoded by `decode`) folded in, as [`take_folded`] does.
fn fold_repeats(
    mut f: Finding,
    repeats: &[usize],
    mode: Mode,
    decode: &mut dyn FnMut(usize) -> Result<Finding>,
) -> Result<Finding> {
    for &j in repeats {
        let next = decode(j)?;
        f = match mode {
            Mode::Merge(_) => lifecycle::repeat(f, next),
            Mode::Replace => next,
        };
    }
    Ok(f)
}
