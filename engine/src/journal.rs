//! The journal's contract: what a run writes as it goes, and what a resumed run reads back.
//!
//! The engine knows flows, not databases. It calls a [`RunLog`] at the three moments that make
//! a run resumable (a node starts, a write is about to be sent, a node finished) and takes a
//! [`Past`] when it resumes. A [`Store`] keeps runs; the SQLite store (`flowcat-journal`) is
//! one, and a shared server store can be another without touching the engine.
//!
//! The rules the executor keeps (docs/architecture.md, "The journal"):
//! - a node's result is durable ([`RunLog::finished`] returned `Ok`) before any node that
//!   waits for it starts;
//! - a write's request is durable ([`RunLog::intent`]) before it is sent, so a crash between
//!   the two leaves "outcome unknown", never nothing;
//! - on resume, a finished node is never run again; a node that was in flight is run again if
//!   it only reads, and a write in flight is reconciled first (see [`crate::node::Effect`]).
//!
//! Nothing in the journal may be a secret: requests are journaled as their kind redacts them
//! for the record, and the record is all a store ever sees.

use std::collections::HashMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

pub use crate::model::InputType;
pub use crate::node::log::{Finished, JournalError, RunLog, path_key};
pub use crate::node::rows::{
    FinishedRows, RESULT, ROW, RecordRows, Rows, Unresolved, resolve_finished, resolve_record,
};
use crate::node::{BoxFuture, RunRecord};

/// What the journal knows of one node of an unfinished run.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct NodePast {
    /// When it first started (Unix ms): a resumed wait counts the time already spent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<u64>,
    /// The write it was about to send (redacted), journaled before sending: with no
    /// `finished`, the write's outcome is unknown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub intent: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished: Option<Finished>,
}

/// Everything the journal holds of an unfinished run's nodes, by [`path_key`].
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Past {
    pub nodes: HashMap<String, NodePast>,
}

impl Past {
    pub fn node(&self, key: &str) -> Option<&NodePast> {
        self.nodes.get(key)
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }
}

/// Where a run stands, as a store lists it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StoredStatus {
    /// Held by a live process now.
    Running,
    /// Not finished and held by nobody (the process crashed or was stopped): `flowcat resume`.
    Interrupted,
    /// Stopped on a write whose outcome is unknown and that could not be reconciled: a person
    /// checks Duo, then resumes or abandons it.
    NeedsAttention,
    Succeeded,
    Failed,
    /// Not finished, parked on a `wait_for` node until its signal arrives or its timeout passes
    /// ([`RunSummary::waiting`] says which, until when, and whether a process holds it).
    Waiting,
}

impl StoredStatus {
    pub const NAMES: &'static [&'static str] =
        &["running", "interrupted", "needs_attention", "succeeded", "failed", "waiting"];

    pub fn name(self) -> &'static str {
        Self::NAMES[self as usize]
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "running" => StoredStatus::Running,
            "interrupted" => StoredStatus::Interrupted,
            "needs_attention" => StoredStatus::NeedsAttention,
            "succeeded" => StoredStatus::Succeeded,
            "failed" => StoredStatus::Failed,
            "waiting" => StoredStatus::Waiting,
            _ => return None,
        })
    }

    /// A finished run is never run again.
    pub fn is_final(self) -> bool {
        matches!(self, StoredStatus::Succeeded | StoredStatus::Failed)
    }
}

/// What a run was started with: enough to resume it in another process.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RunInfo {
    /// Assigned by the store: sortable by creation time, safe in a file name and a URL.
    pub id: String,
    pub flow: String,
    /// A digest of the text of the flow and every flow it may call: resuming a run whose flows
    /// changed since is refused.
    pub flow_digest: String,
    /// The run key: one run per `(flow, key)`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    pub inputs: Map<String, Value>,
    pub vars: Map<String, Value>,
    /// Slot → integration name (never the integration's keys), as given with `--bind`.
    pub binds: Vec<(String, String)>,
    /// Slot → the host its integration talks to, when the run started: a resume bound to
    /// another account is refused.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub targets: Vec<(String, String)>,
    /// Unix ms.
    pub created_at: u64,
    /// The whole run's deadline, Unix ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deadline_at: Option<u64>,
    /// The flow file the run named (an absolute path), when it named a file rather than a
    /// catalog id: a resume reads the flow from there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// The signals the run's flow (and the flows it calls) may wait for, with their payloads'
    /// types: a store accepts only these ([`Store::signal`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub signals: Vec<SignalSpec>,
}

/// The largest signal payload a store accepts, as JSON text.
pub const MAX_SIGNAL_BYTES: usize = 64 * 1024;

/// A signal a run may be sent: its name, and its payload's fields with their types (every field
/// required, no other field allowed). Payloads are stored in the journal as they came: they must
/// hold no secret.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignalSpec {
    pub name: String,
    pub payload: Vec<(String, InputType)>,
}

impl SignalSpec {
    /// Checks a payload against the declared fields: every problem, one a line.
    pub fn check(&self, payload: &Value) -> Result<(), Vec<String>> {
        let Value::Object(fields) = payload else {
            return Err(vec![format!("the payload of signal `{}` must be a JSON object", self.name)]);
        };
        let mut problems = Vec::new();
        for (name, ty) in &self.payload {
            match fields.get(name) {
                None => problems.push(format!("field `{name}` ({}) is missing", ty.name())),
                Some(v) if !ty.accepts(v) => {
                    problems.push(format!("field `{name}` must be a {}, not {}", ty.name(), json_type(v)))
                }
                Some(_) => {}
            }
        }
        for name in fields.keys() {
            if !self.payload.iter().any(|(n, _)| n == name) {
                problems.push(format!("field `{name}` is not declared (declared: {})", self.declared()));
            }
        }
        if problems.is_empty() { Ok(()) } else { Err(problems) }
    }

    /// `approved: boolean, approver: string`.
    pub fn declared(&self) -> String {
        let fields: Vec<String> = self.payload.iter().map(|(n, t)| format!("{n}: {}", t.name())).collect();
        if fields.is_empty() { "no field".to_owned() } else { fields.join(", ") }
    }
}

fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// What [`Store::signal`] did with a signal. Only [`Delivery::Delivered`] stored it; every other
/// answer is a refusal the sender can act on ([`Delivery::refusal`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "outcome")]
pub enum Delivery {
    /// Stored for the run; a node waiting for it wakes (at once in this process, within a
    /// second in another; a run no process holds finds it when it resumes).
    Delivered,
    /// No run of this id.
    UnknownRun,
    /// The run ended: nothing waits any more.
    Finished { status: StoredStatus },
    /// The run's flows declare no `wait_for` of this signal.
    NotAwaited { awaited: Vec<String> },
    /// The payload does not fit the declared fields: nothing was stored, nothing woke.
    BadPayload { problems: Vec<String> },
    /// This signal was delivered to the run before: a signal is delivered once.
    AlreadyDelivered,
}

impl Delivery {
    /// A short code for the answer (`delivered`, `unknown_run`, `finished`, `not_awaited`,
    /// `bad_payload`, `already_delivered`).
    pub fn code(&self) -> &'static str {
        match self {
            Delivery::Delivered => "delivered",
            Delivery::UnknownRun => "unknown_run",
            Delivery::Finished { .. } => "finished",
            Delivery::NotAwaited { .. } => "not_awaited",
            Delivery::BadPayload { .. } => "bad_payload",
            Delivery::AlreadyDelivered => "already_delivered",
        }
    }

    /// Why the signal `name` was refused for run `id`, and what to do; `None` when delivered.
    pub fn refusal(&self, id: &str, name: &str) -> Option<String> {
        Some(match self {
            Delivery::Delivered => return None,
            Delivery::UnknownRun => {
                format!("no run `{id}` in the journal: `flowcat runs list --status waiting` shows the waiting runs")
            }
            Delivery::Finished { status } => {
                format!("run `{id}` has {} already: nothing waits for signal `{name}` any more", status.name())
            }
            Delivery::NotAwaited { awaited } if awaited.is_empty() => {
                format!("run `{id}` waits for no signal: its flow has no `wait_for` node")
            }
            Delivery::NotAwaited { awaited } => format!(
                "run `{id}` does not wait for a signal `{name}`: its flow waits for {}",
                awaited.iter().map(|a| format!("`{a}`")).collect::<Vec<_>>().join(", ")
            ),
            Delivery::BadPayload { problems } => format!(
                "the payload of signal `{name}` does not fit what run `{id}` waits for, so it was not delivered:\n  {}",
                problems.join("\n  ")
            ),
            Delivery::AlreadyDelivered => {
                format!("signal `{name}` was delivered to run `{id}` before: a signal is delivered once")
            }
        })
    }
}

/// A run parked on a `wait_for` node, as a store lists it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Waiting {
    /// The waiting node's [`path_key`].
    pub path: String,
    pub signal: String,
    /// When its timeout passes (Unix ms): resume it then, even without the signal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<u64>,
    /// The signal was delivered and the node has not taken it yet (no process holds the run).
    pub delivered: bool,
    /// A live process holds the run (it wakes by itself); else it must be resumed.
    pub held: bool,
}

/// One run as a store lists it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunSummary {
    pub info: RunInfo,
    pub status: StoredStatus,
    /// Unix ms of the last change.
    pub updated_at: u64,
    /// Why it failed or needs attention, in one line.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// Set when the run is parked on a `wait_for` node (status [`StoredStatus::Waiting`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waiting: Option<Waiting>,
}

/// One run with what it did: the final record when it finished, else the journaled nodes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StoredRun {
    pub summary: RunSummary,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub record: Option<RunRecord>,
    pub past: Past,
}

/// What to do when the run key's run is held by another process.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IfBusy {
    /// Wait until it is released, then take the finished record or resume.
    #[default]
    Wait,
    /// Answer [`Begun::Busy`] at once.
    Refuse,
}

/// The code of the error a store answers to the first write's intent of a run with a key whose
/// beginning it did not wait for, when another process began a run of the same key meanwhile:
/// nothing was sent, and the caller begins the run again (it then finds the other's run).
pub const KEY_TAKEN: &str = "key_taken";

/// A request to start a run (or find the run its key names).
#[derive(Clone, Debug, Default)]
pub struct Start {
    /// `id` is ignored: the store assigns it.
    pub info: RunInfo,
    pub if_busy: IfBusy,
    /// The run's id is told to someone as soon as it begins (a service's `202`): a run with a
    /// key is then begun durably before `begin` answers. Otherwise a store may hold a keyed
    /// beginning and answer [`KEY_TAKEN`] to the run's first awaited entry if another process
    /// began the key meanwhile.
    pub awaited: bool,
}

/// A run this process now holds: no other process runs it until the handle is dropped.
pub trait RunHandle: RunLog {
    fn info(&self) -> &RunInfo;
    /// Marks the run ended with `record` (`status` says how: finished, interrupted, needs
    /// attention). An end that is not final (interrupted, needs attention) is durable when `Ok`.
    /// A final end may be written a little later (a store may gather it with other runs' work):
    /// every write the run made was durable before it was sent, so an end lost in a crash only
    /// makes the run read as interrupted, and resuming it runs its reads again. Closing the
    /// store writes it.
    fn end<'a>(&'a self, status: StoredStatus, record: &'a RunRecord) -> BoxFuture<'a, Result<(), JournalError>>;
}

impl fmt::Debug for dyn RunHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RunHandle").field("id", &self.info().id).finish()
    }
}

/// What [`Store::begin`] found.
#[derive(Debug)]
pub enum Begun {
    /// A new run.
    Fresh(Box<dyn RunHandle>),
    /// The key named an unfinished run; it is now held here, to be resumed from `Past`.
    Resumed(Box<dyn RunHandle>, Past),
    /// The key named a finished run: its record, nothing to run.
    Done(Box<StoredRun>),
    /// The key's run is held by another process (with [`IfBusy::Refuse`]).
    Busy { id: String },
}

/// An unfinished run taken to be resumed: the handle that holds it, and what it did.
pub type Held = (Box<dyn RunHandle>, Past);

/// Which runs to list.
#[derive(Clone, Debug, Default)]
pub struct Filter {
    pub status: Vec<StoredStatus>,
    pub flow: Option<String>,
    /// Newest first; at most this many (0: no limit).
    pub limit: usize,
}

/// Where runs are kept. Opening a store checks it (version, integrity, writability) before
/// anything is run; a journal from a newer flowcat is refused, never rewritten.
pub trait Store: Send + Sync {
    /// Starts a run, or finds the run its key names.
    fn begin(&self, start: Start) -> BoxFuture<'_, Result<Begun, JournalError>>;
    /// Takes an unfinished run to resume it: `busy` when another process holds it,
    /// `unknown_run` when there is none, `finished` when it ended.
    fn resume<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<Held, JournalError>>;
    fn list(&self, filter: &Filter) -> Result<Vec<RunSummary>, JournalError>;
    fn show(&self, id: &str) -> Result<Option<StoredRun>, JournalError>;
    /// Deletes finished runs that ended before `before_ms` (Unix ms); answers how many.
    fn prune(&self, before_ms: u64) -> Result<usize, JournalError>;
    /// Answers once everything journaled so far is durable (the ends a store may gather with
    /// later work included), or why it could not be written.
    fn flush(&self) -> BoxFuture<'_, Result<(), JournalError>>;
    /// Says that runs of `flow` with these `keys` are about to begin (the next rows of a bulk
    /// run): a store may look them up together now, so that each [`Store::begin`] need not look
    /// its own up. Only a hint: `begin` still finds a key's run, and a key another process began
    /// meanwhile is still refused before the run sends a write (`key_taken`). Does nothing by
    /// default.
    fn look_ahead(&self, flow: &str, keys: &[String]) {
        let _ = (flow, keys);
    }
    /// This process is stopping for good (a service's graceful shutdown): the runs it lets go
    /// from now on that ended `interrupted` with no write in doubt and no wait are left for any
    /// live process of a shared store to resume at once, not for the next start. A run with a
    /// write in doubt is not: its write may still reach Duo, and only the holder's lease bounds
    /// when (another process reconciles it once that lease passed). Does nothing by default (a
    /// store one process owns has no other process to hand runs to).
    fn hand_over_on_stop(&self) {}
    /// Delivers signal `name` with `payload` to run `id`: stored (durable when it answers
    /// [`Delivery::Delivered`]) only if the run is not finished, its flows declare a `wait_for`
    /// of that name, the payload fits the declared fields and it was not delivered before. A
    /// signal that comes before the run reaches its `wait_for` is kept until it does.
    fn signal<'a>(
        &'a self,
        id: &'a str,
        name: &'a str,
        payload: &'a Value,
    ) -> BoxFuture<'a, Result<Delivery, JournalError>>;
    /// Runs parked on a `wait_for` that no live process holds and that should be resumed now:
    /// their signal was delivered, or their timeout passed by `now_ms` (Unix ms). For a service
    /// that evicts waiting runs from memory and resumes them when they can go on.
    fn wakeable(&self, now_ms: u64) -> Result<Vec<String>, JournalError>;
    /// The store's outbox of run-end notices (for completion webhooks), if it keeps one.
    fn outbox(&self) -> Option<&dyn crate::outbox::Outbox> {
        None
    }
    /// Asks the process that holds run `id` to cancel it, for a store that several processes
    /// share: `true` when another live process holds the run and the request is stored for it
    /// ([`Store::cancel_requests`] there); `false` when no other process holds it, so the caller
    /// ends it itself. A store of one process answers `false`.
    fn request_cancel(&self, id: &str) -> Result<bool, JournalError> {
        let _ = id;
        Ok(false)
    }
    /// The runs this process holds whose cancel another process asked for.
    fn cancel_requests(&self) -> Result<Vec<String>, JournalError> {
        Ok(Vec::new())
    }
    /// How many processes share the store now (at least 1): each integration's rate limit is
    /// divided among them, since Duo's limits are per application, not per machine.
    fn sharers(&self) -> usize {
        1
    }
    /// Tells the other processes sharing the store that `integration` was answered 429 now, so
    /// that they slow down too.
    fn note_throttled(&self, integration: &str) -> Result<(), JournalError> {
        let _ = integration;
        Ok(())
    }
    /// The integrations another process sharing the store was answered 429 for after `since_ms`
    /// (Unix ms, the database's clock), with the latest such time.
    fn throttled_since(&self, since_ms: u64) -> Result<Vec<(String, u64)>, JournalError> {
        let _ = since_ms;
        Ok(Vec::new())
    }
}

impl fmt::Debug for dyn Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Store")
    }
}

/// The nodes of this process waiting for a signal, by run id and signal name: a store wakes them
/// at once when it delivers that signal itself (one delivered by another process is seen at the
/// waiting node's next look). Shared by the stores, so that each keeps only its own storage.
#[derive(Debug, Default)]
pub struct SignalWaiters {
    map: std::sync::Mutex<HashMap<(String, String), std::sync::Arc<tokio::sync::Notify>>>,
}

impl SignalWaiters {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(String, String), std::sync::Arc<tokio::sync::Notify>>> {
        self.map.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Registers a node waiting for signal `name` of run `id`, until the answer is dropped.
    pub fn register(&self, id: &str, name: &str) -> SignalWaiter<'_> {
        let key = (id.to_owned(), name.to_owned());
        let notify = self.lock().entry(key.clone()).or_default().clone();
        SignalWaiter { waiters: self, key, notify }
    }

    /// Wakes the nodes of this process waiting for signal `name` of run `id`.
    pub fn wake(&self, id: &str, name: &str) {
        let notify = self.lock().get(&(id.to_owned(), name.to_owned())).cloned();
        if let Some(notify) = notify {
            notify.notify_waiters();
        }
    }
}

/// A node's registration for wake-ups ([`SignalWaiters::register`]), forgotten when the last
/// waiter of its run and signal is dropped.
#[derive(Debug)]
pub struct SignalWaiter<'a> {
    waiters: &'a SignalWaiters,
    key: (String, String),
    notify: std::sync::Arc<tokio::sync::Notify>,
}

impl SignalWaiter<'_> {
    /// A wake-up to arm (`enable`) before looking for the signal, so that a delivery between the
    /// look and the wait is not missed.
    pub fn notified(&self) -> tokio::sync::futures::Notified<'_> {
        self.notify.notified()
    }
}

impl Drop for SignalWaiter<'_> {
    fn drop(&mut self) {
        let mut map = self.waiters.lock();
        // This registration and the map's: nobody else waits.
        if map.get(&self.key).is_some_and(|n| std::sync::Arc::strong_count(n) == 2) {
            map.remove(&self.key);
        }
    }
}

#[cfg(test)]
mod signal_waiter_tests {
    use super::SignalWaiters;

    #[test]
    fn a_registration_is_forgotten_with_its_last_waiter_and_a_wake_reaches_the_armed() {
        let waiters = SignalWaiters::default();
        let a = waiters.register("r1", "approval");
        let b = waiters.register("r1", "approval");
        {
            let mut woken = std::pin::pin!(a.notified());
            woken.as_mut().enable();
            waiters.wake("r1", "approval");
            waiters.wake("r1", "other");
            let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
            assert!(woken.as_mut().poll(&mut cx).is_ready(), "the armed waiter was woken");
        }
        drop(a);
        assert_eq!(waiters.lock().len(), 1, "b still waits");
        drop(b);
        assert!(waiters.lock().is_empty(), "forgotten with its last waiter");
    }
}
