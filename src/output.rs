//! Printing helpers shared by commands: JSON to stdout, tables for people.

use comfy_table::{ContentArrangement, Table, presets::UTF8_FULL_CONDENSED};
use serde::Serialize;

use crate::error::CliError;

/// Prints `v` as pretty JSON on stdout (see [`line`] for a closed stdout).
pub(crate) fn print_json<T: Serialize + ?Sized>(v: &T) -> Result<(), CliError> {
    let s = serde_json::to_string_pretty(v).map_err(CliError::failure)?;
    line(format_args!("{s}"))
}

/// Writes one line to stdout. When the reader has gone away (`outwatch lookup ... | head`),
/// this is [`CliError::stdout_closed`]: the command ends quietly with exit code 0, as it has
/// nothing left to do. (`println!` would panic.)
pub(crate) fn line(args: std::fmt::Arguments<'_>) -> Result<(), CliError> {
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
pub(crate) fn write_all(bytes: &[u8]) -> Result<(), CliError> {
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
pub(crate) fn line_after_work(args: std::fmt::Arguments<'_>) {
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
pub(crate) fn table(header: &[&str]) -> Table {
    let mut t = Table::new();
    t.load_style(UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Dynamic)
        .set_header(header.to_vec());
    t
}

/// Colours on (`enforce_styling`) or off; without a terminal, the width from `$COLUMNS`
/// when set (so `COLUMNS=80 outwatch lookup ... | less` lays out for 80 columns).
pub(crate) fn style_table(t: &mut Table, colour: bool) {
    if colour {
        t.enforce_styling();
    }
    if !std::io::IsTerminal::is_terminal(&std::io::stdout())
        && let Some(w) = columns_env()
    {
        t.set_width(u16::try_from(w).unwrap_or(u16::MAX));
    }
}

/// `$COLUMNS`, when it holds a width.
fn columns_env() -> Option<usize> {
    std::env::var("COLUMNS")
        .ok()
        .and_then(|c| c.trim().parse::<usize>().ok())
        .filter(|w| *w > 0)
}

/// The width to lay text out for on stdout: a terminal's own width, else `$COLUMNS` when set
/// (`COLUMNS=80 outwatch run --once | mail`), else none (one line per paragraph).
pub(crate) fn width() -> Option<usize> {
    if std::io::IsTerminal::is_terminal(&std::io::stdout()) {
        Some(textwrap::termwidth())
    } else {
        columns_env()
    }
}

/// Columns whose cells are never broken (addresses, URLs, times): each is at least as wide as
/// its widest cell, and the other columns wrap at spaces around them. Long values are
/// shortened in the middle before they get here (`text::clip_middle`).
pub(crate) fn keep_whole(t: &mut Table, columns: &[usize]) {
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
pub(crate) fn rfc3339(t: chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// A finding as the read commands show it (`lookup --json`, `list`, `export`): its one
/// serialised shape (the JSON of [`crate::finding::Finding`]'s `Serialize`) plus what is derived for people, `observed` (when the
/// provider saw it, else when it was stored: [`crate::finding::rank::observed`]) and `contact`
/// (the ports and peer, [`crate::finding::contact::contact`]), which `restore` ignores.
#[derive(Serialize)]
struct Shown<'a> {
    #[serde(flatten)]
    finding: &'a crate::finding::Finding,
    observed: chrono::DateTime<chrono::Utc>,
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    contact: std::collections::BTreeMap<&'static str, String>,
    /// What `outwatch notify` sent of it (`list`): each sending's contact, time, ticket.
    #[serde(skip_serializing_if = "Option::is_none")]
    notified: Option<&'a serde_json::Value>,
}

/// Writes a finding as the read commands show it (see [`Shown`]), on one line.
pub(crate) fn write_shown<W: std::io::Write>(
    w: &mut W,
    f: &crate::finding::Finding,
) -> std::io::Result<()> {
    write_shown_notified(w, f, None)
}

/// [`write_shown`] with the finding's notifications as a `notified` field (when given).
pub(crate) fn write_shown_notified<W: std::io::Write>(
    w: &mut W,
    f: &crate::finding::Finding,
    notified: Option<&serde_json::Value>,
) -> std::io::Result<()> {
    let shown = Shown {
        finding: f,
        observed: crate::finding::rank::observed(f),
        contact: crate::finding::contact::contact(f).into_iter().collect(),
        notified,
    };
    serde_json::to_writer(&mut *w, &shown).map_err(std::io::Error::other)
}

/// The error of a failed write to stdout: a reader gone away is
/// [`CliError::stdout_closed`] (quiet, exit 0), anything else a failure.
pub(crate) fn stdout_error(e: std::io::Error) -> CliError {
    if e.kind() == std::io::ErrorKind::BrokenPipe {
        CliError::stdout_closed()
    } else {
        CliError::failure(format!("cannot write to stdout: {e}"))
    }
}

/// Buffered stdout for streamed output (one result per line, thousands of them). The first
/// lines are flushed as soon as they are written, so a reader sees results at once; then the
/// buffer fills before each write, not one system call per line.
pub(crate) struct Stream<W: std::io::Write> {
    w: std::io::BufWriter<W>,
    lines: usize,
}

/// Lines flushed one by one at the start of a [`Stream`].
const EAGER_LINES: usize = 2;

impl Stream<std::io::StdoutLock<'static>> {
    /// A stream to stdout.
    pub(crate) fn stdout() -> Self {
        Stream::new(std::io::stdout().lock())
    }
}

impl<W: std::io::Write> Stream<W> {
    pub(crate) fn new(w: W) -> Self {
        Stream {
            w: std::io::BufWriter::with_capacity(64 * 1024, w),
            lines: 0,
        }
    }

    /// Writes `s` as it is.
    pub(crate) fn text(&mut self, s: &str) -> std::io::Result<()> {
        use std::io::Write;
        self.w.write_all(s.as_bytes())
    }

    /// Writes a finding as shown ([`write_shown`]), then `end`; flushes while the stream is
    /// young.
    pub(crate) fn finding(
        &mut self,
        f: &crate::finding::Finding,
        end: &str,
    ) -> std::io::Result<()> {
        self.finding_notified(f, None, end)
    }

    /// [`Stream::finding`] with its notifications ([`write_shown_notified`]).
    pub(crate) fn finding_notified(
        &mut self,
        f: &crate::finding::Finding,
        notified: Option<&serde_json::Value>,
        end: &str,
    ) -> std::io::Result<()> {
        use std::io::Write;
        write_shown_notified(&mut self.w, f, notified)?;
        self.w.write_all(end.as_bytes())?;
        self.lines += 1;
        if self.lines <= EAGER_LINES {
            self.w.flush()?;
        }
        Ok(())
    }

    /// Flushes what is left.
    pub(crate) fn finish(mut self) -> std::io::Result<()> {
        use std::io::Write;
        self.w.flush()
    }
}

pub(crate) use crate::text::thousands;

/// `text` as lines for stdout, `first` before the first line and `rest` before the others: for
/// a [`width`] of 40 columns or more (a terminal's, or `$COLUMNS`) wrapped at spaces, never
/// inside a word (an address or URL stays whole, on a line of its own when it is longer);
/// otherwise one line.
pub(crate) fn wrapped(text: &str, first: &str, rest: &str) -> Vec<String> {
    wrapped_to(width(), text, first, rest)
}

/// [`wrapped`] lines of a command that did work ([`line_after_work`]).
pub(crate) fn work_wrapped(text: &str, first: &str, rest: &str) {
    for l in wrapped(text, first, rest) {
        line_after_work(format_args!("{l}"));
    }
}

fn wrapped_to(width: Option<usize>, text: &str, first: &str, rest: &str) -> Vec<String> {
    match width.filter(|w| *w >= 40) {
        Some(width) => {
            let opts = textwrap::Options::new(width)
                .initial_indent(first)
                .subsequent_indent(rest)
                .break_words(false)
                // Not at a hyphen either: `a-long-host.example.org` is one word.
                .word_splitter(textwrap::WordSplitter::NoHyphenation);
            textwrap::wrap(text, opts)
                .into_iter()
                .map(|l| l.into_owned())
                .collect()
        }
        None => vec![format!("{first}{text}")],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrapping_never_splits_a_url() {
        let url = "http://127.0.0.1:9/downloads/csv_recent/a-very-long-path-name/recent.csv";
        let text = format!("{url}: connection failed: client error (Connect): tcp connect error");
        let lines = wrapped_to(Some(40), &text, "flows: FAILED: ", "  ");
        assert!(lines.iter().any(|l| l.contains(url)), "{lines:?}");
        assert!(
            lines.iter().skip(1).all(|l| l.starts_with("  ")),
            "{lines:?}"
        );
        assert!(
            lines
                .iter()
                .all(|l| l.chars().count() <= 40 || l.contains(url)),
            "{lines:?}"
        );
        assert_eq!(wrapped_to(None, &text, "> ", "  "), [format!("> {text}")]);
        assert_eq!(wrapped_to(Some(20), &text, "> ", "  ").len(), 1);
    }

    #[test]
    fn thousands_groups_digits() {
        for (n, s) in [
            (0, "0"),
            (999, "999"),
            (1000, "1,000"),
            (199_950, "199,950"),
        ] {
            assert_eq!(thousands(n), s);
        }
        assert_eq!(thousands(1_234_567), "1,234,567");
    }
}
