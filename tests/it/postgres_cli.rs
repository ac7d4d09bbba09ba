//! The command line on a PostgreSQL store (`[store] backend = "postgres"`): the same import
//! gives the same findings as on sled, reads never create a store, `status` and `check-config`
//! name the backend and never the password. Skipped without a server, except under `CI=true`
//! (see `store_contract/postgres.rs`).

use std::path::Path;

use serde_json::Value;

use crate::store_contract::postgres::{Schema, url};
use crate::support::{cli, feeds_off, fixture_path};

const REPORT: &str = "shadowserver/2026-11-20-scan_dns-example-asn.csv";

/// A config with its store in `schema`; the URL comes from `$OUTWATCH_TEST_STORE_URL`.
fn config(d: &Path, schema: &Schema) -> std::path::PathBuf {
    // Not `outwatch.toml`: the sled runs beside it must not find it.
    let cfg = d.join("pg.toml");
    std::fs::write(
        &cfg,
        format!(
            "[organisation]\nname = \"Test\"\nprefixes = [\"192.0.2.0/24\", \"198.51.100.0/24\"]\n\n\
             {}\n{}",
            schema.store_table("data"),
            feeds_off()
        ),
    )
    .unwrap();
    cfg
}

/// The same config with a sled store in `sled/`.
fn sled_config(d: &Path) -> std::path::PathBuf {
    let cfg = d.join("sled.toml");
    std::fs::write(
        &cfg,
        format!(
            "[organisation]\nname = \"Test\"\nprefixes = [\"192.0.2.0/24\", \"198.51.100.0/24\"]\n\n\
             [store]\npath = \"sled\"\n\n{}",
            feeds_off()
        ),
    )
    .unwrap();
    cfg
}

fn run(d: &Path, cfg: Option<&Path>, args: &[&str]) -> std::process::Output {
    let mut c = cli(d);
    if let Some(cfg) = cfg {
        c.arg("--config").arg(cfg);
    }
    c.env("OUTWATCH_TEST_STORE_URL", url())
        .args(args)
        .output()
        .unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Every exported finding without the times of its import (which differ between the runs).
fn exported(out: &std::process::Output) -> Vec<Value> {
    assert!(out.status.success(), "{}", text(&out.stderr));
    let mut v: Vec<Value> = text(&out.stdout)
        .lines()
        .map(|l| {
            let mut f: Value = serde_json::from_str(l).unwrap();
            let o = f.as_object_mut().unwrap();
            for k in ["first_seen", "last_seen", "history"] {
                o.remove(k);
            }
            f
        })
        .collect();
    v.sort_by_key(|f| f["fingerprint"].as_str().unwrap().to_string());
    v
}

#[test]
fn import_lookup_and_export_answer_as_on_sled() {
    let Some(schema) = Schema::new() else { return };
    let d = tempfile::tempdir().unwrap();
    let cfg = config(d.path(), &schema);
    let csv = fixture_path(REPORT);
    let csv = csv.to_str().unwrap();

    // A read before anything was stored: no store, exit 4, and no tables made.
    let out = run(d.path(), Some(&cfg), &["lookup", "192.0.2.1"]);
    assert_eq!(out.status.code(), Some(4), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("no outwatch store there yet"),
        "{}",
        text(&out.stderr)
    );

    let out = run(d.path(), Some(&cfg), &["import", "shadowserver", csv]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let sled_cfg = sled_config(d.path());
    let out = run(d.path(), Some(&sled_cfg), &["import", "shadowserver", csv]);
    assert!(out.status.success(), "{}", text(&out.stderr));

    let pg = exported(&run(d.path(), Some(&cfg), &["export", "--jsonl"]));
    let sled = exported(&run(d.path(), Some(&sled_cfg), &["export", "--jsonl"]));
    assert!(
        pg.iter().all(|f| f["in_scope"] == true),
        "the scope applies on both"
    );
    assert!(!pg.is_empty());
    assert_eq!(pg, sled, "the same findings on both backends");

    // A lookup by prefix: the same answer.
    let ask = |cfg: &Path| {
        let out = run(d.path(), Some(cfg), &["lookup", "--json", "192.0.2.0/24"]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        let mut fps: Vec<String> = v["findings"]
            .as_array()
            .unwrap_or_else(|| panic!("{v}"))
            .iter()
            .map(|f| f["fingerprint"].as_str().unwrap().to_string())
            .collect();
        fps.sort();
        fps
    };
    let on_pg = ask(&cfg);
    assert!(!on_pg.is_empty());
    assert_eq!(on_pg, ask(&sled_cfg));

    // The same report again: the same observation, on both (`open` now, counted once).
    for c in [&cfg, &sled_cfg] {
        let out = run(d.path(), Some(c), &["import", "shadowserver", csv]);
        assert!(out.status.success(), "{}", text(&out.stderr));
    }
    let pg = exported(&run(d.path(), Some(&cfg), &["export", "--jsonl"]));
    assert!(
        pg.iter()
            .all(|f| f["status"] == "open" && f["times_seen"] == 1)
    );
    assert_eq!(
        pg,
        exported(&run(d.path(), Some(&sled_cfg), &["export", "--jsonl"]))
    );
}

#[test]
fn status_and_check_config_name_the_backend_never_the_password() {
    let Some(schema) = Schema::new() else { return };
    let d = tempfile::tempdir().unwrap();
    let cfg = config(d.path(), &schema);
    // The URL in the variable carries a password (trust auth ignores it).
    let with_password = |args: &[&str]| {
        cli(d.path())
            .arg("--config")
            .arg(&cfg)
            .env(
                "OUTWATCH_TEST_STORE_URL",
                "postgres://postgres:Sekr1tPassw0rd@127.0.0.1:5432/test",
            )
            .args(args)
            .output()
            .unwrap()
    };
    let out = with_password(&["check-config"]);
    let all = text(&out.stdout) + &text(&out.stderr);
    assert!(out.status.success(), "{all}");
    assert!(
        all.contains("postgres at postgres://postgres@127.0.0.1:5432/test"),
        "{all}"
    );
    assert!(!all.contains("Sekr1t"), "{all}");
    let out = with_password(&[
        "import",
        "shadowserver",
        fixture_path(REPORT).to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = with_password(&["status", "--json"]);
    let all = text(&out.stdout) + &text(&out.stderr);
    assert!(!all.contains("Sekr1t"), "{all}");
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {all}"));
    assert_eq!(v["store"]["backend"], "postgres", "{all}");
    assert!(v["store"]["findings"].as_u64().unwrap() > 0, "{all}");
    let out = with_password(&["status"]);
    let all = text(&out.stdout) + &text(&out.stderr);
    assert!(
        all.contains("(postgres)") && !all.contains("Sekr1t"),
        "{all}"
    );

    // An unset variable is a config problem naming it.
    let out = cli(d.path())
        .arg("--config")
        .arg(&cfg)
        .env_remove("OUTWATCH_TEST_STORE_URL")
        .args(["lookup", "192.0.2.1"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("OUTWATCH_TEST_STORE_URL"));
}

#[test]
fn postgres_settings_without_the_backend_are_refused() {
    let d = tempfile::tempdir().unwrap();
    let cfg = d.path().join("outwatch.toml");
    std::fs::write(
        &cfg,
        format!(
            "[organisation]\nname = \"Test\"\nprefixes = [\"192.0.2.0/24\"]\n\n[store]\n\
             url = \"postgres://u:pw@db.example/x\"\n\n{}",
            feeds_off()
        ),
    )
    .unwrap();
    let out = run(d.path(), Some(&cfg), &["check-config"]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(err.contains("backend = \"postgres\""), "{err}");
    assert!(!err.contains("pw@"), "{err}");

    // With the backend: valid, and the URL's password appears nowhere (text or JSON).
    std::fs::write(
        &cfg,
        format!(
            "[organisation]\nname = \"Test\"\nprefixes = [\"192.0.2.0/24\"]\n\n[store]\n\
             backend = \"postgres\"\nurl = \"postgres://u:Hidd3nPassw0rd@db.example/x\"\n\n{}",
            feeds_off()
        ),
    )
    .unwrap();
    for args in [&["check-config"][..], &["check-config", "--json"][..]] {
        let out = run(d.path(), Some(&cfg), args);
        let all = text(&out.stdout) + &text(&out.stderr);
        assert!(out.status.success(), "{all}");
        assert!(all.contains("postgres://u@db.example:5432/x"), "{all}");
        assert!(!all.contains("Hidd3n"), "{all}");
    }
}

/// The test server as a `postgres://` URL (what `migrate --to` takes).
fn pg_url() -> String {
    let u = url();
    if u.starts_with("postgres://") {
        u
    } else {
        "postgres://postgres@127.0.0.1:5432/test".into()
    }
}

#[test]
fn migrate_moves_a_sled_store_to_postgres_and_back() {
    let Some(schema) = Schema::new() else { return };
    let d = tempfile::tempdir().unwrap();
    let cfg = config(d.path(), &schema);
    let sled_dir = d.path().join("sled");
    let sled_dir = sled_dir.to_str().unwrap();
    let csv = fixture_path(REPORT);
    let out = run(
        d.path(),
        None,
        &[
            "--data-dir",
            sled_dir,
            "import",
            "shadowserver",
            csv.to_str().unwrap(),
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let whole = |out: std::process::Output| {
        assert!(out.status.success(), "{}", text(&out.stderr));
        let mut v: Vec<String> = text(&out.stdout).lines().map(str::to_string).collect();
        v.sort();
        v
    };
    let before = whole(run(d.path(), None, &["--data-dir", sled_dir, "export"]));

    let out = run(
        d.path(),
        None,
        &[
            "--data-dir",
            sled_dir,
            "migrate",
            "--json",
            "--to",
            &pg_url(),
            "--to-schema",
            schema.name(),
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["copied"]["findings"].as_u64(), Some(before.len() as u64));
    assert!(v["copied"]["runs"].as_u64().unwrap() >= 1, "{v}");
    // The same findings, times and history included; the run log came along.
    assert_eq!(whole(run(d.path(), Some(&cfg), &["export"])), before);
    let out = run(d.path(), Some(&cfg), &["status", "--json"]);
    let st: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(st["store"]["findings"].as_u64(), Some(before.len() as u64));

    // Into a store that is not empty: refused, nothing changed.
    let out = run(
        d.path(),
        None,
        &[
            "--data-dir",
            sled_dir,
            "migrate",
            "--to",
            &pg_url(),
            "--to-schema",
            schema.name(),
        ],
    );
    assert_eq!(out.status.code(), Some(4), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("not empty"),
        "{}",
        text(&out.stderr)
    );

    // And back into a new sled folder.
    let back = d.path().join("back");
    let back = back.to_str().unwrap();
    let out = run(d.path(), Some(&cfg), &["migrate", "--to", back]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("the counts match"));
    assert_eq!(
        whole(run(d.path(), None, &["--data-dir", back, "export"])),
        before
    );
}

/// A source whose turn another node holds is skipped by `fetch` (and `run --once`, the daemon):
/// nothing is fetched here, and the run is no failure, but exit code 5 says it was skipped.
#[test]
fn a_source_another_node_is_running_is_skipped() {
    use outwatch::store::Store;
    let Some(schema) = Schema::new() else { return };
    let d = tempfile::tempdir().unwrap();
    let cfg = d.path().join("pg.toml");
    // A source that fails whenever it runs: nothing listens on port 1.
    std::fs::write(
        &cfg,
        format!(
            "[organisation]\nname = \"Test\"\nprefixes = [\"192.0.2.0/24\"]\n\n\
             {}\n[sources.feodotracker]\nbase_url = \"http://127.0.0.1:1\"\n\
             auth_key = \"0123456789abcdef0123\"\n\n{}",
            schema.store_table("data"),
            crate::support::feeds_off_but(&["feodotracker"])
        ),
    )
    .unwrap();
    let other_node = outwatch::store::postgres::PgStore::open(&schema.target()).unwrap();
    let turn = other_node.try_turn("source/feodotracker").unwrap();
    assert!(turn.is_some());
    let out = run(d.path(), Some(&cfg), &["fetch", "--source", "feodotracker"]);
    let all = text(&out.stdout) + &text(&out.stderr);
    assert_eq!(out.status.code(), Some(5), "{all}");
    assert!(
        all.contains("skipped") && all.contains("another node"),
        "{all}"
    );
    let out = run(
        d.path(),
        Some(&cfg),
        &["fetch", "--json", "--source", "feodotracker"],
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(v["sources"][0]["skipped"].is_string(), "{v}");
    // Once the other node is done, this one runs it (and fails: nothing listens).
    drop(turn);
    let out = run(d.path(), Some(&cfg), &["fetch", "--source", "feodotracker"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
}

/// Two nodes on one database run the same list at the same moment: one fetches and stores
/// it, the other skips it; the provider sees one request and the run log one run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_fetch_a_unit_once() {
    use std::sync::Arc;

    use outwatch::clock::{Clock, ManualClock};
    use outwatch::config::HttpConfig;
    use outwatch::http::HttpClient;
    use outwatch::pipeline::Runner;
    use outwatch::scope::{ScopeMatcher, ScopeSnapshot};
    use outwatch::store::Store;
    use outwatch::store::postgres::PgStore;
    use wiremock::matchers::{method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};

    let Some(schema) = Schema::new() else { return };
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/downloads/ipblocklist.csv"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_bytes(crate::support::fixture(
                    "lists/feodotracker/ipblocklist.csv",
                ))
                // Long enough for both nodes to be at it together.
                .set_delay(std::time::Duration::from_millis(700)),
        )
        .mount(&server)
        .await;
    let source = crate::keyed_support::list_source(
        &format!("[sources.feodotracker]\nbase_url = \"{}\"\n", server.uri()),
        "feodotracker",
    );
    let snap = ScopeSnapshot {
        prefixes: vec!["203.0.113.0/24".parse().unwrap()],
        ..Default::default()
    };
    let node = |store: Arc<dyn Store>| {
        let clock: Arc<dyn Clock> = Arc::new(ManualClock::new(chrono::Utc::now()));
        let http = HttpClient::new(&HttpConfig::default(), clock.clone()).unwrap();
        Runner::new(store, http, Arc::new(ScopeMatcher::new(&snap)), clock)
    };
    let target = schema.target();
    let (a, b) = tokio::task::spawn_blocking(move || {
        (
            PgStore::open(&target).unwrap(),
            PgStore::open(&target).unwrap(),
        )
    })
    .await
    .unwrap();
    let (a, b): (Arc<dyn Store>, Arc<dyn Store>) = (Arc::new(a), Arc::new(b));
    let (node_a, node_b) = (node(a.clone()), node(b.clone()));
    let (ra, rb) = tokio::join!(
        node_a.run_source_in_turn(source.as_ref()),
        node_b.run_source_in_turn(source.as_ref())
    );
    assert!(ra.ok && rb.ok, "{:?} {:?}", ra.error, rb.error);
    let skipped = [&ra, &rb].iter().filter(|r| r.skipped.is_some()).count();
    assert_eq!(skipped, 1, "one node skips: {ra:?} {rb:?}");
    let ran = if ra.skipped.is_none() { &ra } else { &rb };
    assert_eq!(ran.in_scope, 1);
    assert_eq!(server.received_requests().await.unwrap().len(), 1);
    let (count, runs) = outwatch::store::blocking(&b, |s| {
        Ok((s.count()?, s.runs(Some("feodotracker"), 10)?.len()))
    })
    .await
    .unwrap();
    assert_eq!(runs, 1, "one run in the log, the other node's");
    assert!(count >= 1 && count >= ran.in_scope, "{count}");
}

/// Issue #25, done when: `migrate` moves the demo store to PostgreSQL and `lookup` gives the
/// same answers, for every kind of query a person pastes.
#[test]
fn the_demo_store_migrated_to_postgres_answers_lookups_the_same() {
    let Some(schema) = Schema::new() else { return };
    let d = tempfile::tempdir().unwrap();
    let demo = d.path().join("demo");
    let out = cli(d.path())
        .args(["demo", "--out"])
        .arg(&demo)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let sled_cfg = demo.join("outwatch.toml");
    let out = run(
        d.path(),
        Some(&sled_cfg),
        &[
            "migrate",
            "--json",
            "--to",
            &pg_url(),
            "--to-schema",
            schema.name(),
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let moved: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        moved["copied"]["findings"].as_u64().unwrap() >= 30,
        "{moved}"
    );

    // The demo's own config, its store in the schema.
    let sled_text = std::fs::read_to_string(&sled_cfg).unwrap();
    let pg_text = sled_text.replace("[store]\npath = \"data\"\n", &schema.store_table("data"));
    assert_ne!(pg_text, sled_text, "the demo config names its store");
    let pg_cfg = demo.join("pg.toml");
    std::fs::write(&pg_cfg, pg_text).unwrap();

    let queries = [
        "192.0.2.20",
        "192.0.2.77",
        "203.0.113.0/24",
        "192.0.2.0/24",
        "example.org",
        "alice@example.org",
        "AS64496",
        "http://gtr.example-c2.com/in.php",
        "198.51.100.7:8080",
        "[2001:db8::20]:443",
    ];
    for q in queries {
        let a = run(d.path(), Some(&sled_cfg), &["lookup", q, "--json"]);
        let b = run(d.path(), Some(&pg_cfg), &["lookup", q, "--json"]);
        assert!(a.status.success(), "{q}: {}", text(&a.stderr));
        assert_eq!(a.status.code(), b.status.code(), "{q}: {}", text(&b.stderr));
        let (a, b) = (answer(&a.stdout), answer(&b.stdout));
        assert!(a == b, "{q}: sled answered\n{a}\nPostgreSQL answered\n{b}");
    }
    // Not vacuous: the queries found findings.
    let a = run(
        d.path(),
        Some(&sled_cfg),
        &["lookup", "192.0.2.0/24", "--json"],
    );
    let v: Value = serde_json::from_slice(&a.stdout).unwrap();
    assert!(v.to_string().contains("fingerprint"), "{v}");
}

/// `lookup --json`'s answer; a stream the store gave in its own order (`sorted: false`, e.g.
/// an ASN's) is put in fingerprint order, as either backend may list it differently.
fn answer(stdout: &[u8]) -> Value {
    let mut v: Value = serde_json::from_slice(stdout).unwrap();
    if v["sorted"] == Value::Bool(false)
        && let Some(list) = v["findings"].as_array_mut()
    {
        list.sort_by_key(|f| f["fingerprint"].as_str().unwrap_or_default().to_string());
    }
    v
}
