//! `outwatch demo` works from zero: no config, no keys, no network beyond loopback.

use serde_json::Value;

#[test]
fn demo_fetches_recorded_data_and_writes_the_digest() {
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("demo");
    let run = crate::support::cli(d.path())
        .args(["demo", "--out"])
        .arg(&out)
        .assert()
        .success()
        .get_output()
        .clone();
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(stdout.contains("digest.html"), "{stdout}");
    let html = std::fs::read_to_string(out.join("digest.html")).unwrap();
    let text = std::fs::read_to_string(out.join("digest.txt")).unwrap();
    assert!(html.contains("alice@example.org") && text.contains("alice@example.org"));
    assert!(!html.to_ascii_lowercase().contains("<script"));
    // The network's own view: the demo's conn.log against the lists just fetched.
    assert!(text.contains("Your own traffic"), "{text}");
    assert!(
        text.contains("c2-contact 192.0.2.20") && text.contains("8.134.12.90:7777"),
        "{text}"
    );
    assert!(text.contains("unexpected-outbound 192.0.2.20"), "{text}");
    // Owner-only: the store folder and everything in it, and the digest files.
    {
        use std::os::unix::fs::MetadataExt;
        let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().mode() & 0o777;
        assert_eq!(mode(&out.join("data")), 0o700);
        assert_eq!(mode(&out.join("digest.html")), 0o600);
        assert_eq!(mode(&out.join("digest.txt")), 0o600);
        let mut stack = vec![out.join("data")];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() {
                    assert_eq!(mode(&p), 0o700, "{}", p.display());
                    stack.push(p);
                } else {
                    assert_eq!(mode(&p), 0o600, "{}", p.display());
                }
            }
        }
    }
    // The demo's store answers lookups afterwards.
    let cfg = out.join("outwatch.toml");
    let look = crate::support::cli(d.path())
        .args(["--config"])
        .arg(&cfg)
        .args(["lookup", "192.0.2.11", "--json"])
        .assert()
        .success()
        .get_output()
        .clone();
    let v: Value = serde_json::from_slice(&look.stdout).unwrap();
    assert_eq!(v["in_scope"], true);
    assert!(!v["findings"].as_array().unwrap().is_empty());
    // A second demo into the same folder is refused rather than mixed in.
    crate::support::cli(d.path())
        .args(["demo", "--out"])
        .arg(&out)
        .assert()
        .code(2);
}
