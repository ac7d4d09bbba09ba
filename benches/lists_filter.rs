//! Benchmark: parse + scope-filter of a 1,000,000-entry list against 5,000 prefixes.
//!
//! Method: generate, with a fixed seed, 5,000 random scope prefixes (IPv4 /16–/24 and a few
//! IPv6 /32–/48) and three 1M-entry bodies in real formats: Feodo Tracker CSV (quoted, header
//! row, `# END n entries` trailer), a plain one-IP-per-line list, and URLhaus CSV (comment
//! header, URLs whose hosts are IP literals or names). Each body goes through the same code
//! path as a fetch (`lists::process_body`: read, resolve columns, match, build findings for the
//! in-scope entries). Each case runs 5 times; best and median wall time are printed.
//!
//! Run: `cargo bench --bench lists_filter` (release profile). Target: < 2 s per 1M entries.

use std::time::{Duration, Instant};

use outwatch::flows::sample::Rng;
use outwatch::scope::{ScopeMatcher, ScopeSnapshot};
use outwatch::sources::lists::{FeedDef, builtin_defs, process_body};

/// A random IPv4 address.
fn random_v4(r: &mut Rng) -> std::net::Ipv4Addr {
    std::net::Ipv4Addr::from(r.next() as u32)
}

const ENTRIES: usize = 1_000_000;
const PREFIXES: usize = 5_000;

fn scope(rng: &mut Rng) -> ScopeMatcher {
    let mut prefixes = Vec::with_capacity(PREFIXES);
    for i in 0..PREFIXES {
        if i % 50 == 0 {
            let hi = (rng.next() as u128) << 64;
            let len = 32 + (rng.next() % 17) as u8;
            let a = std::net::Ipv6Addr::from(hi);
            prefixes.push(ipnet::IpNet::new(a.into(), len).unwrap().trunc());
        } else {
            let len = 16 + (rng.next() % 9) as u8;
            prefixes.push(
                ipnet::IpNet::new(random_v4(rng).into(), len)
                    .unwrap()
                    .trunc(),
            );
        }
    }
    ScopeMatcher::new(&ScopeSnapshot {
        asns: vec![],
        prefixes,
        domains: vec!["example.org".into(), "example.net".into()],
        emails: vec![],
    })
}

fn feodo_csv(rng: &mut Rng) -> Vec<u8> {
    let mut b = String::with_capacity(ENTRIES * 80);
    b.push_str(
        "################################################################\n\
         # abuse.ch Feodo Tracker Botnet C2 IP Blocklist (CSV)          #\n\
         # Last updated: 2026-11-20 07:03:03 UTC                        #\n\
         ################################################################\n\
         #\n\
         \"first_seen_utc\",\"dst_ip\",\"dst_port\",\"c2_status\",\"last_online\",\"malware\"\n",
    );
    for i in 0..ENTRIES {
        let port = 1024 + rng.next() % 60000;
        let status = if i % 3 == 0 { "online" } else { "offline" };
        b.push_str(&format!(
            "\"2026-11-{:02} 12:{:02}:{:02}\",\"{}\",\"{port}\",\"{status}\",\"2026-11-20\",\"Pikabot\"\n",
            1 + i % 28,
            i % 60,
            (i / 60) % 60,
            random_v4(rng)
        ));
    }
    b.push_str(&format!("# END {ENTRIES} entries"));
    b.into_bytes()
}

fn plain_ips(rng: &mut Rng) -> Vec<u8> {
    let mut b = String::with_capacity(ENTRIES * 16);
    b.push_str("# one IP per line\n");
    for _ in 0..ENTRIES {
        b.push_str(&random_v4(rng).to_string());
        b.push('\n');
    }
    b.into_bytes()
}

fn urlhaus_csv(rng: &mut Rng) -> Vec<u8> {
    let mut b = String::with_capacity(ENTRIES * 170);
    b.push_str(
        "################################################################\n\
         # abuse.ch URLhaus Database Dump (CSV - recent URLs only)      #\n\
         ################################################################\n\
         #\n\
         # id,dateadded,url,url_status,last_online,threat,tags,urlhaus_link,reporter\n",
    );
    for i in 0..ENTRIES {
        let url = if i % 4 == 0 {
            format!("https://host{}.shop{}.example.com/payload.exe", i, i % 977)
        } else {
            format!("http://{}:{}/i", random_v4(rng), 1024 + rng.next() % 60000)
        };
        b.push_str(&format!(
            "\"{id}\",\"2026-11-20 12:05:20\",\"{url}\",\"online\",\"2026-11-20 12:05:20\",\
             \"malware_download\",\"32-bit,elf,mips,Mozi\",\"https://urlhaus.abuse.ch/url/{id}/\",\
             \"geenensp\"\n",
            id = 3_000_000 + i
        ));
    }
    b.into_bytes()
}

fn time_case(name: &str, def: &FeedDef, body: &[u8], scope: &ScopeMatcher) {
    let mut times: Vec<Duration> = Vec::new();
    let mut last = (0, 0, 0);
    for _ in 0..5 {
        let t = Instant::now();
        let p = process_body(def, &def.name, body, "bench", scope).expect("body parses");
        times.push(t.elapsed());
        last = (p.fetched, p.findings.len(), p.rejected.len());
    }
    times.sort();
    let best = times[0];
    let median = times[times.len() / 2];
    println!(
        "{name:<28} {:>9} entries {:>6.1} MiB  in scope {:>6}  rejected {}  best {:>7.3} s  median {:>7.3} s  ({:.1} M entries/s)",
        last.0,
        body.len() as f64 / (1024.0 * 1024.0),
        last.1,
        last.2,
        best.as_secs_f64(),
        median.as_secs_f64(),
        last.0 as f64 / best.as_secs_f64() / 1e6
    );
    assert_eq!(last.0, ENTRIES);
    assert_eq!(last.2, 0);
}

fn main() {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let t = Instant::now();
    let scope = scope(&mut rng);
    println!(
        "scope: {PREFIXES} prefixes ({:?} merged v4/v6 ranges), built in {:.1} ms",
        scope.range_counts(),
        t.elapsed().as_secs_f64() * 1e3
    );
    let defs = builtin_defs();
    let feodo = defs.iter().find(|d| d.name == "feodotracker").unwrap();
    let urlhaus = defs.iter().find(|d| d.name == "urlhaus").unwrap();
    let plain = FeedDef::parse(
        r#"
name = "plain"
url = "https://lists.example.net/ips.txt"
schedule = "0 0 * * * *"
resolve_after = "1d"
severity = "medium"
[format]
type = "lines"
[fields]
ip = 1
[classification]
type = "blacklist"
identifier = "plain"
"#,
        "bench",
    )
    .unwrap();

    let body = feodo_csv(&mut rng);
    time_case("feodotracker CSV", feodo, &body, &scope);
    drop(body);
    let body = plain_ips(&mut rng);
    time_case("plain IP list", &plain, &body, &scope);
    drop(body);
    let body = urlhaus_csv(&mut rng);
    time_case("urlhaus CSV (URLs)", urlhaus, &body, &scope);
}
