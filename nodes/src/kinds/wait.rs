//! How long a node may still wait: the run's deadline, and the time a resumed node already
//! spent in an earlier process. Its decisions are pure functions of durations, tested without
//! sleeping; the caller sleeps.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use flowcat_engine::run::NodeCx;
use tokio::time::Instant;

/// The time a node runs within.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Timing {
    /// When the whole run must have ended.
    pub deadline: Option<Instant>,
    /// Time the node already spent before this process took it up (a resumed wait): counted
    /// against a poll's bound.
    pub spent: Duration,
}

impl Timing {
    /// The node's timing as its context gives it: the run's deadline, and the time since the
    /// node first started when that was in an earlier process.
    pub fn of(cx: &NodeCx<'_>) -> Timing {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
        let spent = cx.first_started_at().map_or(Duration::ZERO, |ms| now.saturating_sub(Duration::from_millis(ms)));
        Timing { deadline: cx.deadline(), spent }
    }

    /// The time left before the deadline, from `now` (zero once it passed).
    pub fn left(&self, now: Instant) -> Option<Duration> {
        self.deadline.map(|d| d.saturating_duration_since(now))
    }
}

/// What a poll does after an attempt whose condition did not hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Next {
    /// Pause for the interval, then poll again.
    Wait,
    /// The pause would pass the poll's bound: give up (`poll_timeout`).
    Bound,
    /// The pause would pass the run's deadline: give up (`deadline`).
    Deadline,
}

/// After `elapsed` of polling (the time spent in earlier processes included), with `left` until
/// the run's deadline: pause `interval` again, or stop. The poll's own bound wins when both
/// would be passed: it is the flow's documented outcome, and it is reached without waiting.
pub fn after_poll(elapsed: Duration, interval: Duration, bound: Duration, left: Option<Duration>) -> Next {
    if elapsed.saturating_add(interval) > bound {
        Next::Bound
    } else if left.is_some_and(|left| interval > left) {
        Next::Deadline
    } else {
        Next::Wait
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: fn(u64) -> Duration = Duration::from_secs;

    #[test]
    fn a_poll_waits_while_both_its_bound_and_the_deadline_allow() {
        // elapsed, interval, bound, left → next
        let table = [
            (S(0), S(3), S(600), None, Next::Wait),
            (S(597), S(3), S(600), None, Next::Wait),
            (S(598), S(3), S(600), None, Next::Bound),
            // A resumed wait: 9 min 59 s spent before the restart, then one more poll.
            (S(599), S(1), S(600), None, Next::Wait),
            (S(600), S(1), S(600), None, Next::Bound),
            (S(10), S(3), S(600), Some(S(3)), Next::Wait),
            (S(10), S(3), S(600), Some(S(2)), Next::Deadline),
            (S(10), S(3), S(600), Some(Duration::ZERO), Next::Deadline),
            // Both passed: the bound is the flow's outcome.
            (S(599), S(3), S(600), Some(S(1)), Next::Bound),
            (Duration::MAX, S(3), S(600), None, Next::Bound),
        ];
        for (elapsed, interval, bound, left, next) in table {
            assert_eq!(after_poll(elapsed, interval, bound, left), next, "{elapsed:?} {interval:?} {bound:?} {left:?}");
        }
    }

    #[test]
    fn time_left_is_zero_once_the_deadline_passed() {
        let now = Instant::now();
        let timing = Timing { deadline: Some(now + S(5)), spent: Duration::ZERO };
        assert_eq!(timing.left(now), Some(S(5)));
        assert_eq!(timing.left(now + S(7)), Some(Duration::ZERO));
        assert_eq!(Timing::default().left(now), None);
    }
}
