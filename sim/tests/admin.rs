//! Every Admin API call over real HTTP: answers, Duo's envelope, error codes, paging.

use crate::common;

use common::{Call, admin, send, start, user_id};
use serde_json::{Value, json};

fn ok(status: u16, body: &Value) -> &Value {
    assert_eq!((status, body["stat"].as_str()), (200, Some("OK")), "{body}");
    &body["response"]
}

fn fail(status: u16, body: &Value, want_status: u16, code: u64, detail: Option<&str>) {
    assert_eq!((status, body["code"].as_u64()), (want_status, Some(code)), "{body}");
    assert_eq!(body["stat"], "FAIL");
    assert_eq!(body["message_detail"].as_str(), detail, "{body}");
}

fn is_duo_id(id: &str, prefix: &str) -> bool {
    id.len() == 20 && id.starts_with(prefix) && id[2..].bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
}

#[tokio::test]
async fn user_lookup_by_username_returns_zero_or_one() {
    let sim = start().await;
    let (s, b) = admin(&sim, "GET", "/admin/v1/users", &[("username", "alice")]).await;
    let users = ok(s, &b).as_array().expect("array");
    assert_eq!(users.len(), 1);
    assert!(is_duo_id(users[0]["user_id"].as_str().expect("id"), "DU"));
    assert_eq!(users[0]["phones"][0]["number"], "+15555550100");
    assert_eq!(users[0]["is_enrolled"], true);
    let (s, b) = admin(&sim, "GET", "/admin/v1/users", &[("username", "nobody")]).await;
    assert_eq!(ok(s, &b), &json!([]));
    assert!(b.get("metadata").is_none());
}

#[tokio::test]
async fn user_by_id_and_unknown_ids() {
    let sim = start().await;
    let id = user_id(&sim, "bob").await;
    let (s, b) = admin(&sim, "GET", &format!("/admin/v1/users/{id}"), &[]).await;
    assert_eq!(ok(s, &b)["username"], "bob");
    let (s, b) = admin(&sim, "GET", "/admin/v1/users/DUNOTAREALUSER000000", &[]).await;
    fail(s, &b, 404, 40401, None);
    assert_eq!(b["message"], "Resource not found");
}

#[tokio::test]
async fn create_user_then_duplicate_is_40003() {
    let sim = start().await;
    let params = [("username", "zoe"), ("realname", "Zoe Z"), ("email", "zoe@example.com"), ("status", "bypass")];
    let (s, b) = admin(&sim, "POST", "/admin/v1/users", &params).await;
    let user = ok(s, &b);
    assert_eq!((user["username"].as_str(), user["status"].as_str()), (Some("zoe"), Some("bypass")));
    assert_eq!(user["is_enrolled"], false);
    let (s, b) = admin(&sim, "POST", "/admin/v1/users", &[("username", "zoe")]).await;
    fail(s, &b, 400, 40003, Some("username"));
    let (s, b) = admin(&sim, "POST", "/admin/v1/users", &[("realname", "No Name")]).await;
    fail(s, &b, 400, 40001, Some("username"));
    let (s, b) = admin(&sim, "POST", "/admin/v1/users", &[("username", "y"), ("status", "locked out")]).await;
    fail(s, &b, 400, 40002, Some("status"));
}

#[tokio::test]
async fn json_values_that_are_not_strings_are_refused_naming_the_param() {
    let sim = start().await;
    for value in [json!(3600), json!(true), json!(null), json!(["a"]), json!({ "a": "b" })] {
        let call = Call {
            json: Some(json!({ "username": "numbers", "email": "n@example.com", "valid_secs": value })),
            ..Call::new("POST", "/admin/v1/users/enroll", &[])
        };
        let r = send(&sim, call).await;
        fail(r.status, &r.body, 400, 40002, Some("valid_secs"));
    }
    let call = Call {
        json: Some(json!({ "username": "numbers", "email": "n@example.com", "valid_secs": "3600" })),
        ..Call::new("POST", "/admin/v1/users/enroll", &[])
    };
    let r = send(&sim, call).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(sim.audit().len(), 1, "only the call with strings changed anything");
    assert_eq!(sim.audit()[0].detail["valid_secs"], 3600);
}

#[tokio::test]
async fn flags_are_zero_or_one_as_the_clients_send_them() {
    let sim = start().await;
    let spare = common::phone_id(&sim, "+15555550199").await;
    let path = format!("/admin/v1/phones/{spare}/send_sms_activation");
    let (s, b) = admin(&sim, "POST", &path, &[("install", "yes")]).await;
    fail(s, &b, 400, 40002, Some("install"));
    let (s, b) = admin(&sim, "POST", &path, &[("install", "0")]).await;
    assert_eq!(ok(s, &b)["installation_msg"], "");
}

#[tokio::test]
async fn enroll_answers_a_code_and_checks_its_params() {
    let sim = start().await;
    let (s, b) =
        admin(&sim, "POST", "/admin/v1/users/enroll", &[("username", "jsmith"), ("email", "jsmith@example.com")]).await;
    let code = ok(s, &b).as_str().expect("code string");
    assert_eq!(code.len(), 20);
    let (s, b) =
        admin(&sim, "POST", "/admin/v1/users/enroll", &[("username", "alice"), ("email", "a@example.com")]).await;
    fail(s, &b, 400, 40003, Some("username"));
    let (s, b) = admin(&sim, "POST", "/admin/v1/users/enroll", &[("username", "x")]).await;
    fail(s, &b, 400, 40001, Some("email"));
    let (s, b) = admin(&sim, "POST", "/admin/v1/users/enroll", &[("username", "x"), ("email", "nope")]).await;
    fail(s, &b, 400, 40002, Some("email"));
    let (s, b) = admin(
        &sim,
        "POST",
        "/admin/v1/users/enroll",
        &[("username", "x"), ("email", "x@e.com"), ("valid_secs", "soon")],
    )
    .await;
    fail(s, &b, 400, 40002, Some("valid_secs"));
    assert_eq!(sim.state().messages.len(), 1);
}

#[tokio::test]
async fn phones_create_lookup_duplicate_and_delete() {
    let sim = start().await;
    let params = [("number", "+15555550150"), ("name", "New"), ("type", "mobile"), ("platform", "Apple iOS")];
    let (s, b) = admin(&sim, "POST", "/admin/v1/phones", &params).await;
    let phone = ok(s, &b).clone();
    let phone_id = phone["phone_id"].as_str().expect("id").to_string();
    assert!(is_duo_id(&phone_id, "DP"));
    assert_eq!((phone["type"].as_str(), phone["platform"].as_str()), (Some("Mobile"), Some("Apple iOS")));
    assert_eq!(phone["activated"], false);
    let (s, b) = admin(&sim, "POST", "/admin/v1/phones", &[("number", "+15555550150")]).await;
    fail(s, &b, 400, 40003, Some("number"));
    let (s, b) = admin(&sim, "POST", "/admin/v1/phones", &[("number", "+15555550151"), ("type", "pager")]).await;
    fail(s, &b, 400, 40002, Some("type"));
    let (s, b) = admin(&sim, "POST", "/admin/v1/phones", &[("number", "+15555550151"), ("platform", "palmos 2")]).await;
    fail(s, &b, 400, 40002, Some("platform"));
    let (s, b) = admin(&sim, "GET", "/admin/v1/phones", &[("number", "+15555550150")]).await;
    assert_eq!(ok(s, &b)[0]["phone_id"], phone_id.as_str());
    assert_eq!(ok(s, &b)[0]["users"], json!([]));
    let (s, b) = admin(&sim, "GET", "/admin/v1/phones", &[("number", "+19999999999")]).await;
    assert_eq!(ok(s, &b), &json!([]));
    let (s, b) = admin(&sim, "DELETE", &format!("/admin/v1/phones/{phone_id}"), &[]).await;
    assert_eq!(ok(s, &b), &json!(""));
    let (s, b) = admin(&sim, "DELETE", &format!("/admin/v1/phones/{phone_id}"), &[]).await;
    fail(s, &b, 404, 40401, None);
}

#[tokio::test]
async fn phone_by_number_lists_its_users() {
    let sim = start().await;
    let (s, b) = admin(&sim, "GET", "/admin/v1/phones", &[("number", "+15555550100")]).await;
    assert_eq!(ok(s, &b)[0]["users"][0]["username"], "alice");
    assert!(ok(s, &b)[0]["capabilities"].as_array().expect("caps").contains(&json!("push")));
}

#[tokio::test]
async fn associate_and_disassociate_phones() {
    let sim = start().await;
    let grace = user_id(&sim, "grace").await;
    let (s, b) = admin(&sim, "GET", "/admin/v1/phones", &[("number", "+15555550199")]).await;
    let spare = ok(s, &b)[0]["phone_id"].as_str().expect("id").to_string();
    let path = format!("/admin/v1/users/{grace}/phones");
    let (s, b) = admin(&sim, "POST", &path, &[("phone_id", &spare)]).await;
    assert_eq!(ok(s, &b), &json!(""));
    let (s, b) = admin(&sim, "POST", &path, &[("phone_id", &spare)]).await;
    assert_eq!(ok(s, &b), &json!(""), "associating twice is harmless");
    let (s, b) = admin(&sim, "GET", &path, &[]).await;
    assert_eq!(ok(s, &b)[0]["phone_id"], spare.as_str());
    assert_eq!(b["metadata"]["total_objects"], 1);
    let (s, b) = admin(&sim, "POST", &path, &[("phone_id", "DPNOSUCHPHONE0000000")]).await;
    fail(s, &b, 400, 40002, Some("phone_id"));
    let (s, b) = admin(&sim, "POST", &path, &[]).await;
    fail(s, &b, 400, 40001, Some("phone_id"));
    let (s, b) = admin(&sim, "POST", "/admin/v1/users/DUNOSUCHUSER00000000/phones", &[("phone_id", &spare)]).await;
    fail(s, &b, 404, 40401, None);
    let (s, b) = admin(&sim, "GET", "/admin/v1/users/DUNOSUCHUSER00000000/phones", &[]).await;
    fail(s, &b, 404, 40401, None);
    let del = format!("{path}/{spare}");
    for _ in 0..2 {
        let (s, b) = admin(&sim, "DELETE", &del, &[]).await;
        assert_eq!(ok(s, &b), &json!(""));
    }
    let changes: Vec<String> = sim.audit().iter().map(|e| e.change.clone()).collect();
    assert_eq!(changes, ["phone.associate", "phone.disassociate"]);
}

#[tokio::test]
async fn a_user_holds_at_most_100_phones() {
    let sim = start().await;
    let grace = user_id(&sim, "grace").await;
    let path = format!("/admin/v1/users/{grace}/phones");
    for i in 0..101 {
        let number = format!("+1555700{i:04}");
        let (s, b) = admin(&sim, "POST", "/admin/v1/phones", &[("number", &number), ("type", "landline")]).await;
        let id = ok(s, &b)["phone_id"].as_str().expect("id").to_string();
        let (s, b) = admin(&sim, "POST", &path, &[("phone_id", &id)]).await;
        if i < 100 {
            ok(s, &b);
        } else {
            fail(s, &b, 400, 40002, Some("phone_id"));
        }
    }
    let (s, b) = admin(&sim, "GET", &path, &[("limit", "40"), ("offset", "80")]).await;
    assert_eq!(ok(s, &b).as_array().expect("page").len(), 20);
    assert_eq!(b["metadata"], json!({"total_objects": 100, "prev_offset": 40}));
}

#[tokio::test]
async fn users_page_with_metadata_across_pages() {
    let sim = start().await;
    for i in 0..300 {
        let (s, b) = admin(&sim, "POST", "/admin/v1/users", &[("username", &format!("bulk{i:03}"))]).await;
        ok(s, &b);
    }
    // 9 demo users + 300: the default page is 100, the largest 300.
    let (s, b) = admin(&sim, "GET", "/admin/v1/users", &[]).await;
    assert_eq!(ok(s, &b).as_array().expect("page").len(), 100);
    assert_eq!(b["metadata"], json!({"total_objects": 309, "next_offset": 100}));
    let mut seen = Vec::new();
    let mut offset = Some(0u64);
    while let Some(at) = offset {
        let (s, b) = admin(&sim, "GET", "/admin/v1/users", &[("limit", "1000"), ("offset", &at.to_string())]).await;
        let page = ok(s, &b).as_array().expect("page");
        assert!(page.len() <= 300);
        seen.extend(page.iter().map(|u| u["username"].as_str().expect("name").to_string()));
        offset = b["metadata"]["next_offset"].as_u64();
    }
    assert_eq!(seen.len(), 309);
    assert_eq!(seen[0], "alice");
    assert_eq!(seen[308], "bulk299");
    let (s, b) = admin(&sim, "GET", "/admin/v1/users", &[("limit", "0")]).await;
    fail(s, &b, 400, 40002, Some("limit"));
    let (s, b) = admin(&sim, "GET", "/admin/v1/phones", &[("limit", "3"), ("offset", "3")]).await;
    assert_eq!(ok(s, &b).as_array().expect("page").len(), 3);
    assert_eq!(b["metadata"], json!({"total_objects": 8, "next_offset": 6, "prev_offset": 0}));
}

#[tokio::test]
async fn sms_activation_sends_a_link_and_refuses_unknown_phones() {
    let sim = start().await;
    let (s, b) = admin(
        &sim,
        "POST",
        "/admin/v1/phones",
        &[("number", "+15555550160"), ("type", "mobile"), ("platform", "google android")],
    )
    .await;
    let id = ok(s, &b)["phone_id"].as_str().expect("id").to_string();
    let path = format!("/admin/v1/phones/{id}/send_sms_activation");
    let (s, b) = admin(&sim, "POST", &path, &[("valid_secs", "3600"), ("install", "1")]).await;
    let r = ok(s, &b);
    assert_eq!(r["valid_secs"], 3600);
    for field in ["activation_barcode", "activation_msg", "installation_msg"] {
        assert!(!r[field].as_str().expect(field).is_empty(), "{field}");
    }
    let (s, b) = admin(&sim, "GET", "/admin/v1/phones", &[("number", "+15555550160")]).await;
    assert_eq!(ok(s, &b)[0]["activated"], false, "not until the user follows the link");
    let (s, b) = admin(&sim, "POST", &path, &[("valid_secs", "0")]).await;
    fail(s, &b, 400, 40002, Some("valid_secs"));
    let (s, b) = admin(&sim, "POST", "/admin/v1/phones", &[("number", "+15555550161")]).await;
    let unknown = ok(s, &b)["phone_id"].as_str().expect("id").to_string();
    let (s, b) = admin(&sim, "POST", &format!("/admin/v1/phones/{unknown}/send_sms_activation"), &[]).await;
    fail(s, &b, 400, 40002, Some("type"));
    let (s, b) = admin(&sim, "POST", "/admin/v1/phones", &[("number", "+15555550162"), ("type", "mobile")]).await;
    let no_platform = ok(s, &b)["phone_id"].as_str().expect("id").to_string();
    let (s, b) = admin(&sim, "POST", &format!("/admin/v1/phones/{no_platform}/send_sms_activation"), &[]).await;
    fail(s, &b, 400, 40002, Some("platform"));
    let (s, b) = admin(&sim, "POST", "/admin/v1/phones/DPNOSUCHPHONE0000000/send_sms_activation", &[]).await;
    fail(s, &b, 404, 40401, None);
}

#[tokio::test]
async fn a_phone_by_id_has_its_users_and_an_unknown_id_is_40401() {
    let sim = start().await;
    let (s, b) = admin(&sim, "GET", "/admin/v1/phones", &[("number", "+15555550100")]).await;
    let id = ok(s, &b)[0]["phone_id"].as_str().expect("alice's phone").to_owned();
    let (s, b) = admin(&sim, "GET", &format!("/admin/v1/phones/{id}"), &[]).await;
    let phone = ok(s, &b);
    assert_eq!((phone["number"].as_str(), phone["activated"].as_bool()), (Some("+15555550100"), Some(true)));
    assert_eq!(phone["users"][0]["username"], "alice");
    let (s, b) = admin(&sim, "GET", "/admin/v1/phones/DPNOTAREALPHONE00000", &[]).await;
    fail(s, &b, 404, 40401, None);
}
