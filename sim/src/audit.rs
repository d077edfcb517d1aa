//! The audit log: one entry per state change, so tests assert exactly which effects happened.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// One state change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// Increases by one per entry and is never reused, even after the log is cleared.
    pub seq: u64,
    /// Unix milliseconds.
    pub time: i64,
    /// The request's method.
    pub method: String,
    /// The route pattern, e.g. `POST /admin/v1/users/{user_id}/phones`.
    pub route: String,
    /// The integration key that made the change.
    pub ikey: String,
    /// A short machine-readable kind, e.g. `user.create`.
    pub change: String,
    /// What changed (ids, usernames, numbers; never secrets).
    pub detail: Value,
}

/// The log itself, saved with the state.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AuditLog {
    entries: Vec<AuditEntry>,
    next_seq: u64,
}

/// Who made a change and through which route; everything an entry needs besides the change.
#[derive(Debug, Clone, Copy)]
pub struct Origin<'a> {
    pub time: i64,
    pub method: &'a str,
    pub route: &'a str,
    pub ikey: &'a str,
}

impl AuditLog {
    /// Appends an entry and returns its sequence number.
    pub fn record(&mut self, origin: &Origin<'_>, change: &str, detail: Value) -> u64 {
        self.next_seq += 1;
        self.entries.push(AuditEntry {
            seq: self.next_seq,
            time: origin.time,
            method: origin.method.to_string(),
            route: origin.route.to_string(),
            ikey: origin.ikey.to_string(),
            change: change.to_string(),
            detail,
        });
        self.next_seq
    }

    /// Every entry, oldest first.
    pub fn entries(&self) -> &[AuditEntry] {
        &self.entries
    }

    /// Forgets the entries but keeps counting, so a `seq` never names two changes.
    pub fn clear(&mut self) {
        self.entries.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seq_keeps_counting_after_clear() {
        let mut log = AuditLog::default();
        let origin = Origin { time: 1, method: "POST", route: "POST /admin/v1/users", ikey: "DI" };
        assert_eq!(log.record(&origin, "user.create", Value::Null), 1);
        log.clear();
        assert_eq!(log.record(&origin, "user.create", Value::Null), 2);
        assert_eq!(log.entries().len(), 1);
    }
}
