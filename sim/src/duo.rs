//! The Duo API request pipeline: route, count, fault, verify, apply, answer.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use serde_json::{Value, json};

use crate::app::{App, lock};
use crate::audit::Origin;
use crate::authapi;
use crate::clock::wall_ms;
use crate::error::ApiError;
use crate::fault::Action;
use crate::keys::Kind;
use crate::ops::{self, Ctx, Reply};
use crate::params::Params;
use crate::push::{self, Status};
use crate::routes::{self, Api, Found, Op, Route};
use crate::verify::{self, RequestParts};

/// Marks a response whose connection must close without sending it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct DropConnection;

/// The fallback handler: every request that is not for `/sim/`. A request received is served to
/// the end on a task of its own, as Duo does: a client that closes its connection before the
/// answer (a timeout, a crash) does not undo its write.
pub(crate) async fn handle(State(app): State<Arc<App>>, req: Request) -> Response {
    match tokio::spawn(handle_detached(app, req)).await {
        Ok(response) => response,
        Err(_) => error(&ApiError::server(500)),
    }
}

async fn handle_detached(app: Arc<App>, req: Request) -> Response {
    let (route, ids) = match routes::find(req.method().as_str(), req.uri().path()) {
        Found::Route(route, ids) => (route, ids),
        Found::WrongMethod => return error(&ApiError::method_not_allowed()),
        Found::NotFound => return error(&ApiError::not_found()),
    };
    *lock(&app.stats).entry(route.pattern.to_string()).or_default() += 1;
    let latency = lock(&app.faults).latency_ms(route.pattern);
    if latency > 0 {
        tokio::time::sleep(Duration::from_millis(latency)).await;
    }
    let action = lock(&app.faults).take_before(route.pattern);
    match action {
        Action::Proceed => {}
        Action::TooMany { retry_after, header } => return too_many(retry_after, header.name()),
        Action::ServerError(status) => return error(&ApiError::server(status)),
    }
    if route.api != Api::Public && !within_rate_limit(&app, req.headers()) {
        // No `Retry-After`: the Admin API sends none, and for the Auth API Duo says nothing.
        return error(&ApiError::too_many());
    }
    let result = serve(&app, route, &ids, req).await;
    let mut response = match result {
        Ok(reply) => success(reply),
        Err(err) => error(&err),
    };
    if lock(&app.faults).take_drop(route.pattern) {
        response.extensions_mut().insert(DropConnection);
    }
    response
}

/// Whether the rate limit lets this request through. It is counted against the integration key
/// its `Authorization` names, before the signature is checked (a request with a bad signature
/// still costs its key a token); a key the simulator does not know has no bucket (it gets
/// 40102), so the buckets stay as few as the keys.
fn within_rate_limit(app: &App, headers: &axum::http::HeaderMap) -> bool {
    let Some(buckets) = &app.buckets else { return true };
    let claimed = headers.get(header::AUTHORIZATION).and_then(|h| verify::parse_authorization(h.as_bytes()).ok());
    let Some((ikey, _)) = claimed.filter(|(ikey, _)| app.keyring.get(ikey).is_some()) else { return true };
    let allowed = lock(buckets).take(&ikey, app.clock.now_ms());
    if !allowed {
        app.rate_limited.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
    allowed
}

/// Verifies and applies one request.
async fn serve(app: &App, route: &'static Route, ids: &[String], req: Request) -> Result<Reply, ApiError> {
    let (parts, body) = req.into_parts();
    let body = axum::body::to_bytes(body, app.options.max_body_bytes).await.map_err(|_| ApiError::too_large())?;
    let headers: Vec<(String, Vec<u8>)> =
        parts.headers.iter().map(|(n, v)| (n.as_str().to_string(), v.as_bytes().to_vec())).collect();
    let host = parts.headers.get(header::HOST).and_then(|h| h.to_str().ok());
    let host = host.or_else(|| parts.uri.authority().map(|a| a.as_str())).unwrap_or_default();
    let request = RequestParts {
        method: parts.method.as_str(),
        host,
        path: parts.uri.path(),
        query: parts.uri.query().unwrap_or_default(),
        headers: &headers,
        body: &body,
    };
    let ikey = match route.api {
        Api::Public => String::new(),
        Api::Admin | Api::Auth => authorise(app, route, &request)?,
    };
    let params = Params::from_request(&request)?;
    let origin = Origin { time: 0, method: route.method(), route: route.pattern, ikey: &ikey };
    match route.op {
        Op::Auth => auth(app, origin, &params).await,
        Op::AuthStatus => auth_status(app, &params).await,
        op => {
            let (mut state, now_ms) = app.settled();
            let options = &app.options;
            let mut ctx = Ctx { state: &mut state, origin: Origin { time: now_ms, ..origin }, now_ms, options };
            ops::run(op, &mut ctx, &params, ids)
        }
    }
}

/// Checks the signature and that the integration may call this API; returns the ikey.
fn authorise(app: &App, route: &Route, request: &RequestParts<'_>) -> Result<String, ApiError> {
    let skew = i64::try_from(app.options.skew.as_secs()).unwrap_or(i64::MAX);
    // Clients sign with their own wall clock, so the date is checked against the real one.
    let verified = verify::verify(request, &app.keyring, wall_ms().div_euclid(1000), skew)?;
    let allowed = match route.api {
        Api::Admin => verified.kind == Kind::DuoAdmin,
        Api::Auth => verified.kind == Kind::DuoAuth,
        Api::Public => true,
    };
    if !allowed {
        return Err(ApiError::wrong_kind());
    }
    Ok(verified.ikey)
}

/// `POST /auth/v2/auth`: `{txid}` with `async=1`, otherwise the outcome once the user answers
/// or the push expires (sim time).
async fn auth(app: &App, origin: Origin<'_>, params: &Params) -> Result<Reply, ApiError> {
    let started = {
        let (mut state, now_ms) = app.settled();
        let options = &app.options;
        let mut ctx = Ctx { state: &mut state, origin: Origin { time: now_ms, ..origin }, now_ms, options };
        authapi::start_auth(&mut ctx, params)?
    };
    // `start_auth` has refused anything but "0" and "1".
    if params.flag("async") == Ok(true) {
        return Ok(Reply::plain(json!({ "txid": started.txid })));
    }
    let status = wait_for_push(app, &started.txid, i64::MAX).await?;
    Ok(Reply::plain(push::render(status)))
}

/// `GET /auth/v2/auth_status`: holds the request (sim time) until the push is answered or
/// expires, or `long_poll` passes, then answers the status at that moment.
async fn auth_status(app: &App, params: &Params) -> Result<Reply, ApiError> {
    let txid = authapi::find_push(&lock(&app.state), params)?.txid;
    let hold = i64::try_from(app.options.long_poll.as_millis()).unwrap_or(i64::MAX);
    let deadline = app.clock.now_ms().saturating_add(hold);
    let status = wait_for_push(app, &txid, deadline).await?;
    Ok(Reply::plain(push::render(status)))
}

/// Waits on the sim clock until the push has ended or `deadline_ms` comes, re-checking whenever
/// the clock is advanced or a push is answered through the control API.
async fn wait_for_push(app: &App, txid: &str, deadline_ms: i64) -> Result<Status, ApiError> {
    loop {
        // Subscribed before reading, so a change between the read and the wait still wakes us.
        let mut woken = app.clock.subscribe();
        let found = lock(&app.state).pushes.get(txid).cloned();
        // Gone only after `POST /sim/reset`: the txid is no longer known.
        let push = found.ok_or_else(|| ApiError::invalid("txid"))?;
        let now = app.clock.now_ms();
        let status = push.status(now);
        if status != Status::Waiting || now >= deadline_ms {
            return Ok(status);
        }
        app.clock.sleep_until(push.next_change_ms().min(deadline_ms), &mut woken).await;
    }
}

fn success(reply: Reply) -> Response {
    let mut body = json!({ "stat": "OK", "response": reply.response });
    if let Some(metadata) = reply.metadata {
        body["metadata"] = metadata;
    }
    json_response(StatusCode::OK, &body)
}

/// Duo's error envelope with the status its code implies.
pub(crate) fn error(err: &ApiError) -> Response {
    let status = StatusCode::from_u16(err.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    json_response(status, &err.body())
}

fn too_many(retry_after: Option<u64>, header_name: &'static str) -> Response {
    let mut response = error(&ApiError::too_many());
    if let Some(secs) = retry_after {
        response.headers_mut().insert(header_name, HeaderValue::from(secs));
    }
    response
}

pub(crate) fn json_response(status: StatusCode, body: &Value) -> Response {
    let bytes = serde_json::to_vec(body).unwrap_or_default();
    let mut response = Response::new(Body::from(bytes));
    *response.status_mut() = status;
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}
