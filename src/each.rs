//! `flowcat run FLOW --each FILE`: one run per row, `--concurrency` rows at once in one process
//! sharing one front hall (so one rate limiter per integration and one connection pool).
//!
//! Rows are streamed (`each/rows.rs`): a reader thread fills a channel of `concurrency` rows,
//! and at most `concurrency` runs are in flight, so memory does not grow with the file. Each row
//! is checked (inputs typed, required ones present) before anything is journaled or sent; a bad
//! one is reported with its line and skipped. Each row's run has a key, the flow's `key:` or
//! `each:<hash of its typed inputs>`, so that the same file again skips the rows done; a key
//! whose run failed is retried under `KEY#2`, `KEY#3`…, since a key is one run forever.

mod report;
mod rows;

use std::io::IsTerminal as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use flowcat_engine::run::{Quiet, RunRecord, RunStatus, StopLevel, stop_signal};
use flowcat_nodes::hall::{Call, Checked, Durably, Hall, Ran};
use serde_json::{Map, Value};
use sha2::Digest as _;
use tokio::sync::{mpsc, watch};

pub use report::Status;
use report::{Out, RowResult, Tally};
pub use rows::RowFormat;

use crate::flows::Flows;
use crate::run::RunArgs;

/// How many runs one row may have under one base key (`KEY`, `KEY#2`, …): each re-run of the
/// file after a failure adds one.
const MAX_ATTEMPTS: u32 = 100;
/// How many invalid rows are printed on stderr; `--out` has them all.
const SHOWN_INVALID: u64 = 20;
/// How long the journal holds a row's awaited entry (a write's intent) for the other rows' while
/// the runtime is busy (`flowcat_journal::Pace`): at most this is added before a write is sent,
/// and nothing when the rows wait on the network. Measured: docs/benchmarks.md.
const COMMIT_WINDOW: std::time::Duration = std::time::Duration::from_millis(1);

/// Runs `args.flow` once per row; exit 0 when every row succeeded or was done before, 1 when
/// some failed or were invalid, 2 when nothing could start, 3 when a row needs attention,
/// 130 when Ctrl-C stopped it.
pub fn run(flows: &Flows, args: &RunArgs, state_dir: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    let spec = args.each.clone().unwrap_or_default();
    if spec == "-" && args.flow == "-" {
        anyhow::bail!("the flow and the rows cannot both come on stdin: give one of them as a file");
    }
    let (hall, call) = crate::run::setup(flows, args, Arc::new(Quiet))?;
    let flow = hall.flow(&call.flow)?;
    let flow_id = flow.id().to_owned();
    let inputs: Vec<String> = flow.signature.inputs.iter().map(|i| i.name.clone()).collect();
    // The bindings and the `host` check are the same for every row: refuse them once, and
    // give each row's run these bindings with its own inputs.
    let base = Arc::new(hall.prepare(Call { inputs: Map::new(), ..call.clone() })?);
    let source = rows::open(&spec, args.each_format)?;
    let total = rows::count(&spec, source.format);
    let out = args.out.as_deref().map(Out::create).transpose()?;
    let pace = flowcat_journal::Pace::new(COMMIT_WINDOW);
    let hall = match args.no_journal {
        true => hall,
        false => hall.with_store(crate::store::open_paced(state_dir, Some(pace.clone()))?),
    };
    let bulk = Bulk {
        hall: Arc::new(hall),
        call,
        base,
        journaled: !args.no_journal,
        deadline: args.deadline,
        source: Some(Path::new(&args.flow))
            .filter(|p| args.flow != "-" && p.is_file())
            .and_then(|p| p.canonicalize().ok())
            .map(|p| p.to_string_lossy().into_owned()),
        name: source.name.clone(),
        flow: flow_id,
    };
    // One thread drives every row: a bulk run waits on the network, and a row costs a fraction
    // of a millisecond of CPU, so one core drives far more rows a second than Duo's rate limits
    // let through. Worker threads would only hand rows and wake-ups to each other (a fifth of
    // the CPU of a bulk run, measured: docs/benchmarks.md). The journal writes on its own thread,
    // and commits the rows' intents once this one is idle (or `COMMIT_WINDOW` after they came).
    let (parked, unparked) = (pace.clone(), pace);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .on_thread_park(move || parked.parked())
        .on_thread_unpark(move || unparked.unparked())
        .build()?;
    let ui = crate::ui::get();
    let terminal = std::io::stderr().is_terminal();
    let tally = Arc::new(Tally::default());
    let ended = runtime.block_on(async {
        let (done_tx, done_rx) = tokio::sync::oneshot::channel();
        let shown = (!ui.quiet).then(|| tokio::spawn(report::progress(tally.clone(), total, terminal, done_rx)));
        let ended = bulk.drive(source, inputs, usize::from(args.concurrency), out, &tally).await;
        crate::run::flush_journal(&bulk.hall).await;
        let _ = done_tx.send(());
        if let Some(task) = shown {
            let _ = task.await;
        }
        ended
    });
    // The reader thread may be blocked on stdin after Ctrl-C: do not wait for it.
    runtime.shutdown_background();
    report::summary(&bulk.name, &tally, args.json())?;
    finish(&ended, &tally, bulk.journaled)
}

/// How the loop over the rows ended.
struct Ended {
    stopped: bool,
    /// A file that could not be read on, or `--out` that could not be written.
    fatal: Option<String>,
}

fn finish(ended: &Ended, tally: &Tally, journaled: bool) -> anyhow::Result<ExitCode> {
    let again = if journaled {
        "run the same command again: rows done are skipped, stopped ones resume, failed ones are retried"
    } else {
        "with --no-journal nothing is skipped: the same command again runs every row again"
    };
    if let Some(fatal) = &ended.fatal {
        eprintln!("error: {fatal}");
        if journaled && tally.total() > 0 {
            eprintln!(
                "the rows run are journaled: once that is fixed, run the same command again: rows done are skipped \
                 (listed in `--out` as already done), failed ones are retried"
            );
        }
        return Ok(ExitCode::from(2));
    }
    if ended.stopped {
        eprintln!("stopped: no new row was started and the rows in flight were drained; to continue, {again}");
        return Ok(ExitCode::from(crate::run::EXIT_INTERRUPTED));
    }
    if tally.get(Status::NeedsAttention) > 0 {
        eprintln!(
            "some rows stopped on a write whose outcome is unknown: `flowcat runs list --status needs_attention`"
        );
        return Ok(ExitCode::from(crate::run::EXIT_ATTENTION));
    }
    let failed = tally.get(Status::Failed) + tally.get(Status::Invalid);
    if failed > 0 {
        eprintln!("{failed} rows failed or were invalid; fix them and {again}");
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

/// What every row's run shares.
struct Bulk {
    hall: Arc<Hall>,
    /// The command line's inputs, vars and binds; a row's columns win over its inputs.
    call: Call,
    /// That call prepared (bound and checked) once, without inputs.
    base: Arc<Checked>,
    journaled: bool,
    deadline: Option<std::time::Duration>,
    source: Option<String>,
    name: String,
    /// The flow's id, as its runs are journaled under.
    flow: String,
}

/// A row read and checked, waiting for its turn.
enum Next {
    Run(Job),
    Invalid(RowResult),
}

impl Bulk {
    async fn drive(
        &self,
        source: rows::Source,
        inputs: Vec<String>,
        concurrency: usize,
        mut out: Option<Out>,
        tally: &Tally,
    ) -> Ended {
        // Room for about `concurrency` rows, in batches (`rows::Batches`).
        let (tx, mut items) = mpsc::channel(concurrency.div_ceil(rows::BATCH));
        let mut pending = std::collections::VecDeque::new();
        let reader = std::thread::spawn(move || rows::read(source, &inputs, &tx));
        let (stop_tx, mut stop) = stop_signal();
        let signals = tokio::spawn(crate::run::watch_signals(stop_tx, crate::run::GRACE));
        let mut tasks = tokio::task::JoinSet::new();
        let mut ended = Ended { stopped: false, fatal: None };
        let record = |r: RowResult, out: &mut Option<Out>, ended: &mut Ended| {
            tally.add(r.status);
            if r.status == Status::Invalid && tally.get(Status::Invalid) <= SHOWN_INVALID {
                eprintln!("{}:{}: {}; row skipped", self.name, r.line, r.error.as_deref().unwrap_or_default());
            }
            if let Some(o) = out.as_mut() {
                if let Err(e) = o.write(&r) {
                    let after = "no new row was started after it and the rows in flight were drained";
                    ended.fatal.get_or_insert(format!("{e}; {after}"));
                    *out = None;
                }
            }
        };
        // `--out`'s buffered lines are flushed whenever nothing else is ready (the last branch of
        // each `select!` below): a batch killed loses no row that ended before it last waited.
        let flush = |out: &mut Option<Out>, ended: &mut Ended| {
            if let Some(Err(e)) = out.as_mut().map(Out::flush) {
                let after = "no new row was started after it and the rows in flight were drained";
                ended.fatal.get_or_insert(format!("{e}; {after}"));
                *out = None;
            }
        };
        let dirty = |out: &Option<Out>| out.as_ref().is_some_and(Out::dirty);
        loop {
            while tasks.len() >= concurrency {
                tokio::select! {
                    biased;
                    Some(r) = tasks.join_next() => {
                        if let Ok(r) = r {
                            record(r, &mut out, &mut ended);
                        }
                    }
                    () = std::future::ready(()), if dirty(&out) => flush(&mut out, &mut ended),
                }
            }
            if *stop.borrow() != StopLevel::Go || ended.fatal.is_some() {
                break;
            }
            let next = match pending.pop_front() {
                Some(next) => next,
                None => tokio::select! {
                    biased;
                    _ = stop.changed() => break,
                    Some(Ok(r)) = tasks.join_next(), if !tasks.is_empty() => { record(r, &mut out, &mut ended); continue }
                    batch = items.recv() => match batch {
                        Some(batch) => {
                            self.checked(batch, &mut pending);
                            continue;
                        }
                        None => break,
                    },
                    () = std::future::ready(()), if dirty(&out) => { flush(&mut out, &mut ended); continue }
                },
            };
            match next {
                Next::Run(job) => {
                    let (bulk, stop) = (self.share(), stop.clone());
                    tasks.spawn(async move { bulk.run_row(job, stop).await });
                }
                Next::Invalid(r) => record(r, &mut out, &mut ended),
            }
        }
        ended.stopped = *stop.borrow() != StopLevel::Go;
        while let Some(r) = tasks.join_next().await {
            if let Ok(r) = r {
                record(r, &mut out, &mut ended);
            }
        }
        signals.abort();
        drop(items);
        if !ended.stopped && ended.fatal.is_none() {
            if let Ok(Err(e)) = reader.join() {
                ended.fatal = Some(e);
            }
        }
        if let Some(o) = out {
            if let Err(e) = o.finish() {
                ended.fatal.get_or_insert(format!("{e}; the last rows' results may be missing from it"));
            }
        }
        ended
    }

    fn share(&self) -> Bulk {
        Bulk {
            hall: self.hall.clone(),
            call: Call::default(),
            base: self.base.clone(),
            journaled: self.journaled,
            deadline: self.deadline,
            source: self.source.clone(),
            name: String::new(),
            flow: String::new(),
        }
    }

    /// Checks a batch of rows into `pending`, and tells the store which keys their runs will
    /// begin with, so that it looks them up together (`Store::look_ahead`).
    fn checked(&self, batch: Vec<rows::Item>, pending: &mut std::collections::VecDeque<Next>) {
        let mut keys = Vec::new();
        for item in batch {
            pending.push_back(match item {
                rows::Item::Bad { line, problem } => Next::Invalid(invalid(line, Map::new(), problem)),
                rows::Item::Row { line, inputs } => match self.check(line, inputs) {
                    Ok(job) => {
                        keys.push(job.key.clone());
                        Next::Run(job)
                    }
                    Err(r) => Next::Invalid(r),
                },
            });
        }
        if let (true, Some(store)) = (self.journaled, self.hall.store()) {
            store.look_ahead(&self.flow, &keys);
        }
    }

    /// A row checked as its run will be, before anything is journaled or sent: its call and
    /// its base run key, or the row's result as invalid.
    fn check(&self, line: u64, row: Map<String, Value>) -> Result<Job, RowResult> {
        let mut inputs = self.call.inputs.clone();
        inputs.extend(row.clone());
        let checked = self.base.with_inputs(inputs.clone());
        let typed = self.hall.check(&checked).map_err(|e| invalid(line, row.clone(), e.to_string()))?;
        let key = match self.hall.key(&checked).map_err(|e| invalid(line, row.clone(), e.to_string()))? {
            Some(key) => key,
            None => key_of(&typed),
        };
        Ok(Job { line, row, inputs, key })
    }

    /// Runs a checked row under its key; a key whose run failed before is retried as `KEY#2`…
    async fn run_row(&self, job: Job, stop: watch::Receiver<StopLevel>) -> RowResult {
        let Job { line, row, inputs, key } = job;
        for attempt in 1..=MAX_ATTEMPTS {
            if *stop.borrow() != StopLevel::Go {
                return RowResult { status: Status::Stopped, ..blank(line, row) };
            }
            let checked = self.base.with_inputs(inputs.clone());
            let key = if attempt == 1 { key.clone() } else { format!("{key}#{attempt}") };
            let how = Durably {
                key: self.journaled.then_some(key),
                deadline: self.deadline,
                stop: Some(stop.clone()),
                source: self.source.clone(),
                ..Durably::default()
            };
            match self.hall.run_durably(checked, how).await {
                Err(e) => return RowResult { status: Status::Failed, error: Some(e.to_string()), ..blank(line, row) },
                Ok(Ran::Before(r)) if r.status == RunStatus::Failed => continue,
                Ok(Ran::Before(r)) => return of_record(line, row, r, true),
                Ok(Ran::Now(r)) => return of_record(line, row, r, false),
            }
        }
        let error = format!("the row failed {MAX_ATTEMPTS} times under its run key `{key}`; it is not retried again");
        RowResult { status: Status::Failed, error: Some(error), ..blank(line, row) }
    }
}

/// A checked row.
struct Job {
    line: u64,
    row: Map<String, Value>,
    /// The command line's inputs with the row's.
    inputs: Map<String, Value>,
    key: String,
}

/// A row's run key when its flow has no `key:`: a hash of its typed inputs (defaults filled
/// in), so that the same values in another order or spelling (`10` and `"10"` for a number)
/// are the same row.
fn key_of(typed: &Map<String, Value>) -> String {
    let text = canonical(&Value::Object(typed.clone())).to_string();
    let hash = sha2::Sha256::digest(text.as_bytes());
    let hex: String = hash.iter().take(16).map(|b| format!("{b:02x}")).collect();
    format!("each:{hex}")
}

/// The value with every object's keys sorted.
fn canonical(v: &Value) -> Value {
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            Value::Object(keys.into_iter().map(|k| (k.clone(), canonical(&m[k]))).collect())
        }
        Value::Array(items) => Value::Array(items.iter().map(canonical).collect()),
        other => other.clone(),
    }
}

fn blank(line: u64, inputs: Map<String, Value>) -> RowResult {
    RowResult { line, status: Status::Invalid, run: None, inputs, outputs: Map::new(), error: None }
}

fn invalid(line: u64, inputs: Map<String, Value>, problem: String) -> RowResult {
    RowResult { error: Some(problem.replace('\n', "; ")), ..blank(line, inputs) }
}

fn of_record(line: u64, inputs: Map<String, Value>, record: RunRecord, before: bool) -> RowResult {
    let status = match record.status {
        RunStatus::Succeeded if before => Status::AlreadyDone,
        RunStatus::Succeeded => Status::Succeeded,
        RunStatus::Failed => Status::Failed,
        RunStatus::Interrupted => Status::Stopped,
        RunStatus::NeedsAttention => Status::NeedsAttention,
    };
    let error = record.error.map(|f| format!("node `{}` [{}]: {}", f.node, f.code, f.message));
    RowResult { line, status, run: record.id, inputs, outputs: record.outputs, error }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rows_key_does_not_depend_on_the_order_of_its_inputs() {
        let a: Map<String, Value> = serde_json::from_str(r#"{"a":1,"b":{"y":2,"x":[{"q":1,"p":2}]}}"#).unwrap();
        let b: Map<String, Value> = serde_json::from_str(r#"{"b":{"x":[{"p":2,"q":1}],"y":2},"a":1}"#).unwrap();
        assert_eq!(key_of(&a), key_of(&b));
        let c: Map<String, Value> = serde_json::from_str(r#"{"a":2,"b":{"y":2,"x":[{"q":1,"p":2}]}}"#).unwrap();
        assert_ne!(key_of(&a), key_of(&c));
        assert!(key_of(&a).starts_with("each:") && key_of(&a).len() == 5 + 32);
    }
}
