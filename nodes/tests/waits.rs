//! Waits within the run's deadline and a resumed wait's bound, on tokio's paused clock (which
//! the simulator's clock follows), over real HTTP to the simulator on 127.0.0.1: a 429 storm
//! and a held long-poll end at the deadline, never after it; a poll resumed after a restart
//! counts the time it already spent against its bound; a poll whose next pause would pass the
//! deadline stops before it.
//!
//! The engine gives a node its deadline and its first start through `NodeCx`; here `timed` node
//! kinds (a `rest_call` in every field) run the call with a fixed `Timing` instead.

use std::sync::Arc;
use std::time::Duration;

use flowcat_engine::Catalog;
use flowcat_engine::diag::Source;
use flowcat_engine::kind::{CompileCx, Compiled, NodeExec, NodeKind, Registry};
use flowcat_engine::run::{BoxFuture, NodeCx, NodeError, NodeOutput, RunRecord};
use flowcat_engine::shape::Field;
use flowcat_nodes::embed::Flowcat;
use flowcat_nodes::http::{Call, CallError, Clients, send};
use flowcat_nodes::integrations::Integrations;
use flowcat_nodes::kinds::rest_call::{RestCall, RestCallExec};
use flowcat_nodes::kinds::wait::Timing;
use flowcat_sim::{Faults, Options, Seed, Sim};
use serde_json::json;
use tokio::time::Instant;

/// A `rest_call` run with the time it already spent (`spent`) and a deadline `deadline_in` from
/// its start.
#[derive(Debug)]
struct Timed {
    name: &'static str,
    spent: Duration,
    deadline_in: Option<Duration>,
}

const fn s(secs: u64) -> Duration {
    Duration::from_secs(secs)
}

static RESUMED: Timed = Timed { name: "resumed", spent: s(590), deadline_in: None };
static LATE: Timed = Timed { name: "late", spent: s(660), deadline_in: None };
static DUE: Timed = Timed { name: "due", spent: Duration::ZERO, deadline_in: Some(s(10)) };

impl NodeKind for Timed {
    fn name(&self) -> &'static str {
        self.name
    }

    fn summary(&self) -> &'static str {
        "A REST call run with a fixed timing."
    }

    fn fields(&self) -> &'static [Field] {
        RestCall.fields()
    }

    fn compile(&self, cx: &mut CompileCx<'_>) -> Option<Compiled> {
        let (exec, fields, _) = RestCall.compile_exec(cx)?;
        let timed = TimedExec { exec, spent: self.spent, deadline_in: self.deadline_in };
        Some(Compiled::new(Box::new(timed), fields))
    }
}

#[derive(Debug)]
struct TimedExec {
    exec: RestCallExec,
    spent: Duration,
    deadline_in: Option<Duration>,
}

impl NodeExec for TimedExec {
    fn label(&self) -> String {
        self.exec.label()
    }

    fn describe(&self) -> serde_json::Value {
        self.exec.describe()
    }

    fn run<'a>(&'a self, cx: NodeCx<'a>) -> BoxFuture<'a, Result<NodeOutput, NodeError>> {
        let timing = Timing { deadline: self.deadline_in.map(|d| Instant::now() + d), spent: self.spent };
        Box::pin(async move { self.exec.execute_with(&cx, timing).await })
    }
}

static KINDS: &[&dyn NodeKind] = &[&RestCall, &RESUMED, &LATE, &DUE];
static REGISTRY: Registry = Registry { kinds: KINDS, integration_kinds: flowcat_nodes::INTEGRATION_KINDS };

/// Waits for Duo Mobile on Henry's desk phone, a landline that is never activated: the poll of
/// Wait for Duo Mobile Activation (every 3 s, at most 10 minutes), by number.
const WAIT: &str = r#"
id: t.wait
integrations: { duo_admin: { kind: duo_admin } }
nodes:
  - id: phone
    kind: KIND
    integration: duo_admin
    method: GET
    path: /admin/v1/phones
    query: { number: "+15555550104" }
    extract: { activated: "$.response[0].activated" }
    poll: { until: "{{self.activated}}", interval: 3s, timeout: 10m }
outputs:
  activated: "{{nodes.phone.activated}}"
"#;

async fn sim() -> Sim {
    Sim::start_seed("127.0.0.1:0".parse().expect("addr"), &Seed::demo(), Options::default()).await.expect("sim")
}

fn integrations(sim: &Sim) -> Integrations {
    let text = flowcat_sim::integrations::render(sim.addr(), &sim.state().integrations);
    flowcat_nodes::integrations::parse("sim.yaml".as_ref(), &text, &|_| None).expect("integrations")
}

/// Runs `WAIT` with its node of kind `kind`: the record, and the virtual time it took.
async fn wait(kind: &str) -> (RunRecord, Duration) {
    let sim = sim().await;
    let source = Arc::new(Source { path: "t.yaml".into(), text: WAIT.replace("KIND", kind) });
    let catalog = Catalog::load(vec![source], &REGISTRY);
    assert_eq!(catalog.diagnostics().filter(|d| d.is_error()).count(), 0);
    let started = Instant::now();
    let record = Flowcat::new(catalog, integrations(&sim)).run("t.wait", json!({})).await.expect("runs");
    let took = started.elapsed();
    sim.shutdown().await;
    (record, took)
}

fn polls(record: &RunRecord) -> u64 {
    let detail = record.node("phone").and_then(|n| n.detail.as_ref()).expect("the poll's detail").get();
    detail["polls"].as_u64().expect("polls")
}

#[tokio::test(start_paused = true)]
async fn a_resumed_wait_counts_the_time_it_already_spent() {
    // 9 min 50 s spent before the restart: polls at 0, 3, 6 and 9 s, then the bound.
    let (record, took) = wait("resumed").await;
    let error = record.error.as_ref().expect("the bound was reached");
    assert_eq!(error.code, "poll_timeout", "{error:?}");
    assert_eq!(polls(&record), 4);
    assert!(took >= s(9) && took < s(10), "{took:?}");
    // Past its bound already: one last look, and no pause.
    let (record, took) = wait("late").await;
    assert_eq!(record.error.as_ref().map(|e| e.code.as_str()), Some("poll_timeout"));
    assert_eq!(polls(&record), 1);
    assert!(took < s(1), "{took:?}");
}

#[tokio::test(start_paused = true)]
async fn a_poll_stops_before_a_pause_that_would_pass_the_deadline() {
    // Due in 10 s: polls at 0, 3, 6 and 9 s; the next pause would end at 12 s.
    let (record, took) = wait("due").await;
    let error = record.error.as_ref().expect("the deadline came");
    assert_eq!((error.node.as_str(), error.code.as_str()), ("phone", "deadline"), "{error:?}");
    assert!(
        error
            .message
            .starts_with("the run's deadline comes before the next poll of `GET /admin/v1/phones`, due in 3000 ms"),
        "{}",
        error.message
    );
    assert_eq!(polls(&record), 4);
    assert!(took >= s(9) && took < s(10), "{took:?}");
}

#[tokio::test(start_paused = true)]
async fn a_429_storm_ends_at_the_deadline_not_after_it() {
    let sim = sim().await;
    let admin = integrations(&sim).get("duo_admin").expect("the Admin API application").clone();
    let mut faults = Faults::default();
    faults.apply_spec("route=GET /admin/v1/users,kind=429,count=100,retry_after=20").expect("a fault");
    sim.set_faults(faults).expect("faults");
    let mut call = Call::new("GET", "/admin/v1/users");
    let started = Instant::now();
    call.deadline = Some(started + s(50));
    // At 0, 20 and 40 s; the next attempt would be due at 60 s, after the deadline.
    let err = send(&Clients::new(), &admin, &call).await.expect_err("the deadline");
    assert!(matches!(err, CallError::Deadline { unknown: false, .. }), "{err:?}");
    assert_eq!(err.attempts().len(), 3);
    assert_eq!(
        err.to_string(),
        "the run's deadline comes before its next attempt, due in 20000 ms: `GET /admin/v1/users` was stopped"
    );
    let took = started.elapsed();
    assert!(took >= s(40) && took < s(41), "{took:?}");
    sim.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_held_long_poll_is_cut_at_the_deadline() {
    let sim = sim().await;
    let auth = integrations(&sim).get("duo_auth").expect("the Auth API application").clone();
    let clients = Clients::new();
    // carol never answers: Duo would hold the status call until the push expires at 60 s.
    let mut push = Call::new("POST", "/auth/v2/auth");
    let body = json!({"factor": "push", "device": "auto", "async": "1", "username": "carol"});
    push.body = body.as_object().cloned();
    let reply = send(&clients, &auth, &push).await.expect("pushed");
    let txid = reply.body["response"]["txid"].as_str().expect("a txid").to_owned();
    let mut status = Call::new("GET", "/auth/v2/auth_status");
    status.query.push(("txid".into(), txid));
    status.timeout = s(75);
    let started = Instant::now();
    status.deadline = Some(started + s(30));
    let err = send(&clients, &auth, &status).await.expect_err("the deadline");
    assert!(err.outcome_unknown(), "{err:?}");
    assert_eq!(
        err.to_string(),
        "the run's deadline passed while it waited for its answer: `GET /auth/v2/auth_status` was stopped; its outcome is unknown"
    );
    let took = started.elapsed();
    assert!(took >= s(30) && took < s(31), "{took:?}");
    // Once it has passed, nothing more is sent.
    let err = send(&clients, &auth, &status).await.expect_err("past the deadline");
    assert!(err.attempts().is_empty() && !err.outcome_unknown(), "{err:?}");
    sim.shutdown().await;
}
