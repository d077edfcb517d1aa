//! The Auth API's enrolment: `/auth/v2/enroll` creates a user and answers an activation code
//! for Duo Mobile to scan; `/auth/v2/enroll_status` says whether it was. The simulated user
//! scans it through the control API (`POST /sim/enroll/scan`, [`crate::Sim::scan_enrollment`]):
//! a smartphone with Duo Mobile activated is then attached to the user.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::audit::Origin;
use crate::error::{ApiError, ControlError};
use crate::model::{Phone, PhoneType, User};
use crate::ops::{Ctx, Reply};
use crate::params::Params;
use crate::state::State;

/// Duo's default for how long the code stays valid.
const ENROLL_VALID_SECS: u64 = 86_400;

/// One `/auth/v2/enroll` code, pending until scanned or expired.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthEnrollment {
    pub user_id: String,
    /// Sim unix ms after which the code no longer works.
    pub expires_ms: i64,
    /// The phone Duo Mobile activated with it, once scanned.
    #[serde(default)]
    pub phone_id: Option<String>,
}

/// The activation code as `/enroll` answers it: what Duo Mobile reads from the QR code.
fn activation_code(code: &str) -> String {
    format!("duo://{code}")
}

/// `POST /auth/v2/enroll`: `username` (optional: a random one is made; one Duo has is 40003),
/// `valid_secs` (default 86400; 0 is 40002). Creates the user (active, no phones) at once and
/// answers `{activation_barcode, activation_code, expiration, user_id, username}`.
pub fn enroll(ctx: &mut Ctx<'_>, params: &Params) -> Result<Reply, ApiError> {
    let valid_secs = params.number("valid_secs")?.unwrap_or(ENROLL_VALID_SECS);
    if valid_secs == 0 {
        return Err(ApiError::invalid("valid_secs"));
    }
    let username = match params.get("username") {
        Some("") => return Err(ApiError::invalid("username")),
        Some(name) if ctx.state.user_by_name(name).is_some() => return Err(ApiError::duplicate("username")),
        Some(name) => name.to_string(),
        None => loop {
            let name = format!("duo-{}", ctx.state.ids.code(10));
            if ctx.state.user_by_name(&name).is_none() {
                break name;
            }
        },
    };
    let user = User::new(ctx.state.ids.user_id(), username.clone(), ctx.now());
    let user_id = user.user_id.clone();
    ctx.state.add_user(user);
    let code = ctx.state.ids.code(20);
    let valid_ms = i64::try_from(valid_secs).unwrap_or(i64::MAX).saturating_mul(1000);
    let expires_ms = ctx.now_ms.saturating_add(valid_ms);
    let pending = AuthEnrollment { user_id: user_id.clone(), expires_ms, phone_id: None };
    ctx.state.helpdesk.auth_enrollments.insert(code.clone(), pending);
    ctx.record("auth.enroll", json!({ "user_id": user_id, "username": username, "valid_secs": valid_secs }));
    Ok(Reply::plain(json!({
        "activation_barcode": format!("https://api-sim.duo.invalid/frame/qr?value={}", activation_code(&code)),
        "activation_code": activation_code(&code),
        "expiration": expires_ms.div_euclid(1000),
        "user_id": user_id,
        "username": username,
    })))
}

/// The pending enrolment an activation code names (with or without its `duo://`).
fn code_of(activation_code: &str) -> &str {
    activation_code.strip_prefix("duo://").unwrap_or(activation_code)
}

/// `POST /auth/v2/enroll_status`: `user_id`, `activation_code` → `success` once Duo Mobile has
/// scanned it, `waiting` before, `invalid` for a code that is unknown, another user's, or has
/// expired unscanned.
pub fn enroll_status(ctx: &mut Ctx<'_>, params: &Params) -> Result<Reply, ApiError> {
    let user_id = params.require("user_id")?;
    let code = params.require("activation_code")?;
    let word = match ctx.state.helpdesk.auth_enrollments.get(code_of(code)) {
        Some(e) if e.user_id != user_id || ctx.state.user(user_id).is_none() => "invalid",
        Some(e) if e.phone_id.is_some() => "success",
        Some(e) if ctx.now_ms >= e.expires_ms => "invalid",
        Some(_) => "waiting",
        None => "invalid",
    };
    Ok(Reply::plain(Value::String(word.into())))
}

/// The simulated user scans the code with Duo Mobile: a smartphone (Apple iOS, activated, no
/// number: Duo Mobile does not tell it) is attached to the user. Answers the phone's id.
/// Not found: no such code or user; conflict: scanned already; gone: expired.
pub fn scan(state: &mut State, now_ms: i64, activation_code: &str, origin: &Origin<'_>) -> Result<Value, ControlError> {
    let code = code_of(activation_code).to_string();
    let pending = state
        .helpdesk
        .auth_enrollments
        .get(&code)
        .cloned()
        .ok_or_else(|| ControlError::NotFound("no such activation code".into()))?;
    if pending.phone_id.is_some() {
        return Err(ControlError::Conflict("the activation code was scanned already".into()));
    }
    if now_ms >= pending.expires_ms {
        return Err(ControlError::Gone("the activation code has expired".into()));
    }
    if state.user(&pending.user_id).is_none() {
        return Err(ControlError::NotFound("the code's user has been deleted".into()));
    }
    let phone = Phone {
        phone_id: state.ids.phone_id(),
        number: String::new(),
        name: String::new(),
        extension: String::new(),
        kind: PhoneType::Mobile,
        platform: "apple ios".into(),
        activated: true,
        predelay: None,
        postdelay: None,
        sms_passcodes_sent: false,
    };
    let phone_id = phone.phone_id.clone();
    state.add_phone(phone);
    state.associate(&pending.user_id, &phone_id);
    if let Some(e) = state.helpdesk.auth_enrollments.get_mut(&code) {
        e.phone_id = Some(phone_id.clone());
    }
    let detail = json!({ "user_id": pending.user_id, "phone_id": phone_id });
    state.audit.record(origin, "auth.enroll_scanned", detail);
    Ok(json!({ "user_id": pending.user_id, "phone_id": phone_id }))
}
