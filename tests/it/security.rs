//! Issue #17 (security) and the HTTP deadlines of issue #11: keys never follow a redirect to
//! another origin, keys a provider echoes back are scrubbed by value, a key goes only to https
//! or loopback, the store and digest files are owner-only, the daemon's socket cannot be held
//! shut, and a silent server fails within the configured timeout.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::keyed_support::*;
use outwatch::config::{Config, HttpConfig, HumanDuration};
use outwatch::daemon::remote::RemoteStore;
use outwatch::daemon::socket;
use outwatch::finding::{Classification, Finding, Severity};
use outwatch::http::HttpClient;
use outwatch::secret::{REDACTED, Secret};
use outwatch::sources::{Source, enabled_sources};
use outwatch::store::{IngestOptions, Query, QueryOptions, Store};
use reqwest::header::{HeaderMap, HeaderValue};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

/// The Shadowserver API secret (the key is [`KEY`]).
const SS_SECRET: &str = "sh4d0w-S3CR3T-fedcba9876543210";

/// Each keyed source's table with every URL on `base`.
fn keyed_configs(base: &str) -> Vec<(&'static str, String)> {
    vec![
        (
            "hibp",
            format!("[sources.hibp]\napi_key = \"{KEY}\"\nbase_url = \"{base}/api/v3\"\n"),
        ),
        (
            "safebrowsing",
            format!("[sources.safebrowsing]\napi_key = \"{KEY}\"\nbase_url = \"{base}/gsb\"\n"),
        ),
        (
            "snds",
            format!("[sources.snds]\nkey = \"{KEY}\"\nbase_url = \"{base}/snds\"\n"),
        ),
        (
            "shadowserver",
            format!(
                "[sources.shadowserver]\napi_key = \"{KEY}\"\nsecret = \"{SS_SECRET}\"\n\
                 base_url = \"{base}/api2/\"\ndownload_url = \"{base}/dl/\"\n"
            ),
        ),
        (
            "urlhaus",
            format!("[sources.urlhaus]\nauth_key = \"{KEY}\"\nbase_url = \"{base}\"\n"),
        ),
    ]
}

const ORG: &str = "[organisation]\ndomains = [\"example.org\"]\nprefixes = [\"192.0.2.0/24\"]\n";

fn source(cfg: &Config, name: &str) -> Arc<dyn Source> {
    enabled_sources(cfg)
        .into_iter()
        .find(|(n, _)| n == name)
        .unwrap_or_else(|| panic!("{name} is not enabled"))
        .1
        .unwrap()
}

fn assert_no_key(what: &str, text: &str) {
    for k in [KEY, SS_SECRET] {
        assert!(!text.contains(k), "{what} holds a key: {text}");
    }
}

/// A provider that answers HIBP's subscription status (so pacing does not wait) and
/// `reply` to everything else.
async fn provider(reply: ResponseTemplate) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/api/v3/subscription/status"))
        .respond_with(
            ResponseTemplate::new(200).set_body_string(r#"{"SubscriptionName":"x","Rpm":6000}"#),
        )
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(wiremock::matchers::any())
        .respond_with(reply)
        .mount(&server)
        .await;
    server
}

// ---------- 1. redirects ----------

#[tokio::test]
async fn keyed_requests_never_follow_a_redirect_to_another_origin() {
    for status in [302, 307] {
        // 127.0.0.1 on another port is another origin.
        let elsewhere = MockServer::start().await;
        Mock::given(wiremock::matchers::any())
            .respond_with(ResponseTemplate::new(200).set_body_string("{}"))
            .mount(&elsewhere)
            .await;
        let to = format!("{}/landing", elsewhere.uri());
        let origin =
            provider(ResponseTemplate::new(status).insert_header("location", to.as_str())).await;
        for (name, table) in keyed_configs(&origin.uri()) {
            let e = env();
            let cfg = config(&format!("{ORG}{table}"));
            let report = e.runner.run_source(source(&cfg, name).as_ref()).await;
            let error = report.error.clone().unwrap_or_default();
            assert!(!report.ok, "{name} {status}: {report:?}");
            assert!(
                error.contains("redirected to") && error.contains(&to),
                "{name} {status}: {error}"
            );
            assert!(error.contains(&origin.uri()), "{name} {status}: {error}");
            assert_no_key(name, &error);
            let arrived = elsewhere.received_requests().await.unwrap();
            assert!(
                arrived.is_empty(),
                "{name} {status}: a request reached the other origin: {:?}",
                arrived
                    .iter()
                    .map(|r| r.url.to_string())
                    .collect::<Vec<_>>()
            );
        }
    }
}

fn client(timeout: Duration) -> HttpClient {
    let cfg = HttpConfig {
        timeout: HumanDuration(timeout),
        connect_timeout: HumanDuration(timeout),
        ..HttpConfig::default()
    };
    HttpClient::new(&cfg, Arc::new(outwatch::clock::SystemClock)).unwrap()
}

#[tokio::test]
async fn a_keyed_request_follows_a_redirect_within_its_origin() {
    let server = MockServer::start().await;
    Mock::given(path("/old"))
        .respond_with(ResponseTemplate::new(301).insert_header("location", "/new"))
        .mount(&server)
        .await;
    Mock::given(path("/new"))
        .and(wiremock::matchers::header("hibp-api-key", KEY))
        .respond_with(ResponseTemplate::new(200).set_body_string("ok"))
        .mount(&server)
        .await;
    let key = Secret::new(KEY);
    let mut h = HeaderMap::new();
    h.insert("hibp-api-key", HeaderValue::from_static(KEY));
    let got = client(Duration::from_secs(10))
        .get(&format!("{}/old", server.uri()), h, None, &[&key])
        .await
        .unwrap();
    match got {
        outwatch::http::Fetched::Body { body, .. } => assert_eq!(&body[..], b"ok"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn plain_downloads_follow_redirects_and_never_send_referer() {
    let mirror = MockServer::start().await;
    Mock::given(path("/list.csv"))
        .respond_with(ResponseTemplate::new(200).set_body_string("1.2.3.4\n"))
        .mount(&mirror)
        .await;
    let origin = MockServer::start().await;
    Mock::given(path("/list.csv"))
        .respond_with(
            ResponseTemplate::new(302)
                .insert_header("location", format!("{}/list.csv", mirror.uri()).as_str()),
        )
        .mount(&origin)
        .await;
    let got = client(Duration::from_secs(10))
        .get(
            &format!("{}/list.csv?token=abc", origin.uri()),
            HeaderMap::new(),
            None,
            &[],
        )
        .await
        .unwrap();
    assert!(matches!(got, outwatch::http::Fetched::Body { .. }));
    let arrived = mirror.received_requests().await.unwrap();
    assert_eq!(arrived.len(), 1);
    assert!(
        !arrived[0].headers.contains_key("referer"),
        "{:?}",
        arrived[0].headers
    );
}

// ---------- 2. scrubbing by value ----------

/// A provider answering `200` with the key and secret echoed in an error object, as providers
/// do; nothing the CLI prints, logs or stores may hold them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_echoed_in_a_200_body_are_scrubbed_everywhere() {
    // Every source sends KEY (Shadowserver's secret only signs, so it cannot be echoed).
    let echo = format!(r#"{{"error": "invalid key {KEY}; try /x?key={KEY}"}}"#);
    let server = provider(
        ResponseTemplate::new(200)
            .insert_header("content-type", "application/json")
            .set_body_string(echo),
    )
    .await;
    // In process: the report and the run log.
    for (name, table) in keyed_configs(&server.uri()) {
        let e = env();
        let cfg = config(&format!("{ORG}{table}"));
        let report = e.runner.run_source(source(&cfg, name).as_ref()).await;
        assert_no_key(name, &format!("{report:?}"));
        let runs = e.store.runs(Some(name), 10).unwrap();
        assert!(!runs.is_empty());
        assert_no_key(name, &serde_json::to_string(&runs).unwrap());
    }
    // Through the CLI: fetch, status and the digest's feed health, logs included.
    let d = tempfile::tempdir().unwrap();
    let tables: String = keyed_configs(&server.uri())
        .into_iter()
        .map(|(_, t)| t)
        .collect();
    std::fs::write(
        d.path().join("outwatch.toml"),
        format!(
            "{ORG}[store]\npath = \"./data\"\n[digest]\nfrom = \"noc@example.org\"\n\
             recipients = [\"noc@example.org\"]\n{tables}"
        ),
    )
    .unwrap();
    let d2 = d.path().to_path_buf();
    let outputs = tokio::task::spawn_blocking(move || {
        let mut fetch = vec!["fetch", "--json"];
        for (n, _) in keyed_configs("http://127.0.0.1") {
            fetch.extend(["--source", n]);
        }
        let runs: [Vec<&str>; 4] = [
            fetch,
            vec!["status", "--json"],
            vec!["status"],
            vec!["digest", "--preview"],
        ];
        runs.iter()
            .map(|args| {
                let o = cli(&d2)
                    .env("RUST_LOG", "debug")
                    .args(args)
                    .output()
                    .unwrap();
                format!(
                    "{}\n{}",
                    String::from_utf8_lossy(&o.stdout),
                    String::from_utf8_lossy(&o.stderr)
                )
            })
            .collect::<Vec<_>>()
    })
    .await
    .unwrap();
    for o in &outputs {
        assert_no_key("CLI output", o);
    }
    // The echo did reach the messages, scrubbed.
    assert!(outputs[0].contains(REDACTED), "{}", outputs[0]);
    assert!(outputs[1].contains(REDACTED), "{}", outputs[1]);
}

// ---------- 3. https for keys ----------

#[test]
fn check_config_refuses_a_key_over_plain_http_and_other_schemes() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("outwatch.toml");
    for (table, key, url) in [
        ("sources.hibp", "base_url", "http://198.51.100.1/api/v3"),
        ("sources.snds", "base_url", "http://198.51.100.1/snds"),
        ("sources.safebrowsing", "base_url", "http://198.51.100.1"),
        (
            "sources.shadowserver",
            "base_url",
            "http://198.51.100.1/api2/",
        ),
        (
            "sources.shadowserver",
            "download_url",
            "ftp://198.51.100.1/dl/",
        ),
    ] {
        std::fs::write(&p, format!("{ORG}[{table}]\n{key} = \"{url}\"\n")).unwrap();
        let o = cli(d.path()).arg("check-config").output().unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(3), "{table}.{key}: {err}");
        assert!(err.contains(&format!("{table}.{key}")), "{err}");
        assert!(err.contains("line 5"), "{err}");
        // The table may opt out of https, never out of http(s).
        std::fs::write(
            &p,
            format!("{ORG}[{table}]\n{key} = \"{url}\"\nallow_plain_http = true\n"),
        )
        .unwrap();
        let o = cli(d.path()).arg("check-config").output().unwrap();
        let parsed = !String::from_utf8_lossy(&o.stderr).contains(&format!("{table}.{key}"));
        assert_eq!(parsed, url.starts_with("http:"), "{table}.{key} = {url}");
    }
}

// ---------- 4. private files ----------

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().mode() & 0o777
}

/// Every folder under `dir` is 0700 and every file 0600.
fn assert_private_tree(dir: &Path) {
    assert_eq!(mode(dir), 0o700, "{}", dir.display());
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        let ty = std::fs::symlink_metadata(&p).unwrap().file_type();
        if ty.is_dir() {
            assert_private_tree(&p);
        } else if ty.is_file() {
            assert_eq!(mode(&p), 0o600, "{}", p.display());
        }
    }
}

fn finding(i: u32) -> Finding {
    let mut f = Finding::new(
        "test",
        "scan",
        Classification::new("", "vulnerable-system", "open-service"),
        Severity::Medium,
    );
    f.ip = Some(format!("192.0.2.{}", i % 250).parse().unwrap());
    f.port = Some(i as u16 + 1);
    f.set_extra("padding", "x".repeat(400));
    f.seal();
    f
}

#[test]
fn the_store_is_owner_only_whatever_was_there() {
    let d = tempfile::tempdir().unwrap();
    let data = d.path().join("data");
    {
        let s = outwatch::store::open(&data).unwrap();
        s.ingest(vec![finding(1)], vec![], &IngestOptions { now: t(NOW) })
            .unwrap();
        s.flush().unwrap();
    }
    assert_private_tree(&data);
    // A store folder someone made readable is narrowed again on open.
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).unwrap();
    drop(outwatch::store::open(&data).unwrap());
    assert_private_tree(&data);
}

#[test]
fn check_config_warns_about_readable_secrets_and_writable_feed_folders() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("outwatch.toml");
    let feeds = d.path().join("feeds");
    std::fs::create_dir(&feeds).unwrap();
    std::fs::write(
        &p,
        format!(
            "{ORG}[feeds]\ndir = \"feeds\"\n[sources.hibp]\napi_key = \"{KEY}\"\n\
             base_url = \"https://hibp.example/api/v3\"\n"
        ),
    )
    .unwrap();
    let run = || {
        let o = cli(d.path()).arg("check-config").output().unwrap();
        assert!(o.status.success(), "{o:?}");
        String::from_utf8_lossy(&o.stderr).into_owned()
    };
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
    std::fs::set_permissions(&feeds, std::fs::Permissions::from_mode(0o777)).unwrap();
    let err = run();
    assert!(
        err.contains("warning") && err.contains("sources.hibp.api_key") && err.contains("0644"),
        "{err}"
    );
    assert!(err.contains("[feeds] dir") && err.contains("0777"), "{err}");
    assert_no_key("check-config", &err);
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
    std::fs::set_permissions(&feeds, std::fs::Permissions::from_mode(0o755)).unwrap();
    assert!(!run().contains("warning"));
}

// ---------- 5. the socket ----------

struct Daemon {
    _dir: tempfile::TempDir,
    data: std::path::PathBuf,
    sock: std::path::PathBuf,
    _stop: tokio::sync::watch::Sender<bool>,
}

/// Limits short enough that no test waits for seconds (the daemon's own are in seconds).
fn short() -> socket::Limits {
    socket::Limits {
        max_connections: 8,
        first_request: Duration::from_millis(300),
        idle: Duration::from_millis(400),
        session: Duration::from_millis(1200),
        write_stall: Duration::from_millis(300),
        data_stall: Duration::from_millis(300),
    }
}

/// The daemon's socket server over a store of `n` findings, in this process.
fn serve_limited(n: u32, limits: socket::Limits) -> Daemon {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let store: Arc<dyn Store> = Arc::new(outwatch::store::open(&data).unwrap());
    store
        .ingest(
            (0..n).map(finding).collect(),
            vec![],
            &IngestOptions { now: t(NOW) },
        )
        .unwrap();
    let (listener, sock) = socket::bind(&data).unwrap();
    assert_private_tree(&data);
    assert_eq!(mode(&sock), 0o600);
    let (stop, rx) = tokio::sync::watch::channel(false);
    let info: socket::InfoFn = Arc::new(|| serde_json::json!({"pid": 1}));
    tokio::spawn(socket::serve_with(
        listener,
        store,
        info,
        rx,
        limits,
        socket::Access::Read,
    ));
    Daemon {
        _dir: dir,
        data,
        sock,
        _stop: stop,
    }
}

/// A lookup through the socket, as `outwatch lookup` does it; returns its findings and time.
async fn lookup(data: &Path) -> (usize, Duration) {
    let data = data.to_path_buf();
    tokio::task::spawn_blocking(move || {
        let t0 = Instant::now();
        let r = RemoteStore::connect(&data).expect("the daemon answers");
        let found = r
            .query(
                &Query::Ip("192.0.2.7".parse().unwrap()),
                &QueryOptions::default(),
            )
            .unwrap();
        (found.len(), t0.elapsed())
    })
    .await
    .unwrap()
}

/// Whether the daemon closed `s` within `within` (reads to its end).
fn closed_within(s: &mut std::os::unix::net::UnixStream, within: Duration) -> bool {
    s.set_read_timeout(Some(within)).unwrap();
    let mut sink = Vec::new();
    std::io::Read::read_to_end(s, &mut sink).is_ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_clients_cannot_hold_the_socket_shut() {
    let d = serve_limited(20, short());
    // Four times as many silent clients as there are slots.
    let idle: Vec<_> = (0..32)
        .map(|_| std::os::unix::net::UnixStream::connect(&d.sock).unwrap())
        .collect();
    let (n, took) = lookup(&d.data).await;
    assert!(n > 0);
    assert!(took < Duration::from_secs(2), "the lookup took {took:?}");
    // A client that never sends a request is dropped after the first-request deadline.
    let mut s = idle.into_iter().last().unwrap();
    let t0 = Instant::now();
    assert!(closed_within(&mut s, Duration::from_secs(10)));
    assert!(t0.elapsed() < Duration::from_secs(5), "{:?}", t0.elapsed());
}

/// `n` clients that each send `hello` every 100 ms (well within `idle`) until `stop`; each
/// returns when the daemon closed its session (after how long), `None` if it never did.
fn chatty_clients(
    sock: &Path,
    n: usize,
    stop: &Arc<std::sync::atomic::AtomicBool>,
) -> Vec<std::thread::JoinHandle<Option<Duration>>> {
    (0..n)
        .map(|_| {
            let (sock, stop) = (sock.to_path_buf(), stop.clone());
            std::thread::spawn(move || {
                let mut s = std::os::unix::net::UnixStream::connect(&sock).unwrap();
                s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                let mut r = std::io::BufReader::new(s.try_clone().unwrap());
                let t0 = Instant::now();
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let sent = std::io::Write::write_all(&mut s, b"{\"v\":1,\"op\":\"hello\"}\n");
                    let mut line = String::new();
                    let got = std::io::BufRead::read_line(&mut r, &mut line);
                    if sent.is_err() || got.map_or(true, |n| n == 0) {
                        return Some(t0.elapsed());
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
                None
            })
        })
        .collect()
}

/// Issue #21: clients that send `hello` more often than the idle deadline kept every slot, and
/// a lookup waited 120 s. Now the session idle the longest makes room for a new connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chatty_clients_cannot_hold_the_socket_shut() {
    // Sessions may live long here: only making room can let the lookups in.
    let limits = socket::Limits {
        session: Duration::from_secs(30),
        ..short()
    };
    let d = serve_limited(20, limits);
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let chatty = chatty_clients(&d.sock, limits.max_connections, &stop);
    tokio::time::sleep(Duration::from_millis(150)).await;
    for _ in 0..3 {
        let (n, took) = lookup(&d.data).await;
        assert!(n > 0);
        assert!(took < Duration::from_secs(1), "the lookup took {took:?}");
    }
    // Each client says hello again within 100 ms: the ones closed to make room find out.
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let closed = tokio::task::spawn_blocking(move || {
        chatty
            .into_iter()
            .map(|h| h.join().unwrap())
            .filter(Option::is_some)
            .count()
    })
    .await
    .unwrap();
    assert!(closed >= 1, "no chatty session made room");
}

/// A chatty session without a request in flight ends once it is `session` old, whether or not
/// another connection needs its slot.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chatty_session_ends_when_it_is_session_old() {
    let limits = short();
    let d = serve_limited(20, limits);
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let chatty = chatty_clients(&d.sock, 3, &stop);
    let ends: Vec<Option<Duration>> = tokio::task::spawn_blocking(move || {
        chatty.into_iter().map(|h| h.join().unwrap()).collect()
    })
    .await
    .unwrap();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for end in ends {
        let end = end.expect("a chatty session was never closed");
        assert!(
            end >= limits.session - Duration::from_millis(150)
                && end < limits.session + Duration::from_secs(2),
            "{end:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_that_never_read_their_reply_block_nobody() {
    // Enough findings that a `for_each` reply overflows the socket buffers.
    let d = serve_limited(3000, short());
    // Twice as many as there are slots: the lookup waits behind the first ones (FIFO) until
    // their stalled replies are abandoned, a round of `write_stall` per eight of them.
    let mut stalled = Vec::new();
    for _ in 0..16 {
        let mut s = std::os::unix::net::UnixStream::connect(&d.sock).unwrap();
        std::io::Write::write_all(&mut s, b"{\"v\":1,\"op\":\"for_each\"}\n").unwrap();
        stalled.push(s);
    }
    let (n, took) = lookup(&d.data).await;
    assert!(n > 0);
    assert!(took < Duration::from_secs(5), "the lookup took {took:?}");
    // The abandoned replies end: the daemon closes those connections after the write stall
    // (300 ms; the bound is generous because 16 replies of 3,000 findings are being encoded
    // on a busy 2-core machine while the whole suite runs: it returns as soon as it closes).
    let mut s = stalled.pop().unwrap();
    assert!(closed_within(&mut s, Duration::from_secs(30)));
    let (_, took) = lookup(&d.data).await;
    assert!(took < Duration::from_secs(2), "the lookup took {took:?}");
}

/// The daemon's own limits: what the module comment promises.
#[test]
fn the_daemon_limits_bound_every_session() {
    let l = socket::Limits::default();
    assert_eq!(l.max_connections, socket::MAX_CONNECTIONS);
    assert!(l.first_request < l.idle && l.idle < l.session);
    assert!(l.write_stall <= l.idle);
}

// ---------- 6. timeouts ----------

#[tokio::test]
async fn a_silent_server_fails_within_the_timeout_naming_url_and_limit() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    // Accepts every connection and never answers.
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for s in listener.incoming() {
            held.push(s);
        }
    });
    let key = Secret::new(KEY);
    let url = format!("http://{addr}/v1/data?key={KEY}");
    let t0 = Instant::now();
    let e = client(Duration::from_secs(1))
        .get(&url, HeaderMap::new(), None, &[&key])
        .await
        .unwrap_err()
        .to_string();
    assert!(t0.elapsed() < Duration::from_secs(5), "{:?}", t0.elapsed());
    assert!(
        e.contains(&format!("http://{addr}/v1/data?key={REDACTED}")),
        "{e}"
    );
    assert!(e.contains("1s") && e.contains("[http] timeout"), "{e}");
    assert_no_key("the error", &e);
}

/// Serves one HTTP/1.1 reply whose body comes in `chunks` parts, `gap` apart, then holds the
/// connection open without ending the body when `stall`.
fn serve_trickle(chunks: usize, gap: Duration, stall: bool) -> String {
    use std::io::Write;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        let mut req = [0u8; 4096];
        let _ = std::io::Read::read(&mut s, &mut req);
        let len = if stall { chunks * 10 + 10 } else { chunks * 10 };
        write!(
            s,
            "HTTP/1.1 200 OK\r\ncontent-type: text/csv\r\ncontent-length: {len}\r\n\r\n"
        )
        .unwrap();
        for _ in 0..chunks {
            s.write_all(b"123456789\n").unwrap();
            s.flush().unwrap();
            std::thread::sleep(gap);
        }
        if stall {
            std::thread::sleep(Duration::from_secs(30));
        }
    });
    format!("http://{addr}/report.csv")
}

#[tokio::test]
async fn a_download_to_disk_may_outlast_the_timeout_while_its_body_keeps_moving() {
    // 12 parts 250 ms apart: 3 s in all, past the 1.5 s `timeout`, never idle that long.
    let url = serve_trickle(12, Duration::from_millis(250), false);
    let mut file = tempfile::tempfile().unwrap();
    let got = client(Duration::from_millis(1500))
        .get_to_file(&url, &[], &mut file)
        .await
        .unwrap();
    assert_eq!(got.map(|d| d.bytes), Some(120));
}

#[tokio::test]
async fn a_download_whose_body_stops_fails_after_the_timeout_naming_it() {
    let url = serve_trickle(2, Duration::from_millis(10), true);
    let mut file = tempfile::tempfile().unwrap();
    let t0 = Instant::now();
    let e = client(Duration::from_secs(1))
        .get_to_file(&url, &[], &mut file)
        .await
        .unwrap_err()
        .to_string();
    assert!(t0.elapsed() < Duration::from_secs(10), "{:?}", t0.elapsed());
    assert!(
        e.contains("the body stopped")
            && e.contains("after 20 bytes")
            && e.contains("[http] timeout"),
        "{e}"
    );
}
