//! The Admin API calls: users, phones and associations (enrolment and SMS activation, which
//! send links, are in `links.rs`).

use serde_json::{Value, json};

use crate::error::ApiError;
use crate::model::{PLATFORMS, Phone, PhoneType, User, UserStatus};
use crate::ops::{Ctx, Reply};
use crate::params::Page;
use crate::params::Params;
use crate::state::{State, normalise_number};

/// Duo's limits on associations.
const MAX_PHONES_PER_USER: usize = 100;
const MAX_USERS_PER_PHONE: usize = 100;

pub(crate) fn render_user(state: &State, user: &User) -> Value {
    let mut out = user.render_bare();
    let phones: Vec<Value> = user.phones.iter().filter_map(|id| state.phone(id)).map(Phone::render_bare).collect();
    out["phones"] = Value::Array(phones);
    out["groups"] = crate::helpdesk::groups_of(state, &user.user_id);
    out["tokens"] = crate::helpdesk::tokens_of(state, &user.user_id);
    out
}

pub(crate) fn render_phone(state: &State, phone: &Phone) -> Value {
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
/// send it), the users named, paged. Without any of these, every user, paged. Every lookup goes
/// through the index; only the page answered is rendered.
pub fn users_list(ctx: &mut Ctx<'_>, params: &Params) -> Result<Reply, ApiError> {
    let state = &*ctx.state;
    let username = params.get("username");
    let email = params.get("email");
    let user_ids = string_list(params, "user_id_list")?;
    let usernames = string_list(params, "username_list")?;
    let named = user_ids.is_some() || usernames.is_some();
    if username.is_none() && email.is_none() && !named {
        let page = params.page(100, 300)?;
        return Ok(paged(page, &state.users, |u| render_user(state, u)));
    }
    let mut found: Vec<usize> = match (username, email) {
        (Some(name), _) => state.user_by_name(name).and_then(|u| state.user_position(&u.user_id)).into_iter().collect(),
        (None, Some(email)) => state.users_by_email(email).filter_map(|u| state.user_position(&u.user_id)).collect(),
        (None, None) => {
            let by_id = user_ids.iter().flatten().filter_map(|id| state.user_position(id));
            let by_name = usernames.iter().flatten().filter_map(|n| state.user_by_name(n));
            by_id.chain(by_name.filter_map(|u| state.user_position(&u.user_id))).collect()
        }
    };
    found.sort_unstable();
    found.dedup();
    let matches = |u: &User| {
        username.is_none_or(|name| u.username == name)
            && email.is_none_or(|want| !want.is_empty() && u.email.to_lowercase() == want.to_lowercase())
            && user_ids.as_ref().is_none_or(|ids| ids.contains(&u.user_id))
            && usernames.as_ref().is_none_or(|names| names.contains(&u.username))
    };
    let users: Vec<&User> = found.iter().filter_map(|&pos| state.users.get(pos)).filter(|u| matches(u)).collect();
    if !named {
        return Ok(Reply::plain(Value::Array(users.iter().map(|u| render_user(state, u)).collect())));
    }
    let page = params.page(100, 300)?;
    Ok(paged(page, &users, |u| render_user(state, u)))
}

/// One page of `items`, rendering only the items on it.
fn paged<T>(page: Page, items: &[T], render: impl Fn(&T) -> Value) -> Reply {
    let window = page.window(items.len());
    let response = Value::Array(items[window].iter().map(render).collect());
    Reply { response, metadata: Some(page.metadata(items.len())) }
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
    let mut user = User::new(ctx.state.ids.user_id(), username.to_string(), ctx.now());
    user.realname = text("realname");
    user.email = text("email");
    user.firstname = text("firstname");
    user.lastname = text("lastname");
    user.notes = text("notes");
    user.status = status;
    ctx.record("user.create", json!({ "user_id": user.user_id, "username": user.username }));
    let rendered = render_user(ctx.state, &user);
    ctx.state.add_user(user);
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
        if ctx.state.user_by_name(username).is_some_and(|u| u.user_id != user_id) {
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
        ctx.state.replace_user(user_id, after);
        ctx.record("user.update", json!({ "user_id": user_id, "changes": changes }));
    }
    Ok(Reply::plain(rendered))
}

/// `DELETE /admin/v1/users/{user_id}`: `""`, also for an id Duo does not know (Duo documents the
/// call as succeeding when no such user exists). The user's phone associations go with it; the
/// phones stay.
pub fn user_delete(ctx: &mut Ctx<'_>, user_id: &str) -> Result<Reply, ApiError> {
    if let Some(user) = ctx.state.remove_user(user_id) {
        // What hangs off the user goes with it: group memberships, bypass codes, tokens.
        let helpdesk = &mut ctx.state.helpdesk;
        for group in &mut helpdesk.groups {
            group.members.retain(|m| m != user_id);
        }
        helpdesk.bypass_codes.remove(user_id);
        for token in helpdesk.tokens.iter_mut().filter(|t| t.user_id.as_deref() == Some(user_id)) {
            token.user_id = None;
        }
        ctx.record("user.delete", json!({ "user_id": user_id, "username": user.username, "phones": user.phones }));
    }
    Ok(Reply::plain(json!("")))
}

/// `GET /admin/v1/users/{user_id}/phones`, paged.
pub fn user_phones(ctx: &mut Ctx<'_>, user_id: &str, params: &Params) -> Result<Reply, ApiError> {
    let user = user_or_404(ctx.state, user_id)?;
    let page = params.page(100, 500)?;
    let phones: Vec<&Phone> = user.phones.iter().filter_map(|id| ctx.state.phone(id)).collect();
    Ok(paged(page, &phones, |p| p.render_bare()))
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
    ctx.state.associate(user_id, phone_id);
    ctx.record("phone.associate", json!({ "user_id": user_id, "phone_id": phone_id }));
    Ok(Reply::plain(json!("")))
}

/// `DELETE /admin/v1/users/{user_id}/phones/{phone_id}`: `""` whether or not it was attached.
pub fn disassociate(ctx: &mut Ctx<'_>, user_id: &str, phone_id: &str) -> Result<Reply, ApiError> {
    user_or_404(ctx.state, user_id)?;
    if ctx.state.disassociate(user_id, phone_id) {
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
    Ok(paged(page, &state.phones, |p| render_phone(state, p)))
}

/// `GET /admin/v1/phones/{phone_id}`: the phone with its users; 404/40401 if unknown.
pub fn phone_get(ctx: &mut Ctx<'_>, phone_id: &str) -> Result<Reply, ApiError> {
    let phone = ctx.state.phone(phone_id).ok_or_else(ApiError::not_found)?;
    Ok(Reply::plain(render_phone(ctx.state, phone)))
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
        predelay: None,
        postdelay: None,
        sms_passcodes_sent: false,
    };
    ctx.record("phone.create", json!({ "phone_id": phone.phone_id, "number": phone.number }));
    let rendered = render_phone(ctx.state, &phone);
    ctx.state.add_phone(phone);
    Ok(Reply::plain(rendered))
}

/// `DELETE /admin/v1/phones/{phone_id}`: also detaches it from every user.
pub fn phone_delete(ctx: &mut Ctx<'_>, phone_id: &str) -> Result<Reply, ApiError> {
    let phone = ctx.state.remove_phone(phone_id).ok_or_else(ApiError::not_found)?;
    ctx.record("phone.delete", json!({ "phone_id": phone_id, "number": phone.number }));
    Ok(Reply::plain(json!("")))
}
