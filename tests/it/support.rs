//! Test helpers shared by the integration tests that include them (`mod support;`).

#![allow(dead_code)]

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

/// The `outwatch` binary run in `dir`, with no config or data dir from the environment.
pub fn cli(dir: &Path) -> assert_cmd::Command {
    let mut c = assert_cmd::Command::cargo_bin("outwatch").unwrap();
    c.current_dir(dir)
        .env_remove("OUTWATCH_CONFIG")
        .env_remove("OUTWATCH_DATA_DIR")
        .env_remove("RUST_LOG");
    c
}

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

/// [`feeds_off`] but for the feeds named in `keep` (which their own tables set up).
pub fn feeds_off_but(keep: &[&str]) -> String {
    outwatch::sources::lists::known_feed_names(&outwatch::config::Config::default())
        .iter()
        .filter(|n| !keep.contains(&n.as_str()))
        .map(|n| format!("[sources.{n}]\nenabled = false\n"))
        .collect()
}
