//! What was sent: per finding, which contact got it, when and under which ticket
//! (`notify/sent/<fingerprint>`), and when each contact and each recipient address last got a
//! mail (`notify/contact/<name>`, `notify/recipient/<address>`). Kept as JSON state through the
//! `Store` trait only, so every backend keeps it. Written only after the SMTP server accepted
//! the mail.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::store::{self, Store, StoreError};

/// Prefix of the per-finding records.
pub const SENT_PREFIX: &str = "notify/sent/";
/// Prefix of the per-contact last mail times.
pub const CONTACT_PREFIX: &str = "notify/contact/";
/// Prefix of the per-recipient last mail times.
pub const RECIPIENT_PREFIX: &str = "notify/recipient/";
/// Most sendings kept per finding (the oldest go first).
pub const SENT_CAP: usize = 16;

/// One sending of a finding to a contact.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sent {
    pub contact: String,
    pub at: DateTime<Utc>,
    pub ticket: String,
    /// The addresses the mail went to.
    #[serde(default)]
    pub to: Vec<String>,
}

/// Every sending of one finding, oldest first.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SentRecord {
    pub sent: Vec<Sent>,
}

impl SentRecord {
    /// The last sending to `contact`.
    pub fn last_to(&self, contact: &str) -> Option<&Sent> {
        self.sent.iter().rev().find(|s| s.contact == contact)
    }
}

/// The key of a finding's record.
pub fn sent_key(fingerprint: &str) -> String {
    format!("{SENT_PREFIX}{fingerprint}")
}

/// One finding's record (what `lookup` shows).
pub fn sent_of(store: &dyn Store, fingerprint: &str) -> Result<Option<SentRecord>, StoreError> {
    store::state_get_json(store, &sent_key(fingerprint))
}

/// Every finding's record, by fingerprint (one scan at the start of a run). A record that does
/// not decode is left out (the finding counts as never sent).
pub fn all_sent(store: &dyn Store) -> Result<HashMap<String, SentRecord>, StoreError> {
    Ok(store
        .state_scan(SENT_PREFIX)?
        .into_iter()
        .filter_map(|(k, v)| {
            let fp = k.strip_prefix(SENT_PREFIX)?.to_string();
            serde_json::from_slice(&v).ok().map(|r| (fp, r))
        })
        .collect())
}

/// Adds a sending to each finding's record.
pub fn mark_sent(
    store: &dyn Store,
    fingerprints: &[String],
    sent: &Sent,
) -> Result<(), StoreError> {
    for fp in fingerprints {
        let mut r = sent_of(store, fp)?.unwrap_or_default();
        r.sent.push(sent.clone());
        if r.sent.len() > SENT_CAP {
            let drop = r.sent.len() - SENT_CAP;
            r.sent.drain(..drop);
        }
        store::state_put_json(store, &sent_key(fp), &r)?;
    }
    Ok(())
}

/// Last mail times under a prefix (contacts or recipients), by name.
pub fn last_times(
    store: &dyn Store,
    prefix: &str,
) -> Result<HashMap<String, DateTime<Utc>>, StoreError> {
    Ok(store
        .state_scan(prefix)?
        .into_iter()
        .filter_map(|(k, v)| {
            let name = k.strip_prefix(prefix)?.to_string();
            serde_json::from_slice(&v).ok().map(|t| (name, t))
        })
        .collect())
}

/// Records a mail to a contact and its addresses at `at`.
pub fn mark_mailed(
    store: &dyn Store,
    contact: &str,
    to: &[String],
    at: DateTime<Utc>,
) -> Result<(), StoreError> {
    store::state_put_json(store, &format!("{CONTACT_PREFIX}{contact}"), &at)?;
    for a in to {
        store::state_put_json(
            store,
            &format!("{RECIPIENT_PREFIX}{}", a.to_ascii_lowercase()),
            &at,
        )?;
    }
    Ok(())
}
