//! The router in process (no socket): the OpenAPI document against the routes served, every
//! refusal (tokens, permissions, ids, bodies), and the shutdown's timing on tokio's paused clock.

use std::path::Path;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use flowcat_serve::{App, Config};
use http_body_util::BodyExt as _;
use serde_json::{Value, json};
use tower::ServiceExt as _;

const ADMIN: &str = "admin-token-0123456789abcdef0123";
const BOT: &str = "chatbot-token-0123456789abcdef01";
const APPROVER: &str = "approver-token-0123456789abcdef0";

struct Fixture {
    app: Arc<App>,
    _dir: tempfile::TempDir,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let integrations = dir.path().join("integrations.yaml");
    // Port 9 (discard): nothing listens; these tests never run a flow to a Duo call.
    std::fs::write(
        &integrations,
        "integrations:\n  duo_admin:\n    kind: duo_admin\n    host: \"127.0.0.1:9\"\n    ikey: DIXXXXXXXXXXXXXXXXXX\n    \
         skey: \"canarysecretkey000000000000000000000000c\"\n    loopback_http: true\n  duo_auth:\n    kind: duo_auth\n    \
         host: \"127.0.0.1:9\"\n    ikey: DIYYYYYYYYYYYYYYYYYY\n    skey: \"canarysecretkey000000000000000000000000d\"\n    \
         loopback_http: true\n",
    )
    .expect("written");
    let text = format!(
        "listen: 127.0.0.1:0\nintegrations: integrations.yaml\ntokens:\n  - name: admin\n    sha256: {}\n    flows: ['*']\n  \
         - name: bot\n    sha256: {}\n    flows: [duo.auth.verify_push, examples.offboard_with_approval]\n  \
         - name: approver\n    sha256: {}\n    flows: ['examples.*']\n    signals: ['*']\n\
         limits:\n  max_body_bytes: 2048\n",
        flowcat_serve::auth::hex(&flowcat_serve::auth::hash(ADMIN)),
        flowcat_serve::auth::hex(&flowcat_serve::auth::hash(BOT)),
        flowcat_serve::auth::hex(&flowcat_serve::auth::hash(APPROVER)),
    );
    let config = Config::parse(&text, "serve.yaml", dir.path()).expect("a valid config");
    let env = |_: &str| None;
    let file = flowcat_nodes::integrations::load(&config.integrations, &env).expect("integrations");
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let catalog = flowcat_nodes::embed::load_catalog(&[root.join("flows"), root.join("examples")]).expect("catalog");
    let store = Arc::new(flowcat_journal::Journal::open(&dir.path().join("state")).expect("journal"));
    Fixture { app: App::new(config, catalog, file, store), _dir: dir }
}

async fn call(app: &Arc<App>, req: Request<Body>) -> (StatusCode, axum::http::HeaderMap, String) {
    let response = flowcat_serve::router(app.clone()).oneshot(req).await.expect("an answer");
    let status = response.status();
    let headers = response.headers().clone();
    let body = response.into_body().collect().await.expect("a body").to_bytes();
    (status, headers, String::from_utf8_lossy(&body).into_owned())
}

fn get(path: &str, token: Option<&str>) -> Request<Body> {
    let mut r = Request::get(path);
    if let Some(t) = token {
        r = r.header("authorization", format!("Bearer {t}"));
    }
    r.body(Body::empty()).expect("a request")
}

fn post(path: &str, token: Option<&str>, content_type: &str, body: impl Into<Body>) -> Request<Body> {
    let mut r = Request::post(path).header("content-type", content_type);
    if let Some(t) = token {
        r = r.header("authorization", format!("Bearer {t}"));
    }
    r.body(body.into()).expect("a request")
}

fn json_of(body: &str) -> Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"))
}

#[tokio::test]
async fn every_documented_route_is_served_and_nothing_else() {
    let f = fixture();
    let (status, _, body) = call(&f.app, get("/v1/openapi.json", None)).await;
    assert_eq!(status, StatusCode::OK);
    let doc = json_of(&body);
    assert_eq!(doc["openapi"], "3.1.0");
    let paths = doc["paths"].as_object().expect("paths");
    let mut operations = 0;
    for (path, methods) in paths {
        for method in methods.as_object().expect("methods").keys() {
            operations += 1;
            let concrete = path.replace("{id}", "rxxxxxxxxxxxxxxx").replace("{name}", "approval");
            let req = Request::builder()
                .method(method.to_uppercase().as_str())
                .uri(&concrete)
                .header("authorization", format!("Bearer {ADMIN}"))
                .body(Body::empty())
                .expect("a request");
            let (status, _, body) = call(&f.app, req).await;
            assert_ne!(status, StatusCode::METHOD_NOT_ALLOWED, "{method} {path}: {body}");
            assert!(!body.contains("no_route"), "{method} {path} is documented but not served: {body}");
            // What the route answered is one of the statuses it documents.
            let documented = methods[method]["responses"].as_object().expect("responses");
            assert!(
                documented.contains_key(status.as_str()),
                "{method} {path} answered {status}, not documented: {body}"
            );
        }
    }
    assert_eq!(operations, flowcat_serve::routes::ROUTES.len());
    // Not documented: not served.
    let (status, _, body) = call(&f.app, get("/v1/secrets", Some(ADMIN))).await;
    assert_eq!((status, json_of(&body)["error"].clone()), (StatusCode::NOT_FOUND, json!("no_route")));
    let (status, _, _) = call(&f.app, post("/v1/flows", Some(ADMIN), "application/json", "{}")).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    let (status, _, _) = call(&f.app, Request::delete("/v1/runs/rx").body(Body::empty()).expect("req")).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
}

#[tokio::test]
async fn refusals_say_nothing_but_their_code() {
    let f = fixture();
    let start = "/v1/flows/duo.admin.retrieve_user_id/runs";
    for (token, want) in [(None, "unauthorized"), (Some("wrong-token"), "unauthorized"), (Some(BOT), "forbidden")] {
        let (status, headers, body) = call(&f.app, post(start, token, "application/json", "{}")).await;
        let code = if want == "unauthorized" { StatusCode::UNAUTHORIZED } else { StatusCode::FORBIDDEN };
        assert_eq!(status, code, "{token:?}");
        assert_eq!(json_of(&body), json!({ "error": want }), "{token:?}: {body}");
        assert_eq!(headers.get("www-authenticate").is_some(), want == "unauthorized");
        assert!(headers.get("access-control-allow-origin").is_none(), "no CORS by default");
    }
    // A token for another flow may not read that flow's signature either.
    let (status, _, _) = call(&f.app, get("/v1/flows/duo.admin.retrieve_user_id", Some(BOT))).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // The bot sees only its flow.
    let (_, _, body) = call(&f.app, get("/v1/flows", Some(BOT))).await;
    let ids: Vec<Value> = json_of(&body)["flows"].as_array().expect("a list").iter().map(|f| f["id"].clone()).collect();
    assert_eq!(ids, vec![json!("duo.auth.verify_push"), json!("examples.offboard_with_approval")]);
    // Without a token, the metrics are refused too.
    let (status, _, _) = call(&f.app, get("/metrics", None)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_flow_answers_its_signature() {
    let f = fixture();
    let (status, _, body) = call(&f.app, get("/v1/flows/duo.auth.verify_push", Some(BOT))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let v = json_of(&body);
    let username = v["inputs"].as_array().expect("inputs").iter().find(|i| i["name"] == "username").expect("username");
    assert_eq!(username["type"], "string");
    assert!(v["outputs"].as_array().is_some_and(|o| o.iter().any(|o| o["name"] == "verified")), "{v:#}");
    assert!(v["outcomes"].as_array().is_some_and(|o| o.contains(&json!("succeeded"))), "{v:#}");
    assert!(v.get("file").is_none(), "where the service keeps its flows is not the caller's business");
}

#[tokio::test]
async fn ids_with_path_tricks_are_refused_before_any_lookup() {
    let f = fixture();
    let long = "a".repeat(300);
    let tricks = [
        "/v1/flows/..%2F..%2Fetc%2Fpasswd/runs".to_owned(),
        "/v1/flows/%2E%2E/runs".to_owned(),
        "/v1/flows/duo..auth/runs".to_owned(),
        "/v1/flows/flows%2Fduo%2Fverify-push.yaml/runs".to_owned(),
        "/v1/flows/%2Fetc%2Fpasswd/runs".to_owned(),
        format!("/v1/flows/{long}/runs"),
    ];
    for path in &tricks {
        let (status, _, body) = call(&f.app, post(path, Some(ADMIN), "application/json", "{}")).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}: {body}");
    }
    for path in ["/v1/runs/..%2Fjournal.sqlite3", "/v1/runs/R0000", &format!("/v1/runs/{long}")] {
        let (status, _, body) = call(&f.app, get(path, Some(ADMIN))).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}: {body}");
    }
    // `../` that the client did not encode never reaches a handler as an id.
    let (status, _, _) = call(&f.app, get("/v1/flows/../../metrics", Some(ADMIN))).await;
    assert_ne!(status, StatusCode::OK);
}

#[tokio::test]
async fn bodies_are_bounded_and_must_be_json_objects() {
    let f = fixture();
    let start = "/v1/flows/duo.admin.retrieve_user_id/runs";
    let big = format!("{{\"username\": \"{}\"}}", "x".repeat(4096));
    let (status, _, body) = call(&f.app, post(start, Some(ADMIN), "application/json", big.clone())).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    assert_eq!(json_of(&body)["error"], "too_large");
    // Without a Content-Length (streamed), the limit holds as well.
    let stream = futures_body(big);
    let (status, _, _) = call(&f.app, post(start, Some(ADMIN), "application/json", stream)).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    let (status, _, body) = call(&f.app, post(start, Some(ADMIN), "text/plain", "{\"username\":\"a\"}")).await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{body}");
    let (status, _, body) = call(&f.app, post(start, Some(ADMIN), "application/json", "[1]")).await;
    assert_eq!((status, json_of(&body)["error"].clone()), (StatusCode::BAD_REQUEST, json!("bad_input")));
    let (status, _, body) = call(&f.app, post(start, Some(ADMIN), "application/json", "{nope")).await;
    assert_eq!((status, json_of(&body)["error"].clone()), (StatusCode::BAD_REQUEST, json!("bad_json")));
    let (status, _, body) =
        call(&f.app, post(&format!("{start}?wait=10m"), Some(ADMIN), "application/json", "{}")).await;
    assert_eq!((status, json_of(&body)["error"].clone()), (StatusCode::BAD_REQUEST, json!("bad_wait")));
}

/// A body of unknown length.
fn futures_body(text: String) -> Body {
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> = text.into_bytes().chunks(512).map(|c| Ok(c.to_vec())).collect();
    Body::from_stream(tokio_stream_iter(chunks))
}

fn tokio_stream_iter(
    items: Vec<Result<Vec<u8>, std::io::Error>>,
) -> impl futures_core_stream::Stream<Item = Result<Vec<u8>, std::io::Error>> {
    futures_core_stream::iter(items)
}

mod futures_core_stream {
    //! A stream over a vector, without a stream crate.
    pub use futures_core::Stream;
    use std::pin::Pin;
    use std::task::{Context, Poll};

    pub struct Iter<T>(std::vec::IntoIter<T>);

    impl<T: Unpin> Stream for Iter<T> {
        type Item = T;
        fn poll_next(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Option<T>> {
            Poll::Ready(self.0.next())
        }
    }

    pub fn iter<T>(v: Vec<T>) -> Iter<T> {
        Iter(v.into_iter())
    }
}

#[tokio::test]
async fn inputs_are_checked_against_the_signature_with_the_clis_words() {
    let f = fixture();
    let start = "/v1/flows/duo.admin.retrieve_user_id/runs";
    let (status, _, body) =
        call(&f.app, post(start, Some(ADMIN), "application/json", r#"{"email": "not-an-email", "extra": 1}"#)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let v = json_of(&body);
    assert_eq!(v["error"], "bad_input");
    let problems: Vec<&str> = v["problems"].as_array().expect("problems").iter().filter_map(Value::as_str).collect();
    // The runner's own messages: the front hall's check, not one written for HTTP.
    let hall = &f.app.runs.hall;
    let mut inputs = serde_json::Map::new();
    inputs.insert("email".into(), json!("not-an-email"));
    inputs.insert("extra".into(), json!(1));
    let checked = hall.prepare(flowcat_nodes::hall::Call::new("duo.admin.retrieve_user_id", inputs)).expect("prepared");
    let cli = hall.check(&checked).expect_err("refused").to_string();
    assert_eq!(problems, cli.lines().collect::<Vec<_>>());
    assert!(problems.len() >= 2, "{problems:?}");
    // Nothing was journaled.
    let (_, _, body) = call(&f.app, get("/v1/runs", Some(ADMIN))).await;
    assert_eq!(json_of(&body)["runs"], json!([]));
}

#[tokio::test(start_paused = true)]
async fn shutdown_gives_runs_the_grace_then_drains_then_abandons() {
    let f = fixture();
    let runs = f.app.runs.clone();
    let (tx, rx) = tokio::sync::watch::channel(0u32);
    // A run whose nodes never finish on their own: it ends when told to abandon.
    let (stops, ended) = runs.track_for_test(|mut stop| async move {
        let mut seen = Vec::new();
        loop {
            if stop.changed().await.is_err() {
                return seen;
            }
            let level = *stop.borrow();
            seen.push((level, tokio::time::Instant::now()));
            if level == flowcat_engine::run::StopLevel::Abandon {
                return seen;
            }
        }
    });
    let t0 = tokio::time::Instant::now();
    let grace = std::time::Duration::from_secs(30);
    let shutdown = tokio::spawn({
        let runs = runs.clone();
        async move { runs.shutdown(grace, rx).await }
    });
    tokio::task::yield_now().await;
    assert!(runs.stopping(), "no new run once the shutdown started");
    shutdown.await.expect("shutdown ends");
    let seen = ended.await.expect("the run ends");
    drop((stops, tx));
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert_eq!(seen[0].0, flowcat_engine::run::StopLevel::Drain);
    assert_eq!(seen[0].1 - t0, grace);
    assert_eq!(seen[1].0, flowcat_engine::run::StopLevel::Abandon);
    assert_eq!(seen[1].1 - seen[0].1, flowcat_serve::runs::ABANDON_AFTER);
}

#[tokio::test(start_paused = true)]
async fn a_second_signal_skips_the_grace() {
    let f = fixture();
    let runs = f.app.runs.clone();
    let (tx, rx) = tokio::sync::watch::channel(0u32);
    let (_stops, ended) = runs.track_for_test(|mut stop| async move {
        let _ = stop.wait_for(|l| *l == flowcat_engine::run::StopLevel::Drain).await;
        tokio::time::Instant::now()
    });
    let t0 = tokio::time::Instant::now();
    let shutdown = tokio::spawn({
        let runs = runs.clone();
        async move { runs.shutdown(std::time::Duration::from_secs(30), rx).await }
    });
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    tx.send_modify(|n| *n += 1);
    let drained_at = ended.await.expect("the run ends");
    shutdown.await.expect("shutdown ends");
    assert_eq!(drained_at - t0, std::time::Duration::from_secs(2));
}

#[tokio::test]
async fn readiness_checks_journal_catalog_integrations() {
    let f = fixture();
    let (status, _, body) = call(&f.app, get("/readyz", None)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(json_of(&body)["checks"]["journal"], true);
    let (status, _, body) = call(&f.app, get("/healthz", None)).await;
    assert_eq!((status, body.contains("ok")), (StatusCode::OK, true));
}

fn pem(label: &str, der: &[u8]) -> String {
    use base64::Engine as _;
    let text = base64::engine::general_purpose::STANDARD.encode(der);
    let lines: Vec<&str> = text.as_bytes().chunks(64).map(|c| std::str::from_utf8(c).expect("ascii")).collect();
    format!("-----BEGIN {label}-----\n{}\n-----END {label}-----\n", lines.join("\n"))
}

/// `tls:` serves the same router over rustls: a client trusting the certificate gets its answer;
/// a file that is not a key is refused naming the file, never quoting it.
#[tokio::test]
async fn served_over_tls_with_the_configured_certificate() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let f = fixture();
    let dir = tempfile::tempdir().expect("a folder");
    let certified = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()]).expect("a certificate");
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert, pem("CERTIFICATE", certified.cert.der())).expect("written");
    std::fs::write(&key, pem("PRIVATE KEY", &certified.key_pair.serialize_der())).expect("written");
    let tls = flowcat_serve::config::Tls { cert: cert.clone(), key: key.clone() };
    let acceptor = flowcat_serve::tls::acceptor(&tls).expect("a usable pair");
    let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bound");
    let addr = tcp.local_addr().expect("addr");
    let listener = flowcat_serve::tls::TlsListener::new(tcp, acceptor).expect("listener");
    let (_tx, rx) = tokio::sync::watch::channel(0u32);
    tokio::spawn(flowcat_serve::serve(listener, f.app.clone(), rx));

    let mut roots = rustls::RootCertStore::empty();
    roots.add(certified.cert.der().clone()).expect("a root");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let client = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(client));
    let tcp = tokio::net::TcpStream::connect(addr).await.expect("connected");
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").expect("a name");
    let mut stream = connector.connect(name, tcp).await.expect("a TLS handshake");
    stream.write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n").await.expect("sent");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.expect("read");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.ends_with("{\"status\":\"ok\"}"), "{answer}");

    // Plain HTTP on the TLS port gets no answer from the router.
    let mut plain = tokio::net::TcpStream::connect(addr).await.expect("connected");
    plain.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await.expect("sent");
    let mut raw = Vec::new();
    let _ = plain.read_to_end(&mut raw).await;
    assert!(!String::from_utf8_lossy(&raw).contains("\"ok\""));

    std::fs::write(&key, "not a key: secret-material-here").expect("written");
    let Err(e) = flowcat_serve::tls::acceptor(&tls) else { panic!("a file that is not a key was accepted") };
    assert!(e.contains("key.pem") && !e.contains("secret-material"), "{e}");
}

/// A body that sends one byte and then nothing, ever.
struct Stalled(bool);

impl futures_core::Stream for Stalled {
    type Item = Result<Vec<u8>, std::io::Error>;
    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        if self.0 {
            return std::task::Poll::Pending;
        }
        self.0 = true;
        std::task::Poll::Ready(Some(Ok(b"{".to_vec())))
    }
}

/// A client that stalls mid-body is answered 503 (`timeout`) after `request_timeout`, not held
/// forever (the default 60 s, on tokio's paused clock).
#[tokio::test(start_paused = true)]
async fn a_stalled_request_times_out() {
    let f = fixture();
    let t0 = tokio::time::Instant::now();
    let req = post(
        "/v1/flows/duo.admin.retrieve_user_id/runs",
        Some(ADMIN),
        "application/json",
        Body::from_stream(Stalled(false)),
    );
    let (status, _, body) = call(&f.app, req).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(json_of(&body)["error"], "timeout");
    assert_eq!(t0.elapsed(), f.app.config.limits.request_timeout);
}

/// Polls `id` until its status is `want` (the run's task goes on without the request).
async fn until_status(app: &Arc<App>, id: &str, want: &str) -> Value {
    for _ in 0..2000 {
        let (status, _, body) = call(app, get(&format!("/v1/runs/{id}"), Some(APPROVER))).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let v = json_of(&body);
        if v["status"] == want {
            return v;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("run {id} never became {want}");
}

/// Polls `/metrics` until it has the line `want`.
async fn until_metric(app: &Arc<App>, want: &str) {
    let name = want.rsplit_once(' ').map_or(want, |(n, _)| n);
    for _ in 0..2000 {
        if metric(app, name).await == want {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("`/metrics` never said `{want}`: {}", metric(app, name).await);
}

async fn metric(app: &Arc<App>, line: &str) -> String {
    let (_, _, text) = call(app, get("/metrics", Some(APPROVER))).await;
    text.lines().find(|l| l.starts_with(line)).unwrap_or_else(|| panic!("no `{line}` in\n{text}")).to_owned()
}

/// Starts `examples.offboard_with_approval` for `user`: it parks on its `approval` at once
/// (nothing is sent before it, so the integrations' port 9 is never called).
async fn parked_run(app: &Arc<App>, user: &str) -> String {
    let start = "/v1/flows/examples.offboard_with_approval/runs";
    let (status, _, body) =
        call(app, post(start, Some(APPROVER), "application/json", format!(r#"{{"username": "{user}"}}"#))).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let id = json_of(&body)["id"].as_str().expect("an id").to_owned();
    let v = until_status(app, &id, "waiting").await;
    assert_eq!(v["waiting"]["signal"], "approval", "{v:#}");
    assert_eq!(v["waiting"]["delivered"], false, "{v:#}");
    // The journal lists the wait once it is committed; the run counts as parked in memory (and
    // can be evicted) a moment later, when its task hears of that commit.
    for _ in 0..2000 {
        if app.runs.get(&id).is_some_and(|live| live.parked()) {
            return id;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("run {id} is listed as waiting but never parked in memory");
}

fn signal(id: &str, name: &str, token: &str, payload: &str) -> Request<Body> {
    post(&format!("/v1/runs/{id}/signals/{name}"), Some(token), "application/json", payload.to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signal_is_refused_with_the_clis_words_then_wakes_the_run_in_memory() {
    let f = fixture();
    let id = parked_run(&f.app, "alice").await;
    // The run parks in memory once its wait is journaled, on its own task: a moment after the
    // journal lists it waiting.
    until_metric(&f.app, "flowcat_runs_waiting{held=\"memory\"} 1").await;
    // The bot may start the flow, not send its signals: 403, nothing more.
    let (status, _, body) = call(&f.app, signal(&id, "approval", BOT, "{}")).await;
    assert_eq!((status, json_of(&body)), (StatusCode::FORBIDDEN, json!({ "error": "forbidden" })));
    // A payload that does not fit the `wait_for`: every problem, in the journal's words.
    let (status, _, body) = call(&f.app, signal(&id, "approval", APPROVER, r#"{"approved": "yes"}"#)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let v = json_of(&body);
    assert_eq!(v["error"], "bad_payload");
    let spec = flowcat_engine::journal::SignalSpec {
        name: "approval".into(),
        payload: vec![
            ("approved".into(), flowcat_engine::journal::InputType::Boolean),
            ("approver".into(), flowcat_engine::journal::InputType::String),
        ],
    };
    let want = spec.check(&json!({ "approved": "yes" })).expect_err("refused");
    assert_eq!(v["problems"], json!(want), "{v:#}");
    // A signal its flow never waits for, an unknown run, a body that is not a JSON object.
    let (status, _, body) = call(&f.app, signal(&id, "callback", APPROVER, "{}")).await;
    assert_eq!((status, json_of(&body)["error"].clone()), (StatusCode::CONFLICT, json!("not_awaited")), "{body}");
    assert!(json_of(&body)["message"].as_str().is_some_and(|m| m.contains("`approval`")), "{body}");
    let (status, _, body) = call(&f.app, signal("r0000000000000000", "approval", APPROVER, "{}")).await;
    assert_eq!((status, json_of(&body)["error"].clone()), (StatusCode::NOT_FOUND, json!("unknown_run")), "{body}");
    let (status, _, body) = call(&f.app, signal(&id, "approval", APPROVER, "[true]")).await;
    assert_eq!((status, json_of(&body)["error"].clone()), (StatusCode::BAD_REQUEST, json!("bad_payload")), "{body}");
    let plain = post(&format!("/v1/runs/{id}/signals/approval"), Some(APPROVER), "text/plain", "approved");
    assert_eq!(call(&f.app, plain).await.0, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let (status, _, _) = call(&f.app, signal(&id, "appr%2Fval", APPROVER, "{}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Delivered: 202 with what was delivered; the run, held here, wakes and goes on.
    let payload = json!({ "approved": false, "approver": "manager@example.com" });
    let (status, headers, body) = call(&f.app, signal(&id, "approval", APPROVER, &payload.to_string())).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let v = json_of(&body);
    assert_eq!((v["outcome"].clone(), v["payload"].clone()), (json!("delivered"), payload), "{v:#}");
    assert_eq!(headers.get("location").and_then(|h| h.to_str().ok()), Some(format!("/v1/runs/{id}").as_str()));
    let ended = until_status(&f.app, &id, "succeeded").await;
    assert_eq!(ended["record"]["outputs"]["outcome"], "denied", "{ended:#}");
    assert_eq!(ended["record"]["outputs"]["approver"], "manager@example.com", "{ended:#}");
    // Never left memory: woken where it waited.
    assert_eq!(metric(&f.app, "flowcat_runs_evicted_total").await, "flowcat_runs_evicted_total 0");
    assert_eq!(
        metric(&f.app, "flowcat_runs_waiting{held=\"memory\"}").await,
        "flowcat_runs_waiting{held=\"memory\"} 0"
    );
    // The node latency histogram is labelled by node kind.
    let waited = metric(&f.app, "flowcat_node_duration_seconds_count{kind=\"wait_for\",status=\"succeeded\"}").await;
    assert!(waited.ends_with(" 1"), "{waited}");
    // Once it ended, nothing waits any more.
    let (status, _, body) =
        call(&f.app, signal(&id, "approval", APPROVER, &json!({"approved": true, "approver": "x"}).to_string())).await;
    assert_eq!((status, json_of(&body)["error"].clone()), (StatusCode::CONFLICT, json!("finished")), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_parked_too_long_leaves_memory_and_its_signal_resumes_it_from_the_journal() {
    let f = fixture();
    let runs = &f.app.runs;
    let id = parked_run(&f.app, "bob").await;
    let other = parked_run(&f.app, "carol").await;
    assert!(runs.is_live(&id) && runs.is_live(&other));
    // Before `evict_waiting_after` (10 min by default) nothing leaves memory.
    let now = tokio::time::Instant::now();
    runs.sweep(now + std::time::Duration::from_secs(9 * 60));
    tokio::task::yield_now().await;
    assert!(runs.is_live(&id) && runs.is_live(&other));
    // The sweep of eleven minutes later evicts both: their tasks end, their waits stay journaled.
    runs.sweep(now + std::time::Duration::from_secs(11 * 60));
    // A run leaves the live map, then is filed as parked (after a look at the journal): both
    // are waited for.
    for _ in 0..500 {
        if !runs.is_live(&id) && !runs.is_live(&other) && runs.parked_in_journal_count() == 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert!(!runs.is_live(&id) && !runs.is_live(&other), "evicted");
    assert_eq!(runs.parked_in_journal_count(), 2);
    let (_, _, body) = call(&f.app, get(&format!("/v1/runs/{id}"), Some(APPROVER))).await;
    assert_eq!(json_of(&body)["status"], "waiting", "{body}");
    assert_eq!(
        metric(&f.app, "flowcat_runs_waiting{held=\"memory\"}").await,
        "flowcat_runs_waiting{held=\"memory\"} 0"
    );
    assert_eq!(
        metric(&f.app, "flowcat_runs_waiting{held=\"journal\"}").await,
        "flowcat_runs_waiting{held=\"journal\"} 2"
    );
    assert_eq!(metric(&f.app, "flowcat_runs_evicted_total").await, "flowcat_runs_evicted_total 2");
    assert_eq!(metric(&f.app, "flowcat_runs_in_flight").await, "flowcat_runs_in_flight 0");
    // An eviction is not a run that ended.
    let (_, _, text) = call(&f.app, get("/metrics", Some(APPROVER))).await;
    assert!(!text.contains("status=\"interrupted\""), "{text}");
    // A sweep finds nothing to wake: no signal came, no time passed.
    runs.sweep(tokio::time::Instant::now());
    assert!(!runs.is_live(&id));

    // The signal resumes it from the journal, and it finds the payload there.
    let payload = json!({ "approved": false, "approver": "m" }).to_string();
    let (status, _, body) = call(&f.app, signal(&id, "approval", APPROVER, &payload)).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let ended = until_status(&f.app, &id, "succeeded").await;
    assert_eq!(ended["record"]["outputs"]["outcome"], "denied", "{ended:#}");
    assert_eq!(ended["record"]["outputs"]["approver"], "m", "{ended:#}");
    assert_eq!(runs.parked_in_journal_count(), 1);
    // The other one: its signal delivered through the store, as another process would (`flowcat
    // signal`), is found by the next sweep.
    let store = runs.hall.store().expect("a journal");
    let delivered = store.signal(&other, "approval", &json!({ "approved": false, "approver": "n" })).await;
    assert_eq!(delivered.expect("stored"), flowcat_engine::journal::Delivery::Delivered);
    assert!(!runs.is_live(&other));
    runs.sweep(tokio::time::Instant::now());
    let ended = until_status(&f.app, &other, "succeeded").await;
    assert_eq!(ended["record"]["outputs"]["approver"], "n", "{ended:#}");
    assert_eq!(runs.parked_in_journal_count(), 0);
    assert_eq!(
        metric(&f.app, "flowcat_runs_waiting{held=\"journal\"}").await,
        "flowcat_runs_waiting{held=\"journal\"} 0"
    );
    let done =
        metric(&f.app, "flowcat_runs_total{flow=\"examples.offboard_with_approval\",status=\"succeeded\"}").await;
    assert!(done.ends_with(" 2"), "{done}");
}
