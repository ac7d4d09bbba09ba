//! What a page shows of a finding: a row of a list ([`row`]) and the whole of it on an object
//! or finding page ([`detail`]): observation times, history with who and why, the lists that
//! name its address, the suppression rule that covers it, the notifications sent. Values are
//! the feed's own: the templates escape them (HTML), JSON escapes by itself.

use std::net::IpAddr;

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Value, json};

use crate::finding::rank::observed;
use crate::finding::{Event, Finding};
use crate::notify::record::SentRecord;
use crate::store::Query;
use crate::triage::Suppressions;

/// RFC 3339 to the second.
pub(super) fn time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// The lookup query of a finding's object: its address, network, mail address, host name or
/// URL host, or ASN; the path of its page is `/lookup/` and this.
pub(super) fn object_of(f: &Finding) -> Option<String> {
    if let Some(ip) = f.ip {
        return Some(ip.to_string());
    }
    if let Some(n) = f.network {
        return Some(n.to_string());
    }
    if let Some(e) = &f.email {
        return Some(e.clone());
    }
    if let Some(d) = &f.domain {
        return Some(d.clone());
    }
    if let Some(h) = f.url.as_deref().and_then(crate::store::filter::url_host) {
        return Some(h);
    }
    f.asn.map(|a| format!("AS{a}"))
}

/// A finding as a row of a list.
pub(super) fn row(f: &Finding, supp: &Suppressions) -> Value {
    let c = &f.classification;
    json!({
        "fingerprint": f.fingerprint,
        "short": &f.fingerprint[..f.fingerprint.len().min(10)],
        "severity": f.severity.as_str(),
        "status": f.status.to_string(),
        "acked": f.acked().is_some(),
        "suppressed": supp.matches(f).map(|r| r.describe()),
        "indicator": f.indicator(),
        "object": object_of(f),
        "source": f.source,
        "feed": f.feed,
        "taxonomy": c.taxonomy,
        "type": c.kind,
        "identifier": c.identifier,
        "details": f.distinguishing(),
        "asn": f.asn,
        "observed": time(observed(f)),
        "first_seen": time(f.first_seen),
        "last_seen": time(f.last_seen),
        "times_seen": f.times_seen,
    })
}

/// A history entry for people.
fn history_entry(at: DateTime<Utc>, e: &Event) -> Value {
    let (by, text) = match e {
        Event::Ack(t) | Event::Unack(t) | Event::Note(t) | Event::Resolved(Some(t)) => {
            (Some(t.by.as_str()), Some(t.text.as_str()))
        }
        _ => (None, None),
    };
    json!({ "at": time(at), "event": e.as_str(), "by": by, "text": text })
}

/// Everything known about one finding: its row, times, history, notes, observations, fields,
/// the rule that suppresses it, the notifications sent and (for an address) the lists that
/// name it.
pub(super) fn detail(
    f: &Finding,
    supp: &Suppressions,
    sent: Option<&SentRecord>,
    listed_by: &[crate::indicators::ListedBy],
) -> Value {
    let mut v = row(f, supp);
    let history: Vec<Value> = f
        .history
        .iter()
        .rev()
        .map(|h| history_entry(h.at, &h.event))
        .collect();
    let notes: Vec<Value> = f
        .history
        .iter()
        .filter(|h| matches!(h.event, Event::Note(_)))
        .map(|h| history_entry(h.at, &h.event))
        .collect();
    let observations: Vec<Value> = f
        .observations
        .iter()
        .rev()
        .map(|o| {
            json!({ "time_source": o.time_source.map(time),
                "differs": serde_json::to_string(&o.differs).unwrap_or_default() })
        })
        .collect();
    let extra: Vec<Value> = f
        .extra
        .iter()
        .map(|(k, x)| {
            let text = match x {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            json!({ "key": k, "value": text })
        })
        .collect();
    let sent: Vec<Value> = sent
        .map(|r| {
            r.sent
                .iter()
                .rev()
                .map(|s| json!({ "contact": s.contact, "at": time(s.at), "ticket": s.ticket, "to": s.to }))
                .collect()
        })
        .unwrap_or_default();
    let listed: Vec<Value> = listed_by
        .iter()
        .map(|l| json!({ "feed": l.feed, "entry": l.entry.to_string(), "port": l.port }))
        .collect();
    if let Some(o) = v.as_object_mut() {
        o.insert("ip".into(), json!(f.ip.map(|x| x.to_string())));
        o.insert("port".into(), json!(f.port));
        o.insert("protocol".into(), json!(f.protocol));
        o.insert("network".into(), json!(f.network.map(|x| x.to_string())));
        o.insert("domain".into(), json!(f.domain));
        o.insert("url".into(), json!(f.url));
        o.insert("email".into(), json!(f.email));
        o.insert("time_source".into(), json!(f.time_source.map(time)));
        o.insert("in_scope".into(), json!(f.in_scope));
        o.insert("raw".into(), json!(f.raw));
        o.insert("identity".into(), json!(f.identity));
        o.insert("history".into(), Value::Array(history));
        o.insert("notes".into(), Value::Array(notes));
        o.insert("observations".into(), Value::Array(observations));
        o.insert("observations_dropped".into(), json!(f.observations_dropped));
        o.insert("extra".into(), Value::Array(extra));
        o.insert("notifications".into(), Value::Array(sent));
        o.insert("listed_by".into(), Value::Array(listed));
        o.insert(
            "acked_by".into(),
            json!(f.acked().map(|h| history_entry(h.at, &h.event))),
        );
    }
    v
}

/// A query as a path: each character a path may not hold percent-encoded (`/` kept, so a
/// prefix reads `/lookup/192.0.2.0/24`).
pub(super) fn path_escape(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~:@/".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The kind of object a query names, for a page's title.
pub(super) fn kind_of(q: &Query) -> &'static str {
    match q {
        Query::Ip(_) => "address",
        Query::Net(_) => "prefix",
        Query::Domain(_) => "domain",
        Query::Email(_) => "mail address",
        Query::Asn(_) => "ASN",
    }
}

/// The address a query names, when it names one (its lists are shown).
pub(super) fn address_of(q: &Query) -> Option<IpAddr> {
    match q {
        Query::Ip(ip) => Some(*ip),
        _ => None,
    }
}
