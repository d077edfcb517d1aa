//! `flowcat signal` and `wait_for` through the real binary, against the simulator: a run that
//! waits says how to send its signal and keeps waiting; `flowcat signal` from another process
//! refuses a wrong payload, a signal not awaited and an unknown run (exit 1, the reason), then
//! delivers (exit 0) and the run goes on; Ctrl-C parks a waiting run at once, and a run killed
//! while it waits is resumed with a signal delivered while no process held it.

use crate::common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{Output, Sim, TempDir, Waiting};
use serde_json::Value;

const FLOW: &str = "examples/offboard-with-approval.yaml";

fn flowcat(state: &TempDir, args: &[&str]) -> Output {
    common::flowcat_in(Path::new(env!("CARGO_MANIFEST_DIR")), args, &[("FLOWCAT_STATE_DIR", state.str())])
}

fn run_args<'a>(sim: &'a Sim, user: &'a str) -> Vec<&'a str> {
    let integrations = sim.integrations.to_str().expect("UTF-8");
    vec!["run", FLOW, "-i", user, "--integrations", integrations, "--json"]
}

fn runs(state: &TempDir, status: &str) -> Vec<Value> {
    let out = flowcat(state, &["runs", "list", "--status", status, "--format", "json"]);
    assert_eq!(out.code, 0, "{}", out.snapshot());
    serde_json::from_str::<Value>(&out.stdout).expect("JSON runs").as_array().cloned().unwrap_or_default()
}

#[test]
fn a_waiting_run_is_signalled_from_another_process_after_refusals() {
    let sim = Sim::start("signal-e2e");
    let state = TempDir::new("signal-e2e");
    let waiting = Waiting::spawn(&run_args(&sim, "username=alice"), state.path(), &[], "approval");
    let id = waiting.id.clone();
    assert!(
        waiting
            .stderr
            .contains(&format!("flowcat signal {id} approval --data '{{\"approved\":true,\"approver\":\"…\"}}'")),
        "{}",
        waiting.stderr
    );
    assert!(
        waiting.stderr.contains("for signal `approval` (approved: boolean, approver: string), for at most "),
        "{}",
        waiting.stderr
    );
    // The line comes once the journal has the wait: another process sees the run waiting at
    // once (it was said a moment before, and a signal sent on it could be refused).
    let listed = runs(&state, "waiting");
    assert_eq!(listed.len(), 1, "{listed:#?}");
    assert_eq!(listed[0]["waiting"]["signal"], "approval");
    assert_eq!(listed[0]["waiting"]["held"], true);

    let refused = [
        (
            vec!["signal", &id, "approval", "--data", r#"{"approved": "yes", "approver": "m"}"#],
            "`approved` must be a boolean",
        ),
        (vec!["signal", &id, "approval", "-d", r#"{"approved": true}"#], "field `approver` (string) is missing"),
        (vec!["signal", &id, "callback", "--data", "{}"], "does not wait for a signal `callback`"),
        (vec!["signal", "r-unknown", "approval", "--data", "{}"], "no run `r-unknown`"),
    ];
    for (args, why) in refused {
        let out = flowcat(&state, &args);
        assert_eq!(out.code, 1, "{args:?}: {}", out.snapshot());
        assert!(out.stderr.contains(why), "{args:?}: {}", out.stderr);
    }
    let usage = flowcat(&state, &["signal", &id, "approval", "--data", "{not json"]);
    assert_eq!(usage.code, 2, "{}", usage.snapshot());
    assert!(usage.stderr.contains("is not JSON"), "{}", usage.stderr);
    assert!(sim.audit().is_empty(), "nothing done before the approval");

    let file = state.path().join("approval.json");
    std::fs::write(&file, r#"{"approved": true, "approver": "manager@example.com"}"#).expect("write");
    let at = format!("@{}", file.display());
    let sent = flowcat(&state, &["signal", &id, "approval", "-d", &at]);
    assert_eq!(sent.code, 0, "{}", sent.snapshot());
    let out = waiting.finish();
    assert_eq!(out.code, 0, "{}", out.snapshot());
    let record: Value = serde_json::from_str(&out.stdout).expect("a record");
    assert_eq!(record["outputs"]["outcome"], "disabled");
    assert_eq!(record["outputs"]["approver"], "manager@example.com");
    let again = flowcat(&state, &["signal", &id, "approval", "--data", r#"{"approved": false, "approver": "x"}"#]);
    assert_eq!(again.code, 1);
    assert!(again.stderr.contains("has succeeded already"), "{}", again.stderr);
}

#[test]
fn ctrl_c_parks_a_waiting_run_at_once_and_resume_takes_the_signal_sent_meanwhile() {
    let sim = Sim::start("signal-ctrl-c");
    let state = TempDir::new("signal-ctrl-c");
    let waiting = Waiting::spawn(&run_args(&sim, "username=alice"), state.path(), &[], "approval");
    let id = waiting.id.clone();
    let t0 = Instant::now();
    let kill = Command::new("kill").args(["-INT", &waiting.child.id().to_string()]).status().expect("kill runs");
    assert!(kill.success());
    let out = waiting.finish();
    assert_eq!(out.code, 130, "{}", out.snapshot());
    assert!(out.stderr.contains(&format!("flowcat resume {id}")), "{}", out.stderr);
    // Parked at once, not abandoned after the drain's 5 s grace: the record says which (a wall
    // clock bound would depend on the machine's load).
    let shown = flowcat(&state, &["runs", "show", &id, "--format", "json"]);
    assert!(shown.stdout.contains("the run was stopped while it waited"), "{}", shown.snapshot());
    assert!(!shown.stdout.contains("abandoned"), "{}", shown.snapshot());
    assert!(t0.elapsed() < Duration::from_secs(60), "it ended");
    let listed = runs(&state, "waiting");
    assert_eq!(listed.len(), 1, "{listed:#?}");
    assert_eq!(listed[0]["waiting"]["held"], false);

    // Delivered while no process holds the run: kept for it.
    let sent = flowcat(&state, &["signal", &id, "approval", "--data", r#"{"approved": false, "approver": "m"}"#]);
    assert_eq!(sent.code, 0, "{}", sent.snapshot());
    let integrations = sim.integrations.to_str().expect("UTF-8");
    let out = flowcat(&state, &["resume", &id, "--integrations", integrations, "--json"]);
    assert_eq!(out.code, 0, "{}", out.snapshot());
    let record: Value = serde_json::from_str(&out.stdout).expect("a record");
    assert_eq!(record["outputs"]["outcome"], "denied");
    assert!(sim.audit().is_empty(), "denied: nothing changed");
}

#[test]
fn a_run_killed_while_it_waits_resumes_and_waits_again() {
    let sim = Sim::start("signal-kill");
    let state = TempDir::new("signal-kill");
    // kill -9 right after the wait's start is journaled.
    let mut args = run_args(&sim, "username=bob");
    args.extend(["-i", "action=delete"]);
    let crashed = common::flowcat_in(
        Path::new(env!("CARGO_MANIFEST_DIR")),
        &args,
        &[("FLOWCAT_STATE_DIR", state.str()), ("FLOWCAT_CRASH_AT", "started:approval")],
    );
    assert_eq!(crashed.code, -1, "{}", crashed.snapshot());
    let listed = runs(&state, "interrupted");
    assert_eq!(listed.len(), 1, "{listed:#?}");
    let id = listed[0]["info"]["id"].as_str().expect("an id").to_owned();
    let integrations = sim.integrations.to_str().expect("UTF-8");
    let resumed =
        Waiting::spawn(&["resume", &id, "--integrations", integrations, "--json"], state.path(), &[], "approval");
    assert!(resumed.stderr.contains("for at most 2d 23h"), "{}", resumed.stderr);
    let sent = flowcat(&state, &["signal", &id, "approval", "--data", r#"{"approved": true, "approver": "m"}"#]);
    assert_eq!(sent.code, 0, "{}", sent.snapshot());
    let out = resumed.finish();
    assert_eq!(out.code, 0, "{}", out.snapshot());
    let record: Value = serde_json::from_str(&out.stdout).expect("a record");
    assert_eq!(record["outputs"]["outcome"], "deleted");
}

/// `Flowcat::signal`, the embedding API's door to the same delivery: refusals as typed errors
/// naming the reason (the payload's problems, the signals awaited, an unknown run), then the
/// delivery that wakes the run this process holds, and a second delivery refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_embedding_api_signals_a_run_it_holds_and_refuses_as_the_cli_does() {
    use flowcat_engine::journal::Delivery;
    use flowcat_nodes::embed::{Error, Flowcat};
    use std::sync::Arc;

    let sim = Sim::start("signal-embed");
    let state = TempDir::new("signal-embed");
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let journal = flowcat_journal::Journal::open(state.path()).expect("a journal");
    let flowcat = Arc::new(
        Flowcat::open(&[root.join("flows"), root.join("examples")], &sim.integrations)
            .expect("the catalog and the simulator's integrations")
            .with_store(Arc::new(journal)),
    );
    let (begun, id) = tokio::sync::oneshot::channel();
    let mut inputs = serde_json::Map::new();
    inputs.insert("username".into(), "alice".into());
    let how = flowcat_nodes::hall::Durably { begun: Some(begun), ..Default::default() };
    let running = {
        let flowcat = Arc::clone(&flowcat);
        tokio::spawn(async move { flowcat.run_durably("examples.offboard_with_approval", inputs, how).await })
    };
    let id = id.await.expect("the run's id");
    let refused = |r: Result<(), Error>| match r {
        Err(Error::Signal { delivery, message }) => (delivery, message),
        other => panic!("not a refusal: {other:?}"),
    };
    let (delivery, message) = refused(flowcat.signal(&id, "approval", &serde_json::json!({"approved": "yes"})).await);
    assert!(matches!(delivery, Delivery::BadPayload { .. }), "{delivery:?}");
    assert!(message.contains("approved"), "{message}");
    let (delivery, message) = refused(flowcat.signal(&id, "approvl", &serde_json::json!({})).await);
    assert!(matches!(&delivery, Delivery::NotAwaited { awaited } if awaited == &["approval"]), "{delivery:?}");
    assert!(message.contains("approval"), "{message}");
    let (delivery, _) = refused(flowcat.signal("r0nosuchrun00000", "approval", &serde_json::json!({})).await);
    assert_eq!(delivery, Delivery::UnknownRun);
    assert!(!running.is_finished(), "refusals wake nothing");

    let approval = serde_json::json!({"approved": false, "approver": "manager@example.com"});
    flowcat.signal(&id, "approval", &approval).await.expect("delivered");
    let ran = tokio::time::timeout(Duration::from_secs(30), running).await.expect("woke").expect("task");
    let record = ran.expect("ran").record().clone();
    assert_eq!(record.outputs["outcome"], "denied", "{record:?}");
    assert_eq!(record.outputs["approver"], "manager@example.com");
    let (delivery, _) = refused(flowcat.signal(&id, "approval", &approval).await);
    assert!(matches!(delivery, Delivery::Finished { .. } | Delivery::AlreadyDelivered), "{delivery:?}");
    assert!(sim.audit().is_empty(), "denied: nothing changed");
}
