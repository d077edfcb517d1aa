//! Duo's rate limiting, as the simulator models it: one token bucket per integration key, on the
//! simulator's clock, answering 429 (code 42901) when it is empty.
//!
//! Duo publishes its limits only as approximate requests per minute and says nothing of how it
//! counts, so every choice here is the stricter one (docs/sim.md lists them): one bucket for all
//! of an integration's routes, a burst of one second's worth unless told otherwise, and a refused
//! request still costs a token, so a client that keeps hammering stays refused.
//!
//! Kept apart from the client's limiter (`nodes/src/http/limit.rs`) on purpose: the simulator is
//! a second, independent implementation of Duo's side.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

/// `--rate-limit`: a sustained rate and a burst, per integration key.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RateLimit {
    /// Requests per second an integration key may make, on average.
    pub per_second: f64,
    /// Requests it may make at once after a quiet spell.
    pub burst: u32,
}

/// The most requests per second (and burst) `--rate-limit` accepts.
const MAX: f64 = 1_000_000.0;

impl RateLimit {
    /// `50/s`, `300/min`, `20/s,burst=5`; without `burst`, one second's worth (at least 1).
    pub fn parse(spec: &str) -> Result<RateLimit, String> {
        let expected = || {
            format!(
                "expected `N/s` or `N/min`, optionally `,burst=N` (e.g. `50/s`, `300/min,burst=10`), found `{spec}`"
            )
        };
        let (rate, burst) = match spec.split_once(',') {
            Some((rate, rest)) => {
                let value = rest.trim().strip_prefix("burst=").ok_or_else(expected)?;
                let burst = value.trim().parse::<u32>().ok().filter(|b| *b >= 1 && f64::from(*b) <= MAX);
                (rate, Some(burst.ok_or_else(|| format!("`burst` must be a whole number from 1 up, found `{value}`"))?))
            }
            None => (spec, None),
        };
        let (number, unit) = rate.trim().split_once('/').ok_or_else(expected)?;
        let seconds = match unit.trim() {
            "s" => 1.0,
            "min" => 60.0,
            _ => return Err(expected()),
        };
        let number: f64 = number.trim().parse().map_err(|_| expected())?;
        let per_second = number / seconds;
        if !(per_second.is_finite() && per_second > 0.0 && per_second <= MAX) {
            return Err(format!("the rate must be above 0 and at most {MAX}/s, found `{rate}`"));
        }
        let burst = burst.unwrap_or_else(|| per_second.ceil().max(1.0) as u32);
        Ok(RateLimit { per_second, burst })
    }
}

/// One integration key's bucket.
#[derive(Debug, Clone, Copy)]
struct Bucket {
    /// Below zero after refused requests, down to minus the burst.
    tokens: f64,
    at_ms: i64,
}

/// The buckets of every integration key seen, under one limit. Only keys of the simulator's own
/// integrations get a bucket, so the map stays as small as the keyring.
#[derive(Debug)]
pub(crate) struct Buckets {
    limit: RateLimit,
    buckets: HashMap<String, Bucket>,
}

impl Buckets {
    pub fn new(limit: RateLimit) -> Buckets {
        Buckets { limit, buckets: HashMap::new() }
    }

    /// One request by `ikey` at sim time `now_ms`: whether it may be served. A refused request
    /// costs a token too (down to minus the burst).
    pub fn take(&mut self, ikey: &str, now_ms: i64) -> bool {
        let burst = f64::from(self.limit.burst);
        let bucket = self.buckets.entry(ikey.to_owned()).or_insert(Bucket { tokens: burst, at_ms: now_ms });
        let elapsed = now_ms.saturating_sub(bucket.at_ms).max(0) as f64 / 1000.0;
        bucket.tokens = (bucket.tokens + elapsed * self.limit.per_second).min(burst);
        bucket.at_ms = bucket.at_ms.max(now_ms);
        let allowed = bucket.tokens >= 1.0;
        bucket.tokens = (bucket.tokens - 1.0).max(-burst);
        allowed
    }

    /// Every bucket full again (`POST /sim/reset`).
    pub fn clear(&mut self) {
        self.buckets.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs() {
        assert_eq!(RateLimit::parse("50/s"), Ok(RateLimit { per_second: 50.0, burst: 50 }));
        assert_eq!(RateLimit::parse("300/min"), Ok(RateLimit { per_second: 5.0, burst: 5 }));
        assert_eq!(RateLimit::parse("200/min"), Ok(RateLimit { per_second: 200.0 / 60.0, burst: 4 }));
        assert_eq!(RateLimit::parse("1/min"), Ok(RateLimit { per_second: 1.0 / 60.0, burst: 1 }));
        assert_eq!(RateLimit::parse(" 20/s, burst=5 "), Ok(RateLimit { per_second: 20.0, burst: 5 }));
        for bad in ["50", "50/h", "x/s", "0/s", "-1/s", "inf/s", "NaN/s", "50/s,burst=0", "50/s,b=2", "5/s,burst=x"] {
            assert!(RateLimit::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_bucket_serves_its_burst_then_its_rate_per_key() {
        let mut b = Buckets::new(RateLimit { per_second: 10.0, burst: 3 });
        let served: Vec<bool> = (0..4).map(|_| b.take("A", 0)).collect();
        assert_eq!(served, [true, true, true, false]);
        assert!(b.take("B", 0), "another key has its own bucket");
        // The refused request cost a token: at -1, 100 ms bring it to 0, refused again (-1).
        assert!(!b.take("A", 100));
        assert!(!b.take("A", 250), "-1 + 1.5 = 0.5: refused (-0.5)");
        assert!(b.take("A", 400), "-0.5 + 1.5 = 1: served");
    }

    #[test]
    fn hammering_never_digs_deeper_than_the_burst() {
        let mut b = Buckets::new(RateLimit { per_second: 1.0, burst: 2 });
        for _ in 0..1000 {
            b.take("A", 0);
        }
        // At -2: three seconds to get back to 1.
        assert!(!b.take("A", 2_999));
        assert!(!b.take("A", 3_000), "the refusal at 2999 cost a token");
        b.clear();
        assert!(b.take("A", 3_000));
    }
}
