//! [`OtlpLayer`]: the `tracing` spans of runs, subflows, nodes and HTTP attempts as OTLP spans.
//!
//! Only the spans listed in [`Kind::of`] are exported, and of each only the fields its kind
//! lists ([`Kind::attribute`]), renamed to OpenTelemetry's names; any other field (a message, an
//! error text that may quote an input) is never read. A span's parent is its nearest exported
//! ancestor, so spans in between (a request's, the engine's `run` inside the service's) are
//! skipped over and a subflow's nodes nest under the node that called it.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{SystemTime, UNIX_EPOCH};

use tokio::sync::mpsc;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Metadata, Subscriber};
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;

use super::Stats;

/// The spans exported, by what opens them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A run: the service's `run` span (with the journal's run id), or the engine's when no
    /// exported span encloses it.
    Run,
    /// A subflow's run (also each item of a `for_each`), under the node that called it.
    Subflow,
    /// A node of a flow.
    Node,
    /// One HTTP attempt of a `rest_call` (or of its `reconcile:` read).
    Request,
}

impl Kind {
    /// The kind of a span, from its target and name; `None`: not exported.
    pub fn of(meta: &Metadata<'_>) -> Option<Kind> {
        let target = meta.target();
        let crate_name = target.split("::").next().unwrap_or_default();
        match (crate_name, meta.name()) {
            ("flowcat_serve" | "flowcat_engine", "run") => Some(Kind::Run),
            ("flowcat_engine", "subflow") => Some(Kind::Subflow),
            ("flowcat_engine", "node") => Some(Kind::Node),
            ("flowcat_nodes", "request") if target == "flowcat_nodes::http" => Some(Kind::Request),
            _ => None,
        }
    }

    /// The OpenTelemetry attribute a field of this kind's span becomes; `None`: not exported.
    fn attribute(self, field: &str) -> Option<&'static str> {
        Some(match (self, field) {
            (Kind::Run | Kind::Subflow, "flow") => "flowcat.flow.id",
            (Kind::Run, "run_id") => "flowcat.run.id",
            (Kind::Run | Kind::Subflow, "status") => "flowcat.run.status",
            (Kind::Subflow, "depth") => "flowcat.subflow.depth",
            (Kind::Node, "id") => "flowcat.node.id",
            (Kind::Node, "kind") => "flowcat.node.kind",
            (Kind::Node, "status") => "flowcat.node.status",
            (Kind::Node, "attempts") => "flowcat.node.attempts",
            (Kind::Node, "code") => "flowcat.node.error_code",
            (Kind::Request, "method") => "http.request.method",
            (Kind::Request, "route") => "url.template",
            (Kind::Request, "attempt") => "flowcat.http.attempt",
            (Kind::Request, "integration") => "flowcat.integration",
            (Kind::Request, "status_code") => "http.response.status_code",
            (Kind::Request, "error") => "error.type",
            _ => return None,
        })
    }
}

/// An attribute's value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Str(String),
    Int(i64),
    Bool(bool),
}

/// One span, as it is exported.
#[derive(Debug, Clone)]
pub struct SpanData {
    pub kind: Kind,
    pub trace_id: [u8; 16],
    pub span_id: [u8; 8],
    pub parent_id: Option<[u8; 8]>,
    pub start_ns: u64,
    pub end_ns: u64,
    /// OpenTelemetry attribute names and values, in the order they were set (one per name).
    pub attributes: Vec<(&'static str, Value)>,
}

impl SpanData {
    /// An attribute's value.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.attributes.iter().find(|(k, _)| *k == key).map(|(_, v)| v)
    }

    fn str(&self, key: &str) -> Option<&str> {
        match self.get(key) {
            Some(Value::Str(s)) => Some(s),
            _ => None,
        }
    }

    fn int(&self, key: &str) -> Option<i64> {
        match self.get(key) {
            Some(Value::Int(n)) => Some(*n),
            _ => None,
        }
    }

    /// The span's name: `run FLOW`, `subflow FLOW`, `node ID`, or `METHOD ROUTE` for an HTTP
    /// attempt (OpenTelemetry's convention for HTTP client spans).
    pub fn name(&self) -> String {
        match self.kind {
            Kind::Run => format!("run {}", self.str("flowcat.flow.id").unwrap_or_default()),
            Kind::Subflow => format!("subflow {}", self.str("flowcat.flow.id").unwrap_or_default()),
            Kind::Node => format!("node {}", self.str("flowcat.node.id").unwrap_or_default()),
            Kind::Request => {
                let method = self.str("http.request.method").unwrap_or("HTTP");
                match self.str("url.template") {
                    Some(route) => format!("{method} {route}"),
                    None => method.to_owned(),
                }
            }
        }
    }

    /// The span's status: `Some(message)` when it is an error (a run or node that did not
    /// succeed, an HTTP attempt answered 4xx or 5xx or without an answer).
    pub fn error(&self) -> Option<String> {
        match self.kind {
            Kind::Run | Kind::Subflow => {
                self.str("flowcat.run.status").filter(|s| *s != "succeeded").map(str::to_owned)
            }
            Kind::Node => match self.str("flowcat.node.status") {
                Some(s @ ("failed" | "unknown")) => {
                    Some(self.str("flowcat.node.error_code").map_or_else(|| s.to_owned(), str::to_owned))
                }
                _ => None,
            },
            Kind::Request => match (self.int("http.response.status_code"), self.str("error.type")) {
                (_, Some(e)) => Some(e.to_owned()),
                (Some(s), None) if s >= 400 => Some(s.to_string()),
                _ => None,
            },
        }
    }
}

/// Reads the listed fields of a span into its attributes.
struct Fields<'a> {
    span: &'a mut SpanData,
}

impl Fields<'_> {
    fn set(&mut self, field: &Field, value: Value) {
        let Some(key) = self.span.kind.attribute(field.name()) else { return };
        let value = match value {
            // Bounded: an attribute is a name, an id or a status, never a document.
            Value::Str(mut s) if s.len() > MAX_VALUE => {
                let mut end = MAX_VALUE;
                while !s.is_char_boundary(end) {
                    end -= 1;
                }
                s.truncate(end);
                Value::Str(s)
            }
            v => v,
        };
        match self.span.attributes.iter_mut().find(|(k, _)| *k == key) {
            Some((_, v)) => *v = value,
            None => self.span.attributes.push((key, value)),
        }
    }
}

/// The longest attribute value kept.
const MAX_VALUE: usize = 256;

impl Visit for Fields<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.set(field, Value::Str(value.to_owned()));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.set(field, Value::Int(value));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.set(field, Value::Int(i64::try_from(value).unwrap_or(i64::MAX)));
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.set(field, Value::Bool(value));
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        // `%value` fields (ids) arrive here as Display wrapped in Debug; only listed ones are kept.
        if self.span.kind.attribute(field.name()).is_some() {
            self.set(field, Value::Str(format!("{value:?}")));
        }
    }
}

/// The layer: spans in, OTLP spans out to the exporter's bounded queue.
#[derive(Debug)]
pub struct OtlpLayer {
    queue: mpsc::Sender<SpanData>,
    stats: Arc<Stats>,
}

impl OtlpLayer {
    pub(super) fn new(queue: mpsc::Sender<SpanData>, stats: Arc<Stats>) -> OtlpLayer {
        OtlpLayer { queue, stats }
    }
}

fn now_ns() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// A random id that is not all zeroes (the OTLP spec's invalid id).
fn random_id<const N: usize>() -> [u8; N] {
    loop {
        let mut id = [0u8; N];
        for chunk in id.chunks_mut(8) {
            let bytes = fastrand::u64(..).to_le_bytes();
            chunk.copy_from_slice(&bytes[..chunk.len()]);
        }
        if id.iter().any(|b| *b != 0) {
            return id;
        }
    }
}

impl<S> tracing_subscriber::Layer<S> for OtlpLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let Some(kind) = Kind::of(attrs.metadata()) else { return };
        let Some(span) = ctx.span(id) else { return };
        // The nearest exported ancestor.
        let parent =
            span.scope().skip(1).find_map(|s| s.extensions().get::<SpanData>().map(|p| (p.trace_id, p.span_id)));
        if kind == Kind::Run && span.metadata().target().starts_with("flowcat_engine") && parent.is_some() {
            // The engine's run inside the service's run span: one run, one span.
            return;
        }
        let (trace_id, parent_id) = match parent {
            Some((trace, parent)) => (trace, Some(parent)),
            None => (random_id(), None),
        };
        let mut data = SpanData {
            kind,
            trace_id,
            span_id: random_id(),
            parent_id,
            start_ns: now_ns(),
            end_ns: 0,
            attributes: Vec::new(),
        };
        attrs.record(&mut Fields { span: &mut data });
        span.extensions_mut().insert(data);
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut ext = span.extensions_mut();
        if let Some(data) = ext.get_mut::<SpanData>() {
            values.record(&mut Fields { span: data });
        }
    }

    fn on_close(&self, id: Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(&id) else { return };
        let Some(mut data) = span.extensions_mut().remove::<SpanData>() else { return };
        data.end_ns = now_ns().max(data.start_ns);
        // Never waits: a full queue (a collector slower than the runs) drops the span.
        if self.queue.try_send(data).is_err() {
            self.stats.dropped_full.fetch_add(1, Ordering::Relaxed);
        }
    }
}
