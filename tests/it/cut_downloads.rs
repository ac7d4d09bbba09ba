//! Issue #21 item 8: a download that comes without a `Content-Length` and is cut exactly at a
//! line end looks whole. Where the format has no trailer to count its entries, such a body is
//! accepted only when it is not under half the size of the last good one: a URLhaus list cut to
//! 91 of 200 entries fails its unit and leaves the indicator set alone, a Shadowserver report
//! cut to 19 of 40 rows is not remembered and is downloaded again.

use crate::keyed_support::*;
use crate::support::serve_cut;
use outwatch::indicators;
use outwatch::sources::SourceKind;
use outwatch::sources::shadowserver::ShadowserverConfig;
use serde_json::json;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

/// A URLhaus `csv_recent` body of `n` entries (the first three on our 192.0.2.0/24), and the
/// byte offset just after entry `cut`'s line end.
fn urlhaus(n: usize, cut: usize) -> (Vec<u8>, usize) {
    let mut body = String::from(
        "################################################################\n\
         # abuse.ch URLhaus Database Dump (CSV - recent URLs only)      #\n\
         # Last updated: 2026-11-22 12:05:20 (UTC)                      #\n\
         ################################################################\n\
         #\n\
         # id,dateadded,url,url_status,last_online,threat,tags,urlhaus_link,reporter\n",
    );
    let mut at = 0;
    for i in 0..n {
        let host = if i < 3 {
            format!("192.0.2.{}", i + 10)
        } else {
            format!("198.18.{}.{}", i / 250, i % 250)
        };
        let id = 3_886_000 + i;
        body.push_str(&format!(
            "\"{id}\",\"2026-11-22 11:00:00\",\"http://{host}:8080/i\",\"online\",\
             \"2026-11-22 11:00:00\",\"malware_download\",\"elf,Mozi\",\
             \"https://urlhaus.abuse.ch/url/{id}/\",\"geenensp\"\n"
        ));
        if i + 1 == cut {
            at = body.len();
        }
    }
    (body.into_bytes(), at)
}

fn set_entries(e: &Env) -> Vec<usize> {
    indicators::kept_sets(e.store.as_ref())
        .unwrap()
        .iter()
        .map(|s| s.entries)
        .collect()
}

#[tokio::test]
async fn a_list_cut_at_a_line_end_without_a_length_never_halves_the_indicator_set() {
    let (full, _) = urlhaus(200, 0);
    let (_, cut) = urlhaus(200, 91);
    assert!(cut > 0 && full[cut - 1] == b'\n');
    // Whole, then cut at the end of entry 91 (twice): no length, `Connection: close`.
    let base = serve_cut(vec![
        (full.clone(), None),
        (full.clone(), Some(cut)),
        (full.clone(), Some(cut)),
    ]);
    let e = env();
    let src = list_source(
        &format!("[sources.urlhaus]\nbase_url = \"{base}\"\n"),
        "urlhaus",
    );
    let r = e.runner.run_source(src.as_ref()).await;
    assert!(r.ok, "{r:?}");
    assert_eq!((r.fetched, r.in_scope), (200, 3));
    assert_eq!(set_entries(&e), [200]);

    // The cut body: the unit fails, named; the set and the findings stay.
    let r = e.runner.run_source(src.as_ref()).await;
    assert!(!r.ok, "{r:?}");
    let err = r.error.clone().unwrap_or_default();
    assert!(
        err.contains("91 entries") && err.contains("200") && err.contains("csv_recent"),
        "{err}"
    );
    assert_eq!(
        set_entries(&e),
        [200],
        "the set of the last good download stays"
    );
    assert_eq!(r.resolved, 0);

    // The same size again is taken as real: a list that halved is accepted one run late.
    let r = e.runner.run_source(src.as_ref()).await;
    assert!(r.ok, "{r:?}");
    assert_eq!(set_entries(&e), [91]);
}

/// With a `Content-Length` a shorter body is whole (a cut one would be a transport error): a
/// real shrink is accepted at once.
#[tokio::test]
async fn a_list_that_shrinks_with_a_stated_length_is_accepted_at_once() {
    let (full, _) = urlhaus(200, 0);
    let (small, _) = urlhaus(60, 0);
    let server = MockServer::start().await;
    serve_in_turn(
        &server,
        "/downloads/csv_recent/",
        vec![
            ResponseTemplate::new(200).set_body_bytes(full),
            ResponseTemplate::new(200).set_body_bytes(small),
        ],
    )
    .await;
    let e = env();
    let src = list_source(
        &format!("[sources.urlhaus]\nbase_url = \"{}\"\n", server.uri()),
        "urlhaus",
    );
    assert!(e.runner.run_source(src.as_ref()).await.ok);
    let r = e.runner.run_source(src.as_ref()).await;
    assert!(r.ok, "{r:?}");
    assert_eq!(set_entries(&e), [60]);
}

/// A Shadowserver `scan_dns` report of `n` rows on 192.0.2.0/24 (the day in its timestamps),
/// and the offset after row `cut`'s line end.
fn report(day: &str, n: usize, cut: usize) -> (Vec<u8>, usize) {
    let mut body = String::from(
        "\"timestamp\",\"severity\",\"ip\",\"protocol\",\"port\",\"hostname\",\"tag\",\"asn\",\
         \"geo\",\"region\",\"city\",\"naics\",\"hostname_source\",\"sector\",\"dns_version\",\
         \"min_amplification\"\n",
    );
    let mut at = 0;
    for i in 0..n {
        body.push_str(&format!(
            "\"{day} 03:14:07\",\"medium\",\"192.0.2.{}\",\"udp\",53,,\"openresolver\",64496,\
             \"NL\",\"NOORD-HOLLAND\",\"AMSTERDAM\",0,,,\"dnsmasq-2.80\",\"28.3\"\n",
            i + 1
        ));
        if i + 1 == cut {
            at = body.len();
        }
    }
    (body.into_bytes(), at)
}

#[tokio::test]
async fn a_shadowserver_report_cut_at_a_line_end_is_not_remembered_and_comes_again() {
    const A: &str = "aAaAaAaAaAaAaAaAaAaAaAaAaAaAaAaAaAaAaAaAaAaAaAaAaA";
    const B: &str = "bBbBbBbBbBbBbBbBbBbBbBbBbBbBbBbBbBbBbBbBbBbBbBbBbB";
    let (day1, _) = report("2026-11-21", 40, 0);
    let (day2, cut) = report("2026-11-22", 40, 19);
    // The downloads, in turn: A whole, B cut after row 19, B whole.
    let dl = serve_cut(vec![(day1, None), (day2.clone(), Some(cut)), (day2, None)]);
    let api = MockServer::start().await;
    let entry = |id: &str, day: &str| {
        json!({"report": "example-asn", "type": "scan_dns", "id": id, "timestamp": day,
               "file": format!("{day}-scan_dns-example-asn.csv")})
    };
    serve_listing(&api, json!([entry(A, "2026-11-21")])).await;
    let mut c: ShadowserverConfig = toml::from_str(&format!(
        "api_key = \"{KEY}\"\nsecret = \"sh4d0w-S3CR3T-fedcba9876543210\"\n\
         base_url = \"{}/api2/\"\ndownload_url = \"{dl}/dl/\"\n",
        api.uri()
    ))
    .unwrap();
    c.enabled = true;
    let src = SourceKind::build(&c, &config("")).unwrap();
    let e = env();
    let r = e.runner.run_source(src.as_ref()).await;
    assert!(r.ok, "{r:?}");
    assert_eq!(r.fetched, 40);

    // Next day: B is cut at the end of row 19 of 40 and has no length: refused, named.
    api.reset().await;
    serve_listing(
        &api,
        json!([entry(A, "2026-11-21"), entry(B, "2026-11-22")]),
    )
    .await;
    let r = e.runner.run_source(src.as_ref()).await;
    assert!(!r.ok, "{r:?}");
    assert_eq!(r.fetched, 0);
    let err = r.error.clone().unwrap_or_default();
    assert!(
        err.contains("2026-11-22-scan_dns-example-asn.csv") && err.contains("19 entries"),
        "{err}"
    );
    assert!(!err.contains(B), "the id is never shown: {err}");

    // Not remembered: the next run downloads B again, whole this time.
    let r = e.runner.run_source(src.as_ref()).await;
    assert!(r.ok, "{r:?}");
    assert_eq!(r.fetched, 40);
}

async fn serve_listing(api: &MockServer, listing: serde_json::Value) {
    Mock::given(method("POST"))
        .and(path("/api2/reports/list"))
        .respond_with(ResponseTemplate::new(200).set_body_json(listing))
        .mount(api)
        .await;
}
