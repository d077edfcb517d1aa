//! The subcommands: each loads what it needs, prints, and returns the exit code.

use std::io::{IsTerminal as _, Read as _};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context as _, bail};
use flowcat_engine::catalog::{self, Catalog};
use flowcat_engine::diag::Source;
use flowcat_engine::{Diagnostic, Flow, draw};
use flowcat_nodes::REGISTRY;

use crate::ui::{self, ValidateFormat};

/// `-` in place of a flow file reads the flow from stdin; messages call it this.
pub const STDIN: &str = "<stdin>";

/// The catalog folder: `--catalog DIR`, or `flows` by default.
#[derive(Debug)]
pub struct CatalogDir {
    pub path: PathBuf,
    /// Given on the command line: then it must exist.
    pub explicit: bool,
}

impl CatalogDir {
    pub fn new(given: Option<PathBuf>) -> Self {
        match given {
            Some(path) => CatalogDir { path, explicit: true },
            None => CatalogDir { path: PathBuf::from("flows"), explicit: false },
        }
    }
}

/// Loads the catalog folder plus `extra` files and folders (`-`: a flow on stdin).
fn load(catalog: &CatalogDir, extra: &[PathBuf]) -> anyhow::Result<Catalog> {
    let catalog_dir = catalog.path.as_path();
    let mut roots = Vec::new();
    if catalog_dir.is_dir() {
        roots.push(catalog_dir.to_owned());
    } else if catalog.explicit || extra.is_empty() {
        bail!("the catalog folder `{}` does not exist (use `--catalog DIR`)", catalog_dir.display());
    }
    roots.extend(extra.iter().filter(|p| !is_stdin(p)).cloned());
    let files = catalog::discover(&roots)?;
    let mut sources = catalog::read(&files)?;
    if extra.iter().any(|p| is_stdin(p)) {
        let mut text = String::new();
        std::io::stdin().read_to_string(&mut text).context("cannot read a flow from stdin")?;
        sources.push(Arc::new(Source { path: STDIN.to_owned(), text }));
    }
    Ok(Catalog::load(sources, &REGISTRY))
}

fn is_stdin(path: &Path) -> bool {
    path == Path::new("-")
}

/// The catalog, `examples/` when it exists, and `flow` when it is a file: what `run` and
/// `graph` find flows in, by id or by path.
fn load_for(catalog: &CatalogDir, flow: &str) -> anyhow::Result<Catalog> {
    let mut extra: Vec<PathBuf> = Vec::new();
    if Path::new("examples").is_dir() {
        extra.push(PathBuf::from("examples"));
    }
    if flow == "-" || Path::new(flow).is_file() {
        extra.push(PathBuf::from(flow));
    }
    load(catalog, &extra)
}

/// The catalog plus `examples/` when it exists (for commands that run composed automations).
pub fn load_with_examples(catalog: &CatalogDir) -> anyhow::Result<Catalog> {
    let examples = PathBuf::from("examples");
    let extra = if examples.is_dir() { vec![examples] } else { Vec::new() };
    load(catalog, &extra)
}

/// `--color`, `NO_COLOR` and the terminal, as `main` decided.
fn colour() -> bool {
    ui::get().color
}

pub fn validate(
    catalog: &CatalogDir,
    paths: Vec<PathBuf>,
    deny_warnings: bool,
    format: ValidateFormat,
) -> anyhow::Result<ExitCode> {
    let paths = if paths.is_empty() {
        let mut defaults = vec![catalog.path.clone()];
        if Path::new("examples").is_dir() {
            defaults.push(PathBuf::from("examples"));
        }
        defaults
    } else {
        paths
    };
    let on_disk: Vec<PathBuf> = paths.iter().filter(|p| !is_stdin(p)).cloned().collect();
    let requested = catalog::discover(&on_disk)?;
    let catalog = load(catalog, &paths)?;
    let mut wanted: Vec<String> = requested.iter().map(|p| p.display().to_string()).collect();
    if paths.iter().any(|p| is_stdin(p)) {
        wanted.push(STDIN.to_owned());
    }
    let entries: Vec<_> = catalog.entries.iter().filter(|e| wanted.contains(&e.path)).collect();
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

/// Finds a flow by path or id; prints its diagnostics when it does not compile.
fn find<'a>(catalog: &'a Catalog, flow: &str) -> anyhow::Result<Result<&'a Flow, ExitCode>> {
    let by_path = catalog.entries.iter().find(|e| Path::new(&e.path) == Path::new(flow));
    let entry = match by_path {
        Some(e) => e,
        None => match catalog.entry(flow) {
            Some(e) => e,
            None => {
                let ids: Vec<&str> = catalog.flows().map(|f| f.id()).collect();
                let hint = flowcat_engine::diag::did_you_mean(flow, ids.iter().copied())
                    .map(|n| format!("; did you mean `{n}`?"))
                    .unwrap_or_else(|| "; `flowcat list` shows every flow".to_owned());
                bail!("no flow `{flow}` in the catalog{hint}");
            }
        },
    };
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

pub fn graph(catalog_dir: &CatalogDir, flow: &str, format: Drawing, expand: bool) -> anyhow::Result<ExitCode> {
    let catalog = load_for(catalog_dir, flow)?;
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
    Ok(ExitCode::SUCCESS)
}

pub fn list(catalog_dir: &CatalogDir, json: bool) -> anyhow::Result<ExitCode> {
    let catalog = load(catalog_dir, &[])?;
    let mut flows: Vec<&Flow> = catalog.flows().collect();
    flows.sort_by(|a, b| a.id().cmp(b.id()));
    if json {
        let list: Vec<_> = flows.iter().map(|f| flow_json(f)).collect();
        println!("{}", serde_json::to_string_pretty(&list)?);
    } else {
        for f in &flows {
            print!("{}", flow_text(f));
        }
    }
    let broken = catalog.entries.iter().filter(|e| e.flow.is_none()).count();
    if broken > 0 {
        eprintln!("{broken} flow file(s) have errors and are not listed: run `flowcat validate`");
    }
    Ok(ExitCode::SUCCESS)
}

fn flow_text(f: &Flow) -> String {
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
        "{}  {}\n  inputs:       {}\n  outputs:      {}\n  integrations: {}\n  file:         {}\n\n",
        s.id,
        s.name.as_deref().unwrap_or(""),
        or_none(inputs),
        or_none(outputs.iter().map(|o| (*o).to_owned()).collect()),
        or_none(slots),
        s.path,
    )
}

fn flow_json(f: &Flow) -> serde_json::Value {
    let s = &f.signature;
    let inputs: Vec<_> = s
        .inputs
        .iter()
        .map(|i| serde_json::json!({"name": i.name, "type": i.ty, "required": i.required, "default": i.default, "description": i.description}))
        .collect();
    serde_json::json!({
        "id": s.id, "name": s.name, "description": s.description, "file": s.path,
        "inputs": inputs, "outputs": s.outputs, "integrations": s.slots,
    })
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

pub fn run(catalog_dir: &CatalogDir, args: &crate::run::RunArgs) -> anyhow::Result<ExitCode> {
    let catalog = load_for(catalog_dir, &args.flow)?;
    let mut args = args.clone();
    if args.flow == "-" {
        args.flow = STDIN.to_owned();
    }
    let live = crate::live::Live::start(std::io::stderr().is_terminal(), ui::get().quiet);
    let prepared = match crate::run::prepare(catalog, &args, live.clone()) {
        Ok(p) => p,
        Err(e) => {
            live.stop();
            eprintln!("error: {e:#}");
            return Ok(ExitCode::from(2));
        }
    };
    crate::run::execute(prepared, args.json(), &live)
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
