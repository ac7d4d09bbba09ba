//! A week of an office network's connections with two infected hosts, as Zeek TSV: what an
//! analyst gets from a sensor in front of a Windows domain, and what the finding count must
//! stay readable on.
//!
//! 80 clients (10.1.0.20–99) resolve names at 10.1.0.53, talk to the domain controller
//! 10.1.0.10 as Windows does (`ldap_tcp` and `gssapi,ldap_tcp` on 389, `krb_tcp` on 88, `krb`
//! over UDP, `dce_rpc` on 135 and the dynamic ports, `gssapi,smb,ntlm` on 445, `ntp`), and
//! browse (TLS on 443, HTTP on 80). Two of them are infected, every day of the week:
//!
//! - 10.1.0.66 (an Emotet-like loader) calls 25 of [`C2_A`]'s 40 servers a day, every few
//!   minutes, on 443, 8080 and 7080 (HTTP on 7080: a port mismatch), and keeps one session
//!   open for two hours;
//! - 10.1.0.77 (a TrickBot-like banker) speaks TLS on 447 and 449 to the 12 servers of
//!   [`C2_B`] (port mismatches) and HTTP on 8082.
//!
//! Deterministic for a seed; seven days from 2026-11-23 00:00 UTC, in time order.

use std::io::{self, Write};
use std::net::Ipv4Addr;

use super::{Rng, between, public};

/// 2026-11-23 00:00:00 UTC.
pub const WEEK_START_S: i64 = 1_795_392_000;
/// The first infected host and its C2 servers (198.51.100.0/26 and beyond).
pub const HOST_A: [u8; 4] = [10, 1, 0, 66];
/// The second infected host.
pub const HOST_B: [u8; 4] = [10, 1, 0, 77];
/// How many C2 servers each family uses.
pub const C2_A: u32 = 40;
pub const C2_B: u32 = 12;
const DC: [u8; 4] = [10, 1, 0, 10];
const RESOLVER: [u8; 4] = [10, 1, 0, 53];

/// The C2 servers of the first family: 198.51.100.1 onwards.
pub fn c2_a(i: u32) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(Ipv4Addr::new(198, 51, 100, 1)) + i)
}

/// The C2 servers of the second family: 203.0.113.100 onwards.
pub fn c2_b(i: u32) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(Ipv4Addr::new(203, 0, 113, 100)) + i)
}

/// One connection to write.
struct Line {
    ts_us: i64,
    orig: Ipv4Addr,
    resp: Ipv4Addr,
    resp_p: u16,
    proto: &'static str,
    service: &'static str,
    duration_us: u64,
    bytes: (u64, u64),
    pkts: (u64, u64),
}

/// The clients' connections of one day: domain, name, web.
fn office_day(rng: &mut Rng, day0_us: i64, out: &mut Vec<Line>) {
    let dc = Ipv4Addr::from(DC);
    let ns = Ipv4Addr::from(RESOLVER);
    for h in 20..100u8 {
        let host = Ipv4Addr::new(10, 1, 0, h);
        for _ in 0..60 {
            let ts = day0_us + (rng.below(86_400) * 1_000_000) as i64;
            let (resp, port, proto, service) = match rng.below(20) {
                0..=5 => (ns, 53, "udp", "dns"),
                6..=10 => (Ipv4Addr::from(public(rng)), 443, "tcp", "ssl"),
                11..=12 => (Ipv4Addr::from(public(rng)), 80, "tcp", "http"),
                13 => (dc, 389, "tcp", "ldap_tcp"),
                14 => (dc, 389, "tcp", "gssapi,ldap_tcp"),
                15 => (dc, 88, "tcp", "krb_tcp"),
                16 => (dc, 88, "udp", "krb"),
                17 => (dc, 135, "tcp", "dce_rpc"),
                18 => (dc, between(rng, 49_152, 65_535) as u16, "tcp", "dce_rpc"),
                _ => (dc, 445, "tcp", "gssapi,smb,ntlm"),
            };
            let pkts = (between(rng, 1, 40), between(rng, 1, 60));
            out.push(Line {
                ts_us: ts,
                orig: host,
                resp,
                resp_p: port,
                proto,
                service,
                duration_us: between(rng, 1_000, 30_000_000),
                bytes: (pkts.0 * 90, pkts.1 * 400),
                pkts,
            });
        }
        if rng.below(4) == 0 {
            out.push(Line {
                ts_us: day0_us + (rng.below(86_400) * 1_000_000) as i64,
                orig: host,
                resp: dc,
                resp_p: 123,
                proto: "udp",
                service: "ntp",
                duration_us: 2_000,
                bytes: (48, 48),
                pkts: (1, 1),
            });
        }
    }
}

/// The infected hosts' connections of one day.
fn infected_day(rng: &mut Rng, day: u32, day0_us: i64, out: &mut Vec<Line>) {
    let a = Ipv4Addr::from(HOST_A);
    let b = Ipv4Addr::from(HOST_B);
    // A: 25 servers of 40, a different window each day, every ~15 minutes round robin.
    for k in 0..100u32 {
        let server = c2_a((day * 5 + k % 25) % C2_A);
        let (port, service) = match k % 5 {
            0..=2 => (443, "ssl"),
            3 => (8080, "http"),
            _ => (7080, "http"),
        };
        let pkts = (between(rng, 6, 20), between(rng, 6, 20));
        out.push(Line {
            ts_us: day0_us + i64::from(k) * 864_000_000 + (rng.below(600) * 1_000_000) as i64,
            orig: a,
            resp: server,
            resp_p: port,
            proto: "tcp",
            service,
            duration_us: between(rng, 200_000, 3_000_000),
            bytes: (pkts.0 * 120, pkts.1 * 300),
            pkts,
        });
    }
    out.push(Line {
        ts_us: day0_us + 3_600_000_000,
        orig: a,
        resp: c2_a((day * 5) % C2_A),
        resp_p: 443,
        proto: "tcp",
        service: "ssl",
        duration_us: 7_200_000_000,
        bytes: (900_000, 400_000),
        pkts: (9_000, 8_000),
    });
    // B: TLS on 447/449 to its 12 servers, HTTP on 8082 to one.
    for k in 0..48u32 {
        let port = if k % 2 == 0 { 447 } else { 449 };
        let pkts = (between(rng, 10, 30), between(rng, 10, 30));
        out.push(Line {
            ts_us: day0_us + i64::from(k) * 1_800_000_000 + (rng.below(900) * 1_000_000) as i64,
            orig: b,
            resp: c2_b(k % C2_B),
            resp_p: port,
            proto: "tcp",
            service: "ssl",
            duration_us: between(rng, 500_000, 9_000_000),
            bytes: (pkts.0 * 200, pkts.1 * 500),
            pkts,
        });
    }
    for k in 0..6u32 {
        out.push(Line {
            ts_us: day0_us + i64::from(k) * 14_400_000_000 + 60_000_000,
            orig: b,
            resp: c2_b(0),
            resp_p: 8082,
            proto: "tcp",
            service: "http",
            duration_us: 400_000,
            bytes: (700, 180_000),
            pkts: (6, 130),
        });
    }
}

/// Writes the week to `out` as Zeek TSV (header, lines in time order, `#close`).
pub fn infected_week(out: &mut impl Write, seed: u64) -> io::Result<()> {
    let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    out.write_all(
        b"#separator \\x09\n#set_separator\t,\n#empty_field\t(empty)\n#unset_field\t-\n#path\tconn\n#open\t2026-11-23-00-00-00\n\
#fields\tts\tuid\tid.orig_h\tid.orig_p\tid.resp_h\tid.resp_p\tproto\tservice\tduration\torig_bytes\tresp_bytes\tconn_state\tlocal_orig\tlocal_resp\tmissed_bytes\thistory\torig_pkts\torig_ip_bytes\tresp_pkts\tresp_ip_bytes\ttunnel_parents\n\
#types\ttime\tstring\taddr\tport\taddr\tport\tenum\tstring\tinterval\tcount\tcount\tstring\tbool\tbool\tcount\tstring\tcount\tcount\tcount\tcount\tset[string]\n",
    )?;
    for day in 0..7u32 {
        let day0_us = (WEEK_START_S + i64::from(day) * 86_400) * 1_000_000;
        let mut lines = Vec::new();
        office_day(&mut rng, day0_us, &mut lines);
        infected_day(&mut rng, day, day0_us, &mut lines);
        lines.sort_by_key(|l| l.ts_us);
        for (n, l) in lines.iter().enumerate() {
            let local_resp = if l.resp.is_private() { 'T' } else { 'F' };
            writeln!(
                out,
                "{}.{:06}\tC{day}w{n:07}\t{}\t{}\t{}\t{}\t{}\t{}\t{}.{:06}\t{}\t{}\tSF\tT\t{local_resp}\t0\tShADadFf\t{}\t{}\t{}\t{}\t(empty)",
                l.ts_us.div_euclid(1_000_000),
                l.ts_us.rem_euclid(1_000_000),
                l.orig,
                between(&mut rng, 49_152, 65_535),
                l.resp,
                l.resp_p,
                l.proto,
                l.service,
                l.duration_us / 1_000_000,
                l.duration_us % 1_000_000,
                l.bytes.0,
                l.bytes.1,
                l.pkts.0,
                l.bytes.0 + l.pkts.0 * 40,
                l.pkts.1,
                l.bytes.1 + l.pkts.1 * 40,
            )?;
        }
    }
    out.write_all(b"#close\t2026-11-30-00-00-00\n")
}
