//! The one rank of findings: what a person should act on first. The digest, `outwatch list
//! --sort rank` and every later view order findings by [`compare`]; the rule is written down
//! in `docs/digest.md` ("How findings are ranked").
//!
//! 1. severity, most severe first;
//! 2. the kind of threat ([`Threat`]): a compromise or an active threat (C2, infected host,
//!    phishing, a leak) before abuse coming from our addresses (spam, scanning, brute force,
//!    a DDoS) before an exposure (an open port, a vulnerable service) before the rest;
//! 3. open before resolved;
//! 4. the latest observation day first ([`observed`]: when the provider saw it, else when it
//!    was stored; compared by UTC day, because the rows of one daily report differ only by
//!    seconds and should then read in address order);
//! 5. the most often seen first;
//! 6. then by address in numeric order ([`address_order`]), so the order is total and stable.

use std::cmp::{Ordering, Reverse};
use std::net::IpAddr;

use chrono::{DateTime, Utc};

use super::{Classification, Finding, Status};

/// The kind of threat a finding stands for, most urgent first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum Threat {
    /// Something of ours is compromised or serves harm: malicious code (C2, infected
    /// systems, malware distribution), intrusions, fraud (phishing), leaked data.
    Compromise,
    /// Our address acts against others: spam, scanning, brute force, a DDoS.
    Abuse,
    /// Something of ours can be attacked: vulnerable or misconfigured services, open ports.
    Exposure,
    /// Everything else (test data, unclassified).
    Other,
}

impl Threat {
    /// The short word used in tables and the digest.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Threat::Compromise => "compromise",
            Threat::Abuse => "abuse",
            Threat::Exposure => "exposure",
            Threat::Other => "other",
        }
    }
}

/// The threat kind of a classification (by its RSIT taxonomy; a DDoS is abuse, other
/// availability issues such as an open amplifier are exposure).
pub(crate) fn threat(c: &Classification) -> Threat {
    match c.taxonomy.as_str() {
        "malicious-code" | "intrusions" | "fraud" | "information-content-security" => {
            Threat::Compromise
        }
        "abusive-content" | "intrusion-attempts" | "information-gathering" => Threat::Abuse,
        "availability" if matches!(c.kind.as_str(), "ddos" | "dos") => Threat::Abuse,
        "vulnerable" | "availability" => Threat::Exposure,
        _ => Threat::Other,
    }
}

/// When the finding was last observed: the provider's time (`time_source`) where it gave one,
/// else when outwatch last stored it.
pub(crate) fn observed(f: &Finding) -> DateTime<Utc> {
    f.time_source.unwrap_or(f.last_seen)
}

/// The UTC day of [`observed`]: the recency step of the rank.
pub(crate) fn observed_day(f: &Finding) -> chrono::NaiveDate {
    observed(f).date_naive()
}

/// Orders two findings by the rank: the one to act on first is `Less`.
pub(crate) fn compare(a: &Finding, b: &Finding) -> Ordering {
    a.severity
        .cmp(&b.severity)
        .then_with(|| threat(&a.classification).cmp(&threat(&b.classification)))
        .then_with(|| (a.status == Status::Resolved).cmp(&(b.status == Status::Resolved)))
        .then_with(|| Reverse(observed_day(a)).cmp(&Reverse(observed_day(b))))
        .then_with(|| Reverse(a.times_seen).cmp(&Reverse(b.times_seen)))
        .then_with(|| address_order(a, b))
        .then_with(|| a.fingerprint.cmp(&b.fingerprint))
}

/// A finding's place in address order: IPv4 before IPv6, numerically (a network by its first
/// address, the wider one first), then findings without an address by domain, URL and mail
/// address.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum AddressKey<'a> {
    Ip(u8, u128, u8),
    Name(&'a str),
    None,
}

/// The address key of a finding (see [`AddressKey`]).
pub(crate) fn address_key(f: &Finding) -> AddressKey<'_> {
    let ip = |ip: IpAddr, len: u8| match ip {
        IpAddr::V4(v4) => AddressKey::Ip(4, u32::from(v4) as u128, len),
        IpAddr::V6(v6) => AddressKey::Ip(6, u128::from(v6), len),
    };
    if let Some(a) = f.ip {
        return ip(a, if a.is_ipv4() { 32 } else { 128 });
    }
    if let Some(n) = f.network {
        return ip(n.network(), n.prefix_len());
    }
    match f
        .domain
        .as_deref()
        .or(f.url.as_deref())
        .or(f.email.as_deref())
    {
        Some(name) => AddressKey::Name(name),
        None => AddressKey::None,
    }
}

/// Orders two findings by address, numerically (`192.0.2.54` before `192.0.2.200`), then by
/// port.
pub(crate) fn address_order(a: &Finding, b: &Finding) -> Ordering {
    address_key(a)
        .cmp(&address_key(b))
        .then_with(|| a.port.cmp(&b.port))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::finding::Severity;
    use chrono::TimeZone;

    fn f(ip: &str, sev: Severity, kind: &str) -> Finding {
        let t = Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).unwrap();
        let mut f = Finding::new("test", "feed", Classification::new("", kind, "x"), sev);
        f.last_seen = t;
        f.ip = Some(ip.parse().unwrap());
        f
    }

    #[test]
    fn a_c2_outranks_spam_and_an_open_port_of_the_same_severity() {
        let mut v = [
            f("192.0.2.1", Severity::High, "vulnerable-system"),
            f("192.0.2.2", Severity::High, "spam"),
            f("192.0.2.3", Severity::High, "c2-server"),
            f("192.0.2.4", Severity::Critical, "vulnerable-system"),
        ];
        v.sort_by(compare);
        let order: Vec<String> = v.iter().map(|f| f.ip.unwrap().to_string()).collect();
        assert_eq!(order, ["192.0.2.4", "192.0.2.3", "192.0.2.2", "192.0.2.1"]);
    }

    #[test]
    fn addresses_sort_numerically_v4_before_v6() {
        let mut v = [
            f("2001:db8::1", Severity::Low, "spam"),
            f("192.0.2.200", Severity::Low, "spam"),
            f("192.0.2.54", Severity::Low, "spam"),
        ];
        v.sort_by(address_order);
        let order: Vec<String> = v.iter().map(|f| f.ip.unwrap().to_string()).collect();
        assert_eq!(order, ["192.0.2.54", "192.0.2.200", "2001:db8::1"]);
    }

    #[test]
    fn the_later_observation_comes_first_within_a_kind() {
        let mut old = f("192.0.2.1", Severity::High, "infected-system");
        let mut new = f("192.0.2.2", Severity::High, "infected-system");
        old.time_source = Some(Utc.with_ymd_and_hms(2016, 1, 1, 0, 0, 0).unwrap());
        new.time_source = Some(Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap());
        assert_eq!(compare(&new, &old), Ordering::Less);
        assert_eq!(observed(&old).format("%Y").to_string(), "2016");
    }

    #[test]
    fn one_days_observations_read_in_address_order() {
        // Rows of one daily report: seconds apart, the later one at the higher address.
        let mut a = f("192.0.2.200", Severity::High, "vulnerable-system");
        let mut b = f("192.0.2.54", Severity::High, "vulnerable-system");
        a.time_source = Some(Utc.with_ymd_and_hms(2026, 11, 20, 11, 5, 10).unwrap());
        b.time_source = Some(Utc.with_ymd_and_hms(2026, 11, 20, 9, 0, 0).unwrap());
        assert_eq!(compare(&b, &a), Ordering::Less);
        // A day later wins over the address.
        b.time_source = Some(Utc.with_ymd_and_hms(2026, 11, 19, 23, 59, 0).unwrap());
        assert_eq!(compare(&a, &b), Ordering::Less);
        // Seen more often wins within a day.
        b.time_source = a.time_source;
        a.times_seen = 3;
        b.times_seen = 1;
        assert_eq!(compare(&a, &b), Ordering::Less);
    }
}
