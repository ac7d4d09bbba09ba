//! Prometheus metrics (`outwatch::metrics`, `outwatch status --prometheus`): the text is read
//! back with a Prometheus text-format parser (nom-openmetrics), and its values are those of a
//! store with known runs and findings. A source name with a quote, a line feed and a backslash
//! stays one label value.

use std::collections::BTreeMap;
use std::path::Path;

use chrono::{DateTime, Utc};
use nom_openmetrics::{MetricDescriptor, MetricType};
use outwatch::digest::mail_log::{self, LastRun};
use outwatch::finding::{Classification, Finding, Severity};
use outwatch::store::{self, FetchRun, IngestOptions, RunOutcome, Store, UnitError};

use crate::support::{cli, feeds_off};

fn t(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

/// A source name as a feed file may set it: every character the format must escape.
const ODD: &str = "evil\"feed\nname\\";

/// Samples by metric name and labels (sorted by label name, values unescaped).
type Samples = BTreeMap<(String, Vec<(String, String)>), f64>;

/// Parses the text as Prometheus does (the whole text, or the test fails) and checks that every
/// family is declared with `# HELP` and `# TYPE ... gauge`.
fn parse(text: &str) -> Samples {
    let (rest, families) = nom_openmetrics::parser::prometheus(text)
        .unwrap_or_else(|e| panic!("not the Prometheus text format: {e:?}\n{text}"));
    assert!(rest.is_empty(), "left unparsed: {rest:?}");
    let mut out = Samples::new();
    for fam in &families {
        let helps = fam
            .descriptors
            .iter()
            .filter(|d| matches!(d, MetricDescriptor::Help { .. }))
            .count();
        assert_eq!(helps, 1, "{fam:?}");
        assert!(
            fam.descriptors.iter().any(|d| matches!(
                d,
                MetricDescriptor::Type {
                    r#type: MetricType::Gauge,
                    ..
                }
            )),
            "{fam:?}"
        );
        for s in &fam.samples {
            let mut labels: Vec<(String, String)> = s
                .labels()
                .iter()
                .map(|l| (l.name.to_string(), l.value.clone()))
                .collect();
            labels.sort();
            let key = (s.name().to_string(), labels);
            assert!(!out.contains_key(&key), "a sample twice: {key:?}");
            out.insert(key, s.number());
        }
    }
    out
}

fn get(s: &Samples, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let mut l: Vec<(String, String)> = labels
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    l.sort();
    s.get(&(name.to_string(), l)).copied()
}

fn finding(source: &str, ip: &str, sev: Severity) -> Finding {
    let mut f = Finding::new(
        source,
        "feed",
        Classification::new("", "c2-server", "x"),
        sev,
    );
    f.ip = Some(ip.parse().unwrap());
    f.seal();
    f
}

fn run(source: &str, at: &str, outcome: RunOutcome, fetched: usize) -> FetchRun {
    FetchRun {
        finished: t(at) + chrono::Duration::seconds(5),
        outcome,
        fetched,
        accepted: fetched,
        ..FetchRun::begun(source, t(at))
    }
}

const CONFIG_SUPPRESS: &str = r#"
[[suppress]]
cidr = "192.0.2.99/32"
until = 2027-01-31
reason = "our honeypot"
"#;

/// A store with findings of three sources (one resolved, one suppressed by the config), runs
/// of each kind, a digest and a notify run.
fn seeded(dir: &Path) -> store::SledStore {
    let s = store::open(&dir.join("data")).unwrap();
    s.ingest(
        vec![
            finding("urlhaus", "192.0.2.10", Severity::High),
            finding("urlhaus", "192.0.2.11", Severity::High),
            finding("urlhaus", "192.0.2.12", Severity::Low),
            finding("urlhaus", "192.0.2.99", Severity::High),
            finding(ODD, "192.0.2.20", Severity::Critical),
            finding("gone", "192.0.2.1", Severity::Critical),
        ],
        vec![],
        &IngestOptions {
            now: t("2026-12-07T10:00:00Z"),
        },
    )
    .unwrap();
    s.resolve_stale(
        "gone",
        None,
        t("2026-12-08T00:00:00Z"),
        t("2026-12-08T00:00:00Z"),
    )
    .unwrap();
    s.record_run(&run("urlhaus", "2026-12-07T06:00:00Z", RunOutcome::Ok, 120))
        .unwrap();
    let mut failing = run("urlhaus", "2026-12-07T07:00:00Z", RunOutcome::Error, 0);
    failing.error = Some("HTTP 503".into());
    s.record_run(&failing).unwrap();
    let mut partial = run(ODD, "2026-12-07T08:00:00Z", RunOutcome::Partial, 40);
    partial.rejected = 3;
    partial.failed_units = vec![
        UnitError {
            unit: "a.csv".into(),
            error: "cut".into(),
        },
        UnitError {
            unit: "b.csv".into(),
            error: "cut".into(),
        },
    ];
    s.record_run(&partial).unwrap();
    let mut flows = run("flows", "2026-12-07T08:00:00Z", RunOutcome::Ok, 1000);
    flows.rejected = 2;
    s.record_run(&flows).unwrap();
    s.record_run(&run(
        "flows",
        "2026-12-07T08:15:00Z",
        RunOutcome::NotModified,
        0,
    ))
    .unwrap();
    mail_log::record_last_run(
        &s,
        mail_log::DIGEST_RUN,
        &LastRun {
            started: t("2026-12-07T07:00:00Z"),
            finished: t("2026-12-07T07:00:01Z"),
            ok: false,
            sent: 1,
            failed: 1,
        },
    )
    .unwrap();
    mail_log::record_last_run(
        &s,
        mail_log::NOTIFY_RUN,
        &LastRun {
            started: t("2026-12-07T09:00:00Z"),
            finished: t("2026-12-07T09:00:02Z"),
            ok: true,
            sent: 3,
            failed: 0,
        },
    )
    .unwrap();
    let mut state = outwatch::digest::DigestState::default();
    state
        .last_sent
        .insert("main".into(), t("2026-12-06T07:00:00Z"));
    store::state_put_json(&s, outwatch::digest::STATE_KEY, &state).unwrap();
    s.flush().unwrap();
    s
}

#[test]
fn metrics_parse_and_tell_the_store() {
    let d = tempfile::tempdir().unwrap();
    let s = seeded(d.path());
    let cfg = outwatch::config::Config::parse(
        &format!("{}{CONFIG_SUPPRESS}", feeds_off()),
        &d.path().join("outwatch.toml"),
        &outwatch::sources::Registry,
    )
    .unwrap();
    let now = t("2026-12-07T12:00:00Z");
    let text = outwatch::metrics::render(&s, Some(&cfg), now).unwrap();
    let m = parse(&text);
    let v = |name: &str, labels: &[(&str, &str)]| {
        get(&m, name, labels).unwrap_or_else(|| panic!("no {name} {labels:?} in\n{text}"))
    };

    // Sources: the state `status` gives, the last success, the last run's outcome.
    let state = "outwatch_source_state";
    assert_eq!(
        v(state, &[("source", "urlhaus"), ("state", "failing")]),
        1.0
    );
    assert_eq!(v(state, &[("source", "urlhaus"), ("state", "ok")]), 0.0);
    assert_eq!(v(state, &[("source", ODD), ("state", "partial")]), 1.0);
    assert_eq!(
        v(
            "outwatch_source_last_success_timestamp_seconds",
            &[("source", "urlhaus")]
        ),
        t("2026-12-07T06:00:05Z").timestamp() as f64
    );
    assert_eq!(
        get(
            &m,
            "outwatch_source_last_success_timestamp_seconds",
            &[("source", ODD)]
        ),
        None,
        "never succeeded: no sample"
    );
    let outcome = "outwatch_source_last_run_outcome";
    assert_eq!(
        v(outcome, &[("source", "urlhaus"), ("outcome", "error")]),
        1.0
    );
    assert_eq!(v(outcome, &[("source", "urlhaus"), ("outcome", "ok")]), 0.0);
    assert_eq!(v(outcome, &[("source", ODD), ("outcome", "partial")]), 1.0);
    assert_eq!(
        v("outwatch_source_last_run_failed_units", &[("source", ODD)]),
        2.0
    );
    assert_eq!(v("outwatch_source_last_run_rows", &[("source", ODD)]), 40.0);
    assert_eq!(
        v("outwatch_source_last_run_rejected_rows", &[("source", ODD)]),
        3.0
    );
    assert_eq!(
        v(
            "outwatch_source_last_run_timestamp_seconds",
            &[("source", "urlhaus")]
        ),
        t("2026-12-07T07:00:05Z").timestamp() as f64
    );

    // Findings: open by source and severity, the resolved one not, the suppressed one apart.
    let open = "outwatch_findings_open";
    assert_eq!(v(open, &[("source", "urlhaus"), ("severity", "high")]), 2.0);
    assert_eq!(v(open, &[("source", "urlhaus"), ("severity", "low")]), 1.0);
    assert_eq!(v(open, &[("source", ODD), ("severity", "critical")]), 1.0);
    assert_eq!(
        get(&m, open, &[("source", "gone"), ("severity", "critical")]),
        None
    );
    assert_eq!(
        v("outwatch_findings_suppressed", &[("source", "urlhaus")]),
        1.0
    );
    assert_eq!(v("outwatch_store_findings", &[]), 6.0);
    assert!(v("outwatch_store_size_bytes", &[]) > 0.0);

    // The digest's and notify's last runs, and the digest's audiences.
    assert_eq!(
        v("outwatch_mail_last_run_success", &[("job", "digest")]),
        0.0
    );
    assert_eq!(v("outwatch_mail_last_run_sent", &[("job", "digest")]), 1.0);
    assert_eq!(
        v("outwatch_mail_last_run_failed", &[("job", "digest")]),
        1.0
    );
    assert_eq!(
        v("outwatch_mail_last_run_success", &[("job", "notify")]),
        1.0
    );
    assert_eq!(v("outwatch_mail_last_run_sent", &[("job", "notify")]), 3.0);
    assert_eq!(
        v(
            "outwatch_mail_last_run_timestamp_seconds",
            &[("job", "notify")]
        ),
        t("2026-12-07T09:00:02Z").timestamp() as f64
    );
    assert_eq!(
        v(
            "outwatch_digest_last_delivered_timestamp_seconds",
            &[("audience", "main")]
        ),
        t("2026-12-06T07:00:00Z").timestamp() as f64
    );

    // Flows: the latest run read nothing new; the one before read 1002 lines.
    assert_eq!(v("outwatch_flows_last_run_lines", &[]), 0.0);
    assert_eq!(
        v("outwatch_flows_last_lines_timestamp_seconds", &[]),
        t("2026-12-07T08:00:05Z").timestamp() as f64
    );
    assert_eq!(
        v("outwatch_info", &[("version", env!("CARGO_PKG_VERSION"))]),
        1.0
    );
}

/// An empty store: only what is known is written, and it still parses.
#[test]
fn metrics_of_an_empty_store_parse() {
    let d = tempfile::tempdir().unwrap();
    let s = store::open(&d.path().join("data")).unwrap();
    let text = outwatch::metrics::render(&s, None, t("2026-12-07T12:00:00Z")).unwrap();
    let m = parse(&text);
    assert_eq!(get(&m, "outwatch_store_findings", &[]), Some(0.0));
    assert!(!text.contains("outwatch_findings_open"), "{text}");
}

/// `outwatch status --prometheus`: the same text on stdout, the exit code of `status` (1: a
/// source is failing); `--json` with it is a usage error.
#[test]
fn status_prometheus_prints_the_metrics_with_the_status_exit_code() {
    let d = tempfile::tempdir().unwrap();
    drop(seeded(d.path()));
    let out = cli(d.path())
        .args(["--data-dir", "data", "status", "--prometheus"])
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let m = parse(&text);
    assert_eq!(
        get(
            &m,
            "outwatch_source_state",
            &[("source", "urlhaus"), ("state", "failing")]
        ),
        Some(1.0)
    );
    assert!(get(&m, "outwatch_store_size_bytes", &[]).unwrap() > 0.0);
    let both = cli(d.path())
        .args(["--data-dir", "data", "status", "--prometheus", "--json"])
        .output()
        .unwrap();
    assert_eq!(both.status.code(), Some(2));
}
