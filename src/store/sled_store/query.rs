//! Streamed queries of the sled store ([`crate::store::Store::query_each`]): buckets and posting
//! pages are read one at a time and each matching finding is handed on as soon as it is
//! decoded, so memory is bounded by a bucket and a chunk of postings, not by the result.
//!
//! Each finding lives in exactly one bucket, and a query visits each bucket once, so findings
//! reached through buckets are never repeated. Postings are the one way to reach a finding twice
//! (a finding with a domain and an e-mail domain both under the query has two), so only those
//! findings are remembered (their fingerprints), and posting entries pointing into a domain
//! bucket the query scans whole are skipped.

use std::collections::HashSet;
use std::ops::ControlFlow;

use ipnet::IpNet;

use super::keys;
use super::record::{self, FP_LEN, Header};
use super::{SledStore, corrupt, engine, opened};
use crate::finding::{Finding, Status};
use crate::store::{Flow, Query, QueryOptions, QueryTotals, Result};

/// Posting entries gathered before their buckets are read: the first chunk is small so the first
/// findings come quickly, the next ones larger so a bucket is read few times.
const FIRST_CHUNK: usize = 16 * 1024;
const MAX_CHUNK: usize = 256 * 1024;

/// Returns from the enclosing function when a walk was stopped.
macro_rules! go {
    ($e:expr) => {
        if let ControlFlow::Break(()) = $e? {
            return Ok(ControlFlow::Break(()));
        }
    };
}

/// Where matching findings go: the query's filters, the caller's callback, the count.
struct Sink<'a> {
    include_resolved: bool,
    since_micros: Option<i64>,
    resolved: u8,
    f: &'a mut dyn FnMut(Finding) -> Flow,
    handed: usize,
}

impl Sink<'_> {
    /// Whether the header passes the query options (before decoding).
    fn wants(&self, h: &Header<'_>) -> bool {
        (self.include_resolved || h.status != self.resolved)
            && self.since_micros.is_none_or(|s| h.last_seen_micros >= s)
    }

    fn give(&mut self, f: Finding) -> Flow {
        self.handed += 1;
        (self.f)(f)
    }
}

/// How a bucket's records are chosen: by header, then by the decoded finding.
struct Pick<'a> {
    header: &'a dyn Fn(&Header<'_>) -> bool,
    finding: &'a dyn Fn(&Finding) -> bool,
}

const ALL: Pick<'static> = Pick {
    header: &|_| true,
    finding: &|_| true,
};

impl SledStore {
    pub(super) fn stream_query(
        &self,
        q: &Query,
        opts: &QueryOptions,
        f: &mut dyn FnMut(Finding) -> Flow,
    ) -> Result<QueryTotals> {
        let mut sink = Sink {
            include_resolved: opts.include_resolved,
            since_micros: opts.since.map(|s| s.timestamp_micros()),
            resolved: record::status_code(Status::Resolved),
            f,
            handed: 0,
        };
        let flow = self.walk(q, &mut sink)?;
        Ok(QueryTotals {
            handed: sink.handed,
            stopped: flow.is_break(),
        })
    }

    fn walk(&self, q: &Query, sink: &mut Sink<'_>) -> Flow {
        match q {
            Query::Ip(ip) => {
                let (b, n) = record::ip_bytes(*ip);
                let home = keys::ip_home(*ip);
                let prefix = keys::range_prefix(&home).expect("an address home");
                if let (Some(bucket), _) = self.range_bucket(prefix, &home)? {
                    let pick = Pick {
                        header: &|h| h.ip == &b[..n],
                        finding: &|_| true,
                    };
                    go!(self.walk_bucket(&bucket, &pick, sink, None));
                }
                let max = if ip.is_ipv6() { 128 } else { 32 };
                for len in 0..=max {
                    let net = IpNet::new(*ip, len).expect("len within family");
                    go!(self.walk_bucket(&keys::net_home(net), &ALL, sink, None));
                }
            }
            Query::Net(net) => go!(self.walk_net(net, sink)),
            Query::Domain(d) => go!(self.walk_domain(d, sink)),
            Query::Email(e) => go!(self.walk_email(e, sink)),
            Query::Asn(a) => go!(self.walk_bucket(&keys::asn_home(*a), &ALL, sink, None)),
        }
        Ok(ControlFlow::Continue(()))
    }

    /// Addresses inside `net` and networks overlapping it.
    fn walk_net(&self, net: &IpNet, sink: &mut Sink<'_>) -> Flow {
        let net = net.trunc();
        let inside = |h: &Header<'_>| match h.ip.len() {
            4 => <[u8; 4]>::try_from(h.ip).is_ok_and(|a| net.contains(&std::net::IpAddr::from(a))),
            16 => {
                <[u8; 16]>::try_from(h.ip).is_ok_and(|a| net.contains(&std::net::IpAddr::from(a)))
            }
            _ => false,
        };
        let pick = Pick {
            header: &inside,
            finding: &|_| true,
        };
        // Range buckets from the one holding the first address to the last one starting
        // at or before the last address.
        let first = keys::ip_home(net.network());
        let prefix = keys::range_prefix(&first).expect("an address home");
        let lo = match self.range_bucket(prefix, &first)? {
            (Some(k), _) => k.to_vec(),
            (None, _) => first.clone(),
        };
        go!(self.walk_range(lo, keys::ip_home(net.broadcast()), &pick, sink));
        let v6 = net.network().is_ipv6();
        // Networks inside it (same or longer prefix)...
        for len in net.prefix_len()..=net.max_prefix_len() {
            let lo = IpNet::new(net.network(), len).expect("len");
            let hi = IpNet::new(net.broadcast(), len).expect("len");
            let (lo, hi) = (keys::net_home(lo), keys::net_home(hi));
            debug_assert!(lo.starts_with(&keys::net_len_home(v6, len)));
            go!(self.walk_range(lo, hi, &ALL, sink));
        }
        // ...and networks containing it.
        for len in 0..net.prefix_len() {
            let sup = IpNet::new(net.network(), len).expect("len");
            go!(self.walk_bucket(&keys::net_home(sup), &ALL, sink, None));
        }
        Ok(ControlFlow::Continue(()))
    }

    /// A domain, its subdomains and mail addresses on them: its domain buckets, then postings.
    fn walk_domain(&self, d: &str, sink: &mut Sink<'_>) -> Flow {
        let d = crate::finding::normalize_domain(d);
        if d.is_empty() {
            return Ok(ControlFlow::Continue(()));
        }
        let rd = keys::reversed_domain(&d);
        let under = |x: &str| keys::reversed_domain(x).starts_with(&rd);
        let matching = |f: &Finding| keys::domains(&f.view()).filter(|x| under(x)).count();
        let about = |f: &Finding| matching(f) > 0;
        let (buckets, posts) = if d.contains('.') {
            (keys::domain_home(&d), keys::posting_prefix(&d))
        } else {
            (keys::domain_home_prefix(&d), keys::posting_tld_prefix(&d))
        };
        let pick = Pick {
            header: &|_| true,
            finding: &about,
        };
        go!(self.walk_prefix(&buckets, &pick, sink));
        go!(self.walk_postings(
            &posts,
            &|x| x.starts_with(rd.as_bytes()),
            &buckets,
            &about,
            &|f| matching(f) > 1,
            sink,
        ));
        Ok(ControlFlow::Continue(()))
    }

    /// One mail address: its domain's bucket, then postings under that exact domain.
    fn walk_email(&self, e: &str, sink: &mut Sink<'_>) -> Flow {
        let e = e.trim().to_ascii_lowercase();
        let Some(d) = keys::email_domain(&e) else {
            return Ok(ControlFlow::Continue(()));
        };
        let d = crate::finding::normalize_domain(d);
        let rd = keys::reversed_domain(&d);
        let is = |f: &Finding| f.email.as_deref() == Some(e.as_str());
        let home = keys::domain_home(&d);
        let pick = Pick {
            header: &|_| true,
            finding: &is,
        };
        go!(self.walk_prefix(&home, &pick, sink));
        // A finding has one e-mail address, so one posting under its exact domain.
        go!(self.walk_postings(
            &keys::posting_prefix(&d),
            &|x| x == rd.as_bytes(),
            &home,
            &is,
            &|_| false,
            sink,
        ));
        Ok(ControlFlow::Continue(()))
    }

    /// The records of one bucket that `pick` chooses (and, when given, whose fingerprint is in
    /// the sorted `fps`).
    fn walk_bucket(
        &self,
        key: &[u8],
        pick: &Pick<'_>,
        sink: &mut Sink<'_>,
        fps: Option<&[[u8; FP_LEN]]>,
    ) -> Flow {
        match self.load_bucket(key)? {
            Some(plain) => walk_plain(key, &plain, pick, sink, fps, &mut |_, _| true),
            None => Ok(ControlFlow::Continue(())),
        }
    }

    /// Every bucket whose key lies in `[lo, hi]`.
    fn walk_range(&self, lo: Vec<u8>, hi: Vec<u8>, pick: &Pick<'_>, sink: &mut Sink<'_>) -> Flow {
        for b in self.db.range(lo..=hi).map(opened) {
            let (k, plain) = b?;
            go!(walk_plain(&k, &plain, pick, sink, None, &mut |_, _| true));
        }
        Ok(ControlFlow::Continue(()))
    }

    /// Every bucket whose key starts with `prefix`.
    fn walk_prefix(&self, prefix: &[u8], pick: &Pick<'_>, sink: &mut Sink<'_>) -> Flow {
        for b in self.db.scan_prefix(prefix).map(opened) {
            let (k, plain) = b?;
            go!(walk_plain(&k, &plain, pick, sink, None, &mut |_, _| true));
        }
        Ok(ControlFlow::Continue(()))
    }

    /// Findings reached through the posting pages under `prefix` whose domain passes
    /// `domain_ok`, except those homed in a bucket under `scanned` (already walked whole), which
    /// pass `keep`. Pages are read in chunks of entries; each chunk is sorted by home so that
    /// each bucket is read once per chunk. Findings for which `twice` holds (more than one
    /// posting can lead to them) are remembered and handed once.
    fn walk_postings(
        &self,
        prefix: &[u8],
        domain_ok: &dyn Fn(&[u8]) -> bool,
        scanned: &[u8],
        keep: &dyn Fn(&Finding) -> bool,
        twice: &dyn Fn(&Finding) -> bool,
        sink: &mut Sink<'_>,
    ) -> Flow {
        let mut chunk = Chunk::default();
        let mut limit = FIRST_CHUNK;
        let mut repeatable: HashSet<[u8; FP_LEN]> = HashSet::new();
        for kv in self.db.scan_prefix(prefix) {
            let (k, v) = kv.map_err(engine)?;
            let entries = record::posting_entries(&v).map_err(|e| corrupt(&k, e))?;
            for p in keys::postings(&entries) {
                if domain_ok(p.domain) && !p.home.starts_with(scanned) {
                    chunk.push(p.home, p.fp);
                }
            }
            if chunk.len() >= limit {
                go!(self.walk_chunk(&mut chunk, keep, twice, &mut repeatable, sink));
                limit = (limit * 4).min(MAX_CHUNK);
            }
        }
        self.walk_chunk(&mut chunk, keep, twice, &mut repeatable, sink)
    }

    /// Reads the buckets of a chunk of posting entries, then empties it.
    fn walk_chunk(
        &self,
        chunk: &mut Chunk,
        keep: &dyn Fn(&Finding) -> bool,
        twice: &dyn Fn(&Finding) -> bool,
        repeatable: &mut HashSet<[u8; FP_LEN]>,
        sink: &mut Sink<'_>,
    ) -> Flow {
        chunk.sort();
        let pick = Pick {
            header: &|_| true,
            finding: keep,
        };
        let mut once = |f: &Finding, fp: &[u8; FP_LEN]| !twice(f) || repeatable.insert(*fp);
        // The bucket being gathered and the fingerprints wanted from it.
        let mut open: Option<Open> = None;
        let mut fps: Vec<[u8; FP_LEN]> = Vec::new();
        for i in 0..chunk.len() {
            let (home, fp) = chunk.get(i);
            if open.as_ref().is_some_and(|o| o.holds(home)) {
                fps.push(fp);
                continue;
            }
            let next = match keys::range_prefix(home) {
                None => Open::Fixed(home.to_vec()),
                Some(p) => match self.range_bucket(p, home)? {
                    (Some(below), next) => Open::Range {
                        key: below.to_vec(),
                        next,
                    },
                    // No bucket holds it (a stale entry): nothing to read.
                    (None, _) => continue,
                },
            };
            if let Some(o) = open.replace(next) {
                go!(self.walk_wanted(o.key(), &mut fps, &pick, sink, &mut once));
            }
            fps.push(fp);
        }
        if let Some(o) = open.take() {
            go!(self.walk_wanted(o.key(), &mut fps, &pick, sink, &mut once));
        }
        chunk.clear();
        Ok(ControlFlow::Continue(()))
    }

    /// The findings of bucket `key` whose fingerprints are in `fps` (then emptied).
    fn walk_wanted(
        &self,
        key: &[u8],
        fps: &mut Vec<[u8; FP_LEN]>,
        pick: &Pick<'_>,
        sink: &mut Sink<'_>,
        once: &mut dyn FnMut(&Finding, &[u8; FP_LEN]) -> bool,
    ) -> Flow {
        fps.sort_unstable();
        fps.dedup();
        let flow = match self.load_bucket(key)? {
            Some(plain) => walk_plain(key, &plain, pick, sink, Some(fps), once)?,
            None => ControlFlow::Continue(()),
        };
        fps.clear();
        Ok(flow)
    }
}

/// Hands on the records of a decompressed bucket that `pick` (and `fps`, when given, and
/// `once`) choose.
fn walk_plain(
    key: &[u8],
    plain: &[u8],
    pick: &Pick<'_>,
    sink: &mut Sink<'_>,
    fps: Option<&[[u8; FP_LEN]]>,
    once: &mut dyn FnMut(&Finding, &[u8; FP_LEN]) -> bool,
) -> Flow {
    for rec in record::records(plain) {
        let rec = rec.map_err(|e| corrupt(key, e))?;
        let (h, _) =
            record::header(rec).ok_or_else(|| corrupt(key, record::RecordError::Header))?;
        if !(pick.header)(&h)
            || !sink.wants(&h)
            || fps.is_some_and(|fps| fps.binary_search(&h.fp).is_err())
        {
            continue;
        }
        let f = record::decode(rec).map_err(|e| corrupt(key, e))?;
        if (pick.finding)(&f) && once(&f, &h.fp) {
            go!(sink.give(f));
        }
    }
    Ok(ControlFlow::Continue(()))
}

/// The bucket a chunk's entries are being gathered for.
enum Open {
    /// A bucket that is its own home (a network, a domain group, an ASN).
    Fixed(Vec<u8>),
    /// A range bucket: its key, and the next range bucket's key (where its range ends).
    Range {
        key: Vec<u8>,
        next: Option<sled::IVec>,
    },
}

impl Open {
    fn key(&self) -> &[u8] {
        match self {
            Open::Fixed(k) | Open::Range { key: k, .. } => k,
        }
    }

    /// Whether a finding homed at `home` lives in this bucket.
    fn holds(&self, home: &[u8]) -> bool {
        match self {
            Open::Fixed(k) => k[..] == home[..],
            Open::Range { key, next } => {
                keys::range_prefix(home) == keys::range_prefix(key)
                    && key[..] <= home[..]
                    && next.as_ref().is_none_or(|n| home[..] < n[..])
            }
        }
    }
}

/// Posting entries (home, fingerprint) in one arena: ~24 bytes plus the home each.
#[derive(Default)]
struct Chunk {
    homes: Vec<u8>,
    entries: Vec<(u32, u16, [u8; FP_LEN])>,
}

impl Chunk {
    fn push(&mut self, home: &[u8], fp: [u8; FP_LEN]) {
        let at = self.homes.len() as u32;
        self.homes.extend_from_slice(home);
        self.entries.push((at, home.len() as u16, fp));
    }

    fn len(&self) -> usize {
        self.entries.len()
    }

    fn get(&self, i: usize) -> (&[u8], [u8; FP_LEN]) {
        let (at, n, fp) = self.entries[i];
        (&self.homes[at as usize..at as usize + n as usize], fp)
    }

    /// Sorts by home, then fingerprint.
    fn sort(&mut self) {
        let homes = &self.homes;
        let home =
            |&(at, n, _): &(u32, u16, [u8; FP_LEN])| &homes[at as usize..at as usize + n as usize];
        self.entries
            .sort_unstable_by(|a, b| home(a).cmp(home(b)).then_with(|| a.2.cmp(&b.2)));
    }

    fn clear(&mut self) {
        self.homes.clear();
        self.entries.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::finding::{Classification, Severity};
    use crate::store::{IngestOptions, Store};
    use chrono::DateTime;

    fn finding(ip: Option<[u8; 4]>, domain: Option<&str>, email: Option<&str>) -> Finding {
        let mut f = Finding::new(
            "shadowserver",
            "scan_dns",
            Classification::new("", "vulnerable-system", "x"),
            Severity::Medium,
        );
        f.ip = ip.map(std::net::IpAddr::from);
        f.domain = domain.map(str::to_string);
        f.email = email.map(str::to_string);
        f.seal();
        f
    }

    fn streamed(s: &SledStore, q: &Query, stop_after: Option<usize>) -> (Vec<String>, QueryTotals) {
        let mut got = Vec::new();
        let opts = QueryOptions {
            include_resolved: true,
            ..Default::default()
        };
        let totals = s
            .query_each(q, &opts, &mut |f| {
                got.push(f.fingerprint);
                Ok(if stop_after.is_some_and(|n| got.len() >= n) {
                    ControlFlow::Break(())
                } else {
                    ControlFlow::Continue(())
                })
            })
            .unwrap();
        (got, totals)
    }

    #[test]
    fn a_shared_domain_streams_each_finding_once_across_posting_chunks() {
        let dir = tempfile::tempdir().unwrap();
        let s = SledStore::open(dir.path()).unwrap();
        // Addresses spread over IPv4 (many range buckets), each with a host name under one
        // group and a mail address under another: two postings each, far apart (one group's
        // pages, then the other's), more than the first chunk holds.
        let n = FIRST_CHUNK * 3 / 4;
        let mut batch: Vec<Finding> = (0..n as u32)
            .map(|i| {
                let a = i.wrapping_mul(2_654_435_761).to_be_bytes();
                finding(
                    Some(a),
                    Some(&format!("h{i}.isp.example")),
                    Some(&format!("u{i}@mail.example")),
                )
            })
            .collect();
        // Homed in a domain bucket of the TLD, with a posting under another group of it.
        batch.push(finding(
            None,
            Some("www.shop.example"),
            Some("a@isp.example"),
        ));
        batch.push(finding(Some([192, 0, 2, 1]), Some("other.test"), None));
        let now = DateTime::from_timestamp(1_790_000_000, 0).unwrap();
        s.ingest(batch.clone(), vec![], &IngestOptions { now })
            .unwrap();
        for (q, want) in [
            ("example", n + 1),
            ("isp.example", n + 1),
            ("mail.example", n),
        ] {
            let (got, totals) = streamed(&s, &Query::Domain(q.into()), None);
            let distinct: HashSet<&String> = got.iter().collect();
            assert_eq!((got.len(), distinct.len()), (want, want), "{q}");
            assert_eq!(
                totals,
                QueryTotals {
                    handed: want,
                    stopped: false
                }
            );
        }
        let (got, _) = streamed(&s, &Query::Domain("example".into()), None);
        assert!(got.contains(&batch[n].fingerprint));
        // The collector agrees, and cuts.
        let opts = QueryOptions {
            include_resolved: true,
            limit: Some(10),
            ..Default::default()
        };
        let top = s.query(&Query::Domain("example".into()), &opts).unwrap();
        assert_eq!(top.len(), 10);
        // A callback that stops ends the walk there.
        let (got, totals) = streamed(&s, &Query::Domain("isp.example".into()), Some(3));
        assert_eq!(got.len(), 3);
        assert_eq!(
            totals,
            QueryTotals {
                handed: 3,
                stopped: true
            }
        );
        let every: Query = "0.0.0.0/0".parse().unwrap();
        let (got, totals) = streamed(&s, &every, Some(5));
        assert_eq!((got.len(), totals.stopped), (5, true));
        assert_eq!(streamed(&s, &every, None).0.len(), n + 1);
    }
}
