//! `flowcat run --each` memory against the number of rows (issue 13: "rows are streamed: memory
//! stays flat for a 100,000-row file"), through the real binary against `flowcat sim`.
//!
//! `cargo bench --bench each` (`EACH_ROWS=1000,10000` for other sizes). For each size it writes
//! a CSV of distinct usernames, runs `flowcat run duo.admin.retrieve_user_id --each FILE
//! --concurrency 16 --out out.jsonl` (one Admin API read a row, journaled in a fresh state
//! folder), then the same command again (every row already done: the journal's lookups only),
//! and reads the child's peak resident memory (`VmHWM` of `/proc/PID/status`, sampled every
//! 5 ms: it only grows, so the last sample before the exit is the peak but for the last 5 ms).
//! The sizes share one simulator (no rate limit) and run one after the other in one process;
//! the ratio of each size's peak to the smallest one's is the figure: flat is about 1.

use std::io::BufRead as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const FLOWCAT: &str = env!("CARGO_BIN_EXE_flowcat");

/// A `flowcat sim` child, killed on drop.
struct Sim {
    child: Child,
    integrations: PathBuf,
}

impl Sim {
    fn start(dir: &Path) -> Sim {
        let integrations = dir.join("integrations.yaml");
        let mut child = Command::new(FLOWCAT)
            .args(["sim", "--port", "0", "--write-integrations"])
            .arg(&integrations)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("`flowcat sim` starts");
        let mut line = String::new();
        let stdout = child.stdout.take().expect("piped");
        std::io::BufReader::new(stdout).read_line(&mut line).expect("the simulator's first line");
        assert!(line.contains("listening on"), "{line}");
        Sim { child, integrations }
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One `flowcat run --each`: its peak resident memory, wall time, and the summary it printed.
struct Measured {
    peak_kib: u64,
    wall: Duration,
    summary: serde_json::Value,
}

fn status_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status.lines().find_map(|l| l.strip_prefix(field)).and_then(|v| v.trim().split(' ').next()?.parse().ok())
}

fn run_each(dir: &Path, sim: &Sim, rows: &Path, state: &Path) -> Measured {
    let started = Instant::now();
    let mut child = Command::new(FLOWCAT)
        .args(["-q", "run", "duo.admin.retrieve_user_id", "--each"])
        .arg(rows)
        .args(["--concurrency", "16", "--format", "json", "--out", "out.jsonl", "--integrations"])
        .arg(&sim.integrations)
        .current_dir(dir)
        .env("FLOWCAT_STATE_DIR", state)
        .env_remove("FLOWCAT_CATALOG")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("flowcat runs");
    let pid = child.id();
    let mut peak_kib = 0;
    let mut stdout = child.stdout.take().expect("piped");
    // The summary is one small JSON object printed at the end: read on a thread so the pipe
    // never fills while the loop below samples.
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut stdout, &mut text).expect("the summary");
        text
    });
    loop {
        if let Some(kib) = status_kib(pid, "VmHWM:") {
            peak_kib = peak_kib.max(kib);
        }
        if child.try_wait().expect("the child's status").is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let wall = started.elapsed();
    let text = reader.join().expect("the reader");
    let summary = serde_json::from_str(&text).unwrap_or_else(|e| panic!("a JSON summary: {e}: {text}"));
    Measured { peak_kib, wall, summary }
}

fn main() {
    if !Path::new("/proc/self/status").exists() {
        eprintln!("this benchmark reads /proc/PID/status (Linux)");
        return;
    }
    let sizes: Vec<usize> = std::env::var("EACH_ROWS")
        .ok()
        .map(|v| v.split(',').filter_map(|n| n.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![10_000, 100_000]);
    let dir = std::env::temp_dir().join(format!("flowcat-bench-each-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("a temporary folder");
    let sim = Sim::start(&dir);
    println!("run --each, concurrency 16, one Admin API read a row, journaled, --out JSON Lines");
    println!(
        "{:>8}  {:>14}  {:>10}  {:>9}  {:>14}  {:>10}",
        "rows", "peak RSS, run", "rows/s", "vs first", "peak, re-run", "vs first"
    );
    let mut first: Option<(u64, u64)> = None;
    for rows in sizes {
        let file = dir.join(format!("rows-{rows}.csv"));
        let mut text = String::with_capacity(rows * 12 + 9);
        text.push_str("username\n");
        for i in 0..rows {
            text.push_str(&format!("nobody{i:07}\n"));
        }
        std::fs::write(&file, text).expect("the rows are written");
        let state = dir.join(format!("state-{rows}"));
        let ran = run_each(&dir, &sim, &file, &state);
        assert_eq!(ran.summary["succeeded"], rows as u64, "{}", ran.summary);
        let again = run_each(&dir, &sim, &file, &state);
        assert_eq!(again.summary["already_done"], rows as u64, "{}", again.summary);
        let (base_run, base_again) = *first.get_or_insert((ran.peak_kib, again.peak_kib));
        println!(
            "{rows:>8}  {:>10.1} MiB  {:>10.0}  {:>8.2}×  {:>10.1} MiB  {:>9.2}×",
            ran.peak_kib as f64 / 1024.0,
            rows as f64 / ran.wall.as_secs_f64(),
            ran.peak_kib as f64 / base_run as f64,
            again.peak_kib as f64 / 1024.0,
            again.peak_kib as f64 / base_again as f64,
        );
        let _ = std::fs::remove_file(&file);
    }
    drop(sim);
    let _ = std::fs::remove_dir_all(&dir);
}
