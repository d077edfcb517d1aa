//! What a node sees while it runs: the values it may read, its bound integrations, a way to
//! run a subflow, and a place to record attempts and detail.

use std::any::Any;
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use serde_json::{Map, Value};

use super::log::RunLog;
use super::record::{NodeError, RunRecord};
use super::{Binding, Event, Subflows};
use crate::render::{self, Escape, Values};
use crate::template::{Template, ValueTemplate};

/// A boxed future: node kinds are trait objects, so their `run` returns one.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What a node produced.
#[derive(Debug, Default)]
pub struct NodeOutput {
    /// Its result: later nodes read `nodes.<id>.<field>` from this object.
    pub value: Value,
    /// For branching nodes: the branch taken.
    pub branch: Option<String>,
}

impl NodeOutput {
    pub fn value(value: Value) -> Self {
        NodeOutput { value, branch: None }
    }
}

/// The values templates read during a run: inputs, vars, the results of finished nodes, and
/// for a poll's `until` the latest result as `self`.
#[derive(Clone, Debug, Default)]
pub struct Env {
    pub inputs: Arc<Map<String, Value>>,
    pub vars: Arc<Map<String, Value>>,
    pub nodes: Vec<(Arc<str>, Arc<Value>)>,
}

impl Values for Env {
    fn lookup(&self, path: &[String]) -> Option<&Value> {
        let (root, rest) = path.split_first()?;
        let (name, rest) = rest.split_first()?;
        let top = match root.as_str() {
            "inputs" => self.inputs.get(name)?,
            "vars" => self.vars.get(name)?,
            "nodes" => self.nodes.iter().find(|(id, _)| &**id == name.as_str()).map(|(_, v)| &**v)?,
            _ => return None,
        };
        render::walk(top, rest)
    }
}

/// `Env` plus `self`.
struct WithSelf<'a> {
    env: &'a Env,
    this: &'a Value,
}

impl Values for WithSelf<'_> {
    fn lookup(&self, path: &[String]) -> Option<&Value> {
        match path.split_first() {
            Some((root, rest)) if root == "self" => render::walk(self.this, rest),
            _ => self.env.lookup(path),
        }
    }
}

/// `Env` plus one item of a list and its index.
struct WithItem<'a> {
    env: &'a Env,
    item: &'a Value,
    index: &'a Value,
}

impl Values for WithItem<'_> {
    fn lookup(&self, path: &[String]) -> Option<&Value> {
        match path.split_first() {
            Some((root, rest)) if root == "item" => render::walk(self.item, rest),
            Some((root, rest)) if root == "index" && rest.is_empty() => Some(self.index),
            _ => self.env.lookup(path),
        }
    }
}

/// What a node records as it runs, read by the executor when the node ends.
#[derive(Debug, Default)]
pub(crate) struct Trace {
    /// `None`: the node did not count (it ran once).
    pub attempts: Option<u32>,
    pub detail: Option<super::record::Detail>,
    pub subflow: Option<RunRecord>,
    /// A node running a subflow per item: the items' runs kept for the record.
    pub items: Vec<super::record::ItemRecord>,
    /// The write the node said it is about to send (redacted).
    pub intent: Option<Value>,
    /// The node is parked, waiting for a signal or for its first request's rate-limit token:
    /// nothing is in flight, so a drain (Ctrl-C) need not wait for it.
    pub parked: bool,
    /// The scheduler's bell, rung when the node parks.
    pub parks: Option<Arc<tokio::sync::Notify>>,
}

/// Marks a node parked while it lives.
struct Parked<'t>(&'t Mutex<Trace>);

impl<'t> Parked<'t> {
    fn new(trace: &'t Mutex<Trace>) -> Self {
        if let Ok(mut t) = trace.lock() {
            t.parked = true;
            if let Some(bell) = &t.parks {
                bell.notify_one();
            }
        }
        Parked(trace)
    }
}

impl Drop for Parked<'_> {
    fn drop(&mut self) {
        if let Ok(mut t) = self.0.lock() {
            t.parked = false;
        }
    }
}

/// The context of one running node.
pub struct NodeCx<'a> {
    pub id: &'a str,
    pub(crate) env: Env,
    pub(crate) bindings: &'a HashMap<String, Arc<Binding>>,
    /// Runs subflows and receives events: the scheduler.
    pub(crate) sub: &'a dyn Subflows,
    pub(crate) depth: usize,
    pub(crate) path: Arc<[String]>,
    pub(crate) trace: Arc<Mutex<Trace>>,
    /// The run's journal, when it has one.
    pub(crate) journal: Option<Arc<dyn RunLog>>,
    /// When the node first started, in an earlier process (resume).
    pub(crate) first_started: Option<u64>,
    /// When the whole run must have ended.
    pub(crate) deadline: Option<tokio::time::Instant>,
    /// Plan mode: [`NodeCx::intent`] refuses, so no write is sent even by a node the scheduler
    /// did not know to be one.
    pub(crate) plan: bool,
}

impl std::fmt::Debug for NodeCx<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeCx").field("id", &self.id).field("depth", &self.depth).finish_non_exhaustive()
    }
}

impl<'a> NodeCx<'a> {
    /// The node's place in the run: the ids of the subflow nodes it runs inside, then its own
    /// (a `for_each` item's node as `node[i]`); see [`crate::journal::path_key`].
    pub fn path(&self) -> &[String] {
        &self.path
    }

    /// Takes every string of `value` as a secret of the run (credentials received for the
    /// caller, e.g. bypass codes): from now on it is redacted wherever the run is recorded —
    /// journal, record, logs — and only the caller's outputs keep it (`secrets.rs`).
    pub fn secret(&self, value: &Value) {
        if let Some(secrets) = self.sub.secrets() {
            secrets.add(value);
        }
    }

    pub fn render(&self, t: &Template) -> Result<Value, NodeError> {
        Ok(render::render(t, &self.env, Escape::None)?)
    }

    pub fn render_text(&self, t: &Template) -> Result<String, NodeError> {
        Ok(render::render_text(t, &self.env, Escape::None)?)
    }

    /// Renders a URL path: every value becomes one percent-encoded segment.
    pub fn render_path(&self, t: &Template) -> Result<String, NodeError> {
        Ok(render::render_text(t, &self.env, Escape::Segment)?)
    }

    pub fn render_value(&self, v: &ValueTemplate) -> Result<Value, NodeError> {
        Ok(render::render_value(v, &self.env)?)
    }

    /// Renders a value that may read `item` (one item of a list) and `index` (its position).
    pub fn render_value_for_item(&self, v: &ValueTemplate, item: &Value, index: usize) -> Result<Value, NodeError> {
        let index = Value::from(index);
        Ok(render::render_value(v, &WithItem { env: &self.env, item, index: &index })?)
    }

    /// Renders a condition that may read `self.…`, the node's latest result.
    pub fn render_with_self(&self, t: &Template, this: &Value) -> Result<Value, NodeError> {
        Ok(render::render(t, &WithSelf { env: &self.env, this }, Escape::None)?)
    }

    /// The integration bound to `slot`, as the type its kind uses.
    pub fn binding<T: Any + Send + Sync>(&self, slot: &str) -> Result<&T, NodeError> {
        let b = self
            .bindings
            .get(slot)
            .ok_or_else(|| NodeError::new("unbound", format!("integration slot `{slot}` is not bound")))?;
        b.value.downcast_ref::<T>().ok_or_else(|| {
            NodeError::new("unbound", format!("integration `{}` bound to slot `{slot}` cannot serve this node", b.name))
        })
    }

    /// Counts one attempt (a request sent, a poll made).
    pub fn attempt(&self) {
        if let Ok(mut t) = self.trace.lock() {
            *t.attempts.get_or_insert(0) += 1;
        }
    }

    /// Says the node counts its attempts, so that a request refused before sending shows 0.
    pub fn count_attempts(&self) {
        if let Ok(mut t) = self.trace.lock() {
            t.attempts.get_or_insert(0);
        }
    }

    /// Records kind-specific detail for the run record (already redacted).
    pub fn set_detail(&self, detail: Value) {
        self.set_detail_lazy(super::record::Detail::value(detail));
    }

    /// Records detail that is turned into JSON only if the record is written.
    pub fn set_detail_lazy(&self, detail: super::record::Detail) {
        if let Ok(mut t) = self.trace.lock() {
            t.detail = Some(detail);
        }
    }

    /// Journals that the node is about to send a write (`request`, already redacted). Call it
    /// right before sending; when it fails, do not send: the error is the node's.
    pub async fn intent(&self, request: &Value) -> Result<(), NodeError> {
        if self.plan {
            return Err(NodeError::new(
                "plan",
                "plan mode: a write was about to be sent from inside another node; it was not sent",
            ));
        }
        if let Ok(mut t) = self.trace.lock() {
            t.intent = Some(request.clone());
        }
        let Some(journal) = &self.journal else { return Ok(()) };
        journal.intent(&self.path, request).await.map_err(|e| {
            if e.code == crate::journal::KEY_TAKEN {
                return NodeError::new(crate::journal::KEY_TAKEN, format!("the write was not sent: {}", e.message));
            }
            NodeError::new("journal", format!("the write was not sent: the journal could not record it: {e}"))
        })
    }

    /// When the node first started (Unix ms), if that was in an earlier process: a resumed
    /// wait counts the time already spent from here.
    pub fn first_started_at(&self) -> Option<u64> {
        self.first_started
    }

    /// When the whole run must have ended: waits (retries, polls) must not sleep past it.
    pub fn deadline(&self) -> Option<tokio::time::Instant> {
        self.deadline
    }

    /// Waits for the signal `name` (with the payload `fields`, as shown) to be delivered to the
    /// run, journaled as waiting until `until_ms` (Unix ms): its payload. Observers hear that the
    /// node waits ([`NodeCx::awaiting`]) once the wait is journaled, so that a signal sent on
    /// that news is accepted. While it waits the node is *parked*: a drain (Ctrl-C) stops the run
    /// at once instead of waiting for it, and a resume waits again. Without a journal nothing can
    /// deliver a signal: the node fails with `no_journal`.
    pub async fn wait_signal(&self, name: &str, fields: &str, until_ms: Option<u64>) -> Result<Value, NodeError> {
        let Some(journal) = &self.journal else {
            return Err(NodeError::new(
                "no_journal",
                format!(
                    "waiting for signal `{name}` needs the run journal (signals are delivered through it); \
                     run without `--no-journal`"
                ),
            ));
        };
        let _parked = Parked::new(&self.trace);
        let said = || self.awaiting(name, fields, until_ms);
        journal.wait_signal(&self.path, name, until_ms, &said).await.map_err(|e| {
            NodeError::new("journal", format!("waiting for signal `{name}` failed: the journal answered: {e}"))
        })
    }

    /// Runs `wait` with the node *parked*: the node has sent nothing (and journaled no intent)
    /// since it started and will not until `wait` ends, e.g. while it waits for a rate-limit
    /// token. A drain (Ctrl-C) then stops the run at once rather than letting the wait end and
    /// a request go out; the node is not journaled as done, so a resume runs it again.
    pub async fn parked<F: std::future::Future>(&self, wait: F) -> F::Output {
        let _parked = Parked::new(&self.trace);
        wait.await
    }

    /// Tells observers the node is waiting for a signal.
    pub fn awaiting(&self, signal: &str, fields: &str, until_ms: Option<u64>) {
        let run = self.journal.as_deref().and_then(|j| j.run_id());
        self.sub.observer().event(&Event::Signal { path: &self.path, run, name: signal, fields, until_ms });
    }

    /// Tells observers the node is waiting (polling, backing off).
    pub fn waiting(&self, note: &str) {
        self.sub.observer().event(&Event::Waiting { path: &self.path, note });
    }

    /// Runs `flow` as a subflow with `inputs`; `bindings` maps its slots to this flow's.
    /// The subflow's record is nested under this node; its failure is this node's failure.
    pub fn subflow(
        &self,
        flow: &'a str,
        inputs: Map<String, Value>,
        bindings: &'a [(String, String)],
    ) -> BoxFuture<'a, Result<Map<String, Value>, NodeError>> {
        let sub = self.sub;
        let parent = self.bindings;
        let depth = self.depth + 1;
        let path = self.path.clone();
        let trace = self.trace.clone();
        Box::pin(async move {
            let bound: HashMap<String, Arc<Binding>> = bindings
                .iter()
                .filter_map(|(callee, caller)| Some((callee.clone(), parent.get(caller)?.clone())))
                .collect();
            let record = sub
                .run_subflow(flow, inputs, bound, depth, path)
                .await
                .map_err(|e| NodeError::new(e.code, format!("subflow `{flow}` could not start: {}", e.message)))?;
            let outputs = record.outputs.clone();
            let failure = record.error.clone();
            if let Ok(mut t) = trace.lock() {
                t.subflow = Some(record);
            }
            match failure {
                None => Ok(outputs),
                Some(f) => Err(NodeError::new(
                    f.code.clone(),
                    format!("subflow `{flow}` failed at node `{}`: {}", f.node, f.message),
                )),
            }
        })
    }
}
