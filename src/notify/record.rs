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

/// When each finding was last sent to each contact, compactly (about 70 bytes per finding:
/// a million notified findings fit in under 100 MB): what a run needs to tell what is due.
/// A finding's first contact sits in `first`; a finding sent to several contacts (its owner
/// changed) keeps the others in `more`.
#[derive(Debug, Default)]
pub struct SentIndex {
    first: rustc_hash::FxHashMap<u128, (u64, i64)>,
    more: rustc_hash::FxHashMap<u128, Vec<(u64, i64)>>,
}

/// A fingerprint's first 128 bits (fingerprints are hex), else a hash of it.
fn fp_key(fp: &str) -> u128 {
    fp.get(..32)
        .and_then(|h| u128::from_str_radix(h, 16).ok())
        .unwrap_or_else(|| u128::from(name_key(fp)))
}

/// A stable 64-bit hash of a contact name.
fn name_key(name: &str) -> u64 {
    use std::hash::Hasher;
    let mut h = rustc_hash::FxHasher::default();
    h.write(name.as_bytes());
    h.finish()
}

impl SentIndex {
    /// Reads every record, a sixteenth of the key space at a time (fingerprints are hex), so
    /// the raw values held at once stay small. A record that does not decode is left out (the
    /// finding counts as never sent).
    pub fn load(store: &dyn Store) -> Result<SentIndex, StoreError> {
        let mut idx = SentIndex::default();
        for c in "0123456789abcdef".chars() {
            for (k, v) in store.state_scan(&format!("{SENT_PREFIX}{c}"))? {
                let (Some(fp), Ok(r)) = (
                    k.strip_prefix(SENT_PREFIX),
                    serde_json::from_slice::<SentRecord>(&v),
                ) else {
                    continue;
                };
                idx.add(fp, &r);
            }
        }
        Ok(idx)
    }

    /// Adds a finding's record (the latest sending per contact counts).
    pub fn add(&mut self, fingerprint: &str, r: &SentRecord) {
        let k = fp_key(fingerprint);
        for s in &r.sent {
            let (n, at) = (name_key(&s.contact), s.at.timestamp_millis());
            match self.first.get_mut(&k) {
                None => {
                    self.first.insert(k, (n, at));
                }
                Some(slot) if slot.0 == n => slot.1 = slot.1.max(at),
                Some(_) => {
                    let e = self.more.entry(k).or_default();
                    match e.iter_mut().find(|(m, _)| *m == n) {
                        Some(slot) => slot.1 = slot.1.max(at),
                        None => e.push((n, at)),
                    }
                }
            }
        }
    }

    /// When `fingerprint` was last sent to `contact`.
    pub fn last_to(&self, fingerprint: &str, contact: &str) -> Option<DateTime<Utc>> {
        let (k, n) = (fp_key(fingerprint), name_key(contact));
        let at = match self.first.get(&k) {
            Some((m, at)) if *m == n => *at,
            Some(_) => self.more.get(&k)?.iter().find(|(m, _)| *m == n)?.1,
            None => return None,
        };
        DateTime::from_timestamp_millis(at)
    }

    /// Whether `fingerprint` was sent to any contact.
    pub fn contains(&self, fingerprint: &str) -> bool {
        self.first.contains_key(&fp_key(fingerprint))
    }

    /// Findings with a record.
    pub fn len(&self) -> usize {
        self.first.len()
    }

    pub fn is_empty(&self) -> bool {
        self.first.is_empty()
    }
}

/// Every finding's record, by fingerprint, read a sixteenth of the key space at a time (what a
/// streamed `outwatch list` shows: about 200 bytes per notified finding).
pub fn all(store: &dyn Store) -> Result<HashMap<String, SentRecord>, StoreError> {
    let mut out = HashMap::new();
    for c in "0123456789abcdef".chars() {
        for (k, v) in store.state_scan(&format!("{SENT_PREFIX}{c}"))? {
            if let (Some(fp), Ok(r)) = (
                k.strip_prefix(SENT_PREFIX),
                serde_json::from_slice::<SentRecord>(&v),
            ) {
                out.insert(fp.to_string(), r);
            }
        }
    }
    Ok(out)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_keeps_the_latest_sending_per_contact() {
        let t = |s: i64| DateTime::from_timestamp(1_700_000_000 + s, 0).unwrap();
        let sent = |c: &str, at| Sent {
            contact: c.into(),
            at,
            ticket: "OW-1".into(),
            to: vec![],
        };
        let fp = "ab".repeat(32);
        let mut idx = SentIndex::default();
        idx.add(
            &fp,
            &SentRecord {
                sent: vec![
                    sent("a", t(5)),
                    sent("b", t(7)),
                    sent("a", t(9)),
                    sent("b", t(6)),
                ],
            },
        );
        assert_eq!(idx.last_to(&fp, "a"), Some(t(9)));
        assert_eq!(idx.last_to(&fp, "b"), Some(t(7)));
        assert_eq!(idx.last_to(&fp, "c"), None);
        assert_eq!(idx.last_to(&"cd".repeat(32), "a"), None);
        assert_eq!(idx.len(), 1);
    }
}
