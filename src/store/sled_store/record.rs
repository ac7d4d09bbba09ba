//! How findings are laid out inside the store's values.
//!
//! A **record** is one finding: a small binary header that filters read without decoding
//! anything else, then the rest of the finding in [postcard](https://docs.rs/postcard):
//!
//! | bytes | field |
//! |---|---|
//! | 16 | fingerprint |
//! | 1 | status code (0 new, 1 open, 2 resolved) |
//! | 8 | `last_seen`, microseconds since the epoch, big-endian |
//! | 1 + n | source (length-prefixed, at most 255 bytes) |
//! | 1 + n | feed (length-prefixed, at most 255 bytes) |
//! | 1 + n | address (`ip`: 0, 4 or 16 bytes) |
//! | rest | [`Body`] in postcard |
//!
//! A **bucket** is every record sharing a home key (see `keys::home`): a version byte, the record
//! count (u32 LE), the uncompressed length (u32 LE), then the records — each a u32 LE length and
//! its bytes — compressed as one LZ4 block. Records of one bucket look alike (same /24, same
//! report type), so the block compresses well, and one sled write carries many findings.

use std::borrow::Cow;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use chrono::{DateTime, Utc};
use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::finding::view::PartBuf;
use crate::finding::{
    Classification, Event, ExtraVal, ExtraView, Finding, FindingView, HistoryEntry, Observation,
    Severity, Status,
};

/// Length of a binary fingerprint.
pub(super) const FP_LEN: usize = 16;

/// What is wrong with a stored value (or a finding that cannot be encoded).
#[derive(Debug, thiserror::Error)]
pub(super) enum RecordError {
    #[error("bad record header")]
    Header,
    #[error("bad record body: {0}")]
    Body(#[source] postcard::Error),
    #[error("cannot encode finding: {0}")]
    Encode(#[source] postcard::Error),
    #[error("bad {0} in record")]
    Field(&'static str),
    #[error("truncated record in bucket")]
    Truncated,
    #[error("bad bucket header")]
    BucketHeader,
    #[error("truncated posting value")]
    PostingTruncated,
    #[error("{what} claims {len} bytes")]
    TooLarge { what: &'static str, len: usize },
    #[error("bad {what} block: {cause}")]
    Block {
        what: &'static str,
        #[source]
        cause: lz4_flex::block::DecompressError,
    },
    #[error("{what} block is {got} bytes, expected {len}")]
    BlockLength {
        what: &'static str,
        got: usize,
        len: usize,
    },
}

/// Version byte of a bucket value.
const BUCKET_V2: u8 = 2;
/// Bytes before the compressed block: version, count, uncompressed length.
const BUCKET_HEAD: usize = 9;
/// Largest uncompressed bucket accepted when reading (a corrupt length must not allocate GiBs).
const MAX_PLAIN: usize = 1 << 30;

/// Status codes in the record header.
pub(super) fn status_code(s: Status) -> u8 {
    match s {
        Status::New => 0,
        Status::Open => 1,
        Status::Resolved => 2,
    }
}

fn status_of(code: u8) -> Option<Status> {
    match code {
        0 => Some(Status::New),
        1 => Some(Status::Open),
        2 => Some(Status::Resolved),
        _ => None,
    }
}

/// What a record's header tells without decoding its body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Header<'a> {
    pub fp: [u8; FP_LEN],
    pub status: u8,
    pub last_seen_micros: i64,
    pub source: &'a [u8],
    pub feed: &'a [u8],
    /// The finding's `ip` as 4 or 16 bytes; empty when it has none.
    pub ip: &'a [u8],
}

/// Splits a record into its header and its postcard body; `None` when the header is malformed.
pub(super) fn header(rec: &[u8]) -> Option<(Header<'_>, &[u8])> {
    let fp: [u8; FP_LEN] = rec.get(..FP_LEN)?.try_into().ok()?;
    let status = *rec.get(FP_LEN)?;
    let last_seen_micros = i64::from_be_bytes(rec.get(FP_LEN + 1..FP_LEN + 9)?.try_into().ok()?);
    let mut at = FP_LEN + 9;
    let mut field = || -> Option<&[u8]> {
        let n = *rec.get(at)? as usize;
        let s = rec.get(at + 1..at + 1 + n)?;
        at += 1 + n;
        Some(s)
    };
    let source = field()?;
    let feed = field()?;
    let ip = field()?;
    Some((
        Header {
            fp,
            status,
            last_seen_micros,
            source,
            feed,
            ip,
        },
        &rec[at..],
    ))
}

/// The address bytes a header stores for an IP.
pub(super) fn ip_bytes(ip: IpAddr) -> ([u8; 16], usize) {
    let mut b = [0u8; 16];
    match ip {
        IpAddr::V4(a) => {
            b[..4].copy_from_slice(&a.octets());
            (b, 4)
        }
        IpAddr::V6(a) => (a.octets(), 16),
    }
}

fn ip_from(b: &[u8]) -> Option<Option<IpAddr>> {
    match b.len() {
        0 => Some(None),
        4 => Some(Some(IpAddr::V4(Ipv4Addr::from(
            <[u8; 4]>::try_from(b).ok()?,
        )))),
        16 => Some(Some(IpAddr::V6(Ipv6Addr::from(
            <[u8; 16]>::try_from(b).ok()?,
        )))),
        _ => None,
    }
}

/// A time as (seconds, nanoseconds): exact, and compact as postcard varints.
type Time = (i64, u32);

fn time(t: DateTime<Utc>) -> Time {
    (t.timestamp(), t.timestamp_subsec_nanos())
}

fn from_time((s, n): Time) -> Option<DateTime<Utc>> {
    DateTime::<Utc>::from_timestamp(s, n)
}

/// A JSON value of `Finding::extra`, in a form postcard can carry.
#[derive(Deserialize)]
enum Val<'a> {
    Null,
    Bool(bool),
    U64(u64),
    I64(i64),
    F64(f64),
    Str(Cow<'a, str>),
    Arr(Vec<Val<'a>>),
    Obj(Vec<(Cow<'a, str>, Val<'a>)>),
}

impl Val<'_> {
    fn into_json(self) -> serde_json::Value {
        use serde_json::Value;
        match self {
            Val::Null => Value::Null,
            Val::Bool(b) => Value::Bool(b),
            Val::U64(u) => Value::from(u),
            Val::I64(i) => Value::from(i),
            Val::F64(f) => serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number),
            Val::Str(s) => Value::String(s.into_owned()),
            Val::Arr(a) => Value::Array(a.into_iter().map(Val::into_json).collect()),
            Val::Obj(o) => Value::Object(
                o.into_iter()
                    .map(|(k, v)| (k.into_owned(), v.into_json()))
                    .collect(),
            ),
        }
    }
}

/// Everything of a finding the header does not carry, as it is read back. Field order is the
/// format: [`BodyOut`] writes the same fields in the same order; change both together, and
/// only with a new record version.
#[derive(Deserialize)]
struct Body<'a> {
    taxonomy: Cow<'a, str>,
    kind: Cow<'a, str>,
    identifier: Cow<'a, str>,
    network: Option<IpNet>,
    port: Option<u16>,
    protocol: Option<Cow<'a, str>>,
    asn: Option<u32>,
    domain: Option<Cow<'a, str>>,
    url: Option<Cow<'a, str>>,
    email: Option<Cow<'a, str>>,
    severity: Severity,
    time_source: Option<Time>,
    first_seen: Time,
    last_seen: Time,
    times_seen: u64,
    in_scope: bool,
    extra: Vec<(Cow<'a, str>, Val<'a>)>,
    raw: Option<Cow<'a, str>>,
    identity: Vec<Cow<'a, str>>,
    history: Vec<(Time, Cow<'a, str>)>,
}

/// [`Body`] as it is written, borrowing from the finding (no intermediate vectors).
#[derive(Serialize)]
struct BodyOut<'a> {
    taxonomy: &'a str,
    kind: &'a str,
    identifier: &'a str,
    network: Option<IpNet>,
    port: Option<u16>,
    protocol: Option<&'a str>,
    asn: Option<u32>,
    domain: Option<&'a str>,
    url: Option<&'a str>,
    email: Option<&'a str>,
    severity: Severity,
    time_source: Option<Time>,
    first_seen: Time,
    last_seen: Time,
    times_seen: u64,
    in_scope: bool,
    extra: ExtraOut<'a>,
    raw: Option<&'a str>,
    identity: &'a [String],
    history: HistoryOut<'a>,
}

/// `extra` written as a sequence of (key, [`Val`]) pairs.
struct ExtraOut<'a>(ExtraView<'a>);

impl Serialize for ExtraOut<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            ExtraView::Map(m) => s.collect_seq(m.iter().map(|(k, v)| (k.as_str(), ValOut(v)))),
            ExtraView::Pairs(p) => s.collect_seq(p.iter().map(|(k, v)| (*k, PairOut(v)))),
        }
    }
}

/// An [`ExtraVal`] written exactly as [`ValOut`] writes the JSON value it stands for.
struct PairOut<'a>(&'a ExtraVal<'a>);

impl Serialize for PairOut<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            ExtraVal::Text(t) => s.serialize_newtype_variant("Val", 5, "Str", t.as_ref()),
            ExtraVal::Strs(a) => s.serialize_newtype_variant("Val", 6, "Arr", &StrsOut(a)),
            ExtraVal::Strings(a) => s.serialize_newtype_variant("Val", 6, "Arr", &StrsOut(a)),
            ExtraVal::Net(n) => {
                let mut buf = PartBuf::new();
                s.serialize_newtype_variant("Val", 5, "Str", buf.display(n))
            }
            ExtraVal::U64(u) => s.serialize_newtype_variant("Val", 2, "U64", u),
        }
    }
}

/// Strings written as a [`Val`] array of `Str`.
struct StrsOut<'a, T>(&'a [T]);

impl<T: AsRef<str>> Serialize for StrsOut<'_, T> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.0.iter().map(|v| StrOut(v.as_ref())))
    }
}

/// A string written as [`Val`]'s `Str`.
struct StrOut<'a>(&'a str);

impl Serialize for StrOut<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_newtype_variant("Val", 5, "Str", self.0)
    }
}

/// A JSON value written exactly as the derived [`Val`] would be.
struct ValOut<'a>(&'a serde_json::Value);

impl Serialize for ValOut<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde_json::Value;
        match self.0 {
            Value::Null => s.serialize_unit_variant("Val", 0, "Null"),
            Value::Bool(b) => s.serialize_newtype_variant("Val", 1, "Bool", b),
            Value::Number(n) => match (n.as_u64(), n.as_i64()) {
                (Some(u), _) => s.serialize_newtype_variant("Val", 2, "U64", &u),
                (None, Some(i)) => s.serialize_newtype_variant("Val", 3, "I64", &i),
                _ => s.serialize_newtype_variant("Val", 4, "F64", &n.as_f64().unwrap_or_default()),
            },
            Value::String(v) => s.serialize_newtype_variant("Val", 5, "Str", v.as_str()),
            Value::Array(a) => s.serialize_newtype_variant("Val", 6, "Arr", &ArrOut(a)),
            Value::Object(o) => s.serialize_newtype_variant("Val", 7, "Obj", &ObjOut(o)),
        }
    }
}

struct ArrOut<'a>(&'a [serde_json::Value]);

impl Serialize for ArrOut<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.0.iter().map(ValOut))
    }
}

struct ObjOut<'a>(&'a serde_json::Map<String, serde_json::Value>);

impl Serialize for ObjOut<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.0.iter().map(|(k, v)| (k.as_str(), ValOut(v))))
    }
}

struct HistoryOut<'a>(&'a [HistoryEntry]);

impl Serialize for HistoryOut<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.0.iter().map(|h| (time(h.at), h.event.wire())))
    }
}

fn short(s: &str) -> &[u8] {
    &s.as_bytes()[..s.len().min(255)]
}

/// Appends the record of `f` (fingerprint `fp`) to `out`.
pub(super) fn encode(
    f: &FindingView<'_>,
    fp: &[u8; FP_LEN],
    out: &mut Vec<u8>,
) -> Result<(), RecordError> {
    out.extend_from_slice(fp);
    out.push(status_code(f.status));
    out.extend_from_slice(&f.last_seen.timestamp_micros().to_be_bytes());
    for s in [short(f.source), short(f.feed)] {
        out.push(s.len() as u8);
        out.extend_from_slice(s);
    }
    match f.ip {
        Some(ip) => {
            let (b, n) = ip_bytes(ip);
            out.push(n as u8);
            out.extend_from_slice(&b[..n]);
        }
        None => out.push(0),
    }
    let body = BodyOut {
        taxonomy: &f.classification.taxonomy,
        kind: &f.classification.kind,
        identifier: &f.classification.identifier,
        network: f.network,
        port: f.port,
        protocol: f.protocol,
        asn: f.asn,
        domain: f.domain,
        url: f.url,
        email: f.email,
        severity: f.severity,
        time_source: f.time_source.map(time),
        first_seen: time(f.first_seen),
        last_seen: time(f.last_seen),
        times_seen: f.times_seen,
        in_scope: f.in_scope,
        extra: ExtraOut(f.extra),
        raw: f.raw,
        identity: f.identity,
        history: HistoryOut(f.history),
    };
    postcard::serialize_with_flavor(&body, Append(out)).map_err(RecordError::Encode)
}

/// Appends the record of an owned finding: [`encode`], then its earlier observations when it
/// has any (a trailing part that readers of records without it never see: a record of a
/// finding without earlier observations is byte for byte what [`encode`] of its view writes).
pub(super) fn encode_finding(
    f: &Finding,
    fp: &[u8; FP_LEN],
    out: &mut Vec<u8>,
) -> Result<(), RecordError> {
    encode(&f.view(), fp, out)?;
    if f.observations.is_empty() && f.observations_dropped == 0 {
        return Ok(());
    }
    let obs = ObservationsOut {
        list: ObservationList(&f.observations),
        dropped: f.observations_dropped,
    };
    postcard::serialize_with_flavor(&obs, Append(out)).map_err(RecordError::Encode)
}

/// The trailing part of a record with earlier observations, as written.
#[derive(Serialize)]
struct ObservationsOut<'a> {
    list: ObservationList<'a>,
    dropped: u64,
}

struct ObservationList<'a>(&'a [Observation]);

impl Serialize for ObservationList<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(
            self.0
                .iter()
                .map(|o| (o.time_source.map(time), ObjOutMap(&o.differs))),
        )
    }
}

/// A map of JSON values written as `extra` is.
struct ObjOutMap<'a>(&'a std::collections::BTreeMap<String, serde_json::Value>);

impl Serialize for ObjOutMap<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.0.iter().map(|(k, v)| (k.as_str(), ValOut(v))))
    }
}

/// `extra`-like (name, value) pairs, as read back.
type Pairs<'a> = Vec<(Cow<'a, str>, Val<'a>)>;

/// The trailing part of a record, as read back.
#[derive(Deserialize)]
struct ObservationsIn<'a> {
    list: Vec<(Option<Time>, Pairs<'a>)>,
    dropped: u64,
}

/// A postcard flavor appending to a borrowed buffer.
struct Append<'a>(&'a mut Vec<u8>);

impl postcard::ser_flavors::Flavor for Append<'_> {
    type Output = ();

    fn try_push(&mut self, b: u8) -> postcard::Result<()> {
        self.0.push(b);
        Ok(())
    }

    fn try_extend(&mut self, data: &[u8]) -> postcard::Result<()> {
        // Most pieces are varints and short strings: a byte loop beats a call to `memcpy`.
        if data.len() <= 16 {
            self.0.extend(data.iter().copied());
        } else {
            self.0.extend_from_slice(data);
        }
        Ok(())
    }

    fn finalize(self) -> postcard::Result<()> {
        Ok(())
    }
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Decodes a whole record.
pub(super) fn decode(rec: &[u8]) -> Result<Finding, RecordError> {
    let (h, body) = header(rec).ok_or(RecordError::Header)?;
    let (b, rest): (Body<'_>, &[u8]) =
        postcard::take_from_bytes(body).map_err(RecordError::Body)?;
    let bad_time = || RecordError::Field("time");
    let (observations, observations_dropped) = if rest.is_empty() {
        (Vec::new(), 0)
    } else {
        let o: ObservationsIn<'_> = postcard::from_bytes(rest).map_err(RecordError::Body)?;
        let list = o
            .list
            .into_iter()
            .map(|(t, differs)| {
                Ok(Observation {
                    time_source: match t {
                        Some(t) => Some(from_time(t).ok_or_else(bad_time)?),
                        None => None,
                    },
                    differs: differs
                        .into_iter()
                        .map(|(k, v)| (k.into_owned(), v.into_json()))
                        .collect(),
                })
            })
            .collect::<Result<_, RecordError>>()?;
        (list, o.dropped)
    };
    Ok(Finding {
        fingerprint: hex::encode(h.fp),
        source: text(h.source),
        feed: text(h.feed),
        classification: Classification {
            taxonomy: b.taxonomy.into_owned(),
            kind: b.kind.into_owned(),
            identifier: b.identifier.into_owned(),
        },
        ip: ip_from(h.ip).ok_or(RecordError::Field("address"))?,
        network: b.network,
        port: b.port,
        protocol: b.protocol.map(Cow::into_owned),
        asn: b.asn,
        domain: b.domain.map(Cow::into_owned),
        url: b.url.map(Cow::into_owned),
        email: b.email.map(Cow::into_owned),
        severity: b.severity,
        time_source: match b.time_source {
            Some(t) => Some(from_time(t).ok_or_else(bad_time)?),
            None => None,
        },
        first_seen: from_time(b.first_seen).ok_or_else(bad_time)?,
        last_seen: from_time(b.last_seen).ok_or_else(bad_time)?,
        times_seen: b.times_seen,
        status: status_of(h.status).ok_or(RecordError::Field("status"))?,
        in_scope: b.in_scope,
        extra: b
            .extra
            .into_iter()
            .map(|(k, v)| (k.into_owned(), v.into_json()))
            .collect(),
        raw: b.raw.map(Cow::into_owned),
        identity: b.identity.into_iter().map(Cow::into_owned).collect(),
        history: b
            .history
            .into_iter()
            .map(|(t, e)| {
                Ok(HistoryEntry {
                    at: from_time(t).ok_or_else(bad_time)?,
                    event: Event::from_wire(&e),
                })
            })
            .collect::<Result<_, RecordError>>()?,
        observations,
        observations_dropped,
    })
}

/// Builds a bucket value record by record.
#[derive(Debug, Default)]
pub(super) struct BucketWriter {
    plain: Vec<u8>,
    count: u32,
    /// Where each record starts and its address, for records pushed with one
    /// ([`Self::push_raw_at`], [`Self::push`]): [`Self::finish_split`] uses them when they cover
    /// every record, instead of reading each record's header.
    addrs: Vec<Addr>,
    /// Whether `addrs` left address order.
    out_of_order: bool,
}

/// A record of a [`BucketWriter`]: the offset of its length prefix and its address (the
/// header's `ip`: 0, 4 or 16 bytes).
#[derive(Debug, Clone, Copy)]
struct Addr {
    at: u32,
    len: u8,
    ip: [u8; 16],
}

impl Addr {
    /// `None` for an address longer than 16 bytes (a damaged header).
    fn new(at: usize, ip: &[u8]) -> Option<Addr> {
        let mut a = Addr {
            at: at as u32,
            len: u8::try_from(ip.len()).ok()?,
            ip: [0; 16],
        };
        a.ip.get_mut(..ip.len())?.copy_from_slice(ip);
        Some(a)
    }

    fn ip(&self) -> &[u8] {
        &self.ip[..self.len as usize]
    }
}

impl BucketWriter {
    /// A writer with room for about `bytes` of records.
    pub(super) fn with_capacity(bytes: usize) -> Self {
        BucketWriter {
            plain: Vec::with_capacity(bytes),
            // A scan finding's record is about 250 bytes.
            addrs: Vec::with_capacity(bytes / 200),
            ..Default::default()
        }
    }

    /// Empties the writer, keeping its buffers.
    pub(super) fn clear(&mut self) {
        self.plain.clear();
        self.count = 0;
        self.addrs.clear();
        self.out_of_order = false;
    }

    /// Copies a record unchanged.
    pub(super) fn push_raw(&mut self, rec: &[u8]) {
        self.plain
            .extend_from_slice(&(rec.len() as u32).to_le_bytes());
        self.plain.extend_from_slice(rec);
        self.count += 1;
    }

    /// Copies a record unchanged, noting its address `ip` (the one in its header), so that
    /// [`Self::finish_split`] need not read the header again.
    pub(super) fn push_raw_at(&mut self, rec: &[u8], ip: &[u8]) {
        self.note_addr(ip);
        self.push_raw(rec);
    }

    /// Notes the address of the record about to be appended.
    fn note_addr(&mut self, ip: &[u8]) {
        let Some(a) = Addr::new(self.plain.len(), ip) else {
            return;
        };
        if self.addrs.last().is_some_and(|last| last.ip() > ip) {
            self.out_of_order = true;
        }
        self.addrs.push(a);
    }

    /// Encodes and appends a finding.
    pub(super) fn push(&mut self, f: &Finding, fp: &[u8; FP_LEN]) -> Result<(), RecordError> {
        match f.ip {
            Some(ip) => {
                let (b, n) = ip_bytes(ip);
                self.note_addr(&b[..n]);
            }
            None => self.note_addr(&[]),
        }
        let at = self.plain.len();
        self.plain.extend_from_slice(&[0; 4]);
        if let Err(e) = encode_finding(f, fp, &mut self.plain) {
            self.plain.truncate(at);
            self.addrs.pop();
            return Err(e);
        }
        let n = (self.plain.len() - at - 4) as u32;
        self.plain[at..at + 4].copy_from_slice(&n.to_le_bytes());
        self.count += 1;
        Ok(())
    }

    /// The finished bucket value (compressed), written into `out` (cleared first).
    pub(super) fn finish_into(&self, out: &mut Vec<u8>) {
        pack_records(self.count, &self.plain, out);
    }

    /// Bytes of records held (uncompressed).
    #[cfg(test)]
    pub(super) fn plain_len(&self) -> usize {
        self.plain.len()
    }

    /// Every record's address, from what was noted while pushing when that covers every
    /// record, else from the headers; and whether they are in address order.
    fn addresses(&self) -> Result<(Cow<'_, [Addr]>, bool), RecordError> {
        if self.addrs.len() == self.count as usize {
            return Ok((Cow::Borrowed(&self.addrs), !self.out_of_order));
        }
        let mut v = Vec::with_capacity(self.count as usize);
        let mut at = 0;
        for r in records(&self.plain) {
            let r = r?;
            let (h, _) = header(r).ok_or(RecordError::Header)?;
            v.push(Addr::new(at, h.ip).ok_or(RecordError::Field("address"))?);
            at += 4 + r.len();
        }
        let sorted = v.windows(2).all(|w| w[0].ip() <= w[1].ip());
        Ok((Cow::Owned(v), sorted))
    }

    /// The record whose length prefix starts at `at`.
    fn record_at(&self, at: u32) -> Result<&[u8], RecordError> {
        let at = at as usize;
        self.plain
            .get(at..at + 4)
            .map(|l| u32::from_le_bytes(l.try_into().expect("4 bytes")) as usize)
            .and_then(|n| self.plain.get(at + 4..at + 4 + n))
            .ok_or(RecordError::Truncated)
    }

    /// Finishes a range bucket: the records in address order (a stable sort: records of one
    /// address keep their order), cut into pieces of at most about `max` uncompressed bytes,
    /// never between two records of one address. Calls `emit(first address, value)` for each
    /// piece, in address order. `out` is scratch space. Records already in address order (a
    /// report read in address order, a bucket appended to at its end) are compressed from
    /// where they lie, without a copy.
    pub(super) fn finish_split(
        &self,
        max: usize,
        out: &mut Vec<u8>,
        emit: &mut dyn FnMut(&[u8], &[u8]),
    ) -> Result<(), RecordError> {
        let (addrs, sorted) = self.addresses()?;
        let first_ip = |i: usize| addrs.get(i).map_or(&[][..], Addr::ip);
        let pieces = self.plain.len().div_ceil(max.max(1)).max(1);
        if sorted && pieces == 1 {
            self.finish_into(out);
            emit(first_ip(0), out);
            return Ok(());
        }
        let target = self.plain.len() / pieces;
        let mut left = pieces;
        if sorted {
            // Each piece is a run of the buffer.
            let (mut start, mut first) = (0usize, 0usize);
            for i in 1..addrs.len() {
                let at = addrs[i].at as usize;
                if left > 1 && at - start >= target && addrs[i - 1].ip() != addrs[i].ip() {
                    pack_records((i - first) as u32, &self.plain[start..at], out);
                    emit(first_ip(first), out);
                    (start, first) = (at, i);
                    left -= 1;
                }
            }
            pack_records((addrs.len() - first) as u32, &self.plain[start..], out);
            emit(first_ip(first), out);
            return Ok(());
        }
        let mut order: Vec<&Addr> = addrs.iter().collect();
        order.sort_by(|a, b| a.ip().cmp(b.ip()));
        let mut piece = BucketWriter::with_capacity(target + target / 4);
        let mut first = order.first().map_or(&[][..], |a| a.ip());
        for (i, a) in order.iter().enumerate() {
            if left > 1 && piece.plain.len() >= target && i > 0 && order[i - 1].ip() != a.ip() {
                piece.finish_into(out);
                emit(first, out);
                piece.clear();
                first = a.ip();
                left -= 1;
            }
            piece.push_raw(self.record_at(a.at)?);
        }
        piece.finish_into(out);
        emit(first, out);
        Ok(())
    }

    /// The finished bucket value (compressed).
    pub(super) fn finish(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.finish_into(&mut out);
        out
    }
}

/// `out` = the bucket value of `count` records laid out in `plain` (cleared first).
fn pack_records(count: u32, plain: &[u8], out: &mut Vec<u8>) {
    let mut head = [0u8; BUCKET_HEAD];
    head[0] = BUCKET_V2;
    head[1..5].copy_from_slice(&count.to_le_bytes());
    head[5..9].copy_from_slice(&(plain.len() as u32).to_le_bytes());
    compress_after(&head, plain, out);
}

/// The number of records in a bucket value, read from its head without decompressing.
pub(super) fn bucket_count(v: &[u8]) -> Option<usize> {
    if v.len() < BUCKET_HEAD || v[0] != BUCKET_V2 {
        return None;
    }
    Some(u32::from_le_bytes(v[1..5].try_into().ok()?) as usize)
}

/// Decompresses a bucket value into its run of records (read them with [`records`]).
pub(super) fn open_bucket(v: &[u8]) -> Result<Vec<u8>, RecordError> {
    if v.len() < BUCKET_HEAD || v[0] != BUCKET_V2 {
        return Err(RecordError::BucketHeader);
    }
    let len = u32::from_le_bytes(v[5..9].try_into().expect("4 bytes")) as usize;
    decompress(&v[BUCKET_HEAD..], len, "bucket")
}

/// `out` = `head`, then `plain` as one LZ4 block.
fn compress_after(head: &[u8], plain: &[u8], out: &mut Vec<u8>) {
    let max = lz4_flex::block::get_maximum_output_size(plain.len());
    out.clear();
    out.reserve(head.len() + max);
    out.extend_from_slice(head);
    // Safe zero-initialisation of the spare room is cheap next to compressing, and keeps
    // lz4_flex on its slice API.
    out.resize(head.len() + max, 0);
    let n = lz4_flex::block::compress_into(plain, &mut out[head.len()..])
        .expect("output sized by get_maximum_output_size");
    out.truncate(head.len() + n);
}

/// Decompresses an LZ4 block that must hold `len` bytes (at most [`MAX_PLAIN`]: a corrupt
/// length must not allocate GiBs).
fn decompress(block: &[u8], len: usize, what: &'static str) -> Result<Vec<u8>, RecordError> {
    if len > MAX_PLAIN {
        return Err(RecordError::TooLarge { what, len });
    }
    let mut out = vec![0u8; len];
    let n = lz4_flex::block::decompress_into(block, &mut out)
        .map_err(|cause| RecordError::Block { what, cause })?;
    if n != len {
        return Err(RecordError::BlockLength { what, got: n, len });
    }
    Ok(out)
}

/// Starts a compressed posting value (then the plain length, u32 LE, and one LZ4 block). A plain
/// value, as earlier versions wrote it, starts with an entry: a domain length, then the domain.
/// A length of 255 is followed by a domain byte, and domains in keys hold no NUL byte, so a
/// plain value never starts with these two bytes.
const POSTINGS_LZ4: [u8; 2] = [0xFF, 0x00];

/// The plain entries of a posting value, compressed or plain.
pub(super) fn posting_entries(v: &[u8]) -> Result<Cow<'_, [u8]>, RecordError> {
    let Some(rest) = v.strip_prefix(&POSTINGS_LZ4[..]) else {
        return Ok(Cow::Borrowed(v));
    };
    let len = rest
        .get(..4)
        .map(|b| u32::from_le_bytes(b.try_into().expect("4 bytes")) as usize)
        .ok_or(RecordError::PostingTruncated)?;
    decompress(&rest[4..], len, "posting list").map(Cow::Owned)
}

/// The compressed posting value holding `entries`.
pub(super) fn pack_postings(entries: &[u8]) -> Vec<u8> {
    let mut head = [0u8; 6];
    head[..2].copy_from_slice(&POSTINGS_LZ4);
    head[2..].copy_from_slice(&(entries.len() as u32).to_le_bytes());
    let mut out = Vec::new();
    compress_after(&head, entries, &mut out);
    out
}

/// The records of a decompressed bucket.
pub(super) fn records(plain: &[u8]) -> Records<'_> {
    Records { rest: plain }
}

/// Iterator over the records of a bucket; yields an error (once) on a truncated record.
pub(super) struct Records<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for Records<'a> {
    type Item = Result<&'a [u8], RecordError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        let rec = self
            .rest
            .get(..4)
            .map(|l| u32::from_le_bytes(l.try_into().expect("4 bytes")) as usize)
            .and_then(|n| self.rest.get(4..4 + n).map(|r| (n, r)));
        match rec {
            Some((n, r)) => {
                self.rest = &self.rest[4 + n..];
                Some(Ok(r))
            }
            None => {
                self.rest = &[];
                Some(Err(RecordError::Truncated))
            }
        }
    }
}

#[cfg(test)]
mod tests;
