//! The running simulator: binds loopback, serves HTTP/1.1, and shuts down gracefully.
//!
//! The accept loop is ours rather than `axum::serve` for one reason: a `drop_after_apply` fault
//! must close a connection without answering, and only the connection's owner can do that.

use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tower_service::Service;

use crate::app::{App, Options, lock};
use crate::audit::AuditEntry;
use crate::clock::wall_ms;
use crate::control::{self, Peer};
use crate::duo::{self, DropConnection};
use crate::error::ControlError;
use crate::error::Error;
use crate::fault::Faults;
use crate::links::PhoneRef;
use crate::push::Outcome;
use crate::routes;
use crate::seed::Seed;
use crate::state::State;

/// How long shutdown waits for open requests (long polls included) before closing anyway.
const DRAIN_LIMIT: Duration = Duration::from_secs(5);

/// A running simulator. Dropping it without [`Sim::shutdown`] leaves the server running until
/// the runtime ends.
#[derive(Debug)]
pub struct Sim {
    addr: SocketAddr,
    app: Arc<App>,
    stop: watch::Sender<bool>,
    stopped: watch::Receiver<bool>,
}

impl Sim {
    /// Starts serving `state` on `addr` (port 0 picks a free port). Only loopback is allowed.
    pub async fn start(addr: SocketAddr, state: State, options: Options) -> Result<Sim, Error> {
        if !addr.ip().is_loopback() {
            return Err(Error::NotLoopback(addr.ip().to_string()));
        }
        options.faults.validate(&routes::patterns()).map_err(Error::Fault)?;
        let listener = TcpListener::bind(addr).await.map_err(|source| Error::Bind { addr, source })?;
        let addr = listener.local_addr().map_err(|source| Error::Bind { addr, source })?;
        let app = Arc::new(App::new(state, options));
        let router = control::router().fallback(duo::handle).with_state(Arc::clone(&app));
        let (stop, stop_rx) = watch::channel(false);
        let (stopped_tx, stopped) = watch::channel(false);
        let header_timeout = app.options.header_read_timeout;
        tokio::spawn(accept_loop(listener, router, header_timeout, stop_rx, stopped_tx));
        Ok(Sim { addr, app, stop, stopped })
    }

    /// Starts from a seed, stamping users as created now (the clock starts at the wall time).
    pub async fn start_seed(addr: SocketAddr, seed: &Seed, options: Options) -> Result<Sim, Error> {
        let state = State::from_seed(seed, wall_ms().div_euclid(1000))?;
        Self::start(addr, state, options).await
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The audit log, oldest first.
    pub fn audit(&self) -> Vec<AuditEntry> {
        self.app.settled().0.audit.entries().to_vec()
    }

    /// The simulator's clock: sim unix milliseconds now.
    pub fn now_ms(&self) -> i64 {
        self.app.clock.now_ms()
    }

    /// Moves the simulator's clock forward (held long-polls re-check at once); the new time.
    pub fn advance(&self, by: Duration) -> i64 {
        self.app.clock.advance(by)
    }

    /// The user answers a waiting push now (`approve`, `deny` or `fraud`). Conflict once it has
    /// ended, not found for an unknown txid.
    pub fn answer_push(&self, txid: &str, answer: Outcome) -> Result<(), ControlError> {
        self.app.answer_push(txid, answer)
    }

    /// The user follows the newest activation link sent to a phone: it becomes activated.
    /// Answers the phone as the Admin API renders it. Conflict when no link is pending, gone
    /// when it expired.
    pub fn follow_activation(&self, phone: &PhoneRef) -> Result<serde_json::Value, ControlError> {
        self.app.follow_activation(phone)
    }

    /// The user follows the enrolment link sent for `username`: the user is created and, with
    /// a `number`, enrols that phone with Duo Mobile activated, as Duo's enrolment page has a
    /// user do. Answers the user. Conflict when nothing is pending, gone when it expired.
    pub fn follow_enrollment(&self, username: &str, number: Option<&str>) -> Result<serde_json::Value, ControlError> {
        self.app.follow_enrollment(username, number)
    }

    /// The user scans an `/auth/v2/enroll` activation code (`duo://…`) with Duo Mobile: an
    /// activated smartphone is attached to the code's user. Answers `{user_id, phone_id}`.
    /// Not found for an unknown code, conflict once scanned, gone when expired.
    pub fn scan_enrollment(&self, activation_code: &str) -> Result<serde_json::Value, ControlError> {
        self.app.scan_enrollment(activation_code)
    }

    /// Empties the audit log (sequence numbers keep counting).
    pub fn clear_audit(&self) {
        lock(&self.app.state).audit.clear();
    }

    /// Requests served per route pattern.
    pub fn stats(&self) -> BTreeMap<String, u64> {
        lock(&self.app.stats).clone()
    }

    /// Requests the rate limit (`--rate-limit`) refused with 429, since start or the last reset.
    pub fn rate_limited(&self) -> u64 {
        self.app.rate_limited.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The fault configuration, counters as they stand.
    pub fn faults(&self) -> Faults {
        lock(&self.app.faults).clone()
    }

    /// Replaces the fault configuration.
    pub fn set_faults(&self, faults: Faults) -> Result<(), Error> {
        faults.validate(&routes::patterns()).map_err(Error::Fault)?;
        *lock(&self.app.faults) = faults;
        Ok(())
    }

    /// A copy of the whole state, secrets included (it is what the state file holds), stamped
    /// with the sim time.
    pub fn state(&self) -> State {
        self.app.snapshot()
    }

    /// Writes the state file.
    pub fn save(&self, path: &Path) -> Result<(), Error> {
        self.state().save(path)
    }

    /// Back to the state at start, with the starting faults and no stats.
    pub fn reset(&self) {
        reset(&self.app);
    }

    /// Asks the server to stop; [`Sim::closed`] resolves once it has.
    pub fn begin_shutdown(&self) {
        // Fails only when the server has stopped already, which is what was asked.
        let _ = self.stop.send(true);
    }

    /// A future that ends when the server has stopped.
    pub fn closed(&self) -> impl Future<Output = ()> + Send + 'static {
        let mut stopped = self.stopped.clone();
        async move {
            // An error means the server task is gone, which is also "stopped".
            let _ = stopped.wait_for(|s| *s).await;
        }
    }

    /// Stops accepting, lets open requests finish (up to a few seconds), and returns the final state.
    pub async fn shutdown(self) -> State {
        self.begin_shutdown();
        self.closed().await;
        self.state()
    }
}

pub(crate) fn reset(app: &App) {
    *lock(&app.state) = app.initial.clone();
    *lock(&app.faults) = app.options.faults.clone();
    lock(&app.stats).clear();
    if let Some(buckets) = &app.buckets {
        lock(buckets).clear();
    }
    app.rate_limited.store(0, std::sync::atomic::Ordering::Relaxed);
    // Held long-polls re-check and find their txid gone.
    app.clock.wake();
}

/// Error a service returns to make hyper close the connection without a response.
#[derive(Debug, thiserror::Error)]
#[error("connection dropped by a `drop_after_apply` fault")]
struct Dropped;

async fn accept_loop(
    listener: TcpListener,
    router: Router,
    header_timeout: Duration,
    mut stop: watch::Receiver<bool>,
    stopped: watch::Sender<bool>,
) {
    let graceful = GracefulShutdown::new();
    // A client that trickles its header (slowloris) is cut off instead of holding a task forever.
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new()).header_read_timeout(header_timeout);
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    // Small JSON answers: without NODELAY, Nagle adds delay to keep-alive clients.
                    let _ = stream.set_nodelay(true);
                    let conn = http.serve_connection(TokioIo::new(stream), service(router.clone(), peer));
                    let conn = graceful.watch(conn);
                    tokio::spawn(async move {
                        // A closed or dropped connection is routine for a server.
                        let _ = conn.await;
                    });
                }
                // Out of file descriptors and the like: back off instead of spinning.
                Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            },
            () = stopped_signal(&mut stop) => break,
        }
    }
    drop(listener);
    let _ = tokio::time::timeout(DRAIN_LIMIT, graceful.shutdown()).await;
    let _ = stopped.send(true);
}

/// Ends when a stop is asked for (or the handle is gone). The guard `wait_for` returns is dropped
/// here, because it must not live in the accept loop's future, which moves between threads.
async fn stopped_signal(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

fn service(
    router: Router,
    peer: SocketAddr,
) -> impl hyper::service::Service<
    hyper::Request<Incoming>,
    Response = axum::response::Response,
    Error = Dropped,
    Future = impl Future<Output = Result<axum::response::Response, Dropped>> + Send,
> + Clone {
    hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
        let mut router = router.clone();
        req.extensions_mut().insert(Peer(peer));
        async move {
            let response = match router.call(req.map(axum::body::Body::new)).await {
                Ok(response) => response,
                Err(never) => match never {},
            };
            if response.extensions().get::<DropConnection>().is_some() {
                return Err(Dropped);
            }
            Ok(response)
        }
    })
}
