//! `outwatch list` (the worklist) and what every view shows first: when the provider saw a
//! finding, and the ports and peer that tell the device apart; `lookup` of what a person
//! pastes from a table (`IP:port`, `[v6]:port`, URLs, ASNs by the findings' `asn`).

use std::path::Path;

use chrono::{DateTime, Utc};
use outwatch::finding::{Classification, Finding, Severity};
use outwatch::store::{self, IngestOptions, Store};
use serde_json::Value;

use crate::support::{cli, csv_records, fixture_path, stdout_json};

fn t(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

fn run(d: &Path, args: &[&str]) -> std::process::Output {
    cli(d)
        .args(["--data-dir", "data"])
        .args(args)
        .env("COLUMNS", "80")
        .output()
        .unwrap()
}

fn stdout(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn ok(o: std::process::Output) -> std::process::Output {
    assert!(
        o.status.success(),
        "{}{}",
        stdout(&o),
        String::from_utf8_lossy(&o.stderr)
    );
    o
}

fn finding(ip: &str, sev: Severity, kind: &str) -> Finding {
    let mut f = Finding::new("test", "feed", Classification::new("", kind, "x"), sev);
    f.ip = Some(ip.parse().unwrap());
    f
}

/// A store of a few findings: observed long ago or lately, in address order that a string
/// sort gets wrong, one resolved.
fn seeded() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    let s = store::open(&d.path().join("data")).unwrap();
    let mut old = finding("192.0.2.200", Severity::High, "infected-system");
    old.time_source = Some(t("2016-11-20T11:05:10Z"));
    let mut new = finding("192.0.2.54", Severity::High, "vulnerable-system");
    new.time_source = Some(t("2026-11-30T08:00:00Z"));
    new.port = Some(623);
    let mut other_port = finding("192.0.2.54", Severity::Low, "vulnerable-system");
    other_port.port = Some(22);
    let mut c2 = finding("192.0.2.9", Severity::High, "c2-server");
    c2.time_source = Some(t("2026-11-29T08:00:00Z"));
    let mut v6 = finding("2001:db8::20", Severity::Medium, "vulnerable-system");
    v6.port = Some(443);
    let mut carried = finding("198.51.100.7", Severity::Low, "spam");
    carried.asn = Some(24961);
    let mut phish = Finding::new(
        "safebrowsing",
        "lookup",
        Classification::new("", "phishing", "x"),
        Severity::High,
    );
    phish.url = Some("https://login.example.org/account".into());
    phish.domain = Some("login.example.org".into());
    let mut c2_url = finding("192.0.2.77", Severity::Critical, "infected-system");
    c2_url.url = Some("http://gtr.example-c2.com/in.php".into());
    let mut gone = finding("192.0.2.1", Severity::Critical, "c2-server");
    gone.source = "gone".into();
    let mut all = vec![old, new, other_port, c2, v6, carried, phish, c2_url, gone];
    for f in &mut all {
        f.seal();
    }
    s.ingest(
        all,
        vec![],
        &IngestOptions {
            now: t("2026-12-07T14:13:00Z"),
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
    s.flush().unwrap();
    d
}

fn ips(v: &Value) -> Vec<String> {
    v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            f["ip"]
                .as_str()
                .or(f["url"].as_str())
                .unwrap_or("-")
                .to_string()
        })
        .collect()
}

#[test]
fn a_sinkhole_row_shows_its_observation_time_and_source_port() {
    let d = tempfile::tempdir().unwrap();
    let csv = fixture_path("shadowserver/2026-11-20-event4_sinkhole_http-example-asn.csv");
    ok(cli(d.path())
        .args(["--data-dir", "data", "import", "shadowserver"])
        .arg(&csv)
        .output()
        .unwrap());
    for args in [
        &["list", "--feed", "event4_sinkhole_http"][..],
        &["lookup", "192.0.2.77"],
    ] {
        let out = stdout(&ok(run(d.path(), args)));
        // Observed 2026-11-20 11:05:10 from port 50100 to the C2 at 203.0.113.80:80, imported
        // today: the provider's time and the port are in the row.
        assert!(out.contains("2026-11-20"), "{out}");
        assert!(out.contains("11:05"), "{out}");
        assert!(out.contains("src port 50100"), "{out}");
        assert!(out.contains("203.0.113.80:80"), "{out}");
        assert!(out.contains("192.0.2.77"), "{out}");
        for line in out.lines() {
            assert!(line.chars().count() <= 80, "wider than 80: {line}");
        }
    }
    let v = stdout_json(&ok(run(
        d.path(),
        &["list", "--feed", "event4_sinkhole_http", "--json"],
    )));
    let f = &v["findings"][0];
    assert_eq!(f["observed"], "2026-11-20T11:05:10Z");
    assert_eq!(f["contact"]["src_port"], "50100");
    assert_eq!(f["contact"]["dst_ip"], "203.0.113.80");
    // The export carries the same, and restore reads it back.
    let export = stdout(&ok(run(d.path(), &["export"])));
    let line: Value = serde_json::from_str(export.lines().next().unwrap()).unwrap();
    assert!(line["observed"].is_string(), "{line}");
}

#[test]
fn since_is_about_the_observation_and_stored_since_about_the_store() {
    let d = seeded();
    let v = stdout_json(&ok(run(
        d.path(),
        &["list", "--since", "2026-01-01", "--json"],
    )));
    let got = ips(&v);
    assert!(!got.contains(&"192.0.2.200".to_string()), "{got:?}");
    assert!(got.contains(&"192.0.2.54".to_string()), "{got:?}");
    let v = stdout_json(&ok(run(
        d.path(),
        &["list", "--until", "2017-01-01", "--json"],
    )));
    assert_eq!(ips(&v), ["192.0.2.200"]);
    // Stored on 2026-12-07, whenever it was observed.
    let v = stdout_json(&ok(run(
        d.path(),
        &["list", "--stored-since", "2026-12-07", "--json"],
    )));
    assert_eq!(v["total"], 8);
    let v = stdout_json(&ok(run(
        d.path(),
        &["lookup", "192.0.2.0/24", "--since", "2026-01-01", "--json"],
    )));
    assert!(!ips(&v).contains(&"192.0.2.200".to_string()));
}

#[test]
fn the_worklist_sorts_by_rank_time_and_address() {
    let d = seeded();
    let order = |sort: &str| {
        ips(&stdout_json(&ok(run(
            d.path(),
            &["list", "--severity", "high", "--sort", sort, "--json"],
        ))))
    };
    // The rank: a compromise (phishing, a C2, an infected host) before an exposure, all high;
    // the later observation first within a kind (the phishing page has no provider time: it
    // was observed when stored, in December).
    assert_eq!(
        order("rank"),
        [
            "https://login.example.org/account",
            "192.0.2.9",
            "192.0.2.200",
            "192.0.2.54"
        ]
    );
    assert_eq!(
        order("time")[..2],
        ["https://login.example.org/account", "192.0.2.54"]
    );
    // Numeric: .9 before .54 before .200; addresses before names.
    assert_eq!(
        order("address"),
        [
            "192.0.2.9",
            "192.0.2.54",
            "192.0.2.200",
            "https://login.example.org/account"
        ]
    );
}

#[test]
fn status_severity_and_limits() {
    let d = seeded();
    let total = |args: &[&str]| {
        let mut a = vec!["list", "--json"];
        a.extend_from_slice(args);
        stdout_json(&ok(run(d.path(), &a)))["total"]
            .as_u64()
            .unwrap()
    };
    assert_eq!(total(&[]), 8);
    assert_eq!(total(&["--status", "all"]), 9);
    assert_eq!(total(&["--status", "resolved"]), 1);
    assert_eq!(total(&["--severity", "critical,low"]), 3);
    assert_eq!(total(&["--min-severity", "medium"]), 6);
    assert_eq!(total(&["--class", "*/c2-server", "--status", "all"]), 2);
    assert_eq!(total(&["--prefix", "192.0.2.0/25"]), 4);
    assert_eq!(total(&["--domain", "example.org"]), 1);
    assert_eq!(total(&["--asn", "AS24961"]), 1);
    // The table: the first --limit, and what is left out, with its count.
    let out = stdout(&ok(run(d.path(), &["list", "--limit", "2"])));
    assert!(
        out.contains("8 finding(s); … and 6 more not shown"),
        "{out}"
    );
    // Nothing found is a success, and says so.
    let o = ok(run(d.path(), &["list", "--source", "nobody"]));
    assert!(stdout(&o).contains("no findings match"), "{}", stdout(&o));
    // A bad value is a usage error naming the flag.
    let o = run(d.path(), &["list", "--since", "yesterday"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--since"));
    let o = run(d.path(), &["list", "--team", "dmz"]);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn the_printed_command_is_runnable_and_shows_the_same() {
    let d = seeded();
    let v = stdout_json(&ok(run(
        d.path(),
        &[
            "list",
            "--min-severity",
            "high",
            "--class",
            "malicious-code",
            "--since",
            "2026-11-01",
            "--json",
        ],
    )));
    let command = v["command"].as_str().unwrap();
    assert_eq!(
        command,
        "outwatch list --min-severity high --class malicious-code --since 2026-11-01"
    );
    let words = shlex::split(command).unwrap();
    let mut args: Vec<&str> = words[1..].iter().map(String::as_str).collect();
    args.push("--json");
    let again = stdout_json(&ok(run(d.path(), &args)));
    assert_eq!(again["findings"], v["findings"]);
    // The C2 observed in November and the infected host stored in December; not the one
    // observed in 2016.
    assert_eq!(v["total"], 2);
}

#[test]
fn csv_opens_in_a_spreadsheet() {
    let d = tempfile::tempdir().unwrap();
    let s = store::open(&d.path().join("data")).unwrap();
    let mut hostile = finding("192.0.2.66", Severity::High, "c2-server");
    hostile.feed = "=HYPERLINK(\"http://evil.test\",\"x\")".into();
    hostile.set_extra("malware", "evil\",\nmulti-line\u{1b}[31m");
    let mut plain = finding("192.0.2.67", Severity::High, "c2-server");
    plain.classification.identifier = "@SUM(1)".into();
    let mut low = finding("192.0.2.68", Severity::Low, "spam");
    for f in [&mut hostile, &mut plain, &mut low] {
        f.seal();
    }
    s.ingest(
        vec![hostile, plain, low],
        vec![],
        &IngestOptions {
            now: t("2026-12-07T14:13:00Z"),
        },
    )
    .unwrap();
    drop(s);
    let out = ok(run(
        d.path(),
        &[
            "list",
            "--severity",
            "high",
            "--status",
            "new",
            "--format",
            "csv",
        ],
    ));
    let rows = csv_records(&out.stdout);
    // A header and one row per finding, every row as wide as the header.
    assert_eq!(rows.len(), 3, "{rows:?}");
    assert_eq!(rows[0][0], "observed");
    assert!(rows.iter().all(|r| r.len() == rows[0].len()));
    for cell in rows.iter().flatten() {
        assert!(
            !cell.starts_with(['=', '+', '-', '@']),
            "a cell that starts a formula: {cell}"
        );
        assert!(!cell.chars().any(|c| c.is_control()), "{cell:?}");
    }
    let feed = rows[0].iter().position(|h| h == "feed").unwrap();
    assert!(rows[1..].iter().any(|r| r[feed].starts_with("'=HYPERLINK")));
}

#[test]
fn lookup_finds_what_a_table_prints() {
    let d = seeded();
    let total = |q: &str| {
        stdout_json(&ok(run(d.path(), &["lookup", q, "--json"])))["total"]
            .as_u64()
            .unwrap()
    };
    assert_eq!(total("192.0.2.54"), 2);
    assert_eq!(total("192.0.2.54:623"), 1);
    assert_eq!(total("192.0.2.54:624"), 0);
    assert_eq!(total("[2001:db8::20]:443"), 1);
    // A finding that carries the ASN, with no announced prefix known.
    assert_eq!(total("AS24961"), 1);
    assert_eq!(total("ASN24961"), 1);
    // A URL: the findings with that URL, and about its host.
    assert_eq!(total("http://gtr.example-c2.com/in.php"), 1);
    assert_eq!(total("https://login.example.org/"), 1);
    assert_eq!(total("http://192.0.2.54/x"), 2);
    let o = run(d.path(), &["lookup", "192.0.2.54:99999"]);
    assert_eq!(o.status.code(), Some(2));
}

/// A suppressed prefix is out of the worklist; `--suppressed` shows only it, `--all` it too,
/// and the commands the filter writes back carry the switch.
#[test]
fn suppressed_findings_leave_the_worklist_unless_asked() {
    let d = seeded();
    ok(run(
        d.path(),
        &[
            "suppress",
            "add",
            "--cidr",
            "192.0.2.0/25",
            "--until",
            "30d",
            "--reason",
            "lab",
        ],
    ));
    let list = |extra: &[&str]| {
        let mut args = vec!["list", "--severity", "high", "--sort", "address", "--json"];
        args.extend_from_slice(extra);
        stdout_json(&ok(run(d.path(), &args)))
    };
    // 192.0.2.9 and .54 are in the /25; .200 is not.
    assert_eq!(
        ips(&list(&[])),
        ["192.0.2.200", "https://login.example.org/account"]
    );
    assert_eq!(ips(&list(&["--suppressed"])), ["192.0.2.9", "192.0.2.54"]);
    assert_eq!(ips(&list(&["--all"])).len(), 4);
    let all = list(&["--all"]);
    assert!(all["command"].as_str().unwrap().ends_with("--all"), "{all}");
    // The table marks them.
    let table = stdout(&ok(run(d.path(), &["list", "--all"])));
    assert!(table.contains("suppressed"), "{table}");
    let both = run(d.path(), &["list", "--all", "--suppressed"]);
    assert_eq!(both.status.code(), Some(2));
}
