//! A run this process holds: it journals the run's nodes and ends it. The run is released when
//! the handle is dropped; a run dropped without [`RunHandle::end`] reads as interrupted.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use flowcat_engine::journal::{Finished, JournalError, RunHandle, RunInfo, RunLog, StoredStatus, path_key};
use flowcat_engine::run::{BoxFuture, RunRecord};
use serde_json::Value;

use crate::crash::Phase;
use crate::store::{Shared, now_ms};
use crate::writer::{Entries, Noting, Op, RunNo, to_json};

pub(crate) struct Handle {
    shared: Arc<Shared>,
    run: RunNo,
    info: Arc<RunInfo>,
    /// Ended succeeded or failed: its row names no holder any more.
    finished: AtomicBool,
    /// The paths of this run's nodes journaled as waiting for a signal.
    waiting: std::sync::Mutex<Vec<String>>,
    /// The run's beginning is known written: it was awaited, or an awaited entry of the run was
    /// committed since (the writer writes a run's held entries before its awaited ones).
    confirmed: AtomicBool,
    /// The nodes whose results have an entry: a record or entry written later names them.
    entries: Arc<Entries>,
}

impl std::fmt::Debug for Handle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Handle").field("id", &self.info.id).finish_non_exhaustive()
    }
}

impl Handle {
    /// A handle on `run`, which the writer marks held by this process (with its beginning or its
    /// claim).
    /// `entries` are the results the journal holds of the run already (a resumed run's).
    pub(crate) fn new(
        shared: Arc<Shared>,
        run: RunNo,
        info: Arc<RunInfo>,
        confirmed: bool,
        entries: Entries,
    ) -> Handle {
        Handle {
            shared,
            run,
            info,
            finished: AtomicBool::new(false),
            waiting: Default::default(),
            confirmed: AtomicBool::new(confirmed),
            entries: Arc::new(entries),
        }
    }

    /// Sends an op and waits for its commit; once committed, the run's beginning is too. The
    /// run's held results go with it, made JSON here rather than by the writer.
    async fn call(&self, op: impl FnOnce(crate::writer::Reply<()>) -> Op) -> Result<(), JournalError> {
        self.shared.serialize_held(self.run);
        self.shared.call(op).await?;
        self.confirmed.store(true, Ordering::Relaxed);
        Ok(())
    }

    /// The node at `key` has its result: if it waited for a signal, the run no longer waits.
    fn not_waiting(&self, key: &str) {
        let mut waiting = self.waiting.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(i) = waiting.iter().position(|p| p == key) {
            waiting.swap_remove(i);
            self.shared.hold(self.run, Op::Waited { run: self.run, path: key.to_owned() });
        }
    }

    /// Aborts the process if the test crash point is this moment.
    fn crash_point(&self, phase: Phase, key: &str) {
        if let Some(crash) = &self.shared.crash {
            if crash.due(phase, key) {
                crash.abort();
            }
        }
    }
}

impl RunLog for Handle {
    fn started(&self, path: &[String], at_ms: u64) {
        let key = path_key(path);
        let crash = self.shared.crash.as_ref().filter(|c| c.due(Phase::Started, &key));
        // Held by the writer, durable with the run's next awaited entry or within `HOLD`: a lost
        // start only costs a resumed wait the time it would credit.
        self.shared.hold(self.run, Op::Started { run: self.run, path: key, at: at_ms });
        if let Some(crash) = crash {
            // Deterministic for the tests: the start is committed, then the process dies.
            self.shared.flush_blocking();
            crash.abort();
        }
    }

    fn intent<'a>(&'a self, path: &'a [String], request: &'a Value) -> BoxFuture<'a, Result<(), JournalError>> {
        Box::pin(async move {
            let key = path_key(path);
            let request = to_json(&self.shared.file, request)?;
            let op = |reply| Op::Intent { run: self.run, path: key.clone(), request, at: now_ms(), reply };
            self.call(op).await?;
            self.crash_point(Phase::Intent, &key);
            Ok(())
        })
    }

    fn noted(&self, path: &[String], node: Finished) {
        let key = path_key(path);
        self.crash_point(Phase::Sent, &key);
        // Held in order, durable with the run's next awaited entry or within `HOLD`; nobody
        // waits. Made JSON only if it is written: by this run before its next awaited entry
        // (`Handle::call`), or by the writer when it writes it on its own (a flush, its age).
        self.entries.add(&key, node.record.detail.is_some());
        let node = Noting::Node(Box::new(node), self.entries.clone());
        self.shared.hold(self.run, Op::Noted { run: self.run, path: key.clone(), node, at: now_ms() });
        self.not_waiting(&key);
        if let Some(crash) = self.shared.crash.as_ref().filter(|c| c.due(Phase::Finished, &key)) {
            // Deterministic for the tests: the entry is committed, then the process dies.
            self.shared.flush_blocking();
            crash.abort();
        }
    }

    fn finished<'a>(&'a self, path: &'a [String], node: &'a Finished) -> BoxFuture<'a, Result<(), JournalError>> {
        Box::pin(async move {
            let key = path_key(path);
            self.crash_point(Phase::Sent, &key);
            let json = self.entries.finished_json(&self.shared.file, &key, node)?;
            let op = |reply| Op::Finished { run: self.run, path: key.clone(), node: json, at: now_ms(), reply };
            self.call(op).await?;
            // Named from now on: it is committed.
            self.entries.add(&key, node.record.detail.is_some());
            self.not_waiting(&key);
            self.crash_point(Phase::Finished, &key);
            Ok(())
        })
    }

    fn run_id(&self) -> Option<&str> {
        Some(&self.info.id)
    }

    fn wait_signal<'a>(
        &'a self,
        path: &'a [String],
        name: &'a str,
        until_ms: Option<u64>,
        said: &'a (dyn Fn() + Send + Sync),
    ) -> BoxFuture<'a, Result<Value, JournalError>> {
        Box::pin(async move {
            let key = path_key(path);
            let signal = name.to_owned();
            let op = |reply| Op::Wait { run: self.run, path: key.clone(), signal, until: until_ms, reply };
            self.call(op).await?;
            {
                let mut waiting = self.waiting.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                if !waiting.contains(&key) {
                    waiting.push(key);
                }
            }
            // Committed: a delivery from any process is accepted from now on.
            said();
            let waiter = self.shared.waiters.register(&self.info.id, name);
            loop {
                // Armed before looking, so that a delivery between the look and the wait wakes it.
                let mut woken = std::pin::pin!(waiter.notified());
                woken.as_mut().enable();
                if let Some(payload) = self.shared.delivered(&self.info.id, name)? {
                    return Ok(payload);
                }
                // A delivery by another process is seen at the next look.
                let _ = tokio::time::timeout(POLL, woken).await;
            }
        })
    }
}

impl RunHandle for Handle {
    fn info(&self) -> &RunInfo {
        &self.info
    }

    fn end<'a>(&'a self, status: StoredStatus, record: &'a RunRecord) -> BoxFuture<'a, Result<(), JournalError>> {
        Box::pin(async move {
            if status == StoredStatus::Running {
                return Err(JournalError::new(
                    "invalid",
                    "a run ends succeeded, failed, interrupted or needs_attention, not running",
                ));
            }
            let note = record.error.as_ref().map(|e| one_line(&format!("`{}` {}: {}", e.node, e.code, e.message)));
            // Made here, with the run's held results (which the record names), rather than by
            // the writer.
            self.shared.serialize_held(self.run);
            let record = self.entries.record_json(&self.shared.file, record)?;
            let run = self.run;
            let at = now_ms();
            // The outbox's notices of this end, written with it (journal/src/outbox.rs).
            let notices = crate::outbox::end_notices(&self.shared.subscriptions, &self.info.flow, status, at);
            // A run with a key whose held beginning is not known written yet awaits its end:
            // another process may have begun the key meanwhile (`KEY_TAKEN`), and the run must
            // hear it rather than report a result the journal will not have.
            let unconfirmed = self.info.key.is_some() && !self.confirmed.load(Ordering::Relaxed);
            if status.is_final() && !unconfirmed {
                // Held: written with the next batch, within `HOLD` (a finished run's dependents
                // are other runs, which read it through the writer); see `RunHandle::end`.
                self.shared.hold_end(run, Op::End { run, status, note, record, at, reply: None, notices });
                self.finished.store(true, Ordering::Relaxed);
                return Ok(());
            }
            if status.is_final() {
                // Awaited, but still without the nodes the record has: held with the end, and
                // the writer woken for it.
                let (reply, answer) = tokio::sync::oneshot::channel();
                self.shared.hold_end(run, Op::End { run, status, note, record, at, reply: Some(reply), notices });
                self.shared.send(Op::Flush { reply: None })?;
                answer.await.map_err(|_| crate::error::stopped(&self.shared.file))??;
                self.finished.store(true, Ordering::Relaxed);
                return Ok(());
            }
            self.shared.call(|reply| Op::End { run, status, note, record, at, reply: Some(reply), notices }).await
        })
    }
}

impl Drop for Handle {
    /// Lets the run go: another process (or handle) may take it now, unless it finished.
    fn drop(&mut self) {
        let run = self.run;
        if self.finished.load(Ordering::Relaxed) {
            self.shared.hold(run, Op::Let { run, finished: true });
        } else {
            // At once: a claim of the run in this process must find it free.
            let _ = self.shared.send(Op::Let { run, finished: false });
        }
    }
}

/// `text` on one line of at most 300 characters.
pub(crate) fn one_line(text: &str) -> String {
    let line: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    match line.char_indices().nth(300) {
        Some((cut, _)) => format!("{}…", &line[..cut]),
        None => line,
    }
}

/// How often a waiting node looks for a signal delivered by another process (one delivered
/// through this process's journal wakes it at once).
pub const POLL: std::time::Duration = std::time::Duration::from_secs(1);

#[cfg(test)]
mod tests {
    #[test]
    fn a_note_is_one_line() {
        assert_eq!(super::one_line("a\n  b\tc "), "a b c");
        let long = "é".repeat(400);
        assert_eq!(super::one_line(&long).chars().count(), 301);
    }
}
