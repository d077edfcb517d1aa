//! Turning SQLite's and the file system's errors into [`JournalError`]s that name the file and
//! say what to do. A journal that cannot be used must stop a run before it sends anything, so
//! these messages are what a person reads instead of a run.

use std::io;
use std::path::Path;

use flowcat_engine::journal::JournalError;
use rusqlite::ErrorCode;

/// What the journal was doing when the error came, for the message: "could not be {doing}".
#[derive(Clone, Copy, Debug)]
pub(crate) enum Doing {
    Opened,
    Written,
    Read,
}

impl Doing {
    fn word(self) -> &'static str {
        match self {
            Doing::Opened => "opened",
            Doing::Written => "written",
            Doing::Read => "read",
        }
    }
}

/// The error of a SQLite call on the journal `file`.
pub(crate) fn sqlite(e: &rusqlite::Error, file: &Path, doing: Doing) -> JournalError {
    let code = e.sqlite_error_code();
    let detail = e.to_string();
    match code {
        Some(ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase) => corrupt(file, &detail),
        Some(ErrorCode::ReadOnly) => read_only(file, &detail),
        Some(ErrorCode::DiskFull) => full(file, &detail),
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => JournalError::new(
            "busy",
            format!(
                "the journal `{}` stayed locked by another process ({detail}): try again; if it lasts, look for a \
                 stuck `flowcat` process",
                file.display()
            ),
        ),
        Some(ErrorCode::CannotOpen | ErrorCode::PermissionDenied) => read_only(file, &detail),
        _ => {
            JournalError::new("io", format!("the journal `{}` could not be {}: {detail}", file.display(), doing.word()))
        }
    }
}

/// An I/O error on `path`, a file or folder of the journal.
pub(crate) fn io(e: &io::Error, path: &Path, doing: Doing) -> JournalError {
    let detail = e.to_string();
    // EROFS (a read-only file system) and ENOSPC by number: their `ErrorKind`s are recent.
    match (e.kind(), e.raw_os_error()) {
        (io::ErrorKind::PermissionDenied, _) | (_, Some(30)) => read_only(path, &detail),
        (_, Some(28)) => full(path, &detail),
        _ => JournalError::new(
            "io",
            format!("the journal's `{}` could not be {}: {detail}", path.display(), doing.word()),
        ),
    }
}

pub(crate) fn corrupt(file: &Path, detail: &str) -> JournalError {
    let f = file.display();
    JournalError::new(
        "corrupt",
        format!(
            "the journal `{f}` is damaged ({detail}): move it aside with its `-wal` and `-shm` files (`mv {f} \
             {f}.damaged`) to start an empty journal, or restore it from a backup; `sqlite3 {f}.damaged .recover` \
             may save its runs"
        ),
    )
}

pub(crate) fn read_only(path: &Path, detail: &str) -> JournalError {
    JournalError::new(
        "read_only",
        format!(
            "the journal `{}` cannot be written ({detail}): make it and its folder writable by this user, or choose \
             another state folder with `--state-dir DIR` or `FLOWCAT_STATE_DIR`",
            path.display()
        ),
    )
}

pub(crate) fn full(path: &Path, detail: &str) -> JournalError {
    JournalError::new(
        "full",
        format!(
            "the journal `{}` cannot grow: the disk is full ({detail}): free some space, or delete old runs with \
             `flowcat runs prune --older-than 30d`",
            path.display()
        ),
    )
}

/// The writer thread is gone: only after a bug, or while the process ends.
pub(crate) fn stopped(file: &Path) -> JournalError {
    JournalError::new("io", format!("the journal `{}` is closed: its writer stopped", file.display()))
}

/// A JSON column that could not be read back (or a value that could not be written as JSON).
pub(crate) fn json(file: &Path, what: &str, e: &serde_json::Error) -> JournalError {
    corrupt(file, &format!("{what} is not valid JSON: {e}"))
}
