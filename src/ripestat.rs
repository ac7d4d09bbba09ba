//! RIPEstat Data API client: ASN → currently announced prefixes
//! (`GET {base}/data/announced-prefixes/data.json?resource=AS64496&sourceapp=outwatch`), and an
//! address → the abuse contact of the RIPE database's object holding it
//! (`GET {base}/data/abuse-contact-finder/data.json?resource=192.0.2.1&sourceapp=outwatch`).

use chrono::NaiveDateTime;
use ipnet::IpNet;
use reqwest::header::HeaderMap;
use serde::Deserialize;

use crate::http::{Fetched, HttpClient, HttpError};

/// Identifies outwatch to RIPEstat, as its usage rules ask.
pub const SOURCEAPP: &str = "outwatch";

/// How far before `latest_time` a timeline may end and still count as "currently announced"
/// (RIS dumps are 8-hourly; a day absorbs a missed dump).
const CURRENT_SLACK_HOURS: i64 = 24;

#[derive(Debug, thiserror::Error)]
pub enum RipestatError {
    #[error(transparent)]
    Http(#[from] HttpError),
    #[error("RIPEstat reply is not usable: {0}")]
    Format(#[from] ReplyError),
}

/// Why an `announced-prefixes` reply cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ReplyError {
    #[error("not RIPEstat JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("status `{status}`: {messages}")]
    Status { status: String, messages: String },
    #[error("no `data` object")]
    NoData,
    #[error("`{0}` is not a prefix")]
    Prefix(String),
    #[error("unexpected 304")]
    NotModified,
}

#[derive(Deserialize)]
struct Envelope {
    status: Option<String>,
    #[serde(default)]
    messages: Vec<Vec<String>>,
    data: Option<Data>,
}

#[derive(Deserialize)]
struct Data {
    #[serde(default)]
    prefixes: Vec<PrefixEntry>,
    latest_time: Option<String>,
}

#[derive(Deserialize)]
struct PrefixEntry {
    prefix: String,
    #[serde(default)]
    timelines: Vec<Timeline>,
}

#[derive(Deserialize)]
struct Timeline {
    endtime: Option<String>,
}

fn parse_time(s: &str) -> Option<NaiveDateTime> {
    NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S")
        .or_else(|_| NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f"))
        .ok()
}

/// Parses an `announced-prefixes` reply into the prefixes announced at its `latest_time`
/// (every listed prefix when the reply carries no times). Sorted, without duplicates.
pub fn parse_announced_prefixes(body: &[u8]) -> Result<Vec<IpNet>, ReplyError> {
    let env: Envelope = serde_json::from_slice(body)?;
    if let Some(s) = &env.status
        && s != "ok"
    {
        let msgs: Vec<String> = env.messages.iter().map(|m| m.join(": ")).collect();
        return Err(ReplyError::Status {
            status: s.clone(),
            messages: msgs.join("; "),
        });
    }
    let data = env.data.ok_or(ReplyError::NoData)?;
    let latest = data.latest_time.as_deref().and_then(parse_time);
    let mut out = Vec::new();
    for p in data.prefixes {
        let net: IpNet = p
            .prefix
            .parse()
            .map_err(|_| ReplyError::Prefix(crate::text::clip(&p.prefix, 80)))?;
        let current = match latest {
            None => true,
            Some(l) => {
                p.timelines.is_empty()
                    || p.timelines.iter().any(|t| {
                        t.endtime
                            .as_deref()
                            .and_then(parse_time)
                            .is_none_or(|e| (l - e).num_hours() <= CURRENT_SLACK_HOURS)
                    })
            }
        };
        if current {
            out.push(net.trunc());
        }
    }
    out.sort();
    out.dedup();
    Ok(out)
}

/// Most abuse addresses kept from one `abuse-contact-finder` reply.
pub const MAX_ABUSE_CONTACTS: usize = 5;

/// What `abuse-contact-finder` says of one address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AbuseContacts {
    /// The abuse mail addresses (lower-case; only those that are mail addresses, at most
    /// [`MAX_ABUSE_CONTACTS`]); empty when the registry names none.
    pub contacts: Vec<String>,
    /// The registry that answered (`ripe`, `arin`, ...), as given.
    pub rir: Option<String>,
    /// Addresses in the reply left out because they are not mail addresses (clipped).
    pub rejected: Vec<String>,
}

#[derive(Deserialize)]
struct AbuseEnvelope {
    status: Option<String>,
    #[serde(default)]
    messages: Vec<Vec<String>>,
    data: Option<AbuseData>,
}

#[derive(Deserialize)]
struct AbuseData {
    #[serde(default)]
    abuse_contacts: Vec<String>,
    authoritative_rir: Option<String>,
}

/// Parses an `abuse-contact-finder` reply. The addresses come from a registry anyone writes
/// to: each must be a mail address ([`crate::config::mail_address`]) to be kept.
pub fn parse_abuse_contacts(body: &[u8]) -> Result<AbuseContacts, ReplyError> {
    let env: AbuseEnvelope = serde_json::from_slice(body)?;
    if let Some(s) = &env.status
        && s != "ok"
    {
        let msgs: Vec<String> = env.messages.iter().map(|m| m.join(": ")).collect();
        return Err(ReplyError::Status {
            status: crate::text::clip(s, 40),
            messages: crate::text::clip(&msgs.join("; "), 200),
        });
    }
    let data = env.data.ok_or(ReplyError::NoData)?;
    let mut out = AbuseContacts {
        contacts: Vec::new(),
        rir: data.authoritative_rir.map(|r| crate::text::clip(&r, 20)),
        rejected: Vec::new(),
    };
    for a in data.abuse_contacts {
        let a = a.trim().to_ascii_lowercase();
        // A bare address only (no display name; no control characters reach a mail header).
        if crate::config::mail_address(&a).is_ok_and(|bare| bare == a)
            && !a.chars().any(|c| c.is_control() || c == ',' || c == '"')
        {
            if !out.contacts.contains(&a) && out.contacts.len() < MAX_ABUSE_CONTACTS {
                out.contacts.push(a);
            }
        } else if out.rejected.len() < MAX_ABUSE_CONTACTS {
            out.rejected.push(crate::text::clip(&a, 80));
        }
    }
    Ok(out)
}

/// Asks `abuse-contact-finder` for the abuse contact of `ip`.
pub async fn abuse_contacts(
    http: &HttpClient,
    base: &str,
    ip: std::net::IpAddr,
) -> Result<AbuseContacts, RipestatError> {
    let url = format!(
        "{}/data/abuse-contact-finder/data.json?resource={ip}&sourceapp={SOURCEAPP}",
        base.trim_end_matches('/')
    );
    match http.get(&url, HeaderMap::new(), None, &[]).await? {
        Fetched::Body { body, .. } => Ok(parse_abuse_contacts(&body)?),
        Fetched::NotModified => Err(ReplyError::NotModified.into()),
    }
}

/// Fetches the currently announced prefixes of `asn`.
pub async fn announced_prefixes(
    http: &HttpClient,
    base: &str,
    asn: u32,
) -> Result<Vec<IpNet>, RipestatError> {
    let url = format!(
        "{}/data/announced-prefixes/data.json?resource=AS{asn}&sourceapp={SOURCEAPP}",
        base.trim_end_matches('/')
    );
    match http.get(&url, HeaderMap::new(), None, &[]).await? {
        Fetched::Body { body, .. } => Ok(parse_announced_prefixes(&body)?),
        Fetched::NotModified => Err(ReplyError::NotModified.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_only_current_prefixes() {
        let body = br#"{"status":"ok","messages":[],"data":{"prefixes":[
          {"prefix":"192.0.2.0/24","timelines":[{"starttime":"2026-01-01T00:00:00","endtime":"2026-06-10T16:00:00"}]},
          {"prefix":"198.51.100.0/24","timelines":[{"starttime":"2026-01-01T00:00:00","endtime":"2026-05-01T08:00:00"}]},
          {"prefix":"2001:db8::/32","timelines":[{"starttime":"2026-01-01T00:00:00","endtime":"2026-06-10T08:00:00"}]}
        ],"latest_time":"2026-06-10T16:00:00","resource":"64496"}}"#;
        let p = parse_announced_prefixes(body).unwrap();
        let s: Vec<String> = p.iter().map(|n| n.to_string()).collect();
        assert_eq!(s, vec!["192.0.2.0/24", "2001:db8::/32"]);
    }

    /// The reply as RIPEstat writes it (data call 2.1): the addresses kept when they are mail
    /// addresses, lower-cased, once each.
    #[test]
    fn abuse_contacts_are_read_and_checked() {
        let body = br#"{"messages":[],"see_also":[],"version":"2.1",
          "data_call_name":"abuse-contact-finder","data_call_status":"supported","cached":false,
          "data":{"abuse_contacts":["Abuse@Example.net","abuse@example.net","not an address"],
            "authoritative_rir":"ripe","latest_time":"2026-06-10T16:00:00",
            "earliest_time":"2026-06-10T16:00:00",
            "parameters":{"resource":"192.0.2.9","cache":null}},
          "query_id":"x","process_time":40,"server_id":"app1","build_version":"live",
          "status":"ok","status_code":200,"time":"2026-06-10T16:00:00.1"}"#;
        let a = parse_abuse_contacts(body).unwrap();
        assert_eq!(a.contacts, vec!["abuse@example.net"]);
        assert_eq!(a.rir.as_deref(), Some("ripe"));
        assert_eq!(a.rejected, vec!["not an address"]);
        let none = parse_abuse_contacts(
            br#"{"data":{"abuse_contacts":[],"authoritative_rir":"arin"},"status":"ok"}"#,
        )
        .unwrap();
        assert!(none.contacts.is_empty());
        assert!(parse_abuse_contacts(br#"{"status":"ok"}"#).is_err());
        assert!(
            parse_abuse_contacts(br#"{"status":"error","messages":[["error","bad resource"]]}"#)
                .is_err()
        );
    }

    #[test]
    fn error_status_is_an_error() {
        let e = parse_announced_prefixes(
            br#"{"status":"error","messages":[["error","resource not found"]],"data":{}}"#,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("resource not found"), "{e}");
        assert!(parse_announced_prefixes(b"<html>").is_err());
    }
}
