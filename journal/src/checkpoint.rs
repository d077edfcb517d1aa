//! The checkpointer: copies the WAL's frames into the database file on a thread of its own.
//!
//! A checkpoint used to run inside a commit, once the WAL passed SQLite's 1,000 pages: the
//! writer then copied every page and synced both files while every run waiting for its entry
//! waited too (a `--each` batch stalled for several milliseconds every few dozen commits). Now
//! the writer tells this thread how much it wrote; every [`EVERY_OPS`] entries the thread runs a
//! `PASSIVE` checkpoint on its own connection, which copies what the WAL holds without ever
//! stopping the writer. Such a checkpoint cannot restart the WAL (only a writer does, when it
//! finds every frame copied), so the writer keeps SQLite's own checkpoint, at
//! [`WRITER_PAGES`]: by then this thread has copied nearly everything, and the writer's part
//! is the last few milliseconds' frames, after which the WAL starts over. The WAL stays bounded
//! (about `WRITER_PAGES` pages), and nothing about durability changes: a checkpoint syncs the
//! WAL before it copies and the database after, whichever connection runs it.

use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread::JoinHandle;

use rusqlite::Connection;

/// Entries written between two checkpoints of this thread (about half as many WAL pages).
pub(crate) const EVERY_OPS: u64 = 1024;

/// The WAL's size, in pages, at which the writer checkpoints (and the WAL restarts).
pub(crate) const WRITER_PAGES: u32 = 4000;

#[derive(Default)]
struct State {
    /// Entries written since the last checkpoint was asked for.
    ops: u64,
    stop: bool,
}

#[derive(Default)]
struct Signal {
    state: Mutex<State>,
    wake: Condvar,
}

/// The thread; stopping it (dropping this) waits for a checkpoint under way.
pub(crate) struct Checkpointer {
    signal: Arc<Signal>,
    thread: Option<JoinHandle<()>>,
}

/// What the writer tells the checkpointer.
#[derive(Clone)]
pub(crate) struct Nudge(Arc<Signal>);

impl Nudge {
    /// `ops` entries were committed.
    pub(crate) fn wrote(&self, ops: u64) {
        let mut state = self.0.state.lock().unwrap_or_else(PoisonError::into_inner);
        state.ops += ops;
        if state.ops >= EVERY_OPS {
            self.0.wake.notify_one();
        }
    }
}

impl std::fmt::Debug for Nudge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Nudge")
    }
}

impl Checkpointer {
    /// Starts the thread on `conn`, a connection of its own to the journal.
    pub(crate) fn start(conn: Connection) -> std::io::Result<(Checkpointer, Nudge)> {
        let signal = Arc::new(Signal::default());
        let theirs = signal.clone();
        let thread =
            std::thread::Builder::new().name("flowcat-checkpoint".into()).spawn(move || serve(&conn, &theirs))?;
        Ok((Checkpointer { signal: signal.clone(), thread: Some(thread) }, Nudge(signal)))
    }
}

fn serve(conn: &Connection, signal: &Signal) {
    loop {
        let mut state = signal.state.lock().unwrap_or_else(PoisonError::into_inner);
        while !state.stop && state.ops < EVERY_OPS {
            state = signal.wake.wait(state).unwrap_or_else(PoisonError::into_inner);
        }
        if state.stop {
            return;
        }
        state.ops = 0;
        drop(state);
        // Busy (another process checkpoints) or failed (a full disk): the frames stay in the
        // WAL, which is as durable, and the writer's own checkpoint is still there. A failure
        // the journal must hear of shows at the writer's next commit, not here.
        let _ = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| r.get::<_, i64>(0));
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        self.signal.state.lock().unwrap_or_else(PoisonError::into_inner).stop = true;
        self.signal.wake.notify_one();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl std::fmt::Debug for Checkpointer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Checkpointer")
    }
}
