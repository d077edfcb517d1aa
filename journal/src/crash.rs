//! Test-only crash points: `FLOWCAT_CRASH_AT=PHASE:PATH[#N]` makes the process abort, as kill -9
//! would, at one moment of one node, so that tests can prove what a resumed run does from there
//! (docs/architecture.md, "The journal"). Read once, when the journal is opened.

use std::sync::atomic::{AtomicU32, Ordering};

use flowcat_engine::journal::JournalError;

/// The moment of a node's life at which to abort.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// The node started (its start is journaled first).
    Started,
    /// A write's intent is durable, and the write is not sent yet.
    Intent,
    /// The node's request was sent and answered, and its result is not journaled.
    Sent,
    /// The node's result is durable, and the nodes waiting for it have not started.
    Finished,
}

/// Where to abort: the `nth` time (from 1) `phase` is reached at node `path` (a `path_key`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CrashAt {
    pub phase: Phase,
    pub path: String,
    pub nth: u32,
}

/// The environment variable that sets a crash point.
pub const CRASH_AT_VAR: &str = "FLOWCAT_CRASH_AT";

impl CrashAt {
    /// Parses `PHASE:PATH` or `PHASE:PATH#N`.
    pub fn parse(text: &str) -> Result<CrashAt, String> {
        let (phase, rest) = text.split_once(':').ok_or_else(|| format!("`{text}` is not `PHASE:PATH[#N]`"))?;
        let phase = match phase {
            "started" => Phase::Started,
            "intent" => Phase::Intent,
            "sent" => Phase::Sent,
            "finished" => Phase::Finished,
            other => {
                return Err(format!("`{other}` is not a phase: expected `started`, `intent`, `sent` or `finished`"));
            }
        };
        let (path, nth) = match rest.rsplit_once('#') {
            Some((path, n)) => match n.parse::<u32>() {
                Ok(n) if n > 0 => (path, n),
                _ => return Err(format!("`#{n}` is not a count from 1")),
            },
            None => (rest, 1),
        };
        if path.is_empty() {
            return Err(format!("`{text}` names no node path (e.g. `intent:phone/create`)"));
        }
        Ok(CrashAt { phase, path: path.to_owned(), nth })
    }

    /// The crash point set in `FLOWCAT_CRASH_AT`, if any.
    pub fn from_env() -> Result<Option<CrashAt>, JournalError> {
        match std::env::var(CRASH_AT_VAR) {
            Ok(text) if !text.is_empty() => CrashAt::parse(&text)
                .map(Some)
                .map_err(|e| JournalError::new("config", format!("`{CRASH_AT_VAR}`: {e}"))),
            _ => Ok(None),
        }
    }
}

/// A crash point and how often it was reached.
#[derive(Debug)]
pub(crate) struct Crash {
    at: CrashAt,
    seen: AtomicU32,
}

impl Crash {
    pub(crate) fn new(at: CrashAt) -> Crash {
        Crash { at, seen: AtomicU32::new(0) }
    }

    /// Counts `phase` at `path`; true when this is the moment to abort.
    pub(crate) fn due(&self, phase: Phase, path: &str) -> bool {
        phase == self.at.phase && path == self.at.path && self.seen.fetch_add(1, Ordering::SeqCst) + 1 == self.at.nth
    }

    /// Ends the process at once: nothing is flushed beyond what the journal already committed.
    pub(crate) fn abort(&self) -> ! {
        eprintln!(
            "flowcat: {CRASH_AT_VAR} reached {:?} at `{}`: aborting (a test crash point)",
            self.at.phase, self.at.path
        );
        std::process::abort()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crash_points_parse_and_count() {
        let at = CrashAt::parse("intent:phone/create#2").expect("parses");
        assert_eq!(at, CrashAt { phase: Phase::Intent, path: "phone/create".into(), nth: 2 });
        assert_eq!(CrashAt::parse("sent:a").map(|a| a.nth), Ok(1));
        for bad in ["intent", "later:a", "intent:", "intent:a#0", "intent:a#x"] {
            assert!(CrashAt::parse(bad).is_err(), "{bad}");
        }
        let crash = Crash::new(at);
        assert!(!crash.due(Phase::Intent, "phone/create"));
        assert!(!crash.due(Phase::Finished, "phone/create"), "another phase does not count");
        assert!(!crash.due(Phase::Intent, "phone"), "another node does not count");
        assert!(crash.due(Phase::Intent, "phone/create"));
        assert!(!crash.due(Phase::Intent, "phone/create"), "only the nth");
    }
}
