//! The supervisor: makes inputs, feeds them to a worker process, and judges each answer
//! against the time and memory bounds.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitCode, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::time::{Duration, Instant};

use fastrand::Rng;

use crate::Options;
use crate::worker::{Case, proc_status_kib, write_case};

/// How often the worker's resident memory is read while an input runs.
const WATCH: Duration = Duration::from_millis(20);

/// A worker process, its input pipe and the lines it answers.
struct Worker {
    child: Child,
    stdin: ChildStdin,
    answers: Receiver<String>,
}

impl Worker {
    fn start() -> std::io::Result<Worker> {
        let mut child = Command::new(std::env::current_exe()?)
            .arg("--worker")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()?;
        let stdin = child.stdin.take().ok_or_else(|| std::io::Error::other("no stdin"))?;
        let stdout = child.stdout.take().ok_or_else(|| std::io::Error::other("no stdout"))?;
        let (send, answers) = channel();
        // A thread reads answers so that the supervisor can wait with a timeout.
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if send.send(line).is_err() {
                    break;
                }
            }
        });
        Ok(Worker { child, stdin, answers })
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Kills this worker and starts another in its place (one that fails to start shows as
    /// an abort on the next input).
    fn restart(&mut self) {
        self.stop();
        if let Ok(fresh) = Worker::start() {
            *self = fresh;
        }
    }

    /// Runs one case; `Ok(peak KiB)` or the finding.
    fn run(&mut self, case: &Case, opts: &Options) -> Result<u64, String> {
        let start = Instant::now();
        write_case(&mut self.stdin, case).map_err(|e| format!("abort: the worker died ({e})"))?;
        let status = format!("/proc/{}/status", self.child.id());
        loop {
            match self.answers.recv_timeout(WATCH) {
                Ok(answer) => return judge(&answer, start.elapsed(), opts),
                Err(RecvTimeoutError::Disconnected) => {
                    let how = self.child.wait().map(|s| s.to_string()).unwrap_or_default();
                    return Err(format!("abort: the worker died ({how})"));
                }
                Err(RecvTimeoutError::Timeout) => {}
            }
            if start.elapsed() > opts.time {
                return Err(format!("time: still running after {:?}", opts.time));
            }
            let rss = proc_status_kib(&status, "VmRSS:");
            if rss > opts.memory_kib {
                return Err(format!("memory: {rss} KiB resident"));
            }
        }
    }
}

fn judge(answer: &str, took: Duration, opts: &Options) -> Result<u64, String> {
    if let Some(msg) = answer.strip_prefix("panic ") {
        return Err(format!("panic: {msg}"));
    }
    let peak = answer.strip_prefix("ok ").and_then(|n| n.parse().ok()).unwrap_or(0);
    if took > opts.time {
        return Err(format!("time: {took:?}"));
    }
    if peak > opts.memory_kib {
        return Err(format!("memory: peak {peak} KiB"));
    }
    Ok(peak)
}

/// Counts for the summary.
#[derive(Default)]
struct Stats {
    inputs: u64,
    bytes: u64,
    findings: BTreeMap<String, u64>,
    slowest: Duration,
    peak_kib: u64,
}

/// Fuzzes for `opts.budget`; exit code 1 when anything was found.
pub fn run(opts: &Options) -> ExitCode {
    let corpus = read_corpus(&opts.corpus);
    let texts: Vec<String> = corpus.iter().map(|(_, t)| t.clone()).collect();
    let mut rng = Rng::with_seed(opts.seed);
    let mut stats = Stats::default();
    let mut worker = match Worker::start() {
        Ok(w) => w,
        Err(e) => {
            eprintln!("cannot start a worker: {e}");
            return ExitCode::from(2);
        }
    };
    let start = Instant::now();
    while start.elapsed() < opts.budget {
        let case = make_case(&mut rng, &corpus, &texts);
        let began = Instant::now();
        stats.inputs += 1;
        stats.bytes += case.iter().map(|(_, t)| t.len() as u64).sum::<u64>();
        match worker.run(&case, opts) {
            Ok(peak) => {
                stats.slowest = stats.slowest.max(began.elapsed());
                stats.peak_kib = stats.peak_kib.max(peak);
            }
            Err(finding) => {
                let kind = finding.split(':').next().unwrap_or("finding").to_owned();
                let n = stats.findings.values().sum::<u64>();
                let dir = save(&opts.findings, n, &kind, &case, &finding);
                eprintln!("finding {n}: {finding} (saved in {})", dir.display());
                *stats.findings.entry(kind).or_default() += 1;
                worker.restart();
            }
        }
    }
    worker.stop();
    report(&stats, start.elapsed(), opts);
    if stats.findings.is_empty() { ExitCode::SUCCESS } else { ExitCode::FAILURE }
}

fn report(stats: &Stats, took: Duration, opts: &Options) {
    let secs = took.as_secs_f64();
    let findings: Vec<String> = stats.findings.iter().map(|(k, n)| format!("{n} {k}")).collect();
    let findings = if findings.is_empty() { "none".to_owned() } else { findings.join(", ") };
    println!(
        "flowcat-fuzz: seed {}, {:.0} s: {} inputs ({:.0}/s, {:.1} MB), findings: {findings}; slowest input {:?}, peak memory {} MiB",
        opts.seed,
        secs,
        stats.inputs,
        stats.inputs as f64 / secs,
        stats.bytes as f64 / 1e6,
        stats.slowest,
        stats.peak_kib / 1024,
    );
}

/// One input: a mutated corpus file (alone or with the whole corpus beside it, so that
/// subflow calls resolve), or a mutated generated catalog.
fn make_case(rng: &mut Rng, corpus: &[(String, String)], texts: &[String]) -> Case {
    let mut case: Case = match rng.u8(0..10) {
        0..=5 if !corpus.is_empty() => vec![corpus[rng.usize(..corpus.len())].clone()],
        6 if !corpus.is_empty() => corpus.to_vec(),
        _ => crate::generate::catalog(rng),
    };
    let i = rng.usize(..case.len());
    if rng.u8(0..10) > 0 {
        case[i].1 = crate::mutate::mutate(rng, &case[i].1, texts);
    }
    case
}

fn read_corpus(dirs: &[PathBuf]) -> Vec<(String, String)> {
    let files = flowcat_engine::catalog::discover(dirs).unwrap_or_default();
    let mut out = Vec::new();
    for f in files {
        if let Ok(text) = std::fs::read_to_string(&f) {
            out.push((f.display().to_string(), text));
        }
    }
    out
}

fn save(root: &Path, n: u64, kind: &str, case: &Case, finding: &str) -> PathBuf {
    let dir = root.join(format!("{n:04}-{kind}"));
    let _ = std::fs::create_dir_all(&dir);
    for (i, (path, text)) in case.iter().enumerate() {
        let name = format!("{i:03}-{}", path.replace(['/', '\\'], "_"));
        let _ = std::fs::write(dir.join(name), text);
    }
    let _ = std::fs::File::create(dir.join("FINDING")).and_then(|mut f| writeln!(f, "{finding}"));
    dir
}

/// The files of a saved finding, by their original paths.
pub fn read_finding(dir: &Path) -> std::io::Result<Case> {
    let mut names: Vec<PathBuf> = std::fs::read_dir(dir)?.filter_map(|e| Some(e.ok()?.path())).collect();
    names.sort();
    let mut case = Vec::new();
    for p in names.into_iter().filter(|p| p.file_name().is_some_and(|n| n != "FINDING")) {
        let name = p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let path = name.split_once('-').map_or(name.clone(), |(_, rest)| rest.to_owned());
        case.push((path, String::from_utf8_lossy(&std::fs::read(&p)?).into_owned()));
    }
    Ok(case)
}
