//! The binary's own commands end to end: `demo`, `run` with tracing and the live view's plain
//! lines, `sim --state` saved on Ctrl-C and SIGTERM, and a `host` that would move a signature refused.

use crate::common;

use std::process::{Command, Stdio};

use common::{Sim, flowcat};

#[test]
fn demo_onboards_a_sample_employee_with_no_configuration() {
    let out = flowcat(&["demo"]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    let text = &out.stdout;
    assert!(text.contains("no Duo account is touched. A Duo simulator is listening on 127.0.0.1:"), "{text}");
    // Duo's order: the enrolment link, then the phone and its SMS, then the activation link,
    // and only then a push; the demo says where it plays the employee.
    let steps = [
        "→ enrollment_sent",
        "(The demo now plays jdoe and opens the enrolment link.)",
        "→ activation_sent",
        "(The demo plays jdoe again and opens the activation link on the phone.)",
        "→ allow: jdoe approved the push. Onboarded.",
        "enrolment email sent to jane.doe@example.com for user jdoe",
        "user jdoe opened the enrolment link: user DU",
        "phone +15555550142 created",
        "attached to user DU",
        "activation SMS sent to phone DP",
        "Duo Mobile activated on phone +15555550142",
        "Duo Push sent to user jdoe",
    ];
    let mut at = 0;
    for step in steps {
        let found = text[at..].find(step).unwrap_or_else(|| panic!("missing `{step}` (in this order) in:\n{text}"));
        at += found + step.len();
    }
    assert!(text.contains("flowcat integrations check"), "{text}");
    // The live view, in plain lines because stderr is not a terminal.
    assert!(out.stderr.contains("start    enroll (subflow)"), "{}", out.stderr);
    assert!(out.stderr.contains("start    sms (subflow)"), "{}", out.stderr);
    assert!(out.stderr.contains("ok      wait"), "{}", out.stderr);
}

#[test]
fn a_quiet_demo_prints_only_what_changed() {
    let out = flowcat(&["-q", "demo"]);
    assert_eq!(out.code, 0, "{}", out.snapshot());
    // No story, no live view, no next steps: what changed in the simulated account, as `run -q`
    // prints its result.
    assert_eq!(out.stderr, "", "{}", out.snapshot());
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines.first(), Some(&"What changed in the (simulated) Duo account:"), "{}", out.stdout);
    assert!(lines[1..].iter().all(|l| l.starts_with("  - ")), "{}", out.stdout);
    for change in ["enrolment email sent to jane.doe@example.com", "Duo Mobile activated", "Duo Push sent to user jdoe"]
    {
        assert!(out.stdout.contains(change), "missing `{change}` in:\n{}", out.stdout);
    }
}

#[test]
fn rust_log_shows_a_span_per_run_and_node_and_is_silent_otherwise() {
    let sim = Sim::start("tracing");
    let integrations = sim.integrations.to_str().expect("utf-8");
    let run = |rust_log: Option<&str>| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_flowcat"));
        cmd.args(["run", "duo.admin.retrieve_user_id", "-i", "username=alice", "--integrations", integrations]);
        cmd.current_dir(env!("CARGO_MANIFEST_DIR")).env("NO_COLOR", "1").env_remove("RUST_LOG");
        cmd.env("FLOWCAT_STATE_DIR", sim.dir.join("state"));
        if let Some(filter) = rust_log {
            cmd.env("RUST_LOG", filter);
        }
        let out = cmd.output().expect("runs");
        assert!(out.status.success());
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let traced = run(Some("flowcat_engine=debug"));
    assert!(traced.contains("run{flow=duo.admin.retrieve_user_id}:node{id=lookup kind=\"rest_call\"}"), "{traced}");
    assert!(traced.contains("run finished"), "{traced}");
    let quiet = run(None);
    assert!(!quiet.contains("run{flow"), "{quiet}");
}

#[test]
fn a_host_var_naming_another_host_is_refused_before_anything_is_sent() {
    let sim = Sim::start("host");
    let out = sim.run("duo.admin.retrieve_user_id", &["username=alice"], &["--var", "host=api-evil.example.com"]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("`--var host` is `api-evil.example.com`, but slot `duo_admin` is bound to integration `duo_admin` at `127.0.0.1`"), "{}", out.stderr);
    assert!(sim.stats().is_empty(), "{:?}", sim.stats());
    // The integration's own host is fine, and is the default.
    let out = sim.run("duo.admin.retrieve_user_id", &["username=alice"], &["--var", "host=127.0.0.1", "--json"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let out = sim.run("duo.admin.retrieve_user_id", &["username=alice"], &["--json"]);
    let record: serde_json::Value = serde_json::from_str(&out.stdout).expect("json");
    assert_eq!(record["vars"]["host"], "127.0.0.1");
}

#[test]
fn sim_saves_its_state_on_ctrl_c_and_on_sigterm_and_loads_it_again() {
    let dir = std::env::temp_dir().join(format!("flowcat-cli-state-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    let state = dir.join("state.json");
    let integrations = dir.join("integrations.yaml");
    let start = || {
        let mut child = Command::new(env!("CARGO_BIN_EXE_flowcat"))
            .args(["sim", "--port", "0", "--state"])
            .arg(&state)
            .arg("--write-integrations")
            .arg(&integrations)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("starts");
        let mut line = String::new();
        let mut out = std::io::BufReader::new(child.stdout.take().expect("stdout"));
        std::io::BufRead::read_line(&mut out, &mut line).expect("first line");
        let addr = line.split("http://").nth(1).and_then(|r| r.split(';').next()).expect("the address").to_owned();
        (child, out, addr)
    };
    let stop = |mut child: std::process::Child, signal: &str| {
        let status = Command::new("kill").args([signal, &child.id().to_string()]).status().expect("kill");
        assert!(status.success());
        let exit = child.wait().expect("waits");
        assert!(exit.success(), "`flowcat sim` ends cleanly on {signal}: {exit:?}");
    };
    let enrol = || {
        let out = flowcat(&[
            "run",
            "duo.admin.enroll_user",
            "-i",
            "username=zoe",
            "-i",
            "email=zoe@example.com",
            "--integrations",
            integrations.to_str().expect("utf-8"),
            "--json",
        ]);
        assert_eq!(out.code, 0, "{}", out.stderr);
        let record: serde_json::Value = serde_json::from_str(&out.stdout).expect("json");
        record["outputs"]["outcome"].as_str().expect("an outcome").to_owned()
    };
    let (child, out, _) = start();
    assert_eq!(enrol(), "enrolled");
    stop(child, "-INT");
    drop(out);
    let saved = std::fs::read_to_string(&state).expect("the state file was written");
    assert!(saved.contains("\"zoe\""), "the pending enrolment is in the state");
    assert!(saved.contains("user.enroll"), "the audit log is in the state");
    // Started again from the state, the enrolment link still works; then SIGTERM saves too.
    let (child, out, addr) = start();
    let body = r#"{"username":"zoe","number":"+15555550150"}"#;
    let (status, answer) = common::http(&addr, "POST", "/sim/enroll", Some(body));
    assert_eq!(status, 200, "{answer}");
    assert_eq!(enrol(), "already_enrolled");
    stop(child, "-TERM");
    drop(out);
    let saved = std::fs::read_to_string(&state).expect("the state file was written");
    assert!(saved.contains("enrollment.complete"), "saved on SIGTERM: {saved}");
    let (child, _out, _) = start();
    assert_eq!(enrol(), "already_enrolled");
    stop(child, "-TERM");
    let _ = std::fs::remove_dir_all(&dir);
}

const CANARY: &str = "CANARY-SKEY-fedcba9876543210zyxwvutsrqpo";

/// The demo seed with both secret keys replaced by the canary.
fn canary_seed() -> serde_json::Value {
    let mut seed = serde_json::to_value(flowcat_sim::Seed::demo()).expect("the seed serialises");
    for i in seed["integrations"].as_array_mut().expect("integrations") {
        i["skey"] = serde_json::Value::String(CANARY.to_owned());
    }
    seed
}

#[test]
fn a_canary_secret_never_reaches_any_output() {
    let sim = Sim::start_with("canary", Some(&canary_seed()));
    let written = std::fs::read_to_string(&sim.integrations).expect("integrations file");
    assert!(written.contains(CANARY), "the simulator's file holds the key, so the runs below use it");
    let integrations = sim.integrations.to_str().expect("utf-8");
    let mut outputs = Vec::new();
    let state = sim.dir.join("state");
    let mut run = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_flowcat"))
            .args(args)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .env("RUST_LOG", "trace")
            .env("NO_COLOR", "1")
            .env("FLOWCAT_STATE_DIR", &state)
            .output()
            .expect("runs");
        outputs.push(String::from_utf8_lossy(&out.stdout).into_owned());
        outputs.push(String::from_utf8_lossy(&out.stderr).into_owned());
        out.status.code()
    };
    // Success, a Duo error, a refused run, a failing push, a check: every path that prints.
    assert_eq!(
        run(&[
            "run",
            "examples.onboard_employee",
            "-i",
            "username=jdoe",
            "-i",
            "email=j@example.com",
            "-i",
            "number=+15555550142",
            "--integrations",
            integrations,
            "--json"
        ]),
        Some(0)
    );
    assert_eq!(
        run(&["run", "duo.auth.verify_push", "-i", "username=bob", "--integrations", integrations, "--json"]),
        Some(0)
    );
    assert_eq!(
        run(&[
            "run",
            "duo.auth.send_push",
            "-i",
            "username=alice",
            "--integrations",
            integrations,
            "--bind",
            "duo_auth=duo_admin"
        ]),
        Some(2)
    );
    assert_eq!(run(&["run", "duo.admin.retrieve_user_id", "--integrations", integrations, "--json"]), Some(1));
    assert_eq!(run(&["integrations", "check", "--integrations", integrations]), Some(0));
    assert!(
        outputs.iter().any(|o| o.contains("\"authorization\": \"****\"") || o.contains("\"Authorization\": \"****\"")),
        "the Authorization header is recorded, redacted"
    );
    for text in &outputs {
        assert!(!text.contains(CANARY), "the secret leaked:\n{text}");
        assert!(!text.contains("fedcba9876543210"), "part of the secret leaked:\n{text}");
    }
    // The journal those runs wrote, byte by byte: every file of the state folder.
    let mut journaled = 0;
    for entry in walk(&state) {
        let bytes = std::fs::read(&entry).expect("a state file");
        journaled += bytes.len();
        let text = String::from_utf8_lossy(&bytes);
        assert!(!text.contains(CANARY) && !text.contains("fedcba9876543210"), "the secret is in {}", entry.display());
        assert!(!bytes.windows(16).any(|w| w == b"fedcba9876543210"), "the secret is in {}", entry.display());
    }
    assert!(journaled > 0, "the runs were journaled");
    let out = common::flowcat_in(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")),
        &["runs", "list", "--format", "json"],
        &[("FLOWCAT_STATE_DIR", state.to_str().expect("utf-8"))],
    );
    assert!(out.stdout.contains("duo.auth.verify_push"), "the journal lists the runs: {}", out.snapshot());
}

/// Every file under `dir`.
fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() { out.extend(walk(&path)) } else { out.push(path) }
    }
    out
}

#[test]
fn integrations_check_says_which_keys_work_and_what_to_fix() {
    let sim = Sim::start("check");
    let integrations = sim.integrations.to_str().expect("utf-8");
    let out = flowcat(&["integrations", "check", "--integrations", integrations]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stdout.contains("ok duo_admin (duo_admin): the keys of `duo_admin` work"), "{}", out.stdout);
    assert!(out.stdout.contains("ok duo_auth (duo_auth)"), "{}", out.stdout);
    // Auth keys filed as the Admin integration: Duo answers 40301, and the check says why.
    let swapped = std::fs::read_to_string(&sim.integrations)
        .expect("file")
        .replace("kind: duo_admin", "kind: KIND_A")
        .replace("kind: duo_auth", "kind: duo_admin")
        .replace("kind: KIND_A", "kind: duo_auth");
    let path = sim.dir.join("swapped.yaml");
    std::fs::write(&path, swapped).expect("write");
    let out = flowcat(&["integrations", "check", "--integrations", path.to_str().expect("utf-8")]);
    assert_eq!(out.code, 1, "{}", out.stdout);
    assert!(out.stdout.contains("FAILED"), "{}", out.stdout);
    assert!(out.stdout.contains("fix:"), "{}", out.stdout);
}
