//! The outbox in the journal: notices written with their run's end (and only then), leased while
//! sent, each attempt recorded, the body fixed at the first one, the schema migrated from version
//! 3, and `prune` keeping what is still to deliver.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{now_ms, record};
use flowcat_engine::journal::{Begun, RunHandle, Store, StoredStatus};
use flowcat_engine::outbox::{Attempted, NoticeState, Outbox, Subscriptions};
use flowcat_journal::Journal;

async fn begin(journal: &Journal, flow: &str) -> Box<dyn RunHandle> {
    match journal.begin(common::start(flow, None)).await.expect("begin") {
        Begun::Fresh(run) => run,
        other => panic!("fresh: {other:?}"),
    }
}

/// Hooks `ops` (every end) and `audit` (failures only); flows named `quiet.*` tell nobody.
fn rule() -> Subscriptions {
    Arc::new(|flow: &str, status: StoredStatus| {
        if flow.starts_with("quiet.") {
            return Vec::new();
        }
        let mut hooks = vec!["ops".to_owned()];
        if status == StoredStatus::Failed {
            hooks.push("audit".to_owned());
        }
        hooks
    })
}

fn outbox(journal: &Journal) -> &dyn Outbox {
    journal.outbox().expect("the journal keeps an outbox")
}

#[tokio::test]
async fn each_end_writes_its_notices_in_its_own_transaction() {
    let dir = tempfile::tempdir().expect("tempdir");
    let journal = common::open(dir.path());
    // Before anyone subscribes, an end tells nobody.
    let run = begin(&journal, "f.before").await;
    run.end(StoredStatus::Succeeded, &record("f.before", "succeeded")).await.expect("end");
    drop(run);
    journal.flush().await.expect("flush");
    assert!(outbox(&journal).notices(None, 100).expect("notices").is_empty());

    outbox(&journal).subscribe(rule());
    let woken = outbox(&journal).woken();
    let ok = begin(&journal, "f.ok").await;
    let ok_id = ok.info().id.clone();
    ok.end(StoredStatus::Succeeded, &record("f.ok", "succeeded")).await.expect("end");
    drop(ok);
    let bad = begin(&journal, "f.bad").await;
    let bad_id = bad.info().id.clone();
    bad.end(StoredStatus::Failed, &record("f.bad", "failed")).await.expect("end");
    drop(bad);
    // Interrupted: resumed later, tells its end then. A quiet flow: no hook wants it.
    let stopped = begin(&journal, "f.stopped").await;
    stopped.end(StoredStatus::Interrupted, &record("f.stopped", "succeeded")).await.expect("end");
    drop(stopped);
    let quiet = begin(&journal, "quiet.one").await;
    quiet.end(StoredStatus::Failed, &record("quiet.one", "failed")).await.expect("end");
    drop(quiet);
    // Needs attention is told (a person must act).
    let stuck = begin(&journal, "f.stuck").await;
    stuck.end(StoredStatus::NeedsAttention, &record("f.stuck", "failed")).await.expect("end");
    drop(stuck);
    journal.flush().await.expect("flush");
    tokio::time::timeout(Duration::from_secs(20), woken.notified()).await.expect("the writer woke the deliverer");

    let mut all = outbox(&journal).notices(None, 100).expect("notices");
    // Ends awaited (needs attention) are written before held ones (finished): order by run.
    all.sort_by(|a, b| (&a.flow, &a.hook).cmp(&(&b.flow, &b.hook)));
    let seen: Vec<(&str, &str, StoredStatus)> =
        all.iter().map(|n| (n.flow.as_str(), n.hook.as_str(), n.status)).collect();
    assert_eq!(
        seen,
        [
            ("f.bad", "audit", StoredStatus::Failed),
            ("f.bad", "ops", StoredStatus::Failed),
            ("f.ok", "ops", StoredStatus::Succeeded),
            ("f.stuck", "ops", StoredStatus::NeedsAttention),
        ]
    );
    assert_eq!(all[2].run_id, ok_id);
    assert_eq!((all[0].run_id.as_str(), all[1].run_id.as_str()), (bad_id.as_str(), bad_id.as_str()));
    let mut events: Vec<&str> = all.iter().map(|n| n.event.as_str()).collect();
    events.sort_unstable();
    events.dedup();
    assert_eq!(events.len(), 4, "every notice has its own event id");
    assert!(all.iter().all(|n| n.state == NoticeState::Pending && n.attempts == 0 && n.body.is_none()));
    assert!(all.iter().all(|n| n.event.ends_with(&format!(".{}", n.hook)) && n.event.starts_with('e')));
}

#[tokio::test]
async fn notices_are_leased_while_sent_and_each_attempt_is_recorded() {
    let dir = tempfile::tempdir().expect("tempdir");
    let journal = common::open(dir.path());
    outbox(&journal).subscribe(rule());
    for i in 0..5 {
        let run = begin(&journal, &format!("f.n{i}")).await;
        run.end(StoredStatus::Succeeded, &record("f", "succeeded")).await.expect("end");
    }
    journal.flush().await.expect("flush");
    let o = outbox(&journal);
    let now = now_ms() + 1_000;
    // A few at a time: memory stays bounded whatever the backlog.
    let first = o.take_due(now, now + 30_000, 2).expect("take");
    assert_eq!(first.len(), 2);
    assert!(first.iter().all(|n| n.due_at == now + 30_000), "leased");
    let rest = o.take_due(now, now + 30_000, 100).expect("take");
    assert_eq!(rest.len(), 3, "the leased ones are not taken twice");
    assert!(o.take_due(now, now + 30_000, 100).expect("take").is_empty());
    assert_eq!(o.next_due().expect("next"), Some(now + 30_000));
    // A deliverer that died: its lease ends, the notice comes due again.
    assert_eq!(o.take_due(now + 30_000, now + 60_000, 100).expect("take").len(), 5);

    let (a, b, c) = (&first[0], &first[1], &rest[0]);
    o.attempted(a.seq, Some("{\"v\":1}"), &Attempted::Retry { due_at: now + 5_000, error: "HTTP 500".into() })
        .expect("attempted");
    // A later body never replaces the first: every retry sends the same bytes.
    o.attempted(a.seq, Some("{\"v\":2}"), &Attempted::Delivered { at: now + 6_000 }).expect("attempted");
    o.attempted(b.seq, Some("{}"), &Attempted::Failed { error: "HTTP 410".into() }).expect("attempted");
    o.attempted(c.seq, Some("{}"), &Attempted::Retry { due_at: now + 7_000, error: "timeout".into() })
        .expect("attempted");
    let all = o.notices(None, 100).expect("notices");
    let by = |seq| all.iter().find(|n| n.seq == seq).expect("notice");
    assert_eq!(
        (by(a.seq).state, by(a.seq).attempts, by(a.seq).body.as_deref()),
        (NoticeState::Delivered, 2, Some("{\"v\":1}"))
    );
    assert_eq!((by(b.seq).state, by(b.seq).last_error.as_deref()), (NoticeState::Failed, Some("HTTP 410")));
    assert_eq!((by(c.seq).state, by(c.seq).due_at), (NoticeState::Pending, now + 7_000));
    assert_eq!(o.notices(Some(NoticeState::Failed), 100).expect("failed").len(), 1);
    assert_eq!(o.next_due().expect("next"), Some(now + 7_000));
    assert_eq!(
        o.take_due(now + 7_000, now + 40_000, 100).expect("take").iter().map(|n| n.seq).collect::<Vec<_>>(),
        [c.seq]
    );
}

#[tokio::test]
async fn notices_survive_a_restart_and_prune_keeps_their_runs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let journal = common::open(dir.path());
    outbox(&journal).subscribe(rule());
    let run = begin(&journal, "f.kept").await;
    let id = run.info().id.clone();
    // Held (not awaited): the journal closing writes it with its notice.
    run.end(StoredStatus::Succeeded, &record("f.kept", "succeeded")).await.expect("end");
    drop(run);
    drop(journal);

    let journal = common::open(dir.path());
    let pending = outbox(&journal).notices(Some(NoticeState::Pending), 10).expect("notices");
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].run_id, id);
    assert_eq!(journal.prune(now_ms() + 60_000).expect("prune"), 0, "a run with a notice to deliver is kept");
    assert!(journal.show(&id).expect("show").is_some());
    let n = &pending[0];
    outbox(&journal).attempted(n.seq, Some("{}"), &Attempted::Delivered { at: now_ms() }).expect("attempted");
    assert_eq!(journal.prune(now_ms() + 60_000).expect("prune"), 1);
    assert!(outbox(&journal).notices(None, 10).expect("notices").is_empty(), "settled notices go with their run");
}

#[test]
fn a_version_3_journal_is_migrated_to_an_empty_outbox() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join(flowcat_journal::DB_FILE);
    drop(common::open(dir.path()));
    {
        let conn = rusqlite::Connection::open(&file).expect("open");
        conn.execute_batch(
            "DROP TABLE outbox;
             INSERT INTO runs (id, flow, flow_digest, inputs, vars, binds, targets, created_at, updated_at, status)
                 VALUES ('r-old', 'f', 'sha256:0', '{}', '{}', '[]', '[]', 1, 1, 'succeeded');
             PRAGMA user_version = 3;",
        )
        .expect("back to version 3");
    }
    let journal = common::open(dir.path());
    let conn = rusqlite::Connection::open(&file).expect("open");
    let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0)).expect("version");
    assert_eq!(version, 6);
    assert!(outbox(&journal).notices(None, 10).expect("notices").is_empty());
    assert_eq!(outbox(&journal).next_due().expect("next"), None);
    assert_eq!(journal.list(&Default::default()).expect("list").len(), 1, "the old runs are kept");
}
