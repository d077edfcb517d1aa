//! The scheduler's rules, tested where they live: fake node kinds (no HTTP, no Duo) on tokio's
//! paused clock, so that "three one-second nodes in parallel take one second" is exact and a
//! test of a long wait takes no time.
//!
//! Covered: parallelism and its bound, the journal's ordering rule (a result is durable before a
//! dependent starts), resume (finished nodes restored, reads re-run, writes in doubt
//! reconciled or stopped for attention), stop requests (drain, abandon), deadlines, failures,
//! a journal that fails, and subflows journaled under their own paths.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use flowcat_engine::Catalog;
use flowcat_engine::diag::Source;
use flowcat_engine::journal::{Finished, JournalError, NodePast, Past, RunLog, path_key};
use flowcat_engine::kind::{
    Call, CompileCx, Compiled, Effect, IntegrationKind, NodeExec, NodeKind, Reconciled, Registry,
};
use flowcat_engine::run::{
    BoxFuture, Durable, Event, NodeCx, NodeError, NodeOutput, NodeStatus, Observer, Options, RunRecord, RunRequest,
    RunStatus, Runner, StopLevel, stop_signal,
};
use flowcat_engine::shape::{Field, Shape};
use serde_json::{Map, Value, json};
use tokio::time::Instant;

// ---------------------------------------------------------------------------------------------
// Fake node kinds

thread_local! {
    /// What happened, in order: `run:ID`, `reconcile:ID`, and the journal's `started:PATH`,
    /// `intent:PATH`, `finished:PATH`. Tests run on a current-thread runtime, so one log per test.
    static LOG: RefCell<Vec<String>> = const { RefCell::new(Vec::new()) };
}

fn log(line: String) {
    LOG.with(|l| l.borrow_mut().push(line));
}

fn take_log() -> Vec<String> {
    LOG.with(|l| std::mem::take(&mut *l.borrow_mut()))
}

/// `step`: waits `ms` on the clock, then answers `value` (or fails with `fails`), taking
/// `branch`. Its `effect` is declared; a `write` journals its intent first. `reconcile` says
/// what a reconcile read would find.
#[derive(Debug)]
struct Step;

const EFFECTS: &[&str] = &["local", "read", "idempotent", "write"];
const FOUND: &[&str] = &["done", "not_done", "failed"];
const STEP_FIELDS: &[Field] = &[
    Field::optional("ms", Shape::Int, "how long it takes"),
    Field::optional("value", Shape::Value, "its result"),
    Field::optional("fails", Shape::Str, "fail with this code"),
    Field::optional("branch", Shape::Str, "the branch it takes"),
    Field::optional("effect", Shape::Enum(EFFECTS), "its effect"),
    Field::optional("reconcile", Shape::Enum(FOUND), "what a reconcile read finds"),
];

#[derive(Debug)]
struct StepExec {
    ms: u64,
    value: Option<flowcat_engine::template::ValueTemplate>,
    fails: Option<String>,
    branch: Option<String>,
    effect: Effect,
    reconcile: Option<String>,
}

impl NodeKind for Step {
    fn name(&self) -> &'static str {
        "step"
    }
    fn summary(&self) -> &'static str {
        "a fake step"
    }
    fn fields(&self) -> &'static [Field] {
        STEP_FIELDS
    }
    fn compile(&self, cx: &mut CompileCx<'_>) -> Option<Compiled> {
        let ms = cx.str("ms").and_then(|s| s.parse().ok()).unwrap_or(0);
        let value = cx.get("value").and_then(|v| cx.value_of(v));
        let effect = match cx.str("effect").unwrap_or("local") {
            "read" => Effect::Read,
            "idempotent" => Effect::Idempotent,
            "write" => Effect::Write,
            _ => Effect::Local,
        };
        let branch = cx.str("branch").map(str::to_owned);
        let c = Compiled::new(
            Box::new(StepExec {
                ms,
                value,
                fails: cx.str("fails").map(str::to_owned),
                branch: branch.clone(),
                effect,
                reconcile: cx.str("reconcile").map(str::to_owned),
            }),
            vec!["v".into()],
        );
        Some(c)
    }
}

impl NodeExec for StepExec {
    fn label(&self) -> String {
        "step".into()
    }
    fn describe(&self) -> Value {
        Value::Null
    }
    fn effect(&self) -> Effect {
        self.effect
    }
    fn run<'a>(&'a self, cx: NodeCx<'a>) -> BoxFuture<'a, Result<NodeOutput, NodeError>> {
        Box::pin(async move {
            if self.effect == Effect::Write {
                cx.intent(&json!({ "method": "POST", "node": cx.id })).await?;
            }
            log(format!("run:{}", cx.id));
            if let Some(first) = cx.first_started_at() {
                log(format!("first_started:{}:{first}", cx.id));
            }
            tokio::time::sleep(Duration::from_millis(self.ms)).await;
            if let Some(code) = &self.fails {
                return Err(NodeError::new(code.clone(), format!("{} failed on purpose", cx.id)));
            }
            let v = match &self.value {
                Some(t) => cx.render_value(t)?,
                None => Value::String(cx.id.to_owned()),
            };
            Ok(NodeOutput { value: json!({ "v": v }), branch: self.branch.clone() })
        })
    }
    fn reconciles(&self) -> bool {
        self.reconcile.is_some()
    }
    fn reconcile<'a>(&'a self, cx: NodeCx<'a>, intent: &'a Value) -> BoxFuture<'a, Reconciled> {
        Box::pin(async move {
            log(format!("reconcile:{}:{}", cx.id, intent["node"].as_str().unwrap_or("?")));
            match self.reconcile.as_deref() {
                Some("done") => Reconciled::Done(NodeOutput::value(json!({ "v": "reconciled" }))),
                Some("not_done") => Reconciled::NotDone,
                Some(_) => Reconciled::Failed(NodeError::new("http_500", "the read failed")),
                None => Reconciled::Undeclared,
            }
        })
    }
}

/// `call`: runs `flow` as a subflow with `with`.
#[derive(Debug)]
struct CallKind;

const CALL_FIELDS: &[Field] = &[
    Field::required("flow", Shape::Str, "the flow"),
    Field::optional("with", Shape::Map(&Shape::Value), "its inputs"),
];

#[derive(Debug)]
struct CallExec {
    flow: String,
    with: Vec<(String, flowcat_engine::template::ValueTemplate)>,
}

impl NodeKind for CallKind {
    fn name(&self) -> &'static str {
        "call"
    }
    fn summary(&self) -> &'static str {
        "a fake subflow call"
    }
    fn fields(&self) -> &'static [Field] {
        CALL_FIELDS
    }
    fn compile(&self, cx: &mut CompileCx<'_>) -> Option<Compiled> {
        let flow_node = cx.get("flow")?;
        let flow = flow_node.as_str()?.to_owned();
        let mut with = Vec::new();
        for (k, v) in cx.get("with").and_then(|w| w.as_map()).unwrap_or_default() {
            with.push((k.as_str()?.to_owned(), cx.value_of(v)?));
        }
        let out = cx.signature(&flow).map(|s| s.outputs.iter().map(|o| o.name.clone()).collect()).unwrap_or_default();
        let mut c = Compiled::new(Box::new(CallExec { flow: flow.clone(), with }), out);
        c.calls = Some(Call { flow, span: flow_node.span });
        Some(c)
    }
}

impl NodeExec for CallExec {
    fn label(&self) -> String {
        "call".into()
    }
    fn describe(&self) -> Value {
        Value::Null
    }
    fn effect(&self) -> Effect {
        Effect::Composite
    }
    fn run<'a>(&'a self, cx: NodeCx<'a>) -> BoxFuture<'a, Result<NodeOutput, NodeError>> {
        Box::pin(async move {
            let mut inputs = Map::new();
            for (k, v) in &self.with {
                inputs.insert(k.clone(), cx.render_value(v)?);
            }
            let out = cx.subflow(&self.flow, inputs, &[]).await?;
            Ok(NodeOutput::value(Value::Object(out)))
        })
    }
}

static REGISTRY: Registry =
    Registry { kinds: &[&Step, &CallKind], integration_kinds: &[IntegrationKind { name: "http", doc: "none" }] };

// ---------------------------------------------------------------------------------------------
// A journal in memory, and an observer

#[derive(Default)]
struct MemLog {
    past: Mutex<Past>,
    /// `finished` fails from the N-th call on.
    fail_finished_at: Option<usize>,
    finished_calls: Mutex<usize>,
}

impl RunLog for MemLog {
    fn started(&self, path: &[String], at_ms: u64) {
        log(format!("started:{}", path_key(path)));
        self.past.lock().unwrap().nodes.entry(path_key(path)).or_default().started_at = Some(at_ms);
    }
    fn intent<'a>(&'a self, path: &'a [String], request: &'a Value) -> BoxFuture<'a, Result<(), JournalError>> {
        Box::pin(async move {
            log(format!("intent:{}", path_key(path)));
            self.past.lock().unwrap().nodes.entry(path_key(path)).or_default().intent = Some(request.clone());
            Ok(())
        })
    }
    fn noted(&self, path: &[String], node: Finished) {
        log(format!("noted:{}", path_key(path)));
        self.past.lock().unwrap().nodes.entry(path_key(path)).or_default().finished = Some(node);
    }

    fn finished<'a>(&'a self, path: &'a [String], node: &'a Finished) -> BoxFuture<'a, Result<(), JournalError>> {
        Box::pin(async move {
            let n = {
                let mut n = self.finished_calls.lock().unwrap();
                *n += 1;
                *n
            };
            if self.fail_finished_at.is_some_and(|at| n >= at) {
                return Err(JournalError::new("full", "the disk is full"));
            }
            // Durability takes a moment: a dependent must not start meanwhile.
            tokio::time::sleep(Duration::from_millis(1)).await;
            log(format!("finished:{}", path_key(path)));
            self.past.lock().unwrap().nodes.entry(path_key(path)).or_default().finished = Some(node.clone());
            Ok(())
        })
    }
}

#[derive(Default)]
struct Events(Mutex<Vec<String>>);

impl Observer for Events {
    fn event(&self, event: &Event<'_>) {
        let line = match event {
            Event::Restored { path, .. } => format!("restored:{}", path_key(path)),
            Event::Started { path, .. } => format!("start:{}", path_key(path)),
            Event::Finished { path, status, .. } => format!("end:{}:{status:?}", path_key(path)),
            Event::Waiting { .. } | Event::Signal { .. } => return,
        };
        self.0.lock().unwrap().push(line);
    }
}

fn runner(files: &[&str], options: Options, events: Arc<Events>) -> Runner {
    let sources = files
        .iter()
        .enumerate()
        .map(|(i, t)| Arc::new(Source { path: format!("f{i}.yaml"), text: (*t).into() }))
        .collect();
    let catalog = Catalog::load(sources, &REGISTRY);
    let problems: Vec<String> = catalog.diagnostics().filter(|d| d.is_error()).map(|d| d.render(false)).collect();
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    Runner::new(Arc::new(catalog), options, events)
}

fn request(flow: &str, durable: Durable) -> RunRequest {
    RunRequest { flow: flow.into(), durable, ..RunRequest::default() }
}

fn status(rec: &RunRecord, id: &str) -> NodeStatus {
    rec.node(id).unwrap_or_else(|| panic!("no node {id}")).status
}

const DIAMOND: &str = r#"
id: t.diamond
nodes:
  - { id: a, kind: step, ms: 1000, effect: read }
  - { id: b, kind: step, ms: 1000, effect: read, value: "{{nodes.a.v}}-b" }
  - { id: c, kind: step, ms: 1000, effect: write, value: "{{nodes.a.v}}-c" }
  - { id: d, kind: step, ms: 1000, effect: read, value: "{{nodes.b.v}}+{{nodes.c.v}}" }
outputs:
  d: "{{nodes.d.v}}"
"#;

// ---------------------------------------------------------------------------------------------
// Parallelism

#[tokio::test(start_paused = true)]
async fn independent_nodes_overlap_and_max_parallel_bounds_them() {
    const WIDE: &str = r#"
id: t.wide
nodes:
  - { id: a, kind: step, ms: 1000 }
  - { id: b, kind: step, ms: 1000 }
  - { id: c, kind: step, ms: 1000 }
"#;
    let r = runner(&[WIDE], Options::default(), Arc::default());
    let t0 = Instant::now();
    let rec = r.run(request("t.wide", Durable::default())).await.unwrap();
    assert_eq!(rec.status, RunStatus::Succeeded);
    assert_eq!(t0.elapsed(), Duration::from_millis(1000), "three 1 s nodes side by side take 1 s");

    let one = runner(&[WIDE], Options { max_parallel: 1, ..Options::default() }, Arc::default());
    let t0 = Instant::now();
    one.run(request("t.wide", Durable::default())).await.unwrap();
    assert_eq!(t0.elapsed(), Duration::from_millis(3000), "max_parallel 1 runs them one by one");
}

#[tokio::test(start_paused = true)]
async fn a_diamond_runs_its_branches_side_by_side_and_joins() {
    let r = runner(&[DIAMOND], Options::default(), Arc::default());
    let t0 = Instant::now();
    let rec = r.run(request("t.diamond", Durable::default())).await.unwrap();
    assert_eq!(rec.outputs["d"], json!("a-b+a-c"));
    assert_eq!(t0.elapsed(), Duration::from_millis(3000));
}

// ---------------------------------------------------------------------------------------------
// The journal's ordering rule

#[tokio::test(start_paused = true)]
async fn a_result_is_journaled_before_any_node_that_reads_it_starts() {
    take_log();
    let journal = Arc::new(MemLog::default());
    let r = runner(&[DIAMOND], Options::default(), Arc::default());
    let durable = Durable { journal: Some(journal.clone()), ..Durable::default() };
    let rec = r.run(request("t.diamond", durable)).await.unwrap();
    assert_eq!(rec.status, RunStatus::Succeeded);
    let log = take_log();
    let at = |line: &str| log.iter().position(|l| l == line).unwrap_or_else(|| panic!("no {line} in {log:?}"));
    // Reads are noted in order (lost in a crash, they are read again); the write's result is
    // awaited until durable (the fake takes 1 ms) before the node reading it starts.
    assert!(at("noted:a") < at("run:b") && at("noted:a") < at("run:c"), "{log:?}");
    assert!(at("noted:b") < at("run:d") && at("finished:c") < at("run:d"), "{log:?}");
    // A write journals its intent before it is sent (the fake "sends" when it logs `run:`).
    assert!(at("intent:c") < at("run:c"), "{log:?}");
    assert!(!log.contains(&"intent:b".to_owned()), "reads journal no intent: {log:?}");
    let past = journal.past.lock().unwrap();
    assert_eq!(past.nodes.len(), 4);
    assert!(past.nodes.values().all(|n| n.finished.is_some() && n.started_at.is_some()));
}

/// A write whose outcome a read settles (`reconcile:` declared) is not awaited: its result is
/// noted like a read's, and made durable by the run's next intent (or its end); lost in a crash,
/// the write is in doubt and its read settles it. Without `reconcile:` it stays awaited.
#[tokio::test(start_paused = true)]
async fn a_write_settled_by_a_read_has_its_result_noted_and_the_next_intent_makes_it_durable() {
    const CHAIN: &str = r#"
id: t.chain
nodes:
  - { id: w1, kind: step, ms: 10, effect: write, reconcile: done }
  - { id: w2, kind: step, ms: 10, effect: write, value: "{{nodes.w1.v}}" }
  - { id: w3, kind: step, ms: 10, effect: write, value: "{{nodes.w2.v}}" }
outputs:
  v: "{{nodes.w3.v}}"
"#;
    take_log();
    let journal = Arc::new(MemLog::default());
    let r = runner(&[CHAIN], Options::default(), Arc::default());
    let durable = Durable { journal: Some(journal.clone()), ..Durable::default() };
    let rec = r.run(request("t.chain", durable)).await.unwrap();
    assert_eq!(rec.status, RunStatus::Succeeded);
    let log = take_log();
    let at = |line: &str| log.iter().position(|l| l == line).unwrap_or_else(|| panic!("no {line} in {log:?}"));
    assert!(at("noted:w1") < at("intent:w2"), "{log:?}");
    assert!(!log.contains(&"finished:w1".to_owned()), "w1's result is not awaited: {log:?}");
    assert!(at("finished:w2") < at("intent:w3"), "w2 has no reconcile read: awaited: {log:?}");
}

// ---------------------------------------------------------------------------------------------
// Resume

fn finished(id: &str, v: &str) -> NodePast {
    let record = flowcat_engine::run::NodeRecord {
        id: id.into(),
        kind: "step".into(),
        status: NodeStatus::Succeeded,
        reason: None,
        started_at: Some(1),
        ended_at: Some(2),
        duration_ms: Some(1.0),
        attempts: 1,
        result: Some(Arc::new(json!({ "v": v }))),
        error: None,
        detail: None,
        subflow: None,
        items: Vec::new(),
    };
    NodePast { started_at: Some(1), intent: None, finished: Some(Finished { record, branch: None }) }
}

fn past(entries: Vec<(&str, NodePast)>) -> Arc<Past> {
    Arc::new(Past { nodes: entries.into_iter().map(|(k, v)| (k.to_owned(), v)).collect::<HashMap<_, _>>() })
}

#[tokio::test(start_paused = true)]
async fn resume_restores_finished_nodes_and_runs_again_a_read_that_was_in_flight() {
    take_log();
    let events = Arc::new(Events::default());
    let r = runner(&[DIAMOND], Options::default(), events.clone());
    let in_flight = NodePast { started_at: Some(1_700_000_000_000), ..NodePast::default() };
    let durable = Durable {
        past: past(vec![("a", finished("a", "A")), ("c", finished("c", "C")), ("b", in_flight)]),
        ..Durable::default()
    };
    let t0 = Instant::now();
    let rec = r.run(request("t.diamond", durable)).await.unwrap();
    assert_eq!(rec.status, RunStatus::Succeeded);
    assert_eq!(rec.outputs["d"], json!("A-b+C"), "restored results are what later nodes read");
    let log = take_log();
    assert_eq!(log, ["run:b", "first_started:b:1700000000000", "run:d"], "a and c are not run again");
    assert_eq!(t0.elapsed(), Duration::from_millis(2000));
    let events = events.0.lock().unwrap();
    assert!(events.contains(&"restored:a".to_owned()) && events.contains(&"restored:c".to_owned()), "{events:?}");
}

const WRITE: &str = r#"
id: t.write
nodes:
  - { id: w, kind: step, effect: write, reconcile: RECONCILE }
  - { id: after, kind: step, value: "{{nodes.w.v}}!" }
outputs:
  out: "{{nodes.after.v}}"
"#;

fn write_flow(reconcile: Option<&str>) -> String {
    match reconcile {
        Some(r) => WRITE.replace("RECONCILE", r),
        None => WRITE.replace(", reconcile: RECONCILE", ""),
    }
}

fn in_doubt() -> Arc<Past> {
    let intent = json!({ "method": "POST", "node": "w" });
    past(vec![("w", NodePast { started_at: Some(5), intent: Some(intent), finished: None })])
}

#[tokio::test(start_paused = true)]
async fn a_write_in_doubt_found_done_is_not_sent_again() {
    take_log();
    let r = runner(&[&write_flow(Some("done"))], Options::default(), Arc::default());
    let rec = r.run(request("t.write", Durable { past: in_doubt(), ..Durable::default() })).await.unwrap();
    assert_eq!(rec.status, RunStatus::Succeeded);
    assert_eq!(rec.outputs["out"], json!("reconciled!"));
    assert_eq!(take_log(), ["reconcile:w:w", "run:after"]);
}

#[tokio::test(start_paused = true)]
async fn a_write_in_doubt_found_not_done_is_sent_once() {
    take_log();
    let r = runner(&[&write_flow(Some("not_done"))], Options::default(), Arc::default());
    let rec = r.run(request("t.write", Durable { past: in_doubt(), ..Durable::default() })).await.unwrap();
    assert_eq!(rec.status, RunStatus::Succeeded);
    assert_eq!(rec.outputs["out"], json!("w!"));
    assert_eq!(take_log(), ["reconcile:w:w", "run:w", "first_started:w:5", "run:after"]);
}

#[tokio::test(start_paused = true)]
async fn a_write_in_doubt_without_reconcile_or_with_a_failing_one_needs_attention() {
    for reconcile in [None, Some("failed")] {
        take_log();
        let r = runner(&[&write_flow(reconcile)], Options::default(), Arc::default());
        let rec = r.run(request("t.write", Durable { past: in_doubt(), ..Durable::default() })).await.unwrap();
        assert_eq!(rec.status, RunStatus::NeedsAttention, "{reconcile:?}");
        assert_eq!(status(&rec, "w"), NodeStatus::Unknown);
        assert_eq!(status(&rec, "after"), NodeStatus::Pending);
        let err = rec.node("w").and_then(|n| n.error.clone()).expect("an error");
        assert_eq!(err.code, "outcome_unknown");
        assert_eq!(err.data.expect("data")["request"]["method"], "POST", "the record names the request");
        assert_eq!(rec.error.as_ref().map(|f| f.node.as_str()), Some("w"));
        let log = take_log();
        assert!(!log.iter().any(|l| l == "run:w"), "never re-sent blindly: {log:?}");
    }
}

#[tokio::test(start_paused = true)]
async fn a_write_that_never_journaled_its_intent_is_simply_sent() {
    take_log();
    let r = runner(&[&write_flow(None)], Options::default(), Arc::default());
    let started_only = past(vec![("w", NodePast { started_at: Some(5), ..NodePast::default() })]);
    let rec = r.run(request("t.write", Durable { past: started_only, ..Durable::default() })).await.unwrap();
    assert_eq!(rec.status, RunStatus::Succeeded);
    assert_eq!(take_log(), ["run:w", "first_started:w:5", "run:after"]);
}

// ---------------------------------------------------------------------------------------------
// Stopping

#[tokio::test(start_paused = true)]
async fn drain_lets_nodes_in_flight_finish_and_starts_no_new_one() {
    take_log();
    let journal = Arc::new(MemLog::default());
    let r = runner(&[DIAMOND], Options::default(), Arc::default());
    let (tx, rx) = stop_signal();
    let durable = Durable { journal: Some(journal.clone()), stop: Some(rx), ..Durable::default() };
    let run = r.run(request("t.diamond", durable));
    let stopper = async {
        tokio::time::sleep(Duration::from_millis(1500)).await; // b and c are in flight
        tx.send(StopLevel::Drain).unwrap();
    };
    let (rec, ()) = tokio::join!(run, stopper);
    let rec = rec.unwrap();
    assert_eq!(rec.status, RunStatus::Interrupted);
    assert_eq!(rec.error.as_ref().map(|e| e.code.as_str()), Some("interrupted"));
    assert_eq!([status(&rec, "a"), status(&rec, "b"), status(&rec, "c")], [NodeStatus::Succeeded; 3]);
    assert_eq!(status(&rec, "d"), NodeStatus::Pending);
    let past = journal.past.lock().unwrap();
    assert!(past.nodes["b"].finished.is_some() && past.nodes["c"].finished.is_some(), "drained nodes are journaled");
    assert!(!past.nodes.contains_key("d"));
}

#[tokio::test(start_paused = true)]
async fn abandon_drops_nodes_in_flight_and_marks_a_sent_write_unknown() {
    take_log();
    let r = runner(&[DIAMOND], Options::default(), Arc::default());
    let (tx, rx) = stop_signal();
    let durable = Durable { stop: Some(rx), ..Durable::default() };
    let run = r.run(request("t.diamond", durable));
    let stopper = async {
        tokio::time::sleep(Duration::from_millis(1200)).await;
        tx.send(StopLevel::Drain).unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        tx.send(StopLevel::Abandon).unwrap();
    };
    let t0 = Instant::now();
    let (rec, ()) = tokio::join!(run, stopper);
    let rec = rec.unwrap();
    assert_eq!(t0.elapsed(), Duration::from_millis(1300), "abandoning does not wait for the nodes in flight");
    assert_eq!(rec.status, RunStatus::Interrupted);
    assert_eq!(status(&rec, "b"), NodeStatus::Cancelled, "a read in flight is simply cancelled");
    assert_eq!(status(&rec, "c"), NodeStatus::Unknown, "a write in flight has an unknown outcome");
    let err = rec.node("c").and_then(|n| n.error.clone()).expect("error");
    assert_eq!(err.data.expect("data")["request"]["node"], "c");
}

// ---------------------------------------------------------------------------------------------
// Deadlines and failures

#[tokio::test(start_paused = true)]
async fn the_deadline_bounds_the_whole_run() {
    take_log();
    let r = runner(&[DIAMOND], Options::default(), Arc::default());
    let t0 = Instant::now();
    let durable = Durable { deadline: Some(t0 + Duration::from_millis(2500)), ..Durable::default() };
    let rec = r.run(request("t.diamond", durable)).await.unwrap();
    assert_eq!(t0.elapsed(), Duration::from_millis(2500));
    assert_eq!(rec.status, RunStatus::Failed);
    assert_eq!(rec.error.as_ref().map(|e| e.code.as_str()), Some("deadline"));
    assert_eq!(status(&rec, "d"), NodeStatus::Cancelled);
}

#[tokio::test(start_paused = true)]
async fn a_failure_cancels_the_siblings_in_flight() {
    const FAILS: &str = r#"
id: t.fails
nodes:
  - { id: slow, kind: step, ms: 5000, effect: read }
  - { id: bad, kind: step, ms: 100, fails: boom }
  - { id: later, kind: step, value: "{{nodes.bad.v}}" }
"#;
    let r = runner(&[FAILS], Options::default(), Arc::default());
    let t0 = Instant::now();
    let rec = r.run(request("t.fails", Durable::default())).await.unwrap();
    assert_eq!(t0.elapsed(), Duration::from_millis(100));
    assert_eq!(rec.status, RunStatus::Failed);
    assert_eq!(rec.error.as_ref().map(|e| (e.node.as_str(), e.code.as_str())), Some(("bad", "boom")));
    assert_eq!([status(&rec, "slow"), status(&rec, "later")], [NodeStatus::Cancelled, NodeStatus::Pending]);
}

#[tokio::test(start_paused = true)]
async fn a_journal_that_cannot_record_a_writes_result_interrupts_the_run_before_its_dependents() {
    take_log();
    let journal = Arc::new(MemLog { fail_finished_at: Some(1), ..MemLog::default() });
    let r = runner(&[DIAMOND], Options::default(), Arc::default());
    let durable = Durable { journal: Some(journal), ..Durable::default() };
    let rec = r.run(request("t.diamond", durable)).await.unwrap();
    assert_eq!(rec.status, RunStatus::Interrupted, "resumable once the disk has room");
    assert_eq!(rec.error.as_ref().map(|e| e.code.as_str()), Some("journal"));
    let log = take_log();
    assert!(log.contains(&"run:c".to_owned()), "{log:?}");
    assert!(!log.iter().any(|l| l == "run:d"), "the write's result was not journaled: d never starts: {log:?}");
}

// ---------------------------------------------------------------------------------------------
// Subflows

const PARENT: &str = r#"
id: t.parent
nodes:
  - { id: first, kind: step, effect: read }
  - { id: sub, kind: call, flow: t.child, with: { x: "{{nodes.first.v}}" } }
outputs:
  y: "{{nodes.sub.y}}"
"#;

const CHILD: &str = r#"
id: t.child
inputs:
  x: { type: string }
nodes:
  - { id: one, kind: step, effect: write, value: "{{inputs.x}}-1" }
  - { id: two, kind: step, effect: write, value: "{{nodes.one.v}}-2" }
outputs:
  y: "{{nodes.two.v}}"
"#;

#[tokio::test(start_paused = true)]
async fn subflow_nodes_are_journaled_under_their_path_and_resumed_there() {
    take_log();
    let journal = Arc::new(MemLog::default());
    let r = runner(&[PARENT, CHILD], Options::default(), Arc::default());
    let rec = r.run(request("t.parent", Durable { journal: Some(journal.clone()), ..Durable::default() })).await;
    assert_eq!(rec.unwrap().outputs["y"], json!("first-1-2"));
    let keys: Vec<String> = {
        let mut k: Vec<String> = journal.past.lock().unwrap().nodes.keys().cloned().collect();
        k.sort();
        k
    };
    assert_eq!(keys, ["first", "sub", "sub/one", "sub/two"]);

    // The process died after `sub/one` finished: only `sub/two` runs again.
    take_log();
    let mut resumed = journal.past.lock().unwrap().clone();
    resumed.nodes.remove("sub");
    resumed.nodes.remove("sub/two");
    let durable = Durable { past: Arc::new(resumed), ..Durable::default() };
    let rec = r.run(request("t.parent", durable)).await.unwrap();
    assert_eq!(rec.outputs["y"], json!("first-1-2"));
    assert_eq!(take_log(), ["run:two"]);
}

#[tokio::test(start_paused = true)]
async fn a_write_in_doubt_inside_a_subflow_stops_the_whole_run_for_attention() {
    take_log();
    let r = runner(&[PARENT, CHILD], Options::default(), Arc::default());
    let intent = json!({ "method": "POST", "node": "two" });
    let p = past(vec![
        ("first", finished("first", "first")),
        ("sub/one", finished("one", "first-1")),
        ("sub/two", NodePast { started_at: Some(9), intent: Some(intent), finished: None }),
    ]);
    let rec = r.run(request("t.parent", Durable { past: p, ..Durable::default() })).await.unwrap();
    assert_eq!(rec.status, RunStatus::NeedsAttention);
    let sub = rec.node("sub").and_then(|n| n.subflow.as_deref()).expect("nested record");
    assert_eq!(sub.status, RunStatus::NeedsAttention);
    assert_eq!(status(sub, "two"), NodeStatus::Unknown);
    assert_eq!(take_log(), ["reconcile:two:two"], "nothing was sent: one was restored, two is in doubt");
}

// ---------------------------------------------------------------------------------------------
// Plan mode

fn plan(flow: &str) -> RunRequest {
    RunRequest { flow: flow.into(), plan: true, ..RunRequest::default() }
}

fn detail(rec: &RunRecord, id: &str) -> Value {
    rec.node(id).and_then(|n| n.detail.as_ref()).map(|d| d.get()).unwrap_or_default()
}

#[tokio::test(start_paused = true)]
async fn plan_mode_runs_the_reads_plans_the_write_and_holds_what_waits_for_it() {
    take_log();
    let r = runner(&[DIAMOND], Options::default(), Arc::default());
    let rec = r.run(plan("t.diamond")).await.unwrap();
    assert_eq!(rec.status, RunStatus::Succeeded, "{:?}", rec.error);
    let mut ran = take_log();
    ran.sort();
    assert_eq!(ran, ["run:a", "run:b"], "the reads run, the write and what reads it do not");
    assert_eq!(status(&rec, "c"), NodeStatus::Planned);
    assert_eq!(detail(&rec, "c")["plan"], "send");
    assert_eq!(status(&rec, "d"), NodeStatus::Planned);
    assert_eq!(detail(&rec, "d")["waits_for"], json!(["c"]));
    assert!(rec.outputs.is_empty(), "a plan's outputs are unknown");
}

#[tokio::test(start_paused = true)]
async fn plan_mode_decides_a_when_from_known_values_and_defers_one_that_reads_an_unknown_result() {
    const WHEN: &str = r#"
id: t.when
nodes:
  - { id: a, kind: step, effect: read, value: "no" }
  - { id: w1, kind: step, effect: write, when: "{{eq nodes.a.v 'yes'}}" }
  - { id: w2, kind: step, effect: write }
  - { id: w3, kind: step, effect: write, when: "{{nodes.w2.v}}" }
"#;
    take_log();
    let r = runner(&[WHEN], Options::default(), Arc::default());
    let rec = r.run(plan("t.when")).await.unwrap();
    assert_eq!(take_log(), ["run:a"]);
    assert_eq!(status(&rec, "w1"), NodeStatus::Skipped, "decided from a known value");
    assert_eq!(status(&rec, "w2"), NodeStatus::Planned);
    assert_eq!(status(&rec, "w3"), NodeStatus::Planned);
    let w3 = detail(&rec, "w3");
    assert_eq!(w3["plan"], "template");
    assert_eq!(w3["waits_for"], json!(["w2"]));
    assert_eq!(w3["when"], "{{nodes.w2.v}}");
}

#[tokio::test(start_paused = true)]
async fn plan_mode_plans_a_subflows_writes_and_what_waits_for_them_names_them_by_path() {
    const AFTER: &str = r#"
id: t.after
nodes:
  - { id: first, kind: step, effect: read }
  - { id: sub, kind: call, flow: t.child, with: { x: "{{nodes.first.v}}" } }
  - { id: last, kind: step, effect: write, value: "{{nodes.sub.y}}" }
"#;
    take_log();
    let r = runner(&[AFTER, CHILD], Options::default(), Arc::default());
    let rec = r.run(plan("t.after")).await.unwrap();
    assert_eq!(take_log(), ["run:first"], "no write ran, in the subflow or after it");
    assert_eq!(status(&rec, "sub"), NodeStatus::Planned);
    assert_eq!(detail(&rec, "sub")["unknown"], json!(["sub/one", "sub/two"]));
    let child = rec.node("sub").and_then(|n| n.subflow.as_deref()).expect("the subflow's record");
    assert_eq!(status(child, "one"), NodeStatus::Planned);
    assert_eq!(status(child, "two"), NodeStatus::Planned);
    assert_eq!(detail(&rec, "last")["waits_for"], json!(["sub/one", "sub/two"]));
}
