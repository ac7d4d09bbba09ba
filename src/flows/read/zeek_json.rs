//! Zeek's JSON writer (`LogAscii::use_json=T`, or the json-streaming-logs package): one object
//! a line with the TSV names (`"id.orig_h"`), `ts` as epoch seconds (a number), epoch
//! milliseconds (`JSON::TS_MILLIS`) or an ISO-8601 string. Unknown fields are skipped without
//! being decoded; strings borrow from the line unless they hold escapes.

use std::borrow::Cow;
use std::fmt;
use std::io::Write;

use serde::Deserialize;
use serde::de::{self, IgnoredAny, MapAccess, SeqAccess, Visitor};

use super::fields;
use super::{Parsed, Problem, Warnings};
use crate::flows::{Conn, Proto};

/// One JSON value, as much of it as a connection needs.
#[derive(Debug, Default)]
enum Val<'a> {
    #[default]
    Absent,
    Null,
    Str(Cow<'a, str>),
    U(u64),
    I(i64),
    F(f64),
    /// A boolean, array or object: never what a connection field holds.
    Other,
}

impl<'de> Deserialize<'de> for Val<'de> {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Val<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON value")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Val<'de>, E> {
                Ok(Val::Str(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Val<'de>, E> {
                Ok(Val::Str(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E>(self, v: String) -> Result<Val<'de>, E> {
                Ok(Val::Str(Cow::Owned(v)))
            }
            fn visit_u64<E>(self, v: u64) -> Result<Val<'de>, E> {
                Ok(Val::U(v))
            }
            fn visit_i64<E>(self, v: i64) -> Result<Val<'de>, E> {
                Ok(Val::I(v))
            }
            fn visit_f64<E>(self, v: f64) -> Result<Val<'de>, E> {
                Ok(Val::F(v))
            }
            fn visit_bool<E>(self, _: bool) -> Result<Val<'de>, E> {
                Ok(Val::Other)
            }
            fn visit_unit<E>(self) -> Result<Val<'de>, E> {
                Ok(Val::Null)
            }
            fn visit_none<E>(self) -> Result<Val<'de>, E> {
                Ok(Val::Null)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut a: A) -> Result<Val<'de>, A::Error> {
                while a.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Val::Other)
            }
            fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<Val<'de>, A::Error> {
                while a.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Val::Other)
            }
        }
        d.deserialize_any(V)
    }
}

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
const PATH: usize = 13;
const SLOTS: usize = 14;

const NAMES: [&str; SLOTS] = [
    "ts",
    "id.orig_h",
    "id.orig_p",
    "id.resp_h",
    "id.resp_p",
    "proto",
    "service",
    "duration",
    "orig_bytes",
    "resp_bytes",
    "conn_state",
    "orig_pkts",
    "resp_pkts",
    "_path",
];

/// A key: one of [`NAMES`] (its slot) or something else.
struct Key(Option<usize>);

impl<'de> Deserialize<'de> for Key {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Key;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a field name")
            }
            fn visit_str<E>(self, v: &str) -> Result<Key, E> {
                Ok(Key(NAMES.iter().position(|n| *n == v)))
            }
        }
        d.deserialize_str(V)
    }
}

/// The fields of one record.
struct Rec<'a>([Val<'a>; SLOTS]);

impl<'de> Deserialize<'de> for Rec<'de> {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Rec<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<Rec<'de>, A::Error> {
                let mut r: [Val<'de>; SLOTS] = Default::default();
                while let Some(Key(k)) = a.next_key::<Key>()? {
                    match k {
                        Some(s) => r[s] = a.next_value()?,
                        None => {
                            a.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                Ok(Rec(r))
            }
        }
        d.deserialize_map(V)
    }
}

pub(crate) struct ZeekJson {
    service: String,
    conn_state: String,
}

impl ZeekJson {
    pub(super) fn new() -> Self {
        ZeekJson {
            service: String::new(),
            conn_state: String::new(),
        }
    }

    pub(super) fn parse<'a>(&'a mut self, line: &'a [u8]) -> Parsed<'a> {
        let Ok(Rec(mut r)) = serde_json::from_slice::<Rec<'a>>(line) else {
            return Parsed::Reject(Problem::bare("not a JSON object"));
        };
        if let Val::Str(p) = &r[PATH] {
            let p = p.as_bytes();
            if !(p == b"conn" || p.starts_with(b"conn_") || p.starts_with(b"conn.")) {
                return Parsed::Reject(Problem {
                    what: "a line of a Zeek log that is not conn",
                    value: Cow::Owned(p.to_vec()),
                });
            }
        }
        let Some(ts_us) = ts(&r[TS]) else {
            return Parsed::Reject(problem("missing or invalid ts", &r[TS]));
        };
        let Some(orig) = address(&r[ORIG_H]) else {
            return Parsed::Reject(problem("missing or invalid id.orig_h", &r[ORIG_H]));
        };
        let Some(resp) = address(&r[RESP_H]) else {
            return Parsed::Reject(problem("missing or invalid id.resp_h", &r[RESP_H]));
        };
        let mut w = Warnings::default();
        let num = |s: usize, what: &'static str, w: &mut Warnings<'a>| -> Option<u64> {
            match &r[s] {
                Val::Absent | Val::Null => None,
                Val::U(n) => Some(*n),
                Val::Str(t) if fields::count(t.as_bytes()).is_some() => fields::count(t.as_bytes()),
                v => {
                    w.add(problem(what, v));
                    None
                }
            }
        };
        let orig_bytes = num(ORIG_BYTES, "invalid orig_bytes", &mut w);
        let resp_bytes = num(RESP_BYTES, "invalid resp_bytes", &mut w);
        let orig_pkts = num(ORIG_PKTS, "invalid orig_pkts", &mut w);
        let resp_pkts = num(RESP_PKTS, "invalid resp_pkts", &mut w);
        let port = |s: usize, what: &'static str, w: &mut Warnings<'a>| -> Option<u16> {
            let n = num(s, what, w)?;
            let p = u16::try_from(n).ok();
            if p.is_none() {
                w.add(problem(what, &r[s]));
            }
            p
        };
        let orig_port = port(ORIG_P, "invalid id.orig_p", &mut w);
        let resp_port = port(RESP_P, "invalid id.resp_p", &mut w);
        let duration_us = match &r[DURATION] {
            Val::Absent | Val::Null => None,
            v => match seconds_us(v).and_then(|d| u64::try_from(d).ok()) {
                Some(d) => Some(d),
                None => {
                    w.add(problem("invalid duration", v));
                    None
                }
            },
        };
        let proto = match &r[PROTO] {
            Val::Absent | Val::Null => Proto::Unknown,
            Val::Str(p) => fields::proto(p.as_bytes()).unwrap_or_else(|| {
                w.add(problem("invalid proto", &r[PROTO]));
                Proto::Unknown
            }),
            v => {
                w.add(problem("invalid proto", v));
                Proto::Unknown
            }
        };
        // Strings that held escapes are owned: they move into buffers the parser keeps, so the
        // connection can borrow them.
        let service_val = std::mem::take(&mut r[SERVICE]);
        let state_val = std::mem::take(&mut r[CONN_STATE]);
        let service = text(service_val, &mut self.service, "invalid service", &mut w);
        let conn_state = text(
            state_val,
            &mut self.conn_state,
            "invalid conn_state",
            &mut w,
        );
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
}

fn text<'a>(
    v: Val<'a>,
    buf: &'a mut String,
    what: &'static str,
    w: &mut Warnings<'a>,
) -> Option<&'a str> {
    match v {
        Val::Str(Cow::Borrowed(s)) => (!s.is_empty() && s != "-").then_some(s),
        Val::Str(Cow::Owned(s)) => {
            *buf = s;
            (!buf.is_empty() && buf != "-").then_some(buf.as_str())
        }
        Val::Absent | Val::Null => None,
        v => {
            w.add(problem(what, &v));
            None
        }
    }
}

fn problem<'a>(what: &'static str, v: &Val<'_>) -> Problem<'a> {
    let value: Vec<u8> = match v {
        Val::Absent | Val::Null => Vec::new(),
        Val::Str(s) => s.as_bytes().to_vec(),
        Val::U(n) => n.to_string().into_bytes(),
        Val::I(n) => n.to_string().into_bytes(),
        Val::F(n) => n.to_string().into_bytes(),
        Val::Other => b"(array, object or boolean)".to_vec(),
    };
    Problem {
        what,
        value: Cow::Owned(value),
    }
}

fn address(v: &Val<'_>) -> Option<std::net::IpAddr> {
    match v {
        Val::Str(s) => fields::addr(s.as_bytes()),
        _ => None,
    }
}

/// Seconds as a JSON number (or a decimal string) → microseconds. A float is written out in
/// its shortest round-trip form and read as a decimal, so `1268758214.788023` gives exactly
/// `…788023` µs (Zeek writes at most six decimals, and two decimals that close cannot be the
/// same `f64`).
fn seconds_us(v: &Val<'_>) -> Option<i64> {
    match v {
        Val::U(n) => i64::try_from(*n).ok()?.checked_mul(1_000_000),
        Val::I(n) => n.checked_mul(1_000_000),
        Val::F(f) => {
            if !f.is_finite() {
                return None;
            }
            let mut buf = [0u8; 400];
            let mut cur = std::io::Cursor::new(&mut buf[..]);
            write!(cur, "{f}").ok()?;
            let n = cur.position() as usize;
            fields::decimal_us(&buf[..n])
        }
        Val::Str(s) => fields::decimal_us(s.as_bytes()),
        _ => None,
    }
}

/// `ts`: seconds (number), milliseconds (an integer past the year 5138 in seconds, as
/// `JSON::TS_MILLIS` writes), or an ISO-8601 string.
fn ts(v: &Val<'_>) -> Option<i64> {
    match v {
        Val::U(n) if *n >= 100_000_000_000 => i64::try_from(*n).ok()?.checked_mul(1_000),
        Val::Str(s) if s.len() >= 19 && s.as_bytes()[4] == b'-' => {
            fields::calendar_us(s.as_bytes())
        }
        v => seconds_us(v),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conn(line: &str) -> Option<(i64, Option<String>)> {
        let mut p = ZeekJson::new();
        match p.parse(line.as_bytes()) {
            Parsed::Conn(c, _) => Some((c.ts_us, c.service.map(str::to_string))),
            _ => None,
        }
    }

    #[test]
    fn ts_forms_and_escaped_strings() {
        let base = r#""id.orig_h":"10.0.0.1","id.resp_h":"192.0.2.1""#;
        let c = conn(&format!(r#"{{"ts":1268758214.788023,{base}}}"#)).unwrap();
        assert_eq!(c.0, 1_268_758_214_788_023);
        let c = conn(&format!(r#"{{"ts":1268758214788,{base}}}"#)).unwrap();
        assert_eq!(c.0, 1_268_758_214_788_000);
        let c = conn(&format!(r#"{{"ts":"2010-03-16T16:50:14.788023Z",{base}}}"#)).unwrap();
        assert_eq!(c.0, 1_268_758_214_788_023);
        let c = conn(&format!(
            r#"{{"ts":1,"service":"ss\u006c","x":[1,{{"a":2}}],{base}}}"#
        ))
        .unwrap();
        assert_eq!(c.1.as_deref(), Some("ssl"));
        assert!(conn(&format!(r#"{{"ts":"soon",{base}}}"#)).is_none());
        assert!(conn(r#"{"ts":1,"id.orig_h":"10.0.0.1"}"#).is_none());
        assert!(conn("[1,2]").is_none());
    }
}
