//! Postgres's errors as [`JournalError`]s that name the database (never its password) and say
//! what to do: a store that cannot be used must stop a run before it sends anything.

use flowcat_engine::journal::JournalError;
use postgres::error::SqlState;

/// The error of a call on the database at `place` (`host:port/db`).
pub(crate) fn postgres(place: &str, e: &postgres::Error) -> JournalError {
    let Some(db) = e.as_db_error() else { return unreachable(place, e) };
    let detail = format!("{}: {}", db.code().code(), db.message());
    let code = db.code();
    if *code == SqlState::DISK_FULL || *code == SqlState::OUT_OF_MEMORY || *code == SqlState::PROGRAM_LIMIT_EXCEEDED {
        return JournalError::new(
            "full",
            format!(
                "the Postgres store `{place}` cannot grow ({detail}): free some space on its server, or delete old \
                 runs with `flowcat runs prune --older-than 30d`"
            ),
        );
    }
    if *code == SqlState::T_R_SERIALIZATION_FAILURE
        || *code == SqlState::T_R_DEADLOCK_DETECTED
        || *code == SqlState::LOCK_NOT_AVAILABLE
        || *code == SqlState::QUERY_CANCELED
    {
        return JournalError::new("busy", format!("the Postgres store `{place}` was busy ({detail}): try again"));
    }
    if *code == SqlState::INSUFFICIENT_PRIVILEGE || *code == SqlState::READ_ONLY_SQL_TRANSACTION {
        return JournalError::new(
            "read_only",
            format!(
                "the Postgres store `{place}` cannot be written by this user ({detail}): grant the user of `--store` \
                 the right to create and write tables in that database, or point `--store` at the primary"
            ),
        );
    }
    if code.code().starts_with("08") || code.code().starts_with("57") {
        return unreachable(place, e);
    }
    JournalError::new("io", format!("the Postgres store `{place}` answered an error: {detail}"))
}

/// The server could not be reached, or the connection broke.
pub(crate) fn unreachable(place: &str, e: &postgres::Error) -> JournalError {
    JournalError::new(
        "unavailable",
        format!(
            "the Postgres store `{place}` could not be reached ({}): check that the server runs and accepts this \
             user, and the URL given with `--store`",
            with_causes(e).replace('\n', " ")
        ),
    )
}

/// The error and its causes: `postgres` says only "error connecting to server", and the reason
/// ("Connection refused") is its source's.
fn with_causes(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let said = cause.to_string();
        if !text.contains(&said) {
            text = format!("{text}: {said}");
        }
        source = cause.source();
    }
    text
}

/// The store was closed (its threads are gone): only while the process ends.
pub(crate) fn closed(place: &str) -> JournalError {
    JournalError::new("io", format!("the Postgres store `{place}` is closed"))
}

/// A JSON column that could not be read back, or a value that could not be made JSON.
pub(crate) fn json(place: &str, what: &str, e: &serde_json::Error) -> JournalError {
    JournalError::new("corrupt", format!("in the Postgres store `{place}`, {what} is not valid JSON: {e}"))
}

/// This replica no longer holds the run (its lease lapsed and another replica took the run, or
/// the run was let go): nothing more of it is written or sent from here.
pub(crate) fn lease_lost(place: &str, id: &str) -> JournalError {
    JournalError::new(
        "lease_lost",
        format!(
            "run `{id}` is no longer held by this process in the Postgres store `{place}` (its lease lapsed and \
             another replica may have taken the run over): nothing more of it is sent from here"
        ),
    )
}

/// This process could not renew its lease in time: it sends nothing more until it does.
pub(crate) fn lapsed(place: &str) -> JournalError {
    JournalError::new(
        "lease_lost",
        format!(
            "this process could not renew its lease in the Postgres store `{place}` in time, so its runs may be \
             taken over by another replica: it sends nothing more until the database answers again"
        ),
    )
}

pub(crate) fn unknown_run(id: &str, place: &str) -> JournalError {
    JournalError::new(
        "unknown_run",
        format!("no run `{id}` in the Postgres store `{place}`: `flowcat runs list` shows the runs"),
    )
}
