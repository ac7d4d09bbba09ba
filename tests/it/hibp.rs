//! Have I Been Pwned: the domain search against a local mock serving HIBP's real bodies, the
//! notification-mail importer, and the CLI path `fetch` → `lookup` across hibp, safebrowsing and
//! snds.

use std::time::Duration;

use crate::keyed_support::*;
use outwatch::clock::Clock;
use outwatch::finding::Severity;
use outwatch::sources::SourceKind;
use outwatch::sources::hibp;
use outwatch::store::Query;
use serde_json::Value;
use wiremock::matchers::{header, header_exists, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

fn hibp_config(server: &MockServer) -> outwatch::config::Config {
    config(&format!(
        "[organisation]\ndomains = [\"example.org\"]\n[sources.hibp]\napi_key = \"{KEY}\"\nbase_url = \"{}/api/v3\"\n",
        server.uri()
    ))
}

fn json_body(rel: &str) -> ResponseTemplate {
    ResponseTemplate::new(200)
        .insert_header("content-type", "application/json; charset=utf-8")
        .set_body_bytes(fixture(rel))
}

async fn mount_status(server: &MockServer) {
    Mock::given(method("GET"))
        .and(path("/api/v3/subscription/status"))
        .and(header("hibp-api-key", KEY))
        .respond_with(json_body("hibp/subscription-status.json"))
        .mount(server)
        .await;
}

async fn mount_breaches(server: &MockServer, times: u64) {
    Mock::given(method("GET"))
        .and(path("/api/v3/breaches"))
        .and(header_exists("user-agent"))
        .respond_with(json_body("hibp/breaches.json"))
        .expect(times)
        .mount(server)
        .await;
}

async fn mount_domain(server: &MockServer, resp: ResponseTemplate) {
    Mock::given(method("GET"))
        .and(path("/api/v3/breacheddomain/example.org"))
        .and(header("hibp-api-key", KEY))
        .and(header_exists("user-agent"))
        .respond_with(resp)
        .mount(server)
        .await;
}

#[tokio::test]
async fn domain_search_gives_one_finding_per_address_and_breach() {
    let server = MockServer::start().await;
    mount_status(&server).await;
    // The breach list is cached in state: read once for two runs on the same day.
    mount_breaches(&server, 1).await;
    mount_domain(&server, json_body("hibp/breacheddomain-example.org.json")).await;
    let e = env();
    let cfg = hibp_config(&server);
    let src = SourceKind::build(
        outwatch::sources::table::<hibp::HibpConfig>(&cfg).unwrap(),
        &cfg,
    )
    .unwrap();

    let r = e.runner.run_source(src.as_ref()).await;
    assert!(r.ok, "{:?}", r.error);
    assert_eq!((r.fetched, r.new, r.in_scope, r.rejected), (4, 4, 4, 0));
    // Rpm 30 from /subscription/status: the verified-domains call waited 2 s after the status
    // call, the domain search 2 s after that.
    assert_eq!(e.clock.slept(), vec![Duration::from_secs(2); 2]);

    let alice = query(e.store.as_ref(), Query::Email("alice@example.org".into()));
    assert_eq!(alice.len(), 2);
    let forum = alice
        .iter()
        .find(|f| f.extra["breach"] == "ExampleForum")
        .unwrap();
    assert_eq!(forum.source, "hibp");
    assert_eq!(forum.email.as_deref(), Some("alice@example.org"));
    assert_eq!(forum.domain.as_deref(), Some("example.org"));
    assert_eq!(forum.extra["email"], "alice@example.org");
    assert_eq!(forum.extra["title"], "Example Forum");
    assert_eq!(forum.extra["breach_date"], "2026-03-12");
    assert_eq!(forum.extra["pwn_count"], 1234567);
    assert_eq!(forum.extra["is_verified"], true);
    assert_eq!(
        forum.extra["data_classes"],
        serde_json::json!(["Email addresses", "Passwords", "Usernames"])
    );
    assert_eq!(forum.severity, Severity::High);
    assert_eq!(
        forum.classification.taxonomy,
        "information-content-security"
    );
    assert_eq!(forum.classification.kind, "data-leak");
    assert_eq!(forum.time_source, Some(t("2026-04-02T08:15:00Z")));
    let spam = alice
        .iter()
        .find(|f| f.extra["breach"] == "MarketingListCo")
        .unwrap();
    assert_eq!(spam.severity, Severity::Low);
    let bob = query(
        e.store.as_ref(),
        Query::Email("bob.smith@example.org".into()),
    );
    assert_eq!(bob[0].severity, Severity::High, "sensitive breach");
    // A domain lookup finds every pair.
    assert_eq!(
        query(e.store.as_ref(), Query::Domain("example.org".into())).len(),
        4
    );

    // Same data again: nothing new, every pair seen again, but the same breach is one
    // observation, so `times_seen` stays.
    e.clock.advance(chrono::Duration::hours(6));
    let r = e.runner.run_source(src.as_ref()).await;
    assert!(r.ok, "{:?}", r.error);
    assert_eq!((r.new, r.updated), (0, 4));
    assert!(
        all_findings(e.store.as_ref())
            .iter()
            .all(|f| f.times_seen == 1 && f.last_seen > f.first_seen)
    );
}

#[tokio::test]
async fn a_pair_no_longer_listed_resolves_after_the_window() {
    let server = MockServer::start().await;
    mount_status(&server).await;
    Mock::given(method("GET"))
        .and(path("/api/v3/breaches"))
        .respond_with(json_body("hibp/breaches.json"))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/api/v3/breacheddomain/example.org"))
        .respond_with(json_body("hibp/breacheddomain-example.org.json"))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    // Later the domain search no longer lists noc@ in ExampleForum.
    mount_domain(
        &server,
        ResponseTemplate::new(200).set_body_string(
            r#"{"alice":["ExampleForum","MarketingListCo"],"bob.smith":["QuietDating"]}"#,
        ),
    )
    .await;
    let e = env();
    let cfg = hibp_config(&server);
    let src = SourceKind::build(
        outwatch::sources::table::<hibp::HibpConfig>(&cfg).unwrap(),
        &cfg,
    )
    .unwrap();
    assert_eq!(e.runner.run_source(src.as_ref()).await.new, 4);
    e.clock.advance(chrono::Duration::days(3));
    let r = e.runner.run_source(src.as_ref()).await;
    assert!(r.ok, "{:?}", r.error);
    assert_eq!((r.new, r.updated, r.resolved), (0, 3, 1));
    let noc = query(e.store.as_ref(), Query::Email("noc@example.org".into()));
    assert_eq!(noc[0].status, outwatch::finding::Status::Resolved);
}

#[tokio::test]
async fn single_addresses_outside_the_domains_use_breachedaccount() {
    let server = MockServer::start().await;
    mount_status(&server).await;
    mount_breaches(&server, 1).await;
    mount_domain(&server, ResponseTemplate::new(404)).await;
    Mock::given(method("GET"))
        .and(path("/api/v3/breachedaccount/ceo%40example.net"))
        .and(header("hibp-api-key", KEY))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_string(r#"[{"Name":"ExampleForum"},{"Name":"QuietDating"}]"#),
        )
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/api/v3/breachedaccount/clean%40example.net"))
        .respond_with(ResponseTemplate::new(404))
        .mount(&server)
        .await;
    let cfg = config(&format!(
        "[organisation]\ndomains = [\"example.org\"]\nemails = [\"CEO@example.net\", \"clean@example.net\", \"alice@example.org\"]\n[sources.hibp]\napi_key = \"{KEY}\"\nbase_url = \"{}/api/v3\"\n",
        server.uri()
    ));
    let e = env();
    let src = SourceKind::build(
        outwatch::sources::table::<hibp::HibpConfig>(&cfg).unwrap(),
        &cfg,
    )
    .unwrap();
    let r = e.runner.run_source(src.as_ref()).await;
    assert!(r.ok, "{:?}", r.error);
    assert_eq!(r.new, 2);
    // Status, then the verified domains, the domain, two accounts: four paced waits of 2 s.
    assert_eq!(e.clock.slept(), vec![Duration::from_secs(2); 4]);
    let ceo = query(e.store.as_ref(), Query::Email("ceo@example.net".into()));
    assert_eq!(ceo.len(), 2);
    assert!(
        ceo.iter()
            .all(|f| f.feed == "breachedaccount" && f.extra["email"] == "ceo@example.net")
    );
    assert!(ceo.iter().all(|f| f.severity == Severity::High));
}

/// `[sources.hibp] domains` unset: the account's verified domains (`/subscribeddomains`),
/// intersected with the organisation's. A domain that is not verified is named, not searched,
/// and is no failure.
#[tokio::test]
async fn searches_only_the_domains_the_account_verified() {
    let server = MockServer::start().await;
    mount_status(&server).await;
    mount_breaches(&server, 1).await;
    Mock::given(method("GET"))
        .and(path("/api/v3/subscribeddomains"))
        .and(header("hibp-api-key", KEY))
        .respond_with(json_body("hibp/subscribeddomains.json"))
        .expect(1)
        .mount(&server)
        .await;
    mount_domain(&server, json_body("hibp/breacheddomain-example.org.json")).await;
    Mock::given(method("GET"))
        .and(path("/api/v3/breacheddomain/example.net"))
        .respond_with(ResponseTemplate::new(403))
        .expect(0)
        .mount(&server)
        .await;
    let cfg = config(&format!(
        "[organisation]\ndomains = [\"example.org\", \"example.net\"]\n[sources.hibp]\napi_key = \"{KEY}\"\nbase_url = \"{}/api/v3\"\n",
        server.uri()
    ));
    let e = env();
    let src = SourceKind::build(
        outwatch::sources::table::<hibp::HibpConfig>(&cfg).unwrap(),
        &cfg,
    )
    .unwrap();
    let r = e.runner.run_source(src.as_ref()).await;
    assert!(r.ok, "{:?} {:?}", r.error, r.errors);
    assert_eq!(r.new, 4);
    // example.net is named once, in the run log's notices (shown by `status`), not as a
    // failure or a warning.
    assert_eq!(r.warnings, 0);
    let run = &e.store.runs(Some("hibp"), 1).unwrap()[0];
    assert_eq!(run.outcome, outwatch::store::RunOutcome::Ok);
    assert_eq!(run.notices.len(), 1, "{:?}", run.notices);
    assert!(run.notices[0].contains("example.net"), "{:?}", run.notices);
    assert!(!run.notices[0].contains(KEY));
    let h = outwatch::health::judge(
        "hibp",
        &outwatch::health::SourceFacts::default(),
        &e.store.runs(Some("hibp"), 10).unwrap(),
        e.clock.now(),
    );
    assert_eq!(h.state, outwatch::health::HealthState::Ok);
    assert_eq!(h.notes, run.notices);
    // Listed domains are searched as they are, without asking the account.
    let cfg = config(&format!(
        "[organisation]\ndomains = [\"example.org\", \"example.net\"]\n[sources.hibp]\napi_key = \"{KEY}\"\nbase_url = \"{}/api/v3\"\ndomains = [\"example.org\"]\n",
        server.uri()
    ));
    let src = SourceKind::build(
        outwatch::sources::table::<hibp::HibpConfig>(&cfg).unwrap(),
        &cfg,
    )
    .unwrap();
    let r = e.runner.run_source(src.as_ref()).await;
    assert!(r.ok, "{:?} {:?}", r.error, r.errors);
    assert_eq!(r.warnings, 0);
}

#[test]
fn samples_subscribed_domains() {
    let Some(s) = samples("hibp") else { return };
    let b = std::fs::read(s.join("subscribeddomains.json")).unwrap();
    assert_eq!(hibp::parse_subscribed(&b).unwrap(), vec!["domain.tld"]);
}

#[tokio::test]
async fn not_found_means_no_breaches() {
    let server = MockServer::start().await;
    mount_status(&server).await;
    mount_breaches(&server, 1).await;
    mount_domain(&server, ResponseTemplate::new(404)).await;
    let e = env();
    let cfg = hibp_config(&server);
    let src = SourceKind::build(
        outwatch::sources::table::<hibp::HibpConfig>(&cfg).unwrap(),
        &cfg,
    )
    .unwrap();
    let r = e.runner.run_source(src.as_ref()).await;
    assert!(r.ok, "{:?}", r.error);
    assert_eq!((r.fetched, r.new), (0, 0));
    assert_eq!(e.store.count().unwrap(), 0);
}

#[tokio::test]
async fn unauthorised_key_is_a_clear_error_without_the_key() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/api/v3/subscription/status"))
        .respond_with(ResponseTemplate::new(401).set_body_bytes(fixture("hibp/unauthorised.txt")))
        .mount(&server)
        .await;
    mount_domain(&server, json_body("hibp/breacheddomain-example.org.json")).await;
    let e = env();
    let cfg = hibp_config(&server);
    let src = SourceKind::build(
        outwatch::sources::table::<hibp::HibpConfig>(&cfg).unwrap(),
        &cfg,
    )
    .unwrap();
    let r = e.runner.run_source(src.as_ref()).await;
    assert!(!r.ok);
    let err = r.error.unwrap();
    assert!(err.contains("401") && err.contains("api_key"), "{err}");
    assert!(!err.contains(KEY), "{err}");
    assert_eq!(e.store.count().unwrap(), 0);
    let runs = e.store.runs(Some("hibp"), 1).unwrap();
    assert_eq!(runs[0].outcome, outwatch::store::RunOutcome::Error);
    assert!(!runs[0].error.as_deref().unwrap().contains(KEY));
}

#[tokio::test]
async fn forbidden_domain_search_says_what_to_check() {
    let server = MockServer::start().await;
    mount_status(&server).await;
    mount_domain(&server, ResponseTemplate::new(403)).await;
    let e = env();
    let cfg = hibp_config(&server);
    let src = SourceKind::build(
        outwatch::sources::table::<hibp::HibpConfig>(&cfg).unwrap(),
        &cfg,
    )
    .unwrap();
    let r = e.runner.run_source(src.as_ref()).await;
    let err = r.error.unwrap();
    assert!(err.contains("403") && err.contains("example.org"), "{err}");
}

#[tokio::test]
async fn rate_limit_waits_for_retry_after_then_retries() {
    let server = MockServer::start().await;
    mount_status(&server).await;
    mount_breaches(&server, 1).await;
    Mock::given(method("GET"))
        .and(path("/api/v3/breacheddomain/example.org"))
        .respond_with(
            ResponseTemplate::new(429)
                .insert_header("retry-after", "7")
                .set_body_bytes(fixture("hibp/rate-limited.json")),
        )
        .up_to_n_times(1)
        .expect(1)
        .mount(&server)
        .await;
    mount_domain(&server, json_body("hibp/breacheddomain-example.org.json")).await;
    let e = env();
    let cfg = hibp_config(&server);
    let src = SourceKind::build(
        outwatch::sources::table::<hibp::HibpConfig>(&cfg).unwrap(),
        &cfg,
    )
    .unwrap();
    let r = e.runner.run_source(src.as_ref()).await;
    assert!(r.ok, "{:?}", r.error);
    assert_eq!(r.new, 4);
    // 2 s of pacing (Rpm 30) before the verified domains and before the domain, then the 7 s
    // the server asked for; nothing slept for real.
    assert_eq!(
        e.clock.slept(),
        vec![
            Duration::from_secs(2),
            Duration::from_secs(2),
            Duration::from_secs(7)
        ]
    );
}

#[tokio::test]
async fn malformed_bodies_fail_the_run_and_leave_the_store_alone() {
    let server = MockServer::start().await;
    mount_status(&server).await;
    mount_breaches(&server, 1).await;
    Mock::given(method("GET"))
        .and(path("/api/v3/breacheddomain/example.org"))
        .respond_with(json_body("hibp/breacheddomain-example.org.json"))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    mount_domain(
        &server,
        ResponseTemplate::new(200).set_body_string("[\"alice\", \"bob\""),
    )
    .await;
    let e = env();
    let cfg = hibp_config(&server);
    let src = SourceKind::build(
        outwatch::sources::table::<hibp::HibpConfig>(&cfg).unwrap(),
        &cfg,
    )
    .unwrap();
    assert!(e.runner.run_source(src.as_ref()).await.ok);
    let before = all_findings(e.store.as_ref());
    e.clock.advance(chrono::Duration::hours(1));
    let r = e.runner.run_source(src.as_ref()).await;
    assert!(!r.ok);
    let err = r.error.unwrap();
    assert!(err.contains("example.org") && err.contains("JSON"), "{err}");
    assert_eq!(all_findings(e.store.as_ref()), before);

    // An HTML page with status 200 is an error too.
    let server2 = MockServer::start().await;
    mount_status(&server2).await;
    mount_domain(
        &server2,
        ResponseTemplate::new(200)
            .set_body_string("<!DOCTYPE html><html><body>Blocked</body></html>"),
    )
    .await;
    let cfg = hibp_config(&server2);
    let src = SourceKind::build(
        outwatch::sources::table::<hibp::HibpConfig>(&cfg).unwrap(),
        &cfg,
    )
    .unwrap();
    let r = e.runner.run_source(src.as_ref()).await;
    assert!(r.error.unwrap().contains("HTML"));
    assert_eq!(all_findings(e.store.as_ref()), before);
}

#[test]
fn missing_key_or_domains_are_config_errors() {
    let cfg = config("[organisation]\ndomains = [\"example.org\"]\n[sources.hibp]\n");
    let e = SourceKind::build(
        outwatch::sources::table::<hibp::HibpConfig>(&cfg).unwrap(),
        &cfg,
    )
    .err()
    .unwrap();
    assert!(e.to_string().contains("api_key"), "{e}");
    // Without organisation domains the account's verified domains are searched.
    let cfg = config(&format!("[sources.hibp]\napi_key = \"{KEY}\"\n"));
    assert!(
        SourceKind::build(
            outwatch::sources::table::<hibp::HibpConfig>(&cfg).unwrap(),
            &cfg
        )
        .is_ok()
    );
    let cfg = config(&format!(
        "[sources.hibp]\napi_key = \"{KEY}\"\ndomains = []\n"
    ));
    let e = SourceKind::build(
        outwatch::sources::table::<hibp::HibpConfig>(&cfg).unwrap(),
        &cfg,
    )
    .err()
    .unwrap();
    assert!(e.to_string().contains("domains"), "{e}");
}

// ---------- import hibp ----------

#[test]
fn import_reads_a_notification_mail_without_config() {
    let d = tempfile::tempdir().unwrap();
    let out = cli(d.path())
        .args(["--data-dir", "data", "import", "hibp", "--json"])
        .arg(fixture_path("hibp/domain-notification.eml"))
        .assert()
        .success()
        .get_output()
        .clone();
    let v = stdout_json(&out);
    assert_eq!(
        (v["findings"].as_u64(), v["rejected"].as_u64()),
        (Some(1), Some(0))
    );
    let out = cli(d.path())
        .args(["--data-dir", "data", "lookup", "example.org", "--json"])
        .assert()
        .success()
        .get_output()
        .clone();
    let v = stdout_json(&out);
    let f = &v["findings"][0];
    assert_eq!(f["source"], "hibp");
    assert_eq!(f["feed"], "notification");
    assert_eq!(f["domain"], "example.org");
    assert_eq!(f["extra"]["breach"], "ExampleForum");
    assert_eq!(f["extra"]["title"], "Example Forum");
    assert_eq!(f["extra"]["breach_date"], "2026-03-12");
    assert_eq!(f["extra"]["pwn_count"], 1234567);
    assert_eq!(f["extra"]["your_accounts"], 2);
    assert_eq!(f["severity"], "high");
    assert_eq!(f["time_source"], "2026-04-02T08:31:02Z");

    // Importing the same mail again is idempotent; a non-notification fails with exit 1.
    cli(d.path())
        .args(["--data-dir", "data", "import", "hibp"])
        .arg(fixture_path("hibp/domain-notification.eml"))
        .assert()
        .success();
    let out = cli(d.path())
        .args(["--data-dir", "data", "import", "hibp"])
        .arg(fixture_path("safebrowsing/not-an-alert.eml"))
        .assert()
        .code(1)
        .get_output()
        .clone();
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a Have I Been Pwned notification"));
    let out = cli(d.path())
        .args(["--data-dir", "data", "lookup", "example.org", "--json"])
        .assert()
        .success()
        .get_output()
        .clone();
    let v = stdout_json(&out);
    assert_eq!(v["findings"].as_array().unwrap().len(), 1);
    assert_eq!(
        v["findings"][0]["times_seen"], 1,
        "the same mail is one observation"
    );
}

// ---------- conformance with the shared samples (skipped when absent) ----------

#[test]
fn shared_samples_parse() {
    let Some(dir) = samples("hibp") else { return };
    let body = std::fs::read(dir.join("breacheddomain.json")).unwrap();
    let m = hibp::parse_domain_search(&body).unwrap();
    assert!(m.values().flatten().count() > 0);
    let b: hibp::Breach =
        serde_json::from_slice(&std::fs::read(dir.join("breach-adobe.json")).unwrap()).unwrap();
    assert_eq!(b.name, "Adobe");
    assert_eq!(
        hibp::severity(&b.data_classes, false, false),
        Severity::High
    );
    let raw = std::fs::read(dir.join("domain-notification.eml")).unwrap();
    let mail = outwatch::mail::parse(&raw).unwrap();
    let n = hibp::notification::parse(&mail).unwrap();
    assert_eq!(n.domain, "mydomain.org");
    assert_eq!(n.breach, "OnlinerSpambot");
    assert_eq!(n.title.as_deref(), Some("Onliner Spambot"));
    assert_eq!(n.your_accounts, Some(1));
    assert!(n.spam_list);
    assert_eq!(n.data_classes, vec!["Email addresses", "Passwords"]);
}

// ---------- CLI: fetch all three sources, then lookup ----------

#[tokio::test]
async fn fetch_then_lookup_shows_all_three_sources() {
    use wiremock::matchers::query_param;
    let server = MockServer::start().await;
    // HIBP, with a fast plan so the real clock barely waits.
    Mock::given(method("GET"))
        .and(path("/hibp/subscription/status"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_string(r#"{"SubscriptionName":"Pwned 5","Rpm":6000}"#),
        )
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/hibp/breaches"))
        .respond_with(json_body("hibp/breaches.json"))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/hibp/breacheddomain/example.org"))
        .respond_with(json_body("hibp/breacheddomain-example.org.json"))
        .mount(&server)
        .await;
    // Safe Browsing v4.
    Mock::given(method("POST"))
        .and(path("/gsb/v4/threatMatches:find"))
        .and(query_param("key", KEY))
        .respond_with(json_body("safebrowsing/v4-matches.json"))
        .mount(&server)
        .await;
    // SNDS.
    Mock::given(method("GET"))
        .and(path("/snds/data.aspx"))
        .respond_with(
            ResponseTemplate::new(200).set_body_bytes(fixture("snds/data-2026-11-22.csv")),
        )
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/snds/ipStatus.aspx"))
        .respond_with(ResponseTemplate::new(200).set_body_bytes(fixture("snds/ipstatus.csv")))
        .mount(&server)
        .await;
    let d = tempfile::tempdir().unwrap();
    std::fs::write(
        d.path().join("outwatch.toml"),
        format!(
            r#"[organisation]
name = "Example Org"
prefixes = ["192.0.2.0/24"]
domains = ["example.org"]
[store]
path = "./data"
[sources.hibp]
api_key = "{KEY}"
base_url = "{u}/hibp"
[sources.safebrowsing]
api_key = "{KEY}"
base_url = "{u}/gsb"
urls = ["http://192.0.2.80/download/setup.exe"]
[sources.snds]
key_env = "OUTWATCH_TEST_SNDS_KEY"
base_url = "{u}/snds"
"#,
            u = server.uri()
        ),
    )
    .unwrap();
    let out = cli(d.path())
        .env("OUTWATCH_TEST_SNDS_KEY", KEY)
        .args([
            "fetch",
            "--json",
            "--source",
            "hibp",
            "--source",
            "safebrowsing",
            "--source",
            "snds",
        ])
        .assert()
        .success()
        .get_output()
        .clone();
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(!text.contains(KEY), "{text}");
    let v = stdout_json(&out);
    for s in v["sources"].as_array().unwrap() {
        assert_eq!(s["ok"], true, "{s}");
        assert!(s["new"].as_u64().unwrap() > 0, "{s}");
    }
    let lookup = |q: &str| {
        let out = cli(d.path())
            .args(["lookup", q, "--json"])
            .assert()
            .success()
            .get_output()
            .clone();
        stdout_json(&out)
    };
    let sources = |v: &Value| -> std::collections::BTreeSet<String> {
        v["findings"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["source"].as_str().unwrap().to_string())
            .collect()
    };
    let dom = lookup("example.org");
    assert_eq!(dom["in_scope"], true);
    assert_eq!(
        sources(&dom),
        ["hibp", "safebrowsing"].map(String::from).into()
    );
    let addr = lookup("alice@example.org");
    assert_eq!(sources(&addr), ["hibp"].map(String::from).into());
    assert!(
        addr["findings"]
            .as_array()
            .unwrap()
            .iter()
            .all(|f| f["extra"]["email"] == "alice@example.org")
    );
    // 192.0.2.80 serves the listed URL and lies in a range SNDS blocks.
    let ip = lookup("192.0.2.80");
    assert_eq!(
        sources(&ip),
        ["safebrowsing", "snds"].map(String::from).into()
    );
    let ip = lookup("192.0.2.11");
    assert_eq!(sources(&ip), ["snds"].map(String::from).into());
    assert_eq!(ip["findings"][0]["extra"]["filter_result"], "RED");
    // An address inside a blocked range finds the one range finding.
    let ip = lookup("192.0.2.100");
    let f = &ip["findings"][0];
    assert_eq!(f["network"], "192.0.2.64/26");
    assert_eq!(f["extra"]["first_ip"], "192.0.2.64");
    let all = lookup("192.0.2.0/24");
    assert_eq!(
        sources(&all),
        ["safebrowsing", "snds"].map(String::from).into()
    );
}

/// One organisation domain that the HIBP account has not verified (403) costs that domain
/// only: the other's findings are stored, the refused one is named, and the run is partial.
#[tokio::test]
async fn a_refused_domain_costs_only_that_domain() {
    let server = MockServer::start().await;
    mount_status(&server).await;
    mount_breaches(&server, 1).await;
    mount_domain(&server, json_body("hibp/breacheddomain-example.org.json")).await;
    Mock::given(method("GET"))
        .and(path("/api/v3/breacheddomain/unverified.example"))
        .respond_with(ResponseTemplate::new(403))
        .mount(&server)
        .await;
    let e = env();
    let cfg = config(&format!(
        "[organisation]\ndomains = [\"example.org\", \"unverified.example\"]\n[sources.hibp]\napi_key = \"{KEY}\"\nbase_url = \"{}/api/v3\"\n",
        server.uri()
    ));
    let src = SourceKind::build(
        outwatch::sources::table::<hibp::HibpConfig>(&cfg).unwrap(),
        &cfg,
    )
    .unwrap();
    let r = e.runner.run_source(src.as_ref()).await;
    assert!(!r.ok);
    assert_eq!(r.outcome, outwatch::store::RunOutcome::Partial);
    assert_eq!(r.new, 4, "example.org's findings are kept");
    assert_eq!(e.store.count().unwrap(), 4);
    assert_eq!(r.errors.len(), 1, "{:?}", r.errors);
    assert_eq!(r.errors[0].unit, "domain unverified.example");
    assert!(r.errors[0].error.contains("403"), "{:?}", r.errors);
    assert!(!r.error.unwrap().contains(KEY));
    let runs = e.store.runs(Some("hibp"), 1).unwrap();
    assert_eq!(runs[0].outcome, outwatch::store::RunOutcome::Partial);
    assert_eq!(runs[0].failed_units[0].unit, "domain unverified.example");
}
