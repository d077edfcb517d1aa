//! The outbox's contract: notices of runs that ended, kept by a store until something delivers
//! them (the service's completion webhooks, docs/serve.md "Webhooks").
//!
//! A store with an outbox writes a notice for each hook a [`Subscriptions`] rule names **in the
//! same transaction as the run's end**, so a run is never read as ended without its notices,
//! and a crash loses neither. A deliverer takes due notices a few at a time ([`Outbox::take_due`]
//! leases them, so two deliverers never send one notice at once), sends them, and records each
//! attempt ([`Outbox::attempted`]): delivered, to be retried at a time, or given up.
//!
//! A notice names its hook and its run, never a URL or a secret: those are the deliverer's.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::journal::{JournalError, StoredStatus};

/// Which hooks want to hear of a run of `flow` that ended with `status`: their names.
pub type Subscriptions = Arc<dyn Fn(&str, StoredStatus) -> Vec<String> + Send + Sync>;

/// Where a notice stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NoticeState {
    /// To be sent at `due_at` (again, after a failed attempt).
    Pending,
    /// The receiver acknowledged it.
    Delivered,
    /// Given up: too many attempts, too old, or refused by the receiver.
    Failed,
}

impl NoticeState {
    pub fn name(self) -> &'static str {
        match self {
            NoticeState::Pending => "pending",
            NoticeState::Delivered => "delivered",
            NoticeState::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "pending" => NoticeState::Pending,
            "delivered" => NoticeState::Delivered,
            "failed" => NoticeState::Failed,
            _ => return None,
        })
    }
}

/// One notice: a run's end, for one hook.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Notice {
    /// The store's number for it.
    pub seq: i64,
    /// Unique and fixed when the notice is written: receivers dedupe retries by it.
    pub event: String,
    pub hook: String,
    pub run_id: String,
    pub flow: String,
    /// How the run ended.
    pub status: StoredStatus,
    /// Unix ms.
    pub created_at: u64,
    pub state: NoticeState,
    /// Attempts made so far.
    pub attempts: u32,
    /// When it is (next) due, Unix ms; while leased, when the lease ends.
    pub due_at: u64,
    /// The body sent, fixed at the first attempt so that every retry sends the same bytes.
    pub body: Option<String>,
    /// Why the last attempt failed (no secret: a status or a transport error's kind).
    pub last_error: Option<String>,
}

/// What one attempt came to.
#[derive(Clone, Debug, PartialEq)]
pub enum Attempted {
    Delivered {
        at: u64,
    },
    /// Send it again at `due_at` (Unix ms).
    Retry {
        due_at: u64,
        error: String,
    },
    /// Given up.
    Failed {
        error: String,
    },
}

/// A store's outbox.
pub trait Outbox: Send + Sync {
    /// From now on, each run this process ends (succeeded, failed or needs attention) gets a
    /// notice for each hook `rule` names, written with its end.
    fn subscribe(&self, rule: Subscriptions);
    /// Woken after a commit that wrote notices (a deliverer waits on it between due times).
    fn woken(&self) -> Arc<tokio::sync::Notify>;
    /// At most `limit` pending notices due by `now_ms`, oldest due first, each leased until
    /// `lease_until` (its `due_at` is moved there, so nobody else takes it meanwhile; a
    /// deliverer that dies lets it come due again then).
    fn take_due(&self, now_ms: u64, lease_until: u64, limit: usize) -> Result<Vec<Notice>, JournalError>;
    /// When the next pending notice is due, if any.
    fn next_due(&self) -> Result<Option<u64>, JournalError>;
    /// Records an attempt at notice `seq`, with the body it sent (kept from the first attempt
    /// on: a later `body` is ignored).
    fn attempted(&self, seq: i64, body: Option<&str>, outcome: &Attempted) -> Result<(), JournalError>;
    /// Notices by state (all with `None`), newest first, at most `limit`.
    fn notices(&self, state: Option<NoticeState>, limit: usize) -> Result<Vec<Notice>, JournalError>;
}
