//! The signed HTTP call layer: [`send`] makes one call through an integration (signing Duo
//! calls afresh for every attempt), retries as the policy and the method allow, and returns the raw
//! answer with a scrubbed record of every attempt.
//!
//! Safety lives here, not in the flows: a request goes only to its integration's own scheme, host
//! and port; plain http only to a loopback host marked `loopback_http`; redirects are never
//! followed; no secret appears in a [`Reply`], an [`Attempt`], a [`CallError`] or `Debug` output.

mod error;
pub mod limit;
mod prepare;
mod record;
pub mod route;
pub mod tls;
pub mod transport;

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use flowcat_engine::kind::Effect;
use serde_json::{Map, Value};
use tracing::Instrument as _;

pub use error::CallError;
pub use limit::{Limiter, RateLimit, Token};
pub use record::{Attempt, REDACTED, RequestRecord, ResponseRecord, is_sensitive_header, parse_body};
pub use transport::{Exchanged, Outgoing, Transport};

use crate::duo::{Failure, RetryPolicy, delay, may_retry, retry_after};
use crate::integrations::{Integration, Tls, is_loopback};
use prepare::Prepared;
use record::Redactor;

/// The total time one attempt may take unless a node says otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// The time a connection may take unless a node says otherwise.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// The largest answer read; Duo's answers are a few kilobytes.
pub const MAX_BODY: usize = 16 * 1024 * 1024;
/// The longest `Retry-After` honoured: a server asking for more would stall a run for good.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(300);

/// The HTTP clients every run shares: one connection pool per connect timeout (reqwest sets that
/// timeout per client), proxy use and TLS settings, made on first use. Cloning is cheap and shares
/// the pools. With a [`Transport`] ([`Clients::with_transport`]), nothing goes on the wire: the
/// transport answers every attempt.
#[derive(Debug, Clone, Default)]
pub struct Clients {
    pools: Arc<Mutex<HashMap<PoolKey, reqwest::Client>>>,
    transport: Option<Arc<dyn Transport>>,
}

/// What tells two clients apart: the connect timeout, whether proxies are bypassed (loopback),
/// and the TLS settings (roots and extra CA certificates).
type PoolKey = (Duration, bool, Tls);

impl Clients {
    pub fn new() -> Clients {
        Clients::default()
    }

    /// Clients whose every attempt `transport` answers in the process (`flowcat test`): no
    /// connection is made, everything else about a call (signing, retries, the rate limiter)
    /// happens as on the wire.
    pub fn with_transport(transport: Arc<dyn Transport>) -> Clients {
        Clients { pools: Arc::default(), transport: Some(transport) }
    }

    /// The client for this connect timeout and integration. Clients for a loopback host ignore
    /// proxy settings, so a request for the simulator never leaves the machine; the others
    /// honour `HTTPS_PROXY`, `HTTP_PROXY`, `ALL_PROXY` and `NO_PROXY` (reqwest's default).
    fn client(&self, connect_timeout: Duration, integration: &Integration) -> Result<reqwest::Client, String> {
        let key: PoolKey = (connect_timeout, is_loopback(integration.host()), integration.tls.clone());
        // A panic elsewhere while holding the lock leaves the map intact: keep using it.
        let mut pools = self.pools.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(client) = pools.get(&key) {
            return Ok(client.clone());
        }
        let mut builder = reqwest::Client::builder()
            .tls_backend_preconfigured(tls::config(&key.2)?)
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(connect_timeout)
            .user_agent(concat!("flowcat/", env!("CARGO_PKG_VERSION")));
        if key.1 {
            builder = builder.no_proxy();
        }
        let client = builder.build().map_err(|e| format!("cannot set up the HTTP client: {e}"))?;
        pools.insert(key, client.clone());
        Ok(client)
    }
}

/// One call as a node asks for it.
#[derive(Clone, PartialEq)]
pub struct Call {
    /// `GET`, `POST`, `PUT`, `PATCH` or `DELETE` (any case).
    pub method: String,
    /// Already percent-encoded, starting with `/`; for an `http` integration it follows the base
    /// URL's path.
    pub path: String,
    /// Query params, not yet encoded. Duo: the params of GET and DELETE (sorted and encoded as Duo
    /// signs them); `http`: sent in this order.
    pub query: Vec<(String, String)>,
    /// A JSON object body. Duo: the params of POST, PUT and PATCH (a compact sorted-key JSON body
    /// in v5, a form body in v2); `http`: sent as JSON.
    pub body: Option<Map<String, Value>>,
    /// Extra headers. Duo: `x-duo-*` ones are signed (v5 only).
    pub headers: Vec<(String, String)>,
    /// The most one attempt may take, connection included.
    pub timeout: Duration,
    pub connect_timeout: Duration,
    /// Overrides the integration's retry policy.
    pub retry: Option<RetryPolicy>,
    /// What the call does, which decides what is retried ([`may_retry`]).
    pub effect: Effect,
    /// When the run must have ended: no attempt outlives it and no back-off sleeps past it.
    pub deadline: Option<tokio::time::Instant>,
    /// The route template (`/admin/v1/users/{user_id}`, [`route::template`]): what the span of
    /// each attempt names, never the rendered path. `None`: the span names only the method.
    pub route: Option<std::sync::Arc<str>>,
    /// The path in the run of the node making the call (`user/lookup`), for a [`Transport`].
    pub node: Option<std::sync::Arc<str>>,
}

impl Call {
    /// A call with no params, the default timeouts, and the effect its method has by default
    /// ([`default_effect`]).
    pub fn new(method: impl Into<String>, path: impl Into<String>) -> Call {
        let method = method.into();
        Call {
            effect: default_effect(&method),
            method,
            path: path.into(),
            query: Vec::new(),
            body: None,
            headers: Vec::new(),
            timeout: DEFAULT_TIMEOUT,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            retry: None,
            deadline: None,
            route: None,
            node: None,
        }
    }

    /// The time left before the deadline (zero once it passed), if there is one.
    fn left(&self) -> Option<Duration> {
        self.deadline.map(|d| d.saturating_duration_since(tokio::time::Instant::now()))
    }

    /// The call failed because the run's deadline came: `when` says at which point.
    fn past_deadline(&self, when: String, unknown: bool, attempts: Vec<Attempt>) -> CallError {
        let (method, path) = (self.method.to_ascii_uppercase(), self.path.clone());
        CallError::Deadline { method, path, when, unknown, attempts }
    }
}

/// What a call does when its node does not say: `GET` reads, `DELETE` is idempotent (sending it
/// again finds the thing gone), anything else writes.
pub fn default_effect(method: &str) -> Effect {
    if method.eq_ignore_ascii_case("GET") {
        Effect::Read
    } else if method.eq_ignore_ascii_case("DELETE") {
        Effect::Idempotent
    } else {
        Effect::Write
    }
}

impl fmt::Debug for Call {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // A flow may pass a credential in a header of its own; show such headers as `****`.
        let headers: Vec<(&str, &str)> = self
            .headers
            .iter()
            .map(|(n, v)| (n.as_str(), if is_sensitive_header(n) { REDACTED } else { v.as_str() }))
            .collect();
        f.debug_struct("Call")
            .field("method", &self.method)
            .field("path", &self.path)
            .field("query", &self.query)
            .field("body", &self.body)
            .field("headers", &headers)
            .field("timeout", &self.timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("retry", &self.retry)
            .field("effect", &self.effect)
            .field("deadline", &self.deadline)
            .finish()
    }
}

/// The answer to a call: the last attempt's, whatever its status (the caller reads Duo's
/// envelope), with every attempt made.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    pub status: u16,
    /// Lower-case names; repeated headers joined with `, `.
    pub headers: BTreeMap<String, String>,
    /// The body as JSON, or as a string when it is not JSON.
    pub body: Value,
    pub attempts: Vec<Attempt>,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(&name.to_ascii_lowercase()).map(String::as_str)
    }
}

/// How one attempt ended.
enum Outcome {
    Answer { status: u16, headers: BTreeMap<String, String>, body: Value },
    Connect(String),
    Timeout,
    Lost(String),
    TooLarge,
}

/// Sends `call` through `integration` and returns the answer, whatever its HTTP status.
///
/// - Duo kinds: each attempt is signed afresh with a new `Date`.
/// - 429 is retried per the policy (the call's, else the integration's), honouring
///   `Retry-After`/`X-Retry-After`; 5xx and broken connections only for reads and idempotent
///   calls, never for a write ([`may_retry`], by the call's `effect`). A connection refused or a
///   timeout is not retried: nothing was sent, or the node's time is up.
/// - The integration's rate limiter ([`Limiter`], shared by every run) gives each attempt its
///   token first; a 429 slows every run of the integration down.
/// - The run's deadline (`Call::deadline`) bounds everything: an attempt's time limit is cut to
///   it, and a wait that would end after it is not started ([`CallError::Deadline`]).
/// - Errors come only when no usable answer came; a 4xx or 5xx answer is a [`Reply`].
pub async fn send(clients: &Clients, integration: &Integration, call: &Call) -> Result<Reply, CallError> {
    send_with(clients, integration, call, None).await
}

/// The first attempt's rate-limit token, taken before anything else is done for the call (a
/// write's intent journaled, the request signed): `None` when the integration has no limiter.
/// A token due after the run's deadline is refused at once ([`CallError::Deadline`]). The wait is
/// where a call spends its time when the rate limit binds, and nothing has been sent during it.
pub async fn token(integration: &Integration, call: &Call) -> Result<Option<limit::Token>, CallError> {
    let Some(limiter) = &integration.limiter else { return Ok(None) };
    match limiter.token(call.deadline).await {
        Ok(token) => Ok(Some(token)),
        Err(limit::TooLate { wait }) => {
            let when = format!("comes before the integration's rate limit lets it go, in {} ms", millis(wait));
            Err(call.past_deadline(when, false, Vec::new()))
        }
    }
}

/// [`send`], the first attempt going with `first`, a token taken by [`token`] (later attempts
/// take their own).
pub async fn send_with(
    clients: &Clients,
    integration: &Integration,
    call: &Call,
    mut first: Option<limit::Token>,
) -> Result<Reply, CallError> {
    let refused = |reason| CallError::Refused { reason };
    prepare::check(integration, call).map_err(refused)?;
    let wire = match &clients.transport {
        Some(transport) => Wire::Transport(transport.as_ref()),
        None => Wire::Http(clients.client(call.connect_timeout, integration).map_err(refused)?),
    };
    let policy = call.retry.unwrap_or(integration.retry);
    let redactor = Redactor::new(integration);
    let mut attempts: Vec<Attempt> = Vec::new();
    loop {
        // The token first, then the signature: a request signed before a long wait would carry a
        // stale date.
        let sent_at = match integration.limiter.as_deref() {
            None => None,
            Some(limiter) if first.is_some() => first.take().map(|t| (limiter, t.spend())),
            Some(limiter) => match limiter.acquire(call.deadline).await {
                Ok(at) => Some((limiter, at)),
                Err(limit::TooLate { wait }) => {
                    let when = format!("comes before the integration's rate limit lets it go, in {} ms", millis(wait));
                    return Err(call.past_deadline(when, false, attempts));
                }
            },
        };
        let prepared = prepare::prepare(integration, call).map_err(refused)?;
        let timeout = match call.left() {
            Some(left) if left.is_zero() => {
                return Err(call.past_deadline("passed before it could be sent".into(), false, attempts));
            }
            Some(left) => call.timeout.min(left),
            None => call.timeout,
        };
        let span = attempt_span(integration, call, attempts.len() + 1);
        let (mut attempt, outcome) = match &wire {
            Wire::Http(client) => exchange(client, prepared, timeout, &redactor).instrument(span.clone()).await,
            Wire::Transport(transport) => {
                answer(*transport, call, prepared, timeout, &redactor).instrument(span.clone()).await
            }
        };
        record_outcome(&span, &outcome);
        if timeout < call.timeout && matches!(outcome, Outcome::Timeout) {
            attempts.push(attempt);
            return Err(call.past_deadline("passed while it waited for its answer".into(), true, attempts));
        }
        if let (Some((limiter, at)), Outcome::Answer { status: 429, .. }) = (sent_at, &outcome) {
            limiter.throttled(at);
        }
        let failure = match &outcome {
            Outcome::Answer { status, .. } if *status == 429 || *status >= 500 => Some(Failure::Status(*status)),
            Outcome::Lost(_) => Some(Failure::ConnectionLost),
            _ => None,
        };
        let wait = failure.filter(|f| may_retry(call.effect, *f)).and_then(|_| {
            let asked = match &outcome {
                Outcome::Answer { headers, .. } => asked_wait(headers),
                _ => None,
            };
            delay(&policy, attempts.len() as u32 + 1, asked, fastrand::f64())
        });
        if let (Some(wait), Some(left)) = (wait, call.left()) {
            if wait > left {
                attempts.push(attempt);
                let when = format!("comes before its next attempt, due in {} ms", millis(wait));
                let unknown = matches!(outcome, Outcome::Lost(_));
                return Err(call.past_deadline(when, unknown, attempts));
            }
        }
        attempt.retry_delay_ms = wait.map(millis);
        attempts.push(attempt);
        match wait {
            Some(wait) => tokio::time::sleep(wait).await,
            None => return finish(outcome, attempts, integration, call),
        }
    }
}

/// The span of one attempt (`flowcat_nodes::http`, `request`): the method, the route template,
/// the attempt's number and the integration's name; `status_code` or `error` once it ended.
/// Never the rendered path, a query value, a header or a body: traces leave the machine.
fn attempt_span(integration: &Integration, call: &Call, attempt: usize) -> tracing::Span {
    tracing::info_span!(
        target: "flowcat_nodes::http",
        "request",
        method = call.method.to_ascii_uppercase(),
        route = call.route.as_deref(),
        attempt,
        integration = integration.name.as_str(),
        status_code = tracing::field::Empty,
        error = tracing::field::Empty,
    )
}

/// Records how an attempt ended on its span: the HTTP status, or the kind of failure.
fn record_outcome(span: &tracing::Span, outcome: &Outcome) {
    if span.is_disabled() {
        return;
    }
    match outcome {
        Outcome::Answer { status, .. } => span.record("status_code", *status),
        Outcome::Connect(_) => span.record("error", "connect"),
        Outcome::Timeout => span.record("error", "timeout"),
        Outcome::Lost(_) => span.record("error", "connection_lost"),
        Outcome::TooLarge => span.record("error", "too_large"),
    };
}

/// The request a write is about to send, as the run record shows its attempts (secrets as
/// `****`), without what every attempt signs anew (`Date`, `X-Duo-Date`, `Authorization`): the
/// intent journaled before the first attempt, so that a crash mid-send leaves the exact request,
/// never a secret. Refused as [`send`] would refuse it, before anything is sent.
pub fn intent(integration: &Integration, call: &Call) -> Result<RequestRecord, CallError> {
    let refused = |reason| CallError::Refused { reason };
    prepare::check(integration, call).map_err(refused)?;
    let mut prepared = prepare::lay_out(integration, call).map_err(refused)?;
    let mut request = record(&mut prepared, &Redactor::new(integration));
    request.headers.retain(|name, _| !matches!(name.as_str(), "date" | "x-duo-date" | "authorization"));
    Ok(request)
}

/// A prepared request as a record shows it. Takes the body's JSON value ([`Prepared::json`]),
/// which nothing after the record reads.
fn record(prepared: &mut Prepared, redactor: &Redactor) -> RequestRecord {
    let json = prepared.json.take();
    RequestRecord {
        method: prepared.method.to_string(),
        url: redactor.text(prepared.url.as_str()),
        headers: redactor.headers(prepared.headers.iter().map(|(n, v)| (n.as_str(), v.as_str()))),
        body: prepared.body.as_deref().map(|b| match json {
            Some(json) => redactor.json_body(b, json),
            None => redactor.body(b),
        }),
    }
}

/// The wait a 429 asks for, capped at [`MAX_RETRY_AFTER`].
fn asked_wait(headers: &BTreeMap<String, String>) -> Option<Duration> {
    let header = |name: &str| headers.get(name).map(String::as_str);
    retry_after(header("retry-after"), header("x-retry-after"), SystemTime::now()).map(|d| d.min(MAX_RETRY_AFTER))
}

/// Turns the last attempt's outcome into the call's result.
fn finish(
    outcome: Outcome,
    attempts: Vec<Attempt>,
    integration: &Integration,
    call: &Call,
) -> Result<Reply, CallError> {
    let authority = integration.authority();
    let (method, path) = (call.method.to_ascii_uppercase(), call.path.clone());
    match outcome {
        Outcome::Answer { status: 429, .. } => Err(CallError::TooManyRequests { method, path, attempts }),
        Outcome::Answer { status, headers, body } => Ok(Reply { status, headers, body, attempts }),
        Outcome::Connect(message) => Err(CallError::Connect { authority, message, attempts }),
        Outcome::Timeout => {
            Err(CallError::Timeout { method, path, authority, timeout: call.timeout, effect: call.effect, attempts })
        }
        Outcome::Lost(_) => Err(CallError::Lost { method, path, authority, effect: call.effect, attempts }),
        Outcome::TooLarge => Err(CallError::TooLarge { authority, limit: MAX_BODY, attempts }),
    }
}

/// Where attempts go: the network, or a [`Transport`] in the process.
enum Wire<'a> {
    Http(reqwest::Client),
    Transport(&'a dyn Transport),
}

/// Has `transport` answer one prepared request, and records it as [`exchange`] does.
async fn answer(
    transport: &dyn Transport,
    call: &Call,
    mut prepared: Prepared,
    timeout: Duration,
    redactor: &Redactor,
) -> (Attempt, Outcome) {
    let request = record(&mut prepared, redactor);
    let started_at = SystemTime::now().duration_since(UNIX_EPOCH).map(millis).unwrap_or_default();
    let clock = tokio::time::Instant::now();
    let params = match &call.body {
        Some(body) => Some(body.clone()),
        None if call.query.is_empty() => None,
        None => {
            let mut m = Map::new();
            for (k, v) in &call.query {
                match m.get_mut(k) {
                    Some(Value::Array(list)) => list.push(Value::String(v.clone())),
                    Some(one) => *one = Value::Array(vec![one.take(), Value::String(v.clone())]),
                    None => {
                        m.insert(k.clone(), Value::String(v.clone()));
                    }
                }
            }
            Some(m)
        }
    };
    let outgoing = Outgoing {
        method: prepared.method.as_str().to_owned(),
        path: prepared.url.path().to_owned(),
        query: prepared.url.query_pairs().map(|(k, v)| (k.into_owned(), v.into_owned())).collect(),
        params,
        route: call.route.clone(),
        node: call.node.clone(),
        timeout,
    };
    let outcome = match transport.exchange(&outgoing).await {
        Exchanged::Answer { body, .. } if body.len() > MAX_BODY => Outcome::TooLarge,
        Exchanged::Answer { status, headers, body } => {
            let headers = redactor.headers(headers.iter().map(|(n, v)| (n.as_str(), v.as_str())));
            Outcome::Answer { status, headers, body: redactor.body(&body) }
        }
        Exchanged::Refused(message) => Outcome::Connect(redactor.text(&message)),
        Exchanged::Timeout => Outcome::Timeout,
        Exchanged::Dropped(message) => Outcome::Lost(redactor.text(&message)),
    };
    let duration_ms = millis(clock.elapsed());
    (recorded(request, &outcome, timeout, started_at, duration_ms), outcome)
}

/// Sends one prepared request and records it.
async fn exchange(
    client: &reqwest::Client,
    mut prepared: Prepared,
    timeout: Duration,
    redactor: &Redactor,
) -> (Attempt, Outcome) {
    let request = record(&mut prepared, redactor);
    let started_at = SystemTime::now().duration_since(UNIX_EPOCH).map(millis).unwrap_or_default();
    let clock = Instant::now();
    let mut builder = client.request(prepared.method, prepared.url).timeout(timeout);
    for (name, value) in &prepared.headers {
        builder = builder.header(name, value);
    }
    if let Some(body) = prepared.body {
        builder = builder.body(body);
    }
    let outcome = match builder.send().await {
        Ok(response) => read(response, redactor).await,
        Err(e) => failed(&e, redactor),
    };
    let duration_ms = millis(clock.elapsed());
    (recorded(request, &outcome, timeout, started_at, duration_ms), outcome)
}

/// The record of one attempt.
fn recorded(
    request: RequestRecord,
    outcome: &Outcome,
    timeout: Duration,
    started_at: u64,
    duration_ms: u64,
) -> Attempt {
    let (response, error) = match outcome {
        Outcome::Answer { status, headers, body } => {
            (Some(ResponseRecord { status: *status, headers: headers.clone(), body: body.clone() }), None)
        }
        Outcome::Connect(message) | Outcome::Lost(message) => (None, Some(message.clone())),
        Outcome::Timeout => (None, Some(format!("no complete answer within {} ms", timeout.as_millis()))),
        Outcome::TooLarge => (None, Some(format!("answer larger than {MAX_BODY} bytes"))),
    };
    Attempt { request, response, error, started_at, duration_ms, retry_delay_ms: None }
}

/// Reads the answer, at most [`MAX_BODY`] bytes of it.
async fn read(mut response: reqwest::Response, redactor: &Redactor) -> Outcome {
    let status = response.status().as_u16();
    let headers =
        redactor.headers(response.headers().iter().map(|(n, v)| (n.as_str(), v.to_str().unwrap_or("(not ASCII)"))));
    let mut bytes: Vec<u8> = Vec::new();
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) if bytes.len() + chunk.len() > MAX_BODY => return Outcome::TooLarge,
            Ok(Some(chunk)) => bytes.extend_from_slice(&chunk),
            Ok(None) => return Outcome::Answer { status, headers, body: redactor.body(&bytes) },
            Err(e) => return failed(&e, redactor),
        }
    }
}

/// Classifies a transport error: nothing sent (connect), out of time, or lost mid-way.
fn failed(e: &reqwest::Error, redactor: &Redactor) -> Outcome {
    if e.is_connect() {
        Outcome::Connect(redactor.text(&chain(e)))
    } else if e.is_timeout() {
        Outcome::Timeout
    } else {
        Outcome::Lost(redactor.text(&chain(e)))
    }
}

/// The error and its causes, without the URL reqwest puts in its own message.
fn chain(e: &reqwest::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        parts.push(cause.to_string());
        source = cause.source();
    }
    if parts.is_empty() { "connection error".to_owned() } else { parts.join(": ") }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}
