//! The outbox (`flowcat_engine::outbox`) in Postgres: notices of run ends, written in the
//! transaction of the end; deliverers on any replica take them with `FOR UPDATE SKIP LOCKED`
//! leases, so two never send one notice at once.

use std::sync::{Arc, PoisonError};

use flowcat_engine::journal::{JournalError, StoredStatus};
use flowcat_engine::outbox::{Attempted, Notice, NoticeState, Outbox, Subscriptions};
use postgres::Row;

use crate::{PgStore, sql_ms};

const COLUMNS: &str = "seq, event, hook, run_id, flow, status, created_at, state, attempts, due_at, body, last_error";

fn notice(r: &Row) -> Notice {
    Notice {
        seq: r.get(0),
        event: r.get(1),
        hook: r.get(2),
        run_id: r.get(3),
        flow: r.get(4),
        status: StoredStatus::parse(r.get(5)).unwrap_or(StoredStatus::Failed),
        created_at: r.get::<_, i64>(6).max(0) as u64,
        state: NoticeState::parse(r.get(7)).unwrap_or(NoticeState::Failed),
        attempts: r.get::<_, i32>(8).max(0) as u32,
        due_at: r.get::<_, i64>(9).max(0) as u64,
        body: r.get(10),
        last_error: r.get(11),
    }
}

impl Outbox for PgStore {
    fn subscribe(&self, rule: Subscriptions) {
        *self.shared.subscriptions.write().unwrap_or_else(PoisonError::into_inner) = Some(rule);
    }

    fn woken(&self) -> Arc<tokio::sync::Notify> {
        self.shared.outbox.clone()
    }

    fn take_due(&self, now_ms: u64, lease_until: u64, limit: usize) -> Result<Vec<Notice>, JournalError> {
        let (now, until, limit) = (sql_ms(now_ms), sql_ms(lease_until), i64::try_from(limit).unwrap_or(i64::MAX));
        self.shared.pool.call_blocking(move |conn| {
            let rows = conn.with(|c| {
                c.query(
                    &format!(
                        "UPDATE outbox SET due_at = $2 WHERE seq IN (
                             SELECT seq FROM outbox WHERE state = 'pending' AND due_at <= $1
                             ORDER BY due_at, seq LIMIT $3 FOR UPDATE SKIP LOCKED)
                         RETURNING {COLUMNS}"
                    ),
                    &[&now, &until, &limit],
                )
            })?;
            let mut taken: Vec<Notice> = rows.iter().map(notice).collect();
            taken.sort_by_key(|n| n.seq);
            Ok(taken)
        })
    }

    fn next_due(&self) -> Result<Option<u64>, JournalError> {
        self.shared.pool.call_blocking(|conn| {
            let row = conn.with(|c| c.query_one("SELECT min(due_at) FROM outbox WHERE state = 'pending'", &[]))?;
            Ok(row.get::<_, Option<i64>>(0).map(|ms| ms.max(0) as u64))
        })
    }

    fn attempted(&self, seq: i64, body: Option<&str>, outcome: &Attempted) -> Result<(), JournalError> {
        let (state, due_at, error) = match outcome {
            Attempted::Delivered { at } => (NoticeState::Delivered, *at, None),
            Attempted::Retry { due_at, error } => (NoticeState::Pending, *due_at, Some(error.clone())),
            Attempted::Failed { error } => (NoticeState::Failed, 0, Some(error.clone())),
        };
        let body = body.map(str::to_owned);
        self.shared.pool.call_blocking(move |conn| {
            conn.with(|c| {
                c.execute(
                    "UPDATE outbox SET state = $2, attempts = attempts + 1, due_at = $3, last_error = $4,
                                       body = coalesce(body, $5)
                     WHERE seq = $1",
                    &[&seq, &state.name(), &sql_ms(due_at), &error, &body],
                )
                .map(drop)
            })
        })
    }

    fn notices(&self, state: Option<NoticeState>, limit: usize) -> Result<Vec<Notice>, JournalError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let state = state.map(NoticeState::name);
        self.shared.pool.call_blocking(move |conn| {
            let rows = conn.with(|c| {
                c.query(
                    &format!(
                        "SELECT {COLUMNS} FROM outbox WHERE $1::text IS NULL OR state = $1 ORDER BY seq DESC LIMIT $2"
                    ),
                    &[&state, &limit],
                )
            })?;
            Ok(rows.iter().map(notice).collect())
        })
    }
}
