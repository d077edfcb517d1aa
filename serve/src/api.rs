//! The handlers. Every answer is JSON (but `/metrics`); every refusal is `{"error": CODE, …}`;
//! 401 and 403 say nothing more. Ids from the path are checked before anything looks them up.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use flowcat_engine::journal::{Delivery, Filter, StoredRun, StoredStatus};
use flowcat_engine::run::RunError;
use flowcat_nodes::hall::Refused;
use serde_json::{Value, json};

use crate::App;
use crate::auth::Token;
use crate::runs::{Cancelled, Outcome, Slot, StartError};

/// A refusal: its status, a stable code, a message, and the problems one a line.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: Option<String>,
    problems: Vec<String>,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError { status, code, message: Some(message.into()), problems: Vec::new() }
    }

    /// A bare refusal: nothing but the code.
    fn bare(status: StatusCode, code: &'static str) -> ApiError {
        ApiError { status, code, message: None, problems: Vec::new() }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = json!({ "error": self.code });
        if let Some(m) = self.message {
            body["message"] = Value::String(m);
        }
        if !self.problems.is_empty() {
            body["problems"] = json!(self.problems);
        }
        let mut response = (self.status, axum::Json(body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if self.status == StatusCode::TOO_MANY_REQUESTS || self.status == StatusCode::SERVICE_UNAVAILABLE {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
        }
        response
    }
}

type Answer = Result<Response, ApiError>;

/// The request's token, or 401.
fn authorize<'a>(app: &'a App, headers: &HeaderMap) -> Result<&'a Token, ApiError> {
    let header = headers.get(header::AUTHORIZATION).map(HeaderValue::as_bytes);
    crate::auth::find(&app.config.tokens, header).ok_or_else(|| {
        app.runs.metrics.refused("unauthorized");
        ApiError::bare(StatusCode::UNAUTHORIZED, "unauthorized")
    })
}

fn forbidden(app: &App) -> ApiError {
    app.runs.metrics.refused("forbidden");
    ApiError::bare(StatusCode::FORBIDDEN, "forbidden")
}

/// The longest id accepted in a path: longer ones are refused before any lookup.
const MAX_ID: usize = 128;

/// A flow id: letters, digits, `-`, `_`, and single dots between them (no `..`, no `/`).
fn flow_id(path: Result<Path<String>, PathRejection>) -> Result<String, ApiError> {
    let bad = || ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such flow");
    let Ok(Path(id)) = path else { return Err(bad()) };
    let chars_ok = id.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
    let dots_ok = !id.starts_with('.') && !id.ends_with('.') && !id.contains("..");
    if id.is_empty() || id.len() > MAX_ID || !chars_ok || !dots_ok {
        return Err(bad());
    }
    Ok(id)
}

/// A run id: lower-case letters and digits, as the journal makes them.
fn run_id(path: Result<Path<String>, PathRejection>) -> Result<String, ApiError> {
    let bad = || ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such run");
    let Ok(Path(id)) = path else { return Err(bad()) };
    if id.is_empty() || id.len() > 32 || !id.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()) {
        return Err(bad());
    }
    Ok(id)
}

fn json_answer(status: StatusCode, body: Value) -> Response {
    (status, axum::Json(body)).into_response()
}

/// A flow's signature as `flowcat list --format json` prints it, with its outcomes.
fn signature(flow: &flowcat_engine::Flow) -> Value {
    let mut v = flow.signature.to_json();
    // Where the service runs it from is not the caller's business.
    if let Some(o) = v.as_object_mut() {
        o.remove("file");
    }
    v["outcomes"] = json!(["succeeded", "failed", "interrupted", "needs_attention"]);
    v
}

pub async fn list_flows(State(app): State<Arc<App>>, headers: HeaderMap) -> Answer {
    let token = authorize(&app, &headers)?;
    let mut flows: Vec<&flowcat_engine::Flow> =
        app.runs.hall.catalog().flows().filter(|f| token.may_run(f.id())).collect();
    flows.sort_by(|a, b| a.id().cmp(b.id()));
    Ok(json_answer(StatusCode::OK, json!({ "flows": flows.iter().map(|f| signature(f)).collect::<Vec<_>>() })))
}

pub async fn get_flow(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    path: Result<Path<String>, PathRejection>,
) -> Answer {
    let token = authorize(&app, &headers)?;
    let id = flow_id(path)?;
    if !token.may_run(&id) {
        return Err(forbidden(&app));
    }
    match app.runs.hall.catalog().get(&id) {
        Some(flow) => Ok(json_answer(StatusCode::OK, signature(flow))),
        None => Err(ApiError::new(StatusCode::NOT_FOUND, "not_found", format!("no flow `{id}` in the catalog"))),
    }
}

/// `?wait=30s`, bounded by the config's `max_wait`.
fn wait_of(app: &App, query: &HashMap<String, String>) -> Result<Option<Duration>, ApiError> {
    let Some(text) = query.get("wait") else { return Ok(None) };
    let max = app.config.limits.max_wait;
    match flowcat_engine::shape::parse_duration(text) {
        Some(d) if d <= max => Ok(Some(d)),
        Some(_) => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_wait",
            format!("`wait` is at most {} s on this service (`limits.max_wait`)", max.as_secs()),
        )),
        None => Err(ApiError::new(StatusCode::BAD_REQUEST, "bad_wait", "`wait` is a duration, e.g. `wait=30s`")),
    }
}

fn query_of(
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Result<HashMap<String, String>, ApiError> {
    query
        .map(|Query(q)| q)
        .map_err(|_| ApiError::new(StatusCode::BAD_REQUEST, "bad_query", "the query string cannot be read"))
}

/// The run's URL.
fn location(id: &str) -> String {
    format!("/v1/runs/{id}")
}

/// The `Idempotency-Key` header: 1 to 200 visible ASCII characters.
fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(v) = headers.get("idempotency-key") else { return Ok(None) };
    let bad = || {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_idempotency_key",
            "`Idempotency-Key` is 1 to 200 visible ASCII characters",
        )
    };
    let s = v.to_str().map_err(|_| bad())?;
    if s.is_empty() || s.len() > 200 || !s.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(bad());
    }
    Ok(Some(s.to_owned()))
}

/// The body as a JSON object of inputs: `application/json`, at most `max_body_bytes`.
async fn inputs_of(app: &App, headers: &HeaderMap, body: Body) -> Result<serde_json::Map<String, Value>, ApiError> {
    object_of(app, headers, body, "inputs", "bad_input").await
}

/// The body as a JSON object (`what`: "inputs", "payload"): `application/json`, at most
/// `max_body_bytes`; empty means `{}`. A body that is JSON but not an object is `not_object`.
async fn object_of(
    app: &App,
    headers: &HeaderMap,
    body: Body,
    what: &str,
    not_object: &'static str,
) -> Result<serde_json::Map<String, Value>, ApiError> {
    let limit = app.config.limits.max_body_bytes;
    let too_large =
        || ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "too_large", format!("the body is larger than {limit} bytes"));
    let declared = headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(too_large());
    }
    let bytes = axum::body::to_bytes(body, limit).await.map_err(|_| too_large())?;
    if bytes.is_empty() {
        return Ok(serde_json::Map::new());
    }
    let json_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|t| t.trim().eq_ignore_ascii_case("application/json"));
    if !json_type {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            format!("the {what} are a JSON object: send `Content-Type: application/json`"),
        ));
    }
    match serde_json::from_slice::<Value>(&bytes) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => {
            Err(ApiError::new(StatusCode::BAD_REQUEST, not_object, format!("the body must be a JSON object ({what})")))
        }
        Err(e) => Err(ApiError::new(StatusCode::BAD_REQUEST, "bad_json", format!("the body is not JSON: {e}"))),
    }
}

/// A refusal of the front hall or the runner, as the CLI words it.
fn refused(app: &App, r: Refused) -> ApiError {
    match r {
        Refused::Run(RunError::Inputs { problems, .. }) => ApiError {
            status: StatusCode::BAD_REQUEST,
            code: "bad_input",
            message: Some("the inputs do not fit the flow's signature".into()),
            problems,
        },
        Refused::Unknown(u) => ApiError::new(StatusCode::NOT_FOUND, "not_found", u.to_string()),
        Refused::Run(RunError::UnknownFlow { flow, .. }) => {
            ApiError::new(StatusCode::NOT_FOUND, "not_found", format!("no flow `{flow}` in the catalog"))
        }
        Refused::Journal(e) => {
            tracing::error!(error = %e, "the journal refused a run");
            app.runs.metrics.refused("journal");
            ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "journal", "the run journal failed; see the service's log")
        }
        other => ApiError {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            code: "refused",
            message: Some("the run was refused before it started".into()),
            problems: other.to_string().lines().map(str::to_owned).collect(),
        },
    }
}

pub async fn start_run(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    path: Result<Path<String>, PathRejection>,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
    body: Body,
) -> Answer {
    let token = authorize(&app, &headers)?;
    let id = flow_id(path)?;
    if !token.may_run(&id) {
        return Err(forbidden(&app));
    }
    let query = query_of(query)?;
    let wait = wait_of(&app, &query)?;
    let key = idempotency_key(&headers)?;
    let inputs = inputs_of(&app, &headers, body).await?;
    if app.runs.stopping() {
        return Err(ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "stopping", "the service is shutting down"));
    }
    let Some(slot) = Slot::take(&app.in_flight[&token.name], app.config.limits.max_runs_per_token) else {
        app.runs.metrics.refused("too_many_runs");
        return Err(ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_runs",
            format!("this token has {} runs in flight, as many as it may", app.config.limits.max_runs_per_token),
        ));
    };
    let started = match app.runs.start(&id, inputs, key, slot).await {
        Ok(s) => s,
        Err(StartError::Refused(r)) => return Err(refused(&app, r)),
        Err(StartError::Stopping) => {
            return Err(ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "stopping", "the service is shutting down"));
        }
    };
    tracing::info!(run_id = %started.id, flow = %id, token = %token.name, "run started");
    let accepted = |status: &str| {
        let mut r = json_answer(
            StatusCode::ACCEPTED,
            json!({ "id": started.id, "flow": id, "status": status, "url": location(&started.id) }),
        );
        if let Ok(v) = HeaderValue::from_str(&location(&started.id)) {
            r.headers_mut().insert(header::LOCATION, v);
        }
        r
    };
    let (Some(wait), Some(live)) = (wait, &started.live) else { return Ok(accepted("running")) };
    match live.outcome(wait).await {
        Some(Outcome::Ran { record, before }) => {
            let mut r = json_answer(StatusCode::OK, json!({ "id": started.id, "replayed": before, "record": *record }));
            if let Ok(v) = HeaderValue::from_str(&location(&started.id)) {
                r.headers_mut().insert(header::LOCATION, v);
            }
            Ok(r)
        }
        Some(Outcome::Failed(message)) => Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "refused",
            message.lines().next().unwrap_or("").to_owned(),
        )),
        Some(Outcome::Evicted) => Ok(accepted("waiting")),
        // Still going: parked on a `wait_for` (the journal says so), or running.
        None => {
            let waiting = app.runs.hall.store().and_then(|s| s.show(&started.id).ok().flatten());
            let waiting = waiting.is_some_and(|r| r.summary.status == StoredStatus::Waiting);
            Ok(accepted(if waiting { "waiting" } else { "running" }))
        }
    }
}

/// A journaled run as the API shows it.
pub(crate) fn run_json(run: &StoredRun, live: bool) -> Value {
    let s = &run.summary;
    let status = match s.status {
        StoredStatus::Waiting => "waiting",
        other if live && !other.is_final() => "running",
        other => other.name(),
    };
    let mut v = json!({
        "id": s.info.id, "flow": s.info.flow, "status": status, "key": s.info.key,
        "created_at": s.info.created_at, "updated_at": s.updated_at, "note": s.note,
        "url": location(&s.info.id),
    });
    if let Some(w) = &s.waiting {
        v["waiting"] = json!({ "signal": w.signal, "until": w.until, "delivered": w.delivered });
    }
    if let Some(record) = &run.record {
        v["record"] = serde_json::to_value(record).unwrap_or(Value::Null);
    }
    v
}

fn journal_error(app: &App, e: flowcat_engine::journal::JournalError) -> ApiError {
    tracing::error!(error = %e, "the journal could not be read");
    app.runs.metrics.refused("journal");
    ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "journal", "the run journal failed; see the service's log")
}

/// The run `id` if the token may see it (its flow is one it may start).
fn visible_run(app: &App, token: &Token, id: &str) -> Result<StoredRun, ApiError> {
    let store = app.runs.hall.store().ok_or_else(|| ApiError::bare(StatusCode::SERVICE_UNAVAILABLE, "journal"))?;
    match store.show(id).map_err(|e| journal_error(app, e))? {
        Some(run) if token.may_run(&run.summary.info.flow) => Ok(run),
        _ => Err(ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such run")),
    }
}

pub async fn get_run(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    path: Result<Path<String>, PathRejection>,
) -> Answer {
    let token = authorize(&app, &headers)?;
    let id = run_id(path)?;
    let run = visible_run(&app, token, &id)?;
    Ok(json_answer(StatusCode::OK, run_json(&run, app.runs.is_live(&id))))
}

pub async fn list_runs(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Answer {
    let token = authorize(&app, &headers)?;
    let query = query_of(query)?;
    let mut filter = Filter { limit: 100, ..Filter::default() };
    if let Some(flow) = query.get("flow") {
        filter.flow = Some(flow.clone());
    }
    if let Some(status) = query.get("status") {
        let Some(s) = StoredStatus::parse(status) else {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "bad_query",
                format!("`status` is one of {}", StoredStatus::NAMES.join(", ")),
            ));
        };
        filter.status = vec![s];
    }
    if let Some(limit) = query.get("limit") {
        match limit.parse::<usize>() {
            Ok(n) if (1..=1000).contains(&n) => filter.limit = n,
            _ => return Err(ApiError::new(StatusCode::BAD_REQUEST, "bad_query", "`limit` is a number from 1 to 1000")),
        }
    }
    let store = app.runs.hall.store().ok_or_else(|| ApiError::bare(StatusCode::SERVICE_UNAVAILABLE, "journal"))?;
    let runs = store.list(&filter).map_err(|e| journal_error(&app, e))?;
    let list: Vec<Value> = runs
        .iter()
        .filter(|r| token.may_run(&r.info.flow))
        .map(|r| {
            let stored = StoredRun { summary: r.clone(), record: None, past: Default::default() };
            run_json(&stored, app.runs.is_live(&r.info.id))
        })
        .collect();
    Ok(json_answer(StatusCode::OK, json!({ "runs": list })))
}

pub async fn cancel_run(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    path: Result<Path<String>, PathRejection>,
) -> Answer {
    let token = authorize(&app, &headers)?;
    let id = run_id(path)?;
    visible_run(&app, token, &id)?;
    tracing::info!(run_id = %id, token = %token.name, "cancel asked");
    match app.runs.cancel(&id).await {
        Ok(Cancelled::Draining) => {
            let mut r =
                json_answer(StatusCode::ACCEPTED, json!({ "id": id, "status": "cancelling", "url": location(&id) }));
            if let Ok(v) = HeaderValue::from_str(&location(&id)) {
                r.headers_mut().insert(header::LOCATION, v);
            }
            Ok(r)
        }
        Ok(Cancelled::Ended(record)) => Ok(json_answer(StatusCode::OK, json!({ "id": id, "record": *record }))),
        Ok(Cancelled::Finished(status)) => Err(ApiError::new(
            StatusCode::CONFLICT,
            "finished",
            format!("run `{id}` has finished ({}): there is nothing to cancel", status.name()),
        )),
        Ok(Cancelled::NotFound) => Err(ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such run")),
        Err(e) if e.code == "busy" => Err(ApiError::new(
            StatusCode::CONFLICT,
            "busy",
            format!("run `{id}` is held by another process; cancel it there"),
        )),
        Err(e) => Err(journal_error(&app, e)),
    }
}

/// A run id and a signal name from the path: the name is 1 to 128 letters, digits, `-`, `_`,
/// `.` (what a token's `signals:` patterns can match).
fn run_and_signal(path: Result<Path<(String, String)>, PathRejection>) -> Result<(String, String), ApiError> {
    let Ok(Path((id, name))) = path else {
        return Err(ApiError::new(StatusCode::NOT_FOUND, "unknown_run", "no such run"));
    };
    let id = run_id(Ok(Path(id))).map_err(|_| ApiError::new(StatusCode::NOT_FOUND, "unknown_run", "no such run"))?;
    let ok = !name.is_empty()
        && name.len() <= MAX_ID
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
    if !ok {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_awaited",
            "a signal name is letters, digits, `-`, `_` and `.`: no run waits for this one",
        ));
    }
    Ok((id, name))
}

/// `POST /v1/runs/{id}/signals/{name}`: the body (a JSON object) is the signal's payload,
/// delivered through the journal as `flowcat signal` does.
pub async fn signal_run(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    path: Result<Path<(String, String)>, PathRejection>,
    body: Body,
) -> Answer {
    let token = authorize(&app, &headers)?;
    let (id, name) = run_and_signal(path)?;
    if !token.may_signal(&name) {
        return Err(forbidden(&app));
    }
    let unknown = || ApiError::new(StatusCode::NOT_FOUND, "unknown_run", "no such run");
    visible_run(&app, token, &id).map_err(|e| if e.status == StatusCode::NOT_FOUND { unknown() } else { e })?;
    let payload = Value::Object(object_of(&app, &headers, body, "payload", "bad_payload").await?);
    let delivery = app.runs.signal(&id, &name, &payload).await.map_err(|e| journal_error(&app, e))?;
    tracing::info!(run_id = %id, signal = %name, token = %token.name, outcome = delivery.code(), "signal");
    let message = delivery.refusal(&id, &name).map(|m| m.lines().next().unwrap_or_default().to_owned());
    let refusal = |status| ApiError {
        status,
        code: delivery.code(),
        message: message.clone(),
        problems: match &delivery {
            Delivery::BadPayload { problems } => problems.clone(),
            _ => Vec::new(),
        },
    };
    match &delivery {
        Delivery::Delivered => {
            let body = json!({
                "id": id, "signal": name, "outcome": "delivered", "payload": payload, "url": location(&id),
            });
            let mut r = json_answer(StatusCode::ACCEPTED, body);
            if let Ok(v) = HeaderValue::from_str(&location(&id)) {
                r.headers_mut().insert(header::LOCATION, v);
            }
            Ok(r)
        }
        Delivery::UnknownRun => Err(unknown()),
        Delivery::BadPayload { .. } => Err(refusal(StatusCode::BAD_REQUEST)),
        Delivery::Finished { .. } | Delivery::NotAwaited { .. } | Delivery::AlreadyDelivered => {
            Err(refusal(StatusCode::CONFLICT))
        }
    }
}

pub async fn healthz() -> Response {
    json_answer(StatusCode::OK, json!({ "status": "ok" }))
}

pub async fn readyz(State(app): State<Arc<App>>) -> Response {
    let journal = app.runs.hall.store().is_some_and(|s| s.list(&Filter { limit: 1, ..Filter::default() }).is_ok());
    let catalog = app.runs.hall.catalog().flows().next().is_some();
    let integrations = app.runs.hall.integrations().is_some();
    let stopping = app.runs.stopping();
    let ready = journal && catalog && integrations && !stopping;
    let body = json!({
        "ready": ready,
        "checks": { "journal": journal, "catalog": catalog, "integrations": integrations, "accepting_runs": !stopping },
    });
    json_answer(if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE }, body)
}

pub async fn metrics(State(app): State<Arc<App>>, headers: HeaderMap) -> Answer {
    authorize(&app, &headers)?;
    let mut r = app.runs.metrics.render().into_response();
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"));
    Ok(r)
}

pub async fn openapi() -> Response {
    json_answer(StatusCode::OK, crate::routes::openapi())
}

pub async fn no_route() -> Response {
    ApiError::new(StatusCode::NOT_FOUND, "no_route", "no such route; see /v1/openapi.json").into_response()
}

pub async fn method_not_allowed() -> Response {
    ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", "this route does not take this method")
        .into_response()
}
