//! Two `outwatch run` processes on one PostgreSQL store (issue #25): the same list source on a
//! schedule of every two seconds, the digest every three, each node fetching from a mock
//! provider of its own (so the test knows which node fetched). Every slot is fetched by one
//! node and every digest slot mailed once; one node killed (SIGKILL) while it writes a unit
//! leaves nothing of that unit, and the other carries on. Skipped without a server, except
//! under `CI=true` (see `store_contract/postgres.rs`).

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mailin_embedded::{Handler, Response, Server, SslConfig, response};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::store_contract::postgres::{Schema, url};

/// When each mail arrived.
#[derive(Clone)]
struct Arrivals(Arc<Mutex<Vec<Instant>>>);

impl Handler for Arrivals {
    fn data_end(&mut self) -> Response {
        self.0.lock().unwrap().push(Instant::now());
        response::OK
    }
}

fn smtp() -> (u16, Arc<Mutex<Vec<Instant>>>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let got = Arc::new(Mutex::new(Vec::new()));
    let mut server = Server::new(Arrivals(got.clone()));
    server
        .with_name("localhost")
        .with_ssl(SslConfig::None)
        .unwrap()
        .with_tcp_listener(l);
    std::thread::spawn(move || {
        let _ = server.serve();
    });
    (port, got)
}

/// A Feodo Tracker block list of `n` C2s in `10.<net>.0.0/16`.
fn list(net: u8, n: u32) -> Vec<u8> {
    let mut s = String::from(
        "# abuse.ch Feodo Tracker Botnet C2 IP Blocklist (CSV)\n\
         \"first_seen_utc\",\"dst_ip\",\"dst_port\",\"c2_status\",\"last_online\",\"malware\"\n",
    );
    for i in 0..n {
        s.push_str(&format!(
            "\"2026-11-08 19:20:49\",\"10.{net}.{}.{}\",\"443\",\"online\",\"2026-11-20\",\"Pikabot\"\n",
            i >> 8,
            i & 255
        ));
    }
    s.push_str(&format!("# END {n} entries\n"));
    s.into_bytes()
}

/// The store's URL with an application name, so the test can tell the nodes' sessions apart.
fn named_url(name: &str) -> String {
    let u = url();
    if u.starts_with("postgres://") || u.starts_with("postgresql://") {
        let sep = if u.contains('?') { '&' } else { '?' };
        format!("{u}{sep}application_name={name}")
    } else {
        format!("{u} application_name={name}")
    }
}

fn start_node(d: &Path, name: &str, schema: &Schema, mock: &str, smtp_port: u16) -> Child {
    let dir = d.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    let cfg = dir.join("outwatch.toml");
    std::fs::write(
        &cfg,
        format!(
            "[organisation]\nname = \"Test\"\nprefixes = [\"10.0.0.0/8\"]\n\n\
             {}\n\
             [sources.feodotracker]\nbase_url = \"{mock}\"\nauth_key = \"0123456789abcdef0123\"\n\
             schedule = \"*/2 * * * * *\"\n\n\
             [digest]\nschedule = \"*/3 * * * * *\"\nfrom = \"outwatch@example.org\"\n\
             recipients = [\"noc@example.org\"]\nsend_empty = true\n\n\
             [smtp]\nhost = \"127.0.0.1\"\nport = {smtp_port}\ntls = \"none\"\ntimeout = \"10s\"\n\n{}",
            schema.store_table(&dir.join("data").display().to_string()),
            crate::support::feeds_off_but(&["feodotracker"])
        ),
    )
    .unwrap();
    Command::new(env!("CARGO_BIN_EXE_outwatch"))
        .current_dir(&dir)
        .env_remove("OUTWATCH_CONFIG")
        .env_remove("OUTWATCH_DATA_DIR")
        .env(
            "OUTWATCH_TEST_STORE_URL",
            named_url(&app_name(schema, name)),
        )
        .env("RUST_LOG", "outwatch=info")
        .arg("--config")
        .arg(&cfg)
        .arg("run")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("log")).unwrap())
        .spawn()
        .unwrap()
}

fn app_name(schema: &Schema, node: &str) -> String {
    format!("{}_{node}", schema.name())
}

/// Waits up to `secs` for `cond`, polling every 5 ms; `false` when it never came.
fn wait_for(secs: u64, mut cond: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + Duration::from_secs(secs);
    while !cond() {
        if Instant::now() > end {
            return false;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    true
}

#[test]
fn two_run_nodes_fetch_each_slot_once_and_survive_one_killed_mid_unit() {
    let Some(schema) = Schema::new() else { return };
    let rt = tokio::runtime::Runtime::new().unwrap();
    const N: u32 = 4_000;
    let mocks = rt.block_on(async {
        let mut mocks = Vec::new();
        for net in [1u8, 2] {
            let m = MockServer::start().await;
            Mock::given(method("GET"))
                .and(path("/downloads/ipblocklist.csv"))
                .respond_with(ResponseTemplate::new(200).set_body_raw(list(net, N), "text/csv"))
                .mount(&m)
                .await;
            mocks.push(m);
        }
        mocks
    });
    let requests = |i: usize| {
        rt.block_on(mocks[i].received_requests())
            .unwrap_or_default()
            .len()
    };
    let (port, mails) = smtp();
    let d = tempfile::tempdir().unwrap();
    let mut a = start_node(d.path(), "a", &schema, &mocks[0].uri(), port);
    let mut b = start_node(d.path(), "b", &schema, &mocks[1].uri(), port);
    let log = |n: &str| std::fs::read_to_string(d.path().join(n).join("log")).unwrap_or_default();

    // Node a in the middle of writing a unit (its session's transaction wrote, and its
    // statement is the unit writer's upsert or its lookup of stored twins: an import, or the
    // digest marking findings reported), then killed.
    let mut pg = postgres::Client::connect(&url(), postgres::NoTls).unwrap();
    let a_app = app_name(&schema, "a");
    let writing = wait_for(30, || {
        pg.query_one(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1 \
             AND backend_xid IS NOT NULL \
             AND (query LIKE '%INSERT INTO findings%' OR query LIKE '%pg_current_xact_id%')",
            &[&a_app],
        )
        .map(|r| r.get::<_, i64>(0) > 0)
        .unwrap_or(false)
    });
    assert!(
        writing,
        "node a never wrote a unit:\n--- a\n{}\n--- b\n{}",
        log("a"),
        log("b")
    );
    a.kill().unwrap();
    a.wait().unwrap();
    let killed_at = chrono::Utc::now();
    let (a_requests, b_before) = (requests(0), requests(1));
    let count = |pg: &mut postgres::Client, net: &str| -> i64 {
        pg.query_one(
            &format!(
                "SELECT count(*) FROM {}.findings WHERE ip <<= '{net}'::inet",
                schema.name()
            ),
            &[],
        )
        .unwrap()
        .get(0)
    };
    // The server rolls the unit back when the connection goes: all of a's list or none.
    std::thread::sleep(Duration::from_millis(300));
    let a_rows = count(&mut pg, "10.1.0.0/16");
    assert!(
        a_rows == 0 || a_rows == i64::from(N),
        "half a unit: {a_rows}"
    );

    // b carries on: it fetches later slots and mails digests (a digest after the kill, and
    // two in all, so that the spacing of the digests below is checked on two at least).
    let mails_at_kill = mails.lock().unwrap().len();
    let carried_on = wait_for(20, || {
        requests(1) >= b_before + 2 && mails.lock().unwrap().len() > mails_at_kill.max(1)
    });
    assert!(carried_on, "node b stopped:\n{}", log("b"));
    // SAFETY: signals our own child.
    unsafe { libc::kill(b.id() as libc::pid_t, libc::SIGTERM) };
    let end = Instant::now() + Duration::from_secs(20);
    while b.try_wait().unwrap().is_none() {
        if Instant::now() > end {
            b.kill().unwrap();
            panic!("node b did not stop on SIGTERM: {}", log("b"));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let logs = format!("--- a\n{}\n--- b\n{}", log("a"), log("b"));
    assert!(!logs.contains("deadlock"), "{logs}");

    assert_eq!(requests(0), a_requests, "a fetched nothing after its death");
    assert_eq!(count(&mut pg, "10.1.0.0/16"), a_rows, "{logs}");
    assert_eq!(count(&mut pg, "10.2.0.0/16"), i64::from(N), "{logs}");
    // Every request is a run in the log, but the one killed; no two runs in one slot.
    let runs: Vec<chrono::DateTime<chrono::Utc>> = pg
        .query(
            &format!(
                "SELECT started FROM {}.runs WHERE source = 'feodotracker' ORDER BY started",
                schema.name()
            ),
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    let requested = requests(0) + requests(1);
    assert!(
        requested == runs.len() + 1 || requested == runs.len(),
        "one request per run, and a's killed one: {requested} for {runs:?}\n{logs}"
    );
    for w in runs.windows(2) {
        assert!(
            w[1] - w[0] >= chrono::Duration::milliseconds(250),
            "two runs in one slot: {runs:?}\n{logs}"
        );
    }
    assert!(runs.iter().any(|t| *t > killed_at), "{logs}");
    // One mail per digest slot (every three seconds), from whichever node.
    let mails = mails.lock().unwrap().clone();
    assert!(mails.len() >= 2, "{logs}");
    for w in mails.windows(2) {
        assert!(
            w[1] - w[0] >= Duration::from_millis(1500),
            "two digests in one slot\n{logs}"
        );
    }
}
