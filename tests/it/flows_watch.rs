//! The flows watch follows a log across each usual rotation (rename and reopen, logrotate's
//! `copytruncate`, delete and re-create on the same inode, the rotated file compressed,
//! zeekctl's dated archive): every line written is read once, none lost, none twice.
//!
//! Every line is a long connection of one host to one peer on one day, line `i` carrying `i`
//! payload bytes: the day's finding must count exactly the lines written and their bytes sum
//! to exactly the sum of their numbers.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use outwatch::config::Config;
use outwatch::flows::analyse::group::Body;
use outwatch::flows::watch::run_once;
use outwatch::scope::ScopeMatcher;
use outwatch::store::{Query, QueryOptions, SledStore, Store};

use crate::support::feeds_off;

/// 2026-11-30 00:00:00 UTC.
const DAY0: u64 = 1_795_996_800;

fn header(open: &str) -> String {
    format!(
        "#separator \\x09\n#set_separator\t,\n#empty_field\t(empty)\n#unset_field\t-\n#path\tconn\n#open\t{open}\n\
#fields\tts\tuid\tid.orig_h\tid.orig_p\tid.resp_h\tid.resp_p\tproto\tservice\tduration\torig_bytes\tresp_bytes\tconn_state\torig_pkts\tresp_pkts\n\
#types\ttime\tstring\taddr\tport\taddr\tport\tenum\tstring\tinterval\tcount\tcount\tstring\tcount\tcount\n"
    )
}

/// Line `i`: a two-hour connection of 10.1.0.7 to 203.0.113.5:443 with `i` payload bytes.
fn line(i: u64) -> String {
    format!(
        "{}.000000\tC{i}\t10.1.0.7\t{}\t203.0.113.5\t443\ttcp\tssl\t7200.000000\t{i}\t0\tSF\t1\t1\n",
        DAY0 + i,
        40_000 + i % 20_000
    )
}

/// A watch over `pattern` (relative to the config's folder) with its store, and the lines
/// written so far.
struct Watch {
    dir: tempfile::TempDir,
    cfg: Config,
    store: Arc<dyn Store>,
    scope: ScopeMatcher,
    next: u64,
    written: u64,
    tick: std::sync::atomic::AtomicI64,
}

impl Watch {
    fn new(pattern: &str) -> Watch {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("logs")).unwrap();
        let p = dir.path().join("outwatch.toml");
        std::fs::write(
            &p,
            format!(
                "[organisation]\nprefixes = [\"192.0.2.0/24\"]\n[flows]\npaths = [\"{pattern}\"]\n{}",
                feeds_off()
            ),
        )
        .unwrap();
        let cfg = Config::load(&p, &outwatch::sources::Registry).unwrap();
        let store: Arc<dyn Store> = Arc::new(SledStore::open(&dir.path().join("store")).unwrap());
        Watch {
            dir,
            cfg,
            store,
            scope: ScopeMatcher::default(),
            next: 1,
            written: 0,
            tick: 0.into(),
        }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// `n` new lines, as text.
    fn lines(&mut self, n: u64) -> String {
        let mut s = String::new();
        for _ in 0..n {
            s.push_str(&line(self.next));
            self.next += 1;
        }
        self.written += n;
        s
    }

    /// A new log at `rel`: its header (with its own `#open`) and `n` lines.
    fn create(&mut self, rel: &str, n: u64) {
        let open = format!("2026-11-30-00-00-{:02}", self.next % 60);
        let text = header(&open) + &self.lines(n);
        std::fs::write(self.path(rel), text).unwrap();
    }

    /// `n` lines more at the end of `rel`.
    fn append(&mut self, rel: &str, n: u64) {
        let text = self.lines(n);
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(self.path(rel))
            .unwrap();
        f.write_all(text.as_bytes()).unwrap();
    }

    fn run(&self) -> String {
        let s = self.tick.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let t: DateTime<Utc> =
            "2026-12-01T07:00:00Z".parse::<DateTime<Utc>>().unwrap() + chrono::Duration::seconds(s);
        run_once(&self.cfg, &self.store, &self.scope, || t).unwrap()
    }

    /// Every line written was read once: the run log's connections, and the day's finding's
    /// connections and bytes.
    fn check(&self) {
        let runs = self.store.runs(Some("flows"), 1000).unwrap();
        let read: usize = runs.iter().map(|r| r.fetched).sum();
        assert_eq!(read as u64, self.written, "connections read over all runs");
        let found = self
            .store
            .query(
                &Query::Ip("10.1.0.7".parse().unwrap()),
                &QueryOptions::default(),
            )
            .unwrap();
        let long: Vec<_> = found
            .iter()
            .filter(|f| f.feed == "long-connection")
            .collect();
        assert_eq!(long.len(), 1, "one finding for the day");
        let b = Body::of(long[0]).unwrap();
        let n = self.next - 1;
        assert_eq!(
            b.counts.connections, self.written,
            "no line lost or doubled"
        );
        assert_eq!(b.counts.bytes, n * (n + 1) / 2, "each line once");
        assert_eq!(b.peers[0].counts.connections, self.written);
    }
}

fn gzip(from: &Path, to: &Path) {
    let body = std::fs::read(from).unwrap();
    let mut enc = flate2::write::GzEncoder::new(
        std::fs::File::create(to).unwrap(),
        flate2::Compression::default(),
    );
    enc.write_all(&body).unwrap();
    enc.finish().unwrap();
    std::fs::remove_file(from).unwrap();
}

fn inode(p: &Path) -> u64 {
    std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(p).unwrap())
}

/// Rename and reopen: the lines written to the old file after the last run are read from
/// its new name (`conn.log.1`, or Zeek's `conn.<time>.log`), the new file whole.
#[test]
fn rename_and_reopen_loses_no_line() {
    for rotated in ["logs/conn.log.1", "logs/conn.2026-11-30-00-00-00.log"] {
        let mut w = Watch::new("logs/conn.log");
        w.create("logs/conn.log", 400);
        w.run();
        w.append("logs/conn.log", 20);
        std::fs::rename(w.path("logs/conn.log"), w.path(rotated)).unwrap();
        w.create("logs/conn.log", 380);
        w.run();
        assert!(w.run().contains("no new lines"));
        w.append("logs/conn.log", 10);
        w.run();
        w.check();
    }
}

/// Rename and reopen when the paths match the rotated names too: the renamed file is
/// recognised by its inode and read on from its mark, not read again.
#[test]
fn rename_and_reopen_with_the_rotated_names_watched_doubles_no_line() {
    let mut w = Watch::new("logs/conn.log*");
    w.create("logs/conn.log", 400);
    w.run();
    w.append("logs/conn.log", 20);
    std::fs::rename(w.path("logs/conn.log"), w.path("logs/conn.log.1")).unwrap();
    w.create("logs/conn.log", 380);
    w.run();
    // Next rotation, compressing the older one (`delaycompress`): its gzip is recognised by
    // its first bytes.
    w.append("logs/conn.log", 30);
    gzip(&w.path("logs/conn.log.1"), &w.path("logs/conn.log.2.gz"));
    std::fs::rename(w.path("logs/conn.log"), w.path("logs/conn.log.1")).unwrap();
    w.create("logs/conn.log", 5);
    w.run();
    assert!(w.run().contains("no new lines"));
    w.check();
}

/// logrotate's `copytruncate`: the copy holds what was written since the last run, and the
/// truncated log goes on without its header.
#[test]
fn copytruncate_loses_no_line() {
    for pattern in ["logs/conn.log", "logs/conn.log*"] {
        let mut w = Watch::new(pattern);
        w.create("logs/conn.log", 500);
        w.run();
        w.append("logs/conn.log", 300);
        std::fs::copy(w.path("logs/conn.log"), w.path("logs/conn.log.1")).unwrap();
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(w.path("logs/conn.log"))
            .unwrap();
        f.set_len(0).unwrap();
        drop(f);
        w.append("logs/conn.log", 100);
        w.run();
        w.append("logs/conn.log", 50);
        w.run();
        assert!(w.run().contains("no new lines"), "{pattern}");
        w.check();
    }
}

/// `copytruncate` with `compress` and no `delaycompress`: the copy is gzipped at once.
#[test]
fn copytruncate_with_a_compressed_copy_loses_no_line() {
    let mut w = Watch::new("logs/conn.log");
    w.create("logs/conn.log", 200);
    w.run();
    w.append("logs/conn.log", 77);
    std::fs::copy(w.path("logs/conn.log"), w.path("logs/conn.log.1")).unwrap();
    gzip(&w.path("logs/conn.log.1"), &w.path("logs/conn.log.1.gz"));
    std::fs::OpenOptions::new()
        .write(true)
        .open(w.path("logs/conn.log"))
        .unwrap()
        .set_len(0)
        .unwrap();
    w.append("logs/conn.log", 900);
    w.run();
    w.check();
}

/// A log deleted and re-created on the same inode: the new log is read whole, not from the
/// old one's offset.
#[test]
fn delete_and_recreate_on_the_same_inode_loses_no_line() {
    let mut w = Watch::new("logs/conn.log");
    w.create("logs/conn.log", 400);
    w.run();
    let before = inode(&w.path("logs/conn.log"));
    // Re-created in place (the same inode: what a file system reusing the number gives).
    w.create("logs/conn.log", 400);
    assert_eq!(inode(&w.path("logs/conn.log")), before);
    w.run();
    w.check();
    // And really deleted then created, whatever inode it gets.
    std::fs::remove_file(w.path("logs/conn.log")).unwrap();
    w.create("logs/conn.log", 350);
    w.run();
    w.check();
}

/// Rename, then the rotated file compressed before the next run: its lines after the mark
/// are read from the gzip.
#[test]
fn a_rotated_and_compressed_log_loses_no_line() {
    let mut w = Watch::new("logs/conn.log");
    w.create("logs/conn.log", 400);
    w.run();
    w.append("logs/conn.log", 20);
    std::fs::rename(w.path("logs/conn.log"), w.path("logs/conn.log.1")).unwrap();
    gzip(&w.path("logs/conn.log.1"), &w.path("logs/conn.log.1.gz"));
    w.create("logs/conn.log", 380);
    w.run();
    w.check();
}

/// zeekctl's archive: `current/conn.log` moves, compressed, to a dated folder beside it.
#[test]
fn zeekctl_archive_loses_no_line() {
    let mut w = Watch::new("logs/current/conn.log");
    std::fs::create_dir_all(w.path("logs/current")).unwrap();
    std::fs::create_dir_all(w.path("logs/2026-11-29")).unwrap();
    std::fs::create_dir_all(w.path("logs/2026-11-30")).unwrap();
    w.create("logs/current/conn.log", 300);
    w.run();
    w.append("logs/current/conn.log", 45);
    std::fs::rename(
        w.path("logs/current/conn.log"),
        w.path("logs/2026-11-30/conn.00:00:00-01:00:00.log"),
    )
    .unwrap();
    gzip(
        &w.path("logs/2026-11-30/conn.00:00:00-01:00:00.log"),
        &w.path("logs/2026-11-30/conn.00:00:00-01:00:00.log.gz"),
    );
    w.create("logs/current/conn.log", 10);
    w.run();
    w.check();
}

/// A rotated log that cannot be found next to its old name is said (the run's notice, in
/// `status`), not passed over in silence.
#[test]
fn a_rotated_log_not_found_is_a_notice() {
    let mut w = Watch::new("logs/conn.log");
    w.create("logs/conn.log", 10);
    w.run();
    w.append("logs/conn.log", 5);
    std::fs::create_dir_all(w.path("elsewhere")).unwrap();
    std::fs::rename(w.path("logs/conn.log"), w.path("elsewhere/kept.log")).unwrap();
    w.create("logs/conn.log", 10);
    w.run();
    let runs = w.store.runs(Some("flows"), 1).unwrap();
    assert!(
        runs[0]
            .notices
            .iter()
            .any(|n| n.contains("was rotated and its old file was not found")),
        "{:?}",
        runs[0].notices
    );
}

/// Flow findings resolve as other sources' do: a day's finding no run has added to for
/// `[flows] resolve_after` (3 days by default) is resolved by the next run that read lines (a
/// run that read nothing resolves nothing: nothing resolves on doubt), and the run's entry
/// counts it.
#[test]
fn a_flow_finding_no_run_adds_to_resolves() {
    use outwatch::finding::Status;
    let mut w = Watch::new("logs/conn.log");
    w.create("logs/conn.log", 5);
    let t0: DateTime<Utc> = "2026-12-01T07:00:00Z".parse().unwrap();
    run_once(&w.cfg, &w.store, &w.scope, || t0).unwrap();
    let host = |w: &Watch, ip: &str| {
        let all = QueryOptions {
            include_resolved: true,
            ..Default::default()
        };
        w.store
            .query(&Query::Ip(ip.parse().unwrap()), &all)
            .unwrap()
            .into_iter()
            .find(|f| f.feed == "long-connection")
            .unwrap()
    };
    assert_eq!(host(&w, "10.1.0.7").status, Status::New);
    let t1 = t0 + chrono::Duration::days(4);
    let out = run_once(&w.cfg, &w.store, &w.scope, || t1).unwrap();
    assert!(out.contains("no new lines"), "{out}");
    assert_eq!(
        host(&w, "10.1.0.7").status,
        Status::New,
        "no lines: no resolving"
    );
    // Another host's lines: the first host's day is resolved, the new one stays.
    let more = w.lines(3).replace("10.1.0.7", "10.1.0.8");
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(w.path("logs/conn.log"))
        .unwrap();
    f.write_all(more.as_bytes()).unwrap();
    run_once(&w.cfg, &w.store, &w.scope, || t1).unwrap();
    let old = host(&w, "10.1.0.7");
    assert_eq!(old.status, Status::Resolved);
    assert_eq!(old.history.last().unwrap().event, "resolved");
    assert_eq!(host(&w, "10.1.0.8").status, Status::New);
    assert_eq!(w.store.runs(Some("flows"), 1).unwrap()[0].resolved, 1);
}

/// Two sensors on one store with a log at the same path (the same file here): each keeps its
/// own marks, so each reads its log once; a mark an earlier version kept under the path alone
/// (`flows/file/<path>`) is taken over by the node that runs, which reads nothing twice.
#[test]
fn sensors_with_the_same_log_path_keep_marks_of_their_own() {
    use outwatch::flows::watch::{STATE_PREFIX, node_prefix, run_once_as};
    let mut w = Watch::new("logs/conn.log");
    w.create("logs/conn.log", 5);
    let t: DateTime<Utc> = "2026-12-01T07:00:00Z".parse().unwrap();
    let run = |node: &str| run_once_as(node, &w.cfg, &w.store, &w.scope, || t).unwrap();
    assert!(run("a").contains("5 connection(s)"));
    assert!(
        run("b").contains("5 connection(s)"),
        "b has marks of its own"
    );
    assert!(run("a").starts_with("no new lines"));
    assert!(run("b").starts_with("no new lines"));
    let own = |node: &str| w.store.state_scan(&node_prefix(node)).unwrap().len();
    assert_eq!((own("a"), own("b")), (1, 1));

    // An earlier version's mark: node c takes it over and reads nothing again.
    let (_, mark) = w.store.state_scan(&node_prefix("a")).unwrap().remove(0);
    let path = w.path("logs/conn.log");
    let legacy = format!("{STATE_PREFIX}{}", path.display());
    w.store.state_put(&legacy, Some(&mark)).unwrap();
    assert!(run("c").starts_with("no new lines"));
    assert!(w.store.state_get(&legacy).unwrap().is_none(), "taken over");
    assert_eq!(own("c"), 1);
}
