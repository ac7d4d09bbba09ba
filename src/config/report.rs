//! TOML errors as people read them: where (line, column), which key, what is wrong, and the
//! line quoted with a caret under the place.
//!
//! ```text
//! line 2, column 8: `organisation.asns`: `x` is not an AS number (write 64496 or "AS64496")
//!   2 | asns = ["x"]
//!     |        ^^^^^
//! ```
//!
//! The quoted line is the user's own file, but it is still passed through
//! [`crate::text::sanitize`] (a control character shows as `\u{1b}`) and the caret is placed
//! under the sanitised text; a long line is shown as a window around the place.

use std::fmt::Write as _;
use std::ops::Range;

use toml::de::{DeTable, DeValue};

use crate::text::sanitize;

/// Characters of a quoted line shown before the place, when the line is too long to show.
const BEFORE: usize = 30;
/// Characters of a quoted line shown from the place on, when the line is too long to show.
const AFTER: usize = 60;

/// `e` (an error of parsing or deserialising `text`) as a readable message: the first line
/// `line L, column C: `key`: message`, then the line of `text` with a caret under the place.
/// Without a place, the message alone.
pub fn toml_error(text: &str, e: &toml::de::Error) -> String {
    let Some(span) = e.span().filter(|s| s.start <= text.len()) else {
        return e.to_string().trim_end().to_string();
    };
    let at = floor_boundary(text, span.start);
    let line_start = text[..at].rfind('\n').map_or(0, |i| i + 1);
    let line_end = text[at..].find('\n').map_or(text.len(), |i| at + i);
    let line_no = text[..line_start].matches('\n').count() + 1;
    let content = text[line_start..line_end].trim_end_matches('\r');
    let before = &text[line_start..at];
    let column = before.chars().count() + 1;
    let mut out = format!("line {line_no}, column {column}: ");
    if let Some(key) = key_at(text, span.start) {
        let _ = write!(out, "`{}`: ", sanitize(&key));
    }
    out.push_str(e.message().trim_end());
    let end = floor_boundary(text, span.end.min(line_start + content.len()).max(at));
    let marked = text[at..end].chars().count().max(1);
    out.push('\n');
    out.push_str(&excerpt(line_no, content, before.chars().count(), marked));
    out
}

/// The line quoted with carets under `marked` characters from character `column` (0-based).
fn excerpt(line_no: usize, content: &str, column: usize, marked: usize) -> String {
    let chars: Vec<char> = content.chars().collect();
    let (from, to) = if chars.len() > BEFORE + AFTER {
        let from = column.saturating_sub(BEFORE);
        (from, (column + AFTER).min(chars.len()).max(from))
    } else {
        (0, chars.len())
    };
    let shown: String = chars[from..to].iter().collect();
    let lead: String = chars[from..column.min(to)].iter().collect();
    let open = if from > 0 { "…" } else { "" };
    let close = if to < chars.len() { "…" } else { "" };
    let marked = marked.min(to.saturating_sub(column).max(1));
    let gutter = line_no.to_string().len();
    format!(
        "  {line_no} | {open}{}{close}\n  {:gutter$} | {open}{}{}",
        sanitize(&shown),
        "",
        " ".repeat(sanitize(&lead).chars().count()),
        "^".repeat(marked),
    )
}

/// The dotted key (`organisation.asns`, `sources.urlhaus.schedule`) whose key or value holds
/// byte `pos` of `text`, if the document can be read that far.
fn key_at(text: &str, pos: usize) -> Option<String> {
    let (doc, _) = DeTable::parse_recoverable(text);
    let mut path = Vec::new();
    find(doc.get_ref(), pos, &mut path).then(|| path.join("."))
}

fn find(t: &DeTable<'_>, pos: usize, path: &mut Vec<String>) -> bool {
    for (k, v) in t.iter() {
        path.push(k.get_ref().to_string());
        let here = holds(k.span(), pos) || holds(v.span(), pos);
        let inside = match v.get_ref() {
            DeValue::Table(sub) => find(sub, pos, path),
            DeValue::Array(items) => items.iter().any(|item| match item.get_ref() {
                DeValue::Table(sub) => find(sub, pos, path),
                _ => false,
            }),
            _ => false,
        };
        if inside || here {
            return true;
        }
        path.pop();
    }
    false
}

fn holds(span: Range<usize>, pos: usize) -> bool {
    span.contains(&pos) || span.start == pos
}

/// The largest character boundary of `text` at or before `i`.
fn floor_boundary(text: &str, i: usize) -> usize {
    let mut i = i.min(text.len());
    while !text.is_char_boundary(i) {
        i -= 1;
    }
    i
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Doc {
        organisation: Org,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Org {
        #[serde(default)]
        name: String,
        #[serde(default)]
        asns: Vec<u32>,
    }

    fn error(text: &str) -> String {
        let e = toml::from_str::<Doc>(text).unwrap_err();
        toml_error(text, &e)
    }

    #[test]
    fn names_line_column_key_and_marks_the_place() {
        let e = error("[organisation]\nname = \"x\"\nasns = [1, \"x\"]\n");
        let lines: Vec<&str> = e.lines().collect();
        assert_eq!(lines.len(), 3, "{e}");
        assert!(
            lines[0].starts_with("line 3, column 12: `organisation.asns`: "),
            "{e}"
        );
        assert_eq!(lines[1], "  3 | asns = [1, \"x\"]");
        assert_eq!(lines[2], "    |            ^^^");
        assert!(
            !e.contains("\\u{a}") && !e.contains("TOML parse error"),
            "{e}"
        );
    }

    #[test]
    fn an_unknown_key_is_named_with_its_table() {
        let e = error("[organisation]\nnme = \"x\"\n");
        assert!(
            e.starts_with("line 2, column 1: `organisation.nme`: unknown field `nme`"),
            "{e}"
        );
        assert!(e.ends_with("  2 | nme = \"x\"\n    | ^^^"), "{e}");
    }

    #[test]
    fn a_syntax_error_still_has_its_place() {
        let e = error("[organisation]\nasns = [64496\n");
        assert!(e.starts_with("line 2, column 14: "), "{e}");
        assert!(e.contains("unclosed array"), "{e}");
        assert!(
            e.ends_with("  2 | asns = [64496\n    |              ^"),
            "{e}"
        );
    }

    #[test]
    fn control_characters_are_escaped_and_the_caret_follows() {
        let e = error("[organisation]\nname = \"\u{1b}[31m\"\nasns = \"x\"\n");
        assert!(!e.contains('\u{1b}'), "{e}");
        let e = error("[organisation]\nname = \"\t\"; asns = 1\n");
        assert!(!e.contains('\t'), "{e}");
        let lines: Vec<&str> = e.lines().collect();
        let quoted = lines[1].find('|').unwrap();
        let caret = lines[2].find('^').unwrap();
        // The caret stands under the `;` where the parser stopped, past the escaped tab.
        assert_eq!(&lines[1][caret..caret + 1], ";", "{e}");
        assert!(caret > quoted, "{e}");
    }

    #[test]
    fn a_long_line_is_shown_around_the_place() {
        let long = format!("[organisation]\nasns = [{}\"x\"]\n", "64496, ".repeat(100));
        let e = error(&long);
        let lines: Vec<&str> = e.lines().collect();
        assert!(lines[1].chars().count() < 110, "{e}");
        assert!(
            lines[1].contains("| …") && lines[1].ends_with("\"x\"]"),
            "{e}"
        );
        let caret = lines[2].find('^').unwrap();
        assert_eq!(&lines[1][caret..caret + 3], "\"x\"", "{e}");
    }
}
