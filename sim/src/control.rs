//! The control API under `/sim/`: unsigned, loopback only, for tests and demos to read the audit
//! log and stats, set faults, look at the state and reset it.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Extension, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use serde_json::{Value, json};

use crate::app::{App, lock};
use crate::duo::json_response;
use crate::fault::Faults;
use crate::routes;

/// The peer of a connection, put on every request by the server.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Peer(pub SocketAddr);

/// The `/sim/` routes.
pub(crate) fn router() -> Router<Arc<App>> {
    Router::new()
        .route("/sim/audit", get(audit_get).delete(audit_clear))
        .route("/sim/stats", get(stats_get))
        .route("/sim/faults", get(faults_get).put(faults_put))
        .route("/sim/state", get(state_get))
        .route("/sim/reset", post(reset))
}

/// The listener is loopback-only already; this keeps the control API so even if that changes.
fn refuse_remote(peer: Peer) -> Option<Response> {
    (!peer.0.ip().is_loopback())
        .then(|| json_response(StatusCode::FORBIDDEN, &json!({ "error": "the control API is loopback only" })))
}

fn ok(body: Value) -> Response {
    json_response(StatusCode::OK, &body)
}

async fn audit_get(State(app): State<Arc<App>>, Extension(peer): Extension<Peer>) -> Response {
    if let Some(refused) = refuse_remote(peer) {
        return refused;
    }
    ok(serde_json::to_value(lock(&app.state).audit.entries()).unwrap_or_default())
}

async fn audit_clear(State(app): State<Arc<App>>, Extension(peer): Extension<Peer>) -> Response {
    if let Some(refused) = refuse_remote(peer) {
        return refused;
    }
    let mut state = lock(&app.state);
    let cleared = state.audit.entries().len();
    state.audit.clear();
    ok(json!({ "cleared": cleared }))
}

async fn stats_get(State(app): State<Arc<App>>, Extension(peer): Extension<Peer>) -> Response {
    if let Some(refused) = refuse_remote(peer) {
        return refused;
    }
    ok(serde_json::to_value(&*lock(&app.stats)).unwrap_or_default())
}

async fn faults_get(State(app): State<Arc<App>>, Extension(peer): Extension<Peer>) -> Response {
    if let Some(refused) = refuse_remote(peer) {
        return refused;
    }
    ok(serde_json::to_value(&*lock(&app.faults)).unwrap_or_default())
}

async fn faults_put(State(app): State<Arc<App>>, Extension(peer): Extension<Peer>, body: Bytes) -> Response {
    if let Some(refused) = refuse_remote(peer) {
        return refused;
    }
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
async fn state_get(State(app): State<Arc<App>>, Extension(peer): Extension<Peer>) -> Response {
    if let Some(refused) = refuse_remote(peer) {
        return refused;
    }
    ok(redacted_state(&app))
}

pub(crate) fn redacted_state(app: &App) -> Value {
    let mut value = serde_json::to_value(&*lock(&app.state)).unwrap_or_default();
    if let Some(integrations) = value.get_mut("integrations").and_then(Value::as_array_mut) {
        for integration in integrations {
            integration["skey"] = json!("<redacted>");
        }
    }
    value
}

/// Back to the state at start, with the starting faults and no stats.
async fn reset(State(app): State<Arc<App>>, Extension(peer): Extension<Peer>) -> Response {
    if let Some(refused) = refuse_remote(peer) {
        return refused;
    }
    crate::server::reset(&app);
    ok(json!({ "reset": true }))
}
