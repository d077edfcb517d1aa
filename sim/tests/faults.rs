//! Faults over real HTTP: latency, 429 storms with and without a retry header, 5xx, and a
//! connection dropped after the change was applied; set from Rust and from `/sim/faults`.

use crate::common;

use std::time::{Duration, Instant};

use common::{Call, admin, control, send, start, try_send, try_send_with};
use flowcat_sim::Faults;
use serde_json::json;

#[tokio::test]
async fn latency_is_added_per_route_and_globally() {
    let sim = start().await;
    let mut faults = Faults::default();
    faults.apply_spec("route=GET /admin/v1/users,kind=latency,ms=150").expect("spec");
    sim.set_faults(faults).expect("set");
    let started = Instant::now();
    admin(&sim, "GET", "/admin/v1/users", &[("username", "alice")]).await;
    assert!(started.elapsed() >= Duration::from_millis(150));
    let started = Instant::now();
    admin(&sim, "GET", "/admin/v1/phones", &[]).await;
    assert!(started.elapsed() < Duration::from_millis(150), "other routes are not slowed");
}

#[tokio::test]
async fn a_429_storm_then_normal_service() {
    let sim = start().await;
    let (s, _) = control(
        &sim,
        "PUT",
        "/sim/faults",
        Some(json!({
            "routes": { "POST /admin/v1/users": { "status429": { "count": 2, "retry_after": 3 } } }
        })),
    )
    .await;
    assert_eq!(s, 200);
    for _ in 0..2 {
        let r = send(&sim, Call::new("POST", "/admin/v1/users", &[("username", "storm")])).await;
        assert_eq!((r.status, r.body["code"].as_u64()), (429, Some(42901)));
        assert_eq!(r.headers["retry-after"], "3");
    }
    let r = send(&sim, Call::new("POST", "/admin/v1/users", &[("username", "storm")])).await;
    assert_eq!(r.status, 200);
    assert_eq!(sim.stats()["POST /admin/v1/users"], 3);
    assert_eq!(sim.audit().len(), 1, "only the served attempt changed anything");
    let (_, faults) = control(&sim, "GET", "/sim/faults", None).await;
    assert_eq!(faults["routes"]["POST /admin/v1/users"]["status429"]["count"], 0);
}

#[tokio::test]
async fn a_429_without_a_header_and_with_x_retry_after() {
    let sim = start().await;
    let mut faults = Faults::default();
    faults.apply_spec("kind=429,count=1").expect("spec");
    sim.set_faults(faults).expect("set");
    let r = send(&sim, Call::new("GET", "/admin/v1/users", &[])).await;
    assert_eq!(r.status, 429);
    assert!(r.headers.get("retry-after").is_none() && r.headers.get("x-retry-after").is_none());
    let mut faults = Faults::default();
    faults.apply_spec("kind=429,count=1,retry_after=7,header=X-Retry-After").expect("spec");
    sim.set_faults(faults).expect("set");
    let r = send(&sim, Call::new("GET", "/admin/v1/users", &[])).await;
    assert_eq!((r.status, r.headers["x-retry-after"].to_str().ok()), (429, Some("7")));
    assert_eq!(send(&sim, Call::new("GET", "/admin/v1/users", &[])).await.status, 200);
}

#[tokio::test]
async fn server_errors_count_down() {
    let sim = start().await;
    let mut faults = Faults::default();
    faults.apply_spec("route=GET /admin/v1/phones,kind=5xx,count=1").expect("spec");
    faults.apply_spec("route=GET /admin/v1/users,kind=5xx,count=1,status=503").expect("spec");
    sim.set_faults(faults).expect("set");
    let (s, b) = admin(&sim, "GET", "/admin/v1/phones", &[]).await;
    assert_eq!((s, b["code"].as_u64(), b["stat"].as_str()), (500, Some(50001), Some("FAIL")));
    let (s, b) = admin(&sim, "GET", "/admin/v1/users", &[]).await;
    assert_eq!((s, b["code"].as_u64()), (503, Some(50301)));
    assert_eq!(admin(&sim, "GET", "/admin/v1/phones", &[]).await.0, 200);
}

#[tokio::test]
async fn a_dropped_connection_still_applies_the_change() {
    let sim = start().await;
    let mut faults = Faults::default();
    faults.apply_spec("route=POST /admin/v1/users,kind=drop,count=1").expect("spec");
    sim.set_faults(faults).expect("set");
    let outcome = try_send(&sim, Call::new("POST", "/admin/v1/users", &[("username", "ghost")])).await;
    assert!(outcome.is_err(), "the client sees no response: {outcome:?}");
    // The user exists: the outcome was unknown to the client, not to Duo.
    let (s, b) = admin(&sim, "GET", "/admin/v1/users", &[("username", "ghost")]).await;
    assert_eq!((s, b["response"].as_array().map(Vec::len)), (200, Some(1)));
    // A retry meets the duplicate.
    let (s, b) = admin(&sim, "POST", "/admin/v1/users", &[("username", "ghost")]).await;
    assert_eq!((s, b["code"].as_u64()), (400, Some(40003)));
    let changes: Vec<String> = sim.audit().iter().map(|e| e.change.clone()).collect();
    assert_eq!(changes, ["user.create"]);
}

#[tokio::test]
async fn the_control_api_refuses_bad_fault_configurations() {
    let sim = start().await;
    let (s, b) =
        control(&sim, "PUT", "/sim/faults", Some(json!({ "routes": { "GET /nope": { "latency_ms": 1 } } }))).await;
    assert_eq!(s, 400);
    assert!(b["error"].as_str().expect("error").contains("/nope"));
    let (s, _) =
        control(&sim, "PUT", "/sim/faults", Some(json!({ "global": { "status5xx": { "count": 1, "status": 404 } } })))
            .await;
    assert_eq!(s, 400);
    let (s, _) = control(&sim, "PUT", "/sim/faults", Some(json!({ "bogus": 1 }))).await;
    assert_eq!(s, 400);
    assert_eq!(sim.faults(), Faults::default());
}

/// Duo does not know that a client gave up: a write it received is applied even when the client
/// closes the connection before the answer (here, during the route's latency). A simulator that
/// dropped the write with the connection would be kinder than Duo: a client resuming after a
/// crash would find nothing to reconcile and could send the write again unpunished.
#[tokio::test]
async fn a_write_is_applied_even_when_the_client_leaves_before_the_answer() {
    let sim = start().await;
    let mut faults = Faults::default();
    faults.apply_spec("route=POST /admin/v1/users,kind=latency,ms=300").expect("spec");
    sim.set_faults(faults).expect("set");
    let impatient = common::client_builder().no_proxy().timeout(Duration::from_millis(50)).build().expect("client");
    let gone =
        try_send_with(&impatient, sim.addr(), Call::new("POST", "/admin/v1/users", &[("username", "left-early")]))
            .await;
    assert!(gone.is_err(), "the client gave up before the answer");
    let t0 = Instant::now();
    while !sim.audit().iter().any(|e| e.change == "user.create" && e.detail["username"] == "left-early") {
        assert!(t0.elapsed() < Duration::from_secs(10), "the write was dropped with its connection: {:?}", sim.audit());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(sim.stats()["POST /admin/v1/users"], 1);
}
