//! The retry schedule of Duo's official clients, as pure functions: how long to wait after a
//! failed attempt, whether a failure may be retried at all, and how to read `Retry-After`.
//!
//! Nothing here sleeps or draws random numbers: the caller passes the jitter in, so the schedule is
//! tested exactly and the engine decides how to wait.

use std::time::{Duration, SystemTime};

use flowcat_engine::kind::Effect;

/// When and how often to retry a rate-limited call. The defaults are the official clients':
/// wait 1 s, doubling up to 32 s, each plus up to 1 s of jitter, at most 7 attempts in all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in total, the first included. `1` never retries.
    pub max_attempts: u32,
    /// The wait after the first failed attempt.
    pub initial: Duration,
    /// The longest wait the doubling reaches (a server's `Retry-After` may ask for longer).
    pub max: Duration,
    /// The most jitter added to a computed wait.
    pub jitter: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 7,
            initial: Duration::from_secs(1),
            max: Duration::from_secs(32),
            jitter: Duration::from_secs(1),
        }
    }
}

/// How long to wait before the next attempt, or `None` to give up.
///
/// - `attempt`: how many attempts have been made, the failed one included (1 after the first);
///   `None` once it reaches `policy.max_attempts`.
/// - `retry_after`: the server's `Retry-After` / `X-Retry-After`, already parsed (see
///   [`retry_after`]). When present it wins: the server knows when its window reopens, so the wait
///   is exactly that, neither capped nor jittered.
/// - `jitter_unit`: a random number in `[0, 1]` (out-of-range values are clamped, NaN counts as 0);
///   the wait is `min(initial × 2^(attempt−1), max) + jitter × jitter_unit`.
pub fn delay(policy: &RetryPolicy, attempt: u32, retry_after: Option<Duration>, jitter_unit: f64) -> Option<Duration> {
    if attempt >= policy.max_attempts {
        return None;
    }
    if let Some(wait) = retry_after {
        return Some(wait);
    }
    let doublings = attempt.saturating_sub(1);
    let factor = 2u32.checked_pow(doublings).unwrap_or(u32::MAX);
    let base = policy.initial.saturating_mul(factor).min(policy.max);
    let unit = if jitter_unit.is_nan() { 0.0 } else { jitter_unit.clamp(0.0, 1.0) };
    Some(base.saturating_add(policy.jitter.mul_f64(unit)))
}

/// How an attempt failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// The server answered with this HTTP status.
    Status(u16),
    /// The connection broke or timed out after the request may have been sent: its outcome is
    /// unknown.
    ConnectionLost,
}

/// Whether a failed call may be sent again, by what the call does (its [`Effect`], not its
/// method: Duo's `POST /auth/v2/preauth` only reads, a `POST` that sets a status may be declared
/// idempotent).
///
/// - 429 always: the server refused the request without acting on it.
/// - 5xx and lost connections only for reads and idempotent calls: the request may have been
///   carried out, and a repeated write can create a duplicate (40003) or push a second prompt to
///   a user's phone, while a repeated idempotent call changes nothing more (a repeated DELETE
///   finds the thing gone: Duo answers `""` for an association already removed and 40401 for a
///   phone or user already deleted).
/// - Anything else never: a 4xx will fail the same way again.
pub fn may_retry(effect: Effect, failure: Failure) -> bool {
    let repeatable = matches!(effect, Effect::Read | Effect::Idempotent | Effect::Local);
    match failure {
        Failure::Status(429) => true,
        Failure::Status(status) => repeatable && (500..=599).contains(&status),
        Failure::ConnectionLost => repeatable,
    }
}

/// The wait a 429 asks for: `Retry-After` if it parses, else `X-Retry-After` (Duo's C client
/// honours both). Each is either delay seconds (`120`, also `1.5`) or an HTTP date (any of the
/// three RFC 9110 forms), which is counted from `now`; a date in the past means no wait.
pub fn retry_after(retry_after: Option<&str>, x_retry_after: Option<&str>, now: SystemTime) -> Option<Duration> {
    retry_after
        .and_then(|value| parse_retry_after(value, now))
        .or_else(|| x_retry_after.and_then(|value| parse_retry_after(value, now)))
}

/// One `Retry-After` value: delay seconds or an HTTP date. `None` when it is neither.
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if value.is_empty() {
        return None;
    }
    if value.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        let seconds: f64 = value.parse().ok()?;
        // `try_from_secs_f64` refuses what `from_secs_f64` would panic on (huge values).
        return Duration::try_from_secs_f64(seconds).ok();
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: fn(u64) -> Duration = Duration::from_secs;

    #[test]
    fn default_schedule_doubles_to_32_then_gives_up_at_attempt_7() {
        let policy = RetryPolicy::default();
        let waits: Vec<Option<Duration>> = (1..=8).map(|attempt| delay(&policy, attempt, None, 0.0)).collect();
        assert_eq!(waits, [Some(S(1)), Some(S(2)), Some(S(4)), Some(S(8)), Some(S(16)), Some(S(32)), None, None]);
    }

    #[test]
    fn doubling_is_capped_at_max() {
        let policy = RetryPolicy { max_attempts: 100, ..RetryPolicy::default() };
        assert_eq!(delay(&policy, 7, None, 0.0), Some(S(32)));
        assert_eq!(delay(&policy, 40, None, 0.0), Some(S(32)));
        assert_eq!(delay(&policy, 99, None, 0.0), Some(S(32)));
        assert_eq!(delay(&policy, 100, None, 0.0), None);
    }

    #[test]
    fn jitter_stays_within_bounds() {
        let policy = RetryPolicy::default();
        assert_eq!(delay(&policy, 1, None, 1.0), Some(S(2)));
        assert_eq!(delay(&policy, 3, None, 0.5), Some(Duration::from_millis(4500)));
        for unit in [0.0, 0.25, 0.999, 1.0, -3.0, 7.0, f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            let wait = delay(&policy, 6, None, unit).expect("attempt 6 retries");
            assert!(wait >= S(32) && wait <= S(33), "{unit}: {wait:?}");
        }
        assert_eq!(delay(&policy, 2, None, f64::NAN), Some(S(2)));
    }

    #[test]
    fn retry_after_wins_but_not_over_max_attempts() {
        let policy = RetryPolicy::default();
        assert_eq!(delay(&policy, 1, Some(S(90)), 0.9), Some(S(90)));
        assert_eq!(delay(&policy, 5, Some(Duration::ZERO), 0.9), Some(Duration::ZERO));
        assert_eq!(delay(&policy, 7, Some(S(1)), 0.0), None);
    }

    #[test]
    fn custom_policy() {
        let policy = RetryPolicy {
            max_attempts: 3,
            initial: Duration::from_millis(100),
            max: Duration::from_millis(150),
            jitter: Duration::ZERO,
        };
        let waits: Vec<_> = (1..=3).map(|a| delay(&policy, a, None, 1.0)).collect();
        assert_eq!(waits, [Some(Duration::from_millis(100)), Some(Duration::from_millis(150)), None]);
        let never = RetryPolicy { max_attempts: 1, ..policy };
        assert_eq!(delay(&never, 1, Some(S(1)), 0.0), None);
    }

    #[test]
    fn retry_after_header_forms() {
        let now = SystemTime::UNIX_EPOCH + S(784_111_777); // Sun, 06 Nov 1994 08:49:37 GMT
        assert_eq!(retry_after(Some("120"), None, now), Some(S(120)));
        assert_eq!(retry_after(Some(" 3 "), Some("60"), now), Some(S(3)));
        assert_eq!(retry_after(None, Some("60"), now), Some(S(60)));
        assert_eq!(retry_after(Some("soon"), Some("2.5"), now), Some(Duration::from_millis(2500)));
        assert_eq!(retry_after(Some("Sun, 06 Nov 1994 08:50:07 GMT"), None, now), Some(S(30)));
        assert_eq!(retry_after(Some("Sunday, 06-Nov-94 08:50:37 GMT"), None, now), Some(S(60)));
        assert_eq!(retry_after(Some("Sun Nov  6 08:49:47 1994"), None, now), Some(S(10)));
        assert_eq!(retry_after(Some("Sat, 05 Nov 1994 08:49:37 GMT"), None, now), Some(Duration::ZERO));
        assert_eq!(retry_after(None, None, now), None);
        assert_eq!(retry_after(Some(""), Some("-5"), now), None);
        assert_eq!(retry_after(Some("1e999"), None, now), None);
        assert_eq!(retry_after(Some("99999999999999999999999999"), None, now), None);
        assert_eq!(retry_after(Some("1.2.3"), None, now), None);
    }

    #[test]
    fn a_write_is_retried_only_after_a_429() {
        // Also when it travels as a GET: what decides is what it does.
        for effect in [Effect::Write, Effect::Composite] {
            assert!(may_retry(effect, Failure::Status(429)), "{effect:?}");
            assert!(!may_retry(effect, Failure::Status(500)), "{effect:?}");
            assert!(!may_retry(effect, Failure::Status(503)), "{effect:?}");
            assert!(!may_retry(effect, Failure::ConnectionLost), "{effect:?}");
        }
    }

    #[test]
    fn reads_and_idempotent_calls_also_retry_5xx_and_lost_connections() {
        for effect in [Effect::Read, Effect::Idempotent] {
            assert!(may_retry(effect, Failure::Status(429)), "{effect:?}");
            assert!(may_retry(effect, Failure::Status(500)), "{effect:?}");
            assert!(may_retry(effect, Failure::Status(599)), "{effect:?}");
            assert!(may_retry(effect, Failure::ConnectionLost), "{effect:?}");
            assert!(!may_retry(effect, Failure::Status(400)), "{effect:?}");
            assert!(!may_retry(effect, Failure::Status(401)), "{effect:?}");
            assert!(!may_retry(effect, Failure::Status(404)), "{effect:?}");
            assert!(!may_retry(effect, Failure::Status(600)), "{effect:?}");
        }
    }
}
