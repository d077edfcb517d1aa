//! Signature verification over real HTTP on 127.0.0.1: every version, every 401/403, tampering,
//! and malformed input that must not crash the server.

use crate::common;

use common::{Call, Sig, Tamper, send, start};
use serde_json::json;

async fn expect_code(sim: &flowcat_sim::Sim, call: Call, status: u16, code: u64) -> serde_json::Value {
    let r = send(sim, call).await;
    assert_eq!((r.status, r.body["code"].as_u64()), (status, Some(code)), "{}", r.body);
    assert_eq!(r.body["stat"], "FAIL");
    r.body
}

#[tokio::test]
async fn every_signature_version_is_accepted_for_get_and_post() {
    let sim = start().await;
    for sig in [Sig::V5, Sig::V2Sha1, Sig::V2Sha512] {
        let r = send(&sim, Call::new("GET", "/admin/v1/users", &[("username", "alice")]).sig(sig)).await;
        assert_eq!((r.status, r.body["stat"].as_str()), (200, Some("OK")), "{sig:?}: {}", r.body);
        let name = format!("new user {sig:?}");
        let r = send(&sim, Call::new("POST", "/admin/v1/users", &[("username", &name), ("realname", "A B")]).sig(sig))
            .await;
        assert_eq!(r.status, 200, "{sig:?}: {}", r.body);
        assert_eq!(r.body["response"]["realname"], "A B");
    }
    let mut call = Call::new("GET", "/admin/v1/users", &[("username", "alice")]);
    call.x_duo_date = true;
    call.extra_headers.push(("X-Duo-Extra".into(), "signed too".into()));
    assert_eq!(send(&sim, call).await.status, 200);
}

#[tokio::test]
async fn missing_credentials_are_40101() {
    let sim = start().await;
    let mut call = Call::new("GET", "/admin/v1/users", &[]);
    call.unsigned = true;
    let body = expect_code(&sim, call, 401, 40101).await;
    assert_eq!(body["message"], "Missing request credentials");
}

#[tokio::test]
async fn unknown_ikey_is_40102_and_wrong_secret_is_40103() {
    let sim = start().await;
    let mut call = Call::new("GET", "/admin/v1/users", &[]);
    call.ikey = "DIUNKNOWN00000000000".into();
    expect_code(&sim, call, 401, 40102).await;
    let mut call = Call::new("GET", "/admin/v1/users", &[]);
    call.skey = "not the secret".into();
    let body = expect_code(&sim, call, 401, 40103).await;
    assert_eq!(body, json!({"stat":"FAIL","code":40103,"message":"Invalid signature in request credentials"}));
}

#[tokio::test]
async fn keys_of_the_other_api_are_40301() {
    let sim = start().await;
    let body = expect_code(&sim, Call::new("GET", "/auth/v2/check", &[]), 403, 40301).await;
    assert_eq!(body["message_detail"], "Wrong integration type for this API.");
    expect_code(&sim, Call::new("GET", "/admin/v1/users", &[]).auth_keys(), 403, 40301).await;
}

#[tokio::test]
async fn tampered_requests_are_40103() {
    let sim = start().await;
    let changed_param = Call {
        tamper: Tamper { params: Some(vec![("username".into(), "bob".into())]), body: None },
        ..Call::new("GET", "/admin/v1/users", &[("username", "alice")])
    };
    expect_code(&sim, changed_param, 401, 40103).await;
    let changed_form = Call {
        tamper: Tamper { params: Some(vec![("username".into(), "mallory".into())]), body: None },
        ..Call::new("POST", "/admin/v1/users", &[("username", "eve")]).sig(Sig::V2Sha512)
    };
    expect_code(&sim, changed_form, 401, 40103).await;
    let changed_body = Call {
        tamper: Tamper { params: None, body: Some(br#"{"username":"mallory"}"#.to_vec()) },
        ..Call::new("POST", "/admin/v1/users", &[("username", "eve")])
    };
    expect_code(&sim, changed_body, 401, 40103).await;
    let other_host = Call { sign_host: "api-other.duosecurity.com".into(), ..Call::new("GET", "/admin/v1/users", &[]) };
    expect_code(&sim, other_host, 401, 40103).await;
    // Nothing was created by any of them.
    assert!(sim.audit().is_empty());
}

#[tokio::test]
async fn the_host_is_compared_without_its_port_or_case() {
    let sim = start().await;
    let call = Call { sign_host: "127.0.0.1".into(), ..Call::new("GET", "/admin/v1/users", &[]) };
    assert_eq!(send(&sim, call).await.status, 200);
}

#[tokio::test]
async fn stale_dates_and_reused_dates_past_the_window_are_40103() {
    let sim = start().await;
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs() as i64;
    let stale = flowcat_sim::date::format_rfc2822(now - 301);
    let call = Call { date: Some(stale), ..Call::new("GET", "/admin/v1/users", &[]) };
    let body = expect_code(&sim, call, 401, 40103).await;
    assert_eq!(body["message_detail"], "date outside the allowed clock skew");
    // A retry that re-sends the same Date and signature inside the window is accepted...
    let recent = flowcat_sim::date::format_rfc2822(now - 70);
    let call = Call { date: Some(recent), ..Call::new("GET", "/admin/v1/users", &[]) };
    assert_eq!(send(&sim, call.clone()).await.status, 200);
    assert_eq!(send(&sim, call).await.status, 200);
    // ...and the same request replayed once its date has left the window is not.
    let future = flowcat_sim::date::format_rfc2822(now + 400);
    let call = Call { date: Some(future), ..Call::new("GET", "/admin/v1/users", &[]) };
    expect_code(&sim, call, 401, 40103).await;
}

#[tokio::test]
async fn a_short_window_rejects_a_date_reused_after_it() {
    let options = flowcat_sim::Options { skew: std::time::Duration::from_secs(60), ..Default::default() };
    let sim = common::start_with(options).await;
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs() as i64;
    let call =
        Call { date: Some(flowcat_sim::date::format_rfc2822(now - 55)), ..Call::new("GET", "/admin/v1/users", &[]) };
    assert_eq!(send(&sim, call).await.status, 200);
    let call =
        Call { date: Some(flowcat_sim::date::format_rfc2822(now - 65)), ..Call::new("GET", "/admin/v1/users", &[]) };
    expect_code(&sim, call, 401, 40103).await;
}

#[tokio::test]
async fn malformed_credentials_and_bodies_are_answered_not_crashed_on() {
    let sim = start().await;
    let client = common::client_builder().no_proxy().build().expect("client");
    let url = format!("http://{}/admin/v1/users", sim.addr());
    for auth in ["Basic !!!", "Bearer abc", "Basic", "Basic ZGlzY2FyZA==", "Basic RElTSU1BRE1JTjAwMDAwMDAwMDE6eno="] {
        let r = client
            .get(&url)
            .header("Date", common::now_date())
            .header("Authorization", auth)
            .send()
            .await
            .expect("send");
        assert!(matches!(r.status().as_u16(), 401), "{auth}: {}", r.status());
    }
    let r =
        client.get(&url).header("Date", "yesterday").header("Authorization", "Basic !!!").send().await.expect("send");
    assert_eq!(r.status().as_u16(), 401);
    // A signed body that is not a JSON object.
    let call = Call { json: Some(json!(["not", "an", "object"])), ..Call::new("POST", "/admin/v1/users", &[]) };
    expect_code(&sim, call, 400, 40002).await;
    // A body larger than the simulator reads.
    let big = "x".repeat(2 << 20);
    let call = Call { json: Some(json!({ "username": big })), ..Call::new("POST", "/admin/v1/users", &[]) };
    expect_code(&sim, call, 413, 41301).await;
    // Still serving.
    assert_eq!(send(&sim, Call::new("GET", "/admin/v1/users", &[])).await.status, 200);
}

#[tokio::test]
async fn unknown_routes_are_404_and_wrong_methods_405() {
    let sim = start().await;
    expect_code(&sim, Call::new("GET", "/admin/v1/nothing", &[]), 404, 40401).await;
    expect_code(&sim, Call::new("PUT", "/admin/v1/users", &[]), 405, 40501).await;
}

#[tokio::test]
async fn ping_needs_no_signature() {
    let sim = start().await;
    let mut call = Call::new("GET", "/auth/v2/ping", &[]);
    call.unsigned = true;
    let r = send(&sim, call).await;
    assert_eq!(r.status, 200);
    assert!(r.body["response"]["time"].as_i64().expect("time") > 1_600_000_000);
    let (status, body) = common::auth(&sim, "GET", "/auth/v2/check", &[]).await;
    assert_eq!((status, body["stat"].as_str()), (200, Some("OK")));
}
