//! `flowcat run`: check the inputs and the integrations, run the flow, show its progress, and
//! print its outputs or its run record.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context as _, anyhow, bail};
use flowcat_engine::run::{Options, RunRecord, RunStatus};
use flowcat_nodes::hall::{Call, Checked, Hall};
use flowcat_nodes::integrations;
use serde_json::{Map, Value};

use crate::flows::Flows;
use crate::live::{Live, Target};

/// The flags of `flowcat run`.
#[derive(Debug, Clone, clap::Args)]
pub struct RunArgs {
    /// A flow id from the catalog, or the path of a flow file; `-` reads it from stdin.
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
pub fn prepare(flows: &Flows, args: &RunArgs, observer: Arc<Live>) -> anyhow::Result<Prepared> {
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
    let mut hall = Hall::new(Arc::new(catalog), options, observer.clone());
    // A flow without slots runs without an integrations file.
    if !hall.flow(&flow)?.signature.slots.is_empty() {
        let path = args.integrations.clone().unwrap_or_else(integrations::default_path);
        hall = hall.with_integrations(load_integrations(&path)?);
    }
    let request = hall.prepare(Call { flow, inputs, vars, binds })?;
    observer.header(request.flow(), &targets(request.bindings()));
    Ok(Prepared { hall, request })
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

fn read_inputs(path: &Path) -> anyhow::Result<Map<String, Value>> {
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

/// Runs a prepared flow on a fresh runtime and reports; the exit code says how it went.
pub fn execute(prepared: Prepared, json: bool, live: &Live) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let record = runtime.block_on(prepared.hall.run_checked(prepared.request));
    live.stop();
    let record = match record {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(ExitCode::from(2));
        }
    };
    report(&record, json)?;
    if !json {
        summarise(&record);
    }
    Ok(if record.status == RunStatus::Succeeded { ExitCode::SUCCESS } else { ExitCode::FAILURE })
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
        Some(f) => {
            println!("flow `{}` failed at node `{}` [{}]: {}", record.flow, f.node, f.code, f.message);
        }
    }
    Ok(())
}
