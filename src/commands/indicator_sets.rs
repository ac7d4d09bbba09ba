//! The list feeds' kept indicator sets as `lookup` and `status` show them: which lists name an
//! address ("Listed by"), and per feed how large and how old its set is.

use crate::outln;
use std::net::IpAddr;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use crate::error::CliError;
use crate::indicators::{self, ListedBy};
use crate::output::rfc3339;
use crate::store::{Query, Store};
use crate::text::clip;
use crate::text::thousands;

/// The kept entries naming the looked-up address (none for other queries).
pub(crate) fn listed_by(store: &dyn Store, q: &Query) -> Result<Vec<ListedBy>, CliError> {
    match q {
        Query::Ip(ip) => Ok(indicators::listed_by(store, *ip)?),
        _ => Ok(Vec::new()),
    }
}

/// `lookup --json`'s `listed_by` array.
pub(crate) fn listed_json(listed: &[ListedBy]) -> Value {
    Value::Array(
        listed
            .iter()
            .map(|l| {
                json!({
                    "feed": l.feed,
                    "entry": l.entry.to_string(),
                    "port": l.port,
                    "threat": l.threat,
                    "list_fetched": rfc3339(l.fetched),
                })
            })
            .collect(),
    )
}

/// The "Listed by" block of `lookup` (nothing when no list names the address).
pub(crate) fn print_listed(listed: &[ListedBy]) -> Result<(), CliError> {
    if listed.is_empty() {
        return Ok(());
    }
    outln!("Listed by (the list feeds' last downloads, every entry, ours or not):");
    for l in listed {
        let entry = match (l.entry, l.port) {
            (e, Some(p)) if e.prefix_len() == e.max_prefix_len() => match e.addr() {
                IpAddr::V6(a) => format!("[{a}]:{p}"),
                a => format!("{a}:{p}"),
            },
            (e, Some(p)) => format!("{e} port {p}"),
            (e, None) if e.prefix_len() == e.max_prefix_len() => e.addr().to_string(),
            (e, None) => e.to_string(),
        };
        let threat = l
            .threat
            .as_deref()
            .map(|t| format!(" {}", clip(t, 60)))
            .unwrap_or_default();
        outln!(
            "  {}: {entry}{threat} (list of {} UTC)",
            l.feed,
            l.fetched.format("%Y-%m-%d %H:%M")
        );
    }
    Ok(())
}

/// One feed's kept sets, summed over its units (URLs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FeedSet {
    pub feed: String,
    pub units: usize,
    pub entries: usize,
    pub cut: usize,
    pub not_addresses: usize,
    pub bytes: usize,
    /// The oldest unit's download.
    pub fetched: DateTime<Utc>,
}

/// Every feed with a kept set, by name.
pub(crate) fn feed_sets(store: &dyn Store) -> Result<Vec<FeedSet>, CliError> {
    let mut out: Vec<FeedSet> = Vec::new();
    for s in indicators::kept_sets(store)? {
        match out.iter_mut().find(|f| f.feed == s.feed) {
            Some(f) => {
                f.units += 1;
                f.entries += s.entries;
                f.cut += s.cut;
                f.not_addresses += s.not_addresses;
                f.bytes += s.bytes;
                f.fetched = f.fetched.min(s.fetched);
            }
            None => out.push(FeedSet {
                feed: s.feed,
                units: 1,
                entries: s.entries,
                cut: s.cut,
                not_addresses: s.not_addresses,
                bytes: s.bytes,
                fetched: s.fetched,
            }),
        }
    }
    out.sort_by(|a, b| a.feed.cmp(&b.feed));
    Ok(out)
}

/// `status --json`'s `indicator_sets` array.
pub(crate) fn sets_json(sets: &[FeedSet], now: DateTime<Utc>) -> Value {
    Value::Array(
        sets.iter()
            .map(|s| {
                json!({
                    "feed": s.feed,
                    "units": s.units,
                    "entries": s.entries,
                    "cut": s.cut,
                    "not_addresses": s.not_addresses,
                    "bytes": s.bytes,
                    "fetched": rfc3339(s.fetched),
                    "age_seconds": (now - s.fetched).num_seconds().max(0),
                })
            })
            .collect(),
    )
}

/// The text block of `status`: one line per feed.
pub(crate) fn print_sets(sets: &[FeedSet], now: DateTime<Utc>) -> Result<(), CliError> {
    if sets.is_empty() {
        return Ok(());
    }
    outln!("indicator sets (for `outwatch flows`):");
    for s in sets {
        let mut line = format!(
            "{}: {} addresses/networks, {} KiB, {} old",
            s.feed,
            thousands(s.entries),
            thousands(s.bytes.div_ceil(1024)),
            age(now - s.fetched)
        );
        if s.cut > 0 {
            line.push_str(&format!(", {} left out at the cap", thousands(s.cut)));
        }
        if s.not_addresses > 0 {
            line.push_str(&format!(
                ", {} host-name/ASN entries not matchable",
                thousands(s.not_addresses)
            ));
        }
        for l in crate::output::wrapped(&line, "  ", "      ") {
            outln!("{l}");
        }
    }
    Ok(())
}

/// `45m`, `3h`, `2d`.
fn age(d: chrono::Duration) -> String {
    let m = d.num_minutes().max(0);
    if m < 120 {
        format!("{m}m")
    } else if m < 48 * 60 {
        format!("{}h", m / 60)
    } else {
        format!("{}d", m / (24 * 60))
    }
}
