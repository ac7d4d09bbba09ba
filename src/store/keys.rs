//! Byte layout of the store's keys. Everything lives in one sled tree so one `Batch` is atomic;
//! the first byte names the namespace. Numbers are big-endian so byte order is numeric order.
//!
//! | prefix | key | value |
//! |---|---|---|
//! | `F` | fingerprint (16 bytes) | the record's sequence number (8 bytes) |
//! | `V` | sequence number (8 bytes) | header + finding (JSON), see [`encode_header`] |
//! | `I` | family (4/6), address bytes, fingerprint | empty: index by IP |
//! | `N` | family, prefix length, network bytes, fingerprint | empty: index by network |
//! | `D` | reversed domain labels (`org.example.www.`), 0, fingerprint | empty |
//! | `E` | e-mail address, 0, fingerprint | empty |
//! | `A` | ASN (4 bytes), fingerprint | empty; only for findings whose indicator *is* the ASN |
//! | `R` | start time (8 bytes), source | fetch run (JSON) |
//! | `M` | state key | state value |
//!
//! Every key costs a sled insert, and inserts bound the ingest rate, so a finding has its record
//! plus one index key per indicator and nothing more. Records live under a *sequential* key:
//! new ones are appended at the right edge of the tree, so sled copies small nodes of small
//! entries (`F`, the indexes) at random places and never the big record nodes; inserting
//! records under their random fingerprints made every write copy a node full of JSON. Filters by time, source and status
//! (resolving, the digest) read the small binary header in front of each record instead of
//! keeping more indexes.

use std::net::IpAddr;

use chrono::{DateTime, Utc};
use ipnet::IpNet;

pub const FINDING: u8 = b'F';
pub const RECORD: u8 = b'V';
pub const BY_IP: u8 = b'I';
pub const BY_NET: u8 = b'N';
pub const BY_DOMAIN: u8 = b'D';
pub const BY_EMAIL: u8 = b'E';
pub const BY_ASN: u8 = b'A';
pub const RUN: u8 = b'R';
pub const STATE: u8 = b'M';

/// Length of a binary fingerprint.
pub const FP_LEN: usize = 16;

/// Decodes a hex fingerprint into its 16 bytes.
pub fn fp_bytes(fp: &str) -> Option<[u8; FP_LEN]> {
    let mut out = [0u8; FP_LEN];
    hex::decode_to_slice(fp, &mut out).ok()?;
    Some(out)
}

/// `V seq`: where a record lives.
pub fn record(seq: u64) -> [u8; 9] {
    let mut k = [0u8; 9];
    k[0] = RECORD;
    k[1..].copy_from_slice(&seq.to_be_bytes());
    k
}

/// The sequence number stored as the value of an `F` key (or at the end of a `V` key).
pub fn seq_of(bytes: &[u8]) -> Option<u64> {
    let b: [u8; 8] = bytes.get(bytes.len().checked_sub(8)?..)?.try_into().ok()?;
    Some(u64::from_be_bytes(b))
}

pub fn finding(fp: &[u8; FP_LEN]) -> Vec<u8> {
    let mut k = Vec::with_capacity(1 + FP_LEN);
    k.push(FINDING);
    k.extend_from_slice(fp);
    k
}

/// Family byte and address bytes (4 or 16).
pub fn ip_parts(ip: IpAddr) -> (u8, Vec<u8>) {
    match ip {
        IpAddr::V4(a) => (4, a.octets().to_vec()),
        IpAddr::V6(a) => (6, a.octets().to_vec()),
    }
}

/// `I fam addr` — prefix of every index key of this exact address.
pub fn ip_prefix(ip: IpAddr) -> Vec<u8> {
    let (fam, b) = ip_parts(ip);
    let mut k = Vec::with_capacity(2 + b.len() + FP_LEN);
    k.push(BY_IP);
    k.push(fam);
    k.extend_from_slice(&b);
    k
}

pub fn by_ip(ip: IpAddr, fp: &[u8; FP_LEN]) -> Vec<u8> {
    let mut k = ip_prefix(ip);
    k.extend_from_slice(fp);
    k
}

/// `N fam len net` — prefix of every index key of this exact network.
pub fn net_prefix(net: IpNet) -> Vec<u8> {
    let (fam, b) = ip_parts(net.network());
    let mut k = Vec::with_capacity(3 + b.len() + FP_LEN);
    k.push(BY_NET);
    k.push(fam);
    k.push(net.prefix_len());
    k.extend_from_slice(&b);
    k
}

/// `N fam len` — prefix of all networks of one family and length.
pub fn net_len_prefix(v6: bool, len: u8) -> Vec<u8> {
    vec![BY_NET, if v6 { 6 } else { 4 }, len]
}

pub fn by_net(net: IpNet, fp: &[u8; FP_LEN]) -> Vec<u8> {
    let mut k = net_prefix(net);
    k.extend_from_slice(fp);
    k
}

/// Reverses a domain's labels: `www.example.org` → `org.example.www.`.
pub fn reversed_domain(d: &str) -> String {
    let mut out = String::with_capacity(d.len() + 1);
    for label in d.rsplit('.') {
        if label.is_empty() {
            continue;
        }
        out.push_str(label);
        out.push('.');
    }
    out
}

/// `D reversed` — prefix matching a domain and all its subdomains.
pub fn domain_prefix(d: &str) -> Vec<u8> {
    let r = reversed_domain(d);
    let mut k = Vec::with_capacity(1 + r.len());
    k.push(BY_DOMAIN);
    k.extend_from_slice(r.as_bytes());
    k
}

pub fn by_domain(d: &str, fp: &[u8; FP_LEN]) -> Vec<u8> {
    let mut k = domain_prefix(d);
    k.push(0);
    k.extend_from_slice(fp);
    k
}

pub fn email_prefix(e: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(2 + e.len() + FP_LEN);
    k.push(BY_EMAIL);
    k.extend_from_slice(e.as_bytes());
    k.push(0);
    k
}

pub fn by_email(e: &str, fp: &[u8; FP_LEN]) -> Vec<u8> {
    let mut k = email_prefix(e);
    k.extend_from_slice(fp);
    k
}

pub fn asn_prefix(asn: u32) -> Vec<u8> {
    let mut k = vec![BY_ASN];
    k.extend_from_slice(&asn.to_be_bytes());
    k
}

pub fn by_asn(asn: u32, fp: &[u8; FP_LEN]) -> Vec<u8> {
    let mut k = asn_prefix(asn);
    k.extend_from_slice(fp);
    k
}

/// Order-preserving encoding of a time (microseconds, sign bit flipped).
pub fn time_bytes(t: DateTime<Utc>) -> [u8; 8] {
    ((t.timestamp_micros() as u64) ^ (1 << 63)).to_be_bytes()
}

pub fn run(started: DateTime<Utc>, source: &str) -> Vec<u8> {
    let mut k = vec![RUN];
    k.extend_from_slice(&time_bytes(started));
    k.extend_from_slice(source.as_bytes());
    k
}

pub fn state(key: &str) -> Vec<u8> {
    let mut k = vec![STATE];
    k.extend_from_slice(key.as_bytes());
    k
}

/// The fingerprint at the end of an index key.
pub fn trailing_fp(key: &[u8]) -> Option<[u8; FP_LEN]> {
    if key.len() < FP_LEN {
        return None;
    }
    key[key.len() - FP_LEN..].try_into().ok()
}

/// Every index key a finding has (all but the `F` record itself).
pub fn index_keys(f: &crate::finding::Finding, fp: &[u8; FP_LEN]) -> Vec<Vec<u8>> {
    let mut ks = Vec::with_capacity(6);
    if let Some(ip) = f.ip {
        ks.push(by_ip(ip, fp));
    }
    if let Some(n) = f.network {
        ks.push(by_net(n, fp));
    }
    if let Some(d) = &f.domain {
        ks.push(by_domain(d, fp));
    }
    if let Some(e) = &f.email {
        ks.push(by_email(e, fp));
        if let Some((_, dom)) = e.rsplit_once('@')
            && f.domain.as_deref() != Some(dom)
        {
            ks.push(by_domain(dom, fp));
        }
    }
    if let Some(a) = f.asn
        && f.ip.is_none()
        && f.network.is_none()
        && f.domain.is_none()
        && f.email.is_none()
    {
        ks.push(by_asn(a, fp));
    }
    ks
}

/// Version byte of the record header.
const HEADER_V1: u8 = 1;

/// The fixed part of a record header: version, status, `last_seen` (8 bytes, microseconds).
const HEADER_FIXED: usize = 10;

/// What a record's header tells without decoding its JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header<'a> {
    pub status: u8,
    pub last_seen_micros: i64,
    pub source: &'a [u8],
    pub feed: &'a [u8],
}

/// Status codes in the header.
pub fn status_code(s: crate::finding::Status) -> u8 {
    match s {
        crate::finding::Status::New => 0,
        crate::finding::Status::Open => 1,
        crate::finding::Status::Resolved => 2,
    }
}

/// Writes the record header: version, status, `last_seen`, source and feed (length-prefixed,
/// each at most 255 bytes). The JSON follows it.
pub fn encode_header(f: &crate::finding::Finding, out: &mut Vec<u8>) {
    let src = &f.source.as_bytes()[..f.source.len().min(255)];
    let feed = &f.feed.as_bytes()[..f.feed.len().min(255)];
    out.push(HEADER_V1);
    out.push(status_code(f.status));
    out.extend_from_slice(&f.last_seen.timestamp_micros().to_be_bytes());
    out.push(src.len() as u8);
    out.extend_from_slice(src);
    out.push(feed.len() as u8);
    out.extend_from_slice(feed);
}

/// Splits a record into its header and its JSON; `None` when the header is malformed.
pub fn decode_header(v: &[u8]) -> Option<(Header<'_>, &[u8])> {
    if v.len() < HEADER_FIXED + 2 || v[0] != HEADER_V1 {
        return None;
    }
    let status = v[1];
    let last_seen_micros = i64::from_be_bytes(v[2..10].try_into().ok()?);
    let sl = *v.get(HEADER_FIXED)? as usize;
    let s_end = HEADER_FIXED + 1 + sl;
    let source = v.get(HEADER_FIXED + 1..s_end)?;
    let fl = *v.get(s_end)? as usize;
    let f_end = s_end + 1 + fl;
    let feed = v.get(s_end + 1..f_end)?;
    Some((
        Header {
            status,
            last_seen_micros,
            source,
            feed,
        },
        &v[f_end..],
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reversed_domain_matches_on_label_boundary() {
        assert_eq!(reversed_domain("www.Example.org"), "org.Example.www.");
        let parent = domain_prefix("example.org");
        assert!(domain_prefix("a.example.org").starts_with(&parent));
        assert!(!domain_prefix("badexample.org").starts_with(&parent));
        assert!(!domain_prefix("example.organic").starts_with(&parent));
    }

    #[test]
    fn time_bytes_order() {
        let a = DateTime::<Utc>::from_timestamp(-5, 0).unwrap();
        let b = DateTime::<Utc>::from_timestamp(5, 0).unwrap();
        let c = DateTime::<Utc>::from_timestamp(1_800_000_000, 0).unwrap();
        assert!(time_bytes(a) < time_bytes(b));
        assert!(time_bytes(b) < time_bytes(c));
    }

    #[test]
    fn header_round_trip() {
        let mut f = crate::finding::Finding::new(
            "hibp",
            "breaches",
            crate::finding::Classification::default(),
            crate::finding::Severity::High,
        );
        f.status = crate::finding::Status::Resolved;
        f.last_seen = DateTime::<Utc>::from_timestamp(1_800_000_000, 5_000).unwrap();
        let mut v = Vec::new();
        encode_header(&f, &mut v);
        v.extend_from_slice(b"{}");
        let (h, rest) = decode_header(&v).unwrap();
        assert_eq!(h.status, 2);
        assert_eq!(h.last_seen_micros, f.last_seen.timestamp_micros());
        assert_eq!(
            (h.source, h.feed, rest),
            (&b"hibp"[..], &b"breaches"[..], &b"{}"[..])
        );
        assert!(decode_header(&v[..5]).is_none());
        assert!(decode_header(b"{\"json\":1}").is_none());
    }

    #[test]
    fn ip_keys_sort_numerically() {
        let a = ip_prefix("10.0.0.2".parse().unwrap());
        let b = ip_prefix("10.0.0.10".parse().unwrap());
        assert!(a < b);
    }
}
