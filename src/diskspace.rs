//! A full disk: how outwatch tells it from a damaged store, and the space it keeps aside so that
//! the store can still be opened (and read) when the disk fills up.
//!
//! sled writes while it opens a database (it zeroes the rest of the log segment it recovered,
//! up to one segment), so on a full disk even a read command could not open the store. The
//! store folder therefore holds a *reserve*: a file of [`RESERVE_BYTES`] written whenever the
//! store opens with room to spare. When an open fails for want of space, the reserve is removed
//! and the open tried again: reads work, and writes fail naming the disk
//! ([`full_message`]), never the store.

use std::io;
use std::path::{Path, PathBuf};

/// The reserve's file name in the store folder.
pub const RESERVE_FILE: &str = "space-reserve";
/// The reserve's size: four of sled's 2 MiB segments, more than one open needs.
pub const RESERVE_BYTES: u64 = 8 << 20;

/// Bytes of the regular files in `dir` and in its folders one level down (sled's database
/// folder: its data file, snapshots and `blobs/`), `None` when `dir` cannot be read. Symbolic
/// links are not followed.
pub fn folder_bytes(dir: &Path) -> Option<u64> {
    let mut total = 0u64;
    for e in std::fs::read_dir(dir).ok()?.flatten() {
        let Ok(t) = e.file_type() else { continue };
        if t.is_file() {
            total += e.metadata().map(|m| m.len()).unwrap_or(0);
        } else if t.is_dir()
            && let Ok(inner) = std::fs::read_dir(e.path())
        {
            for f in inner.flatten() {
                if f.file_type().is_ok_and(|t| t.is_file()) {
                    total += f.metadata().map(|m| m.len()).unwrap_or(0);
                }
            }
        }
    }
    Some(total)
}

/// Whether an I/O error says the disk (or the user's quota on it) is full.
pub fn is_full(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::ENOSPC) | Some(libc::EDQUOT))
}

/// Whether an error's text carries a full disk's OS error (for errors that reached us as text,
/// through sled's or a temporary file's message): as `io::Error` displays it (`... (os error
/// 28)`) or as its `Debug` form does (`Os { code: 28, kind: StorageFull, .. }`, which sled
/// uses for an error of its background flusher).
pub fn says_full(text: &str) -> bool {
    [libc::ENOSPC, libc::EDQUOT].iter().any(|code| {
        text.contains(&format!("(os error {code})")) || text.contains(&format!("code: {code},"))
    }) || text.contains("StorageFull")
        || text.contains("QuotaExceeded")
}

/// Bytes an unprivileged writer may still use on the file system holding `path` (or its
/// nearest existing ancestor); `None` when that cannot be read.
pub fn free_bytes(path: &Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let mut at: PathBuf = path.to_path_buf();
    while !at.exists() {
        at = at.parent()?.to_path_buf();
    }
    let c = std::ffi::CString::new(at.as_os_str().as_bytes()).ok()?;
    let mut st = std::mem::MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: `c` is a valid NUL-terminated path and `st` a buffer of the right type, which
    // statvfs fills when it returns 0.
    let r = unsafe { libc::statvfs(c.as_ptr(), st.as_mut_ptr()) };
    if r != 0 {
        return None;
    }
    // SAFETY: statvfs returned 0, so it wrote the struct.
    let st = unsafe { st.assume_init() };
    #[allow(clippy::unnecessary_cast)] // the field types differ between platforms
    Some((st.f_bavail as u64).saturating_mul(st.f_frsize as u64))
}

/// What a write on a full disk says: the disk and its free space, and that the store is fine.
pub fn full_message(path: &Path, free: Option<u64>) -> String {
    let free = free.map_or_else(
        || "free space unknown".to_string(),
        |n| format!("{n} bytes free"),
    );
    format!(
        "the disk holding {} is full ({free}): free some space and run the command again; the \
         store is not damaged, and read commands (lookup, status, export) still work",
        path.display()
    )
}

/// Tops the reserve in `dir` up to [`RESERVE_BYTES`], or to what the disk still has (after an
/// open that used part of a released reserve, the rest is kept back for the next open). Best
/// effort: never an error.
pub fn keep_reserve(dir: &Path) {
    let path = dir.join(RESERVE_FILE);
    let have = std::fs::metadata(&path).map_or(0, |m| m.len());
    if have >= RESERVE_BYTES {
        return;
    }
    let room = free_bytes(dir).unwrap_or(0);
    let want = RESERVE_BYTES.min(have.saturating_add(room));
    if want == 0 {
        return;
    }
    if let Err(e) = allocate(&path, want) {
        tracing::debug!(path = %path.display(), error = %e, "no room for the space reserve");
    }
}

/// Allocates `path` to `len` bytes for real (`posix_fallocate`: blocks, not a sparse file;
/// glibc writes zeros where the file system cannot allocate without them).
fn allocate(path: &Path, len: u64) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::OpenOptionsExt;
    let f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path)?;
    let len = libc::off_t::try_from(len).map_err(io::Error::other)?;
    // SAFETY: the descriptor is open for writing for the duration of the call.
    let r = unsafe { libc::posix_fallocate(f.as_raw_fd(), 0, len) };
    if r != 0 {
        return Err(io::Error::from_raw_os_error(r));
    }
    Ok(())
}

/// Removes the reserve in `dir`; whether there was one.
pub fn release_reserve(dir: &Path) -> bool {
    let path = dir.join(RESERVE_FILE);
    match std::fs::remove_file(&path) {
        Ok(()) => {
            tracing::warn!(
                path = %path.display(),
                "the disk is full: released the space reserve so that the store can be read"
            );
            true
        }
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_disks_are_told_by_their_os_error() {
        assert!(is_full(&io::Error::from_raw_os_error(libc::ENOSPC)));
        assert!(!is_full(&io::Error::from_raw_os_error(libc::EACCES)));
        let e = io::Error::from_raw_os_error(libc::ENOSPC).to_string();
        assert!(says_full(&format!("IO error: {e}")), "{e}");
        assert!(!says_full("IO error: Permission denied (os error 13)"));
        let debug = format!("{:?}", io::Error::from_raw_os_error(libc::ENOSPC));
        assert!(
            says_full(&format!("store error: IO error: {debug}")),
            "{debug}"
        );
    }

    #[test]
    fn the_reserve_is_written_once_and_released() {
        let d = tempfile::tempdir().unwrap();
        keep_reserve(d.path());
        let p = d.path().join(RESERVE_FILE);
        assert_eq!(std::fs::metadata(&p).unwrap().len(), RESERVE_BYTES);
        keep_reserve(d.path());
        assert!(release_reserve(d.path()));
        assert!(!release_reserve(d.path()));
        assert!(free_bytes(&d.path().join("not/yet")).is_some());
        let m = full_message(Path::new("/srv/outwatch"), Some(4096));
        assert!(m.contains("/srv/outwatch is full (4096 bytes free)"), "{m}");
    }
}
