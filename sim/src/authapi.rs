//! The Auth API calls: preauth's answer from the user's state, and starting a push.

use serde_json::{Value, json};

use crate::error::ApiError;
use crate::model::{Phone, PushBehaviour, User, UserStatus};
use crate::ops::{Ctx, Reply};
use crate::params::Params;
use crate::push::{Outcome, Push};
use crate::seed::NewUserPolicy;
use crate::state::State;

/// Finds the user a call names by `username` or `user_id`. `Ok(None)`: a username Duo does not
/// know, which preauth answers by policy.
fn named_user<'s>(state: &'s State, params: &Params) -> Result<Option<&'s User>, ApiError> {
    if let Some(user_id) = params.get("user_id") {
        return state.user(user_id).map(Some).ok_or_else(|| ApiError::invalid("user_id"));
    }
    let username = params.require("username")?;
    Ok(state.user_by_name(username))
}

fn user_phones<'s>(state: &'s State, user: &'s User) -> impl Iterator<Item = &'s Phone> {
    user.phones.iter().filter_map(|id| state.phone(id))
}

/// `POST /auth/v2/preauth`.
pub fn preauth(ctx: &mut Ctx<'_>, params: &Params) -> Result<Reply, ApiError> {
    let state = &*ctx.state;
    let Some(user) = named_user(state, params)? else {
        return Ok(Reply::plain(match state.new_user_policy {
            NewUserPolicy::Enroll => enroll_answer(),
            NewUserPolicy::Deny => {
                json!({ "result": "deny", "status_msg": "Enrollment is not allowed for this user." })
            }
            NewUserPolicy::Allow => json!({ "result": "allow", "status_msg": "Allowing unknown user." }),
        }));
    };
    let answer = match user.status {
        UserStatus::Bypass => json!({ "result": "allow", "status_msg": "Account is in bypass mode." }),
        UserStatus::Disabled | UserStatus::LockedOut => {
            json!({ "result": "deny", "status_msg": "Your account is disabled." })
        }
        UserStatus::Active if user.phones.is_empty() => enroll_answer(),
        UserStatus::Active => {
            let devices: Vec<Value> = user_phones(state, user).map(Phone::render_device).collect();
            json!({ "result": "auth", "status_msg": "Account is active", "devices": devices })
        }
    };
    Ok(Reply::plain(answer))
}

fn enroll_answer() -> Value {
    json!({
        "result": "enroll",
        "status_msg": "Enroll an authentication device to proceed",
        "enroll_portal_url": "https://api-sim.duo.invalid/portal?enroll",
    })
}

/// `POST /auth/v2/auth`: validates the call (`factor=push` without `device` is 40001) and starts
/// a transaction. Bypass and disabled users
/// get one that is already resolved; active users get a push to a capable device.
pub fn start_auth(ctx: &mut Ctx<'_>, params: &Params) -> Result<Push, ApiError> {
    let factor = params.require("factor")?;
    if factor != "push" && factor != "auto" {
        return Err(ApiError::invalid("factor"));
    }
    // Duo documents `device` as required for `push` (a phone id, or `auto`); only `auto` picks
    // one by itself.
    let device = if factor == "push" { params.require("device")? } else { params.get("device").unwrap_or("auto") };
    let state = &*ctx.state;
    let user = named_user(state, params)?.ok_or_else(|| ApiError::invalid("username"))?;
    let now = ctx.now_ms;
    let expires_at_ms = now.saturating_add(i64::try_from(ctx.options.push_expiry.as_millis()).unwrap_or(i64::MAX));
    let (outcome, device, resolve_at_ms) = match user.status {
        UserStatus::Bypass => (Outcome::Bypass, String::new(), now),
        UserStatus::Disabled | UserStatus::LockedOut => (Outcome::Locked, String::new(), now),
        UserStatus::Active => {
            let device = pick_device(state, user, device)?;
            let answer_at = match user.push {
                PushBehaviour::Timeout => i64::MAX,
                _ => now.saturating_add(i64::try_from(user.push_delay_ms).unwrap_or(i64::MAX)),
            };
            (Outcome::from(user.push), device, answer_at)
        }
    };
    let is_async = params.flag("async")?;
    let (user_id, username) = (user.user_id.clone(), user.username.clone());
    let push = Push {
        txid: ctx.state.ids.txid(),
        user_id,
        username,
        device,
        outcome,
        created_ms: now,
        resolve_at_ms,
        expires_at_ms,
    };
    let change = if push.device.is_empty() { "auth.immediate" } else { "push.send" };
    let mut detail = json!({
        "txid": push.txid, "user_id": push.user_id, "username": push.username,
        "device": push.device, "factor": factor, "async": is_async,
    });
    // What the push screen would show, so tests can check a flow passed it on.
    for shown in ["type", "display_username", "pushinfo"] {
        if let Some(value) = params.get(shown) {
            detail[shown] = json!(value);
        }
    }
    ctx.state.pushes.insert(push.txid.clone(), push.clone());
    ctx.record(change, detail);
    Ok(push)
}

/// `auto` picks the user's first push-capable phone; a phone id must be one of those.
fn pick_device(state: &State, user: &User, device: &str) -> Result<String, ApiError> {
    let mut capable = user_phones(state, user).filter(|p| p.can_push());
    let chosen = if device == "auto" { capable.next() } else { capable.find(|p| p.phone_id == device) };
    chosen.map(|p| p.phone_id.clone()).ok_or_else(|| ApiError::invalid("no capable device"))
}

/// `GET /auth/v2/auth_status`: the transaction a `txid` names.
pub fn find_push(state: &State, params: &Params) -> Result<Push, ApiError> {
    let txid = params.require("txid")?;
    state.pushes.get(txid).cloned().ok_or_else(|| ApiError::invalid("txid"))
}
