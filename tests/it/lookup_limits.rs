//! Issue #21 item 8: `lookup --limit` beyond what is reasonable to sort in memory streams
//! instead (or, for the table, is cut with a note), and through the daemon the table is
//! computed by the daemon (`top`, protocol revision 2): only its rows cross the socket.

use std::sync::Arc;

use crate::keyed_support::*;
use outwatch::commands::lookup::MAX_SORTED;
use outwatch::daemon::remote::RemoteStore;
use outwatch::daemon::socket;
use outwatch::finding::{Classification, Finding, Severity};
use outwatch::store::{IngestOptions, Query, QueryOptions, Store};

/// `n` findings on 10.0.0.0/8 with every severity and several times.
fn findings(n: u32) -> Vec<Finding> {
    let sev = [
        Severity::Info,
        Severity::Low,
        Severity::Medium,
        Severity::High,
        Severity::Critical,
    ];
    (0..n)
        .map(|i| {
            let mut f = Finding::new(
                "shadowserver",
                "scan_dns",
                Classification::new("vulnerable", "vulnerable-system", "dns-open-resolver"),
                sev[(i as usize * 7) % 5],
            );
            f.ip = Some(std::net::Ipv4Addr::from(0x0A00_0000 + i * 3).into());
            f.seal();
            f
        })
        .collect()
}

fn store_of(dir: &std::path::Path, n: u32) -> Arc<dyn Store> {
    let s: Arc<dyn Store> = Arc::new(outwatch::store::open(dir).unwrap());
    for (i, chunk) in findings(n).chunks(5000).enumerate() {
        let now = t(NOW) + chrono::Duration::minutes(i as i64);
        s.ingest(chunk.to_vec(), vec![], &IngestOptions { now })
            .unwrap();
    }
    s.flush().unwrap();
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemon_computes_the_table_and_sends_only_its_rows() {
    let d = tempfile::tempdir().unwrap();
    let data = d.path().join("data");
    let store = store_of(&data, 3000);
    let q = Query::Net("10.0.0.0/8".parse().unwrap());
    let (direct, total) = store
        .most_severe(&q, &QueryOptions::default(), 50, &mut || {})
        .unwrap();
    assert_eq!((direct.len(), total), (50, 3000));
    assert!(direct.iter().all(|f| f.severity == Severity::Critical));
    let (listener, _) = socket::bind(&data).unwrap();
    let (_stop, rx) = tokio::sync::watch::channel(false);
    let info: socket::InfoFn = Arc::new(|| serde_json::json!({"pid": 1}));
    tokio::spawn(socket::serve(
        listener,
        store,
        info,
        rx,
        socket::Access::Read,
    ));
    let (remote, remote_total, revision) = tokio::task::spawn_blocking(move || {
        let r = RemoteStore::connect(&data).expect("the daemon answers");
        let mut found = 0;
        let (top, total) = r
            .most_severe(&q, &QueryOptions::default(), 50, &mut || found += 1)
            .unwrap();
        assert_eq!(found, 1);
        (top, total, r.hello().revision)
    })
    .await
    .unwrap();
    assert_eq!(revision, outwatch::daemon::protocol::PROTOCOL_REVISION);
    assert_eq!(remote_total, 3000);
    let fps = |v: &[Finding]| v.iter().map(|f| f.fingerprint.clone()).collect::<Vec<_>>();
    assert_eq!(fps(&remote), fps(&direct));
}

#[test]
fn a_limit_past_what_is_sorted_in_memory_streams_or_is_cut_with_a_note() {
    let d = tempfile::tempdir().unwrap();
    let data = d.path().join("data");
    let n = MAX_SORTED as u32 + 500;
    drop(store_of(&data, n));
    let run = |args: &[&str]| {
        let o = crate::support::cli(d.path())
            .arg("--data-dir")
            .arg(&data)
            .args(args)
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        (
            String::from_utf8(o.stdout).unwrap(),
            String::from_utf8(o.stderr).unwrap(),
        )
    };
    // --json above the bound: the first N as found, unsorted, said so; the total counts all.
    let asked = MAX_SORTED + 100;
    let (out, _) = run(&[
        "lookup",
        "10.0.0.0/8",
        "--json",
        "--limit",
        &asked.to_string(),
    ]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["sorted"], false);
    assert_eq!(v["findings"].as_array().unwrap().len(), asked);
    assert_eq!(v["total"], n);
    // Within the bound: sorted, most severe first.
    let (out, _) = run(&["lookup", "10.0.0.0/8", "--json", "--limit", "20"]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["sorted"], true);
    let sevs: Vec<&str> = v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["severity"].as_str().unwrap())
        .collect();
    assert_eq!(sevs, ["critical"; 20]);
    // --jsonl above the bound: a note on stderr.
    let (out, err) = run(&[
        "lookup",
        "10.0.0.0/8",
        "--jsonl",
        "--limit",
        &asked.to_string(),
    ]);
    assert_eq!(out.lines().count(), asked);
    assert!(err.contains("not sorted"), "{err}");
    // The table is cut to the bound, with a note.
    let (out, err) = run(&["lookup", "10.0.0.0/8", "--limit", "1000000"]);
    assert!(err.contains("more than a table sorts in memory"), "{err}");
    assert!(
        out.contains(&format!(
            "… and {} more not shown",
            outwatch::text::thousands(n as usize - MAX_SORTED)
        )),
        "{}",
        &out[out.len().saturating_sub(300)..]
    );
}
