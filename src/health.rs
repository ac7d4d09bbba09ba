//! Feed health (issue #6): per source the last success, last error and rows per run, judged
//! against the source's schedule, so "the feed broke" is never mistaken for "all is well".
//!
//! The judgement ([`judge`]) is a pure function of the run log, the schedule and "now"; [`assess`]
//! gathers those for every enabled source and every source found in the run log.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;

use crate::config::{Config, CronSchedule};
use crate::finding::SourceId;
use crate::store::{FetchRun, RunOutcome, Store, StoreError};

/// Runs of one source looked at to judge it (newest first).
pub const RUNS_CONSIDERED: usize = 30;
/// Runs of all sources scanned to find sources that are no longer configured.
const LOG_SCAN: usize = 5_000;
/// Data timestamped this far ahead of our clock is suspicious.
pub const CLOCK_AHEAD_LIMIT: Duration = Duration::hours(1);

/// The contract states of `outwatch status --json`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum HealthState {
    /// Succeeded within its expected interval and nothing looks odd.
    Ok,
    /// No success within its expected interval, or suspicious data (empty where it used to
    /// have data, timestamps ahead of our clock): see `warnings`.
    Silent,
    /// The last run stored some units and failed others (or held back a suspicious drop).
    Partial,
    /// The last run worked but checked less than it should: a flows run with no C2 list to
    /// check peers against ("checked against 0 lists").
    Degraded,
    /// The last run failed.
    Failing,
    /// Never ran.
    Never,
}

impl HealthState {
    pub fn as_str(self) -> &'static str {
        match self {
            HealthState::Ok => "ok",
            HealthState::Silent => "silent",
            HealthState::Partial => "partial",
            HealthState::Degraded => "degraded",
            HealthState::Failing => "failing",
            HealthState::Never => "never",
        }
    }
}

/// Health of one source.
#[derive(Debug, Clone, Serialize)]
pub struct SourceHealth {
    pub name: String,
    pub state: HealthState,
    pub last_success: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
    pub last_run: Option<DateTime<Utc>>,
    /// Rows fetched in the last successful run.
    pub last_rows: Option<usize>,
    /// Human-readable reasons for a non-ok state.
    pub warnings: Vec<String>,
    /// What the last run said the owner should know that is no failure (the state stays).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

/// What [`judge`] needs to know about a source besides its runs.
#[derive(Debug, Clone, Default)]
pub struct SourceFacts {
    /// When the daemon runs it (`None`: not scheduled, e.g. an import-only source).
    pub schedule: Option<CronSchedule>,
    /// Why the source cannot be set up from the config, when it cannot.
    pub build_error: Option<String>,
}

/// Judges every enabled source, plus every source that has runs in the log (imports, sources
/// switched off since), newest knowledge first. Sorted by name.
pub fn assess(
    cfg: &Config,
    store: &dyn Store,
    now: DateTime<Utc>,
) -> Result<Vec<SourceHealth>, StoreError> {
    assess_sources(Some(cfg), store, now)
}

/// Like [`assess`]; without a config only the sources found in the run log are judged (with
/// no schedule to hold them to).
pub fn assess_sources(
    cfg: Option<&Config>,
    store: &dyn Store,
    now: DateTime<Utc>,
) -> Result<Vec<SourceHealth>, StoreError> {
    assess_as_seen_by(cfg, store, now, None)
}

/// How the running daemon sees one source: whether it could set it up from its own
/// environment (keys from its `EnvironmentFile`, say), and its schedule.
#[derive(Debug, Clone, Default, Serialize, serde::Deserialize)]
pub struct DaemonSource {
    /// Why the daemon cannot set the source up, if it cannot.
    pub error: Option<String>,
    /// The schedule the daemon runs it on.
    pub schedule: Option<String>,
}

/// What the daemon says about every source it set up (the `sources` of its `hello`).
pub type DaemonSources = BTreeMap<String, DaemonSource>;

/// The daemon's view of the sources of `cfg`, for its `hello`.
pub fn daemon_sources(cfg: &Config) -> DaemonSources {
    crate::sources::enabled_sources(cfg)
        .into_iter()
        .map(|(name, built)| {
            let (error, schedule) = match built {
                Ok(s) => (None, Some(s.schedule().source)),
                Err(e) => (
                    Some(crate::text::chain(&e)),
                    configured_schedule(cfg, &name).map(|s| s.source),
                ),
            };
            (name, DaemonSource { error, schedule })
        })
        .collect()
}

/// [`assess_sources`], with each source's set-up judged as the running daemon sees it
/// (`daemon`) rather than from the caller's environment: a key that only the daemon has is no
/// failure.
pub fn assess_as_seen_by(
    cfg: Option<&Config>,
    store: &dyn Store,
    now: DateTime<Utc>,
    daemon: Option<&DaemonSources>,
) -> Result<Vec<SourceHealth>, StoreError> {
    let mut names: Vec<(String, SourceFacts)> = Vec::new();
    let enabled = cfg.map(crate::sources::enabled_sources).unwrap_or_default();
    for (name, built) in enabled {
        let cfg = cfg.expect("sources come from a config");
        if let Some(seen) = daemon.and_then(|d| d.get(&name)) {
            let schedule = seen
                .schedule
                .as_deref()
                .and_then(|s| s.parse().ok())
                .or_else(|| configured_schedule(cfg, &name));
            names.push((
                name,
                SourceFacts {
                    schedule,
                    build_error: seen.error.clone(),
                },
            ));
            continue;
        }
        let facts = match built {
            Ok(src) => SourceFacts {
                schedule: Some(configured_schedule(cfg, &name).unwrap_or_else(|| src.schedule())),
                build_error: None,
            },
            Err(e) => SourceFacts {
                schedule: configured_schedule(cfg, &name),
                build_error: Some(crate::text::chain(&e)),
            },
        };
        names.push((name, facts));
    }
    if let Some(facts) = cfg.and_then(flows_facts) {
        names.push((SourceId::Flows.name().to_string(), facts));
    }
    let known: BTreeSet<String> = names.iter().map(|(n, _)| n.clone()).collect();
    let logged: BTreeSet<String> = store
        .runs(None, LOG_SCAN)?
        .into_iter()
        .map(|r| r.source)
        .filter(|s| !known.contains(s))
        .collect();
    names.extend(logged.into_iter().map(|n| (n, SourceFacts::default())));
    let mut out = Vec::with_capacity(names.len());
    for (name, facts) in names {
        let runs = store.runs(Some(&name), RUNS_CONSIDERED)?;
        if SourceId::Flows.is(&name) {
            out.push(judge_flows(&facts, &runs, now));
            continue;
        }
        out.push(judge(&name, &facts, &runs, now));
    }
    if let Some(cfg) = cfg {
        out.extend(scope_health(cfg, store)?);
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// How a flows run's notice begins when no C2 list was loaded: the entry is then degraded.
pub const FLOWS_NO_LISTS: &str = "checked against 0 lists";

/// The facts the health of the flows job is judged with, when `[flows] paths` are set.
pub fn flows_facts(cfg: &Config) -> Option<SourceFacts> {
    (!cfg.flows.paths.is_empty()).then(|| SourceFacts {
        schedule: Some(cfg.flows.schedule.clone()),
        build_error: None,
    })
}

/// Judges the flows entry: like [`judge`], but a run that found no new lines
/// (`not_modified`) is no sign of life, so paths that stop giving lines for twice the
/// schedule are `silent`.
pub fn judge_flows(facts: &SourceFacts, runs: &[FetchRun], now: DateTime<Utc>) -> SourceHealth {
    let with_lines: Vec<FetchRun> = runs
        .iter()
        .filter(|r| r.outcome != RunOutcome::NotModified)
        .cloned()
        .collect();
    let mut h = judge(SourceId::Flows.name(), facts, &with_lines, now);
    h.last_run = runs.first().map(|r| r.finished);
    if with_lines.is_empty() && !runs.is_empty() {
        h.state = HealthState::Silent;
        h.warnings = vec![format!(
            "the last {} run(s) found no new log lines (since {}): are the logs still written?",
            runs.len(),
            runs[runs.len() - 1]
                .started
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        )];
        return h;
    }
    if h.state == HealthState::Ok
        && let Some(n) = with_lines
            .first()
            .and_then(|r| r.notices.iter().find(|n| n.starts_with(FLOWS_NO_LISTS)))
    {
        // Peers were not checked for C2 contact: never an all-clear.
        h.state = HealthState::Degraded;
        h.warnings.push(n.clone());
        h.notes.retain(|x| x != n);
    }
    let sched = facts
        .schedule
        .as_ref()
        .map(|s: &CronSchedule| s.source.clone());
    for w in &mut h.warnings {
        if w.starts_with("no successful run since")
            && let Some(s) = &sched
        {
            let since = h
                .last_success
                .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
                .unwrap_or_default();
            *w = format!(
                "no new log lines since {since} although `[flows] paths` are read `{s}`: \
                 are the logs still written?"
            );
        }
    }
    h
}

/// Name of the health entry for the scope itself.
pub const SCOPE_ENTRY: &str = "scope";

/// The scope as a health entry, when it has problems: an ASN without prefixes makes every
/// list silently match nothing of it, which must not look like an all-clear.
pub fn scope_health(cfg: &Config, store: &dyn Store) -> Result<Option<SourceHealth>, StoreError> {
    let snap = crate::scope::load(Some(cfg), store)?;
    let problems = snap.problems();
    if problems.is_empty() {
        return Ok(None);
    }
    let latest = snap.asns.iter().filter_map(|a| a.attempted_at).max();
    Ok(Some(SourceHealth {
        name: SCOPE_ENTRY.to_string(),
        state: HealthState::Failing,
        last_success: snap.asns.iter().filter_map(|a| a.refreshed_at).max(),
        last_error: None,
        last_run: latest,
        last_rows: None,
        warnings: problems,
        notes: Vec::new(),
    }))
}

/// The `schedule` set in a source's config table, if any (found through the source registry).
pub use crate::sources::registry::configured_schedule;

/// How late a run may be past its slot before it counts as missed: a quarter of the interval,
/// at least a minute and at most an hour (jitter and run time).
pub fn grace(interval: Duration) -> Duration {
    (interval / 4).clamp(Duration::minutes(1), Duration::hours(1))
}

/// When a source whose last success started at `last_success` becomes silent: after the
/// second scheduled slot that followed it (twice its interval for a regular schedule, and
/// correct across weekends for `Mon-Fri` schedules), plus [`grace`].
pub fn silent_after(schedule: &CronSchedule, last_success: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let mut it = schedule.schedule.after(&last_success);
    let first = it.next()?;
    let second = it.next()?;
    Some(second + grace(second - first))
}

fn is_success(r: &FetchRun) -> bool {
    r.outcome.is_success()
}

/// Whether the run read data (a 304 reads none; a partial run read some).
fn read_data(r: &FetchRun) -> bool {
    matches!(r.outcome, RunOutcome::Ok | RunOutcome::Partial)
}

fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// Judges one source from its runs (newest first). Pure: no store, no clock.
pub fn judge(
    name: &str,
    facts: &SourceFacts,
    runs: &[FetchRun],
    now: DateTime<Utc>,
) -> SourceHealth {
    let mut h = SourceHealth {
        name: name.to_string(),
        state: HealthState::Ok,
        last_success: None,
        last_error: None,
        last_run: runs.first().map(|r| r.finished),
        last_rows: None,
        warnings: Vec::new(),
        notes: runs.first().map(|r| r.notices.clone()).unwrap_or_default(),
    };
    let last_ok = runs.iter().find(|r| is_success(r));
    h.last_success = last_ok.map(|r| r.finished);
    // Rows of the last run that actually read data (a 304 reads none).
    h.last_rows = runs.iter().find(|r| read_data(r)).map(|r| r.fetched);
    if let Some(e) = runs.iter().find(|r| !is_success(r)) {
        h.last_error = e.error.clone().or_else(|| Some("failed".into()));
    }
    if let Some(e) = &facts.build_error {
        h.state = HealthState::Failing;
        h.last_error = Some(e.clone());
        h.warnings
            .push(format!("cannot be set up from the config: {e}"));
        return h;
    }
    let Some(latest) = runs.first() else {
        h.state = HealthState::Never;
        h.warnings.push("has never run".into());
        return h;
    };
    if latest.outcome == RunOutcome::Partial {
        h.state = HealthState::Partial;
        if latest.failed_units.is_empty() {
            h.warnings.push(format!(
                "the run at {} was partial: {}",
                ts(latest.finished),
                latest.error.as_deref().unwrap_or("partial")
            ));
        }
        for u in &latest.failed_units {
            h.warnings.push(format!(
                "{} failed at {} (kept what arrived; retried next run): {}",
                u.unit,
                ts(latest.finished),
                u.error
            ));
        }
        match last_ok {
            Some(ok) => h
                .warnings
                .push(format!("last complete run {}", ts(ok.finished))),
            None => h.warnings.push("has never run complete".into()),
        }
        return h;
    }
    if !is_success(latest) {
        h.state = HealthState::Failing;
        let streak = runs.iter().take_while(|r| !is_success(r)).count();
        let since = runs[streak - 1].started;
        let more = if streak >= runs.len() && runs.len() >= RUNS_CONSIDERED {
            "+"
        } else {
            ""
        };
        h.warnings.push(format!(
            "the last {streak}{more} run(s) failed (since {}): {}",
            ts(since),
            h.last_error.clone().unwrap_or_default()
        ));
        match last_ok {
            Some(ok) => h.warnings.push(format!("last success {}", ts(ok.finished))),
            None => h.warnings.push("has never succeeded".into()),
        }
        return h;
    }
    let ok = last_ok.expect("the latest run succeeded");
    h.warnings.extend(odd_signs(facts, runs, ok, now));
    if !h.warnings.is_empty() {
        h.state = HealthState::Silent;
    }
    h
}

/// What looks wrong about a source whose last run succeeded: no success within its schedule,
/// suddenly empty, every row rejected, data timestamped ahead of our clock.
fn odd_signs(
    facts: &SourceFacts,
    runs: &[FetchRun],
    ok: &FetchRun,
    now: DateTime<Utc>,
) -> Vec<String> {
    let mut w = Vec::new();
    if let Some(s) = &facts.schedule
        && let Some(deadline) = silent_after(s, ok.started)
        && now > deadline
    {
        w.push(format!(
            "no successful run since {} although it is scheduled `{}`",
            ts(ok.finished),
            s.source
        ));
    }
    // Suddenly empty: the last run that read data got nothing, an earlier one got rows.
    let mut with_data = runs.iter().filter(|r| r.outcome == RunOutcome::Ok);
    if let Some(last) = with_data.next()
        && last.fetched == 0
        && let Some(before) = with_data.find(|r| r.fetched > 0)
    {
        w.push(format!(
            "returned nothing at {} where it returned {} row(s) at {}",
            ts(last.finished),
            before.fetched,
            ts(before.finished)
        ));
    }
    if let Some(last) = runs.iter().find(|r| r.outcome == RunOutcome::Ok)
        && last.fetched > 0
        && last.accepted == 0
        && last.rejected > 0
    {
        w.push(format!(
            "every row of the run at {} was rejected ({}): has the format changed?",
            ts(last.finished),
            last.rejected
        ));
    }
    if let Some(r) = runs.iter().find(|r| r.max_time_source.is_some())
        && let Some(t) = r.max_time_source
        && t > r.finished + CLOCK_AHEAD_LIMIT
    {
        let ahead = t - r.finished;
        w.push(format!(
            "its data is timestamped {}, {} ahead of our clock at the run: check the feed's \
             time zone or our clock",
            ts(t),
            humantime::format_duration(ahead.to_std().unwrap_or_default())
        ));
    }
    w
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run_at(outcome: RunOutcome, at: DateTime<Utc>, fetched: usize) -> FetchRun {
        let mut r = FetchRun::begun(SourceId::Flows.name(), at);
        r.outcome = outcome;
        r.fetched = fetched;
        r
    }

    #[test]
    fn flows_paths_without_new_lines_for_twice_the_schedule_are_silent() {
        let facts = SourceFacts {
            schedule: Some("0 */15 * * * *".parse().unwrap()),
            build_error: None,
        };
        let t0: DateTime<Utc> = "2026-11-30T10:00:00Z".parse().unwrap();
        let m = chrono::Duration::minutes;
        let runs = vec![
            run_at(RunOutcome::NotModified, t0 + m(45), 0),
            run_at(RunOutcome::NotModified, t0 + m(30), 0),
            run_at(RunOutcome::NotModified, t0 + m(15), 0),
            run_at(RunOutcome::Ok, t0, 500),
        ];
        let h = judge_flows(&facts, &runs[2..], t0 + m(16));
        assert_eq!(h.state, HealthState::Ok, "{:?}", h.warnings);
        let h = judge_flows(&facts, &runs, t0 + m(46));
        assert_eq!(h.state, HealthState::Silent);
        assert!(
            h.warnings[0].contains("no new log lines"),
            "{:?}",
            h.warnings
        );
        let mut failing = runs.clone();
        failing.insert(0, run_at(RunOutcome::Error, t0 + m(60), 0));
        assert_eq!(
            judge_flows(&facts, &failing, t0 + m(61)).state,
            HealthState::Failing
        );
    }

    /// A flows run that checked its peers against no C2 list is no all-clear: degraded
    /// while its last run with lines says so, ok again once a run had lists.
    #[test]
    fn flows_checked_against_no_list_is_degraded() {
        let facts = SourceFacts {
            schedule: Some("0 */15 * * * *".parse().unwrap()),
            build_error: None,
        };
        let t0: DateTime<Utc> = "2026-11-30T10:00:00Z".parse().unwrap();
        let m = chrono::Duration::minutes;
        let mut blind = run_at(RunOutcome::Ok, t0, 500);
        blind.notices = vec![format!("{FLOWS_NO_LISTS}: no C2 list is kept")];
        let runs = vec![run_at(RunOutcome::NotModified, t0 + m(15), 0), blind];
        let h = judge_flows(&facts, &runs, t0 + m(16));
        assert_eq!(h.state, HealthState::Degraded);
        assert_eq!(h.state.as_str(), "degraded");
        assert!(
            h.warnings[0].starts_with(FLOWS_NO_LISTS),
            "{:?}",
            h.warnings
        );
        assert!(h.notes.is_empty(), "said once, as the warning");
        let mut runs = runs;
        runs.insert(0, run_at(RunOutcome::Ok, t0 + m(30), 10));
        assert_eq!(
            judge_flows(&facts, &runs, t0 + m(31)).state,
            HealthState::Ok
        );
    }
}
