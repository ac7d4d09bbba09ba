//! `outwatch suppress add|list|remove`: suppression rules (`src/triage/suppress.rs`).

use std::process::ExitCode;

use comfy_table::Cell;
use ipnet::IpNet;
use serde_json::json;

use crate::app::App;
use crate::cli::{SuppressAddArgs, SuppressArgs, SuppressCommand, SuppressRemoveArgs};
use crate::config::suppress::{Until, check_text};
use crate::config::{Asn, DomainName};
use crate::error::CliError;
use crate::outln;
use crate::output::{print_json, table, thousands};
use crate::text::{clip, sanitize};
use crate::triage::suppress::{self, Origin, Rule, Suppressions};

use super::triage::{author, when};

pub(crate) fn run(app: &App, a: &SuppressArgs) -> Result<ExitCode, CliError> {
    match &a.command {
        SuppressCommand::Add(a) => add(app, a),
        SuppressCommand::List(j) => list(app, j.json),
        SuppressCommand::Remove(a) => remove(app, a),
    }
}

fn add(app: &App, a: &SuppressAddArgs) -> Result<ExitCode, CliError> {
    let now = app.clock.now();
    let usage = CliError::usage;
    let cidr = a
        .cidr
        .as_deref()
        .map(|c| {
            c.trim().parse::<IpNet>().map_err(|_| {
                usage(format!(
                    "--cidr `{}` is not a prefix (write it like 192.0.2.0/24)",
                    sanitize(c)
                ))
            })
        })
        .transpose()?;
    if let Some(c) = cidr
        && c.trunc() != c
    {
        eprintln!("note: --cidr {c} has host bits set; taken as {}", c.trunc());
    }
    let asn = a
        .asn
        .as_deref()
        .map(|s| s.parse::<Asn>().map_err(|e| usage(format!("--asn: {e}"))))
        .transpose()?;
    let domain = a
        .domain
        .as_deref()
        .map(|s| {
            s.parse::<DomainName>()
                .map_err(|e| usage(format!("--domain: {e}")))
        })
        .transpose()?;
    let until = Until::parse(&a.until, Some(now)).map_err(|e| usage(format!("--until: {e}")))?;
    if until.0 <= now {
        return Err(usage(format!(
            "--until {} is not in the future: the rule would suppress nothing",
            until
        )));
    }
    check_text("--reason", &a.reason, true).map_err(CliError::usage)?;
    for (k, v) in [
        ("--source", &a.source),
        ("--feed", &a.feed),
        ("--identifier", &a.identifier),
    ] {
        if let Some(v) = v {
            check_text(k, v, true).map_err(CliError::usage)?;
        }
    }
    let by = author(a.by.as_deref())?;
    let rule = Rule {
        id: String::new(),
        origin: Origin::Store,
        cidr: cidr.map(|c| c.trunc()),
        asn: asn.map(|a| a.0),
        domain: domain.map(|d| d.0),
        source: a.source.as_ref().map(|s| s.trim().to_string()),
        feed: a.feed.as_ref().map(|s| s.trim().to_string()),
        identifier: a.identifier.as_ref().map(|s| s.trim().to_string()),
        port: a.port,
        until: until.0,
        reason: a.reason.trim().to_string(),
        by,
        created: None,
    };
    app.require_store()?;
    let store = app.open_store()?;
    let rule = suppress::add(store.as_ref(), rule, now)?;
    store.flush()?;
    let covered = suppress::count_covered(store.as_ref(), &rule)?;
    if a.json {
        print_json(&json!({"rule": rule, "covered": covered}))?;
    } else {
        outln!(
            "suppression rule {} added: {} until {}",
            rule.id,
            sanitize(&rule.describe()),
            when(rule.until)
        );
        outln!(
            "  why: {} (by {})",
            clip(&rule.reason, 200),
            sanitize(&rule.by)
        );
        outln!(
            "  {} open finding(s) match it now: they stay in the store, out of the digest",
            thousands(covered)
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn list(app: &App, json_out: bool) -> Result<ExitCode, CliError> {
    app.require_store()?;
    let store = app.open_read()?;
    let now = app.clock.now();
    let s = Suppressions::load(store.as_ref(), app.config.as_ref(), now)?;
    if json_out {
        let rules: Vec<_> = s
            .rules()
            .iter()
            .map(|r| {
                let mut v = serde_json::to_value(r).unwrap_or_default();
                v["expired"] = json!(!r.active(now));
                v
            })
            .collect();
        print_json(&json!({ "rules": rules }))?;
        return Ok(ExitCode::SUCCESS);
    }
    if s.rules().is_empty() {
        outln!("no suppression rules (`outwatch suppress add`, or [[suppress]] in the config)");
        return Ok(ExitCode::SUCCESS);
    }
    let mut t = table(&["id", "matches", "until", "why (by)"]);
    crate::output::style_table(&mut t, crate::style::stdout_colour());
    for r in s.rules() {
        let until = if r.active(now) {
            when(r.until)
        } else {
            format!("{}\nEXPIRED", when(r.until))
        };
        t.add_row(vec![
            Cell::new(&r.id),
            Cell::new(clip(&r.describe(), 120)),
            Cell::new(until),
            Cell::new(format!("{} ({})", clip(&r.reason, 200), clip(&r.by, 60))),
        ]);
    }
    crate::output::keep_whole(&mut t, &[0, 2]);
    outln!("{t}");
    let expired = s.rules().iter().filter(|r| !r.active(now)).count();
    outln!(
        "{} rule(s), {} in force{}",
        s.rules().len(),
        s.rules().len() - expired,
        if expired > 0 {
            "; expired ones match nothing (`outwatch suppress remove ID`)"
        } else {
            ""
        }
    );
    Ok(ExitCode::SUCCESS)
}

fn remove(app: &App, a: &SuppressRemoveArgs) -> Result<ExitCode, CliError> {
    let id = a.id.trim();
    if id.starts_with("config-") {
        return Err(CliError::usage(format!(
            "rule {} is a [[suppress]] table of the config ({}): remove it there",
            sanitize(id),
            app.config_path.display()
        )));
    }
    app.require_store()?;
    let store = app.open_store()?;
    let Some(rule) = suppress::remove(store.as_ref(), id)? else {
        return Err(CliError::failure(format!(
            "no suppression rule {} (`outwatch suppress list` shows them)",
            sanitize(id)
        )));
    };
    store.flush()?;
    if a.json {
        print_json(&json!({ "removed": rule }))?;
    } else {
        outln!(
            "suppression rule {} removed: {} (was until {})",
            rule.id,
            sanitize(&rule.describe()),
            when(rule.until)
        );
    }
    Ok(ExitCode::SUCCESS)
}
