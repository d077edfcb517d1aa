//! The compiled form of a flow's nodes: a petgraph DAG with, for every node, what it waits for,
//! what guards it, and whether it may be skipped.
//!
//! Invariants once a `Plan` exists: the graph is acyclic; `order` is a topological order; every
//! edge's source is a node the target reads, names in `after:`, or is guarded by; a node's
//! `may_skip` is true exactly when some run could skip it (see the skip rule in
//! `docs/flow-format.md`). Nodes are indexed by position, so a run can record a result per node
//! and resume from the first one that did not finish.

use petgraph::algo::{tarjan_scc, toposort};
use petgraph::graph::{DiGraph, NodeIndex};
use petgraph::visit::EdgeRef;

use crate::diag::Diags;
use crate::kind::Compiled;
use crate::template::{Ref, Template};
use crate::yaml::Span;

/// Why one node waits for another.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum EdgeKind {
    /// Named in `after:`: ordering only. A skipped predecessor counts as finished.
    After,
    /// A template reads the predecessor's result. A skipped predecessor skips this node.
    Data,
    /// The predecessor branches, and this node is one of its targets.
    Branch,
}

#[derive(Clone, Copy, Debug)]
pub struct Edge {
    pub kind: EdgeKind,
    /// Where the author made the edge: the `after:` entry, the template path, the branch target.
    pub span: Span,
}

/// What a node's failure does to the run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OnError {
    /// The run fails, naming the node (the default).
    #[default]
    Stop,
    /// The run goes on; later nodes read `nodes.<id>.error`.
    Continue,
}

/// A branch of node `switch` that lets a guarded node run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Guard {
    pub switch: usize,
    /// The node runs when the switch takes any of these branches.
    pub branches: Vec<String>,
}

/// One node of the plan.
#[derive(Debug)]
pub struct PlanNode {
    pub id: String,
    pub kind: &'static str,
    pub description: Option<String>,
    pub span: Span,
    pub when: Option<Template>,
    /// What the node's kind made of it: its runnable form, result fields, calls, branches.
    pub compiled: Compiled,
    pub guards: Vec<Guard>,
    /// Every path the node's templates read.
    pub reads: Vec<Ref>,
    /// The nodes whose results this node reads (data dependencies), and their ids.
    pub reads_nodes: Vec<usize>,
    pub reads_ids: Vec<std::sync::Arc<str>>,
    /// Per entry of `reads_nodes`: read only through `coalesce`, so its being skipped does not
    /// skip this node.
    pub reads_soft: Vec<bool>,
    pub on_error: OnError,
    pub may_skip: bool,
}

impl PlanNode {
    /// The nodes this node reads outside `coalesce`, with their ids: the reads that skip it.
    pub fn hard_reads(&self) -> impl Iterator<Item = (usize, &std::sync::Arc<str>)> + '_ {
        self.reads_nodes
            .iter()
            .zip(&self.reads_ids)
            .zip(&self.reads_soft)
            .filter(|(_, soft)| !**soft)
            .map(|((&d, id), _)| (d, id))
    }
}

/// The DAG of a flow's nodes.
#[derive(Debug)]
pub struct Plan {
    pub nodes: Vec<PlanNode>,
    /// Node weights are indexes into `nodes`, which equal the graph's own indexes.
    pub graph: DiGraph<usize, Edge>,
    pub order: Vec<usize>,
    /// Per node, its id, shared: what a run's values name each node's result by.
    pub ids: Vec<std::sync::Arc<str>>,
}

impl Plan {
    pub fn index(&self, id: &str) -> Option<usize> {
        self.nodes.iter().position(|n| n.id == id)
    }

    /// The nodes `node` waits for, with why.
    pub fn deps(&self, node: usize) -> impl Iterator<Item = (usize, EdgeKind)> + '_ {
        self.graph
            .edges_directed(NodeIndex::new(node), petgraph::Direction::Incoming)
            .map(|e| (e.source().index(), e.weight().kind))
    }

    /// The nodes that wait for `node`.
    pub fn dependents(&self, node: usize) -> impl Iterator<Item = (usize, EdgeKind)> + '_ {
        self.graph
            .edges_directed(NodeIndex::new(node), petgraph::Direction::Outgoing)
            .map(|e| (e.target().index(), e.weight().kind))
    }

    /// Builds the graph from nodes and edges `(from, to, edge)`. Reports cycles, naming the
    /// path, and returns `None` when there is one.
    pub fn build(nodes: Vec<PlanNode>, edges: Vec<(usize, usize, Edge)>, diags: &mut Diags) -> Option<Plan> {
        let mut graph: DiGraph<usize, Edge> = DiGraph::with_capacity(nodes.len(), edges.len());
        for i in 0..nodes.len() {
            graph.add_node(i);
        }
        // One edge per pair of nodes, of the strongest kind: a branch also orders, and a read
        // also orders, so `after:` adds nothing to either.
        let strength = |k: EdgeKind| match k {
            EdgeKind::After => 0,
            EdgeKind::Data => 1,
            EdgeKind::Branch => 2,
        };
        for (from, to, edge) in edges {
            match graph.find_edge(NodeIndex::new(from), NodeIndex::new(to)) {
                Some(e) if strength(graph[e].kind) >= strength(edge.kind) => {}
                Some(e) => graph[e] = edge,
                None => {
                    graph.add_edge(NodeIndex::new(from), NodeIndex::new(to), edge);
                }
            }
        }
        let order = match toposort(&graph, None) {
            Ok(order) => order.into_iter().map(NodeIndex::index).collect(),
            Err(_) => {
                report_cycles(&graph, &nodes, diags);
                return None;
            }
        };
        let mut plan = Plan { nodes, graph, order, ids: Vec::new() };
        plan.resolve_reads();
        plan.mark_skippable();
        Some(plan)
    }

    /// Lists, per node, the nodes its templates read: the data dependencies the skip rule
    /// follows, kept apart from graph edges (where a branch edge may stand for a read).
    fn resolve_reads(&mut self) {
        let index: std::collections::HashMap<String, usize> =
            self.nodes.iter().enumerate().map(|(i, n)| (n.id.clone(), i)).collect();
        let ids: Vec<std::sync::Arc<str>> = self.nodes.iter().map(|n| std::sync::Arc::from(n.id.as_str())).collect();
        for node in &mut self.nodes {
            // (node, soft): sorted so that a hard read of a node comes before a soft one.
            let mut reads: Vec<(usize, bool)> = node
                .reads
                .iter()
                .filter(|r| r.path.first().is_some_and(|p| p == "nodes"))
                .filter_map(|r| Some((*index.get(r.path.get(1)?)?, r.soft)))
                .collect();
            reads.sort_unstable();
            reads.dedup_by_key(|(i, _)| *i);
            node.reads_ids = reads.iter().map(|&(i, _)| ids[i].clone()).collect();
            node.reads_soft = reads.iter().map(|&(_, soft)| soft).collect();
            node.reads_nodes = reads.into_iter().map(|(i, _)| i).collect();
        }
        self.ids = ids;
    }

    /// The skip rule, statically: a node may be skipped when it has `when:`, is a branch target,
    /// or reads a node that may be skipped. `after:` alone never propagates a skip.
    fn mark_skippable(&mut self) {
        for i in self.order.clone() {
            let reads_skippable = self.nodes[i].hard_reads().any(|(d, _)| self.nodes[d].may_skip);
            let node = &mut self.nodes[i];
            node.may_skip = node.when.is_some() || !node.guards.is_empty() || reads_skippable;
        }
    }

    /// Whether `ancestor` always finishes before `node` starts.
    pub fn precedes(&self, ancestor: usize, node: usize) -> bool {
        petgraph::algo::has_path_connecting(&self.graph, NodeIndex::new(ancestor), NodeIndex::new(node), None)
    }
}

/// Reports each cycle once, as `a → b → a`, at the edge that closes it.
fn report_cycles(graph: &DiGraph<usize, Edge>, nodes: &[PlanNode], diags: &mut Diags) {
    for scc in tarjan_scc(graph) {
        let self_loop = scc.len() == 1 && graph.find_edge(scc[0], scc[0]).is_some();
        if scc.len() < 2 && !self_loop {
            continue;
        }
        let path = cycle_path(graph, &scc);
        let names: Vec<&str> = path.iter().map(|i| nodes[i.index()].id.as_str()).collect();
        let closing = graph.find_edge(path[path.len() - 2], path[path.len() - 1]);
        let span = closing.map(|e| graph[e].span).unwrap_or(nodes[scc[0].index()].span);
        diags
            .error("cycle", Some(span), format!("the nodes form a cycle: {}", names.join(" → ")))
            .label("this edge closes the cycle")
            .help("a flow is a DAG: remove an `after:` entry or a template read so that one node no longer waits for the other");
    }
}

/// A walk around a strongly connected component, from its first node back to it.
fn cycle_path(graph: &DiGraph<usize, Edge>, scc: &[NodeIndex]) -> Vec<NodeIndex> {
    let start = *scc.iter().min().unwrap_or(&scc[0]);
    let mut path = vec![start];
    let mut seen = vec![start];
    let mut at = start;
    loop {
        let next =
            graph.neighbors(at).filter(|n| scc.contains(n)).min_by_key(|n| (*n != start, seen.contains(n), n.index()));
        let Some(next) = next else { break };
        path.push(next);
        if next == start || seen.contains(&next) {
            break;
        }
        seen.push(next);
        at = next;
    }
    // A walk that met an earlier node rather than the start: keep only the loop itself.
    let last = path[path.len() - 1];
    let first = path.iter().position(|n| *n == last).unwrap_or(0);
    path.split_off(first)
}
