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

pub use crate::node::log::{Finished, JournalError, RunLog, path_key};
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
}

impl StoredStatus {
    pub const NAMES: &'static [&'static str] = &["running", "interrupted", "needs_attention", "succeeded", "failed"];

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

/// A request to start a run (or find the run its key names).
#[derive(Clone, Debug, Default)]
pub struct Start {
    /// `id` is ignored: the store assigns it.
    pub info: RunInfo,
    pub if_busy: IfBusy,
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
}

impl fmt::Debug for dyn Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Store")
    }
}
