//! `outwatch ack`, `resolve` and `note`: triage on a finding (fingerprint or its start) or on
//! every open finding a lookup query matches (`src/triage/actions.rs`).

use std::process::ExitCode;

use serde_json::json;

use crate::app::App;
use crate::cli::{AckArgs, NoteArgs, ResolveArgs, TriageCommon};
use crate::config::suppress::check_text;
use crate::error::CliError;
use crate::finding::{Finding, Triage};
use crate::outln;
use crate::output::{print_json, thousands};
use crate::text::{clip, clip_middle, sanitize};
use crate::triage::actions::{self, Action, Selection, Target, TargetError};

pub(crate) fn ack(app: &App, a: &AckArgs) -> Result<ExitCode, CliError> {
    let action = if a.undo { Action::Unack } else { Action::Ack };
    run(
        app,
        &a.target,
        action,
        a.reason.as_deref().unwrap_or(""),
        &a.common,
    )
}

pub(crate) fn resolve(app: &App, a: &ResolveArgs) -> Result<ExitCode, CliError> {
    run(app, &a.target, Action::Resolve, &a.reason, &a.common)
}

pub(crate) fn note(app: &App, a: &NoteArgs) -> Result<ExitCode, CliError> {
    run(app, &a.target, Action::Note, &a.text, &a.common)
}

/// A time for people: `2027-02-01 00:00 UTC`.
pub(crate) fn when(t: chrono::DateTime<chrono::Utc>) -> String {
    t.format("%Y-%m-%d %H:%M UTC").to_string()
}

/// `--by`, else `$USER` / `$LOGNAME`, checked.
pub(crate) fn author(by: Option<&str>) -> Result<String, CliError> {
    let by = match by {
        Some(b) => b.trim().to_string(),
        None => crate::triage::default_author().ok_or_else(|| {
            CliError::usage("who is acting? give --by NAME ($USER and $LOGNAME are not set)")
        })?,
    };
    check_text("--by", &by, true).map_err(CliError::usage)?;
    Ok(by)
}

fn run(
    app: &App,
    target: &str,
    action: Action,
    text: &str,
    c: &TriageCommon,
) -> Result<ExitCode, CliError> {
    let target_text = target.trim();
    let target: Target = target_text.parse().map_err(CliError::usage)?;
    let what = if action == Action::Note {
        "the note"
    } else {
        "--reason"
    };
    check_text(what, text, action != Action::Unack).map_err(CliError::usage)?;
    let t = Triage {
        by: author(c.by.as_deref())?,
        text: text.trim().to_string(),
    };
    app.require_store()?;
    // A dry run only reads (through the daemon when it runs); a change opens the store for
    // writing, as `import` does.
    let store = if c.dry_run {
        app.open_read()?
    } else {
        app.open_store()?
    };
    let sel = actions::select(store.as_ref(), &target, action).map_err(|e| match e {
        TargetError::Store(s) => CliError::from(s),
        e => CliError::usage(e),
    })?;
    let fps = sel.fingerprints();
    let changed = if c.dry_run || fps.is_empty() {
        0
    } else {
        let n = actions::apply(store.as_ref(), &fps, action, &t, app.clock.now())?;
        store.flush()?;
        n
    };
    if c.json {
        print_json(&json!({
            "action": action_name(action),
            "dry_run": c.dry_run,
            "by": t.by,
            "text": t.text,
            "matched": sel.matched(),
            "changed": changed,
            "findings": sel.apply.iter().map(|(fp, indicator)| json!({
                "fingerprint": fp, "indicator": indicator})).collect::<Vec<_>>(),
            "skipped": sel.skipped,
            "skipped_shown": sel.skipped_shown.iter().map(|(f, why)| json!({
                "fingerprint": f.fingerprint, "indicator": f.indicator(),
                "why": why})).collect::<Vec<_>>(),
        }))?;
    } else if sel.matched() == 0 {
        outln!(
            "no open finding matches `{}`: nothing changed",
            sanitize(target_text)
        );
    } else {
        print_text(action, c.dry_run, &t, &sel, changed)?;
    }
    Ok(ExitCode::SUCCESS)
}

fn action_name(a: Action) -> &'static str {
    match a {
        Action::Ack => "ack",
        Action::Unack => "unack",
        Action::Resolve => "resolve",
        Action::Note => "note",
    }
}

fn print_text(
    action: Action,
    dry_run: bool,
    t: &Triage,
    sel: &Selection,
    changed: usize,
) -> Result<(), CliError> {
    let why = if t.text.is_empty() {
        String::new()
    } else {
        format!(": {}", clip(&t.text, 200))
    };
    let head = if dry_run {
        format!(
            "dry run, nothing changed: {} {} finding(s) as {}{why}",
            action.would(),
            thousands(sel.apply.len()),
            sanitize(&t.by)
        )
    } else {
        format!(
            "{} {} finding(s) by {}{why}",
            action.done(),
            thousands(changed),
            sanitize(&t.by)
        )
    };
    for l in crate::output::wrapped(&head, "", "  ") {
        outln!("{l}");
    }
    for f in &sel.shown {
        for l in crate::output::wrapped(&line_of(f), "  ", "      ") {
            outln!("{l}");
        }
    }
    if sel.apply.len() > sel.shown.len() {
        outln!(
            "  … and {} more",
            thousands(sel.apply.len() - sel.shown.len())
        );
    }
    if sel.skipped > 0 {
        outln!("skipped {} finding(s):", thousands(sel.skipped));
        for (f, why) in &sel.skipped_shown {
            let l = format!("{} ({why})", line_of(f));
            for l in crate::output::wrapped(&l, "  ", "      ") {
                outln!("{l}");
            }
        }
        if sel.skipped > sel.skipped_shown.len() {
            outln!(
                "  … and {} more",
                thousands(sel.skipped - sel.skipped_shown.len())
            );
        }
    }
    Ok(())
}

/// `3f9c2a1b4d  high  192.0.2.7:3389  vulnerable-system (shadowserver scan_rdp)`.
fn line_of(f: &Finding) -> String {
    format!(
        "{}  {}  {}  {} ({} {})",
        &f.fingerprint[..f.fingerprint.len().min(10)],
        f.severity,
        clip_middle(&f.indicator(), 40),
        clip(&f.classification.kind, 40),
        clip(&f.source, 30),
        clip(&f.feed, 40)
    )
}

/// What `lookup` prints under its table: for each shown finding that people triaged or a rule
/// suppresses, the rule and every triage entry of its history (who, when, why), oldest first.
pub(crate) fn print_triage(
    findings: &[Finding],
    supp: &crate::triage::Suppressions,
) -> Result<(), CliError> {
    let mut heading = false;
    for f in findings {
        let rule = supp.matches(f);
        let entries: Vec<_> = f
            .history
            .iter()
            .filter(|h| h.event.triage().is_some())
            .collect();
        if rule.is_none() && entries.is_empty() {
            continue;
        }
        if !heading {
            outln!("Triage:");
            heading = true;
        }
        outln!(
            "  {} ({})",
            clip_middle(&f.indicator(), 60),
            &f.fingerprint[..f.fingerprint.len().min(10)]
        );
        if let Some(r) = rule {
            let text = format!(
                "suppressed by rule {} until {}: {} ({})",
                sanitize(&r.id),
                when(r.until),
                clip(&r.reason, 200),
                clip(&r.by, 60)
            );
            for l in crate::output::wrapped(&text, "    ", "      ") {
                outln!("{l}");
            }
        }
        for h in entries {
            let Some(t) = h.event.triage() else { continue };
            let what = h.event.as_str();
            let text = format!(
                "{}  {what} by {}{}",
                when(h.at),
                clip(&t.by, 60),
                if t.text.is_empty() {
                    String::new()
                } else {
                    format!(": {}", clip(&t.text, 1000))
                }
            );
            for l in crate::output::wrapped(&text, "    ", "      ") {
                outln!("{l}");
            }
        }
    }
    Ok(())
}

/// A finding as `lookup --json` writes it: its one serialised shape, plus `suppressed` (the
/// rule) when a rule in force covers it.
pub(crate) fn finding_json(f: &Finding, supp: &crate::triage::Suppressions) -> Option<String> {
    let r = supp.matches(f)?;
    // The finding's own JSON object, its fields in their order, with one more at its end.
    let mut s = serde_json::to_string(f).ok()?;
    s.pop();
    s.push_str(",\"suppressed\":");
    s.push_str(
        &json!({"rule": r.id, "until": crate::output::rfc3339(r.until),
            "reason": r.reason, "by": r.by})
        .to_string(),
    );
    s.push('}');
    Some(s)
}
