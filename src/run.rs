//! `flowcat run`: check the inputs and the integrations, run the flow, show its progress, and
//! print its outputs or its run record.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context as _, anyhow, bail};
use std::time::Duration;

use flowcat_engine::journal::IfBusy;
use flowcat_engine::run::{Options, RunRecord, RunStatus, StopLevel, stop_signal};
use flowcat_nodes::hall::{Call, Checked, Durably, Hall, Ran};
use flowcat_nodes::integrations;
use serde_json::{Map, Value};
use tokio::sync::watch;

use crate::flows::Flows;
use crate::live::{Live, Target};

/// The flags of `flowcat run`.
#[derive(Debug, Clone, clap::Args)]
pub struct RunArgs {
    /// A flow id from the catalog, or the path of a flow file; `-` reads it from stdin. Left out
    /// with `--plan`.
    #[arg(required_unless_present = "plan", default_value = "", hide_default_value = true)]
    pub flow: String,
    /// An input, `name=value`; typed as the flow declares (`--input limit=10`).
    #[arg(long = "input", short = 'i', value_name = "NAME=VALUE")]
    pub inputs: Vec<String>,
    /// A JSON object of inputs; `--input` wins over it.
    #[arg(long, value_name = "FILE")]
    pub inputs_file: Option<PathBuf>,
    /// Override a var, `name=value`.
    #[arg(long = "var", value_name = "NAME=VALUE")]
    pub vars: Vec<String>,
    /// The integrations file [default: $FLOWCAT_INTEGRATIONS or ./integrations.yaml].
    #[arg(long, value_name = "FILE")]
    pub integrations: Option<PathBuf>,
    /// Bind a slot to an integration of another name, `slot=name`.
    #[arg(long = "bind", value_name = "SLOT=NAME")]
    pub binds: Vec<String>,
    /// `human`: the outcome and the outputs; `json`: the whole run record.
    #[arg(long, value_enum, default_value_t = crate::ui::Format::Human)]
    pub format: crate::ui::Format,
    /// The same as `--format json`.
    #[arg(long, conflicts_with = "format")]
    pub json: bool,
    /// How many nodes may run at once.
    #[arg(long, default_value_t = 16, value_name = "N")]
    pub max_parallel: usize,
    /// The run key: a second run with the key of a finished run prints its record and sends
    /// nothing; with the key of an unfinished run it resumes it [default: the flow's `key:`].
    #[arg(long, value_name = "KEY")]
    pub key: Option<String>,
    /// When the key's run is running in another process: `wait` for it, or `refuse` at once
    /// (exit 2).
    #[arg(long, value_enum, default_value_t = IfRunning::Wait, value_name = "WHAT")]
    pub if_running: IfRunning,
    /// Bound the whole run, e.g. `90s`, `10m`, `2h` [default: the flow's `deadline:`]; it fails
    /// with code `deadline` when the time is up.
    #[arg(long, value_name = "DURATION", value_parser = parse_deadline)]
    pub deadline: Option<std::time::Duration>,
    /// Do not journal the run: it cannot be resumed, and run keys are not honoured.
    #[arg(long)]
    pub no_journal: bool,
    /// Run the flow once per row of FILE (CSV with a header row, or JSON Lines; `-` reads
    /// stdin), the row's columns as inputs; see docs/cli.md, "Bulk runs".
    #[arg(long, value_name = "FILE", conflicts_with = "key")]
    pub each: Option<String>,
    /// The format of `--each`'s rows [default: by its extension `.csv`, `.jsonl`, `.ndjson`;
    /// for stdin, JSON Lines when the first byte is `{`, else CSV].
    #[arg(long, value_enum, value_name = "FORMAT", requires = "each")]
    pub each_format: Option<crate::each::RowFormat>,
    /// With `--each`: how many rows run at once (1 to 256).
    #[arg(long, value_name = "N", default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub concurrency: u16,
    /// With `--each`: write one result per row (line, inputs, status, run, outputs, error) to
    /// FILE, as JSON Lines or, for a `.csv` name, CSV; in the order the rows finish.
    #[arg(long, value_name = "FILE", requires = "each")]
    pub out: Option<PathBuf>,
    /// Run a plan saved by `flowcat plan … --out FILE`: its flow, inputs, vars and bindings;
    /// refused if the flow or anything the plan read has changed since (docs/cli.md).
    #[arg(long, value_name = "FILE", conflicts_with_all = ["each", "key"])]
    pub plan: Option<PathBuf>,
}

/// `--if-running`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum IfRunning {
    Wait,
    Refuse,
}

fn parse_deadline(s: &str) -> Result<std::time::Duration, String> {
    match flowcat_engine::shape::parse_duration(s) {
        Some(d) if !d.is_zero() => Ok(d),
        _ => Err(format!("`{s}` is not a duration: write a number and a unit, e.g. `90s`, `10m`, `2h`")),
    }
}

impl RunArgs {
    /// Whether to print the run record as JSON (`--format json` or `--json`).
    pub fn json(&self) -> bool {
        self.json || self.format == crate::ui::Format::Json
    }
}

/// Splits `name=value`.
pub fn pair(s: &str, flag: &str) -> anyhow::Result<(String, String)> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_owned(), v.to_owned())),
        _ => bail!("`{flag} {s}` must look like `{flag} name=value`"),
    }
}

/// Everything a run needs, checked: exit code 2 for any problem here, before anything is sent.
pub struct Prepared {
    pub hall: Hall,
    pub request: Checked,
}

/// Loads the flow and its subflows, reads the arguments and, when the flow has slots, the
/// integrations file; the front hall does the rest.
pub fn prepare(
    flows: &Flows,
    args: &RunArgs,
    state_dir: Option<PathBuf>,
    observer: Arc<Live>,
) -> anyhow::Result<Prepared> {
    let (mut hall, call) = setup(flows, args, observer.clone())?;
    let request = hall.prepare(call)?;
    if !args.no_journal {
        hall = hall.with_store(open_journal(state_dir)?);
    }
    observer.header(request.flow(), &targets(request.bindings()));
    Ok(Prepared { hall, request })
}

/// The hall (the flow's catalog, the integrations file when the flow has slots; no journal
/// yet) and the call the arguments make; `run --each` makes one call per row from it.
pub fn setup(
    flows: &Flows,
    args: &RunArgs,
    observer: Arc<dyn flowcat_engine::run::Observer>,
) -> anyhow::Result<(Hall, Call)> {
    let catalog = crate::commands::load_for(flows, &args.flow)?;
    // `-`: the flow came on stdin, under this name.
    let flow = if args.flow == "-" { crate::flows::STDIN.to_owned() } else { args.flow.clone() };
    let mut inputs = match &args.inputs_file {
        Some(path) => read_inputs(path)?,
        None => Map::new(),
    };
    let mut given = Map::new();
    for s in &args.inputs {
        let (k, v) = pair(s, "--input")?;
        if given.insert(k.clone(), Value::String(v)).is_some() {
            bail!("input `{k}` is given twice (`--input {k}=…`): give it once");
        }
    }
    inputs.extend(given);
    let mut vars = Map::new();
    for s in &args.vars {
        let (k, v) = pair(s, "--var")?;
        if vars.insert(k.clone(), Value::String(v)).is_some() {
            bail!("var `{k}` is given twice (`--var {k}=…`): give it once");
        }
    }
    let binds: Vec<(String, String)> = args.binds.iter().map(|b| pair(b, "--bind")).collect::<Result<_, _>>()?;
    if let Some((_, (slot, _))) =
        binds.iter().enumerate().find(|(i, (slot, _))| binds[..*i].iter().any(|b| &b.0 == slot))
    {
        bail!("slot `{slot}` is bound twice (`--bind {slot}=…`): give it once");
    }
    let options = Options { max_parallel: args.max_parallel.max(1), ..Options::default() };
    let mut hall = Hall::new(Arc::new(catalog), options, observer);
    // A flow without slots runs without an integrations file.
    if !hall.flow(&flow)?.signature.slots.is_empty() {
        let path = args.integrations.clone().unwrap_or_else(integrations::default_path);
        hall = hall.with_integrations(load_integrations(&path)?);
    }
    Ok((hall, Call { flow, inputs, vars, binds }))
}

/// The run journal in the state folder, created if missing; checked (version, integrity,
/// room, writable) before anything is sent.
pub fn open_journal(state_dir: Option<PathBuf>) -> anyhow::Result<Arc<dyn flowcat_engine::journal::Store>> {
    crate::store::open(state_dir)
}

/// The flags of `flowcat resume`.
#[derive(Debug, Clone, clap::Args)]
pub struct ResumeArgs {
    /// The run's id, as `flowcat run` printed it or `flowcat runs list` shows it.
    pub id: String,
    /// The integrations file [default: $FLOWCAT_INTEGRATIONS or ./integrations.yaml]; its
    /// integrations must talk to the hosts the run started with.
    #[arg(long, value_name = "FILE")]
    pub integrations: Option<PathBuf>,
    /// `human`: the outcome and the outputs; `json`: the whole run record.
    #[arg(long, value_enum, default_value_t = crate::ui::Format::Human)]
    pub format: crate::ui::Format,
    /// The same as `--format json`.
    #[arg(long, conflicts_with = "format")]
    pub json: bool,
    /// A write in doubt (its node's path, e.g. `phone/create`) that you checked did not
    /// happen: send it again rather than stop for attention. Repeat for several.
    #[arg(long, value_name = "NODE")]
    pub resend: Vec<String>,
}

/// `flowcat resume ID`: the run's flows and integrations, checked as they were, then the run
/// goes on from its journal.
pub fn resume(
    flows: &Flows,
    args: &ResumeArgs,
    state_dir: Option<PathBuf>,
    live: Arc<Live>,
) -> anyhow::Result<ExitCode> {
    let place = crate::store::place(state_dir.clone());
    let Some(store) = crate::store::existing(state_dir)? else {
        bail!(
            "no run journal at `{place}`: nothing to resume (give `--state-dir` if the run was journaled elsewhere, or \
             `--store` if it was kept in a shared database)"
        );
    };
    let Some(run) = store.show(&args.id)? else {
        bail!("no run `{}` in the journal `{place}`; `flowcat runs list` shows the runs", args.id);
    };
    let flow = run.summary.info.flow.clone();
    // A run of a flow named by its file reads it there again (its digest says if it changed).
    let catalog = match &run.summary.info.source {
        Some(path) if Path::new(path).is_file() => crate::commands::load_for(flows, path)?,
        Some(path) => {
            bail!("run `{}` ran the flow file `{path}`, which is gone: restore it to resume the run", args.id)
        }
        None => crate::commands::load_for(flows, &flow)?,
    };
    let options = Options::default();
    let mut hall = Hall::new(Arc::new(catalog), options, live.clone());
    if !hall.flow(&flow)?.signature.slots.is_empty() {
        let path = args.integrations.clone().unwrap_or_else(integrations::default_path);
        hall = hall.with_integrations(load_integrations(&path)?);
    }
    let hall = hall.with_store(store);
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let ran = runtime.block_on(async {
        let (tx, rx) = stop_signal();
        let signals = tokio::spawn(watch_signals(tx, GRACE));
        let ran = hall.resume(&args.id, Some(rx), &args.resend).await;
        signals.abort();
        flush_journal(&hall).await;
        ran
    });
    live.stop();
    finish(ran, args.json || args.format == crate::ui::Format::Json)
}

/// What each bound slot talks to, in slot order.
pub fn targets(bindings: &std::collections::HashMap<String, Arc<flowcat_engine::run::Binding>>) -> Vec<Target> {
    let mut out: Vec<Target> = bindings
        .iter()
        .filter_map(|(slot, b)| {
            let bound = b.value.downcast_ref::<flowcat_nodes::bind::Bound>()?;
            let i = &bound.integration;
            let simulator = i.loopback_http && integrations::is_loopback(i.host());
            Some(Target { slot: slot.clone(), integration: i.name.clone(), host: i.authority(), simulator })
        })
        .collect();
    out.sort_by(|a, b| a.slot.cmp(&b.slot));
    out
}

pub fn read_inputs(path: &Path) -> anyhow::Result<Map<String, Value>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read `{}`", path.display()))?;
    match serde_json::from_str(&text) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => bail!("`{}` must hold a JSON object of inputs", path.display()),
        Err(e) => bail!("`{}` is not valid JSON: {e}", path.display()),
    }
}

pub fn load_integrations(path: &Path) -> anyhow::Result<integrations::Integrations> {
    if !path.exists() {
        bail!(
            "no integrations file at `{}`: write one (see docs/integrations.md), pass `--integrations FILE`, \
             or try the simulator: `flowcat sim --write-integrations integrations.yaml`",
            path.display()
        );
    }
    let env = |name: &str| std::env::var(name).ok();
    let file = integrations::load(path, &env).map_err(|e| anyhow!(e.messages().join("\n")))?;
    for w in &file.warnings {
        eprintln!("warning: {w}");
    }
    Ok(file)
}

/// How long the requests in flight may take to finish after the first Ctrl-C or SIGTERM.
pub const GRACE: Duration = Duration::from_secs(5);

/// Exit code of a run stopped by Ctrl-C or SIGTERM (as a shell reports SIGINT).
pub const EXIT_INTERRUPTED: u8 = 130;
/// Exit code of a run stopped on a write whose outcome is unknown.
pub const EXIT_ATTENTION: u8 = 3;

/// Runs a prepared flow on a fresh runtime and reports; the exit code says how it went.
pub fn execute(prepared: Prepared, args: &RunArgs, live: &Live) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let how = Durably {
        key: args.key.clone(),
        if_busy: match args.if_running {
            IfRunning::Wait => IfBusy::Wait,
            IfRunning::Refuse => IfBusy::Refuse,
        },
        deadline: args.deadline,
        stop: None,
        // A flow named by its file: a resume reads it from there.
        source: Some(Path::new(&args.flow))
            .filter(|p| args.flow != "-" && p.is_file())
            .and_then(|p| p.canonicalize().ok())
            .map(|p| p.to_string_lossy().into_owned()),
        begun: None,
    };
    let ran = runtime.block_on(async {
        let (tx, rx) = stop_signal();
        let signals = tokio::spawn(watch_signals(tx, GRACE));
        let ran = prepared.hall.run_durably(prepared.request, Durably { stop: Some(rx), ..how }).await;
        signals.abort();
        flush_journal(&prepared.hall).await;
        ran
    });
    live.stop();
    finish(ran, args.json())
}

/// Makes the run's end durable before it is reported (the journal gathers ends with later
/// work); a journal that cannot write it is said, the run's outcome stands.
pub async fn flush_journal(hall: &Hall) {
    if let Some(store) = hall.store() {
        if let Err(e) = store.flush().await {
            eprintln!("warning: the journal could not record how the run ended: {e}");
        }
    }
}

/// Reports how a run ended; the exit code says how it went.
pub fn finish(ran: Result<Ran, flowcat_nodes::hall::Refused>, json: bool) -> anyhow::Result<ExitCode> {
    let ran = match ran {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(ExitCode::from(2));
        }
    };
    if let Ran::Before(record) = &ran {
        let id = record.id.as_deref().unwrap_or("?");
        eprintln!("note: a run with this key finished before (run `{id}`): its record follows; nothing was sent");
    }
    let record = ran.record();
    report(record, json)?;
    if !json {
        summarise(record);
    }
    let resume = |what: &str| match &record.id {
        Some(id) => eprintln!("{what}\nrun `{id}` is journaled; continue it with:\n  flowcat resume {id}"),
        None => eprintln!("{what}\nthe run was not journaled (--no-journal): it cannot be resumed"),
    };
    Ok(match record.status {
        RunStatus::Succeeded => ExitCode::SUCCESS,
        RunStatus::Failed => ExitCode::FAILURE,
        RunStatus::Interrupted => {
            resume("the run was stopped before it finished.");
            ExitCode::from(EXIT_INTERRUPTED)
        }
        RunStatus::NeedsAttention => {
            let id = record.id.as_deref().unwrap_or("ID");
            let paths: Vec<String> =
                in_doubt(record, &mut Vec::new()).into_iter().map(|(p, _)| p.replace(" › ", "/")).collect();
            let resend: Vec<String> = paths.iter().map(|p| format!("--resend {p}")).collect();
            eprintln!(
                "the run stopped on a write whose outcome is unknown: check it first (what to check is above).\n\
                 - it did not happen: send it again with\n    flowcat resume {id} {}\n\
                 - it happened, or you finish by hand: give the run up with\n    flowcat runs abandon {id}",
                resend.join(" ")
            );
            ExitCode::from(EXIT_ATTENTION)
        }
    })
}

/// The first Ctrl-C or SIGTERM drains the run (no new node starts); a second one, or `grace`
/// later, abandons the requests still in flight.
///
/// The handlers are installed when this is called, not when the returned future first runs: a
/// spawned task may run only after the run has started, and a Ctrl-C in between was lost (a
/// process started in the background inherits SIGINT ignored) or killed the process outright.
pub fn watch_signals(tx: watch::Sender<StopLevel>, grace: Duration) -> impl Future<Output = ()> + Send + 'static {
    use tokio::signal::unix::{SignalKind, signal};
    let streams = (signal(SignalKind::interrupt()), signal(SignalKind::terminate()));
    async move {
        let (Ok(mut int), Ok(mut term)) = streams else {
            return;
        };
        tokio::select! {
            _ = int.recv() => {}
            _ = term.recv() => {}
        }
        let _ = tx.send(StopLevel::Drain);
        eprintln!(
            "\nstopping: no new step starts; the requests in flight get {} s to finish (Ctrl-C again to abandon them)",
            grace.as_secs()
        );
        tokio::select! {
            _ = int.recv() => {}
            _ = term.recv() => {}
            () = tokio::time::sleep(grace) => {}
        }
        let _ = tx.send(StopLevel::Abandon);
    }
}

/// What the run wrote, so that nobody has to read the record to know what changed.
fn summarise(record: &RunRecord) {
    let changes = crate::live::changes(record);
    if changes.is_empty() {
        println!("No write requests were sent.");
        return;
    }
    println!("Write requests:");
    for line in changes {
        println!("  {line}");
    }
}

fn report(record: &RunRecord, json: bool) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(record)?);
        return Ok(());
    }
    let secs = record.ended_at.saturating_sub(record.started_at) as f64 / 1e3;
    match &record.error {
        None => {
            println!("flow `{}` succeeded in {secs:.1} s", record.flow);
            for (k, v) in &record.outputs {
                println!("  {k}: {v}");
            }
        }
        Some(f) => match record.status {
            RunStatus::Interrupted => println!("flow `{}` was stopped: {}", record.flow, f.message),
            RunStatus::NeedsAttention => {
                println!("flow `{}` needs attention at node `{}`: {}", record.flow, f.node, f.message);
                for (path, request) in in_doubt(record, &mut Vec::new()) {
                    println!("  {path}: {}", serde_json::to_string(&request)?);
                }
            }
            _ => println!("flow `{}` failed at node `{}` [{}]: {}", record.flow, f.node, f.code, f.message),
        },
    }
    Ok(())
}

/// The writes of a record whose outcome is unknown, with the (redacted) request of each.
fn in_doubt(record: &RunRecord, path: &mut Vec<String>) -> Vec<(String, Value)> {
    let mut out = Vec::new();
    for node in &record.nodes {
        path.push(node.id.clone());
        if node.status == flowcat_engine::run::NodeStatus::Unknown {
            let request = node.error.as_ref().and_then(|e| e.data.as_ref()).map(|d| d["request"].clone());
            out.push((path.join(" › "), request.unwrap_or_default()));
        }
        if let Some(sub) = &node.subflow {
            out.extend(in_doubt(sub, path));
        }
        // A `for_each` item's nodes, at `<id>[<index>]`.
        for item in &node.items {
            path.pop();
            path.push(format!("{}[{}]", node.id, item.index));
            out.extend(in_doubt(&item.record, path));
        }
        path.pop();
    }
    out
}
