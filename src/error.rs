//! Errors that end a command, with the exit code scripts can rely on.
//!
//! | code | meaning |
//! |---|---|
//! | 0 | success (a lookup or a list that finds nothing is a success) |
//! | 1 | the work failed (a source, the digest, an import error, a write on a full disk), or `status` found a feed unhealthy |
//! | 2 | bad command line or malformed query |
//! | 3 | configuration missing or invalid |
//! | 4 | the store cannot be opened (locked, damaged) |
//! | 5 | nothing failed, but another node sharing the store was running a source (or the digest) and it was left to that node (`fetch`, `run --once`), or writing the source an `import` is for (nothing imported) |

use std::fmt;

/// Every exit code and what it means (`--help` and the manual page print this table).
pub(crate) const EXIT_CODES: [(u8, &str); 6] = [
    (0, "success (also a lookup or list that finds nothing)"),
    (
        EXIT_FAILURE,
        "the work failed (a source, an import, the digest), or a feed is unhealthy",
    ),
    (EXIT_USAGE, "bad usage or malformed query"),
    (EXIT_CONFIG, "config missing or invalid"),
    (EXIT_STORE, "store unavailable (locked, damaged or absent)"),
    (
        EXIT_SKIPPED,
        "nothing failed, but another node sharing the store had some of the work",
    ),
];

/// Exit code: the work failed.
pub(crate) const EXIT_FAILURE: u8 = 1;
/// Exit code: usage error or malformed input on the command line.
pub(crate) const EXIT_USAGE: u8 = 2;
/// Exit code: configuration missing or invalid.
pub(crate) const EXIT_CONFIG: u8 = 3;
/// Exit code: store unavailable.
pub(crate) const EXIT_STORE: u8 = 4;
/// Exit code: some work was skipped because another node sharing the store held its turn.
pub(crate) const EXIT_SKIPPED: u8 = 5;

/// An error that ends the command with `code`.
#[derive(Debug)]
pub struct CliError {
    pub code: u8,
    pub message: String,
}

impl CliError {
    pub fn new(code: u8, m: impl fmt::Display) -> Self {
        CliError {
            code,
            message: m.to_string(),
        }
    }
    pub fn failure(m: impl fmt::Display) -> Self {
        Self::new(EXIT_FAILURE, m)
    }
    pub fn usage(m: impl fmt::Display) -> Self {
        Self::new(EXIT_USAGE, m)
    }
    pub fn config(m: impl fmt::Display) -> Self {
        Self::new(EXIT_CONFIG, m)
    }
    pub fn store(m: impl fmt::Display) -> Self {
        Self::new(EXIT_STORE, m)
    }
    /// The reader of stdout went away: stop quietly, exit code 0.
    pub fn stdout_closed() -> Self {
        Self::new(0, "")
    }
    /// Whether this is [`CliError::stdout_closed`].
    pub fn is_stdout_closed(&self) -> bool {
        self.code == 0
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for CliError {}

impl From<crate::store::StoreError> for CliError {
    /// Exit 4, but a full disk is no store problem: exit 1 naming the disk.
    fn from(e: crate::store::StoreError) -> Self {
        match e {
            e @ crate::store::StoreError::DiskFull { .. } => CliError::failure(e),
            e => CliError::store(e),
        }
    }
}
