//! The client's rate limiter: one token bucket per integration, shared by every run and item of
//! the process, that halves its rate when the server answers 429 and wins it back gradually
//! (additive increase, multiplicative decrease: AIMD).
//!
//! [`Bucket`] is the arithmetic, pure: every method takes the time and returns how long to wait,
//! so its tests are timestamp tables. [`Limiter`] is the bucket under a lock, shared through the
//! integration (an `Arc` in [`crate::integrations::Integration`], cloned into every binding), and
//! waits on tokio's clock, so a test on tokio's paused clock runs it without sleeping.
//!
//! No queue is kept: a caller takes its token at once, possibly on credit (the bucket goes
//! negative), and sleeps until the bucket has paid it back; the state is a few numbers whatever
//! the number of waiters, and each waiter sleeps once (again only when a 429 slows everyone).

use std::fmt;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

/// `rate_limit:` of an integration: a sustained rate and a burst.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimit {
    /// Tokens added per second: the sustained request rate.
    pub per_second: f64,
    /// The most tokens the bucket holds: how many requests may go at once after a quiet spell.
    pub burst: u32,
}

impl RateLimit {
    /// The default of the Duo kinds on a Duo host: 180 requests a minute, 10 % under the lowest
    /// category Duo has published (paged reads, 200 a minute; writes and single reads 300), since
    /// one limiter sees every category together; a burst of 10 lets one flow's calls go at once.
    pub const DUO_DEFAULT: RateLimit = RateLimit { per_second: 3.0, burst: 10 };
}

/// What a 429 does to the rate: it is multiplied by this.
pub const DECREASE: f64 = 0.5;
/// The rate never falls below this share of the configured rate (four halvings).
pub const FLOOR: f64 = 1.0 / 16.0;
/// After a cut the rate grows back by this share of the configured rate per second: from half
/// the rate to all of it in 25 s.
pub const RECOVERY: f64 = 0.02;

/// The bucket's arithmetic. Times are tokio instants; nothing here reads a clock.
#[derive(Debug, Clone)]
pub struct Bucket {
    limit: RateLimit,
    /// Tokens in the bucket at `at`; below zero, the tokens promised to callers still waiting.
    tokens: f64,
    at: Instant,
    /// The last cut: when, and the rate it set (before `share`).
    cut: Option<(Instant, f64)>,
    /// This process's share of the limit (1: all of it): several replicas of `flowcat serve`
    /// sharing one Duo application divide its limit among them.
    share: f64,
}

impl Bucket {
    /// A full bucket at `now`.
    pub fn new(limit: RateLimit, now: Instant) -> Bucket {
        Bucket { limit, tokens: f64::from(limit.burst), at: now, cut: None, share: 1.0 }
    }

    pub fn limit(&self) -> RateLimit {
        self.limit
    }

    /// The rate at `now`, in tokens per second: the configured one, or after a cut the cut rate
    /// plus the recovery since, up to the configured one; times this process's share.
    pub fn rate(&self, now: Instant) -> f64 {
        self.unshared_rate(now) * self.share
    }

    /// The most tokens the bucket holds: the burst, times the share (at least one).
    fn cap(&self) -> f64 {
        (f64::from(self.limit.burst) * self.share).max(1.0)
    }

    /// Sets this process's share of the limit at `now` (`1 / replicas`, clamped to 1/64..1).
    pub fn set_share(&mut self, now: Instant, share: f64) {
        self.refill(now);
        self.share = share.clamp(1.0 / 64.0, 1.0);
        self.tokens = self.tokens.min(self.cap());
    }

    fn unshared_rate(&self, now: Instant) -> f64 {
        let full = self.limit.per_second;
        match self.cut {
            None => full,
            Some((at, rate)) => {
                let since = now.saturating_duration_since(at).as_secs_f64();
                (rate + full * RECOVERY * since).min(full)
            }
        }
    }

    /// Brings the tokens up to `now`. The rate grows linearly between cuts, so the tokens gained
    /// are the trapezoid's area, which never exceeds the true area (the rate is concave where it
    /// meets its cap): the bucket never gives more than it should.
    fn refill(&mut self, now: Instant) {
        if now <= self.at {
            return;
        }
        let secs = (now - self.at).as_secs_f64();
        let gained = (self.rate(self.at) + self.rate(now)) / 2.0 * secs;
        self.tokens = (self.tokens + gained).min(self.cap());
        self.at = now;
    }

    /// Takes a token at `now`; how long the caller must wait before using it (zero: at once).
    pub fn take(&mut self, now: Instant) -> Duration {
        self.refill(now);
        self.tokens -= 1.0;
        self.owed(now)
    }

    /// The time until the bucket is back at zero: what the last taker waits.
    fn owed(&self, now: Instant) -> Duration {
        if self.tokens >= 0.0 {
            return Duration::ZERO;
        }
        Duration::try_from_secs_f64(-self.tokens / self.rate(now)).unwrap_or(Duration::MAX)
    }

    /// Gives back a token taken by a caller that gave up waiting (its run ended or its deadline
    /// came), so that it does not slow the others.
    pub fn give_back(&mut self, now: Instant) {
        self.refill(now);
        self.tokens = (self.tokens + 1.0).min(self.cap());
    }

    /// The server answered 429 at `now` to a request sent at `sent`: cuts the rate and empties
    /// the bucket (the server's is empty), unless the request was sent before the last cut (its
    /// answer says nothing about the rate since, so a volley of 429s cuts once). Whether it cut.
    pub fn throttled(&mut self, now: Instant, sent: Instant) -> bool {
        if self.cut.is_some_and(|(at, _)| sent < at) {
            return false;
        }
        self.refill(now);
        let floor = self.limit.per_second * FLOOR;
        self.cut = Some((now, (self.unshared_rate(now) * DECREASE).max(floor)));
        self.tokens = self.tokens.min(0.0);
        true
    }
}

/// A [`Bucket`] shared by every run of an integration, waiting on tokio's clock.
pub struct Limiter {
    bucket: Mutex<Bucket>,
    /// Bumped on every cut: waiters stretch what is left of their wait by the cut.
    cuts: watch::Sender<u64>,
}

impl fmt::Debug for Limiter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let bucket = self.lock();
        f.debug_struct("Limiter")
            .field("limit", &bucket.limit)
            .field("rate", &bucket.rate(Instant::now()))
            .finish_non_exhaustive()
    }
}

/// The token would come only after the deadline: nothing was taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TooLate {
    /// How long the caller would have waited.
    pub wait: Duration,
}

impl Limiter {
    pub fn new(limit: RateLimit) -> Limiter {
        Limiter { bucket: Mutex::new(Bucket::new(limit, Instant::now())), cuts: watch::channel(0).0 }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Bucket> {
        // The bucket is a few numbers, whole after any panic: keep using it.
        self.bucket.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn limit(&self) -> RateLimit {
        self.lock().limit
    }

    /// The rate now, in requests per second.
    pub fn rate(&self) -> f64 {
        self.lock().rate(Instant::now())
    }

    /// Waits for a token; returns when it was granted (the request's send time for
    /// [`Limiter::throttled`]). When the token would come after `deadline`, returns at once with
    /// [`TooLate`] and takes nothing. Dropping the future while it waits gives the token back.
    pub async fn acquire(&self, deadline: Option<Instant>) -> Result<Instant, TooLate> {
        // Subscribed before taking, so a cut between the two still reaches this waiter.
        let mut cuts = self.cuts.subscribe();
        let now = Instant::now();
        let (wait, mut rate) = {
            let mut bucket = self.lock();
            (bucket.take(now), bucket.rate(now))
        };
        let mut until = now + wait;
        let pending = Pending { limiter: self };
        loop {
            if until <= Instant::now() {
                break;
            }
            if deadline.is_some_and(|d| until > d) {
                drop(pending);
                return Err(TooLate { wait: until.saturating_duration_since(Instant::now()) });
            }
            match tokio::time::timeout_at(until, cuts.changed()).await {
                // A cut: what is owed ahead of this waiter now comes in at the new rate.
                Ok(Ok(())) => {
                    let now = Instant::now();
                    let new_rate = self.rate();
                    let left = until.saturating_duration_since(now).mul_f64(rate / new_rate);
                    (until, rate) = (now + left, new_rate);
                }
                // The time came (or the limiter is going away, which it cannot while borrowed).
                Ok(Err(_)) | Err(_) => break,
            }
        }
        std::mem::forget(pending);
        Ok(Instant::now())
    }

    /// [`Limiter::acquire`], holding the token until a request spends it: a token taken while
    /// the caller may still decide not to send (a run stopped meanwhile) goes back if dropped.
    pub async fn token(self: &std::sync::Arc<Self>, deadline: Option<Instant>) -> Result<Token, TooLate> {
        let at = self.acquire(deadline).await?;
        Ok(Token { limiter: std::sync::Arc::clone(self), at, live: true })
    }

    /// The server answered 429 to a request sent at `sent`: every run of the integration slows
    /// down (see [`Bucket::throttled`]).
    pub fn throttled(&self, sent: Instant) {
        let cut = self.lock().throttled(Instant::now(), sent);
        if cut {
            self.cuts.send_modify(|n| *n = n.wrapping_add(1));
        }
    }

    /// Another process sharing the Duo application was answered 429: this one slows down too,
    /// as if its own request sent now had been.
    pub fn throttled_elsewhere(&self) {
        self.throttled(Instant::now());
    }

    /// How many times the rate was cut so far (a service tells the other replicas of each new
    /// cut).
    pub fn cuts(&self) -> u64 {
        *self.cuts.borrow()
    }

    /// Sets this process's share of the limit: `1 / replicas` when several processes share the
    /// application (Duo counts its limit per application, not per machine).
    pub fn set_share(&self, share: f64) {
        self.lock().set_share(Instant::now(), share);
    }
}

/// A token granted ahead of its request ([`Limiter::token`]): spent by the request it was taken
/// for, or given back to the bucket if it is dropped unspent (the run stopped before sending).
#[derive(Debug)]
pub struct Token {
    limiter: std::sync::Arc<Limiter>,
    at: Instant,
    live: bool,
}

impl Token {
    /// Spends the token: when it was granted, the request's send time for [`Limiter::throttled`].
    pub fn spend(mut self) -> Instant {
        self.live = false;
        self.at
    }

    /// The limiter it came from.
    pub fn limiter(&self) -> &Limiter {
        &self.limiter
    }
}

impl Drop for Token {
    fn drop(&mut self) {
        if self.live {
            self.limiter.lock().give_back(Instant::now());
        }
    }
}

/// A token taken and not used yet: given back if the waiter is dropped.
struct Pending<'a> {
    limiter: &'a Limiter,
}

impl Drop for Pending<'_> {
    fn drop(&mut self) {
        self.limiter.lock().give_back(Instant::now());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn bucket(per_second: f64, burst: u32) -> (Bucket, Instant) {
        let t0 = Instant::now();
        (Bucket::new(RateLimit { per_second, burst }, t0), t0)
    }

    #[test]
    fn a_full_bucket_gives_its_burst_at_once_then_one_token_per_interval() {
        let (mut b, t0) = bucket(10.0, 3);
        let waits: Vec<Duration> = (0..6).map(|_| b.take(t0)).collect();
        assert_eq!(waits, [ms(0), ms(0), ms(0), ms(100), ms(200), ms(300)]);
    }

    #[test]
    fn tokens_come_back_at_the_rate_and_never_above_the_burst() {
        let (mut b, t0) = bucket(10.0, 3);
        for _ in 0..3 {
            b.take(t0);
        }
        // 250 ms later two and a half tokens came back: two go at once, the third waits 50 ms.
        let t = t0 + ms(250);
        assert_eq!([b.take(t), b.take(t), b.take(t)], [ms(0), ms(0), ms(50)]);
        // An hour idle fills it to its burst, no more.
        let t = t + Duration::from_secs(3600);
        assert_eq!([b.take(t), b.take(t), b.take(t), b.take(t)], [ms(0), ms(0), ms(0), ms(100)]);
    }

    #[test]
    fn a_share_divides_the_rate_and_the_burst_among_replicas() {
        let (mut b, t0) = bucket(12.0, 6);
        // Three replicas: 4 a second each, a burst of 2.
        b.set_share(t0, 1.0 / 3.0);
        let waits: Vec<Duration> = (0..4).map(|_| b.take(t0)).collect();
        assert_eq!(waits, [ms(0), ms(0), ms(250), ms(500)]);
        assert!((b.rate(t0) - 4.0).abs() < 1e-9);
        // A 429 halves this replica's share of the rate, as it would the whole.
        assert!(b.throttled(t0, t0));
        assert!((b.rate(t0) - 2.0).abs() < 1e-9);
        // Alone again: the whole rate (once recovered), never more than the configured one.
        let later = t0 + Duration::from_secs(3600);
        b.set_share(later, 1.0);
        assert!((b.rate(later) - 12.0).abs() < 1e-9);
        b.set_share(later, 7.0);
        assert!((b.rate(later) - 12.0).abs() < 1e-9);
    }

    #[test]
    fn a_429_halves_the_rate_and_empties_the_bucket() {
        let (mut b, t0) = bucket(10.0, 5);
        assert!(b.throttled(t0, t0));
        assert_eq!(b.rate(t0), 5.0);
        // Empty: the next token is 200 ms away at the halved rate.
        assert_eq!(b.take(t0), ms(200));
    }

    #[test]
    fn a_volley_of_429s_to_requests_sent_before_the_cut_cuts_once() {
        let (mut b, t0) = bucket(10.0, 5);
        let sent = t0;
        assert!(b.throttled(t0 + ms(10), sent));
        assert!(!b.throttled(t0 + ms(20), sent));
        assert!(!b.throttled(t0 + ms(30), sent + ms(5)));
        assert_eq!(b.rate(t0 + ms(30)), 5.0 + 10.0 * RECOVERY * 0.02);
        // A request sent after the cut and still refused cuts again.
        assert!(b.throttled(t0 + ms(40), t0 + ms(15)));
        assert!(b.rate(t0 + ms(40)) < 2.6);
    }

    #[test]
    fn the_rate_never_falls_below_its_floor() {
        let (mut b, t0) = bucket(16.0, 5);
        for i in 0..20u64 {
            b.throttled(t0 + ms(i), t0 + ms(i));
        }
        assert_eq!(b.rate(t0 + ms(19)), 1.0);
    }

    #[test]
    fn recovery_is_additive_and_stops_at_the_configured_rate() {
        let (mut b, t0) = bucket(10.0, 5);
        b.throttled(t0, t0);
        let table = [(0, 5.0), (5, 6.0), (10, 7.0), (20, 9.0), (25, 10.0), (100, 10.0)];
        for (secs, rate) in table {
            let got = b.rate(t0 + Duration::from_secs(secs));
            assert!((got - rate).abs() < 1e-9, "{secs} s: {got} != {rate}");
        }
    }

    #[test]
    fn tokens_gained_while_recovering_never_exceed_the_rate_integral() {
        let (mut b, t0) = bucket(10.0, 1000);
        b.throttled(t0, t0);
        // From 5/s growing 0.2/s for 10 s: 5·10 + 0.2·10²/2 = 60 tokens.
        b.refill(t0 + Duration::from_secs(10));
        assert!((b.tokens - 60.0).abs() < 1e-9, "{}", b.tokens);
        // Across the cap (reached at 25 s): the trapezoid gives at most the true area.
        let (mut c, t0) = bucket(10.0, 1000);
        c.throttled(t0, t0);
        c.refill(t0 + Duration::from_secs(40));
        let true_area = (5.0 + 10.0) / 2.0 * 25.0 + 10.0 * 15.0;
        assert!(c.tokens <= true_area, "{} > {true_area}", c.tokens);
    }

    #[test]
    fn a_token_given_back_shortens_the_next_wait() {
        let (mut b, t0) = bucket(10.0, 1);
        assert_eq!(b.take(t0), ms(0));
        assert_eq!(b.take(t0), ms(100));
        b.give_back(t0);
        assert_eq!(b.take(t0), ms(100));
    }

    #[tokio::test(start_paused = true)]
    async fn waiters_go_at_the_rate_on_the_paused_clock() {
        let limiter = std::sync::Arc::new(Limiter::new(RateLimit { per_second: 10.0, burst: 2 }));
        let t0 = Instant::now();
        let mut tasks = Vec::new();
        for _ in 0..6 {
            let limiter = std::sync::Arc::clone(&limiter);
            tasks.push(tokio::spawn(async move { limiter.acquire(None).await.expect("no deadline") - t0 }));
        }
        let mut at = Vec::new();
        for t in tasks {
            at.push(t.await.expect("task"));
        }
        at.sort();
        assert_eq!(at, [ms(0), ms(0), ms(100), ms(200), ms(300), ms(400)]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_cut_stretches_the_waits_already_promised() {
        let limiter = std::sync::Arc::new(Limiter::new(RateLimit { per_second: 10.0, burst: 1 }));
        let t0 = Instant::now();
        limiter.acquire(None).await.expect("at once");
        let waiter = {
            let limiter = std::sync::Arc::clone(&limiter);
            // Promised at 100 ms, before the cut.
            tokio::spawn(async move { limiter.acquire(None).await.expect("no deadline") - t0 })
        };
        tokio::time::sleep(ms(50)).await;
        limiter.throttled(t0);
        // 50 ms were left at 10/s: 100 ms at 5/s.
        assert_eq!(waiter.await.expect("task"), ms(150));
    }

    #[tokio::test(start_paused = true)]
    async fn a_token_past_the_deadline_is_refused_at_once_and_not_taken() {
        let limiter = Limiter::new(RateLimit { per_second: 1.0, burst: 1 });
        let t0 = Instant::now();
        limiter.acquire(None).await.expect("at once");
        let err = limiter.acquire(Some(t0 + ms(500))).await.expect_err("too late");
        assert_eq!(err, TooLate { wait: ms(1000) });
        assert_eq!(Instant::now(), t0, "refused without waiting");
        // Nothing was taken: the next token is still one second away, not two.
        assert_eq!(limiter.acquire(None).await.expect("no deadline") - t0, ms(1000));
    }

    #[tokio::test(start_paused = true)]
    async fn a_waiter_dropped_gives_its_token_back() {
        let limiter = Limiter::new(RateLimit { per_second: 1.0, burst: 1 });
        let t0 = Instant::now();
        limiter.acquire(None).await.expect("at once");
        let gave_up = tokio::time::timeout(ms(10), limiter.acquire(None)).await;
        assert!(gave_up.is_err(), "still waiting when dropped");
        assert_eq!(limiter.acquire(None).await.expect("no deadline") - t0, ms(1000));
    }
}
