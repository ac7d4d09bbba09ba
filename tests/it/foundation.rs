//! Foundation: the store on disk (the contract every backend meets is in `store_contract`),
//! scope resolution through a RIPEstat mock, and the CLI contract
//! of `check-config`, `scope`, `lookup`, `export` and `restore`.

use std::path::Path;
use std::sync::Arc;

use assert_cmd::Command;
use chrono::{DateTime, Duration, Utc};
use outwatch::clock::{Clock, ManualClock};
use outwatch::config::{Config, HttpConfig};
use outwatch::finding::{Classification, Finding, Severity};
use outwatch::http::HttpClient;
use outwatch::store::{self, IngestOptions, Store};
use serde_json::Value;

use crate::support::{cli, feeds_off};
use wiremock::matchers::{method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

fn t(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

fn finding(feed: &str, ip: Option<&str>, domain: Option<&str>) -> Finding {
    let mut f = Finding::new(
        "test",
        feed,
        Classification::new("", "vulnerable-system", "open-service"),
        Severity::Medium,
    );
    f.ip = ip.map(|i| i.parse().unwrap());
    f.domain = domain.map(str::to_string);
    f.port = Some(443);
    f.seal();
    f
}

fn opts(now: &str) -> IngestOptions {
    IngestOptions { now: t(now) }
}

fn open(dir: &Path) -> store::SledStore {
    store::open(dir).unwrap()
}

#[test]
fn second_open_is_refused_with_a_way_out() {
    let d = tempfile::tempdir().unwrap();
    let _s = open(d.path());
    let e = store::open(d.path()).unwrap_err().to_string();
    assert!(e.contains(&d.path().display().to_string()), "{e}");
    assert!(e.contains("daemon"), "{e}");
}

async fn mock_ripestat(server: &MockServer, asn: &str, body: String) {
    Mock::given(method("GET"))
        .and(path("/data/announced-prefixes/data.json"))
        .and(query_param("resource", asn))
        .respond_with(ResponseTemplate::new(200).set_body_raw(body, "application/json"))
        .mount(server)
        .await;
}

fn fixture(name: &str) -> String {
    std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/ripestat")
            .join(name),
    )
    .unwrap()
}

#[tokio::test]
async fn ripestat_replies_become_prefixes_and_failures_keep_the_cache() {
    let server = MockServer::start().await;
    mock_ripestat(
        &server,
        "AS64496",
        fixture("announced-prefixes-AS64496.json"),
    )
    .await;
    let text = format!(
        "[organisation]\nasns = [64496]\nprefixes = [\"203.0.113.0/24\"]\n[scope]\nripestat_url = \"{}\"\n",
        server.uri()
    );
    let cfg = Config::parse(
        &text,
        Path::new("outwatch.toml"),
        &outwatch::sources::Registry,
    )
    .unwrap();
    let d = tempfile::tempdir().unwrap();
    let s: Arc<dyn Store> = Arc::new(open(d.path()));
    let clock = Arc::new(ManualClock::new(t("2026-11-23T06:00:00Z")));
    let http = HttpClient::new(&HttpConfig::default(), clock.clone()).unwrap();
    let (snap, rep) = outwatch::scope::refresh(&cfg, &s, &http, clock.now(), false)
        .await
        .unwrap();
    assert!(rep[0].refreshed);
    let got: Vec<String> = snap.asns[0]
        .prefixes
        .iter()
        .map(|p| p.to_string())
        .collect();
    // The withdrawn prefix (timeline ended weeks before latest_time) is not current.
    assert_eq!(
        got,
        vec!["192.0.2.0/24", "198.51.100.0/24", "2001:db8::/32"]
    );
    let m = outwatch::scope::ScopeMatcher::new(&snap);
    assert!(m.contains_ip("198.51.100.9".parse().unwrap()));
    assert!(m.contains_ip("203.0.113.9".parse().unwrap()));
    assert!(!m.contains_ip("192.0.3.1".parse().unwrap()));

    // Fresh cache: no request within a day.
    let (_, rep) = outwatch::scope::refresh(&cfg, &s, &http, clock.now(), false)
        .await
        .unwrap();
    assert!(rep.is_empty());

    // RIPEstat breaks: the cached prefixes stay, with the error remembered.
    server.reset().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(503))
        .mount(&server)
        .await;
    clock.advance(Duration::days(2));
    let (snap, rep) = outwatch::scope::refresh(&cfg, &s, &http, clock.now(), false)
        .await
        .unwrap();
    assert!(rep[0].error.is_some());
    assert_eq!(snap.asns[0].prefixes.len(), 3);
    assert!(snap.asns[0].last_error.as_deref().unwrap().contains("503"));
}

// ---------- CLI ----------

#[test]
fn check_config_names_bad_keys_and_redacts_secrets() {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(
        d.path().join("outwatch.toml"),
        "[organisation]\nname = \"X\"\nasnz = [1]\n",
    )
    .unwrap();
    let out = cli(d.path())
        .arg("check-config")
        .assert()
        .code(3)
        .get_output()
        .clone();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("asnz") && err.contains("line 3"), "{err}");

    std::fs::write(
        d.path().join("outwatch.toml"),
        "[organisation]\nname = \"X\"\nprefixes = [\"192.0.2.0/24\"]\n[smtp]\nhost = \"mail.example.org\"\npassword = \"hunter2-very-secret\"\n",
    )
    .unwrap();
    let out = cli(d.path())
        .args(["check-config", "--json"])
        .assert()
        .success()
        .get_output()
        .clone();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!text.contains("hunter2"), "{text}");
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["valid"], true);
    assert_eq!(v["settings"]["smtp"]["password"], "***redacted***");
}

#[tokio::test]
async fn scope_json_lists_every_prefix() {
    let server = MockServer::start().await;
    mock_ripestat(
        &server,
        "AS64496",
        fixture("announced-prefixes-AS64496.json"),
    )
    .await;
    let d = tempfile::tempdir().unwrap();
    std::fs::write(
        d.path().join("outwatch.toml"),
        format!(
            "[organisation]\nname = \"Example Org\"\nasns = [64496]\nprefixes = [\"2001:db8:1::/48\"]\ndomains = [\"example.org\"]\n[scope]\nripestat_url = \"{}\"\n[store]\npath = \"./data\"\n",
            server.uri()
        ),
    )
    .unwrap();
    let dir = d.path().to_path_buf();
    let out = tokio::task::spawn_blocking(move || {
        cli(&dir)
            .args(["scope", "--refresh", "--json"])
            .assert()
            .success()
            .get_output()
            .clone()
    })
    .await
    .unwrap();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["asns"][0]["asn"], 64496);
    assert_eq!(v["asns"][0]["prefixes"][0], "192.0.2.0/24");
    assert_eq!(v["prefixes"][0], "2001:db8:1::/48");
    assert_eq!(v["domains"][0], "example.org");
    assert!(
        d.path().join("data").exists(),
        "store path is relative to the config"
    );
}

/// Seeds a store in `dir` with a few findings.
fn seed(dir: &Path) {
    let s = open(dir);
    let mut a = finding("scan_dns", Some("192.0.2.7"), None);
    a.source = "shadowserver".into();
    a.protocol = Some("udp".into());
    a.port = Some(53);
    a.set_extra("tag", "<b>open</b>");
    a.seal();
    let b = finding("web", None, Some("shop.example.org"));
    s.ingest(vec![a, b], vec![], &opts("2026-11-20T08:00:00Z"))
        .unwrap();
}

/// `outwatch --data-dir DATA lookup ARGS...` run from `dir`.
fn lookup(dir: &Path, data: &Path, args: &[&str]) -> Command {
    let mut c = cli(dir);
    c.arg("--data-dir").arg(data).arg("lookup").args(args);
    c
}

/// A successful `lookup ARGS... --json`, parsed.
fn lookup_json(dir: &Path, data: &Path, args: &[&str]) -> Value {
    let out = lookup(dir, data, args)
        .arg("--json")
        .assert()
        .success()
        .get_output()
        .clone();
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn lookup_json_contract_and_exit_codes() {
    let d = tempfile::tempdir().unwrap();
    let data = d.path().join("data");
    seed(&data);
    // No config file at all: lookup still works.
    let v = lookup_json(d.path(), &data, &["192.0.2.7"]);
    assert_eq!(v["query"], "192.0.2.7");
    assert_eq!(v["in_scope"], false);
    let f = &v["findings"][0];
    for key in [
        "source",
        "feed",
        "classification",
        "ip",
        "port",
        "protocol",
        "asn",
        "domain",
        "url",
        "severity",
        "status",
        "first_seen",
        "last_seen",
        "times_seen",
        "extra",
    ] {
        assert!(f.get(key).is_some(), "missing {key}: {f}");
    }
    assert_eq!(f["source"], "shadowserver");
    assert_eq!(f["classification"]["taxonomy"], "vulnerable");
    assert_eq!(f["port"], 53);
    assert_eq!(f["asn"], Value::Null);
    assert_eq!(f["first_seen"], "2026-11-20T08:00:00Z");

    // Domain lookups cover subdomains.
    let v = lookup_json(d.path(), &data, &["example.org"]);
    assert_eq!(v["findings"].as_array().unwrap().len(), 1);

    // Nothing found: still exit 0. The readable table is the default.
    lookup(d.path(), &data, &["203.0.113.1"])
        .assert()
        .success()
        .stdout(predicates::str::contains("nothing known"));
    lookup(d.path(), &data, &["192.0.2.0/24"])
        .assert()
        .success()
        .stdout(predicates::str::contains("scan_dns"));
    // Malformed query: exit 2 with a clear message.
    lookup(d.path(), &data, &["192.0.2.0/40"])
        .assert()
        .code(2)
        .stderr(predicates::str::contains("not a valid prefix"));
    // --since filters.
    let v = lookup_json(d.path(), &data, &["192.0.2.7", "--since", "2026-11-21"]);
    assert!(v["findings"].as_array().unwrap().is_empty());
}

#[test]
fn export_and_restore_round_trip() {
    let d = tempfile::tempdir().unwrap();
    let data = d.path().join("data");
    seed(&data);
    let file = d.path().join("backup.jsonl");
    cli(d.path())
        .args([
            "--data-dir",
            data.to_str().unwrap(),
            "export",
            "--jsonl",
            "-o",
        ])
        .arg(&file)
        .assert()
        .success();
    let text = std::fs::read_to_string(&file).unwrap();
    assert_eq!(text.lines().count(), 2);
    let fresh = d.path().join("fresh");
    cli(d.path())
        .args(["--data-dir", fresh.to_str().unwrap(), "restore"])
        .arg(&file)
        .assert()
        .success()
        .stdout(predicates::str::contains("restored 2"));
    let a = open(&data);
    let b = open(&fresh);
    let mut x = Vec::new();
    a.for_each(&mut |f| {
        x.push(f);
        Ok(())
    })
    .unwrap();
    let mut y = Vec::new();
    b.for_each(&mut |f| {
        y.push(f);
        Ok(())
    })
    .unwrap();
    assert_eq!(x, y, "history, counts and times survive the round trip");
    let runs = b.runs(Some("restore"), 5).unwrap();
    assert_eq!(runs.len(), 1, "a restore is one run, logged as `restore`");
    assert_eq!((runs[0].accepted, runs[0].new), (2, 0));
}

/// A restore is all or nothing: a file that cannot be read to its end restores nothing, and a
/// line that is no finding is named and skipped.
#[test]
fn a_restore_that_cannot_be_read_whole_restores_nothing() {
    let d = tempfile::tempdir().unwrap();
    let data = d.path().join("data");
    seed(&data);
    let file = d.path().join("backup.jsonl");
    cli(d.path())
        .args([
            "--data-dir",
            data.to_str().unwrap(),
            "export",
            "--jsonl",
            "-o",
        ])
        .arg(&file)
        .assert()
        .success();
    let good = std::fs::read(&file).unwrap();
    let mut cut = good.clone();
    cut.extend_from_slice(b"{\"source\": \"x\xff\xfe\"}\n");
    let broken = d.path().join("broken.jsonl");
    std::fs::write(&broken, &cut).unwrap();
    let fresh = d.path().join("fresh");
    cli(d.path())
        .args(["--data-dir", fresh.to_str().unwrap(), "restore"])
        .arg(&broken)
        .assert()
        .code(1)
        .stderr(predicates::str::contains("nothing was restored"));
    assert_eq!(open(&fresh).count().unwrap(), 0);
    // A line that is no finding: skipped and named, the others restored.
    let mut odd = good;
    odd.extend_from_slice(b"{\"not\": \"a finding\"}\n");
    std::fs::write(&broken, &odd).unwrap();
    cli(d.path())
        .args(["--data-dir", fresh.to_str().unwrap(), "restore"])
        .arg(&broken)
        .assert()
        .code(1)
        .stdout(predicates::str::contains("restored 2"))
        .stderr(predicates::str::contains("line 3"));
    assert_eq!(open(&fresh).count().unwrap(), 2);
}

#[test]
fn read_command_on_a_locked_store_explains() {
    let d = tempfile::tempdir().unwrap();
    let data = d.path().join("data");
    let _held = open(&data);
    cli(d.path())
        .args(["--data-dir", data.to_str().unwrap(), "export"])
        .assert()
        .code(4)
        .stderr(predicates::str::contains("in use"));
}

#[test]
fn config_example_is_valid() {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("config.example.toml");
    let cfg = Config::load(&p, &outwatch::sources::Registry).unwrap();
    assert_eq!(cfg.organisation.asns[0].0, 64496);
    assert!(cfg.digest.is_some());
}

#[test]
fn records_survive_reopen_and_new_ones_do_not_overwrite_them() {
    let d = tempfile::tempdir().unwrap();
    let a = finding("a", Some("192.0.2.1"), None);
    let b = finding("a", Some("192.0.2.2"), None);
    {
        let s = open(d.path());
        s.ingest(vec![a.clone()], vec![], &opts("2026-11-01T00:00:00Z"))
            .unwrap();
        s.flush().unwrap();
    }
    // sled may hold its lock a moment after the handle is dropped.
    let s = (0..50)
        .find_map(|_| {
            store::open(d.path()).ok().or_else(|| {
                std::thread::sleep(std::time::Duration::from_millis(100));
                None
            })
        })
        .expect("reopen");
    s.ingest(
        vec![b.clone(), a.clone()],
        vec![],
        &opts("2026-11-02T00:00:00Z"),
    )
    .unwrap();
    assert_eq!(s.count().unwrap(), 2);
    assert_eq!(s.get(&a.fingerprint).unwrap().unwrap().times_seen, 2);
    assert_eq!(s.get(&b.fingerprint).unwrap().unwrap().times_seen, 1);
    let mut n = 0;
    s.for_each(&mut |_| {
        n += 1;
        Ok(())
    })
    .unwrap();
    assert_eq!(n, 2);
}

/// A reader that closes the pipe early (`outwatch status | head -0`) ends a read command
/// quietly with 0; `println!` used to panic with "failed printing to stdout: Broken pipe".
#[test]
fn closed_stdout_ends_read_commands_quietly() {
    let d = tempfile::tempdir().unwrap();
    let data = d.path().join("data");
    // Read commands need an existing store (they never create one).
    drop(outwatch::store::open(&data).unwrap());
    for args in [
        vec!["status"],
        vec!["status", "--json"],
        vec!["lookup", "192.0.2.7"],
        vec!["lookup", "192.0.2.7", "--json"],
    ] {
        // The read end is closed before the command starts: its first write fails.
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let out = crate::support::isolated(d.path())
            .arg("--data-dir")
            .arg(&data)
            .args(&args)
            .stdout(writer)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!err.contains("panicked"), "{args:?}: {err}");
        assert_eq!(out.status.code(), Some(0), "{args:?}: {err}");
    }
}

// ---------- no false all-clear ----------

/// Read commands never create a store: with no config and no store here they exit 3 naming
/// where they looked; with a store folder that holds none, 4 naming it. Nothing is created.
#[test]
fn read_commands_never_create_a_store() {
    let d = tempfile::tempdir().unwrap();
    let reads: [&[&str]; 4] = [
        &["lookup", "192.0.2.7"],
        &["status"],
        &["export", "--jsonl"],
        &["digest", "--preview"],
    ];
    for args in reads {
        let out = cli(d.path()).args(args).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(3), "{args:?}: {err}");
        assert!(
            err.contains("outwatch.toml") && err.contains("outwatch-data"),
            "{err}"
        );
        assert!(out.stdout.is_empty(), "{args:?}");
        assert!(
            !d.path().join("outwatch-data").exists(),
            "{args:?} created a store"
        );
    }
    let mistyped = d.path().join("mistyped/path");
    for args in reads {
        let out = cli(d.path())
            .arg("--data-dir")
            .arg(&mistyped)
            .args(args)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(4), "{args:?}: {err}");
        assert!(
            err.contains("no store at") && err.contains("mistyped"),
            "{err}"
        );
        assert!(
            !d.path().join("mistyped").exists(),
            "{args:?} created the folder"
        );
    }
}

/// An ASN that RIPEstat resolves to no prefix makes every list match nothing for it: `scope
/// --refresh` fails naming it, and `status` lists it and exits 1.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_asn_without_prefixes_is_named_and_fails_status() {
    let server = MockServer::start().await;
    mock_ripestat(
        &server,
        "AS64511",
        r#"{"status":"ok","status_code":200,"data":{"prefixes":[],"resource":"64511"}}"#
            .to_string(),
    )
    .await;
    let d = tempfile::tempdir().unwrap();
    std::fs::write(
        d.path().join("outwatch.toml"),
        format!(
            "[organisation]\nname = \"X\"\nasns = [64511]\n[scope]\nripestat_url = \"{}\"\n[store]\npath = \"data\"\n{}",
            server.uri(),
            feeds_off()
        ),
    )
    .unwrap();
    let dir = d.path().to_path_buf();
    let (scope, status, json) = tokio::task::spawn_blocking(move || {
        (
            cli(&dir).args(["scope", "--refresh"]).output().unwrap(),
            cli(&dir).args(["status"]).output().unwrap(),
            cli(&dir).args(["status", "--json"]).output().unwrap(),
        )
    })
    .await
    .unwrap();
    assert_eq!(scope.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&scope.stderr).contains("AS64511"));
    assert_eq!(status.status.code(), Some(1));
    let text = String::from_utf8_lossy(&status.stdout);
    assert!(
        text.contains("AS64511") && text.contains("no prefixes"),
        "{text}"
    );
    assert_eq!(json.status.code(), Some(1));
    let v: Value = serde_json::from_slice(&json.stdout).unwrap();
    let scope_entry = v["sources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "scope")
        .unwrap();
    assert_eq!(scope_entry["state"], "failing");
}

/// `status` exits 1 while a source fails, and shows its error whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_fails_while_a_source_fails_and_shows_the_whole_error() {
    let server = MockServer::start().await;
    let long = "/mirror/abuse.ch/feodotracker/downloads/a/rather/long/path/to/ipblocklist.csv";
    Mock::given(method("GET"))
        .and(path(long))
        .respond_with(ResponseTemplate::new(503))
        .mount(&server)
        .await;
    let d = tempfile::tempdir().unwrap();
    let off: String = feeds_off().replace(
        "[sources.feodotracker]\nenabled = false\n",
        &format!("[sources.feodotracker]\nurl = \"{}{long}\"\n", server.uri()),
    );
    std::fs::write(
        d.path().join("outwatch.toml"),
        format!("[organisation]\nname = \"X\"\nprefixes = [\"192.0.2.0/24\"]\n[store]\npath = \"data\"\n{off}"),
    )
    .unwrap();
    let dir = d.path().to_path_buf();
    let (fetch, status) = tokio::task::spawn_blocking(move || {
        (
            cli(&dir).args(["fetch"]).output().unwrap(),
            cli(&dir).args(["status"]).output().unwrap(),
        )
    })
    .await
    .unwrap();
    assert_eq!(fetch.status.code(), Some(1));
    assert_eq!(status.status.code(), Some(1));
    let text = String::from_utf8_lossy(&status.stdout);
    assert!(text.contains("FAILING"), "{text}");
    assert!(text.contains(&format!("{}{long}", server.uri())), "{text}");
    assert!(text.contains("503"), "{text}");
}

/// `outwatch export --jsonl | head -1` ends quietly with 0 (issue #11): the export is a read
/// command, so a reader that went away is not a failure. Writing to a file keeps failing loudly.
#[test]
fn closed_stdout_ends_export_quietly() {
    let d = tempfile::tempdir().unwrap();
    let data = d.path().join("data");
    let csv = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/shadowserver/2026-11-20-scan_dns-example-asn.csv");
    let cmd = || {
        let mut c = crate::support::isolated(d.path());
        c.arg("--data-dir").arg(&data);
        c
    };
    let out = cmd()
        .args(["import", "shadowserver"])
        .arg(&csv)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    for _ in 0..3 {
        // The read end is closed before the command starts: its first write fails.
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let out = cmd()
            .args(["export", "--jsonl"])
            .stdout(writer)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!err.contains("panicked"), "{err}");
        assert!(!err.to_lowercase().contains("broken pipe"), "{err}");
        assert_eq!(out.status.code(), Some(0), "{err}");
    }
    // Sanity: with a reader, the export has the findings.
    let out = cmd().args(["export", "--jsonl"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).lines().count() > 0);
}

/// `cli` with HOME and XDG_CONFIG_HOME pointing into `home`, so no real config is found.
fn cli_home(dir: &Path, home: &Path) -> Command {
    let mut c = cli(dir);
    c.env("HOME", home).env_remove("XDG_CONFIG_HOME");
    c
}

#[test]
fn every_command_has_examples_and_global_options_apart() {
    let d = tempfile::tempdir().unwrap();
    for cmd in [
        "check-config",
        "scope",
        "lookup",
        "fetch",
        "import",
        "export",
        "restore",
        "run",
        "status",
        "digest",
        "demo",
        "shadowserver",
        "completions",
        "manpage",
    ] {
        let out = cli(d.path()).args([cmd, "--help"]).output().unwrap();
        assert!(out.status.success(), "{cmd}");
        let help = String::from_utf8_lossy(&out.stdout);
        assert!(help.contains("Examples:"), "{cmd}: {help}");
        assert!(
            help.contains(&format!("outwatch {cmd}")) || cmd == "restore",
            "{cmd}: {help}"
        );
        assert!(help.contains("Global options:"), "{cmd}: {help}");
        // The global options are under their own heading, not the command's.
        let global = help.find("Global options:").unwrap();
        assert!(help.find("--data-dir").unwrap() > global, "{cmd}: {help}");
    }
}

#[test]
fn completions_and_manpage() {
    let d = tempfile::tempdir().unwrap();
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let out = cli(d.path()).args(["completions", shell]).output().unwrap();
        assert!(out.status.success(), "{shell}");
        let s = String::from_utf8_lossy(&out.stdout);
        assert!(
            s.contains("lookup") && s.contains("check-config"),
            "{shell}"
        );
    }
    let out = cli(d.path()).arg("manpage").output().unwrap();
    assert!(out.status.success());
    let s = String::from_utf8_lossy(&out.stdout);
    assert!(s.starts_with(".ie") || s.contains(".TH outwatch"), "{s}");
    assert!(s.contains("lookup"), "{s}");
    let out = cli(d.path())
        .args(["completions", "tcsh"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn config_is_found_where_people_look() {
    let d = tempfile::tempdir().unwrap();
    let home = tempfile::tempdir().unwrap();
    let cfg = "[organisation]\nname = \"X\"\nprefixes = [\"192.0.2.0/24\"]\n";
    // ~/.config/outwatch/outwatch.toml when nothing else is there.
    let user = home.path().join(".config/outwatch");
    std::fs::create_dir_all(&user).unwrap();
    std::fs::write(user.join("outwatch.toml"), cfg).unwrap();
    let out = cli_home(d.path(), home.path())
        .args(["check-config", "--json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        v["config"],
        user.join("outwatch.toml").display().to_string(),
        "{v}"
    );
    // $XDG_CONFIG_HOME wins over ~/.config.
    let xdg = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(xdg.path().join("outwatch")).unwrap();
    std::fs::write(xdg.path().join("outwatch/outwatch.toml"), cfg).unwrap();
    let out = cli_home(d.path(), home.path())
        .env("XDG_CONFIG_HOME", xdg.path())
        .args(["check-config"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(
            &xdg.path()
                .join("outwatch/outwatch.toml")
                .display()
                .to_string()
        ),
        "{text}"
    );
    // ./outwatch.toml wins over both.
    std::fs::write(d.path().join("outwatch.toml"), cfg).unwrap();
    let out = cli_home(d.path(), home.path())
        .args(["check-config"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("config:   outwatch.toml"), "{text}");
    // Nothing anywhere: the error names every place looked at.
    let empty = tempfile::tempdir().unwrap();
    let out = cli_home(empty.path(), empty.path())
        .args(["lookup", "192.0.2.1"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("outwatch.toml")
            && err.contains(".config/outwatch")
            && err.contains("/etc/outwatch"),
        "{err}"
    );
}

#[test]
fn mistakes_are_refused_with_exit_2() {
    let d = tempfile::tempdir().unwrap();
    for q in ["999.1.1.1", "1.2.3"] {
        let out = cli_home(d.path(), d.path())
            .args(["lookup", q])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{q}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("not an IP address"), "{err}");
    }
    let csv = d.path().join("r.csv");
    std::fs::write(&csv, "timestamp,ip\n2026-11-30 00:00:00,192.0.2.1\n").unwrap();
    let out = cli_home(d.path(), d.path())
        .args([
            "--data-dir",
            "data",
            "import",
            "shadowserver",
            "--type",
            "scan_rpd",
        ])
        .arg(&csv)
        .output()
        .unwrap();
    // A report type no table knows is never refused (a new type, or an archive's old one):
    // it is read, and the warning names the closest known type.
    assert_eq!(out.status.code(), Some(0));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("scan_rpd") && err.contains("scan_rdp"),
        "{err}"
    );
    // A config with a mistyped source table, a host-bits prefix and a bad recipient.
    std::fs::write(
        d.path().join("outwatch.toml"),
        "[organisation]\nname = \"X\"\nprefixes = [\"192.0.2.0/24\"]\n\n[sources.hipb]\napi_key_env = \"K\"\n",
    )
    .unwrap();
    let out = cli_home(d.path(), d.path())
        .arg("check-config")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("line 5") && err.contains("sources.hibp"),
        "{err}"
    );
    std::fs::write(
        d.path().join("outwatch.toml"),
        "[organisation]\nname = \"X\"\nprefixes = [\"203.0.113.5/24\"]\n",
    )
    .unwrap();
    let out = cli_home(d.path(), d.path())
        .arg("check-config")
        .output()
        .unwrap();
    assert!(out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("203.0.113.0/24") && err.contains("line 3"),
        "{err}"
    );
}

#[tokio::test]
async fn lookup_for_people_sorts_by_severity_tells_findings_apart_and_covers_an_asn() {
    let server = MockServer::start().await;
    mock_ripestat(
        &server,
        "AS64496",
        fixture("announced-prefixes-AS64496.json"),
    )
    .await;
    let d = tempfile::tempdir().unwrap();
    std::fs::write(
        d.path().join("outwatch.toml"),
        format!(
            "[organisation]\nname = \"Example Org\"\nasns = [64496]\ndomains = [\"example.org\"]\n[scope]\nripestat_url = \"{}\"\n[store]\npath = \"./data\"\n",
            server.uri()
        ),
    )
    .unwrap();
    let dir = d.path().to_path_buf();
    let home = d.path().to_path_buf();
    tokio::task::spawn_blocking(move || {
        cli_home(&dir, &home)
            .args(["scope", "--refresh"])
            .assert()
            .success();
    })
    .await
    .unwrap();
    // Two breaches of one address (low one newer), and a finding inside the ASN's prefix.
    {
        let s = open(&d.path().join("data"));
        let breach = |name: &str, sev: Severity| {
            let mut f = Finding::new(
                "hibp",
                "breacheddomain",
                Classification::new("information-content-security", "data-leak", "hibp"),
                sev,
            );
            f.email = Some("alice@example.org".into());
            f.identity = vec![name.into()];
            f.set_extra("breach", name);
            f.seal();
            f
        };
        s.ingest(
            vec![breach("BigLeak", Severity::Critical)],
            vec![],
            &opts("2026-11-01T08:00:00Z"),
        )
        .unwrap();
        s.ingest(
            vec![
                breach("SmallList", Severity::Low),
                finding("scan_dns", Some("192.0.2.7"), None),
            ],
            vec![],
            &opts("2026-11-20T08:00:00Z"),
        )
        .unwrap();
    }
    let dir = d.path().to_path_buf();
    let home = d.path().to_path_buf();
    let run = move |args: &[&str], env: &[(&str, &str)]| {
        let mut c = cli_home(&dir, &home);
        c.env_remove("NO_COLOR")
            .env_remove("CLICOLOR_FORCE")
            .env("COLUMNS", "80");
        for (k, v) in env {
            c.env(k, v);
        }
        let out = c.args(args).output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let (text, coloured, plain, asn) = tokio::task::spawn_blocking(move || {
        (
            run(&["lookup", "alice@example.org"], &[]),
            run(&["lookup", "alice@example.org"], &[("CLICOLOR_FORCE", "1")]),
            run(
                &["lookup", "alice@example.org"],
                &[("CLICOLOR_FORCE", "1"), ("NO_COLOR", "1")],
            ),
            run(&["lookup", "AS64496", "--json"], &[]),
        )
    })
    .await
    .unwrap();
    // Most severe first although older; each row names its breach; 80 columns; no colour in
    // a pipe unless forced, and NO_COLOR wins.
    let big = text.find("BigLeak").expect(&text);
    let small = text.find("SmallList").expect(&text);
    assert!(big < small, "{text}");
    assert!(
        text.find("critical").unwrap() < text.find("low").unwrap(),
        "{text}"
    );
    assert!(text.lines().all(|l| l.chars().count() <= 80), "{text}");
    assert!(
        text.contains("alice@example.org"),
        "addresses stay whole: {text}"
    );
    assert!(
        !text.contains('\u{1b}') && !plain.contains('\u{1b}'),
        "{plain}"
    );
    assert!(coloured.contains("\u{1b}["), "{coloured}");
    // The ASN includes the findings inside its prefixes.
    let v: Value = serde_json::from_str(&asn).unwrap();
    let ips: Vec<&str> = v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|f| f["ip"].as_str())
        .collect();
    assert!(ips.contains(&"192.0.2.7"), "{v}");
}

#[test]
fn status_json_names_next_runs_without_the_daemon() {
    let d = tempfile::tempdir().unwrap();
    let feeds_off: String = outwatch::sources::lists::BUILTIN
        .iter()
        .filter(|n| **n != "urlhaus")
        .map(|n| format!("[sources.{n}]\nenabled = false\n"))
        .collect();
    std::fs::write(
        d.path().join("outwatch.toml"),
        format!(
            "[organisation]\nname = \"X\"\nprefixes = [\"192.0.2.0/24\"]\n[store]\npath = \"data\"\n\
             [digest]\nschedule = \"0 7 * * 1-5\"\nfrom = \"noc@example.org\"\n\
             recipients = [\"noc@example.org\"]\n\
             [sources.urlhaus]\nschedule = \"30 */6 * * *\"\n{feeds_off}"
        ),
    )
    .unwrap();
    drop(open(&d.path().join("data")));
    let out = cli_home(d.path(), d.path())
        .args(["status", "--json"])
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["digest"]["schedule"], "0 7 * * 1-5", "{v}");
    let next = v["digest"]["next_run"].as_str().expect("digest next_run");
    let next = t(next);
    assert_eq!(next.format("%H:%M").to_string(), "07:00");
    use chrono::Datelike;
    assert!(next.weekday().number_from_monday() <= 5, "{next}");
    let urlhaus = v["sources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "urlhaus")
        .expect("urlhaus listed");
    let n = t(urlhaus["next_run"].as_str().expect("source next_run"));
    assert_eq!(n.format("%M").to_string(), "30");
    assert_eq!(v["daemon"]["running"], false);
}

#[test]
fn a_failing_fetch_is_reported_once() {
    let d = tempfile::tempdir().unwrap();
    let feeds_off: String = outwatch::sources::lists::BUILTIN
        .iter()
        .filter(|n| **n != "urlhaus")
        .map(|n| format!("[sources.{n}]\nenabled = false\n"))
        .collect();
    std::fs::write(
        d.path().join("outwatch.toml"),
        format!(
            "[organisation]\nname = \"X\"\nprefixes = [\"192.0.2.0/24\"]\n[store]\npath = \"data\"\n\
             [sources.urlhaus]\nbase_url = \"http://127.0.0.1:9\"\n{feeds_off}"
        ),
    )
    .unwrap();
    for args in [&["fetch"][..], &["run", "--once"][..]] {
        let out = cli_home(d.path(), d.path()).args(args).output().unwrap();
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let all = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            all.matches("127.0.0.1:9").count(),
            1,
            "{args:?}: the failure once:\n{all}"
        );
    }
}

/// Runs `scripts/module-deps` on `src` (the project's when `None`); `None` without python3.
fn module_deps(src: Option<&Path>) -> Option<(bool, String)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut c = std::process::Command::new("python3");
    c.arg(root.join("scripts/module-deps"));
    if let Some(s) = src {
        c.arg(s);
    }
    let Ok(out) = c.output() else {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "python3 is missing under CI=true"
        );
        eprintln!("skipped: python3 is not available");
        return None;
    };
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    Some((out.status.success(), text))
}

/// Issue #16, #26: no import cycle between modules but `cli` ↔ `commands`, and none between
/// files but the known ones: `scripts/module-deps` (also run by `.ci/run`) says so by its exit
/// code. ARCHITECTURE.md is written from its output.
#[test]
fn modules_have_no_import_cycle() {
    let Some((ok, text)) = module_deps(None) else {
        return;
    };
    assert!(ok, "import cycles:\n{text}");
    assert!(text.contains("\n0 module pairs on a cycle"), "{text}");
    assert!(text.contains("\n0 new file pairs on a cycle"), "{text}");
}

/// The script fails on a new cycle, between modules and between files.
#[test]
fn module_deps_fails_on_a_new_cycle() {
    let d = tempfile::tempdir().unwrap();
    let src = d.path().join("src");
    let write = |rel: &str, body: &str| {
        let p = src.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, body).unwrap();
    };
    write("lib.rs", "pub mod a;\npub mod b;\npub mod m;\n");
    write("a.rs", "pub struct A;\n");
    write("b.rs", "use crate::a::A;\n");
    write("m/mod.rs", "mod x;\nmod y;\n");
    write("m/x.rs", "pub struct X;\n#[cfg(test)]\nuse super::y::Y;\n");
    write("m/y.rs", "pub struct Y(super::x::X);\n");
    let Some((ok, text)) = module_deps(Some(&src)) else {
        return;
    };
    assert!(
        ok,
        "no cycle yet (a test module may reach anywhere):\n{text}"
    );
    // Between modules.
    write("a.rs", "pub struct A(crate::b::B);\n");
    write("b.rs", "use crate::a::A;\npub struct B;\n");
    let (ok, text) = module_deps(Some(&src)).unwrap();
    assert!(!ok && text.contains("  a <-> b"), "{text}");
    write("a.rs", "pub struct A;\n");
    // Between files, through a `use` group.
    write("m/x.rs", "use super::{y::Y};\npub struct X;\n");
    let (ok, text) = module_deps(Some(&src)).unwrap();
    assert!(!ok && text.contains("  m/x <-> m/y"), "{text}");
}

/// The committed proptest regression cases are where proptest reads them: with its default
/// persistence (`SourceParallel("proptest-regressions")`) the cases of
/// `tests/it/properties.rs` are `tests/proptest-regressions/properties.txt` (the folder beside
/// the nearest one holding a `main.rs`), replayed before any new case.
#[test]
fn proptest_reads_the_committed_regression_cases() {
    use proptest::test_runner::{FailurePersistence, FileFailurePersistence};
    let seeds = FileFailurePersistence::default().load_persisted_failures2(Some(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/it/properties.rs"
    )));
    assert!(
        !seeds.is_empty(),
        "no regression case is read for tests/it/properties.rs"
    );
}

/// Issue #26: the modules other targets (the binary, tests, benches) may use are the ones
/// ARCHITECTURE.md names under "Visibility"; every other module is `pub(crate)`, and
/// `#![warn(unreachable_pub)]` keeps the items inside them crate-private.
#[test]
fn the_public_modules_are_the_listed_ones() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut public = std::collections::BTreeSet::new();
    for (rel, text) in src_files() {
        let mut parts: Vec<&str> = rel.trim_end_matches(".rs").split('/').collect();
        if matches!(parts.last(), Some(&("mod" | "lib"))) {
            parts.pop();
        }
        for line in text.lines() {
            let Some(name) = line
                .trim_start()
                .strip_prefix("pub mod ")
                .and_then(|r| r.strip_suffix(';'))
            else {
                continue;
            };
            let mut path = parts.clone();
            path.push(name);
            public.insert(path.join("::"));
        }
    }
    let arch = std::fs::read_to_string(root.join("ARCHITECTURE.md")).unwrap();
    let section = arch
        .split("\n## Visibility")
        .nth(1)
        .and_then(|s| s.split("\n## ").next())
        .expect("ARCHITECTURE.md has a Visibility section");
    // The list is the section's bullet items ("- …" and their indented continuation lines).
    let items: String = section
        .lines()
        .filter(|l| l.starts_with("- ") || l.starts_with("  "))
        .collect::<Vec<_>>()
        .join(" ");
    let listed: std::collections::BTreeSet<String> = items
        .split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect();
    let unlisted: Vec<_> = public.difference(&listed).collect();
    assert!(
        unlisted.is_empty(),
        "public modules not named in ARCHITECTURE.md's Visibility section: {unlisted:?}"
    );
    let private_listed: Vec<_> = listed.difference(&public).collect();
    assert!(
        private_listed.is_empty(),
        "ARCHITECTURE.md names as public modules that are crate-private: {private_listed:?}"
    );
    let lib = std::fs::read_to_string(root.join("src/lib.rs")).unwrap();
    assert!(
        lib.contains("#![warn(unreachable_pub)]"),
        "src/lib.rs keeps unreachable_pub"
    );
}

/// The built-in sources' names are written in `src/finding/source.rs` only (ARCHITECTURE.md,
/// "A source's name is written once"): outside it, and outside tests and comments, no string
/// literal is a source's name. Two literals are not a source: the OpenAPI text's and the flows
/// page's CSV file name.
#[test]
fn a_source_name_is_written_once() {
    use outwatch::finding::SourceId;
    const NOT_A_SOURCE: &[(&str, &str)] = &[("web/api.rs", "flows"), ("web/pages.rs", "flows")];
    let mut found = Vec::new();
    for (rel, text) in src_files() {
        if rel.ends_with("tests.rs") || rel == "finding/source.rs" {
            continue;
        }
        let code = text.split("#[cfg(test)]").next().unwrap_or_default();
        for (n, line) in code.lines().enumerate() {
            if line.trim_start().starts_with("//") {
                continue;
            }
            for s in SourceId::ALL {
                if line.contains(&format!("\"{}\"", s.name()))
                    && !NOT_A_SOURCE.contains(&(rel.as_str(), s.name()))
                {
                    found.push(format!("src/{rel}:{}: {}", n + 1, line.trim()));
                }
            }
        }
    }
    assert!(
        found.is_empty(),
        "source names written as literals (use finding::SourceId): {found:#?}"
    );
}

/// Issue #26: errors stay typed below the command line: no `Result<_, String>` outside
/// `src/cli.rs` and `src/commands/` (a string is where a cause gets lost).
#[test]
fn no_string_errors_below_the_command_line() {
    let mut found = Vec::new();
    for (rel, text) in src_files() {
        if rel == "cli.rs" || rel.starts_with("commands/") {
            continue;
        }
        for (n, line) in text.lines().enumerate() {
            let Some(at) = line.find("Result<") else {
                continue;
            };
            if line[at..].contains(", String>") {
                found.push(format!("src/{rel}:{}: {}", n + 1, line.trim()));
            }
        }
    }
    assert!(found.is_empty(), "string errors:\n{}", found.join("\n"));
}

/// Every `.rs` file under `src/`: its path from there (`/`-separated) and its text.
fn src_files() -> Vec<(String, String)> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    let mut stack = vec![src.clone()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "rs") {
                let rel = p
                    .strip_prefix(&src)
                    .unwrap()
                    .to_string_lossy()
                    .replace('\\', "/");
                files.push((rel, std::fs::read_to_string(&p).unwrap()));
            }
        }
    }
    files
}
