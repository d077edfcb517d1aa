//! The subcommands: each loads what it needs, prints, and returns the exit code.

use std::io::IsTerminal as _;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use flowcat_engine::catalog::{self, Catalog};
use flowcat_engine::{Diagnostic, Flow, draw};
use flowcat_nodes::REGISTRY;

use crate::flows::{Flows, STDIN};
use crate::ui::{self, ValidateFormat};

/// `--color`, `NO_COLOR` and the terminal, as `main` decided.
fn colour() -> bool {
    ui::get().color
}

/// With no paths, every built-in and local flow; with paths, those files, checked against the
/// built-in and local flows so that their subflow calls resolve.
pub fn validate(
    flows: &Flows,
    paths: Vec<PathBuf>,
    deny_warnings: bool,
    format: ValidateFormat,
) -> anyhow::Result<ExitCode> {
    let mut library = flows.library(&paths)?;
    let catalog = library.load(&REGISTRY)?;
    Flows::notes(&library, None);
    let entries: Vec<_> = if paths.is_empty() {
        catalog.entries.iter().collect()
    } else {
        let files: Vec<PathBuf> = paths.iter().filter(|p| !crate::flows::is_stdin(p)).cloned().collect();
        let mut wanted: Vec<String> = catalog::discover(&files)?.iter().map(|p| p.display().to_string()).collect();
        if paths.iter().any(|p| crate::flows::is_stdin(p)) {
            wanted.push(STDIN.to_owned());
        }
        catalog.entries.iter().filter(|e| wanted.contains(&e.path)).collect()
    };
    let diags: Vec<&Diagnostic> = entries.iter().flat_map(|e| e.diagnostics.iter()).collect();
    let errors = diags.iter().filter(|d| d.is_error()).count();
    let warnings = diags.len() - errors;
    match format {
        ValidateFormat::Json => {
            let list: Vec<_> = diags.iter().map(|d| d.to_json()).collect();
            let report = serde_json::json!({ "flows": entries.len(), "errors": errors, "warnings": warnings, "diagnostics": list });
            println!("{}", serde_json::to_string_pretty(&report)?);
        }
        ValidateFormat::Github => {
            for d in &diags {
                println!("{}", crate::github::annotation(d));
            }
        }
        ValidateFormat::Human => {
            let colour = colour();
            for d in &diags {
                eprintln!("{}", d.render(colour));
            }
            if !ui::get().quiet {
                eprintln!("{}", summary(entries.len(), errors, warnings));
            }
        }
    }
    let failed = errors > 0 || (deny_warnings && warnings > 0);
    Ok(if failed { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}

/// `flowcat validate --watch`: checks, then checks again each time the flow files change (a
/// file saved, added or removed), until Ctrl-C. Polls the files' sizes and modification times
/// every 300 ms: no watcher dependency, and it works the same on every file system.
pub fn watch(
    flows: &Flows,
    paths: Vec<PathBuf>,
    deny_warnings: bool,
    format: ValidateFormat,
) -> anyhow::Result<ExitCode> {
    if paths.iter().any(|p| crate::flows::is_stdin(p)) {
        anyhow::bail!("`--watch` watches files: give flow files or folders, not `-`");
    }
    let mut roots: Vec<PathBuf> = flows.local()?.into_iter().collect();
    roots.extend(paths.iter().cloned());
    if roots.is_empty() {
        anyhow::bail!("nothing to watch: no local flows folder here; give flow files or folders");
    }
    let mut seen = None;
    loop {
        let now = fingerprint(&roots);
        if seen.as_ref() != Some(&now) {
            if seen.is_some() {
                eprintln!("--- changed: checked again at {}", clock());
            }
            // A path that went away or a folder that cannot be read is reported, and watched on.
            if let Err(e) = validate(flows, paths.clone(), deny_warnings, format) {
                eprintln!("error: {e:#}");
            }
            seen = Some(now);
        }
        std::thread::sleep(std::time::Duration::from_millis(300));
    }
}

/// Every flow file under `roots` with its size and modification time (an unreadable root or
/// file counts as a value of its own, so that its return is a change too).
fn fingerprint(roots: &[PathBuf]) -> Vec<(PathBuf, u64, Option<std::time::SystemTime>)> {
    let mut files = Vec::new();
    for root in roots {
        match catalog::discover(std::slice::from_ref(root)) {
            Ok(found) => files.extend(found),
            // Gone or unreadable: the root itself, whose metadata then tells when it is back.
            Err(_) => files.push(root.clone()),
        }
    }
    files.sort();
    files
        .into_iter()
        .map(|f| {
            let meta = std::fs::metadata(&f).ok();
            let (len, modified) = meta.map_or((u64::MAX, None), |m| (m.len(), m.modified().ok()));
            (f, len, modified)
        })
        .collect()
}

/// The time of day, UTC, `HH:MM:SS`.
fn clock() -> String {
    let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    format!("{:02}:{:02}:{:02} UTC", secs / 3600 % 24, secs / 60 % 60, secs % 60)
}

fn summary(flows: usize, errors: usize, warnings: usize) -> String {
    let plural = |n: usize, word: &str| format!("{n} {word}{}", if n == 1 { "" } else { "s" });
    format!("checked {}: {}, {}", plural(flows, "flow"), plural(errors, "error"), plural(warnings, "warning"))
}

/// How `graph` draws.
#[derive(Clone, Copy, Debug)]
pub enum Drawing {
    Dot,
    Mermaid,
    Json,
}

/// The flow named by id or path, with only the subflows it calls compiled; `Err(code)` after
/// printing its diagnostics when it does not compile.
fn find<'a>(catalog: &'a Catalog, flow: &str) -> anyhow::Result<Result<&'a Flow, ExitCode>> {
    let entry = catalog.find(flow)?;
    match &entry.flow {
        Some(f) => Ok(Ok(f)),
        None => {
            let colour = colour();
            for d in &entry.diagnostics {
                eprintln!("{}", d.render(colour));
            }
            eprintln!("`{}` has errors: fix them first (`flowcat validate {}`)", flow, entry.path);
            Ok(Err(ExitCode::FAILURE))
        }
    }
}

/// The library with `flow` added when it is a file, and the catalog of `flow` and its subflows.
pub fn load_for(flows: &Flows, flow: &str) -> anyhow::Result<Catalog> {
    let stdin = crate::flows::is_stdin(std::path::Path::new(flow));
    let extra: Vec<PathBuf> = if stdin || crate::flows::is_file(flow) { vec![PathBuf::from(flow)] } else { Vec::new() };
    let mut library = flows.library_for_run(&extra)?;
    let catalog = library.load_for(if stdin { STDIN } else { flow }, &REGISTRY)?;
    Flows::notes(&library, Some(&catalog));
    Ok(catalog)
}

pub fn graph(flows: &Flows, flow: &str, format: Drawing, expand: bool) -> anyhow::Result<ExitCode> {
    let catalog = load_for(flows, flow)?;
    let flow = if flow == "-" { STDIN } else { flow };
    let found = match find(&catalog, flow)? {
        Ok(f) => f,
        Err(code) => return Ok(code),
    };
    let expand = expand.then_some(&catalog);
    let text = match format {
        Drawing::Dot => draw::dot(found, expand),
        Drawing::Mermaid => draw::mermaid(found, expand),
        Drawing::Json => serde_json::to_string_pretty(&draw::json(found, expand))? + "\n",
    };
    print!("{text}");
    if let Some(e) = expand.map(|c| draw::expansion(found, Some(c))).filter(|e| e.collapsed) {
        let limit = flowcat_engine::limits::DRAWING_ITEMS;
        eprintln!(
            "note: subflows are expanded {} level(s) deep; deeper ones are drawn as one box, because the \
             drawing would exceed {} {} (limit `{}`)",
            e.depth,
            flowcat_engine::limits::group(limit.value),
            limit.what,
            limit.name
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// `graph FLOW --run ID`: the flow drawn with what run `ID` of the journal did at each node.
pub fn graph_run(
    flows: &Flows,
    flow: &str,
    format: Drawing,
    expand: bool,
    id: &str,
    state_dir: Option<PathBuf>,
) -> anyhow::Result<ExitCode> {
    if matches!(format, Drawing::Json) {
        anyhow::bail!(
            "`--run` draws in `dot` or `mermaid`; for the run as JSON: `flowcat runs show {id} --format json`"
        );
    }
    let run = crate::runs::stored(id, state_dir)?;
    let catalog = load_for(flows, flow)?;
    let found = match find(&catalog, if flow == "-" { STDIN } else { flow })? {
        Ok(f) => f,
        Err(code) => return Ok(code),
    };
    let ran = &run.summary.info.flow;
    if ran != found.id() {
        anyhow::bail!("run `{id}` is a run of `{ran}`, not of `{}`: `flowcat graph {ran} --run {id}`", found.id());
    }
    print!("{}", draw_run(found, &catalog, expand, &run, format));
    Ok(ExitCode::SUCCESS)
}

/// A journaled run drawn on its flow's graph: the final record's marks, or for a run that has
/// not finished, what its journal holds.
pub fn draw_run(
    flow: &Flow,
    catalog: &Catalog,
    expand: bool,
    run: &flowcat_engine::journal::StoredRun,
    format: Drawing,
) -> String {
    let marks = match &run.record {
        Some(record) => draw::marks(record),
        None => draw::marks_of_past(&run.past),
    };
    let expand = expand.then_some(catalog);
    match format {
        Drawing::Mermaid => draw::mermaid_run(flow, expand, Some(&marks)),
        _ => draw::dot_run(flow, expand, Some(&marks)),
    }
}

pub fn list(flows: &Flows, json: bool) -> anyhow::Result<ExitCode> {
    let mut library = flows.library(&[])?;
    let catalog = library.load(&REGISTRY)?;
    Flows::notes(&library, None);
    let mut flows: Vec<&Flow> = catalog.flows().collect();
    flows.sort_by(|a, b| a.id().cmp(b.id()));
    let permissions = catalog.permissions();
    let of = |f: &Flow| permissions.get(f.id()).map_or(&[][..], Vec::as_slice);
    if json {
        let list: Vec<_> = flows.iter().map(|f| flow_json(f, of(f))).collect();
        println!("{}", serde_json::to_string_pretty(&list)?);
    } else {
        for f in &flows {
            print!("{}", flow_text(f, of(f)));
        }
    }
    let broken = catalog.entries.iter().filter(|e| e.flow.is_none()).count();
    if broken > 0 {
        eprintln!("{broken} flow file(s) have errors and are not listed: run `flowcat validate`");
    }
    Ok(ExitCode::SUCCESS)
}

fn flow_text(f: &Flow, permissions: &[String]) -> String {
    let s = &f.signature;
    let inputs: Vec<String> =
        s.inputs.iter().map(|i| format!("{}: {}{}", i.name, i.ty.name(), if i.required { "" } else { "?" })).collect();
    let outputs: Vec<&str> = s.outputs.iter().map(|o| o.name.as_str()).collect();
    let slots: Vec<String> = s
        .slots
        .iter()
        .map(|s| format!("{} ({}{})", s.name, s.kind, if s.required { "" } else { ", optional" }))
        .collect();
    let or_none = |v: Vec<String>| if v.is_empty() { "-".to_owned() } else { v.join(", ") };
    format!(
        "{}  {}\n  inputs:       {}\n  outputs:      {}\n  integrations: {}\n  permissions:  {}\n  file:         {}\n\n",
        s.id,
        s.name.as_deref().unwrap_or(""),
        or_none(inputs),
        or_none(outputs.iter().map(|o| (*o).to_owned()).collect()),
        or_none(slots),
        or_none(permissions.to_vec()),
        s.path,
    )
}

/// A flow's signature, with the permissions its calls need (its subflows' included).
fn flow_json(f: &Flow, permissions: &[String]) -> serde_json::Value {
    let mut json = f.signature.to_json();
    if let Some(object) = json.as_object_mut() {
        object.insert("permissions".to_owned(), permissions.into());
    }
    json
}

pub fn schema() -> anyhow::Result<ExitCode> {
    let schema = flowcat_engine::schema::schema(&REGISTRY);
    println!("{}", serde_json::to_string_pretty(&schema).context("rendering the schema")?);
    Ok(ExitCode::SUCCESS)
}

pub fn sim(args: flowcat_sim::cli::SimArgs) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(flowcat_sim::cli::run(args))?;
    Ok(ExitCode::SUCCESS)
}

pub fn run(flows: &Flows, args: &crate::run::RunArgs, state_dir: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    if args.plan.is_some() {
        return crate::plan::apply(flows, args, state_dir);
    }
    if args.each.is_some() {
        return crate::each::run(flows, args, state_dir);
    }
    let ui = ui::get();
    let settings =
        crate::live::Settings { terminal: std::io::stderr().is_terminal(), quiet: ui.quiet, verbose: ui.verbose };
    let live = crate::live::Live::start(settings);
    let prepared = match crate::run::prepare(flows, args, state_dir, live.clone()) {
        Ok(p) => p,
        Err(e) => {
            live.stop();
            eprintln!("error: {e:#}");
            return Ok(ExitCode::from(2));
        }
    };
    crate::run::execute(prepared, args, &live)
}

pub fn resume(flows: &Flows, args: &crate::run::ResumeArgs, state_dir: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    let ui = ui::get();
    let settings =
        crate::live::Settings { terminal: std::io::stderr().is_terminal(), quiet: ui.quiet, verbose: ui.verbose };
    let live = crate::live::Live::start(settings);
    match crate::run::resume(flows, args, state_dir, live.clone()) {
        Ok(code) => Ok(code),
        Err(e) => {
            live.stop();
            eprintln!("error: {e:#}");
            Ok(ExitCode::from(2))
        }
    }
}

pub fn check(path: Option<PathBuf>, name: Option<&str>, json: bool) -> anyhow::Result<ExitCode> {
    let path = path.unwrap_or_else(flowcat_nodes::integrations::default_path);
    let file = crate::run::load_integrations(&path)?;
    let chosen: Vec<_> = match name {
        Some(n) => vec![file.get(n).map_err(|e| anyhow::anyhow!(e.messages().join("\n")))?],
        None => file.list.iter().collect(),
    };
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let clients = flowcat_nodes::http::Clients::new();
    let mut ok = true;
    let mut reports = Vec::new();
    for integration in chosen {
        let report = runtime.block_on(flowcat_nodes::integrations::check::check(&clients, integration));
        ok &= report.ok;
        if json {
            let mut value = serde_json::to_value(&report)?;
            value["name"] = serde_json::Value::from(integration.name.as_str());
            reports.push(value);
            continue;
        }
        let mark = if report.skipped {
            "-"
        } else if report.ok {
            "ok"
        } else {
            "FAILED"
        };
        println!("{mark} {} ({}): {}", integration.name, report.kind, report.message);
        if let Some(fix) = &report.fix {
            println!("   fix: {fix}");
        }
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&reports)?);
    }
    Ok(if ok { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}
