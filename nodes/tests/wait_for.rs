//! `wait_for` with the real kind and the real scheduler, on tokio's paused clock, over a journal
//! in memory that delivers signals as the SQLite store does (checked against the run's signals,
//! kept until taken, a wake-up per delivery): the timeout, a signal before and after the wait
//! starts, a wrong payload refused without waking the run, a resume after a crash with the time
//! already spent counted, the run's deadline, a drain that does not wait for a parked node, and
//! the checks at validation.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use flowcat_engine::Catalog;
use flowcat_engine::diag::Source;
use flowcat_engine::journal::{Delivery, Finished, JournalError, NodePast, Past, RunLog, SignalSpec, path_key};
use flowcat_engine::run::{BoxFuture, Durable, Options, Quiet, RunRecord, RunRequest, Runner, StopLevel, stop_signal};
use serde_json::{Map, Value, json};
use tokio::sync::Notify;
use tokio::time::Instant;

const FLOW: &str = r#"
id: t.approve
inputs:
  who:
    type: string
nodes:
  - id: approval
    kind: wait_for
    signal: approval
    payload:
      approved: boolean
      approver: string
    timeout: 3d
  - id: decide
    kind: switch
    cases:
      - name: timed_out
        when: "{{nodes.approval.timed_out}}"
        then: [expired]
      - name: approved
        when: "{{nodes.approval.approved}}"
        then: [go]
    default: [denied]
  - id: go
    kind: set
    values:
      outcome: "approved by {{nodes.approval.approver}}"
  - id: denied
    kind: set
    values:
      outcome: denied
  - id: expired
    kind: set
    values:
      outcome: timed_out
outputs:
  outcome:
    value: "{{coalesce nodes.go.outcome nodes.denied.outcome nodes.expired.outcome}}"
"#;

/// A run's journal in memory: nodes, the signals delivered, who waits.
#[derive(Default)]
struct Mem {
    signals: Mutex<HashMap<String, Value>>,
    notify: Notify,
    waiting: Mutex<Option<(String, String, Option<u64>)>>,
    past: Mutex<Past>,
    specs: Vec<SignalSpec>,
}

impl Mem {
    fn new(catalog: &Catalog) -> Arc<Mem> {
        let specs = flowcat_nodes::hall::signals(catalog, "t.approve").expect("signals");
        Arc::new(Mem { specs, ..Mem::default() })
    }

    /// What `Store::signal` does, minus the run lookup.
    fn deliver(&self, name: &str, payload: Value) -> Delivery {
        let Some(spec) = self.specs.iter().find(|s| s.name == name) else {
            return Delivery::NotAwaited { awaited: self.specs.iter().map(|s| s.name.clone()).collect() };
        };
        if let Err(problems) = spec.check(&payload) {
            return Delivery::BadPayload { problems };
        }
        let mut signals = self.signals.lock().unwrap();
        if signals.contains_key(name) {
            return Delivery::AlreadyDelivered;
        }
        signals.insert(name.to_owned(), payload);
        self.notify.notify_waiters();
        Delivery::Delivered
    }
}

impl RunLog for Mem {
    fn started(&self, path: &[String], at_ms: u64) {
        self.past.lock().unwrap().nodes.entry(path_key(path)).or_default().started_at.get_or_insert(at_ms);
    }
    fn intent<'a>(&'a self, _: &'a [String], _: &'a Value) -> BoxFuture<'a, Result<(), JournalError>> {
        Box::pin(async { Ok(()) })
    }
    fn finished<'a>(&'a self, path: &'a [String], node: &'a Finished) -> BoxFuture<'a, Result<(), JournalError>> {
        self.noted(path, node.clone());
        Box::pin(async { Ok(()) })
    }
    fn noted(&self, path: &[String], node: Finished) {
        self.past.lock().unwrap().nodes.entry(path_key(path)).or_default().finished = Some(node);
    }
    fn wait_signal<'a>(
        &'a self,
        path: &'a [String],
        name: &'a str,
        until_ms: Option<u64>,
        said: &'a (dyn Fn() + Send + Sync),
    ) -> BoxFuture<'a, Result<Value, JournalError>> {
        Box::pin(async move {
            *self.waiting.lock().unwrap() = Some((path_key(path), name.to_owned(), until_ms));
            said();
            loop {
                let mut woken = std::pin::pin!(self.notify.notified());
                woken.as_mut().enable();
                if let Some(p) = self.signals.lock().unwrap().get(name) {
                    return Ok(p.clone());
                }
                woken.await;
            }
        })
    }
}

fn catalog(text: &str) -> Arc<Catalog> {
    let source = Arc::new(Source { path: "t.yaml".into(), text: text.into() });
    let catalog = Catalog::load(vec![source], &flowcat_nodes::REGISTRY);
    let errors: Vec<String> = catalog.diagnostics().filter(|d| d.is_error()).map(|d| d.render(false)).collect();
    assert!(errors.is_empty(), "{errors:#?}");
    Arc::new(catalog)
}

fn wall_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as u64
}

fn request(mem: &Arc<Mem>, past: Past, deadline: Option<Duration>) -> RunRequest {
    let mut inputs = Map::new();
    inputs.insert("who".into(), json!("alice"));
    RunRequest {
        flow: "t.approve".into(),
        inputs,
        durable: Durable {
            journal: Some(mem.clone() as Arc<dyn RunLog>),
            past: Arc::new(past),
            stop: None,
            deadline: deadline.map(|d| Instant::now() + d),
            ..Durable::default()
        },
        ..RunRequest::default()
    }
}

async fn run(runner: &Runner, mem: &Arc<Mem>, past: Past, deadline: Option<Duration>) -> RunRecord {
    runner.run(request(mem, past, deadline)).await.expect("the run starts")
}

fn runner(catalog: Arc<Catalog>) -> Runner {
    Runner::new(catalog, Options::default(), Arc::new(Quiet))
}

fn approval(record: &RunRecord) -> Value {
    record
        .nodes
        .iter()
        .find(|n| n.id == "approval")
        .and_then(|n| n.result.as_deref().cloned())
        .expect("the wait's result")
}

#[tokio::test(start_paused = true)]
async fn a_wait_times_out_after_its_timeout_and_later_nodes_branch_on_it() {
    let catalog = catalog(FLOW);
    let mem = Mem::new(&catalog);
    let t0 = Instant::now();
    let record = run(&runner(catalog), &mem, Past::default(), None).await;
    assert_eq!(t0.elapsed(), Duration::from_secs(3 * 86_400), "exactly the timeout");
    assert_eq!(record.outputs["outcome"], "timed_out");
    assert_eq!(approval(&record), json!({ "timed_out": true, "approved": null, "approver": null }));
    let (path, name, until) = mem.waiting.lock().unwrap().clone().expect("journaled as waiting");
    assert_eq!((path.as_str(), name.as_str()), ("approval", "approval"));
    let until = until.expect("until");
    let want = wall_ms() + 3 * 86_400_000;
    assert!(until.abs_diff(want) < 5_000, "until {until}, want about {want}");
}

#[tokio::test(start_paused = true)]
async fn a_signal_delivered_while_waiting_wakes_the_run_at_once() {
    let catalog = catalog(FLOW);
    let mem = Mem::new(&catalog);
    let runner = runner(catalog);
    let t0 = Instant::now();
    let sender = {
        let mem = mem.clone();
        async move {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            // Refused payloads wake nothing and are not kept.
            let wrong = mem.deliver("approval", json!({ "approved": "yes", "approver": "m" }));
            assert!(
                matches!(&wrong, Delivery::BadPayload { problems } if problems[0].contains("`approved` must be a boolean")),
                "{wrong:?}"
            );
            let extra = mem.deliver("approval", json!({ "approved": true, "approver": "m", "x": 1 }));
            assert_eq!(extra.code(), "bad_payload");
            let missing = mem.deliver("approval", json!({ "approved": true }));
            assert!(matches!(&missing, Delivery::BadPayload { problems } if problems[0].contains("`approver`")));
            assert_eq!(mem.deliver("other", json!({})).code(), "not_awaited");
            tokio::time::sleep(Duration::from_secs(60)).await;
            assert_eq!(
                mem.deliver("approval", json!({ "approved": true, "approver": "m@example.com" })),
                Delivery::Delivered
            );
            assert_eq!(
                mem.deliver("approval", json!({ "approved": false, "approver": "x" })),
                Delivery::AlreadyDelivered
            );
        }
    };
    let (record, ()) = tokio::join!(run(&runner, &mem, Past::default(), None), sender);
    assert_eq!(t0.elapsed(), Duration::from_secs(3660), "woken by the good signal, not before, not later");
    assert_eq!(record.outputs["outcome"], "approved by m@example.com");
    assert_eq!(approval(&record), json!({ "timed_out": false, "approved": true, "approver": "m@example.com" }));
}

#[tokio::test(start_paused = true)]
async fn a_signal_delivered_before_the_wait_starts_is_kept_for_it() {
    let catalog = catalog(FLOW);
    let mem = Mem::new(&catalog);
    assert_eq!(mem.deliver("approval", json!({ "approved": false, "approver": "boss" })), Delivery::Delivered);
    let t0 = Instant::now();
    let record = run(&runner(catalog), &mem, Past::default(), None).await;
    assert_eq!(t0.elapsed(), Duration::ZERO);
    assert_eq!(record.outputs["outcome"], "denied");
}

#[tokio::test(start_paused = true)]
async fn a_resumed_wait_counts_the_time_spent_before_the_crash() {
    let catalog = catalog(FLOW);
    let mem = Mem::new(&catalog);
    // The node first started two days ago, in a process that died.
    let mut past = Past::default();
    past.nodes
        .insert("approval".into(), NodePast { started_at: Some(wall_ms() - 2 * 86_400_000), ..NodePast::default() });
    let t0 = Instant::now();
    let record = run(&runner(catalog), &mem, past, None).await;
    let waited = t0.elapsed();
    assert!(waited.abs_diff(Duration::from_secs(86_400)) < Duration::from_secs(5), "one day left: {waited:?}");
    assert_eq!(record.outputs["outcome"], "timed_out");
}

#[tokio::test(start_paused = true)]
async fn a_resumed_run_finds_a_signal_delivered_while_no_process_held_it_and_repeats_nothing() {
    let catalog = catalog(FLOW);
    let mem = Mem::new(&catalog);
    let mut past = Past::default();
    past.nodes.insert("approval".into(), NodePast { started_at: Some(wall_ms() - 60_000), ..NodePast::default() });
    assert_eq!(mem.deliver("approval", json!({ "approved": true, "approver": "boss" })), Delivery::Delivered);
    let record = run(&runner(catalog.clone()), &mem, past, None).await;
    assert_eq!(record.outputs["outcome"], "approved by boss");
    // Resumed once more from what it journaled: the wait is restored, not run again.
    let past = mem.past.lock().unwrap().clone();
    *mem.waiting.lock().unwrap() = None;
    let again = run(&runner(catalog), &mem, past, None).await;
    assert_eq!(again.outputs["outcome"], "approved by boss");
    assert!(mem.waiting.lock().unwrap().is_none(), "a finished wait is not waited again");
}

#[tokio::test(start_paused = true)]
async fn the_runs_deadline_ends_a_wait_that_would_outlast_it() {
    let catalog = catalog(FLOW);
    let mem = Mem::new(&catalog);
    let t0 = Instant::now();
    let record = run(&runner(catalog), &mem, Past::default(), Some(Duration::from_secs(600))).await;
    assert_eq!(t0.elapsed(), Duration::from_secs(600));
    let error = record.error.expect("failed");
    assert_eq!((error.node.as_str(), error.code.as_str()), ("approval", "deadline"), "{}", error.message);
    let until = mem.waiting.lock().unwrap().clone().and_then(|w| w.2).expect("until");
    assert!(until.abs_diff(wall_ms() + 600_000) < 5_000, "journaled until the deadline");
}

#[tokio::test(start_paused = true)]
async fn a_drain_stops_a_run_parked_on_a_signal_at_once() {
    let catalog = catalog(FLOW);
    let mem = Mem::new(&catalog);
    let runner = runner(catalog);
    let (tx, rx) = stop_signal();
    let mut req = request(&mem, Past::default(), None);
    req.durable.stop = Some(rx);
    let t0 = Instant::now();
    let stopper = async {
        tokio::time::sleep(Duration::from_secs(10)).await;
        tx.send(StopLevel::Drain).unwrap();
    };
    let (record, ()) = tokio::join!(runner.run(req), stopper);
    let record = record.expect("started");
    assert_eq!(t0.elapsed(), Duration::from_secs(10), "the drain did not wait for the parked node");
    assert_eq!(record.status, flowcat_engine::run::RunStatus::Interrupted);
    assert!(mem.past.lock().unwrap().node("approval").is_some_and(|n| n.finished.is_none()), "not journaled as done");
}

#[tokio::test(start_paused = true)]
async fn without_a_journal_a_wait_fails_at_once_saying_why() {
    let catalog = catalog(FLOW);
    let mut inputs = Map::new();
    inputs.insert("who".into(), json!("alice"));
    let record = runner(catalog)
        .run(RunRequest { flow: "t.approve".into(), inputs, ..RunRequest::default() })
        .await
        .expect("started");
    let error = record.error.expect("failed");
    assert_eq!(error.code, "no_journal", "{}", error.message);
}

#[test]
fn validation_checks_the_fields_and_the_result() {
    let check = |nodes: &str| -> Vec<String> {
        let text = format!("id: t.v\nnodes:\n{nodes}");
        let source = Arc::new(Source { path: "v.yaml".into(), text });
        let catalog = Catalog::load(vec![source], &flowcat_nodes::REGISTRY);
        catalog.diagnostics().filter(|d| d.is_error()).map(|d| d.render(false)).collect()
    };
    let errors = check("  - id: w\n    kind: wait_for\n    signal: a\n    timeout: 31d\n");
    assert!(errors.iter().any(|e| e.contains("bad-duration") && e.contains("at most `30d`")), "{errors:#?}");
    let errors = check("  - id: w\n    kind: wait_for\n    signal: a\n    timeout: 0s\n");
    assert!(errors.iter().any(|e| e.contains("bad-duration")), "{errors:#?}");
    let errors = check(
        "  - id: w\n    kind: wait_for\n    signal: a\n    timeout: 1h\n    payload:\n      timed_out: boolean\n",
    );
    assert!(errors.iter().any(|e| e.contains("reserved-name")), "{errors:#?}");
    let errors = check("  - id: w\n    kind: wait_for\n    signal: a\n    timeout: 1h\n    payload:\n      ok: bool\n");
    assert!(errors.iter().any(|e| e.contains("unknown-value")), "{errors:#?}");
    let errors = check("  - id: w\n    kind: wait_for\n    timeout: 1h\n");
    assert!(errors.iter().any(|e| e.contains("signal")), "{errors:#?}");
    // A later node reads a payload field the wait does not declare.
    let errors = check(
        "  - id: w\n    kind: wait_for\n    signal: a\n    timeout: 1h\n    payload:\n      ok: boolean\n  - id: s\n    kind: set\n    values:\n      x: \"{{nodes.w.okay}}\"\n",
    );
    assert!(errors.iter().any(|e| e.contains("okay")), "{errors:#?}");
    let ok = check(
        "  - id: w\n    kind: wait_for\n    signal: a\n    timeout: 30d\n    payload:\n      ok: boolean\n  - id: s\n    kind: set\n    values:\n      x: \"{{nodes.w.ok}} {{nodes.w.timed_out}}\"\n",
    );
    assert!(ok.is_empty(), "{ok:#?}");
}
