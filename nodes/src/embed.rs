//! The library API for embedding flowcat in a Rust program: load a catalog, bind integrations,
//! run a flow by id with inputs, get the run record.
//!
//! ```no_run
//! # async fn example() -> Result<(), flowcat_nodes::embed::Error> {
//! use flowcat_nodes::embed::Flowcat;
//! let flowcat = Flowcat::open(&["flows"], "integrations.yaml")?;
//! let inputs = serde_json::json!({ "username": "jdoe" });
//! let record = flowcat.run("duo.admin.retrieve_user_id", inputs).await?;
//! println!("{}", record.outputs["user_id"]);
//! # Ok(()) }
//! ```

use std::path::{Path, PathBuf};
use std::sync::Arc;

use flowcat_engine::Catalog;
use flowcat_engine::journal::Delivery;
use flowcat_engine::run::{Observer, Options, Quiet, RunError, RunRecord};
use serde_json::{Map, Value};

use crate::hall::{Call, Hall, Refused};
use crate::integrations::{self, Integrations};

/// Why a flow could not be loaded, bound or started. A flow that ran and failed is not an
/// error: its record says so.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Catalog(#[from] flowcat_engine::catalog::Error),
    /// Every problem in the flows, rendered as `flowcat validate` shows them.
    #[error("the catalog has errors:\n{}", .0.join("\n"))]
    Invalid(Vec<String>),
    #[error("{}", .0.join("\n"))]
    Integrations(Vec<String>),
    #[error("inputs must be a JSON object")]
    Inputs,
    /// Refused by the front hall (unknown flow, binding, `host`) before the runner saw it.
    #[error(transparent)]
    Refused(Refused),
    /// Refused by the runner's checks (inputs, bindings, vars).
    #[error(transparent)]
    Run(#[from] RunError),
    /// A signal was refused: unknown run, run finished, signal not awaited, payload of the
    /// wrong shape, delivered before. `delivery` says which ([`Delivery::code`]).
    #[error("{message}")]
    Signal { delivery: Delivery, message: String },
    /// The journal failed, or there is none ([`Flowcat::with_store`]).
    #[error(transparent)]
    Journal(#[from] flowcat_engine::journal::JournalError),
}

impl From<Refused> for Error {
    fn from(r: Refused) -> Self {
        match r {
            Refused::Run(e) => Error::Run(e),
            other => Error::Refused(other),
        }
    }
}

/// A catalog with its integrations, ready to run flows. Share one: every run uses the same
/// HTTP connection pool.
#[derive(Debug)]
pub struct Flowcat {
    hall: Hall,
}

/// Loads every flow under `dirs`; any error in any flow refuses the catalog.
pub fn load_catalog(dirs: &[impl AsRef<Path>]) -> Result<Catalog, Error> {
    let dirs: Vec<PathBuf> = dirs.iter().map(|d| d.as_ref().to_owned()).collect();
    let files = flowcat_engine::catalog::discover(&dirs)?;
    let catalog = Catalog::load(flowcat_engine::catalog::read(&files)?, &crate::REGISTRY);
    let errors: Vec<String> = catalog.diagnostics().filter(|d| d.is_error()).map(|d| d.render(false)).collect();
    if errors.is_empty() { Ok(catalog) } else { Err(Error::Invalid(errors)) }
}

impl Flowcat {
    pub fn new(catalog: Catalog, integrations: Integrations) -> Self {
        Flowcat::with_observer(catalog, integrations, Arc::new(Quiet))
    }

    /// Like `new`, with an observer of every node's start and end.
    pub fn with_observer(catalog: Catalog, integrations: Integrations, observer: Arc<dyn Observer>) -> Self {
        let hall = Hall::new(Arc::new(catalog), Options::default(), observer).with_integrations(integrations);
        Flowcat { hall }
    }

    /// Loads the flows under `dirs` and the integrations file (secrets from the environment).
    pub fn open(dirs: &[impl AsRef<Path>], integrations_file: impl AsRef<Path>) -> Result<Self, Error> {
        let env = |name: &str| std::env::var(name).ok();
        let file =
            integrations::load(integrations_file.as_ref(), &env).map_err(|e| Error::Integrations(e.messages()))?;
        Ok(Flowcat::new(load_catalog(dirs)?, file))
    }

    /// Journals every run in `store` (e.g. `flowcat_journal::Journal`): run keys are
    /// honoured, and [`Flowcat::resume`] continues an interrupted run.
    pub fn with_store(mut self, store: Arc<dyn flowcat_engine::journal::Store>) -> Self {
        self.hall = self.hall.with_store(store);
        self
    }

    pub fn catalog(&self) -> &Catalog {
        self.hall.catalog()
    }

    /// Runs durably (see [`Hall::run_durably`]): with a store, journaled and keyed; a key that
    /// names a finished run answers that run's record ([`crate::hall::Ran::Before`]). The end of
    /// a finished run may be gathered with later work: `Store::flush` makes it durable at once
    /// (closing the store does too).
    pub async fn run_durably(
        &self,
        flow: &str,
        inputs: Map<String, Value>,
        how: crate::hall::Durably,
    ) -> Result<crate::hall::Ran, Error> {
        let checked = self.hall.prepare(Call::new(flow, inputs))?;
        Ok(self.hall.run_durably(checked, how).await?)
    }

    /// Resumes the journaled run `id`.
    pub async fn resume(&self, id: &str) -> Result<crate::hall::Ran, Error> {
        Ok(self.hall.resume(id, None, &[]).await?)
    }

    /// Delivers signal `name` with `payload` (a JSON object) to run `id`, parked on (or yet to
    /// reach) a `wait_for` node: `Ok(())` once it is stored (durable); the run wakes at once if
    /// this process runs it, within a second if another does, or when it is resumed.
    /// Refusals are [`Error::Signal`]; a missing store or a failing journal [`Error::Journal`].
    pub async fn signal(&self, id: &str, name: &str, payload: &Value) -> Result<(), Error> {
        let store = self.hall.store().ok_or_else(|| {
            flowcat_engine::journal::JournalError::new("no_journal", "signals need the run journal: see `with_store`")
        })?;
        let delivery = store.signal(id, name, payload).await?;
        match delivery.refusal(id, name) {
            None => Ok(()),
            Some(message) => Err(Error::Signal { delivery, message }),
        }
    }

    /// Runs `flow` with `inputs` (a JSON object), each slot bound to the integration of its name.
    pub async fn run(&self, flow: &str, inputs: Value) -> Result<RunRecord, Error> {
        let Value::Object(inputs) = inputs else { return Err(Error::Inputs) };
        self.run_with(flow, inputs, Map::new(), &[]).await
    }

    /// Runs with var overrides and `slot → integration` bindings.
    pub async fn run_with(
        &self,
        flow: &str,
        inputs: Map<String, Value>,
        vars: Map<String, Value>,
        binds: &[(String, String)],
    ) -> Result<RunRecord, Error> {
        let call = Call { flow: flow.to_owned(), inputs, vars, binds: binds.to_vec() };
        Ok(self.hall.run(call).await?)
    }
}
