//! The seam between a call and the wire: [`send`](super::send) hands each prepared, signed attempt
//! to reqwest, unless the [`Clients`](super::Clients) carry a [`Transport`], which answers it in
//! the process instead. `flowcat test` substitutes one that answers from a test case's mocks, so a
//! flow runs with every part of a real call (rendering, signing, retries, the rate limiter, the
//! envelope, polls) except the socket.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use flowcat_engine::run::BoxFuture;

/// One attempt as it would go on the wire, without its headers (they carry the signature; the
/// attempt's [`super::RequestRecord`], redacted, is what the run record shows).
#[derive(Clone, Debug)]
pub struct Outgoing {
    /// Upper case.
    pub method: String,
    /// The percent-encoded path, without the query.
    pub path: String,
    /// The query's pairs, decoded, in the order sent.
    pub query: Vec<(String, String)>,
    /// The params as the node gave them (before Duo's encoding): the query's for `GET` and
    /// `DELETE`, the body's otherwise.
    pub params: Option<serde_json::Map<String, serde_json::Value>>,
    /// The route template of the node's `path:` ([`super::route::template`]).
    pub route: Option<Arc<str>>,
    /// The node sending it: its path in the run (`user/lookup`, `phones[2]/remove`).
    pub node: Option<Arc<str>>,
    /// The attempt's time limit: a transport that lets it pass answers [`Exchanged::Timeout`].
    pub timeout: Duration,
}

/// What came of one attempt.
#[derive(Clone, Debug, PartialEq)]
pub enum Exchanged {
    /// An answer: its status, headers (lower-case names) and body bytes.
    Answer { status: u16, headers: BTreeMap<String, String>, body: Vec<u8> },
    /// No connection: nothing was sent.
    Refused(String),
    /// No complete answer within the attempt's time limit.
    Timeout,
    /// The connection broke before the answer was complete.
    Dropped(String),
}

/// Answers attempts in the process instead of sending them.
pub trait Transport: Send + Sync {
    fn exchange<'a>(&'a self, request: &'a Outgoing) -> BoxFuture<'a, Exchanged>;
}

impl fmt::Debug for dyn Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Transport")
    }
}
