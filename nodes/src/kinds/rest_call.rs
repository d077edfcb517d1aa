//! `rest_call`: the Execute REST Call node. One HTTP request through an integration slot, with
//! JSONPath extraction from the response, accepted statuses and vendor codes, and polling.
//!
//! Compile time makes the classic mistakes impossible: a call not linked to a slot, linked to a
//! slot the flow does not declare, or to a slot of the wrong kind (Admin API paths need a
//! `duo_admin` slot, Auth API paths a `duo_auth` one).

use std::time::Duration;

use flowcat_engine::diag::one_of;
use flowcat_engine::kind::{CompileCx, Compiled, Effect, Lint, NodeExec, NodeKind, Reconciled};
use flowcat_engine::run::{BoxFuture, NodeCx, NodeError, NodeOutput};
use flowcat_engine::shape::{Field, Shape, parse_duration};
use flowcat_engine::template::{Template, ValueTemplate};
use flowcat_engine::yaml::{Node, Span};
use serde_json_path::JsonPath;

use super::reconcile::{self, Reconcile};
use crate::duo::rules;
use crate::duo::validate::{self, Checked, Request};

#[derive(Debug)]
pub struct RestCall;

pub use crate::duo::rules::METHODS;

const EXTRACT_FIELDS: &[Field] = &[
    Field::required("path", Shape::Str, "a JSONPath into the response body, e.g. `$.response[0].user_id`"),
    Field::optional("many", Shape::Bool, "return every match as a list (default: exactly one value)"),
    Field::optional("optional", Shape::Bool, "no match gives `null` instead of failing the node"),
    Field::optional("default", Shape::Value, "the value when nothing matches (implies optional)"),
];

const ACCEPT_FIELDS: &[Field] = &[
    Field::optional("status", Shape::List(&Shape::Int), "HTTP statuses that count as a result, e.g. `[404]`"),
    Field::optional(
        "code",
        Shape::List(&Shape::Int),
        "vendor error codes that count as a result, e.g. Duo's `[40003]`",
    ),
];

const POLL_FIELDS: &[Field] = &[
    Field::required("until", Shape::Condition, "repeat until this holds; reads the latest response as `self.<field>`"),
    Field::required("interval", Shape::Duration, "the pause between attempts, e.g. `2s`"),
    Field::required("timeout", Shape::Duration, "give up after this long, e.g. `90s`"),
];

const RETRY_FIELDS: &[Field] = &[
    Field::optional("max_attempts", Shape::Int, "attempts in total, the first included, 1 to 100 (Duo's clients: 7)"),
    Field::optional("initial", Shape::Duration, "the wait after the first rate-limited attempt (default `1s`)"),
    Field::optional("max", Shape::Duration, "the longest wait as it doubles (default `32s`)"),
];

const FIELDS: &[Field] = &[
    Field::required(
        "integration",
        Shape::Name,
        "the integration slot the call goes through, e.g. `duo_admin`; every REST call must be linked to one",
    ),
    Field::required("method", Shape::Enum(METHODS), "the HTTP method"),
    Field::optional(
        "effect",
        Shape::Enum(EFFECTS),
        "what the call does: `read`, `idempotent` (sending it twice changes nothing more) or `write`; decides retries and resume (default: `GET` read, `DELETE` idempotent, others write)",
    ),
    Field::required(
        "path",
        Shape::Template,
        "the path, e.g. `/admin/v1/users/{{nodes.lookup.user_id}}`; each value is one path segment",
    ),
    Field::optional("query", Shape::Dict(&Shape::Value), "query parameters: name → value or template"),
    Field::optional("body", Shape::Dict(&Shape::Value), "body parameters: name → value or template"),
    Field::optional("headers", Shape::Dict(&Shape::Template), "extra request headers"),
    Field::optional(
        "extract",
        Shape::Map(&Shape::OneOf(EXTRACT_SHAPES)),
        "result name → JSONPath into the response body",
    ),
    Field::optional("accept", Shape::Object(ACCEPT_FIELDS), "failures that count as results instead of errors"),
    Field::optional("poll", Shape::Object(POLL_FIELDS), "repeat the call until a condition holds, bounded in time"),
    Field::optional("retry", Shape::Object(RETRY_FIELDS), "this call's retry settings, over the integration's policy"),
    Field::optional(
        "reconcile",
        Shape::Object(reconcile::FIELDS),
        "for a write: the read that tells whether it happened (for a resumed run), or `none: <why>`",
    ),
    Field::optional(
        "pages",
        Shape::Bool,
        "follow Duo's paging (`metadata.next_offset`) and join every page's `response` list (GET only)",
    ),
    Field::optional(
        "secret",
        Shape::Bool,
        "the answer holds credentials for the caller (bypass codes): what it extracts is redacted wherever the run is recorded, and only the caller's outputs show it",
    ),
    Field::optional("timeout", Shape::Duration, "each attempt's time limit, connection included (default `30s`)"),
    Field::optional("connect_timeout", Shape::Duration, "the connection's time limit (default `10s`)"),
];

pub(super) const EXTRACT_SHAPES: &[Shape] = &[Shape::Str, Shape::Object(EXTRACT_FIELDS)];

/// The words of `effect:`.
const EFFECTS: &[&str] = &["read", "idempotent", "write"];

/// The result fields every REST call has, beside the names it extracts.
pub const RESULT_FIELDS: &[&str] = &["status", "headers", "body"];

/// Names an `extract:` may not use: the result fields, and `attempts` (set when polling).
const RESERVED: &[&str] = &["status", "headers", "body", "attempts", "error"];

impl NodeKind for RestCall {
    fn name(&self) -> &'static str {
        "rest_call"
    }

    fn summary(&self) -> &'static str {
        "Execute REST Call: one HTTP request through an integration slot, with JSONPath extraction."
    }

    fn fields(&self) -> &'static [Field] {
        FIELDS
    }

    fn compile(&self, cx: &mut CompileCx<'_>) -> Option<Compiled> {
        let (exec, fields, lints) = self.compile_exec(cx)?;
        let permissions = exec.permissions.iter().map(|p| (*p).to_owned()).collect();
        let mut compiled = Compiled::new(Box::new(exec), fields);
        compiled.lints = lints;
        compiled.permissions = permissions;
        Some(compiled)
    }
}

impl RestCall {
    /// Compiles a `rest_call` node to its concrete runnable form, its result fields and its
    /// warnings: for a kind that wraps a REST call (tests drive the write and its reconcile
    /// read one after the other with it).
    pub fn compile_exec(&self, cx: &mut CompileCx<'_>) -> Option<(RestCallExec, Vec<String>, Vec<Lint>)> {
        let slot = slot(cx);
        let method = cx.str("method").filter(|m| METHODS.contains(m)).map(str::to_owned);
        let effect = effect(cx, method.as_deref());
        let path = cx.template("path");
        if let (Some(path), Some(slot)) = (&path, &slot) {
            check_path(cx, path, slot);
        }
        let query = map_of_values(cx, "query");
        let body = map_of_values(cx, "body");
        if cx.get("body").is_some() && method.as_deref().is_some_and(|m| !rules::carries_body(m)) {
            let span = cx.key_span("body");
            let m = method.as_deref().unwrap_or_default();
            cx.error("body-not-allowed", span, format!("a `{m}` request has no body"))
                .help("put the parameters under `query:`");
        }
        let duo = slot.as_ref().is_some_and(|(_, kind)| kind.starts_with("duo_"));
        let headers = headers(cx, duo);
        if duo {
            params_where_duo_wants_them(cx, method.as_deref());
        }
        let extract = extract(cx);
        let mut checked = Checked::default();
        if let (Some(path), Some((_, kind)), Some(m)) = (&path, &slot, method.as_deref()) {
            let request = Request {
                kind,
                method: m,
                method_span: cx.get("method").map_or(path.span, |n| n.span),
                path,
                query: cx.get("query"),
                body: cx.get("body"),
                extract: cx.get("extract"),
                params_span: cx
                    .node
                    .key_span(if rules::carries_body(m) { "body" } else { "query" })
                    .unwrap_or(path.span),
            };
            validate::check(cx, &request, &mut checked);
        }
        let reconcile = reconcile::compile(cx, slot.as_ref(), effect, extract.as_deref(), &mut checked);
        let accept = accept(cx);
        let poll = poll(cx);
        let retry = retry(cx);
        let pages = cx.get("pages").and_then(Node::as_bool).unwrap_or(false);
        if pages && method.as_deref() != Some("GET") {
            let span = cx.key_span("pages");
            cx.error("bad-paging", span, "only a `GET` list call can follow pages").help("remove `pages: true`");
        }
        let mut fields: Vec<String> = RESULT_FIELDS.iter().map(|s| (*s).to_owned()).collect();
        fields.extend(extract.iter().flatten().map(|e| e.name.clone()));
        if poll.as_ref().is_some_and(Option::is_some) {
            fields.push("attempts".to_owned());
        }
        let mut lints = std::mem::take(&mut checked.lints);
        if let (Effect::Write, Some(None), Some(method), Some(path)) = (effect, &reconcile, &method, &path) {
            lints.push(reconcile::without(cx, method, path.source.split("{{").next().unwrap_or_default()));
        }
        let path = path?;
        let exec = RestCallExec {
            slot: slot?.0,
            method: method?,
            effect,
            route: crate::http::route::template(&path.source).into(),
            path,
            query: query?,
            body: body?,
            headers: headers?,
            extract: extract?,
            accept,
            poll: poll?,
            retry,
            pages,
            secret: cx.get("secret").and_then(Node::as_bool).unwrap_or(false),
            timeout: duration(cx, "timeout").unwrap_or(Duration::from_secs(30)),
            connect_timeout: duration(cx, "connect_timeout").unwrap_or(Duration::from_secs(10)),
            reconcile: reconcile?,
            permissions: checked.permissions.iter().map(|p| p.name()).collect(),
        };
        Some((exec, fields, lints))
    }
}

/// `effect:`, or what the method does by default.
fn effect(cx: &CompileCx<'_>, method: Option<&str>) -> Effect {
    match cx.str("effect") {
        Some("read") => Effect::Read,
        Some("idempotent") => Effect::Idempotent,
        Some("write") => Effect::Write,
        _ => crate::http::default_effect(method.unwrap_or("POST")),
    }
}

/// The slot's name and kind, after checking that the flow declares it.
fn slot(cx: &mut CompileCx<'_>) -> Option<(String, String)> {
    let node = cx.get("integration")?;
    let name = node.as_str()?;
    if let Some(s) = cx.slots().iter().find(|s| s.name == name) {
        return Some((s.name.clone(), s.kind.clone()));
    }
    let names: Vec<String> = cx.slots().iter().map(|s| s.name.clone()).collect();
    let d = cx.error("unknown-slot", node.span, format!("`{name}` is not an integration slot of this flow")).label(
        if names.is_empty() {
            "this flow declares no slots".to_owned()
        } else {
            format!("expected {}", one_of(names.iter().map(String::as_str)))
        },
    );
    d.help(format!("declare it: `integrations: {{ {name}: {{ kind: duo_admin }} }}`"));
    d.suggest(name, names.iter().map(String::as_str));
    None
}

/// Paths must be absolute, and Duo API paths need a slot of the matching kind.
pub(super) fn check_path(cx: &mut CompileCx<'_>, path: &Template, (slot, kind): &(String, String)) {
    let literal = path.source.split("{{").next().unwrap_or_default();
    if !path.source.starts_with('/') {
        cx.error("bad-path", path.span, "the path must start with `/`")
            .label("the integration supplies the scheme and host")
            .help(format!("write `/{}`", path.source.trim_start_matches('/')));
        return;
    }
    let needs = if literal.starts_with("/admin/") {
        Some("duo_admin")
    } else if literal.starts_with("/auth/") {
        Some("duo_auth")
    } else {
        None
    };
    // A slot of an unknown kind is reported where it is declared; http slots reach any path.
    let duo = matches!(kind.as_str(), "duo_admin" | "duo_auth");
    if let Some(needs) = needs.filter(|n| n != kind && duo) {
        let span = cx.get("integration").map_or(path.span, |n| n.span);
        cx.error(
            "wrong-kind",
            span,
            format!(
                "`{}` is a Duo {} API path, but slot `{slot}` is a `{kind}` integration",
                literal.trim_end_matches('/'),
                if needs == "duo_admin" { "Admin" } else { "Auth" }
            ),
        )
        .label(format!("expected a `{needs}` slot"))
        .help(format!("link the call to a slot declared with `kind: {needs}`"));
    }
}

fn map_of_values(cx: &mut CompileCx<'_>, key: &str) -> Option<Option<Vec<(String, ValueTemplate)>>> {
    let node = cx.get(key);
    values_of(cx, node)
}

/// The parameters of a `query:` or `body:` mapping, compiled.
pub(super) fn values_of(cx: &mut CompileCx<'_>, node: Option<&Node>) -> Option<Option<Vec<(String, ValueTemplate)>>> {
    let Some(pairs) = node.and_then(Node::as_map) else { return Some(None) };
    let mut out = Vec::new();
    let mut ok = true;
    for (k, v) in pairs {
        match cx.value_of(v) {
            Some(t) => out.push((k.as_str().unwrap_or_default().to_owned(), t)),
            None => ok = false,
        }
    }
    ok.then_some(Some(out))
}

fn headers(cx: &mut CompileCx<'_>, duo: bool) -> Option<Vec<(String, Template)>> {
    let pairs = cx.get("headers").and_then(Node::as_map).unwrap_or_default();
    let mut out = Vec::new();
    let mut ok = true;
    for (k, v) in pairs {
        let name = k.as_str().unwrap_or_default();
        if rules::reserved_header(name, duo).is_some() {
            let why = if duo { "the integration signs every request with it" } else { "the HTTP layer sets it" };
            cx.error("reserved-header", k.span, format!("`{name}` is set by the integration"))
                .label(why)
                .help("remove this header");
            ok = false;
            continue;
        }
        match cx.template_of(v, false) {
            Some(t) => out.push((name.to_owned(), t)),
            None => ok = false,
        }
    }
    ok.then_some(out)
}

/// Duo takes the params of GET and DELETE in the query, and those of POST, PUT and PATCH in
/// the body; the other way round is refused before anything is sent, so say it now.
fn params_where_duo_wants_them(cx: &mut CompileCx<'_>, method: Option<&str>) {
    let Some(method) = method else { return };
    // Only the query side is checked here: a body on a GET or DELETE is refused for every
    // integration (`body-not-allowed`), so it is not reported twice.
    if rules::misplaced_params(method, cx.get("query").is_some(), false) == Some(rules::Misplaced::Query) {
        let span = cx.key_span("query");
        cx.error("query-not-allowed", span, format!("a Duo `{method}` takes its parameters in the body"))
            .label("Duo signs a POST, PUT or PATCH's parameters as its JSON body")
            .help("move these parameters under `body:`");
    }
}

/// One `extract:` entry.
#[derive(Debug)]
pub struct Extract {
    pub name: String,
    pub path: JsonPath,
    pub source: String,
    pub many: bool,
    pub optional: bool,
    pub default: Option<serde_json::Value>,
}

fn extract(cx: &mut CompileCx<'_>) -> Option<Vec<Extract>> {
    let node = cx.get("extract");
    extract_of(cx, node)
}

/// The entries of an `extract:` mapping, compiled.
pub(super) fn extract_of(cx: &mut CompileCx<'_>, node: Option<&Node>) -> Option<Vec<Extract>> {
    let pairs = node.and_then(Node::as_map).unwrap_or_default();
    let mut out = Vec::new();
    let mut ok = true;
    for (k, v) in pairs {
        let name = k.as_str().unwrap_or_default().to_owned();
        if RESERVED.contains(&name.as_str()) {
            let help = format!("read it as `nodes.{}.{name}`, or extract under another name", cx.id);
            cx.error("reserved-name", k.span, format!("`{name}` is already a result field of a REST call")).help(help);
            ok = false;
            continue;
        }
        let path_node = if v.as_map().is_some() { v.get("path") } else { Some(v) };
        let Some(path_node) = path_node else { continue };
        let source = path_node.as_str().unwrap_or_default().to_owned();
        // Before the parser: it recurses and backtracks without bound.
        if let Err(crossed) = super::jsonpath::scan(&source) {
            let span = jsonpath_span(path_node, crossed.at);
            cx.limit(crossed.limit, span, crossed.message, "extract the whole value and test it in a `switch`");
            ok = false;
            continue;
        }
        let path = match JsonPath::parse(&source) {
            Ok(p) => p,
            Err(e) => {
                let span = jsonpath_span(path_node, e.position());
                cx.error("bad-jsonpath", span, format!("invalid JSONPath `{source}`"))
                    .label(e.message().to_owned())
                    .help("JSONPath (RFC 9535) starts at `$`, e.g. `$.response[0].user_id`");
                ok = false;
                continue;
            }
        };
        let flag = |key: &str| v.get(key).and_then(Node::as_bool).unwrap_or(false);
        let default = v.get("default").filter(|_| v.as_map().is_some()).map(Node::to_json);
        out.push(Extract {
            name,
            path,
            source,
            many: flag("many"),
            optional: flag("optional") || default.is_some(),
            default,
        });
    }
    ok.then_some(out)
}

fn jsonpath_span(node: &Node, position: usize) -> Span {
    if node.span.start.line == node.span.end.line {
        // serde_json_path's position is the 0-based offset of the offending character.
        node.span.sub(flowcat_engine::yaml::text_offset(node) + position, 1)
    } else {
        node.span
    }
}

/// Failures a flow declares to be results.
#[derive(Debug, Default)]
pub struct Accept {
    pub status: Vec<u16>,
    pub code: Vec<u64>,
}

fn accept(cx: &mut CompileCx<'_>) -> Accept {
    let list = |key: &str| -> Vec<u64> {
        let items = cx.get("accept").and_then(|a| a.get(key)).and_then(Node::as_seq).unwrap_or_default();
        items.iter().filter_map(|n| n.as_number()?.as_u64()).collect()
    };
    Accept { status: list("status").into_iter().filter_map(|s| u16::try_from(s).ok()).collect(), code: list("code") }
}

/// A bounded repetition of the call.
#[derive(Debug)]
pub struct Poll {
    pub until: Template,
    pub interval: Duration,
    pub timeout: Duration,
}

fn poll(cx: &mut CompileCx<'_>) -> Option<Option<Poll>> {
    let Some(node) = cx.get("poll") else { return Some(None) };
    let until = cx.template_of(node.get("until")?, true)?;
    let d = |key: &str| node.get(key).and_then(Node::as_str).and_then(parse_duration);
    let (interval, timeout) = (d("interval")?, d("timeout")?);
    if interval.is_zero() || interval > timeout {
        let span = node.key_span("interval").unwrap_or(node.span);
        cx.error("bad-duration", span, "the poll interval must be above zero and at most the timeout")
            .help("for a Duo Push, `interval: 2s` and `timeout: 90s` work well");
        return None;
    }
    Some(Some(Poll { until, interval, timeout }))
}

/// A node's own retry settings; what it leaves out comes from the integration's policy.
#[derive(Clone, Copy, Debug, Default)]
pub struct RetryOverride {
    pub max_attempts: Option<u32>,
    pub initial: Option<Duration>,
    pub max: Option<Duration>,
}

impl RetryOverride {
    /// The integration's policy with this node's settings on top.
    pub fn over(&self, base: &crate::duo::RetryPolicy) -> crate::duo::RetryPolicy {
        let mut p = *base;
        if let Some(n) = self.max_attempts {
            p.max_attempts = n;
        }
        if let Some(d) = self.initial {
            p.initial = d;
        }
        if let Some(d) = self.max {
            p.max = d;
        }
        p
    }
}

fn retry(cx: &CompileCx<'_>) -> Option<RetryOverride> {
    let node = cx.get("retry")?;
    let d = |key: &str| node.get(key).and_then(Node::as_str).and_then(parse_duration);
    let max_attempts = node
        .get("max_attempts")
        .and_then(Node::as_number)
        .and_then(|n| n.as_u64())
        .map(|n| u32::try_from(n).unwrap_or(u32::MAX).clamp(1, 100));
    Some(RetryOverride { max_attempts, initial: d("initial"), max: d("max") })
}

fn duration(cx: &CompileCx<'_>, key: &str) -> Option<Duration> {
    cx.str(key).and_then(parse_duration)
}

/// The compiled `rest_call` node.
#[derive(Debug)]
pub struct RestCallExec {
    pub slot: String,
    pub method: String,
    /// What the call does: decides its retries and what a resumed run does with it.
    pub effect: Effect,
    pub path: Template,
    /// `path`'s route template (`/admin/v1/users/{user_id}`): what traces name, never the
    /// rendered path (`http::route::template`).
    pub route: std::sync::Arc<str>,
    pub query: Option<Vec<(String, ValueTemplate)>>,
    pub body: Option<Vec<(String, ValueTemplate)>>,
    pub headers: Vec<(String, Template)>,
    pub extract: Vec<Extract>,
    pub accept: Accept,
    pub poll: Option<Poll>,
    pub retry: Option<RetryOverride>,
    pub pages: bool,
    /// `secret: true`: every string it extracts is a secret of the run (`NodeCx::secret`).
    pub secret: bool,
    pub timeout: Duration,
    pub connect_timeout: Duration,
    /// For a write: how a resumed run finds out whether it happened.
    pub reconcile: Option<Reconcile>,
    /// The Duo permissions the call (and its reconcile read) needs, for a Duo call whose
    /// endpoint is described (`duo::api`).
    pub permissions: Vec<&'static str>,
}

impl NodeExec for RestCallExec {
    fn label(&self) -> String {
        let poll = if self.poll.is_some() { " (poll)" } else { "" };
        format!("{} {}{poll}", self.method, self.path.source)
    }

    fn describe(&self) -> serde_json::Value {
        let extract: serde_json::Map<String, serde_json::Value> =
            self.extract.iter().map(|e| (e.name.clone(), e.source.clone().into())).collect();
        serde_json::json!({
            "integration": self.slot,
            "method": self.method,
            "effect": self.effect,
            "path": self.path.source,
            "extract": extract,
            "accept": { "status": self.accept.status, "code": self.accept.code },
            "poll": self.poll.as_ref().map(|p| serde_json::json!({
                "until": p.until.source,
                "interval_ms": p.interval.as_millis() as u64,
                "timeout_ms": p.timeout.as_millis() as u64,
            })),
            "reconcile": self.reconcile.as_ref().map(Reconcile::describe),
        })
    }

    fn run<'a>(&'a self, cx: NodeCx<'a>) -> BoxFuture<'a, Result<NodeOutput, NodeError>> {
        Box::pin(async move { self.execute(&cx).await })
    }

    fn effect(&self) -> Effect {
        self.effect
    }

    fn reconciles(&self) -> bool {
        matches!(self.reconcile, Some(Reconcile::Read(_)))
    }

    fn preview<'a>(&'a self, cx: NodeCx<'a>) -> Result<serde_json::Value, NodeError> {
        self.render_plan(&cx)
    }

    fn template(&self) -> serde_json::Value {
        self.plan_template()
    }

    fn reconcile<'a>(&'a self, cx: NodeCx<'a>, _intent: &'a serde_json::Value) -> BoxFuture<'a, Reconciled> {
        Box::pin(async move { self.reconcile_read(&cx).await })
    }

    fn needs_attention(&self, intent: &serde_json::Value) -> String {
        self.attention(intent)
    }
}
