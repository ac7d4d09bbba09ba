//! Faithful records on the real samples in `../shared/samples` (skipped when absent, failing
//! under `CI=true`): each file gives one finding per distinct observation (the expected counts
//! are written here, worked out from the files by hand and by an independent script), and no
//! non-empty cell of a row is lost: each is found in the row's finding, as a field or in
//! `extra`.
//!
//! Rows that are the *same* event repeated (`scan_telnet`: one address at 12:27:34 and
//! 12:27:40 with two banners) are one finding; their values are checked after the store merged
//! them: each is in the finding or in one of its kept earlier observations (its time and the
//! values that differed).

use std::collections::HashMap;
use std::path::Path;

use outwatch::finding::Finding;
use outwatch::scope::{ScopeMatcher, ScopeSnapshot};
use outwatch::sources::VecSink;
use outwatch::sources::shadowserver::import::{RawNaming, read_csv};
use outwatch::sources::shadowserver::schema::Schema;
use outwatch::sources::{cymru, snds};

use crate::support::{found, samples, texts};

/// Every Shadowserver sample: (report type, data rows, distinct observations). The repeats:
/// `scan_ipmi` 4 (two rows twice over whole, 198.51.100.6 at 00:09:49 and 00:10:11, and
/// 198.51.100.176 twice with two cities, an address the anonymisation gave two hosts),
/// `scan_ssl_freak` 2 (rows twice over whole), `scan_telnet` 1 (two banners a few seconds
/// apart). Every other row is its own observation: `event4_sinkhole_dns` has one address
/// asking two names for `calypso` and one for `orcus`; `sandbox_dns` one name asked by three
/// samples (md5s).
const SHADOWSERVER: &[(&str, usize, usize)] = &[
    ("blocklist", 3, 3),
    ("device_id", 3, 3),
    ("event4_honeypot_brute_force", 6, 6),
    ("event4_honeypot_ddos", 3, 3),
    ("event4_honeypot_ddos_target", 3, 3),
    ("event4_ip_spoofer", 6, 6),
    ("event4_microsoft_sinkhole_http", 5, 5),
    ("event4_sinkhole_dns", 3, 3),
    ("event4_sinkhole_http_referer", 5, 5),
    ("malware_url", 3, 3),
    ("population_http_proxy", 3, 3),
    ("sandbox_dns", 3, 3),
    ("scan_adb", 2, 2),
    ("scan_amqp", 3, 3),
    ("scan_chargen", 3, 3),
    ("scan_coap", 3, 3),
    ("scan_cwmp", 2, 2),
    ("scan_ddos_middlebox", 3, 3),
    ("scan_docker", 3, 3),
    ("scan_elasticsearch", 3, 3),
    ("scan_ftp", 2, 2),
    ("scan_http", 2, 2),
    ("scan_http_vulnerable", 3, 3),
    ("scan_ipmi", 95, 91),
    ("scan_isakmp", 2, 2),
    ("scan_ldap_tcp", 3, 3),
    ("scan_mdns", 3, 3),
    ("scan_mongodb", 10, 10),
    ("scan_mqtt_anon", 3, 3),
    ("scan_mysql", 3, 3),
    ("scan_netbios", 3, 3),
    ("scan_ntp", 3, 3),
    ("scan_portmapper", 3, 3),
    ("scan_qotd", 3, 3),
    ("scan_radmin", 9, 9),
    ("scan_rdpeudp", 3, 3),
    ("scan_rsync", 3, 3),
    ("scan_slp", 3, 3),
    ("scan_smtp_vulnerable", 2, 2),
    ("scan_socks", 3, 3),
    ("scan_ssh", 3, 3),
    ("scan_ssl_freak", 45, 43),
    ("scan_stun", 3, 3),
    ("scan_telnet", 2, 1),
    ("scan_ubiquiti", 3, 3),
    ("scan_ws_discovery", 3, 3),
    ("special", 3, 3),
];

/// The fingerprints of `findings` and how many rows each has.
fn repeats(findings: &[Finding]) -> HashMap<String, usize> {
    let mut n = HashMap::new();
    for f in findings {
        *n.entry(f.compute_fingerprint()).or_default() += 1;
    }
    n
}

/// Checks every non-empty cell of every row; returns how many were checked. A row whose finding
/// has other rows (the same event seen again) is checked against the finding the store made of
/// them all: its current values or one of its earlier observations.
fn check_cells(name: &str, rows: &[Vec<String>], findings: &[Finding]) -> usize {
    let n = repeats(findings);
    let merged = merged_by_store(findings);
    let mut checked = 0;
    for (i, (row, f)) in rows.iter().zip(findings).enumerate() {
        let fp = f.compute_fingerprint();
        let (f, t) = if n[&fp] > 1 {
            let m = &merged[&fp];
            (m, texts_with_observations(m))
        } else {
            (f, texts(f))
        };
        for cell in row.iter().filter(|c| !c.trim().is_empty()) {
            assert!(
                found(cell, f, &t) || observed_at(cell, f),
                "{name} row {}: `{cell}` is not in its finding {f:#?}",
                i + 1
            );
            checked += 1;
        }
    }
    checked
}

/// The findings as one store ingest keeps them, by fingerprint (repeats merged).
fn merged_by_store(findings: &[Finding]) -> HashMap<String, Finding> {
    let dir = tempfile::tempdir().unwrap();
    let store = outwatch::store::open(&dir.path().join("s")).unwrap();
    let now = chrono::Utc::now();
    outwatch::store::Store::ingest(
        &store,
        findings.to_vec(),
        vec![],
        &outwatch::store::IngestOptions { now },
    )
    .unwrap();
    let mut out = HashMap::new();
    outwatch::store::Store::for_each(&store, &mut |f| {
        out.insert(f.fingerprint.clone(), f);
        Ok(())
    })
    .unwrap();
    out
}

/// [`texts`] of a finding and the values its earlier observations differed in.
fn texts_with_observations(f: &Finding) -> Vec<String> {
    fn flat(v: &serde_json::Value, out: &mut Vec<String>) {
        match v {
            serde_json::Value::String(s) => out.push(s.clone()),
            serde_json::Value::Array(a) => a.iter().for_each(|v| flat(v, out)),
            serde_json::Value::Null => {}
            other => out.push(other.to_string()),
        }
    }
    let mut t = texts(f);
    for o in &f.observations {
        o.differs.values().for_each(|v| flat(v, &mut t));
    }
    t
}

/// Whether a cell is the time of one of the finding's earlier observations.
fn observed_at(cell: &str, f: &Finding) -> bool {
    let t = outwatch::sources::shadowserver::normalize::parse_time(cell.trim());
    t.is_some() && f.observations.iter().any(|o| o.time_source == t)
}

fn everything() -> ScopeMatcher {
    ScopeMatcher::new(&ScopeSnapshot {
        prefixes: vec!["0.0.0.0/0".parse().unwrap(), "::/0".parse().unwrap()],
        ..Default::default()
    })
}

fn csv_rows(path: &Path) -> Vec<Vec<String>> {
    csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(true)
        .from_path(path)
        .unwrap()
        .records()
        .map(|r| r.unwrap().iter().map(str::to_string).collect())
        .collect()
}

#[test]
fn shadowserver_samples_one_finding_per_observation_and_no_value_lost() {
    let Some(dir) = samples("shadowserver") else {
        return;
    };
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".csv"))
        .collect();
    files.sort();
    let listed: Vec<String> = SHADOWSERVER
        .iter()
        .map(|(t, _, _)| format!("{t}.csv"))
        .collect();
    assert_eq!(files, listed, "every sample has its expected count here");
    let schema = Schema::bundled();
    let scope = everything();
    let mut cells = 0;
    for (t, rows, observations) in SHADOWSERVER {
        let path = dir.join(format!("{t}.csv"));
        let mut sink = VecSink::default();
        let naming = RawNaming {
            prefix: format!("{t}.csv"),
            separator: ":",
        };
        let body = std::fs::read(&path).unwrap();
        let o = read_csv(&body[..], &naming, t, &schema, &scope, &mut sink).unwrap();
        assert_eq!((o.rows, o.rejected), (*rows, 0), "{t}: {:?}", sink.rejected);
        assert!(o.error.is_none(), "{t}: {:?}", o.error);
        assert_eq!(
            repeats(&sink.findings).len(),
            *observations,
            "{t}: distinct observations"
        );
        cells += check_cells(t, &csv_rows(&path), &sink.findings);
    }
    assert!(cells > 5000, "{cells} cells checked");

    // Through the store: `import shadowserver` keeps exactly one finding per observation.
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("store");
    let out = crate::support::cli(tmp.path())
        .args([
            "--data-dir",
            data.to_str().unwrap(),
            "import",
            "shadowserver",
            "--json",
        ])
        .args(files.iter().map(|f| dir.join(f)))
        .output()
        .unwrap();
    let s = crate::support::stdout_json(&out);
    let want: usize = SHADOWSERVER.iter().map(|(_, _, o)| o).sum();
    let rows: usize = SHADOWSERVER.iter().map(|(_, r, _)| r).sum();
    assert_eq!(
        (s["rows"].as_u64(), s["imported"].as_u64()),
        (Some(rows as u64), Some(want as u64)),
        "{s}"
    );
}

/// Both CAP samples: every line is its own event (IntelMQ's test file of 35 records has no two
/// lines with one category, address, time, destination and protocol; the older file's two
/// `bots` lines at 10:00:05 name two families).
#[test]
fn cymru_samples_one_finding_per_observation_and_no_value_lost() {
    let Some(dir) = samples("cymru") else { return };
    for (name, lines) in [
        ("cap_certname_20190327.txt", 35),
        ("cap_infected_20171031.txt", 9),
    ] {
        let body = std::fs::read(dir.join(name)).unwrap();
        let p = cymru::parse(&body, name);
        assert_eq!(
            (p.rows, p.findings.len(), p.rejected.len()),
            (lines, lines, 0)
        );
        assert_eq!(
            repeats(&p.findings).len(),
            lines,
            "{name}: one finding per line"
        );
        let rows: Vec<Vec<String>> = String::from_utf8(body)
            .unwrap()
            .lines()
            .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
            .map(|l| l.split('|').map(str::to_string).collect())
            .collect();
        // The AS information `Example AS Name, AT` is kept as its name and country.
        let rows: Vec<Vec<String>> = rows
            .into_iter()
            .map(|mut r| {
                if let Some(last) = r.pop() {
                    r.extend(last.rsplitn(2, ", ").map(str::to_string));
                }
                r
            })
            .collect();
        check_cells(name, &rows, &p.findings);
    }
}

/// SNDS: `data.aspx` rows are one per address and day (all three here are flagged), each
/// `ipStatus.aspx` row one blocked range.
#[test]
fn snds_samples_one_finding_per_observation_and_no_value_lost() {
    let Some(dir) = samples("snds") else { return };
    let body = std::fs::read(dir.join("data.csv")).unwrap();
    let (f, rej, rows) = snds::parse_data(&body, "data.csv");
    assert_eq!((rows, f.len(), rej.len(), repeats(&f).len()), (3, 3, 0, 3));
    check_cells("data.csv", &crate::support::csv_records(&body), &f);
    let body = std::fs::read(dir.join("ipstatus.csv")).unwrap();
    let (f, rej, rows) = snds::parse_ip_status(&body, "ipstatus.csv");
    assert_eq!((rows, f.len(), rej.len(), repeats(&f).len()), (5, 5, 0, 5));
    check_cells("ipstatus.csv", &crate::support::csv_records(&body), &f);
}

/// The list samples under a scope holding every address: (feed, file, entries, findings,
/// distinct observations). Every entry of a list is its own observation: an address and port
/// (Feodo Tracker, SSLBL), a URL (URLhaus), an IOC with its malware (ThreatFox, whose hash
/// IOCs name no host and are skipped).
const LISTS: &[(&str, &str, usize, usize, usize)] = &[
    (
        "feodotracker",
        "feodo_ipblocklist_2024-04-04.csv",
        28,
        28,
        28,
    ),
    ("feodotracker", "feodo_ipblocklist_2025-06-25.csv", 1, 1, 1),
    (
        "urlhaus",
        "urlhaus_csv_recent_2026-02-26_TRUNCATED.csv",
        10,
        8,
        8,
    ),
    (
        "urlhaus",
        "urlhaus_csv_recent_2019-11-27_OLD-8col-format_TRUNCATED.csv",
        4,
        3,
        3,
    ),
    (
        "urlhaus_asn",
        "urlhaus_feed_tld_2019-02-13_intelmq-test.csv",
        2,
        2,
        2,
    ),
    (
        "threatfox",
        "threatfox_full_csv_2024-07-16_14col_TRUNCATED.csv",
        5,
        4,
        4,
    ),
    (
        "sslbl",
        "sslbl_sslipblacklist_csv_2022-07-28_TRUNCATED.csv",
        2,
        2,
        2,
    ),
];

#[test]
fn list_samples_one_finding_per_observation_and_no_value_lost() {
    use outwatch::sources::lists;
    let Some(dir) = samples("abusech") else {
        return;
    };
    let scope = everything();
    for (feed, file, entries, found_n, distinct) in LISTS {
        let def = lists::builtin_defs()
            .into_iter()
            .find(|d| d.name == *feed)
            .unwrap();
        let text = std::fs::read_to_string(dir.join(file)).unwrap();
        // The truncated ThreatFox dump keeps the full dump's count trailer: without it.
        let body: String = text
            .lines()
            .filter(|l| !l.starts_with("# Number of entries"))
            .map(|l| format!("{l}\n"))
            .collect();
        let p = lists::process_body(&def, feed, body.as_bytes(), "sample", &scope).unwrap();
        assert_eq!(
            (p.fetched, p.findings.len(), p.rejected.len()),
            (*entries, *found_n, 0),
            "{file}: {:?}",
            p.rejected
        );
        assert_eq!(repeats(&p.findings).len(), *distinct, "{file}");
        let lines: Vec<&str> = body.lines().collect();
        let rows: Vec<Vec<String>> = p
            .findings
            .iter()
            .map(|f| {
                let n: usize = f
                    .raw
                    .as_deref()
                    .unwrap()
                    .rsplit(' ')
                    .next()
                    .unwrap()
                    .parse()
                    .unwrap();
                let line = lines[n - 1].replace("\", \"", "\",\"");
                crate::support::csv_records(line.as_bytes()).remove(0)
            })
            .collect();
        // The list's own null markers (ThreatFox writes `None`) are empty cells.
        let rows: Vec<Vec<String>> = rows
            .into_iter()
            .map(|r| {
                r.into_iter()
                    .map(|c| {
                        if def.nulls.contains(&c) {
                            String::new()
                        } else {
                            c
                        }
                    })
                    .collect()
            })
            .collect();
        check_cells(file, &rows, &p.findings);
    }
}

/// HIBP: one finding per address and breach (`breacheddomain`: 25 pairs of six aliases;
/// `breachedaccount`: five breaches of one account), each naming both.
#[test]
fn hibp_samples_one_finding_per_address_and_breach() {
    use outwatch::sources::hibp;
    let Some(dir) = samples("hibp") else { return };
    let body = std::fs::read(dir.join("breacheddomain.json")).unwrap();
    let pairs = hibp::parse_domain_search(&body).unwrap();
    let mut findings = Vec::new();
    for (alias, breaches) in &pairs {
        for b in breaches {
            let f = hibp::pair_finding("example.org", alias, b, None);
            assert_eq!(
                f.email.as_deref(),
                Some(format!("{alias}@example.org").as_str())
            );
            assert_eq!(f.identity, vec![b.clone()]);
            findings.push(f);
        }
    }
    assert_eq!((findings.len(), repeats(&findings).len()), (25, 25));
    let body = std::fs::read(dir.join("breachedaccount.json")).unwrap();
    let names = hibp::parse_account(&body).unwrap();
    let findings: Vec<Finding> = names
        .iter()
        .map(|b| hibp::pair_finding("example.org", "jane", b, None))
        .collect();
    assert_eq!((findings.len(), repeats(&findings).len()), (5, 5));
}

/// Safe Browsing alert mails: one finding per reported URL (five in each), with its address.
#[test]
fn safebrowsing_alert_samples_one_finding_per_url_and_no_value_lost() {
    use outwatch::sources::safebrowsing::alerts;
    let Some(dir) = samples("safebrowsing") else {
        return;
    };
    for name in ["alert-ipv4.eml", "alert-ipv6.eml"] {
        let raw = std::fs::read(dir.join(name)).unwrap();
        let mail = outwatch::mail::parse(&raw).unwrap();
        let xml = mail.bodies().find_map(alerts::extract_xml).unwrap();
        let p = alerts::parse_xml(xml, name, mail.date).unwrap();
        assert_eq!(
            (p.records, p.findings.len(), repeats(&p.findings).len()),
            (5, 5, 5)
        );
        // Every `url` and `ip` attribute of the mail is in a finding of it.
        for attr in ["url=\"", "ip=\""] {
            for piece in xml.split(attr).skip(1) {
                let v = piece.split('"').next().unwrap();
                assert!(
                    p.findings.iter().any(|f| found(v, f, &texts(f))),
                    "{name}: {attr}{v}\" is in no finding"
                );
            }
        }
    }
}
