//! Notifications end to end (issue #23): contacts from the config and a contacts file, findings
//! in a real sled store → `notify::run` → a real SMTP server on loopback (mailin-embedded, in
//! process) → each received message parsed with mail-parser (text, HTML, CSV attachment).
//! Times come from a manual clock.

use std::path::Path;
use std::sync::Arc;

use chrono::{DateTime, Duration, TimeZone, Utc};
use mail_parser::{MessageParser, MimeHeaders};

use outwatch::clock::ManualClock;
use outwatch::config::Config;
use outwatch::finding::{Classification, Finding, Severity, Status};
use outwatch::notify::{self, MailState, Mode, contacts::Contacts, record};
use outwatch::store::{IngestOptions, RunOutcome, SledStore, Store};

pub(crate) use crate::support::smtp::{Received, Smtp};

// ---------- findings, config ----------

/// An HTTP client (the RIPE abuse-c lookups go through it).
pub(crate) fn http() -> outwatch::http::HttpClient {
    outwatch::http::HttpClient::new(&Default::default(), Arc::new(ManualClock::new(t(0)))).unwrap()
}

pub(crate) fn t(h: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 1, 0, 0, 0).unwrap() + Duration::hours(h)
}

/// The real binary on the store `setup` made in `dir`: exit code, stdout, stderr.
pub(crate) fn run_cli(dir: &Path, args: &[&str]) -> (Option<i32>, String, String) {
    let out = crate::support::cli(dir)
        .args(["--data-dir", "store"])
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A: by prefix (config), B: by domain (file), C: by ASN (file); a fourth finding has no contact.
fn findings() -> Vec<Finding> {
    let mut a = Finding::new(
        "feodotracker",
        "ipblocklist",
        Classification::new("", "c2-server", "qakbot"),
        Severity::High,
    );
    a.ip = Some("203.0.113.5".parse().unwrap());
    a.port = Some(443);
    a.asn = Some(64500);
    let mut b = Finding::new(
        "urlhaus",
        "urls",
        Classification::new("", "malware-distribution", ""),
        Severity::High,
    );
    b.domain = Some("www.shop.example.org".into());
    b.url = Some("=HYPERLINK(\"http://www.shop.example.org/x.exe\")".into());
    let mut c = Finding::new(
        "shadowserver",
        "scan_dns",
        Classification::new("", "vulnerable-system", "open-dns"),
        Severity::Medium,
    );
    c.ip = Some("198.51.100.7".parse().unwrap());
    c.port = Some(53);
    c.asn = Some(64500);
    let mut none = Finding::new(
        "shadowserver",
        "scan_dns",
        Classification::new("", "vulnerable-system", "open-dns"),
        Severity::Medium,
    );
    none.ip = Some("192.0.2.9".parse().unwrap());
    vec![a, b, c, none]
}

pub(crate) fn setup(
    dir: &Path,
    port: u16,
    extra: &str,
) -> (Config, Contacts, Arc<dyn Store>, Vec<Finding>) {
    std::fs::write(
        dir.join("contacts.csv"),
        "name,emails,prefixes,asns,domains\n\
         Shop,b@shop.example.org,,,shop.example.org\n\
         Transit,c@transit.example.net,,AS64500,\n\
         Broken,not-an-address,10.0.0.0/8,,\n",
    )
    .unwrap();
    let no_feeds: String = outwatch::sources::lists::BUILTIN
        .iter()
        .map(|n| format!("[sources.{n}]\nenabled = false\n"))
        .collect();
    let pace = if extra.contains("pace") {
        ""
    } else {
        "pace = \"2s\""
    };
    let text = format!(
        r#"
[organisation]
name = "Example ISP"
prefixes = ["203.0.113.0/24", "198.51.100.0/24", "192.0.2.0/24"]
domains = ["example.org"]

[smtp]
host = "127.0.0.1"
port = {port}
tls = "none"
timeout = "10s"

[notify]
from = "abuse@isp.example"
contacts_file = "contacts.csv"
{pace}
{extra}

[[contacts]]
name = "Hosting A"
emails = ["a@hosting.example"]
prefixes = ["203.0.113.0/25"]
{no_feeds}
"#
    );
    let p = dir.join("outwatch.toml");
    std::fs::write(&p, text).unwrap();
    let cfg = Config::load(&p, &outwatch::sources::Registry).unwrap();
    let contacts = Contacts::load(&cfg).unwrap();
    let store: Arc<dyn Store> = Arc::new(SledStore::open(&dir.join("store")).unwrap());
    let mut fs = findings();
    store
        .ingest(fs.clone(), vec![], &IngestOptions { now: t(0) })
        .unwrap();
    for f in &mut fs {
        f.seal();
    }
    (cfg, contacts, store, fs)
}

pub(crate) struct Mail {
    pub(crate) to: Vec<String>,
    pub(crate) subject: String,
    pub(crate) text: String,
    pub(crate) html: String,
    pub(crate) csv: String,
    pub(crate) ticket: String,
    pub(crate) auto: String,
    pub(crate) list_id: String,
}

pub(crate) fn parse(r: &Received) -> Mail {
    let m = MessageParser::default().parse(&r.data).expect("a message");
    let csv = m
        .attachments()
        .find(|a| a.attachment_name().is_some_and(|n| n.ends_with(".csv")))
        .map(|a| String::from_utf8_lossy(a.contents()).into_owned())
        .expect("a CSV attachment");
    let header = |name: &str| {
        m.header_raw(name)
            .map(|v| v.trim().to_string())
            .unwrap_or_default()
    };
    Mail {
        to: r.to.clone(),
        subject: m.subject().unwrap_or_default().to_string(),
        text: m.body_text(0).unwrap().into_owned(),
        html: m.body_html(0).unwrap().into_owned(),
        csv,
        ticket: header("X-Outwatch-Ticket"),
        auto: header("Auto-Submitted"),
        list_id: header("List-Id"),
    }
}

pub(crate) fn by_recipient(inbox: Vec<Received>) -> Vec<Mail> {
    let mut m: Vec<Mail> = inbox.iter().map(parse).collect();
    m.sort_by(|a, b| a.to.cmp(&b.to));
    m
}

// ---------- tests ----------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_contact_gets_exactly_its_findings_once_and_again_when_reopened() {
    let dir = tempfile::tempdir().unwrap();
    let server = Smtp::start(None);
    let (cfg, contacts, store, fs) = setup(dir.path(), server.port, "");
    assert_eq!(contacts.list.len(), 3);
    assert_eq!(contacts.problems.len(), 1);
    assert_eq!(contacts.problems[0].line, 4);
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
    assert_eq!((o.sent, o.failed, o.marked), (3, 0, 3), "{o:?}");
    assert_eq!(o.tally.no_contact, 1);
    let last = outwatch::digest::mail_log::last_run(
        store.as_ref(),
        outwatch::digest::mail_log::NOTIFY_RUN,
    )
    .unwrap()
    .expect("the run is recorded for the metrics");
    assert_eq!((last.ok, last.sent, last.failed), (true, 3, 0));
    // Pacing: two pauses between three mails.
    assert_eq!(clock.slept().len(), 2);
    let mails = by_recipient(server.take());
    assert_eq!(mails.len(), 3);
    let expect = [
        ("a@hosting.example", &fs[0], "203.0.113.5:443"),
        ("b@shop.example.org", &fs[1], "x.exe"),
        ("c@transit.example.net", &fs[2], "198.51.100.7:53"),
    ];
    for (m, (to, f, what)) in mails.iter().zip(expect) {
        assert_eq!(m.to, [to]);
        assert!(
            m.subject.contains(&m.ticket) && m.ticket.starts_with("OW-"),
            "{}",
            m.subject
        );
        assert_eq!(m.auto, "auto-generated");
        assert!(m.list_id.contains("<notify.isp.example>"), "{}", m.list_id);
        // Exactly its own finding, in the CSV (header + one row) and in the table.
        let rows: Vec<&str> = m.csv.lines().collect();
        assert_eq!(rows.len(), 2, "{}", m.csv);
        assert!(rows[1].contains(&f.fingerprint), "{}", m.csv);
        for other in fs.iter().filter(|o| o.fingerprint != f.fingerprint) {
            assert!(!m.csv.contains(&other.fingerprint));
        }
        assert!(m.text.contains(what), "{}", m.text);
        assert!(m.html.contains(&m.ticket));
        assert!(!m.text.contains("192.0.2.9"));
    }
    // A formula in a cell is neutralised.
    assert!(mails[1].csv.contains("\"'=HYPERLINK("), "{}", mails[1].csv);
    // The record: contact, time, ticket.
    let r = record::sent_of(store.as_ref(), &fs[0].fingerprint)
        .unwrap()
        .unwrap();
    assert_eq!(r.sent[0].contact, "Hosting A");
    assert_eq!(r.sent[0].ticket, mails[0].ticket);
    assert!(
        record::sent_of(store.as_ref(), &fs[3].fingerprint)
            .unwrap()
            .is_none()
    );
    let run = &store.runs(Some(notify::RUN_NAME), 1).unwrap()[0];
    assert_eq!(run.outcome, RunOutcome::Ok);

    // The second run sends nothing.
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
    assert_eq!(o.sent, 0, "{o:?}");
    assert_eq!(o.tally.already_sent, 3);
    assert!(server.take().is_empty());

    // The C2 finding resolves and comes back: it reopens and goes to its contact again.
    store
        .resolve_stale("feodotracker", None, t(4), t(4))
        .unwrap();
    store
        .ingest(
            vec![findings().remove(0)],
            vec![],
            &IngestOptions { now: t(5) },
        )
        .unwrap();
    assert_eq!(
        store.get(&fs[0].fingerprint).unwrap().unwrap().status,
        Status::Open
    );
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
    assert_eq!(o.sent, 1, "{o:?}");
    let m = by_recipient(server.take());
    assert_eq!(m[0].to, ["a@hosting.example"]);
    assert!(m[0].csv.contains("reopened"), "{}", m[0].csv);
    let r = record::sent_of(store.as_ref(), &fs[0].fingerprint)
        .unwrap()
        .unwrap();
    assert_eq!(r.sent.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preview_and_test_to_send_nothing_to_contacts_and_mark_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let server = Smtp::start(None);
    let (cfg, contacts, store, fs) = setup(dir.path(), server.port, "");
    let clock = ManualClock::new(t(1));
    let o = notify::run(
        &cfg,
        &contacts,
        store.clone(),
        &http(),
        &clock,
        t(1),
        &Mode::Preview,
    )
    .await
    .unwrap();
    assert_eq!(o.mails.len(), 3);
    assert!(o.mails.iter().all(|m| m.state == MailState::WouldSend));
    assert!(o.mails[0].body.contains("203.0.113.5"));
    assert!(server.take().is_empty());

    let me = Mode::TestTo("me@isp.example".into());
    let o = notify::run(&cfg, &contacts, store.clone(), &http(), &clock, t(1), &me)
        .await
        .unwrap();
    assert_eq!(o.sent, 3);
    let inbox = server.take();
    assert_eq!(inbox.len(), 3);
    assert!(inbox.iter().all(|r| r.to == ["me@isp.example"]));
    for f in &fs {
        assert!(
            record::sent_of(store.as_ref(), &f.fingerprint)
                .unwrap()
                .is_none()
        );
    }
    assert!(store.runs(Some(notify::RUN_NAME), 1).unwrap().is_empty());
    // So --send still sends everything.
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
    assert_eq!(o.sent, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_recipient_leaves_its_findings_unsent_and_the_others_sent() {
    let dir = tempfile::tempdir().unwrap();
    let server = Smtp::start(Some("b@shop.example.org"));
    let (cfg, contacts, store, fs) = setup(dir.path(), server.port, "");
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
    assert_eq!((o.sent, o.failed), (2, 1), "{o:?}");
    let failed = o
        .mails
        .iter()
        .find(|m| m.state == MailState::Failed)
        .unwrap();
    assert_eq!(failed.contact, "Shop");
    assert!(
        record::sent_of(store.as_ref(), &fs[1].fingerprint)
            .unwrap()
            .is_none()
    );
    assert!(
        record::sent_of(store.as_ref(), &fs[0].fingerprint)
            .unwrap()
            .is_some()
    );
    assert!(
        record::sent_of(store.as_ref(), &fs[2].fingerprint)
            .unwrap()
            .is_some()
    );
    let to: Vec<Vec<String>> = server.take().into_iter().map(|r| r.to).collect();
    assert!(!to.iter().flatten().any(|a| a.contains("shop")), "{to:?}");
    let run = &store.runs(Some(notify::RUN_NAME), 1).unwrap()[0];
    assert_eq!(run.outcome, RunOutcome::Partial);
    assert!(run.error.as_deref().unwrap().contains("Shop"), "{run:?}");
    // The next run tries that contact again, and only it.
    clock.set(t(3));
    let o = notify::run(
        &cfg,
        &contacts,
        store.clone(),
        &http(),
        &clock,
        t(3),
        &Mode::Preview,
    )
    .await
    .unwrap();
    let names: Vec<&str> = o.mails.iter().map(|m| m.contact.as_str()).collect();
    assert_eq!(names, ["Shop"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cap_stops_the_run_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let server = Smtp::start(None);
    let (cfg, contacts, store, _) = setup(dir.path(), server.port, "max_mails_per_run = 2");
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
    assert_eq!(o.sent, 2);
    assert_eq!(server.take().len(), 2);
    assert!(o.capped.as_deref().unwrap().contains("cap of 2"), "{o:?}");
    assert_eq!(
        o.mails
            .iter()
            .filter(|m| m.state == MailState::Capped)
            .count(),
        1
    );
    let run = &store.runs(Some(notify::RUN_NAME), 1).unwrap()[0];
    assert_eq!(run.outcome, RunOutcome::Partial);
    assert!(run.error.as_deref().unwrap().contains("max_mails_per_run"));
    // `status` (and the digest's feed health) shows it.
    let health = outwatch::health::assess(&cfg, store.as_ref(), t(1)).unwrap();
    let h = health
        .iter()
        .find(|h| h.name == "notify")
        .expect("a notify entry");
    assert_eq!(h.state, outwatch::health::HealthState::Partial, "{h:?}");
    assert!(
        h.last_error.as_deref().unwrap_or("").contains("cap of 2")
            || h.warnings.iter().any(|w| w.contains("cap of 2")),
        "{h:?}"
    );
    // So does the owner's digest (its feed health names the `notify` run).
    let digest = outwatch::digest::preview(&cfg, store.as_ref(), t(1)).unwrap();
    assert!(
        digest.rendered.text.contains("cap of 2"),
        "{}",
        digest.rendered.text
    );
    assert!(digest.rendered.html.contains("cap of 2"));
    // And `outwatch status`, which exits 1 for it.
    store.flush().unwrap();
    drop(store);
    let out = crate::support::cli(dir.path())
        .args(["--data-dir", "store", "status"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("notify (partial):") && text.contains("stopped at the cap of 2 mail(s)"),
        "{text}"
    );
    let store: Arc<dyn Store> = Arc::new(SledStore::open(&dir.path().join("store")).unwrap());
    // The one left goes next run.
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
    assert_eq!((o.sent, o.capped.is_none()), (1, true));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_daily_contact_and_the_recipient_interval_hold_mails() {
    let dir = tempfile::tempdir().unwrap();
    let server = Smtp::start(None);
    let (cfg, contacts, store, _) = setup(
        dir.path(),
        server.port,
        "[notify.defaults]\ninterval = \"daily\"\nreminder = \"2d\"",
    );
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
    assert_eq!(o.sent, 3);
    server.take();
    // A new finding for the daily file contact "Transit" an hour later waits for the day.
    let mut n = findings().remove(2);
    n.port = Some(5353);
    store
        .ingest(vec![n], vec![], &IngestOptions { now: t(2) })
        .unwrap();
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
    assert_eq!(o.sent, 0);
    assert_eq!(o.mails[0].state, MailState::Held, "{o:?}");
    let o = notify::run(
        &cfg,
        &contacts,
        store.clone(),
        &http(),
        &clock,
        t(26),
        &Mode::Send,
    )
    .await
    .unwrap();
    assert_eq!(o.sent, 1);
    assert_eq!(server.take()[0].to, ["c@transit.example.net"]);
    // After the reminder interval, open findings go again.
    let o = notify::run(
        &cfg,
        &contacts,
        store.clone(),
        &http(),
        &clock,
        t(50),
        &Mode::Send,
    )
    .await
    .unwrap();
    assert_eq!(o.sent, 3, "{o:?}");
    assert!(parse(&server.take()[0]).csv.contains("reminder"));
}

/// The command: `--preview` shows who would get what, `--send` sends, and `lookup` (text and
/// `--json`) shows which contact got a finding, when and under which ticket.
#[test]
fn cli_preview_send_and_lookup_show_the_notification() {
    let dir = tempfile::tempdir().unwrap();
    let server = Smtp::start(None);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let fs = rt.block_on(async {
        let (_, _, store, fs) = setup(dir.path(), server.port, "pace = \"0s\"");
        store.flush().unwrap();
        fs
    });
    let run = |args: &[&str]| run_cli(dir.path(), args);
    let (code, out, err) = run(&["notify", "--preview"]);
    assert_eq!(code, Some(0), "{out}\n{err}");
    assert!(
        out.contains("would send: Hosting A <a@hosting.example>, 1 finding(s)"),
        "{out}"
    );
    assert!(out.contains("203.0.113.5:443"), "{out}");
    assert!(
        out.contains("preview only: nothing was sent or marked"),
        "{out}"
    );
    assert!(err.contains("contacts file line 4:"), "{err}");
    assert!(server.take().is_empty());

    let (code, out, err) = run(&["notify", "--send"]);
    assert_eq!(code, Some(0), "{out}\n{err}");
    assert!(
        out.contains("3 mail(s) sent, 0 failed; 3 finding(s) marked as sent"),
        "{out}"
    );
    let ticket = parse(&by_recipient_first(server.take())).ticket;

    let (code, out, _) = run(&["lookup", "203.0.113.5"]);
    assert_eq!(code, Some(0));
    assert!(
        out.contains("notified: 203.0.113.5") && out.contains("to Hosting A"),
        "{out}"
    );
    assert!(out.contains(&ticket), "{out}");
    let (code, out, _) = run(&["lookup", "203.0.113.5", "--json"]);
    assert_eq!(code, Some(0));
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let n = &v["notified"][&fs[0].fingerprint][0];
    assert_eq!(n["contact"], "Hosting A");
    assert_eq!(n["ticket"], ticket.as_str());

    // `list` shows it: a line under the finding in the table, the last sending in CSV, every
    // sending in JSON; `--notified` / `--not-notified` / `--no-contact` select by it.
    let (code, out, err) = run(&["list", "--prefix", "203.0.113.0/24"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("notified Hosting A "), "{out}");
    assert!(out.contains(&ticket), "{out}");
    let (code, out, err) = run(&["list", "--notified", "--format", "csv"]);
    assert_eq!(code, Some(0), "{err}");
    let mut rows = csv::Reader::from_reader(out.as_bytes());
    let head = rows.headers().unwrap().clone();
    let col = |name: &str| head.iter().position(|h| h == name).unwrap();
    let rows: Vec<csv::StringRecord> = rows.records().map(|r| r.unwrap()).collect();
    assert_eq!(rows.len(), 3, "{out}");
    let a = rows
        .iter()
        .find(|r| &r[col("ip")] == "203.0.113.5")
        .expect("the finding of Hosting A");
    assert_eq!(&a[col("notified_contact")], "Hosting A");
    assert_eq!(&a[col("notified_ticket")], ticket.as_str());
    assert!(
        DateTime::parse_from_rfc3339(&a[col("notified_at")]).is_ok(),
        "{out}"
    );
    let (code, out, err) = run(&["list", "--not-notified", "--json"]);
    assert_eq!(code, Some(0), "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let found = v["findings"].as_array().unwrap();
    assert_eq!(found.len(), 1, "{out}");
    assert_eq!(found[0]["ip"], "192.0.2.9");
    assert!(found[0].get("notified").is_none(), "{out}");
    assert_eq!(v["command"], "outwatch list --not-notified");
    let (code, out, err) = run(&["list", "--notified", "--format", "jsonl"]);
    assert_eq!(code, Some(0), "{err}");
    let first: serde_json::Value = serde_json::from_str(out.lines().next().unwrap()).unwrap();
    assert!(first["notified"][0]["ticket"].is_string(), "{out}");
    let (code, out, err) = run(&["list", "--no-contact", "--format", "csv"]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(out.lines().count(), 2, "{out}");
    assert!(out.contains("192.0.2.9"), "{out}");
    let (code, _, _) = run(&["list", "--notified", "--not-notified"]);
    assert_eq!(code, Some(2));

    // Nothing is due any more; --test-to needs a real address.
    let (_, out, _) = run(&["notify", "--send"]);
    assert!(out.contains("0 mail(s) sent"), "{out}");
    let (code, _, err) = run(&["notify", "--test-to", "nobody"]);
    assert_eq!(code, Some(2), "{err}");
    let (code, _, _) = run(&["notify"]);
    assert_eq!(code, Some(2));
}

fn by_recipient_first(inbox: Vec<Received>) -> Received {
    let mut v = inbox;
    v.sort_by(|a, b| a.to.cmp(&b.to));
    v.remove(0)
}

/// The daemon's `notify` job runs on `[notify] schedule`, sends what is due, and reads the
/// contacts file again when it changes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemon_job_sends_and_rereads_the_contacts_file() {
    use outwatch::clock::Clock;
    use outwatch::daemon::tasks::Shared;
    let dir = tempfile::tempdir().unwrap();
    let server = Smtp::start(None);
    let (cfg, _, store, _) = setup(dir.path(), server.port, "schedule = \"0 */5 * * * *\"");
    let clock = Arc::new(ManualClock::new(t(1)));
    let shared = Shared {
        cfg: Arc::new(cfg),
        store,
        http: outwatch::http::HttpClient::new(&Default::default(), clock.clone()).unwrap(),
        clock: clock.clone() as Arc<dyn Clock>,
        scope: Default::default(),
        data_dir: dir.path().join("store"),
    };
    let jobs = outwatch::daemon::jobs(&shared);
    let job = jobs
        .iter()
        .find(|j| j.name == "notify")
        .expect("notify job");
    assert_eq!(job.kind, outwatch::daemon::scheduler::JobKind::Notify);
    assert_eq!(job.schedule.source, "0 */5 * * * *");
    let line = job.task.run(None).await.unwrap();
    assert!(line.starts_with("3 mail(s) sent"), "{line}");
    assert_eq!(server.take().len(), 3);

    // A new row owns the finding that had no contact.
    let file = dir.path().join("contacts.csv");
    let mut text = std::fs::read_to_string(&file).unwrap();
    text.push_str("Lab,lab@example.org,192.0.2.0/24,,\n");
    std::fs::write(&file, text).unwrap();
    std::fs::File::options()
        .write(true)
        .open(&file)
        .unwrap()
        .set_modified(std::time::SystemTime::now() + std::time::Duration::from_secs(10))
        .unwrap();
    clock.set(t(3));
    let line = job.task.run(None).await.unwrap();
    assert!(line.starts_with("1 mail(s) sent"), "{line}");
    assert_eq!(server.take()[0].to, ["lab@example.org"]);
}

/// Two contacts sharing an address: the minimum interval per address holds within a run too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shared_address_gets_one_mail_per_minimum_interval() {
    let dir = tempfile::tempdir().unwrap();
    let server = Smtp::start(None);
    let (cfg, _, store, _) = setup(dir.path(), server.port, "");
    std::fs::write(
        dir.path().join("contacts.csv"),
        "Shop,A@hosting.example,,,shop.example.org\n",
    )
    .unwrap();
    let contacts = Contacts::load(&cfg).unwrap();
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
    assert_eq!(o.sent, 1, "{o:?}");
    let held = o.mails.iter().find(|m| m.contact == "Shop").unwrap();
    assert_eq!(held.state, MailState::Held, "{held:?}");
    assert_eq!(server.take().len(), 1);
    // An hour later (the default minimum interval) it goes.
    let o = notify::run(
        &cfg,
        &contacts,
        store.clone(),
        &http(),
        &clock,
        t(2),
        &Mode::Send,
    )
    .await
    .unwrap();
    assert_eq!(o.sent, 1, "{o:?}");
    assert_eq!(
        o.mails
            .iter()
            .find(|m| m.state == MailState::Sent)
            .unwrap()
            .contact,
        "Shop"
    );
}

/// The records go through the `Store` trait only: the in-memory toy backend of the store
/// contract keeps them as sled does (sent once, not again, shown per finding).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_records_work_on_every_store_backend() {
    let dir = tempfile::tempdir().unwrap();
    let server = Smtp::start(None);
    let (cfg, contacts, _, fs) = setup(dir.path(), server.port, "");
    let store: Arc<dyn Store> = Arc::new(crate::store_contract::MemoryStore::new());
    store
        .ingest(findings(), vec![], &IngestOptions { now: t(0) })
        .unwrap();
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
    assert_eq!((o.sent, o.marked), (3, 3), "{o:?}");
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
    assert_eq!((o.sent, o.tally.already_sent), (0, 3), "{o:?}");
    let r = record::sent_of(store.as_ref(), &fs[2].fingerprint)
        .unwrap()
        .unwrap();
    assert_eq!(r.sent[0].contact, "Transit");
    assert_eq!(server.take().len(), 3);
}

/// `check-config` reads the contacts file: its skipped rows are warnings with their lines, a
/// missing file a problem.
#[test]
fn check_config_reports_the_contacts_file() {
    let dir = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        setup(dir.path(), crate::support::DEAD_PORT, "");
    });
    let out = crate::support::cli(dir.path())
        .arg("check-config")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(
        err.contains("warning: contacts file line 4: `not-an-address`"),
        "{err}"
    );
    std::fs::remove_file(dir.path().join("contacts.csv")).unwrap();
    let out = crate::support::cli(dir.path())
        .arg("check-config")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(
        err.contains("notify.contacts_file: cannot read the contacts file"),
        "{err}"
    );
}

/// A contact whose template does not exist gets no mail and keeps its findings due; the run
/// says why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_template_fails_its_contacts_and_marks_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let server = Smtp::start(None);
    let (cfg, contacts, store, fs) = setup(
        dir.path(),
        server.port,
        "[notify.defaults]\ntemplate = \"hosting\"",
    );
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
    assert_eq!((o.sent, o.failed), (0, 3), "{o:?}");
    assert!(
        o.mails[0].detail.as_deref().unwrap().contains("hosting"),
        "{o:?}"
    );
    assert!(server.take().is_empty());
    assert!(
        record::sent_of(store.as_ref(), &fs[0].fingerprint)
            .unwrap()
            .is_none()
    );
    let run = &store.runs(Some(notify::RUN_NAME), 1).unwrap()[0];
    assert_eq!(run.outcome, RunOutcome::Error);
}

/// `run --once` sends the notifications too.
#[test]
fn run_once_sends_the_notifications() {
    let dir = tempfile::tempdir().unwrap();
    let server = Smtp::start(None);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let (_, _, store, _) = setup(dir.path(), server.port, "pace = \"0s\"");
        store.flush().unwrap();
    });
    let out = crate::support::cli(dir.path())
        .args(["--data-dir", "store", "run", "--once"])
        .output()
        .unwrap();
    let (o, e) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert_eq!(out.status.code(), Some(0), "{o}\n{e}");
    assert!(
        format!("{o}{e}").contains("notify: 3 mail(s) sent"),
        "{o}\n{e}"
    );
    assert_eq!(server.take().len(), 3);
}

/// A suppressed finding is never sent (`[[suppress]]`, `outwatch suppress`): its contact gets
/// no mail while the rule holds, and does once the rule has ended.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_suppressed_finding_is_never_sent() {
    let dir = tempfile::tempdir().unwrap();
    let server = Smtp::start(None);
    let rule = "\n[[suppress]]\ncidr = \"203.0.113.0/24\"\nuntil = 2026-03-10\nreason = \"lab\"\n";
    let (cfg, contacts, store, _) = setup(dir.path(), server.port, rule);
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
    assert_eq!(o.sent, 2);
    let inbox = server.take();
    assert!(
        inbox.iter().all(|r| r.to != ["a@hosting.example"]),
        "{inbox:?}"
    );
    // The rule ends with 2026-03-10 (UTC): then it is sent.
    let later = Utc.with_ymd_and_hms(2026, 3, 11, 0, 0, 1).unwrap();
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
    assert_eq!(o.sent, 1);
    let inbox = server.take();
    assert_eq!(inbox.len(), 1);
    assert_eq!(inbox[0].to, ["a@hosting.example"]);
}

/// The owner's digest names what `notify` mailed to whom since the last digest: the contact,
/// its address, how many findings and the ticket.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_owners_digest_names_what_was_sent_to_whom() {
    let dir = tempfile::tempdir().unwrap();
    let server = Smtp::start(None);
    let (cfg, contacts, store, _) = setup(dir.path(), server.port, "");
    let clock = ManualClock::new(t(1));
    let before = outwatch::digest::preview(&cfg, store.as_ref(), t(1))
        .unwrap()
        .rendered
        .text;
    assert!(!before.contains("Sent to the owners"), "{before}");
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
    assert_eq!(o.sent, 3);
    let d = outwatch::digest::preview(&cfg, store.as_ref(), t(2)).unwrap();
    let text = d.rendered.text;
    assert!(
        text.contains("Sent to the owners of the addresses (outwatch notify), 3 mails"),
        "{text}"
    );
    let tickets: Vec<String> = o.mails.iter().map(|m| m.ticket.clone()).collect();
    for (who, addr) in [
        ("Hosting A", "a@hosting.example"),
        ("Shop", "b@shop.example.org"),
        ("Transit", "c@transit.example.net"),
    ] {
        let lines: Vec<&str> = text.lines().collect();
        let i = lines
            .iter()
            .position(|l| l.contains(who) && l.contains(addr))
            .unwrap_or_else(|| panic!("{who}: {text}"));
        assert!(lines[i].ends_with(": 1 finding"), "{}", lines[i]);
        let next = lines[i + 1];
        assert!(
            next.contains("2026-03-01 01:00:0")
                && next.contains(" UTC, ticket ")
                && tickets.iter().any(|t| next.contains(t.as_str())),
            "{next}"
        );
    }
    assert!(
        d.rendered
            .html
            .contains("Sent to the owners of the addresses (3)")
    );
}

/// The findings no contact owns are listed in the owner's digest (the first in rank order),
/// the rest counted with the `outwatch list` command that shows them all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_owners_digest_lists_the_findings_without_a_contact() {
    let dir = tempfile::tempdir().unwrap();
    let server = Smtp::start(None);
    let (cfg, contacts, store, _) = setup(dir.path(), server.port, "");
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
    assert_eq!(o.tally.no_contact, 1);
    let text = outwatch::digest::preview(&cfg, store.as_ref(), t(2))
        .unwrap()
        .rendered
        .text;
    assert!(
        text.contains("No contact: 1 open finding reaches no owner but you"),
        "{text}"
    );
    assert!(
        text.contains(
            "  medium: 192.0.2.9 vulnerable-system (shadowserver)\n    observed 2026-03-01"
        ),
        "{text}"
    );
    assert!(!text.contains("--no-contact"), "{text}");

    // More than the digest lists: the first 20 by rank (the critical one first), the rest a
    // count and the command.
    let more: Vec<Finding> = (0..25)
        .map(|i| {
            let mut f = Finding::new(
                "shadowserver",
                "scan_rdp",
                Classification::new("", "vulnerable-system", "rdp"),
                if i == 24 {
                    Severity::Critical
                } else {
                    Severity::Low
                },
            );
            f.ip = Some(format!("192.0.2.{}", 100 + i).parse().unwrap());
            f.port = Some(3389);
            f
        })
        .collect();
    store
        .ingest(more, vec![], &IngestOptions { now: t(2) })
        .unwrap();
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
    assert_eq!(o.tally.no_contact, 26);
    let d = outwatch::digest::preview(&cfg, store.as_ref(), t(4)).unwrap();
    let text = d.rendered.text;
    assert!(
        text.contains("No contact: 26 open findings reach no owner"),
        "{text}"
    );
    let listed = text
        .lines()
        .filter(|l| l.ends_with(" vulnerable-system (shadowserver)"))
        .collect::<Vec<_>>();
    assert_eq!(listed.len(), 20, "{text}");
    assert!(listed[0].contains("critical: 192.0.2.124:3389"), "{text}");
    assert!(text.contains("… and 6 more:"), "{text}");
    assert!(
        text.contains("outwatch list --no-contact --sort rank"),
        "{text}"
    );
    assert!(
        d.rendered
            .html
            .contains("outwatch list --no-contact --sort rank")
    );
    assert!(d.rendered.html.contains("192.0.2.124:3389"));
}

/// A selection larger than `list` sorts in memory is written as found, with the notification
/// records read before the walk (the store answers one request at a time through the daemon).
#[test]
fn list_streams_the_notification_of_a_large_selection() {
    let dir = tempfile::tempdir().unwrap();
    let (_, _, store, fs) = setup(dir.path(), 9, "");
    let many: Vec<Finding> = (0..10_050u32)
        .map(|i| {
            let mut f = Finding::new(
                "shadowserver",
                "scan_rdp",
                Classification::new("", "vulnerable-system", "rdp"),
                Severity::Low,
            );
            f.ip = Some(std::net::Ipv4Addr::from(0x0a00_0000 + i).into());
            f
        })
        .collect();
    store
        .ingest(many, vec![], &IngestOptions { now: t(0) })
        .unwrap();
    let sent = record::Sent {
        contact: "Hosting A".into(),
        at: t(1),
        ticket: "OW-20260301-0000ABCD".into(),
        to: vec!["a@hosting.example".into()],
    };
    record::mark_sent(store.as_ref(), &[fs[0].fingerprint.clone()], &sent).unwrap();
    store.flush().unwrap();
    drop(store);
    let out = crate::support::cli(dir.path())
        .args(["--data-dir", "store", "list", "--format", "csv"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("not sorted"),
        "the streamed path"
    );
    assert_eq!(text.lines().count(), 10_055);
    let row = text
        .lines()
        .find(|l| l.contains(&fs[0].fingerprint))
        .expect("the notified finding");
    assert!(
        row.ends_with(",Hosting A,2026-03-01T01:00:00Z,OW-20260301-0000ABCD"),
        "{row}"
    );
    assert_eq!(text.matches("OW-20260301-0000ABCD").count(), 1);
}

/// A config that cannot send names what is missing: the mail server, the sender.
#[test]
fn sending_without_a_server_or_a_sender_says_what_is_missing() {
    let dir = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let (_, _, store, _) = setup(dir.path(), 1, "pace = \"0s\"");
        store.flush().unwrap();
    });
    let p = dir.path().join("outwatch.toml");
    let text = std::fs::read_to_string(&p).unwrap();
    let (smtp_at, notify_at) = (text.find("[smtp]").unwrap(), text.find("[notify]").unwrap());
    std::fs::write(&p, format!("{}{}", &text[..smtp_at], &text[notify_at..])).unwrap();
    let (code, out, err) = run_cli(dir.path(), &["notify", "--send"]);
    assert_ne!(code, Some(0), "{out}");
    assert!(
        err.contains("no `[smtp]` server is configured") && err.contains("notify --preview"),
        "{err}"
    );
    std::fs::write(&p, text.replace("from = \"abuse@isp.example\"", "")).unwrap();
    let (code, out, err) = run_cli(dir.path(), &["notify", "--send"]);
    assert_ne!(code, Some(0), "{out}");
    assert!(err.contains("no sender: set `[notify] from`"), "{err}");
}
