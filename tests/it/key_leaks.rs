//! Issue #21 item 8, fault injection: providers that echo their key in every way — in error
//! bodies cut by an excerpt at every offset, upper-cased, JSON-escaped, URL-encoded, in the data
//! fields of accepted rows and in rejected rows — and then every output (`fetch` text and JSON,
//! `status` text and JSON, `lookup` text and JSON, `export`, the logs at debug level, the run
//! log in the store) is searched for any piece of any key of six characters or more: none.

use std::collections::BTreeSet;
use std::path::Path;

use crate::keyed_support::*;
use outwatch::sources::{Source, enabled_sources};
use wiremock::matchers::{method, path, path_regex};
use wiremock::{Mock, MockServer, ResponseTemplate};

const HIBP: &str = "9f3c2a7d4b1e8c6a0d5f2b9e7c4a1d3f";
const GSB: &str = "AIzaSyD3mo-k3y_Q9xV7pL2wR8tN4bF6hJ0cZ1";
const SNDS: &str = "7c9e6679-7425-40de-944b-e07fc1f90ae7";
const SS_KEY: &str = "ss-k3y-4f7a9c2e1b8d6053";
const SS_SECRET: &str = "ss-s3cr3t-8e1d4b7a2c9f6035";
const ABUSECH: &str = "5e2b8f1a9c4d7e3b6a0f2c8d1e5b9a4f7c3e6d0b8a2f5c9e";
const CYMRU: &str = "cap/P4ss+w0rd=Zq8";
const KEYS: [&str; 7] = [HIBP, GSB, SNDS, SS_KEY, SS_SECRET, ABUSECH, CYMRU];

/// Every piece of `key` (six characters or more) that `text` holds, ignoring case.
fn pieces(text: &str, key: &str) -> BTreeSet<String> {
    let (t, k) = (text.to_ascii_lowercase(), key.to_ascii_lowercase());
    let mut out = BTreeSet::new();
    for i in 0..k.len() {
        for j in i + 6..=k.len() {
            if t.contains(&k[i..j]) {
                out.insert(k[i..j].to_string());
            }
        }
    }
    out
}

fn assert_clean(what: &str, text: &str) {
    for key in KEYS {
        let found = pieces(text, key);
        assert!(
            found.is_empty(),
            "{what} holds pieces of a key: {found:?}\n{text}"
        );
    }
}

/// Each keyed source's table, every URL on `base`.
fn tables(base: &str) -> String {
    format!(
        "[sources.hibp]\napi_key = \"{HIBP}\"\nbase_url = \"{base}/api/v3\"\n\
         domains = [\"example.org\"]\n\
         [sources.safebrowsing]\napi_key = \"{GSB}\"\nbase_url = \"{base}/gsb\"\n\
         [sources.snds]\nkey = \"{SNDS}\"\nbase_url = \"{base}/snds\"\n\
         [sources.shadowserver]\napi_key = \"{SS_KEY}\"\nsecret = \"{SS_SECRET}\"\n\
         base_url = \"{base}/api2/\"\ndownload_url = \"{base}/dl/\"\n\
         [sources.cymru]\nurl = \"{base}/cap/u_{{date}}.txt\"\nusername = \"u\"\n\
         password = \"{CYMRU}\"\n\
         [sources.feodotracker]\nbase_url = \"{base}\"\nauth_key = \"{ABUSECH}\"\n\
         [sources.urlhaus]\nbase_url = \"{base}\"\nauth_key = \"{ABUSECH}\"\n"
    )
}

const ORG: &str = "[organisation]\ndomains = [\"example.org\"]\nprefixes = [\"192.0.2.0/24\"]\n";

fn sources(base: &str) -> Vec<(String, std::sync::Arc<dyn Source>)> {
    let cfg = config(&format!(
        "{ORG}{}{}",
        tables(base),
        crate::support::feeds_off_but(&["feodotracker", "urlhaus"])
    ));
    enabled_sources(&cfg)
        .into_iter()
        .map(|(n, s)| (n, s.unwrap()))
        .collect()
}

/// Every way a provider may echo `key` in an error body: raw, upper-cased, URL-encoded,
/// JSON-escaped (`\/`), after `pad` characters (so that an excerpt of 200 or 300 characters
/// cuts through the first echo).
fn echo_body(key: &str, pad: usize, json: bool) -> String {
    let encoded: String = key
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    let echoes = format!(
        "{key} {} {encoded} {}",
        key.to_ascii_uppercase(),
        key.replace('/', "\\/")
    );
    let filler = "x".repeat(pad);
    if json {
        format!("{{\"error\": \"{filler}{echoes}\"}}")
    } else {
        format!("{filler}{echoes}")
    }
}

/// The keys the provider behind `source` knows (a provider can echo only its own).
fn own_keys(source: &str) -> String {
    match source {
        "hibp" => HIBP.to_string(),
        "safebrowsing" => GSB.to_string(),
        "snds" => SNDS.to_string(),
        "shadowserver" => format!("{SS_KEY} {SS_SECRET}"),
        "cymru" => CYMRU.to_string(),
        _ => ABUSECH.to_string(),
    }
}

/// In process, each keyed source against a provider whose every answer echoes its keys in an
/// error body cut at each offset by the 200-character excerpt of an HTTP error and the
/// 300-character one of a JSON error: neither the report nor the stored run log holds a piece.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_echoed_in_errors_cut_at_every_offset_never_show() {
    let server = MockServer::start().await;
    // An HTTP error is quoted from its first 200 characters; a JSON error object (Shadowserver,
    // Safe Browsing, HIBP) from its first 300.
    for (limit, status, json) in [(200usize, 400u16, false), (300, 200, true)] {
        for (name, src) in sources(&server.uri()) {
            if json && !["shadowserver", "safebrowsing", "hibp"].contains(&name.as_str()) {
                continue;
            }
            let keys = own_keys(&name);
            let e = env();
            for cut in 0..=keys.len() + 1 {
                server.reset().await;
                Mock::given(wiremock::matchers::any())
                    .respond_with(
                        ResponseTemplate::new(status)
                            .insert_header("content-type", "application/json")
                            .set_body_string(echo_body(&keys, limit - cut, json)),
                    )
                    .mount(&server)
                    .await;
                let report = e.runner.run_source(src.as_ref()).await;
                let what = format!("{name}, cut {cut} of the {limit}-character excerpt");
                assert_clean(&what, &format!("{report:?}"));
                let runs = e.store.runs(Some(&name), 1).unwrap();
                assert_clean(&what, &serde_json::to_string(&runs).unwrap());
            }
        }
    }
}

/// Replies in the real formats with the keys inside accepted data (a Feodo malware name,
/// URLhaus tags, an SNDS comment and block reason, Cymru information), inside rejected rows,
/// and in error bodies of the rest; then every output of the CLI.
async fn echoing_provider() -> MockServer {
    let server = MockServer::start().await;
    let upper = ABUSECH.to_ascii_uppercase();
    let feodo = format!(
        "# abuse.ch Feodo Tracker Botnet C2 IP Blocklist (CSV)\n#\n\
         \"first_seen_utc\",\"dst_ip\",\"dst_port\",\"c2_status\",\"last_online\",\"malware\"\n\
         \"2026-11-20 07:00:00\",\"192.0.2.66\",\"443\",\"online\",\"2026-11-22\",\"Emotet {ABUSECH}\"\n\
         \"2026-11-20 07:00:00\",\"192.0.2.67\",\"443\",\"online\",\"2026-11-22\",\"{upper}\"\n\
         \"2026-11-20 07:00:00\",\"192.0.2.{}\",\"443\",\"online\",\"2026-11-22\",\"QakBot\"\n\
         # END 3 entries\n",
        "x".repeat(100) + ABUSECH
    );
    let urlhaus = format!(
        "# id,dateadded,url,url_status,last_online,threat,tags,urlhaus_link,reporter\n\
         \"1\",\"2026-11-22 11:00:00\",\"http://192.0.2.70/i\",\"online\",\"2026-11-22 11:00:00\",\
         \"malware_download\",\"elf,{ABUSECH}\",\"https://urlhaus.abuse.ch/url/1/\",\"r-{ABUSECH}\"\n"
    );
    let snds_data = format!(
        "192.0.2.11,11/21/2026 8:00 AM,11/22/2026 7:00 AM,48211,47990,47985,RED,< 0.1%,,,12,\
         mail.example.org,{SNDS}@example.org,comment {}\r\n",
        SNDS.to_ascii_uppercase()
    );
    let snds_status = format!("192.0.2.64,192.0.2.127,Yes,Blocked: {SNDS}\r\n");
    let cap = format!(
        "#category|address|asn|timestamp|optional_information|asninfo\n\
         bot|192.0.2.21|64496|2026-11-22 11:18:52|family: {CYMRU};|Example AS Name, NL\n"
    );
    let text = |s: String| ResponseTemplate::new(200).set_body_string(s);
    let routes: Vec<(&str, String, ResponseTemplate)> = vec![
        ("GET", "^/downloads/ipblocklist.csv$".into(), text(feodo)),
        (
            "GET",
            format!("^/v2/files/exports/{ABUSECH}/recent.csv$"),
            text(urlhaus),
        ),
        ("GET", "^/snds/data.aspx$".into(), text(snds_data)),
        ("GET", "^/snds/ipStatus.aspx$".into(), text(snds_status)),
        ("GET", "^/cap/u_.*$".into(), text(cap)),
    ];
    for (m, p, reply) in routes {
        Mock::given(method(m))
            .and(path_regex(p))
            .respond_with(reply)
            .with_priority(1)
            .mount(&server)
            .await;
    }
    // HIBP's paced searches need no waiting; the rest answers errors echoing every key.
    Mock::given(method("GET"))
        .and(path("/api/v3/subscription/status"))
        .respond_with(text(r#"{"SubscriptionName":"x","Rpm":6000}"#.into()))
        .with_priority(1)
        .mount(&server)
        .await;
    for (prefix, source) in [
        ("^/api/v3/", "hibp"),
        ("^/gsb/", "safebrowsing"),
        ("^/snds/", "snds"),
        ("^/(api2|dl)/", "shadowserver"),
        ("^/cap/", "cymru"),
        ("^/", "abuse.ch"),
    ] {
        Mock::given(path_regex(prefix))
            .respond_with(
                ResponseTemplate::new(400)
                    .insert_header("content-type", "application/json")
                    .set_body_string(echo_body(&own_keys(source), 190, true)),
            )
            .with_priority(if source == "abuse.ch" { 6 } else { 5 })
            .mount(&server)
            .await;
    }
    server
}

fn run_cli(dir: &Path, args: &[&str]) -> String {
    let o = crate::support::cli(dir)
        .env("RUST_LOG", "debug")
        .args(args)
        .output()
        .unwrap();
    format!(
        "{}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_in_data_errors_and_rejected_rows_show_in_no_output() {
    let server = echoing_provider().await;
    let d = tempfile::tempdir().unwrap();
    std::fs::write(
        d.path().join("outwatch.toml"),
        format!(
            "{ORG}[store]\npath = \"./data\"\n{}{}",
            tables(&server.uri()),
            crate::support::feeds_off_but(&["feodotracker", "urlhaus"])
        ),
    )
    .unwrap();
    let dir = d.path().to_path_buf();
    let outputs = tokio::task::spawn_blocking(move || {
        let runs: [&[&str]; 10] = [
            &["fetch", "--json"],
            &["fetch"],
            &["status"],
            &["status", "--json"],
            &["lookup", "192.0.2.0/24"],
            &["lookup", "192.0.2.0/24", "--json"],
            &["lookup", "192.0.2.66"],
            &["lookup", "example.org", "--all"],
            &["export"],
            &["digest", "--preview"],
        ];
        runs.iter()
            .map(|a| (a.join(" "), run_cli(&dir, a)))
            .collect::<Vec<_>>()
    })
    .await
    .unwrap();
    for (what, out) in &outputs {
        assert_clean(what, out);
    }
    // The data arrived, masked: the rows with keys in them were kept, not dropped.
    let export = &outputs[8].1;
    assert!(
        export.contains("Emotet ***redacted***") && export.contains("192.0.2.67"),
        "{export}"
    );
    assert!(
        export.contains("192.0.2.21") && export.contains("192.0.2.11"),
        "{export}"
    );
    // And the errors reached the messages, scrubbed.
    assert!(outputs[0].1.contains("***redacted***"), "{}", outputs[0].1);
}

/// A Shadowserver report (a streamed unit, stored through the bulk path) whose rows carry the
/// API key in a data field: the stored findings hold `***redacted***`, no piece of the key.
#[tokio::test]
async fn a_key_inside_a_streamed_report_is_masked_before_it_is_stored() {
    const ID: &str = "xNDSuwXrKnrLrDopU926rR75CAESMWesVCKsuyI8b8ncTv7GCX";
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/api2/reports/list"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(serde_json::json!([{
            "report": "example-asn", "type": "scan_dns", "id": ID, "timestamp": "2026-11-22",
            "file": "2026-11-22-scan_dns-example-asn.csv"}])),
        )
        .mount(&server)
        .await;
    let report = format!(
        "\"timestamp\",\"severity\",\"ip\",\"protocol\",\"port\",\"hostname\",\"tag\",\"asn\",\
         \"dns_version\"\n\
         \"2026-11-22 03:14:07\",\"medium\",\"192.0.2.53\",\"udp\",53,\"ns1.example.org\",\
         \"openresolver\",64496,\"dnsmasq {}\"\n",
        SS_KEY.to_ascii_uppercase()
    );
    Mock::given(method("GET"))
        .and(path(format!("/dl/{ID}")))
        .respond_with(ResponseTemplate::new(200).set_body_string(report))
        .mount(&server)
        .await;
    let e = env();
    let (_, src) = sources(&server.uri())
        .into_iter()
        .find(|(n, _)| n == "shadowserver")
        .unwrap();
    let r = e.runner.run_source(src.as_ref()).await;
    assert!(r.ok, "{r:?}");
    let stored = serde_json::to_string(&all_findings(e.store.as_ref())).unwrap();
    assert!(stored.contains("dnsmasq ***redacted***"), "{stored}");
    assert_clean("the stored findings", &stored);
}
