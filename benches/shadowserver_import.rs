//! Shadowserver import benchmark (a plain binary, `harness = false`).
//!
//! Generates an N-row `scan_dns` report in the current column layout (16 columns, ~230 bytes a
//! row, every row a distinct host, half of them in scope), then measures
//! 1. parse + normalise only (findings dropped), and
//! 2. the whole `outwatch import shadowserver` path (`pipeline::import::shadowserver_files`:
//!    stream, normalise, scope, one unit of the apply path into a fresh sled store, flush).
//!
//! Run: `cargo bench --bench shadowserver_import -- [--rows N] [--phase parse|import|both]
//! [--input dense|shuffled|sparse|internet] [--csv-out FILE]`. The inputs:
//! - `dense` (default): hosts 10.0.0.0 upwards in address order, 75 % with a host name under
//!   `dyn.example.net`;
//! - `shuffled` (or `--shuffled`): hosts spread over 10.0.0.0/8 in random order, as real
//!   reports list them by time, not address;
//! - `sparse`: 64 random /16s, random order, 60 % with a host name;
//! - `internet`: all of IPv4 in random order, 75 % with a PTR name under one of three ISP
//!   domains (`example-isp.net` and two others, ~250,000 names each).
//!
//! `--phase fetch`: the same file fetched through the Shadowserver Reports API path
//! (`Runner::run_source`: list, download, stream into the store) from a recorded API on
//! loopback, a `python3` process serving `reports/list` and the download (so its memory is
//! not ours).
//!
//! Each run also times Python's `csv.DictReader` reading the same file (`python3`, in the same
//! run, so the ratio holds whatever the machine's load) and prints the ratio.
//! Peak memory: VmHWM of this process (printed), or `/usr/bin/time -v`.
//! Method and figures: docs/performance.md, "Shadowserver import".

use std::io::{BufWriter, Write};
use std::path::Path;
use std::time::Instant;

use outwatch::finding::FindingView;
use outwatch::pipeline::import::shadowserver_files;
use outwatch::scope::{ScopeMatcher, ScopeSnapshot};
use outwatch::sources::shadowserver::import::{ImportOptions, RawNaming, read_csv};
use outwatch::sources::shadowserver::importer::Inputs;
use outwatch::sources::shadowserver::schema::Schema;
use outwatch::sources::{RowError, RowSink};
use outwatch::store::{FindingWriter, SledStore, Store, StoreError};

const HEADER: &str = "\"timestamp\",\"severity\",\"ip\",\"protocol\",\"port\",\"hostname\",\"tag\",\"asn\",\"geo\",\"region\",\"city\",\"naics\",\"hostname_source\",\"sector\",\"dns_version\",\"min_amplification\"\n";

/// The generated inputs (see the header).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Input {
    Dense,
    Shuffled,
    Sparse,
    Internet,
}

fn generate(path: &Path, rows: usize, input: Input) -> std::io::Result<u64> {
    let mut w = BufWriter::with_capacity(1 << 20, std::fs::File::create(path)?);
    w.write_all(HEADER.as_bytes())?;
    let versions = [
        "dnsmasq-2.80",
        "9.11.4-P2-RedHat-9.11.4-26.P2.el7",
        "Microsoft DNS 6.1.7601",
        "",
        "unbound 1.9.0",
    ];
    let cities = [
        ("NL", "NOORD-HOLLAND", "AMSTERDAM"),
        ("DE", "HESSEN", "FRANKFURT AM MAIN"),
        ("US", "VIRGINIA", "ASHBURN"),
    ];
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    // 64 random /16s for `sparse`.
    let sixteens: Vec<u32> = (0..64u32)
        .map(|k| (k.wrapping_mul(2_246_822_519) ^ 0x2c1b_3c6d) & 0xffff)
        .collect();
    let isps = [
        "example-isp.net",
        "broadband.example.com",
        "cust.example.org",
    ];
    for i in 0..rows {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        // 10.0.0.0 upwards, one distinct host per row; `shuffled` spreads them over 10.0.0.0/8 in
        // random order (an odd multiplier is a bijection modulo 2^24).
        let spread = (i as u32).wrapping_mul(2_654_435_761);
        let ip = match input {
            Input::Dense => 0x0a00_0000u32 + i as u32,
            Input::Shuffled => 0x0a00_0000u32 + (spread & 0x00ff_ffff),
            Input::Sparse => {
                let j = spread & 0x003f_ffff;
                (sixteens[(j >> 16) as usize] << 16) | (j & 0xffff)
            }
            Input::Internet => spread ^ 0x5a5a_5a5a,
        };
        let (a, b, c, d) = (ip >> 24, (ip >> 16) & 255, (ip >> 8) & 255, ip & 255);
        let (geo, region, city) = cities[(x % 3) as usize];
        let named = match input {
            Input::Sparse => x % 10 < 6,
            _ => !x.is_multiple_of(4),
        };
        let host = if !named {
            String::new()
        } else if matches!(input, Input::Dense | Input::Shuffled) {
            format!("\"host-{b}-{c}-{d}.dyn.example.net\"")
        } else {
            let isp = isps[((x >> 56) % 3) as usize];
            format!("\"{a}-{b}-{c}-{d}.dyn.{isp}\"")
        };
        let tag = if x.is_multiple_of(10) {
            "openresolver;bogusresolver"
        } else {
            "openresolver"
        };
        writeln!(
            w,
            "\"2026-11-20 {:02}:{:02}:{:02}\",\"medium\",\"{a}.{b}.{c}.{d}\",\"udp\",53,{host},\"{tag}\",{},\"{geo}\",\"{region}\",\"{city}\",{},\"ptr\",\"Communications, Service Provider, and Hosting Service\",\"{}\",{}.{}",
            (x >> 8) % 24,
            (x >> 16) % 60,
            (x >> 24) % 60,
            64496 + (x >> 32) % 16,
            if x.is_multiple_of(5) { 0 } else { 517311 },
            versions[((x >> 40) % 5) as usize],
            (x >> 44) % 60,
            (x >> 50) % 10,
        )?;
    }
    w.flush()?;
    Ok(std::fs::metadata(path)?.len())
}

/// Counts and drops findings.
#[derive(Default)]
struct Count {
    ok: usize,
    bad: usize,
}

impl RowSink for Count {
    fn finding(&mut self, f: &FindingView<'_>) -> Result<(), StoreError> {
        std::hint::black_box(f);
        self.ok += 1;
        Ok(())
    }
    fn rejected(&mut self, _e: RowError) {
        self.bad += 1;
    }
}

/// Encodes findings as sled's bulk path does (records, homes, postings) and drops each full
/// chunk unstored.
struct Prepare<W> {
    encoder: W,
    ok: usize,
}

impl<W: FindingWriter> RowSink for Prepare<W> {
    fn finding(&mut self, f: &FindingView<'_>) -> Result<(), StoreError> {
        self.encoder.view(f)?;
        self.ok += 1;
        Ok(())
    }
    fn rejected(&mut self, _e: RowError) {}
}

fn peak_rss_mib() -> Option<f64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let l = s.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = l.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

fn main() {
    let mut rows = 1_000_000usize;
    let mut phase = "both".to_string();
    let mut input = Input::Dense;
    // `--csv-out FILE`: only write the report (to time `outwatch import` itself).
    let mut csv_out: Option<String> = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--rows" => rows = args.next().and_then(|v| v.parse().ok()).expect("--rows N"),
            "--phase" => {
                phase = args
                    .next()
                    .expect("--phase parse|prepare|import|fetch|both")
            }
            "--shuffled" => input = Input::Shuffled,
            "--input" => {
                input = match args.next().as_deref() {
                    Some("dense") => Input::Dense,
                    Some("shuffled") => Input::Shuffled,
                    Some("sparse") => Input::Sparse,
                    Some("internet") => Input::Internet,
                    other => panic!("--input dense|shuffled|sparse|internet, not {other:?}"),
                }
            }
            "--csv-out" => csv_out = args.next(),
            _ => {} // `cargo bench` passes --bench
        }
    }
    if let Some(out) = csv_out {
        let bytes = generate(Path::new(&out), rows, input).expect("generate");
        println!(
            "wrote {rows} rows, {:.1} MiB, to {out}",
            bytes as f64 / 1048576.0
        );
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let csv = dir.path().join("2026-11-20-scan_dns-bench-asn.csv");
    let t = Instant::now();
    let bytes = generate(&csv, rows, input).expect("generate");
    println!(
        "generated {rows} rows ({input:?}), {:.1} MiB in {:.2?}",
        bytes as f64 / 1048576.0,
        t.elapsed()
    );
    let python = python_rows_per_s(&csv, rows);
    let schema = Schema::bundled();
    let scope = ScopeMatcher::new(&ScopeSnapshot {
        prefixes: vec!["10.0.0.0/13".parse().unwrap()],
        ..Default::default()
    });
    // Streams the report into `sink`; the rows read and the seconds it took.
    let read = |sink: &mut dyn RowSink| {
        let t = Instant::now();
        let f = std::io::BufReader::with_capacity(256 * 1024, std::fs::File::open(&csv).unwrap());
        let naming = RawNaming {
            prefix: csv.display().to_string(),
            separator: ":",
        };
        let o = read_csv(f, &naming, "scan_dns", &schema, &scope, sink).unwrap();
        (o.rows, t.elapsed().as_secs_f64())
    };
    if phase == "parse" || phase == "both" {
        let mut sink = Count::default();
        let (read_rows, s) = read(&mut sink);
        assert_eq!(read_rows, rows);
        assert_eq!(sink.bad, 0);
        println!(
            "parse+normalise: {rows} rows in {s:.2} s = {:.0} rows/s ({:.0} MiB/s)",
            rows as f64 / s,
            bytes as f64 / 1048576.0 / s
        );
    }
    if phase == "prepare" {
        let mut sink = Prepare {
            encoder: outwatch::store::sled_store::bench_encoder(chrono::DateTime::UNIX_EPOCH),
            ok: 0,
        };
        let (read_rows, s) = read(&mut sink);
        assert_eq!(read_rows, rows);
        assert_eq!(sink.ok, rows);
        println!(
            "parse+normalise+encode (no store): {rows} rows in {s:.2} s = {:.0} rows/s",
            rows as f64 / s
        );
    }
    if phase == "import" || phase == "both" {
        let store: std::sync::Arc<dyn Store> =
            std::sync::Arc::new(SledStore::open(&dir.path().join("store")).expect("store"));
        let t = Instant::now();
        let opts = ImportOptions {
            schema: &schema,
            scope: &scope,
            report_type: None,
        };
        let inputs = Inputs {
            files: std::slice::from_ref(&csv),
            ..Default::default()
        };
        let done = shadowserver_files(
            store.clone(),
            &opts,
            &inputs,
            chrono::Utc::now(),
            &chrono::Utc::now,
            &indicatif::ProgressBar::hidden(),
        )
        .expect("import");
        let (sum, in_scope) = (done.summary, done.run.in_scope);
        let before_flush = t.elapsed().as_secs_f64();
        store.flush().unwrap();
        let s = t.elapsed().as_secs_f64();
        println!(
            "of which the final flush to disk: {:.2} s",
            s - before_flush
        );
        assert_eq!(sum.rows, rows);
        assert_eq!(sum.imported, rows);
        println!(
            "import into a fresh store: {rows} rows in {s:.2} s = {:.0} rows/s ({in_scope} in scope, {} findings stored)",
            rows as f64 / s,
            store.count().unwrap()
        );
        if let Some(py) = python {
            println!(
                "import / csv.DictReader = {:.2} (DictReader {py:.0} rows/s)",
                rows as f64 / s / py
            );
        }
        let mut size = 0u64;
        for e in walk(&dir.path().join("store")) {
            size += e;
        }
        println!("store size on disk: {:.0} MiB", size as f64 / 1048576.0);
    }
    if phase == "fetch" {
        fetch(&csv, dir.path(), rows, python);
    }
    if let Some(m) = peak_rss_mib() {
        println!("peak RSS (VmHWM): {m:.0} MiB");
    }
}

/// A recorded Reports API on loopback: `POST /api2/reports/list` lists one `scan_dns` report,
/// `GET /dl/ID` sends the file (with its length). Runs as its own `python3` process.
const API_SERVER: &str = r#"
import http.server, json, os, shutil, sys
path = sys.argv[1]
class H(http.server.BaseHTTPRequestHandler):
    def log_message(self, *a): pass
    def do_POST(self):
        self.rfile.read(int(self.headers.get('Content-Length', 0)))
        body = json.dumps([{"report": "bench", "file": "2026-11-20-scan_dns-bench-asn.csv",
            "type": "scan_dns", "id": "BENCHREPORT", "timestamp": "2026-11-20"}]).encode()
        self.send_response(200); self.send_header('Content-Type', 'application/json')
        self.send_header('Content-Length', str(len(body))); self.end_headers(); self.wfile.write(body)
    def do_GET(self):
        self.send_response(200); self.send_header('Content-Type', 'text/csv')
        self.send_header('Content-Length', str(os.path.getsize(path))); self.end_headers()
        with open(path, 'rb') as f: shutil.copyfileobj(f, self.wfile, 1 << 20)
s = http.server.HTTPServer(('127.0.0.1', 0), H)
print(s.server_address[1], flush=True)
s.serve_forever()
"#;

/// Fetches `csv` through the Reports API path into a fresh store and prints the figures.
fn fetch(csv: &Path, dir: &Path, rows: usize, python: Option<f64>) {
    use outwatch::clock::SystemClock;
    use outwatch::config::{Config, HttpConfig};
    use outwatch::http::HttpClient;
    use outwatch::pipeline::Runner;
    use outwatch::secret::Secret;
    use outwatch::sources::SourceKind;
    use outwatch::sources::shadowserver::ShadowserverConfig;
    use std::io::BufRead;
    use std::sync::Arc;

    let mut server = std::process::Command::new("python3")
        .args(["-c", API_SERVER])
        .arg(csv)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python3 API server");
    let mut port = String::new();
    std::io::BufReader::new(server.stdout.take().unwrap())
        .read_line(&mut port)
        .unwrap();
    let base = format!("http://127.0.0.1:{}", port.trim());
    let cfg = ShadowserverConfig {
        enabled: true,
        schedule: None,
        base_url: Some(format!("{base}/api2/")),
        download_url: Some(format!("{base}/dl/")),
        api_key: Some(Secret::new("bench-key")),
        api_key_env: None,
        secret: Some(Secret::new("bench-secret")),
        secret_env: None,
        types: vec![],
        reports: vec![],
        resolve_after: None,
        schema_url: None,
        allow_plain_http: false,
    };
    let store: Arc<dyn Store> = Arc::new(SledStore::open(&dir.join("fetched")).expect("store"));
    let clock: Arc<dyn outwatch::clock::Clock> = Arc::new(SystemClock);
    let scope = ScopeSnapshot {
        prefixes: vec!["10.0.0.0/13".parse().unwrap()],
        ..Default::default()
    };
    let mut runner = Runner::new(
        store.clone(),
        HttpClient::new(&HttpConfig::default(), clock.clone()).unwrap(),
        Arc::new(ScopeMatcher::new(&scope)),
        clock,
    );
    // Downloads spill into the data folder, as the daemon's do.
    runner.temp_dir = dir.join("fetched");
    let src = SourceKind::build(&cfg, &Config::default()).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let t = Instant::now();
    let rep = rt.block_on(runner.run_source(src.as_ref()));
    let s = t.elapsed().as_secs_f64();
    let _ = server.kill();
    let _ = server.wait();
    assert!(rep.ok, "{rep:?}");
    assert_eq!(rep.new, rows, "{rep:?}");
    println!(
        "fetch through the Reports API (loopback): {rows} rows in {s:.2} s = {:.0} rows/s",
        rows as f64 / s
    );
    if let Some(py) = python {
        println!(
            "fetch / csv.DictReader = {:.2} (DictReader {py:.0} rows/s)",
            rows as f64 / s / py
        );
    }
    let size: u64 = walk(&dir.join("fetched")).iter().sum();
    println!("store size on disk: {:.0} MiB", size as f64 / 1048576.0);
}

/// Rows per second of Python's `csv.DictReader` reading `csv` (the reference of the issue),
/// run now, on the same machine, under the same CPU affinity.
fn python_rows_per_s(csv: &Path, rows: usize) -> Option<f64> {
    let script = "import csv,sys,time\nt=time.perf_counter()\nn=0\nwith open(sys.argv[1],newline='') as f:\n  for r in csv.DictReader(f): n+=1\nprint(n, time.perf_counter()-t)";
    let out = std::process::Command::new("python3")
        .args(["-c", script])
        .arg(csv)
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let mut it = text.split_whitespace();
    let n: usize = it.next()?.parse().ok()?;
    let secs: f64 = it.next()?.parse().ok()?;
    assert_eq!(n, rows, "csv.DictReader read another number of rows");
    let r = n as f64 / secs;
    println!("python3 csv.DictReader: {n} rows in {secs:.2} s = {r:.0} rows/s");
    Some(r)
}

fn walk(p: &Path) -> Vec<u64> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(p) {
        for e in rd.flatten() {
            // sled may remove a temporary file between listing and stat.
            let Ok(m) = e.metadata() else { continue };
            if m.is_dir() {
                out.extend(walk(&e.path()));
            } else {
                out.push(m.len());
            }
        }
    }
    out
}
