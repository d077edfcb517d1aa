//! `graph --expand-subflows` over subflows that fan out: each level multiplied the drawing.

use flowcat_engine::draw;

use super::{all, isolated, load};

/// Ten flows, each calling the next ten times: fully expanded, 10^9 boxes.
#[test]
fn subflows_fanning_out_ten_levels_are_collapsed_at_the_budget() {
    isolated("graph::subflows_fanning_out_ten_levels_are_collapsed_at_the_budget", || {
        let files: Vec<(String, String)> = (0..10).map(|i| (format!("f{i}.yaml"), fan_out(i))).collect();
        let files: Vec<(&str, String)> = files.iter().map(|(p, t)| (p.as_str(), t.clone())).collect();
        let catalog = load(&files);
        let top = catalog.get("fan.f0").unwrap_or_else(|| panic!("{}", all(&catalog)));
        let e = draw::expansion(top, Some(&catalog));
        assert!(e.collapsed && e.depth >= 1, "{e:?}");
        let dot = draw::dot(top, Some(&catalog));
        let boxes = dot.matches("[label=").count();
        let arrows = dot.matches(" -> ").count();
        assert!(boxes + arrows <= 5_000, "{boxes} boxes, {arrows} arrows");
        assert!(dot.contains("subflow not expanded: the drawing would be too large"), "{dot}");
        let mermaid = draw::mermaid(top, Some(&catalog));
        assert!(mermaid.len() < 2_000_000, "{}", mermaid.len());
        let json = draw::json(top, Some(&catalog)).to_string();
        assert!(json.contains("\"collapsed\""), "{}", json.len());
    });
}

/// Flow `fan.f<i>`: ten subflow calls to `fan.f<i+1>`, the last flow one `set`.
fn fan_out(i: usize) -> String {
    let head = format!("id: fan.f{i}\nnodes:\n");
    if i == 9 {
        return head + "  - { id: leaf, kind: set, values: { v: 1 } }\noutputs:\n  v: \"{{nodes.leaf.v}}\"\n";
    }
    let calls: String = (0..10).map(|k| format!("  - {{ id: c{k}, kind: subflow, flow: fan.f{} }}\n", i + 1)).collect();
    head + &calls + "outputs:\n  v: \"{{nodes.c0.v}}\"\n"
}
