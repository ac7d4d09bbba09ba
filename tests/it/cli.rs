//! The command line as a person meets it (issue #22, item 8): `--help` at 80 columns, config
//! errors, the manual page, shell completion, owner-only export files, `run --once` at a given
//! width, and the test environment itself (issue #26, item 9).

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use clap::CommandFactory;
use outwatch::cli::Cli;

use crate::support::{cli, feeds_off, isolated};

fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Every command line a person can ask `--help` of: `[]`, `["lookup"]`, `["shadowserver",
/// "ping"]`, ...
fn every_command() -> Vec<Vec<String>> {
    fn walk(c: &clap::Command, path: Vec<String>, out: &mut Vec<Vec<String>>) {
        out.push(path.clone());
        for s in c.get_subcommands().filter(|s| s.get_name() != "help") {
            let mut p = path.clone();
            p.push(s.get_name().to_string());
            walk(s, p, out);
        }
    }
    let mut out = Vec::new();
    walk(&Cli::command(), Vec::new(), &mut out);
    out
}

#[test]
fn help_is_wrapped_to_the_width_and_examples_stay_whole() {
    let d = tempfile::tempdir().unwrap();
    let commands = every_command();
    assert!(commands.len() > 15, "{commands:?}");
    for cmd in commands {
        let out = cli(d.path())
            .args(&cmd)
            .arg("--help")
            .env("COLUMNS", "80")
            .output()
            .unwrap();
        assert!(out.status.success(), "{cmd:?}");
        let help = stdout(&out);
        for l in help.lines() {
            assert!(l.chars().count() <= 80, "{cmd:?}: {} columns: {l}", l.len());
        }
        // An example is one line: a command, never the end of a comment wrapped over.
        if let Some((_, examples)) = help.split_once("\nExamples:\n") {
            for l in examples.lines().take_while(|l| !l.is_empty()) {
                assert!(
                    l.starts_with("  outwatch ") || l.starts_with("  zcat "),
                    "{cmd:?}: {l}"
                );
            }
        }
    }
    // The exit codes, one a line.
    let out = cli(d.path())
        .arg("--help")
        .env("COLUMNS", "80")
        .output()
        .unwrap();
    let help = stdout(&out);
    for code in 0..=4 {
        assert!(help.contains(&format!("\n  {code}  ")), "{help}");
    }
}

#[test]
fn a_config_error_shows_line_column_key_and_the_place() {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(
        d.path().join("outwatch.toml"),
        "[organisation]\nname = \"x\"\nasns = [\"64496\", \"x\"]\n",
    )
    .unwrap();
    let out = cli(d.path()).arg("check-config").output().unwrap();
    assert_eq!(out.status.code(), Some(3));
    let err = stderr(&out);
    assert!(
        !err.contains("\\u{a}") && !err.contains("TOML parse error"),
        "{err}"
    );
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 3, "{err}");
    assert!(
        lines[0].starts_with(
            "error: invalid config file outwatch.toml: line 3, column 8: `organisation.asns`: \
             `x` is not an AS number"
        ),
        "{err}"
    );
    assert_eq!(lines[1], "  3 | asns = [\"64496\", \"x\"]");
    assert_eq!(lines[2], "    |        ^^^^^^^^^^^^^^");
    // A control character in the file is still shown escaped, and the caret follows it.
    std::fs::write(
        d.path().join("outwatch.toml"),
        "[organisation]\nname = \"x\u{1b}[2J\"\n",
    )
    .unwrap();
    let out = cli(d.path()).arg("check-config").output().unwrap();
    assert_eq!(out.status.code(), Some(3));
    let err = stderr(&out);
    assert!(
        !err.contains('\u{1b}') && err.contains("\\u{1b}[2J"),
        "{err}"
    );
    assert!(err.starts_with("error: invalid config file outwatch.toml: line 2, column 10"));
}

#[test]
fn check_config_refuses_a_digest_to_nobody() {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(
        d.path().join("outwatch.toml"),
        "[organisation]\nprefixes = [\"192.0.2.0/24\"]\n[digest]\nfrom = \"outwatch@example.org\"\n\
         recipients = []\n",
    )
    .unwrap();
    let out = cli(d.path()).arg("check-config").output().unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", stdout(&out));
    let err = stderr(&out);
    assert!(
        err.contains("line 5: `digest.recipients` is empty") && err.contains("nobody"),
        "{err}"
    );
}

#[test]
fn export_to_a_file_is_owner_only_whatever_the_umask() {
    let d = tempfile::tempdir().unwrap();
    let data = d.path().join("data");
    let csv = crate::support::fixture_path("shadowserver/2026-11-20-scan_dns-example-asn.csv");
    let out = cli(d.path())
        .arg("--data-dir")
        .arg(&data)
        .args(["import", "shadowserver"])
        .arg(&csv)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let new = d.path().join("new.jsonl");
    let old = d.path().join("old.jsonl");
    std::fs::write(&old, "").unwrap();
    std::fs::set_permissions(&old, std::fs::Permissions::from_mode(0o644)).unwrap();
    for file in [&new, &old] {
        // Through a shell that sets a permissive umask first.
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg("umask 022 && exec \"$0\" \"$@\"")
            .arg(assert_cmd::cargo::cargo_bin("outwatch"))
            .arg("--data-dir")
            .arg(&data)
            .args(["export", "--jsonl", "-o"])
            .arg(file)
            .env("HOME", d.path())
            .env_remove("OUTWATCH_CONFIG")
            .current_dir(d.path())
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        let meta = std::fs::metadata(file).unwrap();
        assert_eq!(meta.mode() & 0o777, 0o600, "{}", file.display());
        assert!(meta.len() > 0);
    }
}

/// A config whose one source fails at a long URL, and a digest written to a file.
fn failing_config(dir: &Path) -> String {
    let url =
        "http://127.0.0.1:9/downloads/csv_recent/a-very-long-path-name/that-goes-on/recent.csv";
    let feeds: String = feeds_off()
        .split("[sources.")
        .filter(|t| !t.is_empty() && !t.starts_with("urlhaus]"))
        .map(|t| format!("[sources.{t}"))
        .collect();
    std::fs::write(
        dir.join("outwatch.toml"),
        format!(
            "[organisation]\nprefixes = [\"192.0.2.0/24\"]\n[store]\npath = \"data\"\n\
             [sources.urlhaus]\nurl = \"{url}\"\n{feeds}\
             [digest]\nfrom = \"outwatch@example.org\"\n\
             recipients = [\"a-rather-long-mailbox-name@example.org\", \"noc@example.org\"]\n"
        ),
    )
    .unwrap();
    url.to_string()
}

#[test]
fn run_once_lays_out_for_columns_and_never_cuts_a_url() {
    let d = tempfile::tempdir().unwrap();
    let url = failing_config(d.path());
    let out = cli(d.path())
        .args(["run", "--once"])
        .env("COLUMNS", "60")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let (text, err) = (stdout(&out), stderr(&out));
    for l in text.lines() {
        assert!(l.chars().count() <= 60, "{} columns: {l}\n{text}", l.len());
    }
    assert!(text.contains("│ urlhaus ┆ FAILED ┆"), "{text}");
    // The failure once, with its URL whole; the digest's file name whole too.
    let both = format!("{text}{err}");
    assert_eq!(both.matches(&url).count(), 1, "{both}");
    let eml = std::fs::read_dir(d.path().join("data/digests"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .file_name();
    assert!(text.contains(&*eml.to_string_lossy()), "{text}");
    // Without COLUMNS (a pipe), lines are not wrapped at all.
    let out = cli(d.path()).args(["run", "--once"]).output().unwrap();
    let text = stdout(&out);
    assert!(
        text.lines()
            .any(|l| l.starts_with("digest: written to ") && l.ends_with("resolved 0)")),
        "{text}"
    );
}

#[test]
fn the_manual_page_has_every_command_option_and_section() {
    let d = tempfile::tempdir().unwrap();
    let out = cli(d.path()).arg("manpage").output().unwrap();
    assert!(out.status.success());
    let page = stdout(&out);
    assert!(page.contains(".TH OUTWATCH 1"), "{page}");
    for section in [
        "NAME",
        "SYNOPSIS",
        "DESCRIPTION",
        "\"GLOBAL OPTIONS\"",
        "COMMANDS",
        "EXAMPLES",
        "\"EXIT STATUS\"",
        "ENVIRONMENT",
        "FILES",
        "\"SEE ALSO\"",
    ] {
        assert!(page.contains(&format!("\n.SH {section}\n")), "{section}");
    }
    // Every command (by its usage line) and every option of it.
    fn walk(c: &clap::Command, path: &str, page: &str) {
        for s in c.get_subcommands().filter(|s| s.get_name() != "help") {
            let path = format!("{path} {}", s.get_name());
            if s.has_subcommands() {
                walk(s, &path, page);
                continue;
            }
            assert!(page.contains(&format!(".SS \"{path}")), "{path}");
            for a in s.get_arguments().filter(|a| !a.is_hide_set()) {
                if let Some(l) = a.get_long() {
                    let flag = format!("--{l}").replace('-', "\\-");
                    assert!(page.contains(&flag), "{path} {flag}");
                }
            }
        }
    }
    walk(&Cli::command(), "outwatch", &page);
    for needle in [
        "OUTWATCH_CONFIG",
        "_env",
        "NO_COLOR",
        "COLUMNS",
        "RUST_LOG",
        "outwatch.sock",
        "/etc/outwatch/outwatch.toml",
        "backup.jsonl",
    ] {
        assert!(page.contains(&needle.replace('-', "\\-")), "{needle}");
    }
    // It names no other manual page: there is none (clap_mangen's outwatch-lookup(1) ...).
    let refs: Vec<&str> = page
        .split(|c: char| c.is_whitespace() || c == '"')
        .filter(|w| {
            let w = w.trim_end_matches([',', '.', ';']);
            let Some((name, rest)) = w.split_once('(') else {
                return false;
            };
            let section = rest.strip_suffix(')').unwrap_or("");
            !name.is_empty()
                && section.starts_with(|c: char| c.is_ascii_digit())
                && section.len() <= 3
        })
        .collect();
    assert!(refs.is_empty(), "{refs:?}");
    // groff reads it without a warning, when it is there.
    let groff = std::process::Command::new("groff")
        .args(["-man", "-Tutf8", "-ww", "-z"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn();
    if let Ok(mut child) = groff {
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(page.as_bytes())
            .unwrap();
        let o = child.wait_with_output().unwrap();
        assert!(o.status.success() && o.stderr.is_empty(), "{}", stderr(&o));
    }
}

/// A shell, or `None` (with a note) when it is not installed; under `CI=true` it must be
/// (`.ci/run` installs fish and zsh).
fn shell(name: &str) -> Option<()> {
    let found = std::process::Command::new(name)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "{name} is missing under CI=true"
        );
        eprintln!("note: {name} is not installed; its completion test is skipped");
    }
    found.then_some(())
}

fn completion_script(dir: &Path, shell: &str) -> std::path::PathBuf {
    let out = cli(dir).args(["completions", shell]).output().unwrap();
    assert!(out.status.success(), "{shell}");
    let p = dir.join(format!("outwatch.{shell}"));
    std::fs::write(&p, &out.stdout).unwrap();
    p
}

/// What bash completes for the words `line` (the last one being completed).
fn bash_complete(dir: &Path, script: &Path, line: &[&str]) -> Vec<String> {
    let words = line
        .iter()
        .map(|w| format!("'{w}'"))
        .collect::<Vec<_>>()
        .join(" ");
    let n = line.len();
    let cmd = format!(
        "source '{}'; COMP_WORDS=({words}); COMP_CWORD={}; \
         _outwatch outwatch '{}' '{}' 2>/dev/null; printf '%s\\n' \"${{COMPREPLY[@]}}\"",
        script.display(),
        n - 1,
        line[n - 1],
        line[n - 2]
    );
    let out = std::process::Command::new("bash")
        .args(["--norc", "--noprofile", "-c", &cmd])
        .current_dir(dir)
        .output()
        .unwrap();
    stdout(&out).lines().map(str::to_string).collect()
}

#[test]
fn completion_offers_source_names_and_report_types() {
    let d = tempfile::tempdir().unwrap();
    // A file whose name would match, were file names offered.
    std::fs::write(d.path().join("urlfile.txt"), "").unwrap();
    let bash = completion_script(d.path(), "bash");
    assert_eq!(
        bash_complete(d.path(), &bash, &["outwatch", "fetch", "--source", "url"]),
        ["urlhaus", "urlhaus_asn"]
    );
    let all = bash_complete(d.path(), &bash, &["outwatch", "fetch", "--source", ""]);
    for n in [
        "shadowserver",
        "hibp",
        "safebrowsing",
        "snds",
        "cymru",
        "feodotracker",
    ] {
        assert!(all.iter().any(|c| c == n), "{n}: {all:?}");
    }
    assert_eq!(
        bash_complete(
            d.path(),
            &bash,
            &["outwatch", "import", "shadowserver", "--type", "scan_rd"]
        ),
        ["scan_rdp", "scan_rdpeudp"]
    );
    // A name that is not offered is still taken, and the command says which exist.
    std::fs::write(
        d.path().join("outwatch.toml"),
        "[organisation]\nprefixes = [\"192.0.2.0/24\"]\n",
    )
    .unwrap();
    let out = cli(d.path())
        .args(["fetch", "--source", "nope"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("no enabled source named `nope`"));
    // A list feed of the config's `[feeds] dir` is offered too.
    std::fs::create_dir(d.path().join("feeds")).unwrap();
    std::fs::write(
        d.path().join("feeds/urlmine.toml"),
        "name = \"urlmine\"\nurl = \"https://lists.example.net/x.txt\"\n\
         schedule = \"0 0 * * * *\"\nresolve_after = \"1d\"\nseverity = \"low\"\n\
         [format]\ntype = \"lines\"\n[fields]\nip = 1\n\
         [classification]\ntype = \"blacklist\"\nidentifier = \"x\"\n",
    )
    .unwrap();
    std::fs::write(
        d.path().join("outwatch.toml"),
        "[organisation]\nprefixes = [\"192.0.2.0/24\"]\n[feeds]\ndir = \"feeds\"\n",
    )
    .unwrap();
    let check = cli(d.path()).arg("check-config").output().unwrap();
    assert!(check.status.success(), "{}", stderr(&check));
    let bash = completion_script(d.path(), "bash");
    assert_eq!(
        bash_complete(d.path(), &bash, &["outwatch", "fetch", "--source", "url"]),
        ["urlhaus", "urlhaus_asn", "urlmine"]
    );

    // fish, run for real.
    if shell("fish").is_some() {
        let fish = completion_script(d.path(), "fish");
        let out = std::process::Command::new("fish")
            .args(["--no-config", "-c"])
            .arg(format!(
                "source '{}'; complete -C 'outwatch fetch --source url'",
                fish.display()
            ))
            .current_dir(d.path())
            .output()
            .unwrap();
        let offered: Vec<String> = stdout(&out)
            .lines()
            .map(|l| l.split('\t').next().unwrap_or("").to_string())
            .collect();
        assert_eq!(
            offered,
            ["urlhaus", "urlhaus_asn", "urlmine"],
            "{}",
            stderr(&out)
        );
    }
    // zsh: the option's values in the script, which zsh reads without error.
    let zsh = completion_script(d.path(), "zsh");
    let text = std::fs::read_to_string(&zsh).unwrap();
    let at = text
        .find("'*--source=[")
        .expect("--source in the zsh script");
    let line = &text[at..at + text[at..].find("))'").expect("the end of its values")];
    for n in ["urlhaus\\:", "urlmine\\:", "shadowserver\\:"] {
        assert!(line.contains(n), "{n}: {line}");
    }
    if shell("zsh").is_some() {
        let out = std::process::Command::new("zsh")
            .arg("-n")
            .arg(&zsh)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
    }
}

#[test]
fn support_isolates_the_binary_from_the_developers_environment() {
    let d = tempfile::tempdir().unwrap();
    let c = isolated(d.path());
    let envs: Vec<(String, Option<String>)> = c
        .get_envs()
        .map(|(k, v)| {
            (
                k.to_string_lossy().into_owned(),
                v.map(|v| v.to_string_lossy().into_owned()),
            )
        })
        .collect();
    let get = |k: &str| envs.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    assert_eq!(get("HOME"), Some(Some(d.path().display().to_string())));
    for removed in crate::support::UNSET_FOR_TESTS {
        assert_eq!(get(removed), Some(None), "{removed} is not removed");
    }
    for must in [
        "XDG_CONFIG_HOME",
        "OUTWATCH_CONFIG",
        "NO_COLOR",
        "COLUMNS",
        "RUST_LOG",
    ] {
        assert!(crate::support::UNSET_FOR_TESTS.contains(&must), "{must}");
    }
    // So a config under the real HOME is never found: only the test's own places are looked at.
    let out = cli(d.path()).arg("check-config").output().unwrap();
    assert_eq!(out.status.code(), Some(3));
    let err = stderr(&out);
    assert!(
        err.contains(&format!(
            "{}/.config/outwatch/outwatch.toml",
            d.path().display()
        )),
        "{err}"
    );
}

#[test]
fn a_mistyped_file_creates_no_store_and_the_demo_needs_no_config() {
    let d = tempfile::tempdir().unwrap();
    let out = cli(d.path())
        .args(["--data-dir", "data", "import", "shadowserver", "nope.csv"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("no such file: nope.csv"));
    let out = cli(d.path())
        .args(["--data-dir", "data", "restore", "nope.jsonl"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        !d.path().join("data").exists(),
        "a refused import or restore creates no store"
    );
    // A broken config of the user's does not stop the demo, which brings its own.
    std::fs::write(d.path().join("outwatch.toml"), "[organisation\n").unwrap();
    let out = cli(d.path())
        .args(["demo", "--out", "demo"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let mode = std::fs::metadata(d.path().join("demo/outwatch.toml"))
        .unwrap()
        .mode();
    assert_eq!(
        mode & 0o777,
        0o600,
        "the demo's config holds (made-up) keys"
    );
}

#[test]
fn check_config_wraps_the_source_list() {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(
        d.path().join("outwatch.toml"),
        "[organisation]\nprefixes = [\"192.0.2.0/24\"]\n",
    )
    .unwrap();
    let out = cli(d.path())
        .arg("check-config")
        .env("COLUMNS", "50")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let head: Vec<&str> = text.lines().take_while(|l| !l.is_empty()).collect();
    assert!(head.len() > 3, "{text}");
    for l in &head[2..] {
        assert!(l.chars().count() <= 50, "{l}");
        assert!(
            l.starts_with("sources:  ") || l.starts_with("          "),
            "{l}"
        );
    }
}
