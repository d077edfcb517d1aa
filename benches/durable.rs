//! The journal's cost to a whole run: a flow of 5 REST calls against the loopback simulator,
//! runs per second at concurrency 1 and 16, journaled (the SQLite journal in a temporary
//! folder) and not, side by side in one process, alternating windows; plus what a parked run
//! (one waiting, between two polls) costs in memory.
//!
//! `cargo bench --bench durable`. Target (issue 12): journaled ≥ 80 % of unjournaled at
//! concurrency 16; a parked run ≤ 32 KiB.

mod support;

use support::{median, rss};

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use flowcat_engine::Catalog;
use flowcat_engine::diag::Source;
use flowcat_nodes::REGISTRY;
use flowcat_nodes::embed::Flowcat;
use flowcat_nodes::hall::Durably;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

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

/// A run that waits: one ping, then a poll whose condition never holds, every 60 s.
const PARKED: &str = r#"
id: bench.parked
integrations: { api: { kind: http } }
nodes:
  - { id: first, kind: rest_call, integration: api, method: GET, path: /auth/v2/ping }
  - id: wait
    kind: rest_call
    integration: api
    method: GET
    path: /auth/v2/ping
    after: [first]
    poll: { until: "{{eq self.body.stat \"never\"}}", interval: 60s, timeout: 1h }
"#;

/// A run parked on a `wait_for` after one ping: a signal that never comes, within the hour.
const SIGNAL: &str = r#"
id: bench.signal
integrations: { api: { kind: http } }
nodes:
  - { id: first, kind: rest_call, integration: api, method: GET, path: /auth/v2/ping }
  - { id: approval, kind: wait_for, signal: approval, payload: { approved: boolean }, timeout: 1h, after: [first] }
"#;

const WINDOW: Duration = Duration::from_secs(3);

/// The CPU time this process has used (user and system, all threads), in µs: from
/// `/proc/self/stat`, in clock ticks of 10 ms (a 3 s window on 2 cores is about 600 of them).
fn cpu_us() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // The fields after the command's closing parenthesis: utime and stime are the 12th and 13th.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or_default();
    let fields: Vec<f64> = rest.split_whitespace().skip(11).take(2).filter_map(|f| f.parse().ok()).collect();
    fields.iter().sum::<f64>() * 10_000.0
}

/// Runs per second, and CPU µs per run (the simulator's share included: it is the same in both).
async fn rate(flowcat: Arc<Flowcat>, concurrency: usize) -> (f64, f64) {
    let done = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let cpu = cpu_us();
    let tasks: Vec<_> = (0..concurrency)
        .map(|_| {
            let (f, done) = (flowcat.clone(), done.clone());
            tokio::spawn(async move {
                while start.elapsed() < WINDOW {
                    let ran =
                        f.run_durably("bench.five", serde_json::Map::new(), Durably::default()).await.expect("starts");
                    assert!(ran.record().error.is_none(), "{:?}", ran.record().error);
                    done.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.expect("task");
    }
    let runs = done.load(Ordering::Relaxed) as f64;
    (runs / start.elapsed().as_secs_f64(), (cpu_us() - cpu) / runs.max(1.0))
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let dir = std::env::temp_dir().join(format!("flowcat-bench-durable-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    rt.block_on(async {
        let (sim, file) = support::loopback_sim().await;
        let sources = vec![
            Arc::new(Source { path: "five.yaml".into(), text: FLOW.into() }),
            Arc::new(Source { path: "parked.yaml".into(), text: PARKED.into() }),
            Arc::new(Source { path: "signal.yaml".into(), text: SIGNAL.into() }),
        ];
        let catalog = || Catalog::load(sources.clone(), &REGISTRY);
        let plain = Arc::new(Flowcat::new(catalog(), file.clone()));
        let journal = flowcat_journal::Journal::open(&dir).expect("a journal");
        let durable = Arc::new(Flowcat::new(catalog(), file.clone()).with_store(Arc::new(journal.clone())));

        println!(
            "| concurrency | unjournaled runs/s | journaled runs/s | ratio | CPU µs/run unjournaled | journaled | \
             journal's CPU µs/node |"
        );
        println!("|---:|---:|---:|---:|---:|---:|---:|");
        for c in [1, 16] {
            let (mut a, mut b, mut ca, mut cb) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
            for _ in 0..3 {
                let (r, cpu) = rate(plain.clone(), c).await;
                a.push(r);
                ca.push(cpu);
                let (r, cpu) = rate(durable.clone(), c).await;
                b.push(r);
                cb.push(cpu);
            }
            let (a, b, ca, cb) = (median(a), median(b), median(ca), median(cb));
            let (commits, ops) = journal.stats();
            eprintln!("journal so far: {commits} commits, {:.1} ops each", ops as f64 / commits.max(1) as f64);
            println!("| {c} | {a:.0} | {b:.0} | {:.0} % | {ca:.0} | {cb:.0} | {:.1} |", b / a * 100.0, (cb - ca) / 5.0);
        }

        // Parked runs: started, then measured once every one of them waits between two polls
        // (or, for `wait_for`, for its signal: journaled only, a signal needs the journal).
        let cases = [
            ("wait_for (journaled)", "bench.signal", durable.clone()),
            ("poll unjournaled", "bench.parked", plain.clone()),
            ("poll journaled", "bench.parked", durable.clone()),
        ];
        for (name, flow, f) in cases {
            let n = 2000;
            let before = rss();
            let mut tasks = Vec::with_capacity(n);
            // Started one by one, so that they share the pool's connections as runs spread over
            // time do: the cost measured is the waiting run's, not a connection's per run.
            for _ in 0..n {
                let f = f.clone();
                tasks.push(tokio::spawn(async move {
                    f.run_durably(flow, serde_json::Map::new(), Durably::default()).await
                }));
                tokio::time::sleep(Duration::from_micros(500)).await;
            }
            tokio::time::sleep(Duration::from_secs(2)).await;
            let after = rss();
            println!("parked {name}: {n} runs waiting, {:.1} KiB each", (after - before) as f64 / n as f64 / 1024.0);
            for t in tasks {
                t.abort();
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        sim.shutdown().await;
    });
    let _ = std::fs::remove_dir_all(&dir);
}
