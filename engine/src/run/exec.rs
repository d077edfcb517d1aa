//! The scheduler: starts each node once everything it waits for has finished, applies the skip
//! rule, and stops the run cleanly at the first failure.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use futures_util::StreamExt as _;
use futures_util::stream::FuturesUnordered;
use serde_json::{Map, Value};
use tracing::Instrument as _;

use super::cx::{Env, NodeCx, NodeOutput, Trace};
use super::inputs::Prepared;
use super::record::{NodeError, NodeRecord, NodeStatus, RunFailure, RunRecord, RunStatus, now_ms};
use super::{Binding, Event, Runner};
use crate::Flow;
use crate::plan::{OnError, PlanNode};
use crate::render::{Escape, render, render_value, truthy};

/// Where each node is.
enum State {
    Waiting(usize),
    Running,
    Done { value: Arc<Value>, branch: Option<String> },
    Skipped,
    Failed,
}

type Finished = (usize, Result<NodeOutput, NodeError>, Arc<Mutex<Trace>>, Instant, u64);

pub(crate) async fn execute(
    runner: &Runner,
    flow: &Flow,
    prepared: Prepared,
    bindings: &HashMap<String, Arc<Binding>>,
    depth: usize,
    path: Arc<[String]>,
) -> RunRecord {
    let plan = &flow.plan;
    let started_at = now_ms();
    let base = Env { inputs: Arc::new(prepared.inputs), vars: Arc::new(prepared.vars), nodes: Vec::new() };
    let mut states: Vec<State> = (0..plan.nodes.len()).map(|i| State::Waiting(plan.deps(i).count())).collect();
    let mut records: Vec<NodeRecord> = plan.nodes.iter().map(pending_record).collect();
    let mut ready: Vec<usize> = plan.order.iter().copied().filter(|&i| plan.deps(i).next().is_none()).collect();
    ready.reverse();
    let mut running: FuturesUnordered<crate::run::BoxFuture<'_, Finished>> = FuturesUnordered::new();
    let mut failure: Option<RunFailure> = None;
    let ids: HashMap<&str, usize> = plan.nodes.iter().enumerate().map(|(i, n)| (n.id.as_str(), i)).collect();
    let node_path = |i: usize| -> Arc<[String]> {
        let mut p = path.to_vec();
        p.push(plan.nodes[i].id.clone());
        Arc::from(p)
    };
    loop {
        while running.len() < runner.options.max_parallel.max(1) {
            let Some(i) = ready.pop() else { break };
            let node = &plan.nodes[i];
            let skip = match skip_reason(node, &states, &base) {
                Ok(skip) => skip,
                Err(e) => {
                    // A condition that cannot be evaluated is the node's failure, never a skip.
                    records[i].status = NodeStatus::Failed;
                    records[i].error = Some(e.clone());
                    failure = Some(RunFailure { node: node.id.clone(), code: e.code, message: e.message });
                    break;
                }
            };
            if let Some(reason) = skip {
                states[i] = State::Skipped;
                records[i].status = NodeStatus::Skipped;
                records[i].reason = Some(reason);
                let p = node_path(i);
                runner.observer.event(&Event::Finished {
                    path: &p,
                    status: NodeStatus::Skipped,
                    duration_ms: 0.0,
                    message: records[i].reason.as_deref(),
                });
                release(plan, i, &mut states, &mut ready);
                continue;
            }
            let env = env_for(node, &base, &states);
            let trace = Arc::new(Mutex::new(Trace::default()));
            let p = node_path(i);
            runner.observer.event(&Event::Started { path: &p, kind: node.kind });
            let cx = NodeCx {
                id: &node.id,
                env,
                bindings,
                runner,
                depth,
                path: p,
                trace: trace.clone(),
                journal: None,
                first_started: None,
                deadline: None,
            };
            states[i] = State::Running;
            let (t0, at) = (Instant::now(), now_ms());
            let span = tracing::info_span!("node", id = %node.id, kind = node.kind);
            let fut = async move {
                tracing::debug!("node started");
                let result = node.compiled.exec.run(cx).await;
                if let Err(e) = &result {
                    tracing::debug!(code = %e.code, "node failed");
                }
                (i, result, trace, t0, at)
            }
            .instrument(span);
            running.push(Box::pin(fut));
        }
        if failure.is_some() {
            break;
        }
        // One node in flight (a chain, the common case): await it directly. Going through
        // `FuturesUnordered` adds a wake-up hop per I/O event, measured at ~25 µs per request
        // on loopback (docs/benchmarks.md); nothing else can start until it ends anyway.
        let next = match running.len() {
            1 => match running.iter_mut().next() {
                Some(only) => {
                    let out = only.await;
                    running.clear();
                    Some(out)
                }
                None => None,
            },
            _ => running.next().await,
        };
        let Some((i, result, trace, t0, at)) = next else { break };
        let node = &plan.nodes[i];
        let rec = &mut records[i];
        finish_record(rec, &trace, t0, at);
        match &result {
            Ok(_) => tracing::debug!(node = %node.id, ms = rec.duration_ms, "node succeeded"),
            Err(e) => tracing::info!(node = %node.id, code = %e.code, error = %e.message, "node failed"),
        }
        let p = node_path(i);
        match result {
            Ok(out) => {
                rec.status = NodeStatus::Succeeded;
                let value = Arc::new(out.value);
                rec.result = Some(value.clone());
                states[i] = State::Done { value, branch: out.branch };
            }
            Err(e) => {
                rec.status = NodeStatus::Failed;
                rec.error = Some(e.clone());
                if node.on_error == OnError::Continue {
                    let value = Arc::new(e.as_result());
                    rec.result = Some(value.clone());
                    states[i] = State::Done { value, branch: None };
                } else {
                    states[i] = State::Failed;
                    failure =
                        Some(RunFailure { node: node.id.clone(), code: e.code.clone(), message: e.message.clone() });
                }
            }
        }
        let message = rec.error.as_ref().map(|e| e.message.as_str());
        runner.observer.event(&Event::Finished {
            path: &p,
            status: rec.status,
            duration_ms: rec.duration_ms.unwrap_or_default(),
            message,
        });
        if failure.is_some() {
            break;
        }
        release(plan, i, &mut states, &mut ready);
    }
    // Dropping the set drops every node still running: their requests are cancelled.
    drop(running);
    for (i, s) in states.iter().enumerate() {
        if matches!(s, State::Running) {
            records[i].status = NodeStatus::Cancelled;
        }
    }
    let outputs = if failure.is_none() { outputs(flow, &base, &states, &ids, &mut failure) } else { Map::new() };
    RunRecord {
        flow: flow.id().to_owned(),
        status: if failure.is_some() { RunStatus::Failed } else { RunStatus::Succeeded },
        error: failure,
        inputs: (*base.inputs).clone(),
        vars: (*base.vars).clone(),
        outputs,
        started_at,
        ended_at: now_ms(),
        nodes: records,
    }
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
    }
}

/// Marks `i` finished for the nodes waiting on it; those with nothing left to wait for are ready.
fn release(plan: &crate::Plan, i: usize, states: &mut [State], ready: &mut Vec<usize>) {
    for (d, _) in plan.dependents(i) {
        if let State::Waiting(n) = &mut states[d] {
            *n -= 1;
            if *n == 0 {
                ready.push(d);
            }
        }
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
fn outputs(
    flow: &Flow,
    base: &Env,
    states: &[State],
    ids: &HashMap<&str, usize>,
    failure: &mut Option<RunFailure>,
) -> Map<String, Value> {
    let all: Vec<(Arc<str>, Arc<Value>)> = flow
        .plan
        .nodes
        .iter()
        .zip(states)
        .filter_map(|(n, s)| match s {
            State::Done { value, .. } => Some((Arc::from(n.id.as_str()), value.clone())),
            _ => None,
        })
        .collect();
    let env = Env { inputs: base.inputs.clone(), vars: base.vars.clone(), nodes: all };
    let mut out = Map::new();
    for o in &flow.outputs {
        let skipped = o.value.refs.iter().filter(|r| !r.soft).any(|r| {
            r.path[0] == "nodes"
                && r.path
                    .get(1)
                    .and_then(|id| ids.get(id.as_str()))
                    .is_some_and(|&i| !matches!(states[i], State::Done { .. }))
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
