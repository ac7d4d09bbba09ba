//! Scheduler, feed health and the daemon's read socket (issue #6, issue #2 store section).
//!
//! Health and scheduling are tested as pure functions with fixed times; the scheduler loop runs
//! on a ManualClock (no real waiting); the real binary is started as a daemon and read commands
//! are run against it through its socket.

use std::path::{Path, PathBuf};
use std::process::{Child, Command as StdCommand, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use outwatch::clock::{Clock, ManualClock};
use outwatch::config::CronSchedule;
use outwatch::daemon::schedule::{Backoff, jitter, max_jitter, next_fire, sleep_step};
use outwatch::daemon::scheduler::{Job, Settings, Task, run_job};
use outwatch::finding::{Classification, Finding, Severity};
use outwatch::health::{self, HealthState, SourceFacts, judge};
use outwatch::store::{self, FetchRun, IngestOptions, Store};
use serde_json::Value;
use tokio::sync::watch;

fn t(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

fn cron(s: &str) -> CronSchedule {
    s.parse().unwrap()
}

fn run(source: &str, at: &str, outcome: &str, fetched: usize) -> FetchRun {
    FetchRun {
        finished: t(at) + chrono::Duration::seconds(5),
        outcome: serde_json::from_value(serde_json::json!(outcome)).unwrap(),
        fetched,
        accepted: fetched,
        error: (outcome == "error").then(|| "HTTP 503 from https://example.net/feed".into()),
        ..FetchRun::begun(source, t(at))
    }
}

fn daily() -> SourceFacts {
    SourceFacts {
        schedule: Some(cron("0 0 6 * * *")),
        build_error: None,
    }
}

// ---------------------------------------------------------------- feed health (pure)

#[test]
fn health_never_when_no_run() {
    let h = judge("urlhaus", &daily(), &[], t("2026-11-23T10:00:00Z"));
    assert_eq!(h.state, HealthState::Never);
    assert!(h.last_run.is_none() && h.last_success.is_none());
}

#[test]
fn health_ok_within_interval() {
    let runs = [
        run("urlhaus", "2026-11-23T06:00:10Z", "ok", 120),
        run("urlhaus", "2026-11-22T06:00:10Z", "ok", 118),
    ];
    let h = judge("urlhaus", &daily(), &runs, t("2026-11-23T10:00:00Z"));
    assert_eq!(h.state, HealthState::Ok, "{:?}", h.warnings);
    assert_eq!(h.last_rows, Some(120));
    assert_eq!(h.last_success, Some(t("2026-11-23T06:00:15Z")));
    assert!(h.last_error.is_none());
}

#[test]
fn health_failing_when_last_run_failed() {
    let runs = [
        run("urlhaus", "2026-11-23T06:00:10Z", "error", 0),
        run("urlhaus", "2026-11-23T06:01:10Z", "error", 0),
        run("urlhaus", "2026-11-22T06:00:10Z", "ok", 118),
    ];
    let h = judge("urlhaus", &daily(), &runs, t("2026-11-23T10:00:00Z"));
    assert_eq!(h.state, HealthState::Failing);
    assert!(h.last_error.as_deref().unwrap().contains("503"));
    assert_eq!(h.last_success, Some(t("2026-11-22T06:00:15Z")));
    assert!(
        h.warnings[0].contains("last 2 run(s) failed"),
        "{:?}",
        h.warnings
    );
}

#[test]
fn health_silent_after_twice_the_interval() {
    let runs = [run("urlhaus", "2026-11-20T06:00:10Z", "ok", 120)];
    // Next slots: 21st and 22nd 06:00; plus an hour of grace.
    let fine = judge("urlhaus", &daily(), &runs, t("2026-11-22T06:59:00Z"));
    assert_eq!(fine.state, HealthState::Ok, "{:?}", fine.warnings);
    let h = judge("urlhaus", &daily(), &runs, t("2026-11-22T07:01:00Z"));
    assert_eq!(h.state, HealthState::Silent);
    assert!(
        h.warnings[0].contains("no successful run since"),
        "{:?}",
        h.warnings
    );
}

#[test]
fn health_weekday_schedule_is_not_silent_over_the_weekend() {
    let facts = SourceFacts {
        schedule: Some(cron("0 0 6 * * Mon-Fri")),
        build_error: None,
    };
    // Friday 2026-11-20; Monday the 23rd is the next slot, Tuesday the second.
    let runs = [run("snds", "2026-11-20T06:00:10Z", "ok", 3)];
    let h = judge("snds", &facts, &runs, t("2026-11-23T05:00:00Z"));
    assert_eq!(h.state, HealthState::Ok, "{:?}", h.warnings);
    let h = judge("snds", &facts, &runs, t("2026-11-24T08:00:00Z"));
    assert_eq!(h.state, HealthState::Silent);
}

#[test]
fn health_silent_when_suddenly_empty() {
    let runs = [
        run("feodotracker", "2026-11-23T06:00:10Z", "ok", 0),
        run("feodotracker", "2026-11-22T18:00:10Z", "not_modified", 0),
        run("feodotracker", "2026-11-22T06:00:10Z", "ok", 431),
    ];
    let h = judge("feodotracker", &daily(), &runs, t("2026-11-23T07:00:00Z"));
    assert_eq!(h.state, HealthState::Silent);
    assert!(
        h.warnings
            .iter()
            .any(|w| w.contains("returned nothing") && w.contains("431")),
        "{:?}",
        h.warnings
    );
    // Always empty is not suspicious (nothing about us, e.g. HIBP with no breach).
    let quiet = [
        run("hibp", "2026-11-23T06:00:10Z", "ok", 0),
        run("hibp", "2026-11-22T06:00:10Z", "ok", 0),
    ];
    let h = judge("hibp", &daily(), &quiet, t("2026-11-23T07:00:00Z"));
    assert_eq!(h.state, HealthState::Ok, "{:?}", h.warnings);
    // A 304 is not "empty".
    let nm = [
        run("urlhaus", "2026-11-23T06:00:10Z", "not_modified", 0),
        run("urlhaus", "2026-11-22T06:00:10Z", "ok", 10),
    ];
    let h = judge("urlhaus", &daily(), &nm, t("2026-11-23T07:00:00Z"));
    assert_eq!(h.state, HealthState::Ok, "{:?}", h.warnings);
    assert_eq!(h.last_rows, Some(10));
}

#[test]
fn health_silent_when_data_runs_ahead_of_our_clock() {
    let mut r = run("shadowserver", "2026-11-23T06:00:10Z", "ok", 50);
    r.max_time_source = Some(t("2026-11-23T09:30:00Z"));
    let h = judge(
        "shadowserver",
        &daily(),
        &[r.clone()],
        t("2026-11-23T07:00:00Z"),
    );
    assert_eq!(h.state, HealthState::Silent);
    assert!(
        h.warnings.iter().any(|w| w.contains("ahead of our clock")),
        "{:?}",
        h.warnings
    );
    // Minutes ahead are tolerated.
    r.max_time_source = Some(t("2026-11-23T06:30:00Z"));
    let h = judge("shadowserver", &daily(), &[r], t("2026-11-23T07:00:00Z"));
    assert_eq!(h.state, HealthState::Ok, "{:?}", h.warnings);
}

#[test]
fn health_silent_when_every_row_is_rejected() {
    let mut r = run("urlhaus", "2026-11-23T06:00:10Z", "ok", 40);
    r.accepted = 0;
    r.rejected = 40;
    let h = judge("urlhaus", &daily(), &[r], t("2026-11-23T07:00:00Z"));
    assert_eq!(h.state, HealthState::Silent);
    assert!(h.warnings[0].contains("format"), "{:?}", h.warnings);
}

#[test]
fn health_failing_when_the_source_cannot_be_built() {
    let facts = SourceFacts {
        schedule: None,
        build_error: Some("configuration: api_key_env names HIBP_KEY, which is not set".into()),
    };
    let h = judge("hibp", &facts, &[], t("2026-11-23T07:00:00Z"));
    assert_eq!(h.state, HealthState::Failing);
    assert!(h.last_error.unwrap().contains("HIBP_KEY"));
}

#[test]
fn assess_reads_the_run_log_of_the_store() {
    let d = tempfile::tempdir().unwrap();
    let s = store::open(d.path()).unwrap();
    s.record_run(&run("urlhaus", "2026-11-22T06:00:10Z", "ok", 10))
        .unwrap();
    s.record_run(&run("urlhaus", "2026-11-23T06:00:10Z", "error", 0))
        .unwrap();
    s.record_run(&run("feodotracker", "2026-11-23T06:00:10Z", "ok", 7))
        .unwrap();
    let cfg = outwatch::config::Config::parse(
        &crate::support::feeds_off(),
        &d.path().join("outwatch.toml"),
        &outwatch::sources::Registry,
    )
    .unwrap();
    let hs = health::assess(&cfg, &s, t("2026-11-23T07:00:00Z")).unwrap();
    let names: Vec<&str> = hs.iter().map(|h| h.name.as_str()).collect();
    assert_eq!(names, ["feodotracker", "urlhaus"]);
    assert_eq!(hs[0].state, HealthState::Ok);
    assert_eq!(hs[0].last_rows, Some(7));
    assert_eq!(hs[1].state, HealthState::Failing);
    assert_eq!(hs[1].last_success, Some(t("2026-11-22T06:00:15Z")));
    let json = serde_json::to_value(&hs[1]).unwrap();
    for k in [
        "name",
        "state",
        "last_success",
        "last_error",
        "last_run",
        "last_rows",
        "warnings",
    ] {
        assert!(json.get(k).is_some(), "missing {k}");
    }
    assert_eq!(json["state"], "failing");
    // Without a config: the sources of the run log only.
    let hs = health::assess_sources(None, &s, t("2026-11-23T07:00:00Z")).unwrap();
    assert_eq!(hs.len(), 2);
}

#[test]
fn a_socket_path_too_long_is_explained() {
    let d = tempfile::tempdir().unwrap();
    let deep = d.path().join("x".repeat(120));
    std::fs::create_dir_all(&deep).unwrap();
    let e = outwatch::daemon::socket::bind(&deep)
        .unwrap_err()
        .to_string();
    assert!(e.contains("shorter data dir"), "{e}");
}

// ---------------------------------------------------------------- schedule arithmetic (pure)

#[test]
fn next_fire_is_strictly_after_and_skips_missed_slots() {
    let s = cron("0 0 * * * *");
    assert_eq!(
        next_fire(&s, Tz::UTC, t("2026-11-23T10:00:00Z"), None),
        Some(t("2026-11-23T11:00:00Z"))
    );
    // Woken five hours late: the next slot after now, not the four missed ones.
    assert_eq!(
        next_fire(
            &s,
            Tz::UTC,
            t("2026-11-23T15:20:00Z"),
            Some(t("2026-11-23T10:00:00Z"))
        ),
        Some(t("2026-11-23T16:00:00Z"))
    );
}

/// A catch-up run stands for the slot it missed: the last at or before now, also for a
/// schedule whose gaps differ (weekdays only, read on a Monday morning).
#[test]
fn prev_fire_is_the_last_slot_at_or_before() {
    use outwatch::daemon::schedule::prev_fire;
    let s = cron("0 0 * * * *");
    assert_eq!(
        prev_fire(&s, Tz::UTC, t("2026-11-23T10:20:00Z")),
        Some(t("2026-11-23T10:00:00Z"))
    );
    assert_eq!(
        prev_fire(&s, Tz::UTC, t("2026-11-23T10:00:00Z")),
        Some(t("2026-11-23T10:00:00Z"))
    );
    // 2026-11-23 is a Monday: the last weekday slot was Friday's.
    let weekdays = cron("0 0 9 * * 1-5");
    assert_eq!(
        prev_fire(&weekdays, Tz::UTC, t("2026-11-23T08:00:00Z")),
        Some(t("2026-11-20T09:00:00Z"))
    );
}

#[test]
fn next_fire_reads_the_time_zone_and_fires_once_when_clocks_go_back() {
    let s = cron("0 30 1 * * *");
    let london: Tz = "Europe/London".parse().unwrap();
    // 01:30 BST on 2026-10-25 is 00:30Z; 01:30 GMT (the repeated hour) would be 01:30Z.
    let first = next_fire(&s, london, t("2026-10-24T12:00:00Z"), None).unwrap();
    assert_eq!(first, t("2026-10-25T00:30:00Z"));
    let second = next_fire(&s, london, first, Some(first)).unwrap();
    assert_eq!(
        second,
        t("2026-10-26T01:30:00Z"),
        "the repeated 01:30 must not fire again"
    );
    // The digest at 07:00 Berlin time is 06:00Z in winter.
    let berlin: Tz = "Europe/Berlin".parse().unwrap();
    assert_eq!(
        next_fire(
            &cron("0 0 7 * * *"),
            berlin,
            t("2026-11-23T00:00:00Z"),
            None
        ),
        Some(t("2026-11-23T06:00:00Z"))
    );
}

#[test]
fn backoff_doubles_is_capped_and_bounded() {
    let b = Backoff {
        base: Duration::from_secs(60),
        cap: Duration::from_secs(600),
        max_retries: 6,
    };
    let d: Vec<Option<u64>> = (0..7).map(|i| b.delay(i).map(|d| d.as_secs())).collect();
    assert_eq!(
        d,
        [
            Some(60),
            Some(120),
            Some(240),
            Some(480),
            Some(600),
            Some(600),
            None
        ]
    );
    let big = Backoff {
        base: Duration::from_secs(60),
        cap: Duration::from_secs(3600),
        max_retries: 100,
    };
    assert_eq!(
        big.delay(99),
        Some(Duration::from_secs(3600)),
        "no overflow"
    );
}

#[test]
fn jitter_stays_within_bounds() {
    let max = max_jitter(chrono::Duration::hours(1), Duration::from_secs(300));
    assert_eq!(max, Duration::from_secs(300));
    assert_eq!(
        max_jitter(chrono::Duration::minutes(10), Duration::from_secs(300)),
        Duration::from_secs(60)
    );
    for u in [0.0, 0.25, 0.5, 0.999_999, 1.0, 7.0, -1.0, f64::NAN] {
        let j = jitter(max, u);
        assert!(j <= max, "{u}: {j:?}");
    }
    assert_eq!(jitter(max, 0.5), Duration::from_secs(150));
    for _ in 0..1000 {
        assert!(jitter(max, rand::random::<f64>()) <= max);
    }
}

#[test]
fn sleep_steps_are_bounded() {
    let step = Duration::from_secs(60);
    assert_eq!(
        sleep_step(t("2026-11-23T10:00:00Z"), t("2026-11-23T11:00:00Z"), step),
        Some(step)
    );
    assert_eq!(
        sleep_step(t("2026-11-23T10:59:30Z"), t("2026-11-23T11:00:00Z"), step),
        Some(Duration::from_secs(30))
    );
    assert_eq!(
        sleep_step(t("2026-11-23T11:00:01Z"), t("2026-11-23T11:00:00Z"), step),
        None
    );
}

// ---------------------------------------------------------------- the job loop (ManualClock)

/// A task that records when it ran, fails its first `fail_first` runs, and asks for shutdown
/// after `stop_after` runs. `jump` moves the clock forward during the first run.
struct Probe {
    clock: Arc<ManualClock>,
    times: Mutex<Vec<DateTime<Utc>>>,
    fail_first: usize,
    stop_after: usize,
    jump: Option<chrono::Duration>,
    stop: Arc<watch::Sender<bool>>,
}

#[async_trait]
impl Task for Probe {
    async fn run(
        &self,
        _slot: Option<chrono::DateTime<chrono::Utc>>,
    ) -> Result<String, outwatch::daemon::TaskError> {
        let n = {
            let mut t = self.times.lock().unwrap();
            t.push(self.clock.now());
            t.len()
        };
        if n == 1
            && let Some(j) = self.jump
        {
            self.clock.advance(j);
        }
        if n >= self.stop_after {
            let _ = self.stop.send(true);
        }
        if n <= self.fail_first {
            Err(outwatch::daemon::TaskError::Run(format!("failure {n}")))
        } else {
            Ok("fine".into())
        }
    }
}

fn probe(
    clock: &Arc<ManualClock>,
    stop: &Arc<watch::Sender<bool>>,
    fail_first: usize,
    stop_after: usize,
) -> Probe {
    Probe {
        clock: clock.clone(),
        times: Mutex::new(Vec::new()),
        fail_first,
        stop_after,
        jump: None,
        stop: stop.clone(),
    }
}

fn job(name: &str, schedule: &str, task: Arc<Probe>) -> Job {
    Job {
        name: name.into(),
        kind: outwatch::daemon::scheduler::JobKind::Source,
        schedule: cron(schedule),
        tz: Tz::UTC,
        max_jitter: Duration::from_secs(300),
        catch_up: false,
        task,
    }
}

async fn drive(
    j: Job,
    clock: &Arc<ManualClock>,
    stop: &Arc<watch::Sender<bool>>,
    settings: Settings,
    unit: f64,
) {
    let board = Arc::new(Mutex::new(Default::default()));
    let c: Arc<dyn Clock> = clock.clone();
    run_job(j, c, settings, board, stop.subscribe(), move || unit).await;
}

#[tokio::test]
async fn job_fires_on_its_slots_with_jitter() {
    let clock = Arc::new(ManualClock::new(t("2026-11-23T10:20:00Z")));
    let (tx, _rx) = watch::channel(false);
    let stop = Arc::new(tx);
    let p = Arc::new(probe(&clock, &stop, 0, 3));
    drive(
        job("urlhaus", "0 0 * * * *", p.clone()),
        &clock,
        &stop,
        Settings::default(),
        0.5,
    )
    .await;
    // Half of the 300 s jitter bound after each hourly slot.
    assert_eq!(
        *p.times.lock().unwrap(),
        [
            t("2026-11-23T11:02:30Z"),
            t("2026-11-23T12:02:30Z"),
            t("2026-11-23T13:02:30Z")
        ]
    );
    // Never one sleep longer than the step: the wall clock is looked at every minute.
    assert!(clock.slept().iter().all(|d| *d <= Duration::from_secs(60)));
}

#[tokio::test]
async fn a_job_that_missed_its_slot_catches_up_once_at_start() {
    let clock = Arc::new(ManualClock::new(t("2026-11-23T10:20:00Z")));
    let (tx, _rx) = watch::channel(false);
    let stop = Arc::new(tx);
    let p = Arc::new(probe(&clock, &stop, 0, 3));
    let mut j = job("urlhaus", "0 0 */6 * * *", p.clone());
    j.catch_up = true;
    drive(j, &clock, &stop, Settings::default(), 0.5).await;
    // The catch-up waits at most 30 s of jitter (here half), the slots half of 300 s.
    assert_eq!(
        *p.times.lock().unwrap(),
        [
            t("2026-11-23T10:20:15Z"),
            t("2026-11-23T12:02:30Z"),
            t("2026-11-23T18:02:30Z")
        ]
    );
}

struct Panics {
    clock: Arc<ManualClock>,
    times: Mutex<Vec<DateTime<Utc>>>,
    stop: Arc<watch::Sender<bool>>,
}

#[async_trait]
impl Task for Panics {
    async fn run(
        &self,
        _slot: Option<chrono::DateTime<chrono::Utc>>,
    ) -> Result<String, outwatch::daemon::TaskError> {
        let n = {
            let mut t = self.times.lock().unwrap();
            t.push(self.clock.now());
            t.len()
        };
        if n == 1 {
            panic!("a parser bug");
        }
        let _ = self.stop.send(true);
        Ok("fine".into())
    }
}

#[tokio::test]
async fn a_panicking_run_is_a_failed_run_and_is_retried() {
    let clock = Arc::new(ManualClock::new(t("2026-11-23T09:59:00Z")));
    let (tx, _rx) = watch::channel(false);
    let stop = Arc::new(tx);
    let p = Arc::new(Panics {
        clock: clock.clone(),
        times: Mutex::new(Vec::new()),
        stop: stop.clone(),
    });
    let j = Job {
        name: "buggy".into(),
        kind: outwatch::daemon::scheduler::JobKind::Source,
        schedule: cron("0 0 * * * *"),
        tz: Tz::UTC,
        max_jitter: Duration::ZERO,
        catch_up: false,
        task: p.clone(),
    };
    let board = Arc::new(Mutex::new(Default::default()));
    let c: Arc<dyn Clock> = clock.clone();
    run_job(
        j,
        c,
        Settings::default(),
        board.clone(),
        stop.subscribe(),
        || 0.0,
    )
    .await;
    assert_eq!(
        *p.times.lock().unwrap(),
        [t("2026-11-23T10:00:00Z"), t("2026-11-23T10:01:00Z")]
    );
    assert_eq!(board.lock().unwrap()["buggy"].last_ok, Some(true));
}

#[test]
fn missed_slots_are_read_from_the_run_log() {
    let d = tempfile::tempdir().unwrap();
    let s = store::open(d.path()).unwrap();
    let six = cron("0 0 */6 * * *");
    let now = t("2026-11-23T10:20:00Z");
    assert!(
        outwatch::daemon::missed_a_slot(&s, "urlhaus", &six, now),
        "never ran"
    );
    s.record_run(&run("urlhaus", "2026-11-23T06:00:10Z", "ok", 1))
        .unwrap();
    assert!(!outwatch::daemon::missed_a_slot(&s, "urlhaus", &six, now));
    s.record_run(&run("feodotracker", "2026-11-23T05:00:10Z", "error", 0))
        .unwrap();
    assert!(outwatch::daemon::missed_a_slot(
        &s,
        "feodotracker",
        &six,
        now
    ));
}

#[tokio::test]
async fn failures_are_retried_with_backoff_then_wait_for_the_next_slot() {
    let clock = Arc::new(ManualClock::new(t("2026-11-23T05:59:00Z")));
    let (tx, _rx) = watch::channel(false);
    let stop = Arc::new(tx);
    // Fails 4 times; 2 retries allowed: runs at the slot, +60 s, +120 s more; then the next
    // day's slot, which succeeds.
    let p = Arc::new(probe(&clock, &stop, 3, 4));
    let settings = Settings {
        backoff: Backoff {
            base: Duration::from_secs(60),
            cap: Duration::from_secs(3600),
            max_retries: 2,
        },
        step: Duration::from_secs(60),
    };
    drive(
        job("snds", "0 0 6 * * *", p.clone()),
        &clock,
        &stop,
        settings,
        0.0,
    )
    .await;
    assert_eq!(
        *p.times.lock().unwrap(),
        [
            t("2026-11-23T06:00:00Z"),
            t("2026-11-23T06:01:00Z"),
            t("2026-11-23T06:03:00Z"),
            t("2026-11-24T06:00:00Z"),
        ]
    );
}

#[tokio::test]
async fn retries_never_run_past_the_next_slot() {
    let clock = Arc::new(ManualClock::new(t("2026-11-23T09:59:30Z")));
    let (tx, _rx) = watch::channel(false);
    let stop = Arc::new(tx);
    let p = Arc::new(probe(&clock, &stop, 100, 3));
    let settings = Settings {
        backoff: Backoff {
            base: Duration::from_secs(40),
            cap: Duration::from_secs(3600),
            max_retries: 10,
        },
        step: Duration::from_secs(60),
    };
    // Every minute; a 40 s retry fits, the 80 s one would cross the next slot.
    drive(
        job("x", "0 * * * * *", p.clone()),
        &clock,
        &stop,
        settings,
        0.0,
    )
    .await;
    assert_eq!(
        *p.times.lock().unwrap(),
        [
            t("2026-11-23T10:00:00Z"),
            t("2026-11-23T10:00:40Z"),
            t("2026-11-23T10:01:00Z")
        ]
    );
}

#[tokio::test]
async fn a_clock_jump_skips_missed_slots_instead_of_bursting() {
    let clock = Arc::new(ManualClock::new(t("2026-11-23T09:30:00Z")));
    let (tx, _rx) = watch::channel(false);
    let stop = Arc::new(tx);
    let mut p = probe(&clock, &stop, 0, 2);
    // The machine sleeps for five hours during the first run.
    p.jump = Some(chrono::Duration::hours(5));
    let p = Arc::new(p);
    drive(
        job("x", "0 0 * * * *", p.clone()),
        &clock,
        &stop,
        Settings::default(),
        0.0,
    )
    .await;
    assert_eq!(
        *p.times.lock().unwrap(),
        [t("2026-11-23T10:00:00Z"), t("2026-11-23T16:00:00Z")]
    );
}

/// A ManualClock whose sleep yields to other tasks, so concurrent jobs interleave.
struct YieldingClock(Arc<ManualClock>);

#[async_trait]
impl Clock for YieldingClock {
    fn now(&self) -> DateTime<Utc> {
        self.0.now()
    }
    async fn sleep(&self, d: Duration) {
        self.0.sleep(d).await;
        tokio::task::yield_now().await;
    }
}

#[tokio::test]
async fn a_failing_job_never_stops_the_others() {
    let clock = Arc::new(ManualClock::new(t("2026-11-23T10:00:30Z")));
    let (tx, _rx) = watch::channel(false);
    let stop = Arc::new(tx);
    let bad = Arc::new(probe(&clock, &stop, usize::MAX, usize::MAX));
    let good = Arc::new(probe(&clock, &stop, 0, 5));
    let settings = Settings {
        step: Duration::from_secs(1),
        ..Settings::default()
    };
    let board = Arc::new(Mutex::new(Default::default()));
    let c: Arc<dyn Clock> = Arc::new(YieldingClock(clock.clone()));
    let mut bad_job = job("bad", "0 * * * * *", bad.clone());
    bad_job.max_jitter = Duration::ZERO;
    let mut good_job = job("good", "30 * * * * *", good.clone());
    good_job.max_jitter = Duration::ZERO;
    tokio::join!(
        run_job(
            bad_job,
            c.clone(),
            settings.clone(),
            board.clone(),
            stop.subscribe(),
            || 0.0
        ),
        run_job(
            good_job,
            c,
            settings,
            board.clone(),
            stop.subscribe(),
            || 0.0
        ),
    );
    assert_eq!(good.times.lock().unwrap().len(), 5);
    assert!(bad.times.lock().unwrap().len() >= 4);
    let b = board.lock().unwrap();
    assert!(b["bad"].failures >= 1 && b["bad"].last_ok == Some(false));
    assert_eq!(b["good"].last_ok, Some(true));
}

// ---------------------------------------------------------------- the real binary

fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_outwatch"))
}

fn write_config(dir: &Path, extra: &str) -> PathBuf {
    let p = dir.join("outwatch.toml");
    std::fs::write(
        &p,
        format!(
            "[organisation]\nname = \"Test\"\nprefixes = [\"192.0.2.0/24\"]\n\n[store]\npath = \"data\"\n\n{}{extra}",
            crate::support::feeds_off()
        ),
    )
    .unwrap();
    p
}

fn outwatch(cfg: &Path, args: &[&str]) -> std::process::Output {
    StdCommand::new(bin())
        .arg("--config")
        .arg(cfg)
        .args(args)
        .env_remove("OUTWATCH_DATA_DIR")
        .env_remove("RUST_LOG")
        .output()
        .unwrap()
}

fn seed(data: &Path) {
    let s = store::open(data).unwrap();
    let mut f = Finding::new(
        "feodotracker",
        "ipblocklist",
        Classification::new("", "c2-server", "dridex"),
        Severity::High,
    );
    f.ip = Some("192.0.2.1".parse().unwrap());
    f.port = Some(443);
    f.seal();
    let now = Utc::now();
    s.ingest(vec![f], Vec::new(), &IngestOptions { now })
        .unwrap();
    let mut r = run("feodotracker", "2026-11-23T06:00:10Z", "ok", 1);
    r.started = now;
    r.finished = now;
    s.record_run(&r).unwrap();
    s.flush().unwrap();
}

/// Opens a store just closed (`store::open` waits out the lock sled keeps a moment longer).
fn reopen(dir: &Path) -> store::SledStore {
    store::open(dir).unwrap()
}

struct Daemon(Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        // Only if a test failed half-way: never leave the daemon behind.
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn json_of(o: &std::process::Output) -> Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): {}\nstderr: {}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )
    })
}

#[test]
fn read_commands_work_through_the_socket_while_the_daemon_runs() {
    let d = tempfile::tempdir().unwrap();
    let cfg = write_config(d.path(), "");
    let data = d.path().join("data");
    seed(&data);
    // A stale socket left by a crashed daemon must not get in the way.
    drop(std::os::unix::net::UnixListener::bind(data.join("outwatch.sock")).unwrap());
    let out = outwatch(&cfg, &["lookup", "192.0.2.1", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let child = StdCommand::new(bin())
        .arg("--config")
        .arg(&cfg)
        .args(["--log-format", "json", "-v", "run"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut daemon = Daemon(child);
    let pid = daemon.0.id() as libc::pid_t;

    // Wait (bounded) until the daemon answers on its socket.
    let mut status = None;
    for _ in 0..600 {
        let o = outwatch(&cfg, &["status", "--json"]);
        if o.status.success() {
            let v = json_of(&o);
            if v["daemon"]["running"] == true {
                status = Some(v);
                break;
            }
        }
        assert!(
            daemon.0.try_wait().unwrap().is_none(),
            "the daemon exited early"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let status = status.expect("the daemon never answered on its socket");
    assert_eq!(status["daemon"]["pid"], pid as u64);
    let src = &status["sources"][0];
    assert_eq!(src["name"], "feodotracker");
    assert_eq!(src["state"], "ok");
    assert_eq!(src["last_rows"], 1);
    assert_eq!(status["store"]["findings"], 1);

    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(data.join("outwatch.sock"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);

    let o = outwatch(&cfg, &["lookup", "192.0.2.1", "--json"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v = json_of(&o);
    assert_eq!(v["in_scope"], true);
    assert_eq!(v["findings"].as_array().unwrap().len(), 1);
    assert_eq!(v["findings"][0]["classification"]["type"], "c2-server");
    assert_eq!(v["findings"][0]["port"], 443);

    let o = outwatch(&cfg, &["lookup", "192.0.2.0/24", "--json"]);
    assert_eq!(json_of(&o)["findings"].as_array().unwrap().len(), 1);

    // The worklist and a pasted address with its port, through the socket too.
    let o = outwatch(&cfg, &["list", "--json"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(json_of(&o)["total"], 1);
    let o = outwatch(
        &cfg,
        &["list", "--prefix", "192.0.2.0/24", "--format", "csv"],
    );
    assert_eq!(String::from_utf8_lossy(&o.stdout).lines().count(), 2);
    let o = outwatch(&cfg, &["lookup", "192.0.2.1:443", "--json"]);
    assert_eq!(json_of(&o)["total"], 1);

    let o = outwatch(&cfg, &["export", "--jsonl"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(String::from_utf8_lossy(&o.stdout).lines().count(), 1);

    let o = outwatch(&cfg, &["scope", "--json"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(json_of(&o)["all_prefixes"][0], "192.0.2.0/24");

    let o = outwatch(&cfg, &["status"]);
    assert!(o.status.success());
    assert!(String::from_utf8_lossy(&o.stdout).contains("daemon: running"));

    // A write command hands its store work to the daemon (tests/it/one_writer.rs); a second
    // scheduler is refused with exit 4 and told why.
    let o = outwatch(&cfg, &["fetch"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = outwatch(&cfg, &["run", "--once"]);
    assert_eq!(o.status.code(), Some(4));
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(e.contains("daemon") && e.contains(&pid.to_string()), "{e}");

    // SIGTERM: a clean exit, the socket removed, the store usable directly again.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    let st = daemon.0.wait().unwrap();
    assert!(st.success(), "daemon exit: {st:?}");
    assert!(!data.join("outwatch.sock").exists());
    let o = outwatch(&cfg, &["status", "--json"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v = json_of(&o);
    assert_eq!(v["daemon"]["running"], false);
    assert_eq!(v["store"]["findings"], 1);
}

#[test]
fn run_once_succeeds_with_nothing_failing() {
    let d = tempfile::tempdir().unwrap();
    let cfg = write_config(d.path(), "");
    let o = outwatch(&cfg, &["run", "--once"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stdout).contains("digest: not configured"));
}

#[test]
fn run_once_names_a_source_that_fails_and_exits_1() {
    let d = tempfile::tempdir().unwrap();
    // No key and nothing listening: hibp fails whether it cannot be built or cannot fetch.
    let cfg = write_config(
        d.path(),
        "[sources.hibp]\nenabled = true\nbase_url = \"http://127.0.0.1:9/api/v3\"\n",
    );
    let o = outwatch(&cfg, &["run", "--once"]);
    assert_eq!(
        o.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("failed: hibp"), "{err}");
    assert!(String::from_utf8_lossy(&o.stdout).contains("FAILED"));
    // Feed health shows it.
    let v = json_of(&outwatch(&cfg, &["status", "--json"]));
    let hibp = v["sources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "hibp")
        .unwrap();
    assert_eq!(hibp["state"], "failing");
    assert!(hibp["last_error"].is_string());
}

#[test]
fn run_once_names_the_digest_when_it_cannot_be_delivered() {
    let d = tempfile::tempdir().unwrap();
    // A loopback port where nothing listens: sending fails (and before the digest exists, it
    // fails anyway); nothing may be reported as success.
    let port = crate::support::DEAD_PORT;
    let cfg = write_config(
        d.path(),
        &format!(
            "[digest]\nfrom = \"outwatch@example.org\"\nrecipients = [\"noc@example.org\"]\n\n\
             [smtp]\nhost = \"127.0.0.1\"\nport = {port}\ntls = \"none\"\ntimeout = \"5s\"\n"
        ),
    );
    let o = outwatch(&cfg, &["run", "--once"]);
    assert_eq!(
        o.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("failed: digest"), "{err}");
    assert!(String::from_utf8_lossy(&o.stdout).contains("digest: FAILED"));
}

// ---------------------------------------------------------------- the socket, in process

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_store_forwards_reads_and_refuses_writes() {
    use outwatch::daemon::RemoteStore;
    use outwatch::daemon::socket;
    use outwatch::store::{Query, QueryOptions, StoreError};
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

    let d = tempfile::tempdir().unwrap();
    seed(d.path());
    let s: Arc<dyn Store> = Arc::new(reopen(d.path()));
    s.state_put("scope/x", Some(b"\x00\x01binary")).unwrap();
    let (listener, path) = socket::bind(d.path()).unwrap();
    let (stop, rx) = watch::channel(false);
    let info: socket::InfoFn = Arc::new(|| serde_json::json!({"pid": 1}));
    let server = tokio::spawn(socket::serve(
        listener,
        s.clone(),
        info,
        rx,
        socket::Access::Read,
    ));

    let dir = d.path().to_path_buf();
    tokio::task::spawn_blocking(move || {
        let r = RemoteStore::connect(&dir).expect("the socket answers");
        assert_eq!(r.hello().version, 1);
        assert_eq!(r.count().unwrap(), 1);
        let all = QueryOptions {
            include_resolved: true,
            ..Default::default()
        };
        let found = r
            .query(&Query::Ip("192.0.2.1".parse().unwrap()), &all)
            .unwrap();
        assert_eq!(found.len(), 1);
        let fp = found[0].fingerprint.clone();
        assert_eq!(r.get(&fp).unwrap().unwrap().port, Some(443));
        assert!(r.get("00").unwrap().is_none());
        assert!(
            r.query(&Query::Domain("example.org".into()), &all)
                .unwrap()
                .is_empty()
        );
        let mut n = 0;
        r.for_each(&mut |_| {
            n += 1;
            Ok(())
        })
        .unwrap();
        assert_eq!(n, 1);
        assert_eq!(r.runs(Some("feodotracker"), 10).unwrap().len(), 1);
        assert_eq!(r.state_get("scope/x").unwrap().unwrap(), b"\x00\x01binary");
        assert!(r.state_get("nope").unwrap().is_none());
        assert_eq!(r.state_scan("scope/").unwrap().len(), 1);
        let week = chrono::Duration::days(7);
        assert_eq!(
            r.seen_between(Utc::now() - week, Utc::now() + week)
                .unwrap()
                .len(),
            1
        );
        // A callback error stops the stream; the next call still works (fresh connection).
        let e = r.for_each(&mut |_| Err(StoreError::Refused("stop".into())));
        assert!(e.is_err());
        assert_eq!(r.count().unwrap(), 1);
        // Writes are refused: the daemon is the only writer.
        assert!(matches!(
            r.state_put("k", None),
            Err(StoreError::Locked { .. })
        ));
        assert!(matches!(
            r.restore(Vec::new()),
            Err(StoreError::Locked { .. })
        ));
        r.flush().unwrap();
    })
    .await
    .unwrap();

    // Raw protocol: a wrong version and an oversized request are refused with a reason.
    let mut c = tokio::net::UnixStream::connect(&path).await.unwrap();
    c.write_all(b"{\"v\":99,\"op\":\"count\"}\n").await.unwrap();
    let (rd, mut wr) = c.into_split();
    let mut lines = BufReader::new(rd).lines();
    let l = lines.next_line().await.unwrap().unwrap();
    assert!(l.contains("\"error\"") && l.contains("v99"), "{l}");
    wr.write_all(b"{\"v\":1,\"op\":\"count\"}\n").await.unwrap();
    assert_eq!(lines.next_line().await.unwrap().unwrap(), "{\"done\":1}");
    // The daemon stops reading after the cap and hangs up, so the tail may meet a closed pipe.
    let mut big = vec![b'x'; 70 * 1024];
    big.push(b'\n');
    let _ = wr.write_all(&big).await;
    let l = lines.next_line().await.unwrap().unwrap();
    assert!(l.contains("larger than"), "{l}");
    // Closed after an oversized request (EOF, or a reset for the unread tail).
    assert!(
        !matches!(lines.next_line().await, Ok(Some(_))),
        "closed after an oversized request"
    );

    let _ = stop.send(true);
    server.await.unwrap();
}

#[test]
fn no_daemon_and_a_stale_socket_means_direct_reads() {
    let d = tempfile::tempdir().unwrap();
    assert!(outwatch::daemon::RemoteStore::connect(d.path()).is_none());
    drop(std::os::unix::net::UnixListener::bind(d.path().join("outwatch.sock")).unwrap());
    assert!(outwatch::daemon::RemoteStore::connect(d.path()).is_none());
    std::fs::remove_file(d.path().join("outwatch.sock")).unwrap();
    std::fs::write(d.path().join("outwatch.sock"), b"not a socket").unwrap();
    assert!(outwatch::daemon::RemoteStore::connect(d.path()).is_none());
}

// ---------------------------------------------------------------- graceful stop, job list

/// A task that blocks until released, to stop the scheduler while it runs.
struct Slow {
    started: Arc<tokio::sync::Notify>,
    release: Arc<tokio::sync::Notify>,
    finished: Arc<Mutex<bool>>,
}

#[async_trait]
impl Task for Slow {
    async fn run(
        &self,
        _slot: Option<chrono::DateTime<chrono::Utc>>,
    ) -> Result<String, outwatch::daemon::TaskError> {
        self.started.notify_one();
        self.release.notified().await;
        *self.finished.lock().unwrap() = true;
        Ok("done".into())
    }
}

#[tokio::test]
async fn shutdown_finishes_the_run_in_flight() {
    let clock = Arc::new(ManualClock::new(t("2026-11-23T09:59:59Z")));
    let started = Arc::new(tokio::sync::Notify::new());
    let release = Arc::new(tokio::sync::Notify::new());
    let finished = Arc::new(Mutex::new(false));
    let task = Arc::new(Slow {
        started: started.clone(),
        release: release.clone(),
        finished: finished.clone(),
    });
    let (stop, rx) = watch::channel(false);
    let j = Job {
        name: "slow".into(),
        kind: outwatch::daemon::scheduler::JobKind::Source,
        schedule: cron("0 0 * * * *"),
        tz: Tz::UTC,
        max_jitter: Duration::ZERO,
        catch_up: false,
        task,
    };
    let c: Arc<dyn Clock> = clock.clone();
    let handle = tokio::spawn(run_job(
        j,
        c,
        Settings::default(),
        Arc::new(Mutex::new(Default::default())),
        rx,
        || 0.0,
    ));
    started.notified().await;
    stop.send(true).unwrap();
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
    assert!(
        !handle.is_finished(),
        "the loop must wait for the run in flight"
    );
    release.notify_one();
    handle.await.unwrap();
    assert!(
        *finished.lock().unwrap(),
        "the run was completed, not cut off"
    );
}

#[tokio::test]
async fn jobs_follow_the_config() {
    use outwatch::daemon::tasks::Shared;
    let d = tempfile::tempdir().unwrap();
    let cfg = outwatch::config::Config::parse(
        &format!("[organisation]\nasns = [64496]\n\n[digest]\nschedule = \"0 0 7 * * Mon-Fri\"\n\
         timezone = \"Europe/Berlin\"\nfrom = \"outwatch@example.org\"\nrecipients = [\"noc@example.org\"]\n\n\
         [sources.hibp]\nenabled = true\n\n{}",
            crate::support::feeds_off()
        ),
        &d.path().join("outwatch.toml"),
        &outwatch::sources::Registry,
    )
    .unwrap();
    let clock: Arc<dyn Clock> = Arc::new(ManualClock::new(t("2026-11-23T10:00:00Z")));
    let shared = Shared {
        cfg: Arc::new(cfg),
        store: Arc::new(store::open(&d.path().join("data")).unwrap()),
        http: outwatch::http::HttpClient::new(&Default::default(), clock.clone()).unwrap(),
        clock,
        scope: Default::default(),
        data_dir: d.path().join("data"),
    };
    let jobs = outwatch::daemon::jobs(&shared);
    let digest = jobs
        .iter()
        .find(|j| j.name == "digest")
        .expect("digest job");
    assert_eq!(digest.tz.name(), "Europe/Berlin");
    assert_eq!(digest.max_jitter, Duration::ZERO);
    assert_eq!(digest.schedule.source, "0 0 7 * * Mon-Fri");
    let scope = jobs.iter().find(|j| j.name == "scope").expect("scope job");
    assert_eq!(scope.kind, outwatch::daemon::scheduler::JobKind::Scope);
    // Every source job has a bounded jitter.
    for j in jobs
        .iter()
        .filter(|j| j.kind == outwatch::daemon::scheduler::JobKind::Source)
    {
        assert!(j.max_jitter <= outwatch::daemon::MAX_SOURCE_JITTER);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemon_refreshes_the_asn_scope_and_serves_it() {
    use wiremock::matchers::{method, path, query_param};
    use wiremock::{Mock, MockServer, ResponseTemplate};
    let server = MockServer::start().await;
    let body = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/ripestat/announced-prefixes-AS64496.json"
    ))
    .unwrap();
    Mock::given(method("GET"))
        .and(path("/data/announced-prefixes/data.json"))
        .and(query_param("resource", "AS64496"))
        .respond_with(ResponseTemplate::new(200).set_body_raw(body, "application/json"))
        .expect(1..)
        .mount(&server)
        .await;
    let d = tempfile::tempdir().unwrap();
    let cfg = d.path().join("outwatch.toml");
    std::fs::write(
        &cfg,
        format!(
            "[organisation]\nasns = [64496]\n\n[scope]\nripestat_url = \"{}\"\n\n\
             [store]\npath = \"data\"\n\n{}",
            server.uri(),
            crate::support::feeds_off()
        ),
    )
    .unwrap();
    let cfg2 = cfg.clone();
    tokio::task::spawn_blocking(move || {
        let cfg = cfg2;
        let child = StdCommand::new(bin())
            .arg("--config")
            .arg(&cfg)
            .arg("run")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut daemon = Daemon(child);
        let mut prefixes = Vec::new();
        for _ in 0..600 {
            let o = outwatch(&cfg, &["status", "--json"]);
            let served = o.status.success() && json_of(&o)["daemon"]["running"] == true;
            if served {
                let v = json_of(&outwatch(&cfg, &["scope", "--json"]));
                prefixes = v["asns"][0]["prefixes"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default();
                if !prefixes.is_empty() {
                    break;
                }
            }
            assert!(
                daemon.0.try_wait().unwrap().is_none(),
                "the daemon exited early"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        assert!(
            prefixes.contains(&Value::from("192.0.2.0/24")),
            "{prefixes:?}"
        );
        // `scope --refresh` writes the scope's cache through the daemon.
        let o = outwatch(&cfg, &["scope", "--refresh"]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let pid = daemon.0.id() as libc::pid_t;
        assert_eq!(unsafe { libc::kill(pid, libc::SIGINT) }, 0);
        assert!(daemon.0.wait().unwrap().success());
    })
    .await
    .unwrap();
}

/// While the daemon runs, `status` judges a keyed source's set-up as the daemon sees it: a key
/// that only the daemon's environment holds is no failure for a shell without it.
#[test]
fn status_judges_keys_as_the_daemon_sees_them() {
    let d = tempfile::tempdir().unwrap();
    let cfg = write_config(
        d.path(),
        "[sources.shadowserver]\napi_key_env = \"OUTWATCH_TEST_DAEMON_ONLY_KEY\"\n\
         secret_env = \"OUTWATCH_TEST_DAEMON_ONLY_SECRET\"\n\
         base_url = \"http://127.0.0.1:9/api2/\"\nschedule = \"0 0 0 1 1 *\"\n",
    );
    let data = d.path().join("data");
    seed(&data);
    let hibp_of = |v: &Value| {
        v["sources"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["name"] == "shadowserver")
            .cloned()
            .unwrap()
    };
    // Without the daemon, this shell's environment has no key: failing.
    let v = json_of(&outwatch(&cfg, &["status", "--json"]));
    assert_eq!(hibp_of(&v)["state"], "failing");
    let child = StdCommand::new(bin())
        .arg("--config")
        .arg(&cfg)
        .arg("run")
        .env("OUTWATCH_TEST_DAEMON_ONLY_KEY", "daemon-only-key-123")
        .env("OUTWATCH_TEST_DAEMON_ONLY_SECRET", "daemon-only-secret-456")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut daemon = Daemon(child);
    let mut seen = None;
    for _ in 0..600 {
        let o = outwatch(&cfg, &["status", "--json"]);
        if let Ok(v) = serde_json::from_slice::<Value>(&o.stdout)
            && v["daemon"]["running"] == true
        {
            seen = Some(v);
            break;
        }
        assert!(
            daemon.0.try_wait().unwrap().is_none(),
            "the daemon exited early"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let v = seen.expect("the daemon never answered on its socket");
    let hibp = hibp_of(&v);
    assert_eq!(hibp["state"], "never", "{hibp}");
    assert!(hibp["last_error"].is_null(), "{hibp}");
    assert!(!v.to_string().contains("daemon-only-key-123"));
    let pid = daemon.0.id() as libc::pid_t;
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    assert!(daemon.0.wait().unwrap().success());
}

// ---------------------------------------------------------------- streamed queries

/// Findings collected from a streamed query, as sorted fingerprints.
fn streamed_fps(s: &dyn Store, q: &outwatch::store::Query) -> Vec<String> {
    let opts = outwatch::store::QueryOptions {
        include_resolved: true,
        ..Default::default()
    };
    let mut out = Vec::new();
    let totals = s
        .query_each(q, &opts, &mut |f| {
            out.push(f.fingerprint);
            Ok(std::ops::ControlFlow::Continue(()))
        })
        .unwrap();
    assert_eq!(totals.handed, out.len());
    out.sort();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streamed_queries_through_the_socket_match_the_direct_store() {
    use outwatch::daemon::RemoteStore;
    use outwatch::daemon::socket;
    use outwatch::store::Query;

    let d = tempfile::tempdir().unwrap();
    {
        let s = reopen(d.path());
        let batch: Vec<Finding> = (0..3_000u32)
            .map(|i| {
                let mut f = Finding::new(
                    "shadowserver",
                    "scan_dns",
                    Classification::new("", "vulnerable-system", "x"),
                    Severity::Medium,
                );
                let a = i.wrapping_mul(2_654_435_761).to_be_bytes();
                f.ip = Some(std::net::IpAddr::from([10, a[1], a[2], a[3]]));
                f.domain = Some(format!("h{i}.isp.example"));
                f.seal();
                f
            })
            .collect();
        s.ingest(batch, vec![], &IngestOptions { now: Utc::now() })
            .unwrap();
        s.flush().unwrap();
    }
    let s: Arc<dyn Store> = Arc::new(reopen(d.path()));
    let (listener, _path) = socket::bind(d.path()).unwrap();
    let (stop, rx) = watch::channel(false);
    let info: socket::InfoFn = Arc::new(|| serde_json::json!({"pid": 1}));
    let server = tokio::spawn(socket::serve(
        listener,
        s.clone(),
        info,
        rx,
        socket::Access::Read,
    ));

    let dir = d.path().to_path_buf();
    tokio::task::spawn_blocking(move || {
        let r = RemoteStore::connect(&dir).expect("the socket answers");
        assert_eq!(
            r.hello().revision,
            outwatch::daemon::protocol::PROTOCOL_REVISION
        );
        let ip = s
            .query(&Query::Domain("h7.isp.example".into()), &Default::default())
            .unwrap()[0]
            .ip
            .unwrap();
        for q in [
            Query::Domain("isp.example".into()),
            Query::Net("10.0.0.0/8".parse().unwrap()),
            Query::Net("10.128.0.0/9".parse().unwrap()),
            Query::Ip(ip),
        ] {
            let direct = streamed_fps(s.as_ref(), &q);
            assert!(!direct.is_empty(), "{q:?}");
            assert_eq!(streamed_fps(&r, &q), direct, "{q:?}");
        }
        assert_eq!(
            streamed_fps(&r, &Query::Domain("isp.example".into())).len(),
            3_000
        );
        // Stopping early drops the rest of the answer; the next request gets a fresh connection.
        let mut n = 0;
        let totals = r
            .query_each(
                &Query::Domain("isp.example".into()),
                &Default::default(),
                &mut |_| {
                    n += 1;
                    Ok(if n == 10 {
                        std::ops::ControlFlow::Break(())
                    } else {
                        std::ops::ControlFlow::Continue(())
                    })
                },
            )
            .unwrap();
        assert_eq!((totals.handed, totals.stopped), (10, true));
        assert_eq!(r.count().unwrap(), 3_000);
        // A worklist filter runs in the daemon (`select`): the same findings, and a stop.
        let selected = |store: &dyn Store, filter: &outwatch::store::Filter| {
            let mut out = Vec::new();
            store
                .select(filter, &mut |f| {
                    out.push(f.fingerprint);
                    Ok(std::ops::ControlFlow::Continue(()))
                })
                .unwrap();
            out.sort();
            out
        };
        for args in [
            vec![("prefix", "10.128.0.0/9")],
            vec![("domain", "isp.example"), ("severity", "medium")],
            vec![("feed", "scan_dns"), ("severity", "high")],
        ] {
            let filter = outwatch::store::Filter::parse(args.iter().copied()).unwrap();
            assert_eq!(
                selected(&r, &filter),
                selected(s.as_ref(), &filter),
                "{args:?}"
            );
        }
        let mut n = 0;
        let totals = r
            .select(&Default::default(), &mut |_| {
                n += 1;
                Ok(if n == 10 {
                    std::ops::ControlFlow::Break(())
                } else {
                    std::ops::ControlFlow::Continue(())
                })
            })
            .unwrap();
        assert_eq!((totals.handed, totals.stopped), (10, true));
        assert_eq!(r.count().unwrap(), 3_000);
    })
    .await
    .unwrap();
    let _ = stop.send(true);
    server.await.unwrap();
}

#[test]
fn a_daemon_without_streamed_queries_is_refused_with_a_clear_message() {
    use std::io::{BufRead, BufReader, Write};
    // A daemon of protocol v1 before revisions: its hello has no `revision`.
    let d = tempfile::tempdir().unwrap();
    let listener = std::os::unix::net::UnixListener::bind(d.path().join("outwatch.sock")).unwrap();
    std::thread::spawn(move || {
        let Ok((c, _)) = listener.accept() else {
            return;
        };
        let mut w = c.try_clone().unwrap();
        for line in BufReader::new(c).lines() {
            let Ok(line) = line else { return };
            let reply = if line.contains("\"hello\"") {
                "{\"done\":{\"version\":1,\"pid\":4242}}\n".to_string()
            } else {
                format!("{{\"error\":{{\"message\":\"unexpected {line}\"}}}}\n")
            };
            if w.write_all(reply.as_bytes()).is_err() {
                return;
            }
        }
    });
    let r = outwatch::daemon::RemoteStore::connect(d.path()).expect("it answers hello");
    assert_eq!(r.hello().revision, 0);
    let e = r
        .query_each(
            &outwatch::store::Query::Asn(64496),
            &Default::default(),
            &mut |_| Ok(std::ops::ControlFlow::Continue(())),
        )
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("older") && e.contains("4242") && e.contains("restart"),
        "{e}"
    );
}
