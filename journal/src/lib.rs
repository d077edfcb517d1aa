//! flowcat-journal: the run journal, in an embedded SQLite database.
//!
//! [`Journal`] is the engine's [`Store`](flowcat_engine::journal::Store): it keeps every run
//! (what it was started with, where it stands, its final record) and every node's start, write
//! intent and result, so that a run killed at any point can be listed, shown and resumed. The
//! engine knows only the contract (`flowcat_engine::journal`); this crate is one store, and a
//! shared server store can be another.
//!
//! - One file, `STATE_DIR/journal.sqlite3` ([`state_dir`]), in WAL mode with
//!   `synchronous=NORMAL`: a commit survives the process being killed (kill -9), which is the
//!   promise; a power cut may lose the last commits, never the file.
//! - One writer thread commits in groups (`writer`): many runs journaling at once share a
//!   transaction, and each waiter is told once its write is committed; a [`Pace`] lets it
//!   gather the awaited entries of a busy runtime's runs into fewer commits. Another thread copies
//!   the WAL into the database file meanwhile (`checkpoint`), so that commits seldom wait for it.
//! - A run is held by one process at a time through a lock file (`lock`), which the kernel
//!   releases when the process dies.
//! - No secret: a run is stored with its inputs, vars and the *names* of the integrations it is
//!   bound to; requests and records arrive already redacted.

mod checkpoint;
mod crash;
mod dir;
mod error;
mod handle;
mod id;
mod lock;
mod outbox;
mod pace;
mod read;
mod schema;
mod store;
mod writer;

pub use crash::{CRASH_AT_VAR, CrashAt, Phase};
pub use dir::{DB_FILE, find_state_dir, state_dir};
pub use outbox::end_notices;
pub use pace::Pace;
pub use store::{Journal, Options};
pub use writer::MAX_HELD;

/// A fresh run id for a run created at `now_ms` (Unix ms): `r`, the time, then randomness, in
/// lower-case Crockford base32. Every store names runs this way (ids sort by creation time).
pub fn new_run_id(now_ms: u64) -> String {
    id::fresh(now_ms)
}

/// Whether `id` has the form of a run id.
pub fn is_run_id(id: &str) -> bool {
    id::is_valid(id)
}

/// A run's note: `text` on one line of at most 300 characters.
pub fn one_line(text: &str) -> String {
    handle::one_line(text)
}
