//! The web view on a 1M-finding store (issue #24), a plain binary (`harness = false`).
//! Run: `cargo bench --bench web` (release profile). Method and figures: docs/performance.md,
//! "Web view".
//!
//! The store is the shared synthetic one (`benches/common`): 1M findings, one per distinct
//! address spread over all of IPv4, built once under `target/bench-store-1000000-internet`.
//! The server (`outwatch::web::serve`, as `outwatch serve` runs it) listens on 127.0.0.1:0 in
//! this process on a runtime of its own (loopback: no token); the clients are reqwest clients
//! on another runtime in the same process, on the same two cores, so every latency and the
//! memory include the clients' share.
//! 1. Reference: `Store::query` of a stored address, in process, without the server.
//! 2. Overview (`/`, `/overview.json`): the first request after start (the counts' walk over
//!    the store, unless the background refresh has them ready), then N sequential requests
//!    (the counts cached for 60 s): median, p99.
//! 3. An address page (`/lookup/IP`, `/lookup/IP.json`, `/api/v1/lookup/IP`) of random
//!    stored addresses, N sequential requests each: median, p99.
//! 4. 100 concurrent clients (one reqwest client, so one connection, each): each connects with
//!    a first request (all at once, timed apart), then, all connected, asks
//!    `/api/v1/lookup/IP` of random stored addresses 50 times back to back: median, p99, max,
//!    requests/s.
//!
//! Memory: this process's `VmRSS` sampled every 5 ms during 4, and `VmHWM` after each step
//! (the server, the store's cache and the clients together). Every latency is also given as a
//! ratio to the reference's median in the same run, so the machine's load cancels out.

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use outwatch::clock::SystemClock;
use outwatch::config::Config;
use outwatch::flows::sample::Rng;
use outwatch::store::{self, Query, QueryOptions, Store};
use outwatch::web::{self, Web};

mod common;
use common::{Layout, address, build_store, store_path};

const SEQUENTIAL: usize = 300;
const CLIENTS: usize = 100;
const PER_CLIENT: usize = 50;

/// `VmRSS` and `VmHWM` of this process, in MiB.
fn rss() -> (f64, f64) {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let get = |k: &str| {
        s.lines()
            .find(|l| l.starts_with(k))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<f64>().ok())
            .map_or(0.0, |kib| kib / 1024.0)
    };
    (get("VmRSS:"), get("VmHWM:"))
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Median, p99 and max of `v`, in ms.
fn stats(v: &mut [Duration]) -> (f64, f64, f64) {
    v.sort();
    let at = |p: f64| ms(v[((v.len() - 1) as f64 * p).round() as usize]);
    (at(0.5), at(0.99), ms(*v.last().unwrap()))
}

fn config(store: &Path) -> Config {
    let feeds_off: String = outwatch::sources::lists::known_feed_names(&Config::default())
        .iter()
        .map(|n| format!("[sources.{n}]\nenabled = false\n"))
        .collect();
    let text = format!(
        "[organisation]\nname = \"Bench\"\nprefixes = [\"10.0.0.0/8\"]\n\n[store]\npath = \"{}\"\n\n{feeds_off}",
        store.display()
    );
    let dir = tempfile::tempdir().unwrap().keep();
    let path = dir.join("outwatch.toml");
    std::fs::write(&path, &text).unwrap();
    Config::parse(&text, &path, &outwatch::sources::Registry).expect("bench config")
}

/// A random stored address.
fn stored(rng: &mut Rng, n: u64) -> IpAddr {
    IpAddr::V4(address(rng.next() % n, Layout::Internet))
}

/// GETs `url` and reads the whole body; panics on anything but 200.
async fn get(http: &reqwest::Client, url: &str) -> Duration {
    let t = Instant::now();
    let r = http.get(url).send().await.expect("request");
    assert!(r.status().is_success(), "{url}: {}", r.status());
    let body = r.bytes().await.expect("body");
    assert!(!body.is_empty(), "{url}: empty");
    t.elapsed()
}

fn line(label: &str, v: &mut [Duration], reference: f64) {
    let (p50, p99, max) = stats(v);
    println!(
        "| {label} | {} | {p50:.2} ms | {p99:.2} ms | {max:.1} ms | {:.0}× | {:.0}× | {:.0} MiB |",
        v.len(),
        p50 / reference,
        p99 / reference,
        rss().1
    );
}

/// Measures; the server runs on `server_rt` (its own threads, as `outwatch serve` has), the
/// clients on the caller's runtime.
async fn run(path: &Path, n: u64, server_rt: tokio::runtime::Handle) {
    let cfg = config(path);
    let store: Arc<dyn Store> = Arc::new(store::open(path).expect("open the store"));
    let (r0, h0) = rss();
    println!("store open: {r0:.0} MiB resident (peak {h0:.0} MiB)");

    // 1. The reference: a direct query of stored addresses.
    let mut rng = Rng(7);
    for _ in 0..200 {
        let q = Query::Ip(stored(&mut rng, n));
        store.query(&q, &QueryOptions::default()).unwrap();
    }
    let mut lat = Vec::with_capacity(2_000);
    let mut found = 0;
    for _ in 0..2_000 {
        let q = Query::Ip(stored(&mut rng, n));
        let t = Instant::now();
        found += store.query(&q, &QueryOptions::default()).unwrap().len();
        lat.push(t.elapsed());
    }
    assert_eq!(found, 2_000, "every stored address has its finding");
    let (reference, rp99, rmax) = stats(&mut lat);
    println!(
        "reference Store::query (2000 stored addresses): median {reference:.3} ms, p99 {rp99:.3} ms, max {rmax:.2} ms"
    );

    // The server.
    let listen: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let t = Instant::now();
    let (stop, rx) = tokio::sync::watch::channel(false);
    let (st, c) = (store.clone(), cfg.clone());
    let started = server_rt.spawn(async move {
        let state = Web::new(Arc::new(c.clone()), st, Arc::new(SystemClock), listen)
            .await
            .expect("web state");
        let listener = web::bind(&c, listen).await.expect("bind");
        let at = listener.local_addr().unwrap();
        (at, tokio::spawn(web::serve(listener, state, rx)))
    });
    let (at, server) = started.await.expect("server start");
    let base = format!("http://{at}");
    let http = reqwest::Client::new();
    let first = get(&http, &format!("{base}/overview.json")).await;
    println!(
        "server: state built and first /overview.json answered {:.0} ms after start (that request {:.0} ms)",
        ms(t.elapsed()),
        ms(first)
    );

    println!("| request | n | median | p99 | max | median / ref | p99 / ref | peak RSS so far |");
    println!("|---|---|---|---|---|---|---|---|");
    for path in ["/", "/overview.json"] {
        let url = format!("{base}{path}");
        for _ in 0..20 {
            get(&http, &url).await;
        }
        let mut v = Vec::with_capacity(SEQUENTIAL);
        for _ in 0..SEQUENTIAL {
            v.push(get(&http, &url).await);
        }
        line(&format!("`{path}`"), &mut v, reference);
    }
    for (label, pattern) in [
        ("/lookup/IP", "/lookup/{}"),
        ("/lookup/IP.json", "/lookup/{}.json"),
        ("/api/v1/lookup/IP", "/api/v1/lookup/{}"),
    ] {
        let mut v = Vec::with_capacity(SEQUENTIAL);
        for k in 0..SEQUENTIAL + 20 {
            let url = format!(
                "{base}{}",
                pattern.replace("{}", &stored(&mut rng, n).to_string())
            );
            let d = get(&http, &url).await;
            if k >= 20 {
                v.push(d);
            }
        }
        line(&format!("`{label}`"), &mut v, reference);
    }

    // 4. 100 concurrent clients.
    let sampling = Arc::new(AtomicBool::new(true));
    let sampler = {
        let on = sampling.clone();
        std::thread::spawn(move || {
            let mut top = 0f64;
            while on.load(Ordering::Relaxed) {
                top = top.max(rss().0);
                std::thread::sleep(Duration::from_millis(5));
            }
            top
        })
    };
    // Each client connects with a first request (timed apart), all wait for each other, then
    // each sends its measured requests back to back.
    let ready = Arc::new(tokio::sync::Barrier::new(CLIENTS + 1));
    // The clients are built first: building one (its TLS roots) is not the server's time.
    let clients: Vec<reqwest::Client> = (0..CLIENTS).map(|_| reqwest::Client::new()).collect();
    let mut tasks = Vec::with_capacity(CLIENTS);
    for (c, http) in clients.into_iter().enumerate() {
        let (base, ready) = (base.clone(), ready.clone());
        let mut r = Rng(1_000 + c as u64);
        tasks.push(tokio::spawn(async move {
            let url = format!("{base}/api/v1/lookup/{}", stored(&mut r, n));
            let first = get(&http, &url).await;
            ready.wait().await;
            let mut v = Vec::with_capacity(PER_CLIENT);
            for _ in 0..PER_CLIENT {
                let url = format!("{base}/api/v1/lookup/{}", stored(&mut r, n));
                v.push(get(&http, &url).await);
            }
            (first, v)
        }));
    }
    ready.wait().await;
    let t = Instant::now();
    let (mut firsts, mut all) = (Vec::new(), Vec::with_capacity(CLIENTS * PER_CLIENT));
    for task in tasks {
        let (first, v) = task.await.expect("client");
        firsts.push(first);
        all.extend(v);
    }
    let wall = t.elapsed().as_secs_f64();
    line(
        &format!("`/api/v1/lookup/IP`, {CLIENTS} clients connecting at once (first request)"),
        &mut firsts,
        reference,
    );
    sampling.store(false, Ordering::Relaxed);
    let top_rss = sampler.join().unwrap();
    line(
        &format!("`/api/v1/lookup/IP`, {CLIENTS} clients at once"),
        &mut all,
        reference,
    );
    println!(
        "{CLIENTS} clients × {PER_CLIENT} requests in {wall:.2} s = {:.0} requests/s; VmRSS sampled every 5 ms: top {top_rss:.0} MiB",
        (CLIENTS * PER_CLIENT) as f64 / wall
    );
    let (r1, h1) = rss();
    println!("after: {r1:.0} MiB resident, peak {h1:.0} MiB");
    let _ = stop.send(true);
    let _ = server.await;
}

fn main() {
    // `cargo test --benches` runs bench binaries with `--bench` absent; do nothing then.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let n: u64 = std::env::var("OUTWATCH_BENCH_FINDINGS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let path = store_path(n, Layout::Internet);
    build_store(&path, n, Layout::Internet);
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "{n} findings at {}; load average {}",
        path.display(),
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    );
    let runtime = || {
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .unwrap()
    };
    let server_rt = runtime();
    runtime().block_on(run(&path, n, server_rt.handle().clone()));
}
