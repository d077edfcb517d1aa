//! The shared rate limiter over real HTTP to the simulator on 127.0.0.1, on tokio's paused clock
//! (which the simulator's clock follows, so its `--rate-limit` buckets and the client's limiter
//! see one time and nothing sleeps for real): a 429 met by one run slows every run of the
//! integration, the rate comes back gradually, a token due after the deadline fails the call
//! before anything is sent, and many concurrent runs against a rate-limited simulator all finish
//! while meeting only a handful of 429s. A run stopped (Ctrl-C's drain) while its calls wait for
//! the limiter, or between two polls, stops at once with nothing more sent.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use flowcat_engine::run::{RunStatus, StopLevel, stop_signal};
use flowcat_nodes::embed::{Flowcat, load_catalog};
use flowcat_nodes::hall::Durably;
use flowcat_nodes::http::{Call, CallError, Clients, Limiter, send};
use flowcat_nodes::integrations::{self, Integrations};
use flowcat_sim::{Faults, Options, RateLimit, Seed, Sim};
use serde_json::json;
use tokio::time::Instant;

/// Runs in the bulk test; the full test is 10,000 (`flowcat run --each` will run it).
const RUNS: usize = 2_000;
/// Runs in flight at once in the bulk test.
const CONCURRENCY: usize = 32;
/// The simulator's limit per integration key in the bulk test: 20 requests a second, 20 at once.
const SIM_LIMIT: RateLimit = RateLimit { per_second: 20.0, burst: 20 };

async fn sim(rate_limit: Option<RateLimit>) -> Sim {
    let options = Options { rate_limit, ..Options::default() };
    Sim::start_seed("127.0.0.1:0".parse().expect("addr"), &Seed::demo(), options).await.expect("sim")
}

/// The simulator's Admin API application with `rate_limit` written as given (`None`: no line).
fn integrations(sim: &Sim, rate_limit: Option<&str>) -> Integrations {
    let seed = Seed::demo();
    let admin = seed.integrations.iter().find(|i| i.name == "duo_admin").expect("the Admin API application");
    let line = rate_limit.map(|r| format!("    rate_limit: {r}\n")).unwrap_or_default();
    let text = format!(
        "integrations:\n  duo_admin:\n    kind: duo_admin\n    host: \"{}\"\n    ikey: {}\n    skey: {}\n    loopback_http: true\n{line}",
        sim.addr(),
        admin.ikey,
        admin.skey.expose()
    );
    integrations::parse(Path::new("sim.yaml"), &text, &|_| None).expect("integrations")
}

fn limiter(file: &Integrations) -> Arc<Limiter> {
    Arc::clone(file.get("duo_admin").expect("duo_admin").limiter.as_ref().expect("a limiter"))
}

/// The catalog's flows with `file`: `duo.admin.retrieve_user_id` makes one Admin API call.
fn flowcat(file: Integrations) -> Flowcat {
    let flows = Path::new(env!("CARGO_MANIFEST_DIR")).join("../flows");
    Flowcat::new(load_catalog(&[flows]).expect("the catalog"), file)
}

async fn lookup(flowcat: &Flowcat) -> RunStatus {
    let record = flowcat.run("duo.admin.retrieve_user_id", json!({ "username": "alice" })).await.expect("starts");
    assert!(record.status != RunStatus::Succeeded || record.outputs["user_id"].is_string(), "{record:?}");
    record.status
}

/// `runs` lookups, `concurrency` at a time; how many did not succeed.
async fn bulk(flowcat: Arc<Flowcat>, runs: usize, concurrency: usize) -> usize {
    let next = Arc::new(AtomicUsize::new(0));
    let failed = Arc::new(AtomicUsize::new(0));
    let workers: Vec<_> = (0..concurrency)
        .map(|_| {
            let (flowcat, next, failed) = (Arc::clone(&flowcat), Arc::clone(&next), Arc::clone(&failed));
            tokio::spawn(async move {
                while next.fetch_add(1, Ordering::Relaxed) < runs {
                    if lookup(&flowcat).await != RunStatus::Succeeded {
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    for worker in workers {
        worker.await.expect("worker");
    }
    failed.load(Ordering::Relaxed)
}

/// `n` lookups started together; the time until the last ended.
async fn burst_of(flowcat: &Arc<Flowcat>, n: usize) -> Duration {
    let started = Instant::now();
    assert_eq!(bulk(Arc::clone(flowcat), n, n).await, 0, "every run succeeds");
    started.elapsed()
}

#[tokio::test(start_paused = true)]
async fn bulk_runs_against_a_rate_limited_simulator_all_finish_with_a_handful_of_429s() {
    let sim = sim(Some(SIM_LIMIT)).await;
    // Configured twice as fast as the server allows, as when Duo's real limit is below the
    // configured one: the shared back-off has to find the rate.
    let file = integrations(&sim, Some("{ per_second: 40, burst: 40 }"));
    let limiter = limiter(&file);
    let started = Instant::now();
    let failed = bulk(Arc::new(flowcat(file)), RUNS, CONCURRENCY).await;
    let took = started.elapsed();
    let refused = sim.rate_limited();
    assert_eq!(failed, 0);
    assert_eq!(sim.stats()["GET /admin/v1/users"], RUNS as u64 + refused, "each run once, plus its 429s");
    // Without the shared back-off, a client at twice the server's rate meets a 429 for more than
    // half its requests (the control below: 320 for 500 runs); with it, a few per cut, at most
    // one request in fifty (28 for 2,000 when this was written).
    assert!(refused <= (RUNS / 50) as u64, "{refused} 429s for {RUNS} runs");
    // The server's rate bounds the time from below; the back-off costs at most a third more.
    let floor = (RUNS as f64 - f64::from(SIM_LIMIT.burst)) / SIM_LIMIT.per_second;
    assert!(took.as_secs_f64() >= floor && took.as_secs_f64() < floor * 4.0 / 3.0, "{took:?} (floor {floor} s)");
    assert!(limiter.rate() < 40.0, "still below the configured rate: {}", limiter.rate());
    sim.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn without_a_limiter_the_same_load_meets_429s_by_the_hundred() {
    let sim = sim(Some(SIM_LIMIT)).await;
    let file = integrations(&sim, Some("none"));
    assert!(file.get("duo_admin").expect("duo_admin").limiter.is_none());
    let runs = RUNS / 4;
    bulk(Arc::new(flowcat(file)), runs, CONCURRENCY).await;
    let refused = sim.rate_limited();
    assert!(refused >= runs as u64 / 5, "{refused} 429s for {runs} runs");
    sim.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_429_met_by_one_run_slows_every_run_of_the_integration_until_it_recovers() {
    let sim = sim(None).await;
    let file = integrations(&sim, Some("{ per_second: 10, burst: 1 }"));
    let limiter = limiter(&file);
    let flowcat = Arc::new(flowcat(file));
    // At the configured rate, 11 runs started together: one at once, ten 100 ms apart.
    let full = burst_of(&flowcat, 11).await;
    assert!(full >= Duration::from_millis(1000) && full < Duration::from_millis(1100), "{full:?}");
    // One run meets a 429 (no `Retry-After`, as the Admin API sends), retries and succeeds.
    let mut faults = Faults::default();
    faults.apply_spec("route=GET /admin/v1/users,kind=429,count=1").expect("a fault");
    sim.set_faults(faults).expect("faults");
    assert_eq!(lookup(&flowcat).await, RunStatus::Succeeded);
    let cut = limiter.rate();
    // Halved to 5/s, plus the recovery during the 1-2 s retry wait (0.2/s per second).
    assert!((5.0..5.5).contains(&cut), "{cut}");
    // Other runs, started after it, share the cut: ten tokens at about 5/s take twice as long.
    let slowed = burst_of(&flowcat, 11).await;
    assert!(slowed >= Duration::from_millis(1800), "{slowed:?}");
    // Additive recovery: 0.2/s per second, the configured rate again 25 s after the cut.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let later = limiter.rate();
    assert!(later > cut + 0.9 && later < 10.0, "{cut} → {later}");
    tokio::time::sleep(Duration::from_secs(25)).await;
    assert_eq!(limiter.rate(), 10.0);
    let recovered = burst_of(&flowcat, 11).await;
    assert!(recovered < Duration::from_millis(1100), "{recovered:?}");
    sim.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_token_due_after_the_deadline_fails_the_call_before_it_is_sent() {
    let sim = sim(None).await;
    let file = integrations(&sim, Some("{ per_minute: 60, burst: 1 }"));
    let admin = file.get("duo_admin").expect("duo_admin").clone();
    let clients = Clients::new();
    send(&clients, &admin, &Call::new("GET", "/admin/v1/users")).await.expect("the first goes at once");
    let mut call = Call::new("GET", "/admin/v1/users");
    let started = Instant::now();
    call.deadline = Some(started + Duration::from_millis(500));
    let err = send(&clients, &admin, &call).await.expect_err("the deadline");
    assert!(matches!(err, CallError::Deadline { unknown: false, .. }), "{err:?}");
    assert!(err.attempts().is_empty());
    assert_eq!(
        err.to_string(),
        "the run's deadline comes before the integration's rate limit lets it go, in 1000 ms: `GET /admin/v1/users` was stopped"
    );
    assert_eq!(started.elapsed(), Duration::ZERO, "refused without waiting");
    assert_eq!(sim.stats()["GET /admin/v1/users"], 1, "nothing more was sent");
    // The token was not taken: the next call waits one second from the first, not two.
    send(&clients, &admin, &Call::new("GET", "/admin/v1/users")).await.expect("sent");
    assert_eq!(started.elapsed(), Duration::from_secs(1));
    sim.shutdown().await;
}

/// Runs `flow` for alice with a stop signal, asking it to drain `after` its start; the record
/// and how long the run took.
async fn drained(flowcat: &Flowcat, flow: &str, after: Duration) -> (flowcat_engine::run::RunRecord, Duration) {
    let (tx, rx) = stop_signal();
    let mut inputs = serde_json::Map::new();
    inputs.insert("username".into(), json!("alice"));
    let started = Instant::now();
    let run = flowcat.run_durably(flow, inputs, Durably { stop: Some(rx), ..Durably::default() });
    let stopper = async {
        tokio::time::sleep(after).await;
        tx.send(StopLevel::Drain).expect("the run listens");
    };
    let (ran, ()) = tokio::join!(run, stopper);
    (ran.expect("started").record().clone(), started.elapsed())
}

#[tokio::test(start_paused = true)]
async fn a_drain_stops_a_run_whose_call_waits_for_the_limiter_before_anything_is_sent() {
    let sim = sim(None).await;
    let file = integrations(&sim, Some("{ per_minute: 1, burst: 1 }"));
    let limiter = limiter(&file);
    let flowcat = flowcat(file);
    assert_eq!(lookup(&flowcat).await, RunStatus::Succeeded, "the burst's one token");
    // The next token is a minute away; Ctrl-C comes after 10 s.
    let (record, took) = drained(&flowcat, "duo.admin.retrieve_user_id", Duration::from_secs(10)).await;
    assert_eq!(record.status, RunStatus::Interrupted, "{record:?}");
    assert_eq!(took, Duration::from_secs(10), "the drain did not wait for the token");
    assert_eq!(sim.stats()["GET /admin/v1/users"], 1, "nothing sent after the stop");
    // The token the stopped run waited for went back: the next run waits for the one token due,
    // a minute after the first call, not for a second one.
    let started = Instant::now();
    assert_eq!(lookup(&flowcat).await, RunStatus::Succeeded);
    assert_eq!(started.elapsed(), Duration::from_secs(50));
    assert!((limiter.rate() - 1.0 / 60.0).abs() < 1e-9, "no 429 met");
    sim.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_drain_between_two_polls_stops_the_run_without_waiting_for_the_next_poll() {
    let sim = sim(None).await;
    let dir = tempfile::tempdir().expect("a folder");
    std::fs::write(
        dir.path().join("poll.yaml"),
        "id: t.poll\nintegrations:\n  duo_admin:\n    kind: duo_admin\ninputs:\n  username:\n    type: string\n\
         nodes:\n  - id: look\n    kind: rest_call\n    integration: duo_admin\n    method: GET\n\
         \x20   path: /admin/v1/users\n    query:\n      username: \"{{inputs.username}}\"\n\
         \x20   poll:\n      until: \"{{eq self.status 0}}\"\n      interval: 30s\n      timeout: 10m\n",
    )
    .expect("the flow");
    let flows = Path::new(env!("CARGO_MANIFEST_DIR")).join("../flows");
    let catalog = load_catalog(&[flows, dir.path().to_owned()]).expect("the catalog");
    let flowcat = Flowcat::new(catalog, integrations(&sim, Some("none")));
    // Polls at 0 s and 30 s; Ctrl-C at 45 s, in the middle of the wait for the third.
    let (record, took) = drained(&flowcat, "t.poll", Duration::from_secs(45)).await;
    assert_eq!(record.status, RunStatus::Interrupted, "{record:?}");
    assert_eq!(took, Duration::from_secs(45), "the drain did not wait for the next poll");
    assert_eq!(sim.stats()["GET /admin/v1/users"], 2, "two polls, none after the stop");
    sim.shutdown().await;
}
