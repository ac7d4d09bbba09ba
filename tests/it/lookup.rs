//! `outwatch lookup` of large results: streamed `--json` and `--jsonl` with every finding, the
//! table cut at `--limit` with the total, and one shape of a finding shared with `export`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use outwatch::finding::{Classification, Finding, Severity};
use outwatch::store::{self, IngestOptions, Store};
use serde_json::Value;

use crate::support::{cli, feeds_off};

/// Findings sharing the domain `isp.example` through their host names.
const SHARED: usize = 2_500;

fn setup() -> (tempfile::TempDir, PathBuf) {
    let d = tempfile::tempdir().unwrap();
    let cfg = d.path().join("outwatch.toml");
    std::fs::write(
        &cfg,
        format!(
            "[organisation]\nname = \"Test\"\nprefixes = [\"10.0.0.0/8\"]\n\n[store]\npath = \"data\"\n\n{}",
            feeds_off()
        ),
    )
    .unwrap();
    seed(&d.path().join("data"));
    (d, cfg)
}

/// `SHARED` scanned hosts over 10.0.0.0/8, named under `isp.example`, of every severity and
/// a few times (so the orders are tested), plus one finding elsewhere.
fn seed(data: &Path) {
    let s = store::open(data).unwrap();
    let sev = [
        Severity::Info,
        Severity::Low,
        Severity::Medium,
        Severity::High,
        Severity::Critical,
    ];
    let batch: Vec<Finding> = (0..SHARED as u32)
        .map(|i| {
            let mut f = Finding::new(
                "shadowserver",
                "scan_dns",
                Classification::new("", "vulnerable-system", "open-resolver"),
                sev[(i as usize * 7) % 5],
            );
            let a = i.wrapping_mul(2_654_435_761).to_be_bytes();
            f.ip = Some(std::net::IpAddr::from([10, a[1], a[2], a[3]]));
            f.domain = Some(format!("host-{i}.dyn.isp.example"));
            f.port = Some(53);
            f.seal();
            f
        })
        .collect();
    for (k, chunk) in batch.chunks(SHARED / 5).enumerate() {
        let now =
            DateTime::<Utc>::from_timestamp(1_790_000_000 + k as i64 * 3_600, 123_456_000).unwrap();
        s.ingest(chunk.to_vec(), vec![], &IngestOptions { now })
            .unwrap();
    }
    let mut other = Finding::new(
        "feodotracker",
        "ipblocklist",
        Classification::new("", "c2-server", "dridex"),
        Severity::High,
    );
    other.ip = Some("192.0.2.1".parse().unwrap());
    other.seal();
    let now = DateTime::<Utc>::from_timestamp(1_790_000_000, 0).unwrap();
    s.ingest(vec![other], vec![], &IngestOptions { now })
        .unwrap();
    s.flush().unwrap();
}

fn lookup(d: &Path, cfg: &Path, args: &[&str]) -> std::process::Output {
    let out = cli(d)
        .arg("--config")
        .arg(cfg)
        .arg("lookup")
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn fingerprints<'a>(v: impl IntoIterator<Item = &'a Value>) -> Vec<String> {
    v.into_iter()
        .map(|f| f["fingerprint"].as_str().unwrap().to_string())
        .collect()
}

/// The rank of a finding for people: most severe first, then newest.
fn rank(f: &Value) -> (usize, std::cmp::Reverse<String>) {
    let sev = ["critical", "high", "medium", "low", "info"];
    let s = f["severity"].as_str().unwrap();
    (
        sev.iter().position(|x| *x == s).unwrap(),
        std::cmp::Reverse(f["last_seen"].as_str().unwrap().to_string()),
    )
}

#[test]
fn json_streams_every_finding_of_a_shared_domain_as_one_object() {
    let (d, cfg) = setup();
    for q in ["isp.example", "dyn.isp.example", "10.0.0.0/8"] {
        let out = lookup(d.path(), &cfg, &[q, "--json"]);
        let v: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "{q}: not JSON ({e}): {}",
                String::from_utf8_lossy(&out.stdout)
            )
        });
        assert_eq!(v["query"], q);
        assert_eq!(v["in_scope"], q == "10.0.0.0/8");
        let fps = fingerprints(v["findings"].as_array().unwrap());
        let distinct: BTreeSet<&String> = fps.iter().collect();
        assert_eq!((fps.len(), distinct.len()), (SHARED, SHARED), "{q}");
        assert_eq!(v["total"], SHARED);
        // One finding per line between the object's first and last lines.
        let text = String::from_utf8(out.stdout).unwrap();
        assert_eq!(text.lines().count(), SHARED + 2);
    }
    // Nothing found: still one valid object.
    let out = lookup(d.path(), &cfg, &["nothing.example", "--json"]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["findings"].as_array().unwrap().len(), 0);
    assert_eq!(v["total"], 0);
}

#[test]
fn jsonl_gives_one_finding_per_line_in_the_shape_of_export() {
    let (d, cfg) = setup();
    let out = lookup(d.path(), &cfg, &["isp.example", "--jsonl"]);
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), SHARED);
    let export = cli(d.path())
        .arg("--config")
        .arg(&cfg)
        .args(["export", "--jsonl"])
        .output()
        .unwrap();
    assert!(export.status.success());
    let exported: BTreeSet<String> = String::from_utf8(export.stdout)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    assert_eq!(exported.len(), SHARED + 1);
    // Byte for byte the lines `export` writes: one shape, full time precision.
    for l in &lines {
        assert!(exported.contains(*l), "not as exported: {l}");
    }
    let f: Value = serde_json::from_str(lines[0]).unwrap();
    assert!(
        f["last_seen"].as_str().unwrap().ends_with(".123456Z"),
        "{f}"
    );
    assert_eq!(f["classification"]["type"], "vulnerable-system");
    assert!(f["history"].is_array());
}

#[test]
fn limit_cuts_the_table_and_says_how_many_more() {
    let (d, cfg) = setup();
    let text = |args: &[&str]| String::from_utf8(lookup(d.path(), &cfg, args).stdout).unwrap();
    let t = text(&["isp.example"]);
    // The heading comes first (with the first finding), the count last.
    assert!(
        t.starts_with("isp.example (not in your scope): most severe first"),
        "{t}"
    );
    assert!(
        t.contains("2,500 finding(s); … and 2,450 more not shown; use --limit N or --json"),
        "{t}"
    );
    let rows =
        |t: &str| t.matches("open-resolver").count() + t.matches("vulnerable-system").count();
    let default_rows = rows(&t);
    let t = text(&["isp.example", "--limit", "5"]);
    assert!(t.contains("… and 2,495 more"), "{t}");
    assert!(
        rows(&t) * 10 == default_rows,
        "{} vs {default_rows}",
        rows(&t)
    );
    // The most severe come first.
    assert!(t.contains("critical") && !t.contains("info"), "{t}");
    let t = text(&["isp.example", "--limit", "3000"]);
    assert!(!t.contains("more not shown"), "{t}");
    assert!(t.contains("2,500 finding(s)"), "{t}");
    let t = text(&["192.0.2.1"]);
    assert!(
        t.contains("1 finding(s)") && !t.contains("more not shown"),
        "{t}"
    );
}

#[test]
fn limit_with_json_gives_the_first_n_most_severe_then_newest() {
    let (d, cfg) = setup();
    let out = lookup(d.path(), &cfg, &["isp.example", "--json", "--limit", "40"]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let got = v["findings"].as_array().unwrap();
    assert_eq!(got.len(), 40);
    assert_eq!(v["total"], SHARED);
    let all: Value =
        serde_json::from_slice(&lookup(d.path(), &cfg, &["isp.example", "--json"]).stdout).unwrap();
    let mut all = all["findings"].as_array().unwrap().clone();
    all.sort_by_key(rank);
    assert_eq!(
        got.iter().map(rank).collect::<Vec<_>>(),
        all[..40].iter().map(rank).collect::<Vec<_>>()
    );
    let out = lookup(d.path(), &cfg, &["isp.example", "--jsonl", "--limit", "2"]);
    assert_eq!(String::from_utf8(out.stdout).unwrap().lines().count(), 2);
    let out = lookup(d.path(), &cfg, &["isp.example", "--jsonl", "--limit", "0"]);
    assert!(out.stdout.is_empty());
}

#[test]
fn json_and_jsonl_exclude_each_other() {
    let (d, cfg) = setup();
    cli(d.path())
        .arg("--config")
        .arg(&cfg)
        .args(["lookup", "isp.example", "--json", "--jsonl"])
        .assert()
        .failure()
        .code(2);
}
