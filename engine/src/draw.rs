//! Drawing a plan: DOT, Mermaid and JSON, optionally with subflows expanded in place.
//!
//! Both text formats are rendered from one neutral drawing (boxes, clusters, edges), so they
//! always show the same graph. Solid edges carry data, dotted ones are `after:` orderings,
//! labelled ones are branches; a dashed box may be skipped.

use std::fmt::Write as _;

use serde_json::json;

use std::collections::HashMap;

use crate::catalog::Catalog;
use crate::compile::Flow;
use crate::journal::Past;
use crate::limits;
use crate::node::{NodeRecord, NodeStatus, RunRecord};
use crate::plan::EdgeKind;

/// Subflows nest at most this deep in a drawing (the catalog has no loops, but be safe).
const MAX_DEPTH: usize = 8;

/// The line a subflow drawn as one box carries, saying why it is not expanded.
const COLLAPSED: &str = "(subflow not expanded: the drawing would be too large)";

struct Box_ {
    key: String,
    lines: Vec<String>,
    dashed: bool,
    /// A run's status at this node, when a run is drawn.
    status: Option<&'static str>,
}

enum Item {
    Node(Box_),
    Cluster { key: String, title: String, items: Vec<Item> },
}

/// What a run did at one node, drawn on its box: `graph FLOW --run ID` and
/// `runs show ID --format mermaid|dot`.
#[derive(Clone, Debug, PartialEq)]
pub struct Mark {
    /// `succeeded`, `failed`, `skipped`, `cancelled`, `pending`, `unknown`, or `started` (in
    /// flight when an unfinished run stopped).
    pub status: &'static str,
    pub duration_ms: Option<f64>,
    pub attempts: u32,
    /// A `for_each` node's items run (its subflow's boxes then show no item's marks).
    pub items: Option<usize>,
}

impl Mark {
    fn line(&self) -> String {
        let mut parts = vec![self.status.to_owned()];
        if let Some(ms) = self.duration_ms {
            parts.push(if ms < 1000.0 { format!("{ms:.0} ms") } else { format!("{:.1} s", ms / 1000.0) });
        }
        if self.attempts > 1 {
            parts.push(format!("{} attempts", self.attempts));
        }
        if let Some(n) = self.items {
            parts.push(format!("{n} items"));
        }
        parts.join(" · ")
    }
}

fn status_word(status: NodeStatus) -> &'static str {
    match status {
        NodeStatus::Pending => "pending",
        NodeStatus::Succeeded => "succeeded",
        NodeStatus::Failed => "failed",
        NodeStatus::Skipped => "skipped",
        NodeStatus::Cancelled => "cancelled",
        NodeStatus::Unknown => "unknown",
        NodeStatus::Planned => "planned",
    }
}

fn mark_of(node: &NodeRecord) -> Mark {
    let items = (node.kind == "for_each").then_some(node.items.len());
    Mark { status: status_word(node.status), duration_ms: node.duration_ms, attempts: node.attempts, items }
}

/// A finished run's marks by node path (`user/lookup`: node `lookup` of the subflow node `user`
/// runs), from its record.
pub fn marks(record: &RunRecord) -> HashMap<String, Mark> {
    fn walk(record: &RunRecord, prefix: &str, out: &mut HashMap<String, Mark>) {
        for node in &record.nodes {
            let key = format!("{prefix}{}", node.id);
            if let Some(sub) = &node.subflow {
                walk(sub, &format!("{key}/"), out);
            }
            out.insert(key, mark_of(node));
        }
    }
    let mut out = HashMap::new();
    walk(record, "", &mut out);
    out
}

/// An unfinished run's marks, from what its journal holds: a node journaled as finished, or
/// `started` (in flight when the run stopped). `for_each` items (`node[i]/…`) are left out.
pub fn marks_of_past(past: &Past) -> HashMap<String, Mark> {
    let mut out = HashMap::new();
    for (key, node) in &past.nodes {
        if key.contains('[') {
            continue;
        }
        let mark = match &node.finished {
            Some(done) => mark_of(&done.record),
            None => Mark { status: "started", duration_ms: None, attempts: 0, items: None },
        };
        out.insert(key.clone(), mark);
    }
    out
}

/// Puts a run's marks on the boxes and cluster titles they belong to.
fn annotate(items: &mut [Item], marks: &HashMap<String, Mark>) {
    for item in items {
        match item {
            Item::Node(b) => {
                let mark = marks.get(&b.key);
                b.lines.push(mark.map_or_else(|| "not run".to_owned(), Mark::line));
                b.status = Some(mark.map_or("not_run", |m| m.status));
            }
            Item::Cluster { key, title, items } => {
                if let Some(mark) = marks.get(key.as_str()) {
                    title.push_str(&format!(" [{}]", mark.line()));
                }
                annotate(items, marks);
            }
        }
    }
}

/// The fill of a box by its status: green, red, grey, amber.
fn fill(status: &str) -> &'static str {
    match status {
        "succeeded" => "#d4edda",
        "failed" | "unknown" => "#f8d7da",
        "skipped" | "not_run" => "#eeeeee",
        _ => "#fff3cd",
    }
}

struct Arrow {
    from: String,
    to: String,
    kind: EdgeKind,
    label: Option<String>,
}

#[derive(Default)]
struct Drawing {
    items: Vec<Item>,
    arrows: Vec<Arrow>,
}

/// Keys of the boxes a node's incoming and outgoing arrows attach to.
struct Ends {
    entries: Vec<String>,
    exits: Vec<String>,
}

/// The drawing would hold more than `limits::DRAWING_ITEMS`.
struct TooLarge;

/// Counts the boxes and arrows of `flow` drawn with subflows expanded `depth` more levels,
/// without drawing anything, taking them from `left`; returns how many boxes its arrows enter
/// and leave by. Stops as soon as `left` runs out, so it costs at most the budget.
fn measure(flow: &Flow, catalog: &Catalog, depth: usize, left: &mut usize) -> Result<(usize, usize), TooLarge> {
    let plan = &flow.plan;
    let mut ends = Vec::with_capacity(plan.nodes.len());
    for node in &plan.nodes {
        take(left, 1)?;
        let callee = node.compiled.calls.as_ref().and_then(|c| catalog.get(&c.flow)).filter(|_| depth > 0);
        ends.push(match callee {
            Some(sub) => measure(sub, catalog, depth - 1, left)?,
            None => (1, 1),
        });
    }
    for e in plan.graph.raw_edges() {
        take(left, ends[e.source().index()].1.saturating_mul(ends[e.target().index()].0))?;
    }
    let sum = |first: bool| -> usize {
        (0..plan.nodes.len())
            .filter(|&i| if first { plan.deps(i).next().is_none() } else { plan.dependents(i).next().is_none() })
            .map(|i| if first { ends[i].0 } else { ends[i].1 })
            .sum()
    };
    Ok((sum(true), sum(false)))
}

fn take(left: &mut usize, n: usize) -> Result<(), TooLarge> {
    *left = left.checked_sub(n).ok_or(TooLarge)?;
    Ok(())
}

/// Where a flow is drawn: its catalog (to expand subflows), the prefix of its keys, its depth.
struct At<'a> {
    catalog: Option<&'a Catalog>,
    prefix: &'a str,
    depth: usize,
}

/// Draws `flow` into `d`, expanding subflows down to depth `max`; returns each node's ends.
fn build(flow: &Flow, at: &At<'_>, max: usize, d: &mut Drawing) -> Vec<Ends> {
    let plan = &flow.plan;
    let mut ends = Vec::new();
    let mut items = Vec::new();
    for node in &plan.nodes {
        let key = format!("{}{}", at.prefix, node.id);
        let mut lines = vec![node.id.clone(), node.compiled.exec.label()];
        if let Some(w) = &node.when {
            lines.push(format!("when {}", w.source));
        }
        let callee = node.compiled.calls.as_ref().and_then(|c| at.catalog?.get(&c.flow));
        match callee {
            Some(sub) if at.depth < max => {
                let inner_at = At { catalog: at.catalog, prefix: &format!("{key}/"), depth: at.depth + 1 };
                let mut inner = Drawing::default();
                let inner_ends = build(sub, &inner_at, max, &mut inner);
                d.arrows.append(&mut inner.arrows);
                let entries = entry_keys(sub, &inner_ends, true);
                let exits = entry_keys(sub, &inner_ends, false);
                items.push(Item::Cluster { key: key.clone(), title: lines.join(": "), items: inner.items });
                ends.push(Ends { entries, exits });
            }
            _ => {
                if callee.is_some() && max < MAX_DEPTH {
                    lines.push(COLLAPSED.to_owned());
                }
                items.push(Item::Node(Box_ { key: key.clone(), lines, dashed: node.may_skip, status: None }));
                ends.push(Ends { entries: vec![key.clone()], exits: vec![key] });
            }
        }
    }
    d.items.append(&mut items);
    for e in plan.graph.raw_edges() {
        let (from, to) = (e.source().index(), e.target().index());
        // An edge into or out of an expanded subflow is drawn to each of its entries or exits.
        let label = (e.weight.kind == EdgeKind::Branch).then(|| {
            let g = plan.nodes[to].guards.iter().find(|g| g.switch == from);
            g.map(|g| g.branches.join(" | ")).unwrap_or_default()
        });
        for a in &ends[from].exits {
            for b in &ends[to].entries {
                d.arrows.push(Arrow { from: a.clone(), to: b.clone(), kind: e.weight.kind, label: label.clone() });
            }
        }
    }
    ends
}

/// The boxes of a subflow with no predecessor (`first`) or no successor inside it.
fn entry_keys(flow: &Flow, inner: &[Ends], first: bool) -> Vec<String> {
    let plan = &flow.plan;
    (0..plan.nodes.len())
        .filter(|&i| if first { plan.deps(i).next().is_none() } else { plan.dependents(i).next().is_none() })
        .flat_map(|i| if first { inner[i].entries.clone() } else { inner[i].exits.clone() })
        .collect()
}

/// How subflows are expanded in a drawing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Expansion {
    /// Subflows nested deeper than this are drawn as one box.
    pub depth: usize,
    /// Some subflow was drawn as one box because the drawing would have been too large.
    pub collapsed: bool,
}

/// The deepest expansion of `flow`'s subflows that fits in `limits::DRAWING_ITEMS`. Subflows
/// that fan out grow a drawing exponentially with depth (ten tiny files drew gigabytes), so
/// each depth is measured from the deepest down, and a measure stops as soon as it exceeds the
/// budget: the cost stays a small multiple of the budget.
fn fit(flow: &Flow, catalog: Option<&Catalog>) -> Expansion {
    let Some(catalog) = catalog else { return Expansion { depth: 0, collapsed: false } };
    let fits = |depth: usize| {
        let mut left = limits::DRAWING_ITEMS.value;
        measure(flow, catalog, depth, &mut left).is_ok()
    };
    // A deeper drawing holds at least what a shallower one does: the first depth that fits
    // is the deepest, and any depth below `MAX_DEPTH` means a subflow was left collapsed.
    let depth = (1..=MAX_DEPTH).rev().find(|&d| fits(d)).unwrap_or(0);
    Expansion { depth, collapsed: depth < MAX_DEPTH }
}

/// How `flow`'s subflows will be expanded when drawn with `catalog`.
pub fn expansion(flow: &Flow, catalog: Option<&Catalog>) -> Expansion {
    fit(flow, catalog)
}

fn drawing(flow: &Flow, catalog: Option<&Catalog>, run: Option<&HashMap<String, Mark>>) -> Drawing {
    let mut d = Drawing::default();
    let at = At { catalog, prefix: "", depth: 0 };
    build(flow, &at, fit(flow, catalog).depth, &mut d);
    if let Some(marks) = run {
        annotate(&mut d.items, marks);
    }
    d
}

/// Graphviz DOT.
pub fn dot(flow: &Flow, expand: Option<&Catalog>) -> String {
    dot_run(flow, expand, None)
}

/// Graphviz DOT with a run's marks: each box says its node's status, duration and attempts,
/// filled by status.
pub fn dot_run(flow: &Flow, expand: Option<&Catalog>, run: Option<&HashMap<String, Mark>>) -> String {
    let d = drawing(flow, expand, run);
    let mut out =
        format!("digraph {} {{\n  rankdir=TB;\n  node [shape=box, fontname=\"Helvetica\"];\n", quote(flow.id()));
    dot_items(&d.items, 1, &mut out);
    for a in &d.arrows {
        let mut attrs = Vec::new();
        if a.kind == EdgeKind::After {
            attrs.push("style=dotted".to_owned());
        }
        if let Some(l) = &a.label {
            attrs.push(format!("label={}", quote(l)));
        }
        let attrs = if attrs.is_empty() { String::new() } else { format!(" [{}]", attrs.join(", ")) };
        let _ = writeln!(out, "  {} -> {}{attrs};", quote(&a.from), quote(&a.to));
    }
    out.push_str("}\n");
    out
}

fn dot_items(items: &[Item], depth: usize, out: &mut String) {
    let pad = "  ".repeat(depth);
    for item in items {
        match item {
            Item::Node(b) => {
                let style = match (b.dashed, b.status) {
                    (dashed, Some(status)) => {
                        let dashed = if dashed { ",dashed" } else { "" };
                        format!(", style=\"filled{dashed}\", fillcolor=\"{}\"", fill(status))
                    }
                    (true, None) => ", style=dashed".to_owned(),
                    (false, None) => String::new(),
                };
                let _ = writeln!(out, "{pad}{} [label={}{style}];", quote(&b.key), quote(&b.lines.join("\n")));
            }
            Item::Cluster { key, title, items } => {
                let _ = writeln!(out, "{pad}subgraph {} {{", quote(&format!("cluster_{key}")));
                let _ = writeln!(out, "{pad}  label={};", quote(title));
                dot_items(items, depth + 1, out);
                let _ = writeln!(out, "{pad}}}");
            }
        }
    }
}

fn quote(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n"))
}

/// Mermaid `flowchart`.
pub fn mermaid(flow: &Flow, expand: Option<&Catalog>) -> String {
    mermaid_run(flow, expand, None)
}

/// Mermaid `flowchart` with a run's marks (see [`dot_run`]): a class per status.
pub fn mermaid_run(flow: &Flow, expand: Option<&Catalog>, run: Option<&HashMap<String, Mark>>) -> String {
    let d = drawing(flow, expand, run);
    let mut out = String::from("flowchart TD\n");
    mermaid_items(&d.items, 1, &mut out);
    if run.is_some() {
        for status in ["succeeded", "failed", "unknown", "skipped", "not_run", "cancelled", "pending", "started"] {
            let _ = writeln!(out, "  classDef {status} fill:{}", fill(status));
        }
    }
    for a in &d.arrows {
        let (from, to) = (mermaid_id(&a.from), mermaid_id(&a.to));
        let _ = match (&a.label, a.kind) {
            (Some(l), _) => writeln!(out, "  {from} -- \"{}\" --> {to}", mermaid_text(l)),
            (None, EdgeKind::After) => writeln!(out, "  {from} -.-> {to}"),
            (None, _) => writeln!(out, "  {from} --> {to}"),
        };
    }
    out
}

fn mermaid_items(items: &[Item], depth: usize, out: &mut String) {
    let pad = "  ".repeat(depth);
    for item in items {
        match item {
            Item::Node(b) => {
                let text: Vec<String> = b.lines.iter().map(|l| mermaid_text(l)).collect();
                let _ = writeln!(out, "{pad}{}[\"{}\"]", mermaid_id(&b.key), text.join("<br/>"));
                if b.dashed {
                    let _ = writeln!(out, "{pad}style {} stroke-dasharray: 5 5", mermaid_id(&b.key));
                }
                if let Some(status) = b.status {
                    let _ = writeln!(out, "{pad}class {} {status}", mermaid_id(&b.key));
                }
            }
            Item::Cluster { key, title, items } => {
                let _ = writeln!(out, "{pad}subgraph {}[\"{}\"]", mermaid_id(key), mermaid_text(title));
                mermaid_items(items, depth + 1, out);
                let _ = writeln!(out, "{pad}end");
            }
        }
    }
}

/// Mermaid ids are words: `lookup/find` becomes `lookup__find`.
fn mermaid_id(key: &str) -> String {
    key.replace('/', "__")
}

fn mermaid_text(s: &str) -> String {
    s.replace('"', "#quot;").replace('<', "#lt;").replace('>', "#gt;")
}

/// The plan as JSON, for tools.
pub fn json(flow: &Flow, expand: Option<&Catalog>) -> serde_json::Value {
    // The JSON holds no more than the drawing (no arrow is repeated per entry and exit).
    let max = expansion(flow, expand).depth;
    json_at(flow, expand, 0, max)
}

fn json_at(flow: &Flow, expand: Option<&Catalog>, depth: usize, max: usize) -> serde_json::Value {
    let plan = &flow.plan;
    let nodes: Vec<_> = plan
        .nodes
        .iter()
        .map(|n| {
            let guards: Vec<_> =
                n.guards.iter().map(|g| json!({"node": plan.nodes[g.switch].id, "branches": g.branches})).collect();
            let callee = n.compiled.calls.as_ref().and_then(|c| expand?.get(&c.flow));
            let sub = callee.filter(|_| depth < max);
            let mut node = json!({
                "id": n.id,
                "kind": n.kind,
                "label": n.compiled.exec.label(),
                "when": n.when.as_ref().map(|w| &w.source),
                "may_skip": n.may_skip,
                "ends_run": n.compiled.ends_run,
                "guards": guards,
                "fields": n.compiled.fields,
                "settings": n.compiled.exec.describe(),
                "subflow": sub.map(|s| json_at(s, expand, depth + 1, max)),
            });
            if callee.is_some() && sub.is_none() && max < MAX_DEPTH {
                node["collapsed"] = json!(COLLAPSED);
            }
            node
        })
        .collect();
    let edges: Vec<_> = plan
        .graph
        .raw_edges()
        .iter()
        .map(|e| json!({"from": plan.nodes[e.source().index()].id, "to": plan.nodes[e.target().index()].id, "kind": e.weight.kind}))
        .collect();
    let order: Vec<&str> = plan.order.iter().map(|&i| plan.nodes[i].id.as_str()).collect();
    json!({ "id": flow.id(), "nodes": nodes, "edges": edges, "order": order })
}
