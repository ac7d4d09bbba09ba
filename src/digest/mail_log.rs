//! What was mailed to the owners of our addresses (`outwatch notify`), kept so that the owner's
//! digest can name it: one state entry per accepted mail under [`PREFIX`], keyed by time so a
//! scan reads them in order, entries older than [`KEEP_DAYS`] dropped when a new one is written.
//! Written by `notify` after the server accepted the mail; read by the digest.

use chrono::{DateTime, Duration, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};

use crate::finding::{Finding, Severity};
use crate::store::{self, Store, StoreError};

/// The state prefix of the log.
pub const PREFIX: &str = "notify/mail/";
/// How long an entry is kept.
pub const KEEP_DAYS: i64 = 60;
/// Most entries a digest lists; the rest are counted.
pub const SHOWN: usize = 30;

/// The state key of the last `notify --send` run's count of findings without a contact.
pub const NO_CONTACT: &str = "notify/no-contact";

/// How many open findings the last `notify --send` run found no contact for (they stay in
/// the owner's digest only).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NoContact {
    pub at: DateTime<Utc>,
    pub findings: usize,
    /// The first of them in rank order (at most `notify::plan::NO_CONTACT_KEPT`).
    #[serde(default)]
    pub listed: Vec<NoContactItem>,
}

/// One finding without a contact, as the digest lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NoContactItem {
    pub severity: Severity,
    /// The indicator, with the port after an address.
    pub what: String,
    /// The classification type.
    pub kind: String,
    pub source: String,
    /// When the provider saw it (else when it was stored).
    pub observed: DateTime<Utc>,
    pub fingerprint: String,
}

impl NoContactItem {
    pub fn of(f: &Finding) -> NoContactItem {
        let what = match (f.ip, f.port) {
            (Some(ip), Some(p)) if ip.is_ipv6() => format!("[{ip}]:{p}"),
            (Some(ip), Some(p)) => format!("{ip}:{p}"),
            _ => f.indicator(),
        };
        NoContactItem {
            severity: f.severity,
            what: crate::text::clip(&what, 120),
            kind: f.classification.kind.clone(),
            source: f.source.clone(),
            observed: crate::finding::rank::observed(f),
            fingerprint: f.fingerprint.clone(),
        }
    }
}

/// Records the last run's count of findings without a contact.
pub fn record_no_contact(store: &dyn Store, n: &NoContact) -> Result<(), StoreError> {
    store::state_put_json(store, NO_CONTACT, n)
}

/// The last run's count of findings without a contact, if `notify --send` ran.
pub fn no_contact(store: &dyn Store) -> Result<Option<NoContact>, StoreError> {
    store::state_get_json(store, NO_CONTACT)
}

/// The state key of the last digest delivery's result ([`LastRun`]).
pub const DIGEST_RUN: &str = "mail-runs/digest";
/// The state key of the last `notify --send` run's result ([`LastRun`]).
pub const NOTIFY_RUN: &str = "mail-runs/notify";

/// How the last run that sends mail (a digest delivery, a `notify --send` run) ended: what
/// the metrics (`docs/metrics.md`) tell about it. Written after every such run, failed or not.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LastRun {
    pub started: DateTime<Utc>,
    pub finished: DateTime<Utc>,
    /// Everything that was due went out (a digest with nothing new and `send_empty = false`
    /// counts as done; a notify run stopped by its cap does not).
    pub ok: bool,
    /// Messages the server accepted (or `.eml` files written).
    pub sent: usize,
    /// Messages that failed.
    pub failed: usize,
}

/// Records how a run that sends mail ended, under `key` ([`DIGEST_RUN`], [`NOTIFY_RUN`]).
pub fn record_last_run(store: &dyn Store, key: &str, run: &LastRun) -> Result<(), StoreError> {
    store::state_put_json(store, key, run)
}

/// How the last run under `key` ended, if one ran; an unreadable record counts as none.
pub fn last_run(store: &dyn Store, key: &str) -> Result<Option<LastRun>, StoreError> {
    Ok(store
        .state_get(key)?
        .and_then(|v| serde_json::from_slice(&v).ok()))
}

/// One mail a contact's server accepted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mailed {
    pub contact: String,
    pub to: Vec<String>,
    pub at: DateTime<Utc>,
    pub ticket: String,
    /// Findings the mail carried.
    pub findings: usize,
}

fn key(m: &Mailed) -> String {
    format!(
        "{PREFIX}{}/{}",
        m.at.to_rfc3339_opts(SecondsFormat::Millis, true),
        m.ticket
    )
}

/// Records an accepted mail, and drops entries older than [`KEEP_DAYS`].
pub fn record(store: &dyn Store, m: &Mailed) -> Result<(), StoreError> {
    store::state_put_json(store, &key(m), m)?;
    let cutoff = (m.at - Duration::days(KEEP_DAYS)).to_rfc3339_opts(SecondsFormat::Millis, true);
    for (k, _) in store.state_scan(PREFIX)? {
        if k[PREFIX.len()..] < *cutoff {
            store.state_put(&k, None)?;
        }
    }
    Ok(())
}

/// The mails accepted at or after `since` (all kept ones when `None`), oldest first: at most
/// [`SHOWN`], and how many there were in all.
pub fn since(
    store: &dyn Store,
    since: Option<DateTime<Utc>>,
) -> Result<(Vec<Mailed>, usize), StoreError> {
    let mut shown = Vec::new();
    let mut total = 0;
    for (_, v) in store.state_scan(PREFIX)? {
        let Ok(m) = serde_json::from_slice::<Mailed>(&v) else {
            continue;
        };
        if since.is_some_and(|s| m.at < s) {
            continue;
        }
        total += 1;
        if shown.len() < SHOWN {
            shown.push(m);
        }
    }
    Ok((shown, total))
}
