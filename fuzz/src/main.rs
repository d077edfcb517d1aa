//! `flowcat-fuzz`: mutates flow files and runs them through loading, rendering and drawing,
//! on stable Rust. A finding is an input that panics, aborts the process (a stack overflow),
//! takes more than 2 s or more than 512 MiB. See `docs/fuzzing.md`.
//!
//! The supervisor (this process) makes the inputs and watches a worker process (this binary
//! with `--worker`) that runs them: a worker that dies, overruns the time or grows past the
//! memory bound is killed, its input saved under the findings folder, and a new worker
//! started. The worker measures its own peak memory per input; the supervisor also watches
//! its resident memory while an input runs, so that one input cannot exhaust the machine.

mod generate;
mod mutate;
mod supervise;
mod worker;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// What a run is asked to do.
#[derive(Debug)]
pub struct Options {
    /// How long to fuzz.
    pub budget: Duration,
    /// The random seed; a run with the same seed and budget makes the same inputs.
    pub seed: u64,
    /// Folders of flow files to mutate.
    pub corpus: Vec<PathBuf>,
    /// Where findings are written.
    pub findings: PathBuf,
    /// Time allowed per input.
    pub time: Duration,
    /// Memory allowed per input, in KiB.
    pub memory_kib: u64,
}

const USAGE: &str = "usage: flowcat-fuzz [--seconds N] [--seed N] [--corpus DIR]... [--findings DIR]
       flowcat-fuzz --replay DIR   (runs a saved finding in this process)";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--worker") {
        return match worker::serve() {
            Ok(()) => ExitCode::SUCCESS,
            Err(_) => ExitCode::from(3),
        };
    }
    if args.first().map(String::as_str) == Some("--replay") {
        return replay(args.get(1).map(PathBuf::from));
    }
    match options(&args) {
        Ok(opts) => supervise::run(&opts),
        Err(e) => {
            eprintln!("{e}\n{USAGE}");
            ExitCode::from(2)
        }
    }
}

fn options(args: &[String]) -> Result<Options, String> {
    let mut opts = Options {
        budget: Duration::from_secs(60),
        seed: 1,
        corpus: Vec::new(),
        findings: PathBuf::from("target/fuzz-findings"),
        time: Duration::from_secs(2),
        memory_kib: 512 * 1024,
    };
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or(format!("`{flag}` needs a value"));
        let number = |v: &str| v.parse::<u64>().map_err(|_| format!("`{flag}` takes a number, not `{v}`"));
        match flag.as_str() {
            "--seconds" => opts.budget = Duration::from_secs(number(value()?)?),
            "--seed" => opts.seed = number(value()?)?,
            "--corpus" => opts.corpus.push(PathBuf::from(value()?)),
            "--findings" => opts.findings = PathBuf::from(value()?),
            other => return Err(format!("unknown argument `{other}`")),
        }
    }
    if opts.corpus.is_empty() {
        opts.corpus = ["flows", "examples", "tests/broken"].iter().map(PathBuf::from).filter(|p| p.is_dir()).collect();
    }
    Ok(opts)
}

/// Runs one saved finding (a folder of files) in this process, so that a debugger or the
/// abort message shows where it fails.
fn replay(dir: Option<PathBuf>) -> ExitCode {
    let Some(dir) = dir else {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    };
    let case = match supervise::read_finding(&dir) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("cannot read `{}`: {e}", dir.display());
            return ExitCode::from(2);
        }
    };
    let start = std::time::Instant::now();
    worker::exercise(&case);
    eprintln!("ran {} file(s) in {:?}, peak memory {} KiB", case.len(), start.elapsed(), worker::peak_memory_kib());
    ExitCode::SUCCESS
}
