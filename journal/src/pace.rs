//! [`Pace`]: the writer's commits paced by the runtime that drives the runs.
//!
//! A run that journals a write's intent waits for the commit before it sends the write. Left to
//! itself, the writer commits as soon as one such entry comes: in a bulk run (`run --each`), with
//! rows in flight on one runtime thread, that is a commit per row or so, each rewriting every
//! page it touches (the table's last leaves, its indexes' pages, the file's header), most of
//! them again at the next commit. Those commits are most of the journal's cost.
//!
//! With a pace, the writer that holds an awaited entry commits once the runtime goes idle
//! (every run waits: nothing more can come), or once the pace's window has passed since the entry
//! came, whichever is first. A runtime that waits on the network (a real Duo, 50 ms a call) is
//! idle at once, so the entry is committed at once; a busy one gathers the intents of many rows
//! in one commit. The runtime says when it parks and unparks through `Builder::on_thread_park` and
//! `on_thread_unpark` (one thread: a `current_thread` runtime). This is PostgreSQL's
//! `commit_delay`, bounded by the runs that could still bring something rather than by a count.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::thread::Thread;
use std::time::{Duration, Instant};

/// Shared by a journal's writer and the runtime that drives its runs (see the module's
/// documentation). One journal per pace.
#[derive(Debug)]
pub struct Pace {
    window: Duration,
    /// Whether the runtime's thread runs tasks (it has not parked since it last unparked).
    busy: AtomicBool,
    /// Whether the writer waits for [`Pace::parked`] to wake it.
    waiting: AtomicBool,
    /// The writer's thread, once it serves.
    writer: OnceLock<Thread>,
}

impl Pace {
    /// A pace that holds an awaited entry at most `window` for the runtime to go idle.
    pub fn new(window: Duration) -> Arc<Pace> {
        Arc::new(Pace {
            window,
            busy: AtomicBool::new(false),
            waiting: AtomicBool::new(false),
            writer: OnceLock::new(),
        })
    }

    /// The runtime's thread is about to park: every task waits. For `on_thread_park`.
    pub fn parked(&self) {
        self.busy.store(false, Ordering::SeqCst);
        if self.waiting.swap(false, Ordering::SeqCst)
            && let Some(writer) = self.writer.get()
        {
            writer.unpark();
        }
    }

    /// The runtime's thread runs tasks again. For `on_thread_unpark`.
    pub fn unparked(&self) {
        self.busy.store(true, Ordering::SeqCst);
    }

    /// Called by the writer's thread before it serves: the thread [`Pace::parked`] wakes.
    pub(crate) fn serve_here(&self) {
        let _ = self.writer.set(std::thread::current());
    }

    /// Returns once the runtime is idle, or `window` after `since`. On the writer's thread.
    pub(crate) fn until_idle(&self, since: Instant) {
        let deadline = since + self.window;
        // Said before the runtime is looked at: a park after this wakes the writer, and one
        // before it is seen below (both sequentially consistent).
        self.waiting.store(true, Ordering::SeqCst);
        while self.busy.load(Ordering::SeqCst) {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            // May return early (a stale wake-up, or none at all): the loop looks again.
            std::thread::park_timeout(deadline - now);
        }
        self.waiting.store(false, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LONG: Duration = Duration::from_secs(600);

    #[test]
    fn an_idle_runtime_does_not_hold_the_writer() {
        let window = Duration::from_secs(5);
        let pace = Pace::new(window);
        pace.serve_here();
        let since = Instant::now();
        // Never unparked yet, then parked after running: idle both times.
        pace.until_idle(since);
        pace.unparked();
        pace.parked();
        pace.until_idle(Instant::now());
        assert!(since.elapsed() < window, "it waited out the window: {:?}", since.elapsed());
        assert!(!pace.waiting.load(Ordering::SeqCst));
    }

    #[test]
    fn a_busy_runtime_holds_the_writer_until_it_parks() {
        let pace = Pace::new(LONG);
        pace.unparked();
        let (tx, rx) = std::sync::mpsc::channel();
        let writer = {
            let pace = pace.clone();
            std::thread::spawn(move || {
                pace.serve_here();
                tx.send("waiting").expect("send");
                pace.until_idle(Instant::now());
                tx.send("committed").expect("send");
            })
        };
        assert_eq!(rx.recv().expect("recv"), "waiting");
        // Still busy: the writer stays, however often it is woken for nothing.
        for _ in 0..3 {
            writer.thread().unpark();
            assert!(rx.recv_timeout(Duration::from_millis(20)).is_err(), "it left a busy runtime");
        }
        pace.parked();
        assert_eq!(rx.recv_timeout(LONG).expect("woken by the park"), "committed");
        writer.join().expect("join");
    }

    #[test]
    fn a_runtime_that_never_parks_holds_the_writer_for_the_window_only() {
        let pace = Pace::new(Duration::from_millis(1));
        pace.serve_here();
        pace.unparked();
        let since = Instant::now();
        pace.until_idle(since);
        assert!(since.elapsed() >= Duration::from_millis(1));
        assert!(pace.busy.load(Ordering::SeqCst), "still busy: the window ended the wait");
    }
}
