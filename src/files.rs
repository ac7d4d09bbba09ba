//! Owner-only files and folders, whatever the process umask: the store folder is 0700 and
//! everything outwatch writes into it (and the digest files it writes anywhere) is 0600.

use std::fs::{DirBuilder, OpenOptions, Permissions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// Creates `dir` (and missing parents) as 0700, or narrows an existing folder that others can
/// reach to 0700. Parents that already exist are left as they are.
pub(crate) fn private_dir(dir: &Path) -> io::Result<()> {
    DirBuilder::new().recursive(true).mode(0o700).create(dir)?;
    let mode = std::fs::metadata(dir)?.mode() & 0o777;
    if mode != 0o700 {
        std::fs::set_permissions(dir, Permissions::from_mode(0o700))?;
    }
    Ok(())
}

/// Makes every folder under `dir` 0700 and every file 0600 (for files another library created
/// with the umask, like sled's). Sockets and symlinks are left alone.
pub(crate) fn restrict_tree(dir: &Path) -> io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let ty = entry.file_type()?;
        let path = entry.path();
        let want = if ty.is_dir() {
            restrict_tree(&path)?;
            0o700
        } else if ty.is_file() {
            0o600
        } else {
            continue;
        };
        if entry.metadata()?.mode() & 0o777 != want {
            std::fs::set_permissions(&path, Permissions::from_mode(want))?;
        }
    }
    Ok(())
}

/// Opens `path` for writing (created or truncated) as 0600, also when it existed with another
/// mode. A path that is no regular file (`/dev/stdout`, a named pipe) is written as it is, its
/// mode left alone.
pub(crate) fn create_private(path: &Path) -> io::Result<std::fs::File> {
    let f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    let meta = f.metadata()?;
    if meta.is_file() && meta.mode() & 0o777 != 0o600 {
        f.set_permissions(Permissions::from_mode(0o600))?;
    }
    Ok(f)
}

/// Writes `body` to `path` as a 0600 file.
pub(crate) fn write_private(path: &Path, body: impl AsRef<[u8]>) -> io::Result<()> {
    let mut f = create_private(path)?;
    f.write_all(body.as_ref())?;
    f.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(p: &Path) -> u32 {
        std::fs::metadata(p).unwrap().mode() & 0o777
    }

    #[test]
    fn private_whatever_exists() {
        let t = tempfile::tempdir().unwrap();
        let d = t.path().join("a/b");
        private_dir(&d).unwrap();
        assert_eq!(mode(&d), 0o700);
        std::fs::set_permissions(&d, Permissions::from_mode(0o755)).unwrap();
        private_dir(&d).unwrap();
        assert_eq!(mode(&d), 0o700);
        let f = d.join("x.eml");
        std::fs::write(&f, "old").unwrap();
        std::fs::set_permissions(&f, Permissions::from_mode(0o644)).unwrap();
        write_private(&f, "new").unwrap();
        assert_eq!(mode(&f), 0o600);
        assert_eq!(std::fs::read_to_string(&f).unwrap(), "new");
        std::fs::create_dir(d.join("sub")).unwrap();
        std::fs::write(d.join("sub/conf"), "").unwrap();
        std::fs::set_permissions(&f, Permissions::from_mode(0o644)).unwrap();
        restrict_tree(&d).unwrap();
        assert_eq!(mode(&d.join("sub")), 0o700);
        assert_eq!(mode(&d.join("sub/conf")), 0o600);
        assert_eq!(mode(&f), 0o600);
    }
}
