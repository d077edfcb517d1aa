//! `send` over real loopback sockets: signed Duo calls against flowcat-sim (v5 and v2, GET and
//! POST), retries on 429 and 5xx as the policy and the call's effect allow, a write whose
//! connection drops is never re-sent, redirects are not followed, unsafe requests are refused before any connection.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use flowcat_engine::kind::Effect;
use flowcat_nodes::duo::RetryPolicy;
use flowcat_nodes::http::{Call, CallError, Clients, Reply, send};
use flowcat_nodes::integrations::{self, Integration, Integrations, Kind, Scheme};
use flowcat_sim::{Faults, Options, Seed, Sim};
use serde_json::{Map, Value, json};

const ADMIN_IKEY: &str = "DISIMADMIN0000000001";
const ADMIN_SKEY: &str = "simadminsecretkey0000000000000000000000a";

async fn sim() -> Sim {
    let addr: SocketAddr = "127.0.0.1:0".parse().expect("addr");
    Sim::start_seed(addr, &Seed::demo(), Options::default()).await.expect("sim starts")
}

/// The integrations file the simulator writes, loaded.
fn sim_integrations(sim: &Sim) -> Integrations {
    let text = flowcat_sim::integrations::render(sim.addr(), &Seed::demo().integrations);
    integrations::parse(Path::new("sim.yaml"), &text, &|_| None).expect("the sim's file loads")
}

fn admin_with_signature(sim: &Sim, signature: &str) -> Integration {
    let text = format!(
        "integrations:\n  a:\n    kind: duo_admin\n    host: \"{}\"\n    ikey: {ADMIN_IKEY}\n    skey: {ADMIN_SKEY}\n    signature: {signature}\n    loopback_http: true\n",
        sim.addr()
    );
    integrations::parse(Path::new("a.yaml"), &text, &|_| None).expect("loads").list.remove(0)
}

fn fast_retries(max_attempts: u32) -> Option<RetryPolicy> {
    Some(RetryPolicy {
        max_attempts,
        initial: Duration::from_millis(10),
        max: Duration::from_millis(40),
        jitter: Duration::ZERO,
    })
}

fn get(path: &str, query: &[(&str, &str)]) -> Call {
    let mut call = Call::new("GET", path);
    call.query = query.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
    call
}

fn post(path: &str, body: Value) -> Call {
    let mut call = Call::new("POST", path);
    call.body = Some(serde_json::from_value::<Map<String, Value>>(body).expect("an object"));
    call
}

fn faults(specs: &[&str]) -> Faults {
    let mut faults = Faults::default();
    for spec in specs {
        faults.apply_spec(spec).expect("fault spec");
    }
    faults
}

fn ok(reply: &Reply) -> &Value {
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    assert_eq!(reply.body["stat"], "OK", "{:?}", reply.body);
    &reply.body["response"]
}

#[tokio::test]
async fn signed_get_with_query_in_v5_and_v2() {
    let sim = sim().await;
    let clients = Clients::new();
    for signature in ["v5", "v2", "v2-sha1"] {
        let admin = admin_with_signature(&sim, signature);
        let reply = send(&clients, &admin, &get("/admin/v1/users", &[("username", "alice")])).await.expect("sent");
        assert_eq!(ok(&reply)[0]["username"], "alice", "{signature}");
        let attempt = &reply.attempts[0];
        assert!(attempt.request.url.ends_with("/admin/v1/users?username=alice"), "{}", attempt.request.url);
        assert_eq!(attempt.request.headers["authorization"], "****");
        assert!(attempt.request.body.is_none());
    }
    // Params that need encoding: Duo's canonical form goes on the wire as it is signed.
    let admin = admin_with_signature(&sim, "v5");
    let reply = send(&clients, &admin, &get("/admin/v1/users", &[("username", "no one+é"), ("limit", "1")])).await;
    assert_eq!(ok(&reply.expect("sent")), &json!([]));
}

#[tokio::test]
async fn signed_post_creates_a_user_in_v5_and_v2() {
    let sim = sim().await;
    let clients = Clients::new();
    let all = sim_integrations(&sim);
    let admin = all.for_slot("duo_admin", Kind::DuoAdmin).expect("admin");
    let reply = send(&clients, admin, &post("/admin/v1/users", json!({"username": "zed", "realname": "Zed Z"})))
        .await
        .expect("sent");
    assert_eq!(ok(&reply)["username"], "zed");
    let sent = &reply.attempts[0].request;
    assert_eq!(sent.headers["content-type"], "application/json");
    assert_eq!(sent.body, Some(json!({"realname": "Zed Z", "username": "zed"})));
    let v2 = admin_with_signature(&sim, "v2");
    let reply = send(&clients, &v2, &post("/admin/v1/users", json!({"username": "yan"}))).await.expect("sent");
    assert_eq!(ok(&reply)["username"], "yan");
    assert_eq!(reply.attempts[0].request.headers["content-type"], "application/x-www-form-urlencoded");
    let created: Vec<(String, String)> = sim.audit().iter().map(|e| (e.change.clone(), e.ikey.clone())).collect();
    assert_eq!(created, [("user.create".into(), ADMIN_IKEY.into()), ("user.create".into(), ADMIN_IKEY.into())]);
    // And the Auth API, through its own integration.
    let auth = all.for_slot("duo_auth", Kind::DuoAuth).expect("auth");
    let reply = send(&clients, auth, &post("/auth/v2/preauth", json!({"username": "alice"}))).await.expect("sent");
    assert_eq!(ok(&reply)["result"], "auth");
}

#[tokio::test]
async fn a_429_storm_is_ridden_out_with_fresh_signatures() {
    let sim = sim().await;
    let clients = Clients::new();
    let admin = admin_with_signature(&sim, "v5");
    sim.set_faults(faults(&["route=GET /admin/v1/users,kind=429,count=3"])).expect("faults");
    let mut call = get("/admin/v1/users", &[("username", "bob")]);
    call.retry = fast_retries(7);
    let reply = send(&clients, &admin, &call).await.expect("sent");
    assert_eq!(ok(&reply)[0]["username"], "bob");
    assert_eq!(sim.stats()["GET /admin/v1/users"], 4);
    let waits: Vec<Option<u64>> = reply.attempts.iter().map(|a| a.retry_delay_ms).collect();
    assert_eq!(waits, [Some(10), Some(20), Some(40), None]);
    assert_eq!(reply.attempts[0].response.as_ref().map(|r| r.status), Some(429));

    // `Retry-After: 1` wins over the 10 ms policy; a second apart, each attempt has its own Date.
    sim.set_faults(faults(&["route=GET /admin/v1/users,kind=429,count=2,retry_after=1"])).expect("faults");
    let started = Instant::now();
    let reply = send(&clients, &admin, &call).await.expect("sent");
    assert!(started.elapsed() >= Duration::from_secs(2), "{:?}", started.elapsed());
    let dates: Vec<&str> = reply.attempts.iter().map(|a| a.request.headers["date"].as_str()).collect();
    assert_eq!(dates.len(), 3);
    assert!(dates[0] != dates[1] && dates[1] != dates[2], "not re-signed: {dates:?}");
    assert_eq!(reply.attempts[0].retry_delay_ms, Some(1000));
    assert_eq!(reply.status, 200);
}

#[tokio::test]
async fn x_retry_after_is_honoured_and_an_endless_storm_fails() {
    let sim = sim().await;
    let clients = Clients::new();
    let admin = admin_with_signature(&sim, "v5");
    sim.set_faults(faults(&["route=POST /admin/v1/users,kind=429,count=1,retry_after=0,header=X-Retry-After"]))
        .expect("faults");
    let mut call = post("/admin/v1/users", json!({"username": "xavier"}));
    call.retry = Some(RetryPolicy { initial: Duration::from_secs(30), ..RetryPolicy::default() });
    let reply = send(&clients, &admin, &call).await.expect("a 429 is safe to retry, even for POST");
    assert_eq!(reply.attempts[0].retry_delay_ms, Some(0));
    assert_eq!(ok(&reply)["username"], "xavier");

    sim.set_faults(faults(&["route=GET /admin/v1/users,kind=429,count=10"])).expect("faults");
    let mut call = get("/admin/v1/users", &[]);
    call.retry = fast_retries(3);
    let err = send(&clients, &admin, &call).await.expect_err("still 429");
    assert!(matches!(err, CallError::TooManyRequests { .. }), "{err:?}");
    assert_eq!(err.attempts().len(), 3);
    assert_eq!(
        err.to_string(),
        "still rate limited (HTTP 429) after 3 attempts to `GET /admin/v1/users` (wait a while, or raise `retry.max_attempts`)"
    );
}

#[tokio::test]
async fn a_post_whose_connection_drops_is_not_sent_again() {
    let sim = sim().await;
    let clients = Clients::new();
    let admin = admin_with_signature(&sim, "v5");
    sim.set_faults(faults(&["route=POST /admin/v1/users,kind=drop,count=1"])).expect("faults");
    let mut call = post("/admin/v1/users", json!({"username": "dropped"}));
    call.retry = fast_retries(7);
    let err = send(&clients, &admin, &call).await.expect_err("no answer");
    assert!(matches!(err, CallError::Lost { .. }), "{err:?}");
    assert!(err.outcome_unknown());
    assert_eq!(err.attempts().len(), 1);
    assert!(err.to_string().contains("its outcome is unknown; it was not sent again"), "{err}");
    assert_eq!(sim.audit().len(), 1, "the user was created once");
    assert_eq!(sim.stats()["POST /admin/v1/users"], 1);
}

#[tokio::test]
async fn reads_retry_5xx_and_lost_connections_writes_do_not() {
    let sim = sim().await;
    let clients = Clients::new();
    let admin = admin_with_signature(&sim, "v5");
    let mut call = get("/admin/v1/users", &[("username", "carol")]);
    call.retry = fast_retries(7);
    sim.set_faults(faults(&["route=GET /admin/v1/users,kind=5xx,count=2,status=503"])).expect("faults");
    let reply = send(&clients, &admin, &call).await.expect("sent");
    assert_eq!(ok(&reply)[0]["username"], "carol");
    assert_eq!(reply.attempts.len(), 3);

    sim.set_faults(faults(&["route=GET /admin/v1/users,kind=drop,count=1"])).expect("faults");
    let reply = send(&clients, &admin, &call).await.expect("sent");
    assert_eq!(reply.attempts.len(), 2);
    assert!(reply.attempts[0].error.is_some());

    sim.set_faults(faults(&["route=POST /admin/v1/users,kind=5xx,count=1,status=500"])).expect("faults");
    let mut write = post("/admin/v1/users", json!({"username": "once"}));
    write.retry = fast_retries(7);
    let reply = send(&clients, &admin, &write).await.expect("an answer, if a failing one");
    assert_eq!((reply.status, reply.attempts.len()), (500, 1));
    assert_eq!(sim.stats()["POST /admin/v1/users"], 1);
}

#[tokio::test]
async fn a_writes_intent_is_its_first_attempt_without_the_signature() {
    let sim = sim().await;
    let clients = Clients::new();
    for signature in ["v5", "v2"] {
        let admin = admin_with_signature(&sim, signature);
        let mut call =
            post("/admin/v1/users", json!({"username": format!("intent-{signature}"), "realname": "In Tent"}));
        call.headers.push(("X-Ticket".into(), "INC42".into()));
        let intent = flowcat_nodes::http::intent(&admin, &call).expect("an intent");
        let reply = send(&clients, &admin, &call).await.expect("sent");
        let mut first = reply.attempts[0].request.clone();
        assert_eq!(first.headers.remove("authorization").as_deref(), Some("****"));
        assert!(first.headers.remove("date").is_some());
        assert_eq!(intent, first, "{signature}");
        assert_eq!(intent.headers.get("x-ticket").map(String::as_str), Some("INC42"));
    }
    // A request `send` would refuse is refused here too: nothing is journaled, nothing sent.
    let admin = admin_with_signature(&sim, "v5");
    let mut bad = post("/admin/v1/users", json!({"username": "x"}));
    bad.query.push(("a".into(), "b".into()));
    assert!(matches!(flowcat_nodes::http::intent(&admin, &bad), Err(CallError::Refused { .. })));
}

#[tokio::test]
async fn retries_follow_what_a_call_does_not_its_method() {
    let sim = sim().await;
    let clients = Clients::new();
    let auth = sim_integrations(&sim).get("duo_auth").expect("the Auth API application").clone();
    // Duo's preauth is a POST that only asks: declared a read, it is retried like one.
    sim.set_faults(faults(&["route=POST /auth/v2/preauth,kind=5xx,count=1,status=503"])).expect("faults");
    let mut preauth = post("/auth/v2/preauth", json!({"username": "alice"}));
    preauth.retry = fast_retries(7);
    assert_eq!(preauth.effect, Effect::Write, "a POST writes unless it says otherwise");
    preauth.effect = Effect::Read;
    let reply = send(&clients, &auth, &preauth).await.expect("sent");
    assert_eq!((reply.status, reply.attempts.len()), (200, 2));
    // A GET declared a write (a call that acts when read, on some other API) is not.
    let admin = admin_with_signature(&sim, "v5");
    sim.set_faults(faults(&["route=GET /admin/v1/users,kind=drop,count=1"])).expect("faults");
    let mut call = get("/admin/v1/users", &[]);
    call.retry = fast_retries(7);
    call.effect = Effect::Write;
    let err = send(&clients, &admin, &call).await.expect_err("no answer");
    assert_eq!(err.attempts().len(), 1);
    assert!(
        err.to_string().ends_with(
            "it was not sent again, because it may have been carried out (check Duo before running it again)"
        ),
        "{err}"
    );
    // An idempotent call is retried after a lost connection, and says it was.
    sim.set_faults(faults(&["route=DELETE /admin/v1/users/{user_id},kind=drop,count=10"])).expect("faults");
    let mut delete = Call::new("DELETE", "/admin/v1/users/DUNOSUCHUSER00000000");
    delete.retry = fast_retries(3);
    assert_eq!(delete.effect, Effect::Idempotent);
    let err = send(&clients, &admin, &delete).await.expect_err("no answer");
    assert_eq!(err.attempts().len(), 3);
    assert!(err.to_string().ends_with("its outcome is unknown after 3 attempts"), "{err}");
}

/// A one-shot HTTP server on loopback: answers each request with `answer`, or holds the
/// connection open without answering when it is `None`. Counts connections, keeps requests.
struct Server {
    addr: SocketAddr,
    connections: Arc<AtomicUsize>,
    requests: Arc<Mutex<Vec<String>>>,
}

fn serve(answer: Option<&'static str>) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let connections = Arc::new(AtomicUsize::new(0));
    let requests = Arc::new(Mutex::new(Vec::new()));
    let (count, seen) = (connections.clone(), requests.clone());
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            count.fetch_add(1, Ordering::SeqCst);
            let seen = seen.clone();
            std::thread::spawn(move || {
                let mut buf = [0u8; 8192];
                let n = stream.read(&mut buf).unwrap_or(0);
                seen.lock().expect("lock").push(String::from_utf8_lossy(&buf[..n]).into_owned());
                match answer {
                    Some(text) => drop(stream.write_all(text.as_bytes())),
                    None => std::thread::sleep(Duration::from_secs(5)),
                }
            });
        }
    });
    Server { addr, connections, requests }
}

fn http_integration(addr: SocketAddr) -> Integration {
    let text =
        format!("integrations:\n  t:\n    kind: http\n    base_url: http://{addr}/api\n    loopback_http: true\n");
    integrations::parse(Path::new("t.yaml"), &text, &|_| None).expect("loads").list.remove(0)
}

#[tokio::test]
async fn redirects_are_not_followed() {
    let server = serve(Some(
        "HTTP/1.1 302 Found\r\nLocation: http://127.0.0.1:9/elsewhere\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
    ));
    let integration = http_integration(server.addr);
    let reply = send(&Clients::new(), &integration, &get("/tickets", &[("q", "a b")])).await.expect("an answer");
    assert_eq!((reply.status, reply.header("location")), (302, Some("http://127.0.0.1:9/elsewhere")));
    assert_eq!(reply.attempts.len(), 1);
    assert_eq!(server.connections.load(Ordering::SeqCst), 1);
    let request = server.requests.lock().expect("lock")[0].clone();
    assert!(request.starts_with("GET /api/tickets?q=a%20b HTTP/1.1\r\n"), "{request}");
}

#[tokio::test]
async fn unsafe_requests_are_refused_before_any_connection() {
    let server = serve(Some("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"));
    let clients = Clients::new();
    let mut plain = http_integration(server.addr);
    plain.loopback_http = false; // plain http without the file's consent
    let err = send(&clients, &plain, &get("/x", &[])).await.expect_err("refused");
    assert!(matches!(err, CallError::Refused { .. }), "{err:?}");
    let mut remote = http_integration(server.addr);
    remote.endpoint.host = "tickets.example.com".into(); // http to a host that is not loopback
    assert!(matches!(send(&clients, &remote, &get("/x", &[])).await, Err(CallError::Refused { .. })));
    let ok = http_integration(server.addr);
    for path in ["//evil.example/x", "/a/../../x", "x", "/a?b=c", "/a#b", "/a b"] {
        let err = send(&clients, &ok, &get(path, &[])).await.expect_err(path);
        assert!(matches!(err, CallError::Refused { .. }), "{path}: {err:?}");
    }
    let mut host = get("/x", &[]);
    host.headers = vec![("Host".into(), "evil.example".into())];
    assert!(matches!(send(&clients, &ok, &host).await, Err(CallError::Refused { .. })));
    let mut crlf = get("/x", &[]);
    crlf.headers = vec![("X-A".into(), "a\r\nInjected: 1".into())];
    assert!(matches!(send(&clients, &ok, &crlf).await, Err(CallError::Refused { .. })));
    assert_eq!(server.connections.load(Ordering::SeqCst), 0, "nothing may be sent");
    assert_eq!(ok.endpoint.scheme, Scheme::Http);
}

#[tokio::test]
async fn duo_params_go_where_duo_signs_them() {
    let sim = sim().await;
    let admin = admin_with_signature(&sim, "v5");
    let clients = Clients::new();
    let mut get_with_body = get("/admin/v1/users", &[]);
    get_with_body.body = Some(Map::new());
    let err = send(&clients, &admin, &get_with_body).await.expect_err("refused");
    assert_eq!(err.to_string(), "refused before sending anything: a Duo `GET` takes its params in `query`, not `body`");
    let mut post_with_query = post("/admin/v1/users", json!({"username": "q"}));
    post_with_query.query = vec![("a".into(), "b".into())];
    assert!(matches!(send(&clients, &admin, &post_with_query).await, Err(CallError::Refused { .. })));
    assert!(sim.stats().is_empty(), "{:?}", sim.stats());
}

#[tokio::test]
async fn no_connection_and_no_answer() {
    let clients = Clients::new();
    let closed = TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr");
    let mut call = get("/x", &[]);
    call.retry = fast_retries(7);
    let err = send(&clients, &http_integration(closed), &call).await.expect_err("nothing listens");
    assert!(matches!(err, CallError::Connect { .. }), "{err:?}");
    assert_eq!(err.attempts().len(), 1, "a refused connection is not retried");

    let silent = serve(None);
    let mut call = post("/x", json!({"a": 1}));
    call.timeout = Duration::from_millis(300);
    let err = send(&clients, &http_integration(silent.addr), &call).await.expect_err("no answer");
    assert!(matches!(err, CallError::Timeout { .. }), "{err:?}");
    assert!(err.outcome_unknown());
    assert!(err.to_string().contains("within 300 ms: its outcome is unknown; it was not sent again"), "{err}");
    assert_eq!(silent.connections.load(Ordering::SeqCst), 1);
}

/// The executor runs nodes on a multi-threaded runtime: `send` must be `Send`.
#[test]
fn send_is_send() {
    fn assert_send<T: Send>(_: &T) {}
    let integration = http_integration("127.0.0.1:9".parse().expect("addr"));
    let (clients, call) = (Clients::new(), get("/", &[]));
    assert_send(&send(&clients, &integration, &call));
}
