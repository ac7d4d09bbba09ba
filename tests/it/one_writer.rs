//! One writer (issue #22 item 5), with the real binary: while the daemon runs, write commands
//! hand their store work to it and print what they print alone; while a command holds the
//! store (a `fetch`), reads are answered on its socket and a write waits for it.
//! No fixed sleeps: every wait is for a condition, bounded.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command as StdCommand, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::Value;

use crate::support::{feeds_off, feeds_off_but, fixture_path};

fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_outwatch"))
}

const ORG: &str = "[organisation]\nname = \"Test\"\nprefixes = [\"192.0.2.0/24\", \"198.51.100.0/24\"]\n\n[store]\npath = \"data\"\n\n[flows]\nlong_connection = \"1h\"\n\n";

fn write_config(dir: &Path, extra: &str) -> PathBuf {
    let p = dir.join("outwatch.toml");
    std::fs::write(&p, format!("{ORG}{extra}")).unwrap();
    p
}

fn command(cfg: &Path, args: &[&str]) -> StdCommand {
    let mut c = StdCommand::new(bin());
    c.arg("--config")
        .arg(cfg)
        .args(args)
        .env_remove("OUTWATCH_DATA_DIR")
        .env_remove("OUTWATCH_STORE_WAIT")
        .env_remove("RUST_LOG")
        .env_remove("COLUMNS");
    c
}

fn outwatch(cfg: &Path, args: &[&str]) -> Output {
    command(cfg, args).output().unwrap()
}

fn ok(o: &Output) -> &Output {
    assert!(
        o.status.success(),
        "exit {:?}\nstdout: {}\nstderr: {}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    o
}

fn json_of(o: &Output) -> Value {
    serde_json::from_slice(&ok(o).stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&o.stdout)))
}

/// `status --json` (it exits 1 while a feed is not healthy, e.g. flows without a C2 list).
fn status_json(cfg: &Path) -> Value {
    let o = outwatch(cfg, &["status", "--json"]);
    serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&o.stderr)))
}

/// A child process stopped (SIGTERM, then killed) when the test ends, whatever happened.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        if self.0.try_wait().ok().flatten().is_none() {
            unsafe { libc::kill(self.0.id() as libc::pid_t, libc::SIGTERM) };
            for _ in 0..100 {
                if self.0.try_wait().ok().flatten().is_some() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// Starts `outwatch run` and waits (bounded) until `status` says it answers on its socket.
fn start_daemon(cfg: &Path) -> Running {
    let child = command(cfg, &["run"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut daemon = Running(child);
    for _ in 0..600 {
        let o = outwatch(cfg, &["status", "--json"]);
        let v: Value = serde_json::from_slice(&o.stdout).unwrap_or_default();
        if v["daemon"]["running"] == true {
            return daemon;
        }
        assert!(
            daemon.0.try_wait().unwrap().is_none(),
            "the daemon exited early"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("the daemon never answered on its socket");
}

fn stop(mut p: Running) {
    unsafe { libc::kill(p.0.id() as libc::pid_t, libc::SIGTERM) };
    let st = p.0.wait().unwrap();
    assert!(st.success(), "exit: {st:?}");
}

fn findings(cfg: &Path, query: &str) -> Vec<Value> {
    json_of(&outwatch(cfg, &["lookup", query, "--json"]))["findings"]
        .as_array()
        .unwrap()
        .clone()
}

/// Runs the same write commands on a store the daemon holds and on a store of their own, and
/// compares what they print and what ends up in the store.
#[test]
fn import_flows_and_restore_succeed_while_the_daemon_runs() {
    let report = fixture_path("shadowserver/2026-11-20-scan_rdp-example-asn.csv");
    let conn = fixture_path("flows/conn-two-days.log");
    let report = report.to_str().unwrap();
    let conn = conn.to_str().unwrap();
    let cmds: [Vec<&str>; 4] = [
        vec!["import", "shadowserver", report, "--json"],
        vec!["import", "shadowserver", report],
        vec!["flows", conn, "--json"],
        vec!["flows", conn],
    ];

    // Alone: the reference output.
    let alone = tempfile::tempdir().unwrap();
    let alone_cfg = write_config(alone.path(), &feeds_off());
    let reference: Vec<Output> = cmds.iter().map(|c| outwatch(&alone_cfg, c)).collect();

    // Beside the daemon.
    let d = tempfile::tempdir().unwrap();
    // A digest without [smtp] is written as an .eml; its schedule never comes during the test.
    let digest = "[digest]\nfrom = \"outwatch@example.org\"\nrecipients = [\"noc@example.org\"]\n\
                  schedule = \"0 0 0 1 1 *\"\n\n";
    let cfg = write_config(d.path(), &format!("{digest}{}", feeds_off()));
    let daemon = start_daemon(&cfg);
    let pid = daemon.0.id();
    for (c, want) in cmds.iter().zip(&reference) {
        let got = outwatch(&cfg, c);
        ok(&got);
        assert_eq!(got.status.code(), want.status.code(), "{c:?}");
        assert_eq!(
            String::from_utf8_lossy(&got.stdout),
            String::from_utf8_lossy(&want.stdout),
            "{c:?}"
        );
    }
    // Their findings are in the daemon's store, read through it.
    let rdp = findings(&cfg, "192.0.2.33");
    assert_eq!(rdp.len(), 1, "{rdp:?}");
    assert_eq!(rdp[0]["source"], "shadowserver");
    assert!(!findings(&cfg, "10.1.0.7").is_empty());
    // The run log has the import and the flows run, as without the daemon.
    let status = status_json(&cfg);
    assert_eq!(status["daemon"]["pid"], pid);
    let names: Vec<&str> = status["sources"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["name"].as_str())
        .collect();
    assert!(
        names.contains(&"import/shadowserver") && names.contains(&"flows"),
        "{names:?}"
    );

    // The digest sent beside the daemon says what it says alone, and keeps its state (what
    // it announced) in the daemon's store: the next one has nothing new.
    let alone_digest = write_config(alone.path(), &format!("{digest}{}", feeds_off()));
    let lines = |o: &Output| -> Vec<String> {
        String::from_utf8_lossy(&ok(o).stdout)
            .lines()
            .filter(|l| !l.starts_with("written to "))
            .map(str::to_string)
            .collect()
    };
    let want = lines(&outwatch(&alone_digest, &["digest", "--send"]));
    let sent = outwatch(&cfg, &["digest", "--send"]);
    assert_eq!(lines(&sent), want);
    assert!(want[0].starts_with("digest: 10 new"), "{want:?}");
    let again = outwatch(&cfg, &["digest", "--send"]);
    assert!(
        lines(&again)[0].starts_with("digest: 0 new"),
        "{:?}",
        lines(&again)
    );

    // An export restored beside the daemon (into its store) writes the findings as given.
    let export = d.path().join("backup.jsonl");
    ok(&outwatch(
        &cfg,
        &["export", "--jsonl", "-o", export.to_str().unwrap()],
    ));
    let restored = outwatch(&cfg, &["restore", export.to_str().unwrap()]);
    let count = status_json(&cfg)["store"]["findings"].clone();
    assert!(
        String::from_utf8_lossy(&ok(&restored).stdout)
            .contains(&format!("restored {count} findings")),
        "{}",
        String::from_utf8_lossy(&restored.stdout)
    );

    // A file the command cannot read fails as it does alone (the import's exit code).
    let missing = d.path().join("nope.csv");
    let m = missing.to_str().unwrap();
    let beside = outwatch(&cfg, &["import", "shadowserver", m]);
    let alone_out = outwatch(&alone_cfg, &["import", "shadowserver", m]);
    assert_eq!(beside.status.code(), alone_out.status.code());
    assert_ne!(beside.status.code(), Some(0));

    stop(daemon);
    // What the daemon stored is durable in the store itself.
    assert_eq!(findings(&cfg, "192.0.2.33").len(), 1);
}

/// A loopback server whose one reply waits until the test releases it: a `fetch` that holds
/// the store for as long as the test needs.
struct HeldServer {
    url: String,
    arrived: mpsc::Receiver<()>,
    release: mpsc::Sender<()>,
}

fn held_server(body: Vec<u8>) -> HeldServer {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!(
        "http://{}/downloads/ipblocklist.csv",
        listener.local_addr().unwrap()
    );
    let (arrived_tx, arrived) = mpsc::channel();
    let (release, release_rx) = mpsc::channel::<()>();
    std::thread::spawn(move || {
        let Ok((mut s, _)) = listener.accept() else {
            return;
        };
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") && s.read(&mut byte).unwrap_or(0) == 1 {
            head.push(byte[0]);
        }
        let _ = arrived_tx.send(());
        let _ = release_rx.recv_timeout(Duration::from_secs(120));
        let _ = write!(
            s,
            "HTTP/1.1 200 OK\r\nContent-Type: text/csv\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        );
        let _ = s.write_all(&body);
    });
    HeldServer {
        url,
        arrived,
        release,
    }
}

#[test]
fn reads_are_answered_and_writes_wait_while_a_fetch_holds_the_store() {
    let body = std::fs::read(fixture_path("lists/feodotracker/ipblocklist.csv")).unwrap();
    let server = held_server(body);
    let d = tempfile::tempdir().unwrap();
    let cfg = write_config(
        d.path(),
        &format!(
            "{}[sources.feodotracker]\nurl = \"{}\"\n",
            feeds_off_but(&["feodotracker"]),
            server.url
        ),
    );
    // A store to read from before the fetch.
    let report = fixture_path("shadowserver/2026-11-20-scan_rdp-example-asn.csv");
    ok(&outwatch(
        &cfg,
        &["import", "shadowserver", report.to_str().unwrap()],
    ));

    let fetch = Running(
        command(&cfg, &["fetch"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    // The fetch has the store open once its request arrives.
    server
        .arrived
        .recv_timeout(Duration::from_secs(60))
        .expect("the fetch never asked the server");

    // Reads meanwhile: answered through the fetch's socket, not refused.
    assert_eq!(findings(&cfg, "192.0.2.33").len(), 1);
    // (`status` exits 1 while a source has never succeeded: its JSON is what counts.)
    let o = outwatch(&cfg, &["status", "--json"]);
    let status: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(status["daemon"]["running"], false, "{status}");
    assert_eq!(status["store"]["findings"], 2, "{status}");
    assert_eq!(status["store"]["held_by"]["command"], "fetch", "{status}");
    let o = outwatch(&cfg, &["status"]);
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.contains("held by `outwatch fetch`"), "{text}");
    // `scope` reads the cached scope meanwhile (it does not wait for the fetch).
    let scope = json_of(&outwatch(&cfg, &["scope", "--json"]));
    assert_eq!(scope["all_prefixes"][0], "192.0.2.0/24", "{scope}");

    // A write meanwhile waits for the fetch, saying so on stderr.
    let conn = fixture_path("flows/conn-two-days.log");
    let mut flows = Running(
        command(&cfg, &["flows", conn.to_str().unwrap(), "--json"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let stderr = flows.0.stderr.take().unwrap();
    let (said_tx, said) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut all = String::new();
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if line.contains("waiting for `outwatch fetch`") {
                let _ = said_tx.send(());
            }
            all.push_str(&line);
            all.push('\n');
        }
        all
    });
    let waited = said.recv_timeout(Duration::from_secs(60));
    // Let the fetch finish: then the write goes ahead.
    server.release.send(()).unwrap();
    let fetched = {
        let mut f = fetch;
        let st = f.0.wait().unwrap();
        let mut out = String::new();
        f.0.stdout.take().unwrap().read_to_string(&mut out).unwrap();
        (st, out)
    };
    let st = flows.0.wait().unwrap();
    let err = reader.join().unwrap();
    assert!(waited.is_ok(), "the write did not say it waits: {err}");
    assert!(fetched.0.success(), "fetch: {}", fetched.1);
    assert!(st.success(), "flows: {err}");
    let mut out = String::new();
    flows
        .0
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    let j: Value = serde_json::from_str(&out).unwrap();
    assert!(j["findings"].as_u64().unwrap() > 0, "{j}");

    // Both wrote: the fetch's C2 in our range and the flows findings.
    assert_eq!(findings(&cfg, "198.51.100.7").len(), 1);
    assert!(!findings(&cfg, "10.1.0.7").is_empty());
}

/// A write that waits gives up after `$OUTWATCH_STORE_WAIT` seconds with a clear error (exit 4)
/// naming what holds the store.
#[test]
fn a_write_waits_for_a_held_store_only_so_long() {
    let body = std::fs::read(fixture_path("lists/feodotracker/ipblocklist.csv")).unwrap();
    let server = held_server(body);
    let d = tempfile::tempdir().unwrap();
    let cfg = write_config(
        d.path(),
        &format!(
            "{}[sources.feodotracker]\nurl = \"{}\"\n",
            feeds_off_but(&["feodotracker"]),
            server.url
        ),
    );
    let fetch = Running(
        command(&cfg, &["fetch"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    server
        .arrived
        .recv_timeout(Duration::from_secs(60))
        .expect("the fetch never asked the server");
    let report = fixture_path("shadowserver/2026-11-20-scan_rdp-example-asn.csv");
    let o = command(&cfg, &["import", "shadowserver", report.to_str().unwrap()])
        .env("OUTWATCH_STORE_WAIT", "1")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(4), "{err}");
    assert!(
        err.contains("outwatch fetch") && err.contains("OUTWATCH_STORE_WAIT"),
        "{err}"
    );
    server.release.send(()).unwrap();
    drop(fetch);
}

// ------------------------------------------------------------- the socket's limits, in process

mod limits {
    use std::sync::Arc;
    use std::time::Duration;

    use chrono::Utc;
    use outwatch::daemon::{RemoteStore, protocol, socket};
    use outwatch::finding::{Classification, Finding, Severity};
    use outwatch::store::{Findings, ReadError, Reading, Store, StoreError, Unit, Write};

    /// A sled store served with `limits` as the daemon serves it, and a client of it.
    struct Served {
        remote: RemoteStore,
        _keep: (tokio::sync::watch::Sender<bool>, tokio::runtime::Runtime),
        _dir: tempfile::TempDir,
    }

    fn serve(limits: socket::Limits) -> Served {
        let dir = tempfile::tempdir().unwrap();
        let sled: Arc<dyn Store> = Arc::new(outwatch::store::open(dir.path()).unwrap());
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let (stop, rx) = tokio::sync::watch::channel(false);
        let (listener, _) = {
            let _in = rt.enter();
            socket::bind(dir.path()).unwrap()
        };
        let info: socket::InfoFn = Arc::new(|| {
            serde_json::to_value(protocol::Hello {
                pid: std::process::id(),
                writes: true,
                holder: "run".into(),
                ..Default::default()
            })
            .unwrap()
        });
        rt.spawn(socket::serve_with(
            listener,
            sled,
            info,
            rx,
            limits,
            socket::Access::ReadWrite,
        ));
        let remote = RemoteStore::connect(dir.path()).expect("the socket answers");
        Served {
            remote,
            _keep: (stop, rt),
            _dir: dir,
        }
    }

    fn short(data_stall: Duration) -> socket::Limits {
        socket::Limits {
            max_connections: 4,
            first_request: Duration::from_millis(300),
            idle: Duration::from_millis(300),
            session: Duration::from_millis(600),
            write_stall: Duration::from_millis(300),
            data_stall,
        }
    }

    fn finding(i: u8) -> Finding {
        let mut f = Finding::new(
            "shadowserver",
            "scan_rdp",
            Classification::new("", "vulnerable-system", "open-rdp"),
            Severity::High,
        );
        f.ip = Some(format!("192.0.2.{i}").parse().unwrap());
        f.seal();
        f
    }

    /// A unit whose reader hands a finding every `pause`, `n` of them.
    fn slow_unit<'a>(n: u8, pause: Duration) -> Unit<'a> {
        Unit {
            now: Utc::now(),
            write: Write::Observe,
            findings: Findings::Streamed(
                Box::new(move |w| {
                    for i in 1..=n {
                        std::thread::sleep(pause);
                        w.finding(&finding(i))?;
                    }
                    Ok::<(), ReadError>(())
                }),
                Reading::WholeOrNothing,
            ),
            state: Vec::new(),
            run: None,
        }
    }

    /// A write that keeps sending is never cut by the idle or session-age deadlines, though it
    /// lasts several times longer than both.
    #[test]
    fn a_long_write_that_progresses_is_not_cut() {
        let s = serve(short(Duration::from_secs(30)));
        let stats = s
            .remote
            .ingest_unit(slow_unit(12, Duration::from_millis(150)))
            .unwrap();
        assert_eq!(stats.new, 12);
        assert_eq!(s.remote.count().unwrap(), 12);
    }

    /// A write whose command stops sending is abandoned after the data-stall limit, and nothing
    /// of its whole-or-nothing unit is stored.
    #[test]
    fn a_write_that_stops_sending_is_abandoned_and_stores_nothing() {
        let s = serve(short(Duration::from_millis(200)));
        let e = s
            .remote
            .ingest_unit(slow_unit(3, Duration::from_millis(1500)))
            .unwrap_err();
        assert!(
            matches!(e, StoreError::Unread(_) | StoreError::Remote(_)),
            "{e}"
        );
        assert_eq!(s.remote.count().unwrap(), 0);
    }

    /// A reader that fails by itself aborts the unit in the daemon: nothing is stored and the
    /// command sees its own failure.
    #[test]
    fn a_failed_reader_stores_nothing_and_is_told_as_itself() {
        let s = serve(socket::Limits::default());
        let unit = Unit {
            now: Utc::now(),
            write: Write::Observe,
            findings: Findings::Streamed(
                Box::new(|w| {
                    w.finding(&finding(1))?;
                    Err(ReadError::Unreadable("the report was cut off".into()))
                }),
                Reading::WholeOrNothing,
            ),
            state: vec![("test/key".into(), Some(b"v".to_vec()))],
            run: None,
        };
        let e = s.remote.ingest_unit(unit).unwrap_err();
        assert!(
            matches!(&e, StoreError::Unread(ReadError::Unreadable(m)) if m.contains("cut off")),
            "{e:?}"
        );
        assert_eq!(s.remote.count().unwrap(), 0);
        assert_eq!(s.remote.state_get("test/key").unwrap(), None);
    }
}

/// A daemon from before the writes (its `hello` has revision 2): a write command says it is
/// older and how to proceed (exit 4), instead of waiting for it.
#[test]
fn an_older_daemon_that_takes_no_writes_is_named() {
    let d = tempfile::tempdir().unwrap();
    let cfg = write_config(d.path(), &feeds_off());
    let data = d.path().join("data");
    // It holds the store...
    let _held = outwatch::store::open(&data).unwrap();
    // ...and answers `hello` as a daemon of revision 2 did.
    let listener = std::os::unix::net::UnixListener::bind(data.join("outwatch.sock")).unwrap();
    std::thread::spawn(move || {
        for c in listener.incoming() {
            let Ok(c) = c else { return };
            let mut w = c.try_clone().unwrap();
            for line in BufReader::new(c).lines() {
                let Ok(line) = line else { break };
                let reply = if line.contains("\"hello\"") {
                    "{\"done\":{\"version\":1,\"revision\":2,\"pid\":4242}}\n".to_string()
                } else {
                    format!("{{\"error\":{{\"message\":\"unexpected {line}\"}}}}\n")
                };
                if w.write_all(reply.as_bytes()).is_err() {
                    break;
                }
            }
        }
    });
    let report = fixture_path("shadowserver/2026-11-20-scan_rdp-example-asn.csv");
    let o = outwatch(&cfg, &["import", "shadowserver", report.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(4), "{err}");
    assert!(
        err.contains("4242") && err.contains("older") && err.contains("restart"),
        "{err}"
    );
}

/// `outwatch run` started while a `fetch` holds the store waits for it, saying so, and then
/// starts (no exit 4 for a cron job that happened to run).
#[test]
fn the_daemon_waits_for_a_fetch_to_finish_before_it_starts() {
    let body = std::fs::read(fixture_path("lists/feodotracker/ipblocklist.csv")).unwrap();
    let server = held_server(body);
    let d = tempfile::tempdir().unwrap();
    let cfg = write_config(
        d.path(),
        &format!(
            "{}[sources.feodotracker]\nurl = \"{}\"\nschedule = \"0 0 0 1 1 *\"\n",
            feeds_off_but(&["feodotracker"]),
            server.url
        ),
    );
    let fetch = Running(
        command(&cfg, &["fetch"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    server
        .arrived
        .recv_timeout(Duration::from_secs(60))
        .expect("the fetch never asked the server");
    let mut daemon = Running(
        command(&cfg, &["run"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let stderr = daemon.0.stderr.take().unwrap();
    let (said_tx, said) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if line.contains("waiting for `outwatch fetch`") {
                let _ = said_tx.send(());
            }
        }
    });
    let waited = said.recv_timeout(Duration::from_secs(60));
    server.release.send(()).unwrap();
    assert!(waited.is_ok(), "the daemon did not say it waits");
    let mut fetch = fetch;
    assert!(fetch.0.wait().unwrap().success());
    // Then it starts: its socket answers as the daemon's.
    let mut running = false;
    for _ in 0..600 {
        if status_json(&cfg)["daemon"]["running"] == true {
            running = true;
            break;
        }
        assert!(
            daemon.0.try_wait().unwrap().is_none(),
            "the daemon exited instead of waiting"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(running, "the daemon never answered");
    stop(daemon);
}
