//! Reading runs back: summaries for `list`, a whole run for `show` and `resume`, the runs another
//! replica should take.
//!
//! A row says `running` while a replica holds it; only that replica's lease tells whether it
//! still does. A `running` row whose holder's lease passed is reported `interrupted`.

use flowcat_engine::journal::{
    Filter, Finished, JournalError, NodePast, Past, RunInfo, RunSummary, StoredRun, StoredStatus, Waiting,
};
use flowcat_engine::run::RunRecord;
use postgres::Row;
use postgres::fallible_iterator::FallibleIterator as _;

use crate::error;
use crate::pool::Conn;
use crate::schema::NOW_MS;

/// Whether the run's holder still holds it (its lease has not passed).
fn held_sql() -> String {
    format!(
        "(status = 'running' AND EXISTS (SELECT 1 FROM replicas p WHERE p.name = runs.holder AND p.lease_until > {NOW_MS}))"
    )
}

/// The columns [`summary`] reads, in order.
fn columns() -> String {
    format!(
        "seq, id, flow, flow_digest, key, inputs, vars, binds, targets, created_at, updated_at, deadline_at, status, \
         note, source, holder, signals, waiting_path, waiting_signal, waiting_until, \
         EXISTS (SELECT 1 FROM signals s WHERE s.run = runs.seq AND s.name = runs.waiting_signal), {}",
        held_sql()
    )
}

/// A run's row: its summary and its internal number.
pub(crate) struct StoredRow {
    pub seq: i64,
    pub summary: RunSummary,
}

/// Runs matching `filter`, newest first (read row by row, stopping at the limit).
pub(crate) fn list(conn: &mut Conn, filter: &Filter) -> Result<Vec<RunSummary>, JournalError> {
    let place = conn.place().to_owned();
    let mut sql = format!("SELECT {} FROM runs", columns());
    if filter.flow.is_some() {
        sql.push_str(" WHERE flow = $1");
    }
    sql.push_str(" ORDER BY created_at DESC, id DESC");
    conn.with(|c| {
        let params: Vec<&(dyn postgres::types::ToSql + Sync)> = match &filter.flow {
            Some(flow) => vec![flow],
            None => vec![],
        };
        let mut rows = c.query_raw(&sql, params.iter().copied())?;
        let mut out = Vec::new();
        while let Some(row) = rows.next()? {
            let run = match summary(&place, &row) {
                Ok(run) => run,
                Err(e) => return Ok(Err(e)),
            };
            if filter.status.is_empty() || filter.status.contains(&run.summary.status) {
                out.push(run.summary);
                if filter.limit > 0 && out.len() >= filter.limit {
                    break;
                }
            }
        }
        Ok(Ok(out))
    })?
}

/// Run `id`'s row, if there is one.
pub(crate) fn row(conn: &mut Conn, id: &str) -> Result<Option<StoredRow>, JournalError> {
    let place = conn.place().to_owned();
    let sql = format!("SELECT {} FROM runs WHERE id = $1", columns());
    let row = conn.with(|c| c.query_opt(&sql, &[&id]))?;
    row.map(|r| summary(&place, &r)).transpose()
}

/// Run `id` with its final record (once it ended) and its journaled nodes.
pub(crate) fn show(conn: &mut Conn, id: &str) -> Result<Option<StoredRun>, JournalError> {
    let place = conn.place().to_owned();
    let Some(run) = row(conn, id)? else { return Ok(None) };
    let record: Option<String> =
        conn.with(|c| c.query_opt("SELECT record FROM runs WHERE seq = $1", &[&run.seq]))?.and_then(|r| r.get(0));
    let record: Option<RunRecord> = record.map(|t| parse(&place, &t, id, "record")).transpose()?;
    let past = past(conn, run.seq, id)?;
    Ok(Some(StoredRun { summary: run.summary, record, past }))
}

/// What the store holds of run `seq`'s nodes.
pub(crate) fn past(conn: &mut Conn, seq: i64, id: &str) -> Result<Past, JournalError> {
    let place = conn.place().to_owned();
    let rows =
        conn.with(|c| c.query("SELECT path, started_at, intent, finished FROM nodes WHERE run = $1", &[&seq]))?;
    let mut past = Past::default();
    for row in rows {
        let started_at: Option<i64> = row.get(1);
        let intent: Option<String> = row.get(2);
        let finished: Option<String> = row.get(3);
        let node = NodePast {
            started_at: started_at.map(|t| t.max(0) as u64),
            intent: intent.map(|t| parse(&place, &t, id, "an intent")).transpose()?,
            finished: finished.map(|t| parse::<Finished>(&place, &t, id, "a node's result")).transpose()?,
        };
        past.nodes.insert(row.get(0), node);
    }
    Ok(past)
}

/// The payload of signal `name` delivered to run `seq`, if it was.
pub(crate) fn signal(
    conn: &mut Conn,
    seq: i64,
    name: &str,
    place: &str,
) -> Result<Option<serde_json::Value>, JournalError> {
    let row = conn.with(|c| c.query_opt("SELECT payload FROM signals WHERE run = $1 AND name = $2", &[&seq, &name]))?;
    row.map(|r| parse(place, &r.get::<_, String>(0), &format!("#{seq}"), "signal payload")).transpose()
}

/// Runs no live replica holds that should be resumed now: parked on a signal that came or a
/// timeout that passed by `now`, or left `running` by a replica whose lease passed (it died).
/// At most 1000, the longest-waiting first; `(seq, id)`.
pub(crate) fn wakeable(conn: &mut Conn, now: i64) -> Result<Vec<(i64, String)>, JournalError> {
    let sql = format!(
        "SELECT seq, id FROM runs
         WHERE status IN ('running', 'interrupted') AND NOT {held}
           AND ((waiting_signal IS NOT NULL
                 AND (waiting_until <= $1
                      OR EXISTS (SELECT 1 FROM signals s WHERE s.run = runs.seq AND s.name = runs.waiting_signal)))
                OR (waiting_signal IS NULL AND status = 'running'))
         ORDER BY coalesce(waiting_until, updated_at)
         LIMIT 1000",
        held = held_sql()
    );
    let rows = conn.with(|c| c.query(&sql, &[&now]))?;
    Ok(rows.into_iter().map(|r| (r.get(0), r.get(1))).collect())
}

fn summary(place: &str, row: &Row) -> Result<StoredRow, JournalError> {
    let seq: i64 = row.get(0);
    let id: String = row.get(1);
    let time = |i: usize| row.get::<_, Option<i64>>(i).map(|t| t.max(0) as u64);
    let info = RunInfo {
        flow: row.get(2),
        flow_digest: row.get(3),
        key: row.get(4),
        inputs: parse(place, row.get(5), &id, "inputs")?,
        vars: parse(place, row.get(6), &id, "vars")?,
        binds: parse(place, row.get(7), &id, "bindings")?,
        targets: parse(place, row.get(8), &id, "targets")?,
        created_at: time(9).unwrap_or_default(),
        deadline_at: time(11),
        source: row.get(14),
        signals: match row.get::<_, Option<&str>>(16) {
            Some(t) => parse(place, t, &id, "signals")?,
            None => Vec::new(),
        },
        id,
    };
    let stored: &str = row.get(12);
    let Some(stored_status) = StoredStatus::parse(stored) else {
        return Err(JournalError::new(
            "corrupt",
            format!("in the Postgres store `{place}`, run `{}` has an unknown status `{stored}`", info.id),
        ));
    };
    let held: bool = row.get(21);
    let waiting = match (row.get::<_, Option<String>>(17), row.get::<_, Option<String>>(18)) {
        (Some(path), Some(signal)) if !stored_status.is_final() => {
            Some(Waiting { path, signal, until: time(19), delivered: row.get(20), held })
        }
        _ => None,
    };
    let status = match stored_status {
        _ if waiting.is_some() && stored_status != StoredStatus::NeedsAttention => StoredStatus::Waiting,
        StoredStatus::Running if !held => StoredStatus::Interrupted,
        status => status,
    };
    let summary = RunSummary { info, status, updated_at: time(10).unwrap_or_default(), note: row.get(13), waiting };
    Ok(StoredRow { seq, summary })
}

fn parse<T: serde::de::DeserializeOwned>(place: &str, text: &str, id: &str, what: &str) -> Result<T, JournalError> {
    serde_json::from_str(text).map_err(|e| error::json(place, &format!("run `{id}`'s {what}"), &e))
}
