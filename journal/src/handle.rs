//! A run this process holds: it journals the run's nodes and ends it. The run is released when
//! the handle is dropped; a run dropped without [`RunHandle::end`] reads as interrupted.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use flowcat_engine::journal::{Finished, JournalError, RunHandle, RunInfo, RunLog, StoredStatus, path_key};
use flowcat_engine::run::{BoxFuture, RunRecord};
use serde_json::Value;

use crate::crash::Phase;
use crate::store::{Shared, now_ms};
use crate::writer::{Op, RunNo, to_json};

pub(crate) struct Handle {
    shared: Arc<Shared>,
    run: RunNo,
    info: Arc<RunInfo>,
    /// Ended succeeded or failed: its row names no holder any more.
    finished: AtomicBool,
}

impl std::fmt::Debug for Handle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Handle").field("id", &self.info.id).finish_non_exhaustive()
    }
}

impl Handle {
    /// A handle on `run`, which the writer marks held by this process (with its beginning or its
    /// claim).
    pub(crate) fn new(shared: Arc<Shared>, run: RunNo, info: Arc<RunInfo>) -> Handle {
        Handle { shared, run, info, finished: AtomicBool::new(false) }
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
            self.shared.call(op).await?;
            self.crash_point(Phase::Intent, &key);
            Ok(())
        })
    }

    fn noted(&self, path: &[String], node: Finished) {
        let key = path_key(path);
        self.crash_point(Phase::Sent, &key);
        // Held in order, durable with the run's next awaited entry or within `HOLD`; nobody
        // waits. Made JSON by the writer, only if it is written.
        let node = Box::new(node);
        self.shared.hold(self.run, Op::Noted { run: self.run, path: key.clone(), node, at: now_ms() });
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
            let node = to_json(&self.shared.file, node)?;
            let op = |reply| Op::Finished { run: self.run, path: key.clone(), node, at: now_ms(), reply };
            self.shared.call(op).await?;
            self.crash_point(Phase::Finished, &key);
            Ok(())
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
            let record = to_json(&self.shared.file, record)?;
            let run = self.run;
            if status.is_final() {
                // Held: written with the next batch, within `HOLD` (a finished run's dependents
                // are other runs, which read it through the writer); see `RunHandle::end`.
                self.shared.hold_end(run, Op::End { run, status, note, record, at: now_ms(), reply: None });
                self.finished.store(true, Ordering::Relaxed);
                return Ok(());
            }
            self.shared.call(|reply| Op::End { run, status, note, record, at: now_ms(), reply: Some(reply) }).await
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
fn one_line(text: &str) -> String {
    let line: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    match line.char_indices().nth(300) {
        Some((cut, _)) => format!("{}…", &line[..cut]),
        None => line,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_note_is_one_line() {
        assert_eq!(super::one_line("a\n  b\tc "), "a b c");
        let long = "é".repeat(400);
        assert_eq!(super::one_line(&long).chars().count(), 301);
    }
}
