//! Benchmark: `IndicatorIndex::matches`, the per-connection question of `outwatch flows`.
//!
//! Method: with a fixed seed, build an index of 100,000 random single addresses (90 % IPv4,
//! 10 % IPv6, a third with a port, a few threat texts) and 2,000 random networks (IPv4 /12–/28,
//! a tenth IPv6 /29–/48) from three feeds, then time 10M lookups of random addresses (a miss
//! almost always, as for real traffic), then 10M lookups of listed addresses (every one a hit,
//! one listing cloned into the reused output). One warm-up pass each; one thread. Also times
//! `load` equivalents: building the index, and encoding / decoding a 100k-entry stored set.
//!
//! Run: `cargo bench --bench indicators` (release profile). Target: well under 1 µs per lookup
//! (flows reads ≥ 1M connections per second).

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Instant;

use chrono::Utc;
use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use outwatch::flows::sample::Rng;
use outwatch::indicators::{self, Entry, IndicatorIndex, IndicatorSet, SetBuilder};

/// A random address: one in ten IPv6 (in 2a00::/8), the rest IPv4.
fn random_ip(r: &mut Rng) -> IpAddr {
    if r.next().is_multiple_of(10) {
        IpAddr::V6(Ipv6Addr::from(
            (0x2a00_u128 << 112) | (u128::from(r.next()) << 32) | u128::from(r.next()),
        ))
    } else {
        IpAddr::V4(Ipv4Addr::from(r.next() as u32))
    }
}

/// Looks every query up twice and prints the time of the second round (the first warms up).
fn lookups(idx: &IndicatorIndex, queries: &[(IpAddr, Option<u16>)], what: &str) {
    let n = queries.len();
    let mut out = Vec::new();
    for round in 0..2 {
        let t = Instant::now();
        let mut found = 0usize;
        for &(ip, port) in queries {
            out.clear();
            idx.matches(black_box(ip), port, &mut out);
            found += out.len();
        }
        let s = t.elapsed().as_secs_f64();
        if round == 1 {
            println!(
                "{what}: {n} lookups in {s:.3} s = {:.1} ns/lookup, {found} listings found",
                s * 1e9 / n as f64
            );
        }
    }
}

fn main() {
    let mut r = Rng(0x9E37_79B9_7F4A_7C15);
    let threats = [
        "Pikabot",
        "QakBot",
        "win.cobalt_strike (botnet_cc)",
        "malware_download",
    ];
    let mut sets: Vec<IndicatorSet> = ["feodotracker", "threatfox", "urlhaus"]
        .iter()
        .map(|f| IndicatorSet {
            feed: f.to_string(),
            fetched: Utc::now(),
            entries: Vec::new(),
        })
        .collect();
    let mut hosts = Vec::new();
    for i in 0..100_000 {
        let ip = random_ip(&mut r);
        hosts.push(ip);
        let port = r
            .next()
            .is_multiple_of(3)
            .then(|| (r.next() % 65535) as u16 + 1);
        sets[i % 3].entries.push(Entry {
            net: IpNet::from(ip),
            port,
            threat: Some(threats[i % threats.len()].to_string()),
        });
    }
    let mut drop = IndicatorSet {
        feed: "spamhaus_drop".into(),
        fetched: Utc::now(),
        entries: Vec::new(),
    };
    for _ in 0..2_000 {
        let net = if r.next().is_multiple_of(10) {
            let len = 29 + (r.next() % 20) as u8;
            let a = Ipv6Addr::from((0x2a00_u128 << 112) | (u128::from(r.next()) << 64));
            IpNet::V6(Ipv6Net::new(a, len).unwrap().trunc())
        } else {
            let len = 12 + (r.next() % 17) as u8;
            IpNet::V4(
                Ipv4Net::new(Ipv4Addr::from(r.next() as u32), len)
                    .unwrap()
                    .trunc(),
            )
        };
        drop.entries.push(Entry {
            net,
            port: None,
            threat: None,
        });
    }
    sets.push(drop);

    let t = Instant::now();
    let idx = IndicatorIndex::build(&sets);
    println!(
        "build: {} listings in {:.1} ms",
        idx.len(),
        t.elapsed().as_secs_f64() * 1e3
    );

    let n = 10_000_000usize;
    let queries: Vec<(IpAddr, Option<u16>)> = (0..n)
        .map(|_| (random_ip(&mut r), Some((r.next() % 65535) as u16 + 1)))
        .collect();
    lookups(&idx, &queries, "random addresses (mostly misses)");
    let listed: Vec<(IpAddr, Option<u16>)> = (0..n)
        .map(|i| (hosts[(r.next() as usize + i) % hosts.len()], None))
        .collect();
    lookups(&idx, &listed, "listed addresses (hits, port-free query)");

    let mut b = SetBuilder::default();
    for e in &sets[0].entries {
        b.push(e.net, e.port, e.threat.as_deref(), None);
    }
    let t = Instant::now();
    let kept = b.finish("feodotracker", "u", Utc::now());
    let enc = t.elapsed();
    let t = Instant::now();
    let (_, back) = indicators::decode(&kept.bytes).unwrap();
    println!(
        "stored set of {} entries: {} bytes; encoded in {:.1} ms, decoded in {:.1} ms",
        back.entries.len(),
        kept.bytes.len(),
        enc.as_secs_f64() * 1e3,
        t.elapsed().as_secs_f64() * 1e3
    );
}
