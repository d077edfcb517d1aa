//! Duo Push transactions: how each resolves over time, as pure functions of the clock.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::model::PushBehaviour;

/// How a transaction ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The user approves.
    Approve,
    /// The user denies.
    Deny,
    /// The user ignores it.
    Timeout,
    /// The user reports fraud.
    Fraud,
    /// The user is in bypass: allowed at once.
    Bypass,
    /// The user is disabled or locked out: denied at once.
    Locked,
}

impl From<PushBehaviour> for Outcome {
    fn from(behaviour: PushBehaviour) -> Self {
        match behaviour {
            PushBehaviour::Approve => Outcome::Approve,
            PushBehaviour::Deny => Outcome::Deny,
            PushBehaviour::Timeout => Outcome::Timeout,
            PushBehaviour::Fraud => Outcome::Fraud,
        }
    }
}

/// One authentication transaction.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Push {
    pub txid: String,
    pub user_id: String,
    pub username: String,
    /// The phone the push went to (empty for bypass and locked users).
    pub device: String,
    pub outcome: Outcome,
    pub created_ms: i64,
    /// When the outcome becomes visible.
    pub resolve_at_ms: i64,
}

/// What `auth_status` reports at a given moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Not answered yet.
    Waiting,
    /// Answered (or expired) with this outcome.
    Done(Outcome),
}

impl Push {
    /// The status at `now_ms`: waiting before `resolve_at_ms`, the outcome from then on.
    pub fn status(&self, now_ms: i64) -> Status {
        if now_ms < self.resolve_at_ms { Status::Waiting } else { Status::Done(self.outcome) }
    }

    /// How long a long-poll at `now_ms` should wait before answering: until resolution, but
    /// never more than `bound_ms`. Zero means answer now.
    pub fn poll_wait_ms(&self, now_ms: i64, bound_ms: u64) -> u64 {
        let remaining = u64::try_from(self.resolve_at_ms.saturating_sub(now_ms)).unwrap_or(0);
        remaining.min(bound_ms)
    }
}

/// The `auth_status` (and synchronous `auth`) response for a status.
pub fn render(status: Status) -> Value {
    let (result, status, msg) = match status {
        Status::Waiting => ("waiting", "pushed", "Pushed a login request to your device..."),
        Status::Done(Outcome::Approve) => ("allow", "allow", "Success. Logging you in..."),
        Status::Done(Outcome::Deny) => ("deny", "deny", "Login request denied."),
        Status::Done(Outcome::Timeout) => ("deny", "timeout", "Login timed out."),
        Status::Done(Outcome::Fraud) => ("deny", "fraud", "Login request reported as fraudulent."),
        Status::Done(Outcome::Bypass) => ("allow", "bypass", "Allowing user in bypass mode."),
        Status::Done(Outcome::Locked) => ("deny", "deny", "Your account is disabled."),
    };
    json!({ "result": result, "status": status, "status_msg": msg })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn push(outcome: Outcome) -> Push {
        Push {
            txid: "t".into(),
            user_id: "DU".into(),
            username: "u".into(),
            device: "DP".into(),
            outcome,
            created_ms: 1_000,
            resolve_at_ms: 1_200,
        }
    }

    #[test]
    fn resolves_exactly_at_the_delay() {
        let p = push(Outcome::Fraud);
        assert_eq!(p.status(1_199), Status::Waiting);
        assert_eq!(p.status(1_200), Status::Done(Outcome::Fraud));
    }

    #[test]
    fn long_poll_waits_until_resolution_but_no_longer_than_the_bound() {
        let p = push(Outcome::Approve);
        assert_eq!(p.poll_wait_ms(1_000, 5_000), 200);
        assert_eq!(p.poll_wait_ms(1_000, 50), 50);
        assert_eq!(p.poll_wait_ms(2_000, 5_000), 0);
    }

    #[test]
    fn every_outcome_renders_as_duo_does() {
        let r = |o| render(Status::Done(o));
        assert_eq!(r(Outcome::Timeout), json!({"result":"deny","status":"timeout","status_msg":"Login timed out."}));
        assert_eq!(r(Outcome::Fraud)["status"], "fraud");
        assert_eq!(r(Outcome::Approve)["result"], "allow");
        assert_eq!(render(Status::Waiting)["result"], "waiting");
    }
}
