//! Shared by tests/hibp.rs, tests/safebrowsing.rs, tests/snds.rs and tests/security.rs: a
//! tempdir store, a manual clock, a runner, the CLI, fixtures and the optional shared samples.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use outwatch::clock::{Clock, ManualClock};
use outwatch::config::{Config, HttpConfig};
use outwatch::finding::Finding;
use outwatch::http::HttpClient;
use outwatch::pipeline::Runner;
use outwatch::scope::{ScopeMatcher, ScopeSnapshot};
use outwatch::store::{self, Query, QueryOptions, Store};

/// The time every source test runs at.
pub const NOW: &str = "2026-11-23T06:00:00Z";
/// The secret used in configs; must never show in an error.
pub const KEY: &str = "k3y-S3CR3T-0123456789abcdef";

pub fn t(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

pub struct Env {
    pub _dir: tempfile::TempDir,
    pub store: Arc<dyn Store>,
    pub clock: Arc<ManualClock>,
    pub runner: Runner,
}

/// Store in a tempdir, manual clock at [`NOW`], scope = example.org + 192.0.2.0/24 + 2001:db8:1::/48.
pub fn env() -> Env {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = Arc::new(store::open(&dir.path().join("data")).unwrap());
    let clock = Arc::new(ManualClock::new(t(NOW)));
    let dyn_clock: Arc<dyn Clock> = clock.clone();
    let http = HttpClient::new(&HttpConfig::default(), dyn_clock.clone()).unwrap();
    let snap = ScopeSnapshot {
        asns: vec![],
        prefixes: vec![
            "192.0.2.0/24".parse().unwrap(),
            "2001:db8:1::/48".parse().unwrap(),
        ],
        domains: vec!["example.org".into()],
        emails: vec![],
    };
    let runner = Runner::new(
        store.clone(),
        http,
        Arc::new(ScopeMatcher::new(&snap)),
        dyn_clock,
    );
    Env {
        _dir: dir,
        store,
        clock,
        runner,
    }
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

pub fn config(text: &str) -> Config {
    Config::parse(text, Path::new("outwatch.toml")).unwrap()
}

pub fn fixture_path(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(rel)
}

pub fn fixture(rel: &str) -> Vec<u8> {
    std::fs::read(fixture_path(rel)).unwrap()
}

/// The shared samples folder, or `None` (with a note) when it is absent.
pub fn samples(sub: &str) -> Option<PathBuf> {
    let p = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/samples")).join(sub);
    if p.is_dir() {
        Some(p)
    } else {
        eprintln!("note: {} is absent; conformance check skipped", p.display());
        None
    }
}

pub fn all_findings(s: &dyn Store) -> Vec<Finding> {
    let mut v = Vec::new();
    s.for_each(&mut |f| {
        v.push(f);
        Ok(())
    })
    .unwrap();
    v
}

pub fn query(s: &dyn Store, q: Query) -> Vec<Finding> {
    s.query(
        &q,
        &QueryOptions {
            include_resolved: true,
            ..Default::default()
        },
    )
    .unwrap()
}
