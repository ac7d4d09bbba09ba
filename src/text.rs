//! The one sanitiser for text that came from a feed and is about to reach a terminal (tables,
//! error messages, log lines).
//!
//! Rule: every control character (Unicode `Cc`: C0, DEL, C1 — `ESC`, `BEL`, CR, LF, tab, ...),
//! every invisible bidirectional or zero-width formatting character (U+061C, U+200B–U+200F,
//! U+202A–U+202E, U+2060–U+2069, U+FEFF) and the line and paragraph separators (U+2028,
//! U+2029) is written as a Rust-style escape, `\u{1b}`; every other character is kept. So a reader sees that something was there, and a feed cannot move
//! the cursor, set the window title, recolour the screen or reorder what is shown.
//!
//! Sources keep raw values in findings (the store and `--json` output hold the data as
//! received; JSON escapes control characters itself). Messages quote feed values through
//! [`clip`], and every place that prints such text (row errors, log lines, tables) passes it
//! through [`sanitize`] (or [`clip`]). Both are idempotent: an escaped text has nothing left to
//! escape.
//!
//! This module depends on nothing of ours, so `sources` may use it without depending on the
//! CLI's `output` module.

use std::borrow::Cow;
use std::fmt::Write as _;

/// Whether `c` is written as an escape.
#[inline]
pub fn needs_escape(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{061c}'
                | '\u{200b}'..='\u{200f}'
                | '\u{2028}'..='\u{202e}'
                | '\u{2060}'..='\u{2069}'
                | '\u{feff}'
        )
}

/// Appends `c`, escaped when [`needs_escape`]; returns the number of characters written.
fn push(out: &mut String, c: char) -> usize {
    if needs_escape(c) {
        let before = out.len();
        let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
        out.len() - before // the escape is ASCII: bytes = characters
    } else {
        out.push(c);
        1
    }
}

/// The number of characters `c` takes once escaped.
fn width(c: char) -> usize {
    if needs_escape(c) {
        // `\u{` + hex digits + `}`
        let hex = (32 - u32::from(c).leading_zeros()).div_ceil(4).max(1) as usize;
        4 + hex
    } else {
        1
    }
}

/// `s` with every control and invisible formatting character escaped (see the module rule).
/// Borrows `s` when there is nothing to escape (the usual case).
pub fn sanitize(s: &str) -> Cow<'_, str> {
    if !s.chars().any(needs_escape) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 16);
    for c in s.chars() {
        push(&mut out, c);
    }
    Cow::Owned(out)
}

/// [`sanitize`]d `s`, shortened **in the middle** to at most `max` characters, with `…` where
/// the cut is: the start and the end of an address or URL stay readable
/// (`https://www.exa…/login.php`). An escape is never cut in half.
pub fn clip_middle(s: &str, max: usize) -> String {
    let units: Vec<String> = s
        .chars()
        .map(|c| {
            let mut u = String::new();
            push(&mut u, c);
            u
        })
        .collect();
    let total: usize = units.iter().map(|u| u.chars().count()).sum();
    if total <= max {
        return units.concat();
    }
    if max <= 1 {
        return "…".chars().take(max).collect();
    }
    let room = max - 1;
    let head_room = room.div_ceil(2);
    let tail_room = room - head_room;
    let mut head = String::new();
    let mut used = 0;
    let mut i = 0;
    while i < units.len() && used + units[i].chars().count() <= head_room {
        used += units[i].chars().count();
        head.push_str(&units[i]);
        i += 1;
    }
    let mut tail: Vec<&str> = Vec::new();
    let mut used_tail = 0;
    let mut j = units.len();
    while j > i && used_tail + units[j - 1].chars().count() <= tail_room {
        used_tail += units[j - 1].chars().count();
        tail.push(&units[j - 1]);
        j -= 1;
    }
    tail.reverse();
    format!("{head}…{}", tail.concat())
}

/// [`sanitize`]d `s`, shortened to at most `max` characters (escapes counted as written), with
/// `…` marking a cut. An escape is never cut in half.
pub fn clip(s: &str, max: usize) -> String {
    let mut out = String::with_capacity(s.len().min(max.saturating_mul(4)) + 4);
    let mut used = 0usize;
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        let w = width(c);
        // Unless `c` is the last character, one place stays free for the `…`.
        let room = if chars.peek().is_none() {
            max
        } else {
            max.saturating_sub(1)
        };
        if used + w > room {
            out.push('…');
            return out;
        }
        used += push(&mut out, c);
    }
    out
}

/// `Display` adaptor: `format!("{}", text::Clean(s))` writes [`sanitize`]d `s` without an
/// intermediate `String` (for log fields and `eprintln!`).
pub struct Clean<'a>(pub &'a str);

impl std::fmt::Display for Clean<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&sanitize(self.0))
    }
}

/// An integer with thousands separators: `1234567` as `1,234,567`.
pub fn thousands(n: impl std::fmt::Display) -> String {
    let s = n.to_string();
    let mut out = String::with_capacity(s.len() + s.len() / 3);
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// An error and its causes as one line, `outer: cause: root cause`, for the run log and
/// messages: typed errors keep their causes (`#[source]`), and this is where they meet text.
/// A cause whose text its parent already ends with is not repeated.
pub fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut at = e.source();
    while let Some(c) = at {
        let t = c.to_string();
        if !t.is_empty() && !out.ends_with(&t) {
            out.push_str(": ");
            out.push_str(&t);
        }
        at = c.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped_not_dropped() {
        let feodo = "Emotet\u{1b}]0;pwned\u{7}\u{1b}[31m";
        assert_eq!(sanitize(feodo), "Emotet\\u{1b}]0;pwned\\u{7}\\u{1b}[31m");
        assert_eq!(
            sanitize("a\r\nb\tc\u{7f}\u{9b}"),
            "a\\u{d}\\u{a}b\\u{9}c\\u{7f}\\u{9b}"
        );
        assert_eq!(sanitize("evil\u{202e}txt.exe"), "evil\\u{202e}txt.exe");
        assert_eq!(sanitize("\u{feff}x\u{200b}"), "\\u{feff}x\\u{200b}");
        assert_eq!(sanitize("a\u{2028}b\u{61c}"), "a\\u{2028}b\\u{61c}");
        assert!(matches!(sanitize("plain é ü 日本 ␛"), Cow::Borrowed(_)));
        // Idempotent.
        let once = sanitize(feodo).into_owned();
        assert_eq!(sanitize(&once), once);
    }

    #[test]
    fn clip_counts_escapes_and_never_cuts_one() {
        assert_eq!(clip("abc", 3), "abc");
        assert_eq!(clip("abcd", 3), "ab…");
        assert_eq!(clip("", 0), "");
        assert_eq!(clip("é日本語", 10), "é日本語");
        assert_eq!(clip("日本語テキスト", 4), "日本語…");
        // `\u{1b}` is 6 characters: it fits whole or not at all.
        assert_eq!(clip("\u{1b}", 6), "\\u{1b}");
        assert_eq!(clip("a\u{1b}", 6), "a…");
        assert_eq!(clip("a\u{1b}b", 8), "a\\u{1b}b");
        assert_eq!(clip("a\u{1b}bc", 8), "a\\u{1b}…");
        for s in ["x\u{1b}[31mred", "日本\u{7}語", "\u{10ffff}\u{202e}"] {
            for max in 0..20 {
                let c = clip(s, max);
                assert!(c.chars().count() <= max.max(1), "{s:?} {max}: {c:?}");
                assert!(!c.chars().any(needs_escape), "{c:?}");
            }
        }
        assert_eq!(format!("{}", Clean("a\u{7}")), "a\\u{7}");
    }

    #[test]
    fn clip_middle_keeps_both_ends() {
        assert_eq!(clip_middle("192.0.2.7", 20), "192.0.2.7");
        let u = "https://www.example.org/a/very/long/path/login.php";
        let c = clip_middle(u, 24);
        assert_eq!(c.chars().count(), 24, "{c}");
        assert!(
            c.starts_with("https://www.") && c.ends_with("login.php"),
            "{c}"
        );
        let e = clip_middle("ab\u{1b}cdefghijklmnopqrstuvwxyz\u{1b}", 12);
        assert!(!e.contains('\u{1b}') && e.chars().count() <= 12, "{e}");
        assert!(e.matches("\\u{").count() <= 2, "{e}");
    }
}
