//! `flowcat serve` replicas on a shared Postgres (issue 17), real processes on loopback: one
//! Postgres server (`flowcat-testpg`), one `flowcat sim`, and 1, 2 or 3 `flowcat serve`
//! processes (the release binary) sharing a fresh database.
//!
//! - **Throughput by replicas**: `RUNS` runs of `duo.admin.associate_phone` (a user lookup, a
//!   phone lookup, a phone created, an association: four signed calls, two of them writes, each
//!   with its intent journaled first) started through the API, `IN_FLIGHT` requests at once
//!   (`?wait=30s`, each waiting for its record), spread round-robin over the replicas. Runs/s for
//!   1, 2 and 3 replicas, alternated over `ROUNDS` rounds.
//! - **The store's cost per node**: the same runs on one replica with the SQLite journal (the
//!   default) and with the Postgres store, alternated: wall time, and CPU time (user + system)
//!   of the `flowcat serve` process, and of the Postgres server's processes for the Postgres
//!   store, per journaled node.
//!
//! The simulator is reset (`POST /sim/reset`) before every round, so every round does the same
//! work against the same users; after every round its request counts are checked.
//!
//! `cargo bench --bench replicas`. Numbers in docs/benchmarks.md ("Replicas on a shared
//! Postgres").

mod support;

use support::median;

use std::io::{BufRead as _, Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Instant;

use serde_json::{Value, json};

const TOKEN: &str = "bench-replicas-token-0123456789abcdef01";
const FLOW: &str = "duo.admin.associate_phone";
const RUNS: usize = 600;
const IN_FLIGHT: usize = 64;
const ROUNDS: usize = 3;

/// A child process, killed on drop.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// CPU time (user + system) a process has used so far, from `/proc/PID/stat`, in seconds.
fn cpu(pid: u32) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { return 0.0 };
    // The fields after the command name (which may hold spaces) start after the last `)`.
    let rest = &stat[stat.rfind(')').map_or(0, |i| i + 2)..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = fields.get(11).and_then(|u| u.parse::<f64>().ok()).unwrap_or(0.0)
        + fields.get(12).and_then(|s| s.parse::<f64>().ok()).unwrap_or(0.0);
    ticks / clock_ticks()
}

fn clock_ticks() -> f64 {
    let out = Command::new("getconf").arg("CLK_TCK").output().expect("getconf");
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap_or(100.0)
}

/// CPU time of the Postgres server `pid` and its backends (children), in seconds: backends that
/// ended are counted in the server's `cutime`/`cstime`.
fn server_cpu(pid: u32) -> f64 {
    let mut total = 0.0;
    if let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        let rest = &stat[stat.rfind(')').map_or(0, |i| i + 2)..];
        let fields: Vec<f64> = rest.split_whitespace().map(|f| f.parse().unwrap_or(0.0)).collect();
        total += fields.get(11..15).map_or(0.0, |f| f.iter().sum::<f64>()) / clock_ticks();
    }
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(child) = entry.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else { continue };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{child}/stat")) else { continue };
        let rest = &stat[stat.rfind(')').map_or(0, |i| i + 2)..];
        if rest.split_whitespace().nth(1).and_then(|p| p.parse::<u32>().ok()) == Some(pid) {
            total += cpu(child);
        }
    }
    total
}

/// A `flowcat sim` on a free loopback port with `users` users without a phone.
fn sim(dir: &Path, users: usize) -> (Proc, String, PathBuf) {
    let mut seed = serde_json::to_value(flowcat_sim::Seed::demo()).expect("the demo seed");
    let list = seed["users"].as_array_mut().expect("users");
    for i in 0..users {
        list.push(json!({ "username": format!("bench-{i:04}"), "status": "active" }));
    }
    let seed_path = dir.join("seed.json");
    std::fs::write(&seed_path, seed.to_string()).expect("the seed");
    let integrations = dir.join("integrations.yaml");
    let mut child = Command::new(env!("CARGO_BIN_EXE_flowcat"))
        .args(["sim", "--port", "0", "--seed"])
        .arg(&seed_path)
        .arg("--write-integrations")
        .arg(&integrations)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("flowcat sim");
    let mut stdout = std::io::BufReader::new(child.stdout.take().expect("stdout"));
    let mut line = String::new();
    stdout.read_line(&mut line).expect("the simulator's first line");
    let addr = line
        .split("http://")
        .nth(1)
        .and_then(|r| r.split(|c: char| c == ';' || c.is_whitespace()).next())
        .expect("the simulator's address")
        .to_owned();
    // Keep reading its stdout, so that it never writes to a closed pipe.
    std::thread::spawn(move || std::io::copy(&mut stdout, &mut std::io::sink()));
    (Proc(child), addr, integrations)
}

/// A plain request to the simulator's control API.
fn control(addr: &str, method: &str, path: &str) -> Value {
    let mut stream = std::net::TcpStream::connect(addr).expect("the simulator");
    write!(stream, "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n")
        .expect("sent");
    let mut text = String::new();
    stream.read_to_string(&mut text).expect("read");
    let body = text.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    serde_json::from_str(body).unwrap_or(Value::Null)
}

/// A `flowcat serve` on `store` (a Postgres URL, or None: the SQLite journal in `state`).
fn serve(dir: &Path, name: &str, store: Option<&str>) -> (Proc, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_flowcat"));
    if let Some(url) = store {
        cmd.args(["--store", url]);
    }
    let mut child = cmd
        .args(["serve", "--config"])
        .arg(dir.join("serve.yaml"))
        .env("FLOWCAT_STATE_DIR", dir.join(format!("state-{name}")))
        .env_remove("RUST_LOG")
        .env_remove("FLOWCAT_STORE")
        .env_remove("FLOWCAT_PG_LEASE_MS")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("flowcat serve");
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().expect("stdout")).read_line(&mut line).expect("a line");
    let addr = line.trim().strip_prefix("flowcat serve: listening on http://").expect("an address").to_owned();
    (Proc(child), format!("http://{addr}"))
}

/// What one round measured.
struct Round {
    wall: f64,
    /// CPU seconds of the serve processes.
    serve_cpu: f64,
    /// CPU seconds of the Postgres server and its backends.
    pg_cpu: f64,
    /// Nodes journaled per run (from the first run's record).
    nodes: usize,
}

/// Nodes that ran (not skipped), nested subflows included.
fn count_nodes(record: &Value) -> usize {
    let Some(nodes) = record["nodes"].as_array() else { return 0 };
    nodes
        .iter()
        .map(|n| {
            usize::from(n["status"] != "skipped" && n["status"] != "pending") + n.get("record").map_or(0, count_nodes)
        })
        .sum()
}

/// `RUNS` runs through `bases` round-robin, `IN_FLIGHT` at once.
fn round(rt: &tokio::runtime::Runtime, bases: &[String], pids: &[u32], pg: Option<u32>, sim_addr: &str) -> Round {
    let reset = control(sim_addr, "POST", "/sim/reset");
    assert!(!reset.is_null(), "the simulator was reset");
    let cpu0: f64 = pids.iter().map(|p| cpu(*p)).sum();
    let pg0 = pg.map_or(0.0, server_cpu);
    let t0 = Instant::now();
    let first = rt.block_on(async {
        let client = reqwest::Client::builder().pool_max_idle_per_host(IN_FLIGHT).build().expect("a client");
        let next = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let workers: Vec<_> = (0..IN_FLIGHT)
            .map(|_| {
                let (client, next, bases) = (client.clone(), next.clone(), bases.to_vec());
                tokio::spawn(async move {
                    let mut first = None;
                    loop {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        if i >= RUNS {
                            return first;
                        }
                        let url = format!("{}/v1/flows/{FLOW}/runs?wait=30s", bases[i % bases.len()]);
                        let inputs = json!({
                            "username": format!("bench-{i:04}"), "number": format!("+1555301{i:04}"),
                            "type": "mobile", "platform": "google android",
                        });
                        let answer = client
                            .post(&url)
                            .bearer_auth(TOKEN)
                            .header("content-type", "application/json")
                            .body(inputs.to_string())
                            .send()
                            .await
                            .expect("answered");
                        let status = answer.status();
                        let text = answer.text().await.expect("a body");
                        let body: Value = serde_json::from_str(&text).expect("JSON");
                        assert!(status == 200 && body["record"]["status"] == "succeeded", "run {i}: {status} {body}");
                        if i == 0 {
                            first = Some(body["record"].clone());
                        }
                    }
                })
            })
            .collect();
        let mut first = None;
        for w in workers {
            if let Some(r) = w.await.expect("a worker") {
                first = Some(r);
            }
        }
        first.expect("run 0's record")
    });
    let wall = t0.elapsed().as_secs_f64();
    let serve_cpu = pids.iter().map(|p| cpu(*p)).sum::<f64>() - cpu0;
    let pg_cpu = pg.map_or(0.0, server_cpu) - pg0;
    let stats = control(sim_addr, "GET", "/sim/stats");
    for route in ["POST /admin/v1/phones", "POST /admin/v1/users/{user_id}/phones"] {
        assert_eq!(stats[route], RUNS as u64, "{route}: {stats}");
    }
    Round { wall, serve_cpu, pg_cpu, nodes: count_nodes(&first) }
}

fn load() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

fn main() {
    // Plain HTTP on loopback; the workspace's reqwest has no TLS provider of its own.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cluster = flowcat_testpg::Cluster::shared();
    let dir = std::env::temp_dir().join(format!("flowcat-bench-replicas-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("a folder");
    let (_sim, sim_addr, integrations) = sim(&dir, RUNS);
    let hash = {
        let mut child = Command::new(env!("CARGO_BIN_EXE_flowcat"))
            .args(["serve", "hash-token"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("hash-token");
        child.stdin.take().expect("stdin").write_all(format!("{TOKEN}\n").as_bytes()).expect("written");
        String::from_utf8(child.wait_with_output().expect("ends").stdout).expect("utf-8").trim().to_owned()
    };
    std::fs::write(
        dir.join("serve.yaml"),
        format!(
            "listen: 127.0.0.1:0\nintegrations: {}\nlimits:\n  max_runs_per_token: {}\ntokens:\n  - name: bench\n    sha256: {hash}\n    flows: ['*']\n",
            integrations.display(),
            RUNS + IN_FLIGHT,
        ),
    )
    .expect("the config");
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    println!("{RUNS} runs of {FLOW}, {IN_FLIGHT} in flight, {ROUNDS} rounds; load average before: {}", load());

    // Throughput by replicas, and the SQLite journal on one process, alternated per round.
    let kinds: [(&str, usize, bool); 4] = [
        ("sqlite, 1 process", 1, false),
        ("postgres, 1 replica", 1, true),
        ("postgres, 2 replicas", 2, true),
        ("postgres, 3 replicas", 3, true),
    ];
    let mut results: Vec<Vec<Round>> = kinds.iter().map(|_| Vec::new()).collect();
    for r in 0..ROUNDS {
        for (k, (label, replicas, pg)) in kinds.iter().enumerate() {
            let url = pg.then(|| cluster.database());
            let procs: Vec<(Proc, String)> =
                (0..*replicas).map(|n| serve(&dir, &format!("r{r}-k{k}-{n}"), url.as_deref())).collect();
            let bases: Vec<String> = procs.iter().map(|(_, b)| b.clone()).collect();
            let pids: Vec<u32> = procs.iter().map(|(p, _)| p.0.id()).collect();
            let pg_pid = pg.then(|| cluster.server_pid());
            let got = round(&rt, &bases, &pids, pg_pid, &sim_addr);
            println!(
                "round {r} {label:<22} {:>7.1} runs/s  serve CPU {:>6.2} s  postgres CPU {:>6.2} s  ({} nodes/run)",
                RUNS as f64 / got.wall,
                got.serve_cpu,
                got.pg_cpu,
                got.nodes
            );
            results[k].push(got);
            drop(procs);
        }
    }

    println!("\nmedians over {ROUNDS} rounds; load average after: {}", load());
    let rate = |k: usize| median(results[k].iter().map(|g| RUNS as f64 / g.wall).collect());
    let base = rate(0);
    let pg1 = rate(1);
    for (k, (label, _, _)) in kinds.iter().enumerate() {
        let nodes = results[k][0].nodes.max(1) as f64;
        let per_node =
            |f: &dyn Fn(&Round) -> f64| median(results[k].iter().map(f).collect()) * 1e6 / (RUNS as f64 * nodes);
        println!(
            "{label:<22} {:>7.1} runs/s ({:.2}x sqlite, {:.2}x 1 replica)  wall {:>6.0} µs/node  serve CPU {:>6.0} µs/node  postgres CPU {:>6.0} µs/node",
            rate(k),
            rate(k) / base,
            rate(k) / pg1,
            per_node(&|g| g.wall),
            per_node(&|g| g.serve_cpu),
            per_node(&|g| g.pg_cpu),
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
