//! Value parsers shared by the log formats: decimal seconds to microseconds without floating
//! point, counts, ports, protocols, calendar times. All work on bytes and never panic.

use std::net::IpAddr;

use crate::flows::Proto;

/// `[-]digits[.digits]` seconds → microseconds, exactly (digits past the sixth decimal are
/// dropped, i.e. rounded towards zero). `None` for anything else or on overflow.
pub(super) fn decimal_us(s: &[u8]) -> Option<i64> {
    let (neg, s) = match s.first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let (int, frac) = match memchr::memchr(b'.', s) {
        Some(i) => (&s[..i], &s[i + 1..]),
        None => (s, &s[s.len()..]),
    };
    if int.is_empty() && frac.is_empty() {
        return None;
    }
    let mut secs: i64 = 0;
    for &b in int {
        let d = b.wrapping_sub(b'0');
        if d > 9 {
            return None;
        }
        secs = secs.checked_mul(10)?.checked_add(d as i64)?;
    }
    let mut us: i64 = 0;
    for (i, &b) in frac.iter().enumerate() {
        let d = b.wrapping_sub(b'0');
        if d > 9 {
            return None;
        }
        if i < 6 {
            us = us * 10 + d as i64;
        }
    }
    for _ in frac.len()..6 {
        us *= 10;
    }
    let total = secs.checked_mul(1_000_000)?.checked_add(us)?;
    Some(if neg { -total } else { total })
}

/// An unsigned decimal count (`0`..`u64::MAX`).
pub(super) fn count(s: &[u8]) -> Option<u64> {
    if s.is_empty() || s.len() > 20 {
        return None;
    }
    let mut n: u64 = 0;
    for &b in s {
        let d = b.wrapping_sub(b'0');
        if d > 9 {
            return None;
        }
        n = n.checked_mul(10)?.checked_add(d as u64)?;
    }
    Some(n)
}

/// A port number `0`..`65535`.
pub(super) fn port(s: &[u8]) -> Option<u16> {
    count(s).and_then(|n| u16::try_from(n).ok())
}

/// An IPv4 or IPv6 address as text.
pub(super) fn addr(s: &[u8]) -> Option<IpAddr> {
    // The common case first, without the UTF-8 check: four dotted decimals.
    if let Some(v4) = ipv4(s) {
        return Some(IpAddr::V4(v4));
    }
    if s.len() > 64 {
        return None;
    }
    std::str::from_utf8(s).ok()?.parse().ok()
}

fn ipv4(s: &[u8]) -> Option<std::net::Ipv4Addr> {
    if s.len() < 7 || s.len() > 15 {
        return None;
    }
    let mut oct = [0u8; 4];
    let mut i = 0usize;
    let mut val: u32 = 0;
    let mut digits = 0u8;
    for &b in s {
        if b == b'.' {
            if digits == 0 || i >= 3 {
                return None;
            }
            oct[i] = val as u8;
            i += 1;
            val = 0;
            digits = 0;
        } else {
            let d = b.wrapping_sub(b'0');
            // No leading zeros (as the standard parser: `01.2.3.4` is not an address).
            if d > 9 || digits == 3 || (digits == 1 && val == 0) {
                return None;
            }
            val = val * 10 + d as u32;
            digits += 1;
            if val > 255 {
                return None;
            }
        }
    }
    if i != 3 || digits == 0 {
        return None;
    }
    oct[3] = val as u8;
    Some(std::net::Ipv4Addr::from(oct))
}

/// A protocol as Zeek (`tcp`, `udp`, `icmp`, `unknown_transport`) or nfdump (`TCP`, `ICMP6`,
/// `6`, `17`) writes it. `None` when it is neither a known name nor a number 0..255. ICMPv6 is
/// [`Proto::Icmp`], as Zeek counts it.
pub(super) fn proto(s: &[u8]) -> Option<Proto> {
    if let Some(n) = count(s) {
        let n = u8::try_from(n).ok()?;
        return Some(match n {
            6 => Proto::Tcp,
            17 => Proto::Udp,
            1 | 58 => Proto::Icmp,
            n => Proto::Other(n),
        });
    }
    let mut lower = [0u8; 24];
    if s.len() > lower.len() {
        return None;
    }
    for (d, &b) in lower.iter_mut().zip(s) {
        *d = b.to_ascii_lowercase();
    }
    Some(match &lower[..s.len()] {
        b"tcp" => Proto::Tcp,
        b"udp" => Proto::Udp,
        b"icmp" | b"icmp6" | b"ipv6-icmp" => Proto::Icmp,
        b"unknown_transport" => Proto::Unknown,
        b"igmp" => Proto::Other(2),
        b"ipip" => Proto::Other(4),
        b"gre" => Proto::Other(47),
        b"esp" => Proto::Other(50),
        b"ah" => Proto::Other(51),
        b"sctp" => Proto::Other(132),
        _ => return None,
    })
}

/// `YYYY-MM-DD[T ]HH:MM:SS[.frac][Z|±HH:MM|±HHMM]` → microseconds since the epoch. Without a
/// zone the time is taken as UTC. `None` for an impossible date (nfdump's
/// `0000-00-00 00:00:00.000` for "no time" among them).
pub(super) fn calendar_us(s: &[u8]) -> Option<i64> {
    if s.len() < 19 {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<u32> {
        let mut n = 0u32;
        for &b in &s[r] {
            let d = b.wrapping_sub(b'0');
            if d > 9 {
                return None;
            }
            n = n * 10 + d as u32;
        }
        Some(n)
    };
    if s[4] != b'-' || s[7] != b'-' || !(s[10] == b'T' || s[10] == b' ') || s[13] != b':' {
        return None;
    }
    if s[16] != b':' {
        return None;
    }
    let date = chrono::NaiveDate::from_ymd_opt(num(0..4)? as i32, num(5..7)?, num(8..10)?)?;
    let time = date.and_hms_opt(num(11..13)?, num(14..16)?, num(17..19)?)?;
    let mut us = time.and_utc().timestamp().checked_mul(1_000_000)?;
    let mut rest = &s[19..];
    if let Some(frac) = rest.strip_prefix(b".") {
        let end = frac
            .iter()
            .position(|b| !b.is_ascii_digit())
            .unwrap_or(frac.len());
        if end == 0 {
            return None;
        }
        let mut f = 0i64;
        for (i, &b) in frac[..end].iter().enumerate() {
            if i < 6 {
                f = f * 10 + (b - b'0') as i64;
            }
        }
        for _ in end..6 {
            f *= 10;
        }
        us += f;
        rest = &frac[end..];
    }
    match rest {
        [] | b"Z" | b"z" => Some(us),
        [sign @ (b'+' | b'-'), zone @ ..] => {
            let (h, m) = match zone {
                [h1, h2, b':', m1, m2] | [h1, h2, m1, m2] => ([*h1, *h2], [*m1, *m2]),
                [h1, h2] => ([*h1, *h2], [b'0', b'0']),
                _ => return None,
            };
            let h = count(&h)? as i64;
            let m = count(&m)? as i64;
            if h > 23 || m > 59 {
                return None;
            }
            let off = (h * 3600 + m * 60) * 1_000_000;
            Some(if *sign == b'+' { us - off } else { us + off })
        }
        _ => None,
    }
}

/// `s` without spaces (and tabs) at either end.
pub(super) fn trim(s: &[u8]) -> &[u8] {
    let start = s
        .iter()
        .position(|b| !matches!(b, b' ' | b'\t'))
        .unwrap_or(s.len());
    let end = s
        .iter()
        .rposition(|b| !matches!(b, b' ' | b'\t'))
        .map_or(start, |e| e + 1);
    &s[start..end.max(start)]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimal_seconds_are_exact() {
        assert_eq!(
            decimal_us(b"1268758214.788023"),
            Some(1_268_758_214_788_023)
        );
        assert_eq!(decimal_us(b"0.000001"), Some(1));
        assert_eq!(decimal_us(b"2.5"), Some(2_500_000));
        assert_eq!(decimal_us(b"3"), Some(3_000_000));
        assert_eq!(decimal_us(b".5"), Some(500_000));
        assert_eq!(decimal_us(b"1.1234567"), Some(1_123_456));
        assert_eq!(decimal_us(b"-1.5"), Some(-1_500_000));
        assert_eq!(decimal_us(b""), None);
        assert_eq!(decimal_us(b"."), None);
        assert_eq!(decimal_us(b"1e9"), None);
        assert_eq!(decimal_us(b"99999999999999999999"), None);
    }

    #[test]
    fn addresses_ports_and_protocols() {
        assert_eq!(addr(b"10.1.2.3"), Some("10.1.2.3".parse().unwrap()));
        assert_eq!(
            addr(b"255.255.255.255"),
            Some("255.255.255.255".parse().unwrap())
        );
        assert_eq!(addr(b"2001:db8::1"), Some("2001:db8::1".parse().unwrap()));
        for bad in [
            &b"256.1.1.1"[..],
            b"1.2.3",
            b"1.2.3.4.5",
            b"01.2.3.4",
            b"1..2.3",
            b"",
            b"-",
        ] {
            assert_eq!(addr(bad), None, "{bad:?}");
        }
        assert_eq!(port(b"443"), Some(443));
        assert_eq!(port(b"65536"), None);
        assert_eq!(proto(b"tcp"), Some(Proto::Tcp));
        assert_eq!(proto(b"ICMP6"), Some(Proto::Icmp));
        assert_eq!(proto(b"47"), Some(Proto::Other(47)));
        assert_eq!(proto(b"300"), None);
        assert_eq!(proto(b"unknown_transport"), Some(Proto::Unknown));
    }

    #[test]
    fn calendar_times() {
        let base = 1_704_110_400_000_000; // 2024-01-01 12:00:00 UTC
        assert_eq!(calendar_us(b"2024-01-01 12:00:00"), Some(base));
        assert_eq!(
            calendar_us(b"2024-01-01 12:00:00.123"),
            Some(base + 123_000)
        );
        assert_eq!(calendar_us(b"2024-01-01T12:00:00.000001Z"), Some(base + 1));
        assert_eq!(
            calendar_us(b"2024-01-01T13:00:00+01:00"),
            Some(base),
            "an offset is taken off"
        );
        assert_eq!(calendar_us(b"0000-00-00 00:00:00.000"), None);
        assert_eq!(calendar_us(b"2024-02-30 00:00:00"), None);
        assert_eq!(calendar_us(b"2024-01-01 12:00:00junk"), None);
    }
}
