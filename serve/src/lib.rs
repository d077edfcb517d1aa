//! `flowcat serve`: the catalog behind an HTTP API. This crate owns the service (routes, tokens,
//! limits, metrics, shutdown); runs go through the front hall and the journal
//! (`flowcat_nodes::hall`), as `flowcat run` does. See docs/serve.md.

pub mod api;
pub mod auth;
pub mod config;
pub mod metrics;
pub mod routes;
pub mod runs;
pub mod telemetry;
pub mod tls;
pub mod webhook;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use flowcat_engine::Catalog;
use flowcat_engine::journal::Store;
use flowcat_engine::run::Options;
use flowcat_nodes::hall::Hall;
use flowcat_nodes::integrations::Integrations;
use tokio::sync::watch;

pub use config::Config;

/// The service's state, shared by every request.
#[derive(Debug)]
pub struct App {
    pub config: Config,
    pub runs: Arc<runs::Runs>,
    /// Per token name: its runs in flight.
    pub in_flight: HashMap<String, Arc<AtomicUsize>>,
}

impl App {
    /// The service over `catalog`, `integrations` and the journal `store`: a front hall whose
    /// observer is the metrics.
    pub fn new(config: Config, catalog: Catalog, integrations: Integrations, store: Arc<dyn Store>) -> Arc<App> {
        let metrics = Arc::new(metrics::Metrics::default());
        webhook::subscribe(&config.webhooks, store.as_ref());
        let hall = Hall::new(Arc::new(catalog), Options::default(), Arc::new(runs::Watch(metrics.clone())))
            .with_integrations(integrations)
            .with_store(store);
        let in_flight = config.tokens.iter().map(|t| (t.name.clone(), Arc::new(AtomicUsize::new(0)))).collect();
        let runs = runs::Runs::new(hall, metrics, config.limits.evict_waiting_after);
        Arc::new(App { config, runs, in_flight })
    }
}

/// The router with its middleware: a request timeout and a log line per request (method, route
/// template, status, time: never a header, a body or a query string).
pub fn router(app: Arc<App>) -> axum::Router {
    routes::router()
        .layer(axum::middleware::from_fn_with_state(app.clone(), limit_time))
        .layer(axum::middleware::from_fn(log_request))
        .with_state(app)
}

async fn limit_time(State(app): State<Arc<App>>, request: Request, next: Next) -> Response {
    let limit = app.config.limits.request_timeout;
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(r) => r,
        Err(_) => {
            app.runs.metrics.refused("timeout");
            let body = serde_json::json!({ "error": "timeout", "message": "the request took longer than `limits.request_timeout`" });
            (axum::http::StatusCode::SERVICE_UNAVAILABLE, axum::Json(body)).into_response()
        }
    }
}

async fn log_request(request: Request, next: Next) -> Response {
    let method = request.method().clone();
    let route = request.extensions().get::<MatchedPath>().map(|p| p.as_str().to_owned());
    let started = tokio::time::Instant::now();
    let response = next.run(request).await;
    let ms = started.elapsed().as_secs_f64() * 1e3;
    tracing::info!(
        method = %method,
        route = route.as_deref().unwrap_or("(none)"),
        status = response.status().as_u16(),
        ms,
        "request"
    );
    response
}

/// Serves `app` on `listener` until the first change of `signals` (SIGTERM or Ctrl-C counted by
/// the caller), sweeping the parked runs every [`runs::SWEEP`] (evicted from memory after
/// `limits.evict_waiting_after`, resumed from the journal when they can go on); then shuts down gracefully ([`runs::Runs::shutdown`]: no new run, a grace
/// period, the rest drained and journaled), and stops answering once every run has ended.
/// `listener` is a `tokio::net::TcpListener` or a [`tls::TlsListener`].
pub async fn serve<L>(listener: L, app: Arc<App>, signals: watch::Receiver<u32>) -> std::io::Result<()>
where
    L: axum::serve::Listener,
    L::Addr: std::fmt::Debug,
{
    let deliverer = webhook::start(&app);
    let runs = app.runs.clone();
    let sweeper = runs.spawn_sweeper();
    let grace = app.config.shutdown_grace;
    let mut first = signals.clone();
    let shutdown = async move {
        if first.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
        tracing::info!(
            grace_s = grace.as_secs(),
            "shutting down: no new runs; the runs in flight get the grace period"
        );
        runs.shutdown(grace, first).await;
        tracing::info!("every run has ended or is parked in the journal");
    };
    let served = axum::serve(listener, router(app)).with_graceful_shutdown(shutdown).await;
    sweeper.abort();
    // Notices still pending stay in the journal: the next start sends them.
    drop(deliverer);
    served
}
