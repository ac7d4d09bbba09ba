//! A toy [`Store`] kept in memory: the second backend of the contract suite. It is written from
//! the crate's public API alone (the trait, the unit types, the life-cycle rule in
//! `store::lifecycle`), nothing of sled's: the proof that a backend can meet the contract from
//! outside the store module, as the PostgreSQL backend will. Everything sits in one map behind
//! one mutex; a unit is staged on a copy and swapped in, so it is all or nothing.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::ops::ControlFlow;
use std::sync::Mutex;

use chrono::{DateTime, Utc};
use outwatch::finding::{Finding, FindingView, Status};
use outwatch::store::{
    FetchRun, FindingWriter, Findings, Flow, IngestStats, Query, QueryOptions, QueryTotals,
    RUN_LOG_DAYS, ReadError, Result, Store, StoreError, Unit, Write, lifecycle,
};

#[derive(Debug, Default, Clone)]
struct Inner {
    findings: BTreeMap<String, Finding>,
    /// Keyed as the trait says: start time and source name.
    runs: BTreeMap<(DateTime<Utc>, String), FetchRun>,
    state: BTreeMap<String, Vec<u8>>,
}

/// The in-memory store.
#[derive(Debug, Default)]
pub struct MemoryStore {
    inner: Mutex<Inner>,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Collects a streamed unit's findings (a toy: held in memory).
#[derive(Default)]
struct Collect(Vec<Finding>);

impl FindingWriter for Collect {
    fn view(&mut self, f: &FindingView<'_>) -> Result<()> {
        self.0.push(f.to_finding());
        Ok(())
    }

    fn finding(&mut self, f: &Finding) -> Result<()> {
        self.0.push(f.clone());
        Ok(())
    }
}

fn sealed(mut f: Finding) -> Result<Finding> {
    if f.fingerprint.is_empty() {
        f.seal();
    }
    let ok = f.fingerprint.len() == 32 && f.fingerprint.bytes().all(|b| b.is_ascii_hexdigit());
    if !ok {
        return Err(StoreError::corrupt(
            "finding",
            format!("bad fingerprint `{}`", f.fingerprint),
        ));
    }
    Ok(f)
}

impl Inner {
    /// Writes `findings` by `write` at `now`; the life cycle from `lifecycle`.
    fn write(
        &mut self,
        findings: Vec<Finding>,
        write: Write,
        now: DateTime<Utc>,
    ) -> Result<IngestStats> {
        let mut stats = IngestStats::default();
        let mut seen: HashMap<String, ()> = HashMap::new();
        for f in findings {
            let f = sealed(f)?;
            let fp = f.fingerprint.clone();
            let repeat = seen.insert(fp.clone(), ()).is_some();
            stats.duplicates += usize::from(repeat);
            let stored = self.findings.remove(&fp);
            let next = match (write, stored) {
                (Write::Restore, _) => f,
                (Write::Observe, Some(cur)) if repeat => lifecycle::repeat(cur, f),
                (Write::Observe, Some(cur)) => lifecycle::merge(cur, f, now, &mut stats),
                (Write::Observe, None) => {
                    let mut f = f;
                    lifecycle::stamp_new(&mut f, now);
                    stats.new += 1;
                    f
                }
            };
            self.findings.insert(fp, next);
        }
        Ok(stats)
    }

    fn record(&mut self, run: &FetchRun) {
        let cutoff = run.started - chrono::Duration::days(RUN_LOG_DAYS);
        self.runs.retain(|(t, _), _| *t >= cutoff);
        self.runs
            .insert((run.started, run.source.clone()), run.clone());
    }
}

/// Whether `x` is `d` or a subdomain of it.
fn under(x: &str, d: &str) -> bool {
    x == d || x.strip_suffix(d).is_some_and(|rest| rest.ends_with('.'))
}

/// Whether `f` answers `q` (the trait's query semantics, finding by finding).
fn matches(f: &Finding, q: &Query) -> bool {
    match q {
        Query::Ip(a) => match f.network {
            Some(n) => n.contains(a),
            None => f.ip == Some(*a),
        },
        Query::Net(n) => {
            let n = n.trunc();
            match f.network {
                Some(m) => n.contains(&m) || m.contains(&n),
                None => f.ip.is_some_and(|a: IpAddr| n.contains(&a)),
            }
        }
        Query::Domain(d) => {
            let d = outwatch::finding::normalize_domain(d);
            let mail = f
                .email
                .as_deref()
                .and_then(|e| e.rsplit_once('@'))
                .map(|x| x.1);
            !d.is_empty()
                && f.domain
                    .iter()
                    .map(String::as_str)
                    .chain(mail)
                    .any(|x| under(x, &d))
        }
        Query::Email(e) => f.email.as_deref() == Some(e.trim().to_ascii_lowercase().as_str()),
        Query::Asn(a) => {
            f.network.is_none()
                && f.ip.is_none()
                && f.domain.is_none()
                && f.email.is_none()
                && f.asn == Some(*a)
        }
    }
}

impl Store for MemoryStore {
    fn ingest_unit(&self, unit: Unit<'_>) -> Result<IngestStats> {
        let findings = match unit.findings {
            Findings::Owned(v) => v,
            Findings::Streamed(read, _) => {
                let mut c = Collect::default();
                read(&mut c).map_err(|e| match e {
                    ReadError::Store(e) => *e,
                    unread => StoreError::Unread(unread),
                })?;
                c.0
            }
        };
        let mut g = self.lock();
        let mut next = g.clone();
        let stats = next.write(findings, unit.write, unit.now)?;
        for (k, v) in unit.state {
            match v {
                Some(v) => next.state.insert(k, v),
                None => next.state.remove(&k),
            };
        }
        if let Some(make) = unit.run {
            next.record(&make(&stats));
        }
        *g = next;
        Ok(stats)
    }

    fn resolve_stale(
        &self,
        source: &str,
        feed: Option<&str>,
        cutoff: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<usize> {
        let mut n = 0;
        for f in self.lock().findings.values_mut() {
            if f.source == source
                && feed.is_none_or(|x| f.feed == x)
                && f.status != Status::Resolved
                && f.last_seen < cutoff
            {
                f.status = Status::Resolved;
                f.push_history(now, "resolved");
                n += 1;
            }
        }
        Ok(n)
    }

    fn open_and_stale(&self, source: &str, cutoff: DateTime<Utc>) -> Result<(usize, usize)> {
        let g = self.lock();
        let open = g
            .findings
            .values()
            .filter(|f| f.source == source && f.status != Status::Resolved);
        let (mut o, mut s) = (0, 0);
        for f in open {
            o += 1;
            s += usize::from(f.last_seen < cutoff);
        }
        Ok((o, s))
    }

    fn modify(
        &self,
        fingerprints: &[String],
        change: &mut dyn FnMut(&mut Finding) -> bool,
    ) -> Result<usize> {
        let mut g = self.lock();
        let mut n = 0;
        for fp in fingerprints {
            if let Some(f) = g.findings.get_mut(fp) {
                let mut copy = f.clone();
                if change(&mut copy) {
                    *f = copy;
                    n += 1;
                }
            }
        }
        Ok(n)
    }

    fn get(&self, fingerprint: &str) -> Result<Option<Finding>> {
        Ok(self.lock().findings.get(fingerprint).cloned())
    }

    fn query_each(
        &self,
        q: &Query,
        opts: &QueryOptions,
        f: &mut dyn FnMut(Finding) -> Flow,
    ) -> Result<QueryTotals> {
        // A copy, so the callback may call the store.
        let hits: Vec<Finding> = self
            .lock()
            .findings
            .values()
            .filter(|x| matches(x, q))
            .filter(|x| opts.include_resolved || x.status != Status::Resolved)
            .filter(|x| opts.since.is_none_or(|s| x.last_seen >= s))
            .cloned()
            .collect();
        let mut totals = QueryTotals::default();
        for x in hits {
            totals.handed += 1;
            if let ControlFlow::Break(()) = f(x)? {
                totals.stopped = true;
                break;
            }
        }
        Ok(totals)
    }

    fn for_each(&self, f: &mut dyn FnMut(Finding) -> Result<()>) -> Result<()> {
        let all: Vec<Finding> = self.lock().findings.values().cloned().collect();
        for x in all {
            f(x)?;
        }
        Ok(())
    }

    fn count(&self) -> Result<usize> {
        Ok(self.lock().findings.len())
    }

    fn record_run(&self, run: &FetchRun) -> Result<()> {
        self.lock().record(run);
        Ok(())
    }

    fn runs(&self, source: Option<&str>, limit: usize) -> Result<Vec<FetchRun>> {
        Ok(self
            .lock()
            .runs
            .values()
            .rev()
            .filter(|r| source.is_none_or(|s| r.source == s))
            .take(limit)
            .cloned()
            .collect())
    }

    fn state_get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        Ok(self.lock().state.get(key).cloned())
    }

    fn state_put(&self, key: &str, value: Option<&[u8]>) -> Result<()> {
        let mut g = self.lock();
        match value {
            Some(v) => g.state.insert(key.to_string(), v.to_vec()),
            None => g.state.remove(key),
        };
        Ok(())
    }

    fn state_scan(&self, prefix: &str) -> Result<Vec<(String, Vec<u8>)>> {
        Ok(self
            .lock()
            .state
            .range(prefix.to_string()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect())
    }

    fn flush(&self) -> Result<()> {
        Ok(())
    }
}
