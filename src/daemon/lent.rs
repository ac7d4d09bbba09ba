//! [`Lent`]: the store a command serves reads from while it holds it (`App::serve_reads`), held
//! weakly: when the command lets go of its store, the store closes (and its lock goes) even if
//! the socket still runs, and a later request is told the store is no longer held here.

use std::sync::{Arc, Weak};

use chrono::{DateTime, Utc};

use crate::finding::Finding;
use crate::store::{
    FetchRun, Flow, IngestStats, Query, QueryOptions, QueryTotals, ReportedUrl, Result, Store,
    StoreError, Unit,
};

/// A store served for reads while its owner keeps it; every write is refused.
pub struct Lent {
    store: Weak<dyn Store>,
    path: String,
}

impl Lent {
    pub fn new(store: &Arc<dyn Store>, data_dir: &std::path::Path) -> Self {
        Lent {
            store: Arc::downgrade(store),
            path: data_dir.display().to_string(),
        }
    }

    /// Whether its owner still keeps the store.
    pub fn is_held(&self) -> bool {
        self.store.strong_count() > 0
    }

    fn get(&self) -> Result<Arc<dyn Store>> {
        self.store.upgrade().ok_or_else(|| self.locked())
    }

    fn locked(&self) -> StoreError {
        StoreError::Locked {
            path: self.path.clone(),
        }
    }
}

impl Store for Lent {
    fn ingest_unit(&self, _unit: Unit<'_>) -> Result<IngestStats> {
        Err(self.locked())
    }

    fn resolve_stale(
        &self,
        _source: &str,
        _feed: Option<&str>,
        _cutoff: DateTime<Utc>,
        _now: DateTime<Utc>,
    ) -> Result<usize> {
        Err(self.locked())
    }

    fn open_and_stale(&self, source: &str, cutoff: DateTime<Utc>) -> Result<(usize, usize)> {
        self.get()?.open_and_stale(source, cutoff)
    }

    fn modify(
        &self,
        _fingerprints: &[String],
        _change: &mut dyn FnMut(&mut Finding) -> bool,
    ) -> Result<usize> {
        Err(self.locked())
    }

    fn get(&self, fingerprint: &str) -> Result<Option<Finding>> {
        Lent::get(self)?.get(fingerprint)
    }

    fn query_each(
        &self,
        q: &Query,
        opts: &QueryOptions,
        f: &mut dyn FnMut(Finding) -> Flow,
    ) -> Result<QueryTotals> {
        Lent::get(self)?.query_each(q, opts, f)
    }

    fn query(&self, q: &Query, opts: &QueryOptions) -> Result<Vec<Finding>> {
        Lent::get(self)?.query(q, opts)
    }

    fn most_severe(
        &self,
        q: &Query,
        opts: &QueryOptions,
        limit: usize,
        found: &mut dyn FnMut(),
    ) -> Result<(Vec<Finding>, usize)> {
        Lent::get(self)?.most_severe(q, opts, limit, found)
    }

    fn for_each(&self, f: &mut dyn FnMut(Finding) -> Result<()>) -> Result<()> {
        Lent::get(self)?.for_each(f)
    }

    fn reported_urls(
        &self,
        except_source: &str,
        f: &mut dyn FnMut(ReportedUrl<'_>) -> Flow,
    ) -> Result<()> {
        Lent::get(self)?.reported_urls(except_source, f)
    }

    fn count(&self) -> Result<usize> {
        Lent::get(self)?.count()
    }

    fn size_on_disk(&self) -> Result<Option<u64>> {
        Lent::get(self)?.size_on_disk()
    }

    fn record_run(&self, _run: &FetchRun) -> Result<()> {
        Err(self.locked())
    }

    fn runs(&self, source: Option<&str>, limit: usize) -> Result<Vec<FetchRun>> {
        Lent::get(self)?.runs(source, limit)
    }

    fn state_get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        Lent::get(self)?.state_get(key)
    }

    fn state_put(&self, _key: &str, _value: Option<&[u8]>) -> Result<()> {
        Err(self.locked())
    }

    fn state_scan(&self, prefix: &str) -> Result<Vec<(String, Vec<u8>)>> {
        Lent::get(self)?.state_scan(prefix)
    }

    fn state_each(
        &self,
        prefix: &str,
        each: &mut dyn FnMut(&str, &[u8]) -> Result<()>,
    ) -> Result<()> {
        Lent::get(self)?.state_each(prefix, each)
    }

    fn flush(&self) -> Result<()> {
        Ok(())
    }
}
