//! A finding as a row of a spreadsheet: the columns of `outwatch list --format csv` and of
//! the web view's `.csv` lists, with cells safe from formula injection.

use crate::finding::Finding;
use crate::finding::contact::contact;
use crate::finding::rank::observed;
use crate::text::sanitize;

fn rfc3339(t: chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// The columns of `--format csv`, one row per finding. Times are RFC 3339 UTC to the second;
/// `observed` is when the provider saw it (else when stored), `stored` when outwatch last
/// stored it.
pub(crate) const CSV_HEADER: [&str; 26] = [
    "observed",
    "severity",
    "status",
    "indicator",
    "ip",
    "port",
    "protocol",
    "src_port",
    "src_ip",
    "dst_ip",
    "dst_port",
    "network",
    "domain",
    "url",
    "email",
    "asn",
    "source",
    "feed",
    "taxonomy",
    "type",
    "identifier",
    "details",
    "first_stored",
    "stored",
    "times_seen",
    "fingerprint",
];

/// A cell for a spreadsheet: control characters escaped ([`sanitize`]), and one that would
/// start a formula (`= + - @`, tab, carriage return) prefixed with `'` (CSV injection: feed
/// content is the attacker's).
pub(crate) fn csv_cell(s: &str) -> String {
    let s = sanitize(s);
    if s.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{s}")
    } else {
        s.into_owned()
    }
}

/// A finding's row under [`CSV_HEADER`].
pub(crate) fn csv_row(f: &Finding) -> Vec<String> {
    let opt = |v: Option<String>| v.unwrap_or_default();
    let c = contact(f);
    let get = |k: &str| opt(c.iter().find(|(n, _)| *n == k).map(|(_, v)| v.clone()));
    let row = [
        rfc3339(observed(f)),
        f.severity.to_string(),
        f.status.to_string(),
        f.indicator(),
        opt(f.ip.map(|x| x.to_string())),
        opt(f.port.map(|x| x.to_string())),
        opt(f.protocol.clone()),
        get("src_port"),
        get("src_ip"),
        get("dst_ip"),
        get("dst_port"),
        opt(f.network.map(|x| x.to_string())),
        opt(f.domain.clone()),
        opt(f.url.clone()),
        opt(f.email.clone()),
        opt(f.asn.map(|x| x.to_string())),
        f.source.clone(),
        f.feed.clone(),
        f.classification.taxonomy.clone(),
        f.classification.kind.clone(),
        f.classification.identifier.clone(),
        f.distinguishing(),
        rfc3339(f.first_seen),
        rfc3339(f.last_seen),
        f.times_seen.to_string(),
        f.fingerprint.clone(),
    ];
    row.iter().map(|s| csv_cell(s)).collect()
}
