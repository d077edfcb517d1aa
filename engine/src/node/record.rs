//! The run record: what happened, node by node, as plain serialisable values.
//!
//! Every field is data that can be written to a journal as it is, so that a later executor can
//! resume a crashed run from the nodes that finished.

use std::sync::{Arc, OnceLock};

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

/// Kind-specific detail of a node (requests and responses). A node kind gives it as its own
/// typed data ([`Detail::typed`]), which is written as JSON straight from that data each time
/// the record is written (its journal entry, its run's final record, its caller's): building
/// a `serde_json::Value` of every request and answer first (a copy of every body, then freed)
/// was a measurable part of a REST node's cost. A `Value` is made only when one is asked for
/// ([`Detail::get`], comparing, `Debug`), once. The data must write its keys in sorted order,
/// as a `Value` would (serde_json sorts an object's keys): a record reads the same whichever
/// form it was written from.
#[derive(Clone)]
pub struct Detail(Arc<DetailInner>);

struct DetailInner {
    data: Option<Box<dyn erased_serde::Serialize + Send + Sync>>,
    /// The form a journal stores beside the node's result ([`Detail::typed_with_lean`]).
    lean: Option<Box<dyn erased_serde::Serialize + Send + Sync>>,
    built: OnceLock<Value>,
}

impl Detail {
    /// A detail written from `data` (whose keys serialise in sorted order).
    pub fn typed(data: impl Serialize + Send + Sync + 'static) -> Self {
        Detail(Arc::new(DetailInner { data: Some(Box::new(data)), lean: None, built: OnceLock::new() }))
    }

    /// A detail written from `data`, which a journal stores as `lean` beside the node's result:
    /// `data` with a part that equals some of the result's fields left out and named instead,
    /// under the key [`RESULT`](crate::journal::RESULT) of the top-level object, as
    /// `{"at": "<JSON pointer of the part>", "fields": ["<result field>", ...]}`. Reading the
    /// journal puts the part back from the result (`journal::resolve_finished`), so the stored
    /// record reads exactly as `data` writes it. A REST call's last answer is its result's
    /// `body`, `headers` and `status`: the largest repetition a journal held. The key is
    /// reserved: a kind's own detail never has a top-level `$result` (a stored detail with one
    /// that does not name a part of the result reads as damaged).
    pub fn typed_with_lean(
        data: impl Serialize + Send + Sync + 'static,
        lean: impl Serialize + Send + Sync + 'static,
    ) -> Self {
        Detail(Arc::new(DetailInner { data: Some(Box::new(data)), lean: Some(Box::new(lean)), built: OnceLock::new() }))
    }

    pub fn value(v: Value) -> Self {
        Detail(Arc::new(DetailInner { data: None, lean: None, built: OnceLock::from(v) }))
    }

    /// The detail as a journal stores it beside the node's result: its lean form when it has
    /// one, else as it serialises.
    pub fn journaled(&self) -> JournaledDetail<'_> {
        JournaledDetail(self)
    }

    pub fn get(&self) -> Value {
        self.built().clone()
    }

    /// The detail as a `Value`, made once.
    fn built(&self) -> &Value {
        self.0.built.get_or_init(|| match &self.0.data {
            Some(data) => serde_json::to_value(data).unwrap_or(Value::Null),
            None => Value::Null,
        })
    }
}

impl std::fmt::Debug for Detail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.built())
    }
}

impl PartialEq for Detail {
    fn eq(&self, other: &Self) -> bool {
        self.built() == other.built()
    }
}

impl Serialize for Detail {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match (self.0.built.get(), &self.0.data) {
            (Some(value), _) => value.serialize(s),
            (None, Some(data)) => erased_serde::serialize(data.as_ref(), s),
            (None, None) => Value::Null.serialize(s),
        }
    }
}

/// [`Detail::journaled`].
pub struct JournaledDetail<'a>(&'a Detail);

impl std::fmt::Debug for JournaledDetail<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JournaledDetail").field("lean", &self.0.0.lean.is_some()).finish_non_exhaustive()
    }
}

impl Serialize for JournaledDetail<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match &self.0.0.lean {
            Some(lean) => erased_serde::serialize(lean.as_ref(), s),
            None => self.0.serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for Detail {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Value::deserialize(d).map(Detail::value)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunStatus {
    Succeeded,
    Failed,
    /// Stopped before it finished (Ctrl-C, SIGTERM): `flowcat resume` continues it.
    Interrupted,
    /// Stopped on a write whose outcome is unknown and could not be reconciled: a person
    /// checks Duo before it goes on.
    #[serde(rename = "needs_attention")]
    NeedsAttention,
}

impl RunStatus {
    /// The status as the run record spells it (`needs_attention`).
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Succeeded => "succeeded",
            RunStatus::Failed => "failed",
            RunStatus::Interrupted => "interrupted",
            RunStatus::NeedsAttention => "needs_attention",
        }
    }

    /// Whether the run can go on later (`flowcat resume`).
    pub fn is_resumable(self) -> bool {
        matches!(self, RunStatus::Interrupted | RunStatus::NeedsAttention)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NodeStatus {
    /// Never started: the run ended first.
    Pending,
    Succeeded,
    /// Failed; with `on_error: continue` the run went on.
    Failed,
    Skipped,
    /// Was running when another node failed or the run was stopped; its work was dropped.
    Cancelled,
    /// A write whose outcome is unknown: it was sent (or about to be) when the run stopped.
    Unknown,
    /// Plan mode (`RunRequest::plan`): not run. A write, with what it would send (or its
    /// template), a node that waits for such a write's result, or a subflow with planned nodes
    /// inside; its `detail` says which (docs/architecture.md, "Plan mode").
    Planned,
}

/// Why a run failed: the node, and the error it reported.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunFailure {
    pub node: String,
    pub code: String,
    pub message: String,
}

/// One node's part of a run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NodeRecord {
    pub id: String,
    pub kind: String,
    pub status: NodeStatus,
    /// Why it was skipped.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Unix time in milliseconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub started_at: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ended_at: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<f64>,
    pub attempts: u32,
    /// What later nodes read as `nodes.<id>.…` (shared with the run, not copied).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result: Option<Arc<Value>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<NodeError>,
    /// Kind-specific detail, e.g. the requests sent and the responses received (redacted).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<Detail>,
    /// A subflow's own run, nested under the node that called it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subflow: Option<Box<RunRecord>>,
    /// A node that runs a subflow per item of a list: the runs of its first
    /// [`MAX_ITEM_RECORDS`] items, by index (the others' results are in `result`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub items: Vec<ItemRecord>,
}

/// How many items' own run records a node keeps: enough to see what happened, bounded so that
/// a list of thousands of items does not hold thousands of records (each with its requests).
pub const MAX_ITEM_RECORDS: usize = 100;

/// One item's subflow run, nested under the node that ran it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ItemRecord {
    /// The item's position in the list, from 0.
    pub index: usize,
    pub record: RunRecord,
}

/// A whole run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    pub flow: String,
    /// The run's id in the journal; none for a run without one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    pub status: RunStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<RunFailure>,
    pub inputs: Map<String, Value>,
    pub vars: Map<String, Value>,
    pub outputs: Map<String, Value>,
    pub started_at: u64,
    pub ended_at: u64,
    pub nodes: Vec<NodeRecord>,
}

impl RunRecord {
    pub fn node(&self, id: &str) -> Option<&NodeRecord> {
        self.nodes.iter().find(|n| n.id == id)
    }
}

/// A node's failure: a stable code, a message for people, optional data.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, thiserror::Error)]
#[error("{message}")]
pub struct NodeError {
    /// e.g. `duo_40003`, `http_500`, `timeout`, `template`, or a `fail` node's code.
    pub code: String,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data: Option<Value>,
}

impl NodeError {
    pub fn new(code: impl Into<String>, message: impl Into<String>) -> Self {
        NodeError { code: code.into(), message: message.into(), data: None }
    }

    pub fn with_data(mut self, data: Value) -> Self {
        self.data = Some(data);
        self
    }

    /// The value later nodes read as `nodes.<id>` after a failure under `on_error: continue`.
    pub fn as_result(&self) -> Value {
        serde_json::json!({ "error": { "code": self.code, "message": self.message, "data": self.data } })
    }
}

impl From<crate::render::RenderError> for NodeError {
    fn from(e: crate::render::RenderError) -> Self {
        NodeError::new("template", e.to_string())
    }
}

pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or_default()
}
