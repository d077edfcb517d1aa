//! `flowcat test [PATH…]`: runs the test cases written beside flows (`*.test.yaml`, docs/testing.md)
//! in the process, with Duo's answers mocked and time on tokio's paused clock, then reports each
//! case and which nodes and switch branches the cases ran.
//!
//! - `case`: the test file format, read with the flow format's YAML parser (diagnostics at
//!   `file:line:col`);
//! - `mock`: the [`flowcat_nodes::http::Transport`] answering from mocks, the in-memory journal
//!   delivering signals;
//! - `report`: the outcome of each case, coverage, and the human, JSON and JUnit reports.
//!
//! Flows run through the front hall like any run (`Hall::run_logged`): real node kinds, real
//! subflows, real signing, retries and rate limiter; only the socket and the clock are not real.

mod case;
mod mock;
mod report;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context as _, bail};
use flowcat_engine::catalog::{Catalog, is_test_file};
use flowcat_engine::diag::{Diagnostic, Diags, Source};
use flowcat_engine::run::{Options, Quiet, RunRecord};
use flowcat_engine::{Flow, yaml::Span};
use flowcat_nodes::REGISTRY;
use flowcat_nodes::hall::{self, Hall, Refused};
use flowcat_nodes::http::{Clients, route};
use flowcat_nodes::integrations::Integrations;
use serde_json::Value;

use crate::flows::Flows;
use case::{Case, Suite, Target};
pub use report::TestFormat;
use report::{CaseResult, Coverage, SuiteResult};

/// Most test files read in one `flowcat test`, and their largest size: a folder of stray files
/// is a usage error, not an unbounded read.
const MAX_FILES: usize = 10_000;
const MAX_FILE_BYTES: u64 = 4 * 1024 * 1024;

pub fn test(flows: &Flows, paths: Vec<PathBuf>, format: TestFormat) -> anyhow::Result<ExitCode> {
    let roots = if paths.is_empty() {
        match flows.local()? {
            Some(dir) => vec![dir],
            None => {
                bail!("no flows folder here: give the test files or folders to run (`flowcat test flows examples`)")
            }
        }
    } else {
        paths
    };
    let mut files = Vec::new();
    for root in &roots {
        if !root.exists() {
            bail!("`{}` does not exist", root.display());
        }
        find_tests(root, &mut files)?;
    }
    files.sort();
    files.dedup();
    if files.is_empty() {
        let shown: Vec<String> = roots.iter().map(|r| format!("`{}`", r.display())).collect();
        bail!("no test files (`*.test.yaml`) under {}", shown.join(", "));
    }
    // The flows beside the tests shadow the built-in ones, so a copy being changed is what runs.
    let mut beside: Vec<PathBuf> = roots.iter().map(|r| if r.is_dir() { r.clone() } else { parent(r) }).collect();
    beside.sort();
    beside.dedup();
    let mut library = flows.library(&beside)?;
    let catalog = library.load(&REGISTRY)?;
    Flows::notes(&library, None);

    let mut diagnostics: Vec<Diagnostic> = Vec::new();
    let mut suites = Vec::new();
    for file in &files {
        let text = read(file)?;
        let source = Arc::new(Source { path: file.display().to_string(), text });
        let mut diags = Diags::new(source.clone());
        if let Some(suite) = case::parse(&source, &mut diags) {
            check(&catalog, &suite, &mut diags);
            if !diags.has_errors() {
                suites.push(suite);
            }
        }
        diagnostics.extend(diags.list);
    }

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .context("cannot start the test runtime")?;
    let catalog = Arc::new(catalog);
    let mut results = Vec::new();
    let mut coverage = Coverage::default();
    for suite in &suites {
        let mut cases = Vec::new();
        for case in &suite.cases {
            let (result, record) = runtime.block_on(run_case(&catalog, suite, case));
            if let Some(record) = &record {
                coverage.add(record);
            }
            cases.push(result);
        }
        results.push(SuiteResult { path: suite.path.clone(), flow: suite.flow.clone(), cases });
    }
    let tested: Vec<&str> = suites.iter().map(|s| s.flow.as_str()).collect();
    let table = coverage.table(&catalog, &tested);
    let failed = report::print(format, &results, &table, &diagnostics)?;
    let errors = diagnostics.iter().any(Diagnostic::is_error);
    Ok(if failed > 0 || errors { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}

fn parent(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

fn read(file: &Path) -> anyhow::Result<String> {
    let size = std::fs::metadata(file).with_context(|| format!("cannot read `{}`", file.display()))?.len();
    if size > MAX_FILE_BYTES {
        bail!("`{}` is {size} bytes: a test file may have at most {MAX_FILE_BYTES} (split its cases)", file.display());
    }
    std::fs::read_to_string(file).with_context(|| format!("cannot read `{}` (is it UTF-8?)", file.display()))
}

/// The test files under `root` (or `root` itself), in no particular order; hidden folders are
/// skipped.
fn find_tests(root: &Path, out: &mut Vec<PathBuf>) -> anyhow::Result<()> {
    if root.is_file() {
        if !is_test_file(root) {
            bail!("`{}` is not a test file: test files end in `.test.yaml` (docs/testing.md)", root.display());
        }
        out.push(root.to_path_buf());
        return Ok(());
    }
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let entries = std::fs::read_dir(&dir).with_context(|| format!("cannot list `{}`", dir.display()))?;
        for entry in entries.flatten() {
            let path = entry.path();
            let hidden = entry.file_name().to_string_lossy().starts_with('.');
            if path.is_dir() && !hidden {
                stack.push(path);
            } else if is_test_file(&path) {
                out.push(path);
                if out.len() > MAX_FILES {
                    bail!("more than {MAX_FILES} test files under `{}`: name a narrower folder", root.display());
                }
            }
        }
    }
    Ok(())
}

/// Everything a test file may name, checked against the flow and the flows it calls: the flow,
/// each mocked node and route, each signal, each expected output.
fn check(catalog: &Catalog, suite: &Suite, diags: &mut Diags) {
    let Some(flow) = lookup(catalog, &suite.flow, suite.flow_span, diags) else { return };
    let mut reach = Reach::default();
    reach.walk(catalog, flow);
    for case in &suite.cases {
        for mock in &case.mocks {
            match &mock.target {
                Target::Node(path) => {
                    if let Err((message, near)) = node_at(catalog, flow, path) {
                        let d = diags.error("unknown-mock", Some(mock.span), message);
                        if let Some(near) = near {
                            d.help(format!("did you mean `{near}`?"));
                        }
                    }
                }
                Target::Route { method, path } => {
                    let found = reach.routes.iter().any(|(m, r)| m == method && mock::routes_overlap(path, r));
                    if !found {
                        let shown: Vec<String> = reach.routes.iter().map(|(m, r)| format!("{m} {r}")).collect();
                        let wrong = format!("{method} {path}");
                        let d = diags.error(
                            "unknown-mock",
                            Some(mock.span),
                            format!("flow `{}` and the flows it calls send no `{wrong}`", suite.flow),
                        );
                        d.help(format!(
                            "its routes: {}",
                            flowcat_engine::diag::one_of(shown.iter().map(String::as_str))
                        ));
                        d.suggest(&wrong, shown.iter().map(String::as_str));
                    }
                }
            }
        }
        for signal in &case.signals {
            if !reach.signals.contains(&signal.name) {
                let d = diags.error(
                    "unknown-signal",
                    Some(signal.span),
                    format!(
                        "no `wait_for` node of `{}` or the flows it calls waits for signal `{}`",
                        suite.flow, signal.name
                    ),
                );
                d.help(format!(
                    "its signals: {}",
                    flowcat_engine::diag::one_of(reach.signals.iter().map(String::as_str))
                ));
                d.suggest(&signal.name, reach.signals.iter().map(String::as_str));
            }
        }
        let outputs: Vec<&str> = flow.outputs.iter().map(|o| o.name.as_str()).collect();
        for (name, span, _) in &case.expect.outputs {
            if !outputs.contains(&name.as_str()) {
                diags
                    .error("unknown-output", Some(*span), format!("flow `{}` has no output `{name}`", suite.flow))
                    .help(format!("its outputs: {}", flowcat_engine::diag::one_of(outputs.iter().copied())))
                    .suggest(name, outputs.iter().copied());
            }
        }
    }
}

fn lookup<'c>(catalog: &'c Catalog, id: &str, span: Option<Span>, diags: &mut Diags) -> Option<&'c Flow> {
    match catalog.find(id) {
        Err(e) => {
            diags.error("unknown-flow", span, e.to_string());
            None
        }
        Ok(entry) => match &entry.flow {
            Some(flow) => Some(flow),
            None => {
                diags
                    .error("invalid-flow", span, format!("flow `{id}` has errors"))
                    .help(format!("run `flowcat validate {}`", entry.path));
                None
            }
        },
    }
}

/// What a flow and the flows it calls (transitively) send and wait for.
#[derive(Default)]
struct Reach {
    flows: BTreeSet<String>,
    /// (method, route template).
    routes: BTreeSet<(String, String)>,
    signals: BTreeSet<String>,
}

impl Reach {
    fn walk(&mut self, catalog: &Catalog, flow: &Flow) {
        if !self.flows.insert(flow.id().to_owned()) {
            return;
        }
        for node in &flow.plan.nodes {
            if let Some((method, route)) = rest_route(node) {
                self.routes.insert((method, route));
            }
            if let Some(signal) = &node.compiled.signal {
                self.signals.insert(signal.name.clone());
            }
            if let Some(sub) = node.compiled.calls.as_ref().and_then(|c| catalog.get(&c.flow)) {
                self.walk(catalog, sub);
            }
        }
    }
}

/// A `rest_call` node's method and route template, from what the kind describes of it.
fn rest_route(node: &flowcat_engine::plan::PlanNode) -> Option<(String, String)> {
    if node.kind != "rest_call" {
        return None;
    }
    let described = node.compiled.exec.describe();
    let method = described["method"].as_str()?.to_ascii_uppercase();
    Some((method, route::template(described["path"].as_str()?)))
}

/// Finds the `rest_call` node a mock's node path names (`lookup`, `user/lookup`), or says why not
/// with the nearest name.
fn node_at(catalog: &Catalog, flow: &Flow, path: &str) -> Result<(), (String, Option<String>)> {
    let mut flow = flow;
    let parts: Vec<&str> = path.split('/').collect();
    for (i, part) in parts.iter().enumerate() {
        let Some(node) = flow.plan.nodes.iter().find(|n| n.id == *part) else {
            let ids: Vec<&str> = flow.plan.nodes.iter().map(|n| n.id.as_str()).collect();
            let near = flowcat_engine::diag::did_you_mean(part, ids.iter().copied()).map(|n| {
                let mut fixed: Vec<&str> = parts[..i].to_vec();
                fixed.push(n);
                fixed.join("/")
            });
            return Err((format!("flow `{}` has no node `{part}`", flow.id()), near));
        };
        if i + 1 == parts.len() {
            if node.kind != "rest_call" {
                let hint = "mock the `rest_call` nodes it runs, or their routes".to_owned();
                return Err((format!("node `{path}` is a `{}`, which sends no request: {hint}", node.kind), None));
            }
            return Ok(());
        }
        let sub = node.compiled.calls.as_ref().and_then(|c| catalog.get(&c.flow));
        match sub {
            Some(sub) => flow = sub,
            None => return Err((format!("node `{part}` of flow `{}` runs no subflow", flow.id()), None)),
        }
    }
    Ok(())
}

/// A stand-in integrations file: one integration per slot, of the slot's kind, on a host that
/// does not exist (nothing is sent: the mocks answer), with made-up keys.
fn integrations(flow: &Flow) -> Result<Integrations, String> {
    let mut text = String::from("integrations:\n");
    for slot in &flow.signature.slots {
        let name = &slot.name;
        match slot.kind.as_str() {
            "http" => text
                .push_str(&format!("  {name}:\n    kind: http\n    base_url: https://{name}.flowcat-test.invalid\n")),
            kind => text.push_str(&format!(
                "  {name}:\n    kind: {kind}\n    host: api-test.flowcat-test.invalid\n    host_check: off\n    \
                 ikey: DIFLOWCATTESTKEY0000\n    skey: flowcat-test-made-up-secret-key-000000000\n"
            )),
        }
    }
    let parsed = flowcat_nodes::integrations::parse(Path::new("<flowcat test>"), &text, &|_| None);
    parsed.map_err(|e| e.messages().join("; "))
}

/// Runs one case on the paused clock and judges it.
async fn run_case(catalog: &Arc<Catalog>, suite: &Suite, case: &Case) -> (CaseResult, Option<RunRecord>) {
    let started = tokio::time::Instant::now();
    let mut result = CaseResult::new(&case.name);
    let flow = match catalog.get(&suite.flow) {
        Some(flow) => flow,
        None => {
            result.problems.push(format!("flow `{}` is not in the catalog", suite.flow));
            return (result, None);
        }
    };
    let integrations = match integrations(flow) {
        Ok(i) => i,
        Err(e) => {
            result.problems.push(format!("cannot set up the test integrations: {e}"));
            return (result, None);
        }
    };
    let mocks = Arc::new(mock::Mocks::new(case.mocks.clone()));
    let hall = Hall::new(catalog.clone(), Options::default(), Arc::new(Quiet))
        .with_integrations(integrations)
        .with_clients(Clients::with_transport(mocks.clone()));
    let call = hall::Call {
        flow: suite.flow.clone(),
        inputs: case.inputs.clone(),
        vars: case.vars.clone(),
        binds: Vec::new(),
    };
    let log = Arc::new(mock::Log::new(case.signals.clone()));
    let ran = match hall.prepare(call) {
        Ok(checked) => hall.run_logged(checked, log).await,
        Err(e) => Err(e),
    };
    result.virtual_ms = started.elapsed().as_millis() as u64;
    for request in mocks.unanswered() {
        result.problems.push(format!("no mock answers `{request}`: mock the node or the route"));
    }
    let record = match ran {
        Err(refused) => {
            judge_refused(case, &refused, &mut result);
            return (result, None);
        }
        Ok(record) => record,
    };
    report::judge(case, &record, &mocks.sent(), &mut result);
    (result, Some(record))
}

fn judge_refused(case: &Case, refused: &Refused, result: &mut CaseResult) {
    let message = refused.to_string();
    if case.expect.status != "refused" {
        result.problems.push(format!("expected status `{}`, but the run was refused: {message}", case.expect.status));
        return;
    }
    if let Some(want) = case.expect.error.as_ref().and_then(|e| e.message.as_deref()) {
        if !message.contains(want) {
            result.problems.push(format!("expected a refusal saying `{want}`, got: {message}"));
        }
    }
}

/// The value of a record's output, for messages.
pub(crate) fn show(value: Option<&Value>) -> String {
    value.map_or_else(|| "nothing".to_owned(), Value::to_string)
}
