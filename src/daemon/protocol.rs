//! The local socket protocol between the process that holds the store (`outwatch run`, or a
//! command working on it) and the other commands.
//!
//! Newline-delimited JSON over a Unix socket (`<data_dir>/outwatch.sock`, mode 0600). A client
//! sends one request per line, `{"v": 1, "op": "...", ...}`, and reads reply lines until the
//! final one: zero or more `{"item": ...}` (for lists, streamed), then `{"done": ...}` or
//! `{"error": {"message": ...}}`. Several requests may follow each other on one connection.
//! Requests are capped at [`MAX_REQUEST_BYTES`]; a request with another `v` is refused, so a
//! CLI and a daemon of different versions never misread each other.
//!
//! Compatible additions to v1 raise [`PROTOCOL_REVISION`], which `hello` reports (absent:
//! revision 0), so a newer CLI can tell an older daemon that lacks a request kind and say so
//! instead of sending it. Revision 1 added `query_each`; revision 2 added `top` (a lookup's
//! table computed by the daemon, so that only the rows shown cross the socket); revision 3
//! added `select` (a worklist filter run by the daemon, so that only the findings it lets
//! through cross);
//! revision 4 added the writes (below) and `hello`'s `writes` and `holder`.
//!
//! **Writes** (revision 4, served only by a daemon: `hello` says `"writes": true`). A write
//! command run beside the daemon runs its own code in its own process (it reads its input
//! files, prints its own output, returns its own exit code) on a [`super::RemoteStore`] whose
//! writes are these requests: the store methods of [`crate::store::Store`] that write, one
//! request each. A write request is its line, then zero or more [`Data`] lines from the client
//! (a unit's state changes and findings, a modify's fingerprints) up to `"end"` (or
//! `{"abort":"why"}`: the client's reader failed, nothing of a whole-or-nothing unit is
//! stored), each at most [`MAX_DATA_BYTES`]; then the replies as for a read. An `ingest` with
//! a run-log entry asks for it once the findings are in: an item `{"stats": IngestStats}`, to
//! which the client answers with a line `{"run": FetchRun}` (the entry is made by the client's
//! own code from the daemon's counts, and written with the unit). A `modify` asks likewise for
//! each finding's change.

use std::net::IpAddr;

use chrono::{DateTime, Utc};
use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::finding::Finding;
use crate::store::{FetchRun, Query, QueryOptions};

use super::scheduler::JobStatus;

/// Version of this protocol; bumped on any incompatible change.
pub const PROTOCOL_VERSION: u32 = 1;
/// Compatible additions within [`PROTOCOL_VERSION`]: 1 added [`Op::QueryEach`], 2 added
/// [`Op::Top`], 3 added [`Op::Select`], 4 the writes ([`Op::Ingest`] and the others after it)
/// and [`Hello::writes`].
pub const PROTOCOL_REVISION: u32 = 4;
/// The revision that brought the writes.
pub const WRITES_REVISION: u32 = 4;
/// The most findings [`Op::Top`] returns (a larger `limit` is cut to it): what a lookup sorts
/// in memory, in the daemon or the CLI. `lookup --limit` above it streams instead.
pub const MAX_TOP: usize = 10_000;
/// File name of the socket inside the data dir.
pub const SOCKET_NAME: &str = "outwatch.sock";
/// Largest request line the daemon reads.
pub const MAX_REQUEST_BYTES: usize = 64 * 1024;
/// Largest reply line a client reads (one finding, or one scalar answer).
pub const MAX_REPLY_BYTES: usize = 16 << 20;
/// Largest data line of a write the daemon reads (one finding, or one state value: a list's
/// kept indicator set of up to 1M entries, base64).
pub const MAX_DATA_BYTES: usize = 64 << 20;

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

    // --- writes (revision 4; refused by a process that does not say `writes` in `hello`) ---
    /// One unit ([`crate::store::Store::ingest_unit`]): [`Data::State`] lines, then
    /// [`Data::Finding`] lines, then [`Data::End`] (or [`Data::Abort`]). `reading` is the
    /// streamed unit's [`crate::store::Reading`] (absent: findings held in memory); with `run`,
    /// the daemon asks for the run-log entry (item `{"stats":..}`, answered by [`Data::Run`]).
    /// `done` is the [`crate::store::IngestStats`].
    Ingest {
        now: DateTime<Utc>,
        restore: bool,
        reading: Option<WireReading>,
        run: bool,
    },
    /// [`Data::Fingerprint`] lines up to [`Data::End`]; then the daemon runs
    /// [`crate::store::Store::modify`] on them and hands each stored finding to the client as
    /// an item `{"finding": ..}` (the change is the client's code), which answers
    /// [`Data::Changed`] with the finding to write or [`Data::Unchanged`]; each finding's change
    /// is atomic, as without the daemon. `done` is how many were written.
    Modify,
    ResolveStale {
        source: String,
        feed: Option<String>,
        cutoff: DateTime<Utc>,
        now: DateTime<Utc>,
    },
    OpenAndStale {
        source: String,
        cutoff: DateTime<Utc>,
    },
    /// One [`Data::Run`] line, then [`Data::End`].
    RecordRun,
    /// One [`Data::State`] line, then [`Data::End`].
    StatePut,
    Flush,
}

impl Op {
    /// Whether this request writes (and so is followed by [`Data`] lines up to `end` when it
    /// takes any).
    pub fn writes(&self) -> bool {
        matches!(
            self,
            Op::Ingest { .. }
                | Op::Modify
                | Op::ResolveStale { .. }
                | Op::OpenAndStale { .. }
                | Op::RecordRun
                | Op::StatePut
                | Op::Flush
        )
    }

    /// Whether [`Data`] lines follow the request line.
    pub fn takes_data(&self) -> bool {
        matches!(
            self,
            Op::Ingest { .. } | Op::Modify | Op::RecordRun | Op::StatePut
        )
    }
}

/// [`crate::store::Reading`] on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WireReading {
    WholeOrNothing,
    AsItComes,
}

/// A line a client sends after a write request (see the module's comment).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Data {
    /// A state change: the key and its new value, base64 (`null` deletes it).
    State(String, Option<String>),
    Finding(Box<Finding>),
    /// A finding to modify.
    Fingerprint(String),
    /// The answer to a `modify`'s `{"finding":..}`: write this instead.
    Changed(Box<Finding>),
    /// The answer to a `modify`'s `{"finding":..}`: leave it.
    Unchanged,
    /// A run-log entry: the answer to `{"stats":..}`, or the entry of `record_run`.
    Run(Box<FetchRun>),
    /// The client's data is complete.
    End,
    /// The client's reader failed with this message: nothing of a whole-or-nothing unit is
    /// stored, and the answer is that failure.
    Abort(String),
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
    /// The request failed; nothing more follows for it. `kind` tells a client what the store
    /// error was (revision 4: `unread`, `disk_full`, `refused`, `locked`), so it is told as
    /// the same error as without the daemon.
    Error {
        message: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        kind: Option<String>,
    },
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
    /// Whether it takes writes (revision 4: only the daemon, `outwatch run`).
    pub writes: bool,
    /// What holds the store (revision 4): `run` for the daemon, else the command that has it
    /// open for a while (`fetch`, `run --once`, `import`...), answering reads meanwhile.
    pub holder: String,
}

impl Hello {
    /// Whether this is the daemon (`outwatch run`) rather than a command holding the store for
    /// a while. Daemons before revision 4 say nothing of it: only daemons answered then.
    pub fn is_daemon(&self) -> bool {
        self.revision < WRITES_REVISION || self.holder == "run"
    }
}
