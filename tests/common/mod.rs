//! Running the real `flowcat` binary from the workspace root, for end-to-end tests.

#![allow(dead_code)]

pub mod cases;

use std::process::Command;

/// The binary's exit code, stdout and stderr.
pub struct Output {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    /// One text for a snapshot: exit code, then both streams.
    pub fn snapshot(&self) -> String {
        format!("exit: {}\n--- stdout ---\n{}--- stderr ---\n{}", self.code, self.stdout, self.stderr)
    }
}

/// Runs `flowcat ARGS` in the workspace root, without colour.
pub fn flowcat(args: &[&str]) -> Output {
    flowcat_in(std::path::Path::new(env!("CARGO_MANIFEST_DIR")), args, &[])
}

/// A fresh, empty folder under the system's temporary folder, removed on drop.
pub struct TempDir(pub std::path::PathBuf);

impl TempDir {
    pub fn new(name: &str) -> TempDir {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("flowcat-test-{}-{n}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("a temporary folder");
        TempDir(dir)
    }

    pub fn path(&self) -> &std::path::Path {
        &self.0
    }

    pub fn str(&self) -> &str {
        self.0.to_str().expect("a UTF-8 temporary path")
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Starts `flowcat ARGS` in `dir`, journaling into `state`, with its output piped: for a test
/// that signals the process while it runs (Ctrl-C).
pub fn spawn_flowcat(dir: &std::path::Path, args: &[&str], state: &std::path::Path) -> std::process::Child {
    spawn_flowcat_with(dir, args, state, &[])
}

/// [`spawn_flowcat`] with `env` set too (a crash point, say).
pub fn spawn_flowcat_with(
    dir: &std::path::Path,
    args: &[&str],
    state: &std::path::Path,
    env: &[(&str, &str)],
) -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_flowcat"))
        .args(args)
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .env("FLOWCAT_STATE_DIR", state)
        .env_remove("RUST_LOG")
        .env_remove("FLOWCAT_CATALOG")
        .env_remove("FLOWCAT_INTEGRATIONS")
        .envs(env.iter().copied())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("the flowcat binary starts")
}

/// The SHA-256 of `token` as the serve config takes it, made by `flowcat serve hash-token`.
pub fn hash_token(token: &str) -> String {
    use std::io::Write as _;
    let mut child = Command::new(env!("CARGO_BIN_EXE_flowcat"))
        .args(["serve", "hash-token"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("flowcat runs");
    child.stdin.take().expect("stdin").write_all(format!("{token}\n").as_bytes()).expect("written");
    let out = child.wait_with_output().expect("ends");
    assert!(out.status.success());
    String::from_utf8(out.stdout).expect("utf-8").trim().to_owned()
}

/// A `flowcat run` started in the background that waits for a signal: the run's id, read from
/// the command it prints for sending the signal (`flowcat signal ID NAME …`), and the process.
pub struct Waiting {
    pub id: String,
    pub child: std::process::Child,
    /// Everything it printed on stderr up to the waiting line.
    pub stderr: String,
    rest: std::thread::JoinHandle<String>,
}

impl Waiting {
    /// Spawns `flowcat ARGS` journaling into `state`, and reads its stderr until it says it waits
    /// for signal `name` (at most 30 s).
    pub fn spawn(args: &[&str], state: &std::path::Path, env: &[(&str, &str)], name: &str) -> Waiting {
        use std::io::BufRead as _;
        let mut child = spawn_flowcat_with(std::path::Path::new(env!("CARGO_MANIFEST_DIR")), args, state, env);
        let mut lines = std::io::BufReader::new(child.stderr.take().expect("stderr")).lines();
        let (tx, rx) = std::sync::mpsc::channel();
        let want = "flowcat signal ".to_owned();
        let name = format!(" {name} ");
        let rest = std::thread::spawn(move || {
            let mut rest = String::new();
            let mut told = false;
            for line in lines.by_ref().map_while(Result::ok) {
                if !told {
                    let _ = tx.send(line.clone());
                    if line.contains(&want) && line.contains(&name) {
                        told = true;
                    }
                } else {
                    rest.push_str(&line);
                    rest.push('\n');
                }
            }
            rest
        });
        let mut stderr = String::new();
        let t0 = std::time::Instant::now();
        loop {
            let left = std::time::Duration::from_secs(30).saturating_sub(t0.elapsed());
            let line = match rx.recv_timeout(left) {
                Ok(line) => line,
                Err(_) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!("the run never said it waits for a signal:\n{stderr}");
                }
            };
            stderr.push_str(&line);
            stderr.push('\n');
            if let Some(at) = line.find("flowcat signal ") {
                let id = line[at + "flowcat signal ".len()..].split_whitespace().next().expect("an id").to_owned();
                return Waiting { id, child, stderr, rest };
            }
        }
    }

    /// Waits for the process to end: its exit code, stdout, and the rest of its stderr.
    pub fn finish(self) -> Output {
        let out = self.child.wait_with_output().expect("the run ends");
        let rest = self.rest.join().unwrap_or_default();
        Output {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: self.stderr + &rest,
        }
    }
}

/// Runs `flowcat ARGS` in `dir` with `env` set, without colour, and with no
/// `FLOWCAT_CATALOG` or `FLOWCAT_INTEGRATIONS` from the caller's environment. Unless `env`
/// names a `FLOWCAT_STATE_DIR`, the run journals into a fresh folder of its own, so that runs
/// of different tests never meet through the journal (run keys) nor touch the user's.
pub fn flowcat_in(dir: &std::path::Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let state = TempDir::new("state");
    let out = Command::new(env!("CARGO_BIN_EXE_flowcat"))
        .args(args)
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .env("FLOWCAT_STATE_DIR", state.path())
        .env_remove("RUST_LOG")
        .env_remove("FLOWCAT_CATALOG")
        .env_remove("FLOWCAT_INTEGRATIONS")
        .envs(env.iter().copied())
        .output()
        .expect("the flowcat binary runs");
    Output {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// A `flowcat sim` process on a free loopback port, in its own temporary folder, with the
/// integrations file it wrote. Killed, and its folder removed, on drop.
pub struct Sim {
    /// `127.0.0.1:PORT`.
    pub addr: String,
    pub dir: std::path::PathBuf,
    pub integrations: std::path::PathBuf,
    child: std::process::Child,
    /// Kept open so that the simulator never writes to a closed pipe.
    _stdout: std::io::BufReader<std::process::ChildStdout>,
}

impl Sim {
    /// A simulator with the demo seed.
    pub fn start(name: &str) -> Sim {
        Sim::start_with(name, None)
    }

    /// A simulator with the demo seed, or with `seed` (the JSON of `--seed`).
    pub fn start_with(name: &str, seed: Option<&serde_json::Value>) -> Sim {
        Sim::start_args(name, seed, &[])
    }

    /// A simulator with the demo seed or `seed`, and more `flowcat sim` flags (`--time-scale`…).
    pub fn start_args(name: &str, seed: Option<&serde_json::Value>, args: &[&str]) -> Sim {
        use std::io::BufRead as _;
        use std::sync::atomic::{AtomicUsize, Ordering};
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("flowcat-e2e-{}-{n}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("a temporary folder");
        let integrations = dir.join("integrations.yaml");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_flowcat"));
        cmd.args(["sim", "--port", "0", "--write-integrations"]).arg(&integrations).args(args);
        if let Some(seed) = seed {
            let path = dir.join("seed.json");
            std::fs::write(&path, seed.to_string()).expect("the seed is written");
            cmd.arg("--seed").arg(path);
        }
        let stderr = std::fs::File::create(dir.join("sim.stderr")).expect("a log file");
        let mut child = cmd
            .env("NO_COLOR", "1")
            .env_remove("RUST_LOG")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("`flowcat sim` starts");
        let mut stdout = std::io::BufReader::new(child.stdout.take().expect("piped stdout"));
        let mut line = String::new();
        stdout.read_line(&mut line).expect("the first line of `flowcat sim`");
        let addr = line
            .split("http://")
            .nth(1)
            .and_then(|rest| rest.split(|c: char| c == ';' || c.is_whitespace()).next())
            .map(str::to_owned);
        let Some(addr) = addr else {
            let _ = child.kill();
            let log = std::fs::read_to_string(dir.join("sim.stderr")).unwrap_or_default();
            panic!("`flowcat sim` did not print its address: {line:?}\n{log}");
        };
        Sim { addr, dir, integrations, child, _stdout: stdout }
    }

    /// Calls the control API (`/sim/…`): the status and the answer as JSON.
    pub fn control(&self, method: &str, path: &str, body: Option<&serde_json::Value>) -> (u16, serde_json::Value) {
        let body = body.map(|b| b.to_string());
        let (status, text) = http(&self.addr, method, path, body.as_deref());
        let json = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{method} {path}: {e}: {text:?}"));
        (status, json)
    }

    /// The audit log, oldest first.
    pub fn audit(&self) -> Vec<serde_json::Value> {
        let (status, log) = self.control("GET", "/sim/audit", None);
        assert_eq!(status, 200, "GET /sim/audit: {log}");
        log.as_array().cloned().unwrap_or_else(|| panic!("the audit log is a list: {log}"))
    }

    /// Empties the audit log.
    pub fn clear_audit(&self) {
        let (status, _) = http(&self.addr, "DELETE", "/sim/audit", None);
        assert_eq!(status, 200, "DELETE /sim/audit");
    }

    /// Requests served per route pattern, every attempt counted.
    pub fn stats(&self) -> serde_json::Map<String, serde_json::Value> {
        let (status, stats) = self.control("GET", "/sim/stats", None);
        assert_eq!(status, 200, "GET /sim/stats: {stats}");
        stats.as_object().cloned().unwrap_or_else(|| panic!("the stats are an object: {stats}"))
    }

    /// Requests the simulator's `--rate-limit` answered with 429 (`GET /sim/rate-limit`).
    pub fn rate_limited(&self) -> u64 {
        let (status, body) = self.control("GET", "/sim/rate-limit", None);
        assert_eq!(status, 200, "GET /sim/rate-limit: {body}");
        body["refused"].as_u64().unwrap_or_else(|| panic!("a count of refusals: {body}"))
    }

    /// Every request served, all routes together (refused ones included).
    pub fn requests(&self) -> u64 {
        self.stats().values().filter_map(serde_json::Value::as_u64).sum()
    }

    /// Replaces the fault configuration (`PUT /sim/faults`).
    pub fn set_faults(&self, faults: &serde_json::Value) {
        let (status, answer) = self.control("PUT", "/sim/faults", Some(faults));
        assert_eq!(status, 200, "PUT /sim/faults {faults}: {answer}");
    }

    /// Runs `flowcat run FLOW -i INPUT… ARGS… --integrations <this simulator's file>`.
    pub fn run(&self, flow: &str, inputs: &[&str], args: &[&str]) -> Output {
        self.run_with(&self.integrations, flow, inputs, args)
    }

    /// An integrations file holding only this simulator's integration `name` (e.g. only the
    /// Auth API application), for runs that must do without the others.
    pub fn integrations_only(&self, name: &str) -> std::path::PathBuf {
        let text = std::fs::read_to_string(&self.integrations).expect("the integrations file");
        let mut keep = true;
        let mut out = String::new();
        for line in text.lines() {
            let is_entry = line.starts_with("  ") && !line.starts_with("   ");
            if is_entry {
                keep = line.trim_end().trim_end_matches(':').trim() == name;
            }
            if keep || !line.starts_with(' ') {
                out.push_str(line);
                out.push('\n');
            }
        }
        let path = self.dir.join(format!("integrations-{name}.yaml"));
        std::fs::write(&path, out).expect("the reduced integrations file");
        path
    }

    /// Runs `flowcat run FLOW -i INPUT… ARGS…` in the background until it waits for signal
    /// `name`, delivers it with `flowcat signal ID NAME --data DATA` from another process (which
    /// must answer `exit`), and waits for the run to end.
    pub fn run_signalled(&self, flow: &str, inputs: &[&str], args: &[&str], name: &str, data: &str) -> Output {
        let state = TempDir::new("signalled");
        let integrations = self.integrations.to_str().expect("a UTF-8 temporary path");
        let mut all = vec!["run", flow, "--integrations", integrations];
        for input in inputs {
            all.extend(["--input", input]);
        }
        all.extend(args);
        let waiting = Waiting::spawn(&all, state.path(), &[], name);
        let sent = flowcat_in(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")),
            &["signal", &waiting.id, name, "--data", data],
            &[("FLOWCAT_STATE_DIR", state.str())],
        );
        assert_eq!(sent.code, 0, "flowcat signal: {}", sent.snapshot());
        waiting.finish()
    }

    /// Runs `flowcat run FLOW -i INPUT… ARGS… --integrations FILE`.
    pub fn run_with(&self, file: &std::path::Path, flow: &str, inputs: &[&str], args: &[&str]) -> Output {
        let integrations = file.to_str().expect("a UTF-8 temporary path");
        let mut all = vec!["run", flow, "--integrations", integrations];
        for input in inputs {
            all.extend(["--input", input]);
        }
        all.extend(args);
        flowcat(&all)
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// One HTTP/1.1 request over a fresh loopback connection (`Connection: close`), read until the
/// server closes it: the status and the body (de-chunked when sent in chunks).
pub fn http(addr: &str, method: &str, path: &str, body: Option<&str>) -> (u16, String) {
    use std::io::{Read as _, Write as _};
    let mut stream = std::net::TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect to {addr}: {e}"));
    stream.set_read_timeout(Some(std::time::Duration::from_secs(30))).expect("a read timeout");
    let body = body.unwrap_or("");
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).expect("the request is sent");
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).expect("the answer is read");
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, rest) =
        text.split_once("\r\n\r\n").unwrap_or_else(|| panic!("{method} {path}: no header end: {text:?}"));
    let status = head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or_else(|| panic!("{head:?}"));
    let chunked = head.lines().any(|l| {
        let l = l.to_ascii_lowercase();
        l.starts_with("transfer-encoding:") && l.contains("chunked")
    });
    (status, if chunked { dechunk(rest) } else { rest.to_owned() })
}

/// A chunked HTTP body as one string.
pub fn dechunk(mut rest: &str) -> String {
    let mut body = String::new();
    while let Some((size, tail)) = rest.split_once("\r\n") {
        let size = usize::from_str_radix(size.split(';').next().unwrap_or("").trim(), 16).unwrap_or(0);
        if size == 0 || tail.len() < size {
            break;
        }
        body.push_str(&tail[..size]);
        rest = tail[size..].strip_prefix("\r\n").unwrap_or(&tail[size..]);
    }
    body
}

/// Every file under `dir`, whole, with its path: for canaries that search what a run left
/// behind.
pub fn files(dir: &std::path::Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).expect("read_dir") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.push((path.display().to_string(), std::fs::read(&path).expect("read")));
            }
        }
    }
    out
}

/// Spawns `command`, a `flowcat serve` set up by the caller (arguments, environment), with its
/// stderr in `log`, and reads
/// the address from the line it prints once it listens. Panics with the log when none comes.
pub fn spawn_serve(mut command: Command, log: &std::path::Path, name: &str) -> (std::process::Child, String) {
    use std::io::BufRead as _;
    let mut child = command
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::fs::File::create(log).expect("a log file"))
        .spawn()
        .expect("`flowcat serve` starts");
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().expect("stdout")).read_line(&mut line).expect("a line");
    let Some(addr) = line.trim().strip_prefix("flowcat serve: listening on http://").map(str::to_owned) else {
        let _ = child.kill();
        panic!("{name}: no address: {line:?}\n{}", std::fs::read_to_string(log).unwrap_or_default());
    };
    (child, addr)
}
