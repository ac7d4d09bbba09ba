//! Property tests: nothing panics on input (issue #11, item 3), and a row keeps its finding when
//! only a value that is not its identity is malformed (item 2).
//!
//! Every parser of provider data gets arbitrary bytes and mutated real records (the project's
//! fixtures in `tests/fixtures/`, in the providers' formats): the Shadowserver row normaliser
//! (through the CSV reader), the list readers (CSV, lines, JSON, JSON lines), SNDS rows, the
//! Safe Browsing alert XML, the HIBP notification mail, the RIPEstat reply, the socket
//! protocol, the terminal sanitiser. (The store's record and bucket decoder is private: its
//! properties are in `src/store/sled_store/record/tests.rs`.)
//!
//! The suite runs [`CASES`] cases per property (a few fewer for the slow ones). A longer run:
//!
//! ```sh
//! PROPTEST_CASES=100000 cargo test --release --lib --test properties
//! ```

use std::net::IpAddr;
use std::path::Path;

use outwatch::daemon::protocol::{Op, Reply, Request};
use outwatch::finding::Finding;
use outwatch::flows;
use outwatch::scope::{ScopeMatcher, ScopeSnapshot};
use outwatch::sources::VecSink;
use outwatch::sources::lists::{self, FeedDef, process_body};
use outwatch::sources::shadowserver::import::{RawNaming, read_csv};
use outwatch::sources::shadowserver::normalize::parse_time;
use outwatch::sources::shadowserver::schema::Schema;
use outwatch::sources::{cymru, hibp, safebrowsing, snds};
use outwatch::text;
use proptest::prelude::*;
use proptest::sample::Index;

/// Cases per property in the suite; `PROPTEST_CASES` overrides it (see the module doc).
const CASES: u32 = 256;

fn config(cases: u32) -> ProptestConfig {
    let mut c = ProptestConfig::default();
    if std::env::var_os("PROPTEST_CASES").is_none() {
        c.cases = cases;
    }
    // Properties that `prop_assume!` reject about one case in eight: proptest's fixed 1,024
    // rejects would end a long run (`PROPTEST_CASES=100000`) after ~8,000 cases.
    c.max_global_rejects = c.max_global_rejects.max(c.cases);
    c
}

fn fixture(rel: &str) -> Vec<u8> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(rel);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// One edit of a byte string: replace, insert or delete at a position.
#[derive(Debug, Clone)]
enum Edit {
    Replace(Index, u8),
    Insert(Index, u8),
    Delete(Index),
    /// Cuts the input (a download that stopped).
    Truncate(Index),
}

fn edits() -> impl Strategy<Value = Vec<Edit>> {
    let edit = prop_oneof![
        4 => (any::<Index>(), any::<u8>()).prop_map(|(i, b)| Edit::Replace(i, b)),
        3 => (any::<Index>(), any::<u8>()).prop_map(|(i, b)| Edit::Insert(i, b)),
        3 => any::<Index>().prop_map(Edit::Delete),
        1 => any::<Index>().prop_map(Edit::Truncate),
    ];
    prop::collection::vec(edit, 1..8)
}

fn mutate(base: &[u8], edits: &[Edit]) -> Vec<u8> {
    let mut v = base.to_vec();
    for e in edits {
        match e {
            Edit::Replace(i, b) if !v.is_empty() => {
                let at = i.index(v.len());
                v[at] = *b;
            }
            Edit::Insert(i, b) => {
                let at = i.index(v.len() + 1);
                v.insert(at, *b);
            }
            Edit::Delete(i) if !v.is_empty() => {
                let at = i.index(v.len());
                v.remove(at);
            }
            Edit::Truncate(i) => {
                let at = i.index(v.len() + 1);
                v.truncate(at);
            }
            _ => {}
        }
    }
    v
}

/// Arbitrary bytes, biased towards the separators and quotes the formats use.
fn bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    let b = prop_oneof![
        3 => any::<u8>(),
        2 => prop::sample::select(b",;\"\n\r#:./[]{}<>=&@ 0123456789".to_vec()),
    ];
    prop::collection::vec(b, 0..max)
}

/// A field value: any characters, often near the ones parsers look at, and the literal
/// values real reports write that are no null (`0`, `-`, `unknown`).
fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => any::<String>(),
        1 => prop::sample::select(vec!["0", "-", "unknown", "Unknown", " 0 ", "n/a"])
            .prop_map(str::to_string),
        2 => prop::collection::vec(
            prop::sample::select(
                vec!['0', '1', '9', '.', ':', '/', '-', ' ', 'a', 'A', 'S', 'é', '\u{1b}', '\u{7}',
                     '日', 'x', '%', ',', '"', '\u{202e}', 'T', 'Z', '+']
            ),
            0..24,
        )
        .prop_map(|v| v.into_iter().collect()),
    ]
}

/// [`value`] without line breaks (no real feed has them inside a field; the list readers'
/// comment and trailer checks look at lines).
fn one_line_value() -> impl Strategy<Value = String> {
    value().prop_map(|s| s.replace(['\n', '\r'], " "))
}

fn csv_line(fields: &[String], always_quote: bool) -> Vec<u8> {
    let mut w = csv::WriterBuilder::new()
        .quote_style(if always_quote {
            csv::QuoteStyle::Always
        } else {
            csv::QuoteStyle::Necessary
        })
        .from_writer(Vec::new());
    w.write_record(fields).unwrap();
    w.into_inner().unwrap()
}

fn split_csv(body: &[u8]) -> Vec<Vec<String>> {
    crate::support::csv_records(body)
}

// ------------------------------------------------------------------------------------------
// Text

proptest! {
    #![proptest_config(config(CASES))]

    #[test]
    fn sanitize_leaves_nothing_for_the_terminal(s in value(), max in 0usize..64) {
        let clean = text::sanitize(&s);
        prop_assert!(!clean.chars().any(text::needs_escape), "{clean:?}");
        let twice = text::sanitize(&clean).into_owned();
        prop_assert_eq!(twice.as_str(), clean.as_ref());
        let c = text::clip(&s, max);
        prop_assert!(!c.chars().any(text::needs_escape));
        prop_assert!(c.chars().count() <= max.max(1), "{c:?}");
        if clean.chars().count() <= max {
            prop_assert_eq!(c.as_str(), clean.as_ref());
        }
    }
}

// ------------------------------------------------------------------------------------------
// Shadowserver

fn our_scope() -> ScopeMatcher {
    ScopeMatcher::new(&ScopeSnapshot {
        prefixes: vec![
            "192.0.2.0/24".parse().unwrap(),
            "203.0.113.0/24".parse().unwrap(),
            "2001:db8:1::/48".parse().unwrap(),
        ],
        domains: vec!["example.org".into()],
        ..Default::default()
    })
}

/// Reads a report body; returns the sink and (rows, rejected) of the outcome.
fn read_report(body: &[u8], report_type: &str) -> (VecSink, usize, usize) {
    let naming = RawNaming {
        prefix: "t.csv".into(),
        separator: ":",
    };
    let mut sink = VecSink::default();
    let o = read_csv(
        body,
        &naming,
        report_type,
        &Schema::bundled(),
        &our_scope(),
        &mut sink,
    )
    .expect("a VecSink never fails");
    assert_eq!(o.rejected, sink.rejected.len());
    assert_eq!(o.warnings, sink.warnings.len());
    (sink, o.rows, o.rejected)
}

const SHADOWSERVER_FIXTURES: &[(&str, &str)] = &[
    ("2026-11-20-scan_dns-example-asn.csv", "scan_dns"),
    ("2026-11-20-scan_rdp-example-asn.csv", "scan_rdp"),
    (
        "2026-11-20-event4_sinkhole_http-example-asn.csv",
        "event4_sinkhole_http",
    ),
    (
        "2026-11-20-event4_honeypot_ddos_target-example-asn.csv",
        "event4_honeypot_ddos_target",
    ),
    ("2026-11-20-blocklist-example-ip.csv", "blocklist"),
    (
        "2026-11-20-event4_sinkhole_dns-example-asn.csv",
        "event4_sinkhole_dns",
    ),
    ("2026-11-20-sandbox_dns-example.csv", "sandbox_dns"),
    (
        "2026-11-20-compromised_website-example-asn.csv",
        "compromised_website",
    ),
    (
        "2026-11-20-event4_microsoft_sinkhole_http-example-asn.csv",
        "event4_microsoft_sinkhole_http",
    ),
    (
        "2026-11-20-event4_sinkhole_http_referer-example-asn.csv",
        "event4_sinkhole_http_referer",
    ),
    (
        "2026-11-20-event6_sinkhole_http-example-asn.csv",
        "event6_sinkhole_http",
    ),
    ("2022-02-01-phish_url-example-asn.csv", "phish_url"),
];

proptest! {
    #![proptest_config(config(CASES))]

    #[test]
    fn shadowserver_time_never_panics(s in value()) {
        let _ = parse_time(&s);
        let _ = parse_time(&format!("2026-11-20 03:14:0{s}"));
        let _ = parse_time(&format!("2026-11-20T03:14:00.{s}"));
    }

    #[test]
    fn shadowserver_arbitrary_bytes(body in bytes(2048), t in 0..SHADOWSERVER_FIXTURES.len()) {
        let (sink, rows, rejected) = read_report(&body, SHADOWSERVER_FIXTURES[t].1);
        prop_assert_eq!(rows, sink.findings.len() + rejected);
    }

    #[test]
    fn shadowserver_arbitrary_rows_under_a_real_header(
        rows in prop::collection::vec(prop::collection::vec(value(), 0..40), 1..6),
        t in 0..SHADOWSERVER_FIXTURES.len(),
    ) {
        let (name, report_type) = SHADOWSERVER_FIXTURES[t];
        let fx = fixture(&format!("shadowserver/{name}"));
        let header_end = fx.iter().position(|b| *b == b'\n').unwrap() + 1;
        let mut body = fx[..header_end].to_vec();
        for r in &rows {
            body.extend(csv_line(r, false));
        }
        let (sink, n, rejected) = read_report(&body, report_type);
        prop_assert_eq!(n, sink.findings.len() + rejected);
    }

    #[test]
    fn shadowserver_mutated_reports(t in 0..SHADOWSERVER_FIXTURES.len(), e in edits()) {
        let (name, report_type) = SHADOWSERVER_FIXTURES[t];
        let body = mutate(&fixture(&format!("shadowserver/{name}")), &e);
        let (sink, rows, rejected) = read_report(&body, report_type);
        prop_assert_eq!(rows, sink.findings.len() + rejected);
    }

    /// A row that is accepted stays accepted, about the same address, whatever happens to
    /// one of its other columns (the timestamp and the subject's address are its identity),
    /// and the new value is kept: only an empty cell is empty.
    #[test]
    fn shadowserver_row_keeps_its_finding(
        t in 0..SHADOWSERVER_FIXTURES.len(),
        row in any::<Index>(),
        col in any::<Index>(),
        v in value(),
    ) {
        let (name, report_type) = SHADOWSERVER_FIXTURES[t];
        let fx = fixture(&format!("shadowserver/{name}"));
        let records = split_csv(&fx);
        let header = &records[0];
        // The accepted rows of the fixture and their subjects.
        let (sink, _, _) = read_report(&fx, report_type);
        let good: Vec<(Vec<String>, Finding)> = records[1..]
            .iter()
            .filter_map(|r| {
                let (s, _, rejected) =
                    read_report(&[csv_line(header, true), csv_line(r, true)].concat(), report_type);
                (rejected == 0).then(|| (r.clone(), s.findings[0].clone()))
            })
            .collect();
        prop_assert_eq!(good.len(), sink.findings.len());
        let (mut r, before) = good[row.index(good.len())].clone();
        let i = col.index(r.len());
        let name = header[i].trim().to_ascii_lowercase();
        let subject_col = |f: &Finding| -> bool {
            // The column the subject came from: `ip`, or `<side>ip` holding its address; or,
            // for a row without one, the host name it is about (sandbox_dns' `request`).
            let addr = f.ip.map(|a| a.to_string()).or(f.network.map(|n| n.to_string()));
            let cell = r[i].trim();
            (name.ends_with("ip") && addr.as_deref().is_some_and(|a| cell.starts_with(a.split('/').next().unwrap())))
                || (addr.is_none() && f.domain.as_deref().is_some_and(|d| cell.eq_ignore_ascii_case(d)))
        };
        // Fixture rows are ours; an address outside the scope would make an earlier side's
        // malformed address the identity.
        prop_assume!(before.in_scope);
        prop_assume!(name != "timestamp" && !subject_col(&before));
        r[i] = v.clone();
        let body = [csv_line(header, true), csv_line(&r, true)].concat();
        let (s, rows, rejected) = read_report(&body, report_type);
        prop_assert_eq!((rows, rejected), (1, 0), "{} = {:?}: {:?}", name, v, s.rejected);
        let after = &s.findings[0];
        // Another side's address may now be ours and become the subject; otherwise the
        // subject stays.
        if !name.ends_with("ip") {
            prop_assert_eq!(after.ip, before.ip);
            prop_assert_eq!(after.network, before.network);
        }
        let t = crate::support::texts(after);
        prop_assert!(
            v.trim().is_empty() || crate::support::found(&v, after, &t),
            "{} = {:?} is not in the finding: {:?}", name, v, after
        );
    }
}

// ------------------------------------------------------------------------------------------
// Lists

fn builtin(name: &str) -> FeedDef {
    lists::builtin_defs()
        .into_iter()
        .find(|d| d.name == name)
        .unwrap()
}

/// The built-in feeds and their fixtures, plus a user feed of each other format.
fn list_cases() -> Vec<(FeedDef, Vec<u8>)> {
    let user = |toml: &str| FeedDef::parse(toml, "properties").unwrap();
    let head = "name = \"prop\"\nurl = \"https://lists.example.net/x\"\nschedule = \"0 0 * * * *\"\n\
                resolve_after = \"1d\"\nseverity = \"medium\"\n[classification]\ntype = \"scanner\"\n\
                identifier = \"prop\"\n";
    vec![
        (builtin("feodotracker"), fixture("lists/feodotracker/ipblocklist.csv")),
        (builtin("feodotracker"), fixture("lists/feodotracker/ipblocklist_v2.csv")),
        (builtin("urlhaus"), fixture("lists/urlhaus/csv_recent.csv")),
        (builtin("threatfox"), fixture("lists/threatfox/recent.csv")),
        (builtin("sslbl"), fixture("lists/sslbl/sslipblacklist.csv")),
        (builtin("spamhaus_drop"), fixture("lists/spamhaus/drop_v4.json")),
        (builtin("spamhaus_asndrop"), fixture("lists/spamhaus/asndrop.json")),
        (builtin("urlhaus_asn"), fixture("lists/urlhaus_asn/asn64496.csv")),
        (
            builtin("feodotracker"),
            fixture("lists/feodotracker/ipblocklist_bom_old_trailer.csv"),
        ),
        (
            user(&format!("{head}[format]\ntype = \"lines\"\ncomment = \"#\"\n[fields]\nip = 1\n")),
            fixture("lists/my_blocklist/bad-ips.txt"),
        ),
        (
            user(&format!(
                "{head}[format]\ntype = \"json\"\n[fields]\nip = \"ip_address\"\nport = \"port\"\n\
                 asn = \"as_number\"\ntime = \"first_seen\"\n"
            )),
            br#"[{"ip_address":"203.0.113.5","port":443,"as_number":64496,"first_seen":"2026-11-20 10:00:00"},
{"ip_address":"198.51.100.9","port":"8080","as_number":"AS64500"},
{"ip_address":"2001:db8:1::7","port":null}]"#
                .to_vec(),
        ),
        (
            user(&format!(
                "{head}[format]\ntype = \"json\"\nrecords = \"data\"\n[fields]\nurl = \"url\"\n"
            )),
            br#"{"query_status":"ok","data":[{"url":"http://www.example.org/x"},{"url":"https://203.0.113.9:8443/a"}]}"#
                .to_vec(),
        ),
    ]
}

fn check_processed(def: &FeedDef, body: &[u8]) {
    if let Ok(p) = process_body(def, &def.name, body, "prop", &our_scope()) {
        assert!(
            p.findings.len() + p.rejected.len() <= p.fetched,
            "{} findings + {} rejected > {} entries",
            p.findings.len(),
            p.rejected.len(),
            p.fetched
        );
        assert!(p.findings.iter().all(|f| f.in_scope));
    }
}

proptest! {
    #![proptest_config(config(CASES))]

    #[test]
    fn lists_arbitrary_bytes(body in bytes(2048), d in any::<Index>()) {
        let cases = list_cases();
        let (def, _) = &cases[d.index(cases.len())];
        check_processed(def, &body);
    }

    #[test]
    fn lists_mutated_fixtures(d in any::<Index>(), e in edits()) {
        let cases = list_cases();
        let (def, body) = &cases[d.index(cases.len())];
        check_processed(def, &mutate(body, &e));
    }

    #[test]
    fn lists_fields_of_any_text(d in any::<Index>(), vs in prop::collection::vec(value(), 1..12)) {
        let cases = list_cases();
        let (def, _) = &cases[d.index(cases.len())];
        let mut body = csv_line(&vs, false);
        body.extend(b"\n");
        body.extend(serde_json::to_vec(&vs).unwrap());
        check_processed(def, &body);
        let obj: serde_json::Map<String, serde_json::Value> = ["ip_address", "port", "as_number", "url", "first_seen"]
            .iter()
            .zip(&vs)
            .map(|(k, v)| (k.to_string(), serde_json::Value::String(v.clone())))
            .collect();
        check_processed(def, &serde_json::to_vec(&[&obj]).unwrap());
    }

    /// A Feodo entry of ours keeps its finding whatever its port, time, status or malware say.
    #[test]
    fn feodo_entry_keeps_its_finding(col in prop::sample::select(vec![0usize, 2, 3, 4, 5]), v in one_line_value()) {
        let mut row: Vec<String> = ["2026-11-08 19:20:49", "203.0.113.10", "443", "online", "2026-11-20", "Pikabot"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        row[col] = v.clone();
        let mut body = b"\"first_seen_utc\",\"dst_ip\",\"dst_port\",\"c2_status\",\"last_online\",\"malware\"\n".to_vec();
        body.extend(csv_line(&row, true));
        body.extend(b"# END 1 entries\n");
        let p = process_body(&builtin("feodotracker"), "feodotracker", &body, "prop", &our_scope()).unwrap();
        prop_assert_eq!(p.findings.len(), 1, "{:?}: {:?}", v, p.rejected);
        prop_assert_eq!(p.findings[0].ip, Some("203.0.113.10".parse::<IpAddr>().unwrap()));
    }
}

// ------------------------------------------------------------------------------------------
// SNDS

proptest! {
    #![proptest_config(config(CASES))]

    #[test]
    fn snds_arbitrary_and_mutated(body in bytes(2048), e in edits(), which in 0usize..3) {
        for b in [body.clone(), mutate(&fixture(["snds/data-2026-11-22.csv", "snds/malformed-data.csv", "snds/ipstatus.csv"][which]), &e)] {
            let (f, rej, warn, rows) = snds::parse_data_warned(&b, "prop");
            prop_assert!(f.len() + rej.len() <= rows);
            prop_assert!(warn.len() <= 8 * rows);
            let (f, rej, rows) = snds::parse_ip_status(&b, "prop");
            prop_assert!(f.len() + rej.len() <= rows);
        }
    }

    /// A RED row keeps its finding whatever its period, counts, sample HELO or comment say.
    #[test]
    fn snds_red_row_keeps_its_finding(col in prop::sample::select(vec![1usize, 2, 3, 4, 5, 7, 8, 9, 11, 12, 13]), v in value()) {
        let mut row: Vec<String> = "192.0.2.11,11/21/2026 8:00 AM,11/22/2026 7:00 AM,48211,47990,47985,RED,< 0.1%,,,3,mail.example.org,,"
            .split(',')
            .map(str::to_string)
            .collect();
        row[col] = v.clone();
        let (f, rej, _, rows) = snds::parse_data_warned(&csv_line(&row, false), "prop");
        prop_assert_eq!((f.len(), rej.len(), rows), (1, 0, 1), "{:?}", v);
        prop_assert_eq!(f[0].ip, Some("192.0.2.11".parse::<IpAddr>().unwrap()));
    }
}

// ------------------------------------------------------------------------------------------
// Team Cymru CAP

proptest! {
    #![proptest_config(config(CASES))]

    #[test]
    fn cymru_arbitrary_and_mutated(body in bytes(2048), e in edits(), which in 0usize..2) {
        let base = fixture(["cymru/cap_20261122.txt", "cymru/infected_20261121.txt"][which]);
        for b in [body.clone(), mutate(&base, &e)] {
            let p = cymru::parse(&b, "prop");
            prop_assert_eq!(p.findings.len() + p.rejected.len(), p.rows);
        }
    }

    /// A row keeps its finding whatever its category, ASN, time, information or AS field say,
    /// and keeps what they say.
    #[test]
    fn cymru_row_keeps_its_finding(col in prop::sample::select(vec![0usize, 2, 3, 4, 5]), v in one_line_value()) {
        let v = v.replace(['|', '#'], "");
        let mut row: Vec<String> = "bot|192.0.2.21|64496|2019-03-25 03:44:22|family: nivdort;dest_addr: 172.16.0.22;|Example AS Name, AT"
            .split('|')
            .map(str::to_string)
            .collect();
        row[col] = v.clone();
        let line = format!("{}\n", row.join("|"));
        // A category left empty or blank still names the row as ours.
        let p = cymru::parse(line.as_bytes(), "prop");
        prop_assert_eq!((p.findings.len(), p.rejected.len(), p.rows), (1, 0, 1), "{:?}", v);
        prop_assert_eq!(p.findings[0].ip, Some("192.0.2.21".parse::<IpAddr>().unwrap()));
        // Only an empty field is empty: the new value is kept.
        let f = &p.findings[0];
        prop_assert!(
            v.trim().is_empty() || crate::support::found(&v, f, &crate::support::texts(f)),
            "{:?} is not in the finding: {:?}", v, f
        );
    }
}

// ------------------------------------------------------------------------------------------
// Safe Browsing alerts, HIBP notification mails, RIPEstat, mail text

fn alert_xml() -> String {
    let mail = String::from_utf8(fixture("safebrowsing/alerts/alert-2026-11-20.eml")).unwrap();
    safebrowsing::alerts::extract_xml(&mail)
        .unwrap()
        .to_string()
}

fn xml_escape(s: &str) -> String {
    s.chars()
        .filter(|c| matches!(c, '\t' | '\n' | '\r' | ' '..='\u{d7ff}' | '\u{e000}'..='\u{fffd}' | '\u{10000}'..))
        .map(|c| match c {
            '&' => "&amp;".to_string(),
            '<' => "&lt;".to_string(),
            '"' => "&quot;".to_string(),
            c => c.to_string(),
        })
        .collect()
}

proptest! {
    #![proptest_config(config(CASES))]

    #[test]
    fn safebrowsing_alert_arbitrary_and_mutated(s in value(), body in bytes(1024), e in edits()) {
        let xml = alert_xml();
        let mutated = String::from_utf8_lossy(&mutate(xml.as_bytes(), &e)).into_owned();
        for t in [s, String::from_utf8_lossy(&body).into_owned(), mutated] {
            let _ = safebrowsing::alerts::extract_xml(&t);
            if let Ok(p) = safebrowsing::alerts::parse_xml(&t, "prop", None) {
                prop_assert!(p.findings.len() + p.rejected.len() <= p.records + 8);
            }
        }
    }

    /// An entry whose URL has a host keeps its finding whatever its `ip` says.
    #[test]
    fn safebrowsing_entry_keeps_its_finding(ip in value(), t in value()) {
        let xml = format!(
            "<notification_message asn=\"64496\" date=\"2026-11-20\"><list type=\"{}\">\
             <url_info url=\"http://shop.example.org/x\" ip=\"{}\"/></list></notification_message>",
            xml_escape(&t),
            xml_escape(&ip)
        );
        let p = safebrowsing::alerts::parse_xml(&xml, "prop", None).unwrap();
        prop_assert_eq!(p.findings.len(), 1, "{:?}", p.rejected);
        prop_assert_eq!(p.findings[0].domain.as_deref(), Some("shop.example.org"));
    }

    #[test]
    fn hibp_notification_arbitrary_and_mutated(body in bytes(2048), e in edits()) {
        let eml = fixture("hibp/domain-notification.eml");
        for b in [body, mutate(&eml, &e)] {
            if let Some(mail) = outwatch::mail::parse(&b)
                && let Ok(n) = hibp::notification::parse(&mail)
            {
                let _ = hibp::notification::finding(&n);
            }
        }
    }

    #[test]
    fn mail_text_helpers(s in value()) {
        let _ = outwatch::mail::html_to_text(&s);
        let _ = outwatch::mail::html_to_text(&format!("&#{s};&#x{s};&{s}"));
        let _ = outwatch::mail::html_to_text(&s);
    }

    #[test]
    fn ripestat_arbitrary_and_mutated(body in bytes(1024), e in edits()) {
        let reply = fixture("ripestat/announced-prefixes-AS64496.json");
        for b in [body, mutate(&reply, &e)] {
            let _ = outwatch::ripestat::parse_announced_prefixes(&b);
        }
    }
}

// ------------------------------------------------------------------------------------------
// The socket protocol

fn requests() -> Vec<Vec<u8>> {
    let ops = vec![
        Op::Hello,
        Op::Get {
            fingerprint: "00ff".into(),
        },
        Op::query(
            &outwatch::store::Query::Net("192.0.2.0/24".parse().unwrap()),
            &outwatch::store::QueryOptions::default(),
        ),
        Op::ForEach,
        Op::Runs {
            source: Some("feodotracker".into()),
            limit: 5,
        },
        Op::StateGet {
            key: "hibp/breaches".into(),
        },
        Op::StateScan {
            prefix: "shadowserver/".into(),
        },
        Op::Count,
    ];
    ops.into_iter()
        .map(|op| serde_json::to_vec(&Request { v: 1, op }).unwrap())
        .collect()
}

proptest! {
    #![proptest_config(config(CASES))]

    #[test]
    fn protocol_arbitrary_and_mutated(body in bytes(512), r in any::<Index>(), e in edits()) {
        let reqs = requests();
        let req = &reqs[r.index(reqs.len())];
        // A valid request reads back as itself.
        let back: Request = serde_json::from_slice(req).unwrap();
        prop_assert_eq!(&serde_json::to_vec(&back).unwrap(), req);
        for b in [body, mutate(req, &e)] {
            let _ = serde_json::from_slice::<Request>(&b);
            let _ = serde_json::from_slice::<Reply>(&b);
            match serde_json::from_slice::<Reply>(&b) {
                Ok(Reply::Item(v)) => {
                    let _ = serde_json::from_str::<Finding>(v.get());
                }
                Ok(Reply::Done(v)) => {
                    let _ = serde_json::from_value::<Finding>(v);
                }
                _ => {}
            }
        }
    }
}

// ------------------------------------------------------------------------------------------
// Flows: connection logs (Zeek TSV and JSON, nfdump CSV; plain and gzip)

const FLOWS_FIXTURES: &[&str] = &[
    "flows/zeek-conn-two-blocks.log",
    "flows/zeek-conn.json",
    "flows/nfdump-1.6.csv",
    "flows/nfdump-1.7.csv",
    "flows/zeek-conn-rotated.log.gz",
];

fn gzipped(body: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(body).unwrap();
    e.finish().unwrap()
}

/// Reads a log; checks the counts add up. Returns (connections, rejected).
fn read_flows(body: &[u8]) -> Result<(u64, u64), TestCaseError> {
    let mut n = 0u64;
    match flows::read::read_log(body, "p.log", &mut |c| {
        n += 1;
        // Whatever the input, the strings handed out are valid and borrowed whole.
        let _ = c.service.map(str::len);
        let _ = c.conn_state.map(str::len);
    }) {
        Ok(s) => {
            prop_assert_eq!(s.connections, n);
            prop_assert!(s.connections + s.rejected <= s.lines.max(1) + 1, "{:?}", s);
            prop_assert!(s.errors.len() <= flows::read::MAX_ERRORS);
            Ok((s.connections, s.rejected))
        }
        Err(e) => {
            // Only whole-file verdicts; a message never carries raw control characters.
            let m = e.to_string();
            prop_assert!(!m.chars().any(|c| c.is_control()), "{m:?}");
            Ok((n, 0))
        }
    }
}

proptest! {
    #![proptest_config(config(CASES))]

    #[test]
    fn flows_arbitrary_bytes(body in bytes(2048), head in 0usize..4, gz: bool) {
        // Behind each format's first line too, so the bytes reach the line parsers.
        let heads: [&[u8]; 4] = [
            b"",
            b"#separator \\x09\n#fields\tts\tid.orig_h\tid.orig_p\tid.resp_h\tid.resp_p\tproto\tservice\tduration\n",
            b"{\"ts\":1,\"id.orig_h\":\"10.0.0.1\",\"id.resp_h\":\"10.0.0.2\"}\n",
            b"ts,te,td,sa,da,sp,dp,pr,flg,fwd,stos,ipkt,ibyt,opkt,obyt\n",
        ];
        let mut b = heads[head].to_vec();
        b.extend_from_slice(&body);
        let b = if gz { gzipped(&b) } else { b };
        read_flows(&b)?;
    }

    #[test]
    fn flows_mutated_fixtures(f in 0usize..5, e in edits(), gz: bool) {
        let mut body = fixture(FLOWS_FIXTURES[f]);
        if FLOWS_FIXTURES[f].ends_with(".gz") {
            // Mutate the compressed bytes themselves (a damaged download) ...
            read_flows(&mutate(&body, &e))?;
            body = {
                use std::io::Read;
                let mut out = Vec::new();
                flate2::read::MultiGzDecoder::new(&body[..]).read_to_end(&mut out).unwrap();
                out
            };
        }
        // ... and the text, plain or gzipped again.
        let m = mutate(&body, &e);
        read_flows(&if gz { gzipped(&m) } else { m })?;
    }

    /// A connection stays a connection, about the same hosts, whatever happens to one of its
    /// values that is not its identity (ts, id.orig_h, id.resp_h).
    #[test]
    fn flows_line_keeps_its_connection(
        fmt in 0usize..3,
        col in 0usize..10,
        v in one_line_value(),
    ) {
        let names = ["id.orig_p", "id.resp_p", "proto", "service", "duration", "orig_bytes",
                     "resp_bytes", "conn_state", "orig_pkts", "resp_pkts"];
        let body = match fmt {
            0 => {
                let mut vals = ["40000", "443", "tcp", "ssl", "1.5", "10", "20", "SF", "1", "2"]
                    .map(String::from);
                vals[col] = v.replace('\t', " ");
                format!(
                    "#separator \\x09\n#fields\tts\tid.orig_h\t{}\tid.resp_h\n1795996800.5\t10.0.0.1\t{}\t192.0.2.1\n",
                    names.join("\t"),
                    vals.join("\t"),
                )
            }
            1 => {
                let v = serde_json::to_string(&v).unwrap();
                format!(
                    "{{\"ts\":1795996800.5,\"id.orig_h\":\"10.0.0.1\",\"id.resp_h\":\"192.0.2.1\",\"{}\":{v}}}\n",
                    names[col],
                )
            }
            _ => {
                let mut vals = ["1.500", "40000", "443", "TCP", "10", "20", "1", "2"].map(String::from);
                vals[col % 8] = v.replace(',', ";");
                format!(
                    "ts,td,sa,da,sp,dp,pr,ibyt,obyt,ipkt,opkt\n2026-11-30 00:00:00,{},10.0.0.1,192.0.2.1,{}\n",
                    vals[0],
                    vals[1..].join(","),
                )
            }
        };
        let mut seen = Vec::new();
        let s = flows::read::read_log(body.as_bytes(), "k.log", &mut |c| seen.push((c.ts_us, c.orig, c.resp)))
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(s.connections, 1, "{}: {:?}", body, s.errors);
        prop_assert_eq!(s.rejected, 0);
        prop_assert_eq!(seen[0].1, "10.0.0.1".parse::<IpAddr>().unwrap());
        prop_assert_eq!(seen[0].2, "192.0.2.1".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn flows_time_and_number_parsers(s in value()) {
        // Through a one-line log of each format, with the value as the ts.
        let tsv = format!("#fields\tts\tid.orig_h\tid.resp_h\n{}\t10.0.0.1\t10.0.0.2\n", s.replace(['\t', '\n', '\r'], " "));
        read_flows(tsv.as_bytes())?;
        let json = format!("{{\"ts\":{},\"id.orig_h\":\"10.0.0.1\",\"id.resp_h\":\"10.0.0.2\"}}\n", serde_json::to_string(&s).unwrap());
        read_flows(json.as_bytes())?;
        let csv = format!("ts,sa,da,td\n{},10.0.0.1,10.0.0.2,{}\n", s.replace([',', '\n', '\r'], " "), s.replace([',', '\n', '\r'], " "));
        read_flows(csv.as_bytes())?;
    }
}
