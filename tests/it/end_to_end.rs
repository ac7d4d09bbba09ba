//! The whole product, as a user runs it: recorded provider replies served by mock servers on
//! loopback → `outwatch run --once` (the real binary: scope refresh, every enabled source, the
//! digest) → a real SMTP server on loopback (mailin-embedded, in process) receives the digest,
//! which is parsed and checked: subject, both parts, and that a `<script>` planted in feed data
//! arrives escaped. Then `lookup` and `status` show what was stored.

use std::path::Path;

use mail_parser::{MessageParser, MimeHeaders};
use serde_json::Value;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::backends::Backend;
use crate::support::smtp::Smtp;

const SCRIPT: &str = "<script>alert(1)</script>";

/// A plain SMTP server on 127.0.0.1 (random port).
fn smtp() -> Smtp {
    Smtp::start(None)
}

/// The messages it accepted so far, as sent.
fn accepted(server: &Smtp) -> Vec<Vec<u8>> {
    server.received().into_iter().map(|r| r.data).collect()
}

fn fixture(p: &str) -> Vec<u8> {
    std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures")
            .join(p),
    )
    .unwrap()
}

async fn serve(server: &MockServer, at: &str, body: Vec<u8>, ct: &str) {
    Mock::given(method("GET"))
        .and(path(at))
        .respond_with(ResponseTemplate::new(200).set_body_raw(body, ct))
        .mount(server)
        .await;
}

/// HIBP with a breach whose name carries a script: feed content is attacker-controlled.
async fn mock_hibp(server: &MockServer) {
    let evil = format!("Evil{SCRIPT}Forum");
    let breaches = String::from_utf8(fixture("hibp/breaches.json"))
        .unwrap()
        .replace("ExampleForum", &evil.replace('"', "\\\""));
    let domain = String::from_utf8(fixture("hibp/breacheddomain-example.org.json"))
        .unwrap()
        .replace("ExampleForum", &evil);
    serve(
        server,
        "/api/v3/subscription/status",
        fixture("hibp/subscription-status.json"),
        "application/json",
    )
    .await;
    serve(
        server,
        "/api/v3/breaches",
        breaches.into_bytes(),
        "application/json",
    )
    .await;
    serve(
        server,
        "/api/v3/breacheddomain/example.org",
        domain.into_bytes(),
        "application/json",
    )
    .await;
}

async fn mock_snds(server: &MockServer) {
    serve(
        server,
        "/snds/data.aspx",
        fixture("snds/data-2026-11-22.csv"),
        "text/csv",
    )
    .await;
    serve(
        server,
        "/snds/ipStatus.aspx",
        fixture("snds/ipstatus.csv"),
        "text/csv",
    )
    .await;
}

fn config(dir: &Path, mock: &str, smtp_port: u16) -> String {
    config_on(dir, mock, smtp_port, &Backend::Sled)
}

fn config_on(dir: &Path, mock: &str, smtp_port: u16, backend: &Backend) -> String {
    let store = backend.store_table("data");
    let mut lists = String::new();
    for name in outwatch::sources::lists::BUILTIN {
        lists.push_str(&format!("[sources.{name}]\nenabled = false\n"));
    }
    let text = format!(
        r#"[organisation]
name = "Example Org"
asns = [64496]
domains = ["example.org"]
[scope]
ripestat_url = "{mock}"
{store}
[sources.hibp]
api_key = "e2e-hibp-key-0123456789abcdef01234"
base_url = "{mock}/api/v3"
[sources.snds]
key = "e2e-snds-key-0123456789"
base_url = "{mock}/snds"
{lists}
[digest]
from = "outwatch@example.org"
recipients = ["noc@example.org"]
subject = "outwatch"
[smtp]
host = "127.0.0.1"
port = {smtp_port}
tls = "none"
timeout = "20s"
"#
    );
    let p = dir.join("outwatch.toml");
    std::fs::write(&p, text).unwrap();
    p.display().to_string()
}

fn outwatch(dir: &Path, args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_outwatch"))
        .current_dir(dir)
        .env_remove("OUTWATCH_CONFIG")
        .env_remove("OUTWATCH_DATA_DIR")
        .env("RUST_LOG", "outwatch=info")
        .args(args)
        .output()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_once_fetches_stores_and_mails_an_escaped_digest() {
    run_once_scenario(Backend::Sled).await;
}

/// The same on a PostgreSQL store.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_once_fetches_stores_and_mails_an_escaped_digest_on_postgres() {
    if let Some(b) = Backend::postgres() {
        run_once_scenario(b).await;
    }
}

async fn run_once_scenario(backend: Backend) {
    let mock = MockServer::start().await;
    serve(
        &mock,
        "/data/announced-prefixes/data.json",
        fixture("ripestat/announced-prefixes-AS64496.json"),
        "application/json",
    )
    .await;
    mock_hibp(&mock).await;
    mock_snds(&mock).await;
    let server = smtp();
    let port = server.port;
    let d = tempfile::tempdir().unwrap();
    let dir = d.path().to_path_buf();
    let cfg = config_on(&dir, &mock.uri(), port, &backend);

    let out = {
        let dir = dir.clone();
        let cfg = cfg.clone();
        tokio::task::spawn_blocking(move || outwatch(&dir, &["--config", &cfg, "run", "--once"]))
            .await
            .unwrap()
    };
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "run --once failed: {}\n{stderr}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(
        !stderr.contains("e2e-hibp-key") && !stderr.contains("e2e-snds-key"),
        "{stderr}"
    );

    // The digest arrived at the SMTP server.
    let mails = accepted(&server);
    assert_eq!(mails.len(), 1, "one digest for the one audience");
    let m = MessageParser::default().parse(&mails[0]).unwrap();
    let ct = m.content_type().unwrap();
    assert_eq!(
        (ct.ctype(), ct.subtype()),
        ("multipart", Some("alternative"))
    );
    let subject = m.subject().unwrap_or_default().to_string();
    assert!(subject.starts_with("outwatch"), "{subject}");
    assert!(subject.contains("new"), "{subject}");
    let text = m.body_text(0).unwrap().into_owned();
    let html = m.body_html(0).unwrap().into_owned();
    assert!(text.contains("alice@example.org"), "{text}");
    assert!(html.contains("alice@example.org"), "{html}");
    assert!(
        text.contains("192.0.2.11"),
        "SNDS finding in the text part: {text}"
    );
    // The planted script: verbatim in the text part, escaped (never live) in the HTML part.
    assert!(text.contains(SCRIPT), "{text}");
    assert!(!html.contains(SCRIPT), "{html}");
    assert!(html.contains("&lt;script&gt;"), "{html}");
    assert!(!html.to_ascii_lowercase().contains("<script"), "{html}");

    // What was stored is there to look up, with the contract's fields.
    let out = outwatch(
        &dir,
        &["--config", &cfg, "lookup", "alice@example.org", "--json"],
    );
    assert!(out.status.success());
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["in_scope"], true);
    let f = &v["findings"][0];
    assert_eq!(f["source"], "hibp");
    assert_eq!(f["extra"]["email"], "alice@example.org");
    let out = outwatch(&dir, &["--config", &cfg, "lookup", "192.0.2.11", "--json"]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        v["in_scope"], true,
        "192.0.2.0/24 came from the RIPEstat mock"
    );
    assert_eq!(v["findings"][0]["source"], "snds");

    // Feed health says both sources are fine.
    let out = outwatch(&dir, &["--config", &cfg, "status", "--json"]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let states: Vec<(String, String)> = v["sources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["name"].as_str().unwrap().into(),
                s["state"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert!(states.contains(&("hibp".into(), "ok".into())), "{states:?}");
    assert!(states.contains(&("snds".into(), "ok".into())), "{states:?}");
    assert_eq!(v["store"]["backend"], backend.name());

    // A second round: nothing new, so the digest says so and does not repeat the findings.
    let out = {
        let dir = dir.clone();
        let cfg = cfg.clone();
        tokio::task::spawn_blocking(move || outwatch(&dir, &["--config", &cfg, "run", "--once"]))
            .await
            .unwrap()
    };
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mails = accepted(&server);
    assert_eq!(mails.len(), 2);
    let m = MessageParser::default().parse(&mails[1]).unwrap();
    let subject = m.subject().unwrap_or_default().to_string();
    assert!(
        !subject.contains(" new") || subject.contains("0 new"),
        "{subject}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_once_names_a_failed_source_and_still_mails() {
    let mock = MockServer::start().await;
    serve(
        &mock,
        "/data/announced-prefixes/data.json",
        fixture("ripestat/announced-prefixes-AS64496.json"),
        "application/json",
    )
    .await;
    // HIBP refuses the key; SNDS works.
    Mock::given(method("GET"))
        .and(path("/api/v3/subscription/status"))
        .respond_with(
            ResponseTemplate::new(401).set_body_raw(fixture("hibp/unauthorised.txt"), "text/plain"),
        )
        .mount(&mock)
        .await;
    Mock::given(method("GET"))
        .and(path("/api/v3/breacheddomain/example.org"))
        .respond_with(
            ResponseTemplate::new(401).set_body_raw(fixture("hibp/unauthorised.txt"), "text/plain"),
        )
        .mount(&mock)
        .await;
    mock_snds(&mock).await;
    let server = smtp();
    let port = server.port;
    let d = tempfile::tempdir().unwrap();
    let dir = d.path().to_path_buf();
    let cfg = config(&dir, &mock.uri(), port);
    let out =
        tokio::task::spawn_blocking(move || outwatch(&dir, &["--config", &cfg, "run", "--once"]))
            .await
            .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("hibp"), "{stderr}");
    assert!(!stderr.contains("e2e-hibp-key"), "{stderr}");
    // The digest still went out, and it puts the failing feed first.
    let mails = accepted(&server);
    assert_eq!(mails.len(), 1);
    let m = MessageParser::default().parse(&mails[0]).unwrap();
    let text = m.body_text(0).unwrap().into_owned();
    let health = text.find("hibp").unwrap();
    let snds = text.find("192.0.2.11").unwrap();
    assert!(health < snds, "feed health before the findings: {text}");
}
