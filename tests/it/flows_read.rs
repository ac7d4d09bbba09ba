//! The connection-log readers of `outwatch flows` (issue #15, items 1 and 5): Zeek TSV and JSON,
//! nfdump CSV, gzip, on fixtures written in the real formats (`tests/fixtures/flows/`), the
//! sample generator, and the real capture in `../shared/samples/zeek/` when it is there.

use std::io::Write;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use outwatch::flows::read::{LogFormat, MAX_ERRORS, ReadError, ReadStats, read_log, read_path};
use outwatch::flows::sample;
use outwatch::flows::{Conn, Proto};

/// A connection with its borrowed strings owned, to keep after the sink returns.
#[derive(Debug, Clone, PartialEq)]
struct Owned {
    ts_us: i64,
    orig: IpAddr,
    orig_port: Option<u16>,
    resp: IpAddr,
    resp_port: Option<u16>,
    proto: Proto,
    service: Option<String>,
    duration_us: Option<u64>,
    orig_pkts: Option<u64>,
    resp_pkts: Option<u64>,
    orig_bytes: Option<u64>,
    resp_bytes: Option<u64>,
    conn_state: Option<String>,
}

impl From<&Conn<'_>> for Owned {
    fn from(c: &Conn<'_>) -> Self {
        Owned {
            ts_us: c.ts_us,
            orig: c.orig,
            orig_port: c.orig_port,
            resp: c.resp,
            resp_port: c.resp_port,
            proto: c.proto,
            service: c.service.map(str::to_string),
            duration_us: c.duration_us,
            orig_pkts: c.orig_pkts,
            resp_pkts: c.resp_pkts,
            orig_bytes: c.orig_bytes,
            resp_bytes: c.resp_bytes,
            conn_state: c.conn_state.map(str::to_string),
        }
    }
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/flows")
        .join(name)
}

fn read_file(name: &str) -> (ReadStats, Vec<Owned>) {
    let mut got = Vec::new();
    let stats = read_path(&fixture(name), &mut |c| got.push(Owned::from(c))).unwrap();
    (stats, got)
}

fn read_bytes(body: &[u8]) -> Result<(ReadStats, Vec<Owned>), ReadError> {
    let mut got = Vec::new();
    let stats = read_log(body, "t.log", &mut |c| got.push(Owned::from(c)))?;
    Ok((stats, got))
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn gzip(body: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(body).unwrap();
    e.finish().unwrap()
}

/// Messages of the errors, with their locations.
fn errors(s: &ReadStats) -> Vec<String> {
    s.errors
        .iter()
        .map(|e| format!("{} {}", e.location, e.message))
        .collect()
}

#[test]
fn zeek_tsv_two_header_blocks_with_reordered_columns() {
    let (s, c) = read_file("zeek-conn-two-blocks.log");
    assert_eq!(s.format, Some(LogFormat::ZeekTsv));
    assert_eq!(s.lines, 29);
    // Block 1: 8 rows, of which a bad ts and a bad address are rejected; block 2: 3 rows, the
    // last too short to carry ts.
    assert_eq!((s.connections, s.rejected), (8, 3), "{:?}", errors(&s));
    assert!(!s.truncated);
    let e = errors(&s);
    assert!(
        e.iter()
            .any(|m| m.contains(":14 rejected: invalid ts `not-a-time`")),
        "{e:?}"
    );
    assert!(
        e.iter()
            .any(|m| m.contains(":15 rejected: invalid id.orig_h `10.1.0.999`")),
        "{e:?}"
    );
    assert!(
        e.iter()
            .any(|m| m.contains(":13 warning: invalid id.orig_p `port?`")),
        "{e:?}"
    );
    assert!(
        e.iter().any(|m| m.contains(":28 rejected: fewer columns")),
        "{e:?}"
    );
    assert_eq!(s.warnings, 1);

    let first = &c[0];
    assert_eq!(
        *first,
        Owned {
            ts_us: 1_795_996_800_000_001,
            orig: ip("10.1.0.23"),
            orig_port: Some(51234),
            resp: ip("185.220.101.4"),
            resp_port: Some(443),
            proto: Proto::Tcp,
            service: Some("ssl".into()),
            duration_us: Some(3_725_250_000),
            orig_pkts: Some(4012),
            resp_pkts: Some(3990),
            orig_bytes: Some(120_450),
            resp_bytes: Some(98_112),
            conn_state: Some("SF".into()),
        }
    );
    assert_eq!(
        c[1].ts_us, 1_795_996_801_500_000,
        "a short fraction is exact"
    );
    assert_eq!(c[2].service.as_deref(), Some("ssl,http"));
    // Unset values are None without a warning.
    let v6 = &c[3];
    assert_eq!(v6.orig, ip("2001:db8:1::5"));
    assert_eq!(
        (v6.service.as_deref(), v6.duration_us, v6.orig_bytes),
        (None, None, None)
    );
    assert_eq!(v6.orig_pkts, Some(2));
    // The bad port is None, the rest of its line kept.
    assert_eq!((c[4].orig_port, c[4].resp_port), (None, Some(80)));
    assert_eq!(c[5].proto, Proto::Icmp);

    // Block 2 maps its own column order.
    let r = &c[6];
    assert_eq!((r.orig, r.orig_port), (ip("10.20.30.5"), Some(40100)));
    assert_eq!((r.resp, r.resp_port), (ip("192.0.2.44"), Some(8080)));
    assert_eq!(r.ts_us, 1_795_999_400_123_456);
    assert_eq!(
        (r.orig_pkts, r.resp_pkts, r.orig_bytes, r.resp_bytes),
        (Some(10), Some(12), Some(900), Some(15000))
    );
    assert_eq!(
        (r.duration_us, r.service.as_deref()),
        (Some(1_250_000), Some("ssl"))
    );
    assert_eq!(c[7].proto, Proto::Udp);
}

#[test]
fn zeek_json_lines() {
    let (s, c) = read_file("zeek-conn.json");
    assert_eq!(s.format, Some(LogFormat::ZeekJson));
    assert_eq!(s.lines, 9);
    let e = errors(&s);
    // Rejected: bad orig_h, no ts, an unterminated object, a dns log line.
    assert_eq!((s.connections, s.rejected), (5, 4), "{e:?}");
    assert!(
        e.iter()
            .any(|m| m.contains(":6 rejected: missing or invalid id.orig_h")),
        "{e:?}"
    );
    assert!(
        e.iter()
            .any(|m| m.contains(":7 rejected: missing or invalid ts")),
        "{e:?}"
    );
    assert!(
        e.iter()
            .any(|m| m.contains(":8 rejected: not a JSON object")),
        "{e:?}"
    );
    assert!(
        e.iter()
            .any(|m| m.contains(":9 rejected: a line of a Zeek log that is not conn `dns`")),
        "{e:?}"
    );
    assert!(
        e.iter()
            .any(|m| m.contains(":5 warning: invalid orig_bytes `-3` (and 1 more")),
        "{e:?}"
    );
    assert_eq!(s.warnings, 2);

    assert_eq!(
        c[0].ts_us, 1_795_996_800_000_001,
        "a float ts is exact to the µs"
    );
    assert_eq!(c[0].duration_us, Some(3_725_250_000));
    assert_eq!(c[0].orig_bytes, Some(120_450));
    assert_eq!(c[1].ts_us, 1_795_996_801_500_000, "ISO-8601 ts");
    assert_eq!(c[1].resp, ip("10.1.0.53"));
    assert_eq!(c[2].service.as_deref(), Some("ssl"), "escaped string");
    assert_eq!(c[2].conn_state.as_deref(), Some("SF"));
    assert_eq!(c[2].resp_port, Some(449));
    assert_eq!((c[3].service.as_deref(), c[3].duration_us), (None, None));
    assert_eq!(
        (c[4].orig_port, c[4].orig_bytes, c[4].resp_bytes),
        (None, None, Some(200))
    );
}

#[test]
fn nfdump_16_layout_with_summary_block() {
    let (s, c) = read_file("nfdump-1.6.csv");
    assert_eq!(s.format, Some(LogFormat::NfdumpCsv));
    let e = errors(&s);
    // Six flows, one with no time ("0000-00-00"); the three summary lines are not rejected.
    assert_eq!((s.lines, s.connections, s.rejected), (10, 5, 1), "{e:?}");
    assert!(
        e.iter()
            .any(|m| m.contains(":7 rejected: invalid start time")),
        "{e:?}"
    );
    assert!(
        e.iter()
            .any(|m| m.contains(":6 warning: invalid source port (sp) `5x`")),
        "{e:?}"
    );
    let f = &c[0];
    assert_eq!(f.ts_us, 1_795_996_800_000_000);
    assert_eq!((f.orig, f.resp), (ip("10.1.0.23"), ip("185.220.101.4")));
    assert_eq!(
        (f.orig_port, f.resp_port, f.proto),
        (Some(51234), Some(443), Proto::Tcp)
    );
    assert_eq!(f.duration_us, Some(3_725_250_000));
    assert_eq!(
        (f.orig_pkts, f.orig_bytes, f.resp_pkts, f.resp_bytes),
        (Some(4012), Some(280_930), Some(3990), Some(257_712))
    );
    assert_eq!(
        (f.service.as_deref(), f.conn_state.as_deref()),
        (None, None)
    );
    assert_eq!(c[1].proto, Proto::Udp);
    assert_eq!(c[2].orig, ip("2001:db8:1::5"));
    assert_eq!(c[3].proto, Proto::Icmp);
}

#[test]
fn nfdump_17_layout() {
    let (s, c) = read_file("nfdump-1.7.csv");
    assert_eq!(s.format, Some(LogFormat::NfdumpCsv));
    assert_eq!((s.connections, s.rejected), (3, 1), "{:?}", errors(&s));
    assert_eq!(c[0].ts_us, 1_795_996_800_001_000, "milliseconds");
    assert_eq!(c[0].proto, Proto::Tcp);
    assert_eq!(
        (c[0].orig_pkts, c[0].orig_bytes),
        (Some(4012), Some(280_930))
    );
    assert_eq!(
        (c[0].resp_pkts, c[0].resp_bytes),
        (None, None),
        "no biflow columns"
    );
    assert_eq!(c[2].proto, Proto::Icmp);
    assert_eq!(c[2].resp_port, None, "ICMP type.code is no port");
    assert_eq!(s.warnings, 0);
}

#[test]
fn rotated_gzip_members_are_read_through() {
    let (s, c) = read_file("zeek-conn-rotated.log.gz");
    assert_eq!(s.format, Some(LogFormat::ZeekTsv));
    assert_eq!((s.connections, s.rejected, s.truncated), (5, 0, false));
    assert_eq!(c[4].proto, Proto::Icmp, "the row of the second member");
}

#[test]
fn a_cut_gzip_stream_keeps_what_came_before() {
    let mut body = Vec::new();
    sample::generate(&mut body, 5_000, 7, LogFormat::ZeekTsv).unwrap();
    let gz = gzip(&body);
    let cut = &gz[..gz.len() * 2 / 3];
    let (s, c) = read_bytes(cut).unwrap();
    assert!(s.truncated);
    assert!(c.len() > 1_000 && c.len() < 5_000, "{}", c.len());
    assert_eq!(s.connections as usize, c.len());
    assert!(
        errors(&s)
            .iter()
            .any(|m| m.contains("gzip stream ends early")),
        "{:?}",
        errors(&s)
    );
    // The whole stream, for comparison.
    let (s, _) = read_bytes(&gz).unwrap();
    assert_eq!((s.connections, s.truncated), (5_000, false));
}

#[test]
fn unknown_formats_are_named_with_their_first_line() {
    let err = read_bytes(b"\n\nhello,world\x1b[31m\n1,2\n").unwrap_err();
    let msg = err.to_string();
    assert!(msg.starts_with("t.log: not a connection log"), "{msg}");
    assert!(msg.contains("`hello,world\\u{1b}[31m`"), "sanitised: {msg}");
    let err = read_bytes(
        b"#separator \\x09\n#path\tdns\n#fields\tts\tid.orig_h\tid.resp_h\n1\t10.0.0.1\t10.0.0.2\n",
    )
    .unwrap_err();
    assert!(err.to_string().contains("a Zeek `dns` log"), "{err}");
    let (s, c) = read_bytes(b"").unwrap();
    assert_eq!((s.format, s.lines, c.len()), (None, 0, 0));
}

#[test]
fn a_line_over_the_cap_is_skipped_and_rejected() {
    let mut body = Vec::new();
    sample::generate(&mut body, 3, 1, LogFormat::ZeekJson).unwrap();
    let mut huge = br#"{"ts":1,"id.orig_h":"10.0.0.1","id.resp_h":"10.0.0.2","x":""#.to_vec();
    huge.extend(std::iter::repeat_n(b'a', 200_000));
    huge.extend_from_slice(b"\"}\n");
    body.extend_from_slice(&huge);
    sample::generate(&mut body, 2, 2, LogFormat::ZeekJson).unwrap();
    let (s, c) = read_bytes(&body).unwrap();
    assert_eq!((s.connections, s.rejected, c.len()), (5, 1, 5));
    assert!(
        errors(&s)
            .iter()
            .any(|m| m.contains("t.log:4 rejected: line longer than 64 KiB"))
    );
}

#[test]
fn errors_are_capped_and_counts_go_on() {
    let mut body = b"#fields\tts\tid.orig_h\tid.resp_h\n".to_vec();
    for _ in 0..500 {
        body.extend_from_slice(b"x\t10.0.0.1\t10.0.0.2\n");
    }
    let (s, _) = read_bytes(&body).unwrap();
    assert_eq!(s.rejected, 500);
    assert_eq!(s.errors.len(), MAX_ERRORS);
    assert_eq!(s.errors[0].location, "t.log:2");
}

#[test]
fn the_generator_round_trips_in_every_format() {
    for format in [
        LogFormat::ZeekTsv,
        LogFormat::ZeekJson,
        LogFormat::NfdumpCsv,
    ] {
        let mut body = Vec::new();
        sample::generate(&mut body, 20_000, 42, format).unwrap();
        let (s, c) = read_bytes(&body).unwrap();
        assert_eq!(s.format, Some(format));
        assert_eq!(
            (s.connections, s.rejected, s.warnings),
            (20_000, 0, 0),
            "{format:?}: {:?}",
            errors(&s)
        );
        let long = c
            .iter()
            .filter(|c| c.duration_us.is_some_and(|d| d >= 3_600_000_000))
            .count();
        assert!(
            (1..=40).contains(&long),
            "{format:?}: {long} hour-long connections"
        );
        let internal = |a: &IpAddr| matches!(a, IpAddr::V4(v) if v.octets()[0] == 10);
        assert!(c.iter().filter(|c| !internal(&c.resp)).count() > 8_000);
        if format != LogFormat::NfdumpCsv {
            let odd_tls = c
                .iter()
                .filter(|c| c.service.as_deref() == Some("ssl") && c.resp_port != Some(443))
                .count();
            assert!((1..=40).contains(&odd_tls), "{odd_tls}");
            assert!(c.iter().any(|c| c.service.as_deref() == Some("dns")));
        }
    }
    // Same seed, same bytes.
    let (mut a, mut b) = (Vec::new(), Vec::new());
    sample::generate(&mut a, 100, 9, LogFormat::ZeekTsv).unwrap();
    sample::generate(&mut b, 100, 9, LogFormat::ZeekTsv).unwrap();
    assert_eq!(a, b);
}

/// The real capture of an infected host (Zeek TSV, 2010), when `../shared/samples` is there.
#[test]
fn conformance_with_the_infected_host_sample() {
    let Some(dir) = crate::support::samples("zeek") else {
        return;
    };
    let path = dir.join("infected-host-2010-conn.log");
    let mut got = Vec::new();
    let s = read_path(&path, &mut |c| got.push(Owned::from(c))).unwrap();
    assert_eq!(s.format, Some(LogFormat::ZeekTsv));
    assert_eq!(
        (s.lines, s.connections, s.rejected, s.warnings),
        (24, 15, 0, 0),
        "{:?}",
        errors(&s)
    );
    let first = &got[0];
    assert_eq!(first.ts_us, 1_268_758_214_788_023);
    assert_eq!(
        (first.orig, first.resp),
        (ip("192.168.23.129"), ip("192.168.23.2"))
    );
    assert_eq!(
        (first.proto, first.service.as_deref()),
        (Proto::Udp, Some("dns"))
    );
    assert_eq!(first.duration_us, Some(2_930_238));
    // The TLS connection and the one to port 444 with no service.
    assert!(
        got.iter()
            .any(|c| c.resp == ip("65.55.195.250") && c.service.as_deref() == Some("ssl"))
    );
    assert!(
        got.iter()
            .any(|c| c.resp_port == Some(444) && c.service.is_none())
    );
    let to_c2 = got.iter().filter(|c| c.resp == ip("59.53.91.102")).count();
    assert!(to_c2 >= 6, "{to_c2}");
}

#[test]
fn a_byte_order_mark_and_crlf_line_ends_are_read() {
    let body = b"\xEF\xBB\xBF{\"ts\":1,\"id.orig_h\":\"10.0.0.1\",\"id.resp_h\":\"10.0.0.2\"}\r\n\
{\"ts\":2,\"id.orig_h\":\"10.0.0.1\",\"id.resp_h\":\"10.0.0.2\",\"service\":\"dns\"}\r\n";
    let (s, c) = read_bytes(body).unwrap();
    assert_eq!((s.connections, s.rejected), (2, 0), "{:?}", errors(&s));
    assert_eq!(c[1].service.as_deref(), Some("dns"));
    let csv = b"\xEF\xBB\xBFts,sa,da\r\n2026-11-30 00:00:00,10.0.0.1,10.0.0.2\r\n";
    let (s, _) = read_bytes(csv).unwrap();
    assert_eq!((s.format, s.connections), (Some(LogFormat::NfdumpCsv), 1));
}

#[test]
fn zeek_tsv_with_its_own_separator_and_unset_markers() {
    let body = b"#separator \\x7c\n#unset_field|NULL\n#empty_field|EMPTY\n#path|conn\n\
#fields|ts|id.orig_h|id.orig_p|id.resp_h|id.resp_p|proto|service|duration|orig_bytes\n\
1795996800.25|10.0.0.1|40000|192.0.2.1|443|tcp|NULL|NULL|EMPTY\n\
1795996801|10.0.0.1|40001|192.0.2.1|449|tcp|ssl|2.000001|7\n\
#close|2026-11-30-01-00-00\n";
    let (s, c) = read_bytes(body).unwrap();
    assert_eq!(
        (s.connections, s.rejected, s.warnings),
        (2, 0, 0),
        "{:?}",
        errors(&s)
    );
    assert_eq!(
        (c[0].service.as_deref(), c[0].duration_us, c[0].orig_bytes),
        (None, None, None)
    );
    assert_eq!(c[0].ts_us, 1_795_996_800_250_000);
    assert_eq!(
        (c[1].service.as_deref(), c[1].duration_us, c[1].orig_bytes),
        (Some("ssl"), Some(2_000_001), Some(7))
    );
}
