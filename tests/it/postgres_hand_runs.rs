//! Hand runs on a PostgreSQL store shared with other nodes (issue #25): `fetch`, `run --once`
//! and `import` take the same turn per source (`source/<name>`, an advisory lock) as the
//! daemons, so a source is never fetched or written by two nodes at once. A hand run that finds
//! the turn held skips that source (named on stderr, exit code 5), or waits for it with
//! `--wait`; it records no schedule slot as done. Every node here is a process of the real
//! binary; the provider is a mock on loopback that counts requests and answers only when the
//! test lets it (so "while the other node fetches" needs no timing luck). Skipped without a
//! server, except under `CI=true` (see `store_contract/postgres.rs`).

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Output, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use outwatch::store::postgres::PgStore;
use outwatch::store::{Store, Turn};

use crate::store_contract::postgres::{Schema, url};
use crate::support::{feeds_off_but, fixture_path, isolated};

/// A Feodo Tracker list provider that counts the requests and holds each answer until
/// [`Gated::open`] (or while the gate stays open).
#[derive(Clone, Default)]
struct Gated(Arc<(Mutex<(usize, bool)>, Condvar)>);

impl Gated {
    /// Serves on a port of loopback; returns the base URL.
    fn start(&self) -> String {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let me = self.clone();
        std::thread::spawn(move || {
            for conn in l.incoming().flatten() {
                let me = me.clone();
                std::thread::spawn(move || me.answer(conn));
            }
        });
        format!("http://127.0.0.1:{port}")
    }

    fn answer(&self, conn: std::net::TcpStream) {
        let mut r = BufReader::new(conn.try_clone().unwrap());
        let mut out = conn;
        loop {
            let mut line = String::new();
            if r.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            loop {
                let mut h = String::new();
                if r.read_line(&mut h).unwrap_or(0) == 0 || h.trim().is_empty() {
                    break;
                }
            }
            let (lock, cv) = &*self.0;
            let mut g = lock.lock().unwrap();
            g.0 += 1;
            cv.notify_all();
            while !g.1 {
                g = cv.wait(g).unwrap();
            }
            drop(g);
            let body = "# abuse.ch Feodo Tracker Botnet C2 IP Blocklist (CSV)\n\
                \"first_seen_utc\",\"dst_ip\",\"dst_port\",\"c2_status\",\"last_online\",\"malware\"\n\
                \"2026-11-08 19:20:49\",\"10.1.0.1\",\"443\",\"online\",\"2026-11-20\",\"Pikabot\"\n\
                # END 1 entries\n";
            let reply = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: text/csv\r\ncontent-length: {}\r\n\r\n{body}",
                body.len()
            );
            if out.write_all(reply.as_bytes()).is_err() {
                return;
            }
        }
    }

    fn requests(&self) -> usize {
        self.0.0.lock().unwrap().0
    }

    /// Waits up to 60 s for the `n`-th request.
    fn wait_for(&self, n: usize) -> bool {
        let (lock, cv) = &*self.0;
        let end = Instant::now() + Duration::from_secs(60);
        let mut g = lock.lock().unwrap();
        while g.0 < n {
            let left = end.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            g = cv.wait_timeout(g, left).unwrap().0;
        }
        true
    }

    fn set_open(&self, open: bool) {
        let (lock, cv) = &*self.0;
        lock.lock().unwrap().1 = open;
        cv.notify_all();
    }
}

fn config(d: &Path, schema: &Schema, mock: &str) -> PathBuf {
    let cfg = d.join("pg.toml");
    std::fs::write(
        &cfg,
        format!(
            "[organisation]\nname = \"Test\"\nprefixes = [\"10.0.0.0/8\", \"192.0.2.0/24\"]\n\n\
             {}\n[sources.feodotracker]\nbase_url = \"{mock}\"\n\
             auth_key = \"0123456789abcdef0123\"\n\n{}",
            schema.store_table("data"),
            feeds_off_but(&["feodotracker"])
        ),
    )
    .unwrap();
    cfg
}

/// A node: the binary with `args` on the config, started.
fn node(d: &Path, cfg: &Path, args: &[&str]) -> Child {
    isolated(d)
        .env("OUTWATCH_TEST_STORE_URL", url())
        .arg("--config")
        .arg(cfg)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn run(d: &Path, cfg: &Path, args: &[&str]) -> Output {
    node(d, cfg, args).wait_with_output().unwrap()
}

/// Takes the turn `turn` as another node would and runs `args`, which must skip its work for
/// it (exit 5): the turn, still held, and the run's output.
fn skipped_while_held(
    other: &PgStore,
    turn: &str,
    d: &Path,
    cfg: &Path,
    args: &[&str],
) -> (Turn, String) {
    let held = other.try_turn(turn).unwrap().expect("the turn is free");
    let out = run(d, cfg, args);
    let all = text(&out);
    assert_eq!(out.status.code(), Some(5), "{all}");
    (held, all)
}

fn text(o: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout\n{}--- stderr\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn runs(schema: &Schema, source: &str) -> i64 {
    let mut pg = postgres::Client::connect(&url(), postgres::NoTls).unwrap();
    pg.query_one(
        &format!(
            "SELECT count(*) FROM {}.runs WHERE source = $1",
            schema.name()
        ),
        &[&source],
    )
    .unwrap()
    .get(0)
}

#[test]
fn a_hand_fetch_while_another_node_fetches_the_source_skips_it_or_waits_for_it() {
    let Some(schema) = Schema::new() else { return };
    let mock = Gated::default();
    let base = mock.start();
    let d = tempfile::tempdir().unwrap();
    let cfg = config(d.path(), &schema, &base);

    // Node a fetches; its request is held at the provider, so it holds the source's turn.
    let a = node(d.path(), &cfg, &["fetch", "--source", "feodotracker"]);
    assert!(mock.wait_for(1), "node a never asked the provider");
    // A hand fetch on node b skips it, names it, exits 5; so does `run --once`.
    let b = run(d.path(), &cfg, &["fetch", "--source", "feodotracker"]);
    let all = text(&b);
    assert_eq!(b.status.code(), Some(5), "{all}");
    assert!(
        all.contains("feodotracker: skipped: another node sharing the store is running it"),
        "{all}"
    );
    let once = run(d.path(), &cfg, &["run", "--once"]);
    let all = text(&once);
    assert_eq!(once.status.code(), Some(5), "{all}");
    assert!(
        all.contains("skipped (another node sharing the store is running it): feodotracker"),
        "{all}"
    );
    let json = run(d.path(), &cfg, &["fetch", "--json"]);
    assert_eq!(json.status.code(), Some(5), "{}", text(&json));
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert!(v["sources"][0]["skipped"].is_string(), "{v}");
    assert_eq!(mock.requests(), 1, "the provider was asked once");
    mock.set_open(true);
    let a = a.wait_with_output().unwrap();
    assert!(a.status.success(), "{}", text(&a));
    assert_eq!(runs(&schema, "feodotracker"), 1, "one run in the log");

    // With --wait, node b waits for node a's run to end, then fetches itself.
    mock.set_open(false);
    let a = node(d.path(), &cfg, &["fetch", "--source", "feodotracker"]);
    assert!(mock.wait_for(2), "node a never asked the provider again");
    let mut b = node(d.path(), &cfg, &["fetch", "--wait", "2m"]);
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        b.try_wait().unwrap().is_none(),
        "b did not wait: {}",
        text(&b.wait_with_output().unwrap())
    );
    assert_eq!(mock.requests(), 2, "b did not fetch while a held the turn");
    mock.set_open(true);
    let a = a.wait_with_output().unwrap();
    assert!(a.status.success(), "{}", text(&a));
    let b = b.wait_with_output().unwrap();
    assert!(b.status.success(), "{}", text(&b));
    assert_eq!(mock.requests(), 3);
    assert_eq!(runs(&schema, "feodotracker"), 2 + 1);

    // A hand run is not the schedule's: no slot is recorded as done, so the daemons' next
    // slot is fetched as usual.
    let store = PgStore::open(&schema.target()).unwrap();
    let key = outwatch::daemon::tasks::slot_done_key("source/feodotracker");
    assert_eq!(store.state_get(&key).unwrap(), None);
    assert!(
        store.try_turn("source/feodotracker").unwrap().is_some(),
        "every hand run gave its turn back"
    );
}

#[test]
fn an_import_while_another_node_writes_the_source_waits_or_gives_up_with_exit_5() {
    let Some(schema) = Schema::new() else { return };
    let d = tempfile::tempdir().unwrap();
    let cfg = config(d.path(), &schema, "http://127.0.0.1:1");
    let file = fixture_path("cymru/cap_20261122.txt");
    let file = file.to_str().unwrap();
    // Another node (this test's own session) runs the source `cymru`.
    let other = PgStore::open(&schema.target()).unwrap();
    let (turn, all) = skipped_while_held(
        &other,
        "source/cymru",
        d.path(),
        &cfg,
        &["import", "cymru", file],
    );
    assert!(
        all.contains("import cymru: another node sharing the store is writing source `cymru`")
            && all.contains("nothing was imported"),
        "{all}"
    );
    assert_eq!(other.count().unwrap(), 0, "nothing imported");
    assert_eq!(runs(&schema, "import/cymru") + runs(&schema, "cymru"), 0);

    // With --wait, the import waits for the turn and imports once it is free.
    let importer = node(d.path(), &cfg, &["import", "cymru", "--wait", "2m", file]);
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(
        other.count().unwrap(),
        0,
        "imported while the other node wrote"
    );
    drop(turn);
    let out = importer.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert!(other.count().unwrap() > 0);

    // A bounded wait that ends while the other node still writes: exit 5, saying so.
    let before = other.count().unwrap();
    let (turn, all) = skipped_while_held(
        &other,
        "source/cymru",
        d.path(),
        &cfg,
        &["import", "cymru", "--wait", "1s", file],
    );
    assert!(all.contains("(waited 1s)"), "{all}");
    assert_eq!(other.count().unwrap(), before);

    drop(turn);

    // `digest --send` by hand in the digest's turn: not while a daemon sends it.
    let (turn, all) = skipped_while_held(&other, "digest", d.path(), &cfg, &["digest", "--send"]);
    assert!(
        all.contains("another node sharing the store is sending the digest"),
        "{all}"
    );
    drop(turn);
    let out = run(d.path(), &cfg, &["digest", "--send"]);
    assert!(out.status.success(), "{}", text(&out));
}

#[test]
fn run_once_sends_the_digest_in_its_turn() {
    let Some(schema) = Schema::new() else { return };
    let d = tempfile::tempdir().unwrap();
    let cfg = d.path().join("pg.toml");
    std::fs::write(
        &cfg,
        format!(
            "[organisation]\nname = \"Test\"\nprefixes = [\"192.0.2.0/24\"]\n\n\
             {}\n[digest]\nfrom = \"outwatch@example.org\"\nrecipients = [\"noc@example.org\"]\nsend_empty = true\n\n{}",
            schema.store_table("data"),
            crate::support::feeds_off()
        ),
    )
    .unwrap();
    let other = PgStore::open(&schema.target()).unwrap();
    let (turn, all) = skipped_while_held(&other, "digest", d.path(), &cfg, &["run", "--once"]);
    assert!(
        all.contains("digest: skipped: another node sharing the store is sending it"),
        "{all}"
    );
    drop(turn);
    let out = run(d.path(), &cfg, &["run", "--once"]);
    let all = text(&out);
    assert!(out.status.success(), "{all}");
    assert!(all.contains("digest: written to"), "{all}");
}

/// `notify --send` by hand sends in the notifications' turn (`notify`, as the daemons and
/// `run --once` send them): while another node sends, it sends nothing and exits 5; after, it
/// mails the contact once.
#[test]
fn notify_by_hand_sends_in_its_turn() {
    let Some(schema) = Schema::new() else { return };
    let d = tempfile::tempdir().unwrap();
    let smtp = crate::support::smtp::Smtp::start(None);
    let cfg = d.path().join("pg.toml");
    std::fs::write(
        &cfg,
        format!(
            "[organisation]\nname = \"Test\"\nprefixes = [\"192.0.2.0/24\"]\n\n\
             {}\n[smtp]\nhost = \"127.0.0.1\"\nport = {}\ntls = \"none\"\n\
             timeout = \"10s\"\n\n[notify]\nfrom = \"abuse@isp.example\"\npace = \"0s\"\n\n\
             [[contacts]]\nname = \"Customer\"\nemails = [\"noc@customer.example\"]\n\
             prefixes = [\"192.0.2.0/24\"]\n\n[[contacts]]\nname = \"Lab\"\n\
             emails = [\"soc@lab.example\"]\nprefixes = [\"192.0.2.40/29\"]\n\n{}",
            schema.store_table("data"),
            smtp.port,
            crate::support::feeds_off()
        ),
    )
    .unwrap();
    let file = fixture_path("cymru/cap_20261122.txt");
    let out = run(d.path(), &cfg, &["import", "cymru", file.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));

    let other = PgStore::open(&schema.target()).unwrap();
    let (turn, all) = skipped_while_held(&other, "notify", d.path(), &cfg, &["notify", "--send"]);
    assert!(
        all.contains("another node sharing the store is sending the notifications"),
        "{all}"
    );
    assert!(smtp.received().is_empty(), "mailed while another node sent");

    drop(turn);
    let out = run(d.path(), &cfg, &["notify", "--send"]);
    assert!(out.status.success(), "{}", text(&out));
    let mails = smtp.take();
    assert_eq!(mails.len(), 1, "{}", text(&out));
    assert_eq!(mails[0].to, ["noc@customer.example"]);
    // Sent once: a second run finds nothing due.
    let out = run(d.path(), &cfg, &["notify", "--send"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(smtp.received().is_empty());

    // `run --once` sends the notifications in the same turn: skipped (exit 5) while another
    // node holds it, sent after the other node let go with `--wait` (new findings of the
    // second contact, who has had no mail yet).
    let file = fixture_path("cymru/infected_20261121.txt");
    let out = run(d.path(), &cfg, &["import", "cymru", file.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    let (turn, all) = skipped_while_held(&other, "notify", d.path(), &cfg, &["run", "--once"]);
    assert!(all.contains("notify"), "{all}");
    assert!(smtp.received().is_empty(), "mailed while another node sent");
    let once = node(d.path(), &cfg, &["run", "--once", "--wait", "2m"]);
    std::thread::sleep(Duration::from_secs(2));
    assert!(smtp.received().is_empty(), "mailed while another node sent");
    drop(turn);
    let out = once.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let mails = smtp.take();
    assert_eq!(mails.len(), 1, "{}", text(&out));
    assert_eq!(mails[0].to, ["soc@lab.example"]);
}
