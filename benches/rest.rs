//! A flow of 5 REST calls against a loopback server, runs per second at concurrency 1, 16 and
//! 256, next to a plain reqwest loop making the same 5 calls, in the same process and run.
//!
//! `cargo bench --bench rest`. The server is the simulator's unsigned `GET /auth/v2/ping`, so
//! the comparison measures the engine (templates, scheduling, records, the HTTP layer's checks)
//! rather than signing, which `cargo bench -p flowcat-nodes --bench sign` measures.
//!
//! For profiling: `FLOWCAT_BENCH_ONLY=engine` (or `reqwest`) measures one side only, and
//! `FLOWCAT_BENCH_PROBE=1` first prints the cost of one call through `http::send`, through the
//! engine and through reqwest, and the node timings of one run.

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod support;

use support::median;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use flowcat_engine::Catalog;
use flowcat_engine::diag::Source;
use flowcat_nodes::REGISTRY;
use flowcat_nodes::embed::Flowcat;

const FLOW: &str = r#"
id: bench.five
integrations: { api: { kind: http } }
inputs:
  tag: { type: string, default: bench }
nodes:
  - { id: c1, kind: rest_call, integration: api, method: GET, path: /auth/v2/ping, query: { tag: "{{inputs.tag}}" } }
  - { id: c2, kind: rest_call, integration: api, method: GET, path: /auth/v2/ping, after: [c1] }
  - { id: c3, kind: rest_call, integration: api, method: GET, path: /auth/v2/ping, after: [c2] }
  - { id: c4, kind: rest_call, integration: api, method: GET, path: /auth/v2/ping, after: [c3] }
  - { id: c5, kind: rest_call, integration: api, method: GET, path: /auth/v2/ping, after: [c4] }
outputs:
  time: "{{nodes.c5.body.response.time}}"
"#;

const WINDOW: Duration = Duration::from_secs(3);

async fn engine_rate(flowcat: Arc<Flowcat>, concurrency: usize) -> f64 {
    let done = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let tasks: Vec<_> = (0..concurrency)
        .map(|_| {
            let (f, done) = (flowcat.clone(), done.clone());
            tokio::spawn(async move {
                while start.elapsed() < WINDOW {
                    let rec = f.run("bench.five", serde_json::json!({})).await.expect("starts");
                    assert!(rec.error.is_none(), "{:?}", rec.error);
                    done.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.expect("task");
    }
    done.load(Ordering::Relaxed) as f64 / start.elapsed().as_secs_f64()
}

async fn reqwest_rate(client: reqwest::Client, url: String, concurrency: usize) -> f64 {
    let done = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let tasks: Vec<_> = (0..concurrency)
        .map(|_| {
            let (client, url, done) = (client.clone(), url.clone(), done.clone());
            tokio::spawn(async move {
                while start.elapsed() < WINDOW {
                    for i in 0..5 {
                        let u = if i == 0 { format!("{url}?tag=bench") } else { url.clone() };
                        let r = client.get(&u).timeout(Duration::from_secs(30)).send().await.expect("sent");
                        let body: serde_json::Value =
                            serde_json::from_slice(&r.bytes().await.expect("body")).expect("json");
                        assert_eq!(body["stat"], "OK");
                    }
                    done.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.expect("task");
    }
    done.load(Ordering::Relaxed) as f64 / start.elapsed().as_secs_f64()
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    rt.block_on(async {
        let (sim, file) = support::loopback_sim().await;
        let catalog = Catalog::load(vec![Arc::new(Source { path: "five.yaml".into(), text: FLOW.into() })], &REGISTRY);
        let flowcat = Arc::new(Flowcat::new(catalog, file.clone()));
        // The workspace's reqwest has no crypto provider of its own (flowcat-nodes configures
        // rustls itself): install ring's for this plain client.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client");
        let url = format!("http://{}/auth/v2/ping", sim.addr());
        if std::env::var("FLOWCAT_BENCH_PROBE").is_ok() {
            let integration = file.list[0].clone();
            let (client, url, f2) = (client.clone(), url.clone(), flowcat.clone());
            tokio::spawn(async move {
                let clients = flowcat_nodes::http::Clients::new();
                let call = flowcat_nodes::http::Call::new("GET", "/auth/v2/ping");
                for _ in 0..3 {
                    let t = Instant::now();
                    for _ in 0..400 {
                        f2.run("bench.five", serde_json::json!({})).await.expect("run");
                    }
                    println!("per call via engine: {:?}", t.elapsed() / 2000);
                    let t = Instant::now();
                    let rec = f2.run("bench.five", serde_json::json!({})).await.expect("run");
                    let total = t.elapsed();
                    let nodes: Vec<String> = rec
                        .nodes
                        .iter()
                        .map(|n| {
                            format!(
                                "{}:{:.0}µs@{}",
                                n.id,
                                n.duration_ms.unwrap_or_default() * 1000.0,
                                n.started_at.unwrap_or_default() - rec.started_at
                            )
                        })
                        .collect();
                    println!("one run {total:?}: {}", nodes.join(" "));
                    let t = Instant::now();
                    for _ in 0..2000 {
                        flowcat_nodes::http::send(&clients, &integration, &call).await.expect("sent");
                    }
                    let send = t.elapsed() / 2000;
                    let t = Instant::now();
                    for _ in 0..2000 {
                        let r = client.get(&url).timeout(Duration::from_secs(30)).send().await.expect("sent");
                        let _ = r.bytes().await.expect("body");
                    }
                    println!("per call: http::send {send:?}, reqwest {:?}", t.elapsed() / 2000);
                }
            })
            .await
            .expect("probe");
        }
        println!("| concurrency | flowcat runs/s | reqwest loop runs/s | ratio |");
        println!("|---:|---:|---:|---:|");
        // `FLOWCAT_BENCH_ONLY=engine` (or `reqwest`) measures one side, for profiling.
        let only = std::env::var("FLOWCAT_BENCH_ONLY").unwrap_or_default();
        // Three rounds per concurrency, alternating the two sides, medians reported: on two
        // cores shared with the server, single 3-second windows vary by ±20 %.
        for c in [1, 16, 256] {
            let mut plain = Vec::new();
            let mut engine = Vec::new();
            for _ in 0..3 {
                plain.push(if only == "engine" { 1.0 } else { reqwest_rate(client.clone(), url.clone(), c).await });
                engine.push(if only == "reqwest" { 1.0 } else { engine_rate(flowcat.clone(), c).await });
            }
            let (plain, engine) = (median(plain), median(engine));
            println!("| {c} | {engine:.0} | {plain:.0} | {:.0} % |", engine / plain * 100.0);
        }
        sim.shutdown().await;
    });
}
