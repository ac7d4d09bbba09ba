//! Rendering the digest with minijinja: `subject.txt`, `digest.txt` and `digest.html`.
//!
//! The built-in templates are compiled in (`include_str!`); a file of the same name in the
//! user's template folder (`[digest] templates`) replaces it, read at run time, so the mail can
//! be changed without recompiling. Templates ending in `.html` are auto-escaped: feed content
//! is attacker-controlled.

use std::path::Path;

use minijinja::syntax::SyntaxConfig;
use minijinja::value::Serde;
use minijinja::{Environment, path_loader};
use serde::Serialize;

use super::build::{ActItem, HealthView, SectionView, TrendDay};

/// The templates and their built-in text.
pub(crate) const BUILTIN: [(&str, &str); 3] = [
    ("subject.txt", include_str!("../../templates/subject.txt")),
    ("digest.txt", include_str!("../../templates/digest.txt")),
    ("digest.html", include_str!("../../templates/digest.html")),
];

/// Exact counts of one digest.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Counts {
    pub new: usize,
    pub open: usize,
    pub resolved: usize,
}

/// Everything a template can use (documented in docs/digest.md).
#[derive(Debug, Clone, Serialize)]
pub(crate) struct DigestView {
    /// `[organisation] name`.
    pub organisation: String,
    /// `[digest] subject`: the title / subject prefix.
    pub title: String,
    /// The route's name for a routed digest; `None` for the main one.
    pub audience: Option<String>,
    /// The rendered subject (available to the body templates).
    pub subject: String,
    pub generated: String,
    /// When the previous digest to this audience was delivered; `None` for the first one.
    pub since: Option<String>,
    pub counts: Counts,
    /// Whether anything is new or resolved.
    pub changed: bool,
    /// Feed health, problems first.
    pub health: Vec<HealthView>,
    /// Number of sources whose state is not `ok`.
    pub health_problems: usize,
    pub health_error: Option<String>,
    /// The critical and high findings (new, then open) to act on first, at most
    /// [`super::build::ACT_FIRST`]; `act_total` counts them all.
    pub act_first: Vec<ActItem>,
    pub act_total: usize,
    /// The `outwatch list` command that shows every critical and high finding in rank order.
    pub act_command: String,
    /// New / open / resolved per day, the last 14 days, oldest first.
    pub trend: Vec<TrendDay>,
    /// New, still open, resolved (each with severities → categories → findings).
    pub sections: Vec<SectionView>,
    /// "Your own traffic": the flow findings, new and open (not in `sections`).
    pub traffic: super::traffic::TrafficView,
    /// Suppression rules ending within 7 days (`src/triage/suppress.rs`).
    pub expiring: Vec<crate::triage::suppress::Expiring>,
    /// What `outwatch notify` mailed to the owners of our addresses since the last digest
    /// (the owner's digest only).
    pub notified: Option<NotifiedView>,
}

/// The mails to contacts since the last digest, as the templates show them.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct NotifiedView {
    pub mails: Vec<MailedView>,
    /// All of them (more than are listed when over `mail_log::SHOWN`).
    pub total: usize,
    /// Open findings the last `notify --send` found no contact for (0: none).
    pub no_contact: usize,
    /// The first of them in rank order, as of that run.
    pub no_contact_listed: Vec<NoContactView>,
    /// When that run was.
    pub no_contact_at: String,
    /// The `outwatch list` command that shows them all.
    pub no_contact_command: String,
}

/// One finding without a contact.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct NoContactView {
    pub severity: String,
    pub what: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub source: String,
    pub observed: String,
}

/// One mail to a contact.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct MailedView {
    pub contact: String,
    pub to: String,
    pub at: String,
    pub ticket: String,
    pub findings: usize,
}

impl NotifiedView {
    /// The view of these mails and of the findings without a contact (`None` when there is
    /// neither).
    pub(crate) fn of(
        mails: &[super::mail_log::Mailed],
        total: usize,
        no_contact: Option<&super::mail_log::NoContact>,
        tz: Option<chrono_tz::Tz>,
    ) -> Option<Self> {
        let none = no_contact.map_or(0, |n| n.findings);
        (total > 0 || none > 0).then(|| NotifiedView {
            no_contact: none,
            no_contact_listed: no_contact
                .map(|n| {
                    n.listed
                        .iter()
                        .map(|i| NoContactView {
                            severity: i.severity.to_string(),
                            what: i.what.clone(),
                            kind: i.kind.clone(),
                            source: i.source.clone(),
                            observed: super::build::fmt_time(i.observed, tz),
                        })
                        .collect()
                })
                .unwrap_or_default(),
            no_contact_at: no_contact
                .map(|n| super::build::fmt_time(n.at, tz))
                .unwrap_or_default(),
            no_contact_command: super::more::more_command(&super::more::ListFilter {
                no_contact: true,
                ..Default::default()
            }),
            mails: mails
                .iter()
                .map(|m| MailedView {
                    contact: m.contact.clone(),
                    to: m.to.join(", "),
                    at: super::build::fmt_time(m.at, tz),
                    ticket: m.ticket.clone(),
                    findings: m.findings,
                })
                .collect(),
            total,
        })
    }
}

/// A rendered digest.
#[derive(Debug, Clone)]
pub struct Rendered {
    pub subject: String,
    pub text: String,
    pub html: String,
}

/// Why templates could not be loaded or filled (shown with its causes by
/// [`crate::text::chain`]; a template's own error is written out in full, with its line).
#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    #[error("the template syntax: {0}")]
    Syntax(minijinja::Error),
    #[error("cannot read template {}", path.display())]
    Read {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A template that does not compile (`at`: its file, or `built-in NAME`).
    #[error("template {at}: {error}")]
    Compile { at: String, error: minijinja::Error },
    /// A template that fails while it is filled.
    #[error("template {name}: {error:#}")]
    Render {
        name: String,
        error: minijinja::Error,
    },
}

/// A template environment with outwatch's syntax (blocks trimmed, the trailing newline kept):
/// the `builtin` templates, each replaced by a same-named file in `dir` when there is one, and
/// the other files of `dir` loaded when asked for (`{% include %}`, other languages). The
/// digest's and the notification mails' templates are read so.
pub(crate) fn environment(
    builtin: &[(&'static str, &'static str)],
    dir: Option<&Path>,
) -> Result<Environment<'static>, TemplateError> {
    let mut env = Environment::new();
    let syntax = SyntaxConfig::builder()
        .trim_blocks(true)
        .lstrip_blocks(true)
        .keep_trailing_newline(true)
        .build()
        .map_err(TemplateError::Syntax)?;
    env.set_syntax(syntax);
    for &(name, text) in builtin {
        let over = dir.map(|d| d.join(name)).filter(|p| p.is_file());
        let source = match &over {
            Some(p) => std::fs::read_to_string(p).map_err(|source| TemplateError::Read {
                path: p.clone(),
                source,
            })?,
            None => text.to_string(),
        };
        env.add_template_owned(name, source)
            .map_err(|error| TemplateError::Compile {
                at: over
                    .as_ref()
                    .map_or_else(|| format!("built-in {name}"), |p| p.display().to_string()),
                error,
            })?;
    }
    if let Some(d) = dir {
        env.set_loader(path_loader(d));
    }
    Ok(env)
}

/// The template environment.
pub(crate) struct Renderer {
    env: Environment<'static>,
}

impl Renderer {
    /// Loads the built-in templates, replaced by same-named files in `dir` when present. Other
    /// files in `dir` can be `{% include %}`d.
    pub(crate) fn new(dir: Option<&Path>) -> Result<Self, TemplateError> {
        Ok(Renderer {
            env: environment(&BUILTIN, dir)?,
        })
    }

    /// Renders the subject (one line), the text part and the HTML part.
    pub(crate) fn render(&self, view: &mut DigestView) -> Result<Rendered, TemplateError> {
        let r = |name: &str, v: &DigestView| -> Result<String, TemplateError> {
            self.env
                .get_template(name)
                .and_then(|t| t.render(Serde(v)))
                .map_err(|error| TemplateError::Render {
                    name: name.to_string(),
                    error,
                })
        };
        let subject = r("subject.txt", view)?;
        let subject = subject.split_whitespace().collect::<Vec<_>>().join(" ");
        view.subject = subject.clone();
        Ok(Rendered {
            text: wrap_text(&r("digest.txt", view)?, super::TEXT_COLUMNS),
            html: r("digest.html", view)?,
            subject,
        })
    }
}

/// Wraps every line of the text part longer than `width` columns: words move to the next
/// line, indented two more than the line they continue; a word longer than a line is cut. A
/// line that is an `outwatch` command is broken before a `--flag` only, with a trailing `\`,
/// so it still pastes into a shell as one command.
pub(crate) fn wrap_text(text: &str, width: usize) -> String {
    use textwrap::core::display_width;
    let mut out = String::with_capacity(text.len() + text.len() / 16);
    for line in text.split_inclusive('\n') {
        let (body, nl) = match line.strip_suffix('\n') {
            Some(b) => (b, "\n"),
            None => (line, ""),
        };
        if display_width(body) <= width {
            out.push_str(line);
            continue;
        }
        let indent = body.len() - body.trim_start_matches(' ').len();
        let lead = " ".repeat(indent.min(width / 2));
        let next = " ".repeat((indent + 2).min(width / 2));
        let trimmed = body.trim_start_matches(' ');
        let lines: Vec<String> = if trimmed.starts_with("outwatch ") {
            command_lines(trimmed, width, &lead, &next)
        } else {
            let opts = textwrap::Options::new(width)
                .initial_indent(&lead)
                .subsequent_indent(&next)
                .break_words(true)
                .word_splitter(textwrap::WordSplitter::NoHyphenation);
            textwrap::wrap(trimmed, opts)
                .into_iter()
                .map(|c| c.trim_end().to_string())
                .collect()
        };
        out.push_str(&lines.join("\n"));
        out.push_str(nl);
    }
    out
}

/// A command split before its `--flags` into lines of at most `width` columns, each but the
/// last ending in ` \`.
fn command_lines(cmd: &str, width: usize, lead: &str, next: &str) -> Vec<String> {
    use textwrap::core::display_width;
    let mut parts: Vec<&str> = Vec::new();
    let mut rest = cmd;
    while let Some(i) = rest[1..].find(" --").map(|i| i + 1) {
        parts.push(&rest[..i]);
        rest = &rest[i + 1..];
    }
    parts.push(rest);
    let mut lines: Vec<String> = Vec::new();
    let mut cur = lead.to_string();
    let mut fresh = true;
    for p in parts {
        if !fresh && display_width(&cur) + 1 + display_width(p) + 2 > width {
            lines.push(format!("{cur} \\"));
            cur = next.to_string();
            fresh = true;
        }
        if !fresh {
            cur.push(' ');
        }
        cur.push_str(p);
        fresh = false;
    }
    lines.push(cur);
    lines
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::health::{HealthState, SourceHealth};

    /// A digest with nothing but feed health.
    fn view(
        health: Vec<super::super::build::HealthView>,
        health_problems: usize,
        since: Option<String>,
    ) -> DigestView {
        DigestView {
            organisation: "Org".into(),
            title: "outwatch digest".into(),
            audience: None,
            subject: String::new(),
            generated: "now".into(),
            since,
            counts: Counts::default(),
            changed: false,
            health_problems,
            health,
            health_error: None,
            act_first: vec![],
            act_total: 0,
            act_command: String::new(),
            trend: vec![],
            sections: vec![],
            traffic: Default::default(),
            expiring: vec![],
            notified: None,
        }
    }

    fn health(name: &str, state: HealthState, err: Option<&str>) -> SourceHealth {
        SourceHealth {
            name: name.into(),
            state,
            last_success: None,
            last_error: err.map(str::to_string),
            last_run: None,
            last_rows: Some(3),
            warnings: vec![],
            notes: vec![],
        }
    }

    /// A note of a healthy source (an organisation domain HIBP does not search) reaches the
    /// reader once in each part, escaped, without counting as a feed problem.
    #[test]
    fn notes_of_healthy_sources_are_shown() {
        let mut h = health("hibp", HealthState::Ok, None);
        h.notes = vec!["<i>other.example</i> is not verified on the HIBP account".into()];
        let mut v = view(super::super::build::health_views(vec![h], None), 0, None);
        let r = Renderer::new(None).unwrap().render(&mut v).unwrap();
        assert_eq!(
            r.text
                .matches("Note from hibp: <i>other.example</i> is not verified")
                .count(),
            1,
            "{}",
            r.text
        );
        assert_eq!(r.html.matches("is not verified on the HIBP").count(), 1);
        assert!(r.html.contains("&lt;i&gt;other.example") && !r.html.contains("<i>other"));
        assert!(!r.subject.contains("problem"), "{}", r.subject);
    }

    #[test]
    fn feed_problems_come_first_and_are_escaped() {
        let h = super::super::build::health_views(
            vec![
                health("aaa-ok", HealthState::Ok, None),
                health("hibp", HealthState::Failing, Some("<b>HTTP 500</b>")),
            ],
            None,
        );
        assert_eq!(h[0].name, "hibp");
        let mut v = view(h, 1, Some("then".into()));
        let r = Renderer::new(None).unwrap().render(&mut v).unwrap();
        assert_eq!(
            r.subject,
            "outwatch digest for Org: 0 new, 0 open, 0 resolved, 1 feed problem"
        );
        let problems = r.text.find("FEED PROBLEMS").unwrap();
        assert!(problems < r.text.find("Summary").unwrap());
        assert!(r.text.contains("hibp: failing, never succeeded"));
        assert!(r.text.contains("last error: <b>HTTP 500</b>"));
        assert!(r.html.contains("&lt;b&gt;HTTP 500&lt;"));
        assert!(r.html.find("Feed problems").unwrap() < r.html.find("still open").unwrap());
    }

    #[test]
    fn each_feed_problem_is_said_once() {
        let mut h = health(
            "urlhaus",
            HealthState::Failing,
            Some("HTTP 503 from the mirror"),
        );
        h.warnings = vec![
            "the last 3 run(s) failed (since 2026-11-30 07:00 UTC): HTTP 503 from the mirror"
                .into(),
            "has never succeeded".into(),
        ];
        let h = super::super::build::health_views(vec![h], None);
        assert!(h[0].error_in_warnings);
        let mut v = view(h, 1, None);
        let r = Renderer::new(None).unwrap().render(&mut v).unwrap();
        // The text part is wrapped at 78 columns: compare words.
        let words = r.text.split_whitespace().collect::<Vec<_>>().join(" ");
        assert_eq!(
            words.matches("HTTP 503 from the mirror").count(),
            1,
            "{}",
            r.text
        );
        assert_eq!(
            r.html.matches("HTTP 503 from the mirror").count(),
            1,
            "{}",
            r.html
        );
        assert_eq!(r.text.matches("never succeeded").count(), 1, "{}", r.text);
    }

    #[test]
    fn text_is_wrapped_and_commands_stay_runnable() {
        let cmd = "outwatch list --status open --severity high --class \
                   vulnerable/vulnerable-system --team dmz --until 2026-12-06T07:00:00Z --sort rank";
        let long = format!(
            "  What to do: {} end\n      {cmd}\nshort\n{}\n",
            "word ".repeat(30),
            "x".repeat(200)
        );
        let w = wrap_text(&long, 78);
        for l in w.lines() {
            assert!(l.chars().count() <= 78, "{l:?}");
        }
        assert!(w.contains("\nshort\n"));
        assert!(w.lines().nth(1).unwrap().starts_with("    word"), "{w}");
        // The command: broken before flags, continued with a backslash, same words.
        let cmd_lines: Vec<&str> = w
            .lines()
            .skip_while(|l| !l.contains("outwatch list"))
            .take_while(|l| l.trim_start().starts_with("--") || l.contains("outwatch list"))
            .collect();
        assert!(cmd_lines.len() >= 2, "{w}");
        assert!(
            cmd_lines[..cmd_lines.len() - 1]
                .iter()
                .all(|l| l.ends_with(" \\"))
        );
        let joined = cmd_lines
            .iter()
            .map(|l| l.trim().trim_end_matches('\\').trim())
            .collect::<Vec<_>>()
            .join(" ");
        assert_eq!(joined, cmd);
        // A line that fits is left alone.
        assert_eq!(wrap_text("a b\n", 78), "a b\n");
    }
}
