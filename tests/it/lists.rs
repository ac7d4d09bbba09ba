//! List feeds end to end: each shipped feed's real format served by a local mock at its real
//! path, fetched through the pipeline into a temporary store, with a manual clock.

use crate::keyed_support::{Env, env_with, list_source, query, serve, t};
use crate::support;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use outwatch::config::Config;
use outwatch::finding::{Finding, Severity, Status};
use outwatch::pipeline::SourceReport;
use outwatch::scope::{AsnPrefixes, ScopeMatcher, ScopeSnapshot};
use outwatch::sources::Source;
use outwatch::sources::lists::parse::BodyError;
use outwatch::sources::lists::{self, FeedDef, process_body};
use outwatch::store::{Query, RunOutcome, Store};
use wiremock::matchers::{header, header_exists, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

fn fixture(rel: &str) -> Vec<u8> {
    support::fixture(&format!("lists/{rel}"))
}

fn t0() -> DateTime<Utc> {
    t("2026-11-20T08:00:00Z")
}

/// Our scope: AS64496 announces 198.51.100.0/24; configured 203.0.113.0/24, 2001:db8:1::/48
/// and example.org.
fn snapshot() -> ScopeSnapshot {
    ScopeSnapshot {
        asns: vec![AsnPrefixes {
            asn: 64496,
            prefixes: vec!["198.51.100.0/24".parse().unwrap()],
            ..Default::default()
        }],
        prefixes: vec![
            "203.0.113.0/24".parse().unwrap(),
            "2001:db8:1::/48".parse().unwrap(),
        ],
        domains: vec!["example.org".into()],
        emails: vec![],
    }
}

fn env() -> Env {
    env_with(t0(), &snapshot())
}

/// Builds the named list feed from a config snippet (`{base}` is the mock's address).
fn source(cfg: &str, base: &str, name: &str) -> Arc<dyn Source> {
    list_source(&cfg.replace("{base}", base), name)
}

fn based(name: &str) -> String {
    format!("[sources.{name}]\nbase_url = \"{{base}}\"\n")
}

fn all(store: &dyn Store, q: Query) -> Vec<Finding> {
    query(store, q)
}

fn ip(s: &str) -> Query {
    Query::Ip(s.parse().unwrap())
}

fn ok(r: &SourceReport) {
    assert!(r.ok, "{} failed: {:?}", r.name, r.error);
}

// ---------------------------------------------------------------------------------------------
// Feodo Tracker

#[tokio::test]
async fn feodo_keeps_only_our_ips_with_port_and_malware() {
    let server = MockServer::start().await;
    serve(
        &server,
        "/downloads/ipblocklist.csv",
        fixture("feodotracker/ipblocklist.csv"),
    )
    .await;
    let e = env();
    let src = source(&based("feodotracker"), &server.uri(), "feodotracker");
    let r = e.runner.run_source(src.as_ref()).await;
    ok(&r);
    assert_eq!((r.fetched, r.in_scope, r.new, r.rejected), (6, 2, 2, 0));
    assert_eq!(
        e.store.count().unwrap(),
        2,
        "out-of-scope entries are not stored"
    );

    let f = &all(e.store.as_ref(), ip("203.0.113.10"))[0];
    assert_eq!(f.source, "feodotracker");
    assert_eq!(f.feed, "ipblocklist");
    assert_eq!(f.classification.kind, "c2-server");
    assert_eq!(f.classification.taxonomy, "malicious-code");
    assert_eq!(f.classification.identifier, "pikabot");
    assert_eq!(f.port, Some(443));
    assert_eq!(f.severity, Severity::High);
    assert!(f.in_scope);
    assert_eq!(f.extra["status"], "online");
    assert_eq!(f.extra["matched_prefix"], "203.0.113.0/24");
    assert_eq!(
        f.time_source.unwrap().to_rfc3339(),
        "2026-11-08T19:20:49+00:00"
    );
    assert!(
        f.raw
            .as_deref()
            .unwrap()
            .ends_with("/downloads/ipblocklist.csv line 11"),
        "{:?}",
        f.raw
    );
    let g = &all(e.store.as_ref(), ip("198.51.100.7"))[0];
    assert_eq!(g.extra["matched_asn"], 64496);
    assert_eq!(g.classification.identifier, "emotet");
}

#[tokio::test]
async fn feodo_crlf_reads_the_same() {
    let server = MockServer::start().await;
    serve(
        &server,
        "/downloads/ipblocklist.csv",
        fixture("feodotracker/ipblocklist_crlf.csv"),
    )
    .await;
    let e = env();
    let src = source(&based("feodotracker"), &server.uri(), "feodotracker");
    let r = e.runner.run_source(src.as_ref()).await;
    ok(&r);
    assert_eq!((r.fetched, r.in_scope, r.rejected), (6, 2, 0));
    let f = &all(e.store.as_ref(), ip("203.0.113.10"))[0];
    assert_eq!(f.extra["last_online"], "2026-11-20", "no stray \\r");
}

#[tokio::test]
async fn malformed_rows_are_counted_with_their_line() {
    let server = MockServer::start().await;
    serve(
        &server,
        "/downloads/ipblocklist.csv",
        fixture("feodotracker/ipblocklist_malformed.csv"),
    )
    .await;
    let e = env();
    let src = source(&based("feodotracker"), &server.uri(), "feodotracker");
    let r = e.runner.run_source(src.as_ref()).await;
    ok(&r);
    assert_eq!((r.fetched, r.in_scope, r.rejected), (3, 1, 2));
    assert!(
        r.rejected_rows[0].location.ends_with("line 10"),
        "{:?}",
        r.rejected_rows
    );
    assert!(r.rejected_rows[0].message.contains("203.0.113.999"));
    assert!(
        r.rejected_rows[1].location.ends_with("line 11"),
        "{:?}",
        r.rejected_rows
    );
    assert!(r.rejected_rows[1].message.contains("fields"));
    assert_eq!(all(e.store.as_ref(), ip("203.0.113.11")).len(), 1);
}

#[tokio::test]
async fn truncated_body_fails_and_leaves_the_store_alone() {
    let server = MockServer::start().await;
    serve(
        &server,
        "/downloads/ipblocklist.csv",
        fixture("feodotracker/ipblocklist_truncated.csv"),
    )
    .await;
    let e = env();
    let src = source(&based("feodotracker"), &server.uri(), "feodotracker");
    let r = e.runner.run_source(src.as_ref()).await;
    assert!(!r.ok);
    let err = r.error.unwrap();
    assert!(err.contains("cut off"), "{err}");
    assert!(err.contains("# END {n} entries"), "{err}");
    assert_eq!(e.store.count().unwrap(), 0);
}

#[tokio::test]
async fn html_and_empty_bodies_are_errors() {
    let server = MockServer::start().await;
    serve(
        &server,
        "/downloads/ipblocklist.csv",
        b"<!DOCTYPE html><html><body>Moved</body></html>".to_vec(),
    )
    .await;
    serve(&server, "/downloads/csv_recent/", b"\n".to_vec()).await;
    let e = env();
    let r = e
        .runner
        .run_source(source(&based("feodotracker"), &server.uri(), "feodotracker").as_ref())
        .await;
    assert!(r.error.unwrap().contains("HTML"));
    let r = e
        .runner
        .run_source(source(&based("urlhaus"), &server.uri(), "urlhaus").as_ref())
        .await;
    assert!(r.error.unwrap().contains("empty"));
}

#[tokio::test]
async fn json_error_body_is_an_error() {
    let server = MockServer::start().await;
    serve(
        &server,
        "/downloads/csv_recent/",
        br##"{"query_status":"ratelimited","msg":"Your request has been rate-limited."}"##.to_vec(),
    )
    .await;
    let e = env();
    let r = e
        .runner
        .run_source(source(&based("urlhaus"), &server.uri(), "urlhaus").as_ref())
        .await;
    let err = r.error.unwrap();
    assert!(err.contains("ratelimited"), "{err}");
}

/// An empty list is fine; findings of entries that left the list resolve after the window.
#[tokio::test]
async fn entries_that_leave_the_list_resolve_after_the_window() {
    let server = MockServer::start().await;
    let e = env();
    let src = source(&based("feodotracker"), &server.uri(), "feodotracker");
    let run_with = |body: &'static str| {
        let server = &server;
        async move {
            server.reset().await;
            serve(server, "/downloads/ipblocklist.csv", fixture(body)).await;
        }
    };
    run_with("feodotracker/ipblocklist.csv").await;
    ok(&e.runner.run_source(src.as_ref()).await);

    // An hour later 198.51.100.7 is gone: still inside the 2-day window.
    e.clock.advance(chrono::Duration::hours(1));
    run_with("feodotracker/ipblocklist_v2.csv").await;
    let r = e.runner.run_source(src.as_ref()).await;
    ok(&r);
    assert_eq!((r.new, r.updated, r.resolved), (0, 1, 0));

    // Three days later: it resolves, the other one is still open.
    e.clock.advance(chrono::Duration::days(3));
    let r = e.runner.run_source(src.as_ref()).await;
    ok(&r);
    assert_eq!(r.resolved, 1);
    assert_eq!(
        all(e.store.as_ref(), ip("198.51.100.7"))[0].status,
        Status::Resolved
    );
    assert_ne!(
        all(e.store.as_ref(), ip("203.0.113.10"))[0].status,
        Status::Resolved
    );

    // The list empties: a complete, valid read; the rest resolves after the window.
    run_with("feodotracker/ipblocklist_empty.csv").await;
    let r = e.runner.run_source(src.as_ref()).await;
    ok(&r);
    assert_eq!((r.fetched, r.resolved), (0, 0));
    e.clock.advance(chrono::Duration::days(3));
    let r = e.runner.run_source(src.as_ref()).await;
    ok(&r);
    assert_eq!(r.resolved, 1);
    assert_eq!(
        all(e.store.as_ref(), ip("203.0.113.10"))[0].status,
        Status::Resolved
    );
}

#[tokio::test]
async fn second_fetch_is_conditional_and_304_changes_nothing() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/downloads/ipblocklist.csv"))
        .and(header("if-none-match", "\"66f1-5a2\""))
        // (wiremock splits header values at commas, so the date is only checked for presence)
        .and(header_exists("if-modified-since"))
        .respond_with(ResponseTemplate::new(304))
        .expect(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/downloads/ipblocklist.csv"))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("etag", "\"66f1-5a2\"")
                .insert_header("last-modified", "Fri, 20 Nov 2026 07:03:03 GMT")
                .set_body_bytes(fixture("feodotracker/ipblocklist.csv")),
        )
        .expect(1)
        .with_priority(2)
        .mount(&server)
        .await;
    let e = env();
    let src = source(&based("feodotracker"), &server.uri(), "feodotracker");
    let r = e.runner.run_source(src.as_ref()).await;
    ok(&r);
    assert_eq!(r.new, 2);
    e.clock.advance(chrono::Duration::days(5));
    let r = e.runner.run_source(src.as_ref()).await;
    ok(&r);
    assert!(r.not_modified);
    assert_eq!((r.new, r.updated, r.resolved), (0, 0, 0));
    let f = &all(e.store.as_ref(), ip("203.0.113.10"))[0];
    assert_ne!(f.status, Status::Resolved, "a 304 resolves nothing");
    assert_eq!(f.times_seen, 1);
}

// ---------------------------------------------------------------------------------------------
// Keys

#[tokio::test]
async fn missing_key_401_names_the_setting() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/export/csv/recent/"))
        .respond_with(
            ResponseTemplate::new(401).set_body_string(
                "{\"query_status\":\"unauthorized\",\"msg\":\"Auth-Key required\"}",
            ),
        )
        .mount(&server)
        .await;
    let e = env();
    let r = e
        .runner
        .run_source(source(&based("threatfox"), &server.uri(), "threatfox").as_ref())
        .await;
    assert!(!r.ok);
    let err = r.error.unwrap();
    assert!(err.contains("HTTP 401"), "{err}");
    assert!(err.contains("needs an abuse.ch Auth-Key"), "{err}");
    assert!(err.contains("sources.threatfox.auth_key"), "{err}");
    assert!(err.contains("auth_key_env"), "{err}");
}

#[tokio::test]
async fn keyed_export_puts_the_key_in_path_and_header_and_never_shows_it() {
    let server = MockServer::start().await;
    // The authenticated ThreatFox export of recent IOCs: the same CSV as the keyless one.
    Mock::given(method("GET"))
        .and(path("/v2/files/exports/k3y-s3cr3t-0123456789/recent.csv"))
        .and(header("auth-key", "k3y-s3cr3t-0123456789"))
        .respond_with(ResponseTemplate::new(200).set_body_bytes(fixture("threatfox/recent.csv")))
        .expect(1)
        .mount(&server)
        .await;
    let cfg = "[sources.threatfox]\nbase_url = \"{base}\"\nauth_key = \"k3y-s3cr3t-0123456789\"\n";
    let e = env();
    let src = source(cfg, &server.uri(), "threatfox");
    let r = e.runner.run_source(src.as_ref()).await;
    ok(&r);
    assert_eq!(r.in_scope, 4);
    for f in all(e.store.as_ref(), Query::Net("0.0.0.0/0".parse().unwrap()))
        .iter()
        .chain(&all(e.store.as_ref(), Query::Domain("example.org".into())))
    {
        let text = serde_json::to_string(f).unwrap();
        assert!(!text.contains("k3y-s3cr3t"), "{text}");
    }

    // A refused key: the error names the setting and hides the key.
    server.reset().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(401))
        .mount(&server)
        .await;
    let r = e.runner.run_source(src.as_ref()).await;
    let err = r.error.unwrap();
    assert!(err.contains("was refused"), "{err}");
    assert!(!err.contains("k3y-s3cr3t"), "{err}");
    assert!(err.contains("***redacted***"), "{err}");
}

#[tokio::test]
async fn needs_key_feed_without_key_fails_before_fetching() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("keyed.toml"),
        r##"
name = "keyed_list"
url = "https://lists.example.net/keyed.txt"
schedule = "0 0 * * * *"
resolve_after = "1d"
severity = "low"
[auth]
needs_key = true
header = "X-Key"
key_name = "Example key"
[format]
type = "lines"
[fields]
ip = 1
[classification]
type = "blacklist"
identifier = "keyed"
"##,
    )
    .unwrap();
    let cfg = format!("[feeds]\ndir = \"{}\"\n", dir.path().display());
    let e = env();
    let src = source(&cfg, "", "keyed_list");
    let r = e.runner.run_source(src.as_ref()).await;
    let err = r.error.unwrap();
    assert!(err.contains("keyed_list needs an Example key"), "{err}");
    assert!(err.contains("sources.keyed_list.auth_key"), "{err}");
}

// ---------------------------------------------------------------------------------------------
// URLhaus, ThreatFox, SSLBL

#[tokio::test]
async fn urlhaus_matches_hosts_ipv4_ipv6_and_domains() {
    let server = MockServer::start().await;
    serve(
        &server,
        "/downloads/csv_recent/",
        fixture("urlhaus/csv_recent.csv"),
    )
    .await;
    let e = env();
    let r = e
        .runner
        .run_source(source(&based("urlhaus"), &server.uri(), "urlhaus").as_ref())
        .await;
    ok(&r);
    assert_eq!((r.fetched, r.in_scope, r.rejected), (8, 3, 1));
    assert!(
        r.rejected_rows[0].location.ends_with("line 16"),
        "{:?}",
        r.rejected_rows
    );

    let f = &all(e.store.as_ref(), ip("203.0.113.45"))[0];
    assert_eq!(f.url.as_deref(), Some("http://203.0.113.45:43262/i"));
    assert!(
        f.raw
            .as_deref()
            .unwrap()
            .ends_with("/downloads/csv_recent/ line 11"),
        "{:?}",
        f.raw
    );
    assert_eq!(f.port, Some(43262));
    assert_eq!(f.classification.kind, "malware-distribution");
    assert_eq!(f.extra["tags"], "32-bit,elf,mips,Mozi");
    assert_eq!(f.extra["threat_type"], "malware_download");

    let v6 = &all(e.store.as_ref(), ip("2001:db8:1::5"))[0];
    assert_eq!(v6.port, Some(8080));
    assert_eq!(v6.extra["status"], "offline");
    assert!(!v6.extra.contains_key("last_online"), "empty is absent");

    let d = all(e.store.as_ref(), Query::Domain("example.org".into()));
    assert_eq!(
        d.len(),
        1,
        "badexample.org and example.org.evil.example are not ours"
    );
    assert_eq!(d[0].domain.as_deref(), Some("downloads.shop.example.org"));
    assert_eq!(d[0].extra["matched_domain"], "example.org");
    assert!(!d[0].extra.contains_key("tags"), "`None` is no value");
}

#[tokio::test]
async fn threatfox_ip_port_domain_url_and_skips_hashes() {
    let server = MockServer::start().await;
    serve(
        &server,
        "/export/csv/recent/",
        fixture("threatfox/recent.csv"),
    )
    .await;
    let e = env();
    let r = e
        .runner
        .run_source(source(&based("threatfox"), &server.uri(), "threatfox").as_ref())
        .await;
    ok(&r);
    assert_eq!((r.fetched, r.in_scope, r.rejected), (8, 4, 0));

    let f = &all(e.store.as_ref(), ip("203.0.113.20"))[0];
    assert_eq!(f.port, Some(8888), "ip:port keeps the port");
    assert!(
        f.raw.as_deref().unwrap().ends_with("line 12"),
        "{:?}",
        f.raw
    );
    assert_eq!(f.classification.identifier, "win.cobalt_strike");
    assert_eq!(
        f.extra["malware_alias"], "Agentemis,BEACON,CobaltStrike,cobeacon",
        "quoted commas survive the `\", \"` separator"
    );
    assert_eq!(f.extra["confidence_level"], "100");
    let v6 = &all(e.store.as_ref(), ip("2001:db8:1::20"))[0];
    assert_eq!(v6.port, Some(443));

    let d = all(e.store.as_ref(), Query::Domain("example.org".into()));
    assert_eq!(d.len(), 2);
    let c2 = d
        .iter()
        .find(|f| f.domain.as_deref() == Some("c2.example.org"))
        .unwrap();
    assert_eq!(c2.classification.kind, "c2-server");
    assert_eq!(c2.extra["is_compromised"], "True");
    let dl = d.iter().find(|f| f.url.is_some()).unwrap();
    assert_eq!(dl.classification.kind, "malware-distribution");
    assert_eq!(dl.extra["threat_type"], "payload_delivery");
}

#[tokio::test]
async fn sslbl_data_and_deprecated_empty_list() {
    let server = MockServer::start().await;
    serve(
        &server,
        "/blacklist/sslipblacklist.csv",
        fixture("sslbl/sslipblacklist.csv"),
    )
    .await;
    let e = env();
    let src = source(&based("sslbl"), &server.uri(), "sslbl");
    let r = e.runner.run_source(src.as_ref()).await;
    ok(&r);
    assert_eq!((r.fetched, r.in_scope), (2, 1));
    assert_eq!(
        all(e.store.as_ref(), ip("203.0.113.77"))[0].port,
        Some(8008)
    );

    server.reset().await;
    serve(
        &server,
        "/blacklist/sslipblacklist.csv",
        fixture("sslbl/sslipblacklist_deprecated.csv"),
    )
    .await;
    let r = e.runner.run_source(src.as_ref()).await;
    ok(&r);
    assert_eq!((r.fetched, r.rejected), (0, 0));
}

// ---------------------------------------------------------------------------------------------
// Spamhaus

#[tokio::test]
async fn spamhaus_drop_v4_and_v6_overlap_our_prefixes() {
    let server = MockServer::start().await;
    serve(
        &server,
        "/drop/drop_v4.json",
        fixture("spamhaus/drop_v4.json"),
    )
    .await;
    serve(
        &server,
        "/drop/drop_v6.json",
        fixture("spamhaus/drop_v6.json"),
    )
    .await;
    let e = env();
    let r = e
        .runner
        .run_source(source(&based("spamhaus_drop"), &server.uri(), "spamhaus_drop").as_ref())
        .await;
    ok(&r);
    assert_eq!((r.fetched, r.in_scope), (5, 2));
    let v4 = &all(
        e.store.as_ref(),
        Query::Net("203.0.113.0/24".parse().unwrap()),
    )[0];
    assert_eq!(v4.network.unwrap().to_string(), "203.0.113.128/25");
    assert_eq!(v4.extra["sblid"], "SBL699001");
    assert_eq!(v4.extra["matched_prefix"], "203.0.113.0/24");
    let v6 = &all(e.store.as_ref(), ip("2001:db8:1::1"))[0];
    assert_eq!(v6.network.unwrap().to_string(), "2001:db8::/32");
    assert_eq!(v6.source, "spamhaus_drop");
}

#[tokio::test]
async fn spamhaus_drop_truncated_is_an_error() {
    let server = MockServer::start().await;
    serve(
        &server,
        "/drop/drop_v4.json",
        fixture("spamhaus/drop_v4_truncated.json"),
    )
    .await;
    serve(
        &server,
        "/drop/drop_v6.json",
        fixture("spamhaus/drop_v6.json"),
    )
    .await;
    let e = env();
    let r = e
        .runner
        .run_source(source(&based("spamhaus_drop"), &server.uri(), "spamhaus_drop").as_ref())
        .await;
    // The cut part fails by name; the intact v6 part is kept; nothing resolves.
    assert_eq!(r.outcome, RunOutcome::Partial);
    assert_eq!(r.errors.len(), 1);
    assert!(
        r.errors[0].unit.ends_with("/drop/drop_v4.json"),
        "{:?}",
        r.errors
    );
    let err = r.error.unwrap();
    assert!(err.contains("cut off"), "{err}");
    assert_eq!(e.store.count().unwrap(), 1);
    assert!(
        all(e.store.as_ref(), ip("2001:db8:1::1"))
            .iter()
            .all(|f| f.network.unwrap().to_string() == "2001:db8::/32")
    );
}

#[tokio::test]
async fn spamhaus_drop_one_part_unchanged_is_read_again() {
    let server = MockServer::start().await;
    // v4 answers 304 to a conditional request; v6 changed. The v4 part must be read whole.
    Mock::given(method("GET"))
        .and(path("/drop/drop_v4.json"))
        .and(header_exists("if-none-match"))
        .respond_with(ResponseTemplate::new(304))
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/drop/drop_v4.json"))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("etag", "\"v4-1\"")
                .set_body_bytes(fixture("spamhaus/drop_v4.json")),
        )
        .with_priority(2)
        .mount(&server)
        .await;
    serve(
        &server,
        "/drop/drop_v6.json",
        fixture("spamhaus/drop_v6.json"),
    )
    .await;
    let e = env();
    let src = source(&based("spamhaus_drop"), &server.uri(), "spamhaus_drop");
    ok(&e.runner.run_source(src.as_ref()).await);
    e.clock.advance(chrono::Duration::days(3));
    let r = e.runner.run_source(src.as_ref()).await;
    ok(&r);
    assert!(!r.not_modified);
    assert_eq!((r.fetched, r.in_scope, r.updated, r.resolved), (5, 2, 2, 0));
}

#[tokio::test]
async fn asn_drop_listing_our_asn_is_critical() {
    let server = MockServer::start().await;
    serve(
        &server,
        "/drop/asndrop.json",
        fixture("spamhaus/asndrop.json"),
    )
    .await;
    let e = env();
    let r = e
        .runner
        .run_source(
            source(
                &based("spamhaus_asndrop"),
                &server.uri(),
                "spamhaus_asndrop",
            )
            .as_ref(),
        )
        .await;
    ok(&r);
    assert_eq!((r.fetched, r.in_scope, r.rejected), (3, 1, 0));
    let f = &all(e.store.as_ref(), Query::Asn(64496))[0];
    assert_eq!(f.source, "spamhaus_asndrop");
    assert_eq!(f.asn, Some(64496));
    assert_eq!(f.severity, Severity::Critical);
    assert_eq!(f.extra["as_name"], "EXAMPLE-AS");
    assert!(f.in_scope);
}

// ---------------------------------------------------------------------------------------------
// Format drift: byte-order marks, the older Feodo trailer, list times, networks around ours

#[tokio::test]
async fn feodo_with_a_bom_and_the_old_trailer_keeps_its_first_record() {
    for (file, rows) in [
        ("feodotracker/ipblocklist_bom_old_trailer.csv", 2),
        ("feodotracker/ipblocklist_bom_banner.csv", 1),
    ] {
        let server = MockServer::start().await;
        serve(&server, "/downloads/ipblocklist.csv", fixture(file)).await;
        let e = env();
        let src = source(&based("feodotracker"), &server.uri(), "feodotracker");
        let r = e.runner.run_source(src.as_ref()).await;
        assert!(r.ok, "{file}: {:?}", r.error);
        assert_eq!((r.fetched, r.in_scope, r.rejected), (rows, 1, 0), "{file}");
        let f = &all(e.store.as_ref(), ip("203.0.113.10"))[0];
        assert_eq!(f.port, Some(443), "{file}");
        assert_eq!(
            f.time_source.unwrap().to_rfc3339(),
            "2026-11-08T19:20:49+00:00",
            "{file}: the first column is found despite the BOM"
        );
    }
}

/// A byte-order mark glued to the first line must not cost the first entry of a one-per-line
/// list or of a JSON-lines list (the CSV reader skips it by itself).
#[test]
fn bom_does_not_cost_the_first_record_of_line_and_json_lines_lists() {
    let txt = FeedDef::parse(
        r##"
name = "feodo_txt"
url = "https://feodotracker.abuse.ch/downloads/ipblocklist.txt"
schedule = "0 7 * * * *"
resolve_after = "2d"
severity = "high"
[format]
type = "lines"
comment = "#"
trailer = "# END {n} entries"
[fields]
ip = 1
[classification]
type = "c2-server"
identifier = "feodo"
"##,
        "inline",
    )
    .unwrap();
    let scope = ScopeMatcher::new(&snapshot());
    let body = b"\xEF\xBB\xBF203.0.113.10\n198.51.100.7\n# END (2) entries\n";
    let p = process_body(&txt, "feodo_txt", body, "x", &scope).unwrap();
    assert_eq!((p.fetched, p.findings.len(), p.rejected.len()), (2, 2, 0));
    let d = def("spamhaus_drop");
    let body =
        b"\xEF\xBB\xBF{\"cidr\":\"203.0.113.0/25\",\"sblid\":\"SBL1\",\"rir\":\"ripencc\"}\n\
{\"type\":\"metadata\",\"timestamp\":1795672042,\"size\":1,\"records\":1}\n";
    let p = process_body(&d, "spamhaus_drop", body, "x", &scope).unwrap();
    assert_eq!((p.fetched, p.findings.len(), p.rejected.len()), (1, 1, 0));
}

#[test]
fn old_feodo_trailer_still_checks_the_count() {
    let d = def("feodotracker");
    let body = b"\"first_seen_utc\",\"dst_ip\",\"dst_port\",\"c2_status\",\"last_online\",\"malware\"\n\
\"2026-11-08 19:20:49\",\"203.0.113.10\",\"443\",\"online\",\"2026-11-20\",\"Pikabot\"\n# END (3) entries\n";
    let e = process_body(&d, "feodotracker", body, "x", &scope_of(&[], &[])).unwrap_err();
    assert!(
        matches!(
            e,
            BodyError::CountMismatch {
                announced: 3,
                read: 1,
                ..
            }
        ),
        "{e}"
    );
}

#[tokio::test]
async fn spamhaus_findings_take_the_lists_time_and_name_our_prefix_inside() {
    let server = MockServer::start().await;
    serve(
        &server,
        "/drop/asndrop.json",
        fixture("spamhaus/asndrop.json"),
    )
    .await;
    let e = env();
    let src = source(
        &based("spamhaus_asndrop"),
        &server.uri(),
        "spamhaus_asndrop",
    );
    ok(&e.runner.run_source(src.as_ref()).await);
    let f = &all(e.store.as_ref(), Query::Asn(64496))[0];
    // metadata "timestamp": 1795672042
    assert_eq!(
        f.time_source.unwrap().to_rfc3339(),
        "2026-11-26T05:47:22+00:00"
    );
    // A DROP network larger than our prefix: the prefix of ours inside it is named.
    let d = def("spamhaus_drop");
    let body = b"{\"cidr\":\"198.51.0.0/16\",\"sblid\":\"SBL1\",\"rir\":\"arin\"}\n\
{\"type\":\"metadata\",\"timestamp\":1795672042,\"size\":1,\"records\":1}\n";
    let scope = ScopeMatcher::new(&snapshot());
    let p = process_body(&d, "spamhaus_drop", body, "x", &scope).unwrap();
    assert_eq!(p.findings.len(), 1);
    let f = &p.findings[0];
    assert_eq!(f.extra["matched_prefix"], "198.51.100.0/24");
    assert_eq!(f.extra["matched_asn"], 64496);
    assert!(f.time_source.is_some());
}

// ---------------------------------------------------------------------------------------------
// URLhaus per ASN (`{asn}` in a feed file: one URL, one unit, per configured ASN)

#[tokio::test]
async fn urlhaus_asn_feed_sees_a_customer_domain_on_our_address() {
    let server = MockServer::start().await;
    serve(
        &server,
        "/feeds/asn/64496/",
        fixture("urlhaus_asn/asn64496.csv"),
    )
    .await;
    Mock::given(method("GET"))
        .and(path("/feeds/asn/64511/"))
        .respond_with(ResponseTemplate::new(503))
        .mount(&server)
        .await;
    let e = env();
    let cfg = format!(
        "[organisation]\nasns = [64496, 64511]\n\n{}",
        based("urlhaus_asn")
    );
    let src = source(&cfg, &server.uri(), "urlhaus_asn");
    let r = e.runner.run_source(src.as_ref()).await;
    // The second ASN's unit failed and is named; the first one's entries are kept.
    assert_eq!(r.outcome, RunOutcome::Partial, "{r:?}");
    assert_eq!(r.errors.len(), 1, "{:?}", r.errors);
    assert!(
        r.errors[0].unit.ends_with("/feeds/asn/64511/"),
        "{:?}",
        r.errors
    );
    assert_eq!(
        (r.fetched, r.in_scope, r.rejected, r.warnings),
        (3, 3, 0, 1)
    );
    // A malware URL on a customer's domain, hosted on our address: matched by the IP column.
    let f = &all(e.store.as_ref(), ip("198.51.100.23"))[0];
    assert_eq!(f.source, "urlhaus_asn");
    assert_eq!(f.feed, "asn");
    assert_eq!(
        f.url.as_deref(),
        Some("http://shop.customer-example.net/wp-content/uploads/inv_2211.exe")
    );
    assert_eq!(f.classification.kind, "malware-distribution");
    assert_eq!(
        f.time_source.unwrap().to_rfc3339(),
        "2026-11-19T21:14:03+00:00"
    );
    assert_eq!(f.extra["host"], "shop.customer-example.net");
    assert_eq!(f.extra["status"], "online");
    assert_eq!(f.extra["matched_prefix"], "198.51.100.0/24");
    assert!(f.in_scope);
    // An IP-literal URL keeps its port.
    let f = &all(e.store.as_ref(), ip("198.51.100.40"))[0];
    assert_eq!(f.port, Some(8080));
    // A malformed address beside a good URL costs nothing: kept by the ASN, value in extra.
    let f = &all(
        e.store.as_ref(),
        Query::Domain("files.other-customer.example".into()),
    )[0];
    assert_eq!(f.extra["ip"], "203.0.113.250.1");
    assert_eq!(f.extra["matched_asn"], 64496);
}

#[test]
fn per_asn_feed_expands_one_url_per_asn_and_needs_asns() {
    let d = std::sync::Arc::new(def("urlhaus_asn"));
    let s = lists::ListSource::with_asns(d.clone(), None, &[64496, 64511]).unwrap();
    assert_eq!(
        s.shown_urls(),
        vec![
            "https://urlhaus.abuse.ch/feeds/asn/64496/".to_string(),
            "https://urlhaus.abuse.ch/feeds/asn/64511/".to_string()
        ]
    );
    let e = lists::ListSource::with_asns(d, None, &[]).unwrap_err();
    assert!(e.to_string().contains("asns"), "{e}");
    // On by default only when there is an ASN to ask about.
    let c = Config::parse(
        "",
        Path::new("/nonexistent/outwatch.toml"),
        &outwatch::sources::Registry,
    )
    .unwrap();
    assert!(
        !lists::build_enabled(&c)
            .iter()
            .any(|(n, _)| n == "urlhaus_asn")
    );
}

#[test]
fn samples_urlhaus_tld_feed_layout() {
    let Some(s) = support::samples("") else {
        return;
    };
    let d = def("urlhaus_asn");
    let b = std::fs::read(s.join("abusech/urlhaus_feed_tld_2019-02-13_intelmq-test.csv")).unwrap();
    // Matched by the hosting address (a host name that is not ours).
    let p = process_body(
        &d,
        "urlhaus_asn",
        &b,
        "sample",
        &scope_of(&["83.166.138.0/24"], &[]),
    )
    .unwrap();
    assert_eq!((p.fetched, p.findings.len(), p.rejected.len()), (2, 1, 0));
    assert_eq!(p.findings[0].domain.as_deref(), Some("cbd-planet.ch"));
    // ... or by the ASN column.
    let p = process_body(&d, "urlhaus_asn", &b, "sample", &scope_of(&[], &[29083])).unwrap();
    assert_eq!(p.findings.len(), 1);
    assert_eq!(p.findings[0].asn, Some(29083));
}

// ---------------------------------------------------------------------------------------------
// User feeds

#[tokio::test]
async fn user_feed_file_adds_a_list_without_code() {
    let server = MockServer::start().await;
    serve(&server, "/bad-ips.txt", fixture("my_blocklist/bad-ips.txt")).await;
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/lists/userfeeds");
    let cfg = format!(
        "[feeds]\ndir = \"{}\"\n[sources.my_blocklist]\nbase_url = \"{{base}}\"\n",
        dir.display()
    );
    let c = Config::parse(
        &cfg.replace("{base}", "http://x"),
        Path::new("/nonexistent/outwatch.toml"),
        &outwatch::sources::Registry,
    )
    .unwrap();
    assert!(lists::known_feed_names(&c).contains(&"my_blocklist".to_string()));
    let e = env();
    let r = e
        .runner
        .run_source(source(&cfg, &server.uri(), "my_blocklist").as_ref())
        .await;
    ok(&r);
    assert_eq!((r.fetched, r.in_scope, r.rejected), (5, 2, 1));
    let f = &all(e.store.as_ref(), ip("203.0.113.99"))[0];
    assert_eq!(f.classification.taxonomy, "information-gathering");
    assert_eq!(f.severity, Severity::Medium);
}

#[test]
fn broken_user_feed_file_fails_the_config_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("bad.toml"), "name = \"bad\"\nurl = 7\n").unwrap();
    let cfg = format!("[feeds]\ndir = \"{}\"\n", dir.path().display());
    let e = Config::parse(
        &cfg,
        Path::new("/x/outwatch.toml"),
        &outwatch::sources::Registry,
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("bad.toml"), "{e}");
}

#[test]
fn builtin_feeds_are_enabled_by_default_and_can_be_switched_off() {
    let c = Config::parse(
        "",
        Path::new("/x/outwatch.toml"),
        &outwatch::sources::Registry,
    )
    .unwrap();
    let names: Vec<String> = lists::build_enabled(&c)
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    // Every built-in but the per-ASN feed, which is on only when there is an ASN to ask about.
    let per_asn: Vec<&str> = lists::BUILTIN
        .iter()
        .copied()
        .filter(|n| *n != "urlhaus_asn")
        .collect();
    assert_eq!(names, per_asn);
    let c = Config::parse(
        "[sources.sslbl]\nenabled = false\n",
        Path::new("/x/outwatch.toml"),
        &outwatch::sources::Registry,
    )
    .unwrap();
    let names: Vec<String> = lists::build_enabled(&c)
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    assert!(!names.contains(&"sslbl".to_string()));
}

// ---------------------------------------------------------------------------------------------
// Conformance with the real samples in ../shared/samples (skipped when absent)

fn def(name: &str) -> FeedDef {
    lists::builtin_defs()
        .into_iter()
        .find(|d| d.name == name)
        .unwrap()
}

fn scope_of(prefixes: &[&str], asns: &[u32]) -> ScopeMatcher {
    ScopeMatcher::new(&ScopeSnapshot {
        asns: asns
            .iter()
            .map(|a| AsnPrefixes {
                asn: *a,
                ..Default::default()
            })
            .collect(),
        prefixes: prefixes.iter().map(|p| p.parse().unwrap()).collect(),
        domains: vec![],
        emails: vec![],
    })
}

#[test]
fn samples_feodo_csv_complete_files_pass_their_trailer() {
    let Some(s) = support::samples("") else {
        return;
    };
    let d = def("feodotracker");
    let scope = scope_of(&["213.199.41.33/32", "162.243.103.246/32"], &[]);
    let b = std::fs::read(s.join("abusech/feodo_ipblocklist_2024-04-04.csv")).unwrap();
    let p = process_body(&d, "feodotracker", &b, "sample", &scope).unwrap();
    assert_eq!((p.fetched, p.findings.len(), p.rejected.len()), (28, 1, 0));
    assert_eq!(p.findings[0].port, Some(13721));
    let b = std::fs::read(s.join("abusech/feodo_ipblocklist_2025-06-25.csv")).unwrap();
    let p = process_body(&d, "feodotracker", &b, "sample", &scope).unwrap();
    assert_eq!((p.fetched, p.findings.len()), (1, 1));
    assert_eq!(p.findings[0].classification.identifier, "emotet");
}

#[test]
fn samples_feodo_other_layouts_via_feed_files() {
    let Some(s) = support::samples("") else {
        return;
    };
    // The JSON and recommended-TXT layouts, described by feed files only.
    let json = FeedDef::parse(
        r##"
name = "feodo_json"
url = "https://feodotracker.abuse.ch/downloads/ipblocklist.json"
schedule = "0 0 * * * *"
resolve_after = "2d"
severity = "high"
[format]
type = "json"
[fields]
ip = "ip_address"
port = "port"
asn = "as_number"
time = "first_seen"
malware = "malware"
[extra]
hostname = "hostname"
[classification]
type = "c2-server"
identifier = "feodo"
"##,
        "inline",
    )
    .unwrap();
    let b = std::fs::read(s.join("abusech/feodo_ipblocklist_json_2022-11-15_intelmq-test.json"))
        .unwrap();
    // AS16276 as ours: every OVH entry is in scope by its as_number.
    let p = process_body(&json, "feodo_json", &b, "sample", &scope_of(&[], &[16276])).unwrap();
    assert!(p.rejected.is_empty(), "{:?}", p.rejected);
    assert!(p.fetched >= 3);
    assert!(
        p.findings
            .iter()
            .all(|f| f.asn == Some(16276) && f.in_scope)
    );
    assert_eq!(p.findings[0].extra["hostname"], "srv-web.ffconsulting.com");

    let txt = FeedDef::parse(
        r##"
name = "feodo_txt"
url = "https://feodotracker.abuse.ch/downloads/ipblocklist_recommended.txt"
schedule = "0 0 * * * *"
resolve_after = "2d"
severity = "high"
[format]
type = "lines"
trailer = "# END {n} entries"
[fields]
ip = 1
[classification]
type = "c2-server"
identifier = "feodo"
"##,
        "inline",
    )
    .unwrap();
    let b =
        std::fs::read(s.join("abusech/feodo_ipblocklist_recommended_txt_2022-07-08_TRUNCATED.txt"))
            .unwrap();
    // The sample keeps the original trailer (244) over 8 rows: detected as cut off.
    let e = process_body(&txt, "feodo_txt", &b, "sample", &scope_of(&[], &[])).unwrap_err();
    assert!(
        matches!(
            e,
            BodyError::CountMismatch {
                announced: 244,
                read: 8,
                ..
            }
        ),
        "{e}"
    );
}

#[test]
fn samples_urlhaus_both_layouts() {
    let Some(s) = support::samples("") else {
        return;
    };
    let d = def("urlhaus");
    let scope = scope_of(&["222.138.150.0/24", "45.137.22.0/24"], &[]);
    let b = std::fs::read(s.join("abusech/urlhaus_csv_recent_2026-02-26_TRUNCATED.csv")).unwrap();
    let p = process_body(&d, "urlhaus", &b, "sample", &scope).unwrap();
    assert_eq!((p.fetched, p.findings.len(), p.rejected.len()), (10, 2, 0));
    assert!(p.findings.iter().all(|f| f.port == Some(43262)));
    let b = std::fs::read(
        s.join("abusech/urlhaus_csv_recent_2019-11-27_OLD-8col-format_TRUNCATED.csv"),
    )
    .unwrap();
    let p = process_body(&d, "urlhaus", &b, "sample", &scope).unwrap();
    assert_eq!((p.fetched, p.findings.len(), p.rejected.len()), (4, 2, 0));
    assert!(!p.findings[0].extra.contains_key("last_online"));
}

#[test]
fn samples_threatfox_14_columns() {
    let Some(s) = support::samples("") else {
        return;
    };
    let d = def("threatfox");
    let b =
        std::fs::read(s.join("abusech/threatfox_full_csv_2024-07-16_14col_TRUNCATED.csv")).unwrap();
    let scope = scope_of(&["91.208.73.0/24"], &[]);
    // The truncated sample keeps the full dump's trailer: the mismatch is detected...
    let e = process_body(&d, "threatfox", &b, "sample", &scope).unwrap_err();
    assert!(
        matches!(
            e,
            BodyError::CountMismatch {
                announced: 1217668,
                ..
            }
        ),
        "{e}"
    );
    // ...and without the trailer, every row reads.
    let text = String::from_utf8(b).unwrap();
    let body: String = text
        .lines()
        .filter(|l| !l.starts_with("# Number of entries"))
        .map(|l| format!("{l}\n"))
        .collect();
    let p = process_body(&d, "threatfox", body.as_bytes(), "sample", &scope).unwrap();
    assert_eq!((p.fetched, p.findings.len(), p.rejected.len()), (5, 1, 0));
    assert_eq!(p.findings[0].port, Some(82));
    assert_eq!(
        p.findings[0].extra["tags"],
        "CobaltStrike,cs-watermark-100000"
    );
}

#[test]
fn samples_sslbl_and_spamhaus_legacy_text() {
    let Some(s) = support::samples("") else {
        return;
    };
    let d = def("sslbl");
    let b =
        std::fs::read(s.join("abusech/sslbl_sslipblacklist_csv_2022-07-28_TRUNCATED.csv")).unwrap();
    let p = process_body(
        &d,
        "sslbl",
        &b,
        "sample",
        &scope_of(&["62.210.57.0/24"], &[]),
    )
    .unwrap();
    assert_eq!((p.fetched, p.findings.len()), (2, 1));
    let b =
        std::fs::read(s.join("abusech/sslbl_sslipblacklist_DEPRECATED_2025-01-02.txt")).unwrap();
    let p = process_body(&d, "sslbl", &b, "sample", &scope_of(&[], &[])).unwrap();
    assert_eq!(p.fetched, 0);
    assert_eq!(p.notices.len(), 1);

    // Legacy Spamhaus TXT, described by feed files.
    let drop = FeedDef::parse(
        r##"
name = "drop_txt"
url = "https://www.spamhaus.org/drop/drop.txt"
schedule = "0 0 * * * *"
resolve_after = "2d"
severity = "high"
[format]
type = "lines"
comment = ";"
separator = ";"
[fields]
network = 1
[extra]
sblid = 2
[classification]
type = "blacklist"
identifier = "spamhaus-drop"
"##,
        "inline",
    )
    .unwrap();
    let b = std::fs::read(s.join("spamhaus/drop.txt")).unwrap();
    let p = process_body(
        &drop,
        "drop_txt",
        &b,
        "s",
        &scope_of(&["2a06:e480:1::/48"], &[]),
    )
    .unwrap();
    assert_eq!((p.fetched, p.findings.len()), (2, 1));
    assert_eq!(p.findings[0].extra["sblid"], "SBL301771");
    let asn = FeedDef::parse(
        r##"
name = "asndrop_txt"
url = "https://www.spamhaus.org/drop/asndrop.txt"
schedule = "0 0 * * * *"
resolve_after = "2d"
severity = "critical"
[format]
type = "lines"
comment = ";"
separator = ";"
[fields]
asn = 1
[extra]
as_info = 2
[classification]
type = "blacklist"
identifier = "spamhaus-asndrop"
"##,
        "inline",
    )
    .unwrap();
    let b = std::fs::read(s.join("spamhaus/asndrop.txt")).unwrap();
    let p = process_body(&asn, "asndrop_txt", &b, "s", &scope_of(&[], &[10516])).unwrap();
    assert_eq!((p.fetched, p.findings.len()), (2, 1));
    assert_eq!(p.findings[0].asn, Some(10516));
    assert_eq!(p.findings[0].severity, Severity::Critical);
}

// ---------------------------------------------------------------------------------------------
// The CLI, end to end: `fetch --json` then `lookup --json`

fn outwatch(cfg: &Path, data: &Path, args: &[&str]) -> (i32, serde_json::Value, String) {
    let out = assert_cmd::Command::cargo_bin("outwatch")
        .unwrap()
        .env_remove("OUTWATCH_CONFIG")
        .env_remove("OUTWATCH_DATA_DIR")
        .env_remove("ABUSECH_AUTH_KEY")
        .arg("--config")
        .arg(cfg)
        .arg("--data-dir")
        .arg(data)
        .args(args)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let json = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("{args:?}: not JSON ({e}): {stdout}\n{stderr}"));
    (out.status.code().unwrap_or(-1), json, stderr)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_fetch_json_then_lookup_shows_the_feed() {
    let server = MockServer::start().await;
    serve(
        &server,
        "/downloads/ipblocklist.csv",
        fixture("feodotracker/ipblocklist.csv"),
    )
    .await;
    serve(
        &server,
        "/drop/asndrop.json",
        fixture("spamhaus/asndrop.json"),
    )
    .await;
    serve(
        &server,
        "/data/announced-prefixes/data.json",
        fixture("ripestat/announced-prefixes_AS64496.json"),
    )
    .await;
    Mock::given(method("GET"))
        .and(path("/downloads/csv_recent/"))
        .respond_with(ResponseTemplate::new(403))
        .mount(&server)
        .await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("outwatch.toml");
    let base = server.uri();
    std::fs::write(
        &cfg,
        format!(
            r##"
[organisation]
name = "Example Org"
asns = [64496]
prefixes = ["203.0.113.0/24", "2001:db8:1::/48"]
domains = ["example.org"]
[scope]
ripestat_url = "{base}"
[sources.feodotracker]
base_url = "{base}"
[sources.spamhaus_asndrop]
base_url = "{base}"
[sources.urlhaus]
base_url = "{base}"
"##
        ),
    )
    .unwrap();
    let data = dir.path().join("data");
    let (cfg2, data2) = (cfg.clone(), data.clone());
    let (code, json, stderr) = tokio::task::spawn_blocking(move || {
        outwatch(
            &cfg2,
            &data2,
            &[
                "fetch",
                "--source",
                "feodotracker",
                "--source",
                "spamhaus_asndrop",
                "--json",
            ],
        )
    })
    .await
    .unwrap();
    assert_eq!(code, 0, "{json}\n{stderr}");
    let s = &json["sources"];
    assert_eq!(s[0]["name"], "feodotracker");
    assert_eq!(s[0]["ok"], true);
    assert_eq!(s[0]["fetched"], 6);
    assert_eq!(s[0]["in_scope"], 2, "198.51.100.7 is ours through AS64496");
    assert_eq!(s[0]["new"], 2);
    assert_eq!(s[0]["updated"], 0);
    assert_eq!(s[0]["resolved"], 0);
    assert!(s[0]["error"].is_null());
    assert_eq!(s[1]["name"], "spamhaus_asndrop");
    assert_eq!(s[1]["in_scope"], 1);

    let (cfg2, data2) = (cfg.clone(), data.clone());
    let (code, json, _) = tokio::task::spawn_blocking(move || {
        outwatch(&cfg2, &data2, &["lookup", "203.0.113.10", "--json"])
    })
    .await
    .unwrap();
    assert_eq!(code, 0);
    assert_eq!(json["in_scope"], true);
    let f = &json["findings"][0];
    assert_eq!(f["source"], "feodotracker");
    assert_eq!(f["port"], 443);
    assert_eq!(f["classification"]["type"], "c2-server");
    assert_eq!(f["status"], "new");

    let (cfg2, data2) = (cfg.clone(), data.clone());
    let (_, json, _) = tokio::task::spawn_blocking(move || {
        outwatch(&cfg2, &data2, &["lookup", "AS64496", "--json"])
    })
    .await
    .unwrap();
    let f = &json["findings"][0];
    assert_eq!(f["source"], "spamhaus_asndrop");
    assert_eq!(f["asn"], 64496);
    assert_eq!(f["severity"], "critical");

    // A failing feed: exit 1, the failure named, the key setting in the error.
    let (cfg2, data2) = (cfg.clone(), data.clone());
    let (code, json, stderr) = tokio::task::spawn_blocking(move || {
        outwatch(
            &cfg2,
            &data2,
            &[
                "fetch",
                "--source",
                "urlhaus",
                "--source",
                "feodotracker",
                "--json",
            ],
        )
    })
    .await
    .unwrap();
    assert_eq!(code, 1);
    assert!(stderr.contains("urlhaus"), "{stderr}");
    let by = |n: &str| {
        json["sources"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["name"] == n)
            .unwrap()
            .clone()
    };
    let u = by("urlhaus");
    assert_eq!(u["ok"], false);
    let err = u["error"].as_str().unwrap();
    assert!(
        err.contains("HTTP 403") && err.contains("sources.urlhaus.auth_key"),
        "{err}"
    );
    let f = by("feodotracker");
    assert_eq!(f["ok"], true);
    assert_eq!(f["updated"], 2);
}

#[test]
fn docs_example_feed_file_parses() {
    let doc =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/lists.md")).unwrap();
    let start = doc
        .find("# feeds.d/example_cert.toml")
        .expect("example in docs");
    let block: String = doc[start..]
        .lines()
        .take_while(|l| l.trim() != "```")
        .map(|l| format!("{}\n", l.strip_prefix("   ").unwrap_or(l)))
        .collect();
    let def = FeedDef::parse(&block, "docs/lists.md").unwrap();
    assert_eq!(def.name, "example_cert");
    // And the example really reads such a list.
    let body = "# id,first_seen,dst_ip,dst_port,family,threat,status,x,reporter\n\
                \"1\",\"2026-11-20 10:00:00\",\"203.0.113.5\",\"443\",\"Emotet\",\"botnet_cc\",\"online\",\"\",\"me\"\n\
                # END 1 entries\n";
    let p = process_body(
        &def,
        "example_cert",
        body.as_bytes(),
        "doc",
        &ScopeMatcher::new(&snapshot()),
    )
    .unwrap();
    assert_eq!(p.findings.len(), 1);
    assert_eq!(p.findings[0].extra["reporter"], "me");
    assert_eq!(p.findings[0].classification.identifier, "emotet");
}

#[test]
fn feed_file_mistakes_are_named() {
    let base = r##"
name = "x"
url = "https://lists.example.net/x.csv"
schedule = "0 0 * * * *"
resolve_after = "1d"
severity = "low"
[classification]
type = "blacklist"
identifier = "x"
"##;
    let cases = [
        // (extra TOML, expected words in the error)
        (
            "[format]\ntype = \"csv\"\nheader = \"none\"\n[fields]\nip = \"dst_ip\"\n",
            "by number",
        ),
        (
            "[format]\ntype = \"lines\"\n[fields]\nport = 2\n",
            "no indicator",
        ),
        (
            "[format]\ntype = \"csv\"\nheader = \"row\"\nseparator = \";;\"\n[fields]\nip = 1\n",
            "separator",
        ),
        (
            "[format]\ntype = \"lines\"\n[fields]\nip = 0\n",
            "numbered from 1",
        ),
        ("[format]\ntype = \"xml\"\n[fields]\nip = 1\n", "xml"),
        (
            "[format]\ntype = \"lines\"\n[fields]\nipaddr = 1\n",
            "ipaddr",
        ),
    ];
    for (extra, want) in cases {
        let e = FeedDef::parse(&format!("{base}{extra}"), "x.toml")
            .unwrap_err()
            .to_string();
        assert!(e.contains("x.toml") && e.contains(want), "{extra}: {e}");
    }
    let e = FeedDef::parse(
        &format!(
            "{}[format]\ntype = \"lines\"\n[fields]\nip = 1\n",
            base.replace("\"x\"\nurl", "\"hibp\"\nurl")
        ),
        "h.toml",
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("built-in source"), "{e}");
    // flows is a built-in source too: a list feed of that name would mix with its findings.
    let e = FeedDef::parse(
        &format!(
            "{}[format]\ntype = \"lines\"\n[fields]\nip = 1\n",
            base.replace("\"x\"\nurl", "\"flows\"\nurl")
        ),
        "f.toml",
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("`name = \"flows\"` is the name of a built-in source"),
        "{e}"
    );
}

#[tokio::test]
async fn header_without_a_needed_column_fails_loudly() {
    let server = MockServer::start().await;
    serve(
        &server,
        "/downloads/ipblocklist.csv",
        b"# banner\n\"first_seen_utc\",\"ip\",\"port\"\n\"2026-11-20 10:00:00\",\"203.0.113.5\",\"80\"\n# END 1 entries".to_vec(),
    )
    .await;
    let e = env();
    let r = e
        .runner
        .run_source(source(&based("feodotracker"), &server.uri(), "feodotracker").as_ref())
        .await;
    let err = r.error.unwrap();
    assert!(err.contains("no column `dst_ip`"), "{err}");
    assert_eq!(e.store.count().unwrap(), 0);
}

/// A server that closes the connection mid-body, without a `Content-Length`: the half list
/// is a failed fetch (nothing stored, nothing resolved), and the whole list next time is read.
#[tokio::test]
async fn a_body_cut_off_without_content_length_is_a_failure() {
    let body = fixture("urlhaus/csv_recent.csv");
    // Cut inside the fourth data row.
    let cut = body.windows(9).position(|w| w == b"\"3886234\"").unwrap() + 20;
    let base = support::serve_cut(vec![(body.clone(), Some(cut)), (body, None)]);
    let e = env();
    let src = source(&based("urlhaus"), &base, "urlhaus");
    let r = e.runner.run_source(src.as_ref()).await;
    assert!(!r.ok);
    assert_eq!(r.outcome, RunOutcome::Error);
    let err = r.error.unwrap();
    assert!(err.contains("cut off"), "{err}");
    assert_eq!(e.store.count().unwrap(), 0);
    let r = e.runner.run_source(src.as_ref()).await;
    ok(&r);
    assert_eq!(r.in_scope, 3);
}

/// Feodo Tracker CSV with `n` C2 entries inside 203.0.113.0/24, trailer included.
fn feodo_with(n: usize) -> Vec<u8> {
    let mut s = String::from(
        "#\n\"first_seen_utc\",\"dst_ip\",\"dst_port\",\"c2_status\",\"last_online\",\"malware\"\n",
    );
    for i in 0..n {
        s.push_str(&format!(
            "\"2026-11-08 19:20:49\",\"203.0.113.{}\",\"443\",\"online\",\"2026-11-20\",\"Pikabot\"\n",
            10 + i
        ));
    }
    s.push_str(&format!("# END {n} entries"));
    s.into_bytes()
}

/// A list that suddenly loses most of our entries does not resolve them in one run: the drop
/// is reported (the run is partial) and resolves only when the next run sees it again.
#[tokio::test]
async fn a_suspicious_drop_is_held_back_once() {
    let server = MockServer::start().await;
    let e = env();
    let src = source(&based("feodotracker"), &server.uri(), "feodotracker");
    serve(&server, "/downloads/ipblocklist.csv", feodo_with(10)).await;
    ok(&e.runner.run_source(src.as_ref()).await);
    // Three days later only 2 of the 10 are listed: 8 would resolve (80 % > 50 %).
    e.clock.advance(chrono::Duration::days(3));
    server.reset().await;
    serve(&server, "/downloads/ipblocklist.csv", feodo_with(2)).await;
    let r = e.runner.run_source(src.as_ref()).await;
    assert_eq!(r.outcome, RunOutcome::Partial);
    assert_eq!(r.resolved, 0);
    let drop = r.suspicious_drop.clone().unwrap();
    assert!(drop.contains("8 of 10"), "{drop}");
    assert_ne!(
        all(e.store.as_ref(), ip("203.0.113.19"))[0].status,
        Status::Resolved
    );
    let runs = e.store.runs(Some("feodotracker"), 1).unwrap();
    assert_eq!(runs[0].outcome, RunOutcome::Partial);
    // The next run sees the same drop: now it is believed.
    e.clock.advance(chrono::Duration::hours(1));
    let r = e.runner.run_source(src.as_ref()).await;
    ok(&r);
    assert_eq!(r.resolved, 8);
    assert_eq!(
        all(e.store.as_ref(), ip("203.0.113.19"))[0].status,
        Status::Resolved
    );
}

/// Feed content never drives the terminal: a Feodo entry whose malware name carries an OSC
/// title sequence and a colour (`ESC ] 0 ; … BEL ESC [ 31m`) is shown escaped by `lookup`, and
/// a malformed row quoting such bytes is reported escaped by `fetch` (issue #11, item 6).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_lookup_and_fetch_escape_control_characters_from_the_feed() {
    let server = MockServer::start().await;
    let body = "\"first_seen_utc\",\"dst_ip\",\"dst_port\",\"c2_status\",\"last_online\",\"malware\"\n\
        \"2026-11-08 19:20:49\",\"203.0.113.10\",\"443\",\"online\",\"2026-11-20\",\"Emotet\u{1b}]0;owned\u{7}\u{1b}[31m\"\n\
        \"2026-11-08 19:20:49\",\"203.0.113.\u{1b}[2J\",\"443\",\"online\",\"2026-11-20\",\"Pikabot\"\n\
        # END 2 entries\n";
    serve(&server, "/downloads/ipblocklist.csv", body.into()).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("outwatch.toml");
    let base = server.uri();
    std::fs::write(
        &cfg,
        format!(
            "[organisation]\nname = \"Example Org\"\nprefixes = [\"203.0.113.0/24\"]\n\
             [sources.feodotracker]\nbase_url = \"{base}\"\n"
        ),
    )
    .unwrap();
    let data = dir.path().join("data");
    let run = move |args: &'static [&'static str]| {
        let (cfg, data) = (cfg.clone(), data.clone());
        move || {
            let out = assert_cmd::Command::cargo_bin("outwatch")
                .unwrap()
                .env_remove("OUTWATCH_CONFIG")
                .env_remove("OUTWATCH_DATA_DIR")
                .env_remove("ABUSECH_AUTH_KEY")
                .env_remove("RUST_LOG")
                .arg("--config")
                .arg(&cfg)
                .arg("--data-dir")
                .arg(&data)
                .args(args)
                .output()
                .unwrap();
            (
                out.status.code(),
                String::from_utf8_lossy(&out.stdout).into_owned(),
                String::from_utf8_lossy(&out.stderr).into_owned(),
            )
        }
    };
    let raw = |s: &str| s.contains('\u{1b}') || s.contains('\u{7}');
    let (code, stdout, stderr) =
        tokio::task::spawn_blocking(run(&["fetch", "--source", "feodotracker"]))
            .await
            .unwrap();
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    assert!(!raw(&stdout) && !raw(&stderr), "{stdout:?}\n{stderr:?}");
    assert!(stderr.contains("203.0.113.\\u{1b}[2J"), "{stderr}");
    let (code, stdout, stderr) = tokio::task::spawn_blocking(run(&["lookup", "203.0.113.10"]))
        .await
        .unwrap();
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    assert!(!raw(&stdout) && !raw(&stderr), "{stdout:?}\n{stderr:?}");
    assert!(stdout.contains("\\u{1b}]0;owned\\u{7}"), "{stdout}");
    // The store keeps the value as received; JSON escapes it itself.
    let (_, stdout, _) = tokio::task::spawn_blocking(run(&["lookup", "203.0.113.10", "--json"]))
        .await
        .unwrap();
    let json: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(
        json["findings"][0]["extra"]["malware"],
        "Emotet\u{1b}]0;owned\u{7}\u{1b}[31m"
    );
}

/// A list entry is rejected only when its indicator is malformed; a malformed port or time of
/// an entry of ours is kept as written in `extra` and counted as a warning, and so is a row cut
/// short after its indicator (issue #11, item 2).
#[test]
fn list_entry_keeps_its_finding_when_port_or_time_is_malformed() {
    let body = "\"first_seen_utc\",\"dst_ip\",\"dst_port\",\"c2_status\",\"last_online\",\"malware\"\n\
        \"last tuesday\",\"203.0.113.10\",\"https\",\"online\",\"2026-11-20\",\"Emotet\"\n\
        \"2026-11-08 19:20:49\",\"203.0.113.999\",\"443\",\"online\",\"2026-11-20\",\"Emotet\"\n\
        \"2026-11-08 19:20:49\",\"203.0.113.12\"\n\
        # END 3 entries\n";
    let p = process_body(
        &def("feodotracker"),
        "feodotracker",
        body.as_bytes(),
        "ipblocklist.csv",
        &scope_of(&["203.0.113.0/24"], &[]),
    )
    .unwrap();
    assert_eq!(p.fetched, 3);
    assert_eq!(p.findings.len(), 2, "{:?}", p.rejected);
    let f = &p.findings[0];
    assert_eq!(f.ip.unwrap().to_string(), "203.0.113.10");
    assert_eq!((f.port, f.time_source), (None, None));
    assert_eq!(f.extra["port"], "https");
    assert_eq!(f.extra["time"], "last tuesday");
    assert_eq!(p.findings[1].ip.unwrap().to_string(), "203.0.113.12");
    assert_eq!(p.rejected.len(), 1);
    assert!(p.rejected[0].message.contains("203.0.113.999"));
    let w: Vec<(&str, &str)> = p
        .warnings
        .iter()
        .map(|w| (w.location.as_str(), w.message.as_str()))
        .collect();
    assert_eq!(w.len(), 3, "{w:?}");
    assert!(
        w[0].1.contains("https") && w[1].1.contains("last tuesday"),
        "{w:?}"
    );
    assert!(w[2].1.contains("has 2 fields"), "{w:?}");
    assert_eq!(
        w.iter().map(|w| w.0).collect::<Vec<_>>(),
        [
            "ipblocklist.csv line 2",
            "ipblocklist.csv line 2",
            "ipblocklist.csv line 4"
        ]
    );
}
