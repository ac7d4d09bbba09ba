//! `outwatch demo`: the whole pipeline against recorded data, on loopback, with no keys.
//!
//! A [`server::ReplayServer`] answers at the providers' real paths with the recorded replies in
//! `feeds/demo/` (a fictitious "Example Org": AS64496, 192.0.2.0/24, 198.51.100.0/24,
//! 2001:db8::/32, example.org): RIPEstat, Shadowserver's Reports API, HIBP, Safe Browsing, SNDS
//! and every shipped list feed. A config pointing every source's `base_url` at it is written
//! next to a fresh store; the command then fetches everything and renders the digest to files.

pub(crate) mod server;

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
        "/api/v3/subscribeddomains",
        JSON,
        include_bytes!("../../feeds/demo/hibp-subscribeddomains.json"),
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
    (
        "GET",
        "/downloads/ipblocklist.csv",
        CSV,
        include_bytes!("../../feeds/demo/feodotracker-ipblocklist.csv"),
    ),
    (
        "GET",
        "/downloads/csv_recent/",
        CSV,
        include_bytes!("../../feeds/demo/urlhaus-csv_recent.csv"),
    ),
    (
        "GET",
        "/feeds/asn/64496/",
        CSV,
        include_bytes!("../../feeds/demo/urlhaus-asn-64496.csv"),
    ),
    (
        "GET",
        "/export/csv/recent/",
        CSV,
        include_bytes!("../../feeds/demo/threatfox-recent.csv"),
    ),
    (
        "GET",
        "/blacklist/sslipblacklist.csv",
        CSV,
        include_bytes!("../../feeds/demo/sslbl-sslipblacklist.csv"),
    ),
    (
        "GET",
        "/drop/drop_v4.json",
        JSON,
        include_bytes!("../../feeds/demo/spamhaus-drop_v4.json"),
    ),
    (
        "GET",
        "/drop/drop_v6.json",
        JSON,
        include_bytes!("../../feeds/demo/spamhaus-drop_v6.json"),
    ),
    (
        "GET",
        "/drop/asndrop.json",
        JSON,
        include_bytes!("../../feeds/demo/spamhaus-asndrop.json"),
    ),
    (
        "POST",
        "/api2/reports/list",
        JSON,
        include_bytes!("../../feeds/demo/shadowserver-reports-list.json"),
    ),
    (
        "GET",
        "/dl/dEmOdNsR3p0rtXq7Lk2Pq5Wm1Xn7Bv4Cy9Td3Hf6Js0Ga2Ke5",
        CSV,
        include_bytes!("../../feeds/demo/shadowserver-scan_dns.csv"),
    ),
    (
        "GET",
        "/dl/dEmOs1nKh0l3Zr8Lk2Pq5Wm1Xn7Bv4Cy9Td3Hf6Js0Ga2Ke5",
        CSV,
        include_bytes!("../../feeds/demo/shadowserver-event4_sinkhole_http.csv"),
    ),
    (
        "GET",
        "/dl/dEmObL0ckL1stZr8Lk2Pq5Wm1Xn7Bv4Cy9Td3Hf6Js0Ga2K",
        CSV,
        include_bytes!("../../feeds/demo/shadowserver-blocklist.csv"),
    ),
];

/// The replay server's routing table.
pub(crate) fn routes() -> HashMap<String, Reply> {
    RECORDED
        .iter()
        .map(|(m, p, ct, body)| (format!("{m} {p}"), Reply::ok(ct, body.to_vec())))
        .collect()
}

/// The demo's config: every source pointed at `base` (the replay server), demo keys, the store
/// in `data/`, a digest without SMTP (so it is written as a file).
pub(crate) fn config_text(base: &str) -> String {
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

# The network's own connection log (`outwatch flows`): the DMZ answers, it never starts talking.
[[flows.zones]]
name = "dmz"
prefixes = ["192.0.2.16/28"]
outbound = false

[sources.hibp]
api_key = "demo0000000000000000000000000hibp"
base_url = "{base}/api/v3"

[sources.safebrowsing]
api_key = "AIzaDemo0000000000000000000000000000000"
base_url = "{base}"

[sources.snds]
key = "00000000-0000-0000-0000-00000000demo"
base_url = "{base}/snds"

[sources.shadowserver]
api_key = "demo-shadowserver-key"
secret = "demo-shadowserver-secret"
base_url = "{base}/api2/"
download_url = "{base}/dl/"

[sources.feodotracker]
base_url = "{base}"
[sources.urlhaus]
base_url = "{base}"
[sources.threatfox]
base_url = "{base}"
[sources.sslbl]
base_url = "{base}"
[sources.spamhaus_drop]
base_url = "{base}"
[sources.spamhaus_asndrop]
base_url = "{base}"
[sources.urlhaus_asn]
base_url = "{base}"

[digest]
from = "outwatch@example.org"
recipients = ["noc@example.org"]
"#
    )
}

/// A recorded day of Zeek `conn.log` of the demo network, for `outwatch flows`.
pub(crate) const CONN_LOG: &str = include_str!("../../feeds/demo/zeek-conn.log");
