//! The sled 0.34 implementation of [`Store`]: one tree, namespaced keys (see `keys.rs`), one
//! `Batch` per write so every write is atomic. sled takes an exclusive lock on its folder, so
//! only one process opens a store at a time; the daemon serves the others over its socket.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use chrono::{DateTime, Utc};
use ipnet::IpNet;

use super::keys::{self, FP_LEN};
use super::{FetchRun, IngestOptions, IngestStats, Query, QueryOptions, Result, Store, StoreError};
use crate::finding::{Finding, Status};

/// Cache sled may use; sled's default of 1 GiB is far more than a store of this kind needs.
const CACHE_BYTES: u64 = 128 << 20;

/// A store backed by sled.
pub struct SledStore {
    db: sled::Db,
    path: PathBuf,
    /// Serialises read-modify-write cycles (sled batches are atomic but not compare-and-swap).
    write_lock: Mutex<()>,
    /// The next record sequence number (one past the highest `V` key).
    next_seq: AtomicU64,
}

impl std::fmt::Debug for SledStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SledStore")
            .field("path", &self.path)
            .finish()
    }
}

fn engine(e: impl std::fmt::Display) -> StoreError {
    StoreError::Engine(e.to_string())
}

fn decode(fp: &[u8], bytes: &[u8]) -> Result<Finding> {
    let corrupt = |reason: String| StoreError::Corrupt {
        what: format!("finding {}", hex::encode(fp)),
        reason,
    };
    let (_, json) =
        keys::decode_header(bytes).ok_or_else(|| corrupt("bad record header".into()))?;
    serde_json::from_slice(json).map_err(|e| corrupt(e.to_string()))
}

fn encode(f: &Finding) -> Result<Vec<u8>> {
    let mut v = Vec::with_capacity(512);
    keys::encode_header(f, &mut v);
    serde_json::to_writer(&mut v, f).map_err(engine)?;
    Ok(v)
}

impl SledStore {
    /// Opens (or creates) the store in folder `path`.
    pub fn open(path: &Path) -> Result<Self> {
        if let Err(e) = std::fs::create_dir_all(path) {
            return Err(StoreError::Open {
                path: path.display().to_string(),
                reason: format!("cannot create the folder: {e}"),
            });
        }
        let cfg = sled::Config::new()
            .path(path.join("db"))
            .cache_capacity(CACHE_BYTES)
            .flush_every_ms(Some(500));
        let db = cfg.open().map_err(|e| {
            let msg = e.to_string();
            if msg.contains("could not acquire lock") || msg.contains("WouldBlock") {
                StoreError::Locked {
                    path: path.display().to_string(),
                }
            } else {
                StoreError::Open {
                    path: path.display().to_string(),
                    reason: msg,
                }
            }
        })?;
        let next_seq = match db.scan_prefix([keys::RECORD]).keys().next_back() {
            Some(k) => keys::seq_of(&k.map_err(engine)?).map_or(0, |s| s + 1),
            None => 0,
        };
        Ok(SledStore {
            db,
            path: path.to_path_buf(),
            write_lock: Mutex::new(()),
            next_seq: AtomicU64::new(next_seq),
        })
    }

    /// The folder this store lives in.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ()> {
        self.write_lock.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn load(&self, fp: &[u8; FP_LEN]) -> Result<Option<Finding>> {
        Ok(self.load_with_seq(fp)?.map(|(_, f)| f))
    }

    /// A finding and the sequence number of its record.
    fn load_with_seq(&self, fp: &[u8; FP_LEN]) -> Result<Option<(u64, Finding)>> {
        let Some(s) = self.db.get(keys::finding(fp)).map_err(engine)? else {
            return Ok(None);
        };
        let seq = keys::seq_of(&s).ok_or_else(|| StoreError::Corrupt {
            what: format!("finding {}", hex::encode(fp)),
            reason: "bad record pointer".into(),
        })?;
        match self.db.get(keys::record(seq)).map_err(engine)? {
            Some(v) => Ok(Some((seq, decode(fp, &v)?))),
            None => Err(StoreError::Corrupt {
                what: format!("finding {}", hex::encode(fp)),
                reason: "record missing".into(),
            }),
        }
    }

    fn new_seq(&self) -> u64 {
        self.next_seq.fetch_add(1, Ordering::Relaxed)
    }

    /// Collects the fingerprints of every key under `prefix`.
    fn scan_fps(&self, prefix: &[u8], out: &mut HashSet<[u8; FP_LEN]>) -> Result<()> {
        for kv in self.db.scan_prefix(prefix).keys() {
            let k = kv.map_err(engine)?;
            if let Some(fp) = keys::trailing_fp(&k) {
                out.insert(fp);
            }
        }
        Ok(())
    }

    /// Collects the fingerprints of every key in `[lo, hi]` (byte order, `hi` inclusive prefix).
    fn range_fps(&self, lo: Vec<u8>, hi: Vec<u8>, out: &mut HashSet<[u8; FP_LEN]>) -> Result<()> {
        let mut hi = hi;
        hi.extend_from_slice(&[0xff; FP_LEN + 1]);
        for kv in self.db.range(lo..=hi).keys() {
            let k = kv.map_err(engine)?;
            if let Some(fp) = keys::trailing_fp(&k) {
                out.insert(fp);
            }
        }
        Ok(())
    }

    fn query_fps(&self, q: &Query) -> Result<HashSet<[u8; FP_LEN]>> {
        let mut fps = HashSet::new();
        match q {
            Query::Ip(ip) => {
                self.scan_fps(&keys::ip_prefix(*ip), &mut fps)?;
                let max = if ip.is_ipv6() { 128 } else { 32 };
                for len in 0..=max {
                    let net = IpNet::new(*ip, len).expect("len within family").trunc();
                    self.scan_fps(&keys::net_prefix(net), &mut fps)?;
                }
            }
            Query::Net(net) => {
                let net = net.trunc();
                // Addresses inside the network.
                self.range_fps(
                    keys::ip_prefix(net.network()),
                    keys::ip_prefix(net.broadcast()),
                    &mut fps,
                )?;
                let max = net.max_prefix_len();
                // Networks inside it (same or longer prefix)...
                for len in net.prefix_len()..=max {
                    let lo = IpNet::new(net.network(), len).expect("len").trunc();
                    let hi = IpNet::new(net.broadcast(), len).expect("len").trunc();
                    let mut lo_k = keys::net_len_prefix(net.network().is_ipv6(), len);
                    lo_k.extend_from_slice(&keys::ip_parts(lo.network()).1);
                    let mut hi_k = keys::net_len_prefix(net.network().is_ipv6(), len);
                    hi_k.extend_from_slice(&keys::ip_parts(hi.network()).1);
                    self.range_fps(lo_k, hi_k, &mut fps)?;
                }
                // ...and networks containing it.
                for len in 0..net.prefix_len() {
                    let sup = IpNet::new(net.network(), len).expect("len").trunc();
                    self.scan_fps(&keys::net_prefix(sup), &mut fps)?;
                }
            }
            Query::Domain(d) => {
                let d = crate::finding::normalize_domain(d);
                if !d.is_empty() {
                    self.scan_fps(&keys::domain_prefix(&d), &mut fps)?;
                }
            }
            Query::Email(e) => {
                self.scan_fps(
                    &keys::email_prefix(&e.trim().to_ascii_lowercase()),
                    &mut fps,
                )?;
            }
            Query::Asn(a) => self.scan_fps(&keys::asn_prefix(*a), &mut fps)?,
        }
        Ok(fps)
    }

    /// Writes a finding record at `seq` with all its index keys, removing the stale index keys
    /// of `old` (the finding previously stored at the same `seq`); a new finding also gets its
    /// `F` pointer.
    fn put_finding(
        batch: &mut sled::Batch,
        fp: &[u8; FP_LEN],
        seq: u64,
        new: &Finding,
        old: Option<&Finding>,
    ) -> Result<()> {
        let new_keys = keys::index_keys(new, fp);
        match old {
            Some(old) => {
                for k in keys::index_keys(old, fp) {
                    if !new_keys.contains(&k) {
                        batch.remove(k);
                    }
                }
            }
            None => batch.insert(keys::finding(fp), &seq.to_be_bytes()),
        }
        for k in new_keys {
            batch.insert(k, &[] as &[u8]);
        }
        batch.insert(&keys::record(seq), encode(new)?);
        Ok(())
    }
}

fn fp_of(f: &Finding) -> Result<[u8; FP_LEN]> {
    keys::fp_bytes(&f.fingerprint).ok_or_else(|| StoreError::Corrupt {
        what: "finding".into(),
        reason: format!("bad fingerprint `{}`", f.fingerprint),
    })
}

/// Merges a fresh observation into a stored finding: observation fields from `obs`, life cycle
/// moved forward.
fn merge(stored: &Finding, obs: Finding, now: DateTime<Utc>) -> (Finding, bool) {
    let mut f = obs;
    f.first_seen = stored.first_seen;
    f.times_seen = stored.times_seen + 1;
    f.last_seen = now.max(stored.last_seen);
    f.history = stored.history.clone();
    let reopened = stored.status == Status::Resolved;
    f.status = Status::Open;
    if reopened {
        f.push_history(now, "reopened");
    }
    (f, reopened)
}

impl Store for SledStore {
    fn ingest(
        &self,
        findings: Vec<Finding>,
        state: Vec<(String, Option<Vec<u8>>)>,
        opts: &IngestOptions,
    ) -> Result<IngestStats> {
        let now = opts.now;
        let mut stats = IngestStats::default();
        // Merge duplicates within the batch: the last observation wins, counted once.
        let mut unique: BTreeMap<[u8; FP_LEN], Finding> = BTreeMap::new();
        for mut f in findings {
            if f.fingerprint.is_empty() {
                f.seal();
            }
            let fp = fp_of(&f)?;
            if unique.insert(fp, f).is_some() {
                stats.duplicates += 1;
            }
        }
        let _g = self.lock();
        let mut batch = sled::Batch::default();
        for (fp, obs) in unique {
            match self.load_with_seq(&fp)? {
                Some((seq, stored)) => {
                    let (merged, reopened) = merge(&stored, obs, now);
                    if reopened {
                        stats.reopened += 1;
                    }
                    stats.updated += 1;
                    Self::put_finding(&mut batch, &fp, seq, &merged, Some(&stored))?;
                }
                None => {
                    let mut f = obs;
                    f.first_seen = now;
                    f.last_seen = now;
                    f.times_seen = 1;
                    f.status = Status::New;
                    f.history.clear();
                    f.push_history(now, "new");
                    stats.new += 1;
                    Self::put_finding(&mut batch, &fp, self.new_seq(), &f, None)?;
                }
            }
        }
        for (k, v) in state {
            match v {
                Some(v) => batch.insert(keys::state(&k), v),
                None => batch.remove(keys::state(&k)),
            }
        }
        self.db.apply_batch(batch).map_err(engine)?;
        Ok(stats)
    }

    fn resolve_stale(
        &self,
        source: &str,
        feed: Option<&str>,
        cutoff: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<usize> {
        let _g = self.lock();
        let cutoff = cutoff.timestamp_micros();
        let resolved = keys::status_code(Status::Resolved);
        let mut batch = sled::Batch::default();
        let mut n = 0;
        for kv in self.db.scan_prefix([keys::RECORD]) {
            let (k, v) = kv.map_err(engine)?;
            let Some((h, _)) = keys::decode_header(&v) else {
                continue;
            };
            if h.source != source.as_bytes()
                || feed.is_some_and(|f| h.feed != f.as_bytes())
                || h.status == resolved
                || h.last_seen_micros >= cutoff
            {
                continue;
            }
            let mut f = decode(&k[1..], &v)?;
            f.status = Status::Resolved;
            f.push_history(now, "resolved");
            batch.insert(k, encode(&f)?);
            n += 1;
        }
        self.db.apply_batch(batch).map_err(engine)?;
        Ok(n)
    }

    fn get(&self, fingerprint: &str) -> Result<Option<Finding>> {
        match keys::fp_bytes(fingerprint) {
            None => Ok(None),
            Some(fp) => self.load(&fp),
        }
    }

    fn query(&self, q: &Query, opts: &QueryOptions) -> Result<Vec<Finding>> {
        let fps = self.query_fps(q)?;
        let mut out = Vec::with_capacity(fps.len());
        for fp in fps {
            let Some(f) = self.load(&fp)? else { continue };
            if !opts.include_resolved && f.status == Status::Resolved {
                continue;
            }
            if let Some(s) = opts.since
                && f.last_seen < s
            {
                continue;
            }
            out.push(f);
        }
        out.sort_by(|a, b| {
            b.last_seen
                .cmp(&a.last_seen)
                .then_with(|| a.severity.cmp(&b.severity))
                .then_with(|| a.fingerprint.cmp(&b.fingerprint))
        });
        if let Some(l) = opts.limit {
            out.truncate(l);
        }
        Ok(out)
    }

    fn for_each(&self, f: &mut dyn FnMut(Finding) -> Result<()>) -> Result<()> {
        for kv in self.db.scan_prefix([keys::RECORD]) {
            let (k, v) = kv.map_err(engine)?;
            f(decode(&k[1..], &v)?)?;
        }
        Ok(())
    }

    fn seen_between(&self, from: DateTime<Utc>, to: DateTime<Utc>) -> Result<Vec<Finding>> {
        let (from, to) = (from.timestamp_micros(), to.timestamp_micros());
        let mut out = Vec::new();
        for kv in self.db.scan_prefix([keys::RECORD]) {
            let (k, v) = kv.map_err(engine)?;
            let Some((h, _)) = keys::decode_header(&v) else {
                continue;
            };
            if h.last_seen_micros >= from && h.last_seen_micros < to {
                out.push(decode(&k[1..], &v)?);
            }
        }
        out.sort_by(|a, b| {
            a.last_seen
                .cmp(&b.last_seen)
                .then_with(|| a.fingerprint.cmp(&b.fingerprint))
        });
        Ok(out)
    }

    fn restore(&self, findings: Vec<Finding>) -> Result<usize> {
        let _g = self.lock();
        let mut batch = sled::Batch::default();
        let n = findings.len();
        for mut f in findings {
            if f.fingerprint.is_empty() {
                f.seal();
            }
            let fp = fp_of(&f)?;
            match self.load_with_seq(&fp)? {
                Some((seq, old)) => Self::put_finding(&mut batch, &fp, seq, &f, Some(&old))?,
                None => Self::put_finding(&mut batch, &fp, self.new_seq(), &f, None)?,
            }
        }
        self.db.apply_batch(batch).map_err(engine)?;
        Ok(n)
    }

    fn update(&self, findings: Vec<Finding>) -> Result<()> {
        let _g = self.lock();
        let mut batch = sled::Batch::default();
        for f in findings {
            let fp = fp_of(&f)?;
            let (seq, old) = self
                .load_with_seq(&fp)?
                .ok_or_else(|| StoreError::Corrupt {
                    what: format!("finding {}", f.fingerprint),
                    reason: "update of a finding that is not stored".into(),
                })?;
            Self::put_finding(&mut batch, &fp, seq, &f, Some(&old))?;
        }
        self.db.apply_batch(batch).map_err(engine)
    }

    fn record_run(&self, run: &FetchRun) -> Result<()> {
        let v = serde_json::to_vec(run).map_err(engine)?;
        self.db
            .insert(keys::run(run.started, &run.source), v)
            .map_err(engine)?;
        Ok(())
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
            let r: FetchRun = serde_json::from_slice(&v).map_err(|e| StoreError::Corrupt {
                what: "fetch run".into(),
                reason: e.to_string(),
            })?;
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
        match value {
            Some(v) => self.db.insert(keys::state(key), v).map(|_| ()),
            None => self.db.remove(keys::state(key)).map(|_| ()),
        }
        .map_err(engine)
    }

    fn state_scan(&self, prefix: &str) -> Result<Vec<(String, Vec<u8>)>> {
        let mut out = Vec::new();
        for kv in self.db.scan_prefix(keys::state(prefix)) {
            let (k, v) = kv.map_err(engine)?;
            out.push((String::from_utf8_lossy(&k[1..]).into_owned(), v.to_vec()));
        }
        Ok(out)
    }

    fn count(&self) -> Result<usize> {
        Ok(self.db.scan_prefix([keys::FINDING]).keys().count())
    }

    fn flush(&self) -> Result<()> {
        self.db.flush().map(|_| ()).map_err(engine)
    }
}

impl Drop for SledStore {
    fn drop(&mut self) {
        let _ = self.db.flush();
    }
}
