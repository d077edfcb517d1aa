//! The front hall: the one way from "run this flow with these inputs" to a run record. The
//! `flowcat` binary (`run`, `demo`) and the embedding API ([`crate::embed`]) all come in here,
//! so every run is refused for the same reasons, in the same words, before anything is sent:
//! the flow is looked up (with "did you mean"), its slots bound to integrations, the `host` var
//! checked against the bound Duo integration, and its inputs, bindings and vars checked by the
//! runner.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use flowcat_engine::journal::{
    Begun, Finished, IfBusy, JournalError, KEY_TAKEN, Past, RunHandle, RunInfo, RunLog, Start, Store, StoredStatus,
};
use flowcat_engine::library::Unknown;
use flowcat_engine::run::{
    Binding, BoxFuture, Durable, Observer, Options, RunError, RunRecord, RunRequest, RunStatus, Runner, StopLevel,
};
use flowcat_engine::{Catalog, Flow};
use serde_json::{Map, Value};
use sha2::Digest as _;
use tokio::sync::watch;

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
    /// The journal could not be opened or written before the run started.
    #[error("{0}")]
    Journal(#[from] JournalError),
    /// The run key's run is held by another process.
    #[error("run `{id}` with this key is running in another process; wait for it, or see `flowcat runs show {id}`")]
    Busy { id: String },
    /// Two `wait_for` nodes of the run's flows wait for one signal with different payloads.
    #[error("{0}")]
    Signals(String),
    /// A resumed run's flows or integrations changed since it started.
    #[error("{0}")]
    Changed(String),
}

/// A request that passed [`Hall::prepare`]; only the hall makes one, so no run skips its checks.
#[derive(Debug)]
pub struct Checked {
    request: RunRequest,
    binds: Vec<(String, String)>,
}

impl Checked {
    /// The same request with other inputs: its bindings and vars, checked by [`Hall::prepare`],
    /// do not depend on them (a bulk run prepares once and gives each row its inputs). The
    /// inputs are checked when it runs, as any request's.
    pub fn with_inputs(&self, inputs: Map<String, Value>) -> Checked {
        let request = RunRequest {
            flow: self.request.flow.clone(),
            inputs,
            vars: self.request.vars.clone(),
            bindings: self.request.bindings.clone(),
            durable: Default::default(),
            plan: self.request.plan,
        };
        Checked { request, binds: self.binds.clone() }
    }

    /// The flow's id.
    pub fn flow(&self) -> &str {
        &self.request.flow
    }

    /// The slots' bindings, for saying what the run will talk to.
    pub fn bindings(&self) -> &HashMap<String, Arc<Binding>> {
        &self.request.bindings
    }
}

/// How a durable run is started: its key, what to do when the key's run is busy, its deadline,
/// and how it is stopped.
#[derive(Debug, Default)]
pub struct Durably {
    /// The run key (`--key`); else the flow's `key:` rendered from the inputs.
    pub key: Option<String>,
    pub if_busy: IfBusy,
    /// Bounds the whole run (`--deadline`); else the flow's `deadline:`.
    pub deadline: Option<std::time::Duration>,
    pub stop: Option<watch::Receiver<StopLevel>>,
    /// The flow file the run names, when it names a file (absolute): a resume reads it there.
    pub source: Option<String>,
    /// Told the run's id as soon as the journal gave it one (a new run, a resumed one, or the
    /// finished run its key names), before anything runs: a service answers with it at once.
    pub begun: Option<tokio::sync::oneshot::Sender<String>>,
}

/// How a durable run ended.
#[derive(Debug)]
pub enum Ran {
    /// It ran (to its end, or until it was stopped): its record, with its id.
    Now(RunRecord),
    /// Its key named a run that had finished: that run's record; nothing was sent.
    Before(RunRecord),
}

impl Ran {
    pub fn record(&self) -> &RunRecord {
        match self {
            Ran::Now(r) | Ran::Before(r) => r,
        }
    }
}

/// A catalog, maybe an integrations file, and one HTTP connection pool: runs flows.
pub struct Hall {
    runner: Runner,
    integrations: Option<Integrations>,
    clients: Clients,
    store: Option<Arc<dyn Store>>,
    /// Each flow's [`digest`], computed once: the catalog does not change under a hall, and a
    /// flow calling others hashes all their texts (tens of kilobytes for the onboarding example).
    digests: std::sync::Mutex<HashMap<String, Arc<str>>>,
}

impl std::fmt::Debug for Hall {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hall").field("integrations", &self.integrations).finish_non_exhaustive()
    }
}

impl Hall {
    /// A hall without integrations: flows with slots are refused until [`Hall::with_integrations`].
    pub fn new(catalog: Arc<Catalog>, options: Options, observer: Arc<dyn Observer>) -> Hall {
        Hall {
            runner: Runner::new(catalog, options, observer),
            integrations: None,
            clients: Clients::new(),
            store: None,
            digests: Default::default(),
        }
    }

    pub fn with_integrations(mut self, integrations: Integrations) -> Hall {
        self.integrations = Some(integrations);
        self
    }

    /// Sends every call through `clients`: [`Clients::with_transport`] answers them in the
    /// process (`flowcat test`).
    pub fn with_clients(mut self, clients: Clients) -> Hall {
        self.clients = clients;
        self
    }

    /// Journals every run in `store`: see [`Hall::run_durably`] and [`Hall::resume`].
    pub fn with_store(mut self, store: Arc<dyn Store>) -> Hall {
        self.store = Some(store);
        self
    }

    pub fn store(&self) -> Option<&Arc<dyn Store>> {
        self.store.as_ref()
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
        Ok(Checked {
            request: RunRequest {
                flow: flow.id().to_owned(),
                inputs: call.inputs,
                vars: call.vars,
                bindings,
                durable: Default::default(),
                plan: false,
            },
            binds: call.binds,
        })
    }

    /// The runner's checks of a prepared request (inputs, bindings, vars), without running it:
    /// its inputs typed as the flow declares, defaults filled in.
    pub fn check(&self, checked: &Checked) -> Result<Map<String, Value>, Refused> {
        Ok(self.runner.check(&checked.request)?)
    }

    /// The run key the flow's `key:` gives a prepared request, if the flow has one.
    pub fn key(&self, checked: &Checked) -> Result<Option<String>, Refused> {
        key_of(self.flow(&checked.request.flow)?, &checked.request.inputs)
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
        Ok(self.runner.run(checked.request).await?)
    }

    /// Runs what [`Hall::prepare`] returned with `log` as its journal (not the hall's store) and
    /// the flow's `deadline:`: `flowcat test` keeps a log in memory that answers `wait_for`
    /// nodes' signals from a test case.
    pub async fn run_logged(&self, checked: Checked, log: Arc<dyn RunLog>) -> Result<RunRecord, Refused> {
        let deadline = self.flow(&checked.request.flow)?.deadline;
        let mut request = checked.request;
        request.durable.journal = Some(log);
        request.durable.deadline = deadline.map(|d| tokio::time::Instant::now() + d);
        Ok(self.runner.run(request).await?)
    }

    /// Plan mode ([`RunRequest::plan`]): runs the reads of what [`Hall::prepare`] returned and
    /// sends nothing that changes state; never journaled. The record's writes are `Planned`.
    pub async fn plan(&self, mut checked: Checked) -> Result<RunRecord, Refused> {
        checked.request.plan = true;
        checked.request.durable = Durable::default();
        Ok(self.runner.run(checked.request).await?)
    }

    /// The slots of what [`Hall::prepare`] returned and the integrations bound to them, by
    /// name, in slot order.
    pub fn bound(checked: &Checked) -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> =
            checked.request.bindings.iter().map(|(slot, b)| (slot.clone(), b.name.clone())).collect();
        out.sort();
        out
    }

    /// Runs what [`Hall::prepare`] returned, journaled in the hall's store (without one, as
    /// [`Hall::run_checked`]). A key naming a finished run answers its record; one naming an
    /// unfinished run resumes it; two runs of one key never run at once.
    pub async fn run_durably(&self, checked: Checked, how: Durably) -> Result<Ran, Refused> {
        let flow = self.flow(&checked.request.flow)?;
        let deadline = how.deadline.or(flow.deadline);
        let Some(store) = &self.store else {
            let mut request = checked.request;
            request.durable.stop = how.stop;
            request.durable.deadline = deadline.map(|d| tokio::time::Instant::now() + d);
            return Ok(Ran::Now(self.runner.run(request).await?));
        };
        let key = match how.key {
            Some(key) => Some(key),
            None => key_of(flow, &checked.request.inputs)?,
        };
        let now = now_ms();
        let info = RunInfo {
            id: String::new(),
            flow: flow.id().to_owned(),
            flow_digest: self.digest(flow.id()).to_string(),
            key,
            inputs: checked.request.inputs.clone(),
            vars: checked.request.vars.clone(),
            binds: checked.binds.clone(),
            targets: targets(&checked.request.bindings),
            created_at: now,
            deadline_at: deadline.map(|d| now.saturating_add(d.as_millis() as u64)),
            source: how.source,
            signals: signals(self.catalog(), flow.id()).map_err(Refused::Signals)?,
        };
        // A store may not wait for a keyed beginning (unless the id is announced at once); when
        // another process began the key at the same moment, the run's first write is refused
        // unsent (`KEY_TAKEN`), and the run begun again finds the other's run.
        let awaited = how.begun.is_some();
        let mut begun_tx = how.begun;
        let mut first = Some(checked.request);
        for again in [false, true] {
            let begun = store.begin(Start { info: info.clone(), if_busy: how.if_busy, awaited }).await?;
            let id = match &begun {
                Begun::Fresh(h) | Begun::Resumed(h, _) => Some(h.info().id.clone()),
                Begun::Done(run) => Some(run.summary.info.id.clone()),
                Begun::Busy { .. } => None,
            };
            if let (Some(tx), Some(id)) = (begun_tx.take(), id) {
                let _ = tx.send(id);
            }
            let (ran, taken) = match begun {
                Begun::Done(run) => {
                    let record = run.record.ok_or_else(|| {
                        JournalError::new(
                            "corrupt",
                            format!("run `{}` finished but has no record", run.summary.info.id),
                        )
                    })?;
                    return Ok(Ran::Before(record));
                }
                Begun::Busy { id } => return Err(Refused::Busy { id }),
                Begun::Fresh(handle) => {
                    let request = match first.take() {
                        Some(request) => request,
                        None => self.prepare(call_of(handle.info()))?.request,
                    };
                    self.drive_once(handle, request, Past::default(), how.stop.clone()).await?
                }
                Begun::Resumed(handle, past) => {
                    // The key's run started earlier with these inputs; carry on with them.
                    let call = call_of(handle.info());
                    let checked = self.prepare(call)?;
                    self.check_same(handle.info(), &checked)?;
                    self.drive_once(handle, checked.request, past, how.stop.clone()).await?
                }
            };
            if !taken || again {
                return Ok(ran);
            }
        }
        unreachable!("the second beginning returns")
    }

    /// Resumes run `id` from the journal: its finished nodes are not run again, its writes in
    /// doubt are reconciled. The flows and the integrations' hosts must be those it started with.
    ///
    /// `resend` names writes in doubt (by path, `phone/create`) that a person checked did not
    /// happen: they are sent again instead of stopping the run for attention.
    pub async fn resume(
        &self,
        id: &str,
        stop: Option<watch::Receiver<StopLevel>>,
        resend: &[String],
    ) -> Result<Ran, Refused> {
        let store = self.store.as_ref().ok_or_else(|| JournalError::new("no_journal", "resuming needs the journal"))?;
        if let Some(run) = store.show(id)? {
            for path in resend {
                let in_doubt = run.past.node(path).is_some_and(|n| n.intent.is_some() && n.finished.is_none());
                if !in_doubt {
                    return Err(Refused::Changed(format!(
                        "run `{id}` has no write in doubt at `{path}`: `--resend` names a node whose request was \
                         journaled and whose answer was not (`flowcat runs show {id}` lists them)"
                    )));
                }
            }
        }
        let (handle, mut past) = store.resume(id).await?;
        for path in resend {
            if let Some(node) = past.nodes.get_mut(path) {
                // Checked by a person: it did not happen. The node journals a new intent when it sends.
                node.intent = None;
            }
        }
        let checked = self.prepare(call_of(handle.info()))?;
        self.check_same(handle.info(), &checked)?;
        self.drive(handle, checked.request, past, stop).await
    }

    fn check_same(&self, info: &RunInfo, checked: &Checked) -> Result<(), Refused> {
        if *self.digest(&info.flow) != *info.flow_digest {
            return Err(Refused::Changed(format!(
                "the flow `{}` or a flow it calls changed since run `{}` started; resuming it with other \
                 flows could repeat or skip writes. Restore the flows it ran with (see `flowcat runs show {}`)",
                info.flow, info.id, info.id
            )));
        }
        let now = targets(&checked.request.bindings);
        if !info.targets.is_empty() && now != info.targets {
            let was: Vec<String> = info.targets.iter().map(|(s, h)| format!("{s} → {h}")).collect();
            return Err(Refused::Changed(format!(
                "run `{}` started against {}; the integrations now point elsewhere. Resume it with the \
                 integrations file it started with",
                info.id,
                was.join(", ")
            )));
        }
        Ok(())
    }

    /// Runs a held run to its end (or its stop) and records how it ended.
    /// [`digest`] of `flow`, from the cache when this hall computed it before.
    fn digest(&self, flow: &str) -> Arc<str> {
        let mut cache = self.digests.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(d) = cache.get(flow) {
            return d.clone();
        }
        let d: Arc<str> = digest(self.catalog(), flow).into();
        cache.insert(flow.to_owned(), d.clone());
        d
    }

    async fn drive(
        &self,
        handle: Box<dyn RunHandle>,
        request: RunRequest,
        past: Past,
        stop: Option<watch::Receiver<StopLevel>>,
    ) -> Result<Ran, Refused> {
        Ok(self.drive_once(handle, request, past, stop).await?.0)
    }

    /// [`Hall::drive`], and whether the store refused the run's entries because another process
    /// began its key meanwhile ([`KEY_TAKEN`]; nothing was sent, and the run was not recorded).
    async fn drive_once(
        &self,
        handle: Box<dyn RunHandle>,
        mut request: RunRequest,
        past: Past,
        stop: Option<watch::Receiver<StopLevel>>,
    ) -> Result<(Ran, bool), Refused> {
        let handle: Arc<dyn RunHandle> = Arc::from(handle);
        let id = handle.info().id.clone();
        let log = Arc::new(LogOf::new(handle.clone()));
        let secrets = flowcat_engine::run::Secrets::default();
        request.durable = Durable {
            secrets: secrets.clone(),
            journal: Some(log.clone()),
            past: Arc::new(past),
            stop,
            deadline: handle.info().deadline_at.map(|at| {
                let left = at.saturating_sub(now_ms());
                tokio::time::Instant::now() + std::time::Duration::from_millis(left)
            }),
        };
        let mut record = self.runner.run(request).await?;
        record.id = Some(id);
        let status = match record.status {
            RunStatus::Succeeded => StoredStatus::Succeeded,
            RunStatus::Failed => StoredStatus::Failed,
            RunStatus::Interrupted => StoredStatus::Interrupted,
            RunStatus::NeedsAttention => StoredStatus::NeedsAttention,
        };
        if log.key_taken() {
            return Ok((Ran::Now(record), true));
        }
        // The journal keeps the record without the run's secrets, outputs included: only the
        // caller gets those, once (a resumed or repeated run's record shows them redacted).
        let kept = if secrets.is_empty() {
            None
        } else {
            let mut kept = secrets.redacted(&record).unwrap_or_else(|| RunRecord {
                nodes: Vec::new(),
                outputs: Map::new(),
                ..record.clone()
            });
            kept.outputs.values_mut().for_each(|v| secrets.value(v));
            Some(kept)
        };
        match handle.end(status, kept.as_ref().unwrap_or(&record)).await {
            Err(e) if e.code == KEY_TAKEN => Ok((Ran::Now(record), true)),
            Err(e) => Err(e.into()),
            Ok(()) => Ok((Ran::Now(record), false)),
        }
    }
}

/// Ends an unfinished run of `store` as failed with `failure` (`flowcat runs abandon`, a
/// service's cancel), its record made of the nodes it journaled; it is never resumed. Refused
/// (`finished`, `busy`, `unknown_run`) as [`Store::resume`] refuses.
pub async fn abandon(
    store: &dyn Store,
    id: &str,
    failure: flowcat_engine::run::RunFailure,
    now_ms: u64,
) -> Result<RunRecord, JournalError> {
    let (handle, past) = store.resume(id).await?;
    let mut nodes: Vec<(String, flowcat_engine::run::NodeRecord)> =
        past.nodes.iter().filter_map(|(path, n)| Some((path.clone(), n.finished.as_ref()?.record.clone()))).collect();
    nodes.sort_by(|a, b| (a.1.started_at, &a.0).cmp(&(b.1.started_at, &b.0)));
    let info = handle.info().clone();
    let record = RunRecord {
        flow: info.flow.clone(),
        id: Some(info.id.clone()),
        status: RunStatus::Failed,
        error: Some(failure),
        inputs: info.inputs.clone(),
        vars: info.vars.clone(),
        outputs: Map::new(),
        started_at: info.created_at,
        ended_at: now_ms,
        nodes: nodes
            .into_iter()
            .map(|(path, mut n)| {
                n.id = path;
                n
            })
            .collect(),
    };
    handle.end(StoredStatus::Failed, &record).await?;
    Ok(record)
}

/// The call that started a journaled run.
fn call_of(info: &RunInfo) -> Call {
    Call { flow: info.flow.clone(), inputs: info.inputs.clone(), vars: info.vars.clone(), binds: info.binds.clone() }
}

/// Slot → the host its integration talks to, sorted.
fn targets(bindings: &HashMap<String, Arc<Binding>>) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = bindings
        .iter()
        .filter_map(|(slot, b)| {
            let bound = b.value.downcast_ref::<crate::bind::Bound>()?;
            Some((slot.clone(), bound.integration.authority()))
        })
        .collect();
    out.sort();
    out
}

/// The flow's `key:` rendered from a run's inputs, the defaults of those not given included (as
/// the runner will fill them in).
fn key_of(flow: &Flow, given: &Map<String, Value>) -> Result<Option<String>, Refused> {
    if flow.key.is_none() {
        return Ok(None);
    }
    let mut inputs = given.clone();
    for input in &flow.signature.inputs {
        if let (true, Some(default)) = (inputs.get(&input.name).is_none_or(Value::is_null), &input.default) {
            inputs.insert(input.name.clone(), default.clone());
        }
    }
    flow.render_key(&inputs).map_err(|e| {
        let problem = format!("the run key cannot be made from these inputs: {}", e.message);
        Refused::Run(RunError::Inputs { flow: flow.id().to_owned(), problems: vec![problem] })
    })
}

/// The signals `flow` and every flow it may call wait for (`wait_for` nodes), each once. Every
/// `wait_for` of one name in a run sees the one delivery, so they must agree on its payload.
pub fn signals(catalog: &Catalog, flow: &str) -> Result<Vec<flowcat_engine::journal::SignalSpec>, String> {
    let mut seen = std::collections::BTreeSet::new();
    let mut todo = vec![flow.to_owned()];
    let mut out: Vec<(flowcat_engine::journal::SignalSpec, String)> = Vec::new();
    while let Some(id) = todo.pop() {
        if !seen.insert(id.clone()) {
            continue;
        }
        let Some(f) = catalog.get(&id) else { continue };
        for node in &f.plan.nodes {
            if let Some(call) = &node.compiled.calls {
                todo.push(call.flow.clone());
            }
            let Some(spec) = &node.compiled.signal else { continue };
            match out.iter().find(|(s, _)| s.name == spec.name) {
                Some((s, _)) if s == spec => {}
                Some((s, other)) => {
                    return Err(format!(
                        "flows `{other}` and `{id}` both wait for signal `{}`, with different payloads ({} and {}): \
                         one delivery wakes every `wait_for` of a name, so give them one payload or two names",
                        spec.name,
                        s.declared(),
                        spec.declared()
                    ));
                }
                None => out.push((spec.clone(), id.clone())),
            }
        }
    }
    Ok(out.into_iter().map(|(s, _)| s).collect())
}

/// A digest of the text of `flow` and of every flow it may call, so that a run is not resumed
/// with flows that changed under it.
pub fn digest(catalog: &Catalog, flow: &str) -> String {
    let mut seen = std::collections::BTreeSet::new();
    let mut todo = vec![flow.to_owned()];
    while let Some(id) = todo.pop() {
        if !seen.insert(id.clone()) {
            continue;
        }
        if let Some(f) = catalog.get(&id) {
            todo.extend(f.plan.nodes.iter().filter_map(|n| n.compiled.calls.as_ref().map(|c| c.flow.clone())));
        }
    }
    let mut hash = sha2::Sha256::new();
    for id in &seen {
        let text = catalog.entry(id).map(|e| e.source.text.as_str()).unwrap_or_default();
        hash.update((id.len() as u64).to_le_bytes());
        hash.update(id.as_bytes());
        hash.update((text.len() as u64).to_le_bytes());
        hash.update(text.as_bytes());
    }
    hash.finalize().iter().take(16).map(|b| format!("{b:02x}")).collect()
}

fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or_default()
}

/// A run handle as the run's log (the handle is one; Rust 1.85 cannot upcast the `Arc`), which
/// notes whether the store answered [`KEY_TAKEN`] to an entry.
struct LogOf(Arc<dyn RunHandle>, AtomicBool);

impl LogOf {
    fn new(handle: Arc<dyn RunHandle>) -> LogOf {
        LogOf(handle, AtomicBool::new(false))
    }

    /// Whether the run's key turned out begun by another process (nothing was sent).
    fn key_taken(&self) -> bool {
        self.1.load(Ordering::Relaxed)
    }

    fn noting<T>(&self, r: Result<T, JournalError>) -> Result<T, JournalError> {
        if r.as_ref().is_err_and(|e| e.code == KEY_TAKEN) {
            self.1.store(true, Ordering::Relaxed);
        }
        r
    }
}

impl RunLog for LogOf {
    fn started(&self, path: &[String], at_ms: u64) {
        self.0.started(path, at_ms)
    }

    fn intent<'a>(&'a self, path: &'a [String], request: &'a Value) -> BoxFuture<'a, Result<(), JournalError>> {
        Box::pin(async move { self.noting(self.0.intent(path, request).await) })
    }

    fn finished<'a>(&'a self, path: &'a [String], node: &'a Finished) -> BoxFuture<'a, Result<(), JournalError>> {
        Box::pin(async move { self.noting(self.0.finished(path, node).await) })
    }

    fn noted(&self, path: &[String], node: Finished) {
        self.0.noted(path, node)
    }

    fn run_id(&self) -> Option<&str> {
        Some(&self.0.info().id)
    }

    fn wait_signal<'a>(
        &'a self,
        path: &'a [String],
        name: &'a str,
        until_ms: Option<u64>,
        said: &'a (dyn Fn() + Send + Sync),
    ) -> BoxFuture<'a, Result<Value, JournalError>> {
        Box::pin(async move { self.noting(self.0.wait_signal(path, name, until_ms, said).await) })
    }
}
