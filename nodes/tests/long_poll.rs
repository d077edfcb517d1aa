//! Duo's long-poll, over real HTTP to the simulator on 127.0.0.1: an `auth_status` call that
//! outlives its time limit is "still waiting", not a failure; and the catalog's push flows hold
//! a call as long as Duo does. The 45-second answer runs on tokio's paused clock, which the
//! simulator's clock follows, so a minute of Duo's time takes none of ours.

use std::sync::Arc;

use flowcat_engine::Catalog;
use flowcat_engine::diag::Source;
use flowcat_engine::run::RunStatus;
use flowcat_nodes::REGISTRY;
use flowcat_nodes::embed::Flowcat;
use flowcat_sim::{Options, Seed, Sim};
use serde_json::{Value, json};

const IMPATIENT: &str = r#"
id: t.impatient
integrations: { duo_auth: { kind: duo_auth } }
inputs: { username: { type: string } }
nodes:
  - id: push
    kind: rest_call
    integration: duo_auth
    method: POST
    path: /auth/v2/auth
    body: { factor: push, device: auto, async: "1", username: "{{inputs.username}}" }
    extract: { txid: $.response.txid }
  - id: wait
    kind: rest_call
    integration: duo_auth
    method: GET
    path: /auth/v2/auth_status
    query: { txid: "{{nodes.push.txid}}" }
    timeout: 100ms
    extract: { result: $.response.result }
    poll: { until: '{{ne self.result "waiting"}}', interval: 10ms, timeout: 10s }
outputs:
  result: "{{nodes.wait.result}}"
  polls: "{{nodes.wait.attempts}}"
"#;

async fn sim(seed: &Seed, time_scale: f64) -> Sim {
    let options = Options { time_scale, ..Options::default() };
    Sim::start_seed("127.0.0.1:0".parse().expect("addr"), seed, options).await.expect("sim")
}

fn flowcat(sim: &Sim, sources: Vec<(String, String)>) -> Flowcat {
    let text = flowcat_sim::integrations::render(sim.addr(), &sim.state().integrations);
    let file = flowcat_nodes::integrations::parse("sim.yaml".as_ref(), &text, &|_| None).expect("integrations");
    let sources = sources.into_iter().map(|(path, text)| Arc::new(Source { path, text })).collect();
    let catalog = Catalog::load(sources, &REGISTRY);
    let errors: Vec<String> = catalog.diagnostics().filter(|d| d.is_error()).map(|d| d.render(false)).collect();
    assert!(errors.is_empty(), "{errors:?}");
    Flowcat::new(catalog, file)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_status_call_that_times_out_counts_as_still_waiting() {
    // alice answers after 5 s of Duo's time: 250 ms at 20x, while each call gives up at 100 ms.
    let sim = sim(&Seed::demo(), 20.0).await;
    let f = flowcat(&sim, vec![("t.yaml".into(), IMPATIENT.into())]);
    let rec = f.run("t.impatient", json!({"username": "alice"})).await.expect("runs");
    assert_eq!(rec.status, RunStatus::Succeeded, "{:?}", rec.error);
    assert_eq!(rec.outputs["result"], "allow");
    let polls = rec.outputs["polls"].as_u64().expect("polls");
    assert!(polls >= 2, "the first calls timed out and were polled again: {polls}");
    sim.shutdown().await;
}

/// The catalog's push flows and their subflows, as `flowcat run` loads them; `edit` may change
/// the text of `check-push-status.yaml`.
fn push_flows(edit: impl Fn(String) -> String) -> Vec<(String, String)> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../flows/duo");
    ["verify-push.yaml", "send-push.yaml", "check-push-status.yaml", "retrieve-user-id.yaml"]
        .iter()
        .map(|name| {
            let text = std::fs::read_to_string(dir.join(name)).expect("a catalog flow");
            let text = if *name == "check-push-status.yaml" { edit(text) } else { text };
            (format!("flows/duo/{name}"), text)
        })
        .collect()
}

fn slow_seed() -> Seed {
    let mut seed: Value = serde_json::to_value(Seed::demo()).expect("seed");
    seed["users"] = json!([{ "username": "slow", "phones": ["+15555550402"], "push_delay_ms": 45000 }]);
    seed["phones"] = json!([{ "number": "+15555550402", "type": "mobile", "platform": "apple ios" }]);
    // The demo's groups, tokens and past authentications name the demo's users, replaced here.
    for key in ["groups", "tokens", "auth_log"] {
        seed[key] = json!([]);
    }
    serde_json::from_value(seed).expect("a seed")
}

/// Runs `duo.auth.verify_push` for a user who answers after 45 s; the `wait` node's polls.
async fn verify_slow_user(edit: impl Fn(String) -> String) -> (Value, u64) {
    let sim = sim(&slow_seed(), 1.0).await;
    let f = flowcat(&sim, push_flows(edit));
    let rec = f.run("duo.auth.verify_push", json!({"username": "slow"})).await.expect("runs");
    sim.shutdown().await;
    let wait = rec.node("wait").and_then(|n| n.subflow.as_ref()).and_then(|r| r.node("wait")).expect("the wait");
    let polls = wait.result.as_ref().and_then(|r| r["attempts"].as_u64()).unwrap_or(0);
    (Value::Object(rec.outputs.clone()), polls)
}

#[tokio::test(start_paused = true)]
async fn a_push_answered_after_45_seconds_verifies_with_one_held_status_call() {
    let (outputs, polls) = verify_slow_user(|text| text).await;
    assert_eq!(outputs["outcome"], "allow", "{outputs}");
    assert_eq!(outputs["verified"], true);
    assert_eq!(polls, 1, "Duo held one call for 45 s and the flow waited for it");
}

#[tokio::test(start_paused = true)]
async fn with_a_30_second_limit_the_same_push_needs_a_second_call() {
    // What the catalog did before: the default 30 s limit cut Duo's hold short. The poll now
    // takes that as "still waiting", so the user is verified all the same, with one more call.
    let (outputs, polls) = verify_slow_user(|text| text.replace("timeout: 75s", "timeout: 30s")).await;
    assert_eq!(outputs["verified"], true, "{outputs}");
    assert_eq!(polls, 2);
}
