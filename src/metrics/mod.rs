//! Prometheus metrics (issue #24 item 5): what `outwatch status` judges, as numbers a
//! monitoring system scrapes. [`render`] is what `/metrics` and `outwatch status --prometheus`
//! print; every metric, its labels and examples are in `docs/metrics.md`.
//!
//! Nothing is judged twice: the state of each source is [`crate::health`]'s, the run outcomes
//! are the run log's, the digest's and notify's results are what they recorded themselves
//! ([`crate::digest::mail_log::LastRun`]). Cost: one walk over the findings that are not
//! resolved (counted by source and severity, memory by the number of sources), the run log's
//! latest runs, a few state records; the store's own count and size.
//!
//! Label values (source names, audiences) are escaped by [`exposition`]: feed names come from
//! files anyone may edit, and no value may break a line of the format.

pub(crate) mod exposition;

use std::collections::BTreeMap;
use std::ops::ControlFlow;

use chrono::{DateTime, Utc};

use crate::config::Config;
use crate::digest::mail_log::{self, LastRun};
use crate::finding::{Severity, SourceId};
use crate::health::{self, DaemonSources, HealthState, SourceHealth};
use crate::store::{FetchRun, Filter, RunOutcome, Store, StoreError};
use crate::triage::suppress::Suppressions;
use exposition::{Exposition, Family};

pub use exposition::CONTENT_TYPE;

/// Why no metrics could be made.
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    #[error("metrics: cannot read the store")]
    Store(#[from] StoreError),
}

/// What the metrics are made from.
#[derive(Clone, Copy)]
pub struct Inputs<'a> {
    pub store: &'a dyn Store,
    /// The loaded config (`None`: only what the run log knows is judged).
    pub config: Option<&'a Config>,
    pub now: DateTime<Utc>,
    /// How the running daemon sees each source, when asked from outside it (`status` passes
    /// the daemon's `hello`): a key only the daemon has is no failure.
    pub daemon: Option<&'a DaemonSources>,
}

/// The metrics of a store as of one moment, before they are written out.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// Health of every source, as `status` shows it (sorted by name).
    pub sources: Vec<SourceHealth>,
    /// The latest run-log entry of each source that has one.
    last_runs: BTreeMap<String, FetchRun>,
    /// Findings not resolved and not suppressed, by source and severity.
    open: BTreeMap<(String, Severity), u64>,
    /// Findings not resolved that a suppression rule in force covers, by source.
    suppressed: BTreeMap<String, u64>,
    findings: usize,
    size_on_disk: Option<u64>,
    digest: Option<LastRun>,
    /// When each digest audience last got its digest (`main`, `route:<name>`).
    digest_delivered: BTreeMap<String, DateTime<Utc>>,
    notify: Option<LastRun>,
    flows: Option<FlowsLines>,
}

/// What the flows job read lately.
#[derive(Debug, Clone, Copy)]
struct FlowsLines {
    /// Lines of the latest flows run (connections and rejected lines).
    last_run: u64,
    /// When the latest run that read any line ended.
    last_read: Option<DateTime<Utc>>,
}

/// The metrics text (Prometheus text format 0.0.4, [`CONTENT_TYPE`]) of `store`, judged with
/// `config` as of `now`: what the web server's `/metrics` answers.
pub fn render(
    store: &dyn Store,
    config: Option<&Config>,
    now: DateTime<Utc>,
) -> Result<String, MetricsError> {
    Ok(gather(&Inputs {
        store,
        config,
        now,
        daemon: None,
    })?
    .render())
}

/// Reads everything the metrics tell from the store.
pub fn gather(i: &Inputs<'_>) -> Result<Snapshot, MetricsError> {
    let store = i.store;
    let sources = health::assess_as_seen_by(i.config, store, i.now, i.daemon)?;
    let mut last_runs = BTreeMap::new();
    for s in &sources {
        if let Some(r) = store.runs(Some(&s.name), 1)?.into_iter().next() {
            last_runs.insert(s.name.clone(), r);
        }
    }
    let flows = if last_runs.contains_key(SourceId::Flows.name()) {
        Some(flows_lines(store)?)
    } else {
        None
    };
    let (open, suppressed) = open_counts(store, i.config, i.now)?;
    Ok(Snapshot {
        sources,
        last_runs,
        open,
        suppressed,
        findings: store.count()?,
        size_on_disk: store.size_on_disk()?,
        digest: mail_log::last_run(store, mail_log::DIGEST_RUN)?,
        digest_delivered: crate::digest::load_state(store)?.last_sent,
        notify: mail_log::last_run(store, mail_log::NOTIFY_RUN)?,
        flows,
    })
}

type OpenCounts = (BTreeMap<(String, Severity), u64>, BTreeMap<String, u64>);

/// One walk over the findings that are not resolved: counted by source and severity, those a
/// suppression rule covers apart (as the worklist leaves them out).
fn open_counts(
    store: &dyn Store,
    config: Option<&Config>,
    now: DateTime<Utc>,
) -> Result<OpenCounts, StoreError> {
    let supp = Suppressions::load(store, config, now)?;
    let mut open: BTreeMap<(String, Severity), u64> = BTreeMap::new();
    let mut suppressed: BTreeMap<String, u64> = BTreeMap::new();
    store.select(&Filter::default(), &mut |f| {
        if supp.suppressed(&f) {
            *suppressed.entry(f.source).or_default() += 1;
        } else {
            *open.entry((f.source, f.severity)).or_default() += 1;
        }
        Ok(ControlFlow::Continue(()))
    })?;
    Ok((open, suppressed))
}

/// The flows job's latest run's lines, and when a run last read any.
fn flows_lines(store: &dyn Store) -> Result<FlowsLines, StoreError> {
    let runs = store.runs(Some(SourceId::Flows.name()), health::RUNS_CONSIDERED)?;
    let lines = |r: &FetchRun| (r.fetched as u64).saturating_add(r.rejected as u64);
    Ok(FlowsLines {
        last_run: runs.first().map(lines).unwrap_or(0),
        last_read: runs.iter().find(|r| lines(r) > 0).map(|r| r.finished),
    })
}

/// Unix seconds.
fn secs(t: DateTime<Utc>) -> f64 {
    t.timestamp() as f64
}

fn flag(b: bool) -> f64 {
    if b { 1.0 } else { 0.0 }
}

/// Every state a source can be in, as `status` names them.
const STATES: [HealthState; 6] = [
    HealthState::Ok,
    HealthState::Silent,
    HealthState::Partial,
    HealthState::Degraded,
    HealthState::Failing,
    HealthState::Never,
];

/// Every outcome a run can have, as the run log names them.
const OUTCOMES: [RunOutcome; 4] = [
    RunOutcome::Ok,
    RunOutcome::NotModified,
    RunOutcome::Partial,
    RunOutcome::Error,
];

impl Snapshot {
    /// Sets the store's size when the store could not tell it (one read through the daemon's
    /// socket) and the caller can (the store folder's files).
    pub fn size_on_disk_or(&mut self, known: impl FnOnce() -> Option<u64>) {
        if self.size_on_disk.is_none() {
            self.size_on_disk = known();
        }
    }

    /// Whether every source is healthy (`status`'s exit code).
    pub fn healthy(&self) -> bool {
        self.sources.iter().all(|s| s.state == HealthState::Ok)
    }

    /// The metrics text.
    pub fn render(&self) -> String {
        let mut e = Exposition::new();
        let mut info = Family::gauge("outwatch_info", "outwatch's version (always 1).");
        info.sample(&[("version", env!("CARGO_PKG_VERSION"))], 1.0);
        e.push(info);
        self.sources_health(&mut e);
        self.runs(&mut e);
        self.findings(&mut e);
        self.mail(&mut e);
        self.flows(&mut e);
        e.finish()
    }

    fn sources_health(&self, e: &mut Exposition) {
        let mut state = Family::gauge(
            "outwatch_source_state",
            "1 for the state `outwatch status` gives the source (ok, silent, partial, degraded, failing, never), 0 for the others.",
        );
        let mut success = Family::gauge(
            "outwatch_source_last_success_timestamp_seconds",
            "When the source's last successful run ended (Unix seconds).",
        );
        for s in &self.sources {
            for st in STATES {
                state.sample(
                    &[("source", &s.name), ("state", st.as_str())],
                    flag(s.state == st),
                );
            }
            if let Some(t) = s.last_success {
                success.sample(&[("source", &s.name)], secs(t));
            }
        }
        e.push(state);
        e.push(success);
    }

    fn runs(&self, e: &mut Exposition) {
        let mut at = Family::gauge(
            "outwatch_source_last_run_timestamp_seconds",
            "When the source's latest run ended (Unix seconds).",
        );
        let mut outcome = Family::gauge(
            "outwatch_source_last_run_outcome",
            "1 for the outcome of the source's latest run (ok, not_modified, partial, error), 0 for the others.",
        );
        let mut failed = Family::gauge(
            "outwatch_source_last_run_failed_units",
            "Units (reports, files, days, URLs) of the source's latest run that failed while others were stored.",
        );
        let mut rows = Family::gauge(
            "outwatch_source_last_run_rows",
            "Rows (records, lines) the source's latest run read.",
        );
        let mut rejected = Family::gauge(
            "outwatch_source_last_run_rejected_rows",
            "Rows of the source's latest run rejected as malformed.",
        );
        for (name, r) in &self.last_runs {
            let l = [("source", name.as_str())];
            at.sample(&l, secs(r.finished));
            for o in OUTCOMES {
                outcome.sample(
                    &[("source", name.as_str()), ("outcome", o.as_str())],
                    flag(r.outcome == o),
                );
            }
            failed.sample(&l, r.failed_units.len() as f64);
            rows.sample(&l, r.fetched as f64);
            rejected.sample(&l, r.rejected as f64);
        }
        for f in [at, outcome, failed, rows, rejected] {
            e.push(f);
        }
    }

    fn findings(&self, e: &mut Exposition) {
        let mut open = Family::gauge(
            "outwatch_findings_open",
            "Findings not resolved (new or open) and not covered by a suppression rule, by source and severity.",
        );
        for ((source, sev), n) in &self.open {
            open.sample(
                &[("source", source.as_str()), ("severity", sev.as_str())],
                *n as f64,
            );
        }
        e.push(open);
        let mut supp = Family::gauge(
            "outwatch_findings_suppressed",
            "Findings not resolved that a suppression rule in force covers, by source.",
        );
        for (source, n) in &self.suppressed {
            supp.sample(&[("source", source.as_str())], *n as f64);
        }
        e.push(supp);
        let mut count = Family::gauge(
            "outwatch_store_findings",
            "Findings in the store, resolved ones included.",
        );
        count.value(self.findings as f64);
        e.push(count);
        let mut size = Family::gauge(
            "outwatch_store_size_bytes",
            "Bytes the store takes on disk (sled's files; PostgreSQL's tables with their indexes).",
        );
        if let Some(b) = self.size_on_disk {
            size.value(b as f64);
        }
        e.push(size);
    }

    fn mail(&self, e: &mut Exposition) {
        let runs = [
            ("digest", self.digest.as_ref()),
            ("notify", self.notify.as_ref()),
        ];
        let mut at = Family::gauge(
            "outwatch_mail_last_run_timestamp_seconds",
            "When the latest digest delivery (job=digest) or notify --send run (job=notify) ended (Unix seconds).",
        );
        let mut ok = Family::gauge(
            "outwatch_mail_last_run_success",
            "1 when everything due went out in the job's latest run, 0 when a message failed, the run failed, or (notify) its cap stopped it.",
        );
        let mut sent = Family::gauge(
            "outwatch_mail_last_run_sent",
            "Messages the job's latest run delivered (accepted by the SMTP server, or written as .eml).",
        );
        let mut failed = Family::gauge(
            "outwatch_mail_last_run_failed",
            "Messages the job's latest run could not deliver.",
        );
        for (job, r) in runs {
            let Some(r) = r else { continue };
            let l = [("job", job)];
            at.sample(&l, secs(r.finished));
            ok.sample(&l, flag(r.ok));
            sent.sample(&l, r.sent as f64);
            failed.sample(&l, r.failed as f64);
        }
        for f in [at, ok, sent, failed] {
            e.push(f);
        }
        let mut delivered = Family::gauge(
            "outwatch_digest_last_delivered_timestamp_seconds",
            "When each digest audience (main, route:<name>) last got its digest, or was found to have nothing new with send_empty = false (Unix seconds).",
        );
        for (audience, t) in &self.digest_delivered {
            delivered.sample(&[("audience", audience.as_str())], secs(*t));
        }
        e.push(delivered);
    }

    fn flows(&self, e: &mut Exposition) {
        let Some(f) = self.flows else { return };
        let mut lines = Family::gauge(
            "outwatch_flows_last_run_lines",
            "Log lines the latest flows run read (connections and rejected lines; 0 when no new line came).",
        );
        lines.value(f.last_run as f64);
        e.push(lines);
        let mut read = Family::gauge(
            "outwatch_flows_last_lines_timestamp_seconds",
            "When the latest flows run that read any line ended (Unix seconds).",
        );
        if let Some(t) = f.last_read {
            read.value(secs(t));
        }
        e.push(read);
    }
}
