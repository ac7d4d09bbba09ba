//! The command line on a PostgreSQL store (`[store] backend = "postgres"`): the same import
//! gives the same findings as on sled, reads never create a store, `status` and `check-config`
//! name the backend and never the password. Skipped without a server, except under `CI=true`
//! (see `store_contract/postgres.rs`).

use std::path::Path;

use serde_json::Value;

use crate::store_contract::postgres::{Schema, url};
use crate::support::{cli, feeds_off, fixture_path};

const REPORT: &str = "shadowserver/2026-11-20-scan_dns-example-asn.csv";

/// A config with its store in `schema`; the URL comes from `$OUTWATCH_TEST_STORE_URL`.
fn config(d: &Path, schema: &Schema) -> std::path::PathBuf {
    let cfg = d.join("outwatch.toml");
    std::fs::write(
        &cfg,
        format!(
            "[organisation]\nname = \"Test\"\nprefixes = [\"192.0.2.0/24\", \"198.51.100.0/24\"]\n\n\
             [store]\npath = \"data\"\nbackend = \"postgres\"\nurl_env = \"OUTWATCH_TEST_STORE_URL\"\n\
             schema = \"{}\"\n\n{}",
            schema.name(),
            feeds_off()
        ),
    )
    .unwrap();
    cfg
}

fn run(d: &Path, cfg: Option<&Path>, args: &[&str]) -> std::process::Output {
    let mut c = cli(d);
    if let Some(cfg) = cfg {
        c.arg("--config").arg(cfg);
    }
    c.env("OUTWATCH_TEST_STORE_URL", url())
        .args(args)
        .output()
        .unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Every exported finding without the times of its import (which differ between the runs).
fn exported(out: &std::process::Output) -> Vec<Value> {
    assert!(out.status.success(), "{}", text(&out.stderr));
    let mut v: Vec<Value> = text(&out.stdout)
        .lines()
        .map(|l| {
            let mut f: Value = serde_json::from_str(l).unwrap();
            let o = f.as_object_mut().unwrap();
            for k in ["first_seen", "last_seen", "history"] {
                o.remove(k);
            }
            f
        })
        .collect();
    v.sort_by_key(|f| f["fingerprint"].as_str().unwrap().to_string());
    v
}

#[test]
fn import_lookup_and_export_answer_as_on_sled() {
    let Some(schema) = Schema::new() else { return };
    let d = tempfile::tempdir().unwrap();
    let cfg = config(d.path(), &schema);
    let csv = fixture_path(REPORT);
    let csv = csv.to_str().unwrap();

    // A read before anything was stored: no store, exit 4, and no tables made.
    let out = run(d.path(), Some(&cfg), &["lookup", "192.0.2.1"]);
    assert_eq!(out.status.code(), Some(4), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("no outwatch store there yet"),
        "{}",
        text(&out.stderr)
    );

    let out = run(d.path(), Some(&cfg), &["import", "shadowserver", csv]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let sled_dir = d.path().join("sled");
    let sled_dir = sled_dir.to_str().unwrap();
    let out = run(
        d.path(),
        None,
        &["--data-dir", sled_dir, "import", "shadowserver", csv],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));

    let pg = exported(&run(d.path(), Some(&cfg), &["export", "--jsonl"]));
    let sled = exported(&run(
        d.path(),
        None,
        &["--data-dir", sled_dir, "export", "--jsonl"],
    ));
    assert!(!pg.is_empty());
    assert_eq!(pg, sled, "the same findings on both backends");

    // A lookup by prefix: the same answer.
    let ask = |cfg: Option<&Path>, dir: &[&str]| {
        let mut args = dir.to_vec();
        args.extend(["lookup", "--json", "192.0.2.0/24"]);
        let out = run(d.path(), cfg, &args);
        assert!(out.status.success(), "{}", text(&out.stderr));
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        let mut fps: Vec<String> = v["findings"]
            .as_array()
            .unwrap_or_else(|| panic!("{v}"))
            .iter()
            .map(|f| f["fingerprint"].as_str().unwrap().to_string())
            .collect();
        fps.sort();
        fps
    };
    let on_pg = ask(Some(&cfg), &[]);
    assert!(!on_pg.is_empty());
    assert_eq!(on_pg, ask(None, &["--data-dir", sled_dir]));

    // Importing the same report again changes nothing but the times.
    let out = run(d.path(), Some(&cfg), &["import", "shadowserver", csv]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        exported(&run(d.path(), Some(&cfg), &["export", "--jsonl"])),
        pg
    );
}

#[test]
fn status_and_check_config_name_the_backend_never_the_password() {
    let Some(schema) = Schema::new() else { return };
    let d = tempfile::tempdir().unwrap();
    let cfg = config(d.path(), &schema);
    // The URL in the variable carries a password (trust auth ignores it).
    let with_password = |args: &[&str]| {
        cli(d.path())
            .arg("--config")
            .arg(&cfg)
            .env(
                "OUTWATCH_TEST_STORE_URL",
                "postgres://postgres:Sekr1tPassw0rd@127.0.0.1:5432/test",
            )
            .args(args)
            .output()
            .unwrap()
    };
    let out = with_password(&["check-config"]);
    let all = text(&out.stdout) + &text(&out.stderr);
    assert!(out.status.success(), "{all}");
    assert!(
        all.contains("postgres at postgres://postgres@127.0.0.1:5432/test"),
        "{all}"
    );
    assert!(!all.contains("Sekr1t"), "{all}");
    let out = with_password(&[
        "import",
        "shadowserver",
        fixture_path(REPORT).to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = with_password(&["status", "--json"]);
    let all = text(&out.stdout) + &text(&out.stderr);
    assert!(!all.contains("Sekr1t"), "{all}");
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {all}"));
    assert_eq!(v["store"]["backend"], "postgres", "{all}");
    assert!(v["store"]["findings"].as_u64().unwrap() > 0, "{all}");
    let out = with_password(&["status"]);
    let all = text(&out.stdout) + &text(&out.stderr);
    assert!(
        all.contains("(postgres)") && !all.contains("Sekr1t"),
        "{all}"
    );

    // An unset variable is a config problem naming it.
    let out = cli(d.path())
        .arg("--config")
        .arg(&cfg)
        .env_remove("OUTWATCH_TEST_STORE_URL")
        .args(["lookup", "192.0.2.1"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("OUTWATCH_TEST_STORE_URL"));
}

#[test]
fn postgres_settings_without_the_backend_are_refused() {
    let d = tempfile::tempdir().unwrap();
    let cfg = d.path().join("outwatch.toml");
    std::fs::write(
        &cfg,
        format!(
            "[organisation]\nname = \"Test\"\nprefixes = [\"192.0.2.0/24\"]\n\n[store]\n\
             url = \"postgres://u:pw@db.example/x\"\n\n{}",
            feeds_off()
        ),
    )
    .unwrap();
    let out = run(d.path(), Some(&cfg), &["check-config"]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(err.contains("backend = \"postgres\""), "{err}");
    assert!(!err.contains("pw@"), "{err}");
}
