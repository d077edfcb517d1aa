//! The journal's cost per node: a node journaled as a write is an intent and a result, each
//! committed before its future resolves. Runs at concurrency 1 and 16 side by side, each run a
//! begin, 20 such nodes and an end, on a fresh journal in a temporary folder.
//!
//! `cargo bench -p flowcat-journal --bench journal` (numbers in docs/benchmarks.md). Prints, per
//! concurrency, the median of 5 rounds of µs per node and nodes per second, and how many ops a
//! commit held (group commit at work).

use std::sync::Arc;
use std::time::{Duration, Instant};

use flowcat_engine::journal::{Begun, Finished, IfBusy, RunInfo, Start, Store as _, StoredStatus};
use flowcat_engine::run::RunRecord;
use flowcat_journal::{Journal, Options};
use serde_json::json;

/// Nodes per run.
const NODES: usize = 20;
/// Nodes journaled per round, at every concurrency.
const PER_ROUND: usize = 3_200;
const ROUNDS: usize = 5;

/// A redacted Duo request as a `rest_call` journals it (about 400 bytes).
fn request(n: usize) -> serde_json::Value {
    json!({
        "method": "POST",
        "url": format!("https://api-12345678.duosecurity.com/admin/v1/users/DU{n:018}/phones"),
        "headers": { "authorization": "[redacted]", "date": "Tue, 01 Dec 2026 10:00:00 -0000",
                     "content-type": "application/x-www-form-urlencoded", "host": "api-12345678.duosecurity.com" },
        "body": { "phone_id": format!("DP{n:018}"), "number": "+15555550142" },
    })
}

/// A finished node with its result and its request and response (about 1.2 KB).
fn finished(n: usize) -> Finished {
    let record = json!({
        "id": format!("n{n}"), "kind": "rest_call", "status": "succeeded", "attempts": 1,
        "started_at": 1_764_000_000_000u64, "ended_at": 1_764_000_000_120u64, "duration_ms": 120.0,
        "result": { "status": 200, "body": { "stat": "OK", "response": { "phone_id": format!("DP{n:018}"),
                    "number": "+15555550142", "type": "Mobile", "platform": "Apple iOS", "activated": false } } },
        "detail": { "attempts": [{ "request": request(n), "response": { "status": 200, "headers":
                    { "content-type": "application/json" } }, "started_at": 1_764_000_000_000u64, "duration_ms": 120 }] },
    });
    Finished { record: serde_json::from_value(record).expect("a node record"), branch: None }
}

fn record() -> RunRecord {
    let record = json!({ "flow": "bench", "status": "succeeded", "inputs": {}, "vars": {}, "outputs": {},
                         "started_at": 1, "ended_at": 2, "nodes": [] });
    serde_json::from_value(record).expect("a run record")
}

fn info() -> RunInfo {
    RunInfo {
        flow: "examples.onboard_employee".into(),
        flow_digest: "sha256:5d41402abc4b2a76b9719d911017c592".into(),
        inputs: json!({ "username": "jdoe", "email": "jdoe@example.com", "number": "+15555550142" })
            .as_object()
            .cloned()
            .unwrap_or_default(),
        binds: vec![("duo_admin".into(), "duo".into())],
        created_at: 1_764_000_000_000,
        ..RunInfo::default()
    }
}

/// One round: `concurrency` tasks, each running runs of `NODES` nodes until `PER_ROUND` nodes
/// are journaled in all. Answers the wall time and the writer's (commits, ops).
fn round(rt: &tokio::runtime::Runtime, concurrency: usize) -> (Duration, (u64, u64)) {
    let dir = tempfile::tempdir().expect("tempdir");
    let journal = Arc::new(Journal::open_with(dir.path(), Options::default()).expect("open"));
    let runs_per_task = PER_ROUND / NODES / concurrency;
    let payloads: Arc<Vec<(serde_json::Value, Finished)>> =
        Arc::new((0..NODES).map(|n| (request(n), finished(n))).collect());
    let t = Instant::now();
    rt.block_on(async {
        let tasks: Vec<_> = (0..concurrency)
            .map(|_| {
                let (journal, payloads) = (journal.clone(), payloads.clone());
                tokio::spawn(async move {
                    for _ in 0..runs_per_task {
                        let start = Start { info: info(), if_busy: IfBusy::Wait, awaited: false };
                        let Ok(Begun::Fresh(run)) = journal.begin(start).await else { panic!("a fresh run") };
                        for (n, (request, finished)) in payloads.iter().enumerate() {
                            let path = [format!("n{n}")];
                            run.started(&path, 1);
                            run.intent(&path, request).await.expect("intent");
                            run.finished(&path, finished).await.expect("finished");
                        }
                        run.end(StoredStatus::Succeeded, &record()).await.expect("end");
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.expect("a task");
        }
    });
    (t.elapsed(), journal.stats())
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    println!("journal: {PER_ROUND} nodes per round (intent + result each), {NODES} per run, median of {ROUNDS}");
    println!("{:>11}  {:>10}  {:>10}  {:>14}", "concurrency", "µs/node", "nodes/s", "ops per commit");
    // Alternate the concurrencies, so that both see the same machine (it is shared).
    let levels = [1usize, 16];
    let mut times: Vec<Vec<(Duration, f64)>> = vec![Vec::new(); levels.len()];
    round(&rt, 1); // warm-up
    for _ in 0..ROUNDS {
        for (i, &c) in levels.iter().enumerate() {
            let (d, (commits, ops)) = round(&rt, c);
            times[i].push((d, ops as f64 / commits.max(1) as f64));
        }
    }
    for (i, &c) in levels.iter().enumerate() {
        let mut t = times[i].clone();
        t.sort_by_key(|x| x.0);
        let (d, per_commit) = t[t.len() / 2];
        let per_node = d.as_secs_f64() * 1e6 / PER_ROUND as f64;
        println!("{c:>11}  {per_node:>10.1}  {:>10.0}  {per_commit:>14.1}", 1e6 / per_node);
    }
}
