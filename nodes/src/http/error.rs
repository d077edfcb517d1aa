//! [`CallError`]: why a call gave no usable answer, with every attempt made so far.

use std::time::Duration;

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
        not_resent(method)
    )]
    Timeout { method: String, path: String, authority: String, timeout: Duration, attempts: Vec<Attempt> },
    /// The connection broke before a complete answer; the request may have been carried out.
    #[error(
        "the connection to `{authority}` broke before `{method} {path}` was answered: its outcome is unknown{}",
        lost_detail(method, attempts.len())
    )]
    Lost { method: String, path: String, authority: String, attempts: Vec<Attempt> },
    /// Still rate limited (HTTP 429) when the retry policy ran out.
    #[error(
        "still rate limited (HTTP 429) after {} attempts to `{method} {path}` (wait a while, or raise `retry.max_attempts`)",
        attempts.len()
    )]
    TooManyRequests { method: String, path: String, attempts: Vec<Attempt> },
    /// The answer was larger than we read.
    #[error("the answer from `{authority}` is larger than {limit} bytes; it was not read")]
    TooLarge { authority: String, limit: usize, attempts: Vec<Attempt> },
}

fn not_resent(method: &str) -> &'static str {
    if method.eq_ignore_ascii_case("GET") {
        ""
    } else {
        "; it was not sent again, because it may have been carried out (check Duo before running it again)"
    }
}

fn lost_detail(method: &str, attempts: usize) -> String {
    if method.eq_ignore_ascii_case("GET") {
        format!(" after {attempts} attempts")
    } else {
        not_resent(method).to_owned()
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
            | CallError::TooLarge { attempts, .. } => attempts,
        }
    }

    /// True when the request may have been carried out although no answer says so: a flow must
    /// not assume it was not (a user may have been created, a push sent).
    pub fn outcome_unknown(&self) -> bool {
        matches!(self, CallError::Timeout { .. } | CallError::Lost { .. })
    }
}
