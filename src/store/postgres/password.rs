//! The password of a connection, from a `.pgpass`-style file when the URL carries none:
//! `hostname:port:database:username:password` lines, `*` matching anything, `\:` and `\\`
//! escaped, `#` comments; the first matching line wins (libpq's rules). The file must be
//! owner-only, as libpq requires: a named one that is not is refused, the default one
//! (`$PGPASSFILE`, else `~/.pgpass`) is then ignored with a warning.

use std::path::{Path, PathBuf};

use postgres::config::Host;

use crate::secret::Secret;

/// A password file that cannot be used (`path` as shown; never its content).
#[derive(Debug, thiserror::Error)]
pub(super) enum PasswordFileError {
    /// A named file that is not owner-only, or not a file.
    #[error("the password file {path} {problem}")]
    Refused {
        path: String,
        #[source]
        problem: NotOwnerOnly,
    },
    #[error("cannot read the password file {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// Why a password file is not readable by its owner alone.
#[derive(Debug, thiserror::Error)]
pub(super) enum NotOwnerOnly {
    #[error("cannot be read: {0}")]
    Unreadable(#[source] std::io::Error),
    #[error("is not a regular file")]
    NotAFile,
    #[error("is readable by others: make it owner-only (chmod 600)")]
    Shared,
}

/// The password for `config` from `named` (an error when it cannot be used) or the default
/// file (skipped when absent or not owner-only); `None` when no line matches.
pub(super) fn lookup(
    config: &postgres::Config,
    named: Option<&Path>,
) -> Result<Option<Secret>, PasswordFileError> {
    let (path, explicit) = match named {
        Some(p) => (p.to_path_buf(), true),
        None => match default_file() {
            Some(p) if p.is_file() => (p, false),
            _ => return Ok(None),
        },
    };
    let shown = path.display().to_string();
    if let Err(why) = owner_only(&path) {
        if explicit {
            return Err(PasswordFileError::Refused {
                path: shown,
                problem: why,
            });
        }
        tracing::warn!("ignoring the password file {shown}: it {why}");
        return Ok(None);
    }
    let text = std::fs::read_to_string(&path).map_err(|source| PasswordFileError::Read {
        path: shown,
        source,
    })?;
    let host = match config.get_hosts().first() {
        Some(Host::Tcp(h)) => h.clone(),
        _ => "localhost".to_string(),
    };
    let port = config
        .get_ports()
        .first()
        .copied()
        .unwrap_or(5432)
        .to_string();
    let user = config.get_user().unwrap_or_default().to_string();
    let db = config.get_dbname().map_or(user.clone(), str::to_string);
    let wanted = [host.as_str(), port.as_str(), db.as_str(), user.as_str()];
    Ok(find(&text, &wanted).map(Secret::new))
}

fn default_file() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("PGPASSFILE").filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(p));
    }
    std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(|h| PathBuf::from(h).join(".pgpass"))
}

/// Whether the file is readable by its owner alone (`Err` says what is wrong).
fn owner_only(path: &Path) -> Result<(), NotOwnerOnly> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(path).map_err(NotOwnerOnly::Unreadable)?;
    if !meta.is_file() {
        return Err(NotOwnerOnly::NotAFile);
    }
    if meta.permissions().mode() & 0o077 != 0 {
        return Err(NotOwnerOnly::Shared);
    }
    Ok(())
}

/// The password of the first line matching `wanted` (host, port, database, user).
fn find(text: &str, wanted: &[&str; 4]) -> Option<String> {
    for line in text.lines() {
        if line.trim_start().starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let fields = split(line);
        if fields.len() != 5 {
            continue;
        }
        if fields[..4]
            .iter()
            .zip(wanted)
            .all(|(f, w)| f == "*" || f == w)
        {
            return Some(fields[4].clone());
        }
    }
    None
}

/// A line's fields: `:` separates, `\` escapes the next character.
fn split(line: &str) -> Vec<String> {
    let mut out = vec![String::new()];
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let Some(n) = chars.next() {
                    out.last_mut().expect("one field at least").push(n);
                }
            }
            ':' if out.len() < 5 => out.push(String::new()),
            c => out.last_mut().expect("one field at least").push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_matching_line_wins_with_wildcards_and_escapes() {
        let text = "# comment\n\
                    db.example.org:5432:other:outwatch:nope\n\
                    db.example.org:*:outwatch:outwatch:pa\\:ss\\\\word\n\
                    *:*:*:*:fallback\n";
        let w = |h: &str, db: &str| find(text, &[h, "5432", db, "outwatch"]);
        assert_eq!(
            w("db.example.org", "outwatch").as_deref(),
            Some("pa:ss\\word")
        );
        assert_eq!(w("db.example.org", "other").as_deref(), Some("nope"));
        assert_eq!(w("elsewhere", "x").as_deref(), Some("fallback"));
        assert_eq!(find("a:b:c\n", &["a", "b", "c", "d"]), None);
    }

    #[test]
    fn a_named_file_readable_by_others_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("pgpass");
        std::fs::write(&p, "*:*:*:*:secretpw\n").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        let c: postgres::Config = "postgres://u@h/d".parse().unwrap();
        let e = lookup(&c, Some(&p)).unwrap_err().to_string();
        assert!(e.contains("chmod 600") && !e.contains("secretpw"), "{e}");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(
            lookup(&c, Some(&p))
                .unwrap()
                .map(|s| s.expose().to_string()),
            Some("secretpw".into())
        );
    }
}
