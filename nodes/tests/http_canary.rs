//! The canary: integrations whose secret key, bearer token and password are recognisable strings
//! make calls that succeed and fail in every way; no `Debug` output, error message, warning, check
//! report or JSON attempt record may hold any of them, or the base64 a Basic header carries.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::time::Duration;

use base64::Engine as _;
use flowcat_nodes::duo::RetryPolicy;
use flowcat_nodes::http::{Call, CallError, Clients, Reply, send};
use flowcat_nodes::integrations::{self, Integration, Integrations, Kind, check::check};
use flowcat_sim::keys::SecretKey;
use flowcat_sim::seed::IntegrationSeed;
use flowcat_sim::{Faults, Options, Seed, Sim};
use serde_json::{Map, Value, json};

const SKEY: &str = "CANARY-SKEY-0123456789abcdefghijklmnopqr";
const TOKEN: &str = "CANARY-TOKEN-0123456789abcdefghijklmnop";
const PASSWORD: &str = "CANARY-PASS-0123456789abcdefghijkl";

fn canaries() -> Vec<String> {
    let b64 = |text: &str| base64::engine::general_purpose::STANDARD.encode(text);
    vec![SKEY.into(), TOKEN.into(), PASSWORD.into(), b64(&format!("bot:{PASSWORD}")), b64(SKEY), b64(TOKEN)]
}

/// Answers every request with the request itself as the body: a server that echoes credentials.
fn echo_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut buf = [0u8; 8192];
            let n = stream.read(&mut buf).unwrap_or(0);
            let body = String::from_utf8_lossy(&buf[..n]).into_owned();
            let answer = format!(
                "HTTP/1.1 200 OK\r\nX-Echo-Auth: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.lines().find(|l| l.to_ascii_lowercase().starts_with("authorization")).unwrap_or_default(),
                body.len()
            );
            let _ = stream.write_all(answer.as_bytes());
        }
    });
    addr
}

fn file_text(sim: &Sim, echo: SocketAddr) -> String {
    let seed = IntegrationSeed {
        name: "canary".into(),
        kind: flowcat_sim::Kind::DuoAdmin,
        ikey: "DICANARY000000000001".into(),
        skey: SecretKey::new(SKEY),
    };
    let mut text = flowcat_sim::integrations::render(sim.addr(), &[seed]);
    text.push_str(&format!(
        "  bearer:\n    kind: http\n    base_url: http://{echo}\n    loopback_http: true\n    auth: bearer\n    token: ${{TOKEN}}\n\
         \x20 basic:\n    kind: http\n    base_url: http://{echo}\n    loopback_http: true\n    auth: basic\n    username: bot\n    password: {PASSWORD}\n"
    ));
    text
}

fn call(method: &str, path: &str, body: Option<Value>) -> Call {
    let mut call = Call::new(method, path);
    call.body = body.map(|b| serde_json::from_value::<Map<String, Value>>(b).expect("object"));
    call.retry = Some(RetryPolicy { max_attempts: 3, initial: Duration::from_millis(5), ..RetryPolicy::default() });
    call.retry.as_mut().expect("set").jitter = Duration::ZERO;
    call
}

/// Everything a call may leave behind, as text.
fn outputs_of(result: &Result<Reply, CallError>, call: &Call) -> Vec<String> {
    let mut out = vec![format!("{call:?}"), format!("{call:#?}"), format!("{result:?}")];
    let attempts = match result {
        Ok(reply) => &reply.attempts,
        Err(e) => {
            out.push(e.to_string());
            &e.attempts().to_vec()
        }
    };
    for attempt in attempts {
        out.push(serde_json::to_string(attempt).expect("serialises"));
        assert_eq!(attempt.request.headers.get("authorization").map(String::as_str), Some("****"), "{attempt:?}");
    }
    out
}

async fn calls(clients: &Clients, all: &Integrations, sim: &Sim) -> Vec<String> {
    let canary = all.for_slot("canary", Kind::DuoAdmin).expect("canary");
    let mut out = Vec::new();
    let mut run = async |integration: &Integration, call: Call| {
        // What a write journals before it is sent: no secret, no signature.
        if let Ok(intent) = flowcat_nodes::http::intent(integration, &call) {
            assert!(
                !intent.headers.contains_key("authorization") && !intent.headers.contains_key("date"),
                "{intent:?}"
            );
            out.push(serde_json::to_string(&intent).expect("serialises"));
        }
        let result = send(clients, integration, &call).await;
        out.extend(outputs_of(&result, &call));
        result
    };
    assert_eq!(run(canary, call("GET", "/admin/v1/users", None)).await.expect("ok").status, 200);
    let created = run(canary, call("POST", "/admin/v1/users", Some(json!({"username": "canary"})))).await;
    assert_eq!(created.expect("ok").status, 200);
    assert_eq!(run(canary, call("GET", "/admin/v1/users/DUNOSUCHUSER000000000", None)).await.expect("ok").status, 404);
    let mut faults = Faults::default();
    faults.apply_spec("route=GET /admin/v1/users,kind=429,count=5").expect("spec");
    faults.apply_spec("route=POST /admin/v1/users,kind=drop,count=1").expect("spec");
    sim.set_faults(faults).expect("faults");
    assert!(run(canary, call("GET", "/admin/v1/users", None)).await.is_err());
    assert!(run(canary, call("POST", "/admin/v1/users", Some(json!({"username": "lost"})))).await.is_err());
    assert!(run(canary, call("GET", "//evil.example/", None)).await.is_err());
    let mut unreachable = canary.clone();
    unreachable.endpoint.port = Some(TcpListener::bind("127.0.0.1:0").expect("b").local_addr().expect("a").port());
    assert!(matches!(run(&unreachable, call("GET", "/admin/v1/users", None)).await, Err(CallError::Connect { .. })));
    for name in ["bearer", "basic"] {
        let echoed = run(all.get(name).expect("http"), call("POST", "/echo", Some(json!({"a": 1})))).await.expect("ok");
        // The server echoed the credentials back; the reply shows them scrubbed.
        let body = echoed.body.as_str().expect("text");
        assert!(body.contains("authorization: Bearer ****") || body.contains("authorization: Basic ****"), "{body}");
        assert_eq!(echoed.header("x-echo-auth").map(|h| h.contains("****")), Some(true));
    }
    out
}

#[tokio::test]
async fn no_secret_appears_in_any_output() {
    let mut seed = Seed::demo();
    let echo = echo_server();
    let addr: SocketAddr = "127.0.0.1:0".parse().expect("addr");
    seed.integrations.push(IntegrationSeed {
        name: "canary".into(),
        kind: flowcat_sim::Kind::DuoAdmin,
        ikey: "DICANARY000000000001".into(),
        skey: SecretKey::new(SKEY),
    });
    let sim = Sim::start_seed(addr, &seed, Options::default()).await.expect("sim");
    let text = file_text(&sim, echo);
    let env = |name: &str| (name == "TOKEN").then(|| TOKEN.to_owned());
    let all = integrations::parse(Path::new("canary.yaml"), &text, &env).expect("loads");
    assert!(text.contains(SKEY), "the canary is in the file");

    let clients = Clients::new();
    let mut outputs = vec![format!("{all:?}"), format!("{all:#?}"), format!("{clients:?}")];
    outputs.extend(all.list.iter().map(|i| format!("{i:?}")));
    outputs.extend(all.warnings.iter().cloned());
    outputs.extend(calls(&clients, &all, &sim).await);

    let canary = all.get("canary").expect("canary");
    outputs.push(format!("{:?}", check(&clients, canary).await));
    let mut as_auth = canary.clone();
    as_auth.kind = Kind::DuoAuth;
    let report = check(&clients, &as_auth).await;
    assert!(!report.ok, "{report:?}");
    outputs.push(format!("{report:?}"));

    // Loader errors about the secret settings themselves, and in a file that holds secrets.
    let broken = format!("{text}  oops:\n    kind: duo_admin\n    skey: \"${{{SKEY}\"\n    password: {PASSWORD}\n");
    let err = integrations::parse(Path::new("canary.yaml"), &broken, &env).expect_err("broken");
    outputs.extend([err.to_string(), format!("{err:?}")]);

    for output in &outputs {
        for canary in canaries() {
            assert!(!output.contains(&canary), "`{canary}` leaked in:\n{output}");
        }
    }
    assert!(outputs.len() > 40, "{}", outputs.len());
}
