//! Issue #21 item 8: a full disk locks nobody out of reading. The store is put on a small tmpfs
//! in a private mount namespace (`unshare -rm`, so nothing of the machine's own disks fills);
//! the disk is filled; reads work; a write fails naming the disk (not the store, exit 1); once
//! space is freed the store holds exactly what was committed.

use std::path::Path;
use std::process::Command;

use crate::support::fixture_path;

/// A `scan_dns` report of `n` rows (distinct addresses), in the current layout.
fn big_report(path: &Path, n: u32) {
    let mut s = String::from(
        "\"timestamp\",\"severity\",\"ip\",\"protocol\",\"port\",\"hostname\",\"tag\",\"asn\",\
         \"geo\",\"region\",\"city\",\"naics\",\"hostname_source\",\"sector\",\"dns_version\",\
         \"min_amplification\"\n",
    );
    for i in 0..n {
        s.push_str(&format!(
            "\"2026-11-20 03:14:07\",\"medium\",\"10.{}.{}.{}\",\"udp\",53,\"host-{i}.example.net\",\
             \"openresolver\",64496,\"NL\",\"NOORD-HOLLAND\",\"AMSTERDAM\",0,\"ptr\",\
             \"Communications, Service Provider, and Hosting Service\",\"dnsmasq-2.80\",\"28.3\"\n",
            i >> 16,
            (i >> 8) & 255,
            i & 255
        ));
    }
    std::fs::write(path, s).unwrap();
}

/// Runs `script` as root of a new user and mount namespace, or `None` when this machine does
/// not allow one (then the test says so; under `CI=true` it fails).
fn in_namespace(script: &str) -> Option<String> {
    let probe = Command::new("unshare")
        .args([
            "-rm",
            "sh",
            "-c",
            "mkdir -p \"$0\" && mount -t tmpfs -o size=1m tmpfs \"$0\"",
        ])
        .arg(tempfile::tempdir().unwrap().path().join("probe"))
        .output();
    if !probe.as_ref().is_ok_and(|o| o.status.success()) {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "unshare -rm cannot mount a tmpfs here ({probe:?}): the full-disk test cannot run"
        );
        eprintln!("note: unshare -rm cannot mount a tmpfs here; full-disk test skipped");
        return None;
    }
    let o = Command::new("unshare")
        .args(["-rm", "sh", "-c", script])
        .output()
        .unwrap();
    Some(format!(
        "{}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    ))
}

/// The output of step `name` (between its `== name` line and the next step).
fn step<'a>(out: &'a str, name: &str) -> &'a str {
    let start = out
        .find(&format!("== {name}\n"))
        .unwrap_or_else(|| panic!("no step {name}: {out}"));
    let rest = &out[start + name.len() + 4..];
    &rest[..rest.find("\n== ").unwrap_or(rest.len())]
}

#[test]
fn reads_work_on_a_full_disk_and_writes_fail_naming_it() {
    let work = tempfile::tempdir().unwrap();
    let big = work.path().join("2026-11-20-scan_dns-big.csv");
    big_report(&big, 20_000);
    let bin = assert_cmd::cargo::cargo_bin("outwatch");
    let mnt = work.path().join("mnt");
    let small = fixture_path("shadowserver/2026-11-20-scan_dns-example-asn.csv");
    let script = format!(
        r#"set -u
B="{bin}"; M="{mnt}"; D="$M/data"
run() {{ name=$1; shift; echo "== $name"; "$B" --data-dir "$D" "$@" 2>&1; echo "rc=$?"; }}
mkdir -p "$M" && mount -t tmpfs -o size=24m tmpfs "$M" || exit 99
run import-small import shadowserver --type scan_dns "{small}"
dd if=/dev/zero of="$M/fill" bs=64k 2>/dev/null
echo "== df"; df -B1 "$M" | tail -1
run lookup lookup 192.0.2.53 --json
run status status
run export export
run import-big import shadowserver --type scan_dns "{big}"
run lookup-after lookup 192.0.2.53
rm -f "$M/fill"
run export-freed export
run import-freed import shadowserver --type scan_dns "{big}"
run export-final export
echo "== end"
"#,
        bin = bin.display(),
        mnt = mnt.display(),
        small = small.display(),
        big = big.display(),
    );
    let Some(out) = in_namespace(&script) else {
        return;
    };
    assert!(step(&out, "import-small").contains("rc=0"), "{out}");
    let df = step(&out, "df");
    assert!(
        df.split_whitespace().nth(3) == Some("0"),
        "the disk is not full: {df}"
    );
    // Reads work.
    let lookup = step(&out, "lookup");
    assert!(
        lookup.contains("\"192.0.2.53\"") && lookup.contains("rc=0"),
        "{out}"
    );
    assert!(step(&out, "status").contains("rc=0"), "{out}");
    let export = step(&out, "export");
    assert!(
        export.contains("rc=0") && export.contains("192.0.2.54"),
        "{out}"
    );
    // A write fails naming the disk, exit 1, and says nothing of damage.
    let write = step(&out, "import-big");
    assert!(write.contains("rc=1"), "{out}");
    assert!(
        write.contains("the disk holding")
            && write.contains("is full (")
            && write.contains("bytes free"),
        "{write}"
    );
    assert!(
        !write.contains("damaged") || write.contains("not damaged"),
        "{write}"
    );
    assert!(step(&out, "lookup-after").contains("rc=0"), "{out}");
    // Space freed: the store opens with what was committed (the small report, and the batches
    // of the big one stored before the disk filled), and takes the rest.
    let freed = step(&out, "export-freed");
    assert!(
        freed.contains("rc=0") && freed.contains("192.0.2.54"),
        "{out}"
    );
    let count = |s: &str| s.lines().filter(|l| l.starts_with('{')).count();
    let before = count(export);
    assert!(count(freed) >= before, "{freed}");
    assert!(step(&out, "import-freed").contains("rc=0"), "{out}");
    let last = step(&out, "export-final");
    assert_eq!(
        count(last),
        before + 20_000,
        "{}",
        &last[last.len().saturating_sub(500)..]
    );
}

/// A snapshot write that failed (a full disk, a crash) leaves `snap.<lsn>.generating`, which
/// sled 0.34 would read as the newest snapshot and call the store corrupt: it is removed on
/// open, and the store opens with what it held.
#[test]
fn an_unfinished_snapshot_does_not_make_the_store_look_corrupt() {
    use outwatch::finding::{Classification, Finding, Severity};
    use outwatch::store::{IngestOptions, Store};
    let d = tempfile::tempdir().unwrap();
    let mut f = Finding::new(
        "shadowserver",
        "scan_dns",
        Classification::new("vulnerable", "vulnerable-system", "dns-open-resolver"),
        Severity::Medium,
    );
    f.ip = Some("192.0.2.53".parse().unwrap());
    f.seal();
    {
        let s = outwatch::store::open(d.path()).unwrap();
        let now = chrono::Utc::now();
        s.ingest(vec![f], vec![], &IngestOptions { now }).unwrap();
        s.flush().unwrap();
    }
    std::fs::write(d.path().join("db/snap.FFFFFFFFFFFFFFF0.generating"), b"").unwrap();
    let s = outwatch::store::open(d.path()).unwrap();
    assert_eq!(s.count().unwrap(), 1);
    assert!(
        !d.path()
            .join("db/snap.FFFFFFFFFFFFFFF0.generating")
            .exists()
    );
    assert!(d.path().join(outwatch::diskspace::RESERVE_FILE).exists());
}
