//! Choosing what goes to whom: each open finding of ours is routed to its contact, kept if the
//! contact's policy wants it and it is due (never sent to that contact, reopened since, or a
//! reminder is due while it stays open), and gathered into the contact's batch. One pass over
//! the store. Memory is bounded whatever the store holds: rows are kept for at most `keep`
//! contacts (the run's cap on mails; the first in contact order), at most
//! [`MAX_ROWS_PER_MAIL`] each; other contacts with findings due (beyond the cap, or held by
//! their interval) are only counted.

use std::collections::{BTreeMap, HashSet};

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::contacts::Contact;
use super::record::SentIndex;
use super::route::{Matched, Router};
use crate::finding::{Finding, Severity, Status};

/// Most findings in one mail (table and CSV); more wait for the next mail.
pub const MAX_ROWS_PER_MAIL: usize = 1000;
/// Most findings without a contact kept (the first in rank order) for the owner's digest;
/// the others are counted.
pub const NO_CONTACT_KEPT: usize = 20;

/// Why a finding is sent (again).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Reason {
    /// Never sent to this contact.
    New,
    /// It reopened since it was last sent.
    Reopened,
    /// Still open after the contact's reminder interval.
    Reminder,
}

/// One finding in a mail: what the table and the CSV show.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub fingerprint: String,
    pub severity: Severity,
    pub status: Status,
    pub reason: Reason,
    pub source: String,
    pub feed: String,
    pub taxonomy: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub identifier: String,
    pub ip: Option<String>,
    pub port: Option<u16>,
    pub protocol: Option<String>,
    pub network: Option<String>,
    pub asn: Option<u32>,
    pub domain: Option<String>,
    pub url: Option<String>,
    pub email: Option<String>,
    pub first_seen: DateTime<Utc>,
    pub last_seen: DateTime<Utc>,
    pub times_seen: u64,
    /// Why the finding is this contact's (`prefix 192.0.2.0/24`).
    pub matched: String,
}

/// Longest text of a value kept in a row (URLs and names from feeds are untrusted).
const MAX_CELL: usize = 300;

fn cut(s: &Option<String>) -> Option<String> {
    s.as_deref().map(|v| {
        if v.len() <= MAX_CELL {
            v.to_string()
        } else {
            let mut end = MAX_CELL;
            while !v.is_char_boundary(end) {
                end -= 1;
            }
            format!("{}…", &v[..end])
        }
    })
}

impl Row {
    fn of(f: &Finding, reason: Reason, matched: &Matched) -> Row {
        Row {
            fingerprint: f.fingerprint.clone(),
            severity: f.severity,
            status: f.status,
            reason,
            source: f.source.clone(),
            feed: f.feed.clone(),
            taxonomy: f.classification.taxonomy.clone(),
            kind: f.classification.kind.clone(),
            identifier: f.classification.identifier.clone(),
            ip: f.ip.map(|i| i.to_string()),
            port: f.port,
            protocol: cut(&f.protocol),
            network: f.network.map(|n| n.to_string()),
            asn: f.asn,
            domain: cut(&f.domain),
            url: cut(&f.url),
            email: cut(&f.email),
            first_seen: f.first_seen,
            last_seen: f.last_seen,
            times_seen: f.times_seen,
            matched: matched.to_string(),
        }
    }

    /// What the finding is about, in one short text: address and port, network, domain, URL or
    /// mail address.
    pub fn what(&self) -> String {
        match (&self.ip, &self.network) {
            (Some(ip), _) => match self.port {
                Some(p) if ip.contains(':') => format!("[{ip}]:{p}"),
                Some(p) => format!("{ip}:{p}"),
                None => ip.clone(),
            },
            (None, Some(n)) => n.clone(),
            _ => self
                .url
                .clone()
                .or_else(|| self.domain.clone())
                .or_else(|| self.email.clone())
                .unwrap_or_else(|| "-".into()),
        }
    }
}

/// The findings due for one contact.
#[derive(Debug, Clone, Default)]
pub struct Batch {
    pub rows: Vec<Row>,
    /// Findings due beyond [`MAX_ROWS_PER_MAIL`] (sent in a later mail).
    pub more: usize,
}

/// What one pass over the store found.
#[derive(Debug, Default, Serialize)]
pub struct Tally {
    /// Open findings of ours looked at.
    pub considered: usize,
    /// No contact owns them (they stay in the owner's digest).
    pub no_contact: usize,
    /// Their contact's policy does not want them.
    pub not_wanted: usize,
    /// Sent before and not due again.
    pub already_sent: usize,
    /// Suppressed by a triage rule (never sent).
    pub suppressed: usize,
}

/// Gathers the due findings of each contact, one finding at a time.
pub struct Planner<'a> {
    contacts: &'a [Contact],
    router: Router,
    sent: SentIndex,
    now: DateTime<Utc>,
    batches: BTreeMap<usize, Batch>,
    /// Most contacts whose rows are kept.
    keep: usize,
    /// Contacts that get no mail now (their interval): counted only.
    skip: HashSet<usize>,
    /// Findings due per contact whose rows are not kept (skipped, or beyond `keep`).
    counted: BTreeMap<usize, usize>,
    /// The first findings without a contact, in rank order.
    no_contact: crate::store::top::Top,
    pub tally: Tally,
}

/// What a pass found: the batches kept (contact order), the due findings of the contacts only
/// counted, and the tally.
pub struct Planned {
    pub batches: Vec<(usize, Batch)>,
    pub counted: BTreeMap<usize, usize>,
    /// The first [`NO_CONTACT_KEPT`] findings without a contact, in rank order
    /// (`tally.no_contact` counts them all).
    pub no_contact: Vec<Finding>,
    pub tally: Tally,
}

impl<'a> Planner<'a> {
    /// `sent`: the records of earlier sendings, by fingerprint; rows are kept for at most
    /// `keep` contacts, none for those in `skip`.
    pub fn new(
        contacts: &'a [Contact],
        sent: SentIndex,
        now: DateTime<Utc>,
        keep: usize,
        skip: HashSet<usize>,
    ) -> Self {
        Planner {
            contacts,
            router: Router::new(contacts),
            sent,
            now,
            batches: BTreeMap::new(),
            keep,
            skip,
            counted: BTreeMap::new(),
            no_contact: crate::store::top::Top::new(
                Some(NO_CONTACT_KEPT),
                crate::finding::rank::compare,
            ),
            tally: Tally::default(),
        }
    }

    /// Routes with `router` instead of the contacts' own table (one with the RIPE abuse
    /// contacts' addresses: [`Router::for_contacts`]).
    pub fn with_router(mut self, router: Router) -> Self {
        self.router = router;
        self
    }

    /// The routing table (for `lookup`-like questions and tests).
    pub fn router(&self) -> &Router {
        &self.router
    }

    /// Looks at one finding: routed, filtered by policy, kept when due.
    pub fn offer(&mut self, f: &Finding) {
        if f.status == Status::Resolved || !f.in_scope {
            return;
        }
        self.tally.considered += 1;
        // Suppressed findings never get here: `prepare` drops them (and counts them in
        // `tally.suppressed`) before it offers the rest.
        let Some((i, matched)) = self.router.route(f) else {
            self.tally.no_contact += 1;
            if self.no_contact.admits(f) {
                self.no_contact.push(f.clone());
            }
            return;
        };
        let c = &self.contacts[i];
        if !c.policy.wants(f) {
            self.tally.not_wanted += 1;
            return;
        }
        let Some(reason) = self.due(f, c) else {
            self.tally.already_sent += 1;
            return;
        };
        if self.skip.contains(&i) || !self.make_room(i) {
            *self.counted.entry(i).or_default() += 1;
            return;
        }
        let b = self.batches.entry(i).or_default();
        if b.rows.len() < MAX_ROWS_PER_MAIL {
            b.rows.push(Row::of(f, reason, &matched));
        } else {
            b.more += 1;
        }
    }

    /// Whether contact `i` may keep rows: it has a batch, or there is room, or it comes before
    /// the last contact kept (whose rows are then dropped and counted).
    fn make_room(&mut self, i: usize) -> bool {
        if self.batches.contains_key(&i) || self.batches.len() < self.keep {
            return true;
        }
        match self.batches.last_key_value().map(|(k, _)| *k) {
            Some(last) if last > i => {
                let b = self.batches.remove(&last).unwrap_or_default();
                *self.counted.entry(last).or_default() += b.rows.len() + b.more;
                true
            }
            _ => false,
        }
    }

    /// Whether `f` is due for contact `c`, and why.
    fn due(&self, f: &Finding, c: &Contact) -> Option<Reason> {
        let Some(last) = self.sent.last_to(&f.fingerprint, &c.name) else {
            return Some(Reason::New);
        };
        if f.history
            .iter()
            .any(|h| h.event == "reopened" && h.at > last)
        {
            return Some(Reason::Reopened);
        }
        match c.policy.reminder {
            Some(r) if self.now - last >= r => Some(Reason::Reminder),
            _ => None,
        }
    }

    /// The batches, in contact order (config contacts first), rows most severe first then
    /// newest.
    pub fn finish(self) -> Planned {
        let mut out: Vec<(usize, Batch)> = self.batches.into_iter().collect();
        for (_, b) in &mut out {
            b.rows.sort_by(|a, b| {
                a.severity
                    .cmp(&b.severity)
                    .then(b.last_seen.cmp(&a.last_seen))
                    .then(a.fingerprint.cmp(&b.fingerprint))
            });
        }
        Planned {
            batches: out,
            counted: self.counted,
            no_contact: self.no_contact.into_sorted_vec(),
            tally: self.tally,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::finding::Classification;
    use crate::notify::contacts::{Defined, Policy};

    fn contact(i: usize) -> Contact {
        Contact {
            name: format!("c{i}"),
            emails: vec![format!("c{i}@example.org")],
            prefixes: vec![format!("10.{i}.0.0/16").parse().unwrap()],
            asns: vec![],
            domains: vec![],
            policy: Policy::resolve(&Default::default(), &Default::default()),
            defined: Defined::File(i + 1),
        }
    }

    fn finding(ip: &str) -> Finding {
        let mut f = Finding::new(
            "s",
            "f",
            Classification::new("", "c2-server", ""),
            Severity::High,
        );
        f.ip = Some(ip.parse().unwrap());
        f.seal();
        f
    }

    /// The findings no contact owns: the first [`NO_CONTACT_KEPT`] by rank kept, all counted.
    #[test]
    fn the_first_findings_without_a_contact_are_kept_by_rank() {
        let cs: Vec<Contact> = (0..1).map(contact).collect();
        let mut p = Planner::new(&cs, SentIndex::default(), Utc::now(), 1, HashSet::new());
        for i in 0..30 {
            let mut f = finding(&format!("192.0.2.{i}"));
            f.severity = if i == 17 {
                Severity::Critical
            } else {
                Severity::Low
            };
            p.offer(&f);
        }
        let out = p.finish();
        assert_eq!(out.tally.no_contact, 30);
        assert_eq!(out.no_contact.len(), NO_CONTACT_KEPT);
        assert_eq!(out.no_contact[0].ip, Some("192.0.2.17".parse().unwrap()));
    }

    /// Rows are kept for the first `keep` contacts in contact order, whatever order the store
    /// gives; the others are counted; held contacts are counted only.
    #[test]
    fn rows_are_kept_for_the_first_contacts_only() {
        let cs: Vec<Contact> = (0..4).map(contact).collect();
        let skip = HashSet::from([1]);
        let mut p = Planner::new(&cs, SentIndex::default(), Utc::now(), 1, skip);
        for ip in [
            "10.3.0.1", "10.3.0.2", "10.1.0.1", "10.2.0.1", "10.0.0.1", "10.9.0.1",
        ] {
            p.offer(&finding(ip));
        }
        let out = p.finish();
        assert_eq!(out.batches.len(), 1);
        assert_eq!(out.batches[0].0, 0);
        assert_eq!(out.batches[0].1.rows.len(), 1);
        assert_eq!(out.counted, BTreeMap::from([(1, 1), (2, 1), (3, 2)]));
        assert_eq!(out.tally.no_contact, 1);
    }
}
