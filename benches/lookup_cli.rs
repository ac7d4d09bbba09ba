//! CLI lookup benchmark (a plain binary, `harness = false`): memory and time to the first line
//! of whole `outwatch lookup` runs on a large store, without and with the daemon.
//!
//! Build the release binary and a store first (docs/performance.md, "Lookups": the
//! `shadowserver_import` bench writes the 1M-row report, `outwatch import shadowserver` stores
//! it), then:
//! `cargo bench --bench lookup_cli -- --data DIR [--bin target/release/outwatch]
//! [--query Q]... [--ips N] [--daemon] [--limit N]`.
//!
//! For each `--query`, it runs `outwatch lookup Q` as a table, `--json` and `--jsonl`, reading
//! stdout as it comes, and prints: the time to the first finding (`--jsonl`: the first line;
//! `--json`: the line after the object's head; the table: its first line, which follows the
//! whole walk since it gives the total), the total time, the lines, and the peak RSS of the
//! CLI process (`ru_maxrss` from `wait4`). `--ips N`: N `lookup IP --json` runs on addresses
//! of the first query's findings (hits) and N on random addresses (mostly misses): median, p90,
//! max. `--daemon`: starts `outwatch run` on the store (every feed off), runs the same lookups
//! through its socket, and prints the daemon's resident memory before, its peak, and after
//! each lookup (`VmRSS`/`VmHWM` from /proc, one second after the lookup ended). `--limit N`:
//! every lookup is run with `--limit N` (a large N shows the memory of the unsorted stream).

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

mod common;
use common::{Run, lookup_addresses, run_cli};

fn print_run(label: &str, r: &Run) {
    let first = r.first_ms.map_or("-".to_string(), |m| format!("{m:.0} ms"));
    println!(
        "| {label} | {first} | {:.2} s | {} | {:.0} MiB |{}",
        r.total_ms / 1e3,
        r.lines,
        r.peak_mib,
        if r.ok { "" } else { " FAILED" }
    );
}

/// `VmRSS` and `VmHWM` of a process, in MiB.
fn rss_of(pid: u32) -> (f64, f64) {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let get = |k: &str| {
        s.lines()
            .find(|l| l.starts_with(k))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<f64>().ok())
            .map_or(0.0, |kib| kib / 1024.0)
    };
    (get("VmRSS:"), get("VmHWM:"))
}

fn percentile(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[((v.len() - 1) as f64 * p).round() as usize]
}

fn main() {
    let mut args = std::env::args().skip(1);
    let (mut data, mut bin, mut queries, mut ips, mut daemon, mut limit) = (
        None,
        PathBuf::from("target/release/outwatch"),
        Vec::new(),
        0usize,
        false,
        None::<String>,
    );
    while let Some(a) = args.next() {
        match a.as_str() {
            "--data" => data = args.next().map(PathBuf::from),
            "--bin" => bin = PathBuf::from(args.next().expect("--bin PATH")),
            "--query" => queries.push(args.next().expect("--query Q")),
            "--ips" => ips = args.next().and_then(|v| v.parse().ok()).expect("--ips N"),
            "--daemon" => daemon = true,
            "--limit" => limit = Some(args.next().expect("--limit N")),
            _ => {} // `cargo bench` passes --bench
        }
    }
    let data = std::fs::canonicalize(data.expect("--data DIR (a store)")).expect("the store");
    let bin = std::fs::canonicalize(&bin).expect("the release binary (cargo build --release)");
    let cfg_dir = tempfile::tempdir().expect("temp dir");
    let cfg = cfg_dir.path().join("outwatch.toml");
    let feeds_off: String =
        outwatch::sources::lists::known_feed_names(&outwatch::config::Config::default())
            .iter()
            .map(|n| format!("[sources.{n}]\nenabled = false\n"))
            .collect();
    std::fs::write(
        &cfg,
        format!(
            "[organisation]\nname = \"Bench\"\nprefixes = [\"10.0.0.0/8\"]\n\n[store]\npath = \"{}\"\n\n{feeds_off}",
            data.display()
        ),
    )
    .expect("write config");

    let mut daemon_child = None;
    if daemon {
        let child = Command::new(&bin)
            .arg("--config")
            .arg(&cfg)
            .arg("run")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the daemon");
        let sock = data.join("outwatch.sock");
        let deadline = Instant::now() + Duration::from_secs(120);
        while !(sock.exists() && run_cli(&bin, &cfg, &["lookup", "192.0.2.1", "--json"], 1).ok) {
            assert!(Instant::now() < deadline, "the daemon never answered");
            std::thread::sleep(Duration::from_millis(200));
        }
        let (rss, hwm) = rss_of(child.id());
        println!(
            "daemon pid {}: {rss:.0} MiB resident after start (peak {hwm:.0} MiB)",
            child.id()
        );
        daemon_child = Some(child);
    }
    let via = if daemon { "daemon" } else { "direct" };
    println!("| lookup ({via}) | first finding | total | lines | CLI peak RSS |");
    println!("|---|---|---|---|---|");
    for q in &queries {
        for (mode, first_at) in [("--jsonl", 1), ("--json", 2), ("table", 1)] {
            let mut a = vec!["lookup", q.as_str()];
            if mode != "table" {
                a.push(mode);
            }
            if let Some(n) = &limit {
                a.extend(["--limit", n.as_str()]);
            }
            let r = run_cli(&bin, &cfg, &a, first_at);
            print_run(&format!("`{q}` {mode}"), &r);
            if let Some(c) = &daemon_child {
                std::thread::sleep(Duration::from_secs(1));
                let (rss, hwm) = rss_of(c.id());
                println!(
                    "|   daemon after it: {rss:.0} MiB resident, peak so far {hwm:.0} MiB | | | | |"
                );
            }
        }
    }
    if ips > 0 {
        let q = queries
            .first()
            .expect("--ips needs a --query to take addresses from");
        let (hits, misses) = lookup_addresses(&bin, &cfg, q, ips);
        for (label, set) in [("hits", hits), ("random addresses", misses)] {
            let mut times: Vec<f64> = set
                .iter()
                .map(|ip| run_cli(&bin, &cfg, &["lookup", ip, "--json"], 1).total_ms)
                .collect();
            if times.is_empty() {
                continue;
            }
            let n = times.len();
            let (p50, p90, max) = (
                percentile(&mut times, 0.5),
                percentile(&mut times, 0.9),
                percentile(&mut times, 1.0),
            );
            println!(
                "`lookup IP --json` ({via}), {n} {label}: median {p50:.1} ms, p90 {p90:.1} ms, max {max:.1} ms"
            );
        }
    }
    if let Some(mut c) = daemon_child {
        // SAFETY: signals our own child.
        unsafe { libc::kill(c.id() as libc::pid_t, libc::SIGTERM) };
        let _ = c.wait();
    }
}
