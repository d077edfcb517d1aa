//! The rest of the users, phones, tokens, bypass codes, groups and logs families, and the Auth
//! API's enrolment: each call's answer, its strictness, and what it changes elsewhere in the
//! simulator's state.

use crate::common;

use std::time::Duration;

use common::{admin, auth, control, start, user_id};
use serde_json::Value;

fn refused(s: u16, b: &Value, code: u64, detail: &str) {
    assert_eq!((s, b["code"].as_u64(), b["message_detail"].as_str()), (400, Some(code), Some(detail)), "{b}");
}

fn ok(s: u16, b: &Value) -> Value {
    assert_eq!((s, b["stat"].as_str()), (200, Some("OK")), "{b}");
    b["response"].clone()
}

fn not_found(s: u16, b: &Value) {
    assert_eq!((s, b["code"].as_u64()), (404, Some(40401)), "{b}");
}

#[tokio::test]
async fn tokens_are_created_read_resynced_and_deleted() {
    let sim = start().await;
    let secret = flowcat_sim::seed::DEMO_OATH_SECRET;
    let create = |params: Vec<(&'static str, &'static str)>| {
        let sim = &sim;
        async move { admin(sim, "POST", "/admin/v1/tokens", &params).await }
    };
    let (s, b) = create(vec![("type", "h6"), ("serial", "900001")]).await;
    refused(s, &b, 40001, "secret");
    let (s, b) = create(vec![("type", "d1"), ("serial", "900001")]).await;
    refused(s, &b, 40002, "type");
    let (s, b) = create(vec![("type", "h6"), ("serial", "900001"), ("secret", "not hex")]).await;
    refused(s, &b, 40002, "secret");
    let (s, b) = create(vec![("type", "h6"), ("serial", "900001"), ("secret", secret), ("totp_step", "30")]).await;
    refused(s, &b, 40002, "totp_step");
    let (s, b) = create(vec![("type", "yk"), ("serial", "900002"), ("private_id", "0123456789ab")]).await;
    refused(s, &b, 40001, "aes_key");
    let (s, b) = create(vec![("type", "h6"), ("serial", "100001"), ("secret", secret)]).await;
    assert_eq!((s, b["code"].as_u64()), (400, Some(40003)), "the demo's h6 100001 exists: {b}");
    let (s, b) = create(vec![("type", "t8"), ("serial", "900003"), ("secret", secret), ("totp_step", "60")]).await;
    let token = ok(s, &b);
    // Duo documents `totp_step` as null for every token type it supports.
    assert_eq!((token["type"].as_str(), &token["totp_step"]), (Some("t8"), &Value::Null));
    assert_eq!(token["users"], serde_json::json!([]));
    assert!(token.get("secret").is_none(), "the secret is never shown: {token}");
    let id = token["token_id"].as_str().expect("id").to_string();
    let (s, b) = admin(&sim, "GET", &format!("/admin/v1/tokens/{id}"), &[]).await;
    assert_eq!(ok(s, &b)["serial"], "900003");

    // The demo HOTP token (RFC 4226's secret, counter 0): codes of counters 1..3 resync it, and
    // then the same codes are behind it.
    let (_, b) = admin(&sim, "GET", "/admin/v1/tokens", &[("type", "h6"), ("serial", "100001")]).await;
    let hotp = b["response"][0]["token_id"].as_str().expect("demo token").to_string();
    let resync = format!("/admin/v1/tokens/{hotp}/resync");
    let (s, b) = admin(&sim, "POST", &resync, &[("code1", "287082"), ("code2", "969429"), ("code3", "359152")]).await;
    refused(s, &b, 40002, "code1");
    let (s, b) = admin(&sim, "POST", &resync, &[("code1", "287082"), ("code2", "359152")]).await;
    refused(s, &b, 40001, "code3");
    let (s, b) = admin(&sim, "POST", &resync, &[("code1", "287082"), ("code2", "359152"), ("code3", "969429")]).await;
    assert_eq!(ok(s, &b), "");
    let (s, b) = admin(&sim, "POST", &resync, &[("code1", "287082"), ("code2", "359152"), ("code3", "969429")]).await;
    refused(s, &b, 40002, "code1");
    let (s, b) = admin(&sim, "POST", &resync, &[("code1", "338314"), ("code2", "254676"), ("code3", "287922")]).await;
    assert_eq!(ok(s, &b), "", "counters 4..6 follow");
    let bob = user_id(&sim, "bob").await;
    let (_, b) = admin(&sim, "GET", &format!("/admin/v1/users/{bob}/tokens"), &[]).await;
    let yubikey = b["response"][0]["token_id"].as_str().expect("bob's yubikey").to_string();
    let (s, b) = admin(
        &sim,
        "POST",
        &format!("/admin/v1/tokens/{yubikey}/resync"),
        &[("code1", "123456"), ("code2", "123456"), ("code3", "123456")],
    )
    .await;
    refused(s, &b, 40002, "token_id");

    // Deleting bob's token takes it from bob; a second delete is 404.
    let (s, b) = admin(&sim, "DELETE", &format!("/admin/v1/tokens/{yubikey}"), &[]).await;
    assert_eq!(ok(s, &b), "");
    let (_, b) = admin(&sim, "GET", &format!("/admin/v1/users/{bob}"), &[]).await;
    assert_eq!(b["response"]["tokens"], serde_json::json!([]));
    let (s, b) = admin(&sim, "DELETE", &format!("/admin/v1/tokens/{yubikey}"), &[]).await;
    not_found(s, &b);
    let (s, b) = admin(&sim, "GET", &format!("/admin/v1/tokens/{yubikey}"), &[]).await;
    not_found(s, &b);
}

#[tokio::test]
async fn the_accounts_bypass_codes_list_read_and_delete_without_showing_a_code() {
    let sim = start().await;
    let alice = user_id(&sim, "alice").await;
    let bob = user_id(&sim, "bob").await;
    let (s, b) = admin(&sim, "POST", &format!("/admin/v1/users/{alice}/bypass_codes"), &[("count", "2")]).await;
    let codes = ok(s, &b);
    let (s, b) = admin(&sim, "POST", &format!("/admin/v1/users/{bob}/bypass_codes"), &[("count", "1")]).await;
    ok(s, &b);
    let (s, b) = admin(&sim, "GET", "/admin/v1/bypass_codes", &[("limit", "2")]).await;
    let page = ok(s, &b);
    assert_eq!((page.as_array().map(Vec::len), b["metadata"]["total_objects"].as_u64()), (Some(2), Some(3)));
    assert_eq!(b["metadata"]["next_offset"], 2);
    assert_eq!(page[0]["user"]["username"], "alice");
    let text = b.to_string();
    for code in codes.as_array().expect("codes") {
        assert!(!text.contains(code.as_str().expect("a code")), "a list shows no code: {text}");
    }
    let id = page[0]["bypass_code_id"].as_str().expect("id").to_string();
    let (s, b) = admin(&sim, "GET", &format!("/admin/v1/bypass_codes/{id}"), &[]).await;
    assert_eq!(ok(s, &b)["user"]["user_id"], alice.as_str());
    let (s, b) = admin(&sim, "DELETE", &format!("/admin/v1/bypass_codes/{id}"), &[]).await;
    assert_eq!(ok(s, &b), "");
    for method in ["GET", "DELETE"] {
        let (s, b) = admin(&sim, method, &format!("/admin/v1/bypass_codes/{id}"), &[]).await;
        not_found(s, &b);
    }
    let (_, b) = admin(&sim, "GET", &format!("/admin/v1/users/{alice}/bypass_codes"), &[]).await;
    assert_eq!(b["metadata"]["total_objects"], 1, "alice keeps her other code: {b}");
    // Deleting bob takes his codes with him.
    admin(&sim, "DELETE", &format!("/admin/v1/users/{bob}"), &[]).await;
    let (_, b) = admin(&sim, "GET", "/admin/v1/bypass_codes", &[]).await;
    assert_eq!(b["metadata"]["total_objects"], 1, "{b}");
    // ... and unassigns his YubiKey; deleting carol takes her out of her groups.
    let (_, b) = admin(&sim, "GET", "/admin/v1/tokens", &[("type", "yk"), ("serial", "200002")]).await;
    assert_eq!(b["response"][0]["users"], serde_json::json!([]), "{b}");
    let henry = user_id(&sim, "henry").await;
    let (_, b) = admin(&sim, "GET", &format!("/admin/v1/users/{henry}/groups"), &[]).await;
    let help_desk = b["response"][0]["group_id"].as_str().expect("henry is in Help Desk").to_string();
    admin(&sim, "DELETE", &format!("/admin/v1/users/{henry}"), &[]).await;
    let (_, b) = admin(&sim, "GET", &format!("/admin/v2/groups/{help_desk}/users"), &[]).await;
    assert_eq!(b["response"], serde_json::json!([]), "{b}");
    let (_, state) = control(&sim, "GET", "/sim/state", None).await;
    let groups = state["helpdesk"]["groups"].as_array().expect("groups");
    assert!(groups.iter().all(|g| !g["members"].to_string().contains(&henry)), "no member left behind: {groups:?}");
    // The simulator's own view of its state hides the codes too.
    let (_, state) = control(&sim, "GET", "/sim/state", None).await;
    let code = codes[1].as_str().expect("alice's other code");
    assert!(!state.to_string().contains(code), "GET /sim/state redacts bypass codes");
}

#[tokio::test]
async fn groups_are_created_read_updated_and_deleted() {
    let sim = start().await;
    let (s, b) = admin(&sim, "POST", "/admin/v1/groups", &[("desc", "no name")]).await;
    refused(s, &b, 40001, "name");
    let (s, b) = admin(&sim, "POST", "/admin/v1/groups", &[("name", "VPN Users")]).await;
    assert_eq!((s, b["code"].as_u64()), (400, Some(40003)), "{b}");
    let (s, b) = admin(&sim, "POST", "/admin/v1/groups", &[("name", "Auditors"), ("status", "asleep")]).await;
    refused(s, &b, 40002, "status");
    let (s, b) = admin(&sim, "POST", "/admin/v1/groups", &[("name", "Auditors"), ("status", "bypass")]).await;
    let group = ok(s, &b);
    assert_eq!((group["name"].as_str(), group["status"].as_str()), (Some("Auditors"), Some("Bypass")));
    let id = group["group_id"].as_str().expect("id").to_string();
    let alice = user_id(&sim, "alice").await;
    let bob = user_id(&sim, "bob").await;
    for user in [&alice, &bob] {
        let (s, b) = admin(&sim, "POST", &format!("/admin/v1/users/{user}/groups"), &[("group_id", &id)]).await;
        ok(s, &b);
    }
    let (s, b) = admin(&sim, "GET", &format!("/admin/v1/groups/{id}"), &[]).await;
    let v1 = ok(s, &b);
    assert_eq!(v1["users"][1]["username"], "bob", "{v1}");
    let (s, b) = admin(&sim, "GET", &format!("/admin/v2/groups/{id}"), &[]).await;
    assert!(ok(s, &b).get("users").is_none(), "v2 leaves the members to /users");
    let (s, b) = admin(&sim, "GET", &format!("/admin/v2/groups/{id}/users"), &[("limit", "1"), ("offset", "1")]).await;
    assert_eq!(ok(s, &b), serde_json::json!([{ "user_id": bob, "username": "bob" }]));
    assert_eq!((b["metadata"]["total_objects"].as_u64(), b["metadata"]["prev_offset"].as_u64()), (Some(2), Some(0)));
    let path = format!("/admin/v1/groups/{id}");
    let (s, b) = admin(&sim, "POST", &path, &[("name", "Contractors")]).await;
    assert_eq!((s, b["code"].as_u64()), (400, Some(40003)), "{b}");
    let (s, b) = admin(&sim, "POST", &path, &[("name", "Internal Auditors"), ("desc", "SOX")]).await;
    assert_eq!(ok(s, &b)["desc"], "SOX");
    let (s, b) = admin(&sim, "DELETE", &path, &[]).await;
    assert_eq!(ok(s, &b), "");
    let (_, b) = admin(&sim, "GET", &format!("/admin/v1/users/{alice}/groups"), &[]).await;
    assert!(b["response"].as_array().expect("groups").iter().all(|g| g["group_id"] != id.as_str()), "{b}");
    for (method, p) in
        [("GET", path.clone()), ("DELETE", path.clone()), ("GET", format!("/admin/v2/groups/{id}/users"))]
    {
        let (s, b) = admin(&sim, method, &p, &[]).await;
        not_found(s, &b);
    }
}

#[tokio::test]
async fn a_phone_is_modified_and_sent_installation_and_passcode_sms_which_the_telephony_logs_show() {
    let sim = start().await;
    let phone = common::phone_id(&sim, "+15555550100").await;
    let path = format!("/admin/v1/phones/{phone}");
    let (s, b) = admin(&sim, "POST", &path, &[("number", "+15555550101")]).await;
    assert_eq!((s, b["code"].as_u64()), (400, Some(40003)), "another phone's number: {b}");
    let (s, b) = admin(&sim, "POST", &path, &[("platform", "pager"), ("name", "unchanged")]).await;
    refused(s, &b, 40002, "platform");
    let (s, b) =
        admin(&sim, "POST", &path, &[("number", "+1 555 555 0188"), ("predelay", "2"), ("name", "work")]).await;
    let modified = ok(s, &b);
    assert_eq!((modified["number"].as_str(), modified["predelay"].as_u64()), (Some("+15555550188"), Some(2)));
    assert_eq!(common::phone_id(&sim, "+15555550188").await, phone, "found by its new number");
    let (_, b) = admin(&sim, "GET", "/admin/v1/phones", &[("number", "+15555550100")]).await;
    assert_eq!(b["response"], serde_json::json!([]));

    let install = format!("{path}/send_sms_installation");
    let (s, b) = admin(&sim, "POST", &install, &[("installation_msg", "Get the app")]).await;
    refused(s, &b, 40002, "installation_msg");
    let (s, b) = admin(&sim, "POST", &install, &[("installation_msg", "Get it: <insturl>")]).await;
    assert_eq!(ok(s, &b)["installation_msg"], "Get it: https://m-sim.duo.invalid/install");
    sim.advance(Duration::from_secs(1));
    let (s, b) = admin(&sim, "POST", &format!("{path}/send_sms_passcodes"), &[]).await;
    assert_eq!(ok(s, &b), "");
    let (_, b) = admin(&sim, "GET", &path, &[]).await;
    assert_eq!(b["response"]["sms_passcodes_sent"], true);

    let (s, b) = admin(&sim, "GET", "/admin/v1/logs/telephony", &[]).await;
    let v1 = ok(s, &b);
    let contexts: Vec<&str> = v1.as_array().expect("events").iter().filter_map(|e| e["context"].as_str()).collect();
    assert_eq!(contexts, ["installation", "passcodes"]);
    assert_eq!(v1[0]["phone"], "+15555550188");
    let (s, b) = admin(&sim, "GET", "/admin/v1/logs/telephony", &[("mintime", &sim.now_ms().to_string())]).await;
    refused(s, &b, 40002, "mintime");
    let now = sim.now_ms();
    let (min, max) = ((now - 60_000).to_string(), (now + 1).to_string());
    let (s, b) =
        admin(&sim, "GET", "/admin/v2/logs/telephony", &[("mintime", &min), ("maxtime", &max), ("limit", "1")]).await;
    let v2 = ok(s, &b);
    assert_eq!(
        (v2["items"][0]["context"].as_str(), v2["metadata"]["total_objects"]["value"].as_u64()),
        (Some("passcodes"), Some(2))
    );
    let next = v2["metadata"]["next_offset"]
        .as_array()
        .expect("more")
        .iter()
        .filter_map(Value::as_str)
        .collect::<Vec<_>>()
        .join(",");
    let (s, b) = admin(
        &sim,
        "GET",
        "/admin/v2/logs/telephony",
        &[("mintime", &min), ("maxtime", &max), ("limit", "1"), ("next_offset", &next)],
    )
    .await;
    let last = ok(s, &b);
    assert_eq!(
        (last["items"][0]["context"].as_str(), &last["metadata"]["next_offset"]),
        (Some("installation"), &Value::Null)
    );
    let (s, b) = admin(&sim, "GET", "/admin/v2/logs/telephony", &[("mintime", &min)]).await;
    refused(s, &b, 40001, "maxtime");
    // A landline takes no SMS.
    let (_, b) = admin(&sim, "POST", "/admin/v1/phones", &[("number", "+15555550177"), ("type", "landline")]).await;
    let landline = b["response"]["phone_id"].as_str().expect("id").to_string();
    let (s, b) = admin(&sim, "POST", &format!("/admin/v1/phones/{landline}/send_sms_passcodes"), &[]).await;
    refused(s, &b, 40002, "type");
}

#[tokio::test]
async fn the_administrator_activity_and_v1_authentication_logs_read_what_happened() {
    let sim = start().await;
    let (_, b) = admin(&sim, "POST", "/admin/v1/users", &[("username", "logged")]).await;
    let user = b["response"]["user_id"].as_str().expect("id").to_string();
    admin(&sim, "POST", &format!("/admin/v1/users/{user}/bypass_codes"), &[("count", "1")]).await;
    let (s, b) = admin(&sim, "GET", "/admin/v1/logs/administrator", &[]).await;
    let events = ok(s, &b);
    let actions: Vec<&str> = events.as_array().expect("events").iter().filter_map(|e| e["action"].as_str()).collect();
    assert_eq!(actions, ["user_create", "bypass_codes_create"]);
    assert_eq!((events[0]["object"].as_str(), events[0]["username"].as_str()), (Some("logged"), Some("API")));
    let later = (sim.now_ms() / 1000 + 1).to_string();
    let (_, b) = admin(&sim, "GET", "/admin/v1/logs/administrator", &[("mintime", &later)]).await;
    assert_eq!(b["response"], serde_json::json!([]));
    let now = sim.now_ms();
    let (min, max) = ((now - 60_000).to_string(), (now + 1).to_string());
    let (s, b) =
        admin(&sim, "GET", "/admin/v2/logs/activity", &[("mintime", &min), ("maxtime", &max), ("sort", "ts:asc")])
            .await;
    let activity = ok(s, &b);
    assert_eq!(activity["items"][0]["action"]["name"], "user_create");
    assert_eq!(activity["metadata"]["total_objects"]["value"], 2);
    let (s, b) = admin(&sim, "GET", "/admin/v1/logs/offline_enrollment", &[]).await;
    assert_eq!(ok(s, &b), serde_json::json!([]));

    // The v1 authentication log: the seeded authentications, oldest first, in v1's words.
    let (s, b) = admin(&sim, "GET", "/admin/v1/logs/authentication", &[]).await;
    let auths = ok(s, &b);
    let times: Vec<i64> = auths.as_array().expect("events").iter().filter_map(|e| e["timestamp"].as_i64()).collect();
    assert!(!times.is_empty() && times.windows(2).all(|w| w[0] <= w[1]), "{auths}");
    assert!(
        auths
            .as_array()
            .expect("events")
            .iter()
            .all(|e| ["SUCCESS", "FAILURE", "FRAUD"].contains(&e["result"].as_str().unwrap_or("")))
    );
    let from = (times[times.len() - 1]).to_string();
    let (_, b) = admin(&sim, "GET", "/admin/v1/logs/authentication", &[("mintime", &from)]).await;
    assert!(b["response"].as_array().is_some_and(|a| !a.is_empty() && a.len() < times.len()), "{b}");
}

#[tokio::test]
async fn auth_enroll_creates_the_user_and_enroll_status_follows_the_scan() {
    let sim = start().await;
    let (s, b) = auth(&sim, "POST", "/auth/v2/enroll", &[("username", "alice")]).await;
    assert_eq!((s, b["code"].as_u64()), (400, Some(40003)), "{b}");
    let (s, b) = auth(&sim, "POST", "/auth/v2/enroll", &[("username", "newbie"), ("valid_secs", "600")]).await;
    let enrolled = ok(s, &b);
    let (user, code) = (enrolled["user_id"].as_str().expect("id"), enrolled["activation_code"].as_str().expect("code"));
    assert!(code.starts_with("duo://") && enrolled["activation_barcode"].as_str().is_some_and(|u| u.contains(code)));
    assert_eq!(enrolled["expiration"].as_i64(), Some(sim.now_ms() / 1000 + 600));
    assert_eq!(user_id(&sim, "newbie").await, user, "the user exists at once");
    let status = |user: &str, code: &str| {
        let (sim, user, code) = (&sim, user.to_string(), code.to_string());
        async move {
            let (s, b) =
                auth(sim, "POST", "/auth/v2/enroll_status", &[("user_id", &user), ("activation_code", &code)]).await;
            ok(s, &b).as_str().map(str::to_string).expect("a word")
        }
    };
    assert_eq!(status(user, code).await, "waiting");
    assert_eq!(status(&user_id(&sim, "bob").await, code).await, "invalid", "another user's");
    assert_eq!(status(user, "duo://nosuchcode").await, "invalid");
    let (s, b) = auth(&sim, "POST", "/auth/v2/enroll_status", &[("user_id", user)]).await;
    refused(s, &b, 40001, "activation_code");
    let (_, pre) = auth(&sim, "POST", "/auth/v2/preauth", &[("username", "newbie")]).await;
    assert_eq!(pre["response"]["result"], "enroll");
    let scanned = sim.scan_enrollment(code).expect("scanned");
    assert_eq!(status(user, code).await, "success");
    assert_eq!(sim.scan_enrollment(code).unwrap_err().status(), 409);
    let (_, pre) = auth(&sim, "POST", "/auth/v2/preauth", &[("username", "newbie")]).await;
    assert_eq!(pre["response"]["devices"][0]["device"], scanned["phone_id"], "{pre}");
    let push = [("username", "newbie"), ("factor", "push"), ("device", "auto"), ("async", "1")];
    let (s, b) = auth(&sim, "POST", "/auth/v2/auth", &push).await;
    ok(s, &b);

    // A code left unscanned past its validity is invalid, and can no longer be scanned.
    let (_, b) = auth(&sim, "POST", "/auth/v2/enroll", &[("valid_secs", "60")]).await;
    let (late_user, late_code) =
        (b["response"]["user_id"].as_str().expect("id"), b["response"]["activation_code"].as_str().expect("code"));
    assert!(b["response"]["username"].as_str().is_some_and(|u| !u.is_empty()), "a username is made up");
    sim.advance(Duration::from_secs(61));
    assert_eq!(status(late_user, late_code).await, "invalid");
    let (s, _) =
        control(&sim, "POST", "/sim/enroll/scan", Some(serde_json::json!({ "activation_code": late_code }))).await;
    assert_eq!(s, 410);
}
