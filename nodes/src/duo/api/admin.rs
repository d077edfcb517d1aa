//! The Admin API endpoints (<https://duo.com/docs/adminapi>): users, phones, hardware tokens,
//! bypass codes, groups and logs described whole; a few other families by path, method and
//! permission only, so that a flow calling them is not told the path does not exist.

use super::Need::{Optional, Required};
use super::Permission::{
    Administrators, Applications, ReadInformation, ReadLog, ReadResource, Settings, WriteResource,
};
use super::Shape::{Any, List, Obj, Str};
use super::objects::{
    ACTIVATION, ADMIN_LOG_EVENT, AUTH_LOG, BYPASS_CODE, GROUP, ITEMS_LOG, PHONE_FIELDS, PHONE_WITH_USERS, TOKEN, USER,
};
use super::{Api, Endpoint, Need, Param, Params, Permission, Shape, Ty};

const fn p(name: &'static str, ty: Ty, need: Need) -> Param {
    Param { name, ty, need }
}

/// Paging of the v1 lists.
const LIMIT: Param = p("limit", Ty::Int, Optional);
const OFFSET: Param = p("offset", Ty::Int, Optional);

const USER_STATUS: Ty = Ty::Enum(&["active", "bypass", "disabled"]);
const PHONE_TYPE: Ty = Ty::Enum(&["unknown", "mobile", "landline"]);
const PLATFORM: Ty = Ty::Enum(&[
    "unknown",
    "google android",
    "apple ios",
    "windows phone",
    "rim blackberry",
    "java j2me",
    "palm webos",
    "symbian os",
    "windows mobile",
    "generic smartphone",
]);
const TOKEN_TYPE: Ty = Ty::Enum(&["h6", "h8", "t6", "t8", "yk", "d1"]);

/// The fields of a user that create and modify take (Admin API, "Create User", "Modify User").
const USER_FIELDS_CREATE: &[Param] = &[
    p("username", Ty::Str, Required),
    p("alias1", Ty::Str, Optional),
    p("alias2", Ty::Str, Optional),
    p("alias3", Ty::Str, Optional),
    p("alias4", Ty::Str, Optional),
    p("aliases", Ty::Str, Optional),
    p("realname", Ty::Str, Optional),
    p("email", Ty::Str, Optional),
    p("status", USER_STATUS, Optional),
    p("notes", Ty::Str, Optional),
    p("firstname", Ty::Str, Optional),
    p("lastname", Ty::Str, Optional),
];

const USER_FIELDS_MODIFY: &[Param] = &[
    p("username", Ty::Str, Optional),
    p("alias1", Ty::Str, Optional),
    p("alias2", Ty::Str, Optional),
    p("alias3", Ty::Str, Optional),
    p("alias4", Ty::Str, Optional),
    p("aliases", Ty::Str, Optional),
    p("realname", Ty::Str, Optional),
    p("email", Ty::Str, Optional),
    p("status", USER_STATUS, Optional),
    p("notes", Ty::Str, Optional),
    p("firstname", Ty::Str, Optional),
    p("lastname", Ty::Str, Optional),
];

const PHONE_PARAMS: &[Param] = &[
    p("number", Ty::Str, Optional),
    p("name", Ty::Str, Optional),
    p("extension", Ty::Str, Optional),
    p("type", PHONE_TYPE, Optional),
    p("platform", PLATFORM, Optional),
    p("predelay", Ty::Int, Optional),
    p("postdelay", Ty::Int, Optional),
];

const GROUP_PARAMS_MODIFY: &[Param] = &[
    p("name", Ty::Str, Optional),
    p("desc", Ty::Str, Optional),
    p("status", Ty::Enum(&["active", "bypass", "disabled"]), Optional),
];

const MINTIME_SECS: &[Param] = &[p("mintime", Ty::UnixSecs, Optional)];

/// The v2 logs' window and paging (Admin API, "Authentication Logs", "Telephony Logs",
/// "Activity Logs").
const V2_LOG_WINDOW: &[Param] = &[
    p("mintime", Ty::UnixMs, Required),
    p("maxtime", Ty::UnixMs, Required),
    p("limit", Ty::Int, Optional),
    p("next_offset", Ty::Str, Optional),
    p("sort", Ty::Enum(&["ts:desc", "ts:asc"]), Optional),
];

const fn entry(
    method: &'static str,
    path: &'static str,
    params: &'static [Param],
    response: Shape,
    permission: Permission,
    section: &'static str,
) -> Endpoint {
    Endpoint {
        api: Api::Admin,
        method,
        path,
        params: Params::Described(params),
        response,
        paged: false,
        permission,
        section,
        note: None,
    }
}

const fn paged(mut e: Endpoint) -> Endpoint {
    e.paged = true;
    e
}

const fn noted(mut e: Endpoint, note: &'static str) -> Endpoint {
    e.note = Some(note);
    e
}

/// An endpoint known by path, method and permission only.
const fn bare(method: &'static str, path: &'static str, permission: Permission, section: &'static str) -> Endpoint {
    Endpoint {
        api: Api::Admin,
        method,
        path,
        params: Params::Undescribed,
        response: Any,
        paged: false,
        permission,
        section,
        note: Some("parameters and answer not described here: nothing is checked but the path and method"),
    }
}

const EMPTY: &[Param] = &[];

/// Parameters every Admin API call takes. `account_id`: a call made with an Accounts API
/// application's keys to a child account names it (Duo's Accounts API documentation, "Child
/// Account Administration"; the Python client's `AccountAdmin` adds it to every call).
pub const COMMON: &[Param] = &[p("account_id", Ty::Str, Optional)];

pub static ENDPOINTS: &[Endpoint] = &[
    // Users.
    noted(
        paged(entry(
            "GET",
            "/admin/v1/users",
            &[
                p("username", Ty::Str, Optional),
                p("email", Ty::Str, Optional),
                p("user_id_list", Ty::JsonList, Optional),
                p("username_list", Ty::JsonList, Optional),
                LIMIT,
                OFFSET,
            ],
            List(&Obj(USER)),
            ReadResource,
            "Retrieve Users",
        )),
        "paged (metadata) without `username` or `email`; with one of them a plain list of 0 or 1 users",
    ),
    entry("POST", "/admin/v1/users", USER_FIELDS_CREATE, Obj(USER), WriteResource, "Create User"),
    entry(
        "POST",
        "/admin/v1/users/enroll",
        &[p("username", Ty::Str, Required), p("email", Ty::Str, Required), p("valid_secs", Ty::Int, Optional)],
        Str,
        WriteResource,
        "Enroll User",
    ),
    entry("GET", "/admin/v1/users/{user_id}", EMPTY, Obj(USER), ReadResource, "Retrieve User by ID"),
    entry("POST", "/admin/v1/users/{user_id}", USER_FIELDS_MODIFY, Obj(USER), WriteResource, "Modify User"),
    entry("DELETE", "/admin/v1/users/{user_id}", EMPTY, Str, WriteResource, "Delete User"),
    noted(
        entry(
            "POST",
            "/admin/v1/users/{user_id}/bypass_codes",
            &[
                p("count", Ty::Int, Optional),
                p("codes", Ty::Csv, Optional),
                p("preserve_existing", Ty::Bool, Optional),
                p("reuse_count", Ty::Int, Optional),
                p("valid_secs", Ty::Int, Optional),
            ],
            List(&Str),
            WriteResource,
            "Create Bypass Codes for User",
        ),
        "`count` (default 10, at most 10) and `codes` exclude each other; the answer is the codes themselves, a secret",
    ),
    paged(entry(
        "GET",
        "/admin/v1/users/{user_id}/bypass_codes",
        &[LIMIT, OFFSET],
        List(&Obj(BYPASS_CODE)),
        ReadResource,
        "Retrieve Bypass Codes by User ID",
    )),
    paged(entry(
        "GET",
        "/admin/v1/users/{user_id}/groups",
        &[LIMIT, OFFSET],
        List(&Obj(GROUP)),
        ReadResource,
        "Retrieve Groups by User ID",
    )),
    entry(
        "POST",
        "/admin/v1/users/{user_id}/groups",
        &[p("group_id", Ty::Str, Required)],
        Str,
        WriteResource,
        "Associate Group with User",
    ),
    entry(
        "DELETE",
        "/admin/v1/users/{user_id}/groups/{group_id}",
        EMPTY,
        Str,
        WriteResource,
        "Disassociate Group from User",
    ),
    paged(entry(
        "GET",
        "/admin/v1/users/{user_id}/phones",
        &[LIMIT, OFFSET],
        List(&Obj(PHONE_FIELDS)),
        ReadResource,
        "Retrieve Phones by User ID",
    )),
    entry(
        "POST",
        "/admin/v1/users/{user_id}/phones",
        &[p("phone_id", Ty::Str, Required)],
        Str,
        WriteResource,
        "Associate Phone with User",
    ),
    entry(
        "DELETE",
        "/admin/v1/users/{user_id}/phones/{phone_id}",
        EMPTY,
        Str,
        WriteResource,
        "Disassociate Phone from User",
    ),
    paged(entry(
        "GET",
        "/admin/v1/users/{user_id}/tokens",
        &[LIMIT, OFFSET],
        List(&Obj(super::objects::TOKEN_BARE)),
        ReadResource,
        "Retrieve Hardware Tokens by User ID",
    )),
    entry(
        "POST",
        "/admin/v1/users/{user_id}/tokens",
        &[p("token_id", Ty::Str, Required)],
        Str,
        WriteResource,
        "Associate Hardware Token with User",
    ),
    entry(
        "DELETE",
        "/admin/v1/users/{user_id}/tokens/{token_id}",
        EMPTY,
        Str,
        WriteResource,
        "Disassociate Hardware Token from User",
    ),
    paged(entry(
        "GET",
        "/admin/v1/users/{user_id}/webauthncredentials",
        &[LIMIT, OFFSET],
        List(&Any),
        ReadResource,
        "Retrieve WebAuthn Credentials by User ID",
    )),
    noted(
        entry(
            "POST",
            "/admin/v1/users/{user_id}/send_verification_push",
            &[p("phone_id", Ty::Str, Required)],
            Obj(&[super::always("confirmation_code", Str), super::always("push_id", Str)]),
            WriteResource,
            "Send Verification Push",
        ),
        "the phone must be one of the user's, activated for Duo Push",
    ),
    noted(
        entry(
            "GET",
            "/admin/v1/users/{user_id}/verification_push_response",
            &[p("push_id", Ty::Str, Required)],
            Obj(&[super::always("push_id", Str), super::always("result", Str)]),
            ReadResource,
            "Retrieve Verification Push Response",
        ),
        "`result` is `approve`, `deny`, `fraud` or `waiting` (the documentation lists these words; the \
         Python client returns the answer unread)",
    ),
    entry(
        "POST",
        "/admin/v1/users/directorysync/{directory_key}/syncuser",
        &[p("username", Ty::Str, Required)],
        Any,
        WriteResource,
        "Synchronize User from Directory",
    ),
    // Phones.
    noted(
        paged(entry(
            "GET",
            "/admin/v1/phones",
            &[p("number", Ty::Str, Optional), p("extension", Ty::Str, Optional), LIMIT, OFFSET],
            List(&Obj(PHONE_WITH_USERS)),
            ReadResource,
            "Retrieve Phones",
        )),
        "paged without `number`; with it a plain list of 0 or 1 phones",
    ),
    entry("POST", "/admin/v1/phones", PHONE_PARAMS, Obj(PHONE_WITH_USERS), WriteResource, "Create Phone"),
    entry("GET", "/admin/v1/phones/{phone_id}", EMPTY, Obj(PHONE_WITH_USERS), ReadResource, "Retrieve Phone by ID"),
    entry("POST", "/admin/v1/phones/{phone_id}", PHONE_PARAMS, Obj(PHONE_WITH_USERS), WriteResource, "Modify Phone"),
    entry("DELETE", "/admin/v1/phones/{phone_id}", EMPTY, Str, WriteResource, "Delete Phone"),
    entry(
        "POST",
        "/admin/v1/phones/{phone_id}/activation_url",
        &[p("valid_secs", Ty::Int, Optional), p("install", Ty::Flag, Optional)],
        Obj(ACTIVATION),
        WriteResource,
        "Create Activation Code",
    ),
    entry(
        "POST",
        "/admin/v1/phones/{phone_id}/send_sms_activation",
        &[
            p("valid_secs", Ty::Int, Optional),
            p("install", Ty::Flag, Optional),
            p("installation_msg", Ty::Str, Optional),
            p("activation_msg", Ty::Str, Optional),
        ],
        Obj(ACTIVATION),
        WriteResource,
        "Send Activation Code via SMS",
    ),
    entry(
        "POST",
        "/admin/v1/phones/{phone_id}/send_sms_installation",
        &[p("installation_msg", Ty::Str, Optional)],
        Obj(&[super::always("installation_msg", Str)]),
        WriteResource,
        "Send Installation URL via SMS",
    ),
    entry(
        "POST",
        "/admin/v1/phones/{phone_id}/send_sms_passcodes",
        EMPTY,
        Str,
        WriteResource,
        "Send Passcodes via SMS",
    ),
    // Hardware tokens.
    noted(
        paged(entry(
            "GET",
            "/admin/v1/tokens",
            &[p("type", TOKEN_TYPE, Optional), p("serial", Ty::Str, Optional), LIMIT, OFFSET],
            List(&Obj(TOKEN)),
            ReadResource,
            "Retrieve Hardware Tokens",
        )),
        "`type` and `serial` go together: with both, a plain list of 0 or 1 tokens",
    ),
    noted(
        entry(
            "POST",
            "/admin/v1/tokens",
            &[
                p("type", TOKEN_TYPE, Required),
                p("serial", Ty::Str, Required),
                p("secret", Ty::Str, Optional),
                p("counter", Ty::Int, Optional),
                p("totp_step", Ty::Int, Optional),
                p("private_id", Ty::Str, Optional),
                p("aes_key", Ty::Str, Optional),
            ],
            Obj(TOKEN),
            WriteResource,
            "Create Hardware Token",
        ),
        "`secret` is required for HOTP and TOTP tokens, `private_id` and `aes_key` for YubiKeys: \
         required by `type`, which a template hides, so not checked",
    ),
    entry("GET", "/admin/v1/tokens/{token_id}", EMPTY, Obj(TOKEN), ReadResource, "Retrieve Hardware Token by ID"),
    entry(
        "POST",
        "/admin/v1/tokens/{token_id}/resync",
        &[p("code1", Ty::Str, Required), p("code2", Ty::Str, Required), p("code3", Ty::Str, Required)],
        Str,
        WriteResource,
        "Resync Hardware Token",
    ),
    entry("DELETE", "/admin/v1/tokens/{token_id}", EMPTY, Str, WriteResource, "Delete Hardware Token"),
    // Bypass codes of the whole account.
    paged(entry(
        "GET",
        "/admin/v1/bypass_codes",
        &[LIMIT, OFFSET],
        List(&Obj(BYPASS_CODE)),
        ReadResource,
        "Retrieve Bypass Codes",
    )),
    entry(
        "GET",
        "/admin/v1/bypass_codes/{bypass_code_id}",
        EMPTY,
        Obj(BYPASS_CODE),
        ReadResource,
        "Retrieve Bypass Code by ID",
    ),
    entry("DELETE", "/admin/v1/bypass_codes/{bypass_code_id}", EMPTY, Str, WriteResource, "Delete Bypass Code"),
    // Groups.
    noted(
        paged(entry(
            "GET",
            "/admin/v1/groups",
            &[p("group_id_list", Ty::JsonList, Optional), LIMIT, OFFSET],
            List(&Obj(GROUP)),
            ReadResource,
            "Retrieve Groups",
        )),
        "`group_id_list` is from Duo's Python client (`get_groups_by_group_ids`); there is no \
         lookup by name: a group named by its name is found by reading the list",
    ),
    noted(
        entry(
            "POST",
            "/admin/v1/groups",
            &[
                p("name", Ty::Str, Required),
                p("desc", Ty::Str, Optional),
                p("status", Ty::Enum(&["active", "bypass", "disabled"]), Optional),
            ],
            Obj(GROUP),
            WriteResource,
            "Create Group",
        ),
        "the factor restrictions (`push_enabled`, `sms_enabled`, …) are deprecated and left out",
    ),
    noted(
        entry("GET", "/admin/v1/groups/{group_id}", EMPTY, Obj(GROUP), ReadResource, "Get Group Info"),
        "the v1 handler, deprecated for `/admin/v2/groups/{group_id}`",
    ),
    entry("GET", "/admin/v2/groups/{group_id}", EMPTY, Obj(GROUP), ReadResource, "Get Group Info"),
    paged(entry(
        "GET",
        "/admin/v2/groups/{group_id}/users",
        &[LIMIT, OFFSET],
        List(&Obj(&[super::always("user_id", Str), super::always("username", Str)])),
        ReadResource,
        "Get Group Members",
    )),
    entry("POST", "/admin/v1/groups/{group_id}", GROUP_PARAMS_MODIFY, Obj(GROUP), WriteResource, "Update Group"),
    entry("DELETE", "/admin/v1/groups/{group_id}", EMPTY, Str, WriteResource, "Delete Group"),
    // Logs.
    noted(
        entry(
            "GET",
            "/admin/v2/logs/authentication",
            &[
                p("mintime", Ty::UnixMs, Required),
                p("maxtime", Ty::UnixMs, Required),
                p("limit", Ty::Int, Optional),
                p("next_offset", Ty::Str, Optional),
                p("sort", Ty::Enum(&["ts:desc", "ts:asc"]), Optional),
                p("users", Ty::Repeated, Optional),
                p("groups", Ty::Repeated, Optional),
                p("applications", Ty::Repeated, Optional),
                p("event_types", Ty::Repeated, Optional),
                p("factors", Ty::Repeated, Optional),
                p("reasons", Ty::Repeated, Optional),
                p("results", Ty::Repeated, Optional),
                p("assessment", Ty::Repeated, Optional),
                p("detections", Ty::Repeated, Optional),
                p("phone_numbers", Ty::Repeated, Optional),
                p("tokens", Ty::Repeated, Optional),
            ],
            Obj(AUTH_LOG),
            ReadLog,
            "Authentication Logs",
        ),
        "paged by `next_offset` (the previous page's `metadata.next_offset`, two values joined by a \
         comma), not `offset`; `limit` defaults to 100, at most 1000; the window is at most 180 days \
         back. The filters are the documentation's list; `phone_numbers` and `tokens` are not in the \
         Python client's list of the parameters it passes on (`VALID_AUTHLOG_REQUEST_PARAMS`), which \
         may be older",
    ),
    noted(
        entry("GET", "/admin/v1/logs/authentication", MINTIME_SECS, List(&Any), ReadLog, "Authentication Logs"),
        "the v1 handler, deprecated for `/admin/v2/logs/authentication`",
    ),
    entry(
        "GET",
        "/admin/v1/logs/administrator",
        MINTIME_SECS,
        List(&Obj(ADMIN_LOG_EVENT)),
        ReadLog,
        "Administrator Logs",
    ),
    entry("GET", "/admin/v2/logs/telephony", V2_LOG_WINDOW, Obj(ITEMS_LOG), ReadLog, "Telephony Logs"),
    noted(
        entry("GET", "/admin/v1/logs/telephony", MINTIME_SECS, List(&Any), ReadLog, "Telephony Logs"),
        "the v1 handler, deprecated for `/admin/v2/logs/telephony`",
    ),
    entry("GET", "/admin/v1/logs/offline_enrollment", MINTIME_SECS, List(&Any), ReadLog, "Offline Enrollment Logs"),
    noted(
        entry("GET", "/admin/v2/logs/activity", V2_LOG_WINDOW, Obj(ITEMS_LOG), ReadLog, "Activity Logs"),
        "in public preview when described",
    ),
    // Other families, by path and permission only.
    bare("GET", "/admin/v1/admins", Administrators, "Retrieve Administrators"),
    bare("POST", "/admin/v1/admins", Administrators, "Create Administrator"),
    bare("GET", "/admin/v1/admins/{admin_id}", Administrators, "Retrieve Administrator by ID"),
    bare("POST", "/admin/v1/admins/{admin_id}", Administrators, "Modify Administrator"),
    bare("DELETE", "/admin/v1/admins/{admin_id}", Administrators, "Delete Administrator"),
    bare("GET", "/admin/v2/integrations", Applications, "Retrieve Integrations"),
    bare("POST", "/admin/v2/integrations", Applications, "Create Integration"),
    bare("GET", "/admin/v2/integrations/{integration_key}", Applications, "Retrieve Integration by Integration Key"),
    bare("POST", "/admin/v2/integrations/{integration_key}", Applications, "Modify Integration"),
    bare("DELETE", "/admin/v2/integrations/{integration_key}", Applications, "Delete Integration"),
    bare("GET", "/admin/v1/settings", Settings, "Retrieve Settings"),
    bare("POST", "/admin/v1/settings", Settings, "Modify Settings"),
    bare("GET", "/admin/v1/info/summary", ReadInformation, "Retrieve Summary"),
    bare("GET", "/admin/v1/info/telephony_credits_used", ReadInformation, "Telephony Credits Used Report"),
    bare("GET", "/admin/v1/info/authentication_attempts", ReadInformation, "Authentication Attempts Report"),
    bare("GET", "/admin/v1/info/user_authentication_attempts", ReadInformation, "User Authentication Attempts Report"),
    bare("GET", "/admin/v1/endpoints", ReadResource, "Retrieve Endpoints"),
    bare("GET", "/admin/v1/endpoints/{epkey}", ReadResource, "Retrieve Endpoint by ID"),
    bare("GET", "/admin/v1/webauthncredentials", ReadResource, "Retrieve WebAuthn Credentials"),
    bare("GET", "/admin/v1/webauthncredentials/{webauthnkey}", ReadResource, "Retrieve WebAuthn Credential by ID"),
    bare("DELETE", "/admin/v1/webauthncredentials/{webauthnkey}", WriteResource, "Delete WebAuthn Credential"),
    bare("GET", "/admin/v1/trust_monitor/events", ReadLog, "Trust Monitor"),
];
