//! [`Journal`]: the SQLite [`Store`]. Opening it checks the journal (version, integrity,
//! writability) before anything runs; beginning a run takes the run's lock; list and show read
//! through their own connection, so that they never wait behind the writer's batches.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, mpsc};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use flowcat_engine::journal::{
    Begun, Delivery, Filter, Held, IfBusy, JournalError, MAX_SIGNAL_BYTES, RunSummary, Start, Store, StoredRun,
    StoredStatus,
};
use flowcat_engine::run::BoxFuture;
use rusqlite::Connection;

use crate::checkpoint::{Checkpointer, WRITER_PAGES};
use crate::crash::{Crash, CrashAt};
use crate::dir::{self, DB_FILE, LOCKS};
use crate::error::{self, Doing};
use crate::handle::Handle;
use crate::lock::Holder;
use crate::pace::Pace;
use crate::read::Reader;
use crate::schema::{self, Setup};
use crate::writer::{Began, Claimed, Entries, HeldEntries, MAX_HELD, Op, Reply, Reserved, RunNo, Writer};

/// How a journal is opened.
#[derive(Clone, Debug)]
pub struct Options {
    /// A test-only crash point (`FLOWCAT_CRASH_AT`, read by [`Options::from_env`]).
    pub crash_at: Option<CrashAt>,
    /// Caps the database at this many pages (4 KiB each): reaching the cap is a full disk
    /// (`full`), which is how the tests provoke one.
    pub max_pages: Option<u32>,
    /// How long a statement waits for another process's write lock before `busy`.
    pub busy_timeout: Duration,
    /// How long [`IfBusy::Wait`] waits at most for another process's run of the same key (less
    /// when the run's deadline comes first), then answers [`Begun::Busy`].
    pub max_wait: Duration,
    /// How long an entry nobody waits for may stay in memory before it is written (unless
    /// `MAX_HELD` entries wait, or a run awaits an entry).
    pub hold: Duration,
    /// Paces the commits of awaited entries by the runtime that drives the runs ([`Pace`]);
    /// without it, such an entry is committed as soon as the writer has it.
    pub pace: Option<Arc<Pace>>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            crash_at: None,
            max_pages: None,
            busy_timeout: Duration::from_secs(10),
            max_wait: Duration::from_secs(15 * 60),
            hold: crate::writer::HOLD,
            pace: None,
        }
    }
}

impl Options {
    /// The defaults, with the crash point of `FLOWCAT_CRASH_AT`.
    pub fn from_env() -> Result<Options, JournalError> {
        Ok(Options { crash_at: CrashAt::from_env()?, ..Options::default() })
    }
}

/// The run journal in `STATE_DIR/journal.sqlite3`. Cheap to clone: clones share the writer.
#[derive(Clone)]
pub struct Journal {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Journal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Journal").field("file", &self.shared.file).finish_non_exhaustive()
    }
}

/// What the journal and its run handles share.
pub(crate) struct Shared {
    /// `None` only while dropping: the writer ends when its channel closes.
    ops: Option<mpsc::Sender<Op>>,
    writer: Option<std::thread::JoinHandle<()>>,
    /// Copies the WAL into the file beside the writer (`None` if it could not start).
    checkpointer: Option<Checkpointer>,
    stats: Arc<Stats>,
    /// The reading connection (and `prune`'s, and the outbox's).
    pub(crate) side: Mutex<Connection>,
    pub(crate) file: PathBuf,
    pub(crate) dir: PathBuf,
    pub(crate) crash: Option<Crash>,
    /// This process's claim on the runs it holds.
    pub(crate) holder: Arc<Holder>,
    /// Entries nobody waits for, until the writer takes them (`writer`, "held").
    held: Arc<Mutex<HeldEntries>>,
    /// Whether the writer's last commit succeeded: only then may a run hold its beginning.
    healthy: Arc<AtomicBool>,
    /// Whether the writer was asked to take the held entries early ([`MAX_HELD`]).
    nudged: Arc<AtomicBool>,
    /// The number of this process's next run ([`RunNo`]).
    next_run: AtomicU64,
    max_wait: Duration,
    /// Nodes of this process waiting for a signal, by run id and signal name: a delivery through
    /// this journal wakes them at once.
    pub(crate) waiters: flowcat_engine::journal::SignalWaiters,
    /// Which hooks hear of a run's end (`Outbox::subscribe`); none until a service subscribes.
    pub(crate) subscriptions: std::sync::RwLock<Option<flowcat_engine::outbox::Subscriptions>>,
    /// Woken by the writer after a commit that wrote notices.
    pub(crate) outbox: Arc<tokio::sync::Notify>,
    /// The `(flow, key)` of every run of this process whose beginning is held, until the writer
    /// has written it: a second run of one key in this process must not pass the lookup too.
    keys: Arc<Mutex<Reserved>>,
    /// Woken when reservations are given back ([`Shared::until_key_free`]).
    keys_freed: Arc<tokio::sync::Notify>,
    /// How many times the writer wrote keyed beginnings: a look-ahead that saw it change while
    /// it read may have read before one of them, and is dropped.
    keys_written: Arc<AtomicU64>,
    /// Keys that [`Store::look_ahead`] found without a run, with when: a beginning of such a key
    /// within [`AHEAD_FOR`] takes it instead of looking it up.
    ahead: Mutex<HashMap<(String, String), Instant>>,
}

/// How long a key found without a run by a look-ahead stands in for its lookup. The writer
/// still refuses a key another process began meanwhile, before the run sends anything; bounding
/// the time keeps that rare (two processes running the same rows) and its cost (reads done
/// again) small.
const AHEAD_FOR: Duration = Duration::from_secs(1);
/// The most keys a look-ahead keeps (a bulk run asks for a batch of rows at a time).
const MAX_AHEAD: usize = 4096;

impl Journal {
    /// Opens (creating it if needed) the journal in the state folder `dir`, with the crash point
    /// of `FLOWCAT_CRASH_AT` if set.
    pub fn open(dir: &Path) -> Result<Journal, JournalError> {
        Journal::open_with(dir, Options::from_env()?)
    }

    /// Opens the journal in `dir` with `options`. The folder is created with mode 0700 and the
    /// database with 0600; a journal that is damaged, read-only, from a newer flowcat, or (when
    /// new) on a full disk is refused here, before any run starts.
    pub fn open_with(dir: &Path, options: Options) -> Result<Journal, JournalError> {
        dir::create_private_dir(dir)?;
        dir::create_private_dir(&dir.join(LOCKS))?;
        let file = dir.join(DB_FILE);
        dir::create_private_file(&file)?;
        let setup = Setup { busy_timeout: options.busy_timeout, max_pages: options.max_pages };
        let (conn, side) = first_connections(&file, setup)?;
        // The WAL copied on a thread of its own (`checkpoint`); without it (no connection, no
        // thread), the writer checkpoints alone, as SQLite does by default.
        // With the thread, the writer copies only past `WRITER_PAGES` (a number, so formatting
        // it into the statement is safe; the pragma answers it); a writer that cannot be told so
        // checkpoints alone, and the thread is dropped.
        let (checkpointer, checkpoints) = match schema::connect(&file, setup).ok().map(Checkpointer::start) {
            Some(Ok((c, nudge)))
                if conn.query_row(&format!("PRAGMA wal_autocheckpoint = {WRITER_PAGES}"), [], |_| Ok(())).is_ok() =>
            {
                (Some(c), Some(nudge))
            }
            _ => (None, None),
        };
        let holder = Arc::new(Holder::new(dir)?);
        let held = Arc::new(Mutex::new(HeldEntries::default()));
        // Not healthy before a first commit: the first run's beginning is awaited, so a journal
        // that cannot take a write (a full disk) refuses it before it sends anything.
        let (healthy, nudged) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicBool::new(false)));
        let (ops, receiver) = mpsc::channel();
        let stats = Arc::new(Stats::default());
        let outbox = Arc::new(tokio::sync::Notify::new());
        let keys = Arc::new(Mutex::new(Reserved::default()));
        let keys_freed = Arc::new(tokio::sync::Notify::new());
        let keys_written = Arc::new(AtomicU64::new(0));
        let writer = Writer {
            keys: keys.clone(),
            keys_freed: keys_freed.clone(),
            keys_written: keys_written.clone(),
            conn,
            file: file.clone(),
            dir: dir.to_owned(),
            stats: stats.clone(),
            holder: holder.clone(),
            held: held.clone(),
            healthy: healthy.clone(),
            nudged: nudged.clone(),
            hold: options.hold,
            pace: options.pace,
            outbox: outbox.clone(),
            noticed: std::cell::Cell::new(false),
            written_keys: Default::default(),
            broken: Default::default(),
            checkpoints,
        };
        let writer = std::thread::Builder::new()
            .name("flowcat-journal".into())
            .spawn(move || writer.serve(receiver))
            .map_err(|e| error::io(&e, &file, Doing::Opened))?;
        let shared = Shared {
            ops: Some(ops),
            writer: Some(writer),
            checkpointer,
            stats,
            side: Mutex::new(side),
            file,
            dir: dir.to_owned(),
            crash: options.crash_at.map(Crash::new),
            holder,
            held,
            healthy,
            nudged,
            next_run: AtomicU64::new(1),
            max_wait: options.max_wait,
            waiters: Default::default(),
            subscriptions: std::sync::RwLock::new(None),
            outbox,
            keys,
            keys_freed,
            keys_written,
            ahead: Mutex::new(HashMap::new()),
        };
        Ok(Journal { shared: Arc::new(shared) })
    }

    /// Whether the state folder `dir` holds a journal (without creating one).
    pub fn exists(dir: &Path) -> bool {
        dir.join(DB_FILE).is_file()
    }

    pub(crate) fn shared(&self) -> &Shared {
        &self.shared
    }

    /// The database file.
    pub fn file(&self) -> &Path {
        &self.shared.file
    }

    /// How many transactions the writer committed, and how many ops they held.
    pub fn stats(&self) -> (u64, u64) {
        let stats = &self.shared.stats;
        (stats.commits.load(Ordering::Relaxed), stats.ops.load(Ordering::Relaxed))
    }

    /// Answers once everything journaled so far is committed (`started` included).
    pub async fn flush(&self) -> Result<(), JournalError> {
        self.shared.call(|reply| Op::Flush { reply: Some(reply) }).await
    }

    /// A finished run's stored form, for [`Begun::Done`].
    fn done(&self, id: &str) -> Result<Begun, JournalError> {
        match self.show(id)? {
            Some(run) => Ok(Begun::Done(Box::new(run))),
            None => Err(unknown_run(id, &self.shared.file)),
        }
    }

    /// Waits for run `id` (of a key) to be free, by `if_busy`.
    async fn wait(
        &self,
        seq: i64,
        id: String,
        if_busy: IfBusy,
        deadline_at: Option<u64>,
    ) -> Result<Begun, JournalError> {
        let start = now_ms();
        let give_up =
            deadline_at.unwrap_or(u64::MAX).min(start.saturating_add(self.shared.max_wait.as_millis() as u64));
        for attempt in 0.. {
            match self.take(seq, &id).await? {
                Take::Held(handle, past) => return Ok(Begun::Resumed(handle, past)),
                Take::Final => return self.done(&id),
                Take::Busy => {}
            }
            let now = now_ms();
            if if_busy == IfBusy::Refuse || now >= give_up {
                break;
            }
            tokio::time::sleep(backoff(attempt).min(Duration::from_millis(give_up - now))).await;
        }
        Ok(Begun::Busy { id })
    }

    /// Tries to take the unfinished run `id` for this process.
    async fn take(&self, seq: i64, id: &str) -> Result<Take, JournalError> {
        let shared = &self.shared;
        let run = shared.next_run();
        match shared.call(|reply| Op::Claim { run, seq, at: now_ms(), reply }).await? {
            Claimed::Held => {}
            Claimed::Final => return Ok(Take::Final),
            Claimed::Busy => return Ok(Take::Busy),
        }
        // Held from here: the handle releases it when dropped, whatever happens next.
        let read = || {
            let row = shared.read(|r| r.row(id))?.ok_or_else(|| unknown_run(id, &shared.file))?;
            let past = shared.read(|r| r.past(seq, id))?;
            Ok::<_, JournalError>((row, past))
        };
        match read() {
            Ok((row, past)) => {
                // The results the journal holds already: the run's record will name them.
                let held = past.nodes.iter().filter_map(|(path, node)| {
                    node.finished.as_ref().map(|f| (path.clone(), f.record.detail.is_some()))
                });
                let entries = Entries::seeded(held);
                let handle = Handle::new(shared.clone(), run, Arc::new(row.summary.info), true, entries);
                Ok(Take::Held(Box::new(handle), past))
            }
            Err(e) => {
                let _ = shared.send(Op::Let { run, finished: false });
                Err(e)
            }
        }
    }
}

/// What [`Journal::take`] got.
enum Take {
    Held(Box<Handle>, flowcat_engine::journal::Past),
    /// The run ended meanwhile.
    Final,
    /// Another process holds it.
    Busy,
}

/// The writer's counters.
#[derive(Debug, Default)]
pub(crate) struct Stats {
    pub commits: AtomicU64,
    pub ops: AtomicU64,
}

impl Drop for Shared {
    /// The last user is gone: close the channel, and let the writer commit what was sent
    /// (held entries included) and close its connection, which checkpoints the WAL; then the
    /// holder's lock file goes.
    fn drop(&mut self) {
        drop(self.checkpointer.take());
        drop(self.ops.take());
        if let Some(writer) = self.writer.take() {
            let _ = writer.join();
        }
        self.holder.remove();
    }
}

impl Shared {
    /// Holds an entry nobody waits for (a start, a read's result) for the writer to take: no
    /// message, no wake-up.
    pub(crate) fn hold(&self, run: RunNo, op: Op) {
        let held = self.held.lock().unwrap_or_else(PoisonError::into_inner).push(run, op);
        self.nudge_if(held);
    }

    /// Makes the held results of `run` JSON before an awaited entry of the run takes them to
    /// the writer ([`HeldEntries::serialize`]).
    pub(crate) fn serialize_held(&self, run: RunNo) {
        self.held.lock().unwrap_or_else(PoisonError::into_inner).serialize(run, &self.file);
    }

    /// Holds a run's final end (its held starts and results are dropped: the record has them).
    pub(crate) fn hold_end(&self, run: RunNo, op: Op) {
        let held = self.held.lock().unwrap_or_else(PoisonError::into_inner).push_end(run, op);
        self.nudge_if(held);
    }

    /// Wakes the writer (once) when `held` entries are more than it should let wait.
    fn nudge_if(&self, held: usize) {
        if held >= MAX_HELD && !self.nudged.swap(true, Ordering::Relaxed) {
            let _ = self.send(Op::Flush { reply: None });
        }
    }

    /// Reserves `(flow, key)` for a run of this process whose beginning will be held; `None`
    /// when another run of this process has it reserved. The writer gives it back once it has
    /// written that beginning.
    fn reserve_key(&self, flow: &str, key: &str) -> Option<(String, String)> {
        let reserved = (flow.to_owned(), key.to_owned());
        let mut keys = self.keys.lock().unwrap_or_else(PoisonError::into_inner);
        keys.insert(reserved.clone()).then_some(reserved)
    }

    /// Takes the look-ahead's word that no run has `(flow, key)`, if it has one still fresh.
    fn known_free(&self, flow: &str, key: &str) -> bool {
        let mut ahead = self.ahead.lock().unwrap_or_else(PoisonError::into_inner);
        if ahead.is_empty() {
            return false;
        }
        ahead.remove(&(flow.to_owned(), key.to_owned())).is_some_and(|at| at.elapsed() < AHEAD_FOR)
    }

    /// [`Store::look_ahead`]: the keys without a run, in one read, kept for [`AHEAD_FOR`]. Not
    /// kept when a keyed beginning was written while they were read (the read may predate it),
    /// and never a key a run of this process has reserved (its beginning is held, unwritten).
    fn look_ahead(&self, flow: &str, keys: &[String]) {
        if keys.is_empty() || !self.healthy.load(Ordering::Relaxed) {
            return;
        }
        let written = self.keys_written.load(Ordering::SeqCst);
        let Ok(absent) = self.read(|r| r.keys_without_run(flow, keys)) else { return };
        let reserved = self.keys.lock().unwrap_or_else(PoisonError::into_inner);
        // The writer counts under this lock: unchanged now means no beginning was written since
        // before the read.
        if self.keys_written.load(Ordering::SeqCst) != written {
            return;
        }
        let now = Instant::now();
        let mut ahead = self.ahead.lock().unwrap_or_else(PoisonError::into_inner);
        ahead.retain(|_, at| now.duration_since(*at) < AHEAD_FOR);
        for key in absent {
            let entry = (flow.to_owned(), key.to_owned());
            if ahead.len() < MAX_AHEAD && !reserved.contains(&entry) {
                ahead.insert(entry, now);
            }
        }
    }

    /// Gives a reservation back at once (the key was found: its beginning is not held).
    fn release_key(&self, reserved: &(String, String)) {
        self.keys.lock().unwrap_or_else(PoisonError::into_inner).remove(reserved);
        self.keys_freed.notify_waiters();
    }

    /// Waits until no run of this process has `(flow, key)` reserved: its beginning, held, is
    /// then written (or known failed), so an awaited beginning of the key finds it. Without this
    /// wait, the awaited beginning could reach the writer before the held one and both runs
    /// would start (the held one then failing with `key_taken`).
    async fn until_key_free(&self, flow: &str, key: &str) {
        let reserved = (flow.to_owned(), key.to_owned());
        loop {
            let freed = self.keys_freed.notified();
            let mut freed = std::pin::pin!(freed);
            freed.as_mut().enable();
            if !self.keys.lock().unwrap_or_else(PoisonError::into_inner).contains(&reserved) {
                return;
            }
            // Bounded: a held beginning is written within the hold; the wake-up is only faster.
            let _ = tokio::time::timeout(Duration::from_millis(50), freed).await;
        }
    }

    /// A number for a run of this process.
    pub(crate) fn next_run(&self) -> RunNo {
        self.next_run.fetch_add(1, Ordering::Relaxed)
    }

    pub(crate) fn send(&self, op: Op) -> Result<(), JournalError> {
        let ops = self.ops.as_ref().ok_or_else(|| error::stopped(&self.file))?;
        ops.send(op).map_err(|_| error::stopped(&self.file))
    }

    /// Sends an op and waits until it is committed.
    pub(crate) async fn call<T>(&self, op: impl FnOnce(Reply<T>) -> Op) -> Result<T, JournalError> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        self.send(op(reply))?;
        answer.await.map_err(|_| error::stopped(&self.file))?
    }

    /// Waits, blocking the thread, until everything sent so far is committed (at most 5 s): for a
    /// crash point in `started`, which is not async.
    pub(crate) fn flush_blocking(&self) {
        let (reply, mut answer) = tokio::sync::oneshot::channel();
        if self.send(Op::Flush { reply: Some(reply) }).is_err() {
            return;
        }
        for _ in 0..5000 {
            match answer.try_recv() {
                Err(tokio::sync::oneshot::error::TryRecvError::Empty) => {
                    std::thread::sleep(Duration::from_millis(1));
                }
                _ => return,
            }
        }
    }

    /// The payload of signal `name` delivered to run `id`, if it was.
    pub(crate) fn delivered(&self, id: &str, name: &str) -> Result<Option<serde_json::Value>, JournalError> {
        self.read(|r| r.signal(id, name))
    }

    fn read<T>(&self, f: impl FnOnce(&Reader<'_>) -> T) -> T {
        let conn = self.side.lock().unwrap_or_else(PoisonError::into_inner);
        f(&Reader { conn: &conn, file: &self.file, dir: &self.dir, holder: &self.holder })
    }
}

impl Store for Journal {
    fn begin(&self, start: Start) -> BoxFuture<'_, Result<Begun, JournalError>> {
        Box::pin(async move {
            let shared = &self.shared;
            let (if_busy, deadline_at, awaited) = (start.if_busy, start.info.deadline_at, start.awaited);
            let run = shared.next_run();
            let mut info = start.info;
            info.id = crate::id::fresh(info.created_at);
            let info = Arc::new(info);
            if shared.healthy.load(Ordering::Relaxed) {
                // Held: written with the run's first awaited entry (before anything it changes
                // is sent), or with its end; see the writer's documentation.
                let hold = match &info.key {
                    None => true,
                    // A key no run of this process has reserved and the journal does not hold
                    // (as committed): the writer looks it up again when it writes the beginning
                    // and, if another process began it meanwhile, fails the run's first write
                    // before it is sent (`key_taken`); the run is then begun again, awaited.
                    Some(_) if awaited => false,
                    Some(key) => match shared.reserve_key(&info.flow, key) {
                        None => {
                            shared.until_key_free(&info.flow, key).await;
                            false
                        }
                        Some(reserved) => {
                            let free = match shared.known_free(&info.flow, key) {
                                true => Ok(true),
                                false => shared.read(|r| r.has_key(&info.flow, key)).map(|found| !found),
                            };
                            if !matches!(free, Ok(true)) {
                                shared.release_key(&reserved);
                            }
                            free?
                        }
                    },
                };
                if hold {
                    shared.hold(run, Op::Begin { run, info: info.clone(), reply: None });
                    return Ok(Begun::Fresh(Box::new(Handle::new(
                        shared.clone(),
                        run,
                        info,
                        false,
                        Entries::default(),
                    ))));
                }
            }
            let began = shared.call(|reply| Op::Begin { run, info: info.clone(), reply: Some(reply) }).await?;
            match began {
                Began::Fresh => {
                    Ok(Begun::Fresh(Box::new(Handle::new(shared.clone(), run, info, true, Entries::default()))))
                }
                Began::Found { id, status, .. } if status.is_final() => self.done(&id),
                Began::Found { seq, id, .. } => self.wait(seq, id, if_busy, deadline_at).await,
            }
        })
    }

    fn resume<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<Held, JournalError>> {
        Box::pin(async move {
            let file = &self.shared.file;
            let Some(row) = self.shared.read(|r| r.row(id))? else { return Err(unknown_run(id, file)) };
            if row.summary.status.is_final() {
                return Err(finished(id, row.summary.status));
            }
            match self.take(row.seq, id).await? {
                Take::Held(handle, past) => Ok((handle as Box<dyn flowcat_engine::journal::RunHandle>, past)),
                Take::Final => Err(finished(id, StoredStatus::Succeeded)),
                Take::Busy => Err(JournalError::new(
                    "busy",
                    format!(
                        "run `{id}` is running in another flowcat process: wait for it to end, or stop that \
                         process (Ctrl-C) and resume it then"
                    ),
                )),
            }
        })
    }

    fn list(&self, filter: &Filter) -> Result<Vec<RunSummary>, JournalError> {
        self.shared.read(|r| r.list(filter))
    }

    fn show(&self, id: &str) -> Result<Option<StoredRun>, JournalError> {
        self.shared.read(|r| r.show(id))
    }

    fn look_ahead(&self, flow: &str, keys: &[String]) {
        self.shared.look_ahead(flow, keys);
    }

    fn flush(&self) -> BoxFuture<'_, Result<(), JournalError>> {
        Box::pin(Journal::flush(self))
    }

    fn signal<'a>(
        &'a self,
        id: &'a str,
        name: &'a str,
        payload: &'a serde_json::Value,
    ) -> BoxFuture<'a, Result<Delivery, JournalError>> {
        Box::pin(async move {
            let size = serde_json::to_string(payload).map(|t| t.len()).unwrap_or(usize::MAX);
            if size > MAX_SIGNAL_BYTES {
                let problem = format!("the payload is {size} bytes of JSON; at most {MAX_SIGNAL_BYTES} are accepted");
                return Ok(Delivery::BadPayload { problems: vec![problem] });
            }
            let (id_owned, name_owned) = (id.to_owned(), name.to_owned());
            let payload = Box::new(payload.clone());
            let delivery = self
                .shared
                .call(|reply| Op::Signal { id: id_owned, name: name_owned, payload, at: now_ms(), reply })
                .await?;
            if delivery == Delivery::Delivered {
                self.shared.waiters.wake(id, name);
            }
            Ok(delivery)
        })
    }

    fn wakeable(&self, now_ms: u64) -> Result<Vec<String>, JournalError> {
        self.shared.read(|r| r.wakeable(now_ms))
    }

    fn outbox(&self) -> Option<&dyn flowcat_engine::outbox::Outbox> {
        Some(self)
    }

    fn prune(&self, before_ms: u64) -> Result<usize, JournalError> {
        let shared = &self.shared;
        let err = |e: rusqlite::Error| error::sqlite(&e, &shared.file, Doing::Written);
        let mut conn = shared.side.lock().unwrap_or_else(PoisonError::into_inner);
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate).map_err(err)?;
        let ids = {
            let mut stmt = tx.prepare(&format!("SELECT id FROM runs WHERE {PRUNABLE}")).map_err(err)?;
            let rows = stmt.query_map([crate::writer::sql_ms(before_ms)], |r| r.get::<_, String>(0)).map_err(err)?;
            rows.collect::<Result<Vec<String>, _>>().map_err(err)?
        };
        tx.execute(&format!("DELETE FROM runs WHERE {PRUNABLE}"), [crate::writer::sql_ms(before_ms)]).map_err(err)?;
        // Settled notices (delivered or given up) go with their run, or with their age.
        tx.execute(
            "DELETE FROM outbox WHERE state != 'pending' AND (created_at < ?1 OR run_id NOT IN (SELECT id FROM runs))",
            [crate::writer::sql_ms(before_ms)],
        )
        .map_err(err)?;
        tx.commit().map_err(err)?;
        // Give the freed pages back to the file system (auto_vacuum = INCREMENTAL): SQLite frees
        // them one step of the statement at a time, so it is stepped to its end (a single step,
        // as `execute_batch` does, freed one page).
        let _ = incremental_vacuum(&conn);
        Ok(ids.len())
    }
}

/// Frees every page on the free list (the file shrinks at the next checkpoint).
fn incremental_vacuum(conn: &Connection) -> rusqlite::Result<()> {
    let mut stmt = conn.prepare("PRAGMA incremental_vacuum")?;
    let mut steps = stmt.raw_query();
    while steps.next()?.is_some() {}
    Ok(())
}

/// The runs `prune` deletes: finished before `?1`, without a notice still to deliver (its body
/// is the run as `GET /v1/runs/{id}` shows it).
const PRUNABLE: &str = "status IN ('succeeded', 'failed') AND updated_at < ?1
     AND NOT EXISTS (SELECT 1 FROM outbox o WHERE o.run_id = runs.id AND o.state = 'pending')";

/// The writer's connection (the schema migrated) and the reading one. SQLite answers "locked" at
/// once, without its busy handler, to a connection that switches a new file to WAL or upgrades a
/// read to a write while another does the same: when many processes open a new journal at once
/// (a batch's first runs), an opener tries again for a few seconds before saying `busy`.
fn first_connections(file: &Path, setup: Setup) -> Result<(Connection, Connection), JournalError> {
    let open = || -> Result<(Connection, Connection), JournalError> {
        let mut conn = schema::connect(file, setup)?;
        schema::migrate(&mut conn, file)?;
        Ok((conn, schema::connect(file, setup)?))
    };
    let mut attempt = 0;
    loop {
        match open() {
            Err(e) if e.code == "busy" && attempt < 100 => {
                attempt += 1;
                std::thread::sleep(Duration::from_millis(5 + fastrand::u64(..20)));
            }
            other => return other,
        }
    }
}

fn unknown_run(id: &str, file: &Path) -> JournalError {
    JournalError::new(
        "unknown_run",
        format!("no run `{id}` in the journal `{}`: `flowcat runs list` shows the runs it holds", file.display()),
    )
}

fn finished(id: &str, status: StoredStatus) -> JournalError {
    JournalError::new(
        "finished",
        format!(
            "run `{id}` has {}: there is nothing to resume; `flowcat runs show {id}` prints its record",
            status.name()
        ),
    )
}

/// Unix time in milliseconds.
pub(crate) fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or_default()
}

/// The pause before the next look at a busy run: 10 ms doubling to at most 500 ms.
pub(crate) fn backoff(attempt: u32) -> Duration {
    Duration::from_millis(10u64.saturating_mul(1 << attempt.min(16)).min(500))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_busy_run_is_looked_at_again_sooner_then_later() {
        let table = [(0, 10), (1, 20), (2, 40), (5, 320), (6, 500), (40, 500), (u32::MAX, 500)];
        for (attempt, ms) in table {
            assert_eq!(backoff(attempt), Duration::from_millis(ms), "{attempt}");
        }
    }
}
