//! Two `outwatch run` nodes on one PostgreSQL schema for a given time (issue #25, "two nodes
//! running the same sources for an hour of schedules: every unit fetched exactly once"): a plain
//! binary (`harness = false`).
//!
//! `cargo bench --bench pg_nodes_soak -- [--minutes N] [--feeds N] [--bin PATH] [--pg CONNINFO]
//! [--out DIR]` (or build it with `cargo build --bench pg_nodes_soak` and run the binary under
//! `target/debug/deps/` with the debug `outwatch`).
//! - `--feeds N` (default 6) list feeds of its own (`[feeds] dir`), each fetched every minute at
//!   a second of its own (`S * * * * *`), each from a mock provider on loopback that counts the
//!   requests; every node has its own mock (so the count says which node fetched), both mocks
//!   share the count. A list is different every minute (some entries come, some stay), so every
//!   run writes findings.
//! - The digest every minute at second 30 (`send_empty`), to an SMTP capture on loopback that
//!   notes when each mail arrived.
//! - After `--minutes N` (default 60) and a grace for the last slot, both nodes get SIGTERM and
//!   the program checks every slot whose time lies in the counted window (from 40 s after the
//!   start, past the start-up catch-up runs, to the end): one request per feed and slot (a slot
//!   is the minute from the feed's second on), one mail per digest slot, one run-log entry per
//!   request. It prints the figures and exits 1 when a unit was fetched twice or not at all or a
//!   digest slot got other than one mail.
//!
//! The binary is copied first (a rebuild while it runs does not change the nodes). `--pg` is the
//! server (default `$OUTWATCH_TEST_PG`, else `host=127.0.0.1 port=5432 user=postgres
//! dbname=test`); the run makes a schema `soak_<random>` and drops it. `--out DIR` (default
//! `target/pg-nodes-soak`) keeps the nodes' configs and logs. Results: docs/scale-out.md.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Timelike, Utc};
use mailin_embedded::{Handler, Response, Server, SslConfig, response};

/// Seconds from the start before a slot is counted: the catch-up runs at start-up (up to 30 s
/// of jitter) stand for the slot before the start and would otherwise land in a later one.
const SETTLE: i64 = 40;
/// Seconds the nodes run past the end, for the last counted slot's runs.
const GRACE: u64 = 25;
/// The digest's second in the minute.
const DIGEST_SECOND: u32 = 30;

/// One request: the feed, the node whose mock answered, when.
#[derive(Clone, Debug)]
struct Hit {
    feed: usize,
    node: usize,
    at: DateTime<Utc>,
}

type Hits = Arc<Mutex<Vec<Hit>>>;

/// The second in the minute feed `i` is fetched at.
fn feed_second(i: usize) -> u32 {
    ((i * 7 + 3) % 60) as u32
}

/// Feed `i`'s list for the minute `minute`: ten entries always there, ten of this minute.
fn list(i: usize, minute: i64) -> String {
    let mut s = String::from(
        "# soak list\n\"first_seen_utc\",\"dst_ip\",\"dst_port\",\"c2_status\",\"malware\"\n",
    );
    let rot = (minute.rem_euclid(250)) as u8 + 1;
    let mut n = 0;
    for (c, d) in (1..=10u8)
        .map(|d| (0u8, d))
        .chain((1..=10u8).map(|d| (rot, d)))
    {
        s.push_str(&format!(
            "\"2026-11-08 19:20:49\",\"10.{}.{c}.{d}\",\"443\",\"online\",\"Soak\"\n",
            i + 1
        ));
        n += 1;
    }
    s.push_str(&format!("# END {n} entries\n"));
    s
}

/// A mock provider for node `node`: `GET /feed/<i>.csv` answers feed i's list of the minute and
/// is counted; anything else is a 404.
fn mock(node: usize, hits: Hits) -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind the mock");
    let port = l.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        for conn in l.incoming().flatten() {
            let hits = hits.clone();
            std::thread::spawn(move || {
                let _ = serve(conn, node, &hits);
            });
        }
    });
    port
}

/// Answers the requests of one connection.
fn serve(conn: TcpStream, node: usize, hits: &Hits) -> std::io::Result<()> {
    let mut reader = BufReader::new(conn.try_clone()?);
    let mut out = conn;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            return Ok(());
        }
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h)? == 0 || h == "\r\n" || h == "\n" {
                break;
            }
        }
        let now = Utc::now();
        let path = line.split_whitespace().nth(1).unwrap_or("");
        let feed = path
            .strip_prefix("/feed/")
            .and_then(|p| p.strip_suffix(".csv"))
            .and_then(|n| n.parse::<usize>().ok());
        let (status, body) = match feed {
            Some(i) => {
                hits.lock().unwrap().push(Hit {
                    feed: i,
                    node,
                    at: now,
                });
                ("200 OK", list(i, now.timestamp().div_euclid(60)))
            }
            None => ("404 Not Found", String::new()),
        };
        write!(
            out,
            "HTTP/1.1 {status}\r\ncontent-type: text/csv\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        )?;
        out.flush()?;
    }
}

/// When each mail arrived.
#[derive(Clone)]
struct Arrivals(Arc<Mutex<Vec<DateTime<Utc>>>>);

impl Handler for Arrivals {
    fn data_end(&mut self) -> Response {
        self.0.lock().unwrap().push(Utc::now());
        response::OK
    }
}

fn smtp() -> (u16, Arc<Mutex<Vec<DateTime<Utc>>>>) {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind the SMTP capture");
    let port = l.local_addr().expect("addr").port();
    let got = Arc::new(Mutex::new(Vec::new()));
    let mut server = Server::new(Arrivals(got.clone()));
    server
        .with_name("localhost")
        .with_ssl(SslConfig::None)
        .expect("no TLS")
        .with_tcp_listener(l);
    std::thread::spawn(move || {
        let _ = server.serve();
    });
    (port, got)
}

/// Writes node `name`'s config and feed files under `dir`.
fn node_config(dir: &Path, feeds: usize, mock: u16, smtp: u16, pg: &str, schema: &str) -> PathBuf {
    let fd = dir.join("feeds.d");
    std::fs::create_dir_all(&fd).expect("feeds dir");
    for i in 0..feeds {
        std::fs::write(
            fd.join(format!("soak_{i}.toml")),
            format!(
                "name = \"soak_{i}\"\nprovider = \"soak\"\ntitle = \"soak list {i}\"\n\
                 documentation = \"http://127.0.0.1/\"\nfeed = \"soak\"\n\
                 url = \"http://127.0.0.1:{mock}/feed/{i}.csv\"\nenabled_by_default = true\n\
                 schedule = \"{} * * * * *\"\nresolve_after = \"2d\"\nseverity = \"high\"\n\n\
                 [format]\ntype = \"csv\"\ncomment = \"#\"\nheader = \"row\"\n\
                 trailer = \"# END {{n}} entries\"\ntrailer_required = true\n\n\
                 [fields]\nip = \"dst_ip\"\nport = \"dst_port\"\ntime = \"first_seen_utc\"\n\
                 malware = \"malware\"\n\n[extra]\nstatus = \"c2_status\"\n\n\
                 [classification]\ntaxonomy = \"malicious-code\"\ntype = \"c2-server\"\n\
                 identifier = \"soak\"\n",
                feed_second(i)
            ),
        )
        .expect("feed file");
    }
    let off: String =
        outwatch::sources::lists::known_feed_names(&outwatch::config::Config::default())
            .iter()
            .map(|n| format!("[sources.{n}]\nenabled = false\n"))
            .collect();
    let cfg = dir.join("outwatch.toml");
    std::fs::write(
        &cfg,
        format!(
            "[organisation]\nname = \"Soak\"\nprefixes = [\"10.0.0.0/8\"]\n\n\
             [feeds]\ndir = \"feeds.d\"\n\n\
             [store]\npath = \"{}\"\nbackend = \"postgres\"\nurl = \"{}\"\nschema = \"{schema}\"\n\n\
             [digest]\nschedule = \"{DIGEST_SECOND} * * * * *\"\nfrom = \"outwatch@example.org\"\n\
             recipients = [\"noc@example.org\"]\nsend_empty = true\n\n\
             [smtp]\nhost = \"127.0.0.1\"\nport = {smtp}\ntls = \"none\"\ntimeout = \"10s\"\n\n{off}",
            dir.join("data").display(),
            pg.replace('\\', "\\\\").replace('"', "\\\"")
        ),
    )
    .expect("config");
    cfg
}

fn start_node(bin: &Path, dir: &Path, cfg: &Path) -> Child {
    Command::new(bin)
        .current_dir(dir)
        .env_remove("OUTWATCH_CONFIG")
        .env_remove("OUTWATCH_DATA_DIR")
        .env("RUST_LOG", "outwatch=info")
        .arg("--config")
        .arg(cfg)
        .arg("run")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("log")).expect("log file"))
        .spawn()
        .expect("start a node")
}

fn stop(mut c: Child) -> bool {
    // SAFETY: signals our own child.
    unsafe { libc::kill(c.id() as libc::pid_t, libc::SIGTERM) };
    let end = Instant::now() + Duration::from_secs(30);
    while c.try_wait().ok().flatten().is_none() {
        if Instant::now() > end {
            let _ = c.kill();
            let _ = c.wait();
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    true
}

/// The slot (its minute since the epoch) of something done at `at` on a schedule at `second`.
fn slot_of(at: DateTime<Utc>, second: u32) -> i64 {
    (at.timestamp() - i64::from(second)).div_euclid(60)
}

struct Args {
    minutes: u64,
    feeds: usize,
    bin: PathBuf,
    pg: String,
    out: PathBuf,
}

fn args() -> Args {
    let mut a = Args {
        minutes: 60,
        feeds: 6,
        bin: PathBuf::from(env!("CARGO_BIN_EXE_outwatch")),
        pg: std::env::var("OUTWATCH_TEST_PG")
            .unwrap_or_else(|_| "host=127.0.0.1 port=5432 user=postgres dbname=test".into()),
        out: PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/pg-nodes-soak"),
    };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let mut v = || it.next().unwrap_or_else(|| panic!("{k} needs a value"));
        match k.as_str() {
            "--minutes" => a.minutes = v().parse().expect("--minutes N"),
            "--feeds" => a.feeds = v().parse().expect("--feeds N"),
            "--bin" => a.bin = v().into(),
            "--pg" => a.pg = v(),
            "--out" => a.out = v().into(),
            "--bench" => {}
            other => panic!("unknown argument {other}"),
        }
    }
    a
}

fn main() {
    let a = args();
    let _ = std::fs::remove_dir_all(&a.out);
    std::fs::create_dir_all(&a.out).expect("out dir");
    let bin = a.out.join("outwatch");
    std::fs::copy(&a.bin, &bin).expect("copy the binary");
    let schema = format!("soak_{:08x}", rand::random::<u32>());
    let mut pg = postgres::Client::connect(&a.pg, postgres::NoTls).expect("the server");
    pg.batch_execute(&format!("CREATE SCHEMA {schema}"))
        .expect("create schema");

    let hits: Hits = Arc::default();
    let (smtp_port, mails) = smtp();
    let mut nodes = Vec::new();
    for n in 0..2 {
        let dir = a.out.join(format!("node{n}"));
        std::fs::create_dir_all(&dir).expect("node dir");
        let port = mock(n, hits.clone());
        let cfg = node_config(&dir, a.feeds, port, smtp_port, &a.pg, &schema);
        nodes.push((dir.clone(), start_node(&bin, &dir, &cfg)));
    }
    let started = Utc::now();
    let clock = Instant::now();
    eprintln!(
        "soak: 2 nodes, {} feeds every minute, digest every minute, {} min, schema {schema}, \
         logs in {}",
        a.feeds,
        a.minutes,
        a.out.display()
    );
    let end = started + chrono::Duration::seconds(a.minutes as i64 * 60);
    while Utc::now() < end {
        std::thread::sleep(Duration::from_secs(5));
        for (dir, c) in &mut nodes {
            if let Ok(Some(st)) = c.try_wait() {
                panic!("node {} stopped: {st}", dir.display());
            }
        }
    }
    std::thread::sleep(Duration::from_secs(GRACE));
    let stopped: Vec<bool> = nodes.into_iter().map(|(_, c)| stop(c)).collect();
    let ran = clock.elapsed();

    let first = started + chrono::Duration::seconds(SETTLE);
    let counted = |second: u32| {
        // Slots whose time lies in [first, end).
        let lo = slot_of(first, second) + i64::from(slot_at(first, second) < first);
        let hi = slot_of(end, second) - i64::from(slot_at(end, second) >= end);
        lo..=hi
    };
    let hits = hits.lock().unwrap().clone();
    let mut per: BTreeMap<(usize, i64), Vec<&Hit>> = BTreeMap::new();
    for h in &hits {
        per.entry((h.feed, slot_of(h.at, feed_second(h.feed))))
            .or_default()
            .push(h);
    }
    let (mut units, mut fetches, mut dups, mut missed, mut by_node, mut late) =
        (0, 0, 0, 0, [0usize; 2], 0i64);
    for f in 0..a.feeds {
        for s in counted(feed_second(f)) {
            units += 1;
            let got = per.get(&(f, s)).map_or(&[][..], |v| &v[..]);
            fetches += got.len();
            for h in got {
                by_node[h.node] += 1;
                late = late.max((h.at - slot_at_index(s, feed_second(f))).num_milliseconds());
            }
            match got.len() {
                1 => {}
                0 => {
                    missed += 1;
                    eprintln!(
                        "MISSED: feed soak_{f}, slot {}",
                        slot_at_index(s, feed_second(f))
                    );
                }
                n => {
                    dups += 1;
                    eprintln!(
                        "DUPLICATE: feed soak_{f}, slot {}: {n} fetches {got:?}",
                        slot_at_index(s, feed_second(f))
                    );
                }
            }
        }
    }
    let mails = mails.lock().unwrap().clone();
    let mut digest_slots = 0;
    let mut digest_bad = 0;
    let mut digests = 0;
    for s in counted(DIGEST_SECOND) {
        digest_slots += 1;
        let n = mails
            .iter()
            .filter(|m| slot_of(**m, DIGEST_SECOND) == s)
            .count();
        digests += n;
        if n != 1 {
            digest_bad += 1;
            eprintln!(
                "DIGEST: slot {}: {n} mails",
                slot_at_index(s, DIGEST_SECOND)
            );
        }
    }
    // The run log: one entry per request (of the whole run, catch-ups included).
    let runs: i64 = pg
        .query_one(
            &format!("SELECT count(*) FROM {schema}.runs WHERE source LIKE 'soak\\_%'"),
            &[],
        )
        .map(|r| r.get(0))
        .unwrap_or(-1);
    let logs: Vec<String> = (0..2)
        .map(|n| std::fs::read_to_string(a.out.join(format!("node{n}/log"))).unwrap_or_default())
        .collect();
    let errors = logs
        .iter()
        .map(|l| l.lines().filter(|l| l.contains("ERROR")).count())
        .sum::<usize>();
    let _ = pg.batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"));

    println!(
        "pg_nodes_soak: ran {:.1} min; counted window {first} .. {end}\n\
         units (feed x minute slot): {units}; fetches in them: {fetches} (node0 {}, node1 {}); \
         duplicates: {dups}; missed: {missed}; latest fetch after its slot: {:.1} s\n\
         requests in all (catch-ups and the grace included): {}; run-log entries: {runs}\n\
         digest slots: {digest_slots}; digests mailed in them: {digests}; slots with other than \
         one: {digest_bad}; mails in all: {}\n\
         ERROR lines in the logs: {errors}; nodes stopped on SIGTERM: {stopped:?}",
        ran.as_secs_f64() / 60.0,
        by_node[0],
        by_node[1],
        late as f64 / 1000.0,
        hits.len(),
        mails.len(),
    );
    let ok = dups == 0 && missed == 0 && digest_bad == 0 && runs == hits.len() as i64;
    println!("result: {}", if ok { "PASS" } else { "FAIL" });
    if !ok {
        std::process::exit(1);
    }
}

/// The time of the slot at or before `at` on a schedule at `second`.
fn slot_at(at: DateTime<Utc>, second: u32) -> DateTime<Utc> {
    slot_at_index(slot_of(at, second), second)
}

/// The time of slot `s` (minutes since the epoch) on a schedule at `second`.
fn slot_at_index(s: i64, second: u32) -> DateTime<Utc> {
    DateTime::from_timestamp(s * 60 + i64::from(second), 0)
        .expect("in range")
        .with_nanosecond(0)
        .expect("valid")
}
