//! Reading runs back: summaries for `list`, a whole run for `show` and `resume`.
//!
//! A row says `running` while its process lives; only its holder's lock tells whether it still
//! does. A `running` row whose holder is gone is reported `interrupted`: its process died or let
//! it go.

use std::path::Path;

use std::collections::HashMap;

use flowcat_engine::journal::{
    Filter, Finished, JournalError, NodePast, Past, RunInfo, RunSummary, StoredRun, StoredStatus, Waiting,
    resolve_finished, resolve_record,
};
use flowcat_engine::run::RunRecord;
use rusqlite::{Connection, OptionalExtension as _, Row, params};

use crate::error::{self, Doing};
use crate::lock::Holder;

/// The columns [`summary`] reads, in order.
const COLUMNS: &str = "seq, id, flow, flow_digest, key, inputs, vars, binds, targets, created_at, \
                       max(updated_at, coalesce((SELECT max(at) FROM nodes WHERE nodes.run = runs.seq), 0)), \
                       deadline_at, status, note, source, holder, signals, waiting_path, waiting_signal, \
                       waiting_until, \
                       EXISTS (SELECT 1 FROM signals s WHERE s.run = runs.seq AND s.name = runs.waiting_signal)";

/// Where the rows are read from: the connection, and the paths for messages and locks.
pub(crate) struct Reader<'a> {
    pub conn: &'a Connection,
    pub file: &'a Path,
    pub dir: &'a Path,
    pub holder: &'a Holder,
}

/// A run's row: its summary and its internal number.
pub(crate) struct StoredRow {
    pub seq: i64,
    pub summary: RunSummary,
}

impl Reader<'_> {
    fn err(&self, e: rusqlite::Error) -> JournalError {
        error::sqlite(&e, self.file, Doing::Read)
    }

    /// Runs matching `filter`, newest first.
    pub(crate) fn list(&self, filter: &Filter) -> Result<Vec<RunSummary>, JournalError> {
        // The stored status differs from the reported one for `running` rows (running or
        // interrupted), so the status filter is applied after the lock is probed, and the limit
        // after that; rows are read lazily, newest first, and reading stops at the limit.
        let mut sql = format!("SELECT {COLUMNS} FROM runs");
        if filter.flow.is_some() {
            sql.push_str(" WHERE flow = ?1");
        }
        sql.push_str(" ORDER BY created_at DESC, id DESC");
        let mut stmt = self.conn.prepare(&sql).map_err(|e| self.err(e))?;
        let mut rows = match &filter.flow {
            Some(flow) => stmt.query([flow]),
            None => stmt.query([]),
        }
        .map_err(|e| self.err(e))?;
        let mut out = Vec::new();
        while let Some(row) = rows.next().map_err(|e| self.err(e))? {
            let run = self.summary(row)?;
            if filter.status.is_empty() || filter.status.contains(&run.summary.status) {
                out.push(run.summary);
                if filter.limit > 0 && out.len() >= filter.limit {
                    break;
                }
            }
        }
        Ok(out)
    }

    /// Run `id`'s row, if there is one.
    pub(crate) fn row(&self, id: &str) -> Result<Option<StoredRow>, JournalError> {
        let sql = format!("SELECT {COLUMNS} FROM runs WHERE id = ?1");
        let mut stmt = self.conn.prepare(&sql).map_err(|e| self.err(e))?;
        let mut rows = stmt.query([id]).map_err(|e| self.err(e))?;
        match rows.next().map_err(|e| self.err(e))? {
            Some(row) => self.summary(row).map(Some),
            None => Ok(None),
        }
    }

    /// Whether the journal holds a run of `flow` under `key` (committed, by any process).
    pub(crate) fn has_key(&self, flow: &str, key: &str) -> Result<bool, JournalError> {
        // Asked at every keyed beginning (each row of `--each`): preparing the statement anew
        // was half the lookup's cost, so the connection keeps it.
        let mut stmt =
            self.conn.prepare_cached("SELECT 1 FROM runs WHERE flow = ?1 AND key = ?2").map_err(|e| self.err(e))?;
        stmt.exists(params![flow, key]).map_err(|e| self.err(e))
    }

    /// Which of `keys` no run of `flow` has, looked up in one read transaction (one snapshot,
    /// and one look at the WAL instead of one a key).
    pub(crate) fn keys_without_run<'k>(&self, flow: &str, keys: &'k [String]) -> Result<Vec<&'k str>, JournalError> {
        let tx = self.conn.unchecked_transaction().map_err(|e| self.err(e))?;
        let mut absent = Vec::new();
        for key in keys {
            if !self.has_key(flow, key)? {
                absent.push(key.as_str());
            }
        }
        tx.finish().map_err(|e| self.err(e))?;
        Ok(absent)
    }

    /// Run `id` with its final record (once it ended) and its journaled nodes.
    pub(crate) fn show(&self, id: &str) -> Result<Option<StoredRun>, JournalError> {
        let Some(run) = self.row(id)? else { return Ok(None) };
        let record: Option<String> = self
            .conn
            .query_row("SELECT record FROM runs WHERE seq = ?1", [run.seq], |r| r.get(0))
            .optional()
            .map_err(|e| self.err(e))?
            .flatten();
        let nodes = self.nodes(run.seq, id)?;
        let record: Option<RunRecord> = match record {
            Some(text) => {
                // The record names its nodes' entries (each result is written once).
                let mut value: serde_json::Value = self.parse(&text, id, "record")?;
                resolve_record(&mut value, &nodes.entries).map_err(|e| {
                    error::corrupt(self.file, &format!("run `{id}`'s record cannot be read whole: {e}"))
                })?;
                Some(self.parse_value(value, id, "record")?)
            }
            None => None,
        };
        let past = self.past_of(nodes, id)?;
        Ok(Some(StoredRun { summary: run.summary, record, past }))
    }

    /// What the journal holds of run `seq`'s nodes.
    pub(crate) fn past(&self, seq: i64, id: &str) -> Result<Past, JournalError> {
        let nodes = self.nodes(seq, id)?;
        self.past_of(nodes, id)
    }

    /// Run `seq`'s node rows, their results as JSON values by path.
    fn nodes(&self, seq: i64, id: &str) -> Result<NodeRows, JournalError> {
        let mut stmt = self
            .conn
            .prepare("SELECT path, started_at, intent, finished FROM nodes WHERE run = ?1")
            .map_err(|e| self.err(e))?;
        let mut rows = stmt.query(params![seq]).map_err(|e| self.err(e))?;
        let mut out = NodeRows::default();
        while let Some(row) = rows.next().map_err(|e| self.err(e))? {
            let get = |e| self.err(e);
            let path: String = row.get(0).map_err(get)?;
            let started_at: Option<i64> = row.get(1).map_err(get)?;
            let intent: Option<String> = row.get(2).map_err(get)?;
            let finished: Option<String> = row.get(3).map_err(get)?;
            let intent = intent.map(|t| self.parse(&t, id, "an intent")).transpose()?;
            if let Some(text) = finished {
                out.entries.insert(path.clone(), self.parse(&text, id, "a node's result")?);
            }
            out.rows.push((path, started_at.map(|t| t.max(0) as u64), intent));
        }
        Ok(out)
    }

    /// The nodes' past, each result whole (the entries it names put back).
    fn past_of(&self, nodes: NodeRows, id: &str) -> Result<Past, JournalError> {
        let mut past = Past::default();
        for (path, started_at, intent) in nodes.rows {
            let finished = match nodes.entries.get(&path) {
                Some(stored) => {
                    let mut value = stored.clone();
                    match resolve_finished(&mut value, &path, &nodes.entries) {
                        Ok(()) => Some(self.parse_value::<Finished>(value, id, "a node's result")?),
                        // It names an entry lost with a failed write: the node is not known
                        // finished, and a resumed run runs it again (a subflow's finished
                        // nodes are restored from their own entries).
                        Err(_) => None,
                    }
                }
                None => None,
            };
            past.nodes.insert(path, NodePast { started_at, intent, finished });
        }
        Ok(past)
    }

    fn summary(&self, row: &Row<'_>) -> Result<StoredRow, JournalError> {
        let get = |e| self.err(e);
        let seq: i64 = row.get(0).map_err(get)?;
        let id: String = row.get(1).map_err(get)?;
        let text = |i: usize| row.get::<_, String>(i).map_err(get);
        let time = |i: usize| row.get::<_, Option<i64>>(i).map(|t| t.map(|t| t.max(0) as u64)).map_err(get);
        let info = RunInfo {
            flow: text(2)?,
            flow_digest: text(3)?,
            key: row.get(4).map_err(get)?,
            inputs: self.parse(&text(5)?, &id, "inputs")?,
            vars: self.parse(&text(6)?, &id, "vars")?,
            binds: self.parse(&text(7)?, &id, "bindings")?,
            targets: self.parse(&text(8)?, &id, "targets")?,
            created_at: time(9)?.unwrap_or_default(),
            deadline_at: time(11)?,
            source: row.get(14).map_err(get)?,
            signals: match row.get::<_, Option<String>>(16).map_err(get)? {
                Some(t) => self.parse(&t, &id, "signals")?,
                None => Vec::new(),
            },
            id,
        };
        let stored = text(12)?;
        let Some(stored_status) = StoredStatus::parse(&stored) else {
            return Err(error::corrupt(self.file, &format!("run `{}` has an unknown status `{stored}`", info.id)));
        };
        let holder: Option<String> = row.get(15).map_err(get)?;
        let held =
            stored_status == StoredStatus::Running && self.holder.holds(self.dir, seq, &info.id, holder.as_deref());
        let waiting =
            match (row.get::<_, Option<String>>(17).map_err(get)?, row.get::<_, Option<String>>(18).map_err(get)?) {
                (Some(path), Some(signal)) if !stored_status.is_final() => {
                    Some(Waiting { path, signal, until: time(19)?, delivered: row.get(20).map_err(get)?, held })
                }
                _ => None,
            };
        let status = match stored_status {
            _ if waiting.is_some() && stored_status != StoredStatus::NeedsAttention => StoredStatus::Waiting,
            StoredStatus::Running if !held => StoredStatus::Interrupted,
            status => status,
        };
        let summary = RunSummary {
            info,
            status,
            updated_at: time(10)?.unwrap_or_default(),
            note: row.get(13).map_err(get)?,
            waiting,
        };
        Ok(StoredRow { seq, summary })
    }

    /// The payload of signal `name` delivered to run `id`, if it was.
    pub(crate) fn signal(&self, id: &str, name: &str) -> Result<Option<serde_json::Value>, JournalError> {
        let text: Option<String> = self
            .conn
            .prepare("SELECT s.payload FROM signals s JOIN runs r ON r.seq = s.run WHERE r.id = ?1 AND s.name = ?2")
            .and_then(|mut s| s.query_row(params![id, name], |r| r.get(0)).optional())
            .map_err(|e| self.err(e))?;
        text.map(|t| self.parse(&t, id, "signal payload")).transpose()
    }

    /// Runs parked on a signal that no live process holds and that can go on at `now_ms`.
    pub(crate) fn wakeable(&self, now_ms: u64) -> Result<Vec<String>, JournalError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM runs WHERE waiting_signal IS NOT NULL
                AND status IN ('running', 'interrupted')
                AND (waiting_until <= ?1
                     OR EXISTS (SELECT 1 FROM signals s WHERE s.run = runs.seq AND s.name = runs.waiting_signal))
             ORDER BY waiting_until"
        );
        let mut stmt = self.conn.prepare(&sql).map_err(|e| self.err(e))?;
        let mut rows = stmt.query([crate::writer::sql_ms(now_ms)]).map_err(|e| self.err(e))?;
        let mut out = Vec::new();
        while let Some(row) = rows.next().map_err(|e| self.err(e))? {
            let run = self.summary(row)?;
            if run.summary.waiting.as_ref().is_some_and(|w| !w.held) {
                out.push(run.summary.info.id);
            }
        }
        Ok(out)
    }

    fn parse<T: serde::de::DeserializeOwned>(&self, text: &str, id: &str, what: &str) -> Result<T, JournalError> {
        serde_json::from_str(text).map_err(|e| error::json(self.file, &format!("run `{id}`'s {what}"), &e))
    }

    fn parse_value<T: serde::de::DeserializeOwned>(
        &self,
        value: serde_json::Value,
        id: &str,
        what: &str,
    ) -> Result<T, JournalError> {
        serde_json::from_value(value).map_err(|e| error::json(self.file, &format!("run `{id}`'s {what}"), &e))
    }
}

/// A run's node rows as read: path, start and intent of each, and the results by path.
#[derive(Default)]
struct NodeRows {
    rows: Vec<(String, Option<u64>, Option<serde_json::Value>)>,
    entries: HashMap<String, serde_json::Value>,
}
