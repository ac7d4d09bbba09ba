//! The RIPE database's abuse contact for the addresses no contact owns (`[notify]
//! ripe_abuse_c = true`): RIPEstat's `abuse-contact-finder` ([`crate::ripestat`], at `[scope]
//! ripestat_url`), asked once per address and kept in the store's state
//! (`notify/abuse-c/<address>`: the addresses, the registry, when) for `[notify] ripe_cache`,
//! as the announced prefixes are. A registry that names no one is kept too, so it is not
//! asked again before then.
//!
//! Bounded: only addresses of open, unsuppressed findings that no `[[contacts]]` or file row
//! owns and that `[notify.defaults]` wants are looked up, each address once however many
//! findings it has, at most `[notify] ripe_max_lookups` per run; the rest wait for the next
//! runs and the run says how many findings wait. A failed lookup is named and leaves its
//! findings without a contact this run; it is not cached, so the next run asks again. When
//! RIPEstat cannot be reached the run stops asking (the rest wait). Each distinct set of abuse
//! addresses becomes one contact (`RIPE abuse-c abuse@example.net`) with the policy of
//! `[notify.defaults]`, listed after the config's and the file's contacts; our own addresses
//! (`[notify] from` and `reply_to`, `[digest] from` and recipients) are never such a contact.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::NotifyError;
use super::contacts::{Contact, Contacts, Defined, Policy};
use super::route::Router;
use crate::config::Config;
use crate::config::notify::PolicyConfig;
use crate::finding::Status;
use crate::http::HttpClient;
use crate::ripestat::{self, ReplyError, RipestatError};
use crate::store::{self, Store, StoreError};

/// Prefix of the cached answers, one per address.
pub const CACHE_PREFIX: &str = "notify/abuse-c/";
/// The name of a RIPE abuse contact starts so.
pub const NAME_PREFIX: &str = "RIPE abuse-c ";

/// One cached answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cached {
    /// The abuse addresses (empty: the registry names none).
    pub contacts: Vec<String>,
    pub rir: Option<String>,
    pub at: DateTime<Utc>,
}

/// The state key of an address's answer.
pub fn cache_key(ip: IpAddr) -> String {
    format!("{CACHE_PREFIX}{ip}")
}

/// What a run did about the RIPE abuse contacts.
#[derive(Debug, Clone, Default, Serialize)]
pub struct AbuseReport {
    /// Addresses with a fresh answer in the cache (not asked again).
    pub cached: usize,
    /// Addresses asked of RIPEstat in this run.
    pub looked_up: usize,
    /// Of those, how many have an abuse contact.
    pub found: usize,
    /// Lookups that failed (`address: why`), retried next run.
    pub failed: Vec<String>,
    /// Findings whose address was not looked up in this run (the cap, or RIPEstat did not
    /// answer): they stay without a contact until a later run looks them up.
    pub not_looked_up: usize,
    /// `[notify] ripe_max_lookups`.
    pub cap: usize,
}

impl AbuseReport {
    /// One line for the run log and the command's output when findings wait.
    pub fn waiting(&self) -> Option<String> {
        (self.not_looked_up > 0).then(|| {
            format!(
                "RIPE abuse-c: {} finding(s) at addresses not looked up in this run (at most {} \
                 lookups per run, `[notify] ripe_max_lookups`); later runs look them up",
                self.not_looked_up, self.cap
            )
        })
    }
}

/// The fresh cached answers, and the keys of the expired ones.
fn load_cache(
    store: &dyn Store,
    now: DateTime<Utc>,
    ttl: chrono::Duration,
) -> Result<(HashMap<IpAddr, Cached>, Vec<String>), StoreError> {
    let mut fresh = HashMap::new();
    let mut stale = Vec::new();
    for (k, v) in store.state_scan(CACHE_PREFIX)? {
        let parsed = k[CACHE_PREFIX.len()..]
            .parse::<IpAddr>()
            .ok()
            .zip(serde_json::from_slice::<Cached>(&v).ok());
        match parsed {
            Some((ip, c)) if now - c.at < ttl => {
                fresh.insert(ip, c);
            }
            _ => stale.push(k),
        }
    }
    Ok((fresh, stale))
}

/// The addresses to look up (at most `cap`, with their findings) and how many findings wait
/// beyond the cap: open, unsuppressed findings of ours with an address that no contact owns,
/// that `[notify.defaults]` wants and whose address is not in `cache`.
fn candidates(
    cfg: &Config,
    contacts: &Contacts,
    store: &dyn Store,
    now: DateTime<Utc>,
    cache: &HashMap<IpAddr, Cached>,
    cap: usize,
) -> Result<(BTreeMap<IpAddr, usize>, usize), StoreError> {
    let router = Router::new(&contacts.list);
    let policy = default_policy(cfg);
    let supp = crate::triage::Suppressions::load(store, Some(cfg), now)?;
    let mut asked: BTreeMap<IpAddr, usize> = BTreeMap::new();
    let mut beyond = 0usize;
    store.for_each(&mut |f| {
        let Some(ip) = f.ip else { return Ok(()) };
        if f.status == Status::Resolved
            || !f.in_scope
            || cache.contains_key(&ip)
            || router.owned(&f)
            || !policy.wants(&f)
            || supp.suppressed(&f)
        {
            return Ok(());
        }
        let room = asked.len() < cap;
        match asked.get_mut(&ip) {
            Some(n) => *n += 1,
            None if room => {
                asked.insert(ip, 1);
            }
            None => beyond += 1,
        }
        Ok(())
    })?;
    Ok((asked, beyond))
}

fn default_policy(cfg: &Config) -> Policy {
    let defaults = cfg
        .notify
        .as_ref()
        .map(|n| n.defaults.clone())
        .unwrap_or_default();
    Policy::resolve(&PolicyConfig::default(), &defaults)
}

/// Looks up what is due (writing the answers to the cache when `write`), and returns the
/// contacts extended with one contact per set of abuse addresses, the addresses routed to
/// them, and what was done.
pub async fn resolve(
    cfg: &Config,
    contacts: &Contacts,
    store: Arc<dyn Store>,
    http: &HttpClient,
    now: DateTime<Utc>,
    write: bool,
) -> Result<(Contacts, AbuseReport), NotifyError> {
    let n = super::notify_config(cfg);
    let ttl = n.ripe_cache.chrono();
    let cap = n.ripe_max_lookups;
    let (mut cache, stale, asked, beyond) = {
        let (c, cs, s) = (cfg.clone(), contacts.clone(), store.clone());
        store::bridge::run(move || -> Result<_, StoreError> {
            let (cache, stale) = load_cache(s.as_ref(), now, ttl)?;
            let (asked, beyond) = candidates(&c, &cs, s.as_ref(), now, &cache, cap)?;
            Ok((cache, stale, asked, beyond))
        })
        .await?
    };
    let mut report = AbuseReport {
        cap,
        not_looked_up: beyond,
        ..Default::default()
    };
    let base = cfg.scope.ripestat_url.clone();
    let mut answers = Vec::new();
    let mut unreachable = false;
    for (ip, findings) in &asked {
        if unreachable {
            report.not_looked_up += findings;
            continue;
        }
        report.looked_up += 1;
        match ripestat::abuse_contacts(http, &base, *ip).await {
            Ok(a) => {
                if !a.contacts.is_empty() {
                    report.found += 1;
                }
                let c = Cached {
                    contacts: a.contacts,
                    rir: a.rir,
                    at: now,
                };
                answers.push((*ip, c));
            }
            Err(e) => {
                report.not_looked_up += findings;
                // A reply about this one address (an error status, a reply that does not
                // read) costs that address; no answer at all ends the lookups of this run.
                if !matches!(e, RipestatError::Format(ReplyError::Status { .. })) {
                    unreachable = true;
                }
                report
                    .failed
                    .push(format!("RIPE abuse-c of {ip}: {}", crate::text::chain(&e)));
            }
        }
    }
    if write && (!answers.is_empty() || !stale.is_empty()) {
        let (s, a) = (store.clone(), answers.clone());
        store::bridge::run(move || -> Result<(), StoreError> {
            for k in &stale {
                s.state_put(k, None)?;
            }
            for (ip, c) in &a {
                store::state_put_json(s.as_ref(), &cache_key(*ip), c)?;
            }
            Ok(())
        })
        .await?;
    }
    report.cached = cache.len();
    cache.extend(answers);
    Ok((extend(cfg, contacts, &cache), report))
}

/// Our own mail addresses (`[notify] from`, `reply_to`, `[digest] from`, its recipients),
/// lower-case: the RIPE abuse contact of our own space is often our own abuse desk, which the
/// digest already tells.
fn own_addresses(cfg: &Config) -> std::collections::HashSet<String> {
    let mut out = std::collections::HashSet::new();
    let mut add = |a: &str| {
        if let Ok(bare) = crate::config::mail_address(a) {
            out.insert(bare.to_ascii_lowercase());
        }
    };
    if let Some(n) = &cfg.notify {
        n.from.iter().chain(&n.reply_to).for_each(|a| add(a));
    }
    if let Some(d) = &cfg.digest {
        add(&d.from);
        d.recipients.iter().for_each(|a| add(a));
    }
    out
}

/// `contacts` followed by one contact per distinct set of abuse addresses in `cache` (sorted
/// by the set), with the addresses routed to each. Our own addresses are left out of a set
/// (an address whose abuse contact is only us has no contact: the owner's digest lists it).
pub fn extend(cfg: &Config, contacts: &Contacts, cache: &HashMap<IpAddr, Cached>) -> Contacts {
    let mut out = contacts.clone();
    let policy = default_policy(cfg);
    let own = own_addresses(cfg);
    let mut by_set: BTreeMap<Vec<String>, Vec<IpAddr>> = BTreeMap::new();
    for (ip, c) in cache {
        let mut set: Vec<String> = c
            .contacts
            .iter()
            .filter(|a| !own.contains(a.as_str()))
            .cloned()
            .collect();
        if !set.is_empty() {
            set.sort();
            by_set.entry(set).or_default().push(*ip);
        }
    }
    let mut names: std::collections::HashSet<String> =
        out.list.iter().map(|c| c.name.clone()).collect();
    for (emails, mut ips) in by_set {
        let i = out.list.len();
        let name = format!("{NAME_PREFIX}{}", emails.join(", "));
        // A contact of the config or the file by that name keeps it.
        if !names.insert(name.clone()) {
            continue;
        }
        ips.sort();
        out.abuse_c.extend(ips.into_iter().map(|ip| (ip, i)));
        out.list.push(Contact {
            name,
            emails,
            prefixes: Vec::new(),
            asns: Vec::new(),
            domains: Vec::new(),
            policy: policy.clone(),
            defined: Defined::Ripe,
        });
    }
    out
}

/// The addresses whose cached abuse contact is fresh, as a router of `contacts` extended
/// with them (what `outwatch list --no-contact` asks). Reads only.
pub fn cached_router(
    cfg: &Config,
    contacts: &Contacts,
    store: &dyn Store,
    now: DateTime<Utc>,
) -> Result<Router, StoreError> {
    let n = super::notify_config(cfg);
    let cache = if n.ripe_abuse_c {
        load_cache(store, now, n.ripe_cache.chrono())?.0
    } else {
        HashMap::new()
    };
    Ok(Router::for_contacts(&extend(cfg, contacts, &cache)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> Config {
        let text = "[organisation]\nprefixes = [\"192.0.2.0/24\"]\n\
                    [digest]\nfrom = \"outwatch@isp.example\"\nrecipients = [\"noc@isp.example\"]\n\
                    [notify]\nfrom = \"Abuse <abuse@isp.example>\"\nripe_abuse_c = true\n";
        Config::parse(
            text,
            std::path::Path::new("x.toml"),
            &crate::config::NoSources,
        )
        .unwrap()
    }

    /// One contact per set of abuse addresses, routed by address; our own addresses are never
    /// a RIPE contact (an address whose abuse-c is only us stays without a contact).
    #[test]
    fn each_set_of_abuse_addresses_is_one_contact_and_ours_are_left_out() {
        let at = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        let entry = |c: &[&str]| Cached {
            contacts: c.iter().map(|s| s.to_string()).collect(),
            rir: Some("ripe".into()),
            at,
        };
        let cache = HashMap::from([
            ("192.0.2.1".parse().unwrap(), entry(&["abuse@cust.example"])),
            ("192.0.2.2".parse().unwrap(), entry(&["abuse@cust.example"])),
            (
                "192.0.2.3".parse().unwrap(),
                entry(&["abuse@isp.example", "noc@cust2.example"]),
            ),
            ("192.0.2.4".parse().unwrap(), entry(&["abuse@isp.example"])),
            ("192.0.2.5".parse().unwrap(), entry(&[])),
        ]);
        let c = extend(&cfg(), &Contacts::default(), &cache);
        let names: Vec<&str> = c.list.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "RIPE abuse-c abuse@cust.example",
                "RIPE abuse-c noc@cust2.example"
            ]
        );
        assert!(c.list.iter().all(|c| c.defined == Defined::Ripe));
        let r = Router::for_contacts(&c);
        let route = |ip: &str| {
            let mut f = crate::finding::Finding::new(
                "s",
                "f",
                crate::finding::Classification::new("", "c2-server", ""),
                crate::finding::Severity::High,
            );
            f.ip = Some(ip.parse().unwrap());
            r.route(&f).map(|(i, m)| (i, m.to_string()))
        };
        assert_eq!(
            route("192.0.2.2"),
            Some((0, "RIPE abuse-c of 192.0.2.2".into()))
        );
        assert_eq!(route("192.0.2.3").unwrap().0, 1);
        assert_eq!(route("192.0.2.4"), None);
        assert_eq!(route("192.0.2.5"), None);
    }
}
