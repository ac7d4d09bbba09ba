//! The run log's entry ([`FetchRun`]) and what one ingest did ([`IngestStats`]). A `FetchRun` is
//! made in one place only, the pipeline's apply path (`pipeline/apply.rs`); the store keeps it.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Days of run log kept (health looks at the latest runs; a year covers any schedule).
pub const RUN_LOG_DAYS: i64 = 400;

/// What one ingest did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IngestStats {
    /// Findings never seen before.
    pub new: usize,
    /// Findings seen before (still open, or reopened).
    pub updated: usize,
    /// Findings that were resolved and came back.
    pub reopened: usize,
    /// Findings repeated within the same unit (folded into one, see [`super::lifecycle`]).
    pub duplicates: usize,
}

impl IngestStats {
    pub fn add(&mut self, o: IngestStats) {
        self.new += o.new;
        self.updated += o.updated;
        self.reopened += o.reopened;
        self.duplicates += o.duplicates;
    }
}

/// How a run ended. Stored as these snake_case strings in the run log; the rule for each kind
/// of run is in the pipeline's apply path (`pipeline/apply.rs`; ARCHITECTURE.md, "One apply path").
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunOutcome {
    /// Every unit (file) was read and stored.
    #[default]
    Ok,
    /// The source said nothing changed (HTTP 304; no new lines for the flows watch).
    NotModified,
    /// Some units (files) were stored, others failed (see [`FetchRun::failed_units`]), or a
    /// suspicious drop was refused: what arrived is kept, nothing was resolved.
    Partial,
    /// Nothing of the run could be used.
    Error,
}

impl RunOutcome {
    /// The stored name (`ok`, `not_modified`, `partial`, `error`).
    pub fn as_str(self) -> &'static str {
        match self {
            RunOutcome::Ok => "ok",
            RunOutcome::NotModified => "not_modified",
            RunOutcome::Partial => "partial",
            RunOutcome::Error => "error",
        }
    }

    /// Whether the run delivered what it was asked for (ok or not modified).
    pub fn is_success(self) -> bool {
        matches!(self, RunOutcome::Ok | RunOutcome::NotModified)
    }
}

/// A unit of a run (a report, a domain, a list URL, a day, a file) that failed; the others were
/// kept.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnitError {
    /// What failed, never a secret: a report's file name, a domain, a URL with keys redacted.
    pub unit: String,
    pub error: String,
}

/// The log entry of one run: a fetch of a source (`<source>`), an import (`import/<source>`),
/// a flows run (`flows`) or a restore (`restore`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FetchRun {
    pub source: String,
    pub started: DateTime<Utc>,
    pub finished: DateTime<Utc>,
    pub outcome: RunOutcome,
    /// Rows or records read from the source.
    pub fetched: usize,
    /// Rows accepted as findings (in or out of scope).
    pub accepted: usize,
    /// Rows rejected as malformed.
    pub rejected: usize,
    /// Rows kept although one of their other values was malformed.
    #[serde(default)]
    pub warnings: usize,
    pub in_scope: usize,
    pub new: usize,
    pub updated: usize,
    pub resolved: usize,
    /// Error text (never contains secrets): the whole failure, or a summary of the failed units.
    pub error: Option<String>,
    /// The units that failed while others were stored (outcome `partial`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failed_units: Vec<UnitError>,
    /// Latest `time_source` seen in the data (for feed-health "clock ahead" checks).
    #[serde(default)]
    pub max_time_source: Option<DateTime<Utc>>,
    /// What the source said the owner should know that is no failure (shown by `status`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notices: Vec<String>,
}
