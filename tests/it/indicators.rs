//! Indicator sets: every entry of a list feed's last good download kept in the store (ours or
//! not), replaced atomically by the next good download, read back by `indicators::load` and
//! shown by `lookup` and `status`.

use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use outwatch::config::Config;
use outwatch::indicators::{
    self, Entry, IndicatorIndex, IndicatorSet, Listing, MAX_ENTRIES, SetBuilder,
};
use outwatch::scope::{ScopeMatcher, ScopeSnapshot};
use outwatch::sources::Source;
use outwatch::sources::lists::{self, FeedDef, process_body};
use outwatch::store::Store;
use proptest::prelude::*;
use wiremock::matchers::{header_exists, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::keyed_support::{Env, env_with, list_source, serve, serve_in_turn, t};
use crate::support::fixture;

fn t0() -> DateTime<Utc> {
    t("2026-11-20T08:00:00Z")
}

/// Our scope: 203.0.113.0/24 only (most list entries are not ours, and are kept all the same).
fn snapshot() -> ScopeSnapshot {
    ScopeSnapshot {
        prefixes: vec!["203.0.113.0/24".parse().unwrap()],
        ..Default::default()
    }
}

fn env() -> Env {
    env_with(t0(), &snapshot())
}

fn source(base: &str, name: &str) -> Arc<dyn Source> {
    list_source(&format!("[sources.{name}]\nbase_url = \"{base}\"\n"), name)
}

/// The listings of `ip` (and `port`) as `feed entry port threat` strings, sorted.
fn hits(idx: &IndicatorIndex, ip: &str, port: Option<u16>) -> Vec<String> {
    let mut out = Vec::new();
    idx.matches(ip.parse().unwrap(), port, &mut out);
    let mut v: Vec<String> = out
        .iter()
        .map(|l| {
            format!(
                "{} {} {} {}",
                l.feed,
                l.net,
                l.port.map_or("-".into(), |p| p.to_string()),
                l.threat.as_deref().unwrap_or("-")
            )
        })
        .collect();
    v.sort();
    v
}

fn set_bytes(store: &dyn Store, prefix: &str) -> Vec<(String, Vec<u8>)> {
    store.state_scan(prefix).unwrap()
}

#[tokio::test]
async fn feodo_fetch_keeps_every_entry_with_port_and_malware() {
    let server = MockServer::start().await;
    serve(
        &server,
        "/downloads/ipblocklist.csv",
        fixture("lists/feodotracker/ipblocklist.csv"),
    )
    .await;
    let e = env();
    let r = e
        .runner
        .run_source(source(&server.uri(), "feodotracker").as_ref())
        .await;
    assert!(r.ok, "{:?}", r.error);
    assert_eq!(r.in_scope, 1, "only 203.0.113.10 is ours");
    let sets = indicators::kept_sets(e.store.as_ref()).unwrap();
    assert_eq!(sets.len(), 1);
    let s = &sets[0];
    assert_eq!(s.feed, "feodotracker");
    assert_eq!(
        s.unit,
        format!("{}/downloads/ipblocklist.csv", server.uri())
    );
    assert_eq!((s.entries, s.cut, s.not_addresses), (6, 0, 0));
    assert_eq!(s.fetched, t0());
    let idx = indicators::load(e.store.as_ref()).unwrap();
    assert_eq!(idx.len(), 6);
    // Not ours, kept all the same: address and port, as listed.
    assert_eq!(
        hits(&idx, "192.9.135.73", Some(1194)),
        ["feodotracker 192.9.135.73/32 1194 Pikabot"]
    );
    assert!(hits(&idx, "192.9.135.73", Some(443)).is_empty());
    assert!(hits(&idx, "192.9.135.73", None).is_empty());
    assert_eq!(
        hits(&idx, "203.0.113.10", Some(443)),
        ["feodotracker 203.0.113.10/32 443 Pikabot"]
    );
    assert!(hits(&idx, "203.0.113.11", Some(443)).is_empty());
}

#[tokio::test]
async fn threatfox_urlhaus_and_drop_keep_addresses_ports_and_networks() {
    let server = MockServer::start().await;
    serve(
        &server,
        "/export/csv/recent/",
        fixture("lists/threatfox/recent.csv"),
    )
    .await;
    serve(
        &server,
        "/downloads/csv_recent/",
        fixture("lists/urlhaus/csv_recent.csv"),
    )
    .await;
    serve(
        &server,
        "/drop/drop_v4.json",
        fixture("lists/spamhaus/drop_v4.json"),
    )
    .await;
    serve(
        &server,
        "/drop/drop_v6.json",
        fixture("lists/spamhaus/drop_v6.json"),
    )
    .await;
    serve(
        &server,
        "/drop/asndrop.json",
        fixture("lists/spamhaus/asndrop.json"),
    )
    .await;
    let e = env();
    for name in ["threatfox", "urlhaus", "spamhaus_drop", "spamhaus_asndrop"] {
        let r = e
            .runner
            .run_source(source(&server.uri(), name).as_ref())
            .await;
        assert!(r.ok, "{name}: {:?}", r.error);
    }
    let sets = indicators::kept_sets(e.store.as_ref()).unwrap();
    let by = |feed: &str| -> Vec<_> { sets.iter().filter(|s| s.feed == feed).collect() };
    // ThreatFox: three ip:port IOCs; two domains and two URLs on host names cannot be matched
    // against flows (counted); the hash is skipped.
    let tf = by("threatfox");
    assert_eq!((tf[0].entries, tf[0].not_addresses), (3, 4));
    // URLhaus: URLs on a literal address (v4 and v6), with the URL's port; four on host names.
    let uh = by("urlhaus");
    assert_eq!((uh[0].entries, uh[0].not_addresses), (3, 4));
    // Spamhaus DROP: one set per URL (unit).
    let drop = by("spamhaus_drop");
    assert_eq!(drop.len(), 2);
    assert_eq!(drop.iter().map(|s| s.entries).sum::<usize>(), 5);
    assert!(
        by("spamhaus_asndrop").is_empty(),
        "ASN-DROP lists no address"
    );

    let idx = indicators::load(e.store.as_ref()).unwrap();
    assert_eq!(
        hits(&idx, "8.134.12.90", Some(7777)),
        ["threatfox 8.134.12.90/32 7777 win.cobalt_strike (botnet_cc)"]
    );
    assert!(hits(&idx, "8.134.12.90", Some(80)).is_empty());
    assert_eq!(
        hits(&idx, "2001:db8:1::20", Some(443)),
        [
            "spamhaus_drop 2001:db8::/32 - -",
            "threatfox 2001:db8:1::20/128 443 win.sliver (botnet_cc)"
        ],
        "an address inside a DROP network and listed itself: both"
    );
    assert_eq!(
        hits(&idx, "2001:db8:1::20", Some(80)),
        ["spamhaus_drop 2001:db8::/32 - -"]
    );
    assert_eq!(
        hits(&idx, "182.126.120.150", Some(58801)),
        ["urlhaus 182.126.120.150/32 58801 malware_download"]
    );
    assert_eq!(
        hits(&idx, "1.10.31.255", None),
        ["spamhaus_drop 1.10.16.0/20 - -"]
    );
    assert!(hits(&idx, "1.10.32.0", None).is_empty());
    assert_eq!(
        hits(&idx, "203.0.113.200", Some(1)),
        ["spamhaus_drop 203.0.113.128/25 - -"]
    );
    assert_eq!(
        hits(&idx, "2a06:e487:ffff::1", None),
        ["spamhaus_drop 2a06:e480::/29 - -"]
    );
    // Only the enabled feeds, when asked.
    let only = indicators::load_only(e.store.as_ref(), &["urlhaus".to_string()]).unwrap();
    assert!(hits(&only, "1.10.31.255", None).is_empty());
    assert_eq!(hits(&only, "182.126.120.150", Some(58801)).len(), 1);
}

#[tokio::test]
async fn a_304_keeps_the_set_and_a_second_download_replaces_it() {
    let server = MockServer::start().await;
    let p = "/downloads/ipblocklist.csv";
    Mock::given(method("GET"))
        .and(path(p))
        .and(header_exists("if-none-match"))
        .respond_with(ResponseTemplate::new(304))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(p))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("etag", "\"v1\"")
                .set_body_bytes(fixture("lists/feodotracker/ipblocklist.csv")),
        )
        .up_to_n_times(1)
        .with_priority(2)
        .mount(&server)
        .await;
    let e = env();
    let src = source(&server.uri(), "feodotracker");
    assert!(e.runner.run_source(src.as_ref()).await.ok);
    let before = set_bytes(e.store.as_ref(), "indicators/");
    e.clock.advance(chrono::Duration::hours(1));
    let r = e.runner.run_source(src.as_ref()).await;
    assert!(r.ok && r.not_modified, "{r:?}");
    assert_eq!(
        set_bytes(e.store.as_ref(), "indicators/"),
        before,
        "a 304 keeps the set as it was"
    );
    // The next download lacks 198.51.100.7: it leaves the set.
    Mock::given(method("GET"))
        .and(path(p))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_bytes(fixture("lists/feodotracker/ipblocklist_v2.csv")),
        )
        .with_priority(3)
        .mount(&server)
        .await;
    e.clock.advance(chrono::Duration::hours(1));
    let r = e.runner.run_source(src.as_ref()).await;
    assert!(r.ok && !r.not_modified, "{r:?}");
    let sets = indicators::kept_sets(e.store.as_ref()).unwrap();
    assert_eq!(sets.len(), 1);
    assert_eq!(sets[0].entries, 5);
    assert_eq!(sets[0].fetched, t0() + chrono::Duration::hours(2));
    let idx = indicators::load(e.store.as_ref()).unwrap();
    assert!(hits(&idx, "198.51.100.7", Some(8080)).is_empty());
    assert_eq!(hits(&idx, "154.12.248.41", Some(5000)).len(), 1);
}

#[tokio::test]
async fn a_cut_off_or_failed_download_keeps_the_old_set() {
    let server = MockServer::start().await;
    serve_in_turn(
        &server,
        "/downloads/ipblocklist.csv",
        vec![
            ResponseTemplate::new(200)
                .set_body_bytes(fixture("lists/feodotracker/ipblocklist.csv")),
            ResponseTemplate::new(200)
                .set_body_bytes(fixture("lists/feodotracker/ipblocklist_truncated.csv")),
            ResponseTemplate::new(500),
        ],
    )
    .await;
    let e = env();
    let src = source(&server.uri(), "feodotracker");
    assert!(e.runner.run_source(src.as_ref()).await.ok);
    let before = set_bytes(e.store.as_ref(), "indicators/");
    assert_eq!(before.len(), 1);
    for what in ["cut-off body", "HTTP 500"] {
        e.clock.advance(chrono::Duration::hours(1));
        let r = e.runner.run_source(src.as_ref()).await;
        assert!(!r.ok, "{what}: the run fails");
        assert_eq!(
            set_bytes(e.store.as_ref(), "indicators/"),
            before,
            "{what}: the set of the last good download stays"
        );
    }
}

#[tokio::test]
async fn a_failed_part_keeps_its_own_old_set_while_the_other_part_is_replaced() {
    let server = MockServer::start().await;
    serve(
        &server,
        "/drop/drop_v4.json",
        fixture("lists/spamhaus/drop_v4.json"),
    )
    .await;
    serve_in_turn(
        &server,
        "/drop/drop_v6.json",
        vec![
            ResponseTemplate::new(200).set_body_bytes(fixture("lists/spamhaus/drop_v6.json")),
            ResponseTemplate::new(503),
        ],
    )
    .await;
    let e = env();
    let src = source(&server.uri(), "spamhaus_drop");
    assert!(e.runner.run_source(src.as_ref()).await.ok);
    e.clock.advance(chrono::Duration::hours(6));
    let r = e.runner.run_source(src.as_ref()).await;
    assert!(!r.ok, "the v6 part failed");
    let sets = indicators::kept_sets(e.store.as_ref()).unwrap();
    let fetched: Vec<_> = sets
        .iter()
        .map(|s| (s.unit.rsplit('/').next().unwrap().to_string(), s.fetched))
        .collect();
    assert_eq!(
        fetched,
        [
            (
                "drop_v4.json".to_string(),
                t0() + chrono::Duration::hours(6)
            ),
            ("drop_v6.json".to_string(), t0()),
        ]
    );
    let idx = indicators::load(e.store.as_ref()).unwrap();
    assert_eq!(hits(&idx, "2a06:e480::1", None).len(), 1);
}

#[tokio::test]
async fn a_url_no_longer_fetched_loses_its_set() {
    let server = MockServer::start().await;
    serve(
        &server,
        "/downloads/ipblocklist.csv",
        fixture("lists/feodotracker/ipblocklist.csv"),
    )
    .await;
    serve(
        &server,
        "/mirror/ipblocklist.csv",
        fixture("lists/feodotracker/ipblocklist_v2.csv"),
    )
    .await;
    let e = env();
    let src = source(&server.uri(), "feodotracker");
    assert!(e.runner.run_source(src.as_ref()).await.ok);
    let text = format!(
        "[sources.feodotracker]\nurl = \"{}/mirror/ipblocklist.csv\"\n",
        server.uri()
    );
    let c = Config::parse(
        &text,
        Path::new("/nonexistent/outwatch.toml"),
        &outwatch::sources::Registry,
    )
    .unwrap();
    let (_, moved) = lists::build_enabled(&c)
        .into_iter()
        .find(|(n, _)| n == "feodotracker")
        .unwrap();
    assert!(e.runner.run_source(moved.unwrap().as_ref()).await.ok);
    let sets = indicators::kept_sets(e.store.as_ref()).unwrap();
    assert_eq!(sets.len(), 1);
    assert!(sets[0].unit.ends_with("/mirror/ipblocklist.csv"));
    assert_eq!(sets[0].entries, 5);
}

/// The cap holds at [`MAX_ENTRIES`] distinct entries (duplicates do not count), the first ones
/// in list order are kept, and the largest set stays a value sled and the daemon's socket
/// carry (its size is in docs/lists.md).
#[test]
fn the_cap_keeps_the_first_entries_and_bounds_the_value() {
    let mut b = SetBuilder::default();
    let extra = 7;
    for i in 0..(MAX_ENTRIES + extra) as u32 {
        // Spread over the v4 space, like a real list; every address twice.
        let a = std::net::Ipv4Addr::from(i.wrapping_mul(2_654_435_761));
        for _ in 0..2 {
            b.push(IpAddr::V4(a).into(), Some(443), Some("Pikabot"), None);
        }
    }
    let k = b.finish("feodotracker", "u", t0());
    assert_eq!((k.info.entries, k.info.cut), (MAX_ENTRIES, extra));
    eprintln!(
        "a set of {MAX_ENTRIES} entries takes {} bytes",
        k.bytes.len()
    );
    assert!(k.bytes.len() < 12 << 20, "{} bytes", k.bytes.len());
    let (_, set) = indicators::decode(&k.bytes).unwrap();
    assert_eq!(set.entries.len(), MAX_ENTRIES);
    let last_kept =
        std::net::Ipv4Addr::from(((MAX_ENTRIES - 1) as u32).wrapping_mul(2_654_435_761));
    assert!(
        set.entries
            .iter()
            .any(|e| e.net.addr() == IpAddr::V4(last_kept))
    );
    let first_cut = std::net::Ipv4Addr::from((MAX_ENTRIES as u32).wrapping_mul(2_654_435_761));
    assert!(
        !set.entries
            .iter()
            .any(|e| e.net.addr() == IpAddr::V4(first_cut))
    );
}

/// A URLhaus-sized list (40,000 rows, three in four on a literal address) parses into a set
/// of a few hundred KiB.
#[test]
fn a_urlhaus_sized_list_gives_a_small_value() {
    let def: FeedDef = lists::builtin_defs()
        .into_iter()
        .find(|d| d.name == "urlhaus")
        .unwrap();
    let mut body = String::from(
        "#\n# id,dateadded,url,url_status,last_online,threat,tags,urlhaus_link,reporter\n",
    );
    for i in 0..40_000u32 {
        let host = if i % 4 == 0 {
            format!("host{i}.example.net")
        } else {
            let a = std::net::Ipv4Addr::from(i.wrapping_mul(2_654_435_761));
            format!("{a}:{}", 1024 + i % 60000)
        };
        body.push_str(&format!(
            "\"{i}\",\"2026-11-20 12:05:20\",\"http://{host}/i\",\"online\",\"\",\"malware_download\",\"Mozi\",\"https://urlhaus.abuse.ch/url/{i}/\",\"r\"\n"
        ));
    }
    let scope = ScopeMatcher::new(&snapshot());
    let p = process_body(&def, "urlhaus", body.as_bytes(), "x", &scope).unwrap();
    let k = p.indicators.finish("urlhaus", "x", t0());
    assert_eq!((k.info.entries, k.info.not_addresses), (30_000, 10_000));
    eprintln!(
        "a URLhaus set of 30,000 addresses takes {} bytes",
        k.bytes.len()
    );
    assert!(k.bytes.len() < 512 << 10, "{} bytes", k.bytes.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lookup_and_status_show_the_kept_sets() {
    let server = MockServer::start().await;
    serve(
        &server,
        "/downloads/ipblocklist.csv",
        fixture("lists/feodotracker/ipblocklist.csv"),
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("outwatch.toml");
    let feeds = crate::support::feeds_off().replace(
        "[sources.feodotracker]\nenabled = false\n",
        &format!("[sources.feodotracker]\nbase_url = \"{}\"\n", server.uri()),
    );
    std::fs::write(
        &cfg,
        format!("[organisation]\nname = \"Example Org\"\nprefixes = [\"203.0.113.0/24\"]\n{feeds}"),
    )
    .unwrap();
    let d = dir.path().to_path_buf();
    let run = move |args: &[&str]| {
        crate::support::cli(&d)
            .arg("--config")
            .arg(d.join("outwatch.toml"))
            .arg("--data-dir")
            .arg(d.join("data"))
            .args(args)
            .output()
            .unwrap()
    };
    let r = run.clone();
    let out = tokio::task::spawn_blocking(move || r(&["fetch", "--source", "feodotracker"]))
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let r = run.clone();
    let out = tokio::task::spawn_blocking(move || r(&["lookup", "192.9.135.73", "--json"]))
        .await
        .unwrap();
    let j = crate::support::stdout_json(&out);
    assert_eq!(j["findings"].as_array().unwrap().len(), 0, "not ours");
    assert_eq!(j["listed_by"][0]["feed"], "feodotracker");
    assert_eq!(j["listed_by"][0]["entry"], "192.9.135.73/32");
    assert_eq!(j["listed_by"][0]["port"], 1194);
    assert_eq!(j["listed_by"][0]["threat"], "Pikabot");
    assert_eq!(j["listed_by"].as_array().unwrap().len(), 1);

    let r = run.clone();
    let out = tokio::task::spawn_blocking(move || r(&["lookup", "192.9.135.73"]))
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("192.9.135.73: no findings"), "{text}");
    assert!(text.contains("Listed by"), "{text}");
    assert!(
        text.contains("feodotracker: 192.9.135.73:1194 Pikabot"),
        "{text}"
    );

    let r = run.clone();
    let out = tokio::task::spawn_blocking(move || r(&["lookup", "192.0.2.1", "--json"]))
        .await
        .unwrap();
    assert_eq!(
        crate::support::stdout_json(&out)["listed_by"],
        serde_json::json!([])
    );

    let r = run.clone();
    let out = tokio::task::spawn_blocking(move || r(&["status", "--json"]))
        .await
        .unwrap();
    let j = crate::support::stdout_json(&out);
    let s = &j["indicator_sets"][0];
    assert_eq!(s["feed"], "feodotracker");
    assert_eq!(s["entries"], 6);
    assert_eq!(s["units"], 1);
    assert!(s["bytes"].as_u64().unwrap() > 0);
    assert!(s["age_seconds"].as_i64().unwrap() >= 0);

    let r = run.clone();
    let out = tokio::task::spawn_blocking(move || r(&["status"]))
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("indicator sets"), "{text}");
    assert!(
        text.contains("feodotracker: 6 addresses/networks"),
        "{text}"
    );
}

// ---------------------------------------------------------------------------------------------
// The index agrees with a linear scan

fn arb_net() -> impl Strategy<Value = ipnet::IpNet> {
    // Addresses drawn from a small space so that random entries and queries meet.
    prop_oneof![
        (0u32..64, 20u8..=32).prop_map(|(a, len)| {
            let addr = std::net::Ipv4Addr::from(0x0a00_0000 | (a << 8) | (a & 7));
            ipnet::IpNet::V4(ipnet::Ipv4Net::new(addr, len).unwrap().trunc())
        }),
        (0u32..64, 100u8..=128).prop_map(|(a, len)| {
            let addr = std::net::Ipv6Addr::from(
                0x2001_0db8_u128 << 96 | u128::from(a) << 8 | u128::from(a & 7),
            );
            ipnet::IpNet::V6(ipnet::Ipv6Net::new(addr, len).unwrap().trunc())
        }),
        Just("0.0.0.0/0".parse().unwrap()),
        Just("255.255.255.255/32".parse().unwrap()),
        Just(
            "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ff00/120"
                .parse()
                .unwrap()
        ),
    ]
}

fn arb_ip() -> impl Strategy<Value = IpAddr> {
    prop_oneof![
        (0u32..64, 0u32..256)
            .prop_map(|(a, b)| IpAddr::V4(std::net::Ipv4Addr::from(0x0a00_0000 | (a << 8) | b))),
        (0u32..64, 0u32..256).prop_map(|(a, b)| IpAddr::V6(std::net::Ipv6Addr::from(
            0x2001_0db8_u128 << 96 | u128::from(a) << 8 | u128::from(b)
        ))),
        Just("255.255.255.255".parse().unwrap()),
        Just("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff".parse().unwrap()),
        Just("::ffff:10.0.3.3".parse().unwrap()),
    ]
}

fn arb_sets() -> impl Strategy<Value = Vec<IndicatorSet>> {
    let entry = (
        arb_net(),
        prop::option::of(prop_oneof![Just(443u16), Just(8080u16)]),
        prop::option::of(prop_oneof![
            Just("QakBot".to_string()),
            Just("x".to_string())
        ]),
    )
        .prop_map(|(net, port, threat)| Entry { net, port, threat });
    prop::collection::vec(
        (
            prop_oneof![Just("a"), Just("b"), Just("c")],
            prop::collection::vec(entry, 0..40),
        )
            .prop_map(|(feed, entries)| IndicatorSet {
                feed: feed.to_string(),
                fetched: t0(),
                entries,
            }),
        0..4,
    )
}

fn naive(sets: &[IndicatorSet], ip: IpAddr, port: Option<u16>) -> Vec<Listing> {
    let ip = ip.to_canonical();
    let mut out: Vec<Listing> = sets
        .iter()
        .flat_map(|s| s.entries.iter().map(move |e| (s, e)))
        .filter(|(_, e)| e.net.contains(&ip) && (e.port.is_none() || e.port == port))
        .map(|(s, e)| Listing {
            feed: s.feed.as_str().into(),
            net: e.net,
            port: e.port,
            threat: e.threat.as_deref().map(Into::into),
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]
    #[test]
    fn matches_agrees_with_a_linear_scan(
        sets in arb_sets(),
        queries in prop::collection::vec(
            (arb_ip(), prop::option::of(prop_oneof![Just(443u16), Just(80u16)])),
            1..30,
        ),
    ) {
        let idx = IndicatorIndex::build(&sets);
        for (ip, port) in queries {
            let mut got = Vec::new();
            idx.matches(ip, port, &mut got);
            got.sort();
            prop_assert_eq!(got, naive(&sets, ip, port), "{} {:?}", ip, port);
        }
    }

    #[test]
    fn stored_sets_decode_to_what_was_kept(sets in arb_sets()) {
        for s in &sets {
            let mut b = SetBuilder::default();
            for e in &s.entries {
                b.push(e.net, e.port, e.threat.as_deref(), None);
            }
            let k = b.finish(&s.feed, "u", s.fetched);
            let (info, back) = indicators::decode(&k.bytes).unwrap();
            prop_assert_eq!(&info.feed, &s.feed);
            let mut want = s.entries.clone();
            want.sort_by(|a, b| (a.net, a.port, &a.threat).cmp(&(b.net, b.port, &b.threat)));
            want.dedup();
            let mut got = back.entries.clone();
            got.sort_by(|a, b| (a.net, a.port, &a.threat).cmp(&(b.net, b.port, &b.threat)));
            prop_assert_eq!(got, want);
        }
    }

    #[test]
    fn damaged_values_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
        let _ = indicators::decode(&bytes);
        let mut v = vec![1u8];
        v.extend(&bytes);
        let _ = indicators::decode(&v);
    }
}
