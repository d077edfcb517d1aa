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
        let n = inputs.len();
        let mut inputs: Vec<Option<Result<Map<String, Value>, NodeError>>> = inputs.into_iter().map(Some).collect();
        let mut outcomes: Vec<ItemOutcome> = (0..n).map(|_| ItemOutcome::pending()).collect();
        let mut records: Vec<ItemRecord> = Vec::new();
        let mut first_failure = None;
        let mut stopped: Option<NodeError> = None;
        let mut running: FuturesUnordered<BoxFuture<'_, ItemEnded>> = FuturesUnordered::new();
        let mut next = 0;
        loop {
            let halted = stopped.is_some() || (each.stop_at_failure && first_failure.is_some());
            while !halted && running.len() < each.concurrency.max(1) && next < n {
                let i = next;
                next += 1;
                let path = self.item_path(i);
                if let Some(done) = self.sub.finished(&path_key(&path)) {
                    outcomes[i] = ItemOutcome::restored(done);
                    self.sub.observer().event(&Event::Restored { path: &path, status: outcomes[i].status });
                    if outcomes[i].status == NodeStatus::Failed {
                        first_failure.get_or_insert(i);
                        if each.stop_at_failure {
                            break;
                        }
                    }
                    continue;
                }
                match inputs[i].take() {
                    Some(Ok(item_inputs)) => running.push(self.run_item(each, i, path, item_inputs)),
                    Some(Err(e)) => {
                        // Its inputs could not be rendered: it fails without running.
                        self.sub.observer().event(&Event::Started { path: &path, kind: ITEM_KIND });
                        outcomes[i] = ItemOutcome::failed(e);
                        self.item_finished(&path, &outcomes[i], now_ms());
                        first_failure.get_or_insert(i);
                        if each.stop_at_failure {
                            break;
                        }
                    }
                    None => {}
                }
            }
            let Some((i, path, ran, at)) = running.next().await else { break };
            let record = match ran {
                Ok(record) => record,
                Err(e) => {
                    outcomes[i] = ItemOutcome::failed(e);
                    self.item_finished(&path, &outcomes[i], at);
                    first_failure.get_or_insert(i);
                    continue;
                }
            };
            match (&record.status, &record.error) {
                (RunStatus::Succeeded, _) => {
                    outcomes[i] = ItemOutcome {
                        status: NodeStatus::Succeeded,
                        outputs: Some(record.outputs.clone()),
                        error: None,
                    };
                    self.item_finished(&path, &outcomes[i], at);
                }
                (RunStatus::Interrupted | RunStatus::NeedsAttention, failure) => {
                    // Not finished: not journaled, so that a resumed run takes it up again.
                    let why =
                        failure.as_ref().map_or_else(String::new, |f| format!(" at node `{}`: {}", f.node, f.message));
                    let code = failure.as_ref().map_or("interrupted", |f| f.code.as_str());
                    let e = NodeError::new(code, format!("item {i} (subflow `{}`) stopped{why}", each.flow));
                    stopped.get_or_insert(e);
                    // Kept whatever its index: the scheduler reads why the run stops from it.
                    records.push(ItemRecord { index: i, record });
                    continue;
                }
                (RunStatus::Failed, failure) => {
                    let (code, message) = failure.as_ref().map_or_else(
                        || ("failed".to_owned(), format!("subflow `{}` failed", each.flow)),
                        |f| {
                            (
                                f.code.clone(),
                                format!("subflow `{}` failed at node `{}`: {}", each.flow, f.node, f.message),
                            )
                        },
                    );
                    outcomes[i] = ItemOutcome::failed(NodeError::new(code, message));
                    self.item_finished(&path, &outcomes[i], at);
                    first_failure.get_or_insert(i);
                }
            }
            if i < MAX_ITEM_RECORDS {
                records.push(ItemRecord { index: i, record });
            }
        }
        records.sort_by_key(|r| r.index);
        if let Ok(mut t) = self.trace.lock() {
            t.items = records;
        }
        match stopped {
            Some(e) => Err(e),
            None => Ok(Items { outcomes, first_failure }),
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
        journal.noted(path, &Finished { record, branch: None });
    }
}

/// The kind an item's journal entry and events carry.
const ITEM_KIND: &str = "item";
