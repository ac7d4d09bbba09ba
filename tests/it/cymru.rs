//! Team Cymru CAP: the daily files of both format generations, fetched with HTTP basic auth
//! from a local mock (one unit per day) and imported with `outwatch import cymru`.

use std::sync::Arc;

use crate::keyed_support::*;
use base64::Engine;
use outwatch::finding::Severity;
use outwatch::sources::SourceKind;
use outwatch::sources::{Source, cymru};
use outwatch::store::{Query, RunOutcome};
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const USER: &str = "example-cert";

fn basic() -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{KEY}"))
    )
}

fn build(server: &MockServer) -> Arc<dyn Source> {
    let cfg = config(&format!(
        "[sources.cymru]\nurl = \"{}/cap/{USER}/{USER}_{{date}}.txt\"\nusername = \"{USER}\"\n\
         password = \"{KEY}\"\n",
        server.uri()
    ));
    SourceKind::build(
        outwatch::sources::table::<cymru::CymruConfig>(&cfg).unwrap(),
        &cfg,
    )
    .unwrap()
}

fn text(rel: &str) -> ResponseTemplate {
    ResponseTemplate::new(200)
        .insert_header("content-type", "text/plain")
        .set_body_bytes(fixture(rel))
}

/// The clock says 2026-11-23: yesterday's file is _20261122, the day before's _20261121.
async fn mount_days(server: &MockServer) {
    for (day, file) in [
        ("20261122", "cymru/cap_20261122.txt"),
        ("20261121", "cymru/infected_20261121.txt"),
    ] {
        Mock::given(method("GET"))
            .and(path(format!("/cap/{USER}/{USER}_{day}.txt")))
            .and(header("authorization", basic().as_str()))
            .respond_with(text(file))
            .mount(server)
            .await;
    }
}

#[tokio::test]
async fn both_formats_fetched_with_basic_auth() {
    let server = MockServer::start().await;
    mount_days(&server).await;
    let e = env();
    let r = e.runner.run_source(build(&server).as_ref()).await;
    assert!(r.ok, "{:?} {:?}", r.error, r.errors);
    // 15 + 5 rows; the one with a bad address is rejected, every other row kept (an unknown
    // category included), 20 - 1 findings, all in 192.0.2.0/24.
    assert_eq!((r.fetched, r.rejected, r.new, r.in_scope), (20, 1, 19, 19));
    // Warnings: the unknown category, the broken host name.
    assert_eq!(r.warnings, 2, "{r:?}");
    let s = e.store.as_ref();
    let ip = |a: &str| query(s, Query::Ip(a.parse().unwrap()));
    let bots = ip("192.0.2.21");
    assert_eq!(bots.len(), 2);
    let niv = bots
        .iter()
        .find(|f| f.classification.identifier == "nivdort")
        .unwrap();
    assert_eq!(niv.source, "cymru");
    assert_eq!(niv.feed, "bot");
    assert_eq!(niv.classification.taxonomy, "malicious-code");
    assert_eq!(niv.classification.kind, "infected-system");
    assert_eq!(niv.protocol.as_deref(), Some("tcp"));
    assert_eq!(niv.extra["dst_ip"], "198.51.100.22");
    assert_eq!(niv.extra["dst_port"], "80");
    assert_eq!(niv.extra["as_name"], "Example AS Name");
    assert_eq!(niv.extra["cc"], "NL");
    assert_eq!(niv.asn, Some(64496));
    assert_eq!(niv.severity, Severity::High);
    assert_eq!(
        niv.time_source.unwrap().to_rfc3339(),
        "2026-11-22T03:44:22+00:00"
    );
    let one = |a: &str| ip(a).into_iter().next().unwrap();
    let kinds = [
        ("192.0.2.22", "intrusion-attempts", "brute-force", "ssh"),
        ("192.0.2.23", "malicious-code", "c2-server", "http_post"),
        ("192.0.2.24", "information-gathering", "scanner", "darknet"),
        ("192.0.2.25", "information-gathering", "scanner", "honeypot"),
        ("192.0.2.26", "fraud", "phishing", "phishing"),
        (
            "192.0.2.27",
            "vulnerable",
            "vulnerable-system",
            "open-proxy",
        ),
        (
            "192.0.2.28",
            "vulnerable",
            "vulnerable-system",
            "dns-open-resolver",
        ),
        ("192.0.2.29", "information-gathering", "scanner", "scanner"),
        ("192.0.2.30", "abusive-content", "spam", "spam"),
        (
            "192.0.2.31",
            "malicious-code",
            "infected-system",
            "conficker",
        ),
        ("192.0.2.32", "other", "other", "cryptominer"),
        ("192.0.2.40", "intrusion-attempts", "brute-force", "ssh"),
        (
            "192.0.2.41",
            "vulnerable",
            "vulnerable-system",
            "dns-open-resolver",
        ),
        (
            "192.0.2.42",
            "vulnerable",
            "vulnerable-system",
            "open-proxy",
        ),
        (
            "192.0.2.43",
            "malicious-code",
            "infected-system",
            "conficker",
        ),
        (
            "192.0.2.44",
            "malicious-code",
            "infected-system",
            "malwareexample",
        ),
    ];
    for (a, tax, kind, id) in kinds {
        let f = one(a);
        assert_eq!(
            (
                f.classification.taxonomy.as_str(),
                f.classification.kind.as_str(),
                f.classification.identifier.as_str()
            ),
            (tax, kind, id),
            "{a}"
        );
    }
    assert_eq!(one("192.0.2.23").domain.as_deref(), Some("www.example.org"));
    assert_eq!(
        one("192.0.2.26").url.as_deref(),
        Some("http://shop.example.org/login/")
    );
    assert_eq!(one("192.0.2.27").port, Some(3128));
    assert_eq!(one("192.0.2.27").extra["proxy_type"], "http");
    assert_eq!(one("192.0.2.42").port, Some(8080));
    assert_eq!(one("192.0.2.25").extra["src_port"], "53488");
    assert_eq!(one("192.0.2.25").extra["dst_port"], "445");
    assert_eq!(one("192.0.2.32").extra["pool"], "pool.example.net");
    // A broken host name is kept as written, and costs nothing else.
    let bad = one("192.0.2.33");
    assert_eq!(bad.domain, None);
    assert_eq!(bad.extra["hostname"], "sub.example.orgport: 80");
    // The older format: ASN 0 is none, the comment after the address is kept.
    let old = one("192.0.2.44");
    assert_eq!(old.asn, None);
    assert_eq!(old.extra["dst_ip"], "198.51.100.22");
    assert_eq!(old.extra["comment"], "Some Botnet");
    assert_eq!(old.extra["src_port"], "1337");
}

#[tokio::test]
async fn a_refused_account_names_the_setting_and_never_the_password() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(
            ResponseTemplate::new(401)
                .set_body_string(format!("bad credentials {KEY} / {}", basic())),
        )
        .mount(&server)
        .await;
    let e = env();
    let r = e.runner.run_source(build(&server).as_ref()).await;
    assert!(!r.ok);
    let shown = format!("{r:?}");
    assert!(shown.contains("sources.cymru"), "{shown}");
    assert!(!shown.contains(KEY), "{shown}");
    assert!(!shown.contains(&basic()[6..]), "{shown}");
}

#[tokio::test]
async fn one_missing_day_is_a_failed_unit_and_the_other_is_kept() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(format!("/cap/{USER}/{USER}_20261122.txt")))
        .respond_with(text("cymru/cap_20261122.txt"))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(404))
        .mount(&server)
        .await;
    let e = env();
    let r = e.runner.run_source(build(&server).as_ref()).await;
    assert_eq!(r.outcome, RunOutcome::Partial);
    assert_eq!(r.errors.len(), 1);
    assert!(
        r.errors[0].unit.ends_with("_20261121.txt"),
        "{:?}",
        r.errors
    );
    assert_eq!(r.new, 14);
}

#[test]
fn plain_http_to_another_host_is_refused() {
    let cfg = config(
        "[sources.cymru]\nurl = \"http://127.0.0.1:9/x_{date}.txt\"\nusername = \"u\"\npassword = \"p4ssw0rd-cap\"\n",
    );
    assert!(
        SourceKind::build(
            outwatch::sources::table::<cymru::CymruConfig>(&cfg).unwrap(),
            &cfg
        )
        .is_ok()
    );
    let e = outwatch::config::Config::parse(
        "[sources.cymru]\nurl = \"http://cap.example.net/x.txt\"\nusername = \"u\"\npassword = \"p4ssw0rd-cap\"\n",
        std::path::Path::new("outwatch.toml"),
        &outwatch::sources::Registry,
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("sources.cymru.url"), "{e}");
}

#[test]
fn import_reads_both_generations() {
    let dir = tempfile::tempdir().unwrap();
    let out = cli(dir.path())
        .args(["--data-dir", "data", "import", "cymru", "--json"])
        .arg(fixture_path("cymru/cap_20261122.txt"))
        .arg(fixture_path("cymru/infected_20261121.txt"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v = stdout_json(&out);
    assert_eq!(v["source"], "cymru");
    assert_eq!(v["files"], 2);
    assert_eq!(v["records"], 20);
    assert_eq!(v["findings"], 19);
    assert_eq!(v["rejected"], 1);
    assert_eq!(v["warnings"], 2);
    assert!(
        v["warning_details"]
            .as_array()
            .unwrap()
            .iter()
            .any(|w| w["message"].as_str().unwrap().contains("cryptominer"))
    );
}

#[test]
fn samples_every_category_is_known_and_no_row_is_lost() {
    let Some(s) = samples("cymru") else { return };
    for name in ["cap_certname_20190327.txt", "cap_infected_20171031.txt"] {
        let b = std::fs::read(s.join(name)).unwrap();
        let p = cymru::parse(&b, name);
        assert!(p.rows > 0, "{name}");
        assert_eq!(p.findings.len(), p.rows, "{name}: {:?}", p.rejected);
        assert!(
            p.unknown_categories.is_empty(),
            "{name}: {:?}",
            p.unknown_categories
        );
        assert!(p.findings.iter().all(|f| f.classification.kind != "other"));
    }
}

/// Through the CLI: neither the password nor the basic-auth token shows in check-config, a
/// refused fetch (which echoes both) or status.
#[tokio::test(flavor = "multi_thread")]
async fn no_output_shows_the_password() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(
            ResponseTemplate::new(401).set_body_string(format!("refused: {KEY} {}", basic())),
        )
        .mount(&server)
        .await;
    let dir = tempfile::tempdir().unwrap();
    let off: String =
        outwatch::sources::lists::known_feed_names(&outwatch::config::Config::default())
            .iter()
            .map(|n| format!("[sources.{n}]\nenabled = false\n"))
            .collect();
    std::fs::write(
        dir.path().join("outwatch.toml"),
        format!(
            "[organisation]\nprefixes = [\"192.0.2.0/24\"]\n[store]\npath = \"data\"\n\
             [sources.cymru]\nurl = \"{}/cap/{USER}_{{date}}.txt\"\nusername = \"{USER}\"\n\
             password = \"{KEY}\"\n{off}",
            server.uri()
        ),
    )
    .unwrap();
    let d = dir.path().to_path_buf();
    let outs = tokio::task::spawn_blocking(move || {
        [
            cli(&d).arg("check-config").output().unwrap(),
            cli(&d)
                .args(["fetch", "--source", "cymru", "--json"])
                .output()
                .unwrap(),
            cli(&d)
                .args(["fetch", "--source", "cymru"])
                .output()
                .unwrap(),
            cli(&d).arg("status").output().unwrap(),
            cli(&d).args(["status", "--json"]).output().unwrap(),
        ]
    })
    .await
    .unwrap();
    let token = &basic()[6..];
    for o in &outs {
        let all = format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        assert!(!all.contains(KEY) && !all.contains(token), "{all}");
    }
    assert_eq!(outs[1].status.code(), Some(1), "the refused fetch fails");
    let all = String::from_utf8_lossy(&outs[1].stdout);
    assert!(all.contains("sources.cymru"), "{all}");
}

/// A CAP line is its own event: the same category and address at another time, with another
/// destination address or port, or another IP protocol is another finding; the same line
/// twice (a day's file fetched again) is one.
#[test]
fn every_distinct_line_is_a_finding_of_its_own() {
    let body = std::fs::read(fixture_path("cymru/cap_repeats_20261123.txt")).unwrap();
    let p = cymru::parse(&body, "cap_repeats_20261123.txt");
    assert_eq!((p.rows, p.findings.len(), p.rejected.len()), (11, 11, 0));
    let mut fps: Vec<String> = p.findings.iter().map(|f| f.compute_fingerprint()).collect();
    fps.sort();
    fps.dedup();
    assert_eq!(fps.len(), 10, "only the repeated line is one with another");
    let darknet: Vec<&Vec<String>> = p
        .findings
        .iter()
        .filter(|f| f.feed == "darknet")
        .map(|f| &f.identity)
        .collect();
    assert_eq!(
        darknet,
        [
            &vec![
                "time=2026-11-23T17:24:06Z".to_string(),
                "dst_port=23, 2323".into()
            ],
            &vec![
                "time=2026-11-23T17:24:06Z".to_string(),
                "dst_port=23".into()
            ],
            &vec![
                "time=2026-11-23T09:22:10Z".to_string(),
                "ip_protocol=47".into()
            ],
            &vec![
                "time=2026-11-23T09:22:10Z".to_string(),
                "ip_protocol=11".into()
            ],
        ]
    );

    // Through the store: ten findings for the one address.
    let dir = tempfile::tempdir().unwrap();
    let out = cli(dir.path())
        .args(["--data-dir", "data", "import", "cymru", "--json"])
        .arg(fixture_path("cymru/cap_repeats_20261123.txt"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = cli(dir.path())
        .args(["--data-dir", "data", "lookup", "192.0.2.21", "--json"])
        .output()
        .unwrap();
    let v = stdout_json(&out);
    assert_eq!(v["findings"].as_array().unwrap().len(), 10, "{v}");
}
