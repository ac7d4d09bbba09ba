//! Telling the owners of our addresses (issue #23): contacts ([`contacts`]), routing each
//! finding to its contact ([`route`]), choosing what is due ([`plan`]), rendering
//! ([`render`]) and building ([`mail`]) the notification, and remembering what was sent
//! ([`record`]); the RIPE database's abuse contact for addresses no contact owns
//! ([`abuse_c`]). [`run`] ties them together for `outwatch notify` and the daemon.
//!
//! Invariant: a finding is marked sent to a contact (its `notify/sent/<fingerprint>` record)
//! only after the SMTP server accepted that contact's mail; `--preview` and `--test-to` mark
//! nothing. A refused mail leaves its findings due, so the next run tries again.

pub mod abuse_c;
pub mod contacts;
pub(crate) mod mail;
pub mod plan;
pub mod record;
pub(crate) mod render;
pub mod route;

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::clock::Clock;
use crate::config::Config;
use crate::config::notify::NotifyConfig;
use crate::digest::mail_log::NoContactItem;
use crate::store::{FetchRun, RunOutcome, Store, StoreError};
use contacts::Contacts;
use plan::{Batch, Planner, Tally};
use render::{NotifyView, Renderer, RowView};

/// Name of the run-log entry of a `notify --send` run (shown by `status`).
pub const RUN_NAME: &str = "notify";
/// Most findings listed in a mail's body (all are in the CSV).
pub const MAX_ROWS_IN_BODY: usize = 100;

/// What a run does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    /// Render and show; send and mark nothing.
    Preview,
    /// Send every mail to this one address instead of the contacts; mark nothing.
    TestTo(String),
    /// Send to the contacts and mark what the server accepted.
    Send,
}

/// Why a run failed as a whole.
#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    #[error("notify: {0}")]
    Store(#[from] StoreError),
    #[error(
        "notify: no sender: set `[notify] from` (or `[digest] from`) to the address the \
         notifications come from"
    )]
    NoSender,
    #[error(
        "notify: no `[smtp]` server is configured: notifications are only sent over SMTP \
         (try `outwatch notify --preview`)"
    )]
    NoSmtp,
    /// A contact's mail cannot be rendered from its template.
    #[error("notify: contact `{contact}`: {error}")]
    Render {
        contact: String,
        #[source]
        error: render::RenderError,
    },
    /// The SMTP client cannot be set up (`[smtp]`); the cause says why.
    #[error("notify")]
    Smtp(#[source] crate::digest::send::SendError),
    /// The templates cannot be loaded (`[notify] templates`); the cause says why (written with
    /// [`crate::text::chain`]).
    #[error("notify")]
    Templates(#[source] crate::digest::render::TemplateError),
    #[error("notify: {0}")]
    Attachment(#[from] render::AttachmentError),
}

/// What became of one contact's mail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MailState {
    /// Preview: would be sent now.
    WouldSend,
    /// Accepted by the server (`--send`, or `--test-to`).
    Sent,
    /// Not now: the contact's interval or a recipient's minimum interval has not passed.
    Held,
    /// The server refused it or could not be reached; its findings stay due.
    Failed,
    /// Not sent: the run's cap on mails was reached.
    Capped,
}

/// One contact's mail in a run.
#[derive(Debug, Clone, Serialize)]
pub struct MailReport {
    pub contact: String,
    /// The contact's addresses (with `--test-to`, the mail went to that address instead).
    pub to: Vec<String>,
    pub ticket: String,
    pub subject: String,
    pub findings: usize,
    /// Findings due beyond this mail.
    pub more: usize,
    pub state: MailState,
    /// Why it was held or failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// The rendered text part (what `--preview` prints).
    #[serde(skip)]
    pub body: String,
    /// The rendered HTML part (`--preview --html DIR` writes it).
    #[serde(skip)]
    pub html: String,
}

impl MailReport {
    /// A contact's mail that does not go now (held, capped, not rendered): no ticket, no body.
    fn not_now(
        c: &contacts::Contact,
        findings: usize,
        state: MailState,
        detail: Option<String>,
    ) -> MailReport {
        MailReport {
            contact: c.name.clone(),
            to: c.emails.clone(),
            ticket: String::new(),
            subject: String::new(),
            findings,
            more: 0,
            state,
            detail,
            body: String::new(),
            html: String::new(),
        }
    }
}

/// What a run did.
#[derive(Debug, Serialize)]
pub struct NotifyOutcome {
    pub contacts: usize,
    /// Skipped rows of the contacts file, with their lines.
    pub contact_problems: Vec<String>,
    pub tally: Tally,
    pub mails: Vec<MailReport>,
    pub sent: usize,
    pub failed: usize,
    /// Findings marked as sent.
    pub marked: usize,
    /// Set when the cap stopped the run.
    pub capped: Option<String>,
    /// The RIPE abuse contacts (`[notify] ripe_abuse_c`): what was looked up, what failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub abuse_c: Option<abuse_c::AbuseReport>,
}

/// One contact's mail, rendered, before it goes.
pub struct Prepared {
    pub contact: String,
    pub to: Vec<String>,
    pub ticket: String,
    pub rendered: render::Rendered,
    pub csv: String,
    pub attachment: String,
    pub fingerprints: Vec<String>,
    pub more: usize,
}

/// Whether notifications are set up: a `[notify]` table and contacts (`[[contacts]]`, a
/// contacts file, or the RIPE abuse contacts). The daemon's `notify` job and `run --once` run
/// only then.
pub fn configured(cfg: &Config) -> bool {
    cfg.notify
        .as_ref()
        .is_some_and(|n| !cfg.contacts.is_empty() || n.contacts_file.is_some() || n.ripe_abuse_c)
}

/// The `[notify]` table, or the defaults.
pub fn notify_config(cfg: &Config) -> NotifyConfig {
    cfg.notify.clone().unwrap_or_default()
}

/// The sender: `[notify] from`, else `[digest] from`.
fn sender(cfg: &Config) -> Result<String, NotifyError> {
    cfg.notify
        .as_ref()
        .and_then(|n| n.from.clone())
        .or_else(|| cfg.digest.as_ref().map(|d| d.from.clone()))
        .ok_or(NotifyError::NoSender)
}

/// A ticket id: `OW-YYYYMMDD-` and 8 random hex digits.
pub fn ticket(now: DateTime<Utc>) -> String {
    format!("OW-{}-{:08X}", now.format("%Y%m%d"), rand::random::<u32>())
}

fn fmt_time(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M UTC").to_string()
}

/// What one pass over the store prepared.
pub struct Preparation {
    /// The mails to go now, rendered, in contact order (at most `keep`).
    pub mails: Vec<Prepared>,
    /// Contacts with findings due whose mail waits (interval): index, due findings, why.
    pub held: Vec<(usize, usize, String)>,
    /// Contacts with findings due beyond the cap of this run: index, due findings.
    pub beyond_cap: Vec<(usize, usize)>,
    /// Contacts whose mail could not be rendered (a missing or broken template): index, due
    /// findings, why. Their findings stay due.
    pub unrendered: Vec<(usize, usize, String)>,
    /// The first findings without a contact, in rank order.
    pub no_contact: Vec<crate::finding::Finding>,
    pub tally: Tally,
}

/// Reads the store once and renders the mail of the first `keep` contacts (in contact order)
/// that have findings due and are not held by their interval (`holds`: whether intervals
/// count; `--test-to` ignores them). Reads only.
pub fn prepare(
    cfg: &Config,
    contacts: &Contacts,
    store: &dyn Store,
    now: DateTime<Utc>,
    holds: bool,
    keep: usize,
) -> Result<Preparation, NotifyError> {
    let n = notify_config(cfg);
    let renderer = Renderer::new(n.templates.as_ref().map(|p| cfg.resolve_path(p)).as_deref())
        .map_err(NotifyError::Templates)?;
    let sent = record::SentIndex::load(store)?;
    let mut why_held = HashMap::new();
    if holds {
        let last_contact = record::last_times(store, record::CONTACT_PREFIX)?;
        let last_recipient = record::last_times(store, record::RECIPIENT_PREFIX)?;
        for (i, c) in contacts.list.iter().enumerate() {
            if let Some(why) = held(&n, c, &last_contact, &last_recipient, now) {
                why_held.insert(i, why);
            }
        }
    }
    let skip = why_held.keys().copied().collect();
    let mut planner = Planner::new(&contacts.list, sent, now, keep, skip)
        .with_router(route::Router::for_contacts(contacts));
    // Suppressed findings are never sent (`outwatch suppress`, `[[suppress]]`).
    let supp = crate::triage::Suppressions::load(store, Some(cfg), now)?;
    store.for_each(&mut |f| {
        if supp.suppressed(&f) {
            planner.tally.suppressed += 1;
        } else {
            planner.offer(&f);
        }
        Ok(())
    })?;
    let planned = planner.finish();
    let mut mails = Vec::with_capacity(planned.batches.len());
    let mut unrendered = Vec::new();
    for (i, batch) in planned.batches {
        let c = &contacts.list[i];
        let due = batch.rows.len() + batch.more;
        match render_one(cfg, &n, &renderer, c, batch, now) {
            Ok(m) => mails.push(m),
            Err(e) => unrendered.push((i, due, e.to_string())),
        }
    }
    let mut held = Vec::new();
    let mut beyond_cap = Vec::new();
    for (i, count) in planned.counted {
        match why_held.remove(&i) {
            Some(why) => held.push((i, count, why)),
            None => beyond_cap.push((i, count)),
        }
    }
    Ok(Preparation {
        mails,
        held,
        beyond_cap,
        unrendered,
        no_contact: planned.no_contact,
        tally: planned.tally,
    })
}

/// Why a contact's mail waits, if it does: its interval since its last mail, or the minimum
/// interval of one of its addresses.
fn held(
    n: &NotifyConfig,
    c: &contacts::Contact,
    last_contact: &HashMap<String, DateTime<Utc>>,
    last_recipient: &HashMap<String, DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Option<String> {
    if let Some(last) = last_contact.get(&c.name) {
        let next = *last + c.policy.interval.duration();
        if next > now {
            return Some(
                format!(
                    "interval {:?}: last mail {}, next from {}",
                    c.policy.interval,
                    fmt_time(*last),
                    fmt_time(next)
                )
                .to_ascii_lowercase(),
            );
        }
    }
    for a in &c.emails {
        if let Some(last) = last_recipient.get(&a.to_ascii_lowercase()) {
            let next = *last + n.min_interval.chrono();
            if next > now {
                return Some(format!(
                    "{a} got a mail at {}; the minimum interval allows the next from {}",
                    fmt_time(*last),
                    fmt_time(next)
                ));
            }
        }
    }
    None
}

fn render_one(
    cfg: &Config,
    n: &NotifyConfig,
    renderer: &Renderer,
    c: &contacts::Contact,
    batch: Batch,
    now: DateTime<Utc>,
) -> Result<Prepared, NotifyError> {
    let ticket = ticket(now);
    let attachment = format!("{ticket}.csv");
    let mut shown = batch.rows.len().min(MAX_ROWS_IN_BODY);
    let csv = render::csv(&ticket, &batch.rows)?;
    let rendered = loop {
        let rows: Vec<RowView<'_>> = batch.rows[..shown]
            .iter()
            .map(|r| RowView {
                what: r.what(),
                row: r,
            })
            .collect();
        let view = NotifyView {
            organisation: cfg.organisation.name.clone(),
            contact: c.name.clone(),
            ticket: ticket.clone(),
            language: c.policy.language.clone(),
            generated: fmt_time(now),
            text_table: render::text_table(&rows),
            rows,
            count: batch.rows.len(),
            not_shown: batch.rows.len() - shown,
            more: batch.more,
            attachment: attachment.clone(),
            reply_to: n.reply_to.clone(),
        };
        let r = renderer
            .render(&c.policy.template, &c.policy.language, &view)
            .map_err(|error| NotifyError::Render {
                contact: c.name.clone(),
                error,
            })?;
        // Keep the HTML part under 100 KB: fewer rows in the body (the CSV has them all).
        if r.html.len() <= render::MAX_HTML_BYTES || shown <= 10 {
            break r;
        }
        shown /= 2;
    };
    Ok(Prepared {
        contact: c.name.clone(),
        to: c.emails.clone(),
        ticket,
        rendered,
        csv,
        attachment,
        fingerprints: batch.rows.iter().map(|r| r.fingerprint.clone()).collect(),
        more: batch.more,
    })
}

/// Runs a notification round as of `now`: looks up the RIPE abuse contacts that are due
/// (`[notify] ripe_abuse_c`, through `http`; cached only with [`Mode::Send`]), prepares every
/// due mail, then per `mode` shows, test-sends or sends them, paced by `[notify] pace` (on
/// `clock`), at most `[notify] max_mails_per_run`. With [`Mode::Send`], each accepted mail
/// marks its findings and the run gets a run-log entry [`RUN_NAME`].
pub async fn run(
    cfg: &Config,
    contacts: &Contacts,
    store: Arc<dyn Store>,
    http: &crate::http::HttpClient,
    clock: &dyn Clock,
    now: DateTime<Utc>,
    mode: &Mode,
) -> Result<NotifyOutcome, NotifyError> {
    let n = notify_config(cfg);
    let from = sender(cfg)?;
    let holds = !matches!(mode, Mode::TestTo(_));
    let cap = n.max_mails_per_run;
    let (extended, abuse) = if n.ripe_abuse_c {
        let write = *mode == Mode::Send;
        let (c, r) = abuse_c::resolve(cfg, contacts, store.clone(), http, now, write).await?;
        (Some(c), Some(r))
    } else {
        (None, None)
    };
    let contacts = extended.as_ref().unwrap_or(contacts);
    let prep = {
        let (c, cs, s) = (cfg.clone(), contacts.clone(), store.clone());
        crate::store::bridge::run(move || prepare(&c, &cs, s.as_ref(), now, holds, cap)).await?
    };
    let mut out = NotifyOutcome {
        contacts: contacts.list.len(),
        contact_problems: contacts.problems.iter().map(|p| p.to_string()).collect(),
        tally: prep.tally,
        mails: Vec::new(),
        sent: 0,
        failed: 0,
        marked: 0,
        capped: None,
        abuse_c: abuse,
    };
    let mailer = mailer(cfg, mode)?;
    let mut attempted = 0usize;
    // Addresses mailed in this run: the minimum interval holds within a run too (two contacts
    // sharing an address).
    let mut mailed: std::collections::HashSet<String> = std::collections::HashSet::new();
    let mut left = prep.beyond_cap.len();
    let not_now = |i: usize, count: usize, state: MailState, detail: Option<String>| {
        MailReport::not_now(&contacts.list[i], count, state, detail)
    };
    for (i, count, why) in prep.held {
        out.mails
            .push(not_now(i, count, MailState::Held, Some(why)));
    }
    for (i, count, why) in prep.unrendered {
        out.failed += 1;
        out.mails
            .push(not_now(i, count, MailState::Failed, Some(why)));
    }
    for p in prep.mails {
        let mut report = would_send(&p);
        if holds
            && !n.min_interval.0.is_zero()
            && let Some(a) =
                p.to.iter()
                    .find(|a| mailed.contains(&a.to_ascii_lowercase()))
        {
            report.state = MailState::Held;
            report.detail = Some(format!(
                "{a} gets another mail in this run; the minimum interval holds this one"
            ));
            out.mails.push(report);
            continue;
        }
        if attempted >= n.max_mails_per_run {
            report.state = MailState::Capped;
            left += 1;
            out.mails.push(report);
            continue;
        }
        attempted += 1;
        let Some(mailer) = &mailer else {
            out.mails.push(report);
            continue;
        };
        if attempted > 1 && !n.pace.0.is_zero() {
            clock.sleep(n.pace.0).await;
        }
        let sent_at = clock.now().max(now);
        let to = match mode {
            Mode::TestTo(a) => vec![a.clone()],
            _ => p.to.clone(),
        };
        let env = mail::Envelope {
            from: &from,
            reply_to: n.reply_to.as_deref(),
            to: &to,
            ticket: &p.ticket,
            list_id: n.list_id.as_deref(),
            attachment_name: &p.attachment,
            csv: &p.csv,
        };
        // A mail that cannot be built (an address lettre refuses) fails this contact only.
        let sent = match mail::build(&env, &p.rendered, sent_at) {
            Ok(msg) => mailer.send(msg).await.map_err(|e| crate::text::chain(&e)),
            Err(e) => Err(e.to_string()),
        };
        match sent {
            Ok(()) => {
                report.state = MailState::Sent;
                out.sent += 1;
                mailed.extend(p.to.iter().map(|a| a.to_ascii_lowercase()));
                if *mode == Mode::Send {
                    out.marked += p.fingerprints.len();
                    mark_accepted(store.clone(), p, sent_at).await?;
                }
            }
            Err(e) => {
                report.state = MailState::Failed;
                report.detail = Some(e);
                out.failed += 1;
            }
        }
        out.mails.push(report);
    }
    for (i, count) in prep.beyond_cap {
        out.mails.push(not_now(i, count, MailState::Capped, None));
    }
    if let Some(m) = &mailer {
        m.close().await;
    }
    if left > 0 {
        out.capped = Some(capped(mode, n.max_mails_per_run, left));
    }
    if *mode == Mode::Send {
        let listed = prep.no_contact.iter().map(NoContactItem::of).collect();
        record_run_end(store, &out, listed, now, clock.now().max(now)).await?;
    }
    Ok(out)
}

/// What a `--send` run leaves in the store: its run-log entry, how it ended (for the
/// metrics), and the findings without a contact (listed in the owner's digest).
async fn record_run_end(
    store: Arc<dyn Store>,
    out: &NotifyOutcome,
    no_contact_listed: Vec<NoContactItem>,
    started: DateTime<Utc>,
    finished: DateTime<Utc>,
) -> Result<(), NotifyError> {
    use crate::digest::mail_log::{self, LastRun, NoContact};
    let entry = run_entry(out, started, finished);
    let no_contact = NoContact {
        at: started,
        findings: out.tally.no_contact,
        listed: no_contact_listed,
    };
    let last = LastRun {
        started,
        finished: entry.finished,
        ok: out.failed == 0 && out.capped.is_none(),
        sent: out.sent,
        failed: out.failed,
    };
    crate::store::bridge::run(move || {
        store.record_run(&entry)?;
        mail_log::record_last_run(store.as_ref(), mail_log::NOTIFY_RUN, &last)?;
        mail_log::record_no_contact(store.as_ref(), &no_contact)
    })
    .await?;
    Ok(())
}

/// The report of a mail this run means to send.
fn would_send(p: &Prepared) -> MailReport {
    MailReport {
        contact: p.contact.clone(),
        to: p.to.clone(),
        ticket: p.ticket.clone(),
        subject: p.rendered.subject.clone(),
        findings: p.fingerprints.len(),
        more: p.more,
        state: MailState::WouldSend,
        detail: None,
        body: p.rendered.text.clone(),
        html: p.rendered.html.clone(),
    }
}

/// What a run says when the cap stopped it with `left` contacts' mails not sent.
fn capped(mode: &Mode, cap: usize, left: usize) -> String {
    format!(
        "{} at the cap of {cap} mail(s) per run (`[notify] max_mails_per_run`): {left} \
         contact(s) left for the next run",
        if *mode == Mode::Preview {
            "would stop"
        } else {
            "stopped"
        },
    )
}

/// The SMTP client of a run that sends (`None` for a preview).
fn mailer(cfg: &Config, mode: &Mode) -> Result<Option<crate::digest::send::Mailer>, NotifyError> {
    if *mode == Mode::Preview {
        return Ok(None);
    }
    let smtp = cfg.smtp.as_ref().ok_or(NotifyError::NoSmtp)?;
    Ok(Some(
        crate::digest::send::Mailer::new(smtp).map_err(NotifyError::Smtp)?,
    ))
}

/// After the server accepted `p`'s mail: its findings marked sent to the contact, the
/// contact's and its addresses' last mail times, and the mail in the owner's digest's log.
async fn mark_accepted(
    store: Arc<dyn Store>,
    p: Prepared,
    sent_at: DateTime<Utc>,
) -> Result<(), StoreError> {
    let sent = record::Sent {
        contact: p.contact.clone(),
        at: sent_at,
        ticket: p.ticket.clone(),
        to: p.to.clone(),
    };
    crate::store::bridge::run(move || -> Result<(), StoreError> {
        record::mark_sent(store.as_ref(), &p.fingerprints, &sent)?;
        record::mark_mailed(store.as_ref(), &p.contact, &p.to, sent_at)?;
        // The owner's digest names what went to whom.
        crate::digest::mail_log::record(
            store.as_ref(),
            &crate::digest::mail_log::Mailed {
                contact: p.contact,
                to: p.to,
                at: sent_at,
                ticket: p.ticket,
                findings: p.fingerprints.len(),
            },
        )
    })
    .await
}

/// The run-log entry of a sending run: `ok`, `partial` when a mail failed or the cap stopped
/// the run (its error says which), `error` when every mail failed.
fn run_entry(o: &NotifyOutcome, started: DateTime<Utc>, finished: DateTime<Utc>) -> FetchRun {
    let mut problems = Vec::new();
    if let Some(c) = &o.capped {
        problems.push(c.clone());
    }
    if let Some(a) = &o.abuse_c {
        problems.extend(a.failed.iter().take(10).cloned());
        if a.failed.len() > 10 {
            problems.push(format!(
                "and {} more failed RIPE abuse-c lookups",
                a.failed.len() - 10
            ));
        }
    }
    for m in o.mails.iter().filter(|m| m.state == MailState::Failed) {
        problems.push(format!(
            "mail to `{}` not sent: {}",
            m.contact,
            m.detail.as_deref().unwrap_or("")
        ));
    }
    let outcome = if o.failed > 0 && o.sent == 0 {
        RunOutcome::Error
    } else if problems.is_empty() {
        RunOutcome::Ok
    } else {
        RunOutcome::Partial
    };
    let mut notices = o
        .contact_problems
        .iter()
        .take(20)
        .map(|p| format!("contacts file {p}"))
        .collect::<Vec<_>>();
    if let Some(w) = o.abuse_c.as_ref().and_then(|a| a.waiting()) {
        notices.push(w);
    }
    if o.tally.no_contact > 0 {
        notices.push(format!(
            "{} open finding(s) have no contact (they stay in the digest)",
            o.tally.no_contact
        ));
    }
    let mut run = FetchRun::begun(RUN_NAME, started);
    run.finished = finished;
    run.outcome = outcome;
    run.fetched = o.tally.considered;
    run.accepted = o.marked;
    run.warnings = o.contact_problems.len();
    run.in_scope = o.tally.considered;
    run.updated = o.marked;
    run.error = (!problems.is_empty()).then(|| problems.join("; "));
    run.notices = notices;
    run
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Where a run's error meets text (the command's message, the daemon's run log) it is
    /// written with its causes, each once.
    #[test]
    fn a_run_error_is_written_with_its_causes_once() {
        let e = NotifyError::Templates(crate::digest::render::TemplateError::Read {
            path: "/t/notify.txt".into(),
            source: std::io::Error::other("gone"),
        });
        assert_eq!(
            crate::text::chain(&e),
            "notify: cannot read template /t/notify.txt: gone"
        );
        let e = contacts::ContactsFileError::Read {
            path: "/t/contacts.csv".into(),
            source: std::io::Error::other("gone"),
        };
        assert!(std::error::Error::source(&e).is_some());
        assert_eq!(
            e.to_string(),
            "cannot read the contacts file /t/contacts.csv: gone"
        );
        assert_eq!(crate::text::chain(&e), e.to_string());
    }
}
