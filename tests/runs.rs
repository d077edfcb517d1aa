//! `flowcat runs list|show|prune` on a journal built through the store: the table within 80
//! columns, filters, JSON, an interrupted run naming every write it made, prune, and clear
//! errors for a bad age, an unknown run and a damaged journal.

use crate::common;

use std::path::Path;

use common::{Output, flowcat_in};
use flowcat_engine::journal::{Begun, Finished, IfBusy, RunHandle, RunInfo, Start, Store as _, StoredStatus};
use flowcat_engine::run::RunRecord;
use flowcat_journal::Journal;
use serde_json::{Value, json};

fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// `flowcat --state-dir DIR ARGS`.
fn runs(dir: &Path, args: &[&str]) -> Output {
    let mut all = vec!["--state-dir", dir.to_str().expect("a UTF-8 path")];
    all.extend_from_slice(args);
    flowcat_in(Path::new(env!("CARGO_MANIFEST_DIR")), &all, &[])
}

const HOUR: u64 = 3_600_000;

/// A run of `flow` started `age` ms ago.
async fn begin(journal: &Journal, flow: &str, key: Option<&str>, age: u64) -> Box<dyn RunHandle> {
    let info = RunInfo {
        flow: flow.into(),
        flow_digest: "sha256:0123".into(),
        key: key.map(str::to_owned),
        inputs: json!({ "username": "jdoe", "number": "+15555550142" }).as_object().cloned().unwrap_or_default(),
        binds: vec![("duo_admin".into(), "duo-prod".into())],
        targets: vec![("duo_admin".into(), "api-x.duosecurity.com".into())],
        created_at: now_ms() - age,
        ..RunInfo::default()
    };
    match journal.begin(Start { info, if_busy: IfBusy::Refuse, awaited: false }).await.expect("begin") {
        Begun::Fresh(run) => run,
        other => panic!("fresh: {other:?}"),
    }
}

fn node(id: &str, status: &str, attempts: u32, ms: f64) -> Finished {
    let record = json!({ "id": id, "kind": "rest_call", "status": status, "attempts": attempts, "duration_ms": ms });
    Finished { record: serde_json::from_value(record).expect("a node record"), branch: None }
}

fn record(flow: &str, failed: Option<(&str, &str)>) -> RunRecord {
    let mut r = json!({ "flow": flow, "status": if failed.is_some() { "failed" } else { "succeeded" },
                        "inputs": {}, "vars": {}, "outputs": { "user_id": "DU123" }, "started_at": 1, "ended_at": 2,
                        "nodes": [{ "id": "lookup", "kind": "rest_call", "status": "succeeded", "attempts": 1, "duration_ms": 84.0 }] });
    if let Some((code, message)) = failed {
        r["error"] = json!({ "node": "lookup", "code": code, "message": message });
    }
    serde_json::from_value(r).expect("a run record")
}

fn path(p: &str) -> Vec<String> {
    p.split('/').map(str::to_owned).collect()
}

/// Five runs, oldest first: succeeded, failed, interrupted (two writes, one in doubt), needs
/// attention, running (held by the returned handle).
async fn fixture(dir: &Path) -> (Vec<String>, Box<dyn RunHandle>) {
    let journal = Journal::open(dir).expect("open");
    let mut ids = Vec::new();
    let ok = begin(&journal, "duo.admin.retrieve_user_id", Some("jdoe"), 5 * HOUR).await;
    ok.finished(&path("lookup"), &node("lookup", "succeeded", 1, 84.0)).await.expect("finished");
    ok.end(StoredStatus::Succeeded, &record("duo.admin.retrieve_user_id", None)).await.expect("end");
    ids.push(ok.info().id.clone());

    let failed = begin(&journal, "duo.admin.enroll_user", None, 4 * HOUR).await;
    failed
        .end(StoredStatus::Failed, &record("duo.admin.enroll_user", Some(("duo_40003", "duplicate username"))))
        .await
        .expect("end");
    ids.push(failed.info().id.clone());

    let cut =
        begin(&journal, "examples.offboard_employee_with_a_long_name", Some("a-rather-long-ticket-key-4711"), 3 * HOUR)
            .await;
    cut.finished(&path("lookup"), &node("lookup", "succeeded", 1, 84.0)).await.expect("finished");
    let detach = json!({ "method": "DELETE", "url": "https://api-x.duosecurity.com/admin/v1/users/DU123/phones/DP1",
                         "headers": { "authorization": "[redacted]" } });
    cut.started(&path("phones/detach"), now_ms() - 2_000);
    cut.intent(&path("phones/detach"), &detach).await.expect("intent");
    cut.finished(&path("phones/detach"), &node("detach", "succeeded", 2, 310.0)).await.expect("finished");
    let delete = json!({ "method": "POST", "url": "https://api-x.duosecurity.com/admin/v1/phones/DP1/delete",
                         "body": { "reason": "offboarding" } });
    cut.started(&path("phones/delete"), now_ms() - 1_000);
    cut.intent(&path("phones/delete"), &delete).await.expect("intent");
    ids.push(cut.info().id.clone());
    drop(cut);

    let attention = begin(&journal, "duo.admin.enroll_user", None, 2 * HOUR).await;
    let mut rec = record("duo.admin.enroll_user", Some(("outcome_unknown", "the write `create` may have happened")));
    let create = json!({ "id": "create", "kind": "rest_call", "status": "unknown", "attempts": 1,
                         "error": { "code": "outcome_unknown", "message": "sent; no answer",
                                    "data": { "request": { "method": "POST", "url": "https://api-x.duosecurity.com/admin/v1/users",
                                                           "body": { "username": "jdoe" } } } } });
    rec.nodes.push(serde_json::from_value(create).expect("a node record"));
    attention.end(StoredStatus::NeedsAttention, &rec).await.expect("end");
    ids.push(attention.info().id.clone());

    let running = begin(&journal, "duo.auth.verify_push", Some("alice"), HOUR).await;
    ids.push(running.info().id.clone());
    // Beginnings and ends nobody waited for are written within 100 ms; the `flowcat runs`
    // processes below read them now, as a process that reports flushes first.
    journal.flush().await.expect("flush");
    (ids, running)
}

fn redact(text: &str, ids: &[String]) -> String {
    let mut text = text.to_owned();
    for (i, id) in ids.iter().enumerate() {
        text = text.replace(id, &format!("r{i}--------------"));
    }
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_are_listed_in_80_columns_filtered_and_shown() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (ids, running) = fixture(dir.path()).await;

    let out = runs(dir.path(), &["runs", "list"]);
    assert_eq!(out.code, 0, "{}", out.snapshot());
    for line in out.stdout.lines() {
        assert!(unicode_width::UnicodeWidthStr::width(line) <= 80, "wider than 80 columns: {line:?}");
    }
    insta::assert_snapshot!("list", redact(&out.stdout, &ids));

    let only = runs(dir.path(), &["runs", "list", "--status", "interrupted,needs_attention", "--format", "json"]);
    let listed: Vec<Value> = serde_json::from_str(&only.stdout).expect("a JSON list");
    let got: Vec<(&str, &str)> =
        listed.iter().map(|r| (r["info"]["id"].as_str().unwrap_or(""), r["status"].as_str().unwrap_or(""))).collect();
    assert_eq!(got, [(ids[3].as_str(), "needs_attention"), (ids[2].as_str(), "interrupted")]);
    let flow =
        runs(dir.path(), &["runs", "list", "--flow", "duo.admin.enroll_user", "--limit", "1", "--format", "json"]);
    let listed: Vec<Value> = serde_json::from_str(&flow.stdout).expect("a JSON list");
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["info"]["id"], ids[3].as_str());
    let bad = runs(dir.path(), &["runs", "list", "--status", "done"]);
    assert_eq!(bad.code, 2, "{}", bad.snapshot());
    assert!(bad.stderr.contains("needs_attention"), "{}", bad.stderr);

    // The interrupted run names both writes it made, and says which one is in doubt.
    let show = runs(dir.path(), &["runs", "show", &ids[2]]);
    assert_eq!(show.code, 0, "{}", show.snapshot());
    insta::with_settings!({ filters => vec![(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC", "[TIME]")] }, {
        insta::assert_snapshot!("show_interrupted", redact(&show.stdout, &ids));
    });
    let json = runs(dir.path(), &["runs", "show", &ids[2], "--format", "json"]);
    let shown: Value = serde_json::from_str(&json.stdout).expect("JSON");
    assert_eq!(shown["past"]["nodes"]["phones/delete"]["intent"]["method"], "POST");
    assert_eq!(shown["summary"]["status"], "interrupted");

    let failed = runs(dir.path(), &["runs", "show", &ids[1]]);
    assert!(failed.stdout.contains("  note      `lookup` duo_40003: duplicate username\n"), "{}", failed.stdout);
    assert!(failed.stdout.contains("  outputs   {\"user_id\":\"DU123\"}\n"), "{}", failed.stdout);
    assert!(!failed.stdout.contains("resume"), "a finished run is not resumed: {}", failed.stdout);
    // A run stopped on a write in doubt: its record names the request.
    let attention = runs(dir.path(), &["runs", "show", &ids[3]]);
    assert!(attention.stdout.contains("  create  outcome unknown  1 attempt\n"), "{}", attention.stdout);
    assert!(
        attention.stdout.contains("      write  POST https://api-x.duosecurity.com/admin/v1/users\n"),
        "{}",
        attention.stdout
    );
    assert!(attention.stdout.contains("resume it with: flowcat resume "), "{}", attention.stdout);
    let held = runs(dir.path(), &["runs", "show", &ids[4]]);
    assert!(held.stdout.contains("  status    running (held by a flowcat process now)\n"), "{}", held.stdout);
    drop(running);
    let freed = runs(dir.path(), &["runs", "show", &ids[4], "--format", "json"]);
    assert!(freed.stdout.contains("\"status\": \"interrupted\""), "{}", freed.stdout);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prune_deletes_only_old_finished_runs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (ids, _running) = fixture(dir.path()).await;
    let none = runs(dir.path(), &["runs", "prune", "--older-than", "30d"]);
    assert_eq!(none.code, 0, "{}", none.snapshot());
    assert!(none.stdout.starts_with("pruned 0 finished runs that ended before "), "{}", none.stdout);
    let all = runs(dir.path(), &["runs", "prune", "--older-than", "0s", "--format", "json"]);
    let pruned: Value = serde_json::from_str(&all.stdout).expect("JSON");
    assert_eq!(pruned["pruned"], 2, "succeeded and failed: {}", all.stdout);
    let left: Vec<Value> =
        serde_json::from_str(&runs(dir.path(), &["runs", "list", "--format", "json"]).stdout).expect("JSON");
    let left: Vec<&str> = left.iter().map(|r| r["info"]["id"].as_str().unwrap_or("")).collect();
    assert_eq!(left, [ids[4].as_str(), ids[3].as_str(), ids[2].as_str()]);

    for bad in ["30", "30 days", "-3d", "3.5h", "soon"] {
        let out = runs(dir.path(), &["runs", "prune", "--older-than", bad]);
        assert_eq!(out.code, 2, "{bad}: {}", out.snapshot());
        assert!(
            out.stderr.contains("`30d`, `12h`, `90m`") || out.stderr.contains("unexpected argument"),
            "{}",
            out.stderr
        );
    }
}

#[test]
fn no_journal_is_no_runs_and_nothing_is_created() {
    let dir = tempfile::tempdir().expect("tempdir");
    let state = dir.path().join("state");
    let list = runs(&state, &["runs", "list"]);
    assert_eq!((list.code, list.stdout.as_str()), (0, ""), "{}", list.snapshot());
    assert!(list.stderr.starts_with("no runs in `"), "{}", list.stderr);
    assert_eq!(runs(&state, &["runs", "list", "--format", "json"]).stdout, "[]\n");
    let show = runs(&state, &["runs", "show", "r0000000000abcd"]);
    assert_eq!(show.code, 2, "{}", show.snapshot());
    assert!(show.stderr.contains("no run `r0000000000abcd`"), "{}", show.stderr);
    assert!(!state.exists(), "reading commands create nothing");
    // FLOWCAT_STATE_DIR names the folder when --state-dir does not.
    let env = flowcat_in(Path::new("."), &["runs", "list"], &[("FLOWCAT_STATE_DIR", state.to_str().unwrap_or(""))]);
    assert!(env.stderr.contains(&state.display().to_string()), "{}", env.stderr);
}

#[test]
fn a_damaged_journal_is_a_clear_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join(flowcat_journal::DB_FILE), "this is not a database, it is a note".repeat(200))
        .expect("write");
    let out = runs(dir.path(), &["runs", "list"]);
    assert_eq!(out.code, 2, "{}", out.snapshot());
    assert!(out.stderr.starts_with("error: the journal `") && out.stderr.contains("is damaged"), "{}", out.stderr);
    assert!(out.stderr.contains("move it aside"), "{}", out.stderr);
}
