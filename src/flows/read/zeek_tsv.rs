//! Zeek's ASCII (TSV) log writer: header blocks of `#key<sep>value` lines (`#separator` with
//! `\x09`-style escapes, `#unset_field`, `#empty_field`, `#path`, `#fields`, `#types`, `#open`,
//! `#close`), then one connection a line, columns in the order `#fields` names them. Every
//! header block (concatenated rotated logs) sets the mapping anew.

use super::fields;
use super::{Parsed, Problem, Warnings, fill_slots, identity, short_row};
use crate::flows::{Conn, Proto};

const TS: usize = 0;
const ORIG_H: usize = 1;
const ORIG_P: usize = 2;
const RESP_H: usize = 3;
const RESP_P: usize = 4;
const PROTO: usize = 5;
const SERVICE: usize = 6;
const DURATION: usize = 7;
const ORIG_BYTES: usize = 8;
const RESP_BYTES: usize = 9;
const CONN_STATE: usize = 10;
const ORIG_PKTS: usize = 11;
const RESP_PKTS: usize = 12;
const SLOTS: usize = 13;
const NONE: u8 = u8::MAX;

const NAMES: [&[u8]; SLOTS] = [
    b"ts",
    b"id.orig_h",
    b"id.orig_p",
    b"id.resp_h",
    b"id.resp_p",
    b"proto",
    b"service",
    b"duration",
    b"orig_bytes",
    b"resp_bytes",
    b"conn_state",
    b"orig_pkts",
    b"resp_pkts",
];

/// The column layout one `#fields` line gives.
struct Columns {
    /// Per column: the slot it fills, or [`NONE`].
    slot: Vec<u8>,
    /// The last column that fills a slot: splitting stops after it.
    last_needed: usize,
    /// Which slots some column fills.
    present: [bool; SLOTS],
}

pub(crate) struct ZeekTsv {
    sep: Vec<u8>,
    unset: Vec<u8>,
    empty: Vec<u8>,
    cols: Option<Columns>,
    /// `#path` of the current block, when it names something other than a conn log.
    not_conn: Option<Vec<u8>>,
    /// Whether a data line or a `#fields` of a conn block has been seen (then a later block
    /// of another log is rejected line by line rather than failing the file).
    seen_conn: bool,
    first_block_not_conn: bool,
}

impl ZeekTsv {
    pub(super) fn new() -> Self {
        ZeekTsv {
            sep: b"\t".to_vec(),
            unset: b"-".to_vec(),
            empty: b"(empty)".to_vec(),
            cols: None,
            not_conn: None,
            seen_conn: false,
            first_block_not_conn: false,
        }
    }

    /// The `#path` of the first header block, when it is not a conn log (the file is then no
    /// conn log at all).
    pub(super) fn first_block_not_conn(&self) -> Option<&[u8]> {
        if self.first_block_not_conn {
            self.not_conn.as_deref()
        } else {
            None
        }
    }

    pub(super) fn parse<'a>(&'a mut self, line: &'a [u8]) -> Parsed<'a> {
        if line.first() == Some(&b'#') {
            self.header(line);
            return Parsed::Skip;
        }
        if let Some(path) = &self.not_conn {
            return Parsed::Reject(Problem::new("a line of a Zeek log that is not conn", path));
        }
        let Some(cols) = &self.cols else {
            return Parsed::Reject(Problem::bare("a data line before any #fields header"));
        };
        self.seen_conn = true;
        let (vals, got) = fill_slots::<SLOTS>(line, &self.sep, &cols.slot, cols.last_needed);
        // Identity: ts and both addresses.
        for s in [TS, ORIG_H, RESP_H] {
            if !got[s] {
                return Parsed::Reject(if cols.present[s] {
                    Problem::bare("fewer columns than #fields names")
                } else {
                    Problem::bare("#fields has no ts, id.orig_h or id.resp_h")
                });
            }
        }
        let (ts_us, orig, resp) = match identity(
            [vals[TS], vals[ORIG_H], vals[RESP_H]],
            fields::decimal_us,
            ["invalid ts", "invalid id.orig_h", "invalid id.resp_h"],
        ) {
            Ok(id) => id,
            Err(p) => return Parsed::Reject(p),
        };
        let mut w = Warnings::default();
        if short_row(&got, &cols.present) {
            w.add(Problem::bare("fewer columns than #fields names"));
        }
        let unset = &self.unset[..];
        let empty = &self.empty[..];
        let is_none = |v: &[u8]| v == unset || v == empty;
        let num = |s: usize, w: &mut Warnings<'a>, what: &'static str| -> Option<u64> {
            let v = vals[s];
            if !got[s] || is_none(v) {
                return None;
            }
            let n = fields::count(v);
            if n.is_none() {
                w.add(Problem::new(what, v));
            }
            n
        };
        let orig_bytes = num(ORIG_BYTES, &mut w, "invalid orig_bytes");
        let resp_bytes = num(RESP_BYTES, &mut w, "invalid resp_bytes");
        let orig_pkts = num(ORIG_PKTS, &mut w, "invalid orig_pkts");
        let resp_pkts = num(RESP_PKTS, &mut w, "invalid resp_pkts");
        let orig_port = num(ORIG_P, &mut w, "invalid id.orig_p").and_then(|n| {
            let p = u16::try_from(n).ok();
            if p.is_none() {
                w.add(Problem::new("invalid id.orig_p", vals[ORIG_P]));
            }
            p
        });
        let resp_port = num(RESP_P, &mut w, "invalid id.resp_p").and_then(|n| {
            let p = u16::try_from(n).ok();
            if p.is_none() {
                w.add(Problem::new("invalid id.resp_p", vals[RESP_P]));
            }
            p
        });
        let duration_us = if !got[DURATION] || is_none(vals[DURATION]) {
            None
        } else {
            match fields::decimal_us(vals[DURATION]).and_then(|d| u64::try_from(d).ok()) {
                Some(d) => Some(d),
                None => {
                    w.add(Problem::new("invalid duration", vals[DURATION]));
                    None
                }
            }
        };
        let proto = if !got[PROTO] || is_none(vals[PROTO]) {
            Proto::Unknown
        } else {
            fields::proto(vals[PROTO]).unwrap_or_else(|| {
                w.add(Problem::new("invalid proto", vals[PROTO]));
                Proto::Unknown
            })
        };
        let mut text = |s: usize, what: &'static str| -> Option<&'a str> {
            let v = vals[s];
            if !got[s] || v.is_empty() || is_none(v) {
                return None;
            }
            match std::str::from_utf8(v) {
                Ok(t) => Some(t),
                Err(_) => {
                    w.add(Problem::new(what, v));
                    None
                }
            }
        };
        let service = text(SERVICE, "service is not UTF-8");
        let conn_state = text(CONN_STATE, "conn_state is not UTF-8");
        Parsed::Conn(
            Conn {
                ts_us,
                orig,
                orig_port,
                resp,
                resp_port,
                proto,
                service,
                duration_us,
                orig_pkts,
                resp_pkts,
                orig_bytes,
                resp_bytes,
                conn_state,
            },
            w,
        )
    }

    fn header(&mut self, line: &[u8]) {
        if let Some(v) = line.strip_prefix(b"#separator") {
            let v = v
                .strip_prefix(b" ")
                .or_else(|| v.strip_prefix(b"\t"))
                .unwrap_or(v);
            let sep = unescape(v);
            if !sep.is_empty() {
                self.sep = sep;
            }
            return;
        }
        let (key, value) = match memchr::memmem::find(line, &self.sep) {
            Some(i) if !self.sep.is_empty() => (&line[1..i], &line[i + self.sep.len()..]),
            _ => (&line[1..], &line[line.len()..]),
        };
        match key {
            b"unset_field" => self.unset = value.to_vec(),
            b"empty_field" => self.empty = value.to_vec(),
            b"path" => {
                let conn =
                    value == b"conn" || value.starts_with(b"conn_") || value.starts_with(b"conn.");
                self.not_conn = (!conn).then(|| value.to_vec());
                if !conn && !self.seen_conn {
                    self.first_block_not_conn = true;
                }
                if conn {
                    self.seen_conn = true;
                }
            }
            b"fields" => self.cols = Some(self.columns(value)),
            _ => {}
        }
    }

    fn columns(&self, names: &[u8]) -> Columns {
        let mut slot = Vec::new();
        let mut present = [false; SLOTS];
        let mut last_needed = 0;
        let parts: Vec<&[u8]> = if self.sep.len() == 1 {
            names.split(|b| *b == self.sep[0]).collect()
        } else {
            split_multi(names, &self.sep)
        };
        for (i, name) in parts.into_iter().enumerate() {
            let s = NAMES.iter().position(|n| *n == name);
            match s {
                Some(s) if !present[s] => {
                    present[s] = true;
                    slot.push(s as u8);
                    last_needed = i;
                }
                _ => slot.push(NONE),
            }
        }
        Columns {
            slot,
            last_needed,
            present,
        }
    }
}

fn split_multi<'a>(s: &'a [u8], sep: &[u8]) -> Vec<&'a [u8]> {
    let mut out = Vec::new();
    let mut rest = s;
    while let Some(i) = memchr::memmem::find(rest, sep) {
        out.push(&rest[..i]);
        rest = &rest[i + sep.len()..];
    }
    out.push(rest);
    out
}

/// `\x09` → a tab, `\\` → `\`; anything else as written.
fn unescape(v: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(v.len());
    let mut i = 0;
    while i < v.len() {
        if v[i] == b'\\' && i + 3 < v.len() && v[i + 1] == b'x' {
            let hex = |b: u8| (b as char).to_digit(16);
            if let (Some(h), Some(l)) = (hex(v[i + 2]), hex(v[i + 3])) {
                out.push((h * 16 + l) as u8);
                i += 4;
                continue;
            }
        }
        if v[i] == b'\\' && v.get(i + 1) == Some(&b'\\') {
            out.push(b'\\');
            i += 2;
            continue;
        }
        out.push(v[i]);
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn separator_escapes() {
        assert_eq!(unescape(b"\\x09"), b"\t");
        assert_eq!(unescape(b"\\x2c"), b",");
        assert_eq!(unescape(b"|"), b"|");
        assert_eq!(unescape(b"\\x0"), b"\\x0");
        assert_eq!(unescape(b"\\"), b"\\");
    }
}
