//! `outwatch flows`: connection logs → findings (each kind and its opposite), one finding per
//! day, the `--json` shape, `lookup`, the digest section, the daemon's watch job.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use outwatch::config::Config;
use outwatch::finding::Finding;
use outwatch::flows::analyse::group::Body;
use outwatch::flows::analyse::{Analyser, FlowReport, Settings};
use outwatch::flows::read::read_path;
use outwatch::indicators::{Entry, IndicatorIndex, IndicatorSet};
use outwatch::scope::ScopeMatcher;
use outwatch::store::{IngestOptions, RunOutcome, SledStore, Store};

use crate::backends::Backend;
use crate::support::{cli, feeds_off, fixture_path, stdout_json};

const FLOWS: &str = r#"
[flows]
long_connection = "1h"
top_talker_k = 10
port_mismatch_allow = ["10.1.0.77:ssl:449"]

[[flows.zones]]
name = "dmz"
prefixes = ["10.2.0.0/24"]
outbound = false
allow = ["192.0.2.53:53"]

[[flows.teams]]
name = "accounting"
prefixes = ["10.1.0.0/24"]
"#;

fn two_days() -> PathBuf {
    fixture_path("flows/conn-two-days.log")
}

fn config_text(extra: &str) -> String {
    format!(
        "[organisation]\nname = \"Example Org\"\nprefixes = [\"192.0.2.0/24\"]\n{FLOWS}{extra}\n{}",
        feeds_off()
    )
}

fn config(dir: &Path, extra: &str) -> Config {
    let p = dir.join("outwatch.toml");
    std::fs::write(&p, config_text(extra)).unwrap();
    Config::load(&p, &outwatch::sources::Registry).unwrap()
}

fn c2_index() -> IndicatorIndex {
    IndicatorIndex::build(&[IndicatorSet {
        feed: "threatfox".into(),
        fetched: Utc::now(),
        entries: vec![
            Entry {
                net: "203.0.113.50/32".parse().unwrap(),
                port: Some(443),
                threat: Some("QakBot".into()),
            },
            // Listed on another port: the connections to 203.0.113.91:443 do not match.
            Entry {
                net: "203.0.113.91/32".parse().unwrap(),
                port: Some(8443),
                threat: Some("Other".into()),
            },
        ],
    }])
}

fn analyse(cfg: &Config, index: &IndicatorIndex, files: &[PathBuf]) -> FlowReport {
    let scope = ScopeMatcher::default();
    let mut a = Analyser::new(&Settings::new(&cfg.flows), &scope, index);
    for f in files {
        read_path(f, &mut |c| a.add(c)).unwrap();
    }
    a.finish()
}

fn of<'a>(r: &'a FlowReport, feed: &str, ip: &str) -> Vec<&'a Finding> {
    let ip: IpAddr = ip.parse().unwrap();
    r.findings
        .iter()
        .filter(|f| f.feed == feed && f.ip == Some(ip))
        .collect()
}

#[test]
fn each_kind_comes_out_and_its_opposite_does_not() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), "");
    let r = analyse(&cfg, &c2_index(), &[two_days()]);

    // c2-contact: by address and port, once per day, naming the feed and the threat.
    let c2 = of(&r, "c2-contact", "10.1.0.5");
    assert_eq!(c2.len(), 2, "{c2:#?}");
    assert_eq!(c2[0].extra["feeds"], "threatfox");
    assert_eq!(c2[0].extra["threat"], "QakBot");
    assert_eq!(c2[0].extra["peers"][0]["peer"], "203.0.113.50");
    assert_eq!(c2[0].extra["peers"][0]["ports"], serde_json::json!([443]));
    assert_eq!(c2[0].extra["connections"], 3);
    assert_eq!(c2[0].severity, outwatch::finding::Severity::Critical);
    assert!(
        of(&r, "c2-contact", "10.1.0.9").is_empty(),
        "listed on another port"
    );

    // unexpected-outbound: the DMZ host that starts a connection out; not the one that only
    // answers, nor its allowed resolver.
    let out = of(&r, "unexpected-outbound", "10.2.0.20");
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].extra["peers"][0]["peer"], "203.0.113.66");
    assert_eq!(out[0].extra["peers"][0]["ports"], serde_json::json!([8080]));
    assert_eq!(out[0].extra["zone"], "dmz");
    assert!(of(&r, "unexpected-outbound", "10.2.0.10").is_empty());

    // long-connection: two hours yes, thirty seconds no.
    let long = of(&r, "long-connection", "10.1.0.7");
    assert_eq!(long.len(), 1);
    assert_eq!(long[0].extra["duration"], 7300.5);
    assert!(of(&r, "long-connection", "10.1.0.8").is_empty());

    // port-mismatch: ssl on 449 (one per day, not per connection) and http on 53; ssl on 443
    // and gssapi,smb,krb on 445 are fine.
    let tls449 = of(&r, "port-mismatch", "10.1.0.9");
    assert_eq!(tls449.len(), 2, "{tls449:#?}");
    for f in &tls449 {
        assert_eq!(f.extra["services"][0]["service"], "ssl");
        assert_eq!(f.extra["services"][0]["port"], 449);
        assert_eq!(f.extra["connections"], 20);
    }
    assert_ne!(tls449[0].fingerprint, tls449[1].fingerprint);
    // What `lookup` and the digest show to tell them apart.
    let what = tls449[0].distinguishing();
    assert!(what.contains("ssl on port 449"), "{what}");
    assert!(what.contains("day 2026-11-29"), "{what}");
    assert_eq!(of(&r, "port-mismatch", "10.1.0.10").len(), 1);
    assert!(of(&r, "port-mismatch", "10.1.0.11").is_empty());

    // top-talker: the chatty DNS host by packets, the uploader by packets and by bytes; the
    // quiet ones are not.
    let dns = of(&r, "top-talker", "10.1.0.30");
    assert_eq!(dns.len(), 1, "{dns:#?}");
    assert_eq!(dns[0].extra["talkers"][0]["metric"], "packets");
    assert_eq!(
        dns[0].extra["talkers"][0]["compared_with"],
        "team accounting"
    );
    // One finding for the uploader's day, both metrics inside.
    let up = of(&r, "top-talker", "10.1.0.31");
    assert_eq!(up.len(), 1, "{up:#?}");
    let mut metrics: Vec<&str> = up[0].extra["talkers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["metric"].as_str().unwrap())
        .collect();
    metrics.sort();
    assert_eq!(metrics, ["bytes", "packets"]);
    assert!(of(&r, "top-talker", "10.1.0.20").is_empty());

    let s = &r.summary;
    assert_eq!(s.connections, 552);
    assert_eq!(s.not_ours, 2);
    assert_eq!(s.by_feed["port-mismatch"], 3);
    assert_eq!(s.findings, r.findings.len());
    let dns_top = &s.top_talkers["dns"].by_packets[0];
    assert_eq!(dns_top.ip.to_string(), "10.1.0.30");
    assert_eq!(dns_top.connections, 200);
    assert_eq!(
        s.top_talkers["http"].by_bytes[0].ip.to_string(),
        "10.1.0.31"
    );
}

#[test]
fn allow_lists_silence_their_findings() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), "");
    let mut flows = cfg.flows.clone();
    flows.port_mismatch_allow.push("ssl:449".into());
    flows.zones[0].allow.push("203.0.113.66:8080".into());
    let scope = ScopeMatcher::default();
    let index = IndicatorIndex::default();
    let mut a = Analyser::new(&Settings::new(&flows), &scope, &index);
    read_path(&two_days(), &mut |c| a.add(c)).unwrap();
    let r = a.finish();
    assert!(of(&r, "port-mismatch", "10.1.0.9").is_empty());
    assert_eq!(of(&r, "port-mismatch", "10.1.0.10").len(), 1);
    assert!(of(&r, "unexpected-outbound", "10.2.0.20").is_empty());
    assert!(r.findings.iter().all(|f| f.feed != "c2-contact"));
}

#[test]
fn a_bad_config_names_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("outwatch.toml");
    for (extra, key) in [
        ("[flows]\ntop_talker_k = -1\n", "flows.top_talker_k"),
        (
            "[flows]\nport_mismatch_allow = [\"ssl\"]\n",
            "flows.port_mismatch_allow",
        ),
        (
            "[[flows.zones]]\nname = \"dmz\"\nprefixes = [\"10.2.0.0/24\"]\noutbound = false\nallow = [\"nowhere:x\"]\n",
            "flows.zones.allow",
        ),
        ("[flows]\nunknown = 1\n", "unknown"),
        (
            "[[flows.teams]]\nname = \"t\"\nprefixes = [\"10.0.0.300/8\"]\n",
            "prefixes",
        ),
    ] {
        let text = format!(
            "[organisation]\nprefixes = [\"192.0.2.0/24\"]\n{extra}{}",
            feeds_off()
        );
        std::fs::write(&p, text).unwrap();
        let e = Config::load(&p, &outwatch::sources::Registry)
            .unwrap_err()
            .to_string();
        assert!(e.contains(key), "{extra}: {e}");
    }
}

#[test]
fn cli_json_stores_findings_that_lookup_and_status_show() {
    cli_json_stores_findings_on(Backend::Sled);
}

/// The same on a PostgreSQL store.
#[test]
fn cli_json_stores_findings_that_lookup_and_status_show_on_postgres() {
    if let Some(b) = Backend::postgres() {
        cli_json_stores_findings_on(b);
    }
}

fn cli_json_stores_findings_on(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("outwatch.toml"),
        config_text(&backend.store_table("data")),
    )
    .unwrap();
    let out = cli(dir.path())
        .args(["--data-dir", "data", "flows", "--json"])
        .arg(two_days())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let j = stdout_json(&out);
    for k in [
        "connections",
        "rejected",
        "findings",
        "by_feed",
        "top_talkers",
        "errors",
        "files",
    ] {
        assert!(j.get(k).is_some(), "no `{k}` in {j}");
    }
    assert_eq!(j["connections"], 552);
    assert_eq!(j["rejected"], 1);
    assert_eq!(
        j["errors"][0]["location"]
            .as_str()
            .unwrap()
            .rsplit(':')
            .next(),
        Some("15")
    );
    assert_eq!(j["by_feed"]["unexpected-outbound"], 1);
    assert_eq!(j["by_feed"]["long-connection"], 1);
    assert_eq!(j["by_feed"]["port-mismatch"], 3);
    assert_eq!(j["by_feed"]["top-talker"], 2);
    let top = &j["top_talkers"]["dns"]["by_packets"][0];
    for k in ["ip", "packets", "bytes", "connections"] {
        assert!(top.get(k).is_some(), "{top}");
    }
    assert_eq!(j["files"][0]["format"], "zeek_tsv");
    assert_eq!(j["new"], j["findings"]);

    // A second run of the same file changes no identity.
    let again = cli(dir.path())
        .args(["--data-dir", "data", "flows", "--json"])
        .arg(two_days())
        .output()
        .unwrap();
    let j2 = stdout_json(&again);
    assert_eq!(j2["new"], 0);
    assert_eq!(j2["updated"], j["findings"]);

    let look = cli(dir.path())
        .args(["--data-dir", "data", "lookup", "10.2.0.20", "--json"])
        .output()
        .unwrap();
    assert!(look.status.success());
    let l = stdout_json(&look);
    let feeds: Vec<&str> = l["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["feed"].as_str().unwrap())
        .collect();
    assert_eq!(feeds, ["unexpected-outbound"], "{l}");
    let text = cli(dir.path())
        .args(["--data-dir", "data", "lookup", "10.1.0.9"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.contains("port-mismatch"), "{text}");
    // A private host of the logs is ours by `[flows]`, not "not in your scope".
    assert!(text.contains("inside your [flows] networks"), "{text}");

    let st = cli(dir.path())
        .args(["--data-dir", "data", "status", "--json"])
        .output()
        .unwrap();
    let s = stdout_json(&st);
    let flows = s["sources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "flows")
        .unwrap_or_else(|| panic!("{s}"));
    assert_eq!(flows["last_rows"], 552);
    assert_eq!(s["store"]["backend"], backend.name());
}

#[test]
fn cli_names_an_unreadable_file_reads_the_others_and_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("outwatch.toml"), config_text("")).unwrap();
    let out = cli(dir.path())
        .args(["--data-dir", "data", "flows"])
        .arg(dir.path().join("missing-conn.log"))
        .arg(two_days())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("missing-conn.log"), "{err}");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("552 connection(s)"), "{text}");
    assert!(text.lines().all(|l| l.chars().count() <= 80), "{text}");
}

#[test]
fn digest_has_a_your_own_traffic_section() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(
        dir.path(),
        "[digest]\nfrom = \"outwatch@example.org\"\nrecipients = [\"noc@example.org\"]\n",
    );
    let store = SledStore::open(&dir.path().join("store")).unwrap();
    let mut r = analyse(&cfg, &c2_index(), &[two_days()]);
    // A service name that would be markup if it were not escaped.
    let mut odd = r
        .findings
        .iter()
        .find(|f| f.feed == "port-mismatch")
        .unwrap()
        .clone();
    odd.ip = Some("10.9.9.9".parse().unwrap());
    odd.extra.get_mut("services").unwrap()[0]["service"] = "<script>x</script>".into();
    odd.set_extra("summary", "<script>x</script> on port 1");
    odd.seal();
    r.findings.push(odd);
    let now: DateTime<Utc> = "2026-12-01T07:00:00Z".parse().unwrap();
    for f in &mut r.findings {
        f.in_scope = true;
    }
    store
        .ingest(r.findings.clone(), vec![], &IngestOptions { now })
        .unwrap();
    let p = outwatch::digest::preview(&cfg, &store, now).unwrap();
    let text = &p.rendered.text;
    assert!(text.contains("==== Your own traffic ("), "{text}");
    assert!(text.contains("CRITICAL  c2-contact 10.1.0.5"), "{text}");
    // One line per host and kind: 10.1.0.5's two days of C2 contact are one line, here and
    // in "act on these first".
    assert_eq!(text.matches("c2-contact 10.1.0.5").count(), 1, "{text}");
    assert_eq!(
        text.matches("infected-system: 10.1.0.5").count(),
        1,
        "{text}"
    );
    assert!(
        text.contains("ACT ON THESE FIRST (5 critical or high"),
        "{text}"
    );
    // The text part is wrapped at 78 columns: compare words.
    let words = text.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(
        words.contains("on 2 days (2026-11-29 to 2026-11-30): 203.0.113.50:443, 6 connections"),
        "{text}"
    );
    assert!(words.contains("ssl on port 449"), "{text}");
    let html = &p.rendered.html;
    assert!(html.contains("Your own traffic"));
    assert!(html.contains("&lt;script&gt;"), "not escaped");
    assert!(!html.contains("<script>x"));
}

/// A flows watch over `logs/conn*.log` in a tempdir, with its store and an empty scope.
struct Watch {
    _dir: tempfile::TempDir,
    logs: PathBuf,
    cfg: Config,
    store: std::sync::Arc<dyn outwatch::store::Store>,
    scope: ScopeMatcher,
}

fn watch() -> Watch {
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    std::fs::create_dir(&logs).unwrap();
    let mut cfg = config(dir.path(), "");
    cfg.flows.paths = vec!["logs/conn*.log".into()];
    let store = std::sync::Arc::new(SledStore::open(&dir.path().join("store")).unwrap());
    Watch {
        _dir: dir,
        logs,
        cfg,
        store,
        scope: ScopeMatcher::default(),
    }
}

/// A clock one second later at each reading, so that each run has its own time (the run log
/// is keyed by time).
fn ticking() -> impl Fn() -> DateTime<Utc> {
    let tick = std::sync::atomic::AtomicI64::new(0);
    move || {
        let s = tick.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        "2026-12-01T07:00:00Z".parse::<DateTime<Utc>>().unwrap() + chrono::Duration::seconds(s)
    }
}

#[test]
fn the_watch_job_reads_new_and_grown_files_once_without_doubling() {
    let Watch {
        _dir,
        logs,
        mut cfg,
        store,
        scope,
    } = watch();
    let t = &ticking();

    // Nothing there yet: no new lines.
    let r = outwatch::flows::watch::run_once(&cfg, &store, &scope, t).unwrap();
    assert!(r.contains("no new lines"));

    let full = std::fs::read_to_string(two_days()).unwrap();
    let lines: Vec<&str> = full.lines().collect();
    let half = lines.len() / 2;
    std::fs::write(logs.join("conn.log"), lines[..half].join("\n") + "\n").unwrap();
    outwatch::flows::watch::run_once(&cfg, &store, &scope, t).unwrap();
    let r = outwatch::flows::watch::run_once(&cfg, &store, &scope, t).unwrap();
    assert!(r.contains("no new lines"));
    let runs = store.runs(Some("flows"), 10).unwrap();
    assert_eq!(runs[0].outcome, RunOutcome::NotModified);
    assert_eq!(runs[1].outcome, RunOutcome::Ok);

    // The file grows to the whole two days: read on from where the last run stopped; the
    // counts add up to the whole file's, nothing counted twice.
    std::fs::write(logs.join("conn.log"), &full).unwrap();
    outwatch::flows::watch::run_once(&cfg, &store, &scope, t).unwrap();
    let found = store
        .query(
            &outwatch::store::Query::Ip("10.1.0.9".parse().unwrap()),
            &outwatch::store::QueryOptions::default(),
        )
        .unwrap();
    let mism: Vec<&Finding> = found.iter().filter(|f| f.feed == "port-mismatch").collect();
    assert_eq!(mism.len(), 2);
    assert!(
        mism.iter().all(|f| f.extra["connections"] == 20),
        "{mism:#?}"
    );

    // A path that names a missing file is a failed run.
    cfg.flows.paths.push("logs/current/conn.log".into());
    let r = outwatch::flows::watch::run_once(&cfg, &store, &scope, t);
    assert!(r.unwrap_err().to_string().contains("could not be read"));
    assert_eq!(
        store.runs(Some("flows"), 1).unwrap()[0].outcome,
        RunOutcome::Error
    );
}

/// Hourly files of one day, and a live log whose last line is still being written: every line
/// is read once, and a day's finding sums what every run read of it, as one run over the
/// whole log would have counted.
#[test]
fn the_watch_job_sums_a_day_over_rotated_files_and_waits_for_a_whole_line() {
    let Watch {
        _dir,
        logs,
        cfg,
        store,
        scope,
    } = watch();
    let t = &ticking();
    let full = std::fs::read_to_string(two_days()).unwrap();
    let (header, data): (Vec<&str>, Vec<&str>) = full
        .lines()
        .filter(|l| !l.starts_with("#close"))
        .partition(|l| l.starts_with('#'));
    let header = header.join("\n") + "\n";
    // Every third line to each file, so a finding's connections lie in all three.
    let part = |k: usize| -> Vec<&str> { data.iter().skip(k).step_by(3).copied().collect() };
    let run = || outwatch::flows::watch::run_once(&cfg, &store, &scope, t).unwrap();
    // Hour 1, then hour 2 in its own file.
    std::fs::write(
        logs.join("conn.01.log"),
        header.clone() + &part(0).join("\n") + "\n",
    )
    .unwrap();
    run();
    std::fs::write(
        logs.join("conn.02.log"),
        header.clone() + &part(1).join("\n") + "\n",
    )
    .unwrap();
    run();
    // The live log: its last line is half written, so it waits for the next run.
    let rest = part(2);
    let (last, before) = rest.split_last().unwrap();
    let (cut_a, cut_b) = last.split_at(last.len() / 2);
    let live = logs.join("conn.log");
    std::fs::write(&live, header.clone() + &before.join("\n") + "\n" + cut_a).unwrap();
    run();
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&live)
        .unwrap();
    std::io::Write::write_all(&mut f, format!("{cut_b}\n").as_bytes()).unwrap();
    drop(f);
    run();
    assert!(run().contains("no new lines"));
    let runs = store.runs(Some("flows"), 20).unwrap();
    // The fixture's one malformed line, and no half-written line.
    let rejected: usize = runs.iter().map(|r| r.rejected).sum();
    assert_eq!(rejected, 1, "{runs:#?}");
    let read: usize = runs.iter().map(|r| r.fetched).sum();

    // One run over the whole log counts the same.
    let whole = analyse(&cfg, &IndicatorIndex::default(), &[two_days()]);
    assert_eq!(read, 552, "every connection read once");
    let mut stored = std::collections::HashMap::new();
    store
        .for_each(&mut |f| {
            stored.insert(f.fingerprint.clone(), f);
            Ok(())
        })
        .unwrap();
    let mut compared = 0;
    for f in whole.findings.iter().filter(|f| f.feed != "top-talker") {
        let s = &stored[&f.compute_fingerprint()];
        for k in [
            "connections",
            "packets",
            "bytes",
            "first",
            "last",
            "duration",
        ] {
            assert_eq!(s.extra[k], f.extra[k], "{k} of {} {:?}", f.feed, f.ip);
        }
        // The peers (services) merged across the runs are those of the one run, with the
        // same counts, first and last times.
        let (a, b) = (Body::of(s).unwrap(), Body::of(f).unwrap());
        let peers = |b: &Body| {
            let mut v: Vec<_> = b
                .peers
                .iter()
                .map(|p| (p.peer, p.counts.connections, p.counts.first, p.counts.last))
                .collect();
            v.sort();
            v
        };
        assert_eq!(peers(&a), peers(&b), "{} {:?}", f.feed, f.ip);
        assert_eq!(a.services, b.services, "{} {:?}", f.feed, f.ip);
        assert_eq!((a.distinct, a.more), (b.distinct, b.more));
        compared += 1;
    }
    assert!(compared >= 5, "{compared}");
}

mod properties {
    use super::*;
    use outwatch::flows::config::{MismatchAllow, PeerAllow};
    use outwatch::flows::{Conn, Proto};
    use proptest::prelude::*;

    fn ip() -> impl Strategy<Value = IpAddr> {
        prop_oneof![
            any::<u32>().prop_map(|v| IpAddr::from(std::net::Ipv4Addr::from(v))),
            (0u32..512).prop_map(|v| IpAddr::from(std::net::Ipv4Addr::from(0x0a01_0000 + v))),
            any::<u128>().prop_map(|v| IpAddr::from(std::net::Ipv6Addr::from(v))),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

        /// The allow-list grammars refuse or accept anything without panicking.
        #[test]
        fn allow_entries_never_panic(s in "\\PC{0,40}", t in "[0-9a-f:./\\[\\]*]{0,40}") {
            let _ = s.parse::<PeerAllow>();
            let _ = t.parse::<PeerAllow>();
            let _ = s.parse::<MismatchAllow>();
            let _ = t.parse::<MismatchAllow>();
        }

        /// Any connections, however odd their values, give findings without a panic.
        #[test]
        fn any_connections_are_analysed(
            conns in proptest::collection::vec(
                (any::<i64>(), ip(), ip(), any::<Option<u16>>(), any::<Option<u64>>(),
                 any::<Option<u64>>(), prop_oneof![Just(None), Just(Some("ssl")),
                 Just(Some("gssapi,smb,krb")), Just(Some("")), Just(Some("<x>,,"))]),
                0..60)
        ) {
            let flows = outwatch::flows::config::FlowsConfig::default();
            let scope = ScopeMatcher::default();
            let index = IndicatorIndex::default();
            let mut a = Analyser::new(&Settings::new(&flows), &scope, &index);
            for (ts, o, r, port, dur, pk, svc) in &conns {
                a.add(&Conn {
                    ts_us: *ts, orig: *o, orig_port: None, resp: *r, resp_port: *port,
                    proto: Proto::Tcp, service: *svc, duration_us: *dur, orig_pkts: *pk,
                    resp_pkts: *pk, orig_bytes: *pk, resp_bytes: *dur, conn_state: None,
                });
            }
            let r = a.finish();
            prop_assert_eq!(r.summary.connections as usize, conns.len());
            prop_assert_eq!(r.summary.findings, r.findings.len());
            // One finding per host, kind and day, its every connection counted once: the
            // listed peers' and the rest's.
            let mut seen = std::collections::HashSet::new();
            for f in &r.findings {
                prop_assert!(seen.insert((f.ip, f.feed.clone(), f.identity.clone())));
                let b = Body::of(f).unwrap();
                if f.feed != "top-talker" {
                    let listed: u64 = b.peers.iter().map(|p| p.counts.connections).sum::<u64>()
                        + b.services.iter().map(|s| s.counts.connections).sum::<u64>();
                    prop_assert_eq!(listed + b.more_connections, b.counts.connections);
                }
                // Merging a reading into itself doubles the counts and keeps the peers.
                let mut twice = b.clone();
                let kind = outwatch::flows::analyse::rules::Kind::from_feed(&f.feed).unwrap();
                twice.merge(&b, kind);
                if kind != outwatch::flows::analyse::rules::Kind::TopTalker {
                    prop_assert_eq!(twice.counts.connections, 2 * b.counts.connections);
                }
                prop_assert_eq!(twice.distinct, b.distinct);
            }
        }
    }
}

#[tokio::test]
async fn run_has_a_flows_job_that_reads_the_paths() {
    use outwatch::clock::{Clock, ManualClock};
    use outwatch::daemon::tasks::Shared;
    use std::sync::Arc;
    let d = tempfile::tempdir().unwrap();
    std::fs::create_dir(d.path().join("logs")).unwrap();
    std::fs::copy(two_days(), d.path().join("logs/conn.log")).unwrap();
    let p = d.path().join("outwatch.toml");
    std::fs::write(
        &p,
        config_text("").replacen(
            "[flows]\n",
            "[flows]\npaths = [\"logs/conn.*\"]\nschedule = \"0 */5 * * * *\"\n",
            1,
        ),
    )
    .unwrap();
    let cfg = Config::load(&p, &outwatch::sources::Registry).unwrap();
    assert_eq!(cfg.flows.paths, ["logs/conn.*"]);
    let clock: Arc<dyn Clock> = Arc::new(ManualClock::new(
        "2026-12-01T07:00:00Z".parse::<DateTime<Utc>>().unwrap(),
    ));
    let store: Arc<dyn Store> = Arc::new(outwatch::store::open(&d.path().join("data")).unwrap());
    let shared = Shared {
        cfg: Arc::new(cfg),
        store: store.clone(),
        http: outwatch::http::HttpClient::new(&Default::default(), clock.clone()).unwrap(),
        clock,
        scope: Default::default(),
        data_dir: d.path().join("data"),
    };
    let jobs = outwatch::daemon::jobs(&shared);
    let job = jobs
        .iter()
        .find(|j| j.name == "flows")
        .expect("a flows job");
    assert_eq!(job.schedule.source, "0 */5 * * * *");
    assert!(job.catch_up, "never ran: runs at start");
    let line = job.task.run(None).await.unwrap();
    assert!(line.contains("1 file(s), 552 connection(s)"), "{line}");
    let runs = store.runs(Some("flows"), 5).unwrap();
    assert_eq!(runs[0].outcome, RunOutcome::Ok);
    // Every list feed is off: the peers were checked against no C2 list, which is no
    // all-clear.
    let health = outwatch::health::assess(&shared.cfg, store.as_ref(), shared.clock.now()).unwrap();
    let h = health.iter().find(|h| h.name == "flows").unwrap();
    assert_eq!(
        h.state,
        outwatch::health::HealthState::Degraded,
        "{:?}",
        h.warnings
    );
    assert!(
        h.warnings[0].starts_with("checked against 0 lists"),
        "{:?}",
        h.warnings
    );
}

/// The whole path a user takes: a recorded ThreatFox export on loopback names two of the
/// log's peers as C2 (one by address and port, one TrickBot's TLS on 449); `fetch` keeps the
/// list's indicator set; `flows` finds the contacts, and `lookup` of our host shows them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fetched_c2_list_makes_c2_contacts_that_lookup_shows() {
    use wiremock::matchers::{method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/export/csv/recent/"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_bytes(crate::support::fixture("flows/threatfox-recent.csv")),
        )
        .mount(&server)
        .await;
    let dir = tempfile::tempdir().unwrap();
    let text = config_text("").replace(
        "[sources.threatfox]\nenabled = false\n",
        &format!("[sources.threatfox]\nbase_url = \"{}\"\n", server.uri()),
    );
    std::fs::write(dir.path().join("outwatch.toml"), text).unwrap();
    let d = dir.path().to_path_buf();
    let run = move |args: Vec<String>| {
        let d = d.clone();
        tokio::task::spawn_blocking(move || {
            cli(&d)
                .args(["--data-dir", "data"])
                .args(args)
                .output()
                .unwrap()
        })
    };
    let out = run(vec!["fetch".into(), "--source".into(), "threatfox".into()])
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = run(vec![
        "flows".into(),
        "--json".into(),
        two_days().display().to_string(),
    ])
    .await
    .unwrap();
    let j = stdout_json(&out);
    // 10.1.0.5 → 203.0.113.50:443 on both days; 10.1.0.9 → 203.0.113.90:449 (TrickBot).
    assert!(j["by_feed"]["c2-contact"].as_u64().unwrap() >= 3, "{j}");
    // It says what it checked against, and lists the findings.
    assert_eq!(
        j["checked_against"],
        serde_json::json!(["threatfox"]),
        "{j}"
    );
    assert_eq!(j["notices"], serde_json::json!([]));
    let items = j["items"].as_array().unwrap();
    assert_eq!(items.len() as u64, j["findings"].as_u64().unwrap());
    let c2 = items
        .iter()
        .find(|i| i["kind"] == "c2-contact" && i["host"] == "10.1.0.9")
        .unwrap_or_else(|| panic!("{j}"));
    assert_eq!(c2["severity"], "critical");
    assert_eq!(c2["peers"][0]["peer"], "203.0.113.90");
    assert_eq!(c2["peers"][0]["listed"][0]["feed"], "threatfox");
    assert!(c2["day"].as_str().unwrap().starts_with("2026-11-"), "{c2}");
    // The text names the host and its listed peer.
    let out = run(vec!["flows".into(), two_days().display().to_string()])
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("c2-contact (critical): "), "{text}");
    assert!(
        text.lines()
            .any(|l| l.starts_with("    10.1.0.9 ") && l.contains("203.0.113.90:449")),
        "{text}"
    );
    assert!(
        text.contains("peers checked against 1 C2 list(s): threatfox"),
        "{text}"
    );
    let st = run(vec!["status".into(), "--json".into()]).await.unwrap();
    let st = stdout_json(&st);
    let flows = st["sources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "flows")
        .unwrap_or_else(|| panic!("{st}"));
    assert_eq!(flows["state"], "ok", "{flows}");
    for (host, peer, threat) in [
        ("10.1.0.5", "203.0.113.50", "QakBot"),
        ("10.1.0.9", "203.0.113.90", "TrickBot"),
    ] {
        let out = run(vec!["lookup".into(), host.into(), "--json".into()])
            .await
            .unwrap();
        let j = stdout_json(&out);
        let c2: Vec<&serde_json::Value> = j["findings"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|f| f["feed"] == "c2-contact")
            .collect();
        assert!(!c2.is_empty(), "{host}: {j}");
        assert_eq!(c2[0]["extra"]["peers"][0]["peer"], peer);
        assert_eq!(c2[0]["extra"]["feeds"], "threatfox");
        assert!(
            c2[0]["extra"]["threat"]
                .as_str()
                .unwrap()
                .contains(&threat.to_ascii_lowercase()),
            "{}",
            c2[0]["extra"]
        );
        assert_eq!(c2[0]["severity"], "critical");
    }
    // Not listed on that port: 203.0.113.91:443 is no C2 contact.
    let out = run(vec![
        "lookup".into(),
        "203.0.113.91".into(),
        "--json".into(),
    ])
    .await
    .unwrap();
    assert_eq!(stdout_json(&out)["listed_by"], serde_json::json!([]));
}

/// `run --once` (system cron) reads `[flows] paths` too, after the lists and before the digest.
#[test]
fn run_once_reads_the_flows_paths() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("logs")).unwrap();
    std::fs::copy(two_days(), dir.path().join("logs/conn.log")).unwrap();
    let text = config_text("").replace("[flows]\n", "[flows]\npaths = [\"logs/conn*.log\"]\n");
    std::fs::write(dir.path().join("outwatch.toml"), text).unwrap();
    let out = cli(dir.path())
        .args(["--data-dir", "data", "run", "--once"])
        .output()
        .unwrap();
    let said =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{said}");
    assert!(
        said.contains("flows: 1 file(s), 552 connection(s)"),
        "{said}"
    );
    let look = cli(dir.path())
        .args(["--data-dir", "data", "lookup", "10.2.0.20", "--json"])
        .output()
        .unwrap();
    let feeds: Vec<String> = stdout_json(&look)["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["feed"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(feeds, ["unexpected-outbound"]);
}
