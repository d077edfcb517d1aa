//! Durable runs through the real binary and a real simulator: Ctrl-C during a wait, resume,
//! a write in doubt settled by a person (`--resend`, `runs abandon`), and twenty runs with one
//! key sending one email.

use crate::common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Output, Sim, TempDir};
use serde_json::Value;

fn flowcat(state: &TempDir, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut all = vec![("FLOWCAT_STATE_DIR", state.str())];
    all.extend_from_slice(env);
    common::flowcat_in(Path::new(env!("CARGO_MANIFEST_DIR")), args, &all)
}

fn pushes(sim: &Sim) -> usize {
    sim.audit().iter().filter(|e| e["change"] == "push.send").count()
}

fn only_run(state: &TempDir) -> Value {
    let out = flowcat(state, &["runs", "list", "--format", "json"], &[]);
    let runs: Value = serde_json::from_str(&out.stdout)
        .unwrap_or_else(|e| panic!("`runs list` gave no JSON ({e}): {}\nstderr: {}", out.stdout, out.stderr));
    assert_eq!(runs.as_array().map(Vec::len), Some(1), "{runs:#}");
    runs[0].clone()
}

/// Ctrl-C while the push waits for its answer: no new step starts, the run says how to resume,
/// exits 130; the resumed run polls the same push (no second push) and ends as it would have.
#[test]
fn ctrl_c_stops_a_waiting_run_and_resume_finishes_it_without_a_second_push() {
    // The push is answered after 5 s of Duo's time; at 1x that is 5 real seconds.
    let sim = Sim::start_args("ctrl-c", None, &["--time-scale", "1"]);
    let state = TempDir::new("ctrl-c");
    let integrations = sim.integrations.to_str().expect("utf-8");
    let child = common::spawn_flowcat(
        env!("CARGO_MANIFEST_DIR").as_ref(),
        &["run", "duo.auth.verify_push", "-i", "username=alice", "--integrations", integrations],
        state.path(),
    );
    // Wait until the push was sent, then interrupt twice (the second abandons the poll in flight).
    let t0 = Instant::now();
    while pushes(&sim) == 0 {
        assert!(t0.elapsed() < Duration::from_secs(20), "the push was never sent");
        std::thread::sleep(Duration::from_millis(20));
    }
    let pid = child.id().to_string();
    for _ in 0..2 {
        let kill = Command::new("kill").args(["-INT", &pid]).status().expect("kill runs");
        assert!(kill.success());
        std::thread::sleep(Duration::from_millis(200));
    }
    let out = child.wait_with_output().expect("ends");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{stderr}");
    let run = only_run(&state);
    let id = run["info"]["id"].as_str().expect("an id").to_owned();
    assert!(stderr.contains(&format!("flowcat resume {id}")), "{stderr}");
    assert_eq!(run["status"], "interrupted");
    assert!(t0.elapsed() < Duration::from_secs(4), "stopped at once, not after the push's answer");

    let out = flowcat(&state, &["resume", &id, "--integrations", integrations, "--json"], &[]);
    assert_eq!(out.code, 0, "{}", out.snapshot());
    let record: Value = serde_json::from_str(&out.stdout).expect("a record");
    assert_eq!(record["outputs"]["verified"], true);
    assert_eq!(pushes(&sim), 1, "the resumed run polls the push it sent, it does not send another");
    assert_eq!(only_run(&state)["status"], "succeeded");
}

/// A push journaled as about to be sent when the process died: nobody can tell whether it went
/// out, so resume stops for a person; `--resend push` after checking sends it, once.
#[test]
fn a_push_in_doubt_waits_for_a_person_then_resend_sends_it_once() {
    let sim = Sim::start_args("resend", None, &["--time-scale", "100"]);
    let state = TempDir::new("resend");
    let integrations = sim.integrations.to_str().expect("utf-8");
    let run = ["run", "duo.auth.send_push", "-i", "username=alice", "--integrations", integrations];
    let out = flowcat(&state, &run, &[("FLOWCAT_CRASH_AT", "intent:push")]);
    assert_eq!(out.code, -1, "killed at the crash point: {}", out.snapshot());
    assert_eq!(pushes(&sim), 0, "it died before sending");
    let id = only_run(&state)["info"]["id"].as_str().expect("id").to_owned();

    let out = flowcat(&state, &["resume", &id, "--integrations", integrations], &[]);
    assert_eq!(out.code, 3, "{}", out.snapshot());
    assert!(out.stdout.contains("POST /auth/v2/auth"), "the request is named: {}", out.snapshot());
    assert!(out.stderr.contains(&format!("flowcat resume {id} --resend push")), "{}", out.snapshot());
    assert!(out.stderr.contains(&format!("flowcat runs abandon {id}")), "{}", out.snapshot());
    assert_eq!(pushes(&sim), 0, "nothing is re-sent blindly");
    assert_eq!(only_run(&state)["status"], "needs_attention");

    let wrong = flowcat(&state, &["resume", &id, "--integrations", integrations, "--resend", "preauth"], &[]);
    assert_eq!(wrong.code, 2, "only a write in doubt can be re-sent: {}", wrong.snapshot());
    let out = flowcat(&state, &["resume", &id, "--integrations", integrations, "--resend", "push", "--json"], &[]);
    assert_eq!(out.code, 0, "{}", out.snapshot());
    assert_eq!(pushes(&sim), 1);
}

/// A push sent and then the process died: a person who finds it arrived gives the run up.
#[test]
fn a_run_in_doubt_can_be_abandoned_and_is_then_never_resumed() {
    let sim = Sim::start_args("abandon", None, &["--time-scale", "100"]);
    let state = TempDir::new("abandon");
    let integrations = sim.integrations.to_str().expect("utf-8");
    let run = ["run", "duo.auth.send_push", "-i", "username=alice", "--integrations", integrations];
    let out = flowcat(&state, &run, &[("FLOWCAT_CRASH_AT", "sent:push")]);
    assert_eq!(out.code, -1, "{}", out.snapshot());
    assert_eq!(pushes(&sim), 1);
    let id = only_run(&state)["info"]["id"].as_str().expect("id").to_owned();
    assert_eq!(flowcat(&state, &["resume", &id, "--integrations", integrations], &[]).code, 3);

    let out = flowcat(&state, &["runs", "abandon", &id], &[]);
    assert_eq!(out.code, 0, "{}", out.snapshot());
    let run = only_run(&state);
    assert_eq!(run["status"], "failed");
    let out = flowcat(&state, &["runs", "show", &id, "--format", "json"], &[]);
    let shown: Value = serde_json::from_str(&out.stdout).expect("JSON");
    assert_eq!(shown["record"]["error"]["code"], "abandoned");
    let again = flowcat(&state, &["resume", &id, "--integrations", integrations], &[]);
    assert_eq!(again.code, 2, "{}", again.snapshot());
    assert_eq!(pushes(&sim), 1, "never sent twice");
}

/// Two help-desk tickets for one person, twenty times over: twenty `flowcat run` processes at
/// once for one user's enrolment (keyed by username) send one enrolment email, and every one of
/// them prints the same run's record.
#[test]
fn twenty_concurrent_runs_with_one_key_send_one_email() {
    let sim = Sim::start_args("keys", None, &["--time-scale", "100"]);
    let state = TempDir::new("keys");
    let integrations = sim.integrations.to_str().expect("utf-8");
    let children: Vec<_> = (0..20)
        .map(|_| {
            Command::new(env!("CARGO_BIN_EXE_flowcat"))
                .args(["run", "duo.admin.enroll_user", "-i", "username=newbie", "-i", "email=newbie@example.com"])
                .args(["--integrations", integrations, "--json"])
                .current_dir(env!("CARGO_MANIFEST_DIR"))
                .env("NO_COLOR", "1")
                .env("FLOWCAT_STATE_DIR", state.path())
                .env_remove("RUST_LOG")
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("starts")
        })
        .collect();
    let mut ids = std::collections::BTreeSet::new();
    for child in children {
        let out = child.wait_with_output().expect("ends");
        assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
        let record: Value = serde_json::from_slice(&out.stdout).expect("a record");
        assert_eq!(record["outputs"]["outcome"], "enrolled", "{record:#}");
        ids.insert(record["id"].as_str().expect("an id").to_owned());
    }
    assert_eq!(ids.len(), 1, "one run: {ids:?}");
    let emails = sim.audit().iter().filter(|e| e["change"] == "user.enroll").count();
    assert_eq!(emails, 1);
}
