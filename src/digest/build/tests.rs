use super::*;
use crate::finding::Classification;

fn f(kind: &str, ip: &str, first: i64) -> Finding {
    let mut f = Finding::new(
        "s",
        "feed",
        Classification::new("", kind, "id"),
        Severity::High,
    );
    f.ip = Some(ip.parse().unwrap());
    f.first_seen = DateTime::from_timestamp(first, 0).unwrap();
    f.last_seen = f.first_seen;
    f.seal();
    f
}

#[test]
fn classify_windows() {
    let w = Window {
        since: DateTime::from_timestamp(100, 0),
        now: DateTime::from_timestamp(200, 0).unwrap(),
    };
    assert_eq!(classify(&f("x", "192.0.2.1", 150), &w), Some(Section::New));
    let mut old = f("x", "192.0.2.1", 50);
    old.status = Status::Open;
    assert_eq!(classify(&old, &w), Some(Section::Open));
    // Never announced (still `new`): new, however old.
    assert_eq!(classify(&f("x", "192.0.2.1", 50), &w), Some(Section::New));
    assert_eq!(classify(&f("x", "192.0.2.1", 250), &w), None);
    let mut r = f("x", "192.0.2.1", 50);
    r.status = Status::Resolved;
    r.push_history(DateTime::from_timestamp(120, 0).unwrap(), "resolved");
    assert_eq!(classify(&r, &w), Some(Section::Resolved));
    r.history[0].at = DateTime::from_timestamp(90, 0).unwrap();
    assert_eq!(classify(&r, &w), None);
    let mut back = old.clone();
    back.push_history(DateTime::from_timestamp(160, 0).unwrap(), "reopened");
    assert_eq!(classify(&back, &w), Some(Section::New));
    let mut out = f("x", "192.0.2.1", 150);
    out.in_scope = false;
    assert_eq!(classify(&out, &w), None);
}

#[test]
fn caps_lists_but_counts_exactly() {
    let w = Window {
        since: DateTime::from_timestamp(0, 0),
        now: DateTime::from_timestamp(1_000_000, 0).unwrap(),
    };
    let mut c = Collector::new(w, None);
    for i in 0..1000u32 {
        let ip = format!("10.0.{}.{}", i / 256, i % 256);
        c.add(&f("scanner", &ip, 1000 - i64::from(i)));
    }
    assert_eq!(c.counts(), (1000, 0, 0));
    let s = c.sections(&Remediation::builtin().unwrap(), LIST_TOTAL);
    let cat = &s[0].severities[0].categories[0];
    assert_eq!(cat.count, 1000);
    assert_eq!(cat.listed, LIST_NEW);
    assert_eq!(cat.more, 1000 - LIST_NEW);
    assert_eq!(
        cat.more_command,
        "outwatch list --severity high --class information-gathering/scanner \
         --stored-since 1970-01-01T00:00:00Z --sort rank"
    );
    // Observed the same day: numeric address order (10.0.0.2 before 10.0.0.10).
    let listed: Vec<&str> = cat.findings.iter().map(|f| f.indicator.as_str()).collect();
    assert_eq!(listed[..3], ["10.0.0.0", "10.0.0.1", "10.0.0.2"]);
    assert_eq!(listed[10], "10.0.0.10");
    assert_eq!(listed[LIST_NEW - 1], "10.0.0.19");
    // A smaller budget lists fewer, and counts the rest.
    let s = c.sections(&Remediation::builtin().unwrap(), 3);
    assert_eq!(s[0].severities[0].categories[0].more, 997);
}

#[test]
fn routes_match_prefix_and_domain() {
    let r = DigestRoute {
        name: "dmz".into(),
        prefixes: vec!["192.0.2.0/25".parse().unwrap()],
        domains: vec!["dmz.example.org".parse().unwrap()],
        recipients: vec!["dmz@example.org".into()],
    };
    assert!(route_matches(&r, &f("x", "192.0.2.5", 0)));
    assert!(!route_matches(&r, &f("x", "192.0.2.200", 0)));
    let mut d = f("x", "198.51.100.1", 0);
    d.url = Some("http://WWW.dmz.example.org:8080/x".into());
    assert!(route_matches(&r, &d));
    d.url = Some("http://notdmz.example.org/".into());
    assert!(!route_matches(&r, &d));
    d.email = Some("bob@dmz.example.org".into());
    assert!(route_matches(&r, &d));
}

#[test]
fn an_active_threat_comes_before_more_spam_and_open_ports() {
    let w = Window {
        since: None,
        now: DateTime::from_timestamp(1_000_000, 0).unwrap(),
    };
    let mut c = Collector::new(w, None);
    // Three spam reports and two open ports, observed later than the C2 server.
    for ip in ["192.0.2.200", "192.0.2.54", "192.0.2.7"] {
        c.add(&f("spam", ip, 900));
    }
    c.add(&f("vulnerable-system", "192.0.2.9", 900));
    c.add(&f("vulnerable-system", "192.0.2.10", 900));
    c.add(&f("c2-server", "198.51.100.1", 100));
    let (act, total, _) = c.act_first(ACT_FIRST);
    assert_eq!(total, 6);
    let order: Vec<&str> = act.iter().map(|a| a.indicator.as_str()).collect();
    assert_eq!(
        order,
        [
            "198.51.100.1",
            "192.0.2.7",
            "192.0.2.54",
            "192.0.2.200",
            "192.0.2.9",
            "192.0.2.10"
        ]
    );
    assert_eq!(act[0].threat, "compromise");
    let s = c.sections(&Remediation::builtin().unwrap(), LIST_TOTAL);
    let kinds: Vec<&str> = s[0].severities[0]
        .categories
        .iter()
        .map(|c| c.kind.as_str())
        .collect();
    assert_eq!(kinds, ["c2-server", "spam", "vulnerable-system"]);
    let spam: Vec<&str> = s[0].severities[0].categories[1]
        .findings
        .iter()
        .map(|f| f.indicator.as_str())
        .collect();
    assert_eq!(spam, ["192.0.2.7", "192.0.2.54", "192.0.2.200"]);
}

#[test]
fn contact_names_ports_and_peer() {
    use serde_json::json;
    // A sinkhole hit from our address (the subject side's port lost its prefix).
    let mut x = f("infected-system", "192.0.2.54", 0);
    x.extra.insert("port".into(), json!("50100"));
    x.extra.insert("dst_ip".into(), json!("203.0.113.80"));
    x.extra.insert("dst_port".into(), json!(80));
    assert_eq!(
        contact(&x).as_deref(),
        Some("source port 50100 → 203.0.113.80:80")
    );
    x.extra.insert("dst_ip".into(), json!("2001:db8::80"));
    assert_eq!(
        contact(&x).as_deref(),
        Some("source port 50100 → [2001:db8::80]:80")
    );
    // Our address was connected to.
    let mut y = f("scanner", "192.0.2.9", 0);
    y.port = Some(8080);
    y.extra.insert("src_ip".into(), json!("203.0.113.5"));
    y.extra.insert("src_port".into(), json!("50123"));
    assert_eq!(contact(&y).as_deref(), Some("from 203.0.113.5:50123"));
    // A scan finding's own port is its address, not a contact.
    let mut z = f("vulnerable-system", "192.0.2.1", 0);
    z.port = Some(443);
    z.extra.insert("port".into(), json!("443"));
    assert_eq!(contact(&z), None);
    // Attacker-controlled text is cleaned.
    x.extra.insert("dst_ip".into(), json!("a\nb"));
    assert_eq!(contact(&x).as_deref(), Some("source port 50100 → a b:80"));
}

#[test]
fn health_times_in_the_digests_format() {
    assert_eq!(
        retime(
            "failed (since 2026-11-30T07:00:00Z): ä 2026-11-30T07:00:00",
            None
        ),
        "failed (since 2026-11-30 07:00:00 UTC): ä 2026-11-30T07:00:00"
    );
    let berlin: Tz = "Europe/Berlin".parse().unwrap();
    assert_eq!(
        retime("2026-11-30T07:00:00Z", Some(berlin)),
        "2026-11-30 08:00:00 CET"
    );
}

#[test]
fn clean_strips_controls_and_shortens() {
    assert_eq!(clean("a\nb\tc", 10), "a b c");
    assert_eq!(clean("äöüß", 2), "äö…");
}

#[test]
fn values_in_words_and_internal_fields_hidden() {
    use serde_json::json;
    assert_eq!(
        in_words(&json!(["Passwords", "Email addresses", "Usernames"])),
        "Passwords, Email addresses and Usernames"
    );
    assert_eq!(in_words(&json!(["a"])), "a");
    assert_eq!(
        in_words(&json!([1, 2, 3, 4, 5, 6, 7, 8])),
        "1, 2, 3, 4, 5 and 3 more"
    );
    assert_eq!(in_words(&json!(true)), "yes");
    assert_eq!(in_words(&json!(64496)), "64496");
    assert_eq!(thousands(1234567), "1,234,567");
    let rem = Remediation::builtin().unwrap();
    let mut x = f("data-leak", "192.0.2.1", 0);
    x.source = "hibp".into();
    x.extra
        .insert("data_classes".into(), json!(["Passwords", "Names"]));
    x.extra.insert("from_cache".into(), json!(true));
    x.extra.insert("added_date".into(), json!("2020-01-01"));
    x.extra.insert("breach_date".into(), json!("2019-01-01"));
    x.extra.insert("breach".into(), json!("Adobe"));
    x.extra.insert("title".into(), json!("Adobe"));
    let d = details(&x, rem.details());
    let keys: Vec<&str> = d.iter().map(|d| d.key.as_str()).collect();
    assert!(keys.iter().any(|k| k.contains("data")), "{keys:?}");
    assert!(!keys.iter().any(|k| k.contains("cache")), "{keys:?}");
    // The name repeats the title: shown once.
    assert_eq!(d.iter().filter(|d| d.value == "Adobe").count(), 1, "{d:?}");
    let classes = d.iter().find(|d| d.key.contains("data")).unwrap();
    assert_eq!(classes.value, "Passwords and Names");
    // Any source: internal fields never.
    let mut y = f("scanner", "192.0.2.2", 0);
    y.extra.insert("from_cache".into(), json!(true));
    y.extra.insert("cache_duration".into(), json!("300.000s"));
    y.extra
        .insert("cidrs".into(), json!(["192.0.2.130/31", "192.0.2.132/30"]));
    let d = details(&y, rem.details());
    assert_eq!(d.len(), 1, "{d:?}");
    assert_eq!(d[0].value, "192.0.2.130/31 and 192.0.2.132/30");
    assert_eq!(category("blacklist"), "blocklist");
}

#[test]
fn trend_and_act_first() {
    let now = DateTime::from_timestamp(1_700_000_000, 0).unwrap(); // 2023-11-14 22:13 UTC
    let w = Window { since: None, now };
    let mut c = Collector::new(w, None);
    let day = 86_400;
    let mut a = f("c2-server", "192.0.2.1", 1_700_000_000 - 3 * day);
    a.severity = Severity::Critical;
    c.add(&a);
    let mut r = f("scanner", "192.0.2.2", 1_700_000_000 - 5 * day);
    r.severity = Severity::Low;
    r.status = Status::Resolved;
    r.push_history(
        DateTime::from_timestamp(1_700_000_000 - day, 0).unwrap(),
        "resolved",
    );
    c.add(&r);
    let t = c.trend();
    assert_eq!(t.len(), TREND_DAYS);
    assert_eq!(t[13].date, "11-14");
    assert_eq!(t[13].open, 1);
    assert_eq!(t[12].resolved, 1);
    assert_eq!(t[12].open, 1);
    assert_eq!(t[11].open, 2);
    assert_eq!(t[10].new, 1);
    assert_eq!(t[8].new, 1);
    assert_eq!(t[7].open, 0);
    let (items, total, cmd) = c.act_first(ACT_FIRST);
    assert_eq!(total, 1);
    assert_eq!(cmd, "outwatch list --min-severity high --sort rank");
    assert_eq!(items[0].indicator, "192.0.2.1");
    assert_eq!(items[0].severity, Severity::Critical);
}
