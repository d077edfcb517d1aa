//! The Auth API endpoints (<https://duo.com/docs/authapi>). Any Auth API application's keys may
//! call them; `/ping` needs none.

use super::Need::{OneOf, Optional, Required};
use super::Permission::{AuthApi, Unsigned};
use super::Shape::{Obj, Str};
use super::objects::{AUTH, AUTH_STATUS, ENROLL, PREAUTH, TIME};
use super::{Api, Endpoint, Need, Param, Params, Permission, Shape, Ty};

const fn p(name: &'static str, ty: Ty, need: Need) -> Param {
    Param { name, ty, need }
}

/// The user a call is about: one of the two.
const USER: &str = "`username` or `user_id`";

const fn entry(
    method: &'static str,
    path: &'static str,
    params: &'static [Param],
    response: Shape,
    permission: Permission,
    section: &'static str,
    note: Option<&'static str>,
) -> Endpoint {
    Endpoint {
        api: Api::Auth,
        method,
        path,
        params: Params::Described(params),
        response,
        paged: false,
        permission,
        section,
        note,
    }
}

pub static ENDPOINTS: &[Endpoint] = &[
    entry("GET", "/auth/v2/ping", &[], Obj(TIME), Unsigned, "/ping", None),
    entry("GET", "/auth/v2/check", &[], Obj(TIME), AuthApi, "/check", None),
    entry(
        "POST",
        "/auth/v2/enroll",
        &[p("username", Ty::Str, Optional), p("valid_secs", Ty::Int, Optional)],
        Obj(ENROLL),
        AuthApi,
        "/enroll",
        None,
    ),
    entry(
        "POST",
        "/auth/v2/enroll_status",
        &[p("user_id", Ty::Str, Required), p("activation_code", Ty::Str, Required)],
        Str,
        AuthApi,
        "/enroll_status",
        Some("the answer is one word: `success`, `invalid` or `waiting`"),
    ),
    entry(
        "POST",
        "/auth/v2/preauth",
        &[
            p("username", Ty::Str, OneOf(USER)),
            p("user_id", Ty::Str, OneOf(USER)),
            p("ipaddr", Ty::Str, Optional),
            p("hostname", Ty::Str, Optional),
            p("trusted_device_token", Ty::Str, Optional),
        ],
        Obj(PREAUTH),
        AuthApi,
        "/preauth",
        None,
    ),
    entry(
        "POST",
        "/auth/v2/auth",
        &[
            p("username", Ty::Str, OneOf(USER)),
            p("user_id", Ty::Str, OneOf(USER)),
            p("factor", Ty::Enum(&["auto", "push", "passcode", "sms", "phone"]), Required),
            p("ipaddr", Ty::Str, Optional),
            p("hostname", Ty::Str, Optional),
            p("async", Ty::Flag, Optional),
            p("device", Ty::Str, Optional),
            p("type", Ty::Str, Optional),
            p("display_username", Ty::Str, Optional),
            p("pushinfo", Ty::Str, Optional),
            p("passcode", Ty::Str, Optional),
        ],
        Obj(AUTH),
        AuthApi,
        "/auth",
        Some(
            "the documentation lists `device` as required for the `push`, `phone` and `sms` factors \
             and `passcode` for `passcode`: required by `factor`, which a template may hide, so not \
             checked",
        ),
    ),
    entry(
        "GET",
        "/auth/v2/auth_status",
        &[p("txid", Ty::Str, Required)],
        Obj(AUTH_STATUS),
        AuthApi,
        "/auth_status",
        None,
    ),
];
