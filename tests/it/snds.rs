//! Microsoft SNDS: data.aspx (two days) and ipStatus.aspx against a local mock serving SNDS's
//! real CSV (no header, CRLF), expired-key HTML pages, errors and rate limits.

use std::sync::Arc;
use std::time::Duration;

use crate::keyed_support::*;
use outwatch::finding::Severity;
use outwatch::sources::SourceKind;
use outwatch::sources::snds;
use outwatch::store::Query;
use wiremock::matchers::{method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

fn build(server: &MockServer) -> Arc<dyn outwatch::sources::Source> {
    let cfg = config(&format!(
        "[sources.snds]\nkey = \"{KEY}\"\nbase_url = \"{}/snds\"\n",
        server.uri()
    ));
    SourceKind::build(
        outwatch::sources::table::<snds::SndsConfig>(&cfg).unwrap(),
        &cfg,
    )
    .unwrap()
}

fn csv(rel: &str) -> ResponseTemplate {
    ResponseTemplate::new(200)
        .insert_header("content-type", "text/csv")
        .set_body_bytes(fixture(rel))
}

/// The clock says 2026-11-23: yesterday is 112226, the day before 112126.
async fn mount_normal(server: &MockServer) {
    Mock::given(method("GET"))
        .and(path("/snds/data.aspx"))
        .and(query_param("key", KEY))
        .and(query_param("date", "112226"))
        .respond_with(csv("snds/data-2026-11-22.csv"))
        .mount(server)
        .await;
    Mock::given(method("GET"))
        .and(path("/snds/data.aspx"))
        .and(query_param("key", KEY))
        .and(query_param("date", "112126"))
        .respond_with(csv("snds/data-2026-11-21.csv"))
        .mount(server)
        .await;
    Mock::given(method("GET"))
        .and(path("/snds/ipStatus.aspx"))
        .and(query_param("key", KEY))
        .respond_with(csv("snds/ipstatus.csv"))
        .mount(server)
        .await;
}

#[tokio::test]
async fn data_rows_and_blocked_ranges_become_findings() {
    let server = MockServer::start().await;
    mount_normal(&server).await;
    let e = env();
    let src = build(&server);
    let r = e.runner.run_source(src.as_ref()).await;
    assert!(r.ok, "{:?}", r.error);
    // 4 + 2 data rows and 3 ranges read; .11 (RED, newest day), .12 (complaints), .13 (YELLOW),
    // .14 (trap hits, day before) and the 3 ranges are findings.
    assert_eq!((r.fetched, r.new, r.rejected, r.in_scope), (9, 7, 0, 7));
    let s = e.store.as_ref();
    let ip = |a: &str| query(s, Query::Ip(a.parse().unwrap()));
    assert!(ip("192.0.2.10").is_empty(), "GREEN, no traps, < 0.1%");
    let red = &ip("192.0.2.11")[0];
    assert_eq!(red.source, "snds");
    assert_eq!(red.severity, Severity::High);
    assert_eq!(
        red.extra["filter_result"], "RED",
        "yesterday wins over the day before"
    );
    assert_eq!(red.extra["trap_hits"], 12);
    assert_eq!(red.extra["rcpt_commands"], 48211);
    assert_eq!(red.extra["data_commands"], 47990);
    assert_eq!(red.extra["message_recipients"], 47985);
    assert_eq!(red.extra["sample_helo"], "mail.example.org");
    assert_eq!(red.extra["sample_mail_from"], "newsletter@example.org");
    assert_eq!(red.extra["complaint_rate"], "< 0.1%");
    assert_eq!(red.extra["activity_end"], "2026-11-22T07:00:00Z");
    assert_eq!(red.time_source, Some(t("2026-11-22T07:00:00Z")));
    let complaints = &ip("192.0.2.12")[0];
    assert_eq!(
        complaints.extra["reasons"],
        serde_json::json!(["complaints"])
    );
    assert_eq!(complaints.severity, Severity::Medium);
    assert_eq!(
        ip("192.0.2.13")[0].extra["comments"],
        "Abuse reported for: a@example.org, b@example.org"
    );
    assert_eq!(
        ip("192.0.2.14")[0].extra["reasons"],
        serde_json::json!(["trap-hits"])
    );

    // One finding per range, not per address.
    let blocked = ip("192.0.2.100");
    assert_eq!(blocked.len(), 1);
    assert_eq!(blocked[0].network.unwrap().to_string(), "192.0.2.64/26");
    assert_eq!(blocked[0].extra["exact_cidr"], true);
    assert_eq!(
        blocked[0].extra["reason"],
        "Blocked due to user complaints or other evidence of spamming"
    );
    let odd = ip("192.0.2.135");
    assert_eq!(odd[0].network.unwrap().to_string(), "192.0.2.128/28");
    assert_eq!(odd[0].extra["exact_cidr"], false);
    assert_eq!(odd[0].extra["first_ip"], "192.0.2.130");
    assert_eq!(odd[0].extra["last_ip"], "192.0.2.140");
    assert_eq!(
        odd[0].extra["cidrs"],
        serde_json::json!([
            "192.0.2.130/31",
            "192.0.2.132/30",
            "192.0.2.136/30",
            "192.0.2.140/32"
        ])
    );
    assert_eq!(
        ip("192.0.2.200")[0].network.unwrap().to_string(),
        "192.0.2.200/32"
    );
    assert_eq!(
        query(s, Query::Net("192.0.2.0/24".parse().unwrap())).len(),
        7
    );

    // The same report tomorrow: nothing new.
    e.clock.advance(chrono::Duration::hours(2));
    let r = e.runner.run_source(src.as_ref()).await;
    assert_eq!((r.new, r.updated), (0, 7));
}

#[tokio::test]
async fn empty_reports_are_clean() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).insert_header("content-type", "text/csv"))
        .expect(3)
        .mount(&server)
        .await;
    let e = env();
    let r = e.runner.run_source(build(&server).as_ref()).await;
    assert!(r.ok, "{:?}", r.error);
    assert_eq!((r.fetched, r.new), (0, 0));
}

#[tokio::test]
async fn expired_key_html_page_is_an_error() {
    let server = MockServer::start().await;
    mount_normal(&server).await;
    let e = env();
    assert!(e.runner.run_source(build(&server).as_ref()).await.ok);
    let before = all_findings(e.store.as_ref());

    let expired = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("content-type", "text/html; charset=utf-8")
                .set_body_bytes(fixture("snds/expired-key.html")),
        )
        .mount(&expired)
        .await;
    e.clock.advance(chrono::Duration::hours(1));
    let r = e.runner.run_source(build(&expired).as_ref()).await;
    let err = r.error.unwrap();
    assert!(err.contains("HTML") && err.contains("expired"), "{err}");
    assert!(!err.contains(KEY), "{err}");
    assert_eq!(all_findings(e.store.as_ref()), before);
}

#[tokio::test]
async fn unauthorised_is_an_auth_error() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(401).set_body_string(format!("key {KEY} unknown")))
        .mount(&server)
        .await;
    let e = env();
    let r = e.runner.run_source(build(&server).as_ref()).await;
    let err = r.error.unwrap();
    assert!(
        err.contains("401") && err.contains("sources.snds.key"),
        "{err}"
    );
    assert!(!err.contains(KEY), "{err}");
    assert_eq!(e.store.count().unwrap(), 0);
}

#[tokio::test]
async fn rate_limit_waits_for_retry_after_then_retries() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/snds/ipStatus.aspx"))
        .respond_with(ResponseTemplate::new(429).insert_header("retry-after", "3"))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    mount_normal(&server).await;
    let e = env();
    let r = e.runner.run_source(build(&server).as_ref()).await;
    assert!(r.ok, "{:?}", r.error);
    assert_eq!(r.new, 7);
    assert_eq!(e.clock.slept(), vec![Duration::from_secs(3)]);
}

#[tokio::test]
async fn malformed_rows_are_rejected_with_their_line() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/snds/data.aspx"))
        .and(query_param("date", "112226"))
        .respond_with(csv("snds/malformed-data.csv"))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/snds/data.aspx"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/snds/ipStatus.aspx"))
        .respond_with(ResponseTemplate::new(200).set_body_string(
            "192.0.2.9,192.0.2.1,Yes,reversed\r\nnot,an,ip,range\r\n192.0.2.5,192.0.2.5,Yes,Symantec Brightmail\r\n",
        ))
        .mount(&server)
        .await;
    let e = env();
    let r = e.runner.run_source(build(&server).as_ref()).await;
    assert!(r.ok, "{:?}", r.error);
    // Rejected: a bad IP and a cut-off row of data.aspx, both bad ranges of ipStatus.aspx. A
    // bad activity period or count is not the identity: those rows keep their findings.
    assert_eq!((r.fetched, r.new, r.rejected), (8, 4, 4));
    let runs = e.store.runs(Some("snds"), 1).unwrap();
    assert_eq!((runs[0].outcome.as_str(), runs[0].rejected), ("ok", 4));

    // Each rejected row names its request and line, and why; so does each warning.
    let (f, rej, warn, rows) =
        snds::parse_data_warned(&fixture("snds/malformed-data.csv"), "data.aspx date=112226");
    assert_eq!((f.len(), rows), (3, 5));
    let locs: Vec<&str> = rej.iter().map(|e| e.location.as_str()).collect();
    assert_eq!(
        locs,
        [2, 5]
            .map(|l| format!("data.aspx date=112226 line {l}"))
            .to_vec()
    );
    assert!(rej[0].message.contains("not an IP"), "{:?}", rej[0]);
    assert!(rej[1].message.contains("columns"), "{:?}", rej[1]);
    let locs: Vec<&str> = warn.iter().map(|e| e.location.as_str()).collect();
    assert_eq!(
        locs,
        [3, 4]
            .map(|l| format!("data.aspx date=112226 line {l}"))
            .to_vec()
    );
    assert!(warn[0].message.contains("M/D/YYYY"), "{:?}", warn[0]);
    assert!(warn[1].message.contains("RCPT"), "{:?}", warn[1]);
    let by_ip = |ip: &str| f.iter().find(|f| f.ip.unwrap().to_string() == ip).unwrap();
    assert_eq!(by_ip("192.0.2.15").extra["activity_start"], "yesterday");
    assert_eq!(by_ip("192.0.2.15").time_source, None);
    assert_eq!(by_ip("192.0.2.16").extra["rcpt_commands"], "many");
}

// ---------- conformance with the shared samples (skipped when absent) ----------

#[test]
fn shared_samples_parse() {
    let Some(dir) = samples("snds") else { return };
    let (f, rej, rows) =
        snds::parse_data(&std::fs::read(dir.join("data.csv")).unwrap(), "data.csv");
    assert_eq!((rows, rej.len()), (3, 0), "{rej:?}");
    assert_eq!(f.len(), 3, "all three rows have trap hits");
    let (f, rej, rows) = snds::parse_ip_status(
        &std::fs::read(dir.join("ipstatus.csv")).unwrap(),
        "ipstatus.csv",
    );
    assert_eq!((rows, rej.len(), f.len()), (5, 0, 5));
    let nets: Vec<String> = f.iter().map(|f| f.network.unwrap().to_string()).collect();
    assert_eq!(nets[0], "1.1.1.0/31");
    assert_eq!(nets[1], "1.1.1.3/32");
}
