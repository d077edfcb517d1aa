//! Duo Push transactions: how each resolves over (sim) time, as pure functions of the clock.
//!
//! A push ends when the user answers (after their delay, or when a test answers it through the
//! control API) or, unanswered, when it expires (about 60 s at Duo) as `timeout`.

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
    /// When the user answers with `outcome`; `i64::MAX` for a user who never does.
    pub resolve_at_ms: i64,
    /// When the push ends as `timeout` if unanswered. State files written before expiry existed
    /// read as never expiring, which keeps their meaning.
    #[serde(default = "never")]
    pub expires_at_ms: i64,
}

fn never() -> i64 {
    i64::MAX
}

/// Why a push could not be answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ended(pub Outcome);

/// What `auth_status` reports at a given moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Not answered yet.
    Waiting,
    /// Answered (or expired) with this outcome.
    Done(Outcome),
}

impl Push {
    /// The status at `now_ms`: the answer once given, if it comes before the expiry; `timeout`
    /// from the expiry on; waiting before either.
    pub fn status(&self, now_ms: i64) -> Status {
        if self.resolve_at_ms < self.expires_at_ms && now_ms >= self.resolve_at_ms {
            Status::Done(self.outcome)
        } else if now_ms >= self.expires_at_ms {
            Status::Done(Outcome::Timeout)
        } else {
            Status::Waiting
        }
    }

    /// The next sim time at which the status may change by itself.
    pub fn next_change_ms(&self) -> i64 {
        self.resolve_at_ms.min(self.expires_at_ms)
    }

    /// The user answers now (from the control API); refused once the push has ended.
    pub fn answer(&mut self, now_ms: i64, outcome: Outcome) -> Result<(), Ended> {
        if let Status::Done(ended) = self.status(now_ms) {
            return Err(Ended(ended));
        }
        self.outcome = outcome;
        self.resolve_at_ms = now_ms;
        Ok(())
    }
}

impl Outcome {
    /// An answer a user can give: `approve`, `deny` or `fraud`.
    pub fn parse_answer(text: &str) -> Option<Self> {
        match text {
            "approve" => Some(Outcome::Approve),
            "deny" => Some(Outcome::Deny),
            "fraud" => Some(Outcome::Fraud),
            _ => None,
        }
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
            expires_at_ms: 61_000,
        }
    }

    #[test]
    fn resolves_exactly_at_the_delay() {
        let p = push(Outcome::Fraud);
        assert_eq!(p.status(1_199), Status::Waiting);
        assert_eq!(p.status(1_200), Status::Done(Outcome::Fraud));
        assert_eq!(p.next_change_ms(), 1_200);
    }

    #[test]
    fn an_answer_at_or_after_the_expiry_is_a_timeout() {
        let mut p = push(Outcome::Approve);
        p.resolve_at_ms = 61_000;
        assert_eq!(p.status(60_999), Status::Waiting);
        assert_eq!(p.status(61_000), Status::Done(Outcome::Timeout));
        p.resolve_at_ms = i64::MAX;
        assert_eq!(p.next_change_ms(), 61_000);
        assert_eq!(p.status(10_000_000), Status::Done(Outcome::Timeout));
    }

    #[test]
    fn a_waiting_push_takes_an_answer_once() {
        let mut p = push(Outcome::Approve);
        p.resolve_at_ms = i64::MAX;
        assert_eq!(p.answer(5_000, Outcome::Deny), Ok(()));
        assert_eq!(p.status(5_000), Status::Done(Outcome::Deny));
        assert_eq!(p.answer(6_000, Outcome::Approve), Err(Ended(Outcome::Deny)));
        let mut late = push(Outcome::Approve);
        late.resolve_at_ms = i64::MAX;
        assert_eq!(late.answer(61_000, Outcome::Approve), Err(Ended(Outcome::Timeout)));
        assert_eq!(Outcome::parse_answer("fraud"), Some(Outcome::Fraud));
        assert_eq!(Outcome::parse_answer("timeout"), None);
    }

    #[test]
    fn a_state_file_without_expiry_keeps_its_meaning() {
        let old = r#"{"txid":"t","user_id":"DU","username":"u","device":"DP","outcome":"timeout","created_ms":0,"resolve_at_ms":1000}"#;
        let p: Push = serde_json::from_str(old).expect("old push");
        assert_eq!(p.status(999), Status::Waiting);
        assert_eq!(p.status(1_000), Status::Done(Outcome::Timeout));
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
