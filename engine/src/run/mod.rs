//! Running flows: inputs checked before anything happens, then the plan executed on tokio.
//!
//! A run is one future. Its nodes are futures polled together in a `FuturesUnordered`, so
//! independent nodes overlap (bounded by `max_parallel`) without spawning tasks: when a node
//! fails, dropping the set drops every in-flight request, and no task is left behind.

mod exec;
mod inputs;
mod secret;

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::{Map, Value};
use tokio::sync::watch;
use tokio::time::Instant;

pub use crate::node::record;
pub use crate::node::secrets;
pub use crate::node::{
    Binding, Bindings, BoxFuture, Detail, Each, Env, Event, ItemOutcome, ItemRecord, Items, NodeCx, NodeError,
    NodeOutput, NodeRecord, NodeStatus, Observer, Quiet, RunFailure, RunRecord, RunStatus, Secrets,
};

use crate::catalog::Catalog;
use crate::journal::{Past, RunLog};
use crate::node::Subflows;

/// What to run.
#[derive(Debug, Default)]
pub struct RunRequest {
    pub flow: String,
    pub inputs: Map<String, Value>,
    /// Overrides of the flow's vars.
    pub vars: Map<String, Value>,
    /// Slot name → integration.
    pub bindings: HashMap<String, Arc<Binding>>,
    /// How the run is journaled, resumed, stopped and bounded; by default not at all.
    pub durable: Durable,
    /// Plan mode: reads run, nothing that changes state is sent. A write (or idempotent) node
    /// is recorded `Planned` with what it would send, and every node that depends on its result
    /// is recorded `Planned` with what it waits for (docs/architecture.md, "Plan mode").
    pub plan: bool,
}

/// What makes a run survive its process: a journal to write, the past of the run it resumes,
/// a way to stop it cleanly, and a deadline.
#[derive(Debug, Default)]
pub struct Durable {
    /// Written as the run goes (docs/architecture.md, "The journal").
    pub journal: Option<Arc<dyn RunLog>>,
    /// What the journal holds of this run from an earlier process: finished nodes are not run
    /// again, writes in flight are reconciled.
    pub past: Arc<Past>,
    /// Stops the run: see [`StopLevel`].
    pub stop: Option<watch::Receiver<StopLevel>>,
    /// The whole run (its subflows, polls and retries included) ends by then, failing with
    /// code `deadline`.
    pub deadline: Option<Instant>,
    /// The run's secret values: redacted in everything the journal is given and in the record
    /// [`Runner::run`] answers, whose `outputs` alone keep them. A caller that journals the
    /// record itself redacts it with these (`Secrets::redacted`).
    pub secrets: Secrets,
}

/// How far a run is asked to stop.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub enum StopLevel {
    #[default]
    Go,
    /// Start no new node; let the nodes in flight finish (the caller bounds how long).
    Drain,
    /// Drop the nodes in flight now: a write among them is recorded as outcome unknown.
    Abandon,
}

/// A sender of [`StopLevel`]s and the receiver to put in [`Durable::stop`].
pub fn stop_signal() -> (watch::Sender<StopLevel>, watch::Receiver<StopLevel>) {
    watch::channel(StopLevel::Go)
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
        let span = tracing::info_span!("run", flow = %flow.id(), status = tracing::field::Empty);
        let mut durable = req.durable;
        if let Some(journal) = durable.journal.take() {
            let secrets = durable.secrets.clone();
            durable.journal = Some(Arc::new(secret::Redacting { inner: journal, secrets }));
        }
        let level = Level { runner: self, durable: &durable, plan: req.plan };
        let root: Arc<[String]> = Arc::from(Vec::new());
        let record = exec::execute(&level, flow, prepared, &req.bindings, 0, root).instrument(span.clone()).await;
        span.record("status", record.status.as_str());
        tracing::info!(flow = %flow.id(), status = ?record.status, "run finished");
        Ok(secret::all_but_outputs(&durable.secrets, record))
    }

    /// Checks a request's inputs, bindings and vars exactly as [`Runner::run`] will, and runs
    /// nothing: the inputs as the run will see them (typed, defaults filled in). Lets a caller
    /// refuse a run before it journals or sends anything.
    pub fn check(&self, req: &RunRequest) -> Result<Map<String, Value>, RunError> {
        let flow = self.flow(&req.flow)?;
        Ok(inputs::prepare(flow, req.inputs.clone(), req.vars.clone(), &req.bindings)?.inputs)
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

/// One run's view of the runner: what every level of subflows of the run shares.
pub(crate) struct Level<'r> {
    pub runner: &'r Runner,
    pub durable: &'r Durable,
    /// Plan mode ([`RunRequest::plan`]), for every level of the run.
    pub plan: bool,
}

impl Subflows for Level<'_> {
    fn run_subflow<'a>(
        &'a self,
        flow: &'a str,
        inputs: Map<String, Value>,
        bindings: Bindings,
        depth: usize,
        path: Arc<[String]>,
    ) -> BoxFuture<'a, Result<RunRecord, NodeError>> {
        Box::pin(async move {
            use tracing::Instrument as _;
            let options = &self.runner.options;
            if depth > options.max_depth {
                return Err(RunError::TooDeep(options.max_depth).into());
            }
            let flow = self.runner.flow(flow)?;
            let prepared = inputs::prepare(flow, inputs, Map::new(), &bindings)?;
            let span = tracing::info_span!("subflow", flow = %flow.id(), depth, status = tracing::field::Empty);
            let record = exec::execute(self, flow, prepared, &bindings, depth, path).instrument(span.clone()).await;
            span.record("status", record.status.as_str());
            Ok(record)
        })
    }

    fn observer(&self) -> &dyn Observer {
        &*self.runner.observer
    }

    fn finished(&self, key: &str) -> Option<&crate::journal::Finished> {
        self.durable.past.node(key)?.finished.as_ref()
    }

    fn secrets(&self) -> Option<&Secrets> {
        Some(&self.durable.secrets)
    }
}
