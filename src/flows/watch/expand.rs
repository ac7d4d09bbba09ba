//! `[flows] paths` → files: `*` and `?` in any part of a path.

use std::path::{Path, PathBuf};

use super::MAX_FILES;
use crate::config::Config;
use crate::flows::run::FileOutcome;

/// Why a path of `[flows] paths` gives no file.
#[derive(Debug, thiserror::Error)]
pub enum ExpandError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("not a log file but {0}")]
    NotAFile(&'static str),
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
/// names them), sorted; only regular files (a FIFO or device a wildcard matches is left out).
/// A pattern without wildcards names its file, which must exist and be a regular file.
pub fn expand(pattern: &Path) -> Result<Vec<PathBuf>, ExpandError> {
    if !has_wildcard(&pattern.to_string_lossy()) {
        let m = std::fs::metadata(pattern)?;
        if !m.is_file() {
            return Err(ExpandError::NotAFile(crate::flows::read::file_kind(
                &m.file_type(),
            )));
        }
        return Ok(vec![pattern.to_path_buf()]);
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
                error: Some(e.to_string()),
            }),
        }
    }
    files.sort();
    files.dedup();
    (files, failed)
}
