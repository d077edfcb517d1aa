//! What every request handler shares: the state under a lock, the keys, faults, stats, options.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::fault::Faults;
use crate::keys::Keyring;
use crate::state::State;

/// How the simulator behaves, besides its state.
#[derive(Debug, Clone)]
pub struct Options {
    /// Clock skew allowed either way on a request's date. At least 60 s, so a client that
    /// re-sends a request after its backoff is still accepted; Duo allows about five minutes.
    pub skew: Duration,
    /// The longest `auth_status` holds a request while the push is pending.
    pub long_poll: Duration,
    /// The longest a synchronous `auth` waits for the user; after it, the push has timed out.
    pub sync_auth_limit: Duration,
    /// Larger bodies get 413.
    pub max_body_bytes: usize,
    /// Faults armed at start.
    pub faults: Faults,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            skew: Duration::from_secs(300),
            long_poll: Duration::from_secs(3),
            sync_auth_limit: Duration::from_secs(65),
            max_body_bytes: 1 << 20,
            faults: Faults::default(),
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
}

impl App {
    pub fn new(state: State, options: Options) -> Self {
        Self {
            keyring: state.keyring(),
            initial: state.clone(),
            state: Mutex::new(state),
            faults: Mutex::new(options.faults.clone()),
            stats: Mutex::new(BTreeMap::new()),
            options,
        }
    }
}

/// Locks a mutex, recovering from poisoning: handlers never panic on input, and a simulator that
/// keeps serving after a bug is more useful to a test than one that cascades.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Unix milliseconds now.
pub(crate) fn now_ms() -> i64 {
    let since = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    i64::try_from(since.as_millis()).unwrap_or(i64::MAX)
}
