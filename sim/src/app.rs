//! What every request handler shares: the state under a lock, the clock, the keys, faults,
//! stats, options.

use std::collections::BTreeMap;
use std::sync::atomic::AtomicU64;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use serde_json::{Value, json};

use crate::audit::Origin;
use crate::clock::{Clock, wall_ms};
use crate::error::ControlError;
use crate::fault::Faults;
use crate::keys::Keyring;
use crate::links::{self, PhoneRef};
use crate::push::{Ended, Outcome};
use crate::ratelimit::{Buckets, RateLimit};
use crate::state::State;

/// When `POST /admin/v1/users/enroll` creates the user.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum EnrollMode {
    /// When the simulated user follows the enrolment link (`POST /sim/enroll`), as with Duo.
    #[default]
    OnLink,
    /// At once, when the email is sent (the simulator's old, kinder behaviour).
    AtOnce,
}

/// How the simulator behaves, besides its state.
#[derive(Debug, Clone)]
pub struct Options {
    /// Clock skew allowed either way on a request's date. At least 60 s, so a client that
    /// re-sends a request after its backoff is still accepted; Duo allows about five minutes.
    pub skew: Duration,
    /// The longest `auth_status` holds a request while the push is pending, in sim time.
    pub long_poll: Duration,
    /// How long a push waits for its answer before it ends as `timeout`, in sim time.
    pub push_expiry: Duration,
    /// How many times faster than real time the simulator's clock runs.
    pub time_scale: f64,
    /// When set, a phone is activated this long (sim time) after each activation SMS, as if its
    /// user followed the link; otherwise only `POST /sim/activate` activates it.
    pub activate_after: Option<Duration>,
    /// When enrolment creates the user.
    pub enroll_mode: EnrollMode,
    /// A connection that has not sent a whole request header within this (real) time is closed.
    pub header_read_timeout: Duration,
    /// Larger bodies get 413.
    pub max_body_bytes: usize,
    /// Faults armed at start.
    pub faults: Faults,
    /// Duo's rate limiting, per integration key (`--rate-limit`); none by default.
    pub rate_limit: Option<RateLimit>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            skew: Duration::from_secs(300),
            long_poll: Duration::from_secs(300),
            push_expiry: Duration::from_secs(60),
            time_scale: 1.0,
            activate_after: None,
            enroll_mode: EnrollMode::OnLink,
            header_read_timeout: Duration::from_secs(10),
            max_body_bytes: 1 << 20,
            faults: Faults::default(),
            rate_limit: None,
        }
    }
}

/// The shared part of a running simulator.
#[derive(Debug)]
pub(crate) struct App {
    pub state: Mutex<State>,
    /// The state at start, for `POST /sim/reset`.
    pub initial: State,
    pub keyring: Keyring,
    pub faults: Mutex<Faults>,
    /// Requests served per route pattern (every attempt, whatever its answer).
    pub stats: Mutex<BTreeMap<String, u64>>,
    pub options: Options,
    pub clock: Clock,
    /// The rate limit's buckets, when `options.rate_limit` is set.
    pub buckets: Option<Mutex<Buckets>>,
    /// Requests refused by the rate limit (not by a 429 fault), since start or the last reset.
    pub rate_limited: AtomicU64,
}

impl App {
    /// The clock starts at the wall time, or where a loaded state left it if that is later, so
    /// sim time never runs backwards across a restart.
    pub fn new(state: State, options: Options) -> Self {
        let clock = Clock::new(wall_ms().max(state.clock_ms), options.time_scale);
        Self {
            clock,
            keyring: state.keyring(),
            initial: state.clone(),
            state: Mutex::new(state),
            faults: Mutex::new(options.faults.clone()),
            stats: Mutex::new(BTreeMap::new()),
            buckets: options.rate_limit.map(|limit| Mutex::new(Buckets::new(limit))),
            rate_limited: AtomicU64::new(0),
            options,
        }
    }
}

/// Locks a mutex, recovering from poisoning: handlers never panic on input, and a simulator that
/// keeps serving after a bug is more useful to a test than one that cascades.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl App {
    /// The state, locked, with everything due by now applied (activations that follow
    /// themselves), and the sim time it was settled at.
    pub fn settled(&self) -> (MutexGuard<'_, State>, i64) {
        let mut state = lock(&self.state);
        let now = self.clock.now_ms();
        state.settle(now);
        (state, now)
    }

    /// A copy of the state as the state file holds it: settled, stamped with the sim time.
    pub fn snapshot(&self) -> State {
        let (state, now) = self.settled();
        let mut copy = state.clone();
        copy.clock_ms = now;
        copy
    }
}

/// What the simulated people do, driven by tests and demos (`/sim/…` and [`crate::Sim`]).
impl App {
    fn control_origin(route: &'static str, now_ms: i64) -> Origin<'static> {
        Origin { time: now_ms, method: "POST", route, ikey: "" }
    }

    /// The user answers a waiting push now; sleepers on it are woken.
    pub fn answer_push(&self, txid: &str, answer: Outcome) -> Result<(), ControlError> {
        let (mut state, now) = self.settled();
        let push = state.pushes.get_mut(txid).ok_or_else(|| ControlError::NotFound(format!("no push `{txid}`")))?;
        push.answer(now, answer)
            .map_err(|Ended(_)| ControlError::Conflict(format!("push `{txid}` has already ended")))?;
        let (user_id, username) = (push.user_id.clone(), push.username.clone());
        let origin = Self::control_origin("POST /sim/push/answer", now);
        let answered = serde_json::to_value(answer).unwrap_or_default();
        let detail = json!({ "txid": txid, "user_id": user_id, "username": username, "answer": answered });
        state.audit.record(&origin, "push.answer", detail);
        drop(state);
        self.clock.wake();
        Ok(())
    }

    /// The user follows the newest activation link sent to a phone.
    pub fn follow_activation(&self, phone: &PhoneRef) -> Result<Value, ControlError> {
        let (mut state, now) = self.settled();
        links::follow_activation(&mut state, now, phone, &Self::control_origin("POST /sim/activate", now))
    }

    /// The user follows the enrolment link sent for `username`.
    pub fn follow_enrollment(&self, username: &str, number: Option<&str>) -> Result<Value, ControlError> {
        let (mut state, now) = self.settled();
        let origin = Self::control_origin("POST /sim/enroll", now);
        links::follow_enrollment(&mut state, now, username, number, &origin)
    }

    /// The user scans an `/auth/v2/enroll` activation code with Duo Mobile.
    pub fn scan_enrollment(&self, activation_code: &str) -> Result<Value, ControlError> {
        let (mut state, now) = self.settled();
        let origin = Self::control_origin("POST /sim/enroll/scan", now);
        crate::enroll::scan(&mut state, now, activation_code, &origin)
    }
}
