//! Every catalog flow and example, run through the real `flowcat` binary against a real
//! `flowcat sim` process on loopback: for each outcome, the exit code, the `--json` record's
//! outputs and error, and the simulator's audit log (which calls changed state, none twice).
//!
//! The cases are data: `tests/duo_flows/<flow file stem>.json`, one file per flow, each case a
//! fresh simulator and a list of runs (steps). A step may set faults first, reuse an earlier
//! step's outputs as `${name}`, and check:
//! - `exit` (default 0); `stderr` (a substring; exit 2 also asserts that no request reached Duo)
//! - `outputs`: the whole object; `"<DU>"`, `"<DP>"`, `"<txid>"`, `"<text>"` match any such value
//! - `error`: `node`, `code` exactly, `message` as a substring
//! - `changes`: the audit log's `change` kinds, in order (`unordered: true` to compare as a set)
//! - `details`: a subset of each audit entry's `detail`, in the same order
//! - `requests`: the requests the simulator served during the step, per route (every attempt)
//! - `nodes`: `"subflow_node/node": {"attempts": 3, "status": "succeeded"}`
//! - `integrations: "auth-only"` runs with a file holding only the Auth API application
//!
//! A case may give `flowcat sim` flags (`"sim": ["--activate-after", "1h"]`); every simulator
//! runs its clock 100 times faster than real time (`--time-scale 100`) unless the case says
//! otherwise, so a push answered after 45 s of Duo's time takes half a second. A step may first
//! call the simulator's control API (`"control": [{"method": "POST", "path": "/sim/activate",
//! "body": {…}, "status": 200}]`): the simulated user following a link, the clock moving on;
//! `"save": {"since": {"from": "now_ms", "plus_ms": -86400000}}` keeps a number of the answer
//! (moved by `plus_ms`) as `${since}`.

use crate::common;

use std::path::{Path, PathBuf};

use common::Sim;
use common::cases::{matches, refs, resolve, save_control, substitute};
use serde_json::{Map, Value, json};

fn cases_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/duo_flows")
}

/// Runs every case of `tests/duo_flows/<stem>.json`, each against its own simulator.
fn check(stem: &str) {
    let path = cases_dir().join(format!("{stem}.json"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let doc: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    // Examples run by file (their `path`), which also tests running a flow named by its path.
    let flow = doc["path"].as_str().or(doc["flow"].as_str()).expect("`flow`");
    for (n, case) in doc["cases"].as_array().expect("`cases`").iter().enumerate() {
        let name = case["name"].as_str().expect("a case `name`");
        let seed = case["seed"].as_str().map(|s| {
            let path = cases_dir().join("seeds").join(s);
            serde_json::from_str(&std::fs::read_to_string(&path).expect("the seed")).expect("a JSON seed")
        });
        let mut args: Vec<&str> = case["sim"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
        if !args.contains(&"--time-scale") {
            args.extend(["--time-scale", "100"]);
        }
        let sim = Sim::start_args(&format!("{stem}-{n}"), seed.as_ref(), &args);
        let mut saved = Map::new();
        for (i, step) in case["steps"].as_array().expect("`steps`").iter().enumerate() {
            let ctx = format!("{stem}.json › {name} › step {}", i + 1);
            run_step(&sim, flow, step, &mut saved, &ctx);
        }
    }
}

fn run_step(sim: &Sim, flow: &str, step: &Value, saved: &mut Map<String, Value>, ctx: &str) {
    if let Some(faults) = step.get("faults") {
        sim.set_faults(faults);
    }
    for call in step["control"].as_array().into_iter().flatten() {
        let method = call["method"].as_str().unwrap_or("POST");
        let path = call["path"].as_str().expect("a control `path`");
        let body = call.get("body").map(|b| resolve(b, saved));
        let (status, answer) = sim.control(method, path, body.as_ref());
        let want = call["status"].as_u64().unwrap_or(200);
        assert_eq!(u64::from(status), want, "{ctx}: {method} {path}: {answer}");
        save_control(call, &answer, saved);
    }
    sim.clear_audit();
    let before = sim.stats();
    let strings = |key: &str| -> Vec<String> {
        let all = step[key].as_array().into_iter().flatten();
        all.map(|v| substitute(v.as_str().expect("a string"), saved)).collect()
    };
    let inputs = strings("inputs");
    let mut args = strings("args");
    args.push("--json".into());
    let flow = step["flow"].as_str().unwrap_or(flow);
    let signal = step.get("signal").map(|s| (s["name"].as_str().expect("a signal `name`"), s["data"].to_string()));
    let out = match step["integrations"].as_str() {
        // A run that waits for a signal: delivered by another process once it waits.
        None if signal.is_some() => {
            let (name, data) = signal.as_ref().expect("a signal");
            sim.run_signalled(flow, &refs(&inputs), &refs(&args), name, data)
        }
        // Only the Auth API application: what a team without an Admin API application has.
        Some("auth-only") => sim.run_with(&sim.integrations_only("duo_auth"), flow, &refs(&inputs), &refs(&args)),
        Some(other) => panic!("{ctx}: unknown `integrations` {other:?}"),
        None => sim.run(flow, &refs(&inputs), &refs(&args)),
    };
    let exit = step["exit"].as_i64().unwrap_or(0) as i32;
    assert_eq!(out.code, exit, "{ctx}: exit code\n{}", out.snapshot());
    let requests = served_since(&before, &sim.stats());
    let audit = sim.audit();
    if let Some(want) = step["stderr"].as_str() {
        assert!(out.stderr.contains(want), "{ctx}: stderr lacks {want:?}\n{}", out.snapshot());
    }
    if exit == 2 {
        assert_eq!((requests, audit.len()), (Map::new(), 0), "{ctx}: refused before any request");
        return;
    }
    let record: Value = serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("{ctx}: {e}\n{}", out.snapshot()));
    assert_eq!(record["status"], if exit == 0 { "succeeded" } else { "failed" }, "{ctx}");
    check_error(&record, step, ctx);
    let outputs = &record["outputs"];
    let want = resolve(&step["outputs"], saved);
    assert!(matches(&want, outputs), "{ctx}: outputs\n want: {want:#}\n  got: {outputs:#}");
    if let Some(outputs) = outputs.as_object() {
        saved.extend(outputs.clone());
    }
    check_audit(&audit, step, saved, ctx);
    if let Some(want) = step.get("requests") {
        assert_eq!(Value::Object(requests), *want, "{ctx}: requests served");
    }
    for (path, want) in step["nodes"].as_object().into_iter().flatten() {
        let node = node(&record, path).unwrap_or_else(|| panic!("{ctx}: no node `{path}`"));
        for (key, value) in want.as_object().expect("node checks") {
            assert_eq!(&node[key], value, "{ctx}: node `{path}` {key}\n{node:#}");
        }
    }
}

fn check_error(record: &Value, step: &Value, ctx: &str) {
    let got = &record["error"];
    let Some(want) = step.get("error") else {
        assert!(got.is_null(), "{ctx}: unexpected error {got:#}");
        return;
    };
    assert_eq!((&got["node"], &got["code"]), (&want["node"], &want["code"]), "{ctx}: error {got:#}");
    let message = got["message"].as_str().unwrap_or_default();
    let part = want["message"].as_str().unwrap_or_default();
    assert!(message.contains(part), "{ctx}: the error message lacks {part:?}: {message}");
}

/// The changes, exactly; and that no state change ran twice (the same change with the same detail).
fn check_audit(audit: &[Value], step: &Value, saved: &Map<String, Value>, ctx: &str) {
    let mut got: Vec<&str> = audit.iter().map(|e| e["change"].as_str().expect("a change")).collect();
    let mut want: Vec<&str> =
        step["changes"].as_array().expect("`changes`").iter().map(|c| c.as_str().expect("a change kind")).collect();
    if step["unordered"].as_bool() == Some(true) {
        got.sort_unstable();
        want.sort_unstable();
    }
    assert_eq!(got, want, "{ctx}: state changes\n{audit:#?}");
    for (i, a) in audit.iter().enumerate() {
        for b in &audit[i + 1..] {
            assert!((&a["change"], &a["detail"]) != (&b["change"], &b["detail"]), "{ctx}: ran twice: {a}");
        }
    }
    for (i, want) in step["details"].as_array().into_iter().flatten().enumerate() {
        let want = resolve(want, saved);
        let got = &audit[i]["detail"];
        let ok =
            want.as_object().expect("a detail subset").iter().all(|(k, v)| got.get(k).is_some_and(|g| matches(v, g)));
        assert!(ok, "{ctx}: audit entry {i}\n want (subset): {want:#}\n  got: {got:#}");
    }
}

/// What the simulator served since `before`, per route.
fn served_since(before: &Map<String, Value>, after: &Map<String, Value>) -> Map<String, Value> {
    let count = |m: &Map<String, Value>, k: &str| m.get(k).and_then(Value::as_u64).unwrap_or(0);
    after
        .keys()
        .filter_map(|k| {
            let n = count(after, k) - count(before, k);
            (n > 0).then(|| (k.clone(), json!(n)))
        })
        .collect()
}

/// A node of the record by path: `push/preauth` is the node `preauth` of the subflow node `push`.
fn node<'a>(record: &'a Value, path: &str) -> Option<&'a Value> {
    let (first, rest) = match path.split_once('/') {
        Some((a, b)) => (a, Some(b)),
        None => (path, None),
    };
    let found = record["nodes"].as_array()?.iter().find(|n| n["id"] == first)?;
    match rest {
        None => Some(found),
        Some(rest) => node(&found["subflow"], rest),
    }
}

macro_rules! flow_cases {
    ($($test:ident => $stem:literal),* $(,)?) => {
        $(#[test] fn $test() { check($stem) })*

        /// Every flow in `flows/duo/` and `examples/` has its cases, under the flow's id.
        #[test]
        fn every_flow_and_example_has_cases() {
            let stems = [$($stem),*];
            for dir in ["flows/duo", "examples"] {
                let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
                for entry in std::fs::read_dir(&dir).expect("the flow folder") {
                    let path = entry.expect("an entry").path();
                    // Test cases for `flowcat test` (`*.test.yaml`) are not flows.
                    if path.extension().is_none_or(|e| e != "yaml") || path.to_string_lossy().ends_with(".test.yaml") {
                        continue;
                    }
                    let stem = path.file_stem().and_then(|s| s.to_str()).expect("a stem");
                    assert!(stems.contains(&stem), "no cases for {}", path.display());
                    let text = std::fs::read_to_string(&path).expect("the flow");
                    let id = text.lines().find_map(|l| l.strip_prefix("id: ")).expect("an id line").trim();
                    let cases: Value = serde_json::from_str(
                        &std::fs::read_to_string(cases_dir().join(format!("{stem}.json"))).expect("the cases"),
                    )
                    .expect("JSON cases");
                    assert_eq!(cases["flow"], id, "{stem}.json names the flow of {}", path.display());
                }
            }
        }
    };
}

flow_cases! {
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
    replace_phone => "replace-phone",
    offboard_user => "offboard-user",
    reactivate_phone => "reactivate-phone",
    unlock_user => "unlock-user",
    offboard_with_approval => "offboard-with-approval",
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

/// Ports, times, dates and generated ids, which change from run to run.
fn filters() -> Vec<(&'static str, &'static str)> {
    vec![
        (r"127\.0\.0\.1:\d+", "127.0.0.1:[PORT]"),
        (r#""id": "r[0-9a-z]{15}""#, r#""id": "[RUN_ID]""#),
        (r#""(started_at|ended_at|created|time)": \d+"#, r#""$1": [TIME]"#),
        (r#""duration_ms": [\d.e-]+"#, r#""duration_ms": [MS]"#),
        (r#""date": "[^"]*""#, r#""date": "[DATE]""#),
        (r"DU[A-Z0-9]{18}", "[USER_ID]"),
        (r"DP[A-Z0-9]{18}", "[PHONE_ID]"),
        (r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", "[TXID]"),
        (r#""(response|enrollment_code)": "[a-z0-9]{20}""#, r#""$1": "[CODE]""#),
        (r"\b\d+ ms\b", "[MS] ms"),
        (r"in \d+\.\d s", "in [SECS] s"),
    ]
}

/// The whole `--json` record of a new enrolment: every node, attempt, request and response.
#[test]
fn enroll_user_json_record() {
    let sim = Sim::start("snapshot-json");
    let out = sim.run("duo.admin.enroll_user", &["username=zoe", "email=zoe@example.com"], &["--json"]);
    assert_eq!(out.code, 0, "{}", out.snapshot());
    insta::with_settings!({ filters => filters() }, {
        insta::assert_snapshot!("enroll_user_json_record", out.stdout);
    });
}

/// What a person sees when Duo refuses: the node, the code, Duo's message and what to change.
#[test]
fn enroll_user_refused_human_output() {
    let sim = Sim::start("snapshot-human");
    let out = sim.run("duo.admin.enroll_user", &["username=zoe", "email=zoe@example.com", "valid_secs=-5"], &[]);
    assert_eq!(sim.audit(), Vec::<Value>::new(), "nothing changed");
    insta::with_settings!({ filters => filters() }, {
        insta::assert_snapshot!("enroll_user_refused_human_output", out.snapshot());
    });
}

/// Admin API keys in the `duo_auth` slot (a file that says `kind: duo_auth` but holds the Admin
/// application's keys): binding cannot tell, Duo answers 40301, and the run names the node.
#[test]
fn auth_flow_with_admin_keys_surfaces_duos_40301() {
    let sim = Sim::start("wrong-keys");
    let text = std::fs::read_to_string(&sim.integrations).expect("the integrations file");
    let swapped = text
        .replace("DISIMAUTH00000000001", "DISIMADMIN0000000001")
        .replace("simauthsecretkey00000000000000000000000b", "simadminsecretkey0000000000000000000000a");
    assert_ne!(text, swapped, "the demo Auth keys are in the file");
    let path = sim.dir.join("wrong-keys.yaml");
    std::fs::write(&path, swapped).expect("the edited file");
    let out = common::flowcat(&[
        "run",
        "duo.auth.send_push",
        "--integrations",
        path.to_str().expect("UTF-8"),
        "-i",
        "username=alice",
        "--json",
    ]);
    assert_eq!(out.code, 1, "{}", out.snapshot());
    let record: Value = serde_json::from_str(&out.stdout).expect("a JSON record");
    assert_eq!((&record["error"]["node"], &record["error"]["code"]), (&json!("preauth"), &json!("duo_40301")));
    let message = record["error"]["message"].as_str().expect("a message");
    assert!(message.contains("40301"), "{message}");
    let preauth = node(&record, "preauth").expect("the preauth node");
    assert_eq!((&preauth["status"], &preauth["attempts"]), (&json!("failed"), &json!(1)));
    assert_eq!(Value::Object(sim.stats()), json!({ "POST /auth/v2/preauth": 1 }));
    assert_eq!(sim.audit(), Vec::<Value>::new());
}
