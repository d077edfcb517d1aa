//! [`CallError`]: why a call gave no usable answer, with every attempt made so far.

use std::time::Duration;

use flowcat_engine::kind::Effect;

use super::record::Attempt;

/// Why a call failed. Messages hold no secret (they are built from scrubbed parts), and every
/// variant but `Refused` carries the attempts made, for the run record.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// Unsafe or malformed (scheme, host, path, header, body for the method): nothing was sent.
    #[error("refused before sending anything: {reason}")]
    Refused { reason: String },
    /// No connection could be made: nothing reached the server, so nothing was retried.
    #[error("could not connect to `{authority}`: {message} (check the integration's host and the network)")]
    Connect { authority: String, message: String, attempts: Vec<Attempt> },
    /// No complete answer in time; the request may have been carried out.
    #[error(
        "no answer from `{authority}` to `{method} {path}` within {} ms: its outcome is unknown{}",
        timeout.as_millis(),
        not_resent(*effect)
    )]
    Timeout {
        method: String,
        path: String,
        authority: String,
        timeout: Duration,
        effect: Effect,
        attempts: Vec<Attempt>,
    },
    /// The connection broke before a complete answer; the request may have been carried out.
    #[error(
        "the connection to `{authority}` broke before `{method} {path}` was answered: its outcome is unknown{}",
        lost_detail(*effect, attempts.len())
    )]
    Lost { method: String, path: String, authority: String, effect: Effect, attempts: Vec<Attempt> },
    /// Still rate limited (HTTP 429) when the retry policy ran out.
    #[error(
        "still rate limited (HTTP 429) after {} attempts to `{method} {path}` (wait a while, or raise `retry.max_attempts`)",
        attempts.len()
    )]
    TooManyRequests { method: String, path: String, attempts: Vec<Attempt> },
    /// The run's deadline came before the call could finish: before an attempt, during one
    /// (`unknown`: it may have been carried out), or before a back-off's end.
    #[error(
        "the run's deadline {when}: `{method} {path}` was stopped{}",
        if *unknown { "; its outcome is unknown" } else { "" }
    )]
    Deadline { method: String, path: String, when: String, unknown: bool, attempts: Vec<Attempt> },
    /// The answer was larger than we read.
    #[error("the answer from `{authority}` is larger than {limit} bytes; it was not read")]
    TooLarge { authority: String, limit: usize, attempts: Vec<Attempt> },
}

/// What an unknown outcome means for running the call again: nothing for a read, nothing more
/// for an idempotent call, a possible duplicate for a write.
fn not_resent(effect: Effect) -> &'static str {
    match effect {
        Effect::Write | Effect::Composite => {
            "; it was not sent again, because it may have been carried out (check Duo before running it again)"
        }
        Effect::Idempotent => "; sending it again changes nothing more",
        Effect::Read | Effect::Local => "",
    }
}

/// Reads and idempotent calls are retried after a broken connection: say how often they were.
fn lost_detail(effect: Effect, attempts: usize) -> String {
    match effect {
        Effect::Read | Effect::Idempotent | Effect::Local => format!(" after {attempts} attempts"),
        Effect::Write | Effect::Composite => not_resent(effect).to_owned(),
    }
}

impl CallError {
    /// The attempts made before the call failed (none when it was refused).
    pub fn attempts(&self) -> &[Attempt] {
        match self {
            CallError::Refused { .. } => &[],
            CallError::Connect { attempts, .. }
            | CallError::Timeout { attempts, .. }
            | CallError::Lost { attempts, .. }
            | CallError::TooManyRequests { attempts, .. }
            | CallError::Deadline { attempts, .. }
            | CallError::TooLarge { attempts, .. } => attempts,
        }
    }

    /// True when the request may have been carried out although no answer says so: a flow must
    /// not assume it was not (a user may have been created, a push sent).
    pub fn outcome_unknown(&self) -> bool {
        matches!(self, CallError::Timeout { .. } | CallError::Lost { .. } | CallError::Deadline { unknown: true, .. })
    }
}
