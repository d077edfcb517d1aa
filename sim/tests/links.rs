//! Activation and enrolment links over real HTTP: nothing happens until the simulated user
//! follows the link, links expire on the sim clock, and `--activate-after` follows by itself.

use crate::common;

use std::time::Duration;

use common::{admin, control, phone_id, start, start_with};
use flowcat_sim::{ControlError, EnrollMode, Options, PhoneRef, Sim};
use serde_json::{Value, json};

const SPARE: &str = "+15555550199";

async fn send_sms(sim: &Sim, phone: &str, params: &[(&str, &str)]) {
    let (s, b) = admin(sim, "POST", &format!("/admin/v1/phones/{phone}/send_sms_activation"), params).await;
    assert_eq!(s, 200, "{b}");
}

async fn activated(sim: &Sim, number: &str) -> Value {
    let (_, b) = admin(sim, "GET", "/admin/v1/phones", &[("number", number)]).await;
    b["response"][0]["activated"].clone()
}

fn changes(sim: &Sim) -> Vec<String> {
    sim.audit().iter().map(|e| e.change.clone()).collect()
}

#[tokio::test]
async fn a_phone_is_activated_only_when_its_link_is_followed() {
    let sim = start().await;
    let spare = phone_id(&sim, SPARE).await;
    let (s, b) = control(&sim, "POST", "/sim/activate", Some(json!({ "number": SPARE }))).await;
    assert_eq!(s, 409, "no link sent yet: {b}");
    send_sms(&sim, &spare, &[]).await;
    assert_eq!(activated(&sim, SPARE).await, false, "sending the SMS de-activates the seeded phone");
    let sent = sim.audit().into_iter().find(|e| e.change == "phone.sms_activation").expect("logged");
    assert_eq!(sent.detail["deactivated"], true);
    let (s, phone) = control(&sim, "POST", "/sim/activate", Some(json!({ "number": "+1 555 555 0199" }))).await;
    assert_eq!(s, 200, "{phone}");
    assert_eq!((phone["phone_id"].as_str(), phone["activated"].as_bool()), (Some(spare.as_str()), Some(true)));
    assert!(phone["capabilities"].as_array().expect("caps").contains(&json!("push")));
    assert_eq!(activated(&sim, SPARE).await, true);
    assert_eq!(changes(&sim), ["phone.sms_activation", "phone.activate"]);
    assert_eq!(sim.audit()[1].route, "POST /sim/activate");
    let (s, _) = control(&sim, "POST", "/sim/activate", Some(json!({ "phone_id": spare }))).await;
    assert_eq!(s, 409, "a link works once");
    let (s, _) = control(&sim, "POST", "/sim/activate", Some(json!({ "number": "+19999999999" }))).await;
    assert_eq!(s, 404);
    let (s, _) = control(&sim, "POST", "/sim/activate", Some(json!({ "number": SPARE, "phone_id": spare }))).await;
    assert_eq!(s, 400, "one of the two");
}

#[tokio::test]
async fn an_activation_link_expires_after_valid_secs_of_sim_time() {
    let sim = start().await;
    let spare = phone_id(&sim, SPARE).await;
    send_sms(&sim, &spare, &[("valid_secs", "3600")]).await;
    sim.advance(Duration::from_secs(3600));
    let (s, b) = control(&sim, "POST", "/sim/activate", Some(json!({ "phone_id": spare }))).await;
    assert_eq!(s, 410, "{b}");
    assert_eq!(activated(&sim, SPARE).await, false);
    // Only the newest link counts: a fresh one works.
    send_sms(&sim, &spare, &[]).await;
    let followed = sim.follow_activation(&PhoneRef::Id(spare.clone())).expect("followed");
    assert_eq!(followed["activated"], true);
    assert!(matches!(sim.follow_activation(&PhoneRef::Id(spare)), Err(ControlError::Conflict(_))));
}

#[tokio::test]
async fn activate_after_follows_the_link_on_the_sim_clock() {
    let options = Options { activate_after: Some(Duration::from_secs(90)), ..Options::default() };
    let sim = start_with(options).await;
    let spare = phone_id(&sim, SPARE).await;
    send_sms(&sim, &spare, &[]).await;
    sim.advance(Duration::from_secs(89));
    assert_eq!(activated(&sim, SPARE).await, false);
    sim.advance(Duration::from_secs(1));
    assert_eq!(activated(&sim, SPARE).await, true);
    let entry = sim.audit().into_iter().find(|e| e.change == "phone.activate").expect("logged");
    assert_eq!(entry.route, "--activate-after");
    // A link that expires before the user would follow it never activates.
    send_sms(&sim, &spare, &[("valid_secs", "60")]).await;
    sim.advance(Duration::from_secs(600));
    assert_eq!(activated(&sim, SPARE).await, false);
    let (s, _) = control(&sim, "POST", "/sim/activate", Some(json!({ "phone_id": spare }))).await;
    assert_eq!(s, 410);
}

#[tokio::test]
async fn enrolment_creates_the_user_when_the_link_is_followed() {
    let sim = start().await;
    let params = [("username", "jsmith"), ("email", "JSmith@example.com"), ("valid_secs", "3600")];
    let (s, b) = admin(&sim, "POST", "/admin/v1/users/enroll", &params).await;
    assert_eq!(s, 200, "{b}");
    let code = b["response"].as_str().expect("code").to_string();
    let (_, b) = admin(&sim, "GET", "/admin/v1/users", &[("username", "jsmith")]).await;
    assert_eq!(b["response"], json!([]), "no user until the link is used");
    assert_eq!(sim.state().messages[0]["code"], code.as_str());
    let (s, user) = control(&sim, "POST", "/sim/enroll", Some(json!({ "username": "jsmith" }))).await;
    assert_eq!(s, 200, "{user}");
    assert_eq!((user["status"].as_str(), user["email"].as_str()), (Some("active"), Some("JSmith@example.com")));
    let (_, b) = admin(&sim, "GET", "/admin/v1/users", &[("email", "jsmith@EXAMPLE.com")]).await;
    assert_eq!(b["response"][0]["user_id"], user["user_id"]);
    assert_eq!(changes(&sim), ["user.enroll", "enrollment.complete"]);
    assert_eq!(sim.audit()[1].detail["existing"], false);
    let (s, _) = control(&sim, "POST", "/sim/enroll", Some(json!({ "username": "jsmith" }))).await;
    assert_eq!(s, 409, "nothing pending any more");
    let (s, _) = control(&sim, "POST", "/sim/enroll", Some(json!({ "username": "nobody" }))).await;
    assert_eq!(s, 409);
}

#[tokio::test]
async fn enrolment_links_expire_unless_valid_secs_is_zero() {
    let sim = start().await;
    for (name, secs) in [("short", "60"), ("forever", "0")] {
        let email = format!("{name}@example.com");
        let (s, b) = admin(
            &sim,
            "POST",
            "/admin/v1/users/enroll",
            &[("username", name), ("email", &email), ("valid_secs", secs)],
        )
        .await;
        assert_eq!(s, 200, "{b}");
    }
    sim.advance(Duration::from_secs(400 * 86_400));
    let (s, b) = control(&sim, "POST", "/sim/enroll", Some(json!({ "username": "short" }))).await;
    assert_eq!(s, 410, "{b}");
    let user = sim.follow_enrollment("forever", None).expect("never expires");
    assert_eq!(user["username"], "forever");
    assert!(matches!(sim.follow_enrollment("short", None), Err(ControlError::Gone(_))));
}

#[tokio::test]
async fn an_existing_user_gets_the_email_only_while_not_enrolled() {
    let sim = start().await;
    let grace = common::user_id(&sim, "grace").await; // active, no phones
    let (s, b) =
        admin(&sim, "POST", "/admin/v1/users/enroll", &[("username", "grace"), ("email", "g@example.com")]).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(sim.audit()[0].detail["existing"], true);
    let user = sim.follow_enrollment("grace", None).expect("followed");
    assert_eq!(user["user_id"], grace.as_str(), "the same user: nothing created");
    assert_eq!(sim.state().users.len(), 9);
    let (s, b) =
        admin(&sim, "POST", "/admin/v1/users/enroll", &[("username", "alice"), ("email", "a@example.com")]).await;
    assert_eq!((s, b["code"].as_u64(), b["message_detail"].as_str()), (400, Some(40003), Some("username")));
}

#[tokio::test]
async fn enroll_creates_user_at_once_keeps_the_old_behaviour() {
    let sim = start_with(Options { enroll_mode: EnrollMode::AtOnce, ..Options::default() }).await;
    let (s, b) =
        admin(&sim, "POST", "/admin/v1/users/enroll", &[("username", "quick"), ("email", "q@example.com")]).await;
    assert_eq!(s, 200, "{b}");
    let (_, b) = admin(&sim, "GET", "/admin/v1/users", &[("username", "quick")]).await;
    assert_eq!(b["response"][0]["email"], "q@example.com");
    assert!(sim.audit()[0].detail["user_id"].as_str().is_some_and(|id| id.starts_with("DU")));
}

#[tokio::test]
async fn following_the_enrolment_link_with_a_phone_enrols_it_activated() {
    let sim = start().await;
    let (s, b) =
        admin(&sim, "POST", "/admin/v1/users/enroll", &[("username", "zoe"), ("email", "zoe@example.com")]).await;
    assert_eq!(s, 200, "{b}");
    let (s, user) =
        control(&sim, "POST", "/sim/enroll", Some(json!({ "username": "zoe", "number": "+1 555 555 0150" }))).await;
    assert_eq!(s, 200, "{user}");
    assert_eq!(user["is_enrolled"], true);
    let phone = &user["phones"][0];
    assert_eq!((phone["number"].as_str(), phone["activated"].as_bool()), (Some("+15555550150"), Some(true)));
    assert!(phone["capabilities"].as_array().is_some_and(|c| c.contains(&json!("push"))), "{phone}");
    assert_eq!(sim.audit()[1].detail["phone_id"], phone["phone_id"]);
    // A known number is the phone enrolled, not a second one.
    let (_, b) =
        admin(&sim, "POST", "/admin/v1/users/enroll", &[("username", "yan"), ("email", "yan@example.com")]).await;
    assert!(b["response"].is_string(), "{b}");
    let user = sim.follow_enrollment("yan", Some("+15555550199")).expect("followed");
    let spare = common::phone_id(&sim, "+15555550199").await;
    assert_eq!(user["phones"][0]["phone_id"], spare.as_str());
    let (s, b) = control(&sim, "POST", "/sim/enroll", Some(json!({ "username": "nobody", "number": "x" }))).await;
    assert_eq!(s, 400, "a number without digits: {b}");
}
