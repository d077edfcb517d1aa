//! A journal that cannot be used is refused with a clear error (its code, the file, the fix)
//! when it is opened or a run begins: before any run sends anything. Never a panic.

mod common;

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;

use common::{as_child, finished, open, said, start};
use flowcat_engine::journal::{Begun, JournalError, Store};
use flowcat_journal::{DB_FILE, Journal, Options};
use serde_json::json;

fn refused(dir: &Path) -> JournalError {
    Journal::open_with(dir, Options::default()).expect_err("the journal is refused")
}

/// The error names the file and says what to do.
fn assert_clear(e: &JournalError, code: &str, file: &Path, fix: &str) {
    assert_eq!(e.code, code, "{e}");
    assert!(e.message.contains(&file.display().to_string()), "names the file: {e}");
    assert!(e.message.contains(fix), "says what to do (`{fix}`): {e}");
}

#[test]
fn random_bytes_are_a_damaged_journal() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join(DB_FILE);
    let bytes: Vec<u8> = (0..64 * 1024u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    std::fs::write(&file, bytes).expect("write");
    assert_clear(&refused(dir.path()), "corrupt", &file, "move it aside");
}

#[tokio::test]
async fn a_truncated_journal_is_damaged() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join(DB_FILE);
    {
        let journal = open(dir.path());
        for i in 0..40 {
            let mut s = start("f", None);
            s.info.inputs.insert("padding".into(), json!("x".repeat(4000 + i)));
            let Begun::Fresh(_run) = journal.begin(s).await.expect("begin") else { panic!("fresh") };
        }
    }
    // Closed: the WAL is checkpointed into the file and deleted.
    assert!(!dir.path().join(format!("{DB_FILE}-wal")).exists());
    let len = std::fs::metadata(&file).expect("metadata").len();
    std::fs::OpenOptions::new().write(true).open(&file).expect("open").set_len(len / 2).expect("truncate");
    assert_clear(&refused(dir.path()), "corrupt", &file, "move it aside");
}

#[test]
fn a_journal_from_a_newer_flowcat_is_refused_and_left_as_it_is() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join(DB_FILE);
    drop(open(dir.path()));
    let conn = rusqlite::Connection::open(&file).expect("open");
    conn.pragma_update(None, "user_version", 99).expect("set the version");
    drop(conn);
    let e = refused(dir.path());
    assert_clear(&e, "newer_version", &file, "newer flowcat");
    assert!(e.message.contains("99"), "{e}");
    let conn = rusqlite::Connection::open(&file).expect("open");
    let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0)).expect("version");
    assert_eq!(version, 99, "not rewritten");
}

#[test]
fn another_programs_database_is_not_taken_over() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join(DB_FILE);
    let conn = rusqlite::Connection::open(&file).expect("open");
    conn.execute_batch("CREATE TABLE photos (name TEXT)").expect("create");
    drop(conn);
    assert_clear(&refused(dir.path()), "corrupt", &file, "--state-dir");
}

#[test]
fn a_new_journal_on_a_full_disk_is_refused_when_opened() {
    let dir = tempfile::tempdir().expect("tempdir");
    let e = Journal::open_with(dir.path(), Options { max_pages: Some(2), ..Options::default() }).expect_err("full");
    assert_clear(&e, "full", &dir.path().join(DB_FILE), "runs prune");
}

/// A disk that fills up: the run that cannot be created is refused at `begin`, and a write whose
/// intent cannot be journaled is refused before it is sent. Nothing half-written stays.
#[tokio::test]
async fn a_full_disk_refuses_begin_and_intent() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join(DB_FILE);
    let journal = Journal::open_with(dir.path(), Options { max_pages: Some(24), ..Options::default() }).expect("opens");
    let run = match journal.begin(start("f", None)).await.expect("begin") {
        Begun::Fresh(run) => run,
        other => panic!("fresh: {other:?}"),
    };
    let big = json!({ "body": "x".repeat(200_000) });
    let e = run.intent(&["big".to_owned()], &big).await.expect_err("no room for the intent");
    assert_clear(&e, "full", &file, "free some space");
    // Smaller writes still go in after the failed one.
    run.finished(&["small".to_owned()], &finished("small", json!(1))).await.expect("room for a small result");

    // Runs without a key hold their beginning while the journal's commits succeed; once one
    // failed (the disk filled up), the next run's beginning is awaited and refused.
    let mut last = None;
    let mut held_refused = None;
    for _ in 0..200 {
        let mut s = start("f", None);
        s.info.inputs.insert("padding".into(), json!("y".repeat(3000)));
        match journal.begin(s).await {
            Ok(run) => {
                if let Begun::Fresh(run) = &run {
                    // The run's first awaited entry says why its beginning was not written.
                    if let Err(e) = run.intent(&["w".to_owned()], &json!({})).await {
                        held_refused.get_or_insert(e);
                    }
                }
                continue;
            }
            Err(e) => {
                last = Some(e);
                break;
            }
        }
    }
    let e = last.expect("the disk fills up");
    assert_clear(&e, "full", &file, "runs prune");
    let e = held_refused.expect("a held beginning met the full disk");
    assert_clear(&e, "full", &file, "runs prune");
    let locks = std::fs::read_dir(dir.path().join("locks")).expect("locks").count();
    let runs = journal.list(&Default::default()).expect("list").len();
    assert!(locks <= runs, "no lock file left by the refused run: {locks} files, {runs} runs");
    assert!(journal.show(&run.info().id).expect("show").is_some_and(|r| r.past.node("big").is_none()));
}

/// A result held for the writer is lost when its batch fails (the disk is full). The run's final
/// record would name it: the end is refused instead, so the run reads as interrupted (never
/// succeeded with a record that cannot be read), and a resume finds the node not done and runs
/// it again.
#[tokio::test]
async fn a_run_that_lost_a_held_result_is_not_recorded_as_ended() {
    let dir = tempfile::tempdir().expect("tempdir");
    let journal = Journal::open_with(dir.path(), Options { max_pages: Some(24), ..Options::default() }).expect("opens");
    let run = match journal.begin(start("f", None)).await.expect("begin") {
        Begun::Fresh(run) => run,
        other => panic!("fresh: {other:?}"),
    };
    let id = run.info().id.clone();
    let big = finished("big", json!({ "body": "x".repeat(200_000) }));
    let mut whole = common::record("f", "succeeded");
    whole.nodes.push(big.record.clone());
    run.noted(&["big".to_owned()], big);
    let e = journal.flush().await.expect_err("no room for the result");
    assert_eq!(e.code, "full", "{e}");
    // The run does not know: it ends succeeded, naming the lost entry.
    run.end(flowcat_engine::journal::StoredStatus::Succeeded, &whole).await.expect("held");
    drop(run);
    journal.flush().await.expect("the end's batch commits, without the end");
    let shown = journal.show(&id).expect("show").expect("the run");
    assert_eq!(shown.summary.status, flowcat_engine::journal::StoredStatus::Interrupted);
    assert!(shown.record.is_none(), "{:?}", shown.record);
    let (again, past) = journal.resume(&id).await.expect("resumable");
    assert!(past.node("big").is_none_or(|n| n.finished.is_none()), "{past:?}");
    drop(again);
}

/// File modes do not stop root: as root, the checks run in a child process as `nobody`.
fn open_as_another_user(dir: &Path) -> Vec<String> {
    let mut cmd = as_child(&format!("open:{}", dir.display()));
    if common::is_root() {
        std::os::unix::process::CommandExt::uid(&mut cmd, 65534);
        std::os::unix::process::CommandExt::gid(&mut cmd, 65534);
    }
    let out = cmd.output().expect("the child runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    said(&out)
}

/// A folder that the other user can enter: the temporary folder's parent is private to root.
fn shared_tempdir() -> tempfile::TempDir {
    let dir = tempfile::Builder::new().prefix("flowcat-journal-ro").tempdir_in("/tmp").expect("tempdir");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    dir
}

#[test]
fn a_read_only_journal_file_is_refused() {
    let dir = shared_tempdir();
    let state = dir.path().join("state");
    drop(open(&state));
    let file = state.join(DB_FILE);
    make_others(&state, 0o777);
    make_others(&state.join("locks"), 0o777);
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o444)).expect("chmod");
    let said = open_as_another_user(&state);
    assert_eq!(said.len(), 1, "{said:?}");
    assert!(said[0].starts_with("read_only: "), "{said:?}");
    assert!(said[0].contains(&file.display().to_string()) && said[0].contains("--state-dir"), "{said:?}");
}

#[test]
fn a_read_only_state_folder_is_refused() {
    let dir = shared_tempdir();
    let state = dir.path().join("state");
    drop(open(&state));
    let file = state.join(DB_FILE);
    make_others(&state.join("locks"), 0o777);
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o666)).expect("chmod");
    // The file may be written, its folder not: SQLite cannot create the WAL beside it.
    make_others(&state, 0o555);
    let said = open_as_another_user(&state);
    assert_eq!(said.len(), 1, "{said:?}");
    assert!(said[0].starts_with("read_only: "), "{said:?}");
    assert!(said[0].contains(&file.display().to_string()), "{said:?}");
}

fn make_others(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

/// The child side: `open:DIR` opens the journal and says the error's code and message.
#[test]
fn child() {
    let Ok(role) = std::env::var(common::CHILD) else { return };
    if let Some(dir) = role.strip_prefix("open:") {
        match Journal::open_with(Path::new(dir), Options::default()) {
            Ok(_) => println!("> opened"),
            Err(e) => println!("> {}: {}", e.code, e.message),
        }
    }
}

/// Twenty openers of a new state folder at once (the first runs of a help desk's batch): every
/// one gets the journal, none mistakes another's fresh tables for a foreign database.
#[test]
fn twenty_first_opens_at_once_all_succeed() {
    for round in 0..5 {
        let dir = tempfile::tempdir().expect("tempdir");
        let state = dir.path().join("state");
        let barrier = std::sync::Arc::new(std::sync::Barrier::new(20));
        let openers: Vec<_> = (0..20)
            .map(|_| {
                let (state, barrier) = (state.clone(), barrier.clone());
                std::thread::spawn(move || {
                    barrier.wait();
                    flowcat_journal::Journal::open(&state).map(drop).map_err(|e| format!("{}: {}", e.code, e.message))
                })
            })
            .collect();
        let failed: Vec<String> = openers.into_iter().filter_map(|t| t.join().expect("thread").err()).collect();
        assert!(failed.is_empty(), "round {round}: {failed:#?}");
    }
}
