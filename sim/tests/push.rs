//! The Auth API over real HTTP: preauth's four answers, push in every seeded behaviour, and the
//! errors. Timing (holds, expiry, answers) is in `clock.rs`.

use crate::common;

use std::time::Duration;

use common::{auth, start, start_scaled};
use flowcat_sim::Options;
use serde_json::{Value, json};

async fn preauth(sim: &flowcat_sim::Sim, username: &str) -> Value {
    let (s, b) = auth(sim, "POST", "/auth/v2/preauth", &[("username", username)]).await;
    assert_eq!(s, 200, "{b}");
    b["response"].clone()
}

#[tokio::test]
async fn preauth_answers_from_the_users_state() {
    let sim = start().await;
    let alice = preauth(&sim, "alice").await;
    assert_eq!(alice["result"], "auth");
    let device = &alice["devices"][0];
    assert_eq!(device["type"], "phone");
    assert!(device["device"].as_str().expect("id").starts_with("DP"));
    assert!(device["capabilities"].as_array().expect("caps").contains(&json!("push")));
    assert!(device["display_name"].as_str().expect("name").contains("0100"));
    assert_eq!(preauth(&sim, "erin").await["result"], "allow");
    assert_eq!(preauth(&sim, "frank").await["result"], "deny");
    assert_eq!(preauth(&sim, "ivan").await["result"], "deny");
    assert_eq!(preauth(&sim, "grace").await["result"], "enroll");
    assert_eq!(preauth(&sim, "stranger").await["result"], "enroll");
    let henry = preauth(&sim, "henry").await;
    assert_eq!(henry["result"], "auth");
    assert_eq!(henry["devices"][0]["capabilities"], json!(["phone"]));
    let id = common::user_id(&sim, "bob").await;
    let (s, b) = auth(&sim, "POST", "/auth/v2/preauth", &[("user_id", &id)]).await;
    assert_eq!((s, b["response"]["result"].as_str()), (200, Some("auth")));
    let (s, b) = auth(&sim, "POST", "/auth/v2/preauth", &[]).await;
    assert_eq!((s, b["code"].as_u64()), (400, Some(40001)));
    let (s, b) = auth(&sim, "POST", "/auth/v2/preauth", &[("user_id", "DUNOSUCHUSER00000000")]).await;
    assert_eq!((s, b["code"].as_u64()), (400, Some(40002)));
    assert!(sim.audit().is_empty(), "preauth changes nothing");
}

#[tokio::test]
async fn a_deny_new_user_policy_denies_strangers() {
    let mut seed = flowcat_sim::Seed::demo();
    seed.new_user_policy = flowcat_sim::seed::NewUserPolicy::Deny;
    let sim = flowcat_sim::Sim::start_seed("127.0.0.1:0".parse().expect("addr"), &seed, Options::default())
        .await
        .expect("start");
    assert_eq!(preauth(&sim, "stranger").await["result"], "deny");
}

async fn push(sim: &flowcat_sim::Sim, username: &str) -> String {
    let params = [("username", username), ("factor", "push"), ("device", "auto"), ("async", "1")];
    let (s, b) = auth(sim, "POST", "/auth/v2/auth", &params).await;
    assert_eq!(s, 200, "{b}");
    b["response"]["txid"].as_str().expect("txid").to_string()
}

async fn status(sim: &flowcat_sim::Sim, txid: &str) -> Value {
    let (s, b) = auth(sim, "GET", "/auth/v2/auth_status", &[("txid", txid)]).await;
    assert_eq!(s, 200, "{b}");
    b["response"].clone()
}

#[tokio::test]
async fn every_push_behaviour_resolves_as_seeded() {
    let sim = start().await;
    let cases = [
        ("alice", "allow", "allow"),
        ("bob", "deny", "deny"),
        ("carol", "deny", "timeout"),
        ("dave", "deny", "fraud"),
        ("erin", "allow", "bypass"),
        ("frank", "deny", "deny"),
    ];
    let mut txids = Vec::new();
    for (user, _, _) in cases {
        let txid = push(&sim, user).await;
        let groups: Vec<usize> = txid.split('-').map(str::len).collect();
        assert_eq!(groups, [8, 4, 4, 4, 12]);
        txids.push(txid);
    }
    // Past everyone's answer and carol's expiry, without waiting for it.
    sim.advance(Duration::from_secs(61));
    for ((user, result, state), txid) in cases.iter().zip(&txids) {
        let answer = status(&sim, txid).await;
        assert_eq!(
            (answer["result"].as_str(), answer["status"].as_str()),
            (Some(*result), Some(*state)),
            "{user}: {answer}"
        );
    }
    let sent = sim.audit().iter().filter(|e| e.change == "push.send").count();
    assert_eq!(sent, 4, "bypass and disabled users get no push");
}

#[tokio::test]
async fn synchronous_auth_answers_once_the_user_has_or_the_push_expired() {
    // A thousand times faster: alice's 5 s is 5 ms, the 60 s expiry 60 ms.
    let sim = start_scaled(1000.0).await;
    let sync = |user: &'static str| {
        let sim = &sim;
        async move {
            let (s, b) =
                auth(sim, "POST", "/auth/v2/auth", &[("username", user), ("factor", "push"), ("device", "auto")]).await;
            assert_eq!(s, 200, "{b}");
            (b["response"]["result"].as_str().map(str::to_string), b["response"]["status"].as_str().map(str::to_string))
        }
    };
    assert_eq!(sync("alice").await, (Some("allow".into()), Some("allow".into())));
    assert_eq!(sync("dave").await, (Some("deny".into()), Some("fraud".into())));
    assert_eq!(sync("carol").await, (Some("deny".into()), Some("timeout".into())));
    let (s, b) = auth(
        &sim,
        "POST",
        "/auth/v2/auth",
        &[("username", "alice"), ("factor", "push"), ("device", "auto"), ("async", "true")],
    )
    .await;
    assert_eq!((s, b["message_detail"].as_str()), (400, Some("async")), "the clients send \"1\"");
}

#[tokio::test]
async fn push_errors() {
    let sim = start().await;
    let fail = |s: u16, b: &Value, code: u64, detail: &str| {
        assert_eq!((s, b["code"].as_u64(), b["message_detail"].as_str()), (400, Some(code), Some(detail)), "{b}");
    };
    let (s, b) = auth(
        &sim,
        "POST",
        "/auth/v2/auth",
        &[("username", "henry"), ("factor", "push"), ("device", "auto"), ("async", "1")],
    )
    .await;
    fail(s, &b, 40002, "no capable device");
    let (s, b) =
        auth(&sim, "POST", "/auth/v2/auth", &[("username", "grace"), ("factor", "push"), ("device", "auto")]).await;
    fail(s, &b, 40002, "no capable device");
    let (s, b) = auth(
        &sim,
        "POST",
        "/auth/v2/auth",
        &[("username", "alice"), ("factor", "push"), ("device", "DPNOTALICES000000000")],
    )
    .await;
    fail(s, &b, 40002, "no capable device");
    let (s, b) = auth(&sim, "POST", "/auth/v2/auth", &[("username", "alice")]).await;
    fail(s, &b, 40001, "factor");
    // Duo documents `device` as required for a push (a phone id or `auto`).
    let (s, b) =
        auth(&sim, "POST", "/auth/v2/auth", &[("username", "alice"), ("factor", "push"), ("async", "1")]).await;
    fail(s, &b, 40001, "device");
    let (s, b) = auth(&sim, "POST", "/auth/v2/auth", &[("username", "alice"), ("factor", "carrier pigeon")]).await;
    fail(s, &b, 40002, "factor");
    let (s, b) =
        auth(&sim, "POST", "/auth/v2/auth", &[("username", "stranger"), ("factor", "push"), ("device", "auto")]).await;
    fail(s, &b, 40002, "username");
    let (s, b) = auth(&sim, "GET", "/auth/v2/auth_status", &[]).await;
    fail(s, &b, 40001, "txid");
    let (s, b) = auth(&sim, "GET", "/auth/v2/auth_status", &[("txid", "00000000-0000-4000-8000-000000000000")]).await;
    fail(s, &b, 40002, "txid");
    assert!(sim.audit().is_empty());
}

#[tokio::test]
async fn a_push_reaches_a_named_device_once_its_activation_link_is_followed() {
    let sim = start().await;
    // Grace gets a new phone; it takes a push only after the SMS link is followed.
    let grace = common::user_id(&sim, "grace").await;
    let (_, b) = common::admin(
        &sim,
        "POST",
        "/admin/v1/phones",
        &[("number", "+15555550170"), ("type", "mobile"), ("platform", "apple ios")],
    )
    .await;
    let phone = b["response"]["phone_id"].as_str().expect("id").to_string();
    common::admin(&sim, "POST", &format!("/admin/v1/users/{grace}/phones"), &[("phone_id", &phone)]).await;
    let grace_push = [("username", "grace"), ("factor", "push"), ("device", phone.as_str()), ("async", "1")];
    common::admin(&sim, "POST", &format!("/admin/v1/phones/{phone}/send_sms_activation"), &[]).await;
    let (s, b) = auth(&sim, "POST", "/auth/v2/auth", &grace_push).await;
    assert_eq!((s, b["message_detail"].as_str()), (400, Some("no capable device")), "link not followed yet");
    let (s, b) = common::control(&sim, "POST", "/sim/activate", Some(json!({ "phone_id": phone }))).await;
    assert_eq!((s, b["activated"].as_bool()), (200, Some(true)), "{b}");
    let (s, b) = auth(&sim, "POST", "/auth/v2/auth", &grace_push).await;
    assert_eq!(s, 200, "{b}");
    let txid = b["response"]["txid"].as_str().expect("txid");
    sim.advance(Duration::from_secs(5));
    assert_eq!(status(&sim, txid).await["result"], "allow");
}

#[tokio::test]
async fn the_push_entry_keeps_what_the_push_screen_shows() {
    let sim = start().await;
    let params = [
        ("username", "alice"),
        ("factor", "push"),
        ("device", "auto"),
        ("async", "1"),
        ("type", "Help desk check"),
        ("display_username", "Alice E."),
        ("pushinfo", "from=IT%20help%20desk&ticket=INC042"),
    ];
    let (s, b) = auth(&sim, "POST", "/auth/v2/auth", &params).await;
    assert_eq!(s, 200, "{b}");
    let detail = &sim.audit()[0].detail;
    assert_eq!(detail["type"], "Help desk check");
    assert_eq!(detail["display_username"], "Alice E.");
    assert_eq!(detail["pushinfo"], "from=IT%20help%20desk&ticket=INC042");
    auth(&sim, "POST", "/auth/v2/auth", &[("username", "bob"), ("factor", "push"), ("device", "auto"), ("async", "1")])
        .await;
    assert!(sim.audit()[1].detail.get("pushinfo").is_none(), "only what was sent");
}
