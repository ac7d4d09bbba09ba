//! Triage end to end: `ack`, `note`, `resolve` kept in the store with who, when and why and
//! shown by `lookup`; suppression rules (`suppress add`, `[[suppress]]`) take findings out of
//! the digest until their `until`, on the injected clock and with the real binary.

use std::path::Path;
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use outwatch::clock::{Clock, ManualClock};
use outwatch::config::Config;
use outwatch::digest;
use outwatch::finding::{Classification, Finding, Severity};
use outwatch::store::{IngestOptions, SledStore, Store};
use outwatch::triage::actions::{self, Action};

use crate::backends::Backend;
use crate::support::{cli, feeds_off, stdout_json};

fn finding(kind: &str, ip: &str, port: u16, sev: Severity) -> Finding {
    let mut f = Finding::new(
        "shadowserver",
        "scan_test",
        Classification::new("", kind, "test-id"),
        sev,
    );
    f.ip = Some(ip.parse().unwrap());
    f.port = Some(port);
    f.seal();
    f
}

/// Two findings in the lab /24 and one elsewhere, all ours.
fn findings() -> Vec<Finding> {
    vec![
        finding("c2-server", "203.0.113.5", 443, Severity::High),
        finding("vulnerable-system", "203.0.113.9", 3389, Severity::High),
        finding("vulnerable-system", "198.51.100.7", 53, Severity::High),
    ]
}

fn write_config(dir: &Path, extra: &str) -> std::path::PathBuf {
    write_config_on(dir, extra, &Backend::Sled)
}

fn write_config_on(dir: &Path, extra: &str, backend: &Backend) -> std::path::PathBuf {
    let p = dir.join("outwatch.toml");
    std::fs::write(
        &p,
        format!(
            "[organisation]\nname = \"Example Org\"\nprefixes = [\"203.0.113.0/24\", \
             \"198.51.100.0/24\"]\n\n{}\n[digest]\n\
             from = \"outwatch@example.org\"\nrecipients = [\"noc@example.org\"]\n\n{extra}\n{}",
            backend.store_table("data"),
            feeds_off()
        ),
    )
    .unwrap();
    p
}

/// The text part of the digest as previewed at `now`.
fn digest_text(cfg: &Config, store: &dyn Store, now: DateTime<Utc>) -> String {
    digest::preview(cfg, store, now).unwrap().rendered.text
}

/// The part of a text digest above the per-section lists: "act on these first".
fn act_first(text: &str) -> &str {
    text.split("Summary:").next().unwrap()
}

/// A `[[suppress]]` rule of the config takes the /24 out of the digest until its `until`,
/// on the injected clock; the digest lists it as expiring within its last 7 days; an acked
/// finding leaves "act on these first" but stays in its section.
#[tokio::test]
async fn a_suppressed_prefix_leaves_the_digest_until_its_rule_ends() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new("2026-12-01T08:00:00Z".parse().unwrap());
    let cfg_path = write_config(
        dir.path(),
        "[[suppress]]\ncidr = \"203.0.113.0/24\"\nuntil = 2026-12-10\nreason = \"lab network\"\n\
         by = \"noc\"\n",
    );
    let cfg = Config::load(&cfg_path, &outwatch::sources::Registry).unwrap();
    let store: Arc<dyn Store> = Arc::new(SledStore::open(&dir.path().join("data")).unwrap());
    store
        .ingest(findings(), vec![], &IngestOptions { now: clock.now() })
        .unwrap();

    let text = digest_text(&cfg, store.as_ref(), clock.now());
    assert!(!text.contains("203.0.113.5"), "{text}");
    assert!(!text.contains("203.0.113.9"), "{text}");
    assert!(text.contains("198.51.100.7"), "{text}");
    assert!(
        !text.contains("Suppression rules ending"),
        "ends in 9 days: {text}"
    );
    // Delivered: the suppressed findings were not announced (nor marked reported).
    let out = digest::deliver(&cfg, store.clone(), dir.path(), clock.now())
        .await
        .unwrap();
    assert_eq!((out.new, out.reported), (1, 1));

    // Within 7 days of its end the digest lists it.
    clock.advance(Duration::days(4));
    let text = digest_text(&cfg, store.as_ref(), clock.now());
    assert!(
        text.contains("Suppression rules ending within 7 days")
            && text
                .contains("config-1: 203.0.113.0/24 until 2026-12-11 00:00 UTC (lab network; noc)"),
        "{text}"
    );
    // Acknowledged: out of "act on these first", still counted as open (not observed again since
    // the last digest, so summarised with its `list` command rather than listed).
    let ack = outwatch::finding::Triage {
        by: "alice".into(),
        text: "our resolver".into(),
    };
    let fp = findings()[2].fingerprint.clone();
    actions::apply(store.as_ref(), &[fp], Action::Ack, &ack, clock.now()).unwrap();
    let text = digest_text(&cfg, store.as_ref(), clock.now());
    assert!(!act_first(&text).contains("198.51.100.7"), "{text}");
    assert!(text.contains("Summary: 0 new, 1 still open"), "{text}");

    // After `until` (the end of 2026-12-10, UTC), the next digest has them again, as new.
    clock.set("2026-12-11T00:00:01Z".parse().unwrap());
    let out = digest::deliver(&cfg, store.clone(), dir.path(), clock.now())
        .await
        .unwrap();
    assert_eq!(out.new, 2, "the two suppressed findings come back as new");
    let text = digest_text(&cfg, store.as_ref(), clock.now());
    assert!(!text.contains("Suppression rules ending"), "{text}");
}

/// Seconds from now, as RFC 3339.
fn in_seconds(s: i64) -> String {
    (Utc::now() + Duration::seconds(s)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn run(dir: &Path, args: &[&str]) -> std::process::Output {
    let out = cli(dir).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn text(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn preview(dir: &Path) -> String {
    run(dir, &["digest", "--preview", "--text", "d.txt"]);
    std::fs::read_to_string(dir.join("d.txt")).unwrap()
}

/// The done-when of issue #22 with the real binary: a suppressed /24 disappears from the next
/// digest and comes back after `--until`; `ack` and `note` appear in `lookup`'s history with
/// their author (text and JSON).
#[test]
fn cli_suppress_ack_and_note() {
    cli_suppress_ack_and_note_on(Backend::Sled);
}

/// The same on a PostgreSQL store.
#[test]
fn cli_suppress_ack_and_note_on_postgres() {
    if let Some(b) = Backend::postgres() {
        cli_suppress_ack_and_note_on(b);
    }
}

fn cli_suppress_ack_and_note_on(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write_config_on(d, "", &backend);
    {
        let store = backend.open(&d.join("data"));
        store
            .ingest(
                findings(),
                vec![],
                &IngestOptions {
                    now: Utc::now() - Duration::hours(1),
                },
            )
            .unwrap();
        store.flush().unwrap();
    }
    assert!(preview(d).contains("203.0.113.5"));
    // The rule ends a few seconds from now.
    let until = in_seconds(4);
    let added = run(
        d,
        &[
            "suppress",
            "add",
            "--cidr",
            "203.0.113.0/24",
            "--until",
            &until,
            "--reason",
            "lab network",
            "--by",
            "alice",
        ],
    );
    let added = text(&added);
    assert!(
        added.contains("suppression rule 1 added: 203.0.113.0/24")
            && added.contains("2 open finding(s) match it now"),
        "{added}"
    );
    let d1 = preview(d);
    assert!(
        !d1.contains("203.0.113.5") && !d1.contains("203.0.113.9"),
        "{d1}"
    );
    assert!(d1.contains("198.51.100.7"), "{d1}");
    assert!(d1.contains("1: 203.0.113.0/24 until"), "{d1}");
    // lookup shows it, marked, with the rule.
    let l = text(&run(d, &["lookup", "203.0.113.5"]));
    assert!(l.contains("suppressed"), "{l}");
    assert!(
        l.contains("suppressed by rule 1 until") && l.contains("lab network (alice)"),
        "{l}"
    );
    let j = stdout_json(&run(d, &["lookup", "203.0.113.5", "--json"]));
    assert_eq!(j["findings"][0]["suppressed"]["rule"], "1");
    assert_eq!(j["findings"][0]["suppressed"]["by"], "alice");

    // ack by query, note by a fingerprint's start.
    let acked = text(&run(
        d,
        &[
            "ack",
            "198.51.100.7",
            "--reason",
            "our resolver",
            "--by",
            "bob",
        ],
    ));
    assert!(
        acked.contains("acknowledged 1 finding(s) by bob"),
        "{acked}"
    );
    let j = stdout_json(&run(d, &["lookup", "198.51.100.7", "--json"]));
    let fp = j["findings"][0]["fingerprint"]
        .as_str()
        .unwrap()
        .to_string();
    run(d, &["note", &fp[..8], "ticket INC-9", "--by", "carol"]);
    let l = text(&run(d, &["lookup", "198.51.100.7"]));
    assert!(l.contains("acked"), "{l}");
    assert!(l.contains("ack by bob: our resolver"), "{l}");
    assert!(l.contains("note by carol: ticket INC-9"), "{l}");
    let j = stdout_json(&run(d, &["lookup", "198.51.100.7", "--json"]));
    let h = &j["findings"][0]["history"];
    assert_eq!(h[1]["event"], "ack");
    assert_eq!(h[1]["by"], "bob");
    assert_eq!(h[1]["text"], "our resolver");
    assert_eq!(h[2]["event"], "note");
    assert_eq!(h[2]["by"], "carol");
    assert!(h[2]["at"].as_str().is_some());

    // After `--until` the /24 is back in the digest, and the rule is listed as expired.
    let left = (DateTime::parse_from_rfc3339(&until)
        .unwrap()
        .with_timezone(&Utc)
        - Utc::now())
    .num_milliseconds()
    .max(0) as u64;
    std::thread::sleep(std::time::Duration::from_millis(left + 1200));
    let d2 = preview(d);
    assert!(d2.contains("203.0.113.5"), "{d2}");
    let list = text(&run(d, &["suppress", "list"]));
    assert!(list.contains("EXPIRED"), "{list}");
    let j = stdout_json(&run(d, &["suppress", "list", "--json"]));
    assert_eq!(j["rules"][0]["expired"], true);
    let st = stdout_json(&run(d, &["status", "--json"]));
    assert_eq!(st["store"]["backend"], backend.name());
    run(d, &["suppress", "remove", "1"]);
    assert!(text(&run(d, &["suppress", "list"])).contains("no suppression rules"));
}

/// Mistakes are told and change nothing: a dry run writes nothing; an unknown or too short
/// fingerprint, a past `--until`, a config rule removed by hand are refused (exit 2); a
/// resolve without a reason is a usage error.
#[test]
fn cli_refusals_and_dry_runs() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write_config(d, "");
    {
        let store = SledStore::open(&d.join("data")).unwrap();
        store
            .ingest(
                findings(),
                vec![],
                &IngestOptions {
                    now: Utc::now() - Duration::hours(1),
                },
            )
            .unwrap();
        store.flush().unwrap();
    }
    let dry = text(&run(
        d,
        &[
            "resolve",
            "203.0.113.0/24",
            "--reason",
            "gone",
            "--by",
            "x",
            "--dry-run",
        ],
    ));
    assert!(
        dry.contains("dry run, nothing changed: would resolve 2 finding(s) as x: gone"),
        "{dry}"
    );
    let j = stdout_json(&run(d, &["lookup", "203.0.113.0/24", "--json"]));
    assert_eq!(j["total"], 2, "a dry run changes nothing");
    let j = stdout_json(&run(
        d,
        &[
            "resolve",
            "203.0.113.0/24",
            "--reason",
            "gone",
            "--by",
            "x",
            "--json",
        ],
    ));
    assert_eq!(j["changed"], 2);
    let j = stdout_json(&run(d, &["lookup", "203.0.113.0/24", "--json"]));
    assert_eq!(j["total"], 0, "resolved by hand");
    let code = |args: &[&str]| cli(d).args(args).output().unwrap().status.code();
    assert_eq!(
        code(&["ack", "abcdef12", "--reason", "x", "--by", "x"]),
        Some(2)
    );
    assert_eq!(code(&["ack", "abc", "--reason", "x", "--by", "x"]), Some(2));
    assert_eq!(code(&["resolve", "198.51.100.7", "--by", "x"]), Some(2));
    assert_eq!(
        code(&[
            "suppress",
            "add",
            "--asn",
            "64496",
            "--until",
            "2020-01-01",
            "--reason",
            "x",
            "--by",
            "x"
        ]),
        Some(2)
    );
    assert_eq!(
        code(&[
            "suppress", "add", "--until", "30d", "--reason", "x", "--by", "x"
        ]),
        Some(2),
        "one of --cidr, --asn, --domain"
    );
    assert_eq!(code(&["suppress", "remove", "config-1"]), Some(2));
    assert_eq!(code(&["suppress", "remove", "9"]), Some(1));
}

/// The commented `[[suppress]]` example of `config.example.toml`, uncommented, is a valid rule.
#[test]
fn the_example_suppress_table_is_valid() {
    let example =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("config.example.toml"))
            .unwrap();
    let at = example.find("# [[suppress]]").expect("an example");
    let table: String = example[at..]
        .lines()
        .map(|l| l.strip_prefix("# ").unwrap_or(l))
        .map(|l| format!("{l}\n"))
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let cfg = Config::load(
        &write_config(dir.path(), &table),
        &outwatch::sources::Registry,
    )
    .unwrap();
    assert_eq!(cfg.suppress.len(), 1);
    let rule = outwatch::triage::Rule::from_config(0, &cfg.suppress[0]);
    assert_eq!(rule.id, "config-1");
    assert_eq!(rule.port, Some(3389));
}
