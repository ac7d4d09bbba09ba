//! Benchmark: reading connection logs (issue #15, item 5: ≥ 1M Zeek TSV lines per second on
//! one core).
//!
//! Method: `outwatch::flows::sample::generate` writes N connections (default 2,000,000;
//! `FLOWS_LINES` changes it) with a fixed seed to a temporary file in each format (Zeek TSV,
//! Zeek JSON lines, nfdump 1.6 CSV, and the TSV gzipped). Each file is read once to warm the
//! page cache, then `read_path` reads it 3 times into a sink that sums a few fields; the best
//! wall time gives lines/s. Two references read the same file in the same run, so the figure
//! is also a ratio: a byte scan that counts line ends with `memchr` (what `wc -l` does: the
//! floor for anything that looks at every byte), and, when `python3` is there, Python's `csv`
//! module (`json.loads` for JSON lines) iterating the rows without converting them.
//!
//! Run: `cargo bench --bench flows` (release profile).

use std::hint::black_box;
use std::io::{BufWriter, Read, Write};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use outwatch::flows::read::{LogFormat, read_path};
use outwatch::flows::sample;

fn best<F: FnMut() -> u64>(runs: usize, mut f: F) -> (Duration, u64) {
    let mut best = Duration::MAX;
    let mut out = 0;
    for _ in 0..runs {
        let t = Instant::now();
        out = f();
        best = best.min(t.elapsed());
    }
    (best, out)
}

fn scan_lines(path: &Path) -> u64 {
    let mut f = std::fs::File::open(path).unwrap();
    let mut buf = vec![0u8; 128 * 1024];
    let mut n = 0u64;
    loop {
        let got = f.read(&mut buf).unwrap();
        if got == 0 {
            return n;
        }
        n += memchr::memchr_iter(b'\n', &buf[..got]).count() as u64;
    }
}

/// Seconds Python takes to iterate the rows (`None` without `python3`).
fn python_secs(path: &Path, format: LogFormat) -> Option<f64> {
    let body = match format {
        LogFormat::ZeekJson => "for line in f:\n    json.loads(line)\n",
        LogFormat::ZeekTsv => "for row in csv.reader(f, delimiter='\\t'):\n    pass\n",
        LogFormat::NfdumpCsv => "for row in csv.reader(f):\n    pass\n",
    };
    let script = format!(
        "import csv, json, sys, time\nt = time.perf_counter()\nwith open(sys.argv[1], newline='') as f:\n{}print(time.perf_counter() - t)\n",
        body.lines()
            .map(|l| format!("    {l}\n"))
            .collect::<String>()
    );
    let out = Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(path)
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    String::from_utf8_lossy(&out.stdout).trim().parse().ok()
}

fn main() {
    let lines: u64 = std::env::var("FLOWS_LINES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2_000_000);
    // `FLOWS_WRITE=PATH`: only write a generated Zeek TSV conn.log there (gzip when PATH ends
    // in `.gz`), for measuring `outwatch flows` itself.
    if let Ok(path) = std::env::var("FLOWS_WRITE") {
        let f = BufWriter::new(std::fs::File::create(&path).unwrap());
        if path.ends_with(".gz") {
            let mut e = flate2::write::GzEncoder::new(f, flate2::Compression::default());
            sample::generate(&mut e, lines, 1, LogFormat::ZeekTsv).unwrap();
            e.finish().unwrap().flush().unwrap();
        } else {
            let mut w = f;
            sample::generate(&mut w, lines, 1, LogFormat::ZeekTsv).unwrap();
            w.flush().unwrap();
        }
        println!("wrote {lines} lines to {path}");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    println!("flows: reading {lines} generated connections per format (best of 3, one thread)");
    println!(
        "{:<12} {:>9} {:>10} {:>12} {:>9} {:>14} {:>12}",
        "format", "MiB", "read s", "lines/s", "MB/s", "byte scan l/s", "python l/s"
    );
    let cases = [
        ("zeek_tsv", LogFormat::ZeekTsv, false),
        ("zeek_json", LogFormat::ZeekJson, false),
        ("nfdump_csv", LogFormat::NfdumpCsv, false),
        ("zeek_tsv.gz", LogFormat::ZeekTsv, true),
    ];
    for (name, format, gz) in cases {
        let path = dir.path().join(name);
        let t = Instant::now();
        {
            let f = std::fs::File::create(&path).unwrap();
            if gz {
                let mut e = flate2::write::GzEncoder::new(
                    BufWriter::new(f),
                    flate2::Compression::default(),
                );
                sample::generate(&mut e, lines, 1, format).unwrap();
                e.finish().unwrap().flush().unwrap();
            } else {
                let mut w = BufWriter::new(f);
                sample::generate(&mut w, lines, 1, format).unwrap();
                w.flush().unwrap();
            }
        }
        let gen_s = t.elapsed().as_secs_f64();
        let size = std::fs::metadata(&path).unwrap().len();
        let read = || {
            let mut sum = 0u64;
            let s = read_path(&path, &mut |c| {
                sum = sum
                    .wrapping_add(c.ts_us as u64)
                    .wrapping_add(c.orig_bytes.unwrap_or(0))
                    .wrapping_add(c.resp_port.unwrap_or(0) as u64)
                    .wrapping_add(c.service.map_or(0, str::len) as u64);
            })
            .unwrap();
            assert_eq!(s.connections, lines, "{name}: {:?}", s.errors);
            assert_eq!(s.rejected, 0);
            black_box(sum);
            s.connections
        };
        let _ = read(); // warm the page cache
        let (took, n) = best(3, read);
        let lps = n as f64 / took.as_secs_f64();
        let (scan, scanned) = best(3, || scan_lines(&path));
        let scan_lps = if gz {
            "-".to_string()
        } else {
            format!("{:.0}", scanned as f64 / scan.as_secs_f64())
        };
        let py = if gz { None } else { python_secs(&path, format) };
        println!(
            "{:<12} {:>9.1} {:>10.3} {:>12.0} {:>9.0} {:>14} {:>12}",
            name,
            size as f64 / (1024.0 * 1024.0),
            took.as_secs_f64(),
            lps,
            size as f64 / took.as_secs_f64() / 1e6,
            scan_lps,
            py.map_or("-".to_string(), |s| format!("{:.0}", scanned as f64 / s)),
        );
        if let Some(s) = py {
            println!(
                "{:<12} outwatch reads {:.1}x as fast as Python iterates; the byte scan is {:.1}x as fast as outwatch (generated in {gen_s:.1} s)",
                "",
                s / took.as_secs_f64(),
                took.as_secs_f64() / scan.as_secs_f64()
            );
        } else {
            println!("{:<12} (generated in {gen_s:.1} s)", "");
        }
    }
}
