//! Issue 17's failover test, end to end with the real binary: three `flowcat serve` processes
//! share one Postgres database (a real server that the test starts, `flowcat-testpg`), one
//! `flowcat sim` answers slowly so runs stay in flight, 300 runs are started through the API over
//! the three, then one replica is killed with `kill -9`, later a second one. Every run must
//! finish on the last replica, and the simulator must have received every Duo write exactly
//! once. On the way: a run started on one replica is read, signalled and cancelled through
//! another.
//!
//! These are real processes, so real time passes: the replicas' lease is shortened
//! (`FLOWCAT_PG_LEASE_MS`) so that a takeover happens within seconds, and every wait is a poll
//! with a bound, never a sleep taken as proof.

use std::collections::{BTreeMap, HashMap};
use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use crate::common::{self, Sim, TempDir};
use serde_json::{Value, json};

const ADMIN: &str = "replicas-admin-token-4b7e1d9c2a6f3e85";
/// Runs started through the API, over the three replicas.
const RUNS: usize = 300;
/// The replicas' lease: a killed replica's runs are taken over this long after its last renewal.
/// A replica renews every tenth of it and stops sending writes once a quarter of it passed
/// without a renewal (1 s: room for a loaded machine), so a write sent by a replica that dies has
/// three quarters of it (3 s) to be answered before another replica's reconcile read looks for
/// it: the simulator's slowest answer (500 ms) stays well within (docs/serve.md, "Replicas": the
/// lease and the HTTP timeout).
const LEASE_MS: &str = "4000";
const FLOW: &str = "duo.admin.associate_phone";
/// Clients starting the runs at once.
const CLIENTS: usize = 6;
/// Runs started on `a` alone just before it dies, and on `b` alone before it dies.
const LATE: usize = 30;
const WAITING_FLOW: &str = "examples.offboard_with_approval";

/// A `flowcat serve` process on the shared store; killed on drop.
struct Replica {
    name: &'static str,
    addr: String,
    child: Child,
    log: PathBuf,
}

impl Replica {
    fn start(dir: &TempDir, config: &Path, store: &str, name: &'static str) -> Replica {
        Replica::start_leased(dir, config, store, name, LEASE_MS)
    }

    fn start_leased(dir: &TempDir, config: &Path, store: &str, name: &'static str, lease_ms: &str) -> Replica {
        let log = dir.path().join(format!("{name}.log"));
        let mut command = Command::new(env!("CARGO_BIN_EXE_flowcat"));
        command
            .args(["--store", store, "serve", "--config"])
            .arg(config)
            .env("FLOWCAT_STATE_DIR", dir.path().join(format!("state-{name}")))
            .env("FLOWCAT_PG_LEASE_MS", lease_ms)
            .env("NO_COLOR", "1")
            .env_remove("RUST_LOG")
            .env_remove("FLOWCAT_STORE")
            .current_dir(dir.path());
        let (child, addr) = common::spawn_serve(command, &log, name);
        Replica { name, addr, child, log }
    }

    /// `kill -9`: no drain, no goodbye to the database; its lease just stops being renewed.
    fn kill9(&mut self) {
        let pid = self.child.id().to_string();
        assert!(Command::new("kill").args(["-KILL", &pid]).status().expect("kill").success());
        let status = self.child.wait().expect("the killed replica is reaped");
        assert_eq!(std::os::unix::process::ExitStatusExt::signal(&status), Some(9), "{}: {status:?}", self.name);
    }

    /// SIGTERM: the graceful drain; answers once the process exited.
    fn terminate(&mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        assert!(Command::new("kill").args(["-TERM", &pid]).status().expect("kill").success());
        self.child.wait().expect("the drained replica is reaped")
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// How many runs `replica` took over from the journal (its log says so for each).
fn takeovers(replica: &Replica) -> usize {
    replica.log().matches("resuming a run from the journal").count()
}

/// One HTTP/1.1 request over a fresh loopback connection: the status and the body as JSON.
fn call(addr: &str, method: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
    let mut stream = std::net::TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    stream.set_read_timeout(Some(Duration::from_secs(30))).expect("a timeout");
    let body = body.map(Value::to_string).unwrap_or_default();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nAuthorization: Bearer {ADMIN}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(format!("{head}{body}").as_bytes()).expect("sent");
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).unwrap_or_else(|e| panic!("{method} {addr}{path}: {e}"));
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, rest) = text.split_once("\r\n\r\n").unwrap_or_else(|| panic!("no header end: {text:?}"));
    let status = head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).expect("a status");
    let chunked = head.to_ascii_lowercase().contains("transfer-encoding: chunked");
    let body = if chunked { common::dechunk(rest) } else { rest.to_owned() };
    let json = if body.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("{method} {path}: not JSON ({e}): {body}"))
    };
    (status, json)
}

/// The run `id` as replica `addr` shows it.
fn show(addr: &str, id: &str) -> Value {
    let (status, run) = call(addr, "GET", &format!("/v1/runs/{id}"), None);
    assert_eq!(status, 200, "GET /v1/runs/{id} on {addr}: {run}");
    run
}

/// Starts a run of `flow` on `addr`: its id.
fn start(addr: &str, flow: &str, inputs: &Value) -> String {
    let (status, answer) = call(addr, "POST", &format!("/v1/flows/{flow}/runs"), Some(inputs));
    assert_eq!(status, 202, "POST {flow} on {addr}: {answer}");
    answer["id"].as_str().unwrap_or_else(|| panic!("an id: {answer}")).to_owned()
}

/// Polls `addr` until `id`'s status is `want`; any other final status fails the test with the
/// run's record.
fn until_status(addr: &str, id: &str, want: &str, within: Duration, logs: &dyn Fn() -> String) -> Value {
    let t0 = Instant::now();
    loop {
        let run = show(addr, id);
        if run["status"] == want {
            return run;
        }
        assert!(
            !matches!(run["status"].as_str(), Some("succeeded" | "failed")),
            "run {id}: wanted {want}: {run:#}\n{}",
            logs()
        );
        assert!(t0.elapsed() < within, "run {id} is not {want} after {within:?}: {run:#}\n{}", logs());
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Starts runs `range` from [`CLIENTS`] clients at once, run `i` on replica `on(i)`: each
/// run's id and replica, in order.
fn start_many(addrs: &[String], range: std::ops::Range<usize>, on: fn(usize) -> usize) -> Vec<(String, usize)> {
    let mut ids: Vec<(usize, String)> = std::thread::scope(|scope| {
        let clients: Vec<_> = (0..CLIENTS)
            .map(|k| {
                let range = range.clone();
                scope.spawn(move || {
                    range
                        .skip(k)
                        .step_by(CLIENTS)
                        .map(|i| {
                            let inputs = json!({
                                "username": user(i), "number": number(i), "type": "mobile", "platform": "google android",
                            });
                            (i, start(&addrs[on(i)], FLOW, &inputs))
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        clients.into_iter().flat_map(|c| c.join().expect("a client")).collect()
    });
    ids.sort();
    ids.into_iter().map(|(i, id)| (id, on(i))).collect()
}

/// Waits until the simulator has created the phone of one of runs `range`: they are writing.
fn until_writing(sim: &Sim, range: std::ops::Range<usize>, logs: &dyn Fn() -> String) {
    let numbers: std::collections::HashSet<String> = range.map(number).collect();
    let t0 = Instant::now();
    while !sim
        .audit()
        .iter()
        .any(|e| e["change"] == "phone.create" && numbers.contains(e["detail"]["number"].as_str().unwrap_or("")))
    {
        assert!(t0.elapsed() < Duration::from_secs(30), "runs {numbers:?} never wrote\n{}", logs());
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The username and phone number of run `i`: each run's writes are its own.
fn user(i: usize) -> String {
    format!("replica-user-{i:03}")
}

fn number(i: usize) -> String {
    format!("+1555201{i:04}")
}

/// The demo seed plus one user without a phone per run.
fn seed() -> Value {
    let mut seed = serde_json::to_value(flowcat_sim::Seed::demo()).expect("the demo seed as JSON");
    let users = seed["users"].as_array_mut().expect("the seed's users");
    for i in 0..RUNS {
        users.push(json!({ "username": user(i), "email": format!("{}@example.com", user(i)), "status": "active" }));
    }
    seed
}

#[test]
fn three_replicas_lose_two_to_kill_9_and_every_run_finishes_with_each_write_once() {
    let store = flowcat_testpg::Cluster::shared().database();
    // Every answer of the simulator takes 100 ms, an association 400 ms more: runs stay in flight
    // while replicas die.
    let sim = Sim::start_args(
        "replicas",
        Some(&seed()),
        &["--latency-ms", "100", "--fault", "route=POST /admin/v1/users/{user_id}/phones,kind=latency,ms=400"],
    );
    let dir = TempDir::new("replicas");
    let config = dir.path().join("serve.yaml");
    let text = format!(
        "listen: 127.0.0.1:0\nintegrations: {}\nshutdown_grace: 2s\nlimits:\n  max_runs_per_token: {}\n\
         tokens:\n  - name: admin\n    sha256: {}\n    flows: ['*']\n    signals: [approval]\n",
        sim.integrations.display(),
        RUNS + 10,
        crate::common::hash_token(ADMIN),
    );
    std::fs::write(&config, text).expect("the config is written");

    let mut replicas: Vec<Replica> =
        ["a", "b", "c"].into_iter().map(|name| Replica::start(&dir, &config, &store, name)).collect();
    let addrs: Vec<String> = replicas.iter().map(|r| r.addr.clone()).collect();
    let (a, b, c) = (addrs[0].clone(), addrs[1].clone(), addrs[2].clone());
    let logs = |replicas: &[Replica]| -> String {
        replicas.iter().map(|r| format!("--- {} ---\n{}", r.name, r.log())).collect::<Vec<_>>().join("\n")
    };

    // Two runs that wait for a manager's approval: one started on `a`, approved through `c`; one
    // started on `b`, cancelled through `c`. Neither is held by `c`.
    let approved = start(&a, WAITING_FLOW, &json!({ "username": "alice" }));
    let cancelled = start(&b, WAITING_FLOW, &json!({ "username": "bob" }));
    for id in [&approved, &cancelled] {
        let run = until_status(&c, id, "waiting", Duration::from_secs(20), &|| logs(&replicas));
        assert_eq!(run["waiting"]["signal"], "approval", "{run:#}");
    }

    // The approval and the cancel, sent through `c`.
    let (status, sent) = call(
        &c,
        "POST",
        &format!("/v1/runs/{approved}/signals/approval"),
        Some(&json!({ "approved": true, "approver": "manager@example.com" })),
    );
    assert_eq!(status, 202, "the signal through another replica: {sent}");
    let (status, answer) = call(&c, "POST", &format!("/v1/runs/{cancelled}/cancel"), None);
    assert!(matches!(status, 200 | 202), "the cancel through another replica: {status} {answer}");

    // 300 runs, each giving its own user a phone of its own number (two writes each: the phone
    // created, then associated), started from a few clients at once: 240 round-robin over
    // the three replicas, then 30 on `a`, which dies (`kill -9`) as soon as one of those 30 has
    // created its phone: they are in flight, some with their association (500 ms to answer)
    // sent and not answered, a write in doubt that the simulator applies all the same, as Duo
    // would.
    let t0 = Instant::now();
    let mut ids = start_many(&addrs, 0..RUNS - 2 * LATE, |i| i % 3);
    ids.extend(start_many(&addrs, RUNS - 2 * LATE..RUNS - LATE, |_| 0));
    until_writing(&sim, RUNS - 2 * LATE..RUNS - LATE, &|| logs(&replicas));
    let started_in = t0.elapsed();
    replicas[0].kill9();
    let in_flight_on_a = ids.iter().filter(|(id, on)| *on == 0 && show(&c, id)["status"] != "succeeded").count();
    assert!(in_flight_on_a > 0, "every run of `a` had finished before it was killed: nothing to take over");

    // A run started on `a` reads the same through `b` and `c` (the store is shared).
    let first = &ids[0].0;
    let on_b = show(&b, first);
    let on_c = show(&c, first);
    assert_eq!((&on_b["id"], &on_b["flow"], &on_b["created_at"]), (&on_c["id"], &on_c["flow"], &on_c["created_at"]));
    assert_eq!(on_b["flow"], FLOW, "{on_b:#}");

    // The cancel reached `b`, which holds the run.
    let run = until_status(&c, &cancelled, "failed", Duration::from_secs(20), &|| logs(&replicas));
    assert_eq!(run["record"]["error"]["code"], "cancelled", "{run:#}");

    // Once `a`'s runs are being taken over, the last 30 runs are started on `b`, and `b` dies
    // too as soon as they have begun writing: with them in flight, and whichever of `a`'s runs
    // it took over.
    let t1 = Instant::now();
    while takeovers(&replicas[1]) + takeovers(&replicas[2]) == 0 {
        assert!(t1.elapsed() < Duration::from_secs(30), "nobody took over `a`'s runs\n{}", logs(&replicas));
        std::thread::sleep(Duration::from_millis(20));
    }
    ids.extend(start_many(&addrs, RUNS - LATE..RUNS, |_| 1));
    until_writing(&sim, RUNS - LATE..RUNS, &|| logs(&replicas));
    replicas[1].kill9();
    let taken_by_b = takeovers(&replicas[1]);
    let in_flight_on_b = ids.iter().filter(|(id, on)| *on == 1 && show(&c, id)["status"] != "succeeded").count();
    assert!(in_flight_on_b > 0, "every run of `b` had finished before it was killed");

    // Every run finishes, on `c`.
    let t2 = Instant::now();
    let mut pending: Vec<&String> = ids.iter().map(|(id, _)| id).collect();
    let mut records: HashMap<String, Value> = HashMap::new();
    while !pending.is_empty() {
        let mut still = Vec::new();
        for id in pending {
            let run = show(&c, id);
            match run["status"].as_str() {
                Some("succeeded") => {
                    records.insert(id.clone(), run);
                }
                Some("failed" | "needs_attention") => {
                    panic!("run {id} ended {}: {run:#}\n{}", run["status"], logs(&replicas))
                }
                _ => still.push(id),
            }
        }
        pending = still;
        if !pending.is_empty() {
            assert!(
                t2.elapsed() < Duration::from_secs(120),
                "{} runs never finished, e.g. {:#}\n{}",
                pending.len(),
                show(&c, pending[0]),
                logs(&replicas)
            );
            std::thread::sleep(Duration::from_millis(250));
        }
    }
    for (i, (id, _)) in ids.iter().enumerate() {
        let outputs = &records[id]["record"]["outputs"];
        assert_eq!(
            (outputs["outcome"].as_str(), outputs["phone_created"].as_bool()),
            (Some("associated"), Some(true)),
            "run {i} ({id}): {outputs:#}"
        );
    }

    // The approved run went on (taken over if `a` died first) and offboarded alice.
    let run = until_status(&c, &approved, "succeeded", Duration::from_secs(60), &|| logs(&replicas));
    assert_eq!(run["record"]["outputs"]["outcome"], "disabled", "{run:#}");

    // The simulator saw each write once: one phone per number, one association per user, and
    // no more write requests than that (a second create would be refused without an audit entry,
    // so the requests are counted too).
    let audit = sim.audit();
    let mut created: BTreeMap<String, usize> = BTreeMap::new();
    let mut associated: BTreeMap<String, usize> = BTreeMap::new();
    for e in &audit {
        match e["change"].as_str() {
            Some("phone.create") => {
                *created.entry(e["detail"]["number"].as_str().expect("a number").to_owned()).or_default() += 1
            }
            Some("phone.associate") => {
                *associated.entry(e["detail"]["phone_id"].as_str().expect("a phone").to_owned()).or_default() += 1
            }
            _ => {}
        }
    }
    let twice: Vec<_> = created.iter().chain(&associated).filter(|(_, n)| **n != 1).collect();
    assert!(twice.is_empty(), "writes not done exactly once: {twice:?}");
    let mine: usize = (0..RUNS).filter(|i| created.contains_key(&number(*i))).count();
    assert_eq!((mine, created.len()), (RUNS, RUNS), "every run's phone created once");
    // alice's offboarding removed her phone; the 300 associations are the runs'.
    assert_eq!(associated.len(), RUNS, "{associated:?}");
    let stats = sim.stats();
    assert_eq!(stats["POST /admin/v1/phones"], RUNS as u64, "{stats:#?}");
    assert_eq!(stats["POST /admin/v1/users/{user_id}/phones"], RUNS as u64, "{stats:#?}");
    assert!(takeovers(&replicas[2]) > 0, "`c` took over nothing\n{}", logs(&replicas));
    eprintln!(
        "started {} before killing `a`, in {started_in:?}; {in_flight_on_a} in flight on `a` when killed; `b` killed with {in_flight_on_b} in \
         flight, having taken over {taken_by_b}; `c` took over {}; all finished {:?} after the second kill",
        RUNS - LATE,
        takeovers(&replicas[2]),
        t2.elapsed()
    );
}

/// A rolling restart or a scale-down: `a` is drained (SIGTERM) while its runs create their
/// phones (1.5 s to answer, more than the 1 s grace). Its runs end `interrupted` there, between
/// their two writes, and the live replica `b` takes them over at its next sweep, not at the next
/// start and not after `a`'s lease (a minute here, so waiting for it fails the test): every run
/// succeeds, each write sent once.
#[test]
fn a_drained_replicas_runs_are_taken_over_at_once_by_a_live_one() {
    const N: usize = 24;
    let store = flowcat_testpg::Cluster::shared().database();
    let sim = Sim::start_args(
        "replicas-drain",
        Some(&seed()),
        &["--latency-ms", "100", "--fault", "route=POST /admin/v1/phones,kind=latency,ms=1500"],
    );
    let dir = TempDir::new("replicas-drain");
    let config = dir.path().join("serve.yaml");
    let text = format!(
        "listen: 127.0.0.1:0\nintegrations: {}\nshutdown_grace: 1s\nlimits:\n  max_runs_per_token: 100\ntokens:\n  - name: admin\n    sha256: {}\n    \
         flows: ['*']\n",
        sim.integrations.display(),
        crate::common::hash_token(ADMIN),
    );
    std::fs::write(&config, text).expect("the config is written");
    let mut replicas: Vec<Replica> =
        ["a", "b"].into_iter().map(|name| Replica::start_leased(&dir, &config, &store, name, "60000")).collect();
    let addrs: Vec<String> = replicas.iter().map(|r| r.addr.clone()).collect();
    let logs = |replicas: &[Replica]| -> String {
        replicas.iter().map(|r| format!("--- {} ---\n{}", r.name, r.log())).collect::<Vec<_>>().join("\n")
    };
    let ids = start_many(&addrs, 0..N, |_| 0);
    let exited = replicas[0].terminate();
    assert!(exited.success(), "the drain ends the process cleanly: {exited:?}\n{}", logs(&replicas));
    let b = addrs[1].clone();
    let unfinished = ids.iter().filter(|(id, _)| show(&b, id)["status"] != "succeeded").count();
    assert!(unfinished > 0, "every run had finished before the drain: nothing to hand over");

    let t0 = Instant::now();
    for (id, _) in &ids {
        let run = until_status(&b, id, "succeeded", Duration::from_secs(30), &|| logs(&replicas));
        let outputs = &run["record"]["outputs"];
        assert_eq!((outputs["outcome"].as_str(), outputs["phone_created"].as_bool()), (Some("associated"), Some(true)));
    }
    assert_eq!(takeovers(&replicas[1]), unfinished, "`b` took over each run `a` drained\n{}", logs(&replicas));
    let stats = sim.stats();
    assert_eq!(stats["POST /admin/v1/phones"], N as u64, "each phone created once: {stats:#?}");
    assert_eq!(stats["POST /admin/v1/users/{user_id}/phones"], N as u64, "each association sent once: {stats:#?}");
    eprintln!("{unfinished} of {N} runs drained by `a`; all finished on `b` {:?} after `a` exited", t0.elapsed());
}
