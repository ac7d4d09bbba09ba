//! The sled 0.34 implementation of [`Store`]: one tree, namespaced keys (see `keys.rs`), findings
//! grouped into compressed buckets (see `record.rs`). Every write that must be atomic is one sled
//! `Batch`. sled takes an exclusive lock on its folder, so only one process opens a store at a
//! time; the daemon serves the others over its socket.
//!
//! Parts: `write.rs` (grouping by home, bucket rewrites, postings), `unit.rs` (a unit: findings
//! held or streamed through the bulk path of `prepared.rs` and `sorted_ingest.rs`),
//! `query.rs` (streamed queries), `migrate.rs` and `legacy.rs` (earlier layouts).

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use chrono::{DateTime, Utc};

use super::{
    Cause, FetchRun, Flow, IngestStats, Query, QueryOptions, QueryTotals, Result, Store,
    StoreError, Unit,
};
use crate::finding::{Finding, Status};
use record::FP_LEN;

mod keys;
mod legacy;
mod migrate;
mod prepared;
mod query;
mod record;
mod sorted_ingest;
mod unit;
mod write;

pub use unit::bench_encoder;

/// Appends one finding as a self-contained record (the layout of `record.rs`: a binary header,
/// then postcard, uncompressed): the form the PostgreSQL backend keeps in `findings.rec`.
pub fn encode_record(f: &Finding, out: &mut Vec<u8>) -> Result<()> {
    let fp = keys::fp_checked(&f.fingerprint)?;
    record::encode_finding(f, &fp, out).map_err(|e| StoreError::corrupt("finding", e))
}

/// The finding of a record [`encode_record`] wrote; `what` names where it was read, for errors.
pub fn decode_record(rec: &[u8], what: &str) -> Result<Finding> {
    record::decode(rec).map_err(|e| StoreError::corrupt(what, e))
}

/// Cache sled may use; sled's default of 1 GiB is far more than a store of this kind needs.
const CACHE_BYTES: u64 = 64 << 20;
/// sled's log segment size for new databases. sled writes a tree node larger than a quarter
/// segment as a file of its own (open, write, fsync, later unlink); a leaf holds up to 16
/// buckets of tens of KiB, so sled's 512 KiB default made most node writes files. 2 MiB keeps
/// them in the log (1M-row import: system time 1.2 s → 0.4 s).
const SEGMENT_BYTES: usize = 2 << 20;

/// Bulk rewrites (resolving, migration) are applied in sled batches of about this many bytes.
const REWRITE_BATCH_BYTES: usize = 4 << 20;

/// A store backed by sled.
pub struct SledStore {
    db: sled::Db,
    /// Dropped after `db` (fields drop in order): waits until sled let go of its file lock.
    _released: LockRelease,
    path: PathBuf,
    /// Serialises read-modify-write cycles (sled batches are atomic but not compare-and-swap).
    write_lock: Mutex<()>,
}

impl std::fmt::Debug for SledStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SledStore")
            .field("path", &self.path)
            .finish()
    }
}

/// sled failed (or another engine-level error: encoding a record, a file of the store).
fn engine(e: impl Into<Cause>) -> StoreError {
    StoreError::Backend(e.into())
}

/// What is wrong with the keys and buckets of a store (besides a damaged record).
#[derive(Debug, thiserror::Error)]
enum LayoutError {
    #[error("a fingerprint twice in one bucket")]
    TwiceInBucket,
    #[error("bad posting page key")]
    PageKey,
    #[error("too many posting pages")]
    TooManyPages,
    #[error("bad legacy record")]
    Legacy,
}

/// A damaged bucket or posting page under `key`.
fn corrupt(key: &[u8], reason: impl Into<Cause>) -> StoreError {
    let kind = if key.first() == Some(&keys::POSTING) {
        "posting list"
    } else {
        "bucket"
    };
    StoreError::corrupt(format!("{kind} {}", hex::encode(key)), reason)
}

/// A bucket of a scan, decompressed.
fn opened(kv: sled::Result<(sled::IVec, sled::IVec)>) -> Result<(sled::IVec, Vec<u8>)> {
    let (k, v) = kv.map_err(engine)?;
    let plain = record::open_bucket(&v).map_err(|e| corrupt(&k, e))?;
    Ok((k, plain))
}

/// The segment size to open the sled database in `dir` with: the one it was created with (sled
/// refuses any other; it is in sled's `conf` file), else [`SEGMENT_BYTES`].
fn segment_size(dir: &Path) -> usize {
    std::fs::read(dir.join("conf"))
        .ok()
        .and_then(|conf| {
            // Text lines `key: value`, then a binary checksum.
            let text = String::from_utf8_lossy(&conf).into_owned();
            text.lines()
                .find_map(|l| l.strip_prefix("segment_size: "))
                .and_then(|v| v.trim().parse().ok())
        })
        .unwrap_or(SEGMENT_BYTES)
}

/// The layout a database was written in (see `keys::LAYOUT`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Layout {
    /// One JSON record per finding (`legacy.rs`).
    V1,
    /// A bucket per /24 or /48, a posting list per (domain group, bucket).
    V2,
    /// This version.
    Current,
    /// No findings and no postings: any layout; marked as this one.
    Empty,
}

impl SledStore {
    /// Opens (or creates) the store in folder `path`, migrating a store of an earlier layout. The
    /// folder is owner-only (0700) and so is everything sled created in it (0600 files).
    pub fn open(path: &Path) -> Result<Self> {
        if let Err(e) = crate::files::private_dir(path) {
            return Err(StoreError::Open {
                path: path.display().to_string(),
                cause: format!("cannot create the folder owner-only: {e}").into(),
            });
        }
        // sled writes while it opens: on a full disk the space reserve makes room to read.
        let store = match Self::open_db(path, "db") {
            Err(e)
                if crate::diskspace::says_full(&e.to_string())
                    && crate::diskspace::release_reserve(path) =>
            {
                Self::open_db(path, "db")
            }
            r => r,
        }
        .map_err(|e| e.or_disk_full(path))?;
        crate::diskspace::keep_reserve(path);
        // sled creates its files with the umask; the 0700 folder already hides them.
        if let Err(e) = crate::files::restrict_tree(path) {
            tracing::warn!(path = %path.display(), error = %e, "cannot make the store's files owner-only");
        }
        match store.layout()? {
            Layout::Current => return Ok(store),
            Layout::Empty => {
                store
                    .db
                    .insert(keys::LAYOUT, &[keys::LAYOUT_VERSION][..])
                    .map_err(engine)?;
                return Ok(store);
            }
            from @ (Layout::V1 | Layout::V2) => store.migrate(from)?,
        }
        Self::open_db(path, "db")
    }

    /// Opens the sled database in `path/name`; a lock held by another process (the daemon) is
    /// reported at once.
    fn open_db(path: &Path, name: &str) -> Result<Self> {
        let dir = path.join(name);
        remove_unfinished_snapshots(&dir);
        let cfg = sled::Config::new()
            .segment_size(segment_size(&dir))
            .path(&dir)
            .cache_capacity(CACHE_BYTES)
            .flush_every_ms(Some(500));
        let db = cfg.open().map_err(|e| {
            if locked(&dir.join("db")) {
                StoreError::Locked {
                    path: path.display().to_string(),
                }
            } else {
                StoreError::Open {
                    path: path.display().to_string(),
                    cause: e.into(),
                }
            }
        })?;
        Ok(SledStore {
            db,
            _released: LockRelease(dir.join("db")),
            path: path.to_path_buf(),
            write_lock: Mutex::new(()),
        })
    }

    /// The folder this store lives in.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A write's result; a full disk becomes [`StoreError::DiskFull`] naming it.
    fn written(&self, r: sled::Result<()>) -> Result<()> {
        r.map_err(|e| engine(e).or_disk_full(&self.path))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ()> {
        self.write_lock.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn has_prefix(&self, prefix: u8) -> Result<bool> {
        Ok(self
            .db
            .scan_prefix([prefix])
            .next()
            .transpose()
            .map_err(engine)?
            .is_some())
    }

    fn layout(&self) -> Result<Layout> {
        if self.has_prefix(legacy::RECORD)? {
            return Ok(Layout::V1);
        }
        if self.db.get(keys::LAYOUT).map_err(engine)?.as_deref() == Some(&[keys::LAYOUT_VERSION]) {
            return Ok(Layout::Current);
        }
        if self.has_prefix(keys::BUCKET)? || self.has_prefix(keys::POSTING)? {
            return Ok(Layout::V2);
        }
        Ok(Layout::Empty)
    }

    /// The decompressed records of a bucket, if it exists.
    fn load_bucket(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        match self.db.get(key).map_err(engine)? {
            None => Ok(None),
            Some(v) => record::open_bucket(&v)
                .map(Some)
                .map_err(|e| corrupt(key, e)),
        }
    }

    /// Every bucket, decompressed, in key order.
    fn buckets(&self) -> impl Iterator<Item = Result<(sled::IVec, Vec<u8>)>> + '_ {
        self.db.scan_prefix([keys::BUCKET]).map(opened)
    }
}

impl Store for SledStore {
    fn ingest_unit(&self, unit: Unit<'_>) -> Result<IngestStats> {
        self.write_unit(unit)
    }

    fn resolve_stale(
        &self,
        source: &str,
        feed: Option<&str>,
        cutoff: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<usize> {
        let cutoff = cutoff.timestamp_micros();
        let resolved = record::status_code(Status::Resolved);
        self.rewrite_where(
            &|h| {
                h.source == source.as_bytes()
                    && feed.is_none_or(|f| h.feed == f.as_bytes())
                    && h.status != resolved
                    && h.last_seen_micros < cutoff
            },
            &mut |f| {
                f.status = Status::Resolved;
                f.push_history(now, "resolved");
                true
            },
        )
    }

    fn open_and_stale(&self, source: &str, cutoff: DateTime<Utc>) -> Result<(usize, usize)> {
        let cutoff = cutoff.timestamp_micros();
        let resolved = record::status_code(Status::Resolved);
        let (mut open, mut stale) = (0, 0);
        for b in self.buckets() {
            let (k, plain) = b?;
            for rec in record::records(&plain) {
                let rec = rec.map_err(|e| corrupt(&k, e))?;
                let (h, _) =
                    record::header(rec).ok_or_else(|| corrupt(&k, record::RecordError::Header))?;
                if h.source == source.as_bytes() && h.status != resolved {
                    open += 1;
                    stale += usize::from(h.last_seen_micros < cutoff);
                }
            }
        }
        Ok((open, stale))
    }

    fn get(&self, fingerprint: &str) -> Result<Option<Finding>> {
        let Some(fp) = keys::fp_bytes(fingerprint) else {
            return Ok(None);
        };
        Ok(self.scan_fps(&HashSet::from([fp]))?.pop())
    }

    fn modify(
        &self,
        fingerprints: &[String],
        change: &mut dyn FnMut(&mut Finding) -> bool,
    ) -> Result<usize> {
        let fps: HashSet<[u8; FP_LEN]> = fingerprints
            .iter()
            .filter_map(|f| keys::fp_bytes(f))
            .collect();
        if fps.is_empty() {
            return Ok(0);
        }
        self.rewrite_where(&|h| fps.contains(&h.fp), change)
    }

    fn query_each(
        &self,
        q: &Query,
        opts: &QueryOptions,
        f: &mut dyn FnMut(Finding) -> Flow,
    ) -> Result<QueryTotals> {
        self.stream_query(q, opts, f)
    }

    fn for_each(&self, f: &mut dyn FnMut(Finding) -> Result<()>) -> Result<()> {
        for b in self.buckets() {
            let (k, plain) = b?;
            for rec in record::records(&plain) {
                let rec = rec.map_err(|e| corrupt(&k, e))?;
                f(record::decode(rec).map_err(|e| corrupt(&k, e))?)?;
            }
        }
        Ok(())
    }

    fn record_run(&self, run: &FetchRun) -> Result<()> {
        let v = serde_json::to_vec(run).map_err(engine)?;
        let mut batch = sled::Batch::default();
        batch.insert(keys::run(run.started, &run.source), v);
        // Entries older than the retention go (usually none: the range is then empty).
        let cutoff = run.started - chrono::Duration::days(super::RUN_LOG_DAYS);
        let mut end = vec![keys::RUN];
        end.extend_from_slice(&keys::time_bytes(cutoff));
        for kv in self.db.range(vec![keys::RUN]..end) {
            batch.remove(kv.map_err(engine)?.0);
        }
        self.written(self.db.apply_batch(batch))
    }

    fn runs(&self, source: Option<&str>, limit: usize) -> Result<Vec<FetchRun>> {
        let mut out = Vec::new();
        for kv in self.db.scan_prefix([keys::RUN]).rev() {
            if out.len() >= limit {
                break;
            }
            let (k, v) = kv.map_err(engine)?;
            if let Some(s) = source
                && &k[9..] != s.as_bytes()
            {
                continue;
            }
            let r: FetchRun =
                serde_json::from_slice(&v).map_err(|e| StoreError::corrupt("fetch run", e))?;
            out.push(r);
        }
        Ok(out)
    }

    fn state_get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        Ok(self
            .db
            .get(keys::state(key))
            .map_err(engine)?
            .map(|v| v.to_vec()))
    }

    fn state_put(&self, key: &str, value: Option<&[u8]>) -> Result<()> {
        self.written(match value {
            Some(v) => self.db.insert(keys::state(key), v).map(|_| ()),
            None => self.db.remove(keys::state(key)).map(|_| ()),
        })
    }

    fn state_scan(&self, prefix: &str) -> Result<Vec<(String, Vec<u8>)>> {
        let mut out = Vec::new();
        for kv in self.db.scan_prefix(keys::state(prefix)) {
            let (k, v) = kv.map_err(engine)?;
            out.push((String::from_utf8_lossy(&k[1..]).into_owned(), v.to_vec()));
        }
        Ok(out)
    }

    fn state_each(
        &self,
        prefix: &str,
        each: &mut dyn FnMut(&str, &[u8]) -> Result<()>,
    ) -> Result<()> {
        for kv in self.db.scan_prefix(keys::state(prefix)) {
            let (k, v) = kv.map_err(engine)?;
            each(&String::from_utf8_lossy(&k[1..]), &v)?;
        }
        Ok(())
    }

    fn count(&self) -> Result<usize> {
        let mut n = 0;
        for kv in self.db.scan_prefix([keys::BUCKET]) {
            let (k, v) = kv.map_err(engine)?;
            n +=
                record::bucket_count(&v).ok_or_else(|| corrupt(&k, record::RecordError::Header))?;
        }
        Ok(n)
    }

    fn size_on_disk(&self) -> Result<Option<u64>> {
        // sled's own figure: its data file and its blobs.
        Ok(Some(self.db.size_on_disk().map_err(engine)?))
    }

    fn flush(&self) -> Result<()> {
        self.written(flush_bounded(&self.db, &self.path))
    }
}

/// Most bytes free on the store's disk at which a flush that does not return is taken as
/// stopped by the full disk.
const FULL_BELOW: u64 = 64 * 1024;

/// sled's `flush`, given up with `ENOSPC` when it has not returned after a few seconds and the
/// store's disk is full: on a full disk sled's writer thread can fail and leave `flush`
/// waiting for ever, which would hang the command instead of telling the full disk. The
/// waiting thread is left behind (the command fails and ends).
fn flush_bounded(db: &sled::Db, path: &Path) -> sled::Result<()> {
    use std::sync::mpsc::{RecvTimeoutError, channel};
    let (tx, rx) = channel();
    let db = db.clone();
    std::thread::spawn(move || {
        let _ = tx.send(db.flush().map(|_| ()));
    });
    let started = std::time::Instant::now();
    loop {
        match rx.recv_timeout(std::time::Duration::from_millis(500)) {
            Ok(r) => return r,
            Err(RecvTimeoutError::Disconnected) => {
                return Err(sled::Error::ReportableBug("the flush thread ended".into()));
            }
            Err(RecvTimeoutError::Timeout) => {
                let full = crate::diskspace::free_bytes(path).is_some_and(|f| f < FULL_BELOW);
                if full && started.elapsed() >= std::time::Duration::from_secs(3) {
                    return Err(sled::Error::Io(std::io::Error::from_raw_os_error(
                        libc::ENOSPC,
                    )));
                }
            }
        }
    }
}

/// Whether sled's database file `file` is locked by another open of it (another process, or a
/// handle of this one that sled has not let go of yet). sled reports a held lock only as text,
/// so after sled failed to open, the lock is tried here and told by its error kind: the same
/// non-blocking exclusive `flock` sled takes, released at once.
fn locked(file: &Path) -> bool {
    use std::os::fd::AsRawFd;
    let Ok(f) = std::fs::File::open(file) else {
        return false;
    };
    // SAFETY: flock takes the descriptor of `f`, which stays open for the call.
    if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
        return false; // dropping `f` releases it
    }
    std::io::Error::last_os_error().kind() == std::io::ErrorKind::WouldBlock
}

/// Removes the `snap.*.generating` files a snapshot write left when it failed (a full disk, a
/// crash): sled 0.34 reads the newest `snap.*` file, unfinished ones included, and would call
/// the store corrupt; the finished snapshot before it is intact.
fn remove_unfinished_snapshots(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name();
        let name = name.to_string_lossy();
        if name.starts_with("snap.") && name.ends_with(".generating") {
            match std::fs::remove_file(e.path()) {
                Ok(()) => {
                    tracing::warn!(file = %e.path().display(), "removed an unfinished snapshot")
                }
                Err(err) => {
                    tracing::warn!(file = %e.path().display(), error = %err, "cannot remove an unfinished snapshot")
                }
            }
        }
    }
}

/// How long sled's file lock may outlive its database handle: its background threads let go
/// of the last reference up to a flush interval (500 ms) later.
const LOCK_LINGER: std::time::Duration = std::time::Duration::from_millis(1500);

/// Waits, when dropped, until sled's database file is no longer locked (at most
/// [`LOCK_LINGER`]), so that a store closed here can be opened at once, by this process or by
/// one it starts next (a test's CLI run after it seeded the store).
struct LockRelease(PathBuf);

impl Drop for LockRelease {
    fn drop(&mut self) {
        wait_released(&self.0);
    }
}

/// Waits until sled's database file `file` is unlocked, or [`LOCK_LINGER`] has passed.
pub(super) fn wait_released(file: &Path) {
    let until = std::time::Instant::now() + LOCK_LINGER;
    while locked(file) && std::time::Instant::now() < until {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

impl Drop for SledStore {
    fn drop(&mut self) {
        let _ = flush_bounded(&self.db, &self.path);
    }
}

/// The bulk path's encoding of findings (records, homes, postings), for tests that compare two
/// ways of making the same findings.
#[cfg(test)]
pub(crate) struct Encoded(prepared::PreparedBatch);

#[cfg(test)]
impl Encoded {
    pub(crate) fn new(now: DateTime<Utc>) -> Self {
        Encoded(prepared::PreparedBatch::new(now))
    }
    pub(crate) fn view(&mut self, f: &crate::finding::FindingView<'_>) -> Result<()> {
        self.0.push_view(f)
    }
    pub(crate) fn finding(&mut self, f: &Finding) -> Result<()> {
        self.0.push(f)
    }
    pub(crate) fn len(&self) -> usize {
        self.0.len()
    }
}

#[cfg(test)]
impl PartialEq for Encoded {
    fn eq(&self, o: &Self) -> bool {
        self.0.buf == o.0.buf && format!("{:?}", self.0.items) == format!("{:?}", o.0.items)
    }
}

#[cfg(test)]
mod tests;
