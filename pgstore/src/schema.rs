//! The schema and its migrations, run when a store opens.
//!
//! Migrations are an append-only list, counted in `flowcat_schema.version` and run in one
//! transaction under an advisory lock, so that replicas starting at once migrate once: never
//! remove or reorder one. A database whose version is higher than this flowcat knows was
//! migrated by a newer flowcat and is refused, never rewritten.

use flowcat_engine::journal::JournalError;

use crate::pool::Conn;

/// The advisory lock the migrations run under: "flct".
const LOCK: i64 = 0x666c_6374;

/// The database's clock in Unix ms: leases are compared on one clock, whichever machine asks.
pub(crate) const NOW_MS: &str = "(extract(epoch from clock_timestamp()) * 1000)::bigint";

/// `MIGRATIONS[n]` takes version `n` to `n + 1`.
const MIGRATIONS: &[&str] = &[
    // 1: runs, their nodes and signals, the outbox, and the replicas' leases.
    "
    CREATE TABLE runs (
        seq            BIGSERIAL PRIMARY KEY,
        id             TEXT NOT NULL UNIQUE,
        flow           TEXT NOT NULL,
        flow_digest    TEXT NOT NULL,
        key            TEXT,
        inputs         TEXT NOT NULL,   -- JSON object
        vars           TEXT NOT NULL,   -- JSON object
        binds          TEXT NOT NULL,   -- JSON [[slot, integration name]]: names, never keys
        targets        TEXT NOT NULL,   -- JSON [[slot, host]]
        created_at     BIGINT NOT NULL, -- Unix ms
        updated_at     BIGINT NOT NULL,
        deadline_at    BIGINT,
        status         TEXT NOT NULL
            CHECK (status IN ('running', 'interrupted', 'needs_attention', 'succeeded', 'failed')),
        note           TEXT,
        record         TEXT,            -- the RunRecord as JSON, once the run ended
        source         TEXT,            -- the flow file the run named, when it named a file
        holder         TEXT,            -- the replica that holds it (replicas.name), while running
        claim          BIGINT NOT NULL DEFAULT 0, -- counts the takes: a handle writes only under its own
        cancel_at      BIGINT,          -- another replica asked the holder to cancel the run then
        signals        TEXT,            -- JSON [SignalSpec]
        waiting_path   TEXT,
        waiting_signal TEXT,
        waiting_until  BIGINT
    );
    CREATE UNIQUE INDEX runs_flow_key ON runs (flow, key) WHERE key IS NOT NULL;
    CREATE INDEX runs_created_at ON runs (created_at);
    CREATE INDEX runs_running ON runs (holder) WHERE status = 'running';
    CREATE INDEX runs_waiting ON runs (waiting_until) WHERE waiting_signal IS NOT NULL;
    CREATE TABLE nodes (
        run        BIGINT NOT NULL REFERENCES runs (seq) ON DELETE CASCADE,
        path       TEXT NOT NULL,
        started_at BIGINT,
        intent     TEXT,
        finished   TEXT,
        at         BIGINT NOT NULL,
        PRIMARY KEY (run, path)
    );
    CREATE TABLE signals (
        run     BIGINT NOT NULL REFERENCES runs (seq) ON DELETE CASCADE,
        name    TEXT NOT NULL,
        payload TEXT NOT NULL,
        at      BIGINT NOT NULL,
        PRIMARY KEY (run, name)
    );
    CREATE TABLE outbox (
        seq        BIGSERIAL PRIMARY KEY,
        event      TEXT NOT NULL UNIQUE,
        hook       TEXT NOT NULL,
        run_id     TEXT NOT NULL,
        flow       TEXT NOT NULL,
        status     TEXT NOT NULL,
        created_at BIGINT NOT NULL,
        state      TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'delivered', 'failed')),
        attempts   INTEGER NOT NULL DEFAULT 0,
        due_at     BIGINT NOT NULL,
        body       TEXT,
        last_error TEXT
    );
    CREATE INDEX outbox_due ON outbox (due_at) WHERE state = 'pending';
    CREATE INDEX outbox_run ON outbox (run_id);
    CREATE TABLE replicas (
        name        TEXT PRIMARY KEY,
        started_at  BIGINT NOT NULL,
        lease_until BIGINT NOT NULL     -- on the database's clock
    );
    -- 429s from Duo, per integration, for every replica to slow down (Duo's limits are per
    -- application): the latest one of each integration and who met it.
    CREATE TABLE throttles (
        integration TEXT PRIMARY KEY,
        at          BIGINT NOT NULL,    -- the database's clock
        replica     TEXT NOT NULL
    );
    ",
];

/// The schema version this flowcat writes.
pub(crate) const VERSION: i32 = MIGRATIONS.len() as i32;

/// Brings the database up to [`VERSION`]; refuses one migrated by a newer flowcat, and a
/// database whose `runs` table is another program's.
pub(crate) fn migrate(conn: &mut Conn) -> Result<(), JournalError> {
    let place = conn.place().to_owned();
    let found = conn.with(|c| {
        let mut tx = c.transaction()?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&LOCK])?;
        tx.batch_execute("CREATE TABLE IF NOT EXISTS flowcat_schema (version INTEGER NOT NULL)")?;
        let version: Option<i32> = tx.query_opt("SELECT version FROM flowcat_schema", &[])?.map(|r| r.get(0));
        let version = match version {
            Some(v) => v,
            None => {
                // A database with a `runs` table but no version is not flowcat's.
                let foreign: bool = tx.query_one("SELECT to_regclass('runs') IS NOT NULL", &[])?.get(0);
                if foreign {
                    return Ok(Err(()));
                }
                tx.execute("INSERT INTO flowcat_schema (version) VALUES (0)", &[])?;
                0
            }
        };
        if version > VERSION {
            return Ok(Ok(version));
        }
        for migration in &MIGRATIONS[version as usize..] {
            tx.batch_execute(migration)?;
        }
        tx.execute("UPDATE flowcat_schema SET version = $1", &[&VERSION])?;
        tx.commit()?;
        Ok(Ok(version))
    })?;
    match found {
        Err(()) => Err(JournalError::new(
            "corrupt",
            format!(
                "the database `{place}` has a `runs` table that flowcat did not make: give `--store` a database of \
                 its own (`CREATE DATABASE flowcat`)"
            ),
        )),
        Ok(v) if v > VERSION => Err(JournalError::new(
            "newer_version",
            format!(
                "the Postgres store `{place}` has schema version {v}, written by a newer flowcat (this one knows up \
                 to {VERSION}): upgrade this flowcat; the store is left as it is"
            ),
        )),
        Ok(_) => Ok(()),
    }
}
