//! Colour for people at a terminal, none for pipes and files.
//!
//! Rule (the <https://no-color.org> and <https://bixense.com/clicolors> conventions):
//! `NO_COLOR` set to anything non-empty turns colour off; otherwise `CLICOLOR_FORCE` set to
//! anything but `0` turns it on even for a pipe; otherwise colour goes to a terminal only.
//! Only words we write are coloured (severities, health states); feed text never carries an
//! escape sequence of its own (see `crate::text`).

use std::io::IsTerminal;

use comfy_table::{Attribute, Cell, Color};

use crate::finding::Severity;

/// Whether to colour what goes to stdout.
pub(crate) fn stdout_colour() -> bool {
    decide(
        std::env::var_os("NO_COLOR"),
        std::env::var_os("CLICOLOR_FORCE"),
        std::io::stdout().is_terminal(),
    )
}

/// Whether to colour what goes to stderr.
pub(crate) fn stderr_colour() -> bool {
    decide(
        std::env::var_os("NO_COLOR"),
        std::env::var_os("CLICOLOR_FORCE"),
        std::io::stderr().is_terminal(),
    )
}

fn decide(
    no_color: Option<std::ffi::OsString>,
    force: Option<std::ffi::OsString>,
    terminal: bool,
) -> bool {
    if no_color.is_some_and(|v| !v.is_empty()) {
        return false;
    }
    if force.is_some_and(|v| !v.is_empty() && v != "0") {
        return true;
    }
    terminal
}

/// The colour of a severity: critical red and bold, high red, medium yellow, low and info plain.
fn severity_colour(s: Severity) -> Option<(Color, bool)> {
    match s {
        Severity::Critical => Some((Color::Red, true)),
        Severity::High => Some((Color::Red, false)),
        Severity::Medium => Some((Color::Yellow, false)),
        Severity::Low | Severity::Info => None,
    }
}

/// The colour of a health state (`ok` green; `failing` red and bold; the rest yellow).
fn health_colour(state: &str) -> Option<(Color, bool)> {
    match state.to_ascii_lowercase().as_str() {
        "ok" => Some((Color::Green, false)),
        "failing" | "partial" => Some((Color::Red, true)),
        "silent" | "never" | "degraded" => Some((Color::Yellow, false)),
        _ => None,
    }
}

fn cell(text: String, c: Option<(Color, bool)>, colour: bool) -> Cell {
    let mut cell = Cell::new(text);
    if colour && let Some((fg, bold)) = c {
        cell = cell.fg(fg);
        if bold {
            cell = cell.add_attribute(Attribute::Bold);
        }
    }
    cell
}

/// A table cell naming a severity, coloured when `colour`.
pub(crate) fn severity_cell(s: Severity, colour: bool) -> Cell {
    cell(s.to_string(), severity_colour(s), colour)
}

/// A table cell naming a health state, coloured when `colour`.
pub(crate) fn health_cell(state: &str, colour: bool) -> Cell {
    cell(state.to_string(), health_colour(state), colour)
}

/// `text` in the colour of the health `state` as ANSI, when `colour` (for lines, not tables).
pub(crate) fn health_word(state: &str, text: &str, colour: bool) -> String {
    paint(text, health_colour(state), colour)
}

fn paint(text: &str, c: Option<(Color, bool)>, colour: bool) -> String {
    let Some((fg, bold)) = c.filter(|_| colour) else {
        return text.to_string();
    };
    let code = match fg {
        Color::Red => "31",
        Color::Yellow => "33",
        Color::Green => "32",
        _ => "39",
    };
    if bold {
        format!("\x1b[1;{code}m{text}\x1b[0m")
    } else {
        format!("\x1b[{code}m{text}\x1b[0m")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_color_wins_then_force_then_terminal() {
        let s = |v: &str| Some(std::ffi::OsString::from(v));
        assert!(!decide(s("1"), s("1"), true));
        assert!(decide(s(""), None, true)); // empty NO_COLOR is unset
        assert!(decide(None, s("1"), false));
        assert!(!decide(None, s("0"), false));
        assert!(!decide(None, None, false));
        assert!(decide(None, None, true));
        assert_eq!(
            paint("critical", severity_colour(Severity::Critical), false),
            "critical"
        );
        assert!(
            paint("critical", severity_colour(Severity::Critical), true).starts_with("\x1b[1;31m")
        );
        assert_eq!(health_word("ok", "ok", true), "\x1b[32mok\x1b[0m");
    }
}
