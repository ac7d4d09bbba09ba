//! Foundation benchmarks (issue #2). Run: `cargo bench --bench perf` (release profile).
//!
//! 1. Scope matching: 10M random IPv4 addresses against 5,000 random prefixes (/12../28, plus
//!    IPv6 prefixes that the IPv4 path never sees), on one thread. Target ≥ 20M lookups/s.
//! 2. `lookup` of one IP in a store of 1M findings, in process: 20,000 random queries, latency
//!    percentiles. Target p99 < 1 ms.
//! 3. The whole CLI invocation `outwatch lookup IP --json` on that store (process start, sled
//!    open, query, print): 30 runs. Target < 50 ms.
//!
//! Set `OUTWATCH_BENCH_FINDINGS` to change the store size (default 1,000,000). The store is
//! built once under `target/bench-store-<N>` and reused by later runs.

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use ipnet::IpNet;
use outwatch::flows::sample::Rng;
use outwatch::scope::{AsnPrefixes, ScopeMatcher, ScopeSnapshot};
use outwatch::store::{self, Query, QueryOptions, Store};

mod common;
use common::{Layout, build_store};

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

fn bench_scope() {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut prefixes = Vec::with_capacity(5_000);
    for i in 0..5_000 {
        if i % 10 == 9 {
            let a = Ipv6Addr::from(((0x2001_0db8u128) << 96) | (rng.next() as u128) << 32);
            prefixes.push(IpNet::new(IpAddr::V6(a), 48).unwrap().trunc());
        } else {
            let len = 12 + (rng.next() % 17) as u8; // /12 .. /28
            let a = Ipv4Addr::from(rng.next() as u32);
            prefixes.push(IpNet::new(IpAddr::V4(a), len).unwrap().trunc());
        }
    }
    let snap = ScopeSnapshot {
        asns: vec![AsnPrefixes {
            asn: 64496,
            prefixes,
            ..Default::default()
        }],
        ..Default::default()
    };
    let t0 = Instant::now();
    let m = ScopeMatcher::new(&snap);
    let build = t0.elapsed();
    const N: usize = 10_000_000;
    let ips: Vec<Ipv4Addr> = (0..N).map(|_| Ipv4Addr::from(rng.next() as u32)).collect();
    // Warm-up pass, then the measured pass.
    let mut hits = 0usize;
    for ip in &ips[..1_000_000] {
        hits += m.contains_v4(*ip) as usize;
    }
    black_box(hits);
    let t0 = Instant::now();
    let mut hits = 0usize;
    for ip in &ips {
        hits += m.contains_ip(IpAddr::V4(black_box(*ip))) as usize;
    }
    let el = t0.elapsed();
    let (r4, r6) = m.range_counts();
    println!(
        "scope: 5,000 prefixes ({r4} merged v4 ranges, {r6} v6) built in {:.2} ms; \
         {N} lookups in {:.3} s = {:.1} M lookups/s on one thread ({hits} hits)",
        build.as_secs_f64() * 1e3,
        el.as_secs_f64(),
        N as f64 / el.as_secs_f64() / 1e6
    );
}

fn bench_lookup(path: &Path, n: u64) {
    let s = store::open(path).unwrap();
    let mut rng = Rng(7);
    let mut lat = Vec::with_capacity(20_000);
    let mut found = 0;
    for _ in 0..20_000 {
        let i = rng.next() % n;
        let ip = IpAddr::V4(common::address(i, Layout::Ten8));
        let t0 = Instant::now();
        let r = s.query(&Query::Ip(ip), &QueryOptions::default()).unwrap();
        lat.push(t0.elapsed());
        found += r.len();
    }
    lat.sort();
    println!(
        "lookup in process ({n} findings): p50 {:?}, p99 {:?}, max {:?} ({found} findings returned)",
        percentile(&lat, 0.5),
        percentile(&lat, 0.99),
        lat.last().unwrap()
    );
}

fn bench_cli(path: &Path) {
    let exe = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/release/outwatch");
    if !exe.exists() {
        println!("cli: skipped (build it first: cargo build --release)");
        return;
    }
    let mut lat = Vec::new();
    for k in 0..30 {
        let ip = format!("10.0.{}.{}", k, k * 7 % 255);
        let t0 = Instant::now();
        let out = std::process::Command::new(&exe)
            .args([
                "--data-dir",
                path.to_str().unwrap(),
                "lookup",
                &ip,
                "--json",
            ])
            .env_remove("OUTWATCH_CONFIG")
            .output()
            .unwrap();
        lat.push(t0.elapsed());
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    lat.sort();
    println!(
        "cli `outwatch lookup IP --json`: p50 {:?}, p90 {:?}, max {:?} (30 runs)",
        percentile(&lat, 0.5),
        percentile(&lat, 0.9),
        lat.last().unwrap()
    );
}

fn main() {
    // `cargo test --benches` runs bench binaries with `--bench` absent; do nothing then.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    bench_scope();
    let n: u64 = std::env::var("OUTWATCH_BENCH_FINDINGS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let path = common::store_path(n, Layout::Ten8);
    build_store(&path, n, Layout::Ten8);
    bench_lookup(&path, n);
    bench_cli(&path);
}
