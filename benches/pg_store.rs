//! PostgreSQL against sled, side by side (a plain binary, `harness = false`): the release
//! `outwatch` binary imports the same 1M-row reports into a fresh store of each backend, then
//! answers the same lookups. sled is the reference run: every PostgreSQL figure is also given as
//! a ratio to sled's in the same run, so the machine's load cancels out.
//!
//! Generate the reports first with the `shadowserver_import` bench, then:
//! `cargo bench --bench pg_store -- --internet FILE [--dense FILE] [--bin target/release/outwatch]
//! [--pg CONNINFO] [--ips N] [--rounds N]`.
//! - `--internet FILE` (`shadowserver_import --rows 1000000 --input internet --csv-out FILE`):
//!   the import (wall time, rows/s, the CLI's peak RSS from `wait4`), then `--ips N` (default
//!   30) `lookup IP --json` runs on addresses of stored findings and N on random addresses:
//!   median and p90.
//! - `--dense FILE` (`--input dense`): the import, then `lookup 10.0.0.0/8 --jsonl` (a million
//!   findings streamed): time to the first line, total, the CLI's peak RSS.
//!
//! `--pg` is the server (default `host=127.0.0.1 port=5432 user=postgres dbname=test sslmode=disable`); each
//! run makes a schema `bench_<random>` and drops it. The server's own memory is not counted
//! (it is not the client's). `--rounds N` repeats the imports, alternating the backends.
//! Method and figures: docs/performance.md, "PostgreSQL beside sled".

use std::path::{Path, PathBuf};

mod common;
use common::{lookup_addresses, run_cli};

/// A store of one backend: its config file, and the schema to drop for PostgreSQL.
struct Backend {
    name: &'static str,
    cfg: PathBuf,
    schema: Option<String>,
    _dir: tempfile::TempDir,
}

fn feeds_off() -> String {
    outwatch::sources::lists::known_feed_names(&outwatch::config::Config::default())
        .iter()
        .map(|n| format!("[sources.{n}]\nenabled = false\n"))
        .collect()
}

fn backend(pg: Option<&str>) -> Backend {
    let dir = tempfile::tempdir_in("/tmp").expect("temp dir");
    let cfg = dir.path().join("outwatch.toml");
    let (store, schema) = match pg {
        None => (
            format!("path = \"{}\"", dir.path().join("data").display()),
            None,
        ),
        Some(url) => {
            let schema = format!("bench_{:08x}", rand::random::<u32>());
            let mut c = postgres::Client::connect(url, postgres::NoTls).expect("the server");
            c.batch_execute(&format!("CREATE SCHEMA {schema}"))
                .expect("create schema");
            (
                format!(
                    "path = \"{}\"\nbackend = \"postgres\"\nurl = \"{url}\"\nschema = \"{schema}\"",
                    dir.path().join("data").display()
                ),
                Some(schema),
            )
        }
    };
    std::fs::write(
        &cfg,
        format!(
            "[organisation]\nname = \"Bench\"\nprefixes = [\"0.0.0.0/1\", \"128.0.0.0/1\"]\n\n\
             [store]\n{store}\n\n{}",
            feeds_off()
        ),
    )
    .expect("write config");
    Backend {
        name: if pg.is_some() { "postgres" } else { "sled" },
        cfg,
        schema,
        _dir: dir,
    }
}

fn drop_schema(url: &str, b: &Backend) {
    if let Some(s) = &b.schema
        && let Ok(mut c) = postgres::Client::connect(url, postgres::NoTls)
    {
        let _ = c.batch_execute(&format!("DROP SCHEMA IF EXISTS {s} CASCADE"));
    }
}

fn percentile(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[((v.len() - 1) as f64 * p).round() as usize]
}

/// Imports `csv` into a fresh store of each backend; returns the stores (sled first).
fn import_both(bin: &Path, url: &str, csv: &Path, label: &str) -> (Backend, Backend) {
    // Counted as a stream: a child's peak RSS (`wait4`) starts from this process's at the fork.
    let rows = {
        use std::io::BufRead;
        let mut r = std::io::BufReader::new(std::fs::File::open(csv).expect("the report"));
        let mut n = 0usize;
        loop {
            let buf = r.fill_buf().expect("read the report");
            if buf.is_empty() {
                break;
            }
            n += buf.iter().filter(|&&c| c == b'\n').count();
            let len = buf.len();
            r.consume(len);
        }
        n.saturating_sub(1)
    };
    let mut times = Vec::new();
    let mut out = Vec::new();
    for b in [backend(None), backend(Some(url))] {
        let csv = csv.to_str().expect("a UTF-8 path");
        let r = run_cli(
            bin,
            &b.cfg,
            &["import", "shadowserver", "--type", "scan_dns", csv],
            1,
        );
        let secs = r.total_ms / 1e3;
        println!(
            "| import {label} | {} | {secs:.2} s | {:.0} rows/s | {:.0} MiB |{}",
            b.name,
            rows as f64 / secs,
            r.peak_mib,
            if r.ok { "" } else { " FAILED" }
        );
        times.push(secs);
        out.push(b);
    }
    println!(
        "| import {label} | postgres / sled | {:.2}× the time | | |",
        times[1] / times[0]
    );
    let pg = out.pop().expect("two");
    let sled = out.pop().expect("two");
    (sled, pg)
}

fn ip_lookups(bin: &Path, stores: &[&Backend], n: usize) {
    let (hits, misses) = lookup_addresses(bin, &stores[0].cfg, "90.0.0.0/8", n);
    for (label, set) in [("hits", &hits), ("random addresses", &misses)] {
        let mut medians = Vec::new();
        for b in stores {
            // Alternated per address, so both backends see the same load.
            let mut times: Vec<f64> = set
                .iter()
                .map(|ip| run_cli(bin, &b.cfg, &["lookup", ip, "--json"], 1).total_ms)
                .collect();
            if times.is_empty() {
                continue;
            }
            let (p50, p90) = (percentile(&mut times, 0.5), percentile(&mut times, 0.9));
            println!(
                "| `lookup IP --json`, {} {label} | {} | median {p50:.1} ms | p90 {p90:.1} ms | |",
                times.len(),
                b.name
            );
            medians.push(p50);
        }
        if let [s, p] = medians[..] {
            println!(
                "| `lookup IP --json`, {label} | postgres / sled | {:.2}× | | |",
                p / s
            );
        }
    }
}

fn stream_slash8(bin: &Path, stores: &[&Backend]) {
    let mut totals = Vec::new();
    for b in stores {
        let r = run_cli(bin, &b.cfg, &["lookup", "10.0.0.0/8", "--jsonl"], 1);
        println!(
            "| `lookup 10.0.0.0/8 --jsonl` | {} | first line {:.0} ms, total {:.2} s, {} lines | | {:.0} MiB |{}",
            b.name,
            r.first_ms.unwrap_or(f64::NAN),
            r.total_ms / 1e3,
            r.lines,
            r.peak_mib,
            if r.ok { "" } else { " FAILED" }
        );
        totals.push(r.total_ms);
    }
    if let [s, p] = totals[..] {
        println!(
            "| `lookup 10.0.0.0/8 --jsonl` | postgres / sled | {:.2}× the time | | |",
            p / s
        );
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let (mut internet, mut dense, mut bin, mut url, mut ips, mut rounds) = (
        None::<PathBuf>,
        None::<PathBuf>,
        PathBuf::from("target/release/outwatch"),
        "host=127.0.0.1 port=5432 user=postgres dbname=test sslmode=disable".to_string(),
        30usize,
        1usize,
    );
    while let Some(a) = args.next() {
        match a.as_str() {
            "--internet" => internet = args.next().map(PathBuf::from),
            "--dense" => dense = args.next().map(PathBuf::from),
            "--bin" => bin = PathBuf::from(args.next().expect("--bin PATH")),
            "--pg" => url = args.next().expect("--pg CONNINFO"),
            "--ips" => ips = args.next().and_then(|v| v.parse().ok()).expect("--ips N"),
            "--rounds" => {
                rounds = args
                    .next()
                    .and_then(|v| v.parse().ok())
                    .expect("--rounds N")
            }
            _ => {} // `cargo bench` passes --bench
        }
    }
    let bin = std::fs::canonicalize(&bin).expect("the release binary (cargo build --release)");
    println!("| what | backend | time | rate / p90 | CLI peak RSS |");
    println!("|---|---|---|---|---|");
    for round in 0..rounds {
        if let Some(csv) = &internet {
            let (sled, pg) = import_both(&bin, &url, csv, "internet-wide");
            if round == 0 {
                ip_lookups(&bin, &[&sled, &pg], ips);
            }
            drop_schema(&url, &pg);
        }
        if let Some(csv) = &dense {
            let (sled, pg) = import_both(&bin, &url, csv, "dense");
            if round == 0 {
                stream_slash8(&bin, &[&sled, &pg]);
            }
            drop_schema(&url, &pg);
        }
    }
}
