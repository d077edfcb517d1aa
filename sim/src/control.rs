//! The control API under `/sim/`: unsigned, for tests and demos to read the audit log and stats,
//! set faults, look at and reset the state, move the clock, and act as the simulated users
//! (answer a push, follow an activation or enrolment link). Every call passes `guard::check`.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Extension, Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, post};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::app::{App, lock};
use crate::duo::json_response;
use crate::error::ControlError;
use crate::fault::Faults;
use crate::links::PhoneRef;
use crate::push::Outcome;
use crate::{guard, routes};

/// The peer of a connection, put on every request by the server.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Peer(pub SocketAddr);

/// The `/sim/` routes.
pub(crate) fn router() -> Router<Arc<App>> {
    Router::new()
        .route("/sim/audit", get(audit_get).delete(audit_clear))
        .route("/sim/stats", get(stats_get))
        .route("/sim/rate-limit", get(rate_limit_get))
        .route("/sim/faults", get(faults_get).put(faults_put))
        .route("/sim/state", get(state_get))
        .route("/sim/reset", post(reset))
        .route("/sim/clock", get(clock_get))
        .route("/sim/clock/advance", post(clock_advance))
        .route("/sim/push/answer", post(push_answer))
        .route("/sim/activate", post(activate))
        .route("/sim/enroll", post(enroll))
        .route("/sim/enroll/scan", post(enroll_scan))
        .route_layer(middleware::from_fn(guarded))
}

/// Refuses what `guard::check` refuses, before any handler runs.
async fn guarded(Extension(peer): Extension<Peer>, req: Request, next: Next) -> Response {
    match guard::check(peer.0.ip(), req.method(), req.headers()) {
        None => next.run(req).await,
        Some(refusal) => {
            let status = StatusCode::from_u16(refusal.status).unwrap_or(StatusCode::FORBIDDEN);
            json_response(status, &json!({ "error": refusal.reason }))
        }
    }
}

fn ok(body: Value) -> Response {
    json_response(StatusCode::OK, &body)
}

fn refused(err: &ControlError) -> Response {
    let status = StatusCode::from_u16(err.status()).unwrap_or(StatusCode::BAD_REQUEST);
    json_response(status, &json!({ "error": err.to_string() }))
}

/// A JSON body of the shape `T`, or a 400 saying what is wrong with it.
fn body<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ControlError> {
    serde_json::from_slice(bytes).map_err(|e| ControlError::Invalid(format!("invalid body: {e}")))
}

async fn audit_get(State(app): State<Arc<App>>) -> Response {
    ok(serde_json::to_value(app.settled().0.audit.entries()).unwrap_or_default())
}

async fn audit_clear(State(app): State<Arc<App>>) -> Response {
    let (mut state, _) = app.settled();
    let cleared = state.audit.entries().len();
    state.audit.clear();
    ok(json!({ "cleared": cleared }))
}

async fn stats_get(State(app): State<Arc<App>>) -> Response {
    ok(serde_json::to_value(&*lock(&app.stats)).unwrap_or_default())
}

/// The rate limit (`null` without `--rate-limit`) and how many requests it refused with 429
/// since start or the last reset.
async fn rate_limit_get(State(app): State<Arc<App>>) -> Response {
    let refused = app.rate_limited.load(std::sync::atomic::Ordering::Relaxed);
    ok(json!({ "limit": app.options.rate_limit, "refused": refused }))
}

async fn faults_get(State(app): State<Arc<App>>) -> Response {
    ok(serde_json::to_value(&*lock(&app.faults)).unwrap_or_default())
}

async fn faults_put(State(app): State<Arc<App>>, body: Bytes) -> Response {
    let parsed: Result<Faults, String> = serde_json::from_slice(&body).map_err(|e| e.to_string());
    match parsed.and_then(|f| f.validate(&routes::patterns()).map(|()| f)) {
        Ok(faults) => {
            let body = serde_json::to_value(&faults).unwrap_or_default();
            *lock(&app.faults) = faults;
            ok(body)
        }
        Err(message) => json_response(StatusCode::BAD_REQUEST, &json!({ "error": message })),
    }
}

/// The state without secret keys: it is for looking at, the state file is for reloading.
async fn state_get(State(app): State<Arc<App>>) -> Response {
    ok(redacted_state(&app))
}

pub(crate) fn redacted_state(app: &App) -> Value {
    let mut value = serde_json::to_value(app.snapshot()).unwrap_or_default();
    if let Some(integrations) = value.get_mut("integrations").and_then(Value::as_array_mut) {
        for integration in integrations {
            integration["skey"] = json!("<redacted>");
        }
    }
    // Bypass codes and tokens' OATH secrets are credentials too.
    let helpdesk = &mut value["helpdesk"];
    if let Some(users) = helpdesk.get_mut("bypass_codes").and_then(Value::as_object_mut) {
        for code in users.values_mut().filter_map(Value::as_array_mut).flatten() {
            code["code"] = json!("<redacted>");
        }
    }
    if let Some(tokens) = helpdesk.get_mut("tokens").and_then(Value::as_array_mut) {
        for token in tokens.iter_mut().filter(|t| !t["secret"].is_null()) {
            token["secret"] = json!("<redacted>");
        }
    }
    value
}

/// Back to the state at start, with the starting faults and no stats. The clock keeps running.
async fn reset(State(app): State<Arc<App>>) -> Response {
    crate::server::reset(&app);
    ok(json!({ "reset": true }))
}

async fn clock_get(State(app): State<Arc<App>>) -> Response {
    ok(json!({ "now_ms": app.clock.now_ms(), "time_scale": app.clock.scale() }))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Advance {
    ms: u64,
}

async fn clock_advance(State(app): State<Arc<App>>, bytes: Bytes) -> Response {
    match body::<Advance>(&bytes) {
        Ok(advance) => ok(json!({ "now_ms": app.clock.advance(std::time::Duration::from_millis(advance.ms)) })),
        Err(err) => refused(&err),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Answer {
    txid: String,
    answer: String,
}

async fn push_answer(State(app): State<Arc<App>>, bytes: Bytes) -> Response {
    let answer = match body::<Answer>(&bytes) {
        Ok(answer) => answer,
        Err(err) => return refused(&err),
    };
    let Some(outcome) = Outcome::parse_answer(&answer.answer) else {
        return refused(&ControlError::Invalid("`answer` is `approve`, `deny` or `fraud`".into()));
    };
    match app.answer_push(&answer.txid, outcome) {
        Ok(()) => ok(json!({ "txid": answer.txid, "answer": answer.answer })),
        Err(err) => refused(&err),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Activate {
    #[serde(default)]
    number: Option<String>,
    #[serde(default)]
    phone_id: Option<String>,
}

async fn activate(State(app): State<Arc<App>>, bytes: Bytes) -> Response {
    let phone = match body::<Activate>(&bytes) {
        Ok(Activate { number: Some(number), phone_id: None }) => PhoneRef::Number(number),
        Ok(Activate { number: None, phone_id: Some(id) }) => PhoneRef::Id(id),
        Ok(_) => return refused(&ControlError::Invalid("give one of `number` or `phone_id`".into())),
        Err(err) => return refused(&err),
    };
    app.follow_activation(&phone).map_or_else(|e| refused(&e), ok)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Enroll {
    username: String,
    /// The phone the user enrols on Duo's enrolment page, if any.
    #[serde(default)]
    number: Option<String>,
}

async fn enroll(State(app): State<Arc<App>>, bytes: Bytes) -> Response {
    match body::<Enroll>(&bytes) {
        Ok(enroll) => {
            app.follow_enrollment(&enroll.username, enroll.number.as_deref()).map_or_else(|e| refused(&e), ok)
        }
        Err(err) => refused(&err),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Scan {
    activation_code: String,
}

/// The simulated user scans an `/auth/v2/enroll` activation code with Duo Mobile.
async fn enroll_scan(State(app): State<Arc<App>>, bytes: Bytes) -> Response {
    match body::<Scan>(&bytes) {
        Ok(scan) => app.scan_enrollment(&scan.activation_code).map_or_else(|e| refused(&e), ok),
        Err(err) => refused(&err),
    }
}
