//! `outwatch notify`: tell each contact about the findings on what it owns. `--preview` shows
//! what would go to whom (nothing sent or marked), `--test-to ADDR` sends every mail to one
//! address (nothing marked), `--send` sends and marks what the server accepted.
use std::process::ExitCode;

use clap::Args;

use crate::app::App;
use crate::error::CliError;
use crate::notify::{self, MailState, Mode, contacts::Contacts};
use crate::outln;
use crate::text::Clean;

#[derive(Debug, Args)]
#[group(skip)]
#[command(group(clap::ArgGroup::new("mode").required(true).args(["preview", "test_to", "send"])))]
pub struct NotifyArgs {
    /// Show what would go to whom (subjects and bodies); send and mark nothing
    #[arg(long)]
    pub preview: bool,
    /// Send every mail to this one address instead of the contacts; mark nothing
    #[arg(long, value_name = "ADDR")]
    pub test_to: Option<String>,
    /// Send the due mails and mark their findings as sent to their contact
    #[arg(long)]
    pub send: bool,
    /// With --preview: write each mail's HTML part to DIR/<ticket>.html
    #[arg(long, value_name = "DIR", requires = "preview")]
    pub html: Option<std::path::PathBuf>,
    /// Print what the run did as JSON
    #[arg(long)]
    pub json: bool,
}

pub(crate) async fn run(app: &App, a: &NotifyArgs) -> Result<ExitCode, CliError> {
    let cfg = app.require_config()?;
    let mode = match (&a.test_to, a.send) {
        (Some(addr), _) => {
            crate::config::mail_address(addr).map_err(|why| {
                CliError::usage(format!("--test-to `{addr}` is not a mail address ({why})"))
            })?;
            Mode::TestTo(addr.clone())
        }
        (None, true) => Mode::Send,
        (None, false) => Mode::Preview,
    };
    if !notify::configured(cfg) {
        return Err(CliError::config(
            "no contacts: add a `[notify]` table with `[[contacts]]` tables, `contacts_file` \
             or `ripe_abuse_c = true` to the config (see docs/notify.md)",
        ));
    }
    let contacts = Contacts::load(cfg).map_err(CliError::config)?;
    let store = if mode == Mode::Send {
        app.require_store()?;
        app.open_store()?
    } else {
        app.open_read()?
    };
    // Sent in the notifications' turn, as the daemons send them: never two senders at once on
    // a store shared by several nodes (the second would mail the same findings again).
    let _turn = if mode == Mode::Send {
        let turn =
            crate::pipeline::take_turn(&store, notify::RUN_NAME, std::time::Duration::ZERO).await?;
        if turn.is_none() {
            return Err(CliError::new(
                crate::error::EXIT_SKIPPED,
                "notify: another node sharing the store is sending the notifications right \
                 now; nothing was sent: run it again later",
            ));
        }
        turn
    } else {
        None
    };
    let now = app.clock.now();
    let http = app.http()?;
    let o = notify::run(cfg, &contacts, store, &http, app.clock.as_ref(), now, &mode)
        .await
        .map_err(|e| CliError::failure(crate::text::chain(&e)))?;
    if let Some(dir) = &a.html {
        crate::files::private_dir(dir)
            .map_err(|e| CliError::failure(format!("cannot create {}: {e}", dir.display())))?;
        for m in o.mails.iter().filter(|m| !m.html.is_empty()) {
            let path = dir.join(format!("{}.html", m.ticket));
            crate::files::write_private(&path, &m.html)
                .map_err(|e| CliError::failure(format!("cannot write {}: {e}", path.display())))?;
            eprintln!(
                "HTML of the mail to {} written to {}",
                Clean(&m.contact),
                path.display()
            );
        }
    }
    if a.json {
        crate::output::print_json(&o)?;
    } else {
        print_text(&o, &mode)?;
    }
    let lookups_failed = o.abuse_c.as_ref().map_or(0, |a| a.failed.len());
    if mode != Mode::Preview && (o.failed > 0 || o.capped.is_some() || lookups_failed > 0) {
        return Err(CliError::failure(match &o.capped {
            Some(c) => format!("notify: {c}"),
            None if o.failed > 0 => {
                format!("notify: {} mail(s) not accepted by the server", o.failed)
            }
            None => format!(
                "notify: {lookups_failed} RIPE abuse-c lookup(s) failed; their findings wait \
                 for the next run"
            ),
        }));
    }
    Ok(ExitCode::SUCCESS)
}

fn print_text(o: &notify::NotifyOutcome, mode: &Mode) -> Result<(), CliError> {
    for p in &o.contact_problems {
        eprintln!("contacts file {}", Clean(p));
    }
    for m in &o.mails {
        let state = match (m.state, mode) {
            (MailState::WouldSend, _) => "would send",
            (MailState::Sent, Mode::TestTo(_)) => "test sent",
            (MailState::Sent, _) => "sent",
            (MailState::Held, _) => "held",
            (MailState::Failed, _) => "FAILED",
            (MailState::Capped, _) => "not sent (cap)",
        };
        outln!(
            "{state}: {} <{}>, {} finding(s){}{}",
            Clean(&m.contact),
            Clean(&m.to.join(", ")),
            m.findings,
            if m.more > 0 {
                format!(" (+{} later)", m.more)
            } else {
                String::new()
            },
            if m.ticket.is_empty() {
                String::new()
            } else {
                format!(", ticket {}", m.ticket)
            }
        );
        if let Some(d) = &m.detail {
            outln!("  {}", Clean(d));
        }
        if *mode == Mode::Preview && m.state == MailState::WouldSend {
            outln!("  Subject: {}", Clean(&m.subject));
            for line in m.body.trim_end().lines() {
                outln!("  | {}", Clean(line));
            }
            outln!("");
        }
    }
    let t = &o.tally;
    outln!(
        "{} contact(s); {} open finding(s): {} without a contact, {} not wanted by their \
         contact's policy, {} already sent",
        o.contacts,
        t.considered,
        t.no_contact,
        t.not_wanted,
        t.already_sent
    );
    if let Some(a) = &o.abuse_c {
        outln!(
            "RIPE abuse-c: {} address(es) looked up ({} with a contact, {} failed), {} known \
             from the cache",
            a.looked_up,
            a.found,
            a.failed.len(),
            a.cached
        );
        for f in &a.failed {
            outln!("  {}", Clean(f));
        }
        if let Some(w) = a.waiting() {
            outln!("  {w}");
        }
    }
    match mode {
        Mode::Preview => outln!("preview only: nothing was sent or marked"),
        Mode::TestTo(a) => outln!(
            "{} test mail(s) sent to {}; nothing was marked",
            o.sent,
            Clean(a)
        ),
        Mode::Send => outln!(
            "{} mail(s) sent, {} failed; {} finding(s) marked as sent",
            o.sent,
            o.failed,
            o.marked
        ),
    }
    if let Some(c) = &o.capped {
        outln!("{}", Clean(c));
    }
    Ok(())
}
