//! The store contract: what every backend of `outwatch::store::Store` guarantees (the list is in
//! `src/store/mod.rs` and ARCHITECTURE.md, "The store boundary"), written once and run against
//! each backend: sled, and the in-memory toy of `memory.rs`. Adding a backend is one line at the
//! bottom (`contract!(name, || Fresh::new(store))`, with a guard to keep alive for the test when
//! the store needs one, e.g. a temporary folder or a database schema to drop).

mod memory;
pub mod postgres;

use std::any::Any;
use std::ops::ControlFlow;
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use outwatch::finding::{Classification, Finding, Severity, Status};
use outwatch::store::{
    FetchRun, Filter, Findings, IngestOptions, IngestStats, Query, QueryOptions, ReadError,
    Reading, RunEntry, RunOutcome, Store, StoreError, Unit, Write,
};

pub use memory::MemoryStore;

/// A fresh, empty store for one test, and whatever must live as long as it.
pub struct Fresh {
    pub store: Arc<dyn Store>,
    _keep: Option<Box<dyn Any>>,
}

impl Fresh {
    pub fn new(store: Arc<dyn Store>, keep: Option<Box<dyn Any>>) -> Self {
        Fresh { store, _keep: keep }
    }
}

fn sled() -> Fresh {
    let dir = tempfile::tempdir().unwrap();
    let store = outwatch::store::open(dir.path()).unwrap();
    Fresh::new(Arc::new(store), Some(Box::new(dir)))
}

/// A sled store served by a daemon's socket in this process, used through `RemoteStore`: every
/// read and write crosses the socket as it does for a command run beside `outwatch run`.
fn daemon() -> Fresh {
    use outwatch::daemon::{RemoteStore, protocol, socket};
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
    rt.spawn(socket::serve(
        listener,
        sled,
        info,
        rx,
        socket::Access::ReadWrite,
    ));
    let remote = RemoteStore::connect(dir.path()).expect("the socket answers");
    assert!(remote.takes_writes());
    Fresh::new(Arc::new(remote), Some(Box::new((stop, rt, dir))))
}

fn memory() -> Fresh {
    Fresh::new(Arc::new(MemoryStore::new()), None)
}

/// A fresh store, or none where the backend's server is absent (the test then skips).
pub trait MaybeFresh {
    fn maybe(self) -> Option<Fresh>;
}

impl MaybeFresh for Fresh {
    fn maybe(self) -> Option<Fresh> {
        Some(self)
    }
}

impl MaybeFresh for Option<Fresh> {
    fn maybe(self) -> Option<Fresh> {
        self
    }
}

/// Runs every test of the suite against the backend `$fresh` makes (a `Fresh`, or an
/// `Option<Fresh>` that is `None` to skip).
macro_rules! contract {
    ($backend:ident, $fresh:expr) => {
        mod $backend {
            fn fresh() -> Option<super::Fresh> {
                super::MaybeFresh::maybe($fresh())
            }
            contract!(@tests fresh;
                a_unit_is_all_or_nothing,
                a_malformed_finding_fails_its_whole_unit,
                a_unit_read_as_it_comes_is_stored_with_its_entry,
                ingesting_is_idempotent,
                repeats_within_a_unit_are_folded,
                the_life_cycle_moves_new_open_resolved_reopened,
                repeated_observations_are_counted_and_kept,
                repeated_observations_in_a_streamed_unit,
                queries_by_address_and_prefix_stream,
                queries_by_domain_email_and_asn_stream,
                a_query_stops_when_its_callback_does,
                the_run_log_keeps_runs_newest_first,
                state_lives_with_its_unit,
                indicator_sets_are_state_of_their_own,
                restore_writes_findings_as_given,
                reported_urls_are_those_of_open_findings_of_others,
                count_and_get,
                triage_is_kept_with_who_and_why,
                suppression_rules_are_state,
                a_worklist_selects_by_its_filter,
                a_turn_nobody_holds_is_given,
                untrusted_text_comes_back_as_it_went_in,
            );
        }
    };
    (@tests $fresh:ident; $($test:ident),* $(,)?) => {
        $(
            #[test]
            fn $test() {
                if let Some(s) = $fresh() {
                    super::$test(s);
                }
            }
        )*
    };
}

contract!(on_sled, super::sled);
contract!(in_memory, super::memory);
contract!(through_the_daemon, super::daemon);
contract!(on_postgres, super::postgres::fresh);

// ---- helpers -----------------------------------------------------------------------------

fn t(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

fn opts(now: &str) -> IngestOptions {
    IngestOptions { now: t(now) }
}

fn all() -> QueryOptions {
    QueryOptions {
        include_resolved: true,
        ..Default::default()
    }
}

fn finding(feed: &str, ip: Option<&str>, domain: Option<&str>) -> Finding {
    let mut f = Finding::new(
        "test",
        feed,
        Classification::new("", "vulnerable-system", "open-service"),
        Severity::Medium,
    );
    f.ip = ip.map(|i| i.parse().unwrap());
    f.domain = domain.map(str::to_string);
    f.port = Some(443);
    f.seal();
    f
}

/// A scan row: one address seen at `time` (seconds past 12:27) with a banner.
fn scan(ip: &str, time: u32, banner: &str) -> Finding {
    let mut f = Finding::new(
        "shadowserver",
        "scan_telnet",
        Classification::new("", "vulnerable-system", "open-telnet"),
        Severity::Medium,
    );
    f.ip = Some(ip.parse().unwrap());
    f.port = Some(23);
    f.time_source = Some(t("2026-11-20T12:27:00Z") + Duration::seconds(time.into()));
    f.set_extra("banner", banner);
    f.raw = Some(format!("scan_telnet.csv:{time}"));
    f.seal();
    f
}

fn fps(v: &[Finding]) -> Vec<String> {
    let mut v: Vec<String> = v.iter().map(|f| f.fingerprint.clone()).collect();
    v.sort();
    v
}

fn q(s: &dyn Store, query: Query) -> Vec<Finding> {
    let mut out = Vec::new();
    s.query_each(&query, &all(), &mut |f| {
        out.push(f);
        Ok(ControlFlow::Continue(()))
    })
    .unwrap();
    out
}

/// A streamed unit observed at `now` whose reader hands `findings` as views, then fails with
/// `fail` when given.
fn streamed<'a>(
    now: &str,
    findings: &'a [Finding],
    fail: Option<&'a str>,
    state: Vec<(String, Option<Vec<u8>>)>,
    run: Option<RunEntry<'a>>,
) -> Unit<'a> {
    Unit {
        now: t(now),
        write: Write::Observe,
        findings: Findings::Streamed(
            Box::new(move |w| {
                for f in findings {
                    w.view(&f.view())?;
                }
                match fail {
                    Some(why) => Err(ReadError::Unreadable(why.into())),
                    None => Ok(()),
                }
            }),
            Reading::WholeOrNothing,
        ),
        state,
        run,
    }
}

fn entry(source: &str, at: &str) -> RunEntry<'static> {
    let (source, at) = (source.to_string(), t(at));
    Box::new(move |stats: &IngestStats| {
        let mut r = FetchRun::begun(&source, at);
        r.new = stats.new;
        r.updated = stats.updated;
        r
    })
}

// ---- the suite ---------------------------------------------------------------------------

/// A unit's findings, state and run entry land together; when its reader fails, none of it.
pub fn a_unit_is_all_or_nothing(s: Fresh) {
    let s = s.store.as_ref();
    let rows: Vec<Finding> = (0..1000)
        .map(|i| finding("a", Some(&format!("10.0.{}.{}", i / 250, i % 250)), None))
        .collect();
    let state = vec![("unit/state".to_string(), Some(b"v".to_vec()))];
    let failed = streamed(
        "2026-11-01T00:00:00Z",
        &rows,
        Some("cut off"),
        state.clone(),
        Some(entry("unit", "2026-11-01T00:00:00Z")),
    );
    match s.ingest_unit(failed) {
        Err(StoreError::Unread(ReadError::Unreadable(why))) => assert_eq!(why, "cut off"),
        other => panic!("a failed reader must fail the unit: {other:?}"),
    }
    assert_eq!(s.count().unwrap(), 0, "no finding of a failed unit");
    assert_eq!(s.state_get("unit/state").unwrap(), None, "nor its state");
    assert!(s.runs(None, 10).unwrap().is_empty(), "nor its run entry");

    let ok = streamed(
        "2026-11-01T00:00:00Z",
        &rows,
        None,
        state,
        Some(entry("unit", "2026-11-01T00:00:00Z")),
    );
    let st = s.ingest_unit(ok).unwrap();
    assert_eq!(st.new, 1000);
    assert_eq!(s.count().unwrap(), 1000);
    assert_eq!(
        s.state_get("unit/state").unwrap().as_deref(),
        Some(&b"v"[..])
    );
    let runs = s.runs(Some("unit"), 10).unwrap();
    assert_eq!(runs.len(), 1);
    assert_eq!(
        runs[0].new, 1000,
        "the entry is made from the unit's statistics"
    );

    // An owned unit with a run entry: the same.
    let st = s
        .ingest_unit(Unit {
            now: t("2026-11-02T00:00:00Z"),
            write: Write::Observe,
            findings: Findings::Owned(rows[..10].to_vec()),
            state: vec![("unit/state".into(), None)],
            run: Some(entry("unit", "2026-11-02T00:00:00Z")),
        })
        .unwrap();
    assert_eq!((st.new, st.updated), (0, 10));
    assert_eq!(s.state_get("unit/state").unwrap(), None);
    assert_eq!(s.runs(Some("unit"), 10).unwrap()[0].updated, 10);
}

/// A unit whose reader stops only with the store (an import of files) is stored whole, with
/// its run entry, repeats folded and the bulk path's statistics.
pub fn a_unit_read_as_it_comes_is_stored_with_its_entry(s: Fresh) {
    let s = s.store.as_ref();
    let mut rows: Vec<Finding> = (0..3000)
        .map(|i| scan(&format!("10.{}.{}.{}", i % 7, i / 250, i % 250), 1, "a"))
        .collect();
    rows.push(scan("10.0.0.0", 9, "b"));
    let unit = Unit {
        now: t("2026-11-21T00:00:00Z"),
        write: Write::Observe,
        findings: Findings::Streamed(
            Box::new(|w| {
                for f in &rows {
                    w.view(&f.view())?;
                }
                Ok(())
            }),
            Reading::AsItComes,
        ),
        state: vec![],
        run: Some(entry("import/shadowserver", "2026-11-21T00:00:00Z")),
    };
    let st = s.ingest_unit(unit).unwrap();
    assert_eq!((st.new, st.duplicates), (3000, 1));
    assert_eq!(s.count().unwrap(), 3000);
    assert_eq!(s.get(&rows[0].fingerprint).unwrap().unwrap().times_seen, 2);
    assert_eq!(s.runs(Some("import/shadowserver"), 1).unwrap()[0].new, 3000);
}

/// A finding the store cannot take (a malformed fingerprint) fails its whole unit.
pub fn a_malformed_finding_fails_its_whole_unit(s: Fresh) {
    let s = s.store.as_ref();
    s.ingest(
        vec![finding("a", Some("192.0.2.1"), None)],
        vec![("k".into(), Some(b"before".to_vec()))],
        &opts("2026-11-01T00:00:00Z"),
    )
    .unwrap();
    let mut broken = finding("a", Some("192.0.2.3"), None);
    broken.fingerprint = "not-hex".into();
    let batch = vec![
        finding("a", Some("192.0.2.1"), None),
        finding("a", Some("192.0.2.2"), None),
        broken,
        finding("a", Some("192.0.2.4"), None),
    ];
    let r = s.ingest(
        batch,
        vec![("k".into(), Some(b"after".to_vec()))],
        &opts("2026-11-02T00:00:00Z"),
    );
    assert!(r.is_err());
    assert_eq!(s.count().unwrap(), 1);
    let f = &q(s, Query::Ip("192.0.2.1".parse().unwrap()))[0];
    assert_eq!(
        f.last_seen,
        t("2026-11-01T00:00:00Z"),
        "the good part must not land"
    );
    assert_eq!(s.state_get("k").unwrap().unwrap(), b"before");
}

/// The same observation again moves `last_seen` and nothing else; without a source time, each
/// unit that reports a finding counts once.
pub fn ingesting_is_idempotent(s: Fresh) {
    let s = s.store.as_ref();
    let timed = scan("192.0.2.9", 34, "login:");
    let untimed = finding("a", Some("192.0.2.7"), None);
    let batch = vec![timed.clone(), untimed.clone()];
    let st = s
        .ingest(batch.clone(), vec![], &opts("2026-11-01T00:00:00Z"))
        .unwrap();
    assert_eq!((st.new, st.updated), (2, 0));
    let st = s
        .ingest(batch, vec![], &opts("2026-11-02T00:00:00Z"))
        .unwrap();
    assert_eq!((st.new, st.updated), (0, 2));
    assert_eq!(s.count().unwrap(), 2);
    let f = s.get(&timed.fingerprint).unwrap().unwrap();
    assert_eq!(
        f.times_seen, 1,
        "the same source time is the same observation"
    );
    assert!(f.observations.is_empty());
    assert_eq!(f.first_seen, t("2026-11-01T00:00:00Z"));
    assert_eq!(f.last_seen, t("2026-11-02T00:00:00Z"));
    assert_eq!(f.status, Status::Open);
    let g = s.get(&untimed.fingerprint).unwrap().unwrap();
    assert_eq!(g.times_seen, 2, "no source time: each unit counts");
}

/// Rows of one fingerprint in one unit are one finding, counted once when they are the same
/// observation.
pub fn repeats_within_a_unit_are_folded(s: Fresh) {
    let s = s.store.as_ref();
    let f = finding("a", Some("192.0.2.7"), None);
    let st = s
        .ingest(
            vec![f.clone(), f.clone()],
            vec![],
            &opts("2026-11-01T00:00:00Z"),
        )
        .unwrap();
    assert_eq!((st.new, st.duplicates), (1, 1));
    assert_eq!(s.get(&f.fingerprint).unwrap().unwrap().times_seen, 1);
}

/// new → open → resolved (stale) → reopened, with the history, the counts that guard
/// resolving, and changes of stored findings.
pub fn the_life_cycle_moves_new_open_resolved_reopened(s: Fresh) {
    let s = s.store.as_ref();
    let a = finding("a", Some("192.0.2.1"), None);
    let b = finding("a", Some("192.0.2.2"), None);
    let c = finding("other-feed", Some("192.0.2.3"), None);
    s.ingest(
        vec![a.clone(), b.clone(), c.clone()],
        vec![],
        &opts("2026-11-01T00:00:00Z"),
    )
    .unwrap();
    assert_eq!(s.get(&a.fingerprint).unwrap().unwrap().status, Status::New);
    s.ingest(vec![a.clone()], vec![], &opts("2026-11-05T00:00:00Z"))
        .unwrap();
    assert_eq!(s.get(&a.fingerprint).unwrap().unwrap().status, Status::Open);
    let now = t("2026-11-05T00:00:00Z");
    let cutoff = now - Duration::days(3);
    assert_eq!(s.open_and_stale("test", cutoff).unwrap(), (3, 2));
    assert_eq!(s.open_and_stale("nobody", cutoff).unwrap(), (0, 0));
    // By feed: only `a`'s stale findings.
    assert_eq!(s.resolve_stale("test", Some("a"), cutoff, now).unwrap(), 1);
    assert_eq!(s.get(&c.fingerprint).unwrap().unwrap().status, Status::New);
    assert_eq!(s.resolve_stale("test", None, cutoff, now).unwrap(), 1);
    assert_eq!(s.open_and_stale("test", cutoff).unwrap(), (1, 0));
    assert_eq!(
        s.get(&b.fingerprint).unwrap().unwrap().status,
        Status::Resolved
    );
    // Hidden from a default lookup, shown with resolved ones.
    let ip = Query::Ip("192.0.2.2".parse().unwrap());
    let mut n = 0;
    s.query_each(&ip, &QueryOptions::default(), &mut |_| {
        n += 1;
        Ok(ControlFlow::Continue(()))
    })
    .unwrap();
    assert_eq!(n, 0);
    assert_eq!(q(s, ip).len(), 1);
    // Seen again: reopened, with its history.
    let st = s
        .ingest(vec![b.clone()], vec![], &opts("2026-11-06T00:00:00Z"))
        .unwrap();
    assert_eq!((st.updated, st.reopened), (1, 1));
    let f = s.get(&b.fingerprint).unwrap().unwrap();
    assert_eq!(f.status, Status::Open);
    let events: Vec<&str> = f.history.iter().map(|h| h.event.as_str()).collect();
    assert_eq!(events, vec!["new", "resolved", "reopened"]);
    assert_eq!(f.first_seen, t("2026-11-01T00:00:00Z"));
    // A change of stored findings (the digest marks them reported): only those it returns
    // true for, unknown fingerprints skipped.
    let n = s
        .modify(
            &[
                a.fingerprint.clone(),
                c.fingerprint.clone(),
                "00".repeat(16),
            ],
            &mut |f| {
                if f.feed != "a" {
                    return false;
                }
                f.push_history(now, "reported");
                true
            },
        )
        .unwrap();
    assert_eq!(n, 1);
    let f = s.get(&a.fingerprint).unwrap().unwrap();
    assert_eq!(f.history.last().unwrap().event, "reported");
    let c = s.get(&c.fingerprint).unwrap().unwrap();
    assert!(c.history.iter().all(|h| h.event != "reported"));
}

/// Another source time is another observation: counted, the latest current, the earlier ones
/// kept with what differs, within a unit and across units, idempotent on re-ingest.
pub fn repeated_observations_are_counted_and_kept(s: Fresh) {
    let s = s.store.as_ref();
    // The scan_telnet case: one address at 12:27:34 and 12:27:40 with two banners.
    let (early, late) = (
        scan("192.0.2.5", 34, "login:"),
        scan("192.0.2.5", 40, "Username:"),
    );
    let st = s
        .ingest(
            vec![early.clone(), late.clone()],
            vec![],
            &opts("2026-11-21T00:00:00Z"),
        )
        .unwrap();
    assert_eq!((st.new, st.duplicates), (1, 1));
    let f = s.get(&early.fingerprint).unwrap().unwrap();
    assert_eq!(f.times_seen, 2);
    assert_eq!(f.time_source, late.time_source);
    assert_eq!(f.extra["banner"], "Username:");
    assert_eq!(f.observations.len(), 1);
    assert_eq!(f.observations[0].time_source, early.time_source);
    assert_eq!(f.observations[0].differs["extra.banner"], "login:");
    assert_eq!(f.observations[0].differs["raw"], "scan_telnet.csv:34");
    // The same report again: nothing moves but `last_seen`.
    s.ingest(
        vec![late.clone(), early.clone()],
        vec![],
        &opts("2026-11-22T00:00:00Z"),
    )
    .unwrap();
    let g = s.get(&early.fingerprint).unwrap().unwrap();
    assert_eq!(g.times_seen, 2);
    assert_eq!(g.observations, f.observations);
    assert_eq!(g.extra, f.extra);
    // A later report: a third observation, the earlier two kept, oldest first.
    s.ingest(
        vec![scan("192.0.2.5", 90, "Password:")],
        vec![],
        &opts("2026-11-23T00:00:00Z"),
    )
    .unwrap();
    let h = s.get(&early.fingerprint).unwrap().unwrap();
    assert_eq!(h.times_seen, 3);
    assert_eq!(h.extra["banner"], "Password:");
    let kept: Vec<_> = h.observations.iter().map(|o| o.time_source).collect();
    assert_eq!(kept, vec![early.time_source, late.time_source]);
    assert_eq!(h.observations[1].differs["extra.banner"], "Username:");
    // An older report imported late: kept in order, the current one stays.
    s.ingest(
        vec![scan("192.0.2.5", 10, "hello")],
        vec![],
        &opts("2026-11-24T00:00:00Z"),
    )
    .unwrap();
    let i = s.get(&early.fingerprint).unwrap().unwrap();
    assert_eq!(i.times_seen, 4);
    assert_eq!(i.extra["banner"], "Password:");
    assert_eq!(i.observations[0].differs["extra.banner"], "hello");
    // They survive a restore (export → restore).
    s.restore(vec![i.clone()]).unwrap();
    assert_eq!(s.get(&i.fingerprint).unwrap().unwrap(), i);
}

/// The bulk path folds repeats as the owned path does.
pub fn repeated_observations_in_a_streamed_unit(s: Fresh) {
    let s = s.store.as_ref();
    let rows = vec![
        scan("192.0.2.5", 34, "login:"),
        scan("192.0.2.6", 35, "x"),
        scan("192.0.2.5", 40, "Username:"),
    ];
    let st = s
        .ingest_unit(streamed("2026-11-21T00:00:00Z", &rows, None, vec![], None))
        .unwrap();
    assert_eq!((st.new, st.duplicates), (2, 1));
    let f = s.get(&rows[0].fingerprint).unwrap().unwrap();
    assert_eq!(f.times_seen, 2);
    assert_eq!(f.extra["banner"], "Username:");
    assert_eq!(f.observations[0].differs["extra.banner"], "login:");
    // And across units, merged into the stored finding.
    let more = vec![
        scan("192.0.2.5", 50, "ok"),
        scan("192.0.2.5", 40, "Username:"),
    ];
    s.ingest_unit(streamed("2026-11-22T00:00:00Z", &more, None, vec![], None))
        .unwrap();
    let g = s.get(&rows[0].fingerprint).unwrap().unwrap();
    assert_eq!(g.times_seen, 3);
    assert_eq!(g.extra["banner"], "ok");
    assert_eq!(g.observations.len(), 2);
}

/// Addresses and prefixes, v4 and v6: the address itself and networks holding it; a prefix:
/// addresses inside and networks overlapping it.
pub fn queries_by_address_and_prefix_stream(s: Fresh) {
    let s = s.store.as_ref();
    let mut batch = Vec::new();
    for i in 0..=255u32 {
        batch.push(finding("scan", Some(&format!("198.51.100.{i}")), None));
    }
    batch.push(finding("scan", Some("198.51.101.1"), None));
    batch.push(finding("scan", Some("2001:db8:1::7"), None));
    batch.push(finding("scan", Some("2001:db8:2::7"), None));
    let mut blocknet = finding("drop", None, None);
    blocknet.network = Some("198.51.100.0/23".parse().unwrap());
    blocknet.seal();
    batch.push(blocknet);
    let mut small = finding("drop", None, None);
    small.network = Some("198.51.100.64/26".parse().unwrap());
    small.seal();
    batch.push(small);
    s.ingest(batch, vec![], &opts("2026-11-01T00:00:00Z"))
        .unwrap();
    let n = |query: &str| -> usize {
        let query: Query = query.parse().unwrap();
        let found = q(s, query);
        assert_eq!(fps(&found).len(), found.len());
        let mut d = fps(&found);
        d.dedup();
        assert_eq!(d.len(), found.len(), "each finding once");
        found.len()
    };
    assert_eq!(
        n("198.51.100.77"),
        3,
        "the host and both networks holding it"
    );
    assert_eq!(n("198.51.100.200"), 2);
    assert_eq!(
        n("198.51.100.0/24"),
        258,
        "256 hosts, the /26 inside, the /23 around"
    );
    assert_eq!(n("198.51.100.128/25"), 129);
    assert_eq!(n("198.51.0.0/16"), 259);
    assert_eq!(n("203.0.113.0/24"), 0);
    assert_eq!(n("2001:db8:1::7"), 1);
    assert_eq!(n("2001:db8::/32"), 2);
    assert_eq!(n("2001:db8:1::/48"), 1);
    // The collector keeps the newest `limit`.
    let lim = s
        .query(
            &"198.51.100.0/24".parse().unwrap(),
            &QueryOptions {
                limit: Some(5),
                ..all()
            },
        )
        .unwrap();
    assert_eq!(lim.len(), 5);
    // `since` filters on `last_seen`.
    s.ingest(
        vec![finding("scan", Some("198.51.100.1"), None)],
        vec![],
        &opts("2026-11-03T00:00:00Z"),
    )
    .unwrap();
    let mut recent = 0;
    s.query_each(
        &"198.51.100.0/24".parse().unwrap(),
        &QueryOptions {
            since: Some(t("2026-11-02T00:00:00Z")),
            ..all()
        },
        &mut |_| {
            recent += 1;
            Ok(ControlFlow::Continue(()))
        },
    )
    .unwrap();
    assert_eq!(recent, 1);
}

/// Domains (and subdomains, and mail addresses on them, on label boundaries), mail addresses,
/// and ASNs (findings about the AS itself).
pub fn queries_by_domain_email_and_asn_stream(s: Fresh) {
    let s = s.store.as_ref();
    let mut breach = finding("breach", None, None);
    breach.email = Some("Alice@Example.org".into());
    breach.port = None;
    breach.seal();
    let host = finding("scan", Some("192.0.2.7"), Some("host-7.dyn.example.org"));
    let mut both = finding("mail", Some("192.0.2.8"), Some("mx.example.org"));
    both.email = Some("postmaster@example.org".into());
    both.seal();
    let mut asn = finding("asdrop", None, None);
    asn.asn = Some(64496);
    asn.port = None;
    asn.seal();
    let mut addressed_asn = finding("scan", Some("192.0.2.9"), None);
    addressed_asn.asn = Some(64496);
    addressed_asn.seal();
    s.ingest(
        vec![
            finding("web", None, Some("www.example.org")),
            finding("web", None, Some("Example.ORG.")),
            finding("web", None, Some("badexample.org")),
            finding("web", None, Some("example.org.evil.test")),
            breach.clone(),
            host.clone(),
            both.clone(),
            asn.clone(),
            addressed_asn,
        ],
        vec![],
        &opts("2026-11-01T00:00:00Z"),
    )
    .unwrap();
    let n = |query: &str| {
        let query: Query = query
            .parse()
            .unwrap_or_else(|_| Query::Domain(query.to_string()));
        let found = q(s, query.clone());
        let mut d = fps(&found);
        d.dedup();
        assert_eq!(d.len(), found.len(), "each finding once: {query:?}");
        found
    };
    assert_eq!(n("example.org").len(), 5);
    assert_eq!(n("EXAMPLE.org.").len(), 5);
    assert_eq!(n("www.example.org").len(), 1);
    assert_eq!(fps(&n("dyn.example.org")), fps(&[host]));
    assert!(n("xample.org").is_empty());
    assert_eq!(n("org").len(), 6);
    let mail = n("alice@example.org");
    assert_eq!(fps(&mail), fps(&[breach]));
    assert_eq!(mail[0].email.as_deref(), Some("alice@example.org"));
    assert_eq!(fps(&n("postmaster@example.org")), fps(&[both]));
    assert_eq!(fps(&n("AS64496")), fps(&[asn]));
    assert!(n("AS64497").is_empty());
}

/// A callback that stops ends the walk; the totals say so.
pub fn a_query_stops_when_its_callback_does(s: Fresh) {
    let s = s.store.as_ref();
    let batch: Vec<Finding> = (0..50)
        .map(|i| finding("scan", Some(&format!("10.9.0.{i}")), None))
        .collect();
    s.ingest(batch, vec![], &opts("2026-11-01T00:00:00Z"))
        .unwrap();
    let mut seen = 0;
    let totals = s
        .query_each(&"10.9.0.0/24".parse().unwrap(), &all(), &mut |_| {
            seen += 1;
            Ok(if seen == 3 {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            })
        })
        .unwrap();
    assert_eq!((seen, totals.handed, totals.stopped), (3, 3, true));
    // A callback error ends it with that error.
    let e = s.query_each(&"10.9.0.0/24".parse().unwrap(), &all(), &mut |_| {
        Err(StoreError::Refused("stop".into()))
    });
    assert!(matches!(e, Err(StoreError::Refused(_))));
}

/// Runs come back newest first, by source, at most `limit`; the same key replaces; entries
/// older than the retention go when a run is recorded.
pub fn the_run_log_keeps_runs_newest_first(s: Fresh) {
    let s = s.store.as_ref();
    let at = |d: i64| t("2026-01-01T00:00:00Z") + Duration::days(d);
    let run = |source: &str, d: i64, outcome: RunOutcome| {
        let mut r = FetchRun::begun(source, at(d));
        r.outcome = outcome;
        r.fetched = d as usize;
        r
    };
    s.record_run(&run("a", 0, RunOutcome::Ok)).unwrap();
    s.record_run(&run("b", 1, RunOutcome::Error)).unwrap();
    s.record_run(&run("a", 2, RunOutcome::Partial)).unwrap();
    let all_runs = s.runs(None, 10).unwrap();
    let order: Vec<(&str, usize)> = all_runs
        .iter()
        .map(|r| (r.source.as_str(), r.fetched))
        .collect();
    assert_eq!(order, vec![("a", 2), ("b", 1), ("a", 0)]);
    let a = s.runs(Some("a"), 1).unwrap();
    assert_eq!((a.len(), a[0].outcome), (1, RunOutcome::Partial));
    // The same start and source again replaces the entry.
    let mut again = run("a", 2, RunOutcome::Ok);
    again.notices = vec!["a notice".into()];
    s.record_run(&again).unwrap();
    let a = s.runs(Some("a"), 10).unwrap();
    assert_eq!(a.len(), 2);
    assert_eq!(a[0], again, "an entry comes back as it was recorded");
    // Retention: a run more than RUN_LOG_DAYS after the first drops it.
    s.record_run(&run("c", outwatch::store::RUN_LOG_DAYS + 1, RunOutcome::Ok))
        .unwrap();
    let left: Vec<usize> = s
        .runs(None, 10)
        .unwrap()
        .iter()
        .map(|r| r.fetched)
        .collect();
    assert_eq!(left, vec![outwatch::store::RUN_LOG_DAYS as usize + 1, 2, 1]);
}

/// State: put, get, delete, scan by prefix in key order; in a unit, with its findings.
pub fn state_lives_with_its_unit(s: Fresh) {
    let s = s.store.as_ref();
    s.state_put("lists/b/validators", Some(b"2")).unwrap();
    s.state_put("lists/a/validators", Some(b"1")).unwrap();
    s.state_put("listsx", Some(b"x")).unwrap();
    let scan: Vec<(String, Vec<u8>)> = s.state_scan("lists/").unwrap();
    assert_eq!(
        scan,
        vec![
            ("lists/a/validators".to_string(), b"1".to_vec()),
            ("lists/b/validators".to_string(), b"2".to_vec()),
        ]
    );
    s.state_put("lists/a/validators", None).unwrap();
    assert_eq!(s.state_get("lists/a/validators").unwrap(), None);
    s.ingest(
        vec![finding("a", Some("192.0.2.1"), None)],
        vec![
            ("shadowserver/ingested".into(), Some(b"[1]".to_vec())),
            ("lists/b/validators".into(), None),
        ],
        &opts("2026-11-01T00:00:00Z"),
    )
    .unwrap();
    assert_eq!(
        s.state_get("shadowserver/ingested").unwrap().as_deref(),
        Some(&b"[1]"[..])
    );
    assert_eq!(s.state_get("lists/b/validators").unwrap(), None);
    // A unit of state alone.
    s.ingest(
        vec![],
        vec![("k".into(), Some(b"v".to_vec()))],
        &opts("2026-11-02T00:00:00Z"),
    )
    .unwrap();
    assert_eq!(s.state_get("k").unwrap().as_deref(), Some(&b"v"[..]));
    assert_eq!(s.count().unwrap(), 1);
}

/// Kept indicator sets: written with a list's findings, replaced by the next good download,
/// read in key order, and only they.
pub fn indicator_sets_are_state_of_their_own(s: Fresh) {
    let s = s.store.as_ref();
    let key = |feed: &str, unit: &str| format!("{}{feed}/{unit}", outwatch::store::INDICATOR_SETS);
    s.ingest(
        vec![finding("feodotracker", Some("192.0.2.1"), None)],
        vec![
            (key("feodotracker", "https://a.example/x"), Some(vec![1, 2])),
            (key("urlhaus", "https://b.example/y"), Some(vec![3])),
        ],
        &opts("2026-11-01T00:00:00Z"),
    )
    .unwrap();
    s.state_put("lists/feodotracker/validators", Some(b"etag"))
        .unwrap();
    let sets = |s: &dyn Store| {
        let mut v = Vec::new();
        s.indicator_sets(&mut |k, b| {
            v.push((k.to_string(), b.to_vec()));
            Ok(())
        })
        .unwrap();
        v
    };
    assert_eq!(
        sets(s),
        vec![
            (key("feodotracker", "https://a.example/x"), vec![1, 2]),
            (key("urlhaus", "https://b.example/y"), vec![3]),
        ]
    );
    s.ingest(
        vec![],
        vec![
            (key("feodotracker", "https://a.example/x"), Some(vec![9])),
            (key("urlhaus", "https://b.example/y"), None),
        ],
        &opts("2026-11-02T00:00:00Z"),
    )
    .unwrap();
    assert_eq!(
        sets(s),
        vec![(key("feodotracker", "https://a.example/x"), vec![9])]
    );
}

/// A restore writes findings exactly as given (life cycle included), replacing stored twins;
/// held or streamed.
pub fn restore_writes_findings_as_given(s: Fresh) {
    let s = s.store.as_ref();
    let a = finding("a", Some("192.0.2.1"), Some("www.example.org"));
    s.ingest(vec![a.clone()], vec![], &opts("2026-11-01T00:00:00Z"))
        .unwrap();
    let mut given = s.get(&a.fingerprint).unwrap().unwrap();
    given.status = Status::Resolved;
    given.times_seen = 7;
    given.first_seen = t("2025-01-01T00:00:00Z");
    given.push_history(t("2025-02-01T00:00:00Z"), "resolved");
    let mut other = finding("b", Some("2001:db8::5"), None);
    other.first_seen = t("2024-06-01T00:00:00Z");
    other.last_seen = t("2024-06-02T00:00:00Z");
    other.times_seen = 3;
    other.status = Status::Open;
    assert_eq!(s.restore(vec![given.clone(), other.clone()]).unwrap(), 2);
    assert_eq!(s.count().unwrap(), 2);
    assert_eq!(s.get(&a.fingerprint).unwrap().unwrap(), given);
    assert_eq!(s.get(&other.fingerprint).unwrap().unwrap(), other);
    assert_eq!(q(s, "www.example.org".parse().unwrap()).len(), 1);
    // Streamed, as `outwatch restore` does: owned findings handed whole.
    let mut third = finding("c", Some("192.0.2.3"), None);
    third.status = Status::Resolved;
    third.times_seen = 2;
    let rows = vec![third.clone(), given.clone()];
    let st = s
        .ingest_unit(Unit {
            now: t("2026-12-01T00:00:00Z"),
            write: Write::Restore,
            findings: Findings::Streamed(
                Box::new(|w| {
                    for f in &rows {
                        w.finding(f)?;
                    }
                    Ok(())
                }),
                Reading::WholeOrNothing,
            ),
            state: vec![],
            run: None,
        })
        .unwrap();
    assert_eq!(st.new, 0, "a restore stamps nothing");
    assert_eq!(s.count().unwrap(), 3);
    assert_eq!(s.get(&third.fingerprint).unwrap().unwrap(), third);
    assert_eq!(s.get(&a.fingerprint).unwrap().unwrap(), given);
}

/// The URLs that open findings of other sources report: their `url` and `*url*` extra fields.
pub fn reported_urls_are_those_of_open_findings_of_others(s: Fresh) {
    let s = s.store.as_ref();
    let mut a = finding("a", Some("192.0.2.1"), None);
    a.url = Some("http://www.example.org/a".into());
    a.set_extra("http_url", "http://www.example.org/b");
    a.set_extra("note", "http://www.example.org/not-a-url-field");
    a.seal();
    let mut mine = finding("b", Some("192.0.2.2"), None);
    mine.source = "safebrowsing".into();
    mine.url = Some("http://www.example.org/mine".into());
    mine.seal();
    let mut gone = finding("c", Some("192.0.2.3"), None);
    gone.url = Some("http://www.example.org/gone".into());
    gone.seal();
    s.ingest(
        vec![a, mine, gone.clone()],
        vec![],
        &opts("2026-11-01T00:00:00Z"),
    )
    .unwrap();
    s.modify(&[gone.fingerprint.clone()], &mut |f| {
        f.status = Status::Resolved;
        true
    })
    .unwrap();
    let mut urls = Vec::new();
    s.reported_urls("safebrowsing", &mut |r| {
        urls.push(r.url.to_string());
        assert_eq!(r.finding.source, "test");
        Ok(ControlFlow::Continue(()))
    })
    .unwrap();
    urls.sort();
    assert_eq!(
        urls,
        vec!["http://www.example.org/a", "http://www.example.org/b"]
    );
}

/// `count` counts findings; `get` finds one by fingerprint, or none.
pub fn count_and_get(s: Fresh) {
    let s = s.store.as_ref();
    assert_eq!(s.count().unwrap(), 0);
    let fs: Vec<Finding> = (0..20)
        .map(|i| finding("a", Some(&format!("192.0.2.{i}")), None))
        .collect();
    s.ingest(fs.clone(), vec![], &opts("2026-11-01T00:00:00Z"))
        .unwrap();
    assert_eq!(s.count().unwrap(), 20);
    let got = s.get(&fs[7].fingerprint).unwrap().unwrap();
    assert_eq!(got.ip, fs[7].ip);
    assert!(s.get(&"ab".repeat(16)).unwrap().is_none());
    assert!(s.get("not a fingerprint").unwrap().is_none());
    s.flush().unwrap();
    // The size on disk, where the backend can tell it (sled, PostgreSQL; not the socket).
    if let Some(n) = s.size_on_disk().unwrap() {
        assert!(n > 0);
    }
}

/// Triage (`outwatch ack`, `resolve`, `note`) is a change of stored findings through `modify`:
/// its history entries come back with who and why; an ack survives a new observation; a
/// finding resolved by hand reopens when its source reports it again.
pub fn triage_is_kept_with_who_and_why(s: Fresh) {
    use outwatch::finding::{Event, Triage};
    use outwatch::triage::actions::{self, Action, Target};
    let s = s.store.as_ref();
    let a = finding("a", Some("192.0.2.1"), None);
    let b = finding("a", Some("192.0.2.2"), None);
    s.ingest(
        vec![a.clone(), b.clone()],
        vec![],
        &opts("2026-11-01T00:00:00Z"),
    )
    .unwrap();
    let who = |by: &str, text: &str| Triage {
        by: by.into(),
        text: text.into(),
    };
    let now = t("2026-11-02T00:00:00Z");
    let fa = vec![a.fingerprint.clone()];
    let ack = who("alice", "our honeypot");
    assert_eq!(actions::apply(s, &fa, Action::Ack, &ack, now).unwrap(), 1);
    let note = who("bob", "ticket INC-1, \"quoted\" {x}");
    assert_eq!(actions::apply(s, &fa, Action::Note, &note, now).unwrap(), 1);
    let f = s.get(&a.fingerprint).unwrap().unwrap();
    assert!(outwatch::triage::is_acked(&f));
    let events: Vec<&Event> = f.history.iter().map(|h| &h.event).collect();
    assert_eq!(
        events,
        vec![
            &Event::New,
            &Event::Ack(ack.clone()),
            &Event::Note(note.clone())
        ]
    );
    // Seen again: still acknowledged.
    s.ingest(vec![a.clone()], vec![], &opts("2026-11-03T00:00:00Z"))
        .unwrap();
    assert!(outwatch::triage::is_acked(
        &s.get(&a.fingerprint).unwrap().unwrap()
    ));
    // By a fingerprint's start and by query.
    let start = Target::Fingerprint(b.fingerprint[..8].to_string());
    assert_eq!(
        actions::select(s, &start, Action::Note).unwrap().apply[0].0,
        b.fingerprint
    );
    let net = Target::Query(Query::Net("192.0.2.0/24".parse().unwrap()));
    assert_eq!(actions::select(s, &net, Action::Note).unwrap().matched(), 2);
    // Resolved by hand: out of the open findings, then back when reported again.
    let fb = vec![b.fingerprint.clone()];
    let fixed = who("carol", "patched");
    assert_eq!(
        actions::apply(s, &fb, Action::Resolve, &fixed, now).unwrap(),
        1
    );
    let f = s.get(&b.fingerprint).unwrap().unwrap();
    assert_eq!(f.status, Status::Resolved);
    assert_eq!(
        f.history.last().unwrap().event,
        Event::Resolved(Some(fixed))
    );
    assert_eq!(
        actions::select(s, &net, Action::Note).unwrap().matched(),
        1,
        "open ones only"
    );
    // Resolving it again does not apply.
    assert_eq!(
        actions::apply(s, &fb, Action::Resolve, &who("x", "y"), now).unwrap(),
        0
    );
    s.ingest(vec![b.clone()], vec![], &opts("2026-11-04T00:00:00Z"))
        .unwrap();
    let f = s.get(&b.fingerprint).unwrap().unwrap();
    assert_eq!(f.status, Status::Open);
    assert_eq!(f.history.last().unwrap().event, Event::Reopened);
}

/// Suppression rules added with `outwatch suppress add` are state (`triage/suppress/<id>`):
/// listed in order, ids never reused, removed by id.
pub fn suppression_rules_are_state(s: Fresh) {
    use outwatch::triage::suppress::{self, Origin, Rule, Suppressions};
    let s = s.store.as_ref();
    let rule = |cidr: &str| Rule {
        id: String::new(),
        origin: Origin::Store,
        cidr: Some(cidr.parse().unwrap()),
        asn: None,
        domain: None,
        source: None,
        feed: None,
        identifier: None,
        port: None,
        until: t("2026-12-01T00:00:00Z"),
        reason: "ours".into(),
        by: "alice".into(),
        created: None,
    };
    let now = t("2026-11-01T00:00:00Z");
    let one = suppress::add(s, rule("192.0.2.0/24"), now).unwrap();
    let two = suppress::add(s, rule("198.51.100.0/24"), now).unwrap();
    assert_eq!((one.id.as_str(), two.id.as_str()), ("1", "2"));
    assert_eq!(suppress::stored(s).unwrap(), vec![one.clone(), two.clone()]);
    assert_eq!(suppress::remove(s, "2").unwrap(), Some(two));
    assert_eq!(suppress::remove(s, "2").unwrap(), None);
    let three = suppress::add(s, rule("203.0.113.0/24"), now).unwrap();
    assert_eq!(three.id, "3", "ids are not reused");
    let supp = Suppressions::load(s, None, now).unwrap();
    assert_eq!(supp.rules().len(), 2);
    let f = finding("a", Some("192.0.2.9"), None);
    assert_eq!(supp.matches(&f).map(|r| r.id.as_str()), Some("1"));
    let later = Suppressions::load(s, None, t("2026-12-01T00:00:00Z")).unwrap();
    assert!(later.matches(&f).is_none(), "ended at its until");
}

/// `select` hands what a worklist filter lets through, each once, whichever store walk it
/// takes (the whole store, merged prefixes, one domain), and stops when its callback does.
pub fn a_worklist_selects_by_its_filter(s: Fresh) {
    let s = s.store.as_ref();
    let mut net = finding("drop", None, None);
    net.network = Some("10.8.0.0/15".parse().unwrap());
    net.port = None;
    net.severity = Severity::High;
    net.seal();
    let mut old = scan("10.8.1.1", 5, "old banner");
    old.time_source = Some(t("2016-11-20T11:05:10Z"));
    old.seal();
    let mut gone = finding("scan", Some("10.9.0.1"), None);
    gone.port = Some(22);
    gone.seal();
    let mut batch = vec![
        net.clone(),
        old.clone(),
        finding("scan", Some("10.8.0.1"), Some("a.example.org")),
        finding("scan", Some("10.9.0.1"), None),
        finding("web", None, Some("www.example.org")),
        gone.clone(),
    ];
    for i in 0..20 {
        batch.push(finding("scan", Some(&format!("10.10.0.{i}")), None));
    }
    s.ingest(batch, vec![], &opts("2026-11-01T00:00:00Z"))
        .unwrap();
    s.resolve_stale(
        "test",
        Some("scan"),
        t("2026-11-02T00:00:00Z"),
        t("2026-11-02T00:00:00Z"),
    )
    .unwrap();
    // Everything but the scans just resolved is back; here again observed at another time.
    s.ingest(
        vec![
            net.clone(),
            old.clone(),
            finding("web", None, Some("www.example.org")),
        ],
        vec![],
        &opts("2026-11-03T00:00:00Z"),
    )
    .unwrap();
    let select = |args: &[(&str, &str)]| {
        let filter = Filter::parse(args.iter().copied()).unwrap();
        let mut out = Vec::new();
        let totals = s
            .select(&filter, &mut |f| {
                assert!(filter.matches(&f));
                out.push(f);
                Ok(ControlFlow::Continue(()))
            })
            .unwrap();
        assert_eq!(totals.handed, out.len());
        let mut d = fps(&out);
        d.dedup();
        assert_eq!(d.len(), out.len(), "each finding once: {args:?}");
        out
    };
    // New and open by default: the resolved scans are out.
    assert_eq!(select(&[]).len(), 3);
    assert_eq!(select(&[("status", "all")]).len(), 26);
    assert_eq!(select(&[("status", "resolved")]).len(), 23);
    assert_eq!(
        select(&[("status", "resolved"), ("prefix", "10.9.0.0/24")]).len(),
        2
    );
    // Two overlapping prefixes and a network across both: each finding once.
    let both = select(&[
        ("status", "all"),
        ("prefix", "10.8.0.0/16"),
        ("prefix", "10.9.0.0/16"),
        ("prefix", "10.8.1.0/24"),
    ]);
    assert_eq!(both.len(), 5);
    assert_eq!(fps(&select(&[("severity", "high")])), fps(&[net.clone()]));
    assert_eq!(
        select(&[("status", "all"), ("domain", "example.org")]).len(),
        2
    );
    // Observed in 2016, stored in 2026: the observation decides --since, the store --stored-since.
    let recent = select(&[("since", "2026-01-01")]);
    assert!(recent.iter().all(|f| f.fingerprint != old.fingerprint));
    assert_eq!(recent.len(), 2);
    assert_eq!(
        fps(&select(&[
            ("until", "2017-01-01"),
            ("stored-since", "2026-11-03")
        ])),
        fps(&[old])
    );
    // A callback that stops ends the walk, on the whole store and on prefixes.
    for args in [
        vec![("status", "all")],
        vec![("status", "all"), ("prefix", "10.10.0.0/24")],
    ] {
        let filter = Filter::parse(args.iter().copied()).unwrap();
        let mut seen = 0;
        let totals = s
            .select(&filter, &mut |_| {
                seen += 1;
                Ok(if seen == 3 {
                    ControlFlow::Break(())
                } else {
                    ControlFlow::Continue(())
                })
            })
            .unwrap();
        assert_eq!(
            (seen, totals.handed, totals.stopped),
            (3, 3, true),
            "{args:?}"
        );
    }
}

/// A turn nobody holds is given, and given again once dropped (who else may hold one is the
/// backend's: the PostgreSQL tests check two holders).
pub fn a_turn_nobody_holds_is_given(s: Fresh) {
    let s = s.store.as_ref();
    let turn = s.try_turn("source/test").unwrap();
    assert!(turn.is_some());
    drop(turn);
    assert!(s.try_turn("source/test").unwrap().is_some());
}

/// Feed text with control characters, NUL, backslashes and non-ASCII comes back exactly.
pub fn untrusted_text_comes_back_as_it_went_in(s: Fresh) {
    let s = s.store.as_ref();
    let odd = "tab\there\nnewline \\ back\\slash \u{0} nul \r ✓ \u{1b}[31m \"quoted\"";
    let mut f = finding("a", Some("192.0.2.9"), Some("xn--bcher-kva.example"));
    f.url = Some(format!("http://192.0.2.9/{odd}"));
    f.raw = Some(odd.into());
    f.set_extra("banner", odd);
    f.set_extra("big", serde_json::json!(18446744073709551615u64));
    f.set_extra("float", serde_json::json!(0.1));
    f.seal();
    s.ingest(vec![f.clone()], vec![], &opts("2026-11-01T00:00:00Z"))
        .unwrap();
    let got = s.get(&f.fingerprint).unwrap().unwrap();
    assert_eq!(got.url, f.url);
    assert_eq!(got.raw, f.raw);
    assert_eq!(got.extra, f.extra);
    assert_eq!(fps(&q(s, "192.0.2.9".parse().unwrap())), fps(&[f]));
}
