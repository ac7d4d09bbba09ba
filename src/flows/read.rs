// TEMPORARY: replaced by the fread branch. A minimal Zeek conn.log (TSV) reader with the
// signature the real readers have, so that `outwatch flows` and its tests work on this branch.
//! Log files → [`Conn`]s (temporary, Zeek TSV only; plain or gzip).

use std::io::{BufRead, BufReader, Read};
use std::net::IpAddr;
use std::path::Path;

use serde::Serialize;

use super::{Conn, Proto};
use crate::sources::RowError;

/// Most row errors kept per file (the count stays exact).
const MAX_ERRORS: usize = 100;

/// What reading one file gave.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ReadStats {
    pub format: String,
    pub lines: u64,
    pub connections: u64,
    pub rejected: u64,
    pub warnings: u64,
    pub errors: Vec<RowError>,
    /// The file ended inside a line or without Zeek's `#close`.
    pub truncated: bool,
}

/// Why a file could not be read at all.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Format(String),
}

fn opt_u64(s: &str) -> Option<u64> {
    s.parse().ok()
}

fn secs_us(s: &str) -> Option<i64> {
    let f: f64 = s.parse().ok()?;
    f.is_finite().then(|| (f * 1e6).round() as i64)
}

/// Reads one conn.log (plain or gzip), handing each connection to `sink`.
pub fn read_path(path: &Path, sink: &mut dyn FnMut(&Conn<'_>)) -> Result<ReadStats, ReadError> {
    let mut file = std::fs::File::open(path)?;
    let mut magic = [0u8; 2];
    let n = file.read(&mut magic)?;
    drop(file);
    let file = std::fs::File::open(path)?;
    let reader: Box<dyn BufRead> = if n == 2 && magic == [0x1f, 0x8b] {
        Box::new(BufReader::new(flate2::read::MultiGzDecoder::new(file)))
    } else {
        Box::new(BufReader::new(file))
    };
    read_zeek_tsv(reader, &path.display().to_string(), sink)
}

fn read_zeek_tsv(
    mut r: impl BufRead,
    shown: &str,
    sink: &mut dyn FnMut(&Conn<'_>),
) -> Result<ReadStats, ReadError> {
    let mut st = ReadStats {
        format: "zeek-tsv".into(),
        truncated: true,
        ..ReadStats::default()
    };
    let mut buf = Vec::new();
    let mut cols: Option<[Option<usize>; 14]> = None;
    loop {
        buf.clear();
        if r.read_until(b'\n', &mut buf)? == 0 {
            break;
        }
        st.lines += 1;
        let ended = buf.last() == Some(&b'\n');
        let line = String::from_utf8_lossy(&buf);
        let line = line.trim_end_matches(['\n', '\r']);
        if let Some(h) = line.strip_prefix('#') {
            if let Some(names) = h.strip_prefix("fields\t") {
                let names: Vec<&str> = names.split('\t').collect();
                let at = |n: &str| names.iter().position(|x| *x == n);
                cols = Some([
                    at("ts"),
                    at("id.orig_h"),
                    at("id.orig_p"),
                    at("id.resp_h"),
                    at("id.resp_p"),
                    at("proto"),
                    at("service"),
                    at("duration"),
                    at("orig_pkts"),
                    at("resp_pkts"),
                    at("orig_bytes"),
                    at("resp_bytes"),
                    at("conn_state"),
                    None,
                ]);
            } else if h.starts_with("close") {
                st.truncated = false;
            }
            continue;
        }
        if line.is_empty() {
            continue;
        }
        let Some(c) = &cols else {
            return Err(ReadError::Format(
                "not a Zeek conn.log: no #fields line before the first record".into(),
            ));
        };
        if !ended {
            st.truncated = true;
        }
        let fields: Vec<&str> = line.split('\t').collect();
        let get = |i: usize| {
            c[i].and_then(|j| fields.get(j).copied())
                .filter(|v| *v != "-" && *v != "(empty)" && !v.is_empty())
        };
        let ip = |i: usize| get(i).and_then(|v| v.parse::<IpAddr>().ok());
        let (Some(ts_us), Some(orig), Some(resp)) = (get(0).and_then(secs_us), ip(1), ip(3)) else {
            st.rejected += 1;
            if st.errors.len() < MAX_ERRORS {
                st.errors.push(RowError {
                    location: format!("{shown}:{}", st.lines),
                    message: "no valid ts, id.orig_h or id.resp_h".into(),
                });
            }
            continue;
        };
        let conn = Conn {
            ts_us,
            orig,
            orig_port: get(2).and_then(|v| v.parse().ok()),
            resp,
            resp_port: get(4).and_then(|v| v.parse().ok()),
            proto: match get(5) {
                Some("tcp") => Proto::Tcp,
                Some("udp") => Proto::Udp,
                Some("icmp") => Proto::Icmp,
                _ => Proto::Unknown,
            },
            service: get(6),
            duration_us: get(7).and_then(secs_us).and_then(|d| u64::try_from(d).ok()),
            orig_pkts: get(8).and_then(opt_u64),
            resp_pkts: get(9).and_then(opt_u64),
            orig_bytes: get(10).and_then(opt_u64),
            resp_bytes: get(11).and_then(opt_u64),
            conn_state: get(12),
        };
        st.connections += 1;
        sink(&conn);
    }
    Ok(st)
}
