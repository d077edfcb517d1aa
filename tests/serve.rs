//! `flowcat serve` as a process, over real HTTP on loopback, against `flowcat sim`: runs started,
//! waited for, polled, retried with one key, limited, cancelled; a SIGTERM that parks a run and a
//! restart that resumes it; and a canary: no secret in any answer, log line, metric or journal.

use crate::common;

use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{Sim, TempDir};
use serde_json::{Value, json};

const ADMIN: &str = "canary-admin-token-7f3a9c1e5b2d4a68";
const BOT: &str = "canary-bot-token-0c4e8a2f6b1d3957aa";
/// The simulator's secret keys, as its integrations file holds them.
const SECRETS: &[&str] = &["simadminsecretkey", "simauthsecretkey", ADMIN, BOT];

/// A `flowcat serve` process; killed on drop.
struct Serve {
    addr: String,
    child: Child,
    log: PathBuf,
}

impl Serve {
    fn start(dir: &TempDir, state: &Path, config: &Path, name: &str) -> Serve {
        let log = dir.path().join(format!("{name}.log"));
        let mut command = Command::new(env!("CARGO_BIN_EXE_flowcat"));
        command
            .args(["serve", "--log-format", "json", "--config"])
            .arg(config)
            .env("FLOWCAT_STATE_DIR", state)
            .env("NO_COLOR", "1")
            .env_remove("RUST_LOG")
            .current_dir(dir.path());
        let (child, addr) = common::spawn_serve(command, &log, name);
        Serve { addr, child, log }
    }

    fn term(&mut self) {
        let pid = self.child.id().to_string();
        assert!(Command::new("kill").args(["-TERM", &pid]).status().expect("kill").success());
    }

    fn wait_exit(&mut self, within: Duration) -> std::process::ExitStatus {
        let t0 = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            assert!(t0.elapsed() < within, "flowcat serve did not stop");
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

/// An answer: status, headers (lower-case names) and body.
#[derive(Debug)]
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
}

/// Every answer of a test, for the canary.
#[derive(Default)]
struct Client {
    seen: Vec<String>,
}

impl Client {
    fn call(&mut self, addr: &str, method: &str, path: &str, headers: &[(&str, &str)], body: Option<&str>) -> Answer {
        let mut stream = std::net::TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
        stream.set_read_timeout(Some(Duration::from_secs(60))).expect("timeout");
        let body = body.unwrap_or("");
        let mut head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
            body.len()
        );
        for (k, v) in headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        stream.write_all(format!("{head}\r\n{body}").as_bytes()).expect("sent");
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).expect("read");
        let text = String::from_utf8_lossy(&raw).into_owned();
        self.seen.push(text.clone());
        let (head, rest) = text.split_once("\r\n\r\n").unwrap_or_else(|| panic!("no header end: {text:?}"));
        let mut lines = head.lines();
        let status = lines.next().and_then(|l| l.split_whitespace().nth(1)?.parse().ok()).expect("a status");
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
            .collect();
        let chunked = headers.iter().any(|(k, v)| k == "transfer-encoding" && v.contains("chunked"));
        let body = if chunked { common::dechunk(rest) } else { rest.to_owned() };
        Answer { status, headers, body }
    }

    fn get(&mut self, addr: &str, path: &str, token: &str) -> Answer {
        self.call(addr, "GET", path, &[("Authorization", &format!("Bearer {token}"))], None)
    }

    fn start(&mut self, addr: &str, flow: &str, query: &str, token: &str, key: Option<&str>, inputs: &Value) -> Answer {
        let auth = format!("Bearer {token}");
        let mut headers = vec![("Authorization", auth.as_str()), ("Content-Type", "application/json")];
        if let Some(k) = key {
            headers.push(("Idempotency-Key", k));
        }
        self.call(addr, "POST", &format!("/v1/flows/{flow}/runs{query}"), &headers, Some(&inputs.to_string()))
    }

    /// Polls the run until it is no longer running.
    fn until_ended(&mut self, addr: &str, id: &str, token: &str) -> Value {
        self.until_out_of(addr, id, token, &["running"])
    }

    /// Like [`Client::until_ended`] for a run that the service resumes as it starts: until then
    /// it still reads `interrupted`, as it was parked.
    fn until_resumed_and_ended(&mut self, addr: &str, id: &str, token: &str) -> Value {
        self.until_out_of(addr, id, token, &["running", "interrupted"])
    }

    /// The run once its status is none of `waiting` (at most 60 s).
    fn until_out_of(&mut self, addr: &str, id: &str, token: &str, waiting: &[&str]) -> Value {
        let t0 = Instant::now();
        loop {
            let a = self.get(addr, &format!("/v1/runs/{id}"), token);
            assert_eq!(a.status, 200, "{}", a.body);
            let v = a.json();
            if !waiting.iter().any(|w| v["status"] == *w) {
                return v;
            }
            assert!(t0.elapsed() < Duration::from_secs(60), "run {id} never ended");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

fn config(dir: &TempDir, sim: &Sim, extra: &str) -> PathBuf {
    let text = format!(
        "listen: 127.0.0.1:0\nintegrations: {}\nshutdown_grace: 2s\ntokens:\n  - name: admin\n    sha256: {}\n    flows: ['*']\n    signals: [approval]\n  \
         - name: bot\n    sha256: {}\n    flows: [duo.auth.verify_push]\n{extra}",
        sim.integrations.display(),
        common::hash_token(ADMIN),
        common::hash_token(BOT),
    );
    let path = dir.path().join("serve.yaml");
    std::fs::write(&path, text).expect("written");
    path
}

fn pushes(sim: &Sim) -> usize {
    sim.audit().iter().filter(|e| e["change"] == "push.send").count()
}

/// Asserts that no secret appears in what the client saw, the log, the metrics or the journal.
fn canary(client: &mut Client, serve: &Serve, state: &Path) {
    let metrics = client.get(&serve.addr, "/metrics", ADMIN);
    assert_eq!(metrics.status, 200);
    let mut places: Vec<(String, String)> = client.seen.iter().map(|s| ("an answer".to_owned(), s.clone())).collect();
    places.push(("the log".into(), std::fs::read_to_string(&serve.log).expect("the log")));
    for entry in std::fs::read_dir(state).expect("the state folder") {
        let path = entry.expect("an entry").path();
        if path.is_file() {
            let bytes = std::fs::read(&path).expect("readable");
            places.push((path.display().to_string(), String::from_utf8_lossy(&bytes).into_owned()));
        }
    }
    for (place, text) in &places {
        for secret in SECRETS {
            assert!(!text.contains(secret), "`{secret}` appears in {place}");
        }
    }
}

#[test]
fn runs_over_http_with_keys_limits_refusals_and_no_secret_anywhere() {
    let sim = Sim::start("serve-api");
    let dir = TempDir::new("serve-api");
    let state = dir.path().join("state");
    let cfg = config(&dir, &sim, "limits:\n  max_body_bytes: 4096\n");
    // A local flow replacing a built-in one: the note is a log line too (JSON like the others).
    let builtin =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("flows/duo/retrieve-user-id.yaml"));
    std::fs::create_dir_all(dir.path().join("flows")).expect("a flows folder");
    std::fs::write(dir.path().join("flows/retrieve-user-id.yaml"), builtin.expect("the flow") + "# a local copy\n")
        .expect("written");
    let serve = Serve::start(&dir, &state, &cfg, "serve");
    let addr = serve.addr.clone();
    let mut c = Client::default();

    assert_eq!(c.call(&addr, "GET", "/healthz", &[], None).status, 200);
    let ready = c.call(&addr, "GET", "/readyz", &[], None);
    assert_eq!(ready.status, 200, "{}", ready.body);

    // Refusals over the wire: JSON, nothing but the code.
    let none = c.call(&addr, "POST", "/v1/flows/duo.admin.retrieve_user_id/runs", &[], Some("{}"));
    assert_eq!((none.status, none.json()), (401, json!({ "error": "unauthorized" })));
    let wrong = c.start(&addr, "duo.admin.retrieve_user_id", "", "not-a-token", None, &json!({}));
    assert_eq!((wrong.status, wrong.json()), (401, json!({ "error": "unauthorized" })));
    let other = c.start(&addr, "duo.admin.retrieve_user_id", "", BOT, None, &json!({ "username": "alice" }));
    assert_eq!((other.status, other.json()), (403, json!({ "error": "forbidden" })));
    let tricky = c.start(&addr, "..%2F..%2Fetc%2Fpasswd", "", ADMIN, None, &json!({}));
    assert_eq!(tricky.status, 404, "{}", tricky.body);
    let big = json!({ "username": "x".repeat(5000) });
    assert_eq!(c.start(&addr, "duo.admin.retrieve_user_id", "", ADMIN, None, &big).status, 413);
    let text = c.call(
        &addr,
        "POST",
        "/v1/flows/duo.admin.retrieve_user_id/runs",
        &[("Authorization", &format!("Bearer {ADMIN}")), ("Content-Type", "text/plain")],
        Some("username=alice"),
    );
    assert_eq!(text.status, 415, "{}", text.body);

    // Inputs checked first, with the CLI's words.
    let bad = c.start(&addr, "duo.admin.retrieve_user_id", "", ADMIN, None, &json!({ "email": "nope" }));
    assert_eq!(bad.status, 400, "{}", bad.body);
    let cli = common::flowcat(&[
        "run",
        "duo.admin.retrieve_user_id",
        "--no-journal",
        "-i",
        "email=nope",
        "--integrations",
        sim.integrations.to_str().expect("utf-8"),
    ]);
    for problem in bad.json()["problems"].as_array().expect("problems") {
        assert!(cli.stderr.contains(problem.as_str().expect("text")), "{problem} not in the CLI's {}", cli.stderr);
    }

    // Wait for the record.
    let ran = c.start(&addr, "duo.admin.retrieve_user_id", "?wait=20s", ADMIN, None, &json!({ "username": "alice" }));
    assert_eq!(ran.status, 200, "{}", ran.body);
    let v = ran.json();
    assert_eq!(v["record"]["status"], "succeeded", "{v:#}");
    assert_eq!(v["record"]["outputs"]["found"], true);
    let id = v["id"].as_str().expect("an id").to_owned();
    assert_eq!(ran.header("location"), Some(format!("/v1/runs/{id}").as_str()));
    // Answered once its end is in the journal: reading it at once finds it ended.
    let shown = c.get(&addr, &format!("/v1/runs/{id}"), ADMIN).json();
    assert_eq!(shown["status"], "succeeded", "{shown:#}");
    assert_eq!(shown["record"]["outputs"]["found"], true, "{shown:#}");

    // 202 and poll.
    let accepted = c.start(&addr, "duo.auth.verify_push", "", BOT, Some("ticket-42"), &json!({ "username": "alice" }));
    assert_eq!(accepted.status, 202, "{}", accepted.body);
    let url = accepted.header("location").expect("a Location").to_owned();
    let push_id = accepted.json()["id"].as_str().expect("id").to_owned();
    // A retry while it runs: the same run's URL, no second run.
    let retry = c.start(&addr, "duo.auth.verify_push", "", BOT, Some("ticket-42"), &json!({ "username": "alice" }));
    assert_eq!((retry.status, retry.json()["id"].clone()), (202, json!(push_id)), "{}", retry.body);
    let ended = c.until_ended(&addr, &push_id, BOT);
    assert_eq!(ended["status"], "succeeded", "{ended:#}");
    assert_eq!(url, format!("/v1/runs/{push_id}"));
    // The same key again: the same run, its record, no second push.
    let again =
        c.start(&addr, "duo.auth.verify_push", "?wait=10s", BOT, Some("ticket-42"), &json!({ "username": "alice" }));
    assert_eq!(again.status, 200, "{}", again.body);
    assert_eq!(again.json()["id"], push_id.as_str());
    assert_eq!(again.json()["replayed"], true);
    assert_eq!(pushes(&sim), 1);

    // The bot sees its runs, not the admin's.
    let mine = c.get(&addr, "/v1/runs", BOT).json();
    let ids: Vec<&str> = mine["runs"].as_array().expect("runs").iter().filter_map(|r| r["id"].as_str()).collect();
    assert_eq!(ids, vec![push_id.as_str()]);
    assert_eq!(c.get(&addr, &format!("/v1/runs/{id}"), BOT).status, 404);
    let filtered = c.get(&addr, "/v1/runs?flow=duo.admin.retrieve_user_id&status=succeeded", ADMIN).json();
    assert_eq!(filtered["runs"].as_array().map(Vec::len), Some(1), "{filtered:#}");
    assert_eq!(c.get(&addr, "/v1/runs?status=maybe", ADMIN).status, 400);

    // Metrics: runs by flow and status, Duo answers, latencies.
    let m = c.get(&addr, "/metrics", ADMIN).body;
    assert!(m.contains("flowcat_runs_total{flow=\"duo.auth.verify_push\",status=\"succeeded\"} 1"), "{m}");
    assert!(m.contains("flowcat_runs_total{flow=\"duo.admin.retrieve_user_id\",status=\"succeeded\"} 1"), "{m}");
    assert!(m.contains("flowcat_duo_answers_total{status=\"200\"}"), "{m}");
    assert!(m.contains("flowcat_http_refused_total{reason=\"unauthorized\"} 2"), "{m}");
    assert!(m.contains("flowcat_http_refused_total{reason=\"forbidden\"} 1"), "{m}");
    assert!(m.contains("flowcat_node_duration_seconds_count{kind=\"rest_call\",status=\"succeeded\"}"), "{m}");

    canary(&mut c, &serve, &state);
    // JSON lines; every line about a run names the run and the flow.
    let log = std::fs::read_to_string(&serve.log).expect("the log");
    let mut about_runs = 0;
    for line in log.lines() {
        let v: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("not a JSON line ({e}): {line}"));
        let fields = &v["fields"];
        let in_run = v["spans"].as_array().is_some_and(|s| s.iter().any(|s| s["name"] == "run"));
        if fields.get("run_id").is_some() || in_run {
            about_runs += 1;
            let named = |k: &str| {
                fields.get(k).is_some()
                    || v["spans"].as_array().is_some_and(|s| s.iter().any(|s| s["name"] == "run" && s.get(k).is_some()))
            };
            assert!(named("run_id") && named("flow"), "{line}");
        }
    }
    assert!(about_runs >= 4, "{log}");
    assert!(log.contains("a local flow replaces a built-in one"), "{log}");
}

#[test]
fn cancel_limits_sigterm_parks_and_a_restart_resumes() {
    // carol never answers a push: her runs wait on their poll until they are stopped.
    let sim = Sim::start_args("serve-ops", None, &["--time-scale", "1"]);
    let dir = TempDir::new("serve-ops");
    let state = dir.path().join("state");
    let cfg = config(&dir, &sim, "limits:\n  max_runs_per_token: 2\n");
    std::fs::write(
        &cfg,
        std::fs::read_to_string(&cfg).expect("cfg").replace("shutdown_grace: 2s", "shutdown_grace: 1s"),
    )
    .expect("written");
    let mut serve = Serve::start(&dir, &state, &cfg, "first");
    let addr = serve.addr.clone();
    let mut c = Client::default();
    let bot = format!("Bearer {BOT}");

    let push = |c: &mut Client| {
        let a = c.start(&addr, "duo.auth.verify_push", "", BOT, None, &json!({ "username": "carol" }));
        assert_eq!(a.status, 202, "{}", a.body);
        let id = a.json()["id"].as_str().expect("id").to_owned();
        // A 202 means the run is in the journal (a run without a key too).
        let shown = c.get(&addr, &format!("/v1/runs/{id}"), BOT);
        assert_eq!((shown.status, shown.json()["status"].clone()), (200, json!("running")), "{}", shown.body);
        id
    };
    let first = push(&mut c);
    let second = push(&mut c);
    let third = c.start(&addr, "duo.auth.verify_push", "", BOT, None, &json!({ "username": "alice" }));
    assert_eq!(third.status, 429, "{}", third.body);
    assert_eq!(third.json()["error"], "too_many_runs");
    let t0 = Instant::now();
    while pushes(&sim) < 2 {
        assert!(t0.elapsed() < Duration::from_secs(20), "the pushes were never sent");
        std::thread::sleep(Duration::from_millis(20));
    }

    // Cancel the first: drained, its poll abandoned, then ended failed (`cancelled`).
    let cancel = c.call(&addr, "POST", &format!("/v1/runs/{first}/cancel"), &[("Authorization", &bot)], None);
    assert_eq!(cancel.status, 202, "{}", cancel.body);
    let ended = c.until_ended(&addr, &first, BOT);
    assert_eq!(ended["status"], "failed", "{ended:#}");
    assert_eq!(ended["record"]["error"]["code"], "cancelled", "{ended:#}");
    let again = c.call(&addr, "POST", &format!("/v1/runs/{first}/cancel"), &[("Authorization", &bot)], None);
    assert_eq!(again.status, 409, "{}", again.body);

    // SIGTERM: no new run (503); after the grace the second is drained, then parked.
    serve.term();
    std::thread::sleep(Duration::from_millis(300));
    let refused = c.start(&addr, "duo.auth.verify_push", "", BOT, None, &json!({ "username": "alice" }));
    assert_eq!(refused.status, 503, "{}", refused.body);
    let ready = c.call(&addr, "GET", "/readyz", &[], None);
    assert_eq!(ready.status, 503, "{}", ready.body);
    let status = serve.wait_exit(Duration::from_secs(30));
    assert!(status.success(), "{status:?}: {}", std::fs::read_to_string(&serve.log).unwrap_or_default());
    let listed = common::flowcat_in(
        dir.path(),
        &["runs", "list", "--format", "json"],
        &[("FLOWCAT_STATE_DIR", state.to_str().expect("utf-8"))],
    );
    let runs: Value = serde_json::from_str(&listed.stdout).expect("runs");
    let status_of =
        |id: &str| runs.as_array().expect("list").iter().find(|r| r["info"]["id"] == id).map(|r| r["status"].clone());
    assert_eq!(status_of(&second), Some(json!("interrupted")), "{runs:#}");
    assert_eq!(status_of(&first), Some(json!("failed")));

    // The next start resumes it: it polls the push it sent (no second one) and sees the answer.
    let serve = Serve::start(&dir, &state, &cfg, "second");
    // carol approves both pushes at last (the cancelled run's is answered to nobody).
    for e in sim.audit().iter().filter(|e| e["change"] == "push.send") {
        let body = json!({ "txid": e["detail"]["txid"], "answer": "approve" });
        let (code, answer) = sim.control("POST", "/sim/push/answer", Some(&body));
        assert_eq!(code, 200, "{answer}");
    }
    let ended = c.until_resumed_and_ended(&serve.addr, &second, BOT);
    assert_eq!(ended["status"], "succeeded", "{ended:#}");
    assert_eq!(ended["record"]["outputs"]["verified"], true, "{ended:#}");
    assert_eq!(pushes(&sim), 2, "no push sent twice");
    let log = std::fs::read_to_string(&serve.log).expect("log");
    assert!(log.contains("resuming an interrupted run"), "{log}");
    canary(&mut c, &serve, &state);
}

/// The metric line starting with `name` (its value after the last space).
fn metric(c: &mut Client, addr: &str, name: &str) -> String {
    let text = c.get(addr, "/metrics", ADMIN).body;
    text.lines().find(|l| l.starts_with(name)).unwrap_or_else(|| panic!("no {name} in\n{text}")).to_owned()
}

/// Polls the run until its status is final (succeeded, failed).
fn until_final(c: &mut Client, addr: &str, id: &str) -> Value {
    let t0 = Instant::now();
    loop {
        let v = c.get(addr, &format!("/v1/runs/{id}"), ADMIN).json();
        if v["status"] == "succeeded" || v["status"] == "failed" {
            return v;
        }
        assert!(t0.elapsed() < Duration::from_secs(60), "run {id} never ended: {v:#}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Issue 14's case: runs parked on `wait_for` through the API survive eviction from memory
/// (`limits.evict_waiting_after: 1s`) and a graceful restart; their signals, sent over HTTP,
/// resume them from the journal, and every write reaches the simulator once.
#[test]
fn parked_runs_survive_eviction_and_a_restart_and_their_signals_resume_them() {
    let sim = Sim::start("serve-parked");
    let dir = TempDir::new("serve-parked");
    let state = dir.path().join("state");
    let cfg = config(&dir, &sim, "limits:\n  evict_waiting_after: 1s\n");
    let mut serve = Serve::start(&dir, &state, &cfg, "first");
    let addr = serve.addr.clone();
    let mut c = Client::default();
    let flow = "examples.offboard_with_approval";

    let mut ids = Vec::new();
    for user in ["alice", "bob"] {
        let a = c.start(&addr, flow, "?wait=1s", ADMIN, None, &json!({ "username": user }));
        assert_eq!(a.status, 202, "{}", a.body);
        assert_eq!(a.json()["status"], "waiting", "{}", a.body);
        ids.push(a.json()["id"].as_str().expect("an id").to_owned());
    }
    let (alice, bob) = (ids[0].clone(), ids[1].clone());
    // Parked longer than a second: both leave memory and wait in the journal.
    let t0 = Instant::now();
    while metric(&mut c, &addr, "flowcat_runs_waiting{held=\"journal\"}") != "flowcat_runs_waiting{held=\"journal\"} 2"
    {
        assert!(t0.elapsed() < Duration::from_secs(20), "never evicted");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(
        metric(&mut c, &addr, "flowcat_runs_waiting{held=\"memory\"}"),
        "flowcat_runs_waiting{held=\"memory\"} 0"
    );
    let shown = c.get(&addr, &format!("/v1/runs/{bob}"), ADMIN).json();
    assert_eq!((shown["status"].clone(), shown["waiting"]["signal"].clone()), (json!("waiting"), json!("approval")));

    // bob's approval comes while the service runs: resumed from the journal at once.
    let auth = format!("Bearer {ADMIN}");
    let headers = [("Authorization", auth.as_str()), ("Content-Type", "application/json")];
    let approve = json!({ "approved": true, "approver": "manager@example.com" }).to_string();
    let sent = c.call(&addr, "POST", &format!("/v1/runs/{bob}/signals/approval"), &headers, Some(&approve));
    assert_eq!(sent.status, 202, "{}", sent.body);
    let ended = until_final(&mut c, &addr, &bob);
    assert_eq!(ended["status"], "succeeded", "{ended:#}");
    assert_eq!(ended["record"]["outputs"]["outcome"], "disabled", "{ended:#}");

    // A graceful stop; alice still waits, in the journal, held by nobody.
    serve.term();
    let status = serve.wait_exit(Duration::from_secs(30));
    assert!(status.success(), "{status:?}: {}", std::fs::read_to_string(&serve.log).unwrap_or_default());
    let env = [("FLOWCAT_STATE_DIR", state.to_str().expect("utf-8"))];
    let listed = common::flowcat_in(dir.path(), &["runs", "list", "--status", "waiting", "--format", "json"], &env);
    let runs: Value = serde_json::from_str(&listed.stdout).expect("runs");
    let waiting: Vec<&Value> = runs.as_array().expect("a list").iter().collect();
    assert_eq!(waiting.len(), 1, "{runs:#}");
    assert_eq!(
        (waiting[0]["info"]["id"].as_str(), waiting[0]["waiting"]["held"].clone()),
        (Some(alice.as_str()), json!(false))
    );

    // Started again on the same state folder: alice's signal resumes her run.
    let serve = Serve::start(&dir, &state, &cfg, "second");
    let addr = serve.addr.clone();
    assert_eq!(
        metric(&mut c, &addr, "flowcat_runs_waiting{held=\"journal\"}"),
        "flowcat_runs_waiting{held=\"journal\"} 1"
    );
    let sent = c.call(&addr, "POST", &format!("/v1/runs/{alice}/signals/approval"), &headers, Some(&approve));
    assert_eq!(sent.status, 202, "{}", sent.body);
    let again = c.call(&addr, "POST", &format!("/v1/runs/{alice}/signals/approval"), &headers, Some(&approve));
    assert_eq!((again.status, again.json()["error"].clone()), (409, json!("already_delivered")), "{}", again.body);
    let ended = until_final(&mut c, &addr, &alice);
    assert_eq!(ended["status"], "succeeded", "{ended:#}");
    assert_eq!(ended["record"]["outputs"]["outcome"], "disabled", "{ended:#}");
    assert_eq!(ended["record"]["outputs"]["approver"], "manager@example.com", "{ended:#}");

    // Each write once: one user update (disabled) per user, each phone deleted once.
    let audit = sim.audit();
    let changes = |change: &str| audit.iter().filter(|e| e["change"] == change).count();
    assert_eq!(changes("user.update"), 2, "{audit:#?}");
    let mut phones: Vec<String> =
        audit.iter().filter(|e| e["change"] == "phone.delete").map(|e| e["detail"].to_string()).collect();
    let n = phones.len();
    phones.sort();
    phones.dedup();
    assert_eq!(phones.len(), n, "a phone deleted twice: {audit:#?}");
    assert!(n >= 1, "{audit:#?}");
    canary(&mut c, &serve, &state);
}

/// A config with problems: every one reported, naming the file, exit 2, nothing served; a
/// token too short to hash is refused.
#[test]
fn a_bad_config_or_a_weak_token_is_refused_before_anything_is_served() {
    let dir = TempDir::new("serve-bad");
    let cfg = dir.path().join("serve.yaml");
    std::fs::write(&cfg, "listen: nowhere\ntokens:\n  - name: bot\n    sha256: pasted-token-value-0123456789\n")
        .expect("written");
    let out = common::flowcat(&["serve", "--config", cfg.to_str().expect("utf-8")]);
    assert_eq!(out.code, 2, "{}", out.snapshot());
    assert!(out.stderr.contains("serve.yaml: `listen: nowhere`"), "{}", out.stderr);
    assert!(out.stderr.contains("`integrations:` is missing"), "{}", out.stderr);
    assert!(out.stderr.contains("flowcat serve hash-token"), "{}", out.stderr);
    assert!(!out.stderr.contains("pasted-token-value"), "{}", out.stderr);
    assert!(out.stdout.is_empty(), "{}", out.stdout);
    let none = common::flowcat(&["serve"]);
    assert_eq!(none.code, 2);
    assert!(none.stderr.contains("--config"), "{}", none.stderr);

    let mut child = Command::new(env!("CARGO_BIN_EXE_flowcat"))
        .args(["serve", "hash-token"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("runs");
    child.stdin.take().expect("stdin").write_all(b"short\n").expect("written");
    let out = child.wait_with_output().expect("ends");
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
    // The hash of a token is SHA-256, hex: what `sha256sum` prints.
    assert_eq!(common::hash_token(ADMIN).len(), 64);
    assert_eq!(common::hash_token("0123456789abcdefghijklmnop"), sha256_hex("0123456789abcdefghijklmnop"));
}

/// SHA-256 through `sha256sum`, an independent implementation.
fn sha256_hex(text: &str) -> String {
    let mut child = Command::new("sha256sum").stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().expect("sha256sum");
    child.stdin.take().expect("stdin").write_all(text.as_bytes()).expect("written");
    let out = child.wait_with_output().expect("ends");
    String::from_utf8_lossy(&out.stdout).split_whitespace().next().expect("a hash").to_owned()
}
