//! Running flows: inputs checked before anything happens, then the plan executed on tokio.
//!
//! A run is one future. Its nodes are futures polled together in a `FuturesUnordered`, so
//! independent nodes overlap (bounded by `max_parallel`) without spawning tasks: when a node
//! fails, dropping the set drops every in-flight request, and no task is left behind.

mod cx;
mod exec;
mod inputs;
pub mod record;

use std::any::Any;
use std::collections::HashMap;
use std::sync::Arc;

use serde_json::{Map, Value};

pub use cx::{BoxFuture, Env, NodeCx, NodeOutput};
pub use record::{Detail, NodeError, NodeRecord, NodeStatus, RunFailure, RunRecord, RunStatus};

use crate::catalog::Catalog;

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

/// What to run.
#[derive(Debug, Default)]
pub struct RunRequest {
    pub flow: String,
    pub inputs: Map<String, Value>,
    /// Overrides of the flow's vars.
    pub vars: Map<String, Value>,
    /// Slot name → integration.
    pub bindings: HashMap<String, Arc<Binding>>,
}

/// A run that could not start: said before any node runs.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("no flow `{flow}` in the catalog{hint}")]
    UnknownFlow { flow: String, hint: String },
    #[error("flow `{flow}` has errors; run `flowcat validate {path}`")]
    Invalid { flow: String, path: String },
    #[error("{}", .problems.join("\n"))]
    Inputs { flow: String, problems: Vec<String> },
    #[error("subflows nest deeper than {0} levels")]
    TooDeep(usize),
}

impl From<RunError> for NodeError {
    fn from(e: RunError) -> Self {
        let code = match &e {
            RunError::Inputs { .. } => "bad_input",
            RunError::TooDeep(_) => "too_deep",
            _ => "unknown_flow",
        };
        NodeError::new(code, e.to_string())
    }
}

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
        status: NodeStatus,
        duration_ms: f64,
        message: Option<&'a str>,
    },
    Waiting {
        path: &'a [String],
        note: &'a str,
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

/// Limits of a runner.
#[derive(Clone, Copy, Debug)]
pub struct Options {
    /// Nodes of one run (including its subflows' nodes, per level) running at once.
    pub max_parallel: usize,
    /// How deep subflows may nest.
    pub max_depth: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options { max_parallel: 16, max_depth: 16 }
    }
}

/// Runs flows of a catalog. Cheap to share: many runs at once use one runner.
pub struct Runner {
    pub catalog: Arc<Catalog>,
    pub options: Options,
    pub(crate) observer: Arc<dyn Observer>,
}

impl std::fmt::Debug for Runner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runner").field("options", &self.options).finish_non_exhaustive()
    }
}

impl Runner {
    pub fn new(catalog: Arc<Catalog>, options: Options, observer: Arc<dyn Observer>) -> Self {
        Runner { catalog, options, observer }
    }

    /// Checks the request, then runs the flow. `Err` only when the run could not start.
    pub async fn run(&self, req: RunRequest) -> Result<RunRecord, RunError> {
        use tracing::Instrument as _;
        let flow = self.flow(&req.flow)?;
        let prepared = inputs::prepare(flow, req.inputs, req.vars, &req.bindings)?;
        let span = tracing::info_span!("run", flow = %flow.id());
        let record =
            exec::execute(self, flow, prepared, &req.bindings, 0, Arc::from(Vec::new())).instrument(span).await;
        tracing::info!(flow = %flow.id(), status = ?record.status, "run finished");
        Ok(record)
    }

    /// A subflow's run, from a node at `depth`.
    pub(crate) async fn run_nested(
        &self,
        flow: &str,
        inputs: Map<String, Value>,
        bindings: HashMap<String, Arc<Binding>>,
        depth: usize,
        path: Arc<[String]>,
    ) -> Result<RunRecord, RunError> {
        if depth > self.options.max_depth {
            return Err(RunError::TooDeep(self.options.max_depth));
        }
        use tracing::Instrument as _;
        let flow = self.flow(flow)?;
        let prepared = inputs::prepare(flow, inputs, Map::new(), &bindings)?;
        let span = tracing::info_span!("subflow", flow = %flow.id(), depth);
        Ok(exec::execute(self, flow, prepared, &bindings, depth, path).instrument(span).await)
    }

    fn flow(&self, id: &str) -> Result<&crate::Flow, RunError> {
        if let Some(f) = self.catalog.get(id) {
            return Ok(f);
        }
        if let Some(entry) = self.catalog.entry(id) {
            return Err(RunError::Invalid { flow: id.to_owned(), path: entry.path.clone() });
        }
        let crate::library::Unknown { flow, hint } =
            crate::library::Unknown::new(id, self.catalog.flows().map(|f| f.id()));
        Err(RunError::UnknownFlow { flow, hint })
    }
}
