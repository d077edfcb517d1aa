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
//! what it saw. A run that ends succeeded or failed drops the starts it still holds (its record
//! has every node's times) and keeps its results: its record names their entries rather than
//! repeating them ([`Entries`]), so that each result is written once.
//!
//! A run's *beginning* is held too when it has no key and the journal's last commit succeeded
//! (a key must be looked up in the transaction that creates its run; after a failed commit the
//! next beginning is awaited, so a journal that stopped taking writes refuses new runs before
//! they send anything); so is the *end* of a run that finished. Such a run of reads wakes the
//! writer not once: the writer writes it whole with the next batch, at most [`HOLD`] later, or
//! when [`MAX_HELD`] entries wait. Runs are therefore named in ops by a number of this process
//! ([`RunNo`]), which the writer maps to the run's row once its beginning or claim is written.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError, mpsc};
use std::time::{Duration, Instant};

use flowcat_engine::journal::{
    Delivery, Finished, FinishedRows, JournalError, RecordRows, RunInfo, SignalSpec, StoredStatus,
};
use flowcat_engine::run::RunRecord;
use rusqlite::{Connection, OptionalExtension as _, params};
use tokio::sync::oneshot;

use crate::error::{self, Doing};
use crate::lock::Holder;
use crate::store::Stats;

/// At most this many ops share a transaction: bounds the latency of the first op of a batch.
const MAX_BATCH: usize = 1024;

/// How long an entry nobody waits for is held before it is written anyway (by default: see
/// `Options::hold`): a run that waits (a poll between two attempts) has its nodes' starts durable
/// this long after they happened.
pub(crate) const HOLD: Duration = Duration::from_millis(100);

/// When this many entries are held, the writer is woken to write them (the bound on what waits
/// in memory when runs never await anything).
pub const MAX_HELD: usize = 4096;

/// A waiter, told once its op is committed (or failed).
pub(crate) type Reply<T> = oneshot::Sender<Result<T, JournalError>>;

/// A run as this process names it in ops: its row's `seq` is known to the writer only once the
/// run's beginning (or claim) is written.
pub(crate) type RunNo = u64;

/// What the writer is asked to do.
#[derive(Debug)]
pub(crate) enum Op {
    /// Create run `run` (its id already chosen), or, with a key, find the unfinished or finished
    /// run of its `(flow, key)`. Held (no reply) for a run without a key.
    Begin {
        run: RunNo,
        info: Arc<RunInfo>,
        reply: Option<Reply<Began>>,
    },
    /// Take the unfinished run `seq` for this process, as `run`, if no live process holds it.
    Claim {
        run: RunNo,
        seq: i64,
        at: u64,
        reply: Reply<Claimed>,
    },
    /// This process no longer holds the run: its handle was dropped, after a final end
    /// (`finished`) or not (its row then names no holder either).
    Let {
        run: RunNo,
        finished: bool,
    },
    /// A node started (held; nobody waits).
    Started {
        run: RunNo,
        path: String,
        at: u64,
    },
    /// A node's result that nobody waits for (held; made JSON only if it is written: by the
    /// run itself when its next awaited entry takes it along, see [`HeldEntries::serialize`]).
    Noted {
        run: RunNo,
        path: String,
        node: Noting,
        at: u64,
    },
    Intent {
        run: RunNo,
        path: String,
        request: String,
        at: u64,
        reply: Reply<()>,
    },
    Finished {
        run: RunNo,
        path: String,
        node: String,
        at: u64,
        reply: Reply<()>,
    },
    /// The run's end; held (no reply) when it finished. With the outbox's notices of it
    /// (`(hook, event id)`), written in the same transaction.
    End {
        run: RunNo,
        status: StoredStatus,
        note: Option<String>,
        record: String,
        at: u64,
        reply: Option<Reply<()>>,
        notices: Vec<(String, String)>,
    },
    /// Writes every held entry; answers (when asked) once everything sent before it is committed.
    Flush {
        reply: Option<Reply<()>>,
    },
    /// A `wait_for` node waits: the run lists as waiting for `signal` until `until`.
    Wait {
        run: RunNo,
        path: String,
        signal: String,
        until: Option<u64>,
        reply: Reply<()>,
    },
    /// The node at `path` no longer waits (its result is journaled): held, after its result.
    Waited {
        run: RunNo,
        path: String,
    },
    /// Deliver a signal to run `id` (checked against what the run accepts).
    Signal {
        id: String,
        name: String,
        payload: Box<serde_json::Value>,
        at: u64,
        reply: Reply<Delivery>,
    },
}

impl Op {
    /// The run the op belongs to (none for [`Op::Flush`]).
    fn run(&self) -> Option<RunNo> {
        match self {
            Op::Begin { run, .. }
            | Op::Claim { run, .. }
            | Op::Let { run, .. }
            | Op::Started { run, .. }
            | Op::Noted { run, .. }
            | Op::Intent { run, .. }
            | Op::Finished { run, .. }
            | Op::End { run, .. }
            | Op::Wait { run, .. }
            | Op::Waited { run, .. } => Some(*run),
            Op::Flush { .. } | Op::Signal { .. } => None,
        }
    }

    /// Whether a waiter is told when the op is committed.
    fn awaited(&self) -> bool {
        match self {
            Op::Begin { reply, .. } => reply.is_some(),
            Op::End { reply, .. } => reply.is_some(),
            Op::Flush { reply } => reply.is_some(),
            Op::Claim { .. } | Op::Intent { .. } | Op::Finished { .. } | Op::Wait { .. } | Op::Signal { .. } => true,
            Op::Let { .. } | Op::Started { .. } | Op::Noted { .. } | Op::Waited { .. } => false,
        }
    }

    /// Whether the op reads rows other runs' held entries may change (a key's run, a claimed
    /// run's state), so that everything held is written before it.
    fn needs_all(&self) -> bool {
        // A signal reads the run's row, which may be a held beginning.
        matches!(self, Op::Flush { .. } | Op::Claim { .. } | Op::Begin { reply: Some(_), .. } | Op::Signal { .. })
    }
}

/// Adds what the channel holds now to a batch that has begun, up to [`MAX_BATCH`].
fn drain(ops: &mpsc::Receiver<Op>, batch: &mut Vec<Op>) {
    while !batch.is_empty() && batch.len() < MAX_BATCH {
        match ops.try_recv() {
            Ok(op) => batch.push(op),
            Err(_) => break,
        }
    }
}

/// A held result, as the run gave it (with the run's [`Entries`], which its JSON names) or
/// already made JSON.
#[derive(Debug)]
pub(crate) enum Noting {
    Node(Box<Finished>, Arc<Entries>),
    Json(String),
}

impl Noting {
    /// The result's JSON, its subflow's nodes that have their own entries named by path.
    fn json(&self, file: &std::path::Path, path: &str) -> Result<String, JournalError> {
        match self {
            Noting::Node(node, entries) => entries.finished_json(file, path, node),
            Noting::Json(json) => Ok(json.clone()),
        }
    }
}

/// The nodes of one run that have an entry with their result (noted or finished), by path, and
/// whether that entry holds the node's `detail` (a read's has its result only). A record or an
/// entry written later names these entries rather than repeating them ([`RecordRows`]): each
/// result is written once. An entry is named only after it was handed to the writer, which
/// writes a run's entries in order; one lost with a failed batch makes the run's end fail
/// ([`Writer::apply`]), and a resumed run then runs that node again.
#[derive(Debug, Default)]
pub(crate) struct Entries(Mutex<HashMap<String, bool>>);

impl Entries {
    pub(crate) fn seeded(paths: impl IntoIterator<Item = (String, bool)>) -> Entries {
        Entries(Mutex::new(paths.into_iter().collect()))
    }

    /// The node at `path` has an entry with its result.
    pub(crate) fn add(&self, path: &str, has_detail: bool) {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).insert(path.to_owned(), has_detail);
    }

    /// A node's entry as JSON.
    pub(crate) fn finished_json(
        &self,
        file: &std::path::Path,
        path: &str,
        node: &Finished,
    ) -> Result<String, JournalError> {
        let entries = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let rows = |p: &str| entries.get(p).copied();
        to_json(file, &FinishedRows { finished: node, path, rows: &rows })
    }

    /// A run's record as JSON.
    pub(crate) fn record_json(&self, file: &std::path::Path, record: &RunRecord) -> Result<String, JournalError> {
        let entries = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let rows = |p: &str| entries.get(p).copied();
        to_json(file, &RecordRows { record, prefix: "", rows: &rows })
    }
}

/// What [`Op::Begin`] found.
#[derive(Debug)]
pub(crate) enum Began {
    /// A new run, created and held by this process.
    Fresh,
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

/// The `(flow, key)` of the runs of this process whose beginning is held ([`Op::Begin`] without a
/// reply, with a key): reserved by the run before it holds it, given back by the writer once it
/// wrote it (or failed to).
pub(crate) type Reserved = std::collections::HashSet<(String, String)>;

/// The writer's state.
pub(crate) struct Writer {
    /// Keys reserved by held beginnings.
    pub keys: Arc<Mutex<Reserved>>,
    /// Woken when keys are given back: a run of this process waiting for another's held
    /// beginning of the same key goes on then.
    pub keys_freed: Arc<tokio::sync::Notify>,
    /// Counts the batches that wrote a keyed beginning, under the `keys` lock (a look-ahead
    /// that read meanwhile is dropped).
    pub keys_written: Arc<std::sync::atomic::AtomicU64>,
    pub conn: Connection,
    /// The database file, for messages.
    pub file: PathBuf,
    /// The state folder, for lock files.
    pub dir: PathBuf,
    pub stats: Arc<Stats>,
    pub holder: Arc<Holder>,
    /// Runs put their held entries here.
    pub held: Arc<Mutex<HeldEntries>>,
    /// Whether the last commit succeeded (runs without a key then hold their beginning).
    pub healthy: Arc<AtomicBool>,
    /// Set when the held entries were last taken out (a wake-up is asked for only once).
    pub nudged: Arc<AtomicBool>,
    /// How long an entry is held at most ([`HOLD`] unless a test says otherwise).
    pub hold: Duration,
    /// When set, an awaited entry is committed once the runs' runtime is idle or the pace's
    /// window has passed, rather than at once.
    pub pace: Option<Arc<crate::pace::Pace>>,
    /// Woken after a commit that wrote outbox notices.
    pub outbox: Arc<tokio::sync::Notify>,
    /// Whether the current batch wrote a notice.
    pub noticed: std::cell::Cell<bool>,
    /// The keys of the held beginnings in the current batch, given back after it.
    pub written_keys: std::cell::RefCell<Vec<(String, String)>>,
    /// Runs of this process that lost a node's entry with a failed batch: their records may name
    /// it, so their end is refused (the run then reads as interrupted, and a resume runs that
    /// node again), until their handle lets them go.
    pub broken: std::cell::RefCell<std::collections::HashSet<RunNo>>,
    /// Told what each commit wrote (`checkpoint`), when the checkpointer runs.
    pub checkpoints: Option<crate::checkpoint::Nudge>,
}

/// Entries nobody waits for, per run.
#[derive(Debug, Default)]
pub(crate) struct HeldEntries {
    runs: HashMap<RunNo, Held>,
    /// How many entries `runs` holds.
    len: usize,
}

/// A run's held entries.
#[derive(Debug)]
struct Held {
    /// When the oldest came.
    since: Instant,
    /// Written with the next batch, whatever their age ([`HeldEntries::push_end`]).
    due: bool,
    ops: Vec<Op>,
}

impl HeldEntries {
    /// Holds `op` for `run`; answers how many entries are held now.
    pub(crate) fn push(&mut self, run: RunNo, op: Op) -> usize {
        self.runs
            .entry(run)
            .or_insert_with(|| Held { since: Instant::now(), due: false, ops: Vec::new() })
            .ops
            .push(op);
        self.len += 1;
        self.len
    }

    /// Holds the final end of `run`: its held starts are dropped (its record has every node's
    /// times), its beginning and results kept (its record names their entries). The end of a
    /// run whose beginning is written (it waited for an entry before) goes with the writer's
    /// next batch rather than after [`HOLD`]: the writer is awake for other runs anyway (an idle
    /// one still takes it within `HOLD`, woken by nothing new), the pages the end changes are
    /// still the ones those batches write, and the end is durable sooner. A run of reads keeps
    /// its whole self held, so that it wakes the writer not once.
    pub(crate) fn push_end(&mut self, run: RunNo, op: Op) -> usize {
        let mut begun = true;
        if let Some(held) = self.runs.get_mut(&run) {
            let before = held.ops.len();
            held.ops.retain(|op| matches!(op, Op::Begin { .. } | Op::Noted { .. }));
            self.len -= before - held.ops.len();
            begun = !held.ops.iter().any(|op| matches!(op, Op::Begin { .. }));
        }
        let len = self.push(run, op);
        if let Some(held) = self.runs.get_mut(&run) {
            held.due = begun;
        }
        len
    }

    /// Makes the held results of `run` JSON, in place: called by the run before its next awaited
    /// entry, which takes them along to the writer, so that the JSON is made by the run's thread
    /// rather than by the one writer every run waits for. In place, under the lock, so that the
    /// order of the run's entries and the rule that an awaited entry brings them all stay as
    /// they are (a few tens of microseconds: a run's results are a few kilobytes).
    pub(crate) fn serialize(&mut self, run: RunNo, file: &std::path::Path) {
        let Some(Held { ops: entries, .. }) = self.runs.get_mut(&run) else { return };
        for op in entries {
            if let Op::Noted { node: noting, path, .. } = op
                && let Noting::Node(..) = noting
                // A result that cannot be made JSON stays as it is: the writer says why.
                && let Ok(json) = noting.json(file, path)
            {
                *noting = Noting::Json(json);
            }
        }
    }

    fn take(&mut self, run: RunNo) -> Option<Vec<Op>> {
        let Held { ops: entries, .. } = self.runs.remove(&run)?;
        self.len -= entries.len();
        Some(entries)
    }
}

/// Which row each run of this process is, once its beginning or claim is written, or why its
/// held beginning could not be written.
type Rows = HashMap<RunNo, Result<i64, JournalError>>;

/// An op's outcome before commit, held until the commit tells whether it stands.
enum Done {
    Unit(Option<Reply<()>>, Result<(), JournalError>),
    /// A node's entries of a run written together ([`NodeRow`]).
    Units(RunNo, Vec<Reply<()>>, Result<(), JournalError>),
    /// A beginning: the run, its row when it was created here, the waiter if any.
    Began(RunNo, Option<Reply<Began>>, Result<Began, JournalError>),
    Claimed(RunNo, i64, Reply<Claimed>, Result<Claimed, JournalError>),
    Delivered(Reply<Delivery>, Result<Delivery, JournalError>),
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

/// A node's entries of one batch ([`NodeRow`]): its first start is kept, a later intent or
/// result replaces an earlier one.
const NODE: &str = "INSERT INTO nodes (run, path, started_at, intent, finished, at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)
     ON CONFLICT (run, path) DO UPDATE SET started_at = coalesce(started_at, excluded.started_at),
                                           intent = coalesce(excluded.intent, intent),
                                           finished = coalesce(excluded.finished, finished),
                                           at = max(at, excluded.at)";
/// A run that ends finished is held by nobody again; one that ends otherwise stays held by its
/// handle until it is dropped ([`Op::Release`]).
/// A run stopped while it waited (`interrupted`) still waits: a resume waits again.
const END: &str = "UPDATE runs SET status = ?2, note = ?3, record = ?4, updated_at = ?5,
                       holder = CASE WHEN ?2 IN ('succeeded', 'failed') THEN NULL ELSE holder END,
                       waiting_path = CASE WHEN ?2 = 'interrupted' THEN waiting_path END,
                       waiting_signal = CASE WHEN ?2 = 'interrupted' THEN waiting_signal END,
                       waiting_until = CASE WHEN ?2 = 'interrupted' THEN waiting_until END
                   WHERE seq = ?1";
/// A notice of the run's end for one hook (the outbox).
const NOTICE: &str = "INSERT INTO outbox (event, hook, run_id, flow, status, created_at, due_at)
                      SELECT ?1, ?2, id, flow, ?3, ?4, ?4 FROM runs WHERE seq = ?5";
const WAIT: &str = "UPDATE runs SET waiting_path = ?2, waiting_signal = ?3, waiting_until = ?4 WHERE seq = ?1";
const WAITED: &str = "UPDATE runs SET waiting_path = NULL, waiting_signal = NULL, waiting_until = NULL
                      WHERE seq = ?1 AND waiting_path = ?2";
const CLAIM: &str =
    "UPDATE runs SET status = 'running', note = NULL, record = NULL, updated_at = ?2, holder = ?3 WHERE seq = ?1";
const RELEASE: &str = "UPDATE runs SET holder = NULL WHERE seq = ?1 AND holder = ?2";

impl Writer {
    /// Serves ops until every sender is gone, then writes what it still holds.
    pub(crate) fn serve(self, ops: mpsc::Receiver<Op>) {
        let mut prepared = Prepared::new(&self.conn);
        let mut rows = Rows::new();
        if let Some(pace) = &self.pace {
            pace.serve_here();
        }
        loop {
            // Every `HOLD` at least, for the held entries that came of age.
            let first = match ops.recv_timeout(self.hold) {
                Ok(op) => Some(op),
                Err(mpsc::RecvTimeoutError::Timeout) => None,
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            };
            let since = Instant::now();
            let mut batch: Vec<Op> = first.into_iter().collect();
            drain(&ops, &mut batch);
            if let Some(pace) = &self.pace
                && batch.iter().any(Op::awaited)
            {
                pace.until_idle(since);
                drain(&ops, &mut batch);
            }
            let writes = self.route(batch, false);
            self.apply(&mut prepared, &mut rows, writes);
            self.give_back_keys();
        }
        let writes = self.route(Vec::new(), true);
        self.apply(&mut prepared, &mut rows, writes);
        self.give_back_keys();
    }

    /// Gives back the keys of the held beginnings the last batch wrote (or failed to write): from
    /// now on a lookup of such a key sees its run, or the run knows it has no row.
    fn give_back_keys(&self) {
        let mut written = self.written_keys.borrow_mut();
        if written.is_empty() {
            return;
        }
        let mut keys = self.keys.lock().unwrap_or_else(PoisonError::into_inner);
        self.keys_written.fetch_add(1, Ordering::SeqCst);
        for key in written.drain(..) {
            keys.remove(&key);
        }
        drop(keys);
        self.keys_freed.notify_waiters();
    }

    fn route(&self, batch: Vec<Op>, all: bool) -> Vec<Op> {
        let mut held = self.held.lock().unwrap_or_else(PoisonError::into_inner);
        let writes = route(&mut held, batch, all, self.hold);
        if held.len == 0 {
            self.nudged.store(false, Ordering::Relaxed);
        }
        writes
    }

    /// One transaction for the whole batch, then the replies. Every op writes with one
    /// statement, and SQLite undoes a failed statement alone: one op's error fails only its own
    /// waiter, unless SQLite rolled the whole transaction back (a full disk), which fails the
    /// batch.
    fn apply(&self, prepared: &mut Prepared<'_>, rows: &mut Rows, batch: Vec<Op>) {
        if batch.is_empty() {
            return;
        }
        let count = batch.len() as u64;
        let steps = steps(batch);
        let mut done = Vec::with_capacity(steps.len());
        let mut ops = steps.into_iter();
        // Prepared once, as the entries' statements: parsing them anew for every batch was a few
        // per cent of the journal's cost.
        let mut failure = self.exec_prepared(prepared, "BEGIN IMMEDIATE").err();
        if failure.is_none() {
            for step in ops.by_ref() {
                let (d, error) = match step {
                    Step::Op(op) => self.apply_one(prepared, rows, op),
                    Step::Node(node) => self.apply_node(prepared, rows, node),
                };
                done.push(d);
                if error.is_some() && self.conn.is_autocommit() {
                    failure = error;
                    break;
                }
            }
        }
        if failure.is_none() {
            failure = self.exec_prepared(prepared, "COMMIT").err();
        }
        if let Some(e) = failure {
            if !self.conn.is_autocommit() {
                let _ = self.conn.execute_batch("ROLLBACK");
            }
            // Everything in the batch is undone: every waiter hears why, and runs created or
            // claimed in it are released. Held entries had no waiter: the next run's beginning
            // is awaited, and hears it from the journal itself.
            self.healthy.store(false, Ordering::Relaxed);
            self.noticed.set(false);
            let mut broken = self.broken.borrow_mut();
            for d in &done {
                if let Done::Units(run, ..) = d {
                    broken.insert(*run);
                }
            }
            for step in ops.as_slice() {
                if let Step::Node(node) = step {
                    broken.insert(node.run);
                }
            }
            drop(broken);
            for d in done {
                d.fail(&e, &self.holder, rows);
            }
            for step in ops {
                step.fail(&e);
            }
            return;
        }
        if self.noticed.replace(false) {
            self.outbox.notify_one();
        }
        // A held beginning that failed alone (its statement) leaves the journal suspect too.
        let held_begin_failed = done.iter().any(|d| matches!(d, Done::Began(_, None, Err(_))));
        self.healthy.store(!held_begin_failed, Ordering::Relaxed);
        self.stats.commits.fetch_add(1, Ordering::Relaxed);
        self.stats.ops.fetch_add(count, Ordering::Relaxed);
        if let Some(checkpoints) = &self.checkpoints {
            checkpoints.wrote(count);
        }
        for d in done {
            match d {
                Done::Unit(Some(reply), r) => {
                    let _ = reply.send(r);
                }
                Done::Units(_, replies, r) => {
                    for reply in replies {
                        let _ = reply.send(r.clone());
                    }
                }
                Done::Began(run, Some(reply), r) => {
                    if let Err(Ok(Began::Fresh)) = reply.send(r) {
                        // Its waiter is gone: the run stays, unheld (interrupted), like a crash.
                        if let Some(Ok(seq)) = rows.remove(&run) {
                            self.holder.release(seq);
                        }
                    }
                }
                Done::Claimed(run, seq, reply, r) => {
                    if let Err(Ok(Claimed::Held)) = reply.send(r) {
                        // Its waiter is gone: as for a new run, the run stays unheld.
                        rows.remove(&run);
                        self.holder.release(seq);
                    }
                }
                Done::Delivered(reply, r) => {
                    let _ = reply.send(r);
                }
                Done::Unit(None, _) | Done::Began(_, None, _) | Done::Quiet => {}
            }
        }
    }

    /// Applies one op; answers its outcome and its error, if any.
    fn apply_one(&self, prepared: &mut Prepared<'_>, rows: &mut Rows, op: Op) -> (Done, Option<JournalError>) {
        // A node's entries come as [`Step::Node`]s (`steps`); one alone is written the same way.
        let op = match NodeRow::of(op) {
            Ok(row) => return self.apply_node(prepared, rows, row),
            Err(op) => op,
        };
        let err = |e: rusqlite::Error| error::sqlite(&e, &self.file, Doing::Written);
        let unit = |reply, r: Result<usize, JournalError>| {
            let r = r.map(drop);
            let e = r.as_ref().err().cloned();
            (Done::Unit(reply, r), e)
        };
        // The run's row, or why there is none: its held beginning failed.
        let row = |run: RunNo| rows.get(&run).cloned().unwrap_or_else(|| Err(lost(&self.file)));
        match op {
            Op::Begin { run, info, reply } => {
                let r = self.begin(prepared, &info);
                // A held beginning's reservation is given back after the batch; an awaited one
                // has none, but is counted the same (`Shared::look_ahead`).
                if let Some(key) = &info.key {
                    self.written_keys.borrow_mut().push((info.flow.clone(), key.clone()));
                }
                match (&r, &reply) {
                    (Ok((Began::Fresh, seq)), _) => drop(rows.insert(run, Ok(*seq))),
                    // A held beginning whose key another process began since the run looked
                    // it up: the run's first write is refused before it is sent.
                    (Ok((Began::Found { id, .. }, _)), None) => drop(rows.insert(run, Err(key_taken(&info, id)))),
                    // Nobody waits: the run's next entries answer why, and the next run's
                    // beginning is awaited.
                    (Err(e), None) => drop(rows.insert(run, Err(e.clone()))),
                    _ => {}
                }
                let r = r.map(|(began, _)| began);
                let e = r.as_ref().err().cloned();
                (Done::Began(run, reply, r), e)
            }
            // Taken by `NodeRow::of` above.
            Op::Started { .. } | Op::Noted { .. } | Op::Intent { .. } | Op::Finished { .. } => (Done::Quiet, None),
            Op::Let { run, finished } => {
                // Its end was refused: it is let go unfinished.
                let finished = finished && !self.broken.borrow_mut().remove(&run);
                let Some(Ok(seq)) = rows.remove(&run) else { return (Done::Quiet, None) };
                self.holder.release(seq);
                if finished {
                    return (Done::Quiet, None);
                }
                (Done::Quiet, prepared.execute(RELEASE, params![seq, self.holder.name()]).err().map(err))
            }
            Op::End { run, status, note, record, at, reply, notices } => unit(
                reply,
                row(run).and_then(|seq| {
                    if self.broken.borrow().contains(&run) {
                        return Err(entry_lost(&self.file));
                    }
                    if notices.is_empty() {
                        return prepared
                            .execute(END, params![seq, status.name(), note, record, sql_ms(at)])
                            .map_err(err);
                    }
                    // The end and its notices stand or fall together.
                    self.exec("SAVEPOINT end_run")?;
                    let r = prepared
                        .execute(END, params![seq, status.name(), note, record, sql_ms(at)])
                        .and_then(|n| {
                            for (hook, event) in &notices {
                                prepared.execute(NOTICE, params![event, hook, status.name(), sql_ms(at), seq])?;
                            }
                            Ok(n)
                        })
                        .map_err(err);
                    if r.is_err() && !self.conn.is_autocommit() {
                        let _ = self.exec("ROLLBACK TO end_run");
                    }
                    if !self.conn.is_autocommit() {
                        let _ = self.exec("RELEASE end_run");
                    }
                    if r.is_ok() {
                        self.noticed.set(true);
                    }
                    r
                }),
            ),
            Op::Claim { run, seq, at, reply } => {
                let r = self.claim(prepared, seq, at);
                if let Ok(Claimed::Held) = r {
                    rows.insert(run, Ok(seq));
                }
                let e = r.as_ref().err().cloned();
                (Done::Claimed(run, seq, reply, r), e)
            }
            Op::Flush { reply } => (Done::Unit(reply, Ok(())), None),
            Op::Wait { run, path, signal, until, reply } => unit(
                Some(reply),
                row(run)
                    .and_then(|seq| prepared.execute(WAIT, params![seq, path, signal, until.map(sql_ms)]).map_err(err)),
            ),
            Op::Waited { run, path } => {
                let r = row(run).and_then(|seq| prepared.execute(WAITED, params![seq, path]).map_err(err));
                (Done::Quiet, r.err())
            }
            Op::Signal { id, name, payload, at, reply } => {
                let r = self.signal(prepared, &id, &name, &payload, at);
                let e = r.as_ref().err().cloned();
                (Done::Delivered(reply, r), e)
            }
        }
    }

    /// A node's entries of the batch, with one statement; its waiters hear how it went.
    fn apply_node(&self, prepared: &mut Prepared<'_>, rows: &Rows, node: NodeRow) -> (Done, Option<JournalError>) {
        let NodeRow { run, path, started, intent, finished, at, replies } = node;
        let r = rows.get(&run).cloned().unwrap_or_else(|| Err(lost(&self.file))).and_then(|seq| {
            let finished = match finished {
                Some(Noting::Json(json)) => Some(json),
                Some(noting) => Some(noting.json(&self.file, &path)?),
                None => None,
            };
            prepared
                .execute(NODE, params![seq, path, started.map(sql_ms), intent, finished, sql_ms(at)])
                .map(drop)
                .map_err(|e| error::sqlite(&e, &self.file, Doing::Written))
        });
        let e = r.as_ref().err().cloned();
        (Done::Units(run, replies, r), e)
    }

    /// [`Op::Signal`]: inside the batch's IMMEDIATE transaction, after every held entry (a held
    /// beginning included), so that a signal and the run's end are ordered: a signal is stored
    /// only for a run that has not ended.
    fn signal(
        &self,
        prepared: &mut Prepared<'_>,
        id: &str,
        name: &str,
        payload: &serde_json::Value,
        at: u64,
    ) -> Result<Delivery, JournalError> {
        let err = |e: rusqlite::Error| error::sqlite(&e, &self.file, Doing::Written);
        let row = prepared
            .get("SELECT seq, status, signals FROM runs WHERE id = ?1")
            .and_then(|s| {
                s.query_row([id], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?, r.get::<_, Option<String>>(2)?)))
                    .optional()
            })
            .map_err(err)?;
        let Some((seq, status, signals)) = row else { return Ok(Delivery::UnknownRun) };
        let status = StoredStatus::parse(&status).unwrap_or(StoredStatus::Interrupted);
        if status.is_final() {
            return Ok(Delivery::Finished { status });
        }
        let signals: Vec<SignalSpec> = match signals {
            Some(text) => serde_json::from_str(&text)
                .map_err(|e| error::json(&self.file, &format!("run `{id}`'s signals"), &e))?,
            None => Vec::new(),
        };
        let Some(spec) = signals.iter().find(|s| s.name == name) else {
            return Ok(Delivery::NotAwaited { awaited: signals.into_iter().map(|s| s.name).collect() });
        };
        if let Err(problems) = spec.check(payload) {
            return Ok(Delivery::BadPayload { problems });
        }
        let text = to_json(&self.file, payload)?;
        let stored = prepared
            .execute(
                "INSERT INTO signals (run, name, payload, at) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (run, name) DO NOTHING",
                params![seq, name, text, sql_ms(at)],
            )
            .map_err(err)?;
        Ok(if stored == 0 { Delivery::AlreadyDelivered } else { Delivery::Delivered })
    }

    /// [`Op::Begin`]: inside the batch's IMMEDIATE transaction, so that two processes starting
    /// one key see each other: the second finds the first's row. Answers the new run's row.
    fn begin(&self, prepared: &mut Prepared<'_>, info: &RunInfo) -> Result<(Began, i64), JournalError> {
        let err = |e: rusqlite::Error| error::sqlite(&e, &self.file, Doing::Written);
        if let Some(key) = &info.key {
            let found = prepared
                .get("SELECT seq, id, status FROM runs WHERE flow = ?1 AND key = ?2")
                .and_then(|s| {
                    s.query_row(params![info.flow, key], |r| {
                        Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?, r.get::<_, String>(2)?))
                    })
                    .optional()
                })
                .map_err(err)?;
            if let Some((seq, id, status)) = found {
                let status = StoredStatus::parse(&status).unwrap_or(StoredStatus::Interrupted);
                return Ok((Began::Found { seq, id, status }, seq));
            }
        }
        let f = &self.file;
        let (inputs, vars) = (to_json(f, &info.inputs)?, to_json(f, &info.vars)?);
        let (binds, targets) = (to_json(f, &info.binds)?, to_json(f, &info.targets)?);
        let signals = if info.signals.is_empty() { None } else { Some(to_json(f, &info.signals)?) };
        // The id was chosen by the run (time and 30 random bits): the unique index refuses the
        // one-in-a-billion twin of a run started in the same millisecond.
        prepared
            .execute(
                "INSERT INTO runs (id, flow, flow_digest, key, inputs, vars, binds, targets, created_at, updated_at,
                                   deadline_at, status, source, holder, signals)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?9, ?10, 'running', ?11, ?12, ?13)",
                params![
                    info.id,
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
                    signals,
                ],
            )
            .map_err(err)?;
        let seq = self.conn.last_insert_rowid();
        // Held from the commit on; released again if the transaction fails.
        self.holder.take(seq);
        Ok((Began::Fresh, seq))
    }

    /// [`Op::Claim`]: inside the batch's IMMEDIATE transaction, so that two processes claiming
    /// one run are ordered: the second sees the first's name and its lock.
    fn claim(&self, prepared: &mut Prepared<'_>, seq: i64, at: u64) -> Result<Claimed, JournalError> {
        let err = |e: rusqlite::Error| error::sqlite(&e, &self.file, Doing::Written);
        let row = prepared
            .get("SELECT id, status, holder FROM runs WHERE seq = ?1")
            .and_then(|s| {
                s.query_row([seq], |r| {
                    Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, Option<String>>(2)?))
                })
                .optional()
            })
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

    fn exec_prepared(&self, prepared: &mut Prepared<'_>, sql: &'static str) -> Result<(), JournalError> {
        prepared.execute(sql, []).map(drop).map_err(|e| error::sqlite(&e, &self.file, Doing::Written))
    }

    fn exec(&self, sql: &str) -> Result<(), JournalError> {
        self.conn.execute_batch(sql).map_err(|e| error::sqlite(&e, &self.file, Doing::Written))
    }
}

/// The error of the first awaited op of a run whose held beginning found its key begun by
/// another process meanwhile: the run was not written, and is begun again.
fn key_taken(info: &RunInfo, id: &str) -> JournalError {
    JournalError::new(
        flowcat_engine::journal::KEY_TAKEN,
        format!(
            "another flowcat process began run `{id}` of flow `{}` with the same key at the same moment: this run \
             sent no write and is not recorded",
            info.flow
        ),
    )
}

/// The error of an op whose run has no row: its beginning was not written.
fn lost(file: &std::path::Path) -> JournalError {
    JournalError::new(
        "not_journaled",
        format!(
            "this run's beginning could not be written to the journal `{}` (an earlier error): it is not recorded",
            file.display()
        ),
    )
}

/// The error of the end of a run that lost a node's entry with a failed batch.
fn entry_lost(file: &std::path::Path) -> JournalError {
    JournalError::new(
        "not_journaled",
        format!(
            "a node's result could not be written to the journal `{}` (an earlier error): the run is not \
             recorded as ended, and resuming it runs that node again",
            file.display()
        ),
    )
}

/// What a transaction applies: an op, or a node's entries together.
enum Step {
    Op(Op),
    Node(NodeRow),
}

impl Step {
    fn fail(self, e: &JournalError) {
        match self {
            Step::Op(op) => op.fail(e),
            Step::Node(node) => {
                for reply in node.replies {
                    let _ = reply.send(Err(e.clone()));
                }
            }
        }
    }
}

/// The entries of one node of one run in a batch (its start, its intent, its result), written
/// by one statement where they were two or three (a start and a result most often: a run's
/// held entries come to the writer together). It is written where its first entry was: what
/// comes between (other nodes, the run's own row) does not read a node's row.
struct NodeRow {
    run: RunNo,
    path: String,
    /// The first start.
    started: Option<u64>,
    /// The last intent.
    intent: Option<String>,
    /// The last result.
    finished: Option<Noting>,
    /// The latest entry's time.
    at: u64,
    replies: Vec<Reply<()>>,
}

/// The batch as steps: each node's entries merged into one [`NodeRow`].
fn steps(batch: Vec<Op>) -> Vec<Step> {
    let mut steps: Vec<Step> = Vec::with_capacity(batch.len());
    let mut nodes: HashMap<(RunNo, String), usize> = HashMap::new();
    for op in batch {
        let row = match NodeRow::of(op) {
            Ok(row) => row,
            Err(other) => {
                steps.push(Step::Op(other));
                continue;
            }
        };
        match nodes.entry((row.run, row.path.clone())) {
            std::collections::hash_map::Entry::Occupied(seen) => {
                let Step::Node(first) = &mut steps[*seen.get()] else { unreachable!("`nodes` indexes NodeRows") };
                first.merge(row);
            }
            std::collections::hash_map::Entry::Vacant(new) => {
                new.insert(steps.len());
                steps.push(Step::Node(row));
            }
        }
    }
    steps
}

impl NodeRow {
    /// A node's entry as a row; any other op is given back.
    fn of(op: Op) -> Result<NodeRow, Op> {
        let row = |run, path, at, started, intent, finished, reply: Option<Reply<()>>| NodeRow {
            run,
            path,
            started,
            intent,
            finished,
            at,
            replies: reply.into_iter().collect(),
        };
        Ok(match op {
            Op::Started { run, path, at } => row(run, path, at, Some(at), None, None, None),
            Op::Intent { run, path, request, at, reply } => row(run, path, at, None, Some(request), None, Some(reply)),
            Op::Finished { run, path, node, at, reply } => {
                row(run, path, at, None, None, Some(Noting::Json(node)), Some(reply))
            }
            Op::Noted { run, path, node, at } => row(run, path, at, None, None, Some(node), None),
            other => return Err(other),
        })
    }

    /// Takes a later entry of the same node in: the first start, the last intent and result.
    fn merge(&mut self, later: NodeRow) {
        self.started = self.started.or(later.started);
        self.intent = later.intent.or(self.intent.take());
        self.finished = later.finished.or(self.finished.take());
        self.at = self.at.max(later.at);
        self.replies.extend(later.replies);
    }
}

/// What the batch writes now, in order: an op of a run brings the run's held entries before it
/// (see the module's documentation); held entries older than [`HOLD`] (all of them with `all`,
/// or before an op that reads what other runs wrote: a flush, a claim, a key's beginning) come
/// first.
fn route(held: &mut HeldEntries, batch: Vec<Op>, mut all: bool, hold: Duration) -> Vec<Op> {
    let mut writes = Vec::with_capacity(batch.len());
    for op in batch {
        all |= op.needs_all();
        if let Some(entries) = op.run().and_then(|run| held.take(run)) {
            writes.extend(entries);
        }
        writes.push(op);
    }
    let now = Instant::now();
    let due: Vec<RunNo> =
        held.runs.iter().filter(|(_, h)| all || h.due || now >= h.since + hold).map(|(run, _)| *run).collect();
    // Before the batch: a flush answers once what came before it is written, and a claim or a
    // key's lookup sees the ends this process already made. A run with an op in the batch took
    // its own entries before that op above.
    let mut late = Vec::new();
    for run in due {
        late.extend(held.take(run).unwrap_or_default());
    }
    if late.is_empty() {
        return writes;
    }
    late.extend(writes);
    late
}

impl Done {
    /// Tells the waiter that its batch failed; a run created or claimed in it is released.
    fn fail(self, e: &JournalError, holder: &Holder, rows: &mut Rows) {
        match self {
            Done::Unit(reply, _) => {
                if let Some(reply) = reply {
                    let _ = reply.send(Err(e.clone()));
                }
            }
            Done::Units(_, replies, _) => {
                for reply in replies {
                    let _ = reply.send(Err(e.clone()));
                }
            }
            Done::Began(run, reply, began) => {
                if let Ok(Began::Fresh) = &began {
                    if let Some(Ok(seq)) = rows.remove(&run) {
                        holder.release(seq);
                    }
                }
                if reply.is_none() {
                    // The run's next entries answer why.
                    rows.insert(run, Err(e.clone()));
                }
                if let Some(reply) = reply {
                    let _ = reply.send(Err(e.clone()));
                }
            }
            Done::Claimed(run, seq, reply, claimed) => {
                if let Ok(Claimed::Held) = claimed {
                    rows.remove(&run);
                    holder.release(seq);
                }
                let _ = reply.send(Err(e.clone()));
            }
            Done::Delivered(reply, _) => {
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
            Op::Begin { reply: Some(reply), .. } => drop(reply.send(Err(e))),
            Op::Claim { reply, .. } => drop(reply.send(Err(e))),
            Op::Intent { reply, .. } | Op::Finished { reply, .. } => drop(reply.send(Err(e))),
            Op::End { reply: Some(reply), .. } | Op::Flush { reply: Some(reply) } => drop(reply.send(Err(e))),
            Op::Wait { reply, .. } => drop(reply.send(Err(e))),
            Op::Signal { reply, .. } => drop(reply.send(Err(e))),
            Op::Begin { reply: None, .. }
            | Op::Waited { .. }
            | Op::End { reply: None, .. }
            | Op::Flush { reply: None }
            | Op::Started { .. }
            | Op::Noted { .. }
            | Op::Let { .. } => {}
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

#[cfg(test)]
mod tests {
    use super::*;

    fn result(id: &str) -> Box<Finished> {
        let record = serde_json::json!({ "id": id, "kind": "set", "status": "succeeded", "attempts": 1, "result": id });
        Box::new(Finished { record: serde_json::from_value(record).expect("a node record"), branch: None })
    }

    fn noted(run: RunNo, path: &str) -> Op {
        Op::Noted { run, path: path.into(), node: Noting::Node(result(path), Default::default()), at: 30 }
    }

    /// A node's start, intent and result in one batch are one row written where the first was;
    /// the first start and the last intent and result count, and every waiter is answered.
    #[test]
    fn a_nodes_entries_in_a_batch_are_one_step() {
        let (reply, _answer) = oneshot::channel();
        let batch = vec![
            Op::Started { run: 1, path: "a".into(), at: 10 },
            Op::Started { run: 1, path: "b".into(), at: 11 },
            Op::Started { run: 2, path: "a".into(), at: 12 },
            Op::Started { run: 1, path: "a".into(), at: 13 },
            Op::Flush { reply: None },
            noted(1, "a"),
            Op::Intent { run: 1, path: "b".into(), request: "{}".into(), at: 40, reply },
        ];
        let steps = steps(batch);
        let shape: Vec<String> = steps
            .iter()
            .map(|s| match s {
                Step::Op(op) => format!("op {:?}", op.run()),
                Step::Node(n) => format!(
                    "{}/{} started {:?} intent {} finished {} at {} waiters {}",
                    n.run,
                    n.path,
                    n.started,
                    n.intent.is_some(),
                    n.finished.is_some(),
                    n.at,
                    n.replies.len()
                ),
            })
            .collect();
        assert_eq!(
            shape,
            [
                "1/a started Some(10) intent false finished true at 30 waiters 0",
                "1/b started Some(11) intent true finished false at 40 waiters 1",
                "2/a started Some(12) intent false finished false at 12 waiters 0",
                "op None",
            ]
        );
    }

    /// A run makes its held results JSON before its awaited entry; nothing else of it, and no
    /// other run's, changes, nor the order.
    #[test]
    fn a_runs_held_results_are_made_json_in_place() {
        let mut held = HeldEntries::default();
        held.push(1, Op::Started { run: 1, path: "a".into(), at: 1 });
        held.push(1, noted(1, "a"));
        held.push(2, noted(2, "a"));
        held.push(1, noted(1, "b"));
        held.serialize(1, std::path::Path::new("journal.sqlite3"));
        let kinds = |run| {
            held.runs[&run]
                .ops
                .iter()
                .map(|op| match op {
                    Op::Started { path, .. } => format!("started {path}"),
                    Op::Noted { path, node: Noting::Json(json), .. } => format!("json {path} {json}"),
                    Op::Noted { path, node: Noting::Node(..), .. } => format!("node {path}"),
                    other => format!("{other:?}"),
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(
            kinds(1),
            [
                "started a",
                r#"json a {"record":{"id":"a","kind":"set","status":"succeeded","attempts":1,"result":"a"}}"#,
                r#"json b {"record":{"id":"b","kind":"set","status":"succeeded","attempts":1,"result":"b"}}"#,
            ]
        );
        assert_eq!(kinds(2), ["node a"]);
        assert_eq!(held.len, 4);
    }
}
