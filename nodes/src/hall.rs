//! The front hall: the one way from "run this flow with these inputs" to a run record. The
//! `flowcat` binary (`run`, `demo`) and the embedding API ([`crate::embed`]) all come in here,
//! so every run is refused for the same reasons, in the same words, before anything is sent:
//! the flow is looked up (with "did you mean"), its slots bound to integrations, the `host` var
//! checked against the bound Duo integration, and its inputs, bindings and vars checked by the
//! runner.

use std::collections::HashMap;
use std::sync::Arc;

use flowcat_engine::library::Unknown;
use flowcat_engine::run::{Binding, Observer, Options, RunError, RunRecord, RunRequest, Runner};
use flowcat_engine::{Catalog, Flow};
use serde_json::{Map, Value};

use crate::http::Clients;
use crate::integrations::Integrations;

/// What to run: a flow (id or path), its inputs, var overrides and `slot → integration` binds.
#[derive(Debug, Default, Clone)]
pub struct Call {
    pub flow: String,
    pub inputs: Map<String, Value>,
    pub vars: Map<String, Value>,
    pub binds: Vec<(String, String)>,
}

impl Call {
    /// A call of `flow` with `inputs` and nothing else.
    pub fn new(flow: impl Into<String>, inputs: Map<String, Value>) -> Call {
        Call { flow: flow.into(), inputs, ..Call::default() }
    }
}

/// Why a run was refused before it started. Every variant is the caller's to fix.
#[derive(Debug, thiserror::Error)]
pub enum Refused {
    #[error(transparent)]
    Unknown(#[from] Unknown),
    #[error("flow `{flow}` has errors; run `flowcat validate {path}`")]
    Invalid { flow: String, path: String },
    /// The flow has slots and no integrations file was given.
    #[error("flow `{flow}` needs integrations ({slots}) and no integrations file was given")]
    NoIntegrations { flow: String, slots: String },
    /// Binding the slots or the `host` check failed: every problem, one a line.
    #[error("{}", .0.join("\n"))]
    Bind(Vec<String>),
    /// The runner's own checks: inputs, bindings, vars.
    #[error(transparent)]
    Run(#[from] RunError),
}

/// A request that passed [`Hall::prepare`]; only the hall makes one, so no run skips its checks.
#[derive(Debug)]
pub struct Checked(RunRequest);

impl Checked {
    /// The flow's id.
    pub fn flow(&self) -> &str {
        &self.0.flow
    }

    /// The slots' bindings, for saying what the run will talk to.
    pub fn bindings(&self) -> &HashMap<String, Arc<Binding>> {
        &self.0.bindings
    }
}

/// A catalog, maybe an integrations file, and one HTTP connection pool: runs flows.
pub struct Hall {
    runner: Runner,
    integrations: Option<Integrations>,
    clients: Clients,
}

impl std::fmt::Debug for Hall {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hall").field("integrations", &self.integrations).finish_non_exhaustive()
    }
}

impl Hall {
    /// A hall without integrations: flows with slots are refused until [`Hall::with_integrations`].
    pub fn new(catalog: Arc<Catalog>, options: Options, observer: Arc<dyn Observer>) -> Hall {
        Hall { runner: Runner::new(catalog, options, observer), integrations: None, clients: Clients::new() }
    }

    pub fn with_integrations(mut self, integrations: Integrations) -> Hall {
        self.integrations = Some(integrations);
        self
    }

    pub fn catalog(&self) -> &Catalog {
        &self.runner.catalog
    }

    pub fn integrations(&self) -> Option<&Integrations> {
        self.integrations.as_ref()
    }

    /// The flow named by id or path, compiled; the one lookup every entry point uses.
    pub fn flow(&self, name: &str) -> Result<&Flow, Refused> {
        let entry = self.catalog().find(name)?;
        let invalid = || Refused::Invalid { flow: name.to_owned(), path: entry.path.clone() };
        entry.flow.as_ref().ok_or_else(invalid)
    }

    /// Everything checked that can be checked before the runner: the flow found, its slots
    /// bound, the `host` var checked.
    pub fn prepare(&self, call: Call) -> Result<Checked, Refused> {
        let flow = self.flow(&call.flow)?;
        let bindings = self.bind(flow, &call.binds)?;
        crate::bind::check_host(flow, &bindings, &call.vars).map_err(Refused::Bind)?;
        Ok(Checked(RunRequest {
            flow: flow.id().to_owned(),
            inputs: call.inputs,
            vars: call.vars,
            bindings,
            durable: Default::default(),
        }))
    }

    fn bind(&self, flow: &Flow, binds: &[(String, String)]) -> Result<HashMap<String, Arc<Binding>>, Refused> {
        let slots = &flow.signature.slots;
        let Some(file) = &self.integrations else {
            // A flow without slots (or with only optional ones) runs without any file.
            if slots.iter().all(|s| !s.required) && binds.is_empty() {
                return Ok(HashMap::new());
            }
            let names: Vec<&str> = slots.iter().map(|s| s.name.as_str()).collect();
            return Err(Refused::NoIntegrations { flow: flow.id().to_owned(), slots: names.join(", ") });
        };
        crate::bind::bind(flow, file, binds, &self.clients).map_err(Refused::Bind)
    }

    /// Prepares, then runs: `Err` only when the run was refused; a flow that ran and failed is
    /// an `Ok` record saying so.
    pub async fn run(&self, call: Call) -> Result<RunRecord, Refused> {
        let request = self.prepare(call)?;
        self.run_checked(request).await
    }

    /// Runs what [`Hall::prepare`] returned (for a caller that reports refusals before it
    /// starts anything else, as the binary does before its runtime).
    pub async fn run_checked(&self, checked: Checked) -> Result<RunRecord, Refused> {
        Ok(self.runner.run(checked.0).await?)
    }
}
