//! `outwatch scope`: prefixes per ASN, extra prefixes, domains.

use crate::outln;
use std::process::ExitCode;

use serde_json::json;

use crate::app::App;
use crate::cli::ScopeArgs;
use crate::error::CliError;
use crate::output::print_json;
use crate::scope;
use crate::store::bridge;

pub(crate) async fn run(app: &App, a: &ScopeArgs) -> Result<ExitCode, CliError> {
    let cfg = app.require_config()?;
    let now = app.clock.now();
    if !a.refresh {
        // Without --refresh this reads: it never creates a store.
        app.require_store()?;
    }
    // Refresh what is due (or everything with --refresh, through the daemon when it runs);
    // failures keep the cache. When another process holds the store, show what is cached (the
    // daemon refreshes daily by itself).
    let store = if a.refresh {
        Some(app.open_store()?)
    } else {
        app.open_store_if_free()?
    };
    let (snap, reports) = match store {
        Some(store) => {
            let http = app.http()?;
            scope::refresh(cfg, &store, &http, now, a.refresh).await?
        }
        None => {
            let store = app.open_read()?;
            let cfg = cfg.clone();
            let snap = bridge::blocking(&store, move |s| scope::load(Some(&cfg), s)).await?;
            (snap, Vec::new())
        }
    };
    let failed = reports.iter().filter(|r| r.error.is_some()).count();
    if a.json {
        print_json(&json!({
            "organisation": cfg.organisation.name,
            "asns": snap.asns.iter().map(|x| json!({
                "asn": x.asn,
                "prefixes": x.prefixes.iter().map(|p| p.to_string()).collect::<Vec<_>>(),
                "refreshed_at": x.refreshed_at,
                "last_error": x.last_error,
            })).collect::<Vec<_>>(),
            "prefixes": snap.prefixes.iter().map(|p| p.to_string()).collect::<Vec<_>>(),
            "all_prefixes": snap.all_prefixes().iter().map(|p| p.to_string()).collect::<Vec<_>>(),
            "domains": snap.domains,
            "emails": snap.emails,
            "refresh": reports,
        }))?;
    } else {
        if !cfg.organisation.name.is_empty() {
            outln!("{}", cfg.organisation.name);
        }
        for x in &snap.asns {
            let when = x
                .refreshed_at
                .map(|t| format!("refreshed {}", t.format("%Y-%m-%d %H:%M UTC")))
                .unwrap_or_else(|| "never refreshed".into());
            outln!("AS{} ({} prefixes, {when})", x.asn, x.prefixes.len());
            for p in &x.prefixes {
                outln!("  {p}");
            }
            if let Some(e) = &x.last_error {
                outln!("  warning: last refresh failed: {}", crate::text::Clean(e));
            }
        }
        if !snap.prefixes.is_empty() {
            outln!("extra prefixes:");
            for p in &snap.prefixes {
                outln!("  {p}");
            }
        }
        if !snap.domains.is_empty() {
            outln!("domains (with subdomains):");
            for d in &snap.domains {
                outln!("  {d}");
            }
        }
        if !snap.emails.is_empty() {
            outln!("mail addresses:");
            for e in &snap.emails {
                outln!("  {e}");
            }
        }
    }
    let problems = snap.problems();
    for p in &problems {
        eprintln!("warning: {p}");
    }
    if (failed > 0 && a.refresh) || !problems.is_empty() {
        return Ok(ExitCode::from(crate::error::EXIT_FAILURE));
    }
    Ok(ExitCode::SUCCESS)
}
