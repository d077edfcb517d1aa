//! Activation and enrolment links: what Duo sends by SMS or email, and what happens when the
//! simulated user follows one. Until then the phone is not activated and the user not created.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::admin::{render_phone, render_user};
use crate::app::EnrollMode;
use crate::audit::Origin;
use crate::error::{ApiError, ControlError};
use crate::model::{PhoneType, User};
use crate::ops::{Ctx, Reply};
use crate::params::Params;
use crate::state::State;

/// Duo's defaults for how long links stay valid.
const ENROLL_VALID_SECS: u64 = 2_592_000;
const ACTIVATION_VALID_SECS: u64 = 86_400;

fn secs_to_ms(secs: u64) -> i64 {
    i64::try_from(secs).unwrap_or(i64::MAX).saturating_mul(1000)
}

/// An activation link sent by `send_sms_activation`: the newest per phone counts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Activation {
    pub code: String,
    pub sent_ms: i64,
    /// Sim time after which the link no longer works.
    pub expires_ms: i64,
    /// Under `--activate-after`, when the simulated user follows it by themselves.
    #[serde(default)]
    pub auto_at_ms: Option<i64>,
}

/// An enrolment email sent by `POST /admin/v1/users/enroll`, pending until followed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Enrollment {
    pub code: String,
    pub username: String,
    /// Where the email went; the created user gets it as its `email`.
    pub email: String,
    pub sent_ms: i64,
    /// `None`: never expires (`valid_secs` 0).
    pub expires_ms: Option<i64>,
    /// The username existed (not enrolled) when the email was sent.
    #[serde(default)]
    pub existing: bool,
}

/// Which phone a user follows a link on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PhoneRef {
    /// By number, compared by digits.
    Number(String),
    /// By `DP…` id.
    Id(String),
}

/// `POST /admin/v1/users/enroll`: "sends" the enrolment email (kept under `messages`) and answers
/// its code. The user is created only when the link is followed ([`follow_enrollment`]), unless
/// `--enroll-creates-user at-once`. An existing user that is not enrolled (no phones, e.g. synced
/// from a directory) gets the email too; an enrolled one is a duplicate (40003).
pub(crate) fn user_enroll(ctx: &mut Ctx<'_>, params: &Params) -> Result<Reply, ApiError> {
    let username = params.require("username")?;
    let email = params.require("email")?;
    if !email.contains('@') {
        return Err(ApiError::invalid("email"));
    }
    let valid_secs = params.number("valid_secs")?.unwrap_or(ENROLL_VALID_SECS);
    let existing = match ctx.state.user_by_name(username) {
        Some(user) if !user.phones.is_empty() => return Err(ApiError::duplicate("username")),
        Some(_) => true,
        None => false,
    };
    let code = ctx.state.ids.code(20);
    let mut detail = json!({ "username": username, "email": email, "valid_secs": valid_secs, "existing": existing });
    if ctx.options.enroll_mode == EnrollMode::AtOnce && !existing {
        let mut user = User::new(ctx.state.ids.user_id(), username.to_string(), ctx.now());
        user.email = email.to_string();
        detail["user_id"] = json!(user.user_id);
        ctx.state.add_user(user);
    } else {
        // A newer email replaces a pending one: only the newest link works.
        let enrollment = Enrollment {
            code: code.clone(),
            username: username.to_string(),
            email: email.to_string(),
            sent_ms: ctx.now_ms,
            expires_ms: (valid_secs > 0).then(|| ctx.now_ms.saturating_add(secs_to_ms(valid_secs))),
            existing,
        };
        ctx.state.enrollments.insert(username.to_string(), enrollment);
    }
    ctx.state.messages.push(json!({ "kind": "enrollment_email", "to": email, "code": code, "valid_secs": valid_secs }));
    ctx.record("user.enroll", detail);
    Ok(Reply::plain(Value::String(code)))
}

/// `POST /admin/v1/phones/{phone_id}/send_sms_activation`: records an activation link (the
/// newest replaces any earlier one) and does not activate the phone: that happens when the
/// simulated user follows it ([`follow_activation`], or `--activate-after`). A phone that was
/// activated is de-activated until then, because its old Duo Mobile activation stops working.
pub(crate) fn sms_activation(ctx: &mut Ctx<'_>, phone_id: &str, params: &Params) -> Result<Reply, ApiError> {
    let phone = ctx.state.phone(phone_id).ok_or_else(ApiError::not_found)?;
    if phone.kind != PhoneType::Mobile {
        return Err(ApiError::invalid("type"));
    }
    if phone.platform == "unknown" {
        return Err(ApiError::invalid("platform"));
    }
    let (number, deactivated) = (phone.number.clone(), phone.activated);
    let valid_secs = params.number("valid_secs")?.unwrap_or(ACTIVATION_VALID_SECS);
    if valid_secs == 0 {
        return Err(ApiError::invalid("valid_secs"));
    }
    let install = params.flag("install")?;
    let (code, _, _) = new_activation(ctx, phone_id, valid_secs);
    let url = format!("https://m-sim.duo.invalid/activate/{code}");
    let response = json!({
        "activation_barcode": format!("https://api-sim.duo.invalid/frame/qr?value={code}"),
        "activation_msg": format!("To activate the app, tap and open this link: {url}"),
        "installation_msg": if install { "Welcome to Duo! To install the Duo Mobile app, visit the app store." } else { "" },
        "valid_secs": valid_secs,
    });
    ctx.state.messages.push(json!({ "kind": "sms_activation", "to": number, "code": code, "install": install }));
    crate::logs::telephony(ctx, "sms", "activation", &number);
    let detail = json!({
        "phone_id": phone_id, "number": number, "valid_secs": valid_secs, "install": install,
        "deactivated": deactivated,
    });
    ctx.record("phone.sms_activation", detail);
    Ok(Reply::plain(response))
}

/// A new activation link for a phone (checked by the caller): it replaces any earlier one, and
/// an activated phone is de-activated until it is followed. Its code, and whether the phone was
/// activated before.
pub(crate) fn new_activation(ctx: &mut Ctx<'_>, phone_id: &str, valid_secs: u64) -> (String, bool, bool) {
    let code = ctx.state.ids.code(20);
    let mut was_activated = false;
    if let Some(phone) = ctx.state.phone_mut(phone_id) {
        was_activated = phone.activated;
        phone.activated = false;
    }
    let auto_at_ms =
        ctx.options.activate_after.map(|d| ctx.now_ms.saturating_add(i64::try_from(d.as_millis()).unwrap_or(i64::MAX)));
    let expires_ms = ctx.now_ms.saturating_add(secs_to_ms(valid_secs));
    let link = Activation { code: code.clone(), sent_ms: ctx.now_ms, expires_ms, auto_at_ms };
    let replaced = ctx.state.activations.insert(phone_id.to_string(), link).is_some();
    (code, was_activated, replaced)
}

/// The simulated user follows the newest activation link of a phone: the phone becomes
/// activated (push-capable). Answers the phone as the Admin API renders it.
pub fn follow_activation(
    state: &mut State,
    now_ms: i64,
    phone: &PhoneRef,
    origin: &Origin<'_>,
) -> Result<Value, ControlError> {
    let found = match phone {
        PhoneRef::Number(number) => state.phone_by_number(number),
        PhoneRef::Id(id) => state.phone(id),
    };
    let named = match phone {
        PhoneRef::Number(s) | PhoneRef::Id(s) => s,
    };
    let phone_id = found.ok_or_else(|| ControlError::NotFound(format!("no phone `{named}`")))?.phone_id.clone();
    let link = state
        .activations
        .get(&phone_id)
        .ok_or_else(|| ControlError::Conflict(format!("no activation link is pending for phone `{phone_id}`")))?;
    if link.expires_ms <= now_ms {
        return Err(ControlError::Gone(format!("the activation link of phone `{phone_id}` has expired")));
    }
    state.activations.remove(&phone_id);
    let mut number = String::new();
    if let Some(p) = state.phone_mut(&phone_id) {
        p.activated = true;
        number = p.number.clone();
    }
    state.audit.record(origin, "phone.activate", json!({ "phone_id": phone_id, "number": number }));
    Ok(state.phone(&phone_id).map(|p| render_phone(state, p)).unwrap_or_default())
}

/// The simulated user follows the enrolment link sent for `username`: the user is created
/// (unless it existed already), active, with the email the link went to.
pub fn follow_enrollment(
    state: &mut State,
    now_ms: i64,
    username: &str,
    number: Option<&str>,
    origin: &Origin<'_>,
) -> Result<Value, ControlError> {
    let digits = number.map(crate::state::normalise_number);
    if digits.as_ref().is_some_and(String::is_empty) {
        return Err(ControlError::Invalid("`number` must hold digits".into()));
    }
    let link = state
        .enrollments
        .get(username)
        .ok_or_else(|| ControlError::Conflict(format!("no enrolment is pending for `{username}`")))?;
    if link.expires_ms.is_some_and(|at| at <= now_ms) {
        return Err(ControlError::Gone(format!("the enrolment link for `{username}` has expired")));
    }
    let Some(link) = state.enrollments.remove(username) else {
        return Err(ControlError::Conflict(format!("no enrolment is pending for `{username}`")));
    };
    let existing = state.user_by_name(username).is_some();
    if !existing {
        let mut user = User::new(state.ids.user_id(), username.to_string(), now_ms.div_euclid(1000));
        user.email = link.email.clone();
        state.add_user(user);
    }
    let user_id = state.user_by_name(username).map(|u| u.user_id.clone()).unwrap_or_default();
    let mut detail = json!({ "user_id": user_id, "username": username, "email": link.email, "existing": existing });
    if let Some(digits) = digits {
        detail["phone_id"] = json!(enrol_phone(state, &user_id, &format!("+{digits}")));
    }
    state.audit.record(origin, "enrollment.complete", detail);
    Ok(state.user(&user_id).map(|u| render_user(state, u)).unwrap_or_default())
}

/// The phone a user enrols on Duo's enrolment page: the known phone with that number, else a new
/// smartphone, attached to the user with Duo Mobile activated. Answers its id.
fn enrol_phone(state: &mut State, user_id: &str, number: &str) -> String {
    let phone_id = match state.phone_by_number(number) {
        Some(phone) => phone.phone_id.clone(),
        None => {
            let phone = crate::model::Phone {
                phone_id: state.ids.phone_id(),
                number: number.to_string(),
                name: String::new(),
                extension: String::new(),
                kind: PhoneType::Mobile,
                platform: "google android".into(),
                activated: true,
                predelay: None,
                postdelay: None,
                sms_passcodes_sent: false,
            };
            let id = phone.phone_id.clone();
            state.add_phone(phone);
            id
        }
    };
    if let Some(p) = state.phone_mut(&phone_id) {
        p.activated = true;
    }
    let held = state.user(user_id).is_some_and(|u| u.phones.iter().any(|p| p == &phone_id));
    if !held {
        state.associate(user_id, &phone_id);
    }
    phone_id
}

/// Follows every activation link whose `--activate-after` time has come, each at that time.
pub(crate) fn settle(state: &mut State, now_ms: i64) {
    // Cheap when nothing is pending: one pass over the pending links, which are few.
    let due: Vec<(String, i64)> = state
        .activations
        .iter()
        .filter_map(|(id, link)| link.auto_at_ms.filter(|at| *at <= now_ms).map(|at| (id.clone(), at)))
        .collect();
    for (phone_id, at) in due {
        let origin = Origin { time: at, method: "SIM", route: "--activate-after", ikey: "" };
        if follow_activation(state, at, &PhoneRef::Id(phone_id.clone()), &origin).is_err() {
            // Expired before the user got to it: it stays, expired, for `/sim/activate` to report.
            if let Some(link) = state.activations.get_mut(&phone_id) {
                link.auto_at_ms = None;
            }
        }
    }
}
