//! The objects Duo's answers are made of (Admin API documentation, "Response Format" of each
//! call, and the objects' sections). Fields nested deeper than flows read are left `Any`.

use super::Shape::{Any, Bool, Int, List, Obj, Str};
use super::{Field, always, sometimes};

/// A phone as it appears in a user's `phones` (Admin API, "Retrieve Phones by User ID").
pub const PHONE_FIELDS: &[Field] = &[
    always("phone_id", Str),
    always("number", Str),
    always("name", Str),
    always("extension", Str),
    always("type", Str),
    always("platform", Str),
    always("activated", Bool),
    always("capabilities", List(&Str)),
    always("sms_passcodes_sent", Bool),
    always("postdelay", Any),
    always("predelay", Any),
    // Duo Mobile's view of the device: documented as blank or "Unknown" until the phone is
    // activated; described as present only sometimes because some accounts' answers leave
    // them out (edition-dependent in the documentation).
    sometimes("encrypted", Str),
    sometimes("fingerprint", Str),
    sometimes("screenlock", Str),
    sometimes("tampered", Str),
    sometimes("model", Str),
    sometimes("last_seen", Any),
];

/// A phone with its users (Admin API, "Retrieve Phones", "Retrieve Phone by ID").
pub const PHONE_WITH_USERS: &[Field] = &[
    always("phone_id", Str),
    always("number", Str),
    always("name", Str),
    always("extension", Str),
    always("type", Str),
    always("platform", Str),
    always("activated", Bool),
    always("capabilities", List(&Str)),
    always("sms_passcodes_sent", Bool),
    always("postdelay", Any),
    always("predelay", Any),
    sometimes("encrypted", Str),
    sometimes("fingerprint", Str),
    sometimes("screenlock", Str),
    sometimes("tampered", Str),
    sometimes("model", Str),
    sometimes("last_seen", Any),
    always("users", List(&Obj(USER_BARE))),
];

/// A user without the objects attached to it, as listed in a phone's, token's or group's
/// `users`.
pub const USER_BARE: &[Field] = &[
    always("user_id", Str),
    always("username", Str),
    always("realname", Str),
    always("email", Str),
    always("firstname", Str),
    always("lastname", Str),
    always("notes", Str),
    always("status", Str),
    always("is_enrolled", Bool),
    always("created", Int),
    always("last_login", Any),
    always("alias1", Any),
    always("alias2", Any),
    always("alias3", Any),
    always("alias4", Any),
    always("aliases", Any),
    sometimes("last_directory_sync", Any),
    sometimes("lockout_reason", Any),
    sometimes("external_id", Any),
    sometimes("directory_key", Any),
    sometimes("enable_auto_prompt", Any),
    sometimes("custom_attributes", Any),
    sometimes("groups", Any),
    sometimes("phones", Any),
    sometimes("tokens", Any),
    sometimes("webauthncredentials", Any),
    sometimes("u2ftokens", Any),
    sometimes("desktoptokens", Any),
];

/// A user with its phones, tokens and groups (Admin API, "Retrieve Users", "Retrieve User by
/// ID", "Create User", "Modify User").
pub const USER: &[Field] = &[
    always("user_id", Str),
    always("username", Str),
    always("realname", Str),
    always("email", Str),
    always("firstname", Str),
    always("lastname", Str),
    always("notes", Str),
    always("status", Str),
    always("is_enrolled", Bool),
    always("created", Int),
    always("last_login", Any),
    always("alias1", Any),
    always("alias2", Any),
    always("alias3", Any),
    always("alias4", Any),
    always("aliases", Any),
    always("phones", List(&Obj(PHONE_FIELDS))),
    always("groups", List(&Obj(GROUP))),
    always("tokens", List(&Obj(TOKEN_BARE))),
    always("webauthncredentials", List(&Any)),
    // Documented, but not in every answer (deprecated, or edition-dependent).
    sometimes("u2ftokens", List(&Any)),
    sometimes("desktoptokens", List(&Any)),
    sometimes("last_directory_sync", Any),
    sometimes("lockout_reason", Any),
    sometimes("external_id", Any),
    sometimes("directory_key", Any),
    sometimes("enable_auto_prompt", Any),
    sometimes("custom_attributes", Any),
];

/// A group (Admin API, "Retrieve Groups"; a user's `groups`).
pub const GROUP: &[Field] = &[
    always("group_id", Str),
    always("name", Str),
    always("desc", Str),
    sometimes("status", Str),
    // Deprecated factor restrictions, still returned by v1 handlers.
    sometimes("push_enabled", Bool),
    sometimes("sms_enabled", Bool),
    sometimes("voice_enabled", Bool),
    sometimes("mobile_otp_enabled", Bool),
    sometimes("u2f_enabled", Bool),
];

/// A hardware token without its users (a user's `tokens`).
pub const TOKEN_BARE: &[Field] =
    &[always("token_id", Str), always("type", Str), always("serial", Str), sometimes("totp_step", Any)];

/// A hardware token with its users (Admin API, "Retrieve Hardware Tokens").
pub const TOKEN: &[Field] = &[
    always("token_id", Str),
    always("type", Str),
    always("serial", Str),
    sometimes("totp_step", Any),
    always("users", List(&Obj(USER_BARE))),
    sometimes("admins", List(&Any)),
];

/// A bypass code's metadata (never the code: Admin API, "Retrieve Bypass Codes by User ID").
pub const BYPASS_CODE: &[Field] = &[
    always("bypass_code_id", Str),
    always("admin_email", Str),
    always("created", Int),
    always("expiration", Any),
    always("reuse_count", Any),
    sometimes("user", Obj(USER_BARE)),
];

/// The answer of "Create Activation Code" and "Send Activation Code via SMS".
pub const ACTIVATION: &[Field] = &[
    always("activation_barcode", Str),
    sometimes("activation_url", Str),
    sometimes("activation_msg", Str),
    sometimes("installation_url", Str),
    sometimes("installation_msg", Str),
    always("valid_secs", Int),
];

/// One event of the v2 authentication log (Admin API, "Authentication Logs").
pub const AUTH_LOG_EVENT: &[Field] = &[
    always("access_device", Any),
    sometimes("adaptive_trust_assessments", Any),
    always("alias", Any),
    always("application", Obj(&[always("key", Str), always("name", Str)])),
    always("auth_device", Any),
    always("email", Any),
    always("event_type", Any),
    always("factor", Str),
    always("isotimestamp", Str),
    sometimes("ood_software", Any),
    always("reason", Any),
    always("result", Str),
    always("timestamp", Int),
    sometimes("trusted_endpoint_status", Any),
    always("txid", Str),
    always("user", Obj(&[always("key", Str), always("name", Str), sometimes("groups", Any)])),
];

/// The v2 authentication log's `response`: its events, and its own `metadata`.
pub const AUTH_LOG: &[Field] = &[
    always("authlogs", List(&Obj(AUTH_LOG_EVENT))),
    always("metadata", Obj(&[sometimes("next_offset", Any), always("total_objects", Any)])),
];

/// The v2 telephony and activity logs' `response`.
pub const ITEMS_LOG: &[Field] = &[
    always("items", List(&Any)),
    always("metadata", Obj(&[sometimes("next_offset", Any), always("total_objects", Any)])),
];

/// One administrator log event (Admin API, "Administrator Logs").
pub const ADMIN_LOG_EVENT: &[Field] = &[
    always("action", Str),
    always("description", Any),
    always("isotimestamp", Str),
    always("object", Any),
    always("timestamp", Int),
    always("username", Str),
];

/// `{"time": …}` (`/auth/v2/ping`, `/auth/v2/check`).
pub const TIME: &[Field] = &[always("time", Int)];

/// A device of a preauth answer.
pub const DEVICE: &[Field] = &[
    always("device", Str),
    always("type", Str),
    always("capabilities", List(&Str)),
    sometimes("display_name", Str),
    sometimes("name", Str),
    sometimes("number", Str),
    sometimes("sms_nextcode", Str),
];

/// The answer of `/auth/v2/preauth`.
pub const PREAUTH: &[Field] = &[
    always("result", Str),
    always("status_msg", Str),
    sometimes("devices", List(&Obj(DEVICE))),
    sometimes("enroll_portal_url", Str),
];

/// The answer of `/auth/v2/auth`: `txid` with `async=1`, the outcome otherwise.
pub const AUTH: &[Field] = &[
    sometimes("txid", Str),
    sometimes("result", Str),
    sometimes("status", Str),
    sometimes("status_msg", Str),
    sometimes("trusted_device_token", Str),
];

/// The answer of `/auth/v2/auth_status`.
pub const AUTH_STATUS: &[Field] =
    &[always("result", Str), always("status", Str), always("status_msg", Str), sometimes("trusted_device_token", Str)];

/// The answer of `/auth/v2/enroll`.
pub const ENROLL: &[Field] = &[
    always("activation_barcode", Str),
    always("activation_code", Str),
    always("expiration", Int),
    always("user_id", Str),
    always("username", Str),
];
