//! Indicator sets: every entry of every list feed (not only ours), kept from each feed's last
//! good download, so `outwatch flows` can ask "is this peer listed?".
//!
//! An [`IndicatorSet`] is one feed's entries; an [`IndicatorIndex`] answers lookups over all
//! of them. A list source fills a [`SetBuilder`] while it parses a body and stores the encoded
//! set ([`SetBuilder::finish`]) as state `indicators/<feed>/<unit>` in the same atomic batch as
//! that unit's findings; [`load`] reads every kept set back into one index. Depends on nothing
//! of ours but [`crate::store`] (where sets are kept).
//!
//! Stored value: a format byte, a postcard header ([`SetInfo`]: feed, unit, time, counts), then
//! an LZ4 block of the entries (a table of threat texts, then IPv4 and IPv6 entries as fixed
//! address bytes, prefix length, port and threat number).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use rustc_hash::FxSeededState;
use serde::{Deserialize, Serialize};

use crate::store::{Store, StoreError};

/// State keys of kept sets start with this: `indicators/<feed>/<unit>`.
pub const STATE_PREFIX: &str = crate::store::INDICATOR_SETS;

/// At most this many distinct entries are kept per set (per unit of a feed); the rest are
/// counted in [`SetInfo::cut`] and named in a notice of the fetch.
pub const MAX_ENTRIES: usize = 1_000_000;

/// Threat texts longer than this many characters are shortened (feed text is untrusted).
const MAX_THREAT_CHARS: usize = 100;

/// Version of the stored encoding; a value of another version is skipped (with a warning) and
/// replaced by the next good download.
const FORMAT: u8 = 1;

/// A decoded entry block larger than this is refused as corrupt (1M entries need ~25 MB).
const MAX_PLAIN: usize = 256 << 20;

/// The state key of one unit's set (`unit`: the list URL as shown, key redacted).
pub fn state_key(feed: &str, unit: &str) -> String {
    format!("{STATE_PREFIX}{feed}/{unit}")
}

/// The feed named by a set's state key.
fn feed_of_key(key: &str) -> Option<&str> {
    key.strip_prefix(STATE_PREFIX)?
        .split_once('/')
        .map(|(f, _)| f)
}

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
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Listing {
    pub feed: Arc<str>,
    pub net: IpNet,
    /// The listed port; `None` when the list names the address alone.
    pub port: Option<u16>,
    pub threat: Option<Arc<str>>,
}

// ---------------------------------------------------------------------------------------------
// Building and storing a set

/// What a kept set holds, read from its stored header without decoding the entries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SetInfo {
    pub feed: String,
    /// The list URL the set came from (as shown: keys redacted).
    pub unit: String,
    /// When the download was made.
    pub fetched: DateTime<Utc>,
    /// Distinct entries kept.
    pub entries: usize,
    /// Distinct entries left out because the set reached [`MAX_ENTRIES`].
    pub cut: usize,
    /// Entries that name no address (a host name, a URL on a host name, an ASN): flows cannot
    /// match them, so they are counted, not kept.
    pub not_addresses: usize,
    /// Size of the stored value in bytes.
    #[serde(skip)]
    pub bytes: usize,
}

/// A set encoded for the store, with its header.
#[derive(Debug, Clone)]
pub struct KeptSet {
    pub info: SetInfo,
    pub bytes: Vec<u8>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Packed {
    net: IpNet,
    port: Option<u16>,
    /// 0: none; else 1 + index into the threat table.
    threat: u32,
}

/// Collects the entries of one list body (in list order) while it is parsed. Allocates only for
/// a new threat text; the cap and the de-duplication apply in [`SetBuilder::finish`].
#[derive(Debug)]
pub struct SetBuilder {
    entries: Vec<Packed>,
    threats: Vec<String>,
    threat_ids: HashMap<String, u32>,
    scratch: String,
    /// The threat number of the last entry with one (0: none yet).
    last: u32,
    not_addresses: usize,
    cap: usize,
}

impl Default for SetBuilder {
    fn default() -> Self {
        SetBuilder::with_cap(MAX_ENTRIES)
    }
}

impl SetBuilder {
    /// A builder keeping at most `cap` distinct entries.
    pub fn with_cap(cap: usize) -> Self {
        SetBuilder {
            entries: Vec::new(),
            threats: Vec::new(),
            threat_ids: HashMap::new(),
            scratch: String::new(),
            last: 0,
            not_addresses: 0,
            cap,
        }
    }

    /// Adds a listed network (host bits dropped) or address, with the port the list names and
    /// what it says the entry is: `malware` (a family) and `kind` (a threat type), either or both.
    pub fn push(
        &mut self,
        net: IpNet,
        port: Option<u16>,
        malware: Option<&str>,
        kind: Option<&str>,
    ) {
        self.scratch.clear();
        match (malware, kind) {
            (Some(m), Some(k)) => {
                self.scratch.push_str(clip(m));
                self.scratch.push_str(" (");
                self.scratch.push_str(clip(k));
                self.scratch.push(')');
            }
            (Some(t), None) | (None, Some(t)) => self.scratch.push_str(clip(t)),
            (None, None) => {}
        }
        // Lists repeat their threat texts row after row: the last one is checked first.
        let threat = if self.scratch.is_empty() {
            0
        } else if self.last > 0 && self.threats[self.last as usize - 1] == self.scratch {
            self.last
        } else if let Some(&i) = self.threat_ids.get(self.scratch.as_str()) {
            i
        } else {
            self.threats.push(self.scratch.clone());
            let i = self.threats.len() as u32;
            self.threat_ids.insert(self.scratch.clone(), i);
            i
        };
        if threat > 0 {
            self.last = threat;
        }
        self.entries.push(Packed {
            net: net.trunc(),
            port,
            threat,
        });
    }

    /// Counts an entry that names no address (it is not kept).
    pub fn not_an_address(&mut self) {
        self.not_addresses += 1;
    }

    /// Entries added so far (duplicates included).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether nothing was added.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Replaces each threat text for which `f` gives another (a key a list echoed into a
    /// malware name, masked before the set is kept). Call after the last [`SetBuilder::push`].
    pub fn map_threats(&mut self, f: impl Fn(&str) -> Option<String>) {
        for t in &mut self.threats {
            if let Some(new) = f(t) {
                *t = new;
            }
        }
        self.threat_ids.clear();
        self.last = 0;
    }

    /// The set of `feed`'s `unit` downloaded at `fetched`, encoded for the store: each distinct
    /// entry once, the first [`MAX_ENTRIES`] (or the builder's cap) in list order.
    pub fn finish(self, feed: &str, unit: &str, fetched: DateTime<Utc>) -> KeptSet {
        let mut entries = self.entries;
        // De-duplicate keeping each entry's first position, then cut in list order.
        let mut order: Vec<u32> = (0..entries.len() as u32).collect();
        order.sort_by_key(|&i| entries[i as usize]);
        let mut keep = vec![false; entries.len()];
        let mut last: Option<Packed> = None;
        for &i in &order {
            let e = entries[i as usize];
            if last != Some(e) {
                keep[i as usize] = true;
                last = Some(e);
            }
        }
        drop(order);
        let mut n = 0;
        entries.retain(|_| {
            n += 1;
            keep[n - 1]
        });
        let cut = entries.len().saturating_sub(self.cap);
        entries.truncate(self.cap);
        let mut body = WireBody {
            threats: self.threats,
            v4: Vec::new(),
            v6: Vec::new(),
        };
        for e in &entries {
            let port = e.port.map_or(0, |p| u32::from(p) + 1);
            match e.net {
                IpNet::V4(n) => body
                    .v4
                    .push((n.addr().octets(), n.prefix_len(), port, e.threat)),
                IpNet::V6(n) => body
                    .v6
                    .push((n.addr().octets(), n.prefix_len(), port, e.threat)),
            }
        }
        let info = SetInfo {
            feed: feed.to_string(),
            unit: unit.to_string(),
            fetched,
            entries: entries.len(),
            cut,
            not_addresses: self.not_addresses,
            bytes: 0,
        };
        let plain = postcard::to_stdvec(&body).expect("postcard encodes into a Vec");
        let head = WireHeader {
            feed: info.feed.clone(),
            unit: info.unit.clone(),
            fetched: info.fetched,
            entries: info.entries as u64,
            cut: info.cut as u64,
            not_addresses: info.not_addresses as u64,
            plain_len: plain.len() as u64,
        };
        let mut bytes = vec![FORMAT];
        bytes.extend(postcard::to_stdvec(&head).expect("postcard encodes into a Vec"));
        bytes.extend(lz4_flex::block::compress(&plain));
        let info = SetInfo {
            bytes: bytes.len(),
            ..info
        };
        KeptSet { info, bytes }
    }
}

/// At most [`MAX_THREAT_CHARS`] characters of `s`.
fn clip(s: &str) -> &str {
    match s.char_indices().nth(MAX_THREAT_CHARS) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

#[derive(Serialize, Deserialize)]
struct WireHeader {
    feed: String,
    unit: String,
    fetched: DateTime<Utc>,
    entries: u64,
    cut: u64,
    not_addresses: u64,
    plain_len: u64,
}

/// An entry: address bytes, prefix length, port + 1 (0: none), threat number (0: none).
type Wire4 = ([u8; 4], u8, u32, u32);
type Wire6 = ([u8; 16], u8, u32, u32);

#[derive(Serialize, Deserialize)]
struct WireBody {
    threats: Vec<String>,
    v4: Vec<Wire4>,
    v6: Vec<Wire6>,
}

/// Why a stored set could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// Written by another version of outwatch: skipped until the next download replaces it.
    #[error("written in format {0}, this outwatch reads {FORMAT}")]
    Format(u8),
    #[error("{0}")]
    Corrupt(String),
}

fn read_info(bytes: &[u8]) -> Result<(SetInfo, usize, &[u8]), ReadError> {
    match bytes.first() {
        Some(&FORMAT) => {}
        Some(&v) => return Err(ReadError::Format(v)),
        None => return Err(ReadError::Corrupt("empty value".into())),
    }
    let (h, rest): (WireHeader, &[u8]) = postcard::take_from_bytes(&bytes[1..])
        .map_err(|e| ReadError::Corrupt(format!("bad header: {e}")))?;
    let info = SetInfo {
        feed: h.feed,
        unit: h.unit,
        fetched: h.fetched,
        entries: usize::try_from(h.entries).unwrap_or(usize::MAX),
        cut: usize::try_from(h.cut).unwrap_or(usize::MAX),
        not_addresses: usize::try_from(h.not_addresses).unwrap_or(usize::MAX),
        bytes: bytes.len(),
    };
    Ok((info, h.plain_len as usize, rest))
}

fn read_body(len: usize, block: &[u8]) -> Result<WireBody, ReadError> {
    if len > MAX_PLAIN {
        return Err(ReadError::Corrupt(format!("claims {len} bytes of entries")));
    }
    let plain = lz4_flex::block::decompress(block, len)
        .map_err(|e| ReadError::Corrupt(format!("bad entry block: {e}")))?;
    postcard::from_bytes(&plain).map_err(|e| ReadError::Corrupt(format!("bad entries: {e}")))
}

/// The entries of a decoded body, each with its threat's place in `b.threats` (`None`: none,
/// or a number outside the table).
fn body_entries(b: &WireBody) -> impl Iterator<Item = (IpNet, Option<u16>, Option<usize>)> + '_ {
    let port = |p: u32| u16::try_from(p.checked_sub(1)?).ok();
    let n = b.threats.len();
    let threat = move |t: u32| t.checked_sub(1).map(|i| i as usize).filter(|i| *i < n);
    let v4 = b.v4.iter().filter_map(move |&(a, len, p, t)| {
        Some((
            IpNet::V4(Ipv4Net::new(a.into(), len).ok()?),
            port(p),
            threat(t),
        ))
    });
    let v6 = b.v6.iter().filter_map(move |&(a, len, p, t)| {
        Some((
            IpNet::V6(Ipv6Net::new(a.into(), len).ok()?),
            port(p),
            threat(t),
        ))
    });
    v4.chain(v6)
}

/// Reads a stored set (its header and entries).
pub fn decode(bytes: &[u8]) -> Result<(SetInfo, IndicatorSet), ReadError> {
    let (info, len, rest) = read_info(bytes)?;
    let body = read_body(len, rest)?;
    let entries = body_entries(&body)
        .map(|(net, port, threat)| Entry {
            net,
            port,
            threat: threat.map(|i| body.threats[i].clone()),
        })
        .collect();
    let set = IndicatorSet {
        feed: info.feed.clone(),
        fetched: info.fetched,
        entries,
    };
    Ok((info, set))
}

/// Reads every kept set whose feed `keep` accepts, calling `each` with its header and body.
/// A set of another format version is skipped with a warning; a damaged one is an error.
fn scan_sets(
    store: &dyn Store,
    keep: &dyn Fn(&str) -> bool,
    each: &mut dyn FnMut(SetInfo, Option<WireBody>),
    bodies: bool,
) -> Result<(), StoreError> {
    store.indicator_sets(&mut |key, value| {
        if !feed_of_key(key).is_some_and(keep) {
            return Ok(());
        }
        let corrupt = |reason: String| StoreError::corrupt(format!("state `{key}`"), reason);
        let read = read_info(value).and_then(|(info, len, rest)| {
            let body = if bodies {
                Some(read_body(len, rest)?)
            } else {
                None
            };
            Ok((info, body))
        });
        match read {
            Ok((info, body)) => each(info, body),
            Err(ReadError::Format(v)) => tracing::warn!(
                key = %crate::text::Clean(key),
                format = v,
                "indicator set written by another outwatch version skipped; the next download replaces it"
            ),
            Err(ReadError::Corrupt(r)) => return Err(corrupt(r)),
        }
        Ok(())
    })?;
    Ok(())
}

/// Every indicator set kept in the store, as one index (empty when no list feed has run).
/// Sets of feeds that were switched off stay in the store and are loaded too: use
/// [`load_only`] with the enabled feeds to leave them out.
pub fn load(store: &dyn Store) -> Result<IndicatorIndex, StoreError> {
    load_where(store, &|_| true)
}

/// [`load`] of the sets of `feeds` only (the list feeds the config enables: see
/// `sources::lists::enabled_names`).
pub fn load_only(store: &dyn Store, feeds: &[String]) -> Result<IndicatorIndex, StoreError> {
    load_where(store, &|f| feeds.iter().any(|x| x == f))
}

fn load_where(
    store: &dyn Store,
    keep: &dyn Fn(&str) -> bool,
) -> Result<IndicatorIndex, StoreError> {
    let mut b = IndexBuilder::default();
    scan_sets(
        store,
        keep,
        &mut |info, body| {
            let Some(body) = body else { return };
            let feed = b.feed_id(&info.feed);
            let threats: Vec<u32> = body.threats.iter().map(|t| b.threat_id(t)).collect();
            for (net, port, t) in body_entries(&body) {
                b.add(feed, net, port, t.map_or(0, |i| threats[i]));
            }
        },
        true,
    )?;
    Ok(b.finish())
}

/// The header of every kept set (for `status`), in key order.
pub fn kept_sets(store: &dyn Store) -> Result<Vec<SetInfo>, StoreError> {
    let mut out = Vec::new();
    scan_sets(store, &|_| true, &mut |info, _| out.push(info), false)?;
    Ok(out)
}

/// A list naming an address, for `lookup`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ListedBy {
    pub feed: String,
    /// The listed address or network.
    pub entry: IpNet,
    pub port: Option<u16>,
    pub threat: Option<String>,
    /// When the set holding the entry was downloaded.
    pub fetched: DateTime<Utc>,
}

/// Every kept entry that names `ip` (on any port), by feed then entry.
pub fn listed_by(store: &dyn Store, ip: IpAddr) -> Result<Vec<ListedBy>, StoreError> {
    let ip = ip.to_canonical();
    let mut out = Vec::new();
    scan_sets(
        store,
        &|_| true,
        &mut |info, body| {
            let Some(body) = body else { return };
            for (net, port, threat) in body_entries(&body) {
                if net.contains(&ip) {
                    out.push(ListedBy {
                        feed: info.feed.clone(),
                        entry: net,
                        port,
                        threat: threat.map(|i| body.threats[i].clone()),
                        fetched: info.fetched,
                    });
                }
            }
        },
        true,
    )?;
    out.sort_by(|a, b| (&a.feed, a.entry, a.port).cmp(&(&b.feed, b.entry, b.port)));
    out.dedup();
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// The index

type HostMap<K> = HashMap<K, (u32, u32), FxSeededState>;

fn host_map<K>() -> HostMap<K> {
    // A random seed: list content is untrusted, so its addresses must not be able to pick
    // colliding hash values.
    HashMap::with_hasher(FxSeededState::with_seed(rand::random::<u64>() as usize))
}

/// Lookups over every loaded [`IndicatorSet`]: single addresses in a hash map per family,
/// networks as sorted, disjoint intervals per family (each naming the networks that cover it),
/// so a miss costs one hash lookup and one binary search. Listings are kept compact (feed and
/// threat as numbers, about 32 bytes each) and made into [`Listing`]s only when they match.
#[derive(Debug)]
pub struct IndicatorIndex {
    host4: HostMap<u32>,
    host6: HostMap<u128>,
    /// Listings of single addresses, grouped by address (the maps point into it).
    hosts: Vec<Compact>,
    nets4: Ranges<u32>,
    nets6: Ranges<u128>,
    /// Per distinct listed network: its listings' range in `net_listings`.
    groups: Vec<(u32, u32)>,
    net_listings: Vec<Compact>,
    feeds: Vec<Arc<str>>,
    /// Threat texts; a listing's `threat` is 1 + its place here (0: none).
    threats: Vec<Arc<str>>,
}

/// A listing inside the index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Compact {
    net: IpNet,
    feed: u32,
    port: Option<u16>,
    threat: u32,
}

impl Default for IndicatorIndex {
    fn default() -> Self {
        IndicatorIndex {
            host4: host_map(),
            host6: host_map(),
            hosts: Vec::new(),
            nets4: Ranges::default(),
            nets6: Ranges::default(),
            groups: Vec::new(),
            net_listings: Vec::new(),
            feeds: Vec::new(),
            threats: Vec::new(),
        }
    }
}

impl IndicatorIndex {
    /// Builds the index of `sets`.
    pub fn build(sets: &[IndicatorSet]) -> Self {
        let mut b = IndexBuilder::default();
        for s in sets {
            let feed = b.feed_id(&s.feed);
            for e in &s.entries {
                let threat = e.threat.as_deref().map_or(0, |t| b.threat_id(t));
                b.add(feed, e.net, e.port, threat);
            }
        }
        b.finish()
    }

    /// True when nothing is loaded.
    pub fn is_empty(&self) -> bool {
        self.hosts.is_empty() && self.net_listings.is_empty()
    }

    /// The feeds whose sets are loaded (a set may be empty), in the order they were loaded.
    pub fn feeds(&self) -> impl Iterator<Item = &str> {
        self.feeds.iter().map(|f| &**f)
    }

    /// Number of distinct listings (feed, entry, port, threat).
    pub fn len(&self) -> usize {
        self.hosts.len() + self.net_listings.len()
    }

    /// Appends to `out` every listing that matches `ip` (and `port`: an entry with a port
    /// matches only that port; one without matches any). An IPv4-mapped IPv6 address is
    /// looked up as its IPv4 address.
    #[inline]
    pub fn matches(&self, ip: IpAddr, port: Option<u16>, out: &mut Vec<Listing>) {
        let (host, nets) = match ip.to_canonical() {
            IpAddr::V4(a) => {
                let k = u32::from(a);
                (self.host4.get(&k), self.nets4.find(k))
            }
            IpAddr::V6(a) => {
                let k = u128::from(a);
                (self.host6.get(&k), self.nets6.find(k))
            }
        };
        if let Some(&(at, n)) = host {
            self.push(&self.hosts[at as usize..(at + n) as usize], port, out);
        }
        for &g in nets {
            let (at, n) = self.groups[g as usize];
            self.push(
                &self.net_listings[at as usize..(at + n) as usize],
                port,
                out,
            );
        }
    }

    fn push(&self, listings: &[Compact], port: Option<u16>, out: &mut Vec<Listing>) {
        for c in listings {
            if c.port.is_none() || c.port == port {
                out.push(Listing {
                    feed: self.feeds[c.feed as usize].clone(),
                    net: c.net,
                    port: c.port,
                    threat: c
                        .threat
                        .checked_sub(1)
                        .map(|i| self.threats[i as usize].clone()),
                });
            }
        }
    }
}

/// Collects listings, then sorts them into an [`IndicatorIndex`].
#[derive(Default)]
struct IndexBuilder {
    items: Vec<Compact>,
    feeds: Vec<Arc<str>>,
    feed_ids: HashMap<Arc<str>, u32>,
    threats: Vec<Arc<str>>,
    threat_ids: HashMap<Arc<str>, u32>,
}

impl IndexBuilder {
    fn feed_id(&mut self, f: &str) -> u32 {
        intern(&mut self.feeds, &mut self.feed_ids, f)
    }

    /// 1 + the threat's place in the table.
    fn threat_id(&mut self, t: &str) -> u32 {
        intern(&mut self.threats, &mut self.threat_ids, t) + 1
    }

    fn add(&mut self, feed: u32, net: IpNet, port: Option<u16>, threat: u32) {
        self.items.push(Compact {
            net: net.trunc(),
            feed,
            port,
            threat,
        });
    }

    fn finish(self) -> IndicatorIndex {
        let mut idx = IndicatorIndex {
            feeds: self.feeds,
            threats: self.threats,
            ..IndicatorIndex::default()
        };
        let (mut hosts, mut nets): (Vec<Compact>, Vec<Compact>) = self
            .items
            .into_iter()
            .partition(|l| l.net.prefix_len() == l.net.max_prefix_len());
        // By address (then feed, port, threat), each listing once.
        hosts.sort_unstable();
        hosts.dedup();
        let mut i = 0;
        while i < hosts.len() {
            let addr = hosts[i].net.addr();
            let j = i + hosts[i..]
                .iter()
                .take_while(|l| l.net.addr() == addr)
                .count();
            let span = (i as u32, (j - i) as u32);
            match addr {
                IpAddr::V4(a) => idx.host4.insert(u32::from(a), span),
                IpAddr::V6(a) => idx.host6.insert(u128::from(a), span),
            };
            i = j;
        }
        hosts.shrink_to_fit();
        idx.hosts = hosts;
        // Networks: one group per distinct network, then the intervals per family.
        nets.sort_unstable();
        nets.dedup();
        nets.shrink_to_fit();
        let mut v4: Vec<(u32, u32)> = Vec::new();
        let mut v6: Vec<(u128, u128)> = Vec::new();
        let mut group_ids4 = Vec::new();
        let mut group_ids6 = Vec::new();
        let mut i = 0;
        while i < nets.len() {
            let net = nets[i].net;
            let j = i + nets[i..].iter().take_while(|l| l.net == net).count();
            let g = idx.groups.len() as u32;
            idx.groups.push((i as u32, (j - i) as u32));
            match net {
                IpNet::V4(n) => {
                    v4.push((u32::from(n.network()), u32::from(n.broadcast())));
                    group_ids4.push(g);
                }
                IpNet::V6(n) => {
                    v6.push((u128::from(n.network()), u128::from(n.broadcast())));
                    group_ids6.push(g);
                }
            }
            i = j;
        }
        idx.net_listings = nets;
        idx.nets4 = Ranges::build(&v4, &group_ids4);
        idx.nets6 = Ranges::build(&v6, &group_ids6);
        idx
    }
}

/// The place of `s` in `table`, added when new.
fn intern(table: &mut Vec<Arc<str>>, ids: &mut HashMap<Arc<str>, u32>, s: &str) -> u32 {
    if let Some(&i) = ids.get(s) {
        return i;
    }
    let a: Arc<str> = Arc::from(s);
    let i = table.len() as u32;
    table.push(a.clone());
    ids.insert(a, i);
    i
}

/// An address as an ordered number.
trait Key: Copy + Ord + std::fmt::Debug {
    fn succ(self) -> Option<Self>;
    fn pred(self) -> Self;
    const MAX: Self;
}

impl Key for u32 {
    fn succ(self) -> Option<Self> {
        self.checked_add(1)
    }
    fn pred(self) -> Self {
        self - 1
    }
    const MAX: Self = u32::MAX;
}

impl Key for u128 {
    fn succ(self) -> Option<Self> {
        self.checked_add(1)
    }
    fn pred(self) -> Self {
        self - 1
    }
    const MAX: Self = u128::MAX;
}

/// Disjoint, sorted intervals `[starts[i], ends[i]]`, each covered by the networks
/// `ids[spans[i]]`. Networks that contain one address all differ in prefix length, so an
/// interval names at most 33 (IPv4) or 129 (IPv6) of them.
#[derive(Debug)]
struct Ranges<K> {
    starts: Vec<K>,
    ends: Vec<K>,
    spans: Vec<(u32, u32)>,
    ids: Vec<u32>,
}

impl<K> Default for Ranges<K> {
    fn default() -> Self {
        Ranges {
            starts: Vec::new(),
            ends: Vec::new(),
            spans: Vec::new(),
            ids: Vec::new(),
        }
    }
}

impl<K: Key> Ranges<K> {
    /// `nets[i]` (first and last address, distinct networks) is group `groups[i]`.
    fn build(nets: &[(K, K)], groups: &[u32]) -> Self {
        let mut r = Ranges::default();
        if nets.is_empty() {
            return r;
        }
        // Elementary intervals: cut at every network's first address and after its last.
        let mut cuts: Vec<K> = Vec::with_capacity(nets.len() * 2);
        for &(s, e) in nets {
            cuts.push(s);
            if let Some(n) = e.succ() {
                cuts.push(n);
            }
        }
        cuts.sort_unstable();
        cuts.dedup();
        let mut cover: Vec<Vec<u32>> = vec![Vec::new(); cuts.len()];
        for (&(s, e), &g) in nets.iter().zip(groups) {
            let a = cuts.partition_point(|c| *c < s);
            let b = match e.succ() {
                Some(n) => cuts.partition_point(|c| *c < n),
                None => cuts.len(),
            };
            for c in &mut cover[a..b] {
                c.push(g);
            }
        }
        for (k, c) in cover.into_iter().enumerate() {
            if c.is_empty() {
                continue;
            }
            let start = cuts[k];
            let end = cuts.get(k + 1).map_or(K::MAX, |n| n.pred());
            // Merge with the previous interval when it ends just before and names the same.
            if let (Some(last_end), Some(&(at, n))) = (r.ends.last_mut(), r.spans.last())
                && last_end.succ() == Some(start)
                && r.ids[at as usize..(at + n) as usize] == c[..]
            {
                *last_end = end;
                continue;
            }
            r.starts.push(start);
            r.ends.push(end);
            r.spans.push((r.ids.len() as u32, c.len() as u32));
            r.ids.extend(c);
        }
        r
    }

    /// The networks covering `k` (empty when none).
    #[inline]
    fn find(&self, k: K) -> &[u32] {
        let i = self.starts.partition_point(|s| *s <= k);
        if i == 0 || k > self.ends[i - 1] {
            return &[];
        }
        let (at, n) = self.spans[i - 1];
        &self.ids[at as usize..(at + n) as usize]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-11-20T08:00:00Z")
            .unwrap()
            .with_timezone(&Utc)
    }

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
        out.clear();
        idx.matches("::ffff:203.0.113.9".parse().unwrap(), None, &mut out);
        assert_eq!(out.len(), 1, "a mapped address is looked up as IPv4");
    }

    #[test]
    fn nested_and_edge_networks_split_into_intervals() {
        let e = |n: &str| Entry {
            net: n.parse().unwrap(),
            port: None,
            threat: None,
        };
        let set = IndicatorSet {
            feed: "drop".into(),
            fetched: t(),
            entries: vec![
                e("10.0.0.0/8"),
                e("10.1.0.0/16"),
                e("255.255.255.0/24"),
                e("0.0.0.0/31"),
                e("ffff::/16"),
            ],
        };
        let idx = IndicatorIndex::build(&[set]);
        let n = |ip: &str| {
            let mut out = Vec::new();
            idx.matches(ip.parse().unwrap(), None, &mut out);
            let mut v: Vec<String> = out.iter().map(|l| l.net.to_string()).collect();
            v.sort();
            v
        };
        assert_eq!(n("10.1.2.3"), ["10.0.0.0/8", "10.1.0.0/16"]);
        assert_eq!(n("10.2.0.0"), ["10.0.0.0/8"]);
        assert_eq!(n("10.255.255.255"), ["10.0.0.0/8"]);
        assert!(n("11.0.0.0").is_empty());
        assert_eq!(n("255.255.255.255"), ["255.255.255.0/24"]);
        assert_eq!(n("0.0.0.1"), ["0.0.0.0/31"]);
        assert!(n("0.0.0.2").is_empty());
        assert_eq!(n("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"), ["ffff::/16"]);
        assert!(n("fffe::1").is_empty());
    }

    #[test]
    fn builder_dedups_keeps_list_order_and_cuts_at_the_cap() {
        let mut b = SetBuilder::with_cap(2);
        let net = |s: &str| s.parse::<IpNet>().unwrap();
        b.push(net("192.0.2.9/32"), Some(443), Some("QakBot"), None);
        b.push(net("192.0.2.9/32"), Some(443), Some("QakBot"), None);
        b.push(net("2001:db8::1/128"), None, Some("x"), Some("botnet_cc"));
        b.push(net("198.51.100.0/24"), None, None, None);
        b.not_an_address();
        let k = b.finish("feodotracker", "https://example.net/list.csv", t());
        assert_eq!(
            (k.info.entries, k.info.cut, k.info.not_addresses),
            (2, 1, 1)
        );
        let (info, set) = decode(&k.bytes).unwrap();
        assert_eq!(info, k.info);
        assert_eq!(set.feed, "feodotracker");
        assert_eq!(set.fetched, t());
        assert_eq!(
            set.entries,
            vec![
                Entry {
                    net: net("192.0.2.9/32"),
                    port: Some(443),
                    threat: Some("QakBot".into())
                },
                Entry {
                    net: net("2001:db8::1/128"),
                    port: None,
                    threat: Some("x (botnet_cc)".into())
                },
            ]
        );
    }

    #[test]
    fn damaged_and_foreign_values_are_refused_not_panicked_on() {
        let k = SetBuilder::default().finish("f", "u", t());
        assert!(decode(&k.bytes).is_ok());
        assert!(decode(&[]).is_err());
        let mut other = k.bytes.clone();
        other[0] = 9;
        assert!(matches!(decode(&other), Err(ReadError::Format(9))));
        for cut in 0..k.bytes.len() {
            let _ = decode(&k.bytes[..cut]);
        }
    }

    #[test]
    fn long_threat_texts_are_clipped_at_a_character_boundary() {
        let mut b = SetBuilder::default();
        let long = "é".repeat(300);
        b.push("192.0.2.1/32".parse().unwrap(), None, Some(&long), None);
        let (_, set) = decode(&b.finish("f", "u", t()).bytes).unwrap();
        assert_eq!(set.entries[0].threat.as_ref().unwrap().chars().count(), 100);
    }
}
