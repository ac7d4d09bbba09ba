//! Shadowserver: file import (csv, csv.gz, zip, eml), normalisation of the current column layout,
//! the Reports API fetcher against a local mock (HMAC2 on every request, list → download, skip of
//! ingested reports, error bodies), `shadowserver ping` / `update-schema`, and the shared samples.

use crate::support;
use crate::support::cli as outwatch;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use assert_cmd::Command;
use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

use outwatch::clock::ManualClock;
use outwatch::config::{Config, HttpConfig};
use outwatch::http::HttpClient;
use outwatch::pipeline::Runner;
use outwatch::scope::{ScopeMatcher, ScopeSnapshot};
use outwatch::secret::Secret;
use outwatch::sources::SourceKind;
use outwatch::sources::shadowserver::api::sign;
use outwatch::sources::shadowserver::{INGESTED_STATE_KEY, ShadowserverConfig};
use outwatch::store::{Query, QueryOptions, RunOutcome, SledStore, Store};

const KEY: &str = "test-api-key-0b5c";
const SECRET: &str = "test-secret-9f1e77";

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/shadowserver")
}

fn fixture(name: &str) -> PathBuf {
    fixtures().join(name)
}

/// The five reports of the current column layout the import tests count on.
fn all_fixtures() -> Vec<PathBuf> {
    [
        "2026-11-20-blocklist-example-ip.csv",
        "2026-11-20-event4_honeypot_ddos_target-example-asn.csv",
        "2026-11-20-event4_sinkhole_http-example-asn.csv",
        "2026-11-20-scan_dns-example-asn.csv",
        "2026-11-20-scan_rdp-example-asn.csv",
    ]
    .iter()
    .map(|n| fixture(n))
    .collect()
}

/// A config whose scope is 192.0.2.0/24 and 2001:db8:1::/48 (no ASNs: no RIPEstat calls).
fn write_config(dir: &Path, extra: &str) -> PathBuf {
    let p = dir.join("outwatch.toml");
    std::fs::write(
        &p,
        format!(
            r#"[organisation]
name = "Example Org"
prefixes = ["192.0.2.0/24", "2001:db8:1::/48"]
[scope]
ripestat_url = "http://127.0.0.1:9"
[store]
path = "data"
{extra}"#
        ),
    )
    .unwrap();
    p
}

fn json_out(c: &mut Command) -> Value {
    let out = c.output().unwrap();
    assert!(
        out.status.success(),
        "exit {:?}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&out.stdout)))
}

fn lookup(dir: &Path, args: &[&str], q: &str) -> Vec<Value> {
    let mut c = outwatch(dir);
    c.args(args).args(["lookup", q, "--json"]);
    json_out(&mut c)["findings"].as_array().unwrap().clone()
}

fn check_sum(s: &Value) {
    let n = |k: &str| s[k].as_u64().unwrap();
    assert_eq!(
        n("rows"),
        n("imported") + n("duplicates") + n("rejected"),
        "{s}"
    );
    let by_type: u64 = s["by_type"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_u64().unwrap())
        .sum();
    assert_eq!(by_type, n("rows"), "{s}");
    let keys: Vec<&String> = s.as_object().unwrap().keys().collect();
    assert_eq!(
        keys,
        [
            "by_type",
            "duplicates",
            "errors",
            "files",
            "imported",
            "rejected",
            "rows",
            "warning_details",
            "warnings"
        ]
    );
    assert!(
        s["warnings"].as_u64().unwrap() >= s["warning_details"].as_array().unwrap().len() as u64,
        "{s}"
    );
}

#[test]
fn import_current_layout_fixtures() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(dir.path(), "");
    let cfg = cfg.to_str().unwrap();
    let mut c = outwatch(dir.path());
    c.args(["--config", cfg, "import", "shadowserver", "--json"])
        .args(all_fixtures());
    let s = json_out(&mut c);
    check_sum(&s);
    assert_eq!(s["files"], 5);
    assert_eq!(s["rows"], 12);
    // A malformed port is not the finding's identity: the row is kept, with a warning.
    assert_eq!(s["rejected"], 2, "{s}");
    assert_eq!(s["warnings"], 1, "{s}");
    // The two sinkhole rows are the same infected host (ephemeral client ports differ).
    assert_eq!(s["duplicates"], 1, "{s}");
    assert_eq!(s["imported"], 9, "{s}");
    assert_eq!(s["by_type"]["scan_rdp"], 4);
    assert_eq!(s["by_type"]["event4_sinkhole_http"], 2);
    let errors = s["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 2);
    let locs: Vec<&str> = errors
        .iter()
        .map(|e| e["location"].as_str().unwrap())
        .collect();
    assert!(
        locs[0].ends_with("2026-11-20-scan_rdp-example-asn.csv:4"),
        "{locs:?}"
    );
    assert!(locs[1].ends_with("scan_rdp-example-asn.csv:5"), "{locs:?}");
    assert!(errors[0]["message"].as_str().unwrap().contains("not-an-ip"));
    let warning = &s["warning_details"][0];
    assert!(
        warning["location"]
            .as_str()
            .unwrap()
            .ends_with("2026-11-20-scan_rdp-example-asn.csv:3"),
        "{warning}"
    );
    assert!(
        warning["message"].as_str().unwrap().contains("eighty"),
        "{warning}"
    );
    let f = lookup(dir.path(), &["--config", cfg], "192.0.2.34");
    assert_eq!(f.len(), 1);
    assert_eq!(f[0]["port"], Value::Null);
    assert_eq!(f[0]["extra"]["port"], "eighty");

    let a = ["--config", cfg];
    // A scan row: header-mapped fields, per-row severity, CVE from tags, unknown column kept.
    let f = lookup(dir.path(), &a, "192.0.2.54");
    assert_eq!(f.len(), 1);
    let f = &f[0];
    assert_eq!(f["source"], "shadowserver");
    assert_eq!(f["feed"], "scan_dns");
    assert_eq!(
        f["classification"],
        json!({"taxonomy": "vulnerable", "type": "vulnerable-system", "identifier": "dns-open-resolver"})
    );
    assert_eq!(f["port"], 53);
    assert_eq!(f["protocol"], "udp");
    assert_eq!(f["asn"], 64496);
    assert_eq!(f["severity"], "high");
    assert_eq!(f["in_scope"], true);
    assert_eq!(f["time_source"], "2026-11-20T03:14:09Z");
    assert_eq!(f["extra"]["cves"], json!(["CVE-2020-1350"]));
    assert_eq!(
        f["extra"]["tags"],
        json!(["openresolver", "bogusresolver", "CVE-2020-1350"])
    );
    assert_eq!(f["extra"]["dns_version"], "Microsoft DNS 6.1.7601");
    assert_eq!(f["extra"]["naics"], "0", "0 is a value");
    assert!(
        f["raw"]
            .as_str()
            .unwrap()
            .ends_with("scan_dns-example-asn.csv:3")
    );

    let f = &lookup(dir.path(), &a, "192.0.2.53")[0];
    assert_eq!(f["domain"], "ns1.example.org");
    assert_eq!(f["extra"]["hostname_source"], "ptr");
    assert_eq!(
        f["extra"]["sector"],
        "Communications, Service Provider, and Hosting Service"
    );
    assert_eq!(f["severity"], "medium");

    // Outside the configured scope: kept, flagged.
    let f = &lookup(dir.path(), &a, "198.51.100.20")[0];
    assert_eq!(f["in_scope"], false);

    // Unknown (newer) column lands in extra; CVE in a `,` separated tag list.
    let f = &lookup(dir.path(), &a, "192.0.2.33")[0];
    assert_eq!(f["feed"], "scan_rdp");
    assert_eq!(f["extra"]["new_field_2026"], "added-later");
    assert_eq!(f["extra"]["cves"], json!(["CVE-2019-0708"]));
    assert_eq!(f["classification"]["identifier"], "open-rdp");

    // Event report: the infected host is src_*, identifier from `infection`, the sinkhole side
    // stays in extra.
    let f = lookup(dir.path(), &a, "192.0.2.77");
    assert_eq!(f.len(), 1);
    let f = &f[0];
    assert_eq!(f["feed"], "event4_sinkhole_http");
    assert_eq!(
        f["classification"],
        json!({"taxonomy": "malicious-code", "type": "infected-system", "identifier": "andromeda"})
    );
    assert_eq!(f["severity"], "critical");
    // Two rows of the report (11:02:33 and 11:05:10): two observations, the later current,
    // the earlier kept with what differs (issue #21).
    assert_eq!(f["times_seen"], 2);
    assert_eq!(f["time_source"], "2026-11-20T11:05:10Z");
    let earlier = &f["observations"][0];
    assert_eq!(earlier["time_source"], "2026-11-20T11:02:33Z");
    assert_eq!(earlier["differs"]["extra.port"], "49812", "{earlier}");
    assert!(earlier["differs"]["raw"].as_str().unwrap().ends_with(":2"));
    assert_eq!(f["domain"], "pc77.office.example.org");
    assert_eq!(f["port"], Value::Null);
    assert_eq!(f["extra"]["dst_ip"], "203.0.113.80");
    assert_eq!(f["extra"]["http_host"], "gtr.example-c2.com");
    assert_eq!(
        f["url"], "http://gtr.example-c2.com/in.php",
        "host and path assembled"
    );
    assert_eq!(
        f["identity"],
        json!([
            "dst_ip=203.0.113.80",
            "dst_port=80",
            "family=andromeda",
            "infection=andromeda"
        ])
    );
    assert_eq!(f["extra"]["geo"], "NL");
    assert!(lookup(dir.path(), &a, "203.0.113.80").is_empty());

    // ddos_target: the victim is dst_*.
    let f = &lookup(dir.path(), &a, "2001:db8:1::443")[0];
    assert_eq!(f["feed"], "event4_honeypot_ddos_target");
    assert_eq!(f["port"], 443);
    assert_eq!(f["protocol"], "udp");
    assert_eq!(f["severity"], "info");
    assert_eq!(f["classification"]["type"], "ddos");
    assert_eq!(f["extra"]["src_ip"], "203.0.113.9");
    assert!(lookup(dir.path(), &a, "203.0.113.9").is_empty());

    // Blocklist: a CIDR in `ip` becomes the finding's network; default severity when empty.
    let f = lookup(dir.path(), &a, "192.0.2.200");
    assert_eq!(f.len(), 1);
    assert_eq!(f[0]["network"], "192.0.2.128/25");
    assert_eq!(f[0]["ip"], Value::Null);
    assert_eq!(f[0]["feed"], "blocklist");
    assert_eq!(f[0]["extra"]["cves"], json!(["CVE-2024-38063"]));
    let f = &lookup(dir.path(), &a, "192.0.2.99")[0];
    assert_eq!(f["severity"], "low");
    assert_eq!(f["classification"]["type"], "blocklist");

    // The same files again: everything is a duplicate, nothing new, and the same rows are the
    // same observations (a re-import after a crash does not count them twice).
    let mut c = outwatch(dir.path());
    c.args(["--config", cfg, "import", "shadowserver", "--json"])
        .args(all_fixtures());
    let s = json_out(&mut c);
    check_sum(&s);
    assert_eq!(s["imported"], 0);
    assert_eq!(s["duplicates"], 10);
    let f = &lookup(dir.path(), &a, "192.0.2.53")[0];
    assert_eq!(f["times_seen"], 1);
}

#[test]
fn import_works_without_config_and_flags_out_of_scope() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("store");
    let d = data.to_str().unwrap();
    let mut c = outwatch(dir.path());
    c.args(["--data-dir", d, "import", "shadowserver", "--json"])
        .arg(fixture("2026-11-20-scan_dns-example-asn.csv"));
    let s = json_out(&mut c);
    check_sum(&s);
    assert_eq!(s["imported"], 3);
    let f = &lookup(dir.path(), &["--data-dir", d], "192.0.2.53")[0];
    assert_eq!(f["in_scope"], false);
    assert_eq!(f["feed"], "scan_dns");

    // Text output, and a file whose type cannot be told.
    let odd = dir.path().join("notes.csv");
    std::fs::copy(fixture("2026-11-20-scan_dns-example-asn.csv"), &odd).unwrap();
    let out = outwatch(dir.path())
        .args(["--data-dir", d, "import", "shadowserver"])
        .arg(&odd)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--type"));
    // --type fixes it.
    let mut c = outwatch(dir.path());
    c.args([
        "--data-dir",
        d,
        "import",
        "shadowserver",
        "--type",
        "scan_dns",
        "--json",
    ])
    .arg(&odd);
    let s = json_out(&mut c);
    assert_eq!(s["duplicates"], 3);
}

/// An import is one run in the log, `import/shadowserver`: `ok`, `partial` when a file could
/// not be read while others were, `error` when none could.
#[test]
fn an_import_is_logged_with_its_outcome() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("store");
    let d = data.to_str().unwrap();
    let good = fixture("2026-11-20-scan_dns-example-asn.csv");
    let odd = dir.path().join("notes.csv");
    std::fs::copy(&good, &odd).unwrap();
    let import = |files: &[&std::path::Path]| {
        outwatch(dir.path())
            .args(["--data-dir", d, "import", "shadowserver", "--json"])
            .args(files)
            .output()
            .unwrap()
            .status
            .code()
    };
    assert_eq!(import(&[good.as_path()]), Some(0));
    assert_eq!(import(&[good.as_path(), odd.as_path()]), Some(1));
    assert_eq!(import(&[odd.as_path()]), Some(1));
    let s = outwatch::store::open(&data).unwrap();
    let runs = s.runs(Some("import/shadowserver"), 10).unwrap();
    let outcomes: Vec<outwatch::store::RunOutcome> = runs.iter().map(|r| r.outcome).collect();
    assert_eq!(outcomes, {
        use outwatch::store::RunOutcome::*;
        vec![Error, Partial, Ok]
    });
    let partial = &runs[1];
    assert_eq!((partial.fetched, partial.updated), (3, 3), "{partial:?}");
    assert_eq!(partial.failed_units.len(), 1);
    assert!(partial.failed_units[0].unit.ends_with("notes.csv"));
    assert!(
        partial
            .error
            .as_deref()
            .unwrap()
            .contains("1 file(s) could not be read"),
        "{partial:?}"
    );
    assert_eq!(runs[2].new, 3);
    assert!(s.runs(Some("shadowserver-import"), 10).unwrap().is_empty());
}

fn gz_bytes(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

fn zip_bytes(name: &str, data: &[u8]) -> Vec<u8> {
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let opts = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    w.start_file(name, opts).unwrap();
    w.write_all(data).unwrap();
    w.finish().unwrap().into_inner()
}

/// A report mail as Shadowserver sends it: text body plus a zipped CSV attachment (base64).
fn eml_bytes(zip_name: &str, zip: &[u8]) -> Vec<u8> {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(zip);
    let wrapped: Vec<String> = b64
        .as_bytes()
        .chunks(76)
        .map(|c| String::from_utf8(c.to_vec()).unwrap())
        .collect();
    format!(
        "From: autoreports@shadowserver.org\r\n\
To: abuse@example.org\r\n\
Subject: [Example] Shadowserver Example Accessible RDP Report: 2026-11-20\r\n\
Date: Fri, 20 Nov 2026 12:00:00 +0000\r\n\
MIME-Version: 1.0\r\n\
Content-Type: multipart/mixed; boundary=\"==sep==\"\r\n\
\r\n\
--==sep==\r\n\
Content-Type: text/plain; charset=us-ascii\r\n\
\r\n\
Attached is the report.\r\n\
--==sep==\r\n\
Content-Type: application/zip; name=\"{zip_name}\"\r\n\
Content-Transfer-Encoding: base64\r\n\
Content-Disposition: attachment; filename=\"{zip_name}\"\r\n\
\r\n\
{}\r\n\
--==sep==--\r\n",
        wrapped.join("\r\n")
    )
    .into_bytes()
}

#[test]
fn import_gz_zip_and_eml() {
    let dir = tempfile::tempdir().unwrap();
    let name = "2026-11-20-scan_rdp-example-asn.csv";
    let csv = std::fs::read(fixture(name)).unwrap();
    let gz = dir.path().join(format!("{name}.gz"));
    std::fs::write(&gz, gz_bytes(&csv)).unwrap();
    let zip = dir.path().join(format!("{name}.zip"));
    std::fs::write(&zip, zip_bytes(name, &csv)).unwrap();
    let eml = dir.path().join("report-mail.eml");
    std::fs::write(
        &eml,
        eml_bytes(&format!("{name}.zip"), &zip_bytes(name, &csv)),
    )
    .unwrap();
    for (i, (file, loc)) in [
        (&gz, format!("{name}.gz:4")),
        (&zip, format!("{name}.zip!{name}:4")),
        (&eml, format!("report-mail.eml!{name}.zip!{name}:4")),
    ]
    .into_iter()
    .enumerate()
    {
        let data = dir.path().join(format!("store{i}"));
        let mut c = outwatch(dir.path());
        c.args([
            "--data-dir",
            data.to_str().unwrap(),
            "import",
            "shadowserver",
            "--json",
        ])
        .arg(file);
        let s = json_out(&mut c);
        check_sum(&s);
        assert_eq!(s["rows"], 4, "{}: {s}", file.display());
        assert_eq!(s["imported"], 2, "{s}");
        assert_eq!(s["rejected"], 2, "{s}");
        assert_eq!(s["by_type"]["scan_rdp"], 4, "{s}");
        let first = s["errors"][0]["location"].as_str().unwrap();
        assert!(first.ends_with(&loc), "{first} vs {loc}");
        let f = lookup(
            dir.path(),
            &["--data-dir", data.to_str().unwrap()],
            "192.0.2.33",
        );
        assert_eq!(f[0]["feed"], "scan_rdp");
    }
    // A mail without any report attachment is an error, not a silent success.
    let empty = dir.path().join("link-only.eml");
    std::fs::write(
        &empty,
        "From: autoreports@shadowserver.org\r\nSubject: x\r\n\r\nhttps://dl.shadowserver.org/xyz\r\n",
    )
    .unwrap();
    let out = outwatch(dir.path())
        .args([
            "--data-dir",
            dir.path().join("s9").to_str().unwrap(),
            "import",
            "shadowserver",
            "--json",
        ])
        .arg(&empty)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let s: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        s["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("attachment")
    );
}

/// A report mail that carries no attachment but `https://dl.shadowserver.org/<id>?<file>` links:
/// each linked report is downloaded through `[sources.shadowserver] download_url` and imported
/// under the type its file name names; the ids (passwords, in effect) are never shown.
#[tokio::test(flavor = "multi_thread")]
async fn import_mail_with_report_links_downloads_them() {
    let server = MockServer::start().await;
    let dns = std::fs::read(fixture("2026-11-20-scan_dns-example-asn.csv")).unwrap();
    let block = std::fs::read(fixture("2026-11-20-blocklist-example-ip.csv")).unwrap();
    for (id, body) in [(ID_DNS, dns), (ID_SINK, block)] {
        Mock::given(method("GET"))
            .and(path(format!("/dl/{id}")))
            .respond_with(ResponseTemplate::new(200).set_body_bytes(body))
            .expect(1)
            .mount(&server)
            .await;
    }
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(
        dir.path(),
        &format!(
            "[sources.shadowserver]\napi_key = \"{KEY}\"\nsecret = \"{SECRET}\"\ndownload_url = \"{}/dl/\"\n",
            server.uri()
        ),
    );
    let mail = dir.path().join("links.eml");
    std::fs::write(
        &mail,
        format!(
            "From: Shadowserver <autoreports@shadowserver.org>\r\nTo: noc@example.org\r\n\
             Subject: [Example Org] Shadowserver Reports 2026-11-20\r\n\
             Content-Type: text/plain; charset=utf-8\r\n\r\n\
             Your reports for 2026-11-20 can be downloaded:\r\n\r\n\
             https://dl.shadowserver.org/{ID_DNS}?2026-11-20-scan_dns-example-asn.csv\r\n\
             https://dl.shadowserver.org/{ID_SINK}?2026-11-20-blocklist-example-ip.csv\r\n\r\n\
             The links expire after a few days.\r\n"
        ),
    )
    .unwrap();
    let (c, m) = (cfg.clone(), mail.clone());
    let out = tokio::task::spawn_blocking(move || {
        outwatch(c.parent().unwrap())
            .args([
                "--config",
                c.to_str().unwrap(),
                "import",
                "shadowserver",
                "--json",
            ])
            .arg(&m)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "{stdout}\n{stderr}");
    for id in [ID_DNS, ID_SINK] {
        assert!(
            !stdout.contains(id) && !stderr.contains(id),
            "{stdout}\n{stderr}"
        );
    }
    let s: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(s["files"], 1, "{s}");
    assert_eq!(s["by_type"]["scan_dns"], 3, "{s}");
    assert!(s["by_type"]["blocklist"].as_u64().unwrap() > 0, "{s}");
    assert_eq!(s["rejected"], 0, "{s}");
    let f = lookup(
        dir.path(),
        &["--config", cfg.to_str().unwrap()],
        "192.0.2.53",
    );
    assert_eq!(f[0]["feed"], "scan_dns");
    assert!(
        f[0]["raw"]
            .as_str()
            .unwrap()
            .contains("links.eml!2026-11-20-scan_dns-example-asn.csv"),
        "{}",
        f[0]["raw"]
    );

    // An expired link is named by its file, never by its id, and the import fails.
    let mail2 = dir.path().join("expired.eml");
    std::fs::write(
        &mail2,
        format!(
            "From: autoreports@shadowserver.org\r\nSubject: x\r\n\r\n\
             https://dl.shadowserver.org/{ID_RDP}?2026-11-20-scan_rdp-example-asn.csv\r\n"
        ),
    )
    .unwrap();
    let (c, m) = (cfg.clone(), mail2.clone());
    let out = tokio::task::spawn_blocking(move || {
        outwatch(c.parent().unwrap())
            .args([
                "--config",
                c.to_str().unwrap(),
                "import",
                "shadowserver",
                "--json",
            ])
            .arg(&m)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(!stdout.contains(ID_RDP), "{stdout}");
    assert!(
        stdout.contains("2026-11-20-scan_rdp-example-asn.csv"),
        "{stdout}"
    );
}

/// A report that the listing keeps naming past the memory window (a mirror that never drops
/// old reports) is downloaded once, not again each run once its date is old.
#[tokio::test]
async fn a_report_still_listed_past_the_memory_is_not_downloaded_again() {
    let server = MockServer::start().await;
    let dns = std::fs::read(fixture("2026-11-20-scan_dns-example-asn.csv")).unwrap();
    Mock::given(method("POST"))
        .and(path("/api2/reports/list"))
        .respond_with(ResponseTemplate::new(200).set_body_json(report_list(&[(
            ID_DNS,
            "2026-11-20-scan_dns-example-asn.csv",
            "scan_dns",
        )])))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(format!("/dl/{ID_DNS}")))
        .respond_with(ResponseTemplate::new(200).set_body_bytes(dns))
        .mount(&server)
        .await;
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = Arc::new(outwatch::store::open(&dir.path().join("s")).unwrap());
    let clock = Arc::new(ManualClock::new(now()));
    let cfg = outwatch::config::Config::default();
    let src = SourceKind::build(&config_for(&server), &cfg).unwrap();
    let run = runner(store.clone(), clock.clone());
    for _ in 0..3 {
        let rep = run.run_source(src.as_ref()).await;
        assert!(rep.ok, "{:?}", rep.error);
        // A month later each time: far past the 14 days a name is remembered.
        clock.advance(chrono::Duration::days(30));
    }
    let reqs: Vec<Request> = server.received_requests().await.unwrap();
    assert_eq!(downloads(&reqs, ID_DNS), 1);
}

/// `reports = [...]` asks the listing for those mailing lists and keeps only their reports.
#[tokio::test]
async fn reports_filter_keeps_only_the_named_mailing_lists() {
    let server = MockServer::start().await;
    let dns = std::fs::read(fixture("2026-11-20-scan_dns-example-asn.csv")).unwrap();
    let mut list = report_list(&[
        (ID_DNS, "2026-11-20-scan_dns-example-asn.csv", "scan_dns"),
        (ID_RDP, "2026-11-20-scan_rdp-example-asn.csv", "scan_rdp"),
    ]);
    list[1]["report"] = json!("other-list");
    Mock::given(method("POST"))
        .and(path("/api2/reports/list"))
        .respond_with(ResponseTemplate::new(200).set_body_json(list))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(format!("/dl/{ID_DNS}")))
        .respond_with(ResponseTemplate::new(200).set_body_bytes(dns))
        .mount(&server)
        .await;
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = Arc::new(outwatch::store::open(&dir.path().join("s")).unwrap());
    let clock = Arc::new(ManualClock::new(now()));
    let mut c = config_for(&server);
    c.reports = vec!["example-asn".into()];
    let cfg = outwatch::config::Config::default();
    let src = SourceKind::build(&c, &cfg).unwrap();
    let rep = runner(store.clone(), clock).run_source(src.as_ref()).await;
    assert!(rep.ok, "{:?}", rep.error);
    let reqs: Vec<Request> = server.received_requests().await.unwrap();
    assert_eq!(downloads(&reqs, ID_RDP), 0);
    assert_eq!(downloads(&reqs, ID_DNS), 1);
    let body: Value = serde_json::from_slice(
        &reqs
            .iter()
            .find(|r| r.url.path() == "/api2/reports/list")
            .unwrap()
            .body,
    )
    .unwrap();
    assert_eq!(body["reports"], json!(["example-asn"]));
}

/// Every shared sample (older layouts) imports with zero rejected rows and is found by lookup.
#[test]
fn shared_samples_import_without_rejects() {
    let Some(samples) = support::samples("shadowserver") else {
        return;
    };
    let mut files: Vec<PathBuf> = std::fs::read_dir(samples)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "csv"))
        .collect();
    files.sort();
    assert!(!files.is_empty());
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().join("store");
    let d = d.to_str().unwrap();
    let mut c = outwatch(dir.path());
    c.args(["--data-dir", d, "import", "shadowserver", "--json"])
        .args(&files);
    let s = json_out(&mut c);
    check_sum(&s);
    assert_eq!(s["rejected"], 0, "{s}");
    assert_eq!(s["errors"], json!([]), "{s}");
    assert_eq!(s["files"], files.len());
    assert_eq!(s["by_type"].as_object().unwrap().len(), files.len());

    // For each sample with an `ip` column: the first row's IP is found with the right feed.
    let mut checked = 0;
    for file in &files {
        let mut rdr = csv::Reader::from_path(file).unwrap();
        let header = rdr.headers().unwrap().clone();
        let Some(ip_col) = header.iter().position(|h| h == "ip") else {
            continue;
        };
        let rec = rdr.records().next().unwrap().unwrap();
        let ip = rec[ip_col].to_string();
        let report_type = file.file_stem().unwrap().to_str().unwrap();
        let found = lookup(dir.path(), &["--data-dir", d], &ip);
        let f = found
            .iter()
            .find(|f| f["feed"] == report_type)
            .unwrap_or_else(|| panic!("{ip} of {report_type} not found: {found:?}"));
        assert_eq!(f["source"], "shadowserver");
        assert!(!f["classification"]["type"].as_str().unwrap().is_empty());
        assert!(
            !f["classification"]["identifier"]
                .as_str()
                .unwrap()
                .is_empty()
        );
        assert!(!f["severity"].as_str().unwrap().is_empty());
        if let Some(pc) = header.iter().position(|h| h == "port") {
            let p: Option<u64> = rec[pc].parse().ok().filter(|p| *p != 0);
            assert_eq!(f["port"].as_u64(), p, "{report_type}");
        }
        if let Some(pc) = header.iter().position(|h| h == "protocol") {
            let p = rec[pc].to_string();
            if !p.is_empty() {
                assert_eq!(f["protocol"], p, "{report_type}");
            }
        }
        checked += 1;
    }
    assert!(checked > 30, "{checked}");

    // One fixed expectation with the schema's classification and the type's default severity.
    let f = lookup(dir.path(), &["--data-dir", d], "198.123.245.145");
    let f = f.iter().find(|f| f["feed"] == "scan_telnet").unwrap();
    assert_eq!(
        f["classification"],
        json!({"taxonomy": "vulnerable", "type": "vulnerable-system", "identifier": "open-telnet"})
    );
    assert_eq!(f["port"], 5678);
    assert_eq!(f["protocol"], "tcp");
    assert_eq!(f["severity"], "medium");
}

// ---------------------------------------------------------------------------------------------
// Reports API against a local mock.

fn report_list(entries: &[(&str, &str, &str)]) -> Value {
    Value::Array(
        entries
            .iter()
            .map(|(id, file, t)| {
                json!({"report": "example-asn", "file": file, "type": t, "id": id,
                       "timestamp": &file[..10],
                       "url": "https://www.shadowserver.org/what-we-do/network-reporting/"})
            })
            .collect(),
    )
}

const ID_DNS: &str = "xNDSuwXrKnrLrDopU926rR75CAESMWesVCKsuyI8b8ncTv7GCX";
const ID_SINK: &str = "bQ7tYp3LmZ0aR2vK9sW4eU1hJ6cN8dF5gX3iO7kT0qA2yB9wE4";
const ID_RDP: &str = "Zr8Lk2Pq5Wm1Xn7Bv4Cy9Td3Hf6Js0Ga2Ke5Uo8Ri1Ye4Wt7Qp";

fn config_for(server: &MockServer) -> ShadowserverConfig {
    ShadowserverConfig {
        enabled: true,
        schedule: None,
        base_url: Some(format!("{}/api2/", server.uri())),
        download_url: Some(format!("{}/dl/", server.uri())),
        api_key: Some(Secret::new(KEY)),
        api_key_env: None,
        secret: Some(Secret::new(SECRET)),
        secret_env: None,
        types: vec![],
        reports: vec![],
        resolve_after: None,
        schema_url: None,
        allow_plain_http: false,
    }
}

fn now() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-11-22T09:00:00Z")
        .unwrap()
        .with_timezone(&Utc)
}

fn runner(store: Arc<dyn Store>, clock: Arc<ManualClock>) -> Runner {
    let scope = ScopeSnapshot {
        prefixes: vec!["192.0.2.0/24".parse().unwrap()],
        ..Default::default()
    };
    Runner::new(
        store,
        HttpClient::new(&HttpConfig::default(), clock.clone()).unwrap(),
        Arc::new(ScopeMatcher::new(&scope)),
        clock,
    )
}

/// Every POST carries `HMAC2` = hex HMAC-SHA256(secret, exact body) and the key in its body.
async fn assert_all_signed(server: &MockServer) -> usize {
    let reqs: Vec<Request> = server.received_requests().await.unwrap();
    let mut n = 0;
    for r in reqs.iter().filter(|r| r.method.as_str() == "POST") {
        let sig = r
            .headers
            .get("hmac2")
            .unwrap_or_else(|| panic!("no HMAC2 on {}", r.url))
            .to_str()
            .unwrap();
        assert_eq!(sig, sign(SECRET, &r.body), "bad signature on {}", r.url);
        assert_eq!(sig.len(), 64);
        let body: Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(body["apikey"], KEY);
        n += 1;
    }
    n
}

fn downloads(reqs: &[Request], id: &str) -> usize {
    reqs.iter()
        .filter(|r| r.method.as_str() == "GET" && r.url.path() == format!("/dl/{id}"))
        .count()
}

#[tokio::test]
async fn fetch_lists_downloads_and_skips_ingested_reports() {
    let server = MockServer::start().await;
    let dns = std::fs::read(fixture("2026-11-20-scan_dns-example-asn.csv")).unwrap();
    let sink = std::fs::read(fixture("2026-11-20-event4_sinkhole_http-example-asn.csv")).unwrap();
    let rdp = std::fs::read(fixture("2026-11-20-scan_rdp-example-asn.csv")).unwrap();
    let list1 = report_list(&[
        (ID_DNS, "2026-11-20-scan_dns-example-asn.csv", "scan_dns"),
        (
            ID_SINK,
            "2026-11-21-event4_sinkhole_http-example-asn.csv",
            "event4_sinkhole_http",
        ),
    ]);
    Mock::given(method("POST"))
        .and(path("/api2/reports/list"))
        .respond_with(ResponseTemplate::new(200).set_body_json(list1))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    for (id, body) in [(ID_DNS, &dns), (ID_SINK, &sink), (ID_RDP, &rdp)] {
        Mock::given(method("GET"))
            .and(path(format!("/dl/{id}")))
            .respond_with(
                ResponseTemplate::new(200)
                    .insert_header("content-type", "text/csv")
                    .set_body_bytes(body.clone()),
            )
            .mount(&server)
            .await;
    }
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = Arc::new(SledStore::open(dir.path()).unwrap());
    let clock = Arc::new(ManualClock::new(now()));
    let r = runner(store.clone(), clock.clone());
    let src = SourceKind::build(&config_for(&server), &Config::default()).unwrap();

    let rep = r.run_source(src.as_ref()).await;
    assert!(rep.ok, "{rep:?}");
    assert_eq!(rep.fetched, 5);
    assert_eq!(rep.new, 4);
    assert_eq!(rep.in_scope, 4);
    assert_eq!(store.count().unwrap(), 4);
    // The listing asks for "two days ago .. today".
    let reqs = server.received_requests().await.unwrap();
    let list_body: Value = serde_json::from_slice(&reqs[0].body).unwrap();
    assert_eq!(list_body["date"], "2026-11-20:2026-11-22");
    let f = store
        .query(
            &Query::Ip("192.0.2.77".parse().unwrap()),
            &QueryOptions::default(),
        )
        .unwrap();
    assert_eq!(f[0].feed, "event4_sinkhole_http");
    assert_eq!(
        f[0].raw.as_deref(),
        Some("report 2026-11-21-event4_sinkhole_http-example-asn.csv line 3")
    );
    // Remembered by file name; the download ids are never stored.
    let state = String::from_utf8(store.state_get(INGESTED_STATE_KEY).unwrap().unwrap()).unwrap();
    assert!(state.contains("2026-11-20-scan_dns-example-asn.csv"));
    assert!(!state.contains(ID_DNS) && !state.contains(ID_SINK));

    // Next day: the listing repeats both old reports and adds one; only the new one is fetched.
    clock.advance(chrono::Duration::days(1));
    let list2 = report_list(&[
        (ID_DNS, "2026-11-20-scan_dns-example-asn.csv", "scan_dns"),
        (
            ID_SINK,
            "2026-11-21-event4_sinkhole_http-example-asn.csv",
            "event4_sinkhole_http",
        ),
        (ID_RDP, "2026-11-22-scan_rdp-example-asn.csv", "scan_rdp"),
    ]);
    Mock::given(method("POST"))
        .and(path("/api2/reports/list"))
        .respond_with(ResponseTemplate::new(200).set_body_json(list2))
        .mount(&server)
        .await;
    let rep = r.run_source(src.as_ref()).await;
    assert!(rep.ok, "{rep:?}");
    assert_eq!(rep.fetched, 4);
    assert_eq!(
        rep.new, 2,
        "the row with a malformed port keeps its finding"
    );
    assert_eq!(rep.rejected, 2);
    assert!(rep.errors.is_empty() || rep.errors.len() <= 2);
    assert_eq!(store.count().unwrap(), 6);
    let reqs = server.received_requests().await.unwrap();
    assert_eq!(downloads(&reqs, ID_DNS), 1);
    assert_eq!(downloads(&reqs, ID_SINK), 1);
    assert_eq!(downloads(&reqs, ID_RDP), 1);
    assert_eq!(assert_all_signed(&server).await, 2);
    // Downloads carry no signature and no key.
    for r in reqs.iter().filter(|r| r.method.as_str() == "GET") {
        assert!(r.headers.get("hmac2").is_none());
        assert!(!r.url.as_str().contains(KEY));
    }
}

#[tokio::test]
async fn error_reply_and_html_download_leave_the_store_unchanged() {
    let server = MockServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = Arc::new(SledStore::open(dir.path()).unwrap());
    let clock = Arc::new(ManualClock::new(now()));
    let r = runner(store.clone(), clock.clone());
    let src = SourceKind::build(&config_for(&server), &Config::default()).unwrap();

    // A 200 reply carrying {"error": ...} is a failure.
    Mock::given(method("POST"))
        .and(path("/api2/reports/list"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"error": "Invalid HMAC signature for the supplied key"})),
        )
        .up_to_n_times(1)
        .mount(&server)
        .await;
    let rep = r.run_source(src.as_ref()).await;
    assert!(!rep.ok);
    let err = rep.error.clone().unwrap();
    assert!(err.contains("Invalid HMAC"), "{err}");
    assert!(!err.contains(SECRET) && !err.contains(KEY), "{err}");
    assert_eq!(store.count().unwrap(), 0);
    assert!(store.state_get(INGESTED_STATE_KEY).unwrap().is_none());
    let runs = store.runs(Some("shadowserver"), 5).unwrap();
    assert_eq!(runs[0].outcome, RunOutcome::Error);

    // A listed report whose download is an HTML page: that report fails, by name, and neither
    // the id nor the credentials show in the message; the good report is stored and
    // remembered (a unit each), and the run is partial.
    let dns = std::fs::read(fixture("2026-11-20-scan_dns-example-asn.csv")).unwrap();
    Mock::given(method("POST"))
        .and(path("/api2/reports/list"))
        .respond_with(ResponseTemplate::new(200).set_body_json(report_list(&[
            (ID_DNS, "2026-11-20-scan_dns-example-asn.csv", "scan_dns"),
            (ID_RDP, "2026-11-22-scan_rdp-example-asn.csv", "scan_rdp"),
        ])))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(format!("/dl/{ID_DNS}")))
        .respond_with(ResponseTemplate::new(200).set_body_bytes(dns))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(format!("/dl/{ID_RDP}")))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("content-type", "text/html")
                .set_body_string("<!DOCTYPE html><html><body>Link expired</body></html>"),
        )
        .mount(&server)
        .await;
    let rep = r.run_source(src.as_ref()).await;
    assert!(!rep.ok);
    assert_eq!(rep.outcome, RunOutcome::Partial);
    let err = rep.error.clone().unwrap();
    assert!(err.contains("HTML"), "{err}");
    assert!(err.contains("2026-11-22-scan_rdp-example-asn.csv"), "{err}");
    assert!(
        !err.contains(ID_RDP) && !err.contains(SECRET) && !err.contains(KEY),
        "{err}"
    );
    assert_eq!(rep.errors.len(), 1);
    assert_eq!(
        rep.errors[0].unit,
        "report 2026-11-22-scan_rdp-example-asn.csv"
    );
    let kept = store.count().unwrap();
    assert!(kept > 0, "the good report's findings are kept");
    let remembered =
        String::from_utf8(store.state_get(INGESTED_STATE_KEY).unwrap().unwrap()).unwrap();
    assert!(
        remembered.contains("scan_dns") && !remembered.contains("scan_rdp"),
        "{remembered}"
    );
    let runs = store.runs(Some("shadowserver"), 5).unwrap();
    assert_eq!(runs[0].outcome, RunOutcome::Partial);
    assert_eq!(runs[0].failed_units.len(), 1);
    store.state_put(INGESTED_STATE_KEY, None).unwrap();

    // An empty download is refused too.
    server.reset().await;
    Mock::given(method("POST"))
        .and(path("/api2/reports/list"))
        .respond_with(ResponseTemplate::new(200).set_body_json(report_list(&[(
            ID_DNS,
            "2026-11-20-scan_dns-example-asn.csv",
            "scan_dns",
        )])))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(format!("/dl/{ID_DNS}")))
        .respond_with(ResponseTemplate::new(200))
        .mount(&server)
        .await;
    let rep = r.run_source(src.as_ref()).await;
    assert!(!rep.ok);
    assert_eq!(rep.outcome, RunOutcome::Error, "no unit delivered anything");
    assert!(rep.error.unwrap().contains("empty"));
    assert_eq!(store.count().unwrap(), kept);

    // A 401 from the API is an authentication error.
    server.reset().await;
    Mock::given(method("POST"))
        .and(path("/api2/reports/list"))
        .respond_with(ResponseTemplate::new(401).set_body_json(json!({"error": "unauthorized"})))
        .mount(&server)
        .await;
    let rep = r.run_source(src.as_ref()).await;
    assert!(!rep.ok);
    assert!(rep.error.unwrap().contains("authentication"));
    assert_eq!(assert_all_signed(&server).await, 1);
}

#[test]
fn missing_credentials_are_a_config_error() {
    let mut c = ShadowserverConfig {
        enabled: true,
        schedule: None,
        base_url: None,
        download_url: None,
        api_key: Some(Secret::new(KEY)),
        api_key_env: None,
        secret: None,
        secret_env: Some("OUTWATCH_TEST_SS_SECRET_UNSET".into()),
        types: vec![],
        reports: vec![],
        resolve_after: None,
        schema_url: None,
        allow_plain_http: false,
    };
    // The unset variable is the cause, kept as the error's source; shown as a chain.
    let err = SourceKind::build(&c, &Config::default()).err().unwrap();
    assert!(std::error::Error::source(&err).is_some(), "{err:?}");
    let e = ::outwatch::text::chain(&err);
    assert_eq!(
        e,
        "configuration: `sources.shadowserver.secret_env` names $OUTWATCH_TEST_SS_SECRET_UNSET, \
         which is not set"
    );
    c.secret_env = None;
    let e = ::outwatch::text::chain(&SourceKind::build(&c, &Config::default()).err().unwrap());
    assert!(e.contains("secret"), "{e}");
    assert!(!e.contains(KEY));
}

/// `outwatch fetch --source shadowserver --json`, `shadowserver ping` and `update-schema`
/// through the CLI against the mock.
#[tokio::test(flavor = "multi_thread")]
async fn cli_fetch_ping_and_update_schema() {
    let server = MockServer::start().await;
    let dns = std::fs::read(fixture("2026-11-20-scan_dns-example-asn.csv")).unwrap();
    // The binary runs on the real clock: the listing names a report of today, as the real
    // listing ("two days ago .. today") would.
    let listed = format!(
        "{}-scan_dns-example-asn.csv",
        chrono::Utc::now().date_naive()
    );
    Mock::given(method("POST"))
        .and(path("/api2/reports/list"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(report_list(&[(ID_DNS, &listed, "scan_dns")])),
        )
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(format!("/dl/{ID_DNS}")))
        .respond_with(ResponseTemplate::new(200).set_body_bytes(dns))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/api2/test/ping"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"pong": "2026-11-22 09:00:00"})),
        )
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/api2/key/info"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([{
            "query_limit": "0", "user": "***", "status": "active", "access": ["reports"],
            "query_count": "10", "apikey": "***", "label": "***"}])))
        .mount(&server)
        .await;
    let mut schema: Value =
        serde_json::from_str(include_str!("../../feeds/shadowserver/reports.json")).unwrap();
    schema["scan_newservice"] = json!({
        "name": "Accessible-New-Service", "classification.taxonomy": "vulnerable",
        "classification.type": "vulnerable-system",
        "fields": ["timestamp", "severity", "ip", "protocol", "port", "hostname", "tag", "asn"]});
    Mock::given(method("GET"))
        .and(path("/schema/reports.json"))
        .respond_with(ResponseTemplate::new(200).set_body_json(schema))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/schema/broken.json"))
        .respond_with(ResponseTemplate::new(200).set_body_string("<html><body>oops</body></html>"))
        .mount(&server)
        .await;

    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(
        dir.path(),
        &format!(
            "[sources.shadowserver]\nbase_url = \"{u}/api2/\"\ndownload_url = \"{u}/dl/\"\n\
             api_key_env = \"OUTWATCH_TEST_SS_KEY\"\nsecret_env = \"OUTWATCH_TEST_SS_SECRET\"\n\
             schema_url = \"{u}/schema/reports.json\"\n",
            u = server.uri()
        ),
    );
    let cfg = cfg.to_str().unwrap().to_string();
    let d = dir.path().to_path_buf();
    let run = move |args: Vec<String>| {
        let d = d.clone();
        let cfg = cfg.clone();
        std::thread::spawn(move || {
            outwatch(&d)
                .env("OUTWATCH_TEST_SS_KEY", KEY)
                .env("OUTWATCH_TEST_SS_SECRET", SECRET)
                .arg("--config")
                .arg(&cfg)
                .args(&args)
                .output()
                .unwrap()
        })
        .join()
        .unwrap()
    };
    let args = |s: &str| s.split(' ').map(str::to_string).collect::<Vec<_>>();

    let out = run(args("fetch --source shadowserver --json"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let s = &v["sources"][0];
    assert_eq!(s["name"], "shadowserver");
    assert_eq!(s["ok"], true);
    assert_eq!(s["fetched"], 3);
    assert_eq!(s["new"], 3);
    assert_eq!(s["in_scope"], 2);
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!all.contains(SECRET) && !all.contains(ID_DNS));
    // Second run: the report is known, nothing is downloaded again.
    let out = run(args("fetch --source shadowserver --json"));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["sources"][0]["fetched"], 0);

    let out = run(args("shadowserver ping --json"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["ok"], true);
    assert_eq!(v["pong"], "2026-11-22 09:00:00");
    assert_eq!(v["key"]["status"], "active");
    assert!(v["key"].get("apikey").is_none());

    // A broken schema is refused and changes nothing.
    let out = run(vec![
        "shadowserver".into(),
        "update-schema".into(),
        "--url".into(),
        format!("{}/schema/broken.json", server.uri()),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unchanged"));
    // The configured schema_url: a new type appears and its files import by name.
    let out = run(args("shadowserver update-schema"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("scan_newservice"));
    let f = dir
        .path()
        .join("2026-11-22-scan_newservice-example-asn.csv");
    std::fs::write(
        &f,
        "\"timestamp\",\"severity\",\"ip\",\"protocol\",\"port\",\"hostname\",\"tag\",\"asn\"\n\
         \"2026-11-22 01:00:00\",\"high\",\"192.0.2.5\",\"tcp\",4444,,\"newservice\",64496\n",
    )
    .unwrap();
    let out = run(vec![
        "import".into(),
        "shadowserver".into(),
        "--json".into(),
        f.to_str().unwrap().into(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["by_type"]["scan_newservice"], 1);
    let out = run(args("lookup 192.0.2.5 --json"));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let f = &v["findings"][0];
    assert_eq!(f["feed"], "scan_newservice");
    assert_eq!(f["classification"]["type"], "vulnerable-system");
    assert_eq!(f["classification"]["identifier"], "scan-newservice");
    assert_eq!(f["severity"], "high");
    assert_eq!(assert_all_signed(&server).await, 4);
}

/// One of two listed reports fails (its download is cut off mid-body, without a
/// `Content-Length`): the other is stored and remembered at once; the broken one is named,
/// not remembered, and downloaded again by the next run, which completes it. The good one is
/// not downloaded twice.
#[tokio::test]
async fn a_failed_report_costs_only_itself_and_is_fetched_again() {
    let server = MockServer::start().await;
    let dns = std::fs::read(fixture("2026-11-20-scan_dns-example-asn.csv")).unwrap();
    let rdp = std::fs::read(fixture("2026-11-20-scan_rdp-example-asn.csv")).unwrap();
    // Downloads, in the order they are asked for: DNS whole and RDP cut in its second line
    // (first run), then RDP whole (second run).
    let cut = rdp.iter().position(|&b| b == b'\n').unwrap() + 10;
    let (dl, log) =
        support::serve_cut_logged(vec![(dns, None), (rdp.clone(), Some(cut)), (rdp, None)]);
    Mock::given(method("POST"))
        .and(path("/api2/reports/list"))
        .respond_with(ResponseTemplate::new(200).set_body_json(report_list(&[
            (ID_DNS, "2026-11-20-scan_dns-example-asn.csv", "scan_dns"),
            (ID_RDP, "2026-11-22-scan_rdp-example-asn.csv", "scan_rdp"),
        ])))
        .mount(&server)
        .await;
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = Arc::new(SledStore::open(dir.path()).unwrap());
    let clock = Arc::new(ManualClock::new(now()));
    let r = runner(store.clone(), clock.clone());
    let mut cfg = config_for(&server);
    cfg.download_url = Some(format!("{dl}/dl/"));
    let src = SourceKind::build(&cfg, &Config::default()).unwrap();

    let rep = r.run_source(src.as_ref()).await;
    assert!(!rep.ok);
    assert_eq!(rep.outcome, RunOutcome::Partial);
    assert_eq!(rep.errors.len(), 1, "{:?}", rep.errors);
    assert_eq!(
        rep.errors[0].unit,
        "report 2026-11-22-scan_rdp-example-asn.csv"
    );
    assert!(rep.errors[0].error.contains("cut off"), "{:?}", rep.errors);
    let after_first = store.count().unwrap();
    assert!(after_first > 0, "the DNS report is stored");
    let remembered =
        String::from_utf8(store.state_get(INGESTED_STATE_KEY).unwrap().unwrap()).unwrap();
    assert!(remembered.contains("scan_dns") && !remembered.contains("scan_rdp"));
    let health = outwatch::health::judge(
        "shadowserver",
        &Default::default(),
        &store.runs(Some("shadowserver"), 5).unwrap(),
        now(),
    );
    assert_eq!(health.state, outwatch::health::HealthState::Partial);
    assert!(
        health.warnings[0].contains("scan_rdp"),
        "{:?}",
        health.warnings
    );

    // The server mended: only the failed report is downloaded again, and it completes.
    clock.advance(chrono::Duration::hours(6));
    let rep = r.run_source(src.as_ref()).await;
    assert!(rep.ok, "{rep:?}");
    assert!(store.count().unwrap() > after_first);
    let remembered =
        String::from_utf8(store.state_get(INGESTED_STATE_KEY).unwrap().unwrap()).unwrap();
    assert!(remembered.contains("scan_rdp"));
    let log = log.lock().unwrap().clone();
    assert_eq!(
        log,
        vec![
            format!("GET /dl/{ID_DNS} HTTP/1.1"),
            format!("GET /dl/{ID_RDP} HTTP/1.1"),
            format!("GET /dl/{ID_RDP} HTTP/1.1"),
        ]
    );
}

/// kill -9 in the middle of an import: the store still opens, and importing the same report
/// again completes with every row (a crash loses at most the import in flight, never the
/// store). Wherever the kill lands, these must hold, so the test does not depend on timing.
#[test]
fn an_import_killed_mid_way_leaves_a_store_that_a_rerun_completes() {
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("2026-11-20-scan_dns-big.csv");
    let rows = 80_000u32;
    let mut w = std::io::BufWriter::new(std::fs::File::create(&report).unwrap());
    writeln!(w, "\"timestamp\",\"severity\",\"ip\",\"protocol\",\"port\",\"hostname\",\"tag\",\"asn\",\"geo\"").unwrap();
    for i in 0..rows {
        // Spread over many /24s, listed out of address order (as reports are, by time).
        let a = i.wrapping_mul(2_654_435_761) | 0x0a00_0000;
        let ip = std::net::Ipv4Addr::from(a & 0x0aff_ffff);
        writeln!(
            w,
            "\"2026-11-20 03:14:07\",\"medium\",\"{ip}\",\"udp\",53,,\"openresolver\",64496,\"NL\""
        )
        .unwrap();
    }
    drop(w);
    let data = dir.path().join("data");
    let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("outwatch"))
        .current_dir(dir.path())
        .env_remove("OUTWATCH_CONFIG")
        .env_remove("RUST_LOG")
        .arg("--data-dir")
        .arg(&data)
        .args(["import", "shadowserver", "--json"])
        .arg(&report)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Kill once the store exists (mid-way on any machine this suite runs on; if the import
    // already finished, the checks below hold all the same).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !data.join("db").exists() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    std::thread::sleep(std::time::Duration::from_millis(50));
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    // The store opens: the killed process's lock went with it.
    let before = SledStore::open(&data)
        .expect("the store opens after kill -9")
        .count()
        .unwrap();
    eprintln!("findings after the kill: {before}");
    assert!(before <= rows as usize);
    let s = json_out(
        outwatch(dir.path())
            .arg("--data-dir")
            .arg(&data)
            .args(["import", "shadowserver", "--json"])
            .arg(&report),
    );
    assert_eq!(s["rows"], rows);
    assert_eq!(s["rejected"], 0);
    let store = SledStore::open(&data).unwrap();
    let distinct = store.count().unwrap();
    assert!(distinct > 0 && distinct <= rows as usize);
    // The rows' addresses: count the distinct ones to know the exact total.
    let mut ips: Vec<u32> = (0..rows)
        .map(|i| (i.wrapping_mul(2_654_435_761) | 0x0a00_0000) & 0x0aff_ffff)
        .collect();
    ips.sort_unstable();
    ips.dedup();
    assert_eq!(distinct, ips.len());
}

/// A row keeps its finding when only a secondary column is malformed (issue #11, item 2): a
/// sinkhole row whose `src_ip` is our infected host and whose `dst_ip` is `148.81.111.11.12`
/// is imported, the bad value kept in `extra` and counted in `warnings`. A row whose subject
/// address is malformed is still rejected.
#[test]
fn sinkhole_row_with_a_malformed_dst_ip_keeps_its_finding() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(dir.path(), "");
    let csv = dir
        .path()
        .join("2026-11-20-event4_sinkhole-example-asn.csv");
    std::fs::write(
        &csv,
        "\"timestamp\",\"protocol\",\"src_ip\",\"src_port\",\"src_asn\",\"dst_ip\",\"dst_port\",\"dst_asn\",\"infection\",\"tag\"\n\
         \"2026-11-20 11:02:33\",\"tcp\",\"192.0.2.77\",49812,64496,\"148.81.111.11.12\",80,64500,\"andromeda\",\"\"\n\
         \"2026-11-20 11:02:34\",\"tcp\",\"192.0.2.78\",\"port?\",\"AS64x\",\"203.0.113.80\",\"http\",64500,\"andromeda\",\"\"\n\
         \"2026-11-20 11:02:35\",\"tcp\",\"192.0.2.300\",49812,64496,\"203.0.113.80\",80,64500,\"andromeda\",\"\"\n",
    )
    .unwrap();
    let mut c = outwatch(dir.path());
    c.args([
        "--config",
        cfg.to_str().unwrap(),
        "import",
        "shadowserver",
        "--json",
    ])
    .arg(&csv);
    let s = json_out(&mut c);
    check_sum(&s);
    assert_eq!(s["rows"], 3, "{s}");
    assert_eq!(s["imported"], 2, "{s}");
    assert_eq!(s["rejected"], 1, "{s}");
    // dst_ip of line 2; src_port and src_asn of line 3 (another side's port is plain extra).
    assert_eq!(s["warnings"], 3, "{s}");
    let w = s["warning_details"].as_array().unwrap();
    assert!(
        w[0]["location"].as_str().unwrap().ends_with(".csv:2"),
        "{s}"
    );
    assert!(
        w[0]["message"]
            .as_str()
            .unwrap()
            .contains("148.81.111.11.12"),
        "{s}"
    );
    assert!(
        s["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("192.0.2.300"),
        "{s}"
    );
    let a = ["--config", cfg.to_str().unwrap()];
    let f = lookup(dir.path(), &a, "192.0.2.77");
    assert_eq!(f.len(), 1, "the infected host keeps its finding");
    assert_eq!(f[0]["classification"]["identifier"], "andromeda");
    assert_eq!(f[0]["extra"]["dst_ip"], "148.81.111.11.12");
    let f = lookup(dir.path(), &a, "192.0.2.78");
    assert_eq!(f.len(), 1);
    assert_eq!(f[0]["asn"], Value::Null);
    assert_eq!(f[0]["extra"]["asn"], "AS64x");
    assert_eq!(f[0]["extra"]["port"], "port?");
    assert_eq!(f[0]["extra"]["dst_port"], "http");
}

/// A timestamp with a character that is not ASCII at byte 19 used to panic `parse_time`
/// ("byte index 19 is not a char boundary"): the import exited 1 and imported nothing. Now the
/// row is rejected and the rest of the file imported (issue #11, item 3).
#[test]
fn non_ascii_timestamp_rejects_its_row_not_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(dir.path(), "");
    let csv = dir.path().join("2026-11-20-scan_dns-example-asn.csv");
    std::fs::write(
        &csv,
        "\"timestamp\",\"ip\",\"protocol\",\"port\",\"tag\"\n\
         \"2026-11-20 03:14:01\",\"192.0.2.7\",\"udp\",53,\"openresolver\"\n\
         \"2026-11-20 03:14:0\u{e9}\",\"192.0.2.8\",\"udp\",53,\"openresolver\"\n\
         \"2026-11-20 03:14:03\",\"192.0.2.9\",\"udp\",53,\"openresolver\"\n",
    )
    .unwrap();
    let mut c = outwatch(dir.path());
    c.args([
        "--config",
        cfg.to_str().unwrap(),
        "import",
        "shadowserver",
        "--json",
    ])
    .arg(&csv);
    let s = json_out(&mut c);
    check_sum(&s);
    assert_eq!(s["rows"], 3, "{s}");
    assert_eq!(s["imported"], 2, "{s}");
    assert_eq!(s["rejected"], 1, "{s}");
    assert!(
        s["errors"][0]["location"]
            .as_str()
            .unwrap()
            .ends_with(".csv:3"),
        "{s}"
    );
    assert!(
        s["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("timestamp"),
        "{s}"
    );
}

/// A gzip report cut off mid-stream fails while it is read, after thousands of its rows were
/// parsed (and spilled): nothing of it is stored or remembered; the next run stores it whole.
/// The report streams through a temporary file in the data folder, which is gone afterwards.
#[tokio::test]
async fn a_cut_gzip_report_stores_nothing_of_itself() {
    let server = MockServer::start().await;
    let mut csv = String::from(
        "\"timestamp\",\"severity\",\"ip\",\"protocol\",\"port\",\"hostname\",\"tag\",\"asn\",\"geo\",\"region\",\"city\",\"naics\",\"hostname_source\",\"sector\",\"dns_version\",\"min_amplification\"\n",
    );
    for i in 0..20_000u32 {
        let (b, c, d) = (i >> 16, (i >> 8) & 255, i & 255);
        csv.push_str(&format!(
            "\"2026-11-20 03:14:07\",\"medium\",\"10.{b}.{c}.{d}\",\"udp\",53,\"h{i}.dyn.example.net\",\"openresolver\",64496,\"NL\",\"NOORD-HOLLAND\",\"AMSTERDAM\",517311,\"ptr\",\"Hosting\",\"dnsmasq-2.80\",\"28.3\"\n"
        ));
    }
    let gz = gz_bytes(csv.as_bytes());
    let cut = gz.len() * 3 / 4;
    let (dl, _log) = support::serve_cut_logged(vec![(gz.clone(), Some(cut)), (gz, None)]);
    Mock::given(method("POST"))
        .and(path("/api2/reports/list"))
        .respond_with(ResponseTemplate::new(200).set_body_json(report_list(&[(
            ID_DNS,
            "2026-11-20-scan_dns-example-asn.csv",
            "scan_dns",
        )])))
        .mount(&server)
        .await;
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = Arc::new(SledStore::open(dir.path()).unwrap());
    let clock = Arc::new(ManualClock::new(now()));
    let r = runner(store.clone(), clock.clone());
    let mut cfg = config_for(&server);
    cfg.download_url = Some(format!("{dl}/dl/"));
    let src = SourceKind::build(&cfg, &Config::default()).unwrap();
    let files = || std::fs::read_dir(dir.path()).unwrap().count();
    let before = files();

    let rep = r.run_source(src.as_ref()).await;
    // Its only unit failed: the run failed.
    assert_eq!(rep.outcome, RunOutcome::Error, "{rep:?}");
    assert_eq!(rep.errors.len(), 1, "{:?}", rep.errors);
    assert!(rep.errors[0].error.contains("deflate"), "{:?}", rep.errors);
    assert_eq!(
        store.count().unwrap(),
        0,
        "nothing of the cut report is stored"
    );
    assert!(
        store
            .state_get(INGESTED_STATE_KEY)
            .unwrap()
            .is_none_or(|v| { !String::from_utf8_lossy(&v).contains("scan_dns") })
    );
    assert_eq!(files(), before, "no temporary file is left behind");

    clock.advance(chrono::Duration::hours(6));
    let rep = r.run_source(src.as_ref()).await;
    assert!(rep.ok, "{rep:?}");
    assert_eq!(store.count().unwrap(), 20_000);
    assert_eq!(rep.new, 20_000);
    let remembered =
        String::from_utf8(store.state_get(INGESTED_STATE_KEY).unwrap().unwrap()).unwrap();
    assert!(remembered.contains("scan_dns"));
}

// ---------------------------------------------------------------------------------------------
// Which rows are one finding, web addresses, retired and unknown report types (our fixtures).

/// The counts of an import summary.
fn nums(s: &Value, keys: &[&str]) -> Vec<u64> {
    keys.iter().map(|k| s[*k].as_u64().unwrap()).collect()
}

/// Imports `files` (fixture names) into a fresh store under the 192.0.2.0/24 scope; the
/// summary.
fn import_fixtures(dir: &Path, files: &[&str], extra_args: &[&str]) -> Value {
    let paths: Vec<PathBuf> = files.iter().map(|f| fixture(f)).collect();
    import_paths(dir, &paths, extra_args)
}

/// Imports `paths` with the config of `dir` (written when missing); the summary.
fn import_paths(dir: &Path, paths: &[PathBuf], extra_args: &[&str]) -> Value {
    let cfg = dir.join("outwatch.toml");
    if !cfg.exists() {
        write_config(dir, "");
    }
    let mut c = outwatch(dir);
    c.args([
        "--config",
        cfg.to_str().unwrap(),
        "import",
        "shadowserver",
        "--json",
    ])
    .args(extra_args)
    .args(paths);
    let s = json_out(&mut c);
    check_sum(&s);
    s
}

fn lookup_in(dir: &Path, q: &str) -> Vec<Value> {
    let cfg = dir.join("outwatch.toml");
    lookup(dir, &["--config", cfg.to_str().unwrap()], q)
}

/// Two families on one address are two findings, also when `infection` is empty and only
/// `family` names them; a query asked again is the same observation, another query another.
#[test]
fn sinkhole_dns_families_and_queries_are_findings_of_their_own() {
    let dir = tempfile::tempdir().unwrap();
    let s = import_fixtures(
        dir.path(),
        &["2026-11-20-event4_sinkhole_dns-example-asn.csv"],
        &[],
    );
    assert_eq!(
        nums(&s, &["rows", "imported", "duplicates"]),
        [6, 5, 1],
        "{s}"
    );
    let f = lookup_in(dir.path(), "192.0.2.41");
    let mut ids: Vec<String> = f
        .iter()
        .map(|f| {
            f["identity"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| p.as_str().unwrap())
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect();
    ids.sort();
    assert_eq!(
        ids,
        [
            "family=calypso infection=calypso query=rawfuns.example.com",
            "family=calypso infection=calypso query=yolkish.example.com",
            "family=necurs query=dga1.example.net",
            "family=orcus infection=orcus query=verble.example.net",
            "family=qakbot query=dga1.example.net",
        ]
    );
    assert!(
        f.iter()
            .all(|f| f["classification"]["identifier"] == "sinkholedns")
    );
}

/// One name asked by two sandbox samples: two findings (their md5s); a sample asking again
/// is the same observation.
#[test]
fn sandbox_dns_samples_are_findings_of_their_own() {
    let dir = tempfile::tempdir().unwrap();
    let s = import_fixtures(dir.path(), &["2026-11-20-sandbox_dns-example.csv"], &[]);
    assert_eq!(
        nums(&s, &["rows", "imported", "duplicates"]),
        [3, 2, 1],
        "{s}"
    );
    let f = lookup_in(dir.path(), "update.example.org");
    let mut md5: Vec<&str> = f
        .iter()
        .map(|f| f["extra"]["md5"].as_str().unwrap())
        .collect();
    md5.sort();
    assert_eq!(
        md5,
        [
            "807679198a39c80d3ca07e60fd51b581",
            "b575ce6dcce6502a8431db5610135c25"
        ]
    );
}

/// The HTTP event reports and compromised websites: `url` is the whole address, from the
/// host, the path of the request line, the scheme and the server's port.
#[test]
fn http_event_reports_give_whole_urls() {
    let dir = tempfile::tempdir().unwrap();
    let s = import_fixtures(
        dir.path(),
        &[
            "2026-11-20-compromised_website-example-asn.csv",
            "2026-11-20-event4_microsoft_sinkhole_http-example-asn.csv",
            "2026-11-20-event4_sinkhole_http_referer-example-asn.csv",
            "2026-11-20-event6_sinkhole_http-example-asn.csv",
        ],
        &[],
    );
    assert_eq!(
        nums(&s, &["rows", "imported", "rejected", "warnings"]),
        [12, 12, 0, 0],
        "{s}"
    );
    let urls = |q: &str| -> Vec<String> {
        let mut u: Vec<String> = lookup_in(dir.path(), q)
            .iter()
            .map(|f| f["url"].as_str().unwrap_or("(none)").to_string())
            .collect();
        u.sort();
        u
    };
    assert_eq!(
        urls("192.0.2.90"),
        [
            "http://shop.example.net:8080/header.php",
            "https://shop.example.net/login/index.html"
        ]
    );
    assert_eq!(urls("192.0.2.91"), ["http://store.example.com/checkout"]);
    assert_eq!(
        urls("192.0.2.101"),
        [
            "http://198.51.100.97/locator.php",
            "http://198.51.100.97/news/stream.php"
        ]
    );
    assert_eq!(
        urls("192.0.2.102"),
        ["https://3fo8jrthz3y.example.cc/index.php"]
    );
    // The referer report: the sinkholed address our web server's pages point at (each page,
    // in `extra.http_referer`, its own finding).
    assert_eq!(
        urls("192.0.2.111"),
        [
            "http://track.example.com/favicon.ico",
            "http://track.example.com/favicon.ico"
        ]
    );
    assert_eq!(
        urls("192.0.2.112"),
        ["http://freescan.example.com/personalationmall.com"]
    );
    assert_eq!(
        urls("2001:db8:1::21"),
        ["http://serpientes.example.top/panel/upload/waztn.cmp"]
    );
    assert_eq!(
        urls("2001:db8:1::23"),
        ["http://gaghpahei.example.top:8080/7"]
    );
    // The pieces stay as written.
    let f = &lookup_in(dir.path(), "192.0.2.91")[0];
    assert_eq!(f["extra"]["url"], "GET /checkout HTTP/1.1");
    assert_eq!(f["extra"]["http_host"], "store.example.com");
}

/// Every retired type imports from a file named as Shadowserver named it, classified as the
/// retired table says; `phish_url` as IntelMQ reads it (url, host → domain, address, ASN,
/// time).
#[test]
fn retired_report_types_import_from_files() {
    let dir = tempfile::tempdir().unwrap();
    let files = [
        "2022-02-01-phish_url-example-asn.csv",
        "2022-02-16-scan_modbus-example-asn.csv",
        "2021-12-13-scan_log4shell_vulnerable-example-asn.csv",
        "2018-10-18-outdated_dnssec_key-example-asn.csv",
        "2018-10-18-outdated_dnssec_key_v6-example-asn.csv",
    ];
    let s = import_fixtures(dir.path(), &files, &[]);
    assert_eq!(
        nums(&s, &["rows", "imported", "rejected", "warnings"]),
        [6, 6, 0, 0],
        "{s}"
    );
    assert_eq!(s["by_type"]["phish_url"], 2, "{s}");
    let class = |q: &str| {
        let f = &lookup_in(dir.path(), q)[0];
        (
            f["feed"].as_str().unwrap().to_string(),
            format!(
                "{}/{}/{}",
                f["classification"]["taxonomy"].as_str().unwrap(),
                f["classification"]["type"].as_str().unwrap(),
                f["classification"]["identifier"].as_str().unwrap()
            ),
            f["severity"].as_str().unwrap().to_string(),
        )
    };
    let c =
        |feed: &str, class: &str, sev: &str| (feed.to_string(), class.to_string(), sev.to_string());
    assert_eq!(
        class("192.0.2.120"),
        c("phish_url", "fraud/phishing/phish-url", "high")
    );
    assert_eq!(
        class("192.0.2.130"),
        c("scan_modbus", "other/other/open-modbus", "high")
    );
    assert_eq!(
        class("192.0.2.140"),
        c(
            "scan_log4shell_vulnerable",
            "vulnerable/vulnerable-system/log4shell",
            "critical"
        )
    );
    assert_eq!(
        class("192.0.2.150"),
        c(
            "outdated_dnssec_key",
            "availability/other/outdated-dnssec-key",
            "low"
        )
    );
    assert_eq!(
        class("2001:db8:1::150"),
        c(
            "outdated_dnssec_key_v6",
            "availability/other/outdated-dnssec-key",
            "low"
        )
    );
    let f = &lookup_in(dir.path(), "192.0.2.120")[0];
    assert_eq!(
        f["url"],
        "https://priceless-pare.example.org/Postal-/acec6/"
    );
    assert_eq!(f["domain"], "priceless-pare.example.org");
    assert_eq!(f["asn"], 64496);
    assert_eq!(f["time_source"], "2022-02-01T08:00:07Z");
    assert_eq!(f["extra"]["source"], "openphish.com");
    assert!(f["extra"].get("host").is_none(), "host became the domain");
    assert_eq!(f["extra"]["application"], Value::Null);
    let f = &lookup_in(dir.path(), "192.0.2.130")[0];
    assert_eq!(f["port"], 502);
    assert_eq!(f["extra"]["application"], "modbus");
    assert_eq!(f["extra"]["vendor"], "Schneider Electric");

    // `--type phish_url` reads a file whose name says nothing.
    let odd = dir.path().join("archive-2022.csv");
    std::fs::copy(fixture(files[0]), &odd).unwrap();
    let s = import_paths(dir.path(), &[odd], &["--type", "phish_url"]);
    assert_eq!(
        nums(&s, &["rows", "duplicates", "warnings"]),
        [2, 2, 0],
        "{s}"
    );
}

/// A type no table knows is read (every column kept, classified by its name) with a warning
/// naming it, from `--type` or from a dated file name; never refused.
#[test]
fn unknown_report_types_are_read_with_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    let body = "\"timestamp\",\"ip\",\"port\",\"protocol\",\"asn\",\"tag\",\"gizmo_version\"\n\
                \"2026-11-20 01:02:03\",\"192.0.2.160\",4444,\"tcp\",64496,\"gizmo\",\"0\"\n";
    let named = dir.path().join("2026-11-20-scan_gizmo-example-asn.csv");
    std::fs::write(&named, body).unwrap();
    let s = import_paths(dir.path(), &[named], &[]);
    assert_eq!(
        nums(&s, &["rows", "imported", "warnings"]),
        [1, 1, 1],
        "{s}"
    );
    let w = s["warning_details"][0]["message"].as_str().unwrap();
    assert!(
        w.contains("scan_gizmo") && w.contains("does not know"),
        "{w}"
    );
    let f = &lookup_in(dir.path(), "192.0.2.160")[0];
    assert_eq!(f["feed"], "scan_gizmo");
    assert_eq!(f["classification"]["type"], "vulnerable-system");
    assert_eq!(f["port"], 4444);
    assert_eq!(f["extra"]["gizmo_version"], "0");

    // A mistyped --type is read too, the warning naming the closest type.
    let odd = dir.path().join("report.csv");
    std::fs::copy(fixture("2026-11-20-scan_dns-example-asn.csv"), &odd).unwrap();
    let s = import_paths(dir.path(), &[odd], &["--type", "scan_dsn"]);
    assert_eq!(s["rejected"], 0, "{s}");
    assert_eq!(s["warnings"], 1, "{s}");
    let w = s["warning_details"][0]["message"].as_str().unwrap();
    assert!(w.contains("did you mean `scan_dns`"), "{w}");
}

/// Through the Reports API, a listed `phish_url` report is read as the retired table says.
#[tokio::test]
async fn fetch_reads_a_retired_report_type() {
    let server = MockServer::start().await;
    let body = std::fs::read(fixture("2022-02-01-phish_url-example-asn.csv")).unwrap();
    let list = report_list(&[(ID_DNS, "2026-11-20-phish_url-example-asn.csv", "phish_url")]);
    Mock::given(method("POST"))
        .and(path("/api2/reports/list"))
        .respond_with(ResponseTemplate::new(200).set_body_json(list))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(format!("/dl/{ID_DNS}")))
        .respond_with(ResponseTemplate::new(200).set_body_bytes(body))
        .mount(&server)
        .await;
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = Arc::new(outwatch::store::open(&dir.path().join("s")).unwrap());
    let clock = Arc::new(ManualClock::new(now()));
    let src = SourceKind::build(&config_for(&server), &Config::default()).unwrap();
    let rep = runner(store.clone(), clock).run_source(src.as_ref()).await;
    assert!(rep.ok, "{:?}", rep.error);
    assert_eq!((rep.new, rep.warnings), (2, 0), "{rep:?}");
    let f = store
        .query(
            &Query::Ip("192.0.2.120".parse().unwrap()),
            &QueryOptions::default(),
        )
        .unwrap();
    assert_eq!(f.len(), 1);
    assert_eq!(f[0].feed, "phish_url");
    assert_eq!(f[0].classification.kind, "phishing");
    assert_eq!(f[0].classification.taxonomy, "fraud");
    assert_eq!(f[0].domain.as_deref(), Some("priceless-pare.example.org"));
    assert_eq!(
        f[0].url.as_deref(),
        Some("https://priceless-pare.example.org/Postal-/acec6/")
    );
}
