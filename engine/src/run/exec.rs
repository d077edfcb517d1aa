//! The scheduler: starts each node once everything it waits for has finished, applies the skip
//! rule, journals what finished before anything that waits for it starts, and stops the run
//! cleanly at the first failure, on a stop request, or at the deadline.
//!
//! One [`Scheduler`] runs one level of a run (the flow, or one subflow call). Its steps are
//! methods with one job each: [`Scheduler::launch`] takes ready nodes (skipping, restoring
//! from the journal, or starting them), [`Scheduler::complete`] takes a node's outcome
//! (journaling it before releasing its dependents), [`Scheduler::halt`] stops the run, and
//! [`Scheduler::into_record`] writes the record.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use futures_util::StreamExt as _;
use futures_util::future::{Either, select};
use futures_util::stream::FuturesUnordered;
use serde_json::{Map, Value};
use tracing::Instrument as _;

use super::inputs::Prepared;
use super::{Level, StopLevel};
use crate::Flow;
use crate::journal::{Finished, NodePast, path_key};
use crate::node::record::now_ms;
use crate::node::{
    Bindings, BoxFuture, Effect, Env, Event, NodeCx, NodeError, NodeOutput, NodeRecord, NodeStatus, Reconciled,
    RunFailure, RunRecord, RunStatus, Subflows as _, Trace,
};
use crate::plan::{OnError, PlanNode};
use crate::render::{Escape, render, render_value, truthy};

/// Where each node is.
enum State {
    Waiting(usize),
    Running,
    Done {
        value: Arc<Value>,
        branch: Option<String>,
    },
    Skipped,
    Failed,
    /// Plan mode: not run (a write, or a node that waits for a write's result).
    Planned,
}

/// Plan mode: what becomes of a ready node before the ordinary skip rule.
enum Gate {
    /// Every value it reads is known: the ordinary rules apply.
    Go,
    Skip(String),
    /// It reads (or waits for) a result nobody knows yet: these unknown results.
    Defer(Vec<String>),
    Fail(NodeError),
}

/// Why the run stopped before its end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Halt {
    /// A node failed (or an output could not be rendered).
    Failed,
    /// Stopped on request, or the journal could not be written: resumable.
    Interrupted,
    /// A write's outcome is unknown and could not be reconciled.
    Attention,
}

/// How a node's future ended.
enum Outcome {
    Ran(Result<NodeOutput, NodeError>),
    /// The node's write had an unknown outcome that could not be reconciled.
    Attention(NodeError),
}

struct Ended {
    node: usize,
    outcome: Outcome,
    trace: Arc<Mutex<Trace>>,
    t0: Instant,
    at: u64,
    /// The node's span, kept open until its outcome is recorded on it (status, attempts).
    span: tracing::Span,
}

pub(crate) async fn execute(
    level: &Level<'_>,
    flow: &Flow,
    prepared: Prepared,
    bindings: &Bindings,
    depth: usize,
    path: Arc<[String]>,
) -> RunRecord {
    let mut s = Scheduler::new(level, flow, prepared, bindings, depth, path);
    let mut running: FuturesUnordered<BoxFuture<'_, Ended>> = FuturesUnordered::new();
    let mut stop = level.durable.stop.clone();
    loop {
        if s.stop_level(&stop) == StopLevel::Abandon {
            if !running.is_empty() || !s.finished_all() {
                s.interrupt("the run was stopped; the nodes in flight were abandoned");
            }
            break;
        }
        if s.halt.is_none() && s.stop_level(&stop) == StopLevel::Go {
            s.launch(&mut running);
        }
        if running.is_empty() {
            if s.halt.is_none() && s.stop_level(&stop) != StopLevel::Go && !s.finished_all() {
                s.interrupt("the run was stopped before it finished");
            }
            break;
        }
        if s.halt.is_some() && s.halt != Some(Halt::Interrupted) {
            break;
        }
        if s.stop_level(&stop) == StopLevel::Drain && s.all_parked() {
            // Only parked nodes are in flight (waiting for a signal, or for a rate-limit token
            // before anything was sent): nothing to let finish, and a resume waits again, so
            // the drain need not wait for them.
            s.interrupt(
                "the run was stopped while it waited (for a signal or the rate limit), before sending anything more",
            );
            break;
        }
        let ended = match s.next(&mut running, &mut stop).await {
            Next::Ended(ended) => ended,
            Next::Stop(StopLevel::Abandon) => {
                s.interrupt("the run was stopped; the nodes in flight were abandoned");
                break;
            }
            Next::Stop(_) => continue,
            Next::Deadline => {
                s.fail_deadline();
                break;
            }
        };
        s.complete(ended).await;
    }
    // Dropping the set drops every node still running: their requests are cancelled.
    drop(running);
    s.into_record()
}

/// The next stop level above `seen`.
async fn level_above(rx: &mut tokio::sync::watch::Receiver<StopLevel>, seen: StopLevel) -> StopLevel {
    loop {
        if rx.changed().await.is_err() {
            // The sender is gone: nobody can ask for more.
            std::future::pending::<()>().await;
        }
        let now = *rx.borrow_and_update();
        if now > seen {
            return now;
        }
    }
}

enum Next {
    Ended(Ended),
    Stop(StopLevel),
    Deadline,
}

struct Scheduler<'r, 'l> {
    level: &'r Level<'l>,
    flow: &'r Flow,
    bindings: &'r Bindings,
    depth: usize,
    path: Arc<[String]>,
    /// Per node: its place in the run ([`NodeCx::path`]), built once and shared by its events,
    /// journal entries and context.
    paths: Vec<Arc<[String]>>,
    base: Env,
    started_at: u64,
    states: Vec<State>,
    records: Vec<NodeRecord>,
    /// Per node: what it journaled as about to be sent in this process.
    traces: Vec<Option<Arc<Mutex<Trace>>>>,
    ready: Vec<usize>,
    failure: Option<RunFailure>,
    halt: Option<Halt>,
    /// Told whenever a node parks: during a drain the scheduler looks again whether every node
    /// in flight is parked.
    parks: Arc<tokio::sync::Notify>,
    /// Plan mode, per `Planned` node: the unknown results it stands for, as paths relative to
    /// this level (`create`, `phone/create`).
    unknown: Vec<Vec<String>>,
}

impl<'r, 'l> Scheduler<'r, 'l> {
    fn new(
        level: &'r Level<'l>,
        flow: &'r Flow,
        prepared: Prepared,
        bindings: &'r Bindings,
        depth: usize,
        path: Arc<[String]>,
    ) -> Self {
        let plan = &flow.plan;
        let mut ready: Vec<usize> = plan.order.iter().copied().filter(|&i| plan.deps(i).next().is_none()).collect();
        ready.reverse();
        let paths = plan
            .nodes
            .iter()
            .map(|n| {
                let mut p = Vec::with_capacity(path.len() + 1);
                p.extend_from_slice(&path);
                p.push(n.id.clone());
                Arc::from(p)
            })
            .collect();
        Scheduler {
            level,
            flow,
            bindings,
            depth,
            path,
            paths,
            base: Env { inputs: Arc::new(prepared.inputs), vars: Arc::new(prepared.vars), nodes: Vec::new() },
            started_at: now_ms(),
            states: (0..plan.nodes.len()).map(|i| State::Waiting(plan.deps(i).count())).collect(),
            records: plan.nodes.iter().map(pending_record).collect(),
            traces: vec![None; plan.nodes.len()],
            ready,
            failure: None,
            halt: None,
            parks: Arc::new(tokio::sync::Notify::new()),
            unknown: vec![Vec::new(); plan.nodes.len()],
        }
    }

    fn node_path(&self, i: usize) -> Arc<[String]> {
        self.paths[i].clone()
    }

    /// Every node in flight is parked ([`NodeCx::parked`](crate::node::NodeCx::parked)).
    fn all_parked(&self) -> bool {
        let mut running = self.states.iter().zip(&self.traces).filter(|(s, _)| matches!(s, State::Running)).peekable();
        running.peek().is_some()
            && running.all(|(_, t)| t.as_ref().is_some_and(|t| t.lock().map(|t| t.parked).unwrap_or(false)))
    }

    fn stop_level(&self, stop: &Option<tokio::sync::watch::Receiver<StopLevel>>) -> StopLevel {
        stop.as_ref().map(|s| *s.borrow()).unwrap_or_default()
    }

    fn finished_all(&self) -> bool {
        self.states.iter().all(|s| matches!(s, State::Done { .. } | State::Skipped))
    }

    /// Takes ready nodes while fewer than `max_parallel` run: skips them, restores them from
    /// the journal, or starts them.
    fn launch(&mut self, running: &mut FuturesUnordered<BoxFuture<'r, Ended>>) {
        let max = self.level.runner.options.max_parallel.max(1);
        while running.len() < max && self.halt.is_none() {
            let Some(i) = self.ready.pop() else { break };
            let node = &self.flow.plan.nodes[i];
            if self.level.plan {
                match self.plan_gate(i) {
                    Gate::Go => {}
                    Gate::Skip(reason) => {
                        self.skip(i, reason);
                        continue;
                    }
                    Gate::Defer(waits) => {
                        self.defer(i, waits);
                        continue;
                    }
                    Gate::Fail(e) => {
                        self.records[i].status = NodeStatus::Failed;
                        self.records[i].error = Some(e.clone());
                        self.fail(node.id.clone(), e.code, e.message);
                        break;
                    }
                }
            }
            match skip_reason(node, &self.states, &self.base) {
                Ok(None) => {}
                Ok(Some(reason)) => {
                    self.skip(i, reason);
                    continue;
                }
                Err(e) => {
                    // A condition that cannot be evaluated is the node's failure, never a skip.
                    self.records[i].status = NodeStatus::Failed;
                    self.records[i].error = Some(e.clone());
                    self.fail(node.id.clone(), e.code, e.message);
                    break;
                }
            }
            if self.deadline_passed() {
                self.fail_deadline();
                break;
            }
            // A run that resumes nothing (most runs) has no past to look a node up in.
            let past = &self.level.durable.past;
            let past = if past.is_empty() { None } else { past.node(&path_key(&self.paths[i])).cloned() };
            if let Some(done) = past.as_ref().and_then(|p| p.finished.clone()) {
                self.restore(i, done);
                continue;
            }
            if self.level.plan && matches!(node.compiled.exec.effect(), Effect::Write | Effect::Idempotent) {
                if !self.plan_write(i) {
                    break;
                }
                continue;
            }
            running.push(self.start(i, past));
        }
    }

    /// Plan mode: decides what it can of node `i` from the values known so far. A guard or a
    /// `when:` that reads only known values decides as in a run; one that reads an unknown
    /// result leaves the node waiting for it, as does any unknown node it waits for.
    fn plan_gate(&self, i: usize) -> Gate {
        let plan = &self.flow.plan;
        let node = &plan.nodes[i];
        let planned = |d: usize| matches!(self.states[d], State::Planned);
        for g in &node.guards {
            if planned(g.switch) {
                continue;
            }
            let taken = match &self.states[g.switch] {
                State::Done { branch: Some(b), .. } => g.branches.contains(b),
                _ => false,
            };
            if !taken {
                return Gate::Skip(format!("branch {} was not taken", g.branches.join(" or ")));
            }
        }
        for (d, name) in node.hard_reads() {
            if matches!(self.states[d], State::Skipped) {
                return Gate::Skip(format!("it reads `{name}`, which was skipped"));
            }
        }
        if let Some(when) = &node.when {
            let reads_unknown = when.refs.iter().any(|r| {
                r.path.first().is_some_and(|root| root == "nodes")
                    && r.path.get(1).is_some_and(|id| {
                        node.reads_ids.iter().zip(&node.reads_nodes).any(|(rid, &d)| **rid == **id && planned(d))
                    })
            });
            if !reads_unknown {
                let env = env_for(node, &self.base, &self.states);
                match render(when, &env, Escape::None) {
                    Ok(v) if !truthy(&v) => return Gate::Skip(format!("`when: {}` is false", when.source)),
                    Ok(_) => {}
                    Err(e) => return Gate::Fail(e.into()),
                }
            }
        }
        let mut waits: Vec<String> = Vec::new();
        for (d, _) in plan.deps(i) {
            if planned(d) {
                for u in &self.unknown[d] {
                    if !waits.contains(u) {
                        waits.push(u.clone());
                    }
                }
            }
        }
        if waits.is_empty() { Gate::Go } else { Gate::Defer(waits) }
    }

    /// Plan mode: node `i` waits for unknown results; recorded with them (and a write's or a
    /// subflow's template), not run.
    fn defer(&mut self, i: usize, waits: Vec<String>) {
        let node = &self.flow.plan.nodes[i];
        let exec = &node.compiled.exec;
        let mut detail = serde_json::json!({ "plan": "waits", "waits_for": waits });
        match exec.effect() {
            Effect::Write | Effect::Idempotent => {
                detail["plan"] = "template".into();
                detail["template"] = exec.template();
            }
            Effect::Composite => detail["template"] = exec.template(),
            Effect::Local | Effect::Read => {}
        }
        if let Some(when) = &node.when {
            detail["when"] = when.source.clone().into();
        }
        self.unknown[i] = waits;
        self.planned(i, detail);
    }

    /// Plan mode: write `i`, whose inputs are all known, rendered and not sent. `false` when it
    /// could not be rendered (the node fails, as it would in a run).
    fn plan_write(&mut self, i: usize) -> bool {
        let node: &'r PlanNode = &self.flow.plan.nodes[i];
        let cx = NodeCx {
            id: &node.id,
            env: env_for(node, &self.base, &self.states),
            bindings: self.bindings,
            sub: self.level,
            depth: self.depth,
            path: self.node_path(i),
            trace: Arc::new(Mutex::new(Trace::default())),
            journal: None,
            first_started: None,
            deadline: self.level.durable.deadline,
            plan: true,
        };
        match node.compiled.exec.preview(cx) {
            Ok(request) => {
                self.unknown[i] = vec![node.id.clone()];
                self.planned(i, serde_json::json!({ "plan": "send", "request": request }));
                true
            }
            Err(e) => {
                self.records[i].status = NodeStatus::Failed;
                self.records[i].error = Some(e.clone());
                self.states[i] = State::Failed;
                let p = self.node_path(i);
                self.emit_finished(i, &p);
                self.fail(node.id.clone(), e.code, e.message);
                false
            }
        }
    }

    /// Plan mode: node `i` is `Planned` with `detail`; its dependents are released to be
    /// planned in turn.
    fn planned(&mut self, i: usize, detail: Value) {
        self.states[i] = State::Planned;
        self.records[i].status = NodeStatus::Planned;
        self.records[i].detail = Some(crate::node::Detail::value(detail));
        let p = self.node_path(i);
        self.emit_finished(i, &p);
        self.release(i);
    }

    fn skip(&mut self, i: usize, reason: String) {
        self.states[i] = State::Skipped;
        self.records[i].status = NodeStatus::Skipped;
        self.records[i].reason = Some(reason);
        let p = self.node_path(i);
        self.observer().event(&Event::Finished {
            path: &p,
            kind: self.flow.plan.nodes[i].kind,
            status: NodeStatus::Skipped,
            duration_ms: 0.0,
            message: self.records[i].reason.as_deref(),
        });
        self.release(i);
    }

    /// A node the journal says finished in an earlier process: its result, not run again.
    fn restore(&mut self, i: usize, done: Finished) {
        let value = done.record.result.clone().unwrap_or_else(|| Arc::new(Value::Null));
        self.states[i] = State::Done { value, branch: done.branch };
        self.records[i] = done.record;
        let p = self.node_path(i);
        self.observer().event(&Event::Restored { path: &p, status: self.records[i].status });
        self.release(i);
    }

    /// Starts node `i`. A write whose outcome an earlier process left unknown is reconciled
    /// first, and sent only if that shows it did not happen.
    fn start(&mut self, i: usize, past: Option<NodePast>) -> BoxFuture<'r, Ended> {
        let level = self.level;
        let node: &'r PlanNode = &self.flow.plan.nodes[i];
        let p = self.node_path(i);
        let past = past.unwrap_or_default();
        let (t0, at) = (Instant::now(), now_ms());
        let journal = level.durable.journal.clone();
        if let Some(j) = &journal {
            if past.started_at.is_none() && node.compiled.exec.effect() != Effect::Local {
                j.started(&p, at);
            }
        }
        self.observer().event(&Event::Started { path: &p, kind: node.kind });
        let trace = Arc::new(Mutex::new(Trace { parks: Some(self.parks.clone()), ..Trace::default() }));
        self.traces[i] = Some(trace.clone());
        self.states[i] = State::Running;
        let env = env_for(node, &self.base, &self.states);
        let bindings = self.bindings;
        let depth = self.depth;
        let deadline = level.durable.deadline;
        let first_started = past.started_at;
        let cx = {
            let trace = trace.clone();
            let id: &'r str = &node.id;
            move || NodeCx {
                id,
                env: env.clone(),
                bindings,
                sub: level,
                depth,
                path: p.clone(),
                trace: trace.clone(),
                journal: journal.clone(),
                first_started,
                deadline,
                plan: level.plan,
            }
        };
        let in_doubt = match node.compiled.exec.effect() {
            Effect::Write => past.intent,
            _ => None,
        };
        // `status`, `attempts` and `code` are recorded by `complete` once the outcome is known.
        let span = tracing::info_span!(
            "node",
            id = %node.id,
            kind = node.kind,
            status = tracing::field::Empty,
            attempts = tracing::field::Empty,
            code = tracing::field::Empty,
        );
        let own = span.clone();
        Box::pin(
            async move {
                tracing::debug!("node started");
                let exec = &node.compiled.exec;
                if let Some(intent) = &in_doubt {
                    match exec.reconcile(cx(), intent).await {
                        Reconciled::Done(out) => {
                            tracing::info!("write found done by its reconcile read");
                            return Ended { node: i, outcome: Outcome::Ran(Ok(out)), trace, t0, at, span: own };
                        }
                        Reconciled::NotDone => tracing::info!("write found not done: sending it"),
                        Reconciled::Undeclared => {
                            let e = unknown_outcome(intent, &exec.needs_attention(intent));
                            return Ended { node: i, outcome: Outcome::Attention(e), trace, t0, at, span: own };
                        }
                        Reconciled::Failed(e) => {
                            let why = format!(
                                "its `reconcile:` read failed: {}\n{}",
                                e.message,
                                exec.needs_attention(intent)
                            );
                            let e = unknown_outcome(intent, &why);
                            return Ended { node: i, outcome: Outcome::Attention(e), trace, t0, at, span: own };
                        }
                    }
                }
                let result = exec.run(cx()).await;
                if let Err(e) = &result {
                    tracing::debug!(code = %e.code, "node failed");
                }
                Ended { node: i, outcome: Outcome::Ran(result), trace, t0, at, span: own }
            }
            .instrument(span),
        )
    }

    /// Waits for the next node to end, a stop request, or the deadline.
    async fn next(
        &self,
        running: &mut FuturesUnordered<BoxFuture<'r, Ended>>,
        stop: &mut Option<tokio::sync::watch::Receiver<StopLevel>>,
    ) -> Next {
        // One node in flight (a chain, the common case) and nothing to watch: await it
        // directly. Going through `FuturesUnordered` adds a wake-up hop per I/O event, measured
        // at ~25 µs per request on loopback (docs/benchmarks.md).
        let deadline = self.level.durable.deadline;
        if stop.is_none() && deadline.is_none() && running.len() == 1 {
            if let Some(only) = running.iter_mut().next() {
                let out = only.await;
                running.clear();
                return Next::Ended(out);
            }
        }
        let ended = running.next();
        let parks = Arc::clone(&self.parks);
        let stopped = async {
            match stop {
                Some(rx) => {
                    let seen = *rx.borrow_and_update();
                    let above = level_above(rx, seen);
                    if seen != StopLevel::Drain {
                        return above.await;
                    }
                    // Draining: a node that parks now may be the last one not parked.
                    match select(Box::pin(above), Box::pin(parks.notified())).await {
                        Either::Left((now, _)) => now,
                        Either::Right(((), _)) => seen,
                    }
                }
                None => std::future::pending().await,
            }
        };
        let expired = async {
            match deadline {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        let watch = select(Box::pin(stopped), Box::pin(expired));
        match select(ended, watch).await {
            Either::Left((Some(ended), _)) => Next::Ended(ended),
            Either::Left((None, _)) => Next::Stop(StopLevel::Drain),
            Either::Right((Either::Left((level, _)), _)) => Next::Stop(level),
            Either::Right((Either::Right(((), _)), _)) => Next::Deadline,
        }
    }

    /// Takes a node's outcome: journals it, then releases the nodes that wait for it.
    async fn complete(&mut self, mut ended: Ended) {
        let span = std::mem::replace(&mut ended.span, tracing::Span::none());
        let i = ended.node;
        self.take(ended).await;
        if !span.is_disabled() {
            let rec = &self.records[i];
            span.record("status", node_status(rec.status));
            span.record("attempts", rec.attempts);
            if let Some(e) = &rec.error {
                span.record("code", e.code.as_str());
            }
        }
    }

    /// [`Scheduler::complete`]'s work: the outcome into the record, the journal, the dependents.
    async fn take(&mut self, ended: Ended) {
        let Ended { node: i, outcome, trace, t0, at, span: _ } = ended;
        let node = &self.flow.plan.nodes[i];
        finish_record(&mut self.records[i], &trace, t0, at);
        let p = self.node_path(i);
        let result = match outcome {
            Outcome::Ran(result) => result,
            Outcome::Attention(e) => {
                self.records[i].status = NodeStatus::Unknown;
                self.records[i].error = Some(e.clone());
                self.states[i] = State::Failed;
                self.emit_finished(i, &p);
                self.stop_for(Halt::Attention, node.id.clone(), e.code, e.message);
                return;
            }
        };
        // A subflow (or a list item's subflow) that was stopped or needs attention stops this
        // run the same way.
        let rec = &self.records[i];
        let nested = rec.subflow.iter().map(|r| r.status).chain(rec.items.iter().map(|r| r.record.status));
        let stopped = nested.filter(|s| s.is_resumable()).max_by_key(|s| *s == RunStatus::NeedsAttention);
        if let (Err(e), Some(status)) = (&result, stopped) {
            self.records[i].status = NodeStatus::Cancelled;
            self.states[i] = State::Failed;
            let halt = if status == RunStatus::Interrupted { Halt::Interrupted } else { Halt::Attention };
            self.stop_for(halt, node.id.clone(), e.code.clone(), e.message.clone());
            return;
        }
        let mut branch = None;
        if let (true, Ok(_)) = (self.level.plan, &result) {
            // Plan mode: a subflow (or a list of them) with planned nodes inside has outputs
            // nobody knows yet; what waits for it waits for the writes inside.
            let inner = inner_unknowns(&self.records[i]);
            if !inner.is_empty() {
                self.unknown[i] = inner.clone();
                self.states[i] = State::Planned;
                self.records[i].status = NodeStatus::Planned;
                self.records[i].detail =
                    Some(crate::node::Detail::value(serde_json::json!({ "plan": "inside", "unknown": inner })));
                self.emit_finished(i, &p);
                self.release(i);
                return;
            }
        }
        let rec = &mut self.records[i];
        match result {
            Ok(out) => {
                tracing::debug!(node = %node.id, ms = rec.duration_ms, "node succeeded");
                rec.status = NodeStatus::Succeeded;
                let value = Arc::new(out.value);
                rec.result = Some(value.clone());
                branch = out.branch.clone();
                self.states[i] = State::Done { value, branch: out.branch };
            }
            Err(e) => {
                let message = self.level.durable.secrets.text(&e.message);
                tracing::info!(node = %node.id, code = %e.code, error = %message, "node failed");
                rec.status = NodeStatus::Failed;
                rec.error = Some(e.clone());
                if node.on_error == OnError::Continue {
                    let value = Arc::new(e.as_result());
                    rec.result = Some(value.clone());
                    self.states[i] = State::Done { value, branch: None };
                } else {
                    self.states[i] = State::Failed;
                    self.emit_finished(i, &p);
                    self.fail(node.id.clone(), e.code, e.message);
                    return;
                }
            }
        }
        if let Some(journal) = &self.level.durable.journal {
            let effect = node.compiled.exec.effect();
            // What a read sent and got is in the run's final record; the journal needs its result
            // (building the detail's JSON for every read was most of its cost). Each item of a
            // list is journaled under its own path, as it finished. Neither is even copied.
            let read = matches!(effect, Effect::Local | Effect::Read);
            let detail = if read { self.records[i].detail.take() } else { None };
            let items = std::mem::take(&mut self.records[i].items);
            let record = self.records[i].clone();
            self.records[i].items = items;
            if read {
                self.records[i].detail = detail;
            }
            let done = Finished { record, branch };
            // A call that changed something is durable before its dependents start, unless a
            // read settles it when its result is lost (`reconcile:`): it is then made durable by
            // the run's next intent or its end, like a read. Any other node lost in a crash is
            // simply run again, and reads it came from were made durable by the call's intent,
            // before it was sent (docs/architecture.md, "The journal").
            let settled_by_read = effect == Effect::Write && node.compiled.exec.reconciles();
            let recorded = if matches!(effect, Effect::Write | Effect::Idempotent) && !settled_by_read {
                journal.finished(&p, &done).await
            } else {
                journal.noted(&p, done);
                Ok(())
            };
            if let Err(e) = recorded {
                // The node's effect happened but is not journaled: a resume reconciles it.
                self.emit_finished(i, &p);
                let message = format!("the journal could not record that node `{}` finished: {e}", node.id);
                self.stop_for(Halt::Interrupted, node.id.clone(), "journal".into(), message);
                return;
            }
        }
        self.emit_finished(i, &p);
        self.release(i);
    }

    fn emit_finished(&self, i: usize, p: &[String]) {
        let rec = &self.records[i];
        self.observer().event(&Event::Finished {
            path: p,
            kind: self.flow.plan.nodes[i].kind,
            status: rec.status,
            duration_ms: rec.duration_ms.unwrap_or_default(),
            message: rec.error.as_ref().map(|e| e.message.as_str()),
        });
    }

    /// Marks `i` finished for the nodes waiting on it; those with nothing left to wait for
    /// are ready.
    fn release(&mut self, i: usize) {
        for (d, _) in self.flow.plan.dependents(i) {
            if let State::Waiting(n) = &mut self.states[d] {
                *n -= 1;
                if *n == 0 {
                    self.ready.push(d);
                }
            }
        }
    }

    fn fail(&mut self, node: String, code: String, message: String) {
        self.stop_for(Halt::Failed, node, code, message);
    }

    fn stop_for(&mut self, halt: Halt, node: String, code: String, message: String) {
        if self.halt.is_none() {
            self.halt = Some(halt);
            self.failure = Some(RunFailure { node, code, message });
        }
    }

    fn interrupt(&mut self, why: &str) {
        let node = self.path.last().cloned().unwrap_or_default();
        self.stop_for(Halt::Interrupted, node, "interrupted".into(), why.to_owned());
    }

    fn deadline_passed(&self) -> bool {
        self.level.durable.deadline.is_some_and(|d| tokio::time::Instant::now() >= d)
    }

    fn fail_deadline(&mut self) {
        let node = self.path.last().cloned().unwrap_or_default();
        let message = "the run's deadline passed before it finished".to_owned();
        self.stop_for(Halt::Failed, node, "deadline".into(), message);
    }

    fn observer(&self) -> &dyn crate::node::Observer {
        self.level.observer()
    }

    /// The run's record. Nodes still running were dropped: a write among them that journaled
    /// its intent has an unknown outcome, the others were cancelled.
    fn into_record(mut self) -> RunRecord {
        for (i, s) in self.states.iter().enumerate() {
            if matches!(s, State::Running) {
                let trace =
                    self.traces[i].as_ref().and_then(|t| t.lock().ok().map(|mut t| (t.intent.take(), t.attempts)));
                let (intent, attempts) = trace.unwrap_or_default();
                let rec = &mut self.records[i];
                rec.attempts = attempts.unwrap_or(0);
                match intent {
                    Some(request) => {
                        rec.status = NodeStatus::Unknown;
                        rec.error = Some(unknown_outcome(&request, "the run stopped while it was in flight"));
                    }
                    None => rec.status = NodeStatus::Cancelled,
                }
            }
        }
        let planned = self.states.iter().any(|s| matches!(s, State::Planned));
        // A plan's outputs would read results nobody knows yet: it has none.
        let outputs = if self.halt.is_none() && !planned {
            outputs(self.flow, &self.base, &self.states, &mut self.failure)
        } else {
            Map::new()
        };
        let status = match (self.halt, &self.failure) {
            (Some(Halt::Interrupted), _) => RunStatus::Interrupted,
            (Some(Halt::Attention), _) => RunStatus::NeedsAttention,
            (Some(Halt::Failed), _) | (None, Some(_)) => RunStatus::Failed,
            (None, None) => RunStatus::Succeeded,
        };
        RunRecord {
            flow: self.flow.id().to_owned(),
            id: None,
            status,
            error: self.failure,
            inputs: Arc::try_unwrap(self.base.inputs).unwrap_or_else(|a| (*a).clone()),
            vars: Arc::try_unwrap(self.base.vars).unwrap_or_else(|a| (*a).clone()),
            outputs,
            started_at: self.started_at,
            ended_at: now_ms(),
            nodes: self.records,
        }
    }
}

/// The error of a write whose outcome is unknown: what was sent, and why nobody knows.
fn unknown_outcome(intent: &Value, why: &str) -> NodeError {
    NodeError::new("outcome_unknown", format!("a write was sent and its outcome is unknown.\n{why}"))
        .with_data(serde_json::json!({ "request": intent }))
}

/// Plan mode: the writes planned inside a subflow node's run (or its list's runs), as paths
/// from this node (`phone/create`, `each[2]/create`).
fn inner_unknowns(rec: &NodeRecord) -> Vec<String> {
    let runs = rec
        .subflow
        .iter()
        .map(|r| (rec.id.clone(), &**r))
        .chain(rec.items.iter().map(|it| (format!("{}[{}]", rec.id, it.index), &it.record)));
    let mut out = Vec::new();
    for (prefix, run) in runs {
        for n in run.nodes.iter().filter(|n| n.status == NodeStatus::Planned) {
            let detail = n.detail.as_ref().map(crate::node::Detail::get).unwrap_or_default();
            match detail["plan"].as_str() {
                Some("send" | "template") => out.push(format!("{prefix}/{}", n.id)),
                Some("inside") => {
                    let inner = detail["unknown"].as_array().into_iter().flatten().filter_map(Value::as_str);
                    out.extend(inner.map(|u| format!("{prefix}/{u}")));
                }
                _ => {}
            }
        }
    }
    out
}

fn pending_record(n: &PlanNode) -> NodeRecord {
    NodeRecord {
        id: n.id.clone(),
        kind: n.kind.to_owned(),
        status: NodeStatus::Pending,
        reason: None,
        started_at: None,
        ended_at: None,
        duration_ms: None,
        attempts: 0,
        result: None,
        error: None,
        detail: None,
        subflow: None,
        items: Vec::new(),
    }
}

fn finish_record(rec: &mut NodeRecord, trace: &Mutex<Trace>, t0: Instant, at: u64) {
    rec.started_at = Some(at);
    rec.ended_at = Some(now_ms());
    rec.duration_ms = Some(t0.elapsed().as_secs_f64() * 1e3);
    if let Ok(mut t) = trace.lock() {
        rec.attempts = t.attempts.unwrap_or(1);
        rec.detail = t.detail.take();
        rec.subflow = t.subflow.take().map(Box::new);
        rec.items = std::mem::take(&mut t.items);
    }
}

/// The skip rule at run time; `None` means the node runs.
fn skip_reason(node: &PlanNode, states: &[State], base: &Env) -> Result<Option<String>, NodeError> {
    for g in &node.guards {
        let taken = match &states[g.switch] {
            State::Done { branch: Some(b), .. } => g.branches.contains(b),
            _ => false,
        };
        if !taken {
            return Ok(Some(format!("branch {} was not taken", g.branches.join(" or "))));
        }
    }
    for (d, name) in node.hard_reads() {
        if matches!(states[d], State::Skipped) {
            return Ok(Some(format!("it reads `{name}`, which was skipped")));
        }
    }
    let Some(when) = node.when.as_ref() else { return Ok(None) };
    let env = env_for(node, base, states);
    let value = render(when, &env, Escape::None)?;
    Ok((!truthy(&value)).then(|| format!("`when: {}` is false", when.source)))
}

/// The values a node may read: only the results of the nodes it reads, shared, not copied.
fn env_for(node: &PlanNode, base: &Env, states: &[State]) -> Env {
    let nodes = node
        .reads_nodes
        .iter()
        .zip(&node.reads_ids)
        .filter_map(|(&d, id)| match &states[d] {
            State::Done { value, .. } => Some((id.clone(), value.clone())),
            _ => None,
        })
        .collect();
    Env { inputs: base.inputs.clone(), vars: base.vars.clone(), nodes }
}

/// Renders the outputs; one that reads a skipped node takes its default (or null).
fn outputs(flow: &Flow, base: &Env, states: &[State], failure: &mut Option<RunFailure>) -> Map<String, Value> {
    let plan = &flow.plan;
    let all: Vec<(Arc<str>, Arc<Value>)> = plan
        .ids
        .iter()
        .zip(states)
        .filter_map(|(id, s)| match s {
            State::Done { value, .. } => Some((id.clone(), value.clone())),
            _ => None,
        })
        .collect();
    let env = Env { inputs: base.inputs.clone(), vars: base.vars.clone(), nodes: all };
    let mut out = Map::new();
    for o in &flow.outputs {
        let skipped = o.value.refs.iter().filter(|r| !r.soft).any(|r| {
            r.path[0] == "nodes"
                && r.path.get(1).and_then(|id| plan.index(id)).is_some_and(|i| !matches!(states[i], State::Done { .. }))
        });
        let value = match (&o.default, skipped) {
            (Some(d), true) => render_value(d, &env),
            (None, true) => Ok(Value::Null),
            // A value that is missing (an empty list's first item) takes the default too.
            (Some(d), false) => match render(&o.value, &env, Escape::None) {
                Err(crate::render::RenderError::Missing { .. }) => render_value(d, &env),
                other => other,
            },
            (None, false) => render(&o.value, &env, Escape::None),
        };
        match value {
            Ok(v) => {
                out.insert(o.name.clone(), v);
            }
            Err(e) => {
                *failure = Some(RunFailure {
                    node: format!("outputs.{}", o.name),
                    code: "template".into(),
                    message: e.to_string(),
                });
            }
        }
    }
    out
}

/// A node's status as the run record spells it (the `status` of its span).
fn node_status(s: NodeStatus) -> &'static str {
    match s {
        NodeStatus::Pending => "pending",
        NodeStatus::Succeeded => "succeeded",
        NodeStatus::Failed => "failed",
        NodeStatus::Skipped => "skipped",
        NodeStatus::Cancelled => "cancelled",
        NodeStatus::Unknown => "unknown",
        NodeStatus::Planned => "planned",
    }
}
