use super::*;

#[test]
fn wildcards() {
    assert!(wildcard_match(
        "conn.*.log.gz",
        "conn.10:00:00-11:00:00.log.gz"
    ));
    assert!(!wildcard_match(
        "conn.*.log.gz",
        "dns.10:00:00-11:00:00.log.gz"
    ));
    assert!(wildcard_match("conn.?og", "conn.log"));
    assert!(wildcard_match("*", "x"));
    assert!(!wildcard_match("a*b", "acbd"));
}

#[test]
fn expands_folders_and_names() {
    let d = tempfile::tempdir().unwrap();
    for day in ["2026-11-29", "2026-11-30"] {
        std::fs::create_dir(d.path().join(day)).unwrap();
        std::fs::write(d.path().join(day).join("conn.00-01.log.gz"), b"x").unwrap();
        std::fs::write(d.path().join(day).join("dns.00-01.log.gz"), b"x").unwrap();
    }
    let got = expand(&d.path().join("*/conn.*.log.gz")).unwrap();
    assert_eq!(got.len(), 2);
    assert!(expand(&d.path().join("missing.log")).is_err());
    assert!(expand(&d.path().join("nothing-*.log")).unwrap().is_empty());
    // A folder or a FIFO named without wildcards is refused, and says what it is.
    let e = expand(&d.path().join("2026-11-29"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("a folder"), "{e}");
    let fifo = d.path().join("conn.pipe");
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    let e = expand(&fifo).unwrap_err().to_string();
    assert!(e.contains("FIFO"), "{e}");
    // A wildcard leaves it out.
    assert!(expand(&d.path().join("conn.*")).unwrap().is_empty());
}
