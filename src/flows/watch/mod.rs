//! The daemon's flows job: expand `[flows] paths`, read what is new in the files since the
//! last run, analyse it together and store the findings with the files' marks; and the
//! health of the job (`status`: `silent` when the paths gave no new lines for twice the
//! schedule, `failing` when they cannot be read).
//!
//! **Every line is read once**, across rotation ([`follow`]): a growing plain log
//! (`current/conn.log`) is read on from where the last run stopped, behind its own header, up
//! to its last whole line (a line being written waits for the next run); a log renamed,
//! copied or compressed is recognised by its inode or by its first bytes, under its new name
//! or next to its old one, and read on from its mark; a log re-created or `copytruncate`d at
//! its path is read whole (behind the header it lost). So a day's flow finding **adds up**
//! what every run read of it (connections, packets, bytes; first and last time; the longest
//! connection; the peers merged: [`run::add_stored_counts`]). The marks are written in the
//! same atomic batch as the findings, so a failed run reads the same lines again next time.
//! Marks of files that no longer match are dropped once their log was followed.
//!
//! **Marks are per node** (`flows/node/<host>/file/<path>`): sensors on several hosts sharing
//! one store (PostgreSQL) may read logs at the same path. Marks of earlier versions
//! (`flows/file/<path>`, [`STATE_PREFIX`]) are taken over by the first node that runs.

mod expand;
pub(crate) mod follow;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};

pub use expand::{ExpandError, expand, expand_all, wildcard_match};
pub use follow::FileMark;

use super::run;
use crate::config::Config;
use crate::finding::SourceId;
use crate::pipeline::{Apply, Ending, RunKind};
use crate::scope::ScopeMatcher;
use crate::sources::FetchOutput;
use crate::store::{Store, StoreError};

/// State key prefix of the file marks as [`follow`] names them, and as earlier versions kept
/// them in the store (one node).
pub const STATE_PREFIX: &str = "flows/file/";

/// The state key prefix of the file marks of the node named `node` in the store.
pub fn node_prefix(node: &str) -> String {
    format!("flows/node/{node}/file/")
}

/// This host's name (`gethostname`), naming its marks; `localhost` when it has none.
pub fn host_name() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is writable for its length; gethostname NUL-terminates or truncates.
    let r = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    match std::str::from_utf8(&buf[..end]) {
        Ok(h) if r == 0 && !h.is_empty() => h.replace('/', "_"),
        _ => "localhost".into(),
    }
}

/// Marks of earlier versions (key and value), taken over by this run.
type Legacy = Vec<(String, Vec<u8>)>;

/// The marks of `node` under [`STATE_PREFIX`] names (what [`follow`] works with), and the
/// marks of earlier versions, taken over (moved under the node's names) by this run.
fn load_marks(
    store: &dyn Store,
    node: &str,
) -> Result<(BTreeMap<String, FileMark>, Legacy), StoreError> {
    let own = node_prefix(node);
    let mut marks = BTreeMap::new();
    store.state_each(&own, &mut |k, v| {
        if let Ok(m) = serde_json::from_slice(v) {
            marks.insert(format!("{STATE_PREFIX}{}", &k[own.len()..]), m);
        }
        Ok(())
    })?;
    let mut legacy = Vec::new();
    store.state_each(STATE_PREFIX, &mut |k, v| {
        if !marks.contains_key(k)
            && let Ok(m) = serde_json::from_slice(v)
        {
            marks.insert(k.to_string(), m);
        }
        legacy.push((k.to_string(), v.to_vec()));
        Ok(())
    })?;
    Ok((marks, legacy))
}

/// The state changes of a run under `node`'s names; the marks of earlier versions moved
/// there (unless the run changed them itself).
fn node_state(
    state: Vec<(String, Option<Vec<u8>>)>,
    node: &str,
    legacy: Legacy,
) -> Vec<(String, Option<Vec<u8>>)> {
    let own = node_prefix(node);
    let mine = |k: &str| match k.strip_prefix(STATE_PREFIX) {
        Some(path) => format!("{own}{path}"),
        None => k.to_string(),
    };
    let changed: std::collections::HashSet<String> = state.iter().map(|(k, _)| k.clone()).collect();
    let mut moved = Vec::new();
    for (k, v) in legacy {
        if !changed.contains(&k) {
            moved.push((mine(&k), Some(v)));
        }
        moved.push((k, None));
    }
    let mut out: Vec<_> = state.into_iter().map(|(k, v)| (mine(&k), v)).collect();
    out.extend(moved);
    out
}
/// Most files one pattern may expand to (a mistaken `/*` must not read a whole disk).
pub const MAX_FILES: usize = 10_000;

/// Why a run of the watch job failed.
#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Some files could not be read (the run log has it too); the others were.
    #[error("{line}; {error}")]
    Unread { line: String, error: String },
}

/// One run of the watch job on this host ([`host_name`]): a line for the log, or what failed
/// (the run log has it too).
pub fn run_once(
    cfg: &Config,
    store: &Arc<dyn Store>,
    scope: &ScopeMatcher,
    now: impl Fn() -> DateTime<Utc>,
) -> Result<String, WatchError> {
    run_once_as(&host_name(), cfg, store, scope, now)
}

/// [`run_once`] as the node named `node` (its file marks are its own).
pub fn run_once_as(
    node: &str,
    cfg: &Config,
    store: &Arc<dyn Store>,
    scope: &ScopeMatcher,
    now: impl Fn() -> DateTime<Utc>,
) -> Result<String, WatchError> {
    let started = now();
    let (files, unreadable) = expand_all(cfg);
    let (marks, legacy) = load_marks(store.as_ref(), node)?;
    let mut plan = follow::plan(&files, &marks);
    plan.unreadable.extend(unreadable);
    if plan.reads.is_empty() && plan.unreadable.is_empty() {
        let unit = FetchOutput {
            state: node_state(plan.state, node, legacy),
            ..Default::default()
        };
        let ending = Ending {
            not_modified: true,
            notices: plan.notices,
            ..Default::default()
        };
        Apply::new(
            store.clone(),
            RunKind::Source(SourceId::Flows.into()),
            started,
        )
        .only_unit(unit, &ending, &now)?;
        return Ok(format!("no new lines in {} file(s)", files.len()));
    }
    let index = run::indicators(Some(cfg), store.as_ref())?;
    let pieces: Vec<run::Piece> = plan.reads.iter().map(|r| r.piece.clone()).collect();
    let mut analysed = run::analyse_pieces(&cfg.flows, scope, &index, &pieces, &mut |p| {
        tracing::info!(file = %crate::text::Clean(&p.display().to_string()), "reading flows");
    });
    analysed.notices.extend(plan.notices);
    run::add_stored_counts(store.as_ref(), &mut analysed.report.findings)?;
    let mut state = plan.state;
    for (read, out) in plan.reads.iter().zip(&analysed.files) {
        if let (Some((key, mark)), Some(stats), None) = (&read.mark, &out.stats, &out.error) {
            let mut mark = mark.clone();
            if mark.gzip
                && let Some(t) = &read.piece.tail
            {
                // How far the decompressed stream was read.
                mark.offset = t.from + stats.bytes.saturating_sub(t.header.len() as u64);
            }
            state.push((
                key.clone(),
                Some(serde_json::to_vec(&mark).expect("a mark")),
            ));
        }
    }
    analysed.files.extend(plan.unreadable);
    // One unit of the apply path: findings, marks and the run-log entry together, flushed.
    let (stats, fr) = run::store_run(
        store,
        scope,
        &mut analysed,
        node_state(state, node, legacy),
        started,
        now(),
        cfg.flows.resolve_after.chrono(),
    )?;
    let line = format!(
        "{} file(s), {} connection(s): {} finding(s), {} new, {} updated",
        pieces.len(),
        analysed.connections(),
        fr.accepted,
        stats.new,
        stats.updated
    );
    match fr.error {
        Some(error) => Err(WatchError::Unread { line, error }),
        None => Ok(line),
    }
}
