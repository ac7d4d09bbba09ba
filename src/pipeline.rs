//! Runs sources and applies what they return to the store: one fetch, one atomic ingest
//! (findings and source state together), then resolving of what the source stopped reporting,
//! the run log and a flush. A failed fetch writes only its run-log entry.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::clock::Clock;
use crate::finding::Finding;
use crate::http::HttpClient;
use crate::scope::ScopeMatcher;
use crate::sources::{FetchContext, FetchOutput, RowError, Source, StateView};
use crate::store::{FetchRun, IngestOptions, IngestStats, Store, StoreError};

/// At most this many rejected-row messages are kept per run (the count stays exact).
pub const MAX_REPORTED_ERRORS: usize = 50;

/// What one source run did; printed by `fetch --json` and kept for feed health.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SourceReport {
    pub name: String,
    pub ok: bool,
    pub fetched: usize,
    pub in_scope: usize,
    pub new: usize,
    pub updated: usize,
    pub resolved: usize,
    pub rejected: usize,
    pub not_modified: bool,
    pub error: Option<String>,
    /// The first rejected rows (file/line and reason).
    pub errors: Vec<RowError>,
}

impl SourceReport {
    /// A report for a source that could not even be set up.
    pub fn failed(name: &str, error: String) -> Self {
        SourceReport {
            name: name.to_string(),
            ok: false,
            error: Some(error),
            ..Default::default()
        }
    }
}

/// Shared things a run needs.
#[derive(Clone)]
pub struct Runner {
    pub store: Arc<dyn Store>,
    pub http: HttpClient,
    pub scope: Arc<ScopeMatcher>,
    pub clock: Arc<dyn Clock>,
}

impl Runner {
    /// Fetches one source and applies the result. Never panics on bad data; an error leaves
    /// the findings untouched and is recorded in the run log.
    pub async fn run_source(&self, src: &dyn Source) -> SourceReport {
        let started = self.clock.now();
        let ctx = FetchContext {
            http: self.http.clone(),
            scope: self.scope.clone(),
            state: StateView::new(self.store.clone()),
            now: started,
        };
        tracing::info!(source = src.name(), "fetching");
        let result = src.fetch(&ctx).await;
        let mut report = SourceReport {
            name: src.name().to_string(),
            ..Default::default()
        };
        let mut run = FetchRun::begun(src.name(), started);
        match result {
            Err(e) => {
                let msg = e.to_string();
                tracing::warn!(source = src.name(), error = %crate::text::Clean(&msg), "fetch failed");
                report.error = Some(msg.clone());
                run.outcome = "error".into();
                run.error = Some(msg);
            }
            Ok(out) => {
                report.errors = out
                    .rejected
                    .iter()
                    .take(MAX_REPORTED_ERRORS)
                    .cloned()
                    .collect();
                match self
                    .apply(src.name(), out, started, src.resolve_after(), &mut run)
                    .await
                {
                    Ok(()) => {
                        report.ok = true;
                    }
                    Err(e) => {
                        let msg = format!("storing the results failed: {e}");
                        tracing::error!(source = src.name(), error = %msg);
                        report.error = Some(msg.clone());
                        run.outcome = "error".into();
                        run.error = Some(msg);
                    }
                }
            }
        }
        run.finished = self.clock.now();
        report.fetched = run.fetched;
        report.in_scope = run.in_scope;
        report.new = run.new;
        report.updated = run.updated;
        report.resolved = run.resolved;
        report.rejected = run.rejected;
        report.not_modified = run.outcome == "not_modified";
        if let Err(e) = self.store.record_run(&run) {
            tracing::error!(source = src.name(), error = %e, "cannot record the run");
        }
        if let Err(e) = self.store.flush() {
            tracing::error!(error = %e, "flush failed");
        }
        tracing::info!(
            source = src.name(),
            ok = report.ok,
            fetched = report.fetched,
            new = report.new,
            updated = report.updated,
            resolved = report.resolved,
            rejected = report.rejected,
            "fetch finished"
        );
        report
    }

    async fn apply(
        &self,
        name: &str,
        out: FetchOutput,
        now: DateTime<Utc>,
        resolve_after: chrono::Duration,
        run: &mut FetchRun,
    ) -> Result<(), StoreError> {
        run.fetched = out.fetched;
        run.rejected = out.rejected.len();
        for w in out.warnings.iter().take(MAX_REPORTED_ERRORS) {
            tracing::info!(
                source = name,
                at = %crate::text::Clean(&w.location),
                "kept with a malformed value: {}",
                crate::text::Clean(&w.message)
            );
        }
        for e in out.rejected.iter().take(MAX_REPORTED_ERRORS) {
            tracing::warn!(
                source = name,
                at = %crate::text::Clean(&e.location),
                "rejected: {}",
                crate::text::Clean(&e.message)
            );
        }
        if out.not_modified {
            run.outcome = "not_modified".into();
            if !out.state.is_empty() {
                let store = self.store.clone();
                let state = out.state;
                blocking(move || store.ingest(Vec::new(), state, &IngestOptions { now })).await?;
            }
            return Ok(());
        }
        run.accepted = out.findings.len();
        run.in_scope = out.findings.iter().filter(|f| f.in_scope).count();
        run.max_time_source = out.findings.iter().filter_map(|f| f.time_source).max();
        let store = self.store.clone();
        let findings = out.findings;
        let state = out.state;
        let stats: IngestStats =
            blocking(move || store.ingest(findings, state, &IngestOptions { now })).await?;
        run.new = stats.new;
        run.updated = stats.updated;
        if out.complete {
            let store = self.store.clone();
            let src = name.to_string();
            run.resolved =
                blocking(move || store.resolve_stale(&src, None, now - resolve_after, now)).await?;
        }
        Ok(())
    }
}

/// Runs blocking store work off the async threads.
pub async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| StoreError::Engine(format!("store task failed: {e}")))?
}

/// Stamps scope on findings that carry an IP, network, domain or e-mail: `in_scope` plus
/// `extra.matched_prefix` / `extra.matched_asn` / `extra.matched_domain` where found.
pub fn mark_scope(f: &mut Finding, scope: &ScopeMatcher) {
    let m = ScopeMark::of(&f.view(), scope);
    if let Some(p) = m.prefix {
        f.set_extra("matched_prefix", p.to_string());
    }
    if let Some(a) = m.asn {
        f.set_extra("matched_asn", a);
    }
    if let Some(d) = m.domain {
        f.set_extra("matched_domain", d.to_string());
    }
    f.in_scope = m.in_scope;
}

/// What [`mark_scope`] stamps, for parsers that build a [`crate::finding::FindingView`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScopeMark<'s> {
    pub in_scope: bool,
    /// `extra.matched_prefix`: our prefix holding the finding's IP.
    pub prefix: Option<ipnet::IpNet>,
    /// `extra.matched_asn`: our ASN that announces that prefix.
    pub asn: Option<u32>,
    /// `extra.matched_domain`: our domain the finding's domain lies under.
    pub domain: Option<&'s str>,
}

impl<'s> ScopeMark<'s> {
    /// Matches the indicators of `f` against `scope`: IP, else network, else domain, else
    /// e-mail, else (for findings about an AS only) the ASN.
    pub fn of(f: &crate::finding::FindingView<'_>, scope: &'s ScopeMatcher) -> Self {
        let mut m = ScopeMark {
            in_scope: false,
            prefix: None,
            asn: None,
            domain: None,
        };
        if let Some(ip) = f.ip
            && let Some((net, origin)) = scope.match_ip(ip)
        {
            m.in_scope = true;
            m.prefix = Some(net);
            if let crate::scope::Origin::Asn(a) = origin {
                m.asn = Some(a);
            }
        }
        if !m.in_scope
            && let Some(n) = f.network
        {
            m.in_scope = scope.overlaps_net(n);
        }
        if !m.in_scope
            && let Some(d) = f.domain
            && let Some(hit) = scope.match_domain(d)
        {
            m.in_scope = true;
            m.domain = Some(hit);
        }
        if !m.in_scope
            && let Some(e) = f.email
        {
            m.in_scope = scope.contains_email(e);
        }
        if !m.in_scope
            && let Some(a) = f.asn
        {
            m.in_scope = f.ip.is_none() && f.network.is_none() && scope.contains_asn(a);
        }
        m
    }
}
