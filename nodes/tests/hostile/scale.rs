//! Inputs that are large rather than deep: each pass must stay linear (or n·log n) in them.

use flowcat_engine::render::{Escape, Values, render, walk};
use serde_json::{Value, json};

use super::{all, flow_with_values, isolated, load_one, the_limit};

/// 40,000 errors in one file: rendering each one walked the file from its start.
#[test]
fn forty_thousand_diagnostics_render_in_linear_time() {
    isolated("scale::forty_thousand_diagnostics_render_in_linear_time", || {
        let inputs: String = (0..40_000).map(|i| format!("  i{i}: {{ type: strin }}\n")).collect();
        let catalog = load_one(format!("id: many\ninputs:\n{inputs}nodes: []\n"));
        let last = catalog.diagnostics().last().expect("diagnostics").render(false);
        assert_eq!(catalog.diagnostics().count(), 40_000);
        assert!(last.contains("40002 |   i39999: { type: strin }"), "{last}");
    });
}

/// Found by the fuzzer: a whole flow on one line with thousands of mistakes. Each diagnostic
/// counted the characters of the line to cut a window around its caret (14 s for one input).
#[test]
fn twenty_thousand_diagnostics_on_one_long_line() {
    isolated("scale::twenty_thousand_diagnostics_on_one_long_line", || {
        let keys: String = (0..20_000).map(|i| format!(", k{i}: 1")).collect();
        let catalog = load_one(format!("{{id: long, nodes: []{keys}}}\n"));
        assert_eq!(catalog.diagnostics().filter(|d| d.code == "unknown-key").count(), 20_000);
        let last = catalog.diagnostics().last().expect("diagnostics").render(false);
        assert!(last.contains("k19999: 1}"), "{last}");
    });
}

/// Each unknown node listed and compared every node id (7,000 nodes: 7.3 s, 774 MB).
#[test]
fn unknown_nodes_among_five_thousand_are_reported_in_linear_time() {
    isolated("scale::unknown_nodes_among_five_thousand_are_reported_in_linear_time", || {
        let nodes: String = (0..5_000)
            .map(|i| {
                format!("  - {{ id: n{i}, kind: set, after: [m{i}], values: {{ v: \"{{{{nodes.m{i}.v}}}}\" }} }}\n")
            })
            .collect();
        let catalog = load_one(format!("id: many\nnodes:\n{nodes}"));
        let unknown: Vec<_> = catalog.diagnostics().filter(|d| d.code == "unknown-node").collect();
        assert_eq!(unknown.len(), 10_000, "{}", all(&catalog));
        let after = unknown.iter().find(|d| d.message.contains("`after:`")).expect("an `after:` error");
        let label = after.label.as_deref().unwrap_or_default();
        assert!(label.ends_with("or 4,975 others"), "{label}");
    });
}

/// "Did you mean" on a 120,000-character name took 3.7 s (Jaro-Winkler is quadratic).
#[test]
fn names_of_120_000_characters() {
    isolated("scale::names_of_120_000_characters", || {
        let long = "a".repeat(120_000);
        let text = format!(
            "id: long\ninputs:\n  ab: {{ type: string }}\nnodes:\n  - id: {long}\n    kind: {long}\n  - id: t\n    kind: set\n    values: {{ v: \"{{{{inputs.{long}b}}}}\" }}\n"
        );
        let catalog = load_one(text);
        let limits: Vec<_> = catalog.diagnostics().filter(|d| d.code == "limit").collect();
        assert_eq!(limits.len(), 1, "{}", all(&catalog));
        assert!(limits[0].render(false).contains("limit `name-chars`"));
        assert!(catalog.diagnostics().any(|d| d.code == "unknown-kind"), "{}", all(&catalog));
    });
}

/// The duplicate-key check compared each key with every key before it (60,000 vars: 3.4 s).
#[test]
fn sixty_thousand_vars_with_duplicates() {
    isolated("scale::sixty_thousand_vars_with_duplicates", || {
        let vars: String = (0..60_000).map(|i| format!("  v{}: {{ default: {i} }}\n", i % 30_000)).collect();
        let catalog = load_one(format!("id: many\nvars:\n{vars}nodes: []\n"));
        assert_eq!(catalog.diagnostics().filter(|d| d.code == "duplicate-key").count(), 30_000);
    });
}

#[test]
fn more_nodes_than_the_limit() {
    isolated("scale::more_nodes_than_the_limit", || {
        let nodes: String =
            (0..5_001).map(|i| format!("  - {{ id: n{i}, kind: set, values: {{ v: {i} }} }}\n")).collect();
        let limit = the_limit(&load_one(format!("id: many\nnodes:\n{nodes}")));
        assert!(limit.contains("the flow has 5,001 nodes"), "{limit}");
        assert!(limit.contains("hostile.yaml:5003:5"), "{limit}");
    });
}

struct Big(Value);

impl Values for Big {
    fn lookup(&self, path: &[String]) -> Option<&Value> {
        walk(&self.0, path)
    }
}

/// A template reading one 20,000-item array a thousand times copied it a thousand times per
/// render (5,000 references: 1.2 s per render).
#[test]
fn a_thousand_reads_of_a_large_array_render_it_once() {
    isolated("scale::a_thousand_reads_of_a_large_array_render_it_once", || {
        let t = format!("'{}'", "{{len inputs.a}}".repeat(1_000));
        let catalog = load_one(flow_with_values(&format!("      v: {t}\n")));
        let flow = catalog.flows().next().unwrap_or_else(|| panic!("{}", all(&catalog)));
        let template = flow.plan.nodes[0].reads.len();
        assert_eq!(template, 1_000);
        let values = Big(json!({ "inputs": { "a": vec![json!({"k": "v"}); 20_000] } }));
        let out = flow.outputs[0].value.clone();
        // The output reads `nodes.s.v`; render the node's own template through the same path.
        let node_template = flowcat_engine::template::compile(&yaml_scalar(&t)).expect("compiles");
        for _ in 0..5 {
            let rendered = render(&node_template, &values, Escape::None).expect("renders");
            assert_eq!(rendered.as_str().map(str::len), Some(5 * 1_000));
        }
        std::hint::black_box(out);
    });
}

fn yaml_scalar(text: &str) -> flowcat_engine::yaml::Node {
    let doc = flowcat_engine::yaml::parse(&format!("t: {text}\n")).ok().flatten().expect("yaml");
    doc.get("t").cloned().expect("t")
}

/// The same on one long line of non-ASCII text: placing each caret counted the line's
/// characters again, so showing every diagnostic took time quadratic in the line.
#[test]
fn twenty_thousand_diagnostics_on_one_long_line_of_text() {
    isolated("scale::twenty_thousand_diagnostics_on_one_long_line_of_text", || {
        let keys: String = (0..20_000).map(|i| format!(", clé{i}: é")).collect();
        let catalog = load_one(format!("{{id: long, nodes: []{keys}}}\n"));
        assert_eq!(catalog.diagnostics().filter(|d| d.code == "unknown-key").count(), 20_000);
        let shown: Vec<String> = catalog.diagnostics().map(|d| d.render(false)).collect();
        let last = shown.last().expect("diagnostics");
        assert!(last.contains("--> "), "{last}");
        assert!(last.contains("with non-ASCII text: not shown"), "{last}");
    });
}
