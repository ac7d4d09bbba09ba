//! A generator of realistic connection logs for benches and tests: the same connections as
//! Zeek TSV, Zeek JSON lines or `nfdump -o csv` (1.6 layout, with its summary block).
//!
//! The network: 1,000 internal hosts in four /24s of 10.0.0.0/8 (a few of them busy, most
//! quiet), an internal resolver (10.1.0.53), a DMZ web server (10.2.5.10) that others connect
//! to, and peers spread over all of public IPv4. The mix: DNS (≈35 %), TLS on 443 (≈35 %),
//! HTTP (≈12 %), SSH (≈3 %), unanswered attempts with no service (≈12 %), inbound to the DMZ
//! server (≈3 %). About one TLS connection in 2,000 lasts hours, and one in 2,000 runs on an
//! odd port (447, 449, 53, 4444, 8080). Deterministic for a given seed; one day of traffic
//! from 2026-11-30 00:00 UTC, in time order. [`week`] writes a week of an office network with
//! two infected hosts.

pub mod week;

use std::fmt::Write as _;
use std::io::{self, Write};

use super::read::LogFormat;

/// 2026-11-30 00:00:00 UTC.
const START_S: i64 = 1_795_996_800;

/// xorshift64*: small, deterministic, dependency-free. The one generator of the benches and
/// of this sample; seed it with anything but 0.
#[doc(hidden)]
#[derive(Debug, Clone)]
pub struct Rng(pub u64);

impl Rng {
    /// The next 64 random bits.
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// 0..n
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    /// 0.0..1.0
    pub fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

struct Conn {
    ts_us: i64,
    uid: [u8; 18],
    orig: [u8; 4],
    orig_p: u16,
    resp: [u8; 4],
    resp_p: u16,
    proto: &'static str,
    service: Option<&'static str>,
    duration_us: Option<u64>,
    orig_bytes: u64,
    resp_bytes: u64,
    state: &'static str,
    local_orig: bool,
    local_resp: bool,
    history: &'static str,
    orig_pkts: u64,
    resp_pkts: u64,
}

const NETS: [[u8; 3]; 4] = [[10, 1, 0], [10, 1, 1], [10, 2, 5], [10, 20, 30]];
const ODD_TLS_PORTS: [u16; 5] = [447, 449, 53, 4444, 8080];
const B62: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

fn internal(rng: &mut Rng) -> [u8; 4] {
    // Squaring a uniform number skews towards low indices: a few busy hosts, many quiet ones.
    let u = rng.unit();
    let i = ((u * u) * 1000.0) as usize % 1000;
    let n = NETS[i % 4];
    [n[0], n[1], n[2], 1 + (i / 4) as u8]
}

fn public(rng: &mut Rng) -> [u8; 4] {
    loop {
        let a = (rng.next() >> 32) as u32;
        let o = a.to_be_bytes();
        let private = matches!(o[0], 0 | 10 | 127 | 224..=255) || (o[0] == 192 && o[1] == 168);
        if !private {
            return o;
        }
    }
}

fn between(rng: &mut Rng, lo: u64, hi: u64) -> u64 {
    lo + rng.below(hi - lo + 1)
}

/// A DNS query, mostly to the internal resolver.
fn dns(rng: &mut Rng, c: &mut Conn) {
    c.proto = "udp";
    c.service = Some("dns");
    c.resp = if rng.below(10) < 8 {
        c.local_resp = true;
        [10, 1, 0, 53]
    } else {
        [8, 8, 8, 8]
    };
    c.resp_p = 53;
    c.duration_us = Some(between(rng, 300, 80_000));
    c.orig_pkts = 1;
    c.resp_pkts = 1;
    c.orig_bytes = between(rng, 28, 80);
    c.resp_bytes = between(rng, 44, 400);
    c.history = "Dd";
}

/// TLS on 443; one in 2,000 C2-like (hours, chatty), one in 2,000 on an odd port.
fn tls(rng: &mut Rng, c: &mut Conn) {
    c.service = Some("ssl");
    c.resp = public(rng);
    c.resp_p = 443;
    c.duration_us = Some(between(rng, 50_000, 60_000_000));
    c.orig_pkts = between(rng, 8, 200);
    c.resp_pkts = between(rng, 8, 300);
    c.orig_bytes = c.orig_pkts * between(rng, 60, 600);
    c.resp_bytes = c.resp_pkts * between(rng, 200, 1400);
    let special = rng.below(2000);
    if special == 0 {
        // C2-like: hours, chatty, small.
        c.duration_us = Some(between(rng, 3_600_000_000, 14_400_000_000));
        c.orig_pkts = between(rng, 2_000, 20_000);
        c.resp_pkts = c.orig_pkts;
        c.orig_bytes = c.orig_pkts * 90;
        c.resp_bytes = c.resp_pkts * 120;
    } else if special == 1 {
        c.resp_p = ODD_TLS_PORTS[rng.below(5) as usize];
    }
}

/// HTTP on 80.
fn http(rng: &mut Rng, c: &mut Conn) {
    c.service = Some("http");
    c.resp = public(rng);
    c.resp_p = 80;
    c.duration_us = Some(between(rng, 20_000, 20_000_000));
    c.orig_pkts = between(rng, 4, 40);
    c.resp_pkts = between(rng, 4, 2000);
    c.orig_bytes = c.orig_pkts * between(rng, 50, 500);
    c.resp_bytes = c.resp_pkts * between(rng, 400, 1400);
}

/// SSH out.
fn ssh(rng: &mut Rng, c: &mut Conn) {
    c.service = Some("ssh");
    c.resp = public(rng);
    c.resp_p = 22;
    c.duration_us = Some(between(rng, 1_000_000, 1_800_000_000));
    c.orig_pkts = between(rng, 20, 3000);
    c.resp_pkts = between(rng, 20, 3000);
    c.orig_bytes = c.orig_pkts * 80;
    c.resp_bytes = c.resp_pkts * 100;
    c.history = "ShAdDaFf";
}

/// An attempt nobody answered (or refused): no service, no payload.
fn attempt(rng: &mut Rng, c: &mut Conn) {
    c.resp = public(rng);
    c.resp_p = [23, 445, 3389, 8443, 6667, 25][rng.below(6) as usize];
    if rng.below(3) == 0 {
        c.state = "REJ";
        c.history = "Sr";
        c.duration_us = Some(between(rng, 100, 200_000));
        c.orig_pkts = 1;
        c.resp_pkts = 1;
    } else {
        c.state = "S0";
        c.history = "S";
        c.orig_pkts = between(rng, 1, 3);
    }
}

/// Inbound to the DMZ web server.
fn inbound(rng: &mut Rng, c: &mut Conn) {
    c.orig = public(rng);
    c.local_orig = false;
    c.local_resp = true;
    c.resp = [10, 2, 5, 10];
    c.resp_p = 443;
    c.service = Some("ssl");
    c.duration_us = Some(between(rng, 50_000, 5_000_000));
    c.orig_pkts = between(rng, 8, 60);
    c.resp_pkts = between(rng, 8, 200);
    c.orig_bytes = c.orig_pkts * 200;
    c.resp_bytes = c.resp_pkts * 1000;
}

fn next_conn(rng: &mut Rng, ts_us: i64) -> Conn {
    let mut uid = [b'C'; 18];
    for b in &mut uid[1..] {
        *b = B62[rng.below(62) as usize];
    }
    let eph = between(rng, 32768, 60999) as u16;
    let roll = rng.below(1000);
    let mut c = Conn {
        ts_us,
        uid,
        orig: internal(rng),
        orig_p: eph,
        resp: [0; 4],
        resp_p: 0,
        proto: "tcp",
        service: None,
        duration_us: None,
        orig_bytes: 0,
        resp_bytes: 0,
        state: "SF",
        local_orig: true,
        local_resp: false,
        history: "ShADadFf",
        orig_pkts: 0,
        resp_pkts: 0,
    };
    match roll {
        0..=349 => dns(rng, &mut c),
        350..=699 => tls(rng, &mut c),
        700..=819 => http(rng, &mut c),
        820..=849 => ssh(rng, &mut c),
        850..=969 => attempt(rng, &mut c),
        _ => inbound(rng, &mut c),
    }
    c
}

fn ip(o: [u8; 4]) -> std::net::Ipv4Addr {
    std::net::Ipv4Addr::from(o)
}

/// Writes `lines` connections (plus the format's header and trailer) to `out`.
pub fn generate(out: &mut impl Write, lines: u64, seed: u64, format: LogFormat) -> io::Result<()> {
    let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let step = (86_400_000_000 / lines.max(1)).max(1);
    let mut ts = START_S * 1_000_000;
    let mut l = String::with_capacity(512);
    write_header(out, format)?;
    let mut totals = Totals::default();
    for _ in 0..lines {
        ts += rng.below(2 * step) as i64;
        let c = next_conn(&mut rng, ts);
        l.clear();
        match format {
            LogFormat::ZeekTsv => tsv_line(&mut l, &c),
            LogFormat::ZeekJson => json_line(&mut l, &c),
            LogFormat::NfdumpCsv => nfdump_line(&mut l, &c, &mut totals),
        }
        out.write_all(l.as_bytes())?;
    }
    write_trailer(out, format, &totals)
}

/// What nfdump's summary block counts.
#[derive(Default)]
struct Totals {
    flows: u64,
    bytes: u64,
    packets: u64,
}

fn write_header(out: &mut impl Write, format: LogFormat) -> io::Result<()> {
    match format {
        LogFormat::ZeekTsv => out.write_all(
            b"#separator \\x09\n#set_separator\t,\n#empty_field\t(empty)\n#unset_field\t-\n#path\tconn\n#open\t2026-11-30-00-00-00\n\
#fields\tts\tuid\tid.orig_h\tid.orig_p\tid.resp_h\tid.resp_p\tproto\tservice\tduration\torig_bytes\tresp_bytes\tconn_state\tlocal_orig\tlocal_resp\tmissed_bytes\thistory\torig_pkts\torig_ip_bytes\tresp_pkts\tresp_ip_bytes\ttunnel_parents\tip_proto\n\
#types\ttime\tstring\taddr\tport\taddr\tport\tenum\tstring\tinterval\tcount\tcount\tstring\tbool\tbool\tcount\tstring\tcount\tcount\tcount\tcount\tset[string]\tcount\n",
        )?,
        LogFormat::ZeekJson => {}
        LogFormat::NfdumpCsv => out.write_all(
            b"ts,te,td,sa,da,sp,dp,pr,flg,fwd,stos,ipkt,ibyt,opkt,obyt,in,out,sas,das,smk,dmk,dtos,dir,nh,nhb,svln,dvln,ismc,odmc,idmc,osmc,mpls1,mpls2,mpls3,mpls4,mpls5,mpls6,mpls7,mpls8,mpls9,mpls10,cl,sl,al,ra,eng,exid,tr\n",
        )?,
    }
    Ok(())
}

fn write_trailer(out: &mut impl Write, format: LogFormat, t: &Totals) -> io::Result<()> {
    match format {
        LogFormat::ZeekTsv => out.write_all(b"#close\t2026-12-01-00-00-00\n"),
        LogFormat::ZeekJson => Ok(()),
        LogFormat::NfdumpCsv => {
            let (flows, bytes, packets) = (t.flows, t.bytes, t.packets);
            let bpp = bytes.checked_div(packets).unwrap_or(0);
            writeln!(
                out,
                "Summary\nflows,bytes,packets,avg_bps,avg_pps,avg_bpp\n{flows},{bytes},{packets},{},{},{bpp}",
                bytes * 8 / 86_400,
                packets / 86_400
            )
        }
    }
}

/// The parts of a connection every format writes alike.
fn common(c: &Conn) -> (i64, i64, &str, u8, u64) {
    let secs = c.ts_us.div_euclid(1_000_000);
    let frac = c.ts_us.rem_euclid(1_000_000);
    let uid = std::str::from_utf8(&c.uid).unwrap_or("C");
    let ip_proto = if c.proto == "udp" { 17 } else { 6 };
    let hdr = if c.proto == "udp" { 28 } else { 52 };
    (secs, frac, uid, ip_proto, hdr)
}

fn tsv_line(l: &mut String, c: &Conn) {
    let (secs, frac, uid, ip_proto, hdr) = common(c);
    let _ = write!(
        l,
        "{secs}.{frac:06}\t{uid}\t{}\t{}\t{}\t{}\t{}\t{}\t",
        ip(c.orig),
        c.orig_p,
        ip(c.resp),
        c.resp_p,
        c.proto,
        c.service.unwrap_or("-")
    );
    match c.duration_us {
        Some(d) => {
            let _ = write!(
                l,
                "{}.{:06}\t{}\t{}\t",
                d / 1_000_000,
                d % 1_000_000,
                c.orig_bytes,
                c.resp_bytes
            );
        }
        None => l.push_str("-\t-\t-\t"),
    }
    let _ = writeln!(
        l,
        "{}\t{}\t{}\t0\t{}\t{}\t{}\t{}\t{}\t-\t{ip_proto}",
        c.state,
        if c.local_orig { 'T' } else { 'F' },
        if c.local_resp { 'T' } else { 'F' },
        c.history,
        c.orig_pkts,
        c.orig_bytes + c.orig_pkts * hdr,
        c.resp_pkts,
        c.resp_bytes + c.resp_pkts * hdr
    );
}

fn json_line(l: &mut String, c: &Conn) {
    let (secs, frac, uid, ip_proto, hdr) = common(c);
    let _ = write!(
        l,
        r#"{{"ts":{secs}.{frac:06},"uid":"{uid}","id.orig_h":"{}","id.orig_p":{},"id.resp_h":"{}","id.resp_p":{},"proto":"{}","#,
        ip(c.orig),
        c.orig_p,
        ip(c.resp),
        c.resp_p,
        c.proto
    );
    if let Some(s) = c.service {
        let _ = write!(l, r#""service":"{s}","#);
    }
    if let Some(d) = c.duration_us {
        let _ = write!(
            l,
            r#""duration":{}.{:06},"orig_bytes":{},"resp_bytes":{},"#,
            d / 1_000_000,
            d % 1_000_000,
            c.orig_bytes,
            c.resp_bytes
        );
    }
    let _ = writeln!(
        l,
        r#""conn_state":"{}","local_orig":{},"local_resp":{},"missed_bytes":0,"history":"{}","orig_pkts":{},"orig_ip_bytes":{},"resp_pkts":{},"resp_ip_bytes":{},"ip_proto":{ip_proto}}}"#,
        c.state,
        c.local_orig,
        c.local_resp,
        c.history,
        c.orig_pkts,
        c.orig_bytes + c.orig_pkts * hdr,
        c.resp_pkts,
        c.resp_bytes + c.resp_pkts * hdr
    );
}

fn nfdump_line(l: &mut String, c: &Conn, t: &mut Totals) {
    let (_, _, _, _, hdr) = common(c);
    // NetFlow counts IP bytes, milliseconds, and one record per direction's
    // originator; the biflow fields (opkt/obyt) carry the answer.
    let ms = c.ts_us / 1000;
    let d_ms = c.duration_us.unwrap_or(0) / 1000;
    let ibyt = c.orig_bytes + c.orig_pkts * hdr;
    let obyt = c.resp_bytes + c.resp_pkts * hdr;
    let flags = match c.state {
        "S0" => "....S.",
        "REJ" => "...RS.",
        _ if c.proto == "udp" => "......",
        _ => ".AP.SF",
    };
    let _ = write!(l, "{},", calendar(ms / 1000));
    let _ = write!(l, "{},", calendar((ms + d_ms as i64) / 1000));
    let _ = write!(
        l,
        "{}.{:03},{},{},{},{},{},{flags},0,0,{},{ibyt},{},{obyt},0,0,0,0,0,0,0,0,0.0.0.0,0.0.0.0,0,0,",
        d_ms / 1000,
        d_ms % 1000,
        ip(c.orig),
        ip(c.resp),
        c.orig_p,
        c.resp_p,
        c.proto.to_ascii_uppercase(),
        c.orig_pkts,
        c.resp_pkts
    );
    l.push_str("00:00:00:00:00:00,00:00:00:00:00:00,00:00:00:00:00:00,00:00:00:00:00:00,0-0-0,0-0-0,0-0-0,0-0-0,0-0-0,0-0-0,0-0-0,0-0-0,0-0-0,0-0-0,    0.000,    0.000,    0.000,127.0.0.1,0/0,1,");
    let _ = writeln!(l, "{}.{:03}", calendar(ms / 1000 + 1), ms % 1000);
    t.flows += 1;
    t.bytes += ibyt + obyt;
    t.packets += c.orig_pkts + c.resp_pkts;
}

/// `2026-11-30 12:00:00` for epoch seconds (UTC).
fn calendar(secs: i64) -> String {
    chrono::DateTime::from_timestamp(secs, 0)
        .map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
        .unwrap_or_else(|| "0000-00-00 00:00:00".into())
}
