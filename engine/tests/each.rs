//! A subflow per item of a list (`NodeCx::each`, the run side of `for_each`), tested with fake
//! node kinds on tokio's paused clock, as `scheduler.rs` tests the scheduler: the concurrency
//! bound, results in the list's order, stopping at the first failure (items in flight finish)
//! or running every item, each item journaled at `<node>[<index>]`, and a resumed run that
//! runs no finished item again.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use flowcat_engine::Catalog;
use flowcat_engine::diag::Source;
use flowcat_engine::journal::{Finished, JournalError, NodePast, Past, RunLog, path_key};
use flowcat_engine::kind::{
    Call, CompileCx, Compiled, Effect, Extra, IntegrationKind, NodeExec, NodeKind, Reconciled, Registry,
};
use flowcat_engine::run::{
    BoxFuture, Durable, Each, Event, Items, NodeCx, NodeError, NodeOutput, NodeStatus, Observer, Options, RunRecord,
    RunRequest, RunStatus, Runner,
};
use flowcat_engine::shape::{Field, Shape};
use flowcat_engine::template::ValueTemplate;
use serde_json::{Map, Value, json};
use tokio::time::Instant;

// ---------------------------------------------------------------------------------------------
// Fake node kinds

/// `work`: a write that waits `ms` (rendered) and answers `{v: value}`, or fails when `fail`
/// renders true.
#[derive(Debug)]
struct Work;

const WORK_FIELDS: &[Field] = &[
    Field::required("ms", Shape::Template, "how long it takes"),
    Field::required("value", Shape::Value, "its result"),
    Field::optional("fail", Shape::Template, "fails when true"),
];

#[derive(Debug)]
struct WorkExec {
    ms: flowcat_engine::template::Template,
    value: ValueTemplate,
    fail: Option<flowcat_engine::template::Template>,
}

impl NodeKind for Work {
    fn name(&self) -> &'static str {
        "work"
    }
    fn summary(&self) -> &'static str {
        "a fake write"
    }
    fn fields(&self) -> &'static [Field] {
        WORK_FIELDS
    }
    fn compile(&self, cx: &mut CompileCx<'_>) -> Option<Compiled> {
        let ms = cx.template("ms")?;
        let value = cx.value("value")?;
        let fail = cx.get("fail").and_then(|_| cx.template("fail"));
        Some(Compiled::new(Box::new(WorkExec { ms, value, fail }), vec!["v".into()]))
    }
}

impl NodeExec for WorkExec {
    fn label(&self) -> String {
        "work".into()
    }
    fn describe(&self) -> Value {
        Value::Null
    }
    fn effect(&self) -> Effect {
        Effect::Write
    }
    fn run<'a>(&'a self, cx: NodeCx<'a>) -> BoxFuture<'a, Result<NodeOutput, NodeError>> {
        Box::pin(async move {
            cx.intent(&json!({ "method": "POST" })).await?;
            let ms = cx.render(&self.ms)?.as_u64().unwrap_or(0);
            tokio::time::sleep(Duration::from_millis(ms)).await;
            if let Some(f) = &self.fail {
                if flowcat_engine::render::truthy(&cx.render(f)?) {
                    return Err(NodeError::new("boom", "it failed on purpose"));
                }
            }
            Ok(NodeOutput::value(json!({ "v": cx.render_value(&self.value)? })))
        })
    }
    fn reconcile<'a>(&'a self, _: NodeCx<'a>, _: &'a Value) -> BoxFuture<'a, Reconciled> {
        Box::pin(async { Reconciled::Undeclared })
    }
}

/// `each`: runs `flow` per item of `items`, its `with:` reading `item` and `index`.
#[derive(Debug)]
struct EachKind;

const EACH_FIELDS: &[Field] = &[
    Field::required("flow", Shape::Str, "the flow"),
    Field::required("items", Shape::Value, "the list"),
    Field::optional("with", Shape::Map(&Shape::Value), "its inputs per item"),
    Field::optional("concurrency", Shape::Int, "items at once"),
    Field::optional("keep_going", Shape::Bool, "run every item whatever fails"),
];

#[derive(Debug)]
struct EachExec {
    flow: String,
    items: ValueTemplate,
    with: Vec<(String, ValueTemplate)>,
    concurrency: usize,
    stop_at_failure: bool,
}

impl NodeKind for EachKind {
    fn name(&self) -> &'static str {
        "each"
    }
    fn summary(&self) -> &'static str {
        "a fake for_each"
    }
    fn fields(&self) -> &'static [Field] {
        EACH_FIELDS
    }
    fn compile(&self, cx: &mut CompileCx<'_>) -> Option<Compiled> {
        let flow_node = cx.get("flow")?;
        let flow = flow_node.as_str()?.to_owned();
        let items = cx.value("items")?;
        let mut with = Vec::new();
        for (k, v) in cx.get("with").and_then(|w| w.as_map()).unwrap_or_default() {
            with.push((k.as_str()?.to_owned(), cx.value_reading(v, Extra::Item)?));
        }
        let concurrency = cx.str("concurrency").and_then(|s| s.parse().ok()).unwrap_or(4);
        let stop_at_failure = cx.str("keep_going") != Some("true");
        let exec = EachExec { flow: flow.clone(), items, with, concurrency, stop_at_failure };
        let mut c = Compiled::new(Box::new(exec), vec!["results".into(), "first_failure".into()]);
        c.calls = Some(Call { flow, span: flow_node.span });
        Some(c)
    }
}

impl NodeExec for EachExec {
    fn label(&self) -> String {
        "each".into()
    }
    fn describe(&self) -> Value {
        Value::Null
    }
    fn effect(&self) -> Effect {
        Effect::Composite
    }
    fn run<'a>(&'a self, cx: NodeCx<'a>) -> BoxFuture<'a, Result<NodeOutput, NodeError>> {
        Box::pin(async move {
            let Value::Array(list) = cx.render_value(&self.items)? else {
                return Err(NodeError::new("not_a_list", "not a list"));
            };
            let inputs = list
                .iter()
                .enumerate()
                .map(|(i, item)| {
                    let mut m = Map::new();
                    for (k, v) in &self.with {
                        m.insert(k.clone(), cx.render_value_for_item(v, item, i)?);
                    }
                    Ok(m)
                })
                .collect();
            let each = Each {
                flow: &self.flow,
                bindings: &[],
                concurrency: self.concurrency,
                stop_at_failure: self.stop_at_failure,
            };
            let Items { outcomes, first_failure } = cx.each(each, inputs).await?;
            if let (true, Some(i)) = (self.stop_at_failure, first_failure) {
                return Err(NodeError::new("item_failed", format!("item {i} failed")));
            }
            let results: Vec<Value> = outcomes
                .iter()
                .map(
                    |o| json!({ "status": o.status, "outputs": o.outputs, "error": o.error.as_ref().map(|e| &e.code) }),
                )
                .collect();
            Ok(NodeOutput::value(json!({ "results": results, "first_failure": first_failure })))
        })
    }
}

static REGISTRY: Registry =
    Registry { kinds: &[&Work, &EachKind], integration_kinds: &[IntegrationKind { name: "http", doc: "none" }] };

// ---------------------------------------------------------------------------------------------
// A journal in memory, and an observer

#[derive(Default)]
struct MemLog {
    past: Mutex<Past>,
}

impl MemLog {
    fn finished_keys(&self) -> Vec<String> {
        let past = self.past.lock().unwrap();
        let mut keys: Vec<String> =
            past.nodes.iter().filter(|(_, n)| n.finished.is_some()).map(|(k, _)| k.clone()).collect();
        keys.sort();
        keys
    }
}

impl RunLog for MemLog {
    fn started(&self, path: &[String], at_ms: u64) {
        self.past.lock().unwrap().nodes.entry(path_key(path)).or_default().started_at = Some(at_ms);
    }
    fn intent<'a>(&'a self, path: &'a [String], request: &'a Value) -> BoxFuture<'a, Result<(), JournalError>> {
        Box::pin(async move {
            self.past.lock().unwrap().nodes.entry(path_key(path)).or_default().intent = Some(request.clone());
            Ok(())
        })
    }
    fn noted(&self, path: &[String], node: Finished) {
        self.past.lock().unwrap().nodes.entry(path_key(path)).or_default().finished = Some(node);
    }
    fn finished<'a>(&'a self, path: &'a [String], node: &'a Finished) -> BoxFuture<'a, Result<(), JournalError>> {
        Box::pin(async move {
            self.noted(path, node.clone());
            Ok(())
        })
    }
}

/// `start:PATH@ms` for every node and item started, the time on the paused clock since `t0`.
struct Starts {
    t0: Instant,
    lines: Mutex<Vec<String>>,
}

impl Starts {
    fn new() -> Arc<Self> {
        Arc::new(Starts { t0: Instant::now(), lines: Mutex::default() })
    }
    fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.lines.lock().unwrap())
    }
}

impl Observer for Starts {
    fn event(&self, event: &Event<'_>) {
        if let Event::Started { path, .. } = event {
            let key = path_key(path);
            if key.ends_with("/work") {
                let ms = self.t0.elapsed().as_millis();
                self.lines.lock().unwrap().push(format!("{key}@{ms}"));
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Flows

/// One item: `work` waits `ms` and fails when `fail` is true.
const ITEM: &str = r##"
id: t.item
inputs:
  ms: { type: number }
  n: { type: number }
  fail: { type: boolean, default: false }
nodes:
  - { id: work, kind: work, ms: "{{inputs.ms}}", value: "#{{inputs.n}}", fail: "{{inputs.fail}}" }
outputs:
  v: "{{nodes.work.v}}"
"##;

fn list_flow(items: &Value, extra: &str) -> String {
    format!(
        r#"
id: t.list
nodes:
  - id: all
    kind: each
    flow: t.item
    items: {items}
    with: {{ ms: "{{{{item.ms}}}}", fail: "{{{{item.fail}}}}", n: "{{{{index}}}}" }}
    {extra}
outputs:
  results: "{{{{nodes.all.results}}}}"
"#
    )
}

fn runner(files: &[&str], observer: Arc<Starts>) -> Runner {
    let sources = files
        .iter()
        .enumerate()
        .map(|(i, t)| Arc::new(Source { path: format!("f{i}.yaml"), text: (*t).into() }))
        .collect();
    let catalog = Catalog::load(sources, &REGISTRY);
    let problems: Vec<String> = catalog.diagnostics().filter(|d| d.is_error()).map(|d| d.render(false)).collect();
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    Runner::new(Arc::new(catalog), Options::default(), observer)
}

async fn run(r: &Runner, durable: Durable) -> RunRecord {
    r.run(RunRequest { flow: "t.list".into(), durable, ..RunRequest::default() }).await.unwrap()
}

fn items(ms: &[u64], failing: &[usize]) -> Value {
    ms.iter().enumerate().map(|(i, ms)| json!({ "ms": ms, "fail": failing.contains(&i) })).collect()
}

// ---------------------------------------------------------------------------------------------
// Tests

#[tokio::test(start_paused = true)]
async fn items_run_a_bounded_number_at_a_time_and_their_results_keep_the_lists_order() {
    let starts = Starts::new();
    let flow = list_flow(&items(&[300, 100, 200, 100, 100], &[]), "concurrency: 2");
    let r = runner(&[&flow, ITEM], starts.clone());
    let t0 = Instant::now();
    let rec = run(&r, Durable::default()).await;
    assert_eq!(rec.status, RunStatus::Succeeded);
    // Two at a time: [0] 0-300, [1] 0-100, [2] 100-300, [3] 300-400, [4] 300-400.
    assert_eq!(t0.elapsed(), Duration::from_millis(400));
    assert_eq!(
        starts.take(),
        ["all[0]/work@0", "all[1]/work@0", "all[2]/work@100", "all[3]/work@300", "all[4]/work@300"]
    );
    let vs: Vec<&Value> = rec.outputs["results"].as_array().unwrap().iter().map(|r| &r["outputs"]["v"]).collect();
    assert_eq!(vs, ["#0", "#1", "#2", "#3", "#4"], "in the list's order, not the order they ended");
    let node = rec.node("all").unwrap();
    let nested: Vec<usize> = node.items.iter().map(|i| i.index).collect();
    assert_eq!(nested, [0, 1, 2, 3, 4], "every item's own run is nested in the record");
    assert!(node.items.iter().all(|i| i.record.status == RunStatus::Succeeded));
}

#[tokio::test(start_paused = true)]
async fn the_first_failure_starts_no_other_item_and_lets_those_in_flight_finish() {
    let starts = Starts::new();
    let flow = list_flow(&items(&[500, 100, 100, 100], &[1]), "concurrency: 2");
    let r = runner(&[&flow, ITEM], starts.clone());
    let journal = Arc::new(MemLog::default());
    let t0 = Instant::now();
    let rec = run(&r, Durable { journal: Some(journal.clone()), ..Durable::default() }).await;
    assert_eq!(rec.status, RunStatus::Failed);
    let err = rec.error.as_ref().unwrap();
    assert_eq!((err.node.as_str(), err.code.as_str(), err.message.as_str()), ("all", "item_failed", "item 1 failed"));
    assert_eq!(starts.take(), ["all[0]/work@0", "all[1]/work@0"], "items 2 and 3 never start");
    assert_eq!(t0.elapsed(), Duration::from_millis(500), "item 0, in flight, finished");
    let node = rec.node("all").unwrap();
    assert_eq!(node.items[0].record.status, RunStatus::Succeeded);
    assert_eq!(node.items[1].record.status, RunStatus::Failed);
    assert_eq!(journal.finished_keys(), ["all[0]", "all[0]/work", "all[1]"], "both ended items are journaled");
}

#[tokio::test(start_paused = true)]
async fn keep_going_runs_every_item_and_reports_each_failure_in_place() {
    let starts = Starts::new();
    let flow = list_flow(&items(&[100, 100, 100, 100], &[0, 2]), "keep_going: true");
    let r = runner(&[&flow, ITEM], starts.clone());
    let rec = run(&r, Durable::default()).await;
    assert_eq!(rec.status, RunStatus::Succeeded);
    assert_eq!(starts.take().len(), 4);
    let results = rec.outputs["results"].as_array().unwrap();
    let statuses: Vec<&Value> = results.iter().map(|r| &r["status"]).collect();
    assert_eq!(statuses, ["failed", "succeeded", "failed", "succeeded"]);
    assert_eq!(results[0]["error"], "boom");
    assert_eq!(results[1]["outputs"]["v"], "#1");
}

#[tokio::test(start_paused = true)]
async fn a_resumed_run_runs_no_finished_item_again() {
    let starts = Starts::new();
    let flow = list_flow(&items(&[100, 100, 100, 100], &[]), "concurrency: 1");
    let r = runner(&[&flow, ITEM], starts.clone());
    let journal = Arc::new(MemLog::default());
    let golden = run(&r, Durable { journal: Some(journal.clone()), ..Durable::default() }).await;
    assert_eq!(golden.status, RunStatus::Succeeded);
    starts.take();

    // The process died while item 2 ran and item 1's entry was not yet durable, though its
    // node's was: items 0 is restored, item 1 runs again with its node restored, items 2 and
    // 3 run.
    let mut past = journal.past.lock().unwrap().clone();
    for key in ["all", "all[1]", "all[2]", "all[2]/work", "all[3]", "all[3]/work"] {
        past.nodes.remove(key);
    }
    let rec = run(&r, Durable { past: Arc::new(past), ..Durable::default() }).await;
    assert_eq!(rec.status, RunStatus::Succeeded);
    let started: Vec<String> = starts.take().into_iter().map(|s| s.split('@').next().unwrap().to_owned()).collect();
    assert_eq!(started, ["all[2]/work", "all[3]/work"], "nothing that finished is run again");
    assert_eq!(rec.outputs, golden.outputs, "restored items give the same results");
}

#[tokio::test(start_paused = true)]
async fn a_write_in_doubt_inside_an_item_stops_the_whole_run_for_attention() {
    let starts = Starts::new();
    let flow = list_flow(&items(&[100, 100, 100], &[]), "concurrency: 1");
    let r = runner(&[&flow, ITEM], starts.clone());
    let in_doubt = NodePast { started_at: Some(5), intent: Some(json!({ "method": "POST" })), finished: None };
    let past = Past { nodes: HashMap::from([("all[1]/work".to_owned(), in_doubt)]) };
    let rec = run(&r, Durable { past: Arc::new(past), ..Durable::default() }).await;
    assert_eq!(rec.status, RunStatus::NeedsAttention);
    assert_eq!(rec.node("all").unwrap().status, NodeStatus::Cancelled);
    // Item 1's write is taken up (to be reconciled), not sent; item 2 never starts.
    assert_eq!(starts.take(), ["all[0]/work@0", "all[1]/work@100"]);
    let item = rec.node("all").unwrap().items.iter().find(|i| i.index == 1).expect("item 1's record");
    assert_eq!(item.record.status, RunStatus::NeedsAttention);
    assert_eq!(item.record.node("work").unwrap().status, NodeStatus::Unknown, "not sent again");
    assert_eq!(rec.error.as_ref().map(|e| e.code.as_str()), Some("outcome_unknown"));
}

#[tokio::test(start_paused = true)]
async fn item_and_index_are_readable_only_in_with() {
    let bad = r#"
id: t.bad
nodes:
  - { id: all, kind: each, flow: t.item, items: "{{index}}", with: { ms: 1, n: "{{item.n}}" } }
"#;
    let sources = vec![
        Arc::new(Source { path: "bad.yaml".into(), text: bad.into() }),
        Arc::new(Source { path: "item.yaml".into(), text: ITEM.into() }),
    ];
    let catalog = Catalog::load(sources, &REGISTRY);
    let errors: Vec<String> = catalog.diagnostics().filter(|d| d.is_error()).map(|d| d.render(false)).collect();
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert!(errors[0].contains("a template cannot read `index`"), "{}", errors[0]);
    assert!(errors[0].contains("bad.yaml:4:"), "{}", errors[0]);
}
