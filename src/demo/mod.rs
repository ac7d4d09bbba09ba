//! `outwatch demo`: the whole pipeline against recorded data, on loopback, with no keys.
//!
//! A [`server::ReplayServer`] answers at the providers' real paths with the recorded replies in
//! `feeds/demo/` (a fictitious "Example Org": AS64496, 192.0.2.0/24, 198.51.100.0/24,
//! 2001:db8::/32, example.org). A config pointing every source's `base_url` at it is written
//! next to a fresh store; the command then fetches everything and renders the digest to files.

pub mod server;

use std::collections::HashMap;

use server::Reply;

/// A recorded reply: method, path at the provider, content type, body.
type Recorded = (&'static str, &'static str, &'static str, &'static [u8]);

const JSON: &str = "application/json";
const CSV: &str = "text/csv; charset=utf-8";

/// Every recorded reply the demo serves.
const RECORDED: &[Recorded] = &[
    (
        "GET",
        "/data/announced-prefixes/data.json",
        JSON,
        include_bytes!("../../feeds/demo/ripestat-announced-prefixes.json"),
    ),
    (
        "GET",
        "/api/v3/subscription/status",
        JSON,
        include_bytes!("../../feeds/demo/hibp-subscription-status.json"),
    ),
    (
        "GET",
        "/api/v3/breaches",
        JSON,
        include_bytes!("../../feeds/demo/hibp-breaches.json"),
    ),
    (
        "GET",
        "/api/v3/breacheddomain/example.org",
        JSON,
        include_bytes!("../../feeds/demo/hibp-breacheddomain.json"),
    ),
    (
        "POST",
        "/v4/threatMatches:find",
        JSON,
        include_bytes!("../../feeds/demo/safebrowsing-v4-matches.json"),
    ),
    (
        "GET",
        "/snds/data.aspx",
        CSV,
        include_bytes!("../../feeds/demo/snds-data.csv"),
    ),
    (
        "GET",
        "/snds/ipStatus.aspx",
        CSV,
        include_bytes!("../../feeds/demo/snds-ipstatus.csv"),
    ),
];

/// The replay server's routing table.
pub fn routes() -> HashMap<String, Reply> {
    RECORDED
        .iter()
        .map(|(m, p, ct, body)| (format!("{m} {p}"), Reply::ok(ct, body.to_vec())))
        .collect()
}

/// The demo's config: every source pointed at `base` (the replay server), demo keys, the store
/// in `data/`, a digest without SMTP (so it is written as a file).
pub fn config_text(base: &str) -> String {
    format!(
        r#"# Written by `outwatch demo`: every source reads recorded data from {base}.
[organisation]
name = "Example Org (demo)"
asns = [64496]
prefixes = ["203.0.113.0/24"]
domains = ["example.org"]

[scope]
ripestat_url = "{base}"

[store]
path = "data"

[sources.hibp]
api_key = "demo-key"
base_url = "{base}/api/v3"

[sources.safebrowsing]
api_key = "demo-key"
base_url = "{base}"

[sources.snds]
key = "demo-key"
base_url = "{base}/snds"

[digest]
from = "outwatch@example.org"
recipients = ["noc@example.org"]
"#
    )
}
