//! The digest end to end: findings in a real sled store → `digest::deliver` → a real SMTP server
//! on loopback (mailin-embedded, in process) → the received message parsed with mail-parser.
//! Also: failed sends change nothing, success is not repeated, routes, `.eml` fallback, preview,
//! template overrides and the `outwatch digest` command.

use std::path::Path;
use std::sync::Arc;

use chrono::{DateTime, Duration, TimeZone, Utc};
use mail_parser::{MessageParser, MimeHeaders};

use outwatch::config::Config;
use outwatch::digest::{self, DigestState};
use outwatch::finding::{Classification, Finding, Severity, Status};
use outwatch::store::{IngestOptions, SledStore, Store};

const SCRIPT: &str = "<script>alert(1)</script>";

use crate::support::smtp::Smtp;

/// A loopback port nobody listens on.
fn dead_port() -> u16 {
    crate::support::DEAD_PORT
}

// ---------- store and config ----------

fn t(h: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 1, 0, 0, 0).unwrap() + Duration::hours(i64::from(h))
}

fn c2_with_script() -> Finding {
    let mut f = Finding::new(
        "feodotracker",
        "ipblocklist",
        Classification::new("", "c2-server", "qakbot"),
        Severity::High,
    );
    f.ip = Some("203.0.113.5".parse().unwrap());
    f.port = Some(443);
    f.url = Some(format!("http://203.0.113.5/{SCRIPT}"));
    f.set_extra("malware", SCRIPT);
    f
}

fn open_dns() -> Finding {
    let mut f = Finding::new(
        "shadowserver",
        "scan_dns",
        Classification::new("", "vulnerable-system", "open-dns"),
        Severity::Medium,
    );
    f.ip = Some("198.51.100.7".parse().unwrap());
    f.port = Some(53);
    f.protocol = Some("udp".into());
    f
}

fn leak() -> Finding {
    let mut f = Finding::new(
        "hibp",
        "breachedaccount",
        Classification::new("", "data-leak", "Adobe"),
        Severity::Medium,
    );
    f.email = Some("bob@example.org".into());
    f.domain = Some(format!("{SCRIPT}.example.org"));
    f
}

fn ingest(store: &dyn Store, f: Vec<Finding>, at: DateTime<Utc>) {
    store.ingest(f, vec![], &IngestOptions { now: at }).unwrap();
}

fn config(dir: &Path, extra: &str) -> Config {
    // The built-in list feeds are on by default; these tests judge no fetched feed.
    let no_feeds: String = outwatch::sources::lists::BUILTIN
        .iter()
        .map(|n| format!("[sources.{n}]\nenabled = false\n"))
        .collect();
    let text = format!(
        r#"
[organisation]
name = "Example Org"
prefixes = ["203.0.113.0/24", "198.51.100.0/24"]
domains = ["example.org"]

[digest]
from = "outwatch@example.org"
recipients = ["noc@example.org"]
{extra}
{no_feeds}
"#
    );
    let p = dir.join("outwatch.toml");
    std::fs::write(&p, text).unwrap();
    Config::load(&p, &outwatch::sources::Registry).unwrap()
}

fn smtp_table(port: u16) -> String {
    format!("[smtp]\nhost = \"127.0.0.1\"\nport = {port}\ntls = \"none\"\ntimeout = \"10s\"\n")
}

const DMZ_ROUTE: &str = r#"
[[digest.routes]]
name = "dmz"
prefixes = ["198.51.100.0/24"]
recipients = ["dmz@example.org"]
"#;

struct Parsed {
    subject: String,
    text: String,
    html: String,
    to: Vec<String>,
}

/// Parses a received message and checks the MIME structure: multipart/alternative with a
/// text/plain and a text/html part, Message-ID and Date headers.
fn parse(raw: &[u8]) -> Parsed {
    let m = MessageParser::default()
        .parse(raw)
        .expect("a parsable message");
    let ct = m.content_type().expect("Content-Type");
    assert_eq!(
        (ct.ctype(), ct.subtype()),
        ("multipart", Some("alternative"))
    );
    let kinds: Vec<String> = m
        .parts
        .iter()
        .filter_map(|p| p.content_type())
        .map(|c| format!("{}/{}", c.ctype(), c.subtype().unwrap_or("")))
        .collect();
    assert!(kinds.contains(&"text/plain".to_string()), "{kinds:?}");
    assert!(kinds.contains(&"text/html".to_string()), "{kinds:?}");
    assert!(m.message_id().is_some_and(|id| id.contains('@')));
    assert!(m.date().is_some());
    Parsed {
        subject: m.subject().unwrap_or_default().to_string(),
        text: m.body_text(0).unwrap().into_owned(),
        html: m.body_html(0).unwrap().into_owned(),
        to: m
            .to()
            .map(|a| {
                a.iter()
                    .filter_map(|x| x.address().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default(),
    }
}

fn state(store: &dyn Store) -> DigestState {
    digest::load_state(store).unwrap()
}

// ---------- tests ----------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smtp_end_to_end_with_route_escaping_and_no_repeats() {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = Arc::new(SledStore::open(&dir.path().join("store")).unwrap());
    ingest(
        store.as_ref(),
        vec![c2_with_script(), open_dns(), leak()],
        t(0),
    );
    let server = Smtp::start(None);
    let cfg = config(
        dir.path(),
        &format!("{DMZ_ROUTE}\n{}", smtp_table(server.port)),
    );

    // First digest: everything is new.
    let out = digest::deliver(&cfg, store.clone(), dir.path(), t(1))
        .await
        .unwrap();
    assert!(out.sent);
    assert_eq!((out.new, out.open, out.resolved), (3, 0, 0));
    assert_eq!(out.messages, 2);
    assert_eq!(out.reported, 3);
    let last = digest::mail_log::last_run(store.as_ref(), digest::mail_log::DIGEST_RUN)
        .unwrap()
        .expect("the delivery is recorded for the metrics");
    assert_eq!((last.ok, last.sent, last.failed), (true, 2, 0));
    let mut mails = server.take();
    assert_eq!(mails.len(), 2, "main digest and the dmz route");
    mails.sort_by_key(|m| m.to.clone());
    assert_eq!(mails[0].to, vec!["dmz@example.org"]);
    assert_eq!(mails[1].to, vec!["noc@example.org"]);

    let main = parse(&mails[1].data);
    if std::env::var("DIGEST_DUMP").is_ok() {
        std::fs::write("/tmp/digest-dump.txt", &main.text).unwrap();
        std::fs::write("/tmp/digest-dump.html", &main.html).unwrap();
    }
    assert_eq!(main.to, vec!["noc@example.org"]);
    assert_eq!(
        main.subject,
        "outwatch digest for Example Org: 3 new, 0 open, 0 resolved"
    );
    // Attacker-controlled text arrives escaped in HTML, verbatim in plain text.
    assert!(!main.html.contains(SCRIPT), "unescaped script in HTML");
    assert!(main.html.contains("&lt;script&gt;alert(1)&lt;"));
    assert!(main.text.contains(SCRIPT));
    // Grouped by severity and category, with meaning and remediation.
    assert!(main.text.contains("-- HIGH (1) --"), "{}", main.text);
    assert!(main.text.contains("[c2-server]"));
    assert!(main.text.contains("command-and-control"));
    assert!(main.text.contains("203.0.113.5:443"));
    assert!(main.text.contains("bob@example.org"));
    assert!(main.text.contains("open-dns: Disable recursion"));
    let high = main.text.find("HIGH").unwrap();
    let medium = main.text.find("MEDIUM").unwrap();
    assert!(high < medium, "severity order");
    // No scripts, no remote images.
    assert!(!main.html.to_lowercase().contains("<img"));
    assert!(!main.html.to_lowercase().contains("<script"));

    let dmz = parse(&mails[0].data);
    assert_eq!(
        dmz.subject,
        "outwatch digest for Example Org (dmz): 1 new, 0 open, 0 resolved"
    );
    assert!(dmz.text.contains("198.51.100.7:53"));
    assert!(!dmz.text.contains("203.0.113.5"));

    // Marked: New → Open with a "reported" history entry; state stored per audience.
    let f = store.get(&{
        let mut x = open_dns();
        x.seal();
        x.fingerprint
    });
    let f = f.unwrap().unwrap();
    assert_eq!(f.status, Status::Open);
    assert_eq!(f.history.last().unwrap().event, "reported");
    let st = state(store.as_ref());
    assert_eq!(st.last_sent.get("main"), Some(&t(1)));
    assert_eq!(st.last_sent.get("route:dmz"), Some(&t(1)));

    // Second digest, no new data: says so, nothing repeated as new.
    let out = digest::deliver(&cfg, store.clone(), dir.path(), t(2))
        .await
        .unwrap();
    assert_eq!((out.new, out.open, out.resolved), (0, 3, 0));
    let mails = server.take();
    let main = mails
        .iter()
        .find(|m| m.to == vec!["noc@example.org"])
        .map(|m| parse(&m.data))
        .unwrap();
    assert_eq!(
        main.subject,
        "outwatch digest for Example Org: 0 new, 3 open, 0 resolved"
    );
    assert!(main.text.contains("Nothing new and nothing resolved"));
    assert!(!main.text.contains("==== New since"));
    assert!(main.text.contains("==== Still open (3) ===="));
    // Not observed again since the first digest: a count and the command, not a list.
    assert!(
        main.text.replace("\r\n", "\n").contains(
            "  3 still open, not observed again since the last digest\n  (not listed):\n      \
             outwatch list --status open --until 2026-03-01T01:00:00Z --sort rank\n"
        ),
        "{}",
        main.text
    );
    let open = &main.text[main.text.find("==== Still open").unwrap()..];
    assert!(!open.contains("203.0.113.5"), "{}", main.text);
    assert!(main.html.contains("3</b> still open, not observed again"));
    // The route's commands name the route.
    let dmz = mails
        .iter()
        .find(|m| m.to != vec!["noc@example.org"])
        .map(|m| parse(&m.data))
        .unwrap();
    assert!(
        dmz.text
            .contains("outwatch list --status open --team dmz --until"),
        "{}",
        dmz.text
    );

    // A finding that vanished shows as resolved.
    ingest(store.as_ref(), vec![c2_with_script(), leak()], t(3));
    let n = store
        .resolve_stale("shadowserver", None, t(3), t(3))
        .unwrap();
    assert_eq!(n, 1);
    let out = digest::deliver(&cfg, store.clone(), dir.path(), t(4))
        .await
        .unwrap();
    assert_eq!((out.new, out.open, out.resolved), (0, 2, 1));
    let mails = server.take();
    let main = mails
        .iter()
        .find(|m| m.to == vec!["noc@example.org"])
        .map(|m| parse(&m.data))
        .unwrap();
    assert!(
        main.text
            .contains("==== Resolved since the last digest (1) ====")
    );
    assert!(main.html.contains("Resolved since the last digest (1)"));
    let dmz = mails
        .iter()
        .find(|m| m.to == vec!["dmz@example.org"])
        .map(|m| parse(&m.data))
        .unwrap();
    assert!(
        dmz.subject.ends_with("0 new, 0 open, 1 resolved"),
        "{}",
        dmz.subject
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_send_changes_nothing_and_next_digest_has_the_same_findings() {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = Arc::new(SledStore::open(&dir.path().join("store")).unwrap());
    ingest(store.as_ref(), vec![c2_with_script(), open_dns()], t(0));

    // Server down.
    let cfg = config(dir.path(), &smtp_table(dead_port()));
    let e = digest::deliver(&cfg, store.clone(), dir.path(), t(1))
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("SMTP server 127.0.0.1:"), "{e}");
    assert!(state(store.as_ref()).last_sent.is_empty());

    // Server rejects the message.
    let rejecting = Smtp::start(Some("@"));
    let cfg = config(dir.path(), &smtp_table(rejecting.port));
    let e = digest::deliver(&cfg, store.clone(), dir.path(), t(2))
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("did not accept"), "{e}");
    assert!(state(store.as_ref()).last_sent.is_empty());
    // The metrics learn that the latest delivery failed.
    let last = digest::mail_log::last_run(store.as_ref(), digest::mail_log::DIGEST_RUN)
        .unwrap()
        .expect("the failed delivery is recorded");
    assert_eq!((last.ok, last.sent, last.failed), (false, 0, 1));
    assert_eq!(last.finished, t(2));
    store
        .for_each(&mut |f| {
            assert_eq!(f.status, Status::New, "nothing marked after a failed send");
            Ok(())
        })
        .unwrap();

    // The next delivery carries the same findings.
    let ok = Smtp::start(None);
    let cfg = config(dir.path(), &smtp_table(ok.port));
    let out = digest::deliver(&cfg, store.clone(), dir.path(), t(3))
        .await
        .unwrap();
    assert_eq!(out.new, 2);
    let m = parse(&ok.take()[0].data);
    assert!(m.subject.contains("2 new"));
    assert!(m.text.contains("203.0.113.5") && m.text.contains("198.51.100.7"));

    // After success, only what came later is new.
    let mut later = open_dns();
    later.ip = Some("198.51.100.8".parse().unwrap());
    ingest(store.as_ref(), vec![later], t(4));
    let out = digest::deliver(&cfg, store.clone(), dir.path(), t(5))
        .await
        .unwrap();
    assert_eq!((out.new, out.open), (1, 2));
    let m = parse(&ok.take()[0].data);
    assert!(m.text.contains("==== New since the last digest (1) ===="));
    // The new section (the summary above it names open critical and high findings too).
    let new_part = m.text.split("==== New since").nth(1).unwrap();
    let new_part = new_part.split("==== Still open").next().unwrap();
    assert!(new_part.contains("198.51.100.8"));
    assert!(!new_part.contains("203.0.113.5"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_empty_false_skips_a_digest_without_changes() {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = Arc::new(SledStore::open(&dir.path().join("store")).unwrap());
    ingest(store.as_ref(), vec![open_dns()], t(0));
    let server = Smtp::start(None);
    let cfg = config(
        dir.path(),
        &format!("send_empty = false\n{}", smtp_table(server.port)),
    );
    digest::deliver(&cfg, store.clone(), dir.path(), t(1))
        .await
        .unwrap();
    assert_eq!(server.take().len(), 1);
    let out = digest::deliver(&cfg, store.clone(), dir.path(), t(2))
        .await
        .unwrap();
    assert_eq!(out.skipped, 1);
    assert!(!out.sent);
    assert!(server.take().is_empty());
}

#[tokio::test]
async fn plain_smtp_to_a_remote_host_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("outwatch.toml");
    std::fs::write(
        &p,
        "[digest]\nfrom = \"a@example.org\"\nrecipients = [\"b@example.org\"]\n\
         [smtp]\nhost = \"smtp.example.org\"\ntls = \"none\"\n",
    )
    .unwrap();
    let e = Config::load(&p, &outwatch::sources::Registry)
        .unwrap_err()
        .to_string();
    assert!(e.contains("loopback") && e.contains("line 6"), "{e}");
}

#[tokio::test]
async fn without_smtp_the_digest_is_written_as_eml() {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = Arc::new(SledStore::open(&dir.path().join("store")).unwrap());
    ingest(store.as_ref(), vec![c2_with_script(), leak()], t(0));
    let cfg = config(dir.path(), "");
    let out = digest::deliver(&cfg, store.clone(), dir.path(), t(1))
        .await
        .unwrap();
    let path = out.eml_path.expect("an .eml path");
    assert!(path.starts_with(dir.path().join("digests")));
    assert_eq!(path.extension().unwrap(), "eml");
    // Owner-only whatever the umask: the mail and its folder.
    {
        use std::os::unix::fs::MetadataExt;
        let mode = |p: &Path| std::fs::metadata(p).unwrap().mode() & 0o777;
        assert_eq!(mode(&path), 0o600);
        assert_eq!(mode(&dir.path().join("digests")), 0o700);
    }
    let m = parse(&std::fs::read(&path).unwrap());
    assert_eq!(m.to, vec!["noc@example.org"]);
    assert!(m.subject.contains("2 new"));
    assert!(m.html.contains("&lt;script&gt;"));
    // Counted as delivered: the next one has nothing new.
    let out = digest::deliver(&cfg, store.clone(), dir.path(), t(2))
        .await
        .unwrap();
    assert_eq!((out.new, out.open), (0, 2));
    assert_ne!(out.eml_path.unwrap(), path);
}

#[tokio::test]
async fn preview_marks_nothing_and_template_folder_overrides() {
    let dir = tempfile::tempdir().unwrap();
    let store = SledStore::open(&dir.path().join("store")).unwrap();
    ingest(&store, vec![c2_with_script(), open_dns()], t(0));
    let tdir = dir.path().join("my-templates");
    std::fs::create_dir(&tdir).unwrap();
    std::fs::write(
        tdir.join("digest.txt"),
        "CUSTOM {{ counts.new }} new\n{% for s in sections %}{% for v in s.severities %}\
         {% for c in v.categories %}{{ c.kind }}: {{ c.meaning }}\n{% endfor %}{% endfor %}{% endfor %}",
    )
    .unwrap();
    std::fs::write(
        tdir.join("remediation.toml"),
        "[type.c2-server]\nmeaning = \"Our own words.\"\naction = \"Call Alice.\"\n",
    )
    .unwrap();
    let cfg = config(dir.path(), "templates = \"my-templates\"\n");
    let p = digest::preview(&cfg, &store, t(1)).unwrap();
    assert!(
        p.rendered.text.starts_with("CUSTOM 2 new"),
        "{}",
        p.rendered.text
    );
    assert!(p.rendered.text.contains("c2-server: Our own words."));
    // The built-in HTML is still used, with the overridden remediation text.
    assert!(p.rendered.html.contains("Call Alice."));
    assert!(digest::load_state(&store).unwrap().last_sent.is_empty());
    store
        .for_each(&mut |f| {
            assert_eq!(f.status, Status::New);
            Ok(())
        })
        .unwrap();

    // A missing template folder is an error naming it.
    let cfg = config(dir.path(), "templates = \"nope\"\n");
    let e = digest::preview(&cfg, &store, t(1)).unwrap_err().to_string();
    assert!(e.contains("nope"), "{e}");
}

#[tokio::test]
async fn a_large_store_makes_a_short_mail_with_exact_counts() {
    let dir = tempfile::tempdir().unwrap();
    let store = SledStore::open(&dir.path().join("store")).unwrap();
    let many: Vec<Finding> = (0..3000u32)
        .map(|i| {
            let mut f = open_dns();
            f.ip = Some(std::net::Ipv4Addr::from(0xC633_6400 + i).into());
            f
        })
        .collect();
    ingest(&store, many, t(0));
    let cfg = config(dir.path(), "");
    let p = digest::preview(&cfg, &store, t(1)).unwrap();
    assert_eq!(p.counts.new, 3000);
    assert!(p.rendered.subject.contains("3000 new"));
    assert!(
        p.rendered
            .text
            .contains("[vulnerable-system] 3000 findings")
    );
    assert!(
        p.rendered
            .text
            .contains(&format!("and {} more", 3000 - digest::build::LIST_NEW))
    );
    assert!(p.rendered.html.len() < 100_000, "{}", p.rendered.html.len());
}

// ---------- the command ----------

fn cli_setup(extra: &str) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = SledStore::open(&dir.path().join("data")).unwrap();
        ingest(
            &store,
            vec![c2_with_script(), open_dns()],
            Utc::now() - Duration::hours(1),
        );
        store.flush().unwrap();
    }
    config(dir.path(), extra);
    let cfg = dir.path().join("outwatch.toml");
    (dir, cfg)
}

fn outwatch(dir: &Path, cfg: &Path) -> assert_cmd::Command {
    let mut c = assert_cmd::Command::cargo_bin("outwatch").unwrap();
    c.arg("--config")
        .arg(cfg)
        .arg("--data-dir")
        .arg(dir.join("data"))
        .env_remove("OUTWATCH_CONFIG")
        .env_remove("OUTWATCH_DATA_DIR");
    c
}

#[test]
fn cli_digest_send_delivers_to_the_smtp_server() {
    let server = Smtp::start(None);
    let (dir, cfg) = cli_setup(&smtp_table(server.port));
    let out = outwatch(dir.path(), &cfg)
        .args(["digest", "--send"])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let stdout = String::from_utf8(out).unwrap();
    assert!(stdout.contains("2 new"), "{stdout}");
    assert!(stdout.contains("noc@example.org"), "{stdout}");
    let mails = server.take();
    assert_eq!(mails.len(), 1);
    let m = parse(&mails[0].data);
    assert!(m.subject.contains("2 new"));
    assert!(m.html.contains("&lt;script&gt;"));
}

#[test]
fn cli_digest_failure_exits_1_naming_the_server() {
    let (dir, cfg) = cli_setup(&smtp_table(dead_port()));
    let out = outwatch(dir.path(), &cfg)
        .args(["digest", "--send"])
        .assert()
        .code(1)
        .get_output()
        .stderr
        .clone();
    let stderr = String::from_utf8(out).unwrap();
    assert!(stderr.contains("SMTP server 127.0.0.1:"), "{stderr}");
}

#[test]
fn cli_digest_preview_writes_files() {
    let (dir, cfg) = cli_setup("");
    let html = dir.path().join("d.html");
    let text = dir.path().join("d.txt");
    // Files go with a preview only.
    outwatch(dir.path(), &cfg)
        .args(["digest", "--send", "--html"])
        .arg(&html)
        .assert()
        .code(2);
    outwatch(dir.path(), &cfg)
        .args(["digest", "--html"])
        .arg(&html)
        .arg("--text")
        .arg(&text)
        .assert()
        .success();
    let h = std::fs::read_to_string(&html).unwrap();
    assert!(h.starts_with("<!DOCTYPE html>"));
    assert!(h.contains("&lt;script&gt;") && !h.contains(SCRIPT));
    let t = std::fs::read_to_string(&text).unwrap();
    assert!(t.contains("203.0.113.5:443"));
    // `digest` alone previews to stdout, and nothing was marked: the next one (with the
    // old flag, still accepted) shows 2 new again.
    for args in [&["digest"][..], &["digest", "--preview"]] {
        let out = outwatch(dir.path(), &cfg)
            .args(args)
            .assert()
            .success()
            .get_output()
            .clone();
        let s = String::from_utf8(out.stdout).unwrap();
        assert!(
            s.starts_with("Subject: outwatch digest for Example Org: 2 new"),
            "{s}"
        );
        let e = String::from_utf8(out.stderr).unwrap();
        assert!(e.contains("outwatch digest --send"), "{e}");
    }
    assert!(!dir.path().join("data/digests").exists());
}

/// A store of 100,000 findings, every one with long feed values: the digest's HTML part stays
/// under 100 KB (the byte budget lists fewer and prints the rest as `outwatch list` commands),
/// its first item is the most severe active threat — a C2 server, though thousands of critical
/// open ports were observed later —, and the text part keeps within 78 columns.
#[test]
fn digest_of_100k_findings_fits_and_ranks() {
    let dir = tempfile::tempdir().unwrap();
    let store = SledStore::open(&dir.path().join("store")).unwrap();
    // Exposure and abuse only: no active threat but the one C2 server.
    let kinds = [
        "vulnerable-system",
        "ddos-amplifier",
        "scanner",
        "spam",
        "brute-force",
    ];
    // Markup in feed values grows fourfold when escaped: without the budget the HTML part
    // would be several times 100 KB.
    let long = |n: u32, what: &str| format!("{what} {n} {}", "<&>\"".repeat(40));
    let started = std::time::Instant::now();
    for chunk in 0..10u32 {
        let batch: Vec<Finding> = (0..10_000u32)
            .map(|i| {
                let n = chunk * 10_000 + i;
                let mut f = open_dns();
                f.classification = Classification::new("", kinds[(n % 5) as usize], "x");
                f.severity = Severity::ALL[(n % 4) as usize];
                f.ip = Some(std::net::Ipv4Addr::from(0x0A00_0000 + n).into());
                f.time_source = Some(t(100) + Duration::seconds(i64::from(n)));
                f.set_extra("tag", long(n, "tag"));
                f.set_extra("product", long(n, "product"));
                f.set_extra("version", long(n, "version"));
                f.set_extra("note", long(n, "note"));
                if n % 2 == 0 {
                    f.url = Some(format!("http://host-{n}.example/{}", "p/".repeat(80)));
                }
                f
            })
            .collect();
        ingest(&store, batch, t(chunk));
    }
    // The active threat, observed long before the open ports.
    let mut c2 = c2_with_script();
    c2.severity = Severity::Critical;
    c2.ip = Some("192.0.2.66".parse().unwrap());
    c2.url = None;
    c2.time_source = Some(t(1));
    ingest(&store, vec![c2], t(11));
    let stored = started.elapsed();
    let cfg = config(dir.path(), "");
    let started = std::time::Instant::now();
    let p = digest::preview(&cfg, &store, t(20)).unwrap();
    println!(
        "100k findings: stored in {stored:?}, digest built and rendered in {:?}; text {} bytes, \
         html {} bytes",
        started.elapsed(),
        p.rendered.text.len(),
        p.rendered.html.len()
    );
    assert_eq!(p.counts.new, 100_001);
    let (html, text) = (&p.rendered.html, &p.rendered.text);
    assert!(html.len() < 100_000, "HTML part {} bytes", html.len());
    // The first item: the C2 server, in both parts.
    let first = text
        .lines()
        .skip_while(|l| !l.starts_with("ACT ON THESE FIRST"))
        .nth(1)
        .unwrap();
    assert!(
        first.starts_with("  CRITICAL  c2-server: 192.0.2.66"),
        "{first}"
    );
    let act = &html[html.find("Act on these first").unwrap()..];
    assert!(act[..act.find("</tr>").unwrap()].contains("192.0.2.66"));
    // Lists are cut, and every "more" is a runnable command.
    assert!(html.contains("more:<code"), "no more lines");
    let lines: Vec<&str> = text.lines().collect();
    for (i, l) in lines.iter().enumerate() {
        assert!(l.chars().count() <= 78, "line {i} too wide: {l:?}");
        if l.contains("... and ") && l.trim_end().ends_with("more:") {
            assert!(
                lines[i + 1].trim_start().starts_with("outwatch list --"),
                "{l} / {}",
                lines[i + 1]
            );
        }
    }
    assert!(
        text.contains("        outwatch list --severity critical --class "),
        "{text}"
    );
}

/// The facts that find the device behind NAT: a sinkhole hit's digest entry shows when the
/// provider saw it (to the second) and its source port and destination.
#[test]
fn sinkhole_entry_shows_observation_time_and_source_port() {
    let dir = tempfile::tempdir().unwrap();
    let store = SledStore::open(&dir.path().join("store")).unwrap();
    let mut f = Finding::new(
        "shadowserver",
        "event4_sinkhole",
        Classification::new("", "infected-system", "mirai"),
        Severity::High,
    );
    f.ip = Some("192.0.2.54".parse().unwrap());
    f.time_source = Some(Utc.with_ymd_and_hms(2025, 11, 20, 11, 5, 10).unwrap());
    f.set_extra("port", "50100");
    f.set_extra("dst_ip", "203.0.113.80");
    f.set_extra("dst_port", "80");
    ingest(&store, vec![f], t(1));
    let cfg = config(dir.path(), "");
    let p = digest::preview(&cfg, &store, t(2)).unwrap();
    let seen = "observed 2025-11-20 11:05:10 UTC, source port 50100 → 203.0.113.80:80";
    // In "act on these first" and in its group.
    assert_eq!(
        p.rendered.text.matches(seen).count(),
        2,
        "{}",
        p.rendered.text
    );
    let h = &p.rendered.html;
    assert!(h.contains("2025-11-20 11:05:10 UTC"), "{h}");
    assert!(h.contains("source port 50100 → 203.0.113.80:80"), "{h}");
    // The time it was stored is there too, in the same format.
    assert!(
        p.rendered
            .text
            .contains("stored since 2026-03-01 01:00:00 UTC")
    );
}

#[test]
fn cli_digest_without_config_writes_an_eml() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = SledStore::open(&dir.path().join("data")).unwrap();
        ingest(&store, vec![open_dns()], Utc::now() - Duration::hours(1));
        store.flush().unwrap();
    }
    let out = assert_cmd::Command::cargo_bin("outwatch")
        .unwrap()
        .current_dir(dir.path())
        .env_remove("OUTWATCH_CONFIG")
        .env_remove("OUTWATCH_DATA_DIR")
        .args(["--data-dir", "data", "digest", "--send"])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let s = String::from_utf8(out).unwrap();
    assert!(s.contains("1 new") && s.contains("written to"), "{s}");
    let files: Vec<_> = std::fs::read_dir(dir.path().join("data/digests"))
        .unwrap()
        .collect();
    assert_eq!(files.len(), 1);
}

/// Two nodes on one PostgreSQL store, each with the daemon's digest job, for the same
/// schedule slot: one mail. Together, one holds the turn and the other skips; the second node
/// running the slot after the first finished finds it recorded as done and sends nothing
/// (with `send_empty = true`, which would otherwise send again). The next slot is sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_send_one_digest_per_slot() {
    use outwatch::clock::{Clock, ManualClock};
    use outwatch::daemon::scheduler::Task;
    use outwatch::daemon::tasks::{DigestTask, SLOT_DONE, Shared};
    use outwatch::http::HttpClient;
    use outwatch::scope::{ScopeMatcher, ScopeSnapshot};
    use outwatch::store::postgres::PgStore;

    let Some(schema) = crate::store_contract::postgres::Schema::new() else {
        return;
    };
    let server = Smtp::start(None);
    let dir = tempfile::tempdir().unwrap();
    let cfg = std::sync::Arc::new(config(
        dir.path(),
        &format!("send_empty = true\n{}", smtp_table(server.port)),
    ));
    let target = schema.target();
    let (a, b) = tokio::task::spawn_blocking(move || {
        let a = PgStore::open(&target).unwrap();
        let b = PgStore::open(&target).unwrap();
        ingest(&a, vec![c2_with_script(), open_dns()], t(1));
        (a, b)
    })
    .await
    .unwrap();
    let node = |store: Arc<dyn Store>, at: DateTime<Utc>| {
        let clock: Arc<dyn Clock> = Arc::new(ManualClock::new(at));
        DigestTask {
            shared: Shared {
                cfg: cfg.clone(),
                store,
                http: HttpClient::new(&Default::default(), clock.clone()).unwrap(),
                clock,
                scope: Arc::new(std::sync::RwLock::new(Arc::new(ScopeMatcher::new(
                    &ScopeSnapshot::default(),
                )))),
                data_dir: dir.path().to_path_buf(),
            },
        }
    };
    let (a, b): (Arc<dyn Store>, Arc<dyn Store>) = (Arc::new(a), Arc::new(b));
    let slot = t(6);
    let (node_a, node_b) = (node(a.clone(), slot), node(b.clone(), slot));
    let (ra, rb) = tokio::join!(node_a.run(Some(slot)), node_b.run(Some(slot)));
    let (ra, rb) = (ra.unwrap(), rb.unwrap());
    assert_eq!(server.take().len(), 1, "one mail: {ra} / {rb}");
    assert!(
        [&ra, &rb]
            .iter()
            .any(|r| r.contains("another node") || r == &SLOT_DONE),
        "{ra} / {rb}"
    );
    // The slot again, on the other node, after the first finished: recorded, not sent.
    let late = node(b.clone(), slot + Duration::seconds(30));
    assert_eq!(late.run(Some(slot)).await.unwrap(), SLOT_DONE);
    assert!(server.take().is_empty());
    // The next slot is sent (by whichever node runs it).
    let next = t(30);
    let r = node(b.clone(), next).run(Some(next)).await.unwrap();
    assert_eq!(server.take().len(), 1, "{r}");
    assert_eq!(node(a, next).run(Some(next)).await.unwrap(), SLOT_DONE);
    assert!(server.take().is_empty());
}
