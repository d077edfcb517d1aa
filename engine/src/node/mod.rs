//! The run side of a node kind: what a compiled node does when it runs ([`NodeExec`]), what it
//! sees while it runs ([`NodeCx`]), and what a run records ([`record`]).
//!
//! This module knows nothing of catalogs, compiling or the scheduler: a node reaches the rest of
//! its run only through [`NodeCx`], and runs a subflow through the [`Subflows`] the scheduler
//! hands it. The compile side of a node kind is the `kind` module.

mod cx;
mod each;
pub mod log;
pub mod record;
pub mod rows;
pub mod secrets;

use std::any::Any;
use std::collections::HashMap;
use std::fmt::Debug;
use std::sync::Arc;

use serde_json::{Map, Value};

pub(crate) use cx::Trace;
pub use cx::{BoxFuture, Env, NodeCx, NodeOutput};
pub use each::{Each, ItemOutcome, Items};
pub use record::{Detail, ItemRecord, NodeError, NodeRecord, NodeStatus, RunFailure, RunRecord, RunStatus};
pub use secrets::Secrets;

/// A node's compiled, runnable form. Execution plugs in here; compile time needs only what it
/// shows of itself.
pub trait NodeExec: Debug + Send + Sync {
    /// A one-line summary for graphs, such as `GET /admin/v1/users`.
    fn label(&self) -> String;
    /// The node's settings as JSON, for `flowcat graph --format json`.
    fn describe(&self) -> Value;
    /// Runs the node. Errors are outcomes of the run, recorded against the node.
    fn run<'a>(&'a self, cx: NodeCx<'a>) -> BoxFuture<'a, Result<NodeOutput, NodeError>>;
    /// Plan mode: what the node would send if it ran now, rendered with the values known so far,
    /// without sending anything (for a write: its request, secrets and signatures redacted).
    /// Asked only of a node whose every input is known. By default, the node's settings.
    fn preview<'a>(&'a self, cx: NodeCx<'a>) -> Result<Value, NodeError> {
        let _ = cx;
        Ok(self.describe())
    }
    /// Plan mode: what the node would send, as templates, for a node that waits for results
    /// nobody knows yet. By default, the node's settings.
    fn template(&self) -> Value {
        self.describe()
    }
    /// What running the node does outside the run; decides what a resumed run does with the
    /// node when it was in flight.
    fn effect(&self) -> Effect {
        Effect::Local
    }
    /// Resume: the node's write was journaled as about to be sent (`intent`), and its outcome
    /// is unknown. Finds out, with a read, whether it happened.
    fn reconcile<'a>(&'a self, cx: NodeCx<'a>, intent: &'a Value) -> BoxFuture<'a, Reconciled> {
        let _ = (cx, intent);
        Box::pin(async { Reconciled::Undeclared })
    }
    /// Whether [`reconcile`](Self::reconcile) has a read that settles a write in doubt. The
    /// result of such a write need not be durable before its dependents start: lost in a crash,
    /// the write is in doubt and the read settles it (the run's next intent or its end makes it
    /// durable first anyway).
    fn reconciles(&self) -> bool {
        false
    }
    /// Resume: what a person needs when the write journaled as `intent` has an unknown outcome
    /// that [`reconcile`](Self::reconcile) could not settle: what was sent, and what to check by
    /// hand before resuming or abandoning the run. Plain text, several lines; no secret (the
    /// intent has none).
    fn needs_attention(&self, intent: &Value) -> String {
        format!(
            "{} was about to be done, and whether it was is unknown: {intent}\nCheck by hand whether it happened, then resume or abandon the run.",
            self.label()
        )
    }
}

/// What running a node does outside the run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Effect {
    /// Nothing: it computes from values the run has (`set`, `switch`, `fail`). Run again freely.
    #[default]
    Local,
    /// Reads only: run again freely.
    Read,
    /// Changes something, but sending it twice changes nothing more (Duo's DELETEs): retried
    /// after 5xx and lost connections, run again on resume.
    Idempotent,
    /// Changes something, and sending it twice may do it twice: never re-sent blindly. On
    /// resume with its outcome unknown it is reconciled first.
    Write,
    /// Runs other nodes (a subflow): resumed through their own journal entries.
    Composite,
}

/// What [`NodeExec::reconcile`] found.
#[derive(Debug)]
pub enum Reconciled {
    /// The write happened: this is the node's result, as if its answer had arrived.
    Done(NodeOutput),
    /// The write did not happen: it may be sent.
    NotDone,
    /// The node declares no way to find out: a person must check.
    Undeclared,
    /// The read failed: the outcome is still unknown.
    Failed(NodeError),
}

/// An integration bound to a slot: opaque to the engine, downcast by the node kind that uses
/// it. It may offer values for the flow's vars (e.g. `host`).
pub struct Binding {
    /// The integration's name, for messages.
    pub name: String,
    /// Its kind, checked against the slot's.
    pub kind: String,
    /// Values for vars the flow declares without a default.
    pub vars: Map<String, Value>,
    pub value: Arc<dyn Any + Send + Sync>,
}

impl std::fmt::Debug for Binding {
    // The value may hold keys: print only what identifies it.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Binding").field("name", &self.name).field("kind", &self.kind).finish_non_exhaustive()
    }
}

/// Slot name → integration.
pub type Bindings = HashMap<String, Arc<Binding>>;

/// Progress of a run, for live views and logs.
#[derive(Debug)]
pub enum Event<'a> {
    /// `path` is the node's id, after the ids of the subflow nodes it runs inside.
    Started {
        path: &'a [String],
        kind: &'a str,
    },
    Finished {
        path: &'a [String],
        /// The node's kind, as in `Started` (a `for_each` item's is `item`).
        kind: &'a str,
        status: NodeStatus,
        duration_ms: f64,
        message: Option<&'a str>,
    },
    Waiting {
        path: &'a [String],
        note: &'a str,
    },
    /// A `wait_for` node waits for the signal `name` (its payload's fields written
    /// `approved: boolean, approver: string`) until `until_ms` (Unix ms).
    Signal {
        path: &'a [String],
        /// The run's id, when it is journaled.
        run: Option<&'a str>,
        name: &'a str,
        fields: &'a str,
        until_ms: Option<u64>,
    },
    /// A resumed run found the node finished in its journal: it is not run again.
    Restored {
        path: &'a [String],
        status: NodeStatus,
    },
}

/// Receives run events; must be cheap, it is called on the run's own task.
pub trait Observer: Send + Sync {
    fn event(&self, event: &Event<'_>);
}

/// Ignores every event.
#[derive(Debug)]
pub struct Quiet;

impl Observer for Quiet {
    fn event(&self, _: &Event<'_>) {}
}

/// How a node runs a subflow: implemented by the scheduler, so that the run side of a node
/// never names it.
pub trait Subflows: Send + Sync {
    /// Runs `flow` under the node at `path`, one level deeper. `Err` when it could not start.
    fn run_subflow<'a>(
        &'a self,
        flow: &'a str,
        inputs: Map<String, Value>,
        bindings: Bindings,
        depth: usize,
        path: Arc<[String]>,
    ) -> BoxFuture<'a, Result<RunRecord, NodeError>>;
    fn observer(&self) -> &dyn Observer;
    /// What the journal of the run being resumed says finished at `key` (a [`log::path_key`]):
    /// how a list's finished items are found without running them again.
    fn finished(&self, key: &str) -> Option<&log::Finished>;
    /// The run's secret values ([`Secrets`]), when the scheduler keeps them.
    fn secrets(&self) -> Option<&Secrets> {
        None
    }
}
