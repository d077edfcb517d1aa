//! `flowcat plan` and `flowcat run --plan`, end to end: the real binary against the real
//! simulator on loopback, whose audit log says what changed.

use crate::common;

use common::{Output, Sim, TempDir, flowcat};
use serde_json::Value;

/// `flowcat plan duo.admin.associate_phone` for `username` and `number`, `args` after.
fn plan(sim: &Sim, username: &str, number: &str, args: &[&str]) -> Output {
    let integrations = sim.integrations.to_str().expect("a UTF-8 path");
    let user = format!("username={username}");
    let number = format!("number={number}");
    let mut all = vec!["plan", "duo.admin.associate_phone", "--integrations", integrations];
    all.extend(["-i", &user, "-i", &number, "-i", "type=mobile"]);
    all.extend(args);
    flowcat(&all)
}

fn json(out: &Output) -> Value {
    assert_eq!(out.code, 0, "{}", out.snapshot());
    serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", out.snapshot()))
}

fn write<'a>(doc: &'a Value, node: &str) -> &'a Value {
    let writes = doc["writes"].as_array().expect("a list of writes");
    writes.iter().find(|w| w["node"] == node).unwrap_or_else(|| panic!("no write `{node}` in {doc:#}"))
}

/// The audit entries that are writes (every entry is a state change).
fn changes(sim: &Sim) -> Vec<String> {
    sim.audit().iter().map(|e| e["change"].as_str().unwrap_or_default().to_owned()).collect()
}

#[test]
fn a_plan_sends_the_reads_renders_the_first_write_and_changes_nothing() {
    let sim = Sim::start("plan-first-write");
    // bob gets alice's phone, which Duo has: nothing to create, one association to make.
    let doc = json(&plan(&sim, "bob", "+15555550100", &["--format", "json"]));
    assert_eq!(doc["format"], "flowcat-plan/1");
    assert_eq!(doc["status"], "planned");
    let reads: Vec<&str> = doc["reads"].as_array().unwrap().iter().map(|r| r["node"].as_str().unwrap()).collect();
    assert_eq!(reads, ["user/lookup", "phone/lookup"], "{doc:#}");
    for r in doc["reads"].as_array().unwrap() {
        assert_eq!(r["request"]["method"], "GET");
        assert_eq!(r["status"], 200);
        assert!(r["answer_digest"].as_str().unwrap().starts_with("sha256:"), "{r}");
    }
    assert_eq!(write(&doc, "create")["plan"], "skipped", "Duo has the phone: {doc:#}");
    let associate = write(&doc, "associate");
    assert_eq!(associate["plan"], "send", "{doc:#}");
    let request = &associate["request"];
    assert_eq!(request["method"], "POST");
    let url = request["url"].as_str().unwrap();
    assert!(url.starts_with(&format!("http://{}/admin/v1/users/DU", sim.addr)), "{url}");
    assert!(url.ends_with("/phones"), "{url}");
    assert!(request["body"]["phone_id"].as_str().unwrap().starts_with("DP"), "{request}");
    assert_eq!(request["headers"]["authorization"], "****", "signed, and redacted: {request}");
    let text = doc.to_string();
    let skey = std::fs::read_to_string(&sim.integrations).unwrap();
    let skey = skey.lines().find_map(|l| l.trim().strip_prefix("secret_key:")).map(|s| s.trim().trim_matches('"'));
    if let Some(skey) = skey.filter(|s| s.len() > 8) {
        assert!(!text.contains(skey), "the plan holds a secret key");
    }
    assert!(sim.audit().is_empty(), "a plan changes nothing: {:?}", sim.audit());

    let human = plan(&sim, "bob", "+15555550100", &[]);
    assert_eq!(human.code, 0, "{}", human.snapshot());
    assert!(human.stdout.contains("user/lookup  GET"), "{}", human.stdout);
    assert!(human.stdout.contains("1. associate: would send POST"), "{}", human.stdout);
    assert!(human.stdout.contains("create: skipped"), "{}", human.stdout);
    assert!(sim.audit().is_empty(), "a plan changes nothing: {:?}", sim.audit());
}

#[test]
fn a_write_that_needs_the_first_writes_result_waits_for_it() {
    let sim = Sim::start("plan-waits");
    let doc = json(&plan(&sim, "alice", "+15555550177", &["--format", "json"]));
    let create = write(&doc, "create");
    assert_eq!(create["plan"], "send", "{doc:#}");
    assert_eq!(create["request"]["body"]["number"], "+15555550177");
    let associate = write(&doc, "associate");
    assert_eq!(associate["plan"], "template", "{doc:#}");
    assert_eq!(associate["waits_for"], serde_json::json!(["create"]));
    assert_eq!(associate["template"]["path"], "/admin/v1/users/{{nodes.user.user_id}}/phones");
    assert_eq!(associate["template"]["body"]["phone_id"], "{{nodes.found.phone_id}}");
    assert_eq!(associate["when"], "{{not nodes.check.linked}}");
    let later: Vec<&str> = doc["later"].as_array().unwrap().iter().map(|l| l["node"].as_str().unwrap()).collect();
    assert!(later.contains(&"found") && later.contains(&"raced"), "{doc:#}");
    assert!(sim.audit().is_empty(), "a plan changes nothing: {:?}", sim.audit());
}

/// `flowcat run --plan FILE` with this simulator's integrations and a fresh journal.
fn apply(sim: &Sim, file: &std::path::Path, state: &TempDir, args: &[&str]) -> Output {
    let integrations = sim.integrations.to_str().unwrap();
    let mut all = vec!["--state-dir", state.str(), "run", "--plan", file.to_str().unwrap()];
    all.extend(["--integrations", integrations]);
    all.extend(args);
    flowcat(&all)
}

#[test]
fn a_saved_plan_applied_unchanged_runs_once() {
    let sim = Sim::start("plan-apply");
    let dir = TempDir::new("plan-apply");
    let file = dir.path().join("plan.json");
    let out = plan(&sim, "alice", "+15555550178", &["--out", file.to_str().unwrap()]);
    assert_eq!(out.code, 0, "{}", out.snapshot());
    let saved: Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    assert_eq!(saved["flow"], "duo.admin.associate_phone");
    assert_eq!(saved["inputs"]["username"], "alice");
    assert_eq!(saved["bindings"]["duo_admin"], "duo_admin");
    assert!(saved["flow_digest"].as_str().is_some_and(|d| !d.is_empty()));
    assert!(sim.audit().is_empty());

    // Another input than the plan's is refused before anything is sent.
    let other = apply(&sim, &file, &dir, &["-i", "username=bob"]);
    assert_eq!(other.code, 2, "{}", other.snapshot());
    assert!(other.stderr.contains("input `username` differs from the plan's"), "{}", other.stderr);
    assert!(sim.audit().is_empty());

    let ran = apply(&sim, &file, &dir, &["--format", "json"]);
    assert_eq!(ran.code, 0, "{}", ran.snapshot());
    let record: Value = serde_json::from_str(&ran.stdout).unwrap();
    assert_eq!(record["status"], "succeeded");
    assert_eq!(record["outputs"]["phone_created"], true);
    assert_eq!(changes(&sim), ["phone.create", "phone.associate"], "each write once");
}

#[test]
fn a_saved_plan_is_refused_when_the_account_changed_since() {
    let sim = Sim::start("plan-changed");
    let dir = TempDir::new("plan-changed");
    let file = dir.path().join("plan.json");
    let out = plan(&sim, "alice", "+15555550179", &["--out", file.to_str().unwrap()]);
    assert_eq!(out.code, 0, "{}", out.snapshot());
    // Someone gives the number to carol meanwhile: the plan's phone lookup now finds a phone.
    let other = sim.run("duo.admin.associate_phone", &["username=carol", "number=+15555550179", "type=mobile"], &[]);
    assert_eq!(other.code, 0, "{}", other.snapshot());
    let before = sim.audit().len();
    assert_eq!(before, 2, "{:?}", sim.audit());

    let refused = apply(&sim, &file, &dir, &[]);
    assert_eq!(refused.code, 1, "{}", refused.snapshot());
    assert!(refused.stderr.contains("read `phone/lookup`"), "{}", refused.stderr);
    assert!(refused.stderr.contains("answers differently from the plan"), "{}", refused.stderr);
    assert!(refused.stderr.contains("re-plan with `flowcat plan duo.admin.associate_phone"), "{}", refused.stderr);
    assert_eq!(sim.audit().len(), before, "nothing written: {:?}", sim.audit());
}

#[test]
fn a_saved_plan_is_refused_when_the_flow_changed_since() {
    let sim = Sim::start("plan-flow-changed");
    let dir = TempDir::new("plan-flow-changed");
    let file = dir.path().join("plan.json");
    let out = plan(&sim, "alice", "+15555550180", &["--out", file.to_str().unwrap()]);
    assert_eq!(out.code, 0, "{}", out.snapshot());
    let mut saved: Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    saved["flow_digest"] = "0000".into();
    std::fs::write(&file, saved.to_string()).unwrap();
    let refused = apply(&sim, &file, &dir, &[]);
    assert_eq!(refused.code, 1, "{}", refused.snapshot());
    assert!(refused.stderr.contains("changed since the plan was made"), "{}", refused.stderr);
    assert!(sim.audit().is_empty(), "{:?}", sim.audit());
}
