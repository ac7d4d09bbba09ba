//! Shared by tests/hibp.rs, tests/safebrowsing.rs, tests/snds.rs, tests/security.rs (and the
//! list feed tests lists.rs and indicators.rs): a
//! tempdir store, a manual clock, a runner, the CLI, fixtures and the optional shared samples.
#![allow(dead_code)]

use std::path::Path;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use outwatch::clock::{Clock, ManualClock};
use outwatch::config::{Config, HttpConfig};
use outwatch::finding::Finding;
use outwatch::http::HttpClient;
use outwatch::pipeline::Runner;
use outwatch::scope::{ScopeMatcher, ScopeSnapshot};
use outwatch::sources::Source;
use outwatch::sources::lists;
use outwatch::store::{self, Query, QueryOptions, Store};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

pub use crate::support::{cli, fixture, fixture_path, samples, stdout_json};

/// The time every source test runs at.
pub const NOW: &str = "2026-11-23T06:00:00Z";
/// The secret used in configs; must never show in an error.
pub const KEY: &str = "k3y-S3CR3T-0123456789abcdef-0123456789ab";

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
    env_with(
        t(NOW),
        &ScopeSnapshot {
            asns: vec![],
            prefixes: vec![
                "192.0.2.0/24".parse().unwrap(),
                "2001:db8:1::/48".parse().unwrap(),
            ],
            domains: vec!["example.org".into()],
            emails: vec![],
        },
    )
}

/// Store in a tempdir, manual clock at `now`, scope `snap`.
pub fn env_with(now: DateTime<Utc>, snap: &ScopeSnapshot) -> Env {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = Arc::new(store::open(&dir.path().join("data")).unwrap());
    let clock = Arc::new(ManualClock::new(now));
    let dyn_clock: Arc<dyn Clock> = clock.clone();
    let http = HttpClient::new(&HttpConfig::default(), dyn_clock.clone()).unwrap();
    let runner = Runner::new(
        store.clone(),
        http,
        Arc::new(ScopeMatcher::new(snap)),
        dyn_clock,
    );
    Env {
        _dir: dir,
        store,
        clock,
        runner,
    }
}

/// The list feed `name` built from config `text` (it must be enabled there).
pub fn list_source(text: &str, name: &str) -> Arc<dyn Source> {
    let c = Config::parse(
        text,
        Path::new("/nonexistent/outwatch.toml"),
        &outwatch::sources::Registry,
    )
    .unwrap();
    let (_, built) = lists::build_enabled(&c)
        .into_iter()
        .find(|(n, _)| n == name)
        .unwrap_or_else(|| panic!("{name} is not enabled"));
    built.unwrap()
}

/// Answers `GET p` with `replies` in turn, each once, and with the last one from then on.
pub async fn serve_in_turn(server: &MockServer, p: &str, replies: Vec<ResponseTemplate>) {
    let last = replies.len();
    for (i, reply) in replies.into_iter().enumerate() {
        let mock = Mock::given(method("GET"))
            .and(path(p))
            .respond_with(reply)
            .with_priority(u8::try_from(i + 1).unwrap());
        if i + 1 < last {
            mock.up_to_n_times(1).mount(server).await;
        } else {
            mock.mount(server).await;
        }
    }
}

/// Serves `body` with 200 at `GET p`.
pub async fn serve(server: &MockServer, p: &str, body: Vec<u8>) {
    Mock::given(method("GET"))
        .and(path(p))
        .respond_with(ResponseTemplate::new(200).set_body_bytes(body))
        .mount(server)
        .await;
}

pub fn config(text: &str) -> Config {
    Config::parse(
        text,
        Path::new("outwatch.toml"),
        &outwatch::sources::Registry,
    )
    .unwrap()
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
