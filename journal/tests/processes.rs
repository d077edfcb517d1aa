//! Several processes on one journal: one run per key across processes, a killed process's run
//! freed at once, and the test crash points (`FLOWCAT_CRASH_AT`). The other processes are this
//! test binary started again (`child`).

mod common;

use std::io::BufRead as _;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use common::{as_child, finished, open, record, said, start};
use flowcat_engine::journal::{Begun, RunHandle, Store, StoredStatus};
use flowcat_journal::{CRASH_AT_VAR, Journal};
use serde_json::json;

fn path(p: &str) -> Vec<String> {
    p.split('/').map(str::to_owned).collect()
}

/// Four processes, five tasks each, all beginning one key: exactly one fresh run; the others
/// wait for it and get its record.
#[test]
fn one_key_across_processes_makes_one_fresh_run() {
    let dir = tempfile::tempdir().expect("tempdir");
    drop(open(dir.path()));
    let children: Vec<_> = (0..4)
        .map(|_| {
            as_child(&format!("begin:{}", dir.path().display()))
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("a child")
        })
        .collect();
    let mut outcomes = Vec::new();
    for c in children {
        let out = c.wait_with_output().expect("the child ends");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        outcomes.extend(said(&out));
    }
    outcomes.sort();
    let mut want = vec!["done".to_owned(); 19];
    want.push("fresh".to_owned());
    assert_eq!(outcomes, want);
    let journal = open(dir.path());
    let runs = journal.list(&Default::default()).expect("list");
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].status, StoredStatus::Succeeded);
}

/// A process killed with SIGKILL while it holds a run: the run is free at once (no lease to time
/// out), listed as interrupted, and resumed with what it had journaled.
#[tokio::test]
async fn a_killed_process_frees_its_run_at_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let journal = open(dir.path());
    let mut holder = as_child(&format!("hold:{}", dir.path().display()))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("a child");
    let mut lines = std::io::BufReader::new(holder.stdout.take().expect("stdout")).lines();
    let id = loop {
        let line = lines.next().expect("the child says its run").expect("a line");
        if let Some(id) = line.strip_prefix("> ") {
            break id.to_owned();
        }
    };
    assert_eq!(journal.show(&id).expect("show").map(|r| r.summary.status), Some(StoredStatus::Running));
    assert!(matches!(journal.resume(&id).await, Err(e) if e.code == "busy"));
    holder.kill().expect("SIGKILL");
    holder.wait().expect("reaped");
    assert_eq!(journal.show(&id).expect("show").map(|r| r.summary.status), Some(StoredStatus::Interrupted));
    let (run, past) = journal.resume(&id).await.expect("resumed at once");
    assert!(past.node("a").is_some_and(|n| n.finished.is_some()));
    assert!(past.node("b").is_some_and(|n| n.intent.is_some() && n.finished.is_none()));
    run.end(StoredStatus::Succeeded, &record("f", "succeeded")).await.expect("end");
}

/// Each crash point aborts the process at its moment, with exactly what it promises durable.
#[test]
fn crash_points_abort_with_exactly_the_promised_journal() {
    // (FLOWCAT_CRASH_AT, then per node: started?, intent?, finished?)
    type Node = (bool, bool, bool);
    let table: &[(&str, Node, Node)] = &[
        ("started:a", (true, false, false), (false, false, false)),
        ("finished:a", (true, false, true), (false, false, false)),
        ("intent:b", (true, false, true), (true, true, false)),
        ("sent:b", (true, false, true), (true, true, false)),
        ("finished:b", (true, false, true), (true, true, true)),
        // The second time node `b` (in subflow `s`) reaches `started`.
        ("started:s/b#2", (true, false, true), (true, true, true)),
    ];
    for (at, want_a, want_b) in table {
        let dir = tempfile::tempdir().expect("tempdir");
        let out = as_child(&format!("crash:{}", dir.path().display())).env(CRASH_AT_VAR, at).output().expect("runs");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && stderr.contains("aborting (a test crash point)"), "{at}: {stderr}");
        let id = said(&out).first().cloned().expect("the child said its run");
        let journal = open(dir.path());
        let run = journal.show(&id).expect("show").expect("the run");
        assert_eq!(run.summary.status, StoredStatus::Interrupted, "{at}");
        let node = |p: &str| {
            let n = run.past.node(p).cloned().unwrap_or_default();
            (n.started_at.is_some(), n.intent.is_some(), n.finished.is_some())
        };
        let (a, b) = if at.contains("s/b") { (node("a"), node("s/b")) } else { (node("a"), node("b")) };
        assert_eq!((a, b), (*want_a, *want_b), "{at}");
    }
    // A bad crash point is an error when the journal opens, not silence.
    let dir = tempfile::tempdir().expect("tempdir");
    let out = as_child(&format!("crash:{}", dir.path().display())).env(CRASH_AT_VAR, "later:a").output().expect("runs");
    assert_eq!(
        said(&out),
        ["config: `FLOWCAT_CRASH_AT`: `later` is not a phase: expected `started`, `intent`, `sent` or `finished`"]
    );
}

/// The child side, by role: `begin:DIR` five concurrent begins of one key (the fresh one ends
/// after 300 ms); `hold:DIR` a run held until killed; `crash:DIR` a run through the crash points.
#[test]
fn child() {
    let Ok(role) = std::env::var(common::CHILD) else { return };
    let (role, dir) = role.split_once(':').expect("ROLE:DIR");
    let dir = Path::new(dir);
    let rt = common::runtime();
    rt.block_on(async {
        match role {
            "begin" => begin_one_key(dir).await,
            "hold" => {
                let journal = open(dir);
                let Begun::Fresh(run) = journal.begin(start("f", None)).await.expect("begin") else { panic!("fresh") };
                run.finished(&path("a"), &finished("a", json!(1))).await.expect("finished");
                run.intent(&path("b"), &json!({ "method": "POST" })).await.expect("intent");
                println!("> {}", run.info().id);
                tokio::time::sleep(Duration::from_secs(60)).await;
            }
            "crash" => {
                let journal = match Journal::open(dir) {
                    Ok(journal) => journal,
                    Err(e) => return println!("> {}: {}", e.code, e.message),
                };
                let Begun::Fresh(run) = journal.begin(start("f", None)).await.expect("begin") else { panic!("fresh") };
                println!("> {}", run.info().id);
                journal_nodes(&*run).await;
                println!("> no crash");
            }
            other => panic!("unknown role {other}"),
        }
    });
}

async fn begin_one_key(dir: &Path) {
    let journal = std::sync::Arc::new(open(dir));
    let tasks: Vec<_> = (0..5)
        .map(|_| {
            let journal = journal.clone();
            tokio::spawn(async move {
                match journal.begin(start("onboard", Some("jdoe"))).await.expect("begin") {
                    Begun::Fresh(run) => {
                        tokio::time::sleep(Duration::from_millis(300)).await;
                        run.end(StoredStatus::Succeeded, &record("onboard", "succeeded")).await.expect("end");
                        "fresh"
                    }
                    Begun::Resumed(..) => "resumed",
                    Begun::Done(_) => "done",
                    Begun::Busy { .. } => "busy",
                }
            })
        })
        .collect();
    for task in tasks {
        println!("> {}", task.await.expect("a task"));
    }
}

/// Node `a` (a read), then write `b`, then write `s/b` twice (a retried node in a subflow).
async fn journal_nodes(run: &dyn RunHandle) {
    run.started(&path("a"), 1);
    run.finished(&path("a"), &finished("a", json!(1))).await.expect("finished");
    for p in ["b", "s/b", "s/b"] {
        run.started(&path(p), 2);
        run.intent(&path(p), &json!({ "method": "POST", "path": p })).await.expect("intent");
        run.finished(&path(p), &finished("b", json!(2))).await.expect("finished");
    }
}
