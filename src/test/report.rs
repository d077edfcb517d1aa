//! Judging a case's run against what it expects, the coverage of nodes and switch branches, and
//! the reports: for a person, JSON, JUnit XML.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use clap::ValueEnum;
use flowcat_engine::catalog::Catalog;
use flowcat_engine::diag::Diagnostic;
use flowcat_engine::run::{NodeStatus, RunRecord};
use serde_json::{Value, json};

use super::case::Case;
use super::mock::{Sent, path_matches};

/// `flowcat test --format`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum TestFormat {
    /// A line per case and the coverage table, for a person (`text` is accepted too).
    #[default]
    #[value(alias = "text")]
    Human,
    /// One JSON document on stdout.
    Json,
    /// JUnit XML on stdout, for CI systems.
    Junit,
}

#[derive(Debug)]
pub struct CaseResult {
    pub name: String,
    /// Empty when the case passed.
    pub problems: Vec<String>,
    /// The time the run took on the test's clock.
    pub virtual_ms: u64,
}

impl CaseResult {
    pub fn new(name: &str) -> CaseResult {
        CaseResult { name: name.to_owned(), problems: Vec::new(), virtual_ms: 0 }
    }

    fn passed(&self) -> bool {
        self.problems.is_empty()
    }
}

#[derive(Debug)]
pub struct SuiteResult {
    pub path: String,
    pub flow: String,
    pub cases: Vec<CaseResult>,
}

/// Compares a run's record and the requests it sent with what the case expects.
pub fn judge(case: &Case, record: &RunRecord, sent: &[Sent], result: &mut CaseResult) {
    let expect = &case.expect;
    let status = record.status.as_str();
    if status != expect.status {
        let why = record
            .error
            .as_ref()
            .map(|e| format!(" (node `{}`: `{}`: {})", e.node, e.code, e.message))
            .unwrap_or_default();
        result.problems.push(format!("expected status `{}`, got `{status}`{why}", expect.status));
    }
    if let Some(want) = &expect.error {
        match &record.error {
            None => result.problems.push("expected an error, the run has none".to_owned()),
            Some(got) => {
                if let Some(code) = want.code.as_deref().filter(|c| *c != got.code) {
                    result.problems.push(format!("expected error code `{code}`, got `{}` ({})", got.code, got.message));
                }
                if let Some(node) = want.node.as_deref().filter(|n| *n != got.node) {
                    result.problems.push(format!("expected the error at node `{node}`, got it at `{}`", got.node));
                }
                if let Some(text) = want.message.as_deref().filter(|m| !got.message.contains(m)) {
                    result
                        .problems
                        .push(format!("expected an error message containing `{text}`, got: {}", got.message));
                }
            }
        }
    }
    for (name, _, want) in &expect.outputs {
        let got = record.outputs.get(name);
        if got.is_none_or(|g| !loose_eq(want, g)) {
            result.problems.push(format!("output `{name}`: expected {want}, got {}", super::show(got)));
        }
    }
    if let Some(requests) = &expect.requests {
        let shown = |list: &[Sent]| list.iter().map(Sent::show).collect::<Vec<_>>().join(", ");
        if requests.len() != sent.len() {
            result.problems.push(format!(
                "expected {} requests, {} were sent: {}",
                requests.len(),
                sent.len(),
                if sent.is_empty() { "none".to_owned() } else { shown(sent) }
            ));
        }
        for (i, (want, got)) in requests.iter().zip(sent).enumerate() {
            if want.method != got.method || !path_matches(&want.path, &got.path) {
                result.problems.push(format!(
                    "request {}: expected `{} {}`, sent `{}`",
                    i + 1,
                    want.method,
                    want.path,
                    got.show()
                ));
                continue;
            }
            if let Some(params) = &want.params {
                let got_params = got.params.clone().map(Value::Object).unwrap_or_else(|| json!({}));
                if !loose_eq(params, &got_params) {
                    result.problems.push(format!(
                        "request {} (`{}`): expected params {params}, sent {got_params}",
                        i + 1,
                        got.show()
                    ));
                }
            }
        }
    }
}

/// Equal, reading a scalar the case wrote unquoted (`limit: 1`) as its text too: query
/// parameters travel as text.
fn loose_eq(want: &Value, got: &Value) -> bool {
    match (want, got) {
        (Value::Array(a), Value::Array(b)) => a.len() == b.len() && a.iter().zip(b).all(|(x, y)| loose_eq(x, y)),
        (Value::Object(a), Value::Object(b)) => {
            a.len() == b.len() && a.iter().all(|(k, x)| b.get(k).is_some_and(|y| loose_eq(x, y)))
        }
        (Value::Number(n), Value::String(s)) => n.as_f64().is_some_and(|n| s.parse::<f64>().ok() == Some(n)),
        (Value::Bool(b), Value::String(s)) => s == if *b { "true" } else { "false" },
        _ => want == got,
    }
}

/// Which nodes and switch branches some case ran, by flow.
#[derive(Debug, Default)]
pub struct Coverage {
    nodes: BTreeSet<(String, String)>,
    branches: BTreeSet<(String, String, String)>,
}

/// One flow's line of the coverage table.
#[derive(Debug)]
pub struct FlowCoverage {
    pub flow: String,
    pub nodes: usize,
    pub nodes_run: usize,
    pub branches: usize,
    pub branches_run: usize,
    /// `node` and `switch_node → branch` never run.
    pub missed: Vec<String>,
    /// Whether a test file names this flow (else it is covered only as a subflow).
    pub tested: bool,
}

impl Coverage {
    pub fn add(&mut self, record: &RunRecord) {
        for node in &record.nodes {
            if matches!(node.status, NodeStatus::Succeeded | NodeStatus::Failed) {
                self.nodes.insert((record.flow.clone(), node.id.clone()));
            }
            if node.kind == "switch" {
                if let Some(case) = node.result.as_ref().and_then(|r| r.get("case")).and_then(Value::as_str) {
                    self.branches.insert((record.flow.clone(), node.id.clone(), case.to_owned()));
                }
            }
            if let Some(sub) = &node.subflow {
                self.add(sub);
            }
            for item in &node.items {
                self.add(&item.record);
            }
        }
    }

    /// A line per flow tested and per flow they call.
    pub fn table(&self, catalog: &Catalog, tested: &[&str]) -> Vec<FlowCoverage> {
        let mut flows: BTreeSet<String> = tested.iter().map(|s| (*s).to_owned()).collect();
        flows.extend(self.nodes.iter().map(|(f, _)| f.clone()));
        let mut out = Vec::new();
        for id in flows {
            let Some(flow) = catalog.get(&id) else { continue };
            let mut line = FlowCoverage {
                flow: id.clone(),
                nodes: 0,
                nodes_run: 0,
                branches: 0,
                branches_run: 0,
                missed: Vec::new(),
                tested: tested.contains(&id.as_str()),
            };
            for node in &flow.plan.nodes {
                line.nodes += 1;
                if self.nodes.contains(&(id.clone(), node.id.clone())) {
                    line.nodes_run += 1;
                } else {
                    line.missed.push(node.id.clone());
                }
                for branch in &node.compiled.branches {
                    line.branches += 1;
                    if self.branches.contains(&(id.clone(), node.id.clone(), branch.name.clone())) {
                        line.branches_run += 1;
                    } else {
                        line.missed.push(format!("{} → {}", node.id, branch.name));
                    }
                }
            }
            out.push(line);
        }
        out
    }
}

/// Prints the report; returns the number of cases that failed.
pub fn print(
    format: TestFormat,
    suites: &[SuiteResult],
    coverage: &[FlowCoverage],
    diagnostics: &[Diagnostic],
) -> anyhow::Result<usize> {
    let failed = suites.iter().flat_map(|s| &s.cases).filter(|c| !c.passed()).count();
    let total = suites.iter().map(|s| s.cases.len()).sum::<usize>();
    match format {
        TestFormat::Human => {
            let colour = crate::ui::get().color;
            for d in diagnostics {
                eprintln!("{}", d.render(colour));
            }
            print!("{}", human(suites, coverage));
            let errors = diagnostics.iter().filter(|d| d.is_error()).count();
            let files = if errors > 0 { format!(", {errors} errors in test files") } else { String::new() };
            println!("{} passed, {failed} failed{files}", total - failed);
        }
        TestFormat::Json => println!("{}", serde_json::to_string_pretty(&to_json(suites, coverage, diagnostics))?),
        TestFormat::Junit => print!("{}", junit(suites, diagnostics)),
    }
    Ok(failed)
}

fn human(suites: &[SuiteResult], coverage: &[FlowCoverage]) -> String {
    let mut out = String::new();
    for suite in suites {
        let _ = writeln!(out, "{} ({})", suite.path, suite.flow);
        for case in &suite.cases {
            let mark = if case.passed() { "ok  " } else { "FAIL" };
            let _ = writeln!(out, "  {mark} {} [{} on the test clock]", case.name, clock(case.virtual_ms));
            for problem in &case.problems {
                let _ = writeln!(out, "       {problem}");
            }
        }
    }
    if !coverage.is_empty() {
        let width = coverage.iter().map(|c| c.flow.chars().count()).max().unwrap_or(4).max(4);
        let _ = writeln!(out, "\ncoverage\n  {:width$}  nodes    branches  not run", "flow");
        for c in coverage {
            let branches = if c.branches == 0 { "-".to_owned() } else { format!("{}/{}", c.branches_run, c.branches) };
            let mut missed = c.missed.join(", ");
            if !c.tested {
                missed = format!("(as a subflow only) {missed}");
            }
            let nodes = format!("{}/{}", c.nodes_run, c.nodes);
            let line = format!("  {:width$}  {nodes:8} {branches:9} {missed}", c.flow);
            let _ = writeln!(out, "{}", line.trim_end());
        }
        out.push('\n');
    }
    out
}

fn clock(ms: u64) -> String {
    if ms < 1_000 { format!("{ms} ms") } else { format!("{:.1} s", ms as f64 / 1000.0) }
}

fn to_json(suites: &[SuiteResult], coverage: &[FlowCoverage], diagnostics: &[Diagnostic]) -> Value {
    let failed = suites.iter().flat_map(|s| &s.cases).filter(|c| !c.passed()).count();
    let total = suites.iter().map(|s| s.cases.len()).sum::<usize>();
    json!({
        "passed": total - failed,
        "failed": failed,
        "suites": suites.iter().map(|s| json!({
            "file": s.path,
            "flow": s.flow,
            "cases": s.cases.iter().map(|c| json!({
                "name": c.name,
                "status": if c.passed() { "passed" } else { "failed" },
                "problems": c.problems,
                "virtual_ms": c.virtual_ms,
            })).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
        "coverage": coverage.iter().map(|c| json!({
            "flow": c.flow,
            "tested": c.tested,
            "nodes": { "run": c.nodes_run, "total": c.nodes },
            "branches": { "run": c.branches_run, "total": c.branches },
            "not_run": c.missed,
        })).collect::<Vec<_>>(),
        "diagnostics": diagnostics.iter().map(Diagnostic::to_json).collect::<Vec<_>>(),
    })
}

/// JUnit XML: a `testsuite` per test file, a `testcase` per case, a `failure` with its problems;
/// a test file with errors is a suite with one `error` case per diagnostic.
fn junit(suites: &[SuiteResult], diagnostics: &[Diagnostic]) -> String {
    let failed = suites.iter().flat_map(|s| &s.cases).filter(|c| !c.passed()).count();
    let total = suites.iter().map(|s| s.cases.len()).sum::<usize>();
    let errors: Vec<&Diagnostic> = diagnostics.iter().filter(|d| d.is_error()).collect();
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        out,
        "<testsuites name=\"flowcat test\" tests=\"{}\" failures=\"{failed}\" errors=\"{}\">",
        total + errors.len(),
        errors.len()
    );
    for suite in suites {
        let failures = suite.cases.iter().filter(|c| !c.passed()).count();
        let _ = writeln!(
            out,
            "  <testsuite name=\"{}\" file=\"{}\" tests=\"{}\" failures=\"{failures}\" errors=\"0\">",
            xml(&suite.flow),
            xml(&suite.path),
            suite.cases.len()
        );
        for case in &suite.cases {
            let time = case.virtual_ms as f64 / 1000.0;
            let head = format!(
                "    <testcase classname=\"{}\" name=\"{}\" file=\"{}\" time=\"{time:.3}\"",
                xml(&suite.flow),
                xml(&case.name),
                xml(&suite.path)
            );
            if case.passed() {
                let _ = writeln!(out, "{head}/>");
            } else {
                let _ = writeln!(out, "{head}>");
                let first = case.problems.first().map(String::as_str).unwrap_or_default();
                let _ = writeln!(
                    out,
                    "      <failure message=\"{}\">{}</failure>",
                    xml(first),
                    xml(&case.problems.join("\n"))
                );
                let _ = writeln!(out, "    </testcase>");
            }
        }
        let _ = writeln!(out, "  </testsuite>");
    }
    if !errors.is_empty() {
        let _ = writeln!(
            out,
            "  <testsuite name=\"test files\" tests=\"{}\" failures=\"0\" errors=\"{}\">",
            errors.len(),
            errors.len()
        );
        for d in errors {
            let _ = writeln!(out, "    <testcase classname=\"test files\" name=\"{}\">", xml(&d.location()));
            let _ = writeln!(out, "      <error message=\"{}\">{}</error>", xml(&d.message), xml(&d.render(false)));
            let _ = writeln!(out, "    </testcase>");
        }
        let _ = writeln!(out, "  </testsuite>");
    }
    out.push_str("</testsuites>\n");
    out
}

/// Text and attribute values escaped for XML 1.0; characters XML cannot hold become `?`.
fn xml(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\n' => out.push_str("&#10;"),
            '\t' | '\r' => out.push(c),
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => out.push('?'),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xml_is_escaped() {
        assert_eq!(xml("a<b & \"c\"\u{1}"), "a&lt;b &amp; &quot;c&quot;?");
    }

    #[test]
    fn loose_equality_reads_unquoted_scalars_as_text() {
        assert!(loose_eq(&json!({"limit": 1}), &json!({"limit": "1"})));
        assert!(!loose_eq(&json!({"limit": 1}), &json!({"limit": "2"})));
        assert!(!loose_eq(&json!({"a": 1}), &json!({"a": 1, "b": 2})));
        assert!(!loose_eq(&json!("1"), &json!(1)));
    }
}
