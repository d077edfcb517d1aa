//! A flow's `key:` and `deadline:` reach a durable run when its caller gives none: the key
//! rendered from the run's inputs (their defaults included), the deadline counted from the
//! start; `--key` and `--deadline` (here `Durably`) win. A store that records what it is asked
//! to begin, and answers "busy", stands in for the journal; without a store, the flow's deadline
//! still bounds the run (on tokio's paused clock, against the simulator).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use flowcat_engine::Catalog;
use flowcat_engine::diag::Source;
use flowcat_engine::journal::{
    Begun, Delivery, Filter, Held, JournalError, RunInfo, RunSummary, Start, Store, StoredRun,
};
use flowcat_engine::run::BoxFuture;
use flowcat_nodes::REGISTRY;
use flowcat_nodes::embed::{Error, Flowcat};
use flowcat_nodes::hall::{Durably, Refused};
use flowcat_sim::{Options, Seed, Sim};
use serde_json::{Map, Value, json};

/// Records every run it is asked to begin, and says another process holds it.
#[derive(Debug, Default)]
struct Recording(Mutex<Vec<RunInfo>>);

impl Begins for Recording {
    fn begin(&self, start: Start) -> Result<Begun, JournalError> {
        self.0.lock().expect("lock").push(start.info);
        Ok(Begun::Busy { id: "r1".into() })
    }
}

/// What a fake store does when asked to begin a run; everything else it answers as empty.
trait Begins: Send + Sync {
    fn begin(&self, start: Start) -> Result<Begun, JournalError>;
}

/// A fake store: its `begin` is the test's ([`Begins`]), the rest finds nothing.
#[derive(Debug, Default)]
struct Fake<B>(B);

impl<B: Begins> Store for Fake<B> {
    fn begin(&self, start: Start) -> BoxFuture<'_, Result<Begun, JournalError>> {
        let begun = self.0.begin(start);
        Box::pin(async move { begun })
    }

    fn resume<'a>(&'a self, _: &'a str) -> BoxFuture<'a, Result<Held, JournalError>> {
        Box::pin(async { Err(JournalError::new("unknown_run", "no such run")) })
    }

    fn list(&self, _: &Filter) -> Result<Vec<RunSummary>, JournalError> {
        Ok(Vec::new())
    }

    fn show(&self, _: &str) -> Result<Option<StoredRun>, JournalError> {
        Ok(None)
    }

    fn prune(&self, _: u64) -> Result<usize, JournalError> {
        Ok(0)
    }

    fn flush(&self) -> BoxFuture<'_, Result<(), JournalError>> {
        Box::pin(async { Ok(()) })
    }

    fn signal<'a>(&'a self, _: &'a str, _: &'a str, _: &'a Value) -> BoxFuture<'a, Result<Delivery, JournalError>> {
        Box::pin(async { Ok(Delivery::UnknownRun) })
    }
    fn wakeable(&self, _: u64) -> Result<Vec<String>, JournalError> {
        Ok(Vec::new())
    }
}

const KEYED: &str = r#"
id: t.keyed
key: "{{inputs.username}}/{{inputs.site}}"
deadline: 90s
inputs:
  username: { type: string }
  site: { type: string, default: hq }
nodes:
  - id: a
    kind: set
    values: { x: "{{inputs.username}}" }
outputs:
  x: "{{nodes.a.x}}"
"#;

fn flowcat(sources: &[(&str, &str)], integrations: &str) -> Flowcat {
    let sources = sources.iter().map(|(p, t)| Arc::new(Source { path: (*p).into(), text: (*t).into() })).collect();
    let catalog = Catalog::load(sources, &REGISTRY);
    assert_eq!(catalog.diagnostics().filter(|d| d.is_error()).count(), 0);
    let file = flowcat_nodes::integrations::parse("i.yaml".as_ref(), integrations, &|_| None).expect("integrations");
    Flowcat::new(catalog, file)
}

fn inputs(v: Value) -> Map<String, Value> {
    v.as_object().expect("an object").clone()
}

/// What the store was asked to begin for one durable run of `t.keyed`.
async fn begun(given: Value, how: Durably) -> Result<RunInfo, Error> {
    let store = Arc::new(Fake(Recording::default()));
    let f = flowcat(&[("k.yaml", KEYED)], "integrations: {}\n").with_store(store.clone());
    match f.run_durably("t.keyed", inputs(given), how).await {
        Err(Error::Refused(Refused::Busy { id })) => assert_eq!(id, "r1"),
        other => return Err(other.expect_err("refused")),
    }
    let info = store.0.0.lock().expect("lock").pop().expect("a run begun");
    Ok(info)
}

#[tokio::test]
async fn a_durable_run_takes_the_flows_key_and_deadline_unless_told_otherwise() {
    let info = begun(json!({"username": "jdoe"}), Durably::default()).await.expect("begun");
    assert_eq!(info.key.as_deref(), Some("jdoe/hq"), "the default of `site` is part of the key");
    assert_eq!(info.deadline_at.map(|at| at - info.created_at), Some(90_000));
    let how = Durably { key: Some("INC42".into()), deadline: Some(Duration::from_secs(5)), ..Durably::default() };
    let info = begun(json!({"username": "jdoe", "site": "lab"}), how).await.expect("begun");
    assert_eq!((info.key.as_deref(), info.deadline_at.map(|at| at - info.created_at)), (Some("INC42"), Some(5_000)));
}

#[tokio::test]
async fn a_key_that_cannot_be_made_refuses_the_run_before_it_begins() {
    let keyed = KEYED.replace("  username: { type: string }", "  username: { type: string, required: false }");
    let store = Arc::new(Fake(Recording::default()));
    let f = flowcat(&[("k.yaml", &keyed)], "integrations: {}\n").with_store(store.clone());
    let err = f.run_durably("t.keyed", Map::new(), Durably::default()).await.expect_err("refused");
    let message = err.to_string();
    assert!(message.contains("the run key cannot be made from these inputs"), "{message}");
    assert!(message.contains("`inputs.username`"), "{message}");
    assert!(store.0.0.lock().expect("lock").is_empty(), "nothing begun");
}

/// Polls Henry's desk phone, a landline never activated, every 3 s for 10 minutes; the flow's
/// deadline is 10 s.
const BOUNDED: &str = r#"
id: t.bounded
deadline: 10s
integrations: { duo_admin: { kind: duo_admin } }
nodes:
  - id: phone
    kind: rest_call
    integration: duo_admin
    method: GET
    path: /admin/v1/phones
    query: { number: "+15555550104" }
    extract: { activated: "$.response[0].activated" }
    poll: { until: "{{self.activated}}", interval: 3s, timeout: 10m }
outputs:
  activated: "{{nodes.phone.activated}}"
"#;

#[tokio::test(start_paused = true)]
async fn without_a_journal_the_flows_deadline_still_bounds_the_run() {
    let sim =
        Sim::start_seed("127.0.0.1:0".parse().expect("addr"), &Seed::demo(), Options::default()).await.expect("sim");
    let file = flowcat_sim::integrations::render(sim.addr(), &sim.state().integrations);
    let f = flowcat(&[("b.yaml", BOUNDED)], &file);
    let started = tokio::time::Instant::now();
    let ran = f.run_durably("t.bounded", Map::new(), Durably::default()).await.expect("ran");
    let error = ran.record().error.as_ref().expect("the deadline came");
    assert_eq!((error.node.as_str(), error.code.as_str()), ("phone", "deadline"), "{error:?}");
    let took = started.elapsed();
    assert!(took >= Duration::from_secs(9) && took < Duration::from_secs(10), "{took:?}");
    sim.shutdown().await;
}

/// A store that does not wait for a keyed beginning, and whose key another process began at the
/// same moment: the first run's end is refused with `key_taken`; the hall begins it again (the
/// store now finds the key) and answers the other process's run.
#[derive(Debug, Default)]
struct Raced {
    begun: Mutex<Vec<Start>>,
}

/// The run whose key was taken: its end is refused.
struct Lost(RunInfo);

impl flowcat_engine::journal::RunLog for Lost {
    fn started(&self, _: &[String], _: u64) {}
    fn intent<'a>(&'a self, _: &'a [String], _: &'a Value) -> BoxFuture<'a, Result<(), JournalError>> {
        Box::pin(async { Ok(()) })
    }
    fn finished<'a>(
        &'a self,
        _: &'a [String],
        _: &'a flowcat_engine::journal::Finished,
    ) -> BoxFuture<'a, Result<(), JournalError>> {
        Box::pin(async { Ok(()) })
    }
    fn noted(&self, _: &[String], _: flowcat_engine::journal::Finished) {}
}

impl flowcat_engine::journal::RunHandle for Lost {
    fn info(&self) -> &RunInfo {
        &self.0
    }
    fn end<'a>(
        &'a self,
        _: flowcat_engine::journal::StoredStatus,
        _: &'a flowcat_engine::run::RunRecord,
    ) -> BoxFuture<'a, Result<(), JournalError>> {
        Box::pin(async { Err(JournalError::new(flowcat_engine::journal::KEY_TAKEN, "another process began it")) })
    }
}

impl Begins for Raced {
    fn begin(&self, start: Start) -> Result<Begun, JournalError> {
        let mut begun = self.begun.lock().expect("lock");
        begun.push(start.clone());
        let mut info = start.info;
        if begun.len() == 1 {
            info.id = "r-lost".into();
            return Ok(Begun::Fresh(Box::new(Lost(info))));
        }
        info.id = "r-winner".into();
        let record = json!({ "flow": "t.keyed", "id": "r-winner", "status": "succeeded", "inputs": {},
                             "vars": {}, "outputs": { "x": "the winner's" }, "started_at": 1, "ended_at": 2,
                             "nodes": [] });
        let summary = RunSummary {
            info,
            status: flowcat_engine::journal::StoredStatus::Succeeded,
            updated_at: 2,
            note: None,
            waiting: None,
        };
        let record = serde_json::from_value(record).expect("a record");
        Ok(Begun::Done(Box::new(StoredRun { summary, record: Some(record), past: Default::default() })))
    }
}

#[tokio::test]
async fn a_run_whose_key_another_process_took_meanwhile_is_begun_again_and_gets_that_run() {
    let store = Arc::new(Fake(Raced::default()));
    let f = flowcat(&[("k.yaml", KEYED)], "integrations: {}\n").with_store(store.clone());
    let ran = f.run_durably("t.keyed", inputs(json!({"username": "jdoe"})), Durably::default()).await.expect("ran");
    assert_eq!(ran.record().id.as_deref(), Some("r-winner"));
    assert_eq!(ran.record().outputs["x"], json!("the winner's"));
    let begun = store.0.begun.lock().expect("lock");
    assert_eq!(begun.len(), 2, "begun again once");
    assert!(begun.iter().all(|s| s.info.key.as_deref() == Some("jdoe/hq") && !s.awaited));
}
