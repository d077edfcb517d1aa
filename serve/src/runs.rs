//! The runs this service holds: each is a task driving [`Hall::run_durably`] (or
//! [`Hall::resume`]) with its own stop signal, as `flowcat run` does, so a run started over
//! HTTP is journaled, keyed and resumable exactly like one started at a shell. The service
//! answers as soon as the journal gave the run its id; the task goes on without the request.
//!
//! Runs parked on a `wait_for`: a run waiting in memory longer than
//! `limits.evict_waiting_after` is drained (a parked run stops at once, its wait kept in the
//! journal) and dropped from memory; [`Runs::sweep`] resumes the runs parked in the journal
//! whose signal came or whose time passed, and a signal delivered through the service resumes
//! its run at once.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;

use flowcat_engine::journal::{Delivery, Filter, IfBusy, JournalError, RunInfo, StoredStatus};
use flowcat_engine::run::{Event, NodeStatus, Observer, RunFailure, RunRecord, RunStatus, StopLevel, stop_signal};
use flowcat_nodes::hall::{Call, Durably, Hall, Ran, Refused};
use serde_json::{Map, Value};
use tokio::sync::{oneshot, watch};
use tokio::time::Instant;
use tracing::Instrument as _;

use crate::metrics::Metrics;

/// After a drain, how long requests in flight get before they are abandoned (as `flowcat run`
/// gives them after the first Ctrl-C).
pub const ABANDON_AFTER: Duration = Duration::from_secs(5);

/// How often [`Runs::sweep`] runs: parked runs evicted, runs parked in the journal woken (a
/// signal delivered by another process, a timeout passed). A signal delivered through this
/// service wakes its run at once, whether it is in memory or not.
pub const SWEEP: Duration = Duration::from_secs(1);

tokio::task_local! {
    /// The run whose task this is: the engine tells its events on the run's own task (no node
    /// spawns one), so [`Watch`] knows which run an event is about.
    static CURRENT: Arc<LiveRun>;
}

/// Node kinds that run other nodes (whose own events are counted): not leaves.
const CONTAINERS: &[&str] = &["subflow", "for_each", "item"];

/// What a live run is doing, from its events.
#[derive(Debug, Default)]
struct Activity {
    /// Leaf nodes in flight.
    leaves: usize,
    /// The `wait_for` nodes parked now, by path.
    parked: Vec<String>,
    /// Since when it has had a parked node.
    since: Option<Instant>,
}

/// How a run's task ended.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// Its record; `before` when the run key named a run that had finished (nothing was sent).
    Ran { record: Arc<RunRecord>, before: bool },
    /// It was parked on a `wait_for` and dropped from memory (`limits.evict_waiting_after`):
    /// it waits in the journal.
    Evicted,
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
    /// Drained to be dropped from memory while parked.
    evicting: AtomicBool,
    activity: Mutex<Activity>,
    /// Its token's count of runs in flight, given back when the run parks (a parked run costs
    /// no call) or ends.
    slot: Mutex<Option<Slot>>,
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
            evicting: AtomicBool::new(false),
            activity: Mutex::new(Activity::default()),
            slot: Mutex::new(None),
        };
        (Arc::new(run), rx)
    }

    fn activity(&self) -> std::sync::MutexGuard<'_, Activity> {
        self.activity.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Follows the run's nodes: leaves in flight, `wait_for` nodes parked. Told every event of
    /// the run, on its task.
    fn saw(&self, event: &Event<'_>, metrics: &Metrics) {
        let mut a = self.activity();
        let was = !a.parked.is_empty();
        match event {
            Event::Started { kind, .. } if !CONTAINERS.contains(kind) => a.leaves += 1,
            Event::Finished { path, kind, status, .. } => {
                if *status != NodeStatus::Skipped && !CONTAINERS.contains(kind) {
                    a.leaves = a.leaves.saturating_sub(1);
                }
                let key = flowcat_engine::journal::path_key(path);
                a.parked.retain(|p| *p != key);
            }
            Event::Signal { path, .. } => {
                let key = flowcat_engine::journal::path_key(path);
                if !a.parked.contains(&key) {
                    a.parked.push(key);
                }
            }
            _ => return,
        }
        let now = !a.parked.is_empty();
        if now && !was {
            a.since = Some(Instant::now());
            drop(a);
            metrics.waiting_in_memory(1);
            // Parked: its token may start another run meanwhile.
            drop(self.slot.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take());
        } else if was && !now {
            a.since = None;
            drop(a);
            metrics.waiting_in_memory(-1);
        }
    }

    /// Parked on `wait_for` nodes only (no other node in flight) since `after` before `now`.
    fn evictable(&self, now: Instant, after: Duration) -> bool {
        let a = self.activity();
        !a.parked.is_empty() && a.leaves <= a.parked.len() && a.since.is_some_and(|t| t + after <= now)
    }

    /// Whether it is parked now.
    pub fn parked(&self) -> bool {
        !self.activity().parked.is_empty()
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
    /// `limits.evict_waiting_after`.
    evict_after: Duration,
    /// Runs parked in the journal only (evicted, or parked before this process started) that
    /// this process resumes when they can go on.
    parked: Mutex<HashSet<String>>,
    /// Runs whose resume was refused (their flow changed or left the catalog): left for a person.
    unwakeable: Mutex<HashSet<String>>,
    /// What this process last told or heard of the rate limits it shares with other replicas.
    sharing: Mutex<Sharing>,
}

/// The rate limits shared with the other processes of a shared store ([`Runs::share_limits`]).
#[derive(Debug, Default)]
struct Sharing {
    /// The sharers the limiters were last divided by.
    sharers: usize,
    /// Each integration's count of cuts already told (or heard).
    cuts: HashMap<String, u64>,
    /// The latest 429 of another replica already applied (the store's clock); `None` before the
    /// first look, which applies nothing (those 429s are old news).
    heard: Option<u64>,
}

/// The runs' observer: the metrics, and each live run's own view of its nodes.
#[derive(Debug)]
pub struct Watch(pub Arc<Metrics>);

impl Observer for Watch {
    fn event(&self, event: &Event<'_>) {
        self.0.event(event);
        let _ = CURRENT.try_with(|live| live.saw(event, &self.0));
    }
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
    /// `hall` must have a store: every run is journaled. Its observer should be a [`Watch`]
    /// of `metrics`, so that parked runs are seen (and evicted after `evict_after`).
    pub fn new(hall: Hall, metrics: Arc<Metrics>, evict_after: Duration) -> Arc<Runs> {
        Arc::new(Runs {
            hall,
            live: Mutex::new(HashMap::new()),
            tasks: watch::channel(0).0,
            stopping: AtomicBool::new(false),
            metrics,
            evict_after,
            parked: Mutex::new(HashSet::new()),
            unwakeable: Mutex::new(HashSet::new()),
            sharing: Mutex::new(Sharing::default()),
        })
    }

    fn set<'a>(&self, set: &'a Mutex<HashSet<String>>) -> std::sync::MutexGuard<'a, HashSet<String>> {
        set.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Files run `id` as parked in the journal only, or takes it off that list.
    fn parked_in_journal(&self, id: &str, parked: bool) {
        let mut set = self.set(&self.parked);
        if parked {
            set.insert(id.to_owned());
        } else {
            set.remove(id);
        }
        self.metrics.set_waiting_in_journal(set.len());
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
        *live.slot.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = slot;
        tokio::spawn(
            async move {
                let _guard = guard;
                let result = CURRENT.scope(live.clone(), run).await;
                drop(live.slot.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take());
                if live.parked() {
                    me.metrics.waiting_in_memory(-1);
                }
                let cancelled = live.cancelled.load(Ordering::Acquire);
                let evicted = !cancelled && live.evicting.load(Ordering::Acquire);
                let (outcome, refused) = match result {
                    Ok(Ran::Now(record)) if evicted && record.status == RunStatus::Interrupted => {
                        let id = record.id.clone().unwrap_or_default();
                        tracing::info!(run_id = %id, flow = %record.flow, "parked run left memory; it waits in the journal");
                        me.metrics.run_evicted();
                        (Outcome::Evicted, None)
                    }
                    Ok(ran) => {
                        let before = matches!(ran, Ran::Before(_));
                        let mut record = match ran {
                            Ran::Now(r) | Ran::Before(r) => r,
                        };
                        if cancelled && record.status.is_resumable() {
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
                        if matches!(&e, Refused::Journal(j) if j.code == "busy") {
                            // Another replica of a shared store took it first: it goes on there.
                            tracing::debug!(run_id = %id, flow = %live.flow, "run held by another process");
                        } else {
                            tracing::warn!(run_id = %id, flow = %live.flow, error = %e, "run refused");
                        }
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
                    if evicted {
                        // A signal (or its timeout) may have come while it was being drained, or
                        // it may have gone on before the drain reached it: it is resumed then.
                        me.settle(id);
                    }
                }
                refused
            }
            .instrument(span),
        )
    }

    /// A run that no process holds, parked or interrupted: resumed at once when it can go on
    /// (its signal came, its time passed, or it is not waiting at all), else filed as parked in
    /// the journal.
    fn settle(self: &Arc<Self>, id: &str) {
        let Some(store) = self.hall.store() else { return };
        let run = match store.show(id) {
            Ok(Some(run)) => run,
            Ok(None) => return,
            Err(e) => {
                tracing::error!(run_id = %id, error = %e, "the journal could not be read");
                return;
            }
        };
        let s = &run.summary;
        match (s.status, &s.waiting) {
            (StoredStatus::Waiting, Some(w)) if !w.held => {
                if w.delivered || w.until.is_some_and(|u| u <= now_ms()) {
                    self.wake(&s.info);
                } else {
                    self.parked_in_journal(id, true);
                }
            }
            (StoredStatus::Interrupted, None) => self.wake(&s.info),
            // Held by a process (it wakes by itself), ended, or needing a person.
            _ => self.parked_in_journal(id, false),
        }
    }

    /// Resumes a run of the journal that no process holds, unless this process holds it
    /// already, is stopping, or found it cannot be resumed here (its flow is not in the catalog,
    /// is a file, or changed since: left for a person, `flowcat runs list`).
    fn wake(self: &Arc<Self>, info: &RunInfo) {
        if self.stopping() || self.set(&self.unwakeable).contains(&info.id) {
            return;
        }
        if info.source.is_some() || self.hall.catalog().get(&info.flow).is_none() {
            tracing::warn!(run_id = %info.id, flow = %info.flow, "run left alone: its flow is not in this catalog");
            self.set(&self.unwakeable).insert(info.id.clone());
            self.parked_in_journal(&info.id, false);
            return;
        }
        let (live, stop) = LiveRun::new(&info.flow);
        let _ = live.id.set(info.id.clone());
        {
            let mut map = self.live_map();
            if map.contains_key(&info.id) {
                return;
            }
            map.insert(info.id.clone(), live.clone());
        }
        self.parked_in_journal(&info.id, false);
        let span = tracing::info_span!("run", run_id = %info.id, flow = %info.flow);
        tracing::info!(parent: &span, "resuming a run from the journal");
        let me = self.clone();
        let id = info.id.clone();
        self.spawn(live, None, span, async move {
            let ran = me.hall.resume(&id, Some(stop), &[]).await;
            if let Err(e) = &ran {
                // Held by another process meanwhile: it goes on there. Anything else is for a
                // person, not for the next sweep.
                if !matches!(e, Refused::Journal(j) if j.code == "busy") {
                    me.set(&me.unwakeable).insert(id);
                }
            }
            ran
        });
    }

    /// Delivers signal `name` with `payload` to run `id` through the journal (as `flowcat
    /// signal` and `Flowcat::signal` do). A run parked in this process wakes at once (the
    /// journal's notification); one parked in the journal only is resumed now and finds it.
    pub async fn signal(self: &Arc<Self>, id: &str, name: &str, payload: &Value) -> Result<Delivery, JournalError> {
        let store = self.hall.store().ok_or_else(|| JournalError::new("no_journal", "the service has no journal"))?;
        let delivery = store.signal(id, name, payload).await?;
        if delivery == Delivery::Delivered && !self.is_live(id) {
            self.settle(id);
        }
        Ok(delivery)
    }

    /// Evicts the runs parked in memory for longer than `limits.evict_waiting_after` at `now`
    /// (drained: a parked run stops at once, its wait kept in the journal), and resumes the runs
    /// parked in the journal that can go on (their signal came, from another process too, or
    /// their time passed). Every [`SWEEP`] from [`Runs::spawn_sweeper`]; tests call it with the
    /// time they choose.
    pub fn sweep(self: &Arc<Self>, now: Instant) {
        if self.stopping() {
            return;
        }
        for live in self.live_map().values() {
            if live.evictable(now, self.evict_after) && !live.evicting.swap(true, Ordering::AcqRel) {
                let id = live.id.get().map_or("", String::as_str);
                tracing::debug!(run_id = %id, flow = %live.flow, "evicting a parked run");
                let _ = live.stop.send(StopLevel::Drain);
            }
        }
        let Some(store) = self.hall.store() else { return };
        let ids = match store.wakeable(now_ms()) {
            Ok(ids) => ids,
            Err(e) => {
                tracing::error!(error = %e, "the journal could not list the runs to wake");
                return;
            }
        };
        for id in ids {
            if !self.is_live(&id) && !self.set(&self.unwakeable).contains(&id) {
                self.settle(&id);
            }
        }
        self.cancel_requested();
        self.share_limits();
    }

    /// Cancels the runs of this process whose cancel another replica asked for
    /// ([`Store::request_cancel`]).
    fn cancel_requested(self: &Arc<Self>) {
        let Some(store) = self.hall.store() else { return };
        let ids = match store.cancel_requests() {
            Ok(ids) => ids,
            Err(e) => {
                tracing::error!(error = %e, "the journal could not list the cancel requests");
                return;
            }
        };
        for id in ids {
            let Some(live) = self.get(&id) else { continue };
            if live.cancelled.load(Ordering::Acquire) {
                continue;
            }
            tracing::info!(run_id = %id, "cancelling a run at another replica's request");
            let me = self.clone();
            let guard = TaskGuard::new(&self.tasks);
            tokio::spawn(async move {
                let _guard = guard;
                let _ = me.cancel(&id).await;
            });
        }
    }

    /// Shares each integration's rate limit with the other processes of a shared store: this
    /// process takes `1 / sharers` of it, tells them of each 429 it met, and slows down for each
    /// of theirs (Duo's limits are per application, not per machine).
    fn share_limits(&self) {
        let Some(store) = self.hall.store() else { return };
        let Some(integrations) = self.hall.integrations() else { return };
        let limiters: Vec<(String, &Arc<flowcat_nodes::http::limit::Limiter>)> = integrations
            .list
            .iter()
            .filter_map(|i| Some((format!("{}@{}", i.name, i.endpoint.host), i.limiter.as_ref()?)))
            .collect();
        if limiters.is_empty() {
            return;
        }
        let mut sharing = self.sharing.lock().unwrap_or_else(PoisonError::into_inner);
        let sharers = store.sharers().max(1);
        if sharers != sharing.sharers {
            for (_, limiter) in &limiters {
                limiter.set_share(1.0 / sharers as f64);
            }
            if sharing.sharers != 0 || sharers > 1 {
                tracing::info!(sharers, "the integrations' rate limits are shared among this many replicas");
            }
            sharing.sharers = sharers;
        }
        if sharers == 1 && sharing.heard.is_some() {
            // Alone: nobody to tell or hear (a replica joining is seen at the next count).
            for (name, limiter) in &limiters {
                sharing.cuts.insert(name.clone(), limiter.cuts());
            }
            return;
        }
        for (name, limiter) in &limiters {
            let cuts = limiter.cuts();
            let told = sharing.cuts.insert(name.clone(), cuts).unwrap_or(0);
            if cuts > told {
                if let Err(e) = store.note_throttled(name) {
                    tracing::warn!(error = %e, "the other replicas could not be told of a 429");
                }
            }
        }
        match store.throttled_since(sharing.heard.unwrap_or(0)) {
            Ok(heard) => {
                let first = sharing.heard.is_none();
                let latest = heard.iter().map(|(_, at)| *at).max().unwrap_or(0);
                sharing.heard = Some(sharing.heard.unwrap_or(0).max(latest));
                if first {
                    return;
                }
                for (name, _) in heard {
                    if let Some((_, limiter)) = limiters.iter().find(|(n, _)| *n == name) {
                        tracing::info!(integration = %name, "another replica was answered 429: slowing down");
                        limiter.throttled_elsewhere();
                        // Heard, not met here: not told back.
                        sharing.cuts.insert(name, limiter.cuts());
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "the other replicas' 429s could not be read"),
        }
    }

    /// Runs [`Runs::sweep`] every [`SWEEP`] until the service stops.
    pub fn spawn_sweeper(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let me = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(SWEEP);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                if me.stopping() {
                    break;
                }
                me.sweep(Instant::now());
            }
        })
    }

    /// Runs parked in the journal only, as this process knows them.
    pub fn parked_in_journal_count(&self) -> usize {
        self.set(&self.parked).len()
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
        // Held by another replica of a shared store: that replica drains it at its next sweep.
        if store.request_cancel(id)? {
            return Ok(Cancelled::Draining);
        }
        self.parked_in_journal(id, false);
        match store.show(id)? {
            None => Ok(Cancelled::NotFound),
            Some(run) if run.summary.status.is_final() => Ok(Cancelled::Finished(run.summary.status)),
            Some(_) => Ok(Cancelled::Ended(Box::new(self.abandon(id).await?))),
        }
    }

    /// Resumes every interrupted run of the journal whose flow is in the catalog (not the runs
    /// of a flow file, not those needing attention): their finished nodes are not repeated,
    /// writes in doubt are reconciled or stop the run for a person. Answers the ids resumed.
    /// The runs parked on a `wait_for` that no process holds stay in the journal, filed as
    /// parked: [`Runs::sweep`] resumes them when their signal comes or their time passes.
    pub fn resume_unfinished(self: &Arc<Self>) -> Result<Vec<String>, JournalError> {
        let Some(store) = self.hall.store() else { return Ok(Vec::new()) };
        let filter = Filter { status: vec![StoredStatus::Interrupted, StoredStatus::Waiting], ..Filter::default() };
        let mut resumed = Vec::new();
        for run in store.list(&filter)? {
            let info = &run.info;
            if let Some(w) = &run.waiting {
                if !w.held && info.source.is_none() && self.hall.catalog().get(&info.flow).is_some() {
                    self.parked_in_journal(&info.id, true);
                }
                continue;
            }
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
        // The runs drained from now on are left to the other replicas of a shared store, which
        // resume them at their next sweep (a run with a write in doubt waits for the next
        // start, as every drained run did before).
        if let Some(store) = self.hall.store() {
            store.hand_over_on_stop();
        }
        // A run parked on a `wait_for` only has nothing to finish: it stops at once, its wait
        // kept in the journal for the next start.
        for live in self.live_map().values() {
            if live.evictable(Instant::now(), Duration::ZERO) {
                let _ = live.stop.send(StopLevel::Drain);
            }
        }
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

    /// Whether this process holds run `id` (the API shows it `running`, or `waiting`).
    pub fn is_live(&self, id: &str) -> bool {
        self.live_map().contains_key(id)
    }

    /// The runs this process holds in memory.
    pub fn live_count(&self) -> usize {
        self.live_map().len()
    }
}

/// A change of `hurry`; never, once its sender is gone.
async fn hurried(hurry: &mut watch::Receiver<u32>) {
    if hurry.changed().await.is_err() {
        std::future::pending::<()>().await;
    }
}
