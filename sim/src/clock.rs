//! The simulator's own clock: wall time at start, plus real time elapsed times a scale, plus
//! manual advances. Every timed behaviour (push answers and expiry, long-polls, activation and
//! enrolment links, `created`, audit times) reads it, so a test can jump an hour in a millisecond.
//!
//! Signature dates are the exception: clients sign with their own wall clock, so the verifier
//! compares them with the real wall clock, not this one.

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::watch;
// tokio's instant, so that a test on tokio's paused clock moves this clock too: a client and
// the simulator in one runtime then see one time, and a minute-long hold takes no real time.
use tokio::time::Instant;

/// A scaled, advanceable clock in unix milliseconds.
#[derive(Debug)]
pub struct Clock {
    /// Sim time when `started` was taken.
    start_ms: i64,
    started: Instant,
    scale: f64,
    /// Manual advances, summed.
    advanced_ms: AtomicI64,
    /// Bumped on every advance and every event a waiter may care about (a push answered), so
    /// sleepers re-check at once instead of at their real deadline.
    wake: watch::Sender<u64>,
}

/// Unix milliseconds by the real wall clock.
pub fn wall_ms() -> i64 {
    let since = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    i64::try_from(since.as_millis()).unwrap_or(i64::MAX)
}

/// Sim time after `elapsed` real time at `scale`, from `start_ms`, plus `advanced_ms`.
pub fn sim_ms(start_ms: i64, elapsed: Duration, scale: f64, advanced_ms: i64) -> i64 {
    // f64 holds milliseconds exactly up to 2^53 ms (285,000 years); `as` saturates beyond.
    let scaled = (elapsed.as_secs_f64() * 1000.0 * scale) as i64;
    start_ms.saturating_add(scaled).saturating_add(advanced_ms)
}

/// Real time to sleep so that sim time moves from `now_ms` to `target_ms` at `scale`.
/// Rounded up so a sleeper never wakes a hair early and spins.
pub fn real_wait(now_ms: i64, target_ms: i64, scale: f64) -> Duration {
    if target_ms <= now_ms {
        return Duration::ZERO;
    }
    let sim = (target_ms - now_ms) as f64;
    let real_ms = (sim / scale).ceil();
    Duration::from_secs_f64((real_ms / 1000.0).min(1e9))
}

impl Clock {
    /// A clock reading `start_ms` now and running `scale` times faster than real time.
    /// A scale that is not a finite number above zero is taken as 1.
    pub fn new(start_ms: i64, scale: f64) -> Self {
        let scale = if scale.is_finite() && scale > 0.0 { scale } else { 1.0 };
        Self { start_ms, started: Instant::now(), scale, advanced_ms: AtomicI64::new(0), wake: watch::channel(0).0 }
    }

    /// Sim unix milliseconds now.
    pub fn now_ms(&self) -> i64 {
        sim_ms(self.start_ms, self.started.elapsed(), self.scale, self.advanced_ms.load(Ordering::Relaxed))
    }

    /// How many times faster than real time the clock runs.
    pub fn scale(&self) -> f64 {
        self.scale
    }

    /// Moves the clock forward and wakes every sleeper; returns the new time.
    pub fn advance(&self, by: Duration) -> i64 {
        let ms = i64::try_from(by.as_millis()).unwrap_or(i64::MAX);
        self.advanced_ms.fetch_add(ms, Ordering::Relaxed);
        self.wake();
        self.now_ms()
    }

    /// Wakes every sleeper without moving time (something they wait on may have changed).
    pub fn wake(&self) {
        self.wake.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// A handle to wait on. Take it *before* reading what you wait for, so a change made between
    /// the read and the wait still wakes you.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.wake.subscribe()
    }

    /// Sleeps until sim time reaches `target_ms`, or until woken through `woken` (taken with
    /// [`Clock::subscribe`]), whichever comes first. Callers loop and re-check their condition.
    pub async fn sleep_until(&self, target_ms: i64, woken: &mut watch::Receiver<u64>) {
        let wait = real_wait(self.now_ms(), target_ms, self.scale);
        if wait.is_zero() {
            return;
        }
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            // An error means the clock is gone, which ends the wait too.
            _ = woken.changed() => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sim_time_is_start_plus_scaled_elapsed_plus_advances() {
        assert_eq!(sim_ms(1_000, Duration::from_millis(250), 1.0, 0), 1_250);
        assert_eq!(sim_ms(1_000, Duration::from_millis(250), 100.0, 0), 26_000);
        assert_eq!(sim_ms(1_000, Duration::ZERO, 1.0, 3_600_000), 3_601_000);
        assert_eq!(sim_ms(i64::MAX - 1, Duration::from_secs(1), 1.0, 5), i64::MAX);
    }

    #[test]
    fn real_waits_shrink_with_the_scale_and_never_go_negative() {
        assert_eq!(real_wait(0, 60_000, 1.0), Duration::from_secs(60));
        assert_eq!(real_wait(0, 60_000, 1000.0), Duration::from_millis(60));
        assert_eq!(real_wait(0, 1, 1000.0), Duration::from_millis(1), "rounded up, never zero early");
        assert_eq!(real_wait(500, 100, 1.0), Duration::ZERO);
    }

    #[test]
    fn a_bad_scale_is_taken_as_one_and_advance_moves_the_reading() {
        let clock = Clock::new(10_000, f64::NAN);
        assert_eq!(clock.scale(), 1.0);
        let before = clock.now_ms();
        let after = clock.advance(Duration::from_secs(3600));
        assert!(after - before >= 3_600_000, "{before} {after}");
    }

    #[tokio::test]
    async fn an_advance_wakes_a_sleeper_at_once() {
        let clock = std::sync::Arc::new(Clock::new(0, 1.0));
        let mut woken = clock.subscribe();
        let sleeper = {
            let clock = std::sync::Arc::clone(&clock);
            tokio::spawn(async move { clock.sleep_until(3_600_000, &mut woken).await })
        };
        tokio::task::yield_now().await;
        clock.advance(Duration::from_secs(3600));
        tokio::time::timeout(Duration::from_secs(5), sleeper).await.expect("woken").expect("task");
        assert!(clock.now_ms() >= 3_600_000);
    }
}
