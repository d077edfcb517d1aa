//! The OTLP exporter in process: which spans become which, their parents, the bounded queue, a
//! collector that never answers (paused clock), flush at shutdown. The whole path through
//! `flowcat serve` and the simulator is `tests/serve_traces.rs`.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use flowcat_serve::telemetry::{Settings, pipeline};
use serde_json::Value;
use tracing_subscriber::layer::SubscriberExt as _;

type Seen = Arc<Mutex<Vec<(String, Value)>>>;

/// A collector stand-in on loopback: every POST's content type and JSON body; answers `status`.
async fn collector(status: StatusCode, hang: bool) -> (String, Seen) {
    let seen: Seen = Arc::default();
    let s = seen.clone();
    let app = Router::new().route(
        "/v1/traces",
        post(move |headers: HeaderMap, body: Bytes| {
            let s = s.clone();
            async move {
                if hang {
                    std::future::pending::<()>().await;
                }
                let ct = headers.get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
                s.lock().expect("lock").push((ct, serde_json::from_slice(&body).expect("JSON")));
                (status, "{}")
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}"), seen)
}

fn spans(seen: &Seen) -> Vec<Value> {
    let seen = seen.lock().expect("lock");
    seen.iter()
        .flat_map(|(_, b)| b["resourceSpans"][0]["scopeSpans"][0]["spans"].as_array().cloned().unwrap_or_default())
        .collect()
}

fn attr<'a>(span: &'a Value, key: &str) -> Option<&'a Value> {
    let list = span["attributes"].as_array()?;
    let a = list.iter().find(|a| a["key"] == key)?;
    a["value"].get("stringValue").or_else(|| a["value"].get("intValue"))
}

/// What the engine, the node kinds and the service open, in miniature: a request span around a
/// service run, the engine's run inside it, a node, a subflow with a node making two attempts.
fn a_run() {
    let request = tracing::info_span!(target: "flowcat_serve", "request", secret = "hunter2");
    let _r = request.enter();
    let run = tracing::info_span!(target: "flowcat_serve::runs", "run", run_id = "r1", flow = "f.main", status = tracing::field::Empty);
    let _g = run.enter();
    {
        let engine = tracing::info_span!(target: "flowcat_engine::run", "run", flow = "f.main");
        let _e = engine.enter();
        let node = tracing::info_span!(target: "flowcat_engine::run::exec", "node", id = "user", kind = "subflow", status = tracing::field::Empty);
        let _n = node.enter();
        {
            let sub = tracing::info_span!(target: "flowcat_engine::run", "subflow", flow = "f.sub", depth = 1);
            let _s = sub.enter();
            let inner = tracing::info_span!(target: "flowcat_engine::run::exec", "node", id = "lookup", kind = "rest_call", input = "jdoe");
            let _i = inner.enter();
            for attempt in 1..=2usize {
                let req = tracing::info_span!(
                    target: "flowcat_nodes::http",
                    "request",
                    method = "GET",
                    route = "/admin/v1/users/{user_id}",
                    attempt,
                    integration = "duo_admin",
                    status_code = tracing::field::Empty,
                    path = "/admin/v1/users/DU123",
                );
                req.record("status_code", if attempt == 1 { 429u64 } else { 200 });
                let _q = req.enter();
            }
        }
        node.record("status", "succeeded");
    }
    run.record("status", "succeeded");
}

#[tokio::test]
async fn spans_nest_run_node_subflow_request_and_carry_only_listed_fields() {
    let (url, seen) = collector(StatusCode::OK, false).await;
    let (layer, mut telemetry) = pipeline(Settings::new(&url, Some("svc")).expect("valid")).expect("pipeline");
    telemetry.start();
    let subscriber = tracing_subscriber::registry().with(layer);
    tracing::subscriber::with_default(subscriber, a_run);
    telemetry.shutdown().await;

    let bodies = seen.lock().expect("lock").clone();
    assert!(bodies.iter().all(|(ct, _)| ct == "application/json"), "{bodies:?}");
    let all = spans(&seen);
    let text = serde_json::to_string(&all).expect("JSON");
    for never in ["hunter2", "jdoe", "DU123"] {
        assert!(!text.contains(never), "`{never}` was exported: {text}");
    }
    let by_name = |name: &str| all.iter().filter(|s| s["name"] == name).cloned().collect::<Vec<_>>();
    let runs = by_name("run f.main");
    assert_eq!(runs.len(), 1, "one span for the service's and the engine's run: {text}");
    let run = &runs[0];
    assert!(run.get("parentSpanId").is_none(), "the request span is not exported, the run is the root");
    assert_eq!(attr(run, "flowcat.run.id"), Some(&Value::from("r1")));
    assert_eq!(attr(run, "flowcat.run.status"), Some(&Value::from("succeeded")));
    let node = &by_name("node user")[0];
    assert_eq!(node["parentSpanId"], run["spanId"]);
    assert_eq!(attr(node, "flowcat.node.status"), Some(&Value::from("succeeded")));
    let sub = &by_name("subflow f.sub")[0];
    assert_eq!(sub["parentSpanId"], node["spanId"], "a subflow nests under its calling node");
    let lookup = &by_name("node lookup")[0];
    assert_eq!(lookup["parentSpanId"], sub["spanId"]);
    let requests = by_name("GET /admin/v1/users/{user_id}");
    assert_eq!(requests.len(), 2);
    for (i, r) in requests.iter().enumerate() {
        assert_eq!(r["parentSpanId"], lookup["spanId"]);
        assert_eq!(r["kind"], 3);
        assert_eq!(attr(r, "flowcat.http.attempt"), Some(&Value::from((i + 1).to_string())));
    }
    assert_eq!(requests[0]["status"]["code"], 2, "a 429 is an error");
    assert_eq!(requests[1]["status"]["code"], 0);
    assert!(all.iter().all(|s| s["traceId"] == run["traceId"]), "one trace per run");
    assert_eq!(all.len(), 6, "{text}");
    assert_eq!(telemetry_counts(&bodies), 6);
}

fn telemetry_counts(bodies: &[(String, Value)]) -> usize {
    bodies.iter().map(|(_, b)| b["resourceSpans"][0]["scopeSpans"][0]["spans"].as_array().map_or(0, Vec::len)).sum()
}

#[test]
fn a_full_queue_drops_and_counts_never_waits() {
    let mut settings = Settings::new("http://127.0.0.1:9", None).expect("valid");
    settings.max_queue = 3;
    // The exporter is not started: nothing takes spans out of the queue.
    let (layer, telemetry) = pipeline(settings).expect("pipeline");
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
        for i in 0..10 {
            let _ = tracing::info_span!(target: "flowcat_engine::run", "run", flow = i).entered();
        }
    });
    assert_eq!(telemetry.stats.dropped_full(), 7);
}

#[tokio::test(start_paused = true)]
async fn a_collector_that_never_answers_costs_the_export_timeout_at_most() {
    let (url, seen) = collector(StatusCode::OK, true).await;
    let mut settings = Settings::new(&url, None).expect("valid");
    settings.timeout = Duration::from_secs(3);
    let (layer, mut telemetry) = pipeline(settings).expect("pipeline");
    telemetry.start();
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
        let _ = tracing::info_span!(target: "flowcat_engine::run", "run", flow = "f").entered();
    });
    let stats = telemetry.stats.clone();
    let t0 = tokio::time::Instant::now();
    telemetry.shutdown().await;
    let took = t0.elapsed();
    assert!(took >= Duration::from_secs(3) && took < Duration::from_secs(4), "{took:?}");
    assert_eq!((stats.exported(), stats.dropped_failed()), (0, 1));
    assert!(seen.lock().expect("lock").is_empty());
}

#[tokio::test]
async fn a_refused_batch_is_dropped_and_counted() {
    let (url, seen) = collector(StatusCode::BAD_REQUEST, false).await;
    let (layer, mut telemetry) = pipeline(Settings::new(&url, None).expect("valid")).expect("pipeline");
    telemetry.start();
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
        let _ = tracing::info_span!(target: "flowcat_engine::run", "run", flow = "f").entered();
    });
    let stats = telemetry.stats.clone();
    telemetry.shutdown().await;
    assert_eq!(seen.lock().expect("lock").len(), 1, "a 400 is not tried again");
    assert_eq!((stats.exported(), stats.dropped_failed()), (0, 1));
}
