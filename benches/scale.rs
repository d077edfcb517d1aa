//! Validation time per megabyte, from 10 KB to 10 MB flow files (issue 11): every pass is
//! linear, so the time per megabyte must stay flat as files grow.
//!
//! `cargo bench --bench scale`. Two kinds of file, each in four sizes: a valid flow (set nodes
//! whose values are templates reading earlier nodes, literal lists and maps), and the same flow
//! with a mistake in every node (a misspelt input, so each node has an error with a "did you
//! mean" hint), whose diagnostics are rendered too. Sizes are measured side by side in one run.

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use flowcat_engine::Catalog;
use flowcat_engine::diag::Source;
use flowcat_nodes::REGISTRY;

const SIZES: &[usize] = &[10_000, 100_000, 1_000_000, 10_000_000];

/// A node of about 2 KB: a `set` whose values read the node before it.
fn node(out: &mut String, i: usize, broken: bool) {
    let prev = if i == 0 { "inputs.name".to_owned() } else { format!("nodes.n{}.a", i - 1) };
    let input = if broken { "nmae" } else { "name" };
    let _ = write!(out, "  - id: n{i}\n    kind: set\n    values:\n      a: \"{{{{{prev}}}}}\"\n");
    let _ = writeln!(out, "      b: \"user {{{{inputs.{input}}}}} in {{{{vars.region}}}}\"");
    let _ = writeln!(out, "      c: '{{{{#if (eq {prev} \"x\")}}}}yes{{{{else}}}}no{{{{/if}}}}'");
    for k in 0..24 {
        let _ =
            writeln!(out, "      l{k}: [alpha, beta, {k}, {{ key: value_{k}, n: {i} }}, \"text with some words {k}\"]");
    }
}

fn flow(target: usize, broken: bool) -> String {
    let mut out =
        String::from("id: bench.scale\ninputs:\n  name: { type: string }\nvars:\n  region: { default: eu }\nnodes:\n");
    let mut i = 0;
    while out.len() < target {
        node(&mut out, i, broken);
        i += 1;
    }
    let _ = write!(out, "outputs:\n  last: \"{{{{nodes.n{}.a}}}}\"\n", i - 1);
    out
}

/// Median of `runs` loads (and renderings of every diagnostic).
fn time(text: &str, runs: usize) -> (Duration, usize) {
    let mut times = Vec::with_capacity(runs);
    let mut diags = 0;
    for _ in 0..runs {
        let source = Arc::new(Source { path: "scale.yaml".into(), text: text.to_owned() });
        let start = Instant::now();
        let catalog = Catalog::load(vec![source], &REGISTRY);
        let rendered: usize = catalog.diagnostics().map(|d| d.render(false).len()).sum();
        times.push(start.elapsed());
        std::hint::black_box(rendered);
        diags = catalog.diagnostics().count();
    }
    times.sort();
    (times[times.len() / 2], diags)
}

fn main() {
    println!("| file | size | nodes | diagnostics | median | per MB |");
    println!("|---|---|---|---|---|---|");
    for broken in [false, true] {
        for &size in SIZES {
            let text = flow(size, broken);
            let nodes = text.matches("kind: set").count();
            let runs = (20_000_000 / size).clamp(3, 200);
            let (median, diags) = time(&text, runs);
            if !broken {
                assert_eq!(diags, 0, "the valid flow has problems");
            }
            let mb = text.len() as f64 / 1e6;
            let per_mb = median.as_secs_f64() * 1e3 / mb;
            let kind = if broken { "an error per node" } else { "valid" };
            println!("| {kind} | {:.2} MB | {nodes} | {diags} | {median:.2?} | {per_mb:.1} ms |", mb);
        }
    }
}
