//! Completion webhooks over real HTTP on loopback: a receiver stand-in (axum on 127.0.0.1)
//! checks every delivery's signature with the secret. Runs go through the API (the router in
//! process); the deliverer runs on a clock the test moves, so backoff is tested without sleeping.

use std::collections::VecDeque;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, Request, StatusCode};
use axum::response::{IntoResponse, Response};
use flowcat_engine::journal::Store;
use flowcat_engine::outbox::NoticeState;
use flowcat_journal::Journal;
use flowcat_nodes::duo::Secret;
use flowcat_serve::webhook::{Clock, Deliverer, ManualClock, SystemClock};
use flowcat_serve::{App, Config};
use http_body_util::BodyExt as _;
use serde_json::Value;
use tower::ServiceExt as _;

const ADMIN: &str = "admin-token-0123456789abcdef0123";
const SECRET: &str = "webhook-canary-secret-7f3a9c1e5b2d4f60";

const FLOW: &str = r#"
id: t.hello
inputs:
  name: { type: string }
  fail_it: { type: boolean, default: false }
nodes:
  - id: greet
    kind: set
    values: { text: "hello {{inputs.name}}" }
  - id: refuse
    kind: fail
    when: "{{inputs.fail_it}}"
    code: refused
    message: "refused on purpose"
outputs:
  text: "{{nodes.greet.text}}"
"#;

/// What the receiver got: one request.
#[derive(Clone, Debug)]
struct Got {
    headers: HeaderMap,
    body: Bytes,
}

/// An answer: a status and maybe a `Retry-After`.
type Scripted = (u16, Option<&'static str>);

#[derive(Clone, Default)]
struct Receiver {
    /// The answers to give, in order (status, `Retry-After`); 200 once they run out.
    script: Arc<Mutex<VecDeque<Scripted>>>,
    got: Arc<Mutex<Vec<Got>>>,
}

impl Receiver {
    fn got(&self) -> Vec<Got> {
        self.got.lock().expect("lock").clone()
    }
}

async fn hook(State(r): State<Receiver>, headers: HeaderMap, body: Bytes) -> Response {
    r.got.lock().expect("lock").push(Got { headers, body });
    let (status, after) = r.script.lock().expect("lock").pop_front().unwrap_or((200, None));
    let mut response = (StatusCode::from_u16(status).expect("a status"), "").into_response();
    if let Some(a) = after {
        response.headers_mut().insert("retry-after", a.parse().expect("a header"));
    }
    response
}

/// A receiver on 127.0.0.1 answering `script`; its URL.
async fn receiver(script: &[Scripted]) -> (Receiver, String) {
    let r = Receiver { script: Arc::new(Mutex::new(script.iter().copied().collect())), ..Receiver::default() };
    let app = axum::Router::new().route("/hook", axum::routing::post(hook)).with_state(r.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await });
    (r, format!("http://{addr}/hook"))
}

/// Checks a delivery as a receiver must: a valid signature over its timestamp and body.
fn verified(got: &Got, now_s: u64) -> Value {
    let h = |n: &str| got.headers.get(n).and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
    let ok = flowcat_serve::webhook::verify(
        &Secret::new(SECRET),
        &h("flowcat-timestamp"),
        &h("flowcat-signature"),
        &got.body,
        now_s,
        300,
    );
    assert!(ok, "a valid signature: {:?}", got.headers);
    assert_eq!(h("content-type"), "application/json");
    let body: Value = serde_json::from_slice(&got.body).expect("JSON");
    assert_eq!(h("flowcat-event"), body["id"].as_str().expect("an event id"));
    body
}

struct Service {
    app: Arc<App>,
    journal: Arc<Journal>,
    deliverer: Arc<Deliverer>,
}

/// The service over the state folder `dir/state`, with hook `ops` to `url`.
fn service(dir: &Path, url: &str, retry: &str, clock: Arc<ManualClock>) -> Service {
    let flows = dir.join("flows");
    std::fs::create_dir_all(&flows).expect("flows");
    std::fs::write(flows.join("hello.yaml"), FLOW).expect("flow");
    std::fs::write(
        dir.join("integrations.yaml"),
        "integrations:\n  duo_admin:\n    kind: duo_admin\n    host: \"127.0.0.1:9\"\n    ikey: DIXXXXXXXXXXXXXXXXXX\n    \
         skey: \"canarysecretkey000000000000000000000000c\"\n    loopback_http: true\n",
    )
    .expect("integrations");
    let text = format!(
        "integrations: integrations.yaml\ntokens:\n  - name: admin\n    sha256: {}\n    flows: ['*']\n\
         webhooks:\n  - name: ops\n    url: {url}\n    secret: {SECRET}\n    flows: ['t.*']\n    retry: {retry}\n",
        flowcat_serve::auth::hex(&flowcat_serve::auth::hash(ADMIN)),
    );
    let config = Config::parse(&text, "serve.yaml", dir).expect("a valid config");
    let file = flowcat_nodes::integrations::load(&config.integrations, &|_| None).expect("integrations");
    let catalog = flowcat_nodes::embed::load_catalog(&[flows]).expect("catalog");
    let journal = Arc::new(Journal::open(&dir.join("state")).expect("journal"));
    let store: Arc<dyn Store> = journal.clone();
    let hooks = config.webhooks.clone();
    let app = App::new(config, catalog, file, store.clone());
    let deliverer = Deliverer::with_clock(&hooks, store, app.runs.metrics.clone(), clock).expect("a deliverer");
    Service { app, journal, deliverer: Arc::new(deliverer) }
}

fn clock() -> Arc<ManualClock> {
    Arc::new(ManualClock::new(SystemClock.now_ms()))
}

async fn call(app: &Arc<App>, req: Request<Body>) -> (StatusCode, String) {
    let response = flowcat_serve::router(app.clone()).oneshot(req).await.expect("an answer");
    let status = response.status();
    let body = response.into_body().collect().await.expect("a body").to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

/// Runs `t.hello` through the API and waits for its end: its id.
async fn run(app: &Arc<App>, inputs: &str) -> String {
    let req = Request::post("/v1/flows/t.hello/runs?wait=20s")
        .header("authorization", format!("Bearer {ADMIN}"))
        .header("content-type", "application/json")
        .body(Body::from(inputs.to_owned()))
        .expect("a request");
    let (status, body) = call(app, req).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let v: Value = serde_json::from_str(&body).expect("JSON");
    v["id"].as_str().expect("an id").to_owned()
}

async fn get(app: &Arc<App>, path: &str) -> String {
    let req =
        Request::get(path).header("authorization", format!("Bearer {ADMIN}")).body(Body::empty()).expect("a request");
    let (status, body) = call(app, req).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

/// Collects the log lines of the test's thread.
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("lock").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Logs {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().expect("lock")).into_owned()
    }
}

fn capture() -> (Logs, tracing::subscriber::DefaultGuard) {
    let logs = Logs::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    (logs, tracing::subscriber::set_default(subscriber))
}

#[tokio::test]
async fn a_run_through_the_api_is_delivered_once_signed_with_its_record() {
    let (logs, _guard) = capture();
    let dir = tempfile::tempdir().expect("tempdir");
    let (receiver, url) = receiver(&[]).await;
    let clock = clock();
    let s = service(dir.path(), &url, "{ initial: 10s }", clock.clone());
    let id = run(&s.app, r#"{"name": "ada"}"#).await;
    clock.advance(Duration::from_secs(1));
    assert_eq!(s.deliverer.tick().await, 1);
    assert_eq!(s.deliverer.tick().await, 0, "delivered: never sent again");
    let got = receiver.got();
    assert_eq!(got.len(), 1, "exactly one delivery");
    let body = verified(&got[0], clock.now_ms() / 1000);
    assert_eq!(body["type"], "run.ended");
    assert_eq!(body["hook"], "ops");
    // The run, as `GET /v1/runs/{id}` answers it.
    let shown: Value = serde_json::from_str(&get(&s.app, &format!("/v1/runs/{id}")).await).expect("JSON");
    assert_eq!(body["run"], shown);
    assert_eq!(body["run"]["status"], "succeeded");
    assert_eq!(body["run"]["record"]["outputs"]["text"], "hello ada");
    let notices = s.journal.outbox().expect("outbox").notices(None, 10).expect("notices");
    assert_eq!(notices.len(), 1);
    assert_eq!((notices[0].state, notices[0].attempts), (NoticeState::Delivered, 1));
    assert_eq!(notices[0].event, body["id"].as_str().expect("id"));

    // A failed run is told too, with its status; a run of a flow the hook does not name is not
    // (the hook's `flows: ['t.*']`: every flow here matches, so check the events instead).
    let failed = run(&s.app, r#"{"name": "eve", "fail_it": true}"#).await;
    assert_eq!(s.deliverer.tick().await, 1);
    let got = receiver.got();
    let body = verified(&got[1], clock.now_ms() / 1000);
    assert_eq!((body["run"]["id"].as_str(), body["run"]["status"].as_str()), (Some(failed.as_str()), Some("failed")));
    assert_ne!(got[0].headers["flowcat-event"], got[1].headers["flowcat-event"]);

    let metrics = get(&s.app, "/metrics").await;
    assert!(metrics.contains("flowcat_webhook_deliveries_total{hook=\"ops\",outcome=\"delivered\"} 2\n"), "{metrics}");
    assert!(logs.text().contains("webhook delivered"), "{}", logs.text());

    // The canary: the secret is in no answer, metric, log line or journal byte.
    let answers = [
        get(&s.app, &format!("/v1/runs/{id}")).await,
        get(&s.app, "/v1/runs").await,
        metrics,
        get(&s.app, "/v1/openapi.json").await,
    ];
    for a in &answers {
        assert!(!a.contains(SECRET), "the secret in an answer: {a}");
    }
    assert!(!logs.text().contains(SECRET), "the secret in the logs");
    assert!(!format!("{:?} {:?}", s.app.config, s.deliverer).contains(SECRET), "the secret in Debug");
    s.journal.flush().await.expect("flush");
    let state = dir.path().join("state");
    for entry in std::fs::read_dir(&state).expect("state") {
        let path = entry.expect("entry").path();
        if path.is_file() {
            let bytes = std::fs::read(&path).expect("read");
            assert!(!bytes.windows(SECRET.len()).any(|w| w == SECRET.as_bytes()), "the secret in {}", path.display());
            assert!(
                !bytes.windows(url.len()).any(|w| w == url.as_bytes()),
                "the hook's URL in {}: notices name the hook",
                path.display()
            );
        }
    }
}

#[tokio::test]
async fn a_receiver_failing_twice_gets_it_on_the_third_attempt_after_the_backoff() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (receiver, url) = receiver(&[(500, None), (503, None)]).await;
    let clock = clock();
    let s = service(dir.path(), &url, "{ initial: 10s, max_delay: 1m }", clock.clone());
    run(&s.app, r#"{"name": "ada"}"#).await;
    clock.advance(Duration::from_secs(1));
    assert_eq!(s.deliverer.tick().await, 1, "attempt 1: 500");
    // The first backoff is 5 to 10 s (10 s with equal jitter).
    assert_eq!(s.deliverer.tick().await, 0);
    clock.advance(Duration::from_millis(4_900));
    assert_eq!(s.deliverer.tick().await, 0, "not before the backoff");
    clock.advance(Duration::from_millis(5_100));
    assert_eq!(s.deliverer.tick().await, 1, "attempt 2: 503");
    // The second is 10 to 20 s.
    clock.advance(Duration::from_millis(9_900));
    assert_eq!(s.deliverer.tick().await, 0, "not before the doubled backoff");
    clock.advance(Duration::from_millis(10_100));
    assert_eq!(s.deliverer.tick().await, 1, "attempt 3: 200");

    let got = receiver.got();
    assert_eq!(got.len(), 3);
    let now = clock.now_ms() / 1000;
    let bodies: Vec<Value> = got.iter().map(|g| verified(g, now)).collect();
    assert!(bodies.windows(2).all(|w| w[0] == w[1]), "every attempt sends the same event and body");
    assert!(got.windows(2).all(|w| w[0].body == w[1].body));
    let stamps: Vec<&str> = got.iter().map(|g| g.headers["flowcat-timestamp"].to_str().expect("ascii")).collect();
    assert!(stamps[0] < stamps[1] && stamps[1] < stamps[2], "each attempt is signed at its own time: {stamps:?}");
    let n = &s.journal.outbox().expect("outbox").notices(None, 10).expect("notices")[0];
    assert_eq!((n.state, n.attempts), (NoticeState::Delivered, 3));
    let metrics = get(&s.app, "/metrics").await;
    assert!(metrics.contains("flowcat_webhook_deliveries_total{hook=\"ops\",outcome=\"retried\"} 2\n"), "{metrics}");
    assert!(metrics.contains("flowcat_webhook_deliveries_total{hook=\"ops\",outcome=\"delivered\"} 1\n"), "{metrics}");
    clock.advance(Duration::from_secs(600));
    assert_eq!(s.deliverer.tick().await, 0, "delivered: never sent again");
    // A receiver keeping a five-minute replay window refuses the first attempt's bytes now.
    assert!(!flowcat_serve::webhook::verify(
        &Secret::new(SECRET),
        got[0].headers["flowcat-timestamp"].to_str().expect("ascii"),
        got[0].headers["flowcat-signature"].to_str().expect("ascii"),
        &got[0].body,
        clock.now_ms() / 1000,
        300,
    ));
}

#[tokio::test]
async fn retry_after_is_honoured_when_longer_than_the_backoff() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (receiver, url) = receiver(&[(429, Some("120"))]).await;
    let clock = clock();
    let s = service(dir.path(), &url, "{ initial: 2s }", clock.clone());
    run(&s.app, r#"{"name": "ada"}"#).await;
    clock.advance(Duration::from_secs(1));
    assert_eq!(s.deliverer.tick().await, 1);
    clock.advance(Duration::from_secs(119));
    assert_eq!(s.deliverer.tick().await, 0, "the receiver asked for 120 s");
    clock.advance(Duration::from_secs(1));
    assert_eq!(s.deliverer.tick().await, 1);
    assert_eq!(receiver.got().len(), 2);
}

#[tokio::test]
async fn deliveries_are_given_up_after_max_attempts_or_a_refusal_and_stay_visible() {
    let (logs, _guard) = capture();
    let dir = tempfile::tempdir().expect("tempdir");
    let (receiver, url) = receiver(&[(500, None), (502, None), (401, None)]).await;
    let clock = clock();
    let s = service(dir.path(), &url, "{ initial: 1s, max_attempts: 2 }", clock.clone());
    run(&s.app, r#"{"name": "ada"}"#).await;
    clock.advance(Duration::from_secs(1));
    assert_eq!(s.deliverer.tick().await, 1);
    clock.advance(Duration::from_secs(2));
    assert_eq!(s.deliverer.tick().await, 1);
    clock.advance(Duration::from_secs(3600));
    assert_eq!(s.deliverer.tick().await, 0, "given up after 2 attempts");
    // A 4xx (here 401: the receiver refuses the signature) is not retried.
    run(&s.app, r#"{"name": "bob"}"#).await;
    assert_eq!(s.deliverer.tick().await, 1);
    clock.advance(Duration::from_secs(3600));
    assert_eq!(s.deliverer.tick().await, 0);
    assert_eq!(receiver.got().len(), 3);
    let failed = s.journal.outbox().expect("outbox").notices(Some(NoticeState::Failed), 10).expect("notices");
    assert_eq!(failed.len(), 2);
    let errors: Vec<&str> = failed.iter().filter_map(|n| n.last_error.as_deref()).collect();
    assert!(errors.iter().any(|e| e.contains("HTTP 401") && e.contains("not retried")), "{errors:?}");
    assert!(errors.iter().any(|e| e.contains("HTTP 502") && e.contains("max_attempts")), "{errors:?}");
    let metrics = get(&s.app, "/metrics").await;
    assert!(metrics.contains("flowcat_webhook_deliveries_total{hook=\"ops\",outcome=\"failed\"} 2\n"), "{metrics}");
    assert_eq!(logs.text().matches("webhook given up").count(), 2, "{}", logs.text());
}

#[tokio::test]
async fn a_pending_delivery_survives_a_restart_and_is_sent_by_the_next_service() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (receiver, url) = receiver(&[(500, None)]).await;
    let clock = clock();
    // Two runs end; the service stops before one is ever attempted and after the other failed once.
    let first = service(dir.path(), &url, "{ initial: 10s }", clock.clone());
    let a = run(&first.app, r#"{"name": "ada"}"#).await;
    clock.advance(Duration::from_secs(1));
    assert_eq!(first.deliverer.tick().await, 1, "attempt 1 of a: 500");
    let b = run(&first.app, r#"{"name": "bob"}"#).await;
    let Service { app, journal, deliverer } = first;
    app.runs.shutdown(Duration::ZERO, tokio::sync::watch::channel(0).1).await;
    drop((app, deliverer));
    let journal = Arc::into_inner(journal).expect("the last holder of the journal");
    drop(journal);

    let second = service(dir.path(), &url, "{ initial: 10s }", clock.clone());
    clock.advance(Duration::from_secs(10));
    assert_eq!(second.deliverer.tick().await, 2, "both pending notices resumed");
    assert_eq!(second.deliverer.tick().await, 0);
    let got = receiver.got();
    assert_eq!(got.len(), 3);
    let now = clock.now_ms() / 1000;
    let runs: Vec<String> =
        got.iter().map(|g| verified(g, now)["run"]["id"].as_str().expect("id").to_owned()).collect();
    assert_eq!(runs.iter().filter(|r| **r == a).count(), 2);
    assert_eq!(runs.iter().filter(|r| **r == b).count(), 1);
    assert_eq!(
        got[0].body,
        got.iter()
            .skip(1)
            .find(|g| g.headers["flowcat-event"] == got[0].headers["flowcat-event"])
            .expect("a again")
            .body
    );
    let outbox = second.journal.outbox().expect("outbox");
    assert!(outbox.notices(None, 10).expect("notices").iter().all(|n| n.state == NoticeState::Delivered));
}
