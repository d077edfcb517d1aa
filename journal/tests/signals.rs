//! Signals in the journal: the schema migrated from version 2, signals stored per run and name
//! (never seen by another run), every refusal, a waiting node woken by a delivery through this
//! journal or another holder's, runs listed as waiting, and the query a service resumes by.

mod common;

use std::time::Duration;

use common::{finished, now_ms, record};
use flowcat_engine::journal::{
    Begun, Delivery, Filter, IfBusy, InputType, RunHandle, SignalSpec, Start, Store, StoredStatus,
};
use flowcat_journal::Journal;
use serde_json::json;

fn approval() -> SignalSpec {
    SignalSpec {
        name: "approval".into(),
        payload: vec![("approved".into(), InputType::Boolean), ("approver".into(), InputType::String)],
    }
}

async fn begin(journal: &Journal) -> Box<dyn RunHandle> {
    let mut info = common::info("examples.offboard_with_approval", None);
    info.signals = vec![approval()];
    match journal.begin(Start { info, if_busy: IfBusy::Refuse, awaited: false }).await.expect("begin") {
        Begun::Fresh(run) => run,
        other => panic!("fresh: {other:?}"),
    }
}

fn path(p: &str) -> Vec<String> {
    vec![p.to_owned()]
}

/// Bounds a wait that must end (a safety net, not a measure of time).
async fn soon<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(20), f).await.expect("it ended")
}

#[tokio::test]
async fn signals_are_checked_stored_per_run_and_wake_the_waiting_node() {
    let dir = tempfile::tempdir().expect("tempdir");
    let journal = common::open(dir.path());
    let a = begin(&journal).await;
    let b = begin(&journal).await;
    let (a_id, b_id) = (a.info().id.clone(), b.info().id.clone());
    let ok = json!({ "approved": true, "approver": "boss" });
    let p = path("approval");

    // Refusals: nothing stored, nothing woken.
    assert_eq!(journal.signal("r-nope", "approval", &ok).await.expect("signal"), Delivery::UnknownRun);
    let other = journal.signal(&a_id, "callback", &ok).await.expect("signal");
    assert_eq!(other, Delivery::NotAwaited { awaited: vec!["approval".into()] });
    let wrong = journal.signal(&a_id, "approval", &json!({ "approved": "yes", "approver": "boss" })).await;
    let Ok(Delivery::BadPayload { problems }) = wrong else { panic!("{wrong:?}") };
    assert_eq!(problems, ["field `approved` must be a boolean, not a string"]);
    let big = json!({ "approved": true, "approver": "x".repeat(70_000) });
    assert_eq!(journal.signal(&a_id, "approval", &big).await.expect("signal").code(), "bad_payload");

    // A waits; a signal for B does not reach it.
    let waiting = a.wait_signal(&p, "approval", Some(now_ms() + 3_600_000), &|| {});
    let mut waiting = std::pin::pin!(waiting);
    park(&mut waiting, &journal, &a_id).await;
    let listed = journal.list(&Filter { status: vec![StoredStatus::Waiting], ..Filter::default() }).expect("list");
    assert_eq!(listed.len(), 1, "{listed:#?}");
    let w = listed[0].waiting.clone().expect("waiting");
    assert_eq!(
        (listed[0].info.id.as_str(), w.signal.as_str(), w.path.as_str()),
        (a_id.as_str(), "approval", "approval")
    );
    assert!(w.held && !w.delivered);
    let to_b = json!({ "approved": false, "approver": "other" });
    assert_eq!(journal.signal(&b_id, "approval", &to_b).await.expect("signal"), Delivery::Delivered);
    assert!(futures_poll(&mut waiting).await.is_none(), "B's signal is not A's");

    // A's own signal wakes it with its payload; a second delivery is refused.
    assert_eq!(journal.signal(&a_id, "approval", &ok).await.expect("signal"), Delivery::Delivered);
    assert_eq!(soon(waiting).await.expect("the payload"), ok);
    assert_eq!(journal.signal(&a_id, "approval", &to_b).await.expect("signal"), Delivery::AlreadyDelivered);
    // B takes its own later, at once.
    assert_eq!(soon(b.wait_signal(&path("w"), "approval", None, &|| {})).await.expect("B's payload"), to_b);

    // The wait's result journaled: A no longer waits; ended, it takes no more signals.
    a.noted(&p, finished("approval", json!({ "timed_out": false })));
    journal.flush().await.expect("flush");
    assert_eq!(journal.show(&a_id).expect("show").expect("a").summary.status, StoredStatus::Running);
    a.end(StoredStatus::Succeeded, &record("f", "succeeded")).await.expect("end");
    let late = journal.signal(&a_id, "approval", &ok).await.expect("signal");
    assert_eq!(late, Delivery::Finished { status: StoredStatus::Succeeded });
}

/// Drives a node's wait until the journal lists the run as waiting; it must not end meanwhile.
async fn park<F: std::future::Future + Unpin>(f: &mut F, journal: &Journal, id: &str) {
    soon(async {
        loop {
            assert!(futures_poll(f).await.is_none(), "the wait ended with nothing delivered");
            // Not there yet while its beginning is held, then not waiting until the wait is written.
            if journal.show(id).expect("show").is_some_and(|r| r.summary.waiting.is_some()) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
}

/// Polls a future once (without waiting): `Some` if it is ready.
async fn futures_poll<F: std::future::Future + Unpin>(f: &mut F) -> Option<F::Output> {
    std::future::poll_fn(|cx| match std::pin::Pin::new(&mut *f).poll(cx) {
        std::task::Poll::Ready(v) => std::task::Poll::Ready(Some(v)),
        std::task::Poll::Pending => std::task::Poll::Ready(None),
    })
    .await
}

#[tokio::test]
async fn a_signal_through_another_holder_wakes_the_node_and_an_unheld_run_is_wakeable() {
    let dir = tempfile::tempdir().expect("tempdir");
    let here = common::open(dir.path());
    // Another process's journal: a holder of its own, no shared wake-up.
    let there = common::open(dir.path());
    let run = begin(&here).await;
    let id = run.info().id.clone();
    let p = path("approval");
    let payload = json!({ "approved": true, "approver": "m" });
    // The wait says it waits only once another process sees it waiting: a signal sent on that
    // news is accepted (it was said before the wait was journaled, and could be refused).
    let said = tokio::sync::Notify::new();
    let seen_waiting = std::sync::atomic::AtomicBool::new(false);
    let on_waiting = || {
        let status = there.show(&id).expect("show").map(|r| r.summary.status);
        seen_waiting.store(status == Some(StoredStatus::Waiting), std::sync::atomic::Ordering::SeqCst);
        said.notify_one();
    };
    let wait = run.wait_signal(&p, "approval", Some(now_ms() + 60_000), &on_waiting);
    let deliver = async {
        said.notified().await;
        assert!(seen_waiting.load(std::sync::atomic::Ordering::SeqCst), "said before it was journaled");
        assert_eq!(there.signal(&id, "approval", &payload).await.expect("signal"), Delivery::Delivered);
    };
    let (got, ()) = soon(async { tokio::join!(wait, deliver) }).await;
    assert_eq!(got.expect("payload"), payload, "seen by polling the journal");

    // A second run parked by a process that let it go: waiting, unheld; wakeable once its
    // signal came or its time passed.
    let parked = begin(&here).await;
    let parked_id = parked.info().id.clone();
    let timed = begin(&here).await;
    let timed_id = timed.info().id.clone();
    {
        let mut wait = std::pin::pin!(parked.wait_signal(&p, "approval", Some(now_ms() + 3_600_000), &|| {}));
        park(&mut wait, &here, &parked_id).await;
        let mut wait = std::pin::pin!(timed.wait_signal(&p, "approval", Some(now_ms() + 50), &|| {}));
        park(&mut wait, &here, &timed_id).await;
    }
    // Ctrl-C: ended interrupted, the handles dropped.
    parked.end(StoredStatus::Interrupted, &record("f", "failed")).await.expect("end");
    drop(parked);
    drop(timed);
    here.flush().await.expect("flush");
    let shown = there.show(&parked_id).expect("show").expect("the run");
    assert_eq!(shown.summary.status, StoredStatus::Waiting, "still waiting after Ctrl-C");
    let w = shown.summary.waiting.expect("waiting");
    assert!(!w.held && !w.delivered, "{w:?}");
    let now = now_ms() + 100;
    assert_eq!(there.wakeable(now).expect("wakeable"), vec![timed_id.clone()], "only the one whose time passed");
    assert_eq!(there.signal(&parked_id, "approval", &payload).await.expect("signal"), Delivery::Delivered);
    let mut wakeable = there.wakeable(now).expect("wakeable");
    wakeable.sort();
    let mut want = vec![parked_id.clone(), timed_id];
    want.sort();
    assert_eq!(wakeable, want);
    assert!(there.show(&parked_id).expect("show").expect("run").summary.waiting.expect("w").delivered);
    // Resumed, it finds the signal at once.
    let (held, _) = there.resume(&parked_id).await.expect("resume");
    assert_eq!(soon(held.wait_signal(&p, "approval", None, &|| {})).await.expect("payload"), payload);
    assert!(!there.wakeable(now).expect("wakeable").contains(&parked_id), "held again: not for a service to wake");
}

#[test]
fn a_version_2_journal_is_migrated_and_its_runs_take_no_signal() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join(flowcat_journal::DB_FILE);
    {
        let conn = rusqlite_conn(&file);
        conn.execute_batch(V2).expect("a version 2 journal");
    }
    let journal = common::open(dir.path());
    let conn = rusqlite_conn(&file);
    let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0)).expect("version");
    assert_eq!(version, 6);
    let runs = journal.list(&Filter::default()).expect("list");
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].status, StoredStatus::Interrupted);
    assert!(runs[0].info.signals.is_empty() && runs[0].waiting.is_none());
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let answer = rt.block_on(journal.signal("r-old", "approval", &json!({}))).expect("signal");
    assert_eq!(answer, Delivery::NotAwaited { awaited: Vec::new() });
    assert!(answer.refusal("r-old", "approval").expect("refused").contains("waits for no signal"));
}

fn rusqlite_conn(file: &std::path::Path) -> rusqlite::Connection {
    rusqlite::Connection::open(file).expect("open")
}

/// A journal as flowcat wrote it at schema version 2, with one run.
const V2: &str = "
PRAGMA application_id = 1718379636;
CREATE TABLE runs (
    seq INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, flow TEXT NOT NULL, flow_digest TEXT NOT NULL, key TEXT,
    inputs TEXT NOT NULL, vars TEXT NOT NULL, binds TEXT NOT NULL, targets TEXT NOT NULL,
    created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL, deadline_at INTEGER,
    status TEXT NOT NULL CHECK (status IN ('running', 'interrupted', 'needs_attention', 'succeeded', 'failed')),
    note TEXT, record TEXT, source TEXT
) STRICT;
CREATE UNIQUE INDEX runs_flow_key ON runs (flow, key) WHERE key IS NOT NULL;
CREATE INDEX runs_created_at ON runs (created_at);
CREATE TABLE nodes (
    run INTEGER NOT NULL REFERENCES runs (seq) ON DELETE CASCADE, path TEXT NOT NULL, started_at INTEGER,
    intent TEXT, finished TEXT, at INTEGER NOT NULL
) STRICT;
CREATE UNIQUE INDEX nodes_run_path ON nodes (run, path);
ALTER TABLE runs ADD COLUMN holder TEXT;
INSERT INTO runs (id, flow, flow_digest, inputs, vars, binds, targets, created_at, updated_at, status)
    VALUES ('r-old', 'f', 'sha256:0', '{}', '{}', '[]', '[]', 1, 1, 'interrupted');
PRAGMA user_version = 2;
";
