//! Crash tests: every catalog flow and example, killed at every node boundary and in the middle
//! of every write, then resumed — the simulator's audit log must show each write exactly once,
//! and the resumed run must end as the uninterrupted one did.
//!
//! The runs are the successful steps of the case files in `tests/duo_flows/`. For each, an
//! uninterrupted run gives the expected outputs, the expected state changes, and (from its
//! record) the crash points: for every node that ran, `started:PATH` and `finished:PATH` (node
//! boundaries), and for every node that sent a write, `intent:PATH` (journaled, not yet sent)
//! and `sent:PATH` (sent and answered, not yet journaled: the outcome is unknown). The binary
//! aborts at a point when `FLOWCAT_CRASH_AT` names it (like `kill -9`: nothing is flushed but
//! what the journal committed). Then `flowcat resume ID` runs, with a fresh process.
//!
//! A resumed run either finishes with the same outputs and the same state changes (no write
//! twice, none missing), or — only when a write that no read can confirm (a push, an SMS, an
//! enrolment email) was journaled as about to be sent, by the node crashed at or one beside it —
//! stops as "needs attention" (exit 3) naming the request, with nothing sent twice. The totals are printed (`cargo test --test e2e crash:: -- --nocapture`) and recorded in
//! docs/architecture.md ("The journal").

use crate::common;

use std::path::{Path, PathBuf};

use common::cases::{refs, resolve, save_control, substitute};
use common::{Output, Sim, TempDir};
use serde_json::{Map, Value};

fn cases_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/duo_flows")
}

/// How the crash points of one flow fared.
#[derive(Debug, Default)]
struct Tally {
    tried: usize,
    /// The point was never reached (e.g. the write was skipped in this case).
    unreached: usize,
    resumed_same: usize,
    needs_attention: usize,
}

/// Runs `flowcat ARGS` with this state folder and, when given, a crash point.
fn flowcat(state: &Path, args: &[&str], crash: Option<&str>) -> Output {
    let mut env = vec![("FLOWCAT_STATE_DIR", state.to_str().expect("UTF-8"))];
    if let Some(point) = crash {
        env.push(("FLOWCAT_CRASH_AT", point));
    }
    common::flowcat_in(Path::new(env!("CARGO_MANIFEST_DIR")), args, &env)
}

fn run_args<'a>(sim: &'a Sim, flow: &'a str, inputs: &'a [String], args: &'a [String]) -> Vec<&'a str> {
    let mut all = vec!["run", flow, "--integrations", sim.integrations.to_str().expect("UTF-8"), "--json"];
    for i in inputs {
        all.extend(["--input", i.as_str()]);
    }
    all.extend(refs(args));
    all
}

/// Runs `flowcat ARGS` journaling into `state` (aborting at `crash` when given) and, from
/// another process, delivers signal `name` with `data` as soon as the run is journaled (a
/// signal may come before the run reaches its `wait_for`). Whether it was delivered before the
/// process ended (it may crash first).
fn signalled(state: &Path, args: &[&str], crash: Option<&str>, name: &str, data: &str) -> (Output, bool) {
    use std::io::Read as _;
    let env: Vec<(&str, &str)> = crash.map(|point| ("FLOWCAT_CRASH_AT", point)).into_iter().collect();
    let mut child = common::spawn_flowcat_with(Path::new(env!("CARGO_MANIFEST_DIR")), args, state, &env);
    let drain = |mut pipe: Box<dyn std::io::Read + Send>| {
        std::thread::spawn(move || {
            let mut text = String::new();
            let _ = pipe.read_to_string(&mut text);
            text
        })
    };
    let stdout = drain(Box::new(child.stdout.take().expect("stdout")));
    let stderr = drain(Box::new(child.stderr.take().expect("stderr")));
    let mut delivered = false;
    let t0 = std::time::Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("the child") {
            break status;
        }
        if !delivered {
            if let Some(id) = listed_run(state) {
                let sent = flowcat(state, &["signal", &id, name, "--data", data], None);
                assert_eq!(sent.code, 0, "flowcat signal {id} {name}: {}", sent.snapshot());
                delivered = true;
            }
        }
        if t0.elapsed() > std::time::Duration::from_secs(60) {
            let _ = child.kill();
            panic!("flowcat {args:?} did not end within a minute (signal delivered: {delivered})");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    let out = Output {
        code: status.code().unwrap_or(-1),
        stdout: stdout.join().expect("stdout"),
        stderr: stderr.join().expect("stderr"),
    };
    (out, delivered)
}

/// The id of the run journaled in `state`, once there is one.
fn listed_run(state: &Path) -> Option<String> {
    let out = flowcat(state, &["runs", "list", "--format", "json"], None);
    let runs: Value = serde_json::from_str(&out.stdout).ok()?;
    let run = runs.as_array()?.first()?;
    run["info"]["id"].as_str().or(run["id"].as_str()).map(str::to_owned)
}

/// The id of the one run in `state`.
fn only_run(state: &Path) -> String {
    let out = flowcat(state, &["runs", "list", "--format", "json"], None);
    assert_eq!(out.code, 0, "{}", out.snapshot());
    let runs: Value = serde_json::from_str(&out.stdout).expect("a JSON list of runs");
    let runs = runs.as_array().expect("a list");
    assert_eq!(runs.len(), 1, "one run journaled: {runs:#?}");
    let id = runs[0]["info"]["id"].as_str().or(runs[0]["id"].as_str());
    id.expect("a run id").to_owned()
}

/// Every node path of a record that ran, and the paths of those that sent a write.
fn points(record: &Value, prefix: &str, out: &mut Vec<String>) {
    for node in record["nodes"].as_array().into_iter().flatten() {
        let path = format!("{prefix}{}", node["id"].as_str().expect("an id"));
        if matches!(node["status"].as_str(), Some("succeeded" | "failed")) {
            out.push(format!("started:{path}"));
            let writes = node["detail"]["attempts"].as_array().into_iter().flatten().any(|a| {
                let method = a["request"]["method"].as_str().unwrap_or("GET");
                method != "GET"
            });
            if writes {
                out.push(format!("intent:{path}"));
                out.push(format!("sent:{path}"));
            }
            out.push(format!("finished:{path}"));
        }
        if node["subflow"].is_object() {
            points(&node["subflow"], &format!("{path}/"), out);
        }
        // A `for_each` item runs at `<node>[<index>]`, journaled there once it finished.
        for item in node["items"].as_array().into_iter().flatten() {
            let item_path = format!("{path}[{}]", item["index"]);
            points(&item["record"], &format!("{item_path}/"), out);
            out.push(format!("finished:{item_path}"));
        }
    }
}

/// The state changes, sorted, with the ids Duo generates made alike (`DP…` → `DP*`).
fn changes(audit: &[Value]) -> Vec<String> {
    let mut all: Vec<String> = audit.iter().map(|e| generic(&format!("{} {}", e["change"], e["detail"]))).collect();
    all.sort();
    all
}

fn generic(text: &str) -> String {
    let b = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < b.len() {
        let id = b.len() >= i + 20
            && (b[i..].starts_with(b"DP") || b[i..].starts_with(b"DU"))
            && b[i + 2..i + 20].iter().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit());
        if id {
            out.push_str(&text[i..i + 2]);
            out.push('*');
            i += 20;
        } else {
            let c = text[i..].chars().next().expect("a char");
            out.push(c);
            i += c.len_utf8();
        }
    }
    out
}

/// Replays a case's steps before `target` (their controls and runs), then the controls of
/// `target`; the simulator is then where the target run starts.
fn prepare(sim: &Sim, flow: &str, steps: &[Value], target: usize, saved: &mut Map<String, Value>) {
    sim.control("POST", "/sim/reset", None);
    sim.clear_audit();
    saved.clear();
    for (i, step) in steps.iter().enumerate().take(target + 1) {
        for call in step["control"].as_array().into_iter().flatten() {
            let method = call["method"].as_str().unwrap_or("POST");
            let body = call.get("body").map(|b| resolve(b, saved));
            let (_, answer) = sim.control(method, call["path"].as_str().expect("a path"), body.as_ref());
            save_control(call, &answer, saved);
        }
        if i == target {
            break;
        }
        let state = TempDir::new("replay");
        let (inputs, args) = strings(step, saved);
        let out = flowcat(state.path(), &run_args(sim, step["flow"].as_str().unwrap_or(flow), &inputs, &args), None);
        if let Ok(record) = serde_json::from_str::<Value>(&out.stdout) {
            if let Some(o) = record["outputs"].as_object() {
                saved.extend(o.clone());
            }
        }
    }
    sim.clear_audit();
}

fn strings(step: &Value, saved: &Map<String, Value>) -> (Vec<String>, Vec<String>) {
    let get = |key: &str| -> Vec<String> {
        step[key].as_array().into_iter().flatten().map(|v| substitute(v.as_str().expect("a string"), saved)).collect()
    };
    (get("inputs"), get("args"))
}

fn crash_flow(stem: &str) -> Tally {
    let path = cases_dir().join(format!("{stem}.json"));
    let doc: Value = serde_json::from_str(&std::fs::read_to_string(&path).expect("the cases")).expect("JSON");
    let flow = doc["path"].as_str().or(doc["flow"].as_str()).expect("`flow`");
    let mut tally = Tally::default();
    // Each point once per flow: the cases of a flow share most of their nodes, and a point
    // already crashed at in an earlier case tells nothing new.
    let mut seen = std::collections::HashSet::new();
    for (n, case) in doc["cases"].as_array().expect("cases").iter().enumerate() {
        let steps = case["steps"].as_array().expect("steps");
        let seed = case["seed"].as_str().map(|s| {
            let text = std::fs::read_to_string(cases_dir().join("seeds").join(s)).expect("the seed");
            serde_json::from_str::<Value>(&text).expect("a JSON seed")
        });
        let mut args: Vec<&str> = case["sim"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
        if !args.contains(&"--time-scale") {
            args.extend(["--time-scale", "100"]);
        }
        let sim = Sim::start_args(&format!("crash-{stem}-{n}"), seed.as_ref(), &args);
        let mut saved = Map::new();
        for (k, step) in steps.iter().enumerate() {
            // Only runs that succeed, without faults injected by the case.
            if step["exit"].as_i64().unwrap_or(0) != 0 || steps[..=k].iter().any(|s| s.get("faults").is_some()) {
                continue;
            }
            let ctx = format!("{stem}.json › {} › step {}", case["name"].as_str().unwrap_or("?"), k + 1);
            let step_flow = step["flow"].as_str().unwrap_or(flow);
            // The uninterrupted run.
            prepare(&sim, flow, steps, k, &mut saved);
            let (inputs, extra) = strings(step, &saved);
            // A run that waits for a signal gets it from another process (the case's `signal`).
            let signal =
                step.get("signal").map(|s| (s["name"].as_str().expect("a signal `name`"), s["data"].to_string()));
            let run = |state: &Path, crash: Option<&str>| match &signal {
                None => (flowcat(state, &run_args(&sim, step_flow, &inputs, &extra), crash), false),
                Some((name, data)) => signalled(state, &run_args(&sim, step_flow, &inputs, &extra), crash, name, data),
            };
            let state = TempDir::new("golden");
            let (out, _) = run(state.path(), None);
            assert_eq!(out.code, 0, "{ctx}: the uninterrupted run\n{}", out.snapshot());
            let golden: Value = serde_json::from_str(&out.stdout).expect("a JSON record");
            let want_changes = changes(&sim.audit());
            let mut crash_points = Vec::new();
            points(&golden, &format!("{step_flow}#"), &mut crash_points);
            crash_points.retain(|p| seen.insert(p.clone()));
            let crash_points: Vec<String> =
                crash_points.iter().map(|p| p.replace(&format!("{step_flow}#"), "")).collect();
            for point in &crash_points {
                tally.tried += 1;
                let ctx = format!("{ctx} › {point}");
                prepare(&sim, flow, steps, k, &mut saved);
                let state = TempDir::new("crash");
                let (out, delivered) = run(state.path(), Some(point));
                if out.code == 0 {
                    tally.unreached += 1;
                    continue;
                }
                assert_eq!(out.code, -1, "{ctx}: the process was killed at the crash point\n{}", out.snapshot());
                let id = only_run(state.path());
                if let (Some((name, data)), false) = (&signal, delivered) {
                    // Killed before the signal could be delivered: it comes while nothing runs.
                    let sent = flowcat(state.path(), &["signal", &id, name, "--data", data], None);
                    assert_eq!(sent.code, 0, "{ctx}: flowcat signal\n{}", sent.snapshot());
                }
                let integrations = sim.integrations.to_str().expect("UTF-8");
                let out = flowcat(state.path(), &["resume", &id, "--integrations", integrations, "--json"], None);
                let record: Value = serde_json::from_str(&out.stdout)
                    .unwrap_or_else(|e| panic!("{ctx}: resume printed no record: {e}\n{}", out.snapshot()));
                let got_changes = changes(&sim.audit());
                match out.code {
                    0 => {
                        assert!(
                            same_shape(&golden["outputs"], &record["outputs"]),
                            "{ctx}: outputs\n want: {:#}\n  got: {:#}",
                            golden["outputs"],
                            record["outputs"]
                        );
                        assert_eq!(got_changes, want_changes, "{ctx}: every write exactly once");
                        tally.resumed_same += 1;
                    }
                    3 => {
                        // A write journaled as about to be sent (by this node, or by one running
                        // beside it): sent or not, only a read can tell, and it has none (a push,
                        // an SMS, an enrolment email). Never re-sent blindly.
                        assert_eq!(record["error"]["code"], "outcome_unknown", "{ctx}\n{}", out.snapshot());
                        let message = record["error"]["message"].as_str().unwrap_or_default();
                        assert!(message.contains("flowcat cannot find out"), "{ctx}: {message}");
                        assert_eq!(record["status"], "needs_attention", "{ctx}");
                        // Nothing ran twice, and nothing after the write in doubt ran.
                        let mut dedup = got_changes.clone();
                        dedup.dedup();
                        assert_eq!(dedup, got_changes, "{ctx}: a write ran twice");
                        assert!(got_changes.iter().all(|c| want_changes.contains(c)), "{ctx}: {got_changes:#?}");
                        assert!(out.stdout.contains("\"request\""), "{ctx}: the record names the request");
                        tally.needs_attention += 1;
                    }
                    code => panic!("{ctx}: resume exited {code}\n{}", out.snapshot()),
                }
            }
        }
    }
    eprintln!("{stem}: {tally:?}");
    assert!(tally.tried > 0 && tally.tried > tally.unreached, "{stem}: no crash point was reached");
    tally
}

/// Outputs equal but for generated ids (a phone created by the resumed run has another id
/// than the one the uninterrupted run created).
fn same_shape(want: &Value, got: &Value) -> bool {
    match (want, got) {
        (Value::Object(w), Value::Object(g)) => {
            w.len() == g.len() && w.iter().all(|(k, v)| g.get(k).is_some_and(|g| same_shape(v, g)))
        }
        (Value::Array(w), Value::Array(g)) => w.len() == g.len() && w.iter().zip(g).all(|(w, g)| same_shape(w, g)),
        (Value::String(w), Value::String(g)) => {
            let generated = |s: &str| {
                (s.len() == 20 && (s.starts_with("DU") || s.starts_with("DP")))
                    || (s.len() == 36 && s.bytes().all(|b| b == b'-' || b.is_ascii_hexdigit()))
            };
            // A value the run took as a secret is journaled redacted: a run resumed after its node
            // finished shows `[secret]` (the caller saw it once, from the first process).
            w == g || (generated(w) && generated(g)) || g == flowcat_engine::run::secrets::REDACTED
        }
        _ => want == got,
    }
}

macro_rules! crash_cases {
    ($($test:ident => $stem:literal),* $(,)?) => {
        $(#[test] fn $test() { crash_flow($stem); })*
    };
}

crash_cases! {
    retrieve_user_id => "retrieve-user-id",
    duplicate_phone => "duplicate-phone",
    enroll_user => "enroll-user",
    associate_phone => "associate-phone",
    remove_device => "remove-device",
    send_push => "send-push",
    check_push_status => "check-push-status",
    verify_push => "verify-push",
    send_activation => "send-activation",
    wait_for_activation => "wait-for-activation",
    onboard_employee => "onboard-employee",
    offboard_with_approval => "offboard-with-approval",
    replace_phone => "replace-phone",
    offboard_user => "offboard-user",
    reactivate_phone => "reactivate-phone",
    unlock_user => "unlock-user",
    set_user_status => "set-user-status",
    user_group => "user-group",
    user_token => "user-token",
    sync_user => "sync-user",
    activation_link => "activation-link",
    verification_push => "verification-push",
    bypass_codes => "bypass-codes",
    recent_authentications => "recent-authentications",
    locked_out_user => "locked-out-user",
    lost_phone => "lost-phone",
}
