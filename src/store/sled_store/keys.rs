//! Byte layout of the store's keys. Everything lives in one sled tree so one `Batch` is atomic;
//! the first byte names the namespace. Numbers are big-endian so byte order is numeric order.
//!
//! | prefix | key | value |
//! |---|---|---|
//! | `B` | bucket key, see below | a bucket of records (`record.rs`) |
//! | `P` | `rev(group(d))`, 0, page number (u32) | a page of domain postings: findings with domain `d` homed elsewhere |
//! | `R` | start time (8 bytes), source | fetch run (JSON) |
//! | `M` | state key | state value |
//! | `L` | `layout` | the layout version ([`LAYOUT_VERSION`], one byte) |
//!
//! Every sled write costs about as much as a whole bucket of records, so findings are grouped
//! into buckets. A finding's **home** (its locator) is derived from its primary indicator:
//!
//! | finding has | home | bucket | lookup by |
//! |---|---|---|---|
//! | `network` | `B N fam len net` | the home itself | exact get per prefix length (IP), range per length (CIDR) |
//! | `ip` | `B I a b c d` / `B J` + 16 bytes | the **range bucket** whose key is the last key <= the home | seek, filter on the header address |
//! | `domain` or `email` | `B D rev(group(domain))` 0 | the home itself | get, filter on the decoded domain |
//! | `asn` only | `B A asn` | the home itself | get |
//! | nothing | `B Z` | the home itself | — |
//!
//! Range buckets adapt to density: a bucket's key is the first address of its range, its range
//! runs to the next bucket's key, and a bucket that outgrows [`RANGE_BUCKET_BYTES`] is cut in
//! address order (never between two records of one address) into buckets keyed by their first
//! address. So a dense /24 and a million addresses spread over the whole internet both make
//! buckets of a few hundred findings. A finding's home never changes; an addressed finding moves
//! to another bucket only when its bucket is split, and is always found by the seek.
//!
//! Domains of findings homed away from them (host names of scanned IPs, e-mail domains) are
//! reachable through `P` postings: per domain group, pages of at most [`POSTING_PAGE_BYTES`]
//! of entries (domain, fingerprint, home), appended to the last page and never rewritten
//! whole, so a domain shared by a million findings costs one page write per ingest.

use std::net::IpAddr;

use chrono::{DateTime, Utc};
use ipnet::IpNet;

use super::record::FP_LEN;
use crate::finding::FindingView;

pub(super) const BUCKET: u8 = b'B';
pub(super) const POSTING: u8 = b'P';
pub(super) const RUN: u8 = b'R';
pub(super) const STATE: u8 = b'M';
/// The key holding the layout version.
pub(super) const LAYOUT: &[u8] = b"Llayout";
/// Layout of this version: range buckets and paged postings. 1 was one JSON record per
/// finding (`legacy.rs`); 2 had a bucket per /24 (/48) and a posting list per (group, bucket).
pub(super) const LAYOUT_VERSION: u8 = 3;

/// Range buckets of addresses.
const HOME_RANGE_V4: u8 = b'I';
const HOME_RANGE_V6: u8 = b'J';
/// Plain bytes of records above which a range bucket is split (about 250 scan findings).
pub(super) const RANGE_BUCKET_BYTES: usize = 64 << 10;
/// Plain bytes of entries in one posting page (about 1,000 entries).
pub(super) const POSTING_PAGE_BYTES: usize = 64 << 10;

const HOME_V4: u8 = 4;
const HOME_V6: u8 = 6;
const HOME_NET: u8 = b'N';
const HOME_DOMAIN: u8 = b'D';
const HOME_ASN: u8 = b'A';
const HOME_NONE: u8 = b'Z';

/// Decodes a hex fingerprint into its 16 bytes.
pub(super) fn fp_bytes(fp: &str) -> Option<[u8; FP_LEN]> {
    let mut out = [0u8; FP_LEN];
    hex::decode_to_slice(fp, &mut out).ok()?;
    Some(out)
}

/// [`fp_bytes`] of a finding's fingerprint, or the store's error naming the bad one (a finding
/// to be written must carry a fingerprint of 32 hex digits).
pub(super) fn fp_checked(fp: &str) -> crate::store::Result<[u8; FP_LEN]> {
    fp_bytes(fp).ok_or_else(|| {
        crate::store::StoreError::corrupt(
            "finding",
            format!("bad fingerprint `{}`", crate::text::clip(fp, 40)),
        )
    })
}

/// `B I a b c d` / `B J` + 16 bytes: the home of an address (its bucket is the last range
/// bucket key at or before it).
pub(super) fn ip_home(ip: IpAddr) -> Vec<u8> {
    let mut k = Vec::with_capacity(18);
    push_ip_home(ip, &mut k);
    k
}

fn push_ip_home(ip: IpAddr, k: &mut Vec<u8>) {
    k.push(BUCKET);
    match ip {
        IpAddr::V4(a) => {
            k.push(HOME_RANGE_V4);
            k.extend_from_slice(&a.octets());
        }
        IpAddr::V6(a) => {
            k.push(HOME_RANGE_V6);
            k.extend_from_slice(&a.octets());
        }
    }
}

/// The range-bucket prefix (`B I` or `B J`) a key lies under, if it is a range home or bucket.
pub(super) fn range_prefix(key: &[u8]) -> Option<&[u8]> {
    match key {
        [BUCKET, HOME_RANGE_V4, ..] | [BUCKET, HOME_RANGE_V6, ..] => Some(&key[..2]),
        _ => None,
    }
}

/// The address (4 or 16 bytes) of a range home, as a record's header holds it.
pub(super) fn range_home_ip(home: &[u8]) -> Option<&[u8]> {
    range_prefix(home).map(|_| &home[2..])
}

/// The key of the range bucket whose first record has address `ip` (4 or 16 bytes).
pub(super) fn range_key_of(ip: &[u8], out: &mut Vec<u8>) {
    out.clear();
    out.push(BUCKET);
    out.push(if ip.len() == 4 {
        HOME_RANGE_V4
    } else {
        HOME_RANGE_V6
    });
    out.extend_from_slice(ip);
}

/// Whether a key is a bucket of layout 2 (`B 4 a b c` or `B 6` + 6 bytes: a /24 or /48).
#[cfg(test)]
pub(super) fn is_old_ip_bucket(key: &[u8]) -> bool {
    matches!(key, [BUCKET, HOME_V4 | HOME_V6, ..])
}

/// `B N fam len`: prefix of the buckets of all networks of one family and length.
pub(super) fn net_len_home(v6: bool, len: u8) -> Vec<u8> {
    vec![BUCKET, HOME_NET, if v6 { HOME_V6 } else { HOME_V4 }, len]
}

/// `B N fam len net`: the bucket of one network (truncated to its prefix).
pub(super) fn net_home(net: IpNet) -> Vec<u8> {
    let net = net.trunc();
    let mut k = net_len_home(net.network().is_ipv6(), net.prefix_len());
    match net.network() {
        IpAddr::V4(a) => k.extend_from_slice(&a.octets()),
        IpAddr::V6(a) => k.extend_from_slice(&a.octets()),
    }
    k
}

/// The last two labels of a domain (`a.b.example.org` → `example.org`): how domains are grouped.
pub(super) fn group(d: &str) -> &str {
    match d.rmatch_indices('.').nth(1) {
        Some((i, _)) => &d[i + 1..],
        None => d,
    }
}

/// Reverses a domain's labels: `www.example.org` → `org.example.www.`. NUL bytes are dropped
/// (they end the domain part of a posting key).
pub(super) fn reversed_domain(d: &str) -> String {
    let mut out = Vec::with_capacity(d.len() + 1);
    push_reversed(d, &mut out);
    // Dropping NUL bytes (one-byte characters) from a `str` leaves valid UTF-8.
    String::from_utf8(out).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// Appends [`reversed_domain`] of `d` to a key.
fn push_reversed(d: &str, out: &mut Vec<u8>) {
    for label in d.rsplit('.').filter(|l| !l.is_empty()) {
        if label.as_bytes().contains(&0) {
            out.extend(label.bytes().filter(|&b| b != 0));
        } else {
            out.extend_from_slice(label.as_bytes());
        }
        out.push(b'.');
    }
}

/// `B D rev(group(d)) 0`: the bucket of findings about domain `d` (or e-mail on it).
pub(super) fn domain_home(d: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(4 + d.len());
    k.push(BUCKET);
    k.push(HOME_DOMAIN);
    push_reversed(group(d), &mut k);
    k.push(0);
    k
}

/// `B D rev(tld)`: prefix of every domain bucket under a one-label name.
pub(super) fn domain_home_prefix(tld: &str) -> Vec<u8> {
    let mut k = vec![BUCKET, HOME_DOMAIN];
    push_reversed(tld, &mut k);
    k
}

/// `B A asn`: the bucket of findings about an autonomous system only.
pub(super) fn asn_home(asn: u32) -> Vec<u8> {
    let mut k = vec![BUCKET, HOME_ASN];
    k.extend_from_slice(&asn.to_be_bytes());
    k
}

/// The domain part of an e-mail address.
pub(super) fn email_domain(e: &str) -> Option<&str> {
    e.rsplit_once('@').map(|(_, d)| d)
}

/// The home bucket of a (sealed) finding.
#[cfg(test)]
pub(super) fn home(f: &crate::finding::Finding) -> Vec<u8> {
    let mut k = Vec::new();
    home_into(&f.view(), &mut k);
    k
}

/// [`home`] written into a reused buffer (the ingest hot path).
pub(super) fn home_into(f: &FindingView<'_>, k: &mut Vec<u8>) {
    k.clear();
    if let Some(n) = f.network {
        k.extend_from_slice(&net_home(n));
    } else if let Some(ip) = f.ip {
        push_ip_home(ip, k);
    } else if let Some(d) = f.domain.or_else(|| f.email.and_then(email_domain)) {
        k.extend_from_slice(&domain_home(d));
    } else if let Some(a) = f.asn {
        k.extend_from_slice(&asn_home(a));
    } else {
        k.extend_from_slice(&[BUCKET, HOME_NONE]);
    }
}

/// Whether `home` is the domain bucket of `d` (then `d` needs no posting).
fn is_domain_home(d: &str, home: &[u8]) -> bool {
    home.get(1) == Some(&HOME_DOMAIN) && domain_home(d) == home
}

/// The domains of `f` that need a posting: those whose group is not `f`'s home.
pub(super) fn posting_domains<'a>(
    f: &FindingView<'a>,
    home: &'a [u8],
) -> impl Iterator<Item = &'a str> + use<'a> {
    domains(f).filter(move |d| !is_domain_home(d, home))
}

/// Every domain a lookup must find this finding under: its domain and its e-mail's domain.
pub(super) fn domains<'a>(f: &FindingView<'a>) -> impl Iterator<Item = &'a str> + use<'a> {
    let d = f.domain;
    let e = f.email.and_then(email_domain).filter(|e| Some(*e) != d);
    d.into_iter().chain(e)
}

/// `P rev(group(d)) 0`: prefix of the posting pages of domain `d`'s group.
pub(super) fn posting_prefix(d: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(2 + d.len() + 8);
    posting_key_into(d, &mut k);
    k
}

/// `P rev(tld)`: prefix of every posting under a one-label name.
pub(super) fn posting_tld_prefix(tld: &str) -> Vec<u8> {
    let mut k = vec![POSTING];
    push_reversed(tld, &mut k);
    k
}

/// `P rev(group(d)) 0`: the prefix of the posting pages of `d`'s group, into a reused buffer.
pub(super) fn posting_key_into(d: &str, k: &mut Vec<u8>) {
    k.clear();
    k.push(POSTING);
    push_reversed(group(d), k);
    k.push(0);
}

/// `prefix` + page number: the key of one posting page.
pub(super) fn posting_page_key(prefix: &[u8], page: u32) -> Vec<u8> {
    let mut k = Vec::with_capacity(prefix.len() + 4);
    k.extend_from_slice(prefix);
    k.extend_from_slice(&page.to_be_bytes());
    k
}

/// The page number of a posting page key under `prefix`.
pub(super) fn posting_page_no(prefix: &[u8], key: &[u8]) -> Option<u32> {
    Some(u32::from_be_bytes(
        key.get(prefix.len()..)?.try_into().ok()?,
    ))
}

/// Appends a posting entry: `len`, reversed domain (at most 255 bytes), fingerprint, `len`,
/// the finding's home (at most 255 bytes; homes are short).
pub(super) fn push_posting(d: &str, fp: &[u8; FP_LEN], home: &[u8], out: &mut Vec<u8>) {
    let at = out.len();
    out.push(0);
    push_reversed(d, out);
    let n = (out.len() - at - 1).min(255);
    out.truncate(at + 1 + n);
    out[at] = n as u8;
    out.extend_from_slice(fp);
    let h = &home[..home.len().min(255)];
    out.push(h.len() as u8);
    out.extend_from_slice(h);
}

/// One entry of a posting page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Posting<'a> {
    /// The reversed domain.
    pub domain: &'a [u8],
    pub fp: [u8; FP_LEN],
    /// The finding's home.
    pub home: &'a [u8],
    /// The whole entry, as stored.
    pub raw: &'a [u8],
}

/// The entries of a posting page. Stops at a damaged entry.
pub(super) fn postings(v: &[u8]) -> impl Iterator<Item = Posting<'_>> {
    let mut rest = v;
    std::iter::from_fn(move || {
        let n = *rest.first()? as usize;
        let domain = rest.get(1..1 + n)?;
        let fp: [u8; FP_LEN] = rest.get(1 + n..1 + n + FP_LEN)?.try_into().ok()?;
        let at = 1 + n + FP_LEN;
        let h = *rest.get(at)? as usize;
        let home = rest.get(at + 1..at + 1 + h)?;
        let (raw, r) = rest.split_at(at + 1 + h);
        rest = r;
        Some(Posting {
            domain,
            fp,
            home,
            raw,
        })
    })
}

/// Order-preserving encoding of a time (microseconds, sign bit flipped).
pub(super) fn time_bytes(t: DateTime<Utc>) -> [u8; 8] {
    ((t.timestamp_micros() as u64) ^ (1 << 63)).to_be_bytes()
}

pub(super) fn run(started: DateTime<Utc>, source: &str) -> Vec<u8> {
    let mut k = vec![RUN];
    k.extend_from_slice(&time_bytes(started));
    k.extend_from_slice(source.as_bytes());
    k
}

pub(super) fn state(key: &str) -> Vec<u8> {
    let mut k = vec![STATE];
    k.extend_from_slice(key.as_bytes());
    k
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::finding::{Classification, Finding, Severity};

    #[test]
    fn reversed_domain_matches_on_label_boundary() {
        assert_eq!(reversed_domain("www.Example.org"), "org.Example.www.");
        let parent = reversed_domain("example.org");
        assert!(reversed_domain("a.example.org").starts_with(&parent));
        assert!(!reversed_domain("badexample.org").starts_with(&parent));
        assert!(!reversed_domain("example.organic").starts_with(&parent));
    }

    #[test]
    fn groups_are_the_last_two_labels() {
        assert_eq!(group("a.b.example.org"), "example.org");
        assert_eq!(group("example.org"), "example.org");
        assert_eq!(group("org"), "org");
        assert_eq!(domain_home("x.example.org"), domain_home("example.org"));
        assert_ne!(domain_home("example.org"), domain_home("example.net"));
        assert!(domain_home("example.org").starts_with(&domain_home_prefix("org")));
        assert!(!domain_home("example.organic").starts_with(&domain_home_prefix("org")));
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
    fn homes_follow_the_primary_indicator() {
        let mut f = Finding::new("s", "f", Classification::default(), Severity::Low);
        f.asn = Some(64496);
        assert_eq!(home(&f), asn_home(64496));
        f.email = Some("a@mail.example.org".into());
        assert_eq!(home(&f), domain_home("example.org"));
        f.ip = Some("192.0.2.7".parse().unwrap());
        assert_eq!(home(&f), vec![BUCKET, HOME_RANGE_V4, 192, 0, 2, 7]);
        assert_eq!(range_prefix(&home(&f)), Some(&[BUCKET, HOME_RANGE_V4][..]));
        f.network = Some("192.0.2.0/24".parse().unwrap());
        assert_eq!(home(&f), net_home("192.0.2.0/24".parse().unwrap()));
        assert_eq!(
            domains(&f.view()).collect::<Vec<_>>(),
            vec!["mail.example.org"]
        );
        f.domain = Some("mail.example.org".into());
        assert_eq!(
            domains(&f.view()).collect::<Vec<_>>(),
            vec!["mail.example.org"]
        );
    }

    #[test]
    fn ip_homes_sort_numerically() {
        let a = ip_home("10.0.2.200".parse().unwrap());
        let b = ip_home("10.0.10.1".parse().unwrap());
        assert!(a < b);
    }

    #[test]
    fn posting_entries_round_trip() {
        let mut v = Vec::new();
        let home = ip_home("192.0.2.1".parse().unwrap());
        push_posting("a.example.org", &[1; FP_LEN], &home, &mut v);
        push_posting("example.org", &[2; FP_LEN], &asn_home(7), &mut v);
        let got: Vec<_> = postings(&v).collect();
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].domain, &b"org.example.a."[..]);
        assert_eq!((got[0].fp, got[0].home), ([1; FP_LEN], &home[..]));
        assert_eq!(got[1].home, &asn_home(7)[..]);
        assert_eq!([got[0].raw, got[1].raw].concat(), v);
        assert_eq!(postings(&v[..5]).count(), 0);
        let mut k = Vec::new();
        posting_key_into("a.example.org", &mut k);
        assert_eq!(k, posting_prefix("example.org"));
        let page = posting_page_key(&k, 7);
        assert_eq!(posting_page_no(&k, &page), Some(7));
    }
}
