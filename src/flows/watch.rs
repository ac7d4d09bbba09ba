//! The daemon's flows job: expand `[flows] paths`, read the files that are new or changed
//! since the last run, analyse them together and store the findings with the files' marks;
//! and the health of the job (`status`: `silent` when the paths gave no new lines for twice
//! the schedule, `failing` when they cannot be read).
//!
//! A file is remembered in state `flows/file/<path>` as its size and modification time. A
//! file whose size or time changed (a growing `current/conn.log`, a rotated file replaced) is
//! read again **whole**. Counts are not doubled by this: a flow finding's identity is its
//! host, kind, peer or service and day, and its counts are those of the run that last saw it,
//! which for a growing file is the whole file. (Findings of one day spread over several files
//! keep the counts of the file read last.) The marks are written in the same atomic batch as
//! the findings, so a failed run reads the files again next time. Marks of files that no
//! longer match are dropped.

use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::analyse::SOURCE;
use super::run::{self, FileOutcome};
use crate::config::Config;
use crate::scope::ScopeMatcher;
use crate::store::{FetchRun, RunOutcome, Store, StoreError};

/// State key prefix of the file marks.
pub const STATE_PREFIX: &str = "flows/file/";
/// Most files one pattern may expand to (a mistaken `/*` must not read a whole disk).
pub const MAX_FILES: usize = 10_000;

/// What is remembered of a file that was read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileMark {
    pub size: u64,
    /// Modification time, nanoseconds since the epoch.
    pub mtime_ns: i128,
}

impl FileMark {
    fn of(meta: &std::fs::Metadata) -> FileMark {
        let mtime_ns = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_nanos() as i128);
        FileMark {
            size: meta.len(),
            mtime_ns,
        }
    }
}

fn has_wildcard(s: &str) -> bool {
    s.contains(['*', '?'])
}

/// Whether `name` matches `pat` (`*` any run, `?` one character).
pub fn wildcard_match(pat: &str, name: &str) -> bool {
    let p: Vec<char> = pat.chars().collect();
    let n: Vec<char> = name.chars().collect();
    let (mut pi, mut ni) = (0, 0);
    let (mut star, mut mark) = (None, 0);
    while ni < n.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == n[ni]) {
            pi += 1;
            ni += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ni;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ni = mark;
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == '*' {
        pi += 1;
    }
    pi == p.len()
}

/// The files of one pattern (wildcards in any component; hidden names only when the pattern
/// names them), sorted. A pattern without wildcards names its file, which must exist.
pub fn expand(pattern: &Path) -> Result<Vec<PathBuf>, String> {
    if !has_wildcard(&pattern.to_string_lossy()) {
        return match std::fs::metadata(pattern) {
            Ok(m) if m.is_file() => Ok(vec![pattern.to_path_buf()]),
            Ok(_) => Err("not a file".into()),
            Err(e) => Err(e.to_string()),
        };
    }
    let mut current = vec![PathBuf::new()];
    let comps: Vec<_> = pattern.components().collect();
    for (i, c) in comps.iter().enumerate() {
        let last = i + 1 == comps.len();
        let s = c.as_os_str().to_string_lossy();
        let mut next = Vec::new();
        for base in &current {
            if !has_wildcard(&s) {
                next.push(base.join(c.as_os_str()));
                continue;
            }
            let dir = if base.as_os_str().is_empty() {
                Path::new(".")
            } else {
                base.as_path()
            };
            let Ok(rd) = std::fs::read_dir(dir) else {
                continue;
            };
            for e in rd.flatten() {
                let name = e.file_name();
                let name = name.to_string_lossy();
                if name.starts_with('.') && !s.starts_with('.') {
                    continue;
                }
                if wildcard_match(&s, &name) {
                    next.push(base.join(&*name));
                }
            }
        }
        if !last {
            next.retain(|p| p.is_dir());
        }
        next.sort();
        next.truncate(MAX_FILES);
        current = next;
    }
    current.retain(|p| p.is_file());
    Ok(current)
}

/// The configured patterns, resolved against the config file's folder, expanded.
/// Returns the files and, per pattern that failed, why.
pub fn expand_all(cfg: &Config) -> (Vec<PathBuf>, Vec<FileOutcome>) {
    let mut files = Vec::new();
    let mut failed = Vec::new();
    for p in &cfg.flows.paths {
        let path = cfg.resolve_path(Path::new(p));
        match expand(&path) {
            Ok(v) => files.extend(v),
            Err(e) => failed.push(FileOutcome {
                path: path.display().to_string(),
                stats: None,
                error: Some(e),
            }),
        }
    }
    files.sort();
    files.dedup();
    (files, failed)
}

/// One run of the watch job. `Ok` is a line for the log; `Err` says what failed (the run log
/// has it too).
pub fn run_once(
    cfg: &Config,
    store: &dyn Store,
    scope: &ScopeMatcher,
    now: impl Fn() -> DateTime<Utc>,
) -> Result<Result<String, String>, StoreError> {
    let started = now();
    let (files, unreadable) = expand_all(cfg);
    let marks: std::collections::HashMap<String, Vec<u8>> =
        store.state_scan(STATE_PREFIX)?.into_iter().collect();
    let mut to_read = Vec::new();
    let mut state = Vec::new();
    let mut unreadable = unreadable;
    for f in &files {
        let key = format!("{STATE_PREFIX}{}", f.display());
        match std::fs::metadata(f) {
            Ok(meta) => {
                let mark = FileMark::of(&meta);
                let known: Option<FileMark> =
                    marks.get(&key).and_then(|v| serde_json::from_slice(v).ok());
                if known != Some(mark) {
                    to_read.push((f.clone(), key, mark));
                }
            }
            Err(e) => unreadable.push(FileOutcome {
                path: f.display().to_string(),
                stats: None,
                error: Some(e.to_string()),
            }),
        }
    }
    let current: std::collections::HashSet<String> = files
        .iter()
        .map(|f| format!("{STATE_PREFIX}{}", f.display()))
        .collect();
    for k in marks.keys().filter(|k| !current.contains(*k)) {
        state.push((k.clone(), None));
    }
    if to_read.is_empty() && unreadable.is_empty() {
        let mut r = FetchRun::begun(SOURCE, started);
        r.outcome = RunOutcome::NotModified;
        r.finished = now();
        if !state.is_empty() {
            store.ingest(
                Vec::new(),
                state,
                &crate::store::IngestOptions { now: r.finished },
            )?;
        }
        store.record_run(&r)?;
        return Ok(Ok(format!("no new lines in {} file(s)", files.len())));
    }
    let index = run::indicators(Some(cfg), store)?;
    let paths: Vec<PathBuf> = to_read.iter().map(|(p, _, _)| p.clone()).collect();
    let mut analysed = run::analyse_files(&cfg.flows, scope, &index, &paths, &mut |p| {
        tracing::info!(file = %crate::text::Clean(&p.display().to_string()), "reading flows");
    });
    for ((_, key, mark), out) in to_read.iter().zip(&analysed.files) {
        if out.error.is_none() {
            let v = serde_json::to_vec(mark).expect("a mark serialises");
            state.push((key.clone(), Some(v)));
        }
    }
    analysed.files.extend(unreadable);
    let (stats, fr) = run::store_run(store, scope, &mut analysed, state, started, now())?;
    store.flush()?;
    let line = format!(
        "{} file(s), {} connection(s): {} finding(s), {} new, {} updated",
        paths.len(),
        analysed.connections(),
        fr.accepted,
        stats.new,
        stats.updated
    );
    Ok(match fr.error {
        Some(e) => Err(format!("{line}; {e}")),
        None => Ok(line),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards() {
        assert!(wildcard_match(
            "conn.*.log.gz",
            "conn.10:00:00-11:00:00.log.gz"
        ));
        assert!(!wildcard_match(
            "conn.*.log.gz",
            "dns.10:00:00-11:00:00.log.gz"
        ));
        assert!(wildcard_match("conn.?og", "conn.log"));
        assert!(wildcard_match("*", "x"));
        assert!(!wildcard_match("a*b", "acbd"));
    }

    #[test]
    fn expands_folders_and_names() {
        let d = tempfile::tempdir().unwrap();
        for day in ["2026-11-29", "2026-11-30"] {
            std::fs::create_dir(d.path().join(day)).unwrap();
            std::fs::write(d.path().join(day).join("conn.00-01.log.gz"), b"x").unwrap();
            std::fs::write(d.path().join(day).join("dns.00-01.log.gz"), b"x").unwrap();
        }
        let got = expand(&d.path().join("*/conn.*.log.gz")).unwrap();
        assert_eq!(got.len(), 2);
        assert!(expand(&d.path().join("missing.log")).is_err());
        assert!(expand(&d.path().join("nothing-*.log")).unwrap().is_empty());
    }
}
