use super::*;
use serde_json::json;

fn sample() -> Finding {
    let mut f = Finding::new(
        "shadowserver",
        "scan_dns",
        Classification::new("", "vulnerable-system", "open-dns"),
        Severity::Medium,
    );
    f.ip = Some("2001:db8::7".parse().unwrap());
    f.network = Some("2001:db8::/48".parse().unwrap());
    f.port = Some(53);
    f.protocol = Some("udp".into());
    f.asn = Some(64496);
    f.domain = Some("ns.example.org".into());
    f.url = Some("http://ns.example.org/<script>".into());
    f.time_source = Some(DateTime::from_timestamp(1_790_000_000, 123_456_789).unwrap());
    f.first_seen = DateTime::from_timestamp(1_790_000_100, 1).unwrap();
    f.last_seen = DateTime::from_timestamp(1_790_000_200, 999_999_999).unwrap();
    f.times_seen = 3;
    f.status = Status::Resolved;
    f.in_scope = false;
    f.extra.insert("tags".into(), json!(["a", "b"]));
    f.extra.insert("count".into(), json!(-4));
    f.extra.insert("big".into(), json!(u64::MAX));
    f.extra.insert("ratio".into(), json!(2.5));
    f.extra
        .insert("nested".into(), json!({"x": null, "y": true, "z": "ü"}));
    f.raw = Some("file.csv:12".into());
    f.identity = vec!["Adobe".into()];
    f.push_history(f.first_seen, "new");
    f.push_history(f.last_seen, "resolved");
    f.push_history(
        f.last_seen,
        Event::Note(crate::finding::Triage {
            by: "alice".into(),
            text: "ticket #42 \"quoted\" {braces}".into(),
        }),
    );
    f.push_history(
        f.last_seen,
        Event::Resolved(Some(crate::finding::Triage {
            by: "bob".into(),
            text: "patched".into(),
        })),
    );
    f.seal();
    f
}

#[test]
fn record_round_trip_keeps_every_field() {
    let mut bare = Finding::new(
        "hibp",
        "breaches",
        Classification::default(),
        Severity::Info,
    );
    bare.seal();
    for f in [sample(), bare] {
        let fp = crate::store::sled_store::keys::fp_bytes(&f.fingerprint).unwrap();
        let mut v = Vec::new();
        encode(&f.view(), &fp, &mut v).unwrap();
        let (h, _) = header(&v).unwrap();
        assert_eq!(h.fp, fp);
        assert_eq!(h.last_seen_micros, f.last_seen.timestamp_micros());
        assert_eq!(h.status, status_code(f.status));
        assert_eq!((h.source, h.feed), (f.source.as_bytes(), f.feed.as_bytes()));
        assert_eq!(decode(&v).unwrap(), f);
    }
}

/// A record written before triage existed (history events as bare names) decodes as it did,
/// and a life-cycle history encodes to the same bytes as then.
#[test]
fn records_of_plain_life_cycle_events_are_unchanged() {
    let mut f = sample();
    f.history.truncate(2);
    let fp = crate::store::sled_store::keys::fp_bytes(&f.fingerprint).unwrap();
    let mut v = Vec::new();
    encode(&f.view(), &fp, &mut v).unwrap();
    // The history is the body's last field: (time, "new"), (time, "resolved") as strings.
    // The history is the body's last field, each event a length-prefixed string: the bare
    // name, as before triage.
    assert!(v.ends_with(b"\x08resolved"), "{v:?}");
    let back = decode(&v).unwrap();
    assert_eq!(back.history[0].event, Event::New);
    assert_eq!(back.history[1].event, Event::Resolved(None));
}

/// Earlier observations ride as a trailing part of the record: kept through a round trip,
/// and absent without them (then the record is exactly what `encode` of the view writes, as
/// before they existed, and what an older reader reads).
#[test]
fn earlier_observations_round_trip_as_a_trailing_part() {
    let mut f = sample();
    let fp = crate::store::sled_store::keys::fp_bytes(&f.fingerprint).unwrap();
    let (mut plain, mut with) = (Vec::new(), Vec::new());
    encode(&f.view(), &fp, &mut plain).unwrap();
    encode_finding(&f, &fp, &mut with).unwrap();
    assert_eq!(plain, with, "no observations: the bytes of the view");
    f.observations = vec![
        crate::finding::Observation {
            time_source: Some(DateTime::from_timestamp(1_790_000_000, 7).unwrap()),
            differs: [
                ("extra.banner".to_string(), serde_json::json!("login:")),
                ("extra.gone".to_string(), serde_json::Value::Null),
                ("severity".to_string(), serde_json::json!("high")),
            ]
            .into_iter()
            .collect(),
        },
        crate::finding::Observation {
            time_source: None,
            differs: Default::default(),
        },
    ];
    f.observations_dropped = 3;
    let mut v = Vec::new();
    encode_finding(&f, &fp, &mut v).unwrap();
    assert!(v.starts_with(&plain));
    assert_eq!(decode(&v).unwrap(), f);
    // What a reader of the first part alone sees: the finding without them.
    let mut bare = f.clone();
    bare.observations.clear();
    bare.observations_dropped = 0;
    assert_eq!(decode(&v[..plain.len()]).unwrap(), bare);
}

#[test]
fn range_buckets_split_in_address_order_never_inside_an_address() {
    let mut w = BucketWriter::default();
    let mut fs = Vec::new();
    for i in [9u8, 3, 7, 3, 1, 5, 7, 7, 2, 8] {
        let mut f = sample();
        f.ip = Some(format!("192.0.2.{i}").parse().unwrap());
        f.network = None;
        f.port = Some(u16::from(i) * 100 + fs.len() as u16);
        f.seal();
        w.push(
            &f,
            &crate::store::sled_store::keys::fp_bytes(&f.fingerprint).unwrap(),
        )
        .unwrap();
        fs.push(f);
    }
    let per = w.plain_len() / 10;
    let mut pieces: Vec<(Vec<u8>, Vec<Finding>)> = Vec::new();
    let mut out = Vec::new();
    w.finish_split(per * 3, &mut out, &mut |first, v| {
        let plain = open_bucket(v).unwrap();
        let got = records(&plain)
            .map(|r| decode(r.unwrap()).unwrap())
            .collect();
        pieces.push((first.to_vec(), got));
    })
    .unwrap();
    assert!(pieces.len() >= 3, "{}", pieces.len());
    let all: Vec<&Finding> = pieces.iter().flat_map(|p| &p.1).collect();
    assert_eq!(all.len(), 10);
    // In address order; records of one address keep their order and stay together.
    let addrs: Vec<_> = all.iter().map(|f| f.ip.unwrap()).collect();
    assert!(addrs.windows(2).all(|w| w[0] <= w[1]));
    let sevens: Vec<_> = all
        .iter()
        .filter(|f| f.ip == fs[2].ip)
        .map(|f| f.port)
        .collect();
    assert_eq!(sevens, vec![fs[2].port, fs[6].port, fs[7].port]);
    for (i, (first, recs)) in pieces.iter().enumerate() {
        let (b, n) = ip_bytes(recs[0].ip.unwrap());
        assert_eq!(&first[..], &b[..n]);
        if let Some(next) = pieces.get(i + 1) {
            assert!(recs.last().unwrap().ip < next.1[0].ip);
        }
    }
    // A small sorted bucket stays whole.
    let mut one = 0;
    w.finish_split(usize::MAX, &mut out, &mut |_, _| one += 1)
        .unwrap();
    assert_eq!(one, 1);
}

/// The pieces of a range bucket are the same whether the writer noted every record's
/// address while pushing or reads them from the headers, in address order or not.
#[test]
fn noted_addresses_split_like_read_ones() {
    let mut recs = Vec::new();
    for i in 0..40u32 {
        let mut f = sample();
        f.ip = Some(std::net::Ipv4Addr::from(0x0a00_0000 + i / 2).into());
        f.network = None;
        f.port = Some(i as u16);
        f.seal();
        let fp = crate::store::sled_store::keys::fp_bytes(&f.fingerprint).unwrap();
        let mut r = Vec::new();
        encode(&f.view(), &fp, &mut r).unwrap();
        recs.push((ip_bytes(f.ip.unwrap()), r));
    }
    // (address bytes and length, record) per record.
    type Recs = [(([u8; 16], usize), Vec<u8>)];
    let pieces = |recs: &Recs, noted: bool, max: usize| {
        let mut w = BucketWriter::default();
        for ((b, n), r) in recs {
            if noted {
                w.push_raw_at(r, &b[..*n]);
            } else {
                w.push_raw(r);
            }
        }
        let mut got = Vec::new();
        let mut out = Vec::new();
        w.finish_split(max, &mut out, &mut |first, v| {
            got.push((first.to_vec(), v.to_vec()))
        })
        .unwrap();
        got
    };
    let total: usize = recs.iter().map(|r| r.1.len() + 4).sum();
    let mut shuffled = recs.clone();
    shuffled.reverse();
    shuffled.swap(3, 17);
    for max in [usize::MAX, total / 5, total / 3, 1] {
        let want = pieces(&recs, false, max);
        assert_eq!(pieces(&recs, true, max), want);
        // Out of order, the same addresses: sorted stably, so records of one address
        // keep their (changed) order; the cuts and first addresses are the same.
        let a = pieces(&shuffled, true, max);
        let b = pieces(&shuffled, false, max);
        assert_eq!(a, b);
        let firsts = |p: &[(Vec<u8>, Vec<u8>)]| p.iter().map(|x| x.0.clone()).collect::<Vec<_>>();
        assert_eq!(firsts(&a), firsts(&want));
        if max == 1 {
            // Never cut inside an address: 20 addresses, 20 pieces.
            assert_eq!(want.len(), 20);
        }
        let n: usize = want.iter().map(|p| bucket_count(&p.1).unwrap()).sum();
        assert_eq!(n, 40);
    }
}

#[test]
fn bucket_round_trip_and_corruption() {
    let f = sample();
    let fp = crate::store::sled_store::keys::fp_bytes(&f.fingerprint).unwrap();
    let mut w = BucketWriter::default();
    w.push(&f, &fp).unwrap();
    let mut one = Vec::new();
    encode(&f.view(), &fp, &mut one).unwrap();
    w.push_raw(&one);
    let v = w.finish();
    assert_eq!(bucket_count(&v), Some(2));
    let plain = open_bucket(&v).unwrap();
    let recs: Vec<_> = records(&plain).collect::<Result<_, _>>().unwrap();
    assert_eq!(recs, vec![&one[..], &one[..]]);
    // Damage never panics: it is an error.
    assert!(open_bucket(&v[..v.len() - 3]).is_err());
    assert!(open_bucket(b"\x02\x01\x00\x00\x00\xff\xff\xff\xff").is_err());
    assert!(records(&plain[..plain.len() - 1]).any(|r| r.is_err()));
    assert!(decode(&one[..20]).is_err());
    assert!(decode(&one[..one.len() - 2]).is_err());
}

/// Nothing panics on a damaged value: arbitrary bytes and mutated real records, buckets
/// and posting lists are read as errors or as something (issue #11, item 3). Cases: 256
/// in the suite, `PROPTEST_CASES` for a longer run (README, "Testing").
mod properties {
    use super::*;
    use proptest::prelude::*;
    use proptest::sample::Index;

    fn config() -> ProptestConfig {
        let mut c = ProptestConfig::default();
        if std::env::var_os("PROPTEST_CASES").is_none() {
            c.cases = 256;
        }
        c
    }

    fn read_all(v: &[u8]) {
        let _ = header(v);
        let _ = decode(v);
        let _ = bucket_count(v);
        if let Ok(plain) = open_bucket(v) {
            for r in records(&plain).flatten() {
                let _ = decode(r);
            }
        }
        for r in records(v).flatten() {
            let _ = decode(r);
        }
        if let Ok(p) = posting_entries(v) {
            let _ = crate::store::sled_store::keys::postings(&p).count();
        }
    }

    fn valid_values() -> Vec<Vec<u8>> {
        let f = sample();
        let fp = crate::store::sled_store::keys::fp_bytes(&f.fingerprint).unwrap();
        let mut one = Vec::new();
        encode(&f.view(), &fp, &mut one).unwrap();
        let mut w = BucketWriter::default();
        w.push(&f, &fp).unwrap();
        w.push_raw(&one);
        let mut entries = Vec::new();
        crate::store::sled_store::keys::push_posting(
            "shop.example.org",
            &fp,
            b"\x04home",
            &mut entries,
        );
        crate::store::sled_store::keys::push_posting(
            "www.example.org",
            &fp,
            b"\x04home",
            &mut entries,
        );
        vec![one, w.finish(), pack_postings(&entries), entries]
    }

    proptest! {
        #![proptest_config(config())]

        #[test]
        fn arbitrary_bytes(v in prop::collection::vec(any::<u8>(), 0..512)) {
            read_all(&v);
            // With the markers that make them look like a bucket or a posting list.
            read_all(&[&[BUCKET_V2][..], &v].concat());
            read_all(&[&POSTINGS_LZ4[..], &v].concat());
        }

        #[test]
        fn mutated_values(
            which in 0usize..4,
            edits in prop::collection::vec((any::<Index>(), any::<u8>(), 0u8..3), 1..6),
        ) {
            let mut v = valid_values().swap_remove(which);
            for (i, b, op) in edits {
                match op {
                    0 if !v.is_empty() => {
                        let at = i.index(v.len());
                        v[at] = b;
                    }
                    1 => {
                        let at = i.index(v.len() + 1);
                        v.insert(at, b);
                    }
                    _ => {
                        let at = i.index(v.len() + 1);
                        v.truncate(at);
                    }
                }
            }
            read_all(&v);
        }
    }
}
