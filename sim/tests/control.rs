//! The audit log, stats, state file, reset, integrations file and shutdown, over real HTTP.

use crate::common;

use common::{admin, auth, control, start};
use flowcat_sim::{Options, Sim, State};
use serde_json::json;

#[tokio::test]
async fn the_audit_log_records_exactly_the_changes() {
    let sim = start().await;
    admin(&sim, "GET", "/admin/v1/users", &[("username", "alice")]).await;
    let (_, b) = admin(&sim, "POST", "/admin/v1/users", &[("username", "newbie")]).await;
    let user_id = b["response"]["user_id"].as_str().expect("id").to_string();
    let (_, b) = admin(
        &sim,
        "POST",
        "/admin/v1/phones",
        &[("number", "+15555550180"), ("type", "mobile"), ("platform", "apple ios")],
    )
    .await;
    let phone_id = b["response"]["phone_id"].as_str().expect("id").to_string();
    admin(&sim, "POST", &format!("/admin/v1/users/{user_id}/phones"), &[("phone_id", &phone_id)]).await;
    admin(&sim, "POST", "/admin/v1/users", &[("username", "newbie")]).await; // duplicate: no change
    auth(
        &sim,
        "POST",
        "/auth/v2/auth",
        &[("username", "alice"), ("factor", "push"), ("device", "auto"), ("async", "1")],
    )
    .await;
    let (s, log) = control(&sim, "GET", "/sim/audit", None).await;
    assert_eq!(s, 200);
    let entries = log.as_array().expect("entries");
    let summary: Vec<(u64, &str, &str)> = entries
        .iter()
        .map(|e| {
            (
                e["seq"].as_u64().expect("seq"),
                e["change"].as_str().expect("change"),
                e["route"].as_str().expect("route"),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            (1, "user.create", "POST /admin/v1/users"),
            (2, "phone.create", "POST /admin/v1/phones"),
            (3, "phone.associate", "POST /admin/v1/users/{user_id}/phones"),
            (4, "push.send", "POST /auth/v2/auth"),
        ]
    );
    assert_eq!(entries[0]["ikey"], common::ADMIN_IKEY);
    assert_eq!(entries[3]["ikey"], common::AUTH_IKEY);
    assert_eq!(entries[0]["method"], "POST");
    assert_eq!(entries[2]["detail"], json!({ "user_id": user_id, "phone_id": phone_id }));
    assert!(entries[0]["time"].as_i64().expect("time") > 1_600_000_000_000);
    assert_eq!(sim.audit().len(), 4);
    let (_, cleared) = control(&sim, "DELETE", "/sim/audit", None).await;
    assert_eq!(cleared, json!({ "cleared": 4 }));
    admin(&sim, "POST", "/admin/v1/users", &[("username", "later")]).await;
    assert_eq!(sim.audit()[0].seq, 5, "sequence numbers are never reused");
}

#[tokio::test]
async fn stats_count_every_attempt_per_route() {
    let sim = start().await;
    for _ in 0..3 {
        admin(&sim, "GET", "/admin/v1/users", &[("username", "alice")]).await;
    }
    auth(&sim, "GET", "/auth/v2/check", &[]).await;
    let (_, stats) = control(&sim, "GET", "/sim/stats", None).await;
    assert_eq!(stats, json!({ "GET /admin/v1/users": 3, "GET /auth/v2/check": 1 }));
}

#[tokio::test]
async fn state_is_readable_without_secrets_and_resets() {
    let sim = start().await;
    admin(&sim, "POST", "/admin/v1/users", &[("username", "temp")]).await;
    let (_, state) = control(&sim, "GET", "/sim/state", None).await;
    assert_eq!(state["users"].as_array().expect("users").len(), 10);
    assert!(!state.to_string().contains(common::ADMIN_SKEY));
    let (s, _) = control(&sim, "POST", "/sim/reset", None).await;
    assert_eq!(s, 200);
    assert_eq!(sim.state().users.len(), 9);
    assert!(sim.audit().is_empty());
    assert!(sim.stats().is_empty());
}

#[tokio::test]
async fn the_state_file_round_trips() {
    let sim = start().await;
    admin(&sim, "POST", "/admin/v1/users", &[("username", "persisted")]).await;
    let txid_body = auth(
        &sim,
        "POST",
        "/auth/v2/auth",
        &[("username", "alice"), ("factor", "push"), ("device", "auto"), ("async", "1")],
    )
    .await
    .1;
    let dir = std::env::temp_dir().join(format!("flowcat-sim-state-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let path = dir.join("state.json");
    let before = sim.shutdown().await;
    before.save(&path).expect("save");
    let loaded = State::load(&path).expect("load");
    assert_eq!(loaded, before);
    let again = Sim::start("127.0.0.1:0".parse().expect("addr"), loaded, Options::default()).await.expect("start");
    let (_, b) = admin(&again, "GET", "/admin/v1/users", &[("username", "persisted")]).await;
    assert_eq!(b["response"].as_array().map(Vec::len), Some(1));
    assert_eq!(again.audit().len(), 2, "the audit log is kept in the state file");
    let txid = txid_body["response"]["txid"].as_str().expect("txid");
    assert!(again.now_ms() >= before.clock_ms, "the clock never runs back across a restart");
    again.advance(std::time::Duration::from_secs(5));
    let (s, b) = auth(&again, "GET", "/auth/v2/auth_status", &[("txid", txid)]).await;
    assert_eq!((s, b["response"]["result"].as_str()), (200, Some("allow")));
    // New ids continue the generator instead of repeating it.
    let (_, b) = admin(&again, "POST", "/admin/v1/users", &[("username", "next")]).await;
    let ids: Vec<&str> = before.users.iter().map(|u| u.user_id.as_str()).collect();
    assert!(!ids.contains(&b["response"]["user_id"].as_str().expect("id")));
    assert!(State::load(&dir.join("missing.json")).is_err());
    std::fs::write(dir.join("bad.json"), "{").expect("write");
    let err = State::load(&dir.join("bad.json")).expect_err("bad json").to_string();
    assert!(err.contains("bad.json") && err.contains("state"), "{err}");
    std::fs::remove_dir_all(&dir).expect("cleanup");
}

#[tokio::test]
async fn shutdown_stops_serving_and_closed_resolves() {
    let sim = start().await;
    let addr = sim.addr();
    let closed = sim.closed();
    sim.begin_shutdown();
    closed.await;
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
}

#[tokio::test]
async fn only_loopback_is_served() {
    let err = Sim::start_seed("0.0.0.0:0".parse().expect("addr"), &flowcat_sim::Seed::demo(), Options::default())
        .await
        .expect_err("refused");
    assert!(err.to_string().contains("loopback"), "{err}");
}

#[tokio::test]
async fn the_integrations_file_names_the_bound_port() {
    let sim = start().await;
    let text = flowcat_sim::integrations::render(sim.addr(), &sim.state().integrations);
    let port = sim.addr().port();
    assert!(text.contains(&format!("host: \"127.0.0.1:{port}\"")), "{text}");
    assert!(text.contains("ikey: DISIMAUTH00000000001"));
}
