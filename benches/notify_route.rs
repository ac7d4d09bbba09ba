//! Benchmark: routing findings to contacts (issue #23), what `outwatch notify` does per
//! finding after the store hands it over.
//!
//! Method: with a fixed seed, write a contacts file of 10,000 rows (8,000 contacts owning a
//! distinct random IPv4 /14 each, so about half of IPv4 has an owner, and 2,000 owning a /24
//! inside one of those, so longest-prefix matching matters; each row with two addresses, a
//! domain and an ASN) and read it with the real CSV reader. Then, three passes over 1M
//! findings at random addresses spread over all of IPv4 (each built as the store would hand it
//! over, with a fingerprint, and dropped after):
//! 1. `Router::route` alone;
//! 2. the run's `Planner` (route, policy, due check, rows kept for the first 100 contacts, the
//!    default cap of mails per run; the rest counted), no earlier sendings;
//! 3. the same with every finding already sent once (a `SentIndex` of 1M records: the second
//!    run, which finds nothing due).
//!
//! Peak memory: VmHWM of this process from `/proc/self/status`, printed after each step.
//! Run: `cargo bench --bench notify_route` (release profile). Target: under 10 s and 200 MB.

use std::io::Write;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Instant;

use chrono::Utc;
use outwatch::finding::{Classification, Finding, Severity};
use outwatch::flows::sample::Rng;
use outwatch::notify::contacts::{Policy, parse_csv};
use outwatch::notify::plan::Planner;
use outwatch::notify::record::{Sent, SentIndex, SentRecord};
use outwatch::notify::route::Router;

const CONTACTS: usize = 10_000;
const FINDINGS: u64 = 1_000_000;

fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            let l = s.lines().find(|l| l.starts_with("VmHWM:"))?.to_string();
            l.split_whitespace().nth(1)?.parse::<f64>().ok()
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

fn contacts_file(r: &mut Rng) -> tempfile::NamedTempFile {
    let mut f = tempfile::NamedTempFile::new().unwrap();
    writeln!(f, "name,emails,prefixes,asns,domains").unwrap();
    // 8,000 distinct /14s out of the 16,384.
    let mut slots: Vec<u32> = (0..16_384).collect();
    for i in (1..slots.len()).rev() {
        slots.swap(i, (r.next() % (i as u64 + 1)) as usize);
    }
    let wide: Vec<u32> = slots[..8_000].to_vec();
    for i in 0..CONTACTS {
        let prefix = if i < 8_000 {
            format!("{}/14", Ipv4Addr::from(wide[i] << 18))
        } else {
            let base = wide[(r.next() % 8_000) as usize] << 18;
            let inner = (r.next() as u32 & 0x3ff) << 8;
            format!("{}/24", Ipv4Addr::from(base | inner))
        };
        writeln!(
            f,
            "Customer {i},noc@c{i}.example;abuse@c{i}.example,{prefix},AS{},c{i}.example",
            64_512 + i
        )
        .unwrap();
    }
    f.flush().unwrap();
    f
}

/// The i-th finding: a random IPv4 address and a fingerprint as random as a real one (hex,
/// unique), as the store would hand it over.
fn finding(r: &mut Rng, template: &Finding, i: u64) -> Finding {
    let mut f = template.clone();
    f.ip = Some(IpAddr::V4(Ipv4Addr::from(r.next() as u32)));
    f.fingerprint = format!("{:016x}{i:016x}{:032x}", r.next(), 0);
    f
}

fn main() {
    let mut r = Rng(0x9E37_79B9_7F4A_7C15);
    let file = contacts_file(&mut r);
    let policy = Policy::resolve(&Default::default(), &Default::default());
    let t = Instant::now();
    let (contacts, problems) = parse_csv(std::fs::File::open(file.path()).unwrap(), &policy);
    assert_eq!(contacts.len(), CONTACTS, "{problems:?}");
    let router = Router::new(&contacts);
    println!(
        "contacts file: {CONTACTS} rows read and routing table built in {:.3} s, peak {:.0} MiB",
        t.elapsed().as_secs_f64(),
        peak_rss_mib()
    );
    let template = Finding::new(
        "shadowserver",
        "scan_dns",
        Classification::new("", "vulnerable-system", "open-dns"),
        Severity::Medium,
    );

    // 1. Routing alone.
    let seed = r.next();
    let t = Instant::now();
    let mut routed = 0u64;
    let mut g = Rng(seed);
    for i in 0..FINDINGS {
        let f = finding(&mut g, &template, i);
        routed += u64::from(router.route(&f).is_some());
    }
    let s = t.elapsed().as_secs_f64();
    println!(
        "route: {FINDINGS} findings in {s:.3} s = {:.0} ns/finding, {routed} routed, peak {:.0} MiB",
        s * 1e9 / FINDINGS as f64,
        peak_rss_mib()
    );

    // 2. The run's planner, first run.
    let now = Utc::now();
    let t = Instant::now();
    let mut p = Planner::new(
        &contacts,
        SentIndex::default(),
        now,
        100,
        Default::default(),
    );
    let mut g = Rng(seed);
    for i in 0..FINDINGS {
        p.offer(&finding(&mut g, &template, i));
    }
    let out = p.finish();
    let s = t.elapsed().as_secs_f64();
    let kept: usize = out.batches.iter().map(|(_, b)| b.rows.len()).sum();
    println!(
        "plan (first run): {FINDINGS} findings in {s:.3} s; {} contacts with findings due, rows kept \
         for {} ({kept} rows), {} without contact; peak {:.0} MiB",
        out.batches.len() + out.counted.len(),
        out.batches.len(),
        out.tally.no_contact,
        peak_rss_mib()
    );

    // 3. Every finding sent once: the second run finds nothing due.
    let t = Instant::now();
    let mut idx = SentIndex::default();
    let mut g = Rng(seed);
    for i in 0..FINDINGS {
        let f = finding(&mut g, &template, i);
        if let Some((c, _)) = router.route(&f) {
            let rec = SentRecord {
                sent: vec![Sent {
                    contact: contacts[c].name.clone(),
                    at: now,
                    ticket: "OW-20260301-00000000".into(),
                    to: vec![],
                }],
            };
            idx.add(&f.fingerprint, &rec);
        }
    }
    println!(
        "sent index of {} records built in {:.3} s, peak {:.0} MiB",
        idx.len(),
        t.elapsed().as_secs_f64(),
        peak_rss_mib()
    );
    let t = Instant::now();
    let mut p = Planner::new(&contacts, idx, now, 100, Default::default());
    let mut g = Rng(seed);
    for i in 0..FINDINGS {
        p.offer(&finding(&mut g, &template, i));
    }
    let out = p.finish();
    let s = t.elapsed().as_secs_f64();
    println!(
        "plan (second run): {FINDINGS} findings in {s:.3} s; {} already sent, {} due; peak {:.0} MiB",
        out.tally.already_sent,
        out.batches.len() + out.counted.len(),
        peak_rss_mib()
    );
}
