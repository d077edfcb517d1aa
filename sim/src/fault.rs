//! Faults on demand, per route or global: latency, 429 storms, 5xx and dropped connections.
//!
//! Every fault that is not latency carries a counter that goes down by one per request it hits,
//! so a test knows exactly which attempts fail. Deciding is pure; the server only acts on it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The whole fault configuration, as `GET`/`PUT /sim/faults` show it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Faults {
    /// Applies to every Duo route (after the route's own faults).
    #[serde(default)]
    pub global: FaultSet,
    /// By route pattern, e.g. `POST /admin/v1/users`.
    #[serde(default)]
    pub routes: BTreeMap<String, FaultSet>,
}

/// The faults of one scope.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultSet {
    /// Added before every response.
    #[serde(default)]
    pub latency_ms: u64,
    /// The next `count` requests get 429.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status429: Option<Storm429>,
    /// The next `count` requests get a 5xx.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status5xx: Option<Status5xx>,
    /// The next `count` requests are applied, then the connection closes without a response.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drop_after_apply: Option<Count>,
}

/// A storm of 429s.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Storm429 {
    pub count: u32,
    /// Seconds to send in the header; none sends no header, as the Admin API has been seen to do.
    #[serde(default)]
    pub retry_after: Option<u64>,
    #[serde(default)]
    pub header: RetryHeader,
}

/// Which header carries the retry delay.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum RetryHeader {
    #[default]
    #[serde(rename = "Retry-After")]
    RetryAfter,
    #[serde(rename = "X-Retry-After")]
    XRetryAfter,
}

impl RetryHeader {
    /// The header name.
    pub fn name(self) -> &'static str {
        match self {
            RetryHeader::RetryAfter => "retry-after",
            RetryHeader::XRetryAfter => "x-retry-after",
        }
    }
}

/// A run of server errors.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Status5xx {
    pub count: u32,
    /// 500 to 599; the body's code is this times 100 plus 1.
    #[serde(default = "default_5xx")]
    pub status: u16,
}

fn default_5xx() -> u16 {
    500
}

/// A plain counter.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Count {
    pub count: u32,
}

/// What to do with a request before it is verified and applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Serve it.
    Proceed,
    /// Answer 429.
    TooMany { retry_after: Option<u64>, header: RetryHeader },
    /// Answer this 5xx status.
    ServerError(u16),
}

/// Takes one hit off a counter; whether it was still armed.
fn take(count: &mut u32) -> bool {
    let armed = *count > 0;
    *count = count.saturating_sub(1);
    armed
}

impl FaultSet {
    fn take_before(&mut self) -> Action {
        if let Some(storm) = &mut self.status429 {
            if take(&mut storm.count) {
                return Action::TooMany { retry_after: storm.retry_after, header: storm.header };
            }
        }
        if let Some(errors) = &mut self.status5xx {
            if take(&mut errors.count) {
                return Action::ServerError(errors.status);
            }
        }
        Action::Proceed
    }

    fn take_drop(&mut self) -> bool {
        self.drop_after_apply.as_mut().is_some_and(|d| take(&mut d.count))
    }
}

impl Faults {
    /// Latency for a route: its own plus the global.
    pub fn latency_ms(&self, route: &str) -> u64 {
        let own = self.routes.get(route).map_or(0, |f| f.latency_ms);
        own.saturating_add(self.global.latency_ms)
    }

    /// Decides a request's fate before it is served; the route's faults count down first.
    pub fn take_before(&mut self, route: &str) -> Action {
        if let Some(set) = self.routes.get_mut(route) {
            let action = set.take_before();
            if action != Action::Proceed {
                return action;
            }
        }
        self.global.take_before()
    }

    /// Whether to drop the connection after applying a request.
    pub fn take_drop(&mut self, route: &str) -> bool {
        let own = self.routes.get_mut(route).is_some_and(FaultSet::take_drop);
        own || self.global.take_drop()
    }

    /// Checks every route key names a known route and every status is a 5xx.
    pub fn validate(&self, known: &[&str]) -> Result<(), String> {
        for route in self.routes.keys() {
            if !known.contains(&route.as_str()) {
                return Err(format!("unknown route `{route}`"));
            }
        }
        let sets = std::iter::once(&self.global).chain(self.routes.values());
        for set in sets {
            if let Some(e) = &set.status5xx {
                if !(500..=599).contains(&e.status) {
                    return Err(format!("status `{}` is not a 5xx", e.status));
                }
            }
        }
        Ok(())
    }

    /// Adds one `--fault` flag: comma-separated `key=value`s, e.g.
    /// `route=POST /admin/v1/users,kind=429,count=3,retry_after=2,header=X-Retry-After`.
    /// Kinds: `latency` (`ms`), `429` (`count`, `retry_after`, `header`), `5xx` (`count`,
    /// `status`), `drop` (`count`). Without `route` the fault is global.
    pub fn apply_spec(&mut self, spec: &str) -> Result<(), String> {
        let mut fields = BTreeMap::new();
        for part in spec.split(',') {
            let (key, value) = part.split_once('=').ok_or_else(|| format!("expected `key=value`, found `{part}`"))?;
            fields.insert(key.trim().to_string(), value.trim().to_string());
        }
        let number = |key: &str, default: u64| -> Result<u64, String> {
            fields
                .get(key)
                .map_or(Ok(default), |v| v.parse().map_err(|_| format!("`{key}` must be a number, found `{v}`")))
        };
        let count = u32::try_from(number("count", 1)?).map_err(|_| "`count` is too large".to_string())?;
        let set = match fields.get("route") {
            Some(route) => self.routes.entry(route.clone()).or_default(),
            None => &mut self.global,
        };
        match fields.get("kind").map(String::as_str) {
            Some("latency") => set.latency_ms = number("ms", 0)?,
            Some("429") => {
                let retry_after = fields.get("retry_after").map(|_| number("retry_after", 0)).transpose()?;
                let header = match fields.get("header").map(|h| h.to_ascii_lowercase()) {
                    None => RetryHeader::RetryAfter,
                    Some(h) if h == "retry-after" => RetryHeader::RetryAfter,
                    Some(h) if h == "x-retry-after" => RetryHeader::XRetryAfter,
                    Some(h) => return Err(format!("unknown header `{h}`, expected `Retry-After` or `X-Retry-After`")),
                };
                set.status429 = Some(Storm429 { count, retry_after, header });
            }
            Some("5xx") => {
                let status = u16::try_from(number("status", 500)?).map_err(|_| "`status` is too large".to_string())?;
                set.status5xx = Some(Status5xx { count, status });
            }
            Some("drop") => set.drop_after_apply = Some(Count { count }),
            Some(other) => {
                return Err(format!("unknown fault kind `{other}`, expected `latency`, `429`, `5xx` or `drop`"));
            }
            None => return Err("missing `kind`".to_string()),
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROUTE: &str = "POST /admin/v1/users";

    #[test]
    fn a_storm_counts_down_then_requests_proceed() {
        let mut faults = Faults::default();
        faults.apply_spec("route=POST /admin/v1/users,kind=429,count=2,retry_after=3").expect("spec");
        let storm = Action::TooMany { retry_after: Some(3), header: RetryHeader::RetryAfter };
        assert_eq!(faults.take_before(ROUTE), storm);
        assert_eq!(faults.take_before("GET /admin/v1/users"), Action::Proceed);
        assert_eq!(faults.take_before(ROUTE), storm);
        assert_eq!(faults.take_before(ROUTE), Action::Proceed);
    }

    #[test]
    fn route_faults_come_before_global_ones() {
        let mut faults = Faults::default();
        faults.apply_spec("kind=5xx,count=1,status=503").expect("spec");
        faults.apply_spec("route=POST /admin/v1/users,kind=429,count=1,header=X-Retry-After").expect("spec");
        faults.apply_spec("kind=latency,ms=5").expect("spec");
        faults.apply_spec("route=POST /admin/v1/users,kind=latency,ms=7").expect("spec");
        assert_eq!(faults.latency_ms(ROUTE), 12);
        assert!(matches!(
            faults.take_before(ROUTE),
            Action::TooMany { retry_after: None, header: RetryHeader::XRetryAfter }
        ));
        assert_eq!(faults.take_before(ROUTE), Action::ServerError(503));
        assert_eq!(faults.take_before(ROUTE), Action::Proceed);
    }

    #[test]
    fn drops_count_down() {
        let mut faults = Faults::default();
        faults.apply_spec("route=POST /admin/v1/users,kind=drop,count=1").expect("spec");
        assert!(faults.take_drop(ROUTE));
        assert!(!faults.take_drop(ROUTE));
    }

    #[test]
    fn bad_specs_and_configs_are_explained() {
        let mut faults = Faults::default();
        assert!(faults.apply_spec("kind=teapot").unwrap_err().contains("teapot"));
        assert!(faults.apply_spec("count").unwrap_err().contains("key=value"));
        assert!(faults.apply_spec("kind=429,count=x").unwrap_err().contains("count"));
        faults.apply_spec("route=GET /nope,kind=drop").expect("spec");
        assert!(faults.validate(&[ROUTE]).unwrap_err().contains("/nope"));
    }
}
