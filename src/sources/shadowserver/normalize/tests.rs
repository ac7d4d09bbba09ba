use super::*;
use crate::scope::ScopeSnapshot;

fn rec(s: &str) -> csv::ByteRecord {
    let mut r = csv::ReaderBuilder::new()
        .has_headers(false)
        .from_reader(s.as_bytes());
    let mut b = csv::ByteRecord::new();
    r.read_byte_record(&mut b).unwrap();
    b
}

fn header(s: &str) -> Vec<String> {
    rec(s)
        .iter()
        .map(|f| String::from_utf8_lossy(f).into_owned())
        .collect()
}

#[test]
fn times() {
    let t = |s| parse_time(s).map(|t| t.to_rfc3339());
    assert_eq!(
        t("2024-01-04 08:04:37").unwrap(),
        "2024-01-04T08:04:37+00:00"
    );
    assert_eq!(
        t("2024-01-04 08:04:37Z").unwrap(),
        "2024-01-04T08:04:37+00:00"
    );
    assert_eq!(
        t("2021-03-27T00:00:00.521730Z").unwrap(),
        "2021-03-27T00:00:00.521730+00:00"
    );
    assert_eq!(
        t("2024-01-04T10:04:37+02:00").unwrap(),
        "2024-01-04T08:04:37+00:00"
    );
    assert!(t("2024-13-04 08:04:37").is_none());
    // A character that is not ASCII across byte 19 is a bad time, not a panic.
    assert!(t("2026-11-20 03:14:0é").is_none());
    assert!(t("2026-11-20 03:14:é").is_none());
    assert!(t("2026-11-20 03:14:00é").is_none());
    assert!(t("2026-11-20 03:14:00.5é").is_none());
    assert!(t("yesterday").is_none());
}

#[test]
fn trim_is_str_trim() {
    let mut cases: Vec<String> = ["", "a", " a", "a ", "\u{a0}a\u{3000}", "é", " é ", "ab"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    for b in 0u8..=0x7f {
        let c = char::from(b);
        cases.extend([
            format!("{c}"),
            format!("{c}x"),
            format!("x{c}"),
            format!("{c}x{c}"),
        ]);
    }
    for c in &cases {
        assert_eq!(trim(c), c.trim(), "{c:?}");
        assert_eq!(is_null(c), c.trim().is_empty(), "{c:?}");
    }
    for t in ["", "a", " a , b;;c ;", ",;", " \u{a0}x\u{a0};é, y"] {
        let want: Vec<&str> = t
            .split([',', ';'])
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .collect();
        assert_eq!(split_tags(t), want, "{t:?}");
    }
    for s in [
        "critical",
        "HIGH",
        " medium ",
        "Low",
        "info",
        "informational",
        "x",
        "",
    ] {
        assert_eq!(parse_severity(s), s.parse().ok(), "{s}");
    }
}

#[test]
fn host_names() {
    let h = |v: &str| host_name(Cow::Borrowed(v)).map(Cow::into_owned);
    assert_eq!(
        h("https://WWW.Example.org./x?y").as_deref(),
        Some("www.example.org")
    );
    assert_eq!(h("mail.example.org").as_deref(), Some("mail.example.org"));
    assert_eq!(
        host_name(Cow::Owned("Ns.Example.org".into())).as_deref(),
        Some("ns.example.org")
    );
    for junk in [
        "192.0.2.7",
        "localhost",
        "a b.example",
        "x@example.org",
        "[::1]:80",
    ] {
        assert_eq!(h(junk), None, "{junk}");
    }
    let long = format!("{}.example.org", "a".repeat(250));
    assert_eq!(h(&long), None, "longer than a DNS name");
    let ok = format!("{}.example.org", "a".repeat(241));
    assert_eq!(h(&ok).map(|s| s.len()), Some(253));
}

#[test]
fn cves() {
    assert!(is_cve("CVE-2024-38063"));
    assert!(is_cve("cve-2021-26855"));
    assert!(!is_cve("cve-21-1"));
    assert!(!is_cve("exchange"));
}

#[test]
fn scan_row_by_header_name() {
    let schema = Schema::bundled();
    let scope = ScopeMatcher::new(&ScopeSnapshot {
        prefixes: vec!["192.0.2.0/24".parse().unwrap()],
        ..Default::default()
    });
    // Columns deliberately out of the usual order, plus an unknown one.
    let h = header(
        "\"port\",\"ip\",\"timestamp\",\"severity\",\"protocol\",\"hostname\",\"tag\",\"asn\",\"new_col\",\"naics\"",
    );
    let n = Normalizer::new(&schema, "scan_dns", &h, &scope).unwrap();
    let f = n
        .row(
            &rec("53,\"192.0.2.7\",\"2024-01-04 08:04:37\",\"high\",\"udp\",\"ns.Example.org.\",\"openresolver;CVE-2020-1350\",64496,\"x\",0"),
            "f.csv:2",
        )
        .unwrap();
    assert_eq!(f.ip.unwrap().to_string(), "192.0.2.7");
    assert_eq!(f.port, Some(53));
    assert_eq!(f.protocol.as_deref(), Some("udp"));
    assert_eq!(f.asn, Some(64496));
    assert_eq!(f.domain.as_deref(), Some("ns.example.org"));
    assert_eq!(f.severity, Severity::High);
    assert_eq!(f.classification.identifier, "dns-open-resolver");
    assert_eq!(f.extra["new_col"], "x");
    assert_eq!(f.extra["naics"], "0", "0 is a value");
    assert_eq!(f.extra["cves"], serde_json::json!(["CVE-2020-1350"]));
    assert!(f.in_scope);
}

#[test]
fn event_subject_follows_scope() {
    let schema = Schema::bundled();
    let h = header("timestamp,protocol,src_ip,src_port,src_asn,dst_ip,dst_port,dst_asn,infection");
    let row = rec("2026-11-20 10:00:00,tcp,203.0.113.5,50123,64500,192.0.2.9,8080,64496,mirai");
    // No scope: the default side (src) is the subject.
    let empty = ScopeMatcher::default();
    let n = Normalizer::new(&schema, "event4_sinkhole", &h, &empty).unwrap();
    let f = n.row(&row, "x:2").unwrap();
    assert_eq!(f.ip.unwrap().to_string(), "203.0.113.5");
    assert_eq!(f.port, None, "client ports are not identity");
    assert_eq!(f.extra["port"], "50123");
    assert_eq!(f.extra["dst_ip"], "192.0.2.9");
    assert_eq!(f.classification.identifier, "mirai");
    assert!(!f.in_scope);
    // Our network is on the dst side: that side becomes the subject.
    let scope = ScopeMatcher::new(&ScopeSnapshot {
        prefixes: vec!["192.0.2.0/24".parse().unwrap()],
        ..Default::default()
    });
    let n = Normalizer::new(&schema, "event4_sinkhole", &h, &scope).unwrap();
    let f = n.row(&row, "x:2").unwrap();
    assert_eq!(f.ip.unwrap().to_string(), "192.0.2.9");
    assert_eq!(f.port, Some(8080));
    assert_eq!(f.asn, Some(64496));
    assert_eq!(f.extra["src_ip"], "203.0.113.5");
    assert!(f.in_scope);
}

#[test]
fn blocklist_cidr_and_malformed_rows() {
    let schema = Schema::bundled();
    let scope = ScopeMatcher::default();
    let h = header("timestamp,severity,ip,hostname,source,reason,asn");
    let n = Normalizer::new(&schema, "blocklist", &h, &scope).unwrap();
    let f = n
        .row(&rec("2026-11-20 08:04:37,,198.51.100.0/24,,x,y,0"), "b:2")
        .unwrap();
    assert_eq!(f.network.unwrap().to_string(), "198.51.100.0/24");
    assert_eq!(f.ip, None);
    assert_eq!(f.asn, None, "AS 0 names no network");
    assert_eq!(f.extra["asn"], "0", "but it is kept as written");
    assert_eq!(f.severity, Severity::Low);
    let f = n
        .row(&rec("2026-11-20 08:04:37,,198.51.100.7/32,,x,y,"), "b:3")
        .unwrap();
    assert_eq!(f.ip.unwrap().to_string(), "198.51.100.7");
    for bad in [
        "2026-11-20 08:04:37,,999.1.1.1,,x,y,1",
        "not a time,,198.51.100.7,,x,y,1",
        "2026-11-20 03:14:0\u{e9},,198.51.100.7,,x,y,1",
        ",,198.51.100.7,,x,y,1",
        "2026-11-20 08:04:37,,,,x,y,1",
        "2026-11-20 08:04:37,,198.51.100.7,,x,y,1,extra",
    ] {
        assert!(n.row(&rec(bad), "b:9").is_err(), "{bad}");
    }
    // A malformed ASN or severity is not the identity: kept in extra, with a warning.
    let (f, w) = n
        .row_warned(
            &rec("2026-11-20 08:04:37,urgent,198.51.100.7,,x,y,ASX"),
            "b:4",
        )
        .unwrap();
    assert_eq!(f.asn, None);
    assert_eq!(f.extra["asn"], "ASX");
    assert_eq!(f.extra["severity"], "urgent");
    assert_eq!(f.severity, Severity::Low, "the type's default");
    assert_eq!(w.len(), 2, "{w:?}");
    assert!(w[0].contains("urgent") && w[1].contains("ASX"), "{w:?}");
    assert!(Normalizer::new(&schema, "blocklist", &header("a,b,c"), &scope).is_err());
}

#[test]
fn sinkhole_row_keeps_its_finding_when_dst_ip_is_malformed() {
    let schema = Schema::bundled();
    let scope = ScopeMatcher::new(&ScopeSnapshot {
        prefixes: vec!["192.0.2.0/24".parse().unwrap()],
        ..Default::default()
    });
    let h = header("timestamp,protocol,src_ip,src_port,src_asn,dst_ip,dst_port,dst_asn,infection");
    let n = Normalizer::new(&schema, "event4_sinkhole", &h, &scope).unwrap();
    // Our infected host on src; the sinkhole's address is garbage.
    let row =
        rec("2026-11-20 03:14:00,tcp,192.0.2.77,49812,64496,148.81.111.11.12,80,64500,andromeda");
    let (f, w) = n.row_warned(&row, "s:2").unwrap();
    assert_eq!(f.ip.unwrap().to_string(), "192.0.2.77");
    assert_eq!(f.asn, Some(64496));
    assert_eq!(f.extra["dst_ip"], "148.81.111.11.12");
    assert!(f.in_scope);
    assert_eq!(w.len(), 1);
    assert!(
        w[0].contains("dst_ip") && w[0].contains("148.81.111.11.12"),
        "{w:?}"
    );
    // Our host on dst, garbage on src (the default side): dst is the subject.
    let row = rec("2026-11-20 03:14:00,tcp,1.2.3.4.5,49812,64500,192.0.2.9,80,64496,mirai");
    let (f, w) = n.row_warned(&row, "s:3").unwrap();
    assert_eq!(f.ip.unwrap().to_string(), "192.0.2.9");
    assert_eq!(f.extra["src_ip"], "1.2.3.4.5");
    assert_eq!(w.len(), 1);
    // No side in scope and the default side malformed: the identity is malformed.
    let row = rec("2026-11-20 03:14:00,tcp,1.2.3.4.5,49812,64500,203.0.113.9,80,64496,mirai");
    let e = n.row(&row, "s:4").unwrap_err();
    let e = e.to_string();
    assert!(e.contains("src_ip") && e.contains("1.2.3.4.5"), "{e}");
    // A malformed service port of the subject stays in extra.
    let h = header("timestamp,ip,port,protocol");
    let n = Normalizer::new(&schema, "scan_http", &h, &scope).unwrap();
    let (f, w) = n
        .row_warned(&rec("2026-11-20 03:14:00,192.0.2.5,99999,tcp"), "s:5")
        .unwrap();
    assert_eq!(f.port, None);
    assert_eq!(f.extra["port"], "99999");
    assert_eq!(w.len(), 1);
}
