//! The writer: one thread owns the connection that writes, and commits in groups.
//!
//! Runs send it [`Op`]s over a channel. It takes every op queued, applies them in one
//! `BEGIN IMMEDIATE` transaction (each op is one statement, which SQLite undoes alone when it
//! fails), commits once, then tells each waiter. Many runs journaling at once thus
//! share one commit, and a waiter learns of its write only once it is committed.

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, mpsc};

use flowcat_engine::journal::{JournalError, RunInfo, StoredStatus};
use rusqlite::{Connection, OptionalExtension as _, params};
use tokio::sync::oneshot;

use crate::error::{self, Doing};
use crate::lock::{self, RunLock};
use crate::store::Stats;

/// At most this many ops share a transaction: bounds the latency of the first op of a batch.
const MAX_BATCH: usize = 1024;

/// A waiter, told once its op is committed (or failed).
pub(crate) type Reply<T> = oneshot::Sender<Result<T, JournalError>>;

/// What the writer is asked to do.
#[derive(Debug)]
pub(crate) enum Op {
    /// Create a run, or find the unfinished or finished run of its `(flow, key)`.
    Begin {
        info: Box<RunInfo>,
        reply: Reply<Began>,
    },
    /// This process took an unfinished run: it is running again.
    Claim {
        seq: i64,
        at: u64,
        reply: Reply<()>,
    },
    /// A node started (fire and forget).
    Started {
        seq: i64,
        path: String,
        at: u64,
    },
    Intent {
        seq: i64,
        path: String,
        request: String,
        at: u64,
        reply: Reply<()>,
    },
    Finished {
        seq: i64,
        path: String,
        node: String,
        at: u64,
        reply: Reply<()>,
    },
    End {
        seq: i64,
        status: StoredStatus,
        note: Option<String>,
        record: String,
        at: u64,
        reply: Reply<()>,
    },
    /// Answers once everything sent before it is committed.
    Flush {
        reply: Reply<()>,
    },
}

/// What [`Op::Begin`] found.
#[derive(Debug)]
pub(crate) enum Began {
    /// A new run, created and held.
    Fresh { seq: i64, info: Box<RunInfo>, lock: RunLock },
    /// The run of this `(flow, key)`, as it is stored.
    Found { seq: i64, id: String, status: StoredStatus },
}

/// The writer's state.
pub(crate) struct Writer {
    pub conn: Connection,
    /// The database file, for messages.
    pub file: PathBuf,
    /// The state folder, for lock files.
    pub dir: PathBuf,
    pub stats: Arc<Stats>,
}

/// An op's outcome before commit, held until the commit tells whether it stands.
enum Done {
    Unit(Reply<()>, Result<(), JournalError>),
    Began(Reply<Began>, Result<Began, JournalError>),
    Quiet,
}

/// The batch's statements, each prepared once per batch: a statement borrows the connection,
/// which the writer owns, so they cannot outlive the batch (and the statement-cache feature would
/// bring `hashlink` and another `hashbrown`).
struct Prepared<'c> {
    conn: &'c Connection,
    statements: Vec<(&'static str, rusqlite::Statement<'c>)>,
}

impl<'c> Prepared<'c> {
    fn new(conn: &'c Connection) -> Self {
        Prepared { conn, statements: Vec::new() }
    }

    fn execute(&mut self, sql: &'static str, params: impl rusqlite::Params) -> rusqlite::Result<usize> {
        let i = match self.statements.iter().position(|(s, _)| *s == sql) {
            Some(i) => i,
            None => {
                self.statements.push((sql, self.conn.prepare(sql)?));
                self.statements.len() - 1
            }
        };
        self.statements[i].1.execute(params)
    }
}

const STARTED: &str = "INSERT INTO nodes (run, path, started_at, at) VALUES (?1, ?2, ?3, ?3)
     ON CONFLICT (run, path) DO UPDATE SET started_at = coalesce(started_at, excluded.started_at),
                                           at = max(at, excluded.at)";
const INTENT: &str = "INSERT INTO nodes (run, path, intent, at) VALUES (?1, ?2, ?3, ?4)
     ON CONFLICT (run, path) DO UPDATE SET intent = excluded.intent, at = max(at, excluded.at)";
const FINISHED: &str = "INSERT INTO nodes (run, path, finished, at) VALUES (?1, ?2, ?3, ?4)
     ON CONFLICT (run, path) DO UPDATE SET finished = excluded.finished, at = max(at, excluded.at)";
const END: &str = "UPDATE runs SET status = ?2, note = ?3, record = ?4, updated_at = ?5 WHERE seq = ?1";
const CLAIM: &str = "UPDATE runs SET status = 'running', note = NULL, record = NULL, updated_at = ?2 WHERE seq = ?1";

impl Writer {
    /// Serves ops until every sender is gone.
    pub(crate) fn serve(self, ops: mpsc::Receiver<Op>) {
        while let Ok(first) = ops.recv() {
            let mut batch = vec![first];
            while batch.len() < MAX_BATCH {
                match ops.try_recv() {
                    Ok(op) => batch.push(op),
                    Err(_) => break,
                }
            }
            self.apply(batch);
        }
    }

    /// One transaction for the whole batch, then the replies. Every op writes with one
    /// statement, and SQLite undoes a failed statement alone: one op's error fails only its own
    /// waiter, unless SQLite rolled the whole transaction back (a full disk), which fails the
    /// batch.
    fn apply(&self, batch: Vec<Op>) {
        let mut done = Vec::with_capacity(batch.len());
        let mut ops = batch.into_iter();
        let mut failure = self.exec("BEGIN IMMEDIATE").err();
        if failure.is_none() {
            let mut prepared = Prepared::new(&self.conn);
            for op in ops.by_ref() {
                let (d, error) = self.apply_one(&mut prepared, op);
                done.push(d);
                if error.is_some() && self.conn.is_autocommit() {
                    failure = error;
                    break;
                }
            }
        }
        if failure.is_none() {
            failure = self.exec("COMMIT").err();
        }
        if let Some(e) = failure {
            if !self.conn.is_autocommit() {
                let _ = self.conn.execute_batch("ROLLBACK");
            }
            // Everything in the batch is undone: every waiter hears why, and runs created in it
            // are released and their lock files deleted.
            for d in done {
                d.fail(&e);
            }
            for op in ops {
                op.fail(&e);
            }
            return;
        }
        self.stats.commits.fetch_add(1, Ordering::Relaxed);
        self.stats.ops.fetch_add(done.len() as u64, Ordering::Relaxed);
        for d in done {
            match d {
                Done::Unit(reply, r) => {
                    let _ = reply.send(r);
                }
                Done::Began(reply, r) => {
                    if let Err(Ok(Began::Fresh { lock, .. })) = reply.send(r) {
                        // Its waiter is gone: the run stays, unheld (interrupted), like a crash.
                        drop(lock);
                    }
                }
                Done::Quiet => {}
            }
        }
    }

    /// Applies one op; answers its outcome and its error, if any.
    fn apply_one(&self, prepared: &mut Prepared<'_>, op: Op) -> (Done, Option<JournalError>) {
        let err = |e: rusqlite::Error| error::sqlite(&e, &self.file, Doing::Written);
        let unit = |reply, r: rusqlite::Result<usize>| {
            let r = r.map(drop).map_err(err);
            let e = r.as_ref().err().cloned();
            (Done::Unit(reply, r), e)
        };
        match op {
            Op::Begin { info, reply } => {
                let r = self.begin(info);
                let e = r.as_ref().err().cloned();
                (Done::Began(reply, r), e)
            }
            Op::Started { seq, path, at } => {
                (Done::Quiet, prepared.execute(STARTED, params![seq, path, sql_ms(at)]).err().map(err))
            }
            Op::Intent { seq, path, request, at, reply } => {
                unit(reply, prepared.execute(INTENT, params![seq, path, request, sql_ms(at)]))
            }
            Op::Finished { seq, path, node, at, reply } => {
                unit(reply, prepared.execute(FINISHED, params![seq, path, node, sql_ms(at)]))
            }
            Op::End { seq, status, note, record, at, reply } => {
                unit(reply, prepared.execute(END, params![seq, status.name(), note, record, sql_ms(at)]))
            }
            Op::Claim { seq, at, reply } => unit(reply, prepared.execute(CLAIM, params![seq, sql_ms(at)])),
            Op::Flush { reply } => (Done::Unit(reply, Ok(())), None),
        }
    }

    /// [`Op::Begin`]: inside the batch's IMMEDIATE transaction, so that two processes starting
    /// one key see each other: the second finds the first's row.
    fn begin(&self, mut info: Box<RunInfo>) -> Result<Began, JournalError> {
        let err = |e: rusqlite::Error| error::sqlite(&e, &self.file, Doing::Written);
        if let Some(key) = &info.key {
            let found = self
                .conn
                .query_row(
                    "SELECT seq, id, status FROM runs WHERE flow = ?1 AND key = ?2",
                    params![info.flow, key],
                    |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?, r.get::<_, String>(2)?)),
                )
                .optional()
                .map_err(err)?;
            if let Some((seq, id, status)) = found {
                let status = StoredStatus::parse(&status).unwrap_or(StoredStatus::Interrupted);
                return Ok(Began::Found { seq, id, status });
            }
        }
        let id = loop {
            let id = crate::id::fresh(info.created_at);
            let taken: bool = self
                .conn
                .query_row("SELECT EXISTS (SELECT 1 FROM runs WHERE id = ?1)", [&id], |r| r.get(0))
                .map_err(err)?;
            if !taken {
                break id;
            }
        };
        let f = &self.file;
        let (inputs, vars) = (to_json(f, &info.inputs)?, to_json(f, &info.vars)?);
        let (binds, targets) = (to_json(f, &info.binds)?, to_json(f, &info.targets)?);
        // Held before it is committed: nobody can take it between the commit and here.
        let lock = lock::try_lock(&self.dir, &id)?
            .ok_or_else(|| JournalError::new("busy", format!("the new run `{id}`'s lock file is already held")))?;
        let inserted = self
            .conn
            .execute(
                "INSERT INTO runs (id, flow, flow_digest, key, inputs, vars, binds, targets, created_at, updated_at,
                                   deadline_at, status, source)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?9, ?10, 'running', ?11)",
                params![
                    id,
                    info.flow,
                    info.flow_digest,
                    info.key,
                    inputs,
                    vars,
                    binds,
                    targets,
                    sql_ms(info.created_at),
                    info.deadline_at.map(sql_ms),
                    info.source,
                ],
            )
            .map_err(err);
        if let Err(e) = inserted {
            lock.remove();
            return Err(e);
        }
        let seq = self.conn.last_insert_rowid();
        info.id = id;
        Ok(Began::Fresh { seq, info, lock })
    }

    fn exec(&self, sql: &str) -> Result<(), JournalError> {
        self.conn.execute_batch(sql).map_err(|e| error::sqlite(&e, &self.file, Doing::Written))
    }
}

impl Done {
    /// Tells the waiter that its batch failed; a run created in it is released.
    fn fail(self, e: &JournalError) {
        match self {
            Done::Unit(reply, _) => {
                let _ = reply.send(Err(e.clone()));
            }
            Done::Began(reply, began) => {
                if let Ok(Began::Fresh { lock, .. }) = &began {
                    lock.remove();
                }
                let _ = reply.send(Err(e.clone()));
            }
            Done::Quiet => {}
        }
    }
}

impl Op {
    /// Tells the waiter that its op was not applied.
    fn fail(self, e: &JournalError) {
        let e = e.clone();
        match self {
            Op::Begin { reply, .. } => drop(reply.send(Err(e))),
            Op::Claim { reply, .. }
            | Op::Intent { reply, .. }
            | Op::Finished { reply, .. }
            | Op::End { reply, .. }
            | Op::Flush { reply } => drop(reply.send(Err(e))),
            Op::Started { .. } => {}
        }
    }
}

/// JSON for the columns that hold it.
pub(crate) fn to_json<T: serde::Serialize + ?Sized>(file: &std::path::Path, value: &T) -> Result<String, JournalError> {
    serde_json::to_string(value).map_err(|e| error::json(file, "a value to journal", &e))
}

/// A time in Unix ms as SQLite's integer (i64; times past the year 292 million are clamped).
pub(crate) fn sql_ms(ms: u64) -> i64 {
    i64::try_from(ms).unwrap_or(i64::MAX)
}
