//! The life cycle of a finding: one rule, applied by every backend when a unit is ingested.
//!
//! - A finding stored for the first time is `new`, seen once, with the history entry `new`
//!   ([`stamp_new`]).
//! - An observation of a stored finding ([`merge`]) moves `last_seen`, makes the finding `open`
//!   (`reopened` in its history when it was resolved) and keeps `first_seen` and the history.
//! - **Repeated observations** ([`merge`] across units, [`repeat`] within one unit): an
//!   observation is told apart by its source time (`time_source`). Another source time is
//!   another observation: `times_seen` moves, the finding's fields become the latest
//!   observation's, and the earlier one is kept in [`Finding::observations`] as its time plus
//!   the values that differ from the finding's current ones (at most [`OBSERVATION_CAP`], the
//!   oldest dropped and counted in [`Finding::observations_dropped`]). An observation older
//!   than the current one goes into that list, the current fields stay. The same source time
//!   again (a report imported twice, a list re-read unchanged) is the same observation: its
//!   values replace the ones kept for it, nothing moves, so ingesting is idempotent. A source
//!   that gives no time counts each unit that reports the finding once (a repeat inside one
//!   unit is the same observation).
//!
//! The values compared are those an observation may change without changing the finding's
//! identity: `severity`, `in_scope`, `raw` (where the row was) and each `extra` field.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::IngestStats;
use crate::finding::{Finding, OBSERVATION_CAP, Observation, Status};

/// Stamps the life cycle of a finding stored for the first time, observed at `now`.
pub fn stamp_new(f: &mut Finding, now: DateTime<Utc>) {
    f.first_seen = now;
    f.last_seen = now;
    f.times_seen = 1;
    f.status = Status::New;
    f.history.clear();
    f.push_history(now, "new");
    f.observations.clear();
    f.observations_dropped = 0;
}

/// Merges `obs`, a new observation received at `now`, into its stored twin `stored`, and counts
/// it in `stats` (updated; reopened when it was resolved).
pub fn merge(
    stored: Finding,
    obs: Finding,
    now: DateTime<Utc>,
    stats: &mut IngestStats,
) -> Finding {
    let was_resolved = stored.status == Status::Resolved;
    let last_seen = now.max(stored.last_seen);
    let mut f = observe(stored, obs, false);
    f.last_seen = last_seen;
    f.status = Status::Open;
    stats.updated += 1;
    if was_resolved {
        stats.reopened += 1;
        f.push_history(now, "reopened");
    }
    f
}

/// Folds `obs` into `first`, a finding with the same fingerprint that came earlier in the same
/// unit: another source time is another observation; the same one (or none, twice) is the
/// same observation, the later row's values win.
pub fn repeat(first: Finding, obs: Finding) -> Finding {
    observe(first, obs, true)
}

/// How an observation relates to what a finding holds.
#[derive(Debug, PartialEq, Eq)]
enum Relation {
    /// The current observation again: its values replace the current ones.
    Same,
    /// An earlier observation that is kept: its kept values are refreshed.
    Known(usize),
    /// Older than every kept observation while older ones were dropped: it may have been
    /// seen; counting it again could count it twice, so it is left out.
    Unknowable,
    /// A later observation (or one without a time, across units): it becomes current.
    Newer,
    /// An earlier observation not seen before: kept in the list.
    Older,
}

fn relation(cur: &Finding, obs: &Finding, same_unit: bool) -> Relation {
    let (c, o) = (cur.time_source, obs.time_source);
    if c == o && (c.is_some() || same_unit) {
        return Relation::Same;
    }
    let Some(o) = o else {
        return Relation::Newer;
    };
    if let Some(i) = cur
        .observations
        .iter()
        .position(|e| e.time_source == Some(o))
    {
        return Relation::Known(i);
    }
    match c {
        Some(c) if o < c => {
            let oldest = cur.observations.iter().find_map(|e| e.time_source);
            if cur.observations_dropped > 0 && oldest.is_none_or(|t| o < t) {
                Relation::Unknowable
            } else {
                Relation::Older
            }
        }
        _ => Relation::Newer,
    }
}

/// The observation part of a merge: life-cycle fields other than `times_seen` and the
/// observations stay `cur`'s.
fn observe(mut cur: Finding, obs: Finding, same_unit: bool) -> Finding {
    match relation(&cur, &obs, same_unit) {
        Relation::Same => adopt(cur, obs),
        Relation::Known(i) => {
            cur.observations[i].differs = differs(&values(&obs), &values(&cur));
            cur
        }
        Relation::Unknowable => cur,
        Relation::Older => {
            cur.times_seen += 1;
            let entry = Observation {
                time_source: obs.time_source,
                differs: differs(&values(&obs), &values(&cur)),
            };
            let at = cur
                .observations
                .iter()
                .position(|e| e.time_source.is_some_and(|t| Some(t) > obs.time_source))
                .unwrap_or(cur.observations.len());
            cur.observations.insert(at, entry);
            cap(&mut cur);
            cur
        }
        Relation::Newer => {
            let (old, new) = (values(&cur), values(&obs));
            for e in &mut cur.observations {
                let full = apply(&old, &e.differs);
                e.differs = differs(&full, &new);
            }
            let entry = Observation {
                time_source: cur.time_source,
                differs: differs(&old, &new),
            };
            // Without source times, a repeat with the same values tells nothing new.
            if entry.time_source.is_some() || !entry.differs.is_empty() {
                cur.observations.push(entry);
            }
            cur.times_seen += 1;
            cap(&mut cur);
            adopt(cur, obs)
        }
    }
}

/// `obs`'s fields with `cur`'s life cycle (first and last seen, count, status, history,
/// observations).
fn adopt(cur: Finding, mut obs: Finding) -> Finding {
    obs.fingerprint = cur.fingerprint;
    obs.first_seen = cur.first_seen;
    obs.last_seen = cur.last_seen;
    obs.times_seen = cur.times_seen;
    obs.status = cur.status;
    obs.history = cur.history;
    obs.observations = cur.observations;
    obs.observations_dropped = cur.observations_dropped;
    obs
}

/// Drops the oldest observations beyond [`OBSERVATION_CAP`], counting them.
fn cap(f: &mut Finding) {
    if f.observations.len() > OBSERVATION_CAP {
        let n = f.observations.len() - OBSERVATION_CAP;
        f.observations.drain(..n);
        f.observations_dropped += n as u64;
    }
}

/// Values of an observation by name.
pub type Values = BTreeMap<String, Value>;

/// The values an observation may change, by name (absent ones have no entry).
fn values(f: &Finding) -> Values {
    let mut m = BTreeMap::new();
    m.insert("severity".into(), Value::from(f.severity.as_str()));
    m.insert("in_scope".into(), Value::from(f.in_scope));
    if let Some(r) = &f.raw {
        m.insert("raw".into(), Value::from(r.as_str()));
    }
    for (k, v) in &f.extra {
        m.insert(format!("extra.{k}"), v.clone());
    }
    m
}

/// The values of `a` that differ from `b`; a name `b` has and `a` lacks is `null`.
fn differs(a: &BTreeMap<String, Value>, b: &BTreeMap<String, Value>) -> BTreeMap<String, Value> {
    let mut out = BTreeMap::new();
    for (k, v) in a {
        if b.get(k) != Some(v) {
            out.insert(k.clone(), v.clone());
        }
    }
    for k in b.keys().filter(|k| !a.contains_key(*k)) {
        out.insert(k.clone(), Value::Null);
    }
    out
}

/// `base` with `differs` applied (`null` removes a name).
fn apply(
    base: &BTreeMap<String, Value>,
    differs: &BTreeMap<String, Value>,
) -> BTreeMap<String, Value> {
    let mut m = base.clone();
    for (k, v) in differs {
        if v.is_null() {
            m.remove(k);
        } else {
            m.insert(k.clone(), v.clone());
        }
    }
    m
}

/// Every observation a finding holds, oldest first, each as its source time and its full
/// values (the current observation last): what [`Finding::observations`] encodes.
pub fn observation_values(f: &Finding) -> Vec<(Option<DateTime<Utc>>, Values)> {
    let cur = values(f);
    let mut out: Vec<_> = f
        .observations
        .iter()
        .map(|e| (e.time_source, apply(&cur, &e.differs)))
        .collect();
    out.push((f.time_source, cur));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::finding::{Classification, Severity};

    fn at(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_790_000_000 + s, 0).unwrap()
    }

    fn row(t: Option<i64>, banner: &str) -> Finding {
        let mut f = Finding::new(
            "shadowserver",
            "scan_telnet",
            Classification::new("", "vulnerable-system", "open-telnet"),
            Severity::Medium,
        );
        f.ip = Some("192.0.2.7".parse().unwrap());
        f.time_source = t.map(at);
        f.set_extra("banner", banner);
        f.raw = Some(format!("scan.csv:{}", t.unwrap_or(0)));
        f.seal();
        f
    }

    fn new(f: Finding) -> Finding {
        let mut f = f;
        stamp_new(&mut f, at(1000));
        f
    }

    #[test]
    fn a_later_observation_becomes_current_and_keeps_the_earlier_one() {
        let f = repeat(new(row(Some(34), "login:")), row(Some(40), "Username:"));
        assert_eq!(f.times_seen, 2);
        assert_eq!(f.time_source, Some(at(40)));
        assert_eq!(f.extra["banner"], "Username:");
        assert_eq!(f.observations.len(), 1);
        let all = observation_values(&f);
        assert_eq!(all[0].0, Some(at(34)));
        assert_eq!(all[0].1["extra.banner"], "login:");
        assert_eq!(all[0].1["raw"], "scan.csv:34");
        assert_eq!(all[1].1["extra.banner"], "Username:");
    }

    #[test]
    fn an_earlier_observation_is_kept_without_changing_the_current_one() {
        let f = repeat(new(row(Some(40), "Username:")), row(Some(34), "login:"));
        assert_eq!(f.times_seen, 2);
        assert_eq!(f.time_source, Some(at(40)));
        assert_eq!(f.extra["banner"], "Username:");
        assert_eq!(observation_values(&f)[0].1["extra.banner"], "login:");
    }

    #[test]
    fn the_same_observation_twice_counts_once() {
        let once = repeat(new(row(Some(34), "a")), row(Some(40), "b"));
        let mut stats = IngestStats::default();
        let twice = merge(once.clone(), row(Some(34), "a"), at(2000), &mut stats);
        let twice = merge(twice, row(Some(40), "b"), at(2000), &mut stats);
        assert_eq!(twice.times_seen, 2);
        assert_eq!(twice.observations, once.observations);
        assert_eq!(twice.extra, once.extra);
        assert_eq!(stats.updated, 2);
    }

    #[test]
    fn diffs_follow_the_current_observation() {
        let mut f = new(row(Some(1), "one"));
        for t in 2..=4 {
            let mut r = row(Some(t), &format!("v{t}"));
            if t == 3 {
                r.extra.remove("banner");
                r.severity = Severity::High;
            }
            f = repeat(f, r);
        }
        assert_eq!(f.times_seen, 4);
        let all = observation_values(&f);
        let banners: Vec<Option<&Value>> = all.iter().map(|(_, v)| v.get("extra.banner")).collect();
        assert_eq!(
            banners,
            vec![
                Some(&Value::from("one")),
                Some(&Value::from("v2")),
                None,
                Some(&Value::from("v4"))
            ]
        );
        assert_eq!(all[2].1["severity"], "high");
        assert_eq!(all[3].1["severity"], "medium");
    }

    #[test]
    fn observations_are_capped_and_the_oldest_counted() {
        let mut f = new(row(Some(0), "x"));
        for t in 1..=(OBSERVATION_CAP as i64 + 5) {
            f = repeat(f, row(Some(t), &format!("b{t}")));
        }
        assert_eq!(f.times_seen, OBSERVATION_CAP as u64 + 6);
        assert_eq!(f.observations.len(), OBSERVATION_CAP);
        assert_eq!(f.observations_dropped, 5);
        assert_eq!(f.observations[0].time_source, Some(at(5)));
        // A dropped one again is not counted twice.
        let g = repeat(f.clone(), row(Some(2), "b2"));
        assert_eq!(g.times_seen, f.times_seen);
    }

    #[test]
    fn without_source_times_a_unit_counts_once() {
        let f = repeat(new(row(None, "a")), row(None, "b"));
        assert_eq!((f.times_seen, f.extra["banner"].as_str()), (1, Some("b")));
        assert!(f.observations.is_empty());
        let mut stats = IngestStats::default();
        let g = merge(f.clone(), row(None, "b"), at(2000), &mut stats);
        assert_eq!(g.times_seen, 2);
        assert!(g.observations.is_empty(), "same values: nothing to keep");
        let h = merge(g, row(None, "c"), at(3000), &mut stats);
        assert_eq!(h.times_seen, 3);
        assert_eq!(h.observations.len(), 1);
        assert_eq!(h.observations[0].differs["extra.banner"], "b");
    }

    #[test]
    fn merge_moves_the_life_cycle() {
        let mut stored = new(row(Some(1), "a"));
        stored.status = Status::Resolved;
        let mut stats = IngestStats::default();
        let f = merge(stored, row(Some(2), "b"), at(5000), &mut stats);
        assert_eq!(f.status, Status::Open);
        assert_eq!((f.first_seen, f.last_seen), (at(1000), at(5000)));
        assert_eq!(f.history.last().unwrap().event, "reopened");
        assert_eq!((stats.updated, stats.reopened), (1, 1));
    }
}
