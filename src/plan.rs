//! `flowcat plan`: the reads of a flow sent for real, its writes shown and not sent; and
//! `flowcat run --plan FILE`, which runs a reviewed plan only if nothing it read has changed.
//!
//! The engine's plan mode (`RunRequest::plan`) does the work: this module turns its record into
//! the plan document (docs/cli.md, "flowcat plan") and compares two of them.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context as _, bail};
use flowcat_engine::Catalog;
use flowcat_engine::kind::Effect;
use flowcat_engine::run::{NodeRecord, NodeStatus, Quiet, RunRecord, RunStatus};
use flowcat_nodes::hall::{Call, Hall};
use serde_json::{Map, Value, json};
use sha2::Digest as _;

use crate::flows::Flows;
use crate::run::RunArgs;

/// The `format` of a plan document; a reader refuses any other.
pub const FORMAT: &str = "flowcat-plan/1";

/// The flags of `flowcat plan`.
#[derive(Debug, Clone, clap::Args)]
pub struct PlanArgs {
    /// A flow id from the catalog, or the path of a flow file.
    pub flow: String,
    /// An input, `name=value`; typed as the flow declares.
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
    /// `human`: reads done and writes not sent, as a list; `json`: the plan document.
    #[arg(long, value_enum, default_value_t = crate::ui::Format::Human)]
    pub format: crate::ui::Format,
    /// Also write the plan document to FILE, for `flowcat run --plan FILE`.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
}

impl PlanArgs {
    /// The same call as `flowcat run` arguments, for the shared setup.
    fn run_args(&self) -> RunArgs {
        RunArgs {
            flow: self.flow.clone(),
            inputs: self.inputs.clone(),
            inputs_file: self.inputs_file.clone(),
            vars: self.vars.clone(),
            integrations: self.integrations.clone(),
            binds: self.binds.clone(),
            format: crate::ui::Format::Human,
            json: false,
            max_parallel: 16,
            key: None,
            if_running: crate::run::IfRunning::Refuse,
            deadline: None,
            no_journal: true,
            each: None,
            each_format: None,
            concurrency: 4,
            out: None,
            plan: None,
        }
    }
}

/// `flowcat plan`: exit 0 when the plan is complete, 1 when a read failed or the flow failed
/// before its writes (the plan shows where), 2 for a call that cannot start.
pub fn plan(flows: &Flows, args: &PlanArgs) -> anyhow::Result<ExitCode> {
    let made = (|| {
        let (hall, call) = crate::run::setup(flows, &args.run_args(), Arc::new(Quiet))?;
        let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
        make(&hall, call, &runtime)
    })();
    let doc = match made {
        Ok(doc) => doc,
        Err(e) => {
            eprintln!("error: {e:#}");
            return Ok(ExitCode::from(2));
        }
    };
    if let Some(out) = &args.out {
        let text = serde_json::to_string_pretty(&doc)? + "\n";
        std::fs::write(out, text).with_context(|| format!("cannot write the plan to `{}`", out.display()))?;
    }
    if args.format == crate::ui::Format::Json {
        println!("{}", serde_json::to_string_pretty(&doc)?);
    } else {
        print!("{}", human(&doc));
        if let Some(out) = &args.out {
            println!("\nsaved to {}; apply it with `flowcat run --plan {}`", out.display(), out.display());
        }
    }
    Ok(ExitCode::from(if doc["status"] == "planned" { 0 } else { 1 }))
}

/// Plans `call` and makes its document.
fn make(hall: &Hall, call: Call, runtime: &tokio::runtime::Runtime) -> anyhow::Result<Value> {
    let vars: Map<String, Value> = call.vars.clone();
    let checked = hall.prepare(call)?;
    let bindings: Map<String, Value> = Hall::bound(&checked).into_iter().map(|(s, n)| (s, Value::from(n))).collect();
    let flow = checked.flow().to_owned();
    let record = runtime.block_on(hall.plan(checked))?;
    let digest = flowcat_nodes::hall::digest(hall.catalog(), &flow);
    Ok(document(hall.catalog(), &record, &digest, vars, bindings))
}

/// The plan document of a plan-mode record (docs/cli.md, "The plan document").
fn document(
    catalog: &Catalog,
    record: &RunRecord,
    digest: &str,
    vars: Map<String, Value>,
    bindings: Map<String, Value>,
) -> Value {
    let mut reads = Vec::new();
    let mut writes = Vec::new();
    let mut later = Vec::new();
    walk(catalog, record, "", &mut |path, effect, n| {
        let detail = n.detail.as_ref().map(|d| d.get()).unwrap_or(Value::Null);
        match (effect, n.status) {
            (Effect::Read, NodeStatus::Succeeded | NodeStatus::Failed) => {
                let result = n.result.as_deref().cloned().unwrap_or(Value::Null);
                let answer = json!({ "status": result["status"], "body": result["body"] });
                let request = detail["attempts"].as_array().and_then(|a| a.last()).map(|a| a["request"].clone());
                reads.push(json!({
                    "node": path,
                    "request": request.unwrap_or(Value::Null),
                    "status": result["status"],
                    "answer_digest": answer_digest(&answer),
                }));
            }
            (Effect::Write | Effect::Idempotent, NodeStatus::Planned) => {
                let mut w = json!({ "node": path, "effect": effect });
                for key in ["plan", "request", "template", "waits_for", "when"] {
                    if !detail[key].is_null() {
                        w[key] = detail[key].clone();
                    }
                }
                writes.push(w);
            }
            (Effect::Write | Effect::Idempotent, NodeStatus::Skipped) => {
                writes.push(json!({ "node": path, "effect": effect, "plan": "skipped", "reason": n.reason }));
            }
            (Effect::Local | Effect::Read | Effect::Composite, NodeStatus::Planned) if detail["plan"] == "waits" => {
                later.push(json!({ "node": path, "waits_for": detail["waits_for"] }));
            }
            _ => {}
        }
    });
    let status = if record.status == RunStatus::Succeeded { "planned" } else { "failed" };
    let mut doc = json!({
        "format": FORMAT,
        "flow": record.flow,
        "flow_digest": digest,
        "created_at": record.started_at,
        "inputs": record.inputs,
        "vars": vars,
        "bindings": bindings,
        "status": status,
        "reads": reads,
        "writes": writes,
        "later": later,
    });
    if let Some(e) = &record.error {
        doc["error"] = json!({ "node": e.node, "code": e.code, "message": e.message });
    }
    doc
}

/// Every node of a record, subflows and list items in place, with its path and effect.
fn walk(catalog: &Catalog, record: &RunRecord, prefix: &str, f: &mut dyn FnMut(&str, Effect, &NodeRecord)) {
    let flow = catalog.get(&record.flow);
    for n in &record.nodes {
        let path = format!("{prefix}{}", n.id);
        let effect = flow
            .and_then(|fl| fl.plan.nodes.iter().find(|p| p.id == n.id))
            .map_or(Effect::Local, |p| p.compiled.exec.effect());
        f(&path, effect, n);
        if let Some(sub) = &n.subflow {
            walk(catalog, sub, &format!("{path}/"), f);
        }
        for item in &n.items {
            walk(catalog, &item.record, &format!("{path}[{}]/", item.index), f);
        }
    }
}

/// `sha256:` and the hex digest of the answer's canonical JSON (object keys sorted, no spaces).
fn answer_digest(answer: &Value) -> String {
    // serde_json's maps are sorted by key (no `preserve_order`): its text is canonical.
    let text = serde_json::to_string(answer).unwrap_or_default();
    let hash = sha2::Sha256::digest(text.as_bytes());
    let hex: String = hash.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

/// The plan as a list for a person.
fn human(doc: &Value) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let _ = writeln!(out, "plan of {} — nothing that changes state was sent", doc["flow"].as_str().unwrap_or("?"));
    let list = |key: &str| doc[key].as_array().cloned().unwrap_or_default();
    let reads = list("reads");
    let _ = writeln!(out, "\nreads (sent):{}", if reads.is_empty() { " none" } else { "" });
    for r in &reads {
        let req = &r["request"];
        let _ = writeln!(
            out,
            "  {}  {} {} → {}",
            text(&r["node"]),
            text(&req["method"]),
            text(&req["url"]),
            text(&r["status"])
        );
    }
    let writes = list("writes");
    let _ = writeln!(out, "\nwrites (not sent), in order:{}", if writes.is_empty() { " none" } else { "" });
    let mut k = 0;
    for w in &writes {
        let node = text(&w["node"]);
        if w["plan"] != "skipped" {
            k += 1;
        }
        match w["plan"].as_str() {
            Some("send") => {
                let req = &w["request"];
                let _ = writeln!(out, "  {}. {node}: would send {} {}", k, text(&req["method"]), text(&req["url"]));
                if !req["body"].is_null() {
                    let _ = writeln!(out, "       body: {}", req["body"]);
                }
                if let Some(h) = req["headers"].as_object() {
                    let h: Vec<String> = h.iter().map(|(k, v)| format!("{k}: {}", text(v))).collect();
                    let _ = writeln!(out, "       headers: {}", h.join(", "));
                }
            }
            Some("template") => {
                let t = &w["template"];
                let waits: Vec<String> = w["waits_for"].as_array().into_iter().flatten().map(text).collect();
                let _ = writeln!(out, "  {}. {node}: waits for the result of {}", k, waits.join(", "));
                let _ = writeln!(out, "       template: {} {}", text(&t["method"]), text(&t["path"]));
                for part in ["query", "body"] {
                    if !t[part].is_null() {
                        let _ = writeln!(out, "       {part}: {}", t[part]);
                    }
                }
                if !w["when"].is_null() {
                    let _ = writeln!(out, "       when: {} (depends on {})", text(&w["when"]), waits.join(", "));
                }
            }
            _ => {
                let _ = writeln!(out, "  -  {node}: skipped ({})", text(&w["reason"]));
            }
        }
    }
    let later = list("later");
    if !later.is_empty() {
        let names: Vec<String> = later.iter().map(|l| text(&l["node"])).collect();
        let _ = writeln!(out, "\nnot run (they wait for the writes' results): {}", names.join(", "));
    }
    if let Some(e) = doc.get("error") {
        let _ = writeln!(
            out,
            "\nthe flow failed before its writes, at node `{}` [{}]: {}",
            text(&e["node"]),
            text(&e["code"]),
            text(&e["message"])
        );
    }
    out
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "-".into(),
        other => other.to_string(),
    }
}

/// A saved plan, as `run --plan` needs it.
#[derive(Debug, serde::Deserialize)]
struct Saved {
    format: String,
    flow: String,
    flow_digest: String,
    inputs: Map<String, Value>,
    vars: Map<String, Value>,
    bindings: Map<String, Value>,
    status: String,
    reads: Vec<Value>,
}

fn read_saved(path: &Path) -> anyhow::Result<Saved> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read the plan `{}`", path.display()))?;
    let saved: Saved = serde_json::from_str(&text).with_context(|| {
        format!("`{}` is not a plan document: write one with `flowcat plan FLOW … --out FILE`", path.display())
    })?;
    if saved.format != FORMAT {
        bail!("`{}` is a plan of format `{}`; this flowcat reads `{FORMAT}`: plan again", path.display(), saved.format);
    }
    if saved.status != "planned" {
        bail!("`{}` is a plan that failed before its writes: there is nothing to apply", path.display());
    }
    Ok(saved)
}

/// `flowcat run --plan FILE`: the flow, inputs, vars and bindings of the plan; refused (exit
/// 1, nothing sent but reads) if the flow changed or a read answers differently now; else
/// the run, exactly as `flowcat run`.
pub fn apply(flows: &Flows, args: &RunArgs, state_dir: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    let ui = crate::ui::get();
    let settings = crate::live::Settings {
        terminal: std::io::IsTerminal::is_terminal(&std::io::stderr()),
        quiet: ui.quiet,
        verbose: ui.verbose,
    };
    let live = crate::live::Live::start(settings);
    match checked(flows, args, state_dir, &live) {
        Ok(Ok(prepared)) => {
            let args = RunArgs { flow: prepared.request.flow().to_owned(), ..args.clone() };
            crate::run::execute(prepared, &args, &live)
        }
        Ok(Err(refusal)) => {
            live.stop();
            eprintln!("error: {refusal}");
            Ok(ExitCode::from(1))
        }
        Err(e) => {
            live.stop();
            eprintln!("error: {e:#}");
            Ok(ExitCode::from(2))
        }
    }
}

/// The run of a saved plan, prepared once the plan is found still true; `Ok(Err(why))` when
/// it is not.
fn checked(
    flows: &Flows,
    args: &RunArgs,
    state_dir: Option<PathBuf>,
    live: &Arc<crate::live::Live>,
) -> anyhow::Result<Result<crate::run::Prepared, String>> {
    let path = args.plan.as_deref().context("no plan")?;
    let saved = read_saved(path)?;
    let replan =
        format!("re-plan with `flowcat plan {} … --out {}`, review it, and apply that", saved.flow, path.display());
    if !args.flow.is_empty() && args.flow != saved.flow {
        bail!(
            "the plan `{}` is for flow `{}`, not `{}`: leave the flow out (`flowcat run --plan {}`) or plan `{}`",
            path.display(),
            saved.flow,
            args.flow,
            path.display(),
            args.flow
        );
    }
    let plain = RunArgs {
        flow: saved.flow.clone(),
        inputs: Vec::new(),
        inputs_file: None,
        vars: Vec::new(),
        binds: Vec::new(),
        ..args.clone()
    };
    // The re-plan is quiet; the run shows its progress.
    let (hall, _) = crate::run::setup(flows, &plain, Arc::new(Quiet))?;
    let binds = saved.bindings.iter().map(|(s, n)| (s.clone(), n.as_str().unwrap_or_default().to_owned())).collect();
    let call = Call { flow: saved.flow.clone(), inputs: saved.inputs.clone(), vars: saved.vars.clone(), binds };
    // Inputs, vars and bindings given besides the plan must be the plan's.
    if !(args.inputs.is_empty() && args.inputs_file.is_none() && args.vars.is_empty() && args.binds.is_empty()) {
        let given_args = RunArgs { flow: saved.flow.clone(), ..args.clone() };
        let (_, given) = crate::run::setup(flows, &given_args, Arc::new(Quiet))?;
        // Typed as the flow declares, the plan's inputs filling in the ones not given.
        let mut all = call.clone();
        all.inputs.extend(given.inputs.clone());
        let typed = hall.check(&hall.prepare(all)?)?;
        for k in given.inputs.keys() {
            if typed.get(k) != saved.inputs.get(k) {
                bail!(
                    "input `{k}` differs from the plan's ({} there): `run --plan` takes the inputs from the plan; leave them out or {replan}",
                    saved.inputs.get(k).map_or("absent".into(), Value::to_string)
                );
            }
        }
        for (k, v) in &given.vars {
            if saved.vars.get(k) != Some(v) {
                bail!("var `{k}` differs from the plan's: leave `--var` out or {replan}");
            }
        }
        for (slot, name) in &given.binds {
            if saved.bindings.get(slot).and_then(Value::as_str) != Some(name.as_str()) {
                bail!("slot `{slot}` is bound differently in the plan: leave `--bind` out or {replan}");
            }
        }
    }
    let digest = flowcat_nodes::hall::digest(hall.catalog(), &saved.flow);
    if digest != saved.flow_digest {
        return Ok(Err(format!(
            "flow `{}` (or a flow it calls) changed since the plan was made: nothing was sent; {replan}",
            saved.flow
        )));
    }
    // The reads again, in plan mode: nothing that changes state is sent.
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let now = make(&hall, call.clone(), &runtime)?;
    drop(runtime);
    if let Some(why) = compare(&saved.reads, now["reads"].as_array().map(Vec::as_slice).unwrap_or_default()) {
        return Ok(Err(format!(
            "{why}: the account changed since the plan was reviewed; nothing was written. {replan}"
        )));
    }
    let (mut hall, _) = crate::run::setup(flows, &plain, live.clone())?;
    let request = hall.prepare(call)?;
    if !args.no_journal {
        hall = hall.with_store(crate::run::open_journal(state_dir)?);
    }
    live.header(request.flow(), &crate::run::targets(request.bindings()));
    Ok(Ok(crate::run::Prepared { hall, request }))
}

/// The first difference between the reads of a plan and of its re-plan, said for a person.
fn compare(then: &[Value], now: &[Value]) -> Option<String> {
    for old in then {
        let node = text(&old["node"]);
        let Some(new) = now.iter().find(|n| n["node"] == old["node"]) else {
            return Some(format!(
                "read `{node}` of the plan is not made now (an earlier answer changed the flow's path)"
            ));
        };
        let req = &old["request"];
        let what = format!("read `{node}` ({} {})", text(&req["method"]), text(&req["url"]));
        if new["request"]["url"] != old["request"]["url"] {
            return Some(format!("{what} is now sent as {}", text(&new["request"]["url"])));
        }
        if new["answer_digest"] != old["answer_digest"] {
            let status = if new["status"] == old["status"] {
                format!("status {} both times, a different body", text(&old["status"]))
            } else {
                format!("status {} then, {} now", text(&old["status"]), text(&new["status"]))
            };
            return Some(format!("{what} answers differently from the plan ({status})"));
        }
    }
    now.iter()
        .find(|n| !then.iter().any(|o| o["node"] == n["node"]))
        .map(|n| format!("read `{}` is made now and was not in the plan", text(&n["node"])))
}
