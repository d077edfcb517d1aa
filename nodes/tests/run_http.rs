//! The executor over real HTTP, against the Duo simulator on 127.0.0.1: parallel branches
//! overlap, a failure cancels the other branch, hostile path values stay in one segment, bad
//! inputs are refused before any request, and a canary secret never leaks.

use std::sync::Arc;
use std::time::Instant;

use flowcat_engine::Catalog;
use flowcat_engine::diag::Source;
use flowcat_engine::run::{NodeStatus, RunStatus};
use flowcat_nodes::REGISTRY;
use flowcat_nodes::embed::{Error, Flowcat};
use flowcat_sim::{Faults, Seed, Sim};
use serde_json::json;

const CANARY: &str = "CANARY-SKEY-0123456789abcdefghijklmnopqrs";

const FLOWS: &str = r#"
id: t.parallel
integrations: { duo_admin: { kind: duo_admin } }
inputs:
  a: { type: string }
  b: { type: string }
nodes:
  - id: first
    kind: rest_call
    integration: duo_admin
    method: GET
    path: /admin/v1/users
    query: { username: "{{inputs.a}}" }
  - id: second
    kind: rest_call
    integration: duo_admin
    method: GET
    path: /admin/v1/users
    query: { username: "{{inputs.b}}" }
outputs:
  a: "{{nodes.first.status}}"
  b: "{{nodes.second.status}}"
"#;

const FAILING: &str = r#"
id: t.failing
integrations: { duo_admin: { kind: duo_admin } }
inputs:
  user_id: { type: string }
nodes:
  - id: slow
    kind: rest_call
    integration: duo_admin
    method: GET
    path: /admin/v1/phones
  - id: missing
    kind: rest_call
    integration: duo_admin
    method: GET
    path: /admin/v1/users/{{inputs.user_id}}
outputs:
  status: "{{nodes.missing.status}}"
"#;

const PAGED: &str = r#"
id: t.paged
integrations: { duo_admin: { kind: duo_admin } }
nodes:
  - id: all
    kind: rest_call
    integration: duo_admin
    method: GET
    path: /admin/v1/users
    query: { limit: 2 }
    pages: true
    extract:
      names: { path: "$.response[*].username", many: true }
  - id: first_page
    kind: rest_call
    integration: duo_admin
    method: GET
    path: /admin/v1/users
    query: { limit: 2 }
    extract:
      names: { path: "$.response[*].username", many: true }
  - id: impatient
    kind: rest_call
    integration: duo_admin
    method: GET
    path: /admin/v1/phones
    retry: { max_attempts: 2, initial: 10ms, max: 10ms }
    on_error: continue
outputs:
  all: "{{nodes.all.names}}"
  first: "{{nodes.first_page.names}}"
  impatient: "{{nodes.impatient.error.code}}"
"#;

/// The simulator with its demo users, its Admin key replaced by the canary.
async fn sim() -> Sim {
    let mut seed = Seed::demo();
    for i in &mut seed.integrations {
        if i.name == "duo_admin" {
            i.skey = flowcat_sim::SecretKey::new(CANARY);
        }
    }
    Sim::start_seed("127.0.0.1:0".parse().expect("addr"), &seed, flowcat_sim::Options::default()).await.expect("sim")
}

fn flowcat(sim: &Sim) -> Flowcat {
    let text = flowcat_sim::integrations::render(sim.addr(), &sim.state().integrations);
    let file = flowcat_nodes::integrations::parse("sim.yaml".as_ref(), &text, &|_| None).expect("integrations");
    let sources = [("p.yaml", FLOWS), ("f.yaml", FAILING), ("g.yaml", PAGED)]
        .into_iter()
        .map(|(p, t)| Arc::new(Source { path: p.into(), text: t.into() }))
        .collect();
    let catalog = Catalog::load(sources, &REGISTRY);
    assert!(
        catalog.diagnostics().next().is_none(),
        "{:?}",
        catalog.diagnostics().map(|d| d.render(false)).collect::<Vec<_>>()
    );
    Flowcat::new(catalog, file)
}

fn faults(spec: &str) -> Faults {
    let mut f = Faults::default();
    f.apply_spec(spec).expect("fault spec");
    f
}

fn requests(sim: &Sim) -> u64 {
    sim.stats().values().sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn independent_nodes_run_at_the_same_time() {
    let sim = sim().await;
    sim.set_faults(faults("route=GET /admin/v1/users,kind=latency,ms=300")).expect("faults");
    let f = flowcat(&sim);
    let started = Instant::now();
    let rec = f.run("t.parallel", json!({"a": "alice", "b": "bob"})).await.expect("runs");
    let elapsed = started.elapsed();
    assert_eq!(rec.status, RunStatus::Succeeded, "{:?}", rec.error);
    let (a, b) = (rec.node("first").expect("first"), rec.node("second").expect("second"));
    // Each waited 300 ms; they overlapped: each started before the other ended.
    assert!(a.started_at < b.ended_at && b.started_at < a.ended_at, "{a:?}\n{b:?}");
    assert!(elapsed.as_millis() < 550, "two 300 ms calls in parallel took {elapsed:?}");
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failure_cancels_the_other_branch() {
    let sim = sim().await;
    sim.set_faults(faults("route=GET /admin/v1/phones,kind=latency,ms=3000")).expect("faults");
    let f = flowcat(&sim);
    let started = Instant::now();
    let rec = f.run("t.failing", json!({"user_id": "DUNOSUCHUSER0000000"})).await.expect("runs");
    assert!(started.elapsed().as_millis() < 2000, "the slow branch was waited for: {:?}", started.elapsed());
    assert_eq!(rec.status, RunStatus::Failed);
    let err = rec.error.clone().expect("failure");
    assert_eq!((err.node.as_str(), err.code.as_str()), ("missing", "duo_40401"), "{err:?}");
    assert_eq!(rec.node("slow").map(|n| n.status), Some(NodeStatus::Cancelled));
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_path_values_stay_inside_one_segment() {
    let sim = sim().await;
    let f = flowcat(&sim);
    for hostile in ["../admins", "a/b?x=1", "..", "%2e%2e", "x#frag"] {
        let rec = f.run("t.failing", json!({"user_id": hostile})).await.expect("runs");
        let node = rec.node("missing").expect("node");
        if hostile == ".." {
            // A dot segment, even encoded, is refused before anything is sent.
            assert_eq!(rec.error.as_ref().map(|e| e.code.as_str()), Some("refused"), "{:?}", rec.error);
            assert_eq!(node.attempts, 0);
            continue;
        }
        let detail = node.detail.as_ref().map(|d| d.get());
        let url = detail.as_ref().and_then(|d| d.pointer("/attempts/0/request/url")).and_then(|u| u.as_str());
        let url = url.unwrap_or_else(|| panic!("no url recorded: {node:?}")).to_owned();
        let path = url.split_once("/admin/v1/users/").map(|(_, p)| p.to_owned()).unwrap_or_default();
        assert!(!path.contains('/') && !path.contains('?') && !path.contains('#'), "{hostile} → {url}");
        // Duo (the simulator) saw a user id, which it does not know: 404, never another route.
        assert_eq!(rec.error.as_ref().map(|e| e.code.as_str()), Some("duo_40401"), "{hostile}: {:?}", rec.error);
    }
    let stats = sim.stats();
    assert_eq!(stats.get("GET /admin/v1/users/{user_id}"), Some(&4), "{stats:?}");
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_inputs_are_refused_before_any_request() {
    let sim = sim().await;
    let f = flowcat(&sim);
    let err = f.run("t.parallel", json!({"a": "alice"})).await.expect_err("missing input");
    assert!(matches!(err, Error::Run(_)), "{err}");
    assert!(err.to_string().contains("flow `t.parallel` needs input `b` (string)"), "{err}");
    let err = f.run("t.parallel", json!({"a": "alice", "b": ["x"]})).await.expect_err("wrong type");
    assert!(err.to_string().contains("expected a string"), "{err}");
    assert_eq!(requests(&sim), 0, "{:?}", sim.stats());
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_canary_secret_never_appears_in_records_errors_or_debug() {
    let sim = sim().await;
    let f = flowcat(&sim);
    let mut outputs = vec![format!("{f:?}")];
    let ok = f.run("t.parallel", json!({"a": "alice", "b": "bob"})).await.expect("runs");
    let failed = f.run("t.failing", json!({"user_id": "nobody"})).await.expect("runs");
    for rec in [&ok, &failed] {
        outputs.push(serde_json::to_string(rec).expect("json"));
        outputs.push(format!("{rec:?}"));
    }
    let refused = f.run("t.parallel", json!({})).await.expect_err("refused");
    outputs.push(refused.to_string());
    outputs.push(format!("{refused:?}"));
    assert!(ok.status == RunStatus::Succeeded && failed.status == RunStatus::Failed);
    for text in &outputs {
        assert!(!text.contains(CANARY), "the secret leaked: {text}");
        assert!(!text.contains("CANARY"), "part of the secret leaked: {text}");
    }
    let auth = serde_json::to_string(&ok).expect("json");
    assert!(auth.contains("\"authorization\":\"****\"") || auth.contains("\"Authorization\":\"****\""), "{auth}");
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_are_followed_and_a_node_retry_policy_wins() {
    let sim = sim().await;
    // Phones: rate limited three times, more than the node's two attempts allow.
    sim.set_faults(faults("route=GET /admin/v1/phones,kind=429,count=3")).expect("faults");
    let f = flowcat(&sim);
    let rec = f.run("t.paged", json!({})).await.expect("runs");
    assert_eq!(rec.status, RunStatus::Succeeded, "{:?}", rec.error);
    let all = rec.outputs["all"].as_array().cloned().unwrap_or_default();
    let first = rec.outputs["first"].as_array().cloned().unwrap_or_default();
    assert_eq!(first.len(), 2);
    let users = sim.state().users.len();
    assert!(users > 4, "the demo seed has {users} users");
    assert_eq!(all.len(), users, "every page joined: {all:?}");
    assert_eq!(&all[..2], &first[..]);
    // One request per page of two.
    assert_eq!(rec.node("all").map(|n| n.attempts), Some(users.div_ceil(2) as u32));
    assert_eq!(rec.outputs["impatient"], json!("rate_limited"));
    assert_eq!(rec.node("impatient").map(|n| n.attempts), Some(2));
    assert_eq!(sim.stats().get("GET /admin/v1/phones"), Some(&2));
    sim.shutdown().await;
}
