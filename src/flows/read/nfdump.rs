//! `nfdump -o csv`: a header line, one flow a line, and a trailing summary block (`Summary`,
//! then `flows,bytes,packets,avg_bps,avg_pps,avg_bpp` and its values). Columns are mapped by
//! name, so both layouts work:
//!
//! - nfdump 1.6 and 1.7 up to 1.7.4: `ts,te,td,sa,da,sp,dp,pr,flg,fwd,stos,ipkt,ibyt,opkt,obyt,
//!   in,out,sas,das,...`, times `2024-01-01 12:00:00` (some builds add `.123`), protocol names
//!   (`TCP`, `UDP`, `ICMP`);
//! - nfdump 1.7.5 on: `firstSeen,duration,proto,srcAddr,srcPort,dstAddr,dstPort,packets,bytes,
//!   flows`, times with milliseconds, protocol numbers, ICMP type and code as `dstPort` `8.0`;
//!   also `-o csv-fast` (`firstSeen` in epoch milliseconds).
//!
//! nfdump writes times in the local time of the machine it ran on, without a zone; they are
//! read as UTC (run `TZ=UTC nfdump ...`). nfdump replaces commas inside values with `;`, so a
//! plain split on `,` is exact.

use super::fields::{self, trim};
use super::{Parsed, Problem, Warnings, fill_slots, identity, short_row};
use crate::flows::{Conn, Proto};

const TS: usize = 0;
const TE: usize = 1;
const TD: usize = 2;
const SA: usize = 3;
const DA: usize = 4;
const SP: usize = 5;
const DP: usize = 6;
const PR: usize = 7;
const IPKT: usize = 8;
const IBYT: usize = 9;
const OPKT: usize = 10;
const OBYT: usize = 11;
const SLOTS: usize = 12;
const NONE: u8 = u8::MAX;

/// Column names of each slot, as the nfdump versions write them.
fn slot_of(name: &[u8]) -> Option<usize> {
    Some(match name {
        b"ts" | b"firstSeen" => TS,
        b"te" | b"lastSeen" => TE,
        b"td" | b"duration" => TD,
        b"sa" | b"srcAddr" => SA,
        b"da" | b"dstAddr" => DA,
        b"sp" | b"srcPort" => SP,
        b"dp" | b"dstPort" => DP,
        b"pr" | b"proto" => PR,
        b"ipkt" | b"inPackets" | b"packets" | b"pkt" => IPKT,
        b"ibyt" | b"inBytes" | b"bytes" | b"byt" => IBYT,
        b"opkt" | b"outPackets" => OPKT,
        b"obyt" | b"outBytes" => OBYT,
        _ => return None,
    })
}

/// Lines the summary block may have after `Summary` before anything else is rejected again.
const SUMMARY_LINES: u8 = 8;

pub(crate) struct Nfdump {
    slot: Vec<u8>,
    last_needed: usize,
    present: [bool; SLOTS],
    /// Lines of the summary block still allowed (`0`: not in it).
    summary_left: u8,
}

impl Nfdump {
    /// The parser for a header line, or `None` when `line` is not an nfdump CSV header (it
    /// must name the start time and both addresses).
    pub(super) fn from_header(line: &[u8]) -> Option<Nfdump> {
        let mut slot = Vec::new();
        let mut present = [false; SLOTS];
        let mut last_needed = 0;
        for (i, name) in line.split(|b| *b == b',').enumerate() {
            match slot_of(trim(name)) {
                Some(s) if !present[s] => {
                    present[s] = true;
                    slot.push(s as u8);
                    last_needed = i;
                }
                _ => slot.push(NONE),
            }
        }
        (present[TS] && present[SA] && present[DA]).then_some(Nfdump {
            slot,
            last_needed,
            present,
            summary_left: 0,
        })
    }

    pub(super) fn parse<'a>(&'a mut self, line: &'a [u8]) -> Parsed<'a> {
        if trim(line) == b"Summary" {
            self.summary_left = SUMMARY_LINES;
            return Parsed::Skip;
        }
        if let Some(again) = Nfdump::from_header(line) {
            // The header of a further nfdump output appended to this one.
            *self = again;
            return Parsed::Skip;
        }
        if self.summary_left > 0 {
            self.summary_left -= 1;
            return Parsed::Skip;
        }
        let (mut vals, got) = fill_slots::<SLOTS>(line, b",", &self.slot, self.last_needed);
        for v in &mut vals {
            *v = trim(v);
        }
        for s in [TS, SA, DA] {
            if !got[s] {
                return Parsed::Reject(Problem::bare("fewer columns than the header names"));
            }
        }
        let (ts_us, orig, resp) = match identity(
            [vals[TS], vals[SA], vals[DA]],
            time_us,
            [
                "invalid start time (ts)",
                "invalid source address (sa)",
                "invalid destination address (da)",
            ],
        ) {
            Ok(id) => id,
            Err(p) => return Parsed::Reject(p),
        };
        let mut w = Warnings::default();
        if short_row(&got, &self.present) {
            w.add(Problem::bare("fewer columns than the header names"));
        }
        let proto = if got[PR] {
            fields::proto(vals[PR]).unwrap_or_else(|| {
                w.add(Problem::new("invalid protocol (pr)", vals[PR]));
                Proto::Unknown
            })
        } else {
            Proto::Unknown
        };
        let num = |s: usize, what: &'static str, w: &mut Warnings<'a>| -> Option<u64> {
            if !got[s] {
                return None;
            }
            let n = fields::count(vals[s]);
            if n.is_none() {
                w.add(Problem::new(what, vals[s]));
            }
            n
        };
        let port = |s: usize, what: &'static str, w: &mut Warnings<'a>| -> Option<u16> {
            if !got[s] {
                return None;
            }
            // ICMP type and code (`8.0`) in nfdump 1.7's dstPort: no port.
            if proto == Proto::Icmp && memchr::memchr(b'.', vals[s]).is_some() {
                return None;
            }
            let p = fields::port(vals[s]);
            if p.is_none() {
                w.add(Problem::new(what, vals[s]));
            }
            p
        };
        let orig_port = port(SP, "invalid source port (sp)", &mut w);
        let resp_port = port(DP, "invalid destination port (dp)", &mut w);
        let orig_pkts = num(IPKT, "invalid packets (ipkt)", &mut w);
        let orig_bytes = num(IBYT, "invalid bytes (ibyt)", &mut w);
        let resp_pkts = num(OPKT, "invalid packets (opkt)", &mut w);
        let resp_bytes = num(OBYT, "invalid bytes (obyt)", &mut w);
        let duration_us = if got[TD] {
            match fields::decimal_us(vals[TD]).and_then(|d| u64::try_from(d).ok()) {
                Some(d) => Some(d),
                None => {
                    w.add(Problem::new("invalid duration (td)", vals[TD]));
                    None
                }
            }
        } else if got[TE] {
            match time_us(vals[TE]) {
                Some(te) => te.checked_sub(ts_us).and_then(|d| u64::try_from(d).ok()),
                None => {
                    w.add(Problem::new("invalid end time (te)", vals[TE]));
                    None
                }
            }
        } else {
            None
        };
        Parsed::Conn(
            Conn {
                ts_us,
                orig,
                orig_port,
                resp,
                resp_port,
                proto,
                service: None,
                duration_us,
                orig_pkts,
                resp_pkts,
                orig_bytes,
                resp_bytes,
                conn_state: None,
            },
            w,
        )
    }
}

/// A start or end time: `2024-01-01 12:00:00[.123]`, epoch milliseconds (`csv-fast`), or
/// `seconds.millis` (`%tsr`).
fn time_us(v: &[u8]) -> Option<i64> {
    if v.len() >= 19 && v[4] == b'-' {
        return fields::calendar_us(v);
    }
    if memchr::memchr(b'.', v).is_some() {
        return fields::decimal_us(v).filter(|t| *t > 0);
    }
    let ms = fields::count(v)?;
    i64::try_from(ms)
        .ok()?
        .checked_mul(1_000)
        .filter(|t| *t > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_of_both_generations() {
        assert!(
            Nfdump::from_header(b"ts,te,td,sa,da,sp,dp,pr,flg,fwd,stos,ipkt,ibyt,opkt,obyt")
                .is_some()
        );
        assert!(
            Nfdump::from_header(
                b"firstSeen,duration,proto,srcAddr,srcPort,dstAddr,dstPort,packets,bytes,flows"
            )
            .is_some()
        );
        assert!(Nfdump::from_header(b"flows,bytes,packets,avg_bps,avg_pps,avg_bpp").is_none());
        assert!(Nfdump::from_header(b"a,b,c").is_none());
    }
}
