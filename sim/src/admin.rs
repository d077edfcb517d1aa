//! The Admin API calls: users, phones, associations, enrolment and SMS activation.

use serde_json::{Value, json};

use crate::error::ApiError;
use crate::model::{PLATFORMS, Phone, PhoneType, User, UserStatus};
use crate::ops::{Ctx, Reply};
use crate::params::Params;
use crate::state::{State, normalise_number};

/// Duo's limits on associations.
const MAX_PHONES_PER_USER: usize = 100;
const MAX_USERS_PER_PHONE: usize = 100;

fn render_user(state: &State, user: &User) -> Value {
    let mut out = user.render_bare();
    let phones: Vec<Value> = user.phones.iter().filter_map(|id| state.phone(id)).map(Phone::render_bare).collect();
    out["phones"] = Value::Array(phones);
    out
}

fn render_phone(state: &State, phone: &Phone) -> Value {
    let mut out = phone.render_bare();
    out["users"] = Value::Array(state.users_of(&phone.phone_id).map(User::render_bare).collect());
    out
}

fn user_or_404<'s>(state: &'s State, user_id: &str) -> Result<&'s User, ApiError> {
    state.user(user_id).ok_or_else(ApiError::not_found)
}

/// `GET /admin/v1/users`. With `username` and/or `email` (an email compares case-insensitively),
/// the users matching all of them, as a plain list (0 or 1 while emails are unique). With
/// `user_id_list` and/or `username_list` (each a JSON array of strings, as the official Python client
/// send it), the users named, paged. Without any of these, every user, paged.
pub fn users_list(ctx: &mut Ctx<'_>, params: &Params) -> Result<Reply, ApiError> {
    let state = &*ctx.state;
    let username = params.get("username");
    let email = params.get("email").map(str::to_lowercase);
    let user_ids = string_list(params, "user_id_list")?;
    let usernames = string_list(params, "username_list")?;
    let matches = |u: &User| {
        username.is_none_or(|name| u.username == name)
            && email.as_deref().is_none_or(|want| !want.is_empty() && u.email.to_lowercase() == want)
            && user_ids.as_ref().is_none_or(|ids| ids.contains(&u.user_id))
            && usernames.as_ref().is_none_or(|names| names.contains(&u.username))
    };
    let found: Vec<Value> = state.users.iter().filter(|u| matches(u)).map(|u| render_user(state, u)).collect();
    let lookup = username.is_some() || email.is_some();
    if lookup && user_ids.is_none() && usernames.is_none() {
        return Ok(Reply::plain(Value::Array(found)));
    }
    let page = params.page(100, 300)?;
    let (response, metadata) = page.apply(found);
    Ok(Reply { response, metadata: Some(metadata) })
}

/// A param holding a JSON array of strings: `None` when absent, 40002 when it is not one.
fn string_list(params: &Params, name: &str) -> Result<Option<Vec<String>>, ApiError> {
    params
        .get(name)
        .map(|text| serde_json::from_str::<Vec<String>>(text).map_err(|_| ApiError::invalid(name)))
        .transpose()
}

/// `GET /admin/v1/users/{user_id}`.
pub fn user_get(ctx: &mut Ctx<'_>, user_id: &str) -> Result<Reply, ApiError> {
    let user = user_or_404(ctx.state, user_id)?;
    Ok(Reply::plain(render_user(ctx.state, user)))
}

/// `POST /admin/v1/users`.
pub fn user_create(ctx: &mut Ctx<'_>, params: &Params) -> Result<Reply, ApiError> {
    let username = params.require("username")?;
    if ctx.state.user_by_name(username).is_some() {
        return Err(ApiError::duplicate("username"));
    }
    let status = match params.get("status") {
        Some(s) => UserStatus::parse_settable(s).ok_or_else(|| ApiError::invalid("status"))?,
        None => UserStatus::Active,
    };
    let text = |name: &str| params.get(name).unwrap_or_default().to_string();
    let user = User {
        user_id: ctx.state.ids.user_id(),
        username: username.to_string(),
        realname: text("realname"),
        email: text("email"),
        firstname: text("firstname"),
        lastname: text("lastname"),
        notes: text("notes"),
        status,
        created: ctx.now(),
        last_login: None,
        phones: Vec::new(),
        push: Default::default(),
        push_delay_ms: crate::model::default_push_delay_ms(),
    };
    ctx.record("user.create", json!({ "user_id": user.user_id, "username": user.username }));
    let rendered = render_user(ctx.state, &user);
    ctx.state.users.push(user);
    Ok(Reply::plain(rendered))
}

/// The user fields `POST /admin/v1/users/{user_id}` may change, as they render.
const UPDATABLE: &[&str] = &["username", "realname", "email", "firstname", "lastname", "notes", "status"];

/// `POST /admin/v1/users/{user_id}`: changes the fields given, after checking all of them, so a
/// refused call changes nothing. Setting `active` on a `locked out` user unlocks it. The audit
/// entry lists each changed field with its old and new value; a call that changes nothing logs
/// nothing.
pub fn user_update(ctx: &mut Ctx<'_>, user_id: &str, params: &Params) -> Result<Reply, ApiError> {
    let before = user_or_404(ctx.state, user_id)?;
    let mut after = before.clone();
    if let Some(username) = params.get("username") {
        if username.is_empty() {
            return Err(ApiError::invalid("username"));
        }
        if ctx.state.users.iter().any(|u| u.username == username && u.user_id != user_id) {
            return Err(ApiError::duplicate("username"));
        }
        after.username = username.to_string();
    }
    if let Some(status) = params.get("status") {
        after.status = UserStatus::parse_settable(status).ok_or_else(|| ApiError::invalid("status"))?;
    }
    for (name, field) in [
        ("realname", &mut after.realname),
        ("email", &mut after.email),
        ("firstname", &mut after.firstname),
        ("lastname", &mut after.lastname),
        ("notes", &mut after.notes),
    ] {
        if let Some(value) = params.get(name) {
            *field = value.to_string();
        }
    }
    let (old, new) = (before.render_bare(), after.render_bare());
    let changes: serde_json::Map<String, Value> = UPDATABLE
        .iter()
        .filter(|name| old[**name] != new[**name])
        .map(|name| (name.to_string(), json!({ "from": old[*name], "to": new[*name] })))
        .collect();
    let rendered = render_user(ctx.state, &after);
    if !changes.is_empty() {
        if let Some(slot) = ctx.state.users.iter_mut().find(|u| u.user_id == user_id) {
            *slot = after;
        }
        ctx.record("user.update", json!({ "user_id": user_id, "changes": changes }));
    }
    Ok(Reply::plain(rendered))
}

/// `DELETE /admin/v1/users/{user_id}`: `""`, also for an id Duo does not know (Duo documents the
/// call as succeeding when no such user exists). The user's phone associations go with it; the
/// phones stay.
pub fn user_delete(ctx: &mut Ctx<'_>, user_id: &str) -> Result<Reply, ApiError> {
    if let Some(index) = ctx.state.users.iter().position(|u| u.user_id == user_id) {
        let user = ctx.state.users.remove(index);
        ctx.record("user.delete", json!({ "user_id": user_id, "username": user.username, "phones": user.phones }));
    }
    Ok(Reply::plain(json!("")))
}

/// `POST /admin/v1/users/enroll`: creates the user and "sends" the enrolment email, which the
/// state keeps under `messages`.
pub fn user_enroll(ctx: &mut Ctx<'_>, params: &Params) -> Result<Reply, ApiError> {
    let username = params.require("username")?;
    let email = params.require("email")?;
    if !email.contains('@') {
        return Err(ApiError::invalid("email"));
    }
    let valid_secs = params.number("valid_secs")?.unwrap_or(2_592_000);
    if ctx.state.user_by_name(username).is_some() {
        return Err(ApiError::duplicate("username"));
    }
    let code = ctx.state.ids.code(20);
    let user = User {
        user_id: ctx.state.ids.user_id(),
        username: username.to_string(),
        realname: String::new(),
        email: email.to_string(),
        firstname: String::new(),
        lastname: String::new(),
        notes: String::new(),
        status: UserStatus::Active,
        created: ctx.now(),
        last_login: None,
        phones: Vec::new(),
        push: Default::default(),
        push_delay_ms: crate::model::default_push_delay_ms(),
    };
    let detail = json!({ "user_id": user.user_id, "username": username, "email": email, "valid_secs": valid_secs });
    ctx.state.messages.push(json!({ "kind": "enrollment_email", "to": email, "code": code, "valid_secs": valid_secs }));
    ctx.state.users.push(user);
    ctx.record("user.enroll", detail);
    Ok(Reply::plain(Value::String(code)))
}

/// `GET /admin/v1/users/{user_id}/phones`, paged.
pub fn user_phones(ctx: &mut Ctx<'_>, user_id: &str, params: &Params) -> Result<Reply, ApiError> {
    let user = user_or_404(ctx.state, user_id)?;
    let page = params.page(100, 500)?;
    let phones = user.phones.iter().filter_map(|id| ctx.state.phone(id)).map(Phone::render_bare).collect();
    let (response, metadata) = page.apply(phones);
    Ok(Reply { response, metadata: Some(metadata) })
}

/// `POST /admin/v1/users/{user_id}/phones`: associating twice changes nothing.
pub fn associate(ctx: &mut Ctx<'_>, user_id: &str, params: &Params) -> Result<Reply, ApiError> {
    let user = user_or_404(ctx.state, user_id)?;
    let phone_id = params.require("phone_id")?;
    if ctx.state.phone(phone_id).is_none() {
        return Err(ApiError::invalid("phone_id"));
    }
    if user.phones.iter().any(|p| p == phone_id) {
        return Ok(Reply::plain(json!("")));
    }
    if user.phones.len() >= MAX_PHONES_PER_USER || ctx.state.users_of(phone_id).count() >= MAX_USERS_PER_PHONE {
        return Err(ApiError::invalid("phone_id"));
    }
    if let Some(user) = ctx.state.users.iter_mut().find(|u| u.user_id == user_id) {
        user.phones.push(phone_id.to_string());
    }
    ctx.record("phone.associate", json!({ "user_id": user_id, "phone_id": phone_id }));
    Ok(Reply::plain(json!("")))
}

/// `DELETE /admin/v1/users/{user_id}/phones/{phone_id}`: `""` whether or not it was attached.
pub fn disassociate(ctx: &mut Ctx<'_>, user_id: &str, phone_id: &str) -> Result<Reply, ApiError> {
    user_or_404(ctx.state, user_id)?;
    let mut removed = false;
    if let Some(user) = ctx.state.users.iter_mut().find(|u| u.user_id == user_id) {
        let before = user.phones.len();
        user.phones.retain(|p| p != phone_id);
        removed = user.phones.len() != before;
    }
    if removed {
        ctx.record("phone.disassociate", json!({ "user_id": user_id, "phone_id": phone_id }));
    }
    Ok(Reply::plain(json!("")))
}

/// `GET /admin/v1/phones`: by `number` (0 or 1 items, each with its users), or all, paged.
pub fn phones_list(ctx: &mut Ctx<'_>, params: &Params) -> Result<Reply, ApiError> {
    let state = &*ctx.state;
    if let Some(number) = params.get("number") {
        let found: Vec<Value> = state.phone_by_number(number).map(|p| render_phone(state, p)).into_iter().collect();
        return Ok(Reply::plain(Value::Array(found)));
    }
    let page = params.page(100, 500)?;
    let all = state.phones.iter().map(|p| render_phone(state, p)).collect();
    let (response, metadata) = page.apply(all);
    Ok(Reply { response, metadata: Some(metadata) })
}

/// `POST /admin/v1/phones`: 40003 when the number exists.
pub fn phone_create(ctx: &mut Ctx<'_>, params: &Params) -> Result<Reply, ApiError> {
    let number = match params.get("number") {
        Some(n) if normalise_number(n).is_empty() => return Err(ApiError::invalid("number")),
        Some(n) => format!("+{}", normalise_number(n)),
        None => String::new(),
    };
    if !number.is_empty() && ctx.state.phone_by_number(&number).is_some() {
        return Err(ApiError::duplicate("number"));
    }
    let kind = match params.get("type") {
        Some(t) => PhoneType::parse(t).ok_or_else(|| ApiError::invalid("type"))?,
        None => PhoneType::Unknown,
    };
    let platform = params.get("platform").unwrap_or("unknown").to_ascii_lowercase();
    if !PLATFORMS.contains(&platform.as_str()) {
        return Err(ApiError::invalid("platform"));
    }
    let phone = Phone {
        phone_id: ctx.state.ids.phone_id(),
        number,
        name: params.get("name").unwrap_or_default().to_string(),
        extension: params.get("extension").unwrap_or_default().to_string(),
        kind,
        platform,
        activated: false,
    };
    ctx.record("phone.create", json!({ "phone_id": phone.phone_id, "number": phone.number }));
    let rendered = render_phone(ctx.state, &phone);
    ctx.state.phones.push(phone);
    Ok(Reply::plain(rendered))
}

/// `DELETE /admin/v1/phones/{phone_id}`: also detaches it from every user.
pub fn phone_delete(ctx: &mut Ctx<'_>, phone_id: &str) -> Result<Reply, ApiError> {
    let index = ctx.state.phones.iter().position(|p| p.phone_id == phone_id).ok_or_else(ApiError::not_found)?;
    let phone = ctx.state.phones.remove(index);
    for user in &mut ctx.state.users {
        user.phones.retain(|p| p != phone_id);
    }
    ctx.record("phone.delete", json!({ "phone_id": phone_id, "number": phone.number }));
    Ok(Reply::plain(json!("")))
}

/// `POST /admin/v1/phones/{phone_id}/send_sms_activation`. The simulated user follows the link
/// at once, so the phone is activated (and push-capable) from here on.
pub fn sms_activation(ctx: &mut Ctx<'_>, phone_id: &str, params: &Params) -> Result<Reply, ApiError> {
    let phone = ctx.state.phone(phone_id).ok_or_else(ApiError::not_found)?;
    if phone.kind != PhoneType::Mobile {
        return Err(ApiError::invalid("type"));
    }
    if phone.platform == "unknown" {
        return Err(ApiError::invalid("platform"));
    }
    let number = phone.number.clone();
    let valid_secs = params.number("valid_secs")?.unwrap_or(86_400);
    let install = params.flag("install");
    let code = ctx.state.ids.code(20);
    if let Some(phone) = ctx.state.phones.iter_mut().find(|p| p.phone_id == phone_id) {
        phone.activated = true;
    }
    let link = format!("https://m-sim.duo.invalid/activate/{code}");
    let response = json!({
        "activation_barcode": format!("https://api-sim.duo.invalid/frame/qr?value={code}"),
        "activation_msg": format!("To activate the app, tap and open this link: {link}"),
        "installation_msg": if install { "Welcome to Duo! To install the Duo Mobile app, visit the app store." } else { "" },
        "valid_secs": valid_secs,
    });
    ctx.state.messages.push(json!({ "kind": "sms_activation", "to": number, "code": code, "install": install }));
    ctx.record(
        "phone.sms_activation",
        json!({ "phone_id": phone_id, "number": number, "valid_secs": valid_secs, "install": install }),
    );
    Ok(Reply::plain(response))
}
