//! `outwatch flows`: the network's own connection logs (Zeek `conn.log`, nfdump CSV) checked
//! against the C2 lists ([`crate::indicators`]) and the meta-indicators of network monitoring
//! (servers talking out, top talkers, long connections, port/protocol mismatch, per team).
//!
//! - `read`: log files → [`Conn`]s, streaming, gzip or plain, format found from the content;
//! - `analyse`: [`Conn`]s → per-host aggregates → findings (source `flows`) and a summary;
//! - `config`: the `[flows]` table (in `crate::config`); `sample`: generated logs for benches
//!   and tests; `run`: one run (read, analyse, store, run log), shared by
//!   the command and the daemon; `watch`: the daemon's job (which files are new) and health.

pub mod analyse;
/// `[flows]`: the settings live with the config file's own tables.
pub use crate::config::flows as config;
pub mod read;
pub(crate) mod run;
pub mod sample;
pub mod watch;

use std::net::IpAddr;

/// The transport protocol of a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Proto {
    Tcp,
    Udp,
    Icmp,
    /// Another IP protocol number (nfdump writes numbers for protocols it has no name for).
    Other(u8),
    /// Zeek's `unknown_transport`, or a value that could not be read.
    Unknown,
}

/// One connection as one log line describes it. Borrowed from the reader's line buffer: a
/// reader hands each to its sink and reuses the buffer, so nothing is allocated per line.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Conn<'a> {
    /// Start of the connection, microseconds since the Unix epoch.
    pub ts_us: i64,
    /// Who started the connection (Zeek `id.orig_h`, nfdump `sa`).
    pub orig: IpAddr,
    pub orig_port: Option<u16>,
    /// Who answered (Zeek `id.resp_h`, nfdump `da`).
    pub resp: IpAddr,
    pub resp_port: Option<u16>,
    pub proto: Proto,
    /// Zeek's `service` as written (comma-separated, e.g. `gssapi,smb,krb`); `None` when unset,
    /// empty or absent (NetFlow has none).
    pub service: Option<&'a str>,
    /// `None` when unknown.
    pub duration_us: Option<u64>,
    pub orig_pkts: Option<u64>,
    pub resp_pkts: Option<u64>,
    /// Payload bytes (Zeek `orig_bytes`; nfdump `ibyt`).
    pub orig_bytes: Option<u64>,
    /// Zeek `resp_bytes`; nfdump `obyt`.
    pub resp_bytes: Option<u64>,
    /// Zeek's `conn_state` (`S0`, `SF`, `REJ`, ...), when the log has it.
    pub conn_state: Option<&'a str>,
}
