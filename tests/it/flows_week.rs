//! `outwatch flows` an analyst can work: one finding per (host, kind, UTC day) with its peers
//! inside, on the real Zeek sample and on a generated week of infected traffic; the command
//! says what it checked against and names the hosts and peers; what is not a log file is
//! refused.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use chrono::Utc;
use outwatch::finding::{Finding, Severity};
use outwatch::flows::analyse::group::{Body, MAX_LISTED};
use outwatch::flows::analyse::{Analyser, FlowReport, Settings};
use outwatch::flows::config::FlowsConfig;
use outwatch::flows::read::read_path;
use outwatch::flows::sample::week;
use outwatch::indicators::{Entry, IndicatorIndex, IndicatorSet};
use outwatch::scope::ScopeMatcher;

use crate::support::{cli, feeds_off, stdout_json};

fn analyse(index: &IndicatorIndex, file: &Path) -> FlowReport {
    let flows = FlowsConfig::default();
    let scope = ScopeMatcher::default();
    let mut a = Analyser::new(&Settings::new(&flows), &scope, index);
    read_path(file, &mut |c| a.add(c)).unwrap();
    a.finish()
}

fn listed(feed: &str, hosts: impl IntoIterator<Item = std::net::Ipv4Addr>) -> IndicatorSet {
    IndicatorSet {
        feed: feed.into(),
        fetched: Utc::now(),
        entries: hosts
            .into_iter()
            .map(|h| Entry {
                net: IpAddr::from(h).into(),
                port: None,
                threat: Some(feed.to_uppercase()),
            })
            .collect(),
    }
}

fn day(f: &Finding) -> String {
    f.identity
        .iter()
        .find_map(|i| i.strip_prefix("day "))
        .unwrap_or_else(|| panic!("no day in {:?}", f.identity))
        .to_string()
}

/// At most one finding per (host, kind, day): returns them by that key.
fn one_per_host_kind_day(r: &FlowReport) -> HashMap<(IpAddr, String, String), &Finding> {
    let mut seen = HashMap::new();
    for f in &r.findings {
        let key = (f.ip.unwrap(), f.feed.clone(), day(f));
        assert!(
            seen.insert(key.clone(), f).is_none(),
            "two findings for {key:?}"
        );
        assert_eq!(
            f.identity.len(),
            1,
            "the day is the identity: {:?}",
            f.identity
        );
    }
    seen
}

#[test]
fn the_real_zeek_sample_gives_one_finding_per_host_kind_and_day() {
    let Some(dir) = crate::support::samples("zeek") else {
        return;
    };
    let index = IndicatorIndex::build(&[listed(
        "feodotracker",
        ["59.53.91.102", "213.155.29.144", "212.252.32.20"].map(|a| a.parse().unwrap()),
    )]);
    let r = analyse(&index, &dir.join("infected-host-2010-conn.log"));
    let by = one_per_host_kind_day(&r);
    let host: IpAddr = "192.168.23.129".parse().unwrap();
    let c2 = by[&(host, "c2-contact".to_string(), "2010-03-16".to_string())];
    let b = Body::of(c2).unwrap();
    // Three listed peers, the busiest first: 59.53.91.102 on 80 (7 connections) and 137.
    assert_eq!(b.distinct, 3);
    assert_eq!(b.peers[0].peer.to_string(), "59.53.91.102");
    assert_eq!(b.peers[0].counts.connections, 7);
    assert_eq!(b.peers[0].ports, [80, 137]);
    assert_eq!(b.counts.connections, 9);
    assert_eq!(c2.severity, Severity::Critical);
    assert_eq!(r.findings.len(), 1, "{:#?}", r.findings);
}

fn week_file(dir: &Path) -> PathBuf {
    let p = dir.join("conn.log");
    let mut f = std::io::BufWriter::new(std::fs::File::create(&p).unwrap());
    week::infected_week(&mut f, 7).unwrap();
    std::io::Write::flush(&mut f).unwrap();
    p
}

fn week_index() -> IndicatorIndex {
    IndicatorIndex::build(&[
        listed("feodotracker", (0..week::C2_A).map(week::c2_a)),
        listed("threatfox", (0..week::C2_B).map(week::c2_b)),
    ])
}

#[test]
fn a_week_of_infected_traffic_gives_one_finding_per_host_kind_and_day() {
    let dir = tempfile::tempdir().unwrap();
    let r = analyse(&week_index(), &week_file(dir.path()));
    let by = one_per_host_kind_day(&r);
    let a = IpAddr::from(week::HOST_A);
    let b = IpAddr::from(week::HOST_B);
    let days: Vec<String> = (23..30).map(|d| format!("2026-11-{d}")).collect();
    for d in &days {
        let key = |h, k: &str| (h, k.to_string(), d.clone());
        // A: 25 servers a day, the 20 busiest listed, the rest counted.
        let c2 = by[&key(a, "c2-contact")];
        assert_eq!(c2.severity, Severity::Critical);
        let body = Body::of(c2).unwrap();
        assert_eq!(body.distinct, 25, "{d}");
        assert_eq!(body.peers.len(), MAX_LISTED);
        assert_eq!(body.more, 5);
        let listed: u64 = body.peers.iter().map(|p| p.counts.connections).sum();
        assert_eq!(listed + body.more_connections, body.counts.connections);
        assert_eq!(
            body.counts.connections, 101,
            "100 calls and the long session"
        );
        assert_eq!(body.feeds.as_deref(), Some("feodotracker"));
        let first = &body.peers[0];
        assert!(first.counts.first <= first.counts.last);
        assert!(!first.ports.is_empty() && first.host_port.is_some());
        // Its HTTP on 7080, and its two-hour session.
        let pm = Body::of(by[&key(a, "port-mismatch")]).unwrap();
        assert_eq!(pm.services.len(), 1, "{:?}", pm.services);
        assert_eq!(
            (pm.services[0].service.as_str(), pm.services[0].port),
            ("http", 7080)
        );
        let long = Body::of(by[&key(a, "long-connection")]).unwrap();
        assert_eq!(long.counts.duration, 7200.0);
        // B: its 12 servers, TLS on 447 and 449 and HTTP on 8082 in one finding.
        let c2 = Body::of(by[&key(b, "c2-contact")]).unwrap();
        assert_eq!((c2.distinct, c2.more), (12, 0));
        assert_eq!(c2.feeds.as_deref(), Some("threatfox"));
        let pm = Body::of(by[&key(b, "port-mismatch")]).unwrap();
        let mut got: Vec<(String, u16)> = pm
            .services
            .iter()
            .map(|s| (s.service.clone(), s.port))
            .collect();
        got.sort();
        assert_eq!(
            got,
            [
                ("http".into(), 8082),
                ("ssl".into(), 447),
                ("ssl".into(), 449)
            ]
        );
    }
    // The domain's own services (ldap_tcp, krb_tcp, dce_rpc, gssapi,smb,ntlm ...) fit their
    // ports: no other host has a port mismatch.
    for f in r.findings.iter().filter(|f| f.feed == "port-mismatch") {
        assert!(f.ip == Some(a) || f.ip == Some(b), "{f:#?}");
    }
    // 7 days × (A: c2, mismatch, long; B: c2, mismatch), and a few top talkers: not the
    // hundreds of one-per-peer findings.
    let not_talkers = r.findings.iter().filter(|f| f.feed != "top-talker").count();
    assert_eq!(not_talkers, 7 * 5, "{:?}", r.summary.by_feed);
    assert!(
        r.findings.len() <= 7 * 5 + 2 * 7 * 2,
        "{:?}",
        r.summary.by_feed
    );
}

fn config(dir: &Path, extra: &str) {
    std::fs::write(
        dir.join("outwatch.toml"),
        format!(
            "[organisation]\nname = \"Example Org\"\nprefixes = [\"192.0.2.0/24\"]\n{extra}\n{}",
            feeds_off()
        ),
    )
    .unwrap();
}

#[test]
fn without_a_c2_list_flows_warns_and_status_is_degraded_and_the_text_names_hosts_and_peers() {
    let dir = tempfile::tempdir().unwrap();
    config(dir.path(), "");
    let log = week_file(dir.path());
    let out = cli(dir.path())
        .args(["--data-dir", "data", "flows"])
        .arg(&log)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("warning: checked against 0 lists"), "{err}");
    // Per kind, the busiest hosts and what they talked to, within 80 columns.
    assert!(
        text.contains("port-mismatch (high): 14 finding(s)"),
        "{text}"
    );
    assert!(
        text.contains(
            "    10.1.0.77       7 days, 378 connections: ssl on port 447, ssl on port 449"
        ),
        "{text}"
    );
    assert!(
        text.contains("    10.1.0.66       7 days, 140 connections: http on port 7080"),
        "{text}"
    );
    assert!(
        text.contains("long-connection (medium): 7 finding(s)"),
        "{text}"
    );
    assert!(
        text.contains("    10.1.0.66       7 days, 7 connections, longest 2h: 198.51.100."),
        "{text}"
    );
    assert!(text.lines().all(|l| l.chars().count() <= 80), "{text}");

    let out = cli(dir.path())
        .args(["--data-dir", "data", "flows", "--json"])
        .arg(&log)
        .output()
        .unwrap();
    let j = stdout_json(&out);
    assert_eq!(j["checked_against"], serde_json::json!([]));
    assert!(
        j["notices"][0]
            .as_str()
            .unwrap()
            .starts_with("checked against 0 lists"),
        "{j}"
    );
    let items = j["items"].as_array().unwrap();
    assert_eq!(items.len() as u64, j["findings"].as_u64().unwrap());
    assert!(
        items
            .iter()
            .all(|i| i["day"].is_string() && i["host"].is_string())
    );

    let st = cli(dir.path())
        .args(["--data-dir", "data", "status", "--json"])
        .output()
        .unwrap();
    assert_eq!(st.status.code(), Some(1), "never an all-clear");
    let s = stdout_json(&st);
    let flows = s["sources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "flows")
        .unwrap_or_else(|| panic!("{s}"));
    assert_eq!(flows["state"], "degraded", "{flows}");
    assert!(
        flows["warnings"][0]
            .as_str()
            .unwrap()
            .starts_with("checked against 0 lists"),
        "{flows}"
    );
    let st = cli(dir.path())
        .args(["--data-dir", "data", "status"])
        .output()
        .unwrap();
    let t = String::from_utf8_lossy(&st.stdout);
    assert!(
        t.contains("DEGRADED") && t.contains("checked against 0 lists"),
        "{t}"
    );
}

/// Runs `outwatch flows PATH` with a deadline: a command that never ends fails the test
/// instead of hanging it.
fn flows_with_deadline(dir: &Path, path: &Path) -> std::process::Output {
    let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("outwatch"))
        .current_dir(dir)
        .env_remove("OUTWATCH_CONFIG")
        .env_remove("OUTWATCH_DATA_DIR")
        .args(["--data-dir", "data", "flows"])
        .arg(path)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let t = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if t.elapsed() > Duration::from_secs(20) {
            child.kill().unwrap();
            panic!("outwatch flows {} did not end", path.display());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

#[test]
fn what_is_not_a_log_file_is_refused_with_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    config(dir.path(), "");
    let fifo = dir.path().join("conn.fifo");
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    let only_folders = dir.path().join("logs");
    std::fs::create_dir_all(only_folders.join("2026-11-30")).unwrap();
    for (path, says) in [
        (
            PathBuf::from("/dev/zero"),
            "not a log file but a character device",
        ),
        (fifo.clone(), "not a log file but a FIFO"),
        (only_folders.clone(), "no log file in this folder"),
    ] {
        let out = flows_with_deadline(dir.path(), &path);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{}: {err}", path.display());
        assert!(err.contains(says), "{}: {err}", path.display());
    }
    // Nothing was run: no store was even made.
    assert!(!dir.path().join("data").exists());
    // The reader refuses them too, without waiting for a writer.
    let e = read_path(&fifo, &mut |_| {}).unwrap_err().to_string();
    assert!(e.contains("FIFO"), "{e}");
}
