//! The help desk's other Admin API calls (issue 15): bypass codes, groups, hardware tokens,
//! directory sync of one user, activation links by URL, verification pushes and the v2
//! authentication log. Their state lives in [`Helpdesk`], one field of the state, so that the
//! rest of the state file keeps its shape.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::error::ApiError;
use crate::model::{PhoneType, PushBehaviour, UserStatus};
use crate::ops::{Ctx, Reply};
use crate::params::Params;
use crate::push::{Outcome, Push, Status};
use crate::state::State;

/// Duo's bounds on `POST /admin/v1/users/{user_id}/bypass_codes`.
const MAX_BYPASS_COUNT: u64 = 10;
const DEFAULT_BYPASS_COUNT: u64 = 10;
/// Activation links by URL: Duo's default and longest validity.
const ACTIVATION_URL_VALID_SECS: u64 = 86_400;
const ACTIVATION_URL_MAX_SECS: u64 = 604_800;
/// Authentications appear in the v2 log only this long after they happened (Duo documents a
/// two-minute delay).
pub const AUTHLOG_DELAY_MS: i64 = 120_000;

/// A group.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Group {
    pub group_id: String,
    pub name: String,
    #[serde(default)]
    pub desc: String,
    /// Members' user ids, in the order they were added.
    #[serde(default)]
    pub members: Vec<String>,
    /// `active`, `bypass` or `disabled`.
    #[serde(default = "active")]
    pub status: String,
}

fn active() -> String {
    "active".into()
}

impl Group {
    pub(crate) fn render(&self) -> Value {
        let status = match self.status.as_str() {
            "bypass" => "Bypass",
            "disabled" => "Disabled",
            _ => "Active",
        };
        json!({
            "group_id": self.group_id, "name": self.name, "desc": self.desc, "status": status,
            "mobile_otp_enabled": false, "push_enabled": false, "sms_enabled": false, "voice_enabled": false,
        })
    }
}

/// A hardware token.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Token {
    pub token_id: String,
    /// `h6`, `h8`, `t6`, `t8`, `yk`, `d1`.
    #[serde(rename = "type")]
    pub kind: String,
    pub serial: String,
    /// The user it is assigned to (Duo assigns a token to one user at most).
    #[serde(default)]
    pub user_id: Option<String>,
    /// The OATH secret (hex) of a HOTP or TOTP token: a credential, kept for `resync` only and
    /// never rendered.
    #[serde(default)]
    pub secret: Option<String>,
    /// A HOTP token's next counter value.
    #[serde(default)]
    pub counter: u64,
    /// A TOTP token's time step in seconds (30 unless set).
    #[serde(default)]
    pub totp_step: Option<u64>,
}

/// The token types Duo knows.
pub(crate) const TOKEN_TYPES: &[&str] = &["h6", "h8", "t6", "t8", "yk", "d1"];

/// A user as a directory (AD, Azure AD, OpenLDAP) has it, for `syncuser`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DirectoryUser {
    pub username: String,
    #[serde(default)]
    pub email: String,
    #[serde(default)]
    pub realname: String,
}

/// A directory sync and the users its directory holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Directory {
    pub directory_key: String,
    #[serde(default)]
    pub users: Vec<DirectoryUser>,
}

/// One bypass code. The code itself is kept only so that the simulated user could use it;
/// nothing but the answer to its creation shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BypassCode {
    pub bypass_code_id: String,
    pub code: String,
    pub created: i64,
    /// Unix seconds; `None` never expires.
    pub expiration: Option<i64>,
    /// Uses left; `0` is unlimited.
    pub reuse_count: u64,
}

/// An authentication seeded into the v2 log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuthLogEntry {
    pub txid: String,
    pub user_id: String,
    pub username: String,
    /// Unix milliseconds.
    pub timestamp_ms: i64,
    /// `success`, `denied`, `fraud`.
    pub result: String,
    pub reason: String,
    pub factor: String,
}

/// The help-desk part of the state.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Helpdesk {
    #[serde(default)]
    pub groups: Vec<Group>,
    #[serde(default)]
    pub tokens: Vec<Token>,
    #[serde(default)]
    pub directories: Vec<Directory>,
    /// Each user's current bypass codes, by user id.
    #[serde(default)]
    pub bypass_codes: BTreeMap<String, Vec<BypassCode>>,
    /// Verification pushes sent through the Admin API, by push id.
    #[serde(default)]
    pub verification_pushes: BTreeMap<String, Push>,
    /// Authentications from before the simulator started (the seed's `auth_log`).
    #[serde(default)]
    pub auth_log: Vec<AuthLogEntry>,
    /// SMS and calls Duo placed (activation, installation, passcodes), for the telephony logs.
    #[serde(default)]
    pub telephony: Vec<crate::logs::TelephonyEvent>,
    /// Auth API enrolments (`/auth/v2/enroll`), by activation code.
    #[serde(default)]
    pub auth_enrollments: BTreeMap<String, crate::enroll::AuthEnrollment>,
}

pub(crate) fn user_exists(state: &State, user_id: &str) -> Result<(), ApiError> {
    state.user(user_id).map(|_| ()).ok_or_else(ApiError::not_found)
}

/// An optional param that must be a whole number within `max`.
fn bounded(params: &Params, name: &str, max: u64) -> Result<Option<u64>, ApiError> {
    match params.number(name)? {
        Some(n) if n > max => Err(ApiError::invalid(name)),
        other => Ok(other),
    }
}

// ---- bypass codes ---------------------------------------------------------------------------

/// `POST /admin/v1/users/{user_id}/bypass_codes`: replaces the user's bypass codes with `count`
/// new ones (default 10, at most 10), or with the `codes` given (a comma-separated list; not
/// with `count`), valid for `valid_secs` (0 or absent: no expiry) and `reuse_count` uses each
/// (default 1; 0 unlimited). `preserve_existing` (`true`) keeps the earlier ones. Answers the
/// codes, the only time they are shown. The audit entry names how many, never the codes.
pub fn bypass_create(ctx: &mut Ctx<'_>, user_id: &str, params: &Params) -> Result<Reply, ApiError> {
    user_exists(ctx.state, user_id)?;
    let count = bounded(params, "count", MAX_BYPASS_COUNT)?;
    let given = params.get("codes");
    if count.is_some() && given.is_some() {
        return Err(ApiError::invalid("codes"));
    }
    let codes: Vec<String> = match given {
        Some(text) => {
            let codes: Vec<String> = text.split(',').map(|c| c.trim().to_string()).collect();
            let valid = |c: &String| (4..=20).contains(&c.len()) && c.bytes().all(|b| b.is_ascii_digit());
            if codes.is_empty() || codes.len() as u64 > MAX_BYPASS_COUNT || !codes.iter().all(valid) {
                return Err(ApiError::invalid("codes"));
            }
            codes
        }
        None => {
            let n = count.unwrap_or(DEFAULT_BYPASS_COUNT);
            if n == 0 {
                return Err(ApiError::invalid("count"));
            }
            (0..n).map(|_| digits(&mut ctx.state.ids, 9)).collect()
        }
    };
    let valid_secs = params.number("valid_secs")?.unwrap_or(0);
    let reuse_count = params.number("reuse_count")?.unwrap_or(1);
    let preserve = match params.get("preserve_existing") {
        None | Some("false") => false,
        Some("true") => true,
        Some(_) => return Err(ApiError::invalid("preserve_existing")),
    };
    let now = ctx.now();
    let expiration = (valid_secs > 0).then(|| now.saturating_add(i64::try_from(valid_secs).unwrap_or(i64::MAX)));
    let made: Vec<BypassCode> = codes
        .iter()
        .map(|code| BypassCode {
            bypass_code_id: ctx.state.ids.token("DB", 18),
            code: code.clone(),
            created: now,
            expiration,
            reuse_count,
        })
        .collect();
    let ids: Vec<String> = made.iter().map(|c| c.bypass_code_id.clone()).collect();
    let list = ctx.state.helpdesk.bypass_codes.entry(user_id.to_string()).or_default();
    let replaced = if preserve { 0 } else { std::mem::take(list).len() };
    list.extend(made);
    let detail = json!({
        "user_id": user_id, "count": codes.len(), "bypass_code_ids": ids, "valid_secs": valid_secs,
        "reuse_count": reuse_count, "replaced": replaced, "given": given.is_some(),
    });
    ctx.record("bypass_codes.create", detail);
    Ok(Reply::plain(json!(codes)))
}

/// `GET /admin/v1/users/{user_id}/bypass_codes`: the codes' metadata (never the codes), paged.
pub fn bypass_list(ctx: &mut Ctx<'_>, user_id: &str, params: &Params) -> Result<Reply, ApiError> {
    user_exists(ctx.state, user_id)?;
    let page = params.page(100, 500)?;
    let now = ctx.now();
    let codes: Vec<Value> = ctx
        .state
        .helpdesk
        .bypass_codes
        .get(user_id)
        .into_iter()
        .flatten()
        .filter(|c| c.expiration.is_none_or(|at| at > now))
        .map(|c| {
            json!({
                "bypass_code_id": c.bypass_code_id, "created": c.created, "expiration": c.expiration,
                "reuse_count": c.reuse_count, "admin_email": "",
            })
        })
        .collect();
    let (response, metadata) = page.apply(codes);
    Ok(Reply { response, metadata: Some(metadata) })
}

pub(crate) fn digits(ids: &mut crate::ids::IdGen, len: usize) -> String {
    // The generator's alphabet is letters and digits; keep drawing until `len` digits came.
    let mut out = String::with_capacity(len);
    while out.len() < len {
        out.extend(ids.token("", len).chars().filter(char::is_ascii_digit));
    }
    out.truncate(len);
    out
}

// ---- user groups ----------------------------------------------------------------------------

/// `GET /admin/v1/groups`: every group, paged (Duo has no name
/// filter): at most 100 a page.
pub fn groups_list(ctx: &mut Ctx<'_>, params: &Params) -> Result<Reply, ApiError> {
    let page = params.page(100, 100)?;
    let groups: Vec<Value> = ctx.state.helpdesk.groups.iter().map(Group::render).collect();
    let (response, metadata) = page.apply(groups);
    Ok(Reply { response, metadata: Some(metadata) })
}

/// `GET /admin/v1/users/{user_id}/groups`: the user's groups, paged.
pub fn user_groups(ctx: &mut Ctx<'_>, user_id: &str, params: &Params) -> Result<Reply, ApiError> {
    user_exists(ctx.state, user_id)?;
    let page = params.page(100, 500)?;
    let groups: Vec<Value> = ctx
        .state
        .helpdesk
        .groups
        .iter()
        .filter(|g| g.members.iter().any(|m| m == user_id))
        .map(Group::render)
        .collect();
    let (response, metadata) = page.apply(groups);
    Ok(Reply { response, metadata: Some(metadata) })
}

/// The user's groups as a user object lists them.
pub(crate) fn groups_of(state: &State, user_id: &str) -> Value {
    state.helpdesk.groups.iter().filter(|g| g.members.iter().any(|m| m == user_id)).map(Group::render).collect()
}

/// The user's tokens as a user object lists them.
pub(crate) fn tokens_of(state: &State, user_id: &str) -> Value {
    state
        .helpdesk
        .tokens
        .iter()
        .filter(|t| t.user_id.as_deref() == Some(user_id))
        .map(|t| json!({ "token_id": t.token_id, "type": t.kind, "serial": t.serial, "totp_step": null }))
        .collect()
}

/// `POST /admin/v1/users/{user_id}/groups`: `group_id` (an unknown one is 40002); adding a member
/// again changes nothing.
pub fn group_add(ctx: &mut Ctx<'_>, user_id: &str, params: &Params) -> Result<Reply, ApiError> {
    user_exists(ctx.state, user_id)?;
    let group_id = params.require("group_id")?;
    let group = ctx
        .state
        .helpdesk
        .groups
        .iter_mut()
        .find(|g| g.group_id == group_id)
        .ok_or_else(|| ApiError::invalid("group_id"))?;
    if !group.members.iter().any(|m| m == user_id) {
        group.members.push(user_id.to_string());
        let detail = json!({ "user_id": user_id, "group_id": group_id, "name": group.name });
        ctx.record("group.add_user", detail);
    }
    Ok(Reply::plain(json!("")))
}

/// `DELETE /admin/v1/users/{user_id}/groups/{group_id}`: `""`, also when not a member.
pub fn group_remove(ctx: &mut Ctx<'_>, user_id: &str, group_id: &str) -> Result<Reply, ApiError> {
    user_exists(ctx.state, user_id)?;
    if let Some(group) = ctx.state.helpdesk.groups.iter_mut().find(|g| g.group_id == group_id) {
        let before = group.members.len();
        group.members.retain(|m| m != user_id);
        if group.members.len() != before {
            let detail = json!({ "user_id": user_id, "group_id": group_id, "name": group.name });
            ctx.record("group.remove_user", detail);
        }
    }
    Ok(Reply::plain(json!("")))
}

// ---- hardware tokens ------------------------------------------------------------------------

pub(crate) fn render_token(state: &State, token: &Token) -> Value {
    let users: Vec<Value> = token.user_id.iter().filter_map(|id| state.user(id)).map(|u| u.render_bare()).collect();
    json!({ "token_id": token.token_id, "type": token.kind, "serial": token.serial, "totp_step": null, "users": users })
}

/// `GET /admin/v1/tokens`: `type` and `serial` together (one alone is 40002) → `[token]` or
/// `[]`; neither: every token, paged.
pub fn tokens_list(ctx: &mut Ctx<'_>, params: &Params) -> Result<Reply, ApiError> {
    let state = &*ctx.state;
    match (params.get("type"), params.get("serial")) {
        (Some(kind), Some(serial)) => {
            if !TOKEN_TYPES.contains(&kind) {
                return Err(ApiError::invalid("type"));
            }
            let found: Vec<Value> = state
                .helpdesk
                .tokens
                .iter()
                .filter(|t| t.kind == kind && t.serial == serial)
                .map(|t| render_token(state, t))
                .collect();
            Ok(Reply::plain(Value::Array(found)))
        }
        (Some(_), None) => Err(ApiError::missing("serial")),
        (None, Some(_)) => Err(ApiError::missing("type")),
        (None, None) => {
            let page = params.page(100, 500)?;
            let tokens: Vec<Value> = state.helpdesk.tokens.iter().map(|t| render_token(state, t)).collect();
            let (response, metadata) = page.apply(tokens);
            Ok(Reply { response, metadata: Some(metadata) })
        }
    }
}

/// `GET /admin/v1/users/{user_id}/tokens`: the user's tokens, paged.
pub fn user_tokens(ctx: &mut Ctx<'_>, user_id: &str, params: &Params) -> Result<Reply, ApiError> {
    user_exists(ctx.state, user_id)?;
    let page = params.page(100, 500)?;
    let state = &*ctx.state;
    let tokens: Vec<Value> = state
        .helpdesk
        .tokens
        .iter()
        .filter(|t| t.user_id.as_deref() == Some(user_id))
        .map(|t| json!({ "token_id": t.token_id, "type": t.kind, "serial": t.serial, "totp_step": null }))
        .collect();
    let (response, metadata) = page.apply(tokens);
    Ok(Reply { response, metadata: Some(metadata) })
}

/// `POST /admin/v1/users/{user_id}/tokens`: `token_id`; an unknown token, or one assigned to
/// another user, is 40002 (Duo is silent on the second: the stricter answer); assigning it to
/// its own user again changes nothing.
pub fn token_assign(ctx: &mut Ctx<'_>, user_id: &str, params: &Params) -> Result<Reply, ApiError> {
    user_exists(ctx.state, user_id)?;
    let token_id = params.require("token_id")?;
    let token = ctx
        .state
        .helpdesk
        .tokens
        .iter_mut()
        .find(|t| t.token_id == token_id)
        .ok_or_else(|| ApiError::invalid("token_id"))?;
    match token.user_id.as_deref() {
        Some(holder) if holder == user_id => return Ok(Reply::plain(json!(""))),
        Some(_) => return Err(ApiError::invalid("token_id")),
        None => token.user_id = Some(user_id.to_string()),
    }
    let detail = json!({ "user_id": user_id, "token_id": token_id, "serial": token.serial });
    ctx.record("token.assign", detail);
    Ok(Reply::plain(json!("")))
}

/// `DELETE /admin/v1/users/{user_id}/tokens/{token_id}`: `""`, also when not assigned to them.
pub fn token_unassign(ctx: &mut Ctx<'_>, user_id: &str, token_id: &str) -> Result<Reply, ApiError> {
    user_exists(ctx.state, user_id)?;
    let held =
        ctx.state.helpdesk.tokens.iter_mut().find(|t| t.token_id == token_id && t.user_id.as_deref() == Some(user_id));
    if let Some(token) = held {
        token.user_id = None;
        let detail = json!({ "user_id": user_id, "token_id": token_id, "serial": token.serial });
        ctx.record("token.unassign", detail);
    }
    Ok(Reply::plain(json!("")))
}

// ---- directory sync -------------------------------------------------------------------------

/// `POST /admin/v1/users/directorysync/{directory_key}/syncuser`: `username`. An unknown
/// directory is 404/40401; a username the directory does not hold is 400/40002. A user Duo does
/// not have yet is created (active); one it has gets the directory's email and real name.
/// Answers `{"user_id"}`. A sync that changes nothing logs nothing.
pub fn sync_user(ctx: &mut Ctx<'_>, directory_key: &str, params: &Params) -> Result<Reply, ApiError> {
    let username = params.require("username")?;
    let directory = ctx
        .state
        .helpdesk
        .directories
        .iter()
        .find(|d| d.directory_key == directory_key)
        .ok_or_else(ApiError::not_found)?;
    let source = directory
        .users
        .iter()
        .find(|u| u.username == username)
        .cloned()
        .ok_or_else(|| ApiError::invalid("username"))?;
    let user_id = match ctx.state.user_by_name(username).cloned() {
        Some(mut user) => {
            let changed = user.email != source.email || user.realname != source.realname;
            let user_id = user.user_id.clone();
            if changed {
                user.email = source.email.clone();
                user.realname = source.realname.clone();
                ctx.state.replace_user(&user_id, user);
                let detail = json!({ "directory_key": directory_key, "username": username, "user_id": user_id, "created": false });
                ctx.record("user.sync", detail);
            }
            user_id
        }
        None => {
            let mut user = crate::model::User::new(ctx.state.ids.user_id(), username.to_string(), ctx.now());
            user.email = source.email.clone();
            user.realname = source.realname.clone();
            let user_id = user.user_id.clone();
            ctx.state.add_user(user);
            let detail =
                json!({ "directory_key": directory_key, "username": username, "user_id": user_id, "created": true });
            ctx.record("user.sync", detail);
            user_id
        }
    };
    Ok(Reply::plain(json!({ "user_id": user_id })))
}

// ---- activation link ------------------------------------------------------------------------

/// `POST /admin/v1/phones/{phone_id}/activation_url`: a new activation link, answered rather than
/// sent: `valid_secs` (default 86400, at most 604800; 0 is 40002), `install` (`"0"`/`"1"`). Like
/// `send_sms_activation`, the newest link replaces any earlier one and an activated phone is
/// de-activated until it is followed.
pub fn activation_url(ctx: &mut Ctx<'_>, phone_id: &str, params: &Params) -> Result<Reply, ApiError> {
    let phone = ctx.state.phone(phone_id).ok_or_else(ApiError::not_found)?;
    if phone.kind != PhoneType::Mobile {
        return Err(ApiError::invalid("type"));
    }
    if phone.platform == "unknown" {
        return Err(ApiError::invalid("platform"));
    }
    let valid_secs = bounded(params, "valid_secs", ACTIVATION_URL_MAX_SECS)?.unwrap_or(ACTIVATION_URL_VALID_SECS);
    if valid_secs == 0 {
        return Err(ApiError::invalid("valid_secs"));
    }
    let install = params.flag("install")?;
    let (code, deactivated, replaced) = crate::links::new_activation(ctx, phone_id, valid_secs);
    let url = format!("https://m-sim.duo.invalid/activate/{code}");
    let mut response = json!({
        "activation_url": url,
        "activation_barcode": format!("https://api-sim.duo.invalid/frame/qr?value={code}"),
        "valid_secs": valid_secs,
    });
    if install {
        response["installation_url"] = json!("https://m-sim.duo.invalid/install");
    }
    let detail = json!({
        "phone_id": phone_id, "valid_secs": valid_secs, "install": install, "deactivated": deactivated,
        "replaced": replaced,
    });
    ctx.record("phone.activation_url", detail);
    Ok(Reply::plain(response))
}

// ---- verification push ----------------------------------------------------------------------

/// `POST /admin/v1/users/{user_id}/send_verification_push`: `phone_id`, one of the user's phones
/// that can take a push (else 400/40002 `phone_id`). Answers `{push_id, confirmation_code}`;
/// the user answers as the seed says for them, after their delay, or the push expires.
pub fn verification_push(ctx: &mut Ctx<'_>, user_id: &str, params: &Params) -> Result<Reply, ApiError> {
    let phone_id = params.require("phone_id")?;
    let user = ctx.state.user(user_id).ok_or_else(ApiError::not_found)?;
    let capable = user.phones.iter().any(|p| p == phone_id) && ctx.state.phone(phone_id).is_some_and(|p| p.can_push());
    if !capable {
        return Err(ApiError::invalid("phone_id"));
    }
    let now = ctx.now_ms;
    let (outcome, resolve_at_ms) = match user.status {
        UserStatus::Disabled | UserStatus::LockedOut => (Outcome::Deny, now),
        _ => match user.push {
            PushBehaviour::Timeout => (Outcome::Timeout, i64::MAX),
            behaviour => {
                (Outcome::from(behaviour), now.saturating_add(i64::try_from(user.push_delay_ms).unwrap_or(i64::MAX)))
            }
        },
    };
    let expires_at_ms = now.saturating_add(i64::try_from(ctx.options.push_expiry.as_millis()).unwrap_or(i64::MAX));
    let (uid, username) = (user.user_id.clone(), user.username.clone());
    let push = Push {
        txid: ctx.state.ids.txid(),
        user_id: uid,
        username,
        device: phone_id.to_string(),
        outcome,
        created_ms: now,
        resolve_at_ms,
        expires_at_ms,
    };
    let confirmation_code = digits(&mut ctx.state.ids, 6);
    let response = json!({ "push_id": push.txid, "confirmation_code": confirmation_code });
    let detail = json!({ "push_id": push.txid, "user_id": user_id, "phone_id": phone_id });
    ctx.state.helpdesk.verification_pushes.insert(push.txid.clone(), push);
    ctx.record("verification_push.send", detail);
    Ok(Reply::plain(response))
}

/// `GET /admin/v1/users/{user_id}/verification_push_response`: `push_id` → `{push_id, result}`
/// with `result` `waiting`, `approve`, `deny`, `fraud` or `timeout`, at once (not held); a push
/// id this user was not sent is 404/40401.
pub fn verification_push_response(ctx: &mut Ctx<'_>, user_id: &str, params: &Params) -> Result<Reply, ApiError> {
    let push_id = params.require("push_id")?;
    user_exists(ctx.state, user_id)?;
    let push = ctx
        .state
        .helpdesk
        .verification_pushes
        .get(push_id)
        .filter(|p| p.user_id == user_id)
        .ok_or_else(ApiError::not_found)?;
    let result = match push.status(ctx.now_ms) {
        Status::Waiting => "waiting",
        Status::Done(Outcome::Approve | Outcome::Bypass) => "approve",
        Status::Done(Outcome::Deny | Outcome::Locked) => "deny",
        Status::Done(Outcome::Fraud) => "fraud",
        Status::Done(Outcome::Timeout) => "timeout",
    };
    Ok(Reply::plain(json!({ "push_id": push_id, "result": result })))
}

// ---- authentication log (v2) ----------------------------------------------------------------

/// One authentication as the v2 log renders it.
fn render_auth(entry: &AuthLogEntry) -> Value {
    let secs = entry.timestamp_ms.div_euclid(1000);
    json!({
        "txid": entry.txid,
        "timestamp": secs,
        "isotimestamp": crate::date::iso8601(secs),
        "event_type": "authentication",
        "factor": entry.factor,
        "result": entry.result,
        "reason": entry.reason,
        "user": { "key": entry.user_id, "name": entry.username, "groups": [] },
        "application": { "key": "DISIMAUTH00000000001", "name": "flowcat-sim Auth API" },
        "access_device": { "ip": "127.0.0.1" },
        "auth_device": { "name": "" },
    })
}

/// The log's entries: the seeded ones and every Auth API push that has ended, by its end.
pub(crate) fn auth_entries(state: &State, now_ms: i64) -> Vec<AuthLogEntry> {
    let mut entries = state.helpdesk.auth_log.clone();
    for push in state.pushes.values() {
        let Status::Done(outcome) = push.status(now_ms) else { continue };
        let at = push.resolve_at_ms.min(push.expires_at_ms).max(push.created_ms);
        let (result, reason) = match outcome {
            Outcome::Approve => ("success", "user_approved"),
            Outcome::Bypass => ("success", "bypass_user"),
            Outcome::Deny => ("denied", "user_denied"),
            Outcome::Locked => ("denied", "user_disabled"),
            Outcome::Timeout => ("denied", "no_response"),
            Outcome::Fraud => ("fraud", "user_marked_fraud"),
        };
        let factor = if push.device.is_empty() { "n/a" } else { "duo_push" };
        entries.push(AuthLogEntry {
            txid: push.txid.clone(),
            user_id: push.user_id.clone(),
            username: push.username.clone(),
            timestamp_ms: at,
            result: result.into(),
            reason: reason.into(),
            factor: factor.into(),
        });
    }
    entries
}

/// `GET /admin/v2/logs/authentication`: `mintime` and `maxtime` (13-digit Unix ms, both
/// required, `mintime` < `maxtime`, `mintime` at most 180 days back), `users` (user ids, the
/// param repeated), `limit` (default 100, at most 1000; more is 40002), `sort` (`ts:desc`, the
/// default, or `ts:asc`), `next_offset` (`"<ms>,<txid>"` from the previous page's
/// `metadata.next_offset`, a list of those two strings). An authentication appears only two
/// minutes after it happened. Answers `{authlogs, metadata: {next_offset, total_objects}}`.
pub fn auth_log(ctx: &mut Ctx<'_>, params: &Params) -> Result<Reply, ApiError> {
    let query = crate::logs::V2Query::parse(params, ctx.now_ms)?;
    let users: Vec<&str> = params.all("users").collect();
    let visible_until = ctx.now_ms.saturating_sub(AUTHLOG_DELAY_MS);
    let entries: Vec<(i64, String, Value)> = auth_entries(ctx.state, ctx.now_ms)
        .into_iter()
        .filter(|e| e.timestamp_ms <= visible_until)
        .filter(|e| users.is_empty() || users.contains(&e.user_id.as_str()))
        .map(|e| (e.timestamp_ms, e.txid.clone(), render_auth(&e)))
        .collect();
    let (page, next_offset, total) = query.page(entries);
    let response = json!({
        "authlogs": page,
        "metadata": { "next_offset": next_offset, "total_objects": { "value": total, "relation": "eq" } },
    });
    Ok(Reply::plain(response))
}
