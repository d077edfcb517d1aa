//! The Postgres store against a real Postgres (started by `flowcat-testpg`), with two stores
//! standing for two replicas: a run's life, keys across replicas, a replica's death and the
//! takeover of its runs, fencing, signals, cancel requests, shared 429s, the outbox, and the
//! schema's version check.

use std::time::Duration;

use flowcat_engine::journal::{
    Begun, Delivery, Filter, Finished, IfBusy, InputType, RunHandle, RunInfo, SignalSpec, Start, Store, StoredStatus,
};
use flowcat_engine::outbox::Attempted;
use flowcat_engine::run::RunRecord;
use flowcat_pgstore::{Options, PgStore};
use flowcat_testpg::Cluster;
use serde_json::{Value, json};

fn path(p: &str) -> Vec<String> {
    p.split('/').map(str::to_owned).collect()
}

fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

fn info(flow: &str, key: Option<&str>) -> RunInfo {
    RunInfo {
        flow: flow.to_owned(),
        flow_digest: "sha256:0123".to_owned(),
        key: key.map(str::to_owned),
        inputs: json!({ "username": "jdoe" }).as_object().cloned().unwrap_or_default(),
        binds: vec![("duo_admin".to_owned(), "duo".to_owned())],
        targets: vec![("duo_admin".to_owned(), "api-12345678.duosecurity.com".to_owned())],
        created_at: now_ms(),
        ..RunInfo::default()
    }
}

fn start(flow: &str, key: Option<&str>, if_busy: IfBusy) -> Start {
    Start { info: info(flow, key), if_busy, awaited: false }
}

fn finished(id: &str, result: Value) -> Finished {
    let record = json!({
        "id": id, "kind": "rest_call", "status": "succeeded", "attempts": 1,
        "started_at": 1, "ended_at": 2, "duration_ms": 1.0, "result": result,
    });
    Finished { record: serde_json::from_value(record).expect("a node record"), branch: None }
}

fn record(flow: &str, status: &str) -> RunRecord {
    let mut record = json!({
        "flow": flow, "status": status, "inputs": { "username": "jdoe" }, "vars": {}, "outputs": {},
        "started_at": 1, "ended_at": 2, "nodes": [],
    });
    if status == "failed" {
        record["error"] = json!({ "node": "create", "code": "duo_40003", "message": "duplicate\nusername" });
    }
    serde_json::from_value(record).expect("a run record")
}

fn fresh(begun: Begun) -> Box<dyn RunHandle> {
    match begun {
        Begun::Fresh(handle) => handle,
        other => panic!("expected a fresh run, got {other:?}"),
    }
}

/// A store on `url`, as one replica (a lease long enough that no renewal happens in a test).
fn replica(url: &str) -> PgStore {
    PgStore::open(url, Options { pool: 4, ..Options::default() }).expect("the store opens")
}

/// Runs `sql` on `url` from a plain thread (the synchronous client may not run on a runtime's).
fn sql(url: &str, sql: &str) -> u64 {
    let (url, sql) = (url.to_owned(), sql.to_owned());
    std::thread::spawn(move || {
        let mut client = postgres::Client::connect(&url, postgres::NoTls).expect("connect");
        client.execute(sql.as_str(), &[]).expect("the statement runs")
    })
    .join()
    .expect("the thread")
}

/// Makes `store`'s replica look dead: its lease passed (as if it had been killed).
fn lapse(url: &str, store: &PgStore) {
    let n = sql(url, &format!("UPDATE replicas SET lease_until = 0 WHERE name = '{}'", store.replica()));
    assert_eq!(n, 1, "the replica is registered");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_run_is_journaled_ended_and_shown_from_another_replica() {
    let url = Cluster::shared().database();
    let (a, b) = (replica(&url), replica(&url));
    assert_ne!(a.replica(), b.replica());
    assert_eq!(b.sharers(), 2, "two replicas share the store");
    let run = fresh(a.begin(start("duo.admin.enroll_user", None, IfBusy::Wait)).await.expect("begin"));
    let id = run.info().id.clone();
    run.started(&path("lookup"), 100);
    run.finished(&path("lookup"), &finished("lookup", json!({ "user_id": "DU1" }))).await.expect("finished");
    let request = json!({ "method": "POST", "url": "https://api-x.duosecurity.com/admin/v1/phones" });
    run.intent(&path("phone/create"), &request).await.expect("intent");

    // Replica b sees it running (held by a live replica), with its nodes; it cannot take it.
    let shown = b.show(&id).expect("show").expect("the run");
    assert_eq!(shown.summary.status, StoredStatus::Running);
    assert_eq!(shown.past.node("phone/create").and_then(|n| n.intent.as_ref()), Some(&request));
    assert_eq!(shown.past.node("lookup").and_then(|n| n.started_at), Some(100), "the held start is written first");
    assert!(matches!(b.resume(&id).await, Err(e) if e.code == "busy"));
    assert!(b.wakeable(now_ms()).expect("wakeable").is_empty(), "a live replica's run is not for the taking");

    run.end(StoredStatus::Failed, &record("duo.admin.enroll_user", "failed")).await.expect("end");
    let shown = b.show(&id).expect("show").expect("the run");
    assert_eq!(shown.summary.status, StoredStatus::Failed);
    assert_eq!(shown.summary.note.as_deref(), Some("`create` duo_40003: duplicate username"));
    assert!(shown.record.is_some());
    let listed = b.list(&Filter { status: vec![StoredStatus::Failed], ..Filter::default() }).expect("list");
    assert_eq!(listed.iter().map(|r| r.info.id.as_str()).collect::<Vec<_>>(), [id.as_str()]);
    assert!(matches!(b.resume(&id).await, Err(e) if e.code == "finished"));
    assert_eq!(b.prune(now_ms() + 1).expect("prune"), 1);
    assert_eq!(a.show(&id).expect("show"), None);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dead_replicas_runs_are_taken_over_and_it_can_no_longer_write_them() {
    let url = Cluster::shared().database();
    let (a, b) = (replica(&url), replica(&url));
    let run = fresh(a.begin(start("f", None, IfBusy::Wait)).await.expect("begin"));
    let id = run.info().id.clone();
    run.finished(&path("read"), &finished("read", json!(1))).await.expect("finished");
    run.intent(&path("write"), &json!({ "method": "POST" })).await.expect("intent");

    // Replica a stops renewing (killed, or cut off): its lease passes on the database's clock.
    lapse(&url, &a);
    assert_eq!(b.list(&Filter::default()).expect("list")[0].status, StoredStatus::Interrupted);
    assert_eq!(b.wakeable(now_ms()).expect("wakeable"), std::slice::from_ref(&id), "b is told to take it over");
    let (taken, past) = b.resume(&id).await.expect("b takes the run");
    assert!(past.node("read").and_then(|n| n.finished.as_ref()).is_some(), "finished nodes are not run again");
    let write = past.node("write").expect("the write in doubt");
    assert!(write.intent.is_some() && write.finished.is_none(), "its outcome is unknown: b reconciles it");
    assert!(b.wakeable(now_ms()).expect("wakeable").is_empty());

    // The former holder wakes up: nothing it writes lands, so nothing of it is sent.
    let late = run.intent(&path("other"), &json!({ "method": "DELETE" })).await;
    assert!(matches!(&late, Err(e) if e.code == "lease_lost"), "{late:?}");
    let late = run.end(StoredStatus::Succeeded, &record("f", "succeeded")).await;
    assert!(matches!(&late, Err(e) if e.code == "lease_lost"), "{late:?}");
    drop(run);
    taken.finished(&path("write"), &finished("write", json!({ "ok": true }))).await.expect("b goes on");
    taken.end(StoredStatus::Succeeded, &record("f", "succeeded")).await.expect("b ends it");
    let shown = b.show(&id).expect("show").expect("the run");
    assert_eq!(shown.summary.status, StoredStatus::Succeeded);
    assert!(shown.past.node("other").is_none(), "the former holder's late entry was not written");
}

/// A replica stopping for good (`flowcat serve`'s drain) hands its interrupted runs to the
/// live ones at once, except a run with a write in doubt (its write may still reach Duo: that
/// waits for the next start) and a run it let go before it was stopping (stopped by a person).
#[tokio::test(flavor = "multi_thread")]
async fn a_stopping_replica_hands_over_its_interrupted_runs_but_not_a_write_in_doubt() {
    let url = Cluster::shared().database();
    let (a, b) = (replica(&url), replica(&url));
    let flow = "handover.f";
    let interrupted = |run: Box<dyn RunHandle>| async move {
        run.end(StoredStatus::Interrupted, &record(flow, "interrupted")).await.expect("end");
        run
    };
    // Stopped before the replica was stopping (Ctrl-C of a `flowcat run` on the same store).
    let stopped = fresh(a.begin(start(flow, None, IfBusy::Wait)).await.expect("begin"));
    stopped.finished(&path("read"), &finished("read", json!(1))).await.expect("finished");
    let stopped_id = stopped.info().id.clone();
    drop(interrupted(stopped).await);
    // Drained between two writes, and drained with a write in doubt.
    let between = fresh(a.begin(start(flow, None, IfBusy::Wait)).await.expect("begin"));
    between.intent(&path("create"), &json!({ "method": "POST" })).await.expect("intent");
    between.finished(&path("create"), &finished("create", json!({ "id": "DP1" }))).await.expect("finished");
    let between_id = between.info().id.clone();
    let doubt = fresh(a.begin(start(flow, None, IfBusy::Wait)).await.expect("begin"));
    doubt.intent(&path("create"), &json!({ "method": "POST" })).await.expect("intent");
    let doubt_id = doubt.info().id.clone();
    let (between, doubt) = (interrupted(between).await, interrupted(doubt).await);

    a.hand_over_on_stop();
    drop((between, doubt));
    let t0 = std::time::Instant::now();
    let mine = |ids: Vec<String>| -> Vec<String> {
        ids.into_iter().filter(|id| [&stopped_id, &between_id, &doubt_id].contains(&id)).collect()
    };
    while mine(b.wakeable(now_ms()).expect("wakeable")).is_empty() {
        assert!(t0.elapsed() < Duration::from_secs(10), "the drained run was never handed over");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(mine(b.wakeable(now_ms()).expect("wakeable")), std::slice::from_ref(&between_id));
    // All three read as interrupted; the write in doubt and the stopped run wait for a start.
    let listed = b.list(&Filter { flow: Some(flow.to_owned()), ..Filter::default() }).expect("list");
    assert_eq!(listed.len(), 3);
    assert!(listed.iter().all(|r| r.status == StoredStatus::Interrupted), "{listed:?}");
    let (_taken, past) = b.resume(&between_id).await.expect("b takes the drained run");
    assert!(past.node("create").and_then(|n| n.finished.as_ref()).is_some(), "its first write is not sent again");
    assert!(b.wakeable(now_ms()).expect("wakeable").iter().all(|id| id != &between_id));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_key_is_run_once_across_replicas() {
    let url = Cluster::shared().database();
    let (a, b) = (replica(&url), replica(&url));
    // Both begin one key at once: one run.
    let (x, y) = tokio::join!(
        a.begin(start("onboard", Some("jdoe"), IfBusy::Refuse)),
        b.begin(start("onboard", Some("jdoe"), IfBusy::Refuse))
    );
    let (x, y) = (x.expect("begin"), y.expect("begin"));
    let (run, busy) = match (x, y) {
        (Begun::Fresh(h), Begun::Busy { id }) | (Begun::Busy { id }, Begun::Fresh(h)) => (h, id),
        other => panic!("expected one fresh run and one busy answer, got {other:?}"),
    };
    assert_eq!(run.info().id, busy);
    let id = run.info().id.clone();
    run.end(StoredStatus::Succeeded, &record("onboard", "succeeded")).await.expect("end");
    drop(run);
    // Begun again anywhere: the finished run's record, nothing to run.
    match b.begin(start("onboard", Some("jdoe"), IfBusy::Wait)).await.expect("begin") {
        Begun::Done(done) => assert_eq!(done.summary.info.id, id),
        other => panic!("expected the finished run, got {other:?}"),
    }
    // An unfinished keyed run of a dead replica is resumed by the next beginning of its key.
    let run = fresh(a.begin(start("onboard", Some("bob"), IfBusy::Wait)).await.expect("begin"));
    let id = run.info().id.clone();
    lapse(&url, &a);
    match b.begin(start("onboard", Some("bob"), IfBusy::Refuse)).await.expect("begin") {
        Begun::Resumed(h, _) => assert_eq!(h.info().id, id),
        other => panic!("expected the run resumed, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_signal_delivered_through_one_replica_wakes_the_run_on_another() {
    let url = Cluster::shared().database();
    let (a, b) = (replica(&url), replica(&url));
    let mut start = start("approve", None, IfBusy::Wait);
    start.info.signals =
        vec![SignalSpec { name: "approval".to_owned(), payload: vec![("approved".to_owned(), InputType::Boolean)] }];
    let run = fresh(a.begin(start).await.expect("begin"));
    let id = run.info().id.clone();
    let waiting = tokio::spawn(async move {
        let payload = run.wait_signal(&path("wait"), "approval", Some(now_ms() + 60_000), &|| {}).await;
        (run, payload)
    });
    // Parked: b lists it waiting, held by a.
    let mut parked = None;
    for _ in 0..200 {
        let s = b.show(&id).expect("show").expect("the run").summary;
        if s.status == StoredStatus::Waiting {
            parked = s.waiting;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let parked = parked.expect("the run waits");
    assert!(parked.held && !parked.delivered && parked.signal == "approval");
    assert_eq!(b.signal(&id, "approval", &json!({ "approved": "yes" })).await.expect("refused").code(), "bad_payload");
    assert_eq!(b.signal(&id, "nope", &json!({})).await.expect("refused").code(), "not_awaited");
    assert_eq!(b.signal(&id, "approval", &json!({ "approved": true })).await.expect("signal"), Delivery::Delivered);
    assert_eq!(
        b.signal(&id, "approval", &json!({ "approved": true })).await.expect("again"),
        Delivery::AlreadyDelivered
    );
    // Seen by a within its poll (a second), not at the run's timeout.
    let (run, payload) = tokio::time::timeout(Duration::from_secs(10), waiting).await.expect("woken").expect("task");
    assert_eq!(payload.expect("the payload"), json!({ "approved": true }));
    run.end(StoredStatus::Succeeded, &record("approve", "succeeded")).await.expect("end");
    assert!(matches!(b.signal(&id, "approval", &json!({ "approved": true })).await, Ok(Delivery::Finished { .. })));
    assert_eq!(b.signal("r0000000000nope0", "approval", &json!({})).await.expect("unknown"), Delivery::UnknownRun);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cancel_reaches_the_replica_that_holds_the_run() {
    let url = Cluster::shared().database();
    let (a, b) = (replica(&url), replica(&url));
    let run = fresh(a.begin(start("f", None, IfBusy::Wait)).await.expect("begin"));
    let id = run.info().id.clone();
    assert!(a.cancel_requests().expect("requests").is_empty());
    assert!(!a.request_cancel(&id).expect("own run"), "a run held here is cancelled here");
    assert!(b.request_cancel(&id).expect("request"), "stored for the holder");
    assert_eq!(a.cancel_requests().expect("requests"), std::slice::from_ref(&id));
    assert!(b.cancel_requests().expect("requests").is_empty(), "only the holder is asked");
    // A run nobody holds is cancelled by whoever asks.
    lapse(&url, &a);
    assert!(!b.request_cancel(&id).expect("request"));
    drop(run);
}

/// Found by tests/replicas.rs: a run cancelled through another replica while parked is drained
/// by its holder, which then ends it `cancelled` by taking it again at once; its handle, just
/// dropped, is still letting the run go in a transaction on the row. A claim that skipped a
/// locked row answered `busy` and the cancel was lost (the run stayed parked). A row locked for
/// a moment is not a run held elsewhere: the claim waits for the lock, then decides.
#[tokio::test(flavor = "multi_thread")]
async fn a_claim_waits_for_a_short_transaction_on_the_run_instead_of_calling_it_busy() {
    let url = Cluster::shared().database();
    let a = replica(&url);
    let run = fresh(a.begin(start("f", None, IfBusy::Wait)).await.expect("begin"));
    let id = run.info().id.clone();
    run.finished(&path("read"), &finished("read", json!(1))).await.expect("finished");
    drop(run);
    a.flush().await.expect("flushed");

    // Another transaction holds the run's row for 300 ms (an entry being written).
    let (locked_tx, locked) = std::sync::mpsc::channel();
    let holder = {
        let (url, id) = (url.clone(), id.clone());
        std::thread::spawn(move || {
            let mut client = postgres::Client::connect(&url, postgres::NoTls).expect("connect");
            let mut tx = client.transaction().expect("a transaction");
            tx.query("SELECT 1 FROM runs WHERE id = $1 FOR UPDATE", &[&id]).expect("locked");
            locked_tx.send(()).expect("told");
            std::thread::sleep(Duration::from_millis(300));
            tx.commit().expect("committed");
        })
    };
    locked.recv().expect("the row is locked");
    let (taken, past) = a.resume(&id).await.expect("the run is taken once the lock is released, not called busy");
    assert!(past.node("read").and_then(|n| n.finished.as_ref()).is_some());
    holder.join().expect("the holder thread");

    // Held by a live replica, it is still busy for another one.
    let b = replica(&url);
    assert!(matches!(b.resume(&id).await, Err(e) if e.code == "busy"));
    drop(taken);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_429_met_by_one_replica_is_heard_by_the_others() {
    let url = Cluster::shared().database();
    let (a, b) = (replica(&url), replica(&url));
    assert!(b.throttled_since(0).expect("none yet").is_empty());
    a.note_throttled("duo_admin@api-x.duosecurity.com").expect("told");
    let heard = b.throttled_since(0).expect("heard");
    assert_eq!(heard.len(), 1);
    assert_eq!(heard[0].0, "duo_admin@api-x.duosecurity.com");
    assert!(b.throttled_since(heard[0].1).expect("nothing newer").is_empty());
    assert!(a.throttled_since(0).expect("own").is_empty(), "a replica does not hear its own 429");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_notice_is_written_with_its_end_and_taken_by_one_deliverer() {
    use flowcat_engine::outbox::Outbox as _;
    let url = Cluster::shared().database();
    let (a, b) = (replica(&url), replica(&url));
    a.subscribe(std::sync::Arc::new(|flow: &str, _| if flow == "f" { vec!["ops".to_owned()] } else { vec![] }));
    let run = fresh(a.begin(start("f", None, IfBusy::Wait)).await.expect("begin"));
    run.end(StoredStatus::Succeeded, &record("f", "succeeded")).await.expect("end");
    let now = now_ms();
    let (x, y) =
        (a.take_due(now + 1, now + 60_000, 10).expect("take"), b.take_due(now + 1, now + 60_000, 10).expect("take"));
    assert_eq!(x.len() + y.len(), 1, "one deliverer takes it: {x:?} {y:?}");
    let notice = x.into_iter().chain(y).next().expect("the notice");
    assert_eq!((notice.hook.as_str(), notice.run_id.as_str()), ("ops", run.info().id.as_str()));
    b.attempted(notice.seq, Some("{}"), &Attempted::Delivered { at: now }).expect("attempted");
    assert_eq!(a.notices(None, 10).expect("notices")[0].state, flowcat_engine::outbox::NoticeState::Delivered);
    assert_eq!(a.next_due().expect("next"), None);
}

#[test]
fn a_store_from_a_newer_flowcat_or_another_program_is_refused() {
    let cluster = Cluster::shared();
    let url = cluster.database();
    drop(PgStore::open(&url, Options::default()).expect("migrated"));
    sql(&url, "UPDATE flowcat_schema SET version = 99");
    let e = PgStore::open(&url, Options::default()).expect_err("newer");
    assert_eq!(e.code, "newer_version", "{e:?}");
    let other = cluster.database();
    sql(&other, "CREATE TABLE runs (x INTEGER)");
    let e = PgStore::open(&other, Options::default()).expect_err("foreign");
    assert!(e.code == "corrupt" && e.message.contains("did not make"), "{e:?}");
}

#[test]
fn an_unreachable_store_is_named_without_its_password() {
    // A port nothing listens on (bound, then released).
    let port = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
    let e = PgStore::open(&format!("postgres://app:hunter2@127.0.0.1:{port}/flowcat"), Options::default())
        .expect_err("unreachable");
    assert_eq!(e.code, "unavailable", "{e:?}");
    assert!(e.message.contains(&format!("127.0.0.1:{port}/flowcat")), "{}", e.message);
    // The reason, not only "error connecting to server".
    assert!(e.message.to_lowercase().contains("refused"), "{}", e.message);
    assert!(!e.message.contains("hunter2") && !format!("{e:?}").contains("hunter2"));
    let e = PgStore::open("postgres://db/flowcat?sslmode=require", Options::default()).expect_err("tls");
    assert!(e.message.contains("TLS"), "{}", e.message);
}
