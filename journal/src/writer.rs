//! The writer: one thread owns the connection that writes, and commits in groups.
//!
//! Runs send it [`Op`]s over a channel. It takes every op queued, applies them in one
//! `BEGIN IMMEDIATE` transaction (each op is one statement, which SQLite undoes alone when it
//! fails), commits once, then tells each waiter. Many runs journaling at once thus
//! share one commit, and a waiter learns of its write only once it is committed.
//!
//! Entries nobody waits for (a node started, a read's or a local node's result) are *held*: the
//! run puts them in a map the writer shares ([`HeldEntries`]), without waking the writer (a thread
//! wake-up per entry was most of the journal's cost), and the writer takes them out at the next
//! entry of the same run that is waited for (a write's intent or result, the run's end), at a
//! [`Op::Flush`], or once they are [`HOLD`] old, and writes them first in the same transaction. The rule that makes this safe is the executor's: every call that changes
//! something journals its intent, awaited, before it is sent, so whatever a change was built from
//! is durable before it happens; a held entry lost in a crash is a read that runs again and sees
//! what it saw. A run that ends succeeded or failed drops what it still holds: its final record
//! has every node. A short run of reads is thus two rows (its start and its end), not one per
//! node.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, PoisonError, mpsc};
use std::time::{Duration, Instant};

use flowcat_engine::journal::{Finished, JournalError, RunInfo, StoredStatus};
use rusqlite::{Connection, OptionalExtension as _, params};
use tokio::sync::oneshot;

use crate::error::{self, Doing};
use crate::lock::Holder;
use crate::store::Stats;

/// At most this many ops share a transaction: bounds the latency of the first op of a batch.
const MAX_BATCH: usize = 1024;

/// How long an entry nobody waits for is held before it is written anyway: a run that waits (a
/// poll between two attempts) has its nodes' starts durable this long after they happened.
pub(crate) const HOLD: Duration = Duration::from_millis(100);

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
    /// Take an unfinished run for this process, if no live process holds it.
    Claim {
        seq: i64,
        at: u64,
        reply: Reply<Claimed>,
    },
    /// This process no longer holds the run (its handle was dropped before a final end).
    Release {
        seq: i64,
    },
    /// A node started (held; nobody waits).
    Started {
        seq: i64,
        path: String,
        at: u64,
    },
    /// A node's result that nobody waits for (held; made JSON only if it is written).
    Noted {
        seq: i64,
        path: String,
        node: Box<Finished>,
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

impl Op {
    /// The run the op belongs to (none for [`Op::Begin`] and [`Op::Flush`]).
    fn seq(&self) -> Option<i64> {
        match self {
            Op::Claim { seq, .. }
            | Op::Release { seq }
            | Op::Started { seq, .. }
            | Op::Noted { seq, .. }
            | Op::Intent { seq, .. }
            | Op::Finished { seq, .. }
            | Op::End { seq, .. } => Some(*seq),
            Op::Begin { .. } | Op::Flush { .. } => None,
        }
    }
}

/// What [`Op::Begin`] found.
#[derive(Debug)]
pub(crate) enum Began {
    /// A new run, created and held by this process.
    Fresh { seq: i64, info: Box<RunInfo> },
    /// The run of this `(flow, key)`, as it is stored.
    Found { seq: i64, id: String, status: StoredStatus },
}

/// What [`Op::Claim`] found.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Claimed {
    /// The run is now held by this process, running.
    Held,
    /// It ended meanwhile.
    Final,
    /// A live process (or another handle of this one) holds it.
    Busy,
}

/// The writer's state.
pub(crate) struct Writer {
    pub conn: Connection,
    /// The database file, for messages.
    pub file: PathBuf,
    /// The state folder, for lock files.
    pub dir: PathBuf,
    pub stats: Arc<Stats>,
    pub holder: Arc<Holder>,
    /// Runs put their held entries here.
    pub held: Arc<Mutex<HeldEntries>>,
}

/// Entries nobody waits for, per run, with when the oldest came.
pub(crate) type HeldEntries = HashMap<i64, (Instant, Vec<Op>)>;

/// An op's outcome before commit, held until the commit tells whether it stands.
enum Done {
    Unit(Reply<()>, Result<(), JournalError>),
    Began(Reply<Began>, Result<Began, JournalError>),
    Claimed(i64, Reply<Claimed>, Result<Claimed, JournalError>),
    Quiet,
}

/// The writer's statements, each prepared once for the writer's life (parsing them again for
/// each batch was a tenth of the writer's time); the statement-cache feature would bring
/// `hashlink` and another `hashbrown`.
struct Prepared<'c> {
    conn: &'c Connection,
    statements: Vec<(&'static str, rusqlite::Statement<'c>)>,
}

impl<'c> Prepared<'c> {
    fn new(conn: &'c Connection) -> Self {
        Prepared { conn, statements: Vec::new() }
    }

    fn get(&mut self, sql: &'static str) -> rusqlite::Result<&mut rusqlite::Statement<'c>> {
        let i = match self.statements.iter().position(|(s, _)| *s == sql) {
            Some(i) => i,
            None => {
                self.statements.push((sql, self.conn.prepare(sql)?));
                self.statements.len() - 1
            }
        };
        Ok(&mut self.statements[i].1)
    }

    fn execute(&mut self, sql: &'static str, params: impl rusqlite::Params) -> rusqlite::Result<usize> {
        self.get(sql)?.execute(params)
    }
}

const STARTED: &str = "INSERT INTO nodes (run, path, started_at, at) VALUES (?1, ?2, ?3, ?3)
     ON CONFLICT (run, path) DO UPDATE SET started_at = coalesce(started_at, excluded.started_at),
                                           at = max(at, excluded.at)";
const INTENT: &str = "INSERT INTO nodes (run, path, intent, at) VALUES (?1, ?2, ?3, ?4)
     ON CONFLICT (run, path) DO UPDATE SET intent = excluded.intent, at = max(at, excluded.at)";
const FINISHED: &str = "INSERT INTO nodes (run, path, finished, at) VALUES (?1, ?2, ?3, ?4)
     ON CONFLICT (run, path) DO UPDATE SET finished = excluded.finished, at = max(at, excluded.at)";
const NOTED: &str = FINISHED;
/// A run that ends finished is held by nobody again; one that ends otherwise stays held by its
/// handle until it is dropped ([`Op::Release`]).
const END: &str = "UPDATE runs SET status = ?2, note = ?3, record = ?4, updated_at = ?5,
                       holder = CASE WHEN ?2 IN ('succeeded', 'failed') THEN NULL ELSE holder END
                   WHERE seq = ?1";
const CLAIM: &str =
    "UPDATE runs SET status = 'running', note = NULL, record = NULL, updated_at = ?2, holder = ?3 WHERE seq = ?1";
const RELEASE: &str = "UPDATE runs SET holder = NULL WHERE seq = ?1 AND holder = ?2";

impl Writer {
    /// Serves ops until every sender is gone, then writes what it still holds.
    pub(crate) fn serve(self, ops: mpsc::Receiver<Op>) {
        let mut prepared = Prepared::new(&self.conn);
        loop {
            // Every `HOLD` at least, for the held entries that came of age.
            let first = match ops.recv_timeout(HOLD) {
                Ok(op) => Some(op),
                Err(mpsc::RecvTimeoutError::Timeout) => None,
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            };
            let mut batch: Vec<Op> = first.into_iter().collect();
            while !batch.is_empty() && batch.len() < MAX_BATCH {
                match ops.try_recv() {
                    Ok(op) => batch.push(op),
                    Err(_) => break,
                }
            }
            let writes = route(&mut self.held.lock().unwrap_or_else(PoisonError::into_inner), batch, false);
            self.apply(&mut prepared, writes);
        }
        let writes = route(&mut self.held.lock().unwrap_or_else(PoisonError::into_inner), Vec::new(), true);
        self.apply(&mut prepared, writes);
    }

    /// One transaction for the whole batch, then the replies. Every op writes with one
    /// statement, and SQLite undoes a failed statement alone: one op's error fails only its own
    /// waiter, unless SQLite rolled the whole transaction back (a full disk), which fails the
    /// batch.
    fn apply(&self, prepared: &mut Prepared<'_>, batch: Vec<Op>) {
        if batch.is_empty() {
            return;
        }
        let mut done = Vec::with_capacity(batch.len());
        let mut ops = batch.into_iter();
        let mut failure = self.exec("BEGIN IMMEDIATE").err();
        if failure.is_none() {
            for op in ops.by_ref() {
                let (d, error) = self.apply_one(prepared, op);
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
            // Everything in the batch is undone: every waiter hears why, and runs created or
            // claimed in it are released.
            for d in done {
                d.fail(&e, &self.holder);
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
                    if let Err(Ok(Began::Fresh { seq, .. })) = reply.send(r) {
                        // Its waiter is gone: the run stays, unheld (interrupted), like a crash.
                        self.holder.release(seq);
                    }
                }
                Done::Claimed(seq, reply, r) => {
                    if let Err(Ok(Claimed::Held)) = reply.send(r) {
                        // Its waiter is gone: as for a new run, the run stays unheld.
                        self.holder.release(seq);
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
                let r = self.begin(prepared, info);
                let e = r.as_ref().err().cloned();
                (Done::Began(reply, r), e)
            }
            Op::Started { seq, path, at } => {
                (Done::Quiet, prepared.execute(STARTED, params![seq, path, sql_ms(at)]).err().map(err))
            }
            Op::Noted { seq, path, node, at } => match to_json(&self.file, &node) {
                Ok(node) => (Done::Quiet, prepared.execute(NOTED, params![seq, path, node, sql_ms(at)]).err().map(err)),
                Err(e) => (Done::Quiet, Some(e)),
            },
            Op::Release { seq } => {
                (Done::Quiet, prepared.execute(RELEASE, params![seq, self.holder.name()]).err().map(err))
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
            Op::Claim { seq, at, reply } => {
                let r = self.claim(prepared, seq, at);
                let e = r.as_ref().err().cloned();
                (Done::Claimed(seq, reply, r), e)
            }
            Op::Flush { reply } => (Done::Unit(reply, Ok(())), None),
        }
    }

    /// [`Op::Begin`]: inside the batch's IMMEDIATE transaction, so that two processes starting
    /// one key see each other: the second finds the first's row.
    fn begin(&self, prepared: &mut Prepared<'_>, mut info: Box<RunInfo>) -> Result<Began, JournalError> {
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
            let taken: bool = prepared
                .get("SELECT EXISTS (SELECT 1 FROM runs WHERE id = ?1)")
                .and_then(|s| s.query_row([&id], |r| r.get(0)))
                .map_err(err)?;
            if !taken {
                break id;
            }
        };
        let f = &self.file;
        let (inputs, vars) = (to_json(f, &info.inputs)?, to_json(f, &info.vars)?);
        let (binds, targets) = (to_json(f, &info.binds)?, to_json(f, &info.targets)?);
        prepared
            .execute(
                "INSERT INTO runs (id, flow, flow_digest, key, inputs, vars, binds, targets, created_at, updated_at,
                                   deadline_at, status, source, holder)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?9, ?10, 'running', ?11, ?12)",
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
                    self.holder.name(),
                ],
            )
            .map_err(err)?;
        let seq = self.conn.last_insert_rowid();
        // Held from the commit on; released again if the transaction fails.
        self.holder.take(seq);
        info.id = id;
        Ok(Began::Fresh { seq, info })
    }

    /// [`Op::Claim`]: inside the batch's IMMEDIATE transaction, so that two processes claiming
    /// one run are ordered: the second sees the first's name and its lock.
    fn claim(&self, prepared: &mut Prepared<'_>, seq: i64, at: u64) -> Result<Claimed, JournalError> {
        let err = |e: rusqlite::Error| error::sqlite(&e, &self.file, Doing::Written);
        let row = self
            .conn
            .query_row("SELECT id, status, holder FROM runs WHERE seq = ?1", [seq], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, Option<String>>(2)?))
            })
            .optional()
            .map_err(err)?;
        let Some((id, status, holder)) = row else {
            return Err(JournalError::new("unknown_run", format!("run #{seq} is no longer in the journal")));
        };
        if StoredStatus::parse(&status).is_some_and(StoredStatus::is_final) {
            return Ok(Claimed::Final);
        }
        if self.holder.holds(&self.dir, seq, &id, holder.as_deref()) || !self.holder.take(seq) {
            return Ok(Claimed::Busy);
        }
        match prepared.execute(CLAIM, params![seq, sql_ms(at), self.holder.name()]) {
            Ok(_) => Ok(Claimed::Held),
            Err(e) => {
                self.holder.release(seq);
                Err(err(e))
            }
        }
    }

    fn exec(&self, sql: &str) -> Result<(), JournalError> {
        self.conn.execute_batch(sql).map_err(|e| error::sqlite(&e, &self.file, Doing::Written))
    }
}

/// What the batch writes now, in order: an op of a run brings the run's held entries before it
/// (see the module's documentation); a run that ends finished drops them; held entries older
/// than [`HOLD`] (all of them with `all`, or at a [`Op::Flush`]) come last.
fn route(held: &mut HeldEntries, batch: Vec<Op>, mut all: bool) -> Vec<Op> {
    let mut writes = Vec::with_capacity(batch.len());
    for op in batch {
        match (&op, op.seq()) {
            (Op::End { status, .. }, Some(seq)) if status.is_final() => {
                held.remove(&seq);
                writes.push(op);
            }
            (Op::Flush { .. }, _) => {
                all = true;
                writes.push(op);
            }
            (_, Some(seq)) => {
                if let Some((_, entries)) = held.remove(&seq) {
                    writes.extend(entries);
                }
                writes.push(op);
            }
            (_, None) => writes.push(op),
        }
    }
    let now = Instant::now();
    let due: Vec<i64> =
        held.iter().filter(|(_, (since, _))| all || now >= *since + HOLD).map(|(seq, _)| *seq).collect();
    // A flush answers once what came before it is written: held entries go before it.
    let at = writes.iter().position(|op| matches!(op, Op::Flush { .. })).unwrap_or(writes.len());
    let mut late = Vec::new();
    for seq in due {
        if let Some((_, entries)) = held.remove(&seq) {
            late.extend(entries);
        }
    }
    writes.splice(at..at, late);
    writes
}

impl Done {
    /// Tells the waiter that its batch failed; a run created or claimed in it is released.
    fn fail(self, e: &JournalError, holder: &Holder) {
        match self {
            Done::Unit(reply, _) => {
                let _ = reply.send(Err(e.clone()));
            }
            Done::Began(reply, began) => {
                if let Ok(Began::Fresh { seq, .. }) = &began {
                    holder.release(*seq);
                }
                let _ = reply.send(Err(e.clone()));
            }
            Done::Claimed(seq, reply, claimed) => {
                if let Ok(Claimed::Held) = claimed {
                    holder.release(seq);
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
            Op::Claim { reply, .. } => drop(reply.send(Err(e))),
            Op::Intent { reply, .. } | Op::Finished { reply, .. } | Op::End { reply, .. } | Op::Flush { reply } => {
                drop(reply.send(Err(e)))
            }
            Op::Started { .. } | Op::Noted { .. } | Op::Release { .. } => {}
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
