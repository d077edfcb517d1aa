//! Fixtures for the journal's tests: runs, node results and records built from JSON, and a way
//! to run a part of a test in another process (this test binary, started again).

#![allow(dead_code)]

use std::path::Path;
use std::process::{Command, Output};

use flowcat_engine::journal::{Finished, IfBusy, RunInfo, Start};
use flowcat_engine::run::RunRecord;
use flowcat_journal::{Journal, Options};
use serde_json::{Value, json};

/// A run of `flow` with `key`, created now.
pub fn start(flow: &str, key: Option<&str>) -> Start {
    Start { info: info(flow, key), if_busy: IfBusy::Wait, awaited: false }
}

pub fn info(flow: &str, key: Option<&str>) -> RunInfo {
    RunInfo {
        id: String::new(),
        flow: flow.to_owned(),
        flow_digest: "sha256:0123".to_owned(),
        key: key.map(str::to_owned),
        inputs: json!({ "username": "jdoe" }).as_object().cloned().unwrap_or_default(),
        vars: serde_json::Map::new(),
        binds: vec![("duo_admin".to_owned(), "duo".to_owned())],
        targets: vec![("duo_admin".to_owned(), "api-12345678.duosecurity.com".to_owned())],
        created_at: now_ms(),
        deadline_at: None,
        source: None,
        signals: Vec::new(),
    }
}

/// A node `id` that succeeded with `result`.
pub fn finished(id: &str, result: Value) -> Finished {
    let record = json!({
        "id": id, "kind": "rest_call", "status": "succeeded", "attempts": 1,
        "started_at": 1, "ended_at": 2, "duration_ms": 1.0, "result": result,
    });
    Finished { record: serde_json::from_value(record).expect("a node record"), branch: None }
}

/// A record of `flow` that ended with `status` (`succeeded` or `failed`).
pub fn record(flow: &str, status: &str) -> RunRecord {
    let mut record = json!({
        "flow": flow, "status": status, "inputs": { "username": "jdoe" }, "vars": {}, "outputs": {},
        "started_at": 1, "ended_at": 2, "nodes": [],
    });
    if status == "failed" {
        record["error"] = json!({ "node": "create", "code": "duo_40003", "message": "duplicate\nusername" });
    }
    serde_json::from_value(record).expect("a run record")
}

pub fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

pub fn open(dir: &Path) -> Journal {
    Journal::open_with(dir, Options::default()).expect("the journal opens")
}

/// The variable that makes this test binary a child doing `ROLE` (see each file's `child`).
pub const CHILD: &str = "FLOWCAT_JOURNAL_TEST_CHILD";

/// This test binary, started again to run only the test `child` with `role`.
pub fn as_child(role: &str) -> Command {
    let exe = std::env::current_exe().expect("the test binary");
    let mut cmd = Command::new(exe);
    cmd.args(["child", "--exact", "--nocapture", "--test-threads=1", "-q"]).env(CHILD, role);
    cmd.env_remove(flowcat_journal::CRASH_AT_VAR);
    cmd
}

/// The lines a child printed that start with `> ` (the rest is the test harness's).
pub fn said(out: &Output) -> Vec<String> {
    String::from_utf8_lossy(&out.stdout).lines().filter_map(|l| l.strip_prefix("> ")).map(str::to_owned).collect()
}

/// Whether this process runs as root, for which file modes do not stop writes.
pub fn is_root() -> bool {
    use std::os::unix::fs::MetadataExt as _;
    std::fs::metadata("/proc/self").map(|m| m.uid() == 0).unwrap_or(false)
}

/// A multi-threaded runtime for a child.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("a runtime")
}
