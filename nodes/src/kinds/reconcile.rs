//! `reconcile:` of a `rest_call` whose effect is a write: the read that tells whether the write
//! happened, for a resumed run that finds the write journaled as about to be sent and no answer
//! (its outcome unknown). Or `none: <why>` when no read can tell: the resumed run then stops for
//! a person, with what to check (`NodeExec::needs_attention`).
//!
//! Compile time checks that only a write has one, that it is a read (`GET`) through the node's
//! own integration, and that it gives the node the write's result fields (its `extract:` names),
//! so that the nodes after it read the same names whichever way the result came. Run time sends
//! the read, signed and retried as any read, and evaluates `done` on its answer.

use flowcat_engine::kind::{CompileCx, Effect, Lint, Reconciled};
use flowcat_engine::render::truthy;
use flowcat_engine::run::{Detail, NodeCx, NodeError, NodeOutput};
use flowcat_engine::shape::{Field, Shape};
use flowcat_engine::template::{Template, ValueTemplate};
use flowcat_engine::yaml::{Node, Span};
use serde_json::{Map, Value, json};

use super::rest_call::{EXTRACT_SHAPES, Extract, RestCallExec, check_path, extract_of, values_of};
use crate::bind::Bound;
use crate::duo::validate::{self, Checked, Request};
use crate::http::{self, Call};

pub(super) const FIELDS: &[Field] = &[
    Field::optional("method", Shape::Enum(&["GET"]), "the read's method: `GET`, the only one (the default)"),
    Field::optional(
        "path",
        Shape::Template,
        "the read's path, through the node's integration, e.g. `/admin/v1/phones`; each value is one segment",
    ),
    Field::optional("query", Shape::Dict(&Shape::Value), "the read's query parameters: name → value or template"),
    Field::optional(
        "extract",
        Shape::Map(&Shape::OneOf(EXTRACT_SHAPES)),
        "the node's result fields taken from the read's answer: the same names as the write's `extract`",
    ),
    Field::optional(
        "done",
        Shape::Condition,
        "whether the write happened, from the read's answer as `self.<field>` (`self.body`, the extracted names)",
    ),
    Field::optional(
        "none",
        Shape::Str,
        "instead of a read: why no read can tell whether the write happened; a resumed run then stops for a person",
    ),
];

/// The keys that make a read, as opposed to `none`.
const READ_KEYS: &[&str] = &["method", "path", "query", "extract", "done"];

/// A write's `reconcile:`.
#[derive(Debug)]
pub enum Reconcile {
    /// A read that tells whether the write happened.
    Read(Box<ReadBack>),
    /// No read can tell; why, in the author's words.
    None(String),
}

/// The read of a `reconcile:`.
#[derive(Debug)]
pub struct ReadBack {
    pub path: Template,
    pub query: Option<Vec<(String, ValueTemplate)>>,
    pub extract: Vec<Extract>,
    /// Reads the answer as `self.…`.
    pub done: Template,
}

/// Compiles `reconcile:`. `Some(None)` when the node has none; `None` when it reported an error.
pub(super) fn compile(
    cx: &mut CompileCx<'_>,
    slot: Option<&(String, String)>,
    effect: Effect,
    write: Option<&[Extract]>,
    duo: &mut Checked,
) -> Option<Option<Reconcile>> {
    let Some(node) = cx.get("reconcile") else { return Some(None) };
    let at = cx.key_span("reconcile");
    // Not a mapping: the shape check said so.
    node.as_map()?;
    if effect != Effect::Write {
        cx.error("bad-reconcile", at, format!("`reconcile:` on a call whose effect is `{}`", effect_name(effect)))
            .label("only a write is reconciled")
            .help("a resumed run sends a read or an idempotent call again, without asking: remove `reconcile:`");
        return None;
    }
    if let Some(none) = node.get("none") {
        return none_because(cx, node, none).map(Some);
    }
    let (Some(path_node), Some(done_node)) = (node.get("path"), node.get("done")) else {
        let missing: Vec<&str> = ["path", "done"].into_iter().filter(|k| node.get(k).is_none()).collect();
        cx.error("bad-reconcile", at, format!("`reconcile:` is missing `{}`", missing.join("` and `")))
            .label("a read that tells whether the write happened needs a `path` and a `done` condition")
            .help("add them, or write `none: <why>` when no read can tell whether the write happened");
        return None;
    };
    let path = cx.template_of(path_node, false);
    if let (Some(path), Some(slot)) = (&path, slot) {
        check_path(cx, path, slot);
        let request = Request {
            kind: &slot.1,
            method: "GET",
            method_span: at,
            path,
            query: node.get("query"),
            body: None,
            extract: node.get("extract"),
            params_span: node.key_span("query").unwrap_or(path.span),
        };
        validate::check(cx, &request, duo);
    }
    let query = values_of(cx, node.get("query"));
    let extract = extract_of(cx, node.get("extract"));
    let done = cx.template_of(done_node, true);
    let same = match (&extract, write) {
        (Some(read), Some(write)) => same_fields(cx, node, at, read, write),
        _ => true,
    };
    let read = ReadBack { path: path?, query: query?, extract: extract?, done: done? };
    same.then_some(Some(Reconcile::Read(Box::new(read))))
}

/// `none: <why>`, alone.
fn none_because(cx: &mut CompileCx<'_>, node: &Node, none: &Node) -> Option<Reconcile> {
    if let Some(key) = READ_KEYS.iter().find(|k| node.get(k).is_some()) {
        let span = node.key_span(key).unwrap_or(node.span);
        cx.error("bad-reconcile", span, "`reconcile:` has both a read and `none`")
            .label("`none` says that no read can tell whether the write happened")
            .help("keep the read and remove `none`, or keep only `none: <why>`");
        return None;
    }
    let why = none.as_str().unwrap_or_default().trim();
    if why.is_empty() {
        cx.error("bad-reconcile", none.span, "`reconcile: { none }` does not say why")
            .label("expected the reason no read can tell whether the write happened")
            .help("the person who resumes an interrupted run reads it, e.g. `none: Duo keeps no record of an activation SMS`");
        return None;
    }
    Some(Reconcile::None(why.to_owned()))
}

/// The read must give the node the write's result fields, no more and no fewer: the nodes after
/// it read them whichever way the result came.
fn same_fields(cx: &mut CompileCx<'_>, node: &Node, at: Span, read: &[Extract], write: &[Extract]) -> bool {
    let extract = node.get("extract");
    let mut same = true;
    for w in write.iter().filter(|w| !read.iter().any(|r| r.name == w.name)) {
        let span = node.key_span("extract").unwrap_or(at);
        cx.error("bad-reconcile", span, format!("`reconcile:` does not extract `{}`, which the write extracts", w.name))
            .label("a reconciled write gives later nodes the write's result fields")
            .help(format!(
                "add `{}:` under `reconcile.extract:`, a JSONPath into the read's answer (`optional: true` if it may be missing)",
                w.name
            ));
        same = false;
    }
    for r in read.iter().filter(|r| !write.iter().any(|w| w.name == r.name)) {
        let span = extract.and_then(|e| e.key_span(&r.name)).unwrap_or(at);
        cx.error(
            "bad-reconcile",
            span,
            format!("`reconcile.extract` names `{}`, which the write does not extract", r.name),
        )
        .label("later nodes read only the write's result fields")
        .help("extract the write's names; `done` may read the whole answer as `self.body`");
        same = false;
    }
    same
}

/// The warning for a write that declares no `reconcile:`. `literal` is the path's text before
/// its first template.
pub(super) fn without(cx: &CompileCx<'_>, method: &str, literal: &str) -> Lint {
    let span = cx.get("effect").or_else(|| cx.get("method")).map_or(cx.node.span, |n| n.span);
    let help = if crate::duo::only_reads(method, literal) {
        format!("`{method} {literal}` only asks Duo: say `effect: read`")
    } else {
        "add `reconcile:` with a read that tells whether it happened, or `reconcile: { none: <why> }` when none can (docs/flow-format.md, \"reconcile\")".to_owned()
    };
    Lint {
        code: "write-without-reconcile",
        span,
        message: format!("`{}` writes, and declares no `reconcile:`", cx.id),
        label: Some("a write: sent twice, it may be done twice".to_owned()),
        help: Some(help),
    }
}

fn effect_name(effect: Effect) -> &'static str {
    match effect {
        Effect::Local => "local",
        Effect::Read => "read",
        Effect::Idempotent => "idempotent",
        Effect::Write => "write",
        Effect::Composite => "composite",
    }
}

impl Reconcile {
    /// For `flowcat graph --format json`.
    pub(super) fn describe(&self) -> Value {
        match self {
            Reconcile::None(why) => json!({ "none": why }),
            Reconcile::Read(r) => json!({ "method": "GET", "path": r.path.source, "done": r.done.source }),
        }
    }
}

impl RestCallExec {
    /// Finds out with the node's `reconcile:` read whether its write happened: `Done` with the
    /// node's result (the read's `status`, `headers` and `body`, and the extracted names, as
    /// if the write's answer had come), `NotDone`, `Undeclared` without a read, or `Failed`
    /// when the read failed (the outcome is still unknown).
    pub async fn reconcile_read(&self, cx: &NodeCx<'_>) -> Reconciled {
        let Some(Reconcile::Read(read)) = &self.reconcile else { return Reconciled::Undeclared };
        match self.read_back(cx, read).await {
            Ok(Some(result)) => Reconciled::Done(NodeOutput::value(result)),
            Ok(None) => Reconciled::NotDone,
            Err(e) => {
                let message = format!("the read that tells whether the write happened failed: {}", e.message);
                Reconciled::Failed(NodeError { message, ..e })
            }
        }
    }

    /// Sends the read; its result when `done` holds.
    async fn read_back(&self, cx: &NodeCx<'_>, read: &ReadBack) -> Result<Option<Value>, NodeError> {
        cx.count_attempts();
        let bound: &Bound = cx.binding(&self.slot)?;
        let mut call = Call::new("GET", cx.render_path(&read.path)?);
        call.route = Some(crate::http::route::template(&read.path.source).into());
        call.query = super::rest_run::query(cx, read.query.iter().flatten())?;
        call.timeout = self.timeout;
        call.connect_timeout = self.connect_timeout;
        call.retry = self.retry.map(|r| r.over(&bound.integration.retry));
        call.deadline = cx.deadline();
        let mut sent = http::send(&bound.clients, &bound.integration, &call).await;
        let attempts = match &mut sent {
            Ok(r) => std::mem::take(&mut r.attempts),
            Err(e) => e.attempts().to_vec(),
        };
        for _ in &attempts {
            cx.attempt();
        }
        let (result, done) = match answer(cx, read, sent, bound.integration.kind.is_duo()) {
            Ok(answer) => answer,
            Err(e) => {
                cx.set_detail_lazy(detail(attempts, None));
                return Err(e);
            }
        };
        cx.set_detail_lazy(detail(attempts, Some(done)));
        Ok(done.then_some(result))
    }
}

impl RestCallExec {
    /// What a person needs when the write journaled as `intent` (a redacted request record:
    /// `method`, `url`, `headers`, `body`) has an unknown outcome nothing could settle: what was
    /// sent, why flowcat cannot tell, and where to look in the Duo Admin Panel
    /// ([`crate::duo::rules::check_by_hand`]).
    pub(super) fn attention(&self, intent: &Value) -> String {
        let method = intent["method"].as_str().unwrap_or(&self.method).to_ascii_uppercase();
        let url = intent["url"].as_str().and_then(|u| reqwest::Url::parse(u).ok());
        let path = url.as_ref().map_or_else(|| self.path.source.clone(), |u| u.path().to_owned());
        let to = url.as_ref().and_then(|u| u.host_str()).map(|h| format!(" to {h}")).unwrap_or_default();
        let params = params(url.as_ref(), &intent["body"]);
        let listed: Vec<String> = params.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let sent = if listed.is_empty() {
            format!("{method} {path}")
        } else {
            format!("{method} {path} with {}", listed.join(", "))
        };
        let why = match &self.reconcile {
            Some(Reconcile::None(why)) => format!("no read can tell: {why}"),
            Some(Reconcile::Read(_)) => "its `reconcile:` read did not answer".to_owned(),
            None => "the node declares no `reconcile:` read".to_owned(),
        };
        let check = crate::duo::rules::check_by_hand(&method, &path, &params)
            .unwrap_or_else(|| format!("whether `{method} {path}` took effect, on the service it was sent{to}."));
        format!(
            "`{method} {path}` was journaled as about to be sent{to} when the run stopped, and no answer was recorded: whether it took effect is unknown, and flowcat cannot find out ({why}).\nRequest: {sent}\nCheck: {check}\nThen resume the run, with `--resend` if it did not happen, or abandon it."
        )
    }
}

/// A request's parameters as sent: the query's, then the body's (a JSON object, or a form).
fn params(url: Option<&reqwest::Url>, body: &Value) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = url.into_iter().flat_map(|u| u.query_pairs().into_owned()).collect();
    match body {
        Value::Object(m) => {
            out.extend(m.iter().map(|(k, v)| (k.clone(), v.as_str().map_or_else(|| v.to_string(), str::to_owned))))
        }
        Value::String(form) if !form.is_empty() => {
            if let Ok(u) = reqwest::Url::parse(&format!("http://form/?{form}")) {
                out.extend(u.query_pairs().into_owned());
            }
        }
        _ => {}
    }
    out
}

/// The read's result as the node's, and whether `done` holds on it.
fn answer(
    cx: &NodeCx<'_>,
    read: &ReadBack,
    sent: Result<http::Reply, http::CallError>,
    duo: bool,
) -> Result<(Value, bool), NodeError> {
    let reply = sent.map_err(super::rest_run::call_error)?;
    if let Some(f) = super::rest_run::failure(&reply, duo) {
        return Err(f.to_error());
    }
    let mut result = Map::new();
    result.insert("status".into(), json!(reply.status));
    result.insert("headers".into(), json!(reply.headers));
    for e in &read.extract {
        result.insert(e.name.clone(), super::rest_run::extract(e, &reply.body, false)?);
    }
    result.insert("body".into(), reply.body);
    let result = Value::Object(result);
    let done = truthy(&cx.render_with_self(&read.done, &result)?);
    Ok((result, done))
}

/// The read's attempts (redacted by the HTTP layer) and its verdict, for the run record.
fn detail(attempts: Vec<http::Attempt>, done: Option<bool>) -> Detail {
    Detail::typed(ReadDetail { reconcile: Read { attempts, done } })
}

/// A reconciling read's detail: `{"reconcile": {"attempts": [...], "done": …}}`, keys sorted.
#[derive(serde::Serialize)]
struct ReadDetail {
    reconcile: Read,
}

#[derive(serde::Serialize)]
struct Read {
    attempts: Vec<http::Attempt>,
    done: Option<bool>,
}
