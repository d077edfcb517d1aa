//! Hostile flow files: generated inputs that once overflowed the stack, ran for minutes or
//! filled the memory (issue 11). Each test builds its input, loads it with the real node kinds,
//! and checks that it is refused (or accepted) with a clear diagnostic, quickly.
//!
//! Every test runs its body in a child process (this test binary, filtered to the one test):
//! a stack overflow aborts a process, and must fail one test rather than the whole suite. The
//! time bound is generous on purpose: it tells linear from quadratic or exponential (which took
//! seconds to minutes), not fast from slow; the measured times are in `docs/fuzzing.md`.

mod graph;
mod jsonpath;
mod scale;
mod templates;
mod yaml;

use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use flowcat_engine::Catalog;
use flowcat_engine::diag::Source;
use flowcat_nodes::REGISTRY;

/// Set in the child process that runs a test's body.
const CHILD: &str = "FLOWCAT_HOSTILE_CHILD";

/// Far above what any of these inputs takes now (milliseconds), far below what they took.
const BOUND: Duration = Duration::from_secs(5);

/// Runs `body` in a child process; fails when the child fails, aborts or takes longer than
/// `BOUND`. `name` is the test's path in this binary (`yaml::block_sequences_100_000_deep`).
pub fn isolated(name: &str, body: impl FnOnce()) {
    if std::env::var_os(CHILD).is_some() {
        let start = Instant::now();
        body();
        eprintln!("{name}: {:?}", start.elapsed());
        return;
    }
    let exe = std::env::current_exe().expect("the test binary");
    let start = Instant::now();
    let out = Command::new(exe)
        .args([name, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD, "1")
        .output()
        .expect("run the test in a child process");
    let elapsed = start.elapsed();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{name} failed in its own process ({}):\n{stdout}\n{stderr}", out.status);
    assert!(stdout.contains("1 passed"), "{name} did not run in the child:\n{stdout}");
    assert!(elapsed < BOUND, "{name} took {elapsed:?}");
}

/// Loads files into a catalog, and renders every diagnostic (rendering is a pass too).
pub fn load(files: &[(&str, String)]) -> Catalog {
    let sources = files.iter().map(|(p, t)| Arc::new(Source { path: (*p).into(), text: t.clone() })).collect();
    let catalog = Catalog::load(sources, &REGISTRY);
    for d in catalog.diagnostics() {
        std::hint::black_box(d.render(false));
        std::hint::black_box(d.to_json());
    }
    catalog
}

/// Loads one file.
pub fn load_one(text: String) -> Catalog {
    load(&[("hostile.yaml", text)])
}

/// The one diagnostic with code `limit`, rendered; fails if there is not exactly one.
pub fn the_limit(catalog: &Catalog) -> String {
    let limits: Vec<String> = catalog.diagnostics().filter(|d| d.code == "limit").map(|d| d.render(false)).collect();
    assert_eq!(limits.len(), 1, "expected one `limit` diagnostic, got:\n{}", all(catalog));
    limits.into_iter().next().unwrap_or_default()
}

/// Every diagnostic, rendered, for failure messages.
pub fn all(catalog: &Catalog) -> String {
    let list: Vec<String> = catalog.diagnostics().take(20).map(|d| d.render(false)).collect();
    list.join("\n")
}

/// A flow with one `set` node whose `values:` are `values` (indented YAML lines).
pub fn flow_with_values(values: &str) -> String {
    format!(
        "id: hostile\ninputs:\n  a: {{ type: string }}\nnodes:\n  - id: s\n    kind: set\n    values:\n{values}outputs:\n  o: \"{{{{nodes.s.v}}}}\"\n"
    )
}
