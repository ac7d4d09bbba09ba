//! Benchmark: 10,000,000 generated connections through the flows `Analyser` (no reading, no
//! store): conns/s and peak memory.
//!
//! Method: a fixed-seed generator makes `Conn`s over seven days: 20,000 internal hosts
//! (10.0.0.0/8, in 50 teams of /24s), one DMZ zone with `outbound = false`, 2,000,000
//! distinct external peers (so the per-host peer caps and the global aggregate cap are
//! exercised), services drawn from ssl/http/dns/ssh/smb and 300 made-up names (so the service
//! cap folds some), 1 in 1,000 connections over an hour, 1 in 500 TLS on an odd port, 1 in
//! 2,000 to one of 5,000 listed C2 addresses (an `IndicatorIndex` of 5,000 hosts with ports
//! and 500 networks). The analyser's `finish` (findings, outlier rule) is timed with it.
//!
//! Run: `cargo bench --bench flows_analyse` (release). `FLOWS_BENCH_N` sets the count.
//! Peak memory: VmHWM of this process from `/proc/self/status`, printed at the end; the
//! generator's own memory is constant (no buffer of connections).

use std::net::{IpAddr, Ipv4Addr};
use std::time::Instant;

use chrono::Utc;
use outwatch::flows::analyse::{Analyser, Settings};
use outwatch::flows::config::{FlowsConfig, TeamConfig, ZoneConfig};
use outwatch::flows::sample::Rng;
use outwatch::flows::{Conn, Proto};
use outwatch::indicators::{Entry, IndicatorIndex, IndicatorSet};
use outwatch::scope::ScopeMatcher;

fn peak_rss_mib() -> Option<f64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let l = s.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = l.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

fn external(i: u64) -> IpAddr {
    // 2M peers in 20.0.0.0 onwards.
    IpAddr::V4(Ipv4Addr::from(0x1400_0000u32 + (i % 2_000_000) as u32))
}

fn c2(i: u64) -> IpAddr {
    IpAddr::V4(Ipv4Addr::from(0xc000_0000u32 + (i % 5_000) as u32 * 7))
}

fn main() {
    let n: u64 = std::env::var("FLOWS_BENCH_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000_000);
    let flows = FlowsConfig {
        zones: vec![ZoneConfig {
            name: "dmz".into(),
            prefixes: vec!["10.200.0.0/16".parse().unwrap()],
            outbound: false,
            allow: vec!["*:53".into()],
        }],
        teams: (0..50)
            .map(|t| TeamConfig {
                name: format!("team{t}"),
                prefixes: vec![format!("10.0.{t}.0/24").parse().unwrap()],
            })
            .collect(),
        ..FlowsConfig::default()
    };
    let mut entries: Vec<Entry> = (0..5_000u64)
        .map(|i| Entry {
            net: c2(i).into(),
            port: (i % 2 == 0).then_some(443),
            threat: Some("Bench".into()),
        })
        .collect();
    entries.extend((0..500u32).map(|i| {
        Entry {
            net: format!("{}.{}.0.0/16", 100 + i / 200, i % 200)
                .parse()
                .unwrap(),
            port: None,
            threat: None,
        }
    }));
    // FLOWS_BENCH_LISTS=0: no C2 lists (to see what the list lookups cost).
    let lists = std::env::var("FLOWS_BENCH_LISTS").map_or(true, |v| v != "0");
    let index = if lists {
        IndicatorIndex::build(&[IndicatorSet {
            feed: "bench".into(),
            fetched: Utc::now(),
            entries,
        }])
    } else {
        IndicatorIndex::default()
    };
    let scope = ScopeMatcher::default();
    let made_up: Vec<String> = (0..300).map(|i| format!("svc{i}")).collect();
    let mut a = Analyser::new(&Settings::new(&flows), &scope, &index);
    let mut rng = Rng(0x5eed_f10e);
    let t0 = 1_795_910_400_000_000i64; // 2026-11-29
    let week_us = 7 * 86_400_000_000i64;
    let start = Instant::now();
    for i in 0..n {
        let r = rng.next();
        let host_n = (r >> 8) % 20_000;
        let orig = if host_n < 200 {
            IpAddr::V4(Ipv4Addr::new(10, 200, 0, host_n as u8))
        } else {
            IpAddr::V4(Ipv4Addr::new(
                10,
                0,
                (host_n / 250 % 250) as u8,
                (host_n % 250) as u8,
            ))
        };
        let pick = r % 10_000;
        let (resp, port, service): (IpAddr, u16, Option<&str>) = if pick < 5 {
            (c2(r >> 20), 443, Some("ssl"))
        } else if pick < 25 {
            (external(r >> 24), 449, Some("ssl"))
        } else if pick < 4_000 {
            (external(r >> 24), 443, Some("ssl"))
        } else if pick < 6_000 {
            (external(r >> 24), 80, Some("http"))
        } else if pick < 8_000 {
            (IpAddr::V4(Ipv4Addr::new(10, 1, 0, 53)), 53, Some("dns"))
        } else if pick < 8_500 {
            (external(r >> 24), 22, Some("ssh"))
        } else if pick < 9_000 {
            (
                IpAddr::V4(Ipv4Addr::new(10, 1, 0, 10)),
                445,
                Some("gssapi,smb,krb"),
            )
        } else if pick < 9_300 {
            (
                external(r >> 24),
                (r >> 40) as u16 | 1024,
                Some(made_up[(r >> 30) as usize % made_up.len()].as_str()),
            )
        } else {
            (external(r >> 24), (r >> 40) as u16, None)
        };
        let long = (r >> 50).is_multiple_of(1_000);
        let pk = 2 + (r >> 33) % 40;
        let conn = Conn {
            ts_us: t0 + (i as i64 * (week_us / n as i64)),
            orig,
            orig_port: Some(1024 + (r >> 44) as u16 % 60_000),
            resp,
            resp_port: Some(port),
            proto: if service == Some("dns") {
                Proto::Udp
            } else {
                Proto::Tcp
            },
            service,
            duration_us: Some(if long {
                4_000_000_000
            } else {
                (r >> 36) % 60_000_000
            }),
            orig_pkts: Some(pk),
            resp_pkts: Some(pk + 1),
            orig_bytes: Some(pk * 400),
            resp_bytes: Some(pk * 900),
            conn_state: Some("SF"),
        };
        a.add(&conn);
    }
    let added = start.elapsed();
    let report = a.finish();
    let total = start.elapsed();
    let s = &report.summary;
    println!(
        "{n} connections: add {:.2} s ({:.2} M conns/s), finish {:.2} s, total {:.2} s",
        added.as_secs_f64(),
        n as f64 / added.as_secs_f64() / 1e6,
        (total - added).as_secs_f64(),
        total.as_secs_f64()
    );
    println!(
        "findings {} {:?}; overflow: {:?}",
        s.findings, s.by_feed, s.overflow
    );
    if let Some(m) = peak_rss_mib() {
        println!("peak RSS (VmHWM): {m:.0} MiB");
    }
}
