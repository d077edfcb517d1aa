//! Traces of `flowcat serve` (docs/serve.md, "Traces"): the binary runs a flow against
//! `flowcat sim` and exports its spans over OTLP/HTTP to a collector stand-in on loopback. The
//! span tree (run → nodes → subflow → nodes → HTTP attempts), attributes and parent ids are
//! asserted, and a canary: no secret key, token, input value or Duo id in any exported byte. A
//! collector that is down changes nothing for the run.

use crate::common;

use std::io::{Read as _, Write as _};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{Sim, TempDir};
use serde_json::{Value, json};

const TOKEN: &str = "canary-trace-token-5d1f7b3a9e2c4068";
const SKEY: &str = "canarytraceskey0000000000000000000000042";
const USERNAME: &str = "zq.canary.person";
const NUMBER: &str = "+15555550142";

fn seed() -> Value {
    let mut seed = serde_json::to_value(flowcat_sim::Seed::demo()).expect("the seed serialises");
    for i in seed["integrations"].as_array_mut().expect("integrations") {
        i["skey"] = json!(SKEY);
    }
    seed["users"].as_array_mut().expect("users").push(json!({
        "username": USERNAME, "email": "zq@example.com", "realname": "Zq Canary", "status": "active",
        "phones": [NUMBER]
    }));
    seed["phones"]
        .as_array_mut()
        .expect("phones")
        .push(json!({ "number": NUMBER, "name": "Zq's phone", "type": "mobile" }));
    seed
}

/// Every POST the collector stand-in got: path, content type, the status it answered, the body.
type Posts = Arc<Mutex<Vec<(String, String, u16, Vec<u8>)>>>;

/// A collector stand-in (axum on 127.0.0.1): answers 503 to its first POST (the exporter tries
/// again), 200 to the others.
fn collector(rt: &tokio::runtime::Runtime) -> (String, Posts) {
    use axum::body::Bytes;
    use axum::http::{HeaderMap, StatusCode, Uri};
    let posts: Posts = Arc::default();
    let seen = posts.clone();
    let app = axum::Router::new().fallback(axum::routing::post(move |uri: Uri, headers: HeaderMap, body: Bytes| {
        let seen = seen.clone();
        async move {
            let mut seen = seen.lock().expect("lock");
            let status = if seen.is_empty() { 503 } else { 200 };
            let ct = headers.get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
            seen.push((uri.path().to_owned(), ct, status, body.to_vec()));
            (StatusCode::from_u16(status).expect("a status"), "{}")
        }
    }));
    let listener = rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).expect("bind");
    let addr = listener.local_addr().expect("addr");
    rt.spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}"), posts)
}

/// `flowcat serve` with `telemetry:` pointing at `endpoint`; killed on drop.
struct Serve {
    addr: String,
    child: Child,
    log: PathBuf,
}

impl Serve {
    fn start(dir: &TempDir, sim: &Sim, endpoint: &str) -> Serve {
        Self::start_env(dir, sim, endpoint, &[])
    }

    /// As [`Serve::start`], with more environment (`RUST_LOG`).
    fn start_env(dir: &TempDir, sim: &Sim, endpoint: &str, env: &[(&str, &str)]) -> Serve {
        let config = dir.path().join("serve.yaml");
        let text = format!(
            "listen: 127.0.0.1:0\nintegrations: {}\nshutdown_grace: 2s\ntokens:\n  - name: admin\n    sha256: {}\n    \
             flows: ['*']\ntelemetry:\n  otlp_endpoint: {endpoint}\n  service_name: flowcat-test\n  export_timeout: 5s\n",
            sim.integrations.display(),
            common::hash_token(TOKEN),
        );
        std::fs::write(&config, text).expect("written");
        let log = dir.path().join("serve.log");
        let mut command = Command::new(env!("CARGO_BIN_EXE_flowcat"));
        command
            .args(["serve", "--log-format", "json", "--config"])
            .arg(&config)
            .env("FLOWCAT_STATE_DIR", dir.path().join("state"))
            .env("NO_COLOR", "1")
            .env_remove("RUST_LOG")
            .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
            .env_remove("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
            .env_remove("OTEL_SDK_DISABLED")
            .envs(env.iter().copied())
            .current_dir(dir.path());
        let (child, addr) = common::spawn_serve(command, &log, "serve");
        Serve { addr, child, log }
    }

    /// Starts `flow` with `inputs` and waits for its record.
    fn run(&self, flow: &str, inputs: &Value) -> Value {
        let mut stream = std::net::TcpStream::connect(&self.addr).expect("connect");
        stream.set_read_timeout(Some(Duration::from_secs(60))).expect("timeout");
        let body = inputs.to_string();
        let request = format!(
            "POST /v1/flows/{flow}/runs?wait=20s HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nAuthorization: Bearer {TOKEN}\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            self.addr,
            body.len()
        );
        stream.write_all(request.as_bytes()).expect("sent");
        let mut raw = String::new();
        stream.read_to_string(&mut raw).expect("read");
        let (head, rest) = raw.split_once("\r\n\r\n").expect("an answer");
        assert!(head.starts_with("HTTP/1.1 200"), "{raw}");
        serde_json::from_str(rest).unwrap_or_else(|e| panic!("not JSON ({e}): {rest}"))
    }

    /// `GET path` with the token: the answer's body, as text.
    fn get(&self, path: &str) -> String {
        let mut stream = std::net::TcpStream::connect(&self.addr).expect("connect");
        stream.set_read_timeout(Some(Duration::from_secs(60))).expect("timeout");
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nAuthorization: Bearer {TOKEN}\r\n\r\n",
            self.addr
        );
        stream.write_all(request.as_bytes()).expect("sent");
        let mut raw = String::new();
        stream.read_to_string(&mut raw).expect("read");
        let (head, rest) = raw.split_once("\r\n\r\n").expect("an answer");
        assert!(head.starts_with("HTTP/1.1 200"), "{raw}");
        rest.to_owned()
    }

    /// SIGTERM, then the exit status (within `within`).
    fn stop(&mut self, within: Duration) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        assert!(Command::new("kill").args(["-TERM", &pid]).status().expect("kill").success());
        let t0 = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            assert!(t0.elapsed() < within, "flowcat serve did not stop within {within:?}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn attr(span: &Value, key: &str) -> Option<Value> {
    let a = span["attributes"].as_array()?.iter().find(|a| a["key"] == key)?;
    let v = &a["value"];
    v.get("stringValue").or_else(|| v.get("intValue")).or_else(|| v.get("boolValue")).cloned()
}

/// The first `"FIELD":"VALUE"` of a JSON text.
fn first(text: &str, field: &str) -> String {
    let key = format!("\"{field}\":\"");
    let at = text.find(&key).unwrap_or_else(|| panic!("no `{field}` in {text}")) + key.len();
    text[at..].split('"').next().expect("a value").to_owned()
}

#[test]
fn a_run_through_serve_exports_its_span_tree_and_nothing_secret() {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().expect("a runtime");
    let (endpoint, posts) = collector(&rt);
    let sim = Sim::start_with("traces", Some(&seed()));
    let dir = TempDir::new("serve-traces");
    let mut serve = Serve::start(&dir, &sim, &endpoint);

    let answer = serve.run("duo.admin.remove_device", &json!({ "username": USERNAME, "number": NUMBER }));
    let record = &answer["record"];
    assert_eq!(record["status"], "succeeded", "{answer:#}");
    let run_id = answer["id"].as_str().expect("an id").to_owned();
    let text = record.to_string();
    let (user_id, phone_id) = (first(&text, "user_id"), first(&text, "phone_id"));
    assert!(user_id.starts_with("DU") && phone_id.starts_with("DP"), "{user_id} {phone_id}");

    // The spans are flushed at a graceful shutdown (the batch delay has not passed).
    assert!(serve.stop(Duration::from_secs(30)).success());
    let posts = posts.lock().expect("lock").clone();
    assert!(posts.len() >= 2, "the first POST was answered 503 and tried again: {} POSTs", posts.len());
    for (path, ct, _, _) in &posts {
        assert_eq!((path.as_str(), ct.as_str()), ("/v1/traces", "application/json"));
    }

    // The canary: in no exported byte (including the batch refused with 503).
    for (_, _, _, body) in &posts {
        let body = String::from_utf8_lossy(body);
        for never in [SKEY, TOKEN, USERNAME, NUMBER, "15555550142", &user_id, &phone_id, "simadminsecretkey"] {
            assert!(!body.contains(never), "`{never}` was exported: {body}");
        }
    }

    let accepted: Vec<Value> =
        posts.iter().filter(|p| p.2 == 200).map(|p| serde_json::from_slice(&p.3).expect("JSON")).collect();
    let resource = &accepted[0]["resourceSpans"][0]["resource"]["attributes"];
    assert!(
        resource
            .as_array()
            .expect("attributes")
            .contains(&json!({ "key": "service.name", "value": { "stringValue": "flowcat-test" } }))
    );
    let spans: Vec<Value> = accepted
        .iter()
        .flat_map(|b| b["resourceSpans"][0]["scopeSpans"][0]["spans"].as_array().cloned().unwrap_or_default())
        .collect();
    let all = serde_json::to_string_pretty(&spans).expect("JSON");
    let named = |name: &str| spans.iter().filter(|s| s["name"] == name).collect::<Vec<_>>();
    let one = |name: &str| {
        let found = named(name);
        assert_eq!(found.len(), 1, "one span `{name}`: {all}");
        found[0].clone()
    };
    let children = |parent: &Value| {
        spans
            .iter()
            .filter(|s| s["parentSpanId"] == parent["spanId"])
            .map(|s| s["name"].as_str().unwrap_or(""))
            .collect::<Vec<_>>()
    };

    // run → its nodes.
    let run = one("run duo.admin.remove_device");
    assert!(run.get("parentSpanId").is_none(), "the run is the root: {run:#}");
    assert_eq!(attr(&run, "flowcat.run.id"), Some(json!(run_id)));
    assert_eq!(attr(&run, "flowcat.flow.id"), Some(json!("duo.admin.remove_device")));
    assert_eq!(attr(&run, "flowcat.run.status"), Some(json!("succeeded")));
    assert_eq!(run["kind"], 1);
    assert!(spans.iter().all(|s| s["traceId"] == run["traceId"]), "one trace: {all}");
    let trace_id = run["traceId"].as_str().expect("hex");
    assert!(trace_id.len() == 32 && trace_id.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
    let nodes = children(&run);
    for node in ["node user", "node phones", "node match", "node phone"] {
        assert!(nodes.contains(&node), "`{node}` is a child of the run: {nodes:?}");
    }
    assert!(nodes.iter().all(|n| n.starts_with("node ")), "only nodes under the run: {nodes:?}");
    for s in spans.iter().filter(|s| s["name"].as_str().is_some_and(|n| n.starts_with("node "))) {
        assert_eq!(attr(s, "flowcat.node.status"), Some(json!("succeeded")), "{s:#}");
        assert!(attr(s, "flowcat.node.kind").is_some() && attr(s, "flowcat.node.id").is_some(), "{s:#}");
        assert!(s["startTimeUnixNano"].as_str().expect("a string").parse::<u64>().expect("a number") > 0);
    }

    // node user (a subflow) → subflow → its nodes → the lookup's HTTP attempt.
    let user = one("node user");
    assert_eq!(attr(&user, "flowcat.node.kind"), Some(json!("subflow")));
    assert_eq!(children(&user), vec!["subflow duo.admin.retrieve_user_id"]);
    let sub = one("subflow duo.admin.retrieve_user_id");
    assert_eq!(attr(&sub, "flowcat.run.status"), Some(json!("succeeded")));
    let lookups: Vec<&Value> = spans
        .iter()
        .filter(|s| s["name"] == "GET /admin/v1/users" && children(&sub).contains(&"node lookup"))
        .collect();
    assert_eq!(lookups.len(), 1, "{all}");
    let lookup_node = spans.iter().find(|s| s["spanId"] == lookups[0]["parentSpanId"]).expect("its parent");
    assert_eq!(lookup_node["parentSpanId"], sub["spanId"], "the lookup's node is the subflow's: {all}");

    // node phones → GET /admin/v1/users/{user_id}/phones: the template, never the user's id.
    let phones = one("node phones");
    assert_eq!(attr(&phones, "flowcat.node.kind"), Some(json!("rest_call")));
    assert_eq!(attr(&phones, "flowcat.node.attempts"), Some(json!("1")));
    assert_eq!(children(&phones), vec!["GET /admin/v1/users/{user_id}/phones"]);
    let call = one("GET /admin/v1/users/{user_id}/phones");
    assert_eq!(call["kind"], 3, "an HTTP client span");
    assert_eq!(attr(&call, "http.request.method"), Some(json!("GET")));
    assert_eq!(attr(&call, "url.template"), Some(json!("/admin/v1/users/{user_id}/phones")));
    assert_eq!(attr(&call, "http.response.status_code"), Some(json!("200")));
    assert_eq!(attr(&call, "flowcat.http.attempt"), Some(json!("1")));
    assert_eq!(attr(&call, "flowcat.integration"), Some(json!("duo_admin")));
    assert_eq!(call["status"]["code"], 0);

    // The write: one attempt, its route with both ids as names.
    let writes: Vec<&Value> =
        spans.iter().filter(|s| matches!(attr(s, "http.request.method"), Some(m) if m != "GET")).collect();
    assert_eq!(writes.len(), 1, "one write: {all}");
    let route = attr(writes[0], "url.template").expect("a route");
    assert!(route.as_str().is_some_and(|r| r.contains("{user_id}") || r.contains("{phone_id}")), "{route}");
    // Every HTTP attempt's parent is a node.
    for s in spans.iter().filter(|s| s["kind"] == 3) {
        let parent = spans.iter().find(|p| p["spanId"] == s["parentSpanId"]).expect("a parent");
        assert!(parent["name"].as_str().is_some_and(|n| n.starts_with("node ")), "{s:#} under {parent:#}");
    }
    let log = std::fs::read_to_string(&serve.log).expect("the log");
    assert!(!log.contains("did not take a batch") && !log.contains("not exported"), "the 503 was tried again: {log}");
}

/// Bypass codes are credentials (issue 15): a run of `duo.admin.bypass_codes` through `flowcat
/// serve`, traced to the collector stand-in and logging at trace level, answers the codes to its
/// caller, and no exported span or event and no log line has one. The search would find them:
/// it finds them in the answer.
#[test]
fn bypass_codes_reach_the_caller_and_no_exported_span_or_log_line() {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().expect("a runtime");
    let (endpoint, posts) = collector(&rt);
    let sim = Sim::start_with("traces-bypass", Some(&seed()));
    let dir = TempDir::new("serve-traces-bypass");
    let mut serve = Serve::start_env(&dir, &sim, &endpoint, &[("RUST_LOG", "trace")]);

    let answer = serve.run("duo.admin.bypass_codes", &json!({ "username": "ivan", "count": 3 }));
    assert_eq!(answer["record"]["status"], "succeeded", "{answer:#}");
    let codes: Vec<String> = answer["record"]["outputs"]["codes"]
        .as_array()
        .unwrap_or_else(|| panic!("the codes: {answer:#}"))
        .iter()
        .map(|c| c.as_str().expect("a code").to_owned())
        .collect();
    assert_eq!(codes.len(), 3, "{answer:#}");
    assert!(codes.iter().all(|c| c.len() == 9 && c.bytes().all(|b| b.is_ascii_digit())), "{codes:?}");
    let answered = answer.to_string();
    assert!(codes.iter().all(|c| answered.contains(c.as_str())), "the search finds them where they belong");
    // Only there: the rest of the record shows `[secret]`, and so does the run as the journal
    // keeps it (`GET /v1/runs/{id}`). These fail if the flow's node lost its `secret: true`;
    // the spans cannot (they carry only the attributes their kind lists, never a result).
    let mut rest = answer["record"].clone();
    rest["outputs"] = Value::Null;
    let rest = rest.to_string();
    assert!(rest.contains("[secret]"), "the node's result shows the redaction: {rest}");
    let stored = serve.get(&format!("/v1/runs/{}", answer["id"].as_str().expect("an id")));
    for c in &codes {
        assert!(!rest.contains(c.as_str()), "code {c} outside the outputs of the answer: {rest}");
        assert!(!stored.contains(c.as_str()), "code {c} in the journaled run: {stored}");
    }

    assert!(serve.stop(Duration::from_secs(30)).success());
    let posts = posts.lock().expect("lock").clone();
    let accepted: Vec<Value> =
        posts.iter().filter(|p| p.2 == 200).map(|p| serde_json::from_slice(&p.3).expect("JSON")).collect();
    let spans: Vec<Value> = accepted
        .iter()
        .flat_map(|b| b["resourceSpans"][0]["scopeSpans"][0]["spans"].as_array().cloned().unwrap_or_default())
        .collect();
    // The export covered the call that answered the codes: its node and its HTTP attempt.
    let names: Vec<&str> = spans.iter().filter_map(|s| s["name"].as_str()).collect();
    assert!(names.contains(&"node codes"), "{names:?}");
    assert!(names.contains(&"POST /admin/v1/users/{user_id}/bypass_codes"), "{names:?}");
    let log = std::fs::read_to_string(&serve.log).expect("the log");
    assert!(log.lines().count() > 20, "RUST_LOG=trace logged: {log}");
    for c in &codes {
        for (_, _, _, body) in &posts {
            assert!(!String::from_utf8_lossy(body).contains(c.as_str()), "code {c} was exported");
        }
        assert!(!log.contains(c.as_str()), "code {c} in the log");
        for (path, bytes) in common::files(&dir.path().join("state")) {
            assert!(!bytes.windows(c.len()).any(|w| w == c.as_bytes()), "code {c} in {path}");
        }
    }
}

#[test]
fn a_collector_that_is_down_changes_nothing_for_runs() {
    // A port nobody listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
    let sim = Sim::start_with("traces-down", Some(&seed()));
    let dir = TempDir::new("serve-traces-down");
    let mut serve = Serve::start(&dir, &sim, &format!("http://127.0.0.1:{port}"));
    let answer = serve.run("duo.admin.retrieve_user_id", &json!({ "username": USERNAME }));
    assert_eq!(answer["record"]["status"], "succeeded", "{answer:#}");
    assert_eq!(answer["record"]["outputs"]["found"], true, "{answer:#}");
    let t0 = Instant::now();
    assert!(serve.stop(Duration::from_secs(20)).success());
    assert!(t0.elapsed() < Duration::from_secs(12), "the flush is bounded by the export timeout (5 s) and the grace");
    let log = std::fs::read_to_string(&serve.log).expect("the log");
    assert!(log.contains("did not take a batch") && log.contains("cannot connect"), "{log}");
    assert!(log.contains("some spans were not exported"), "{log}");
}

#[test]
fn a_bad_otlp_endpoint_is_refused_at_start_naming_where_it_came_from() {
    let dir = TempDir::new("serve-traces-bad");
    let config = dir.path().join("serve.yaml");
    let text = format!("integrations: i.yaml\ntokens:\n  - name: admin\n    sha256: {}\n", "ab".repeat(32));
    std::fs::write(&config, &text).expect("written");
    let serve = |env: &[(&str, &str)]| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_flowcat"));
        cmd.args(["serve", "--config"]).arg(&config).env("FLOWCAT_STATE_DIR", dir.path().join("state"));
        for name in ["OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_SDK_DISABLED"] {
            cmd.env_remove(name);
        }
        cmd.envs(env.iter().copied()).stdin(Stdio::null()).output().expect("runs")
    };
    let out = serve(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://user:hunter2@127.0.0.1:4318")]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("OTEL_EXPORTER_OTLP_ENDPOINT: the OTLP endpoint holds a user name"), "{stderr}");
    assert!(!stderr.contains("hunter2"), "{stderr}");
    std::fs::write(&config, format!("{text}telemetry:\n  otlp_endpoint: grpc://127.0.0.1:4317\n")).expect("written");
    let out = serve(&[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(
            "serve.yaml: `telemetry.otlp_endpoint`: the OTLP endpoint must be an `http://` or `https://` URL"
        ),
        "{stderr}"
    );
}
