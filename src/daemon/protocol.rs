//! The local socket protocol between `outwatch run` and the read commands.
//!
//! Newline-delimited JSON over a Unix socket (`<data_dir>/outwatch.sock`, mode 0600). A client
//! sends one request per line, `{"v": 1, "op": "...", ...}`, and reads reply lines until the
//! final one: zero or more `{"item": ...}` (for lists, streamed), then `{"done": ...}` or
//! `{"error": {"message": ...}}`. Several requests may follow each other on one connection.
//! Requests are capped at [`MAX_REQUEST_BYTES`]; a request with another `v` is refused, so a
//! CLI and a daemon of different versions never misread each other. Only reads are served.
//!
//! Compatible additions to v1 raise [`PROTOCOL_REVISION`], which `hello` reports (absent:
//! revision 0), so a newer CLI can tell an older daemon that lacks a request kind and say so
//! instead of sending it. Revision 1 added `query_each`; revision 2 added `top` (a lookup's
//! table computed by the daemon, so that only the rows shown cross the socket); revision 3
//! added `select` (a worklist filter run by the daemon, so that only the findings it lets
//! through cross).

use std::net::IpAddr;

use chrono::{DateTime, Utc};
use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::store::{Query, QueryOptions};

use super::scheduler::JobStatus;

/// Version of this protocol; bumped on any incompatible change.
pub const PROTOCOL_VERSION: u32 = 1;
/// Compatible additions within [`PROTOCOL_VERSION`]: 1 added [`Op::QueryEach`], 2 added
/// [`Op::Top`], 3 added [`Op::Select`].
pub const PROTOCOL_REVISION: u32 = 3;
/// The most findings [`Op::Top`] returns (a larger `limit` is cut to it): what a lookup sorts
/// in memory, in the daemon or the CLI. `lookup --limit` above it streams instead.
pub const MAX_TOP: usize = 10_000;
/// File name of the socket inside the data dir.
pub const SOCKET_NAME: &str = "outwatch.sock";
/// Largest request line the daemon reads.
pub const MAX_REQUEST_BYTES: usize = 64 * 1024;
/// Largest reply line a client reads (one finding, or one scalar answer).
pub const MAX_REPLY_BYTES: usize = 16 << 20;

/// One request line.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Request {
    pub v: u32,
    #[serde(flatten)]
    pub op: Op,
}

/// What a request asks for: the read half of [`crate::store::Store`], plus `hello`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Op {
    /// Who is there: protocol version, pid, data dir, the scheduler's jobs.
    Hello,
    Get {
        fingerprint: String,
    },
    /// Streams the matching findings, newest first (collected and sorted by the daemon: for
    /// older clients; new ones send [`Op::QueryEach`]).
    Query {
        query: WireQuery,
        since: Option<DateTime<Utc>>,
        #[serde(default)]
        include_resolved: bool,
        limit: Option<usize>,
    },
    /// Streams the matching findings as the store walks them (not sorted, no limit: the client
    /// closes the connection to stop early), with the daemon holding none of them
    /// (revision 1).
    QueryEach {
        query: WireQuery,
        since: Option<DateTime<Utc>>,
        #[serde(default)]
        include_resolved: bool,
    },
    /// Streams the first `limit` (at most [`MAX_TOP`]) matching findings, most severe first
    /// then newest, collected by the daemon in a bounded heap; `done` is `{"total": n}`, how
    /// many matched (revision 2).
    Top {
        query: WireQuery,
        since: Option<DateTime<Utc>>,
        #[serde(default)]
        include_resolved: bool,
        limit: usize,
    },
    /// Streams the findings a worklist filter lets through, as the store walks them
    /// ([`crate::store::Store::select`]; revision 3).
    Select {
        filter: Box<crate::store::Filter>,
    },
    /// Streams every finding.
    ForEach,
    /// Streams findings last seen in `[from, to)`.
    SeenBetween {
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    },
    /// Streams fetch runs, newest first.
    Runs {
        source: Option<String>,
        limit: usize,
    },
    /// `done` is the value, base64, or null.
    StateGet {
        key: String,
    },
    /// Streams `[key, base64 value]` pairs.
    StateScan {
        prefix: String,
    },
    Count,
}

/// [`Query`] on the wire (same JSON shape: `{"kind": "ip", "value": "192.0.2.1"}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "value", rename_all = "lowercase")]
pub enum WireQuery {
    Ip(IpAddr),
    Net(IpNet),
    Domain(String),
    Email(String),
    Asn(u32),
}

impl From<&Query> for WireQuery {
    fn from(q: &Query) -> Self {
        match q {
            Query::Ip(a) => WireQuery::Ip(*a),
            Query::Net(n) => WireQuery::Net(*n),
            Query::Domain(d) => WireQuery::Domain(d.clone()),
            Query::Email(e) => WireQuery::Email(e.clone()),
            Query::Asn(a) => WireQuery::Asn(*a),
        }
    }
}

impl From<WireQuery> for Query {
    fn from(q: WireQuery) -> Self {
        match q {
            WireQuery::Ip(a) => Query::Ip(a),
            WireQuery::Net(n) => Query::Net(n),
            WireQuery::Domain(d) => Query::Domain(d),
            WireQuery::Email(e) => Query::Email(e),
            WireQuery::Asn(a) => Query::Asn(a),
        }
    }
}

impl Op {
    /// The request for a store query.
    pub fn query(q: &Query, o: &QueryOptions) -> Op {
        Op::Query {
            query: q.into(),
            since: o.since,
            include_resolved: o.include_resolved,
            limit: o.limit,
        }
    }

    /// The request for a streamed store query ([`crate::store::Store::query_each`]).
    pub fn query_each(q: &Query, o: &QueryOptions) -> Op {
        Op::QueryEach {
            query: q.into(),
            since: o.since,
            include_resolved: o.include_resolved,
        }
    }
}

/// One reply line.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reply {
    /// One element of a streamed list, as the JSON it was written as (passed through
    /// unparsed until its reader decodes it into its type).
    Item(Box<serde_json::value::RawValue>),
    /// The end of the answer, with its value (`null` after a streamed list).
    Done(serde_json::Value),
    /// The request failed; nothing more follows for it.
    Error { message: String },
}

/// What a running daemon says about itself in answer to `hello`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Hello {
    /// The protocol version it speaks ([`PROTOCOL_VERSION`]).
    pub version: u32,
    /// Its compatible additions ([`PROTOCOL_REVISION`]; 0 for daemons before revisions).
    pub revision: u32,
    pub pid: u32,
    pub started: Option<DateTime<Utc>>,
    pub data_dir: String,
    /// Its jobs by name: kind, schedule, next run, whether running, last outcome.
    pub jobs: std::collections::BTreeMap<String, JobStatus>,
    /// How it set each source up, from its own environment (its keys).
    pub sources: crate::health::DaemonSources,
}
