//! One subflow per item of a list, a bounded number at a time: the run side of a node that
//! loops (the `for_each` kind renders each item's inputs and calls [`NodeCx::each`]).
//!
//! Each item runs as a subflow at its own path, the node's id followed by the item's index
//! (`remove_all[3]`), so its nodes are journaled as `remove_all[3]/delete`, and the item itself
//! is journaled at `remove_all[3]` once it finished. A resumed run restores a finished item
//! without running it again; an item that was in flight runs again, its own finished nodes
//! restored from their paths, as any subflow's are (docs/architecture.md, "The journal").

use std::collections::HashMap;
use std::sync::Arc;

use futures_util::StreamExt as _;
use futures_util::stream::FuturesUnordered;
use serde_json::{Map, Value};

use super::log::{Finished, path_key};
use super::record::{ItemRecord, MAX_ITEM_RECORDS, NodeError, NodeRecord, NodeStatus, RunRecord, RunStatus, now_ms};
use super::{Binding, BoxFuture, Event, NodeCx};

/// How to run a list: which flow, through which slots, how many items at once, and whether
/// the first failure stops it.
#[derive(Clone, Copy, Debug)]
pub struct Each<'a> {
    pub flow: &'a str,
    /// Callee slot → caller slot, as for a subflow.
    pub bindings: &'a [(String, String)],
    /// Items running at once; at least 1.
    pub concurrency: usize,
    /// After the first item fails, start no other (those in flight finish).
    pub stop_at_failure: bool,
}

/// What became of one item.
#[derive(Clone, Debug, PartialEq)]
pub struct ItemOutcome {
    /// `Succeeded`, `Failed`, or `Pending` (never started: an earlier failure stopped the list).
    pub status: NodeStatus,
    /// The subflow's outputs, when it succeeded.
    pub outputs: Option<Map<String, Value>>,
    pub error: Option<NodeError>,
}

impl ItemOutcome {
    fn pending() -> Self {
        ItemOutcome { status: NodeStatus::Pending, outputs: None, error: None }
    }

    fn failed(error: NodeError) -> Self {
        ItemOutcome { status: NodeStatus::Failed, outputs: None, error: Some(error) }
    }

    /// The result journaled for the item, and read back on resume.
    fn result(&self) -> Value {
        match (&self.outputs, &self.error) {
            (Some(o), _) => Value::Object(o.clone()),
            (None, Some(e)) => e.as_result(),
            (None, None) => Value::Null,
        }
    }

    /// An item the journal says finished in an earlier process.
    fn restored(done: &Finished) -> Self {
        let rec = &done.record;
        let outputs = match (rec.status, rec.result.as_deref()) {
            (NodeStatus::Succeeded, Some(Value::Object(o))) => Some(o.clone()),
            _ => None,
        };
        ItemOutcome { status: rec.status, outputs, error: rec.error.clone() }
    }
}

/// Every item's outcome, in the list's order.
#[derive(Clone, Debug, PartialEq)]
pub struct Items {
    pub outcomes: Vec<ItemOutcome>,
    /// The item whose failure stopped the list (with `stop_at_failure`): the first to fail.
    pub first_failure: Option<usize>,
}

/// An item's subflow ended: its index, path and run (or why it could not start).
type ItemEnded = (usize, Arc<[String]>, Result<RunRecord, NodeError>, u64);

/// A list being run: where each item stands.
struct List {
    inputs: Vec<Option<Result<Map<String, Value>, NodeError>>>,
    outcomes: Vec<ItemOutcome>,
    /// The items' own runs, for the record.
    records: Vec<ItemRecord>,
    /// The next item to start.
    next: usize,
    first_failure: Option<usize>,
    /// An item's run was stopped: no other starts, and the node stops the run.
    stopped: Option<NodeError>,
}

impl List {
    fn new(inputs: Vec<Result<Map<String, Value>, NodeError>>) -> Self {
        let outcomes = (0..inputs.len()).map(|_| ItemOutcome::pending()).collect();
        let inputs = inputs.into_iter().map(Some).collect();
        List { inputs, outcomes, records: Vec::new(), next: 0, first_failure: None, stopped: None }
    }

    /// No other item may start.
    fn halted(&self, each: Each<'_>) -> bool {
        self.stopped.is_some() || (each.stop_at_failure && self.first_failure.is_some())
    }

    fn failed(&mut self, i: usize, error: NodeError) {
        self.outcomes[i] = ItemOutcome::failed(error);
        self.first_failure.get_or_insert(i);
    }

    /// Item `i`'s inputs to run it with; `None` when it is settled without running: restored
    /// from the journal, or failed because its inputs could not be rendered.
    fn take_or_settle(&mut self, cx: &NodeCx<'_>, i: usize) -> Option<Map<String, Value>> {
        let path = cx.item_path(i);
        if let Some(done) = cx.sub.finished(&path_key(&path)) {
            self.outcomes[i] = ItemOutcome::restored(done);
            cx.sub.observer().event(&Event::Restored { path: &path, status: self.outcomes[i].status });
            if self.outcomes[i].status == NodeStatus::Failed {
                self.first_failure.get_or_insert(i);
            }
            return None;
        }
        match self.inputs[i].take()? {
            Ok(inputs) => Some(inputs),
            Err(e) => {
                cx.sub.observer().event(&Event::Started { path: &path, kind: ITEM_KIND });
                self.failed(i, e);
                cx.item_finished(&path, &self.outcomes[i], now_ms());
                None
            }
        }
    }

    /// An item's subflow ended: its outcome, journaled unless its run was stopped.
    fn ended(&mut self, cx: &NodeCx<'_>, each: Each<'_>, (i, path, ran, at): ItemEnded) {
        let record = match ran {
            Ok(record) => record,
            Err(e) => {
                self.failed(i, e);
                cx.item_finished(&path, &self.outcomes[i], at);
                return;
            }
        };
        match (record.status, &record.error) {
            (RunStatus::Succeeded, _) => {
                let outputs = Some(record.outputs.clone());
                self.outcomes[i] = ItemOutcome { status: NodeStatus::Succeeded, outputs, error: None };
            }
            (RunStatus::Interrupted | RunStatus::NeedsAttention, failure) => {
                // Not finished: not journaled, so that a resumed run takes it up again.
                let why =
                    failure.as_ref().map_or_else(String::new, |f| format!(" at node `{}`: {}", f.node, f.message));
                let code = failure.as_ref().map_or("interrupted", |f| f.code.as_str());
                let e = NodeError::new(code, format!("item {i} (subflow `{}`) stopped{why}", each.flow));
                self.stopped.get_or_insert(e);
                // Kept whatever its index: the scheduler reads from it why the run stops.
                self.records.push(ItemRecord { index: i, record });
                return;
            }
            (RunStatus::Failed, failure) => {
                let e = match failure {
                    Some(f) => NodeError::new(
                        f.code.clone(),
                        format!("subflow `{}` failed at node `{}`: {}", each.flow, f.node, f.message),
                    ),
                    None => NodeError::new("failed", format!("subflow `{}` failed", each.flow)),
                };
                self.failed(i, e);
            }
        }
        cx.item_finished(&path, &self.outcomes[i], at);
        if i < MAX_ITEM_RECORDS {
            self.records.push(ItemRecord { index: i, record });
        }
    }
}

impl NodeCx<'_> {
    /// Runs `each.flow` once per item, `inputs[i]` being item `i`'s inputs (an `Err` is that
    /// item's failure: its inputs could not be rendered). At most `each.concurrency` items run
    /// at once, in the list's order. `Err` only when an item's run was stopped (a stop request,
    /// a write that needs attention): the scheduler then stops the whole run the same way.
    pub async fn each(
        &self,
        each: Each<'_>,
        inputs: Vec<Result<Map<String, Value>, NodeError>>,
    ) -> Result<Items, NodeError> {
        let mut list = List::new(inputs);
        let mut running: FuturesUnordered<BoxFuture<'_, ItemEnded>> = FuturesUnordered::new();
        loop {
            while !list.halted(each) && running.len() < each.concurrency.max(1) && list.next < list.outcomes.len() {
                let i = list.next;
                list.next += 1;
                if let Some(item_inputs) = list.take_or_settle(self, i) {
                    running.push(self.run_item(each, i, self.item_path(i), item_inputs));
                }
            }
            let Some(ended) = running.next().await else { break };
            list.ended(self, each, ended);
        }
        list.records.sort_by_key(|r| r.index);
        if let Ok(mut t) = self.trace.lock() {
            t.items = std::mem::take(&mut list.records);
        }
        match list.stopped {
            Some(e) => Err(e),
            None => Ok(Items { outcomes: list.outcomes, first_failure: list.first_failure }),
        }
    }

    /// Item `i`'s path: the node's, its last id followed by `[i]`.
    fn item_path(&self, i: usize) -> Arc<[String]> {
        let mut p = self.path.to_vec();
        if let Some(last) = p.last_mut() {
            *last = format!("{last}[{i}]");
        }
        Arc::from(p)
    }

    fn run_item<'b>(
        &'b self,
        each: Each<'b>,
        i: usize,
        path: Arc<[String]>,
        inputs: Map<String, Value>,
    ) -> BoxFuture<'b, ItemEnded> {
        let bound: HashMap<String, Arc<Binding>> = each
            .bindings
            .iter()
            .filter_map(|(callee, caller)| Some((callee.clone(), self.bindings.get(caller)?.clone())))
            .collect();
        self.sub.observer().event(&Event::Started { path: &path, kind: ITEM_KIND });
        let at = now_ms();
        Box::pin(async move {
            let ran =
                self.sub.run_subflow(each.flow, inputs, bound, self.depth + 1, path.clone()).await.map_err(|e| {
                    NodeError::new(e.code, format!("subflow `{}` could not start: {}", each.flow, e.message))
                });
            (i, path, ran, at)
        })
    }

    /// An item finished: told to observers and journaled under its path (not awaited: its own
    /// writes are durable already; lost in a crash, the item runs again and restores them).
    fn item_finished(&self, path: &[String], outcome: &ItemOutcome, at: u64) {
        let ended = now_ms();
        self.sub.observer().event(&Event::Finished {
            path,
            kind: ITEM_KIND,
            status: outcome.status,
            duration_ms: ended.saturating_sub(at) as f64,
            message: outcome.error.as_ref().map(|e| e.message.as_str()),
        });
        let Some(journal) = &self.journal else { return };
        let record = NodeRecord {
            id: path.last().cloned().unwrap_or_default(),
            kind: ITEM_KIND.to_owned(),
            status: outcome.status,
            reason: None,
            started_at: Some(at),
            ended_at: Some(ended),
            duration_ms: Some(ended.saturating_sub(at) as f64),
            attempts: 1,
            result: Some(Arc::new(outcome.result())),
            error: outcome.error.clone(),
            detail: None,
            subflow: None,
            items: Vec::new(),
        };
        journal.noted(path, Finished { record, branch: None });
    }
}

/// The kind an item's journal entry and events carry.
const ITEM_KIND: &str = "item";
