//! The RIPE abuse contact of addresses no contact owns (`[notify] ripe_abuse_c`), end to end:
//! RIPEstat's `abuse-contact-finder` replayed by a loopback server in its real reply format,
//! a real SMTP server, a sled store (issue #23).

use chrono::Duration;
use wiremock::matchers::{method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

use outwatch::clock::ManualClock;
use outwatch::finding::{Classification, Finding, Severity};
use outwatch::notify::{self, Mode, abuse_c, record};
use outwatch::store::{IngestOptions, RunOutcome};

use crate::notify::{Smtp, by_recipient, http, setup, t};

/// A reply as RIPEstat writes it (data call version 2.1).
fn reply(ip: &str, contacts: &[&str]) -> ResponseTemplate {
    let body = serde_json::json!({
        "messages": [],
        "see_also": [],
        "version": "2.1",
        "data_call_name": "abuse-contact-finder",
        "data_call_status": "supported",
        "cached": false,
        "data": {
            "abuse_contacts": contacts,
            "authoritative_rir": "ripe",
            "latest_time": "2026-03-01T00:00:00",
            "earliest_time": "2026-03-01T00:00:00",
            "parameters": {"resource": ip, "cache": null}
        },
        "query_id": "20260301000000-0f0f0f0f",
        "process_time": 38,
        "server_id": "app129",
        "build_version": "live.2026.02.01.1",
        "status": "ok",
        "status_code": 200,
        "time": "2026-03-01T00:00:00.660821"
    });
    ResponseTemplate::new(200).set_body_json(body)
}

fn lookup(ip: &str) -> wiremock::MockBuilder {
    Mock::given(method("GET"))
        .and(path("/data/abuse-contact-finder/data.json"))
        .and(query_param("resource", ip))
        .and(query_param("sourceapp", "outwatch"))
}

fn ripe_extra(uri: &str, more: &str) -> String {
    format!("ripe_abuse_c = true\n{more}\n[scope]\nripestat_url = \"{uri}\"\n")
}

/// A second finding no contact owns, at another address of ours.
fn unowned(ip: &str, port: u16) -> Finding {
    let mut f = Finding::new(
        "shadowserver",
        "scan_rdp",
        Classification::new("", "vulnerable-system", "rdp"),
        Severity::Medium,
    );
    f.ip = Some(ip.parse().unwrap());
    f.port = Some(port);
    f
}

/// The contact found goes into the mail's route; each address is asked once (a cache hit asks
/// nothing), at most `ripe_max_lookups` per run, and the run says what waits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ripe_abuse_contact_gets_the_findings_no_contact_owns() {
    let ripe = MockServer::start().await;
    lookup("192.0.2.9")
        .respond_with(reply("192.0.2.9", &["abuse@example.net"]))
        .expect(1)
        .mount(&ripe)
        .await;
    lookup("192.0.2.10")
        .respond_with(reply("192.0.2.10", &["Abuse@Example.NET"]))
        .expect(1)
        .mount(&ripe)
        .await;
    let dir = tempfile::tempdir().unwrap();
    let server = Smtp::start(None);
    let (cfg, contacts, store, fs) = setup(
        dir.path(),
        server.port,
        &ripe_extra(&ripe.uri(), "ripe_max_lookups = 1"),
    );
    let mut other = unowned("192.0.2.10", 3389);
    store
        .ingest(vec![other.clone()], vec![], &IngestOptions { now: t(0) })
        .unwrap();
    other.seal();
    let clock = ManualClock::new(t(1));

    // Run 1: one address looked up (the cap), its finding sent to its abuse contact; the
    // other address waits and the run says so.
    let o = notify::run(
        &cfg,
        &contacts,
        store.clone(),
        &http(),
        &clock,
        t(1),
        &Mode::Send,
    )
    .await
    .unwrap();
    let a = o.abuse_c.clone().expect("a RIPE abuse-c report");
    assert_eq!((a.looked_up, a.found, a.not_looked_up), (1, 1, 1), "{a:?}");
    assert!(a.failed.is_empty(), "{a:?}");
    assert_eq!(o.sent, 4, "{o:?}");
    assert_eq!(o.tally.no_contact, 1, "{o:?}");
    let mails = by_recipient(server.take());
    let to_ripe: Vec<_> = mails
        .iter()
        .filter(|m| m.to == ["abuse@example.net"])
        .collect();
    assert_eq!(to_ripe.len(), 1);
    let first_csv = to_ripe[0].csv.clone();
    assert_eq!(first_csv.lines().count(), 2, "{first_csv}");
    let run = &store.runs(Some(notify::RUN_NAME), 1).unwrap()[0];
    assert!(
        run.notices
            .iter()
            .any(|n| n.contains("not looked up") && n.contains("ripe_max_lookups")),
        "{run:?}"
    );

    // Run 2: the other address is looked up; the first is a cache hit (no second request).
    // The same abuse address is one contact, and its minimum interval has passed.
    clock.set(t(3));
    let o = notify::run(
        &cfg,
        &contacts,
        store.clone(),
        &http(),
        &clock,
        t(3),
        &Mode::Send,
    )
    .await
    .unwrap();
    let a = o.abuse_c.clone().unwrap();
    assert_eq!((a.looked_up, a.cached, a.not_looked_up), (1, 1, 0), "{a:?}");
    assert_eq!((o.sent, o.tally.no_contact), (1, 0), "{o:?}");
    let mails = by_recipient(server.take());
    assert_eq!(mails[0].to, ["abuse@example.net"]);
    // Between them, the two mails carried both addresses' findings, each once.
    let both = format!("{first_csv}{}", mails[0].csv);
    for ip in ["192.0.2.9,", "192.0.2.10,"] {
        assert_eq!(both.matches(ip).count(), 1, "{both}");
    }
    for f in [&fs[3], &other] {
        let r = record::sent_of(store.as_ref(), &f.fingerprint)
            .unwrap()
            .expect("sent");
        assert_eq!(r.sent[0].contact, "RIPE abuse-c abuse@example.net");
        assert_eq!(r.sent[0].to, ["abuse@example.net"]);
    }
    assert!(
        store
            .state_get(&abuse_c::cache_key("192.0.2.9".parse().unwrap()))
            .unwrap()
            .is_some()
    );

    // Run 3: a new finding at a cached address goes to its contact without a request.
    store
        .ingest(
            vec![unowned("192.0.2.9", 3389)],
            vec![],
            &IngestOptions { now: t(4) },
        )
        .unwrap();
    clock.set(t(6));
    let o = notify::run(
        &cfg,
        &contacts,
        store.clone(),
        &http(),
        &clock,
        t(6),
        &Mode::Send,
    )
    .await
    .unwrap();
    assert_eq!(o.abuse_c.as_ref().unwrap().looked_up, 0);
    assert_eq!(o.sent, 1, "{o:?}");
    assert_eq!(by_recipient(server.take())[0].to, ["abuse@example.net"]);
    ripe.verify().await;

    // After `ripe_cache` (7 days) the address is asked again.
    let later = t(6) + Duration::days(8);
    ripe.reset().await;
    lookup("192.0.2.9")
        .respond_with(reply("192.0.2.9", &[]))
        .expect(1)
        .named("asked again")
        .mount(&ripe)
        .await;
    clock.set(later);
    let o = notify::run(
        &cfg,
        &contacts,
        store.clone(),
        &http(),
        &clock,
        later,
        &Mode::Send,
    )
    .await
    .unwrap();
    assert_eq!(o.abuse_c.as_ref().unwrap().looked_up, 1, "{o:?}");
    ripe.verify().await;
}

/// RIPEstat down: the findings stay unsent ("no contact"), the failure is named in the
/// outcome and the run log (`partial`), nothing is cached, and the next run asks again and
/// sends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ripestat_down_leaves_the_findings_unsent_and_named_and_the_next_run_retries() {
    let ripe = MockServer::start().await;
    lookup("192.0.2.9")
        .respond_with(ResponseTemplate::new(500).set_body_string("internal error"))
        .up_to_n_times(1)
        .expect(1)
        .mount(&ripe)
        .await;
    lookup("192.0.2.9")
        .respond_with(reply("192.0.2.9", &["abuse@example.net"]))
        .expect(1)
        .mount(&ripe)
        .await;
    let dir = tempfile::tempdir().unwrap();
    let server = Smtp::start(None);
    let (cfg, contacts, store, fs) = setup(dir.path(), server.port, &ripe_extra(&ripe.uri(), ""));
    let clock = ManualClock::new(t(1));

    let o = notify::run(
        &cfg,
        &contacts,
        store.clone(),
        &http(),
        &clock,
        t(1),
        &Mode::Send,
    )
    .await
    .unwrap();
    let a = o.abuse_c.clone().unwrap();
    assert_eq!(a.failed.len(), 1, "{a:?}");
    assert!(a.failed[0].contains("192.0.2.9"), "{a:?}");
    assert_eq!((o.sent, o.tally.no_contact), (3, 1), "{o:?}");
    assert!(server.take().iter().all(|r| r.to != ["abuse@example.net"]));
    assert!(
        record::sent_of(store.as_ref(), &fs[3].fingerprint)
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .state_get(&abuse_c::cache_key("192.0.2.9".parse().unwrap()))
            .unwrap()
            .is_none()
    );
    let run = &store.runs(Some(notify::RUN_NAME), 1).unwrap()[0];
    assert_eq!(run.outcome, RunOutcome::Partial);
    assert!(
        run.error
            .as_deref()
            .unwrap_or("")
            .contains("RIPE abuse-c of 192.0.2.9"),
        "{run:?}"
    );

    clock.set(t(3));
    let o = notify::run(
        &cfg,
        &contacts,
        store.clone(),
        &http(),
        &clock,
        t(3),
        &Mode::Send,
    )
    .await
    .unwrap();
    assert!(o.abuse_c.as_ref().unwrap().failed.is_empty(), "{o:?}");
    assert_eq!((o.sent, o.tally.no_contact), (1, 0), "{o:?}");
    assert_eq!(by_recipient(server.take())[0].to, ["abuse@example.net"]);
    let run = &store.runs(Some(notify::RUN_NAME), 1).unwrap()[0];
    assert_eq!(run.outcome, RunOutcome::Ok, "{run:?}");
    ripe.verify().await;
}

/// The command names a failed lookup and exits 1; `status` shows the `notify` run as partial
/// with the failure; `list --no-contact` shows the finding that waits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_command_and_status_name_a_failed_lookup() {
    let ripe = MockServer::start().await;
    lookup("192.0.2.9")
        .respond_with(ResponseTemplate::new(500).set_body_string("internal error"))
        .mount(&ripe)
        .await;
    let dir = tempfile::tempdir().unwrap();
    let server = Smtp::start(None);
    {
        let (_, _, store, _) = setup(
            dir.path(),
            server.port,
            &ripe_extra(&ripe.uri(), "pace = \"0s\""),
        );
        store.flush().unwrap();
    }
    let run = |args: &[&str]| crate::notify::run_cli(dir.path(), args);
    let (code, out, err) = run(&["notify", "--send"]);
    assert_eq!(code, Some(1), "{out}\n{err}");
    assert!(
        out.contains("RIPE abuse-c: 1 address(es) looked up (0 with a contact, 1 failed)"),
        "{out}"
    );
    assert!(out.contains("RIPE abuse-c of 192.0.2.9: "), "{out}");
    assert!(err.contains("RIPE abuse-c lookup(s) failed"), "{err}");
    assert_eq!(server.take().len(), 3);
    let (code, out, _) = run(&["status"]);
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("notify (partial):") && out.contains("RIPE abuse-c of 192.0.2.9"),
        "{out}"
    );
    let (code, out, err) = run(&["list", "--no-contact", "--format", "csv"]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(out.lines().count(), 2, "{out}");
    assert!(out.contains("192.0.2.9"), "{out}");
}
