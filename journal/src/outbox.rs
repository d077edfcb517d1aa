//! The outbox (`flowcat_engine::outbox`): notices of run ends for the service's webhooks.
//!
//! A notice is written by the writer in the transaction of its run's end ([`end_notices`] names
//! them when the handle ends the run), so a run never reads as ended without its notices. The
//! deliverer's calls (take, record an attempt, list) go through the side connection in their
//! own short IMMEDIATE transactions, as `prune` does; the writer and they are ordered by
//! SQLite's write lock.

use std::sync::{Arc, PoisonError, RwLock};

use flowcat_engine::journal::{JournalError, StoredStatus};
use flowcat_engine::outbox::{Attempted, Notice, NoticeState, Outbox, Subscriptions};
use rusqlite::{Connection, Row, params};

use crate::Journal;
use crate::error::{self, Doing};
use crate::writer::sql_ms;

/// The `(hook, event id)` of each notice of a run of `flow` ending with `status` now: one per
/// hook the subscriptions name, for the ends worth telling (succeeded, failed, needs
/// attention; an interrupted run is resumed and tells its end then). Every store names its
/// notices so (the Postgres one too), so that an event id reads the same whichever wrote it.
pub fn end_notices(
    subscriptions: &RwLock<Option<Subscriptions>>,
    flow: &str,
    status: StoredStatus,
    at: u64,
) -> Vec<(String, String)> {
    if !matches!(status, StoredStatus::Succeeded | StoredStatus::Failed | StoredStatus::NeedsAttention) {
        return Vec::new();
    }
    let rule = subscriptions.read().unwrap_or_else(PoisonError::into_inner).clone();
    let Some(rule) = rule else { return Vec::new() };
    let mut hooks = rule(flow, status);
    hooks.sort();
    hooks.dedup();
    // The event id: `e`, then the time and randomness as a run id has them, unique per end, and
    // fixed from now on (every attempt sends it).
    let stem = crate::id::fresh(at);
    hooks.into_iter().map(|hook| (hook.clone(), format!("e{}.{hook}", &stem[1..]))).collect()
}

const COLUMNS: &str = "seq, event, hook, run_id, flow, status, created_at, state, attempts, due_at, body, last_error";

fn notice(r: &Row<'_>) -> rusqlite::Result<Notice> {
    let status: String = r.get(5)?;
    let state: String = r.get(7)?;
    Ok(Notice {
        seq: r.get(0)?,
        event: r.get(1)?,
        hook: r.get(2)?,
        run_id: r.get(3)?,
        flow: r.get(4)?,
        status: StoredStatus::parse(&status).unwrap_or(StoredStatus::Failed),
        created_at: r.get::<_, i64>(6)?.max(0) as u64,
        state: NoticeState::parse(&state).unwrap_or(NoticeState::Failed),
        attempts: r.get::<_, i64>(8)?.clamp(0, i64::from(u32::MAX)) as u32,
        due_at: r.get::<_, i64>(9)?.max(0) as u64,
        body: r.get(10)?,
        last_error: r.get(11)?,
    })
}

impl Journal {
    fn side<T>(&self, doing: Doing, f: impl FnOnce(&mut Connection) -> rusqlite::Result<T>) -> Result<T, JournalError> {
        let shared = self.shared();
        let mut conn = shared.side.lock().unwrap_or_else(PoisonError::into_inner);
        f(&mut conn).map_err(|e| error::sqlite(&e, &shared.file, doing))
    }
}

impl Outbox for Journal {
    fn subscribe(&self, rule: Subscriptions) {
        *self.shared().subscriptions.write().unwrap_or_else(PoisonError::into_inner) = Some(rule);
    }

    fn woken(&self) -> Arc<tokio::sync::Notify> {
        self.shared().outbox.clone()
    }

    fn take_due(&self, now_ms: u64, lease_until: u64, limit: usize) -> Result<Vec<Notice>, JournalError> {
        self.side(Doing::Written, |conn| {
            let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let mut taken = {
                let mut stmt = tx.prepare(&format!(
                    "UPDATE outbox SET due_at = ?2 WHERE seq IN (
                         SELECT seq FROM outbox WHERE state = 'pending' AND due_at <= ?1
                         ORDER BY due_at, seq LIMIT ?3)
                     RETURNING {COLUMNS}"
                ))?;
                let limit = i64::try_from(limit).unwrap_or(i64::MAX);
                let rows = stmt.query_map(params![sql_ms(now_ms), sql_ms(lease_until), limit], notice)?;
                rows.collect::<rusqlite::Result<Vec<Notice>>>()?
            };
            tx.commit()?;
            taken.sort_by_key(|n| n.seq);
            Ok(taken)
        })
    }

    fn next_due(&self) -> Result<Option<u64>, JournalError> {
        self.side(Doing::Read, |conn| {
            conn.query_row("SELECT min(due_at) FROM outbox WHERE state = 'pending'", [], |r| r.get::<_, Option<i64>>(0))
                .map(|v| v.map(|ms| ms.max(0) as u64))
        })
    }

    fn attempted(&self, seq: i64, body: Option<&str>, outcome: &Attempted) -> Result<(), JournalError> {
        let (state, due_at, error) = match outcome {
            Attempted::Delivered { at } => (NoticeState::Delivered, *at, None),
            Attempted::Retry { due_at, error } => (NoticeState::Pending, *due_at, Some(error.as_str())),
            Attempted::Failed { error } => (NoticeState::Failed, 0, Some(error.as_str())),
        };
        self.side(Doing::Written, |conn| {
            conn.execute(
                "UPDATE outbox SET state = ?2, attempts = attempts + 1, due_at = ?3, last_error = ?4,
                                   body = coalesce(body, ?5)
                 WHERE seq = ?1",
                params![seq, state.name(), sql_ms(due_at), error, body],
            )
            .map(drop)
        })
    }

    fn notices(&self, state: Option<NoticeState>, limit: usize) -> Result<Vec<Notice>, JournalError> {
        self.side(Doing::Read, |conn| {
            let mut stmt = conn.prepare(&format!(
                "SELECT {COLUMNS} FROM outbox WHERE ?1 IS NULL OR state = ?1 ORDER BY seq DESC LIMIT ?2"
            ))?;
            let limit = i64::try_from(limit).unwrap_or(i64::MAX);
            let rows = stmt.query_map(params![state.map(NoticeState::name), limit], notice)?;
            rows.collect()
        })
    }
}
