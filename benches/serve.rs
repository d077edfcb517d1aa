//! `flowcat serve` against the embedding API (issue 14), in one process against one in-process
//! simulator on loopback:
//!
//! - 1,000 runs started at once through the HTTP API (`POST /v1/flows/bench.one/runs?wait=60s`
//!   over loopback, one connection per request in flight) and 1,000 through
//!   `Flowcat::run_durably`, alternated, three rounds each; both journaled (a SQLite journal each,
//!   in a temporary folder). Throughput, and p50/p99 of each run's latency as its caller sees it;
//!   the service's share is the difference.
//! - Memory: 10,000 runs of `bench.signal` (one ping, then a `wait_for` whose signal never comes)
//!   started through the API, RSS growth once every one is parked in memory; then every one
//!   evicted to the journal (`Runs::sweep` an hour later) and RSS again.
//!
//! `cargo bench --bench serve`. Numbers in docs/benchmarks.md.

mod support;

use support::{median, rss};

use std::sync::Arc;
use std::time::{Duration, Instant};

use flowcat_engine::Catalog;
use flowcat_engine::diag::Source;
use flowcat_nodes::REGISTRY;
use flowcat_nodes::embed::Flowcat;
use flowcat_nodes::hall::Durably;
use serde_json::Value;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// One REST call: what the service adds is not hidden behind a long flow.
const ONE: &str = r#"
id: bench.one
integrations: { api: { kind: http } }
nodes:
  - { id: ping, kind: rest_call, integration: api, method: GET, path: /auth/v2/ping }
outputs:
  time: "{{nodes.ping.body.response.time}}"
"#;

/// A run parked on a `wait_for` after one ping: a signal that never comes, within the hour.
const SIGNAL: &str = r#"
id: bench.signal
integrations: { api: { kind: http } }
nodes:
  - { id: first, kind: rest_call, integration: api, method: GET, path: /auth/v2/ping }
  - { id: approval, kind: wait_for, signal: approval, payload: { approved: boolean }, timeout: 1h, after: [first] }
"#;

const TOKEN: &str = "bench-token-0123456789abcdef0123456789";
const RUNS: usize = 1000;
const PARKED: usize = 10_000;
const ROUNDS: usize = 3;

/// Runs per second and latency percentiles (ms) of one round.
#[derive(Clone, Copy, Debug)]
struct Round {
    rate: f64,
    p50: f64,
    p99: f64,
}

fn round_of(elapsed: Duration, mut ms: Vec<f64>) -> Round {
    ms.sort_by(f64::total_cmp);
    let at = |p: f64| ms[((ms.len() - 1) as f64 * p).round() as usize];
    Round { rate: ms.len() as f64 / elapsed.as_secs_f64(), p50: at(0.50), p99: at(0.99) }
}

/// `n` runs of `bench.one` at once through the API, each waiting for its record.
async fn over_http(client: &reqwest::Client, base: &str, n: usize) -> Round {
    let url = format!("{base}/v1/flows/bench.one/runs?wait=60s");
    let start = Instant::now();
    let tasks: Vec<_> = (0..n)
        .map(|_| {
            let (client, url) = (client.clone(), url.clone());
            tokio::spawn(async move {
                let t0 = Instant::now();
                let answer = client
                    .post(&url)
                    .bearer_auth(TOKEN)
                    .header("content-type", "application/json")
                    .body("{}")
                    .send()
                    .await
                    .expect("an answer");
                let status = answer.status().as_u16();
                let body = answer.bytes().await.expect("a body");
                let ms = t0.elapsed().as_secs_f64() * 1e3;
                assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
                let v: Value = serde_json::from_slice(&body).expect("JSON");
                assert_eq!(v["record"]["status"], "succeeded", "{v}");
                ms
            })
        })
        .collect();
    let mut ms = Vec::with_capacity(n);
    for t in tasks {
        ms.push(t.await.expect("task"));
    }
    round_of(start.elapsed(), ms)
}

/// The same `n` runs at once through the embedding API.
async fn in_process(flowcat: &Arc<Flowcat>, n: usize) -> Round {
    let start = Instant::now();
    let tasks: Vec<_> = (0..n)
        .map(|_| {
            let f = flowcat.clone();
            tokio::spawn(async move {
                let t0 = Instant::now();
                let ran = f.run_durably("bench.one", serde_json::Map::new(), Durably::default()).await.expect("runs");
                let ms = t0.elapsed().as_secs_f64() * 1e3;
                assert!(ran.record().error.is_none(), "{:?}", ran.record().error);
                ms
            })
        })
        .collect();
    let mut ms = Vec::with_capacity(n);
    for t in tasks {
        ms.push(t.await.expect("task"));
    }
    round_of(start.elapsed(), ms)
}

/// The value of the metric line `name` (exact labels) of the service.
fn metric(app: &flowcat_serve::App, name: &str) -> f64 {
    let text = app.runs.metrics.render();
    let line = text.lines().find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '));
    line.and_then(|l| l.rsplit(' ').next()?.parse().ok()).unwrap_or(f64::NAN)
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let dir = std::env::temp_dir().join(format!("flowcat-bench-serve-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("a folder");
    rt.block_on(async {
        let (sim, file) = support::loopback_sim().await;
        let sources = vec![
            Arc::new(Source { path: "one.yaml".into(), text: ONE.into() }),
            Arc::new(Source { path: "signal.yaml".into(), text: SIGNAL.into() }),
        ];
        let catalog = || Catalog::load(sources.clone(), &REGISTRY);

        // The service, on a loopback port, with a journal of its own.
        let config = format!(
            "listen: 127.0.0.1:0\nintegrations: bench.yaml\ntokens:\n  - name: bench\n    sha256: {}\n    \
             flows: ['bench.*']\n    signals: ['*']\nlimits:\n  max_runs_per_token: 10000\n  request_timeout: 120s\n  \
             max_wait: 90s\n",
            flowcat_serve::auth::hex(&flowcat_serve::auth::hash(TOKEN))
        );
        let config = flowcat_serve::Config::parse(&config, "bench-serve.yaml", &dir).expect("config");
        let store = Arc::new(flowcat_journal::Journal::open(&dir.join("serve")).expect("a journal"));
        let app = flowcat_serve::App::new(config, catalog(), file.clone(), store);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("a port");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let (stop, signals) = tokio::sync::watch::channel(0u32);
        let served = tokio::spawn(flowcat_serve::serve(listener, app.clone(), signals));
        // Plain HTTP on loopback; reqwest is built without a default TLS provider.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::Client::builder().pool_max_idle_per_host(RUNS).build().expect("a client");

        // The embedding API, with a journal of its own.
        let journal = flowcat_journal::Journal::open(&dir.join("embed")).expect("a journal");
        let embedded = Arc::new(Flowcat::new(catalog(), file.clone()).with_store(Arc::new(journal)));

        // Warm-up: connections, the journals' first runs, the allocator.
        over_http(&client, &base, 100).await;
        in_process(&embedded, 100).await;

        println!("| round | path | runs/s | p50 ms | p99 ms |");
        println!("|---:|---|---:|---:|---:|");
        let (mut http, mut embed) = (Vec::new(), Vec::new());
        for round in 1..=ROUNDS {
            let h = over_http(&client, &base, RUNS).await;
            println!("| {round} | HTTP API | {:.0} | {:.1} | {:.1} |", h.rate, h.p50, h.p99);
            let e = in_process(&embedded, RUNS).await;
            println!("| {round} | embedding API | {:.0} | {:.1} | {:.1} |", e.rate, e.p50, e.p99);
            http.push(h);
            embed.push(e);
        }
        let m = |v: &[Round], f: fn(&Round) -> f64| median(v.iter().map(f).collect());
        let (hr, er) = (m(&http, |r| r.rate), m(&embed, |r| r.rate));
        let (h50, e50) = (m(&http, |r| r.p50), m(&embed, |r| r.p50));
        let (h99, e99) = (m(&http, |r| r.p99), m(&embed, |r| r.p99));
        println!(
            "median of {ROUNDS}: HTTP {hr:.0} runs/s, embedding {er:.0} runs/s ({:.0} %); p50 {h50:.1} against \
             {e50:.1} ms (+{:.1} ms); p99 {h99:.1} against {e99:.1} ms (+{:.1} ms)",
            hr / er * 100.0,
            h50 - e50,
            h99 - e99
        );

        // Memory: 10,000 runs parked on a `wait_for`, started through the API, 64 requests at once.
        let before = rss();
        let started = Instant::now();
        let url = format!("{base}/v1/flows/bench.signal/runs");
        let workers: Vec<_> = (0..64)
            .map(|w| {
                let (client, url) = (client.clone(), url.clone());
                tokio::spawn(async move {
                    for _ in (w..PARKED).step_by(64) {
                        let answer = client
                            .post(&url)
                            .bearer_auth(TOKEN)
                            .header("content-type", "application/json")
                            .body("{}")
                            .send()
                            .await
                            .expect("an answer");
                        assert_eq!(answer.status().as_u16(), 202);
                    }
                })
            })
            .collect();
        for w in workers {
            w.await.expect("worker");
        }
        let memory = "flowcat_runs_waiting{held=\"memory\"}";
        while metric(&app, memory) < PARKED as f64 {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let took = started.elapsed();
        tokio::time::sleep(Duration::from_secs(2)).await;
        let parked = rss();
        println!(
            "parked: {PARKED} runs waiting in memory after {:.1} s ({:.0} starts/s): RSS +{:.1} MiB, {:.1} KiB each",
            took.as_secs_f64(),
            PARKED as f64 / took.as_secs_f64(),
            (parked - before) as f64 / (1 << 20) as f64,
            (parked - before) as f64 / PARKED as f64 / 1024.0
        );
        let evicting = Instant::now();
        app.runs.sweep(tokio::time::Instant::now() + Duration::from_secs(3600));
        let journal = "flowcat_runs_waiting{held=\"journal\"}";
        while metric(&app, journal) < PARKED as f64 || metric(&app, memory) > 0.0 {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let took = evicting.elapsed();
        tokio::time::sleep(Duration::from_secs(2)).await;
        let evicted = rss();
        println!(
            "evicted: {PARKED} runs left memory in {:.1} s, all in the journal; RSS {:+.1} MiB from before they \
             started ({:.1} KiB each), {:+.1} MiB from parked",
            took.as_secs_f64(),
            (evicted - before) as f64 / (1 << 20) as f64,
            (evicted - before) as f64 / PARKED as f64 / 1024.0,
            (evicted - parked) as f64 / (1 << 20) as f64
        );
        stop.send_replace(1);
        let _ = served.await;
        sim.shutdown().await;
    });
    let _ = std::fs::remove_dir_all(&dir);
}
