//! Google Safe Browsing: v4 threatMatches:find and v5 urls:search against a local mock serving
//! Google's real reply shapes, the verdict cache, errors, and the alert-mail importer.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use crate::keyed_support::*;
use outwatch::finding::Severity;
use outwatch::sources::SourceKind;
use outwatch::sources::safebrowsing::{self, alerts};
use outwatch::store::Query;
use serde_json::Value;
use wiremock::matchers::{method, path, query_param};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

fn sb_config(server: &MockServer, extra: &str) -> outwatch::config::Config {
    config(&format!(
        "[organisation]\ndomains = [\"example.org\"]\n[sources.safebrowsing]\napi_key = \"{KEY}\"\nbase_url = \"{}\"\nurls = [\"http://192.0.2.80/download/setup.exe\"]\n{extra}\n",
        server.uri()
    ))
}

fn build(cfg: &outwatch::config::Config) -> Arc<dyn outwatch::sources::Source> {
    SourceKind::build(
        outwatch::sources::table::<safebrowsing::SafeBrowsingConfig>(cfg).unwrap(),
        cfg,
    )
    .unwrap()
}

/// Answers like Google: only the matches of `v4-matches.json` whose URL was asked for.
fn v4_responder(
    calls: Arc<AtomicUsize>,
    max_batch: usize,
) -> impl Fn(&Request) -> ResponseTemplate + Send + Sync {
    move |req: &Request| {
        calls.fetch_add(1, Ordering::SeqCst);
        let body: Value = serde_json::from_slice(&req.body).unwrap();
        let asked: Vec<String> = body["threatInfo"]["threatEntries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["url"].as_str().unwrap().to_string())
            .collect();
        assert!(asked.len() <= max_batch, "batch of {}", asked.len());
        assert_eq!(body["threatInfo"]["threatEntryTypes"][0], "URL");
        let all: Value = serde_json::from_slice(&fixture("safebrowsing/v4-matches.json")).unwrap();
        let matches: Vec<Value> = all["matches"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|m| asked.iter().any(|a| *a == m["threat"]["url"]))
            .cloned()
            .collect();
        let out = if matches.is_empty() {
            "{}\n".to_string()
        } else {
            serde_json::to_string_pretty(&serde_json::json!({ "matches": matches })).unwrap()
        };
        ResponseTemplate::new(200)
            .insert_header("content-type", "application/json; charset=UTF-8")
            .set_body_string(out)
    }
}

#[tokio::test]
async fn v4_matches_become_findings_in_batches_and_are_cached() {
    let server = MockServer::start().await;
    let calls = Arc::new(AtomicUsize::new(0));
    Mock::given(method("POST"))
        .and(path("/v4/threatMatches:find"))
        .and(query_param("key", KEY))
        .respond_with(v4_responder(calls.clone(), 2))
        .mount(&server)
        .await;
    let e = env();
    let cfg = sb_config(&server, "batch_size = 2");
    let src = build(&cfg);
    let r = e.runner.run_source(src.as_ref()).await;
    assert!(r.ok, "{:?}", r.error);
    // http://example.org/, https://example.org/ and the configured URL: two batches.
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    assert_eq!((r.fetched, r.new, r.in_scope), (3, 2, 2));

    let dom = query(e.store.as_ref(), Query::Domain("example.org".into()));
    assert_eq!(dom.len(), 1);
    let f = &dom[0];
    assert_eq!(f.source, "safebrowsing");
    assert_eq!(f.url.as_deref(), Some("https://example.org/"));
    assert_eq!(f.classification.kind, "phishing");
    assert_eq!(f.classification.taxonomy, "fraud");
    assert_eq!(f.severity, Severity::High);
    assert_eq!(f.extra["threat_type"], "SOCIAL_ENGINEERING");
    assert_eq!(f.extra["platform_type"], "ANY_PLATFORM");
    let ip = query(e.store.as_ref(), Query::Ip("192.0.2.80".parse().unwrap()));
    assert_eq!(ip[0].extra["threat_type"], "MALWARE");
    assert_eq!(
        ip[0].extra["threat_metadata"]["malware_threat_type"],
        "landing"
    );
    assert_eq!(ip[0].classification.kind, "malware-distribution");

    // Within cacheDuration (300 s) the listed URLs are not asked again but still reported;
    // the clean one is asked again.
    e.clock.advance(chrono::Duration::seconds(60));
    let r = e.runner.run_source(src.as_ref()).await;
    assert!(r.ok, "{:?}", r.error);
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    assert_eq!((r.new, r.updated), (0, 2));
    let f = &query(e.store.as_ref(), Query::Domain("example.org".into()))[0];
    assert_eq!(f.times_seen, 2);
    assert_eq!(f.extra["from_cache"], true);

    // After it expires everything is asked again.
    e.clock.advance(chrono::Duration::seconds(600));
    let r = e.runner.run_source(src.as_ref()).await;
    assert!(r.ok);
    assert_eq!(calls.load(Ordering::SeqCst), 5);
}

/// Beyond the home pages: every open URL another source reported on our domains or addresses
/// (a URLhaus URL on our domain, a Shadowserver `http_url` on our address) is checked, in
/// batches within the limit; a URL elsewhere is not.
#[tokio::test]
async fn reported_urls_on_our_domains_and_addresses_are_checked_too() {
    use outwatch::finding::{Classification, Finding};
    use outwatch::store::IngestOptions;
    let server = MockServer::start().await;
    let calls = Arc::new(AtomicUsize::new(0));
    Mock::given(method("POST"))
        .and(path("/v4/threatMatches:find"))
        .and(query_param("key", KEY))
        .respond_with(v4_responder(calls.clone(), 2))
        .mount(&server)
        .await;
    let e = env();
    let mk = |source: &str, url: Option<&str>, ip: &str| {
        let mut f = Finding::new(
            source,
            "x",
            Classification::new("", "malware-distribution", "x"),
            Severity::High,
        );
        f.url = url.map(str::to_string);
        f.ip = Some(ip.parse().unwrap());
        f
    };
    let ours = mk(
        "urlhaus_asn",
        Some("http://shop.example.org/wp-content/uploads/inv.exe"),
        "192.0.2.81",
    );
    let mut scan = mk("shadowserver", None, "192.0.2.82");
    scan.set_extra("http_url", "http://192.0.2.82:8080/admin/");
    let foreign = mk(
        "urlhaus",
        Some("http://evil.example.net/a.exe"),
        "203.0.113.9",
    );
    e.store
        .ingest(
            vec![ours, scan, foreign],
            vec![],
            &IngestOptions {
                now: t("2026-11-22T06:00:00Z"),
            },
        )
        .unwrap();
    let cfg = sb_config(&server, "batch_size = 2");
    let r = e.runner.run_source(build(&cfg).as_ref()).await;
    assert!(r.ok, "{:?}", r.error);
    let asked = asked_v4(&server).await;
    assert_eq!(
        asked,
        vec![
            "http://192.0.2.80/download/setup.exe",
            "http://192.0.2.82:8080/admin/",
            "http://example.org/",
            "http://shop.example.org/wp-content/uploads/inv.exe",
            "https://example.org/",
        ]
    );
    assert_eq!(calls.load(Ordering::SeqCst), 3, "5 URLs in batches of 2");
    assert_eq!(r.fetched, 5);
    // Switched off: only the home pages and the configured URLs.
    let cfg = sb_config(&server, "batch_size = 2\nreported_urls = false");
    let before = calls.load(Ordering::SeqCst);
    e.clock.advance(chrono::Duration::hours(1));
    let r = e.runner.run_source(build(&cfg).as_ref()).await;
    assert!(r.ok, "{:?}", r.error);
    assert_eq!(r.fetched, 3);
    assert!(calls.load(Ordering::SeqCst) - before <= 2);
}

#[tokio::test]
async fn empty_reply_is_clean() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v4/threatMatches:find"))
        .respond_with(
            ResponseTemplate::new(200).set_body_bytes(fixture("safebrowsing/v4-clean.json")),
        )
        .expect(1)
        .mount(&server)
        .await;
    let e = env();
    let src = build(&sb_config(&server, ""));
    let r = e.runner.run_source(src.as_ref()).await;
    assert!(r.ok, "{:?}", r.error);
    assert_eq!((r.fetched, r.new), (3, 0));
    assert_eq!(e.store.count().unwrap(), 0);
}

#[tokio::test]
async fn rejected_key_is_an_auth_error_and_the_key_is_scrubbed() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v4/threatMatches:find"))
        .respond_with(
            ResponseTemplate::new(403)
                .insert_header("content-type", "application/json; charset=UTF-8")
                .set_body_bytes(fixture("safebrowsing/error-403.json")),
        )
        .mount(&server)
        .await;
    let e = env();
    let src = build(&sb_config(&server, ""));
    let r = e.runner.run_source(src.as_ref()).await;
    let err = r.error.unwrap();
    assert!(err.contains("403") && err.contains("api_key"), "{err}");
    assert!(!err.contains(KEY), "{err}");
    assert_eq!(e.store.count().unwrap(), 0);

    // 401, and transport errors that print the URL, are scrubbed too.
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(401).set_body_string(format!("bad key {KEY}")))
        .mount(&server)
        .await;
    let r = e
        .runner
        .run_source(build(&sb_config(&server, "")).as_ref())
        .await;
    let err = r.error.unwrap();
    assert!(err.contains("401") && !err.contains(KEY), "{err}");
    let dead = config(&format!(
        "[organisation]\ndomains = [\"example.org\"]\n[sources.safebrowsing]\napi_key = \"{KEY}\"\nbase_url = \"http://127.0.0.1:9\"\n"
    ));
    let r = e.runner.run_source(build(&dead).as_ref()).await;
    let err = r.error.unwrap();
    assert!(
        err.contains("***redacted***") && !err.contains(KEY),
        "{err}"
    );
}

#[tokio::test]
async fn rate_limit_waits_for_retry_after_then_retries() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v4/threatMatches:find"))
        .respond_with(ResponseTemplate::new(429).insert_header("retry-after", "5").set_body_string(
            r#"{"error":{"code":429,"message":"Quota exceeded","status":"RESOURCE_EXHAUSTED"}}"#,
        ))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/v4/threatMatches:find"))
        .respond_with(v4_responder(Arc::new(AtomicUsize::new(0)), 500))
        .mount(&server)
        .await;
    let e = env();
    let src = build(&sb_config(&server, ""));
    let r = e.runner.run_source(src.as_ref()).await;
    assert!(r.ok, "{:?}", r.error);
    assert_eq!(r.new, 2);
    assert_eq!(e.clock.slept(), vec![Duration::from_secs(5)]);
}

#[tokio::test]
async fn malformed_and_error_bodies_fail_and_leave_the_store_alone() {
    let e = env();
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(v4_responder(Arc::new(AtomicUsize::new(0)), 500))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(200).set_body_string(r#"{"matches": [{"threatType": 7"#),
        )
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(200).set_body_bytes(fixture("safebrowsing/error-200.json")),
        )
        .mount(&server)
        .await;
    let src = build(&sb_config(&server, ""));
    assert!(e.runner.run_source(src.as_ref()).await.ok);
    let before = all_findings(e.store.as_ref());
    e.clock.advance(chrono::Duration::hours(1));
    let r = e.runner.run_source(src.as_ref()).await;
    assert!(r.error.unwrap().contains("not JSON"));
    let r = e.runner.run_source(src.as_ref()).await;
    let err = r.error.unwrap();
    assert!(err.contains("INVALID_ARGUMENT"), "{err}");
    assert_eq!(all_findings(e.store.as_ref()), before);
}

#[tokio::test]
async fn v5_urls_search() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v5/urls:search"))
        .and(query_param("key", KEY))
        .and(query_param("urls", "https://example.org/"))
        .and(query_param("urls", "http://example.org/"))
        .respond_with(
            ResponseTemplate::new(200).set_body_bytes(fixture("safebrowsing/v5-threats.json")),
        )
        .expect(1)
        .mount(&server)
        .await;
    let e = env();
    let src = build(&sb_config(&server, "api = \"v5\""));
    let r = e.runner.run_source(src.as_ref()).await;
    assert!(r.ok, "{:?}", r.error);
    assert_eq!(r.new, 2);
    let fs = query(e.store.as_ref(), Query::Domain("example.org".into()));
    let types: std::collections::BTreeSet<_> = fs
        .iter()
        .map(|f| f.extra["threat_type"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        types,
        ["MALWARE", "SOCIAL_ENGINEERING"].map(String::from).into()
    );
    assert!(fs.iter().all(|f| f.extra["api"] == "v5"));
    // v5 caches every queried URL: a second run within 300 s asks nothing (expect(1) above).
    e.clock.advance(chrono::Duration::seconds(30));
    let r = e.runner.run_source(src.as_ref()).await;
    assert!(r.ok);
    assert_eq!(r.updated, 2);
}

#[test]
fn bad_settings_are_config_errors() {
    let c = config(&format!(
        "[organisation]\ndomains = [\"example.org\"]\n[sources.safebrowsing]\napi_key = \"{KEY}\"\napi = \"v3\"\n"
    ));
    let e = SourceKind::build(
        outwatch::sources::table::<safebrowsing::SafeBrowsingConfig>(&c).unwrap(),
        &c,
    )
    .err()
    .unwrap();
    assert!(e.to_string().contains("v4"), "{e}");
    let c = config(&format!(
        "[organisation]\ndomains = [\"example.org\"]\n[sources.safebrowsing]\napi_key = \"{KEY}\"\napi = \"v5\"\nbatch_size = 51\n"
    ));
    assert!(
        SourceKind::build(
            outwatch::sources::table::<safebrowsing::SafeBrowsingConfig>(&c).unwrap(),
            &c
        )
        .is_err()
    );
}

// ---------- import safebrowsing ----------

#[test]
fn import_reads_a_folder_of_alert_mails_without_config() {
    let d = tempfile::tempdir().unwrap();
    let out = cli(d.path())
        .args(["--data-dir", "data", "import", "safebrowsing", "--json"])
        .arg(fixture_path("safebrowsing/alerts"))
        .assert()
        .success()
        .get_output()
        .clone();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["files"], 2);
    assert_eq!(v["records"], 6);
    // `ip="not-an-ip"` beside a URL with a host: the finding stays, the value in extra.
    assert_eq!(v["findings"], 6);
    assert_eq!(v["rejected"], 0);
    assert_eq!(v["warnings"], 1);
    let w = &v["warning_details"][0];
    assert!(
        w["location"]
            .as_str()
            .unwrap()
            .contains("alert-2026-11-20.eml"),
        "{w}"
    );
    assert!(w["message"].as_str().unwrap().contains("not-an-ip"), "{w}");
    let lookup = |q: &str| -> Value {
        let out = cli(d.path())
            .args(["--data-dir", "data", "lookup", q, "--json"])
            .assert()
            .success()
            .get_output()
            .clone();
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let v = lookup("192.0.2.80");
    let fs = v["findings"].as_array().unwrap();
    assert_eq!(fs.len(), 2);
    assert!(
        fs.iter()
            .all(|f| f["feed"] == "alerts"
                && f["classification"]["type"] == "application-compromise")
    );
    let v = lookup("192.0.2.81");
    assert_eq!(v["findings"][0]["classification"]["type"], "phishing");
    assert_eq!(
        v["findings"][0]["url"],
        "http://192.0.2.81:8080/secure/login.html"
    );
    // IPv6 host written without brackets, and an IPv6 ip attribute.
    let v = lookup("2001:db8:1:5::10");
    assert_eq!(v["findings"][0]["extra"]["list_type"], 2);
    let v = lookup("files.example.org");
    assert_eq!(v["findings"][0]["ip"], Value::Null);
    assert_eq!(v["findings"][0]["extra"]["ip"], "not-an-ip");
    let v = lookup("cdn.example.org");
    assert_eq!(v["findings"][0]["ip"], "2001:db8:1:5::20");
    assert_eq!(v["findings"][0]["time_source"], "2026-11-21T00:00:00Z");

    // Not an alert: exit 1 with a reason.
    let out = cli(d.path())
        .args(["--data-dir", "data", "import", "safebrowsing"])
        .arg(fixture_path("safebrowsing/not-an-alert.eml"))
        .assert()
        .code(1)
        .get_output()
        .clone();
    assert!(String::from_utf8_lossy(&out.stderr).contains("notification_message"));
}

// ---------- conformance with the shared samples (skipped when absent) ----------

#[tokio::test]
async fn shared_samples_parse() {
    let Some(dir) = samples("safebrowsing") else {
        return;
    };
    for (name, ip) in [
        ("alert-ipv4.eml", "10.0.2.23"),
        ("alert-ipv6.eml", "fdf1:cb9d:f59e:19b0:ff3:567:0:30"),
    ] {
        let raw = std::fs::read(dir.join(name)).unwrap();
        let mail = outwatch::mail::parse(&raw).unwrap();
        let xml = mail.bodies().find_map(alerts::extract_xml).unwrap();
        let p = alerts::parse_xml(xml, name, mail.date).unwrap();
        assert_eq!(
            (p.records, p.findings.len(), p.rejected.len()),
            (5, 5, 0),
            "{name}"
        );
        assert_eq!(p.findings[0].ip.unwrap().to_string(), ip);
        assert!(
            p.findings[4].ip.is_some(),
            "{name}: host of an IP-literal URL"
        );
    }
    // The documented v4 reply, replayed by the mock.
    let sample: Value =
        serde_json::from_slice(&std::fs::read(dir.join("v4-threatmatches-find.json")).unwrap())
            .unwrap();
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(sample["response"].clone()))
        .mount(&server)
        .await;
    let cfg = config(&format!(
        "[sources.safebrowsing]\napi_key = \"{KEY}\"\nbase_url = \"{}\"\nurls = [\"http://www.urltocheck1.org/\", \"http://www.urltocheck2.org/\", \"http://www.urltocheck3.com/\"]\n",
        server.uri()
    ));
    let e = env();
    let r = e.runner.run_source(build(&cfg).as_ref()).await;
    assert!(r.ok, "{:?}", r.error);
    assert_eq!(r.new, 2);
}

#[tokio::test]
async fn v4_default_batches_hold_at_most_500_entries() {
    let server = MockServer::start().await;
    let calls = Arc::new(AtomicUsize::new(0));
    Mock::given(method("POST"))
        .and(path("/v4/threatMatches:find"))
        .respond_with(v4_responder(calls.clone(), 500))
        .mount(&server)
        .await;
    let urls: Vec<String> = (0..700)
        .map(|i| format!("\"https://example.org/page/{i}\""))
        .collect();
    let cfg = config(&format!(
        "[organisation]\ndomains = [\"example.org\"]\n[sources.safebrowsing]\napi_key = \"{KEY}\"\nbase_url = \"{}\"\nurls = [{}]\n",
        server.uri(),
        urls.join(", ")
    ));
    let e = env();
    let r = e.runner.run_source(build(&cfg).as_ref()).await;
    assert!(r.ok, "{:?}", r.error);
    assert_eq!(r.fetched, 702);
    assert_eq!(
        calls.load(Ordering::SeqCst),
        2,
        "702 URLs in batches of 500"
    );
    assert_eq!(r.new, 1, "https://example.org/ is listed");
}

/// The reported URLs are bounded while the store is read: the first `max` in sorted order,
/// whatever the store holds.
#[tokio::test]
async fn reported_urls_keep_the_first_max_in_order() {
    use outwatch::finding::{Classification, Finding};
    use outwatch::scope::{ScopeMatcher, ScopeSnapshot};
    use outwatch::sources::StateView;
    use outwatch::store::IngestOptions;
    let e = env();
    let findings: Vec<Finding> = (0..40)
        .rev()
        .map(|i| {
            let mut f = Finding::new(
                "urlhaus",
                "x",
                Classification::new("", "malware-distribution", "x"),
                Severity::High,
            );
            f.url = Some(format!("http://example.org/f{i:02}.exe"));
            f.ip = Some(format!("192.0.2.{}", i + 1).parse().unwrap());
            f
        })
        .collect();
    e.store
        .ingest(findings, vec![], &IngestOptions { now: t(NOW) })
        .unwrap();
    let snap = ScopeSnapshot {
        asns: vec![],
        prefixes: vec![],
        domains: vec!["example.org".into()],
        emails: vec![],
    };
    let got = StateView::new(e.store.clone())
        .reported_urls(
            "safebrowsing",
            std::sync::Arc::new(ScopeMatcher::new(&snap)),
            3,
        )
        .await
        .unwrap();
    let got: Vec<&str> = got.iter().map(|r| r.url.as_str()).collect();
    assert_eq!(
        got,
        vec![
            "http://example.org/f00.exe",
            "http://example.org/f01.exe",
            "http://example.org/f02.exe"
        ]
    );
}

/// Every URL the v4 requests to `server` asked about, sorted.
async fn asked_v4(server: &MockServer) -> Vec<String> {
    let mut asked: Vec<String> = server
        .received_requests()
        .await
        .unwrap()
        .iter()
        .flat_map(|req| {
            let body: Value = serde_json::from_slice(&req.body).unwrap();
            body["threatInfo"]["threatEntries"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["url"].as_str().unwrap().to_string())
                .collect::<Vec<_>>()
        })
        .collect();
    asked.sort();
    asked
}

/// Findings of other sources about our addresses: a customer's shop hosted at 192.0.2.90
/// under a name of its own (a compromised website), a phishing page at 192.0.2.120; an
/// infected host of ours at 192.0.2.77 calling a sinkholed C2 URL; a URL hosted elsewhere.
fn store_hosted_urls(e: &Env) {
    use outwatch::finding::{Classification, Finding};
    use outwatch::store::IngestOptions;
    let mk = |source: &str, kind: &str, url: &str, ip: &str| {
        let mut f = Finding::new(
            source,
            "x",
            Classification::new("", kind, "x"),
            Severity::High,
        );
        f.url = Some(url.to_string());
        f.ip = Some(ip.parse().unwrap());
        f
    };
    let findings = vec![
        mk(
            "shadowserver",
            "system-compromise",
            "http://shop.example.net/login/index.html",
            "192.0.2.90",
        ),
        mk(
            "shadowserver",
            "phishing",
            "https://pay.example.com/",
            "192.0.2.120",
        ),
        mk(
            "shadowserver",
            "infected-system",
            "http://gtr.example-c2.com/in.php",
            "192.0.2.77",
        ),
        mk(
            "urlhaus_asn",
            "malware-distribution",
            "http://elsewhere.example.com/a.exe",
            "203.0.113.5",
        ),
    ];
    e.store
        .ingest(
            findings,
            vec![],
            &IngestOptions {
                now: t("2026-11-22T06:00:00Z"),
            },
        )
        .unwrap();
}

/// A URL reported on one of our addresses under a name that is not ours is checked, and a
/// listed one becomes a finding about that address; a URL our infected host asked for (the
/// sinkhole's) and one hosted elsewhere are not checked. v4 (`threatMatches:find`).
#[tokio::test]
async fn urls_hosted_on_our_addresses_are_checked_v4() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v4/threatMatches:find"))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("content-type", "application/json; charset=UTF-8")
                .set_body_bytes(fixture("safebrowsing/v4-matches-hosted.json")),
        )
        .mount(&server)
        .await;
    let e = env();
    store_hosted_urls(&e);
    let r = e
        .runner
        .run_source(build(&sb_config(&server, "")).as_ref())
        .await;
    assert!(r.ok, "{:?}", r.error);
    let asked = asked_v4(&server).await;
    assert_eq!(
        asked,
        [
            "http://192.0.2.80/download/setup.exe",
            "http://example.org/",
            "http://shop.example.net/login/index.html",
            "https://example.org/",
            "https://pay.example.com/",
        ]
    );
    let f = query(e.store.as_ref(), Query::Ip("192.0.2.90".parse().unwrap()));
    let f: Vec<_> = f.iter().filter(|f| f.source == "safebrowsing").collect();
    assert_eq!(f.len(), 1);
    assert_eq!(
        f[0].url.as_deref(),
        Some("http://shop.example.net/login/index.html")
    );
    assert_eq!(f[0].domain.as_deref(), Some("shop.example.net"));
    assert!(f[0].in_scope, "about our address");
}

/// The same with v5 (`urls:search`).
#[tokio::test]
async fn urls_hosted_on_our_addresses_are_checked_v5() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v5/urls:search"))
        .and(query_param(
            "urls",
            "http://shop.example.net/login/index.html",
        ))
        .and(query_param("urls", "https://pay.example.com/"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_bytes(fixture("safebrowsing/v5-threats-hosted.json")),
        )
        .expect(1)
        .mount(&server)
        .await;
    let e = env();
    store_hosted_urls(&e);
    let r = e
        .runner
        .run_source(build(&sb_config(&server, "api = \"v5\"")).as_ref())
        .await;
    assert!(r.ok, "{:?}", r.error);
    for req in server.received_requests().await.unwrap() {
        let q = req.url.query().unwrap_or("");
        assert!(!q.contains("example-c2") && !q.contains("elsewhere"), "{q}");
    }
    let f = query(e.store.as_ref(), Query::Ip("192.0.2.90".parse().unwrap()));
    let f: Vec<_> = f.iter().filter(|f| f.source == "safebrowsing").collect();
    assert_eq!(f.len(), 1);
    assert_eq!(f[0].extra["threat_type"], "SOCIAL_ENGINEERING");
    assert!(f[0].in_scope);
}
