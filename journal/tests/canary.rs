//! No secret in the journal: the store takes integration *names*, never keys (`RunInfo::binds`),
//! and requests and records arrive redacted. This test runs a whole run's life with recognisable
//! values and reads the raw files (database, WAL, shared memory, lock files): every marker it
//! finds is one it gave, and one the process held but never gave is not there.

mod common;

use std::collections::BTreeSet;
use std::path::Path;

use common::{finished, open, start};
use flowcat_engine::journal::{Begun, Store as _, StoredStatus};
use serde_json::json;

/// Every `cnry-NNN` in the files of `dir`.
fn markers(dir: &Path) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).expect("read_dir") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            let bytes = std::fs::read(&path).expect("read");
            for (i, w) in bytes.windows(5).enumerate() {
                if w == b"cnry-" {
                    let digits: String = bytes[i + 5..].iter().take(3).map(|b| char::from(*b)).collect();
                    if digits.len() == 3 && digits.bytes().all(|b| b.is_ascii_digit()) {
                        found.insert(format!("cnry-{digits}"));
                    }
                }
            }
        }
    }
    found
}

#[tokio::test]
async fn the_files_hold_only_what_was_given() {
    let dir = tempfile::tempdir().expect("tempdir");
    // Held by this process the whole time, as an integration's secret key would be; never given.
    let secret = "cnry-999";
    let journal = open(dir.path());
    let mut s = start("cnry-001", Some("cnry-002"));
    s.info.inputs.insert("username".into(), json!("cnry-003"));
    s.info.vars.insert("host".into(), json!("cnry-004"));
    s.info.binds = vec![("duo_admin".into(), "cnry-005".into())];
    s.info.flow_digest = "cnry-006".into();
    s.info.targets = vec![("duo_admin".into(), "cnry-011.duosecurity.com".into())];
    let Begun::Fresh(run) = journal.begin(s).await.expect("begin") else { panic!("fresh") };
    run.started(&["cnry-007".to_owned()], 1);
    let request =
        json!({ "method": "POST", "url": "https://x/cnry-008", "headers": { "authorization": "[redacted]" } });
    run.intent(&["cnry-007".to_owned()], &request).await.expect("intent");
    run.finished(&["cnry-007".to_owned()], &finished("cnry-007", json!({ "user_id": "cnry-009" }))).await.expect("f");
    let mut record = common::record("cnry-001", "succeeded");
    record.outputs.insert("user_id".into(), json!("cnry-010"));
    run.end(StoredStatus::Succeeded, &record).await.expect("end");
    journal.flush().await.expect("flush");

    let given: BTreeSet<String> = (1..=11).map(|n| format!("cnry-{n:03}")).collect();
    assert!(dir.path().join(format!("{}-wal", flowcat_journal::DB_FILE)).exists(), "the WAL is read too");
    assert_eq!(markers(dir.path()), given, "open: database, WAL and shared memory");
    drop(run);
    drop(journal);
    assert_eq!(markers(dir.path()), given, "closed: the WAL checkpointed into the database");
    assert!(!markers(dir.path()).contains(secret));
}

/// The journal's files are private to their owner: folder 0700, database and WAL 0600.
#[tokio::test]
async fn the_files_are_private() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().expect("tempdir");
    let state = dir.path().join("state/flowcat");
    let journal = open(&state);
    let Begun::Fresh(run) = journal.begin(start("f", None)).await.expect("begin") else { panic!("fresh") };
    let mode = |p: &Path| std::fs::metadata(p).expect("metadata").permissions().mode() & 0o777;
    assert_eq!(mode(&state), 0o700);
    assert_eq!(mode(&state.join("locks")), 0o700);
    for file in ["", "-wal", "-shm"] {
        assert_eq!(mode(&state.join(format!("{}{file}", flowcat_journal::DB_FILE))), 0o600, "{file}");
    }
    // One lock file for the process that holds runs, not one per run.
    let locks: Vec<_> =
        std::fs::read_dir(state.join("locks")).expect("locks").map(|e| e.expect("entry").path()).collect();
    assert_eq!(locks.len(), 1, "{locks:?}");
    assert_eq!(mode(&locks[0]), 0o600);
    assert!(!run.info().id.is_empty());
}
