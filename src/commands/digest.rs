//! `outwatch digest`: renders the digest without sending or marking anything (text to stdout,
//! or to `--text`/`--html` files); `--send` delivers it now and marks it delivered.
use crate::outln;
use std::process::ExitCode;

use crate::app::App;
use crate::cli::DigestArgs;
use crate::digest;
use crate::error::CliError;

pub(crate) async fn run(app: &App, a: &DigestArgs) -> Result<ExitCode, CliError> {
    // Without a config file the digest still works: defaults, no SMTP, so `.eml` files.
    let fallback;
    let cfg = match app.config.as_ref() {
        Some(c) => c,
        None => {
            fallback = crate::config::Config::default();
            &fallback
        }
    };
    let now = app.clock.now();
    if a.send && (a.html.is_some() || a.text.is_some()) {
        return Err(CliError::usage(
            "--html and --text show the digest without sending it: leave out --send",
        ));
    }
    if !a.send {
        let store = app.open_read()?;
        let c = cfg.clone();
        let p = crate::store::bridge::run(move || digest::preview(&c, store.as_ref(), now))
            .await
            .map_err(|e| CliError::failure(crate::text::chain(&e)))?;
        let write = |path: &std::path::Path, body: &str| {
            crate::files::write_private(path, body)
                .map_err(|e| CliError::failure(format!("cannot write {}: {e}", path.display())))
        };
        if let Some(h) = &a.html {
            write(h, &p.rendered.html)?;
            eprintln!("HTML part written to {}", h.display());
        }
        if let Some(t) = &a.text {
            write(t, &p.rendered.text)?;
            eprintln!("text part written to {}", t.display());
        }
        if a.html.is_none() && a.text.is_none() {
            outln!("Subject: {}\n", crate::text::Clean(&p.rendered.subject));
            // The text part quotes feed content: each line goes through the sanitiser.
            for line in p.rendered.text.trim_end_matches('\n').lines() {
                outln!("{}", crate::text::Clean(line));
            }
        } else {
            eprintln!("Subject: {}", crate::text::Clean(&p.rendered.subject));
        }
        eprintln!(
            "preview only: nothing was sent or marked as reported (`outwatch digest --send` delivers it)"
        );
        return Ok(ExitCode::SUCCESS);
    }
    // A digest from a store that does not exist would be an empty all-clear.
    app.require_store()?;
    let store = app.open_store()?;
    // In the digest's turn, as the daemons send it: never two at once on a shared store.
    let turn = crate::pipeline::take_turn(&store, "digest", std::time::Duration::ZERO).await?;
    let Some(_turn) = turn else {
        return Err(CliError::new(
            crate::error::EXIT_SKIPPED,
            "digest: another node sharing the store is sending the digest right now; nothing \
             was sent: run it again later",
        ));
    };
    let o = digest::deliver(cfg, store, &app.data_dir, now)
        .await
        .map_err(|e| CliError::failure(crate::text::chain(&e)))?;
    outln!(
        "digest: {} new, {} still open, {} resolved",
        o.new,
        o.open,
        o.resolved
    );
    if o.sent {
        let mut r = o.recipients.clone();
        r.sort();
        r.dedup();
        outln!("sent {} message(s) to {}", o.messages, r.join(", "));
    }
    for p in &o.eml_paths {
        outln!("written to {}", p.display());
    }
    if o.skipped > 0 {
        outln!(
            "{} digest(s) not sent: nothing changed (send_empty = false)",
            o.skipped
        );
    }
    if o.reported > 0 {
        outln!("{} finding(s) marked as reported", o.reported);
    }
    Ok(ExitCode::SUCCESS)
}
