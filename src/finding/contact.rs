//! What tells the device behind an address apart: the ports and the peer of the observed
//! connection. Behind NAT, DHCP or CGNAT the observation time ([`super::rank::observed`]) and
//! the source port are what finds the machine; a sinkhole hit names the C2 it called.
//!
//! Sources keep the other side of an event in `extra` under its own names (Shadowserver:
//! `dst_ip`, `dst_port`, and the subject's ephemeral `src_port` as `port`; Team Cymru CAP:
//! `src_port`); [`contact`] picks them, whatever the source, as `src_port`, `src_ip`,
//! `dst_ip`, `dst_port`.

use std::fmt::Write as _;

use super::Finding;

/// An `extra` value as text: a string as it is, a number written out; `None` when empty.
fn text(f: &Finding, key: &str) -> Option<String> {
    match f.extra.get(key)? {
        serde_json::Value::String(s) if !s.trim().is_empty() => Some(s.clone()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// The ports and peer of the connection a finding reports, in this order where known:
/// `src_port`, `src_ip`, `dst_ip`, `dst_port` (the values as the feed wrote them: sanitise
/// before a terminal). Empty for a finding that reports no connection (a scan, a listing).
///
/// When the peer is the destination (`dst_ip`/`dst_port` in `extra`: the finding's address
/// made the connection, as for a sinkhole hit), the source port is `extra.src_port`, else the
/// subject's port kept as `extra.port`. When the peer is the source (`src_ip`/`src_port` in
/// `extra`: the finding's address was contacted, as a DDoS target), the destination port is the
/// finding's own port.
pub(crate) fn contact(f: &Finding) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    let (dst_ip, dst_port) = (text(f, "dst_ip"), text(f, "dst_port"));
    let (src_ip, src_port) = (text(f, "src_ip"), text(f, "src_port"));
    if dst_ip.is_some() || dst_port.is_some() {
        if let Some(p) = src_port.or_else(|| text(f, "port")) {
            out.push(("src_port", p));
        }
        out.extend(dst_ip.map(|v| ("dst_ip", v)));
        out.extend(dst_port.map(|v| ("dst_port", v)));
    } else if src_ip.is_some() {
        out.extend(src_port.map(|v| ("src_port", v)));
        out.extend(src_ip.map(|v| ("src_ip", v)));
        if let Some(p) = f.port.map(|p| p.to_string()).or_else(|| text(f, "port")) {
            out.push(("dst_port", p));
        }
    } else if let Some(p) = src_port {
        out.push(("src_port", p));
    }
    out
}

/// An address and port as a table prints them (`192.0.2.1:80`, `[2001:db8::1]:443`).
fn host_port(ip: &str, port: Option<&str>) -> String {
    match port {
        Some(p) if ip.contains(':') => format!("[{ip}]:{p}"),
        Some(p) => format!("{ip}:{p}"),
        None => ip.to_string(),
    }
}

/// [`contact`] in words for a table or a digest line, e.g. `src port 50100 → 203.0.113.80:80`
/// or `from 203.0.113.9:61234 → port 443`; empty when there is none. Not sanitised.
pub(crate) fn contact_text(f: &Finding) -> String {
    let c = contact(f);
    let get = |k: &str| c.iter().find(|(n, _)| *n == k).map(|(_, v)| v.as_str());
    let mut s = String::new();
    if let Some(ip) = get("src_ip") {
        let _ = write!(s, "from {}", host_port(ip, get("src_port")));
        if let Some(p) = get("dst_port") {
            let _ = write!(s, " → port {p}");
        }
        return s;
    }
    if let Some(p) = get("src_port") {
        let _ = write!(s, "src port {p}");
    }
    match (get("dst_ip"), get("dst_port")) {
        (Some(ip), port) => {
            let sep = if s.is_empty() { "to " } else { " → " };
            let _ = write!(s, "{sep}{}", host_port(ip, port));
        }
        (None, Some(p)) => {
            let sep = if s.is_empty() { "" } else { " → " };
            let _ = write!(s, "{sep}dst port {p}");
        }
        (None, None) => {}
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::finding::{Classification, Severity};

    fn f(extra: &[(&str, serde_json::Value)], port: Option<u16>) -> Finding {
        let mut f = Finding::new(
            "shadowserver",
            "event4_sinkhole_http",
            Classification::new("", "infected-system", "x"),
            Severity::Critical,
        );
        f.ip = Some("192.0.2.77".parse().unwrap());
        f.port = port;
        for (k, v) in extra {
            f.extra.insert(k.to_string(), v.clone());
        }
        f
    }

    #[test]
    fn a_sinkhole_hit_names_its_source_port_and_the_c2() {
        let hit = f(
            &[
                ("port", 50100.into()),
                ("dst_ip", "203.0.113.80".into()),
                ("dst_port", 80.into()),
            ],
            None,
        );
        assert_eq!(
            contact(&hit),
            [
                ("src_port", "50100".to_string()),
                ("dst_ip", "203.0.113.80".into()),
                ("dst_port", "80".into())
            ]
        );
        assert_eq!(contact_text(&hit), "src port 50100 → 203.0.113.80:80");
    }

    #[test]
    fn a_ddos_target_names_the_peer_that_came() {
        let target = f(
            &[
                ("src_ip", "2001:db8::9".into()),
                ("src_port", "61234".into()),
            ],
            Some(443),
        );
        assert_eq!(contact_text(&target), "from [2001:db8::9]:61234 → port 443");
    }

    #[test]
    fn a_scan_reports_no_connection() {
        let scan = f(&[("port", "eighty".into())], Some(3389));
        assert!(contact(&scan).is_empty());
        assert_eq!(contact_text(&scan), "");
        let cap = f(&[("src_port", "1337".into())], None);
        assert_eq!(contact_text(&cap), "src port 1337");
    }
}
