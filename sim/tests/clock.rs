//! The simulator's clock over real HTTP: reading and advancing it, long-polls held on it and
//! woken by an advance or an answer, push expiry, answering a push from the control API. No test
//! sleeps for real time: they advance the clock or run it faster.

use crate::common;

use std::time::{Duration, Instant};

use common::{auth, control, start, start_with};
use flowcat_sim::{ControlError, Options, Outcome, Seed, Sim};
use serde_json::{Value, json};

async fn push(sim: &Sim, username: &str) -> String {
    let params = [("username", username), ("factor", "push"), ("device", "auto"), ("async", "1")];
    let (s, b) = auth(sim, "POST", "/auth/v2/auth", &params).await;
    assert_eq!(s, 200, "{b}");
    b["response"]["txid"].as_str().expect("txid").to_string()
}

async fn status(sim: &Sim, txid: &str) -> Value {
    let (s, b) = auth(sim, "GET", "/auth/v2/auth_status", &[("txid", txid)]).await;
    assert_eq!(s, 200, "{b}");
    b["response"].clone()
}

/// Starts an `auth_status` call and checks it is still held after a moment.
async fn held(sim: &Sim, txid: &str) -> tokio::task::JoinHandle<(u16, Value)> {
    let (addr_sim, txid) = (sim.addr(), txid.to_string());
    let call = common::Call::new("GET", "/auth/v2/auth_status", &[("txid", &txid)]).auth_keys();
    let task = tokio::spawn(async move {
        let client = common::client_builder().no_proxy().build().expect("client");
        let r = common::try_send_with(&client, addr_sim, call).await.expect("request");
        (r.status, r.body)
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!task.is_finished(), "the long-poll is held while the push waits");
    task
}

async fn answered(task: tokio::task::JoinHandle<(u16, Value)>) -> Value {
    let (s, b) = tokio::time::timeout(Duration::from_secs(5), task).await.expect("answered at once").expect("task");
    assert_eq!(s, 200, "{b}");
    b["response"].clone()
}

#[tokio::test]
async fn the_clock_reads_and_advances_over_http_and_in_rust() {
    let sim = start().await;
    let (s, clock) = control(&sim, "GET", "/sim/clock", None).await;
    assert_eq!((s, clock["time_scale"].as_f64()), (200, Some(1.0)));
    let before = clock["now_ms"].as_i64().expect("now");
    assert!(before > 1_600_000_000_000, "starts at the wall time: {before}");
    let (s, b) = control(&sim, "POST", "/sim/clock/advance", Some(json!({ "ms": 3_600_000 }))).await;
    assert_eq!(s, 200, "{b}");
    assert!(b["now_ms"].as_i64().expect("now") >= before + 3_600_000);
    let later = sim.advance(Duration::from_secs(86_400));
    assert!(later >= before + 90_000_000 && sim.now_ms() >= later);
    for bad in [json!({}), json!({ "ms": -1 }), json!({ "ms": "5" }), json!({ "ms": 1, "extra": 2 })] {
        let (s, b) = control(&sim, "POST", "/sim/clock/advance", Some(bad.clone())).await;
        assert_eq!(s, 400, "{bad}: {b}");
        assert!(b["error"].is_string());
    }
    // A user created now is stamped with sim time, a day ahead of the wall clock.
    let (_, b) = common::admin(&sim, "POST", "/admin/v1/users", &[("username", "later")]).await;
    assert!(b["response"]["created"].as_i64().expect("created") * 1000 >= later - 1000);
    assert!(sim.audit()[0].time >= later, "audit times are sim times");
    let (_, b) = auth(&sim, "GET", "/auth/v2/check", &[]).await;
    assert!(b["response"]["time"].as_i64().expect("time") * 1000 >= later - 1000);
}

#[tokio::test]
async fn a_held_long_poll_answers_as_soon_as_an_advance_resolves_the_push() {
    let sim = start().await;
    let txid = push(&sim, "alice").await;
    let task = held(&sim, &txid).await;
    let started = Instant::now();
    sim.advance(Duration::from_secs(5));
    let answer = answered(task).await;
    assert_eq!((answer["result"].as_str(), answer["status"].as_str()), (Some("allow"), Some("allow")));
    assert!(started.elapsed() < Duration::from_secs(2), "{:?}", started.elapsed());
}

#[tokio::test]
async fn an_unanswered_push_expires_after_sixty_seconds_as_timeout() {
    let sim = start().await;
    let txid = push(&sim, "carol").await;
    sim.advance(Duration::from_secs(59));
    let task = held(&sim, &txid).await;
    sim.advance(Duration::from_secs(1));
    let answer = answered(task).await;
    assert_eq!(answer, json!({"result":"deny","status":"timeout","status_msg":"Login timed out."}));
    // Answering it now is too late.
    let (s, b) = control(&sim, "POST", "/sim/push/answer", Some(json!({ "txid": txid, "answer": "approve" }))).await;
    assert_eq!(s, 409, "{b}");
}

#[tokio::test]
async fn a_delay_past_the_expiry_never_answers() {
    let mut seed = Seed::demo();
    seed.users[0].push_delay_ms = 120_000; // alice would approve after two minutes
    let sim = Sim::start_seed("127.0.0.1:0".parse().expect("addr"), &seed, Options::default()).await.expect("start");
    let txid = push(&sim, "alice").await;
    sim.advance(Duration::from_secs(60));
    assert_eq!(status(&sim, &txid).await["status"], "timeout");
    sim.advance(Duration::from_secs(3600));
    assert_eq!(status(&sim, &txid).await["status"], "timeout", "the late answer never counts");
}

#[tokio::test]
async fn a_bounded_long_poll_answers_waiting_on_sim_time() {
    // A 30 s hold at 1000× is 30 ms of real time.
    let options = Options { long_poll: Duration::from_secs(30), time_scale: 1000.0, ..Options::default() };
    let sim = start_with(options).await;
    let txid = push(&sim, "carol").await;
    let answer = status(&sim, &txid).await;
    assert_eq!(
        answer,
        json!({"result":"waiting","status":"pushed","status_msg":"Pushed a login request to your device..."})
    );
    // The next hold outlasts the expiry (60 s from the push): it answers `timeout`, in ms.
    let started = Instant::now();
    let answer = status(&sim, &txid).await;
    assert!(answer["status"] == "timeout" || answer["status"] == "pushed", "{answer}");
    assert_eq!(status(&sim, &txid).await["status"], "timeout");
    assert!(started.elapsed() < Duration::from_secs(2), "{:?}", started.elapsed());
}

#[tokio::test]
async fn answering_a_push_from_the_control_api_wakes_the_held_poll() {
    let sim = start().await;
    let txid = push(&sim, "carol").await;
    let task = held(&sim, &txid).await;
    let (s, b) = control(&sim, "POST", "/sim/push/answer", Some(json!({ "txid": txid, "answer": "fraud" }))).await;
    assert_eq!((s, b), (200, json!({ "txid": txid, "answer": "fraud" })));
    let answer = answered(task).await;
    assert_eq!((answer["result"].as_str(), answer["status"].as_str()), (Some("deny"), Some("fraud")));
    let (s, _) = control(&sim, "POST", "/sim/push/answer", Some(json!({ "txid": txid, "answer": "approve" }))).await;
    assert_eq!(s, 409, "an ended push takes no second answer");
    let unknown = json!({ "txid": "00000000-0000-4000-8000-000000000000", "answer": "approve" });
    assert_eq!(control(&sim, "POST", "/sim/push/answer", Some(unknown)).await.0, 404);
    let bad = json!({ "txid": txid, "answer": "timeout" });
    assert_eq!(control(&sim, "POST", "/sim/push/answer", Some(bad)).await.0, 400);
    let entry = sim.audit().into_iter().find(|e| e.change == "push.answer").expect("logged");
    assert_eq!((entry.detail["answer"].as_str(), entry.route.as_str()), (Some("fraud"), "POST /sim/push/answer"));
    // The same from Rust: a fresh push answered before alice's own 5 s.
    let txid = push(&sim, "alice").await;
    sim.answer_push(&txid, Outcome::Deny).expect("answered");
    assert_eq!(status(&sim, &txid).await["status"], "deny");
    assert!(matches!(sim.answer_push(&txid, Outcome::Approve), Err(ControlError::Conflict(_))));
    assert!(matches!(sim.answer_push("nope", Outcome::Approve), Err(ControlError::NotFound(_))));
}

#[tokio::test]
async fn synchronous_auth_is_held_until_an_advance_resolves_it() {
    let sim = start().await;
    let call =
        common::Call::new("POST", "/auth/v2/auth", &[("username", "bob"), ("factor", "push"), ("device", "auto")])
            .auth_keys();
    let addr = sim.addr();
    let task = tokio::spawn(async move {
        let client = common::client_builder().no_proxy().build().expect("client");
        let r = common::try_send_with(&client, addr, call).await.expect("request");
        (r.status, r.body)
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!task.is_finished(), "bob takes 5 s of sim time to deny");
    sim.advance(Duration::from_secs(5));
    let answer = answered(task).await;
    assert_eq!((answer["result"].as_str(), answer["status"].as_str()), (Some("deny"), Some("deny")));
}
