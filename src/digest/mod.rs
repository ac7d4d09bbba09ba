//! The digest (issue #6): what is new, still open and resolved since the last digest, plus feed
//! health, rendered from editable templates and sent over SMTP (or written as `.eml`).
//!
//! Parts: [`build`] scans the store into sections, [`remediation`] holds what each kind of
//! finding means, [`render`] fills the templates, [`send`] speaks SMTP. [`deliver`] ties them
//! together and is what the scheduler (`outwatch run`) and `outwatch digest` call.
//!
//! Invariant: a digest audience (the main recipients, or one `[[digest.routes]]` entry) is marked
//! delivered — its time stored under [`STATE_KEY`], its new findings marked `reported` — only
//! after the SMTP server accepted the message (or the `.eml` file was written). A failed send
//! changes nothing, so the next digest carries the same findings; a successful one is never
//! repeated, because "new" means first seen after the audience's last delivered digest.

pub mod build;
pub mod mail_log;
pub(crate) mod more;
pub(crate) mod remediation;
pub(crate) mod render;
pub(crate) mod section;
pub(crate) mod send;
pub(crate) mod traffic;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::config::{Config, DigestConfig};
use crate::finding::Status;
use crate::store::{self, Store, StoreError};
use build::{Audience, Window};
use remediation::Remediation;
use render::{Counts, DigestView, Rendered, Renderer};

/// State key of the digest's delivery times.
pub const STATE_KEY: &str = "digest/state";
/// Key of the main audience in [`DigestState`].
pub const MAIN: &str = "main";
/// Most bytes of the HTML part. Webmail clients clip a message at about 100 KB (Gmail at
/// 102 KB); a rendering over this lists fewer findings until it fits ([`build::Limits`]).
pub const HTML_BUDGET: usize = 96_000;
/// Longest line of the text part, in characters ([`render::wrap_text`]).
pub const TEXT_COLUMNS: usize = 78;

/// What a delivery did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct DigestOutcome {
    /// The SMTP server accepted the message(s).
    pub sent: bool,
    pub recipients: Vec<String>,
    /// Where the main message was written when no SMTP server is configured.
    pub eml_path: Option<PathBuf>,
    /// Every `.eml` written (main and routes).
    pub eml_paths: Vec<PathBuf>,
    /// Messages delivered (sent or written).
    pub messages: usize,
    /// Audiences skipped because nothing changed and `send_empty = false`.
    pub skipped: usize,
    /// Counts of the main digest.
    pub new: usize,
    pub open: usize,
    pub resolved: usize,
    /// Findings whose status went from `new` to `open` because a digest announced them.
    pub reported: usize,
}

/// Why a digest could not be made or delivered (nothing is marked for the audiences that
/// failed). Shown with its causes by [`crate::text::chain`]: `digest: <cause>`.
#[derive(Debug, thiserror::Error)]
pub enum DigestError {
    #[error("digest")]
    Store(#[from] StoreError),
    #[error("digest")]
    Templates(#[from] render::TemplateError),
    #[error("digest")]
    Remediation(#[from] remediation::RemediationError),
    /// The `[smtp]` table cannot give a connection.
    #[error("digest")]
    Mailer(#[from] send::SendError),
    #[error(
        "digest: `digest.recipients` is empty and there are no `[[digest.routes]]`: nobody to \
         send to"
    )]
    NobodyToSendTo,
    #[error("digest: `digest.templates` names {}, which is not a folder", .0.display())]
    NoTemplateFolder(PathBuf),
    #[error("digest: nothing to preview")]
    NothingToPreview,
    /// Audiences whose message did not go out; `delivered` others did.
    #[error("digest: {}{}", undelivered_text(.failed), delivered_text(*.delivered))]
    Undelivered {
        failed: Vec<Undelivered>,
        delivered: usize,
    },
}

/// An audience whose digest did not go out, and why.
#[derive(Debug)]
pub struct Undelivered {
    /// `main digest` or the route's name.
    pub audience: String,
    pub error: send::SendError,
}

fn undelivered_text(failed: &[Undelivered]) -> String {
    failed
        .iter()
        .map(|u| format!("{}: {}", u.audience, crate::text::chain(&u.error)))
        .collect::<Vec<_>>()
        .join("; ")
}

fn delivered_text(delivered: usize) -> String {
    if delivered > 0 {
        format!(" (the other {delivered} message(s) were delivered)")
    } else {
        String::new()
    }
}

/// When each audience last got a digest.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct DigestState {
    #[serde(default)]
    pub last_sent: BTreeMap<String, DateTime<Utc>>,
}

/// Reads the delivery state.
pub fn load_state(store: &dyn Store) -> Result<DigestState, StoreError> {
    Ok(store::state_get_json(store, STATE_KEY)?.unwrap_or_default())
}

/// The `[digest]` table, or the defaults when the config has none.
pub fn digest_config(cfg: &Config) -> DigestConfig {
    cfg.digest.clone().unwrap_or_else(|| {
        toml::from_str(r#"from = "outwatch@localhost""#).expect("valid default digest table")
    })
}

/// One digest ready to go to one audience.
#[derive(Debug, Clone)]
pub struct Prepared {
    /// State key: [`MAIN`] or `route:<name>`.
    pub key: String,
    /// Route name (`None` for the main digest).
    pub audience: Option<String>,
    pub recipients: Vec<String>,
    pub rendered: Rendered,
    pub counts: Counts,
    /// Anything new or resolved.
    pub changed: bool,
    pub health_problems: usize,
    /// Findings announced as new whose status is still `new`.
    pub new_fingerprints: Vec<String>,
}

struct Plan {
    key: String,
    audience_name: Option<String>,
    recipients: Vec<String>,
    audience: Audience,
}

fn plans(d: &DigestConfig, with_routes: bool) -> Vec<Plan> {
    let mut out = vec![Plan {
        key: MAIN.into(),
        audience_name: None,
        recipients: d.recipients.clone(),
        audience: Audience::All,
    }];
    if with_routes {
        for (i, r) in d.routes.iter().enumerate() {
            let name = if r.name.trim().is_empty() {
                format!("route {}", i + 1)
            } else {
                r.name.trim().to_string()
            };
            out.push(Plan {
                key: format!("route:{name}"),
                audience_name: Some(name),
                recipients: r.recipients.clone(),
                audience: Audience::Route(r.clone()),
            });
        }
    }
    out
}

/// Builds and renders the digest of every audience (routes only when `with_routes`) as of
/// `now`, each covering the time since its last delivered digest. Reads only.
pub fn prepare(
    cfg: &Config,
    store: &dyn Store,
    now: DateTime<Utc>,
    with_routes: bool,
) -> Result<Vec<Prepared>, DigestError> {
    let d = digest_config(cfg);
    let tz = d.timezone;
    let tmpl_dir = d.templates.as_ref().map(|p| cfg.resolve_path(p));
    if let Some(dir) = &tmpl_dir
        && !dir.is_dir()
    {
        return Err(DigestError::NoTemplateFolder(dir.clone()));
    }
    let renderer = Renderer::new(tmpl_dir.as_deref())?;
    let rem = Remediation::load(tmpl_dir.as_deref())?;
    let state = load_state(store)?;
    let plans = plans(&d, with_routes);
    let audiences: Vec<(Audience, Window)> = plans
        .iter()
        .map(|p| {
            let since = state.last_sent.get(&p.key).copied();
            (p.audience.clone(), Window { since, now })
        })
        .collect();
    let supp = crate::triage::Suppressions::load(store, Some(cfg), now)?;
    let collectors = build::collect(store, &audiences, tz, rem.details(), &supp)?;
    let (health, health_error) = match crate::health::assess(cfg, store, now) {
        Ok(h) => (build::health_views(h, tz), None),
        Err(e) => (Vec::new(), Some(e.to_string())),
    };
    let health_problems = health.iter().filter(|h| !h.ok).count();
    let mut out = Vec::new();
    for ((plan, (_, window)), mut col) in plans.into_iter().zip(audiences).zip(collectors) {
        let (new, open, resolved) = col.counts();
        let counts = Counts {
            new,
            open,
            resolved,
        };
        let new_fingerprints = std::mem::take(&mut col.new_fingerprints);
        let trend = col.trend();
        // The owner's digest (not a route's) names what `notify` mailed to whom.
        let notified = if plan.audience_name.is_none() {
            let (mails, total) = mail_log::since(store, window.since)?;
            let no_contact = mail_log::no_contact(store)?;
            render::NotifiedView::of(&mails, total, no_contact.as_ref(), tz)
        } else {
            None
        };
        // Rendered with the full lists, then with ever shorter ones until the HTML part fits
        // the budget; what is not listed stays a count with its `outwatch list` command.
        let mut limits = build::Limits::FULL;
        let (rendered, changed) = loop {
            let (act_first, act_total, act_command) = col.act_first(limits.act);
            let mut view = DigestView {
                organisation: cfg.organisation.name.clone(),
                title: d.subject.clone(),
                audience: plan.audience_name.clone(),
                subject: String::new(),
                generated: build::fmt_time(now, tz),
                since: window.since.map(|t| build::fmt_time(t, tz)),
                counts,
                changed: new > 0 || resolved > 0,
                health: health.clone(),
                health_problems,
                health_error: health_error.clone(),
                act_first,
                act_total,
                act_command,
                trend: trend.clone(),
                traffic: col.traffic(limits.traffic),
                sections: col.sections(&rem, limits.findings),
                expiring: crate::triage::suppress::expiring_view(&supp),
                notified: notified.clone(),
            };
            let rendered = renderer.render(&mut view)?;
            match limits.smaller() {
                Some(smaller) if rendered.html.len() > HTML_BUDGET => {
                    tracing::debug!(bytes = rendered.html.len(), ?limits, "digest over budget");
                    limits = smaller;
                }
                _ => break (rendered, view.changed),
            }
        };
        if rendered.html.len() > HTML_BUDGET {
            tracing::warn!(
                bytes = rendered.html.len(),
                "digest: the HTML part is over its budget even without any list"
            );
        }
        out.push(Prepared {
            key: plan.key,
            audience: plan.audience_name,
            recipients: plan.recipients,
            rendered,
            counts,
            changed,
            health_problems,
            new_fingerprints,
        });
    }
    Ok(out)
}

/// Renders the main digest as it would be sent now, without sending or marking anything.
pub fn preview(
    cfg: &Config,
    store: &dyn Store,
    now: DateTime<Utc>,
) -> Result<Prepared, DigestError> {
    prepare(cfg, store, now, false)?
        .into_iter()
        .next()
        .ok_or(DigestError::NothingToPreview)
}

/// Builds the digest since the last one delivered, sends it (or writes an `.eml` under
/// `<data_dir>/digests/` when no SMTP server is configured) and, only after success, marks it
/// delivered. Routes (`[[digest.routes]]`) get their own message and their own state; when one
/// audience fails the others are still delivered and the error names the failed ones. How it
/// ended is kept ([`mail_log::DIGEST_RUN`]) for the metrics.
pub async fn deliver(
    cfg: &Config,
    store: Arc<dyn Store>,
    data_dir: &Path,
    now: DateTime<Utc>,
) -> Result<DigestOutcome, DigestError> {
    let result = deliver_all(cfg, store.clone(), data_dir, now).await;
    let last = match &result {
        Ok((o, failures)) => mail_log::LastRun {
            started: now,
            finished: now,
            ok: failures.is_empty(),
            sent: o.messages,
            failed: failures.len(),
        },
        Err(_) => mail_log::LastRun {
            started: now,
            finished: now,
            ok: false,
            sent: 0,
            failed: 0,
        },
    };
    let kept = store::bridge::blocking(&store, move |s| {
        mail_log::record_last_run(s, mail_log::DIGEST_RUN, &last)?;
        s.flush()
    })
    .await;
    if let Err(e) = kept {
        tracing::warn!(error = %e, "digest: its result could not be kept for the metrics");
    }
    let (outcome, failed) = result?;
    if failed.is_empty() {
        Ok(outcome)
    } else {
        Err(DigestError::Undelivered {
            failed,
            delivered: outcome.messages,
        })
    }
}

/// [`deliver`] less its record: what was delivered, and the audiences that failed.
async fn deliver_all(
    cfg: &Config,
    store: Arc<dyn Store>,
    data_dir: &Path,
    now: DateTime<Utc>,
) -> Result<(DigestOutcome, Vec<Undelivered>), DigestError> {
    let d = digest_config(cfg);
    let mailer = match &cfg.smtp {
        Some(s) => Some(send::Mailer::new(s)?),
        None => None,
    };
    if mailer.is_some() && d.recipients.is_empty() && d.routes.is_empty() {
        return Err(DigestError::NobodyToSendTo);
    }
    let (prepared, mut state) = {
        let cfg = cfg.clone();
        let st = store.clone();
        store::bridge::run(move || {
            let prepared = prepare(&cfg, st.as_ref(), now, true)?;
            Ok::<_, DigestError>((prepared, load_state(st.as_ref())?))
        })
        .await?
    };
    let mut outcome = DigestOutcome::default();
    if let Some(main) = prepared.first() {
        outcome.new = main.counts.new;
        outcome.open = main.counts.open;
        outcome.resolved = main.counts.resolved;
    }
    let mut failures = Vec::new();
    let mut to_mark = BTreeSet::new();
    let mut state_changed = false;
    for p in prepared {
        let label = p.audience.as_deref().unwrap_or("main digest").to_string();
        if !d.send_empty && !p.changed && p.health_problems == 0 {
            tracing::info!(audience = %label, "digest: nothing changed, not sent (send_empty = false)");
            state.last_sent.insert(p.key.clone(), now);
            state_changed = true;
            outcome.skipped += 1;
            continue;
        }
        let result = match &mailer {
            Some(m) => {
                if p.recipients.is_empty() {
                    // Only routes have recipients; the main digest has no audience.
                    continue;
                }
                match send::build_message(&d.from, &p.recipients, &p.rendered, now) {
                    Ok(msg) => m.send(msg).await.map(|_| {
                        outcome.sent = true;
                        outcome.recipients.extend(p.recipients.iter().cloned());
                    }),
                    Err(e) => Err(e),
                }
            }
            None => {
                // No SMTP server: write the message to a file. Without recipients, address it
                // to the sender so the file is still a valid message.
                let to = if p.recipients.is_empty() {
                    vec![d.from.clone()]
                } else {
                    p.recipients.clone()
                };
                send::build_message(&d.from, &to, &p.rendered, now)
                    .and_then(|msg| {
                        send::write_eml(&data_dir.join("digests"), &msg, now, p.audience.as_deref())
                    })
                    .map(|path| {
                        if p.audience.is_none() {
                            outcome.eml_path = Some(path.clone());
                        }
                        outcome.eml_paths.push(path);
                    })
            }
        };
        match result {
            Ok(()) => {
                tracing::info!(audience = %label, new = p.counts.new, open = p.counts.open,
                    resolved = p.counts.resolved, "digest delivered");
                outcome.messages += 1;
                state.last_sent.insert(p.key.clone(), now);
                state_changed = true;
                to_mark.extend(p.new_fingerprints);
            }
            Err(error) => {
                tracing::warn!(audience = %label, error = %crate::text::chain(&error),
                    "digest not delivered");
                failures.push(Undelivered {
                    audience: label,
                    error,
                });
            }
        }
    }
    if let Some(m) = &mailer {
        m.close().await;
    }
    if state_changed {
        store::bridge::blocking(&store, move |s| store::state_put_json(s, STATE_KEY, &state))
            .await?;
    }
    let fps: Vec<String> = to_mark.into_iter().collect();
    match store::bridge::blocking(&store, move |s| mark_reported(s, &fps, now)).await {
        Ok(n) => outcome.reported = n,
        // The mail is out and the delivery time is stored; only the cosmetic status lags.
        Err(e) => {
            tracing::warn!(error = %e, "digest sent, but marking findings reported failed")
        }
    }
    store::bridge::blocking(&store, |s| s.flush()).await?;
    Ok((outcome, failures))
}

/// Moves announced findings from `new` to `open` with a `reported` history entry.
pub fn mark_reported(
    store: &dyn Store,
    fingerprints: &[String],
    now: DateTime<Utc>,
) -> Result<usize, StoreError> {
    store.modify(fingerprints, &mut |f| {
        if f.status != Status::New {
            return false;
        }
        f.status = Status::Open;
        f.push_history(now, "reported");
        true
    })
}
