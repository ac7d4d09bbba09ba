use super::*;
use crate::finding::Classification;
use chrono::TimeZone;
use proptest::prelude::*;

fn sinkhole() -> Finding {
    let mut f = Finding::new(
        "shadowserver",
        "event4_sinkhole_http",
        Classification::new("", "infected-system", "andromeda"),
        Severity::Critical,
    );
    f.ip = Some("192.0.2.77".parse().unwrap());
    f.asn = Some(64496);
    f.domain = Some("pc77.office.example.org".into());
    f.time_source = Some(Utc.with_ymd_and_hms(2016, 11, 20, 11, 5, 10).unwrap());
    f.last_seen = Utc.with_ymd_and_hms(2026, 12, 7, 14, 13, 0).unwrap();
    f.seal();
    f
}

fn parse(args: &[(&str, &str)]) -> Filter {
    Filter::parse(args.iter().copied()).unwrap()
}

#[test]
fn matches_by_every_flag() {
    let f = sinkhole();
    assert!(Filter::default().matches(&f));
    for yes in [
        vec![("severity", "high,critical")],
        vec![("min-severity", "high")],
        vec![("status", "new")],
        vec![("source", "shadowserver"), ("feed", "event4_sinkhole_http")],
        vec![("class", "malicious-code")],
        vec![("class", "*/infected-system/andromeda")],
        vec![("asn", "AS64496")],
        vec![("prefix", "192.0.2.0/24")],
        vec![("domain", "example.org")],
        vec![("since", "2016-11-20"), ("until", "2016-11-21")],
        vec![("stored-since", "2026-12-07")],
    ] {
        assert!(parse(&yes).matches(&f), "{yes:?}");
    }
    for no in [
        vec![("severity", "low")],
        vec![("status", "open,resolved")],
        vec![("source", "hibp")],
        vec![("class", "vulnerable")],
        vec![("class", "malicious-code/c2-server")],
        vec![("asn", "64497")],
        vec![("team", "dmz")],
        vec![("prefix", "192.0.3.0/24")],
        vec![("domain", "ample.org")],
        // Observed in 2016, stored in 2026: --since is about the observation.
        vec![("since", "2026-01-01")],
        vec![("stored-until", "2026-12-07")],
    ] {
        assert!(!parse(&no).matches(&f), "{no:?}");
    }
    let mut team = parse(&[("team", "office")]);
    team.team_prefixes = vec!["192.0.2.64/26".parse().unwrap()];
    assert!(team.matches(&f));
    let mut by_prefix = parse(&[("asn", "64511")]);
    by_prefix.asn_prefixes = vec!["192.0.2.0/24".parse().unwrap()];
    assert!(by_prefix.matches(&f));
}

/// The switches the command applies (suppression, notifications, contacts) are written
/// back and read back, and exclude what they contradict.
#[test]
fn command_switches_read_back() {
    let f = parse(&[("not-notified", ""), ("no-contact", ""), ("all", "")]);
    assert_eq!(f.notified, Some(false));
    assert!(f.no_contact);
    assert_eq!(
        f.to_command(),
        "outwatch list --all --not-notified --no-contact"
    );
    assert_eq!(Filter::from_query_string(&f.to_query_string()), Ok(f));
    assert_eq!(parse(&[("notified", "")]).notified, Some(true));
    assert!(Filter::parse([("notified", ""), ("not-notified", "")]).is_err());
}

#[test]
fn bad_values_name_their_flag() {
    for (flag, value, says) in [
        ("severity", "urgent", "--severity: unknown severity"),
        ("status", "closed", "--status: unknown status"),
        ("asn", "ASx", "--asn: `ASx` is not an AS number"),
        ("prefix", "192.0.2.0/33", "--prefix:"),
        ("domain", "localhost", "--domain:"),
        ("since", "yesterday", "--since:"),
        ("sort", "random", "--sort: unknown order"),
        ("class", "a//b", "--class:"),
        ("bogus", "x", "unknown filter"),
    ] {
        let e = Filter::parse([(flag, value)]).unwrap_err().to_string();
        assert!(e.starts_with(says), "{e}");
    }
    assert!(Filter::parse([("since", "2026-01-01"), ("since", "2026-02-01")]).is_err());
}

#[test]
fn the_command_and_query_string_read_back() {
    let f = parse(&[
        ("status", "all"),
        ("severity", "high"),
        ("severity", "critical"),
        ("class", "fraud/phishing/o'reilly & co"),
        ("asn", "64496"),
        ("since", "2026-11-01"),
        ("until", "2026-11-20T11:05:10.5Z"),
        ("sort", "address"),
    ]);
    assert_eq!(
        f.to_command(),
        "outwatch list --status all --severity critical,high \
         --class 'fraud/phishing/o'\\''reilly & co' --asn AS64496 --since 2026-11-01 \
         --until 2026-11-20T11:05:10.500Z --sort address"
    );
    assert_eq!(Filter::from_query_string(&f.to_query_string()).unwrap(), f);
    assert_eq!(Filter::default().to_command(), "outwatch list");
    let built = Filter {
        severity: vec![Severity::High, Severity::Critical, Severity::High],
        status: Statuses {
            new: true,
            open: false,
            resolved: false,
        },
        ..Default::default()
    };
    assert_eq!(
        built.to_command(),
        "outwatch list --status new --severity critical,high"
    );
    let built = built.normalized();
    assert_eq!(
        Filter::from_query_string(&built.to_query_string()).unwrap(),
        built
    );
    assert_eq!(Filter::default().to_query_string(), "");
}

#[test]
fn url_hosts() {
    assert_eq!(
        url_host("https://User@WWW.Example.org:8443/a?b").as_deref(),
        Some("www.example.org")
    );
    assert_eq!(
        url_host("http://[2001:db8::1]:80/").as_deref(),
        Some("2001:db8::1")
    );
    assert_eq!(url_host("example.org/x").as_deref(), Some("example.org"));
    assert!(under("a.example.org", "example.org"));
    assert!(!under("aexample.org", "example.org"));
}

fn word() -> impl Strategy<Value = String> {
    // Names as feeds write them, quotes, spaces and `&=` included; no comma or slash (a
    // class part), and not only white space.
    "[a-z0-9-][a-z0-9 _.'&=%+-]{0,12}".prop_map(|s| s.trim_end().to_string())
}

fn time() -> impl Strategy<Value = Option<DateTime<Utc>>> {
    proptest::option::of((
        0i64..4_000_000_000,
        prop_oneof![Just(0u32), 0u32..1_000_000_000],
    ))
    .prop_map(|t| t.map(|(s, n)| Utc.timestamp_opt(s, n).unwrap()))
}

prop_compose! {
    fn filter()(
        status in (any::<bool>(), any::<bool>(), any::<bool>()),
        severity in proptest::collection::vec(0usize..5, 0..3),
        min in proptest::option::of(0usize..5),
        source in proptest::collection::vec(word(), 0..3),
        feed in proptest::collection::vec(word(), 0..2),
        class in proptest::collection::vec(
            (proptest::option::of(word()), proptest::option::of(word()),
             proptest::option::of(word())), 0..2),
        asn in proptest::collection::vec(1u32..u32::MAX, 0..3),
        team in proptest::collection::vec(word(), 0..2),
        prefix in proptest::collection::vec((any::<u32>(), 0u8..=32), 0..3),
        times in (time(), time(), time(), time()),
        sort in 0usize..4,
    ) -> Filter {
        let mut f = Filter::default();
        let status = Statuses { new: status.0, open: status.1, resolved: status.2 };
        if status != Statuses::NONE { f.status = status; }
        for s in severity { push_sorted(&mut f.severity, Severity::ALL[s]); }
        f.min_severity = min.map(|m| Severity::ALL[m]);
        for s in source { push_sorted(&mut f.source, s); }
        for s in feed { push_sorted(&mut f.feed, s); }
        for (t, k, i) in class {
            let c = ClassPattern { taxonomy: t, kind: k, identifier: i };
            push_sorted(&mut f.class, c);
        }
        for a in asn { push_sorted(&mut f.asn, a); }
        for s in team { push_sorted(&mut f.team, s); }
        for (a, l) in prefix {
            let n = IpNet::new(IpAddr::from(a.to_be_bytes()), l).unwrap().trunc();
            push_sorted(&mut f.prefix, n);
        }
        (f.since, f.until, f.stored_since, f.stored_until) = times;
        f.sort = Sort::ALL[sort];
        f
    }
}

proptest! {
    #[test]
    fn every_filter_reads_back_from_its_command_and_query(f in filter()) {
        let pairs: Vec<(String, String)> = {
            let words = shlex::split(&f.to_command()).expect("a shell command");
            prop_assert_eq!(&words[..2], &["outwatch", "list"]);
            let mut pairs = Vec::new();
            let mut rest = words[2..].iter();
            while let Some(w) = rest.next() {
                let flag = w.trim_start_matches("--");
                match flag.split_once('=') {
                    Some((k, v)) if v.starts_with('-') => pairs.push((k.into(), v.into())),
                    _ => pairs.push((flag.into(), rest.next().unwrap().clone())),
                }
            }
            pairs
        };
        let back = Filter::parse(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        prop_assert_eq!(back.as_ref(), Ok(&f));
        prop_assert_eq!(Filter::from_query_string(&f.to_query_string()), Ok(f));
    }

    #[test]
    fn any_text_is_parsed_or_refused_without_panic(flag in 0usize..15, v in ".{0,40}") {
        let _ = Filter::parse([(FLAGS[flag], v.as_str())]);
        let _ = Filter::from_query_string(&v);
    }
}

#[test]
fn a_bad_value_keeps_its_cause_and_is_said_once() {
    let e = Filter::parse([("asn", "ASx")]).unwrap_err();
    assert_eq!(
        e,
        FilterError::Value {
            flag: "asn".into(),
            problem: BadValue::Asn("ASx".into()),
        }
    );
    assert!(std::error::Error::source(&e).is_some());
    assert_eq!(
        crate::text::chain(&e),
        "--asn: `ASx` is not an AS number (write AS64496)"
    );
}
