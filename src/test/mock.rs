//! What a test case puts in place of Duo and of the journal: a [`Transport`] that answers every
//! attempt from the case's mocks (and remembers what was sent), and a [`RunLog`] in memory that
//! delivers the case's signals. Nothing leaves the process; the user's journal is never opened.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError};

use flowcat_engine::journal::{Finished, JournalError, RunLog};
use flowcat_engine::run::BoxFuture;
use flowcat_nodes::http::{Exchanged, Outgoing, Transport};
use serde_json::{Map, Value};

use super::case::{Answer, Mock, Signal, Target};

/// One request a case's run sent (each attempt).
#[derive(Clone, Debug)]
pub struct Sent {
    pub method: String,
    /// Percent-encoded, as sent.
    pub path: String,
    pub params: Option<Map<String, Value>>,
    pub node: Option<String>,
}

impl Sent {
    pub fn show(&self) -> String {
        let node = self.node.as_deref().map(|n| format!(" (node `{n}`)")).unwrap_or_default();
        format!("{} {}{node}", self.method, decode(&self.path))
    }
}

/// Answers from mocks: a node's own mock first, then the first route that matches.
#[derive(Debug)]
pub struct Mocks {
    mocks: Vec<(Mock, AtomicUsize)>,
    sent: Mutex<Vec<Sent>>,
    /// Requests no mock answered: each one fails the case.
    unanswered: Mutex<Vec<String>>,
}

impl Mocks {
    pub fn new(mocks: Vec<Mock>) -> Mocks {
        Mocks {
            mocks: mocks.into_iter().map(|m| (m, AtomicUsize::new(0))).collect(),
            sent: Mutex::default(),
            unanswered: Mutex::default(),
        }
    }

    pub fn sent(&self) -> Vec<Sent> {
        self.sent.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    pub fn unanswered(&self) -> Vec<String> {
        self.unanswered.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    fn find(&self, method: &str, path: &str, node: Option<&str>) -> Option<usize> {
        let node = node.map(strip_items);
        let by_node = self
            .mocks
            .iter()
            .position(|(m, _)| matches!(&m.target, Target::Node(id) if Some(id.as_str()) == node.as_deref()));
        by_node.or_else(|| {
            self.mocks.iter().position(|(m, _)| {
                matches!(&m.target, Target::Route { method: mm, path: mp } if mm == method && path_matches(mp, path))
            })
        })
    }
}

impl Transport for Mocks {
    fn exchange<'a>(&'a self, request: &'a Outgoing) -> BoxFuture<'a, Exchanged> {
        Box::pin(async move {
            let path = request.path.clone();
            let node = request.node.as_deref().map(str::to_owned);
            let sent =
                Sent { method: request.method.clone(), path: path.clone(), params: request.params.clone(), node };
            let described = sent.show();
            self.sent.lock().unwrap_or_else(PoisonError::into_inner).push(sent);
            let Some(i) = self.find(&request.method, &path, request.node.as_deref()) else {
                self.unanswered.lock().unwrap_or_else(PoisonError::into_inner).push(described.clone());
                return Exchanged::Refused(format!("no mock answers `{described}`"));
            };
            let (mock, next) = &self.mocks[i];
            let n = next.fetch_add(1, Ordering::Relaxed).min(mock.answers.len() - 1);
            match &mock.answers[n] {
                Answer::Reply { status, headers, body } => {
                    let mut headers = headers.clone();
                    headers.entry("content-type".into()).or_insert_with(|| "application/json".into());
                    let body = match body {
                        Value::String(s) => s.clone().into_bytes(),
                        other => other.to_string().into_bytes(),
                    };
                    Exchanged::Answer { status: *status, headers, body }
                }
                Answer::Dropped => Exchanged::Dropped("the connection dropped (a mocked fault)".into()),
                Answer::Refused => Exchanged::Refused("connection refused (a mocked fault)".into()),
                Answer::Timeout => {
                    // The attempt's whole time limit passes, on the test's clock.
                    tokio::time::sleep(request.timeout).await;
                    Exchanged::Timeout
                }
            }
        })
    }
}

/// A node path without `for_each` item indexes: `phones[2]/remove` → `phones/remove`.
pub fn strip_items(path: &str) -> String {
    path.split('/').map(|part| part.split_once('[').map_or(part, |(id, _)| id)).collect::<Vec<_>>().join("/")
}

/// Whether a route pattern (`/admin/v1/users/{user_id}`) matches a percent-encoded path: segment
/// by segment (each decoded), `{…}` and `*` matching any one segment.
pub fn path_matches(pattern: &str, path: &str) -> bool {
    let (a, b): (Vec<&str>, Vec<&str>) = (pattern.split('/').collect(), path.split('/').collect());
    a.len() == b.len() && a.iter().zip(&b).all(|(p, s)| is_param(p) || *p == decode(s))
}

/// Whether two route patterns can match one path.
pub fn routes_overlap(a: &str, b: &str) -> bool {
    let (a, b): (Vec<&str>, Vec<&str>) = (a.split('/').collect(), b.split('/').collect());
    a.len() == b.len() && a.iter().zip(&b).all(|(x, y)| is_param(x) || is_param(y) || x == y)
}

fn is_param(segment: &str) -> bool {
    segment == "*" || (segment.starts_with('{') && segment.ends_with('}'))
}

fn decode(path: &str) -> String {
    let bytes = path.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The run's journal in memory: it keeps nothing, and answers `wait_for` nodes with the case's
/// signals (after their delay, on the test's clock); a signal the case does not give never
/// comes, so the node's timeout decides.
#[derive(Debug)]
pub struct Log {
    signals: Vec<Signal>,
}

impl Log {
    pub fn new(signals: Vec<Signal>) -> Log {
        Log { signals }
    }
}

impl RunLog for Log {
    fn started(&self, _: &[String], _: u64) {}

    fn intent<'a>(&'a self, _: &'a [String], _: &'a Value) -> BoxFuture<'a, Result<(), JournalError>> {
        Box::pin(async { Ok(()) })
    }

    fn finished<'a>(&'a self, _: &'a [String], _: &'a Finished) -> BoxFuture<'a, Result<(), JournalError>> {
        Box::pin(async { Ok(()) })
    }

    fn noted(&self, _: &[String], _: Finished) {}

    fn run_id(&self) -> Option<&str> {
        Some("test")
    }

    fn wait_signal<'a>(
        &'a self,
        _: &'a [String],
        name: &'a str,
        _: Option<u64>,
        said: &'a (dyn Fn() + Send + Sync),
    ) -> BoxFuture<'a, Result<Value, JournalError>> {
        Box::pin(async move {
            said();
            match self.signals.iter().find(|s| s.name == name) {
                Some(signal) => {
                    tokio::time::sleep(signal.after).await;
                    Ok(signal.payload.clone())
                }
                None => std::future::pending().await,
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_match_by_segment() {
        assert!(path_matches("/admin/v1/users/{id}", "/admin/v1/users/DU123"));
        assert!(path_matches("/admin/v1/users/*/phones", "/admin/v1/users/DU1/phones"));
        assert!(path_matches("/admin/v1/users/a b", "/admin/v1/users/a%20b"));
        assert!(!path_matches("/a/b/c", "/a/b%2Fc"));
        assert!(!path_matches("/admin/v1/users", "/admin/v1/users/DU1"));
        assert!(!path_matches("/admin/v1/users/{id}", "/admin/v1/phones/DP1"));
        assert!(routes_overlap("/admin/v1/users/{user_id}", "/admin/v1/users/DU1"));
        assert!(!routes_overlap("/admin/v1/users/{user_id}", "/admin/v1/phones/{phone_id}"));
    }

    #[test]
    fn paths_and_item_indexes() {
        assert_eq!(decode("/a/b%20c/%2F"), "/a/b c//");
        assert_eq!(decode("/a%2"), "/a%2");
        assert_eq!(strip_items("phones[12]/remove"), "phones/remove");
    }
}
