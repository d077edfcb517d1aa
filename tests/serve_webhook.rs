//! `flowcat serve` as a process with a completion webhook: a run ends, the receiver (a thread on
//! 127.0.0.1) answers 503, the service is killed (kill -9) with the delivery pending, and the
//! next start delivers it, signed, with the same event id. The secret comes from the
//! environment and appears in no log line and no journal byte.

use crate::common;

use std::io::{BufRead as _, Read as _, Write as _};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command};
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::TempDir;
use serde_json::Value;

const TOKEN: &str = "canary-admin-token-5e1d7a3c9b0f2468";
const SECRET: &str = "canary-webhook-secret-3b8e0d6a2f4c1975";

const FLOW: &str = r#"
id: t.hello
inputs:
  name: { type: string }
nodes:
  - id: greet
    kind: set
    values: { text: "hello {{inputs.name}}" }
outputs:
  text: "{{nodes.greet.text}}"
"#;

/// One request the receiver got: headers (lower-case names) and body, and what it answered.
#[derive(Clone, Debug)]
struct Got {
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    answered: u16,
}

impl Got {
    fn header(&self, name: &str) -> &str {
        self.headers.iter().find(|(k, _)| k == name).map_or("", |(_, v)| v.as_str())
    }
}

/// A receiver on 127.0.0.1 answering `status` (changeable) to every POST.
struct Receiver {
    url: String,
    status: Arc<AtomicU16>,
    got: Arc<Mutex<Vec<Got>>>,
}

fn receiver() -> Receiver {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}/hook", listener.local_addr().expect("addr"));
    let status = Arc::new(AtomicU16::new(503));
    let got = Arc::new(Mutex::new(Vec::new()));
    let (s, g) = (status.clone(), got.clone());
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
            let mut reader = std::io::BufReader::new(stream.try_clone().expect("clone"));
            let mut headers = Vec::new();
            let mut line = String::new();
            let _ = reader.read_line(&mut line); // the request line
            loop {
                line.clear();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some((k, v)) = line.split_once(':') {
                    headers.push((k.trim().to_ascii_lowercase(), v.trim().to_owned()));
                }
            }
            let len =
                headers.iter().find(|(k, _)| k == "content-length").and_then(|(_, v)| v.parse().ok()).unwrap_or(0);
            let mut body = vec![0; len];
            let _ = reader.read_exact(&mut body);
            let answered = s.load(Ordering::SeqCst);
            g.lock().expect("lock").push(Got { headers, body, answered });
            let _ = stream.write_all(
                format!("HTTP/1.1 {answered} X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n").as_bytes(),
            );
        }
    });
    Receiver { url, status, got }
}

impl Receiver {
    fn got(&self) -> Vec<Got> {
        self.got.lock().expect("lock").clone()
    }

    /// Waits (polling, bounded) until a request answered `status` came.
    fn until(&self, status: u16) -> Vec<Got> {
        let t0 = Instant::now();
        loop {
            let got = self.got();
            if got.iter().any(|g| g.answered == status) {
                return got;
            }
            assert!(t0.elapsed() < Duration::from_secs(60), "no delivery answered {status}: {got:?}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

fn serve(dir: &Path, state: &Path, log: &str) -> (Child, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_flowcat"));
    command
        .args(["serve", "--log-format", "json", "--config", "serve.yaml"])
        .env("FLOWCAT_STATE_DIR", state)
        .env("FLOWCAT_TEST_HOOK_SECRET", SECRET)
        .env("NO_COLOR", "1")
        .env_remove("RUST_LOG")
        .env_remove("FLOWCAT_CATALOG")
        .current_dir(dir);
    common::spawn_serve(command, &dir.join(log), "serve")
}

/// The log at `path` once it holds `line` (polled, bounded).
fn until_logged(path: &Path, line: &str) -> String {
    let t0 = Instant::now();
    loop {
        let log = std::fs::read_to_string(path).unwrap_or_default();
        if log.contains(line) {
            return log;
        }
        assert!(t0.elapsed() < Duration::from_secs(30), "`{line}` never logged:\n{log}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn post_run(addr: &str) -> Value {
    let mut stream = std::net::TcpStream::connect(addr).expect("connect");
    let body = r#"{"name": "ada"}"#;
    let head = format!(
        "POST /v1/flows/t.hello/runs?wait=20s HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nAuthorization: Bearer \
         {TOKEN}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(head.as_bytes()).expect("sent");
    let mut raw = String::new();
    stream.read_to_string(&mut raw).expect("read");
    let (head, rest) = raw.split_once("\r\n\r\n").expect("an answer");
    assert!(head.starts_with("HTTP/1.1 200"), "{raw}");
    // Chunked or not, the JSON object is between the first `{` and the last `}`.
    let json = &rest[rest.find('{').expect("JSON")..=rest.rfind('}').expect("JSON")];
    serde_json::from_str(json).expect("JSON")
}

#[test]
fn a_delivery_pending_at_kill_9_is_sent_by_the_next_start() {
    let dir = TempDir::new("serve-webhook");
    let state = dir.path().join("state");
    std::fs::create_dir_all(dir.path().join("flows")).expect("flows");
    std::fs::write(dir.path().join("flows/hello.yaml"), FLOW).expect("flow");
    std::fs::write(
        dir.path().join("integrations.yaml"),
        "integrations:\n  duo_admin:\n    kind: duo_admin\n    host: \"127.0.0.1:9\"\n    ikey: DIXXXXXXXXXXXXXXXXXX\n    \
         skey: \"canarysecretkey000000000000000000000000e\"\n    loopback_http: true\n",
    )
    .expect("integrations");
    let receiver = receiver();
    let hash = flowcat_serve::auth::hex(&flowcat_serve::auth::hash(TOKEN));
    std::fs::write(
        dir.path().join("serve.yaml"),
        format!(
            "listen: 127.0.0.1:0\nintegrations: integrations.yaml\ntokens:\n  - name: admin\n    sha256: {hash}\n    \
             flows: ['*']\nwebhooks:\n  - name: ops\n    url: {}\n    secret: ${{FLOWCAT_TEST_HOOK_SECRET}}\n    \
             retry: {{ initial: 1s, max_delay: 2s }}\n",
            receiver.url
        ),
    )
    .expect("config");

    let (mut first, addr) = serve(dir.path(), &state, "first.log");
    let answer = post_run(&addr);
    let id = answer["id"].as_str().expect("a run id").to_owned();
    assert_eq!(answer["record"]["status"], "succeeded");
    // The first attempt comes at once (the journal wakes the deliverer) and is answered 503.
    let got = receiver.until(503);
    let event = got[0].header("flowcat-event").to_owned();
    // Killed once the failed attempt is journaled (else the delivery stays leased, and the next
    // start sends it only when the lease ends: correct, but 40 s later).
    let first_log = until_logged(&dir.path().join("first.log"), "webhook attempt failed; retrying");
    first.kill().expect("kill -9");
    first.wait().expect("reaped");

    receiver.status.store(200, Ordering::SeqCst);
    let (mut second, _) = serve(dir.path(), &state, "second.log");
    let got = receiver.until(200);
    let delivered = got.iter().find(|g| g.answered == 200).expect("delivered");
    assert_eq!(delivered.header("flowcat-event"), event, "the same event, so the receiver can dedupe");
    let now = SystemTime::now().duration_since(UNIX_EPOCH).expect("time").as_secs();
    assert!(
        flowcat_serve::webhook::verify(
            &flowcat_nodes::duo::Secret::new(SECRET),
            delivered.header("flowcat-timestamp"),
            delivered.header("flowcat-signature"),
            &delivered.body,
            now,
            300
        ),
        "a valid signature"
    );
    let body: Value = serde_json::from_slice(&delivered.body).expect("JSON");
    assert_eq!(body["run"]["id"], id.as_str());
    assert_eq!(body["run"]["record"]["outputs"]["text"], "hello ada");
    assert_eq!(got.iter().filter(|g| g.answered == 200).count(), 1);
    let log = until_logged(&dir.path().join("second.log"), "webhook delivered");
    let _ = second.kill();
    let _ = second.wait();

    for text in [&first_log, &log] {
        assert!(!text.contains(SECRET), "the secret in a log: {text}");
    }
    for entry in std::fs::read_dir(&state).expect("state") {
        let path = entry.expect("entry").path();
        if path.is_file() {
            let bytes = std::fs::read(&path).expect("read");
            assert!(!bytes.windows(SECRET.len()).any(|w| w == SECRET.as_bytes()), "the secret in {}", path.display());
        }
    }
}
