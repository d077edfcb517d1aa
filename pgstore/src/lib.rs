//! flowcat-pgstore: the run journal in a Postgres database that several flowcat processes share.
//!
//! [`PgStore`] is the engine's [`Store`](flowcat_engine::journal::Store), as the SQLite journal
//! (`flowcat-journal`) is: runs, their nodes' starts, write intents and results, signals and the
//! outbox of completion notices. What it adds is sharing: replicas of `flowcat serve` on several
//! machines read, signal, cancel and resume one another's runs.
//!
//! - **Holding a run.** Each process is a replica with a lease in `replicas`, renewed by a
//!   heartbeat on the database's clock ([`lease`]). A run is held by the replica its row names
//!   while that lease lasts; a replica that dies has its runs listed by
//!   [`Store::wakeable`](flowcat_engine::journal::Store::wakeable) once its lease passed, and
//!   another claims each with `SELECT … FOR UPDATE` (waiting at most 2 s for a short
//!   transaction on the row; the row's holder and lease then decide), then resumes it through the
//!   journal's rules (finished nodes are not run again, writes in doubt are reconciled).
//! - **Fencing.** A claim counts (`runs.claim`): every entry of a run is written in a
//!   transaction that first checks that the row still names this replica and this claim, and a
//!   replica whose lease may have passed writes nothing ([`lease`]). A write is sent only after
//!   its intent is committed, so a run taken over is never written by its former holder.
//! - **Run keys** are unique in the database (a unique index), so two replicas never run one key.
//! - **Signals** are rows; a run waiting on another replica sees one within [`POLL`].
//! - Entries nobody waits for (a node started, a read's result) are held in memory and written
//!   with the run's next awaited entry, or within [`HOLD`], as the SQLite journal does.
//!
//! The connections live in a few threads of their own ([`pool`]): the engine's runtime never
//! blocks on the network. No secret reaches the store: requests and records arrive redacted, and
//! the URL's password is never written in a message.

mod error;
mod lease;
mod outbox;
mod pool;
mod read;
mod schema;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock, Weak, mpsc};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use flowcat_engine::journal::{
    Begun, Delivery, Filter, Finished, Held, IfBusy, JournalError, MAX_SIGNAL_BYTES, RunHandle, RunInfo, RunLog,
    RunSummary, SignalSpec, Start, Store, StoredRun, StoredStatus, path_key,
};
use flowcat_engine::run::{BoxFuture, RunRecord};
use postgres::Transaction;
use serde_json::Value;

use crate::lease::Lease;
use crate::pool::{Conn, Pool};

/// How often a waiting node looks for a signal delivered through another process (one
/// delivered through this process wakes it at once).
pub const POLL: Duration = Duration::from_secs(1);

/// How long an entry nobody waits for is held before it is written anyway.
pub const HOLD: Duration = Duration::from_millis(100);

/// How long a claim waits for another transaction's lock on the run's row before it counts the
/// run as busy. Every transaction on a run's row is short (an entry, a claim, a release).
const LOCK_WAIT: Duration = Duration::from_secs(2);

/// A run holding this many entries has them written at once.
const MAX_PENDING: usize = 256;

/// How a store is opened.
#[derive(Clone, Debug)]
pub struct Options {
    /// Connections (and threads) for the runs' entries and the reads.
    pub pool: usize,
    /// How long a replica's lease lasts without renewal: a replica that dies has its runs taken
    /// over this long after its last renewal. Three quarters of it must exceed the slowest call
    /// that writes to Duo (docs/serve.md, "The lease and the HTTP timeout"); 45 s by default.
    pub lease: Duration,
    /// How long [`IfBusy::Wait`] waits at most for another process's run of the same key.
    pub max_wait: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Options { pool: 8, lease: Duration::from_secs(45), max_wait: Duration::from_secs(15 * 60) }
    }
}

/// The variable that sets the lease, in milliseconds (at least 300): for tests that kill a
/// replica and wait for another to take its runs over.
pub const LEASE_VAR: &str = "FLOWCAT_PG_LEASE_MS";

impl Options {
    /// The defaults, with the lease of [`LEASE_VAR`] if set.
    pub fn from_env() -> Result<Options, JournalError> {
        let mut options = Options::default();
        if let Ok(text) = std::env::var(LEASE_VAR) {
            let ms: u64 = text.trim().parse().ok().filter(|ms| *ms >= 300).ok_or_else(|| {
                JournalError::new(
                    "invalid",
                    format!("{LEASE_VAR} must be a number of milliseconds, at least 300, not `{text}`"),
                )
            })?;
            options.lease = Duration::from_millis(ms);
        }
        Ok(options)
    }
}

/// The run journal in a Postgres database. Cheap to clone: clones share the connections.
#[derive(Clone)]
pub struct PgStore {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore")
            .field("place", &self.shared.place)
            .field("replica", &self.shared.lease.name)
            .finish_non_exhaustive()
    }
}

/// What the store and its run handles share.
pub(crate) struct Shared {
    pub(crate) pool: Pool,
    /// `host:port/db`, for messages (never the password).
    pub(crate) place: Arc<str>,
    pub(crate) lease: Arc<Lease>,
    max_wait: Duration,
    /// The runs this process holds: `seq` → the live state of its handle.
    runs: Mutex<HashMap<i64, Weak<RunState>>>,
    /// Nodes of this process waiting for a signal.
    waiters: flowcat_engine::journal::SignalWaiters,
    pub(crate) subscriptions: RwLock<Option<flowcat_engine::outbox::Subscriptions>>,
    pub(crate) outbox: Arc<tokio::sync::Notify>,
    heartbeat: Mutex<Option<(mpsc::Sender<()>, std::thread::JoinHandle<()>)>>,
    flusher: Mutex<Option<(mpsc::Sender<()>, std::thread::JoinHandle<()>)>>,
    /// Set by [`Store::hand_over_on_stop`]: the interrupted runs let go from now on are left
    /// `running` with no holder, which every live replica's sweep takes over at once.
    handing_over: AtomicBool,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared").field("place", &self.place).finish_non_exhaustive()
    }
}

impl PgStore {
    /// Connects to the database at `url` (`postgres://USER[:PASSWORD]@HOST:PORT/DATABASE`),
    /// migrates its schema (refusing one from a newer flowcat), and registers this process as a
    /// replica. Fails before any run starts when the database cannot be reached or written.
    pub fn open(url: &str, options: Options) -> Result<PgStore, JournalError> {
        let (config, place) = pool::config(url)?;
        let mut first = Conn::new(config.clone(), place.clone());
        // On a thread of its own: the synchronous client cannot run on an async runtime's
        // thread, and a store may be opened from one (an embedding program, a test).
        let (first, lease) = std::thread::scope(|scope| {
            scope
                .spawn(move || {
                    schema::migrate(&mut first)?;
                    let lease = Lease::register(&mut first, options.lease)?;
                    Ok::<_, JournalError>((first, lease))
                })
                .join()
                .unwrap_or_else(|_| Err(error::closed(&place)))
        })?;
        let (stop, stopped) = mpsc::channel();
        let heartbeat = lease::heartbeat(lease.clone(), first, stopped);
        let shared = Arc::new(Shared {
            pool: Pool::new(&config, place.clone(), options.pool),
            place,
            lease,
            max_wait: options.max_wait,
            runs: Mutex::new(HashMap::new()),
            waiters: Default::default(),
            subscriptions: RwLock::new(None),
            outbox: Arc::new(tokio::sync::Notify::new()),
            heartbeat: Mutex::new(Some((stop, heartbeat))),
            flusher: Mutex::new(None),
            handing_over: AtomicBool::new(false),
        });
        let (stop, stopped) = mpsc::channel();
        let flusher = flusher(Arc::downgrade(&shared), stopped);
        *shared.flusher.lock().unwrap_or_else(PoisonError::into_inner) = Some((stop, flusher));
        Ok(PgStore { shared })
    }

    /// Whether `text` names a Postgres store (`postgres://` or `postgresql://`).
    pub fn is_url(text: &str) -> bool {
        text.starts_with("postgres://") || text.starts_with("postgresql://")
    }

    /// This process's name among the replicas.
    pub fn replica(&self) -> &str {
        &self.shared.lease.name
    }

    /// How many replicas share the store now (at the last renewal; at least 1): the service
    /// divides each integration's rate among them.
    pub fn replicas(&self) -> usize {
        self.shared.lease.live()
    }

    /// Where the store is: `host:port/db`.
    pub fn place(&self) -> &str {
        &self.shared.place
    }

    /// Writes what every run of this process holds in memory, and answers once it is committed.
    pub async fn flush(&self) -> Result<(), JournalError> {
        let states: Vec<Arc<RunState>> = self.shared.live_runs();
        let mut first_error = None;
        for state in states {
            if let Err(e) = state.flush(&self.shared).await {
                if e.code != "lease_lost" {
                    first_error.get_or_insert(e);
                }
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// Tries to take the unfinished run `seq` for this process.
    async fn take(&self, seq: i64, id: &str) -> Result<Take, JournalError> {
        let shared = self.shared.clone();
        let holder = shared.lease.name.clone();
        if !shared.lease.fresh() {
            return Err(error::lapsed(&shared.place));
        }
        let busy_here =
            shared.runs.lock().unwrap_or_else(PoisonError::into_inner).get(&seq).is_some_and(|w| w.strong_count() > 0);
        if busy_here {
            return Ok(Take::Busy);
        }
        let claimed = shared
            .pool
            .call(move |conn| {
                conn.with(|c| {
                    let mut tx = c.transaction()?;
                    // Waits for another transaction on the row (an entry being written, a
                    // handle letting the run go, another replica's claim: all short) rather than
                    // skipping it: a row locked for a moment is not a run held elsewhere, and
                    // the checks below decide that once the lock is ours.
                    tx.batch_execute(&format!("SET LOCAL lock_timeout = {}", LOCK_WAIT.as_millis()))?;
                    let row = match tx.query_opt(
                        &format!(
                            "SELECT status, holder, EXISTS (SELECT 1 FROM replicas p WHERE p.name = runs.holder
                                                            AND p.lease_until > {})
                             FROM runs WHERE seq = $1 FOR UPDATE",
                            schema::NOW_MS
                        ),
                        &[&seq],
                    ) {
                        Ok(row) => row,
                        Err(e) if e.code() == Some(&postgres::error::SqlState::LOCK_NOT_AVAILABLE) => {
                            return Ok(Claimed::Busy);
                        }
                        Err(e) => return Err(e),
                    };
                    let Some(row) = row else { return Ok(Claimed::Gone) };
                    let status: String = row.get(0);
                    let owner: Option<String> = row.get(1);
                    let live: bool = row.get(2);
                    if StoredStatus::parse(&status).is_some_and(StoredStatus::is_final) {
                        return Ok(Claimed::Final);
                    }
                    if status == "running" && live && owner.as_deref() != Some(holder.as_str()) {
                        return Ok(Claimed::Busy);
                    }
                    let claim: i64 = tx
                        .query_one(
                            "UPDATE runs SET status = 'running', note = NULL, record = NULL, holder = $2,
                                             claim = claim + 1, updated_at = GREATEST(updated_at, $3)
                             WHERE seq = $1 RETURNING claim",
                            &[&seq, &holder, &sql_ms(now_ms())],
                        )?
                        .get(0);
                    tx.commit()?;
                    Ok(Claimed::Held(claim))
                })
            })
            .await?;
        let claim = match claimed {
            Claimed::Held(claim) => claim,
            Claimed::Final => return Ok(Take::Final),
            Claimed::Busy => return Ok(Take::Busy),
            Claimed::Gone => return Err(error::unknown_run(id, &self.shared.place)),
        };
        let state = self.shared.register(seq, claim, id);
        let id_owned = id.to_owned();
        let read = self
            .shared
            .pool
            .call(move |conn| {
                let row = read::row(conn, &id_owned)?;
                let past = read::past(conn, seq, &id_owned)?;
                Ok((row, past))
            })
            .await;
        match read {
            Ok((Some(row), past)) => {
                Ok(Take::Held(Box::new(Handle::new(shared, state, Arc::new(row.summary.info))), past))
            }
            Ok((None, _)) => Err(error::unknown_run(id, &self.shared.place)),
            Err(e) => {
                // Let it go again: a handle that never was.
                drop(Handle::new(shared, state, Arc::new(RunInfo { id: id.to_owned(), ..RunInfo::default() })));
                Err(e)
            }
        }
    }

    /// Waits for run `seq` (of a key) to be free, by `if_busy`.
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
        for attempt in 0u32.. {
            match self.take(seq, &id).await? {
                Take::Held(handle, past) => return Ok(Begun::Resumed(handle, past)),
                Take::Final => return self.done(&id).await,
                Take::Busy => {}
            }
            let now = now_ms();
            if if_busy == IfBusy::Refuse || now >= give_up {
                break;
            }
            let backoff = Duration::from_millis(50u64 << attempt.min(5)).min(Duration::from_secs(2));
            tokio::time::sleep(backoff.min(Duration::from_millis(give_up - now))).await;
        }
        Ok(Begun::Busy { id })
    }

    async fn done(&self, id: &str) -> Result<Begun, JournalError> {
        let id_owned = id.to_owned();
        match self.shared.pool.call(move |conn| read::show(conn, &id_owned)).await? {
            Some(run) => Ok(Begun::Done(Box::new(run))),
            None => Err(error::unknown_run(id, &self.shared.place)),
        }
    }
}

/// What a claim found.
enum Claimed {
    Held(i64),
    Final,
    Busy,
    Gone,
}

/// What [`PgStore::take`] got.
enum Take {
    Held(Box<Handle>, flowcat_engine::journal::Past),
    Final,
    Busy,
}

impl Shared {
    /// Records that this process holds run `seq` under `claim`.
    fn register(&self, seq: i64, claim: i64, id: &str) -> Arc<RunState> {
        let state = Arc::new(RunState { seq, claim, id: id.to_owned(), pending: Mutex::new(Pending::default()) });
        let mut runs = self.runs.lock().unwrap_or_else(PoisonError::into_inner);
        runs.retain(|_, w| w.strong_count() > 0);
        runs.insert(seq, Arc::downgrade(&state));
        state
    }

    fn live_runs(&self) -> Vec<Arc<RunState>> {
        self.runs.lock().unwrap_or_else(PoisonError::into_inner).values().filter_map(Weak::upgrade).collect()
    }
}

impl Drop for Shared {
    /// The last user is gone: the held entries' flusher stops, the queued entries are written,
    /// and the replica retires (its row goes; runs it still names read as interrupted).
    fn drop(&mut self) {
        if let Some((stop, thread)) = self.flusher.lock().unwrap_or_else(PoisonError::into_inner).take() {
            drop(stop);
            // The flusher itself may hold the last reference for a moment: it ends on its own.
            if thread.thread().id() != std::thread::current().id() {
                let _ = thread.join();
            }
        }
        self.pool.close();
        if let Some((stop, thread)) = self.heartbeat.lock().unwrap_or_else(PoisonError::into_inner).take() {
            drop(stop);
            let _ = thread.join();
        }
    }
}

/// Writes, every [`HOLD`], the entries runs have held longer than that.
fn flusher(shared: Weak<Shared>, stop: mpsc::Receiver<()>) -> std::thread::JoinHandle<()> {
    std::thread::Builder::new()
        .name("flowcat-pg-flush".to_owned())
        .spawn(move || {
            while let Err(mpsc::RecvTimeoutError::Timeout) = stop.recv_timeout(HOLD) {
                let Some(shared) = shared.upgrade() else { break };
                for state in shared.live_runs() {
                    if state.due() {
                        state.spawn_flush(&shared);
                    }
                }
            }
        })
        .expect("a thread for the store")
}

/// An entry nobody waits for.
#[derive(Debug)]
enum Entry {
    Started {
        path: String,
        at: u64,
    },
    Noted {
        path: String,
        node: Box<Finished>,
        at: u64,
    },
    /// The `wait_for` node at `path` no longer waits.
    Waited {
        path: String,
    },
}

#[derive(Debug, Default)]
struct Pending {
    since: Option<Instant>,
    entries: Vec<Entry>,
}

/// A run this process holds, as its handle and the flusher see it.
#[derive(Debug)]
struct RunState {
    seq: i64,
    /// The claim this handle writes under.
    claim: i64,
    id: String,
    pending: Mutex<Pending>,
}

impl RunState {
    /// Holds an entry; answers whether the run holds enough to have them written now.
    fn hold(&self, entry: Entry) -> bool {
        let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        pending.since.get_or_insert_with(Instant::now);
        pending.entries.push(entry);
        pending.entries.len() >= MAX_PENDING
    }

    fn take(&self) -> Vec<Entry> {
        let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        pending.since = None;
        std::mem::take(&mut pending.entries)
    }

    fn due(&self) -> bool {
        let pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        pending.since.is_some_and(|s| s.elapsed() >= HOLD)
    }

    /// Writes the held entries (and `then`) in one transaction under this run's claim.
    async fn write(
        self: &Arc<Self>,
        shared: &Shared,
        then: impl FnOnce(&mut Transaction<'_>, i64) -> Result<(), postgres::Error> + Send + 'static,
    ) -> Result<(), JournalError> {
        if !shared.lease.fresh() {
            return Err(error::lapsed(&shared.place));
        }
        let state = self.clone();
        let holder = shared.lease.name.clone();
        let place = shared.place.clone();
        let written = shared.pool.call(move |conn| state.apply(conn, &holder, &place, then)).await?;
        if written { Ok(()) } else { Err(error::lease_lost(&shared.place, &self.id)) }
    }

    /// The transaction of [`RunState::write`]: answers `false` (nothing written) when the row no
    /// longer names this claim.
    fn apply(
        &self,
        conn: &mut Conn,
        holder: &str,
        place: &str,
        then: impl FnOnce(&mut Transaction<'_>, i64) -> Result<(), postgres::Error>,
    ) -> Result<bool, JournalError> {
        let entries = self.take();
        let mut texts = Vec::with_capacity(entries.len());
        for entry in &entries {
            if let Entry::Noted { node, .. } = entry {
                texts.push(to_json(place, node.as_ref())?);
            }
        }
        let seq = self.seq;
        let claim = self.claim;
        conn.with(|c| {
            let mut tx = c.transaction()?;
            let fenced = tx.execute(
                "UPDATE runs SET updated_at = GREATEST(updated_at, $2) WHERE seq = $1 AND holder = $3 AND claim = $4",
                &[&seq, &sql_ms(now_ms()), &holder, &claim],
            )?;
            if fenced != 1 {
                return Ok(false);
            }
            let mut texts = texts.into_iter();
            for entry in entries {
                match entry {
                    Entry::Started { path, at } => {
                        tx.execute(STARTED, &[&seq, &path, &sql_ms(at)])?;
                    }
                    Entry::Noted { path, at, .. } => {
                        let text = texts.next().unwrap_or_default();
                        tx.execute(FINISHED, &[&seq, &path, &text, &sql_ms(at)])?;
                    }
                    Entry::Waited { path } => {
                        tx.execute(WAITED, &[&seq, &path])?;
                    }
                }
            }
            then(&mut tx, seq)?;
            tx.commit()?;
            Ok(true)
        })
    }

    async fn flush(self: &Arc<Self>, shared: &Shared) -> Result<(), JournalError> {
        if self.pending.lock().unwrap_or_else(PoisonError::into_inner).entries.is_empty() {
            return Ok(());
        }
        self.write(shared, |_, _| Ok(())).await
    }

    /// Has the held entries written; nobody waits.
    fn spawn_flush(self: &Arc<Self>, shared: &Shared) {
        if !shared.lease.fresh() {
            return;
        }
        let state = self.clone();
        let holder = shared.lease.name.clone();
        let place = shared.place.clone();
        let _ = shared.pool.spawn(Box::new(move |conn| {
            let _ = state.apply(conn, &holder, &place, |_, _| Ok(()));
        }));
    }
}

const STARTED: &str = "INSERT INTO nodes (run, path, started_at, at) VALUES ($1, $2, $3, $3)
     ON CONFLICT (run, path) DO UPDATE SET started_at = coalesce(nodes.started_at, excluded.started_at),
                                           at = GREATEST(nodes.at, excluded.at)";
const INTENT: &str = "INSERT INTO nodes (run, path, intent, at) VALUES ($1, $2, $3, $4)
     ON CONFLICT (run, path) DO UPDATE SET intent = excluded.intent, at = GREATEST(nodes.at, excluded.at)";
const FINISHED: &str = "INSERT INTO nodes (run, path, finished, at) VALUES ($1, $2, $3, $4)
     ON CONFLICT (run, path) DO UPDATE SET finished = excluded.finished, at = GREATEST(nodes.at, excluded.at)";
const WAITED: &str = "UPDATE runs SET waiting_path = NULL, waiting_signal = NULL, waiting_until = NULL
                      WHERE seq = $1 AND waiting_path = $2";
/// A run that ends finished is held by nobody again; one that ends otherwise stays held by its
/// handle until it is dropped. A run stopped while it waited (`interrupted`) still waits.
const END: &str = "UPDATE runs SET status = $2, note = $3, record = $4, updated_at = GREATEST(updated_at, $5),
                       holder = CASE WHEN $2 IN ('succeeded', 'failed') THEN NULL ELSE holder END,
                       waiting_path = CASE WHEN $2 = 'interrupted' THEN waiting_path END,
                       waiting_signal = CASE WHEN $2 = 'interrupted' THEN waiting_signal END,
                       waiting_until = CASE WHEN $2 = 'interrupted' THEN waiting_until END
                   WHERE seq = $1";
/// A handle lets its run go. Handed over ([`Store::hand_over_on_stop`]), a run that ended
/// `interrupted` without a wait or a write in doubt (an intent with no result) reads as `running`
/// with no holder, the state a dead replica's run is in once its lease passed: every live
/// replica's sweep may take it at once. A write in doubt keeps it `interrupted`, for the next
/// start: the write may still reach Duo, which only the lease bounds.
const LET_GO: &str = "UPDATE runs SET holder = NULL,
                          status = CASE WHEN $3 AND status = 'interrupted' AND waiting_signal IS NULL
                                          AND NOT EXISTS (SELECT 1 FROM nodes n WHERE n.run = runs.seq
                                                          AND n.intent IS NOT NULL AND n.finished IS NULL)
                                        THEN 'running' ELSE status END
                      WHERE seq = $1 AND holder = $2";
const NOTICE: &str = "INSERT INTO outbox (event, hook, run_id, flow, status, created_at, due_at)
                      SELECT $1, $2, id, flow, $3, $4, $4 FROM runs WHERE seq = $5";

/// A run this process holds.
pub(crate) struct Handle {
    shared: Arc<Shared>,
    state: Arc<RunState>,
    info: Arc<RunInfo>,
    finished: AtomicBool,
    waiting: Mutex<Vec<String>>,
}

impl std::fmt::Debug for Handle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Handle").field("id", &self.info.id).finish_non_exhaustive()
    }
}

impl Handle {
    fn new(shared: Arc<Shared>, state: Arc<RunState>, info: Arc<RunInfo>) -> Handle {
        Handle { shared, state, info, finished: AtomicBool::new(false), waiting: Mutex::new(Vec::new()) }
    }

    fn hold(&self, entry: Entry) {
        if self.state.hold(entry) {
            self.state.spawn_flush(&self.shared);
        }
    }

    fn not_waiting(&self, key: &str) {
        let mut waiting = self.waiting.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(i) = waiting.iter().position(|p| p == key) {
            waiting.swap_remove(i);
            self.hold(Entry::Waited { path: key.to_owned() });
        }
    }
}

impl RunLog for Handle {
    fn started(&self, path: &[String], at_ms: u64) {
        self.hold(Entry::Started { path: path_key(path), at: at_ms });
    }

    fn intent<'a>(&'a self, path: &'a [String], request: &'a Value) -> BoxFuture<'a, Result<(), JournalError>> {
        Box::pin(async move {
            let key = path_key(path);
            let request = to_json(&self.shared.place, request)?;
            let at = sql_ms(now_ms());
            self.state
                .write(&self.shared, move |tx, seq| tx.execute(INTENT, &[&seq, &key, &request, &at]).map(drop))
                .await
        })
    }

    fn noted(&self, path: &[String], node: Finished) {
        let key = path_key(path);
        self.hold(Entry::Noted { path: key.clone(), node: Box::new(node), at: now_ms() });
        self.not_waiting(&key);
    }

    fn finished<'a>(&'a self, path: &'a [String], node: &'a Finished) -> BoxFuture<'a, Result<(), JournalError>> {
        Box::pin(async move {
            let key = path_key(path);
            let text = to_json(&self.shared.place, node)?;
            let at = sql_ms(now_ms());
            let path_owned = key.clone();
            self.state
                .write(&self.shared, move |tx, seq| tx.execute(FINISHED, &[&seq, &path_owned, &text, &at]).map(drop))
                .await?;
            self.not_waiting(&key);
            Ok(())
        })
    }

    fn run_id(&self) -> Option<&str> {
        Some(&self.info.id)
    }

    fn wait_signal<'a>(
        &'a self,
        path: &'a [String],
        name: &'a str,
        until_ms: Option<u64>,
        said: &'a (dyn Fn() + Send + Sync),
    ) -> BoxFuture<'a, Result<Value, JournalError>> {
        Box::pin(async move {
            let key = path_key(path);
            let (path_owned, signal) = (key.clone(), name.to_owned());
            let until = until_ms.map(sql_ms);
            self.state
                .write(&self.shared, move |tx, seq| {
                    tx.execute(
                        "UPDATE runs SET waiting_path = $2, waiting_signal = $3, waiting_until = $4 WHERE seq = $1",
                        &[&seq, &path_owned, &signal, &until],
                    )
                    .map(drop)
                })
                .await?;
            {
                let mut waiting = self.waiting.lock().unwrap_or_else(PoisonError::into_inner);
                if !waiting.contains(&key) {
                    waiting.push(key);
                }
            }
            // Committed: a delivery from any replica is accepted from now on.
            said();
            let waiter = self.shared.waiters.register(&self.info.id, name);
            loop {
                // Armed before looking, so that a delivery between the look and the wait wakes it.
                let mut woken = std::pin::pin!(waiter.notified());
                woken.as_mut().enable();
                let (seq, signal) = (self.state.seq, name.to_owned());
                let place = self.shared.place.clone();
                let found = self.shared.pool.call(move |conn| read::signal(conn, seq, &signal, &place)).await?;
                if let Some(payload) = found {
                    return Ok(payload);
                }
                let _ = tokio::time::timeout(POLL, woken).await;
            }
        })
    }
}

impl RunHandle for Handle {
    fn info(&self) -> &RunInfo {
        &self.info
    }

    fn end<'a>(&'a self, status: StoredStatus, record: &'a RunRecord) -> BoxFuture<'a, Result<(), JournalError>> {
        Box::pin(async move {
            if status == StoredStatus::Running {
                return Err(JournalError::new(
                    "invalid",
                    "a run ends succeeded, failed, interrupted or needs_attention, not running",
                ));
            }
            let note = record
                .error
                .as_ref()
                .map(|e| flowcat_journal::one_line(&format!("`{}` {}: {}", e.node, e.code, e.message)));
            let text = to_json(&self.shared.place, record)?;
            let at = now_ms();
            let notices = flowcat_journal::end_notices(&self.shared.subscriptions, &self.info.flow, status, at);
            if status.is_final() {
                // The record has every node: what the run still holds is not written.
                drop(self.state.take());
            }
            let noticed = !notices.is_empty();
            let name = status.name();
            self.state
                .write(&self.shared, move |tx, seq| {
                    tx.execute(END, &[&seq, &name, &note, &text, &sql_ms(at)])?;
                    for (hook, event) in &notices {
                        tx.execute(NOTICE, &[event, hook, &name, &sql_ms(at), &seq])?;
                    }
                    Ok(())
                })
                .await?;
            if status.is_final() {
                self.finished.store(true, Ordering::Relaxed);
            }
            if noticed {
                self.shared.outbox.notify_one();
            }
            Ok(())
        })
    }
}

impl Drop for Handle {
    /// Lets the run go: another handle or replica may take it now, unless it finished. What it
    /// still holds is written first.
    fn drop(&mut self) {
        {
            let mut runs = self.shared.runs.lock().unwrap_or_else(PoisonError::into_inner);
            if runs.get(&self.state.seq).is_some_and(|w| std::ptr::eq(w.as_ptr(), Arc::as_ptr(&self.state))) {
                runs.remove(&self.state.seq);
            }
        }
        if self.finished.load(Ordering::Relaxed) {
            return;
        }
        let state = self.state.clone();
        let holder = self.shared.lease.name.clone();
        let place = self.shared.place.clone();
        let h = holder.clone();
        let hand_over = self.shared.handing_over.load(Ordering::Acquire);
        let _ = self.shared.pool.spawn(Box::new(move |conn| {
            let _ = state
                .apply(conn, &holder, &place, move |tx, seq| tx.execute(LET_GO, &[&seq, &h, &hand_over]).map(drop));
        }));
    }
}

impl Store for PgStore {
    fn hand_over_on_stop(&self) {
        self.shared.handing_over.store(true, Ordering::Release);
    }

    fn begin(&self, start: Start) -> BoxFuture<'_, Result<Begun, JournalError>> {
        Box::pin(async move {
            let shared = self.shared.clone();
            if !shared.lease.fresh() {
                return Err(error::lapsed(&shared.place));
            }
            let (if_busy, deadline_at) = (start.if_busy, start.info.deadline_at);
            let mut info = start.info;
            info.id = flowcat_journal::new_run_id(info.created_at);
            let place = shared.place.clone();
            let (inputs, vars) = (to_json(&place, &info.inputs)?, to_json(&place, &info.vars)?);
            let (binds, targets) = (to_json(&place, &info.binds)?, to_json(&place, &info.targets)?);
            let signals = if info.signals.is_empty() { None } else { Some(to_json(&place, &info.signals)?) };
            let holder = shared.lease.name.clone();
            let row = info.clone();
            let began = shared
                .pool
                .call(move |conn| {
                    conn.with(|c| {
                        let mut tx = c.transaction()?;
                        let inserted = tx.query_opt(
                            "INSERT INTO runs (id, flow, flow_digest, key, inputs, vars, binds, targets, created_at,
                                               updated_at, deadline_at, status, source, holder, claim, signals)
                             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9, $10, 'running', $11, $12, 1, $13)
                             ON CONFLICT (flow, key) WHERE key IS NOT NULL DO NOTHING
                             RETURNING seq",
                            &[
                                &row.id,
                                &row.flow,
                                &row.flow_digest,
                                &row.key,
                                &inputs,
                                &vars,
                                &binds,
                                &targets,
                                &sql_ms(row.created_at),
                                &row.deadline_at.map(sql_ms),
                                &row.source,
                                &holder,
                                &signals,
                            ],
                        )?;
                        let began = match inserted {
                            Some(r) => Began::Fresh(r.get(0)),
                            None => {
                                let found = tx.query_one(
                                    "SELECT seq, id, status FROM runs WHERE flow = $1 AND key = $2",
                                    &[&row.flow, &row.key],
                                )?;
                                Began::Found(found.get(0), found.get(1), found.get(2))
                            }
                        };
                        tx.commit()?;
                        Ok(began)
                    })
                })
                .await?;
            match began {
                Began::Fresh(seq) => {
                    let state = shared.register(seq, 1, &info.id);
                    Ok(Begun::Fresh(Box::new(Handle::new(shared, state, Arc::new(info)))))
                }
                Began::Found(_, id, status) if StoredStatus::parse(&status).is_some_and(StoredStatus::is_final) => {
                    self.done(&id).await
                }
                Began::Found(seq, id, _) => self.wait(seq, id, if_busy, deadline_at).await,
            }
        })
    }

    fn resume<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<Held, JournalError>> {
        Box::pin(async move {
            let id_owned = id.to_owned();
            let row = self.shared.pool.call(move |conn| read::row(conn, &id_owned)).await?;
            let Some(row) = row else { return Err(error::unknown_run(id, &self.shared.place)) };
            if row.summary.status.is_final() {
                return Err(finished(id, row.summary.status));
            }
            match self.take(row.seq, id).await? {
                Take::Held(handle, past) => Ok((handle as Box<dyn RunHandle>, past)),
                Take::Final => Err(finished(id, StoredStatus::Succeeded)),
                Take::Busy => Err(JournalError::new(
                    "busy",
                    format!(
                        "run `{id}` is running in another flowcat process (a replica sharing the store): wait for it \
                         to end, or stop that process and resume it then"
                    ),
                )),
            }
        })
    }

    fn list(&self, filter: &Filter) -> Result<Vec<RunSummary>, JournalError> {
        let filter = filter.clone();
        self.shared.pool.call_blocking(move |conn| read::list(conn, &filter))
    }

    fn show(&self, id: &str) -> Result<Option<StoredRun>, JournalError> {
        let id = id.to_owned();
        self.shared.pool.call_blocking(move |conn| read::show(conn, &id))
    }

    fn prune(&self, before_ms: u64) -> Result<usize, JournalError> {
        let before = sql_ms(before_ms);
        self.shared.pool.call_blocking(move |conn| {
            conn.with(|c| {
                let mut tx = c.transaction()?;
                let n = tx.execute(
                    "DELETE FROM runs WHERE status IN ('succeeded', 'failed') AND updated_at < $1
                       AND NOT EXISTS (SELECT 1 FROM outbox o WHERE o.run_id = runs.id AND o.state = 'pending')",
                    &[&before],
                )?;
                tx.execute(
                    "DELETE FROM outbox WHERE state != 'pending'
                       AND (created_at < $1 OR NOT EXISTS (SELECT 1 FROM runs r WHERE r.id = outbox.run_id))",
                    &[&before],
                )?;
                tx.commit()?;
                Ok(n as usize)
            })
        })
    }

    fn flush(&self) -> BoxFuture<'_, Result<(), JournalError>> {
        Box::pin(PgStore::flush(self))
    }

    fn signal<'a>(
        &'a self,
        id: &'a str,
        name: &'a str,
        payload: &'a Value,
    ) -> BoxFuture<'a, Result<Delivery, JournalError>> {
        Box::pin(async move {
            let text = to_json(&self.shared.place, payload)?;
            if text.len() > MAX_SIGNAL_BYTES {
                let problem =
                    format!("the payload is {} bytes of JSON; at most {MAX_SIGNAL_BYTES} are accepted", text.len());
                return Ok(Delivery::BadPayload { problems: vec![problem] });
            }
            let (id_owned, name_owned, payload_owned) = (id.to_owned(), name.to_owned(), payload.clone());
            let place = self.shared.place.clone();
            let delivery = self
                .shared
                .pool
                .call(move |conn| deliver(conn, &place, &id_owned, &name_owned, &payload_owned, &text))
                .await?;
            if delivery == Delivery::Delivered {
                self.shared.waiters.wake(id, name);
            }
            Ok(delivery)
        })
    }

    fn wakeable(&self, now_ms: u64) -> Result<Vec<String>, JournalError> {
        let now = sql_ms(now_ms);
        let mine: HashSet<i64> =
            self.shared.runs.lock().unwrap_or_else(PoisonError::into_inner).keys().copied().collect();
        let ids = self.shared.pool.call_blocking(move |conn| read::wakeable(conn, now))?;
        Ok(ids.into_iter().filter(|(seq, _)| !mine.contains(seq)).map(|(_, id)| id).collect())
    }

    fn outbox(&self) -> Option<&dyn flowcat_engine::outbox::Outbox> {
        Some(self)
    }

    fn request_cancel(&self, id: &str) -> Result<bool, JournalError> {
        let (id, me) = (id.to_owned(), self.shared.lease.name.clone());
        self.shared.pool.call_blocking(move |conn| {
            let n = conn.with(|c| {
                c.execute(
                    &format!(
                        "UPDATE runs SET cancel_at = {NOW} WHERE id = $1 AND status = 'running' AND holder <> $2
                           AND EXISTS (SELECT 1 FROM replicas p WHERE p.name = runs.holder AND p.lease_until > {NOW})",
                        NOW = schema::NOW_MS
                    ),
                    &[&id, &me],
                )
            })?;
            Ok(n == 1)
        })
    }

    fn cancel_requests(&self) -> Result<Vec<String>, JournalError> {
        let me = self.shared.lease.name.clone();
        self.shared.pool.call_blocking(move |conn| {
            let rows = conn.with(|c| {
                c.query(
                    "SELECT id FROM runs WHERE holder = $1 AND status = 'running' AND cancel_at IS NOT NULL",
                    &[&me],
                )
            })?;
            Ok(rows.iter().map(|r| r.get(0)).collect())
        })
    }

    fn sharers(&self) -> usize {
        self.shared.lease.live()
    }

    fn note_throttled(&self, integration: &str) -> Result<(), JournalError> {
        let (integration, me) = (integration.to_owned(), self.shared.lease.name.clone());
        self.shared.pool.call_blocking(move |conn| {
            conn.with(|c| {
                c.execute(
                    &format!(
                        "INSERT INTO throttles (integration, at, replica) VALUES ($1, {NOW}, $2)
                         ON CONFLICT (integration) DO UPDATE SET at = excluded.at, replica = excluded.replica",
                        NOW = schema::NOW_MS
                    ),
                    &[&integration, &me],
                )
                .map(drop)
            })
        })
    }

    fn throttled_since(&self, since_ms: u64) -> Result<Vec<(String, u64)>, JournalError> {
        let (since, me) = (sql_ms(since_ms), self.shared.lease.name.clone());
        self.shared.pool.call_blocking(move |conn| {
            let rows = conn.with(|c| {
                c.query("SELECT integration, at FROM throttles WHERE at > $1 AND replica <> $2", &[&since, &me])
            })?;
            Ok(rows.iter().map(|r| (r.get(0), r.get::<_, i64>(1).max(0) as u64)).collect())
        })
    }
}

/// What a beginning found: a new row, or the key's run (`seq`, `id`, stored status).
enum Began {
    Fresh(i64),
    Found(i64, String, String),
}

/// Delivers signal `name` to run `id`, in one transaction that locks the run's row, so that a
/// signal and the run's end are ordered.
fn deliver(
    conn: &mut Conn,
    place: &str,
    id: &str,
    name: &str,
    payload: &Value,
    text: &str,
) -> Result<Delivery, JournalError> {
    let at = sql_ms(now_ms());
    conn.with(|c| {
        let mut tx = c.transaction()?;
        let row = tx.query_opt("SELECT seq, status, signals FROM runs WHERE id = $1 FOR UPDATE", &[&id])?;
        let Some(row) = row else { return Ok(Ok(Delivery::UnknownRun)) };
        let (seq, status, signals): (i64, String, Option<String>) = (row.get(0), row.get(1), row.get(2));
        let status = StoredStatus::parse(&status).unwrap_or(StoredStatus::Interrupted);
        if status.is_final() {
            return Ok(Ok(Delivery::Finished { status }));
        }
        let signals: Vec<SignalSpec> = match signals.as_deref().map(serde_json::from_str) {
            Some(Ok(s)) => s,
            Some(Err(e)) => return Ok(Err(error::json(place, &format!("run `{id}`'s signals"), &e))),
            None => Vec::new(),
        };
        let Some(spec) = signals.iter().find(|s| s.name == name) else {
            return Ok(Ok(Delivery::NotAwaited { awaited: signals.into_iter().map(|s| s.name).collect() }));
        };
        if let Err(problems) = spec.check(payload) {
            return Ok(Ok(Delivery::BadPayload { problems }));
        }
        let stored = tx.execute(
            "INSERT INTO signals (run, name, payload, at) VALUES ($1, $2, $3, $4) ON CONFLICT (run, name) DO NOTHING",
            &[&seq, &name, &text, &at],
        )?;
        tx.commit()?;
        Ok(Ok(if stored == 0 { Delivery::AlreadyDelivered } else { Delivery::Delivered }))
    })?
}

fn finished(id: &str, status: StoredStatus) -> JournalError {
    JournalError::new("finished", format!("run `{id}` has {} already: there is nothing to resume", status.name()))
}

pub(crate) fn to_json<T: serde::Serialize + ?Sized>(place: &str, value: &T) -> Result<String, JournalError> {
    serde_json::to_string(value).map_err(|e| error::json(place, "a value to journal", &e))
}

pub(crate) fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

pub(crate) fn sql_ms(ms: u64) -> i64 {
    i64::try_from(ms).unwrap_or(i64::MAX)
}
