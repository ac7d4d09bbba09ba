//! The web view over HTTP (`src/web/`): a server on loopback, set up as if it listened on
//! another address (so every request needs a token), driven as a browser and a script would:
//! the worklist form, a link to an address page, an ack with a `triage` token seen in the
//! history, a `read` token refused, a scoped token that never sees a finding outside its
//! scope (over the whole store), the `updated_since` cursor, the OpenAPI document; and the
//! refusal to start off loopback without a token.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use outwatch::clock::ManualClock;
use outwatch::config::Config;
use outwatch::finding::{Classification, Finding, Severity};
use outwatch::store::{self, IngestOptions, Store};
use outwatch::web::access::token_hash;
use outwatch::web::{self, Web};
use reqwest::StatusCode;
use serde_json::Value;

use crate::support::cli;

const TRIAGE: &str = "triage-token-0123456789abcdef";
const READ: &str = "read-token-0123456789abcdef";
const SCOPED: &str = "scoped-token-0123456789abcdef";

fn now() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-12-07T12:00:00Z")
        .unwrap()
        .with_timezone(&Utc)
}

fn finding(ip: &str, sev: Severity, kind: &str, port: u16) -> Finding {
    let mut f = Finding::new("test", "feed", Classification::new("", kind, "x"), sev);
    f.ip = Some(ip.parse().unwrap());
    f.port = Some(port);
    f
}

/// Findings inside 192.0.2.0/25 (the scoped token's), beside it, and elsewhere; hostile text
/// in a field.
fn seed(s: &dyn Store) {
    let mut all = vec![
        finding("192.0.2.54", Severity::High, "vulnerable-system", 623),
        finding("192.0.2.54", Severity::Low, "vulnerable-system", 22),
        finding("192.0.2.9", Severity::High, "c2-server", 80),
        finding("192.0.2.200", Severity::High, "infected-system", 443),
        finding("198.51.100.7", Severity::Critical, "infected-system", 25),
        finding("2001:db8::20", Severity::Medium, "vulnerable-system", 443),
    ];
    all[0].set_extra("tag", "<script>alert(1)</script>");
    all[4].asn = Some(64496);
    let mut phish = Finding::new(
        "safebrowsing",
        "lookup",
        Classification::new("", "phishing", "x"),
        Severity::High,
    );
    phish.url = Some("https://login.example.org/account".into());
    phish.domain = Some("login.example.org".into());
    all.push(phish);
    for f in &mut all {
        f.seal();
    }
    s.ingest(
        all,
        vec![],
        &IngestOptions {
            now: now() - Duration::days(1),
        },
    )
    .unwrap();
}

fn config(dir: &std::path::Path) -> Config {
    let text = format!(
        r#"
[organisation]
prefixes = ["192.0.2.0/24", "198.51.100.0/24", "2001:db8::/32"]
domains = ["example.org"]

[web]
listen = "192.0.2.1:8080"

[[web.tokens]]
name = "alice"
sha256 = "{}"
role = "triage"

[[web.tokens]]
name = "bob"
sha256 = "{}"
role = "read"

[[web.tokens]]
name = "faculty"
sha256 = "{}"
role = "triage"
prefixes = ["192.0.2.0/25"]
"#,
        token_hash(TRIAGE),
        token_hash(READ),
        token_hash(SCOPED)
    );
    let path = dir.join("outwatch.toml");
    std::fs::write(&path, &text).unwrap();
    Config::parse(&text, &path, &outwatch::sources::Registry).unwrap()
}

struct Server {
    base: String,
    http: reqwest::Client,
    store: Arc<dyn Store>,
    _dir: tempfile::TempDir,
    _stop: tokio::sync::watch::Sender<bool>,
}

async fn start() -> Server {
    start_as("192.0.2.1:8080").await
}

/// A server on loopback, its gate set up as if it listened on `listen`.
async fn start_as(listen: &str) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    let store: Arc<dyn Store> = Arc::new(store::open(&dir.path().join("data")).unwrap());
    seed(store.as_ref());
    let public: SocketAddr = listen.parse().unwrap();
    let state = Web::new(
        Arc::new(cfg),
        store.clone(),
        Arc::new(ManualClock::new(now())),
        public,
    )
    .await
    .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (stop, rx) = tokio::sync::watch::channel(false);
    tokio::spawn(web::serve(listener, state, rx));
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    Server {
        base,
        http,
        store,
        _dir: dir,
        _stop: stop,
    }
}

impl Server {
    async fn get(&self, path: &str, token: &str) -> (StatusCode, String) {
        let r = self
            .http
            .get(format!("{}{path}", self.base))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        (r.status(), r.text().await.unwrap())
    }

    async fn json(&self, path: &str, token: &str) -> Value {
        let (st, body) = self.get(path, token).await;
        assert_eq!(st, StatusCode::OK, "{path}: {body}");
        serde_json::from_str(&body).unwrap()
    }

    /// Logs in as a browser does; the cookie.
    async fn login(&self, token: &str) -> String {
        let r = self
            .http
            .post(format!("{}/login", self.base))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form_body(&[("token", token)]))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::SEE_OTHER);
        let c = r.headers()["set-cookie"].to_str().unwrap().to_string();
        assert!(
            c.contains("HttpOnly") && c.contains("SameSite=Strict"),
            "{c}"
        );
        c.split(';').next().unwrap().to_string()
    }

    async fn browse(&self, path: &str, cookie: &str) -> (StatusCode, String) {
        let r = self
            .http
            .get(format!("{}{path}", self.base))
            .header("cookie", cookie)
            .send()
            .await
            .unwrap();
        (r.status(), r.text().await.unwrap())
    }

    async fn post_form(
        &self,
        path: &str,
        cookie: &str,
        form: &[(&str, &str)],
    ) -> reqwest::Response {
        self.http
            .post(format!("{}{path}", self.base))
            .header("cookie", cookie)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form_body(form))
            .send()
            .await
            .unwrap()
    }

    fn every_finding(&self) -> Vec<Finding> {
        let mut all = Vec::new();
        self.store
            .for_each(&mut |f| {
                all.push(f);
                Ok(())
            })
            .unwrap();
        all
    }
}

fn form_body(pairs: &[(&str, &str)]) -> String {
    form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish()
}

/// The `value` of the hidden input `name` of a page.
fn hidden(html: &str, name: &str) -> String {
    let at = html
        .find(&format!("name=\"{name}\" value=\""))
        .unwrap_or_else(|| panic!("no {name} in the page"));
    let rest = &html[at + name.len() + 15..];
    rest[..rest.find('"').unwrap()].to_string()
}

/// Every `href` of a page that starts with `prefix`.
fn links(html: &str, prefix: &str) -> Vec<String> {
    html.split("href=\"")
        .skip(1)
        .filter_map(|s| s.split('"').next())
        .filter(|h| h.starts_with(prefix))
        .map(|h| h.replace("&amp;", "&"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_team_works_the_worklist_and_acks_a_finding() {
    let s = start().await;
    // Without a token nothing is shown: a browser gets the login page.
    let r = s
        .http
        .get(format!("{}/worklist", s.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert!(r.text().await.unwrap().contains("name=\"token\""));
    let (st, _) = s.get("/worklist", "not-a-token").await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);

    // The worklist form as a browser sends it: every field, most of them empty.
    let cookie = s.login(TRIAGE).await;
    let (st, page) = s.browse("/worklist", &cookie).await;
    assert_eq!(st, StatusCode::OK);
    for field in [
        "status",
        "severity",
        "min-severity",
        "source",
        "prefix",
        "sort",
        "show",
    ] {
        assert!(
            page.contains(&format!("name=\"{field}\"")),
            "no {field} field"
        );
    }
    let form = [
        ("status", ""),
        ("severity", "high"),
        ("min-severity", ""),
        ("source", ""),
        ("feed", ""),
        ("class", ""),
        ("asn", ""),
        ("team", ""),
        ("prefix", "192.0.2.0/24"),
        ("domain", ""),
        ("since", ""),
        ("until", ""),
        ("stored-since", ""),
        ("stored-until", ""),
        ("sort", "address"),
        ("show", ""),
        ("per", "50"),
    ];
    let q = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(form)
        .finish();
    let (st, page) = s.browse(&format!("/worklist?{q}"), &cookie).await;
    assert_eq!(st, StatusCode::OK, "{page}");
    // (minijinja escapes `/` too.)
    let page = page.replace("&#x2f;", "/");
    assert!(page.contains("outwatch list --severity high --prefix 192.0.2.0/24 --sort address"));
    // Hostile feed text is escaped, never markup.
    assert!(!page.contains("<script>alert"));
    // The query is in the URL: the same list as JSON, by suffix and by Accept.
    let shared = format!("/worklist.json?{q}");
    let v = s.json(&shared, TRIAGE).await;
    assert_eq!(v["total"], 3, "{v}");
    let order: Vec<&str> = v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["indicator"].as_str().unwrap())
        .collect();
    assert_eq!(order, ["192.0.2.9:80", "192.0.2.54:623", "192.0.2.200:443"]);

    // A link of the list leads to the address's page.
    let addr = links(&page, "/lookup/")
        .into_iter()
        .find(|l| l == "/lookup/192.0.2.54")
        .expect("a link to the address page");
    let (st, page) = s.browse(&addr, &cookie).await;
    assert_eq!(st, StatusCode::OK);
    let page = page.replace("&#x2f;", "/");
    assert!(
        page.contains("address <span class=\"ind\">192.0.2.54</span>"),
        "{page}"
    );
    assert!(page.contains("&lt;script&gt;") && !page.contains("<script>alert"));
    let fp = links(&page, "/finding/")
        .into_iter()
        .map(|l| l.trim_start_matches("/finding/").to_string())
        .find(|l| l.len() == 32)
        .unwrap();
    let f = s.store.get(&fp).unwrap().unwrap();
    assert_eq!(f.ip.unwrap().to_string(), "192.0.2.54");

    // An ack without the page's CSRF token is refused; with it, it is in the history.
    let r = s
        .post_form(
            &format!("/finding/{fp}/ack"),
            &cookie,
            &[("text", "ticket 4711")],
        )
        .await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let csrf = hidden(&page, "csrf");
    let r = s
        .post_form(
            &format!("/finding/{fp}/ack"),
            &cookie,
            &[("csrf", &csrf), ("text", "ticket 4711")],
        )
        .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let back = r.headers()["location"].to_str().unwrap().to_string();
    assert_eq!(back, format!("/finding/{fp}"));
    let (_, page) = s.browse(&back, &cookie).await;
    let before = s.store.get(&fp).unwrap().unwrap().history.len();
    assert!(page.contains("<b>ack</b> by alice: ticket 4711"), "{page}");
    assert!(s.store.get(&fp).unwrap().unwrap().acked().is_some());
    let v = s.json(&format!("/api/v1/findings/{fp}"), READ).await;
    assert_eq!(v["finding"]["history"][0]["event"], "ack");
    assert_eq!(v["finding"]["history"][0]["by"], "alice");

    // A read token is refused the POST: by form (with its own CSRF token) and by the API.
    let bob = s.login(READ).await;
    let (_, page) = s.browse(&format!("/finding/{fp}"), &bob).await;
    assert!(
        !page.contains("/note\""),
        "a read token is offered no triage forms"
    );
    let csrf = {
        let (_, p) = s.browse("/worklist", &bob).await;
        // No form carries one for a reader; take the one alice's page had instead.
        assert!(!p.contains("name=\"csrf\""));
        csrf
    };
    let r = s
        .post_form(
            &format!("/finding/{fp}/note"),
            &bob,
            &[("csrf", &csrf), ("text", "mine")],
        )
        .await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let r = s
        .http
        .post(format!("{}/api/v1/findings/{fp}/note", s.base))
        .bearer_auth(READ)
        .json(&serde_json::json!({ "text": "mine" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let after = s.store.get(&fp).unwrap().unwrap().history.len();
    assert_eq!(after, before, "nothing was added by the read token");

    // The API with a triage token takes a note as JSON.
    let r = s
        .http
        .post(format!("{}/api/v1/findings/{fp}/note", s.base))
        .bearer_auth(TRIAGE)
        .json(&serde_json::json!({ "text": "called the owner" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(s.store.get(&fp).unwrap().unwrap().history.len(), before + 1);

    // The worklist's own ack button comes back to the same worklist page.
    let (_, page) = s.browse(&format!("/worklist?{q}"), &cookie).await;
    let back = hidden(&page, "back")
        .replace("&amp;", "&")
        .replace("&#x2f;", "/");
    assert!(back.starts_with("/worklist?"), "{back}");
    let other = s
        .every_finding()
        .into_iter()
        .find(|f| f.acked().is_none() && f.ip.is_some_and(|i| i.to_string() == "192.0.2.9"))
        .unwrap();
    let csrf = hidden(&page, "csrf");
    let r = s
        .post_form(
            &format!("/finding/{}/ack", other.fingerprint),
            &cookie,
            &[("csrf", &csrf), ("back", &back)],
        )
        .await;
    assert_eq!(r.headers()["location"].to_str().unwrap(), back);
    // A redirect elsewhere is not followed.
    let r = s
        .post_form(
            &format!("/finding/{}/note", other.fingerprint),
            &cookie,
            &[("csrf", &csrf), ("text", "x"), ("back", "//evil.example/")],
        )
        .await;
    assert_eq!(
        r.headers()["location"].to_str().unwrap(),
        format!("/finding/{}", other.fingerprint)
    );

    // A suppression rule from the address page's form: the worklist leaves it out.
    let r = s
        .post_form(
            "/suppress",
            &cookie,
            &[
                ("csrf", &csrf),
                ("cidr", "192.0.2.200"),
                ("until", "30d"),
                ("reason", "honeypot"),
            ],
        )
        .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(s.json(&shared, TRIAGE).await["total"], 2);
    let v = s.json(&format!("{shared}&show=suppressed"), TRIAGE).await;
    assert_eq!(v["total"], 1);
    assert_eq!(v["findings"][0]["indicator"], "192.0.2.200:443");
    let r = s
        .post_form(
            "/suppress",
            &bob,
            &[
                ("csrf", &csrf),
                ("cidr", "192.0.2.9"),
                ("until", "30d"),
                ("reason", "x"),
            ],
        )
        .await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scoped_token_never_sees_a_finding_outside_its_scope() {
    let s = start().await;
    let scope: ipnet::IpNet = "192.0.2.0/25".parse().unwrap();
    let all = s.every_finding();
    let inside: BTreeSet<String> = all
        .iter()
        .filter(|f| f.ip.is_some_and(|ip| scope.contains(&ip)))
        .map(|f| f.fingerprint.clone())
        .collect();
    assert_eq!(inside.len(), 3);
    assert!(all.len() > inside.len());

    // The bulk API over the whole store, every status and suppression.
    let (st, body) = s.get("/api/v1/findings?status=all&all=", SCOPED).await;
    assert_eq!(st, StatusCode::OK);
    let seen: BTreeSet<String> = body
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["fingerprint"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(seen, inside);
    // Each finding's page and each object page.
    for f in &all {
        let (st, _) = s
            .get(&format!("/api/v1/findings/{}", f.fingerprint), SCOPED)
            .await;
        let expect = if inside.contains(&f.fingerprint) {
            StatusCode::OK
        } else {
            StatusCode::NOT_FOUND
        };
        assert_eq!(st, expect, "{}", f.indicator());
        let object =
            f.ip.map(|i| i.to_string())
                .unwrap_or_else(|| f.domain.clone().unwrap());
        let v = s.json(&format!("/lookup/{object}.json"), SCOPED).await;
        for shown in v["findings"].as_array().unwrap() {
            assert!(
                inside.contains(shown["fingerprint"].as_str().unwrap()),
                "{object}"
            );
        }
        let (_, lines) = s.get(&format!("/api/v1/lookup/{object}"), SCOPED).await;
        for l in lines.lines() {
            assert!(l.contains("192.0.2."), "{object}: {l}");
        }
    }
    // The counted pages: the worklist, the overview, the CSV.
    let v = s.json("/worklist.json?status=all", SCOPED).await;
    assert_eq!(v["total"], 3);
    let v = s.json("/overview.json", SCOPED).await;
    assert_eq!(v["open"], 3, "{v}");
    let (_, csv) = s.get("/worklist.csv?status=all", SCOPED).await;
    assert_eq!(csv.lines().count(), 4, "{csv}");
    assert!(!csv.contains("198.51.100.7") && !csv.contains("example.org"));
    // It may not act outside its scope either.
    let outside = all
        .iter()
        .find(|f| !inside.contains(&f.fingerprint))
        .unwrap();
    let r = s
        .http
        .post(format!(
            "{}/api/v1/findings/{}/ack",
            s.base, outside.fingerprint
        ))
        .bearer_auth(SCOPED)
        .json(&serde_json::json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let cookie = s.login(SCOPED).await;
    let (_, page) = s.browse("/lookup/192.0.2.54", &cookie).await;
    let csrf = hidden(&page, "csrf");
    let r = s
        .post_form(
            "/suppress",
            &cookie,
            &[
                ("csrf", &csrf),
                ("cidr", "198.51.100.0/24"),
                ("until", "30d"),
                ("reason", "x"),
            ],
        )
        .await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    // An unscoped token sees them all.
    let v = s.json("/worklist.json?status=all", READ).await;
    assert_eq!(v["total"], all.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn polling_with_updated_since_gets_what_changed() {
    let s = start().await;
    let r = s
        .http
        .get(format!("{}/api/v1/findings", s.base))
        .bearer_auth(READ)
        .send()
        .await
        .unwrap();
    let cursor = r.headers()["x-outwatch-cursor"]
        .to_str()
        .unwrap()
        .to_string();
    assert_eq!(r.text().await.unwrap().lines().count(), 7);
    let q = |c: &str| {
        format!(
            "/api/v1/findings?updated_since={}",
            form_urlencoded::byte_serialize(c.as_bytes()).collect::<String>()
        )
    };
    let (_, body) = s.get(&q(&cursor), READ).await;
    assert_eq!(body.lines().count(), 0, "{body}");
    let fp = s.every_finding()[0].fingerprint.clone();
    let r = s
        .http
        .post(format!("{}/api/v1/findings/{fp}/ack", s.base))
        .bearer_auth(TRIAGE)
        .json(&serde_json::json!({ "text": "seen" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let (_, body) = s.get(&q(&cursor), READ).await;
    assert_eq!(body.lines().count(), 1, "{body}");
    assert!(body.contains(&fp));
    // A bad cursor is a clear 400.
    let (st, body) = s
        .get("/api/v1/findings?updated_since=yesterday", READ)
        .await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    assert!(body.contains("updated_since"));
    // The OpenAPI document names the paths and the finding's shape.
    let v = s.json("/api/v1/openapi.json", READ).await;
    assert_eq!(v["openapi"], "3.1.0");
    assert!(v["paths"]["/api/v1/findings"]["get"].is_object());
    assert!(v["components"]["schemas"]["Finding"]["properties"]["fingerprint"].is_object());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_page_answers_in_html_and_json() {
    let s = start().await;
    for path in [
        "/",
        "/worklist",
        "/feeds",
        "/flows",
        "/lookup/example.org",
        "/lookup/AS64496",
    ] {
        let (st, page) = s.get(path, TRIAGE).await;
        assert_eq!(st, StatusCode::OK, "{path}: {page}");
        assert!(page.starts_with("<!doctype html>"), "{path}");
        let r = s
            .http
            .get(format!("{}{path}", s.base))
            .bearer_auth(TRIAGE)
            .header("accept", "application/json")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        let v: Value = r.json().await.unwrap();
        assert!(v["title"].is_string(), "{path}: {v}");
    }
    let v = s.json("/lookup/AS64496.json", TRIAGE).await;
    assert_eq!(v["total"], 1, "{v}");
    assert_eq!(v["kind"], "ASN");
    let (st, _) = s.get("/lookup/not%20a%20thing", TRIAGE).await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    let (st, _) = s.get("/no-such-page", TRIAGE).await;
    assert_eq!(st, StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loopback_needs_no_token_when_the_host_is_named_so() {
    let s = start_as("127.0.0.1:8080").await;
    let r = s
        .http
        .get(format!("{}/worklist.json", s.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["total"], 7);
    // A page of another site whose name points here (DNS rebinding) gets nothing.
    let r = s
        .http
        .get(format!("{}/worklist.json", s.base))
        .header("host", "rebind.example.net")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    // A token still works by any name, with its own scope.
    let r = s
        .http
        .get(format!("{}/worklist.json", s.base))
        .header("host", "outwatch.example.org")
        .bearer_auth(SCOPED)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.json::<Value>().await.unwrap()["total"], 3);
}

#[test]
fn serving_off_loopback_without_a_token_is_refused_at_start() {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(
        d.path().join("outwatch.toml"),
        "[organisation]\nprefixes = [\"192.0.2.0/24\"]\n\n[web]\nlisten = \"0.0.0.0:0\"\n",
    )
    .unwrap();
    let s = store::open(&d.path().join("data")).unwrap();
    seed(&s);
    drop(s);
    let out = cli(d.path())
        .args(["--config", "outwatch.toml", "--data-dir", "data", "serve"])
        .timeout(std::time::Duration::from_secs(20))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("not a loopback address") && err.contains("[[web.tokens]]"),
        "{err}"
    );
}

/// A daemon that is stopped (SIGTERM) when the test ends, however it ends.
struct Daemon(std::process::Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn the_daemon_serves_the_web_view_and_writes_its_triage() {
    let d = tempfile::tempdir().unwrap();
    let port = free_port();
    std::fs::write(
        d.path().join("outwatch.toml"),
        format!(
            "[organisation]\nprefixes = [\"192.0.2.0/24\"]\n\n[web]\nlisten = \"127.0.0.1:{port}\"\n\n{}",
            crate::support::feeds_off()
        ),
    )
    .unwrap();
    let s = store::open(&d.path().join("data")).unwrap();
    seed(&s);
    let fp = {
        let mut fp = String::new();
        s.for_each(&mut |f| {
            if f.ip.is_some_and(|i| i.to_string() == "192.0.2.9") {
                fp = f.fingerprint.clone();
            }
            Ok(())
        })
        .unwrap();
        fp
    };
    drop(s);
    let mut daemon = Daemon(
        crate::support::isolated(d.path())
            .args(["--config", "outwatch.toml", "--data-dir", "data", "run"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    let base = format!("http://127.0.0.1:{port}");
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let http = reqwest::Client::new();
        let mut up = false;
        for _ in 0..300 {
            if let Ok(r) = http.get(format!("{base}/api/v1/openapi.json")).send().await
                && r.status() == StatusCode::OK
            {
                up = true;
                break;
            }
            assert!(daemon.0.try_wait().unwrap().is_none(), "the daemon exited");
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        assert!(up, "the daemon never served the web view");
        // On loopback no token is needed; the daemon writes the ack.
        let r = http
            .post(format!("{base}/api/v1/findings/{fp}/ack"))
            .json(&serde_json::json!({ "text": "from the web" }))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{}", r.text().await.unwrap());
    });
    // A command beside the daemon reads it through the socket.
    let out = cli(d.path())
        .args([
            "--config",
            "outwatch.toml",
            "--data-dir",
            "data",
            "lookup",
            "192.0.2.9",
            "--json",
        ])
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let history = v["findings"][0]["history"].as_array().unwrap();
    assert!(
        history
            .iter()
            .any(|h| h["event"] == "ack" && h["by"] == "local" && h["text"] == "from the web"),
        "{history:?}"
    );
    unsafe { libc::kill(daemon.0.id() as libc::pid_t, libc::SIGTERM) };
    assert!(daemon.0.wait().unwrap().success());
}

#[test]
fn the_daemon_refuses_to_serve_off_loopback_without_a_token() {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(
        d.path().join("outwatch.toml"),
        format!(
            "[organisation]\nprefixes = [\"192.0.2.0/24\"]\n\n[web]\nlisten = \"0.0.0.0:0\"\n\n{}",
            crate::support::feeds_off()
        ),
    )
    .unwrap();
    let out = cli(d.path())
        .args(["--config", "outwatch.toml", "--data-dir", "data", "run"])
        .timeout(std::time::Duration::from_secs(30))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("not a loopback address"), "{err}");
    assert!(!d.path().join("data/outwatch.sock").exists());
}

/// `/metrics`: the Prometheus text of the whole store for an unscoped token (it parses, and
/// counts the open findings the store holds), refused to a scoped one and to no token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_answer_in_the_prometheus_text_format() {
    let s = start().await;
    let r = s
        .http
        .get(format!("{}/metrics", s.base))
        .bearer_auth(READ)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let ct = r.headers()["content-type"].to_str().unwrap().to_string();
    assert!(ct.starts_with("text/plain; version=0.0.4"), "{ct}");
    let text = r.text().await.unwrap();
    let (rest, families) = nom_openmetrics::parser::prometheus(&text)
        .unwrap_or_else(|e| panic!("not the Prometheus text format: {e:?}\n{text}"));
    assert!(rest.is_empty(), "left unparsed: {rest:?}");
    // Not resolved: open, or covered by a suppression rule.
    let open: f64 = families
        .iter()
        .flat_map(|f| f.samples.iter())
        .filter(|s| ["outwatch_findings_open", "outwatch_findings_suppressed"].contains(&s.name()))
        .map(|s| s.number())
        .sum();
    let expected = s
        .every_finding()
        .iter()
        .filter(|f| f.status != outwatch::finding::Status::Resolved)
        .count();
    assert!(expected > 0);
    assert_eq!(open as usize, expected, "{text}");

    let (st, body) = s.get("/metrics", SCOPED).await;
    assert_eq!(st, StatusCode::FORBIDDEN, "{body}");
    let r = s
        .http
        .get(format!("{}/metrics", s.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
}
