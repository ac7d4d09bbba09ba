//! Printing helpers shared by commands: JSON to stdout, tables for people.

use comfy_table::{ContentArrangement, Table, presets::UTF8_FULL_CONDENSED};
use serde::Serialize;

use crate::error::CliError;

/// Prints `v` as pretty JSON on stdout (see [`line`] for a closed stdout).
pub fn print_json<T: Serialize + ?Sized>(v: &T) -> Result<(), CliError> {
    let s = serde_json::to_string_pretty(v).map_err(CliError::failure)?;
    line(format_args!("{s}"))
}

/// Writes one line to stdout. When the reader has gone away (`outwatch lookup ... | head`),
/// this is [`CliError::stdout_closed`]: the command ends quietly with exit code 0, as it has
/// nothing left to do. (`println!` would panic.)
pub fn line(args: std::fmt::Arguments<'_>) -> Result<(), CliError> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match out.write_fmt(args).and_then(|()| out.write_all(b"\n")) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Err(CliError::stdout_closed()),
        Err(e) => Err(CliError::failure(format!("cannot write to stdout: {e}"))),
    }
}

/// Writes bytes to stdout as they are (completion scripts, the manual page); a closed stdout
/// is [`CliError::stdout_closed`].
pub fn write_all(bytes: &[u8]) -> Result<(), CliError> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match out.write_all(bytes).and_then(|()| out.flush()) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Err(CliError::stdout_closed()),
        Err(e) => Err(CliError::failure(format!("cannot write to stdout: {e}"))),
    }
}

/// [`line`] for commands whose exit code reports work already done (fetch, run, import, demo):
/// a line that cannot be printed (a closed stdout, mostly) is dropped, so that code still
/// tells whether the work succeeded.
pub fn line_after_work(args: std::fmt::Arguments<'_>) {
    let _ = line(args);
}

/// `println!` for read commands: `outln!(...)` is [`line`] followed by `?`.
#[macro_export]
macro_rules! outln {
    () => {
        $crate::output::line(format_args!(""))?
    };
    ($($arg:tt)*) => {
        $crate::output::line(format_args!($($arg)*))?
    };
}

/// `println!` for commands that did work: [`line_after_work`].
#[macro_export]
macro_rules! workln {
    () => {
        $crate::output::line_after_work(format_args!(""))
    };
    ($($arg:tt)*) => {
        $crate::output::line_after_work(format_args!($($arg)*))
    };
}

/// A table with the house style.
pub fn table(header: &[&str]) -> Table {
    let mut t = Table::new();
    t.load_style(UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Dynamic)
        .set_header(header.to_vec());
    t
}

/// Colours on (`enforce_styling`) or off; without a terminal, the width from `$COLUMNS`
/// when set (so `COLUMNS=80 outwatch lookup ... | less` lays out for 80 columns).
pub fn style_table(t: &mut Table, colour: bool) {
    if colour {
        t.enforce_styling();
    }
    if !std::io::IsTerminal::is_terminal(&std::io::stdout())
        && let Some(w) = std::env::var("COLUMNS")
            .ok()
            .and_then(|c| c.parse::<u16>().ok())
    {
        t.set_width(w);
    }
}

/// Columns whose cells are never broken (addresses, URLs, times): each is at least as wide as
/// its widest cell, and the other columns wrap at spaces around them. Long values are
/// shortened in the middle before they get here (`text::clip_middle`).
pub fn keep_whole(t: &mut Table, columns: &[usize]) {
    let widths = t.column_max_content_widths();
    for &i in columns {
        // A constraint's width includes the cell's padding (one space each side).
        let w = widths.get(i).copied().unwrap_or(0).saturating_add(2);
        if let Some(c) = t.column_mut(i) {
            c.set_constraint(comfy_table::ColumnConstraint::LowerBoundary(
                comfy_table::Width::Fixed(w),
            ));
        }
    }
}

/// RFC 3339, UTC, seconds precision, `Z` suffix: every time a command prints.
pub fn rfc3339(t: chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}
