//! Test helpers shared by the integration tests that include them (`mod support;`).

#![allow(dead_code)]

pub mod smtp;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// A loopback port nothing listens on, without a race: binding port 0 and dropping the listener
/// hands back a port the kernel may give the next test that binds one, while ports under 1024
/// are never handed out that way (and no test binds this one). 9 is "discard".
pub const DEAD_PORT: u16 = 9;

/// A loopback HTTP server that answers each connection, in turn, with the next of `replies`:
/// status 200, no `Content-Length`, `Connection: close`, and the body cut after `keep` bytes
/// (`None`: the whole body), then the connection is closed. This is what a server that dies
/// mid-body looks like to a client: a body that ends early with nothing to say so. Returns the
/// base URL (`http://127.0.0.1:PORT`); the thread ends after the last reply.
pub fn serve_cut(replies: Vec<(Vec<u8>, Option<usize>)>) -> String {
    serve_cut_logged(replies).0
}

/// [`serve_cut`], also returning the request lines received (`GET /path HTTP/1.1`), in order.
pub fn serve_cut_logged(
    replies: Vec<(Vec<u8>, Option<usize>)>,
) -> (String, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let log = Arc::new(Mutex::new(Vec::new()));
    let seen = log.clone();
    std::thread::spawn(move || {
        for (body, keep) in replies {
            let Ok((mut conn, _)) = listener.accept() else {
                return;
            };
            // Read the request head (enough for a GET).
            let mut buf = [0u8; 8192];
            let mut head = Vec::new();
            while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                match conn.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => head.extend_from_slice(&buf[..n]),
                }
            }
            let line = head.split(|&b| b == b'\r').next().unwrap_or_default();
            seen.lock()
                .unwrap()
                .push(String::from_utf8_lossy(line).into_owned());
            let end = keep.unwrap_or(body.len()).min(body.len());
            let _ = conn.write_all(
                b"HTTP/1.1 200 OK\r\ncontent-type: text/csv\r\nconnection: close\r\n\r\n",
            );
            let _ = conn.write_all(&body[..end]);
            let _ = conn.flush();
        }
    });
    (format!("http://{addr}"), log)
}

/// The `outwatch` binary run in `dir`, isolated from the developer's environment (see
/// [`isolated`]).
pub fn cli(dir: &Path) -> assert_cmd::Command {
    assert_cmd::Command::from_std(isolated(dir))
}

/// The `outwatch` binary run in `dir` with nothing of the environment that changes what it
/// reads or prints: `HOME` is `dir` and `XDG_CONFIG_HOME` unset (so no real
/// `~/.config/outwatch/outwatch.toml` is found), no `OUTWATCH_CONFIG` / `OUTWATCH_DATA_DIR`,
/// no `NO_COLOR` / `CLICOLOR_FORCE` / `COLUMNS` (a pipe: no colour, no width), no `RUST_LOG`.
/// A test sets what it needs on top. (`/etc/outwatch/outwatch.toml` is still a candidate:
/// a machine that runs the tests has none.)
pub fn isolated(dir: &Path) -> std::process::Command {
    let mut c = std::process::Command::new(assert_cmd::cargo::cargo_bin("outwatch"));
    c.current_dir(dir).env("HOME", dir);
    for var in UNSET_FOR_TESTS {
        c.env_remove(var);
    }
    c
}

/// What [`isolated`] removes from the environment.
pub const UNSET_FOR_TESTS: [&str; 8] = [
    "XDG_CONFIG_HOME",
    "OUTWATCH_CONFIG",
    "OUTWATCH_DATA_DIR",
    "OUTWATCH_STORE_WAIT",
    "NO_COLOR",
    "CLICOLOR_FORCE",
    "COLUMNS",
    "RUST_LOG",
];

pub fn stdout_json(out: &std::process::Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)))
}

pub fn fixture_path(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(rel)
}

pub fn fixture(rel: &str) -> Vec<u8> {
    std::fs::read(fixture_path(rel)).unwrap()
}

/// The shared samples folder (`../shared/samples`, or `$OUTWATCH_SAMPLES` for worktrees), or
/// `None` (with a note) when it is absent. Under `CI=true` an absent folder fails the test:
/// CI has it, so no conformance check may pass there without checking.
pub fn samples(sub: &str) -> Option<PathBuf> {
    let root = std::env::var_os("OUTWATCH_SAMPLES")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/samples")).into()
        });
    let p = root.join(sub);
    if p.is_dir() {
        return Some(p);
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "{} is absent under CI=true: the conformance check cannot run",
        p.display()
    );
    eprintln!("note: {} is absent; conformance check skipped", p.display());
    None
}

/// `[sources.X] enabled = false` for every list feed that ships enabled: no test reaches the
/// internet.
pub fn feeds_off() -> String {
    outwatch::sources::lists::known_feed_names(&outwatch::config::Config::default())
        .iter()
        .map(|n| format!("[sources.{n}]\nenabled = false\n"))
        .collect()
}

/// Every text a finding holds: its indicator fields, classification, severity and `extra`
/// values (arrays flattened, numbers as written).
pub fn texts(f: &outwatch::finding::Finding) -> Vec<String> {
    let mut t: Vec<String> = [
        f.ip.map(|i| i.to_string()),
        f.network.map(|n| n.to_string()),
        f.port.map(|p| p.to_string()),
        f.asn.map(|a| a.to_string()),
        f.protocol.clone(),
        f.domain.clone(),
        f.url.clone(),
        f.email.clone(),
        Some(f.severity.to_string()),
        Some(f.classification.identifier.clone()),
    ]
    .into_iter()
    .flatten()
    .collect();
    fn flat(v: &serde_json::Value, out: &mut Vec<String>) {
        match v {
            serde_json::Value::String(s) => out.push(s.clone()),
            serde_json::Value::Array(a) => a.iter().for_each(|v| flat(v, out)),
            serde_json::Value::Null => {}
            other => out.push(other.to_string()),
        }
    }
    for v in f.extra.values() {
        flat(v, &mut t);
    }
    t
}

/// Whether a cell's value is in the finding: as a text of it (case aside, a host name's
/// trailing dot aside), as its time, as its address or network, or, for a list (tags,
/// `name, CC`), each of its parts.
pub fn found(cell: &str, f: &outwatch::finding::Finding, texts: &[String]) -> bool {
    let c = cell.trim();
    let is = |v: &str| {
        texts
            .iter()
            .any(|t| t.eq_ignore_ascii_case(v) || t.eq_ignore_ascii_case(v.trim_end_matches('.')))
    };
    if is(c)
        || (f.time_source.is_some()
            && outwatch::sources::shadowserver::normalize::parse_time(c) == f.time_source)
    {
        return true;
    }
    // A day alone (the old URLhaus `dateadded`) is the time's day.
    if let (Ok(d), Some(t)) = (
        chrono::NaiveDate::parse_from_str(c, "%Y-%m-%d"),
        f.time_source,
    ) && t.date_naive() == d
    {
        return true;
    }
    // SNDS writes `12/31/2019 8:00 AM`; the finding holds it as ISO 8601.
    if let Some(t) = outwatch::sources::snds::parse_snds_time(c)
        && is(&t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
    {
        return true;
    }
    if let Ok(ip) = c.parse::<std::net::IpAddr>()
        && (f.ip == Some(ip) || f.network.is_some_and(|n| n.addr() == ip))
    {
        return true;
    }
    // An `address:port` indicator (ThreatFox) is the address and the port.
    if let Ok(a) = c.parse::<std::net::SocketAddr>()
        && f.ip == Some(a.ip())
        && f.port == Some(a.port())
    {
        return true;
    }
    if let Ok(n) = c.parse::<ipnet::IpNet>()
        && (f.network == Some(n.trunc())
            || (n.prefix_len() == n.max_prefix_len() && f.ip == Some(n.addr())))
    {
        return true;
    }
    // A port or an ASN as a number (`0080`, `AS64496`).
    if c.parse::<u16>().ok().is_some_and(|p| f.port == Some(p))
        || c.strip_prefix("AS")
            .unwrap_or(c)
            .parse::<u32>()
            .ok()
            .is_some_and(|a| f.asn == Some(a))
    {
        return true;
    }
    let parts: Vec<&str> = c
        .split([',', ';'])
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .collect();
    !parts.is_empty() && parts.iter().all(|p| is(p))
}

/// The records of a headerless CSV body, each as its fields.
pub fn csv_records(body: &[u8]) -> Vec<Vec<String>> {
    csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(body)
        .records()
        .map(|r| r.unwrap().iter().map(str::to_string).collect())
        .collect()
}

/// [`feeds_off`] but for the feeds named in `keep` (which their own tables set up).
pub fn feeds_off_but(keep: &[&str]) -> String {
    outwatch::sources::lists::known_feed_names(&outwatch::config::Config::default())
        .iter()
        .filter(|n| !keep.contains(&n.as_str()))
        .map(|n| format!("[sources.{n}]\nenabled = false\n"))
        .collect()
}
