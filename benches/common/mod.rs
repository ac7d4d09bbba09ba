//! The synthetic store the benchmarks share: N findings, one per distinct IPv4 address, built
//! once under `target/bench-store-*` and reused by later runs (a `complete` file marks it done).

#![allow(dead_code)] // each bench uses a part

use std::io::Read;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use chrono::{DateTime, Utc};
use outwatch::finding::{Classification, Finding, Severity};
use outwatch::flows::sample::Rng;
use outwatch::store::{self, IngestOptions, Store};

/// Where the findings' addresses lie.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// 10.0.0.0/8 upwards, in order (`perf`).
    Ten8,
    /// Spread over all of IPv4 (a bijection of the index, so every address is distinct).
    Internet,
}

/// The address of the i-th finding.
pub fn address(i: u64, layout: Layout) -> Ipv4Addr {
    match layout {
        Layout::Ten8 => Ipv4Addr::from(0x0A00_0000u32 | (i as u32 & 0x00FF_FFFF)),
        Layout::Internet => Ipv4Addr::from((i as u32).wrapping_mul(2_654_435_761) ^ 0x5a5a_5a5a),
    }
}

/// The i-th finding: a Shadowserver scan row with a port, an ASN and two extra fields.
pub fn synthetic(i: u64, rng: &mut Rng, layout: Layout) -> Finding {
    let feeds = [
        "scan_http",
        "scan_dns",
        "scan_ssh",
        "event4_sinkhole",
        "blocklist",
    ];
    let mut f = Finding::new(
        "shadowserver",
        feeds[(i % 5) as usize],
        Classification::new("", "vulnerable-system", "open-service"),
        Severity::Medium,
    );
    f.ip = Some(IpAddr::V4(address(i, layout)));
    f.port = Some((rng.next() % 65535) as u16);
    f.protocol = Some("tcp".into());
    f.asn = Some(64496);
    f.set_extra("tag", "http,cve-2024-1234");
    f.set_extra("hostname", format!("host-{i}.example.net"));
    f.seal();
    f
}

/// `target/bench-store-N` (10/8) or `target/bench-store-N-internet`.
pub fn store_path(n: u64, layout: Layout) -> PathBuf {
    let suffix = if layout == Layout::Internet {
        "-internet"
    } else {
        ""
    };
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("target/bench-store-{n}{suffix}"))
}

/// Builds the store at `path` unless a complete one is there.
pub fn build_store(path: &Path, n: u64, layout: Layout) {
    if path.join("complete").exists() {
        return;
    }
    let _ = std::fs::remove_dir_all(path);
    let s = store::open(path).expect("open bench store");
    let now: DateTime<Utc> = DateTime::parse_from_rfc3339("2026-11-20T00:00:00Z")
        .unwrap()
        .with_timezone(&Utc);
    let mut rng = Rng(42);
    let t0 = Instant::now();
    let mut i = 0;
    while i < n {
        let end = (i + 10_000).min(n);
        let batch: Vec<Finding> = (i..end).map(|k| synthetic(k, &mut rng, layout)).collect();
        s.ingest(batch, vec![], &IngestOptions { now }).unwrap();
        i = end;
    }
    s.flush().unwrap();
    println!(
        "store: ingested {n} findings in {:.1} s ({:.0} findings/s)",
        t0.elapsed().as_secs_f64(),
        n as f64 / t0.elapsed().as_secs_f64()
    );
    std::fs::write(path.join("complete"), b"").unwrap();
}

/// One whole CLI run.
pub struct Run {
    pub first_ms: Option<f64>,
    pub total_ms: f64,
    pub lines: usize,
    pub peak_mib: f64,
    pub ok: bool,
}

/// Runs the CLI; `first_at` is the line number (1-based) whose end counts as the first finding.
/// The child is reaped by `libc::wait4` (which also gives its peak RSS), not `Child::wait`.
#[allow(clippy::zombie_processes)]
pub fn run_cli(bin: &Path, cfg: &Path, args: &[&str], first_at: usize) -> Run {
    let start = Instant::now();
    let mut child = Command::new(bin)
        .arg("--config")
        .arg(cfg)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("run outwatch");
    let mut out = child.stdout.take().expect("piped");
    let mut buf = vec![0u8; 1 << 16];
    let (mut lines, mut first_ms) = (0usize, None);
    loop {
        let n = out.read(&mut buf).expect("read stdout");
        if n == 0 {
            break;
        }
        let nl = buf[..n].iter().filter(|&&b| b == b'\n').count();
        if first_ms.is_none() && lines + nl >= first_at {
            first_ms = Some(start.elapsed().as_secs_f64() * 1e3);
        }
        lines += nl;
    }
    let mut status = 0;
    // SAFETY: an all-zero rusage is valid; wait4 fills it for our own child.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    let pid = child.id() as libc::pid_t;
    // SAFETY: waits for our own child, whose pid std has not reaped (no wait() was called).
    unsafe { libc::wait4(pid, &mut status, 0, &mut ru) };
    Run {
        first_ms,
        total_ms: start.elapsed().as_secs_f64() * 1e3,
        lines,
        peak_mib: ru.ru_maxrss as f64 / 1024.0,
        ok: libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
    }
}

/// Addresses for `lookup IP` timings: up to `n` of the findings `query` finds on the store of
/// `cfg` (hits), and `n` pseudo-random IPv4 addresses (mostly misses; the same in every run).
pub fn lookup_addresses(
    bin: &Path,
    cfg: &Path,
    query: &str,
    n: usize,
) -> (Vec<String>, Vec<String>) {
    let out = Command::new(bin)
        .arg("--config")
        .arg(cfg)
        .args(["lookup", query, "--jsonl", "--limit", &n.to_string()])
        .output()
        .expect("lookup");
    let hits: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| v["ip"].as_str().map(str::to_string))
        .collect();
    let mut x: u32 = 0x2545_f491;
    let misses: Vec<String> = (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            std::net::Ipv4Addr::from(x).to_string()
        })
        .collect();
    (hits, misses)
}
