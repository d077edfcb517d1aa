//! The run's secret values kept out of what it records: the journal, through [`Redacting`], and
//! the record [`Runner::run`](super::Runner::run) answers, through [`all_but_outputs`].

use std::sync::Arc;

use serde_json::Value;

use crate::journal::{Finished, JournalError, RunLog};
use crate::node::{BoxFuture, RunRecord, Secrets};

/// A run's journal seen through its secrets: every entry is redacted before the store gets it.
/// Without secrets (nearly every run) entries pass through untouched, uncopied.
pub(super) struct Redacting {
    pub inner: Arc<dyn RunLog>,
    pub secrets: Secrets,
}

impl Redacting {
    /// `node` as the store may keep it. One that does not read back redacted is replaced by a
    /// note saying so rather than kept whole.
    fn finished(&self, node: &Finished) -> Option<Finished> {
        if self.secrets.is_empty() {
            return None;
        }
        Some(self.secrets.redacted(node).unwrap_or_else(|| {
            let mut bare = node.clone();
            bare.record.result = None;
            bare.record.detail = None;
            bare
        }))
    }
}

impl RunLog for Redacting {
    fn started(&self, path: &[String], at_ms: u64) {
        self.inner.started(path, at_ms);
    }

    fn intent<'a>(&'a self, path: &'a [String], request: &'a Value) -> BoxFuture<'a, Result<(), JournalError>> {
        Box::pin(async move {
            if self.secrets.is_empty() {
                return self.inner.intent(path, request).await;
            }
            let mut request = request.clone();
            self.secrets.value(&mut request);
            self.inner.intent(path, &request).await
        })
    }

    fn finished<'a>(&'a self, path: &'a [String], node: &'a Finished) -> BoxFuture<'a, Result<(), JournalError>> {
        Box::pin(async move {
            match self.finished(node) {
                None => self.inner.finished(path, node).await,
                Some(redacted) => self.inner.finished(path, &redacted).await,
            }
        })
    }

    fn noted(&self, path: &[String], node: Finished) {
        let node = self.finished(&node).unwrap_or(node);
        self.inner.noted(path, node);
    }

    fn run_id(&self) -> Option<&str> {
        self.inner.run_id()
    }

    fn wait_signal<'a>(
        &'a self,
        path: &'a [String],
        name: &'a str,
        until_ms: Option<u64>,
        said: &'a (dyn Fn() + Send + Sync),
    ) -> BoxFuture<'a, Result<Value, JournalError>> {
        self.inner.wait_signal(path, name, until_ms, said)
    }
}

/// `record` with its secrets redacted everywhere but its `outputs`, which are the caller's.
pub(super) fn all_but_outputs(secrets: &Secrets, mut record: RunRecord) -> RunRecord {
    if secrets.is_empty() {
        return record;
    }
    let outputs = std::mem::take(&mut record.outputs);
    let mut redacted = secrets.redacted(&record).unwrap_or_else(|| {
        let mut bare = record.clone();
        bare.nodes.clear();
        bare
    });
    redacted.outputs = outputs;
    redacted
}
