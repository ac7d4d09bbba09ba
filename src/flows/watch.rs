//! The daemon's flows job: expand `[flows] paths`, read the files that are new or changed
//! since the last run, analyse them together and store the findings with the files' marks;
//! and the health of the job (`status`: `silent` when the paths gave no new lines for twice
//! the schedule, `failing` when they cannot be read).
//!
//! A file is remembered in state `flows/file/<path>` as its size, modification time, inode
//! and, for a plain log, how far it was read (the end of its last whole line) with its header
//! lines. Every line is read once: a growing plain log (`current/conn.log`) is read on from
//! where the last run stopped, behind its own header, up to its last whole line (a line being
//! written waits for the next run); a gzip file, or a plain one replaced (another inode, or
//! shorter than what was read), is read whole. So a day's flow finding **adds up** what every
//! run read of it (connections, packets, bytes; first and last time; the longest connection:
//! [`run::add_stored_counts`]), whatever the rotation; top talkers are as measured by the run
//! that last saw them. (Watch either the live log or its archive, not both: the same lines
//! would count twice.) The marks are written in the same atomic batch as the findings, so a
//! failed run reads the same lines again next time. Marks of files that no longer match are
//! dropped.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::UNIX_EPOCH;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::run::{self, FileOutcome};
use crate::config::Config;
use crate::scope::ScopeMatcher;
use crate::store::{Store, StoreError};

/// State key prefix of the file marks.
pub const STATE_PREFIX: &str = "flows/file/";
/// Most files one pattern may expand to (a mistaken `/*` must not read a whole disk).
pub const MAX_FILES: usize = 10_000;

/// What is remembered of a file that was read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileMark {
    pub size: u64,
    /// Modification time, nanoseconds since the epoch.
    pub mtime_ns: i128,
    #[serde(default)]
    pub inode: u64,
    /// A plain log: the end of the last whole line read (0 for a gzip file: read whole).
    #[serde(default)]
    pub offset: u64,
    /// A plain log: its header lines, put before the bytes read on from `offset`.
    #[serde(default)]
    pub header: String,
}

impl FileMark {
    fn of(meta: &std::fs::Metadata) -> FileMark {
        use std::os::unix::fs::MetadataExt;
        let mtime_ns = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_nanos() as i128);
        FileMark {
            size: meta.len(),
            mtime_ns,
            inode: meta.ino(),
            offset: 0,
            header: String::new(),
        }
    }

    /// The same file, unchanged.
    fn unchanged(&self, now: &FileMark) -> bool {
        (self.size, self.mtime_ns, self.inode) == (now.size, now.mtime_ns, now.inode)
    }
}

/// Most header bytes kept for a plain log (Zeek's header is well under 2 KiB).
const MAX_HEADER: usize = 64 * 1024;

/// How a file is to be read now: `None` when it is gzip (whole); else its header and the end
/// of its last whole line.
fn plain_layout(path: &Path, size: u64) -> std::io::Result<Option<(String, u64)>> {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = std::fs::File::open(path)?;
    let mut head = vec![0u8; MAX_HEADER.min(size as usize)];
    f.read_exact(&mut head)?;
    if head.starts_with(&[0x1f, 0x8b]) {
        return Ok(None);
    }
    // The header: Zeek's leading `#` lines, or nfdump's column line; none for JSON lines.
    let text = head.strip_prefix("\u{feff}".as_bytes()).unwrap_or(&head);
    let mut header = 0;
    if text.first() == Some(&b'#') {
        for line in text.split_inclusive(|&b| b == b'\n') {
            if !line.starts_with(b"#") || !line.ends_with(b"\n") {
                break;
            }
            header += line.len();
        }
    } else if text.first() != Some(&b'{')
        && let Some(nl) = text.iter().position(|&b| b == b'\n')
    {
        header = nl + 1;
    }
    let header = String::from_utf8_lossy(&text[..header]).into_owned();
    // The end of the last whole line: scan back from the end.
    let mut end = size;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let start = end.saturating_sub(buf.len() as u64);
        let n = (end - start) as usize;
        if n == 0 {
            return Ok(Some((header, 0)));
        }
        f.seek(SeekFrom::Start(start))?;
        f.read_exact(&mut buf[..n])?;
        if let Some(i) = buf[..n].iter().rposition(|&b| b == b'\n') {
            return Ok(Some((header, start + i as u64 + 1)));
        }
        end = start;
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
    store: &Arc<dyn Store>,
    scope: &ScopeMatcher,
    now: impl Fn() -> DateTime<Utc>,
) -> Result<Result<String, String>, StoreError> {
    let started = now();
    let (files, unreadable) = expand_all(cfg);
    let marks: std::collections::HashMap<String, Vec<u8>> =
        store.state_scan(STATE_PREFIX)?.into_iter().collect();
    let mut to_read: Vec<(run::Piece, String, FileMark)> = Vec::new();
    let mut state = Vec::new();
    let mut unreadable = unreadable;
    for f in &files {
        let key = format!("{STATE_PREFIX}{}", f.display());
        let fail = |e: std::io::Error| FileOutcome {
            path: f.display().to_string(),
            stats: None,
            error: Some(e.to_string()),
        };
        let meta = match std::fs::metadata(f) {
            Ok(m) => m,
            Err(e) => {
                unreadable.push(fail(e));
                continue;
            }
        };
        let mut mark = FileMark::of(&meta);
        let known: Option<FileMark> = marks.get(&key).and_then(|v| serde_json::from_slice(v).ok());
        if known.as_ref().is_some_and(|k| k.unchanged(&mark)) {
            continue;
        }
        let tail = match plain_layout(f, mark.size) {
            Err(e) => {
                unreadable.push(fail(e));
                continue;
            }
            Ok(None) => None,
            Ok(Some((header, end))) => {
                // Read on from the last run's end when it is the same file, grown.
                let from = known
                    .as_ref()
                    .filter(|k| k.inode == mark.inode && k.offset > 0 && k.offset <= end)
                    .map_or(0, |k| k.offset);
                let tail = run::Tail {
                    header: if from == 0 {
                        Vec::new()
                    } else {
                        known
                            .as_ref()
                            .map(|k| k.header.clone().into_bytes())
                            .unwrap_or_default()
                    },
                    from,
                    to: end,
                };
                mark.offset = end;
                mark.header = if from == 0 {
                    header
                } else {
                    known.as_ref().map(|k| k.header.clone()).unwrap_or_default()
                };
                Some(tail)
            }
        };
        if let Some(t) = &tail
            && t.from == t.to
        {
            // Changed, but no new whole line yet: remember the file as it is now.
            state.push((
                key,
                Some(serde_json::to_vec(&mark).expect("a mark serialises")),
            ));
            continue;
        }
        to_read.push((
            run::Piece {
                path: f.clone(),
                tail,
            },
            key,
            mark,
        ));
    }
    let current: std::collections::HashSet<String> = files
        .iter()
        .map(|f| format!("{STATE_PREFIX}{}", f.display()))
        .collect();
    for k in marks.keys().filter(|k| !current.contains(*k)) {
        state.push((k.clone(), None));
    }
    if to_read.is_empty() && unreadable.is_empty() {
        let unit = crate::sources::FetchOutput {
            state,
            ..Default::default()
        };
        let ending = crate::pipeline::Ending {
            not_modified: true,
            ..Default::default()
        };
        crate::pipeline::Apply::new(
            store.clone(),
            crate::pipeline::RunKind::Source(super::analyse::SOURCE.into()),
            started,
        )
        .only_unit(unit, &ending, &now)?;
        return Ok(Ok(format!("no new lines in {} file(s)", files.len())));
    }
    let index = run::indicators(Some(cfg), store.as_ref())?;
    let pieces: Vec<run::Piece> = to_read.iter().map(|(p, _, _)| p.clone()).collect();
    let mut analysed = run::analyse_pieces(&cfg.flows, scope, &index, &pieces, &mut |p| {
        tracing::info!(file = %crate::text::Clean(&p.display().to_string()), "reading flows");
    });
    run::add_stored_counts(store.as_ref(), &mut analysed.report.findings)?;
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
        pieces.len(),
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
