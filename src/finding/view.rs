//! [`FindingView`]: a finding borrowed field by field.
//!
//! The store fingerprints, homes and encodes views, so an owned [`Finding`] (through
//! [`Finding::view`]) and a row a parser has not turned into a `Finding` take one code path.
//! Hot parsers (the Shadowserver import) build views straight from the bytes of a row: no
//! `String` per field, no `extra` map.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;

use chrono::{DateTime, Utc};
use ipnet::IpNet;
use sha2::{Digest, Sha256};

use super::{Classification, Finding, HistoryEntry, Severity, Status};

/// A finding whose text fields are borrowed. Field meanings are those of [`Finding`].
///
/// A view that goes to the store must be *sealed*, as [`Finding::seal`] leaves a finding:
/// domain and e-mail lower-case, no trailing dot on the domain, the network truncated.
#[derive(Debug, Clone, Copy)]
pub struct FindingView<'a> {
    pub source: &'a str,
    pub feed: &'a str,
    pub classification: &'a Classification,
    pub ip: Option<IpAddr>,
    pub network: Option<IpNet>,
    pub port: Option<u16>,
    pub protocol: Option<&'a str>,
    pub asn: Option<u32>,
    pub domain: Option<&'a str>,
    pub url: Option<&'a str>,
    pub email: Option<&'a str>,
    pub severity: Severity,
    pub time_source: Option<DateTime<Utc>>,
    pub first_seen: DateTime<Utc>,
    pub last_seen: DateTime<Utc>,
    pub times_seen: u64,
    pub status: Status,
    pub in_scope: bool,
    pub extra: ExtraView<'a>,
    pub raw: Option<&'a str>,
    pub identity: &'a [String],
    pub history: &'a [HistoryEntry],
}

/// The `extra` fields of a view.
#[derive(Debug, Clone, Copy)]
pub enum ExtraView<'a> {
    /// Those of an owned finding.
    Map(&'a BTreeMap<String, serde_json::Value>),
    /// Pairs sorted by key, keys unique (what a parser builds).
    Pairs(&'a [(&'a str, ExtraVal<'a>)]),
}

/// A value of [`ExtraView::Pairs`]; each stands for the JSON value [`ExtraVal::to_json`] gives.
#[derive(Debug, Clone, PartialEq)]
pub enum ExtraVal<'a> {
    /// A string.
    Text(Cow<'a, str>),
    /// An array of strings borrowed from the row (tags).
    Strs(&'a [&'a str]),
    /// An array of strings made for the row (upper-cased CVE ids).
    Strings(&'a [String]),
    /// A network, as its text (`192.0.2.0/24`).
    Net(IpNet),
    /// A number.
    U64(u64),
}

impl ExtraVal<'_> {
    /// The JSON value this stands for.
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value;
        match self {
            ExtraVal::Text(s) => Value::String(s.to_string()),
            ExtraVal::Strs(a) => a.iter().map(|s| Value::String(s.to_string())).collect(),
            ExtraVal::Strings(a) => a.iter().map(|s| Value::String(s.clone())).collect(),
            ExtraVal::Net(n) => Value::String(n.to_string()),
            ExtraVal::U64(u) => Value::from(*u),
        }
    }
}

impl FindingView<'_> {
    /// The identity of the finding, as 16 bytes: SHA-256 over source, feed, type, identifier,
    /// every indicator field and [`Finding::identity`], each part hashed as its length (u32,
    /// big-endian) and its text (numbers and addresses as their `Display` text), truncated.
    pub fn fingerprint(&self) -> [u8; 16] {
        let mut h = Sha256::new();
        let mut part = |s: &str| {
            h.update((s.len() as u32).to_be_bytes());
            h.update(s.as_bytes());
        };
        let mut buf = PartBuf::new();
        part(self.source);
        part(self.feed);
        part(&self.classification.kind);
        part(&self.classification.identifier);
        part(self.ip.map_or("", |i| buf.display(i)));
        part(self.network.map_or("", |n| buf.display(n)));
        part(self.port.map_or("", |p| buf.number(p.into())));
        part(self.protocol.unwrap_or(""));
        part(self.asn.map_or("", |a| buf.number(a.into())));
        part(self.domain.unwrap_or(""));
        part(self.url.unwrap_or(""));
        part(self.email.unwrap_or(""));
        for p in self.identity {
            part(p);
        }
        let digest = h.finalize();
        let mut fp = [0u8; 16];
        fp.copy_from_slice(&digest[..16]);
        fp
    }

    /// An owned finding with the same fields (its fingerprint left empty, as parsers leave it).
    /// A view carries no earlier observations (only owned findings do).
    pub fn to_finding(&self) -> Finding {
        Finding {
            fingerprint: String::new(),
            source: self.source.to_string(),
            feed: self.feed.to_string(),
            classification: self.classification.clone(),
            ip: self.ip,
            network: self.network,
            port: self.port,
            protocol: self.protocol.map(str::to_string),
            asn: self.asn,
            domain: self.domain.map(str::to_string),
            url: self.url.map(str::to_string),
            email: self.email.map(str::to_string),
            severity: self.severity,
            time_source: self.time_source,
            first_seen: self.first_seen,
            last_seen: self.last_seen,
            times_seen: self.times_seen,
            status: self.status,
            in_scope: self.in_scope,
            extra: match self.extra {
                ExtraView::Map(m) => m.clone(),
                ExtraView::Pairs(p) => p
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_json()))
                    .collect(),
            },
            raw: self.raw.map(str::to_string),
            identity: self.identity.to_vec(),
            history: self.history.to_vec(),
            observations: Vec::new(),
            observations_dropped: 0,
        }
    }
}

/// A stack buffer for the text of one fingerprint part (an address, a network or a number).
pub(crate) struct PartBuf {
    buf: [u8; 64],
    len: usize,
    /// Used when a text does not fit `buf` (never for `IpAddr`, `IpNet` or integers).
    spill: String,
}

impl PartBuf {
    pub(crate) fn new() -> Self {
        PartBuf {
            buf: [0; 64],
            len: 0,
            spill: String::new(),
        }
    }

    /// The `Display` text of `v`, as `v.to_string()` gives it.
    pub(crate) fn display(&mut self, v: impl fmt::Display) -> &str {
        use fmt::Write;
        self.len = 0;
        if write!(self, "{v}").is_err() {
            self.spill = v.to_string();
            return &self.spill;
        }
        std::str::from_utf8(&self.buf[..self.len]).expect("only whole strs are written")
    }

    /// The decimal text of `n`, as `n.to_string()` gives it.
    pub(crate) fn number(&mut self, mut n: u64) -> &str {
        let mut i = self.buf.len();
        loop {
            i -= 1;
            self.buf[i] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        std::str::from_utf8(&self.buf[i..]).expect("ASCII digits")
    }
}

impl fmt::Write for PartBuf {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let end = self.len + s.len();
        let dst = self.buf.get_mut(self.len..end).ok_or(fmt::Error)?;
        dst.copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn part_text_is_the_display_text() {
        let mut b = PartBuf::new();
        for n in [0, 1, 9, 10, 99, 100, 65535, u64::from(u32::MAX), u64::MAX] {
            assert_eq!(b.number(n), n.to_string());
        }
        for a in [
            "0.0.0.0",
            "255.255.255.255",
            "::",
            "::ffff:255.255.255.255",
            "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
        ] {
            let ip: IpAddr = a.parse().unwrap();
            assert_eq!(b.display(ip), ip.to_string());
            let net = IpNet::new(ip, if ip.is_ipv4() { 32 } else { 128 }).unwrap();
            assert_eq!(b.display(net), net.to_string());
        }
        let long = "x".repeat(100);
        assert_eq!(b.display(&long), long);
        assert_eq!(b.display("short"), "short");
    }

    #[test]
    fn pairs_become_the_json_extra() {
        let c = Classification::new("", "vulnerable-system", "open-dns");
        let mut f = Finding::new("shadowserver", "scan_dns", c, Severity::Medium);
        f.ip = Some("192.0.2.7".parse().unwrap());
        let tags = ["a", "b"];
        let cves = vec!["CVE-2021-1".to_string()];
        let pairs = [
            ("cves", ExtraVal::Strings(&cves)),
            ("matched_asn", ExtraVal::U64(64496)),
            (
                "matched_prefix",
                ExtraVal::Net("192.0.2.0/24".parse().unwrap()),
            ),
            ("tags", ExtraVal::Strs(&tags)),
            ("x", ExtraVal::Text("é".into())),
        ];
        let mut v = f.view();
        v.extra = ExtraView::Pairs(&pairs);
        let g = v.to_finding();
        assert_eq!(
            serde_json::to_value(&g.extra).unwrap(),
            serde_json::json!({"cves": ["CVE-2021-1"], "matched_asn": 64496,
                "matched_prefix": "192.0.2.0/24", "tags": ["a", "b"], "x": "é"})
        );
        assert_eq!(g.compute_fingerprint(), f.compute_fingerprint());
        assert_eq!(hex::encode(v.fingerprint()), f.compute_fingerprint());
    }
}
