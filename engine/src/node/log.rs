//! The hooks a run journals through: the part of the journal's contract that the run side
//! sees. The rest (stores, run listings) is [`crate::journal`].

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{BoxFuture, NodeRecord};

/// A node's place in a run: its id after the ids of the subflow nodes it runs inside, joined
/// with `/` (node ids never contain one), e.g. `phone/create`.
pub fn path_key(path: &[String]) -> String {
    path.join("/")
}

/// Why the journal could not do what it was asked. The message names the file and the fix;
/// it never holds a secret.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct JournalError {
    /// `corrupt`, `read_only`, `full`, `newer_version`, `busy`, `unknown_run`, `io`, …
    pub code: &'static str,
    pub message: String,
}

impl JournalError {
    pub fn new(code: &'static str, message: impl Into<String>) -> Self {
        JournalError { code, message: message.into() }
    }
}

/// A node that finished, as journaled: its record and the branch it took. A subflow node's
/// record nests its subflow's run, whose nodes are journaled under their own paths too: a
/// journal may store it naming those entries ([`crate::journal::FinishedRows`]).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Finished {
    pub record: NodeRecord,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub branch: Option<String>,
}

/// The journal of one run, as the executor writes it.
pub trait RunLog: Send + Sync {
    /// A node starts. Not awaited: losing it in a crash loses only the time a resumed wait
    /// credits.
    fn started(&self, path: &[String], at_ms: u64);
    /// A write is about to be sent with this (redacted) request. Durable when `Ok`.
    fn intent<'a>(&'a self, path: &'a [String], request: &'a Value) -> BoxFuture<'a, Result<(), JournalError>>;
    /// A node finished (succeeded, or failed under `on_error: continue`). Durable when `Ok`;
    /// the nodes that wait for it start only then. Used for writes, whose result a crash must
    /// not lose.
    fn finished<'a>(&'a self, path: &'a [String], node: &'a Finished) -> BoxFuture<'a, Result<(), JournalError>>;
    /// A node finished whose loss in a crash costs only running it again (a read, a local
    /// node, a subflow whose own nodes are journaled): journaled in order, durable with the
    /// next durable entry (an intent, a write's result, the run's end), not awaited. Given by
    /// value: a store may keep it as it is and write it only if it must (a run that finishes
    /// soon has it in its final record).
    fn noted(&self, path: &[String], node: Finished);
    /// The run's id in its store, for telling a person how to send it a signal.
    fn run_id(&self) -> Option<&str> {
        None
    }
    /// A `wait_for` node at `path` waits for the signal `name` until `until_ms` (Unix ms) at the
    /// latest. The store journals that the run waits (durable before it waits, so that the run
    /// lists as waiting and a delivery is accepted), calls `said` once it is (what tells
    /// people and scripts to send the signal is said then, never before a delivery would be
    /// accepted), then answers the signal's payload once it is delivered, at once if it was
    /// delivered before. A delivery in this process wakes it at
    /// once, one from another process within a bounded interval. Dropping the future stops
    /// waiting; the journal still says the run waits, and a resume waits again. The journal
    /// forgets that the run waits when the node's result is journaled or the run ends.
    ///
    /// A log that cannot receive signals answers `no_signals`.
    fn wait_signal<'a>(
        &'a self,
        path: &'a [String],
        name: &'a str,
        until_ms: Option<u64>,
        said: &'a (dyn Fn() + Send + Sync),
    ) -> BoxFuture<'a, Result<Value, JournalError>> {
        let _ = (path, until_ms, said);
        Box::pin(async move {
            Err(JournalError::new(
                "no_signals",
                format!("this run's journal cannot receive signals, so nothing can deliver `{name}`"),
            ))
        })
    }
}

impl fmt::Debug for dyn RunLog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RunLog")
    }
}
