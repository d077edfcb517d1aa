//! `flowcat integrations check`: tries an integration's keys with one cheap signed read and says
//! whether they work, what kind of keys they are, and which Duo Admin Panel step to revisit.

use serde_json::Value;

use super::{Integration, Kind};
use crate::duo::RetryPolicy;
use crate::http::{Call, CallError, Clients, Reply, send};

/// Where enrolment of unknown users is switched on; the fix for a preauth that answers `deny`
/// (or refuses to enrol) for a user Duo does not know yet.
pub const NEW_USER_POLICY_FIX: &str = "in the Duo Admin Panel, Policies → Global Policy → New User Policy: choose \
     \"Require enrollment\" so that unknown users are offered enrolment";

/// What [`check`] found.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct CheckReport {
    pub ok: bool,
    /// Nothing was tried (an `http` integration has no standard call to try).
    pub skipped: bool,
    /// The integration's kind, `duo_admin`, `duo_auth` or `http`.
    pub kind: String,
    pub message: String,
    /// The Duo Admin Panel step to revisit, when it failed.
    pub fix: Option<String>,
}

/// Tries the integration's keys: `GET /auth/v2/check` for Auth, `GET /admin/v1/users?limit=1`
/// for Admin (the cheapest read every Admin API application with read permission may make).
pub async fn check(clients: &Clients, integration: &Integration) -> CheckReport {
    let report = |ok, message: String, fix: Option<String>| CheckReport {
        ok,
        skipped: false,
        kind: integration.kind.as_str().to_owned(),
        message,
        fix,
    };
    if integration.kind == Kind::Http {
        let message = format!("`{}` is an `http` integration: there is no standard call to try", integration.name);
        return CheckReport { skipped: true, ..report(true, message, None) };
    }
    let reply = match probe(clients, integration, integration.kind).await {
        Ok(reply) => reply,
        Err(e) => {
            let (message, fix) = transport_failure(integration, &e);
            return report(false, message, fix);
        }
    };
    let name = &integration.name;
    if reply.status == 200 && reply.body.get("stat").and_then(Value::as_str) == Some("OK") {
        let message =
            format!("the keys of `{name}` work: a {} application at `{}`", api(integration.kind), integration.host());
        return report(true, message, None);
    }
    let code = duo_code(&reply.body);
    let said = describe(&reply);
    let fix = match code {
        Some(40301) => return wrong_kind(clients, integration, said).await,
        Some(code) => fix_for_code(integration.kind, code),
        None => None,
    };
    report(false, format!("`{name}` was refused: {said}"), fix)
}

/// A 40301: Admin keys on the Auth API, Auth keys on the Admin API, or an Admin API
/// application without read permission. Trying the other API tells which.
async fn wrong_kind(clients: &Clients, integration: &Integration, said: String) -> CheckReport {
    let other = if integration.kind == Kind::DuoAuth { Kind::DuoAdmin } else { Kind::DuoAuth };
    let works_there = probe(clients, integration, other).await.is_ok_and(|r| r.status == 200);
    let name = &integration.name;
    let (message, fix) = if works_there {
        let message = format!("`{name}` holds {} keys, not {} keys ({said})", api(other), api(integration.kind));
        let fix = format!(
            "in the Duo Admin Panel, Applications → Protect an Application → {}, then copy its Integration key, \
             Secret key and API hostname into `{name}` (or change its `kind` to `{}`)",
            api(integration.kind),
            other.as_str()
        );
        (message, fix)
    } else {
        (format!("`{name}` was refused: {said}"), fix_for_code(integration.kind, 40301).unwrap_or_default())
    };
    CheckReport { ok: false, skipped: false, kind: integration.kind.as_str().to_owned(), message, fix: Some(fix) }
}

/// One cheap read for `as_kind`, never retried: a check should answer at once.
async fn probe(clients: &Clients, integration: &Integration, as_kind: Kind) -> Result<Reply, CallError> {
    let mut call = match as_kind {
        Kind::DuoAuth => Call::new("GET", "/auth/v2/check"),
        _ => {
            let mut call = Call::new("GET", "/admin/v1/users");
            call.query = vec![("limit".to_owned(), "1".to_owned())];
            call
        }
    };
    call.retry = Some(RetryPolicy { max_attempts: 1, ..RetryPolicy::default() });
    send(clients, integration, &call).await
}

fn transport_failure(integration: &Integration, e: &CallError) -> (String, Option<String>) {
    let host_fix = format!(
        "in the Duo Admin Panel, Applications → your {} application: copy the API hostname again \
         (like `api-xxxxxxxx.duosecurity.com`) into `host`",
        api(integration.kind)
    );
    let fix = match e {
        CallError::Connect { .. } | CallError::Timeout { .. } | CallError::Lost { .. } => Some(host_fix),
        CallError::TooManyRequests { .. } => Some("Duo is rate limiting these keys: try again in a minute".to_owned()),
        _ => None,
    };
    (format!("`{}` could not be checked: {e}", integration.name), fix)
}

/// The Duo Admin Panel step that fixes a Duo error code, if there is one.
pub fn fix_for_code(kind: Kind, code: u64) -> Option<String> {
    let app = api(kind);
    let fix = match code {
        40101 | 40102 => format!(
            "in the Duo Admin Panel, Applications → your {app} application: copy the Integration key and the API \
             hostname again (keys work only on their own API hostname)"
        ),
        40103 => format!(
            "in the Duo Admin Panel, Applications → your {app} application: copy the Secret key again; also check \
             that this machine's clock is right"
        ),
        40301 if kind == Kind::DuoAdmin => "in the Duo Admin Panel, Applications → your Duo Admin API application → \
             Permissions: check \"Grant read resource\" (and \"Grant write resource\" for flows that create users or \
             phones); \
             Auth API keys cannot call the Admin API"
            .to_owned(),
        40301 => "in the Duo Admin Panel, Applications → Protect an Application → Duo Auth API: Admin API keys \
             cannot call the Auth API"
            .to_owned(),
        _ => return None,
    };
    Some(fix)
}

fn api(kind: Kind) -> &'static str {
    match kind {
        Kind::DuoAdmin => "Duo Admin API",
        Kind::DuoAuth => "Duo Auth API",
        Kind::Http => "HTTP",
    }
}

/// Duo's numeric error code: a number, or a string of digits (Duo has sent `""` too).
pub fn duo_code(body: &Value) -> Option<u64> {
    match body.get("code")? {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn describe(reply: &Reply) -> String {
    let field = |key: &str| reply.body.get(key).and_then(Value::as_str).unwrap_or_default().to_owned();
    let code = duo_code(&reply.body).map(|c| format!(" {c}")).unwrap_or_default();
    let (message, detail) = (field("message"), field("message_detail"));
    let detail = if detail.is_empty() { String::new() } else { format!(" ({detail})") };
    format!("HTTP {}{code} {message}{detail}", reply.status).trim_end().to_owned()
}
