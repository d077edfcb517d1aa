//! The database: how a connection is opened and checked, and the schema's migrations.
//!
//! Migrations are an append-only list run in one exclusive transaction and counted by
//! `PRAGMA user_version` (as cargo's `util/sqlite.rs`): never remove or reorder one, never drop
//! a column. A journal whose version is higher than this flowcat knows was written by a newer
//! flowcat and is refused, never rewritten.

use std::path::Path;
use std::time::Duration;

use flowcat_engine::journal::JournalError;
use rusqlite::{Connection, OpenFlags};

use crate::error::{self, Doing};

/// `PRAGMA application_id`: "flct", so that a journal is told from another program's database.
const APPLICATION_ID: i64 = 0x666c_6374;

/// The schema, one migration per version: `MIGRATIONS[n]` takes version `n` to `n + 1`.
const MIGRATIONS: &[&str] = &[
    // 1: runs and their nodes.
    "
    CREATE TABLE runs (
        seq         INTEGER PRIMARY KEY,
        id          TEXT NOT NULL UNIQUE,
        flow        TEXT NOT NULL,
        flow_digest TEXT NOT NULL,
        key         TEXT,
        inputs      TEXT NOT NULL,  -- JSON object
        vars        TEXT NOT NULL,  -- JSON object
        binds       TEXT NOT NULL,  -- JSON [[slot, integration name]]: names, never keys
        targets     TEXT NOT NULL,  -- JSON [[slot, host]]: what each slot talked to
        created_at  INTEGER NOT NULL,
        updated_at  INTEGER NOT NULL,
        deadline_at INTEGER,
        status      TEXT NOT NULL
            CHECK (status IN ('running', 'interrupted', 'needs_attention', 'succeeded', 'failed')),
        note        TEXT,
        record      TEXT,           -- the RunRecord as JSON, once the run ended
        source      TEXT            -- the flow file the run named, when it named a file
    ) STRICT;
    CREATE UNIQUE INDEX runs_flow_key ON runs (flow, key) WHERE key IS NOT NULL;
    CREATE INDEX runs_created_at ON runs (created_at);
    CREATE TABLE nodes (
        run         INTEGER NOT NULL REFERENCES runs (seq) ON DELETE CASCADE,
        path        TEXT NOT NULL,    -- path_key: `phone/create`
        started_at  INTEGER,
        intent      TEXT,             -- the write's request (redacted), JSON
        finished    TEXT,             -- journal::Finished, JSON
        at          INTEGER NOT NULL  -- the last change (the run's `updated_at` is the latest of
                                      -- its own and its nodes': one page less per commit)
    ) STRICT;
    -- A rowid table with an index, not WITHOUT ROWID: rows of a kilobyte or two would spill into
    -- overflow pages of an index b-tree.
    CREATE UNIQUE INDEX nodes_run_path ON nodes (run, path);
    ",
    // 2: which process holds a running run: the holder's name (`lock::Holder`), instead of a lock
    // file per run. A version-1 row has none; its run was held through `locks/<id>.lock`.
    "
    ALTER TABLE runs ADD COLUMN holder TEXT;
    ",
    // 3: signals (`wait_for`): what a run may be sent, where it waits, and what was delivered.
    "
    ALTER TABLE runs ADD COLUMN signals TEXT;         -- JSON [SignalSpec]: the signals it accepts
    ALTER TABLE runs ADD COLUMN waiting_path TEXT;    -- the `wait_for` node it is parked on
    ALTER TABLE runs ADD COLUMN waiting_signal TEXT;  -- the signal that node waits for
    ALTER TABLE runs ADD COLUMN waiting_until INTEGER;-- when its timeout (or the deadline) passes
    CREATE INDEX runs_waiting ON runs (waiting_until) WHERE waiting_signal IS NOT NULL;
    CREATE TABLE signals (
        run     INTEGER NOT NULL REFERENCES runs (seq) ON DELETE CASCADE,
        name    TEXT NOT NULL,
        payload TEXT NOT NULL,     -- JSON, as delivered (checked against the run's signals)
        at      INTEGER NOT NULL,
        PRIMARY KEY (run, name)
    ) STRICT;
    ",
    // 4: the outbox (completion webhooks): a notice per hook of a run's end, written in the
    // transaction of that end, until it is delivered or given up. It names the hook and the
    // run, never a URL or a secret. No foreign key: `prune` keeps the runs of pending notices.
    "
    CREATE TABLE outbox (
        seq        INTEGER PRIMARY KEY,
        event      TEXT NOT NULL UNIQUE,  -- the event id receivers dedupe by
        hook       TEXT NOT NULL,         -- the hook's name in the serve config
        run_id     TEXT NOT NULL,
        flow       TEXT NOT NULL,
        status     TEXT NOT NULL,         -- how the run ended
        created_at INTEGER NOT NULL,
        state      TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'delivered', 'failed')),
        attempts   INTEGER NOT NULL DEFAULT 0,
        due_at     INTEGER NOT NULL,      -- next attempt, or the lease's end while one is sent
        body       TEXT,                  -- fixed at the first attempt: every retry sends it
        last_error TEXT
    ) STRICT;
    CREATE INDEX outbox_due ON outbox (due_at) WHERE state = 'pending';
    CREATE INDEX outbox_run ON outbox (run_id);
    ",
    // 5: each result written once. A run's `record`, and a subflow node's `finished`, name the
    // nodes that have their own entry (`{"$row": "<path>"}`, `engine/src/node/rows.rs`) rather
    // than repeating them. No table changes; the version keeps an older flowcat, which would
    // misread such a record, away. Records written before stay whole and read as they are.
    "",
    // 6: a REST call's last answer written once. A node's stored `detail` may name the part of it
    // that its result repeats (`{"$result": {"at": "/attempts/N/response", "fields": [...]}}`,
    // `Detail::typed_with_lean`), put back from the result when read. No table changes; the
    // version keeps an older flowcat, which would show the name instead of the answer, away.
    "",
];

/// The schema version this flowcat writes.
pub(crate) const VERSION: i64 = MIGRATIONS.len() as i64;

/// How a connection is set up.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Setup {
    pub busy_timeout: Duration,
    pub max_pages: Option<u32>,
}

/// Opens the journal `file` (which exists) for reading and writing, in WAL mode.
///
/// `synchronous=NORMAL` in WAL mode: a commit is written to the WAL before it returns, and the WAL
/// is synced at checkpoints. A process that crashes or is killed loses nothing committed; a power
/// cut or an OS crash may lose the last commits (never corrupt the file). That is the promise.
pub(crate) fn connect(file: &Path, setup: Setup) -> Result<Connection, JournalError> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let err = |e: rusqlite::Error| error::sqlite(&e, file, Doing::Opened);
    let conn = Connection::open_with_flags(file, flags).map_err(err)?;
    conn.busy_timeout(setup.busy_timeout).map_err(err)?;
    // SQLite opens a file it may not write read-only, silently: say so now, not at the first write.
    if conn.is_readonly(rusqlite::MAIN_DB).map_err(err)? {
        return Err(error::read_only(file, "the file is read-only"));
    }
    // Pages freed by `runs prune` go back to the file system. Only a new file takes it, and only
    // before the switch to WAL below writes its header (inside `migrate` it was too late, and
    // every journal was made without it); on an existing journal it changes nothing.
    conn.pragma_update(None, "auto_vacuum", "INCREMENTAL").map_err(err)?;
    // The first read of the file: random bytes fail here ("file is not a database").
    let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0)).map_err(err)?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(error::read_only(file, &format!("it stays in `{mode}` journal mode instead of WAL")));
    }
    conn.pragma_update(None, "synchronous", "NORMAL").map_err(err)?;
    conn.pragma_update(None, "foreign_keys", true).map_err(err)?;
    if let Some(pages) = setup.max_pages {
        // A number, so formatting it into the statement is safe; the pragma answers the new cap.
        conn.query_row(&format!("PRAGMA max_page_count = {pages}"), [], |_| Ok(())).map_err(err)?;
    }
    Ok(conn)
}

/// Brings the schema up to [`VERSION`]; refuses a newer journal and another program's database.
pub(crate) fn migrate(conn: &mut Connection, file: &Path) -> Result<(), JournalError> {
    let err = |e: rusqlite::Error| error::sqlite(&e, file, Doing::Opened);
    let version = user_version(conn).map_err(err)?;
    check_version(version, file)?;
    if version == VERSION {
        return check_application(conn, file);
    }
    // Everything below is decided inside the exclusive transaction: another process may have
    // migrated while this one waited for the lock (twenty first runs at once), and its fresh
    // tables must not be taken for another program's database.
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Exclusive).map_err(err)?;
    let version = user_version(&tx).map_err(err)?;
    check_version(version, file)?;
    if version == VERSION {
        drop(tx);
        return check_application(conn, file);
    }
    if version == 0 {
        check_empty(&tx, file)?;
    }
    for migration in &MIGRATIONS[version as usize..] {
        tx.execute_batch(migration).map_err(err)?;
    }
    tx.pragma_update(None, "application_id", APPLICATION_ID).map_err(err)?;
    tx.pragma_update(None, "user_version", VERSION).map_err(err)?;
    tx.commit().map_err(err)
}

fn user_version(conn: &Connection) -> rusqlite::Result<i64> {
    conn.query_row("PRAGMA user_version", [], |r| r.get(0))
}

fn check_version(version: i64, file: &Path) -> Result<(), JournalError> {
    if (0..=VERSION).contains(&version) {
        return Ok(());
    }
    Err(JournalError::new(
        "newer_version",
        format!(
            "the journal `{}` was written by a newer flowcat (schema version {version}; this flowcat knows versions \
             up to {VERSION}): use that flowcat or a newer one, or give this one another state folder with \
             `--state-dir DIR`",
            file.display()
        ),
    ))
}

/// A database at version 0 must be empty: a new file, not another program's database.
fn check_empty(conn: &Connection, file: &Path) -> Result<(), JournalError> {
    let objects: i64 = conn
        .query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get(0))
        .map_err(|e| error::sqlite(&e, file, Doing::Opened))?;
    if objects > 0 { Err(not_a_journal(file)) } else { check_application(conn, file) }
}

fn check_application(conn: &Connection, file: &Path) -> Result<(), JournalError> {
    let id: i64 = conn
        .query_row("PRAGMA application_id", [], |r| r.get(0))
        .map_err(|e| error::sqlite(&e, file, Doing::Opened))?;
    if id == 0 || id == APPLICATION_ID { Ok(()) } else { Err(not_a_journal(file)) }
}

fn not_a_journal(file: &Path) -> JournalError {
    JournalError::new(
        "corrupt",
        format!(
            "`{}` is a SQLite database but not a flowcat journal: choose another state folder with `--state-dir DIR`",
            file.display()
        ),
    )
}
