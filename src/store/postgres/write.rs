//! Writing findings: a unit's findings in batches, each batch merged with its stored twins by
//! the life-cycle rule (`store::lifecycle`) and upserted into `findings` by one statement whose
//! rows come as binary array parameters (`INSERT ... SELECT FROM unnest(...) ON CONFLICT`).
//! Everything happens inside the caller's transaction, so a unit is all or nothing however
//! many batches it takes.
//!
//! A row holds the indexed fields as columns and the whole finding in `rec`: the binary record
//! sled stores (`sled_store::encode_record`), LZ4-compressed when that pays (see [`pack`]),
//! about a quarter of the finding's JSON.
//!
//! Memory is bounded by the batch ([`BATCH`] findings and their stored twins). Which findings
//! the unit already wrote (a repeat in a later batch is folded with [`lifecycle::repeat`], not
//! merged as a new observation) is read from the stored row itself: its `xmin` is this
//! transaction's id exactly when this transaction wrote it.

use std::borrow::Cow;
use std::collections::HashMap;
use std::net::IpAddr;

use chrono::{DateTime, Utc};
use ipnet::IpNet;
use postgres::types::{IsNull, ToSql, Type, to_sql_checked};
use postgres::{Statement, Transaction};

use super::super::sled_store::{decode_record, encode_record};
use super::super::{FindingWriter, IngestStats, Result, StoreError, Write, lifecycle};
use super::pg;
use crate::finding::{Finding, FindingView, normalize_domain};

/// Findings written per round trip.
pub(super) const BATCH: usize = 5_000;

/// The columns of `findings`, in table order (what [`Rows`] holds).
pub(super) const COLUMNS: &str = "fingerprint, source, feed, status, severity, ip, network, asn, \
                           domain, domain_rev, email, email_rev, url, time_source, first_seen, \
                           last_seen, rec";

/// The upsert of a batch: one array parameter per column, in [`COLUMNS`] order.
fn upsert_sql() -> String {
    let set: String = COLUMNS
        .split(", ")
        .skip(1)
        .map(|c| format!("{c} = EXCLUDED.{c}"))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "INSERT INTO findings ({COLUMNS}) SELECT * FROM unnest($1::text[], $2::text[], \
         $3::text[], $4::text[], $5::text[], $6::inet[], $7::cidr[], $8::int8[], $9::text[], \
         $10::text[], $11::text[], $12::text[], $13::text[], $14::timestamptz[], \
         $15::timestamptz[], $16::timestamptz[], $17::bytea[]) \
         ON CONFLICT (fingerprint) DO UPDATE SET {set}"
    )
}

/// The batch's stored twins, locked, and whether this transaction wrote each.
const TWINS: &str = "SELECT rec, xmin = pg_current_xact_id()::xid FROM findings \
                     WHERE fingerprint = ANY($1) ORDER BY fingerprint FOR UPDATE";

/// The bulk writer of one unit (or of a rewrite, under [`Write::Restore`]).
pub(super) struct Writer<'a, 't> {
    tx: &'a mut Transaction<'t>,
    write: Write,
    now: DateTime<Utc>,
    batch: Vec<Finding>,
    /// The prepared upsert and twin lookup, once the first batch needs them.
    statements: Option<(Statement, Statement)>,
    pub stats: IngestStats,
    /// Findings written in all.
    pub written: usize,
}

impl<'a, 't> Writer<'a, 't> {
    /// A writer in `tx`.
    pub(super) fn new(tx: &'a mut Transaction<'t>, write: Write, now: DateTime<Utc>) -> Self {
        Writer {
            tx,
            write,
            now,
            batch: Vec::new(),
            statements: None,
            stats: IngestStats::default(),
            written: 0,
        }
    }

    /// Takes one finding; writes a batch when it is full.
    pub(super) fn push(&mut self, f: Finding) -> Result<()> {
        self.batch.push(sealed(f)?);
        if self.batch.len() >= BATCH {
            self.flush()?;
        }
        Ok(())
    }

    /// Writes what is pending.
    pub(super) fn flush(&mut self) -> Result<()> {
        if self.batch.is_empty() {
            return Ok(());
        }
        if self.statements.is_none() {
            let upsert = self.tx.prepare(&upsert_sql()).map_err(pg)?;
            let twins = self.tx.prepare(TWINS).map_err(pg)?;
            self.statements = Some((upsert, twins));
        }
        let batch = std::mem::take(&mut self.batch);
        let out = match self.write {
            Write::Restore => last_of_each(batch),
            Write::Observe => self.observe(batch)?,
        };
        self.written += out.len();
        let rows = Rows::of(&out)?;
        let (upsert, _) = self.statements.as_ref().expect("prepared above");
        self.tx.execute(upsert, &rows.params()).map_err(pg)?;
        Ok(())
    }

    /// The batch merged with what is stored, by the life-cycle rule, one finding per
    /// fingerprint.
    fn observe(&mut self, batch: Vec<Finding>) -> Result<Vec<Finding>> {
        let fps: Vec<&str> = batch.iter().map(|f| f.fingerprint.as_str()).collect();
        let (_, twins) = self.statements.as_ref().expect("prepared by flush");
        // Stored twins, and whether this unit wrote them (in an earlier batch).
        let mut stored: HashMap<String, (Finding, bool)> = HashMap::new();
        for row in self.tx.query(twins, &[&fps]).map_err(pg)? {
            let f = decode(row.get(0))?;
            stored.insert(f.fingerprint.clone(), (f, row.get(1)));
        }
        drop(fps);
        let mut out: Vec<Option<Finding>> = Vec::with_capacity(batch.len());
        let mut at: HashMap<String, usize> = HashMap::new();
        for f in batch {
            if let Some(&i) = at.get(&f.fingerprint) {
                let first = out[i].take().expect("each slot holds its finding");
                out[i] = Some(lifecycle::repeat(first, f));
                self.stats.duplicates += 1;
                continue;
            }
            let next = match stored.remove(&f.fingerprint) {
                Some((cur, true)) => {
                    self.stats.duplicates += 1;
                    lifecycle::repeat(cur, f)
                }
                Some((cur, false)) => lifecycle::merge(cur, f, self.now, &mut self.stats),
                None => {
                    let mut f = f;
                    lifecycle::stamp_new(&mut f, self.now);
                    self.stats.new += 1;
                    f
                }
            };
            at.insert(next.fingerprint.clone(), out.len());
            out.push(Some(next));
        }
        Ok(out.into_iter().flatten().collect())
    }
}

impl FindingWriter for Writer<'_, '_> {
    fn view(&mut self, f: &FindingView<'_>) -> Result<()> {
        self.push(f.to_finding())
    }

    fn finding(&mut self, f: &Finding) -> Result<()> {
        self.push(f.clone())
    }
}

/// A batch of findings as the columns of `findings` (one array per column).
pub(super) struct Rows<'a> {
    fingerprint: Vec<&'a str>,
    source: Vec<Cow<'a, str>>,
    feed: Vec<Cow<'a, str>>,
    status: Vec<&'static str>,
    severity: Vec<&'static str>,
    ip: Vec<Option<Inet>>,
    network: Vec<Option<Inet>>,
    asn: Vec<Option<i64>>,
    domain: Vec<Option<Cow<'a, str>>>,
    domain_rev: Vec<Option<Cow<'a, str>>>,
    email: Vec<Option<Cow<'a, str>>>,
    email_rev: Vec<Option<Cow<'a, str>>>,
    url: Vec<Option<Cow<'a, str>>>,
    time_source: Vec<Option<DateTime<Utc>>>,
    first_seen: Vec<DateTime<Utc>>,
    last_seen: Vec<DateTime<Utc>>,
    rec: Vec<Vec<u8>>,
}

impl<'a> Rows<'a> {
    /// The columns of `findings` (one finding per fingerprint), `rec` encoded.
    pub(super) fn of(findings: &'a [Finding]) -> Result<Rows<'a>> {
        let n = findings.len();
        let mut r = Rows {
            fingerprint: Vec::with_capacity(n),
            source: Vec::with_capacity(n),
            feed: Vec::with_capacity(n),
            status: Vec::with_capacity(n),
            severity: Vec::with_capacity(n),
            ip: Vec::with_capacity(n),
            network: Vec::with_capacity(n),
            asn: Vec::with_capacity(n),
            domain: Vec::with_capacity(n),
            domain_rev: Vec::with_capacity(n),
            email: Vec::with_capacity(n),
            email_rev: Vec::with_capacity(n),
            url: Vec::with_capacity(n),
            time_source: Vec::with_capacity(n),
            first_seen: Vec::with_capacity(n),
            last_seen: Vec::with_capacity(n),
            rec: Vec::with_capacity(n),
        };
        let mut plain = Vec::with_capacity(1024);
        for f in findings {
            r.fingerprint.push(&f.fingerprint);
            r.source.push(no_nul(&f.source));
            r.feed.push(no_nul(&f.feed));
            r.status.push(f.status.as_str());
            r.severity.push(f.severity.as_str());
            r.ip.push(f.ip.map(Inet::host));
            r.network.push(f.network.map(Inet::net));
            r.asn.push(f.asn.map(i64::from));
            r.domain.push(f.domain.as_deref().map(no_nul));
            r.domain_rev
                .push(f.domain.as_deref().map(|d| owned_no_nul(reversed(d))));
            r.email.push(f.email.as_deref().map(no_nul));
            r.email_rev.push(
                f.email
                    .as_deref()
                    .and_then(|e| e.rsplit_once('@'))
                    .map(|(_, d)| owned_no_nul(reversed(d))),
            );
            r.url.push(f.url.as_deref().map(no_nul));
            r.time_source.push(f.time_source);
            r.first_seen.push(f.first_seen);
            r.last_seen.push(f.last_seen);
            plain.clear();
            encode_record(f, &mut plain)?;
            r.rec.push(pack(&plain));
        }
        Ok(r)
    }

    /// The statement's parameters, in [`COLUMNS`] order.
    pub(super) fn params(&self) -> [&(dyn ToSql + Sync); 17] {
        [
            &self.fingerprint,
            &self.source,
            &self.feed,
            &self.status,
            &self.severity,
            &self.ip,
            &self.network,
            &self.asn,
            &self.domain,
            &self.domain_rev,
            &self.email,
            &self.email_rev,
            &self.url,
            &self.time_source,
            &self.first_seen,
            &self.last_seen,
            &self.rec,
        ]
    }
}

/// `s` as PostgreSQL text, which holds no NUL: one (possible in feed content) becomes U+FFFD
/// in the indexed columns; `rec` keeps it.
fn no_nul(s: &str) -> Cow<'_, str> {
    if s.contains('\0') {
        Cow::Owned(s.replace('\0', "\u{FFFD}"))
    } else {
        Cow::Borrowed(s)
    }
}

/// [`no_nul`] of an owned string.
fn owned_no_nul(s: String) -> Cow<'static, str> {
    match no_nul(&s) {
        Cow::Borrowed(_) => Cow::Owned(s),
        Cow::Owned(o) => Cow::Owned(o),
    }
}

/// An address or network in PostgreSQL's binary `inet`/`cidr` form (the client's own support
/// needs a feature and crate this project does not take for two columns).
#[derive(Debug, Clone, Copy)]
pub(super) struct Inet {
    addr: IpAddr,
    bits: u8,
}

impl Inet {
    fn host(addr: IpAddr) -> Inet {
        let bits = if addr.is_ipv4() { 32 } else { 128 };
        Inet { addr, bits }
    }

    fn net(n: IpNet) -> Inet {
        Inet {
            addr: n.addr(),
            bits: n.prefix_len(),
        }
    }
}

impl ToSql for Inet {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut bytes::BytesMut,
    ) -> std::result::Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        // family (PGSQL_AF_INET 2, PGSQL_AF_INET6 3), bits, is_cidr, length, address.
        let cidr = u8::from(*ty == Type::CIDR);
        match self.addr {
            IpAddr::V4(a) => {
                out.extend_from_slice(&[2, self.bits, cidr, 4]);
                out.extend_from_slice(&a.octets());
            }
            IpAddr::V6(a) => {
                out.extend_from_slice(&[3, self.bits, cidr, 16]);
                out.extend_from_slice(&a.octets());
            }
        }
        Ok(IsNull::No)
    }

    fn accepts(ty: &Type) -> bool {
        *ty == Type::INET || *ty == Type::CIDR
    }

    to_sql_checked!();
}

/// `rec` starts with this byte when the record follows as it is.
const PLAIN: u8 = 0;
/// `rec` starts with this byte when an LZ4 block follows (its plain length first, u32 LE).
const LZ4: u8 = 1;
/// Records shorter than this are kept plain: LZ4 finds little to take out of them.
const COMPRESS_FROM: usize = 384;
/// Largest plain record accepted when reading (a corrupt length must not allocate GiBs).
const MAX_PLAIN: usize = 1 << 28;

/// The `rec` value of a record: plain, or LZ4-compressed when that saves an eighth or more.
pub(super) fn pack(plain: &[u8]) -> Vec<u8> {
    if plain.len() >= COMPRESS_FROM {
        let mut out = Vec::with_capacity(plain.len());
        out.push(LZ4);
        out.extend_from_slice(&lz4_flex::block::compress_prepend_size(plain));
        if out.len() <= plain.len() - plain.len() / 8 {
            return out;
        }
    }
    let mut out = Vec::with_capacity(plain.len() + 1);
    out.push(PLAIN);
    out.extend_from_slice(plain);
    out
}

/// A stored finding from its `rec`.
pub(super) fn decode(rec: &[u8]) -> Result<Finding> {
    const WHAT: &str = "finding (PostgreSQL `rec`)";
    match rec.split_first() {
        Some((&PLAIN, plain)) => decode_record(plain, WHAT),
        Some((&LZ4, block)) => {
            let len = block
                .get(..4)
                .map(|b| u32::from_le_bytes(b.try_into().expect("4 bytes")) as usize)
                .ok_or_else(|| StoreError::corrupt(WHAT, "truncated LZ4 block"))?;
            if len > MAX_PLAIN {
                return Err(StoreError::corrupt(WHAT, format!("claims {len} bytes")));
            }
            let plain = lz4_flex::block::decompress_size_prepended(block)
                .map_err(|e| StoreError::corrupt(WHAT, e))?;
            decode_record(&plain, WHAT)
        }
        Some((kind, _)) => Err(StoreError::corrupt(WHAT, format!("unknown kind {kind}"))),
        None => Err(StoreError::corrupt(WHAT, "empty")),
    }
}

/// The last finding given for each fingerprint, in the order first given.
fn last_of_each(batch: Vec<Finding>) -> Vec<Finding> {
    let mut out: Vec<Finding> = Vec::with_capacity(batch.len());
    let mut at: HashMap<String, usize> = HashMap::new();
    for f in batch {
        match at.get(&f.fingerprint) {
            Some(&i) => out[i] = f,
            None => {
                at.insert(f.fingerprint.clone(), out.len());
                out.push(f);
            }
        }
    }
    out
}

/// The finding sealed (when it was not) with a well-formed fingerprint, else the error that
/// fails its unit.
pub(super) fn sealed(mut f: Finding) -> Result<Finding> {
    if f.fingerprint.is_empty() {
        f.seal();
    }
    let ok = f.fingerprint.len() == 32 && f.fingerprint.bytes().all(|b| b.is_ascii_hexdigit());
    if !ok {
        return Err(StoreError::corrupt(
            "finding",
            format!(
                "bad fingerprint `{}`",
                crate::text::clip(&f.fingerprint, 40)
            ),
        ));
    }
    Ok(f)
}

/// A domain's labels reversed: `www.example.org` → `org.example.www`.
pub(super) fn reversed(domain: &str) -> String {
    let d = normalize_domain(domain);
    let mut out = String::with_capacity(d.len());
    for (i, label) in d.rsplit('.').enumerate() {
        if i > 0 {
            out.push('.');
        }
        out.push_str(label);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::finding::{Classification, Severity};

    #[test]
    fn domains_reverse_by_label() {
        assert_eq!(reversed("www.Example.org."), "org.example.www");
        assert_eq!(reversed("org"), "org");
    }

    fn finding(extra: usize) -> Finding {
        let mut f = Finding::new(
            "test",
            "feed\twith tab",
            Classification::new("", "vulnerable-system", "open-service"),
            Severity::High,
        );
        f.email = Some("Alice@Mail.Example.org".into());
        f.ip = Some("192.0.2.7".parse().unwrap());
        f.set_extra("note", "line\nbreak \\ and \u{0}");
        for i in 0..extra {
            f.set_extra(&format!("field_{i}"), "the same text again and again");
        }
        f.seal();
        f
    }

    #[test]
    fn a_record_comes_back_whole_plain_or_compressed() {
        for (extra, kind) in [(0, PLAIN), (40, LZ4)] {
            let f = finding(extra);
            let mut plain = Vec::new();
            encode_record(&f, &mut plain).unwrap();
            let rec = pack(&plain);
            assert_eq!(rec[0], kind, "{extra} extra fields");
            assert_eq!(decode(&rec).unwrap(), f);
        }
    }

    #[test]
    fn a_damaged_record_is_an_error_not_a_panic() {
        let f = finding(40);
        let mut plain = Vec::new();
        encode_record(&f, &mut plain).unwrap();
        let rec = pack(&plain);
        for bad in [&[][..], &[9, 1, 2][..], &rec[..3], &rec[..rec.len() / 2]] {
            assert!(decode(bad).is_err(), "{bad:?}");
        }
        let mut huge = vec![LZ4];
        huge.extend_from_slice(&u32::MAX.to_le_bytes());
        assert!(decode(&huge).is_err());
    }

    #[test]
    fn a_row_has_every_column() {
        let f = finding(0);
        let rows = Rows::of(std::slice::from_ref(&f)).unwrap();
        assert_eq!(rows.params().len(), COLUMNS.split(", ").count());
        assert_eq!(rows.email_rev[0].as_deref(), Some("org.example.mail"));
        assert!(rows.network[0].is_none(), "no network");
        let mut f = finding(0);
        f.url = Some("http://a/\0b".into());
        let rows = Rows::of(std::slice::from_ref(&f)).unwrap();
        assert_eq!(
            rows.url[0].as_deref(),
            Some("http://a/\u{FFFD}b"),
            "no NUL in text"
        );
        assert_eq!(
            decode(&rows.rec[0]).unwrap().url,
            f.url,
            "the record keeps it"
        );
        assert_eq!(decode(&rows.rec[0]).unwrap(), f);
    }
}
