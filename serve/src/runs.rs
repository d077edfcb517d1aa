//! The runs this service holds: each is a task driving [`Hall::run_durably`] (or
//! [`Hall::resume`]) with its own stop signal, as `flowcat run` does, so a run started over
//! HTTP is journaled, keyed and resumable exactly like one started at a shell. The service
//! answers as soon as the journal gave the run its id; the task goes on without the request.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use flowcat_engine::journal::{Filter, IfBusy, JournalError, StoredStatus};
use flowcat_engine::run::{RunFailure, RunRecord, StopLevel, stop_signal};
use flowcat_nodes::hall::{Call, Durably, Hall, Ran, Refused};
use serde_json::{Map, Value};
use tokio::sync::{oneshot, watch};
use tracing::Instrument as _;

use crate::metrics::Metrics;

/// After a drain, how long requests in flight get before they are abandoned (as `flowcat run`
/// gives them after the first Ctrl-C).
pub const ABANDON_AFTER: Duration = Duration::from_secs(5);

/// How a run's task ended.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// Its record; `before` when the run key named a run that had finished (nothing was sent).
    Ran { record: Arc<RunRecord>, before: bool },
    /// It was refused or its journal failed after it began: the message.
    Failed(String),
}

/// A run held by this process.
#[derive(Debug)]
pub struct LiveRun {
    id: OnceLock<String>,
    pub flow: String,
    stop: watch::Sender<StopLevel>,
    done: watch::Sender<Option<Outcome>>,
    cancelled: AtomicBool,
}

impl LiveRun {
    fn new(flow: &str) -> (Arc<LiveRun>, watch::Receiver<StopLevel>) {
        let (stop, rx) = stop_signal();
        let run = LiveRun {
            id: OnceLock::new(),
            flow: flow.to_owned(),
            stop,
            done: watch::channel(None).0,
            cancelled: AtomicBool::new(false),
        };
        (Arc::new(run), rx)
    }

    /// Its outcome, waiting at most `wait` for it.
    pub async fn outcome(&self, wait: Duration) -> Option<Outcome> {
        let mut rx = self.done.subscribe();
        let got = tokio::time::timeout(wait, rx.wait_for(Option::is_some)).await;
        got.ok().and_then(|r| r.ok().and_then(|o| o.clone()))
    }
}

/// Why a run was not started.
#[derive(Debug)]
pub enum StartError {
    Refused(Refused),
    /// The service is shutting down.
    Stopping,
}

/// A run begun: its id, and its task when this process runs it (not when the key's run is held
/// by another process).
#[derive(Debug)]
pub struct Started {
    pub id: String,
    pub live: Option<Arc<LiveRun>>,
}

/// What a cancel did.
#[derive(Debug)]
pub enum Cancelled {
    /// The run is draining here; it ends `failed` with code `cancelled`.
    Draining,
    /// The run was not running here: it was ended `failed` (`cancelled`) in the journal.
    Ended(Box<RunRecord>),
    /// It had finished already.
    Finished(StoredStatus),
    NotFound,
}

/// A token's count of runs in flight, given back when the run's task ends.
#[derive(Debug)]
pub struct Slot(Arc<AtomicUsize>);

impl Slot {
    pub fn take(count: &Arc<AtomicUsize>, max: usize) -> Option<Slot> {
        let before = count.fetch_add(1, Ordering::AcqRel);
        if before >= max {
            count.fetch_sub(1, Ordering::AcqRel);
            return None;
        }
        Some(Slot(count.clone()))
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Counts a task until it ends.
struct TaskGuard(watch::Sender<usize>);

impl TaskGuard {
    fn new(tasks: &watch::Sender<usize>) -> TaskGuard {
        tasks.send_modify(|n| *n += 1);
        TaskGuard(tasks.clone())
    }
}

impl Drop for TaskGuard {
    fn drop(&mut self) {
        self.0.send_modify(|n| *n -= 1);
    }
}

/// Every run this service holds.
pub struct Runs {
    pub hall: Hall,
    live: Mutex<HashMap<String, Arc<LiveRun>>>,
    tasks: watch::Sender<usize>,
    stopping: AtomicBool,
    pub metrics: Arc<Metrics>,
}

impl std::fmt::Debug for Runs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runs").field("tasks", &*self.tasks.borrow()).finish_non_exhaustive()
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or_default()
}

impl Runs {
    /// `hall` must have a store: every run is journaled.
    pub fn new(hall: Hall, metrics: Arc<Metrics>) -> Arc<Runs> {
        Arc::new(Runs {
            hall,
            live: Mutex::new(HashMap::new()),
            tasks: watch::channel(0).0,
            stopping: AtomicBool::new(false),
            metrics,
        })
    }

    fn live_map(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<LiveRun>>> {
        self.live.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub fn stopping(&self) -> bool {
        self.stopping.load(Ordering::Acquire)
    }

    /// The run `id` if this process is running it.
    pub fn get(&self, id: &str) -> Option<Arc<LiveRun>> {
        self.live_map().get(id).cloned()
    }

    /// Tasks still running (runs, cancels).
    pub fn tasks(&self) -> usize {
        *self.tasks.borrow()
    }

    /// Checks and starts a run of `flow`; answers once the journal gave it an id.
    pub async fn start(
        self: &Arc<Self>,
        flow: &str,
        inputs: Map<String, Value>,
        key: Option<String>,
        slot: Slot,
    ) -> Result<Started, StartError> {
        if self.stopping() {
            return Err(StartError::Stopping);
        }
        let checked = self.hall.prepare(Call::new(flow, inputs)).map_err(StartError::Refused)?;
        self.hall.check(&checked).map_err(StartError::Refused)?;
        let flow = checked.flow().to_owned();
        let (live, stop) = LiveRun::new(&flow);
        let (begun, id_rx) = oneshot::channel();
        let how = Durably { key, if_busy: IfBusy::Refuse, stop: Some(stop), begun: Some(begun), ..Durably::default() };
        let span =
            tracing::info_span!("run", run_id = tracing::field::Empty, flow = %flow, status = tracing::field::Empty);
        let me = self.clone();
        let task =
            self.spawn(live.clone(), Some(slot), span.clone(), async move { me.hall.run_durably(checked, how).await });
        match id_rx.await {
            Ok(id) => {
                span.record("run_id", id.as_str());
                // The journal may hold a run's beginning with later work: a 202 promises it is
                // written.
                self.flush(&id).await;
                Ok(Started { id: id.clone(), live: Some(self.register(id, live)) })
            }
            // The run ended before the journal gave it an id: it was refused.
            Err(_) => match task.await {
                Ok(Some(Refused::Busy { id })) => Ok(Started { live: self.get(&id), id }),
                Ok(Some(refused)) => Err(StartError::Refused(refused)),
                _ => Err(StartError::Refused(Refused::Changed("the run's task ended before it began".into()))),
            },
        }
    }

    /// Files a live run under its id, unless its task already ended.
    fn register(&self, id: String, live: Arc<LiveRun>) -> Arc<LiveRun> {
        let _ = live.id.set(id.clone());
        let mut map = self.live_map();
        if live.done.borrow().is_none() {
            map.insert(id, live.clone());
        }
        live
    }

    /// Runs `run` on its own task, counted, in `span`; the task files the outcome, gives the
    /// token's slot back and answers the refusal, if any (for [`Runs::start`]).
    fn spawn(
        self: &Arc<Self>,
        live: Arc<LiveRun>,
        slot: Option<Slot>,
        span: tracing::Span,
        run: impl Future<Output = Result<Ran, Refused>> + Send + 'static,
    ) -> tokio::task::JoinHandle<Option<Refused>> {
        let guard = TaskGuard::new(&self.tasks);
        let me = self.clone();
        self.metrics.run_started();
        tokio::spawn(
            async move {
                let _guard = guard;
                let _slot = slot;
                let result = run.await;
                let (outcome, refused) = match result {
                    Ok(ran) => {
                        let before = matches!(ran, Ran::Before(_));
                        let mut record = match ran {
                            Ran::Now(r) | Ran::Before(r) => r,
                        };
                        if live.cancelled.load(Ordering::Acquire) && record.status.is_resumable() {
                            record = me.end_cancelled(record).await;
                        }
                        let id = record.id.clone().unwrap_or_default();
                        let status = crate::metrics::status_name(record.status);
                        // On the run's span (traces, docs/serve.md).
                        tracing::Span::current().record("status", status);
                        tracing::info!(run_id = %id, flow = %record.flow, status, before, "run ended");
                        me.metrics.run_ended(&live.flow, Some(&record), before);
                        (Outcome::Ran { record: Arc::new(record), before }, None)
                    }
                    Err(e) => {
                        let id = live.id.get().cloned().unwrap_or_default();
                        tracing::warn!(run_id = %id, flow = %live.flow, error = %e, "run refused");
                        tracing::Span::current().record("status", "refused");
                        me.metrics.run_ended(&live.flow, None, false);
                        (Outcome::Failed(e.to_string()), Some(e))
                    }
                };
                // The journal may gather a finished run's end with later work: written before
                // the run leaves the live map, so that reading it never finds it half-way.
                me.flush(live.id.get().map_or("", String::as_str)).await;
                live.done.send_replace(Some(outcome));
                if let Some(id) = live.id.get() {
                    me.live_map().remove(id);
                }
                refused
            }
            .instrument(span),
        )
    }

    /// Makes everything journaled so far durable; a failure is logged (the run stands).
    async fn flush(&self, id: &str) {
        if let Some(store) = self.hall.store() {
            if let Err(e) = store.flush().await {
                tracing::error!(run_id = %id, error = %e, "the journal could not write the run's entries");
            }
        }
    }

    /// A cancelled run that stopped (drained, or on a write in doubt): ended `failed`
    /// (`cancelled`) in the journal, so that it is never resumed.
    async fn end_cancelled(&self, record: RunRecord) -> RunRecord {
        let Some(id) = record.id.clone() else { return record };
        match self.abandon(&id).await {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(run_id = %id, flow = %record.flow, error = %e, "the cancelled run could not be ended");
                record
            }
        }
    }

    async fn abandon(&self, id: &str) -> Result<RunRecord, JournalError> {
        let store = self.hall.store().ok_or_else(|| JournalError::new("no_journal", "the service has no journal"))?;
        let failure = RunFailure {
            node: String::new(),
            code: "cancelled".into(),
            message: "cancelled through the API (`POST /v1/runs/{id}/cancel`)".into(),
        };
        flowcat_nodes::hall::abandon(store.as_ref(), id, failure, now_ms()).await
    }

    /// Stops run `id` as Ctrl-C stops `flowcat run`: no new node starts, requests in flight get
    /// [`ABANDON_AFTER`]; then it ends `failed` with code `cancelled`. A run not running here is
    /// ended in the journal at once.
    pub async fn cancel(self: &Arc<Self>, id: &str) -> Result<Cancelled, JournalError> {
        if let Some(live) = self.get(id) {
            live.cancelled.store(true, Ordering::Release);
            let _ = live.stop.send(StopLevel::Drain);
            let guard = TaskGuard::new(&self.tasks);
            tokio::spawn(async move {
                let _guard = guard;
                if live.outcome(ABANDON_AFTER).await.is_none() {
                    let _ = live.stop.send(StopLevel::Abandon);
                }
            });
            return Ok(Cancelled::Draining);
        }
        let store = self.hall.store().ok_or_else(|| JournalError::new("no_journal", "the service has no journal"))?;
        match store.show(id)? {
            None => Ok(Cancelled::NotFound),
            Some(run) if run.summary.status.is_final() => Ok(Cancelled::Finished(run.summary.status)),
            Some(_) => Ok(Cancelled::Ended(Box::new(self.abandon(id).await?))),
        }
    }

    /// Resumes every interrupted run of the journal whose flow is in the catalog (not the runs
    /// of a flow file, not those needing attention): their finished nodes are not repeated,
    /// writes in doubt are reconciled or stop the run for a person. Answers the ids resumed.
    pub fn resume_unfinished(self: &Arc<Self>) -> Result<Vec<String>, JournalError> {
        let Some(store) = self.hall.store() else { return Ok(Vec::new()) };
        let filter = Filter { status: vec![StoredStatus::Interrupted], ..Filter::default() };
        let mut resumed = Vec::new();
        for run in store.list(&filter)? {
            let info = &run.info;
            if info.source.is_some() || self.hall.catalog().get(&info.flow).is_none() {
                tracing::warn!(run_id = %info.id, flow = %info.flow, "interrupted run left alone: its flow is not in this catalog");
                continue;
            }
            let (live, stop) = LiveRun::new(&info.flow);
            let span = tracing::info_span!("run", run_id = %info.id, flow = %info.flow, status = tracing::field::Empty);
            let live = self.register(info.id.clone(), live);
            let me = self.clone();
            let id = info.id.clone();
            tracing::info!(run_id = %info.id, flow = %info.flow, "resuming an interrupted run");
            self.spawn(live, None, span, async move { me.hall.resume(&id, Some(stop), &[]).await });
            resumed.push(info.id.clone());
        }
        Ok(resumed)
    }

    /// Tests of the shutdown's timing: a counted task held as a run, `f` given its stop signal.
    #[doc(hidden)]
    pub fn track_for_test<T, F>(
        self: &Arc<Self>,
        f: impl FnOnce(watch::Receiver<StopLevel>) -> F,
    ) -> (Arc<LiveRun>, tokio::task::JoinHandle<T>)
    where
        T: Send + 'static,
        F: Future<Output = T> + Send + 'static,
    {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let (live, stop) = LiveRun::new("test");
        let id = format!("rtest{}", NEXT.fetch_add(1, Ordering::Relaxed));
        let live = self.register(id.clone(), live);
        let guard = TaskGuard::new(&self.tasks);
        let (me, run, fut) = (self.clone(), live.clone(), f(stop));
        let task = tokio::spawn(async move {
            let _guard = guard;
            let out = fut.await;
            run.done.send_replace(Some(Outcome::Failed("test".into())));
            me.live_map().remove(&id);
            out
        });
        (live, task)
    }

    fn stop_all(&self, level: StopLevel) {
        for live in self.live_map().values() {
            let _ = live.stop.send(level);
        }
    }

    /// Graceful shutdown: no new run starts (503); the runs in flight get `grace` to finish,
    /// then are drained (no new node starts) and, [`ABANDON_AFTER`] later, their requests in
    /// flight abandoned; each ends `interrupted` in the journal and is resumed on the next
    /// start. Each change of `hurry` (a second signal) skips the rest of the current wait.
    pub async fn shutdown(&self, grace: Duration, mut hurry: watch::Receiver<u32>) {
        self.stopping.store(true, Ordering::Release);
        let mut tasks = self.tasks.subscribe();
        let steps = [(grace, StopLevel::Drain), (ABANDON_AFTER, StopLevel::Abandon)];
        for (wait, then) in steps {
            tokio::select! {
                _ = tasks.wait_for(|n| *n == 0) => break,
                () = tokio::time::sleep(wait) => {}
                () = hurried(&mut hurry) => {}
            }
            tracing::info!(runs = self.live_map().len(), level = ?then, "stopping the runs in flight");
            self.stop_all(then);
        }
        let _ = tasks.wait_for(|n| *n == 0).await;
        self.flush("").await;
    }

    /// Whether this process holds run `id` (the API shows it `running`).
    pub fn is_live(&self, id: &str) -> bool {
        self.live_map().contains_key(id)
    }
}

/// A change of `hurry`; never, once its sender is gone.
async fn hurried(hurry: &mut watch::Receiver<u32>) {
    if hurry.changed().await.is_err() {
        std::future::pending::<()>().await;
    }
}
