//! The store in one process: a run's life (begin, nodes, end), keys, list, show, resume, prune,
//! and group commit under concurrency.

mod common;

use std::sync::Arc;

use common::{finished, open, record, start};
use flowcat_engine::journal::{Begun, Filter, IfBusy, RunHandle, Store, StoredStatus, path_key};
use serde_json::json;

fn path(p: &str) -> Vec<String> {
    p.split('/').map(str::to_owned).collect()
}

fn fresh(begun: Begun) -> Box<dyn RunHandle> {
    match begun {
        Begun::Fresh(handle) => handle,
        other => panic!("expected a fresh run, got {other:?}"),
    }
}

#[tokio::test]
async fn a_run_is_journaled_ended_and_shown() {
    let dir = tempfile::tempdir().expect("tempdir");
    let journal = open(dir.path());
    let run = fresh(journal.begin(start("duo.admin.enroll_user", None)).await.expect("begin"));
    let id = run.info().id.clone();
    assert!(id.starts_with('r') && id.len() == 16, "{id}");
    assert_eq!(run.info().binds, vec![("duo_admin".to_owned(), "duo".to_owned())]);
    let targets = vec![("duo_admin".to_owned(), "api-12345678.duosecurity.com".to_owned())];
    assert_eq!(journal.show(&run.info().id).expect("show").map(|r| r.summary.info.targets), Some(targets));

    run.started(&path("lookup"), 100);
    run.finished(&path("lookup"), &finished("lookup", json!({ "user_id": "DU1" }))).await.expect("finished");
    run.started(&path("phone/create"), 200);
    let request = json!({ "method": "POST", "url": "https://api-x.duosecurity.com/admin/v1/phones" });
    run.intent(&path("phone/create"), &request).await.expect("intent");

    // Before the end: running, held by this process, its nodes journaled.
    let shown = journal.show(&id).expect("show").expect("the run");
    assert_eq!(shown.summary.status, StoredStatus::Running);
    assert_eq!(shown.record, None);
    let phone = shown.past.node("phone/create").expect("journaled");
    assert_eq!((phone.started_at, phone.intent.as_ref(), phone.finished.as_ref()), (Some(200), Some(&request), None));
    assert_eq!(
        shown.past.node("lookup").and_then(|n| n.finished.as_ref()).map(|f| f.record.id.as_str()),
        Some("lookup")
    );

    run.finished(&path("phone/create"), &finished("create", json!({ "phone_id": "DP1" }))).await.expect("finished");
    run.end(StoredStatus::Failed, &record("duo.admin.enroll_user", "failed")).await.expect("end");
    // A final end is gathered with other work: durable at the next flush (or within the hold).
    journal.flush().await.expect("flush");
    let shown = journal.show(&id).expect("show").expect("the run");
    assert_eq!(shown.summary.status, StoredStatus::Failed);
    assert_eq!(shown.summary.note.as_deref(), Some("`create` duo_40003: duplicate username"));
    assert!(shown.record.is_some());
    assert_eq!(shown.past.nodes.len(), 2, "the nodes stay after the end: {:?}", shown.past);
    assert!(shown.summary.updated_at >= shown.summary.info.created_at);
    assert!(matches!(run.end(StoredStatus::Running, &record("f", "succeeded")).await, Err(e) if e.code == "invalid"));
    assert_eq!(journal.show("r0000000000nope").expect("show"), None);
}

#[tokio::test]
async fn a_dropped_run_is_interrupted_and_resumed_with_its_past() {
    let dir = tempfile::tempdir().expect("tempdir");
    let journal = open(dir.path());
    let run = fresh(journal.begin(start("f", None)).await.expect("begin"));
    let id = run.info().id.clone();
    run.finished(&path("a"), &finished("a", json!(1))).await.expect("finished");
    run.intent(&path("b"), &json!({ "method": "POST" })).await.expect("intent");
    assert!(matches!(journal.resume(&id).await, Err(e) if e.code == "busy"), "held by `run`");
    assert_eq!(journal.list(&Filter::default()).expect("list")[0].status, StoredStatus::Running);
    drop(run);
    journal.flush().await.expect("the release is written");

    assert_eq!(journal.list(&Filter::default()).expect("list")[0].status, StoredStatus::Interrupted);
    let (again, past) = journal.resume(&id).await.expect("resume");
    assert_eq!(again.info().id, id);
    assert_eq!(again.info().flow, "f");
    assert!(past.node("a").is_some_and(|n| n.finished.is_some()));
    assert!(past.node("b").is_some_and(|n| n.intent.is_some() && n.finished.is_none()), "outcome unknown");
    assert_eq!(journal.list(&Filter::default()).expect("list")[0].status, StoredStatus::Running);

    // Ended as interrupted (Ctrl-C): still resumable; ended as succeeded: finished.
    again.end(StoredStatus::Interrupted, &record("f", "failed")).await.expect("end");
    drop(again);
    let (third, _) = journal.resume(&id).await.expect("an interrupted run resumes");
    assert_eq!(journal.show(&id).expect("show").map(|r| r.record.is_none()), Some(true), "the old record is cleared");
    third.end(StoredStatus::Succeeded, &record("f", "succeeded")).await.expect("end");
    let locks = || std::fs::read_dir(dir.path().join("locks")).expect("locks").count();
    assert_eq!(locks(), 1, "one lock file for the process, none per run");
    drop(third);
    assert!(matches!(journal.resume(&id).await, Err(e) if e.code == "finished" && e.message.contains(&id)));
    assert!(matches!(journal.resume("r00000000000000").await, Err(e) if e.code == "unknown_run"));
    assert!(matches!(journal.resume("../../etc/passwd").await, Err(e) if e.code == "unknown_run"));
    drop(journal);
    assert_eq!(locks(), 0, "a closed journal leaves no lock file");
}

/// Two journals on one state folder hold runs as two processes do: each run is held by one of
/// them, and a run one lets go (or never ends) is free for the other, once the release is written.
#[tokio::test]
async fn two_holders_exclude_each_other_and_a_released_run_is_free() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (a, b) = (open(dir.path()), open(dir.path()));
    let run = fresh(a.begin(start("f", None)).await.expect("begin"));
    let id = run.info().id.clone();
    run.finished(&path("a"), &finished("a", json!(1))).await.expect("finished");
    let status = |j: &flowcat_journal::Journal| j.list(&Filter::default()).expect("list")[0].status;
    assert_eq!(status(&b), StoredStatus::Running, "the other holder sees it running");
    assert!(matches!(b.resume(&id).await, Err(e) if e.code == "busy"), "held by the other journal");

    drop(run);
    a.flush().await.expect("flush");
    assert_eq!(status(&b), StoredStatus::Interrupted, "let go: interrupted");
    let (taken, past) = b.resume(&id).await.expect("the other journal takes it");
    assert!(past.node("a").is_some_and(|n| n.finished.is_some()));
    assert_eq!(status(&a), StoredStatus::Running, "now held by b");
    assert!(matches!(a.resume(&id).await, Err(e) if e.code == "busy"));

    // A whole journal closed with a run still held (the process ends): the run is free.
    drop(a);
    let c = open(dir.path());
    assert!(matches!(c.resume(&id).await, Err(e) if e.code == "busy"), "b still holds it");
    drop(taken);
    b.flush().await.expect("flush");
    let (again, _) = c.resume(&id).await.expect("free once b let it go");
    again.end(StoredStatus::Succeeded, &record("f", "succeeded")).await.expect("end");
    c.flush().await.expect("flush");
    assert_eq!(status(&b), StoredStatus::Succeeded);
}

/// Entries nobody waits for (a start, a read's result) are held by the writer and written with
/// the run's next awaited entry, at a flush, or after a short while; a run that succeeds writes
/// its row, its results and its end (which names them) in one commit, and drops its starts.
#[tokio::test]
async fn held_entries_are_written_with_the_next_awaited_one_or_with_a_final_end_that_names_them() {
    let dir = tempfile::tempdir().expect("tempdir");
    let journal = open(dir.path());
    let nodes = |id: &str| journal.show(id).expect("show").expect("the run").past.nodes;

    // A run of reads that succeeds: its row, its results and its end. The journal's first run
    // awaits its beginning (a journal that cannot write refuses it before anything is sent).
    let run = fresh(journal.begin(start("reads", None)).await.expect("begin"));
    let id = run.info().id.clone();
    assert_eq!(journal.stats().0, 1, "the first beginning is committed before the run starts");
    let mut whole = record("reads", "succeeded");
    for n in ["a", "b", "c"] {
        run.started(&path(n), 1);
        let node = finished(n, json!(n));
        whole.nodes.push(node.record.clone());
        run.noted(&path(n), node);
    }
    run.end(StoredStatus::Succeeded, &whole).await.expect("end");
    journal.flush().await.expect("flush");
    assert_eq!(journal.stats(), (2, 6), "then one commit: three results, the end and the flush");
    let past = nodes(&id);
    assert_eq!(past.len(), 3, "{past:?}");
    assert!(past.values().all(|n| n.started_at.is_none() && n.finished.is_some()), "starts dropped: {past:?}");
    let stored: String = rusqlite::Connection::open(journal.file())
        .expect("open")
        .query_row("SELECT record FROM runs WHERE id = ?1", [&id], |r| r.get(0))
        .expect("the record");
    assert!(stored.contains(r#"{"$row":"b"}"#) && !stored.contains(r#""result":"b""#), "named, not repeated: {stored}");
    let shown = journal.show(&id).expect("show").expect("the run").record.expect("its record");
    assert_eq!(shown, whole, "read back whole");

    // Once the journal took a commit, a run without a key holds its beginning too: a run of
    // reads wakes the writer not once, and is written whole (row and end) with the next batch.
    let run = fresh(journal.begin(start("reads", None)).await.expect("begin"));
    let id = run.info().id.clone();
    run.started(&path("a"), 1);
    run.noted(&path("a"), finished("a", json!("a")));
    run.end(StoredStatus::Succeeded, &record("reads", "succeeded")).await.expect("end");
    drop(run);
    assert_eq!(journal.stats().0, 2, "nothing committed yet");
    assert_eq!(journal.show(&id).expect("show"), None, "not written yet");
    journal.flush().await.expect("flush");
    assert_eq!(journal.stats(), (3, 11), "one more commit of five ops: beginning, result, end, release, flush");
    let shown = journal.show(&id).expect("show").expect("written");
    assert_eq!((shown.summary.status, shown.past.nodes.len()), (StoredStatus::Succeeded, 1));

    // A run that writes: its reads are durable with the write's intent, before it is sent.
    let run = fresh(journal.begin(start("writes", None)).await.expect("begin"));
    let id = run.info().id.clone();
    run.started(&path("read"), 1);
    run.noted(&path("read"), finished("read", json!(1)));
    run.intent(&path("write"), &json!({ "method": "POST" })).await.expect("intent");
    let past = journal.show(&id).expect("show").expect("run").past;
    assert!(past.node("read").is_some_and(|n| n.started_at == Some(1) && n.finished.is_some()), "{past:?}");
    assert!(past.node("write").is_some_and(|n| n.intent.is_some()));

    // A run that waits: its start is written within the hold time, without anything after it.
    // (The writer's hold is on the machine's clock: the bounds below cannot fail by slowness.)
    let sent = std::time::Instant::now();
    run.started(&path("poll"), 2);
    while journal.show(&id).expect("show").expect("run").past.node("poll").is_none() {
        assert!(sent.elapsed() < std::time::Duration::from_secs(10), "the held start was never written");
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    assert!(sent.elapsed() >= std::time::Duration::from_millis(100), "held, not written at once");

    // Ended interrupted (not finished): what it held is kept for the resume.
    run.noted(&path("late"), finished("late", json!(2)));
    run.end(StoredStatus::Interrupted, &record("writes", "failed")).await.expect("end");
    assert!(journal.show(&id).expect("show").expect("run").past.node("late").is_some());
}

/// A call's last answer is its result's: stored once (a write's own entry, and a read's detail
/// in its subflow's entry and the run's record), and every read gives the whole detail back.
#[tokio::test]
async fn a_calls_last_answer_is_stored_once_and_shown_whole() {
    use flowcat_engine::run::Detail;
    let dir = tempfile::tempdir().expect("tempdir");
    let journal = open(dir.path());
    let answer = json!({ "body": { "stat": "OK", "response": { "phone_id": "DP7" } },
                         "headers": { "content-type": "application/json" }, "status": 200 });
    let call = |id: &str| {
        let mut node = finished(id, json!({ "phone_id": "DP7" }));
        let mut result = answer.clone();
        result["phone_id"] = json!("DP7");
        node.record.result = Some(Arc::new(result));
        let request = json!({ "method": "POST", "url": format!("/admin/v1/{id}") });
        let whole = json!({ "attempts": [{ "request": request, "response": answer }] });
        let lean = json!({ "$result": { "at": "/attempts/0/response", "fields": ["body", "headers", "status"] },
                           "attempts": [{ "request": request }] });
        node.record.detail = Some(Detail::typed_with_lean(whole, lean));
        node
    };
    let run = fresh(journal.begin(start("phones", None)).await.expect("begin"));
    let id = run.info().id.clone();
    // A read inside a subflow (its entry without the detail, which its caller's entry carries),
    // then a write (its own entry with it).
    let mut lookup = call("lookup");
    let mut sub = record("inner", "succeeded");
    sub.nodes.push(lookup.record.clone());
    lookup.record.detail = None;
    run.noted(&path("phone/lookup"), lookup);
    let mut phone = finished("phone", json!({ "exists": true }));
    phone.record.kind = "subflow".into();
    phone.record.subflow = Some(Box::new(sub));
    run.noted(&path("phone"), phone.clone());
    run.intent(&path("create"), &json!({ "method": "POST" })).await.expect("intent");
    let create = call("create");
    run.finished(&path("create"), &create).await.expect("finished");
    let mut whole = record("phones", "succeeded");
    whole.nodes = vec![phone.record.clone(), create.record.clone()];
    run.end(StoredStatus::Succeeded, &whole).await.expect("end");
    drop(run);
    journal.flush().await.expect("flush");

    let conn = rusqlite::Connection::open(journal.file()).expect("open");
    let mut stored: Vec<String> = conn
        .prepare("SELECT finished FROM nodes")
        .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect())
        .expect("the entries");
    stored.push(conn.query_row("SELECT record FROM runs WHERE id = ?1", [&id], |r| r.get(0)).expect("the record"));
    let all = stored.concat();
    assert_eq!(all.matches(r#""phone_id":"DP7"}"#).count(), 2, "each of the two answers once, in its result: {all}");
    assert_eq!(all.matches(r#""$result""#).count(), 2, "{all}");
    let shown = journal.show(&id).expect("show").expect("the run");
    assert_eq!(shown.record.expect("its record"), whole, "read back whole");
    let past = &shown.past.nodes;
    assert_eq!(past["create"].finished.as_ref().expect("create").record, create.record);
    assert_eq!(past["phone"].finished.as_ref().expect("phone").record, phone.record);
}

#[tokio::test]
async fn a_key_names_one_run_fresh_then_resumed_then_done() {
    let dir = tempfile::tempdir().expect("tempdir");
    let journal = open(dir.path());
    let first = fresh(journal.begin(start("onboard", Some("jdoe"))).await.expect("begin"));
    let id = first.info().id.clone();
    first.finished(&path("a"), &finished("a", json!(1))).await.expect("finished");
    // Another flow may use the same key.
    fresh(journal.begin(start("offboard", Some("jdoe"))).await.expect("begin"));

    let mut refuse = start("onboard", Some("jdoe"));
    refuse.if_busy = IfBusy::Refuse;
    assert!(matches!(journal.begin(refuse.clone()).await, Ok(Begun::Busy { id: busy }) if busy == id));
    drop(first);
    let Ok(Begun::Resumed(second, past)) = journal.begin(refuse.clone()).await else { panic!("resumed") };
    assert_eq!(second.info().id, id);
    assert!(past.node("a").is_some());
    second.end(StoredStatus::Succeeded, &record("onboard", "succeeded")).await.expect("end");
    let Ok(Begun::Done(done)) = journal.begin(refuse).await else { panic!("done") };
    assert_eq!((done.summary.info.id.as_str(), done.summary.status), (id.as_str(), StoredStatus::Succeeded));
    assert!(done.record.is_some());
}

/// Twenty runs with one key at once: exactly one is fresh. With `Refuse` the others are busy;
/// with `Wait` they wait, and get the first one's record once it ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twenty_runs_with_one_key_make_one_fresh_run() {
    let dir = tempfile::tempdir().expect("tempdir");
    let journal = Arc::new(open(dir.path()));
    for if_busy in [IfBusy::Refuse, IfBusy::Wait] {
        let key = format!("{if_busy:?}");
        let tasks: Vec<_> = (0..20)
            .map(|_| {
                let (journal, key) = (journal.clone(), key.clone());
                tokio::spawn(async move {
                    let mut s = start("onboard", Some(&key));
                    s.if_busy = if_busy;
                    match journal.begin(s).await.expect("begin") {
                        Begun::Fresh(run) => {
                            tokio::time::sleep(std::time::Duration::from_millis(150)).await;
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
        let mut outcomes = Vec::new();
        for task in tasks {
            outcomes.push(task.await.expect("a task"));
        }
        outcomes.sort();
        let others = if if_busy == IfBusy::Refuse { "busy" } else { "done" };
        let want: Vec<&str> = std::iter::once("fresh").chain(std::iter::repeat_n(others, 19)).collect::<Vec<_>>();
        let mut want = want;
        want.sort();
        assert_eq!(outcomes, want, "{if_busy:?}");
    }
    let runs = journal.list(&Filter::default()).expect("list");
    assert_eq!(runs.len(), 2, "one run per key: {runs:?}");
}

#[tokio::test]
async fn list_filters_by_status_and_flow_newest_first_and_prune_keeps_unfinished_runs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let journal = open(dir.path());
    let mut ids = Vec::new();
    let mut held = Vec::new();
    for (i, (flow, status)) in
        [("a", "succeeded"), ("b", "failed"), ("a", "running"), ("b", "interrupted"), ("a", "succeeded")]
            .into_iter()
            .enumerate()
    {
        let mut s = start(flow, None);
        s.info.created_at = 1_000 + i as u64;
        let run = fresh(journal.begin(s).await.expect("begin"));
        ids.push(run.info().id.clone());
        match status {
            "running" => held.push(run),
            "interrupted" => drop(run),
            done => run.end(StoredStatus::parse(done).expect("a status"), &record(flow, done)).await.expect("end"),
        }
    }
    journal.flush().await.expect("flush");
    let list = |status: &[StoredStatus], flow: Option<&str>, limit: usize| {
        let filter = Filter { status: status.to_vec(), flow: flow.map(str::to_owned), limit };
        journal.list(&filter).expect("list").into_iter().map(|r| r.info.id).collect::<Vec<_>>()
    };
    let newest_first: Vec<String> = ids.iter().rev().cloned().collect();
    assert_eq!(list(&[], None, 0), newest_first);
    assert_eq!(list(&[], None, 2), newest_first[..2]);
    assert_eq!(list(&[], Some("a"), 0), [ids[4].clone(), ids[2].clone(), ids[0].clone()]);
    assert_eq!(list(&[StoredStatus::Interrupted], None, 0), [ids[3].clone()]);
    assert_eq!(list(&[StoredStatus::Running], None, 0), [ids[2].clone()]);
    assert_eq!(list(&[StoredStatus::Succeeded, StoredStatus::Failed], None, 1), [ids[4].clone()]);
    assert_eq!(list(&[StoredStatus::Succeeded], Some("b"), 0), Vec::<String>::new());

    // Prune: only finished runs that ended before the time given.
    assert_eq!(journal.prune(1).expect("prune"), 0, "none ended that long ago");
    assert_eq!(journal.prune(common::now_ms() + 1).expect("prune"), 3);
    assert_eq!(list(&[], None, 0), [ids[3].clone(), ids[2].clone()]);
    assert_eq!(journal.show(&ids[0]).expect("show"), None);
    drop(held);
}

/// Pruned runs give their pages back to the file system: the journal file shrinks. (Every
/// journal used to be made without `auto_vacuum`, set too late, and kept its size for ever.)
#[tokio::test]
async fn prune_gives_the_freed_pages_back_and_the_file_shrinks() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join(flowcat_journal::DB_FILE);
    {
        let journal = open(dir.path());
        for i in 0..200 {
            let run = fresh(journal.begin(start("big", None)).await.expect("begin"));
            // About 20 KB a run: overflow pages, as a run with a few Duo answers has.
            run.finished(&path("lookup"), &finished("lookup", json!({ "body": "x".repeat(10_000 + i) })))
                .await
                .expect("finished");
            let mut done = record("big", "succeeded");
            done.outputs.insert("note".into(), json!("y".repeat(10_000)));
            run.end(StoredStatus::Succeeded, &done).await.expect("end");
        }
        journal.flush().await.expect("flush");
    }
    // Closing the last connection checkpoints the WAL into the file.
    let full = std::fs::metadata(&file).expect("the journal").len();
    assert!(full > 4_000_000, "200 runs of 20 KB: {full} bytes");
    {
        let journal = open(dir.path());
        assert_eq!(journal.prune(common::now_ms() + 1).expect("prune"), 200);
    }
    let pruned = std::fs::metadata(&file).expect("the journal").len();
    assert!(pruned < full / 10, "after pruning every run the file is {pruned} bytes, it was {full}");
}

/// Sixteen runs journaling at once share commits, and each write is committed when its future
/// resolves: a fresh connection sees it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_runs_share_commits() {
    let dir = tempfile::tempdir().expect("tempdir");
    let journal = Arc::new(open(dir.path()));
    let file = journal.file().to_owned();
    let tasks: Vec<_> = (0..16)
        .map(|i| {
            let (journal, file) = (journal.clone(), file.clone());
            tokio::spawn(async move {
                let run = fresh(journal.begin(start("f", None)).await.expect("begin"));
                for n in 0..20 {
                    let node = path(&format!("n{n}"));
                    run.started(&node, 1);
                    run.intent(&node, &json!({ "run": i, "node": n })).await.expect("intent");
                    run.finished(&node, &finished("n", json!(n))).await.expect("finished");
                }
                // Committed means visible to another connection at once.
                let conn = rusqlite::Connection::open(&file).expect("open");
                let count: i64 = conn
                    .query_row(
                        "SELECT count(*) FROM nodes JOIN runs ON runs.seq = nodes.run WHERE runs.id = ?1 AND finished IS NOT NULL",
                        [&run.info().id],
                        |r| r.get(0),
                    )
                    .expect("count");
                assert_eq!(count, 20);
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("a task");
    }
    let (commits, ops) = journal.stats();
    assert!(ops >= 16 * 40, "{ops}");
    assert!(commits < ops, "some ops shared a commit: {commits} commits for {ops} ops");
    assert_eq!(path_key(&path("phone/create")), "phone/create");
}

/// A journal of schema version 1 (runs held through a lock file per run, no holder column) is
/// migrated when opened, and a run without a holder whose version-1 lock file is still locked
/// (an older flowcat process running it) is not taken from it.
#[tokio::test]
async fn a_version_1_journal_is_migrated_and_its_locked_runs_stay_held() {
    let dir = tempfile::tempdir().expect("tempdir");
    let journal = open(dir.path());
    let run = fresh(journal.begin(start("f", None)).await.expect("begin"));
    let id = run.info().id.clone();
    run.finished(&path("a"), &finished("a", json!(1))).await.expect("finished");
    drop(run);
    drop(journal);
    // Back to version 1, as an older flowcat left it.
    let file = dir.path().join(flowcat_journal::DB_FILE);
    let conn = rusqlite::Connection::open(&file).expect("open");
    conn.execute_batch(
        "DROP TABLE outbox; DROP TABLE signals; DROP INDEX runs_waiting; ALTER TABLE runs DROP COLUMN signals;
         ALTER TABLE runs DROP COLUMN waiting_path; ALTER TABLE runs DROP COLUMN waiting_signal;
         ALTER TABLE runs DROP COLUMN waiting_until; ALTER TABLE runs DROP COLUMN holder; PRAGMA user_version = 1;",
    )
    .expect("to version 1");
    drop(conn);
    let old_lock = dir.path().join("locks").join(format!("{id}.lock"));
    let file_lock = std::fs::File::create(&old_lock).expect("lock file");
    rustix::fs::flock(&file_lock, rustix::fs::FlockOperation::LockExclusive).expect("flock");

    let journal = open(dir.path());
    let conn = rusqlite::Connection::open(&file).expect("open");
    let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0)).expect("version");
    assert_eq!(version, 6, "migrated");
    assert!(old_lock.exists(), "a locked lock file is never swept");
    assert_eq!(journal.list(&Filter::default()).expect("list")[0].status, StoredStatus::Running);
    assert!(matches!(journal.resume(&id).await, Err(e) if e.code == "busy"), "the older process holds it");
    drop(file_lock);
    assert_eq!(journal.list(&Filter::default()).expect("list")[0].status, StoredStatus::Interrupted);
    let (again, past) = journal.resume(&id).await.expect("free once the older process is gone");
    assert!(past.node("a").is_some());
    drop(again);
}

/// Runs that never await anything (reads only) do not wake the writer, and what they hold stays
/// bounded: once `MAX_HELD` entries wait, the writer is woken and writes them, long before the
/// hold time (an hour here) would.
#[tokio::test]
async fn held_entries_wake_the_writer_once_too_many_wait() {
    let dir = tempfile::tempdir().expect("tempdir");
    let options = flowcat_journal::Options { hold: std::time::Duration::from_secs(3600), ..Default::default() };
    let journal = flowcat_journal::Journal::open_with(dir.path(), options).expect("opens");
    // The first run's beginning is awaited; it ends (held) like the others.
    let run_reads = |journal: &flowcat_journal::Journal| {
        let journal = journal.clone();
        async move {
            let run = fresh(journal.begin(start("reads", None)).await.expect("begin"));
            run.started(&path("a"), 1);
            run.noted(&path("a"), finished("a", json!(1)));
            run.end(StoredStatus::Succeeded, &record("reads", "succeeded")).await.expect("end");
            run.info().id.clone()
        }
    };
    let first = run_reads(&journal).await;
    let commits = journal.stats().0;
    // Four entries a run stay held (beginning, result, end, release): just under the bound.
    let under = (flowcat_journal::MAX_HELD - 1) / 4 - 1;
    for _ in 0..under {
        run_reads(&journal).await;
    }
    assert_eq!(journal.stats().0, commits, "nothing woke the writer");
    assert_eq!(journal.show(&first).expect("show").map(|r| r.summary.status), Some(StoredStatus::Running));
    for _ in 0..2 {
        run_reads(&journal).await;
    }
    let since = std::time::Instant::now();
    while journal.show(&first).expect("show").map(|r| r.summary.status) != Some(StoredStatus::Succeeded) {
        assert!(since.elapsed() < std::time::Duration::from_secs(30), "the writer was never woken");
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    journal.flush().await.expect("flush");
    assert_eq!(journal.list(&Filter::default()).expect("list").len(), under + 3, "every run, once");
}

/// A keyed beginning does not wait for a commit once the journal took one: it is looked up as
/// committed, reserved in the process, and written with the run's first awaited entry. A second
/// run of the key in the same process goes through the writer, which writes the held one first,
/// and so finds it.
#[tokio::test]
async fn a_keyed_beginning_is_held_and_a_second_run_of_its_key_in_the_process_finds_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let journal = open(dir.path());
    journal.flush().await.expect("a first commit");
    let commits = journal.stats().0;
    let first = fresh(journal.begin(start("onboard", Some("jdoe"))).await.expect("begin"));
    assert_eq!(journal.stats().0, commits, "the beginning was not waited for");
    let id = first.info().id.clone();

    let mut refuse = start("onboard", Some("jdoe"));
    refuse.if_busy = IfBusy::Refuse;
    assert!(matches!(journal.begin(refuse.clone()).await, Ok(Begun::Busy { id: busy }) if busy == id));
    first.end(StoredStatus::Succeeded, &record("onboard", "succeeded")).await.expect("end");
    drop(first);
    let Ok(Begun::Done(done)) = journal.begin(refuse).await else { panic!("done") };
    assert_eq!(done.summary.info.id, id);
}

/// Two journals (two processes) begin one key at the same moment, neither beginning written
/// yet: the first written wins; the other hears `key_taken` at its first awaited entry (its write
/// is not sent), or at its end when it had none, and begun again finds the winner's run.
#[tokio::test]
async fn a_held_keyed_beginning_that_lost_a_race_is_refused_before_its_first_write_or_at_its_end() {
    use flowcat_engine::journal::KEY_TAKEN;
    let dir = tempfile::tempdir().expect("tempdir");
    let (one, two) = (open(dir.path()), open(dir.path()));
    one.flush().await.expect("a first commit");
    two.flush().await.expect("a first commit");
    for (key, write) in [("jdoe", true), ("asmith", false)] {
        let winner = fresh(one.begin(start("onboard", Some(key))).await.expect("begin"));
        let loser = fresh(two.begin(start("onboard", Some(key))).await.expect("begin"));
        assert_ne!(winner.info().id, loser.info().id);
        if write {
            let request = json!({ "method": "POST", "path": "/admin/v1/users" });
            winner.intent(&path("create"), &request).await.expect("the winner's intent");
            let refused = loser.intent(&path("create"), &request).await.expect_err("the loser's intent");
            assert_eq!(refused.code, KEY_TAKEN, "{refused:?}");
            assert!(refused.message.contains(&winner.info().id), "{}", refused.message);
            // Nothing of the loser is written, its end included.
            let end = loser.end(StoredStatus::Failed, &record("onboard", "failed")).await;
            assert_eq!(end.expect_err("no row").code, KEY_TAKEN);
        } else {
            winner.end(StoredStatus::Succeeded, &record("onboard", "succeeded")).await.expect("the winner's end");
            let end = loser.end(StoredStatus::Succeeded, &record("onboard", "succeeded")).await;
            assert_eq!(end.expect_err("the loser's end").code, KEY_TAKEN);
        }
        let mut refuse = start("onboard", Some(key));
        refuse.if_busy = IfBusy::Refuse;
        let again = two.begin(refuse).await.expect("begun again");
        match (write, again) {
            (true, Begun::Busy { id }) => assert_eq!(id, winner.info().id),
            (false, Begun::Done(run)) => assert_eq!(run.summary.info.id, winner.info().id),
            (_, other) => panic!("{key}: {other:?}"),
        }
        drop((winner, loser));
    }
    one.flush().await.expect("flush");
    let runs = two.list(&Filter::default()).expect("list");
    assert_eq!(runs.len(), 2, "one run per key: {runs:?}");
}

/// Many rounds of runs of one key starting together in one process: never two fresh runs. A run
/// that finds the key reserved by another run of this process waits for that run's held
/// beginning to be written; it once raced it to the writer, and both started (the held one then
/// failed with `key_taken` at its end).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn runs_of_one_key_in_one_process_never_both_start() {
    let dir = tempfile::tempdir().expect("tempdir");
    let journal = Arc::new(open(dir.path()));
    for round in 0..60 {
        let key = format!("k{round}");
        let tasks: Vec<_> = (0..6)
            .map(|_| {
                let (journal, key) = (journal.clone(), key.clone());
                tokio::spawn(async move {
                    let mut s = start("onboard", Some(&key));
                    s.if_busy = IfBusy::Refuse;
                    match journal.begin(s).await.expect("begin") {
                        Begun::Fresh(run) => {
                            let ended = run.end(StoredStatus::Succeeded, &record("onboard", "succeeded")).await;
                            ended.map(|()| true).map_err(|e| e.code)
                        }
                        _ => Ok(false),
                    }
                })
            })
            .collect();
        let mut fresh = 0;
        for task in tasks {
            match task.await.expect("a task") {
                Ok(true) => fresh += 1,
                Ok(false) => {}
                Err(code) => panic!("round {round}: a fresh run could not end: {code}"),
            }
        }
        assert_eq!(fresh, 1, "round {round}: one fresh run");
    }
}

/// The WAL is copied into the database file on a thread beside the writer, long before the
/// writer's own checkpoint (at 4,000 pages, SQLite's default being 1,000); and it stays
/// bounded, the writer's checkpoint starting it over.
#[tokio::test]
async fn the_wal_is_copied_beside_the_writer_and_stays_bounded() {
    let dir = tempfile::tempdir().expect("tempdir");
    let journal = open(dir.path());
    let file = journal.file().to_owned();
    let wal = file.with_extension("sqlite3-wal");
    let size = |f: &std::path::Path| std::fs::metadata(f).map(|m| m.len()).unwrap_or(0);
    let run = fresh(journal.begin(start("many", None)).await.expect("begin"));
    journal.flush().await.expect("flush");
    let before = size(&file);
    // 1,100 small results in one commit: a few dozen WAL pages, over a thousand entries.
    for i in 0..1100 {
        run.noted(&path(&format!("n{i}")), finished("n", json!(i)));
    }
    journal.flush().await.expect("flush");
    assert!(size(&wal) < 400 * 4120, "far below any checkpoint of the writer's: {}", size(&wal));
    let since = std::time::Instant::now();
    while size(&file) <= before {
        assert!(since.elapsed() < std::time::Duration::from_secs(30), "nothing copied the WAL into {file:?}");
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }

    // About 30 MB of results, 100 at a time: the WAL never holds much more than 4,000 pages.
    let big = "x".repeat(20_000);
    for batch in 0..15 {
        for i in 0..100 {
            run.noted(&path(&format!("b{batch}-{i}")), finished("b", json!(big)));
        }
        journal.flush().await.expect("flush");
        assert!(size(&wal) < 4_700 * 4120, "the WAL grew past its bound: {} bytes", size(&wal));
    }
    assert!(size(&file) > 15_000_000, "most results reached the file: {}", size(&file));
}

/// The end of a run that wrote (its beginning went with an awaited entry) goes with the writer's
/// next batch, however young; a run of reads stays held whole until it is due.
#[tokio::test]
async fn a_written_runs_end_goes_with_the_next_batch() {
    let dir = tempfile::tempdir().expect("tempdir");
    let options = flowcat_journal::Options { hold: std::time::Duration::from_secs(3600), ..Default::default() };
    let journal = flowcat_journal::Journal::open_with(dir.path(), options).expect("opens");
    let status = |id: &str| journal.show(id).expect("show").map(|r| r.summary.status);
    // The journal's first run awaits its beginning.
    let first = fresh(journal.begin(start("first", None)).await.expect("begin"));
    first.end(StoredStatus::Succeeded, &record("first", "succeeded")).await.expect("end");

    let writes = fresh(journal.begin(start("writes", None)).await.expect("begin"));
    let wrote = writes.info().id.clone();
    writes.intent(&path("create"), &json!({ "method": "POST" })).await.expect("intent");
    writes.end(StoredStatus::Succeeded, &record("writes", "succeeded")).await.expect("end");
    let reads = fresh(journal.begin(start("reads", None)).await.expect("begin"));
    let read = reads.info().id.clone();
    reads.noted(&path("a"), finished("a", json!(1)));
    reads.end(StoredStatus::Succeeded, &record("reads", "succeeded")).await.expect("end");
    assert_eq!(status(&wrote), Some(StoredStatus::Running), "its end is not written yet");

    // Another run's awaited entry: one batch, which takes the first end along, not the second.
    let other = fresh(journal.begin(start("other", None)).await.expect("begin"));
    other.intent(&path("create"), &json!({ "method": "POST" })).await.expect("intent");
    assert_eq!(status(&wrote), Some(StoredStatus::Succeeded), "written with the next batch");
    assert_eq!(status(&read), None, "a run of reads is held whole");
    journal.flush().await.expect("flush");
    assert_eq!(status(&read), Some(StoredStatus::Succeeded));
}

/// With a pace, the writer holds the intents of a busy runtime's runs until the runtime parks,
/// then commits them together: eight runs' writes, one commit.
#[tokio::test]
async fn a_paced_writer_commits_a_busy_runtimes_intents_together() {
    use std::future::Future;
    use std::task::{Context, Poll, Waker};
    let dir = tempfile::tempdir().expect("tempdir");
    // A window no test waits out: only the park ends the wait.
    let pace = flowcat_journal::Pace::new(std::time::Duration::from_secs(600));
    let options = flowcat_journal::Options { pace: Some(pace.clone()), ..Default::default() };
    let journal = flowcat_journal::Journal::open_with(dir.path(), options).expect("open");
    // The journal's first beginning is awaited (and committed at once: the runtime is idle).
    drop(fresh(journal.begin(start("first", None)).await.expect("begin")));
    let runs = fresh_runs(&journal, 8).await;
    journal.flush().await.expect("flush");
    let before = journal.stats().0;
    pace.unparked();
    let mut intents: Vec<_> = runs
        .iter()
        .enumerate()
        .map(|(i, run)| Box::pin(async move { run.intent(&path("write"), &json!({ "row": i })).await }))
        .collect();
    // Each intent is sent to the writer at its first poll; the runtime's thread stays busy a
    // while after each (an unpaced writer commits each one meanwhile), and never parks.
    let mut cx = Context::from_waker(Waker::noop());
    for intent in &mut intents {
        assert!(intent.as_mut().poll(&mut cx).is_pending());
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    for intent in &mut intents {
        assert!(matches!(intent.as_mut().poll(&mut cx), Poll::Pending), "committed while the runtime is busy");
    }
    pace.parked();
    for intent in intents {
        intent.await.expect("intent");
    }
    assert_eq!(journal.stats().0 - before, 1, "the eight intents in one commit");
    for run in &runs {
        let past = journal.show(&run.info().id).expect("show").expect("the run").past;
        assert!(past.node("write").is_some_and(|n| n.intent.is_some()), "{past:?}");
    }
}

/// `n` fresh runs (their beginnings held).
async fn fresh_runs(journal: &flowcat_journal::Journal, n: usize) -> Vec<Box<dyn RunHandle>> {
    let mut runs = Vec::new();
    for _ in 0..n {
        runs.push(fresh(journal.begin(start("paced", None)).await.expect("begin")));
    }
    runs
}

/// A look-ahead stands in for the lookups of the keys it found without a run: a key another
/// process (journal) began since is then taken for free, and the writer still refuses the run's
/// first write before it is sent. A key a run of this process holds is never taken for free, and
/// a key that has a run is always found.
#[tokio::test]
async fn a_look_ahead_stands_in_for_lookups_and_the_writer_still_refuses_a_taken_key() {
    use flowcat_engine::journal::KEY_TAKEN;
    let dir = tempfile::tempdir().expect("tempdir");
    let (one, two) = (open(dir.path()), open(dir.path()));
    one.flush().await.expect("a first commit");
    two.flush().await.expect("a first commit");
    let done = fresh(one.begin(start("onboard", Some("done"))).await.expect("begin"));
    done.end(StoredStatus::Succeeded, &record("onboard", "succeeded")).await.expect("end");
    drop(done);
    one.flush().await.expect("flush");
    // `held` is begun (held, unwritten) by this process before the look-ahead.
    let held = fresh(one.begin(start("onboard", Some("held"))).await.expect("begin"));
    let keys: Vec<String> = ["done", "held", "raced", "new"].map(str::to_owned).to_vec();
    one.look_ahead("onboard", &keys);

    // A key with a run is found, look-ahead or not.
    assert!(matches!(one.begin(start("onboard", Some("done"))).await.expect("begin"), Begun::Done(_)));
    // Another process begins `raced` after the look-ahead: this one takes it for free (it does
    // not look again), and its first write is refused, unsent.
    let other = fresh(two.begin(start("onboard", Some("raced"))).await.expect("begin"));
    other.end(StoredStatus::Succeeded, &record("onboard", "succeeded")).await.expect("end");
    two.flush().await.expect("flush");
    let late = fresh(one.begin(start("onboard", Some("raced"))).await.expect("taken for free"));
    let refused = late.intent(&path("create"), &json!({ "method": "POST" })).await.expect_err("refused");
    assert_eq!(refused.code, KEY_TAKEN, "{refused:?}");
    drop(late);
    // Without the look-ahead's word (it is used once), the key is looked up: found.
    assert!(matches!(one.begin(start("onboard", Some("raced"))).await.expect("begin"), Begun::Done(_)));

    // `held` was reserved during the look-ahead: not taken for free. Once its run ended, a
    // second run of the key finds it.
    held.end(StoredStatus::Succeeded, &record("onboard", "succeeded")).await.expect("end");
    drop(held);
    one.flush().await.expect("flush");
    assert!(matches!(one.begin(start("onboard", Some("held"))).await.expect("begin"), Begun::Done(_)));
    // A new key is simply fresh.
    let new = fresh(one.begin(start("onboard", Some("new"))).await.expect("begin"));
    new.intent(&path("create"), &json!({ "method": "POST" })).await.expect("its write goes");
}
