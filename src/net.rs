//! Small facts about network names that several layers need (config checks, HTTP, SMTP).

use std::net::IpAddr;

/// Whether `host` names this machine's loopback interface (`localhost`, `127.0.0.0/8`, `::1`,
/// with or without IPv6 brackets).
pub(crate) fn is_loopback(host: &str) -> bool {
    let h = host.trim().trim_start_matches('[').trim_end_matches(']');
    h.eq_ignore_ascii_case("localhost") || h.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    #[test]
    fn loopback_names() {
        for h in [
            "localhost",
            "127.0.0.1",
            "127.3.2.1",
            "[::1]",
            "::1",
            "LOCALHOST",
        ] {
            assert!(super::is_loopback(h), "{h}");
        }
        for h in ["198.51.100.1", "example.org", "[2001:db8::1]", ""] {
            assert!(!super::is_loopback(h), "{h}");
        }
    }
}
