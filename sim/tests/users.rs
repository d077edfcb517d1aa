//! Modifying, deleting and looking up users over real HTTP: answers, error codes, audit entries.

use crate::common;

use common::{Call, Sig, admin, auth, send, start, user_id};
use flowcat_sim::Sim;
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

fn changes(sim: &Sim) -> Vec<String> {
    sim.audit().iter().map(|e| e.change.clone()).collect()
}

async fn usernames(sim: &Sim, params: &[(&str, &str)]) -> (Vec<String>, Value) {
    let (s, b) = admin(sim, "GET", "/admin/v1/users", params).await;
    let names = ok(s, &b).as_array().expect("array").iter().map(|u| u["username"].as_str().expect("name").to_string());
    (names.collect(), b)
}

#[tokio::test]
async fn modify_user_changes_the_fields_given_and_logs_them() {
    let sim = start().await;
    let bob = user_id(&sim, "bob").await;
    let path = format!("/admin/v1/users/{bob}");
    let params = [
        ("realname", "Robert Example"),
        ("email", "robert@example.com"),
        ("notes", "moved to finance"),
        ("firstname", "Robert"),
        ("lastname", "Example"),
        ("status", "bypass"),
    ];
    let (s, b) = admin(&sim, "POST", &path, &params).await;
    let user = ok(s, &b);
    assert_eq!(user["user_id"], bob.as_str());
    assert_eq!(user["username"], "bob", "fields not given are kept");
    assert_eq!(user["realname"], "Robert Example");
    assert_eq!(user["email"], "robert@example.com");
    assert_eq!((user["firstname"].as_str(), user["lastname"].as_str()), (Some("Robert"), Some("Example")));
    assert_eq!((user["notes"].as_str(), user["status"].as_str()), (Some("moved to finance"), Some("bypass")));
    assert_eq!(user["phones"].as_array().expect("phones").len(), 1, "the response is the full user");
    let (s, b) = admin(&sim, "GET", &path, &[]).await;
    assert_eq!(ok(s, &b), user, "the change is stored");

    let log = sim.audit();
    assert_eq!(changes(&sim), ["user.update"]);
    assert_eq!(log[0].route, "POST /admin/v1/users/{user_id}");
    assert_eq!(log[0].detail["user_id"], bob.as_str());
    let logged = log[0].detail["changes"].as_object().expect("changes");
    assert_eq!(logged.len(), 6, "{logged:?}");
    assert_eq!(logged["status"], json!({ "from": "active", "to": "bypass" }));
    assert_eq!(logged["notes"], json!({ "from": "", "to": "moved to finance" }));

    // The same values again change nothing, so nothing is logged.
    let (s, b) = admin(&sim, "POST", &path, &params).await;
    ok(s, &b);
    assert_eq!(changes(&sim), ["user.update"]);
}

#[tokio::test]
async fn modify_user_renames_and_refuses_bad_values_without_changing_anything() {
    let sim = start().await;
    let carol = user_id(&sim, "carol").await;
    let path = format!("/admin/v1/users/{carol}");
    let (s, b) = admin(&sim, "POST", &path, &[("username", "caroline")]).await;
    assert_eq!(ok(s, &b)["username"], "caroline");
    let (found, _) = usernames(&sim, &[("username", "caroline")]).await;
    assert_eq!(found, ["caroline"]);
    let (found, _) = usernames(&sim, &[("username", "carol")]).await;
    assert!(found.is_empty());

    for bad in ["locked out", "Active", "enabled", ""] {
        let (s, b) = admin(&sim, "POST", &path, &[("status", bad), ("notes", "should not stick")]).await;
        fail(s, &b, 400, 40002, Some("status"));
    }
    let (s, b) = admin(&sim, "POST", &path, &[("username", "alice")]).await;
    fail(s, &b, 400, 40003, Some("username"));
    let (s, b) = admin(&sim, "POST", &path, &[("username", "")]).await;
    fail(s, &b, 400, 40002, Some("username"));
    let (s, b) = admin(&sim, "GET", &path, &[]).await;
    assert_eq!((ok(s, &b)["notes"].as_str(), ok(s, &b)["status"].as_str()), (Some(""), Some("active")));

    let (s, b) = admin(&sim, "POST", "/admin/v1/users/DUNOSUCHUSER00000000", &[("status", "disabled")]).await;
    fail(s, &b, 404, 40401, None);
    assert_eq!(changes(&sim), ["user.update"], "refused calls log nothing");
}

#[tokio::test]
async fn modify_user_over_a_v2_form_body_and_with_no_params() {
    let sim = start().await;
    let erin = user_id(&sim, "erin").await;
    let path = format!("/admin/v1/users/{erin}");
    let r = send(&sim, Call::new("POST", &path, &[("realname", "Erin Q. Example")]).sig(Sig::V2Sha1)).await;
    assert_eq!(ok(r.status, &r.body)["realname"], "Erin Q. Example");
    let (s, b) = admin(&sim, "POST", &path, &[]).await;
    assert_eq!(ok(s, &b)["status"], "bypass", "no params: the user as it is");
    assert_eq!(changes(&sim), ["user.update"]);
}

#[tokio::test]
async fn setting_a_locked_out_user_active_unlocks_it() {
    let sim = start().await;
    let ivan = user_id(&sim, "ivan").await;
    let path = format!("/admin/v1/users/{ivan}");
    let (s, b) = admin(&sim, "GET", &path, &[]).await;
    assert_eq!(ok(s, &b)["status"], "locked out");
    let (s, b) = auth(&sim, "POST", "/auth/v2/preauth", &[("username", "ivan")]).await;
    assert_eq!(ok(s, &b)["result"], "deny");

    let (s, b) = admin(&sim, "POST", &path, &[("status", "active")]).await;
    assert_eq!(ok(s, &b)["status"], "active");
    let (s, b) = auth(&sim, "POST", "/auth/v2/preauth", &[("username", "ivan")]).await;
    assert_ne!(ok(s, &b)["result"], "deny", "{b}");
    assert_eq!(sim.audit()[0].detail["changes"], json!({ "status": { "from": "locked out", "to": "active" } }));
}

#[tokio::test]
async fn delete_user_removes_it_and_its_associations_but_keeps_the_phones() {
    let sim = start().await;
    let alice = user_id(&sim, "alice").await;
    let (s, b) = admin(&sim, "GET", "/admin/v1/phones", &[("number", "+15555550100")]).await;
    let phone_id = ok(s, &b)[0]["phone_id"].as_str().expect("id").to_string();
    assert_eq!(ok(s, &b)[0]["users"][0]["user_id"], alice.as_str());

    let path = format!("/admin/v1/users/{alice}");
    let (s, b) = admin(&sim, "DELETE", &path, &[]).await;
    assert_eq!(ok(s, &b), &json!(""));
    let (s, b) = admin(&sim, "GET", &path, &[]).await;
    fail(s, &b, 404, 40401, None);
    let (found, _) = usernames(&sim, &[("username", "alice")]).await;
    assert!(found.is_empty());
    let (s, b) = admin(&sim, "GET", "/admin/v1/phones", &[("number", "+15555550100")]).await;
    let phone = &ok(s, &b)[0];
    assert_eq!(phone["phone_id"], phone_id.as_str(), "the phone stays");
    assert_eq!(phone["users"], json!([]), "without the deleted user");
    let (s, b) = admin(&sim, "GET", &format!("/admin/v1/users/{alice}/phones"), &[]).await;
    fail(s, &b, 404, 40401, None);

    // Deleting again, or an id Duo never had, succeeds without a change: Duo documents delete
    // user as succeeding when no such user exists.
    for gone in [path.as_str(), "/admin/v1/users/DUNOSUCHUSER00000000"] {
        let (s, b) = admin(&sim, "DELETE", gone, &[]).await;
        assert_eq!(ok(s, &b), &json!(""));
    }
    let log = sim.audit();
    assert_eq!(changes(&sim), ["user.delete"]);
    assert_eq!(log[0].route, "DELETE /admin/v1/users/{user_id}");
    assert_eq!(log[0].detail, json!({ "user_id": alice, "username": "alice", "phones": [phone_id] }));
    // The username is free again.
    let (s, b) = admin(&sim, "POST", "/admin/v1/users", &[("username", "alice")]).await;
    assert_ne!(ok(s, &b)["user_id"], alice.as_str());
}

#[tokio::test]
async fn lookup_by_email_is_case_insensitive_and_combines_with_username() {
    let sim = start().await;
    let (found, b) = usernames(&sim, &[("email", "Alice@Example.COM")]).await;
    assert_eq!(found, ["alice"]);
    assert!(b.get("metadata").is_none(), "a lookup is not paged");
    assert_eq!(b["response"][0]["phones"][0]["number"], "+15555550100", "users render in full");
    let (found, _) = usernames(&sim, &[("email", "nobody@example.com")]).await;
    assert!(found.is_empty());
    let (found, _) = usernames(&sim, &[("email", "")]).await;
    assert!(found.is_empty(), "an empty email matches nobody, not every user without one");
    let (found, _) = usernames(&sim, &[("username", "alice"), ("email", "alice@example.com")]).await;
    assert_eq!(found, ["alice"]);
    let (found, _) = usernames(&sim, &[("username", "bob"), ("email", "alice@example.com")]).await;
    assert!(found.is_empty(), "both must match");
    // Over a v2 signature too (the params travel in the query either way for GET).
    let r = send(&sim, Call::new("GET", "/admin/v1/users", &[("email", "bob@example.com")]).sig(Sig::V2Sha512)).await;
    assert_eq!(ok(r.status, &r.body)[0]["username"], "bob");
    // An email set by a modify call is found.
    let grace = user_id(&sim, "grace").await;
    admin(&sim, "POST", &format!("/admin/v1/users/{grace}"), &[("email", "G.Hopper@example.com")]).await;
    let (found, _) = usernames(&sim, &[("email", "g.hopper@EXAMPLE.com")]).await;
    assert_eq!(found, ["grace"]);
}

#[tokio::test]
async fn lookup_by_id_and_username_lists_is_paged() {
    let sim = start().await;
    let (alice, carol) = (user_id(&sim, "alice").await, user_id(&sim, "carol").await);
    let ids = serde_json::to_string(&[&carol, &alice, "DUNOSUCHUSER00000000"]).expect("json");
    let (found, b) = usernames(&sim, &[("user_id_list", &ids)]).await;
    assert_eq!(found, ["alice", "carol"], "in Duo's order, unknown ids left out");
    assert_eq!(b["metadata"], json!({ "total_objects": 2 }));
    let (found, b) = usernames(&sim, &[("username_list", r#"["dave","erin","frank"]"#), ("limit", "2")]).await;
    assert_eq!(found, ["dave", "erin"]);
    assert_eq!(b["metadata"], json!({ "total_objects": 3, "next_offset": 2 }));
    let (found, _) = usernames(&sim, &[("username_list", r#"["dave","erin","frank"]"#), ("offset", "2")]).await;
    assert_eq!(found, ["frank"]);
    let (s, b) = admin(&sim, "GET", "/admin/v1/users", &[("user_id_list", "DU1,DU2")]).await;
    fail(s, &b, 400, 40002, Some("user_id_list"));
    let (s, b) = admin(&sim, "GET", "/admin/v1/users", &[("username_list", "[1,2]")]).await;
    fail(s, &b, 400, 40002, Some("username_list"));
}
