use super::*;

fn t(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

fn counts(connections: u64, bytes: u64, first: &str, last: &str) -> Counts {
    Counts {
        connections,
        packets: connections * 2,
        bytes,
        duration: 1.5,
        first: t(first),
        last: t(last),
    }
}

fn peer(i: u32, connections: u64) -> PeerEntry {
    PeerEntry {
        peer: IpAddr::from(std::net::Ipv4Addr::from(0xcb00_7100 + i)),
        ports: vec![443],
        more_ports: 0,
        host_port: Some(50_000),
        service: Some("ssl".into()),
        direction: "outbound".into(),
        counts: counts(
            connections,
            connections * 100,
            "2026-11-30T10:00:00Z",
            "2026-11-30T11:00:00Z",
        ),
        listed: vec![Listing {
            feed: "threatfox".into(),
            threat: Some("QakBot".into()),
            port: Some(443),
        }],
    }
}

fn body_of(peers: Vec<PeerEntry>, folded: u64, folded_conns: u64) -> Body {
    let mut total = peers[0].counts;
    for p in &peers[1..] {
        total.add(&p.counts);
    }
    total.connections += folded_conns;
    let mut b = Body::new(total);
    b.peers = peers;
    b.finish(Kind::C2Contact, folded, folded_conns);
    b
}

#[test]
fn the_busiest_are_listed_and_the_rest_counted() {
    let b = body_of((0..30).map(|i| peer(i, u64::from(i) + 1)).collect(), 5, 7);
    assert_eq!(b.peers.len(), MAX_LISTED);
    assert_eq!(b.peers[0].counts.connections, 30, "busiest first");
    assert_eq!(b.distinct, 35);
    assert_eq!(b.more, 15);
    // The ten least busy (1..=10 connections) and the folded ones.
    assert_eq!(b.more_connections, 55 + 7);
    assert_eq!(b.feeds.as_deref(), Some("threatfox"));
    assert_eq!(b.threat.as_deref(), Some("QakBot"));
    assert!(
        b.summary
            .starts_with("203.0.113.29:443, 203.0.113.28:443, 203.0.113.27:443 and 32 more peers"),
        "{}",
        b.summary
    );
    assert!(
        b.summary.ends_with("(listed by threatfox: QakBot)"),
        "{}",
        b.summary
    );
}

#[test]
fn a_body_survives_the_finding_and_back() {
    let b = body_of(vec![peer(1, 3), peer(2, 1)], 0, 0);
    let mut f = Finding::new(
        "flows",
        "c2-contact",
        crate::finding::Classification::new("malicious-code", "infected-system", "c2-contact"),
        crate::finding::Severity::Critical,
    );
    f.set_extra("stale", 1);
    b.write_to(&mut f);
    assert!(!f.extra.contains_key("stale"));
    assert_eq!(f.extra["connections"], 4);
    assert_eq!(f.extra["first"], "2026-11-30T10:00:00Z");
    assert_eq!(f.extra["peers"][0]["peer"], "203.0.113.1");
    assert_eq!(f.extra["peers"][0]["ports"][0], 443);
    assert_eq!(f.time_source, Some(t("2026-11-30T11:00:00Z")));
    assert_eq!(Body::of(&f), Some(b));
    // An old one-per-peer finding has another shape.
    let mut old = f.clone();
    old.extra.clear();
    old.set_extra("peer", "203.0.113.1");
    old.set_extra("connections", 3);
    assert_eq!(Body::of(&old), None);
}

#[test]
fn merging_adds_counts_per_peer_and_stays_bounded() {
    // Run one saw peers 0..15, run two peers 10..30 of the same day.
    let old = body_of((0..15).map(|i| peer(i, 2)).collect(), 0, 0);
    let mut new = body_of((10..30).map(|i| peer(i, 1)).collect(), 3, 4);
    let mut late = peer(10, 1);
    late.counts.first = t("2026-11-30T09:00:00Z");
    late.counts.last = t("2026-11-30T23:00:00Z");
    late.ports = vec![8443];
    late.host_port = Some(40_000);
    let i = new.peers.iter().position(|p| p.peer == late.peer).unwrap();
    new.peers[i] = late;
    new.merge(&old, Kind::C2Contact);
    assert_eq!(new.peers.len(), MAX_LISTED);
    // 30 peers listed by one run or the other; the 3 folded may be among them.
    assert_eq!(new.distinct, 30);
    assert_eq!(new.more, new.distinct - MAX_LISTED as u64);
    assert_eq!(new.counts.connections, 30 + 20 + 4);
    let p10 = new
        .peers
        .iter()
        .find(|p| p.peer.to_string() == "203.0.113.10")
        .unwrap();
    assert_eq!(p10.counts.connections, 3);
    assert_eq!(p10.counts.first, t("2026-11-30T09:00:00Z"));
    assert_eq!(p10.counts.last, t("2026-11-30T23:00:00Z"));
    assert_eq!(p10.ports, [443, 8443]);
    assert_eq!(p10.host_port, Some(40_000), "the earlier connection's");
    // The busiest lead: the five seen twice (3 connections), then the other old ones.
    assert!(new.peers[..5].iter().all(|p| p.counts.connections == 3));
    // Every connection is counted once: listed plus the rest.
    let listed: u64 = new.peers.iter().map(|p| p.counts.connections).sum();
    assert_eq!(listed + new.more_connections, new.counts.connections);
}

#[test]
fn a_newer_talker_measure_replaces_the_older_and_others_stay() {
    let talker = |service: &str, metric: &str, packets: u64, last: &str| TalkerEntry {
        service: service.into(),
        metric: metric.into(),
        connections: 10,
        packets,
        bytes: packets * 100,
        first: t("2026-11-30T01:00:00Z"),
        last: t(last),
        peers_median: 5.0,
        bar: 50.0,
        population: 12,
        compared_with: "everyone".into(),
        overestimate_at_most: None,
    };
    let mk = |talkers: Vec<TalkerEntry>| {
        let mut b = Body::new(counts(0, 0, "2026-11-30T01:00:00Z", "2026-11-30T01:00:00Z"));
        b.talkers = talkers;
        b.finish(Kind::TopTalker, 0, 0);
        b
    };
    let old = mk(vec![
        talker("dns", "packets", 5_000, "2026-11-30T05:00:00Z"),
        talker("ssl", "bytes", 9_000, "2026-11-30T05:00:00Z"),
    ]);
    let mut new = mk(vec![talker(
        "dns",
        "packets",
        7_000,
        "2026-11-30T09:00:00Z",
    )]);
    new.merge(&old, Kind::TopTalker);
    assert_eq!(new.talkers.len(), 2);
    let dns = new.talkers.iter().find(|t| t.service == "dns").unwrap();
    assert_eq!(dns.packets, 7_000);
    assert_eq!(new.counts.packets, 7_000 + 9_000);
    assert_eq!(new.distinct, 2);
    assert!(
        new.summary.contains("dns by packets") && new.summary.contains("ssl by bytes"),
        "{}",
        new.summary
    );
}

#[test]
fn port_mismatch_lists_services_and_ports() {
    let svc = |service: &str, port: u16, n: u64| ServiceEntry {
        service: service.into(),
        port,
        peers: vec!["203.0.113.90".parse().unwrap()],
        more_peers: 0,
        counts: counts(n, n, "2026-11-30T10:00:00Z", "2026-11-30T10:30:00Z"),
    };
    let mut b = Body::new(counts(
        25,
        25,
        "2026-11-30T10:00:00Z",
        "2026-11-30T10:30:00Z",
    ));
    b.services = vec![svc("http", 53, 5), svc("ssl", 449, 20)];
    b.finish(Kind::PortMismatch, 0, 0);
    assert_eq!(b.services[0].port, 449);
    assert_eq!(
        b.summary,
        "ssl on port 449, http on port 53, 25 connections"
    );
}

#[test]
fn an_ipv6_peer_is_bracketed() {
    let mut p = peer(1, 1);
    p.peer = "2001:db8::1".parse().unwrap();
    p.ports = vec![443, 8443];
    assert_eq!(peer_label(&p), "[2001:db8::1]:443/8443");
    p.ports.clear();
    assert_eq!(peer_label(&p), "2001:db8::1");
}
