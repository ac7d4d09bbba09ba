//! Issue #21 item 6: every request outwatch sends, exactly as the provider documents it or as
//! its reference clients send it (`docs/requests.md` names the source of each), against
//! loopback mocks answering in the real formats; and the one retry rule (429/503 with
//! `Retry-After`, in seconds or as an HTTP date) on every request path.

use std::sync::Arc;
use std::time::Duration;

use crate::keyed_support::*;
use outwatch::http::{HttpClient, RetryPolicy};
use outwatch::secret::Secret;
use outwatch::sources::SourceKind;
use outwatch::sources::shadowserver::ShadowserverConfig;
use outwatch::sources::shadowserver::api::{LIST_LIMIT, sign};
use outwatch::sources::{Source, cymru, enabled_sources, hibp, snds};
use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

/// The Shadowserver API secret (the key is [`KEY`]).
const SS_SECRET: &str = "sh4d0w-S3CR3T-fedcba9876543210";
const ID: &str = "xNDSuwXrKnrLrDopU926rR75CAESMWesVCKsuyI8b8ncTv7GCX";

/// `METHOD /path?query` of each request, in order.
async fn lines(server: &MockServer) -> Vec<String> {
    server
        .received_requests()
        .await
        .unwrap()
        .iter()
        .map(line)
        .collect()
}

fn line(r: &Request) -> String {
    match r.url.query() {
        Some(q) => format!("{} {}?{q}", r.method, r.url.path()),
        None => format!("{} {}", r.method, r.url.path()),
    }
}

fn header<'r>(r: &'r Request, name: &str) -> Option<&'r str> {
    r.headers.get(name).and_then(|v| v.to_str().ok())
}

fn ss_config(server: &MockServer, types: &[&str]) -> ShadowserverConfig {
    let mut c: ShadowserverConfig = toml::from_str(&format!(
        "api_key = \"{KEY}\"\nsecret = \"{SS_SECRET}\"\nbase_url = \"{0}/api2/\"\n\
         download_url = \"{0}/dl/\"\n",
        server.uri()
    ))
    .unwrap();
    c.types = types.iter().map(|t| t.to_string()).collect();
    c
}

fn built(text: &str, name: &str) -> Arc<dyn Source> {
    let cfg = config(text);
    enabled_sources(&cfg)
        .into_iter()
        .find(|(n, _)| n == name)
        .unwrap_or_else(|| panic!("{name} is not enabled"))
        .1
        .unwrap()
}

// ---------- Shadowserver ----------

/// `reports/list` as `api_utils/report-manager.py` and OpenCTI's connector send it: `date`,
/// `limit`, one `type`; `HMAC2` over the exact body; downloads are a plain GET of the id.
#[tokio::test]
async fn shadowserver_lists_with_limit_and_one_type_per_request_then_downloads_by_id() {
    let server = MockServer::start().await;
    let listed = json!([{"report": "example-asn", "type": "scan_dns", "id": ID,
        "file": "2026-11-20-scan_dns-example-asn.csv", "timestamp": "2026-11-20"}]);
    Mock::given(method("POST"))
        .and(path("/api2/reports/list"))
        .respond_with(ResponseTemplate::new(200).set_body_json(listed))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(format!("/dl/{ID}")))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_bytes(fixture("shadowserver/2026-11-20-scan_dns-example-asn.csv")),
        )
        .mount(&server)
        .await;
    let e = env();
    let c = ss_config(&server, &["scan_dns", "scan_rdp"]);
    let src = SourceKind::build(&c, &config("")).unwrap();
    let r = e.runner.run_source(src.as_ref()).await;
    assert!(r.ok, "{r:?}");
    let reqs = server.received_requests().await.unwrap();
    assert_eq!(
        reqs.iter().map(line).collect::<Vec<_>>(),
        [
            "POST /api2/reports/list",
            "POST /api2/reports/list",
            &format!("GET /dl/{ID}"),
        ]
    );
    for (r, t) in reqs.iter().zip(["scan_dns", "scan_rdp"]) {
        let body: Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(
            body,
            json!({"apikey": KEY, "date": "2026-11-21:2026-11-23", "limit": LIST_LIMIT, "type": t})
        );
        assert_eq!(header(r, "hmac2"), Some(sign(SS_SECRET, &r.body).as_str()));
        assert_eq!(header(r, "content-type"), Some("application/json"));
    }
    // The download carries no key: the id is the credential.
    assert_eq!(header(&reqs[2], "hmac2"), None);
    assert!(!String::from_utf8_lossy(&reqs[2].body).contains(KEY));
}

/// Without `types`, one listing of every type; `test/ping` and `key/info` send `{"apikey"}`.
#[tokio::test]
async fn shadowserver_ping_and_key_info_send_only_the_key() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/api2/test/ping"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"pong": "2026-11-23 06:00:00"})),
        )
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/api2/key/info"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!([{"status": "active",
            "apikey": KEY, "access": ["reports"], "query_limit": "0", "query_count": "10"}])),
        )
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/api2/reports/list"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([])))
        .mount(&server)
        .await;
    let e = env();
    let client = ss_config(&server, &[])
        .client(e.runner.http.clone())
        .unwrap();
    assert_eq!(client.ping().await.unwrap(), "2026-11-23 06:00:00");
    let info = client.key_info().await.unwrap();
    assert!(!info.contains_key("apikey"));
    let listing = client.list("2026-11-23", &[]).await.unwrap();
    assert!(listing.entries.is_empty() && !listing.cut);
    let reqs = server.received_requests().await.unwrap();
    let bodies: Vec<Value> = reqs
        .iter()
        .map(|r| serde_json::from_slice(&r.body).unwrap())
        .collect();
    assert_eq!(
        bodies,
        [
            json!({"apikey": KEY}),
            json!({"apikey": KEY}),
            json!({"apikey": KEY, "date": "2026-11-23", "limit": LIST_LIMIT}),
        ]
    );
}

/// A listing that fills the limit is asked again day by day; a day that fills it alone is a
/// notice and nothing resolves.
#[tokio::test]
async fn a_listing_that_fills_the_limit_is_split_by_day_and_flagged_when_a_day_is_full() {
    let server = MockServer::start().await;
    let full: Vec<Value> = (0..LIST_LIMIT)
        .map(|i| {
            json!({"type": "scan_dns", "id": format!("id-{i:05}-{}", "x".repeat(40)),
            "file": format!("2026-11-21-scan_dns-example-asn-{i}.csv"), "timestamp": "2026-11-21"})
        })
        .collect();
    Mock::given(method("POST"))
        .and(path("/api2/reports/list"))
        .respond_with(ResponseTemplate::new(200).set_body_json(Value::Array(full)))
        .mount(&server)
        .await;
    let e = env();
    let client = ss_config(&server, &[])
        .client(e.runner.http.clone())
        .unwrap();
    let listing = client.list("2026-11-21:2026-11-23", &[]).await.unwrap();
    assert!(listing.cut);
    assert_eq!(listing.entries.len(), LIST_LIMIT, "the same ids, each once");
    let dates: Vec<Value> = server
        .received_requests()
        .await
        .unwrap()
        .iter()
        .map(|r| serde_json::from_slice::<Value>(&r.body).unwrap()["date"].clone())
        .collect();
    assert_eq!(
        dates,
        [
            "2026-11-21:2026-11-23",
            "2026-11-21",
            "2026-11-22",
            "2026-11-23"
        ]
    );
}

// ---------- HIBP, Safe Browsing, SNDS, Cymru ----------

#[tokio::test]
async fn hibp_sends_the_key_header_only_where_the_api_asks_for_it() {
    let server = MockServer::start().await;
    for (p, f) in [
        (
            "/api/v3/subscription/status",
            "hibp/subscription-status.json",
        ),
        (
            "/api/v3/breacheddomain/example.org",
            "hibp/breacheddomain-example.org.json",
        ),
        ("/api/v3/breaches", "hibp/breaches.json"),
    ] {
        serve(&server, p, fixture(f)).await;
    }
    let e = env();
    let cfg = config(&format!(
        "[organisation]\ndomains = [\"example.org\"]\n[sources.hibp]\napi_key = \"{KEY}\"\n\
         base_url = \"{}/api/v3\"\ndomains = [\"example.org\"]\n",
        server.uri()
    ));
    let src = SourceKind::build(
        outwatch::sources::table::<hibp::HibpConfig>(&cfg).unwrap(),
        &cfg,
    )
    .unwrap();
    let r = e.runner.run_source(src.as_ref()).await;
    assert!(r.ok, "{r:?}");
    let reqs = server.received_requests().await.unwrap();
    let got: Vec<(String, Option<&str>)> = reqs
        .iter()
        .map(|r| (line(r), header(r, "hibp-api-key")))
        .collect();
    assert_eq!(
        got,
        [
            ("GET /api/v3/subscription/status".to_string(), Some(KEY)),
            (
                "GET /api/v3/breacheddomain/example.org".to_string(),
                Some(KEY)
            ),
            ("GET /api/v3/breaches".to_string(), None),
        ]
    );
    for r in &reqs {
        assert!(header(r, "user-agent").is_some_and(|u| u.starts_with("outwatch")));
        assert_eq!(header(r, "accept"), Some("application/json"));
    }
}

#[tokio::test]
async fn safebrowsing_v4_posts_threat_matches_find_and_v5_gets_urls_search() {
    let server = MockServer::start().await;
    Mock::given(wiremock::matchers::any())
        .respond_with(ResponseTemplate::new(200).set_body_string("{}"))
        .mount(&server)
        .await;
    for api in ["v4", "v5"] {
        let e = env();
        let src = built(
            &format!(
                "[organisation]\ndomains = [\"example.org\"]\n[sources.safebrowsing]\n\
                 api_key = \"{KEY}\"\nbase_url = \"{}/gsb\"\napi = \"{api}\"\n\
                 reported_urls = false\n{}",
                server.uri(),
                crate::support::feeds_off()
            ),
            "safebrowsing",
        );
        let r = e.runner.run_source(src.as_ref()).await;
        assert!(r.ok, "{api}: {r:?}");
    }
    let reqs = server.received_requests().await.unwrap();
    assert_eq!(
        reqs.iter().map(line).collect::<Vec<_>>(),
        [
            format!("POST /gsb/v4/threatMatches:find?key={KEY}"),
            format!(
                "GET /gsb/v5/urls:search?urls=http%3A%2F%2Fexample.org%2F\
                 &urls=https%3A%2F%2Fexample.org%2F&key={KEY}"
            ),
        ]
    );
    let body: Value = serde_json::from_slice(&reqs[0].body).unwrap();
    assert_eq!(
        body,
        json!({
            "client": {"clientId": "outwatch", "clientVersion": env!("CARGO_PKG_VERSION")},
            "threatInfo": {
                "threatTypes": ["MALWARE", "SOCIAL_ENGINEERING", "UNWANTED_SOFTWARE",
                                "POTENTIALLY_HARMFUL_APPLICATION"],
                "platformTypes": ["ANY_PLATFORM"],
                "threatEntryTypes": ["URL"],
                "threatEntries": [{"url": "http://example.org/"}, {"url": "https://example.org/"}],
            }
        })
    );
    assert_eq!(header(&reqs[0], "content-type"), Some("application/json"));
}

#[tokio::test]
async fn snds_asks_two_days_of_data_then_ip_status_with_the_key_in_the_query() {
    let server = MockServer::start().await;
    Mock::given(wiremock::matchers::any())
        .respond_with(ResponseTemplate::new(200).set_body_string(""))
        .mount(&server)
        .await;
    let e = env();
    let cfg = config(&format!(
        "[sources.snds]\nkey = \"{KEY}\"\nbase_url = \"{}/snds\"\n",
        server.uri()
    ));
    let src = SourceKind::build(
        outwatch::sources::table::<snds::SndsConfig>(&cfg).unwrap(),
        &cfg,
    )
    .unwrap();
    e.runner.run_source(src.as_ref()).await;
    assert_eq!(
        lines(&server).await,
        [
            format!("GET /snds/data.aspx?key={KEY}&date=112226"),
            format!("GET /snds/data.aspx?key={KEY}&date=112126"),
            format!("GET /snds/ipStatus.aspx?key={KEY}"),
        ]
    );
}

#[tokio::test]
async fn cymru_gets_each_day_with_basic_auth() {
    use base64::Engine as _;
    let server = MockServer::start().await;
    Mock::given(wiremock::matchers::any())
        .respond_with(ResponseTemplate::new(200).set_body_bytes(fixture("cymru/cap_20261122.txt")))
        .mount(&server)
        .await;
    let e = env();
    let cfg = config(&format!(
        "[sources.cymru]\nurl = \"{}/cap/u_{{date}}.txt\"\nusername = \"u\"\npassword = \"{KEY}\"\n",
        server.uri()
    ));
    let src = SourceKind::build(
        outwatch::sources::table::<cymru::CymruConfig>(&cfg).unwrap(),
        &cfg,
    )
    .unwrap();
    e.runner.run_source(src.as_ref()).await;
    let reqs = server.received_requests().await.unwrap();
    assert_eq!(
        reqs.iter().map(line).collect::<Vec<_>>(),
        ["GET /cap/u_20261121.txt", "GET /cap/u_20261122.txt"]
    );
    let basic = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("u:{KEY}"))
    );
    assert!(
        reqs.iter()
            .all(|r| header(r, "authorization") == Some(basic.as_str()))
    );
}

// ---------- abuse.ch, Spamhaus, RIPEstat ----------

/// Each built-in list's request, without and with an abuse.ch Auth-Key.
#[tokio::test]
async fn list_feeds_get_their_documented_urls_with_the_auth_key_header() {
    let server = MockServer::start().await;
    Mock::given(wiremock::matchers::any())
        .respond_with(ResponseTemplate::new(404))
        .mount(&server)
        .await;
    let org = "[organisation]\nasns = [64496]\n";
    let cases: [(&str, bool, &[&str]); 9] = [
        ("feodotracker", false, &["GET /downloads/ipblocklist.csv"]),
        ("urlhaus", false, &["GET /downloads/csv_recent/"]),
        ("urlhaus", true, &["GET /v2/files/exports/{KEY}/recent.csv"]),
        ("threatfox", false, &["GET /export/csv/recent/"]),
        (
            "threatfox",
            true,
            &["GET /v2/files/exports/{KEY}/recent.csv"],
        ),
        ("sslbl", false, &["GET /blacklist/sslipblacklist.csv"]),
        ("urlhaus_asn", false, &["GET /feeds/asn/64496/"]),
        (
            "spamhaus_drop",
            false,
            &["GET /drop/drop_v4.json", "GET /drop/drop_v6.json"],
        ),
        ("spamhaus_asndrop", false, &["GET /drop/asndrop.json"]),
    ];
    for (feed, keyed, want) in cases {
        server.reset().await;
        Mock::given(wiremock::matchers::any())
            .respond_with(ResponseTemplate::new(404))
            .mount(&server)
            .await;
        let key = if keyed {
            format!("auth_key = \"{KEY}\"\n")
        } else {
            String::new()
        };
        let src = list_source(
            &format!(
                "{org}[sources.{feed}]\nbase_url = \"{}\"\n{key}",
                server.uri()
            ),
            feed,
        );
        env().runner.run_source(src.as_ref()).await;
        let reqs = server.received_requests().await.unwrap();
        let want: Vec<String> = want.iter().map(|w| w.replace("{KEY}", KEY)).collect();
        assert_eq!(reqs.iter().map(line).collect::<Vec<_>>(), want, "{feed}");
        for r in &reqs {
            let sent = header(r, "auth-key");
            assert_eq!(sent, keyed.then_some(KEY), "{feed}: Auth-Key");
        }
    }
}

#[tokio::test]
async fn ripestat_asks_announced_prefixes_with_a_sourceapp() {
    let server = MockServer::start().await;
    serve(
        &server,
        "/data/announced-prefixes/data.json",
        fixture("ripestat/announced-prefixes-AS64496.json"),
    )
    .await;
    let e = env();
    let got = outwatch::ripestat::announced_prefixes(&e.runner.http, &server.uri(), 64496)
        .await
        .unwrap();
    assert!(!got.is_empty());
    assert_eq!(
        lines(&server).await,
        ["GET /data/announced-prefixes/data.json?resource=AS64496&sourceapp=outwatch"]
    );
}

// ---------- 429 / 503 on every path ----------

/// An HTTP date `secs` after the test clock's now.
fn http_date_in(secs: i64) -> String {
    (t(NOW) + chrono::Duration::seconds(secs))
        .format("%a, %d %b %Y %H:%M:%S GMT")
        .to_string()
}

fn limited(retry_after: &str) -> ResponseTemplate {
    ResponseTemplate::new(429)
        .insert_header("retry-after", retry_after)
        .set_body_string("Too Many Requests")
}

/// Mounts `first` once for `method p`, then `then` from then on.
async fn once_then(
    server: &MockServer,
    m: &str,
    p: &str,
    first: ResponseTemplate,
    then: ResponseTemplate,
) {
    Mock::given(method(m))
        .and(path(p))
        .respond_with(first)
        .up_to_n_times(1)
        .with_priority(1)
        .mount(server)
        .await;
    Mock::given(method(m))
        .and(path(p))
        .respond_with(then)
        .with_priority(2)
        .mount(server)
        .await;
}

#[tokio::test]
async fn the_shadowserver_listing_and_download_wait_out_a_rate_limit() {
    let server = MockServer::start().await;
    let listed = json!([{"report": "example-asn", "type": "scan_dns", "id": ID,
        "file": "2026-11-20-scan_dns-example-asn.csv", "timestamp": "2026-11-20"}]);
    once_then(
        &server,
        "POST",
        "/api2/reports/list",
        limited("7"),
        ResponseTemplate::new(200).set_body_json(listed),
    )
    .await;
    once_then(
        &server,
        "GET",
        &format!("/dl/{ID}"),
        limited(&http_date_in(30)),
        ResponseTemplate::new(200)
            .set_body_bytes(fixture("shadowserver/2026-11-20-scan_dns-example-asn.csv")),
    )
    .await;
    let e = env();
    let src = SourceKind::build(&ss_config(&server, &[]), &config("")).unwrap();
    let r = e.runner.run_source(src.as_ref()).await;
    assert!(r.ok, "{r:?}");
    assert!(r.new > 0);
    // The second wait is the HTTP date less the 7 s the clock moved while waiting the first.
    assert_eq!(
        e.clock.slept(),
        [Duration::from_secs(7), Duration::from_secs(23)]
    );
}

#[tokio::test]
async fn cymru_lists_and_ripestat_wait_out_a_rate_limit() {
    // Cymru: one day limited, then answered.
    let server = MockServer::start().await;
    once_then(
        &server,
        "GET",
        "/cap/u_20261122.txt",
        limited("4"),
        ResponseTemplate::new(200).set_body_bytes(fixture("cymru/cap_20261122.txt")),
    )
    .await;
    serve(
        &server,
        "/cap/u_20261121.txt",
        fixture("cymru/infected_20261121.txt"),
    )
    .await;
    let e = env();
    let cfg = config(&format!(
        "[sources.cymru]\nurl = \"{}/cap/u_{{date}}.txt\"\nusername = \"u\"\npassword = \"{KEY}\"\n",
        server.uri()
    ));
    let src = SourceKind::build(
        outwatch::sources::table::<cymru::CymruConfig>(&cfg).unwrap(),
        &cfg,
    )
    .unwrap();
    let r = e.runner.run_source(src.as_ref()).await;
    assert!(r.ok, "{r:?}");
    assert_eq!(e.clock.slept(), [Duration::from_secs(4)]);

    // A list feed: 503 without Retry-After backs off 2 s, then 429 asks 5 s.
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/downloads/ipblocklist.csv"))
        .respond_with(ResponseTemplate::new(503))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    once_then(
        &server,
        "GET",
        "/downloads/ipblocklist.csv",
        limited("5"),
        ResponseTemplate::new(200).set_body_bytes(fixture("lists/feodotracker/ipblocklist.csv")),
    )
    .await;
    let e = env();
    let src = list_source(
        &format!("[sources.feodotracker]\nbase_url = \"{}\"\n", server.uri()),
        "feodotracker",
    );
    let r = e.runner.run_source(src.as_ref()).await;
    assert!(r.ok, "{r:?}");
    assert_eq!(
        e.clock.slept(),
        [Duration::from_secs(2), Duration::from_secs(5)]
    );

    // RIPEstat.
    let server = MockServer::start().await;
    once_then(
        &server,
        "GET",
        "/data/announced-prefixes/data.json",
        limited(&http_date_in(9)),
        ResponseTemplate::new(200)
            .set_body_bytes(fixture("ripestat/announced-prefixes-AS64496.json")),
    )
    .await;
    let e = env();
    outwatch::ripestat::announced_prefixes(&e.runner.http, &server.uri(), 64496)
        .await
        .unwrap();
    assert_eq!(e.clock.slept(), [Duration::from_secs(9)]);
}

/// Waits are bounded: a `Retry-After` past the policy's longest wait is not waited for (the
/// error says what the server asked), and attempts stop after `max_retries`.
#[tokio::test]
async fn waits_and_attempts_are_bounded() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/long"))
        .respond_with(limited("3600"))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/always"))
        .respond_with(limited("1"))
        .mount(&server)
        .await;
    let e = env();
    let secret = Secret::new(KEY);
    let err = e
        .runner
        .http
        .get(
            &format!("{}/long", server.uri()),
            Default::default(),
            None,
            &[&secret],
        )
        .await
        .unwrap_err();
    assert!(e.clock.slept().is_empty());
    assert!(err.to_string().contains("asks to wait 1h"), "{err}");
    let policy = RetryPolicy {
        max_retries: 2,
        ..RetryPolicy::default()
    };
    let http: HttpClient = e.runner.http.clone().with_retry(policy);
    let err = http
        .get(
            &format!("{}/always", server.uri()),
            Default::default(),
            None,
            &[],
        )
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(429));
    assert_eq!(e.clock.slept(), [Duration::from_secs(1); 2]);
    let asked = server
        .received_requests()
        .await
        .unwrap()
        .iter()
        .filter(|r| r.url.path() == "/always")
        .count();
    assert_eq!(asked, 3, "the first attempt and two retries");
}
