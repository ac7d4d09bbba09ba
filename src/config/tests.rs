use super::*;

fn parse(s: &str) -> Result<Config, ConfigError> {
    Config::parse(
        s,
        Path::new("/etc/outwatch/outwatch.toml"),
        &crate::sources::Registry,
    )
}

#[test]
fn contract_example_parses() {
    let c = parse(
        r#"
[organisation]
name = "Example Org"
asns = [64496, "AS64497"]
prefixes = ["203.0.113.0/24", "2001:db8:1::/48"]
domains = ["Example.org."]
[scope]
ripestat_url = "http://127.0.0.1:9"
[store]
path = "./outwatch-data"
[sources.feodotracker]
enabled = false
"#,
    )
    .unwrap();
    assert_eq!(c.organisation.asns, vec![Asn(64496), Asn(64497)]);
    assert_eq!(c.organisation.domains[0].0, "example.org");
    assert_eq!(
        c.data_dir(None),
        PathBuf::from("/etc/outwatch/outwatch-data")
    );
    assert_eq!(c.data_dir(Some(Path::new("/x"))), PathBuf::from("/x"));
}

#[test]
fn unknown_key_is_named_with_line() {
    let e = parse("[organisation]\nname = \"x\"\nasn = [1]\n")
        .unwrap_err()
        .to_string();
    assert!(e.contains("asn"), "{e}");
    assert!(e.contains("line 3"), "{e}");
}

#[test]
fn bad_value_is_named_with_line() {
    let e = parse("[organisation]\nprefixes = [\"10.0.0.0/33\"]\n")
        .unwrap_err()
        .to_string();
    assert!(e.contains("line 2"), "{e}");
    let e = parse("[digest]\nfrom = \"a@b.c\"\nschedule = \"every day\"\n")
        .unwrap_err()
        .to_string();
    assert!(e.contains("schedule") || e.contains("line 3"), "{e}");
    assert!(e.contains("cron"), "{e}");
}

#[test]
fn unknown_source_is_named() {
    let e = parse("[sources.nosuchfeed]\nenabled = true\n")
        .unwrap_err()
        .to_string();
    assert!(e.contains("sources.nosuchfeed"), "{e}");
    assert!(e.contains("line 1"), "{e}");
}

#[test]
fn keyed_urls_must_be_https_or_loopback() {
    let e = parse("[sources.hibp]\napi_key = \"k\"\nbase_url = \"http://198.51.100.1/api/v3\"\n")
        .unwrap_err()
        .to_string();
    assert!(e.contains("sources.hibp.base_url"), "{e}");
    assert!(e.contains("line 3"), "{e}");
    assert!(e.contains("https"), "{e}");
    for (table, key) in [
        ("sources.safebrowsing", "base_url"),
        ("sources.snds", "base_url"),
        ("sources.shadowserver", "base_url"),
        ("sources.shadowserver", "download_url"),
    ] {
        let doc = format!("[{table}]\n{key} = \"http://198.51.100.1/\"\n");
        let e = parse(&doc).unwrap_err().to_string();
        assert!(e.contains(&format!("{table}.{key}")), "{e}");
        assert!(e.contains("line 2"), "{e}");
        // Loopback and https pass; so does plain http when the table allows it.
        for ok in [
            "http://127.0.0.1:8080/",
            "http://localhost/",
            "https://198.51.100.1/",
        ] {
            parse(&format!("[{table}]\n{key} = \"{ok}\"\n")).unwrap();
        }
        parse(&format!(
            "[{table}]\n{key} = \"http://198.51.100.1/\"\nallow_plain_http = true\n"
        ))
        .unwrap();
    }
    // A list feed with a key is keyed; without one, plain http is its own business.
    let e = parse("[sources.urlhaus]\nauth_key = \"k\"\nbase_url = \"http://198.51.100.1\"\n")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("sources.urlhaus.base_url") && e.contains("line 3"),
        "{e}"
    );
    parse("[sources.urlhaus]\nbase_url = \"http://198.51.100.1\"\n").unwrap();
}

#[test]
fn only_http_schemes() {
    let e = parse("[sources.shadowserver]\ndownload_url = \"ftp://198.51.100.1/dl/\"\n")
        .unwrap_err()
        .to_string();
    assert!(e.contains("sources.shadowserver.download_url"), "{e}");
    assert!(e.contains("ftp"), "{e}");
    let e = parse("[scope]\nripestat_url = \"file:///etc/passwd\"\n")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("scope.ripestat_url") && e.contains("line 2"),
        "{e}"
    );
    let e = parse("[sources.urlhaus]\nurl = \"gopher://x/\"\n")
        .unwrap_err()
        .to_string();
    assert!(e.contains("sources.urlhaus.url"), "{e}");
}

#[test]
fn cron_accepts_five_fields() {
    let c: CronSchedule = "*/15 * * * *".parse().unwrap();
    let t = DateTime::parse_from_rfc3339("2026-01-01T00:01:00Z")
        .unwrap()
        .with_timezone(&Utc);
    assert_eq!(
        c.next_after(&t).unwrap().to_rfc3339(),
        "2026-01-01T00:15:00+00:00"
    );
    assert_eq!(c.interval(&t).unwrap(), chrono::Duration::minutes(15));
}

fn weekdays_fired(expr: &str) -> Vec<String> {
    use chrono::Datelike;
    let c: CronSchedule = expr.parse().unwrap();
    // 2026-01-04 is a Sunday.
    let mut t = DateTime::parse_from_rfc3339("2026-01-04T00:00:00Z")
        .unwrap()
        .with_timezone(&Utc);
    let mut out = Vec::new();
    while let Some(n) = c.next_after(&t) {
        if n >= t + chrono::Duration::days(7) || out.len() > 7 {
            break;
        }
        let d = n.weekday().to_string();
        if !out.contains(&d) {
            out.push(d);
        }
        t = n.date_naive().and_hms_opt(23, 59, 59).unwrap().and_utc();
    }
    out
}

#[test]
fn cron_weekdays_mean_what_crontab_means() {
    assert_eq!(
        weekdays_fired("0 7 * * 1-5"),
        ["Mon", "Tue", "Wed", "Thu", "Fri"]
    );
    for sunday in ["0 7 * * 0", "0 7 * * 7", "0 7 * * sun", "0 7 * * Sunday"] {
        assert_eq!(weekdays_fired(sunday), ["Sun"], "{sunday}");
    }
    assert_eq!(weekdays_fired("0 7 * * 6,0"), ["Sun", "Sat"]);
    assert_eq!(weekdays_fired("0 7 * * fri-sun"), ["Sun", "Fri", "Sat"]);
    assert_eq!(weekdays_fired("0 7 * * 5-7"), ["Sun", "Fri", "Sat"]);
    assert_eq!(weekdays_fired("0 7 * * */2"), ["Sun", "Tue", "Thu", "Sat"]);
    assert_eq!(weekdays_fired("0 7 * * 1-5/2"), ["Mon", "Wed", "Fri"]);
    assert_eq!(
        weekdays_fired("0 7 * * MON-FRI"),
        ["Mon", "Tue", "Wed", "Thu", "Fri"]
    );
    // Six fields (seconds first) use the same weekday numbers.
    assert_eq!(
        weekdays_fired("0 0 7 * * 1-5"),
        ["Mon", "Tue", "Wed", "Thu", "Fri"]
    );
    assert_eq!(weekdays_fired("0 0 7 * * 0"), ["Sun"]);
    assert_eq!(weekdays_fired("0 0 7 * * *").len(), 7);
    assert_eq!(weekdays_fired("@daily").len(), 7);
    // `* * * * 0` fires every minute of Sunday.
    let c: CronSchedule = "* * * * 0".parse().unwrap();
    let sat = DateTime::parse_from_rfc3339("2026-01-03T12:00:00Z")
        .unwrap()
        .with_timezone(&Utc);
    assert_eq!(
        c.next_after(&sat).unwrap().to_rfc3339(),
        "2026-01-04T00:00:00+00:00"
    );
    for bad in [
        "0 7 * * 8",
        "0 7 * * 5-1",
        "0 7 * * xyz",
        "0 7 * * 1/0",
        "7 * *",
    ] {
        let e = bad.parse::<CronSchedule>().unwrap_err().to_string();
        assert!(
            e.contains("cron expression") && e.contains("crontab"),
            "{e}"
        );
    }
    // The source is kept as written.
    let c: CronSchedule = "0 7 * * 1-5".parse().unwrap();
    assert_eq!(c.source, "0 7 * * 1-5");
}

#[test]
fn mistakes_are_named() {
    let e = parse("[organisation]\nname = \"x\"\nemails = [\"not-an-email\"]\n")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("organisation.emails") && e.contains("not-an-email") && e.contains("line 3"),
        "{e}"
    );
    let e = parse("[digest]\nfrom = \"a@example.org\"\nrecipients = [\"noc\"]\n")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("digest.recipients") && e.contains("`noc`") && e.contains("line 3"),
        "{e}"
    );
    parse("[digest]\nfrom = \"outwatch <a@example.org>\"\nrecipients = [\"noc@example.org\"]\n")
        .unwrap();
    let c = parse("[organisation]\nname = \"x\"\nprefixes = [\"203.0.113.5/24\"]\n").unwrap();
    assert_eq!(c.organisation.prefixes[0].to_string(), "203.0.113.0/24");
    assert_eq!(c.warnings.len(), 1);
    assert!(
        c.warnings[0].contains("203.0.113.0/24") && c.warnings[0].contains("line 3"),
        "{:?}",
        c.warnings
    );
    let e = parse("[organisation]\nname = \"x\"\nprefixes = [\"192.0.2.0/24\"]\n\n[sources.hipb]\napi_key_env = \"K\"\n")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("sources.hipb") && e.contains("line 5") && e.contains("[sources.hibp]"),
        "{e}"
    );
    // An empty organisation is an error when a file is loaded.
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("outwatch.toml");
    std::fs::write(&p, "[organisation]\nname = \"Example Org\"\n").unwrap();
    let e = Config::load(&p, &crate::sources::Registry)
        .unwrap_err()
        .to_string();
    assert!(e.contains("names nothing") && e.contains("line 1"), "{e}");
}

#[test]
fn suppress_rules_are_checked_with_their_line() {
    let ok = parse(
        "[organisation]\nasns = [64496]\n\n[[suppress]]\ncidr = \"192.0.2.0/24\"\n\
         until = 2027-01-31\nreason = \"our honeypot\"\n",
    )
    .unwrap();
    assert_eq!(ok.suppress.len(), 1);
    let e = parse(
        "[organisation]\nasns = [64496]\n\n[[suppress]]\nasn = 64496\nuntil = 2027-01-31\n\
         reason = \"a\"\n\n[[suppress]]\nuntil = 2027-01-31\nreason = \"b\"\n",
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("line 9: ") && e.contains("exactly one"), "{e}");
    let e = parse("[[suppress]]\ncidr = \"192.0.2.0/24\"\nuntil = \"next week\"\nreason = \"x\"\n")
        .unwrap_err()
        .to_string();
    assert!(e.contains("line 3") && e.contains("not a date"), "{e}");
    let e = parse("[[suppress]]\ncidr = \"192.0.2.0/24\"\nuntil = 2027-01-31\nreason = \"\"\n")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("line 1: ") && e.contains("`reason` is empty"),
        "{e}"
    );
    let e = parse("[[suppress]]\nip = \"192.0.2.1\"\nuntil = 2027-01-31\nreason = \"x\"\n")
        .unwrap_err()
        .to_string();
    assert!(e.contains("line 2") && e.contains("ip"), "{e}");
}

#[test]
fn a_digest_goes_to_someone() {
    let e = parse("[digest]\nfrom = \"a@example.org\"\nrecipients = []\n")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("line 3: `digest.recipients` is empty") && e.contains("nobody"),
        "{e}"
    );
    // No `recipients` key at all: the table's line.
    let e = parse("[organisation]\nname = \"x\"\n[digest]\nfrom = \"a@example.org\"\n")
        .unwrap_err()
        .to_string();
    assert!(e.contains("line 3: `digest.recipients`"), "{e}");
    // A route that names nobody.
    let e = parse(
        "[digest]\nfrom = \"a@example.org\"\nrecipients = [\"noc@example.org\"]\n\n\
         [[digest.routes]]\nname = \"dmz\"\nprefixes = [\"192.0.2.0/24\"]\n\
         recipients = [\"dmz@example.org\"]\n\n\
         [[digest.routes]]\nname = \"lab\"\nprefixes = [\"198.51.100.0/24\"]\nrecipients = []\n",
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("line 10: `digest.routes.recipients` of route `lab` is empty"),
        "{e}"
    );
    // Only routes get a digest: allowed.
    parse(
        "[digest]\nfrom = \"a@example.org\"\n[[digest.routes]]\nprefixes = [\"192.0.2.0/24\"]\n\
         recipients = [\"dmz@example.org\"]\n",
    )
    .unwrap();
}

#[test]
fn a_cron_error_reads_as_one_sentence() {
    for bad in ["bogus", "0 7 * * 8"] {
        let e = bad.parse::<CronSchedule>().unwrap_err().to_string();
        assert!(!e.contains("  ") && !e.contains('\n'), "{e}");
    }
    let e = "bogus".parse::<CronSchedule>().unwrap_err().to_string();
    assert!(e.contains("1 field(s) where five"), "{e}");
}

#[test]
fn asn_forms() {
    assert_eq!("AS64496".parse::<Asn>().unwrap(), Asn(64496));
    assert!("ASx".parse::<Asn>().is_err());
    assert!("0".parse::<Asn>().is_err());
}
